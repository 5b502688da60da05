"""The GeoPackage store in WAL mode: readers never wait for a writer, copies hold every commit,
and a store gridwatch may not write is still read (geo/store/gpkg/connection.py)."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import apsw
import pytest

import layers
from geo.errors import StoreError
from geo.imports.importer import import_file
from geo.store.backends import open_store
from geo.store.base import STORE_FILE
from geo.store.gpkg.connection import JOURNAL_ENV
from tests.helpers.builders import X0, Y0, points_frame, write_shp

ROOT = Path(__file__).resolve().parent.parent
DEMOLITION = layers.get("demolition")


def _journal_mode(path: Path) -> str:
    # through apsw, the SQLite the store uses: closing a connection of another copy of SQLite
    # (the sqlite3 module's) in this process would drop the store's locks and remove its -wal
    with contextlib.closing(apsw.Connection(str(path))) as con:
        return str(con.execute("PRAGMA journal_mode").fetchone()[0])


def _sites(folder: Path, prefix: str, n: int) -> Path:
    frame = points_frame(
        [(X0 + 5 + i % 290, Y0 - 5 - (i // 290) % 290) for i in range(n)],
        案件编号=[f"{prefix}{i}" for i in range(n)],
        当前状态=["已登记"] * n,
        发现时间=["2022-01-01"] * n,
    )
    return write_shp(frame, folder / prefix / f"{prefix}.shp")


def test_a_new_store_is_in_wal(store):
    assert store.journal == "wal"
    assert _journal_mode(store.path) == "wal"
    assert Path(f"{store.path}-wal").exists()


def test_the_rollback_journal_when_asked(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv(JOURNAL_ENV, "delete")
    with caplog.at_level(logging.INFO, "gridwatch"), open_store(tmp_path / "data") as s:
        assert s.journal == "delete"
        assert _journal_mode(s.path) == "delete"
    assert any("rollback journal kept" in r.getMessage() for r in caplog.records)


def _hold_a_long_write(location: Path, started: threading.Event, release: threading.Event) -> None:
    """A writer in the middle of a long transaction: writes larger than its page cache (so that,
    with a rollback journal, it would hold the exclusive lock), not committed until released."""
    writer = open_store(location)
    try:
        writer.conn.execute("PRAGMA cache_size=10")
        with writer.transaction():
            writer.conn.execute("CREATE TABLE scratch_rows (x TEXT)")
            writer.conn.executemany(
                "INSERT INTO scratch_rows VALUES (?)", [("x" * 500,) for _ in range(4000)]
            )
            writer.conn.execute("INSERT INTO gw_meta VALUES ('probe', 'written')")
            started.set()
            release.wait(60)
    finally:
        writer.close()


def _reader_during_a_long_write(location: Path) -> tuple[str | None, str, int]:
    """What a reader (busy timeout 0: it may not wait) sees while another handle writes."""
    reader = open_store(location)
    reader.conn.set_busy_timeout(0)
    started, release = threading.Event(), threading.Event()
    thread = threading.Thread(target=_hold_a_long_write, args=(location, started, release))
    thread.start()
    try:
        assert started.wait(60)
        return reader._meta("probe"), reader.revision(), reader.layer_count(DEMOLITION)
    finally:
        release.set()
        thread.join()
        reader.close()


@pytest.mark.slow
def test_readers_do_not_wait_for_a_writer(gridded_store, tmp_path):
    import_file(gridded_store, "demolition", _sites(tmp_path, "A", 20))
    before = gridded_store.revision()
    location = gridded_store.path.parent
    assert _reader_during_a_long_write(location) == (None, before, 20)  # the old state, at once
    with open_store(location) as after:
        assert after._meta("probe") == "written" and after.revision() != before


@pytest.mark.slow
def test_with_the_rollback_journal_the_same_reader_must_wait(tmp_path, monkeypatch, grid_shp):
    """What the test above guards against: with the rollback journal the reader is refused
    (it would have to wait for the writer's commit)."""
    monkeypatch.setenv(JOURNAL_ENV, "delete")
    with open_store(tmp_path / "data") as s:
        import_file(s, "grid", grid_shp)
        location = s.path.parent
    with pytest.raises(apsw.BusyError):
        _reader_during_a_long_write(location)


def test_a_copy_holds_the_commit_just_made(gridded_store, tmp_path):
    import_file(gridded_store, "demolition", _sites(tmp_path, "B", 30))
    import_file(gridded_store, "demolition", _sites(tmp_path, "C", 7))  # the last commit, still in the -wal
    assert Path(f"{gridded_store.path}-wal").stat().st_size > 0
    copy = tmp_path / "copy" / "copy.gpkg"
    copy.parent.mkdir()
    gridded_store.backup(copy)
    assert sorted(p.name for p in copy.parent.iterdir()) == ["copy.gpkg"]  # one file, nothing beside it
    with contextlib.closing(apsw.Connection(str(copy))) as con:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
        assert con.execute("SELECT count(*) FROM demolition").fetchone()[0] == 37
        assert {r[0] for r in con.execute("SELECT gw_key FROM demolition WHERE gw_key LIKE 'C%'")} == {
            f"C{i}" for i in range(7)
        }
    with open_store(copy) as opened:
        assert opened.layer_count(DEMOLITION) == 37
        assert opened.revision() == gridded_store.revision()
    with pytest.raises(StoreError) as exists:
        gridded_store.backup(copy)
    assert exists.value.code == "copy_exists"


# --- a store gridwatch may not write -------------------------------------------------------------

_READ = """
import json, sys
from pathlib import Path
import layers
from geo.errors import StoreError
from geo.store.backends import open_store
from geo.figures.tally import tally
with open_store(Path(sys.argv[1])) as s:
    spec = layers.get("demolition")
    out = {"journal": s.journal, "count": s.layer_count(spec)}
    try:
        with s.transaction():
            s.conn.execute("INSERT INTO gw_meta VALUES ('probe', 'x')")
    except StoreError as exc:
        out["write"] = exc.code
    out["units"] = int(tally(s, None, ["demolition"])["demolition_total"].sum())
print(json.dumps(out))
"""


def _read_without_write_permission(data: Path) -> dict[str, object]:
    """Open the store in ``data`` as someone who may not write it (this user, or root without
    capabilities), count its sites, try a write and tally the layer."""
    prefix: list[str] = []
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without setpriv: nothing here lacks write permission")
        prefix = [setpriv, "--bounding-set=-all", "--inh-caps=-all", "--"]
    run = subprocess.run(
        [*prefix, sys.executable, "-c", _READ, str(data)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    return dict(json.loads(run.stdout.strip().splitlines()[-1]))


def _seeded(data: Path, tmp_path: Path, grid_shp: Path) -> None:
    with open_store(data) as s:
        import_file(s, "grid", grid_shp)
        import_file(s, "demolition", _sites(tmp_path, "R", 25))


@pytest.mark.slow
def test_a_wal_store_in_a_read_only_directory_is_read(tmp_path, grid_shp):
    """No -wal/-shm can be made beside it: opened immutable, read, writes refused."""
    data = tmp_path / "data"
    _seeded(data, tmp_path, grid_shp)
    assert _journal_mode(data / STORE_FILE) == "wal"
    assert not Path(f"{data / STORE_FILE}-wal").exists()  # checkpointed when the last handle closed
    data.chmod(0o555)
    try:
        seen = _read_without_write_permission(data)
    finally:
        data.chmod(0o755)
    assert seen == {"journal": "immutable", "count": 25, "write": "store_read_only", "units": 25}
    assert sorted(p.name for p in data.iterdir()) == ["archive", STORE_FILE]


@pytest.mark.slow
def test_a_read_only_rollback_store_keeps_its_journal(tmp_path, grid_shp, monkeypatch):
    """A store written with the rollback journal, then made read-only: gridwatch cannot switch
    it to WAL and reads it as it is."""
    monkeypatch.setenv(JOURNAL_ENV, "delete")
    data = tmp_path / "data"
    _seeded(data, tmp_path, grid_shp)
    monkeypatch.delenv(JOURNAL_ENV)
    (data / STORE_FILE).chmod(0o444)
    data.chmod(0o555)
    try:
        seen = _read_without_write_permission(data)
    finally:
        data.chmod(0o755)
        (data / STORE_FILE).chmod(0o644)
    assert seen == {"journal": "delete", "count": 25, "write": "store_read_only", "units": 25}
    assert _journal_mode(data / STORE_FILE) == "delete"


def test_a_wal_store_with_commits_left_in_its_wal_is_not_opened_immutable(tmp_path, grid_shp):
    """Committed pages still in the -wal would be missed by an immutable reader: refused instead."""
    data = tmp_path / "data"
    _seeded(data, tmp_path, grid_shp)
    holder = apsw.Connection(str(data / STORE_FILE))  # keeps the -wal from being checkpointed away
    try:
        holder.execute("PRAGMA wal_autocheckpoint=0")
        holder.execute("INSERT INTO gw_meta VALUES ('probe', 'x')")
        from geo.store.gpkg.connection import GpkgConnection

        handle = GpkgConnection(data / STORE_FILE)
        with pytest.raises(StoreError):
            handle._open_immutable(apsw.ReadOnlyError("attempt to write a readonly database"))
    finally:
        holder.close()
