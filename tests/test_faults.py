"""Faults a store meets in service: the server killed in the middle of a commit, a full disk and a
read-only store.

After each of them the store opens and passes ``PRAGMA integrity_check``; every batch is whole or
absent; the tallies at every level equal a recount of the raw rows (and of a fresh point-in-polygon
assignment with the grid); the audit trail holds one ``import`` entry per committed import.  A
write that cannot be done is refused with one clear bilingual message -- exit status 2 from the
command line, a 503 JSON error from the API -- never a traceback and never a half-written batch.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj
import pytest
import shapely

import layers
from geo.figures.hierarchy import level_names
from geo.figures.tally import tally
from geo.imports.importer import import_file
from geo.store import accounts
from geo.store.base import STORE_FILE
from layers.base import UNASSIGNED
from tests.helpers import postgis as pgtest
from tests.helpers.builders import EPSG_GK, X0, Y0, grid_frame, multipart, write_shp, zip_shp
from tests.helpers.postgis import open_test_store

#: the kill and restart tests run on both backends (their fixture ``store_url``)
pytestmark = pytest.mark.backends

ROOT = Path(__file__).resolve().parent.parent
GUNICORN = Path(sys.executable).parent / "gunicorn"
_CLI = Path(sys.executable).with_name("gridwatch")
GRIDWATCH = [str(_CLI)] if _CLI.exists() else [sys.executable, "-m", "geo.cli"]
DEMOLITION = layers.get("demolition")
#: Features per staged upload in the kill test: their commit takes a few tenths of a second.
KILL_FEATURES = 10_000
#: Features of the files that do not fit on the full disk (the GeoPackage grows by about 1.5 MB).
FULL_FEATURES = 10_000
NOBODY = 65534

needs_gunicorn = pytest.mark.skipif(not GUNICORN.exists(), reason="gunicorn is not installed")


# --- survey files -----------------------------------------------------------------------------


def _survey(n: int, seed: int, prefix: str) -> gpd.GeoDataFrame:
    """``n`` new sites (survey ids ``<prefix>000000`` …), most inside the 3 x 3 test grid and about
    one in five outside every cell; statuses registered or demolished, integer areas."""
    rng = np.random.default_rng(seed)
    x = X0 + rng.uniform(-20, 320, n)
    y = Y0 - rng.uniform(-20, 320, n)
    return gpd.GeoDataFrame(
        {
            "案件编号": [f"{prefix}{i:06d}" for i in range(n)],
            "当前状态": rng.choice(["已登记", "已拆除"], n),
            "违建面积": rng.integers(1, 100, n).astype(float),
        },
        geometry=shapely.points(x, y),
        crs=EPSG_GK,
    )


def _survey_zip(folder: Path, name: str, n: int, seed: int) -> Path:
    """A zipped GBK shapefile of ``n`` sites named ``<name>.zip``."""
    shp = write_shp(_survey(n, seed, name.upper()), folder / name / f"{name}.shp")
    return zip_shp(shp, folder / f"{name}.zip")


def _survey_csv(folder: Path, name: str, n: int, seed: int) -> Path:
    """The same kind of survey as a CSV with 经度/纬度 (CGCS2000 lon/lat)."""
    sites = _survey(n, seed, name.upper())
    lon, lat = pyproj.Transformer.from_crs(EPSG_GK, 4490, always_xy=True).transform(
        shapely.get_x(sites.geometry.values), shapely.get_y(sites.geometry.values)
    )
    frame = pd.DataFrame(sites.drop(columns="geometry")).assign(经度=np.round(lon, 8), 纬度=np.round(lat, 8))
    path = folder / f"{name}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False, encoding="utf-8-sig")
    return path


def _seed_store(data: Path, work: Path) -> str:
    """A store holding the test grid and 40 sites, and an admin with an API token (returned)."""
    with open_test_store(data) as store:
        import_file(store, "grid", write_shp(grid_frame(), work / "grid" / "grid.shp"))
        import_file(store, "demolition", write_shp(_survey(40, 1, "SEED"), work / "seed" / "seed.shp"))
        accounts.add_user(store, "admin", "admin", "admin-password")
        _token, secret = accounts.create_token(store, "admin", "tests")
    return secret


# --- what every fault must leave intact -------------------------------------------------------


def _point_xy(blobs: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """x and y of GeoPackage point blobs, read by the format's layout: an 8-byte header and a
    32-byte XY envelope, then a little-endian ISO WKB point (byte order, type 1, x, y)."""
    raw = np.frombuffer(b"".join(blobs), dtype=np.uint8).reshape(len(blobs), 61)
    assert (raw[:, :2] == np.frombuffer(b"GP", dtype=np.uint8)).all()
    assert (raw[:, 40] == 1).all() and (raw[:, 41:45].copy().view("<u4") == 1).all()
    return raw[:, 45:53].copy().view("<f8").ravel(), raw[:, 53:61].copy().view("<f8").ravel()


def _fresh_units(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Unit grid of each point by point-in-polygon with the test grid (smallest code on a shared edge)."""
    grid = grid_frame().sort_values("网格编码", ascending=False)
    units = np.full(len(x), UNASSIGNED, dtype=object)
    for code, cell in zip(grid["网格编码"], grid.geometry, strict=True):
        units[shapely.intersects_xy(cell, x, y)] = code  # the smallest code is written last
    return units


