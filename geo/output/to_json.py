"""The ``json`` renderer: one level of a report as JSON."""

from __future__ import annotations

import json

from geo.figures.report import StatsReport
from geo.output.tables import column_kind, level_labels, plain_value, records, resolve_level, totals


def render_json(report: StatsReport, level: str | None = None) -> bytes:
    """One level as JSON (UTF-8, Chinese not escaped, NaN as ``null``).

    Shape: ``{"title", "as_of", "level", "level_label": {"zh", "en"},
    "columns": {column: {"zh", "en"}}, "rows": [{column: value}], "totals":
    {column: value}, "metadata": {...}}``; rates and progress are ratios (0..1), areas
    m²; ``metadata`` is the report's provenance (when it has one).
    """
    lv = resolve_level(report, level)
    table = report.levels[lv]
    zh, en = level_labels(lv)
    doc = {
        "title": report.title,
        "as_of": report.as_of,
        "level": lv,
        "level_label": {"zh": zh, "en": en},
        "columns": {
            str(c): dict(zip(("zh", "en"), report.label(str(c)), strict=True)) for c in table.columns
        },
        "rows": records(table),
        "totals": {
            str(c): plain_value(v)
            for c, v in totals(table).items()
            if column_kind(str(c), table[c]) != "text"
        },
    }
    if report.provenance is not None:
        doc["metadata"] = report.provenance
    return json.dumps(doc, ensure_ascii=False, allow_nan=False).encode("utf-8")
