"""Open what surveyors hand in: zipped or loose shapefiles, GeoPackage, GeoJSON, KML,
CSV and XLSX tables with coordinate columns.

:func:`open_source` unpacks an upload safely into a working directory and lists
the datasets inside; :func:`read_dataset` reads one into a :class:`RawTable` with
its text decoded and its CRS resolved (from the file, an override, or inferred
from the magnitudes of the bulk of its coordinates — and then said so), the rows whose
coordinates do not fit that CRS marked with the reason (:attr:`RawTable.misfit`).
"""

from __future__ import annotations

import csv
import errno
import hashlib
import io
import re
import shutil
import sqlite3
import stat
import struct
import threading
import urllib.parse
import zipfile
import zlib
from collections.abc import Callable, Collection
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pandas as pd
import pyogrio
import pyproj
import shapely

from geo.errors import (
    DISK_FULL_ERRNOS,
    EncodingError,
    GridwatchError,
    InputError,
    TooLarge,
    UnsupportedFile,
    disk_full,
)
from geo.reading import crs as crsmod
from geo.reading.crs_declared import DECLARED_MAJORITY, declared_mismatch, fit_rows
from geo.reading.crs_infer import infer_crs_rows, inferred_note
from geo.reading.dbf import read_dbf, read_point_shp
from geo.reading.encoding import detect_dbf_encoding, looks_like_mojibake, normalize_encoding, zip_member_name

VECTOR_SUFFIXES = {".shp", ".gpkg", ".geojson", ".json", ".kml", ".kmz", ".csv", ".xlsx"}
SIDECAR_SUFFIXES = {".shx", ".dbf", ".prj", ".cpg", ".qix", ".sbn", ".sbx", ".xml", ".qmd", ".qpj", ".atx"}
#: What is unpacked from a zip; anything else (read-me files, pictures, documents) is listed as
#: skipped and never written.
ALLOWED_SUFFIXES = VECTOR_SUFFIXES | SIDECAR_SUFFIXES | {".zip"}


@dataclass(frozen=True)
class ZipLimits:
    """Caps for unpacking uploads (zip bombs, zip slip, file floods)."""

    max_total_bytes: int = 2 * 1024**3
    max_ratio: float = 200.0
    max_files: int = 2000
    max_depth: int = 2


@dataclass
class _Budget:
    """What is left of the caps for one upload.  Archives inside an archive spend the same
    budget, so nesting cannot multiply the caps."""

    bytes: int
    files: int


#: Compression methods :mod:`zipfile` can read.
_ZIP_METHODS = frozenset({zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA})
#: OS errors of a member that cannot be unpacked as named: a name used both as a file and as a
#: folder, or a name too long for the file system.
_BAD_NAME_ERRNOS = frozenset({errno.EEXIST, errno.ENOTDIR, errno.EISDIR, errno.ENAMETOOLONG})


@dataclass
class Dataset:
    """One readable dataset found in a source."""

    name: str  # path inside the source, as the user would recognise it
    path: Path  # on disk
    kind: str  # shp, gpkg, geojson, kml, csv, xlsx
    layer: str | None = None  # layer inside a multi-layer container


@dataclass
class Source:
    """An unpacked upload.

    Its SHA-256 is computed in a background thread while the caller reads the data
    (hashlib releases the GIL on large buffers); :attr:`checksum` waits for it.
    """

    name: str
    checksum_future: Future[str]
    size: int
    datasets: list[Dataset]
    skipped: list[str] = field(default_factory=list)
    workdir: Path | None = None

    @property
    def checksum(self) -> str:
        return self.checksum_future.result()


