"""Load test: surveyors uploading and map users reading at the same time, under gunicorn.

Run on demand (tests/test_load.py runs short forms in CI):

    .venv/bin/python bench/bench_load.py --store /tmp/load --backend gpkg,postgis --baseline
        # the issue's load: 40,000 cells, 1,000,000 points, 8 uploaders committing every 10 s,
        # 32 readers waiting 1 s after each answer, 60 s, on each backend; the store is built
        # once into /tmp/load (about 8 min per backend on 2 busy cores) and reused later
    .venv/bin/python bench/bench_load.py --quick                 # 4,000 cells, 100,000 points, 20 s
    .venv/bin/python bench/bench_load.py --demo --reader-pause 0 --upload-every 0   # the demo district, no pauses
    .venv/bin/python bench/bench_load.py --demo --journals delete,wal --duration 30  # rollback journal vs WAL

The store is a copy, for each run, of a base store built once by ``--store DIR`` (or in a
temporary folder): ``--cells`` unit grids and ``--points`` illegal-construction points
generated as bench/bench_engine.py does, imported into a GeoPackage or into a database of a
throw-away PostgreSQL cluster kept in DIR (scripts/postgres.sh; the base database is the
template of each run's); ``--demo`` loads the demo district (341 unit grids, 2,000 sites)
instead.  One surveyor account per uploader, one viewer account for the readers and one admin
account for the final checks are created in the copy, each with an API token sent as
``Authorization: Bearer``, and gunicorn starts with the sample settings
(deploy/gunicorn.conf.py) bound to 127.0.0.1 on a free port.  After a short warm-up (not
counted), for ``--duration`` seconds:

* every uploader repeatedly builds a small zipped GBK shapefile (no .cpg, DBF language byte
  0, GBK entry names in a sub-folder) of 5-20 new illegal-construction sites inside the
  district, points in one round and small polygons in the next, with 案件编号 unique to
  the uploader and the round; sends it to ``POST /api/uploads`` (layer demolition) and
  commits it with ``POST /api/uploads/<id>/commit``, keeping what the commit reports;
* every reader asks for random viewports at zoom 13-18 the way the map page does (unit
  outlines with figures from ``/api/cells``, sites from ``/api/features/demolition``) and,
  for one viewport in ten, for ``/api/stats?level=community&layer=demolition``.

Readers and uploaders are threads in a few client processes (at most 16 readers in one
process, the uploaders in another), so that one interpreter's lock does not hold the load
back; the server has its own processes.  Each reader waits ``--reader-pause`` seconds after
each answer (a user looking at the map) and each uploader starts a round every
``--upload-every`` seconds (both spread over their first interval); with 0 they do not pause,
keep the server saturated, and read latency is mostly the wait for a free worker thread.
Uploaders finish the round they are in when time is up, so every staged upload is committed.
``--baseline`` first runs the same readers with no uploaders on a fresh copy, the same-run
baseline the figures are set against.

The run passes when every request got the status it should (200, 201 for an upload; each
other status is a failure, 5xx counted apart) and the features reconcile exactly: the
store's demolition count, the demo's features plus the sum of ``added`` over the committed
batches, and the features the uploaders sent in committed uploads all agree, the batch
register (``/api/batches``) lists exactly the committed batches with their counts, a full
recount (``/api/stats`` per unit grid, its rows and its totals) gives the same number, and
the store holds every sent 案件编号 exactly once (the demo's keys are listed; a base store's
features are counted, and each sent 案件编号 is looked up in the store, held by the batch of
its commit); SQLite's integrity check of the GeoPackage must be clean.  Latency (p50/p95/max
of reads, uploads and commits) and throughput are printed, and reads are set against the
issue's target (p50 <= 150 ms, p95 <= 500 ms), which does not decide the verdict.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the harness: tests/helpers/load/

from tests.helpers.load.clients import READ_KINDS
from tests.helpers.load.run import report, run
from tests.helpers.load.server import build_base, stop_cluster


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=60.0, help="seconds of load (default 60)")
    ap.add_argument("--uploaders", type=int, default=8, help="concurrent uploaders (default 8)")
    ap.add_argument("--readers", type=int, default=32, help="concurrent map readers (default 32)")
    ap.add_argument(
        "--workers", type=int, default=None, help="gunicorn workers (default: deploy/gunicorn.conf.py's)"
    )
    ap.add_argument(
        "--reader-pause",
        type=float,
        default=1.0,
        help="seconds each reader waits after each answer (default 1)",
    )
    ap.add_argument(
        "--upload-every",
        type=float,
        default=10.0,
        help="each uploader starts an upload and commit every this many seconds (default 10; 0: no pause)",
    )
    ap.add_argument("--cells", type=int, default=40_000, help="unit grids of the base store (default 40,000)")
    ap.add_argument(
        "--points",
        type=int,
        default=1_000_000,
        help="demolition points of the base store (default 1,000,000)",
    )
    ap.add_argument("--quick", action="store_true", help="4,000 cells, 100,000 points, 20 s")
    ap.add_argument(
        "--demo", action="store_true", help="the demo district (2,000 sites) instead of a base store"
    )
    ap.add_argument(
        "--store",
        type=Path,
        help="folder where the base store is built once and found by later runs (default: a temporary one)",
    )
    ap.add_argument(
        "--backend",
        default="gpkg",
        help="gpkg, postgis, or both comma-separated (PostGIS: a throw-away cluster from scripts/postgres.sh)",
    )
    ap.add_argument(
        "--baseline",
        action="store_true",
        help="first the same readers with no uploaders (in a fresh copy), as the same-run baseline",
    )
    ap.add_argument(
        "--journals",
        default="",
        help="comma-separated SQLite journals to run one after the other in a fresh store each "
        "(delete: the rollback journal, wal), compared at the end (default: the store's own, WAL)",
    )
    args = ap.parse_args(argv)
    if args.quick:
        args.cells, args.points, args.duration = 4_000, 100_000, 20.0
    if args.duration <= 0 or args.uploaders < 0 or args.readers < 1:
        ap.error("--duration must be > 0, --uploaders >= 0, --readers >= 1")
    if args.reader_pause < 0 or args.upload_every < 0 or args.cells < 1 or args.points < 1:
        ap.error("--reader-pause and --upload-every must be >= 0, --cells and --points >= 1")
    backends = [b.strip().lower() for b in args.backend.split(",") if b.strip()]
    if not backends or any(b not in ("gpkg", "postgis") for b in backends):
        ap.error("--backend takes gpkg and/or postgis")
    journals = [j.strip().lower() for j in args.journals.split(",") if j.strip()]
    if any(j not in ("delete", "wal") for j in journals):
        ap.error("--journals takes delete and/or wal")
    if journals and backends != ["gpkg"]:
        ap.error("--journals is for the GeoPackage only")
    size = "demo district" if args.demo else f"{args.cells:,} cells, {args.points:,} points"
    print(
        f"# gridwatch load test: {args.uploaders} uploaders (one commit every {args.upload_every:g} s each), "
        f"{args.readers} readers (pause {args.reader_pause:g} s), {args.duration:g} s, {size}, "
        f"backends {', '.join(backends)}, gunicorn on 127.0.0.1; load average {os.getloadavg()[0]:.1f}"
    )
    from geo.store.gpkg.connection import JOURNAL_ENV

    tmp = None if args.store else Path(tempfile.mkdtemp(prefix="gridwatch-loadstore-"))
    folder = args.store or tmp
    assert folder is not None
    passed = True
    reads: dict[str, list[float]] = {}
    try:
        for backend in backends:
            base = None
            if not args.demo:
                base = build_base(folder, backend, args.cells, args.points)
            legs: list[tuple[str, str, int]] = []
            if args.baseline:
                legs.append((f"{backend}, readers only", "", 0))
            for journal in journals or [""]:
                legs.append(
                    (f"{backend}" + (f", journal {journal}" if journal else ""), journal, args.uploaders)
                )
            for name, journal, uploaders in legs:
                if journal:
                    os.environ[JOURNAL_ENV] = journal  # read by this process and by gunicorn's
                print(f"## {name}")
                result = run(
                    args.duration,
                    uploaders,
                    args.readers,
                    args.workers,
                    base=base,
                    reader_pause=args.reader_pause,
                    upload_every=args.upload_every,
                )
                report(result)
                print(f"load average after the run: {os.getloadavg()[0]:.1f}")
                passed = passed and result.passed
                reads[name] = [s for k in READ_KINDS for s in result.tally.seconds.get(k, [])]
                os.environ.pop(JOURNAL_ENV, None)
            if backend == "postgis" and base is not None:
                stop_cluster(base.folder)
    finally:
        if tmp is not None:
            stop_cluster(tmp / "pg")
            shutil.rmtree(tmp, ignore_errors=True)
    if len(reads) > 1:
        print("## reads (target: p50 <= 150 ms, p95 <= 500 ms; ratio: against the first)")
        first = next(iter(reads.values()))
        base_ms = np.asarray(first or [np.nan]) * 1000
        for name, values in reads.items():
            ms = np.asarray(values or [np.nan]) * 1000
            p50, p95 = np.percentile(ms, 50), np.percentile(ms, 95)
            print(
                f"  {name:28s} {len(values):6,} reads  p50 {p50:7.1f} ms "
                f"({p50 / np.percentile(base_ms, 50):.2f}x)  p95 {p95:7.1f} ms ({p95 / np.percentile(base_ms, 95):.2f}x)"
            )
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
