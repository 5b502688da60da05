"""Adding a photo to a feature: the file checked and encoded again (:mod:`geo.reading.photos`),
kept in the data directory by its content and recorded in the store.

Order of the writes: the image and its thumbnail are written first, each to a temporary file in
their folder that is then renamed (so a file is there whole or not at all), then the row and its
audit entry are written in one transaction.  When the row cannot be written the files this call
made are removed again unless another photo row names the same content; a process killed
between the rename and the commit leaves at most a file no row names, never a row without its
file.  Files are named by the SHA-256 of what is stored, so the same photo sent twice is kept
once.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Any

from geo.edits.ids import find_feature
from geo.errors import InputError, NotFound
from geo.reading.photos import Photo, PhotoLimits, read_photo
from geo.registry import get_layer
from geo.store import clock
from geo.store.base import Store
from geo.store.interface.photos import PhotoRow, photo_file

__all__ = ["MAX_NOTE", "add_photo", "photo_dict", "stored_file"]

#: characters a photo's note may have
MAX_NOTE = 500


def add_photo(
    store: Store,
    data: Path,
    layer: str,
    feature: int,
    content: bytes,
    *,
    note: str | None = None,
    version: int | None = None,
    limits: PhotoLimits | None = None,
) -> tuple[PhotoRow, Photo]:
    """Check, encode again and keep the photo ``content`` for feature ``feature`` of ``layer``
    (see the module docstring); returns its row and what was read of it.

    Raises
    ------
    InputError
        Not a photo gridwatch accepts (:func:`geo.reading.photos.process_photo`), a note too
        long, a version below 1.
    NotFound
        No such layer or feature.
    """
    spec = get_layer(layer)
    if spec.is_grid:
        raise NotFound(f"图层 {layer} 不接受照片", f"layer {layer} takes no photos", code="layer_not_found")
    found = find_feature(store, spec, int(feature))
    if found is None:
        raise NotFound(f"要素 {feature} 不存在", f"feature {feature} not found", code="feature_not_found")
    feature = int(found["id"])  # kept under the feature's stable id, whichever version it is on
    if note is not None:
        note = note.strip() or None
    if note is not None and len(note) > MAX_NOTE:
        raise InputError(
            f"备注过长（最多 {MAX_NOTE} 字）",
            f"the note is too long (at most {MAX_NOTE} characters)",
            code="bad_note",
        )
    if version is not None and not 1 <= version <= int(found["version"]):
        raise InputError(
            f"版本号应在 1 到 {int(found['version'])} 之间",
            f"version must be between 1 and {int(found['version'])}",
            code="bad_version",
        )
    photo = read_photo(content, limits)
    sha256 = photo.sha256
    made = [
        path
        for path, body in (
            (photo_file(data, sha256, photo.mime), photo.image),
            (photo_file(data, sha256, photo.mime, thumb=True), photo.thumb),
        )
        if _write_once(path, body)
    ]
    row = PhotoRow(
        id=None,
        layer=spec.name,
        feature=int(feature),
        feature_version=version,
        sha256=sha256,
        mime=photo.mime,
        width=photo.width,
        height=photo.height,
        bytes=len(photo.image),
        taken_at=photo.taken_at,
        lon=photo.lon,
        lat=photo.lat,
        uploaded_by=store.actor.user,
        uploaded_at=clock.now_iso(),
        note=note,
    )
    try:
        row.id = store.add_photo(row)
    except BaseException:
        with contextlib.suppress(Exception):
            if made and not store.photo_uses(sha256):
                for path in made:
                    path.unlink(missing_ok=True)
        raise
    return row, photo


def _write_once(path: Path, body: bytes) -> bool:
    """Write ``body`` at ``path`` through a temporary file renamed into place, unless the file
    is there already (same name, same content); whether this call made it."""
    if path.is_file():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".part-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(body)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return True


def stored_file(data: Path, row: PhotoRow, thumb: bool = False) -> Path:
    """The file of photo ``row`` (its thumbnail with ``thumb``).

    Raises
    ------
    NotFound
        The file is not in the data directory.
    """
    path = photo_file(data, row.sha256, row.mime, thumb)
    if not path.is_file():
        raise NotFound(
            f"照片文件不存在: {row.id}", f"the file of photo {row.id} is missing", code="photo_not_found"
        )
    return path


def photo_dict(row: PhotoRow) -> dict[str, Any]:
    """A photo row as plain JSON values (no URLs: the web layer adds them)."""
    return {
        "id": row.id,
        "layer": row.layer,
        "feature": row.feature,
        "feature_version": row.feature_version,
        "sha256": row.sha256,
        "type": row.mime,
        "width": row.width,
        "height": row.height,
        "bytes": row.bytes,
        "taken_at": row.taken_at,
        "lon": row.lon,
        "lat": row.lat,
        "uploaded_by": row.uploaded_by,
        "uploaded_at": row.uploaded_at,
        "note": row.note,
    }