@dataclass
class RawTable:
    """A dataset read as-is: attributes as found, geometry as shapely array, its CRS."""

    dataset: Dataset
    attrs: pd.DataFrame
    geometry: np.ndarray
    crs: pyproj.CRS | None
    gcj02: bool
    crs_source: str  # "file", "prj", "override", "inferred"
    crs_note: tuple[str, str] | None
    encoding: str | None
    encoding_source: str | None
    warnings: list[tuple[str, str]] = field(default_factory=list)
    #: every attribute column of the file, in order; ``attrs`` holds only those read
    columns: list[str] = field(default_factory=list)
    #: per row, why its coordinates do not fit the CRS (``geo.reading.crs_fit.MISFIT_*``, see
    #: :func:`geo.reading.crs_fit.misfit_reason`; 0: they fit, or are judged later); None when all fit
    misfit: np.ndarray | None = None

    @property
    def crs_label(self) -> str:
        if self.gcj02:
            return "GCJ-02"
        if self.crs is None:
            return "unknown"
        epsg = self.crs.to_epsg()
        return f"EPSG:{epsg} {self.crs.name}" if epsg else self.crs.name


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def open_source(
    path: Path, workdir: Path, limits: ZipLimits | None = None, name: str | None = None
) -> Source:
    """List the datasets in ``path`` (a file or a directory), unpacking zips into ``workdir``.

    Nothing here opens a file with GDAL: the layers of a GeoPackage or KML are listed by
    :func:`expand_containers`, in the reading helper (:mod:`geo.reading.untrusted`).

    Parameters
    ----------
    path : Path
        Uploaded file: ``.zip``, ``.shp`` (sidecars beside it), ``.gpkg``, ``.geojson``,
        ``.kml``/``.kmz``, ``.csv``, ``.xlsx``; or a directory holding such files.
    workdir : Path
        Empty scratch directory the caller removes afterwards.
    limits : ZipLimits, optional
        Caps for archives.
    name : str, optional
        Name to report (the original upload name).

    Raises
    ------
    InputError
        Unreadable or unsafe archive, or nothing usable inside.
    """
    limits = limits or ZipLimits()
    path = Path(path)
    if not path.exists():
        raise InputError(f"文件不存在: {path.name}", f"file not found: {path.name}", code="file_not_found")
    display = name or path.name
    if path.is_dir():
        checksum = _in_background(_dir_checksum, path)
        size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
        root = path
    else:
        size = path.stat().st_size
        if size == 0:
            raise InputError("文件为空", "the file is empty", code="empty_file")
        checksum = _in_background(sha256_file if path.suffix.lower() != ".shp" else _shp_checksum, path)
        root = path
    skipped: list[str] = []
    datasets: list[Dataset] = []
    if path.is_file() and path.suffix.lower() in (".zip",):
        target = workdir / "unzipped"
        _unzip(path, target, limits, skipped)
        _collect(target, target, datasets, skipped, prefix="")
    elif path.is_file() and path.suffix.lower() == ".kmz":
        target = workdir / "kmz"
        _unzip(path, target, limits, skipped)
        _collect(target, target, datasets, skipped, prefix=display + "/")
    elif path.is_dir():
        _collect(root, root, datasets, skipped, prefix="")
    else:
        suffix = path.suffix.lower()
        if suffix not in VECTOR_SUFFIXES:
            if suffix in SIDECAR_SUFFIXES:
                raise InputError(
                    f"只上传了 {suffix} 文件：请上传 .shp 及其 .shx/.dbf/.prj，最好打成一个 zip",
                    f"only a {suffix} file was given: upload the .shp with its .shx/.dbf/.prj, ideally as one zip",
                    code="incomplete_shapefile",
                )
            raise UnsupportedFile(
                f"不支持的文件类型: {suffix or display}",
                f"unsupported file type: {suffix or display} (use zip, shp, gpkg, geojson, kml, csv or xlsx)",
            )
        datasets.append(Dataset(display, path, _kind(suffix)))
    for d in datasets:
        if d.path.suffix.lower() in (".xlsx", ".kmz"):  # zips read by openpyxl or GDAL: same caps
            _check_packed(d, limits)
    if not datasets:
        raise InputError(
            "压缩包中没有可读取的图层（需要 .shp/.gpkg/.geojson/.kml/.csv/.xlsx）",
            "no readable layer in the upload (expected .shp/.gpkg/.geojson/.kml/.csv/.xlsx)",
            code="no_dataset",
            details={"skipped": skipped},
        )
    return Source(display, checksum, size, datasets, skipped, workdir)


def _in_background(fn: Callable[[Path], str], path: Path) -> Future[str]:
    future: Future[str] = Future()

    def run() -> None:
        try:
            future.set_result(fn(path))
        except BaseException as exc:  # handed to whoever asks for the checksum
            future.set_exception(exc)

    threading.Thread(target=run, name="gridwatch-checksum", daemon=True).start()
    return future


def _kind(suffix: str) -> str:
    return {".json": "geojson", ".kmz": "kml"}.get(suffix, suffix.lstrip("."))


def shapefile_parts(shp: Path) -> list[Path]:
    """The .shp and its sidecars (same stem, any case), sorted by suffix."""
    return sorted(
        (
            p
            for p in shp.parent.iterdir()
            if p.is_file() and p.stem == shp.stem and p.suffix.lower() in ({".shp"} | SIDECAR_SUFFIXES)
        ),
        key=lambda p: p.suffix.lower(),
    )


def _shp_checksum(shp: Path) -> str:
    h = hashlib.sha256()
    for p in shapefile_parts(shp):
        h.update(p.suffix.lower().encode())
        h.update(sha256_file(p).encode())
    return h.hexdigest()


def archive_files(path: Path) -> list[Path]:
    """The files that make up the upload ``path``: it, a loose shapefile's parts, or a folder's files."""
    if path.is_file() and path.suffix.lower() == ".shp":
        return shapefile_parts(path)
    if path.is_file():
        return [path]
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.is_file())
    return []


def _dir_checksum(path: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(path.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(path)).encode())
            h.update(sha256_file(p).encode())
    return h.hexdigest()


def _unzip(archive: Path, target: Path, limits: ZipLimits, skipped: list[str]) -> None:
    """Unpack ``archive`` into ``target`` within ``limits``; a damaged archive or a member that
    cannot be unpacked as named is an :class:`InputError`."""
    try:
        _safe_unzip(archive, target, limits, 1, skipped, _Budget(limits.max_total_bytes, limits.max_files))
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as exc:
        # a bad CRC, bad compressed data, a member cut short, a zip feature zipfile cannot read
        raise _damaged_zip(exc) from exc
    except OSError as exc:
        if exc.errno == errno.EINVAL and exc.filename is None:  # a seek before the start of the zip
            raise _damaged_zip(exc) from exc
        if exc.errno not in _BAD_NAME_ERRNOS:
            raise
        where = str(exc.filename or "")
        member = where[len(str(target)) + 1 :] if where.startswith(str(target)) else Path(where).name
        raise InputError(
            f"压缩包中的文件无法按原名解压（重名或文件名过长）: {member}",
            f"a file in the zip cannot be unpacked under its name (clashing or too long): {member}",
            code="zip_bad_name",
        ) from exc


def _damaged_zip(exc: Exception) -> InputError:
    return InputError(
        "zip 文件已损坏或使用了无法读取的压缩功能，请用标准 zip 重新打包后上传",
        f"the zip file is damaged or uses a feature that cannot be read ({_reason(exc)}): re-pack it as a "
        "standard zip",
        code="bad_zip",
    )


