"""What a file is, before anything opens it.

GDAL picks its driver by content, so a GDAL VRT document (which names other files and URLs
to read) or GML named ``.geojson`` would otherwise be opened as what it is.  Each check here
refuses a file whose content is not what its name says; the readers
(:mod:`geo.reading.readers`) run the one of their format before reading.
"""

from __future__ import annotations

import re
import sqlite3
import urllib.parse
import zipfile
from pathlib import Path

from geo.errors import InputError, UnsupportedFile
from geo.reading.datasets import MAX_ROWS, Dataset, too_many_rows

__all__ = ["check_geojson", "check_gpkg", "check_kml", "check_shp", "check_xlsx", "declares_crs"]


def _mismatch(dataset: Dataset, kind_zh: str, kind_en: str) -> UnsupportedFile:
    return UnsupportedFile(
        f"{dataset.name} 的内容不是{kind_zh}，与扩展名不符，已拒绝",
        f"{dataset.name} does not hold {kind_en} as its name says: refused",
        code="content_mismatch",
    )


def _head(path: Path, n: int = 65536) -> bytes:
    with open(path, "rb") as fh:
        return fh.read(n)


_KML_ROOT = re.compile(
    rb"\A\s*(<\?xml[^>]{0,400}\?>\s*)?(<!--.{0,4000}?-->\s*)*<([A-Za-z_][\w.-]*:)?kml[\s>/]", re.S
)


_GEOJSON_CRS = re.compile(rb'"crs"\s*:\s*\{')

_CRS_LINK = re.compile(rb'"(link|href)"')

#: A JSON escape of an ASCII character (``\u0063`` for ``c``): undone before the crs check.
_ASCII_ESCAPE = re.compile(rb"\\u00([0-7][0-9a-fA-F])")


def check_geojson(dataset: Dataset) -> None:
    """Refuse a ``.geojson`` that is not a JSON object, or whose ``crs`` names a link.

    Raises
    ------
    UnsupportedFile
        ``content_mismatch``: the content is of another kind.
    InputError
        ``crs_link``: the ``crs`` names a URL or file, which GDAL would fetch.
    """
    head = _head(dataset.path).removeprefix(b"\xef\xbb\xbf").lstrip()
    if not head.startswith(b"{"):
        raise _mismatch(dataset, " GeoJSON", "GeoJSON")
    _check_geojson_crs(dataset)


def check_kml(dataset: Dataset) -> None:
    """Refuse a ``.kml`` whose root is not ``<kml>`` (a DOCTYPE included).

    Raises
    ------
    UnsupportedFile
        ``content_mismatch``.
    """
    head = _head(dataset.path).removeprefix(b"\xef\xbb\xbf")
    if not _KML_ROOT.match(head):
        raise _mismatch(dataset, " KML", "KML")


def check_xlsx(dataset: Dataset) -> None:
    """Refuse an ``.xlsx`` that is not a zip holding ``xl/workbook.xml``.

    Raises
    ------
    UnsupportedFile
        ``content_mismatch``.
    """
    if not zipfile.is_zipfile(dataset.path):
        raise _mismatch(dataset, " Excel 工作簿 (xlsx)", "an Excel workbook (xlsx)")
    with zipfile.ZipFile(dataset.path) as zf:
        if "xl/workbook.xml" not in zf.namelist():
            raise _mismatch(dataset, " Excel 工作簿 (xlsx)", "an Excel workbook (xlsx)")


def check_shp(dataset: Dataset) -> None:
    """Refuse a ``.shp`` without the shapefile file code (9994) at its start.

    Its structure, and that of its ``.shx`` and ``.dbf``, is checked by
    :func:`geo.reading.shp_checks.check_shapefile`.

    Raises
    ------
    UnsupportedFile
        ``content_mismatch``.
    """
    if _head(dataset.path, 4) != (9994).to_bytes(4, "big"):
        raise _mismatch(dataset, " shapefile", "a shapefile")


def _check_geojson_crs(dataset: Dataset) -> None:
    """A ``crs`` member naming a link is refused: GDAL would fetch it."""
    with open(dataset.path, "rb") as fh:
        tail = b""
        while chunk := fh.read(1 << 22):
            block = _ASCII_ESCAPE.sub(lambda m: bytes([int(m.group(1), 16)]), tail + chunk)
            for m in _GEOJSON_CRS.finditer(block):
                if _CRS_LINK.search(block, m.end(), _object_end(block, m.end())):
                    raise InputError(
                        f"{dataset.name} 的坐标系（crs）是一个链接，不会去读取它：请去掉 crs 或写成 EPSG 代码",
                        f"the crs of {dataset.name} is a link, which is not followed: remove it or give "
                        "an EPSG code",
                        code="crs_link",
                    )
            tail = block[-(1 << 16) :]


