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

__all__ = ["RELEASE_AFTER_BYTES", "release", "released"]

#: Bytes of dropped entries (the cache's estimate) from which the free memory is given back.
RELEASE_AFTER_BYTES = 8 * 1024 * 1024

_lock = threading.Lock()
_count = 0


def _libc() -> Any:
    name = ctypes.util.find_library("c")
    try:
        lib = ctypes.CDLL(name)
        trim = lib.malloc_trim
    except (OSError, AttributeError, TypeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


_TRIM = _libc()


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
