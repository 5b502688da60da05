"""Field names: the one normaliser column headers and field names are matched with
(:func:`norm_key`), and matching a survey file's columns to a layer's fields
(:func:`match_fields`)."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

from layers.base import LayerSpec

__all__ = ["FieldMatch", "match_fields", "norm_key"]

# Applied after NFKC and casefold, so "（㎡）" arrives here as "(m2)".
_UNITS = r"m2|m\^2|sqm|sq\.?m|平方米|平方|平米|km2|m|米|km|公里|千米|个|处|辆|座|间|层|口|位|%|亩|公顷|ha"
_UNIT_SUFFIX = re.compile(rf"[(\[【](?:{_UNITS})[)\]】]$")
_KEY_DROP = re.compile(r"[\s_\-‐‑‒–—―*]+")


def norm_key(s: str) -> str:
    """Normalise a field name or vocabulary word for matching.

    Applies Unicode NFKC (full-width letters, digits and brackets become
    half-width, ``㎡`` becomes ``m2``), casefolds, strips, removes spaces,
    underscores, hyphens and asterisks (required-field markers in import
    templates), and drops a bracketed unit suffix such as ``(m²)``, ``（㎡）`` or
    ``(平方米)``.

    Parameters
    ----------
    s : str
        A column header or a vocabulary value.

    Returns
    -------
    str
        The key; ``""`` for blank input.

    Examples
    --------
    >>> norm_key(" 违建面积（㎡）")
    '违建面积'
    >>> norm_key("Case_ID")
    'caseid'
    """
    key = unicodedata.normalize("NFKC", str(s)).casefold().strip()
    key = _KEY_DROP.sub("", key)
    return _UNIT_SUFFIX.sub("", key)


@dataclass
class FieldMatch:
    """Result of :func:`match_fields`.

    Attributes
    ----------
    mapping : dict of str to str
        Source column -> canonical field name, in source-column order.
    unmatched : list of str
        Source columns not used, in source-column order.
    missing : list of str
        Canonical fields no column matched, in spec order.
    """

    mapping: dict[str, str] = field(default_factory=dict)
    unmatched: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)


def match_fields(columns: list[str], spec: LayerSpec) -> FieldMatch:
    """Match a survey file's column headers to a layer's canonical fields.

    A column matches a field when ``norm_key(column)`` equals ``norm_key`` of the
    field's name, Chinese label, English label or one of its aliases.  Names are
    ranked in that order (name, label_zh, label_en, then aliases as listed), and
    the best-ranked pairs are taken first, so a file holding both ``违建面积`` and
    ``面积`` maps ``违建面积`` to ``area_m2`` and leaves ``面积`` unmatched.  Each
    column maps to at most one field and each field takes at most one column;
    when two columns have the same key, the leftmost wins.

    Parameters
    ----------
    columns : list of str
        Headers as read from the file.
    spec : LayerSpec
        The layer whose fields to match.

    Returns
    -------
    FieldMatch
    """
    col_keys: dict[str, int] = {}
    for i, col in enumerate(columns):
        key = norm_key(col)
        if key:
            col_keys.setdefault(key, i)

    candidates: list[tuple[int, int, int]] = []  # (rank, field index, column index)
    for fi, fld in enumerate(spec.fields):
        seen: set[str] = set()
        names = (fld.name, fld.label_zh, fld.label_en, *fld.aliases)
        for rank, name in enumerate(names):
            key = norm_key(name)
            if key in seen or key not in col_keys:
                continue
            seen.add(key)
            candidates.append((rank, fi, col_keys[key]))

    taken_fields: dict[int, int] = {}
    taken_cols: set[int] = set()
    for _, fi, ci in sorted(candidates):
        if fi in taken_fields or ci in taken_cols:
            continue
        taken_fields[fi] = ci
        taken_cols.add(ci)

    # Second pass: DBF headers hold 10 bytes, so UTF-8 writers cut 违建面积 to 违建面 (three
    # characters).  A leftover non-ASCII header of at least two characters that is the start of
    # exactly one unmatched field's Chinese name or alias takes that field.
    for ci, col in enumerate(columns):
        key = norm_key(col)
        if ci in taken_cols or len(key) < 2 or key.isascii():
            continue
        hits = {
            fi
            for fi, fld in enumerate(spec.fields)
            if fi not in taken_fields
            and any(
                norm_key(n).startswith(key) and len(norm_key(n)) - len(key) <= 2 and not norm_key(n).isascii()
                for n in (fld.label_zh, *fld.aliases)
            )
        }
        if len(hits) == 1:
            fi = hits.pop()
            taken_fields[fi] = ci
            taken_cols.add(ci)

    by_col = {ci: spec.fields[fi].name for fi, ci in taken_fields.items()}
    return FieldMatch(
        mapping={columns[ci]: by_col[ci] for ci in sorted(by_col)},
        unmatched=[c for i, c in enumerate(columns) if i not in taken_cols],
        missing=[f.name for fi, f in enumerate(spec.fields) if fi not in taken_fields],
    )
