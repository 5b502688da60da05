"""Accounts of the GeoPackage store: users (``gw_users``), failed logins (``gw_logins``) and
API tokens (``gw_tokens``)."""

from __future__ import annotations

import contextlib
from typing import Any

from geo.errors import StoreError
from geo.store import clock
from geo.store.gpkg.connection import GpkgConnection, scalar
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


class GpkgAccounts(GpkgConnection):
    """:class:`geo.store.interface.accounts.AccountStore` on the GeoPackage."""

    _USER_COLS = "name, role, password, active, created_at, failed_logins, locked_until, session_version"

    def _has_logins(self) -> bool:
        return bool(self.conn.execute("SELECT 1 FROM sqlite_master WHERE name='gw_logins'").fetchone())

    def _has_areas(self) -> bool:
        return bool(self.conn.execute("SELECT 1 FROM sqlite_master WHERE name='gw_user_areas'").fetchone())

    def _user_select(self) -> str:
        if self._has_logins() and self._has_areas():
            return USER_SELECT  # failed logins and locks from gw_logins (schema 2 kept them in gw_users)
        if self._has_logins():  # a read-only store of schema 3-7: no areas
            return USER_SELECT.split(" LEFT JOIN gw_user_areas")[0].replace(
                ", a.codes, a.sees_district FROM", " FROM"
            )
        return f"SELECT {self._USER_COLS} FROM gw_users u"  # a read-only store of schema 2

    def get_user(self, name: str) -> User | None:
        """See :meth:`geo.store.interface.accounts.AccountStore.get_user`.

        Reads ``gw_users`` with the name's ``gw_logins`` row; None in a store without account tables.
        """
        if not self._has_accounts():
            return None
        row = self.conn.execute(self._user_select() + " WHERE u.name=?", (name,)).fetchone()
        return None if row is None else user_of_row(row)

    def list_users(self) -> list[User]:
        """See :meth:`geo.store.interface.accounts.AccountStore.list_users`.

        Reads ``gw_users``; empty in a store without account tables.
        """
        if not self._has_accounts():
            return []
        return [user_of_row(r) for r in self.conn.execute(self._user_select() + " ORDER BY u.name")]

    def save_user(self, user: User) -> None:
        """See :meth:`geo.store.interface.accounts.AccountStore.save_user`.

        Writes the ``gw_users`` row; failed logins and locks stay in ``gw_logins``.
        """
        with self.admin_transaction():
            self.conn.execute(
                f"INSERT OR REPLACE INTO gw_users ({self._USER_COLS}) VALUES (?,?,?,?,?,?,?,?)",
                (
                    user.name,
                    user.role,
                    user.password,
                    int(user.active),
                    user.created_at or clock.now_iso(),
                    0,
                    None,
                    user.session_version,
                ),
            )
            self.conn.execute("DELETE FROM gw_user_areas WHERE name=?", (user.name,))
            if user.area or user.sees_district:
                self.conn.execute(
                    "INSERT INTO gw_user_areas (name, codes, sees_district) VALUES (?,?,?)",
                    (user.name, area_text(user.area), int(user.sees_district)),
                )

    def login_failures(self, kind: str, key: str) -> LoginFailures:
        """See :meth:`geo.store.interface.accounts.AccountStore.login_failures`.

        Reads ``gw_logins`` (a store of schema 2 has none: zero failures).
        """
        row = None
        if self._has_logins():
            row = self.conn.execute(
                "SELECT failures, last_failure, locked_until FROM gw_logins WHERE kind=? AND key=?",
                (kind, key),
            ).fetchone()
        return failures_of_row(kind, key, row)

    def save_login_failures(self, record: LoginFailures) -> None:
        """See :meth:`geo.store.interface.accounts.AccountStore.save_login_failures`.

        Writes ``gw_logins``, then deletes the rows with no failure for a day and no lock in
        force, and beyond 100,000 rows the oldest (locks last).
        """
        with self.admin_transaction():
            self.conn.execute(
                "INSERT OR REPLACE INTO gw_logins (kind, key, failures, last_failure, locked_until)"
                " VALUES (?,?,?,?,?)",
                (
                    record.kind,
                    record.key,
                    record.failures,
                    record.last_failure or clock.now_iso(),
                    record.locked_until,
                ),
            )
            self.conn.execute(
                "DELETE FROM gw_logins WHERE last_failure < ? AND coalesce(locked_until, '') < ?",
                (forgotten_before(), clock.now_iso()),
            )
            excess = scalar(self.conn, "SELECT count(*) FROM gw_logins") - account_rows.LOGINS_KEPT
            if excess > 0:  # the oldest go first, locks last
                self.conn.execute(
                    "DELETE FROM gw_logins WHERE rowid IN (SELECT rowid FROM gw_logins"
                    " ORDER BY coalesce(locked_until, '') > ?, last_failure, rowid LIMIT ?)",
                    (clock.now_iso(), excess),
                )

    def clear_login_failures(self, kind: str, key: str) -> None:
        """See :meth:`geo.store.interface.accounts.AccountStore.clear_login_failures`.

        Deletes the ``gw_logins`` row, if the table exists.
        """
        if not self._has_logins():
            return
        with self.admin_transaction():
            self.conn.execute("DELETE FROM gw_logins WHERE kind=? AND key=?", (kind, key))

    def add_token(self, user: str, label: str, digest: str) -> int:
        """See :meth:`geo.store.interface.accounts.AccountStore.add_token`.

        Inserts into ``gw_tokens``, created now.
        """
        with self.admin_transaction():
            self.conn.execute(
                "INSERT INTO gw_tokens (user, label, digest, created_at) VALUES (?,?,?,?)",
                (user, label, digest, clock.now_iso()),
            )
            return int(self.conn.last_insert_rowid())

    def find_token(self, digest: str) -> ApiToken | None:
        """See :meth:`geo.store.interface.accounts.AccountStore.find_token`.

        Reads ``gw_tokens``; None in a store without account tables.
        """
        if not self._has_accounts():
            return None
        row = self.conn.execute(f"SELECT {TOKEN_COLUMNS} FROM gw_tokens WHERE digest=?", (digest,)).fetchone()
        return None if row is None else ApiToken(*row)

    def list_tokens(self, user: str | None = None) -> list[ApiToken]:
        """See :meth:`geo.store.interface.accounts.AccountStore.list_tokens`.

        Reads ``gw_tokens``, by id; empty in a store without account tables.
        """
        if not self._has_accounts():
            return []
        sql = f"SELECT {TOKEN_COLUMNS} FROM gw_tokens"
        args: tuple[Any, ...] = ()
        if user is not None:
            sql += " WHERE user=?"
            args = (user,)
        return [ApiToken(*r) for r in self.conn.execute(sql + " ORDER BY id", args)]

    def revoke_token(self, token_id: int) -> bool:
        """See :meth:`geo.store.interface.accounts.AccountStore.revoke_token`.

        Sets ``revoked_at`` in ``gw_tokens``.
        """
        with self.admin_transaction():
            self.conn.execute(
                "UPDATE gw_tokens SET revoked_at=? WHERE id=? AND revoked_at IS NULL",
                (clock.now_iso(), token_id),
            )
            return bool(self.conn.changes())

    def touch_token(self, token_id: int) -> None:
        """See :meth:`geo.store.interface.accounts.AccountStore.touch_token`.

        Sets ``last_used`` in ``gw_tokens``; a store that cannot be written (:class:`StoreError`)
        is left as it is.
        """
        with contextlib.suppress(StoreError), self.admin_transaction():
            self.conn.execute("UPDATE gw_tokens SET last_used=? WHERE id=?", (clock.now_iso(), token_id))
