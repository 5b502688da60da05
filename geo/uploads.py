"""Uploads waiting for confirmation: the browser sends a file, sees the import report, and
confirms.  The file and the chosen overrides are kept in ``<data>/uploads/<id>/`` so that
any server process (several gunicorn workers) can commit it; committing reads it again
and writes the batch in one transaction.

Each preview also keeps the accepted features in lon/lat beside the file, so that
:func:`features` can hand a small map what the upload would add without reading the
file a second time.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import time
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.feather as feather
import pyproj
import shapely

from geo import crs as crsmod
from geo.errors import InputError, NotFound, StoreError, write_error
from geo.importer import ImportReport, PreparedImport, commit_import, load_grid, prepare_import
from geo.sources import ZipLimits
from geo.store import UNASSIGNED, Store

#: Staged uploads older than this are removed.
MAX_AGE_S = 24 * 3600
_ID = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
#: The accepted features of the last preview, in lon/lat (see :func:`features`).
_FEATURES_FILE = "features.arrow"
#: At most this many features are sent to a preview map; more are thinned to an even sample.
PREVIEW_MAX_FEATURES = 5000
#: When more polygons and lines than this are sent, each is sent as a point on its surface.
PREVIEW_MAX_SHAPES = 1000
#: Vertex budget of the simplified polygons and lines sent; over it they are sent as points too.
PREVIEW_MAX_VERTICES = 100_000


def uploads_dir(data_dir: Path) -> Path:
    return Path(data_dir) / "uploads"


def _safe_name(name: str) -> str:
    """The file's own name without any directory part or characters a file system rejects."""
    base = re.split(r"[\\\\/]", name or "")[-1].strip().strip(".")
    base = re.sub(r'[\x00-\x1f<>:"|?*]', "_", base)
    if not base:
        raise InputError("文件名为空", "the file has no name", code="bad_filename")
    return base[:200]


def stage(
    data_dir: Path,
    filename: str,
    stream: BinaryIO,
    layer: str,
    encoding: str | None = None,
    crs: str | None = None,
    member: str | None = None,
    max_bytes: int | None = None,
    owner: str | None = None,
) -> str:
    """Save an uploaded file for a later preview and commit; returns the upload id.

    ``owner`` (the uploading account) is kept with it: see :func:`owner`."""
    root = uploads_dir(data_dir)
    upload_id = secrets.token_urlsafe(18)
    folder = root / upload_id
    try:
        root.mkdir(parents=True, exist_ok=True)
        _sweep(root)
        folder.mkdir()
    except OSError as exc:
        raise write_error(exc.errno) or StoreError(
            "无法保存上传文件", f"cannot stage the upload: {exc}", code="staging_failed"
        ) from exc
    target = folder / _safe_name(filename)
    written = 0
    try:
        with open(target, "wb") as out:
            while chunk := stream.read(1 << 20):
                written += len(chunk)
                if max_bytes is not None and written > max_bytes:
                    raise InputError("上传文件过大", "the upload is too large", code="too_large")
                out.write(chunk)
    except OSError as exc:
        shutil.rmtree(folder, ignore_errors=True)
        raise write_error(exc.errno) or StoreError(
            "无法保存上传文件", f"cannot stage the upload: {exc}", code="staging_failed"
        ) from exc
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    params = {
        "layer": layer,
        "encoding": encoding or None,
        "crs": crs or None,
        "member": member or None,
        "name": target.name,
        "created": time.time(),
        "owner": owner,
    }
    try:
        (folder / "upload.json").write_text(json.dumps(params, ensure_ascii=False), encoding="utf-8")
    except OSError as exc:
        shutil.rmtree(folder, ignore_errors=True)
        raise write_error(exc.errno) or StoreError(
            "无法保存上传文件", f"cannot stage the upload: {exc}", code="staging_failed"
        ) from exc
    return upload_id


