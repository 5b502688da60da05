"""One cache object per store: what the engine keeps of a store between requests.

Decoded geometry, tally columns, unit hierarchies, dissolved outlines, grid indexes and the
map's per-viewport tables are costly to rebuild, so each process keeps them.  They all live in
the :class:`StoreCache` of their store (``store.cache``), each kind in a named :class:`Region`
declared once in :data:`REGIONS`.

Keys follow what an entry was built from, never the store as a whole: the generation of each
layer it reads (a token replaced by every write that changes the layer's rows, geometries or
units, see :func:`generations`), the grid's generation and grid version where units matter,
and the targets' generation where targets feed it.  A commit to one layer therefore leaves
every other layer's entries warm.  In a region with families a key is ``(family, state)``:
keeping an entry drops the entries of the same family with another state (a newer generation makes the older one
useless), so a layer's decoded geometry is never held twice.

Every region is bounded twice: by a number of entries and by bytes (:func:`entry_bytes`
estimates an entry's size from its arrays, tables and geometries).  When either is exceeded
the least recently used entries go.  The byte budget of the whole store cache is
``$GRIDWATCH_CACHE_MB`` (default :data:`DEFAULT_BUDGET_MB`), shared among the regions by
their :attr:`RegionSpec.share`; an entry larger than its region's budget is still kept, alone.

After a write every thread of a worker that serves a map request finds an entry missing at
the same moment; without a guard each one rebuilds it, all sharing one interpreter lock, and
each waits as long as all of them together.  :meth:`Region.get_or_fill` (and
:meth:`StoreCache.filling`) let the first build it while the others wait for its result.

What a write transaction keeps is staged (:meth:`StoreCache.stage`): the thread that writes
sees its own entries, every other thread sees only committed ones, and the stage is published
when the transaction commits and dropped when it rolls back.  A rolled-back write -- a
preview's dry run -- therefore leaves every region as it found it: the entries of the last
committed generations stay kept, and the change log still follows them.
"""

from __future__ import annotations

import os
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields, is_dataclass
from typing import Any

import numpy as np

from geo.store import memory
from geo.store.interface.changes import reserved_bytes

__all__ = [
    "DEFAULT_BUDGET_MB",
    "MISSING",
    "REGIONS",
    "Region",
    "RegionSpec",
    "Stage",
    "StoreCache",
    "budget_bytes",
    "cache_for",
    "entry_bytes",
    "generations",
]

#: What :meth:`Region.get` gives by default for a key it does not hold (entries may be None).
MISSING: Any = object()

#: Byte budget of one store's cache when ``$GRIDWATCH_CACHE_MB`` is not set.
DEFAULT_BUDGET_MB = 2048


@dataclass(frozen=True)
class RegionSpec:
    """How many entries a region keeps, its share of the byte budget, and whether a new entry
    replaces its family's older ones.

    ``family`` takes a key to the family it belongs to (e.g. ``(layer, generation)`` → layer):
    keeping an entry drops the other entries of the same family (a newer generation makes the
    older one useless, and geometry is large).  ``share`` is the region's fraction of the
    store cache's byte budget.  Beyond either bound the least recently used entries go.
    """

    limit: int
    family: Callable[[Any], Hashable] | None = None
    share: float = 0.05


def _first(key: Any) -> Hashable:
    return key[0]


