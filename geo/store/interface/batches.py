"""The batch register: one entry per import of a survey layer, of the unit grid or of targets,
with the kind of batch it is, its counts and its archived source files."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import shutil
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np

from geo.errors import Conflict, NotFound, StoreError, write_error
from geo.store.interface.audit import AuditLog
from layers.base import LayerSpec

#: What a batch wrote: features of a survey layer (``import``), one feature edited or added by
#: hand (``edit``, :mod:`geo.edits.edit`), the unit grid as a new grid version (``grid``) or
#: yearly targets (``targets``).  Recorded with the batch; it decides how the batch is rolled
#: back, who may roll it back and how its audit entry is named.
BatchKind = Literal["import", "edit", "grid", "targets"]


def batch_kind(spec: LayerSpec) -> BatchKind:
    """The kind of a batch importing layer ``spec``: ``"grid"`` for the unit grid, else ``"import"``.

    Targets are no layer: their loader (:func:`geo.imports.batches.load_targets`) registers its
    batches as ``"targets"``.
    """
    return "grid" if spec.is_grid else "import"


@dataclass
class Batch:
    """One import: a file, its checksum, its kind (see :data:`BatchKind`) and what it changed."""

    id: int
    layer: str
    source_name: str
    checksum: str
    created_at: str
    user: str | None
    status: Literal["active", "rolled_back"]
    rows_read: int
    added: int
    updated: int
    unchanged: int
    rejected: int
    encoding: str | None
    crs: str | None
    kind: BatchKind
    rolled_back_at: str | None = None
    report: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The batch as the API and ``--json`` show it (without its report and kind)."""
        out = dict(self.__dict__)
        out.pop("report", None)
        out.pop("kind", None)
        return out


class BatchRegister(Protocol):
    """The batches written, their archived sources and their state."""

    def new_batch(self, batch: Batch, sources: list[Path] | None) -> int:
        """Register a batch (with its kind) and keep a copy of its source files; the write
        transaction under way is recorded as one of the batch's kind."""
        ...

    def finish_batch(self, batch_id: int, counts: dict[str, int], report: dict[str, Any]) -> None:
        """Record the final counts of a batch (``added``, ``updated``, ``unchanged``, ``rejected``,
        ``rows_read``; missing ones 0) and its report, with its audit entry."""
        ...

    def batches(self, layer: str | None = None) -> list[Batch]:
        """Every batch (of ``layer``), rolled back ones too, oldest first."""
        ...

    def batch(self, batch_id: int) -> Batch:
        """Batch ``batch_id``; :class:`geo.errors.NotFound` when there is none."""
        ...

    def find_checksum(self, layer: str, checksum: str, keys: np.ndarray | None = None) -> Batch | None:
        """The live batch that imported a file with ``checksum`` into ``layer`` while its
        content is still current (importing the file again would change nothing); ``keys``,
        the file's survey ids, make the check exact (see the GeoPackage backend)."""
        ...

    def key_batches(self, spec: LayerSpec, keys: np.ndarray) -> dict[str, tuple[int, str | None]]:
        """For each of ``keys`` held by a current row: (batch that last wrote it, that batch's user)."""
        ...

    def archived_source(self, batch_id: int) -> tuple[str, bytes]:
        """The original upload of batch ``batch_id`` as (file name, bytes): the file itself, or a zip
        of its files; :class:`geo.errors.NotFound` when none was kept."""
        ...

    def mark_rolled_back(self, batch_id: int) -> None:
        """Mark a live batch rolled back, with its audit entry; :class:`geo.errors.Conflict` when it
        already is, :class:`geo.errors.NotFound` for an unknown id."""
        ...


def batch_of_row(row: Sequence[Any]) -> Batch:
    """The batch of a ``gw_batches`` row read as ``id, layer, source_name, checksum, created_at,
    user, status, rows_read, added, updated, unchanged, rejected, encoding, crs, kind, report,
    rolled_back_at`` (the report as JSON text, or already decoded)."""
    names = [f.name for f in dataclasses.fields(Batch)][:15]
    *values, report, rolled_back_at = row
    if not isinstance(report, dict):
        report = json.loads(report or "{}")
    return Batch(**dict(zip(names, values, strict=True)), rolled_back_at=rolled_back_at, report=report)


def key_set(keys: np.ndarray) -> set[str]:
    """The survey ids among ``keys`` as text (rows without one left out)."""
    return {str(k) for k in keys.tolist() if k is not None and k == k}


