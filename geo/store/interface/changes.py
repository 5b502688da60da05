"""The change log: which feature ids each write of a layer touched, so that what a process
keeps of the layer can follow a commit of k rows in O(k) instead of reading the layer again.

Every write that moves a layer's generation on (see
:meth:`geo.store.interface.features.FeatureStore.layer_generation`) logs, in the same
transaction, one step: the layer, the generation before and after, and the fids it touched
-- the row versions it retired, the ones it wrote or restored and the ones whose assigned
unit it changed.  A write that touches too many to list (replacing the whole layer) logs the
step without fids: nothing kept of an older generation can follow it.  The store keeps the
last :data:`KEPT_STEPS` steps of each layer.

A fid names one row version, whose geometry and fields never change (only its assigned unit
may); a rollback brings a retired row version back under its own fid.  So the current rows of
a generation are those of an older one without the touched fids, plus the touched fids that
are current now, read again -- :class:`Changes` says which.

``$GRIDWATCH_CHANGE_LOG=off`` makes :meth:`ChangeLog.changes` answer None (the log is still
written): every cache then reads a changed layer in full, as before the log existed (for
comparison in ``bench/bench_after_commit.py``).
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import pyarrow as pa

from layers.base import LayerSpec

__all__ = [
    "CHANGE_LOG_ENV",
    "KEPT_STEPS",
    "ChangeLog",
    "Changes",
    "append_rows",
    "decode_fids",
    "enabled",
    "encode_fids",
    "merge",
    "reserved_bytes",
    "sorted_unique",
]

#: ``$GRIDWATCH_CHANGE_LOG``: ``off`` (or ``0``, ``no``) makes caches re-read changed layers in full
CHANGE_LOG_ENV = "GRIDWATCH_CHANGE_LOG"

#: Steps kept per layer; a cache of an older generation reads its layer again.
KEPT_STEPS = 64


@dataclass(frozen=True)
class Changes:
    """What changed in a layer from generation ``since`` to generation ``generation``.

    ``fids`` (sorted, unique) are the row versions touched on the way: drop them from what was
    kept of ``since`` and read those of them that are current now.  ``steps`` is the number of
    writes between the two generations (0: the same generation, nothing changed).
    """

    since: str
    generation: str
    fids: np.ndarray
    steps: int

    def __len__(self) -> int:
        return len(self.fids)


class ChangeLog(Protocol):
    """The store side of the change log (both backends)."""

    def changes(self, spec: LayerSpec, since_generation: str) -> Changes | None:
        """What changed in ``spec`` since its generation ``since_generation``, up to the layer's
        generation now (read in one state of the store); None when the log does not cover it
        (an unknown or pruned generation, a step that replaced the whole layer, or the log
        switched off with ``$GRIDWATCH_CHANGE_LOG``): then read the layer in full."""
        ...


def enabled() -> bool:
    """Whether caches may apply the change log (``$GRIDWATCH_CHANGE_LOG`` is not ``off``)."""
    return os.environ.get(CHANGE_LOG_ENV, "").strip().lower() not in ("off", "0", "no", "false")


def sorted_unique(fids: np.ndarray) -> np.ndarray:
    """The distinct ``fids`` in ascending order (int64), by a sort: ``np.unique`` hashes in
    numpy 2.4, several times slower for 100,000 integers."""
    a = np.sort(np.asarray(fids, dtype=np.int64))
    if len(a) < 2:
        return a
    return a[np.concatenate(([True], a[1:] != a[:-1]))]


def encode_fids(fids: Iterable[int] | np.ndarray) -> bytes:
    """Sorted unique fids as little-endian int64 bytes, as the log stores them."""
    arr = sorted_unique(np.asarray(list(fids) if not isinstance(fids, np.ndarray) else fids, dtype=np.int64))
    return arr.astype("<i8").tobytes()


def decode_fids(blob: bytes | memoryview | None) -> np.ndarray:
    """The fids of :func:`encode_fids`."""
    if not blob:
        return np.empty(0, dtype=np.int64)
    return np.frombuffer(bytes(blob), dtype="<i8").astype(np.int64)


def merge(
    since: str, current: str, steps: list[tuple[str, str, bytes | memoryview | None]]
) -> Changes | None:
    """The :class:`Changes` from ``since`` to ``current`` out of a layer's logged ``steps``
    ``(generation before, generation after, fids or None)``, oldest first; None when they do
    not chain from ``since`` to ``current`` or one of them has no fids."""
    if since == current:
        return Changes(since, current, np.empty(0, dtype=np.int64), 0)
    start = next((i for i, s in enumerate(steps) if s[0] == since), None)
    if start is None:
        return None
    at = since
    parts: list[np.ndarray] = []
    for before, after, blob in steps[start:]:
        if before != at or blob is None:
            return None
        parts.append(decode_fids(blob))
        at = after
        if at == current:
            return Changes(since, current, sorted_unique(np.concatenate(parts)), len(parts))
    return None


#: Arrays of at least this many rows made by :func:`append_rows` get room for more after them.
GROW_FROM = 4096

#: Buffers made by :func:`append_rows` (by id): the buffer, weakly, and how many of its rows are
#: taken -- by the longest array handed out as a view of it.
_TAKEN: dict[int, tuple[weakref.ref[np.ndarray], int]] = {}
_TAKEN_LOCK = threading.Lock()


def append_rows(old: np.ndarray, new: np.ndarray) -> np.ndarray:
    """``old`` followed by ``new`` (cast to ``old``'s dtype), without copying ``old`` when it can.

    The result is a view of the first rows of a buffer with room for about a quarter more; when
    ``old`` is such a view and ends where the rows taken from its buffer end, ``new`` is written
    into the room after it and the longer view returned: O(len(new)) instead of a copy of the
    whole column -- what a cache following a commit that only added rows does for each column.
    ``old`` itself never changes (its rows stay as they are; the rows after it were no one's),
    and a second array appended to the same ``old`` gets a copy, never the same room.
    """
    new = np.asarray(new, dtype=old.dtype)
    n, k = len(old), len(new)
    base = old.base
    if k and old.ndim == 1 and isinstance(base, np.ndarray) and base.ndim == 1 and base.dtype == old.dtype:
        with _TAKEN_LOCK:
            taken = _TAKEN.get(id(base))
            mine = (
                taken is not None
                and taken[0]() is base
                and taken[1] == n
                and len(base) >= n + k
                and old.strides == base.strides
                and old.__array_interface__["data"][0] == base.__array_interface__["data"][0]
            )
            if mine:
                _TAKEN[id(base)] = (taken[0], n + k)  # type: ignore[index]
        if mine:
            base[n : n + k] = new
            return base[: n + k]
    total = n + k
    room = total // 4 if total >= GROW_FROM else 0
    if not room:
        return np.concatenate([old, new])
    buffer = np.empty(total + room, dtype=old.dtype)
    buffer[:n] = old
    buffer[n:total] = new
    key = id(buffer)
    with _TAKEN_LOCK:
        _TAKEN[key] = (weakref.ref(buffer, lambda _ref: _forget(key, _ref)), total)
    return buffer[:total]


def _forget(key: int, ref: weakref.ref[np.ndarray]) -> None:
    with _TAKEN_LOCK:
        if key in _TAKEN and _TAKEN[key][0] is ref:
            del _TAKEN[key]


def reserved_bytes(arr: np.ndarray) -> int:
    """Bytes of the room after ``arr`` in its :func:`append_rows` buffer (0 for other arrays):
    what ``arr`` holds beyond its own ``nbytes``."""
    base = arr.base
    if not isinstance(base, np.ndarray) or arr.ndim != 1:
        return 0
    with _TAKEN_LOCK:
        taken = _TAKEN.get(id(base))
    if taken is None or taken[0]() is not base:
        return 0
    return max(0, int(base.nbytes) - int(arr.nbytes))


@dataclass(frozen=True)
class Splice:
    """How the kept rows of an older generation become those of a newer one: keep the old
    rows where ``keep`` is true, append the rows read again, then (when ``order`` is not None)
    reorder by fid.  ``fids`` are the new generation's, sorted."""

    keep: np.ndarray
    order: np.ndarray | None
    fids: np.ndarray
    #: every old row is kept (rows were only added): no mask to apply
    keeps_all: bool = False

    def numpy(self, old: np.ndarray, new: np.ndarray) -> np.ndarray:
        """One numpy column of the new generation from the old one and the rows read again."""
        if self.keeps_all and self.order is None:
            return append_rows(old, new)  # rows only added: into the room after the old ones
        kept = old if self.keeps_all else old[self.keep]
        out = np.concatenate([kept, np.asarray(new, dtype=old.dtype)])
        return out if self.order is None else out[self.order]

    def arrow(self, old: pa.Array | None, new: pa.Array | None) -> pa.Array | None:
        """One Arrow column of the new generation from the old one and the rows read again
        (cast to the old one's type); None when either is missing."""
        if old is None or new is None:
            return None
        kept = old if self.keeps_all else old.filter(pa.array(self.keep))
        joined = pa.concat_arrays([kept, new.cast(old.type)])
        return joined if self.order is None else joined.take(pa.array(self.order))


def splice(old_fids: np.ndarray, touched: np.ndarray, new_fids: np.ndarray) -> Splice:
    """The :class:`Splice` from rows ``old_fids`` (sorted) to those without the ``touched`` fids
    plus ``new_fids`` (the touched ones current now, sorted): O(k log n) to find the touched
    rows, then one mask and concatenation of each column."""
    old_fids = np.asarray(old_fids, dtype=np.int64)
    keep = np.ones(len(old_fids), dtype=bool)
    dropped = 0
    if len(old_fids) and len(touched):
        pos = np.clip(np.searchsorted(old_fids, touched), 0, len(old_fids) - 1)
        hit = pos[old_fids[pos] == touched]
        keep[hit] = False
        dropped = len(hit)
    kept = old_fids if not dropped else old_fids[keep]
    new_fids = np.asarray(new_fids, dtype=np.int64)
    order = None
    if len(kept) and len(new_fids) and new_fids[0] <= kept[-1]:
        fids = np.concatenate([kept, new_fids])
        order = np.argsort(fids, kind="stable")
        fids = fids[order]
    else:
        fids = append_rows(kept, new_fids) if not dropped else np.concatenate([kept, new_fids])
    return Splice(keep, order, fids, keeps_all=not dropped)
