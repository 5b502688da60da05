"""The connection every component of the GeoPackage store shares, and its one transaction.

One ``apsw`` connection per store handle; :meth:`GpkgConnection.transaction` is the scope all
writes of every component happen in (features, the batch register, targets, the audit log), so
they commit or roll back together.  Also here: the write log (``gw_tx``), the meta values
(store CRS, revision, layer generations), the journal (WAL where it can work, see
:meth:`GpkgConnection.conn`), copies of the store (:meth:`GpkgConnection.backup`) and the
translation of SQLite errors.
"""

from __future__ import annotations

import contextlib
import logging
import os
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, Self
from urllib.parse import quote

import apsw
import numpy as np

from geo.errors import StoreError, disk_full, read_only, write_error
from geo.store import clock, memory
from geo.store.base import TransactionScopes, Tx
from geo.store.cache import cache_for
from geo.store.gpkg.changes import log_step, read_changes
from geo.store.gpkg.spatial import register_functions
from geo.store.interface.audit import Actor
from geo.store.interface.changes import Changes
from geo.store.interface.changes import enabled as changes_enabled
from layers.base import LayerSpec

#: at INFO: the command line prints warnings, and one line is all it prints for a refusal
_LOG = logging.getLogger("gridwatch")

#: ``$GRIDWATCH_SQLITE_JOURNAL``: ``wal`` (the default) or ``delete`` (keep the rollback journal of a
#: store that has one -- for comparison, or a file system where WAL misbehaves without failing)
JOURNAL_ENV = "GRIDWATCH_SQLITE_JOURNAL"

#: The page cache of a connection (KiB): 128 MiB.
PAGE_CACHE_KIB = 128 * 1024
#: What a write transaction may add to it per row it writes (:meth:`GpkgConnection.make_room`).
PAGE_CACHE_KIB_PER_ROW = 4
#: The most a write transaction's page cache may grow to (KiB): 1.5 GiB.
PAGE_CACHE_MAX_KIB = 1536 * 1024


