"""How a file's rows fit a CRS, judged one by one from the bounds of their geometry.

:func:`row_kinds` tells what each row's coordinates look like (lon/lat over China, 3-degree
Gauss-Krüger with or without the zone, web mercator, 6-degree Gauss-Krüger); a declared CRS
is checked against them (:func:`geo.reading.crs_declared.fit_rows`), and each row that does not fit gets its reason —
zero coordinates, X/Y swapped, another zone, out of range (:class:`RowFit`,
:func:`misfit_reason`) — to be rejected by row.  Inferring a CRS from the bulk of the rows
is :mod:`geo.reading.crs_infer`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pyproj

from geo.errors import CRSError
from geo.reading.crs import (
    CHINA_LAT,
    CHINA_LON,
    GK3_EASTING,
    GK3_PREFIXED_REMAINDER,
    GK6_PREFIXED_REMAINDER,
    GK_NORTHING,
    transformer,
)

FloatArray = npt.NDArray[np.float64]

#: A box of plausible coordinates: ``(x_lo, x_hi, y_lo, y_hi)`` in the CRS's units.
Box = tuple[float, float, float, float]

Int16Array = npt.NDArray[np.int16]

BoolArray = npt.NDArray[np.bool_]

_MERC_R = 6378137.0  # web mercator sphere radius (m)


def _merc_x(lon: float) -> float:
    return _MERC_R * math.radians(lon)


def _merc_y(lat: float) -> float:
    return _MERC_R * math.log(math.tan(math.pi / 4.0 + math.radians(lat) / 2.0))


GEO_BOX: Box = (CHINA_LON[0], CHINA_LON[1], CHINA_LAT[0], CHINA_LAT[1])

GK3_BOX: Box = (GK3_EASTING[0], GK3_EASTING[1], GK_NORTHING[0], GK_NORTHING[1])

MERC_BOX: Box = (_merc_x(CHINA_LON[0]), _merc_x(CHINA_LON[1]), _merc_y(CHINA_LAT[0]), _merc_y(CHINA_LAT[1]))

GK3_ZONES = (25, 45)  # CGCS2000 3-degree zones over China (EPSG 4513..4533 with prefix)

GK6_ZONES = (13, 23)  # CGCS2000 6-degree zones over China (EPSG 4491..4501 with prefix)

# Where web mercator and the prefixed zones lie: eastings 8e6 .. 46e6.
_LARGE_BOX: Box = (
    min(MERC_BOX[0], GK6_ZONES[0] * 1e6),
    (GK3_ZONES[1] + 1) * 1e6,
    min(MERC_BOX[2], GK_NORTHING[0]),
    max(MERC_BOX[3], GK_NORTHING[1]),
)


def _zone_box(zone: int, remainder: tuple[float, float]) -> Box:
    return (zone * 1e6 + remainder[0], zone * 1e6 + remainder[1], GK_NORTHING[0], GK_NORTHING[1])


# What a row's coordinates look like, from magnitudes alone (:func:`row_kinds`).  The boxes of
# the kinds do not overlap, except web mercator with 6-degree zones.
KIND_NONE = 0  #: no usable coordinates (missing, empty or not finite): judged elsewhere

KIND_UNKNOWN = 1  #: fits no kind

KIND_GEO = 2  #: lon/lat over China

KIND_GK3 = 3  #: 3-degree GK without zone prefix (6-digit eastings)

KIND_MERC = 4  #: web mercator over China, no 6-degree zone

KIND_GK3_ZONE = 100  #: + zone: 3-degree GK with the zone prefix

KIND_GK6_ZONE = 200  #: + zone: 6-degree GK with the zone prefix, not web mercator

KIND_GK6_MERC = 300  #: + zone: 6-degree GK with the zone prefix, and web mercator too

N_KINDS = 400

# Why a row does not fit the CRS of its file (:class:`RowFit`, :func:`misfit_reason`).
MISFIT_ZERO = 1

MISFIT_SWAPPED = 2

MISFIT_LONLAT = 3

MISFIT_UNPREFIXED = 4

MISFIT_LARGE = 5

MISFIT_OUTSIDE = 6

MISFIT_ZONE = 1000  #: + zone: another zone of the file's own zone system

MISFIT_GK3_ZONE = 2000  #: + zone: a 3-degree GK zone, in a file of another kind


@dataclass(frozen=True)
class RowFit:
    """How the rows of a file fit its CRS.

    Parameters
    ----------
    codes : ndarray of int16
        Per row: 0 when its coordinates fit (or it has none, judged elsewhere), else the
        reason they do not (``MISFIT_*``; see :func:`misfit_reason`).
    fit : int
        Rows whose coordinates fit.
    total : int
        Rows with finite coordinates.
    """

    codes: Int16Array
    fit: int
    total: int

    @property
    def misfit(self) -> int:
        """Rows with coordinates that do not fit."""
        return self.total - self.fit


@dataclass(frozen=True)
class Candidate:
    """A CRS the bulk of a file may be in: its plausible box and the row kinds that fit it."""

    epsg: int | None  # None: 3-degree GK without prefix whose central meridian is unknown
    box: Box
    kinds: tuple[int, ...]
    own: int  # its kind, as :func:`normalised_kinds` gives it


GEO_CANDIDATE = Candidate(4490, GEO_BOX, (KIND_GEO,), KIND_GEO)

MERC_CANDIDATE = Candidate(
    3857,
    MERC_BOX,
    (KIND_MERC, *(KIND_GK6_MERC + z for z in range(GK6_ZONES[0], GK6_ZONES[1] + 1))),
    KIND_MERC,
)


def gk3_candidate(epsg: int | None) -> Candidate:
    """3-degree Gauss-Krüger without zone prefix (EPSG:4534-4554 once the central meridian is known)."""
    return Candidate(epsg, GK3_BOX, (KIND_GK3,), KIND_GK3)


def gk3_zone_candidate(zone: int) -> Candidate:
    """3-degree Gauss-Krüger with the zone prefix ``zone`` in the easting (EPSG:4513-4533)."""
    return Candidate(
        4513 + zone - GK3_ZONES[0],
        _zone_box(zone, GK3_PREFIXED_REMAINDER),
        (KIND_GK3_ZONE + zone,),
        KIND_GK3_ZONE + zone,
    )


def gk6_zone_candidate(zone: int) -> Candidate:
    """6-degree Gauss-Krüger with the zone prefix ``zone`` in the easting (EPSG:4491-4501)."""
    return Candidate(
        4491 + zone - GK6_ZONES[0],
        _zone_box(zone, GK6_PREFIXED_REMAINDER),
        (KIND_GK6_ZONE + zone, KIND_GK6_MERC + zone),
        KIND_GK6_ZONE + zone,
    )


def candidate_for_epsg(epsg: int) -> Candidate | None:
    """The candidate a CRS given by its EPSG code stands for, or None when it is none of them."""
    if epsg in (4490, 4326):
        return GEO_CANDIDATE
    if 4513 <= epsg <= 4533:
        return gk3_zone_candidate(epsg - 4513 + GK3_ZONES[0])
    if 4534 <= epsg <= 4554:
        return gk3_candidate(epsg)
    if 4491 <= epsg <= 4501:
        return gk6_zone_candidate(epsg - 4491 + GK6_ZONES[0])
    if epsg == 3857:
        return MERC_CANDIDATE
    return None


def row_bounds(
    xmin: npt.ArrayLike, ymin: npt.ArrayLike, xmax: npt.ArrayLike, ymax: npt.ArrayLike
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """The four bounds arrays as float64, raveled (metres or degrees, as given)."""
    arrays = [np.asarray(a, dtype=np.float64).reshape(-1) for a in (xmin, ymin, xmax, ymax)]
    if len({a.size for a in arrays}) != 1:
        raise CRSError("x 与 y 坐标数量不一致", "x and y differ in length")
    return arrays[0], arrays[1], arrays[2], arrays[3]


def inside_box(box: Box, xmin: FloatArray, ymin: FloatArray, xmax: FloatArray, ymax: FloatArray) -> BoolArray:
    """Per row, whether its bounds lie inside ``box`` (in the CRS's units)."""
    return np.asarray((xmin >= box[0]) & (xmax <= box[1]) & (ymin >= box[2]) & (ymax <= box[3]))


def row_kinds(
    xmin: npt.ArrayLike, ymin: npt.ArrayLike, xmax: npt.ArrayLike, ymax: npt.ArrayLike
) -> Int16Array:
    """What each row's coordinates look like, from their magnitudes (vectorised).

    Parameters
    ----------
    xmin, ymin, xmax, ymax : array_like
        The bounds of each row's geometry (for points: x, y, x, y); NaN for a row without
        coordinates.

    Returns
    -------
    ndarray of int16
        Per row, ``KIND_*``: lon/lat over China; 3-degree GK without zone prefix;
        ``KIND_GK3_ZONE + zone`` for 3-degree GK with the zone prefix; web mercator over
        China and/or ``KIND_GK6_* + zone`` for prefixed 6-degree GK; ``KIND_UNKNOWN`` when
        the whole bounds fit none of these; ``KIND_NONE`` when they are not finite.
    """
    x0, y0, x1, y1 = row_bounds(xmin, ymin, xmax, ymax)
    finite = np.isfinite(x0) & np.isfinite(y0) & np.isfinite(x1) & np.isfinite(y1)
    kinds = np.where(finite, KIND_UNKNOWN, KIND_NONE).astype(np.int16)
    kinds[inside_box(GEO_BOX, x0, y0, x1, y1)] = KIND_GEO
    kinds[inside_box(GK3_BOX, x0, y0, x1, y1)] = KIND_GK3
    # 7- and 8-digit eastings: web mercator and the zones with their prefix (finite by the test)
    idx = np.flatnonzero(inside_box(_LARGE_BOX, x0, y0, x1, y1))
    if idx.size == 0:
        return kinds
    x0, y0, x1, y1 = x0[idx], y0[idx], x1[idx], y1[idx]
    zone = np.floor(x0 / 1e6)
    same = zone == np.floor(x1 / 1e6)
    rem_lo = x0 - zone * 1e6
    rem_hi = x1 - zone * 1e6
    north = (y0 >= GK_NORTHING[0]) & (y1 <= GK_NORTHING[1])
    sub = np.full(idx.size, KIND_UNKNOWN, dtype=np.int16)
    gk3 = (
        same
        & north
        & (zone >= GK3_ZONES[0])
        & (rem_lo >= GK3_PREFIXED_REMAINDER[0])
        & (rem_hi <= GK3_PREFIXED_REMAINDER[1])
    )
    sub[gk3] = KIND_GK3_ZONE + zone[gk3]
    merc = inside_box(MERC_BOX, x0, y0, x1, y1)
    gk6 = (
        same
        & north
        & (zone <= GK6_ZONES[1])
        & (zone >= GK6_ZONES[0])
        & (rem_lo >= GK6_PREFIXED_REMAINDER[0])
        & (rem_hi <= GK6_PREFIXED_REMAINDER[1])
    )
    sub[merc & ~gk6] = KIND_MERC
    sub[gk6] = np.where(merc[gk6], KIND_GK6_MERC, KIND_GK6_ZONE) + zone[gk6]
    kinds[idx] = sub
    return kinds


def normalised_kinds(kinds: Int16Array) -> Int16Array:
    """Kinds with ``KIND_GK6_MERC + z`` read as ``KIND_GK6_ZONE + z``."""
    return np.where(kinds >= KIND_GK6_MERC, kinds - (KIND_GK6_MERC - KIND_GK6_ZONE), kinds).astype(np.int16)


def _misfit_codes(
    box: Box, own: int, xmin: FloatArray, ymin: FloatArray, xmax: FloatArray, ymax: FloatArray
) -> Int16Array:
    """Why each of the given rows (none of which fits ``box``) does not fit: zero coordinates,
    then X/Y swapped, then another zone or kind, else outside the range."""
    kinds = normalised_kinds(row_kinds(xmin, ymin, xmax, ymax))
    codes = np.full(kinds.size, MISFIT_OUTSIDE, dtype=np.int16)
    own_large = own == KIND_MERC or KIND_GK6_ZONE <= own < KIND_GK6_MERC
    gk6 = (kinds >= KIND_GK6_ZONE) & (kinds < KIND_GK6_MERC)
    if not own_large:
        codes[gk6 | (kinds == KIND_MERC)] = MISFIT_LARGE
    elif own != KIND_MERC:
        other = gk6 & (kinds != own)
        codes[other] = MISFIT_ZONE + (kinds[other] - KIND_GK6_ZONE)
    gk3 = (kinds >= KIND_GK3_ZONE) & (kinds < KIND_GK6_ZONE) & (kinds != own)
    base = MISFIT_ZONE if KIND_GK3_ZONE <= own < KIND_GK6_ZONE else MISFIT_GK3_ZONE
    codes[gk3] = base + (kinds[gk3] - KIND_GK3_ZONE)
    if own != KIND_GK3:
        codes[kinds == KIND_GK3] = MISFIT_UNPREFIXED
    if own != KIND_GEO:
        codes[kinds == KIND_GEO] = MISFIT_LONLAT
    codes[inside_box(box, ymin, xmin, ymax, xmax)] = MISFIT_SWAPPED
    codes[(xmin == 0) | (ymin == 0) | (xmax == 0) | (ymax == 0)] = MISFIT_ZERO
    return codes


def row_fit(box: Box, own: int, fits: BoolArray, usable: BoolArray, bounds: tuple[FloatArray, ...]) -> RowFit:
    """The :class:`RowFit` of rows whose bounds fit ``box`` (``fits``), with the reason of each that does not."""
    codes = np.zeros(usable.size, dtype=np.int16)
    idx = np.flatnonzero(usable & ~fits)
    if len(idx):
        x0, y0, x1, y1 = (b[idx] for b in bounds)
        codes[idx] = _misfit_codes(box, own, x0, y0, x1, y1)
    total = int(usable.sum())
    return RowFit(codes=codes, fit=total - len(idx), total=total)


def misfit_reason(code: int) -> tuple[str, str]:
    """The reason, in Chinese and English, for a row whose coordinates do not fit (a
    :attr:`RowFit.codes` value); ``{v}`` in it stands for the row's coordinates."""
    if code >= MISFIT_GK3_ZONE:
        zone = code - MISFIT_GK3_ZONE
        return (
            f"坐标「{{v}}」像是3度带第{zone}带的投影坐标，与该坐标系不符",
            f"coordinates '{{v}}' look like 3-degree Gauss-Kruger zone {zone}, not this CRS",
        )
    if code >= MISFIT_ZONE:
        zone = code - MISFIT_ZONE
        return (
            f"坐标「{{v}}」属于另一投影带（第 {zone} 带）",
            f"coordinates '{{v}}' belong to another zone ({zone})",
        )
    reasons = {
        MISFIT_ZERO: ("坐标「{v}」为 0", "coordinates '{v}' are zero"),
        MISFIT_SWAPPED: ("坐标「{v}」疑似 X/Y 颠倒", "coordinates '{v}': X and Y look swapped"),
        MISFIT_LONLAT: (
            "坐标「{v}」像是经纬度，与该坐标系不符",
            "coordinates '{v}' look like lon/lat, not this CRS",
        ),
        MISFIT_UNPREFIXED: (
            "坐标「{v}」像是不带带号的 3 度带坐标，与该坐标系不符",
            "coordinates '{v}' look like 3-degree Gauss-Kruger without zone prefix, not this CRS",
        ),
        MISFIT_LARGE: (
            "坐标「{v}」像是 Web 墨卡托或6度带坐标，与该坐标系不符",
            "coordinates '{v}' look like web mercator or 6-degree Gauss-Kruger, not this CRS",
        ),
    }
    return reasons.get(code, ("坐标「{v}」超出该坐标系范围", "coordinates '{v}' are outside the CRS's range"))


def fmt_coord(v: float) -> str:
    """A coordinate as shown in messages: metres to the unit with thousands separators, degrees to 4 places."""
    return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.4f}"


