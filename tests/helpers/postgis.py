"""A throw-away PostgreSQL cluster with PostGIS for the test session (``scripts/postgres.sh``),
and a fresh database per test copied from a template that already has the extension.

The session fixture (``pg_cluster`` in ``tests/conftest.py``) starts one cluster per test
process on a Unix socket in a folder of its own and stops it at the end of the session, also
when tests failed.  ``GRIDWATCH_TEST_PG_DIRS`` names a file each started cluster's folder is
appended to, so a runner (``scripts/test.sh``) can stop clusters a killed test run left behind.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parent.parent.parent
SCRIPT = ROOT / "scripts" / "postgres.sh"
TEMPLATE = "gw_template"

#: Settings of the throw-away cluster that only trade durability against an OS crash for
#: speed (the cluster is gone after the run); a server restart still replays the WAL.
FAST = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}


class Cluster(NamedTuple):
    """A running cluster: its folder (socket, data, log) and the URL of its ``gridwatch``
    database (an administrator's connection: the role made it)."""

    folder: str
    url: str

    def db_url(self, db: str) -> str:
        """The URL of database ``db`` in this cluster."""
        return f"postgresql://gridwatch@/{db}?host={self.folder}"


def _admin(url: str):  # psycopg is imported here: only PostGIS tests need it
    import psycopg

    return psycopg.connect(url, autocommit=True)


@contextmanager
def cluster() -> Iterator[Cluster]:
    """Start a cluster with a PostGIS template database, stop and remove it afterwards.

    The folder is 0755 (as root the server runs as ``postgres``, which must reach the socket),
    so not pytest's tmp_path.
    """
    folder = tempfile.mkdtemp(prefix="gridwatch-pg-")
    Path(folder).chmod(0o755)
    record = os.environ.get("GRIDWATCH_TEST_PG_DIRS")
    if record:
        with open(record, "a", encoding="utf-8") as f:
            f.write(folder + "\n")
    try:
        url = subprocess.run(
            ["bash", str(SCRIPT), "start", folder], check=True, capture_output=True, text=True
        ).stdout.strip()
        running = Cluster(folder, url)
        with _admin(url) as conn:
            for name, value in FAST.items():
                conn.execute(f"ALTER SYSTEM SET {name} = '{value}'")
            conn.execute("SELECT pg_reload_conf()")
            conn.execute(f"CREATE DATABASE {TEMPLATE}")
        with _admin(running.db_url(TEMPLATE)) as conn:
            conn.execute("SET client_min_messages = warning")
            conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
        yield running
    finally:
        stop(folder)


def stop(folder: str) -> None:
    """Stop the cluster in ``folder`` (if it runs) and remove the folder."""
    subprocess.run(["bash", str(SCRIPT), "stop", folder], check=False, capture_output=True)
    shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def database(running: Cluster) -> Iterator[str]:
    """The URL of a fresh database with PostGIS, dropped afterwards (with any sessions a test
    left open)."""
    db = f"t_{uuid.uuid4().hex[:12]}"
    with _admin(running.url) as conn:
        conn.execute(f"CREATE DATABASE {db} TEMPLATE {TEMPLATE} STRATEGY file_copy")
    try:
        yield running.db_url(db)
    finally:
        with _admin(running.url) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")


def restart(running: Cluster, mode: str = "immediate") -> None:
    """Restart the server of ``running`` (``-m immediate``: as after a crash; it recovers from
    its WAL on start)."""
    bindir = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: p.parent.name)[-1]
    cmd = [
        str(bindir / "pg_ctl"),
        "-D",
        f"{running.folder}/db",
        "-l",
        f"{running.folder}/server.log",
        "-w",
        "-m",
        mode,
        "-o",
        f"-k {running.folder} -c listen_addresses=''",
        "restart",
    ]
    if os.getuid() == 0:
        cmd = ["runuser", "-u", "postgres", "--", *cmd]
    subprocess.run(cmd, check=True, capture_output=True)


def open_test_store(where: str | os.PathLike[str]):
    """Open the test's store: the one ``GRIDWATCH_STORE`` names (the ``store_url`` fixture sets
    it on PostGIS) with data folder ``where``, else the GeoPackage at ``where`` (a data folder
    or a ``.gpkg`` file), as :func:`geo.store.backends.open_store` does."""
    from geo.store.backends import open_store

    url = os.environ.get("GRIDWATCH_STORE")
    if not url:
        return open_store(where)
    if "://" in str(where):
        return open_store(url)
    folder = Path(where)
    return open_store(url, data=folder.parent if folder.suffix == ".gpkg" else folder)
