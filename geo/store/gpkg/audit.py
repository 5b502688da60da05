"""The audit trail of the GeoPackage store (``gw_audit``)."""

from __future__ import annotations

import json
from typing import Any

from geo.store import clock
from geo.store.gpkg.connection import GpkgConnection
from geo.store.interface.audit import AuditEntry


class GpkgAudit(GpkgConnection):
    """:class:`geo.store.interface.audit.AuditLog` on the GeoPackage."""

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

        Inserts into ``gw_audit``, stamped now (ISO 8601 UTC); a read-only store of an earlier
        schema, without the table, records nothing.
        """
        if not self._has_accounts():
            return  # a read-only store of an earlier version: nothing can be written anyway
        with self.admin_transaction():
            self.conn.execute(
                "INSERT INTO gw_audit (at, user, client, action, layer, batch_id, counts, detail)"
                " VALUES (?,?,?,?,?,?,?,?)",
                (
                    clock.now_iso(),
                    self.actor.user,
                    self.actor.client,
                    action,
                    layer,
                    batch_id,
                    json.dumps(counts or {}, ensure_ascii=False),
                    detail,
                ),
            )

    def audit_entries(
        self, *, limit: int = 200, offset: int = 0, user: str | None = None, action: str | None = None
    ) -> list[AuditEntry]:
        """See :meth:`geo.store.interface.audit.AuditLog.audit_entries`.

        Reads ``gw_audit``, only ``user``'s and ``action``'s entries when given; empty in a store
        without the table.
        """
        if not self._has_accounts():
            return []
        where, args = [], []
        if user:
            where.append("user=?")
            args.append(user)
        if action:
            where.append("action=?")
            args.append(action)
        sql = "SELECT id, at, user, client, action, layer, batch_id, counts, detail FROM gw_audit"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id DESC LIMIT ? OFFSET ?"
        return [
            AuditEntry(r[0], r[1], r[2], r[3], r[4], r[5], r[6], json.loads(r[7] or "{}"), r[8])
            for r in self.conn.execute(sql, (*args, int(limit), int(offset)))
        ]
