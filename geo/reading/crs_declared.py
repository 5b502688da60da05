"""Checking a declared CRS (a ``.prj``, ``--crs``, the file's own) against a file's rows.

A declared CRS is not taken on trust: rows whose coordinates are swapped, zero or outside its
range over China are marked (:func:`fit_rows`) to be rejected by row, and a file whose rows
mostly do not fit it is refused (:func:`declared_mismatch`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import numpy.typing as npt
import pyproj
from pyproj.exceptions import ProjError

from geo.errors import CRSError
from geo.reading.crs import CHINA_LAT, CHINA_LON, EPSG_MIN_CONFIDENCE, EPSG_SRS_RE, crs_key, transformer
from geo.reading.crs_fit import (
    GEO_BOX,
    KIND_GEO,
    Box,
    RowFit,
    candidate_for_epsg,
    describe_rows,
    inside_box,
    normalised_kinds,
    row_bounds,
    row_fit,
    row_kinds,
)

#: A declared CRS (.prj, ``--crs``, the file's own) that fewer than this share of the rows fit
#: is refused for the whole file, as a file mostly far from the grid is.
DECLARED_MAJORITY = 0.5


def fit_rows(
    crs: pyproj.CRS, xmin: npt.ArrayLike, ymin: npt.ArrayLike, xmax: npt.ArrayLike, ymax: npt.ArrayLike
) -> RowFit | None:
    """Which rows have coordinates plausible in a declared CRS (a .prj, ``--crs``, the file's own).

    The plausible range is that of :func:`geo.reading.crs_infer.infer_crs_rows` for the CRSs it infers (lon/lat over
    China, CGCS2000 3-degree GK with and without zone prefix, prefixed 6-degree GK, web
    mercator); for any other CRS, its area of use (or, for a transverse mercator without
    one, 4.5 degrees either side of its central meridian) within China, with a margin of one
    degree, projected into it.

    Parameters
    ----------
    crs : pyproj.CRS
        The declared CRS (for GCJ-02, EPSG:4326).
    xmin, ymin, xmax, ymax : array_like
        The bounds of each row's geometry; NaN for a row without coordinates.

    Returns
    -------
    RowFit or None
        None when no plausible range is known for ``crs`` (then nothing is judged here).
    """
    found = _declared_box(crs_key(crs))
    if found is None:
        return None
    box, own = found
    bounds = row_bounds(xmin, ymin, xmax, ymax)
    usable = np.isfinite(bounds[0]) & np.isfinite(bounds[1]) & np.isfinite(bounds[2]) & np.isfinite(bounds[3])
    return row_fit(box, own, inside_box(box, *bounds), usable, bounds)


@lru_cache(maxsize=64)
def _declared_box(key: str) -> tuple[Box, int] | None:
    crs = pyproj.CRS.from_user_input(key)
    if crs.is_geographic:
        return GEO_BOX, KIND_GEO
    if EPSG_SRS_RE.match(key):
        epsg: int | None = int(key.split(":")[1])
    else:
        epsg = crs.to_epsg(min_confidence=EPSG_MIN_CONFIDENCE) if not crs.is_bound else None
    known = candidate_for_epsg(epsg) if epsg is not None else None
    if known is not None:
        return known.box, known.own
    lon = _lon_range(crs)
    if lon is None:
        return None
    lo, hi = max(lon[0], CHINA_LON[0] - 1.0), min(lon[1], CHINA_LON[1] + 1.0)
    if not lo < hi:
        return None
    lons, lats = np.meshgrid(np.linspace(lo, hi, 33), np.linspace(CHINA_LAT[0] - 1.0, CHINA_LAT[1] + 1.0, 33))
    try:
        x, y = transformer(pyproj.CRS.from_epsg(4490), crs).transform(lons.ravel(), lats.ravel())
    except ProjError:
        return None
    xs, ys = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    ok = np.isfinite(xs) & np.isfinite(ys)
    if ok.sum() < 4:
        return None
    xs, ys = xs[ok], ys[ok]
    dx, dy = 0.01 * float(np.ptp(xs)), 0.01 * float(np.ptp(ys))
    box: Box = (float(xs.min()) - dx, float(xs.max()) + dx, float(ys.min()) - dy, float(ys.max()) + dy)
    cx, cy = np.array([(box[0] + box[1]) / 2]), np.array([(box[2] + box[3]) / 2])
    return box, int(normalised_kinds(row_kinds(cx, cy, cx, cy))[0])


_CM_PARAMS = {"longitude of natural origin", "longitude of origin", "central meridian"}


def _lon_range(crs: pyproj.CRS) -> tuple[float, float] | None:
    """Longitudes a CRS is meant for: its area of use, or its central meridian's surroundings."""
    area = crs.area_of_use
    if area is not None and area.west < area.east:
        return area.west - 1.0, area.east + 1.0
    base = crs.source_crs if crs.is_bound and crs.source_crs is not None else crs
    op = base.coordinate_operation
    if op is None:
        return CHINA_LON
    if "transverse mercator" in op.method_name.lower():
        for p in op.params:
            value = p.value
            if p.name.lower() in _CM_PARAMS and isinstance(value, float | int) and math.isfinite(value):
                return float(value) - 4.5, float(value) + 4.5
    return CHINA_LON


def declared_mismatch(label: str, source: str, fit: RowFit, bounds: Sequence[npt.ArrayLike]) -> CRSError:
    """The refusal of a file whose declared CRS most of its rows do not fit.

    Parameters
    ----------
    label : str
        The CRS, as the report names it.
    source : str
        Where it was declared: ``"prj"``, ``"override"`` (``--crs`` or a form) or ``"file"``.
    fit : RowFit
        From :func:`fit_rows`.
    bounds : sequence of array_like
        ``(xmin, ymin, xmax, ymax)`` of each row, to say what the rows look like.
    """
    where_zh, where_en = {
        "prj": (".prj 文件中的", "the .prj's"),
        "override": ("指定的", "the given"),
    }.get(source, ("文件声明的", "the file's"))
    parts_zh, parts_en, counts = describe_rows(*row_bounds(*bounds))
    label = label[:80]
    return CRSError(
        f"坐标与{where_zh}坐标系 {label} 不符：有坐标的 {fit.total} 行中只有 {fit.fit} 行符合"
        f"（{parts_zh}）。请检查坐标系，或用 --crs 指定",
        f"the coordinates do not fit {where_en} CRS {label}: only {fit.fit} of {fit.total} rows with "
        f"coordinates do ({parts_en}). Check the CRS or pass --crs",
        code="crs_mismatch",
        details={"rows": fit.total, "fit": fit.fit, "kinds": counts},
    )
