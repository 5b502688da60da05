"""The ``csv`` renderer: one level of a report as a CSV table."""

from __future__ import annotations

import csv
import io
import re

from geo.figures.report import StatsReport
from geo.output.tables import csv_value, provenance_lines, resolve_level


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
    lv = resolve_level(report, level)
    table = report.levels[lv]
    buf = io.StringIO()
    if report.csv_header:
        buf.write(_comment(f"{report.title} {lv}") + "\r\n")
        for zh, en, value in provenance_lines(report):
            buf.write(_comment(f"{zh} {en}: {value}") + "\r\n")
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow([csv_value(str(c)) for c in table.columns])
    columns = [table[c].to_numpy(dtype=object) for c in table.columns]
    for row in zip(*columns, strict=True):
        writer.writerow([csv_value(v) for v in row])
    return buf.getvalue().encode("utf-8-sig")