def _reason(exc: BaseException) -> str:
    """What went wrong, without the file's path on the server (an OSError's text names it)."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    text = str(exc)
    return type(exc).__name__ if "/" in text else text


#: Bytes of central directory allowed per member (a 46-byte record, its name and extras).
_CENTRAL_BYTES_PER_FILE = 1024


def _check_directory(archive: Path, files_left: int, limits: ZipLimits) -> None:
    """Refuse a zip whose central directory declares more members, or more bytes of them, than
    the caps allow, before :mod:`zipfile` builds an entry for each (millions of one-byte
    names take gigabytes)."""
    size = archive.stat().st_size
    with open(archive, "rb") as fh:
        fh.seek(max(0, size - 65557))
        tail = fh.read()
        at = tail.rfind(b"PK\x05\x06")
        if at < 0 or len(tail) - at < 22:
            return  # no end record: zipfile reports the damage
        entries, directory = struct.unpack_from("<HI", tail, at + 10)
        if (
            (entries == 0xFFFF or directory == 0xFFFFFFFF)
            and at >= 20
            and tail[at - 20 : at - 16] == b"PK\x06\x07"
        ):
            (record,) = struct.unpack_from("<Q", tail, at - 20 + 8)
            fh.seek(record)
            head = fh.read(56)
            if len(head) == 56 and head[:4] == b"PK\x06\x06":
                entries, directory = struct.unpack_from("<QQ", head, 32)
    if entries > files_left or directory > limits.max_files * _CENTRAL_BYTES_PER_FILE:
        seen = limits.max_files - files_left + entries  # with those of enclosing zips
        raise TooLarge(
            f"压缩包内文件过多（{seen} 个，上限 {limits.max_files}）",
            f"too many files in the zip ({seen}, limit {limits.max_files})",
            code="zip_too_many_files",
        )


def _check_members(infos: list[zipfile.ZipInfo]) -> None:
    """Refuse encrypted members and compression methods that cannot be read."""
    for info in infos:
        if info.is_dir():
            continue
        name = zip_member_name(info)
        if info.flag_bits & 0x1:
            raise InputError(
                f"压缩包已加密，请解密后再上传: {name}",
                f"the zip is encrypted: upload it without a password ({name})",
                code="zip_encrypted",
            )
        if info.compress_type not in _ZIP_METHODS:
            raise InputError(
                f"压缩包使用了不支持的压缩方式（{info.compress_type}），请用标准 zip 重新打包: {name}",
                f"the zip uses an unsupported compression method ({info.compress_type}): re-pack it "
                f"as a standard zip ({name})",
                code="zip_unsupported_method",
            )


def _check_packed(dataset: Dataset, limits: ZipLimits) -> None:
    """An ``.xlsx`` or ``.kmz`` is a zip its reader unpacks in memory: refuse one that would
    expand beyond ``limits``.  (Python's zipfile, and so openpyxl, never yields more than
    a member's declared size.)"""
    _check_directory(dataset.path, limits.max_files, limits)
    try:
        with zipfile.ZipFile(dataset.path) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, OSError) as exc:
        raise InputError(
            f"文件已损坏或无法读取: {dataset.name}", f"damaged or unreadable: {dataset.name} ({_reason(exc)})"
        ) from exc
    total = sum(i.file_size for i in infos)
    packed = max(1, sum(i.compress_size for i in infos))
    if len(infos) > limits.max_files or total > limits.max_total_bytes or total / packed > limits.max_ratio:
        raise TooLarge(
            f"{dataset.name} 解压后过大，疑似压缩炸弹，已拒绝",
            f"{dataset.name} expands to {total} bytes (ratio {total / packed:.0f}): refused as a possible "
            "zip bomb",
            code="zip_bomb",
        )


def _safe_unzip(
    archive: Path, target: Path, limits: ZipLimits, depth: int, skipped: list[str], budget: _Budget
) -> None:
    if depth > limits.max_depth:
        raise InputError("压缩包嵌套层数过多", "zip nested too deeply", code="zip_too_deep")
    _check_directory(archive, budget.files, limits)
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as exc:
        raise InputError(
            "zip 文件已损坏或无法读取",
            f"the zip file is damaged or unreadable ({_reason(exc)})",
            code="bad_zip",
        ) from exc
    with zf:
        infos = zf.infolist()
        if len(infos) > budget.files:
            seen = limits.max_files - budget.files + len(infos)  # with those of enclosing zips
            raise TooLarge(
                f"压缩包内文件过多（{seen} 个，上限 {limits.max_files}）",
                f"too many files in the zip ({seen}, limit {limits.max_files})",
                code="zip_too_many_files",
            )
        total = sum(i.file_size for i in infos)
        packed = max(1, sum(i.compress_size for i in infos))
        if total > budget.bytes or total / packed > limits.max_ratio:
            expands = limits.max_total_bytes - budget.bytes + total
            raise TooLarge(
                "压缩包解压后过大，疑似压缩炸弹，已拒绝",
                f"the zip expands to {expands} bytes (ratio {total / packed:.0f}): refused as a possible zip bomb",
                code="zip_bomb",
            )
        # zipfile never yields more than a member's declared size (more fails its CRC check),
        # so the declared sizes bound what is written
        budget.bytes -= total
        budget.files -= len(infos)
        _check_members(infos)
        target.mkdir(parents=True, exist_ok=True)
        written = 0
        for info in infos:
            name = zip_member_name(info)
            pure = PurePosixPath(name.replace("\\", "/"))
            if (
                name.startswith(("/", "\\"))
                or pure.is_absolute()
                or ".." in pure.parts
                or (pure.parts and ":" in pure.parts[0])
            ):
                raise InputError(
                    f"压缩包含有不安全的路径: {name}", f"unsafe path in zip: {name}", code="zip_unsafe_path"
                )
            if info.is_dir() or stat.S_ISLNK(info.external_attr >> 16):
                continue
            if pure.name.startswith(".") or "__MACOSX" in pure.parts:
                continue
            suffix = pure.suffix.lower()
            if suffix not in ALLOWED_SUFFIXES:
                skipped.append(name)
                continue
            dest = target.joinpath(*pure.parts)
            try:
                dest.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(dest, "wb") as out:
                    while True:
                        chunk = src.read(1 << 20)
                        if not chunk:
                            break
                        written += len(chunk)
                        if written > limits.max_total_bytes:
                            raise TooLarge(
                                "压缩包解压后过大", "the zip expands beyond the size limit", code="zip_bomb"
                            )
                        out.write(chunk)
            except OSError as exc:
                if exc.errno in DISK_FULL_ERRNOS:  # the scratch directory is full
                    raise disk_full() from exc
                raise
            if suffix == ".zip":
                inner = dest.with_suffix("")
                inner = inner.parent / (inner.name + "_zip")
                _safe_unzip(dest, inner, limits, depth + 1, skipped, budget)
                dest.unlink()


