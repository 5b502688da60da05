"""The figures the web pages show, as plain data: the map page's summary of a survey layer and
the statistics page's table, laggards, chart series and monthly progress.

The pages only label and render what these functions return (numbers, text, lists and
mappings of them), so the same figures can be checked, or shown elsewhere, without a web
framework.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from geo.errors import InputError
from geo.figures.asof import choose_version, parse_as_of, resolve_view
from geo.figures.facts import load_facts
from geo.figures.hierarchy import Hierarchy, grid_levels, load_hierarchy
from geo.figures.report import unit_geometry
from geo.figures.tally import Filters, metric_names, monthly, tally
from geo.registry import get_layer
from geo.store.base import Store
from layers.base import UNASSIGNED, LayerSpec, Level

#: Where the map looks when there is no grid yet: west, south, east, north in degrees
#: (EPSG:4490, lon/lat).
DEFAULT_BOUNDS = (118.35, 31.25, 118.45, 31.35)

#: Units listed on the statistics page as lagging furthest behind.
LAGGING = 10


def area_levels() -> list[Level]:
    """The levels whose units the pages list by name (the map's area choice, the statistics
    charts): those between the unit grid and the top level, from the top down."""
    return list(grid_levels()[-2:0:-1])


def map_summary(
    store: Store,
    layer: str,
    level: str | None = None,
    as_of: date | None = None,
    units: frozenset[str] | None = None,
) -> dict[str, Any]:
    """What the map page shows of survey layer ``layer`` before any cell is drawn.

    Parameters
    ----------
    store : Store
    layer : str
        A survey layer's name.
    level : str, optional
        A level the grid declares (default: the unit grid): the level the map colours (the
        scales below are of its units).
    as_of : date, optional
        Count as of the end of this day (default: everything stored).

    Returns
    -------
    dict
        ``bounds``: the unit grid's extent as ``[west, south, east, north]`` in degrees
        (EPSG:4490, lon/lat), :data:`DEFAULT_BOUNDS` without a grid; ``totals``: features
        ``total``, ``completed`` and ``unassigned`` (outside every unit grid);
        ``max_completed``: the most completed features in one unit (1 when none);
        ``measure_column``: the tally column of the layer's first measure completed (``""``
        when it has none) and ``max_measure``: its largest value in one unit (1 when none),
        in the measure's unit (m² for areas); ``areas``: per level of :func:`area_levels`, its
        units as ``(code, name)`` pairs sorted by code (the code when a unit has no name);
        ``first_day``: the layer's earliest date found or completed (ISO, ``""`` when none is
        dated), where the map's month slider starts.  With ``units`` (an account's area) every
        figure, the bounds and the areas are those of these unit grids only.
    """
    spec = get_layer(layer)
    outline = unit_geometry(store, grid_levels()[0].name)  # bounds only: no need to dissolve
    if units is not None:
        outline = outline[outline.index.isin(units)]
    bounds = outline.total_bounds if len(outline) else np.array(DEFAULT_BOUNDS)
    table = tally(store, level, [spec.name], as_of, Filters(units=units) if units is not None else None)
    unassigned = table[table["code"] == UNASSIGNED].iloc[0]
    measure_column = spec.measures[0].completed_column(spec.name) if spec.measures else ""
    hier = load_hierarchy(store)
    return {
        "bounds": [float(v) for v in bounds],
        "totals": {
            "total": int(table[f"{spec.name}_total"].sum()),
            "completed": int(table[f"{spec.name}_completed"].sum()),
            "unassigned": int(unassigned[f"{spec.name}_total"]),
        },
        "max_completed": int(table[f"{spec.name}_completed"].max() or 1),
        "measure_column": measure_column,
        "max_measure": float(table[measure_column].max() or 1) if spec.measures else 1,
        "areas": {
            lv.name: [
                (r["code"], r["name"] or r["code"]) for r in units_in(hier, lv.name, units).to_dict("records")
            ]
            for lv in area_levels()
        },
        "first_day": first_day(store, spec.name),
    }


def first_day(store: Store, layer: str) -> str:
    """The earliest date found or completed of survey layer ``layer`` as stored now (ISO
    ``2022-01-05``), ``""`` when no feature is dated."""
    spec = get_layer(layer)
    view = resolve_view(store)
    facts = load_facts(store, spec, view.tx, view.version)
    days = [arr[~np.isnat(arr)].min() for arr in (facts.found, facts.done) if (~np.isnat(arr)).any()]
    return str(min(days))[:10] if days else ""


def map_totals(
    store: Store,
    layer: str,
    as_of: date | None = None,
    within: str | None = None,
    statuses: tuple[str, ...] | None = None,
    level: str | None = None,
    units: frozenset[str] | None = None,
) -> dict[str, Any]:
    """The map page's headline figures of survey layer ``layer`` for its current filters
    (with ``units``, an account's area: of those unit grids only, framed on them).

    Parameters
    ----------
    store : Store
    layer : str
        A survey layer's name.
    as_of : date, optional
        Count as of the end of this day (default: everything stored).
    within : str, optional
        A unit code of any level: only the unit grids under it.
    statuses : tuple of str, optional
        Only features with one of these status codes.
    level : str, optional
        The level the map colours (default: the unit grid): the scales below are of its units.

    Returns
    -------
    dict
        ``layer``; ``total``, ``completed`` and ``unassigned`` features (outside every unit
        grid; 0 with ``within``, which only counts units under it); ``rate``: completed over
        total (None when there is none); ``bounds``: the extent of ``within`` (else of the unit
        grid) on the grid version in force on ``as_of``, ``[west, south, east, north]`` in
        degrees (EPSG:4490, lon/lat; :data:`DEFAULT_BOUNDS` without a grid); the scales of the
        map's colours over the units of ``level`` under ``within`` (every status):
        ``max_completed``, ``measure_column`` and ``max_measure`` as in :func:`map_summary`;
        ``first_day`` as :func:`first_day`.

    Raises
    ------
    InputError
        An unknown layer or status, or ``within`` naming no unit (``unknown_unit``).
    """
    spec = get_layer(layer)
    known = {st.code for st in spec.all_statuses}
    unknown = [st for st in statuses or () if st not in known]
    if unknown:
        raise InputError(
            f"未知状态: {', '.join(unknown)}",
            f"unknown status of {spec.name}: {', '.join(unknown)}",
            code="bad_status",
        )
    filters = Filters(statuses=statuses or None, within=within or None, units=units)
    table = tally(store, grid_levels()[0].name, [spec.name], as_of, filters)
    outside = table["code"] == UNASSIGNED
    inside_only = bool(within) or units is not None
    counted = table[~outside] if inside_only else table  # outside every unit grid is in no area
    total = int(counted[f"{spec.name}_total"].sum())
    completed = int(counted[f"{spec.name}_completed"].sum())
    version = choose_version(resolve_view(store, as_of), parse_as_of(as_of))
    shown = table.loc[~outside, "code"].astype(str).tolist()
    outline = unit_geometry(store, grid_levels()[0].name, version)
    outline = outline[outline.index.isin(shown)] if inside_only else outline
    bounds = outline.total_bounds if len(outline) else np.array(DEFAULT_BOUNDS)
    units_table = tally(
        store, level, [spec.name], as_of, Filters(within=within, units=units) if inside_only else None
    )
    units_table = units_table[units_table["code"] != UNASSIGNED]
    measure_column = spec.measures[0].completed_column(spec.name) if spec.measures else ""
    return {
        "layer": spec.name,
        "total": total,
        "completed": completed,
        "unassigned": 0 if inside_only else int(table.loc[outside, f"{spec.name}_total"].sum()),
        "rate": completed / total if total else None,
        "bounds": [float(v) for v in bounds],
        "max_completed": int(_top(units_table[f"{spec.name}_completed"])),
        "measure_column": measure_column,
        "max_measure": _top(units_table[measure_column]) if spec.measures else 1.0,
        "first_day": first_day(store, spec.name),
    }


def _top(values: pd.Series) -> float:
    """The largest value, 1 when there is none above 0 (a colour scale's top: no units, or
    none with any, would divide by zero or NaN)."""
    top = values.max()
    return float(top) if pd.notna(top) and top > 0 else 1.0


def units_in(hier: Hierarchy, level: str, units: frozenset[str] | None = None) -> pd.DataFrame:
    """The units of ``level`` (:meth:`Hierarchy.units <geo.figures.hierarchy.Hierarchy.units>`),
    with ``units`` (an account's area) only those holding one of these unit grids."""
    table = hier.units(level)
    if units is None:
        return table
    g = hier.grid
    reached = set(g.loc[g["code"].isin(units), hier.code_column(level)])
    return table[table["code"].isin(reached)].reset_index(drop=True)


def stats_page_data(
    store: Store,
    layer: str,
    level: str | None = None,
    as_of: date | None = None,
    units: frozenset[str] | None = None,
) -> dict[str, Any]:
    """The figures of the statistics page for survey layer ``layer``.

    Parameters
    ----------
    store : Store
    layer : str
        A survey layer's name.
    level : str, optional
        A level the grid declares (default: the unit grid).
        The level of the table.
    as_of : date, optional
        Count as of the end of this day, and the last month of the series (default:
        everything stored, up to the layer's last dated month).
    units : frozenset of str, optional
        An account's area: every figure of these unit grids only (the series too).

    Returns
    -------
    dict
        ``rows``: the :func:`~geo.figures.tally.tally` table at ``level`` as records (features
        outside every unit grid last, code ``UNASSIGNED``); ``lagging``: the
        :data:`LAGGING` units with features and the lowest completion rate (most features
        first among equals); ``by_level``: per level of :func:`area_levels` (a list, from the top down), its ``name`` and its
        units with features as ``labels`` (name, else code) and ``rates`` (completion in percent, one
        decimal); ``monthly``: the whole district month by month -- ``months``
        (``"2022-05"``), ``total``, ``completed`` (completions with a date) and ``undated``
        (completions without one: they count from the day of their import, which is no
        progress of that month); ``undated_now``: completions without a date in the table;
        ``has_undated``: whether the table counts completions without a date (a layer with a
        status and a completion-date field); ``totals``: the table's totals row
        (:func:`table_totals`); ``headline``: the figures above the charts (:func:`headline`).
    """
    spec = get_layer(layer)
    area = Filters(units=units) if units is not None else None
    table = tally(store, level, [spec.name], as_of, area)
    if units is not None:
        table = table[table["code"] != UNASSIGNED].reset_index(drop=True)
    listed = table[table["code"] != UNASSIGNED]
    rate = f"{spec.name}_rate"
    lagging = listed[listed[f"{spec.name}_total"] > 0].sort_values(
        [rate, f"{spec.name}_total"], ascending=[True, False]
    )
    by_level = []
    for lv in area_levels():
        t = tally(store, lv.name, [spec.name], as_of, area)
        t = t[(t["code"] != UNASSIGNED) & (t[f"{spec.name}_total"] > 0)]
        by_level.append(
            {
                "name": lv.name,
                "labels": [str(n or c) for n, c in zip(t["name"], t["code"], strict=True)],
                "rates": [round(float(v) * 100, 1) for v in t[rate]],
            }
        )
    series = monthly(store, grid_levels()[-1].name, [spec.name], end=as_of, filters=area)
    undated_col = f"{spec.name}_completed_undated"
    cols = [f"{spec.name}_total", f"{spec.name}_completed"] + ([undated_col] if undated_col in series else [])
    months = series.groupby("month")[cols].sum().reset_index()
    undated = months[undated_col] if undated_col in months else 0 * months[f"{spec.name}_total"]
    return {
        "rows": table.to_dict("records"),
        "lagging": lagging.head(LAGGING).to_dict("records"),
        "by_level": by_level,
        "monthly": {
            "months": months["month"].tolist(),
            "total": [int(v) for v in months[f"{spec.name}_total"]],
            "completed": [int(v) for v in months[f"{spec.name}_completed"] - undated],
            "undated": [int(v) for v in undated],
        },
        "undated_now": int(table[undated_col].sum()) if undated_col in table else 0,
        "has_undated": undated_col in table,
        "totals": table_totals(table, spec),
        "headline": headline(store, spec, table, as_of, area),
    }


def headline(
    store: Store,
    spec: LayerSpec,
    table: pd.DataFrame,
    as_of: date | None = None,
    filters: Filters | None = None,
) -> dict[str, Any]:
    """The statistics page's headline figures: the totals of ``table`` (:func:`table_totals`)
    with the targets of the highest level that has any (the district's own target when it has
    one, else the sum of its communities' ...), whatever level the table is of (counted with
    ``filters``, an account's area, as the table was)."""
    out = table_totals(table, spec)
    if not out["targets"]:
        for lv in reversed(grid_levels()):
            targets = table_totals(tally(store, lv.name, [spec.name], as_of, filters), spec)["targets"]
            if targets:
                out["targets"] = targets
                break
    return out


def table_totals(table: pd.DataFrame, spec: LayerSpec) -> dict[str, Any]:
    """The totals of a tally ``table`` of survey layer ``spec``, over every row (features outside
    every unit grid included), as the statistics page's totals row and headline show them.

    Returns
    -------
    dict
        ``total``, ``completed`` (counts), ``rate`` (``completed / total``, the overall rate and
        not the mean of the units' rates; None when there is no feature), ``unrecognised`` and
        ``undated`` (counts, 0 when the layer has no such column), ``measures``: per tally
        measure column its sum (m² for areas), ``targets``: per metric with a target on some
        row, its ``metric``, ``column`` (the achieved column), ``target`` (the sum of the
        targets), ``achieved`` (the sum over the rows with a target) and ``progress``
        (achieved / target, None for a zero target).
    """
    name = spec.name

    def count(column: str) -> int:
        return int(table[column].sum()) if column in table else 0

    total, completed = count(f"{name}_total"), count(f"{name}_completed")
    measures = {}
    for m in spec.measures:
        for column in (m.total_column(name), m.completed_column(name)):
            measures[column] = float(table[column].sum())
    targets = []
    for metric in metric_names(spec):
        column, target_column = f"{name}_{metric}", f"{name}_{metric}_target"
        if target_column not in table or column not in table:
            continue
        has = table[target_column].notna()
        if not has.any():
            continue
        target = float(table.loc[has, target_column].sum())
        achieved = float(table.loc[has, column].sum())
        targets.append(
            {
                "metric": metric,
                "column": column,
                "target": target,
                "achieved": achieved,
                "progress": achieved / target if target > 0 else None,
            }
        )
    return {
        "total": total,
        "completed": completed,
        "rate": completed / total if total else None,
        "unrecognised": count(f"{name}_unrecognised"),
        "undated": count(f"{name}_completed_undated"),
        "measures": measures,
        "targets": targets,
    }