def _object_end(block: bytes, start: int, limit: int = 1 << 16) -> int:
    """Where the JSON object opened just before ``start`` closes (or ``start + limit``)."""
    depth = 1
    pos = start
    stop = min(len(block), start + limit)
    while pos < stop:
        ch = block[pos]
        if ch == 0x22:  # a string: skip it, escapes included
            pos += 1
            while pos < stop and block[pos] != 0x22:
                pos += 2 if block[pos] == 0x5C else 1
        elif ch == 0x7B:
            depth += 1
        elif ch == 0x7D:
            depth -= 1
            if depth == 0:
                return pos
        pos += 1
    return stop


def check_gpkg(dataset: Dataset) -> None:
    """Refuse a ``.gpkg`` that is not a GeoPackage of plain tables.

    It needs the SQLite header with a GeoPackage application id, and its layers must be base
    tables (a view can compute any number of rows from a few bytes); their rows are counted
    before reading.

    Raises
    ------
    UnsupportedFile
        ``content_mismatch``.
    InputError
        ``gpkg_view`` or ``unreadable``.
    TooLarge
        More rows than :data:`geo.reading.datasets.MAX_ROWS`.
    """
    head = _head(dataset.path, 100)
    if (
        len(head) < 100
        or not head.startswith(b"SQLite format 3\0")
        or head[68:72]
        not in (
            b"GPKG",
            b"GP10",
            b"GP11",
        )
    ):
        raise _mismatch(dataset, " GeoPackage", "a GeoPackage")
    uri = "file:" + urllib.parse.quote(str(dataset.path)) + "?mode=ro&immutable=1"
    try:
        con = sqlite3.connect(uri, uri=True)
    except sqlite3.Error as exc:
        raise InputError(
            f"无法读取文件: {dataset.name}", f"cannot read {dataset.name}", code="unreadable"
        ) from exc
    try:
        con.execute("PRAGMA trusted_schema = OFF")
        kinds = dict(con.execute("SELECT name, type FROM sqlite_master").fetchall())
        for table in ("gpkg_contents", "gpkg_geometry_columns", "gpkg_spatial_ref_sys"):
            if kinds.get(table) != "table":
                raise _mismatch(dataset, "有效的 GeoPackage", "a valid GeoPackage")
        views = sorted(name for name, kind in kinds.items() if kind == "view")
        if views:  # GDAL lists views as layers too, registered or not
            raise InputError(
                f"{dataset.name} 中含有视图（{views[0]}），已拒绝：请导出为只含普通图层的 GeoPackage",
                f"{dataset.name} holds a view ({views[0]}): export a GeoPackage of plain layers",
                code="gpkg_view",
            )
        layers = [str(r[0]) for r in con.execute("SELECT table_name FROM gpkg_contents").fetchall()]
        for name in layers:
            if kinds.get(name) != "table":
                raise InputError(
                    f"{dataset.name} 中的图层 {name} 不是数据表（是视图或不存在），已拒绝：请导出为普通图层",
                    f"layer {name} of {dataset.name} is not a table (a view, or missing): export it as "
                    "a plain layer",
                    code="gpkg_view",
                )
            quoted = '"' + name.replace('"', '""') + '"'
            (rows,) = con.execute(f"SELECT count(*) FROM {quoted}").fetchone()
            if rows > MAX_ROWS:
                raise too_many_rows(rows)
    except sqlite3.Error as exc:
        raise InputError(
            f"无法读取文件: {dataset.name}", f"cannot read {dataset.name}", code="unreadable"
        ) from exc
    finally:
        con.close()


def declares_crs(dataset: Dataset) -> bool:
    """Whether a GeoJSON has a ``crs`` member (read as :func:`_check_geojson_crs` does)."""
    with open(dataset.path, "rb") as fh:
        tail = b""
        while chunk := fh.read(1 << 22):
            block = _ASCII_ESCAPE.sub(lambda m: bytes([int(m.group(1), 16)]), tail + chunk)
            if _GEOJSON_CRS.search(block):
                return True
            tail = block[-(1 << 16) :]
    return False
