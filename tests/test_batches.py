"""Batches: archive, rollback (including grid replacement), and imports killed mid-write."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import zipfile
from io import BytesIO
from pathlib import Path

import apsw
import geopandas as gpd
import numpy as np
import pytest
import shapely

import layers
from geo.errors import Conflict
from geo.figures.tally import tally
from geo.imports.batches import rollback
from geo.imports.importer import import_file
from geo.store.backends import open_store
from layers.base import UNASSIGNED
from tests.helpers.builders import COMM_A, EPSG_GK, X0, Y0, grid_frame, points_frame, write_shp
from tests.helpers.postgis import open_test_store

pytestmark = pytest.mark.backends

DEMOLITION = layers.get("demolition")


def _sites(status: str, ids: list[str], dx: float = 50) -> gpd.GeoDataFrame:
    return points_frame([(X0 + dx, Y0 - 50)] * len(ids), 案件编号=ids, 当前状态=[status] * len(ids))


@pytest.mark.slow
def test_batch_register_and_archive(gridded_store, tmp_path):
    shp = write_shp(_sites("已登记", ["A", "B"]), tmp_path / "a" / "台账.shp")
    rep = import_file(gridded_store, "demolition", shp, user="surveyor1")
    b = gridded_store.batch(rep.batch_id)
    assert (b.layer, b.source_name, b.user, b.added, b.status) == (
        "demolition",
        "台账.shp",
        "surveyor1",
        2,
        "active",
    )
    assert len(b.checksum) == 64 and b.created_at.endswith("Z")
    name, data = gridded_store.archived_source(rep.batch_id)
    assert name == "台账.shp"
    with zipfile.ZipFile(BytesIO(data)) as zf:
        assert sorted(Path(n).suffix for n in zf.namelist()) == [".dbf", ".prj", ".shp", ".shx"]


@pytest.mark.slow
def test_rollback_restores_replaced_rows(gridded_store, tmp_path):
    first = import_file(
        gridded_store, "demolition", write_shp(_sites("已登记", ["A", "B"]), tmp_path / "1" / "s.shp")
    )
    second = import_file(
        gridded_store, "demolition", write_shp(_sites("已拆除", ["B", "C"]), tmp_path / "2" / "s.shp")
    )
    assert (second.added, second.updated) == (1, 1)
    t = tally(gridded_store, "grid", ["demolition"])
    assert (t["demolition_total"].sum(), t["demolition_completed"].sum()) == (3, 2)
    with pytest.raises(Conflict) as err:
        rollback(gridded_store, first.batch_id)  # batch 2 replaced one of its rows
    assert err.value.details["blocking_batches"] == [second.batch_id]
    rollback(gridded_store, second.batch_id)
    attrs = gridded_store.read_attributes(DEMOLITION)
    assert sorted(attrs["case_id"]) == ["A", "B"] and set(attrs["status"]) == {"已登记"}
    assert gridded_store.batch(second.batch_id).status == "rolled_back"
    with pytest.raises(Conflict):
        rollback(gridded_store, second.batch_id)
    rollback(gridded_store, first.batch_id)
    assert gridded_store.layer_count(DEMOLITION) == 0
    # the same file can be imported again after its batch was rolled back
    again = import_file(gridded_store, "demolition", tmp_path / "1" / "s.shp")
    assert again.status == "committed" and again.added == 2


@pytest.mark.slow
def test_grid_replacement_reassigns_and_rolls_back(gridded_store, tmp_path):
    import_file(
        gridded_store, "demolition", write_shp(_sites("已登记", ["A"], dx=150), tmp_path / "1" / "s.shp")
    )
    assert (
        tally(gridded_store, "grid", ["demolition"]).set_index("code").loc[f"{COMM_A}002", "demolition_total"]
        == 1
    )
    g = grid_frame()
    g = g[g["网格编码"] != f"{COMM_A}002"]  # a new grid without that cell
    rep = import_file(gridded_store, "grid", write_shp(g, tmp_path / "g2" / "grid.shp"))
    assert rep.removed == 1 and rep.reassigned == 1
    t = tally(gridded_store, "grid", ["demolition"]).set_index("code")
    assert t.loc[UNASSIGNED, "demolition_total"] == 1 and f"{COMM_A}002" not in t.index
    rollback(gridded_store, rep.batch_id)
    t = tally(gridded_store, "grid", ["demolition"]).set_index("code")
    assert t.loc[f"{COMM_A}002", "demolition_total"] == 1 and t.loc[UNASSIGNED, "demolition_total"] == 0


def _big_survey(path: Path, n: int) -> Path:
    rng = np.random.default_rng(7)
    xy = np.column_stack([X0 + rng.uniform(-50, 350, n), Y0 - rng.uniform(-50, 350, n)])
    g = gpd.GeoDataFrame(
        {"案件编号": [f"K{i:06d}" for i in range(n)], "违建地址": ["测试路"] * n, "当前状态": ["已登记"] * n},
        geometry=shapely.points(xy),
        crs=EPSG_GK,
    )
    return write_shp(g, path)


_IMPORT_SCRIPT = """
import sys
from geo.imports.importer import import_file
from geo.store.backends import open_store
s = open_store(sys.argv[1])
print("start", flush=True)
import_file(s, "demolition", sys.argv[2])
print("done", flush=True)
"""


@pytest.mark.slow
def test_killed_import_leaves_store_unchanged(gridded_store, tmp_path):
    """SIGKILL an importing process at several moments: the store is as before or has the whole batch."""
    shp = _big_survey(tmp_path / "big" / "big.shp", 60_000)
    gridded_store.close()
    location = os.environ.get("GRIDWATCH_STORE") or gridded_store.location  # on PostGIS: its URL
    rng = np.random.default_rng(1)
    outcomes = set()
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    for delay in [*rng.uniform(0.3, 4.0, 5), 0.05]:
        before = open_store(location)
        n_before = before.layer_count(DEMOLITION)
        batches_before = len(before.batches())
        before.close()
        with subprocess.Popen(
            [sys.executable, "-c", _IMPORT_SCRIPT, location, str(shp)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        ) as proc:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == b"start"  # the store is open
            time.sleep(delay)
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=60)
        after = open_store(location)
        if "://" not in location:
            conn = apsw.Connection(str(location))  # the store's SQLite: ``after`` is open in this process
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            conn.close()
        n_after = after.layer_count(DEMOLITION)
        batches = after.batches()
        if len(batches) == batches_before:
            outcomes.add("absent")
            assert n_after == n_before
        else:
            outcomes.add("whole")
            assert len(batches) == batches_before + 1
            assert batches[-1].added + batches[-1].unchanged + batches[-1].updated == 60_000
            assert n_after == 60_000
            rollback(after, batches[-1].id)  # back to the empty layer for the next round
            assert after.layer_count(DEMOLITION) == 0
        t = tally(after, "grid", ["demolition"])
        assert t["demolition_total"].sum() == after.layer_count(DEMOLITION)
        after.close()
    assert "absent" in outcomes  # at least one kill landed mid-import


@pytest.mark.slow
def test_geometry_cache_follows_writes(gridded_store, tmp_path):
    """The decoded geometry kept in memory equals what a fresh read of the file gives."""
    kept = gridded_store.cache.region("geometry")

    def fresh():
        kept.clear()
        return gridded_store.read_geometry(DEMOLITION)

    gridded_store.read_geometry(DEMOLITION)
    first = import_file(
        gridded_store, "demolition", write_shp(_sites("已登记", ["A", "B"]), tmp_path / "1" / "s.shp")
    )
    second = import_file(
        gridded_store, "demolition", write_shp(_sites("已拆除", ["B", "C"], dx=150), tmp_path / "2" / "s.shp")
    )

    def cached_units():
        (entry,) = [kept.get(k) for k in kept if k[0] == "demolition"]
        return entry[2].tolist()

    def check():
        cached_fids, cached_geoms = gridded_store.read_geometry(DEMOLITION)
        units = cached_units()
        fids, geoms = fresh()
        assert cached_fids.tolist() == fids.tolist()
        assert all(shapely.equals(a, b) for a, b in zip(cached_geoms, geoms, strict=True))
        assert units == gridded_store.read_attributes(DEMOLITION)["gw_unit"].tolist() == cached_units()

    check()
    rollback(gridded_store, second.batch_id)
    check()
    g = grid_frame()
    grid_batch = import_file(
        gridded_store, "grid", write_shp(g[g["网格编码"] != f"{COMM_A}001"], tmp_path / "g" / "g.shp")
    )
    assert grid_batch.reassigned == 2  # both sites sat in the removed cell
    check()
    assert first.batch_id is not None and gridded_store.layer_count(DEMOLITION) == 2


@pytest.mark.slow
def test_failed_commit_leaves_nothing(gridded_store, tmp_path, monkeypatch):
    """An error in the middle of a commit keeps neither rows, nor the batch, nor its archive folder."""
    shp = write_shp(_sites("已登记", ["A", "B"]), tmp_path / "a" / "s.shp")
    before = (gridded_store.revision(), len(gridded_store.batches()))

    def broken(*args, **kwargs):
        raise OSError("disk went away")

    monkeypatch.setattr(gridded_store, "write_features", broken)
    with pytest.raises(OSError):
        import_file(gridded_store, "demolition", shp)
    monkeypatch.undo()
    assert (gridded_store.revision(), len(gridded_store.batches())) == before
    assert gridded_store.layer_count(DEMOLITION) == 0
    archive = tmp_path / "data" / "archive"  # the data folder of gridded_store
    assert sorted(p.name for p in archive.iterdir()) == ["000001"]  # the grid's only
    rep = import_file(gridded_store, "demolition", shp)
    assert rep.added == 2 and (archive / f"{rep.batch_id:06d}" / "s.dbf").exists()


@pytest.mark.slow
def test_parallel_rollbacks_roll_a_batch_back_once(gridded_store, tmp_path, monkeypatch):
    """Three rollbacks of one batch, each from its own connection, all past their first look at
    the batch before any writes: one rolls it back, the others are refused, one audit entry."""
    import threading
    from contextlib import contextmanager

    rep = import_file(
        gridded_store, "demolition", write_shp(_sites("已登记", ["A"]), tmp_path / "a" / "s.shp")
    )
    stores = [open_test_store(tmp_path / "data") for _ in range(3)]
    all_there = threading.Barrier(3, timeout=60)
    backend = type(gridded_store)
    real = backend.transaction

    @contextmanager
    def together(self):
        if not self._depth:
            all_there.wait()
        with real(self):
            yield

    monkeypatch.setattr(backend, "transaction", together)
    outcomes: list = []

    def roll_back(store):
        try:
            outcomes.append(rollback(store, rep.batch_id).status)
        except Conflict as exc:
            outcomes.append(exc.code)

    threads = [threading.Thread(target=roll_back, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    monkeypatch.undo()
    for s in stores:
        s.close()
    assert sorted(outcomes) == ["already_rolled_back", "already_rolled_back", "rolled_back"]
    assert [e.batch_id for e in gridded_store.audit_entries(action="rollback")] == [rep.batch_id]


@pytest.mark.slow
def test_an_earlier_grid_can_be_put_back(gridded_store, grid_shp, tmp_path):
    """A byte-identical file is a duplicate only while it is the current content of its layer."""
    from geo.imports.importer import prepare_import

    grid = layers.get("grid")
    g = grid_frame()
    second = import_file(
        gridded_store, "grid", write_shp(g[g["网格编码"] != f"{COMM_A}002"], tmp_path / "g2" / "g.shp")
    )
    assert gridded_store.layer_count(grid) == 8
    assert prepare_import(gridded_store, "grid", grid_shp).report.status == "preview"
    back = import_file(gridded_store, "grid", grid_shp)
    assert back.status == "committed" and back.added == 1 and gridded_store.layer_count(grid) == 9
    again = import_file(gridded_store, "grid", grid_shp)
    assert again.status == "duplicate" and again.duplicate_of == back.batch_id
    rollback(gridded_store, back.batch_id)  # the second grid is current again
    assert import_file(gridded_store, "grid", grid_shp).status == "committed"
    assert second.batch_id is not None


@pytest.mark.slow
def test_a_survey_file_updated_later_can_be_imported_again(gridded_store, tmp_path):
    first = write_shp(_sites("已登记", ["A", "B"]), tmp_path / "1" / "s.shp")
    a = import_file(gridded_store, "demolition", first)
    import_file(gridded_store, "demolition", write_shp(_sites("已拆除", ["B"]), tmp_path / "2" / "s.shp"))
    back = import_file(gridded_store, "demolition", first)  # puts B back as the first file had it
    assert back.status == "committed" and (back.updated, back.unchanged) == (1, 1)
    assert set(gridded_store.read_attributes(DEMOLITION)["status"]) == {"已登记"}
    again = import_file(gridded_store, "demolition", first)  # now it is current: a no-op duplicate
    assert again.status == "duplicate" and again.duplicate_of == back.batch_id
    assert a.batch_id is not None


@pytest.mark.slow
def test_a_row_kept_unchanged_and_updated_later_makes_a_file_new_again(gridded_store, tmp_path):
    """The second file repeats A unchanged (the row stays the first batch's); a third updates A:
    the second file is no longer the current content, though none of its own rows were replaced."""
    import_file(gridded_store, "demolition", write_shp(_sites("已登记", ["A"]), tmp_path / "1" / "s.shp"))
    second = write_shp(_sites("已登记", ["A", "C"]), tmp_path / "2" / "s.shp")
    kept = import_file(gridded_store, "demolition", second)
    assert (kept.added, kept.unchanged) == (1, 1)
    import_file(gridded_store, "demolition", write_shp(_sites("已拆除", ["A"]), tmp_path / "3" / "s.shp"))
    back = import_file(gridded_store, "demolition", second)
    assert back.status == "committed" and (back.updated, back.unchanged) == (1, 1)
