"""Cache benchmark: a server's memory across small imports, and the first figures of one layer
after a commit to another.

Run on demand (not a test):

    .venv/bin/python bench/bench_caches.py                      # 4,000 cells, 200,000 + 50,000 points
    .venv/bin/python bench/bench_caches.py --quick              # 1,000 cells, 20,000 + 5,000 points
    .venv/bin/python bench/bench_caches.py --before /work/main  # the same run on other code too

A server process (the real app, werkzeug, threaded) serves a store holding 违法建设 (demolition)
and 停放点 (parking) points.  After warming the map and statistics requests of both layers,
``--imports`` small files (10 points each, alternating layers) are committed by another
process, each followed by the same requests; the server's RSS is read from ``/proc``.  Then
one commit to parking is followed by the first requests for demolition (its figures are
still kept: warm), and one commit to demolition by the same requests (the written layer is
read again: cold -- what every commit did to every layer while caches were keyed by the
store revision).  With ``--before PATH`` the same store and steps run against the code at
PATH in the same run, as the baseline.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyproj
import shapely

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

from bench_engine import EPSG, make_cells, make_points, write_gbk  # noqa: E402

from geo.imports.importer import import_file  # noqa: E402
from geo.store.backends import open_store  # noqa: E402

SERVER = """
import sys
from pathlib import Path
sys.path.insert(0, {root!r})
from werkzeug.serving import WSGIRequestHandler, make_server
from server import create_app

class Quiet(WSGIRequestHandler):
    def log_request(self, *args, **kwargs):
        pass

app = create_app({{"GRIDWATCH_DATA": {data!r}, "TESTING": True, "LOGIN_DISABLED": True,
                   "WTF_CSRF_ENABLED": False}})

from web.access import PUBLIC, requires

@app.get("/_bench/cache")
@requires(PUBLIC)
def _bench_cache():  # the cache's own accounting (this benchmark's server only)
    import gc
    from geo.store.cache import cache_for
    gc.collect()  # what only reference cycles still hold goes before the next reading
    cache = cache_for(str(next(iter(Path({data!r}).glob("*.gpkg")))))
    nbytes = getattr(cache, "nbytes", None)
    import ctypes
    import pyarrow as pa

    class _Info(ctypes.Structure):
        _fields_ = [(n, ctypes.c_size_t) for n in
                    ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
                     "fordblks", "keepcost")]

    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallinfo2.restype = _Info
        info = libc.mallinfo2()
        heap = {{"malloc_used": info.uordblks + info.hblkhd, "malloc_free": info.fordblks}}
    except (OSError, AttributeError):
        heap = {{}}
    return {{"entries": sum(cache.sizes().values()), "bytes": sum(nbytes().values()) if nbytes else None,
             "arrow": pa.total_allocated_bytes(), **heap}}

server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=Quiet)
print(server.server_port, flush=True)
server.serve_forever()
"""


def parking_points(n: int, bounds: np.ndarray, seed: int, start_id: int = 0) -> gpd.GeoDataFrame:
    """``n`` 停放点 with an id, a name and a status."""
    rng = np.random.default_rng(seed)
    minx, miny, maxx, maxy = bounds
    return gpd.GeoDataFrame(
        {
            "编号": [f"TC{start_id + i:08d}" for i in range(n)],
            "名称": [f"停放点{start_id + i}" for i in range(n)],
            "状态": np.array(["已建成", "在建", "规划"], dtype=object)[rng.integers(0, 3, n)],
        },
        geometry=shapely.points(rng.uniform(minx, maxx, n), rng.uniform(miny, maxy, n)),
        crs=EPSG,
    )


def rss_mb(pid: int) -> float:
    """Resident memory of process ``pid`` in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def get(url: str) -> float:
    """Seconds to fetch ``url`` in full (a non-200 answer stops the benchmark)."""
    t0 = time.perf_counter()
    with urllib.request.urlopen(url, timeout=600) as resp:
        resp.read()
        if resp.status != 200:
            raise RuntimeError(f"{url}: {resp.status}")
    return time.perf_counter() - t0


def urls(base: str, bbox: str, layer: str) -> dict[str, str]:
    """The requests a map page of ``layer`` makes first: statistics, unit cells, features."""
    return {
        "stats": f"{base}/api/stats?level=grid&layer={layer}",
        "cells": f"{base}/api/cells?level=grid&layer={layer}",
        "features": f"{base}/api/features/{layer}?zoom=13&bbox={bbox}",
    }


