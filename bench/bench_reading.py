"""Reading uploads in the confined helper: what it costs a legitimate large survey.

Run on demand (not a test):

    .venv/bin/python bench/bench_reading.py                  # a 5,000,000-point GBK shapefile
    .venv/bin/python bench/bench_reading.py --points 500000  # quick look

A point shapefile (GBK DBF without .cpg, EPSG:4548, the survey's 7 fields) is read three ways,
each in a fresh process so that peak memory is its own:

* baseline — ``read_dataset`` in the process itself, every column decoded (how uploads were
  read before the helper);
* helper — the same file through :func:`geo.imports.dataset.read_upload` in the confined helper
  (content checks, header checks, only the layer's columns decoded, the table sent back);
* preview — the whole ``prepare_import`` (read in the helper, clean, check, assign to 4,000
  unit grids), as an upload's report is made.

Printed: seconds, the peak memory of the process asking and of the helper, and ratios.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _peak() -> int:
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) * 1024 for line in fh if line.startswith("VmHWM:"))


def _read_in_helper(shp: str) -> tuple[int, int]:
    """Runs in the helper: read as an upload is read; its row count and the helper's peak."""
    from geo.imports.dataset import read_upload
    from geo.reading.datasets import Dataset

    picked = read_upload(
        [Dataset("sites.shp", Path(shp), "shp")], "demolition", None, None, None, None, 10**9
    )
    return picked.attrs["index"], _peak()


def child(mode: str, shp: str, data: str) -> None:
    from geo.imports.importer import prepare_import
    from geo.reading import untrusted
    from geo.reading.datasets import Dataset
    from geo.reading.readers import read_dataset
    from geo.store.backends import open_store

    if mode != "baseline":
        untrusted.run(int)  # a server's forkserver is started once, before this read
    started = time.perf_counter()
    helper_peak = 0
    if mode == "baseline":
        rows = len(read_dataset(Dataset("sites.shp", Path(shp), "shp")).attrs)
    elif mode == "helper":
        rows, helper_peak = untrusted.run(_read_in_helper, shp)
    else:
        with open_store(Path(data)) as store:
            prepared = prepare_import(store, "demolition", shp)
            rows = prepared.report.accepted
    print(
        json.dumps(
            {
                "seconds": time.perf_counter() - started,
                "rows": rows,
                "peak": _peak(),
                "helper_peak": helper_peak,
            }
        )
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--points", type=int, default=5_000_000)
    p.add_argument("--cells", type=int, default=4000)
    p.add_argument("--work", type=Path, help="folder to keep the written files in (reused when present)")
    p.add_argument("--child", nargs=3, metavar=("MODE", "SHP", "DATA"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(*args.child)
        return

    import numpy as np
    import pyogrio

    sys.path.insert(0, str(ROOT / "bench"))
    from bench_engine import make_cells, make_points

    from geo.imports.importer import import_file
    from geo.store.backends import open_store

    work = args.work or Path(tempfile.mkdtemp(prefix="gridwatch-bench-reading-"))
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    if not (work / "sites.shp").exists():
        cells = make_cells(args.cells)
        with open_store(work / "data") as store:
            cells.to_file(work / "grid.shp", engine="pyogrio", encoding="GBK")
            import_file(store, "grid", work / "grid.shp")
        pts = make_points(args.points, np.asarray(cells.total_bounds), seed=3)
        pyogrio.write_dataframe(pts, work / "sites.shp", encoding="GBK")
        (work / "sites.cpg").unlink(missing_ok=True)
        size = sum(p.stat().st_size for p in work.glob("sites.*"))
        print(f"{args.points:,} points written ({size / 1e6:.0f} MB) in {time.perf_counter() - t0:.1f} s")

    results = {}
    for mode in ("baseline", "helper", "preview"):
        run = subprocess.run(
            [sys.executable, __file__, "--child", mode, str(work / "sites.shp"), str(work / "data")],
            capture_output=True,
            text=True,
            check=False,
        )
        if run.returncode != 0:
            print(run.stderr[-3000:])
            raise SystemExit(f"{mode} failed")
        results[mode] = json.loads(run.stdout.strip().splitlines()[-1])
    base = results["baseline"]
    print(f"\n{'way':<10} {'rows':>10} {'seconds':>8} {'process peak':>13} {'helper peak':>12}")
    for mode, r in results.items():
        helper = f"{r['helper_peak'] / 2**20:,.0f} MiB" if r["helper_peak"] else "—"
        print(f"{mode:<10} {r['rows']:>10,} {r['seconds']:>8.2f} {r['peak'] / 2**20:>9,.0f} MiB {helper:>12}")
    h = results["helper"]
    print(
        f"\nhelper vs baseline: {h['seconds'] / base['seconds']:.2f}× the time, asking process "
        f"{h['peak'] / base['peak']:.2f}× the memory, helper {h['helper_peak'] / base['peak']:.2f}× "
        "the baseline's memory"
    )
    if args.work is None:
        import shutil

        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
