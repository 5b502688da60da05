"""The per-feature columns a tally counts (:class:`Facts`), read once per generation of
their layer and of the grid.

Kept in the store's cache (:mod:`geo.store.cache`, region ``facts``): the columns of the
current rows, or of the row versions visible at a transaction, with each feature's unit on a
grid version.  A commit to another layer leaves them kept.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from geo.registry import grid_spec
from geo.store.base import Store
from geo.store.cache import entry_bytes, generations
from geo.store.interface.changes import enabled as changes_enabled
from geo.store.interface.changes import splice
from geo.store.interface.features import GridVersion
from layers.base import UNASSIGNED, UNRECOGNISED_CODE, LayerSpec

#: How many tallies' row positions a :class:`Facts` keeps (per level and filter), newest last.
POSITIONS_KEPT = 4


@dataclass
class Facts:
    """Per-feature columns of one layer needed for tallies (one entry per stored feature)."""

    unit: pa.Array  # string: grid code or UNASSIGNED
    completed: np.ndarray  # bool: status counts as completed
    found: np.ndarray  # datetime64[D]
    done: np.ndarray  # datetime64[D] (NaT when not completed)
    measures: dict[str, np.ndarray]  # measure key → float values (0 where missing)
    status: pa.Array | None  # status codes (for filters)
    # int8 index into the values of spec.shape_category (-1: empty or outside the
    # vocabulary), for map markers; None when the layer declares no shape_field
    shape: np.ndarray | None = None
    # bool: the status matched nothing in the vocabulary (未识别)
    unrecognised: np.ndarray | None = None
    # bool: completed without a completion date (counted from the day of its import)
    undated: np.ndarray | None = None
    # tally row of each feature per (level, within -- with an area's units when scoped), with the hierarchy it was computed for
    # and the function that computed it from units (see geo.figures.tally)
    positions: dict[tuple[str, Hashable], tuple[Any, ...]] = field(default_factory=dict)
    #: fid of each feature row version (ordered)
    fids: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))

    def cache_bytes(self) -> int:
        """Estimated memory held (see :func:`geo.store.cache.entry_bytes`), with room for the
        tally rows of :data:`POSITIONS_KEPT` tallies, filled after the entry is kept."""
        columns = [self.unit, self.completed, self.found, self.done, *self.measures.values()]
        columns += [self.status, self.shape, self.unrecognised, self.undated, self.fids]
        return sum(entry_bytes(c) for c in columns) + POSITIONS_KEPT * 8 * len(self.fids)


def as_of_state(facts: Facts, day: np.datetime64 | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each feature as the tallies count it at the end of ``day``: ``(present, completed,
    pending)``, boolean arrays in the order of ``facts``.

    A feature is present when it was found on or before ``day`` (a feature without a found
    date from the day its batch was imported); completed when its status counts as completed
    and it was completed on or before ``day`` (an undated completion from its import day);
    pending when its status now counts as completed but it was not completed on ``day`` --
    maps draw it as :data:`layers.base.PENDING`.  Without ``day`` every feature is present,
    completed as its status says and none is pending.
    """
    if day is None:
        return (
            np.ones(len(facts.completed), dtype=bool),
            facts.completed,
            np.zeros(len(facts.completed), dtype=bool),
        )
    present = facts.found <= day
    completed = facts.completed & (facts.done <= day)
    return present, completed, facts.completed & ~completed


def load_facts(
    store: Store, spec: LayerSpec, tx: int | None = None, version: GridVersion | None = None
) -> Facts:
    """Columns of ``spec`` for tallies: of the current rows, or of the row versions visible at
    transaction ``tx``; units on grid ``version`` (default: the current grid's, stored with
    the rows).  Cached per generation of the layer and the grid (and tx and version)."""
    if tx is not None:
        last = store.last_tx()
        if last is not None and last.id == tx:  # nothing written since: the current rows
            facts = load_facts(store, spec, None, version)
            after = store.last_tx()
            if after is not None and after.id == tx:
                return facts
    # the generations before the rows: facts kept under them are never of a later state
    state = generations(store, spec, grid_spec())
    current = store.current_grid_version()
    base = _load_base(store, spec, tx)
    if tx is None and (version is None or (current is not None and current.id == version.id)):
        return base
    kept = store.cache.region("facts")
    key = ((spec.name, tx, None if version is None else version.id), state)

    def fill() -> Facts:
        units = np.full(len(base.fids), UNASSIGNED, dtype=object)
        if version is not None and len(base.fids):
            fids, stored = store.read_assignment(spec, version.id)
            if len(fids):
                pos = np.clip(np.searchsorted(fids, base.fids), 0, len(fids) - 1)
                found = fids[pos] == base.fids
                units[found] = stored[pos[found]]
        return replace(base, unit=pa.array(units.tolist(), type=pa.string()), positions={})

    # kept only when no write landed since ``state`` was read (``base`` may be newer)
    return kept.get_or_fill(
        key, fill, lambda: generations(store, spec, grid_spec()) == state, wait=not store.writing()
    )