def _recount(rows: list[tuple[Any, ...]]) -> dict[str, pd.DataFrame]:
    """Totals per unit of every level counted from raw (geometry, status, area, unit) rows; codes
    roll up to community, street and district by their first 12, 9 and 6 digits."""
    frame = pd.DataFrame(rows, columns=["geom", "status", "area", "unit"]).drop(columns="geom")
    done = frame["status"].isin(DEMOLITION.completed_statuses)
    frame = frame.assign(
        one=1,
        done=done.astype(int),
        area=frame["area"].astype(float).fillna(0.0),
        area_done=frame["area"].astype(float).fillna(0.0).where(done, 0.0),
    )
    per_grid = frame.groupby("unit")[["one", "done", "area", "area_done"]].sum()
    out = {"grid": per_grid}
    for level, width in (("community", 12), ("street", 9), ("district", 6)):
        codes = [c if c == UNASSIGNED else c[:width] for c in per_grid.index]
        out[level] = per_grid.groupby(codes).sum()
    return out


def _raw_rows(data: Path) -> tuple[dict[int, int], dict[int, str], list[tuple[Any, ...]], tuple[Any, Any]]:
    """Read past gridwatch: rows per batch, the archive register, the (geometry, status, area,
    unit) rows of the sites and their x and y -- from the GeoPackage file (after its integrity
    check), or from the PostGIS database ``GRIDWATCH_STORE`` names."""
    url = os.environ.get("GRIDWATCH_STORE")
    if url:
        import psycopg

        with psycopg.connect(url, autocommit=True) as pg:
            per_batch = dict(
                pg.execute("SELECT gw_batch, count(*) FROM demolition GROUP BY gw_batch").fetchall()
            )
            archived = dict(pg.execute("SELECT batch_id, path FROM gw_archive").fetchall())
            raw = pg.execute(
                "SELECT ST_X(geom), ST_Y(geom), status, area_m2, gw_unit FROM demolition"
            ).fetchall()
        rows = [(None, *r[2:]) for r in raw]
        return per_batch, archived, rows, (np.array([r[0] for r in raw]), np.array([r[1] for r in raw]))
    with contextlib.closing(sqlite3.connect(data / STORE_FILE)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        per_batch = dict(conn.execute("SELECT gw_batch, count(*) FROM demolition GROUP BY gw_batch"))
        archived = dict(conn.execute("SELECT batch_id, path FROM gw_archive"))
        rows = conn.execute("SELECT geom, status, area_m2, gw_unit FROM demolition").fetchall()
    return per_batch, archived, rows, _point_xy([r[0] for r in rows])


def _check_store(data: Path) -> dict[str, Any]:
    """Check everything a fault must leave consistent; return what a later state is compared with."""
    per_batch, archived, rows, (x, y) = _raw_rows(data)
    with open_test_store(data) as store:
        batches = store.batches()
        ids = {b.id for b in batches}
        surveys = [b for b in batches if b.layer == "demolition"]
        assert all(b.status == "active" for b in batches)
        # every batch whole: all the rows it added are there, and no row belongs to an absent batch
        for b in surveys:
            assert b.added > 0 and per_batch.get(b.id, 0) == b.added, (b.id, b.added, per_batch.get(b.id))
        assert set(per_batch) <= {b.id for b in surveys}
        count = store.layer_count(DEMOLITION)
        assert count == len(rows) == sum(b.added for b in surveys)
        # the archive register names only batches that exist, and each holds exactly its own upload
        assert set(archived) <= ids
        for b in batches:
            folder = data / archived[b.id]
            assert folder.is_dir(), b.id
            if b.source_name.endswith((".zip", ".csv")):
                files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
                assert files == [b.source_name], (b.id, files)
                assert hashlib.sha256((folder / b.source_name).read_bytes()).hexdigest() == b.checksum
        # one audit entry per committed import
        audited = sorted(e.batch_id for e in store.audit_entries(limit=100_000, action="import"))
        assert audited == sorted(b.id for b in surveys)
        # stored units equal a fresh assignment, and the tallies equal a recount of the raw rows
        units = np.array([r[3] for r in rows], dtype=object)
        assert (units == _fresh_units(x, y)).all()
        recount = _recount(rows)
        tallies = {}
        for level in level_names():
            t = tally(store, level, ["demolition"]).set_index("code")
            assert set(recount[level].index) <= set(t.index), level
            expected = recount[level].reindex(t.index, fill_value=0)
            for column, source in (
                ("demolition_total", "one"),
                ("demolition_completed", "done"),
                ("demolition_area_m2", "area"),
                ("demolition_area_completed_m2", "area_done"),
            ):
                assert t[column].tolist() == expected[source].tolist(), (level, column)
            tallies[level] = t
        revision = store.revision()
    folders = sorted(p.name for p in (data / "archive").iterdir()) if (data / "archive").exists() else []
    return {
        "revision": revision,
        "batches": [(b.id, b.layer, b.status, b.added, b.source_name) for b in batches],
        "count": count,
        "audit": audited,
        "archive": folders,
        "tallies": tallies,
    }


def _assert_unchanged(before: dict[str, Any], after: dict[str, Any]) -> None:
    assert {k: v for k, v in after.items() if k != "tallies"} == {
        k: v for k, v in before.items() if k != "tallies"
    }
    for level in level_names():
        pd.testing.assert_frame_equal(after["tallies"][level], before["tallies"][level])


def _one_line(stderr: str, *phrases: str) -> str:
    """The command's stderr is one line naming the problem in Chinese and English, no traceback."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    for phrase in phrases:
        assert phrase in lines[0], stderr
    return lines[0]


# --- processes without the right to write the store ---------------------------------------------


@dataclass
class Runner:
    """How to start a process that file permissions stop from writing the store."""

    label: str
    prefix: list[str]  # put before the command
    popen: dict[str, Any]  # given to subprocess


#: Exits 0 when the project's command line imports and the file named is not writable.
_PROBE = (
    "import sys\n"
    "import geo.cli\n"
    "try:\n"
    "    open(sys.argv[1], 'r+b').close()\n"
    "except PermissionError:\n"
    "    sys.exit(0)\n"
    "sys.exit(3)\n"
)


def _unprivileged(read_only_file: Path) -> Runner:
    """A way to run the project that cannot write ``read_only_file`` (mode 0444): this user when
    it is not root; as root, user 65534, else root without capabilities (``setpriv``, for where
    65534 cannot reach the interpreter).  Skips when there is none."""
    if os.geteuid() != 0:
        candidates = [Runner("this user", [], {})]
    else:
        candidates = [Runner("user 65534", [], {"user": NOBODY, "group": NOBODY, "extra_groups": []})]
        setpriv = shutil.which("setpriv")
        if setpriv:
            candidates.append(
                Runner(
                    "root without capabilities", [setpriv, "--bounding-set=-all", "--inh-caps=-all", "--"], {}
                )
            )
    reasons = []
    for runner in candidates:
        try:
            probe = subprocess.run(
                [*runner.prefix, sys.executable, "-c", _PROBE, str(read_only_file)],
                cwd=ROOT,
                capture_output=True,
                text=True,
                check=False,
                **runner.popen,
            )
        except OSError as exc:
            reasons.append(f"{runner.label}: {exc}")
            continue
        if probe.returncode == 0:
            return runner
        reasons.append(f"{runner.label}: exit {probe.returncode} {probe.stderr.strip()[-200:]}")
    pytest.skip("nothing here runs the project without write permission: " + "; ".join(reasons))


# --- a real server ----------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _group_alive(pgid: int) -> bool:
    """Whether any process of the group is still running (zombies count as gone)."""
    with os.scandir("/proc") as entries:
        for entry in entries:
            if not entry.name.isdigit():
                continue
            try:
                stat = Path(entry.path, "stat").read_text()
            except OSError:
                continue
            state, _ppid, pgrp = stat.rsplit(")", 1)[1].split()[:3]
            if int(pgrp) == pgid and state not in ("Z", "X"):
                return True
    return False


class Server:
    """gunicorn with the sample settings (deploy/gunicorn.conf.py) on 127.0.0.1, in its own
    process group, optionally without the right to write the store.  With ``preload`` the
    application is imported once, before the workers fork, instead of once per worker: half
    the start-up cost, for a test that restarts the server 20 times."""

    def __init__(self, data: Path, token: str, runner: Runner | None = None, preload: bool = False):
        self.port = _free_port()
        self.headers = {"Authorization": f"Bearer {token}"}
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 -- closed by kill(), which every path reaches
        prefix, ids = (runner.prefix, runner.popen) if runner else ([], {})
        self.proc = subprocess.Popen(
            [
                *prefix,
                str(GUNICORN),
                "-c",
                str(ROOT / "deploy" / "gunicorn.conf.py"),
                "--bind",
                f"127.0.0.1:{self.port}",
                "--access-logfile",
                "/dev/null",
                *(["--preload"] if preload else []),
                "server:create_app()",
            ],
            cwd=ROOT,
            env={**os.environ, "GRIDWATCH_DATA": str(data), "GRIDWATCH_TILES": "none"},
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=self.log,
            **ids,
        )

    def ready(self) -> Server:
        """Wait until the server answers (it opens the store only when asked)."""
        deadline = time.monotonic() + 120
        while True:
            try:
                self.request("GET", "/healthz", timeout=5)
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    log = self.stderr()
                    self.stop()
                    pytest.fail(f"gunicorn did not start: {log[-3000:]}")
                time.sleep(0.05)
        return self

    def stderr(self) -> str:
        if self.log.closed:
            return ""
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def connection(self, timeout: float = 120) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def request(
        self, method: str, path: str, body: bytes = b"", content_type: str | None = None, timeout: float = 120
    ) -> tuple[int, Any]:
        conn = self.connection(timeout)
        try:
            headers = dict(self.headers)
            if content_type:
                headers["Content-Type"] = content_type
            conn.request(method, path, body, headers)
            resp = conn.getresponse()
            raw = resp.read()
        finally:
            conn.close()
        is_json = resp.getheader("Content-Type", "").startswith("application/json")
        return resp.status, json.loads(raw) if is_json else raw

    def stage(self, path: Path, layer: str = "demolition") -> tuple[int, Any]:
        body, content_type = multipart(path.read_bytes(), path.name, layer=layer)
        return self.request("POST", "/api/uploads", body, content_type)

    def kill(self) -> None:
        """SIGKILL the whole process group and wait until none of it runs any more."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self.log.close()
        deadline = time.monotonic() + 30
        while _group_alive(self.proc.pid):
            assert time.monotonic() < deadline, "gunicorn workers outlived SIGKILL"
            time.sleep(0.01)

    def stop(self) -> None:
        """SIGTERM (a graceful stop), then make sure nothing of the group is left."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=30)
        self.kill()


@contextlib.contextmanager
def _server(data: Path, token: str, runner: Runner | None = None) -> Iterator[Server]:
    server = Server(data, token, runner)
    try:
        yield server.ready()
    finally:
        server.stop()


# --- 1. the server killed during a commit -----------------------------------------------------


def _write_log(data: Path) -> tuple[int, int] | None:
    """Size and modification time of the store's write-ahead log (None: there is none)."""
    try:
        st = (data / f"{STORE_FILE}-wal").stat()
    except FileNotFoundError:
        return None
    return st.st_size, st.st_mtime_ns


def _commit_and_kill(server: Server, upload_id: str, delay: float) -> int | None:
    """POST the commit, SIGKILL the server ``delay`` seconds after sending it; the response
    status if one arrived before the kill."""
    conn = server.connection()
    try:
        conn.request("POST", f"/api/uploads/{upload_id}/commit", b"", server.headers)
        time.sleep(delay)
        server.kill()
        try:
            resp = conn.getresponse()
            resp.read()
            return resp.status
        except (OSError, http.client.HTTPException):
            return None
    finally:
        conn.close()


@pytest.mark.slow
@needs_gunicorn
def test_server_killed_during_commits(tmp_path, store_url):
    """gunicorn SIGKILLed (the whole process group) at 20 seeded random moments of a commit of
    10,000 staged features, and restarted: each time the batch is whole or absent and everything
    else holds; a commit answered is durable, and one cut off can be made again."""
    data = tmp_path / "store"
    token = _seed_store(data, tmp_path / "seed")
    files = tmp_path / "uploads"
    kills = 20
    rng = np.random.default_rng(2024)
    # kill moments as fractions of the expected commit duration, one in each of 20 equal strata of
    # [0, 1.5) in random order: most land before the commit is durable, some after it
    fractions = (rng.permutation(kills) + rng.uniform(0, 1, kills)) * 1.5 / kills

    # an uninterrupted commit first: how long it takes on this machine
    server = Server(data, token, preload=True).ready()
    try:
        status, staged = server.stage(_survey_zip(files, "measure", KILL_FEATURES, 100))
        assert status == 201, staged
        started = time.perf_counter()
        status, report = server.request("POST", f"/api/uploads/{staged['upload_id']}/commit")
        commit_0 = time.perf_counter() - started
        assert status == 200 and report["added"] == KILL_FEATURES, report
        committed = {"seed.shp", "measure.zip"}
        _check_store(data)

        outcomes: list[str] = []
        leftover = None
        # corrects the expected duration as the kills go, so that the window keeps straddling the
        # moment the commit becomes durable however the machine's pace drifts
        scale = 1.0
        upload = _survey_zip(files, "round00", KILL_FEATURES, 200)
        for k in range(kills):
            status, staged = server.ready().stage(upload)
            assert status == 201, staged
            fraction = float(fractions[k])
            log_before = _write_log(data)
            answered = _commit_and_kill(server, staged["upload_id"], fraction * scale * commit_0)
            # the write-ahead log written to (or a rollback journal left behind): the kill came
            # inside the write transaction (after the archive copy or while rows were written),
            # not while the upload was read
            journal = (data / f"{STORE_FILE}-journal").exists() or _write_log(data) != log_before
            # restart at once; the store is checked while the new server boots (it opens the
            # store only when the next request arrives)
            server = Server(data, token, preload=True)
            state = _check_store(data)
            if upload.name in {b[4] for b in state["batches"]}:
                committed.add(upload.name)
                outcomes.append("after the commit, " + ("answered" if answered else "unanswered"))
                if fraction < 0.5:
                    scale *= 0.8  # durable before half the expected time
            else:
                outcomes.append(
                    "before the commit, " + ("inside the transaction" if journal else "reading the upload")
                )
                leftover = staged["upload_id"]
                if fraction > 1.0:
                    scale *= 1.25  # not yet durable after the expected time
            if answered is not None:
                assert answered == 200 and upload.name in committed  # a commit reported done is durable
            assert {b[4] for b in state["batches"] if b[1] == "demolition"} == committed
            if k + 1 < kills:
                upload = _survey_zip(files, f"round{k + 1:02d}", KILL_FEATURES, 201 + k)

        split = {kind: outcomes.count(kind) for kind in sorted(set(outcomes))}
        print(
            f"\n{KILL_FEATURES} features: commit {commit_0:.3f} s (window then x{scale:.2f}); kills {split}"
        )
        before = sum(n for kind, n in split.items() if kind.startswith("before"))
        assert 0 < before < kills, split

        # a commit cut off by a kill can simply be made again
        assert leftover is not None
        status, report = server.ready().request("POST", f"/api/uploads/{leftover}/commit")
        assert status == 200 and report["added"] == KILL_FEATURES, report
        status, stats = server.request("GET", "/api/stats?format=json&level=district&layer=demolition")
        assert status == 200
    finally:
        server.stop()
    state = _check_store(data)
    assert sum(r["demolition_total"] for r in stats["rows"]) == state["count"]


# --- 1b. the database server restarted during a commit (PostGIS) ------------------------------


@contextlib.contextmanager
def _held_at_the_audit_entry(url: str) -> Iterator[Any]:
    """Hold every writer at its audit entry -- the last row of an import, written after its
    features and batch, inside its transaction -- by a lock on ``gw_audit`` that lets readers
    through; yields the holding connection (the restart closes it)."""
    import psycopg

    admin = psycopg.connect(url, autocommit=True)
    try:
        admin.execute("BEGIN")
        admin.execute("LOCK TABLE gw_audit IN SHARE MODE")
        yield admin
    finally:
        with contextlib.suppress(psycopg.Error):
            admin.close()


def _wait_for_the_writer(admin: Any) -> None:
    """Wait until a session is held at its audit entry: in its transaction, having written the rows."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        admin.execute("SELECT pg_stat_clear_snapshot()")  # the activity as it is now, not as first read
        waiting = admin.execute(
            "SELECT query FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND wait_event_type = 'Lock'"
        ).fetchall()
        if waiting:
            assert waiting[0][0].startswith("INSERT INTO gw_audit"), waiting
            return
        time.sleep(0.02)
    pytest.fail("no write reached its audit entry")


@pytest.mark.slow
@pytest.mark.needs("postgis")
def test_database_restarted_during_a_commit(tmp_path, pg_cluster, pg_db, monkeypatch):
    """PostgreSQL restarted (``pg_ctl restart -m immediate``, as after a crash) while an upload's
    commit through the web and an import from the command line are in their transactions, their
    rows written: nothing of either is kept, the web answers a 503 store error in JSON and the
    command exits 2 with one bilingual line (no traceback, no 500); made again, both succeed and
    the figures equal a recount of the raw rows."""
    import threading

    from server import create_app

    monkeypatch.setenv("GRIDWATCH_STORE", pg_db)
    data = tmp_path / "store"
    _seed_store(data, tmp_path / "seed")
    before = _check_store(data)
    files = tmp_path / "uploads"
    app = create_app(
        {"GRIDWATCH_DATA": str(data), "TESTING": True, "LOGIN_DISABLED": True, "WTF_CSRF_ENABLED": False}
    )
    client = app.test_client()
    upload = _survey_zip(files, "web", 2000, 7)
    staged = client.post(
        "/api/uploads",
        data={"layer": "demolition", "file": (upload.open("rb"), upload.name)},
        content_type="multipart/form-data",
    )
    assert staged.status_code == 201, staged.get_json()
    upload_id = staged.get_json()["upload_id"]

    # the web: the commit held at its audit entry, the server restarted under it
    answers: list[Any] = []
    with _held_at_the_audit_entry(pg_db) as admin:
        commit = threading.Thread(
            target=lambda: answers.append(app.test_client().post(f"/api/uploads/{upload_id}/commit"))
        )
        commit.start()
        _wait_for_the_writer(admin)
        pgtest.restart(pg_cluster)
        commit.join(120)
    assert not commit.is_alive()
    answer = answers[0]
    body = answer.get_json()
    assert answer.status_code == 503 and body["error"] == "store_unavailable", body
    assert "数据库" in body["message_zh"] and "database" in body["message_en"]
    assert "Traceback" not in answer.get_data(as_text=True) and pg_db not in answer.get_data(as_text=True)
    _assert_unchanged(before, _check_store(data))

    # the command line: the same, with an import of a file
    survey = _survey_zip(files, "cli", 2000, 8)
    with _held_at_the_audit_entry(pg_db) as admin:
        run = subprocess.Popen(
            [*GRIDWATCH, "--data", str(data), "import", "demolition", str(survey)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            _wait_for_the_writer(admin)
            pgtest.restart(pg_cluster)
            out, err = run.communicate(timeout=120)
        finally:
            if run.poll() is None:
                run.kill()
                run.communicate()
    assert run.returncode == 2, (out, err)
    line = _one_line(err, "数据库连接中断", "database connection failed")
    assert pg_db not in line
    _assert_unchanged(before, _check_store(data))

    # made again, both succeed, and the figures equal a recount of the raw rows
    again = client.post(f"/api/uploads/{upload_id}/commit")
    assert again.status_code == 200 and again.get_json()["added"] == 2000, again.get_json()
    run = subprocess.run(
        [*GRIDWATCH, "--data", str(data), "import", "demolition", str(survey)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    after = _check_store(data)
    assert after["count"] == before["count"] + 4000
    assert [b[4] for b in after["batches"]][-2:] == ["web.zip", "cli.zip"]
    stats = client.get("/api/stats?format=json&level=district&layer=demolition").get_json()
    assert sum(r["demolition_total"] for r in stats["rows"]) == after["count"]


# --- command-line runs --------------------------------------------------------------------------

#: Run a command with writes beyond a file size refused (EFBIG) instead of killing it (SIGXFSZ).
_SIZE_LIMITED = (
    "import os, resource, signal, sys\n"
    "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
    "limit = int(sys.argv[1])\n"
    "resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))\n"
    "os.execv(sys.argv[2], sys.argv[2:])\n"
)


def _gridwatch(
    *args: str | Path, scratch: Path, limit: int | None = None, runner: Runner | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the ``gridwatch`` command (its scratch files in ``scratch``), optionally with a file
    size limit or without the right to write the store."""
    cmd = [*GRIDWATCH, *map(str, args)]
    if limit is not None:
        cmd = [sys.executable, "-c", _SIZE_LIMITED, str(limit), *cmd]
    env = {k: v for k, v in os.environ.items() if k not in ("GRIDWATCH_DEBUG", "GRIDWATCH_LANG")}
    env.update(TMPDIR=str(scratch), HOME=str(scratch))
    prefix, ids = (runner.prefix, runner.popen) if runner else ([], {})
    return subprocess.run(
        [*prefix, *cmd], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False, **ids
    )


# --- 2. a full disk -----------------------------------------------------------------------------


@pytest.mark.slow
def test_full_disk_file_size_limit(tmp_path):
    """Writes beyond a file size fail (RLIMIT_FSIZE: EFBIG), wherever the import meets the limit."""
    data = tmp_path / "store"
    _seed_store(data, tmp_path / "seed")
    before = _check_store(data)
    store_size = (data / STORE_FILE).stat().st_size
    shp_zip = _survey_zip(tmp_path / "in", "sites", FULL_FEATURES, 300)
    csv = _survey_csv(tmp_path / "in", "points", FULL_FEATURES, 301)
    with zipfile.ZipFile(shp_zip) as zf:
        largest_member = max(info.file_size for info in zf.infolist())
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    cases = [
        # unpacking the zip into the scratch directory
        (shp_zip, (store_size + largest_member) // 2),
        # archiving the CSV beside the store
        (csv, (store_size + csv.stat().st_size) // 2),
        # the archive fits, the GeoPackage's growth does not
        (csv, csv.stat().st_size + 256 * 1024),
    ]
    for path, limit in cases:
        assert store_size < limit
        run = _gridwatch("--data", data, "import", "demolition", path, scratch=scratch, limit=limit)
        assert run.returncode == 2, (limit, run.stdout, run.stderr)
        _one_line(run.stderr, "磁盘已满", "disk full")
        _assert_unchanged(before, _check_store(data))
        assert not any(scratch.iterdir())  # no scratch files left either
    # with room again the same imports succeed
    for path in (csv, shp_zip):
        run = _gridwatch("--data", data, "import", "demolition", path, scratch=scratch)
        assert run.returncode == 0, run.stderr
    after = _check_store(data)
    assert after["count"] == before["count"] + 2 * FULL_FEATURES
    assert (data / STORE_FILE).stat().st_size > cases[-1][1]  # the last case really did not fit


@pytest.fixture
def small_disk(tmp_path) -> Iterator[Path]:
    """A 16 MB tmpfs (skipped where mounting is refused)."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    try:
        mounted = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=16m", "gridwatch-test", str(mount_point)],
            capture_output=True,
            text=True,
            check=False,
        )
    except FileNotFoundError:
        pytest.skip("no mount command")
    if mounted.returncode != 0:
        pytest.skip(f"mounting a tmpfs is refused here: {mounted.stderr.strip()}")
    try:
        yield mount_point
    finally:
        if subprocess.run(["umount", str(mount_point)], check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(mount_point)], check=False)


def _fill(disk: Path, leave: int) -> None:
    """Grow or shrink a file of zeros on ``disk`` until about ``leave`` bytes are free."""
    filler = disk / "filler"
    filler.touch()
    st = os.statvfs(disk)
    size = filler.stat().st_size
    target = max(0, size + st.f_bavail * st.f_frsize - leave)
    with open(filler, "r+b") as fh:
        if target < size:
            fh.truncate(target)
        else:
            fh.seek(size)
            fh.write(b"\0" * (target - size))


@pytest.mark.slow
def test_full_disk_tmpfs(tmp_path, small_disk):
    """A small file system that fills up: command line and API refuse clearly, nothing changes, and
    once there is room again the same imports succeed."""
    data = small_disk / "store"
    token = _seed_store(data, tmp_path / "seed")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    cli_zip = _survey_zip(tmp_path / "in", "cli", FULL_FEATURES, 400)
    api_zip = _survey_zip(tmp_path / "in", "api", FULL_FEATURES, 401)
    before = _check_store(data)
    # the command line: first the archived copy does not fit, then the GeoPackage's growth
    for leave in (cli_zip.stat().st_size // 2, cli_zip.stat().st_size + 256 * 1024):
        _fill(small_disk, leave)
        run = _gridwatch("--data", data, "import", "demolition", cli_zip, scratch=scratch)
        assert run.returncode == 2, (leave, run.stdout, run.stderr)
        _one_line(run.stderr, "磁盘已满", "disk full")
        _assert_unchanged(before, _check_store(data))
    (small_disk / "filler").unlink()
    run = _gridwatch("--data", data, "import", "demolition", cli_zip, scratch=scratch)
    assert run.returncode == 0, run.stderr
    before = _check_store(data)
    assert before["count"] == 40 + FULL_FEATURES

    # the API: the upload is staged, then the disk fills up before it is committed
    with _server(data, token) as server:
        status, staged = server.stage(api_zip)
        assert status == 201, staged
        commit = f"/api/uploads/{staged['upload_id']}/commit"
        for leave in (api_zip.stat().st_size // 2, api_zip.stat().st_size + 256 * 1024):
            _fill(small_disk, leave)
            status, body = server.request("POST", commit)
            assert status == 503 and body["error"] == "disk_full", (leave, status, body)
            assert "磁盘已满" in body["message_zh"] and "disk full" in body["message_en"]
            assert "Traceback" not in json.dumps(body)
            _assert_unchanged(before, _check_store(data))
            status, stats = server.request("GET", "/api/stats?format=json&level=grid&layer=demolition")
            assert status == 200
            assert sum(r["demolition_total"] for r in stats["rows"]) == before["count"]
        (small_disk / "filler").unlink()
        status, report = server.request("POST", commit)
        assert status == 200 and report["added"] == FULL_FEATURES, report
    assert _check_store(data)["count"] == before["count"] + FULL_FEATURES


# --- 3. a read-only store -----------------------------------------------------------------------


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory outside pytest's private temporary tree, so that another user can reach it."""
    path = Path(tempfile.mkdtemp(prefix="gridwatch-faults-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _lon_lat_bbox() -> str:
    lon, lat = pyproj.Transformer.from_crs(EPSG_GK, 4490, always_xy=True).transform(X0 + 150, Y0 - 150)
    return f"{lon - 0.01},{lat - 0.01},{lon + 0.01},{lat + 0.01}"


def _refuses_read_only(run: subprocess.CompletedProcess[str]) -> None:
    assert run.returncode == 2, (run.stdout, run.stderr)
    _one_line(run.stderr, "只读", "read-only")


def _stats_match(run: subprocess.CompletedProcess[str], state: dict[str, Any]) -> None:
    """``gridwatch stats --level community --format json`` printed the stored figures."""
    assert run.returncode == 0, run.stderr
    printed = {r["code"]: r["demolition_total"] for r in json.loads(run.stdout)["rows"]}
    assert printed == state["tallies"]["community"]["demolition_total"].to_dict()


@pytest.mark.slow
@needs_gunicorn
def test_read_only_store(shared_dir):
    """The GeoPackage and its archive are not writable by whoever runs gridwatch (as root, as in CI:
    user 65534, or root without capabilities): imports are refused clearly, reading goes on,
    nothing changes; the store can be copied out."""
    data = shared_dir / "store"
    token = _seed_store(data, shared_dir / "seed")
    upload = _survey_zip(shared_dir / "in", "readonly", 2000, 500)
    scratch = shared_dir / "scratch"
    scratch.mkdir()
    for path in [shared_dir, *shared_dir.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    (data / STORE_FILE).chmod(0o444)
    for folder in [data / "archive", *(data / "archive").iterdir()]:
        folder.chmod(0o555)
    runner = _unprivileged(data / STORE_FILE)
    if runner.popen:
        # the service's own folders (staged uploads, scratch) stay writable; the store is root's
        for folder in (data, scratch):
            os.chown(folder, NOBODY, NOBODY)
    before = _check_store(data)
    digest = hashlib.sha256((data / STORE_FILE).read_bytes()).hexdigest()

    _refuses_read_only(
        _gridwatch("--data", data, "import", "demolition", upload, scratch=scratch, runner=runner)
    )
    _stats_match(
        _gridwatch(
            "--data",
            data,
            "stats",
            "--level",
            "community",
            "--format",
            "json",
            scratch=scratch,
            runner=runner,
        ),
        before,
    )
    # a read-only store can be copied out (into a folder this user may write)
    copied = scratch / "copy"
    run = _gridwatch("store", "copy", data / STORE_FILE, copied, scratch=scratch, runner=runner)
    assert run.returncode == 0, run.stderr
    assert "核对通过" in run.stdout
    _stats_match(
        _gridwatch(
            "--data",
            copied,
            "stats",
            "--level",
            "community",
            "--format",
            "json",
            scratch=scratch,
            runner=runner,
        ),
        before,
    )
    with _server(data, token, runner) as server:
        status, staged = server.stage(upload)
        assert status == 201, staged
        status, body = server.request("POST", f"/api/uploads/{staged['upload_id']}/commit")
        assert status == 503 and body["error"] == "store_read_only", (status, body)
        assert "只读" in body["message_zh"] and "read-only" in body["message_en"]
        status, stats = server.request("GET", "/api/stats?format=json&level=community&layer=demolition")
        assert status == 200
        assert {r["code"]: r["demolition_total"] for r in stats["rows"]} == before["tallies"]["community"][
            "demolition_total"
        ].to_dict()
        bbox = _lon_lat_bbox()
        status, cells = server.request("GET", f"/api/cells?level=grid&layer=demolition&zoom=16&bbox={bbox}")
        assert status == 200 and len(cells["features"]) == 9
        status, features = server.request("GET", f"/api/features/demolition?zoom=18&bbox={bbox}")
        assert status == 200 and features["total"] == before["count"]
    _assert_unchanged(before, _check_store(data))
    assert hashlib.sha256((data / STORE_FILE).read_bytes()).hexdigest() == digest
    print(f"\nread-only store: run as {runner.label}")


@pytest.mark.slow
def test_read_only_mount(tmp_path):
    """The data directory on a read-only mount (a bind mount; skipped where mounting is refused):
    even root cannot write, imports are refused clearly, reading goes on."""
    data = tmp_path / "store"
    _seed_store(data, tmp_path / "seed")
    upload = _survey_zip(tmp_path / "in", "mounted", 2000, 600)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    mounted = tmp_path / "mounted"
    mounted.mkdir()
    before = _check_store(data)
    try:
        bound = subprocess.run(["mount", "--bind", str(data), str(mounted)], capture_output=True, text=True)
    except FileNotFoundError:
        pytest.skip("no mount command")
    if bound.returncode != 0:
        pytest.skip(f"bind mounts are refused here: {bound.stderr.strip()}")
    try:
        remount = subprocess.run(
            ["mount", "-o", "remount,bind,ro", str(mounted)], capture_output=True, text=True, check=False
        )
        if remount.returncode != 0:
            pytest.skip(f"a read-only remount is refused here: {remount.stderr.strip()}")
        with pytest.raises(OSError):
            (mounted / "probe").write_text("")
        _refuses_read_only(_gridwatch("--data", mounted, "import", "demolition", upload, scratch=scratch))
        _stats_match(
            _gridwatch(
                "--data", mounted, "stats", "--level", "community", "--format", "json", scratch=scratch
            ),
            before,
        )
    finally:
        subprocess.run(["umount", str(mounted)], check=False)
    _assert_unchanged(before, _check_store(data))