def _collect(root: Path, base: Path, out: list[Dataset], skipped: list[str], prefix: str) -> None:
    for p in sorted(root.rglob("*")):
        if not p.is_file():
            continue
        suffix = p.suffix.lower()
        rel = prefix + str(p.relative_to(base)).replace("\\", "/")
        if suffix in VECTOR_SUFFIXES:
            if suffix == ".json" and p.stat().st_size == 0:
                skipped.append(rel)
                continue
            out.append(Dataset(rel, p, _kind(suffix)))
        elif suffix == ".dbf" and not p.with_suffix(".shp").exists() and not p.with_suffix(".SHP").exists():
            skipped.append(rel)


def expand_containers(datasets: list[Dataset]) -> list[Dataset]:
    """The datasets with each multi-layer container (GeoPackage, KML) split into its layers.

    Opens files with GDAL: call it in the reading helper, after :func:`check_content`."""
    out: list[Dataset] = []
    for d in datasets:
        if d.kind in ("gpkg", "kml"):
            try:
                names = [str(row[0]) for row in pyogrio.list_layers(d.path)]
            except Exception as exc:  # GDAL raises several error types for unreadable files
                raise InputError(
                    f"无法读取文件: {d.name}", f"cannot read {d.name}", code="unreadable"
                ) from exc
            if len(names) > 1:
                out.extend(Dataset(f"{d.name}:{n}", d.path, d.kind, n) for n in names)
                continue
            out.append(Dataset(d.name, d.path, d.kind, names[0] if names else None))
        else:
            out.append(d)
    return out


# --- what a file is, before it is opened -------------------------------------------------------

#: Limits on what one file may declare or hold, checked before its records are read where
#: the format tells (XLSX cell references, DBF headers, GeoPackage row counts, CSV lines).
MAX_COLUMNS = 1000
MAX_ROWS = 10_000_000
MAX_XLSX_CELLS = 50_000_000
MAX_LINE_BYTES = 256 * 1024

Select = Callable[[list[str]], Collection[str]]


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


def check_content(dataset: Dataset) -> None:
    """Refuse a file whose content is not what its name says, before any reader opens it.

    GDAL picks its driver by content, so a GDAL VRT document (which names other files and
    URLs to read) or GML named ``.geojson`` would otherwise be opened as what it is.
    Shapefiles are checked by :func:`geo.reading.dbf.check_shapefile`, tables when they are read.

    Raises
    ------
    UnsupportedFile
        ``content_mismatch``: the content is of another kind.
    InputError
        ``crs_link``: a GeoJSON whose ``crs`` names a URL or file.
    TooLarge
        A GeoPackage with more rows than :data:`MAX_ROWS`.
    """
    if dataset.kind == "geojson":
        head = _head(dataset.path).removeprefix(b"\xef\xbb\xbf").lstrip()
        if not head.startswith(b"{"):
            raise _mismatch(dataset, " GeoJSON", "GeoJSON")
        _check_geojson_crs(dataset)
    elif dataset.kind == "kml":
        head = _head(dataset.path).removeprefix(b"\xef\xbb\xbf")
        if not _KML_ROOT.match(head):
            raise _mismatch(dataset, " KML", "KML")
    elif dataset.kind == "gpkg":
        _check_gpkg(dataset)
    elif dataset.kind == "xlsx":
        if not zipfile.is_zipfile(dataset.path):
            raise _mismatch(dataset, " Excel 工作簿 (xlsx)", "an Excel workbook (xlsx)")
        with zipfile.ZipFile(dataset.path) as zf:
            if "xl/workbook.xml" not in zf.namelist():
                raise _mismatch(dataset, " Excel 工作簿 (xlsx)", "an Excel workbook (xlsx)")
    elif dataset.kind == "shp" and _head(dataset.path, 4) != (9994).to_bytes(4, "big"):
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


def _check_gpkg(dataset: Dataset) -> None:
    """A GeoPackage: the SQLite header with a GeoPackage application id, its layers base
    tables (a view can compute any number of rows from a few bytes), counted before reading."""
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