def read_facts(store: Store, spec: LayerSpec) -> Facts:
    """Columns of the current rows of ``spec`` for tallies, read now and not kept (inside a
    :meth:`~geo.store.base.Store.snapshot`: as of it); units on the current grid."""
    return _read_facts(store, spec)


def _load_base(store: Store, spec: LayerSpec, tx: int | None) -> Facts:
    """The columns of ``spec`` (at ``tx``) with units on the current grid, kept per generation
    of the layer and of the grid.

    The current rows' columns of a new generation are made from those kept of an older one
    when the change log covers the way (:func:`_follow`), else read in full.
    """
    state = generations(store, spec, grid_spec())
    family = (spec.name, tx, "current")

    def fill() -> Facts:
        followed = _follow(store, spec, family, state) if tx is None else None
        return followed if followed is not None else _read_facts(store, spec, tx)

    return store.cache.region("facts").get_or_fill(
        (family, state),
        fill,
        # kept only when no write landed while reading: the entry must hold what its key says
        lambda: generations(store, spec, grid_spec()) == state,
        wait=not store.writing(),
    )


def _follow(store: Store, spec: LayerSpec, family: tuple[Any, ...], state: tuple[str, ...]) -> Facts | None:
    """The facts of the current rows at ``state`` from the ones kept of an older generation of
    the layer: the kept rows without those the change log says were touched since, plus the
    touched ones current now, read in one snapshot with the log.  None when nothing is kept,
    the log does not cover the way, or ``state`` is not the state read (a write landed).

    What a row's facts are depends only on the row version (its fid) and its stored unit, both
    of which the log covers; the grid's generation in the key does not change them."""
    if not changes_enabled() or any(s.startswith("tx:") for s in state):
        return None
    latest = store.cache.region("facts").latest(family)
    if latest is None:
        return None
    key, old = latest
    since = key[1]  # type: ignore[index]
    if any(s.startswith("tx:") for s in since):
        return None
    with store.snapshot():
        changed = store.changes(spec, since[0])
        if changed is None or changed.generation != state[0]:
            return None
        new = facts_of_rows(store, spec, changed.fids)
    plan = splice(old.fids, changed.fids, new.fids)

    arrow = plan.arrow

    def column(a: np.ndarray | None, b: np.ndarray | None) -> np.ndarray | None:
        return None if a is None or b is None else plan.numpy(a, b)

    unit = arrow(old.unit, new.unit)
    assert unit is not None
    # the tally rows of the kept features stay; the new ones' are computed the same way
    positions = {
        key: (entry[0], plan.numpy(entry[1], entry[2](new.unit)), entry[2])
        for key, entry in list(old.positions.items())
        if len(entry) > 2
    }
    return Facts(
        unit,
        plan.numpy(old.completed, new.completed),
        plan.numpy(old.found, new.found),
        plan.numpy(old.done, new.done),
        {k: plan.numpy(v, new.measures[k]) for k, v in old.measures.items()},
        arrow(old.status, new.status),
        column(old.shape, new.shape),
        unrecognised=column(old.unrecognised, new.unrecognised),
        undated=column(old.undated, new.undated),
        positions=positions,
        fids=plan.fids,
    )


def facts_of_rows(store: Store, spec: LayerSpec, fids: np.ndarray) -> Facts:
    """The facts of the current rows ``fids`` of ``spec``, read by fid now (inside a
    :meth:`~geo.store.base.Store.snapshot`, so that they agree with what else it reads)."""
    table = store.read_table(spec, _fact_columns(spec), fids=fids)
    return _facts_of(spec, table, store.batches(spec.name))


