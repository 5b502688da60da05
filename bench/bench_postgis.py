"""Per-cell figures three ways on the same data: gridwatch's in-process tally, a plain PostGIS
``ST_Contains`` join + ``GROUP BY``, and a PostGIS ``GROUP BY`` over a stored unit column.

Run on demand (not a test); needs PostgreSQL with PostGIS -- ``scripts/postgres.sh`` starts a
throw-away cluster (installing Debian's packages when missing, as root) and this script uses it:

    .venv/bin/python bench/bench_postgis.py                          # 40,000 cells, 1,000,000 points
    .venv/bin/python bench/bench_postgis.py --cells 4000 --points 100000   # quick look
    .venv/bin/python bench/bench_postgis.py --url postgresql://...   # a database of your own

Every way counts the same features per cell (checked before any time is printed): sites, sites
completed (a status that counts as done) and their area.  The points are loaded into PostGIS with
``COPY`` (psycopg 3) as the PostGIS backend will write them, with a GiST index on the geometry.
"""

from __future__ import annotations

import argparse
import io
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import shapely

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_engine import EPSG, make_cells, make_points, rss_mb, timed, write_gbk
from geo.figures.tally import tally
from geo.imports.importer import import_file
from geo.registry import get_layer
from geo.store.backends import open_store

ROOT = Path(__file__).resolve().parent.parent


def _copy(cur, table: str, columns: list[str], frame: pd.DataFrame) -> None:
    """``COPY table (columns) FROM STDIN`` of ``frame`` (text format, geometry as hex EWKB)."""
    buf = io.StringIO()
    frame.to_csv(buf, sep="\t", header=False, index=False, na_rep="\\N")
    with cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        copy.write(buf.getvalue())


def _ewkb(geoms) -> np.ndarray:
    """Hex EWKB with the SRID, as PostGIS reads it in a text ``COPY``."""
    return shapely.to_wkb(shapely.set_srid(np.asarray(geoms), EPSG), hex=True, include_srid=True)


def _load(url: str, cells, points, done: list[str], assign: bool = True) -> dict[str, float]:
    """Cells and points as plain tables with GiST indexes (times: ``cells``, ``copy``, ``index``;
    with ``assign`` also the stored unit column, ``assign``)."""
    import psycopg

    times: dict[str, float] = {}
    with psycopg.connect(url, autocommit=True) as conn, conn.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS bench_cells, bench_sites")
        cur.execute(f"CREATE TABLE bench_cells (code text PRIMARY KEY, geom geometry(Polygon, {EPSG}))")
        cur.execute(
            "CREATE TABLE bench_sites (id bigint PRIMARY KEY, status text, area double precision,"
            f" unit text, geom geometry(Point, {EPSG}))"
        )
        cells_frame = pd.DataFrame({"code": cells["网格编码"], "geom": _ewkb(cells.geometry.values)})
        t, _ = timed(lambda: _copy(cur, "bench_cells", ["code", "geom"], cells_frame))
        times["cells"] = t
        sites_frame = pd.DataFrame(
            {
                "id": np.arange(len(points)),
                "status": points["当前状态"],
                "area": points["违建面积"],
                "geom": _ewkb(points.geometry.values),
            }
        )
        t, _ = timed(lambda: _copy(cur, "bench_sites", ["id", "status", "area", "geom"], sites_frame))
        times["copy"] = t
        t, _ = timed(
            lambda: (
                cur.execute("CREATE INDEX ON bench_cells USING gist (geom)"),
                cur.execute("CREATE INDEX ON bench_sites USING gist (geom)"),
                cur.execute("ANALYZE bench_cells"),
                cur.execute("ANALYZE bench_sites"),
            )
        )
        times["index"] = t
        if not assign:
            return times
        t, _ = timed(
            lambda: cur.execute(
                "UPDATE bench_sites s SET unit = c.code FROM bench_cells c WHERE ST_Contains(c.geom, s.geom)"
            )
        )
        times["assign"] = t
        cur.execute("CREATE INDEX ON bench_sites (unit)")
        cur.execute("ANALYZE bench_sites")
    return times


