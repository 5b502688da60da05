"""The task figures (:func:`geo.figures.tasks.task_stats`) as a CSV or XLSX table: one row per
unit and a total row, headed in Chinese and English, rates as decimals (CSV) or percentages
(XLSX), every text cell neutralised for spreadsheets."""

from __future__ import annotations

import csv
import io
from datetime import date
from typing import Any

import pandas as pd

from geo.errors import InputError
from geo.figures.tasks import LABELS, METRICS, RATES, totals
from geo.output.tables import csv_value, level_labels, spreadsheet_cell

__all__ = ["TASK_FORMATS", "render_task_table"]

#: format → (mimetype, suffix)
TASK_FORMATS = {
    "csv": ("text/csv; charset=utf-8", "csv"),
    "xlsx": ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "xlsx"),
}


def _rows(frame: pd.DataFrame) -> tuple[list[str], list[list[Any]]]:
    code_zh, name_zh = "编码", "名称"
    header = [f"{code_zh} Code", f"{name_zh} Name", *(f"{LABELS[m][0]} {LABELS[m][1]}" for m in METRICS)]
    rows = []
    for rec in frame.to_dict("records"):
        rows.append([rec["code"], rec["name"], *(rec[m] for m in METRICS)])
    total = totals(frame)
    rows.append(["合计 Total", None, *(total[m] for m in METRICS)])
    return header, rows


def render_task_table(frame: pd.DataFrame, fmt: str, level: str, as_of: date) -> tuple[bytes, str, str]:
    """``frame`` (a :func:`~geo.figures.tasks.task_stats` table) in ``fmt`` (:data:`TASK_FORMATS`);
    returns the bytes, the mimetype and a file name (``交办统计_社区_2026-11-10.xlsx``)."""
    if fmt not in TASK_FORMATS:
        raise InputError(
            "格式应为 json、csv 或 xlsx", "the format must be json, csv or xlsx", code="bad_format"
        )
    header, rows = _rows(frame)
    mimetype, suffix = TASK_FORMATS[fmt]
    name = f"交办统计_{level_labels(level)[0]}_{as_of.isoformat()}.{suffix}"
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\r\n")
        writer.writerow([csv_value(h) for h in header])
        for row in rows:
            writer.writerow(
                [csv_value(spreadsheet_cell(v)) if v is not None and not _nan(v) else "" for v in row]
            )
        return ("\ufeff" + buf.getvalue()).encode("utf-8"), mimetype, name
    from openpyxl import Workbook
    from openpyxl.styles import Font

    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "交办统计"
    ws.append(
        [
            f"交办统计 Tasks · {level_labels(level)[0]} {level_labels(level)[1]} · 截至 as of {as_of.isoformat()}"
        ]
    )
    ws.append(header)
    for cell in ws[2]:
        cell.font = Font(bold=True)
    rates = {header.index(f"{LABELS[r][0]} {LABELS[r][1]}") for r in RATES}
    for row in rows:
        ws.append(
            [
                None if v is None or _nan(v) else (spreadsheet_cell(v) if isinstance(v, str) else v)
                for v in row
            ]
        )
        for i in rates:
            ws.cell(row=ws.max_row, column=i + 1).number_format = "0.0%"
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue(), mimetype, name


def _nan(v: Any) -> bool:
    return isinstance(v, float) and v != v
