"""Open what surveyors hand in: zipped or loose shapefiles, GeoPackage, GeoJSON, KML,
CSV and XLSX tables with coordinate columns — whatever formats the reader registry
(:mod:`geo.reading.readers`) holds.

:func:`open_source` unpacks an upload safely into a working directory (:mod:`geo.reading.zips`)
and lists the datasets inside, each of the format its suffix names;
:func:`geo.reading.readers.read_dataset` reads one.
"""

from __future__ import annotations

import hashlib
import shutil
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

from geo.errors import InputError, UnsupportedFile
from geo.reading.datasets import Dataset
from geo.reading.readers import get_reader, reader_for_suffix, readers
from geo.reading.zips import ZipLimits, check_packed, unzip

__all__ = [
    "SIDECAR_SUFFIXES",
    "Source",
    "archive_files",
    "cleanup",
    "expand_containers",
    "open_source",
    "sha256_file",
    "shapefile_parts",
]

SIDECAR_SUFFIXES = frozenset(
    {".shx", ".dbf", ".prj", ".cpg", ".qix", ".sbn", ".sbx", ".xml", ".qmd", ".qpj", ".atx"}
)


def _vector_suffixes() -> frozenset[str]:
    """The suffixes of the registered formats."""
    return frozenset(s for reader in readers() for s in reader.suffixes)


def _allowed_suffixes() -> frozenset[str]:
    """What is unpacked from a zip; anything else (read-me files, pictures, documents) is
    listed as skipped and never written."""
    return _vector_suffixes() | SIDECAR_SUFFIXES | {".zip"}


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


def sha256_file(path: Path) -> str:
    """The SHA-256 of the file at ``path``, as hex digits."""
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
        unzip(path, target, limits, skipped, _allowed_suffixes())
        _collect(target, target, datasets, skipped, prefix="")
    elif path.is_file() and path.suffix.lower() == ".kmz":
        target = workdir / "kmz"
        unzip(path, target, limits, skipped, _allowed_suffixes())
        _collect(target, target, datasets, skipped, prefix=display + "/")
    elif path.is_dir():
        _collect(root, root, datasets, skipped, prefix="")
    else:
        suffix = path.suffix.lower()
        reader = reader_for_suffix(suffix)
        if reader is None:
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
        datasets.append(Dataset(display, path, reader.format))
    for d in datasets:
        if d.path.suffix.lower() in (".xlsx", ".kmz"):  # zips read by openpyxl or GDAL: same caps
            check_packed(d.path, d.name, limits)
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


def _collect(root: Path, base: Path, out: list[Dataset], skipped: list[str], prefix: str) -> None:
    for p in sorted(root.rglob("*")):
        if not p.is_file():
            continue
        suffix = p.suffix.lower()
        rel = prefix + str(p.relative_to(base)).replace("\\", "/")
        reader = reader_for_suffix(suffix)
        if reader is not None:
            if suffix == ".json" and p.stat().st_size == 0:
                skipped.append(rel)
                continue
            out.append(Dataset(rel, p, reader.format))
        elif suffix == ".dbf" and not p.with_suffix(".shp").exists() and not p.with_suffix(".SHP").exists():
            skipped.append(rel)


def expand_containers(datasets: list[Dataset]) -> list[Dataset]:
    """The datasets with each multi-layer container (GeoPackage, KML) split into its layers.

    Opens files with GDAL: call it in the reading helper, after
    :func:`geo.reading.readers.check_content`."""
    out: list[Dataset] = []
    for d in datasets:
        list_layers = get_reader(d.kind).layers
        if list_layers is not None:
            try:
                names = list_layers(d.path)
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


def cleanup(workdir: Path) -> None:
    """Remove the working directory of an opened source, and everything in it."""
    shutil.rmtree(workdir, ignore_errors=True)