def run(code: Path, store: Path, work: Path, args: argparse.Namespace, bbox: str, bounds: np.ndarray) -> dict:
    """The steps against a server running the code at ``code`` on ``store``."""
    env = {**os.environ, "PYTHONPATH": str(code)}
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVER.format(root=str(code), data=str(store))],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=code,
        env=env,
    )
    out: dict = {}
    try:
        assert proc.stdout is not None
        base = f"http://127.0.0.1:{int(proc.stdout.readline())}"
        everything = {
            **urls(base, bbox, "demolition"),
            **{f"p-{k}": v for k, v in urls(base, bbox, "parking").items()},
        }
        everything["all"] = f"{base}/api/stats?level=community"
        for u in everything.values():
            get(u)
        out["rss_warm"] = rss_mb(proc.pid)
        rss: list[float] = []
        kept: list[dict] = []
        collected: list[float] = []
        for i in range(args.imports):
            layer = "parking" if i % 2 == 0 else "demolition"
            make = parking_points if layer == "parking" else make_points
            frame = make(10, bounds, seed=1000 + i, start_id=10_000_000 + 10 * i)
            with open_store(store) as s:
                import_file(s, layer, write_gbk(frame, work / f"small{i}" / "p.shp"))
            for u in everything.values():
                get(u)
            rss.append(rss_mb(proc.pid))
            with urllib.request.urlopen(f"{base}/_bench/cache", timeout=60) as resp:
                kept.append(json.loads(resp.read()))
            collected.append(rss_mb(proc.pid))
        out["rss"] = rss
        out["kept"] = kept
        out["collected"] = collected
        # the first requests for demolition after a commit to parking, then after one to demolition
        for written, tag in (("parking", "other"), ("demolition", "same")):
            make = parking_points if written == "parking" else make_points
            frame = make(10, bounds, seed=7 + len(tag), start_id=20_000_000 + len(tag))
            with open_store(store) as s:
                import_file(s, written, write_gbk(frame, work / f"commit-{tag}" / "p.shp"))
            out[tag] = {name: get(u) for name, u in urls(base, bbox, "demolition").items()}
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cells", type=int, default=4000)
    ap.add_argument("--points", type=int, default=200_000, help="demolition points (parking: a quarter)")
    ap.add_argument("--imports", type=int, default=20, help="small imports (10 points each)")
    ap.add_argument("--quick", action="store_true", help="1,000 cells, 20,000 points")
    ap.add_argument("--before", type=Path, help="also run the steps against the code at this path")
    args = ap.parse_args()
    if args.quick:
        args.cells, args.points = 1000, 20_000
    work = Path(tempfile.mkdtemp(prefix="gridwatch-cachebench-"))
    print(f"# gridwatch cache benchmark: {args.cells:,} cells, {args.points:,} + {args.points // 4:,} points")
    try:
        cells = make_cells(args.cells)
        bounds = cells.total_bounds
        built = work / "built"
        with open_store(built) as s:
            import_file(s, "grid", write_gbk(cells, work / "in" / "grid.shp"))
            per_file = min(100_000, args.points)
            for k in range(max(1, args.points // per_file)):
                pts = make_points(per_file, bounds, seed=10 + k, start_id=k * per_file)
                import_file(s, "demolition", write_gbk(pts, work / "in" / f"d{k}.shp"))
            import_file(
                s, "parking", write_gbk(parking_points(args.points // 4, bounds, 3), work / "in" / "p.shp")
            )
        to_lonlat = pyproj.Transformer.from_crs(EPSG, 4326, always_xy=True)
        w, s_ = to_lonlat.transform(bounds[0], bounds[1])
        e, n = to_lonlat.transform(bounds[2], bounds[3])
        bbox = f"{w:.6f},{s_:.6f},{e:.6f},{n:.6f}"
        variants = [("now", ROOT)] + ([("before", args.before.resolve())] if args.before else [])
        results = {}
        for name, code in variants:
            store = work / f"store-{name}"
            shutil.copytree(built, store)
            results[name] = run(code, store, work / name, args, bbox, bounds)
        print(f"\n## server RSS across {args.imports} small imports (MB)")
        print("| code | warm | after the 1st | after the last | last / 1st |")
        print("|---|---:|---:|---:|---:|")
        for name, r in results.items():
            first, last = r["rss"][0], r["rss"][-1]
            print(f"| {name} | {r['rss_warm']:,.0f} | {first:,.0f} | {last:,.0f} | {last / first:.2f} |")
        for name, r in results.items():
            print(f"{name}: RSS after each import (MB): " + ", ".join(f"{v:,.0f}" for v in r["rss"]))
        print("\n## server RSS right after a full garbage collection (MB)")
        print("| code | after the 1st | after the last | last / 1st |")
        print("|---|---:|---:|---:|")
        for name, r in results.items():
            first, last = r["collected"][0], r["collected"][-1]
            print(f"| {name} | {first:,.0f} | {last:,.0f} | {last / first:.2f} |")
        print("\n## the cache's own accounting after the 1st and the last small import")
        print("| code | entries | bytes (MB, estimated) |")
        print("|---|---:|---:|")
        for name, r in results.items():
            a, b = r["kept"][0], r["kept"][-1]
            mb = "—" if a["bytes"] is None else f"{a['bytes'] / 2**20:,.1f} → {b['bytes'] / 2**20:,.1f}"
            print(f"| {name} | {a['entries']} → {b['entries']} | {mb} |")
        print("\n## allocators after the 1st and the last small import (MB)")
        print("| code | Arrow's pool, allocated | C heap in use | C heap free (not given back) |")
        print("|---|---:|---:|---:|")
        for name, r in results.items():
            a, b = r["kept"][0], r["kept"][-1]
            cells = [
                f"{a[k] / 2**20:,.1f} → {b[k] / 2**20:,.1f}" if k in a and k in b else "—"
                for k in ("arrow", "malloc_used", "malloc_free")
            ]
            print(f"| {name} | {' | '.join(cells)} |")
        print("\n## first demolition requests after a commit (ms)")
        print("| code | request | after a commit to parking | after a commit to demolition | ratio |")
        print("|---|---|---:|---:|---:|")
        for name, r in results.items():
            for req in ("stats", "cells", "features"):
                other, same = r["other"][req] * 1000, r["same"][req] * 1000
                print(f"| {name} | {req} | {other:,.0f} | {same:,.0f} | {same / max(other, 1e-3):.1f}x |")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
