"""Status and category vocabularies: which code of a layer's vocabulary a raw survey value
is stored as — exact words, declared aliases, remembered and manual mappings, suggestions —
and the words that keep a value from counting as completed (:data:`QUALIFIERS`)."""

from __future__ import annotations

import functools
import unicodedata
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from geo.errors import InputError
from geo.reading.display import safe_display_name, strip_controls
from geo.reading.values import PLACEHOLDERS, clean_text
from layers.base import UNRECOGNISED_CODE, Status

__all__ = [
    "QUALIFIERS",
    "UNRECOGNISED",
    "ValueMapping",
    "VocabResult",
    "is_qualified",
    "map_vocab",
    "resolve_code",
    "suggest_code",
    "vocab_key",
]


#: The code a status or category value gets when it matches nothing: kept, counted in
#: totals, never completed, and listed in the import report for someone to map.
UNRECOGNISED = UNRECOGNISED_CODE

#: How a raw value came to its code (see :class:`ValueMapping`).
MappingHow = Literal["exact", "alias", "remembered", "manual", "suggested", "unrecognised", "empty"]

#: Words that defer, negate, plan, qualify or question.  A value holding one of them is never
#: taken as a *completed* status by a rule -- 暂缓拆除, 待拆除, 拟拆除, 不予拆除, 拆除未完成,
#: 部分拆除 and 不拆除 all contain 拆除 but none says the site is gone.  Matched on the
#: :func:`vocab_key` of the value (simplified, lower case, no spaces or punctuation).
QUALIFIERS: tuple[str, ...] = (
    "暂缓", "暂不", "暂停", "暂未", "缓拆", "延期", "推迟", "待", "拟", "不予", "不", "未", "尚未", "没",
    "无法", "非", "否", "拒", "部分", "局部", "一半", "半", "计划", "规划", "申请", "准备", "将", "预",
    "中止", "终止", "撤销", "取消", "中", "正在", "进行", "?",
    "not", "no", "pending", "partial", "partly", "plan", "defer", "postpone", "tobe", "un", "never",
    "ongoing", "progress", "refus", "reject", "cancel", "suspend", "todo",
)  # fmt: skip


_T2S: Any = None


def _to_simplified(text: str) -> str:
    """Traditional characters to simplified (OpenCC's t2s tables)."""
    global _T2S
    if _T2S is None:
        import opencc

        _T2S = opencc.OpenCC("t2s")
    return str(_T2S.convert(text))


def vocab_key(value: object) -> str:
    """The key a vocabulary value is matched on.

    Unicode NFKC (full-width forms become half-width), traditional characters become
    simplified, lower case, and every space, punctuation mark and control character is
    dropped: ``" 已拆除。"``, ``"已 拆 除"``, ``"已拆除"`` (traditional) and ``"ＤＯＮＥ"``
    give the keys of ``已拆除`` and ``done``.

    Examples
    --------
    >>> vocab_key("補辦手續（已）")
    '补办手续已'
    >>> vocab_key("In-Progress")
    'inprogress'
    """
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = unicodedata.normalize("NFKC", strip_controls(str(value)))  # lone surrogates: U+FFFD
    if not text.isascii():
        text = _to_simplified(text)
    return "".join(ch for ch in text.casefold() if unicodedata.category(ch)[0] not in "PZC")


def is_qualified(key: str) -> bool:
    """Whether a :func:`vocab_key` holds a word that defers, negates, plans or qualifies."""
    return any(q in key for q in QUALIFIERS)


@dataclass
class ValueMapping:
    """What one distinct raw value of a vocabulary field became.

    Attributes
    ----------
    raw : str or None
        The value as written (cleaned of controls and outer spaces); None for empty values.
    code : str or None
        The code it is stored as: a vocabulary code, :data:`UNRECOGNISED`, or the default
        for empty values.
    how : str
        ``"exact"`` (the code or its Chinese or English label), ``"alias"`` (a declared
        alias), ``"remembered"`` (a mapping confirmed earlier and kept in the store),
        ``"manual"`` (given for this import), ``"suggested"`` (not mapped: ``suggestion``
        is what containment or similarity proposes), ``"unrecognised"`` or ``"empty"``.
    count : int
        Rows holding it.
    suggestion : str or None
        For ``"suggested"``: the proposed code.  Never a completed status for a value that
        defers, negates, plans or qualifies (see :data:`QUALIFIERS`).
    qualified : bool
        The value holds one of :data:`QUALIFIERS`.
    """

    raw: str | None
    code: str | None
    how: MappingHow
    count: int
    suggestion: str | None = None
    qualified: bool = False


@dataclass
class VocabResult:
    """Result of :func:`map_vocab`: a code and the raw text per row, and one
    :class:`ValueMapping` per distinct value, most frequent first."""

    codes: pd.Series
    raw: pd.Series
    values: list[ValueMapping]


@functools.lru_cache(maxsize=64)
def _vocab_words(vocab: tuple[Status, ...]) -> tuple[dict[str, str], dict[str, str]]:
    """Keys of the codes and labels (exact) and of the aliases, each to its code; a key
    shared by two statuses belongs to the first in ``vocab``.  Kept per vocabulary (layers
    are declared once): a file of thousands of distinct values asks for them once per value.
    Callers must not change the dicts."""
    exact: dict[str, str] = {}
    alias: dict[str, str] = {}
    for st in vocab:
        for word in (st.code, st.label_zh, st.label_en):
            key = vocab_key(word)
            if key:
                exact.setdefault(key, st.code)
    for st in vocab:
        for word in st.aliases:
            key = vocab_key(word)
            if key and key not in exact:
                alias.setdefault(key, st.code)
    return exact, alias


