"""Coordinate reference systems: parse user input, read .prj files, infer a CRS
from coordinate magnitudes, warn about approximate datum shifts and convert
between WGS84 and GCJ-02.

Conventions
-----------
* Coordinates are always passed as ``(x, y)`` = ``(easting, northing)`` or
  ``(lon, lat)`` in degrees; every transformer is built with ``always_xy=True``
  so the EPSG axis order (northing first for the Chinese GK systems) never
  applies.
* CGCS2000 (EPSG:4490) and WGS84 (EPSG:4326) differ by centimetres and are
  treated as interchangeable for display.
* GCJ-02 is not a CRS known to PROJ: it is WGS84 lon/lat with an obfuscating
  offset of a few hundred metres, handled by :func:`wgs84_to_gcj02` and
  :func:`gcj02_to_wgs84`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import numpy.typing as npt
import pyproj
from pyproj.exceptions import CRSError as ProjCRSError

from geo.errors import CRSError

__all__ = [
    "CRSChoice",
    "CRSGuess",
    "crs_from_prj",
    "datum_warning",
    "gcj02_to_wgs84",
    "gk_zone_epsg",
    "infer_crs",
    "parse_crs",
    "transformer",
    "wgs84_to_gcj02",
]

FloatArray = npt.NDArray[np.float64]

#: Minimum pyproj identification confidence to replace a WKT CRS by its EPSG code.
#: 70 means "equivalent definition, different name"; lower values are partial matches.
EPSG_MIN_CONFIDENCE = 70

# Rough extent of China used by the magnitude checks (degrees, CGCS2000/WGS84).
CHINA_LON = (73.0, 135.0)
CHINA_LAT = (3.0, 54.0)
# Northing range of GK projections over China (metres): lat 3..54 degrees.
GK_NORTHING = (0.3e6, 6.1e6)
# Plausible easting without zone prefix in a 3-degree zone (metres, false easting 500 km).
GK3_EASTING = (200_000.0, 800_000.0)
# Plausible easting remainder after removing the zone prefix (metres).
GK3_PREFIXED_REMAINDER = (250_000.0, 750_000.0)
GK6_PREFIXED_REMAINDER = (160_000.0, 840_000.0)
# Distance (degrees of longitude) within which an interpretation counts as "near" the hint.
HINT_TOLERANCE_DEG = 3.0

_GCJ_NAMES = {"gcj02", "gcj-02", "gcj_02", "gcj", "gcj 02", "amap", "gaode", "火星坐标", "高德"}
_BD09_NAMES = {"bd09", "bd-09", "bd_09", "bd09ll", "baidu", "百度"}
_ALIASES: dict[str, int] = {
    "wgs84": 4326,
    "wgs 84": 4326,
    "wgs-84": 4326,
    "wgs_84": 4326,
    "cgcs2000": 4490,
    "cgcs 2000": 4490,
    "cgcs-2000": 4490,
    "cgcs_2000": 4490,
    "china2000": 4490,
    "国家2000": 4490,
    "2000国家大地坐标系": 4490,
    "webmercator": 3857,
    "web mercator": 3857,
    "web_mercator": 3857,
    "pseudo-mercator": 3857,
    "pseudomercator": 3857,
    "google": 3857,
    "900913": 3857,
    "epsg:900913": 3857,
    "xian80": 4610,
    "xian1980": 4610,
    "西安80": 4610,
    "beijing54": 4214,
    "beijing1954": 4214,
    "北京54": 4214,
}
_EPSG_RE = re.compile(r"^(?:epsg\s*[:：]?\s*)?(\d{4,6})$", re.IGNORECASE)
_EPSG_SRS_RE = re.compile(r"^epsg:\d+$", re.IGNORECASE)


@dataclass(frozen=True)
class CRSChoice:
    """A CRS chosen by the user.

    Parameters
    ----------
    crs : pyproj.CRS or None
        The CRS of the coordinates.  For GCJ-02 this is EPSG:4326, the CRS of the
        coordinates after :func:`gcj02_to_wgs84`.
    gcj02 : bool
        True when the coordinates are GCJ-02 lon/lat (degrees) and must be passed
        through :func:`gcj02_to_wgs84` before any PROJ transformation.
    epsg : int or None
        EPSG code, when the CRS has one (None for GCJ-02 and custom definitions).
    label : str
        Human-readable label, e.g. ``"EPSG:4548 CGCS2000 / 3-degree Gauss-Kruger CM 117E"``.
    """

    crs: pyproj.CRS | None
    gcj02: bool
    epsg: int | None
    label: str


@dataclass(frozen=True)
class CRSGuess:
    """A CRS inferred from coordinate magnitudes, with the reason in both languages."""

    crs: pyproj.CRS
    epsg: int
    reason_zh: str
    reason_en: str


def _label(crs: pyproj.CRS, epsg: int | None) -> str:
    if epsg is not None:
        return f"EPSG:{epsg} {crs.name}"
    name = crs.name if crs.name and crs.name.lower() != "unknown" else "custom CRS"
    return f"{name} (no EPSG code)"


def _from_epsg(code: int) -> pyproj.CRS:
    try:
        return pyproj.CRS.from_epsg(code)
    except ProjCRSError as exc:
        raise CRSError(
            f"未知的 EPSG 代码：{code}",
            f"unknown EPSG code: {code}",
            details={"value": str(code)},
        ) from exc


def _resolve_epsg(crs: pyproj.CRS) -> tuple[pyproj.CRS, int | None]:
    """Replace ``crs`` by its EPSG equivalent when pyproj identifies one.

    A bound CRS (WKT with ``TOWGS84``) is kept as given: its datum-shift
    parameters would be lost by the replacement.
    """
    if crs.is_bound:
        return crs, None
    code = crs.to_epsg(min_confidence=EPSG_MIN_CONFIDENCE)
    if code is None:
        return crs, None
    try:
        return pyproj.CRS.from_epsg(code), code
    except ProjCRSError:
        return crs, None


def _choice(crs: pyproj.CRS, epsg: int | None) -> CRSChoice:
    return CRSChoice(crs=crs, gcj02=False, epsg=epsg, label=_label(crs, epsg))


def parse_crs(value: str) -> CRSChoice:
    """Parse a CRS given by a user (CLI ``--crs`` or a form field).

    Parameters
    ----------
    value : str
        One of: ``"EPSG:4548"``, ``"epsg:4548"``, ``"4548"``; ``"gcj02"``,
        ``"GCJ-02"``, ``"gcj"`` (Gaode/Tencent lon/lat); ``"wgs84"``;
        ``"cgcs2000"`` (EPSG:4490); ESRI/EPSG names such as
        ``"CGCS2000_3_Degree_GK_CM_117E"`` or ``"CGCS2000_3_Degree_GK_Zone_39"``;
        a WKT or PROJ string.

    Returns
    -------
    CRSChoice
        For GCJ-02, ``gcj02=True`` and ``crs`` is EPSG:4326 (lon/lat degrees after
        removing the GCJ-02 offset); otherwise ``crs`` is the parsed CRS, replaced
        by its EPSG definition when pyproj identifies one.

    Raises
    ------
    CRSError
        The value is empty, ambiguous (a bare ``"2000"``), BD-09, or unknown to PROJ.
    """
    text = value.strip().lstrip("\ufeff").strip() if isinstance(value, str) else ""
    if not text:
        raise CRSError("未指定坐标系", "no CRS given", details={"value": value})
    key = text.lower()
    if key in _GCJ_NAMES:
        return CRSChoice(crs=pyproj.CRS.from_epsg(4326), gcj02=True, epsg=None, label="GCJ-02")
    if key in _BD09_NAMES:
        raise CRSError(
            "不支持百度 BD-09 坐标，请先转换为 GCJ-02 或 WGS84",
            "Baidu BD-09 coordinates are not supported: convert them to GCJ-02 or WGS84 first",
            details={"value": value},
        )
    if key == "2000":
        raise CRSError(
            "“2000”有歧义：CGCS2000 地理坐标请写 cgcs2000 或 EPSG:4490，投影坐标请写具体的 EPSG 代码（如 EPSG:4548）",
            "'2000' is ambiguous: write cgcs2000 or EPSG:4490 for CGCS2000 lon/lat, or the EPSG code "
            "of the projected CRS (e.g. EPSG:4548)",
            details={"value": value},
        )
    if key in _ALIASES:
        code = _ALIASES[key]
        return _choice(_from_epsg(code), code)
    match = _EPSG_RE.match(text)
    if match:
        code = int(match.group(1))
        return _choice(_from_epsg(code), code)

    refuse_external(text, "crs")
    candidates = [text]
    if " " in text and not text.startswith(("+", "{")) and "[" not in text:
        candidates.append(re.sub(r"\s+", "_", text))
    for candidate in candidates:
        try:
            crs = pyproj.CRS.from_user_input(candidate)
        except ProjCRSError:
            continue
        resolved, resolved_code = _resolve_epsg(crs)
        refuse_external(resolved.to_wkt() or "", "crs")
        return _choice(resolved, resolved_code)
    raise CRSError(
        f"无法识别的坐标系：{text[:80]}。请使用 EPSG 代码（如 EPSG:4548）、cgcs2000、wgs84、gcj02、"
        "ESRI 名称（如 CGCS2000_3_Degree_GK_CM_117E）或 WKT/PROJ 字符串",
        f"unknown CRS: {text[:80]}. Use an EPSG code (e.g. EPSG:4548), cgcs2000, wgs84, gcj02, an ESRI "
        "name (e.g. CGCS2000_3_Degree_GK_CM_117E) or a WKT/PROJ string",
        details={"value": text[:80]},
    )


def crs_from_prj(text: str) -> pyproj.CRS:
    """Read the CRS of a shapefile ``.prj`` (OGC or ESRI-flavoured WKT).

    Parameters
    ----------
    text : str
        Content of the ``.prj`` file.

    Returns
    -------
    pyproj.CRS
        The EPSG definition when pyproj identifies the WKT with confidence
        ``>= EPSG_MIN_CONFIDENCE`` (e.g. ESRI ``CGCS2000_3_Degree_GK_CM_117E`` gives
        EPSG:4548); otherwise the CRS as written.  A WKT carrying ``TOWGS84``
        parameters is kept as written so the parameters are used.

    Raises
    ------
    CRSError
        Empty or unparsable WKT.
    """
    wkt = text.strip().lstrip("\ufeff").strip() if isinstance(text, str) else ""
    if not wkt:
        raise CRSError(".prj 文件为空", "the .prj file is empty")
    refuse_external(wkt, ".prj")
    try:
        crs = pyproj.CRS.from_wkt(wkt)
    except ProjCRSError as exc:
        raise CRSError(
            ".prj 文件内容不是可识别的 WKT 坐标系定义",
            "the .prj file does not hold a readable WKT CRS definition",
        ) from exc
    resolved, _code = _resolve_epsg(crs)
    refuse_external(resolved.to_wkt() or "", ".prj")
    return resolved


#: What in a CRS definition makes PROJ open a file or fetch a URL: init files, grids,
#: pipelines (which may name grids), WKT parameter files, URLs.
_EXTERNAL = re.compile(
    r"init\s*=|grids\s*=|nadgrids|geoidgrids|pipeline|PARAMETERFILE|(?<![A-Za-z0-9_])(?:https?|ftp|file)\s*:",
    re.IGNORECASE,
)


def refuse_external(text: str, what: str) -> None:
    """Refuse a CRS definition that names a file, a grid or a URL (PROJ would open it).

    Parameters
    ----------
    text : str
        The definition as given (``--crs``, a form field, a ``.prj``), or a parsed CRS's WKT.
    what : str
        Where it came from, for the message.

    Raises
    ------
    CRSError
        ``crs_external``.
    """
    if _EXTERNAL.search(text):
        raise CRSError(
            f"坐标系定义（{what}）引用了文件、网格或网址，不予读取：请使用 EPSG 代码或不含外部引用的 WKT",
            f"the CRS definition ({what}) refers to a file, grid or URL, which is not read: use an EPSG "
            "code or a WKT without external references",
            code="crs_external",
        )


def gk_zone_epsg(lon: float) -> int:
    """EPSG code of the CGCS2000 3-degree Gauss-Kruger CRS without zone prefix for a longitude.

    Parameters
    ----------
    lon : float
        Longitude in degrees (CGCS2000/WGS84).

    Returns
    -------
    int
        ``4534 + (CM - 75) / 3`` with central meridian ``CM = 3 * round(lon / 3)``,
        e.g. 4548 (CM 117E) for 118.4E.  Halves round up (zone edges belong to the
        eastern zone).

    Raises
    ------
    CRSError
        The central meridian falls outside 75E..135E (EPSG:4534..4554).
    """
    if not math.isfinite(lon):
        raise CRSError("经度无效", f"invalid longitude: {lon}")
    cm = 3 * math.floor(lon / 3.0 + 0.5)
    if not 75 <= cm <= 135:
        raise CRSError(
            f"经度 {lon:.3f} 超出 CGCS2000 3 度带范围（中央经线 75°E–135°E）",
            f"longitude {lon:.3f} is outside the CGCS2000 3-degree zones (central meridian 75E-135E)",
            details={"lon": lon},
        )
    return 4534 + (cm - 75) // 3


_DATUM_NAMES = {
    "xian1980": ("西安80", "Xi'an 1980"),
    "beijing1954": ("北京54", "Beijing 1954"),
    "newbeijing": ("新北京54", "New Beijing"),
}


def datum_warning(crs: pyproj.CRS) -> tuple[str, str] | None:
    """Warn when a CRS is based on a datum PROJ only shifts approximately to CGCS2000.

    Parameters
    ----------
    crs : pyproj.CRS
        Any CRS.

    Returns
    -------
    tuple of (str, str) or None
        ``(zh, en)`` for CRSs on the Xi'an 1980, Beijing 1954 or New Beijing datum
        (EPSG 4610, 2327-2390, 4214, 2401-2442, 21413-21483 ...): PROJ has no
        published transformation to CGCS2000 and applies a ballpark offset, so
        positions may be off by tens of metres or more.  None for other datums and
        for bound CRSs, whose own ``TOWGS84`` parameters are used instead.
    """
    if crs.is_bound:
        return None
    geodetic = crs.geodetic_crs
    datum = geodetic.datum if geodetic is not None else None
    if datum is None:
        return None
    norm = re.sub(r"[^a-z0-9]", "", datum.name.lower())
    for needle, (name_zh, name_en) in _DATUM_NAMES.items():
        if needle in norm:
            return (
                f"坐标系 {crs.name} 基于{name_zh}基准：转换到 CGCS2000 只是近似的（PROJ 仅作粗略的 ballpark 转换，"
                "误差可能达数十米甚至更大）。如有本地转换参数（七参数），请先将数据转换为 CGCS2000。",
                f"CRS {crs.name} uses the {name_en} datum: the shift to CGCS2000 is approximate (PROJ "
                "applies a ballpark transformation; errors of tens of metres or more are possible). If "
                "local transformation parameters (7-parameter) exist, convert the data to CGCS2000 first.",
            )
    return None


def _crs_key(crs: pyproj.CRS) -> str:
    srs = crs.srs.strip() if isinstance(crs.srs, str) else ""
    if _EPSG_SRS_RE.match(srs):
        return srs.upper()
    return crs.to_wkt()


@lru_cache(maxsize=64)
def _cached_transformer(src_key: str, dst_key: str) -> pyproj.Transformer:
    return pyproj.Transformer.from_crs(
        pyproj.CRS.from_user_input(src_key), pyproj.CRS.from_user_input(dst_key), always_xy=True
    )


def transformer(src: pyproj.CRS, dst: pyproj.CRS) -> pyproj.Transformer:
    """A cached ``pyproj.Transformer`` from ``src`` to ``dst`` with ``always_xy=True``.

    Parameters
    ----------
    src, dst : pyproj.CRS
        Source and target CRS.  Input and output are ``(x, y)`` / ``(lon, lat)``
        in the units of each CRS (metres or degrees).

    Returns
    -------
    pyproj.Transformer
        Shared between calls with the same EPSG code or WKT (pyproj transformers
        are safe to share between threads).
    """
    return _cached_transformer(_crs_key(src), _crs_key(dst))


# --------------------------------------------------------------------------- inference


def _fmt(v: float) -> str:
    return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.4f}"


def _lonlat(epsg: int, x: float, y: float) -> tuple[float, float]:
    tr = transformer(pyproj.CRS.from_epsg(epsg), pyproj.CRS.from_epsg(4490))
    lon, lat = tr.transform(x, y)
    return float(lon), float(lat)


def _in_china(lon: float, lat: float, margin: float = 0.0) -> bool:
    return (
        math.isfinite(lon)
        and math.isfinite(lat)
        and CHINA_LON[0] - margin <= lon <= CHINA_LON[1] + margin
        and CHINA_LAT[0] - margin <= lat <= CHINA_LAT[1] + margin
    )


def _between(lo: float, hi: float, bounds: tuple[float, float]) -> bool:
    return bounds[0] <= lo and hi <= bounds[1]


@dataclass(frozen=True)
class _Stats:
    n: int
    x_lo: float
    x_med: float
    x_hi: float
    y_lo: float
    y_med: float
    y_hi: float


def _stats(x: FloatArray, y: FloatArray) -> _Stats:
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


def _try_geographic(s: _Stats) -> CRSGuess | None:
    if not (_between(s.x_lo, s.x_hi, CHINA_LON) and _between(s.y_lo, s.y_hi, CHINA_LAT)):
        return None
    return _guess(
        4490,
        f"{_PREFIX_ZH} CGCS2000 经纬度(EPSG:4490)：x 在 73–135、y 在 3–54 之间"
        f"（中位数 {s.x_med:.4f}°E, {s.y_med:.4f}°N）；WGS84 与之相差仅厘米级",
        f"{_PREFIX_EN} CGCS2000 lon/lat (EPSG:4490): x within 73-135 and y within 3-54 "
        f"(median {s.x_med:.4f}E {s.y_med:.4f}N); WGS84 differs by centimetres only",
    )


def _try_gk3_prefixed(s: _Stats) -> CRSGuess | None:
    if not _between(s.y_lo, s.y_hi, GK_NORTHING):
        return None
    zone_lo, zone_hi = math.floor(s.x_lo / 1e6), math.floor(s.x_hi / 1e6)
    if zone_lo != zone_hi or not 25 <= zone_lo <= 45:
        return None
    rem_lo, rem_hi = s.x_lo - zone_lo * 1e6, s.x_hi - zone_lo * 1e6
    if not _between(rem_lo, rem_hi, GK3_PREFIXED_REMAINDER):
        return None
    epsg = 4513 + (zone_lo - 25)
    lon, lat = _lonlat(epsg, s.x_med, s.y_med)
    if not _in_china(lon, lat, margin=2.0):
        return None
    cm = 3 * zone_lo
    return _guess(
        epsg,
        f"{_PREFIX_ZH} CGCS2000 3度带第{zone_lo}带(EPSG:{epsg}，中央经线 {cm}°E)：东坐标为 8 位且前两位为带号 "
        f"{zone_lo}（中位数 {_fmt(s.x_med)}, {_fmt(s.y_med)}，约 {lon:.2f}°E {lat:.2f}°N）；{_DATUM_ZH}",
        f"{_PREFIX_EN} CGCS2000 3-degree Gauss-Kruger zone {zone_lo} (EPSG:{epsg}, central meridian "
        f"{cm}E): 8-digit eastings whose first two digits are the zone number {zone_lo} (median "
        f"{_fmt(s.x_med)}, {_fmt(s.y_med)}, about {lon:.2f}E {lat:.2f}N); {_DATUM_EN}",
    )


def _try_gk3_unprefixed(s: _Stats, hint_lon: float | None) -> CRSGuess | None:
    if not (_between(s.x_lo, s.x_hi, GK3_EASTING) and _between(s.y_lo, s.y_hi, GK_NORTHING)):
        return None
    if hint_lon is None:
        raise CRSError(
            f"坐标像是不带带号的 3 度带高斯-克吕格投影（东坐标 6 位，中位数 {_fmt(s.x_med)}, {_fmt(s.y_med)}），"
            "但中央经线无法从数值判断，请用 --crs 指定坐标系（如中央经线 117°E 为 EPSG:4548）",
            f"the coordinates look like 3-degree Gauss-Kruger without zone prefix (6-digit eastings, "
            f"median {_fmt(s.x_med)}, {_fmt(s.y_med)}) but the central meridian cannot be told from the "
            "numbers: pass --crs (e.g. EPSG:4548 for central meridian 117E)",
            code="crs_needed",
            details={"x_median": s.x_med, "y_median": s.y_med},
        )
    epsg = gk_zone_epsg(hint_lon)
    cm = 75 + 3 * (epsg - 4534)
    lon, lat = _lonlat(epsg, s.x_med, s.y_med)
    return _guess(
        epsg,
        f"{_PREFIX_ZH} CGCS2000 3度带（无带号）中央经线 {cm}°E(EPSG:{epsg})：东坐标为 6 位（中位数 "
        f"{_fmt(s.x_med)}, {_fmt(s.y_med)}），中央经线取自已有网格所在经度 {hint_lon:.2f}°E，"
        f"数据约位于 {lon:.2f}°E {lat:.2f}°N；假定为 3 度带而非 6 度带或 UTM，{_DATUM_ZH}",
        f"{_PREFIX_EN} CGCS2000 3-degree Gauss-Kruger without zone prefix, central meridian {cm}E "
        f"(EPSG:{epsg}): 6-digit eastings (median {_fmt(s.x_med)}, {_fmt(s.y_med)}); the central "
        f"meridian comes from the existing grid's longitude {hint_lon:.2f}E, placing the data near "
        f"{lon:.2f}E {lat:.2f}N; a 3-degree zone (not 6-degree or UTM) is assumed and {_DATUM_EN}",
    )


def _try_mercator_or_gk6(s: _Stats, hint_lon: float | None) -> CRSGuess | None:
    if not (s.x_lo >= 8e6 and s.x_hi < 2.4e7 and s.y_lo > 0):
        return None
    # Each candidate: (epsg, label_zh, label_en, lon, lat)
    candidates: list[tuple[int, str, str, float, float]] = []
    merc = [_lonlat(3857, x, y) for x, y in ((s.x_lo, s.y_lo), (s.x_med, s.y_med), (s.x_hi, s.y_hi))]
    if all(_in_china(lon, lat) for lon, lat in merc):
        candidates.append((3857, "Web 墨卡托", "web mercator", merc[1][0], merc[1][1]))
    zone_lo, zone_hi = math.floor(s.x_lo / 1e6), math.floor(s.x_hi / 1e6)
    if (
        zone_lo == zone_hi
        and 13 <= zone_lo <= 23
        and _between(s.x_lo - zone_lo * 1e6, s.x_hi - zone_lo * 1e6, GK6_PREFIXED_REMAINDER)
        and _between(s.y_lo, s.y_hi, GK_NORTHING)
    ):
        epsg6 = 4491 + (zone_lo - 13)
        lon6, lat6 = _lonlat(epsg6, s.x_med, s.y_med)
        candidates.append(
            (
                epsg6,
                f"CGCS2000 6度带第{zone_lo}带",
                f"CGCS2000 6-degree Gauss-Kruger zone {zone_lo}",
                lon6,
                lat6,
            )
        )
    if not candidates:
        return None
    where_zh = "；".join(f"按 EPSG:{c[0]}（{c[1]}）约位于 {c[3]:.2f}°E {c[4]:.2f}°N" for c in candidates)
    where_en = "; ".join(f"as EPSG:{c[0]} ({c[2]}) near {c[3]:.2f}E {c[4]:.2f}N" for c in candidates)
    median = f"{_fmt(s.x_med)}, {_fmt(s.y_med)}"
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


def _infer(s: _Stats, hint_lon: float | None) -> CRSGuess | None:
    return (
        _try_geographic(s)
        or _try_gk3_prefixed(s)
        or _try_gk3_unprefixed(s, hint_lon)
        or _try_mercator_or_gk6(s, hint_lon)
    )


def infer_crs(x: npt.ArrayLike, y: npt.ArrayLike, hint_lon: float | None = None) -> CRSGuess:
    """Infer the CRS of coordinates without a ``.prj`` from their magnitudes.

    Robust statistics (1st, 50th and 99th percentiles over finite values) are
    used, so a few stray points do not change the answer.  Families checked, in
    order:

    * x 73..135 and y 3..54: CGCS2000 lon/lat in degrees (EPSG:4490);
    * 8-digit easting starting with a 3-degree zone 25..45, remainder about
      250 km..750 km, northing 0.3e6..6.1e6 m: CGCS2000 3-degree GK with zone
      prefix (EPSG 4513 + zone - 25);
    * 6-digit easting 200 km..800 km, northing 0.3e6..6.1e6 m: CGCS2000 3-degree
      GK without zone prefix; the central meridian comes from ``hint_lon``
      (EPSG 4534..4554);
    * x 8e6..2.4e7: web mercator (EPSG:3857) if it maps into China, and/or a
      prefixed CGCS2000 6-degree GK zone 13..23 (EPSG 4491..4501); when both fit,
      the one placing the data within 3 degrees of ``hint_lon`` wins.

    Parameters
    ----------
    x, y : array_like
        Coordinates (easting/lon, northing/lat) in the file's unknown CRS.
    hint_lon : float, optional
        Longitude (degrees) of the existing unit grid, used to pick the central
        meridian or to break the web-mercator / 6-degree ambiguity.

    Returns
    -------
    CRSGuess
        The EPSG CRS and the bilingual reason (what was inferred and why).

    Raises
    ------
    CRSError
        No finite coordinates, an ambiguity ``hint_lon`` cannot settle, or
        magnitudes that fit no family.  The data is never guessed silently.
    """
    xs = np.asarray(x, dtype=np.float64).ravel()
    ys = np.asarray(y, dtype=np.float64).ravel()
    if xs.shape != ys.shape:
        raise CRSError("x 与 y 坐标数量不一致", f"x and y differ in length ({xs.size} vs {ys.size})")
    if hint_lon is not None and not math.isfinite(hint_lon):
        hint_lon = None
    finite = np.isfinite(xs) & np.isfinite(ys)
    if not finite.any():
        raise CRSError(
            "没有有效坐标，无法推断坐标系，请用 --crs 指定",
            "no finite coordinates to infer the CRS from: pass --crs",
            code="crs_needed",
        )
    xs, ys = xs[finite], ys[finite]
    s = _stats(xs, ys)
    guess = _infer(s, hint_lon)
    if guess is not None:
        return guess
    swapped_zh = swapped_en = ""
    try:
        if _infer(_stats(ys, xs), hint_lon) is not None:
            swapped_zh = "；交换 x/y 后可以识别，请检查坐标列是否颠倒（北坐标/纬度在前）"
            swapped_en = "; with x and y swapped they would fit: check whether the columns are reversed"
    except CRSError:
        swapped_zh = "；交换 x/y 后像是投影坐标，请检查坐标列是否颠倒"
        swapped_en = "; with x and y swapped they look projected: check whether the columns are reversed"
    raise CRSError(
        f"无法从坐标量级推断坐标系（x 中位数 {_fmt(s.x_med)}，y 中位数 {_fmt(s.y_med)}）{swapped_zh}。"
        "请用 --crs 指定",
        f"cannot infer the CRS from coordinate magnitudes (median x {_fmt(s.x_med)}, median y "
        f"{_fmt(s.y_med)}){swapped_en}. Pass --crs",
        code="crs_needed",
        details={"x_median": s.x_med, "y_median": s.y_med},
    )


# --------------------------------------------------------------------------- GCJ-02

_GCJ_A = 6378245.0  # Krasovsky 1940 semi-major axis (m)
_GCJ_EE = 0.00669342162296594323  # Krasovsky 1940 first eccentricity squared
# Box outside which GCJ-02 leaves coordinates unchanged (degrees).
_GCJ_LON = (72.004, 137.8347)
_GCJ_LAT = (0.8293, 55.8271)
_GCJ_INVERSE_TOL = 1e-10  # degrees
_GCJ_INVERSE_MAX_ITER = 20


def _gcj_inside(lon: FloatArray, lat: FloatArray) -> npt.NDArray[np.bool_]:
    return (lon >= _GCJ_LON[0]) & (lon <= _GCJ_LON[1]) & (lat >= _GCJ_LAT[0]) & (lat <= _GCJ_LAT[1])


def _gcj_offset(lon: FloatArray, lat: FloatArray) -> tuple[FloatArray, FloatArray]:
    """GCJ-02 offset (degrees) to add to WGS84 lon/lat; inputs must be inside China."""
    x = lon - 105.0
    y = lat - 35.0
    pi = np.pi
    sqrt_abs_x = np.sqrt(np.abs(x))
    common = (20.0 * np.sin(6.0 * x * pi) + 20.0 * np.sin(2.0 * x * pi)) * 2.0 / 3.0
    dlat = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * sqrt_abs_x
    dlat = dlat + common
    dlat = dlat + (20.0 * np.sin(y * pi) + 40.0 * np.sin(y / 3.0 * pi)) * 2.0 / 3.0
    dlat = dlat + (160.0 * np.sin(y / 12.0 * pi) + 320.0 * np.sin(y * pi / 30.0)) * 2.0 / 3.0
    dlon = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * sqrt_abs_x
    dlon = dlon + common
    dlon = dlon + (20.0 * np.sin(x * pi) + 40.0 * np.sin(x / 3.0 * pi)) * 2.0 / 3.0
    dlon = dlon + (150.0 * np.sin(x / 12.0 * pi) + 300.0 * np.sin(x / 30.0 * pi)) * 2.0 / 3.0
    rad_lat = lat / 180.0 * pi
    magic = 1.0 - _GCJ_EE * np.sin(rad_lat) ** 2
    sqrt_magic = np.sqrt(magic)
    dlat = (dlat * 180.0) / ((_GCJ_A * (1.0 - _GCJ_EE)) / (magic * sqrt_magic) * pi)
    dlon = (dlon * 180.0) / (_GCJ_A / sqrt_magic * np.cos(rad_lat) * pi)
    return dlon, dlat


def _as_lonlat(lon: npt.ArrayLike, lat: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    lon_a, lat_a = np.broadcast_arrays(np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64))
    return lon_a.copy(), lat_a.copy()


def wgs84_to_gcj02(lon: npt.ArrayLike, lat: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Apply the GCJ-02 ("Mars coordinates") obfuscation to WGS84 lon/lat.

    Parameters
    ----------
    lon, lat : array_like or float
        WGS84 (or CGCS2000) longitude and latitude in degrees; broadcast together.

    Returns
    -------
    (ndarray, ndarray)
        GCJ-02 lon/lat in degrees, float64, of the broadcast shape (0-d for
        scalars).  Points outside the China box (72.004..137.8347E,
        0.8293..55.8271N) and non-finite values are returned unchanged.
    """
    lon_a, lat_a = _as_lonlat(lon, lat)
    inside = _gcj_inside(lon_a, lat_a)
    if inside.any():
        dlon, dlat = _gcj_offset(lon_a[inside], lat_a[inside])
        lon_a[inside] += dlon
        lat_a[inside] += dlat
    return lon_a, lat_a