def to_lonlat(epsg: int, x: float, y: float) -> tuple[float, float]:
    """``(x, y)`` in EPSG:``epsg`` as CGCS2000 lon/lat (degrees)."""
    tr = transformer(pyproj.CRS.from_epsg(epsg), pyproj.CRS.from_epsg(4490))
    lon, lat = tr.transform(x, y)
    return float(lon), float(lat)


def in_china(lon: float, lat: float, margin: float = 0.0) -> bool:
    """Whether lon/lat (degrees) lies in the box around China, widened by ``margin`` degrees."""
    return (
        math.isfinite(lon)
        and math.isfinite(lat)
        and CHINA_LON[0] - margin <= lon <= CHINA_LON[1] + margin
        and CHINA_LAT[0] - margin <= lat <= CHINA_LAT[1] + margin
    )


def _kind_label(kind: int) -> tuple[str, str]:
    if kind == KIND_GEO:
        return "经纬度", "lon/lat"
    if kind == KIND_GK3:
        return "不带带号的 3 度带坐标", "3-degree Gauss-Kruger without zone prefix"
    if KIND_GK3_ZONE <= kind < KIND_GK6_ZONE:
        zone = kind - KIND_GK3_ZONE
        return f"3度带第{zone}带坐标", f"3-degree Gauss-Kruger zone {zone}"
    return "Web 墨卡托或6度带坐标", "web mercator or 6-degree Gauss-Kruger"