def too_many_rows(n: int) -> TooLarge:
    return TooLarge(
        f"文件行数过多（{n:,} 行，上限 {MAX_ROWS:,}），请拆分后再上传",
        f"the file holds too many rows ({n:,}, limit {MAX_ROWS:,}): split it",
        code="too_many_rows",
    )


def _too_many_columns(n: int) -> TooLarge:
    return TooLarge(
        f"表格列数过多（{n:,} 列，上限 {MAX_COLUMNS:,}），请删去无用的列后再上传",
        f"the table has too many columns ({n:,}, limit {MAX_COLUMNS:,}): remove unused columns",
        code="too_many_columns",
    )


# --- reading ----------------------------------------------------------------------------------

_LON_NAMES = (
    "经度",
    "lon",
    "lng",
    "long",
    "longitude",
    "x",
    "横坐标",
    "东坐标",
    "x坐标",
    "jd",
    "point_x",
    "dx",
)
_LAT_NAMES = ("纬度", "lat", "latitude", "y", "纵坐标", "北坐标", "y坐标", "wd", "point_y", "dy")


def read_dataset(
    dataset: Dataset,
    encoding: str | None = None,
    crs: crsmod.CRSChoice | None = None,
    hint_lon: float | None = None,
    select: Select | None = None,
) -> RawTable:
    """Read ``dataset`` with decoded text and a resolved CRS.

    Call it in the reading helper (:mod:`geo.reading.untrusted`) for files users send.

    Parameters
    ----------
    encoding : str, optional
        Override for DBF/CSV text encoding (e.g. ``"GBK"``).
    crs : CRSChoice, optional
        Override for the source CRS (``gcj02`` for coordinates copied from Gaode/Tencent).
    hint_lon : float, optional
        Longitude (degrees) of the existing grid, used to tell the central meridian of
        Gauss-Krüger coordinates without a zone prefix and no .prj.
    select : callable, optional
        Given every attribute column's name, returns the names to read; the others are
        named in :attr:`RawTable.columns` but never decoded.

    Raises
    ------
    InputError, EncodingError, CRSError, TooLarge
    """
    check_content(dataset)
    if dataset.kind == "shp":
        table = _read_shapefile(dataset, encoding, select)
    elif dataset.kind in ("csv", "xlsx"):
        table = _read_table(dataset, encoding, select)
    else:
        table = _read_ogr(dataset, select)
    if len(table.attrs) > MAX_ROWS:
        raise too_many_rows(len(table.attrs))
    _resolve_crs(table, crs, hint_lon)
    return table


def _ogr_read(
    path: Path, layer: str | None, encoding: str | None, select: Select | None, display: str
) -> tuple[pd.DataFrame, np.ndarray, str | None, list[str]]:
    try:
        kwargs: dict[str, Any] = {"use_arrow": True}
        if encoding:
            kwargs["encoding"] = encoding
        if layer:
            kwargs["layer"] = layer
        info = pyogrio.read_info(path, layer=layer, encoding=encoding)
        names = [str(f) for f in info["fields"]]
        if len(names) > MAX_COLUMNS:
            raise _too_many_columns(len(names))
        if select is not None:
            wanted = set(select(names))
            kwargs["columns"] = [n for n in names if n in wanted]
        if int(info.get("features") or 0) > MAX_ROWS:
            raise too_many_rows(int(info["features"]))
        gdf = pyogrio.read_dataframe(path, **kwargs)
    except GridwatchError:
        raise
    except Exception as exc:  # pyogrio/GDAL raise DataSourceError, DataLayerError, UnicodeDecodeError ...
        raise InputError(
            f"无法读取图层数据: {display}（文件可能已损坏或不完整）",
            f"cannot read {display} (the file may be damaged or incomplete)",
            code="unreadable",
        ) from exc
    crs_wkt = gdf.crs.to_wkt() if gdf.crs is not None else None
    geoms = np.asarray(gdf.geometry.values, dtype=object) if "geometry" in gdf else np.full(len(gdf), None)
    attrs = pd.DataFrame(gdf.drop(columns="geometry", errors="ignore"))
    return attrs, geoms, crs_wkt, names


def _read_shapefile(dataset: Dataset, override: str | None, select: Select | None) -> RawTable:
    shp = dataset.path
    dbf = _sidecar(shp, ".dbf")
    shx = _sidecar(shp, ".shx")
    if dbf is None:
        raise InputError(
            f"缺少 .dbf 文件: {dataset.name}", f"missing .dbf beside {dataset.name}", code="missing_dbf"
        )
    if shx is None:
        raise InputError(
            f"缺少 .shx 文件: {dataset.name}", f"missing .shx beside {dataset.name}", code="missing_shx"
        )
    cpg_path = _sidecar(shp, ".cpg")
    cpg = cpg_path.read_bytes()[:200].decode("ascii", errors="replace").strip() if cpg_path else None
    guess = detect_dbf_encoding(dbf, cpg=cpg, override=override)
    gdal_enc = {"gb18030": "GB18030", "gbk": "GBK", "utf-8": "UTF-8", "big5": "BIG5"}.get(
        guess.encoding.lower(), guess.encoding
    )
    fast = _read_shapefile_fast(shp, dbf, guess.encoding, select)
    attrs, geoms, crs_wkt, names = (
        fast if fast is not None else _ogr_read(shp, None, gdal_enc, select, dataset.name)
    )
    warnings: list[tuple[str, str]] = []
    for col in attrs.columns:
        if attrs[col].dtype == object or str(attrs[col].dtype).startswith("str"):
            sample = attrs[col].dropna().astype(str).head(200)
            if any(looks_like_mojibake(v) for v in sample):
                raise EncodingError(
                    f"字段 {col} 解码后为乱码，请用 --encoding 指定正确的编码（当前 {guess.encoding}）",
                    f"field {col} decodes to mojibake with {guess.encoding}: pass the right --encoding",
                )
    prj = _sidecar(shp, ".prj")
    table = RawTable(
        dataset, attrs, geoms, None, False, "none", None, guess.encoding, guess.source, warnings, names
    )
    if prj is not None:
        text = prj.read_bytes()[:65536].decode("utf-8", errors="replace").strip()
        if text:
            table.crs = crsmod.crs_from_prj(text)
            table.crs_source = "prj"
    elif crs_wkt:
        table.crs = pyproj.CRS.from_user_input(crs_wkt)
        table.crs_source = "file"
    return table


