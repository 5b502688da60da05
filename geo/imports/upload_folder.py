"""The folder of a staged upload (:mod:`geo.imports.uploads`): its settings file, its lock and
the errors of using it.  Every use of a staged upload holds the lock on its folder (``flock``
on ``.lock``, which works across processes and across the threads of one): receiving it,
re-reading it, committing it and discarding it hold it alone, reading its features shares it.
Whoever finds it taken gets :class:`UploadBusy` (409) at once."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path

from geo.errors import Conflict, NotFound, StoreError, write_error

#: The settings of a staged upload: layer, overrides, file name, owner.
SETTINGS_FILE = "upload.json"
#: Locked (flock) by whoever uses the staged upload; holds the name of what they do.
LOCK_FILE = ".lock"

#: How long a request waits for a staged upload someone else uses before it is refused (seconds).
LOCK_WAIT_S = 1.0


class UploadBusy(Conflict):
    """The staged upload is in use by another request (being received, read, committed)."""

    code = "upload_busy"


def not_found(upload_id: str) -> NotFound:
    """The error for a staged upload that is not (or no longer) there."""
    return NotFound(
        "上传不存在或已过期", f"no upload {upload_id} (expired or committed)", code="upload_not_found"
    )


def staging_failed(exc: OSError) -> StoreError:
    """The error for a staged upload's file that cannot be written (disk full, read-only ...)."""
    return write_error(exc.errno) or StoreError(
        "无法保存上传文件", f"cannot stage the upload: {exc}", code="staging_failed"
    )


_DOING = {
    "stage": ("正在接收", "being received"),
    "preview": ("正在读取", "being read"),
    "features": ("正在读取", "being read"),
    "commit": ("正在提交", "being committed"),
    "discard": ("正在删除", "being discarded"),
}


@contextlib.contextmanager
def locked(folder: Path, upload_id: str, action: str, *, shared: bool = False) -> Iterator[None]:
    """Hold the lock of a staged upload for ``action``; :class:`UploadBusy` at once when
    someone else holds it (a shared hold admits other shared ones)."""
    path = folder / LOCK_FILE
    try:
        fd = _open_lock(path)
    except FileNotFoundError:
        if not (folder / SETTINGS_FILE).exists():
            raise not_found(upload_id) from None
        try:  # staged before uploads had locks
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise staging_failed(exc) from exc
    except NotADirectoryError:
        raise not_found(upload_id) from None
    except OSError as exc:
        raise staging_failed(exc) from exc
    try:
        if not _try_lock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX):
            doing = ""
            with contextlib.suppress(OSError):
                doing = os.pread(fd, 16, 0).decode("ascii", "replace").strip()
            zh, en = _DOING.get(doing, ("正在处理", "in use"))
            raise UploadBusy(
                f"该上传{zh}，请稍后再试（处理中的上传不能删除、重新读取或再次提交）",
                f"this upload is {en}: try again in a moment (an upload in use cannot be discarded, read"
                " again or committed again)",
            ) from None
        if not shared:
            _note(fd, action)
        try:
            yield
        finally:
            if not shared:
                _note(fd, "")
    finally:
        os.close(fd)  # releases the lock


def _try_lock(fd: int, mode: int) -> bool:
    """Take the lock, waiting up to :data:`LOCK_WAIT_S` (a preview map reading the features
    holds it for a moment); False when it stays taken."""
    deadline = time.monotonic() + LOCK_WAIT_S
    while True:
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
            return True
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise staging_failed(exc) from exc
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


def _open_lock(path: Path) -> int:
    try:
        return os.open(path, os.O_RDWR)
    except OSError as exc:
        if exc.errno not in (errno.EACCES, errno.EROFS, errno.EPERM):
            raise
        return os.open(path, os.O_RDONLY)  # a read-only data directory: lock without the note


def _note(fd: int, action: str) -> None:
    """Write what the holder does into the lock file, for those who find it taken."""
    with contextlib.suppress(OSError):
        os.ftruncate(fd, 0)
        if action:
            os.pwrite(fd, action.encode("ascii"), 0)
