"""The batch register of the PostGIS store: one row per import (``gw_batches``) with its kind,
and its archived source files -- kept in the data directory, not in the database."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from geo.errors import NotFound
from geo.store import clock
from geo.store.interface.batches import (
    Batch,
    CurrentBatchRule,
    already_rolled_back,
    archived_file,
    audit_finished,
    audit_rollback,
    batch_of_row,
    finished_values,
    key_set,
)
from geo.store.postgis.audit import PgAudit
from geo.store.postgis.tables import PgTables, q
from geo.store.postgis.targets import PgTargets
from layers.base import LayerSpec

_BATCH_COLS = (
    'id, layer, source_name, checksum, created_at, "user", status, rows_read, added, updated, unchanged,'
    " rejected, encoding, crs, kind, report, rolled_back_at"
)


class PgBatches(PgTables, PgTargets, PgAudit, CurrentBatchRule):
    """:class:`geo.store.interface.batches.BatchRegister` on PostGIS."""

    def new_batch(self, batch: Batch, sources: list[Path] | None) -> int:
        """See :meth:`geo.store.interface.batches.BatchRegister.new_batch`.

        The next id after the highest (writers take turns, see :meth:`transaction`); the
        sources are copied to ``archive/<id>/`` in the data directory, removed again if the
        transaction does not commit.  Inside :meth:`preview_transaction`: the id it would get,
        nothing written (a commit under way may be writing that id).
        """
        if self._previewing:
            row = self._run("SELECT coalesce(max(id), 0) + 1 FROM gw_batches").fetchone()
            assert row is not None
            self.begin_tx(batch.kind, int(row[0]))
            return int(row[0])
        with self.transaction():
            row = self._run(
                'INSERT INTO gw_batches (id, layer, source_name, checksum, created_at, "user", status, rows_read,'
                " added, updated, unchanged, rejected, encoding, crs, kind, report)"
                " SELECT coalesce(max(id), 0) + 1, %s, %s, %s, %s, %s, 'active', %s, 0, 0, 0, %s, %s, %s, %s, '{}'"
                " FROM gw_batches RETURNING id",
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
            ).fetchone()
            assert row is not None
            batch_id = int(row[0])
            self.begin_tx(batch.kind, batch_id)
            if sources:
                self._run(
                    "INSERT INTO gw_archive (batch_id, name, path) VALUES (%s,%s,%s)",
                    (batch_id, batch.source_name, self._archive(self.data, batch_id, sources)),
                )
        return batch_id

    def finish_batch(self, batch_id: int, counts: dict[str, int], report: dict[str, Any]) -> None:
        """See :meth:`geo.store.interface.batches.BatchRegister.finish_batch`.

        Updates the ``gw_batches`` row and records the audit entry, named by the batch's kind
        (``import``, ``grid_replace`` or ``targets``).  Nothing inside :meth:`preview_transaction`.
        """
        if self._previewing:
            return
        with self.transaction():
            row = self._run(
                "UPDATE gw_batches SET added=%s, updated=%s, unchanged=%s, rejected=%s, rows_read=%s, report=%s"
                " WHERE id=%s RETURNING layer, kind",
                (*finished_values(counts, report), batch_id),
            ).fetchone()
            layer, kind = row if row is not None else (None, None)
            audit_finished(self, batch_id, layer, kind, counts, report)

    def _batch_from_row(self, row: tuple[Any, ...]) -> Batch:
        return batch_of_row(row)

    def batches(self, layer: str | None = None) -> list[Batch]:
        """See :meth:`geo.store.interface.batches.BatchRegister.batches`."""
        if layer:
            rows = self._run(f"SELECT {_BATCH_COLS} FROM gw_batches WHERE layer=%s ORDER BY id", (layer,))
        else:
            rows = self._run(f"SELECT {_BATCH_COLS} FROM gw_batches ORDER BY id")
        return [self._batch_from_row(r) for r in rows.fetchall()]

    def batch(self, batch_id: int) -> Batch:
        """See :meth:`geo.store.interface.batches.BatchRegister.batch`.

        :class:`NotFound` (code ``batch_not_found``) for an unknown id.
        """
        row = self._run(f"SELECT {_BATCH_COLS} FROM gw_batches WHERE id=%s", (batch_id,)).fetchone()
        if row is None:
            raise NotFound(f"批次 {batch_id} 不存在", f"batch {batch_id} not found", code="batch_not_found")
        return self._batch_from_row(row)

    def _live_with_checksum(self, layer: str, checksum: str) -> list[Batch]:
        rows = self._run(
            f"SELECT {_BATCH_COLS} FROM gw_batches WHERE layer=%s AND checksum=%s AND status='active' ORDER BY id DESC",
            (layer, checksum),
        ).fetchall()
        return [self._batch_from_row(r) for r in rows]

    def _newest_live(self, layer: str) -> int | None:
        row = self._run(
            "SELECT max(id) FROM gw_batches WHERE layer=%s AND status='active'", (layer,)
        ).fetchone()
        return None if row is None or row[0] is None else int(row[0])

    def _layer_stored(self, layer: str) -> bool:
        return self._run("SELECT 1 FROM gw_layers WHERE name=%s", (layer,)).fetchone() is not None

    def _replaced_by_live(self, layer: str, batch_id: int) -> bool:
        return (
            self._run(
                f"SELECT 1 FROM {q(layer + '_history')} h JOIN gw_batches b ON b.id = h.gw_superseded_by"
                " WHERE h.gw_batch=%s AND b.status='active' AND b.id<>%s LIMIT 1",
                (batch_id, batch_id),
            ).fetchone()
            is not None
        )

    def key_batches(self, spec: LayerSpec, keys: np.ndarray) -> dict[str, tuple[int, str | None]]:
        """See :meth:`geo.store.interface.batches.BatchRegister.key_batches`."""
        if not self.has_layer(spec):
            return {}
        return self._key_batches(spec.name, key_set(keys))

    def _key_batches(self, table: str, wanted: set[str]) -> dict[str, tuple[int, str | None]]:
        if not wanted:
            return {}
        return {
            str(key): (int(batch_id), user)
            for key, batch_id, user in self._run(
                f'SELECT t.gw_key, t.gw_batch, b."user" FROM {q(table)} t'
                " LEFT JOIN gw_batches b ON b.id = t.gw_batch WHERE t.gw_key = ANY(%s)",
                (sorted(wanted),),
            ).fetchall()
        }

    def archived_source(self, batch_id: int) -> tuple[str, bytes]:
        """See :meth:`geo.store.interface.batches.BatchRegister.archived_source`."""
        row = self._run("SELECT name, path FROM gw_archive WHERE batch_id=%s", (batch_id,)).fetchone()
        if row is None:
            return archived_file(batch_id, None, None)
        return archived_file(batch_id, str(row[0]), self.data / str(row[1]))

    def mark_rolled_back(self, batch_id: int) -> None:
        """See :meth:`geo.store.interface.batches.BatchRegister.mark_rolled_back`.

        :class:`Conflict` (``already_rolled_back``) when it already is, :class:`NotFound` for an
        unknown id.
        """
        with self.transaction():
            changed = self._run(
                "UPDATE gw_batches SET status='rolled_back', rolled_back_at=%s WHERE id=%s AND status='active'",
                (clock.now_iso(), batch_id),
            ).rowcount
            if not changed:
                self.batch(batch_id)  # NotFound for an unknown batch
                raise already_rolled_back(batch_id)
            audit_rollback(self, self.batch(batch_id))
