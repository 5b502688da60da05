"""A polygon preview into a points-only PostGIS layer: how long it takes, and whether readers of
the layer and a small commit wait for it -- the dry run as it was (the import written in a
write transaction and rolled back: the writers' revision lock, and ``ALTER TABLE … TYPE
geometry(Geometry)`` rewriting the table) beside :meth:`Store.preview_transaction` (a snapshot
that writes nothing shared), in the same run on the same database.

Run on demand (not a test); needs PostgreSQL with PostGIS (``scripts/postgres.sh`` starts a
throw-away cluster, stopped afterwards):

    .venv/bin/python bench/bench_pg_preview.py            # 100,000 points, a preview of 1,000 polygons
    .venv/bin/python bench/bench_pg_preview.py --quick    # 20,000 points

While each preview runs, a reader on its own connection counts the layer's rows again and again
(its slowest count is printed), and once the preview's write transaction has begun a one-row
commit into the same layer is made from a third connection; the preview waits for it at the
start of its write (at most 10 s, left out of its time), so a commit that has to wait for the
preview cannot end before it does (its time is printed, and how many waited).  Each way runs 3 times (the
median is printed); the commit's row is a new one each time.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psycopg
import shapely

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from geo.imports.importer import import_file
from geo.store.backends import open_store
from tests.helpers.load.generate import make_cells, make_points, write_gbk

ROOT = Path(__file__).resolve().parent.parent
LAYER = "demolition"
#: how long a preview waits at the start of its write for the one-row commit to end (s)
HOLD = 10.0


def _declared(url: str) -> tuple[str, int]:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT format_type(a.atttypid, a.atttypmod), c.relfilenode::bigint FROM pg_attribute a"
            " JOIN pg_class c ON c.oid = a.attrelid WHERE a.attrelid = to_regclass(%s) AND a.attname = 'geom'",
            (LAYER,),
        ).fetchone()
    assert row is not None
    return str(row[0]), int(row[1])


def _one_preview(url: str, data: Path, path: Path, extra: Path, old_way: bool) -> dict[str, float]:
    """One preview of ``path`` with a reader running and a one-row commit of ``extra`` made
    once its write began; the preview's, the slowest read's and the commit's seconds."""
    stop, began, done = threading.Event(), threading.Event(), threading.Event()
    reads: list[float] = []
    committed: list[float] = []
    held: list[float] = []

    def reader() -> None:
        with psycopg.connect(url, autocommit=True) as conn:
            while not stop.is_set():
                t0 = time.perf_counter()
                conn.execute(f'SELECT count(*) FROM "{LAYER}"').fetchone()
                reads.append(time.perf_counter() - t0)
                time.sleep(0.02)

    def committer() -> None:
        began.wait()
        t0 = time.perf_counter()
        with open_store(url, data=data) as other:
            import_file(other, LAYER, extra)
        committed.append(time.perf_counter() - t0)
        done.set()

    with open_store(url, data=data) as store:
        if old_way:  # the dry run as it was: a write transaction, rolled back
            store.preview_transaction = store.transaction  # type: ignore[method-assign]
        write = store.write_features

        def marked(*args, **kwargs):
            # the preview waits here (at most HOLD s) for the commit: one that waits for the
            # preview cannot end meanwhile
            began.set()
            t0 = time.perf_counter()
            done.wait(HOLD)
            held.append(time.perf_counter() - t0)
            return write(*args, **kwargs)

        store.write_features = marked  # type: ignore[method-assign]
        threads = [threading.Thread(target=reader), threading.Thread(target=committer)]
        for t in threads:
            t.start()
        t0 = time.perf_counter()
        report = import_file(store, LAYER, path, dry_run=True)
        took = time.perf_counter() - t0 - sum(held)
        waited = not done.is_set()
        began.set()
        threads[1].join()
        stop.set()
        threads[0].join()
    assert report.status == "preview" and not report.warnings, report.warnings
    return {
        "preview": took,
        "slowest read": max(reads),
        "one-row commit": committed[0],
        "commit waited": float(waited),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--points", type=int, default=100_000)
    ap.add_argument("--polygons", type=int, default=1_000)
    ap.add_argument("--quick", action="store_true", help="20,000 points")
    args = ap.parse_args()
    if args.quick:
        args.points = 20_000
    work = Path(tempfile.mkdtemp(prefix="gridwatch-bench-pgpreview-"))
    work.chmod(0o755)  # the cluster runs as the postgres user when started by root
    cluster = work / "pg"
    started = subprocess.run(
        ["bash", str(ROOT / "scripts" / "postgres.sh"), "start", str(cluster)], capture_output=True, text=True
    )
    if started.returncode != 0:
        print(f"cannot start PostgreSQL: {started.stderr.strip()}", file=sys.stderr)
        return 1
    url = started.stdout.strip()
    try:
        cells = make_cells(400)
        bounds = cells.total_bounds
        points = make_points(args.points, bounds, seed=3)
        polygons = points.iloc[: args.polygons].copy()
        polygons["geometry"] = shapely.buffer(np.asarray(polygons.geometry), 4.0, quad_segs=2)
        data = work / "data"
        with open_store(url, data=data) as store:
            import_file(store, "grid", write_gbk(cells, work / "in" / "grid.shp"))
            import_file(store, LAYER, write_gbk(points, work / "in" / "sites.shp"))
        poly_file = write_gbk(polygons, work / "in" / "polygons" / "sites.shp")
        print(
            f"# polygon preview into a points-only PostGIS layer: {args.points:,} points, {args.polygons:,} polygons"
        )
        print(f"# load average before: {Path('/proc/loadavg').read_text().split()[:3]}")
        before = _declared(url)
        results: dict[str, list[dict[str, float]]] = {
            "write and roll back (before)": [],
            "preview_transaction (after)": [],
        }
        k = 0
        for _ in range(3):
            for name in results:
                old = name.startswith("write")
                extra = write_gbk(
                    make_points(1, bounds, seed=100 + k, start_id=10_000_000 + k),
                    work / "in" / f"one{k}" / "s.shp",
                )
                k += 1
                results[name].append(_one_preview(url, data, poly_file, extra, old))
                if _declared(url)[0] != before[0]:
                    print("the preview left the table widened", file=sys.stderr)
                    return 1
        after = _declared(url)
        print(f"# load average after: {Path('/proc/loadavg').read_text().split()[:3]}")
        print(f"# table before {before}, after {after} (declared type, relfilenode)")
        print(
            "| way | preview s (its wait for the commit left out) | slowest read of the layer during it, s"
            " | one-row commit during it, s | commits that waited for the preview to end |"
        )
        print("| --- | --- | --- | --- | --- |")
        medians = {}
        for name, runs in results.items():
            m = {
                key: statistics.median(r[key] for r in runs)
                for key in ("preview", "slowest read", "one-row commit")
            }
            medians[name] = m
            waits = int(sum(r["commit waited"] for r in runs))
            print(
                f"| {name} | {m['preview']:.2f} | {m['slowest read']:.2f} | {m['one-row commit']:.2f}"
                f" | {waits} of {len(runs)} |"
            )
        old, new = medians.values()
        print(
            "| after / before | "
            + " | ".join(
                f"{new[key] / old[key]:.2f}" for key in ("preview", "slowest read", "one-row commit")
            )
            + " | |"
        )
        return 0
    finally:
        subprocess.run(
            ["bash", str(ROOT / "scripts" / "postgres.sh"), "stop", str(cluster)], capture_output=True
        )


if __name__ == "__main__":
    raise SystemExit(main())
