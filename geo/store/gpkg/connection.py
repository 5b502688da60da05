"""The connection every component of the GeoPackage store shares, and its one transaction.

One ``apsw`` connection per store handle; :meth:`GpkgConnection.transaction` is the scope all
writes of every component happen in (features, the batch register, targets, the audit log), so
they commit or roll back together.  Also here: the write log (``gw_tx``), the meta values
(store CRS, revision, layer generations) and the translation of SQLite errors.
"""

from __future__ import annotations

import contextlib
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Self

import apsw

from geo.errors import StoreError, disk_full, read_only, write_error
from geo.store import clock
from geo.store.base import Tx
from geo.store.cache import cache_for
from geo.store.interface.audit import Actor
from layers.base import LayerSpec


class GpkgConnection:
    """The shared state of a :class:`geo.store.gpkg.GpkgStore`: its file, connection, transaction
    depth, the ``gw_tx`` row of the write under way and the actor writing.

    Parameters
    ----------
    path : Path
        The ``.gpkg`` file; its directory is created when missing.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self.location = str(self.path)
        self.cache = cache_for(self.location)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(
                f"无法创建数据目录: {self.path.parent}", f"cannot create data directory: {exc}"
            ) from exc
        self._conn: apsw.Connection | None = None
        self._depth = 0
        #: inside :meth:`snapshot` (a read transaction)
        self._reading = False
        self.actor = Actor()
        self._pending_archives: list[Path] = []
        #: the gw_tx row of the write transaction under way (see begin_tx)
        self._tx: int | None = None

    # connection ----------------------------------------------------------------------------
    @property
    def conn(self) -> apsw.Connection:
        if self._conn is None:
            try:
                conn = apsw.Connection(str(self.path))
                conn.set_busy_timeout(60_000)
            except apsw.Error as exc:
                raise StoreError(f"无法打开存储文件: {self.path}", f"cannot open store: {exc}") from exc
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=OFF")
            conn.execute("PRAGMA temp_store=MEMORY")
            conn.execute("PRAGMA cache_size=-131072")  # 128 MiB page cache: index inserts stay in memory
            self._conn = conn
        return self._conn

    def close(self) -> None:
        """See :meth:`geo.store.base.Store.close`.

        Closes the ``apsw`` connection; the next use of :attr:`conn` opens a new one.
        """
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """See :meth:`geo.store.base.Store.snapshot`.

        A deferred read transaction (``BEGIN`` … ``COMMIT``).  The store keeps a rollback
        journal, so from its first read to its end the snapshot holds a shared lock and
        every commit (of any connection) waits for it: keep it short, and wait for nothing
        of this process inside it -- another thread's cache fill may be waiting for a
        commit the snapshot holds back.  Inside a write transaction or another snapshot it
        is that one.
        """
        if self._depth or self._reading:
            yield
            return
        conn = self.conn
        try:
            conn.execute("BEGIN")
        except apsw.Error as exc:
            raise _store_error(exc, conn.system_errno) from exc
        self._reading = True
        try:
            yield
        finally:
            self._reading = False
            with contextlib.suppress(apsw.Error):
                conn.execute("COMMIT")

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All-or-nothing write scope (``BEGIN IMMEDIATE`` … ``COMMIT``); nests."""
        if self._reading:
            raise RuntimeError("transaction() cannot start inside snapshot()")
        conn = self.conn
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        try:
            conn.execute("BEGIN IMMEDIATE")
        except apsw.Error as exc:
            raise _store_error(exc, conn.system_errno) from exc
        self._depth = 1
        self._tx = None
        try:
            # A new random revision at the start: caches filled inside the transaction are keyed by
            # it, so if the transaction rolls back they can never be hit again.
            if self._has_meta():
                conn.execute("UPDATE gw_meta SET value = ? WHERE key = 'revision'", (uuid.uuid4().hex,))
            yield
            self._stamp_tx()
            conn.execute("COMMIT")
            self._pending_archives.clear()
        except BaseException as exc:
            os_errno = conn.system_errno  # of the failed write, before the rollback
            with contextlib.suppress(apsw.Error):
                conn.execute("ROLLBACK")
            for folder in self._pending_archives:
                shutil.rmtree(folder, ignore_errors=True)
            self._pending_archives.clear()
            if isinstance(exc, apsw.Error):
                raise _store_error(exc, os_errno) from exc
            raise
        finally:
            self._depth = 0
            self._tx = None

    # write transactions ----------------------------------------------------------------------
    def begin_tx(self, kind: str, batch_id: int | None = None) -> int:
        """The ``gw_tx`` row of the write transaction under way, made by its first call (later
        calls in the same transaction return it).  Must be called inside :meth:`transaction`."""
        if not self._depth:
            raise RuntimeError("begin_tx must run inside transaction()")
        if self._tx is None:
            self.conn.execute(
                "INSERT INTO gw_tx (at, kind, batch_id) VALUES (?,?,?)", (clock.now_stamp(), kind, batch_id)
            )
            self._tx = int(self.conn.last_insert_rowid())
        return self._tx

    def _tx_id(self) -> int:
        return self._tx if self._tx is not None else self.begin_tx("write")

    def _stamp_tx(self) -> None:
        """Stamp the transaction's tx with the moment it commits (after every earlier stamp), so a
        reader that saw the store before the commit never has a stamp after what it saw."""
        if self._tx is None:
            return
        previous = scalar_args(self.conn, "SELECT max(at) FROM gw_tx WHERE id < ?", (self._tx,))
        self.conn.execute("UPDATE gw_tx SET at=? WHERE id=?", (clock.next_stamp(previous), self._tx))

    def _has_tx(self) -> bool:
        return self._has_table("gw_tx")

    def last_tx(self) -> Tx | None:
        """See :meth:`geo.store.base.Store.last_tx`.

        The newest ``gw_tx`` row; None in a store without the table.
        """
        if not self._has_tx():
            return None
        row = self.conn.execute(
            "SELECT id, at, kind, batch_id FROM gw_tx ORDER BY id DESC LIMIT 1"
        ).fetchone()
        return None if row is None else Tx(*row)

    def tx_at(self, stamp: str) -> int:
        """The last tx stamped at or before ``stamp`` (0 when none)."""
        if not self._has_tx():
            raise StoreError(
                "存储尚未升级到记录写入时点的版本（只读），无法按时点统计",
                "the store has not been upgraded to record write times (it is read-only): --known-at is unavailable",
                code="no_history",
            )
        return int(scalar_args(self.conn, "SELECT coalesce(max(id), 0) FROM gw_tx WHERE at <= ?", (stamp,)))

    def tx(self, tx_id: int) -> Tx | None:
        """See :meth:`geo.store.base.Store.tx`.

        The ``gw_tx`` row ``tx_id``; None in a store without the table.
        """
        if not self._has_tx():
            return None
        row = self.conn.execute("SELECT id, at, kind, batch_id FROM gw_tx WHERE id=?", (tx_id,)).fetchone()
        return None if row is None else Tx(*row)

    def layer_revision(self, layer: str, tx: int | None = None) -> tuple[int | None, int | None]:
        """(last tx, its batch) at or before ``tx`` that wrote or rolled back a batch of ``layer``."""
        if not self._has_tx():
            return None, None
        row = self.conn.execute(
            "SELECT t.id, t.batch_id FROM gw_tx t JOIN gw_batches b ON b.id = t.batch_id"
            " WHERE b.layer=? AND t.id <= ? ORDER BY t.id DESC LIMIT 1",
            (layer, tx if tx is not None else 2**63 - 1),
        ).fetchone()
        return (None, None) if row is None else (int(row[0]), int(row[1]))

    # meta ----------------------------------------------------------------------------------
    def _meta(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM gw_meta WHERE key=?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def srs_epsg(self) -> int | None:
        """See :meth:`geo.store.interface.features.FeatureStore.srs_epsg`.

        Kept in ``gw_meta`` under ``srs_epsg``.
        """
        v = self._meta("srs_epsg")
        return int(v) if v else None

    def _has_meta(self) -> bool:
        return bool(self.conn.execute("SELECT 1 FROM sqlite_master WHERE name='gw_meta'").fetchone())

    def revision(self) -> str:
        """See :meth:`geo.store.base.Store.revision`.

        Kept in ``gw_meta`` under ``revision``: a new random value at the start of each
        :meth:`transaction`; empty in a store without the table.
        """
        return self._meta("revision") or ""

    def _has_table(self, name: str) -> bool:
        return bool(
            self.conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (name,)).fetchone()
        )

    def layer_generation(self, spec: LayerSpec) -> str:
        """Token that changes whenever the rows or geometries of ``spec`` change."""
        return self.generation(spec.name)

    def generation(self, name: str) -> str:
        """See :meth:`geo.store.interface.features.FeatureStore.generation`.

        Kept in ``gw_meta`` under ``gen:<name>``; empty before the first write.
        """
        return self._meta(f"gen:{name}") or ""

    def writing(self) -> bool:
        """See :meth:`geo.store.base.Store.writing`."""
        return bool(self._depth)

    def _bump_generation(self, spec: LayerSpec | str) -> None:
        # a fresh random token, so a generation rolled back with its transaction is never reused
        name = spec if isinstance(spec, str) else spec.name
        self.conn.execute("INSERT OR REPLACE INTO gw_meta VALUES (?, ?)", (f"gen:{name}", uuid.uuid4().hex))

    @contextmanager
    def admin_transaction(self) -> Iterator[None]:
        """All-or-nothing scope for the account and audit tables: inside the current
        transaction when there is one, else its own -- without a new revision, since no
        survey data changes (cached figures stay valid)."""
        if self._reading:
            raise RuntimeError("admin_transaction() cannot start inside snapshot()")
        if self._depth:
            yield
            return
        conn = self.conn
        try:
            conn.execute("BEGIN IMMEDIATE")
        except apsw.Error as exc:
            raise _store_error(exc, conn.system_errno) from exc
        self._depth = 1
        try:
            yield
            conn.execute("COMMIT")
        except BaseException as exc:
            os_errno = conn.system_errno
            with contextlib.suppress(apsw.Error):
                conn.execute("ROLLBACK")
            if isinstance(exc, apsw.Error):
                raise _store_error(exc, os_errno) from exc
            raise
        finally:
            self._depth = 0

    def _has_accounts(self) -> bool:
        return bool(self.conn.execute("SELECT 1 FROM sqlite_master WHERE name='gw_users'").fetchone())


