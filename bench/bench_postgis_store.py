"""The PostGIS store beside the GeoPackage store, through the engine: the same grid and survey
files imported into both, then the reads the figures make, the map's viewport, and -- in the same
PostGIS database -- the plain way: cells and points as tables of their own with GiST indexes, an
``ST_Contains`` join + ``GROUP BY`` per cell.

Run on demand (not a test); needs PostgreSQL with PostGIS and psycopg (``pip install -e
'.[postgis]'``).  ``scripts/postgres.sh`` starts a throw-away cluster, stopped afterwards:

    .venv/bin/python bench/bench_postgis_store.py            # 4,000 cells, 200,000 points
    .venv/bin/python bench/bench_postgis_store.py --quick    # 400 cells, 20,000 points
    .venv/bin/python bench/bench_postgis_store.py --full     # 40,000 cells, 1,000,000 points
    .venv/bin/python bench/bench_postgis_store.py --url postgresql://...   # a database of your own (emptied first)

The survey points come in files of up to 100,000 (as ``bench_engine.py`` writes them: ten at
``--full``); "import again" re-imports the first file with 10% of its rows changed.  The viewport
is :func:`geo.figures.viewport.features_in_view` (what ``/api/features/<layer>`` answers): the
whole district at zoom 13 and a 1366×768-pixel window at zoom 16 in its middle, first on a fresh
store handle with its cache emptied ("cold") and then again ("warm", median of 3).  Both stores must give the same
per-cell figures and the same viewport answers, and the plain join the same per-cell counts,
before any time is printed.  The GeoPackage is the baseline measured in the same run; ratios above
1 mean PostGIS (or the plain join) is slower.
"""

from __future__ import annotations

import argparse
import math
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_engine import EPSG, make_cells, make_points, rss_mb, timed, write_gbk
from bench.bench_postgis import JOIN, _load, _query
from geo.figures.tally import tally
from geo.figures.viewport import BBox, features_in_view
from geo.imports.importer import import_file
from geo.registry import get_layer
from geo.store.backends import open_store

ROOT = Path(__file__).resolve().parent.parent
PER_FILE = 100_000
LAYER = "demolition"


def _views(cells: gpd.GeoDataFrame) -> dict[str, tuple[BBox, int]]:
    """The two map views: the whole district at zoom 13, a 1366×768 window at zoom 16."""
    w, s, e, n = cells.to_crs(4326).total_bounds
    cx, cy = (w + e) / 2, (s + n) / 2
    lon_px = 360 / (256 * 2**16)  # degrees of longitude per pixel at zoom 16
    lat_px = lon_px * math.cos(math.radians(cy))
    window = BBox(cx - 683 * lon_px, cy - 384 * lat_px, cx + 683 * lon_px, cy + 384 * lat_px)
    return {"whole district, zoom 13": (BBox(w, s, e, n), 13), "1366×768 window, zoom 16": (window, 16)}