def _read_shapefile_fast(
    shp: Path, dbf: Path, encoding: str, select: Select | None
) -> tuple[pd.DataFrame, np.ndarray, str | None, list[str]] | None:
    """Geometry through GDAL (no attributes), attributes through :mod:`geo.reading.dbf`; None to fall back."""
    names: list[str] = []
    table = read_dbf(dbf, encoding, select, names)
    if table is None:
        return None
    attrs, deleted = table
    points = read_point_shp(shp)
    if points is not None and len(points) == len(attrs):
        keep = ~deleted
        return attrs[keep].reset_index(drop=True), points[keep], None, names
    try:
        # field names are not read here; ISO-8859-1 decodes any bytes, so names cut in the
        # middle of a character cannot make GDAL fail
        meta, arrow = pyogrio.read_arrow(shp, columns=[], return_fids=True, encoding="ISO-8859-1")
    except Exception:  # let the GDAL path produce the user-facing error
        return None
    fids = arrow.column("OGC_FID").to_numpy()
    geom_name = meta.get("geometry_name") or "wkb_geometry"
    if len(fids) and (fids.max() >= len(attrs) or fids.min() < 0):
        return None
    if len(fids) != int((~deleted).sum()):
        return None
    wkb = arrow.column(geom_name).to_numpy(zero_copy_only=False)
    try:
        geoms = shapely.from_wkb(wkb)
    except shapely.errors.GEOSException:  # e.g. a ring that does not close: the GDAL path reports it
        return None
    return attrs.iloc[fids].reset_index(drop=True), np.asarray(geoms, dtype=object), meta.get("crs"), names


def _sidecar(shp: Path, suffix: str) -> Path | None:
    for cand in (shp.with_suffix(suffix), shp.with_suffix(suffix.upper())):
        if cand.exists():
            return cand
    for p in shp.parent.iterdir():
        if p.stem == shp.stem and p.suffix.lower() == suffix:
            return p
    return None


def _read_ogr(dataset: Dataset, select: Select | None) -> RawTable:
    attrs, geoms, crs_wkt, names = _ogr_read(dataset.path, dataset.layer, None, select, dataset.name)
    table = RawTable(dataset, attrs, geoms, None, False, "none", None, "utf-8", "file", [], names)
    if crs_wkt:
        table.crs = pyproj.CRS.from_user_input(crs_wkt)
        table.crs_source = "file"
    elif dataset.kind in ("geojson", "kml"):
        table.crs = pyproj.CRS.from_epsg(4326)
        table.crs_source = "file"
    return table


def read_table_file(
    path: Path, kind: str, encoding: str | None = None, select: Select | None = None, name: str | None = None
) -> tuple[pd.DataFrame, list[str], str | None]:
    """A CSV or XLSX table: the selected columns as text (CSV) or cell values (XLSX).

    Bounds are checked before the records are parsed: at most :data:`MAX_COLUMNS`
    columns, CSV lines of at most :data:`MAX_LINE_BYTES`, XLSX sheets whose cell
    references stay within :data:`MAX_COLUMNS` columns, :data:`MAX_ROWS` rows and
    :data:`MAX_XLSX_CELLS` cells.

    Parameters
    ----------
    path : Path
        The file.
    kind : {"csv", "xlsx"}
    encoding : str, optional
        CSV text encoding; by default UTF-8 (with or without BOM), else GB18030.
    select : callable, optional
        Given every column name, returns the names to keep (the others are not decoded).
    name : str, optional
        Name to report.

    Returns
    -------
    (DataFrame, list of str, str or None)
        The kept columns, every column name, and the CSV encoding used.

    Raises
    ------
    InputError, EncodingError, TooLarge
    """
    display = name or path.name
    try:
        if kind == "csv":
            return _read_csv(path, encoding, select)
        return (*_read_xlsx(path, select, display), None)
    except GridwatchError:
        raise
    except Exception as exc:  # pandas and openpyxl raise many parser errors
        raise InputError(
            f"无法读取表格: {display}（文件可能已损坏）",
            f"cannot read table {display} (the file may be damaged)",
            code="unreadable",
        ) from exc


