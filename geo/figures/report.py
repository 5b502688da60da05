"""Assemble statistics for export: tables per level, labels, unit geometry, provenance."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj
import shapely

from geo.figures.asof import View, choose_version, parse_as_of, resolve_view
from geo.figures.facts import load_facts
from geo.figures.hierarchy import check_level, grid_levels, level_names, load_hierarchy
from geo.figures.tally import Filters, column_labels, survey_specs, tally
from geo.reading import crs as crsmod
from geo.reading.values import parse_date
from geo.registry import grid_spec
from geo.store import clock
from geo.store.base import Store
from geo.store.cache import generations
from geo.store.interface.features import GridVersion
from layers.base import UNASSIGNED

#: Headers of the columns every report table starts with.
BASE_LABELS: dict[str, tuple[str, str]] = {
    "code": ("编码", "Code"),
    "name": ("名称", "Name"),
    "level": ("层级", "Level"),
    "parent_code": ("上级编码", "Parent code"),
    "parent_name": ("上级名称", "Parent"),
}


@dataclass
class StatsReport:
    """Per-unit statistics of one tally, ready for any renderer.

    Parameters
    ----------
    levels : dict of str to pandas.DataFrame
        Level name (one the grid declares, :func:`geo.figures.hierarchy.level_names`)
        -> table, one row per unit, row order kept.  Columns: ``code``, ``name``,
        ``level``, optional ``parent_code``/``parent_name``, then per layer
        ``<layer>_total``, ``<layer>_completed`` (counts), ``<layer>_rate``
        (0..1, NaN when the total is 0), measure columns (areas in m² end in
        ``_m2``) and optional ``<layer>_<metric>_target`` / ``_progress`` (ratio).
        The row with code ``UNASSIGNED`` holds features outside every unit grid.
    columns : dict of str to (str, str)
        Column name -> (Chinese header, English header).  Columns without an
        entry are labelled with their name.
    as_of : str
        ISO date the figures are "as of".
    geometry : dict of str to geopandas.GeoSeries, optional
        Unit outlines per level, index aligned with that level's table, CRS
        EPSG:4490 (lon/lat; a series without CRS is taken to be EPSG:4490, one
        in another CRS is reprojected).  Rows without an outline (``UNASSIGNED``)
        are missing or ``None``.  Needed by geojson, gpkg and shp.
    title : str
        Report title (xlsx title row, JSON).
    provenance : dict, optional
        What the figures were computed from (:func:`geo.figures.report.provenance`): ``as_of``,
        ``known_at``, ``computed_at`` (the last write included: ``tx``, ``at``), ``grid``
        (``chosen``, ``versions``) and per layer its last write and feature count.  Every
        format carries it: an "说明 About" sheet and page footers in xlsx, ``metadata`` in
        JSON and GeoJSON, layer metadata in GeoPackage, ``about.json`` in the shapefile zip
        and, with ``csv_header``, ``#`` comment lines before the CSV table.
    csv_header : bool
        Start the CSV with the provenance as ``# `` comment lines (off: a plain table).
    headers : str
        The CSV's header row: ``"code"`` the column names (the default, for scripts), ``"zh"``
        or ``"en"`` the columns' Chinese or English labels.
    json_rows : str
        The JSON's rows: ``"objects"`` one ``{column: value}`` per row (the default), ``"arrays"``
        the compact form, one array of values per row in the order of a ``fields`` list.
    """

    levels: dict[str, pd.DataFrame]
    columns: dict[str, tuple[str, str]]
    as_of: str
    geometry: dict[str, gpd.GeoSeries] | None = None
    title: str = "gridwatch 统计"
    provenance: dict[str, Any] | None = None
    csv_header: bool = False
    headers: str = "code"
    json_rows: str = "objects"

    def label(self, column: str) -> tuple[str, str]:
        """(Chinese, English) header of ``column``."""
        if column in self.columns:
            return self.columns[column]
        return BASE_LABELS.get(column, (column, column))


def unit_geometry(store: Store, level: str, version: GridVersion | None = None) -> gpd.GeoSeries:
    """Outline of every unit of ``level``, indexed by unit code, in EPSG:4490 (lon/lat): of the
    stored grid, or of grid ``version`` (its units, those that later disappeared too).

    Upper levels are dissolved from their unit grids.  Cached per generation of the
    grid layer, so writes to survey layers do not dissolve again.
    """
    check_level(level)
    if version is not None:
        current = store.current_grid_version()
        if current is not None and current.id == version.id:
            version = None  # the stored grid
    state = generations(store, grid_spec())
    return store.cache.region("units").get_or_fill(
        (state, level, None if version is None else version.id),
        lambda: _unit_geometry(store, level, version),
        lambda: generations(store, grid_spec()) == state,
        wait=not store.writing(),
    )


def _unit_geometry(store: Store, level: str, version: GridVersion | None) -> gpd.GeoSeries:
    spec = grid_spec()
    unit = grid_levels()[0]
    if version is None:
        attrs = store.read_attributes(spec, [unit.code_field])
        fids, cells = store.read_geometry(spec)
        codes = (
            attrs.set_index("fid").loc[fids, unit.code_field].to_numpy(dtype=object) if len(fids) else fids
        )
    else:
        visible, cells = store.read_visible(spec, version.tx, [unit.code_field])
        fids = visible["fid"].to_numpy()
        codes = visible[unit.code_field].to_numpy(dtype=object)
    srs = store.srs_epsg()
    if len(fids) == 0 or srs is None:
        return gpd.GeoSeries([], crs="EPSG:4490")
    t = crsmod.transformer(pyproj.CRS.from_epsg(srs), pyproj.CRS.from_epsg(4490))
    lonlat = shapely.transform(cells, lambda xy: np.column_stack(t.transform(xy[:, 0], xy[:, 1])))
    series = gpd.GeoSeries(lonlat, index=pd.Index(codes, name="code"), crs="EPSG:4490")
    if level != unit.name:
        mapping = load_hierarchy(store, version).mapping(level)
        groups = pd.Series(codes).map(mapping).to_numpy(dtype=object)
        frame = gpd.GeoDataFrame({"unit": groups}, geometry=list(lonlat), crs="EPSG:4490")
        series = frame.dissolve(by="unit").geometry
        series.index.name = "code"
    return series


def build_report(
    store: Store,
    levels: list[str] | None = None,
    layer_names: list[str] | None = None,
    as_of: str | date | None = None,
    filters: Filters | None = None,
    with_geometry: bool = False,
    known_at: object = None,
    grid: object = None,
    tz: str | None = None,
) -> StatsReport:
    """Tables for ``levels`` (default every level the grid declares) ready for any renderer in :mod:`geo.output.export`.

    ``as_of`` in any form :func:`geo.reading.values.parse_date` reads; the report carries it as ISO
    (today when not given).  ``known_at`` and ``grid`` as for :func:`geo.figures.tally.tally`; unit
    outlines come from the grid version the figures are counted on, and the report's
    ``provenance`` says what they were computed from (:func:`provenance`)."""
    levels = levels or level_names()
    as_of = parse_date(as_of)  # once: the tables, the title and the file name show the same day
    view = pin(store, resolve_view(store, as_of, known_at, grid, tz))
    version = view.version if view.grid != "in_force" else choose_version(view, parse_as_of(as_of))
    tables = {lv: tally(store, lv, layer_names, as_of, filters, view=view) for lv in levels}
    geometry = None
    if with_geometry:
        geometry = {}
        for lv, table in tables.items():
            geo = unit_geometry(store, lv, version)
            aligned = [geo.get(c) if c != UNASSIGNED else None for c in table["code"]]
            geometry[lv] = gpd.GeoSeries(aligned, index=table.index, crs="EPSG:4490")
    day = (as_of or clock.today(tz)).isoformat()
    specs = survey_specs(layer_names)
    labels = column_labels(specs)
    prov = provenance(store, view, [version], [s.name for s in specs], as_of, tz)
    return StatsReport(levels=tables, columns=labels, as_of=day, geometry=geometry, provenance=prov)


def pin(store: Store, view: View) -> View:
    """``view`` of now pinned to the last write, so that figures and their provenance name the
    same state even when a write lands while they are computed."""
    if view.tx is not None:
        return view
    last = store.last_tx()
    return view if last is None else replace(view, tx=last.id)


def provenance(
    store: Store,
    view: View,
    versions: list[GridVersion | None],
    layer_names: list[str],
    as_of: date | str | None,
    tz: str | None = None,
) -> dict[str, Any]:
    """What figures were computed from.

    ``as_of`` (None: every stored feature, whatever its dates); ``known_at`` (the moment asked,
    in the configured zone; None: now); ``computed_at``: the last write the figures include --
    its stamp given as ``known_at`` gives the same figures again, whatever is written later;
    ``grid``: how the version was chosen and the version(s) used; per layer its last write
    (tx and batch) up to then and its number of feature rows then."""
    last = store.last_tx()
    tx_id = view.tx if view.tx is not None else (last.id if last is not None else None)
    tx = store.tx(tx_id) if tx_id else None
    layers_out = []
    for spec in survey_specs(layer_names):
        facts = load_facts(store, spec, view.tx)
        ltx, lbatch = store.layer_revision(spec.name, tx_id)
        layers_out.append({"layer": spec.name, "tx": ltx, "batch": lbatch, "features": len(facts.fids)})
    used: list[dict[str, Any]] = []
    for v in versions:
        if v is not None and all(u["id"] != v.id for u in used):
            used.append({"id": v.id, "valid_from": v.valid_from, "imported_at": v.created_at})
    return {
        "as_of": None if as_of is None else str(as_of)[:10],
        "known_at": clock.shown(view.known_at, tz),
        "computed_at": {
            "tx": tx_id,
            "at": None if tx is None else tx.at,
            "at_local": None if tx is None else clock.shown(tx.at, tz),
        },
        "grid": {"chosen": view.grid, "versions": used},
        "layers": layers_out,
        "timezone": str(clock.zone(tz)),
    }