def scalar_args(conn: apsw.Connection, sql: str, args: tuple[Any, ...]) -> Any:
    """The first column of the first row of ``sql`` run with ``args`` (None: no row)."""
    row = conn.execute(sql, args).fetchone()
    return None if row is None else row[0]


def scalar(conn: apsw.Connection, sql: str) -> Any:
    """The first column of the first row of ``sql`` (None: no row)."""
    row = conn.execute(sql).fetchone()
    return None if row is None else row[0]


def _store_error(exc: apsw.Error, os_errno: int | None = None) -> StoreError:
    """The user's view of a failed SQLite call; ``os_errno`` is the OS error of the last failed
    file operation (``Connection.system_errno``), which tells what a plain I/O error was: a
    write beyond the file size allowed (EFBIG) or on a full disk, or on a read-only file."""
    text = f"{type(exc).__name__} {exc}".lower()
    if "readonly" in text or "read-only" in text:
        return read_only()
    if isinstance(exc, apsw.FullError):
        return disk_full()
    if isinstance(exc, (apsw.IOError, apsw.CantOpenError)) and (known := write_error(os_errno)):
        return known
    if "locked" in text or "busy" in text:
        return StoreError("存储正忙，请稍后重试", "the store is busy, try again", code="store_busy")
    return StoreError(f"存储错误: {exc}", f"store error: {exc}")
