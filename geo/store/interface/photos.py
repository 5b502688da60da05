"""Photos on features: one row per photo in ``gw_photos`` (the same table on every backend); the
files themselves are kept in the data directory (:mod:`geo.imports.photos`).

A photo names its feature by the layer and one column, ``feature`` -- today the fid the API
addresses features by; when features get an id that stays the same across updates, that one
column is what moves to it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import astuple, dataclass
from pathlib import Path
from typing import Any, Protocol

__all__ = [
    "PHOTOS_DIR",
    "PHOTO_COLUMNS",
    "PhotoRow",
    "PhotoStore",
    "photo_file",
    "photo_insert",
    "photo_row",
    "photo_values",
]

#: the folder of the data directory that holds the photo files
PHOTOS_DIR = "photos"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_SUFFIX = {"image/jpeg": ".jpg", "image/webp": ".webp"}


def photo_file(data: Path, sha256: str, mime: str, thumb: bool = False) -> Path:
    """Where the image ``sha256`` (or its thumbnail) is kept: ``<data>/photos/<ab>/<sha256>.jpg``
    (``-thumb`` before the suffix for the thumbnail; ``.webp`` for WebP).  Files are named by
    their content only, so no name a client sends reaches the file system.

    Raises
    ------
    ValueError
        ``sha256`` is not 64 lower-case hex digits or ``mime`` not a stored type.
    """
    if not _SHA256.match(sha256) or mime not in _SUFFIX:
        raise ValueError((sha256, mime))
    return data / PHOTOS_DIR / sha256[:2] / f"{sha256}{'-thumb' if thumb else ''}{_SUFFIX[mime]}"


@dataclass
class PhotoRow:
    """One photo: on which feature (and its version, when the client said it), the stored
    image (its SHA-256 names the file), its size, the plain values read from its EXIF, who
    sent it, when, and a note."""

    id: int | None
    layer: str
    feature: int
    feature_version: int | None
    sha256: str
    mime: str
    width: int
    height: int
    bytes: int
    taken_at: str | None
    lon: float | None
    lat: float | None
    uploaded_by: str | None
    uploaded_at: str
    note: str | None


#: the columns of ``gw_photos``, in :class:`PhotoRow`'s order
PHOTO_COLUMNS = (
    "id",
    "layer",
    "feature",
    "feature_version",
    "sha256",
    "mime",
    "width",
    "height",
    "bytes",
    "taken_at",
    "lon",
    "lat",
    "uploaded_by",
    "uploaded_at",
    "note",
)


def photo_insert(mark: str) -> str:
    """The ``INSERT`` of one ``gw_photos`` row without its id, with the backend's parameter
    ``mark``; its values are :func:`photo_values`."""
    cols = PHOTO_COLUMNS[1:]
    return f"INSERT INTO gw_photos ({', '.join(cols)}) VALUES ({', '.join([mark] * len(cols))})"


def photo_values(row: PhotoRow) -> tuple[Any, ...]:
    """The values of :func:`photo_insert` for ``row``."""
    return astuple(row)[1:]


def photo_row(values: Sequence[Any]) -> PhotoRow:
    """The row of ``SELECT`` :data:`PHOTO_COLUMNS` ``FROM gw_photos``."""
    v = list(values)
    for i in (0, 2, 3, 6, 7, 8):
        v[i] = None if v[i] is None else int(v[i])
    for i in (10, 11):
        v[i] = None if v[i] is None else float(v[i])
    return PhotoRow(*v)


class PhotoStore(Protocol):
    """The photo rows, written inside :meth:`~geo.store.base.Store.admin_transaction` (a photo
    changes no figure) with an audit entry."""

    def add_photo(self, row: PhotoRow) -> int:
        """Insert ``row`` (its id left out) with an audit entry (``photo_add``); returns its id."""
        ...

    def photos(self, layer: str, feature: int) -> list[PhotoRow]:
        """The photos of one feature, oldest first."""
        ...

    def photo(self, photo_id: int) -> PhotoRow | None:
        """Photo ``photo_id``, or None."""
        ...

    def photo_uses(self, sha256: str) -> int:
        """How many photo rows name the stored image ``sha256``."""
        ...
