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

import os
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from geo.store.cache import StoreCache
from geo.store.interface.accounts import AccountStore
from geo.store.interface.audit import AuditLog
from geo.store.interface.batches import BatchRegister
from geo.store.interface.changes import ChangeLog
from geo.store.interface.features import FeatureStore
from geo.store.interface.targets import TargetStore
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
    FeatureStore, ChangeLog, BatchRegister, TargetStore, AccountStore, AuditLog, ValueMapStore, Protocol
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
