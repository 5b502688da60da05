"""Load test: surveyors uploading and map users reading at the same time, under gunicorn.

Run on demand (tests/test_load.py runs a short form in CI):

    .venv/bin/python bench/bench_load.py                         # 60 s, 8 uploaders, 32 readers
    .venv/bin/python bench/bench_load.py --duration 10 --uploaders 4 --readers 8 --workers 2
    .venv/bin/python bench/bench_load.py --journals delete,wal --duration 30   # rollback journal vs WAL

Loads the demo district (data/shapefiles: 341 unit grids, 2,000 illegal-construction sites)
into a fresh store as ``gridwatch demo`` does, creates one surveyor account per uploader, one
viewer account for the readers and one admin account for the final checks, each with an
API token sent as ``Authorization: Bearer``, and starts gunicorn with the sample settings
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
back; the server has its own processes.  Every client sends its next request as soon as the
last one is answered (no pause to look at the map), so the clients keep the server saturated
and read latency is mostly the wait for a free worker thread: about the number of clients over
the throughput.  Uploaders finish the round they are in when time is up, so every staged
upload is committed.

The run passes when every request got the status it should (200, 201 for an upload; each
other status is a failure, 5xx counted apart) and the features reconcile exactly: the
store's demolition count, the demo's features plus the sum of ``added`` over the committed
batches, and the features the uploaders sent in committed uploads all agree, the batch
register (``/api/batches``) lists exactly the committed batches with their counts, a full
recount (``/api/stats`` per unit grid, its rows and its totals) gives the same number, and
the store holds every sent 案件编号 exactly once; SQLite's integrity check of the GeoPackage
must be clean.  Latency (p50/p95/max of reads, uploads and commits) and throughput are
printed, never judged.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the harness: tests/helpers/load/

from tests.helpers.load.clients import READ_KINDS
from tests.helpers.load.run import report, run


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=60.0, help="seconds of load (default 60)")
    ap.add_argument("--uploaders", type=int, default=8, help="concurrent uploaders (default 8)")
    ap.add_argument("--readers", type=int, default=32, help="concurrent map readers (default 32)")
    ap.add_argument(
        "--workers", type=int, default=None, help="gunicorn workers (default: deploy/gunicorn.conf.py's)"
    )
    ap.add_argument(
        "--journals",
        default="",
        help="comma-separated SQLite journals to run one after the other in a fresh store each "
        "(delete: the rollback journal, wal), compared at the end (default: the store's own, WAL)",
    )
    args = ap.parse_args(argv)
    if args.duration <= 0 or args.uploaders < 0 or args.readers < 1:
        ap.error("--duration must be > 0, --uploaders >= 0, --readers >= 1")
    journals = [j.strip().lower() for j in args.journals.split(",") if j.strip()]
    if any(j not in ("delete", "wal") for j in journals):
        ap.error("--journals takes delete and/or wal")
    print(
        f"# gridwatch load test: {args.uploaders} uploaders, {args.readers} readers, {args.duration:g} s, "
        f"demo district, gunicorn on 127.0.0.1"
    )
    from geo.store.gpkg.connection import JOURNAL_ENV

    passed, reads = True, {}
    for journal in journals or [""]:
        if journal:
            os.environ[JOURNAL_ENV] = journal  # read by this process and by gunicorn's
            print(f"## journal: {journal}")
        result = run(args.duration, args.uploaders, args.readers, args.workers)
        report(result)
        passed = passed and result.passed
        t = result.tally
        reads[journal] = [s for k in READ_KINDS for s in t.seconds.get(k, [])]
        os.environ.pop(JOURNAL_ENV, None)
    if len(journals) > 1:
        print("## reads by journal (ratio: against the first)")
        first = reads[journals[0]]
        for journal in journals:
            ms = np.asarray(reads[journal] or [np.nan]) * 1000
            base = np.asarray(first or [np.nan]) * 1000
            p50, p95 = np.percentile(ms, 50), np.percentile(ms, 95)
            print(
                f"  {journal:7s} {len(reads[journal]):6,} reads  p50 {p50:7.1f} ms "
                f"({p50 / np.percentile(base, 50):.2f}x)  p95 {p95:7.1f} ms ({p95 / np.percentile(base, 95):.2f}x)"
            )
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
