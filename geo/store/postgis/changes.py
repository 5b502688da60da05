"""The change log of the PostGIS store (see :mod:`geo.store.interface.changes`): the table
``gw_changes`` -- one row per write that moved a layer's generation on, with the fids it
touched as little-endian int64 bytes (NULL: the whole layer) -- written in the write's
transaction and read back as :class:`~geo.store.interface.changes.Changes`."""

from __future__ import annotations

from typing import Any

import numpy as np
import psycopg

from geo.store.interface.changes import KEPT_STEPS, Changes, encode_fids, merge

#: The log's table and index (part of the schema made on open).
SCHEMA_SQL = (
    """CREATE TABLE IF NOT EXISTS gw_changes (seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    layer text NOT NULL, gen_from text NOT NULL, gen_to text NOT NULL, fids bytea)""",
    """CREATE INDEX IF NOT EXISTS gw_changes_layer ON gw_changes (layer, seq)""",
)


def log_step(
    conn: psycopg.Connection[Any], layer: str, before: str, after: str, fids: np.ndarray | None
) -> None:
    """Log that ``layer`` went from generation ``before`` to ``after`` touching ``fids`` (None:
    any row may have changed), keeping the last :data:`KEPT_STEPS` steps of the layer.  A
    database made before the log (opened without creating tables) logs nothing: caches of
    its layers then read them in full after a write."""
    if not _has_log(conn):
        return
    conn.execute(
        "INSERT INTO gw_changes (layer, gen_from, gen_to, fids) VALUES (%s, %s, %s, %s)",
        (layer, before, after, None if fids is None else encode_fids(fids)),
    )
    conn.execute(
        "DELETE FROM gw_changes WHERE layer = %(l)s AND seq <= (SELECT seq FROM gw_changes WHERE layer = %(l)s"
        " ORDER BY seq DESC LIMIT 1 OFFSET %(k)s)",
        {"l": layer, "k": KEPT_STEPS},
    )


def read_changes(conn: psycopg.Connection[Any], layer: str, since: str, current: str) -> Changes | None:
    """The :class:`Changes` of ``layer`` from generation ``since`` to ``current`` (read by the
    caller in the same snapshot), or None when the log does not cover them."""
    if since == current:
        return merge(since, current, [])
    if not _has_log(conn):
        return None
    rows = conn.execute(
        "SELECT gen_from, gen_to, fids FROM gw_changes WHERE layer = %(l)s AND seq >="
        " (SELECT min(seq) FROM gw_changes WHERE layer = %(l)s AND gen_from = %(s)s) ORDER BY seq",
        {"l": layer, "s": since},
    ).fetchall()
    return merge(since, current, [(r[0], r[1], r[2]) for r in rows])


def _has_log(conn: psycopg.Connection[Any]) -> bool:
    row = conn.execute("SELECT to_regclass('gw_changes') IS NOT NULL").fetchone()
    return bool(row and row[0])
