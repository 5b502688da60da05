"""The audit trail of the PostGIS store (``gw_audit``)."""

from __future__ import annotations

from typing import Any

from psycopg.types.json import Jsonb

from geo.store import clock
from geo.store.interface.audit import AuditEntry
from geo.store.postgis.connection import PgConnection


class PgAudit(PgConnection):
    """:class:`geo.store.interface.audit.AuditLog` on PostGIS."""

    def record_audit(
        self,
        action: str,
        *,
        layer: str | None = None,
        batch_id: int | None = None,
        counts: dict[str, Any] | None = None,
        detail: str | None = None,
    ) -> None:
        """See :meth:`geo.store.interface.audit.AuditLog.record_audit`.

        Inserts into ``gw_audit`` (counts as ``jsonb``), stamped now (ISO 8601 UTC).
        """
        with self.admin_transaction():
            self._run(
                'INSERT INTO gw_audit (at, "user", client, action, layer, batch_id, counts, detail)'
                " VALUES (%s,%s,%s,%s,%s,%s,%s,%s)",
                (
                    clock.now_iso(),
                    self.actor.user,
                    self.actor.client,
                    action,
                    layer,
                    batch_id,
                    Jsonb(counts or {}),
                    detail,
                ),
            )

    def audit_entries(
        self, *, limit: int = 200, offset: int = 0, user: str | None = None, action: str | None = None
    ) -> list[AuditEntry]:
        """See :meth:`geo.store.interface.audit.AuditLog.audit_entries`.

        Reads ``gw_audit`` newest first, only ``user``'s and ``action``'s entries when given.
        """
        where, args = [], []
        if user:
            where.append('"user"=%s')
            args.append(user)
        if action:
            where.append("action=%s")
            args.append(action)
        sql = 'SELECT id, at, "user", client, action, layer, batch_id, counts, detail FROM gw_audit'
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id DESC LIMIT %s OFFSET %s"
        return [
            AuditEntry(r[0], r[1], r[2], r[3], r[4], r[5], r[6], dict(r[7] or {}), r[8])
            for r in self._run(sql, (*args, int(limit), int(offset))).fetchall()
        ]