def _fact_columns(spec: LayerSpec) -> list[str]:
    """The columns of ``spec`` its facts are made from."""
    wanted = [
        spec.status_field,
        spec.found_field,
        spec.completed_field,
        *(m.field for m in spec.measures),
        spec.shape_field,
    ]
    columns = list(dict.fromkeys(c for c in wanted if c))
    return [*columns, "gw_unit", "gw_batch", "gw_area"]


def _read_facts(store: Store, spec: LayerSpec, tx: int | None = None) -> Facts:
    table = store.read_table(spec, _fact_columns(spec), tx)
    return _facts_of(spec, table, store.batches(spec.name))


def _facts_of(spec: LayerSpec, table: pa.Table, batches: list[Any]) -> Facts:
    """The facts of the rows of ``table`` (read with :func:`_fact_columns`), imported in ``batches``."""
    n = table.num_rows
    batch_ids = pa.array([b.id for b in batches], type=pa.int64())
    batch_days = np.array([b.created_at[:10] for b in batches], dtype="datetime64[D]")
    where = pc.index_in(table.column("gw_batch"), value_set=batch_ids).to_numpy(zero_copy_only=False)
    imported = np.full(n, np.datetime64("NaT"), dtype="datetime64[D]")
    known = ~pd.isna(where)
    imported[known] = batch_days[where[known].astype(np.int64)]
    status = table.column(spec.status_field).combine_chunks() if spec.status_field else None
    if status is not None:
        value_set = pa.array(sorted(spec.completed_statuses), type=pa.string())
        completed = pc.fill_null(pc.is_in(status, value_set=value_set), False).to_numpy(zero_copy_only=False)
    else:
        completed = np.zeros(n, dtype=bool)
    found = _dates(table, spec.found_field, n)
    found = np.where(np.isnat(found), imported, found)
    done = _dates(table, spec.completed_field, n)
    undated = np.asarray(completed, dtype=bool) & np.isnat(done)
    done = np.where(undated, imported, done)
    done = np.where(completed, done, np.datetime64("NaT"))
    measures: dict[str, np.ndarray] = {}
    for m in spec.measures:
        vals = _floats(table, m.field, n)
        if m.from_geometry:
            vals = np.where(np.isnan(vals), _floats(table, "gw_area", n), vals)
        measures[m.key] = np.nan_to_num(vals, nan=0.0)
    unrecognised = (
        pc.fill_null(pc.equal(status, UNRECOGNISED_CODE), False).to_numpy(zero_copy_only=False)
        if status is not None
        else np.zeros(n, dtype=bool)
    )
    return Facts(
        table.column("gw_unit").combine_chunks(),
        np.asarray(completed, dtype=bool),
        found,
        done,
        measures,
        status,
        _shape_index(table, spec),
        unrecognised=np.asarray(unrecognised, dtype=bool),
        undated=undated,
        fids=np.asarray(table.column("fid").to_numpy(zero_copy_only=False), dtype=np.int64),
    )


def _shape_index(table: pa.Table, spec: LayerSpec) -> np.ndarray | None:
    """Position of each row's :attr:`~layers.base.LayerSpec.shape_field` value in its
    category's vocabulary, -1 where empty or not in it (kept as given at import)."""
    category = spec.shape_category
    if category is None:
        return None
    codes = pa.array([v.code for v in category.values], type=pa.string())
    col = table.column(category.field)
    if not pa.types.is_string(col.type):
        col = pc.cast(col, pa.string())
    where = pc.fill_null(pc.index_in(col, value_set=codes), -1)
    return np.asarray(where.to_numpy(), dtype=np.int8)


def _dates(table: pa.Table, column: str | None, n: int) -> np.ndarray:
    if column is None or n == 0:
        return np.full(n, np.datetime64("NaT"), dtype="datetime64[D]")
    col = table.column(column)
    if col.type != pa.date32():
        col = pc.cast(pc.cast(col, pa.string()), pa.date32(), safe=False)
    return np.asarray(col.to_numpy(zero_copy_only=False), dtype="datetime64[D]")


def _floats(table: pa.Table, column: str, n: int) -> np.ndarray:
    if n == 0:
        return np.empty(0)
    col = table.column(column)
    if pa.types.is_integer(col.type) or pa.types.is_floating(col.type) or pa.types.is_null(col.type):
        return np.asarray(pc.cast(col, pa.float64()).to_numpy(zero_copy_only=False), dtype=float)
    return pd.to_numeric(pd.Series(col.to_pylist(), dtype=object), errors="coerce").to_numpy(dtype=float)
