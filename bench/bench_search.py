"""Search and feature-list benchmark: one query over every unit and every feature, and one page of
a filtered, sorted feature list, on a large store.

Run on demand (not a test):

    .venv/bin/python bench/bench_search.py                 # 40,000 cells, 1,000,000 points
    .venv/bin/python bench/bench_search.py --cells 4000 --points 100000   # quick look

Figures are printed beside a baseline measured in the same run on the same data in memory:
pandas ``str.contains(regex=False)`` over the same columns, per query.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import layers
from bench.bench_engine import make_cells, make_points, timed, write_gbk
from geo.figures.feature_list import FeatureQuery, feature_page
from geo.figures.hierarchy import load_hierarchy
from geo.figures.search import search
from geo.imports.importer import import_file
from geo.store.backends import open_store

QUERIES = ("340291002", "WJ00012345", "赭麓", "某某路", "不存在")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--cells", type=int, default=40_000)
    ap.add_argument("--points", type=int, default=1_000_000)
    ap.add_argument("--workdir", help="keep (and reuse) the store here")
    args = ap.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="gridwatch-bench-search-"))
    print(f"# gridwatch search benchmark: {args.cells:,} cells, {args.points:,} points, workdir {work}")
    try:
        store = open_store(work / "store")
        if store.current_grid_version() is None:
            cells = make_cells(args.cells)
            import_file(store, "grid", write_gbk(cells, work / "in" / "grid.shp"))
            per_file = min(args.points, 100_000)
            for k in range(max(1, args.points // per_file)):
                pts = make_points(per_file, cells.total_bounds, seed=10 + k, start_id=k * per_file)
                import_file(store, "demolition", write_gbk(pts, work / "in" / f"sites_{k}.shp"))
        spec_units = load_hierarchy(store).grid
        print(f"store: {len(spec_units):,} unit grids")
        t, hits = timed(lambda: search(store, QUERIES[0]))
        print(f"first search (reads and keeps the text columns, dissolves the outlines): {t:.2f}s")
        attrs = store.read_attributes(layers.get("demolition"), ["case_id", "address"])
        codes = spec_units["code"].astype(str)
        for q in QUERIES:
            t, hits = timed(lambda q=q: search(store, q), repeat=5)

            def naive(q: str = q) -> int:
                low = q.lower()
                found = codes.str.lower().str.contains(low, regex=False)
                f = attrs["case_id"].fillna("").str.lower().str.contains(low, regex=False)
                f |= attrs["address"].fillna("").str.lower().str.contains(low, regex=False)
                return int(found.sum() + f.sum())

            tb, _ = timed(naive, repeat=3)
            print(
                f"search {q!r}: {t * 1000:.0f} ms, {len(hits)} hits; pandas str.contains: {tb * 1000:.0f} ms ({tb / t:.1f}×)"
            )
        query = FeatureQuery.parse(
            "demolition", {"q": "赭麓", "status": "已拆除", "sort": "area_m2", "order": "desc", "page": "3"}
        )
        t, page = timed(lambda: feature_page(store, query))
        print(f"feature list, first page (reads the layer once): {t:.2f}s, {page.total:,} kept")
        t, page = timed(lambda: feature_page(store, query), repeat=3)
        print(f"feature list page (text, status, sort on area, page 3): {t * 1000:.0f} ms")
        store.close()
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
