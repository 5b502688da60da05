"""One computation per cache entry, however many threads ask for it at once.

The engine keeps per-process copies of what is costly to rebuild (decoded geometry, tally
columns, dissolved outlines), keyed by the store's revision or a layer's generation.
After a write every thread of a worker that serves a map request finds the entry missing
at the same moment; without a guard each one rebuilds it, all sharing one interpreter
lock, and each waits as long as all of them together.  :func:`filling` lets the first
build it while the others wait for its result.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable, Iterator
from contextlib import contextmanager

_GUARD = threading.Lock()
_LOCKS: dict[Hashable, threading.Lock] = {}


@contextmanager
def filling(name: Hashable) -> Iterator[None]:
    """Hold the fill lock of cache entry family ``name`` (e.g. ``(store, layer)``).

    Use as: look up; on a miss, enter ``filling(name)``, look up again, build only if
    still missing.  Locks are per family, not per entry, so their number stays bounded.
    """
    with _GUARD:
        lock = _LOCKS.setdefault(name, threading.Lock())
    with lock:
        yield
