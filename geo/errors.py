"""Errors a user can cause, each with an HTTP status and a bilingual message.

The engine raises these; the web layer and the CLI turn them into a response or
a one-line message with a non-zero exit.  Nothing here knows about Flask.
"""

from __future__ import annotations

import errno
from typing import Any


class GridwatchError(Exception):
    """Base class: a problem with the user's input or request.

    Parameters
    ----------
    zh, en : str
        The message in Simplified Chinese and in English.
    code : str, optional
        Machine-readable error code (``"bad_crs"``, ``"not_found"`` ...).
    details : dict, optional
        Extra JSON-serialisable context (row numbers, candidates ...).
    """

    status: int = 400
    code: str = "bad_request"

    def __init__(self, zh: str, en: str, *, code: str | None = None, details: dict[str, Any] | None = None):
        super().__init__(f"{zh} / {en}")
        self.zh = zh
        self.en = en
        if code is not None:
            self.code = code
        self.details = details or {}

    @property
    def message(self) -> str:
        return f"{self.zh} / {self.en}"

    def to_dict(self) -> dict[str, Any]:
        """The error as a JSON body: ``error`` (the code), ``message`` in both languages,
        ``message_zh``, ``message_en`` and, when there are any, ``details``."""
        out: dict[str, Any] = {
            "error": self.code,
            "message": self.message,
            "message_zh": self.zh,
            "message_en": self.en,
        }
        if self.details:
            out["details"] = self.details
        return out


class InputError(GridwatchError):
    """The file or value given cannot be used (422-style, reported as 400)."""

    status = 400
    code = "bad_input"


class UnsupportedFile(InputError):
    """Raised for a file gridwatch cannot read: a format no reader takes, or content that does
    not match its extension.  HTTP 415."""

    status = 415
    code = "unsupported_file"


class EncodingError(InputError):
    """Raised when a file's text cannot be decoded in the encoding given or found for it.  HTTP 400."""

    code = "bad_encoding"


class CRSError(InputError):
    """Raised when a file's coordinate reference system is missing, unknown, or does not fit its
    coordinates (and when a CRS given by the user cannot be used).  HTTP 400."""

    code = "bad_crs"


class NotFound(GridwatchError):
    """Raised when what a request names does not exist: a batch, user, token, grid version,
    value mapping, archived file.  HTTP 404."""

    status = 404
    code = "not_found"


class Forbidden(GridwatchError):
    """Raised when the account may not do this here: a write outside the area it is bound to
    (an edit, a photo, a task).  HTTP 403."""

    status = 403
    code = "forbidden"


def outside_area() -> Forbidden:
    """The refusal of a write outside the account's area."""
    return Forbidden(
        "该要素不在本账户的区域内", "the feature is outside this account's area", code="outside_area"
    )


class Conflict(GridwatchError):
    """Raised when a request clashes with what the store holds: a user name taken, a batch
    already rolled back or blocked by a later one, a store CRS already set.  HTTP 409."""

    status = 409
    code = "conflict"


class TooLarge(GridwatchError):
    """Raised when an upload exceeds a limit: its size, an archive's members or unpacked size,
    a table's rows or columns.  HTTP 413."""

    status = 413
    code = "too_large"


class QuotaExceeded(GridwatchError):
    """An account holds too much at once (staged uploads waiting for their commit)."""

    status = 429
    code = "quota_exceeded"


class StoreError(GridwatchError):
    """The store cannot be written (read-only, disk full, locked)."""

    status = 503
    code = "store_unavailable"


#: OS error numbers of a write refused for want of room: the disk (or the user's quota) is full,
#: or the file would outgrow the size the process may write.
DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
#: OS error numbers of a write refused because the file or its file system is read-only.
READ_ONLY_ERRNOS = frozenset({errno.EROFS, errno.EACCES, errno.EPERM})


def disk_full() -> StoreError:
    """The write did not fit; it was cancelled as a whole."""
    return StoreError(
        "磁盘已满，写入已取消，数据未改变",
        "disk full: the write was cancelled, nothing changed",
        code="disk_full",
    )


def read_only() -> StoreError:
    """The store cannot be written (file permissions or a read-only file system)."""
    return StoreError("存储为只读，无法写入", "the store is read-only", code="store_read_only")


def write_error(os_errno: int | None) -> StoreError | None:
    """The clear error for a write that failed with OS error number ``os_errno``: disk full or
    read-only; None for any other error."""
    if os_errno in DISK_FULL_ERRNOS:
        return disk_full()
    if os_errno in READ_ONLY_ERRNOS:
        return read_only()
    return None
