"""What a staged upload would add, for a small preview map: each preview keeps the accepted
features in lon/lat beside the file (:func:`keep_features`), so that :func:`features` can
hand a map what the upload would add without reading the file a second time."""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.feather as feather
import pyproj
import shapely

from geo.figures.versions import load_grid
from geo.imports.report import PreparedImport
from geo.imports.upload_folder import locked
from geo.imports.uploads import prepare_staged, read_settings, staged_folder
from geo.reading import crs as crsmod
from geo.reading.gcj02 import wgs84_to_gcj02
from geo.store.base import Store
from layers.base import UNASSIGNED

#: The accepted features of the last preview, in lon/lat (see :func:`features`).
FEATURES_FILE = "features.arrow"

#: At most this many features are sent to a preview map; more are thinned to an even sample.
PREVIEW_MAX_FEATURES = 5000
#: When more polygons and lines than this are sent, each is sent as a point on its surface.
PREVIEW_MAX_SHAPES = 1000
#: Vertex budget of the simplified polygons and lines sent; over it they are sent as points too.
PREVIEW_MAX_VERTICES = 100_000


def keep_features(folder: Path, prepared: PreparedImport) -> pa.Table:
    """Keep the accepted features of ``prepared`` beside the staged file, in lon/lat
    (EPSG:4326; CGCS2000 is taken as WGS84, centimetres apart), with their unit grid."""
    geoms = np.asarray(prepared.rows.geometry, dtype=object)
    if len(geoms):
        t = crsmod.transformer(pyproj.CRS.from_epsg(prepared.srs_epsg), pyproj.CRS.from_epsg(4326))
        geoms = shapely.transform(geoms, lambda xy: np.column_stack(t.transform(xy[:, 0], xy[:, 1])))
    units = [None if u is None else str(u) for u in prepared.rows.units]
    table = pa.table(
        {
            "wkb": pa.array(list(shapely.to_wkb(geoms)), type=pa.binary()),
            "unit": pa.array(units, type=pa.string()),
        }
    )
    part = folder / f".{FEATURES_FILE}.{secrets.token_hex(4)}"
    feather.write_feather(table, part)
    os.replace(part, folder / FEATURES_FILE)  # another process never reads half a file
    return table


