"""What the cache drops is given back to the system: a region that lets go of a large entry
has the C allocator return its free pages (geo.store.memory), so a worker's resident memory
follows what its cache holds instead of growing with every generation it replaced."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from geo.store import memory

ROOT = Path(__file__).resolve().parent.parent

# An entry of 2,000 blocks of 64 KiB (below glibc's mapping threshold: they come from the
# heap), each followed by a small block that stays alive, so no freed block lies at the top
# of the heap where free() alone would give it back.
_SCRIPT = textwrap.dedent(
    """
    import json, sys
    sys.path.insert(0, {root!r})
    from geo.store import memory
    from geo.store.cache import Region, RegionSpec

    def rss():
        for line in open("/proc/self/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024

    region = Region(RegionSpec(8, family=lambda key: key[0]), budget=1 << 40)
    pinned = []
    blocks = []
    for i in range(2000):
        blocks.append(bytearray(64 * 1024))
        pinned.append(bytes(1000))
    region[("layer", 1)] = blocks
    del blocks
    before = rss()
    region[("layer", 2)] = [b"x"]  # a newer generation: the older one is dropped
    after = rss()
    print(json.dumps({{"before": before, "after": after, "released": memory.released(),
                      "kept": region.keys(), "pinned": len(pinned)}}))
    """
)


def _run() -> dict:
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT.format(root=str(ROOT))],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(memory.release() is False, reason="no malloc_trim in this C library")
def test_dropping_a_large_entry_gives_its_memory_back():
    out = _run()
    assert out["kept"] == [["layer", 2]]
    assert out["released"] == 1
    freed = out["before"] - out["after"]
    assert freed > 100 * 1024 * 1024, out  # of the entry's 125 MiB


def test_a_small_drop_does_not_trim():
    from geo.store.cache import Region, RegionSpec

    region = Region(RegionSpec(8, family=lambda key: key[0]), budget=1 << 30)
    region[("layer", 1)] = bytearray(1024)
    count = memory.released()
    region[("layer", 2)] = bytearray(1024)
    assert region.keys() == [("layer", 2)]
    assert memory.released() == count


_HEAPS_SCRIPT = textwrap.dedent(
    """
    import ctypes, sys, threading
    sys.path.insert(0, {root!r})
    from server import create_app

    create_app({{"GRIDWATCH_DATA": {data!r}, "TESTING": True}})
    held = []
    start = threading.Barrier(8)

    def work():
        start.wait()
        held.append([bytearray(4096) for _ in range(200)])

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    sys.stderr.flush()
    ctypes.CDLL("libc.so.6").malloc_stats()  # one "Arena N:" block per heap, on stderr
    """
)


@pytest.mark.slow
@pytest.mark.skipif(memory.release() is False, reason="not glibc")
def test_a_web_process_allocates_from_two_heaps_whatever_its_threads(tmp_path):
    done = subprocess.run(
        [sys.executable, "-c", _HEAPS_SCRIPT.format(root=str(ROOT), data=str(tmp_path / "data"))],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    heaps = [line for line in done.stderr.splitlines() if line.startswith("Arena ")]
    assert 1 <= len(heaps) <= memory.HEAPS, done.stderr[-2000:]


def test_a_large_write_keeps_its_pages_in_memory_until_it_commits(tmp_path):
    from geo.store.backends import open_store
    from geo.store.gpkg.connection import PAGE_CACHE_KIB, PAGE_CACHE_KIB_PER_ROW, PAGE_CACHE_MAX_KIB

    def cache_kib(store) -> int:
        return -int(store.conn.execute("PRAGMA cache_size").fetchone()[0])

    with open_store(tmp_path / "data") as store:
        assert cache_kib(store) == PAGE_CACHE_KIB
        store.make_room(100_000)  # outside a transaction: nothing
        assert cache_kib(store) == PAGE_CACHE_KIB
        with store.transaction():
            store.make_room(100_000)
            assert cache_kib(store) == PAGE_CACHE_KIB + 100_000 * PAGE_CACHE_KIB_PER_ROW
            store.make_room(10)  # never smaller within the transaction
            assert cache_kib(store) == PAGE_CACHE_KIB + 100_000 * PAGE_CACHE_KIB_PER_ROW
            store.make_room(10**9)
            assert cache_kib(store) == PAGE_CACHE_MAX_KIB
        assert cache_kib(store) == PAGE_CACHE_KIB  # back when it ends
        with pytest.raises(RuntimeError), store.transaction():
            store.make_room(100_000)
            raise RuntimeError("rolled back")
        assert cache_kib(store) == PAGE_CACHE_KIB
