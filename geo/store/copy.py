"""Copying a whole store into an empty one, of the same backend or another
(``gridwatch store copy SRC DST``), and checking the copy.

Everything the source holds goes: every layer's current rows and retired row versions (fids and
transaction ids kept), grid versions and their stored assignments, batches (ids kept) with the
references to their archived originals -- the archived files themselves are copied into the
target's data directory when it is another one, as are the photo files (each checked against its
SHA-256 once copied) --, targets and their history, value maps,
accounts and the areas they are bound to, API tokens, failed logins, the audit trail, the store CRS and the write log, revision
and layer generations, so that figures "as known at" a moment and every id are the same in the
copy.  The backends move their raw tables in one neutral form, batch by batch
(:mod:`geo.store.interface.transfer`), so a large store is never held in memory whole.

While the copy runs the source's writers are held back (:meth:`~geo.store.interface.transfer.
StoreTransfer.hold_writes`): the copy and its check see one state.  The target is written in one
transaction, marked unusable in it; after the rows of every table are counted again on both
sides and ``verify`` (the figures compared, see :func:`geo.figures.compare.compare_figures`)
finds nothing different, the mark is taken off.  Otherwise it stays, saying what differed, and
:func:`geo.store.backends.open_store` refuses the target until it is copied again.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from geo.errors import InputError, StoreError
from geo.store.backends import Location, gpkg_path, open_store
from geo.store.base import Store
from geo.store.credentials import shown_location
from geo.store.interface.photos import photo_file

__all__ = ["UNVERIFIED", "CopyResult", "Verify", "copy_store"]

#: the mark a target carries until its copy is checked
UNVERIFIED = (
    "复制未完成或未经核对，请清空目标后重新复制 / the copy into this store did not finish or was not checked:"
    " empty it and copy again"
)

#: compares the figures of two stores holding the same data; returns what differs (zh / en lines)
Verify = Callable[[Store, Store], list[str]]


@dataclass
class CopyResult:
    """What a copy moved: rows per neutral table, archived batches copied, where from and to."""

    source: str
    target: str
    rows: dict[str, int] = field(default_factory=dict)
    archives: int = 0
    #: archived batches whose folder the source's data directory does not hold
    archives_missing: list[int] = field(default_factory=list)
    #: photo files (images and thumbnails) there were to copy, each checked by its SHA-256
    photo_files: int = 0

    def summary(self) -> str:
        """A few lines (Chinese / English) saying what was copied."""
        features = sum(
            v for k, v in self.rows.items() if _is_layer(k) and not k.endswith(("_history", "_assign"))
        )
        retired = sum(v for k, v in self.rows.items() if k.endswith("_history"))
        got = self.rows.get
        lines = [
            f"已复制 / copied: {self.source} → {self.target}",
            f"  图层 layers {got('layers', 0)}，要素 features {features}，历史版本 retired versions {retired}",
            f"  批次 batches {got('batches', 0)}，写入记录 transactions {got('tx', 0)}，"
            f"网格版本 grid versions {got('grid_versions', 0)}",
            f"  目标 targets {got('targets', 0)}，值对应 value maps {got('value_maps', 0)}，"
            f"用户 accounts {got('users', 0)}，令牌 tokens {got('tokens', 0)}，操作日志 audit {got('audit', 0)}",
            f"  存档原始文件 archived sources {self.archives}",
            f"  照片 photos {got('photos', 0)}，照片文件 photo files {self.photo_files}（已逐个校验 each checked）",
            "  核对通过：各表行数与各级统计（当前及历史时点）一致 / checked: row counts and the figures at every"
            " level (now and as of earlier moments) are the same",
        ]
        if self.archives_missing:
            ids = ", ".join(str(i) for i in self.archives_missing)
            lines.append(f"  源数据目录中缺少存档 / archives missing in the source's data directory: {ids}")
        return "\n".join(lines)


def _is_layer(name: str) -> bool:
    from geo.store.interface.transfer import FIXED

    return name not in FIXED


def data_for(location: str, explicit: str | Path | None, default: Path) -> Path:
    """The data directory of a store given as ``location``: ``explicit``, else the folder of a
    GeoPackage, else ``default`` (the ``--data`` setting)."""
    if explicit:
        return Path(explicit)
    path = gpkg_path(location)
    return path.parent if path is not None else default


def copy_store(
    source: Location,
    target: Location,
    verify: Verify | None = None,
    during: Callable[[], Any] | None = None,
) -> CopyResult:
    """Copy the store at ``source`` into the empty store at ``target`` (see the module docstring).

    Parameters
    ----------
    source, target : Location
        Each store with its data directory.
    verify : callable, optional
        Called with (source, target) while the source is still held; the differences it
        returns make the copy fail.
    during : callable, optional
        Called while the source is held, after the rows are written (for tests).

    Raises
    ------
    InputError
        The target is the source, or is not empty (``store_not_empty``), or the source holds
        layers no registered layer declares (``unknown_layers``).
    StoreError
        The copy differs from the source (``copy_mismatch``): the target stays marked unusable.
    """
    if _same(source, target):
        raise InputError(
            "源存储与目标存储相同", "the source and the target are the same store", code="same_store"
        )
    src = open_store(source.store, data=source.data)
    try:
        dst = open_store(target.store, data=target.data, usable_only=False)
        try:
            return _copy(src, dst, source, target, verify, during)
        finally:
            dst.close()
    finally:
        src.close()


def _same(a: Location, b: Location) -> bool:
    pa_, pb = gpkg_path(a.store), gpkg_path(b.store)
    if pa_ is not None and pb is not None:
        return pa_.resolve() == pb.resolve()
    return pa_ is None and pb is None and a.store.rstrip("/") == b.store.rstrip("/")


def _copy(
    src: Any,
    dst: Any,
    source: Location,
    target: Location,
    verify: Verify | None,
    during: Callable[[], Any] | None,
) -> CopyResult:
    shown = shown_location(target.store)
    if not dst.is_empty():
        raise InputError(
            f"目标存储不是空的: {shown}（只能复制到空的存储）",
            f"the target store is not empty: {shown} (a store can only be copied into an empty one)",
            code="store_not_empty",
        )
    unknown = src.unknown_layers()
    if unknown:
        names = ", ".join(unknown)
        raise InputError(
            f"源存储含有本系统未登记的图层: {names}（复制会遗漏它们；请先装好声明这些图层的模块，或用 GIS 软件另行导出）",
            f"the source store holds layers no registered layer declares: {names} (a copy would leave them"
            " behind; install the modules that declare them first, or export them with a GIS tool)",
            code="unknown_layers",
        )
    result = CopyResult(shown_location(source.store), shown)
    archived: list[tuple[int, str]] = []
    photos: set[tuple[str, str]] = set()

    def tapped(batches: Iterable[tuple[str, pa.RecordBatch]]) -> Iterator[tuple[str, pa.RecordBatch]]:
        for name, batch in batches:
            if name == "archive":
                archived.extend(
                    zip(batch.column("batch_id").to_pylist(), batch.column("path").to_pylist(), strict=True)
                )
            if name == "photos":
                photos.update(
                    zip(batch.column("sha256").to_pylist(), batch.column("mime").to_pylist(), strict=True)
                )
            yield name, batch

    with src.hold_writes():
        before = src.table_counts()
        result.rows = dst.load_tables(tapped(src.dump_tables()), UNVERIFIED)
        result.archives, result.archives_missing = _copy_archives(archived, source.data, target.data)
        result.photo_files = _copy_photos(sorted(photos), source.data, target.data)
        if during is not None:
            during()
        differences = _count_differences(before, dst.table_counts(), result.rows)
        if verify is not None and not differences:
            differences = verify(src, dst)
    if differences:
        reason = "；".join(differences)
        dst.set_unusable(
            f"复制后核对不一致，请清空后重新复制 / the copy differs from its source, empty it and copy again: {reason}"
        )
        raise StoreError(
            f"复制后核对不一致，目标已标记为不可用，请清空后重新复制: {reason}",
            f"the copy differs from its source; the target is marked unusable, empty it and copy again: {reason}",
            code="copy_mismatch",
        )
    dst.set_unusable(None)
    return result


def _count_differences(before: dict[str, int], after: dict[str, int], written: dict[str, int]) -> list[str]:
    out = []
    for name in sorted(set(before) | set(after) | set(written)):
        a, b, w = before.get(name, 0), after.get(name, 0), written.get(name, 0)
        if not a == b == w:
            out.append(f"{name}: 源 source {a}，复制 copied {w}，目标 target {b}")
    return out


def _copy_archives(archived: list[tuple[int, str]], src: Path, dst: Path) -> tuple[int, list[int]]:
    """Copy each archived batch's folder from ``src`` to ``dst`` (nothing when they are one
    folder); returns how many were there to copy and the batches whose folder is missing."""
    copied, missing = 0, []
    same = src.resolve() == dst.resolve()
    for batch_id, relative in archived:
        folder = src / str(relative or "")
        if not relative or not folder.is_dir():
            missing.append(int(batch_id))
            continue
        copied += 1
        if same:
            continue
        into = dst / str(relative)
        if not into.resolve().is_relative_to(dst.resolve()):
            raise StoreError(
                f"批次 {batch_id} 的存档路径无效: {relative}",
                f"batch {batch_id} has an archive path outside the data directory: {relative}",
            )
        try:
            shutil.copytree(folder, into, dirs_exist_ok=True)
        except OSError as exc:
            raise StoreError(
                f"无法复制存档文件: {into}",
                f"cannot copy the archived files to {into}: {exc}",
                code="archive_failed",
            ) from exc
    return copied, missing


def _copy_photos(photos: list[tuple[str, str]], src: Path, dst: Path) -> int:
    """Copy the image and thumbnail of each photo (sha256, mime) from ``src`` to ``dst`` (each
    through a temporary file, then renamed) and check each copied image against its SHA-256;
    returns how many files there were.

    Raises
    ------
    StoreError
        A photo file is missing in the source (``photo_missing``), or cannot be copied, or the
        copy is not what its name says (``photo_copy_failed``).
    """
    same = src.resolve() == dst.resolve()
    files = 0
    for sha256, mime in photos:
        for thumb in (False, True):
            path = photo_file(src, sha256, mime, thumb)
            if not path.is_file():
                raise StoreError(
                    f"源数据目录中缺少照片文件: {path}",
                    f"a photo file is missing in the source's data directory: {path}",
                    code="photo_missing",
                )
            files += 1
            into = photo_file(dst, sha256, mime, thumb)
            if not same:
                try:
                    into.parent.mkdir(parents=True, exist_ok=True)
                    part = into.with_name(into.name + ".part")
                    shutil.copyfile(path, part)
                    os.replace(part, into)
                except OSError as exc:
                    raise StoreError(
                        f"无法复制照片文件: {into}",
                        f"cannot copy the photo file to {into}: {exc}",
                        code="photo_copy_failed",
                    ) from exc
            if not thumb and hashlib.sha256(into.read_bytes()).hexdigest() != sha256:
                raise StoreError(
                    f"照片文件内容与其校验值不符: {into}",
                    f"a photo file does not match its SHA-256: {into}",
                    code="photo_copy_failed",
                )
    return files