JOIN = """
SELECT c.code, count(s.id) AS total,
       count(s.id) FILTER (WHERE s.status = ANY(%(done)s)) AS completed,
       coalesce(sum(s.area), 0) AS area
FROM bench_cells c LEFT JOIN bench_sites s ON ST_Contains(c.geom, s.geom)
GROUP BY c.code
"""
STORED = """
SELECT unit AS code, count(*) AS total,
       count(*) FILTER (WHERE status = ANY(%(done)s)) AS completed,
       sum(area) AS area
FROM bench_sites WHERE unit IS NOT NULL GROUP BY unit
"""


def _query(url: str, sql: str, done: list[str]) -> pd.DataFrame:
    import psycopg

    with psycopg.connect(url) as conn, conn.cursor() as cur:
        cur.execute(sql, {"done": done})
        rows = cur.fetchall()
    frame = pd.DataFrame(rows, columns=["code", "total", "completed", "area"]).set_index("code")
    return frame[frame["total"] > 0].sort_index()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--cells", type=int, default=40_000)
    ap.add_argument("--points", type=int, default=1_000_000)
    ap.add_argument("--url", help="a PostGIS database to use (default: a throw-away cluster)")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="gridwatch-bench-postgis-"))
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
        print(f"# per-cell figures: {args.cells:,} cells, {args.points:,} points, EPSG:{EPSG}")
        cells = make_cells(args.cells)
        points = make_points(args.points, cells.total_bounds, seed=10)
        spec = get_layer("demolition")
        done = sorted(spec.completed_statuses)

        store = open_store(work / "store")
        import_file(store, "grid", write_gbk(cells, work / "in" / "grid.shp"))
        t_import, _ = timed(
            lambda: import_file(store, "demolition", write_gbk(points, work / "in" / "sites.shp"))
        )
        tally(store, "grid", ["demolition"])  # warm: columns read once per process
        t_ours, ours = timed(lambda: tally(store, "grid", ["demolition"]), repeat=5)
        store.close()
        assert isinstance(ours, pd.DataFrame)

        loaded = _load(url, cells, points, done)
        t_join, joined = timed(lambda: _query(url, JOIN, done), repeat=3)
        t_stored, stored = timed(lambda: _query(url, STORED, done), repeat=3)
        assert isinstance(joined, pd.DataFrame) and isinstance(stored, pd.DataFrame)

        o = ours.set_index("code")
        o = o[o.index.isin(joined.index)].sort_index()
        for name, frame in (("ST_Contains join", joined), ("stored unit column", stored)):
            same = (
                frame.index.equals(o.index)
                and np.array_equal(frame["total"].to_numpy(), o["demolition_total"].to_numpy())
                and np.array_equal(frame["completed"].to_numpy(), o["demolition_completed"].to_numpy())
            )
            if not same:
                print(f"FAIL: {name} does not count what gridwatch counts", file=sys.stderr)
                return 1
        print(f"every way counts the same: {int(o['demolition_total'].sum()):,} sites in {len(o):,} cells")
        print(
            f"PostGIS load: COPY {loaded['copy']:.2f}s, GiST indexes + ANALYZE {loaded['index']:.2f}s,"
            f" unit column by ST_Contains {loaded['assign']:.2f}s; gridwatch import {t_import:.2f}s"
        )
        print("| what | time | against gridwatch |")
        print("| --- | --- | --- |")
        print(f"| gridwatch tally, columns cached in the process | {t_ours * 1000:,.1f} ms | 1× |")
        print(
            f"| PostGIS GROUP BY over the stored unit column | {t_stored * 1000:,.0f} ms | {t_stored / t_ours:,.0f}× |"
        )
        print(f"| PostGIS ST_Contains join + GROUP BY | {t_join * 1000:,.0f} ms | {t_join / t_ours:,.0f}× |")
        print(f"peak RSS of this process: {rss_mb():,.0f} MB")
        return 0
    finally:
        if args.url is None and cluster.exists():
            subprocess.run(["bash", str(ROOT / "scripts" / "postgres.sh"), "stop", str(cluster)], check=False)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