#: Every kind of entry kept for a store, with its bounds.
REGIONS: dict[str, RegionSpec] = {
    # (layer, generation) -> (fids, decoded geometries, units): the current rows of a layer
    "geometry": RegionSpec(64, family=_first, share=0.3),
    # ((layer, tx, grid version or "current"), (layer generation, grid generation)) -> tally columns
    "facts": RegionSpec(64, family=_first, share=0.2),
    # unit hierarchy per (grid generation[, version])
    "hierarchy": RegionSpec(16, share=0.04),
    # dissolved unit outlines per (grid generation, level, version)
    "units": RegionSpec(16, share=0.08),
    # the current grid as an assignment index, per grid generation
    "grid_index": RegionSpec(8, share=0.04),
    # a grid version's cells as an assignment index, per (grid generation, version)
    "grid_versions": RegionSpec(16, share=0.04),
    # what changed between two grid versions, per (grid generation, version, version)
    "grid_diffs": RegionSpec(64, share=0.02),
    # (layer, generation) -> feature positions for the map
    "positions": RegionSpec(64, family=_first, share=0.12),
    # ((level, layer, as-of, within, tx, version), generations of what it counts) -> map unit table
    "cell_tables": RegionSpec(32, family=_first, share=0.05),
    # (layer or "<layer>/list", generation) -> the text columns a search or list looks in, lower-cased
    "search": RegionSpec(16, family=_first, share=0.04),
    # simplified unit outlines already drawn, per (level, zoom, ...)
    "outlines": RegionSpec(64, share=0.02),
    # (grid generation, area codes) -> the unit codes an account's area covers
    "areas": RegionSpec(64, share=0.01),
    # ((path, query, language, ...), state) -> a rendered HTTP answer, its body (and gzip)
    "answers": RegionSpec(64, family=_first, share=0.04),
}


def budget_bytes() -> int:
    """The byte budget of one store's cache: ``$GRIDWATCH_CACHE_MB`` megabytes, else
    :data:`DEFAULT_BUDGET_MB` (a value that is not a positive number counts as unset)."""
    raw = os.environ.get("GRIDWATCH_CACHE_MB", "")
    try:
        mb = float(raw)
    except ValueError:
        mb = 0.0
    return int((mb if mb > 0 else DEFAULT_BUDGET_MB) * 1024 * 1024)


def generations(store: Any, *specs: Any, targets: bool = False) -> tuple[str, ...]:
    """The state an entry built from the layers ``specs`` (include the grid's spec where units
    matter) and, with ``targets``, the targets is of: their generations, read now.

    Read it before the data, and keep the entry only when it is unchanged after.  Inside a
    write transaction of ``store`` the store revision (new for each transaction, never
    reused) is added: rows written there may not have bumped a generation yet, and the
    transaction may still roll back.
    """
    out = [store.layer_generation(s) for s in specs]
    if targets:
        out.append(store.generation("~targets"))
    if store.writing():
        out.append("tx:" + store.revision())
    return tuple(out)


# --- sizes --------------------------------------------------------------------------------

_SAMPLE = 256


