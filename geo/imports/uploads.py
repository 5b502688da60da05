"""Uploads waiting for confirmation: the browser sends a file, sees the import report, and
confirms.  The file and the chosen overrides are kept in ``<data>/uploads/<id>/`` so that
any server process (several gunicorn workers) can commit it; committing reads it again
and writes the batch in one transaction.

Each preview also keeps the accepted features in lon/lat beside the file, so that
:func:`features` can hand a small map what the upload would add without reading the
file a second time.

Every use of a staged upload holds a lock on its folder (``flock`` on ``.lock``, which
works across processes and across the threads of one): receiving it, re-reading it,
committing it and discarding it hold it alone, reading its features shares it.  Whoever
finds it taken gets :class:`UploadBusy` (409) at once -- an upload being committed
cannot be discarded, re-read or committed a second time.  The settings (``upload.json``)
are replaced whole (written beside, flushed, renamed), so a reader never sees half of
them, and a re-read with other settings keeps them only once it succeeded.

Each account may keep :class:`StagingLimits` of staged uploads (bytes in their folders
and their number); uploads not used for ``max_age_s`` are removed.
"""

from __future__ import annotations

import contextlib
import errno
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

import numpy as np
import pyarrow as pa
import pyarrow.feather as feather
import pyproj
import shapely

from geo.errors import (
    Conflict,
    GridwatchError,
    InputError,
    NotFound,
    QuotaExceeded,
    StoreError,
    TooLarge,
    write_error,
)
from geo.figures.versions import load_grid
from geo.imports.importer import ImportReport, PreparedImport, commit_import, prepare_import, preview_grid
from geo.reading import crs as crsmod
from geo.reading.charsets import normalize_encoding
from geo.reading.display import safe_display_name
from geo.reading.gcj02 import wgs84_to_gcj02
from geo.reading.zips import ZipLimits
from geo.store.base import Store
from layers.base import UNASSIGNED

#: Staged uploads not used for this long (seconds) are removed.
MAX_AGE_S = 2 * 3600
#: Bytes each account may keep in staged uploads (their files and what is kept beside them).
QUOTA_BYTES = 1024**3
#: Staged uploads each account may keep at once.
QUOTA_UPLOADS = 20
_ID = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
#: The settings of a staged upload: layer, overrides, file name, owner.
_SETTINGS = "upload.json"
#: Locked (flock) by whoever uses the staged upload; holds the name of what they do.
_LOCK = ".lock"
#: How long a request waits for a staged upload someone else uses before it is refused (seconds).
LOCK_WAIT_S = 1.0
#: Locked while a staging counts what an account holds and reserves its folder.
_QUOTA_LOCK = ".quota.lock"
#: The accepted features of the last preview, in lon/lat (see :func:`features`).
_FEATURES_FILE = "features.arrow"
#: At most this many features are sent to a preview map; more are thinned to an even sample.
PREVIEW_MAX_FEATURES = 5000
#: When more polygons and lines than this are sent, each is sent as a point on its surface.
PREVIEW_MAX_SHAPES = 1000
#: Vertex budget of the simplified polygons and lines sent; over it they are sent as points too.
PREVIEW_MAX_VERTICES = 100_000


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


class UploadBusy(Conflict):
    """The staged upload is in use by another request (being received, read, committed)."""

    code = "upload_busy"


def uploads_dir(data_dir: Path) -> Path:
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
                (folder / _LOCK).touch()
                held.enter_context(_locked(folder, upload_id, "stage"))  # until the file is whole
                _write_settings(folder, params)
            _receive(stream, folder / str(params["name"]), max_bytes, limits.quota_bytes - used, used, limits)
            with _quota_lock(root):  # uploads of the same account arriving at the same moment
                _count, used = _usage(root, owner)
                if used > limits.quota_bytes:
                    raise _over_quota(used, limits)
        except BaseException as exc:
            if created:
                shutil.rmtree(folder, ignore_errors=True)
            if isinstance(exc, OSError):
                raise _staging_failed(exc) from exc
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


