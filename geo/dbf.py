"""Fast readers for shapefile attribute tables (dBASE III/IV ``.dbf``) and point ``.shp`` files.

GDAL reads DBF text through iconv one field of one record at a time; for a
100,000-record GBK table that takes 1.5-3 s on the machines this runs on.  DBF
records are fixed width, so numpy can slice every column out of the record block at
once and each *distinct* value is decoded only once (survey columns repeat a lot),
which is several times faster (see ``bench/bench_engine.py``).  Only the plain field
types are handled (C, N, F, D, L); anything else makes :func:`read_dbf` return
``None`` and the caller falls back to GDAL.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import shapely

_SIMPLE_TYPES = {"C", "N", "F", "D", "L"}


def read_dbf(path: Path, encoding: str) -> tuple[pd.DataFrame, np.ndarray] | None:
    """Attributes of every record and the mask of records marked deleted.

    Parameters
    ----------
    path : Path
        The ``.dbf`` file.
    encoding : str
        Python codec for text fields and field names (e.g. ``"gb18030"``).

    Returns
    -------
    (DataFrame, ndarray of bool) or None
        Columns in file order: text as ``str`` or ``None``, numbers as float64
        (``NaN`` when blank), dates as ISO ``"YYYY-MM-DD"`` strings, logicals as
        ``bool``/``None``.  ``None`` when the table uses field types this reader
        does not handle or its header is inconsistent.
    """
    data = path.read_bytes()
    if len(data) < 33:
        return None
    n = int.from_bytes(data[4:8], "little")
    header_len = int.from_bytes(data[8:10], "little")
    record_len = int.from_bytes(data[10:12], "little")
    fields: list[tuple[str, str, int, int]] = []
    pos, offset = 32, 1
    while pos + 32 <= header_len and data[pos] != 0x0D:
        raw_name = data[pos : pos + 11].split(b"\0", 1)[0]
        ftype = chr(data[pos + 11])
        length = data[pos + 16]
        if ftype not in _SIMPLE_TYPES:
            return None
        try:
            name = raw_name.decode(encoding).strip()
        except UnicodeDecodeError:
            name = raw_name.decode(encoding, errors="ignore").strip()
        fields.append((name, ftype, offset, length))
        offset += length
        pos += 32
    if offset != record_len or header_len + n * record_len > len(data) or not fields:
        return None
    records = np.frombuffer(data, dtype=np.uint8, count=n * record_len, offset=header_len).reshape(
        n, record_len
    )
    deleted = records[:, 0] == ord("*")
    columns: dict[str, object] = {}
    for name, ftype, start, length in fields:
        block = np.ascontiguousarray(records[:, start : start + length])
        raw = block.view(f"S{length}").ravel()
        key = name
        k = 1
        while key in columns:  # duplicate names, as GDAL does
            key = f"{name}_{k}"
            k += 1
        if ftype == "C":
            columns[key] = _decode_text(block, encoding)
        elif ftype in ("N", "F"):
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
