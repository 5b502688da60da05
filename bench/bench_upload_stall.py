"""Does a 100 MB upload stall other users' map requests?  Measured under gunicorn.

Run on demand (not a test):

    .venv/bin/python bench/bench_upload_stall.py                        # 40,000 cells, 1,000,000 points, 100 MB
    .venv/bin/python bench/bench_upload_stall.py --cells 4000 --points 100000 --upload-mb 20   # quick look

Builds a store, starts gunicorn with the sample settings (deploy/gunicorn.conf.py, bound to
127.0.0.1), and keeps ``--readers`` clients asking for map data (unit outlines with figures
and survey features for random viewports, zoom 12–16) the whole time.  Their latency is
measured in phases, in the same run:

1. baseline: no upload;
2. upload: a zipped shapefile of about ``--upload-mb`` MB is sent to ``POST /api/uploads``
   and read into the import report (transfer, staging, parsing, assignment);
3. commit: ``POST /api/uploads/<id>/commit`` writes the batch;
4. after: the first requests after the write (caches refill for the new revision).

A request "stalls" when it waits for the upload instead of being served beside it; the
figures to look at are the p95 and the longest wait of phase 2 against phase 1.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyproj

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_engine import make_cells, make_points, write_gbk
from bench_web import view_bbox

from geo.imports.importer import import_file
from geo.store import accounts
from geo.store.backends import open_store
from tests.helpers.load.server import free_port, gunicorn, gunicorn_settings

ROOT = Path(__file__).resolve().parent.parent


def make_upload(cells_bounds: np.ndarray, megabytes: float, folder: Path) -> Path:
    """A zip (stored, as field offices send them) of a GBK shapefile of about ``megabytes`` MB."""
    sample = write_gbk(make_points(2_000, cells_bounds, seed=99), folder / "sample" / "s.shp")
    per_row = sum(p.stat().st_size for p in sample.parent.iterdir()) / 2_000
    n = int(megabytes * 1024 * 1024 / per_row)
    shp = write_gbk(
        make_points(n, cells_bounds, seed=77, start_id=50_000_000), folder / "up" / "违法建设.shp"
    )
    zpath = folder / "upload.zip"
    with zipfile.ZipFile(zpath, "w", zipfile.ZIP_STORED) as zf:
        for part in sorted(shp.parent.iterdir()):
            zf.write(part, part.name)
    return zpath


def multipart(path: Path, layer: str) -> tuple[str, int, Iterator[bytes]]:
    """A streamed multipart/form-data body: (content type, length, chunks)."""
    boundary = "gridwatchbench" + os.urandom(8).hex()
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="layer"\r\n\r\n{layer}\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{path.name}"\r\n'
        "Content-Type: application/zip\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    size = len(head) + path.stat().st_size + len(tail)

    def chunks() -> Iterator[bytes]:
        yield head
        with open(path, "rb") as f:
            while block := f.read(1 << 20):
                yield block
        yield tail

    return f"multipart/form-data; boundary={boundary}", size, chunks()


class Readers:
    """``n`` threads asking for map data until stopped; every request's end time and latency."""

    def __init__(self, base: str, n: int, bounds: tuple[float, float, float, float], auth: str) -> None:
        self.base = base
        self.auth = auth
        self.bounds = bounds
        self.samples: list[tuple[float, float, int]] = []  # (end time, seconds, HTTP status)
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(k,), daemon=True) for k in range(n)]

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def join(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join()

    def _run(self, k: int) -> None:
        rng = np.random.default_rng(100 + k)
        to_lonlat = pyproj.Transformer.from_crs(4548, 4326, always_xy=True)
        minx, miny, maxx, maxy = self.bounds
        while not self.stop.is_set():
            zoom = int(rng.integers(12, 17))
            lon, lat = to_lonlat.transform(rng.uniform(minx, maxx), rng.uniform(miny, maxy))
            bbox = view_bbox(lon, lat, zoom)
            level = "community" if zoom < 15 else "grid"
            for url in (
                f"{self.base}/api/cells?level={level}&layer=demolition&zoom={zoom}&bbox={bbox}",
                f"{self.base}/api/features/demolition?zoom={zoom}&bbox={bbox}",
            ):
                t0 = time.perf_counter()
                try:
                    req = urllib.request.Request(url, headers={"Authorization": self.auth})
                    with urllib.request.urlopen(req, timeout=600) as resp:
                        resp.read()
                        status = resp.status
                except urllib.error.HTTPError as exc:
                    status = exc.code
                except OSError:
                    status = 0
                t1 = time.perf_counter()
                with self.lock:
                    self.samples.append((t1, t1 - t0, status))

    def between(self, start: float, end: float) -> list[tuple[float, float, int]]:
        """Requests that were in flight at some moment of [start, end]."""
        with self.lock:
            return [s for s in self.samples if s[0] >= start and s[0] - s[1] <= end]


def summary(name: str, samples: list[tuple[float, float, int]], base_p50: float | None = None) -> float:
    times = sorted(s[1] * 1000 for s in samples)
    bad = sum(1 for s in samples if s[2] != 200)
    if not times:
        print(f"{name:9s}: no requests")
        return 0.0
    p50 = statistics.median(times)
    p95 = times[min(len(times) - 1, int(0.95 * len(times)))]
    ratio = f" ({p50 / base_p50:.2f}x baseline p50)" if base_p50 else ""
    print(
        f"{name:9s}: {len(times):5d} requests, p50 {p50:7.1f} ms{ratio}, p95 {p95:7.1f} ms, "
        f"longest {times[-1]:7.1f} ms, not 200: {bad}"
    )
    return p50


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cells", type=int, default=40_000)
    ap.add_argument("--points", type=int, default=1_000_000)
    ap.add_argument("--upload-mb", type=float, default=100.0)
    ap.add_argument("--readers", type=int, default=4)
    ap.add_argument("--baseline-s", type=float, default=20.0)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="gridwatch-stallbench-"))
    stack = contextlib.ExitStack()
    print(
        f"# gridwatch upload-stall benchmark: {args.cells:,} cells, {args.points:,} points, "
        f"{args.upload_mb:.0f} MB upload, {args.readers} readers"
    )
    try:
        cells = make_cells(args.cells)
        store = open_store(work / "store")
        import_file(store, "grid", write_gbk(cells, work / "in" / "grid.shp"))
        per_file = min(100_000, args.points)
        for k in range(max(1, args.points // per_file)):
            pts = make_points(per_file, cells.total_bounds, seed=10 + k, start_id=k * per_file)
            import_file(store, "demolition", write_gbk(pts, work / "in" / f"p{k}.shp"))
        accounts.add_user(store, "reader", "viewer", "bench-reader-pass")
        accounts.add_user(store, "surveyor", "surveyor", "bench-surveyor-pass")
        reader_auth = "Bearer " + accounts.create_token(store, "reader", "benchmark")[1]
        surveyor_auth = "Bearer " + accounts.create_token(store, "surveyor", "benchmark")[1]
        store.close()
        upload = make_upload(cells.total_bounds, args.upload_mb, work / "upload")
        print(f"upload file: {upload.stat().st_size / 1024 / 1024:,.1f} MB (zip of a GBK shapefile)")

        port = free_port()
        stack.enter_context(gunicorn(work / "store", port, None, work / "gunicorn.log", reader_auth[7:]))
        base = f"http://127.0.0.1:{port}"
        settings = gunicorn_settings()
        print(
            f"gunicorn: {settings['workers']} workers x {settings['threads']} threads ({settings['worker_class']})"
        )

        readers = Readers(base, args.readers, tuple(cells.total_bounds), reader_auth)
        readers.start()
        time.sleep(15)  # every worker fills its caches
        t_base0 = time.perf_counter()
        time.sleep(args.baseline_s)
        t_base1 = time.perf_counter()

        content_type, size, body = multipart(upload, "demolition")
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1800)
        t_up0 = time.perf_counter()
        conn.request(
            "POST",
            "/api/uploads",
            body=body,
            headers={
                "Content-Type": content_type,
                "Content-Length": str(size),
                "Authorization": surveyor_auth,
            },
        )
        resp = conn.getresponse()
        report = json.loads(resp.read())
        t_up1 = time.perf_counter()
        if resp.status != 201:
            raise SystemExit(f"upload answered {resp.status}: {report}")
        conn.request(
            "POST",
            f"/api/uploads/{report['upload_id']}/commit",
            body=b"",
            headers={"Authorization": surveyor_auth},
        )
        resp = conn.getresponse()
        committed = json.loads(resp.read())
        t_c1 = time.perf_counter()
        if resp.status != 200:
            raise SystemExit(f"commit answered {resp.status}: {committed}")
        time.sleep(10)
        t_after1 = time.perf_counter()
        readers.join()

        print(
            f"upload + report: {t_up1 - t_up0:.1f} s ({report['accepted']:,} features accepted); "
            f"commit: {t_c1 - t_up1:.1f} s (batch {committed['batch_id']}, {committed['added']:,} added)"
        )
        p50 = summary("baseline", readers.between(t_base0, t_base1))
        summary("upload", readers.between(t_up0, t_up1), p50)
        summary("commit", readers.between(t_up1, t_c1), p50)
        summary("after", readers.between(t_c1, t_after1), p50)
        total = sum(1 for s in readers.samples if s[2] != 200)
        print(f"requests answered with anything but 200 over the whole run: {total}")
    finally:
        stack.close()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
