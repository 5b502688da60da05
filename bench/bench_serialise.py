"""Statistics of every unit over HTTP: serialisation against the tally it serialises.

Run on demand (not a test):

    .venv/bin/python bench/bench_serialise.py                     # 40,000 cells, 300,000 points
    .venv/bin/python bench/bench_serialise.py --quick             # 4,000 cells, 50,000 points
    .venv/bin/python bench/bench_serialise.py --store /tmp/s      # build once into /tmp/s, reuse it later

Builds a store of ``--cells`` grid cells and ``--points`` illegal-construction points (the same
generated data as ``bench_engine.py``), starts the real app on 127.0.0.1 (a threaded werkzeug
server in this process, as ``bench_web.py`` does) and measures, warm:

* the in-process tally of the unit grid (``geo.figures.tally.tally``), all layers;
* ``GET /api/stats?level=<unit level>`` as CSV (code and Chinese headers), default JSON and the
  compact ``rows=arrays`` JSON, each plain and gzip-compressed, whole request over a
  keep-alive-free HTTP/1.0 connection, in rounds of: a real commit of one 停放点 point (every
  answer's state changes), the first request after it (the body rendered), a warm tally, the same
  request again (the body kept in the store cache), the request with ``If-None-Match`` (304);
* the same-run baseline: the serialisation path before Arrow (per-cell Python values through
  ``csv.writer`` and ``json.dumps`` of a dict per row), kept in this file, applied to the same
  report in-process;
* the naive way, per request: geopandas ``sjoin`` of the same points (generated again with
  the same seeds, held in memory) with the cells and a ``groupby`` per cell, as
  ``bench_engine.py`` measures it, in the first three rounds (``--no-sjoin`` leaves it out).

and prints each time, the ratios to the tally (target for the warm answer: ≤ 3×) and the naive
sjoin's ratio to each (target: ≥ 20×), with the load average at the start and the end.
"""

from __future__ import annotations

import argparse
import csv
import gc
import io
import json
import shutil
import statistics
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import geopandas as gpd
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import shapely
from bench_engine import EPSG, baseline_stats, make_cells, make_points, write_gbk
from werkzeug.serving import WSGIRequestHandler, make_server

from geo.figures.hierarchy import level_names
from geo.figures.report import build_report
from geo.figures.tally import tally
from geo.imports.importer import import_file
from geo.output.columnar import json_column, json_rows
from geo.output.tables import column_kind, csv_value, level_labels, plain_value, totals
from geo.output.to_csv import header_text
from geo.registry import grid_spec
from geo.store import accounts
from geo.store.backends import open_store
from server import create_app

TARGET = 3.0


class QuietHandler(WSGIRequestHandler):
    def log_request(self, *args: object, **kwargs: object) -> None:
        pass


def timed(fn: Callable[[], object], repeat: int) -> float:
    """Median seconds of ``repeat`` warm calls (one call first to warm up)."""
    fn()
    times = []
    for _ in range(repeat):
        gc.collect()
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


# --- the serialisation before the change (the same run's baseline) -----------------------


def old_records(table: Any) -> list[dict[str, Any]]:
    cols = [str(c) for c in table.columns]
    columns = [table[c].to_numpy(dtype=object) for c in table.columns]
    return [dict(zip(cols, (plain_value(v) for v in row), strict=True)) for row in zip(*columns, strict=True)]


def old_csv(report: Any, lv: str) -> bytes:
    table = report.levels[lv]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow([csv_value(header_text(report, str(c))) for c in table.columns])
    columns = []
    for c in table.columns:
        values = table[c]
        if column_kind(str(c), values) in ("rate", "progress"):
            values = values.astype("float64").round(3)
        columns.append(values.to_numpy(dtype=object))
    for row in zip(*columns, strict=True):
        writer.writerow([csv_value(v) for v in row])
    return buf.getvalue().encode("utf-8-sig")


