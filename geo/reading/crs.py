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
* A file's rows are judged one by one from the bounds of their geometry
  (:func:`row_kinds`): a CRS is inferred only from the bulk of them
  (:func:`infer_crs_rows`), a declared one is checked against them
  (:func:`fit_rows`), and each row that does not fit gets its reason — zero
  coordinates, X/Y swapped, another zone, out of range (:class:`RowFit`,
  :func:`misfit_reason`) — to be rejected by row.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import numpy.typing as npt
import pyproj
from pyproj.exceptions import CRSError as ProjCRSError
from pyproj.exceptions import ProjError

from geo.errors import CRSError

__all__ = [
    "CRSChoice",
    "CRSGuess",
    "RowFit",
    "crs_from_prj",
    "datum_warning",
    "declared_mismatch",
    "fit_rows",
    "gcj02_to_wgs84",
    "gk_zone_epsg",
    "infer_crs",
    "infer_crs_rows",
    "inferred_note",
    "misfit_reason",
    "parse_crs",
    "row_kinds",
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

#: Share of the rows with coordinates that a CRS must fit to be inferred from magnitudes.
#: The rows that do not fit are rejected by row; when no CRS fits this many the file is
#: refused.  High enough that a file of mixed CRSs is never read as one of them, low enough
#: that a bureau's file with a few swapped or stray rows still imports.
INFER_MAJORITY = 0.8
#: A declared CRS (.prj, ``--crs``, the file's own) that fewer than this share of the rows fit
#: is refused for the whole file, as a file mostly far from the grid is.
DECLARED_MAJORITY = 0.5

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
_N_KINDS = 400

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
class _Candidate:
    """A CRS the bulk of a file may be in: its plausible box and the row kinds that fit it."""

    epsg: int | None  # None: 3-degree GK without prefix whose central meridian is unknown
    box: Box
    kinds: tuple[int, ...]
    own: int  # its kind, as :func:`_normalised` gives it


_GEO = _Candidate(4490, GEO_BOX, (KIND_GEO,), KIND_GEO)
_MERC = _Candidate(
    3857,
    MERC_BOX,
    (KIND_MERC, *(KIND_GK6_MERC + z for z in range(GK6_ZONES[0], GK6_ZONES[1] + 1))),
    KIND_MERC,
)


def _gk3(epsg: int | None) -> _Candidate:
    return _Candidate(epsg, GK3_BOX, (KIND_GK3,), KIND_GK3)


def _gk3_zone(zone: int) -> _Candidate:
    return _Candidate(
        4513 + zone - GK3_ZONES[0],
        _zone_box(zone, GK3_PREFIXED_REMAINDER),
        (KIND_GK3_ZONE + zone,),
        KIND_GK3_ZONE + zone,
    )


def _gk6_zone(zone: int) -> _Candidate:
    return _Candidate(
        4491 + zone - GK6_ZONES[0],
        _zone_box(zone, GK6_PREFIXED_REMAINDER),
        (KIND_GK6_ZONE + zone, KIND_GK6_MERC + zone),
        KIND_GK6_ZONE + zone,
    )


def _candidate_for_epsg(epsg: int) -> _Candidate | None:
    if epsg in (4490, 4326):
        return _GEO
    if 4513 <= epsg <= 4533:
        return _gk3_zone(epsg - 4513 + GK3_ZONES[0])
    if 4534 <= epsg <= 4554:
        return _gk3(epsg)
    if 4491 <= epsg <= 4501:
        return _gk6_zone(epsg - 4491 + GK6_ZONES[0])
    if epsg == 3857:
        return _MERC
    return None


def _bounds(
    xmin: npt.ArrayLike, ymin: npt.ArrayLike, xmax: npt.ArrayLike, ymax: npt.ArrayLike
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    arrays = [np.asarray(a, dtype=np.float64).reshape(-1) for a in (xmin, ymin, xmax, ymax)]
    if len({a.size for a in arrays}) != 1:
        raise CRSError("x 与 y 坐标数量不一致", "x and y differ in length")
    return arrays[0], arrays[1], arrays[2], arrays[3]


def _inside(box: Box, xmin: FloatArray, ymin: FloatArray, xmax: FloatArray, ymax: FloatArray) -> BoolArray:
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
    x0, y0, x1, y1 = _bounds(xmin, ymin, xmax, ymax)
    finite = np.isfinite(x0) & np.isfinite(y0) & np.isfinite(x1) & np.isfinite(y1)
    kinds = np.where(finite, KIND_UNKNOWN, KIND_NONE).astype(np.int16)
    kinds[_inside(GEO_BOX, x0, y0, x1, y1)] = KIND_GEO
    kinds[_inside(GK3_BOX, x0, y0, x1, y1)] = KIND_GK3
    # 7- and 8-digit eastings: web mercator and the zones with their prefix (finite by the test)
    idx = np.flatnonzero(_inside(_LARGE_BOX, x0, y0, x1, y1))
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
    merc = _inside(MERC_BOX, x0, y0, x1, y1)
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


def _normalised(kinds: Int16Array) -> Int16Array:
    """Kinds with ``KIND_GK6_MERC + z`` read as ``KIND_GK6_ZONE + z``."""
    return np.where(kinds >= KIND_GK6_MERC, kinds - (KIND_GK6_MERC - KIND_GK6_ZONE), kinds).astype(np.int16)


def _misfit_codes(
    box: Box, own: int, xmin: FloatArray, ymin: FloatArray, xmax: FloatArray, ymax: FloatArray
) -> Int16Array:
    """Why each of the given rows (none of which fits ``box``) does not fit: zero coordinates,
    then X/Y swapped, then another zone or kind, else outside the range."""
    kinds = _normalised(row_kinds(xmin, ymin, xmax, ymax))
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
    codes[_inside(box, ymin, xmin, ymax, xmax)] = MISFIT_SWAPPED
    codes[(xmin == 0) | (ymin == 0) | (xmax == 0) | (ymax == 0)] = MISFIT_ZERO
    return codes


def _row_fit(
    box: Box, own: int, fits: BoolArray, usable: BoolArray, bounds: tuple[FloatArray, ...]
) -> RowFit:
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


# ----- a declared CRS


def fit_rows(
    crs: pyproj.CRS, xmin: npt.ArrayLike, ymin: npt.ArrayLike, xmax: npt.ArrayLike, ymax: npt.ArrayLike
) -> RowFit | None:
    """Which rows have coordinates plausible in a declared CRS (a .prj, ``--crs``, the file's own).

    The plausible range is that of :func:`infer_crs_rows` for the CRSs it infers (lon/lat over
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
    found = _declared_box(_crs_key(crs))
    if found is None:
        return None
    box, own = found
    bounds = _bounds(xmin, ymin, xmax, ymax)
    usable = np.isfinite(bounds[0]) & np.isfinite(bounds[1]) & np.isfinite(bounds[2]) & np.isfinite(bounds[3])
    return _row_fit(box, own, _inside(box, *bounds), usable, bounds)


@lru_cache(maxsize=64)
def _declared_box(key: str) -> tuple[Box, int] | None:
    crs = pyproj.CRS.from_user_input(key)
    if crs.is_geographic:
        return GEO_BOX, KIND_GEO
    if _EPSG_SRS_RE.match(key):
        epsg: int | None = int(key.split(":")[1])
    else:
        epsg = crs.to_epsg(min_confidence=EPSG_MIN_CONFIDENCE) if not crs.is_bound else None
    known = _candidate_for_epsg(epsg) if epsg is not None else None
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
    return box, int(_normalised(row_kinds(cx, cy, cx, cy))[0])


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
    parts_zh, parts_en, counts = _describe(*_bounds(*bounds))
    label = label[:80]
    return CRSError(
        f"坐标与{where_zh}坐标系 {label} 不符：有坐标的 {fit.total} 行中只有 {fit.fit} 行符合"
        f"（{parts_zh}）。请检查坐标系，或用 --crs 指定",
        f"the coordinates do not fit {where_en} CRS {label}: only {fit.fit} of {fit.total} rows with "
        f"coordinates do ({parts_en}). Check the CRS or pass --crs",
        code="crs_mismatch",
        details={"rows": fit.total, "fit": fit.fit, "kinds": counts},
    )


# ----- inference


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


@dataclass(frozen=True)
class _Stats:
    n: int
    x_lo: float
    x_med: float
    x_hi: float
    y_lo: float
    y_med: float
    y_hi: float


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
    lon, lat = _lonlat(epsg, s.x_med, s.y_med)
    if not _in_china(lon, lat, margin=2.0):
        return None
    cm = 3 * zone
    return _guess(
        epsg,
        f"{_PREFIX_ZH} CGCS2000 3度带第{zone}带(EPSG:{epsg}，中央经线 {cm}°E)：东坐标为 8 位且前两位为带号 "
        f"{zone}（中位数 {_fmt(s.x_med)}, {_fmt(s.y_med)}，约 {lon:.2f}°E {lat:.2f}°N）；{_DATUM_ZH}",
        f"{_PREFIX_EN} CGCS2000 3-degree Gauss-Kruger zone {zone} (EPSG:{epsg}, central meridian "
        f"{cm}E): 8-digit eastings whose first two digits are the zone number {zone} (median "
        f"{_fmt(s.x_med)}, {_fmt(s.y_med)}, about {lon:.2f}E {lat:.2f}N); {_DATUM_EN}",
    )


def _try_gk3_unprefixed(s: _Stats, hint_lon: float | None) -> CRSGuess:
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


def _mercator_or_gk6(found: list[tuple[_Candidate, _Stats]], hint_lon: float | None) -> CRSGuess:
    """Web mercator and/or a prefixed 6-degree zone, each fitting the bulk of the rows."""
    # Each candidate: (epsg, label_zh, label_en, lon, lat)
    candidates: list[tuple[int, str, str, float, float]] = []
    for cand, s in found:
        assert cand.epsg is not None
        lon, lat = _lonlat(cand.epsg, s.x_med, s.y_med)
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


def _viable(counts: npt.NDArray[np.int64], total: int, hint_lon: float | None) -> list[_Candidate]:
    """The candidate CRSs that at least :data:`INFER_MAJORITY` of the ``total`` rows fit."""

    def enough(n: int) -> bool:
        return n >= INFER_MAJORITY * total - 1e-9

    found: list[_Candidate] = []
    if enough(int(counts[KIND_GEO])):
        found.append(_GEO)
    if enough(int(counts[KIND_GK3])):
        found.append(_gk3(gk_zone_epsg(hint_lon) if hint_lon is not None else None))
    z3 = counts[KIND_GK3_ZONE + GK3_ZONES[0] : KIND_GK3_ZONE + GK3_ZONES[1] + 1]
    if enough(int(z3.max())):
        found.append(_gk3_zone(GK3_ZONES[0] + int(z3.argmax())))
    six = slice(GK6_ZONES[0], GK6_ZONES[1] + 1)
    merc_n = int(counts[KIND_MERC]) + int(counts[KIND_GK6_MERC:][six].sum())
    if enough(merc_n):
        found.append(_MERC)
    z6 = counts[KIND_GK6_ZONE:][six] + counts[KIND_GK6_MERC:][six]
    if enough(int(z6.max())):
        found.append(_gk6_zone(GK6_ZONES[0] + int(z6.argmax())))
    return found


def _kind_label(kind: int) -> tuple[str, str]:
    if kind == KIND_GEO:
        return "经纬度", "lon/lat"
    if kind == KIND_GK3:
        return "不带带号的 3 度带坐标", "3-degree Gauss-Kruger without zone prefix"
    if KIND_GK3_ZONE <= kind < KIND_GK6_ZONE:
        zone = kind - KIND_GK3_ZONE
        return f"3度带第{zone}带坐标", f"3-degree Gauss-Kruger zone {zone}"
    return "Web 墨卡托或6度带坐标", "web mercator or 6-degree Gauss-Kruger"


def _describe(
    xmin: FloatArray, ymin: FloatArray, xmax: FloatArray, ymax: FloatArray
) -> tuple[str, str, dict[str, int]]:
    """What the rows with coordinates look like, most common first, in both languages, and
    the counts by English label."""
    kinds = _normalised(row_kinds(xmin, ymin, xmax, ymax))
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
        swapped = _normalised(row_kinds(y0[~zero], x0[~zero], y1[~zero], x1[~zero]))
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


def infer_crs_rows(
    xmin: npt.ArrayLike,
    ymin: npt.ArrayLike,
    xmax: npt.ArrayLike,
    ymax: npt.ArrayLike,
    hint_lon: float | None = None,
) -> tuple[CRSGuess, RowFit]:
    """Infer the CRS of a file without a ``.prj`` from the bulk of its rows.

    Each row is classified by the magnitudes of its whole bounds (:func:`row_kinds`); a CRS
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
    bounds = _bounds(xmin, ymin, xmax, ymax)
    if hint_lon is not None and not math.isfinite(hint_lon):
        hint_lon = None
    kinds = row_kinds(*bounds)
    counts = np.bincount(kinds, minlength=_N_KINDS)
    total = int(kinds.size - counts[KIND_NONE])
    if total == 0:
        raise CRSError(
            "没有有效坐标，无法推断坐标系，请用 --crs 指定",
            "no finite coordinates to infer the CRS from: pass --crs",
            code="crs_needed",
        )
    found = _viable(counts, total, hint_lon)

    def stats(cand: _Candidate) -> _Stats:
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
        parts_zh, parts_en, described = _describe(*bounds)
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
    return guess, _row_fit(chosen.box, chosen.own, np.isin(kinds, chosen.kinds), usable, bounds)


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
