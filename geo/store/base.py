"""The store interface: where layers, batches, targets, accounts and the audit trail live.

Callers use :func:`geo.store.backends.open_store` and the :class:`Store` protocol only; they
never know which backend they hold.  A store is made of components, each a protocol of its own
module in :mod:`geo.store.interface` -- the feature store (:mod:`~geo.store.interface.features`),
the batch register (:mod:`~geo.store.interface.batches`), targets
(:mod:`~geo.store.interface.targets`), accounts (:mod:`~geo.store.interface.accounts`), the
audit trail (:mod:`~geo.store.interface.audit`) and remembered value maps
(:mod:`~geo.store.interface.value_maps`) -- and all of them write inside the one
:meth:`Store.transaction` of the handle, so a write that touches several commits or rolls back
as one.  The embedded default is one GeoPackage file (:mod:`geo.store.gpkg`); a PostGIS
backend can be registered under another URL scheme without touching callers.  Nothing here
imports a backend.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from geo.store.cache import StoreCache
from geo.store.interface.accounts import AccountStore
from geo.store.interface.audit import AuditLog
from geo.store.interface.batches import BatchRegister, archive_files
from geo.store.interface.changes import ChangeLog
from geo.store.interface.features import FeatureStore
from geo.store.interface.outbox import WebhookStore
from geo.store.interface.patrols import PatrolStore
from geo.store.interface.photos import PhotoStore
from geo.store.interface.targets import TargetStore
from geo.store.interface.tasks import TaskStore
from geo.store.interface.value_maps import ValueMapStore

DEFAULT_DATA_DIR = Path("var") / "gridwatch"
STORE_FILE = "gridwatch.gpkg"


def data_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The data directory: ``explicit``, else ``$GRIDWATCH_DATA``, else ``./var/gridwatch``."""
    if explicit:
        return Path(explicit)
    env = os.environ.get("GRIDWATCH_DATA")
    return Path(env) if env else DEFAULT_DATA_DIR


@dataclass
class Tx:
    """One write transaction: its id, when it committed (UTC stamp with microseconds, see
    :mod:`geo.store.clock`), what it was and the batch it wrote or rolled back."""

    id: int
    at: str
    kind: str
    batch_id: int | None = None


class Store(
    FeatureStore,
    ChangeLog,
    BatchRegister,
    TargetStore,
    AccountStore,
    AuditLog,
    ValueMapStore,
    WebhookStore,
    PhotoStore,
    PatrolStore,
    TaskStore,
    Protocol,
):
    """What every backend provides: the components, sharing one transaction.  All writes happen
    inside :meth:`transaction` (survey data, grid, targets) or :meth:`admin_transaction`
    (accounts, audit, value maps)."""

    location: str
    #: what this process keeps of the store between requests (shared by its handles)
    cache: StoreCache

    def revision(self) -> str:
        """A token that changes with every write transaction and is never reused (for caches)."""
        ...

    def transaction(self) -> AbstractContextManager[None]:
        """All-or-nothing write scope: on any exception nothing is kept."""
        ...

    def preview_transaction(self) -> AbstractContextManager[None]:
        """The scope of an import's dry run (:func:`geo.imports.commit.commit_import`): the
        import's writes -- a batch, feature rows, their units and extent, value mappings --
        report what they would do and are never committed.  A backend that can work that out
        without writing (PostGIS) takes no lock another writer or a reader waits on and changes
        no table; one that cannot (the GeoPackage) makes the write and rolls it back.  Not for a
        grid replacement (its new version is worked out by writing it)."""
        ...

    def writing(self) -> bool:
        """Whether this handle is inside :meth:`transaction` (what it reads may not be
        committed, and generations may not be bumped yet: see
        :func:`geo.store.cache.generations`)."""
        ...

    def snapshot(self) -> AbstractContextManager[None]:
        """Read scope in which every read sees one state of the store, whatever commits
        meanwhile -- for reads that must agree row for row.  No writes inside; keep it short
        (a backend may hold commits back until it ends)."""
        ...

    def admin_transaction(self) -> AbstractContextManager[None]:
        """Like :meth:`transaction` for account and audit writes, keeping :meth:`revision`."""
        ...

    def begin_tx(self, kind: str, batch_id: int | None = None) -> int:
        """Record the write transaction under way (``kind``: import, grid, targets, rollback) and
        return its id; later calls in the same transaction return the same id.  Every write
        of survey data, grid or targets happens in a recorded transaction, stamped with the
        moment it commits."""
        ...

    def last_tx(self) -> Tx | None:
        """The latest write transaction (None for a store never written)."""
        ...

    def tx(self, tx_id: int) -> Tx | None:
        """The write transaction ``tx_id``, or None when there is none (or the store keeps no write log)."""
        ...

    def tx_at(self, stamp: str) -> int:
        """The last transaction stamped at or before ``stamp`` (a :func:`geo.store.clock.stamp`), 0 when none."""
        ...

    def layer_revision(self, layer: str, tx: int | None = None) -> tuple[int | None, int | None]:
        """(last transaction at or before ``tx``, its batch) that wrote or rolled back a batch of ``layer``."""
        ...

    def close(self) -> None:
        """Release what the handle holds open (its connection); using the handle again reopens it."""
        ...


