"""The batch register of the GeoPackage store: one row per import (``gw_batches``), its archived
source files, its kind."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import shutil
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from geo.errors import Conflict, NotFound, StoreError, write_error
from geo.store import clock
from geo.store.gpkg.audit import GpkgAudit
from geo.store.gpkg.connection import scalar_args
from geo.store.gpkg.tables import GpkgTables, is_grid
from geo.store.gpkg.targets import GpkgTargets
from geo.store.interface.batches import Batch, BatchKind
from layers.base import LayerSpec


class GpkgBatches(GpkgTables, GpkgTargets, GpkgAudit):
    """:class:`geo.store.interface.batches.BatchRegister` on the GeoPackage."""

    def new_batch(self, batch: Batch, sources: list[Path] | None) -> int:
        """Register a batch and archive its source files (inside the current transaction)."""
        with self.transaction():
            cur = self.conn.execute(
                "INSERT INTO gw_batches (layer, source_name, checksum, created_at, user, status, rows_read, added,"
                " updated, unchanged, rejected, encoding, crs, kind, report)"
                " VALUES (?,?,?,?,?,'active',?,0,0,0,?,?,?,?,'{}')",
                (
                    batch.layer,
                    batch.source_name,
                    batch.checksum,
                    batch.created_at,
                    batch.user or self.actor.user,
                    batch.rows_read,
                    batch.rejected,
                    batch.encoding,
                    batch.crs,
                    batch.kind,
                ),
            )
            del cur
            batch_id = int(self.conn.last_insert_rowid())
            self.begin_tx(batch.kind, batch_id)
            if sources:
                folder = self.data_dir / "archive" / f"{batch_id:06d}"
                shutil.rmtree(folder, ignore_errors=True)  # left by an import that did not commit
                self._pending_archives.append(folder)
                try:
                    folder.mkdir(parents=True)
                    root = _common_root(sources)
                    for src in sources:
                        dest = folder / src.relative_to(root)
                        dest.parent.mkdir(parents=True, exist_ok=True)
                        _archive_file(src, dest, self.data_dir)
                except OSError as exc:
                    raise write_error(exc.errno) or StoreError(
                        "无法保存原始文件", f"cannot archive the original file: {exc}", code="archive_failed"
                    ) from exc
                self.conn.execute(
                    "INSERT INTO gw_archive (batch_id, name, path) VALUES (?,?,?)",
                    (batch_id, batch.source_name, str(folder.relative_to(self.data_dir))),
                )
        return batch_id

    def finish_batch(self, batch_id: int, counts: dict[str, int], report: dict[str, Any]) -> None:
        """See :meth:`geo.store.interface.batches.BatchRegister.finish_batch`.

        Updates the ``gw_batches`` row and records the audit entry, named by the batch's kind
        (``import``, ``grid_replace`` or ``targets``).
        """
        with self.transaction():
            self.conn.execute(
                "UPDATE gw_batches SET added=?, updated=?, unchanged=?, rejected=?, rows_read=?, report=?"
                " WHERE id=?",
                (
                    counts.get("added", 0),
                    counts.get("updated", 0),
                    counts.get("unchanged", 0),
                    counts.get("rejected", 0),
                    counts.get("rows_read", 0),
                    json.dumps(report, ensure_ascii=False, default=str),
                    batch_id,
                ),
            )
            row = self.conn.execute("SELECT layer, kind FROM gw_batches WHERE id=?", (batch_id,)).fetchone()
            layer, kind = row if row is not None else (None, None)
            action = {"grid": "grid_replace", "targets": "targets"}.get(str(kind), "import")
            self.record_audit(
                action,
                layer=str(layer),
                batch_id=batch_id,
                counts={k: int(v) for k, v in counts.items()},
                detail=str(report.get("source_name") or "") or None,
            )

    def _batch_from_row(self, row: tuple[Any, ...]) -> Batch:
        # columns as in _batch_cols: the Batch fields up to kind, then report, rolled_back_at
        names = [f.name for f in dataclasses.fields(Batch)][:15]
        *values, report, rolled_back_at = row
        fields = dict(zip(names, values, strict=True))
        if fields["kind"] is None:  # a read-only store of schema 4 or older
            fields["kind"] = kind_before_5(str(fields["layer"]))
        return Batch(**fields, rolled_back_at=rolled_back_at, report=json.loads(report or "{}"))

    _BATCH_COLS = (
        "id, layer, source_name, checksum, created_at, user, status, rows_read, added, updated, unchanged,"
        " rejected, encoding, crs, {kind}, report, rolled_back_at"
    )

    def _batch_cols(self) -> str:
        """The columns :meth:`_batch_from_row` reads (``kind`` NULL in a store that could not be
        upgraded to schema 5, being read-only)."""
        have = {r[1] for r in self.conn.execute("PRAGMA table_info(gw_batches)")}
        return self._BATCH_COLS.format(kind="kind" if "kind" in have else "NULL")

    def batches(self, layer: str | None = None) -> list[Batch]:
        """See :meth:`geo.store.interface.batches.BatchRegister.batches`.

        Reads ``gw_batches``; a read-only store of schema 4 or older has no kinds, so each is
        told from the batch's layer.
        """
        sql = f"SELECT {self._batch_cols()} FROM gw_batches"
        args: tuple[Any, ...] = ()
        if layer:
            sql += " WHERE layer=?"
            args = (layer,)
        return [self._batch_from_row(r) for r in self.conn.execute(sql + " ORDER BY id", args)]

    def batch(self, batch_id: int) -> Batch:
        """See :meth:`geo.store.interface.batches.BatchRegister.batch`.

        Reads ``gw_batches``; :class:`NotFound` (code ``batch_not_found``) for an unknown id.
        """
        row = self.conn.execute(
            f"SELECT {self._batch_cols()} FROM gw_batches WHERE id=?", (batch_id,)
        ).fetchone()
        if row is None:
            raise NotFound(f"批次 {batch_id} 不存在", f"batch {batch_id} not found", code="batch_not_found")
        return self._batch_from_row(row)

    def find_checksum(self, layer: str, checksum: str, keys: np.ndarray | None = None) -> Batch | None:
        """The live batch of ``layer`` that imported a file with ``checksum`` and whose content
        is still the current one, so that importing the file again would change nothing.

        For the unit grid that is the current grid's batch (the newest live one); for
        targets, a live batch none of whose values a later live batch replaced; for a survey
        layer, a live batch none of whose rows a later live batch updated -- and, given the
        file's survey ``keys``, every one of them still held by a row that batch or an
        earlier one wrote (a row the file repeated unchanged may have been updated later).
        """
        rows = self.conn.execute(
            f"SELECT {self._batch_cols()} FROM gw_batches WHERE layer=? AND checksum=? AND status='active'"
            " ORDER BY id DESC",
            (layer, checksum),
        ).fetchall()
        for row in rows:
            batch = self._batch_from_row(row)
            if self._is_current(batch, keys):
                return batch
        return None

    def _is_current(self, batch: Batch, keys: np.ndarray | None) -> bool:
        conn = self.conn
        if batch.kind == "targets":
            return self._targets_current(batch.id)
        if batch.kind == "grid":
            newest = scalar_args(
                conn, "SELECT max(id) FROM gw_batches WHERE layer=? AND status='active'", (batch.layer,)
            )
            return bool(newest == batch.id)
        if not self._has_table(batch.layer):
            return True
        if conn.execute(
            f'SELECT 1 FROM "{batch.layer}_history" h JOIN gw_batches b ON b.id = h.gw_superseded_by'
            " WHERE h.gw_batch=? AND b.status='active' AND b.id<>? LIMIT 1",
            (batch.id, batch.id),
        ).fetchone():
            return False
        if keys is None:
            return True
        wanted = _key_set(keys)
        held = self._key_batches(batch.layer, wanted)
        return len(held) == len(wanted) and all(b <= batch.id for b, _ in held.values())

    def key_batches(self, spec: LayerSpec, keys: np.ndarray) -> dict[str, tuple[int, str | None]]:
        """For each of ``keys`` held by a current row of ``spec``: the batch that last wrote
        that row and the batch's user (None when imported without an account)."""
        if not self.has_layer(spec):
            return {}
        return self._key_batches(spec.name, _key_set(keys))

    def _key_batches(self, table: str, wanted: set[str]) -> dict[str, tuple[int, str | None]]:
        if not wanted:
            return {}
        conn = self.conn
        lo, hi = min(wanted), max(wanted)
        # new surveys usually bring new, consecutive ids: none stored in their range settles it
        if not conn.execute(
            f'SELECT 1 FROM "{table}" WHERE gw_key BETWEEN ? AND ? LIMIT 1', (lo, hi)
        ).fetchone():
            return {}
        conn.execute("CREATE TEMP TABLE IF NOT EXISTS gw_tmp_keys (k TEXT PRIMARY KEY)")
        conn.execute("DELETE FROM gw_tmp_keys")
        conn.executemany("INSERT OR IGNORE INTO gw_tmp_keys VALUES (?)", ((k,) for k in wanted))
        return {
            str(key): (int(batch_id), user)
            for key, batch_id, user in conn.execute(
                f'SELECT t.gw_key, t.gw_batch, b.user FROM "{table}" t JOIN gw_tmp_keys k ON t.gw_key = k.k'
                " LEFT JOIN gw_batches b ON b.id = t.gw_batch"
            )
        }

    def archived_source(self, batch_id: int) -> tuple[str, bytes]:
        """The original upload of a batch: the file itself, or a zip of its files."""
        row = self.conn.execute("SELECT name, path FROM gw_archive WHERE batch_id=?", (batch_id,)).fetchone()
        folder = self.data_dir / str(row[1]) if row is not None else None
        if row is None or folder is None or not folder.is_dir():
            raise NotFound(f"批次 {batch_id} 没有存档文件", f"no archived file for batch {batch_id}")
        files = sorted(p for p in folder.rglob("*") if p.is_file())
        if len(files) == 1 and files[0].name == str(row[0]):
            return str(row[0]), files[0].read_bytes()
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
            for f in files:
                zf.write(f, str(f.relative_to(folder)))
        return str(row[0]), buf.getvalue()

    def mark_rolled_back(self, batch_id: int) -> None:
        """Mark a live batch rolled back; refused (:class:`Conflict`) when it already is."""
        with self.transaction():
            self.conn.execute(
                "UPDATE gw_batches SET status='rolled_back', rolled_back_at=? WHERE id=? AND status='active'",
                (clock.now_iso(), batch_id),
            )
            if not self.conn.changes():
                self.batch(batch_id)  # NotFound for an unknown batch
                raise already_rolled_back(batch_id)
            batch = self.batch(batch_id)
            self.record_audit(
                "rollback",
                layer=batch.layer,
                batch_id=batch_id,
                counts={"added": batch.added, "updated": batch.updated},
                detail=batch.source_name,
            )


