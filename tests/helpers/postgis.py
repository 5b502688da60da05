"""A throw-away PostgreSQL cluster with PostGIS (``scripts/postgres.sh``) for the tests of the
PostGIS store: plain fixtures, imported by the test files that use them."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[tuple[str, str]]:
    """A throw-away cluster for the session: (socket folder, URL of its ``gridwatch`` database).

    The folder is 0755 (as root the server runs as ``postgres``, which must reach the socket),
    so not pytest's tmp_path.
    """
    import psycopg  # the optional extra ``postgis``: only where a test needs the cluster

    folder = tempfile.mkdtemp(prefix="gridwatch-pg-")
    Path(folder).chmod(0o755)
    script = str(ROOT / "scripts" / "postgres.sh")
    try:
        url = subprocess.run(
            ["bash", script, "start", folder], check=True, capture_output=True, text=True
        ).stdout.strip()
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE DATABASE gw_template")
        with psycopg.connect(db_url(folder, "gw_template"), autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
        yield folder, url
    finally:
        subprocess.run(["bash", script, "stop", folder], check=False, capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


def db_url(folder: str, db: str) -> str:
    """The URL of database ``db`` of the cluster whose socket is in ``folder``."""
    return f"postgresql://gridwatch@/{db}?host={folder}"


@pytest.fixture
def pg_db(pg_cluster: tuple[str, str]) -> Iterator[str]:
    """URL of a fresh database with PostGIS (dropped after the test)."""
    import psycopg

    folder, url = pg_cluster
    db = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {db} TEMPLATE gw_template")
    yield db_url(folder, db)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE {db} WITH (FORCE)")
