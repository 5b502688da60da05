"""What a map needs of every feature of a layer, kept as one file per layer generation.

A whole-district map view bins every feature's position into clusters, so it needs each
feature's position, status and completion -- not its geometry object nor its attributes.
:class:`MapColumns` holds exactly that as flat arrays (fid, lon, lat, status index,
completed: 27 bytes a feature), and :func:`save` writes them under the data directory's
``cache/map`` folder, named by the store, the layer and the generation, written to a
temporary name and renamed into place (a reader never sees half a file).  Every worker
memory-maps the same file (:func:`load`), so a worker that starts again, or another worker,
answers from it without reading the layer; after a commit the change log leads from the newest
file to the new generation (:func:`newest`), and older generations' files are removed.

A file is used only when its header names this store (a digest of its location), this layer
and the generation asked, its size is what the header says, and the checksum of its columns
agrees: a file of another store or generation, or a truncated or damaged one, is ignored (and
made again by the caller).  A store without a data directory keeps none.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import mmap
import os
import secrets
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from layers.base import LayerSpec

#: The first bytes of a map file (and its format's version).
MAGIC = b"GWMAP\x001\n"
#: Header bytes before the columns (the columns start aligned).
HEADER = 512
#: The columns, in file order, with their types.
COLUMNS: tuple[tuple[str, str], ...] = (
    ("fids", "<i8"),
    ("lon", "<f8"),
    ("lat", "<f8"),
    ("status", "<i2"),
    ("completed", "|b1"),
)
SUFFIX = ".gwmap"
#: A half-written file older than this (seconds) has no writer left and is removed.
STALE_TMP_SECONDS = 3600


@dataclass(frozen=True)
class MapColumns:
    """Every current feature of a layer generation, in fid order: ``fids``, ``lon``/``lat``
    (degrees, EPSG:4326, NaN without a geometry), ``status`` (index in the layer's
    ``all_statuses``, its length for none, see :func:`geo.figures.viewport._status_index`) and
    ``completed`` (the status counts as completed)."""

    fids: np.ndarray
    lon: np.ndarray
    lat: np.ndarray
    status: np.ndarray
    completed: np.ndarray
    #: the columns are a memory-mapped file's
    mapped: bool = False
    #: what this process made of them for the map: the bin sums of views asked, by view and zoom
    bins: dict[Any, Any] = field(default_factory=dict, compare=False)

    def cache_bytes(self) -> int:
        """The bytes of the columns held in this process, counted in the store cache's budget;
        a mapped file's are the system's page cache, shared by every worker and given back
        under memory pressure: counted as its header only."""
        own = sum(int(getattr(v, "cache_bytes", lambda: 0)()) for v in list(self.bins.values()))
        return own + (HEADER if self.mapped else int(sum(getattr(self, name).nbytes for name, _ in COLUMNS)))

    def __len__(self) -> int:
        return len(self.fids)


def make(
    fids: np.ndarray, lon: np.ndarray, lat: np.ndarray, status: np.ndarray, completed: np.ndarray
) -> MapColumns:
    """:class:`MapColumns` of the given arrays, in the file's types."""
    types = dict(COLUMNS)
    return MapColumns(
        np.ascontiguousarray(fids, dtype=types["fids"]),
        np.ascontiguousarray(lon, dtype=types["lon"]),
        np.ascontiguousarray(lat, dtype=types["lat"]),
        np.ascontiguousarray(status, dtype=types["status"]),
        np.ascontiguousarray(completed, dtype=types["completed"]),
    )


def store_digest(store: Any) -> str:
    """A digest naming the store (its location, which carries no credentials)."""
    return hashlib.sha256(str(store.location).encode()).hexdigest()[:32]


def folder(store: Any) -> Path | None:
    """The folder of the store's map files, None for a store without a data directory."""
    data = getattr(store, "data_dir", None) or getattr(store, "data", None)
    return Path(data) / "cache" / "map" if isinstance(data, Path | str) and str(data) else None


def _prefix(store: Any, spec: LayerSpec) -> str:
    return f"{store_digest(store)[:16]}-{spec.name}-"


def path_for(store: Any, spec: LayerSpec, generation: str) -> Path | None:
    """Where the map file of ``spec`` at ``generation`` of ``store`` is kept."""
    base = folder(store)
    if base is None:
        return None
    gen = hashlib.sha256(generation.encode()).hexdigest()[:24]
    return base / f"{_prefix(store, spec)}{gen}{SUFFIX}"


def _checksum(columns: list[np.ndarray]) -> int:
    value = 1
    for col in columns:
        value = zlib.adler32(col.view(np.uint8).data, value)
    return value