def _read_csv(path: Path, override: str | None, select: Select | None) -> tuple[pd.DataFrame, list[str], str]:
    raw = path.read_bytes()
    ends = np.flatnonzero(np.frombuffer(raw, dtype=np.uint8) == 0x0A)
    if len(raw):
        starts = np.concatenate(([0], ends + 1))
        stops = np.concatenate((ends, [len(raw)]))
        longest = int((stops - starts).max())
        if longest > MAX_LINE_BYTES:
            raise TooLarge(
                f"CSV 文件中有过长的行（{longest:,} 字节，上限 {MAX_LINE_BYTES:,}），请检查文件",
                f"a line of the CSV file is too long ({longest:,} bytes, limit {MAX_LINE_BYTES:,})",
                code="line_too_long",
            )
    if len(ends) > MAX_ROWS:
        raise too_many_rows(len(ends))
    candidates = [normalize_encoding(override)] if override else ["utf-8-sig", "gb18030"]
    text: str | None = None
    used = ""
    for enc in candidates:
        assert enc is not None
        try:
            text = raw.decode(enc)
            used = enc
            break
        except (UnicodeDecodeError, LookupError):
            continue
    if text is None:
        raise EncodingError(
            "无法识别 CSV 文件编码，请指定 --encoding", "cannot tell the CSV encoding: pass --encoding"
        )
    del raw
    first = text.split("\n", 1)[0]
    width = len(next(csv.reader([first]), []))
    if width > MAX_COLUMNS:
        raise _too_many_columns(width)
    header = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, nrows=0)
    names = [str(c) for c in header.columns]
    positions = _selected_positions(names, select)
    frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, usecols=positions)
    return frame, names, used


def _selected_positions(names: list[str], select: Select | None) -> list[int]:
    """Positions of the kept columns: the selected ones and the coordinate columns."""
    stripped = [n.strip() for n in names]
    keep = set(stripped if select is None else select(stripped))
    for wanted in (_LON_NAMES, _LAT_NAMES):
        col = _find_col(pd.Index(stripped), wanted)
        if col is not None:
            keep.add(col)
    return [i for i, n in enumerate(stripped) if n in keep]


_CELL_REF = re.compile(rb'<c\b[^>]*?\br="([A-Z]{1,4})([0-9]{1,9})"')
_CELL = re.compile(rb"<c[\s>/]")
_DIMENSION = re.compile(rb'<dimension\s+ref="([A-Z]{1,4})?([0-9]{1,9})?:?([A-Z]{1,4})?([0-9]{1,9})?"')


def _column_number(letters: bytes) -> int:
    n = 0
    for ch in letters:
        n = n * 26 + (ch - 64)
    return n


def _scan_sheet(zf: zipfile.ZipFile, member: str) -> tuple[int, int, int]:
    """Largest column and row referenced, and the number of cells, of a worksheet's XML,
    read in chunks (nothing of it is kept)."""
    max_col = max_row = cells = 0
    tail = b""
    with zf.open(member) as fh:
        while chunk := fh.read(1 << 22):
            block = tail + chunk
            cut = block.rfind(b"<")  # a tag cut by the chunk boundary is scanned with the next one
            cut = max(cut, 0) if len(chunk) == 1 << 22 else len(block)
            body, tail = block[:cut], block[cut:]
            cells += len(_CELL.findall(body))
            for m in _DIMENSION.finditer(body):
                if m.group(3):
                    max_col = max(max_col, _column_number(m.group(3)))
                if m.group(4):
                    max_row = max(max_row, int(m.group(4)))
            refs = _CELL_REF.findall(body)
            if refs:
                max_col = max(max_col, max(_column_number(c) for c in {c for c, _ in refs}))
                max_row = max(max_row, max(int(r) for _, r in refs))
    return max_col, max_row, cells


def _read_xlsx(path: Path, select: Select | None, display: str) -> tuple[pd.DataFrame, list[str]]:
    import openpyxl

    wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
    try:
        if not wb.worksheets:
            raise InputError(f"工作簿中没有工作表: {display}", f"the workbook has no sheet: {display}")
        ws = wb.worksheets[0]
        member = str(getattr(ws, "_worksheet_path", "")).lstrip("/")
        with zipfile.ZipFile(path) as zf:
            max_col, max_row, cells = _scan_sheet(zf, member)
        if max_col > MAX_COLUMNS:
            raise _too_many_columns(max_col)
        if max_row > MAX_ROWS:
            raise too_many_rows(max_row)
        if cells > MAX_XLSX_CELLS:
            raise TooLarge(
                f"工作表单元格过多（{cells:,} 个，上限 {MAX_XLSX_CELLS:,}），请拆分后再上传",
                f"the sheet holds too many cells ({cells:,}, limit {MAX_XLSX_CELLS:,}): split it",
                code="too_many_cells",
            )
        first = next(ws.iter_rows(min_row=1, max_row=1, max_col=MAX_COLUMNS, values_only=True), ())
        width = max((i + 1 for i, v in enumerate(first) if v is not None), default=0)
        names: list[str] = []
        for i, v in enumerate(first[:width]):
            base = f"Unnamed: {i}" if v is None else str(v).strip()
            label, k = base, 1
            while label in names:  # duplicate headers are numbered, as pandas does
                label = f"{base}.{k}"
                k += 1
            names.append(label)
        positions = _selected_positions(names, select)
        columns: list[list[Any]] = [[] for _ in positions]
        if width:
            for row in ws.iter_rows(min_row=2, max_col=width, values_only=True):
                if all(v is None for v in row):
                    continue
                for out, i in zip(columns, positions, strict=True):
                    out.append(row[i] if i < len(row) else None)
        frame = pd.DataFrame(
            {names[i]: pd.Series(col, dtype=object) for i, col in zip(positions, columns, strict=True)}
        )
        return frame, names
    finally:
        wb.close()