def _staging_failed(exc: OSError) -> StoreError:
    return write_error(exc.errno) or StoreError(
        "无法保存上传文件", f"cannot stage the upload: {exc}", code="staging_failed"
    )


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
            params = json.loads((folder / _SETTINGS).read_text(encoding="utf-8"))
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


def _folder(data_dir: Path, upload_id: str) -> Path:
    if not _ID.match(upload_id):
        raise NotFound("上传不存在", f"no upload {upload_id}", code="upload_not_found")
    return uploads_dir(data_dir) / upload_id


def _not_found(upload_id: str) -> NotFound:
    return NotFound(
        "上传不存在或已过期", f"no upload {upload_id} (expired or committed)", code="upload_not_found"
    )


def _settings(folder: Path, upload_id: str) -> dict[str, Any]:
    """The settings of a staged upload, checked; a clear error when they cannot be read."""
    try:
        text = (folder / _SETTINGS).read_text(encoding="utf-8")
    except (FileNotFoundError, NotADirectoryError):
        raise _not_found(upload_id) from None
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


def _damaged(upload_id: str) -> InputError:
    return InputError(
        "暂存的上传已损坏（其设置无法读取），请删除后重新上传",
        f"the staged upload {upload_id} is damaged (its settings cannot be read): discard it and upload"
        " the file again",
        code="upload_damaged",
    )


def _write_settings(folder: Path, params: dict[str, Any]) -> None:
    """Replace the settings whole: written beside them, flushed to disk, renamed over them."""
    part = folder / f".{_SETTINGS}.{secrets.token_hex(4)}"
    try:
        with open(part, "w", encoding="utf-8") as out:
            # escaped: text from a form may hold lone surrogates, which UTF-8 cannot write
            json.dump(params, out, ensure_ascii=True)
            out.flush()
            os.fsync(out.fileno())
        os.replace(part, folder / _SETTINGS)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    with contextlib.suppress(OSError):  # the rename itself made durable, where the system can
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


_DOING = {
    "stage": ("正在接收", "being received"),
    "preview": ("正在读取", "being read"),
    "features": ("正在读取", "being read"),
    "commit": ("正在提交", "being committed"),
    "discard": ("正在删除", "being discarded"),
}


@contextlib.contextmanager
def _locked(folder: Path, upload_id: str, action: str, *, shared: bool = False) -> Iterator[None]:
    """Hold the lock of a staged upload for ``action``; :class:`UploadBusy` at once when
    someone else holds it (a shared hold admits other shared ones)."""
    path = folder / _LOCK
    try:
        fd = _open_lock(path)
    except FileNotFoundError:
        if not (folder / _SETTINGS).exists():
            raise _not_found(upload_id) from None
        try:  # staged before uploads had locks
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise _staging_failed(exc) from exc
    except NotADirectoryError:
        raise _not_found(upload_id) from None
    except OSError as exc:
        raise _staging_failed(exc) from exc
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
                raise _staging_failed(exc) from exc
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


