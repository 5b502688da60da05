"""Uploads waiting for confirmation: the browser sends a file, sees the import report, and
confirms.  The file and the chosen overrides are kept in ``<data>/uploads/<id>/`` so that
any server process (several gunicorn workers) can commit it; committing reads it again
and writes the batch in one transaction.
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
import time
from pathlib import Path
from typing import Any, BinaryIO

from geo.errors import InputError, NotFound
from geo.importer import ImportReport, commit_import, prepare_import
from geo.sources import ZipLimits
from geo.store import Store

#: Staged uploads older than this are removed.
MAX_AGE_S = 24 * 3600
_ID = re.compile(r"^[A-Za-z0-9_-]{16,64}$")


def uploads_dir(data_dir: Path) -> Path:
    return Path(data_dir) / "uploads"


def _safe_name(name: str) -> str:
    """The file's own name without any directory part or characters a file system rejects."""
    base = re.split(r"[\\\\/]", name or "")[-1].strip().strip(".")
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
) -> str:
    """Save an uploaded file for a later preview and commit; returns the upload id."""
    root = uploads_dir(data_dir)
    root.mkdir(parents=True, exist_ok=True)
    _sweep(root)
    upload_id = secrets.token_urlsafe(18)
    folder = root / upload_id
    folder.mkdir()
    target = folder / _safe_name(filename)
    written = 0
    try:
        with open(target, "wb") as out:
            while chunk := stream.read(1 << 20):
                written += len(chunk)
                if max_bytes is not None and written > max_bytes:
                    raise InputError("上传文件过大", "the upload is too large", code="too_large")
                out.write(chunk)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    params = {
        "layer": layer,
        "encoding": encoding or None,
        "crs": crs or None,
        "member": member or None,
        "name": target.name,
        "created": time.time(),
    }
    (folder / "upload.json").write_text(json.dumps(params, ensure_ascii=False), encoding="utf-8")
    return upload_id


def _load(data_dir: Path, upload_id: str) -> tuple[Path, dict[str, Any]]:
    if not _ID.match(upload_id):
        raise NotFound("上传不存在", f"no upload {upload_id}", code="upload_not_found")
    folder = uploads_dir(data_dir) / upload_id
    meta = folder / "upload.json"
    if not meta.exists():
        raise NotFound(
            "上传不存在或已过期", f"no upload {upload_id} (expired or committed)", code="upload_not_found"
        )
    return folder, json.loads(meta.read_text(encoding="utf-8"))


def preview(
    store: Store, data_dir: Path, upload_id: str, limits: ZipLimits | None = None, **overrides: Any
) -> ImportReport:
    """The import report of a staged upload (nothing is written).  ``overrides`` may change
    ``layer``, ``encoding``, ``crs`` or ``member`` for a re-read; they are kept for the commit."""
    folder, params = _load(data_dir, upload_id)
    changed = {
        k: v for k, v in overrides.items() if k in ("layer", "encoding", "crs", "member") and v is not None
    }
    if changed:
        params.update({k: (v or None) for k, v in changed.items()})
        (folder / "upload.json").write_text(json.dumps(params, ensure_ascii=False), encoding="utf-8")
    prepared = _prepare(store, folder, params, limits=limits)
    return prepared.report


def commit(
    store: Store, data_dir: Path, upload_id: str, user: str | None = None, limits: ZipLimits | None = None
) -> ImportReport:
    """Import a staged upload as one batch and remove it from the staging area."""
    folder, params = _load(data_dir, upload_id)
    prepared = _prepare(store, folder, params, user=user, limits=limits)
    report = commit_import(store, prepared, user=user)
    shutil.rmtree(folder, ignore_errors=True)
    return report


def _prepare(
    store: Store,
    folder: Path,
    params: dict[str, Any],
    user: str | None = None,
    limits: ZipLimits | None = None,
) -> Any:
    return prepare_import(
        store,
        params["layer"],
        folder / params["name"],
        encoding=params["encoding"],
        crs=params["crs"],
        member=params["member"],
        user=user,
        limits=limits,
    )


def discard(data_dir: Path, upload_id: str) -> None:
    folder, _ = _load(data_dir, upload_id)
    shutil.rmtree(folder, ignore_errors=True)


def _sweep(root: Path) -> None:
    now = time.time()
    for folder in root.iterdir():
        try:
            if now - folder.stat().st_mtime > MAX_AGE_S:
                shutil.rmtree(folder, ignore_errors=True)
        except OSError:
            continue