class TransactionScopes:
    """The scopes of a backend's one connection, the same on every backend: a write
    transaction that nests (a depth count), a read snapshot (a flag) that is the enclosing
    transaction or snapshot when there is one, the ``gw_tx`` row of the write under way, and
    archived upload folders removed again when their transaction rolls back.

    A backend provides the statements (:attr:`_BEGIN_READ`, :attr:`_BEGIN_WRITE`), runs one
    (:meth:`_scope_sql`), says which exceptions are its database's (:attr:`_DB_ERRORS`) and
    how a user sees one (:meth:`_translate`, called before the rollback, while the failure's
    details are still there), writes a new revision (:meth:`_new_revision`) and stamps the
    transaction's tx at commit (:meth:`_stamp_tx`).
    """

    _BEGIN_READ = "BEGIN"
    _BEGIN_WRITE = "BEGIN"
    _DB_ERRORS: tuple[type[BaseException], ...] = ()
    _depth: int
    _reading: bool
    _tx: int | None
    _pending_archives: list[Path]
    cache: StoreCache

    def _scope_sql(self, statement: str) -> None:
        """Run ``BEGIN`` / ``COMMIT`` / ``ROLLBACK`` on the connection (raising the database's errors)."""
        raise NotImplementedError

    def _translate(self, exc: BaseException) -> BaseException:
        """The user's view of the database error ``exc``."""
        return exc

    def _new_revision(self) -> None:
        """Write a new random revision (at the start of a write transaction)."""

    def _stamp_tx(self) -> None:
        """Stamp the transaction's tx (if any) with the moment it commits."""

    def _commits(self) -> bool:
        """Whether the write scope's ``COMMIT`` commits (a backend's preview rolls back instead)."""
        return True

    def _end_write(self) -> None:
        """Undo what the write transaction set up for itself (it has just ended, either way)."""

    def _archive(self, data: Path, batch_id: int, sources: list[Path]) -> str:
        """Copy the sources of batch ``batch_id`` to ``<data>/archive/<id:06d>/`` (what a batch
        that did not commit left there removed first), to be removed again if this transaction
        rolls back; the folder relative to ``data``, as ``gw_archive`` keeps it."""
        relative = Path("archive") / f"{batch_id:06d}"
        folder = data / relative
        shutil.rmtree(folder, ignore_errors=True)  # left by an import that did not commit
        self._pending_archives.append(folder)
        archive_files(folder, sources, data)
        return str(relative)

    def _begin(self, statement: str) -> None:
        try:
            self._scope_sql(statement)
        except self._DB_ERRORS as exc:
            raise self._translate(exc) from exc

    def _quietly(self, statement: str) -> None:
        with contextlib.suppress(*self._DB_ERRORS):
            self._scope_sql(statement)

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """See :meth:`Store.snapshot`: :attr:`_BEGIN_READ` … ``COMMIT``; inside a write
        transaction or another snapshot it is that one."""
        if self._depth or self._reading:
            yield
            return
        self._begin(self._BEGIN_READ)
        self._reading = True
        try:
            yield
        finally:
            self._reading = False
            self._quietly("COMMIT")

    def preview_transaction(self) -> AbstractContextManager[None]:
        """See :meth:`Store.preview_transaction`: by default :meth:`Store.transaction`, which
        the dry run rolls back."""
        return self.write_scope(new_revision=True)

    @contextmanager
    def write_scope(self, new_revision: bool, name: str = "transaction") -> Iterator[None]:
        """The write scope of :meth:`Store.transaction` (``new_revision``) and
        :meth:`Store.admin_transaction` (without): :attr:`_BEGIN_WRITE` … ``COMMIT``, or
        ``ROLLBACK`` on any exception (the archived folders of the transaction removed, a
        database error translated); inside the current transaction it is that one."""
        if self._reading:
            raise RuntimeError(f"{name}() cannot start inside snapshot()")
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        self._begin(self._BEGIN_WRITE)
        self._depth = 1
        self._tx = None
        # what the transaction keeps in the store's cache is seen by this thread only, and kept
        # for every thread only once it has committed (a rolled-back write leaves the cache as
        # it was: see geo.store.cache)
        stage = self.cache.stage()
        try:
            if new_revision:
                # a fresh random revision at the start: entries keyed by the transaction are
                # keyed by a value never seen again
                self._new_revision()
            yield
            self._stamp_tx()
            self._scope_sql("COMMIT")
            self._pending_archives.clear()
            if self._commits():
                stage.publish()
        except BaseException as exc:
            error = self._translate(exc) if isinstance(exc, self._DB_ERRORS) else None
            try:
                self._quietly("ROLLBACK")
            finally:  # even when the rollback fails: the archived files of a batch that did not commit
                for folder in self._pending_archives:
                    shutil.rmtree(folder, ignore_errors=True)
                self._pending_archives.clear()
            if error is not None:
                raise error from exc
            raise
        finally:
            self._depth = 0
            self._tx = None
            stage.end()
            self._end_write()
