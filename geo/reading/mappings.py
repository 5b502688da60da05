"""Value mappings as people give them: ``--map 当前状态:暂缓拆除=已下发通知`` and value-map files.

A mapping says which code a raw status or category value of a layer is stored as (see
:func:`geo.reading.vocab.map_vocab`).  Mappings given for an import apply to it; an admin's are
remembered in the store for later imports of the layer (:func:`geo.imports.commit.commit_import`)
and listed and removed with ``gridwatch mappings``.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from geo.errors import InputError
from geo.reading.charsets import decode_csv_text
from geo.reading.display import safe_display_name

__all__ = ["MAX_MAP_FILE_BYTES", "MAX_MAP_ROWS", "parse_map", "read_value_map"]

#: A value-map file is a small table typed by a person: larger ones are refused unread.
MAX_MAP_FILE_BYTES = 1 << 20
MAX_MAP_ROWS = 10_000

#: Accepted headers of a value-map file, per column.
_HEADERS = {
    "field": ("字段", "field"),
    "raw": ("原值", "raw", "value"),
    "code": ("映射为", "code", "maps to", "mapped to"),
}


def _bad(zh: str, en: str) -> InputError:
    return InputError(zh, en, code="bad_mapping")


def parse_map(text: str) -> tuple[str, str, str]:
    """``FIELD:RAW=CODE`` → ``(field, raw, code)``.

    FIELD is a field name or label (``status`` or ``当前状态``), RAW the raw text (it may
    hold ``:`` and ``=``; the last ``=`` ends it), CODE a code or label, or ``未识别``.

    Raises
    ------
    InputError
        ``code="bad_mapping"``: not of that form.
    """
    field, colon, rest = str(text).partition(":")
    if not colon:
        field, colon, rest = str(text).partition("：")  # a full-width colon typed with a Chinese IME
    raw, eq, code = rest.rpartition("=")
    if not eq:
        raw, eq, code = rest.rpartition("＝")
    if not (colon and eq and field.strip() and raw.strip() and code.strip()):
        shown = safe_display_name(str(text))[:80]
        raise _bad(
            f"值对应「{shown}」应写作 字段:原值=映射为，如 当前状态:暂缓拆除=已下发通知",
            f"value mapping '{shown}' must read FIELD:RAW=CODE, e.g. status:暂缓拆除=已下发通知",
        )
    return field.strip(), raw.strip(), code.strip()


def read_value_map(path: str | Path) -> list[tuple[str, str, str]]:
    """The mappings of a value-map CSV: columns ``字段,原值,映射为`` (or ``field,raw,code``),
    UTF-8 (with or without BOM) or GBK, as Excel and WPS save it.

    Raises
    ------
    InputError
        ``code="bad_mapping"``: too large, not text, headers missing, or an empty cell.
    """
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_MAP_FILE_BYTES + 1)
    except OSError as exc:
        raise InputError(
            f"无法读取值对应文件: {path.name}",
            f"cannot read the value-map file: {exc}",
            code="file_not_found",
        ) from exc
    if len(data) > MAX_MAP_FILE_BYTES:
        raise _bad(
            f"值对应文件过大（上限 {MAX_MAP_FILE_BYTES // 1024} KB）",
            f"the value-map file is too large (limit {MAX_MAP_FILE_BYTES // 1024} KB)",
        )
    decoded = decode_csv_text(data)
    text = decoded[0] if decoded is not None else None
    # a value map is a table a person typed: a NUL says it is not text at all (survey CSVs
    # keep theirs, to be stripped from the values)
    if text is None or "\x00" in text:
        raise _bad("值对应文件不是 UTF-8 或 GBK 文本", "the value-map file is not UTF-8 or GBK text")
    rows = list(csv.reader(io.StringIO(text)))
    rows = [r for r in rows if any(c.strip() for c in r)]
    if not rows:
        raise _bad("值对应文件为空", "the value-map file is empty")
    header = [c.strip().casefold() for c in rows[0]]
    where: dict[str, int] = {}
    for key, names in _HEADERS.items():
        for i, h in enumerate(header):
            if h in names:
                where[key] = i
                break
    if len(where) < 3:
        raise _bad(
            "值对应文件需要列: 字段,原值,映射为（或 field,raw,code）",
            "the value-map file needs the columns 字段,原值,映射为 (or field,raw,code)",
        )
    body = rows[1:]
    if len(body) > MAX_MAP_ROWS:
        raise _bad(f"值对应文件行数过多（上限 {MAX_MAP_ROWS}）", f"too many rows (limit {MAX_MAP_ROWS})")
    out: list[tuple[str, str, str]] = []
    for n, row in enumerate(body, start=2):
        cells = [row[where[k]].strip() if where[k] < len(row) else "" for k in ("field", "raw", "code")]
        if not all(cells):
            raise _bad(f"值对应文件第 {n} 行有空格", f"row {n} of the value-map file has an empty cell")
        out.append((cells[0], cells[1], cells[2]))
    return out
