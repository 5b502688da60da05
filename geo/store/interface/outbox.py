"""Webhooks and their outbox: where notifications are set up, queued and logged.

``gw_webhooks`` holds the webhooks admins set (an area code or an account, a format, the URL and
an optional signing secret); ``gw_outbox`` one row per event to send to one webhook, written in
the transaction of the write that causes it; ``gw_deliveries`` one row per attempt.  A sender
*claims* a due row (an ``UPDATE … RETURNING`` that only one claimant wins, with a lease after
which an abandoned claim may be taken again), sends it and records the attempt, so several
server processes on one store send each row once.  The tables are the same on every backend;
the statements are written once here with the backend's parameter mark.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol


def moment(at: datetime | None = None) -> str:
    """``at`` (default now) as the outbox's UTC text stamp, which sorts as time does."""
    return (at or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def later(seconds: float, at: datetime | None = None) -> str:
    """The stamp ``seconds`` after ``at`` (default now)."""
    return moment((at or datetime.now(UTC)) + timedelta(seconds=seconds))


@dataclass
class Webhook:
    """A webhook: for an area (``target_kind`` ``"area"``, ``target`` a code) or an account."""

    id: int
    target_kind: str
    target: str
    format: str
    url: str
    secret: str | None
    created_at: str
    created_by: str | None


@dataclass
class OutboxRow:
    """One event waiting (or done) for one webhook; ``payload`` is the event as JSON text."""

    id: int
    webhook_id: int
    event: str
    payload: str
    created_at: str
    status: str  # pending | sent | failed
    attempts: int
    next_at: str


@dataclass
class Delivery:
    """One attempt to send an outbox row: when, its outcome (``sent``, ``retry``, ``failed``),
    the HTTP status (None when no answer came) and the error, secrets masked."""

    id: int
    outbox_id: int
    webhook_id: int
    event: str
    at: str
    attempt: int
    outcome: str
    http_status: int | None
    error: str | None


class WebhookStore(Protocol):
    """Webhooks, the outbox and the delivery log (writes inside the current transaction, if any)."""

    def add_webhook(
        self, target_kind: str, target: str, fmt: str, url: str, secret: str | None, created_by: str | None
    ) -> Webhook:
        """Store a webhook (checked by the caller) and return it with its id."""
        ...

    def webhooks(self) -> list[Webhook]:
        """The webhooks not removed, oldest first."""
        ...

    def webhook(self, webhook_id: int) -> Webhook | None:
        """One webhook not removed, or None."""
        ...

    def remove_webhook(self, webhook_id: int) -> bool:
        """Remove a webhook (its pending rows are given up); False when there was none."""
        ...

    def queue_outbox(self, webhook_id: int, event: str, payload: str) -> int:
        """Queue ``event`` for a webhook, due now; the row's id."""
        ...

    def claim_outbox(self, worker: str, lease_seconds: float, limit: int = 20) -> list[OutboxRow]:
        """Claim up to ``limit`` due pending rows for ``worker`` (each claimed by one worker only)."""
        ...

    def finish_outbox(
        self,
        row: OutboxRow,
        outcome: str,
        http_status: int | None,
        error: str | None,
        retry_in: float | None,
    ) -> None:
        """Record an attempt at ``row`` and settle it: sent, failed, or pending again in ``retry_in`` s."""
        ...

    def outbox_rows(self, webhook_id: int | None = None) -> list[OutboxRow]:
        """The outbox rows (of one webhook), oldest first."""
        ...

    def deliveries(self, webhook_id: int, limit: int = 100) -> list[Delivery]:
        """The attempts of one webhook, newest first."""
        ...


# the tables and statements, the same on every backend ----------------------------------------

#: The tables (``{id}``: the backend's auto-numbered key column type).
TABLES_SQL = (
    """CREATE TABLE IF NOT EXISTS gw_webhooks (id {id}, target_kind TEXT NOT NULL, target TEXT NOT NULL,
    format TEXT NOT NULL, url TEXT NOT NULL, secret TEXT, created_at TEXT NOT NULL, created_by TEXT,
    removed_at TEXT)""",
    """CREATE TABLE IF NOT EXISTS gw_outbox (id {id}, webhook_id BIGINT NOT NULL, event TEXT NOT NULL,
    payload TEXT NOT NULL, created_at TEXT NOT NULL, status TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
    next_at TEXT NOT NULL, claimed_by TEXT, claimed_until TEXT)""",
    """CREATE INDEX IF NOT EXISTS gw_outbox_due ON gw_outbox (status, next_at)""",
    """CREATE TABLE IF NOT EXISTS gw_deliveries (id {id}, outbox_id BIGINT NOT NULL, webhook_id BIGINT NOT NULL,
    event TEXT NOT NULL, at TEXT NOT NULL, attempt INTEGER NOT NULL, outcome TEXT NOT NULL, http_status INTEGER,
    error TEXT)""",
    """CREATE INDEX IF NOT EXISTS gw_deliveries_webhook ON gw_deliveries (webhook_id, id)""",
)

_HOOK = "id, target_kind, target, format, url, secret, created_at, created_by"
_ROW = "id, webhook_id, event, payload, created_at, status, attempts, next_at"


def tables_sql(id_type: str) -> tuple[str, ...]:
    """The ``CREATE`` statements with the backend's key column (``INTEGER PRIMARY KEY
    AUTOINCREMENT``, ``bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY``)."""
    return tuple(s.replace("{id}", id_type) for s in TABLES_SQL)


class OutboxSql:
    """The statements of :class:`WebhookStore` with the parameter mark ``mark`` (``?``, ``%s``)."""

    def __init__(self, mark: str):
        m = mark
        self.add_webhook = (
            "INSERT INTO gw_webhooks (target_kind, target, format, url, secret, created_at, created_by)"
            f" VALUES ({m}, {m}, {m}, {m}, {m}, {m}, {m}) RETURNING {_HOOK}"
        )
        self.webhooks = f"SELECT {_HOOK} FROM gw_webhooks WHERE removed_at IS NULL ORDER BY id"
        self.webhook = f"SELECT {_HOOK} FROM gw_webhooks WHERE removed_at IS NULL AND id={m}"
        self.remove = (
            f"UPDATE gw_webhooks SET removed_at={m} WHERE id={m} AND removed_at IS NULL RETURNING id"
        )
        self.give_up = f"UPDATE gw_outbox SET status='failed' WHERE webhook_id={m} AND status='pending'"
        self.queue = (
            "INSERT INTO gw_outbox (webhook_id, event, payload, created_at, status, attempts, next_at)"
            f" VALUES ({m}, {m}, {m}, {m}, 'pending', 0, {m}) RETURNING id"
        )
        self.due = (
            f"SELECT id FROM gw_outbox WHERE status='pending' AND next_at<={m}"
            f" AND (claimed_until IS NULL OR claimed_until<{m}) ORDER BY id LIMIT {m}"
        )
        self.claim = (
            f"UPDATE gw_outbox SET claimed_by={m}, claimed_until={m} WHERE id={m} AND status='pending'"
            f" AND (claimed_until IS NULL OR claimed_until<{m}) RETURNING {_ROW}"
        )
        self.finish = (
            f"UPDATE gw_outbox SET status={m}, attempts=attempts+1, next_at={m}, claimed_by=NULL,"
            f" claimed_until=NULL WHERE id={m}"
        )
        self.log = (
            "INSERT INTO gw_deliveries (outbox_id, webhook_id, event, at, attempt, outcome, http_status, error)"
            f" VALUES ({m}, {m}, {m}, {m}, {m}, {m}, {m}, {m})"
        )
        self.rows = f"SELECT {_ROW} FROM gw_outbox ORDER BY id"
        self.rows_of = f"SELECT {_ROW} FROM gw_outbox WHERE webhook_id={m} ORDER BY id"
        self.deliveries = (
            "SELECT id, outbox_id, webhook_id, event, at, attempt, outcome, http_status, error"
            f" FROM gw_deliveries WHERE webhook_id={m} ORDER BY id DESC LIMIT {m}"
        )


def webhook_of(row: Sequence[Any]) -> Webhook:
    """The :class:`Webhook` of a ``gw_webhooks`` row."""
    return Webhook(int(row[0]), row[1], row[2], row[3], row[4], row[5], row[6], row[7])


def outbox_of(row: Sequence[Any]) -> OutboxRow:
    """The :class:`OutboxRow` of a ``gw_outbox`` row."""
    return OutboxRow(int(row[0]), int(row[1]), row[2], row[3], row[4], row[5], int(row[6]), row[7])


def delivery_of(row: Sequence[Any]) -> Delivery:
    """The :class:`Delivery` of a ``gw_deliveries`` row."""
    status = None if row[7] is None else int(row[7])
    return Delivery(
        int(row[0]), int(row[1]), int(row[2]), row[3], row[4], int(row[5]), row[6], status, row[8]
    )


class OutboxOps:
    """:class:`WebhookStore` written once over three backend hooks: :meth:`_ox_rows` (run a
    statement, its rows), :meth:`_ox_write` (a write scope: the current transaction, or an
    admin transaction of its own) and :attr:`_ox_sql`."""

    _ox_sql: OutboxSql

    def _ox_rows(self, sql: str, args: tuple[Any, ...] = ()) -> list[Sequence[Any]]:
        raise NotImplementedError

    def _ox_write(self) -> Any:
        raise NotImplementedError

    def _ox_ready(self) -> bool:
        """Whether the tables exist (made on first write); reads of a store without them are empty."""
        return True

    def add_webhook(
        self, target_kind: str, target: str, fmt: str, url: str, secret: str | None, created_by: str | None
    ) -> Webhook:
        """See :meth:`WebhookStore.add_webhook`."""
        with self._ox_write():
            row = self._ox_rows(
                self._ox_sql.add_webhook, (target_kind, target, fmt, url, secret, moment(), created_by)
            )
        return webhook_of(row[0])

    def webhooks(self) -> list[Webhook]:
        """See :meth:`WebhookStore.webhooks`."""
        if not self._ox_ready():
            return []
        return [webhook_of(r) for r in self._ox_rows(self._ox_sql.webhooks)]

    def webhook(self, webhook_id: int) -> Webhook | None:
        """See :meth:`WebhookStore.webhook`."""
        if not self._ox_ready():
            return None
        rows = self._ox_rows(self._ox_sql.webhook, (int(webhook_id),))
        return webhook_of(rows[0]) if rows else None

    def remove_webhook(self, webhook_id: int) -> bool:
        """See :meth:`WebhookStore.remove_webhook`."""
        if not self._ox_ready():
            return False
        with self._ox_write():
            gone = self._ox_rows(self._ox_sql.remove, (moment(), int(webhook_id)))
            if gone:
                self._ox_rows(self._ox_sql.give_up, (int(webhook_id),))
        return bool(gone)

    def queue_outbox(self, webhook_id: int, event: str, payload: str) -> int:
        """See :meth:`WebhookStore.queue_outbox`."""
        now = moment()
        with self._ox_write():
            return int(self._ox_rows(self._ox_sql.queue, (int(webhook_id), event, payload, now, now))[0][0])

    def claim_outbox(self, worker: str, lease_seconds: float, limit: int = 20) -> list[OutboxRow]:
        """See :meth:`WebhookStore.claim_outbox`: the due rows are read, then each is claimed by
        its own guarded ``UPDATE`` in one write transaction, which a competing claimant's
        committed claim makes match nothing."""
        if not self._ox_ready():
            return []
        now = moment()
        # looked for without a write transaction: an idle poll takes no write lock
        due = self._ox_rows(self._ox_sql.due, (now, now, int(limit)))
        if not due:
            return []
        until = later(lease_seconds)
        claimed: list[OutboxRow] = []
        with self._ox_write():
            for (row_id,) in due:
                rows = self._ox_rows(self._ox_sql.claim, (worker, until, int(row_id), now))
                claimed.extend(outbox_of(r) for r in rows)
        return claimed

    def finish_outbox(
        self,
        row: OutboxRow,
        outcome: str,
        http_status: int | None,
        error: str | None,
        retry_in: float | None,
    ) -> None:
        """See :meth:`WebhookStore.finish_outbox`."""
        status = "pending" if retry_in is not None else outcome
        next_at = later(retry_in) if retry_in is not None else moment()
        with self._ox_write():
            self._ox_rows(self._ox_sql.finish, (status, next_at, row.id))
            self._ox_rows(
                self._ox_sql.log,
                (row.id, row.webhook_id, row.event, moment(), row.attempts + 1, outcome, http_status, error),
            )

    def outbox_rows(self, webhook_id: int | None = None) -> list[OutboxRow]:
        """See :meth:`WebhookStore.outbox_rows`."""
        if not self._ox_ready():
            return []
        if webhook_id is None:
            return [outbox_of(r) for r in self._ox_rows(self._ox_sql.rows)]
        return [outbox_of(r) for r in self._ox_rows(self._ox_sql.rows_of, (int(webhook_id),))]

    def deliveries(self, webhook_id: int, limit: int = 100) -> list[Delivery]:
        """See :meth:`WebhookStore.deliveries`."""
        if not self._ox_ready():
            return []
        return [delivery_of(r) for r in self._ox_rows(self._ox_sql.deliveries, (int(webhook_id), int(limit)))]
