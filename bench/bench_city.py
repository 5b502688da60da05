"""City scale on one machine: 400,000 unit cells and 10,000,000 违法建设 points in one GeoPackage store,
one server process (one worker) started fresh on it: its memory and its first map and statistics
requests, then the same after a 1,000-point import from another process.

Run on demand (not a test):

    nice -n 5 .venv/bin/python bench/bench_city.py --store /tmp/city       # build once (resumable), then measure
    .venv/bin/python bench/bench_city.py --store /tmp/city                 # the built store: measure again
    .venv/bin/python bench/bench_city.py --quick                           # 20,000 cells, 500,000 points
    .venv/bin/python bench/bench_city.py --cells 400000 --points 2000000   # any size

The store is built the way a bureau fills it: the grid (Voronoi cells coded street → community →
cell as in ``bench_engine.py``) imported as a GBK shapefile, then the points as GBK shapefiles of
``--batch`` points each, every one through :func:`geo.imports.importer.import_file` (the store's
own write path: change log, R-tree, history, archive), one file at a time, each file deleted after
its import (the next file is written by a helper process meanwhile).  The builder keeps its store
open across files and starts it again above 4 GB of RSS, so it stays under about 6 GB; it stops with
a message when the machine's available memory falls under ``--min-free-gb``.  With ``--store DIR``
the store in ``DIR`` is kept and a later run continues the build where it stopped (the layer's
count says how many files are in) or, when complete, only measures.

Measuring works on a copy of the store (so the built one stays exactly its size): a server (the
real app, werkzeug, threaded, in a process of its own -- one process is one gunicorn worker's
work; the same server as ``bench_after_commit.py``) is started and, in the map page's order, asked
for the features of the whole district at zoom 13, the features of a 1366×768-pixel window at
zoom 16 in the middle, ``/api/stats`` and ``/api/cells`` of every unit grid, twice; then the server
is started again on the same store and data directory (a restart: the process keeps nothing, the
map files under the data directory's ``cache/map`` stay) and asked again; then this process
imports 1,000 new points and the same requests are timed again.  The server's resident memory is
read from ``/proc`` (VmRSS now, VmHWM its peak) after each step; it is stopped, with a message,
when the machine's available memory falls under ``--min-free-gb``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pyproj

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

from bench_after_commit import SERVER  # noqa: E402
from bench_engine import EPSG, make_cells, make_points, write_gbk  # noqa: E402

from geo.imports.importer import import_file  # noqa: E402
from geo.registry import get_layer  # noqa: E402
from geo.store.backends import open_store  # noqa: E402

LAYER = "demolition"
#: the builder closes its store (and drops what it keeps of the layer) above this RSS
BUILDER_MB = 4_000
TARGETS = {"worker": 8 * 1024, "viewport after start": 10.0, "viewport after import": 1.0}


class LowMemory(RuntimeError):
    """The machine's available memory fell under the floor given."""


def available_gb() -> float:
    """The machine's available memory (``MemAvailable``), in GiB."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 1024 / 1024
    return float("inf")


def proc_mb(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM (peak) of process ``pid`` in MiB."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(rest.split()[0]) / 1024
    return out


def loadavg() -> str:
    """The first three figures of ``/proc/loadavg``."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def check_memory(floor: float, what: str) -> None:
    """Stop with a clear message when the machine's available memory is under ``floor`` GiB."""
    free = available_gb()
    if free < floor:
        raise LowMemory(
            f"stopped {what}: only {free:.1f} GiB of memory available (floor --min-free-gb {floor:g});"
            " run again when the machine is quieter (a built store in --store is kept and continued)"
        )


def layer_count(store_dir: Path) -> int:
    """Features now in the survey layer of the store in ``store_dir`` (0 when there is none)."""
    if not (store_dir / "gridwatch.gpkg").exists():
        return 0
    with open_store(store_dir) as s:
        return s.layer_count(get_layer(LAYER))


