"""Statistics tables written column by column: CSV through Arrow's CSV writer, JSON rows from
per-column texts made with numpy, no Python call per cell for numeric columns.

The values and their text are those of the per-cell helpers of :mod:`geo.output.tables`
(:func:`~geo.output.tables.csv_value`, :func:`~geo.output.tables.plain_value` through
``json.dumps``); these functions only make them for a whole column at once.  Text columns
(codes, names) still cost one C call per cell; a column of mixed or unusual values falls
back to the per-cell helpers, so nothing is ever written differently, only slower.
"""

from __future__ import annotations

import io
import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any, cast

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from geo.output.tables import FORMULA_START, csv_value, plain_value

#: Floats up to this magnitude are exact integers (2**53): a whole one is written as an integer.
_EXACT = float(2**53)

#: Characters written as ``\\u003c`` etc. inside JSON strings, so survey text is never markup.
_MARKUP = (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"))

_encode_str = cast(Any, json.encoder).encode_basestring  # C: json.dumps of a str, ensure_ascii=False


#: Bytes of numeric columns' text kept by :func:`_memo` (keys and texts together), at most: the
#: CSV and the JSON of all 40,000 units of a district take about 8 MiB each.
MEMO_BYTES = 16 * 1024 * 1024

_memo_lock = threading.Lock()
_memo_entries: OrderedDict[tuple[str, str, bytes], pa.Array] = OrderedDict()
_memo_slots: dict[tuple[str, str], tuple[str, str, bytes]] = {}
_memo_total = 0


def _memo(kind: str, name: object, x: np.ndarray, make: Callable[[], Any]) -> Any:
    """The text array ``make()`` gives for the numeric column ``x`` called ``name`` written as
    ``kind``, kept by the column's values: a figure asked for again, or a table of which only
    one layer's columns changed, formats only the columns whose values changed.  The key is
    the values' bytes themselves (compared in full on a hit, never only a hash; counts in the
    narrowest integer type that holds them).  One text is kept per column name, kind and
    length -- the newer values replace the older, so what is kept stays the size of the
    tables asked for, however often the figures change -- and the least recently used go
    beyond :data:`MEMO_BYTES`.  What ``make()`` gives as None is not kept."""
    global _memo_total
    key = (kind, f"{name}|{x.dtype.str}:{len(x)}", _key_bytes(x))
    with _memo_lock:
        hit = _memo_entries.get(key)
        if hit is not None:
            _memo_entries.move_to_end(key)
            return hit
    arr = make()
    if arr is None:
        return None
    size = len(key[2]) + arr.nbytes
    if size > MEMO_BYTES // 4:
        return arr
    with _memo_lock:
        if key not in _memo_entries:
            older = _memo_slots.get(key[:2])
            if older is not None and older in _memo_entries:
                _memo_total -= len(older[2]) + _memo_entries.pop(older).nbytes
            _memo_entries[key] = arr
            _memo_slots[key[:2]] = key
            _memo_total += size
            while _memo_total > MEMO_BYTES:
                old, text = _memo_entries.popitem(last=False)
                _memo_total -= len(old[2]) + text.nbytes
                if _memo_slots.get(old[:2]) == old:
                    del _memo_slots[old[:2]]
    return arr


def _key_bytes(x: np.ndarray) -> bytes:
    """The values of ``x`` as bytes, integers in the narrowest type that holds them all (the
    type is part of the bytes' length, and the column's own type is in the key beside them)."""
    if x.dtype.kind in "iu" and len(x):
        lo, hi = int(x.min()), int(x.max())
        for narrow in (np.uint8, np.uint16, np.uint32) if lo >= 0 else (np.int8, np.int16, np.int32):
            info = np.iinfo(narrow)
            if info.min <= lo and hi <= info.max:
                return bytes([np.dtype(narrow).itemsize]) + x.astype(narrow).tobytes()
    return np.ascontiguousarray(x).tobytes()


def _in_fast_range(x: np.ndarray, finite: np.ndarray) -> bool:
    """Whether every finite non-zero value lies where Arrow writes floats as Python does
    (positional, shortest digits): 1e-4 <= |v| < 1e10."""
    nonzero = np.abs(x[finite & (x != 0)])
    return bool(np.all((nonzero >= _FAST_FLOAT[0]) & (nonzero < _FAST_FLOAT[1])))


def _text_bytes(arr: pa.Array) -> bytes:
    """The bytes of an Arrow string array's values, run together (a slice may add others)."""
    data = arr.buffers()[2]
    return b"" if data is None else data.to_pybytes()


def _string_array(values: pd.Series) -> pa.Array | None:
    """A column of text and missing values as an Arrow string array (missing: null), taken
    as it is from a pandas string column; None when the column holds anything else."""
    if isinstance(values.dtype, pd.StringDtype):
        arr = pa.array(values, from_pandas=True)
    else:
        obj = values.to_numpy(dtype=object)
        if pd.api.types.infer_dtype(obj, skipna=True) not in ("string", "empty"):
            return None
        arr = pa.array(obj, type=pa.string(), from_pandas=True)
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    return arr if arr.type == pa.string() else arr.cast(pa.string())


def _holds(data: bytes, chars: bytes) -> bool:
    """Whether ``data`` holds any of the bytes ``chars`` (one C pass, no per-value call)."""
    return len(data.translate(None, chars)) != len(data)


def _first_bytes(arr: pa.Array) -> np.ndarray:
    """The first byte of each non-empty value of an Arrow string array."""
    data = arr.buffers()[2]
    if data is None:
        return np.zeros(0, dtype=np.uint8)
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int32)[arr.offset : arr.offset + len(arr) + 1]
    starts = offsets[:-1][np.diff(offsets) > 0]
    return np.frombuffer(data, dtype=np.uint8)[starts]


