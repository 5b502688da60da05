"""Commit after preview: the kept prepared rows against reading the file again, same run.

Run on demand (not a test):

    .venv/bin/python bench/bench_commit_preview.py            # 10,000 cells, 200,000 points, 30 MB upload
    .venv/bin/python bench/bench_commit_preview.py --quick    # 2,000 cells, 20,000 points, 5 MB

Builds a store (unit grid and points), copies it, and makes a zipped GBK shapefile of about
``--upload-mb`` MB (as bench_upload_stall.py does).  On each copy the file is staged and
previewed (:func:`geo.imports.upload_review.preview`, what ``POST /api/uploads`` runs) and
then committed (:func:`geo.imports.upload_review.commit`):

* before: the kept rows are removed first, so the commit reads, cleans and assigns the
  file again -- what every commit did before the rows were kept;
* after: the commit writes the rows the preview kept.

Then the same file is staged again on the first copy: a byte-identical upload, recognised
by its checksum right after unpacking (before: only after the full read, as long as a
preview).  Rounds alternate before/after so that load from other jobs falls on both.
"""

from __future__ import annotations

import argparse
import io
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_engine import make_cells, make_points, write_gbk
from bench_upload_stall import make_upload

from geo.imports import upload_prepared, upload_review, uploads
from geo.imports.importer import import_file
from geo.store.backends import open_store


def one_round(store_dir: Path, data_dir: Path, upload: Path, keep: bool) -> tuple[float, float, dict]:
    """Stage, preview and commit ``upload`` into the store; seconds for preview and commit."""
    with open(upload, "rb") as f:
        upload_id = uploads.stage(data_dir, upload.name, io.BytesIO(f.read()), "demolition")
    with open_store(store_dir) as store:
        t0 = time.perf_counter()
        upload_review.preview(store, data_dir, upload_id)
        t1 = time.perf_counter()
        if not keep:
            upload_prepared.drop(uploads.staged_folder(data_dir, upload_id))
        t2 = time.perf_counter()
        report = upload_review.commit(store, data_dir, upload_id)
        t3 = time.perf_counter()
    return t1 - t0, t3 - t2, report.to_dict()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cells", type=int, default=10_000)
    ap.add_argument("--points", type=int, default=200_000)
    ap.add_argument("--upload-mb", type=float, default=30.0)
    ap.add_argument("--rounds", type=int, default=1, help="before/after pairs (each on fresh copies)")
    ap.add_argument("--quick", action="store_true", help="2,000 cells, 20,000 points, 5 MB")
    args = ap.parse_args()
    if args.quick:
        args.cells, args.points, args.upload_mb = 2_000, 20_000, 5.0
    work = Path(tempfile.mkdtemp(prefix="gridwatch-commitbench-"))
    print(
        f"# gridwatch commit-after-preview benchmark: {args.cells:,} cells, {args.points:,} points, "
        f"{args.upload_mb:.0f} MB upload, {args.rounds} round(s)"
    )
    try:
        cells = make_cells(args.cells)
        base = work / "base"
        with open_store(base) as store:
            import_file(store, "grid", write_gbk(cells, work / "in" / "grid.shp"))
            per_file = min(100_000, args.points)
            for k in range(max(1, args.points // per_file)):
                pts = make_points(per_file, cells.total_bounds, seed=10 + k, start_id=k * per_file)
                import_file(store, "demolition", write_gbk(pts, work / "in" / f"p{k}.shp"))
        upload = make_upload(cells.total_bounds, args.upload_mb, work / "upload")
        print(f"upload file: {upload.stat().st_size / 1024 / 1024:,.1f} MB (zip of a GBK shapefile)")
        times: dict[str, list[tuple[float, float]]] = {"before": [], "after": []}
        reports = {}
        last_after: Path | None = None
        for r in range(args.rounds):
            for name in ("before", "after") if r % 2 == 0 else ("after", "before"):
                copy = work / f"{name}{r}"
                shutil.copytree(base, copy)
                preview_s, commit_s, report = one_round(copy, copy, upload, keep=name == "after")
                times[name].append((preview_s, commit_s))
                reports[name] = report
                print(
                    f"round {r + 1} {name:6}: preview {preview_s:6.2f} s, commit {commit_s:6.2f} s "
                    f"({report['added']:,} added, {report['unassigned']:,} outside every unit)"
                )
                if name == "after":
                    last_after = copy
        same = {
            k: reports["before"][k] for k in ("added", "updated", "unchanged", "rejected_count", "unassigned")
        }
        assert same == {k: reports["after"][k] for k in same}, (reports["before"], reports["after"])
        before = statistics.median(c for _p, c in times["before"])
        after = statistics.median(c for _p, c in times["after"])
        preview = statistics.median(p for p, _c in times["before"] + times["after"])
        print(
            f"commit after preview, median: before {before:.2f} s, after {after:.2f} s ({after / before:.2f}x)"
        )
        print(f"preview (read, clean, assign, dry-run write), median: {preview:.2f} s")
        assert last_after is not None
        with open(upload, "rb") as f:
            again = uploads.stage(last_after, "again.zip", io.BytesIO(f.read()), "demolition")
        with open_store(last_after) as store:
            t0 = time.perf_counter()
            dup = upload_review.preview(store, last_after, again)
            t1 = time.perf_counter()
        print(
            f"byte-identical re-upload recognised ({dup.status}, batch {dup.duplicate_of}): {t1 - t0:.2f} s "
            f"against {preview:.2f} s for a read ({(t1 - t0) / preview:.3f}x)"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
