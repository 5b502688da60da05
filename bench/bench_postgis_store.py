"""The PostGIS store beside the GeoPackage store, through the engine: the same grid and survey
files imported into both, then the reads the figures make.

Run on demand (not a test); needs PostgreSQL with PostGIS and psycopg (``pip install -e
'.[postgis]'``).  ``scripts/postgres.sh`` starts a throw-away cluster, stopped afterwards:

    .venv/bin/python bench/bench_postgis_store.py            # 4,000 cells, 200,000 points
    .venv/bin/python bench/bench_postgis_store.py --quick    # 400 cells, 20,000 points
    .venv/bin/python bench/bench_postgis_store.py --url postgresql://...   # a database of your own (emptied first)

Both stores must give the same per-cell figures (checked before any time is printed).  The
GeoPackage is the baseline measured in the same run; ratios above 1 mean PostGIS is slower.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_engine import make_cells, make_points, timed, write_gbk
from geo.figures.tally import tally
from geo.imports.importer import import_file
from geo.registry import get_layer
from geo.store.backends import open_store

ROOT = Path(__file__).resolve().parent.parent


def _run(
    store: Any, work: Path, grid: Path, first: Path, second: Path
) -> tuple[dict[str, float], pd.DataFrame]:
    spec = get_layer("demolition")
    times: dict[str, float] = {}
    times["import grid"], _ = timed(lambda: import_file(store, "grid", grid))
    times["import points (all new)"], _ = timed(lambda: import_file(store, "demolition", first))
    times["import again, 10% changed"], _ = timed(lambda: import_file(store, "demolition", second))
    store.cache.clear()
    times["read_table, 4 columns"], _ = timed(
        lambda: store.read_table(spec, ["gw_unit", "status", "found_on", "area_m2"]), repeat=3
    )
    store.cache.clear()
    times["read_geometry, cold"], _ = timed(lambda: store.read_geometry(spec))
    store.cache.clear()
    times["first tally, cold"], _ = timed(lambda: tally(store, "grid", ["demolition"]))
    times["tally, warm"], figures = timed(lambda: tally(store, "grid", ["demolition"]), repeat=3)
    assert isinstance(figures, pd.DataFrame)
    return times, figures


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--cells", type=int, default=4_000)
    ap.add_argument("--points", type=int, default=200_000)
    ap.add_argument("--quick", action="store_true", help="400 cells, 20,000 points")
    ap.add_argument("--url", help="a PostGIS database to use (default: a throw-away cluster)")
    args = ap.parse_args()
    if args.quick:
        args.cells, args.points = 400, 20_000
    work = Path(tempfile.mkdtemp(prefix="gridwatch-bench-pgstore-"))
    work.chmod(0o755)  # the cluster runs as the postgres user when started by root
    cluster = work / "pg"
    url = args.url
    try:
        if url is None:
            started = subprocess.run(
                ["bash", str(ROOT / "scripts" / "postgres.sh"), "start", str(cluster)],
                capture_output=True,
                text=True,
            )
            if started.returncode != 0:
                print(f"cannot start PostgreSQL: {started.stderr.strip()}", file=sys.stderr)
                return 1
            url = started.stdout.strip()
        import psycopg

        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("DROP SCHEMA public CASCADE")
            conn.execute("CREATE SCHEMA public")
        print(f"# PostGIS store beside the GeoPackage: {args.cells:,} cells, {args.points:,} points")
        cells = make_cells(args.cells)
        points = make_points(args.points, cells.total_bounds, seed=10)
        changed = points.copy()
        rng = np.random.default_rng(11)
        pick = rng.random(len(changed)) < 0.1
        changed.loc[pick, "违建面积"] = changed.loc[pick, "违建面积"] + 1
        grid = write_gbk(cells, work / "in" / "grid.shp")
        first = write_gbk(points, work / "in" / "sites.shp")
        second = write_gbk(changed, work / "in2" / "sites.shp")
        with open_store(work / "warm-up") as scratch:  # starts the reading helper: not in either figure
            import_file(scratch, "grid", grid)
        gpkg = open_store(work / "store")
        base, base_figures = _run(gpkg, work, grid, first, second)
        gpkg.close()
        pg = open_store(url)
        ours, our_figures = _run(pg, work, grid, first, second)
        pg.close()
        if not base_figures.equals(our_figures):
            print("the two stores do not give the same figures", file=sys.stderr)
            return 1
        print("| what | GeoPackage | PostGIS | PostGIS / GeoPackage |")
        print("| --- | --- | --- | --- |")
        for what, t in base.items():
            print(f"| {what} | {t * 1000:,.0f} ms | {ours[what] * 1000:,.0f} ms | {ours[what] / t:.2f} |")
        return 0
    finally:
        if args.url is None:
            subprocess.run(
                ["bash", str(ROOT / "scripts" / "postgres.sh"), "stop", str(cluster)], capture_output=True
            )
        subprocess.run(["rm", "-rf", str(work)], check=False)


if __name__ == "__main__":
    raise SystemExit(main())
