"""Uploads waiting for confirmation: the browser sends a file, sees the import report, and
confirms.  The file and the chosen overrides are kept in ``<data>/uploads/<id>/`` so that
any server process (several gunicorn workers) can commit it; committing writes the rows the
preview kept beside it (:mod:`geo.imports.upload_prepared`; the file is read again when
they no longer hold) in one transaction.

A staged upload is previewed and committed by :mod:`geo.imports.upload_review`; the
features it would add are drawn from what :mod:`geo.imports.upload_features` keeps beside it.

Every use of a staged upload holds a lock on its folder (:mod:`geo.imports.upload_locks`):
an upload being committed cannot be discarded, re-read or committed a second time.  The settings (``upload.json``)
are replaced whole (written beside, flushed, renamed), so a reader never sees half of
them, and a re-read with other settings keeps them only once it succeeded.

Each account may keep :class:`StagingLimits` of staged uploads (bytes in their folders
and their number); uploads not used for ``max_age_s`` are removed.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import secrets
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from geo.errors import GridwatchError, InputError, NotFound, QuotaExceeded, TooLarge
from geo.imports.importer import prepare_import
from geo.imports.report import PreparedImport
from geo.imports.upload_folder import LOCK_FILE, SETTINGS_FILE, locked, not_found, staging_failed
from geo.reading.charsets import normalize_encoding
from geo.reading.display import safe_display_name
from geo.reading.zips import ZipLimits
from geo.store.base import Store

#: Staged uploads not used for this long (seconds) are removed.
MAX_AGE_S = 2 * 3600
#: Bytes each account may keep in staged uploads (their files and what is kept beside them).
QUOTA_BYTES = 1024**3
#: Staged uploads each account may keep at once.
QUOTA_UPLOADS = 20
_ID = re.compile(r"^[A-Za-z0-9_-]{16,64}$")


#: Locked while a staging counts what an account holds and reserves its folder.
_QUOTA_LOCK = ".quota.lock"


@dataclass(frozen=True)
class StagingLimits:
    """What one account may keep in staged uploads, and for how long.

    Parameters
    ----------
    quota_bytes : int
        Bytes in all the account's staged upload folders (the files sent and whatever is
        kept beside them).
    quota_uploads : int
        Staged uploads at once.
    max_age_s : float
        Seconds after which an upload nobody used is removed.
    """

    quota_bytes: int = QUOTA_BYTES
    quota_uploads: int = QUOTA_UPLOADS
    max_age_s: float = MAX_AGE_S


def uploads_dir(data_dir: Path) -> Path:
    """The folder of the staged uploads in the data directory ``data_dir``."""
    return Path(data_dir) / "uploads"


def _safe_name(name: str) -> str:
    """The file's own name without any directory part or characters a file system rejects."""
    base = re.split(r"[\\\\/]", name or "")[-1].strip().strip(".")
    # control and direction characters (a name that shows 报告exe.xls for 报告\u202eslx.exe) become U+FFFD
    base = safe_display_name(base)
    base = re.sub(r'[\x00-\x1f<>:"|?*]', "_", base)
    if not base:
        raise InputError("文件名为空", "the file has no name", code="bad_filename")
    return base[:200]


def stage(
    data_dir: Path,
    filename: str,
    stream: BinaryIO,
    layer: str,
    encoding: str | None = None,
    crs: str | None = None,
    member: str | None = None,
    max_bytes: int | None = None,
    owner: str | None = None,
    staging: StagingLimits | None = None,
) -> str:
    """Save an uploaded file for a later preview and commit; returns the upload id.

    ``owner`` (the uploading account) is kept with it: see :func:`owner`.

    Raises
    ------
    QuotaExceeded
        The owner already keeps ``staging.quota_uploads`` staged uploads (429).
    TooLarge
        The file is larger than ``max_bytes``, or it would take the owner's staged
        uploads over ``staging.quota_bytes`` (413).
    StoreError
        The file cannot be saved (disk full, read-only, no folder).
    """
    limits = staging or StagingLimits()
    encoding = normalize_encoding(encoding) if encoding else None  # a bad name is refused up front
    root = uploads_dir(data_dir)
    upload_id = secrets.token_urlsafe(18)
    folder = root / upload_id
    params = {
        "layer": layer,
        "encoding": encoding or None,
        "crs": crs or None,
        "member": member or None,
        "name": _safe_name(filename),
        "created": time.time(),
        "owner": owner,
    }
    created = False
    with contextlib.ExitStack() as held:
        try:
            root.mkdir(parents=True, exist_ok=True)
            with _quota_lock(root):
                _sweep(root, limits.max_age_s)
                count, used = _usage(root, owner)
                _check_quota(count, used, limits)
                folder.mkdir()
                created = True
                (folder / LOCK_FILE).touch()
                held.enter_context(locked(folder, upload_id, "stage"))  # until the file is whole
                write_settings(folder, params)
            _receive(stream, folder / str(params["name"]), max_bytes, limits.quota_bytes - used, used, limits)
            with _quota_lock(root):  # uploads of the same account arriving at the same moment
                _count, used = _usage(root, owner)
                if used > limits.quota_bytes:
                    raise _over_quota(used, limits)
        except BaseException as exc:
            if created:
                shutil.rmtree(folder, ignore_errors=True)
            if isinstance(exc, OSError):
                raise staging_failed(exc) from exc
            raise
    return upload_id


