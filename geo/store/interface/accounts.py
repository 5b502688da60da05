"""Accounts: local users, their API tokens and the failed logins counted against names and
client addresses.  The rules over them live in :mod:`geo.store.accounts`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol


@dataclass
class User:
    """A local account.  ``password`` is a salted hash, never the password itself.
    ``failed_logins`` and ``locked_until`` are read from the name's :class:`LoginFailures`
    (saving a user does not change them)."""

    name: str
    role: str
    password: str
    active: bool = True
    created_at: str = ""
    failed_logins: int = 0
    locked_until: str | None = None
    #: Changes with every sign-out, password change, disabling or role change: sessions made
    #: before are void.
    session_version: int = 0
    #: The street, community or unit codes of the current grid the account is bound to (kept
    #: sorted); empty: the whole district.  Kept in ``gw_user_areas``.
    area: tuple[str, ...] = ()
    #: Whether a bound account still sees the district's figures, maps and lists (set by an admin).
    sees_district: bool = False


@dataclass
class LoginFailures:
    """Failed logins in a row under one key: ``kind`` ``"user"`` with a user name (whether an
    account has it or not) or ``"client"`` with a client address.  Times are ISO 8601 UTC."""

    kind: str
    key: str
    failures: int = 0
    last_failure: str | None = None
    locked_until: str | None = None


@dataclass
class ApiToken:
    """A revocable API token of one user; only the SHA-256 digest of its secret is kept."""

    id: int
    user: str
    label: str
    digest: str
    created_at: str
    last_used: str | None = None
    revoked_at: str | None = None


class AccountStore(Protocol):
    """Users, tokens and failed logins; each write in its own :meth:`~geo.store.base.Store.admin_transaction`
    unless one is under way."""

    def get_user(self, name: str) -> User | None:
        """The account ``name`` (in NFC, as kept), or None when there is none."""
        ...

    def list_users(self) -> list[User]:
        """Every account, ordered by name."""
        ...

    def save_user(self, user: User) -> None:
        """Insert or replace the account ``user.name``."""
        ...

    def add_token(self, user: str, label: str, digest: str) -> int:
        """Add a token of ``user`` with ``label`` and ``digest``, the SHA-256 hex digest of its secret;
        returns the token's id."""
        ...

    def find_token(self, digest: str) -> ApiToken | None:
        """The token whose secret has SHA-256 hex digest ``digest``, revoked or not; None when unknown."""
        ...

    def list_tokens(self, user: str | None = None) -> list[ApiToken]:
        """The tokens of ``user`` (of everyone: None), revoked ones too, oldest first."""
        ...

    def revoke_token(self, token_id: int) -> bool:
        """Mark token ``token_id`` revoked now; False when it is unknown or already revoked."""
        ...

    def touch_token(self, token_id: int) -> None:
        """Note that a token was used now (outside any audit: reading is not a write)."""
        ...

    def login_failures(self, kind: str, key: str) -> LoginFailures:
        """The failed logins recorded under ``kind``/``key`` (none recorded: zero)."""
        ...

    def save_login_failures(self, record: LoginFailures) -> None:
        """Keep ``record``; records untouched for a day are forgotten and the oldest beyond a
        bound dropped, so names and addresses tried at random cannot fill the store."""
        ...

    def clear_login_failures(self, kind: str, key: str) -> None:
        """Forget the failed logins recorded under ``kind``/``key``."""
        ...


# the rows of the account tables, the same on every backend -------------------------------------
#: the users with their failed logins and lock, from ``gw_logins`` (rows for :func:`user_of_row`)
USER_SELECT = (
    "SELECT u.name, u.role, u.password, u.active, u.created_at, coalesce(l.failures, 0),"
    " l.locked_until, u.session_version, a.codes, a.sees_district FROM gw_users u"
    " LEFT JOIN gw_logins l ON l.kind = 'user' AND l.key = u.name"
    " LEFT JOIN gw_user_areas a ON a.name = u.name"
)
#: the columns of ``gw_tokens`` in the order of :class:`ApiToken`
TOKEN_COLUMNS = 'id, "user", label, digest, created_at, last_used, revoked_at'
#: Failed-login records untouched this long (and not locking) are forgotten; at most this many are kept.
LOGINS_FORGOTTEN_S = 86_400
LOGINS_KEPT = 100_000


def user_of_row(row: Sequence[Any]) -> User:
    """The account of a row of :data:`USER_SELECT` (its last two columns, the area's codes and
    the district flag, may be missing: a store written before areas)."""
    name, role, password, active, created_at, failed, locked_until, version = row[:8]
    codes, sees = (row[8], row[9]) if len(row) >= 10 else (None, None)
    return User(
        name,
        role,
        password,
        bool(active),
        created_at,
        int(failed or 0),
        locked_until,
        int(version or 0),
        area_of_text(codes),
        bool(sees),
    )


def area_of_text(codes: str | None) -> tuple[str, ...]:
    """The codes of an area as kept in ``gw_user_areas.codes`` (comma-separated), sorted."""
    return tuple(sorted({c for c in (codes or "").split(",") if c}))


def area_text(area: Sequence[str]) -> str:
    """An area's codes as kept in ``gw_user_areas.codes``: sorted, comma-separated."""
    return ",".join(sorted(set(area)))


def failures_of_row(kind: str, key: str, row: Sequence[Any] | None) -> LoginFailures:
    """The failed logins under ``(kind, key)`` from their ``gw_logins`` row (``failures,
    last_failure, locked_until``); none when there is no row."""
    if row is None:
        return LoginFailures(kind, key)
    return LoginFailures(kind, key, int(row[0]), row[1], row[2])


def forgotten_before() -> str:
    """The moment (ISO 8601 UTC) before which a failed-login record not locking is forgotten."""
    forget = datetime.fromtimestamp(datetime.now(UTC).timestamp() - LOGINS_FORGOTTEN_S, UTC)
    return forget.replace(microsecond=0).isoformat().replace("+00:00", "Z")
