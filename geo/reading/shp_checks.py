"""Damage checks on a shapefile's ``.shp``, ``.shx`` and ``.dbf`` before anything reads them.

:func:`check_shapefile` reads only the headers of the three files and tells a damaged
shapefile (cut short, a header that lies, an index pointing past the end, records of
another shape type) before GDAL reads it, which would otherwise often import part of
it, or the wrong attributes, without a word; it also counts the vertices of every
record, so that an oversized file is refused before its geometry is read.
:func:`check_dbf` does the same for an attribute table alone.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from geo.errors import InputError
from geo.reading.dbf import MAX_FIELDS, parse_header, too_many_fields

__all__ = ["check_dbf", "check_shapefile"]

_POINT_TYPES = frozenset({1, 11, 21})

_MULTIPOINT_TYPES = frozenset({8, 18, 28})

_POLY_TYPES = frozenset({3, 5, 13, 15, 23, 25, 31})  # lines, polygons (2-D, Z, M) and multipatches

_SHAPE_TYPES = _POINT_TYPES | _MULTIPOINT_TYPES | _POLY_TYPES | {0}

#: Records whose headers are read at once (bounds the index arrays for huge files).
_CHUNK = 1 << 18


def _damaged_dbf(zh: str, en: str) -> InputError:
    return InputError(
        f"属性表 (.dbf) 已损坏：{zh}。请在 GIS 软件中重新导出后再上传",
        f"the attribute table (.dbf) is damaged: {en}; export it again from the GIS software",
        code="damaged_dbf",
    )


def _damaged_shp(zh: str, en: str) -> InputError:
    return InputError(
        f"几何文件 (.shp/.shx) 已损坏：{zh}。请在 GIS 软件中重新导出后再上传",
        f"the geometry files (.shp/.shx) are damaged: {en}; export them again from the GIS software",
        code="damaged_shp",
    )


def check_dbf(path: Path) -> int:
    """The number of records of a ``.dbf`` whose header agrees with its body.

    Checks that the field widths add up to the record length, that the file holds
    exactly the records its header counts (an end-of-file marker aside) and that every
    record starts with a deletion flag where the header says records start.

    Raises
    ------
    InputError
        ``damaged_dbf``: the file is cut short, its header lies or it is not a DBF.
    """
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(32)
        if size < 65:  # a header, one field descriptor and the terminator
            raise _damaged_dbf("文件不足一个文件头", "shorter than a DBF header")
        n, header_len, record_len = struct.unpack_from("<IHH", head, 4)
        if header_len < 65 or header_len > size or record_len < 2:
            raise _damaged_dbf(
                f"文件头记载的长度无效（文件头 {header_len} 字节，记录 {record_len} 字节）",
                f"invalid lengths in the header (header {header_len} bytes, record {record_len} bytes)",
            )
        descriptors = head + fh.read(header_len - 32)
    header = parse_header(descriptors)
    assert header is not None  # 32 bytes were read
    widths: list[int] = []
    for f in header.fields:
        if f.length == 0:
            raise _damaged_dbf(
                f"第 {len(widths) + 1} 个字段宽度为 0", f"field {len(widths) + 1} has a width of 0"
            )
        widths.append(f.length)
    if not widths:
        raise _damaged_dbf("没有字段定义", "no field descriptors")
    if len(widths) > MAX_FIELDS:
        raise too_many_fields(len(widths))
    if sum(widths) + 1 != record_len:
        raise _damaged_dbf(
            f"字段宽度之和 ({sum(widths)}) 与记录长度 ({record_len}) 不符",
            f"the field widths add up to {sum(widths)} bytes, not the record length {record_len} - 1",
        )
    held = (size - header_len) // record_len
    if held < n:
        raise _damaged_dbf(
            f"文件头记载 {n} 条记录，文件只容纳 {held} 条（文件不完整或记录数有误）",
            f"the header counts {n} records but the file holds {held} (cut short, or a wrong count)",
        )
    if held > n:  # more than an end-of-file marker after the records
        raise _damaged_dbf(
            f"文件头记载 {n} 条记录，文件中有 {held} 条",
            f"the header counts {n} records but the file holds {held}",
        )
    if n:
        records = np.memmap(path, dtype=np.uint8, mode="r", offset=header_len, shape=(n, record_len))
        flags = np.asarray(records[:, 0])
        bad = (flags != 0x20) & (flags != 0x2A)  # " " or "*" (deleted)
        if bad.any():
            raise _damaged_dbf(
                f"第 {int(bad.argmax()) + 1} 条记录不在文件头所说的位置（文件头长度有误）",
                f"record {int(bad.argmax()) + 1} is not where the header says (wrong header length)",
            )
    return int(n)


def _shape_header(head: bytes, size: int, part: str) -> tuple[int, int]:
    """Shape type and declared length (bytes) from the 100-byte header of a .shp or .shx."""
    if size < 100 or int.from_bytes(head[0:4], "big") != 9994:
        raise _damaged_shp(f"{part} 不是 shapefile 文件", f"{part} is not a shapefile")
    declared = int.from_bytes(head[24:28], "big", signed=True) * 2
    shape_type = int.from_bytes(head[32:36], "little", signed=True)
    if shape_type not in _SHAPE_TYPES:
        raise _damaged_shp(f"未知的几何类型代码 {shape_type}", f"unknown shape type {shape_type}")
    if not 100 <= declared <= size:
        raise _damaged_shp(
            f"{part} 文件头记载长度 {declared} 字节，实际为 {size} 字节（文件不完整）",
            f"the {part} header gives a length of {declared} bytes, the file has {size} (cut short?)",
        )
    return shape_type, declared


def _gather(body: np.ndarray, at: np.ndarray, dtype: str) -> np.ndarray:
    """The 4-byte integers (``dtype`` ``>i4`` or ``<i4``) at byte offsets ``at`` of ``body``."""
    idx = at[:, None] + np.arange(4, dtype=np.int64)
    return np.ascontiguousarray(body[idx]).view(dtype).ravel().astype(np.int64)


def check_shapefile(shp: Path, shx: Path, dbf: Path) -> np.ndarray:
    """Vertices of every record of a shapefile whose three files agree with each other.

    Only headers are read: the two file headers, the index (``.shx``) and, through a
    memory map, each record's header in the ``.shp``, so this is cheap however large
    the geometry.

    Returns
    -------
    ndarray of int64
        Vertices per record in file order: 0 for an empty (null) record, 1 for a point,
        the point count of a line, polygon or multipoint.

    Raises
    ------
    InputError
        ``damaged_dbf`` or ``damaged_shp`` (see :func:`check_dbf`): a file cut short, a
        header or index that lies (records past the end of the file, lengths that do
        not match, more points than a record holds), records of another shape type
        than the file's; ``shapefile_mismatch``: the ``.dbf`` and the ``.shx`` count
        different numbers of records.
    """
    n_rows = check_dbf(dbf)
    shp_size = shp.stat().st_size
    with open(shp, "rb") as fh:
        shp_head = fh.read(100)
    shape_type, _ = _shape_header(shp_head, shp_size, ".shp")
    index = shx.read_bytes()
    shx_type, shx_len = _shape_header(index[:100], len(index), ".shx")
    if shx_type != shape_type:
        raise _damaged_shp(
            f".shx 的几何类型 ({shx_type}) 与 .shp ({shape_type}) 不符",
            f"the .shx gives shape type {shx_type}, the .shp {shape_type}",
        )
    if (shx_len - 100) % 8:
        raise _damaged_shp(".shx 长度不是整条索引", "the .shx does not hold whole index entries")
    n = (shx_len - 100) // 8
    if n != n_rows:
        raise InputError(
            f"属性表 (.dbf) 有 {n_rows} 条记录，几何索引 (.shx) 有 {n} 条，二者应一致：文件不完整或不属于同一图层",
            f"the .dbf holds {n_rows} records and the .shx {n}: a file is incomplete or from another layer",
            code="shapefile_mismatch",
        )
    vertices = np.zeros(n, dtype=np.int64)
    if n == 0:
        return vertices
    body = np.memmap(shp, dtype=np.uint8, mode="r")
    entries = np.frombuffer(index, dtype=">i4", count=2 * n, offset=100).reshape(n, 2)
    for lo in range(0, n, _CHUNK):
        offsets = entries[lo : lo + _CHUNK, 0].astype(np.int64) * 2
        lengths = entries[lo : lo + _CHUNK, 1].astype(np.int64) * 2
        vertices[lo : lo + len(offsets)] = _record_vertices(body, shape_type, offsets, lengths, lo, shp_size)
    return vertices


def _record_vertices(
    body: np.ndarray, shape_type: int, offsets: np.ndarray, lengths: np.ndarray, first: int, size: int
) -> np.ndarray:
    """Check the records at ``offsets`` (index entries ``first``...) and count their vertices."""

    def fail(mask: np.ndarray, zh: str, en: str) -> None:
        if mask.any():
            i = int(mask.argmax())
            raise _damaged_shp(f"第 {first + i + 1} 条记录{zh}", f"record {first + i + 1} {en}")

    fail(
        (offsets < 100) | (lengths < 4) | (offsets + 8 + lengths > size),
        "的位置或长度超出 .shp 文件范围",
        "lies outside the .shp according to the .shx",
    )
    fail(
        _gather(body, offsets + 4, ">i4") * 2 != lengths,
        "的长度与 .shx 索引不符",
        "has another length than the .shx says",
    )
    types = _gather(body, offsets + 8, "<i4")
    fail(
        (types != 0) & (types != shape_type),
        "的几何类型与文件头不符",
        f"is of another shape type than the file ({shape_type})",
    )
    vertices = np.zeros(len(offsets), dtype=np.int64)
    shaped = types == shape_type
    if shape_type == 0:  # a file of empty records only
        return vertices
    if shape_type in _POINT_TYPES:
        fail(shaped & (lengths < 20), "过短，容不下一个点", "is too short for a point")
        vertices[shaped] = 1
        return vertices
    # content: type, bounding box (32 bytes), [number of parts,] number of points, ...
    multipoint = shape_type in _MULTIPOINT_TYPES
    fixed = 40 if multipoint else 44
    fail(shaped & (lengths < fixed), "过短", "is too short")
    at = offsets[shaped] + 8
    counts = _gather(body, at + fixed - 4, "<i4")
    parts = np.zeros_like(counts) if multipoint else _gather(body, at + 36, "<i4")
    per_part = 8 if shape_type == 31 else 4  # a multipatch also gives each part's type
    bad = np.zeros(len(offsets), dtype=bool)
    bad[shaped] = (parts < 0) | (counts < 0) | (fixed + per_part * parts + 16 * counts > lengths[shaped])
    fail(bad, "声明的部分数或顶点数超出记录长度", "claims more parts or points than it holds")
    vertices[shaped] = counts
    return vertices