class CurrentBatchRule:
    """:meth:`BatchRegister.find_checksum` on every backend, on the few reads it needs from
    the backend (:meth:`_live_with_checksum`, :meth:`_targets_current`, :meth:`_newest_live`,
    :meth:`_layer_stored`, :meth:`_replaced_by_live`, :meth:`_key_batches`)."""

    def _live_with_checksum(self, layer: str, checksum: str) -> list[Batch]:
        """The live batches of ``layer`` that imported a file with ``checksum``, newest first."""
        raise NotImplementedError

    def _targets_current(self, batch_id: int) -> bool:
        """Whether no later live batch replaced a target value of targets batch ``batch_id``."""
        raise NotImplementedError

    def _newest_live(self, layer: str) -> int | None:
        """The id of the newest live batch of ``layer``."""
        raise NotImplementedError

    def _layer_stored(self, layer: str) -> bool:
        """Whether the store has ``layer``'s tables."""
        raise NotImplementedError

    def _replaced_by_live(self, layer: str, batch_id: int) -> bool:
        """Whether another live batch updated a row batch ``batch_id`` of ``layer`` wrote."""
        raise NotImplementedError

    def _key_batches(self, table: str, wanted: set[str]) -> dict[str, tuple[int, str | None]]:
        """For each of ``wanted`` held by a current row of ``table``: (its batch, the batch's user)."""
        raise NotImplementedError

    def find_checksum(self, layer: str, checksum: str, keys: np.ndarray | None = None) -> Batch | None:
        """The live batch of ``layer`` that imported a file with ``checksum`` and whose content
        is still the current one, so that importing the file again would change nothing.

        For the unit grid that is the current grid's batch (the newest live one); for
        targets, a live batch none of whose values a later live batch replaced; for a survey
        layer, a live batch none of whose rows a later live batch updated -- and, given the
        file's survey ``keys``, every one of them still held by a row that batch or an
        earlier one wrote (a row the file repeated unchanged may have been updated later).
        """
        for batch in self._live_with_checksum(layer, checksum):
            if self._is_current(batch, keys):
                return batch
        return None

    def _is_current(self, batch: Batch, keys: np.ndarray | None) -> bool:
        if batch.kind == "targets":
            return self._targets_current(batch.id)
        if batch.kind == "grid":
            return self._newest_live(batch.layer) == batch.id
        if not self._layer_stored(batch.layer):
            return True
        if self._replaced_by_live(batch.layer, batch.id):
            return False
        if keys is None:
            return True
        wanted = key_set(keys)
        held = self._key_batches(batch.layer, wanted)
        return len(held) == len(wanted) and all(b <= batch.id for b, _ in held.values())


# what both backends do alike around a batch ---------------------------------------------------
def archive_files(folder: Path, sources: list[Path], data: Path) -> None:
    """Put the source files of an upload into ``folder`` (made new), below their common folder
    (see :func:`_archive_file`; ``data`` is the data directory); a failure is a
    :class:`~geo.errors.StoreError` (disk full, no right, ``archive_failed``)."""
    try:
        folder.mkdir(parents=True)
        root = Path(os.path.commonpath([str(p.parent) for p in sources]))
        for src in sources:
            dest = folder / src.relative_to(root)
            dest.parent.mkdir(parents=True, exist_ok=True)
            _archive_file(src, dest, data)
    except OSError as exc:
        raise write_error(exc.errno) or StoreError(
            "无法保存原始文件", f"cannot archive the original file: {exc}", code="archive_failed"
        ) from exc


def _archive_file(src: Path, dest: Path, data: Path) -> None:
    """Put ``src`` into the archive as ``dest``: a staged upload (in the data folder's
    ``uploads``, written once by the server and removed after its commit) is linked, not
    copied -- a 100 MB upload's archive then costs nothing; any other file (one named on the
    command line, which its owner may change later) is copied, as is a staged one where a
    link cannot be made (another file system)."""
    staged = (data / "uploads").resolve()
    if staged in src.resolve().parents:
        try:
            os.link(src, dest)
            return
        except OSError:
            pass
    shutil.copyfile(src, dest)


def archived_file(batch_id: int, name: str | None, folder: Path | None) -> tuple[str, bytes]:
    """What :meth:`BatchRegister.archived_source` returns for the upload ``name`` archived in
    ``folder``: the file itself, or a zip of its files; :class:`~geo.errors.NotFound` when there
    is none."""
    if name is None or folder is None or not folder.is_dir():
        raise NotFound(f"批次 {batch_id} 没有存档文件", f"no archived file for batch {batch_id}")
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    if len(files) == 1 and files[0].name == name:
        return name, files[0].read_bytes()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in files:
            zf.write(f, str(f.relative_to(folder)))
    return name, buf.getvalue()


def finished_values(counts: dict[str, int], report: dict[str, Any]) -> tuple[Any, ...]:
    """``added, updated, unchanged, rejected, rows_read, report`` (as JSON) of a finished batch."""
    return (
        counts.get("added", 0),
        counts.get("updated", 0),
        counts.get("unchanged", 0),
        counts.get("rejected", 0),
        counts.get("rows_read", 0),
        json.dumps(report, ensure_ascii=False, default=str),
    )


def audit_finished(
    log: AuditLog, batch_id: int, layer: Any, kind: Any, counts: dict[str, int], report: dict[str, Any]
) -> None:
    """The audit entry of a finished batch, named by its kind (``import``, ``edit``,
    ``grid_replace``, ``targets``)."""
    log.record_audit(
        {"grid": "grid_replace", "targets": "targets", "edit": "edit"}.get(str(kind), "import"),
        layer=str(layer),
        batch_id=batch_id,
        counts={k: int(v) for k, v in counts.items()},
        detail=str(report.get("source_name") or "") or None,
    )


def audit_rollback(log: AuditLog, batch: Batch) -> None:
    """The audit entry of rolling ``batch`` back."""
    log.record_audit(
        "rollback",
        layer=batch.layer,
        batch_id=batch.id,
        counts={"added": batch.added, "updated": batch.updated},
        detail=batch.source_name,
    )


def already_rolled_back(batch_id: int) -> Conflict:
    """The refusal to roll back batch ``batch_id`` a second time."""
    return Conflict(
        f"批次 {batch_id} 已回滚", f"batch {batch_id} was already rolled back", code="already_rolled_back"
    )
