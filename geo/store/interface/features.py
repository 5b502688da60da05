"""The feature store: layers' current rows, their row versions by transaction, grid versions
and the unit of each row version on each of them."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pandas as pd
import pyarrow as pa
import shapely

from geo.errors import Conflict, NotFound
from layers.base import UNASSIGNED, LayerSpec


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
    replaces : ndarray of int, optional
        An edit's rows: the fid of the current row each row replaces (matched by it instead of
        by survey key; the new row versions keep the features' ids, one version higher).
    wkb : ndarray of bytes, optional
        Each geometry as 2D little-endian ISO WKB (``shapely.to_wkb(g, byte_order=1,
        flavor="iso", output_dimension=2)``), when the caller has it already (the rows a
        preview kept): the GeoPackage writer then uses it instead of encoding again.
    """

    attrs: pd.DataFrame
    geometry: np.ndarray
    keys: np.ndarray
    units: np.ndarray
    source_rows: np.ndarray | None = None
    wkb: np.ndarray | None = None
    replaces: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.geometry)


@dataclass
class WriteResult:
    """What :meth:`FeatureStore.write_features` did: how many rows it added, updated, left
    unchanged and (replacing the whole layer) removed, and the row versions it wrote."""

    added: int
    updated: int
    unchanged: int
    removed: int = 0
    #: fids of the rows written (new row versions) and, for each, its position in the rows given
    fids: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    rows: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))


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
        """The version's fields as a dict, as the API and ``--json`` show it."""
        return dict(self.__dict__)


