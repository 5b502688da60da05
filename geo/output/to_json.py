"""The ``json`` renderer: one level of a report as JSON."""

from __future__ import annotations

from typing import Any

from geo.figures.report import StatsReport
from geo.output.columnar import json_rows, markup_free_dumps
from geo.output.tables import column_kind, level_labels, plain_value, resolve_level, totals


def render_json(report: StatsReport, level: str | None = None) -> bytes:
    """One level as JSON (UTF-8, Chinese not escaped, NaN as ``null``, ``<``, ``>`` and ``&``
    written as ``\\u003c``, ``\\u003e`` and ``\\u0026``).

    Shape: ``{"title", "as_of", "level", "level_label": {"zh", "en"},
    "columns": {column: {"zh", "en"}}, "rows": [{column: value}], "totals":
    {column: value}, "metadata": {...}}``; rates and progress are ratios (0..1), areas
    m²; ``metadata`` is the report's provenance (when it has one).  With
    ``report.json_rows == "arrays"`` (the compact form, about a fifth of the size) a
    ``"fields": [column, ...]`` list comes before ``rows`` and each row is an array of the
    values in that order.  The rows are written column by column (:mod:`geo.output.columnar`).
    """
    lv = resolve_level(report, level)
    table = report.levels[lv]
    zh, en = level_labels(lv)
    arrays = report.json_rows == "arrays"
    head: dict[str, Any] = {
        "title": report.title,
        "as_of": report.as_of,
        "level": lv,
        "level_label": {"zh": zh, "en": en},
        "columns": {
            str(c): dict(zip(("zh", "en"), report.label(str(c)), strict=True)) for c in table.columns
        },
    }
    if arrays:
        head["fields"] = [str(c) for c in table.columns]
    total = {
        str(c): plain_value(v) for c, v in totals(table).items() if column_kind(str(c), table[c]) != "text"
    }
    tail = [', "totals": ', markup_free_dumps(total)]
    if report.provenance is not None:
        tail += [', "metadata": ', markup_free_dumps(report.provenance)]
    tail.append("}")
    start = (markup_free_dumps(head)[:-1] + ', "rows": ').encode("utf-8")
    return b"".join((start, json_rows(table, arrays), "".join(tail).encode("utf-8")))