def _common_root(paths: list[Path]) -> Path:
    return Path(os.path.commonpath([str(p.parent) for p in paths]))


def _key_set(keys: np.ndarray) -> set[str]:
    """The survey ids among ``keys`` as text (rows without one left out)."""
    return {str(k) for k in keys.tolist() if k is not None and k == k}


def already_rolled_back(batch_id: int) -> Conflict:
    """The refusal to roll back batch ``batch_id`` a second time."""
    return Conflict(
        f"批次 {batch_id} 已回滚", f"batch {batch_id} was already rolled back", code="already_rolled_back"
    )


#: Before schema 5 a batch's kind was not recorded: it was told from the layer the batch was
#: registered under, and targets batches were registered under this name.
_TARGETS_BEFORE_5 = "targets"


def kind_before_5(layer: str) -> BatchKind:
    """The kind of a batch written before schema 5, registered under ``layer``."""
    if layer == _TARGETS_BEFORE_5:
        return "targets"
    return "grid" if is_grid(layer) else "import"


def _archive_file(src: Path, dest: Path, data_dir: Path) -> None:
    """Put ``src`` into the archive as ``dest``: a staged upload (in the data folder's
    ``uploads``, written once by the server and removed after its commit) is linked, not
    copied -- a 100 MB upload's archive then costs nothing; any other file (one named on the
    command line, which its owner may change later) is copied, as is a staged one where a
    link cannot be made (another file system)."""
    staged = (data_dir / "uploads").resolve()
    if staged in src.resolve().parents:
        try:
            os.link(src, dest)
            return
        except OSError:
            pass
    shutil.copyfile(src, dest)