def gcj02_to_wgs84(lon: npt.ArrayLike, lat: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Remove the GCJ-02 offset: GCJ-02 lon/lat to WGS84 lon/lat.

    Solved by fixed-point iteration ``w <- w - (gcj(w) - g)`` until the residual
    is below 1e-10 degrees (typically 3-5 iterations), far better than the
    1e-7 degrees (about 1 cm) required.

    Parameters
    ----------
    lon, lat : array_like or float
        GCJ-02 longitude and latitude in degrees; broadcast together.

    Returns
    -------
    (ndarray, ndarray)
        WGS84 lon/lat in degrees, float64, of the broadcast shape.  Points
        outside China and non-finite values are returned unchanged.
    """
    g_lon_all, g_lat_all = _as_lonlat(lon, lat)
    finite = np.isfinite(g_lon_all) & np.isfinite(g_lat_all)
    g_lon, g_lat = g_lon_all[finite], g_lat_all[finite]
    w_lon, w_lat = g_lon.copy(), g_lat.copy()
    for _ in range(_GCJ_INVERSE_MAX_ITER):
        if w_lon.size == 0:
            break
        f_lon, f_lat = wgs84_to_gcj02(w_lon, w_lat)
        r_lon = f_lon - g_lon
        r_lat = f_lat - g_lat
        w_lon = w_lon - r_lon
        w_lat = w_lat - r_lat
        if float(np.maximum(np.abs(r_lon), np.abs(r_lat)).max()) < _GCJ_INVERSE_TOL:
            break
    g_lon_all[finite] = w_lon
    g_lat_all[finite] = w_lat
    return g_lon_all, g_lat_all