def suggest_code(key: str, vocab: tuple[Status, ...]) -> str | None:
    """A code to *propose* for an unmatched value (never applied without a person).

    Containment first: the outermost vocabulary words found in the value (a word inside
    another found word is dropped) when they all belong to one status (``"已拆除完毕"`` →
    ``已拆除``, ``"正在拆除中"`` → ``拆除中``).  Else similarity: the one vocabulary word of
    about the same length differing in a single character (``"己拆除"`` → ``已拆除``).
    A completed status is never proposed for a qualified value (:func:`is_qualified`).
    """
    if not key:
        return None
    exact, alias = _vocab_words(vocab)
    words = {**alias, **exact}
    completed = {st.code for st in vocab if st.completed}
    qualified = is_qualified(key)

    def allowed(code: str) -> bool:
        return not (qualified and code in completed)

    found = [w for w in words if w in key]
    outer = [a for a in found if not any(a != b and a in b for b in found)]
    codes = {words[a] for a in outer}
    if len(codes) == 1:
        code = codes.pop()
        return code if allowed(code) else None
    if codes:
        return None  # words of two statuses: ambiguous
    near = {
        words[w]
        for w in words
        if not w.isascii()
        and len(w) == len(key)
        and len(w) >= 2
        and sum(a != b for a, b in zip(w, key, strict=True)) == 1
    }
    if len(near) == 1:
        code = near.pop()
        return code if allowed(code) else None
    return None


def resolve_code(vocab: tuple[Status, ...], text: str) -> str:
    """The code a person names: a code, its Chinese or English label, or 未识别/unrecognised.

    Raises
    ------
    InputError
        ``code="bad_mapping"``: no value of the vocabulary has that name.
    """
    key = vocab_key(text)
    if key in (vocab_key(UNRECOGNISED), "unrecognised", "unrecognized"):
        return UNRECOGNISED
    exact, _ = _vocab_words(vocab)
    if key in exact:
        return exact[key]
    shown = safe_display_name(str(text))[:40]
    names = "、".join(st.code for st in vocab)
    raise InputError(
        f"「{shown}」不是可选的值（可选: {names}、{UNRECOGNISED}）",
        f"'{shown}' is not one of the values ({', '.join(st.label_en for st in vocab)}, unrecognised)",
        code="bad_mapping",
    )


def map_vocab(
    s: pd.Series,
    vocab: tuple[Status, ...],
    default: str | None,
    *,
    manual: dict[str, str] | None = None,
    remembered: dict[str, str] | None = None,
) -> VocabResult:
    """Map free-text status or category values to a vocabulary's codes, conservatively.

    A value maps to a code only when its :func:`vocab_key` equals that of the code or its
    Chinese or English label (``"exact"``), of a declared alias (``"alias"``), or of a
    mapping given for this import (``manual``, which wins over everything) or confirmed
    earlier (``remembered``, used when the value is no exact name).  Anything else is
    stored as :data:`UNRECOGNISED` -- counted, never completed -- with a ``suggestion``
    from containment or similarity (:func:`suggest_code`) for a person to confirm.

    Parameters
    ----------
    s : pandas.Series
        Raw values.
    vocab : tuple of Status
        The vocabulary, e.g. ``spec.statuses``.
    default : str or None
        Code given to empty values (``None``, NaN, blank, ``"-"``, ``"/"``).
    manual, remembered : dict of str to str, optional
        :func:`vocab_key` of a raw value → code (or :data:`UNRECOGNISED`).

    Returns
    -------
    VocabResult
    """
    manual = manual or {}
    remembered = remembered or {}
    raw = clean_text(s.astype(object))
    codes_idx, uniques = pd.factorize(raw, use_na_sentinel=True)
    counts = np.bincount(codes_idx[codes_idx >= 0], minlength=len(uniques))
    exact, alias = _vocab_words(vocab)
    mapped: list[str | None] = []
    values: list[ValueMapping] = []
    for value, count in zip(uniques.tolist(), counts.tolist(), strict=True):
        key = vocab_key(value)
        qualified = is_qualified(key)
        if key in PLACEHOLDERS or not key:
            entry = ValueMapping(str(value), default, "empty", count)
        elif key in manual:
            entry = ValueMapping(str(value), manual[key], "manual", count, qualified=qualified)
        elif key in exact:
            entry = ValueMapping(str(value), exact[key], "exact", count, qualified=qualified)
        elif key in remembered:
            entry = ValueMapping(str(value), remembered[key], "remembered", count, qualified=qualified)
        elif key in alias:
            entry = ValueMapping(str(value), alias[key], "alias", count, qualified=qualified)
        else:
            hint = suggest_code(key, vocab)
            how: MappingHow = "suggested" if hint else "unrecognised"
            entry = ValueMapping(str(value), UNRECOGNISED, how, count, hint, qualified)
        mapped.append(entry.code)
        values.append(entry)
    out = np.full(len(raw), default, dtype=object)
    have = codes_idx >= 0
    if len(uniques):
        out[have] = np.asarray(mapped, dtype=object)[codes_idx[have]]
    empty_rows = int((~have).sum())
    if empty_rows:
        values.append(ValueMapping(None, default, "empty", empty_rows))
    values.sort(key=lambda v: -v.count)
    return VocabResult(pd.Series(out, index=s.index, name=s.name, dtype=object), raw, values)
