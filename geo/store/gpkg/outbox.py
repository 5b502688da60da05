"""Webhooks, the outbox and the delivery log of the GeoPackage store (``gw_webhooks``,
``gw_outbox``, ``gw_deliveries``; made on the first write that needs them)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from geo.store.gpkg.connection import GpkgConnection
from geo.store.interface.outbox import OutboxOps, OutboxSql, tables_sql

_SQL = OutboxSql("?")
#: The tables as the GeoPackage makes them.
OUTBOX_TABLES = tables_sql("INTEGER PRIMARY KEY AUTOINCREMENT")


class GpkgOutbox(OutboxOps, GpkgConnection):
    """:class:`geo.store.interface.outbox.WebhookStore` on the GeoPackage."""

    _ox_sql = _SQL

    def _ox_rows(self, sql: str, args: tuple[Any, ...] = ()) -> list[Sequence[Any]]:
        return list(self.conn.execute(sql, args).fetchall())

    def _ox_ready(self) -> bool:
        return bool(self.conn.execute("SELECT 1 FROM sqlite_master WHERE name='gw_outbox'").fetchone())

    @contextmanager
    def _ox_write(self) -> Iterator[None]:
        with self.admin_transaction():
            if not self._ox_ready():
                for stmt in OUTBOX_TABLES:
                    self.conn.execute(stmt)
            yield