def features(
    store: Store,
    data_dir: Path,
    upload_id: str,
    *,
    max_features: int = PREVIEW_MAX_FEATURES,
    max_shapes: int = PREVIEW_MAX_SHAPES,
    max_vertices: int = PREVIEW_MAX_VERTICES,
    gcj02: bool = False,
) -> dict[str, Any]:
    """The features a staged upload would add, as GeoJSON for a small preview map.

    Parameters
    ----------
    store : Store
        The store the upload would go into; its unit grid gives ``grid_bbox``.
    data_dir : path
        The data directory holding the staged uploads.
    upload_id : str
        As returned by :func:`geo.imports.uploads.stage`.
    max_features : int
        At most this many features are sent; from more, an even sample (every k-th in file
        order) keeps the picture of where they lie.
    max_shapes : int
        When more polygons and lines than this are sent, each is sent as a point on its
        surface; otherwise they are simplified to about 1/4000 of the data's extent.
    max_vertices : int
        When the simplified polygons and lines still hold more vertices than this, they
        are sent as points too.
    gcj02 : bool
        Shift coordinates to GCJ-02, to line up with Gaode/Tencent base maps.

    Returns
    -------
    dict
        A GeoJSON FeatureCollection in lon/lat degrees (EPSG:4326, or GCJ-02 with
        ``gcj02``).  Each feature's properties: ``inside`` (it fell inside a unit grid) and
        ``unit`` (that grid's code, else None).  Members: ``total`` (accepted features),
        ``sent``, ``inside`` and ``outside`` (counts over all accepted features),
        ``as_points`` (polygons and lines sent as points), ``bbox`` of all accepted
        features and ``grid_bbox`` of the store's unit grid, each ``[west, south, east,
        north]`` or None.

    Raises
    ------
    NotFound
        No such staged upload.
    InputError
        The upload cannot be read with its current settings (as for :func:`geo.imports.upload_review.preview`).
    UploadBusy
        The upload is being received, read again, committed or discarded.
    """
    folder = staged_folder(data_dir, upload_id)
    with locked(folder, upload_id, "features", shared=True):
        params = read_settings(folder, upload_id)
        try:
            table = feather.read_table(folder / FEATURES_FILE)
        except FileNotFoundError:  # staged before features were kept, or they could not be
            table = keep_features(folder, prepare_staged(store, folder, params))
    geoms = shapely.from_wkb(table.column("wkb").to_numpy(zero_copy_only=False))
    units = np.asarray(table.column("unit").to_pylist(), dtype=object)
    inside = np.asarray(units != UNASSIGNED, dtype=bool) & np.asarray([u is not None for u in units])
    total = len(geoms)
    if total > max_features:
        idx = (np.arange(max_features, dtype=np.int64) * total) // max_features
    else:
        idx = np.arange(total, dtype=np.int64)
    bbox = _bounds(geoms)
    shown = np.array(geoms[idx], dtype=object)
    shapes = ~np.isin(shapely.get_type_id(shown), (0, 4))  # anything but (multi)points
    as_points = bool(shapes.sum() > max_shapes)
    if shapes.any() and not as_points and bbox is not None:
        tolerance = max(bbox[2] - bbox[0], bbox[3] - bbox[1]) / 4000
        simplified = shapely.simplify(shown[shapes], tolerance, preserve_topology=True)
        as_points = int(shapely.get_num_coordinates(simplified).sum()) > max_vertices
        shown[shapes] = simplified
    if as_points:
        shown[shapes] = shapely.point_on_surface(shown[shapes])
    if gcj02 and len(shown):
        shown = shapely.transform(shown, _to_gcj02)
    if len(shown):
        shown = shapely.transform(shown, lambda xy: np.round(xy, 7))  # about a centimetre
    out = [
        {
            "type": "Feature",
            "geometry": json.loads(text),
            "properties": {"inside": bool(ins), "unit": unit if ins else None},
        }
        for text, ins, unit in zip(
            shapely.to_geojson(shown).tolist(), inside[idx].tolist(), units[idx].tolist(), strict=True
        )
    ]
    n_inside = int(inside.sum())
    return {
        "type": "FeatureCollection",
        "features": out,
        "total": total,
        "sent": len(out),
        "inside": n_inside,
        "outside": total - n_inside,
        "as_points": as_points,
        "bbox": _shift_box(bbox, gcj02),
        "grid_bbox": _shift_box(_grid_bounds(store), gcj02),
    }


def _bounds(geoms: np.ndarray) -> list[float] | None:
    if len(geoms) == 0:
        return None
    box = shapely.total_bounds(geoms)
    return [float(v) for v in box] if np.isfinite(box).all() else None


def _grid_bounds(store: Store) -> list[float] | None:
    """Lon/lat bounds of the store's unit grid, None without one."""
    grid = load_grid(store)
    srs = store.srs_epsg()
    if grid is None or len(grid) == 0 or srs is None:
        return None
    t = crsmod.transformer(pyproj.CRS.from_epsg(srs), pyproj.CRS.from_epsg(4326))
    return [float(v) for v in t.transform_bounds(*shapely.total_bounds(grid.cells))]


def _to_gcj02(xy: np.ndarray) -> np.ndarray:
    return np.column_stack(wgs84_to_gcj02(xy[:, 0], xy[:, 1]))


def _shift_box(box: list[float] | None, gcj02: bool) -> list[float] | None:
    """The box rounded to about a centimetre; with ``gcj02`` both corners are shifted to
    GCJ-02 (the offset varies by metres across a city)."""
    if box is None:
        return None
    corners = np.array([[box[0], box[1]], [box[2], box[3]]], dtype=float)
    if gcj02:
        corners = _to_gcj02(corners)
    return [round(float(v), 7) for v in corners.ravel()]
