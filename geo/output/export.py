"""Statistics renderers: one small interface per output format, kept in a registry.

A :class:`StatsReport` holds the per-unit tables of one tally (one table per level
of the grid hierarchy), their bilingual column labels, the "as of" date and,
optionally, the unit outlines.  A :class:`Renderer` turns a report into the bytes
of one file format.  Built-in formats are registered exactly like add-ons::

    register_renderer(Renderer("ods", "ods", "application/vnd.oasis.opendocument.spreadsheet", render_ods))
    data = get_renderer("xlsx").render(report, None)

Built-ins: ``csv``, ``xlsx``, ``json``, ``geojson``, ``gpkg`` and ``shp`` (a zip).
Single-level formats (csv, json, geojson) render the level asked for, by default
the report's first; multi-level formats (xlsx, gpkg, shp) render every level in
the report, and ``level`` only chooses the sheet shown first in xlsx.

Column conventions the renderers rely on (names only, no layer is named here):
``<stem>_rate`` is ``<stem>_completed / <stem>_total``; ``<stem>_progress`` is
``<stem> / <stem>_target`` (or ``<stem>_completed[...]`` when ``<stem>`` itself
is not a column); columns ending in ``_m2`` (or ``_m2_target``) hold m².
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import tempfile
import unicodedata
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from shapely.geometry import mapping

from geo.errors import InputError
from geo.figures.hierarchy import grid_levels
from geo.figures.report import BASE_LABELS, StatsReport

if TYPE_CHECKING:
    from openpyxl.worksheet.worksheet import Worksheet

__all__ = [
    "TOTAL_LABEL",
    "Renderer",
    "column_kind",
    "content_disposition",
    "get_renderer",
    "register_renderer",
    "renderers",
    "spreadsheet_cell",
    "totals",
    "unregister_renderer",
]

EPSG_LONLAT = 4490  # CGCS2000 geographic, lon/lat order with always_xy

TOTAL_LABEL = "合计"

_TEXT_COLUMNS = frozenset(BASE_LABELS)

ColumnKind = Literal["text", "rate", "progress", "area", "count", "number"]


@dataclass(frozen=True)
class Renderer:
    """One output format.

    Parameters
    ----------
    name : str
        Registry key, used as ``?format=`` / ``--format`` value.
    extension : str
        File name extension without the dot.
    mimetype : str
        Content type of the bytes.
    render : callable
        ``render(report, level) -> bytes``.  ``level=None`` means the report's
        first level for single-level formats.  Raises :class:`InputError` for
        an unknown level or missing geometry.
    label : str
        Short bilingual description for menus.
    all_levels : bool
        True when one file holds every level of the report.
    needs_geometry : bool
        True when the report must carry ``geometry``.
    """

    name: str
    extension: str
    mimetype: str
    render: Callable[[StatsReport, str | None], bytes]
    label: str = ""
    all_levels: bool = False
    needs_geometry: bool = False

    def filename(self, report: StatsReport, level: str | None = None) -> str:
        """Suggested download name, e.g. ``gridwatch_grid_2022-06-30.csv``.

        Made of the level and the report's ISO date only; any other character is dropped,
        so nothing a request carries reaches the name unparsed."""
        part = "all" if self.all_levels or level is None else level
        name = f"gridwatch_{_name_part(part)}_{_name_part(report.as_of)}".rstrip("_")
        return f"{name}.{self.extension}"


def _name_part(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_\-]", "", str(text))[:40]


def content_disposition(filename: str, disposition: str = "attachment") -> str:
    """A ``Content-Disposition`` header value for a download named ``filename``.

    Control characters and path separators are dropped.  Then an ASCII ``filename="..."``
    for old clients (characters outside printable ASCII and quotes become ``_``) and, when
    that is not the name itself, the exact name as RFC 5987
    ``filename*=UTF-8''<percent-encoded>``, so Chinese names arrive intact and the header
    stays Latin-1 as HTTP requires.

    Examples
    --------
    >>> print(content_disposition("统计_2022-06-30.csv"))
    attachment; filename="___2022-06-30.csv"; filename*=UTF-8''%E7%BB%9F%E8%AE%A1_2022-06-30.csv
    """
    name = "".join(ch for ch in str(filename) if ch.isprintable() and ch not in "/\\") or "download"
    fallback = re.sub(r'[^\x20-\x7e]|["\\]', "_", name)
    header = f'{disposition}; filename="{fallback}"'
    if fallback != name:
        header += f"; filename*=UTF-8''{quote(name, safe='')}"
    return header


_RENDERERS: dict[str, Renderer] = {}


def register_renderer(renderer: Renderer) -> Renderer:
    """Add ``renderer`` to the registry, replacing one of the same name."""
    if not re.fullmatch(r"[a-z][a-z0-9_]*", renderer.name):
        raise ValueError(f"renderer name must be lower-case ASCII: {renderer.name!r}")
    _RENDERERS[renderer.name] = renderer
    return renderer


def unregister_renderer(name: str) -> None:
    """Remove the renderer registered as ``name`` (no error when absent)."""
    _RENDERERS.pop(name, None)


def renderers() -> list[Renderer]:
    """Registered renderers in registration order (built-ins first)."""
    return list(_RENDERERS.values())


def get_renderer(fmt: str) -> Renderer:
    """The renderer for ``fmt`` (a name like ``"xlsx"``, case and a leading dot ignored).

    Raises
    ------
    InputError
        ``code="unknown_format"``, listing the known formats.
    """
    key = str(fmt).strip().lower().lstrip(".")
    if key in _RENDERERS:
        return _RENDERERS[key]
    known = ", ".join(_RENDERERS)
    raise InputError(
        f"不支持的导出格式: {fmt}（可用: {known}）",
        f"unknown export format: {fmt} (known: {known})",
        code="unknown_format",
        details={"format": fmt, "known": list(_RENDERERS)},
    )


# --------------------------------------------------------------------------- shared helpers


def _level_names(report: StatsReport) -> list[str]:
    if not report.levels:
        raise InputError(
            "统计结果为空，没有可导出的层级", "the report has no levels to export", code="empty_report"
        )
    return list(report.levels)


def _resolve_level(report: StatsReport, level: str | None) -> str:
    names = _level_names(report)
    if level is None:
        return names[0]
    if level not in report.levels:
        raise InputError(
            f"统计结果中没有层级 {level}（可用: {', '.join(names)}）",
            f"level {level} is not in the report (available: {', '.join(names)})",
            code="unknown_level",
            details={"level": level, "known": names},
        )
    return level


def _level_labels(level: str) -> tuple[str, str]:
    """Chinese and English label of a level the grid declares (other levels: their name)."""
    lv = next((lv for lv in grid_levels() if lv.name == level), None)
    return (level, level) if lv is None else (lv.label_zh, lv.label_en)


def _level_label(level: str) -> str:
    return _level_labels(level)[0]


def column_kind(name: str, values: pd.Series) -> ColumnKind:
    """How a stats column is summed and formatted.

    Returns ``"text"`` (identifiers and non-numeric columns), ``"rate"``
    (``_rate``), ``"progress"`` (``_progress``), ``"area"`` (m²: ``_m2`` or
    ``_m2_target``), ``"count"`` (integers, or floats that are all whole) or
    ``"number"``.
    """
    if name in _TEXT_COLUMNS or not pd.api.types.is_numeric_dtype(values.dtype):
        return "text"
    if pd.api.types.is_bool_dtype(values.dtype):
        return "text"
    if name.endswith("_rate"):
        return "rate"
    if name.endswith("_progress"):
        return "progress"
    if name.endswith(("_m2", "_m2_target")):
        return "area"
    if pd.api.types.is_integer_dtype(values.dtype):
        return "count"
    x = values.to_numpy(dtype="float64", na_value=np.nan)
    x = x[~np.isnan(x)]
    return "count" if np.all(np.mod(x, 1) == 0) else "number"


def _achieved_column(stem: str, columns: list[str]) -> str | None:
    """The column a ``<stem>_progress`` is measured on: ``<stem>`` or ``<stem>_completed[_unit]``."""
    if stem in columns:
        return stem
    if f"{stem}_completed" in columns:
        return f"{stem}_completed"
    for c in columns:
        if c.startswith(f"{stem}_completed_") and not c.endswith(("_target", "_progress", "_rate")):
            return c
    return None


def _ratio(num: float, den: float) -> float:
    return num / den if den > 0 else math.nan


def totals(table: pd.DataFrame) -> pd.Series:
    """The totals row of a stats table, over all its rows (``UNASSIGNED`` included).

    Counts, measures and targets are summed; each ``<stem>_rate`` is recomputed
    as ``sum(<stem>_completed) / sum(<stem>_total)`` and each ``<stem>_progress``
    as achieved over target summed over the rows that have a target (not the
    mean of the rows' ratios).  NaN where a ratio's denominator is 0 or its
    columns are missing; ``None`` for text columns.

    Parameters
    ----------
    table : pandas.DataFrame
        One level's table of a :class:`StatsReport`.

    Returns
    -------
    pandas.Series of object
        Indexed by the table's columns; Python ``int`` for integer columns.
    """
    cols = [str(c) for c in table.columns]
    out: dict[str, Any] = {}
    for col in cols:
        values = table[col]
        kind = column_kind(col, values)
        if kind == "text":
            out[col] = None
        elif kind == "rate":
            stem = col[: -len("_rate")]
            if f"{stem}_completed" in table and f"{stem}_total" in table:
                out[col] = _ratio(_sum(table[f"{stem}_completed"]), _sum(table[f"{stem}_total"]))
            else:
                out[col] = math.nan
        elif kind == "progress":
            stem = col[: -len("_progress")]
            achieved = _achieved_column(stem, cols)
            if achieved is not None and f"{stem}_target" in table:
                target = pd.to_numeric(table[f"{stem}_target"])
                has = target.notna()
                out[col] = _ratio(_sum(table.loc[has, achieved]), _sum(target[has]))
            else:
                out[col] = math.nan
        elif pd.api.types.is_integer_dtype(values.dtype):
            out[col] = int(values.sum())
        else:
            out[col] = _sum(values) if values.notna().any() else math.nan
    return pd.Series(out, index=cols, dtype=object)


def _sum(values: pd.Series) -> float:
    return float(pd.to_numeric(values).sum(skipna=True))


def _py(v: Any) -> Any:
    """A JSON/openpyxl-friendly Python value: NaN/NA -> None, numpy scalars -> Python."""
    if v is None or v is pd.NA or v is pd.NaT:
        return None
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, pd.Timestamp):
        return v.isoformat()
    return v


def _records(table: pd.DataFrame) -> list[dict[str, Any]]:
    cols = [str(c) for c in table.columns]
    columns = [table[c].to_numpy(dtype=object) for c in table.columns]
    return [dict(zip(cols, (_py(v) for v in row), strict=True)) for row in zip(*columns, strict=True)]


def _geometry(report: StatsReport, level: str) -> gpd.GeoSeries:
    """Outlines of ``level``'s units aligned with its table, in EPSG:4490; ``None`` where absent."""
    if report.geometry is None or level not in report.geometry:
        raise InputError(
            f"该格式需要单元轮廓，统计结果中没有层级 {level} 的几何",
            f"this format needs unit outlines; the report has no geometry for level {level}",
            code="no_geometry",
        )
    table = report.levels[level]
    geo = report.geometry[level]
    if geo.crs is None:
        geo = geo.set_crs(EPSG_LONLAT)
    elif geo.crs.to_epsg() != EPSG_LONLAT:
        geo = geo.to_crs(EPSG_LONLAT)
    geo = geo.reindex(table.index)
    values = np.array(geo.to_numpy(), dtype=object, copy=True)
    values[shapely.is_empty(values) | pd.isna(values)] = None
    return gpd.GeoSeries(values, index=table.index, crs=EPSG_LONLAT)


def _geoframe(report: StatsReport, level: str) -> gpd.GeoDataFrame:
    geo = _geometry(report, level)
    return gpd.GeoDataFrame(report.levels[level].copy(), geometry=geo, crs=EPSG_LONLAT)


# --------------------------------------------------------------------------- spreadsheet cells

#: First characters that make Excel, WPS or LibreOffice read a cell as a formula (or, for tab
#: and line ends, that they strip before deciding).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n")


def spreadsheet_cell(value: Any) -> Any:
    """A value that a spreadsheet shows and never evaluates.

    Text starting with ``= + - @``, a tab or a line end (``=HYPERLINK(...)``, ``-2+3``,
    ``@SUM(A1)``) gets a leading ``'``, the mark spreadsheets themselves use for "this is
    text"; every other value is returned unchanged, so numbers stay numbers (``-2.5`` the
    number is not touched, ``"-2.5"`` the text is).  Every export writing CSV or XLSX cells
    (statistics, monthly series, the audit trail, the shapefile's ``fields.csv``) goes
    through this one function.

    Parameters
    ----------
    value : Any
        A cell value.

    Returns
    -------
    Any
        ``value``, or ``"'" + value`` for text that would start a formula.
    """
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


# --------------------------------------------------------------------------- csv


def _csv_value(v: Any) -> str:
    v = _py(v)
    if v is None:
        return ""
    if isinstance(v, float):
        return np.format_float_positional(v, trim="-")
    if isinstance(v, bool | int):
        return str(v)
    return str(spreadsheet_cell(str(v)))


def provenance_lines(report: StatsReport) -> list[tuple[str, str, str]]:
    """The report's provenance as (Chinese label, English label, value) lines."""
    p = report.provenance
    if not p:
        return []
    at = p.get("computed_at") or {}
    tx_text = f"tx {at.get('tx') if at.get('tx') is not None else '-'} {at.get('at') or ''}".strip()
    lines = [
        ("统计截至", "As of", str(p.get("as_of") or "全部（不限日期） / all dates")),
        ("数据时点", "Known at", str(p.get("known_at") or f"导出时 / now ({at.get('at_local') or '-'})")),
        ("所依据的写入", "Computed at write", tx_text),
    ]
    grid = p.get("grid") or {}
    chosen = {
        "in_force": "截至日期当日生效的版本 / in force on the as-of day",
        "current": "当前版本 / current",
        "asked": "指定版本 / as asked",
    }.get(str(grid.get("chosen")), str(grid.get("chosen")))
    versions = grid.get("versions") or []
    listed = "; ".join(f"{v['id']} (valid from {v['valid_from']})" for v in versions) or "无 none"
    lines.append(("网格版本", "Grid version", f"{listed} — {chosen}"))
    for layer in p.get("layers") or []:
        lines.append(
            (
                f"图层 {layer['layer']}",
                f"Layer {layer['layer']}",
                f"tx {layer.get('tx') or '-'} batch {layer.get('batch') or '-'} features {layer.get('features', 0)}",
            )
        )
    lines.append(("时区", "Time zone", str(p.get("timezone") or "")))
    return lines


def _comment(text: str) -> str:
    """One ``# `` comment line a spreadsheet shows in a single cell: no separators, quotes or line ends."""
    return "# " + re.sub(r'[,;"\r\n\t]+', " ", text).strip()


def render_csv(report: StatsReport, level: str | None = None) -> bytes:
    """One level as CSV for scripts and Excel.

    Header row of machine column names (``code``, ``name``, ``demolition_total``
    ...), no index, rates and progress as plain decimals (0.75, never ``75%``
    or ``7.5e-01``), m² as stored, empty cells for NaN.  UTF-8 with a BOM so
    Excel shows Chinese; CRLF line ends.  With ``report.csv_header`` the table is
    preceded by ``# `` lines stating what it was computed from (one cell each in a
    spreadsheet; ``pandas.read_csv(..., comment="#")`` skips them).
    """
    lv = _resolve_level(report, level)
    table = report.levels[lv]
    buf = io.StringIO()
    if report.csv_header:
        buf.write(_comment(f"{report.title} {lv}") + "\r\n")
        for zh, en, value in provenance_lines(report):
            buf.write(_comment(f"{zh} {en}: {value}") + "\r\n")
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow([_csv_value(str(c)) for c in table.columns])
    columns = [table[c].to_numpy(dtype=object) for c in table.columns]
    for row in zip(*columns, strict=True):
        writer.writerow([_csv_value(v) for v in row])
    return buf.getvalue().encode("utf-8-sig")


# --------------------------------------------------------------------------- json


def render_json(report: StatsReport, level: str | None = None) -> bytes:
    """One level as JSON (UTF-8, Chinese not escaped, NaN as ``null``).

    Shape: ``{"title", "as_of", "level", "level_label": {"zh", "en"},
    "columns": {column: {"zh", "en"}}, "rows": [{column: value}], "totals":
    {column: value}, "metadata": {...}}``; rates and progress are ratios (0..1), areas
    m²; ``metadata`` is the report's provenance (when it has one).
    """
    lv = _resolve_level(report, level)
    table = report.levels[lv]
    zh, en = _level_labels(lv)
    doc = {
        "title": report.title,
        "as_of": report.as_of,
        "level": lv,
        "level_label": {"zh": zh, "en": en},
        "columns": {
            str(c): dict(zip(("zh", "en"), report.label(str(c)), strict=True)) for c in table.columns
        },
        "rows": _records(table),
        "totals": {
            str(c): _py(v) for c, v in totals(table).items() if column_kind(str(c), table[c]) != "text"
        },
    }
    if report.provenance is not None:
        doc["metadata"] = report.provenance
    return json.dumps(doc, ensure_ascii=False, allow_nan=False).encode("utf-8")


# --------------------------------------------------------------------------- geojson


def render_geojson(report: StatsReport, level: str | None = None) -> bytes:
    """One level as an RFC 7946 FeatureCollection.

    One feature per unit with its outline in EPSG:4490 lon/lat (CGCS2000, used
    as WGS84; exterior rings counter-clockwise) and the table columns as
    properties; the ``UNASSIGNED`` row is a feature with ``"geometry": null``.
    Feature ``id`` is the unit code.  ``as_of``, ``level`` and ``metadata`` (the
    report's provenance) are foreign members of the collection.
    """
    lv = _resolve_level(report, level)
    table = report.levels[lv]
    geoms = shapely.orient_polygons(_geometry(report, lv).to_numpy(), exterior_cw=False)
    features = []
    for rec, geom in zip(_records(table), geoms, strict=True):
        features.append(
            {
                "type": "Feature",
                "id": rec.get("code"),
                "geometry": None if geom is None else mapping(geom),
                "properties": rec,
            }
        )
    doc: dict[str, Any] = {"type": "FeatureCollection", "as_of": report.as_of, "level": lv}
    if report.provenance is not None:
        doc["metadata"] = report.provenance
    doc["features"] = features
    return json.dumps(doc, ensure_ascii=False, allow_nan=False).encode("utf-8")


# --------------------------------------------------------------------------- gpkg


def render_gpkg(report: StatsReport, level: str | None = None) -> bytes:
    """Every level as a layer ``stats_<level>`` of one GeoPackage, CRS EPSG:4490.

    Columns as in the tables (machine names), rates as ratios, areas in m².
    The ``UNASSIGNED`` row is kept with a null geometry.  ``level`` is only
    checked.
    """
    import pyogrio

    _resolve_level(report, level)
    with tempfile.TemporaryDirectory(prefix="gridwatch-export-") as tmp:
        path = Path(tmp) / "stats.gpkg"
        for lv in _level_names(report):
            pyogrio.write_dataframe(
                _geoframe(report, lv),
                path,
                layer=f"stats_{lv}",
                driver="GPKG",
                layer_metadata={
                    "as_of": report.as_of,
                    "title": report.title,
                    "level": lv,
                    **(
                        {"provenance": json.dumps(report.provenance, ensure_ascii=False)}
                        if report.provenance is not None
                        else {}
                    ),
                },
            )
        return path.read_bytes()


# --------------------------------------------------------------------------- shapefile


def _dbf_names(columns: list[str]) -> dict[str, str]:
    """Column -> DBF field name: kept when a short ASCII identifier, else ``F01``, ``F02`` ..."""
    out: dict[str, str] = {}
    used: set[str] = set()
    for col in columns:
        if re.fullmatch(r"[A-Za-z][A-Za-z0-9_]{0,9}", col) and col.upper() not in used:
            out[col] = col
            used.add(col.upper())
    n = 0
    for col in columns:
        if col in out:
            continue
        while True:
            n += 1
            code = f"F{n:02d}"
            if code not in used:
                break
        out[col] = code
        used.add(code)
    return out


def _text_encoding(frames: list[pd.DataFrame]) -> str:
    """GBK when every text value encodes in it, else GB18030 (all of Unicode)."""
    for frame in frames:
        for col in frame.columns:
            if col == "geometry" or pd.api.types.is_numeric_dtype(frame[col].dtype):
                continue
            for v in frame[col].dropna():
                try:
                    str(v).encode("gbk")
                except UnicodeEncodeError:
                    return "GB18030"
    return "GBK"


def render_shp(report: StatsReport, level: str | None = None) -> bytes:
    """Every level as a shapefile ``stats_<level>`` in one zip, CRS EPSG:4490.

    DBF field names are at most 10 bytes, so columns keep their name when it is
    a short ASCII identifier (``code``, ``name``) and otherwise get a code
    ``F01``, ``F02`` ... (the same code in every level).  ``fields.csv`` in the
    zip (UTF-8 with BOM) lists code, column, Chinese and English header.  Text
    is written in GBK with a ``.cpg`` saying ``GBK`` (GB18030 when a value is
    outside GBK).  The ``UNASSIGNED`` row is kept with a null shape.
    """
    import pyogrio

    _resolve_level(report, level)
    levels = _level_names(report)
    frames = {lv: _geoframe(report, lv) for lv in levels}
    columns: list[str] = []
    for lv in levels:
        columns += [str(c) for c in report.levels[lv].columns if str(c) not in columns]
    names = _dbf_names(columns)
    encoding = _text_encoding(list(frames.values()))

    fields = io.StringIO()
    writer = csv.writer(fields, lineterminator="\r\n")
    writer.writerow(["code", "column", "中文名", "English"])
    for col in columns:
        zh, en = report.label(col)
        writer.writerow([_csv_value(v) for v in (names[col], col, zh, en)])

    out = io.BytesIO()
    with (
        tempfile.TemporaryDirectory(prefix="gridwatch-export-") as tmp,
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf,
    ):
        for lv in levels:
            frame = frames[lv].rename(columns=names)
            path = Path(tmp) / f"stats_{lv}.shp"
            pyogrio.write_dataframe(frame, path, driver="ESRI Shapefile", encoding=encoding)
            path.with_suffix(".cpg").write_text(encoding, encoding="ascii")
            for part in sorted(Path(tmp).glob(f"stats_{lv}.*")):
                zf.write(part, part.name)
        zf.writestr("fields.csv", fields.getvalue().encode("utf-8-sig"))
        if report.provenance is not None:
            about = json.dumps(report.provenance, ensure_ascii=False, indent=2)
            zf.writestr("about.json", about.encode("utf-8"))
    return out.getvalue()


# --------------------------------------------------------------------------- xlsx

_XLSX_FORMATS: dict[ColumnKind, str] = {
    "rate": "0.0%",
    "progress": "0.0%",
    "area": "#,##0.0",
    "count": "#,##0",
    "number": "#,##0.00",
    "text": "@",
}
_SHEET_BAD = re.compile(r"[\[\]:*?/\\]")


def _display_width(text: str) -> int:
    """Width in Excel character units: wide (CJK) characters count 2."""
    return sum(2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1 for ch in text)


def _sheet_title(level: str, used: set[str]) -> str:
    base = _SHEET_BAD.sub("_", _level_label(level))[:31] or "sheet"
    title, n = base, 1
    while title.lower() in used:
        n += 1
        title = f"{base[: 31 - len(str(n)) - 1]}_{n}"
    used.add(title.lower())
    return title


def _cell_text(kind: ColumnKind, v: Any) -> str:
    if v is None:
        return ""
    if kind in ("rate", "progress"):
        return f"{v:.1%}"
    if kind == "area":
        return f"{v:,.1f}"
    if kind == "count":
        return f"{v:,.0f}"
    if kind == "number":
        return f"{v:,.2f}"
    return str(v)


def _xlsx_text(v: Any) -> Any:
    """Text for a cell: neutralised (:func:`spreadsheet_cell`) and without the control
    characters XML cannot hold (openpyxl refuses them); other values unchanged."""
    if not isinstance(v, str):
        return v
    return spreadsheet_cell(_XML_ILLEGAL.sub("\ufffd", v))


_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _write_sheet(ws: Worksheet, report: StatsReport, level: str) -> None:
    from openpyxl.comments import Comment
    from openpyxl.styles import Alignment, Border, Font, PatternFill, Side
    from openpyxl.utils import get_column_letter

    table = report.levels[level]
    cols = [str(c) for c in table.columns]
    kinds = [column_kind(c, table[c]) for c in cols]
    ncol = len(cols)
    header_row, first = 2, 3
    last = first + len(table) - 1
    total_row = last + 1

    ws.cell(
        row=1, column=1, value=_xlsx_text(f"{report.title}（{_level_label(level)}） 统计截至 {report.as_of}")
    ).font = Font(bold=True, size=13)

    thin = Side(style="thin", color="999999")
    header_fill = PatternFill("solid", fgColor="DDEBF7")
    widths = [0] * ncol
    for j, col in enumerate(cols, start=1):
        zh, en = report.label(col)
        cell = ws.cell(row=header_row, column=j, value=_xlsx_text(zh))
        cell.font = Font(bold=True)
        cell.fill = header_fill
        cell.alignment = Alignment(horizontal="center", vertical="center", wrap_text=True)
        cell.border = Border(top=thin, bottom=thin, left=thin, right=thin)
        cell.comment = Comment(f"{en}\n({col})", "gridwatch", height=60, width=200)
        widths[j - 1] = min(_display_width(zh), 20)

    columns = [table[c].to_numpy(dtype=object) for c in table.columns]
    for i, row in enumerate(zip(*columns, strict=True)):
        r = first + i
        for j, (kind, raw) in enumerate(zip(kinds, row, strict=True), start=1):
            v = _py(raw)
            if cols[j - 1] == "level" and isinstance(v, str):
                v = _level_label(v)
            if isinstance(v, str) or kind == "text":
                v = _xlsx_text(v)
            cell = ws.cell(row=r, column=j, value=v)
            if kind == "text":
                cell.number_format = "@"
            elif v is not None:
                cell.number_format = _XLSX_FORMATS[kind]
            widths[j - 1] = max(widths[j - 1], _display_width(_cell_text(kind, v)))

    sums = totals(table)
    bold = Font(bold=True)
    for j, (col, kind) in enumerate(zip(cols, kinds, strict=True), start=1):
        v = TOTAL_LABEL if j == 1 else _py(sums[col])
        cell = ws.cell(row=total_row, column=j, value=v)
        cell.font = bold
        cell.border = Border(top=Side(style="medium"))
        if kind != "text" and v is not None:
            cell.number_format = _XLSX_FORMATS[kind]
        widths[j - 1] = max(widths[j - 1], _display_width(_cell_text("text" if j == 1 else kind, v)))

    for j, w in enumerate(widths, start=1):
        ws.column_dimensions[get_column_letter(j)].width = max(6, min(w, 48)) + 2
    header_lines = max(
        math.ceil(_display_width(report.label(c)[0]) / max(6, min(w, 48)))
        for c, w in zip(cols, widths, strict=True)
    )
    ws.row_dimensions[header_row].height = 15 * max(1, header_lines) + 3

    frozen_cols = 2 if cols[:2] == ["code", "name"] else 0
    ws.freeze_panes = ws.cell(row=first, column=frozen_cols + 1)
    ws.auto_filter.ref = f"A{header_row}:{get_column_letter(ncol)}{max(last, header_row)}"
    ws.print_title_rows = f"{header_row}:{header_row}"
    ws.page_setup.orientation = "landscape"
    ws.page_setup.fitToWidth = 1
    ws.page_setup.fitToHeight = 0
    ws.sheet_properties.pageSetUpPr.fitToPage = True


ABOUT_SHEET = "说明 About"


def _footer(report: StatsReport) -> str:
    """A page footer saying in brief what the figures were computed from."""
    values = {en: value for _zh, en, value in provenance_lines(report)}
    text = (
        f"截至 as of {values.get('As of', '')} · 数据时点 known at {values.get('Known at', '')} · "
        f"{values.get('Computed at write', '')} · 网格 grid {values.get('Grid version', '').split(' — ')[0]}"
    )
    return text.replace("&", "&&")[:250]


def _write_about(ws: Worksheet, report: StatsReport) -> None:
    """The last sheet: what the figures were computed from, Chinese label, English label, value."""
    from openpyxl.styles import Font

    title = ws.cell(
        row=1, column=1, value=_xlsx_text(f"{report.title} 数据来源 / what the figures were computed from")
    )
    title.font = Font(bold=True, size=13)
    for j, head in enumerate(("项目", "Item", "值 Value"), start=1):
        ws.cell(row=2, column=j, value=head).font = Font(bold=True)
    for i, (zh, en, value) in enumerate(provenance_lines(report), start=3):
        for j, v in enumerate((zh, en, value), start=1):
            cell = ws.cell(row=i, column=j, value=_xlsx_text(str(v)))
            cell.number_format = "@"
    ws.column_dimensions["A"].width = 16
    ws.column_dimensions["B"].width = 22
    ws.column_dimensions["C"].width = 70


def render_xlsx(report: StatsReport, level: str | None = None) -> bytes:
    """Every level as a sheet of one workbook, laid out for handing upward.

    Sheets are named by the Chinese labels the grid declares for its levels
    (单元网格, 社区, 街道, 区; other levels by their name).  Each sheet: row 1 a title "<title>（<level>） 统计截至 <as_of>"; row 2
    the Chinese headers, each with a cell comment giving the English header
    and the machine column name; then one row per unit (the ``level`` column
    shown in Chinese); last a bold "合计" row where counts, measures and targets
    are summed (``UNASSIGNED`` included) and rates and progress recomputed from
    the sums (see :func:`totals`).  A report with a provenance gets a last sheet
    "说明 About" stating what the figures were computed from (as-of day, known-at
    moment, the write computed at, grid version, layer revisions) and the same in
    brief in every sheet's page footer.  Panes are frozen below the header (and
    right of ``code``/``name``), the header carries an autofilter over the unit
    rows, rates and progress use ``0.0%``, m² ``#,##0.0`` and counts ``#,##0``.
    ``level`` chooses the sheet shown first.
    """
    try:
        from openpyxl import Workbook
    except ImportError as exc:  # pragma: no cover - openpyxl is a dependency
        raise InputError("导出 xlsx 需要安装 openpyxl", "xlsx export needs openpyxl installed") from exc

    active = _resolve_level(report, level)
    wb = Workbook()
    if wb.active is not None:
        wb.remove(wb.active)
    used: set[str] = set()
    for lv in _level_names(report):
        ws = wb.create_sheet(_sheet_title(lv, used))
        _write_sheet(ws, report, lv)
    if report.provenance is not None:
        footer = _footer(report)
        for ws in wb.worksheets:
            ws.oddFooter.left.text = footer
            ws.oddFooter.left.size = 8
        _write_about(wb.create_sheet(ABOUT_SHEET), report)
    wb.active = _level_names(report).index(active)
    for ws in wb.worksheets:
        # Only the active sheet may be selected, or Excel opens the sheets grouped.
        ws.sheet_view.tabSelected = ws.title == wb.active.title
    wb.properties.title = report.title
    wb.properties.creator = "gridwatch"
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


# --------------------------------------------------------------------------- built-ins

for _r in (
    Renderer("csv", "csv", "text/csv; charset=utf-8", render_csv, "CSV 表格 / CSV table"),
    Renderer(
        "xlsx",
        "xlsx",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        render_xlsx,
        "Excel 工作簿 / Excel workbook",
        all_levels=True,
    ),
    Renderer("json", "json", "application/json", render_json, "JSON"),
    Renderer("geojson", "geojson", "application/geo+json", render_geojson, "GeoJSON", needs_geometry=True),
    Renderer(
        "gpkg",
        "gpkg",
        "application/geopackage+sqlite3",
        render_gpkg,
        "GeoPackage",
        all_levels=True,
        needs_geometry=True,
    ),
    Renderer(
        "shp",
        "zip",
        "application/zip",
        render_shp,
        "Shapefile（zip）/ Shapefile (zip)",
        all_levels=True,
        needs_geometry=True,
    ),
):
    register_renderer(_r)
del _r