def _load(data_dir: Path, upload_id: str) -> tuple[Path, dict[str, Any]]:
    if not _ID.match(upload_id):
        raise NotFound("上传不存在", f"no upload {upload_id}", code="upload_not_found")
    folder = uploads_dir(data_dir) / upload_id
    meta = folder / "upload.json"
    if not meta.exists():
        raise NotFound(
            "上传不存在或已过期", f"no upload {upload_id} (expired or committed)", code="upload_not_found"
        )
    return folder, json.loads(meta.read_text(encoding="utf-8"))


def preview(
    store: Store, data_dir: Path, upload_id: str, limits: ZipLimits | None = None, **overrides: Any
) -> ImportReport:
    """The import report of a staged upload (nothing is written).  ``overrides`` may change
    ``layer``, ``encoding``, ``crs`` or ``member`` for a re-read; they are kept for the commit."""
    folder, params = _load(data_dir, upload_id)
    changed = {
        k: v for k, v in overrides.items() if k in ("layer", "encoding", "crs", "member") and v is not None
    }
    if changed:
        params.update({k: (v or None) for k, v in changed.items()})
        (folder / "upload.json").write_text(json.dumps(params, ensure_ascii=False), encoding="utf-8")
    (folder / _FEATURES_FILE).unlink(missing_ok=True)  # a failed re-read leaves no stale features
    prepared = _prepare(store, folder, params, limits=limits)
    _keep_features(folder, prepared)
    return prepared.report


def commit(
    store: Store, data_dir: Path, upload_id: str, user: str | None = None, limits: ZipLimits | None = None
) -> ImportReport:
    """Import a staged upload as one batch and remove it from the staging area."""
    folder, params = _load(data_dir, upload_id)
    prepared = _prepare(store, folder, params, user=user, limits=limits)
    report = commit_import(store, prepared, user=user)
    shutil.rmtree(folder, ignore_errors=True)
    return report


def _prepare(
    store: Store,
    folder: Path,
    params: dict[str, Any],
    user: str | None = None,
    limits: ZipLimits | None = None,
) -> PreparedImport:
    return prepare_import(
        store,
        params["layer"],
        folder / params["name"],
        encoding=params["encoding"],
        crs=params["crs"],
        member=params["member"],
        user=user,
        limits=limits,
    )


def _keep_features(folder: Path, prepared: PreparedImport) -> pa.Table:
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
    part = folder / f".{_FEATURES_FILE}.{secrets.token_hex(4)}"
    feather.write_feather(table, part)
    os.replace(part, folder / _FEATURES_FILE)  # another process never reads half a file
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
        As returned by :func:`stage`.
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
        The upload cannot be read with its current settings (as for :func:`preview`).
    """
    folder, params = _load(data_dir, upload_id)
    try:
        table = feather.read_table(folder / _FEATURES_FILE)
    except FileNotFoundError:  # staged before features were kept, or the last re-read failed
        table = _keep_features(folder, _prepare(store, folder, params))
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
    return np.column_stack(crsmod.wgs84_to_gcj02(xy[:, 0], xy[:, 1]))


def _shift_box(box: list[float] | None, gcj02: bool) -> list[float] | None:
    """The box rounded to about a centimetre; with ``gcj02`` both corners are shifted to
    GCJ-02 (the offset varies by metres across a city)."""
    if box is None:
        return None
    corners = np.array([[box[0], box[1]], [box[2], box[3]]], dtype=float)
    if gcj02:
        corners = _to_gcj02(corners)
    return [round(float(v), 7) for v in corners.ravel()]


def owner(data_dir: Path, upload_id: str) -> str | None:
    """The account that uploaded ``upload_id`` (None when uploaded without accounts)."""
    _folder, params = _load(data_dir, upload_id)
    value = params.get("owner")
    return str(value) if value is not None else None


def discard(data_dir: Path, upload_id: str) -> None:
    folder, _ = _load(data_dir, upload_id)
    shutil.rmtree(folder, ignore_errors=True)


def _sweep(root: Path) -> None:
    now = time.time()
    for folder in root.iterdir():
        try:
            if now - folder.stat().st_mtime > MAX_AGE_S:
                shutil.rmtree(folder, ignore_errors=True)
        except OSError:
            continue
