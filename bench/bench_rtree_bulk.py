"""Where a bulk load of the R-tree (geo.store.gpkg.rtree_load) beats one insert per entry.

Run on demand (not a test):

    .venv/bin/python bench/bench_rtree_bulk.py            # a 200,000-entry tree, 2 rounds
    .venv/bin/python bench/bench_rtree_bulk.py --quick    # 50,000 entries, 1 round

A GeoPackage-style R-tree of ``--held`` point entries is made once in a WAL file; for each
share of new entries (new / held) a copy of it gets the new entries in one transaction
(commit included, synchronous=FULL as the store runs) two ways, alternating:

- ``insert``: one ``INSERT`` per entry in Z-order (what the writer did for every write);
- ``bulk``: :func:`geo.store.gpkg.rtree_load.rebuild` (the whole tree packed again).

Prints seconds and the ratio bulk / insert per share: the threshold
(``rtree_load.BULK_FRACTION``) is the share above which the ratio stays below 1.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import apsw
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from geo.store.gpkg import rtree_load
from geo.store.gpkg.spatial import _z_order

SHARES = (0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0)


def _points(rng: np.random.Generator, n: int) -> np.ndarray:
    x = rng.uniform(500_000, 540_000, n)
    y = rng.uniform(3_360_000, 3_400_000, n)
    return np.stack([x, y, x, y], axis=1)


def _open(path: Path) -> apsw.Connection:
    conn = apsw.Connection(str(path))
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA cache_size=-1000000")
    return conn


def _insert(conn: apsw.Connection, ids: np.ndarray, bounds: np.ndarray) -> None:
    order = np.argsort(_z_order(bounds), kind="stable")
    conn.executemany(
        "INSERT OR REPLACE INTO rtree_t_geom VALUES (?,?,?,?,?)",
        zip(
            ids[order].tolist(),
            bounds[order, 0].tolist(),
            bounds[order, 2].tolist(),
            bounds[order, 1].tolist(),
            bounds[order, 3].tolist(),
            strict=True,
        ),
    )


def main() -> None:
    """Measure and print."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--held", type=int, default=200_000)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    held, rounds = (50_000, 1) if args.quick else (args.held, args.rounds)
    rng = np.random.default_rng(12)
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "base.gpkg"
        conn = _open(base)
        conn.execute("CREATE VIRTUAL TABLE rtree_t_geom USING rtree(id, minx, maxx, miny, maxy)")
        with conn:
            _insert(conn, np.arange(1, held + 1, dtype=np.int64), _points(rng, held))
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.close()
        with open("/proc/loadavg") as f:
            print(f"held {held:,} entries; load average {f.read().split()[0]}")
        print(f"{'share':>6} {'new':>9} {'insert s':>9} {'bulk s':>9} {'bulk/insert':>12}")
        for share in SHARES:
            n = int(held * share)
            new = _points(rng, n)
            ids = np.arange(held + 1, held + n + 1, dtype=np.int64)
            seconds: dict[str, list[float]] = {"insert": [], "bulk": []}
            for r in range(rounds):
                for way in ("insert", "bulk") if r % 2 == 0 else ("bulk", "insert"):
                    copy = Path(tmp) / f"{way}.gpkg"
                    shutil.copyfile(base, copy)
                    conn = _open(copy)
                    t = time.perf_counter()
                    with conn:
                        if way == "insert":
                            _insert(conn, ids, new)
                        else:
                            rtree_load.rebuild(conn, "rtree_t_geom", ids, new)
                    seconds[way].append(time.perf_counter() - t)
                    assert conn.execute("SELECT count(*) FROM rtree_t_geom_rowid").fetchone()[0] == held + n
                    conn.close()
                    for suffix in ("", "-wal", "-shm"):
                        Path(f"{copy}{suffix}").unlink(missing_ok=True)
            a, b = statistics.median(seconds["insert"]), statistics.median(seconds["bulk"])
            print(f"{share:>6.2f} {n:>9,} {a:>9.2f} {b:>9.2f} {b / a:>11.2f}×", flush=True)
        with open("/proc/loadavg") as f:
            print(f"load average at the end {f.read().split()[0]}")


if __name__ == "__main__":
    main()