def preview(
    store: Store,
    data_dir: Path,
    upload_id: str,
    limits: ZipLimits | None = None,
    *,
    user: str | None = None,
    admin: bool | None = None,
    valid_from: str | None = None,
    tz: str | None = None,
    **overrides: Any,
) -> ImportReport:
    """The import report of a staged upload (nothing is written).

    ``overrides`` may change ``layer``, ``encoding``, ``crs``, ``member``, ``field_map``
    (column → field), ``value_map`` (``[field, raw, code]`` triples) or ``remember`` for a
    re-read; they are kept for the commit once the re-read succeeded (a re-read that fails
    leaves the upload as it was).  The write is made and rolled back
    (:func:`geo.imports.importer.commit_import` with ``dry_run``), so the added, updated, unchanged
    and rejected figures -- rows that would update features of another account's batch
    included -- are exactly what the commit would do now.  For the unit grid the report
    says which units the file adds, removes and reshapes, the features that would change
    unit and the day its version would be in force from (``valid_from``, default today in
    the time zone ``tz``), checked as the commit checks it.
    """
    folder = _folder(data_dir, upload_id)
    with _locked(folder, upload_id, "preview"):
        params = _settings(folder, upload_id)
        changed = {k: v for k, v in overrides.items() if k in _OVERRIDES and v is not None}
        changed = {
            k: (v or None) if k in ("layer", "encoding", "crs", "member") else v for k, v in changed.items()
        }
        check_mapping_params(changed)
        wanted = {**params, **changed}
        if wanted.get("layer") != params.get("layer"):  # mappings belong to the layer they were made for
            for key in ("field_map", "value_map"):
                if key not in changed:
                    wanted.pop(key, None)
        prepared = _prepare(store, folder, wanted, limits=limits)
        report = prepared.report
        if valid_from is not None and not prepared.spec.is_grid:
            raise InputError(
                "生效日期只适用于单元网格",
                "a valid-from date applies to the unit grid only",
                code="bad_valid_from",
            )
        if report.status != "duplicate":
            commit_import(
                store,
                prepared,
                user=user,
                admin=admin,
                dry_run=True,
                remember=_remember(wanted, admin),
                valid_from=valid_from,
                tz=tz,
            )
        else:
            preview_grid(store, prepared, valid_from, tz)
        try:
            if wanted != params:
                (folder / _FEATURES_FILE).unlink(missing_ok=True)  # never features of other settings
                _write_settings(folder, wanted)
            _keep_features(folder, prepared)
        except OSError as exc:
            raise _staging_failed(exc) from exc
    return report


#: Settings of a staged upload a re-read may change.
_OVERRIDES = ("layer", "encoding", "crs", "member", "field_map", "value_map", "remember")
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


def _remember(params: dict[str, Any], admin: bool | None) -> bool | None:
    """Remember the upload's value mappings: an admin's, unless the form said not to."""
    if admin is False:
        return False
    remember = params.get("remember")
    return None if remember is None else bool(remember)


def commit(
    store: Store,
    data_dir: Path,
    upload_id: str,
    user: str | None = None,
    limits: ZipLimits | None = None,
    *,
    admin: bool | None = None,
    valid_from: str | None = None,
    tz: str | None = None,
) -> ImportReport:
    """Import a staged upload as one batch and remove it from the staging area.

    The upload is locked while it is read and written: a second commit, a re-read or a
    discard meanwhile get :class:`UploadBusy`.  ``admin`` tells whether ``user`` is an
    admin, ``valid_from`` (grid only) the day the grid version is in force from (see
    :func:`geo.imports.importer.commit_import`).

    Raises
    ------
    Conflict
        ``duplicate``: the file is the current content of a live batch (for instance a
        second staging of a file committed meanwhile); nothing was written and the staged
        upload is removed.
    """
    folder = _folder(data_dir, upload_id)
    with _locked(folder, upload_id, "commit"):
        params = _settings(folder, upload_id)
        prepared = _prepare(store, folder, params, user=user, limits=limits)
        report = commit_import(
            store,
            prepared,
            user=user,
            admin=admin,
            remember=_remember(params, admin),
            valid_from=valid_from,
            tz=tz,
        )
        shutil.rmtree(folder, ignore_errors=True)
    if report.status == "duplicate":
        raise Conflict(
            f"文件已导入过（批次 {report.duplicate_of}），未重复写入",
            f"this file is already imported (batch {report.duplicate_of}): nothing was written again",
            code="duplicate",
            details={"duplicate_of": report.duplicate_of},
        )
    return report


def _prepare(
    store: Store,
    folder: Path,
    params: dict[str, Any],
    user: str | None = None,
    limits: ZipLimits | None = None,
) -> PreparedImport:
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
    )


