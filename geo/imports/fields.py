"""Which column of a file is which field of the layer: matched by name, label and alias,
changed as a person asks (:func:`apply_field_map`, :func:`field_name`)."""

from __future__ import annotations

from geo.errors import InputError
from geo.imports.report import MAX_COLUMNS_LISTED, MAX_QUOTED_VALUE, ImportReport, truncate
from geo.reading.datasets import RawTable
from geo.reading.display import safe_display_name
from geo.reading.fields import FieldMatch, match_fields, norm_key
from geo.reading.vocab import vocab_key
from layers.base import LayerSpec


def map_fields(
    spec: LayerSpec, raw: RawTable, report: ImportReport, field_map: dict[str, str] | None = None
) -> FieldMatch:
    """Which column of ``raw`` is which field of ``spec``, as matched by name, label and alias
    and changed by ``field_map`` (:func:`apply_field_map`); noted in ``report``.

    Raises
    ------
    InputError
        ``code="wrong_layer"``: no column matches a field of the layer, or a grid file has no
        grid code.
    """
    columns = raw.columns or [str(c) for c in raw.attrs.columns]
    match = match_fields(columns, spec)
    if field_map:
        match = apply_field_map(match, columns, spec, field_map)
        report.field_overrides = dict(field_map)
    report.field_mapping = dict(match.mapping)
    report.unmatched_fields = [str(truncate(c, 100)) for c in match.unmatched[:MAX_COLUMNS_LISTED]]
    report.missing_fields = list(match.missing)
    if not match.mapping:
        found = ", ".join(str(truncate(c, 100)) for c in columns[:MAX_COLUMNS_LISTED])
        if len(columns) > MAX_COLUMNS_LISTED:
            found += f" … (+{len(columns) - MAX_COLUMNS_LISTED})"
        raise InputError(
            f"文件字段与图层「{spec.label_zh}」不符，是否选错了图层？文件字段: {found}",
            f"the file's fields do not match layer {spec.label_en}: wrong layer? fields: {found}",
            code="wrong_layer",
        )
    if spec.is_grid and spec.id_field not in match.mapping.values():
        raise InputError(
            "网格文件缺少网格编码字段（网格编码/WGBM 等）",
            "the grid file has no grid-code field (网格编码/WGBM ...)",
            code="wrong_layer",
        )
    return match


def apply_field_map(
    match: FieldMatch, columns: list[str], spec: LayerSpec, field_map: dict[str, str]
) -> FieldMatch:
    """``match`` changed as a person asked: ``field_map`` maps a column of the file to a field
    of the layer (its name or Chinese or English label), or to ``""`` to leave it out.

    Raises
    ------
    InputError
        ``code="bad_field_map"``: a column the file does not have or a field the layer has not.
    """
    mapping = dict(match.mapping)
    for column, target in field_map.items():
        if column not in columns:
            shown = truncate(safe_display_name(str(column)), MAX_QUOTED_VALUE)
            raise InputError(
                f"文件中没有字段「{shown}」", f"the file has no column '{shown}'", code="bad_field_map"
            )
        mapping.pop(column, None)
        if not target:
            continue
        name = field_name(spec, target)
        for other in [c for c, f in mapping.items() if f == name]:
            del mapping[other]
        mapping[column] = name
    ordered = {c: mapping[c] for c in columns if c in mapping}
    used = set(ordered.values())
    return FieldMatch(
        mapping=ordered,
        unmatched=[c for c in columns if c not in ordered],
        missing=[f.name for f in spec.fields if f.name not in used],
    )


def field_name(spec: LayerSpec, text: str) -> str:
    """The field of ``spec`` a person names by its name or Chinese or English label.

    Raises
    ------
    InputError
        ``code="bad_field_map"``.
    """
    key = vocab_key(text)
    for f in spec.fields:
        if key in (vocab_key(f.name), vocab_key(f.label_zh), vocab_key(f.label_en)):
            return f.name
    loose = norm_key(text)  # as column headers are matched: "面积", "违建面积(m²)", "MJ"
    for f in spec.fields:
        if loose and loose in {norm_key(n) for n in (f.name, f.label_zh, f.label_en, *f.aliases)}:
            return f.name
    shown = truncate(safe_display_name(str(text)), MAX_QUOTED_VALUE)
    names = "、".join(f"{f.name}({f.label_zh})" for f in spec.fields)
    raise InputError(
        f"图层「{spec.label_zh}」没有字段「{shown}」（可选: {names}）",
        f"layer {spec.label_en} has no field '{shown}' ({', '.join(f.name for f in spec.fields)})",
        code="bad_field_map",
    )
