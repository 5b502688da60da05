"""Assemble statistics for export: tables per level, labels, unit geometry."""

from __future__ import annotations

from datetime import date

import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj
import shapely

from geo import crs as crsmod
from geo.cache import filling
from geo.export import StatsReport
from geo.importer import grid_spec
from geo.store import UNASSIGNED, Store
from geo.tally import LEVELS, Filters, check_level, column_labels, load_hierarchy, survey_specs, tally
from geo.values import parse_date

_GEOM_CACHE: dict[tuple[str, str, str], gpd.GeoSeries] = {}


def unit_geometry(store: Store, level: str) -> gpd.GeoSeries:
    """Outline of every unit of ``level``, indexed by unit code, in EPSG:4490 (lon/lat).

    Upper levels are dissolved from their unit grids.  Cached per generation of the
    grid layer, so writes to survey layers do not dissolve again.
    """
    check_level(level)
    key = (store.location, store.layer_generation(grid_spec()), level)
    if key in _GEOM_CACHE:
        return _GEOM_CACHE[key]
    with filling(("units", store.location, level)):
        if key not in _GEOM_CACHE:
            _GEOM_CACHE[key] = _unit_geometry(store, level)
    return _GEOM_CACHE[key]


def _unit_geometry(store: Store, level: str) -> gpd.GeoSeries:
    spec = grid_spec()
    attrs = store.read_attributes(spec, ["code"])
    fids, cells = store.read_geometry(spec)
    srs = store.srs_epsg()
    if len(fids) == 0 or srs is None:
        return gpd.GeoSeries([], crs="EPSG:4490")
    codes = attrs.set_index("fid").loc[fids, "code"].to_numpy(dtype=object)
    t = crsmod.transformer(pyproj.CRS.from_epsg(srs), pyproj.CRS.from_epsg(4490))
    lonlat = shapely.transform(cells, lambda xy: np.column_stack(t.transform(xy[:, 0], xy[:, 1])))
    series = gpd.GeoSeries(lonlat, index=pd.Index(codes, name="code"), crs="EPSG:4490")
    if level != "grid":
        mapping = load_hierarchy(store).mapping(level)
        groups = pd.Series(codes).map(mapping).to_numpy(dtype=object)
        frame = gpd.GeoDataFrame({"unit": groups}, geometry=list(lonlat), crs="EPSG:4490")
        series = frame.dissolve(by="unit").geometry
        series.index.name = "code"
    if len(_GEOM_CACHE) > 16:
        _GEOM_CACHE.clear()
    return series


def build_report(
    store: Store,
    levels: list[str] | None = None,
    layer_names: list[str] | None = None,
    as_of: str | date | None = None,
    filters: Filters | None = None,
    with_geometry: bool = False,
) -> StatsReport:
    """Tables for ``levels`` (default all four) ready for any renderer in :mod:`geo.export`.

    ``as_of`` in any form :func:`geo.values.parse_date` reads; the report carries it as ISO
    (today when not given)."""
    levels = levels or list(LEVELS)
    as_of = parse_date(as_of)  # once: the tables, the title and the file name show the same day
    tables = {lv: tally(store, lv, layer_names, as_of, filters) for lv in levels}
    geometry = None
    if with_geometry:
        geometry = {}
        for lv, table in tables.items():
            geo = unit_geometry(store, lv)
            aligned = [geo.get(c) if c != UNASSIGNED else None for c in table["code"]]
            geometry[lv] = gpd.GeoSeries(aligned, index=table.index, crs="EPSG:4490")
    day = (as_of or date.today()).isoformat()
    labels = column_labels(survey_specs(layer_names))
    return StatsReport(levels=tables, columns=labels, as_of=day, geometry=geometry)