class GpkgConnection(TransactionScopes):
    """The shared state of a :class:`geo.store.gpkg.GpkgStore`: its file, connection, transaction
    depth, the ``gw_tx`` row of the write under way and the actor writing.

    Parameters
    ----------
    path : Path
        The ``.gpkg`` file; its directory is created when missing.
    data_dir : Path, optional
        The data directory, where archived uploads are kept (default: the file's folder).
    """

    def __init__(self, path: Path, data_dir: Path | None = None):
        self.path = Path(path)
        self.location = str(self.path)
        self.data_dir = self.path.parent if data_dir is None else Path(data_dir)
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
        #: the page cache's size now (KiB): raised by :meth:`make_room` for one transaction
        self._cache_kib = PAGE_CACHE_KIB
        #: the journal of :attr:`conn`: ``wal``, a rollback journal mode (``delete``) or
        #: ``immutable`` (read-only without locks); empty until it is opened
        self.journal = ""

    # connection ----------------------------------------------------------------------------
    @property
    def conn(self) -> apsw.Connection:
        """The ``apsw`` connection, opened on first use.

        The store is switched to WAL (write-ahead log) when it is opened writable: readers then
        read the last committed state without waiting for a writer, and a writer does not wait
        for readers.  Where that cannot work the rollback journal is kept, with a log line:
        a store gridwatch may not write (WAL needs the ``-wal`` and ``-shm`` files beside it), a
        file system without the shared memory WAL needs (the pragma fails or answers another
        mode), or ``$GRIDWATCH_SQLITE_JOURNAL=delete``.  A store already in WAL that sits where
        those files cannot be made (a read-only directory or mount) and has no committed pages
        left in its ``-wal`` is opened immutable: read-only, without locks.
        """
        if self._conn is None:
            try:
                conn = apsw.Connection(str(self.path))
            except apsw.Error as exc:
                raise StoreError(f"无法打开存储文件: {self.path}", f"cannot open store: {exc}") from exc
            try:
                self.journal = _journal(conn, self.path)
            except apsw.Error as exc:
                conn.close()
                conn = self._open_immutable(exc)
            conn.set_busy_timeout(60_000)
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=OFF")
            conn.execute("PRAGMA temp_store=MEMORY")
            conn.execute(f"PRAGMA cache_size=-{PAGE_CACHE_KIB}")  # index inserts stay in memory
            register_functions(conn)  # what the R-tree triggers call
            self._conn = conn
        return self._conn

    def _open_immutable(self, exc: apsw.Error) -> apsw.Connection:
        """The store in WAL mode where its ``-shm`` cannot be made, opened immutable (see
        :attr:`conn`); else the failure to open it."""
        wal = Path(f"{self.path}-wal")
        if _wal_header(self.path) and not (wal.exists() and wal.stat().st_size > 0):
            conn = None
            try:
                conn = apsw.Connection(
                    f"file:{quote(str(self.path.resolve()))}?immutable=1",
                    flags=apsw.SQLITE_OPEN_READONLY | apsw.SQLITE_OPEN_URI,
                )
                conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            except apsw.Error:
                if conn is not None:
                    conn.close()
            else:
                _LOG.info(
                    "store %s: WAL file cannot be made here (%s), opened read-only and immutable",
                    self.path,
                    exc,
                )
                self.journal = "immutable"
                return conn
        raise StoreError(f"无法打开存储文件: {self.path}", f"cannot open store: {exc}") from exc

    def close(self) -> None:
        """See :meth:`geo.store.base.Store.close`.

        Closes the ``apsw`` connection; the next use of :attr:`conn` opens a new one.  When
        its page cache held :data:`geo.store.memory.RELEASE_AFTER_BYTES` or more (a request
        that read a large layer), the freed memory is given back to the system
        (:func:`geo.store.memory.release`).
        """
        if self._conn is not None:
            try:
                used = int(self._conn.status(apsw.SQLITE_DBSTATUS_CACHE_USED)[0])
            except apsw.Error:
                used = 0
            self._conn.close()
            self._conn = None
            if used >= memory.RELEASE_AFTER_BYTES:
                memory.release()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """See :meth:`geo.store.base.Store.snapshot`.

        A deferred read transaction (``BEGIN`` … ``COMMIT``): every read in it sees the state
        committed before its first read.  In WAL (see :attr:`conn`) commits of other
        connections go on meanwhile and land beside it, unseen until it ends; other readers
        of the file -- GDAL in the helper process among them -- see those newer states, so
        nothing read elsewhere may be mixed with what is read inside.  With a rollback
        journal (a store gridwatch may not write, or a file system without WAL) the
        snapshot holds a shared lock from its first read to its end and every commit waits
        for it: keep it short, and wait for nothing of this process inside it -- another
        thread's cache fill may be waiting for a commit the snapshot holds back.  Inside a
        write transaction or another snapshot it is that one.
        """
        with TransactionScopes.snapshot(self):
            yield

    def transaction(self) -> AbstractContextManager[None]:
        """All-or-nothing write scope (``BEGIN IMMEDIATE`` … ``COMMIT``); nests."""
        return self.write_scope(new_revision=True)

    # the scopes' statements (see geo.store.base.TransactionScopes)
    _BEGIN_WRITE = "BEGIN IMMEDIATE"
    _DB_ERRORS = (apsw.Error,)

    def _scope_sql(self, statement: str) -> None:
        self.conn.execute(statement)

    def _translate(self, exc: BaseException) -> BaseException:
        # the OS error of the failed call, before the rollback
        return _store_error(exc, self.conn.system_errno) if isinstance(exc, apsw.Error) else exc

    def _new_revision(self) -> None:
        if self._has_meta():
            self.conn.execute("UPDATE gw_meta SET value = ? WHERE key = 'revision'", (uuid.uuid4().hex,))

    def _end_write(self) -> None:
        # the page cache back to its size once a write that made room for its rows ends
        if self._cache_kib != PAGE_CACHE_KIB:
            self._cache_kib = PAGE_CACHE_KIB
            with contextlib.suppress(apsw.Error):
                self.conn.execute(f"PRAGMA cache_size=-{PAGE_CACHE_KIB}")

    def make_room(self, rows: int) -> None:
        """Let this write transaction keep the pages of ``rows`` more rows in memory (about
        :data:`PAGE_CACHE_KIB_PER_ROW` each, up to :data:`PAGE_CACHE_MAX_KIB` in all) until it ends.

        A transaction's changed pages stay in the page cache until it commits; once they fill
        it, SQLite writes them out early and reads them back as the inserts go on.  A
        227,000-row batch (a 100 MB upload) filled the default cache, and its inserts (the
        R-tree's above all) then took 2.5 times as long.  Memory is taken only as pages are
        changed, and the cache goes back to its size when the transaction ends."""
        if not self._depth:
            return
        want = min(PAGE_CACHE_MAX_KIB, PAGE_CACHE_KIB + PAGE_CACHE_KIB_PER_ROW * max(0, int(rows)))
        if want > self._cache_kib:
            self.conn.execute(f"PRAGMA cache_size=-{want}")
            self._cache_kib = want

    def backup(self, dest: Path) -> None:
        """Copy the committed state of the store to the new file ``dest``, whole.

        Through SQLite's backup API, so the copy holds every committed transaction whether its
        pages are in the store file or still in its ``-wal`` (a plain file copy of a WAL store
        misses those), and is made while readers and writers go on.  The copy is a single file
        with a rollback journal, ready to be moved or archived; it does not include the
        archived originals under ``archive/``.

        Parameters
        ----------
        dest : Path
            The copy; must not exist yet.
        """
        dest = Path(dest)
        if dest.exists() or Path(f"{dest}-wal").exists():
            raise StoreError(
                f"目标文件已存在: {dest}", f"the copy already exists: {dest}", code="copy_exists"
            )
        if self._depth:
            raise RuntimeError("backup() cannot run inside transaction()")
        try:
            with contextlib.closing(apsw.Connection(str(dest))) as target:
                with target.backup("main", self.conn, "main") as copying:
                    while not copying.done:
                        copying.step(4096)
                if str(scalar(target, "PRAGMA journal_mode")).lower() == "wal":
                    target.execute("PRAGMA journal_mode=DELETE")
        except apsw.Error as exc:
            dest.unlink(missing_ok=True)
            raise _store_error(exc, self.conn.system_errno) from exc

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

    def _bump_generation(self, spec: LayerSpec | str, touched: np.ndarray | None = None) -> None:
        # a fresh random token, so a generation rolled back with its transaction is never reused
        name = spec if isinstance(spec, str) else spec.name
        before = self.generation(name)
        after = uuid.uuid4().hex
        self.conn.execute("INSERT OR REPLACE INTO gw_meta VALUES (?, ?)", (f"gen:{name}", after))
        if not isinstance(spec, str):
            # the fids this write touched (None: any), for caches of the older generation
            log_step(self.conn, name, before, after, touched)

    def changes(self, spec: LayerSpec, since_generation: str) -> Changes | None:
        """See :meth:`geo.store.interface.changes.ChangeLog.changes`.

        Read from ``gw_changes`` (:mod:`geo.store.gpkg.changes`) in one snapshot with the
        layer's generation.
        """
        if not changes_enabled():
            return None
        with self.snapshot():
            return read_changes(self.conn, spec.name, since_generation, self.layer_generation(spec))

    @contextmanager
    def admin_transaction(self) -> Iterator[None]:
        """All-or-nothing scope for the account and audit tables: inside the current
        transaction when there is one, else its own -- without a new revision, since no
        survey data changes (cached figures stay valid)."""
        with self.write_scope(new_revision=False, name="admin_transaction"):
            yield

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


