"""Inferring a file's CRS from the magnitudes of the bulk of its coordinates.

Used when a file declares no CRS (a shapefile without ``.prj``, a CSV of coordinates): a
CRS is taken only when at least :data:`INFER_MAJORITY` of the rows with
coordinates fit it, and the rows that do not fit are marked with their reason
(:class:`geo.reading.crs_fit.RowFit`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pyproj

from geo.errors import CRSError
from geo.reading.crs import HINT_TOLERANCE_DEG, CRSGuess, gk_zone_epsg
from geo.reading.crs_fit import (
    GEO_CANDIDATE,
    GK3_ZONES,
    GK6_ZONES,
    KIND_GEO,
    KIND_GK3,
    KIND_GK3_ZONE,
    KIND_GK6_MERC,
    KIND_GK6_ZONE,
    KIND_MERC,
    KIND_NONE,
    MERC_CANDIDATE,
    N_KINDS,
    Candidate,
    FloatArray,
    RowFit,
    describe_rows,
    fmt_coord,
    gk3_candidate,
    gk3_zone_candidate,
    gk6_zone_candidate,
    in_china,
    row_bounds,
    row_fit,
    row_kinds,
    to_lonlat,
)


@dataclass(frozen=True)
class _Stats:
    n: int
    x_lo: float
    x_med: float
    x_hi: float
    y_lo: float
    y_med: float
    y_hi: float


#: Share of the rows with coordinates that a CRS must fit to be inferred from magnitudes.
#: The rows that do not fit are rejected by row; when no CRS fits this many the file is
#: refused.  High enough that a file of mixed CRSs is never read as one of them, low enough
#: that a bureau's file with a few swapped or stray rows still imports.
INFER_MAJORITY = 0.8
#: Percentiles for the reasons' figures are taken over at most this many rows.
_STATS_SAMPLE = 200_000


def _stats(x: FloatArray, y: FloatArray) -> _Stats:
    if x.size > _STATS_SAMPLE:
        step = x.size // _STATS_SAMPLE + 1
        x, y = x[::step], y[::step]
    qx = np.percentile(x, [1.0, 50.0, 99.0])
    qy = np.percentile(y, [1.0, 50.0, 99.0])
    return _Stats(
        n=int(x.size),
        x_lo=float(qx[0]),
        x_med=float(qx[1]),
        x_hi=float(qx[2]),
        y_lo=float(qy[0]),
        y_med=float(qy[1]),
        y_hi=float(qy[2]),
    )


def _guess(epsg: int, reason_zh: str, reason_en: str) -> CRSGuess:
    return CRSGuess(crs=pyproj.CRS.from_epsg(epsg), epsg=epsg, reason_zh=reason_zh, reason_en=reason_en)


_PREFIX_ZH = "无 .prj 文件，按坐标量级推断为"

_PREFIX_EN = "no .prj: inferred from coordinate magnitudes as"

_DATUM_ZH = "基准无法从数值判断，按 CGCS2000 处理；如为西安80/北京54 请用 --crs 指定"

_DATUM_EN = (
    "the datum cannot be told from numbers and is taken as CGCS2000; pass --crs for Xi'an 80/Beijing 54"
)


def _try_geographic(s: _Stats) -> CRSGuess:
    return _guess(
        4490,
        f"{_PREFIX_ZH} CGCS2000 经纬度(EPSG:4490)：x 在 73–135、y 在 3–54 之间"
        f"（中位数 {s.x_med:.4f}°E, {s.y_med:.4f}°N）；WGS84 与之相差仅厘米级",
        f"{_PREFIX_EN} CGCS2000 lon/lat (EPSG:4490): x within 73-135 and y within 3-54 "
        f"(median {s.x_med:.4f}E {s.y_med:.4f}N); WGS84 differs by centimetres only",
    )


def _try_gk3_prefixed(s: _Stats, zone: int) -> CRSGuess | None:
    epsg = 4513 + (zone - GK3_ZONES[0])
    lon, lat = to_lonlat(epsg, s.x_med, s.y_med)
    if not in_china(lon, lat, margin=2.0):
        return None
    cm = 3 * zone
    return _guess(
        epsg,
        f"{_PREFIX_ZH} CGCS2000 3度带第{zone}带(EPSG:{epsg}，中央经线 {cm}°E)：东坐标为 8 位且前两位为带号 "
        f"{zone}（中位数 {fmt_coord(s.x_med)}, {fmt_coord(s.y_med)}，约 {lon:.2f}°E {lat:.2f}°N）；{_DATUM_ZH}",
        f"{_PREFIX_EN} CGCS2000 3-degree Gauss-Kruger zone {zone} (EPSG:{epsg}, central meridian "
        f"{cm}E): 8-digit eastings whose first two digits are the zone number {zone} (median "
        f"{fmt_coord(s.x_med)}, {fmt_coord(s.y_med)}, about {lon:.2f}E {lat:.2f}N); {_DATUM_EN}",
    )


def _try_gk3_unprefixed(s: _Stats, hint_lon: float | None) -> CRSGuess:
    if hint_lon is None:
        raise CRSError(
            f"坐标像是不带带号的 3 度带高斯-克吕格投影（东坐标 6 位，中位数 {fmt_coord(s.x_med)}, {fmt_coord(s.y_med)}），"
            "但中央经线无法从数值判断，请用 --crs 指定坐标系（如中央经线 117°E 为 EPSG:4548）",
            f"the coordinates look like 3-degree Gauss-Kruger without zone prefix (6-digit eastings, "
            f"median {fmt_coord(s.x_med)}, {fmt_coord(s.y_med)}) but the central meridian cannot be told from the "
            "numbers: pass --crs (e.g. EPSG:4548 for central meridian 117E)",
            code="crs_needed",
            details={"x_median": s.x_med, "y_median": s.y_med},
        )
    epsg = gk_zone_epsg(hint_lon)
    cm = 75 + 3 * (epsg - 4534)
    lon, lat = to_lonlat(epsg, s.x_med, s.y_med)
    return _guess(
        epsg,
        f"{_PREFIX_ZH} CGCS2000 3度带（无带号）中央经线 {cm}°E(EPSG:{epsg})：东坐标为 6 位（中位数 "
        f"{fmt_coord(s.x_med)}, {fmt_coord(s.y_med)}），中央经线取自已有网格所在经度 {hint_lon:.2f}°E，"
        f"数据约位于 {lon:.2f}°E {lat:.2f}°N；假定为 3 度带而非 6 度带或 UTM，{_DATUM_ZH}",
        f"{_PREFIX_EN} CGCS2000 3-degree Gauss-Kruger without zone prefix, central meridian {cm}E "
        f"(EPSG:{epsg}): 6-digit eastings (median {fmt_coord(s.x_med)}, {fmt_coord(s.y_med)}); the central "
        f"meridian comes from the existing grid's longitude {hint_lon:.2f}E, placing the data near "
        f"{lon:.2f}E {lat:.2f}N; a 3-degree zone (not 6-degree or UTM) is assumed and {_DATUM_EN}",
    )


def _mercator_or_gk6(found: list[tuple[Candidate, _Stats]], hint_lon: float | None) -> CRSGuess:
    """Web mercator and/or a prefixed 6-degree zone, each fitting the bulk of the rows."""
    # Each candidate: (epsg, label_zh, label_en, lon, lat)
    candidates: list[tuple[int, str, str, float, float]] = []
    for cand, s in found:
        assert cand.epsg is not None
        lon, lat = to_lonlat(cand.epsg, s.x_med, s.y_med)
        if cand.epsg == 3857:
            candidates.append((3857, "Web 墨卡托", "web mercator", lon, lat))
        else:
            zone = cand.own - KIND_GK6_ZONE
            candidates.append(
                (
                    cand.epsg,
                    f"CGCS2000 6度带第{zone}带",
                    f"CGCS2000 6-degree Gauss-Kruger zone {zone}",
                    lon,
                    lat,
                )
            )
    s = found[0][1]
    where_zh = "；".join(f"按 EPSG:{c[0]}（{c[1]}）约位于 {c[3]:.2f}°E {c[4]:.2f}°N" for c in candidates)
    where_en = "; ".join(f"as EPSG:{c[0]} ({c[2]}) near {c[3]:.2f}E {c[4]:.2f}N" for c in candidates)
    median = f"{fmt_coord(s.x_med)}, {fmt_coord(s.y_med)}"
    if len(candidates) == 1:
        epsg, name_zh, name_en, lon, lat = candidates[0]
        return _guess(
            epsg,
            f"{_PREFIX_ZH}{name_zh}(EPSG:{epsg})：坐标（中位数 {median}）只符合这一种解释，数据约位于 "
            f"{lon:.2f}°E {lat:.2f}°N",
            f"{_PREFIX_EN} {name_en} (EPSG:{epsg}): the coordinates (median {median}) fit this "
            f"interpretation only, placing the data near {lon:.2f}E {lat:.2f}N",
        )
    if hint_lon is None:
        raise CRSError(
            f"坐标（中位数 {median}）既可能是 Web 墨卡托也可能是带带号的 6 度带高斯-克吕格投影：{where_zh}。"
            "请用 --crs 指定坐标系",
            f"the coordinates (median {median}) may be web mercator or prefixed 6-degree Gauss-Kruger: "
            f"{where_en}. Pass --crs",
            code="crs_needed",
            details={"candidates": [c[0] for c in candidates]},
        )
    near = [c for c in candidates if abs(c[3] - hint_lon) <= HINT_TOLERANCE_DEG]
    if len(near) != 1:
        raise CRSError(
            f"坐标（中位数 {median}）可能是 Web 墨卡托或 6 度带投影，但没有唯一一种解释使数据靠近已有网格"
            f"（{hint_lon:.2f}°E）：{where_zh}。请用 --crs 指定坐标系",
            f"the coordinates (median {median}) may be web mercator or 6-degree Gauss-Kruger, but no single "
            f"interpretation puts them near the existing grid ({hint_lon:.2f}E): {where_en}. Pass --crs",
            code="crs_needed",
            details={"candidates": [c[0] for c in candidates]},
        )
    epsg, name_zh, name_en, lon, lat = near[0]
    other = next(c for c in candidates if c[0] != epsg)
    return _guess(
        epsg,
        f"{_PREFIX_ZH}{name_zh}(EPSG:{epsg})：坐标（中位数 {median}）也可解释为 EPSG:{other[0]}"
        f"（{other[1]}，约 {other[3]:.2f}°E），但只有前者使数据（约 {lon:.2f}°E {lat:.2f}°N）靠近已有网格"
        f"（{hint_lon:.2f}°E）",
        f"{_PREFIX_EN} {name_en} (EPSG:{epsg}): the coordinates (median {median}) could also be "
        f"EPSG:{other[0]} ({other[2]}, near {other[3]:.2f}E), but only the former places the data "
        f"(near {lon:.2f}E {lat:.2f}N) close to the existing grid ({hint_lon:.2f}E)",
    )


def _viable(counts: npt.NDArray[np.int64], total: int, hint_lon: float | None) -> list[Candidate]:
    """The candidate CRSs that at least :data:`INFER_MAJORITY` of the ``total`` rows fit."""

    def enough(n: int) -> bool:
        return n >= INFER_MAJORITY * total - 1e-9

    found: list[Candidate] = []
    if enough(int(counts[KIND_GEO])):
        found.append(GEO_CANDIDATE)
    if enough(int(counts[KIND_GK3])):
        found.append(gk3_candidate(gk_zone_epsg(hint_lon) if hint_lon is not None else None))
    z3 = counts[KIND_GK3_ZONE + GK3_ZONES[0] : KIND_GK3_ZONE + GK3_ZONES[1] + 1]
    if enough(int(z3.max())):
        found.append(gk3_zone_candidate(GK3_ZONES[0] + int(z3.argmax())))
    six = slice(GK6_ZONES[0], GK6_ZONES[1] + 1)
    merc_n = int(counts[KIND_MERC]) + int(counts[KIND_GK6_MERC:][six].sum())
    if enough(merc_n):
        found.append(MERC_CANDIDATE)
    z6 = counts[KIND_GK6_ZONE:][six] + counts[KIND_GK6_MERC:][six]
    if enough(int(z6.max())):
        found.append(gk6_zone_candidate(GK6_ZONES[0] + int(z6.argmax())))
    return found


def infer_crs_rows(
    xmin: npt.ArrayLike,
    ymin: npt.ArrayLike,
    xmax: npt.ArrayLike,
    ymax: npt.ArrayLike,
    hint_lon: float | None = None,
) -> tuple[CRSGuess, RowFit]:
    """Infer the CRS of a file without a ``.prj`` from the bulk of its rows.

    Each row is classified by the magnitudes of its whole bounds (:func:`geo.reading.crs_fit.row_kinds`); a CRS
    is inferred only when at least :data:`INFER_MAJORITY` of the rows with finite coordinates
    fit it, so neither one row nor a minority decides.  Candidates, each with its plausible
    box:

    * x 73..135 and y 3..54: CGCS2000 lon/lat in degrees (EPSG:4490);
    * 8-digit easting starting with a 3-degree zone 25..45, remainder 250 km..750 km,
      northing 0.3e6..6.1e6 m: CGCS2000 3-degree GK with zone prefix (EPSG 4513 + zone - 25);
    * 6-digit easting 200 km..800 km, same northings: CGCS2000 3-degree GK without zone
      prefix; the central meridian comes from ``hint_lon`` (EPSG 4534..4554);
    * web mercator (EPSG:3857) over China, and/or a prefixed CGCS2000 6-degree GK zone
      13..23 (EPSG 4491..4501); when both fit, the one placing the data within 3 degrees of
      ``hint_lon`` wins.

    Parameters
    ----------
    xmin, ymin, xmax, ymax : array_like
        Bounds of each row's geometry in the file's unknown CRS (for points: x, y, x, y);
        NaN for a row without coordinates.
    hint_lon : float, optional
        Longitude (degrees) of the existing unit grid, used to pick the central meridian or
        to break the web-mercator / 6-degree ambiguity.

    Returns
    -------
    (CRSGuess, RowFit)
        The EPSG CRS with the bilingual reason, and which rows do not fit it and why: zero
        coordinates, X/Y swapped, another zone, another kind of coordinates, out of range.

    Raises
    ------
    CRSError
        No finite coordinates; no CRS that the bulk fits (the message says what the rows
        look like: how many like lon/lat, like GK zone 39, swapped ...); or an ambiguity
        ``hint_lon`` cannot settle.  The data is never guessed silently.
    """
    bounds = row_bounds(xmin, ymin, xmax, ymax)
    if hint_lon is not None and not math.isfinite(hint_lon):
        hint_lon = None
    kinds = row_kinds(*bounds)
    counts = np.bincount(kinds, minlength=N_KINDS)
    total = int(kinds.size - counts[KIND_NONE])
    if total == 0:
        raise CRSError(
            "没有有效坐标，无法推断坐标系，请用 --crs 指定",
            "no finite coordinates to infer the CRS from: pass --crs",
            code="crs_needed",
        )
    found = _viable(counts, total, hint_lon)

    def stats(cand: Candidate) -> _Stats:
        idx = np.flatnonzero(np.isin(kinds, cand.kinds))
        if idx.size > _STATS_SAMPLE:
            idx = idx[:: idx.size // _STATS_SAMPLE + 1]
        x0, y0, x1, y1 = (b[idx] for b in bounds)
        return _stats((x0 + x1) / 2.0, (y0 + y1) / 2.0)

    guess: CRSGuess | None = None
    if found:
        first = found[0]
        if first.own == KIND_GEO:
            guess = _try_geographic(stats(first))
        elif first.own == KIND_GK3:
            guess = _try_gk3_unprefixed(stats(first), hint_lon)
        elif KIND_GK3_ZONE <= first.own < KIND_GK6_ZONE:
            guess = _try_gk3_prefixed(stats(first), first.own - KIND_GK3_ZONE)
        else:
            guess = _mercator_or_gk6([(c, stats(c)) for c in found], hint_lon)
    if guess is None:
        parts_zh, parts_en, described = describe_rows(*bounds)
        pct = round(INFER_MAJORITY * 100)
        raise CRSError(
            f"无法从坐标推断坐标系：没有一种坐标系符合至少 {pct}% 的行（有坐标的 {total} 行中，{parts_zh}）。"
            "请用 --crs 指定坐标系，或附上 .prj 文件",
            f"cannot infer the CRS from the coordinates: no CRS fits at least {pct}% of the rows (of "
            f"{total} rows with coordinates, {parts_en}). Pass --crs or include the .prj file",
            code="crs_needed",
            details={"rows": total, "kinds": described},
        )
    chosen = next(c for c in found if c.epsg == guess.epsg)
    usable = kinds != KIND_NONE
    return guess, row_fit(chosen.box, chosen.own, np.isin(kinds, chosen.kinds), usable, bounds)


def inferred_note(fit: RowFit) -> tuple[str, str]:
    """The report's line saying from how many rows the CRS was inferred."""
    zh = f"坐标系按有坐标的 {fit.total} 行中的 {fit.fit} 行推断"
    en = f"the CRS was inferred from {fit.fit} of {fit.total} rows with coordinates"
    if fit.misfit:
        zh += f"；其余 {fit.misfit} 行的坐标与之不符，已逐行拒绝（见被拒行及原因）"
        en += f"; the other {fit.misfit} do not fit it and are rejected by row (see the rejected rows)"
    return zh, en


def infer_crs(x: npt.ArrayLike, y: npt.ArrayLike, hint_lon: float | None = None) -> CRSGuess:
    """Infer the CRS of points without a ``.prj`` from the bulk of their coordinates.

    :func:`infer_crs_rows` for points: each ``(x, y)`` is a row.

    Parameters
    ----------
    x, y : array_like
        Coordinates (easting/lon, northing/lat) in the file's unknown CRS.
    hint_lon : float, optional
        Longitude (degrees) of the existing unit grid.

    Returns
    -------
    CRSGuess
        The EPSG CRS and the bilingual reason (what was inferred and why).

    Raises
    ------
    CRSError
        See :func:`infer_crs_rows`.
    """
    xs = np.asarray(x, dtype=np.float64).ravel()
    ys = np.asarray(y, dtype=np.float64).ravel()
    if xs.shape != ys.shape:
        raise CRSError("x 与 y 坐标数量不一致", f"x and y differ in length ({xs.size} vs {ys.size})")
    return infer_crs_rows(xs, ys, xs, ys, hint_lon)[0]
