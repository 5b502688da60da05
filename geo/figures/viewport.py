"""What a web map needs for one viewport: unit outlines with their figures, and survey
features -- one by one when few or zoomed in, aggregated into clusters otherwise.

Everything is computed from data the process already holds (decoded geometry, cached
tallies), never by embedding a whole layer in a page.  Coordinates are lon/lat
(EPSG:4326; CGCS2000 is drawn as WGS84, centimetres apart); with ``gcj02=True`` they are
shifted to GCJ-02 so overlays line up with Gaode/Tencent base maps.
"""

from __future__ import annotations

import json
import math
import threading
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyproj
import shapely

from geo.edits.ids import find_feature
from geo.errors import InputError, NotFound, StoreError
from geo.figures import mapfile
from geo.figures.asof import choose_version, parse_as_of, resolve_view
from geo.figures.facts import Facts, as_of_state, facts_of_rows, load_facts, read_facts
from geo.figures.hierarchy import check_level, load_hierarchy
from geo.figures.mapfile import MapColumns
from geo.figures.report import unit_geometry
from geo.figures.tally import Filters, survey_specs, tally
from geo.reading import crs as crsmod
from geo.reading.gcj02 import gcj02_to_wgs84, wgs84_to_gcj02
from geo.reading.values import parse_date
from geo.registry import get_layer, grid_spec
from geo.store.base import Store
from geo.store.cache import generations
from geo.store.interface.changes import append_rows, splice
from geo.store.interface.changes import enabled as changes_enabled
from geo.store.interface.features import GridVersion
from layers.base import PENDING, PENDING_CODE, UNASSIGNED, UNRECOGNISED_CODE, LayerSpec, Status

#: Above this zoom (or under ``max_features`` in view) features are sent one by one.
DETAIL_ZOOM = 17
#: Side of an aggregation bin, in screen pixels.
BIN_PX = 48
#: Views (box and zoom) whose bin sums are kept with a layer generation's map columns.
MAP_VIEWS = 16


@dataclass
class BBox:
    """A lon/lat box: west, south, east, north (degrees)."""

    west: float
    south: float
    east: float
    north: float

    @classmethod
    def parse(cls, text: str | None) -> BBox | None:
        """``"w,s,e,n"`` → BBox; None when absent; :class:`InputError` when malformed."""
        if not text:
            return None
        try:
            w, s, e, n = (float(v) for v in text.split(","))
        except ValueError:
            raise InputError(
                f"bbox 格式错误: {text}", f"bbox must be west,south,east,north: {text}", code="bad_bbox"
            ) from None
        if not (-180 <= w < e <= 180 and -90 <= s < n <= 90):
            raise InputError(f"bbox 超出范围: {text}", f"bbox out of range: {text}", code="bad_bbox")
        return cls(w, s, e, n)


# --- feature positions in lon/lat, kept per layer generation ----------------------------------


