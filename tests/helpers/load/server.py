"""The stage of a load run: a fresh store with the run's accounts and API tokens, and gunicorn
serving it with the sample settings (deploy/gunicorn.conf.py).

The store is the demo district (2,000 sites), or a copy of a large base store built once by
:func:`build_base` (``cells`` unit grids and ``points`` illegal-construction points, generated
by :mod:`~tests.helpers.load.generate` as bench/bench_engine.py does) in a GeoPackage or in a
PostGIS database of a throw-away cluster (scripts/postgres.sh), kept in a folder that later
runs reuse."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.helpers.load.clients import LAYER, request

ROOT = Path(__file__).resolve().parents[3]


#: The user the base store's imports are recorded under (the batch register check expects it).
BASE_USER = "demo"


@dataclass
class Base:
    """A built base store: the backend, its size, where it is and the folder it was built in."""

    backend: str  # gpkg or postgis
    cells: int
    points: int
    folder: Path  # the folder of the build (the GeoPackage's data folder or the cluster's)
    location: str  # the GeoPackage file, or the URL of the base database
    polygons: int = 0  # small polygons beside the points

    @property
    def label(self) -> str:
        return f"{self.backend}, {self.cells:,} cells, {self.points:,} points + {self.polygons:,} polygons"


@dataclass
class Setup:
    data: Path
    demo_keys: list[str]  # the demo's keys (empty for a large base: it is counted, not listed)
    base_count: int  # features of the layer before the run
    store: str  # what GRIDWATCH_STORE names ("" for the GeoPackage in ``data``)
    district_wkb: bytes
    box: tuple[float, float, float, float]  # district bounds, lon/lat
    surveyors: list[tuple[str, str]]  # (account name, token secret)
    viewer: str
    admin: str
    epsg: int = 4548  # the store's coordinate system, in which the uploaders' files are


def _cluster_url(folder: Path, db: str) -> str:
    return f"postgresql://gridwatch@/{db}?host={folder}"


def start_cluster(folder: Path) -> str:
    """Start (or restart) the throw-away PostgreSQL cluster kept in ``folder``: its admin URL."""
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o755)  # as root the server runs as postgres, which must reach the socket
    started = subprocess.run(
        ["bash", str(ROOT / "scripts" / "postgres.sh"), "start", str(folder)], capture_output=True, text=True
    )
    if started.returncode != 0:
        raise RuntimeError(f"PostgreSQL could not start: {started.stderr.strip()[:300]}")
    return started.stdout.strip()


def stop_cluster(folder: Path) -> None:
    """Stop the cluster kept in ``folder`` (its files stay for the next run)."""
    subprocess.run(["bash", str(ROOT / "scripts" / "postgres.sh"), "stop", str(folder)], capture_output=True)


def build_base(
    folder: Path, backend: str, cells: int, points: int, log: Callable[[str], None] = print
) -> Base:
    """A base store of ``cells`` unit grids and ``points`` demolition points, and 1% as many
    small polygons, in ``folder`` (``folder/gpkg`` or a cluster in ``folder/pg``), built once:
    a later call with the same size finds it (``folder/<backend>.json``) and builds nothing.
    A PostGIS cluster is left running (:func:`stop_cluster`)."""
    from geo.imports.importer import import_file
    from geo.store.backends import open_store
    from geo.store.interface.audit import Actor
    from tests.helpers.load.generate import make_cells, make_points, write_gbk

    folder = folder.resolve()
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o755)
    marker = folder / f"{backend}.json"
    where = folder / ("gpkg" if backend == "gpkg" else "pg")
    if backend == "postgis":
        admin = start_cluster(where)
    built = json.loads(marker.read_text()) if marker.exists() else None
    if built is not None and (built["cells"], built["points"]) != (cells, points):
        raise RuntimeError(
            f"{folder} holds a {backend} store of {built['cells']:,} cells and {built['points']:,} points, "
            f"not {cells:,} and {points:,}: give another --store"
        )
    t0 = time.perf_counter()
    files = folder / "files"
    grid_cells = None if built else make_cells(cells)
    n_polygons = max(1, points // 100)
    polygons = files / "polygons.shp"
    if not polygons.exists():
        grid_cells = grid_cells if grid_cells is not None else make_cells(cells)
        squares = make_points(n_polygons, grid_cells.total_bounds, seed=9, start_id=90_000_000)
        squares.geometry = squares.geometry.buffer(3.0, cap_style="square")
        write_gbk(squares, polygons)
    if built is None:
        assert grid_cells is not None
        grid = files / "grid.shp"
        if not grid.exists():
            write_gbk(grid_cells, grid)
        per_file = min(100_000, points)
        parts = []
        for k in range(max(1, points // per_file)):
            part = files / f"d{k:03d}.shp"
            if not part.exists():
                frame = make_points(per_file, grid_cells.total_bounds, seed=10 + k, start_id=k * per_file)
                write_gbk(frame, part)
            parts.append(part)
        if backend == "gpkg":
            shutil.rmtree(where, ignore_errors=True)
            location, store_args = str(where / "gridwatch.gpkg"), {}
            target: Any = where
        else:
            import psycopg

            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute("DROP DATABASE IF EXISTS gw_load_base WITH (FORCE)")
                conn.execute("CREATE DATABASE gw_load_base")
            location = _cluster_url(where, "gw_load_base")
            with psycopg.connect(location, autocommit=True) as conn:
                conn.execute("SET client_min_messages = warning")
                conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
            shutil.rmtree(folder / "pg-data", ignore_errors=True)
            target, store_args = location, {"data": folder / "pg-data"}
        with open_store(target, **store_args) as store:
            store.actor = Actor("bench_load", "cli")
            import_file(store, "grid", grid, user=BASE_USER)
            for k, part in enumerate(parts):
                import_file(store, LAYER, part, user=BASE_USER)
                log(f"  {backend}: {(k + 1) * per_file:,} points imported ({time.perf_counter() - t0:.0f} s)")
        built = {"cells": cells, "points": points, "location": location, "seconds": time.perf_counter() - t0}
        marker.write_text(json.dumps(built))
    else:
        log(f"store: reusing {backend} base in {folder} ({built['seconds']:.0f} s to build)")
    if not built.get("polygons"):
        # the layer holds points and polygons, as a surveyed one does (the demo's too): its
        # geometry column is declared for both before the run, so that the uploaders' polygons
        # do not widen it (on PostGIS that rewrites the table)
        location = built["location"]
        target = location if backend == "postgis" else Path(location).parent
        store_args = {"data": folder / "pg-data"} if backend == "postgis" else {}
        with open_store(target, **store_args) as store:
            store.actor = Actor("bench_load", "cli")
            import_file(store, LAYER, polygons, user=BASE_USER)
        built["polygons"] = n_polygons
        built["seconds"] += time.perf_counter() - t0
        marker.write_text(json.dumps(built))
        log(
            f"store: {backend} base in {folder}: {n_polygons:,} polygons added ({time.perf_counter() - t0:.0f} s)"
        )
    return Base(backend, cells, points, where, built["location"], int(built["polygons"]))


def stage_base(base: Base, work: Path) -> tuple[Path, str]:
    """A copy of ``base`` for one run (the run writes to it): its data folder and what
    GRIDWATCH_STORE names ("" when the GeoPackage is in the data folder)."""
    data = work / "store"
    if base.backend == "gpkg":
        shutil.copytree(base.folder, data)
        return data, ""
    import psycopg

    db = f"gw_load_{os.getpid()}_{secrets.token_hex(3)}"
    with psycopg.connect(_cluster_url(base.folder, "gridwatch"), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {db} TEMPLATE gw_load_base")
    source = base.folder.parent / "pg-data"
    if source.exists():
        shutil.copytree(source, data)
    data.mkdir(parents=True, exist_ok=True)
    return data, _cluster_url(base.folder, db)


def drop_stage(base: Base, store: str) -> None:
    """Drop the run's database (PostGIS); the GeoPackage copy goes with the run's folder."""
    if base.backend != "postgis" or not store:
        return
    import psycopg

    db = store.split("/")[-1].split("?")[0]
    with psycopg.connect(_cluster_url(base.folder, "gridwatch"), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")


def prepare_store(data: Path, n_uploaders: int, store_url: str | None = None) -> Setup:
    """The run's store with its accounts and tokens: the demo district loaded into a fresh
    store at ``data``, or (``store_url`` given, "" for the GeoPackage in ``data``) a staged
    copy of a base store (:func:`stage_base`)."""
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
    demo = store_url is None
    where: Any = store_url or data
    with open_store(where, **({"data": data} if store_url else {})) as store:
        store.actor = Actor("bench_load", "cli")
        if demo:
            # what `gridwatch demo` loads, in its order
            for layer, name, valid_from in demo_files(DEMO_DIR):
                import_file(store, layer, DEMO_DIR / name, user=BASE_USER, valid_from=valid_from)
            load_targets(store, DEMO_DIR / "targets.csv", user=BASE_USER)
        surveyors = []
        for k in range(1, n_uploaders + 1):
            name = f"load-surveyor-{k:02d}"
            accounts.add_user(store, name, "surveyor", password)
            surveyors.append((name, accounts.create_token(store, name, "load test")[1]))
        accounts.add_user(store, "load-viewer", "viewer", password)
        viewer = accounts.create_token(store, "load-viewer", "load test")[1]
        accounts.add_user(store, "load-admin", "admin", password)
        admin = accounts.create_token(store, "load-admin", "load test checks")[1]
        keys = store.read_attributes(layers.get(LAYER), ["gw_key"])["gw_key"].tolist() if demo else []
        base_count = store.layer_count(layers.get(LAYER))
        grid = load_grid(store)
        srs = store.srs_epsg()
    if grid is None or srs is None:
        raise RuntimeError("the demo district did not load")
    # sites go at least a metre inside the district, so none falls outside every unit grid
    district = shapely.buffer(shapely.union_all(grid.cells), -1.0)
    to_lonlat = pyproj.Transformer.from_crs(srs, 4326, always_xy=True)
    west, south, east, north = (float(v) for v in to_lonlat.transform_bounds(*district.bounds))
    return Setup(
        data,
        keys,
        base_count,
        store_url or "",
        shapely.to_wkb(district),
        (west, south, east, north),
        surveyors,
        viewer,
        admin,
        int(srs),
    )


#: gunicorn's access log line of a load run: worker pid, method, path, status, microseconds.
ACCESS_FORMAT = "%(p)s %(m)s %(U)s %(s)s %(D)s"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def gunicorn_settings() -> dict[str, Any]:
    settings: dict[str, Any] = {}
    exec((ROOT / "deploy" / "gunicorn.conf.py").read_text(), settings)
    return settings


@contextlib.contextmanager
def gunicorn(
    data: Path,
    port: int,
    workers: int | None,
    log: Path,
    token: str,
    store: str = "",
    access: Path | None = None,
) -> Iterator[int]:
    """gunicorn with deploy/gunicorn.conf.py on 127.0.0.1:``port`` (``workers`` overriding the
    sample settings when given): yields the master's pid; errors go to ``log``, and with
    ``access`` one line per request there: worker pid, method, path, status, microseconds
    in the worker (:data:`ACCESS_FORMAT`)."""
    cmd = [
        str(Path(sys.executable).parent / "gunicorn"),
        "-c",
        str(ROOT / "deploy" / "gunicorn.conf.py"),
        "--bind",
        f"127.0.0.1:{port}",
        "--access-logfile",
        str(access or "/dev/null"),
        "--access-logformat",
        ACCESS_FORMAT,
        "--error-logfile",
        str(log),
    ]
    if workers:
        cmd += ["--workers", str(workers)]
    env = {**os.environ, "GRIDWATCH_DATA": str(data), "GRIDWATCH_TILES": "none"}
    if store:
        env["GRIDWATCH_STORE"] = store
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
