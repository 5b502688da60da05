"""Giving the memory of dropped cache entries back to the system.

A worker's cache drops a layer's older generation as soon as a newer one is kept
(:mod:`geo.store.cache`), but the C allocator keeps what was freed: glibc returns a freed
block to the system only when it lies at the top of its heap or was mapped on its own, and
after the first large block is freed it raises the size from which blocks are mapped on
their own (up to 32 MiB), so the next generation's arrays come out of the heaps.  With a
thread per request, blocks are spread over several heaps (arenas), and a server's resident
memory grew by half across twenty small imports although the cache held the same bytes.
Arrow's buffers come from its own allocator (mimalloc in the wheels), which also keeps what
was freed for the thread that freed it.

:func:`release` asks Arrow's allocator to give back what it holds unused and glibc to give
back the free pages of every heap (``malloc_trim(0)``),
which the cache calls after it dropped entries of at least :data:`RELEASE_AFTER_BYTES`.
Elsewhere (another C library, another system) it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading
from typing import Any

import pyarrow as pa

__all__ = ["HEAPS", "RELEASE_AFTER_BYTES", "limit_heaps", "release", "released"]

#: glibc heaps (arenas) a server process allocates from (:func:`limit_heaps`).
HEAPS = 2

#: Bytes of dropped entries (the cache's estimate) from which the free memory is given back.
RELEASE_AFTER_BYTES = 8 * 1024 * 1024

_lock = threading.Lock()
_count = 0


def _libc(name: str, *args: Any) -> Any:
    try:
        fn = getattr(ctypes.CDLL(ctypes.util.find_library("c")), name)
    except (OSError, AttributeError, TypeError):
        return None
    fn.argtypes = list(args)
    fn.restype = ctypes.c_int
    return fn


_TRIM = _libc("malloc_trim", ctypes.c_size_t)
_MALLOPT = _libc("mallopt", ctypes.c_int, ctypes.c_int)
_M_ARENA_MAX = -8


def limit_heaps(heaps: int = HEAPS) -> bool:
    """Let glibc allocate from at most ``heaps`` heaps (arenas) from now on, as
    ``MALLOC_ARENA_MAX`` would (it can no longer be set once a process has started).  By
    default glibc makes up to eight per core, one for each thread that finds the others busy;
    a server that starts a thread per request then spreads what it frees over all of them,
    and each keeps its part.  Called when the web application is made; False where there is
    no such setting."""
    if _MALLOPT is None:
        return False
    return bool(_MALLOPT(_M_ARENA_MAX, int(heaps)))


def release() -> bool:
    """Give the free pages of the C allocator's heaps back to the system (glibc's
    ``malloc_trim(0)``); False where there is no such call.  Takes a few milliseconds per
    gigabyte of heap; one thread at a time."""
    global _count
    if _TRIM is None:
        return False
    with _lock:
        pa.default_memory_pool().release_unused()  # Arrow's own allocator (mimalloc) first
        _TRIM(0)
        _count += 1
    return True


def released() -> int:
    """How often :func:`release` gave memory back in this process (for tests)."""
    return _count
