"""Yearly targets of the GeoPackage store (``gw_targets``, replaced values in
``gw_targets_history``)."""

from __future__ import annotations

import pandas as pd

from geo.store.gpkg.connection import GpkgConnection


class GpkgTargets(GpkgConnection):
    """:class:`geo.store.interface.targets.TargetStore` on the GeoPackage."""

    def targets(self, tx: int | None = None) -> pd.DataFrame:
        """See :meth:`geo.store.interface.targets.TargetStore.targets`.

        Reads ``gw_targets``; with ``tx`` also ``gw_targets_history``, the values in force at that
        transaction.
        """
        cols = "code, layer, metric, target, batch_id"
        if tx is None:
            rows = self.conn.execute(f"SELECT {cols} FROM gw_targets").fetchall()
        else:
            rows = self.conn.execute(
                f"SELECT {cols} FROM gw_targets WHERE coalesce(tx_from, 0) <= ?1 UNION ALL"
                f" SELECT {cols} FROM gw_targets_history WHERE coalesce(tx_from, 0) <= ?1 AND tx_to > ?1",
                (tx,),
            ).fetchall()
        return pd.DataFrame(rows, columns=["code", "layer", "metric", "target", "batch_id"])

    def set_targets(self, rows: pd.DataFrame, batch_id: int) -> int:
        """See :meth:`geo.store.interface.targets.TargetStore.set_targets`.

        Writes ``gw_targets``; the values replaced move to ``gw_targets_history``.
        """
        conn = self.conn
        self._bump_generation("~targets")  # figures that show targets are of another state now
        tx = self._tx_id()
        old = (
            conn.execute(
                "SELECT code, layer, metric, target, batch_id, tx_from FROM gw_targets WHERE (code, layer, metric) IN"
                " (SELECT column1, column2, column3 FROM (VALUES "
                + ",".join("(?,?,?)" for _ in range(len(rows)))
                + "))",
                [v for r in rows.itertuples(index=False) for v in (r.code, r.layer, r.metric)],
            ).fetchall()
            if len(rows)
            else []
        )
        conn.executemany(
            "INSERT INTO gw_targets_history (code, layer, metric, target, batch_id, tx_from, superseded_by, tx_to)"
            " VALUES (?,?,?,?,?,?,?,?)",
            [(*o, batch_id, tx) for o in old],
        )
        conn.executemany(
            "INSERT OR REPLACE INTO gw_targets (code, layer, metric, target, batch_id, tx_from) VALUES (?,?,?,?,?,?)",
            [
                (str(c), str(la), str(m), float(t), batch_id, tx)
                for c, la, m, t in zip(
                    rows["code"], rows["layer"], rows["metric"], rows["target"], strict=True
                )
            ],
        )
        return len(rows)

    def rollback_targets(self, batch_id: int) -> int:
        """Take the batch's values out; each comes back as the value of the latest live batch that
        set it before (none: no target).  Nothing is deleted: the values move to the history."""
        conn = self.conn
        self._bump_generation("~targets")
        tx = self._tx_id()
        mine = conn.execute(
            "SELECT code, layer, metric, target, batch_id, tx_from FROM gw_targets WHERE batch_id=?",
            (batch_id,),
        ).fetchall()
        conn.executemany(
            "INSERT INTO gw_targets_history (code, layer, metric, target, batch_id, tx_from, superseded_by, tx_to)"
            " VALUES (?,?,?,?,?,?,?,?)",
            [(*o, batch_id, tx) for o in mine],
        )
        conn.execute("DELETE FROM gw_targets WHERE batch_id=?", (batch_id,))
        keys = {(str(r[0]), str(r[1]), str(r[2])) for r in mine}
        earlier: dict[tuple[str, str, str], tuple[float, int]] = {}
        if keys:
            for code, layer, metric, target, bid in conn.execute(
                "SELECT h.code, h.layer, h.metric, h.target, h.batch_id FROM gw_targets_history h"
                " JOIN gw_batches b ON b.id = h.batch_id WHERE b.status='active' AND b.id<>?",
                (batch_id,),
            ):
                key = (str(code), str(layer), str(metric))
                if key in keys and (key not in earlier or earlier[key][1] < int(bid)):
                    earlier[key] = (float(target), int(bid))
        conn.executemany(
            "INSERT INTO gw_targets (code, layer, metric, target, batch_id, tx_from) VALUES (?,?,?,?,?,?)",
            [(*key, target, bid, tx) for key, (target, bid) in sorted(earlier.items())],
        )
        return len(mine)

    def _targets_current(self, batch_id: int) -> bool:
        """Whether no value of targets batch ``batch_id`` was replaced by a later live batch."""
        return not self.conn.execute(
            "SELECT 1 FROM gw_targets_history h JOIN gw_batches b ON b.id = h.superseded_by"
            " WHERE h.batch_id=? AND b.status='active' LIMIT 1",
            (batch_id,),
        ).fetchone()