def _read_table(dataset: Dataset, override: str | None, select: Select | None) -> RawTable:
    df, names, used_enc = read_table_file(dataset.path, dataset.kind, override, select, dataset.name)
    df.columns = [str(c).strip() for c in df.columns]
    names = [n.strip() for n in names]
    lon_col = _find_col(pd.Index(names), _LON_NAMES)
    lat_col = _find_col(pd.Index(names), _LAT_NAMES)
    if lon_col is None or lat_col is None:
        raise InputError(
            "表格中找不到坐标列（需要 经度/纬度、lon/lat 或 x/y 列）",
            "no coordinate columns in the table (need 经度/纬度, lon/lat or x/y)",
            code="no_coordinates",
        )
    from geo.reading.values import parse_numbers

    x, _ = parse_numbers(df[lon_col])
    y, _ = parse_numbers(df[lat_col])
    xs = x.to_numpy(dtype=float)
    ys = y.to_numpy(dtype=float)
    ok = np.isfinite(xs) & np.isfinite(ys)
    geoms = np.full(len(df), None, dtype=object)
    geoms[ok] = shapely.points(xs[ok], ys[ok])
    attrs = df.drop(columns=[lon_col, lat_col])
    names = [n for n in names if n not in (lon_col, lat_col)]
    return RawTable(
        dataset,
        attrs,
        geoms,
        None,
        False,
        "none",
        None,
        used_enc,
        "content" if used_enc else None,
        [],
        names,
    )


def _find_col(columns: pd.Index, names: tuple[str, ...]) -> str | None:
    lowered = {str(c).strip().lower().replace(" ", ""): str(c) for c in columns}
    for n in names:
        if n in lowered:
            return lowered[n]
    return None


def _resolve_crs(table: RawTable, override: crsmod.CRSChoice | None, hint_lon: float | None) -> None:
    """Settle the CRS of ``table`` and which of its rows have coordinates that do not fit it.

    Without a declared CRS it is inferred from the bulk of the rows
    (:func:`geo.reading.crs_infer.infer_crs_rows`); a declared one (``override``, a .prj, the file's own) is
    checked row by row (:func:`geo.reading.crs_declared.fit_rows`) and refused when most rows do not fit it —
    but a GeoJSON without a ``crs`` member, lon/lat only by convention, whose coordinates are
    mostly not lon/lat has its CRS inferred instead.  The rows that do not fit are marked in
    :attr:`RawTable.misfit`, to be rejected by row.
    """
    if override is not None:
        table.crs = override.crs
        table.gcj02 = override.gcj02
        table.crs_source = "override"
    if table.crs is None and not table.gcj02:
        geoms = table.geometry
        if (shapely.is_missing(geoms) | shapely.is_empty(geoms)).all():
            raise InputError("文件中没有任何几何图形", "the file holds no geometry", code="no_geometry")
        _infer_crs(table, shapely.bounds(geoms), hint_lon)
    else:
        _check_declared(table, hint_lon)
    if table.crs is not None:
        w = crsmod.datum_warning(table.crs)
        if w is not None:
            table.warnings.append(w)


def _infer_crs(table: RawTable, bounds: np.ndarray, hint_lon: float | None) -> None:
    guess, fit = infer_crs_rows(bounds[:, 0], bounds[:, 1], bounds[:, 2], bounds[:, 3], hint_lon=hint_lon)
    table.crs = guess.crs
    table.crs_source = "inferred"
    table.crs_note = (guess.reason_zh, guess.reason_en)
    table.warnings.append((guess.reason_zh, guess.reason_en))
    table.warnings.append(inferred_note(fit))
    table.misfit = fit.codes if fit.misfit else None


def _check_declared(table: RawTable, hint_lon: float | None) -> None:
    crs = pyproj.CRS.from_epsg(4326) if table.gcj02 else table.crs
    if crs is None:
        return
    bounds = shapely.bounds(table.geometry)
    fit = fit_rows(crs, bounds[:, 0], bounds[:, 1], bounds[:, 2], bounds[:, 3])
    if fit is None or fit.total == 0:
        return
    if fit.fit < DECLARED_MAJORITY * fit.total:
        if (
            table.crs_source == "file"
            and table.dataset.kind == "geojson"
            and not _declares_crs(table.dataset)
        ):
            declared = table.crs_label
            _infer_crs(table, bounds, hint_lon)
            table.warnings.insert(
                -2,
                (
                    f"GeoJSON 文件没有声明坐标系（crs），按惯例应为经纬度（{declared}），但大多数坐标不是经纬度：改为按坐标推断",
                    f"the GeoJSON declares no crs, so lon/lat by convention ({declared}), but most of its "
                    "coordinates are not lon/lat: the CRS is inferred from them instead",
                ),
            )
            return
        raise declared_mismatch(
            table.crs_label, table.crs_source, fit, (bounds[:, 0], bounds[:, 1], bounds[:, 2], bounds[:, 3])
        )
    table.misfit = fit.codes if fit.misfit else None


def _declares_crs(dataset: Dataset) -> bool:
    """Whether a GeoJSON has a ``crs`` member (read as :func:`_check_geojson_crs` does)."""
    with open(dataset.path, "rb") as fh:
        tail = b""
        while chunk := fh.read(1 << 22):
            block = _ASCII_ESCAPE.sub(lambda m: bytes([int(m.group(1), 16)]), tail + chunk)
            if _GEOJSON_CRS.search(block):
                return True
            tail = block[-(1 << 16) :]
    return False


def cleanup(workdir: Path) -> None:
    shutil.rmtree(workdir, ignore_errors=True)
