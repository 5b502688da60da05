"""The audit trail of the GeoPackage store (``gw_audit``)."""

from __future__ import annotations

import json
from typing import Any

from geo.store.gpkg.connection import GpkgConnection
from geo.store.interface.audit import AuditEntry, audit_entry, audit_insert, audit_select, audit_values


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
                audit_insert("?"),
                audit_values(self.actor, action, layer, batch_id, counts, detail, _json),
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
        sql, args = audit_select("?", user, action, limit, offset)
        return [audit_entry(r, json.loads(r[7] or "{}")) for r in self.conn.execute(sql, args)]


def _json(counts: dict[str, Any]) -> str:
    return json.dumps(counts, ensure_ascii=False)
