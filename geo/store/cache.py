"""One cache object per store: what the engine keeps of a store between requests.

Decoded geometry, tally columns, unit hierarchies, dissolved outlines, grid indexes and the
map's per-viewport tables are costly to rebuild, so each process keeps them, keyed by the
store's revision or a layer's generation (a token replaced by every write that changes what
the entry was built from).  They all live in the :class:`StoreCache` of their store
(``store.cache``), each kind in a named :class:`Region` with its own bound, declared once in
:data:`REGIONS`; an entry that a newer generation of the same family replaces is dropped as
soon as the new one is kept, so a layer's decoded geometry is never held twice.

After a write every thread of a worker that serves a map request finds an entry missing at
the same moment; without a guard each one rebuilds it, all sharing one interpreter lock, and
each waits as long as all of them together.  :meth:`StoreCache.filling` lets the first build
it while the others wait for its result.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

__all__ = ["MISSING", "REGIONS", "Region", "RegionSpec", "StoreCache", "cache_for"]

#: What :meth:`Region.get` gives by default for a key it does not hold (entries may be None).
MISSING: Any = object()


@dataclass(frozen=True)
class RegionSpec:
    """How many entries a region keeps, and whether a new entry replaces its family's older ones.

    ``family`` takes a key to the family it belongs to (e.g. ``(layer, generation)`` → layer):
    keeping an entry drops the entries of the same family (a newer generation makes the older
    one useless, and geometry is large).  Without it the oldest entry goes when the region is
    full.
    """

    limit: int
    family: Callable[[Any], Hashable] | None = None


def _first(key: Any) -> Hashable:
    return key[0]


#: Every kind of entry kept for a store, with its bound.
REGIONS: dict[str, RegionSpec] = {
    # (layer, generation) -> (fids, decoded geometries, units): the current rows of a layer
    "geometry": RegionSpec(64, family=_first),
    # tally columns per (revision, layer, tx[, grid version])
    "facts": RegionSpec(64),
    # unit hierarchy per (grid generation[, version])
    "hierarchy": RegionSpec(16),
    # dissolved unit outlines per (grid generation, level, version)
    "units": RegionSpec(16),
    # the current grid as an assignment index, per grid generation
    "grid_index": RegionSpec(8),
    # a grid version's cells as an assignment index, per (grid generation, version)
    "grid_versions": RegionSpec(16),
    # what changed between two grid versions, per (grid generation, version, version)
    "grid_diffs": RegionSpec(64),
    # (layer, revision, crs) -> feature positions for the map
    "positions": RegionSpec(64, family=_first),
    # the map's unit tables per (level, layer, as-of, filters ...)
    "cell_tables": RegionSpec(32),
    # (layer, generation) -> the text columns a search looks in, lower-cased
    "search": RegionSpec(16, family=_first),
    # simplified unit outlines already drawn, per (level, zoom, ...)
    "outlines": RegionSpec(64),
}


class Region:
    """A bounded mapping of one kind of entry (see :class:`RegionSpec`)."""

    def __init__(self, spec: RegionSpec):
        self.spec = spec
        self._entries: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable, default: Any = MISSING) -> Any:
        """The entry kept for ``key``, else ``default`` (:data:`MISSING`)."""
        with self._lock:
            return self._entries.get(key, default)

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._entries

    def __getitem__(self, key: Hashable) -> Any:
        with self._lock:
            return self._entries[key]

    def __setitem__(self, key: Hashable, value: Any) -> None:
        """Keep ``value`` under ``key``: its family's older entries go, then the oldest while full."""
        with self._lock:
            self._store(key, value)

    def _store(self, key: Hashable, value: Any) -> None:
        """:meth:`__setitem__` with the lock held."""
        self._entries.pop(key, None)
        if self.spec.family is not None:
            family = self.spec.family(key)
            for k in [k for k in self._entries if self.spec.family(k) == family]:
                del self._entries[k]
        while len(self._entries) >= self.spec.limit:
            self._entries.popitem(last=False)
        self._entries[key] = value

    def setdefault(self, key: Hashable, value: Any) -> Any:
        """The entry for ``key``, keeping ``value`` first when there is none."""
        with self._lock:
            if key in self._entries:
                return self._entries[key]
            self._store(key, value)
            return value

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def keys(self) -> list[Hashable]:
        """The keys kept, oldest first."""
        with self._lock:
            return list(self._entries)

    def __iter__(self) -> Iterator[Hashable]:
        return iter(self.keys())

    def clear(self) -> None:
        """Forget every entry."""
        with self._lock:
            self._entries.clear()


class StoreCache:
    """What one process keeps of the store at ``location`` (see the module's docstring)."""

    def __init__(self, location: str):
        self.location = location
        self._regions = {name: Region(spec) for name, spec in REGIONS.items()}
        self._guard = threading.Lock()
        self._locks: dict[Hashable, threading.Lock] = {}

    def region(self, name: str) -> Region:
        """The region called ``name`` (one of :data:`REGIONS`)."""
        return self._regions[name]

    @contextmanager
    def filling(self, *family: Hashable) -> Iterator[None]:
        """Hold the fill lock of the entry family ``family`` (e.g. ``("facts", layer)``).

        Use as: look up; on a miss, enter ``filling(...)``, look up again, build only if still
        missing.  Locks are per family, not per entry, so their number stays bounded.
        """
        with self._guard:
            lock = self._locks.setdefault(family, threading.Lock())
        with lock:
            yield

    def clear(self) -> None:
        """Forget every entry of every region."""
        for region in self._regions.values():
            region.clear()

    def sizes(self) -> dict[str, int]:
        """Number of entries per region."""
        return {name: len(region) for name, region in self._regions.items()}


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
