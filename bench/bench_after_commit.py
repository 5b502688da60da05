"""The first map and statistics requests after a commit, with caches that apply the change log
against the same server reading the written layer in full (``GRIDWATCH_CHANGE_LOG=off``).

Run on demand (not a test):

    .venv/bin/python bench/bench_after_commit.py            # 40,000 cells, 1,000,000 points; commits of 1,000 and 100,000
    .venv/bin/python bench/bench_after_commit.py --quick    # 4,000 cells, 100,000 points; commits of 1,000 and 10,000
    .venv/bin/python bench/bench_after_commit.py --backends gpkg   # only the GeoPackage

For each backend (the GeoPackage, and PostGIS when ``scripts/postgres.sh`` can start a throw-away
cluster) one store is built with the grid and the 违法建设 (demolition) points, then copied for
each variant.  A server (the real app, werkzeug, threaded, one process: one gunicorn worker)
is started on the copy and answers the map page's first requests for demolition -- the
features of the whole district at zoom 13 (the viewport), the statistics per unit, the unit
cells -- once cold (a freshly started server) and once warm.  Then this process commits
1,000 points to demolition and the server's first requests are timed, then a commit of
``--big`` points and the same.  The variants differ only in ``$GRIDWATCH_CHANGE_LOG``: ``on``
(the caches take the kept generation and apply what the log says changed) or ``off`` (the
written layer is read and decoded again: the baseline, in the same run).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import pyproj

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

from bench_engine import EPSG, make_cells, make_points, write_gbk  # noqa: E402

from geo.imports.importer import import_file  # noqa: E402
from geo.store.backends import open_store  # noqa: E402

SERVER = """
import sys
sys.path.insert(0, {root!r})
from werkzeug.serving import WSGIRequestHandler, make_server
from server import create_app

class Quiet(WSGIRequestHandler):
    def log_request(self, *args, **kwargs):
        pass

app = create_app({{"GRIDWATCH_DATA": {data!r}, "GRIDWATCH_STORE": {store!r}, "TESTING": True,
                   "LOGIN_DISABLED": True, "WTF_CSRF_ENABLED": False}})
server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=Quiet)
print(server.server_port, flush=True)
server.serve_forever()
"""

REQUESTS = ("viewport", "stats", "cells")


def get(url: str) -> float:
    """Seconds to fetch ``url`` in full (a non-200 answer stops the benchmark)."""
    t0 = time.perf_counter()
    with urllib.request.urlopen(url, timeout=900) as resp:
        resp.read()
        if resp.status != 200:
            raise RuntimeError(f"{url}: {resp.status}")
    return time.perf_counter() - t0


def first_requests(base: str, bbox: str) -> dict[str, float]:
    """The map page's first requests for demolition, in the order it makes them, timed."""
    paths = {
        "viewport": f"/api/features/demolition?zoom=13&bbox={bbox}",
        "stats": "/api/stats?level=grid&layer=demolition",
        "cells": "/api/cells?level=grid&layer=demolition",
    }
    return {name: get(base + path) for name, path in paths.items()}