def build(store_dir: Path, cells_n: int, points_n: int, batch: int, floor: float) -> tuple[list[float], str]:
    """Build (or continue) the store in ``store_dir``: the grid, then the points in files of ``batch``.
    Returns the bounds of the cells and the bbox of the district in lon/lat."""
    scratch = store_dir.parent / f"{store_dir.name}-in"
    scratch.mkdir(parents=True, exist_ok=True)
    known = store_dir / "city-bounds.json"  # the cells' bounds, kept beside a built grid
    if (store_dir / "gridwatch.gpkg").exists() and known.exists():
        bounds = json.loads(known.read_text())
    else:
        t0 = time.perf_counter()
        cells = make_cells(cells_n)
        bounds = [float(b) for b in cells.total_bounds]
        print(f"# {len(cells):,} cells made in {time.perf_counter() - t0:,.0f} s", flush=True)
        if not (store_dir / "gridwatch.gpkg").exists():
            t0 = time.perf_counter()
            grid = write_gbk(cells, scratch / "grid" / "grid.shp")
            with open_store(store_dir) as s:
                import_file(s, "grid", grid)
            print(f"# grid imported in {time.perf_counter() - t0:,.0f} s", flush=True)
        known.write_text(json.dumps(bounds))
        del cells
    have = layer_count(store_dir)
    files = max(1, points_n // batch)
    first = have // batch
    if have % batch:
        raise SystemExit(
            f"the store in {store_dir} holds {have:,} points, not a whole number of files of {batch:,}"
        )
    if first < files:
        print(f"# importing files {first + 1}..{files} of {batch:,} points (load {loadavg()})", flush=True)
    t_build = time.perf_counter()
    store = None
    # the next file is written by a helper process while this one imports
    with ProcessPoolExecutor(1) as maker:
        ahead = maker.submit(write_points, batch, bounds, first, scratch) if first < files else None
        for k in range(first, files):
            check_memory(floor, f"before file {k + 1} of {files}")
            t0 = time.perf_counter()
            assert ahead is not None
            path = ahead.result()
            t_write = time.perf_counter() - t0
            ahead = maker.submit(write_points, batch, bounds, k + 1, scratch) if k + 1 < files else None
            if store is None:
                store = open_store(store_dir)
            t1 = time.perf_counter()
            report = import_file(store, LAYER, path)
            t_import = time.perf_counter() - t1
            shutil.rmtree(path.parent)
            if report.added != batch:
                raise SystemExit(
                    f"file {k + 1}: {report.added:,} of {batch:,} points added ({report.status})"
                )
            own = proc_mb(os.getpid())
            print(
                f"  file {k + 1}/{files}: waited {t_write:.1f} s for it, imported {t_import:.1f} s"
                f" ({batch / t_import:,.0f}/s); builder RSS {own['VmRSS']:,.0f} MB (peak {own['VmHWM']:,.0f});"
                f" available {available_gb():.1f} GiB; load {loadavg()}",
                flush=True,
            )
            if own["VmRSS"] > BUILDER_MB:  # what this process keeps of the layer: start again
                store.close()
                store = None
    if store is not None:
        store.close()
    if first < files:
        print(f"# points imported in {time.perf_counter() - t_build:,.0f} s", flush=True)
    shutil.rmtree(scratch, ignore_errors=True)
    to_lonlat = pyproj.Transformer.from_crs(EPSG, 4326, always_xy=True)
    w, s_ = to_lonlat.transform(bounds[0], bounds[1])
    e, n = to_lonlat.transform(bounds[2], bounds[3])
    return bounds, f"{w:.6f},{s_:.6f},{e:.6f},{n:.6f}"


def write_points(batch: int, bounds: list[float], k: int, scratch: Path) -> Path:
    """The ``k``-th file of ``batch`` points, written as a GBK shapefile under ``scratch``."""
    return write_gbk(make_points(batch, bounds, seed=10 + k, start_id=k * batch), scratch / f"p{k}" / "p.shp")


def zoom16_bbox(district: str) -> str:
    """A 1366×768-pixel window at zoom 16 in the middle of the district (lon/lat)."""
    w, s, e, n = (float(v) for v in district.split(","))
    cx, cy = (w + e) / 2, (s + n) / 2
    deg_per_px = 360 / (256 * 2**16)
    dx = 1366 * deg_per_px / 2
    dy = 768 * deg_per_px / 2 * 0.857  # cos(31°)
    return f"{cx - dx:.6f},{cy - dy:.6f},{cx + dx:.6f},{cy + dy:.6f}"


def get(url: str) -> float:
    """Seconds to fetch ``url`` in full (a non-200 answer stops the benchmark)."""
    t0 = time.perf_counter()
    with urllib.request.urlopen(url, timeout=1800) as resp:
        resp.read()
        if resp.status != 200:
            raise RuntimeError(f"{url}: {resp.status}")
    return time.perf_counter() - t0


REQUESTS = ("viewport z13", "viewport z16", "stats", "cells")


def first_requests(base: str, district: str) -> dict[str, float]:
    """The map page's requests for the survey layer, in its order, timed."""
    paths = {
        "viewport z13": f"/api/features/{LAYER}?zoom=13&bbox={district}",
        "viewport z16": f"/api/features/{LAYER}?zoom=16&bbox={zoom16_bbox(district)}",
        "stats": f"/api/stats?level=grid&layer={LAYER}",
        "cells": f"/api/cells?level=grid&layer={LAYER}",
    }
    return {name: get(base + path) for name, path in paths.items()}


class Watch(threading.Thread):
    """Kills the server when the machine's available memory falls under the floor."""

    def __init__(self, proc: subprocess.Popen[str], floor: float):
        super().__init__(daemon=True)
        self.proc, self.floor, self.fired = proc, floor, False
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.5):
            if available_gb() < self.floor and self.proc.poll() is None:
                self.fired = True
                self.proc.kill()
                return