def _positions(store: Store, spec: LayerSpec) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(fid, lon, lat, geometry in lon/lat)`` of every feature of ``spec`` (a point's geometry
    None: take it with :func:`_lonlat_geoms`)."""
    state = generations(store, spec)
    kept = store.cache.region("positions")

    def fill() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        fids, geoms = store.read_geometry(spec)
        latest = kept.latest(spec.name) if changes_enabled() else None
        if latest is None or any(str(s).startswith("tx:") for s in latest[0][1]):  # type: ignore[index]
            # nothing kept, or what was kept was read inside a write that may have rolled back
            # (its fids may come back with other rows)
            return _to_lonlat(store, fids, geoms)
        # a committed fid's geometry never changes: keep the positions of the fids kept, project the others
        old_fids, old_lon, old_lat, old_geoms = latest[1]
        k = len(old_fids)
        if 0 < k <= len(fids) and np.array_equal(fids[:k], old_fids):  # rows only added
            _, lon, lat, lonlat = _to_lonlat(store, fids[k:], geoms[k:])
            return (
                fids,
                append_rows(old_lon, lon),
                append_rows(old_lat, lat),
                append_rows(old_geoms, np.asarray(lonlat, dtype=object)),
            )
        pos = np.clip(np.searchsorted(old_fids, fids), 0, max(len(old_fids) - 1, 0))
        known = (old_fids[pos] == fids) if len(old_fids) else np.zeros(len(fids), dtype=bool)
        _, lon, lat, lonlat = _to_lonlat(store, fids[~known], geoms[~known])
        out_lon, out_lat = np.empty(len(fids)), np.empty(len(fids))
        out_geoms = np.empty(len(fids), dtype=object)
        out_lon[known], out_lat[known], out_geoms[known] = (
            old_lon[pos[known]],
            old_lat[pos[known]],
            old_geoms[pos[known]],
        )
        out_lon[~known], out_lat[~known], out_geoms[~known] = lon, lat, lonlat
        return fids, out_lon, out_lat, out_geoms

    # kept only when the rows read are of the generation of the key; replaces the layer's
    # older generation (see geo.store.cache.REGIONS)
    return kept.get_or_fill(
        (spec.name, state), fill, lambda: generations(store, spec) == state, wait=not store.writing()
    )


def positions_and_facts(
    store: Store, spec: LayerSpec, tries: int = 5
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, Facts]:
    """:func:`_positions` and :func:`load_facts` of one state of the layer, row for row.

    Each is cached on its own (both per generation of the layer); a commit between the two
    reads leaves them of different states, so they are read again.
    When commits keep landing between them, both are read once more in one
    :meth:`~geo.store.base.Store.snapshot`, uncached.

    Raises
    ------
    StoreError
        They disagree even so (a backend whose snapshot is not one state; the client may ask
        again).
    """
    for _ in range(tries):
        fids, lon, lat, geoms = _positions(store, spec)
        facts = load_facts(store, spec)
        if len(facts.fids) == len(fids) and np.array_equal(facts.fids, fids):
            return fids, lon, lat, geoms, facts
    # Nothing in here waits for a cache fill of another thread (see Store.snapshot).
    with store.snapshot():
        fids, geoms = store.read_geometry(spec)
        facts = read_facts(store, spec)
    fids, lon, lat, geoms = _to_lonlat(store, fids, geoms)
    if len(facts.fids) == len(fids) and np.array_equal(facts.fids, fids):
        return fids, lon, lat, geoms, facts
    raise StoreError(
        "图层正在写入，请稍后重试", "the layer is being written; try again in a moment", code="busy"
    )


# --- the map columns of a layer generation, kept in a file (see geo.figures.mapfile) ------------


def _map_family(spec: LayerSpec) -> tuple[str, str]:
    return ("map", spec.name)


def _map_columns(store: Store, spec: LayerSpec) -> tuple[str, MapColumns] | None:
    """``(generation, map columns)`` of the layer's generation now: kept in the
    process, else from its file, else made from the newest kept or filed generation and the
    rows the change log names (then filed); None when none of these is at hand (or inside a
    write: what it reads may not be committed)."""
    if store.writing():
        return None
    generation = store.layer_generation(spec)
    region = store.cache.region("positions")
    key = (_map_family(spec), generation)

    def fill() -> MapColumns | None:
        cols = mapfile.load(store, spec, generation)
        if cols is None and changes_enabled():
            cols = _follow_map(store, spec, generation)
            if cols is not None:  # filed after the answer: the request does not wait for the write
                _file_later(store, spec, generation, cols)
        return cols

    cols: MapColumns | None = region.get_or_fill(key, fill, lambda: True, wait=True)
    return None if cols is None else (generation, cols)


def _follow_map(store: Store, spec: LayerSpec, generation: str) -> MapColumns | None:
    """The map columns of ``generation`` from those of an older generation (kept in the process,
    else the newest file) and the rows touched since, read in one snapshot with the log."""
    latest = store.cache.region("positions").latest(_map_family(spec))
    start = (
        (str(latest[0][1]), latest[1])  # type: ignore[index]
        if latest is not None and latest[1] is not None
        else mapfile.newest(store, spec)
    )
    if start is None:
        return None
    since, old = start
    with store.snapshot():
        changed = store.changes(spec, since)
        if changed is None or changed.generation != generation:
            return None
        fids, geoms = store.read_geometry_rows(spec, changed.fids)
        table = store.read_table(spec, [spec.status_field], fids=changed.fids) if spec.status_field else None
    if table is not None and not np.array_equal(
        np.asarray(table.column("fid").to_numpy(zero_copy_only=False), dtype=np.int64), fids
    ):
        return None
    new = _columns_of(
        store, spec, fids, geoms, table.column(spec.status_field).combine_chunks() if table else None
    )
    plan = splice(old.fids, changed.fids, new.fids)

    def column(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        out = np.concatenate([a if plan.keeps_all else a[plan.keep], b.astype(a.dtype)])
        return out if plan.order is None else out[plan.order]

    out = mapfile.make(
        plan.fids,
        column(old.lon, new.lon),
        column(old.lat, new.lat),
        column(old.status, new.status),
        column(old.completed, new.completed),
    )
    if plan.keeps_all and plan.order is None:  # rows only added: so are the bins of each view
        _carry_bins(old, new, out)
    return out


_FILING: list[threading.Thread] = []


def _file_later(store: Store, spec: LayerSpec, generation: str, cols: MapColumns) -> None:
    """File ``cols`` (of ``generation``) in a thread of its own, then keep the mapped file's
    columns (with the bins made meanwhile) in their place."""

    def run() -> None:
        filed = mapfile.filed(store, spec, generation, cols)
        if filed is not cols:
            filed.bins.update(cols.bins)
            region = store.cache.region("positions")
            if region.get((_map_family(spec), generation), None) is cols:
                region[(_map_family(spec), generation)] = filed

    thread = threading.Thread(target=run, name=f"map file {spec.name}", daemon=True)
    _FILING[:] = [t for t in _FILING if t.is_alive()] + [thread]
    thread.start()


def wait_for_map_files(timeout: float | None = None) -> None:
    """Wait until the map files being written in the background are written (for tests and
    an orderly stop)."""
    for thread in list(_FILING):
        thread.join(timeout)


def _carry_bins(old: MapColumns, added: MapColumns, into: MapColumns) -> None:
    """Give ``into`` (``old`` with the rows ``added`` after them) the bin sums of ``old``'s views,
    each with the added rows in its box summed after the others."""
    for key, sums in list(old.bins.items()):
        zoom, west, south, east, north = key
        at = np.flatnonzero(
            (added.lon >= west) & (added.lon <= east) & (added.lat >= south) & (added.lat <= north)
        )
        into.bins[key] = _add_to_bins(
            sums, added.lon[at], added.lat[at], added.completed[at], added.status[at].astype(np.int64), zoom
        )


def _rows_of(
    store: Store, spec: LayerSpec, generation: str, cols: MapColumns, at: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, Facts] | None:
    """``(fid, lon, lat, geometry in lon/lat, facts)`` of the rows ``at`` of the map columns
    ``cols`` (of ``generation``), read by fid in one snapshot (see :func:`_positions`); None
    when the layer is no longer at that generation (then the caller reads it in full)."""
    want = np.asarray(cols.fids[at], dtype=np.int64)
    with store.snapshot():
        if store.layer_generation(spec) != generation:
            return None
        fids, geoms = store.read_geometry_rows(spec, want)
        facts = facts_of_rows(store, spec, want)
    if not (np.array_equal(fids, want) and np.array_equal(facts.fids, want)):
        return None
    got, lon, lat, lonlat = _to_lonlat(store, fids, geoms)
    if len(got) != len(want):
        return None
    return want, lon, lat, lonlat, facts


def _columns_of(
    store: Store, spec: LayerSpec, fids: np.ndarray, geoms: np.ndarray, status: pa.Array | None
) -> MapColumns:
    """The map columns of rows ``fids`` with their ``geoms`` (store CRS) and stored ``status``."""
    _, lon, lat, _ = _to_lonlat(store, fids, geoms)
    if not len(lon):
        lon = lat = np.full(len(fids), np.nan)
    return _columns_from(spec, fids, lon, lat, status, _completed(spec, status, len(fids)))


def _completed(spec: LayerSpec, status: pa.Array | None, n: int) -> np.ndarray:
    """Whether each stored ``status`` counts as completed (as :mod:`geo.figures.facts` says)."""
    if status is None:
        return np.zeros(n, dtype=bool)
    value_set = pa.array(sorted(spec.completed_statuses), type=pa.string())
    return np.asarray(
        pc.fill_null(pc.is_in(status, value_set=value_set), False).to_numpy(zero_copy_only=False)
    )


def _columns_from(
    spec: LayerSpec,
    fids: np.ndarray,
    lon: np.ndarray,
    lat: np.ndarray,
    status: pa.Array | None,
    completed: np.ndarray,
) -> MapColumns:
    return mapfile.make(
        fids,
        lon,
        lat,
        _status_index(spec, status, np.arange(len(fids)), None),
        np.asarray(completed, dtype=bool),
    )


def _file_map_columns(
    store: Store,
    spec: LayerSpec,
    generation: str,
    fids: np.ndarray,
    lon: np.ndarray,
    lat: np.ndarray,
    facts: Facts,
) -> None:
    """Keep (and file) the map columns of the layer read in full, when they are of
    ``generation`` (read before them) and the layer is still at it."""
    if store.writing() or store.layer_generation(spec) != generation:
        return
    region = store.cache.region("positions")
    key = (_map_family(spec), generation)
    if region.get(key, None) is not None:
        return
    region[key] = mapfile.filed(
        store, spec, generation, _columns_from(spec, fids, lon, lat, facts.status, facts.completed)
    )


def _to_lonlat(
    store: Store, fids: np.ndarray, geoms: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(fid, lon, lat, geometry in lon/lat)`` of ``geoms`` in the store CRS; when all of them
    are points, their geometries None (see :func:`_lonlat_geoms`)."""
    srs = store.srs_epsg()
    if len(fids) == 0 or srs is None:
        empty = np.empty(0)
        return np.empty(0, dtype=np.int64), empty, empty, np.empty(0, dtype=object)
    t = crsmod.transformer(pyproj.CRS.from_epsg(srs), pyproj.CRS.from_epsg(4326))
    if _plain_points(geoms):
        # a point is its own point on the surface: project the coordinates only; the points
        # in lon/lat are made for the features a viewport sends (see _lonlat_geoms)
        xy = shapely.get_coordinates(geoms)
        lon, lat = (np.asarray(v, dtype=float) for v in t.transform(xy[:, 0], xy[:, 1]))
        return fids, lon, lat, np.empty(len(fids), dtype=object)
    lonlat = shapely.transform(geoms, lambda xy: np.column_stack(t.transform(xy[:, 0], xy[:, 1])))
    points = shapely.point_on_surface(lonlat)
    return fids, shapely.get_x(points), shapely.get_y(points), lonlat