_FORMULA_BYTES = np.array([ord(c) for c in FORMULA_START], dtype=np.uint8)


def _float_text(x: np.ndarray) -> list[str]:
    """``csv_value`` of each float (positional, never an exponent), for the rare column Arrow
    would write with one."""
    return [csv_value(v) for v in x.tolist()]


def csv_column(values: pd.Series) -> pa.Array:
    """One column as the Arrow array whose CSV text is :func:`~geo.output.tables.csv_value` of
    each cell: integers as integers, floats in positional notation (``0.667``, ``1580.9``, a
    whole float without ``.0``), NaN, infinities and missing values as nulls (empty cells), text
    as a spreadsheet-safe string (a leading ``'`` before ``= + - @``, a tab or a line end) and
    the empty text as a null.  Rates are rounded by the caller."""
    if isinstance(values.dtype, np.dtype) and values.dtype.kind in "iuf":
        x = values.to_numpy()
        return _memo("csv", values.name, x, lambda: _csv_numbers(x))
    plain = _string_array(values)
    if plain is None:  # booleans, numbers among text, dates: the per-cell helper
        arr = pa.array([csv_value(v) for v in values.to_numpy(dtype=object)], type=pa.string())
    else:
        arr = plain
    arr = pc.if_else(pc.equal(arr, ""), pa.scalar(None, pa.string()), arr)
    if np.isin(_first_bytes(arr), _FORMULA_BYTES).any():
        formula = pc.starts_with(arr, FORMULA_START[0])
        for start in FORMULA_START[1:]:
            formula = pc.or_(formula, pc.starts_with(arr, start))
        arr = pc.if_else(formula, pc.binary_join_element_wise("'", arr, ""), arr)
    return arr


def _csv_numbers(x: np.ndarray) -> pa.Array:
    """The text of a numeric column for :func:`csv_column` (see there)."""
    if x.dtype.kind in "iu":
        return pc.cast(pa.array(x), pa.string())
    x = x.astype("float64")
    missing = ~np.isfinite(x)
    finite = x[~missing]
    if np.all((np.mod(finite, 1) == 0) & (np.abs(finite) < _EXACT) & ~((finite == 0) & np.signbit(finite))):
        return pc.cast(pa.array(np.where(missing, 0, x).astype("int64"), mask=missing), pa.string())
    arr = pa.array(x, mask=missing)
    if not _in_fast_range(x, ~missing) and pc.any(pc.match_substring(pc.cast(arr, pa.string()), "e")).as_py():
        text = np.array(_float_text(x), dtype=object)
        text[missing] = None
        return pa.array(text, type=pa.string())
    return pc.cast(arr, pa.string())


