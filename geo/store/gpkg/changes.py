"""The change log of the GeoPackage store (see :mod:`geo.store.interface.changes`): the table
``gw_changes`` -- one row per write that moved a layer's generation on, with the fids it
touched as little-endian int64 bytes (NULL: the whole layer) -- written in the write's
transaction and read back as :class:`~geo.store.interface.changes.Changes`."""

from __future__ import annotations

from typing import Any

import apsw
import numpy as np

from geo.store.interface.changes import KEPT_STEPS, Changes, encode_fids, merge

#: The log's table (made by the first write that logs a step).
TABLE_SQL = (
    "CREATE TABLE IF NOT EXISTS gw_changes (seq INTEGER PRIMARY KEY AUTOINCREMENT, layer TEXT NOT NULL,"
    " gen_from TEXT NOT NULL, gen_to TEXT NOT NULL, fids BLOB)"
)


def log_step(conn: apsw.Connection, layer: str, before: str, after: str, fids: np.ndarray | None) -> None:
    """Log that ``layer`` went from generation ``before`` to ``after`` touching ``fids`` (None:
    any row may have changed), keeping the last :data:`KEPT_STEPS` steps of the layer."""
    conn.execute(TABLE_SQL)
    conn.execute("CREATE INDEX IF NOT EXISTS gw_changes_layer ON gw_changes (layer, seq)")
    conn.execute(
        "INSERT INTO gw_changes (layer, gen_from, gen_to, fids) VALUES (?, ?, ?, ?)",
        (layer, before, after, None if fids is None else encode_fids(fids)),
    )
    conn.execute(
        "DELETE FROM gw_changes WHERE layer = ?1 AND seq <= (SELECT seq FROM gw_changes WHERE layer = ?1"
        " ORDER BY seq DESC LIMIT 1 OFFSET ?2)",
        (layer, KEPT_STEPS),
    )


def read_changes(conn: apsw.Connection, layer: str, since: str, current: str) -> Changes | None:
    """The :class:`Changes` of ``layer`` from generation ``since`` to ``current`` (read by the
    caller in the same transaction), or None when the log does not cover them."""
    if since == current:
        return merge(since, current, [])
    if not conn.execute("SELECT 1 FROM sqlite_master WHERE name='gw_changes'").fetchone():
        return None
    rows: list[Any] = conn.execute(
        "SELECT gen_from, gen_to, fids FROM gw_changes WHERE layer = ?1 AND seq >="
        " (SELECT min(seq) FROM gw_changes WHERE layer = ?1 AND gen_from = ?2) ORDER BY seq",
        (layer, since),
    ).fetchall()
    return merge(since, current, [(r[0], r[1], r[2]) for r in rows])


def select_fids(conn: apsw.Connection, select: str, fids: np.ndarray) -> list[Any]:
    """The rows of ``select`` (a ``SELECT fid, … FROM "<layer>"`` without WHERE) whose fid is
    one of ``fids`` (sorted, unique), ordered by fid: one range scan when the fids are dense
    (an import's new rows are consecutive), else lookups in chunks."""
    if not len(fids):
        return []
    lo, hi = int(fids[0]), int(fids[-1])
    if hi - lo + 1 <= 2 * len(fids):
        rows = conn.execute(f"{select} WHERE fid BETWEEN ? AND ? ORDER BY fid", (lo, hi)).fetchall()
        if hi - lo + 1 == len(fids):  # every fid of the range
            return rows
        wanted = set(fids.tolist())
        return [r for r in rows if r[0] in wanted]
    out: list[Any] = []
    values = fids.tolist()
    for start in range(0, len(values), 900):
        chunk = values[start : start + 900]
        out += conn.execute(f"{select} WHERE fid IN ({','.join('?' * len(chunk))})", chunk).fetchall()
    out.sort(key=lambda r: r[0])
    return out