def _journal(conn: apsw.Connection, path: Path) -> str:
    """Switch the freshly opened ``conn`` to WAL where it can work (see
    :attr:`GpkgConnection.conn`) and return its journal mode; a store that cannot be read at
    all raises."""
    wanted = os.environ.get(JOURNAL_ENV, "wal").strip().lower() or "wal"
    reason = f"${JOURNAL_ENV}={wanted}"
    if wanted == "wal":
        try:
            # no busy wait: switching a store that another connection is reading fails at once,
            # and the next connection opened tries again
            answer = str(scalar(conn, "PRAGMA journal_mode=WAL")).lower()
        except apsw.Error as exc:
            answer, reason = "", str(exc)
        if answer == "wal":
            return "wal"
        if answer:
            reason = f"the file system answered journal_mode={answer}"
    conn.set_busy_timeout(60_000)
    mode = str(scalar(conn, "PRAGMA journal_mode")).lower()  # raises when the store cannot be read
    if mode != "wal":
        _LOG.info("store %s: rollback journal kept (%s)", path, reason)
    return mode


def _wal_header(path: Path) -> bool:
    """Whether the SQLite file ``path`` is in WAL mode (its header's read and write versions are 2)."""
    try:
        with open(path, "rb") as fh:
            header = fh.read(20)
    except OSError:
        return False
    return len(header) == 20 and header[18:20] == b"\x02\x02"
