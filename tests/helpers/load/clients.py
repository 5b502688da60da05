"""The clients of a load run: map readers and surveyors uploading, as threads in client processes.

Every request goes on a new connection (as a reverse proxy sends them) and is counted in a
:class:`Tally`.  :func:`reader_process` and :func:`uploader_process` are started by
:func:`tests.helpers.load.run.run` through ``multiprocessing`` (spawn), which imports them in
the child by this module's name.
"""

from __future__ import annotations

import http.client
import json
import math
import os
import resource
import shutil
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[3]

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


def _read_loop(
    port: int, token: str, box: tuple[float, ...], seed: int, stop: Any, tally: Tally, pause: float = 0.0
) -> None:
    rng = np.random.default_rng(seed)
    west, south, east, north = box
    if pause and stop.wait(float(rng.uniform(0, pause))):  # readers start spread over one pause
        return
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
            if pause and stop.wait(pause):  # the user looks at the map before the next request
                break


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
    pause: float = 0.0,
) -> None:
    """``n`` reader threads from ``start`` until ``stop``, each waiting ``pause`` seconds after
    each answer; puts one result dict on ``out``."""
    tallies = [Tally() for _ in range(n)]
    threads = [
        threading.Thread(
            target=tallies[k].guard(_read_loop, port, token, box, seed * 1000 + k, stop, tallies[k], pause)
        )
        for k in range(n)
    ]
    total, cpu_s = _run_all(threads, tallies, ready, start)
    out.put({"role": "readers", "tally": total.to_dict(), "cpu_s": cpu_s, "commits": []})


# --------------------------------------------------------------------------- uploaders


class SiteFiles:
    """Small zipped GBK shapefiles of new illegal-construction sites inside the district."""

    def __init__(self, district_wkb: bytes, folder: Path, epsg: int | None = None) -> None:
        import shapely

        sys.path.insert(0, str(ROOT / "data"))
        import make_demo

        self.demo = make_demo
        self.epsg = epsg or make_demo.EPSG
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
            crs=self.epsg,
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
    port: int,
    name: str,
    token: str,
    index: int,
    files: SiteFiles,
    stop: Any,
    tally: Tally,
    commits: list,
    every: float = 0.0,
) -> None:
    from tests.helpers.builders import multipart  # geopandas: only the uploaders' process needs it

    rng = np.random.default_rng(7000 + index)
    round_no = 0
    # with ``every``, one round starts every ``every`` seconds (uploaders spread over the first)
    next_round = time.monotonic() + (float(rng.uniform(0, every)) if every else 0.0)
    while not stop.is_set():
        if every:
            if stop.wait(max(0.0, next_round - time.monotonic())):
                break
            next_round = max(next_round + every, time.monotonic())
        round_no += 1
        filename, payload, keys = files.build(index, round_no, rng)
        record: dict[str, Any] = {"uploader": name, "round": round_no, "keys": keys, "committed": False}
        commits.append(record)
        body, content_type = multipart(payload, filename, "application/zip", layer=LAYER)
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
    every: float = 0.0,
    epsg: int | None = None,
) -> None:
    """One thread per (name, token) in ``accounts`` from ``start`` until ``stop``, each starting
    one upload and commit every ``every`` seconds (0: the next as soon as the last is done);
    the files are in ``epsg`` (default: the demo's)."""
    files = SiteFiles(district_wkb, Path(folder), epsg)
    files.build(0, 0, np.random.default_rng(0))  # the writers' first use costs more: not in the run
    tallies = [Tally() for _ in accounts]
    commits: list[list[dict[str, Any]]] = [[] for _ in accounts]
    threads = [
        threading.Thread(
            target=tallies[k].guard(
                _upload_loop, port, name, token, k + 1, files, stop, tallies[k], commits[k], every
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
