"""The audit trail: who wrote what, when and from where."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


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