def save(store: Any, spec: LayerSpec, generation: str, cols: MapColumns) -> Path | None:
    """Write ``cols`` as the map file of ``spec`` at ``generation`` (write, then rename into
    place) and remove the files of the layer's other generations; None when the store keeps
    no files or the folder cannot be written (the map then works from memory)."""
    path = path_for(store, spec, generation)
    if path is None:
        return None
    arrays = [np.ascontiguousarray(getattr(cols, name), dtype=kind) for name, kind in COLUMNS]
    header = json.dumps(
        {
            "store": store_digest(store),
            "layer": spec.name,
            "generation": generation,
            "rows": len(cols),
            "checksum": _checksum(arrays),
        }
    ).encode()
    if len(header) > HEADER - len(MAGIC) - 4:
        return None
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as out:
            head = MAGIC + len(header).to_bytes(4, "little") + header
            out.write(head + b"\0" * (HEADER - len(head)))
            for arr in arrays:
                out.write(arr.view(np.uint8).data)
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink()
        return None
    for other in path.parent.glob(f"{_prefix(store, spec)}*{SUFFIX}"):
        if other != path:
            with contextlib.suppress(OSError):
                other.unlink()  # a worker that mapped it keeps its mapping
    # the half-written files of a process stopped while writing (killed, out of memory): a write
    # takes seconds, so one untouched for an hour has no writer left
    cutoff = time.time() - STALE_TMP_SECONDS
    for left in path.parent.glob(f".{_prefix(store, spec)}*.tmp"):
        with contextlib.suppress(OSError):
            if left.stat().st_mtime < cutoff:
                left.unlink()
    return path


def _read_header(path: Path) -> dict[str, Any] | None:
    try:
        with open(path, "rb") as f:
            head = f.read(HEADER)
    except OSError:
        return None
    if len(head) < HEADER or not head.startswith(MAGIC):
        return None
    size = int.from_bytes(head[len(MAGIC) : len(MAGIC) + 4], "little")
    start = len(MAGIC) + 4
    try:
        header = json.loads(head[start : start + size])
    except ValueError:
        return None
    return header if isinstance(header, dict) else None


def _open(
    path: Path, store: Any, spec: LayerSpec, generation: str | None, verify: bool = True
) -> MapColumns | None:
    """The columns of the file at ``path`` when it is whole and of ``store``, ``spec`` and
    (when given) ``generation``; None otherwise.  ``verify=False`` skips the checksum (for the
    file this process has just written)."""
    header = _read_header(path)
    if (
        header is None
        or header.get("store") != store_digest(store)
        or header.get("layer") != spec.name
        or (generation is not None and header.get("generation") != generation)
        or not isinstance(header.get("rows"), int)
    ):
        return None
    rows = int(header["rows"])
    widths = [np.dtype(kind).itemsize for _, kind in COLUMNS]
    try:
        with open(path, "rb") as f:
            if os.fstat(f.fileno()).st_size != HEADER + rows * sum(widths):
                return None
            if rows == 0:
                return make(*(np.empty(0, dtype=kind) for _, kind in COLUMNS))
            mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    except (OSError, ValueError):
        return None
    arrays = []
    at = HEADER
    for (_, kind), width in zip(COLUMNS, widths, strict=True):
        arrays.append(np.frombuffer(mapped, dtype=kind, count=rows, offset=at))
        at += rows * width
    if verify and _checksum(arrays) != header.get("checksum"):
        return None
    fids, lon, lat, status, completed = arrays
    return MapColumns(fids, lon, lat, status, completed, mapped=True)


def load(store: Any, spec: LayerSpec, generation: str) -> MapColumns | None:
    """The map file's columns of ``spec`` at ``generation`` (memory-mapped), None when there
    is no whole file of this store, layer and generation."""
    path = path_for(store, spec, generation)
    if path is None or not path.exists():
        return None
    return _open(path, store, spec, generation)


def filed(store: Any, spec: LayerSpec, generation: str, cols: MapColumns) -> MapColumns:
    """``cols`` filed (:func:`save`) and given back as the file's columns, memory-mapped (the
    process then holds no copy of its own); ``cols`` itself when they could not be filed."""
    path = save(store, spec, generation, cols)
    mapped = None if path is None else _open(path, store, spec, generation, verify=False)
    return cols if mapped is None or len(mapped) != len(cols) else mapped


def newest(store: Any, spec: LayerSpec) -> tuple[str, MapColumns] | None:
    """``(generation, columns)`` of the newest whole map file of ``spec`` of ``store`` (to follow
    the change log from), None when there is none."""
    base = folder(store)
    if base is None or not base.is_dir():
        return None
    found = []
    for path in base.glob(f"{_prefix(store, spec)}*{SUFFIX}"):
        with contextlib.suppress(OSError):
            found.append((path.stat().st_mtime, path))
    for _, path in sorted(found, reverse=True):
        header = _read_header(path)
        if header is None or not isinstance(header.get("generation"), str):
            continue
        cols = _open(path, store, spec, None)
        if cols is not None:
            return str(header["generation"]), cols
    return None
