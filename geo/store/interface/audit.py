"""The audit trail: who wrote what, when and from where."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from geo.store import clock


@dataclass
class Actor:
    """Who is writing: a user name (None for the system) and where from (an IP address,
    ``"cli"``).  Set on a store handle; every write recorded in the audit trail names it."""

    user: str | None = None
    client: str | None = None


@dataclass
class AuditEntry:
    """One write: who, when, from where, what, on which layer and batch, and its counts."""

    id: int
    at: str
    user: str | None
    client: str | None
    action: str
    layer: str | None = None
    batch_id: int | None = None
    counts: dict[str, Any] = field(default_factory=dict)
    detail: str | None = None


class AuditLog(Protocol):
    """Audit entries, written inside the transaction under way (if any)."""

    #: Who writes through this handle (recorded with every write in the audit trail).
    actor: Actor

    def record_audit(
        self,
        action: str,
        *,
        layer: str | None = None,
        batch_id: int | None = None,
        counts: dict[str, Any] | None = None,
        detail: str | None = None,
    ) -> None:
        """Add an audit entry for :attr:`actor` (inside the current transaction, if any)."""
        ...

    def audit_entries(
        self, *, limit: int = 200, offset: int = 0, user: str | None = None, action: str | None = None
    ) -> list[AuditEntry]:
        """Newest first."""
        ...


# the rows of ``gw_audit``, the same table on every backend ------------------------------------
_COLUMNS = 'at, "user", client, action, layer, batch_id, counts, detail'


def audit_insert(mark: str) -> str:
    """The ``INSERT`` of one ``gw_audit`` row, with the backend's parameter ``mark`` (``?``, ``%s``);
    its values are :func:`audit_values`."""
    return f"INSERT INTO gw_audit ({_COLUMNS}) VALUES ({', '.join([mark] * 8)})"


def audit_values(
    actor: Actor,
    action: str,
    layer: str | None,
    batch_id: int | None,
    counts: dict[str, Any] | None,
    detail: str | None,
    encode: Callable[[dict[str, Any]], Any],
) -> tuple[Any, ...]:
    """The values of :func:`audit_insert` for an entry by ``actor`` stamped now (ISO 8601 UTC),
    its counts stored as ``encode`` makes them (JSON text, ``jsonb`` …)."""
    return (clock.now_iso(), actor.user, actor.client, action, layer, batch_id, encode(counts or {}), detail)


def audit_select(
    mark: str, user: str | None, action: str | None, limit: int, offset: int
) -> tuple[str, tuple[Any, ...]]:
    """The query of :meth:`AuditLog.audit_entries` and its arguments (rows for :func:`audit_entry`)."""
    where, args = [], []
    if user:
        where.append(f'"user"={mark}')
        args.append(user)
    if action:
        where.append(f"action={mark}")
        args.append(action)
    sql = f"SELECT id, {_COLUMNS} FROM gw_audit"
    if where:
        sql += " WHERE " + " AND ".join(where)
    return sql + f" ORDER BY id DESC LIMIT {mark} OFFSET {mark}", (*args, int(limit), int(offset))


def audit_entry(row: Sequence[Any], counts: dict[str, Any]) -> AuditEntry:
    """The entry of a row of :func:`audit_select`, its stored counts decoded into ``counts``."""
    return AuditEntry(row[0], row[1], row[2], row[3], row[4], row[5], row[6], counts, row[8])
