"""The ``csv`` renderer: one level of a report as a CSV table."""

from __future__ import annotations

import csv
import io
import re

from geo.figures.report import StatsReport
from geo.output.columnar import write_csv_rows
from geo.output.tables import column_kind, csv_value, provenance_lines, resolve_level

#: Decimals of a rate or progress in the CSV: as the workbook shows them (``0.0%``).
RATE_DECIMALS = 3


def _comment(text: str) -> str:
    """One ``# `` comment line a spreadsheet shows in a single cell: no separators, quotes or line ends."""
    return "# " + re.sub(r'[,;"\r\n\t]+', " ", text).strip()


def header_text(report: StatsReport, column: str) -> str:
    """The header of ``column`` as ``report.headers`` asks: its name (``code``), or its Chinese
    (``zh``) or English (``en``) label."""
    if report.headers == "zh":
        return report.label(column)[0]
    if report.headers == "en":
        return report.label(column)[1]
    return column


def render_csv(report: StatsReport, level: str | None = None) -> bytes:
    """One level as CSV for scripts and Excel.

    Header row of machine column names (``code``, ``name``, ``demolition_total``
    ...) -- or, with ``report.headers`` ``"zh"`` / ``"en"``, the columns' Chinese or English
    labels (``违法建设完成率``) --, no index, rates and progress as plain decimals rounded as the
    workbook shows them (``0.0%``: 0.667, never ``66.7%`` or ``6.67e-01``), m² as stored, empty
    cells for NaN, text cells in quotes.  UTF-8 with a BOM so
    Excel shows Chinese; CRLF line ends.  With ``report.csv_header`` the table is
    preceded by ``# `` lines stating what it was computed from (one cell each in a
    spreadsheet; ``pandas.read_csv(..., comment="#")`` skips them).  The rows are written
    by Arrow's CSV writer from the table's columns (:mod:`geo.output.columnar`).
    """
    lv = resolve_level(report, level)
    table = report.levels[lv]
    buf = io.StringIO()
    if report.csv_header:
        buf.write(_comment(f"{report.title} {lv}") + "\r\n")
        for zh, en, value in provenance_lines(report):
            buf.write(_comment(f"{zh} {en}: {value}") + "\r\n")
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow([csv_value(header_text(report, str(c))) for c in table.columns])
    columns = []
    for c in table.columns:
        values = table[c]
        if column_kind(str(c), values) in ("rate", "progress"):
            values = values.astype("float64").round(RATE_DECIMALS)
        columns.append(values)
    out = io.BytesIO()
    out.write(buf.getvalue().encode("utf-8-sig"))
    write_csv_rows(table, columns, out)
    return out.getvalue()
