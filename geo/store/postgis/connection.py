"""The connection every component of the PostGIS store shares, and its one transaction.

One ``psycopg`` connection per store handle, in autocommit mode: a statement outside a
transaction sees the newest committed state, and the scopes here issue ``BEGIN`` … ``COMMIT``
themselves, as the GeoPackage backend does.  Also here: the write log (``gw_tx``), the meta
values (store CRS, revision, layer generations), the schema made on open and the translation
of database errors -- which never show the connection URL (it may carry a password).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, Self

import numpy as np
import psycopg
from psycopg import sql

from geo.errors import Conflict, StoreError, disk_full, read_only
from geo.store import clock
from geo.store.base import TransactionScopes, Tx, data_dir
from geo.store.cache import cache_for
from geo.store.credentials import secrets_in, shown_location, without
from geo.store.interface.audit import Actor
from geo.store.interface.changes import Changes
from geo.store.interface.changes import enabled as changes_enabled
from geo.store.postgis.changes import SCHEMA_SQL as CHANGES_SQL
from geo.store.postgis.changes import log_step, read_changes
from layers.base import LayerSpec

#: The SQL that makes the store's tables (all ``IF NOT EXISTS``: run on every open).
SCHEMA_SQL = (
    """CREATE TABLE IF NOT EXISTS gw_meta (key text PRIMARY KEY, value text)""",
    """CREATE TABLE IF NOT EXISTS gw_tx (id bigint PRIMARY KEY, at text NOT NULL, kind text NOT NULL,
    batch_id bigint)""",
    """CREATE INDEX IF NOT EXISTS gw_tx_at ON gw_tx (at)""",
    """CREATE TABLE IF NOT EXISTS gw_layers (name text PRIMARY KEY, geometry_type text NOT NULL,
    next_fid bigint NOT NULL DEFAULT 1, min_x double precision, min_y double precision,
    max_x double precision, max_y double precision)""",
    """CREATE TABLE IF NOT EXISTS gw_batches (id bigint PRIMARY KEY, layer text NOT NULL,
    source_name text, checksum text, created_at text NOT NULL, "user" text, status text NOT NULL,
    rows_read integer, added integer, updated integer, unchanged integer, rejected integer,
    encoding text, crs text, report text, rolled_back_at text, kind text)""",
    """CREATE INDEX IF NOT EXISTS gw_batches_layer ON gw_batches (layer)""",
    """CREATE TABLE IF NOT EXISTS gw_archive (batch_id bigint PRIMARY KEY, name text, path text)""",
    """CREATE TABLE IF NOT EXISTS gw_targets (code text NOT NULL, layer text NOT NULL, metric text NOT NULL,
    target double precision NOT NULL, batch_id bigint, tx_from bigint, PRIMARY KEY (code, layer, metric))""",
    """CREATE TABLE IF NOT EXISTS gw_targets_history (code text, layer text, metric text,
    target double precision, batch_id bigint, superseded_by bigint, tx_from bigint, tx_to bigint)""",
    """CREATE TABLE IF NOT EXISTS gw_audit (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at text NOT NULL, "user" text, client text, action text NOT NULL, layer text, batch_id bigint,
    counts jsonb, detail text)""",
    """CREATE TABLE IF NOT EXISTS gw_value_maps (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    layer text NOT NULL, field text NOT NULL, raw_key text NOT NULL, raw text NOT NULL, code text NOT NULL,
    "user" text, created_at text NOT NULL, removed_at text, removed_by text)""",
    """CREATE TABLE IF NOT EXISTS gw_users (name text PRIMARY KEY, role text NOT NULL, password text NOT NULL,
    active boolean NOT NULL DEFAULT true, created_at text NOT NULL, session_version integer NOT NULL DEFAULT 0)""",
    """CREATE TABLE IF NOT EXISTS gw_tokens (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    "user" text NOT NULL, label text, digest text NOT NULL UNIQUE, created_at text NOT NULL, last_used text,
    revoked_at text)""",
    """CREATE TABLE IF NOT EXISTS gw_logins (kind text NOT NULL, key text NOT NULL,
    failures integer NOT NULL DEFAULT 0, last_failure text NOT NULL, locked_until text, PRIMARY KEY (kind, key))""",
    """CREATE INDEX IF NOT EXISTS gw_logins_last_failure ON gw_logins (last_failure)""",
    """CREATE TABLE IF NOT EXISTS gw_user_areas (name text PRIMARY KEY, codes text NOT NULL DEFAULT '',
    sees_district boolean NOT NULL DEFAULT false)""",
    """CREATE TABLE IF NOT EXISTS gw_grid_versions (id bigint PRIMARY KEY, valid_from text NOT NULL,
    tx bigint NOT NULL, parent bigint, rolled_back_tx bigint, units integer)""",
)

#: The schema this code writes (kept in ``gw_meta`` under ``schema``).  Version 1: the tables
#: of :data:`SCHEMA_SQL` and one table (and history table) per layer; version 2: typed views of
#: the layers that hold more than one geometry type (:mod:`geo.store.typed_views`).
SCHEMA_VERSION = 2

#: What :data:`SCHEMA_SQL` and the change log's tables say, in short (kept in ``gw_meta`` under
#: ``schema_sql``).
SCHEMA_DIGEST = hashlib.sha256("\n".join((*SCHEMA_SQL, *CHANGES_SQL)).encode()).hexdigest()[:16]

#: How long a write waits for another's locks before it is refused as busy (ms): the
#: GeoPackage's busy timeout.
LOCK_WAIT_MS = 60_000

#: The SQL a database owner runs when the store's role may not create the extension.
EXTENSION_SQL = "CREATE EXTENSION IF NOT EXISTS postgis"


class PgConnection(TransactionScopes):
    """The shared state of a :class:`geo.store.postgis.PostgisStore`: its URL, connection,
    transaction depth, the ``gw_tx`` row of the write under way and the actor writing.

    Parameters
    ----------
    url : str
        A ``postgresql://`` URL (libpq's form, e.g. ``postgresql://user@/db?host=/run/pg``).
    create : bool
        Make the ``postgis`` extension and the store's tables when missing.
    data : path, optional
        The data directory (archived uploads in ``archive/``); default :func:`geo.store.base.data_dir`.
    """

    def __init__(self, url: str, create: bool = True, data: str | os.PathLike[str] | None = None):
        self._url = url
        self.data = data_dir(data)
        self._pending_archives: list[Path] = []
        self.location = shown_location(url)
        self.cache = cache_for(self.location)
        self._conn: psycopg.Connection[Any] | None = None
        self._depth = 0
        self._reading = False
        self.actor = Actor()
        self._tx: int | None = None
        self._create = create
        self._ready = False

    # connection ----------------------------------------------------------------------------
    @property
    def conn(self) -> psycopg.Connection[Any]:
        """The open connection (opened, and the schema checked, on first use)."""
        if self._conn is None or self._conn.closed:
            try:
                self._conn = psycopg.connect(self._url, autocommit=True)
            except psycopg.Error as exc:
                raise StoreError(
                    f"无法连接数据库: {self.location}",
                    f"cannot connect to the database {self.location}: {_first_line(exc, self._url)}",
                    code="store_unavailable",
                ) from exc
            self._set_lock_wait()
            if not self._ready:
                try:
                    self._open_schema()
                except BaseException:
                    self.close()
                    raise
                self._ready = True
        return self._conn

    def _set_lock_wait(self) -> None:
        """Let a write wait for another's locks (another writer, a store copy holding writes) as
        long as a GeoPackage writer waits for the file, then give up as busy: PostgreSQL's own
        default is to wait for ever, which would hang a web request.  A ``lock_timeout`` the URL
        (``options=-c lock_timeout=…``), the role or the database already sets is kept."""
        assert self._conn is not None
        try:
            if self._conn.execute("SHOW lock_timeout").fetchone() == ("0",):
                self._conn.execute(f"SET lock_timeout = '{LOCK_WAIT_MS}ms'")
        except psycopg.Error as exc:
            self.close()
            raise store_error(exc, self._url) from exc

    def _open_schema(self) -> None:
        """Check for PostGIS and the store's tables; make them when allowed."""
        assert self._conn is not None
        conn = self._conn
        has_postgis = conn.execute("SELECT 1 FROM pg_extension WHERE extname='postgis'").fetchone()
        if not has_postgis:
            if not self._create:
                raise _no_postgis()
            try:
                with _quiet(conn):
                    conn.execute(EXTENSION_SQL)
            except psycopg.Error as exc:
                raise _no_postgis() from exc
        version = self._schema_version()
        if version is not None and version > SCHEMA_VERSION:
            raise _too_new(version)
        if self._schema_current(version) or not self._create:
            return  # nothing to make: a role without CREATE rights uses the tables as they are
        try:
            with self.transaction_scope(new_revision=False):
                conn.execute("SELECT pg_advisory_xact_lock(hashtext('gridwatch schema'))")
                version = self._schema_version()  # again: another process may have made it meanwhile
                if self._schema_current(version) or (version or 0) > SCHEMA_VERSION:
                    return
                with _quiet(conn):
                    for stmt in (*SCHEMA_SQL, *CHANGES_SQL):
                        conn.execute(stmt)
                conn.execute(
                    "INSERT INTO gw_meta VALUES ('revision', %s) ON CONFLICT DO NOTHING", (uuid.uuid4().hex,)
                )
                if version is not None:
                    self._upgrade_schema(version)
                self._set_meta("schema", str(SCHEMA_VERSION))
                self._set_meta("schema_sql", SCHEMA_DIGEST)
        except StoreError as exc:
            if exc.code != "store_read_only":
                raise
            raise _no_create_rights(self._current_role(), version) from exc

    def _schema_version(self) -> int | None:
        """The schema version the database holds (``gw_meta``); None when it has no store yet."""
        assert self._conn is not None
        if self._conn.execute("SELECT to_regclass('gw_meta')").fetchone() in (None, (None,)):
            return None
        row = self._conn.execute("SELECT value FROM gw_meta WHERE key='schema'").fetchone()
        return int(row[0]) if row else None

    def _schema_current(self, version: int | None) -> bool:
        """Whether the database holds this code's schema: its version, and the tables of
        :data:`SCHEMA_SQL` as they are now (their digest, kept in ``gw_meta`` under
        ``schema_sql``: a table added to the list without a new version is made all the same)."""
        if version != SCHEMA_VERSION:
            return False
        assert self._conn is not None
        row = self._conn.execute("SELECT value FROM gw_meta WHERE key='schema_sql'").fetchone()
        return row is not None and row[0] == SCHEMA_DIGEST

    def _current_role(self) -> str:
        assert self._conn is not None
        row = self._conn.execute("SELECT current_user").fetchone()
        return str(row[0]) if row else ""

    def _upgrade_schema(self, version: int) -> None:
        """Bring a store of schema ``version`` up to :data:`SCHEMA_VERSION` (inside the open
        transaction, after the tables of :data:`SCHEMA_SQL` exist).  Version 2: the typed views
        of the layers declared ``Geometry`` (:meth:`~geo.store.postgis.tables.PgTables.upgrade_views`)."""
        if version < 2:
            upgrade = getattr(self, "upgrade_views", None)
            if upgrade is not None:
                upgrade()

    def close(self) -> None:
        """See :meth:`geo.store.base.Store.close`.

        Closes the connection; the next use of :attr:`conn` opens a new one.
        """
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self, query: str | sql.SQL | sql.Composed, args: Any = None) -> psycopg.Cursor[Any]:
        try:
            return self.conn.execute(query, args)
        except psycopg.Error as exc:
            raise store_error(exc, self._url) from exc

    # scopes --------------------------------------------------------------------------------
    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """See :meth:`geo.store.base.Store.snapshot`.

        A ``REPEATABLE READ READ ONLY`` transaction: every statement inside sees the state of
        its first one.  It holds no commit back (PostgreSQL keeps row versions instead), but a
        long one keeps old row versions from being vacuumed: keep it short all the same.
        Inside a write transaction or another snapshot it is that one.
        """
        with TransactionScopes.snapshot(self):
            yield

    def transaction(self) -> AbstractContextManager[None]:
        """All-or-nothing write scope (``BEGIN`` … ``COMMIT``, ``ROLLBACK`` on any exception);
        nests.  Writers take turns: each one starts by writing a new revision into ``gw_meta``,
        whose row lock holds the next writer until this one ends, so the write log's ids and
        stamps follow the order of commits as in the GeoPackage."""
        return self.write_scope(new_revision=True)

    def transaction_scope(self, new_revision: bool) -> AbstractContextManager[None]:
        """:meth:`transaction` (``new_revision``) or :meth:`admin_transaction` (without)."""
        return self.write_scope(new_revision, "transaction" if new_revision else "admin_transaction")

    # the scopes' statements (see geo.store.base.TransactionScopes)
    _BEGIN_READ = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"
    _DB_ERRORS = (psycopg.Error,)

    def _scope_sql(self, statement: str) -> None:
        if statement == "ROLLBACK" and (self._conn is None or self._conn.closed):
            return  # the connection is gone, and its transaction with it: never reconnect to roll back
        self.conn.execute(statement)

    def _translate(self, exc: BaseException) -> BaseException:
        return store_error(exc, self._url) if isinstance(exc, psycopg.Error) else exc

    def _new_revision(self) -> None:
        self.conn.execute("UPDATE gw_meta SET value=%s WHERE key='revision'", (uuid.uuid4().hex,))

    @contextmanager
    def admin_transaction(self) -> Iterator[None]:
        """See :meth:`geo.store.base.Store.admin_transaction`.

        Inside the current transaction when there is one, else its own, without a new revision.
        """
        with self.write_scope(new_revision=False, name="admin_transaction"):
            yield

    # write log -----------------------------------------------------------------------------
    def begin_tx(self, kind: str, batch_id: int | None = None) -> int:
        """See :meth:`geo.store.base.Store.begin_tx`.

        The ``gw_tx`` row of the transaction under way, made by its first call: the next id
        after the highest one (writers take turns, and an id rolled back with its transaction
        is used again, as in the GeoPackage).  Must be called inside :meth:`transaction`.
        """
        if not self._depth:
            raise RuntimeError("begin_tx must run inside transaction()")
        if self._tx is None:
            row = self._run(
                "INSERT INTO gw_tx (id, at, kind, batch_id)"
                " SELECT coalesce(max(id), 0) + 1, %s, %s, %s FROM gw_tx RETURNING id",
                (clock.now_stamp(), kind, batch_id),
            ).fetchone()
            assert row is not None
            self._tx = int(row[0])
        return self._tx

    def _tx_id(self) -> int:
        return self._tx if self._tx is not None else self.begin_tx("write")

    def _stamp_tx(self) -> None:
        """Stamp the transaction's tx with the moment it commits (after every earlier stamp)."""
        if self._tx is None:
            return
        row = self.conn.execute("SELECT max(at) FROM gw_tx WHERE id < %s", (self._tx,)).fetchone()
        previous = None if row is None else row[0]
        self.conn.execute("UPDATE gw_tx SET at=%s WHERE id=%s", (clock.next_stamp(previous), self._tx))

    def last_tx(self) -> Tx | None:
        """See :meth:`geo.store.base.Store.last_tx`."""
        row = self._run("SELECT id, at, kind, batch_id FROM gw_tx ORDER BY id DESC LIMIT 1").fetchone()
        return None if row is None else Tx(*row)

    def tx(self, tx_id: int) -> Tx | None:
        """See :meth:`geo.store.base.Store.tx`."""
        row = self._run("SELECT id, at, kind, batch_id FROM gw_tx WHERE id=%s", (tx_id,)).fetchone()
        return None if row is None else Tx(*row)

    def tx_at(self, stamp: str) -> int:
        """See :meth:`geo.store.base.Store.tx_at`."""
        row = self._run("SELECT coalesce(max(id), 0) FROM gw_tx WHERE at <= %s", (stamp,)).fetchone()
        return int(row[0]) if row else 0

    def layer_revision(self, layer: str, tx: int | None = None) -> tuple[int | None, int | None]:
        """See :meth:`geo.store.base.Store.layer_revision`."""
        row = self._run(
            "SELECT t.id, t.batch_id FROM gw_tx t JOIN gw_batches b ON b.id = t.batch_id"
            " WHERE b.layer=%s AND t.id <= %s ORDER BY t.id DESC LIMIT 1",
            (layer, tx if tx is not None else 2**63 - 1),
        ).fetchone()
        return (None, None) if row is None else (int(row[0]), int(row[1]))

    # meta ----------------------------------------------------------------------------------
    def _meta(self, key: str) -> str | None:
        row = self._run("SELECT value FROM gw_meta WHERE key=%s", (key,)).fetchone()
        return None if row is None else str(row[0])

    def _set_meta(self, key: str, value: str) -> None:
        self._run(
            "INSERT INTO gw_meta VALUES (%s, %s) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def revision(self) -> str:
        """See :meth:`geo.store.base.Store.revision`.

        ``gw_meta.revision``: a new random value at the start of each :meth:`transaction`.
        """
        return self._meta("revision") or ""

    def srs_epsg(self) -> int | None:
        """See :meth:`geo.store.interface.features.FeatureStore.srs_epsg`.

        Kept in ``gw_meta`` under ``srs_epsg``.
        """
        v = self._meta("srs_epsg")
        return int(v) if v else None

    def set_srs_epsg(self, epsg: int) -> None:
        """See :meth:`geo.store.interface.features.FeatureStore.set_srs_epsg`.

        The code must be one of PostGIS's ``spatial_ref_sys``; kept in ``gw_meta``.
        """
        current = self.srs_epsg()
        if current is not None and current != epsg:
            raise Conflict(
                f"存储已使用 EPSG:{current}，不能改为 EPSG:{epsg}",
                f"store already uses EPSG:{current}, not {epsg}",
            )
        if not self._run("SELECT 1 FROM spatial_ref_sys WHERE srid=%s", (epsg,)).fetchone():
            raise StoreError(
                f"数据库的 spatial_ref_sys 中没有 EPSG:{epsg}",
                f"EPSG:{epsg} is not in the database's spatial_ref_sys",
            )
        with self.transaction():
            self._set_meta("srs_epsg", str(epsg))

    def layer_generation(self, spec: LayerSpec) -> str:
        """See :meth:`geo.store.interface.features.FeatureStore.layer_generation`.

        ``gw_meta`` under ``gen:<layer>``: a new random value with every change of its rows.
        """
        return self.generation(spec.name)

    def generation(self, name: str) -> str:
        """See :meth:`geo.store.interface.features.FeatureStore.generation`.

        ``gw_meta`` under ``gen:<name>``; empty before the first write.
        """
        return self._meta(f"gen:{name}") or ""

    def writing(self) -> bool:
        """See :meth:`geo.store.base.Store.writing`."""
        return bool(self._depth)

    def _bump_generation(self, spec: LayerSpec | str, touched: np.ndarray | None = None) -> None:
        # a fresh random token, so a generation rolled back with its transaction is never reused
        name = spec if isinstance(spec, str) else spec.name
        before = self.generation(name)
        after = uuid.uuid4().hex
        self._set_meta(f"gen:{name}", after)
        if not isinstance(spec, str):
            # the fids this write touched (None: any), for caches of the older generation
            try:
                log_step(self.conn, name, before, after, touched)
            except psycopg.Error as exc:
                raise store_error(exc, self._url) from exc

    def changes(self, spec: LayerSpec, since_generation: str) -> Changes | None:
        """See :meth:`geo.store.interface.changes.ChangeLog.changes`.

        Read from ``gw_changes`` (:mod:`geo.store.postgis.changes`) in one snapshot with the
        layer's generation.
        """
        if not changes_enabled():
            return None
        with self.snapshot():
            try:
                return read_changes(self.conn, spec.name, since_generation, self.layer_generation(spec))
            except psycopg.Error as exc:
                raise store_error(exc, self._url) from exc


@contextmanager
def _quiet(conn: psycopg.Connection[Any]) -> Iterator[None]:
    """No NOTICE for ``IF NOT EXISTS`` statements that find what they would make.  After a
    failed statement the transaction's ``ROLLBACK`` undoes the setting instead (the reset would
    fail, and hide the statement's own error)."""
    conn.execute("SET client_min_messages = warning")
    try:
        yield
    finally:
        with contextlib.suppress(psycopg.errors.InFailedSqlTransaction):
            conn.execute("RESET client_min_messages")


def _no_postgis() -> StoreError:
    return StoreError(
        f"数据库没有 PostGIS 扩展，且本账户无权创建。请数据库管理员执行: {EXTENSION_SQL};",
        f"the database has no PostGIS extension and this role may not create it; have its owner run: {EXTENSION_SQL};",
        code="no_postgis",
    )


def _too_new(version: int) -> StoreError:
    return StoreError(
        f"数据库由较新版本的 gridwatch 写入（结构版本 {version}，本程序支持到 {SCHEMA_VERSION}），请升级 gridwatch",
        f"the database was written by a newer gridwatch (schema {version}; this one knows up to"
        f" {SCHEMA_VERSION}): upgrade gridwatch",
        code="store_too_new",
    )


def _no_create_rights(role: str, version: int | None) -> StoreError:
    grant = f'GRANT CREATE ON SCHEMA public TO "{role}";'
    if version is None:
        return StoreError(
            f"数据库中还没有 gridwatch 的表，且账户 {role} 无权创建。请数据库管理员执行: {grant}"
            " 或用有权限的账户打开一次",
            f"the database has no gridwatch tables yet and role {role} may not create them; have its owner"
            f" run: {grant} or open it once as a role that may",
            code="no_create_rights",
        )
    return StoreError(
        f"数据库结构（版本 {version}）需要更新为本程序的结构（版本 {SCHEMA_VERSION}），但账户 {role} 无权修改。"
        "请用表的所有者账户打开一次（更新自动完成）",
        f"the database schema (version {version}) must be brought up to this gridwatch's (version"
        f" {SCHEMA_VERSION}), which role {role} may not do: open it once as the tables' owner (the upgrade"
        " then runs by itself)",
        code="no_create_rights",
    )


def _first_line(exc: BaseException, url: str) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return without(text.replace(url, shown_location(url)), secrets_in(url))


def store_error(exc: psycopg.Error, url: str) -> StoreError:
    """The user's view of a failed database call (without the URL's password)."""
    if isinstance(exc, psycopg.errors.ReadOnlySqlTransaction | psycopg.errors.InsufficientPrivilege):
        return read_only()
    if isinstance(exc, psycopg.errors.DiskFull):
        return disk_full()
    if isinstance(exc, psycopg.errors.LockNotAvailable | psycopg.errors.SerializationFailure):
        return StoreError("存储正忙，请稍后重试", "the store is busy, try again", code="store_busy")
    if isinstance(exc, psycopg.OperationalError):
        return StoreError(
            "数据库连接中断，写入已取消",
            f"the database connection failed: {_first_line(exc, url)}",
            code="store_unavailable",
        )
    return StoreError(f"存储错误: {_first_line(exc, url)}", f"store error: {_first_line(exc, url)}")
