"""The values of a file's columns as the layer's fields (:func:`map_values`): vocabulary values
mapped (given for the import, remembered, matched), numbers and dates parsed, text cleaned; and
the value tables of the report (:func:`report_value_tables`)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from geo.errors import InputError
from geo.imports.fields import field_name
from geo.imports.report import MAX_MAPPED_VALUES, ImportReport, RowRejects, truncate
from geo.reading.datasets import RawTable
from geo.reading.display import strip_controls
from geo.reading.fields import FieldMatch
from geo.reading.values import clean_text, parse_dates, parse_numbers
from geo.reading.vocab import UNRECOGNISED, VocabResult, map_vocab, resolve_code, vocab_key
from geo.store.base import Store
from layers.base import UNRECOGNISED as UNRECOGNISED_STATUS
from layers.base import Field, LayerSpec, Status


def remembered_mappings(store: Store, spec: LayerSpec) -> dict[str, dict[str, str]]:
    """The value mappings remembered for ``spec``: ``{field: {vocab_key(raw): code}}``.

    A remembered code that is no longer in the layer's vocabulary is left out (the value then
    shows as unrecognised again)."""
    out: dict[str, dict[str, str]] = {}
    vocabs = spec.vocab_fields
    for m in store.value_maps(spec.name):
        allowed = {st.code for st in vocabs.get(m.field, ())} | {UNRECOGNISED}
        if m.field in vocabs and m.code in allowed:
            out.setdefault(m.field, {})[m.raw_key] = m.code
    return out


def manual_mappings(
    spec: LayerSpec, entries: list[tuple[str, str, str]] | None
) -> tuple[dict[str, dict[str, str]], list[tuple[str, str, str]]]:
    """Value mappings given for one import, checked: ``(field, raw, code)`` where the field is
    a vocabulary field's name or label, the raw text as written and the code a value's code
    or label (or 未识别).  Returns ``{field: {vocab_key(raw): code}}`` and the entries with
    the field's name and the code resolved.

    Raises
    ------
    InputError
        ``code="bad_mapping"`` for a field without a vocabulary or an unknown code.
    """
    out: dict[str, dict[str, str]] = {}
    resolved: list[tuple[str, str, str]] = []
    vocabs = spec.vocab_fields
    for field_text, raw, code_text in entries or []:
        name = field_name(spec, field_text)
        if name not in vocabs:
            f = spec.field(name)
            choices = "、".join(spec.field(v).label_zh for v in vocabs) or "—"
            raise InputError(
                f"字段「{f.label_zh}」没有取值表，不能指定值的对应（可指定: {choices}）",
                f"field {f.label_en} has no vocabulary: values can be mapped only for "
                f"{', '.join(spec.field(v).label_en for v in vocabs) or '—'}",
                code="bad_mapping",
            )
        key = vocab_key(raw)
        if not key:
            raise InputError("原值不能为空", "the raw value to map is empty", code="bad_mapping")
        code = resolve_code(vocabs[name], code_text)
        out.setdefault(name, {})[key] = code
        resolved.append((name, strip_controls(str(raw)).strip(), code))
    return out, resolved


def _recount(result: VocabResult, ok: np.ndarray) -> VocabResult:
    """``result`` with its value table counted over the rows ``ok`` (the rows imported)."""
    raw = result.raw[ok]
    counts = raw.value_counts(dropna=True)
    empty = int(raw.isna().sum())
    values = []
    for v in result.values:
        count = empty if v.raw is None else int(counts.get(v.raw, 0))
        if count:
            values.append(replace(v, count=count))
    values.sort(key=lambda v: -v.count)
    return VocabResult(result.codes[ok], raw, values)


def _mapping_entry(f: Field, result: VocabResult, vocab: tuple[Status, ...]) -> dict[str, Any]:
    """The value table of one vocabulary field for the import report."""
    listed = result.values[:MAX_MAPPED_VALUES]
    rest = result.values[MAX_MAPPED_VALUES:]
    choices = [*vocab, UNRECOGNISED_STATUS]
    return {
        "field": f.name,
        "label_zh": f.label_zh,
        "label_en": f.label_en,
        "distinct": len(result.values),
        "listed": len(listed),
        "more_rows": sum(v.count for v in rest),
        "more_unrecognised": sum(v.count for v in rest if v.code == UNRECOGNISED),
        "values": [
            {
                "raw": truncate(v.raw),
                "code": v.code,
                "how": v.how,
                "count": v.count,
                "suggestion": v.suggestion,
                "qualified": v.qualified,
            }
            for v in listed
        ],
        "codes": [
            {"code": st.code, "label_zh": st.label_zh, "label_en": st.label_en, "completed": st.completed}
            for st in choices
        ],
    }


def map_values(
    spec: LayerSpec,
    raw: RawTable,
    match: FieldMatch,
    reject: RowRejects,
    manual: dict[str, dict[str, str]],
    remembered: dict[str, dict[str, str]],
) -> tuple[pd.DataFrame, dict[str, VocabResult]]:
    """The fields of ``spec`` made from the columns of ``raw`` that ``match`` maps to them.

    A vocabulary field's values are mapped to its codes (``manual`` and ``remembered`` mappings,
    ``{field: {vocab_key(raw): code}}``, first) and kept as written beside them in
    ``<field>_raw``; numbers and dates are parsed, and a row whose value is not one is rejected;
    text is cleaned.  A field no column maps to is empty.

    Returns
    -------
    DataFrame, dict
        One column per field, and the vocabulary fields' results by field name.
    """
    n = len(raw.attrs)
    inverse = {canon: src for src, canon in match.mapping.items()}
    out = pd.DataFrame(index=pd.RangeIndex(n))
    vocabs = spec.vocab_fields
    vocab_results: dict[str, VocabResult] = {}
    for raw_field in spec.raw_fields:
        out[raw_field.name] = pd.Series([None] * n, dtype=object)
    for f in spec.fields:
        if f.name not in inverse:
            out[f.name] = pd.Series([None] * n, dtype=object)
            continue
        col = raw.attrs[inverse[f.name]].reset_index(drop=True)
        if f.name in vocabs:
            manual_f = manual.get(f.name, {})
            remembered_f = remembered.get(f.name, {})
            default = spec.default_status if f.name == spec.status_field else None
            result = map_vocab(
                col.astype(object), vocabs[f.name], default, manual=manual_f, remembered=remembered_f
            )
            out[f.name] = result.codes
            out[f"{f.name}_raw"] = result.raw
            vocab_results[f.name] = result
        elif f.kind in ("int", "float"):
            out[f.name] = _numbers(f, col, reject)
        elif f.kind == "date":
            out[f.name] = _dates(f, col, reject)
        else:
            out[f.name] = clean_text(col.astype(object))
    return out, vocab_results


def _numbers(f: Field, col: pd.Series, reject: RowRejects) -> pd.Series:
    """The numbers of ``col``; rows that hold no number, a negative one, or (for an integer
    field) a fraction are rejected."""
    nums, bad = parse_numbers(col.astype(object))
    reject(
        bad.to_numpy(),
        f"{f.label_zh}「{{v}}」不是数字",
        f"{f.label_en} '{{v}}' is not a number",
        f.name,
        col,
    )
    negative = (nums < 0).fillna(False).to_numpy()
    reject(negative, f"{f.label_zh}「{{v}}」为负数", f"{f.label_en} '{{v}}' is negative", f.name, col)
    if f.kind == "int":
        frac = (nums.notna() & (nums != nums.round())).to_numpy()
        reject(
            frac,
            f"{f.label_zh}「{{v}}」应为整数",
            f"{f.label_en} '{{v}}' must be a whole number",
            f.name,
            col,
        )
    return nums.astype(object).where(nums.notna(), None)


def _dates(f: Field, col: pd.Series, reject: RowRejects) -> pd.Series:
    """The dates of ``col`` (ISO text); rows that hold no valid date are rejected."""
    dates, bad = parse_dates(col.astype(object))
    reject(
        bad.to_numpy(),
        f"{f.label_zh}「{{v}}」不是有效日期",
        f"{f.label_en} '{{v}}' is not a valid date",
        f.name,
        col,
    )
    return dates


def report_value_tables(
    spec: LayerSpec, vocab_results: dict[str, VocabResult], ok: np.ndarray, report: ImportReport
) -> None:
    """Put in ``report`` what every distinct value of each vocabulary field became, counted over
    the rows imported (``ok``), the status first; warn of values that match nothing."""
    vocabs = spec.vocab_fields
    for name, result in sorted(vocab_results.items(), key=lambda kv: kv[0] != spec.status_field):
        entry = _mapping_entry(spec.field(name), _recount(result, ok), vocabs[name])
        report.value_mappings.append(entry)
        unrecognised = (
            sum(v["count"] for v in entry["values"] if v["code"] == UNRECOGNISED) + entry["more_unrecognised"]
        )
        if unrecognised:
            report.warnings.append(
                (
                    f"{entry['label_zh']} 有 {unrecognised} 行的值未识别：照原值保存，记为「{UNRECOGNISED}」"
                    + ("，计入总数但不算完成" if name == spec.status_field else "")
                    + "；可在值对应表中指定",
                    f"{unrecognised} rows of {entry['label_en']} hold values that match nothing: kept as written"
                    " and marked 'unrecognised'"
                    + (", counted in totals, never as completed" if name == spec.status_field else "")
                    + "; map them in the value table",
                )
            )