def _run(
    open_it: Any, grid: Path, files: list[Path], again: Path, views: dict[str, tuple[BBox, int]]
) -> tuple[dict[str, float], pd.DataFrame, list[Any]]:
    spec = get_layer(LAYER)
    times: dict[str, float] = {}
    store = open_it()
    times["import grid"], _ = timed(lambda: import_file(store, "grid", grid))
    total = 0.0
    for f in files:
        t, _ = timed(lambda f=f: import_file(store, LAYER, f))
        total += t
    times[f"import points ({len(files)} file(s), all new)"] = total
    times["import again one file, 10% changed"], _ = timed(lambda: import_file(store, LAYER, again))
    store.cache.clear()
    times["read_table, 4 columns"], _ = timed(
        lambda: store.read_table(spec, ["gw_unit", "status", "found_on", "area_m2"]), repeat=3
    )
    store.cache.clear()
    times["read_geometry, cold"], _ = timed(lambda: store.read_geometry(spec))
    store.close()
    store = open_it()
    store.cache.clear()  # the cache is shared by every handle on the store in this process
    times["first tally, cold"], _ = timed(lambda: tally(store, "grid", [LAYER]))
    times["tally, warm"], figures = timed(lambda: tally(store, "grid", [LAYER]), repeat=3)
    store.close()
    answers = []
    for what, (bbox, zoom) in views.items():
        store = open_it()
        store.cache.clear()

        def view(store: Any = store, bbox: BBox = bbox, zoom: int = zoom) -> dict[str, Any]:
            return features_in_view(store, LAYER, bbox, zoom)

        times[f"viewport {what}, cold"], _ = timed(view)
        times[f"viewport {what}, warm"], answer = timed(view, repeat=3)
        answers.append(answer)
        store.close()
    assert isinstance(figures, pd.DataFrame)
    return times, figures, answers


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--cells", type=int, default=4_000)
    ap.add_argument("--points", type=int, default=200_000)
    ap.add_argument("--quick", action="store_true", help="400 cells, 20,000 points")
    ap.add_argument("--full", action="store_true", help="40,000 cells, 1,000,000 points")
    ap.add_argument("--url", help="a PostGIS database to use (default: a throw-away cluster)")
    args = ap.parse_args()
    if args.quick:
        args.cells, args.points = 400, 20_000
    if args.full:
        args.cells, args.points = 40_000, 1_000_000
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
        bounds = cells.total_bounds
        per_file = min(PER_FILE, args.points)
        parts = [
            make_points(per_file, bounds, seed=10 + k, start_id=k * per_file)
            for k in range(max(1, args.points // per_file))
        ]
        changed = parts[0].copy()
        rng = np.random.default_rng(11)
        pick = rng.random(len(changed)) < 0.1
        changed.loc[pick, "违建面积"] = changed.loc[pick, "违建面积"] + 1
        grid = write_gbk(cells, work / "in" / "grid.shp")
        files = [write_gbk(p, work / "in" / f"sites_{k}.shp") for k, p in enumerate(parts)]
        again = write_gbk(changed, work / "in2" / "sites_0.shp")
        views = _views(cells)
        with open_store(work / "warm-up") as scratch:  # starts the reading helper: not in either figure
            import_file(scratch, "grid", grid)
        base, base_figures, base_views = _run(lambda: open_store(work / "store"), grid, files, again, views)
        ours, our_figures, our_views = _run(lambda: open_store(url), grid, files, again, views)
        if not base_figures.equals(our_figures):
            print("the two stores do not give the same figures", file=sys.stderr)
            return 1
        if base_views != our_views:
            print("the two stores do not give the same viewport answers", file=sys.stderr)
            return 1

        # the plain way, in the same database: the points as they stand after "import again"
        points = pd.concat([changed, *parts[1:]], ignore_index=True)
        done = sorted(get_layer(LAYER).completed_statuses)
        loaded = _load(url, cells, points, done, assign=False)
        t_join, joined = timed(lambda: _query(url, JOIN, done), repeat=1 if args.points >= 500_000 else 3)
        assert isinstance(joined, pd.DataFrame)
        o = our_figures.set_index("code")
        o = o[o.index.isin(joined.index)].sort_index()
        same = (
            joined.index.equals(o.index)
            and np.array_equal(joined["total"].to_numpy(), o[f"{LAYER}_total"].to_numpy())
            and np.array_equal(joined["completed"].to_numpy(), o[f"{LAYER}_completed"].to_numpy())
        )
        if not same:
            print("the plain ST_Contains join does not count what gridwatch counts", file=sys.stderr)
            return 1
        n_sites = int(o[f"{LAYER}_total"].sum())
        print(f"all ways count the same: {n_sites:,} sites in {len(o):,} cells; EPSG:{EPSG}")
        for what, answer in zip(views, base_views, strict=True):
            print(
                f"viewport {what}: {len(answer.get('features', [])):,} GeoJSON features (points or clusters)"
            )

        plain = {
            "import grid": ("COPY cells", loaded["cells"]),
            f"import points ({len(files)} file(s), all new)": (
                "COPY points + GiST indexes + ANALYZE",
                loaded["copy"] + loaded["index"],
            ),
            "first tally, cold": ("ST_Contains join + GROUP BY", t_join),
            "tally, warm": ("ST_Contains join + GROUP BY", t_join),
        }
        print(
            "| what | GeoPackage store | PostGIS store | PostGIS / GeoPackage"
            " | plain PostGIS tables, same database | plain / PostGIS store | plain / GeoPackage store |"
        )
        print("| --- | --- | --- | --- | --- | --- | --- |")
        for what, t in base.items():
            row = f"| {what} | {t * 1000:,.0f} ms | {ours[what] * 1000:,.0f} ms | {ours[what] / t:.2f} |"
            if what in plain:
                how, tp = plain[what]
                row += f" {how}: {tp * 1000:,.0f} ms | {tp / ours[what]:,.2f} | {tp / t:,.2f} |"
            else:
                row += " — | | |"
            print(row)
        print(f"peak RSS of this process: {rss_mb():,.0f} MB")
        return 0
    finally:
        if args.url is None:
            subprocess.run(
                ["bash", str(ROOT / "scripts" / "postgres.sh"), "stop", str(cluster)], capture_output=True
            )
        subprocess.run(["rm", "-rf", str(work)], check=False)


if __name__ == "__main__":
    raise SystemExit(main())
