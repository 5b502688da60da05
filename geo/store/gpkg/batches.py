"""The batch register of the GeoPackage store: one row per import (``gw_batches``), its archived
source files, its kind."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from geo.errors import NotFound
from geo.store import clock
from geo.store.gpkg.audit import GpkgAudit
from geo.store.gpkg.connection import scalar_args
from geo.store.gpkg.tables import GpkgTables, is_grid
from geo.store.gpkg.targets import GpkgTargets
from geo.store.interface.batches import (
    Batch,
    BatchKind,
    CurrentBatchRule,
    already_rolled_back,
    archived_file,
    audit_finished,
    audit_rollback,
    batch_of_row,
    finished_values,
    key_set,
)
from layers.base import LayerSpec


class GpkgBatches(GpkgTables, GpkgTargets, GpkgAudit, CurrentBatchRule):
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
                self.conn.execute(
                    "INSERT INTO gw_archive (batch_id, name, path) VALUES (?,?,?)",
                    (batch_id, batch.source_name, self._archive(self.data_dir, batch_id, sources)),
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
                (*finished_values(counts, report), batch_id),
            )
            row = self.conn.execute("SELECT layer, kind FROM gw_batches WHERE id=?", (batch_id,)).fetchone()
            layer, kind = row if row is not None else (None, None)
            audit_finished(self, batch_id, layer, kind, counts, report)

    def _batch_from_row(self, row: tuple[Any, ...]) -> Batch:
        # columns as in _batch_cols: the Batch fields up to kind, then report, rolled_back_at
        batch = batch_of_row(row)
        if batch.kind is None:  # a read-only store of schema 4 or older
            batch.kind = kind_before_5(batch.layer)
        return batch

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

    def _live_with_checksum(self, layer: str, checksum: str) -> list[Batch]:
        rows = self.conn.execute(
            f"SELECT {self._batch_cols()} FROM gw_batches WHERE layer=? AND checksum=? AND status='active'"
            " ORDER BY id DESC",
            (layer, checksum),
        ).fetchall()
        return [self._batch_from_row(r) for r in rows]

    def _newest_live(self, layer: str) -> int | None:
        newest = scalar_args(
            self.conn, "SELECT max(id) FROM gw_batches WHERE layer=? AND status='active'", (layer,)
        )
        return None if newest is None else int(newest)

    def _layer_stored(self, layer: str) -> bool:
        return self._has_table(layer)

    def _replaced_by_live(self, layer: str, batch_id: int) -> bool:
        return bool(
            self.conn.execute(
                f'SELECT 1 FROM "{layer}_history" h JOIN gw_batches b ON b.id = h.gw_superseded_by'
                " WHERE h.gw_batch=? AND b.status='active' AND b.id<>? LIMIT 1",
                (batch_id, batch_id),
            ).fetchone()
        )

    def key_batches(self, spec: LayerSpec, keys: np.ndarray) -> dict[str, tuple[int, str | None]]:
        """For each of ``keys`` held by a current row of ``spec``: the batch that last wrote
        that row and the batch's user (None when imported without an account)."""
        if not self.has_layer(spec):
            return {}
        return self._key_batches(spec.name, key_set(keys))

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
        if row is None:
            return archived_file(batch_id, None, None)
        return archived_file(batch_id, str(row[0]), self.data_dir / str(row[1]))

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
            audit_rollback(self, self.batch(batch_id))


#: Before schema 5 a batch's kind was not recorded: it was told from the layer the batch was
#: registered under, and targets batches were registered under this name.
_TARGETS_BEFORE_5 = "targets"


def kind_before_5(layer: str) -> BatchKind:
    """The kind of a batch written before schema 5, registered under ``layer``."""
    if layer == _TARGETS_BEFORE_5:
        return "targets"
    return "grid" if is_grid(layer) else "import"