def _keep_features(folder: Path, prepared: PreparedImport) -> pa.Table:
    """Keep the accepted features of ``prepared`` beside the staged file, in lon/lat
    (EPSG:4326; CGCS2000 is taken as WGS84, centimetres apart), with their unit grid."""
    geoms = np.asarray(prepared.rows.geometry, dtype=object)
    if len(geoms):
        t = crsmod.transformer(pyproj.CRS.from_epsg(prepared.srs_epsg), pyproj.CRS.from_epsg(4326))
        geoms = shapely.transform(geoms, lambda xy: np.column_stack(t.transform(xy[:, 0], xy[:, 1])))
    units = [None if u is None else str(u) for u in prepared.rows.units]
    table = pa.table(
        {
            "wkb": pa.array(list(shapely.to_wkb(geoms)), type=pa.binary()),
            "unit": pa.array(units, type=pa.string()),
        }
    )
    part = folder / f".{_FEATURES_FILE}.{secrets.token_hex(4)}"
    feather.write_feather(table, part)
    os.replace(part, folder / _FEATURES_FILE)  # another process never reads half a file
    return table


def features(
    store: Store,
    data_dir: Path,
    upload_id: str,
    *,
    max_features: int = PREVIEW_MAX_FEATURES,
    max_shapes: int = PREVIEW_MAX_SHAPES,
    max_vertices: int = PREVIEW_MAX_VERTICES,
    gcj02: bool = False,
) -> dict[str, Any]:
    """The features a staged upload would add, as GeoJSON for a small preview map.

    Parameters
    ----------
    store : Store
        The store the upload would go into; its unit grid gives ``grid_bbox``.
    data_dir : path
        The data directory holding the staged uploads.
    upload_id : str
        As returned by :func:`stage`.
    max_features : int
        At most this many features are sent; from more, an even sample (every k-th in file
        order) keeps the picture of where they lie.
    max_shapes : int
        When more polygons and lines than this are sent, each is sent as a point on its
        surface; otherwise they are simplified to about 1/4000 of the data's extent.
    max_vertices : int
        When the simplified polygons and lines still hold more vertices than this, they
        are sent as points too.
    gcj02 : bool
        Shift coordinates to GCJ-02, to line up with Gaode/Tencent base maps.

    Returns
    -------
    dict
        A GeoJSON FeatureCollection in lon/lat degrees (EPSG:4326, or GCJ-02 with
        ``gcj02``).  Each feature's properties: ``inside`` (it fell inside a unit grid) and
        ``unit`` (that grid's code, else None).  Members: ``total`` (accepted features),
        ``sent``, ``inside`` and ``outside`` (counts over all accepted features),
        ``as_points`` (polygons and lines sent as points), ``bbox`` of all accepted
        features and ``grid_bbox`` of the store's unit grid, each ``[west, south, east,
        north]`` or None.

    Raises
    ------
    NotFound
        No such staged upload.
    InputError
        The upload cannot be read with its current settings (as for :func:`preview`).
    UploadBusy
        The upload is being received, read again, committed or discarded.
    """
    folder = _folder(data_dir, upload_id)
    with _locked(folder, upload_id, "features", shared=True):
        params = _settings(folder, upload_id)
        try:
            table = feather.read_table(folder / _FEATURES_FILE)
        except FileNotFoundError:  # staged before features were kept, or they could not be
            table = _keep_features(folder, _prepare(store, folder, params))
    geoms = shapely.from_wkb(table.column("wkb").to_numpy(zero_copy_only=False))
    units = np.asarray(table.column("unit").to_pylist(), dtype=object)
    inside = np.asarray(units != UNASSIGNED, dtype=bool) & np.asarray([u is not None for u in units])
    total = len(geoms)
    if total > max_features:
        idx = (np.arange(max_features, dtype=np.int64) * total) // max_features
    else:
        idx = np.arange(total, dtype=np.int64)
    bbox = _bounds(geoms)
    shown = np.array(geoms[idx], dtype=object)
    shapes = ~np.isin(shapely.get_type_id(shown), (0, 4))  # anything but (multi)points
    as_points = bool(shapes.sum() > max_shapes)
    if shapes.any() and not as_points and bbox is not None:
        tolerance = max(bbox[2] - bbox[0], bbox[3] - bbox[1]) / 4000
        simplified = shapely.simplify(shown[shapes], tolerance, preserve_topology=True)
        as_points = int(shapely.get_num_coordinates(simplified).sum()) > max_vertices
        shown[shapes] = simplified
    if as_points:
        shown[shapes] = shapely.point_on_surface(shown[shapes])
    if gcj02 and len(shown):
        shown = shapely.transform(shown, _to_gcj02)
    if len(shown):
        shown = shapely.transform(shown, lambda xy: np.round(xy, 7))  # about a centimetre
    out = [
        {
            "type": "Feature",
            "geometry": json.loads(text),
            "properties": {"inside": bool(ins), "unit": unit if ins else None},
        }
        for text, ins, unit in zip(
            shapely.to_geojson(shown).tolist(), inside[idx].tolist(), units[idx].tolist(), strict=True
        )
    ]
    n_inside = int(inside.sum())
    return {
        "type": "FeatureCollection",
        "features": out,
        "total": total,
        "sent": len(out),
        "inside": n_inside,
        "outside": total - n_inside,
        "as_points": as_points,
        "bbox": _shift_box(bbox, gcj02),
        "grid_bbox": _shift_box(_grid_bounds(store), gcj02),
    }


