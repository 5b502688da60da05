"""The stage of a load run: the demo district in a fresh store with the run's accounts and API
tokens, and gunicorn serving it with the sample settings (deploy/gunicorn.conf.py)."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.helpers.load.clients import LAYER, request

ROOT = Path(__file__).resolve().parents[3]


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
        for layer, name, valid_from in demo_files(DEMO_DIR):
            import_file(store, layer, DEMO_DIR / name, user="demo", valid_from=valid_from)
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
