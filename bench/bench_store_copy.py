"""``gridwatch store copy`` timed: a GeoPackage store (a grid, two imports of the survey points
so that every point has a retired version) copied to another GeoPackage, into PostGIS and back,
beside SQLite's own backup of the same file (the baseline, measured in the same run).

Run on demand (not a test).  The PostGIS legs need PostgreSQL with PostGIS and psycopg; a
throw-away cluster is started with ``scripts/postgres.sh`` and stopped afterwards:

    .venv/bin/python bench/bench_store_copy.py             # 4,000 cells, 200,000 points
    .venv/bin/python bench/bench_store_copy.py --quick     # 400 cells, 20,000 points
    .venv/bin/python bench/bench_store_copy.py --no-postgis

Each copy is timed whole (the rows, the archives and the check: row counts and the figures at
every level now, as of four year ends and as known at four earlier writes), and once more
without the figures' check.  The peak resident size of the process is printed after each leg.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_engine import make_cells, make_points, timed, write_gbk
from geo.figures.compare import compare_figures
from geo.imports.importer import import_file
from geo.store.backends import Location, open_store
from geo.store.copy import copy_store

ROOT = Path(__file__).resolve().parent.parent


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--cells", type=int, default=4_000)
    ap.add_argument("--points", type=int, default=200_000)
    ap.add_argument("--quick", action="store_true", help="400 cells, 20,000 points")
    ap.add_argument("--no-postgis", action="store_true", help="only the GeoPackage legs")
    args = ap.parse_args()
    if args.quick:
        args.cells, args.points = 400, 20_000
    work = Path(tempfile.mkdtemp(prefix="gridwatch-bench-copy-"))
    work.chmod(0o755)  # the cluster runs as the postgres user when started by root
    cluster = work / "pg"
    started = False
    try:
        print(f"# store copy: {args.cells:,} cells, {args.points:,} points (each with one retired version)")
        cells = make_cells(args.cells)
        points = make_points(args.points, cells.total_bounds, seed=10)
        changed = points.copy()
        changed["违建面积"] = changed["违建面积"] + 1  # every row replaced: a history as long as the layer
        source = Location(str(work / "src" / "gridwatch.gpkg"), work / "src")
        with open_store(source.store, data=source.data) as store:
            import_file(store, "grid", write_gbk(cells, work / "in" / "grid.shp"))
            import_file(store, "demolition", write_gbk(points, work / "in" / "sites.shp"))
            import_file(store, "demolition", write_gbk(changed, work / "in2" / "sites.shp"))
            print(f"# source: {Path(source.store).stat().st_size / 2**20:,.0f} MiB")
            rows: dict[str, float] = {}
            rows["SQLite backup of the file (baseline)"], _ = timed(
                lambda: store.backup(work / "backup.gpkg")
            )
        print(f"# peak RSS after building: {_peak_mb():,.0f} MiB")

        def leg(name: str, src: Location, dst: Location, check: bool = True) -> None:
            rows[name], _ = timed(lambda: copy_store(src, dst, verify=compare_figures if check else None))
            print(f"# {name}: peak RSS {_peak_mb():,.0f} MiB")

        def gpkg(name: str) -> Location:
            return Location(str(work / name / "gridwatch.gpkg"), work / name)

        leg("GeoPackage → GeoPackage, rows and counts only", source, gpkg("g0"), check=False)
        leg("GeoPackage → GeoPackage, checked", source, gpkg("g1"))
        if not args.no_postgis:
            out = subprocess.run(
                ["bash", str(ROOT / "scripts" / "postgres.sh"), "start", str(cluster)],
                capture_output=True,
                text=True,
            )
            if out.returncode != 0:
                print(f"cannot start PostgreSQL: {out.stderr.strip()}", file=sys.stderr)
                return 1
            started = True
            url = out.stdout.strip()
            pg = Location(url, work / "pgdata")
            leg("GeoPackage → PostGIS, checked", source, pg)
            leg("PostGIS → GeoPackage, checked", pg, gpkg("g2"))
        base = rows["SQLite backup of the file (baseline)"]
        print("| what | time | / SQLite backup |")
        print("| --- | --- | --- |")
        for what, t in rows.items():
            print(f"| {what} | {t:,.1f} s | {t / base:,.0f}× |")
        assert np.isfinite(base)
        return 0
    finally:
        if started:
            subprocess.run(
                ["bash", str(ROOT / "scripts" / "postgres.sh"), "stop", str(cluster)], capture_output=True
            )
        subprocess.run(["rm", "-rf", str(work)], check=False)


if __name__ == "__main__":
    raise SystemExit(main())
