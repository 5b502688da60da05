"""The store interface: where layers, batches, targets and archived sources live.

Callers use :func:`open_store` and the :class:`Store` protocol only; they never know
which backend they hold.  The embedded default is one GeoPackage file
(:mod:`geo.store.gpkg`); a PostGIS backend can be registered under another URL scheme
without touching callers.
"""

from __future__ import annotations

import os
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import pandas as pd
import pyarrow as pa
import shapely

from layers.base import LayerSpec

DEFAULT_DATA_DIR = Path("var") / "gridwatch"
STORE_FILE = "gridwatch.gpkg"


def data_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The data directory: ``explicit``, else ``$GRIDWATCH_DATA``, else ``./var/gridwatch``."""
    if explicit:
        return Path(explicit)
    env = os.environ.get("GRIDWATCH_DATA")
    return Path(env) if env else DEFAULT_DATA_DIR


@dataclass
class Batch:
    """One import: a file, its checksum and what it changed."""

    id: int
    layer: str
    source_name: str
    checksum: str
    created_at: str
    user: str | None
    status: Literal["active", "rolled_back"]
    rows_read: int
    added: int
    updated: int
    unchanged: int
    rejected: int
    encoding: str | None
    crs: str | None
    rolled_back_at: str | None = None
    report: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out.pop("report", None)
        return out


@dataclass
class FeatureRows:
    """Features ready to store, in the store's projected CRS.

    Parameters
    ----------
    attrs : DataFrame
        Canonical fields of the layer (missing ones may be absent).
    geometry : ndarray of shapely geometries
        In the store CRS (metres).
    keys : ndarray of str
        Survey id per row (``None`` where the row has none).
    units : ndarray of str
        Assigned unit-grid code per row, or ``UNASSIGNED``.
    source_rows : ndarray of int, optional
        1-based record number of each row in the file it was read from.
    """

    attrs: pd.DataFrame
    geometry: np.ndarray
    keys: np.ndarray
    units: np.ndarray
    source_rows: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.geometry)


@dataclass
class WriteResult:
    added: int
    updated: int
    unchanged: int
    removed: int = 0
    #: fids of the rows written (new row versions) and, for each, its position in the rows given
    fids: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    rows: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))


@dataclass
class Tx:
    """One write transaction: its id, when it committed (UTC stamp with microseconds, see
    :mod:`geo.store.clock`), what it was and the batch it wrote or rolled back."""

    id: int
    at: str
    kind: str
    batch_id: int | None = None


@dataclass
class GridVersion:
    """One import of the unit grid as a version of it.

    ``valid_from`` (ISO day) is the first day it is in force; ``tx`` the write that made it;
    ``parent`` the version current then; ``rolled_back_tx`` the rollback that ended it (None
    while it lives); ``units`` its number of cells; ``created_at`` and ``user`` from its batch.
    """

    id: int
    valid_from: str
    tx: int
    parent: int | None = None
    rolled_back_tx: int | None = None
    units: int = 0
    created_at: str = ""
    user: str | None = None

    def alive(self, tx: int | None = None) -> bool:
        """Whether the version existed, not rolled back, at ``tx`` (None: now)."""
        if tx is None:
            return self.rolled_back_tx is None
        return self.tx <= tx and (self.rolled_back_tx is None or self.rolled_back_tx > tx)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class Actor:
    """Who is writing: a user name (None for the system) and where from (an IP address,
    ``"cli"``).  Set on a store handle; every write recorded in the audit trail names it."""

    user: str | None = None
    client: str | None = None


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


@dataclass
class ValueMap:
    """A remembered value mapping: in ``layer``'s ``field``, the raw text whose
    :func:`geo.reading.vocab.vocab_key` is ``raw_key`` is stored as ``code``.  Removing one marks it
    (``removed_at``); it is never erased."""

    id: int
    layer: str
    field: str
    raw_key: str
    raw: str
    code: str
    user: str | None
    created_at: str
    removed_at: str | None = None
    removed_by: str | None = None


class Store(Protocol):
    """What every backend provides.  All writes happen inside :meth:`transaction`."""

    location: str
    #: Who writes through this handle (recorded with every write in the audit trail).
    actor: Actor

    def srs_epsg(self) -> int | None:
        """EPSG code of the projected CRS features are stored in (metres), or None when empty."""
        ...

    def set_srs_epsg(self, epsg: int) -> None: ...

    def revision(self) -> str:
        """A token that changes with every write transaction and is never reused (for caches)."""
        ...

    def layer_generation(self, spec: LayerSpec) -> str:
        """A token that changes whenever the rows or geometries of ``spec`` change."""
        ...

    def transaction(self) -> AbstractContextManager[None]:
        """All-or-nothing write scope: on any exception nothing is kept."""
        ...

    # the write history: transactions, row versions, grid versions
    def begin_tx(self, kind: str, batch_id: int | None = None) -> int:
        """Record the write transaction under way (``kind``: import, grid, targets, rollback) and
        return its id; later calls in the same transaction return the same id.  Every write
        of survey data, grid or targets happens in a recorded transaction, stamped with the
        moment it commits."""
        ...

    def last_tx(self) -> Tx | None:
        """The latest write transaction (None for a store never written)."""
        ...

    def tx(self, tx_id: int) -> Tx | None: ...

    def tx_at(self, stamp: str) -> int:
        """The last transaction stamped at or before ``stamp`` (a :func:`geo.store.clock.stamp`), 0 when none."""
        ...

    def layer_revision(self, layer: str, tx: int | None = None) -> tuple[int | None, int | None]:
        """(last transaction at or before ``tx``, its batch) that wrote or rolled back a batch of ``layer``."""
        ...

    def grid_versions(self) -> list[GridVersion]:
        """Every grid version, rolled back ones too, oldest first."""
        ...

    def current_grid_version(self) -> GridVersion | None:
        """The newest version not rolled back: the grid stored as the grid layer."""
        ...

    def add_grid_version(self, batch_id: int, valid_from: str) -> GridVersion:
        """Register the grid just written by ``batch_id`` as a new version, valid from ``valid_from``."""
        ...

    def retire_grid_version(self, batch_id: int) -> None:
        """Mark the version of grid batch ``batch_id`` rolled back by the transaction under way."""
        ...

    def write_assignment(self, spec: LayerSpec, version: int, fids: np.ndarray, units: np.ndarray) -> None:
        """Keep the unit of row versions ``fids`` on grid ``version`` (for a version with a
        parent, only where it differs from the parent's)."""
        ...

    def keep_assignment(self, spec: LayerSpec, version: int, fids: np.ndarray | None = None) -> None:
        """Keep the stored unit of the current rows ``fids`` (all: None) as their unit on grid ``version``."""
        ...

    def read_visible(
        self, spec: LayerSpec, tx: int, columns: list[str], geometry: bool = True
    ) -> tuple[pd.DataFrame, np.ndarray]:
        """``fid`` plus ``columns`` and (with ``geometry``) the geometry of the row versions visible
        at ``tx``."""
        ...

    def read_retired(self, spec: LayerSpec) -> tuple[np.ndarray, np.ndarray]:
        """``(fid, geometry)`` of retired row versions whose fid is no current row's."""
        ...

    def new_batch(self, batch: Batch, sources: list[Path] | None) -> int:
        """Register a batch and keep a copy of its source files."""
        ...

    def finish_batch(self, batch_id: int, counts: dict[str, int], report: dict[str, Any]) -> None: ...

    def write_features(
        self, spec: LayerSpec, batch_id: int, rows: FeatureRows, replace_all: bool
    ) -> WriteResult:
        """Upsert ``rows`` by survey key, or replace the whole layer when ``replace_all``."""
        ...

    def batches(self, layer: str | None = None) -> list[Batch]: ...

    def batch(self, batch_id: int) -> Batch: ...

    def find_checksum(self, layer: str, checksum: str, keys: np.ndarray | None = None) -> Batch | None:
        """The live batch that imported a file with ``checksum`` into ``layer`` while its
        content is still current (importing the file again would change nothing); ``keys``,
        the file's survey ids, make the check exact (see the GeoPackage backend)."""
        ...

    def key_batches(self, spec: LayerSpec, keys: np.ndarray) -> dict[str, tuple[int, str | None]]:
        """For each of ``keys`` held by a current row: (batch that last wrote it, that batch's user)."""
        ...

    def archived_source(self, batch_id: int) -> tuple[str, bytes]: ...

    def mark_rolled_back(self, batch_id: int) -> None: ...

    def rollback_layer(self, spec: LayerSpec, batch_id: int) -> tuple[int, int]:
        """Take a batch's rows out of the current ones and restore the rows it replaced (the
        history keeps both); returns (removed, restored)."""
        ...

    def rollback_targets(self, batch_id: int) -> int: ...

    def has_layer(self, spec: LayerSpec) -> bool: ...

    def update_extent(self, spec: LayerSpec, bounds: tuple[float, float, float, float] | None) -> None: ...

    def read_attributes(self, spec: LayerSpec, columns: list[str] | None = None) -> pd.DataFrame:
        """Current rows of a layer without geometry, with ``fid``, ``gw_unit``, ``gw_batch`` ..."""
        ...

    def read_rows(self, spec: LayerSpec, fids: np.ndarray) -> pd.DataFrame:
        """Attributes (with ``fid``, ``gw_unit``) of the given current rows."""
        ...

    def read_table(self, spec: LayerSpec, columns: list[str], tx: int | None = None) -> pa.Table:
        """Current rows as an Arrow table: ``fid`` plus ``columns`` (dates as date32), ordered by
        fid; with ``tx`` the row versions visible at that transaction."""
        ...

    def read_geometry(self, spec: LayerSpec, fids: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(fid, geometry)`` of current rows, geometry in the store CRS."""
        ...

    def read_assignment(
        self, spec: LayerSpec, version: int | None = None, fids: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(fid, unit code)`` ordered by fid: of the current rows as stored with them (the
        current grid), or with ``version`` of every row version on that grid version from the
        stored assignments; ``fids`` limits it to those."""
        ...

    def set_units(self, spec: LayerSpec, fids: np.ndarray, units: np.ndarray) -> int:
        """Set the assigned unit of the given rows; returns how many changed."""
        ...

    def targets(self, tx: int | None = None) -> pd.DataFrame:
        """Targets now, or as they were at transaction ``tx``."""
        ...

    def set_targets(self, rows: pd.DataFrame, batch_id: int) -> int: ...

    def layer_count(self, spec: LayerSpec) -> int: ...

    # remembered value mappings
    def value_maps(self, layer: str | None = None, *, include_removed: bool = False) -> list[ValueMap]:
        """Remembered value mappings (of ``layer``), oldest first; removed ones only when asked."""
        ...

    def save_value_map(self, layer: str, field: str, raw_key: str, raw: str, code: str) -> int:
        """Remember a mapping (replacing the one kept for the same layer, field and key); audited."""
        ...

    def remove_value_map(self, map_id: int) -> ValueMap:
        """Mark a remembered mapping removed; audited.  :class:`geo.errors.NotFound` for an
        unknown id, :class:`geo.errors.Conflict` when it already is."""
        ...

    # accounts and audit trail
    def admin_transaction(self) -> AbstractContextManager[None]:
        """Like :meth:`transaction` for account and audit writes, keeping :meth:`revision`."""
        ...

    def get_user(self, name: str) -> User | None: ...

    def list_users(self) -> list[User]: ...

    def save_user(self, user: User) -> None:
        """Insert or replace the account ``user.name``."""
        ...

    def add_token(self, user: str, label: str, digest: str) -> int: ...

    def find_token(self, digest: str) -> ApiToken | None: ...

    def list_tokens(self, user: str | None = None) -> list[ApiToken]: ...

    def revoke_token(self, token_id: int) -> bool: ...

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

    def clear_login_failures(self, kind: str, key: str) -> None: ...

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

    def close(self) -> None: ...


def geometry_type_names(geoms: np.ndarray) -> np.ndarray:
    """Base geometry type name per geometry ("Point", "Polygon", ...), Multi* folded."""
    ids = shapely.get_type_id(geoms)
    names = np.array(
        [
            "Point",
            "LineString",
            "LineString",
            "Polygon",
            "Point",
            "LineString",
            "Polygon",
            "GeometryCollection",
        ],
        dtype=object,
    )
    out = np.full(len(geoms), "None", dtype=object)
    ok = ids >= 0
    out[ok] = names[ids[ok]]
    return out