def _receive(
    stream: BinaryIO, target: Path, max_bytes: int | None, room: int, used: int, limits: StagingLimits
) -> None:
    written = 0
    with open(target, "wb") as out:
        while chunk := stream.read(1 << 20):
            written += len(chunk)
            if max_bytes is not None and written > max_bytes:
                raise InputError("上传文件过大", "the upload is too large", code="too_large")
            if written > room:
                raise _over_quota(used + written, limits)
            out.write(chunk)


def _check_quota(count: int, used: int, limits: StagingLimits) -> None:
    """Refuse one more staged upload to an account keeping ``count`` of ``used`` bytes."""
    if count >= limits.quota_uploads:
        hours = _hours(limits.max_age_s)
        raise QuotaExceeded(
            f"暂存的上传已有 {count} 个（每个账户最多 {limits.quota_uploads} 个）："
            f"请先确认导入或删除之前的上传（未确认的上传 {hours} 小时后自动删除）",
            f"you keep {count} staged uploads, the most an account may ({limits.quota_uploads}): "
            f"commit or discard earlier uploads first (uploads not committed are removed after {hours} h)",
            code="staging_quota",
        )
    if used >= limits.quota_bytes:
        raise _over_quota(used, limits)


def _over_quota(used: int, limits: StagingLimits) -> TooLarge:
    quota, hours = _mb(limits.quota_bytes), _hours(limits.max_age_s)
    return TooLarge(
        f"暂存的上传将超过每个账户 {quota} 的限额（需 {_mb(used)}）：请先确认导入或删除之前的上传"
        f"（未确认的上传 {hours} 小时后自动删除）",
        f"staged uploads would exceed the {quota} an account may keep ({_mb(used)} needed): commit or "
        f"discard earlier uploads first (uploads not committed are removed after {hours} h)",
        code="staging_quota",
    )


def _mb(n: int) -> str:
    return f"{n / 1024**2:,.1f} MB"


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:g}"