def write_csv_rows(table: pd.DataFrame, columns: Sequence[pd.Series], out: io.BytesIO) -> None:
    """The rows of ``table`` (no header) as CSV into ``out``: ``columns`` are its columns as
    they are to be written (rates already rounded), CRLF line ends, numbers and empty cells
    bare, text bare unless some text cell holds a separator, a quote or a line end -- then
    every text cell is quoted (a quote in it doubled); what Excel, WPS and ``csv`` read."""
    if not len(table):
        return
    arrays = [csv_column(v) for v in columns]
    text = [not (isinstance(v.dtype, np.dtype) and v.dtype.kind in "iuf") for v in columns]
    # quotes only when a text cell holds a separator, a quote or a line end (then every text
    # cell, a quote in it doubled); otherwise bare, as the csv module writes them.  Numbers
    # come as their text already (:func:`csv_column`), never quoted.
    if any(t and _holds(_text_bytes(a), b',"\r\n') for a, t in zip(arrays, text, strict=True)):
        quoted = [
            pc.binary_join_element_wise('"', pc.replace_substring(a, '"', '""'), '"', "") if t else a
            for a, t in zip(arrays, text, strict=True)
        ]
        out.write(_joined_rows(quoted))
        return
    pacsv.write_csv(
        pa.Table.from_arrays(arrays, names=[f"c{i}" for i in range(len(arrays))]),
        out,
        pacsv.WriteOptions(include_header=False, batch_size=65536, eol="\r\n", quoting_style="none"),
    )


def _joined_rows(arrays: list[pa.Array]) -> bytes:
    """String arrays as CSV rows (their values as they are, nulls empty), each ended by CRLF."""
    cells = [pc.fill_null(a, "") for a in arrays]
    rows = pc.cast(pc.binary_join_element_wise(*cells, ","), pa.large_string())
    one = pa.LargeListArray.from_arrays(pa.array([0, len(rows)], type=pa.int64()), rows)
    return bytes(pc.binary_join(one, pa.scalar("\r\n", pa.large_string()))[0].as_buffer()) + b"\r\n"


def json_texts(values: pd.Series) -> list[str]:
    """One column as the JSON text of each cell, exactly as ``json.dumps(plain_value(v),
    ensure_ascii=False)`` writes it (``3``, ``0.6666666666666666``, ``null`` for NaN and
    missing values, ``"文字"``), with ``<``, ``>`` and ``&`` in strings written as ``\\u003c``,
    ``\\u003e`` and ``\\u0026``."""
    dtype = values.dtype
    if isinstance(dtype, np.dtype) and dtype.kind in "iu":
        return cast(list[str], values.to_numpy().astype(str).tolist())
    if isinstance(dtype, np.dtype) and dtype.kind == "f":
        x = values.to_numpy().astype("float64")
        text = x.astype(str).astype(object)
        text[~np.isfinite(x)] = "null"
        return cast(list[str], text.tolist())
    if isinstance(dtype, np.dtype) and dtype.kind == "b":
        return np.where(values.to_numpy(), "true", "false").tolist()
    obj = values.to_numpy(dtype=object)
    missing = pd.isna(obj)
    if pd.api.types.infer_dtype(obj, skipna=True) in ("string", "empty"):
        out = ["null" if m else _encode_str(v) for v, m in zip(obj.tolist(), missing.tolist(), strict=True)]
    else:
        out = [json.dumps(plain_value(v), ensure_ascii=False, allow_nan=False) for v in obj]
    joined = "".join(out)
    if any(ch in joined for ch, _ in _MARKUP):
        out = [_markup_free(t) for t in out]
    return out


