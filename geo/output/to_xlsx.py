"""The ``xlsx`` renderer: every level of a report as a sheet of one Excel workbook, with an
about sheet saying what the figures were computed from."""

from __future__ import annotations

import io
import math
import re
import unicodedata
from typing import TYPE_CHECKING, Any

from geo.errors import InputError
from geo.figures.report import StatsReport
from geo.output.tables import (
    TOTAL_LABEL,
    ColumnKind,
    column_kind,
    level_label,
    level_names,
    plain_value,
    provenance_lines,
    resolve_level,
    spreadsheet_cell,
    totals,
)

if TYPE_CHECKING:
    from openpyxl.worksheet.worksheet import Worksheet


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
    base = _SHEET_BAD.sub("_", level_label(level))[:31] or "sheet"
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
        row=1, column=1, value=_xlsx_text(f"{report.title}（{level_label(level)}） 统计截至 {report.as_of}")
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
            v = plain_value(raw)
            if cols[j - 1] == "level" and isinstance(v, str):
                v = level_label(v)
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
        v = TOTAL_LABEL if j == 1 else plain_value(sums[col])
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
    ws.page_setup.paperSize = ws.PAPERSIZE_A4
    ws.page_setup.fitToWidth = 1
    ws.page_setup.fitToHeight = 0
    ws.sheet_properties.pageSetUpPr.fitToPage = True


ABOUT_SHEET = "说明 About"
#: The centre of every printed page's footer: "page P of N".
PAGE_NUMBERS = "第 &P 页 共 &N 页"


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

    Sheets are named in Chinese (单元网格, 社区, 街道, 区; other levels by their
    name).  Each sheet: row 1 a title "<title>（<level>） 统计截至 <as_of>"; row 2
    the Chinese headers, each with a cell comment giving the English header
    and the machine column name; then one row per unit (the ``level`` column
    shown in Chinese); last a bold "合计" row where counts, measures and targets
    are summed (``UNASSIGNED`` included) and rates and progress recomputed from
    the sums (see :func:`totals`).  A report with a provenance gets a last sheet
    "说明 About" stating what the figures were computed from (as-of day, known-at
    moment, the write computed at, grid version, layer revisions) and the same in
    brief in every sheet's page footer.  Printed on A4 landscape, fitted to the page width,
    the header row repeated on every page and "第 &P 页 共 &N 页" centred in the footer.  Panes are frozen below the header (and
    right of ``code``/``name``), the header carries an autofilter over the unit
    rows, rates and progress use ``0.0%``, m² ``#,##0.0`` and counts ``#,##0``.
    ``level`` chooses the sheet shown first.
    """
    try:
        from openpyxl import Workbook
    except ImportError as exc:  # pragma: no cover - openpyxl is a dependency
        raise InputError("导出 xlsx 需要安装 openpyxl", "xlsx export needs openpyxl installed") from exc

    active = resolve_level(report, level)
    wb = Workbook()
    if wb.active is not None:
        wb.remove(wb.active)
    used: set[str] = set()
    for lv in level_names(report):
        ws = wb.create_sheet(_sheet_title(lv, used))
        _write_sheet(ws, report, lv)
    for ws in wb.worksheets:
        ws.oddFooter.center.text = PAGE_NUMBERS
        ws.oddFooter.center.size = 9
    if report.provenance is not None:
        footer = _footer(report)
        for ws in wb.worksheets:
            ws.oddFooter.left.text = footer
            ws.oddFooter.left.size = 8
        _write_about(wb.create_sheet(ABOUT_SHEET), report)
    wb.active = level_names(report).index(active)
    for ws in wb.worksheets:
        # Only the active sheet may be selected, or Excel opens the sheets grouped.
        ws.sheet_view.tabSelected = ws.title == wb.active.title
    wb.properties.title = report.title
    wb.properties.creator = "gridwatch"
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()
