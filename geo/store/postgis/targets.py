"""Yearly targets of the PostGIS store (``gw_targets``, replaced values in ``gw_targets_history``)."""

from __future__ import annotations

import pandas as pd

from geo.store.postgis.connection import PgConnection

_COLS = "code, layer, metric, target, batch_id"


class PgTargets(PgConnection):
    """:class:`geo.store.interface.targets.TargetStore` on PostGIS."""

    def targets(self, tx: int | None = None) -> pd.DataFrame:
        """See :meth:`geo.store.interface.targets.TargetStore.targets`.

        Reads ``gw_targets``; with ``tx`` also ``gw_targets_history``, the values in force then.
        """
        if tx is None:
            rows = self._run(f"SELECT {_COLS} FROM gw_targets").fetchall()
        else:
            rows = self._run(
                f"SELECT {_COLS} FROM gw_targets WHERE coalesce(tx_from, 0) <= %(tx)s UNION ALL"
                f" SELECT {_COLS} FROM gw_targets_history WHERE coalesce(tx_from, 0) <= %(tx)s AND tx_to > %(tx)s",
                {"tx": int(tx)},
            ).fetchall()
        return pd.DataFrame(rows, columns=["code", "layer", "metric", "target", "batch_id"])

    def set_targets(self, rows: pd.DataFrame, batch_id: int) -> int:
        """See :meth:`geo.store.interface.targets.TargetStore.set_targets`.

        Writes ``gw_targets``; the values replaced move to ``gw_targets_history``.  Must be called
        inside :meth:`transaction`.
        """
        self._bump_generation("~targets")  # figures that show targets are of another state now
        tx = self._tx_id()
        values = [
            (str(c), str(la), str(m), float(t))
            for c, la, m, t in zip(rows["code"], rows["layer"], rows["metric"], rows["target"], strict=True)
        ]
        if not values:
            return 0
        keys = [list(v) for v in zip(*[v[:3] for v in values], strict=True)]
        self._run(
            "INSERT INTO gw_targets_history (code, layer, metric, target, batch_id, tx_from, superseded_by, tx_to)"
            " SELECT code, layer, metric, target, batch_id, tx_from, %s, %s FROM gw_targets"
            " WHERE (code, layer, metric) IN (SELECT * FROM unnest(%s::text[], %s::text[], %s::text[]))",
            (batch_id, tx, *keys),
        )
        with self.conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO gw_targets (code, layer, metric, target, batch_id, tx_from) VALUES (%s,%s,%s,%s,%s,%s)"
                " ON CONFLICT (code, layer, metric) DO UPDATE SET target = excluded.target,"
                " batch_id = excluded.batch_id, tx_from = excluded.tx_from",
                [(*v, batch_id, tx) for v in values],
            )
        return len(values)

    def rollback_targets(self, batch_id: int) -> int:
        """See :meth:`geo.store.interface.targets.TargetStore.rollback_targets`.

        The batch's values move to the history; each comes back as the value of the latest
        live batch that set it before (none: no target).
        """
        self._bump_generation("~targets")
        tx = self._tx_id()
        mine = self._run(
            "SELECT code, layer, metric FROM gw_targets WHERE batch_id=%s", (batch_id,)
        ).fetchall()
        self._run(
            "INSERT INTO gw_targets_history (code, layer, metric, target, batch_id, tx_from, superseded_by, tx_to)"
            " SELECT code, layer, metric, target, batch_id, tx_from, %s, %s FROM gw_targets WHERE batch_id=%s",
            (batch_id, tx, batch_id),
        )
        self._run("DELETE FROM gw_targets WHERE batch_id=%s", (batch_id,))
        keys = {(str(r[0]), str(r[1]), str(r[2])) for r in mine}
        earlier: dict[tuple[str, str, str], tuple[float, int]] = {}
        if keys:
            for code, layer, metric, target, bid in self._run(
                "SELECT h.code, h.layer, h.metric, h.target, h.batch_id FROM gw_targets_history h"
                " JOIN gw_batches b ON b.id = h.batch_id WHERE b.status='active' AND b.id<>%s",
                (batch_id,),
            ).fetchall():
                key = (str(code), str(layer), str(metric))
                if key in keys and (key not in earlier or earlier[key][1] < int(bid)):
                    earlier[key] = (float(target), int(bid))
        if earlier:
            with self.conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO gw_targets (code, layer, metric, target, batch_id, tx_from) VALUES (%s,%s,%s,%s,%s,%s)",
                    [(*key, target, bid, tx) for key, (target, bid) in sorted(earlier.items())],
                )
        return len(mine)

    def _targets_current(self, batch_id: int) -> bool:
        """Whether no value of targets batch ``batch_id`` was replaced by a later live batch."""
        return (
            self._run(
                "SELECT 1 FROM gw_targets_history h JOIN gw_batches b ON b.id = h.superseded_by"
                " WHERE h.batch_id=%s AND b.status='active' LIMIT 1",
                (batch_id,),
            ).fetchone()
            is None
        )
