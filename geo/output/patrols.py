"""Patrol coverage (:mod:`geo.figures.patrols`) as a file: CSV (UTF-8 with BOM, for Excel) or an
Excel workbook, headers in Chinese or English, the period and the rule of the days due above the
table, every text cell through :func:`geo.output.tables.spreadsheet_cell`."""

from __future__ import annotations

import csv
import io
import math
from typing import Any

import openpyxl

from geo.errors import InputError
from geo.figures.patrols import Coverage
from geo.output.tables import level_labels, spreadsheet_cell
from geo.output.to_xlsx import PAGE_NUMBERS

__all__ = ["COVERAGE_FORMATS", "coverage_records", "render_coverage"]

#: format → (mimetype, extension)
COVERAGE_FORMATS: dict[str, tuple[str, str]] = {
    "csv": ("text/csv; charset=utf-8", "csv"),
    "xlsx": ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "xlsx"),
}


def _plain(value: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, list):
        return "、".join(str(v) for v in value)
    if hasattr(value, "item"):  # numpy scalars
        return _plain(value.item())
    return value


def coverage_records(coverage: Coverage) -> list[dict[str, Any]]:
    """The rows of ``coverage`` as plain values (JSON): the rate as a number 0–1 or None,
    ``missed_days`` a list of ISO days."""
    out = []
    for row in coverage.table.to_dict("records"):
        item = {str(k): (v if isinstance(v, list) else _plain(v)) for k, v in row.items()}
        out.append(item)
    return out


def _about(coverage: Coverage, lang: str) -> list[str]:
    p = coverage.period
    zh, en = level_labels(coverage.level)
    if lang == "en":
        rule = "working days" if p.working_days else "every day"
        lines = [
            f"Patrol coverage by {en.lower()}: {p.first.isoformat()} to {p.last.isoformat()}, "
            f"known at the end of {p.as_of.isoformat()}; days due: {rule}"
        ]
    else:
        rule = "工作日" if p.working_days else "每天"
        lines = [
            f"巡查覆盖率（按{zh}）：{p.first.isoformat()} 至 {p.last.isoformat()}，"
            f"截至 {p.as_of.isoformat()} 日终；应巡查日：{rule}"
        ]
    if coverage.warning:
        lines.append(coverage.warning)
    return lines


def render_coverage(coverage: Coverage, fmt: str, lang: str = "zh") -> bytes:
    """``coverage`` as ``fmt`` (``csv`` or ``xlsx``) with headers in ``lang`` (``zh`` or ``en``).

    Raises
    ------
    InputError
        ``code="bad_format"`` for another format.
    """
    if fmt not in COVERAGE_FORMATS:
        raise InputError(
            f"覆盖率导出格式应为 {'、'.join(COVERAGE_FORMATS)}",
            f"coverage format must be one of {', '.join(COVERAGE_FORMATS)}",
            code="bad_format",
        )
    labels = coverage.columns(lang)
    columns = list(labels)
    header = list(labels.values())
    rows = [[_plain(r[c]) for c in columns] for r in coverage.table.to_dict("records")]
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\r\n")
        for line in _about(coverage, lang):
            writer.writerow([spreadsheet_cell("# " + line)])
        writer.writerow(header)
        for row in rows:
            writer.writerow(["" if v is None else spreadsheet_cell(v) for v in row])
        return buf.getvalue().encode("utf-8-sig")
    wb = openpyxl.Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "巡查覆盖率" if lang != "en" else "Patrol coverage"
    ws.page_setup.orientation = "landscape"
    ws.page_setup.paperSize = "9"  # A4
    ws.page_setup.fitToWidth = 1
    ws.page_setup.fitToHeight = 0
    ws.sheet_properties.pageSetUpPr.fitToPage = True
    ws.oddFooter.center.text = PAGE_NUMBERS
    about = _about(coverage, lang)
    for line in about:
        ws.append([spreadsheet_cell(line)])
    ws.append(header)
    ws.print_title_rows = f"{len(about) + 1}:{len(about) + 1}"
    rate_col = columns.index("coverage") + 1
    for row in rows:
        ws.append([spreadsheet_cell(v) for v in row])
        ws.cell(ws.max_row, rate_col).number_format = "0.0%"
    for i, width in enumerate((16, 14, 14, 12, 8, 8, 8, 8, 8, 40, 12), start=1):
        ws.column_dimensions[openpyxl.utils.get_column_letter(i)].width = width
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()