def measure(store: str, data: Path, district: str, bounds: list[float], small: int, floor: float) -> None:
    """Start a server on ``store``, time its first requests, import ``small`` points, time them again."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    def start() -> tuple[subprocess.Popen[str], Watch, str]:
        check_memory(floor, "before starting the server")
        t_start = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-c", SERVER.format(root=str(ROOT), data=str(data), store=store)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            cwd=ROOT,
            env=env,
        )
        watch = Watch(proc, floor)
        watch.start()
        assert proc.stdout is not None
        base = f"http://127.0.0.1:{int(proc.stdout.readline())}"
        t_ready = time.perf_counter() - t_start
        print(f"# server listening {t_ready:.1f} s after its start; RSS {proc_mb(proc.pid)['VmRSS']:,.0f} MB")
        return proc, watch, base

    rows: list[tuple[str, dict[str, float], dict[str, float]]] = []
    proc, watch, base = start()
    try:
        rows.append(("after the first start", first_requests(base, district), proc_mb(proc.pid)))
        rows.append(("warm", first_requests(base, district), proc_mb(proc.pid)))
        # a restart: the worker keeps nothing, the data directory's cache folder stays
        watch.stop.set()
        proc.terminate()
        proc.wait(timeout=120)
        proc, watch, base = start()
        rows.append(("after a restart", first_requests(base, district), proc_mb(proc.pid)))
        path = write_gbk(
            make_points(
                small, bounds, seed=7_000 + layer_count(data), start_id=90_000_000 + layer_count(data)
            ),
            data.parent / "small" / "small.shp",
        )
        t0 = time.perf_counter()
        with open_store(store, data=data) as s:
            report = import_file(s, LAYER, path)
        t_small = time.perf_counter() - t0
        print(f"# {report.added:,} points imported by this process in {t_small:.1f} s ({report.status})")
        rows.append((f"after a {small:,}-point import", first_requests(base, district), proc_mb(proc.pid)))
        rows.append(("warm again", first_requests(base, district), proc_mb(proc.pid)))
    except Exception:
        if watch.fired:
            raise LowMemory(
                f"server stopped: the machine's available memory fell under {floor:g} GiB"
                f" (server RSS was not read at that moment)"
            ) from None
        raise
    finally:
        watch.stop.set()
        proc.terminate()
        proc.wait(timeout=120)
    print(f"\n## one server process (werkzeug, threaded), load average at the end {loadavg()}")
    print("| when | " + " | ".join(f"{r} (s)" for r in REQUESTS) + " | RSS (MB) | peak RSS (MB) |")
    print("|---|" + "---:|" * (len(REQUESTS) + 2))
    for when, times, mem in rows:
        cols = " | ".join(f"{times[r]:,.2f}" for r in REQUESTS)
        print(f"| {when} | {cols} | {mem['VmRSS']:,.0f} | {mem['VmHWM']:,.0f} |")
    peak = max(mem["VmHWM"] for _, _, mem in rows)
    start_vp = rows[2][1]["viewport z13"]
    after_vp = rows[3][1]["viewport z13"]
    verdict = {True: "met", False: "NOT met"}
    print(
        f"\nworker peak RSS {peak / 1024:,.2f} GiB (< 8 GiB: {verdict[peak < TARGETS['worker']]});"
        f" first viewport after a restart {start_vp:.2f} s (≤ 10 s: {verdict[start_vp <= 10]}),"
        f" after a {small:,}-point import {after_vp:.2f} s (≤ 1 s: {verdict[after_vp <= 1]})"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cells", type=int, default=400_000)
    ap.add_argument("--points", type=int, default=10_000_000)
    ap.add_argument("--batch", type=int, default=200_000, help="points per imported file")
    ap.add_argument("--small", type=int, default=1_000, help="points of the import between the measurements")
    ap.add_argument("--quick", action="store_true", help="20,000 cells, 500,000 points in files of 100,000")
    ap.add_argument("--store", help="keep the built store in this folder (and continue or reuse it)")
    ap.add_argument("--build-only", action="store_true", help="build the store, measure nothing")
    ap.add_argument("--min-free-gb", type=float, default=3.0, help="stop when less memory is available")
    args = ap.parse_args()
    if args.quick:
        args.cells, args.points, args.batch = 20_000, 500_000, 100_000
    args.batch = min(args.batch, args.points)
    work = Path(tempfile.mkdtemp(prefix="gridwatch-city-"))
    store_dir = Path(args.store).resolve() if args.store else work / "store"
    print(
        f"# city scale: {args.cells:,} cells, {args.points:,} points in files of {args.batch:,};"
        f" store {store_dir}; load {loadavg()}; available {available_gb():.1f} GiB",
        flush=True,
    )
    try:
        with open_store(work / "warm-up") as scratch:  # starts the reading helper: in no figure
            import_file(scratch, "grid", write_gbk(make_cells(100), work / "warm-in" / "grid.shp"))
        bounds, district = build(store_dir, args.cells, args.points, args.batch, args.min_free_gb)
        if args.build_only:
            return 0
        t0 = time.perf_counter()
        copy = work / "measured"
        copy.mkdir()
        for item in store_dir.iterdir():
            if item.name.startswith("gridwatch.gpkg"):
                shutil.copy2(item, copy / item.name)
        print(f"# store copied for the measurement in {time.perf_counter() - t0:,.0f} s", flush=True)
        measure(str(copy / "gridwatch.gpkg"), copy, district, bounds, args.small, args.min_free_gb)
    except LowMemory as exc:
        print(f"# {exc}", file=sys.stderr)
        return 2
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
