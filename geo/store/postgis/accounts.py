"""Accounts of the PostGIS store: users (``gw_users``), failed logins (``gw_logins``) and API
tokens (``gw_tokens``)."""

from __future__ import annotations

import contextlib

from geo.errors import StoreError
from geo.store import clock
from geo.store.interface import accounts as account_rows
from geo.store.interface.accounts import (
    TOKEN_COLUMNS,
    USER_SELECT,
    ApiToken,
    LoginFailures,
    User,
    area_text,
    failures_of_row,
    forgotten_before,
    user_of_row,
)
from geo.store.postgis.connection import PgConnection


class PgAccounts(PgConnection):
    """:class:`geo.store.interface.accounts.AccountStore` on PostGIS."""

    def get_user(self, name: str) -> User | None:
        """See :meth:`geo.store.interface.accounts.AccountStore.get_user`.

        Reads ``gw_users`` with the name's ``gw_logins`` row.
        """
        row = self._run(USER_SELECT + " WHERE u.name=%s", (name,)).fetchone()
        return None if row is None else user_of_row(row)

    def list_users(self) -> list[User]:
        """See :meth:`geo.store.interface.accounts.AccountStore.list_users`.

        Reads ``gw_users``, by name (bytewise, as SQLite orders text).
        """
        return [user_of_row(r) for r in self._run(USER_SELECT + ' ORDER BY u.name COLLATE "C"').fetchall()]

    def save_user(self, user: User) -> None:
        """See :meth:`geo.store.interface.accounts.AccountStore.save_user`.

        Writes the ``gw_users`` row; failed logins and locks stay in ``gw_logins``.
        """
        with self.admin_transaction():
            self._run(
                "INSERT INTO gw_users (name, role, password, active, created_at, session_version)"
                " VALUES (%s,%s,%s,%s,%s,%s) ON CONFLICT (name) DO UPDATE SET role = excluded.role,"
                " password = excluded.password, active = excluded.active, created_at = excluded.created_at,"
                " session_version = excluded.session_version",
                (
                    user.name,
                    user.role,
                    user.password,
                    bool(user.active),
                    user.created_at or clock.now_iso(),
                    user.session_version,
                ),
            )
            self._run("DELETE FROM gw_user_areas WHERE name=%s", (user.name,))
            if user.area or user.sees_district:
                self._run(
                    "INSERT INTO gw_user_areas (name, codes, sees_district) VALUES (%s,%s,%s)",
                    (user.name, area_text(user.area), bool(user.sees_district)),
                )

    def login_failures(self, kind: str, key: str) -> LoginFailures:
        """See :meth:`geo.store.interface.accounts.AccountStore.login_failures`.

        Reads ``gw_logins``.  Inside a transaction it first takes a lock on ``(kind, key)``
        held to its end, so a read, count and :meth:`save_login_failures` of two workers at
        once count twice (under READ COMMITTED the second would otherwise save over the first).
        """
        if self._depth:
            self._run(
                "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (f"gw_logins\x1f{kind}\x1f{key}",)
            )
        row = self._run(
            "SELECT failures, last_failure, locked_until FROM gw_logins WHERE kind=%s AND key=%s", (kind, key)
        ).fetchone()
        return failures_of_row(kind, key, row)

    def save_login_failures(self, record: LoginFailures) -> None:
        """See :meth:`geo.store.interface.accounts.AccountStore.save_login_failures`.

        Writes ``gw_logins``, then deletes the rows with no failure for a day and no lock in
        force, and beyond 100,000 rows the oldest (locks last).
        """
        with self.admin_transaction():
            self._run(
                "INSERT INTO gw_logins (kind, key, failures, last_failure, locked_until) VALUES (%s,%s,%s,%s,%s)"
                " ON CONFLICT (kind, key) DO UPDATE SET failures = excluded.failures,"
                " last_failure = excluded.last_failure, locked_until = excluded.locked_until",
                (
                    record.kind,
                    record.key,
                    record.failures,
                    record.last_failure or clock.now_iso(),
                    record.locked_until,
                ),
            )
            now = clock.now_iso()
            self._run(
                "DELETE FROM gw_logins WHERE last_failure < %s AND coalesce(locked_until, '') < %s",
                (forgotten_before(), now),
            )
            row = self._run("SELECT count(*) FROM gw_logins").fetchone()
            excess = (int(row[0]) if row else 0) - account_rows.LOGINS_KEPT
            if excess > 0:  # the oldest go first, locks last
                self._run(
                    "DELETE FROM gw_logins WHERE (kind, key) IN (SELECT kind, key FROM gw_logins"
                    " ORDER BY coalesce(locked_until, '') > %s, last_failure LIMIT %s)",
                    (now, excess),
                )

    def clear_login_failures(self, kind: str, key: str) -> None:
        """See :meth:`geo.store.interface.accounts.AccountStore.clear_login_failures`.

        Deletes the ``gw_logins`` row.
        """
        with self.admin_transaction():
            self._run("DELETE FROM gw_logins WHERE kind=%s AND key=%s", (kind, key))

    def add_token(self, user: str, label: str, digest: str) -> int:
        """See :meth:`geo.store.interface.accounts.AccountStore.add_token`.

        Inserts into ``gw_tokens``, created now.
        """
        with self.admin_transaction():
            row = self._run(
                'INSERT INTO gw_tokens ("user", label, digest, created_at) VALUES (%s,%s,%s,%s) RETURNING id',
                (user, label, digest, clock.now_iso()),
            ).fetchone()
            assert row is not None
            return int(row[0])

    def find_token(self, digest: str) -> ApiToken | None:
        """See :meth:`geo.store.interface.accounts.AccountStore.find_token`.

        Reads ``gw_tokens``.
        """
        row = self._run(f"SELECT {TOKEN_COLUMNS} FROM gw_tokens WHERE digest=%s", (digest,)).fetchone()
        return None if row is None else ApiToken(*row)

    def list_tokens(self, user: str | None = None) -> list[ApiToken]:
        """See :meth:`geo.store.interface.accounts.AccountStore.list_tokens`.

        Reads ``gw_tokens``, by id.
        """
        if user is None:
            rows = self._run(f"SELECT {TOKEN_COLUMNS} FROM gw_tokens ORDER BY id")
        else:
            rows = self._run(f'SELECT {TOKEN_COLUMNS} FROM gw_tokens WHERE "user"=%s ORDER BY id', (user,))
        return [ApiToken(*r) for r in rows.fetchall()]

    def revoke_token(self, token_id: int) -> bool:
        """See :meth:`geo.store.interface.accounts.AccountStore.revoke_token`.

        Sets ``revoked_at`` in ``gw_tokens``.
        """
        with self.admin_transaction():
            cur = self._run(
                "UPDATE gw_tokens SET revoked_at=%s WHERE id=%s AND revoked_at IS NULL",
                (clock.now_iso(), token_id),
            )
            return bool(cur.rowcount)

    def touch_token(self, token_id: int) -> None:
        """See :meth:`geo.store.interface.accounts.AccountStore.touch_token`.

        Sets ``last_used`` in ``gw_tokens``; a store that cannot be written (:class:`StoreError`)
        is left as it is.
        """
        with contextlib.suppress(StoreError), self.admin_transaction():
            self._run("UPDATE gw_tokens SET last_used=%s WHERE id=%s", (clock.now_iso(), token_id))
