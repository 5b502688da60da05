"""The geometry of an import: the store's projected CRS chosen, every feature checked (empty,
too many vertices, Z, non-finite coordinates, type, coordinates that do not fit the CRS),
projected to the store's CRS and repaired; features far from the grid found."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pyproj
import shapely

from geo.assign import Grid
from geo.errors import CRSError, InputError, TooLarge
from geo.figures.versions import load_grid
from geo.imports.report import ImportReport, RowRejects
from geo.reading import crs as crsmod
from geo.reading.crs_fit import misfit_reason
from geo.reading.datasets import RawTable
from geo.reading.gcj02 import gcj02_to_wgs84
from geo.store.base import Store
from geo.store.interface.features import geometry_type_names
from layers.base import LayerSpec

#: Features farther than this from the grid's extent are rejected as coordinate errors.
FAR_OUTSIDE_M = 20_000.0
#: A feature with more vertices than this is rejected (its row, with the reason): drawing,
#: checking and assigning it would hold up the service for one site or cell.
MAX_FEATURE_VERTICES = 100_000
#: A file with more vertices than this in all is refused as a whole; a shapefile before its
#: geometry is read (its headers give the counts).  Lines and polygons at the limit take about
#: 0.35 GB to import.  (Points count one vertex each, but a row costs about 1 KB however
#: small its geometry: this bounds geometry, not the number of rows.)
MAX_FILE_VERTICES = 5_000_000


def check_file_vertices(total: int, limit: int) -> None:
    """Refuse a file of ``total`` vertices when that is over ``limit``.

    Raises
    ------
    TooLarge
        ``code="too_many_vertices"``.
    """
    if total > limit:
        raise TooLarge(
            f"文件的顶点总数过多（{total:,} 个，上限 {limit:,}），请拆分或简化后再上传",
            f"the file holds too many vertices ({total:,}, limit {limit:,}): split or simplify it",
            code="too_many_vertices",
        )


def store_lon(store: Store) -> float | None:
    """The longitude (degrees, CGCS2000) of the middle of ``store``'s grid; None without a grid.

    A hint for reading coordinates without a CRS: the central meridian of 3-degree
    Gauss-Krüger coordinates written without their zone."""
    grid = load_grid(store)
    srs = store.srs_epsg()
    if grid is None or srs is None or len(grid) == 0:
        return None
    minx, miny, maxx, maxy = shapely.total_bounds(grid.cells)
    t = crsmod.transformer(pyproj.CRS.from_epsg(srs), pyproj.CRS.from_epsg(4490))
    lon, _ = t.transform((minx + maxx) / 2, (miny + maxy) / 2)
    return float(lon)


def choose_srs(raw: RawTable) -> int:
    """EPSG code of the projected CRS for a new store (metres).

    The first file's own zone when it is in CGCS2000 3-degree Gauss-Krüger (written
    without the zone prefix); otherwise the 3-degree zone whose central meridian is
    nearest the data (6-degree zones distort areas by more than 0.1% at their edges).
    """
    keep = np.array([g is not None for g in raw.geometry], dtype=bool)
    if raw.misfit is not None:
        keep &= raw.misfit == 0  # rows rejected for coordinates that do not fit the CRS
    geoms = raw.geometry[keep]
    geoms = geoms[~shapely.is_empty(geoms)]
    if len(geoms) == 0:
        raise InputError("文件中没有任何几何图形", "the file holds no geometry", code="no_geometry")
    minx, miny, maxx, maxy = shapely.total_bounds(geoms)
    src = pyproj.CRS.from_epsg(4326) if raw.gcj02 else raw.crs
    assert src is not None
    t = crsmod.transformer(src, pyproj.CRS.from_epsg(4490))
    lon, lat = t.transform((minx + maxx) / 2, (miny + maxy) / 2)
    if raw.gcj02:
        lon_a, _ = gcj02_to_wgs84(np.array([lon]), np.array([lat]))
        lon = float(lon_a[0])
    if not np.isfinite(lon) or not (73 <= lon <= 136):
        raise CRSError(
            "数据不在中国范围内，无法选择投影坐标系，请检查 --crs",
            "the data does not lie in China: check --crs",
            code="bad_crs",
        )
    if raw.crs is not None and not raw.gcj02:
        epsg = raw.crs.to_epsg()
        if epsg is not None and 4534 <= epsg <= 4554:
            # already a CGCS2000 3-degree Gauss-Krüger CRS: the bureau's own survey CRS, keep it
            return int(epsg)
        if epsg is not None and 4513 <= epsg <= 4533:
            return int(epsg) + 21  # the same zone without the zone number in the easting
    return crsmod.gk_zone_epsg(float(lon))


def clean_geometry(
    spec: LayerSpec, raw: RawTable, srs: int, report: ImportReport, reject: RowRejects
) -> np.ndarray:
    """The geometry of ``raw``'s rows, checked, in the store's CRS (EPSG ``srs``, metres).

    Rows without a geometry, with too many vertices, non-finite coordinates, a type the
    layer does not take, coordinates that do not fit their CRS or cannot be projected, or
    a polygon that cannot be repaired are rejected (``reject``); Z is dropped and invalid
    polygons are repaired (counted in ``report``).

    Raises
    ------
    TooLarge
        The file holds more than :data:`MAX_FILE_VERTICES` vertices.
    InputError
        ``code="wrong_geometry_type"``: no row has a type the layer takes.
    """
    geoms = np.asarray(raw.geometry, dtype=object).copy()
    ok = _present(geoms, reject)
    if not ok.any():
        return geoms
    ok &= ~_too_many_vertices(geoms, ok, reject)
    if not ok.any():
        return geoms
    _drop_z(geoms, ok, report)
    ok &= ~_not_finite(geoms, ok, reject)
    types = geometry_type_names(geoms)
    ok &= _of_allowed_type(spec, types, ok, reject)
    if raw.misfit is not None:
        ok &= ~_reject_misfits(raw.misfit, geoms, ok, reject)
    ok &= ~_reproject(raw, srs, geoms, ok, reject)
    _repair(spec, geoms, types, ok, report, reject)
    return geoms


def _present(geoms: np.ndarray, reject: RowRejects) -> np.ndarray:
    """The rows with a geometry that is not empty; the others are rejected."""
    n = len(geoms)
    missing = np.array([g is None for g in geoms], dtype=bool)
    present = ~missing
    empty = np.zeros(n, dtype=bool)
    empty[present] = shapely.is_empty(geoms[present])
    reject(missing | empty, "几何为空", "empty geometry")
    return np.asarray(present & ~empty)


def _too_many_vertices(geoms: np.ndarray, ok: np.ndarray, reject: RowRejects) -> np.ndarray:
    """Refuse a file of too many vertices; reject, and return, the features of too many."""
    n = len(geoms)
    vertices = np.zeros(n, dtype=np.int64)
    vertices[ok] = shapely.get_num_coordinates(geoms[ok])
    check_file_vertices(int(vertices.sum()), MAX_FILE_VERTICES)
    huge = vertices > MAX_FEATURE_VERTICES
    reject(
        huge,
        f"要素顶点过多（{{v}} 个，上限 {MAX_FEATURE_VERTICES:,}），请简化后再导入",
        f"too many vertices ({{v}}, limit {MAX_FEATURE_VERTICES:,}): simplify the feature",
        values=pd.Series([f"{v:,}" for v in vertices.tolist()], dtype=object),
    )
    return huge


def _drop_z(geoms: np.ndarray, ok: np.ndarray, report: ImportReport) -> None:
    has_z = np.zeros(len(geoms), dtype=bool)
    has_z[ok] = shapely.has_z(geoms[ok])
    if has_z.any():
        report.z_dropped = int(has_z.sum())
        geoms[ok] = shapely.force_2d(geoms[ok])


def _not_finite(geoms: np.ndarray, ok: np.ndarray, reject: RowRejects) -> np.ndarray:
    """Reject, and return, the rows with a NaN or infinite coordinate."""
    coords_bad = np.zeros(len(geoms), dtype=bool)
    idx = np.flatnonzero(ok)
    counts = shapely.get_num_coordinates(geoms[idx])
    coords = shapely.get_coordinates(geoms[idx])
    finite_pt = np.isfinite(coords).all(axis=1)
    if not finite_pt.all():
        owner = np.repeat(np.arange(len(idx)), counts)
        coords_bad[idx[np.unique(owner[~finite_pt])]] = True
    reject(coords_bad, "坐标含无效数值 (NaN/Inf)", "coordinates contain NaN or infinity")
    return coords_bad


def _of_allowed_type(spec: LayerSpec, types: np.ndarray, ok: np.ndarray, reject: RowRejects) -> np.ndarray:
    """The rows of a geometry type the layer takes; the others among ``ok`` are rejected, and
    the file refused when none is left."""
    allowed = np.isin(types, list(spec.geometry_types))
    wrong = ok & ~allowed
    if wrong.any():
        allowed_zh = "、".join(sorted(spec.geometry_types))
        for t in sorted(set(types[wrong])):
            reject(
                wrong & (types == t),
                f"几何类型 {t} 不适用于「{spec.label_zh}」（允许: {allowed_zh}）",
                f"geometry type {t} is not allowed in {spec.label_en} (allowed: {allowed_zh})",
            )
        if not (ok & allowed).any():
            raise InputError(
                f"几何类型不符：「{spec.label_zh}」需要 {allowed_zh}，文件中是 {', '.join(sorted(set(types[wrong])))}",
                f"wrong geometry type: {spec.label_en} takes {allowed_zh}, the file has "
                f"{', '.join(sorted(set(types[wrong])))}",
                code="wrong_geometry_type",
            )
    return allowed


def _reproject(raw: RawTable, srs: int, geoms: np.ndarray, ok: np.ndarray, reject: RowRejects) -> np.ndarray:
    """Project the rows ``ok`` to the store CRS in place (undoing GCJ-02 first); reject, and
    return, those that cannot be."""
    n = len(geoms)
    idx = np.flatnonzero(ok)
    src_crs = pyproj.CRS.from_epsg(4490) if raw.gcj02 else raw.crs
    assert src_crs is not None
    dst = pyproj.CRS.from_epsg(srs)
    t = crsmod.transformer(src_crs, dst)

    def project(xy: np.ndarray) -> np.ndarray:
        x, y = xy[:, 0], xy[:, 1]
        if raw.gcj02:
            x, y = gcj02_to_wgs84(x, y)
        px, py = t.transform(x, y)
        return np.column_stack([px, py])

    same = not raw.gcj02 and (src_crs == dst or src_crs.equals(dst, ignore_axis_order=True))
    projected = geoms[idx] if same else shapely.transform(geoms[idx], project)
    finite = np.isfinite(shapely.bounds(projected)).all(axis=1)
    bad = np.zeros(n, dtype=bool)
    bad[idx[~finite]] = True
    reject(bad, "坐标无法转换到存储坐标系（超出范围）", "coordinates cannot be transformed to the store CRS")
    geoms[idx] = projected
    return bad


def _repair(
    spec: LayerSpec,
    geoms: np.ndarray,
    types: np.ndarray,
    ok: np.ndarray,
    report: ImportReport,
    reject: RowRejects,
) -> None:
    """Repair invalid polygons and lines in place (keeping the parts of their type); reject the
    ones nothing is left of."""
    n = len(geoms)
    poly = ok & np.isin(types, ["Polygon", "LineString"])
    idx = np.flatnonzero(poly)
    if len(idx):
        valid = shapely.is_valid(geoms[idx])
        fix = idx[~valid]
        if len(fix):
            repaired = shapely.make_valid(geoms[fix])
            keep_type = spec.geometry_types
            fixed = []
            for g, want in zip(repaired, types[fix], strict=True):
                fixed.append(_extract(g, want) if want in keep_type else g)
            fixed_arr = np.array(fixed, dtype=object)
            empty_after = np.array([g is None or g.is_empty for g in fixed_arr], dtype=bool)
            geoms[fix] = fixed_arr
            report.repaired = int((~empty_after).sum())
            dead = np.zeros(n, dtype=bool)
            dead[fix[empty_after]] = True
            reject(dead, "多边形无效且无法修复", "invalid polygon that cannot be repaired")
            if report.repaired:
                report.warnings.append(
                    (
                        f"修复了 {report.repaired} 个无效多边形（自相交等）",
                        f"repaired {report.repaired} invalid polygons (self-intersections etc.)",
                    )
                )


def _reject_misfits(misfit: np.ndarray, geoms: np.ndarray, ok: np.ndarray, reject: RowRejects) -> np.ndarray:
    """Reject the rows among ``ok`` whose coordinates do not fit the CRS (:attr:`RawTable.misfit`),
    each with its reason and its coordinates as they are in the file; returns their mask."""
    bad = ok & (misfit != 0)
    idx = np.flatnonzero(bad)
    if len(idx) == 0:
        return bad
    text = np.full(len(geoms), None, dtype=object)
    text[idx] = [
        f"{x0:.12g}, {y0:.12g}" if (x0, y0) == (x1, y1) else f"{x0:.12g}, {y0:.12g} … {x1:.12g}, {y1:.12g}"
        for x0, y0, x1, y1 in shapely.bounds(geoms[idx]).tolist()
    ]
    values = pd.Series(text, dtype=object)
    for code in np.unique(misfit[idx]).tolist():
        zh, en = misfit_reason(int(code))
        reject(bad & (misfit == code), zh, en, None, values)
    return bad


def _extract(geom: Any, want: str) -> Any:
    """Keep the parts of ``geom`` of type ``want`` (after make_valid)."""
    tid = {"Polygon": (3, 6), "LineString": (1, 5), "Point": (0, 4)}[want]
    if shapely.get_type_id(geom) in tid:
        return geom
    parts = shapely.get_parts(geom)
    parts = parts[np.isin(shapely.get_type_id(parts), tid)]
    if len(parts) == 0:
        return None
    return shapely.union_all(parts) if len(parts) > 1 else parts[0]


def far_outside(grid: Grid | None, geoms: np.ndarray) -> np.ndarray:
    """Which of ``geoms`` (in the grid's CRS, metres) lie over :data:`FAR_OUTSIDE_M` from the
    grid's extent, as a boolean mask (none without a grid)."""
    if grid is None or len(grid) == 0 or len(geoms) == 0:
        return np.zeros(len(geoms), dtype=bool)
    minx, miny, maxx, maxy = shapely.total_bounds(grid.cells)
    b = shapely.bounds(geoms)
    dx = np.maximum(np.maximum(minx - b[:, 2], b[:, 0] - maxx), 0)
    dy = np.maximum(np.maximum(miny - b[:, 3], b[:, 1] - maxy), 0)
    return np.asarray(np.hypot(dx, dy) > FAR_OUTSIDE_M)