def _bounds(geoms: np.ndarray) -> list[float] | None:
    if len(geoms) == 0:
        return None
    box = shapely.total_bounds(geoms)
    return [float(v) for v in box] if np.isfinite(box).all() else None


def _grid_bounds(store: Store) -> list[float] | None:
    """Lon/lat bounds of the store's unit grid, None without one."""
    grid = load_grid(store)
    srs = store.srs_epsg()
    if grid is None or len(grid) == 0 or srs is None:
        return None
    t = crsmod.transformer(pyproj.CRS.from_epsg(srs), pyproj.CRS.from_epsg(4326))
    return [float(v) for v in t.transform_bounds(*shapely.total_bounds(grid.cells))]


def _to_gcj02(xy: np.ndarray) -> np.ndarray:
    return np.column_stack(wgs84_to_gcj02(xy[:, 0], xy[:, 1]))


def _shift_box(box: list[float] | None, gcj02: bool) -> list[float] | None:
    """The box rounded to about a centimetre; with ``gcj02`` both corners are shifted to
    GCJ-02 (the offset varies by metres across a city)."""
    if box is None:
        return None
    corners = np.array([[box[0], box[1]], [box[2], box[3]]], dtype=float)
    if gcj02:
        corners = _to_gcj02(corners)
    return [round(float(v), 7) for v in corners.ravel()]


def owner(data_dir: Path, upload_id: str) -> str | None:
    """The account that uploaded ``upload_id`` (None when uploaded without accounts)."""
    value = _settings(_folder(data_dir, upload_id), upload_id).get("owner")
    return str(value) if value is not None else None


def discard(data_dir: Path, upload_id: str) -> None:
    """Remove a staged upload; refused (:class:`UploadBusy`) while it is in use, for
    instance being committed."""
    folder = _folder(data_dir, upload_id)
    with _locked(folder, upload_id, "discard"):
        if not (folder / _SETTINGS).exists():
            raise _not_found(upload_id)
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
            with _locked(folder, folder.name, "discard"):
                shutil.rmtree(folder, ignore_errors=True)
        except NotFound:  # neither settings nor a lock: what a removal left behind
            shutil.rmtree(folder, ignore_errors=True)
        except (OSError, GridwatchError):
            continue
