"""What the GeoPackage's R-tree spatial index costs an import.

Run on demand (not a test):

    .venv/bin/python bench/bench_gpkg_rtree.py            # 100,000 points, 3 rounds
    .venv/bin/python bench/bench_gpkg_rtree.py --quick    # 20,000 points, 1 round

Each round imports, into a fresh store on a 4,000-cell grid, a 100,000-point GBK shapefile
(the layer is new), then a second file of 100,000 new points (the layer grows to 200,000), then
the first file again with every point moved (100,000 rows replaced: retired to the history and
written anew).  Three ways, alternating round by round in the same run:

- ``none``: the baseline, the same code with the R-tree left out (its creation replaced by
  nothing: no index, no triggers -- what schema 5 wrote);
- ``triggers``: the index kept by the standard triggers alone (SQLite calling the five
  ``ST_*`` Python functions per row);
- ``writer``: what gridwatch does -- the writer adds the new rows' entries itself from the
  bounds it has, the insert trigger set aside for the insert (the other triggers as they are).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import shapely

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_engine import make_cells, make_points, write_gbk
from geo.imports.importer import import_file
from geo.store.backends import open_store
from geo.store.gpkg import feature_writes, tables

LAYER = "demolition"


@contextmanager
def _no_writer_path(conn: object, table: str) -> Iterator[bool]:
    yield False


def one_round(folder: Path, grid_shp: Path, files: list[Path], way: str) -> list[float]:
    """Seconds of the three imports into a fresh store, the index kept in ``way``."""
    real_create, real_writer = tables.create_rtree, feature_writes.writer_indexes
    if way == "none":
        tables.create_rtree = lambda conn, table: None  # type: ignore[assignment]
    if way == "triggers":
        feature_writes.writer_indexes = _no_writer_path  # type: ignore[assignment]
    try:
        with open_store(folder) as store:
            import_file(store, "grid", grid_shp)
            out = []
            for f in files:
                t0 = time.perf_counter()
                import_file(store, LAYER, f)
                out.append(time.perf_counter() - t0)
            con = store.conn
            rows = con.execute(f'SELECT count(*) FROM "{LAYER}"').fetchone()[0]
            if way != "none":
                assert con.execute(f'SELECT count(*) FROM "rtree_{LAYER}_geom"').fetchone()[0] == rows
            return out
    finally:
        tables.create_rtree, feature_writes.writer_indexes = real_create, real_writer


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--points", type=int, default=100_000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="20,000 points, one round")
    args = p.parse_args()
    n, rounds = (20_000, 1) if args.quick else (args.points, args.rounds)
    with tempfile.TemporaryDirectory(prefix="bench-rtree-") as tmp:
        root = Path(tmp)
        cells = make_cells(4_000)
        grid_shp = write_gbk(cells, root / "in" / "grid" / "网格.shp")
        bounds = np.asarray(cells.total_bounds)
        first = make_points(n, bounds, seed=1)
        second = make_points(n, bounds, seed=2, start_id=n)
        moved = first.copy()
        moved["geometry"] = shapely.points(
            shapely.get_x(first.geometry.values) + 3.0, shapely.get_y(first.geometry.values) - 2.0
        )
        files = [
            write_gbk(first, root / "in" / "a" / "违法建设.shp"),
            write_gbk(second, root / "in" / "b" / "违法建设.shp"),
            write_gbk(moved, root / "in" / "c" / "违法建设.shp"),
        ]
        ways = ("none", "triggers", "writer")
        times: dict[str, list[list[float]]] = {w: [] for w in ways}
        for r in range(rounds):
            for way in ways:
                times[way].append(one_round(root / f"s{r}{way}", grid_shp, files, way))
        labels = (
            f"import of {n:,} points (new layer)",
            f"import of {n:,} more (layer grows to {2 * n:,})",
            f"re-import replacing {n:,} moved points",
        )
        print(f"{rounds} round(s), medians in seconds; ratio to none (no R-tree)")
        print(f"{'what':<48} {'none':>7} {'triggers':>16} {'writer':>16}")
        for i, label in enumerate(labels):
            med = {w: statistics.median(t[i] for t in times[w]) for w in ways}
            base = med["none"]
            print(
                f"{label:<48} {base:>7.2f} {med['triggers']:>8.2f} ({med['triggers'] / base:.2f}x)"
                f" {med['writer']:>8.2f} ({med['writer'] / base:.2f}x)"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