@contextlib.contextmanager
def _quota_lock(root: Path) -> Iterator[None]:
    fd = os.open(root / _QUOTA_LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _usage(root: Path, owner: str | None) -> tuple[int, int]:
    """How many staged uploads ``owner`` keeps and the bytes in their folders."""
    count = used = 0
    for folder in root.iterdir():
        if not _ID.match(folder.name):
            continue
        try:
            params = json.loads((folder / SETTINGS_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # being removed, or damaged (removed when it expires)
        if not isinstance(params, dict) or params.get("owner") != owner:
            continue
        count += 1
        used += _folder_bytes(folder)
    return count, used


def _folder_bytes(folder: Path) -> int:
    total = 0
    for base, _dirs, files in os.walk(folder):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(base, name)).st_size
    return total


def staged_folder(data_dir: Path, upload_id: str) -> Path:
    """The folder of the staged upload ``upload_id`` (:class:`NotFound` for an id that is none)."""
    if not _ID.match(upload_id):
        raise NotFound("上传不存在", f"no upload {upload_id}", code="upload_not_found")
    return uploads_dir(data_dir) / upload_id


def read_settings(folder: Path, upload_id: str) -> dict[str, Any]:
    """The settings of a staged upload, checked; a clear error when they cannot be read."""
    try:
        text = (folder / SETTINGS_FILE).read_text(encoding="utf-8")
    except (FileNotFoundError, NotADirectoryError):
        raise not_found(upload_id) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise _damaged(upload_id) from exc
    try:
        params = json.loads(text)
    except ValueError as exc:
        raise _damaged(upload_id) from exc
    ok = (
        isinstance(params, dict)
        and isinstance(params.get("layer"), str)
        and isinstance(params.get("name"), str)
        and bool(params["name"].strip("."))
        and not set(params["name"]) & {"/", "\\", "\x00"}  # a file inside the folder
        and all(
            params.get(k) is None or isinstance(params[k], str)
            for k in ("encoding", "crs", "member", "owner")
        )
    )
    if ok:
        try:
            check_mapping_params(params)
        except InputError:
            ok = False
    if not ok:
        raise _damaged(upload_id)
    return dict(params)


#: Bounds of the mappings a form may send.
MAX_FIELD_MAP = 1000
MAX_VALUE_MAP = 10_000
MAX_MAP_TEXT = 1000


def check_mapping_params(params: dict[str, Any]) -> None:
    """Check the shape of ``field_map``, ``value_map`` and ``remember`` in upload settings.

    Raises
    ------
    InputError
        ``code="bad_mapping"``.
    """
    bad = InputError(
        "字段或值对应的格式不对", "the field or value mappings are malformed", code="bad_mapping"
    )
    fm = params.get("field_map")
    if fm is not None and not (
        isinstance(fm, dict)
        and len(fm) <= MAX_FIELD_MAP
        and all(
            isinstance(k, str) and isinstance(v, str) and len(k) <= MAX_MAP_TEXT and len(v) <= MAX_MAP_TEXT
            for k, v in fm.items()
        )
    ):
        raise bad
    vm = params.get("value_map")
    if vm is not None and not (
        isinstance(vm, list)
        and len(vm) <= MAX_VALUE_MAP
        and all(
            isinstance(e, list)
            and len(e) == 3
            and all(isinstance(x, str) and 0 < len(x) <= MAX_MAP_TEXT for x in e)
            for e in vm
        )
    ):
        raise bad
    if params.get("remember") is not None and not isinstance(params["remember"], bool):
        raise bad


def _damaged(upload_id: str) -> InputError:
    return InputError(
        "暂存的上传已损坏（其设置无法读取），请删除后重新上传",
        f"the staged upload {upload_id} is damaged (its settings cannot be read): discard it and upload"
        " the file again",
        code="upload_damaged",
    )


def write_settings(folder: Path, params: dict[str, Any]) -> None:
    """Replace the settings whole: written beside them, flushed to disk, renamed over them."""
    part = folder / f".{SETTINGS_FILE}.{secrets.token_hex(4)}"
    try:
        with open(part, "w", encoding="utf-8") as out:
            # escaped: text from a form may hold lone surrogates, which UTF-8 cannot write
            json.dump(params, out, ensure_ascii=True)
            out.flush()
            os.fsync(out.fileno())
        os.replace(part, folder / SETTINGS_FILE)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    with contextlib.suppress(OSError):  # the rename itself made durable, where the system can
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def prepare_staged(
    store: Store,
    folder: Path,
    params: dict[str, Any],
    user: str | None = None,
    limits: ZipLimits | None = None,
    recognise: bool = True,
) -> PreparedImport:
    """Read and check a staged upload with its settings ``params`` (nothing is written;
    ``recognise``: see :func:`geo.imports.importer.prepare_import`)."""
    return prepare_import(
        store,
        params["layer"],
        folder / params["name"],
        encoding=params.get("encoding"),
        crs=params.get("crs"),
        member=params.get("member"),
        user=user,
        limits=limits,
        field_map=params.get("field_map") or None,
        value_map=[(f, r, c) for f, r, c in params.get("value_map") or ()] or None,
        recognise=recognise,
    )


def owner(data_dir: Path, upload_id: str) -> str | None:
    """The account that uploaded ``upload_id`` (None when uploaded without accounts)."""
    value = read_settings(staged_folder(data_dir, upload_id), upload_id).get("owner")
    return str(value) if value is not None else None


def discard(data_dir: Path, upload_id: str) -> None:
    """Remove a staged upload; refused (:class:`geo.imports.upload_folder.UploadBusy`) while it is in use, for
    instance being committed."""
    folder = staged_folder(data_dir, upload_id)
    with locked(folder, upload_id, "discard"):
        if not (folder / SETTINGS_FILE).exists():
            raise not_found(upload_id)
        shutil.rmtree(folder, ignore_errors=True)


def _sweep(root: Path, max_age_s: float = MAX_AGE_S) -> None:
    """Remove staged uploads not used for ``max_age_s`` seconds (none that is in use)."""
    now = time.time()
    for folder in root.iterdir():
        if not _ID.match(folder.name):
            continue
        try:
            if now - folder.stat().st_mtime <= max_age_s:
                continue
            with locked(folder, folder.name, "discard"):
                shutil.rmtree(folder, ignore_errors=True)
        except NotFound:  # neither settings nor a lock: what a removal left behind
            shutil.rmtree(folder, ignore_errors=True)
        except (OSError, GridwatchError):
            continue