def _lonlat_geoms(geoms: np.ndarray, lon: np.ndarray, lat: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """The geometries in lon/lat of the rows ``idx`` of :func:`_positions`: a point is kept
    there only as its ``lon``/``lat`` (None in ``geoms``) and made here; a row without a
    geometry (None, and no position) stays None."""
    out = np.array(geoms[idx], dtype=object)
    at = np.asarray(idx)
    made = shapely.is_missing(out) & ~np.isnan(lon[at])
    if made.any():
        out[made] = shapely.points(lon[at][made], lat[at][made])
    return out


def _plain_points(geoms: np.ndarray) -> bool:
    """Whether every one of ``geoms`` is a non-empty two-dimensional point."""
    return bool(
        len(geoms)
        and np.all(shapely.get_type_id(geoms) == shapely.GeometryType.POINT)
        and not np.any(shapely.is_empty(geoms))
        and not np.any(shapely.has_z(geoms))
    )


def _shift(lon: np.ndarray, lat: np.ndarray, gcj02: bool) -> tuple[np.ndarray, np.ndarray]:
    if not gcj02:
        return lon, lat
    return wgs84_to_gcj02(lon, lat)


def _shift_geoms(geoms: np.ndarray, gcj02: bool) -> np.ndarray:
    if not gcj02 or len(geoms) == 0:
        return geoms
    return shapely.transform(geoms, lambda xy: np.column_stack(wgs84_to_gcj02(xy[:, 0], xy[:, 1])))


def _view_box(bbox: BBox, gcj02: bool) -> BBox:
    """The box in WGS84 when the map speaks GCJ-02 (the offset is under a kilometre)."""
    if not gcj02:
        return bbox
    lon, lat = gcj02_to_wgs84(np.array([bbox.west, bbox.east]), np.array([bbox.south, bbox.north]))
    return BBox(float(lon[0]), float(lat[0]), float(lon[1]), float(lat[1]))


def _round(v: float) -> float:
    return round(float(v), 7)


def features_in_view(
    store: Store,
    layer: str,
    bbox: BBox,
    zoom: int,
    statuses: tuple[str, ...] | None = None,
    as_of: str | date | None = None,
    unit: str | None = None,
    gcj02: bool = False,
    max_features: int = 1500,
    detail: bool = False,
    within: str | None = None,
    units: frozenset[str] | None = None,
) -> dict[str, Any]:
    """Survey features of ``layer`` in ``bbox`` as GeoJSON (lon/lat).

    Parameters
    ----------
    zoom : int
        Web-map zoom level; decides the aggregation bin size.
    statuses : tuple of str, optional
        Only these status codes.
    as_of : str or date, optional
        Each feature as the tallies count it at the end of this day (any form
        :func:`geo.reading.values.parse_date` reads; see :func:`geo.figures.facts.as_of_state`):
        only features present then; ``completed`` as of then; a feature whose status now
        counts as completed but that was not completed then has the status
        :data:`layers.base.PENDING_CODE` (in clusters too).  ``statuses`` filters on the
        stored status, as the tallies do.
    unit : str, optional
        Only features assigned to this unit grid code (or ``UNASSIGNED``).
    max_features : int
        Up to this many features in view are sent one by one; more are aggregated into
        clusters per ``BIN_PX`` screen bin (counts per status, see :func:`clusters`), unless
        zoom ≥ ``DETAIL_ZOOM``.
    within : str, optional
        Only features in unit grids under this street/community (or grid) code.
    units : frozenset of str, optional
        Only features assigned to these unit grid codes (an account's area).
    detail : bool
        Send every attribute with each feature (for lists), as stored (but ``status``, the
        state drawn, as of ``as_of``); otherwise only
        ``fid``, ``status``, ``completed`` and, when the layer declares a
        ``shape_field``, that field's value (None when empty or outside its vocabulary)
        -- a map asks :func:`feature_detail` on click.

    Returns
    -------
    dict
        A GeoJSON FeatureCollection with ``"aggregated"``, ``"total"`` and ``"as_of"`` (the
        day as ISO text, or None) members.
    """
    spec = get_layer(layer)
    if spec.is_grid:
        raise InputError("网格请用 /api/cells", "use /api/cells for the grid", code="bad_layer")
    view = _view_box(bbox, gcj02)
    day = parse_as_of(as_of)
    if day is None and not statuses and not unit and not within and units is None:
        # what clusters need is in the map columns: no geometry, no attributes read; features
        # sent one by one are read by fid (not for an account bound to an area: the columns
        # hold no units, so its view takes the path below)
        kept = _map_columns(store, spec)
        if kept is not None:
            generation, cols = kept
            codes = [s.code for s in _statuses(spec, None)]
            box = (zoom, view.west, view.south, view.east, view.north)
            sums: _BinSums | None = cols.bins.get(box) if zoom < DETAIL_ZOOM else None
            if sums is None or int(sums.counts.sum()) <= max_features:
                inside = (cols.lon >= view.west) & (cols.lon <= view.east)
                inside &= (cols.lat >= view.south) & (cols.lat <= view.north)
                at = np.flatnonzero(inside)
                if len(at) <= max_features or zoom >= DETAIL_ZOOM:
                    limit = max_features * (2 if zoom >= DETAIL_ZOOM else 1)
                    shown = _rows_of(store, spec, generation, cols, at[:limit])
                    if shown is not None:
                        m = len(shown[0])
                        none = np.zeros(m, dtype=bool)
                        return _one_by_one(
                            store,
                            spec,
                            shown[:4],
                            shown[4],
                            shown[4].completed,
                            none,
                            np.arange(m),
                            len(at),
                            None,
                            zoom,
                            gcj02,
                            detail,
                        )
                    sums = None
                else:
                    sums = _bin_sums(
                        cols.lon[at],
                        cols.lat[at],
                        cols.completed[at],
                        cols.status[at].astype(np.int64),
                        zoom,
                        len(codes) + 1,
                    )
                    if len(cols.bins) < MAP_VIEWS:  # the views asked most: the map pages' first ones
                        cols.bins[box] = sums
            if sums is not None:
                return {
                    "type": "FeatureCollection",
                    "aggregated": True,
                    "total": int(sums.counts.sum()),
                    "as_of": None,
                    "features": _cluster_features(sums, codes, gcj02),
                }
    generation = store.layer_generation(spec)
    fids, lon, lat, geoms, facts = positions_and_facts(store, spec)
    _file_map_columns(store, spec, generation, fids, lon, lat, facts)
    mask = (lon >= view.west) & (lon <= view.east) & (lat >= view.south) & (lat <= view.north)
    present, completed, pending = as_of_state(facts, day)
    mask &= present
    if statuses and facts.status is not None:
        wanted = pa.array(list(statuses), type=pa.string())
        mask &= pc.fill_null(pc.is_in(facts.status, value_set=wanted), False).to_numpy(zero_copy_only=False)
    if unit:
        mask &= pc.fill_null(pc.equal(facts.unit, unit), False).to_numpy(zero_copy_only=False)
    if within:
        grids = pa.array(_grids_under(store, within), type=pa.string())
        mask &= pc.fill_null(pc.is_in(facts.unit, value_set=grids), False).to_numpy(zero_copy_only=False)
    if units is not None:
        area = pa.array(sorted(units), type=pa.string())
        mask &= pc.fill_null(pc.is_in(facts.unit, value_set=area), False).to_numpy(zero_copy_only=False)
    idx = np.flatnonzero(mask)
    total = len(idx)
    as_of_text = None if day is None else str(day)
    if total > max_features and zoom < DETAIL_ZOOM:
        states = _statuses(spec, day)
        return {
            "type": "FeatureCollection",
            "aggregated": True,
            "total": total,
            "as_of": as_of_text,
            "features": clusters(
                lon[idx],
                lat[idx],
                completed[idx],
                _status_index(spec, facts.status, idx, pending if PENDING in states else None),
                zoom,
                [s.code for s in states],
                gcj02,
            ),
        }
    idx = idx[: max_features * (2 if zoom >= DETAIL_ZOOM else 1)]
    return _one_by_one(
        store,
        spec,
        (fids, lon, lat, geoms),
        facts,
        completed,
        pending,
        idx,
        total,
        as_of_text,
        zoom,
        gcj02,
        detail,
    )


def _one_by_one(
    store: Store,
    spec: LayerSpec,
    positions: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    facts: Facts,
    completed: np.ndarray,
    pending: np.ndarray,
    idx: np.ndarray,
    total: int,
    as_of_text: str | None,
    zoom: int,
    gcj02: bool,
    detail: bool,
) -> dict[str, Any]:
    """The features ``idx`` of ``positions`` (``fid, lon, lat, geometry``, see :func:`_positions`)
    and ``facts`` (row for row) one by one, as :func:`features_in_view` sends them."""
    fids, lon, lat, geoms = positions
    status = facts.status.take(pa.array(idx)).to_pylist() if facts.status is not None else [None] * len(idx)
    for k in np.flatnonzero(pending[idx]).tolist():  # completed since the as-of day: not yet then
        status[k] = PENDING_CODE
    category = spec.shape_category
    shape: list[str | None] | None = None
    if category is not None and facts.shape is not None:
        # -1 (empty or unknown) picks the trailing None
        codes = np.array([*(v.code for v in category.values), None], dtype=object)
        shape = codes[facts.shape[idx]].tolist()
    shown = _shift_geoms(_lonlat_geoms(geoms, lon, lat, idx), gcj02)
    if zoom < 15 and len(shown):  # polygons smaller than a pixel: send their point
        shown = np.where(np.isin(shapely.get_type_id(shown), (3, 6)), shapely.point_on_surface(shown), shown)
    details = _attributes(store, spec, fids[idx]) if detail else None
    is_point = np.asarray(shapely.get_type_id(shown) == 0, dtype=bool)
    points_only = np.array([g if p else None for g, p in zip(shown, is_point, strict=True)], dtype=object)
    xs: list[float] = np.round(shapely.get_x(points_only), 7).tolist() if len(shown) else []
    ys: list[float] = np.round(shapely.get_y(points_only), 7).tolist() if len(shown) else []
    done = completed[idx].tolist()
    features = []
    for k, (fid, geom) in enumerate(zip(fids[idx].tolist(), shown, strict=True)):
        props: dict[str, Any] = {"fid": fid, "status": status[k], "completed": bool(done[k])}
        if category is not None and shape is not None:
            props[category.field] = shape[k]
        if details is not None:
            props.update(details.get(fid, {}))
            props["status"] = status[k]  # the state drawn (as of the day), over a stored field of that name
        geometry = {"type": "Point", "coordinates": [xs[k], ys[k]]} if is_point[k] else _mapping(geom)
        features.append({"type": "Feature", "id": fid, "geometry": geometry, "properties": props})
    return {
        "type": "FeatureCollection",
        "aggregated": False,
        "total": total,
        "as_of": as_of_text,
        "features": features,
    }


def _grids_under(store: Store, code: str) -> list[str]:
    """Unit-grid codes under ``code`` (a district, street, community or grid code)."""
    hier = load_hierarchy(store)
    g = hier.grid
    inside = g["code"] == code
    for level in hier.level_names[1:]:
        inside |= g[hier.code_column(level)] == code
    if not inside.any():
        raise InputError(f"找不到单元: {code}", f"no unit with code {code}", code="unknown_unit")
    return [str(c) for c in g.loc[inside, "code"]]


def _mapping(geom: Any) -> dict[str, Any]:
    """GeoJSON geometry with coordinates rounded to 1e-7 degrees (about a centimetre)."""
    return json.loads(shapely.to_geojson(shapely.set_precision(geom, 1e-7)))


def _attributes(store: Store, spec: LayerSpec, fids: np.ndarray) -> dict[int, dict[str, Any]]:
    rows = store.read_rows(spec, fids)
    out: dict[int, dict[str, Any]] = {}
    for row in rows.to_dict("records"):
        fid = int(row.pop("fid"))
        clean = {
            str(k): (None if v is None or (isinstance(v, float) and math.isnan(v)) else v)
            for k, v in row.items()
        }
        clean["unit"] = clean.pop("gw_unit", None)
        out[fid] = clean
    return out


def feature_detail(
    store: Store, layer: str, fid: int, gcj02: bool = False, units: frozenset[str] | None = None
) -> dict[str, Any]:
    """One feature with all its attributes, its unit and its geometry (lon/lat).  ``fid`` is the
    feature's stable id or the fid of its current row version (:func:`geo.edits.ids.find_feature`);
    the answer's ``id`` and ``properties.id`` are the stable id, ``properties.version`` its
    version (what an edit sends back), ``properties.fid`` the current row's fid.  With ``units``
    (an account's area) a feature assigned to another unit is not found, as if it did not exist
    (404)."""
    spec = get_layer(layer)
    found = find_feature(store, spec, int(fid))
    row = -1 if found is None else int(found["fid"])
    attrs = _attributes(store, spec, np.array([row], dtype=np.int64)) if found is not None else {}
    if found is None or row not in attrs or (units is not None and attrs[row].get("unit") not in units):
        raise NotFound(f"要素 {fid} 不存在", f"feature {fid} not found", code="feature_not_found")
    assert found is not None
    fids, lon, lat, geoms = _positions(store, spec)
    at = int(np.searchsorted(fids, row))
    geom = _shift_geoms(_lonlat_geoms(geoms, lon, lat, np.arange(at, at + 1)), gcj02)[0]
    ident = int(found["id"])
    return {
        "type": "Feature",
        "id": ident,
        "geometry": _mapping(geom),
        "properties": {"id": ident, "version": int(found["version"]), "fid": row, **attrs[row]},
    }


def _statuses(spec: LayerSpec, day: np.datetime64 | None) -> tuple[Status, ...]:
    """The states a map of ``spec`` draws: its statuses and, as of a day, :data:`PENDING`."""
    return spec.all_statuses if day is None or not spec.completed_statuses else (*spec.all_statuses, PENDING)


def _status_index(
    spec: LayerSpec, status: pa.Array | None, idx: np.ndarray, pending: np.ndarray | None = None
) -> np.ndarray:
    """Index of each feature ``idx``'s status in ``spec.all_statuses``; ``len(all_statuses)``
    for a feature without a status (or of a layer without a status field).  A stored code
    outside the vocabulary counts as unrecognised.  Where ``pending`` (over all features)
    holds, the index is ``len(all_statuses)`` -- :data:`PENDING`'s place in
    :func:`_statuses` -- and a feature without a status is one further on."""
    declared = [s.code for s in spec.all_statuses]
    none = len(declared)
    if pending is not None:
        none += 1
    if status is None or not len(idx):
        return np.full(len(idx), none, dtype=np.int64)
    picked = status.take(pa.array(idx))
    at = pc.index_in(picked, value_set=pa.array(declared, type=pa.string()))
    out = pc.fill_null(at, none).to_numpy(zero_copy_only=False).astype(np.int64)
    if UNRECOGNISED_CODE in declared:
        stray = pc.and_(pc.is_valid(picked), pc.is_null(at)).to_numpy(zero_copy_only=False)
        out[stray] = declared.index(UNRECOGNISED_CODE)
    if pending is not None:
        out[pending[idx]] = len(declared)
    return out


def clusters(
    lon: np.ndarray,
    lat: np.ndarray,
    completed: np.ndarray,
    status: np.ndarray,
    zoom: int,
    codes: list[str],
    gcj02: bool = False,
) -> list[dict[str, Any]]:
    """Points aggregated into square bins ``BIN_PX`` screen pixels wide at web-map ``zoom``.

    Parameters
    ----------
    lon, lat : numpy.ndarray
        Point positions in degrees (EPSG:4326).
    completed : numpy.ndarray of bool
        Whether each point counts as completed.
    status : numpy.ndarray of int
        Index of each point's status in ``codes``; ``len(codes)`` for a point without one.
    zoom : int
        Web-map zoom level; a bin is ``BIN_PX`` pixels (of 256 per tile) of longitude wide.
    codes : list of str
        The status codes (the layer's declared statuses, unrecognised included).
    gcj02 : bool
        Shift the cluster centres to GCJ-02.

    Returns
    -------
    list of dict
        One GeoJSON point feature per non-empty bin, at the mean of its points, with
        ``count``, ``completed`` and ``statuses``: ``[{"status": code or None, "count": n}]``
        for each status present, in the order of ``codes`` then None; the counts sum to
        ``count``.
    """
    if not len(lon):
        return []
    return _cluster_features(_bin_sums(lon, lat, completed, status, zoom, len(codes) + 1), codes, gcj02)


@dataclass(frozen=True)
class _BinSums:
    """Points summed per ``BIN_PX`` bin at one zoom: each bin's column ``ix`` and row ``iy``
    (absolute: the bin of longitude ``ix * size``), in (column, row) order, the sums of its
    points' ``lon`` and ``lat`` (added in the points' order), its ``counts``, ``done`` (completed)
    and ``mix`` (points per status index, ``width`` columns)."""

    ix: np.ndarray
    iy: np.ndarray
    lon: np.ndarray
    lat: np.ndarray
    counts: np.ndarray
    done: np.ndarray
    mix: np.ndarray

    def cache_bytes(self) -> int:
        return int(sum(getattr(self, f).nbytes for f in ("ix", "iy", "lon", "lat", "counts", "done", "mix")))


def _bin_of(lon: np.ndarray, lat: np.ndarray, zoom: int) -> tuple[np.ndarray, np.ndarray]:
    size = 360.0 / (256 * 2**zoom) * BIN_PX  # degrees of longitude per bin
    return np.floor(lon / size).astype(np.int64), np.floor(lat / size).astype(np.int64)


def _bin_sums(
    lon: np.ndarray, lat: np.ndarray, completed: np.ndarray, status: np.ndarray, zoom: int, width: int
) -> _BinSums:
    """The :class:`_BinSums` of the points (see :func:`clusters`)."""
    ix, iy = _bin_of(lon, lat, zoom)
    x0, y0 = ix.min(), iy.min()
    inverse, counts = _bins(ix - x0, iy - y0)
    first = np.zeros(len(counts), dtype=np.int64)
    first[inverse[::-1]] = np.arange(len(inverse))[::-1]  # a point of each bin
    return _BinSums(
        ix[first],
        iy[first],
        np.bincount(inverse, weights=lon),
        np.bincount(inverse, weights=lat),
        counts,
        np.bincount(inverse, weights=completed.astype(float)).astype(np.int64),
        np.bincount(inverse * width + status, minlength=len(counts) * width).reshape(len(counts), width),
    )


def _bin_key(ix: np.ndarray, iy: np.ndarray) -> np.ndarray:
    """One integer per bin, in (column, row) order (bins are at most 2**22 across the globe)."""
    return ix * (1 << 32) + (iy + (1 << 31))


def _add_to_bins(
    sums: _BinSums, lon: np.ndarray, lat: np.ndarray, completed: np.ndarray, status: np.ndarray, zoom: int
) -> _BinSums:
    """``sums`` with the points given added after those summed (the sums are those
    :func:`_bin_sums` gives for all of them in that order: each bin's sums go on one point
    after the other)."""
    if not len(lon):
        return sums
    ix, iy = _bin_of(lon, lat, zoom)
    old = _bin_key(sums.ix, sums.iy)
    keys = np.concatenate([old, _bin_key(ix, iy)])
    every, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    n = len(every)
    width = sums.mix.shape[1]
    at_old, at_new = inverse[: len(old)], inverse[len(old) :]
    bx = np.concatenate([sums.ix, ix])[first]
    by = np.concatenate([sums.iy, iy])[first]
    sx, sy = np.zeros(n), np.zeros(n)
    sx[at_old], sy[at_old] = sums.lon, sums.lat
    np.add.at(sx, at_new, lon)  # in order, one point after the other
    np.add.at(sy, at_new, lat)
    counts = np.zeros(n, dtype=np.int64)
    counts[at_old] = sums.counts
    np.add.at(counts, at_new, 1)
    done = np.zeros(n, dtype=np.int64)
    done[at_old] = sums.done
    np.add.at(done, at_new, completed.astype(np.int64))
    mix = np.zeros((n, width), dtype=np.int64)
    mix[at_old] = sums.mix
    np.add.at(mix, (at_new, status), 1)
    return _BinSums(bx, by, sx, sy, counts, done, mix)


def _cluster_features(sums: _BinSums, codes: list[str], gcj02: bool) -> list[dict[str, Any]]:
    """The cluster features of ``sums`` (see :func:`clusters`)."""
    sx = sums.lon / sums.counts
    sy = sums.lat / sums.counts
    names: list[str | None] = [*codes, None]
    sx, sy = _shift(sx, sy, gcj02)
    return [
        {
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": [_round(x), _round(y)]},
            "properties": {
                "count": int(c),
                "completed": int(d),
                "statuses": [{"status": names[k], "count": n} for k, n in enumerate(row) if n],
            },
        }
        for x, y, c, d, row in zip(
            sx.tolist(), sy.tolist(), sums.counts.tolist(), sums.done.tolist(), sums.mix.tolist(), strict=True
        )
    ]


def _bins(ix: np.ndarray, iy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The bin of each point from its bin column ``ix`` and row ``iy`` (both from 0), numbered
    in (column, row) order over the bins holding a point, and the points in each bin -- what
    ``np.unique(key, return_inverse=True, return_counts=True)`` gives.  When the bins of the
    box the points span are not many more than the points, they are counted in one pass
    (no sort of the points); else the keys are sorted."""
    rows = int(iy.max()) + 1
    span = (int(ix.max()) + 1) * rows
    if span <= max(4 * len(ix), 1 << 16):
        key = ix * rows + iy
        per_bin = np.bincount(key, minlength=span)
        held = per_bin > 0
        number = np.cumsum(held) - 1  # each held bin's number, in key order
        return number[key], per_bin[held]
    # one integer per bin (bins are at most 2**22 across the globe), so a flat unique does
    _, inverse, counts = np.unique(ix * (1 << 32) + iy, return_inverse=True, return_counts=True)
    return inverse.ravel(), counts


def cells_in_view(
    store: Store,
    level: str,
    bbox: BBox | None,
    zoom: int,
    layer: str | None = None,
    as_of: str | date | None = None,
    within: str | None = None,
    gcj02: bool = False,
    max_units: int = 2500,
    known_at: str | None = None,
    grid: str | int | None = None,
    units: frozenset[str] | None = None,
) -> dict[str, Any]:
    """Unit outlines of ``level`` in ``bbox`` with their figures, as GeoJSON (lon/lat).

    With ``units`` (an account's area) only the units of ``level`` holding one of those unit
    grids, and only the features assigned to them, count.

    Outlines and figures are those of the grid version the figures are counted on (in force
    on ``as_of``, or ``grid``), as known at ``known_at`` (see :func:`geo.figures.tally.tally`).
    Outlines are simplified to about a pixel at ``zoom``.  When more than ``max_units``
    units are in view the collection is empty and ``too_many`` says how many there were,
    so the map can ask for a coarser level.
    """
    check_level(level)
    as_of = parse_date(as_of)  # one cache entry per day, however it was written
    seen = resolve_view(store, as_of, known_at, grid)
    version = seen.version if seen.grid != "in_force" else choose_version(seen, parse_as_of(as_of))
    counted = survey_specs([layer] if layer else None)
    state = generations(store, *counted, grid_spec(), targets=True)
    area = None if units is None else tuple(sorted(units))
    key = ((level, layer, as_of, within, area, seen.tx, None if version is None else version.id), state)

    region = store.cache.region("cell_tables")

    def fill() -> CellTable:
        table = tally(
            store,
            level,
            [layer] if layer else None,
            as_of,
            Filters(within=within, units=units) if within or units is not None else None,
            view=seen,
        )
        # the same view of an older generation of the layers counted, on the same grid: only
        # the units whose figures changed get their properties made again
        latest = region.latest(key[0]) if changes_enabled() else None
        if latest is not None and latest[0][1][len(counted)] == state[len(counted)]:  # type: ignore[index]
            updated = _update_view_table(latest[1], table)
            if updated is not None:
                return updated
        return _view_table(store, level, table, version)

    # kept only when no write to what it counts landed while it was computed
    view_table = region.get_or_fill(
        key,
        fill,
        lambda: generations(store, *counted, grid_spec(), targets=True) == state,
        wait=not store.writing(),
    )
    geo, codes, records = view_table.geo, view_table.codes, view_table.records
    hits = np.arange(len(geo))
    if bbox is not None:
        view = _view_box(bbox, gcj02)
        hits = np.sort(
            geo.sindex.query(
                shapely.box(view.west, view.south, view.east, view.north), predicate="intersects"
            )
        )
    if len(hits) > max_units:
        return {"type": "FeatureCollection", "features": [], "too_many": len(hits), "level": level}
    shown = [codes[i] for i in hits.tolist()]
    outlines = _outlines(store, level, zoom, gcj02, shown, version)
    features = [
        {"type": "Feature", "id": code, "geometry": outline, "properties": records[i]}
        for i, code, outline in zip(hits.tolist(), shown, outlines, strict=True)
    ]
    return {"type": "FeatureCollection", "features": features, "level": level}


@dataclass(frozen=True)
class CellTable:
    """The units a map can show of one view and what it shows of each, in the same order:
    ``geo`` (outlines with a spatial index), ``codes``, ``records`` (the properties of each
    unit) and ``values`` (the tally columns the records were made from, to find which units
    a newer tally changed)."""

    geo: Any
    codes: list[str]
    records: list[dict[str, Any]]
    values: pd.DataFrame


def _shown_columns(columns: Any) -> list[str]:
    """The tally columns a map draws and shows on hover (the full row is one /api/stats away)."""
    return [
        c
        for c in columns
        if c in ("name", "parent_name")
        or "_completed" in c
        or c.endswith(("_total", "_rate", "_progress", "_target"))
    ]


def _records(codes: list[Any], values: pd.DataFrame) -> list[dict[str, Any]]:
    """The properties of the units ``codes`` from their rows of ``values`` (None for NaN)."""
    columns: list[list[Any]] = []
    for name in values.columns:
        array = values[name].to_numpy()
        column = array.tolist()  # Python ints, floats and strs (numbers in object columns stay numpy's)
        if array.dtype.kind not in "biu":  # no missing value in an integer or bool column
            missing = np.flatnonzero(np.asarray(pd.isna(array), dtype=bool)).tolist()
            for i in missing:
                column[i] = None
            if array.dtype == object:
                column = [v.item() if hasattr(v, "item") else v for v in column]
        columns.append(column)
    names = ["code", *values.columns]
    return [
        dict(zip(names, (str(code), *row), strict=True))
        for code, row in zip(codes, zip(*columns, strict=True) if columns else [()] * len(codes), strict=True)
    ]


def _shown_rows(table: Any, codes: Any) -> pd.DataFrame:
    """The shown columns of the tally ``table``'s rows of units ``codes``, in that order."""
    rows = table.set_index(table["code"].to_numpy(dtype=object)).loc[codes]
    return rows[_shown_columns(rows.columns)]


def _view_table(store: Store, level: str, table: Any, version: GridVersion | None) -> CellTable:
    """The :class:`CellTable` of the tally ``table`` counted on grid ``version``, computed once
    per revision.  A viewport then only queries the index and picks rows."""
    table = table[table["code"] != UNASSIGNED]
    outlines = unit_geometry(store, level, version)
    wanted_codes = set(table["code"].astype(str).tolist())  # (np.isin on object arrays is quadratic)
    geo = outlines[
        np.fromiter((str(c) in wanted_codes for c in outlines.index), dtype=bool, count=len(outlines))
    ]
    order = geo.index.to_numpy(dtype=object)
    values = _shown_rows(table, order)
    geo.sindex  # noqa: B018 -- built here, once, rather than by the first viewport
    return CellTable(geo, [str(c) for c in order.tolist()], _records(order.tolist(), values), values)


def _update_view_table(old: CellTable, table: Any) -> CellTable | None:
    """The :class:`CellTable` of the tally ``table`` made from ``old``, the same view's table
    of an older generation of the layers counted on the same grid: the records of the units
    whose shown figures are unchanged are kept, the others made again -- so a commit of k
    features makes at most k records, not one per unit.  None when the tally's units or
    columns are not those of ``old`` (then it is made in full)."""
    table = table[table["code"] != UNASSIGNED]
    if len(table) < len(old.codes) or _shown_columns(table.columns) != list(old.values.columns):
        return None
    index = table["code"].to_numpy(dtype=object)
    at = pd.Index(index).get_indexer(np.asarray(old.codes, dtype=object))
    if (at < 0).any():
        return None
    values = table[list(old.values.columns)].iloc[at].set_axis(old.values.index)
    changed = np.zeros(len(at), dtype=bool)
    for column in values.columns:
        if values[column].dtype != old.values[column].dtype:
            return None
        a, b = values[column].to_numpy(), old.values[column].to_numpy()
        same = pd.isna(a) & pd.isna(b)
        same |= np.asarray(a == b, dtype=bool) & ~pd.isna(a)
        changed |= ~same
    records = list(old.records)
    where = np.flatnonzero(changed)
    if len(where):
        fresh = _records([old.codes[i] for i in where.tolist()], values.iloc[where])
        for i, record in zip(where.tolist(), fresh, strict=True):
            records[i] = record
    return CellTable(old.geo, old.codes, records, values)


def _outlines(
    store: Store, level: str, zoom: int, gcj02: bool, codes: list[str], version: GridVersion | None = None
) -> list[Any]:
    """GeoJSON geometry of the units ``codes`` of ``level`` (on grid ``version``), simplified
    for ``zoom`` (about a pixel).  Computed for the units asked and kept per grid generation
    (units change only with the grid), so panning over known ground costs nothing."""
    key = (store.layer_generation(grid_spec()), level, zoom, gcj02, None if version is None else version.id)
    region = store.cache.region("outlines")
    known: dict[str, Any] = region.setdefault(key, {})
    missing = [c for c in codes if c not in known]
    if missing:
        geo = unit_geometry(store, level, version)
        px = 360.0 / (256 * 2**zoom)  # degrees per screen pixel
        shapes = shapely.simplify(
            np.asarray(geo.loc[missing].values, dtype=object), px, preserve_topology=True
        )
        shapes = shapely.set_precision(_shift_geoms(shapes, gcj02), px / 4, mode="pointwise")
        texts = shapely.to_geojson(shapes).tolist()
        for code, text in zip(missing, texts, strict=True):
            known[code] = json.loads(text)
        # filled in place: counted as about four times its text (dicts and lists of floats)
        region.grow(key, sum(4 * len(t) + 100 for t in texts))
    return [known[c] for c in codes]
