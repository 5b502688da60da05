"""What every statistics renderer shares: the levels of a report, how each column is summed
and formatted, the totals row, plain values, unit outlines in lon/lat, spreadsheet cells that
never run as formulas, and the provenance lines.

Column conventions the renderers rely on (names only, no layer is named here):
``<stem>_rate`` is ``<stem>_completed / <stem>_total``; ``<stem>_progress`` is
``<stem> / <stem>_target`` (or ``<stem>_completed[...]`` when ``<stem>`` itself
is not a column); columns ending in ``_m2`` (or ``_m2_target``) hold m².
"""

from __future__ import annotations

import math
from typing import Any, Literal

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from geo.errors import InputError
from geo.figures.hierarchy import grid_levels
from geo.figures.report import BASE_LABELS, StatsReport

EPSG_LONLAT = 4490  # CGCS2000 geographic, lon/lat order with always_xy


TOTAL_LABEL = "合计"


_TEXT_COLUMNS = frozenset(BASE_LABELS)


ColumnKind = Literal["text", "rate", "progress", "area", "count", "number"]


def level_names(report: StatsReport) -> list[str]:
    """The report's levels, in order; refuses an empty report (``code="empty_report"``)."""
    if not report.levels:
        raise InputError(
            "统计结果为空，没有可导出的层级", "the report has no levels to export", code="empty_report"
        )
    return list(report.levels)


def resolve_level(report: StatsReport, level: str | None) -> str:
    """``level``, else the report's first; refuses a level not in the report (``code="unknown_level"``)."""
    names = level_names(report)
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


def level_labels(level: str) -> tuple[str, str]:
    """Chinese and English label of a level the grid declares (other levels: their name)."""
    lv = next((lv for lv in grid_levels() if lv.name == level), None)
    return (level, level) if lv is None else (lv.label_zh, lv.label_en)


def level_label(level: str) -> str:
    """The Chinese name of ``level`` (``level`` itself when it has none)."""
    return level_labels(level)[0]


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


def plain_value(v: Any) -> Any:
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


def records(table: pd.DataFrame) -> list[dict[str, Any]]:
    """The rows of ``table`` as dicts of plain values (:func:`plain_value`)."""
    cols = [str(c) for c in table.columns]
    columns = [table[c].to_numpy(dtype=object) for c in table.columns]
    return [dict(zip(cols, (plain_value(v) for v in row), strict=True)) for row in zip(*columns, strict=True)]


def lonlat_outlines(report: StatsReport, level: str) -> gpd.GeoSeries:
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


def lonlat_frame(report: StatsReport, level: str) -> gpd.GeoDataFrame:
    """``level``'s table with its unit outlines (:func:`lonlat_outlines`), in EPSG:4490."""
    geo = lonlat_outlines(report, level)
    return gpd.GeoDataFrame(report.levels[level].copy(), geometry=geo, crs=EPSG_LONLAT)


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


def csv_value(v: Any) -> str:
    """``v`` as CSV text: empty for NaN, decimals never in exponent form, text as a safe cell."""
    v = plain_value(v)
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
    # in the configured zone, to the microsecond: a time --known-at takes back as it is
    when = at.get("at_local") or at.get("at") or ""
    tx_text = f"tx {at.get('tx') if at.get('tx') is not None else '-'} {when}".strip()
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
