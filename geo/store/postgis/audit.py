"""The audit trail of the PostGIS store (``gw_audit``)."""

from __future__ import annotations

from typing import Any

from psycopg.types.json import Jsonb

from geo.store.interface.audit import AuditEntry, audit_entry, audit_insert, audit_select, audit_values
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
                audit_insert("%s"),
                audit_values(self.actor, action, layer, batch_id, counts, detail, Jsonb),
            )

    def audit_entries(
        self, *, limit: int = 200, offset: int = 0, user: str | None = None, action: str | None = None
    ) -> list[AuditEntry]:
        """See :meth:`geo.store.interface.audit.AuditLog.audit_entries`.

        Reads ``gw_audit`` newest first, only ``user``'s and ``action``'s entries when given.
        """
        sql, args = audit_select("%s", user, action, limit, offset)
        return [audit_entry(r, dict(r[7] or {})) for r in self._run(sql, args).fetchall()]