def _object_items_bytes(values: Any, n: int) -> int:
    """Size of ``n`` Python objects, estimated from an even sample of them."""
    if n == 0:
        return 0
    step = max(1, n // _SAMPLE)
    sample = values[::step][:_SAMPLE]
    total = _geometries_bytes(sample)
    if total is None:
        total = sum(_one_object_bytes(v) for v in sample)
    return int(total * n / max(1, len(sample)))


def _geometries_bytes(sample: Any) -> int | None:
    """:func:`_one_object_bytes` summed over ``sample`` in one call of shapely when it holds
    only shapely geometries and None, else None."""
    import shapely

    if not all(v is None or isinstance(v, shapely.Geometry) for v in sample):
        return None
    arr = np.asarray(sample, dtype=object)
    arr = arr[~shapely.is_missing(arr)]
    if not len(arr):
        return 0
    return int(
        96 * len(arr)
        + 16 * shapely.get_num_coordinates(arr).sum()
        + 64 * shapely.get_num_geometries(arr).sum()
    )


def _one_object_bytes(v: Any) -> int:
    if v is None:
        return 0
    if isinstance(v, str | bytes):
        return sys.getsizeof(v)
    mod = type(v).__module__
    if mod.startswith("shapely"):
        import shapely

        return 96 + 16 * int(shapely.get_num_coordinates(v)) + 64 * int(shapely.get_num_geometries(v))
    return entry_bytes(v, 2)


def entry_bytes(value: Any, depth: int = 6) -> int:
    """An estimate of the memory ``value`` holds: the buffers of numpy arrays, Arrow arrays and
    tables and pandas frames, the coordinates of shapely geometries (sampled in object
    arrays), strings, and the contents of tuples, lists, dicts and dataclasses.  An object
    may say its own size with a ``cache_bytes()`` method."""
    if depth < 0 or value is None:
        return 0
    own = getattr(value, "cache_bytes", None)
    if callable(own):
        return int(own())
    if isinstance(value, np.ndarray):
        # with the room kept after a column that grows as commits add rows
        if value.dtype == object:
            return 8 * value.size + _object_items_bytes(value.ravel(), value.size) + reserved_bytes(value)
        return int(value.nbytes) + reserved_bytes(value)
    if isinstance(value, str | bytes | int | float | bool):
        return sys.getsizeof(value)
    mod = type(value).__module__
    if mod.startswith("pyarrow"):
        size = getattr(value, "get_total_buffer_size", None)
        return int(size() if callable(size) else getattr(value, "nbytes", 0))
    if mod.startswith(("pandas", "geopandas")):
        import pandas as pd

        if isinstance(value, pd.DataFrame):
            return sum(entry_bytes(value[c].array, depth - 1) for c in value.columns) + entry_bytes(
                value.index, depth - 1
            )
        if isinstance(value, pd.Series):
            return entry_bytes(value.array, depth - 1) + entry_bytes(value.index, depth - 1)
        if isinstance(value, pd.Index):
            return entry_bytes(np.asarray(value), depth - 1)
        arr = np.asarray(value)
        return entry_bytes(arr, depth - 1)
    if mod.startswith("shapely"):
        return _one_object_bytes(value)
    if isinstance(value, dict):
        return 64 + sum(entry_bytes(k, depth - 1) + entry_bytes(v, depth - 1) for k, v in value.items())
    if isinstance(value, tuple | list | set | frozenset):
        items = list(value)
        if len(items) > _SAMPLE:
            return 56 + 8 * len(items) + _object_items_bytes(items, len(items))
        return 56 + 8 * len(items) + sum(entry_bytes(v, depth - 1) for v in items)
    if is_dataclass(value) and not isinstance(value, type):
        return 64 + sum(entry_bytes(getattr(value, f.name), depth - 1) for f in fields(value))
    return sys.getsizeof(value)


class _Entries:
    """The entries of one region, least recently used first, with their estimated bytes,
    within the region's bounds (the shared ones, or a write transaction's stage)."""

    def __init__(self, spec: RegionSpec, budget: int):
        self.spec = spec
        self.budget = budget
        self.items: OrderedDict[Hashable, Any] = OrderedDict()
        self.bytes: dict[Hashable, int] = {}
        self.total = 0

    def get(self, key: Hashable) -> Any:
        if key not in self.items:
            return MISSING
        self.items.move_to_end(key)
        return self.items[key]

    def drop(self, key: Hashable) -> tuple[Any, int]:
        """Forget the entry of ``key``: ``(entry, estimated bytes)``."""
        value = self.items.pop(key)
        size = self.bytes.pop(key, 0)
        self.total -= size
        return value, size

    def store(self, key: Hashable, value: Any, size: int) -> list[Any]:
        """Keep ``value`` under ``key``: its family's other entries go, then the least recently
        used while over the bounds; the entries dropped (to be let go of, and their memory given
        back, once no lock is held: :func:`_release`)."""
        dropped: list[Any] = []
        if key in self.items:
            dropped.append(self.drop(key))
        if self.spec.family is not None:
            family = self.spec.family(key)
            for k in [k for k in self.items if self.spec.family(k) == family]:
                dropped.append(self.drop(k))
        while self.items and (len(self.items) >= self.spec.limit or self.total + size > self.budget):
            dropped.append(self.drop(next(iter(self.items))))
        self.items[key] = value
        self.bytes[key] = size
        self.total += size
        return dropped

    def grow(self, key: Hashable, nbytes: int) -> list[Any]:
        """Count ``nbytes`` more for ``key``; the others dropped to stay within the budget."""
        dropped: list[Any] = []
        if key not in self.items:
            return dropped
        self.bytes[key] += int(nbytes)
        self.total += int(nbytes)
        while self.total > self.budget and next(iter(self.items)) != key:
            dropped.append(self.drop(next(iter(self.items))))
        return dropped

    def latest(self, family: Hashable) -> tuple[Hashable, Any] | None:
        if self.spec.family is None:
            return None
        for key in reversed(self.items):
            if self.spec.family(key) == family:
                return key, self.items[key]
        return None

    def clear(self) -> None:
        self.items.clear()
        self.bytes.clear()
        self.total = 0


class Region:
    """A bounded mapping of one kind of entry (see :class:`RegionSpec`), least recently used
    first out, within ``budget`` bytes.

    Inside a write transaction (``stage()`` gives the transaction's entries for this region,
    see :meth:`StoreCache.stage`) what is kept goes to the stage, and lookups see the stage
    first; ``len``, :meth:`keys` and :meth:`nbytes` count the committed entries only.
    """

    def __init__(
        self,
        spec: RegionSpec,
        budget: int | None = None,
        stage: Callable[[], _Entries | None] | None = None,
    ):
        self.spec = spec
        self.budget = int(budget_bytes() * spec.share) if budget is None else int(budget)
        self._shared = _Entries(spec, self.budget)
        self._stage = stage or _no_stage
        self._lock = threading.Lock()
        self._fill_locks: dict[Hashable, threading.Lock] = {}

    def get(self, key: Hashable, default: Any = MISSING) -> Any:
        """The entry kept for ``key`` (now the most recently used), else ``default`` (:data:`MISSING`)."""
        staged = self._stage()
        if staged is not None:
            hit = staged.get(key)
            if hit is not MISSING:
                return hit
        with self._lock:
            hit = self._shared.get(key)
        return default if hit is MISSING else hit

    def __contains__(self, key: Hashable) -> bool:
        return self.get(key) is not MISSING

    def __getitem__(self, key: Hashable) -> Any:
        hit = self.get(key)
        if hit is MISSING:
            raise KeyError(key)
        return hit

    def __setitem__(self, key: Hashable, value: Any) -> None:
        """Keep ``value`` under ``key``: its family's other entries go, then the least recently
        used while the region is over its bounds.  Inside a write transaction it is staged."""
        size = entry_bytes(value)
        staged = self._stage()
        if staged is not None:
            dropped = staged.store(key, value, size)
        else:
            with self._lock:
                dropped = self._shared.store(key, value, size)
        _release(dropped)

    def publish(self, staged: _Entries) -> None:
        """Keep what a write transaction staged (it has committed), but not the entries keyed by
        the transaction itself (:func:`generations` inside a write): nothing looks them up again."""
        dropped: list[Any] = []
        with self._lock:
            for key, value in staged.items.items():
                if not _of_a_transaction(key):
                    dropped += self._shared.store(key, value, staged.bytes[key])
        staged.clear()
        _release(dropped)

    def setdefault(self, key: Hashable, value: Any) -> Any:
        """The entry for ``key``, keeping ``value`` first when there is none."""
        hit = self.get(key)
        if hit is not MISSING:
            return hit
        size = entry_bytes(value)
        staged = self._stage()
        if staged is not None:
            dropped = staged.store(key, value, size)
        else:
            with self._lock:
                hit = self._shared.get(key)
                if hit is not MISSING:
                    return hit
                dropped = self._shared.store(key, value, size)
        _release(dropped)
        return value

    def grow(self, key: Hashable, nbytes: int) -> None:
        """Count ``nbytes`` more for the entry of ``key`` (an entry filled in place after it
        was kept), dropping the least recently used others while over budget."""
        staged = self._stage()
        if staged is not None and key in staged.items:
            _release(staged.grow(key, nbytes))
            return
        with self._lock:
            dropped = self._shared.grow(key, nbytes)
        _release(dropped)

    @contextmanager
    def filling(self, family: Hashable) -> Iterator[None]:
        """Hold this region's fill lock of ``family`` (locks per family, so their number stays
        bounded by the number of families)."""
        with self._lock:
            lock = self._fill_locks.setdefault(family, threading.Lock())
        with lock:
            yield

    def get_or_fill(
        self,
        key: Hashable,
        fill: Callable[[], Any],
        fresh: Callable[[], bool] | None = None,
        wait: bool = True,
    ) -> Any:
        """The entry for ``key``; on a miss, under the fill lock of the key's family, look
        again, else ``fill()`` and keep what it gives -- only when ``fresh()`` (default: always)
        says afterwards that no write landed while it was read, so an entry holds what its
        key says.  Read the key's generations before calling, and compare them again in
        ``fresh``.  ``wait=False`` fills without the lock (for a writer or a snapshot, which
        must not wait for a reader's fill)."""
        hit = self.get(key)
        if hit is not MISSING:
            return hit
        family = self.spec.family(key) if self.spec.family is not None else None
        with self.filling(family) if wait else _nothing():
            hit = self.get(key)
            if hit is not MISSING:
                return hit
            value = fill()
            if fresh is None or fresh():
                self[key] = value
            return value

    def latest(self, family: Hashable) -> tuple[Hashable, Any] | None:
        """``(key, entry)`` of the newest entry of ``family`` kept (in a region with families
        there is at most one; a write transaction's own entry first), else None: what a new
        generation's entry may be made from by applying the change log (see
        :mod:`geo.store.interface.changes`)."""
        staged = self._stage()
        if staged is not None:
            found = staged.latest(family)
            if found is not None:
                return found
        with self._lock:
            return self._shared.latest(family)

    def __len__(self) -> int:
        with self._lock:
            return len(self._shared.items)

    def nbytes(self) -> int:
        """The estimated bytes of the committed entries kept (see :func:`entry_bytes`)."""
        with self._lock:
            return self._shared.total

    def keys(self) -> list[Hashable]:
        """The committed keys kept, least recently used first."""
        with self._lock:
            return list(self._shared.items)

    def __iter__(self) -> Iterator[Hashable]:
        return iter(self.keys())

    def clear(self) -> None:
        """Forget every committed entry."""
        with self._lock:
            self._shared.clear()


def _no_stage() -> _Entries | None:
    return None


def _of_a_transaction(key: Any) -> bool:
    """Whether ``key`` holds a write transaction's mark (``"tx:<revision>"``, see :func:`generations`)."""
    if isinstance(key, str):
        return key.startswith("tx:")
    if isinstance(key, tuple):
        return any(_of_a_transaction(k) for k in key)
    return False


@contextmanager
def _nothing() -> Iterator[None]:
    yield


def _release(dropped: list[Any]) -> None:
    """Let go of ``dropped`` entries (``(value, bytes)``, taken from a region) and, when they
    came to :data:`geo.store.memory.RELEASE_AFTER_BYTES` or more, give the freed memory back to
    the system (:func:`geo.store.memory.release`): without it a worker's resident memory grows
    with every generation it drops although the cache holds the same bytes."""
    size = sum(n for _v, n in dropped)
    dropped.clear()  # the last references to the values: freed here
    if size >= memory.RELEASE_AFTER_BYTES:
        memory.release()


class StoreCache:
    """What one process keeps of the store at ``location`` (see the module's docstring), within
    ``budget`` bytes (default :func:`budget_bytes`)."""

    def __init__(self, location: str, budget: int | None = None):
        self.location = location
        self.budget = budget_bytes() if budget is None else int(budget)
        # the stage of the write transaction the current thread is in, if any (see staged)
        self._local = threading.local()
        self._regions = {
            name: Region(spec, int(self.budget * spec.share), self._stage_of(name))
            for name, spec in REGIONS.items()
        }
        self._guard = threading.Lock()
        self._locks: dict[Hashable, threading.Lock] = {}

    def _stage_of(self, name: str) -> Callable[[], _Entries | None]:
        """The current thread's staged entries of region ``name`` (None outside a write transaction)."""
        spec = REGIONS[name]
        budget = int(self.budget * spec.share)

        def stage() -> _Entries | None:
            entries: dict[str, _Entries] | None = getattr(self._local, "stage", None)
            if entries is None:
                return None
            found = entries.get(name)
            if found is None:
                found = entries[name] = _Entries(spec, budget)
            return found

        return stage

    def region(self, name: str) -> Region:
        """The region called ``name`` (one of :data:`REGIONS`)."""
        return self._regions[name]

    def stage(self) -> Stage:
        """Begin the stage of a write transaction on this thread (see :class:`Stage`); inside
        another stage of this thread it is that one's, whose owner publishes or ends it."""
        if getattr(self._local, "stage", None) is not None:
            return Stage(self, None)
        entries: dict[str, _Entries] = {}
        self._local.stage = entries
        return Stage(self, entries)

    @contextmanager
    def filling(self, *family: Hashable) -> Iterator[None]:
        """Hold the fill lock of the entry family ``family`` (e.g. ``("geometry", layer)``).

        Use as: look up; on a miss, enter ``filling(...)``, look up again, build only if still
        missing (:meth:`Region.get_or_fill` does all of it).  Locks are per family, not per
        entry, so their number stays bounded.
        """
        with self._guard:
            lock = self._locks.setdefault(family, threading.Lock())
        with lock:
            yield

    def clear(self) -> None:
        """Forget every committed entry of every region."""
        for region in self._regions.values():
            region.clear()

    def sizes(self) -> dict[str, int]:
        """Number of entries per region."""
        return {name: len(region) for name, region in self._regions.items()}

    def nbytes(self) -> dict[str, int]:
        """Estimated bytes kept per region (see :func:`entry_bytes`)."""
        return {name: region.nbytes() for name, region in self._regions.items()}


class Stage:
    """What a write transaction keeps in a store cache (:meth:`StoreCache.stage`): seen by the
    thread that writes only, kept by the regions when :meth:`publish` is called (the
    transaction has committed), dropped at :meth:`end` otherwise.  Each region's part is
    bounded like the region, so a long transaction holds at most one more budget's worth."""

    def __init__(self, cache: StoreCache, entries: dict[str, _Entries] | None):
        self._cache = cache
        self._entries = entries

    def publish(self) -> None:
        """The transaction committed: what it staged is kept for every thread."""
        if self._entries is None:
            return
        self._cache._local.stage = None
        for name, staged in self._entries.items():
            self._cache.region(name).publish(staged)
        self._entries.clear()

    def end(self) -> None:
        """The transaction ended: what it staged and did not publish is dropped."""
        if self._entries is None:
            return
        self._cache._local.stage = None
        dropped = [(staged, staged.total) for staged in self._entries.values()]
        self._entries.clear()
        _release(dropped)


_CACHES: dict[str, StoreCache] = {}
_CACHES_LOCK = threading.Lock()


def cache_for(location: str) -> StoreCache:
    """The cache of the store at ``location``, shared by every handle on it in this process
    (a web worker opens the store per request; what it keeps outlives the handle)."""
    with _CACHES_LOCK:
        cache = _CACHES.get(location)
        if cache is None:
            cache = _CACHES[location] = StoreCache(location)
        return cache
