"""Webhooks, the outbox and the delivery log of the PostGIS store (``gw_webhooks``,
``gw_outbox``, ``gw_deliveries``; made with the store's other tables,
:data:`geo.store.postgis.connection.OUTBOX_SQL`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from geo.store.interface.outbox import OutboxOps, OutboxSql
from geo.store.postgis.connection import PgConnection

_SQL = OutboxSql("%s")


class PgOutbox(OutboxOps, PgConnection):
    """:class:`geo.store.interface.outbox.WebhookStore` on PostGIS."""

    _ox_sql = _SQL

    def _ox_rows(self, sql: str, args: tuple[Any, ...] = ()) -> list[Sequence[Any]]:
        cur = self._run(sql, args)
        return list(cur.fetchall()) if cur.description else []

    def _ox_write(self) -> Any:
        return self.admin_transaction()
