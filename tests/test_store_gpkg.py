"""The GeoPackage store through its public interface: its components share one transaction,
batches record their kind, and a store of schema 4 is upgraded to record kinds too."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import apsw
import geopandas as gpd
import numpy as np
import pytest

import layers
from geo.errors import Conflict, StoreError
from geo.imports.batches import TARGET_SPEC, load_targets, may_roll_back, rollback
from geo.imports.importer import import_file
from geo.store.backends import open_store
from geo.store.base import STORE_FILE
from geo.store.gpkg.migrations import SCHEMA_VERSION
from geo.store.interface.batches import Batch, batch_kind
from tests.helpers.builders import COMM_A, X0, Y0, grid_frame, points_frame, write_shp

DEMOLITION = layers.get("demolition")
GRID = layers.get("grid")


def _sites(ids: list[str], status: str = "已登记") -> gpd.GeoDataFrame:
    return points_frame([(X0 + 50, Y0 - 50)] * len(ids), 案件编号=ids, 当前状态=[status] * len(ids))


def _targets_csv(path: Path, value: int = 5) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"编码,图层,指标,目标\n{COMM_A},demolition,completed,{value}\n", encoding="utf-8")
    return path


def _refuse_audit(path: Path) -> None:
    """Make every audit write fail inside SQLite (as a full or broken table would)."""
    # through apsw, the store's own SQLite: the store is open in this process, and closing a
    # connection of another copy of SQLite (sqlite3's) would drop its locks and remove its -wal
    con = apsw.Connection(str(path))
    con.execute(
        "CREATE TRIGGER test_refuse_audit BEFORE INSERT ON gw_audit BEGIN SELECT RAISE(ABORT, 'audit refused'); END"
    )
    con.close()


def _snapshot(store) -> dict[str, object]:
    con = store.conn
    return {
        "revision": store.revision(),
        "batches": [b.id for b in store.batches()],
        "tx": con.execute("SELECT count(*) FROM gw_tx").fetchone()[0],
        "demolition": store.layer_count(DEMOLITION),
        "archive": sorted(p.name for p in (Path(store.location).parent / "archive").iterdir()),
        "audit": len(store.audit_entries()),
        "targets": len(store.targets()),
    }


# --- one transaction across components -------------------------------------------------------------


def test_a_failed_audit_write_leaves_no_batch_and_no_features(gridded_store, tmp_path):
    """Features, the batch register, the archive and the audit trail of an import commit as one:
    when the audit entry cannot be written, nothing of the import is kept."""
    before = _snapshot(gridded_store)
    _refuse_audit(Path(gridded_store.location))
    shp = write_shp(_sites(["A", "B"]), tmp_path / "a" / "s.shp")
    with pytest.raises(StoreError) as caught:
        import_file(gridded_store, "demolition", shp, user="surveyor1")
    assert "audit refused" in caught.value.en
    assert _snapshot(gridded_store) == before
    assert gridded_store.key_batches(DEMOLITION, np.array(["A", "B"], dtype=object)) == {}


@pytest.mark.slow
def test_a_failed_audit_write_keeps_targets_and_rollbacks_whole(gridded_store, tmp_path):
    """The same for targets (values and batch) and for a rollback (rows, batch state, history)."""
    rep = import_file(gridded_store, "demolition", write_shp(_sites(["A"]), tmp_path / "a" / "s.shp"))
    before = _snapshot(gridded_store)
    _refuse_audit(Path(gridded_store.location))
    with pytest.raises(StoreError):
        load_targets(gridded_store, _targets_csv(tmp_path / "t" / "目标.csv"))
    with pytest.raises(StoreError):
        rollback(gridded_store, rep.batch_id)
    assert _snapshot(gridded_store) == before
    assert gridded_store.batch(rep.batch_id).status == "active"


def test_the_audit_entry_is_written_with_the_batch(gridded_store, tmp_path):
    rep = import_file(
        gridded_store, "demolition", write_shp(_sites(["A"]), tmp_path / "a" / "s.shp"), user="u1"
    )
    (entry,) = [e for e in gridded_store.audit_entries() if e.batch_id == rep.batch_id]
    assert (entry.action, entry.layer, entry.counts["added"]) == ("import", "demolition", 1)
    tx = gridded_store.last_tx()
    assert tx is not None and (tx.kind, tx.batch_id) == ("import", rep.batch_id)


# --- batch kinds -------------------------------------------------------------------------------------


@pytest.mark.slow
def test_batches_record_their_kind(gridded_store, tmp_path):
    survey = import_file(gridded_store, "demolition", write_shp(_sites(["A"]), tmp_path / "a" / "s.shp"))
    targets = load_targets(gridded_store, _targets_csv(tmp_path / "t" / "目标.csv"))
    by_id = {b.id: b for b in gridded_store.batches()}
    assert [(b.layer, b.kind) for b in by_id.values()] == [
        ("grid", "grid"),
        ("demolition", "import"),
        (TARGET_SPEC.name, "targets"),
    ]
    assert gridded_store.batch(targets.batch_id).kind == "targets"
    # the write log names the same kinds, and the audit trail the actions of each
    assert [gridded_store.tx(i).kind for i in range(1, 4)] == ["grid", "import", "targets"]
    actions = {e.batch_id: e.action for e in gridded_store.audit_entries()}
    assert actions == {1: "grid_replace", survey.batch_id: "import", targets.batch_id: "targets"}
    # the kind is the register's: the batch as the API shows it is unchanged
    assert "kind" not in gridded_store.batch(survey.batch_id).to_dict()


def test_the_kind_of_a_layer_batch_comes_from_its_spec():
    assert batch_kind(GRID) == "grid"
    assert {batch_kind(s) for s in layers.survey_layers()} == {"import"}


@pytest.mark.slow
def test_rolling_back_targets_goes_by_the_kind(gridded_store, tmp_path):
    first = load_targets(gridded_store, _targets_csv(tmp_path / "1" / "目标.csv", 5))
    second = load_targets(gridded_store, _targets_csv(tmp_path / "2" / "目标.csv", 8))
    assert gridded_store.targets()["target"].tolist() == [8.0]
    # the same file again changes nothing: its batch is the current one
    again = load_targets(gridded_store, _targets_csv(tmp_path / "3" / "目标.csv", 8))
    assert (again.status, again.duplicate_of) == ("duplicate", second.batch_id)
    rolled = rollback(gridded_store, second.batch_id)
    assert (rolled.kind, rolled.status) == ("targets", "rolled_back")
    assert gridded_store.targets()["target"].tolist() == [5.0]
    assert gridded_store.tx(gridded_store.last_tx().id).kind == "rollback"
    with pytest.raises(Conflict):
        rollback(gridded_store, second.batch_id)
    assert first.batch_id is not None


def _batch(kind: str, user: str | None) -> Batch:
    layer = {"import": "demolition", "grid": "grid", "targets": TARGET_SPEC.name}[kind]
    return Batch(
        1, layer, "f.shp", "0" * 64, "2024-05-01T00:00:00Z", user, "active", 1, 1, 0, 0, 0, None, None, kind
    )  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kind", "owner", "user", "role", "allowed"),
    [
        ("import", "li", "li", "surveyor", True),
        ("import", "li", "wang", "surveyor", False),
        ("import", None, "li", "surveyor", False),
        ("grid", "li", "li", "surveyor", False),
        ("targets", "li", "li", "surveyor", False),
        ("import", "li", "li", "viewer", False),
        ("import", "li", "wang", "admin", True),
        ("grid", None, "wang", "admin", True),
        ("targets", "li", "wang", "admin", True),
        ("import", "li", "li", None, False),
    ],
)
def test_who_may_roll_back_a_batch(kind, owner, user, role, allowed):
    """Admins any batch; surveyors only the survey imports they made themselves."""
    assert may_roll_back(_batch(kind, owner), user, role) is allowed


# --- the upgrade from schema 4 ---------------------------------------------------------------------


def _as_schema_4(path: Path) -> None:
    """What the code of schema 4 wrote: batches without a recorded kind (through apsw: see
    :func:`_refuse_audit`)."""
    con = apsw.Connection(str(path))
    with con:
        con.execute("ALTER TABLE gw_batches DROP COLUMN kind")
        con.execute("UPDATE gw_meta SET value='4' WHERE key='schema'")
    con.close()


def _filled_store(data: Path, tmp_path: Path) -> dict[int, str]:
    with open_store(data) as store:
        import_file(store, "grid", write_shp(grid_frame(), tmp_path / "g" / "网格.shp"))
        rep = import_file(store, "demolition", write_shp(_sites(["A", "B"]), tmp_path / "a" / "s.shp"))
        load_targets(store, _targets_csv(tmp_path / "t" / "目标.csv"))
        rollback(store, rep.batch_id)
        return {b.id: b.kind for b in store.batches()}


@pytest.mark.slow
def test_a_store_of_schema_4_is_upgraded_to_record_batch_kinds(tmp_path):
    data = tmp_path / "data"
    kinds = _filled_store(data, tmp_path)
    assert kinds == {1: "grid", 2: "import", 3: "targets"}
    path = data / STORE_FILE
    _as_schema_4(path)
    con = sqlite3.connect(path)
    assert "kind" not in {r[1] for r in con.execute("PRAGMA table_info(gw_batches)")}
    con.close()

    with open_store(data) as store:
        assert store._meta("schema") == str(SCHEMA_VERSION) == "9"
        assert {b.id: b.kind for b in store.batches()} == kinds
        # and it goes on: the rolled-back survey batch stays an import, new batches record theirs
        rep = import_file(store, "demolition", write_shp(_sites(["C"]), tmp_path / "c" / "s.shp"))
        assert store.batch(rep.batch_id).kind == "import"
        assert rollback(store, 3).status == "rolled_back"
        assert store.targets().empty


@pytest.mark.slow
def test_a_store_of_schema_4_that_cannot_be_upgraded_still_shows_the_kinds(tmp_path):
    """A store of schema 4 stays so when it cannot be written (read-only, see tests/test_faults.py):
    the kinds of its batches are then told from their layers, as that schema did."""
    data = tmp_path / "data"
    kinds = _filled_store(data, tmp_path)
    with open_store(data) as store:
        _as_schema_4(data / STORE_FILE)  # from here on this handle reads a store of schema 4
        assert {b.id: b.kind for b in store.batches()} == kinds
        assert store.batch(3).kind == "targets"