def run_variant(
    log: str, store: str, data: Path, commits: list[tuple[str, Path]], bbox: str
) -> dict[str, dict[str, float]]:
    """Start a server on ``store`` with the change log ``log`` (on/off); time its first
    requests cold, warm and after each commit."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "GRIDWATCH_CHANGE_LOG": log}
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVER.format(root=str(ROOT), data=str(data), store=store)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=ROOT,
        env=env,
    )
    out: dict[str, dict[str, float]] = {}
    try:
        assert proc.stdout is not None
        base = f"http://127.0.0.1:{int(proc.stdout.readline())}"
        out["fresh server"] = first_requests(base, bbox)
        out["warm"] = first_requests(base, bbox)
        for name, path in commits:
            with open_store(store, data=data) as s:
                import_file(s, "demolition", path)
            out[name] = first_requests(base, bbox)
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    return out


def copy_store(backend: str, name: str, work: Path, url: str | None) -> tuple[str, Path]:
    """A copy of the built store of ``backend`` for the variant ``name``: its location and data folder."""
    if backend == "gpkg":
        target = work / f"gpkg-{name}"
        shutil.copytree(work / "gpkg-base", target)
        return str(target / "gridwatch.gpkg"), target
    import psycopg

    assert url is not None
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE gw_{name} TEMPLATE gw_base")
    data = work / f"pg-{name}"
    (work / "pg-base-data").mkdir(exist_ok=True)
    shutil.copytree(work / "pg-base-data", data)
    return f"postgresql://gridwatch@/gw_{name}?host={work / 'pg'}", data


def start_cluster(folder: Path) -> str | None:
    """A throw-away PostgreSQL cluster in ``folder`` (its URL), or None when it cannot start."""
    started = subprocess.run(
        ["bash", str(ROOT / "scripts" / "postgres.sh"), "start", str(folder)], capture_output=True, text=True
    )
    if started.returncode != 0:
        print(f"# PostGIS skipped: {started.stderr.strip()[:200]}")
        return None
    return started.stdout.strip()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cells", type=int, default=40_000)
    ap.add_argument("--points", type=int, default=1_000_000)
    ap.add_argument("--big", type=int, default=100_000, help="points of the large commit")
    ap.add_argument("--small", type=int, default=1_000, help="points of the small commit")
    ap.add_argument(
        "--quick", action="store_true", help="4,000 cells, 100,000 points, a large commit of 10,000"
    )
    ap.add_argument("--backends", default="gpkg,postgis", help="comma-separated: gpkg, postgis")
    args = ap.parse_args()
    if args.quick:
        args.cells, args.points, args.big = 4_000, 100_000, 10_000
    work = Path(tempfile.mkdtemp(prefix="gridwatch-aftercommit-"))
    work.chmod(0o755)  # the cluster runs as the postgres user when started by root
    print(
        f"# first requests after a commit: {args.cells:,} cells, {args.points:,} points;"
        f" commits of {args.small:,} and {args.big:,} points"
    )
    cluster = work / "pg"
    url: str | None = None
    try:
        cells = make_cells(args.cells)
        bounds = cells.total_bounds
        grid = write_gbk(cells, work / "in" / "grid.shp")
        per_file = min(100_000, args.points)
        parts = [
            write_gbk(
                make_points(per_file, bounds, seed=10 + k, start_id=k * per_file), work / "in" / f"d{k}.shp"
            )
            for k in range(max(1, args.points // per_file))
        ]
        commits = [
            (f"after a {args.small:,}-point commit", make_points(args.small, bounds, 5, start_id=50_000_000)),
            (f"after a {args.big:,}-point commit", make_points(args.big, bounds, 6, start_id=60_000_000)),
        ]
        commit_files = [
            (name, write_gbk(frame, work / "in" / f"c{i}" / "c.shp"))
            for i, (name, frame) in enumerate(commits)
        ]
        to_lonlat = pyproj.Transformer.from_crs(EPSG, 4326, always_xy=True)
        w, s_ = to_lonlat.transform(bounds[0], bounds[1])
        e, n = to_lonlat.transform(bounds[2], bounds[3])
        bbox = f"{w:.6f},{s_:.6f},{e:.6f},{n:.6f}"
        with open_store(work / "warm-up") as scratch:  # starts the reading helper: in no figure
            import_file(scratch, "grid", grid)

        results: dict[str, dict[str, Any]] = {}
        for backend in [b.strip() for b in args.backends.split(",") if b.strip()]:
            t0 = time.perf_counter()
            if backend == "gpkg":
                base_dir = work / "gpkg-base"
                with open_store(base_dir) as s:
                    import_file(s, "grid", grid)
                    for part in parts:
                        import_file(s, "demolition", part)

            elif backend == "postgis":
                url = url or start_cluster(cluster)
                if url is None:
                    continue
                import psycopg

                with psycopg.connect(url, autocommit=True) as conn:
                    conn.execute("CREATE DATABASE gw_base")
                base_url = f"postgresql://gridwatch@/gw_base?host={cluster}"
                with psycopg.connect(base_url, autocommit=True) as conn:
                    conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
                with open_store(base_url, data=work / "pg-base-data") as s:
                    import_file(s, "grid", grid)
                    for part in parts:
                        import_file(s, "demolition", part)

            else:
                print(f"# unknown backend {backend}: skipped")
                continue
            print(f"# {backend}: store built in {time.perf_counter() - t0:,.0f} s")
            results[backend] = {}
            for log in ("on", "off"):
                store, data = copy_store(backend, log, work, url)
                results[backend][log] = run_variant(log, store, data, commit_files, bbox)

        print("\n## first demolition requests (ms): caches applying the change log against a full re-read")
        print("| backend | when | request | change log | full re-read | full / log |")
        print("|---|---|---|---:|---:|---:|")
        for backend, r in results.items():
            for when in r["on"]:
                for req in REQUESTS:
                    on, off = r["on"][when][req] * 1000, r["off"][when][req] * 1000
                    print(
                        f"| {backend} | {when} | {req} | {on:,.0f} | {off:,.0f} | {off / max(on, 1e-3):.1f}x |"
                    )
        print("\n## the three first requests together (s)")
        print("| backend | when | change log | full re-read |")
        print("|---|---|---:|---:|")
        for backend, r in results.items():
            for when in r["on"]:
                on, off = sum(r["on"][when].values()), sum(r["off"][when].values())
                print(f"| {backend} | {when} | {on:,.2f} | {off:,.2f} |")
    finally:
        if url is not None:
            subprocess.run(
                ["bash", str(ROOT / "scripts" / "postgres.sh"), "stop", str(cluster)], capture_output=True
            )
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
