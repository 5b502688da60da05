"""Web map benchmark: page weight and viewport responses at 40,000 cells and 1,000,000 features.

Run on demand (not a test):

    .venv/bin/python bench/bench_web.py                          # 40,000 cells, 1,000,000 points
    .venv/bin/python bench/bench_web.py --cells 4000 --points 100000   # quick look

Starts the real app on 127.0.0.1 (a threaded development server in this process), asks for
the map page and for the viewport data the page's script asks for (unit outlines with
figures, survey features) at every zoom level from 11 to 18, and compares with the naive
page a Folium user would build: every cell and every feature embedded in the HTML,
measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import folium
import numpy as np
import pyproj

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_engine import make_cells, make_points, write_gbk
from werkzeug.serving import WSGIRequestHandler, make_server

from geo.imports.importer import import_file
from geo.store import accounts
from geo.store.backends import open_store
from server import create_app

VIEW_W, VIEW_H = 1300, 850  # browser viewport in pixels


class QuietHandler(WSGIRequestHandler):
    def log_request(self, *args: object, **kwargs: object) -> None:
        pass


def view_bbox(lon: float, lat: float, zoom: int) -> str:
    """The lon/lat box a VIEW_W x VIEW_H map centred on (lon, lat) shows at ``zoom``."""
    deg_per_px = 360.0 / (256 * 2**zoom)
    half_w = VIEW_W / 2 * deg_per_px
    half_h = VIEW_H / 2 * deg_per_px * np.cos(np.radians(lat))
    return f"{lon - half_w:.6f},{lat - half_h:.6f},{lon + half_w:.6f},{lat + half_h:.6f}"


#: ``Authorization`` header of the benchmark's viewer account (an API token).
AUTH: dict[str, str] = {}


def fetch(url: str) -> tuple[float, int, bytes]:
    t0 = time.perf_counter()
    with urllib.request.urlopen(urllib.request.Request(url, headers=AUTH), timeout=120) as resp:
        body = resp.read()
    return time.perf_counter() - t0, len(body), body


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--cells", type=int, default=40_000)
    ap.add_argument("--points", type=int, default=1_000_000)
    ap.add_argument("--views", type=int, default=15, help="viewports per zoom level")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="gridwatch-webbench-"))
    print(f"# gridwatch web benchmark: {args.cells:,} cells, {args.points:,} points")
    try:
        cells = make_cells(args.cells)
        store = open_store(work / "store")
        import_file(store, "grid", write_gbk(cells, work / "in" / "grid.shp"))
        per_file = min(100_000, args.points)
        frames = []
        for k in range(max(1, args.points // per_file)):
            pts = make_points(per_file, cells.total_bounds, seed=10 + k, start_id=k * per_file)
            frames.append(pts)
            import_file(store, "demolition", write_gbk(pts, work / "in" / f"p{k}.shp"))
        accounts.add_user(store, "bench", "viewer", "bench-viewer-pass")
        AUTH["Authorization"] = "Bearer " + accounts.create_token(store, "bench", "benchmark")[1]
        store.close()
        app = create_app({"GRIDWATCH_DATA": str(work / "store")})
        server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=QuietHandler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        base = f"http://127.0.0.1:{server.server_port}"
        t_page, page_size, _ = fetch(f"{base}/?tiles=none&level=community&layer=demolition")
        t_page2, _, _ = fetch(f"{base}/?tiles=none&level=community&layer=demolition")
        print(
            f"map page: {page_size / 1024:,.1f} KB (target ≤ 300 KB: {'met' if page_size <= 300 * 1024 else 'NOT met'}); "
            f"first {t_page * 1000:,.0f} ms, then {t_page2 * 1000:,.0f} ms"
        )

        to_lonlat = pyproj.Transformer.from_crs(4548, 4326, always_xy=True)
        minx, miny, maxx, maxy = cells.total_bounds
        rng = np.random.default_rng(3)
        worst_size = 0
        rows = []
        # the first viewport request after start-up loads the per-process caches
        lon0, lat0 = to_lonlat.transform((minx + maxx) / 2, (miny + maxy) / 2)
        t_cold, _, _ = fetch(f"{base}/api/features/demolition?zoom=12&bbox={view_bbox(lon0, lat0, 12)}")
        t_cold_cells, _, _ = fetch(
            f"{base}/api/cells?level=community&layer=demolition&zoom=12&bbox={view_bbox(lon0, lat0, 12)}"
        )
        print(
            f"first viewport requests after start-up (caches filling): features {t_cold * 1000:,.0f} ms, "
            f"cells {t_cold_cells * 1000:,.0f} ms"
        )
        for zoom in range(11, 19):
            level = "community" if zoom < 15 else "grid"  # what the map page offers at that zoom
            times, sizes = [], []
            for _ in range(args.views):
                x = rng.uniform(minx, maxx)
                y = rng.uniform(miny, maxy)
                lon, lat = to_lonlat.transform(x, y)
                bbox = view_bbox(lon, lat, zoom)
                for url in (
                    f"{base}/api/cells?level={level}&layer=demolition&zoom={zoom}&bbox={bbox}",
                    f"{base}/api/features/demolition?zoom={zoom}&bbox={bbox}",
                ):
                    t, size, body = fetch(url)
                    times.append(t)
                    sizes.append(size)
                    json.loads(body)
            worst_size = max(worst_size, max(sizes))
            p50 = statistics.median(times) * 1000
            rows.append((zoom, level, p50, max(times) * 1000, max(sizes) / 1024))
            print(
                f"zoom {zoom:2d} ({level:9s}): p50 {p50:6.1f} ms, max {max(times) * 1000:6.1f} ms, "
                f"largest response {max(sizes) / 1024:7.1f} KB"
            )
        ok_size = worst_size <= 1024 * 1024
        ok_time = all(r[2] <= 200 for r in rows)
        print(
            f"every viewport response ≤ 1 MB: {'met' if ok_size else 'NOT met'} (largest {worst_size / 1024:,.1f} KB); "
            f"p50 ≤ 200 ms at every zoom: {'met' if ok_time else 'NOT met'}"
        )
        server.shutdown()

        # the naive page: everything embedded
        t0 = time.perf_counter()
        m = folium.Map(location=[lat0, lon0], zoom_start=13, tiles=None)
        folium.GeoJson(cells.to_crs(4326).__geo_interface__).add_to(m)
        pts = frames[0].to_crs(4326) if len(frames) == 1 else None
        lonlat = np.concatenate(
            [np.column_stack(to_lonlat.transform(f.geometry.x, f.geometry.y)) for f in frames]
        )
        folium.GeoJson(
            {
                "type": "FeatureCollection",
                "features": [
                    {
                        "type": "Feature",
                        "geometry": {"type": "Point", "coordinates": [round(a, 7), round(b, 7)]},
                        "properties": {},
                    }
                    for a, b in lonlat.tolist()
                ],
            }
        ).add_to(m)
        del pts
        naive = m.get_root().render().encode()
        t_naive = time.perf_counter() - t0
        print(
            f"naive Folium page with everything embedded: {len(naive) / 1024 / 1024:,.1f} MB, built in {t_naive:.1f} s "
            f"→ the map page is {len(naive) / page_size:,.0f}x smaller"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