def old_json(report: Any, lv: str) -> bytes:
    table = report.levels[lv]
    zh, en = level_labels(lv)
    doc = {
        "title": report.title,
        "as_of": report.as_of,
        "level": lv,
        "level_label": {"zh": zh, "en": en},
        "columns": {
            str(c): dict(zip(("zh", "en"), report.label(str(c)), strict=True)) for c in table.columns
        },
        "rows": old_records(table),
        "totals": {
            str(c): plain_value(v)
            for c, v in totals(table).items()
            if column_kind(str(c), table[c]) != "text"
        },
    }
    if report.provenance is not None:
        doc["metadata"] = report.provenance
    return json.dumps(doc, ensure_ascii=False, allow_nan=False).encode("utf-8")


def rows_join_before(table: Any) -> bytes:
    """The default JSON rows as ``geo.output.columnar.json_rows`` joined them before the rows were
    taken from one element-wise join (a keyed array per column, joined by ``, ``, then ``}``,
    then the rows as a list): the same bytes, kept here as the same-run baseline."""
    n = len(table)
    cols = [json_column(table[c]) for c in table.columns]
    keyed = []
    for i, (c, col) in enumerate(zip(table.columns, cols, strict=True)):
        key = ("{" if i == 0 else "") + json.dumps(str(c), ensure_ascii=False) + ": "
        keyed.append(pc.binary_join_element_wise(key, col, ""))
    rows = pc.binary_join_element_wise(*keyed, ", ")
    rows = pc.cast(pc.binary_join_element_wise(rows, "}", ""), pa.large_string())
    one = pa.LargeListArray.from_arrays(pa.array([0, n], type=pa.int64()), rows)
    return b"[" + pc.binary_join(one, pa.scalar(", ", pa.large_string()))[0].as_buffer().to_pybytes() + b"]"


# --- building the store ------------------------------------------------------------------