def describe_rows(
    xmin: FloatArray, ymin: FloatArray, xmax: FloatArray, ymax: FloatArray
) -> tuple[str, str, dict[str, int]]:
    """What the rows with coordinates look like, most common first, in both languages, and
    the counts by English label."""
    kinds = normalised_kinds(row_kinds(xmin, ymin, xmax, ymax))
    kinds = np.where((kinds >= KIND_GK6_ZONE) | (kinds == KIND_MERC), KIND_MERC, kinds).astype(np.int16)
    groups: list[tuple[int, str, str, str]] = []  # (count, zh, en, key)
    values, counts = np.unique(kinds[(kinds != KIND_NONE) & (kinds != KIND_UNKNOWN)], return_counts=True)
    for kind, n in zip(values.tolist(), counts.tolist(), strict=True):
        zh, en = _kind_label(int(kind))
        groups.append((int(n), f"{n} 行像是{zh}", f"{n} look like {en}", en))
    unknown = np.flatnonzero(kinds == KIND_UNKNOWN)
    if len(unknown):
        x0, y0, x1, y1 = (a[unknown] for a in (xmin, ymin, xmax, ymax))
        zero = (x0 == 0) | (y0 == 0) | (x1 == 0) | (y1 == 0)
        if zero.any():
            n = int(zero.sum())
            groups.append((n, f"{n} 行坐标为 0", f"{n} have zero coordinates", "zero"))
        swapped = normalised_kinds(row_kinds(y0[~zero], x0[~zero], y1[~zero], x1[~zero]))
        swapped = np.where((swapped >= KIND_GK6_ZONE) | (swapped == KIND_MERC), KIND_MERC, swapped).astype(
            np.int16
        )
        values, counts = np.unique(swapped, return_counts=True)
        for kind, n in zip(values.tolist(), counts.tolist(), strict=True):
            if kind == KIND_UNKNOWN:
                groups.append((int(n), f"{n} 行不像任何一种已知坐标系", f"{n} fit no known CRS", "unknown"))
                continue
            zh, en = _kind_label(int(kind))
            groups.append(
                (
                    int(n),
                    f"{n} 行疑似 X/Y 颠倒（交换后像是{zh}）",
                    f"{n} look like {en} with X and Y swapped",
                    f"{en}, swapped",
                )
            )
    groups.sort(key=lambda g: -g[0])
    shown = groups[:6]
    more = sum(g[0] for g in groups[6:])
    parts_zh = "，".join(g[1] for g in shown) + (f"，另有 {more} 行" if more else "")
    parts_en = ", ".join(g[2] for g in shown) + (f", {more} more" if more else "")
    return parts_zh, parts_en, {g[3]: g[0] for g in groups}
