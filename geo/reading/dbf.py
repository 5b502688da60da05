"""Fast readers for shapefile attribute tables (dBASE III/IV ``.dbf``) and point ``.shp`` files.

GDAL reads DBF text through iconv one field of one record at a time; for a
100,000-record GBK table that takes 1.5-3 s on the machines this runs on.  DBF
records are fixed width, so numpy can slice every column out of the record block at
once and each *distinct* value is decoded only once (survey columns repeat a lot),
which is several times faster (see ``bench/bench_engine.py``).  Only the plain field
types are handled (C, N, F, D, L); anything else makes :func:`read_dbf` return
``None`` and the caller falls back to GDAL.

Damage checks on the files before they are read are :mod:`geo.reading.shp_checks`.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import shapely

from geo.errors import TooLarge

_SIMPLE_TYPES = {"C", "N", "F", "D", "L"}
#: Tables with more fields than this are refused before their records are read (dBASE IV
#: allows 255; GDAL writes up to 2,046 — no survey has hundreds).
MAX_FIELDS = 1000


def too_many_fields(n: int) -> TooLarge:
    """The error for a table of ``n`` fields, more than :data:`MAX_FIELDS`."""
    return TooLarge(
        f"表格字段过多（{n:,} 个，上限 {MAX_FIELDS:,}），请删去无用字段后再上传",
        f"the table has too many fields ({n:,}, limit {MAX_FIELDS:,}): remove unused fields",
        code="too_many_fields",
    )


@dataclass(frozen=True)
class DbfField:
    """One field descriptor of a DBF header."""

    name_raw: bytes  # the name's bytes, before any decoding
    type: str  # C, N, F, D, L, M ... (upper case)
    offset: int  # byte offset inside a record; byte 0 is the deletion flag
    length: int


@dataclass(frozen=True)
class DbfHeader:
    """What a DBF header says: its language byte, record count and lengths, and the fields."""

    ldid: int
    n_records: int
    header_len: int
    record_len: int
    fields: tuple[DbfField, ...]


#: Ends the field descriptors.
DBF_TERMINATOR = 0x0D


def parse_header(head: bytes) -> DbfHeader | None:
    """The header at the start of ``head`` (32 bytes plus the descriptors), the one parser every
    reader of DBF headers here uses; ``None`` when it is shorter than a header.

    A field's width is byte 16 of its descriptor.  Clipper and some dBASE writers keep text
    fields wider than 255 bytes with byte 17 as the high byte, while other writers put a
    "decimals" value there for text (shapelib, and so GDAL, ignores it for that reason).  So
    byte 17 is taken as the high byte of the non-numeric fields only when the widths add up
    to the record length that way and not without it.  Whether the header agrees with the file
    is for the caller to judge.
    """
    if len(head) < 32:
        return None
    n_records, header_len, record_len = struct.unpack_from("<IHH", head, 4)
    descriptors: list[tuple[bytes, str, int, int]] = []
    pos = 32
    end = min(header_len, len(head))
    while pos + 32 <= end and head[pos] != DBF_TERMINATOR:
        desc = head[pos : pos + 32]
        ftype = chr(desc[11]).upper()
        high = 0 if ftype in ("N", "F") else desc[17]
        descriptors.append((desc[:11].split(b"\x00", 1)[0].rstrip(b" "), ftype, desc[16], high))
        pos += 32
    narrow = sum(low for _, _, low, _ in descriptors) + 1
    wide = sum(low + 256 * high for _, _, low, high in descriptors) + 1
    use_high = wide == record_len and narrow != record_len
    fields: list[DbfField] = []
    offset = 1
    for name_raw, ftype, low, high in descriptors:
        length = low + 256 * high if use_high else low
        fields.append(DbfField(name_raw, ftype, offset, length))
        offset += length
    return DbfHeader(head[29], n_records, header_len, record_len, tuple(fields))


def read_dbf(
    path: Path,
    encoding: str,
    select: Callable[[list[str]], Collection[str]] | None = None,
    names_out: list[str] | None = None,
) -> tuple[pd.DataFrame, np.ndarray] | None:
    """Attributes of every record and the mask of records marked deleted.

    Parameters
    ----------
    path : Path
        The ``.dbf`` file.
    encoding : str
        Python codec for text fields and field names (e.g. ``"gb18030"``).
    select : callable, optional
        Given every column name, returns the names to decode; the others are not read
        (a table of thousands of fields costs only the columns a layer uses).
    names_out : list, optional
        Filled with every column name, in file order.

    Returns
    -------
    (DataFrame, ndarray of bool) or None
        Columns in file order: text as ``str`` or ``None``, numbers as float64
        (``NaN`` when blank), dates as ISO ``"YYYY-MM-DD"`` strings, logicals as
        ``bool``/``None``.  ``None`` when the table uses field types this reader
        does not handle or its header is inconsistent.
    """
    if path.stat().st_size < 33:
        return None
    # mapped, not read: a reading helper's memory limit does not count a file mapped read-only
    data = np.memmap(path, dtype=np.uint8, mode="r")
    header_len = int.from_bytes(bytes(data[8:10]), "little")
    header = parse_header(bytes(data[: min(len(data), header_len)]))
    if header is None:
        return None
    n, record_len = header.n_records, header.record_len
    fields: list[tuple[str, str, int, int]] = []
    for f in header.fields:
        if f.type not in _SIMPLE_TYPES:
            return None
        try:
            name = f.name_raw.decode(encoding).strip()
        except UnicodeDecodeError:
            name = f.name_raw.decode(encoding, errors="ignore").strip()
        fields.append((name, f.type, f.offset, f.length))
    end = fields[-1][2] + fields[-1][3] if fields else 0
    if end != record_len or header_len + n * record_len > len(data) or not fields:
        return None
    if len(fields) > MAX_FIELDS:
        raise too_many_fields(len(fields))
    records = np.frombuffer(data, dtype=np.uint8, count=n * record_len, offset=header_len).reshape(
        n, record_len
    )
    deleted = records[:, 0] == ord("*")
    keys: list[str] = []
    for name, _ftype, _start, _length in fields:
        key = name
        k = 1
        while key in keys:  # duplicate names, as GDAL does
            key = f"{name}_{k}"
            k += 1
        keys.append(key)
    if names_out is not None:
        names_out[:] = keys
    wanted = set(keys if select is None else select(list(keys)))
    columns: dict[str, object] = {}
    for key, (_name, ftype, start, length) in zip(keys, fields, strict=True):
        if key not in wanted:
            continue
        if ftype == "C":
            columns[key] = _decode_text_chunked(records, start, length, encoding)
            continue
        raw = np.ascontiguousarray(records[:, start : start + length]).view(f"S{length}").ravel()
        if ftype in ("N", "F"):
            columns[key] = _numbers(raw)
        elif ftype == "D":
            columns[key] = _dates(raw)
        else:
            columns[key] = _logicals(raw)
    frame = pd.DataFrame(
        {
            k: pd.Series(v, dtype=object if np.asarray(v).dtype == object else None)
            for k, v in columns.items()
        },
        index=pd.RangeIndex(n),
    )
    return frame, deleted


#: Text columns are decoded this many records at a time (bounds the temporary arrays).
_TEXT_CHUNK = 1 << 19


def _decode_text_chunked(records: np.ndarray, start: int, length: int, encoding: str) -> np.ndarray:
    """A text column decoded :data:`_TEXT_CHUNK` records at a time.  When the first chunk
    repeats its values (statuses, districts, dates), equal values share one string object:
    five million rows of a dozen statuses then take 40 MB, not 300 MB."""
    n = len(records)
    out = np.empty(n, dtype=object)
    shared: dict[str, str] | None = None
    for lo in range(0, max(n, 1), _TEXT_CHUNK):
        hi = min(n, lo + _TEXT_CHUNK)
        part = _decode_text(np.ascontiguousarray(records[lo:hi, start : start + length]), encoding)
        values = part.tolist()
        if lo == 0 and len(set(values)) * 2 <= len(values):
            shared = {}
        if shared is not None:
            part = np.empty(len(values), dtype=object)
            part[:] = [None if v is None else shared.setdefault(v, v) for v in values]
        out[lo:hi] = part
    return out


def _decode_text(block: np.ndarray, encoding: str) -> np.ndarray:
    """Decode a text column given as its ``(n, width)`` byte block."""
    n, width = block.shape
    if n == 0:
        return np.empty(0, dtype=object)
    # Fields are often declared far wider than any value (GDAL writes 254): find the last
    # byte column holding anything, scanning from the right in narrow slices, and work
    # on that much only.
    while width > 0:
        lo = max(0, width - 16)
        tail = block[:, lo:width]
        if ((tail != 0x20) & (tail != 0x00)).any():
            break
        width = lo
    block = block[:, :width]
    if width == 0:
        return np.full(n, None, dtype=object)
    # Trim the space/NUL padding of every value at once, then decode the whole column in
    # one call: NUL never occurs inside a GBK, GB18030, Big5 or UTF-8 character, so it
    # separates the values safely.
    content = (block != 0x20) & (block != 0x00)
    has = content.any(axis=1)
    if (block[:, 0] == 0x20).any():  # some values start with blanks
        first = np.where(has, content.argmax(axis=1), 0)
    else:
        first = np.zeros(n, dtype=np.int64)
    last = np.where(has, width - content[:, ::-1].argmax(axis=1), 0)
    cols = np.arange(width)
    keep = (cols >= first[:, None]) & (cols < last[:, None])
    framed = np.hstack([block, np.zeros((n, 1), dtype=np.uint8)])
    keep = np.hstack([keep, np.ones((n, 1), dtype=bool)])
    try:
        parts = framed[keep].tobytes().decode(encoding).split("\x00")[:-1]
    except UnicodeDecodeError:
        parts = []
    if len(parts) != n:  # undecodable bytes or NULs inside values: value by value
        parts = [
            bytes(row[a:b]).decode(encoding, errors="replace")
            for row, a, b in zip(block, first, last, strict=True)
        ]
    out = np.array(parts, dtype=object)
    out[~has] = None
    return out


def _numbers(raw: np.ndarray) -> np.ndarray:
    text = np.char.strip(raw)
    text[text == b""] = b"nan"
    try:
        return text.astype(float)
    except ValueError:  # overflow markers (*****) or stray text: value by value
        return pd.to_numeric(
            pd.Series([None if t == b"nan" else t.decode("latin-1") for t in text.tolist()], dtype=object),
            errors="coerce",
        ).to_numpy(dtype=float)


def _dates(raw: np.ndarray) -> np.ndarray:
    text = np.char.strip(raw.astype("U"))
    out = np.full(len(text), None, dtype=object)
    ok = np.char.str_len(text) == 8
    if ok.any():
        t = text[ok]
        # GDAL and ArcGIS write a blank date as "00000000"
        iso = [f"{s[:4]}-{s[4:6]}-{s[6:8]}" if s.isdigit() and s != "00000000" else None for s in t.tolist()]
        out[ok] = np.array(iso, dtype=object)
    return out


def _logicals(raw: np.ndarray) -> np.ndarray:
    text = np.char.upper(np.char.strip(raw.astype("U")))
    out = np.full(len(text), None, dtype=object)
    out[np.isin(text, ["T", "Y"])] = True
    out[np.isin(text, ["F", "N"])] = False
    return out


def read_point_shp(path: Path) -> np.ndarray | None:
    """Point geometries of a ``.shp`` holding only 2-D points, in record order.

    Reading them straight from the fixed 28-byte records is several times faster than
    going through GDAL and WKB.  ``None`` for any other kind of file (the caller then
    uses GDAL).
    """
    data = path.read_bytes()
    if len(data) < 100 or int.from_bytes(data[0:4], "big") != 9994:
        return None
    if int.from_bytes(data[32:36], "little") != 1:  # not a Point shapefile
        return None
    body = len(data) - 100
    if body % 28:
        return None
    n = body // 28
    records = np.frombuffer(data, dtype=np.uint8, count=body, offset=100).reshape(n, 28)
    types = records[:, 8:12].copy().view("<i4").ravel()
    lengths = records[:, 4:8].copy().view(">i4").ravel()
    if n and ((types != 1).any() or (lengths != 10).any()):
        return None
    xy = records[:, 12:28].copy().view("<f8").reshape(n, 2)
    return np.asarray(shapely.points(xy), dtype=object)