class FeatureStore(Protocol):
    """Layers, their rows and row versions, grid versions and assignments.  Writes happen
    inside the store's transaction (:class:`geo.store.base.Store`)."""

    def srs_epsg(self) -> int | None:
        """EPSG code of the projected CRS features are stored in (metres), or None when empty."""
        ...

    def set_srs_epsg(self, epsg: int) -> None:
        """Set the projected CRS features are stored in (EPSG code, metres);
        :class:`geo.errors.Conflict` when another one is set already."""
        ...

    def layer_generation(self, spec: LayerSpec) -> str:
        """A token that changes whenever the rows or geometries of ``spec`` change."""
        ...

    def generation(self, name: str) -> str:
        """The generation token called ``name``: a layer's name (see :meth:`layer_generation`)
        or ``~targets``, replaced by every write of the targets."""
        ...

    def has_layer(self, spec: LayerSpec) -> bool:
        """Whether ``spec`` is stored (written at least once, even if now empty)."""
        ...

    def layer_count(self, spec: LayerSpec) -> int:
        """Number of current rows of ``spec`` (0 when it is not stored)."""
        ...

    def write_features(
        self, spec: LayerSpec, batch_id: int, rows: FeatureRows, replace_all: bool
    ) -> WriteResult:
        """Upsert ``rows`` by survey key, or replace the whole layer when ``replace_all``."""
        ...

    def rollback_layer(self, spec: LayerSpec, batch_id: int) -> tuple[int, int]:
        """Take a batch's rows out of the current ones and restore the rows it replaced (the
        history keeps both); returns (removed, restored)."""
        ...

    def update_extent(self, spec: LayerSpec, bounds: tuple[float, float, float, float] | None) -> None:
        """Grow the recorded extent of ``spec`` to hold ``bounds`` (minx, miny, maxx, maxy in the
        store CRS, metres); None changes nothing.  The extent only grows: a rollback leaves it
        as it was, a box that holds every current row."""
        ...

    def extent(self, spec: LayerSpec) -> tuple[float, float, float, float] | None:
        """The extent recorded with :meth:`update_extent` (None: none yet)."""
        ...

    def set_units(self, spec: LayerSpec, fids: np.ndarray, units: np.ndarray) -> int:
        """Set the assigned unit of the given rows; returns how many changed."""
        ...

    def read_attributes(self, spec: LayerSpec, columns: list[str] | None = None) -> pd.DataFrame:
        """Current rows of a layer without geometry, with ``fid``, ``gw_unit``, ``gw_batch`` ..."""
        ...

    def read_rows(self, spec: LayerSpec, fids: np.ndarray) -> pd.DataFrame:
        """Attributes (with ``fid``, ``gw_unit``) of the given current rows."""
        ...

    def rows_by_id(self, spec: LayerSpec, ids: np.ndarray) -> pd.DataFrame:
        """The current row of each feature ``ids`` (stable ids, sorted, unique) that exists:
        ``id``, ``fid``, ``version``, ``gw_key``, ``gw_unit``, ``gw_batch`` and the layer's
        stored fields, ordered by id (see :mod:`geo.edits.ids`)."""
        ...

    def feature_versions(self, spec: LayerSpec, feature_id: int) -> pd.DataFrame:
        """Every row version of feature ``feature_id`` (its stable id), current and retired:
        ``version``, ``fid``, ``gw_batch``, ``gw_superseded_by`` (None for the current one),
        ``gw_tx_from``, ``gw_tx_to`` (None: current), ``gw_unit`` and the layer's stored fields,
        ordered by ``gw_tx_from``."""
        ...

    def ids_of_rows(self, spec: LayerSpec, fids: np.ndarray) -> pd.DataFrame:
        """``fid``, ``id`` and ``version`` of the current rows among ``fids`` (sorted, unique),
        ordered by fid."""
        ...

    def ids_of_keys(self, spec: LayerSpec, keys: list[str]) -> dict[str, int]:
        """The stable id of the current feature holding each of ``keys`` (survey ids, the
        layer's ``id_field``), looked up on the survey-key index; keys no current row holds
        are left out."""
        ...

    def read_table(
        self, spec: LayerSpec, columns: list[str], tx: int | None = None, fids: np.ndarray | None = None
    ) -> pa.Table:
        """Current rows as an Arrow table: ``fid`` plus ``columns`` (dates as date32), ordered by
        fid; with ``tx`` the row versions visible at that transaction; with ``fids`` (sorted,
        unique; not with ``tx``) only those of the current rows."""
        ...

    def read_geometry(self, spec: LayerSpec, fids: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(fid, geometry)`` of current rows, geometry in the store CRS."""
        ...

    def read_geometry_rows(self, spec: LayerSpec, fids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(fid, geometry)`` of the current rows among ``fids`` (sorted, unique), read and decoded
        now, nothing else of the layer read or kept (for the few rows a change log names)."""
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

    def read_assignment(
        self, spec: LayerSpec, version: int | None = None, fids: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(fid, unit code)`` ordered by fid: of the current rows as stored with them (the
        current grid), or with ``version`` of every row version on that grid version from the
        stored assignments; ``fids`` limits it to those."""
        ...


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


def overlay_units(
    versions: Iterable[tuple[np.ndarray, np.ndarray]], wanted: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``(fid, unit)`` ordered by fid from the stored assignments of each version of a grid
    version's chain, oldest first, each ``(fids, units)`` ordered by fid: a later version's
    unit wins.  With ``wanted`` (sorted fids) every one of them, UNASSIGNED where none has one."""
    out_f = np.empty(0, dtype=np.int64)
    out_u = np.empty(0, dtype=object)
    for f, u in versions:
        if not len(f):
            continue
        if not len(out_f):
            out_f, out_u = f, u
            continue
        pos = np.clip(np.searchsorted(out_f, f), 0, len(out_f) - 1)
        hit = out_f[pos] == f
        out_u[pos[hit]] = u[hit]
        if not hit.all():
            out_f = np.concatenate([out_f, f[~hit]])
            out_u = np.concatenate([out_u, u[~hit]])
            order = np.argsort(out_f, kind="stable")
            out_f, out_u = out_f[order], out_u[order]
    if wanted is not None and len(out_f) != len(wanted):
        units = np.full(len(wanted), UNASSIGNED, dtype=object)
        if len(out_f):
            units[np.searchsorted(wanted, out_f)] = out_u
        return wanted, units
    return out_f, out_u


def version_chain(versions: Iterable[GridVersion], version: int) -> list[int]:
    """Grid version ``version`` and its ancestors among ``versions``, the one without a parent
    first; :class:`~geo.errors.NotFound` (``unknown_grid``) for a version not among them."""
    parents = {v.id: v.parent for v in versions}
    if version not in parents:
        raise NotFound(f"网格版本 {version} 不存在", f"no grid version {version}", code="unknown_grid")
    chain = [version]
    while (parent := parents.get(chain[-1])) is not None and len(chain) <= len(parents):
        chain.append(int(parent))
    return chain[::-1]


def replaced_gone(layer: str) -> Conflict:
    """The refusal of an edit whose row is no longer the feature's current one."""
    return Conflict(
        f"要素已被他人修改（图层 {layer}），请刷新后再编辑",
        f"the feature was changed meanwhile (layer {layer}): reload it, then edit",
        code="version_conflict",
    )


def rollback_blocked(batch_id: int, later: Iterable[int]) -> Conflict:
    """The refusal to roll back batch ``batch_id`` whose rows the live batches ``later`` updated."""
    blocking = sorted(int(b) for b in later)
    ids = ", ".join(str(x) for x in blocking)
    return Conflict(
        f"批次 {ids} 更新了批次 {batch_id} 的要素，请先回滚批次 {ids}",
        f"batch {ids} updated features of batch {batch_id}; roll back batch {ids} first",
        code="rollback_blocked",
        details={"blocking_batches": blocking},
    )