def _markup_free(text: str) -> str:
    for ch, esc in _MARKUP:
        text = text.replace(ch, esc)
    return text


def markup_free_dumps(value: Any) -> str:
    """``json.dumps(value, ensure_ascii=False, allow_nan=False)`` with ``<``, ``>`` and ``&``
    written as ``\\u003c``, ``\\u003e`` and ``\\u0026`` (they occur only inside strings)."""
    return _markup_free(json.dumps(value, ensure_ascii=False, allow_nan=False))


#: What a JSON string cannot hold as it is (a quote, a backslash, control characters) and what
#: is written escaped as markup (``<``, ``>``, ``&``), in UTF-8 bytes.
_JSON_SPECIAL = bytes(range(0x20)) + b'"\\<>&'

#: Floats Arrow writes as Python does (positional, shortest digits) once a whole one gets ``.0``.
_FAST_FLOAT = (1e-4, 1e10)


def json_column(values: pd.Series) -> pa.Array:
    """One column as an Arrow array of the JSON text of each cell, the same text as
    :func:`json_texts`, made by Arrow's casts where they give it (integers, floats between
    1e-4 and 1e10, text that needs no escape) and by :func:`json_texts` otherwise."""
    dtype = values.dtype
    if isinstance(dtype, np.dtype) and dtype.kind in "iu":
        x = values.to_numpy()
        return _memo("json", values.name, x, lambda: pc.cast(pa.array(x), pa.string()))
    if isinstance(dtype, np.dtype) and dtype.kind == "f":
        x = values.to_numpy().astype("float64")
        text = _memo("json", values.name, x, lambda: _json_floats(x))
        if text is not None:
            return text
    elif not isinstance(dtype, np.dtype) or dtype.kind == "O":
        arr = _string_array(values)
        if arr is not None and not _holds(_text_bytes(arr), _JSON_SPECIAL):
            return pc.fill_null(pc.binary_join_element_wise('"', arr, '"', ""), "null")
    return pa.array(json_texts(values), type=pa.string())


def _json_floats(x: np.ndarray) -> pa.Array | None:
    """The JSON text of a float column made by Arrow's cast, when all its values lie where that
    gives Python's text; else None."""
    finite = np.isfinite(x)
    if not _in_fast_range(x, finite):
        return None
    text = pc.cast(pa.array(x, mask=~finite), pa.string())
    whole = np.mod(np.where(finite, x, 0.5), 1) == 0
    if whole.any():
        text = pc.if_else(pa.array(whole), pc.binary_join_element_wise(text, ".0", ""), text)
    return pc.fill_null(text, "null")


def _joined_numbers(arrays: list[pa.Array]) -> pa.Array:
    """The texts of numeric columns (no nulls, no separators, quotes or line ends in them)
    joined by ``,`` row by row -- by Arrow's CSV writer, several times faster than Arrow's
    element-wise join over many columns."""
    if len(arrays) == 1:
        return arrays[0]
    out = io.BytesIO()
    pacsv.write_csv(
        pa.Table.from_arrays(arrays, names=[f"c{i}" for i in range(len(arrays))]),
        out,
        pacsv.WriteOptions(include_header=False, batch_size=65536, eol="\n", quoting_style="none"),
    )
    data = np.frombuffer(out.getbuffer(), dtype=np.uint8)
    ends = np.flatnonzero(data == 10)
    if len(ends) != len(arrays[0]) or len(data) >= 2**31:
        return pc.binary_join_element_wise(*arrays, ",")
    offsets = np.empty(len(ends) + 1, dtype=np.int32)
    offsets[0] = 0
    offsets[1:] = ends + 1
    lines = pa.StringArray.from_buffers(len(ends), pa.py_buffer(offsets), pa.py_buffer(data))
    return pc.utf8_slice_codeunits(lines, 0, -1)  # without the line end


