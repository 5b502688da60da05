"""Coordinate reference systems: parse user input, read .prj files, warn about approximate
datum shifts and build transformers.

Conventions
-----------
* Coordinates are always passed as ``(x, y)`` = ``(easting, northing)`` or
  ``(lon, lat)`` in degrees; every transformer is built with ``always_xy=True``
  so the EPSG axis order (northing first for the Chinese GK systems) never
  applies.
* CGCS2000 (EPSG:4490) and WGS84 (EPSG:4326) differ by centimetres and are
  treated as interchangeable for display.
* GCJ-02 is not a CRS known to PROJ: it is WGS84 lon/lat with an obfuscating
  offset of a few hundred metres, handled by :mod:`geo.reading.gcj02`.
* A file's rows are judged one by one from the bounds of their geometry
  (:mod:`geo.reading.crs_fit`): a CRS is inferred only from the bulk of them
  (:mod:`geo.reading.crs_infer`), a declared one is checked against them
  (:mod:`geo.reading.crs_declared`), and each row that does not fit gets its reason —
  zero coordinates, X/Y swapped, another zone, out of range — to be rejected by row.
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
    "crs_key",
    "datum_warning",
    "gk_zone_epsg",
    "parse_crs",
    "refuse_external",
    "transformer",
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
EPSG_SRS_RE = re.compile(r"^epsg:\d+$", re.IGNORECASE)


@dataclass(frozen=True)
class CRSChoice:
    """A CRS chosen by the user.

    Parameters
    ----------
    crs : pyproj.CRS or None
        The CRS of the coordinates.  For GCJ-02 this is EPSG:4326, the CRS of the
        coordinates after :func:`geo.reading.gcj02.gcj02_to_wgs84`.
    gcj02 : bool
        True when the coordinates are GCJ-02 lon/lat (degrees) and must be passed
        through :func:`geo.reading.gcj02.gcj02_to_wgs84` before any PROJ transformation.
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


def crs_key(crs: pyproj.CRS) -> str:
    """A key for ``crs`` to cache on: its ``EPSG:n`` code when it has one, else its WKT."""
    srs = crs.srs.strip() if isinstance(crs.srs, str) else ""
    if EPSG_SRS_RE.match(srs):
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
    return _cached_transformer(crs_key(src), crs_key(dst))
