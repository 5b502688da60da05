"""Load test: surveyors uploading and map users reading at the same time, under gunicorn.

Run on demand (tests/test_load.py runs a short form in CI):

    .venv/bin/python bench/bench_load.py                         # 60 s, 8 uploaders, 32 readers
    .venv/bin/python bench/bench_load.py --duration 10 --uploaders 4 --readers 8 --workers 2

Loads the demo district (data/shapefiles: 341 unit grids, 2,000 illegal-construction sites)
into a fresh store as ``gridwatch demo`` does, creates one surveyor account per uploader, one
viewer account for the readers and one admin account for the final checks, each with an
API token sent as ``Authorization: Bearer``, and starts gunicorn with the sample settings
(deploy/gunicorn.conf.py) bound to 127.0.0.1 on a free port.  After a short warm-up (not
counted), for ``--duration`` seconds:

* every uploader repeatedly builds a small zipped GBK shapefile (no .cpg, DBF language byte
  0, GBK entry names in a sub-folder) of 5-20 new illegal-construction sites inside the
  district, points in one round and small polygons in the next, with 案件编号 unique to
  the uploader and the round; sends it to ``POST /api/uploads`` (layer demolition) and
  commits it with ``POST /api/uploads/<id>/commit``, keeping what the commit reports;
* every reader asks for random viewports at zoom 13-18 the way the map page does (unit
  outlines with figures from ``/api/cells``, sites from ``/api/features/demolition``) and,
  for one viewport in ten, for ``/api/stats?level=community&layer=demolition``.

Readers and uploaders are threads in a few client processes (at most 16 readers in one
process, the uploaders in another), so that one interpreter's lock does not hold the load
back; the server has its own processes.  Every client sends its next request as soon as the
last one is answered (no pause to look at the map), so the clients keep the server saturated
and read latency is mostly the wait for a free worker thread: about the number of clients over
the throughput.  Uploaders finish the round they are in when time is up, so every staged
upload is committed.

The run passes when every request got the status it should (200, 201 for an upload; each
other status is a failure, 5xx counted apart) and the features reconcile exactly: the
store's demolition count, the demo's features plus the sum of ``added`` over the committed
batches, and the features the uploaders sent in committed uploads all agree, the batch
register (``/api/batches``) lists exactly the committed batches with their counts, a full
recount (``/api/stats`` per unit grid, its rows and its totals) gives the same number, and
the store holds every sent 案件编号 exactly once; SQLite's integrity check of the GeoPackage
must be clean.  Latency (p50/p95/max of reads, uploads and commits) and throughput are
printed, never judged.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import math
import multiprocessing as mp
import os
import queue
import re
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

LAYER = "demolition"
VIEW_W, VIEW_H = 1300, 850  # browser viewport in pixels
READERS_PER_PROCESS = 16
#: What each kind of request should answer; anything else is a failure.
EXPECTED = {"cells": 200, "features": 200, "stats": 200, "upload": 201, "commit": 200}
READ_KINDS = ("cells", "features", "stats")
REQUEST_TIMEOUT_S = 300.0
ERROR_SAMPLES = 5  # bodies kept per (kind, status) for the report


# --------------------------------------------------------------------------- HTTP


def request(
    port: int,
    method: str,
    path: str,
    token: str,
    body: bytes | None = None,
    content_type: str | None = None,
    timeout: float = REQUEST_TIMEOUT_S,
) -> tuple[int, float, bytes]:
    """One request on a new connection (as a reverse proxy sends them): (status, seconds, body).

    Status 0 means no HTTP answer (refused, reset, timed out); the body then says why.
    """
    headers = {"Authorization": f"Bearer {token}", "Connection": "close"}
    if content_type:
        headers["Content-Type"] = content_type
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    t0 = time.perf_counter()
    try:
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        status = resp.status
    except (OSError, http.client.HTTPException) as exc:
        status, data = 0, f"{type(exc).__name__}: {exc}".encode()
    finally:
        conn.close()
    return status, time.perf_counter() - t0, data


def multipart(fields: dict[str, str], filename: str, payload: bytes) -> tuple[str, bytes]:
    """A multipart/form-data body with ``fields`` and one file: (content type, body)."""
    boundary = "gridwatchload" + secrets.token_hex(8)
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
        for k, v in fields.items()
    ]
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        "Content-Type: application/zip\r\n\r\n".encode()
        + payload
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return f"multipart/form-data; boundary={boundary}", b"".join(parts)


def view_bbox(lon: float, lat: float, zoom: int) -> str:
    """The lon/lat box a VIEW_W x VIEW_H map centred on (lon, lat) shows at ``zoom``."""
    deg_per_px = 360.0 / (256 * 2**zoom)
    half_w = VIEW_W / 2 * deg_per_px
    half_h = VIEW_H / 2 * deg_per_px * math.cos(math.radians(lat))
    return f"{lon - half_w:.6f},{lat - half_h:.6f},{lon + half_w:.6f},{lat + half_h:.6f}"


class Tally:
    """Statuses, latencies and a few error bodies per kind of request (one per client thread)."""

    def __init__(self) -> None:
        self.statuses: dict[str, Counter[int]] = {}
        self.seconds: dict[str, list[float]] = {}
        self.errors: dict[str, list[str]] = {}
        self.crashes: list[str] = []  # client threads that died of an exception
        self.last_end = 0.0

    def add(self, kind: str, status: int, seconds: float, body: bytes) -> None:
        self.statuses.setdefault(kind, Counter())[status] += 1
        self.last_end = time.monotonic()
        if status == EXPECTED[kind]:
            self.seconds.setdefault(kind, []).append(seconds)
            return
        samples = self.errors.setdefault(f"{kind} {status}", [])
        if len(samples) < ERROR_SAMPLES:
            samples.append(body[:400].decode("utf-8", errors="replace"))

    def merge(self, other: dict[str, Any]) -> None:
        for kind, counts in other["statuses"].items():
            self.statuses.setdefault(kind, Counter()).update({int(k): v for k, v in counts.items()})
        for kind, values in other["seconds"].items():
            self.seconds.setdefault(kind, []).extend(values)
        for key, samples in other["errors"].items():
            mine = self.errors.setdefault(key, [])
            mine.extend(samples[: max(0, ERROR_SAMPLES - len(mine))])
        self.crashes.extend(other["crashes"])
        self.last_end = max(self.last_end, other["last_end"])

    def to_dict(self) -> dict[str, Any]:
        return {
            "statuses": {k: dict(v) for k, v in self.statuses.items()},
            "seconds": self.seconds,
            "errors": self.errors,
            "crashes": self.crashes,
            "last_end": self.last_end,
        }

    def guard(self, loop: Callable[..., None], *args: Any) -> Callable[[], None]:
        """``loop(*args)`` for a thread, its exception kept as a crash instead of lost."""

        def target() -> None:
            try:
                loop(*args)
            except Exception:
                import traceback

                self.crashes.append(traceback.format_exc()[-2000:])

        return target


def _run_all(
    threads: list[threading.Thread], tallies: list[Tally], ready: Any, start: Any
) -> tuple[Tally, float]:
    """Say this process is ready, wait for the start, run ``threads`` to the end: their merged
    tallies and the CPU seconds this process used meanwhile."""
    ready.put(os.getpid())
    start.wait()
    cpu0 = _cpu_seconds()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    total = Tally()
    for t in tallies:
        total.merge(t.to_dict())
    return total, _cpu_seconds() - cpu0


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# --------------------------------------------------------------------------- readers


def _read_loop(port: int, token: str, box: tuple[float, ...], seed: int, stop: Any, tally: Tally) -> None:
    rng = np.random.default_rng(seed)
    west, south, east, north = box
    while not stop.is_set():
        zoom = int(rng.integers(13, 19))
        bbox = view_bbox(float(rng.uniform(west, east)), float(rng.uniform(south, north)), zoom)
        level = "community" if zoom < 15 else "grid"  # what the map page asks for at that zoom
        asks = [
            ("cells", f"/api/cells?level={level}&layer={LAYER}&zoom={zoom}&bbox={bbox}"),
            ("features", f"/api/features/{LAYER}?zoom={zoom}&bbox={bbox}"),
        ]
        if rng.random() < 0.1:
            asks.append(("stats", f"/api/stats?level=community&layer={LAYER}"))
        for kind, path in asks:
            if stop.is_set():
                break
            status, seconds, body = request(port, "GET", path, token)
            if status == 200 and not body.strip().startswith(b"{"):
                status = -1  # answered 200 with something that is not a JSON object
            tally.add(kind, status, seconds, body)


def reader_process(
    port: int,
    token: str,
    box: tuple[float, ...],
    n: int,
    seed: int,
    ready: Any,
    start: Any,
    stop: Any,
    out: Any,
) -> None:
    """``n`` reader threads from ``start`` until ``stop``; puts one result dict on ``out``."""
    tallies = [Tally() for _ in range(n)]
    threads = [
        threading.Thread(
            target=tallies[k].guard(_read_loop, port, token, box, seed * 1000 + k, stop, tallies[k])
        )
        for k in range(n)
    ]
    total, cpu_s = _run_all(threads, tallies, ready, start)
    out.put({"role": "readers", "tally": total.to_dict(), "cpu_s": cpu_s, "commits": []})


# --------------------------------------------------------------------------- uploaders


class SiteFiles:
    """Small zipped GBK shapefiles of new illegal-construction sites inside the district."""

    def __init__(self, district_wkb: bytes, folder: Path) -> None:
        import shapely

        sys.path.insert(0, str(ROOT / "data"))
        import make_demo

        self.demo = make_demo
        self.district = shapely.from_wkb(district_wkb)
        shapely.prepare(self.district)
        self.folder = folder

    def _points_inside(self, rng: np.random.Generator, n: int) -> np.ndarray:
        import shapely

        minx, miny, maxx, maxy = self.district.bounds
        out: list[tuple[float, float]] = []
        while len(out) < n:
            x, y = rng.uniform(minx, maxx, 4 * n), rng.uniform(miny, maxy, 4 * n)
            inside = shapely.contains_xy(self.district, x, y)
            out.extend(zip(np.round(x[inside], 2).tolist(), np.round(y[inside], 2).tolist(), strict=True))
        return np.array(out[:n])

    def build(self, uploader: int, round_no: int, rng: np.random.Generator) -> tuple[str, bytes, list[str]]:
        """(file name, zip bytes, 案件编号 of its sites) for one round of one uploader."""
        import geopandas as gpd
        import shapely

        demo = self.demo
        n = int(rng.integers(5, 21))
        keys = [f"LT{uploader:02d}-{round_no:05d}-{k:02d}" for k in range(n)]
        xy = self._points_inside(rng, n)
        polygons = round_no % 2 == 1
        if polygons:
            half = rng.uniform(2.0, 6.0, (n, 2))
            geoms = shapely.box(
                xy[:, 0] - half[:, 0], xy[:, 1] - half[:, 1], xy[:, 0] + half[:, 0], xy[:, 1] + half[:, 1]
            )
            # a recorded area for most sites; blank ones are measured from the polygon
            area = np.where(rng.random(n) < 0.8, np.round(4 * half[:, 0] * half[:, 1], 1), np.nan)
        else:
            geoms = shapely.points(xy)
            area = np.round(rng.uniform(5.0, 300.0, n), 1)
        roads = [r for rs in demo.ROADS.values() for r in rs]
        day = int(rng.integers(1, 28))
        frame = gpd.GeoDataFrame(
            {
                "案件编号": keys,
                "违建地址": [
                    f"青弋区{roads[int(i)]}{int(rng.integers(1, 300))}号"
                    for i in rng.integers(0, len(roads), n)
                ],
                "结构类型": [demo.STRUCTURES[int(i)] for i in rng.integers(0, len(demo.STRUCTURES), n)],
                "违建位置": [demo.POSITIONS[int(i)] for i in rng.integers(0, len(demo.POSITIONS), n)],
                "违建层数": rng.integers(1, 4, n).astype(np.int32),
                "违建用途": [demo.USES[int(i)] for i in rng.integers(0, len(demo.USES), n)],
                "违建类型": ["新增"] * n,
                "违建面积": area,
                "当前状态": [("已登记", "已下发通知")[int(i)] for i in rng.integers(0, 2, n)],
                "发现时间": [f"2023年3月{day}日"] * n,
                "拆除时间": [""] * n,
            },
            geometry=geoms,
            crs=demo.EPSG,
        )
        stem = f"违建上报_{uploader:02d}_{round_no:05d}" + ("_面" if polygons else "")
        work = self.folder / stem
        work.mkdir(parents=True, exist_ok=True)
        members = demo.write_shapefile(frame, work / f"{stem}.shp")
        zpath = work / f"{stem}.zip"
        demo.write_zip(zpath, members, "违建上报")
        payload = zpath.read_bytes()
        shutil.rmtree(work, ignore_errors=True)
        return zpath.name, payload, keys


def _json_object(data: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(data)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _upload_loop(
    port: int, name: str, token: str, index: int, files: SiteFiles, stop: Any, tally: Tally, commits: list
) -> None:
    rng = np.random.default_rng(7000 + index)
    round_no = 0
    while not stop.is_set():
        round_no += 1
        filename, payload, keys = files.build(index, round_no, rng)
        record: dict[str, Any] = {"uploader": name, "round": round_no, "keys": keys, "committed": False}
        commits.append(record)
        content_type, body = multipart({"layer": LAYER}, filename, payload)
        status, seconds, data = request(port, "POST", "/api/uploads", token, body, content_type)
        report = _json_object(data) if status == 201 else None
        if status == 201 and report is None:
            status = -1  # answered 201 with something that is not a JSON object
        tally.add("upload", status, seconds, data)
        record["upload_status"] = status
        if report is None:
            time.sleep(0.5)
            continue
        record["accepted"] = report.get("accepted")
        record["rejected_rows"] = len(report.get("rejected") or [])
        form = f"user={name}".encode()
        status, seconds, data = request(
            port,
            "POST",
            f"/api/uploads/{report['upload_id']}/commit",
            token,
            form,
            "application/x-www-form-urlencoded",
        )
        done = _json_object(data) if status == 200 else None
        if status == 200 and done is None:
            status = -1
        tally.add("commit", status, seconds, data)
        record["commit_status"] = status
        if done is not None:
            record.update(
                committed=done.get("status") == "committed",
                batch_id=done.get("batch_id"),
                added=done.get("added"),
                updated=done.get("updated"),
                unchanged=done.get("unchanged"),
            )
        else:
            time.sleep(0.5)


def uploader_process(
    port: int,
    accounts: list[tuple[str, str]],
    district_wkb: bytes,
    folder: str,
    ready: Any,
    start: Any,
    stop: Any,
    out: Any,
) -> None:
    """One thread per (name, token) in ``accounts`` from ``start`` until ``stop``."""
    files = SiteFiles(district_wkb, Path(folder))
    files.build(0, 0, np.random.default_rng(0))  # the writers' first use costs more: not in the run
    tallies = [Tally() for _ in accounts]
    commits: list[list[dict[str, Any]]] = [[] for _ in accounts]
    threads = [
        threading.Thread(
            target=tallies[k].guard(
                _upload_loop, port, name, token, k + 1, files, stop, tallies[k], commits[k]
            )
        )
        for k, (name, token) in enumerate(accounts)
    ]
    total, cpu_s = _run_all(threads, tallies, ready, start)
    out.put(
        {
            "role": "uploaders",
            "tally": total.to_dict(),
            "cpu_s": cpu_s,
            "commits": [c for per in commits for c in per],
        }
    )


# --------------------------------------------------------------------------- store and server


@dataclass
class Setup:
    data: Path
    demo_keys: list[str]
    district_wkb: bytes
    box: tuple[float, float, float, float]  # district bounds, lon/lat
    surveyors: list[tuple[str, str]]  # (account name, token secret)
    viewer: str
    admin: str


def prepare_store(data: Path, n_uploaders: int) -> Setup:
    """The demo district in a fresh store at ``data``, with the accounts and tokens of the run."""
    import pyproj
    import shapely

    import layers
    from geo.cli.imports import DEMO_DIR, demo_files
    from geo.figures.versions import load_grid
    from geo.imports.batches import load_targets
    from geo.imports.importer import import_file
    from geo.store import accounts
    from geo.store.backends import open_store
    from geo.store.interface.audit import Actor

    password = secrets.token_urlsafe(12)
    with open_store(data) as store:
        store.actor = Actor("bench_load", "cli")
        # what `gridwatch demo` loads, in its order
        for layer, name in demo_files(DEMO_DIR):
            import_file(store, layer, DEMO_DIR / name, user="demo")
        load_targets(store, DEMO_DIR / "targets.csv", user="demo")
        surveyors = []
        for k in range(1, n_uploaders + 1):
            name = f"load-surveyor-{k:02d}"
            accounts.add_user(store, name, "surveyor", password)
            surveyors.append((name, accounts.create_token(store, name, "load test")[1]))
        accounts.add_user(store, "load-viewer", "viewer", password)
        viewer = accounts.create_token(store, "load-viewer", "load test")[1]
        accounts.add_user(store, "load-admin", "admin", password)
        admin = accounts.create_token(store, "load-admin", "load test checks")[1]
        keys = store.read_attributes(layers.get(LAYER), ["gw_key"])["gw_key"].tolist()
        grid = load_grid(store)
        srs = store.srs_epsg()
    if grid is None or srs is None:
        raise RuntimeError("the demo district did not load")
    # sites go at least a metre inside the district, so none falls outside every unit grid
    district = shapely.buffer(shapely.union_all(grid.cells), -1.0)
    to_lonlat = pyproj.Transformer.from_crs(srs, 4326, always_xy=True)
    west, south, east, north = (float(v) for v in to_lonlat.transform_bounds(*district.bounds))
    return Setup(data, keys, shapely.to_wkb(district), (west, south, east, north), surveyors, viewer, admin)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def gunicorn_settings() -> dict[str, Any]:
    settings: dict[str, Any] = {}
    exec((ROOT / "deploy" / "gunicorn.conf.py").read_text(), settings)
    return settings


@contextlib.contextmanager
def gunicorn(data: Path, port: int, workers: int | None, log: Path, token: str) -> Iterator[int]:
    """gunicorn with deploy/gunicorn.conf.py on 127.0.0.1:``port`` (``workers`` overriding the
    sample settings when given): yields the master's pid; errors go to ``log``."""
    cmd = [
        str(Path(sys.executable).parent / "gunicorn"),
        "-c",
        str(ROOT / "deploy" / "gunicorn.conf.py"),
        "--bind",
        f"127.0.0.1:{port}",
        "--access-logfile",
        "/dev/null",
        "--error-logfile",
        str(log),
    ]
    if workers:
        cmd += ["--workers", str(workers)]
    env = {**os.environ, "GRIDWATCH_DATA": str(data), "GRIDWATCH_TILES": "none"}
    proc = subprocess.Popen(
        [*cmd, "server:create_app()"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            status, _, _ = request(port, "GET", "/healthz", token, timeout=10)
            if status == 200:
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
                raise RuntimeError(f"gunicorn did not start (exit {proc.poll()}):\n{tail}")
            time.sleep(0.2)
        yield proc.pid
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def process_tree_cpu(pid: int) -> float:
    """CPU seconds used so far by ``pid`` and its children (Linux /proc; 0 elsewhere)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    proc = Path("/proc")
    if not proc.exists():
        return 0.0
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # after the command: state, ppid, ... utime (12th), stime (13th)
        if int(entry.name) == pid or int(fields[1]) == pid:
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def warm_up(port: int, token: str, box: tuple[float, ...], concurrency: int, tally: Tally) -> None:
    """Every kind of read a few times at once, so that each worker fills its caches before the clock starts."""
    west, south, east, north = box
    lon, lat = (west + east) / 2, (south + north) / 2
    paths = [
        ("cells", f"/api/cells?level=community&layer={LAYER}&zoom=14&bbox={view_bbox(lon, lat, 14)}"),
        ("cells", f"/api/cells?level=grid&layer={LAYER}&zoom=16&bbox={view_bbox(lon, lat, 16)}"),
        ("features", f"/api/features/{LAYER}?zoom=14&bbox={view_bbox(lon, lat, 14)}"),
        ("features", f"/api/features/{LAYER}?zoom=17&bbox={view_bbox(lon, lat, 17)}"),
        ("stats", f"/api/stats?level=community&layer={LAYER}"),
    ]
    lock = threading.Lock()

    def ask(kind: str, path: str) -> None:
        status, seconds, body = request(port, "GET", path, token)
        with lock:
            tally.add(kind, status, seconds, body)

    for kind, path in paths:
        threads = [threading.Thread(target=ask, args=(kind, path)) for _ in range(concurrency)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()


# --------------------------------------------------------------------------- checks


@dataclass
class LoadResult:
    """What a run measured and whether it passed (``problems`` empty)."""

    duration_s: float
    workers: int
    threads: int
    uploaders: int
    readers: int
    tally: Tally
    warm_up: Tally
    commits: list[dict[str, Any]]
    read_elapsed_s: float
    upload_elapsed_s: float
    client_cpu_s: float
    server_cpu_s: float
    demo_features: int = 0
    sent_committed: int = 0
    added_committed: int = 0
    store_count: int | None = None
    batches_added: int | None = None
    stats_total: int | None = None
    stats_rows_sum: int | None = None
    checks: list[tuple[str, bool, str]] = field(default_factory=list)
    server_log: str = ""

    @property
    def failed_requests(self) -> dict[str, int]:
        """Requests answered with another status than expected, per ``"kind status"``."""
        out: dict[str, int] = {}
        for tally in (self.warm_up, self.tally):
            for kind, counts in tally.statuses.items():
                for status, n in counts.items():
                    if status != EXPECTED[kind]:
                        out[f"{kind} {status}"] = out.get(f"{kind} {status}", 0) + n
        return out

    @property
    def server_errors(self) -> int:
        return sum(n for key, n in self.failed_requests.items() if int(key.split()[1]) >= 500)

    @property
    def reconciled(self) -> bool:
        return bool(self.checks) and all(ok for _, ok, _ in self.checks)

    @property
    def passed(self) -> bool:
        return not self.failed_requests and not self.tally.crashes and self.reconciled

    def check(self, what: str, ok: bool, detail: str = "") -> None:
        self.checks.append((what, ok, detail))


def reconcile(result: LoadResult, setup: Setup, port: int) -> None:
    """Compare what the uploaders sent and the commits reported with the batch register and a
    full recount through the API (the server still running)."""
    committed = [c for c in result.commits if c.get("committed")]
    result.demo_features = len(setup.demo_keys)
    result.sent_committed = sum(len(c["keys"]) for c in committed)
    result.added_committed = sum(int(c.get("added") or 0) for c in committed)
    expected = result.demo_features + result.sent_committed
    bad_commits = [
        c
        for c in committed
        if not c.get("added") == c.get("accepted") == len(c["keys"])
        or c.get("updated")
        or c.get("unchanged")
        or c.get("rejected_rows")
    ]
    result.check(
        "every commit added exactly the sites its file held",
        not bad_commits and result.added_committed == result.sent_committed,
        f"{len(committed)} commits, {result.sent_committed} sites sent, {result.added_committed} reported added"
        + (f"; off: {bad_commits[:3]}" if bad_commits else ""),
    )
    unconfirmed = [c for c in result.commits if not c.get("committed")]
    result.check(
        "every upload was committed",
        not unconfirmed,
        f"{len(unconfirmed)} uploads not committed"
        if unconfirmed
        else f"{len(committed)} of {len(committed)}",
    )

    status, _, body = request(port, "GET", f"/api/batches?layer={LAYER}", setup.admin)
    if status != 200:
        result.check("batch register readable", False, f"/api/batches answered {status}")
    else:
        batches = {b["id"]: b for b in json.loads(body) if b["layer"] == LAYER}
        ours = {c["batch_id"]: c for c in committed}
        demo = {i: b for i, b in batches.items() if i not in ours}
        missing = sorted(set(ours) - set(batches))
        wrong = [
            i
            for i, c in ours.items()
            if i in batches
            and (
                batches[i]["added"] != len(c["keys"])
                or batches[i]["status"] != "active"
                or batches[i]["updated"]
                or batches[i]["rows_read"] != len(c["keys"])
            )
        ]
        strangers = sorted(i for i, b in demo.items() if b["user"] != "demo")
        active = [b for b in batches.values() if b["status"] == "active"]
        result.batches_added = sum(int(b["added"]) for b in active)
        result.check(
            "batch register: one batch per commit with its counts, nothing else",
            not missing and not wrong and not strangers and len(ours) == len(committed),
            f"{len(ours)} load-test batches + {len(demo)} demo batches; missing {missing[:5]}, "
            f"counts differ {wrong[:5]}, unexpected {strangers[:5]}",
        )
        result.check(
            "sum of 'added' over active batches = demo + sent",
            result.batches_added == expected,
            f"{result.batches_added} vs {expected}",
        )

    status, _, body = request(port, "GET", f"/api/stats?level=grid&layer={LAYER}", setup.admin)
    if status != 200:
        result.check("full recount readable", False, f"/api/stats answered {status}")
    else:
        report = json.loads(body)
        result.stats_total = int(report["totals"][f"{LAYER}_total"])
        result.stats_rows_sum = int(sum(int(r[f"{LAYER}_total"] or 0) for r in report["rows"]))
        unassigned = sum(int(r[f"{LAYER}_total"] or 0) for r in report["rows"] if r["code"] == "UNASSIGNED")
        result.check(
            "full recount (/api/stats per unit grid): totals and the sum of its rows",
            result.stats_total == expected and result.stats_rows_sum == expected,
            f"totals {result.stats_total}, rows {result.stats_rows_sum}, expected {expected} "
            f"({unassigned} outside every unit grid)",
        )


def reconcile_store(result: LoadResult, setup: Setup) -> None:
    """The store itself, read directly once the server has stopped: SQLite's integrity check
    of the GeoPackage, the layer's count and every 案件编号."""
    import sqlite3

    import layers
    from geo.store.backends import open_store

    committed = [c for c in result.commits if c.get("committed")]
    sent = [k for c in committed for k in c["keys"]]
    expected = len(setup.demo_keys) + len(sent)
    location = Path(setup.data) / "gridwatch.gpkg"
    db = sqlite3.connect(f"file:{location}?mode=ro", uri=True)
    try:
        problems = [row[0] for row in db.execute("PRAGMA integrity_check").fetchall()]
    except sqlite3.DatabaseError as exc:
        problems = [str(exc)]
    finally:
        db.close()
    result.check(
        "GeoPackage file intact (PRAGMA integrity_check)", problems == ["ok"], "; ".join(problems[:3])
    )
    keys: list[str] | None = None
    try:
        with open_store(location) as store:
            spec = layers.get(LAYER)
            result.store_count = store.layer_count(spec)
            keys = store.read_attributes(spec, ["gw_key"])["gw_key"].tolist()
    except Exception as exc:  # a damaged file is a finding, not the end of the report
        result.check("store readable", False, f"{type(exc).__name__}: {exc}")
    if keys is not None:
        result.check(
            "store count = demo + sent in committed uploads",
            result.store_count == expected,
            f"{result.store_count} vs {len(setup.demo_keys)} + {len(sent)}",
        )
        stored = Counter(keys)
        duplicated = sorted(k for k, n in stored.items() if n > 1)
        lost = sorted(set(sent) - set(stored))
        extra = sorted(set(stored) - set(sent) - set(setup.demo_keys))
        demo_lost = sorted(set(setup.demo_keys) - set(stored))
        result.check(
            "every sent 案件编号 stored exactly once, nothing else added or lost",
            not (duplicated or lost or extra or demo_lost) and len(set(sent)) == len(sent),
            f"duplicated {duplicated[:5]}, lost {lost[:5]}, unexpected {extra[:5]}, demo lost {demo_lost[:5]}",
        )
    staged = setup.data / "uploads"
    # staged uploads are folders; the staging area's lock file is not one
    left = sorted(p.name for p in staged.iterdir() if p.is_dir()) if staged.exists() else []
    result.check("no staged upload left behind", not left, f"{len(left)} left" if left else "")


# --------------------------------------------------------------------------- the run


def _collect(q: Any, procs: list[Any], timeout: float) -> list[Any]:
    """One item from ``q`` per process in ``procs``; fails when one of them dies first."""
    items: list[Any] = []
    deadline = time.monotonic() + timeout
    while len(items) < len(procs):
        try:
            items.append(q.get(timeout=1.0))
        except queue.Empty:
            dead = [p.exitcode for p in procs if p.exitcode not in (None, 0)]
            if dead or time.monotonic() > deadline:
                raise RuntimeError(f"a client process failed (exit codes {dead}) or timed out") from None
    return items


def run(
    duration: float = 60.0,
    uploaders: int = 8,
    readers: int = 32,
    workers: int | None = None,
    log: Callable[[str], None] = print,
) -> LoadResult:
    """Set up, load, check; see the module docstring.  ``workers`` None keeps the sample settings'."""
    work = Path(tempfile.mkdtemp(prefix="gridwatch-loadbench-"))
    ctx = mp.get_context("spawn")
    procs: list[Any] = []
    try:
        t0 = time.perf_counter()
        setup = prepare_store(work / "store", uploaders)
        log(
            f"store: demo district loaded, {len(setup.demo_keys):,} {LAYER} features; "
            f"{uploaders} surveyor accounts, a viewer and an admin, each with an API token "
            f"({time.perf_counter() - t0:.1f} s)"
        )
        settings = gunicorn_settings()
        n_workers = workers or int(settings["workers"])
        port = free_port()
        # the clients start (and import what they need) while gunicorn starts
        ready, out = ctx.Queue(), ctx.Queue()
        start, stop = ctx.Event(), ctx.Event()
        n_procs = math.ceil(readers / READERS_PER_PROCESS)
        groups = [len(g) for g in np.array_split(np.arange(readers), n_procs)] if readers else []
        for k, n in enumerate(groups):
            args = (port, setup.viewer, setup.box, n, k + 1, ready, start, stop, out)
            procs.append(ctx.Process(target=reader_process, args=args, daemon=True))
        if uploaders:
            args = (port, setup.surveyors, setup.district_wkb, str(work / "files"), ready, start, stop, out)
            procs.append(ctx.Process(target=uploader_process, args=args, daemon=True))
        for p in procs:
            p.start()
        server_log = work / "gunicorn.log"
        with gunicorn(setup.data, port, workers, server_log, setup.admin) as server_pid:
            log(
                f"gunicorn: 127.0.0.1:{port}, {n_workers} workers x {settings['threads']} threads "
                f"({settings['worker_class']}), deploy/gunicorn.conf.py; machine: {os.cpu_count()} CPUs, "
                f"load average {os.getloadavg()[0]:.1f} before the run"
            )
            warm = Tally()
            warm_up(port, setup.viewer, setup.box, n_workers * int(settings["threads"]), warm)
            _collect(ready, procs, 300)
            log(
                f"load: {uploaders} uploaders and {readers} readers in {len(procs)} client processes "
                f"(readers {groups}), {duration:g} s"
            )
            cpu0 = process_tree_cpu(server_pid)
            t_start = time.monotonic()
            start.set()
            time.sleep(duration)
            stop.set()
            tally, commits, client_cpu = Tally(), [], 0.0
            ends: dict[str, float] = {"readers": t_start, "uploaders": t_start}
            for part in _collect(out, procs, REQUEST_TIMEOUT_S * 2 + 120):
                tally.merge(part["tally"])
                commits.extend(part["commits"])
                client_cpu += part["cpu_s"]
                ends[part["role"]] = max(ends[part["role"]], part["tally"]["last_end"])
            for p in procs:
                p.join(timeout=60)
            server_cpu = process_tree_cpu(server_pid) - cpu0
            result = LoadResult(
                duration_s=duration,
                workers=n_workers,
                threads=int(settings["threads"]),
                uploaders=uploaders,
                readers=readers,
                tally=tally,
                warm_up=warm,
                commits=commits,
                read_elapsed_s=max(ends["readers"] - t_start, 1e-9),
                upload_elapsed_s=max(ends["uploaders"] - t_start, 1e-9),
                client_cpu_s=client_cpu,
                server_cpu_s=server_cpu,
            )
            reconcile(result, setup, port)
        reconcile_store(result, setup)
        text = server_log.read_text(errors="replace") if server_log.exists() else ""
        result.server_log = "\n".join(
            line for line in text.splitlines() if "[INFO]" not in line and line.strip()
        )
        return result
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
                p.join(timeout=10)
        shutil.rmtree(work, ignore_errors=True)


def _percentiles(values: list[float]) -> str:
    if not values:
        return "no requests"
    ms = np.asarray(values) * 1000
    return (
        f"p50 {np.percentile(ms, 50):7.1f} ms, p95 {np.percentile(ms, 95):7.1f} ms, "
        f"max {ms.max():7.1f} ms ({len(ms):,})"
    )


def server_log_summary(text: str) -> list[tuple[str, int]]:
    """Exceptions and gunicorn warnings/errors in the server log, counted, most frequent first."""
    counts: Counter[str] = Counter()
    for line in text.splitlines():
        exc = re.match(r"^([A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt|Warning))\b:?(.*)$", line)
        if exc:
            counts[f"{exc.group(1)}:{exc.group(2)[:160]}"] += 1
        elif re.search(r"\[(WARNING|ERROR|CRITICAL)\]", line) and "Exception on" not in line:
            counts[re.sub(r"\d+", "N", re.sub(r"^\[[^]]*\] \[\d+\] ", "", line))[:200]] += 1
    return counts.most_common(10)


def report(result: LoadResult, log: Callable[[str], None] = print) -> None:
    """Print the figures, the status counts, the checks and the PASS/FAIL line."""
    t = result.tally
    log("statuses:")
    for name, tally in (("warm-up", result.warm_up), ("run", t)):
        for kind in (*READ_KINDS, "upload", "commit"):
            if kind in tally.statuses:
                counts = ", ".join(f"{s}: {n:,}" for s, n in sorted(tally.statuses[kind].items()))
                log(f"  {name:7s} {kind:8s} {counts}")
    reads = [s for k in READ_KINDS for s in t.seconds.get(k, [])]
    log("latency:")
    log(f"  reads    {_percentiles(reads)}")
    for kind in READ_KINDS:
        log(f"    {kind:8s} {_percentiles(t.seconds.get(kind, []))}")
    log(
        f"  upload   {_percentiles(t.seconds.get('upload', []))}  (POST /api/uploads: staging, reading, report)"
    )
    log(f"  commit   {_percentiles(t.seconds.get('commit', []))}")
    commits = sum(1 for c in result.commits if c.get("committed"))
    log(
        f"throughput: {len(reads) / result.read_elapsed_s:,.1f} reads/s over {result.read_elapsed_s:.1f} s; "
        f"{commits / result.upload_elapsed_s:,.2f} commits/s ({result.sent_committed / result.upload_elapsed_s:,.1f} "
        f"sites/s) over {result.upload_elapsed_s:.1f} s"
    )
    log(
        f"CPU: server {result.server_cpu_s:.1f} s, load generator {result.client_cpu_s:.1f} s "
        f"of {(os.cpu_count() or 1) * max(result.read_elapsed_s, result.upload_elapsed_s):.0f} CPU-seconds available"
    )
    log(
        f"features: demo {result.demo_features:,} + sent in committed uploads {result.sent_committed:,} "
        f"= {result.demo_features + result.sent_committed:,}; commits reported added {result.added_committed:,}; "
        f"batches {result.batches_added}; /api/stats total {result.stats_total} (rows {result.stats_rows_sum}); "
        f"store {result.store_count}"
    )
    log("checks:")
    for what, ok, detail in result.checks:
        log(f"  [{'ok' if ok else 'FAIL'}] {what}" + (f": {detail}" if detail else ""))
    failed = result.failed_requests
    log(
        f"5xx responses: {result.server_errors}; other unexpected statuses: "
        f"{sum(failed.values()) - result.server_errors}"
    )
    for key, samples in {**result.warm_up.errors, **t.errors}.items():
        log(f"  {key}: {samples[0].strip()[:300]}")
    for what, n in server_log_summary(result.server_log):
        log(f"  server log: {n} x {what}")
    verdict = "PASS" if result.passed else "FAIL"
    why = []
    if failed:
        why.append(f"{sum(failed.values())} requests with an unexpected status ({result.server_errors} 5xx)")
    if t.crashes:
        why.append(f"{len(t.crashes)} client threads crashed")
        log(f"client crash: {t.crashes[0]}")
    if not result.reconciled:
        why.append("features do not reconcile")
    log(f"{verdict}: " + ("; ".join(why) if why else "no unexpected status, features reconcile exactly"))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=60.0, help="seconds of load (default 60)")
    ap.add_argument("--uploaders", type=int, default=8, help="concurrent uploaders (default 8)")
    ap.add_argument("--readers", type=int, default=32, help="concurrent map readers (default 32)")
    ap.add_argument(
        "--workers", type=int, default=None, help="gunicorn workers (default: deploy/gunicorn.conf.py's)"
    )
    args = ap.parse_args(argv)
    if args.duration <= 0 or args.uploaders < 0 or args.readers < 1:
        ap.error("--duration must be > 0, --uploaders >= 0, --readers >= 1")
    print(
        f"# gridwatch load test: {args.uploaders} uploaders, {args.readers} readers, {args.duration:g} s, "
        f"demo district, gunicorn on 127.0.0.1"
    )
    result = run(args.duration, args.uploaders, args.readers, args.workers)
    report(result)
    return 0 if result.passed else 1


if __name__ == "__main__":
    sys.exit(main())