def json_rows(table: pd.DataFrame, arrays: bool = False) -> bytes:
    """The rows of ``table`` as a JSON array (UTF-8): of objects ``{"column": value, ...}`` in
    the spacing of ``json.dumps`` (the same text as ``json.dumps`` of
    :func:`~geo.output.tables.records`), or with ``arrays`` of arrays ``[value,...]`` in the
    columns' order, without spaces; values as :func:`json_texts` writes them.  Rows are
    joined by Arrow, column against column, never one Python call per row."""
    n = len(table)
    if n == 0:
        return b"[]"
    if len(table.columns) == 0:
        return (
            "["
            + ("[]" if arrays else "{}")
            + (("," if arrays else ", ") + ("[]" if arrays else "{}")) * (n - 1)
            + "]"
        ).encode()
    cols = [json_column(table[c]) for c in table.columns]
    if arrays:
        numeric = [
            isinstance(table[c].dtype, np.dtype) and table[c].dtype.kind in "iuf" for c in table.columns
        ]
        pieces: list[pa.Array] = []
        run: list[pa.Array] = []
        for col, num in zip(cols, numeric, strict=True):
            if num:
                run.append(col)
                continue
            if run:
                pieces.append(_joined_numbers(run))
                run = []
            pieces.append(col)
        if run:
            pieces.append(_joined_numbers(run))
        rows = pieces[0] if len(pieces) == 1 else pc.binary_join_element_wise(*pieces, ",")
        rows = pc.cast(rows, pa.large_string())
        one = pa.LargeListArray.from_arrays(pa.array([0, n], type=pa.int64()), rows)
        joined = pc.binary_join(one, pa.scalar("],[", pa.large_string()))[0]
        return b"[[" + joined.as_buffer().to_pybytes() + b"]]"
    return b"".join((b"[", _object_rows(table, cols), b"]"))  # one copy of the rows' text


#: Rows of about this many bytes or more are joined with 64-bit offsets (Arrow's ``large_string``).
LARGE_ROWS_BYTES = 2**31 - 1


def _repeated(text: str, n: int, large: bool) -> pa.Array:
    """An Arrow string array of ``n`` times ``text``, made from its buffers (no per-value call)."""
    data = text.encode("utf-8")
    kind = np.int64 if large else np.int32
    offsets = np.arange(n + 1, dtype=kind) * len(data)
    typ = pa.large_string() if large else pa.string()
    return pa.Array.from_buffers(typ, n, [None, pa.py_buffer(offsets), pa.py_buffer(data * n)])


def _object_rows(table: pd.DataFrame, cols: list[pa.Array]) -> memoryview:
    """The rows ``{"column": value, ...}`` of :func:`json_rows`, joined by ``, `` (without the
    brackets): one element-wise join of every column's text between its key, written once per
    row by :func:`_repeated`, each row ended by ``}, `` -- so the joined values are, in order,
    the whole text, seen in their buffer (one Arrow call for all rows and columns, no copy)."""
    n = len(table)
    keys = [
        ("{" if i == 0 else ", ") + _markup_free(_encode_str(str(c))) + ": "
        for i, c in enumerate(table.columns)
    ]
    size = sum(int(c.nbytes) for c in cols) + n * (sum(len(k.encode("utf-8")) for k in keys) + 3)
    large = size >= LARGE_ROWS_BYTES  # beyond 32-bit offsets
    parts: list[pa.Array] = []
    for key, col in zip(keys, cols, strict=True):
        col = pc.fill_null(col, "null") if col.null_count else col  # a null would drop its row
        parts += [_repeated(key, n, large), pc.cast(col, pa.large_string()) if large else col]
    parts.append(_repeated("}, ", n, large))
    rows = pc.binary_join_element_wise(*parts, pa.scalar("", pa.large_string() if large else pa.string()))
    offsets = np.frombuffer(rows.buffers()[1], dtype=np.int64 if large else np.int32)
    start, end = int(offsets[rows.offset]), int(offsets[rows.offset + n])
    data = rows.buffers()[2]
    return memoryview(data)[start : end - 2] if data is not None else memoryview(b"")