def build(folder: Path, cells_n: int, points_n: int) -> str:
    """A store of ``cells_n`` cells and ``points_n`` points in ``folder``; returns a viewer token."""
    work = folder.parent / (folder.name + "-in")
    cells = make_cells(cells_n)
    store = open_store(folder)
    try:
        import_file(store, "grid", write_gbk(cells, work / "grid.shp"))
        per_file = min(100_000, points_n)
        for k in range(max(1, points_n // per_file)):
            pts = make_points(per_file, cells.total_bounds, seed=10 + k, start_id=k * per_file)
            import_file(store, "demolition", write_gbk(pts, work / f"p{k}.shp"))
        accounts.add_user(store, "bench", "viewer", "bench-viewer-pass")
        token = accounts.create_token(store, "bench", "benchmark")[1]
    finally:
        store.close()
    shutil.rmtree(work, ignore_errors=True)
    (folder / "bench-token.txt").write_text(token)
    return token


def revalidate(url: str, token: str, tag: str, **headers: str) -> None:
    """A conditional request that must be answered 304 with no body."""
    req = urllib.request.Request(
        url, headers={"Authorization": "Bearer " + token, "If-None-Match": tag, **headers}
    )
    try:
        with urllib.request.urlopen(req, timeout=300) as resp:
            raise SystemExit(f"{url}: HTTP {resp.status}, not 304")
    except urllib.error.HTTPError as exc:
        if exc.code != 304:
            raise SystemExit(f"{url}: HTTP {exc.code}, not 304") from None
        if exc.read():
            raise SystemExit(f"{url}: a 304 with a body") from None


class Writer:
    """A small real commit per call (one new 停放点 point, a file of its own): what a surveyor's
    upload does to the state every answer depends on."""

    def __init__(self, folder: Path, bounds: Any):
        self.folder = folder
        self.work = Path(tempfile.mkdtemp(prefix="gridwatch-serbench-writes-"))
        self.bounds = bounds
        self.n = 0
        self.run = time.time_ns()  # a file of the same bytes as an earlier run's would not be written again

    def __call__(self) -> None:
        x0, y0, x1, y1 = self.bounds
        k = self.n
        self.n += 1
        frame = gpd.GeoDataFrame(
            {"编号": [f"TC{self.run}-{k:06d}"], "名称": [f"停放点{k}"], "状态": ["正常"]},
            geometry=gpd.points_from_xy([x0 + (x1 - x0) * ((k * 0.37) % 1)], [(y0 + y1) / 2]),
            crs=EPSG,
        )
        path = write_gbk(frame, self.work / f"w{k}" / "p.shp")
        with open_store(self.folder) as store:
            import_file(store, "parking", path)

    def close(self) -> None:
        shutil.rmtree(self.work, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cells", type=int, default=40_000)
    ap.add_argument("--points", type=int, default=300_000)
    ap.add_argument("--quick", action="store_true", help="4,000 cells and 50,000 points")
    ap.add_argument("--repeat", type=int, default=7, help="warm runs per measurement (median)")
    ap.add_argument("--store", type=Path, help="build the store here once and reuse it on later runs")
    ap.add_argument("--no-sjoin", action="store_true", help="leave out the naive sjoin baseline")
    args = ap.parse_args()
    if args.quick:
        args.cells, args.points = 4_000, 50_000
    tmp = None
    if args.store is None:
        tmp = Path(tempfile.mkdtemp(prefix="gridwatch-serbench-"))
        folder = tmp / "store"
    else:
        folder = args.store
    try:
        if (folder / "bench-token.txt").exists():
            token = (folder / "bench-token.txt").read_text()
            print(f"# reusing the store in {folder}")
        else:
            t0 = time.perf_counter()
            token = build(folder, args.cells, args.points)
            print(f"# store built in {time.perf_counter() - t0:.1f} s")
        naive = None if args.no_sjoin else naive_stats(args.cells, args.points)
        run(folder, token, args.repeat, naive)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


def naive_stats(cells_n: int, points_n: int) -> Callable[[], object]:
    """The naive per-request figures (sjoin + groupby) on the data the store was built from
    (generated again with the same seeds), ready to be timed."""
    cells = make_cells(cells_n)
    per_file = min(100_000, points_n)
    points = gpd.GeoDataFrame(
        pd.concat(
            [
                make_points(per_file, cells.total_bounds, seed=10 + k, start_id=k * per_file)
                for k in range(max(1, points_n // per_file))
            ],
            ignore_index=True,
        ),
        crs=cells.crs,
    )
    return lambda: baseline_stats(points, cells)


def get(url: str, token: str, **headers: str) -> tuple[bytes, str]:
    """The body of ``url`` (read whole) and its ETag."""
    req = urllib.request.Request(url, headers={"Authorization": "Bearer " + token, **headers})
    with urllib.request.urlopen(req, timeout=300) as resp:
        if resp.status != 200:
            raise SystemExit(f"{url}: HTTP {resp.status}")
        return bytes(resp.read()), str(resp.headers.get("ETag", ""))


def _loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def run(folder: Path, token: str, repeat: int, naive: Callable[[], object] | None = None) -> None:
    unit = level_names()[0]
    store = open_store(folder)
    app = create_app({"GRIDWATCH_DATA": str(folder)})
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=QuietHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}/api/stats?level={unit}"
    grid = store.read_geometry(grid_spec())[1]
    writer = Writer(folder, shapely.total_bounds(grid))
    print(f"# load average at the start: {_loadavg()}")
    try:
        rows = len(tally(store, unit))
        report = build_report(store, [unit])
        report.headers = "code"
        t_old_csv = timed(lambda: old_csv(report, unit), repeat)
        t_old_json = timed(lambda: old_json(report, unit), repeat)
        t_report = timed(lambda: build_report(store, [unit]), repeat)
        print(
            f"# {rows:,} units at level {unit!r}; medians of {repeat} rounds, each: a commit of one 停放点 point,"
        )
        print(
            "# the first request after it (body rendered), a warm tally, the request again (body kept), the"
        )
        print("# request with If-None-Match (304); the naive sjoin in the first three rounds")
        print(f"the whole report in-process (tally and provenance): {t_report * 1000:,.1f} ms")
        print(
            f"the serialisation before Arrow (same run, in-process): CSV {t_old_csv * 1000:,.0f} ms, "
            f"JSON {t_old_json * 1000:,.0f} ms"
        )
        table = report.levels[unit]
        if rows_join_before(table) != json_rows(table):
            raise SystemExit("the default JSON rows differ from those of the join before")
        t_rows_now = timed(lambda: json_rows(table), repeat)
        t_rows_before = timed(lambda: rows_join_before(table), repeat)
        print(
            f"default JSON rows in-process: {t_rows_now * 1000:,.0f} ms, with the join before "
            f"{t_rows_before * 1000:,.0f} ms (same bytes; {t_rows_before / t_rows_now:.1f}×)"
        )
        gz = {"Accept-Encoding": "gzip"}
        cases = [
            ("CSV", f"{base}&format=csv", {}),
            ("CSV, Chinese headers", f"{base}&format=csv&headers=zh", {}),
            ("JSON, default shape", f"{base}&format=json", {}),
            ("JSON, default shape, gzip", f"{base}&format=json", gz),
            ("JSON, rows=arrays", f"{base}&format=json&rows=arrays", {}),
            ("JSON, rows=arrays, gzip", f"{base}&format=json&rows=arrays", gz),
        ]
        if naive is not None:
            naive()
        print(
            "| what | size | tally | first after a write | warm (body kept) | 304 | "
            "rendered / tally | warm / tally (target ≤ 3×) | naive sjoin | sjoin / rendered | sjoin / warm "
            "(target ≥ 20×) | sjoin / 304 |"
        )
        print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        for name, url, headers in cases:
            size = len(get(url, token, **headers)[0])
            t: dict[str, list[float]] = {"tally": [], "rendered": [], "warm": [], "304": [], "naive": []}
            before = get(url, token, **headers)[1]
            for k in range(repeat):
                writer()
                gc.collect()
                t0 = time.perf_counter()
                _body, tag = get(url, token, **headers)
                t["rendered"].append(time.perf_counter() - t0)
                if tag == before:
                    raise SystemExit(f"{url}: the same tag after a commit")
                before = tag
                t0 = time.perf_counter()
                tally(store, unit)
                t["tally"].append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                _body, again = get(url, token, **headers)
                t["warm"].append(time.perf_counter() - t0)
                if not tag or again != tag:
                    raise SystemExit(f"{url}: no tag or a changed tag without a write ({tag!r}, {again!r})")
                t0 = time.perf_counter()
                revalidate(url, token, tag, **headers)
                t["304"].append(time.perf_counter() - t0)
                if naive is not None and k < 3:
                    t0 = time.perf_counter()
                    naive()
                    t["naive"].append(time.perf_counter() - t0)
            med = {key: statistics.median(v) if v else float("nan") for key, v in t.items()}
            n = len(t["naive"])

            def ratio(a: str, b: str, n: int = repeat, t: dict[str, list[float]] = t) -> float:
                return statistics.median(x / y for x, y in zip(t[a][:n], t[b][:n], strict=True))

            warm = ratio("warm", "tally")
            naive_cols = "— | — | — | —"
            if n:
                sw = ratio("naive", "warm", n)
                naive_cols = (
                    f"{med['naive'] * 1000:,.0f} ms | {ratio('naive', 'rendered', n):,.1f}× | "
                    f"{sw:,.1f}× ({'met' if sw >= 20 else 'NOT met'}) | {ratio('naive', '304', n):,.0f}×"
                )
            print(
                f"| {name} | {size / 1024 / 1024:,.2f} MB | {med['tally'] * 1000:,.1f} ms "
                f"| {med['rendered'] * 1000:,.0f} ms | {med['warm'] * 1000:,.1f} ms | {med['304'] * 1000:,.1f} ms "
                f"| {ratio('rendered', 'tally'):.2f}× | {warm:.2f}× ({'met' if warm <= TARGET else 'NOT met'}) "
                f"| {naive_cols} |",
                flush=True,
            )
        print(f"# load average at the end: {_loadavg()}")
    finally:
        server.shutdown()
        store.close()
        writer.close()


if __name__ == "__main__":
    sys.exit(main())
