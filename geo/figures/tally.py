"""Per-unit tallies: totals, completed, completion rate, measure sums, targets — as of a date.

Features are assigned to a unit grid when stored (:mod:`geo.assign`), so a tally is an
aggregation over stored columns, not a spatial join: the per-layer columns are read
once per store revision and each request is a few ``numpy.bincount`` calls.

"As of" semantics (documented in README):

* a feature exists as of day D when its found date is on or before D (a feature
  without a found date exists from the day its batch was imported);
* it is completed as of D when its status counts as completed and its completion
  date is on or before D (without a completion date: the day its batch was imported).
* Without ``as_of`` every stored feature counts, whatever its dates.

Figures as of day D are counted on the grid version in force on D (:mod:`geo.figures.versions`):
its units (those that later disappeared too) and every feature's stored unit on it, so a grid
revision leaves earlier figures as they were.  Without ``as_of`` the grid in force today is
used; ``grid="current"`` or a version id re-cuts any day on that grid.  ``known_at`` gives the
figures as the store held them at that moment (:mod:`geo.store.clock`): the feature row versions,
targets and grid versions visible at the last write made by then, whatever was corrected,
re-imported or rolled back later.

Units roll up from the unit grid through the levels the grid layer declares
(:mod:`geo.figures.hierarchy`).
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

import layers
from geo.errors import InputError
from geo.figures.asof import View, choose_version, parse_as_of, resolve_view
from geo.figures.facts import POSITIONS_KEPT, Facts, as_of_state, load_facts
from geo.figures.hierarchy import Hierarchy, check_level, empty_hierarchy, load_hierarchy
from geo.reading.values import parse_month
from geo.registry import get_layer
from geo.store import clock
from geo.store.base import Store
from layers.base import UNASSIGNED, LayerSpec

#: most months a monthly table spans
MAX_MONTHS = 240

# --- tallies ----------------------------------------------------------------------------------


def metric_names(spec: LayerSpec) -> list[str]:
    """Metrics a target can be set on for ``spec``: ``total``, ``completed`` and measure columns."""
    out = ["total", "completed"]
    for m in spec.measures:
        out.append(m.total_column(spec.name)[len(spec.name) + 1 :])
        out.append(m.completed_column(spec.name)[len(spec.name) + 1 :])
    return out


def column_labels(specs: list[LayerSpec], with_targets: bool = True) -> dict[str, tuple[str, str]]:
    """Chinese and English header for every stats column."""
    labels: dict[str, tuple[str, str]] = {
        "code": ("编码", "Code"),
        "name": ("名称", "Name"),
        "level": ("层级", "Level"),
        "parent_code": ("上级编码", "Parent code"),
        "parent_name": ("上级名称", "Parent"),
    }
    for spec in specs:
        z, e = spec.label_zh, spec.label_en
        labels[f"{spec.name}_total"] = (f"{z}总数", f"{e}: total")
        labels[f"{spec.name}_completed"] = (f"{z}已完成", f"{e}: completed")
        labels[f"{spec.name}_rate"] = (f"{z}完成率", f"{e}: completion rate")
        labels[f"{spec.name}_unrecognised"] = (f"{z}状态未识别", f"{e}: status unrecognised")
        labels[f"{spec.name}_completed_undated"] = (
            f"{z}已完成(无完成日期)",
            f"{e}: completed, undated",
        )
        for m in spec.measures:
            unit = "(m²)" if m.unit == "m2" else ""
            labels[m.total_column(spec.name)] = (f"{z}{m.label_zh}{unit}", f"{e}: {m.label_en.lower()}{unit}")
            labels[m.completed_column(spec.name)] = (
                f"{z}已完成{m.label_zh}{unit}",
                f"{e}: completed {m.label_en.lower()}{unit}",
            )
        if with_targets:
            for metric in metric_names(spec):
                base = labels.get(f"{spec.name}_{metric}", (metric, metric))
                labels[f"{spec.name}_{metric}_target"] = (f"{base[0]}目标", f"{base[1]} target")
                labels[f"{spec.name}_{metric}_progress"] = (f"{base[0]}目标完成度", f"{base[1]} progress")
    return labels


@dataclass
class Filters:
    """Optional restrictions of a tally: by status values or by unit code prefix."""

    statuses: tuple[str, ...] | None = None
    within: str | None = None  # a unit code (community/street/...): only grids under it
    #: only features assigned to these unit grid codes (an account's area, see
    #: :class:`geo.figures.areas.Scope`), and only the units of the level that hold one of them
    units: frozenset[str] | None = None


def tally(
    store: Store,
    level: str | None = None,
    layer_names: list[str] | None = None,
    as_of: str | date | None = None,
    filters: Filters | None = None,
    known_at: object = None,
    grid: object = None,
    *,
    view: View | None = None,
) -> pd.DataFrame:
    """Per-unit figures at ``level``.

    Parameters
    ----------
    store : Store
    level : str, optional
        A level the grid declares (:func:`geo.figures.hierarchy.level_names`); default the
        unit grid.
    layer_names : list of str, optional
        Survey layers to include (default: all).
    as_of : str or date, optional
        Count as of the end of this day (see module docstring).
    filters : Filters, optional
    known_at : str, datetime or date, optional
        The figures as the store held them at this moment (an ISO 8601 time; without a zone
        in the configured one; a bare date is the end of that day); see :mod:`geo.store.clock`.
    grid : "current" or int, optional
        Count on the newest grid version (at ``known_at``) or on this version instead of the
        one in force on ``as_of`` (or today).
    view : View, optional
        Resolved already (:func:`resolve_view`); ``known_at`` and ``grid`` are then ignored.

    Returns
    -------
    DataFrame
        One row per unit of the level (sorted by code) plus a last row ``UNASSIGNED``;
        columns ``code``, ``name``, ``level``, ``parent_code``, ``parent_name`` and per
        layer ``<layer>_total``, ``<layer>_completed``, ``<layer>_rate`` (0..1, NaN when
        the total is 0), measures (m² for areas) and, where targets exist,
        ``<layer>_<metric>_target`` and ``<layer>_<metric>_progress``.
    """
    level = check_level(level)
    day = parse_as_of(as_of)
    specs = survey_specs(layer_names)
    if view is None:
        view = resolve_view(store, as_of, known_at, grid)
    version = view.version if view.grid != "in_force" else choose_version(view, day)
    hier = load_hierarchy(store, version) if version is not None or view.tx is None else empty_hierarchy()
    units = hier.units(level)
    if filters and filters.within:
        units = units[_under(units, hier, level, filters.within)].reset_index(drop=True)
    scoped = (
        pa.array(sorted(filters.units), type=pa.string()) if filters and filters.units is not None else None
    )
    if filters and filters.units is not None:
        g = hier.grid
        reached = set(g.loc[g["code"].isin(filters.units), hier.code_column(level)])
        units = units[units["code"].isin(reached)].reset_index(drop=True)
    table = pd.concat(
        [
            units,
            pd.DataFrame(
                [
                    {
                        "code": UNASSIGNED,
                        "name": "未落入网格",
                        "level": level,
                        "parent_code": None,
                        "parent_name": None,
                    }
                ]
            ),
        ],
        ignore_index=True,
    )
    nrows = len(table)
    for spec in specs:
        facts = load_facts(store, spec, view.tx, version)
        within = filters.within if filters else None
        # the rows of a table of an area are others: its positions are kept apart
        rows_key = within if scoped is None else (within, tuple(scoped.to_pylist()))
        pos = _positions(facts, level, table["code"], hier, rows_key)
        status_filter = bool(filters and filters.statuses and spec.status_field)
        everything = (
            day is None and not status_filter and scoped is None and bool(len(pos)) and int(pos.min()) >= 0
        )
        if everything:
            # every feature counts: no boolean selection over the whole layer is needed
            mask: slice | np.ndarray = slice(None)
            done = facts.completed
        else:
            exists, by_then, _ = as_of_state(facts, day)
            mask = exists & (pos >= 0)
            if scoped is not None:
                mask &= pc.fill_null(pc.is_in(facts.unit, value_set=scoped), False).to_numpy(
                    zero_copy_only=False
                )
            if status_filter and filters is not None and filters.statuses and facts.status is not None:
                wanted = pa.array(list(filters.statuses), type=pa.string())
                mask &= pc.fill_null(pc.is_in(facts.status, value_set=wanted), False).to_numpy(
                    zero_copy_only=False
                )
            done = by_then & mask
        total = np.bincount(pos[mask], minlength=nrows)
        comp = np.bincount(pos[done], minlength=nrows)
        table[f"{spec.name}_total"] = total.astype(np.int64)
        table[f"{spec.name}_completed"] = comp.astype(np.int64)
        if spec.status_field:
            assert facts.unrecognised is not None and facts.undated is not None
            odd = pos[mask & facts.unrecognised] if isinstance(mask, np.ndarray) else pos[facts.unrecognised]
            table[f"{spec.name}_unrecognised"] = np.bincount(odd, minlength=nrows).astype(np.int64)
            if spec.completed_field:
                table[f"{spec.name}_completed_undated"] = np.bincount(
                    pos[done & facts.undated], minlength=nrows
                ).astype(np.int64)
        with np.errstate(invalid="ignore", divide="ignore"):
            table[f"{spec.name}_rate"] = np.where(total > 0, comp / np.maximum(total, 1), np.nan)
        for m in spec.measures:
            vals = facts.measures[m.key]
            # sums rounded to the centimetre/0.01 unit so float noise never reaches a report
            table[m.total_column(spec.name)] = np.round(
                np.bincount(pos[mask], weights=vals[mask], minlength=nrows), 2
            )
            table[m.completed_column(spec.name)] = np.round(
                np.bincount(pos[done], weights=vals[done], minlength=nrows), 2
            )
    _join_targets(store, table, specs, view.tx)
    return table


def _positions(
    facts: Facts,
    level: str,
    codes: pd.Series,
    hier: Hierarchy,
    within: Hashable,
) -> np.ndarray:
    """Row of the tally table each feature counts in (-1: outside the filtered units).
    ``within`` keys the table's rows (the ``within`` code, with an area's units when scoped).

    Kept with the ``facts`` it was computed from (and for the hierarchy it used), so it can
    never be paired with the columns of another revision."""
    cached = facts.positions.get((level, within))
    if cached is None or cached[0] is not hier:
        grid_codes = pa.array(hier.grid["code"].astype(str).tolist(), type=pa.string())
        level_codes = hier.grid[hier.code_column(level)]
        table_index = pd.Index(codes.astype(object))
        grid_to_row = table_index.get_indexer(level_codes.astype(object)).astype(np.int64)
        unassigned_row = int(table_index.get_loc(UNASSIGNED))

        def rows_of(units: pa.Array) -> np.ndarray:
            """The tally row of each unit code (kept with the positions: facts brought to a new
            generation by the change log compute only their new rows' positions with it)."""
            grid_idx = pc.index_in(units, value_set=grid_codes).to_numpy(zero_copy_only=False)
            in_grid = ~pd.isna(grid_idx)
            pos = np.full(len(grid_idx), unassigned_row, dtype=np.int64)  # UNASSIGNED and unknown codes
            pos[in_grid] = grid_to_row[grid_idx[in_grid].astype(np.int64)]
            return pos

        cached = (hier, rows_of(facts.unit), rows_of)
        facts.positions.pop((level, within), None)
        while len(facts.positions) >= POSITIONS_KEPT:  # bounded: the entry's size counts them
            facts.positions.pop(next(iter(facts.positions)), None)
        facts.positions[(level, within)] = cached
    return cached[1]


def survey_specs(layer_names: list[str] | None) -> list[LayerSpec]:
    """The named survey layers (all of them when none are named); the grid is refused."""
    if not layer_names:
        return layers.survey_layers()
    out = [get_layer(n) for n in layer_names]
    for s in out:
        if s.is_grid:
            raise InputError(
                "统计不包括网格图层本身", "the grid layer itself has no tallies", code="bad_layer"
            )
    return out


def _under(units: pd.DataFrame, hier: Hierarchy, level: str, within: str) -> np.ndarray:
    g = hier.grid
    inside = np.zeros(len(g), dtype=bool)
    for lv in hier.level_names:
        inside |= (g[hier.code_column(lv)] == within).to_numpy()
    if not inside.any():
        raise InputError(f"找不到单元: {within}", f"no unit with code {within}", code="unknown_unit")
    key = hier.code_column(level)
    allowed = set(g.loc[inside, key])
    return units["code"].isin(allowed).to_numpy()


def _join_targets(store: Store, table: pd.DataFrame, specs: list[LayerSpec], tx: int | None = None) -> None:
    targets = store.targets(tx)
    if targets.empty:
        return
    names = {s.name for s in specs}
    targets = targets[targets["layer"].isin(names) & targets["code"].isin(set(table["code"]))]
    for (layer, metric), rows in targets.groupby(["layer", "metric"]):
        col = f"{layer}_{metric}"
        if col not in table.columns:
            continue
        t = table["code"].map(dict(zip(rows["code"], rows["target"], strict=True)))
        table[f"{col}_target"] = t.astype(float)
        with np.errstate(invalid="ignore", divide="ignore"):
            table[f"{col}_progress"] = np.where(t > 0, table[col] / t, np.nan)


def _months_before(month: str, n: int) -> str:
    """The month ``n`` months before ``month`` (both ``"YYYY-MM"``)."""
    return str(pd.Period(month, freq="M") - n)


def monthly(
    store: Store,
    level: str | None = None,
    layer_names: list[str] | None = None,
    start: str | date | None = None,
    end: str | date | None = None,
    code: str | None = None,
    known_at: object = None,
    grid: object = None,
    *,
    view: View | None = None,
    filters: Filters | None = None,
) -> pd.DataFrame:
    """Figures as of the last day of each month from ``start`` to ``end``, each on the grid
    version in force that day (or on ``grid``), as known at ``known_at`` (see :func:`tally`).

    ``start`` and ``end`` are months (``"2022-05"``, ``"2022年5月"``) or any day of one
    (:func:`geo.reading.values.parse_month`); each missing one comes from the layers' first and last
    dates, bounded by today: the last is this month at the latest and the first at most
    :data:`MAX_MONTHS` months before it, so no row's date (a far-future or a very old one) widens
    the range.  Returns a long table: ``month`` plus the :func:`tally` columns, one row per unit
    and month (only ``code`` when given; ``filters`` as :func:`tally` takes them); no rows when the range holds no month (an ``end``
    before the first data month).

    Raises
    ------
    InputError
        A bad month, ``start`` after ``end`` (both given), or more than :data:`MAX_MONTHS` months
        between the months given.
    """
    level = check_level(level)
    specs = survey_specs(layer_names)
    if view is None:
        view = resolve_view(store, None, known_at, grid)
    first, last = parse_month(start), parse_month(end)
    if first is not None and last is not None and first > last:
        raise InputError(
            f"起始月份 {first} 晚于结束月份 {last}",
            f"the first month {first} is after the last month {last}",
            code="bad_range",
        )
    if first is None or last is None:
        firsts: list[np.datetime64] = []
        lasts: list[np.datetime64] = []
        for spec in specs:
            f = load_facts(store, spec, view.tx, view.version)
            for arr in (f.found, f.done):
                ok = arr[~np.isnat(arr)]
                if len(ok):
                    firsts.append(ok.min())
                    lasts.append(ok.max())
        if firsts:
            last = last or min(str(max(lasts))[:7], clock.today().isoformat()[:7])
            first = first or max(str(min(firsts))[:7], _months_before(last, MAX_MONTHS - 1))
    names = [s.name for s in specs]
    months = (
        pd.period_range(start=first, end=last, freq="M")
        if first is not None and last is not None and first <= last
        else pd.PeriodIndex([], freq="M")
    )
    if len(months) > MAX_MONTHS:
        raise InputError(
            f"月份范围过长（最多 {MAX_MONTHS} 个月）",
            f"month range too long (at most {MAX_MONTHS} months)",
            code="bad_range",
        )
    frames = []
    for p in months:
        t = tally(store, level, names, as_of=p.end_time.date(), filters=filters, view=view)
        if code is not None:
            t = t[t["code"] == code]
        t.insert(0, "month", str(p))
        frames.append(t)
    if not frames:  # no month in range: the columns still say what a month would hold
        empty = tally(store, level, names, filters=filters, view=view).iloc[0:0]
        empty.insert(0, "month", pd.Series(dtype=object))
        return empty.reset_index(drop=True)
    return pd.concat(frames, ignore_index=True)
