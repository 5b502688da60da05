"""The PostGIS backend against a real throw-away PostgreSQL cluster (``scripts/postgres.sh``),
component by component, and against the GeoPackage backend: the same calls on both give the
same results."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psycopg
import pyarrow as pa
import pytest
import shapely
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import layers
from geo.errors import Conflict, GridwatchError, NotFound, StoreError
from geo.store import accounts
from geo.store.accounts import MAX_FAILURES
from geo.store.credentials import shown_location
from geo.store.gpkg import GpkgStore
from geo.store.interface.batches import Batch
from geo.store.interface.features import FeatureRows
from geo.store.postgis import PostgisStore
from tests.helpers.postgis import Cluster

pytestmark = [pytest.mark.needs("postgis"), pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent
EPSG = 4548
SURVEY = next(s for s in layers.survey_layers())
GRID = next(s for s in layers.all_layers() if s.is_grid)


# the cluster (pg_cluster, pg_db: tests/conftest.py, tests/helpers/postgis.py) ------------------
def _db_url(folder: str, db: str) -> str:
    return Cluster(folder, "").db_url(db)


@pytest.fixture
def pg(pg_db: str, tmp_path: Path) -> Iterator[PostgisStore]:
    """An empty PostGIS store with its CRS set (its data directory in ``tmp_path/pgdata``)."""
    s = PostgisStore(pg_db, data=tmp_path / "pgdata")
    s.set_srs_epsg(EPSG)
    yield s
    s.close()


@pytest.fixture
def gpkg(tmp_path: Path) -> Iterator[GpkgStore]:
    """An empty GeoPackage store with the same CRS."""
    s = GpkgStore(tmp_path / "store.gpkg")
    s.set_srs_epsg(EPSG)
    yield s
    s.close()


# helpers ---------------------------------------------------------------------------------
def _rows(specs: list[tuple[str | None, int, int, str]]) -> FeatureRows:
    """Rows of SURVEY from (key, shape, value, unit): shape 0-2 a point at one of three places,
    3 a square; value picks the fields."""
    geoms = []
    for _, shape, _, _ in specs:
        x, y = 500_000.0 + 10 * shape, 3_000_000.0
        geoms.append(shapely.box(x, y, x + 5, y + 5) if shape == 3 else shapely.Point(x, y))
    attrs: dict[str, list[Any]] = {}
    for f in SURVEY.stored_fields:
        column: list[Any] = []
        for _, _, value, _ in specs:
            if f.kind == "int":
                column.append(None if value == 0 else value)
            elif f.kind == "float":
                column.append(None if value == 0 else value / 4)
            elif f.kind == "date":
                column.append(None if value == 0 else f"2022-0{value}-1{value}")
            else:
                column.append(["", None, "甲", "乙 b"][value])
        attrs[f.name] = column
    return FeatureRows(
        pd.DataFrame(attrs),
        np.array(geoms, dtype=object),
        np.array([k for k, _, _, _ in specs], dtype=object),
        np.array([u for _, _, _, u in specs], dtype=object),
    )


def _new_batch(store: Any, layer: str, kind: str = "import", sources: list[Path] | None = None) -> int:
    batch = Batch(
        0,
        layer,
        "调查.csv",
        f"sum-{layer}",
        "2024-01-01T00:00:00Z",
        None,
        "active",
        3,
        0,
        0,
        0,
        1,
        "gbk",
        None,
        kind,
    )  # type: ignore[arg-type]
    return int(store.new_batch(batch, sources))


def _write(store: Any, batch_id: int, rows: FeatureRows, replace_all: bool) -> Any:
    with store.transaction():
        assert _new_batch(store, SURVEY.name) == batch_id
        return store.write_features(SURVEY, batch_id, rows, replace_all)


def _rollback(store: Any, batch_id: int) -> Any:
    try:
        with store.transaction():
            store.begin_tx("rollback", batch_id)
            out = store.rollback_layer(SURVEY, batch_id)
            store.mark_rolled_back(batch_id)
            return out
    except GridwatchError as exc:
        return type(exc).__name__, exc.code


def _state(store: Any, txs: int) -> dict[str, Any]:
    """Everything the feature store tells about SURVEY, in plain comparable values."""
    cols = [f.name for f in SURVEY.stored_fields]
    table = store.read_table(SURVEY, [*cols, "gw_unit", "gw_key", "gw_batch", "gw_area"])
    fids, geoms = store.read_geometry(SURVEY)
    rfids, rgeoms = store.read_retired(SURVEY)
    visible = []
    for tx in range(1, txs + 1):
        frame, vgeoms = store.read_visible(SURVEY, tx, [*cols, "gw_unit"])
        visible.append((frame.to_dict("list"), shapely.to_wkb(vgeoms).tolist()))
        visible.append(store.read_table(SURVEY, cols, tx=tx).to_pydict())
    last = store.last_tx()
    return {
        "count": store.layer_count(SURVEY),
        "attributes": store.read_attributes(SURVEY).to_dict("list"),
        "rows": store.read_rows(SURVEY, np.array([1, 2, 3, 5, 8])).to_dict("list"),
        "table": table.to_pydict(),
        "types": [str(t) for t in table.schema.types],
        "geometry": (fids.tolist(), shapely.to_wkb(geoms).tolist()),
        "retired": (rfids.tolist(), shapely.to_wkb(rgeoms).tolist()),
        "visible": visible,
        "assignment": [a.tolist() for a in store.read_assignment(SURVEY)],
        "last_tx": None if last is None else (last.id, last.kind, last.batch_id),
    }


# connection --------------------------------------------------------------------------------
def test_schema_is_made_on_open_with_the_extension(pg_cluster: tuple[str, str]) -> None:
    folder, url = pg_cluster
    db = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {db} TEMPLATE template0")
    try:
        with pytest.raises(StoreError) as caught:
            PostgisStore(_db_url(folder, db), create=False).revision()
        assert caught.value.code == "no_postgis"
        assert "CREATE EXTENSION IF NOT EXISTS postgis" in caught.value.zh
        assert "CREATE EXTENSION IF NOT EXISTS postgis" in caught.value.en
        store = PostgisStore(_db_url(folder, db))
        assert store.revision() and store.srs_epsg() is None and store.last_tx() is None
        tables = {
            r[0] for r in store.conn.execute("SELECT tablename FROM pg_tables WHERE schemaname='public'")
        }
        assert {"gw_meta", "gw_tx", "gw_layers", "gw_batches", "gw_grid_versions"} <= tables
        # opening again keeps what is there
        again = PostgisStore(_db_url(folder, db))
        assert again.revision() == store.revision()
        again.close()
        store.close()
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE {db} WITH (FORCE)")


def test_credentials_never_show(pg_cluster: tuple[str, str]) -> None:
    folder, _ = pg_cluster
    url = f"postgresql://gridwatch:s3cret-pw@/nosuchdb?host={folder}"
    assert "s3cret" not in shown_location(url)
    assert shown_location("postgresql://u:pw@db.example:5433/x") == "postgresql://u:***@db.example:5433/x"
    for address in (url, f"postgresql:///nosuchdb?host={folder}&user=gridwatch&password=s3cret-pw"):
        store = PostgisStore(address)
        assert "s3cret" not in store.location
        with pytest.raises(StoreError) as caught:
            store.revision()
        assert caught.value.code == "store_unavailable"
        assert "s3cret" not in f"{caught.value.zh} {caught.value.en} {caught.value}"


def test_transaction_is_all_or_nothing(pg: PostgisStore) -> None:
    before = pg.revision()
    with pytest.raises(RuntimeError, match="boom"), pg.transaction():
        pg.begin_tx("import", 1)
        pg.write_features(SURVEY, 1, _rows([("a", 0, 1, "u1")]), False)
        raise RuntimeError("boom")
    assert pg.revision() == before
    assert pg.last_tx() is None and not pg.has_layer(SURVEY) and pg.layer_count(SURVEY) == 0
    with pg.transaction():
        assert pg.begin_tx("import", 1) == 1
        assert pg.begin_tx("other") == 1  # the same tx for the whole transaction
        pg.write_features(SURVEY, 1, _rows([("a", 0, 1, "u1")]), False)
    assert pg.revision() != before
    tx = pg.last_tx()
    assert tx is not None and (tx.id, tx.kind, tx.batch_id) == (1, "import", 1)
    assert pg.tx(1) == tx and pg.tx(2) is None
    assert pg.tx_at(tx.at) == 1 and pg.tx_at("2000-01-01T00:00:00.000000Z") == 0
    with pytest.raises(RuntimeError):
        pg.begin_tx("import")


def test_admin_transaction_keeps_the_revision(pg: PostgisStore) -> None:
    before = pg.revision()
    with pg.admin_transaction():
        pg.conn.execute("INSERT INTO gw_meta VALUES ('note', 'x')")
    assert pg.revision() == before
    with pytest.raises(ValueError), pg.admin_transaction():
        pg.conn.execute("INSERT INTO gw_meta VALUES ('note2', 'x')")
        raise ValueError
    assert pg.conn.execute("SELECT count(*) FROM gw_meta WHERE key='note2'").fetchone() == (0,)


def test_srs_is_set_once(pg: PostgisStore) -> None:
    assert pg.srs_epsg() == EPSG
    pg.set_srs_epsg(EPSG)
    with pytest.raises(Conflict):
        pg.set_srs_epsg(4326)


def test_snapshot_sees_one_state_while_another_handle_commits(pg: PostgisStore, pg_db: str) -> None:
    _write(pg, 1, _rows([("a", 0, 1, "u1")]), False)
    other = PostgisStore(pg_db)
    with pg.snapshot():
        before = (pg.revision(), pg.layer_count(SURVEY), pg.read_table(SURVEY, ["gw_key"]).to_pydict())
        done = threading.Event()

        def commit() -> None:  # another handle commits while the snapshot is open: not held back
            _write(other, 2, _rows([("b", 1, 1, "u1")]), False)
            done.set()

        worker = threading.Thread(target=commit)
        worker.start()
        worker.join(30)
        assert done.is_set()
        assert (
            pg.revision(),
            pg.layer_count(SURVEY),
            pg.read_table(SURVEY, ["gw_key"]).to_pydict(),
        ) == before
        with pytest.raises(RuntimeError):
            pg.transaction().__enter__()
    assert pg.layer_count(SURVEY) == 2 and pg.revision() != before[0]
    other.close()


def test_a_writer_held_back_gives_up_as_busy_instead_of_waiting_for_ever(
    pg: PostgisStore, pg_db: str
) -> None:
    # PostgreSQL waits for a lock for ever by default; the store sets its own wait
    assert pg.conn.execute("SHOW lock_timeout").fetchone() == ("1min",)
    # one the URL sets is kept: here a short one, so that the writer gives up quickly
    short = pg_db + ("&" if "?" in pg_db else "?") + "options=-c%20lock_timeout%3D300ms"
    other = PostgisStore(short)
    assert other.conn.execute("SHOW lock_timeout").fetchone() == ("300ms",)
    seen: dict[str, str] = {}
    with pg.hold_writes():

        def attempt() -> None:
            try:
                accounts.add_user(other, "mallory", "viewer", "a long enough password")
            except StoreError as exc:
                seen["refused"] = exc.code

        worker = threading.Thread(target=attempt)
        worker.start()
        worker.join(30)
        assert not worker.is_alive()
    assert seen == {"refused": "store_busy"}
    accounts.add_user(other, "mallory", "viewer", "a long enough password")  # free again
    assert [u.name for u in pg.list_users()] == ["mallory"]
    other.close()


def test_generations_move_per_layer(pg: PostgisStore) -> None:
    assert pg.layer_generation(SURVEY) == ""
    _write(pg, 1, _rows([("a", 0, 1, "u1")]), False)
    first = pg.layer_generation(SURVEY)
    assert first and pg.layer_generation(GRID) == ""
    _write(pg, 2, _rows([("a", 0, 1, "u1")]), False)  # unchanged rows: a write all the same
    assert pg.layer_generation(SURVEY) != first


# feature tables ------------------------------------------------------------------------------
def test_layer_tables_are_typed_and_indexed(pg: PostgisStore) -> None:
    _write(pg, 1, _rows([("a", 0, 1, "u1"), ("b", 1, 2, "u2")]), False)
    conn = pg.conn
    geo_cols = conn.execute(
        "SELECT f_table_name, f_geometry_column, type, srid FROM geometry_columns ORDER BY 1"
    ).fetchall()
    assert geo_cols == [
        (SURVEY.name, "geom", "POINT", EPSG),
        (f"{SURVEY.name}_history", "geom", "POINT", EPSG),
    ]
    types = dict(
        conn.execute(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_name=%s",
            (SURVEY.name,),
        ).fetchall()
    )
    kinds = {"str": "text", "int": "bigint", "float": "double precision", "date": "date"}
    for f in SURVEY.stored_fields:
        assert types[f.name] == kinds[f.kind]
    indexes = " ".join(
        r[0] for r in conn.execute("SELECT indexdef FROM pg_indexes WHERE tablename=%s", (SURVEY.name,))
    )
    assert "USING gist (geom)" in indexes and "(gw_key)" in indexes
    # a polygon in a layer of points: the column is widened to any geometry, still with its SRID
    _write(pg, 2, _rows([("c", 3, 1, "u1")]), False)
    assert conn.execute(
        "SELECT type, srid FROM geometry_columns WHERE f_table_name=%s", (SURVEY.name,)
    ).fetchone() == ("GEOMETRY", EPSG)
    assert pg.geometry_type(SURVEY) == "Geometry"
    assert pg.layer_count(SURVEY) == 3


def test_extent_is_kept(pg: PostgisStore) -> None:
    _write(pg, 1, _rows([("a", 0, 1, "u1")]), False)
    assert pg.extent(SURVEY) is None
    with pg.transaction():
        pg.update_extent(SURVEY, (1.0, 2.0, 3.0, 4.0))
        pg.update_extent(SURVEY, None)
    assert pg.extent(SURVEY) == (1.0, 2.0, 3.0, 4.0)
    with pg.transaction():  # a later write grows it, never shrinks it
        pg.update_extent(SURVEY, (0.0, 3.0, 2.0, 5.0))
    assert pg.extent(SURVEY) == (0.0, 2.0, 3.0, 5.0)


def test_reads_are_arrow_with_layer_types(pg: PostgisStore) -> None:
    _write(pg, 1, _rows([("a", 0, 1, "u1"), (None, 3, 0, "u2")]), False)
    cols = [f.name for f in SURVEY.stored_fields]
    table = pg.read_table(SURVEY, [*cols, "gw_area"])
    arrow = {"str": pa.string(), "int": pa.int64(), "float": pa.float64(), "date": pa.date32()}
    assert table.schema.types == [pa.int64(), *[arrow[f.kind] for f in SURVEY.stored_fields], pa.float64()]
    assert table.column("gw_area").to_pylist() == [None, 25.0]
    texts = [f.name for f in SURVEY.stored_fields if f.kind == "str"]
    assert table.column(texts[0]).to_pylist() == [None, ""]  # NULL stays null, empty text stays empty


# one behaviour, two backends ---------------------------------------------------------------------
# survey keys always given: the GeoPackage backend cannot take rows without one beside keyed
# rows into a layer that has rows (it compares a missing key with the others)
_KEY = st.sampled_from(["k1", "k2", "k3", "k4", "k5"])
_ROW = st.tuples(_KEY, st.integers(0, 3), st.integers(0, 3), st.sampled_from(["u1", "u2", "u3"]))
_OP = st.one_of(
    st.tuples(st.just("write"), st.lists(_ROW, max_size=5, unique_by=lambda r: r[0]), st.booleans()),
    st.tuples(st.just("rollback"), st.integers(0, 20)),
    st.tuples(st.just("units"), st.sampled_from(["u1", "u9"])),
)


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
    phases=[Phase.explicit, Phase.reuse, Phase.generate],  # shrinking costs a database per step
)
@given(ops=st.lists(_OP, min_size=1, max_size=7))
def test_features_behave_as_on_the_geopackage(
    pg_cluster: tuple[str, str], tmp_path_factory: Any, ops: list[Any]
) -> None:
    folder, url = pg_cluster
    db = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {db} TEMPLATE gw_template")
    stores: list[Any] = [
        GpkgStore(tmp_path_factory.mktemp("g") / "s.gpkg"),
        PostgisStore(_db_url(folder, db)),
    ]
    try:
        for s in stores:
            s.set_srs_epsg(EPSG)
        batch = 0
        live: list[int] = []
        for op in ops:
            results = []
            if op[0] == "write":
                batch += 1
                live.append(batch)
                for s in stores:
                    r = _write(s, batch, _rows(op[1]), op[2])
                    results.append(
                        (r.added, r.updated, r.unchanged, r.removed, r.fids.tolist(), r.rows.tolist())
                    )
            elif op[0] == "rollback" and live:
                target = live[op[1] % len(live)]
                results = [_rollback(s, target) for s in stores]
                if not isinstance(results[0][0], str):
                    live.remove(target)
            elif op[0] == "units":
                for s in stores:
                    fids, _ = s.read_assignment(SURVEY)
                    picked = fids[::2]
                    results.append(s.set_units(SURVEY, picked, np.full(len(picked), op[1], dtype=object)))
            assert results[0] == results[1] if results else True, op
            last = stores[0].last_tx()
            txs = 0 if last is None else last.id
            assert _state(stores[1], txs) == _state(stores[0], txs), op
    finally:
        for s in stores:
            s.close()
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE {db} WITH (FORCE)")


def test_rollback_restores_replaced_rows_and_refuses_when_blocked(pg: PostgisStore, gpkg: GpkgStore) -> None:
    for s in (pg, gpkg):
        _write(s, 1, _rows([("a", 0, 1, "u1"), ("b", 1, 1, "u1")]), False)
        _write(s, 2, _rows([("a", 0, 2, "u1")]), False)  # replaces a
        assert _rollback(s, 1) == ("Conflict", "rollback_blocked")
        assert _rollback(s, 2) == (1, 1)
        assert s.read_attributes(SURVEY)["gw_key"].tolist() == ["a", "b"]
        assert s.read_attributes(SURVEY)["fid"].tolist() == [1, 2]  # a came back with its own fid
        assert _rollback(s, 1) == (2, 0)
        assert s.layer_count(SURVEY) == 0
    assert _state(pg, 5) == _state(gpkg, 5)


# grid versions and assignments ---------------------------------------------------------------------
def _grid_rows(codes: list[str]) -> FeatureRows:
    attrs = pd.DataFrame(
        {f.name: [c if f.name == GRID.id_field else None for c in codes] for f in GRID.stored_fields}
    )
    geoms = [
        shapely.box(500_000 + 100 * i, 3_000_000, 500_100 + 100 * i, 3_000_100) for i in range(len(codes))
    ]
    return FeatureRows(
        attrs, np.array(geoms, dtype=object), np.array(codes, dtype=object), np.array(codes, dtype=object)
    )


def _grid_story(s: Any) -> list[Any]:
    seen: list[Any] = []
    _write(s, 1, _rows([("a", 0, 1, "u1"), ("b", 1, 1, "u2")]), False)
    with s.transaction():
        assert _new_batch(s, GRID.name, "grid") == 2
        s.write_features(GRID, 2, _grid_rows(["g1", "g2"]), True)
        v = s.add_grid_version(2, "2024-01-01")
        s.keep_assignment(SURVEY, v.id)
    seen.append([a.tolist() for a in s.read_assignment(SURVEY, 2)])
    with s.transaction():
        assert _new_batch(s, GRID.name, "grid") == 3
        s.write_features(GRID, 3, _grid_rows(["g1", "g3"]), True)
        v = s.add_grid_version(3, "2024-06-01")
        s.write_assignment(SURVEY, v.id, np.array([2]), np.array(["g3"], dtype=object))
        s.set_units(SURVEY, np.array([2]), np.array(["g3"], dtype=object))
    seen.append([a.tolist() for a in s.read_assignment(SURVEY, 3)])
    seen.append([a.tolist() for a in s.read_assignment(SURVEY, 3, np.array([2, 7]))])
    with s.transaction():  # replaces b (fid 2) by fid 3
        assert _new_batch(s, SURVEY.name) == 4
        s.write_features(SURVEY, 4, _rows([("b", 1, 2, "g3")]), False)
        s.keep_assignment(SURVEY, 3, np.array([3]))
    seen.append(_rollback(s, 4))  # b (fid 2) back, with its unit on version 3
    seen.append([a.tolist() for a in s.read_assignment(SURVEY)])
    with s.transaction():
        s.begin_tx("rollback", 3)
        s.retire_grid_version(3)
        s.rollback_layer(GRID, 3)
        s.mark_rolled_back(3)
    versions = s.grid_versions()
    seen.append([(v.id, v.valid_from, v.tx, v.parent, v.rolled_back_tx, v.units) for v in versions])
    current = s.current_grid_version()
    seen.append(None if current is None else current.id)
    with pytest.raises(GridwatchError) as caught:
        s.read_assignment(SURVEY, 99)
    seen.append(caught.value.code)
    seen.append([a.tolist() for a in s.read_assignment(GRID, 2)])
    return seen


def test_grid_versions_and_assignments_as_on_the_geopackage(pg: PostgisStore, gpkg: GpkgStore) -> None:
    expected = _grid_story(gpkg)
    assert _grid_story(pg) == expected
    assert expected[1] == [[1, 2], ["u1", "g3"]]
    assert expected[3] == (1, 1)
    assert expected[4] == [[1, 2], ["u1", "g3"]]
    assert expected[6] == 2
    assert _state(pg, 7) == _state(gpkg, 7)


# batches, targets, audit ------------------------------------------------------------------------------
def _batch_story(s: Any, tmp_path: Path) -> list[Any]:
    seen: list[Any] = []
    folder = tmp_path / "upload"
    (folder / "sub").mkdir(parents=True, exist_ok=True)
    (folder / "调查.csv").write_text("pid\nk1\n", encoding="utf-8")
    (folder / "sub" / "extra.txt").write_text("x", encoding="utf-8")
    s.actor.user, s.actor.client = "张三", "cli"
    with s.transaction():
        assert _new_batch(s, SURVEY.name, sources=[folder / "调查.csv"]) == 1
        r = s.write_features(SURVEY, 1, _rows([("k1", 0, 1, "u1"), ("k2", 1, 1, "u1")]), False)
        s.finish_batch(1, {"added": r.added, "rows_read": 2}, {"source_name": "调查.csv"})
    seen.append(s.archived_source(1))
    with pytest.raises(RuntimeError), s.transaction():  # nothing of a batch that does not commit
        assert _new_batch(s, SURVEY.name, sources=[folder / "调查.csv"]) == 2
        raise RuntimeError
    root = s.data if isinstance(s, PostgisStore) else s.path.parent
    seen.append(sorted(p.name for p in (root / "archive").glob("*")))
    with s.transaction():
        assert _new_batch(s, SURVEY.name, sources=[folder / "调查.csv", folder / "sub" / "extra.txt"]) == 2
        s.write_features(SURVEY, 2, _rows([("k2", 1, 2, "u1")]), False)
        s.finish_batch(2, {"updated": 1}, {})
    name, data = s.archived_source(2)
    seen.append((name, data[:2]))  # a zip of both files
    with pytest.raises(NotFound):
        s.archived_source(99)
    seen.append(s.find_checksum(SURVEY.name, f"sum-{SURVEY.name}", np.array(["k1"], dtype=object)))
    seen.append(s.key_batches(SURVEY, np.array(["k1", "k2", "k9", None], dtype=object)))
    with s.transaction():
        assert _new_batch(s, "targets", "targets") == 3
        s.set_targets(
            pd.DataFrame(
                {"code": ["a", "b"], "layer": [SURVEY.name] * 2, "metric": ["m", "m"], "target": [1, 2]}
            ),
            3,
        )
    with s.transaction():
        assert _new_batch(s, "targets", "targets") == 4
        s.set_targets(
            pd.DataFrame(
                {"code": ["b", "c"], "layer": [SURVEY.name] * 2, "metric": ["m", "m"], "target": [5, 6]}
            ),
            4,
        )
    seen.append(sorted(map(tuple, s.targets().itertuples(index=False))))
    seen.append(sorted(map(tuple, s.targets(tx=3).itertuples(index=False))))
    seen.append([b and b.id for b in (s.find_checksum("targets", "sum-targets"),)])
    with s.transaction():
        s.begin_tx("rollback", 4)
        seen.append(s.rollback_targets(4))
        s.mark_rolled_back(4)
    seen.append(sorted(map(tuple, s.targets().itertuples(index=False))))
    with pytest.raises(Conflict) as caught:
        s.mark_rolled_back(4)
    seen.append(caught.value.code)
    with pytest.raises(NotFound):
        s.mark_rolled_back(99)
    with pytest.raises(NotFound):
        s.batch(99)
    seen.append(
        [{**b.to_dict(), "rolled_back_at": bool(b.rolled_back_at), "report": b.report} for b in s.batches()]
    )
    seen.append([b.id for b in s.batches(SURVEY.name)])
    seen.append(s.batch(2).kind)
    seen.append(
        [
            (e.id, e.user, e.client, e.action, e.layer, e.batch_id, e.counts, e.detail)
            for e in s.audit_entries()
        ]
    )
    seen.append([e.id for e in s.audit_entries(limit=1, offset=1, user="张三", action="import")])
    seen.append([(t.id, t.kind, t.batch_id) for t in [s.tx(i) for i in range(1, 6)] if t])
    seen.append(s.layer_revision(SURVEY.name))
    return seen


def test_batches_targets_and_audit_as_on_the_geopackage(
    pg: PostgisStore, gpkg: GpkgStore, tmp_path: Path
) -> None:
    expected = _batch_story(gpkg, tmp_path / "g")
    got = _batch_story(pg, tmp_path / "p")
    assert got == expected
    assert expected[0] == ("调查.csv", b"pid\nk1\n")
    assert expected[2] == ("调查.csv", b"PK")
    assert expected[1] == ["000001"]
    assert expected[3] is not None and expected[3].id == 2  # the same file again would change nothing
    assert expected[4] == {"k1": (1, "张三"), "k2": (2, "张三")}
    assert expected[5] == [
        ("a", SURVEY.name, "m", 1.0, 3),
        ("b", SURVEY.name, "m", 5.0, 4),
        ("c", SURVEY.name, "m", 6.0, 4),
    ]
    assert expected[9] == [("a", SURVEY.name, "m", 1.0, 3), ("b", SURVEY.name, "m", 2.0, 3)]
    assert expected[10] == "already_rolled_back"
    assert [a[3] for a in expected[14]] == ["rollback", "import", "import"]
    assert sorted(p.name for p in (tmp_path / "pgdata").glob("archive/*")) == ["000001", "000002"]


def _value_map_story(s: Any) -> list[Any]:
    s.actor.user = "李四"
    seen: list[Any] = [s.value_maps()]
    first = s.save_value_map(SURVEY.name, "status", "yichai", "已拆", "done")
    s.save_value_map(SURVEY.name, "status", "weichai", "未拆", "open")
    again = s.save_value_map(SURVEY.name, "status", "yichai", "已拆除", "done")  # replaces the first
    seen.append((first, again))
    removed = s.remove_value_map(again)
    seen.append((removed.id, removed.removed_by, removed.removed_at is not None))
    for bad in (again, 99):
        with pytest.raises(GridwatchError) as caught:
            s.remove_value_map(bad)
        seen.append(caught.value.code)
    seen.append([(m.id, m.layer, m.field, m.raw_key, m.raw, m.code, m.user) for m in s.value_maps()])
    seen.append([(m.id, m.removed_by) for m in s.value_maps(SURVEY.name, include_removed=True)])
    seen.append(s.value_maps("other"))
    seen.append([(e.action, e.counts, e.detail) for e in s.audit_entries()])
    return seen


def test_value_maps_as_on_the_geopackage(pg: PostgisStore, gpkg: GpkgStore) -> None:
    expected = _value_map_story(gpkg)
    assert _value_map_story(pg) == expected
    assert expected[3:5] == ["already_removed", "mapping_not_found"]
    assert expected[5] == [(2, SURVEY.name, "status", "weichai", "未拆", "open", "李四")]
    assert [a for a, _, _ in expected[8]] == ["mapping_remove", "mapping_add", "mapping_add", "mapping_add"]


# accounts ------------------------------------------------------------------------------------------
def _account_story(s: Any) -> list[Any]:
    seen: list[Any] = []
    accounts.add_user(s, "wang", "admin", "correct horse 1")
    accounts.add_user(s, "li", "viewer", "correct horse 2")
    with pytest.raises(GridwatchError) as caught:
        accounts.add_user(s, "wang", "viewer", "correct horse 3")
    seen.append(caught.value.code)
    seen.append(accounts.authenticate(s, "wang", "correct horse 1", "10.0.0.1").name)
    for _ in range(accounts.MAX_FAILURES):
        with pytest.raises(GridwatchError) as caught:
            accounts.authenticate(s, "li", "wrong password", "10.0.0.2")
        seen.append(type(caught.value).__name__)
    record = s.login_failures("user", "li")
    seen.append((record.failures, record.locked_until is not None))
    seen.append(s.login_failures("client", "10.0.0.2").failures)
    accounts.set_password(s, "li", "another horse 9")
    seen.append(s.login_failures("user", "li").failures)
    accounts.set_role(s, "li", "surveyor")
    accounts.set_active(s, "li", False)
    accounts.end_sessions(s, "wang")
    seen.append([(u.name, u.role, u.active, u.failed_logins, u.session_version) for u in s.list_users()])
    token, secret = accounts.create_token(s, "wang", "脚本")
    seen.append((token.id, token.user, token.label, token.revoked_at))
    found = accounts.token_user(s, secret)
    seen.append(None if found is None else found.name)
    s.touch_token(token.id)
    seen.append(s.list_tokens("wang")[0].last_used is not None)
    seen.append(accounts.revoke_token(s, token.id).revoked_at is not None)
    seen.append((s.revoke_token(token.id), accounts.token_user(s, secret)))
    seen.append((s.find_token("nope"), s.get_user("nobody"), s.list_tokens("li")))
    s.clear_login_failures("client", "10.0.0.2")
    seen.append(s.login_failures("client", "10.0.0.2").failures)
    seen.append([(e.action, e.detail) for e in s.audit_entries()])
    return seen


def test_accounts_as_on_the_geopackage(pg: PostgisStore, gpkg: GpkgStore) -> None:
    expected = _account_story(gpkg)
    assert _account_story(pg) == expected
    assert expected[0] == "user_exists"
    assert expected[7][0] == MAX_FAILURES
    assert expected[10] == [("li", "surveyor", False, 0, 3), ("wang", "admin", True, 0, 1)]
    assert expected[12] == "wang" and expected[15] == (False, None)


# the engine on top ----------------------------------------------------------------------------------
def _import_story(s: Any, folder: Path) -> list[Any]:
    from geo.figures.tally import tally
    from geo.imports.batches import rollback
    from geo.imports.importer import import_file
    from tests.helpers.builders import dated_sites, grid_frame, write_shp

    seen: list[Any] = []
    import_file(s, GRID.name, write_shp(grid_frame(), folder / "g" / "网格.shp"))
    first = import_file(s, "demolition", write_shp(dated_sites(), folder / "a" / "a.shp"))
    later = dated_sites()
    later["当前状态"] = ["已拆除", "已拆除"]
    later["拆除时间"] = ["2022-03-01", "2022-07-01"]
    second = import_file(s, "demolition", write_shp(later, folder / "b" / "b.shp"))
    seen.append([(r.added, r.updated, r.unchanged) for r in (first, second)])
    again = import_file(s, "demolition", write_shp(later, folder / "c" / "c.shp"))
    seen.append((again.status, again.duplicate_of))

    def figures() -> list[Any]:
        out = []
        for level in [lv.name for lv in GRID.levels]:
            for as_of in (None, "2022-06-30"):
                t = tally(s, level, ["demolition"], as_of=as_of)
                out.append(t.round(9).astype(object).where(t.notna(), None).to_dict("list"))
        return out

    seen.append(figures())
    batches = [b.id for b in s.batches("demolition")]
    rollback(s, batches[-1])
    seen.append(figures())
    seen.append([(b.id, b.kind, b.status) for b in s.batches()])
    return seen


def test_imports_and_tallies_as_on_the_geopackage(pg: PostgisStore, gpkg: GpkgStore, tmp_path: Path) -> None:
    expected = _import_story(gpkg, tmp_path / "g")
    got = _import_story(pg, tmp_path / "p")
    assert got == expected
    assert expected[0] == [(2, 0, 0), (0, 1, 1)]
    assert expected[1] == ("duplicate", 3)  # the same file again is recognised, on PostGIS too
    assert expected[2] != expected[3]  # the rollback changed the figures


def test_open_store_takes_a_postgresql_url(
    pg_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from geo.store.backends import open_store

    monkeypatch.setenv("GRIDWATCH_DATA", str(tmp_path / "data"))
    for url in (pg_db, pg_db.replace("postgresql://", "postgres://", 1)):
        with open_store(url) as store:
            assert isinstance(store, PostgisStore)
            assert store.data == tmp_path / "data" and store.revision()


def test_a_connection_lost_mid_commit_keeps_nothing_and_the_handle_reconnects(
    pg: PostgisStore, pg_db: str
) -> None:
    _write(pg, 1, _rows([("a", 0, 1, "u1")]), False)
    before = (pg.revision(), pg.layer_generation(SURVEY), pg.last_tx())
    with pytest.raises(StoreError) as caught, pg.transaction():
        assert _new_batch(pg, SURVEY.name) == 2
        pg.write_features(SURVEY, 2, _rows([("a", 0, 2, "u1"), ("b", 1, 1, "u1")]), False)
        pid = pg.conn.info.backend_pid
        with psycopg.connect(pg_db, autocommit=True) as admin:  # the server ends this session
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        pg.write_features(SURVEY, 2, _rows([("c", 2, 1, "u1")]), False)
    assert caught.value.code == "store_unavailable"
    # the next call opens a new connection: the store is as it was before the transaction
    assert (pg.revision(), pg.layer_generation(SURVEY), pg.last_tx()) == before
    assert pg.read_attributes(SURVEY)["gw_key"].tolist() == ["a"]
    assert [b.id for b in pg.batches()] == [1]
    _write(pg, 2, _rows([("b", 1, 1, "u1")]), False)
    assert pg.layer_count(SURVEY) == 2


def test_failed_logins_counted_by_two_workers_at_once_all_count(pg_db: str, tmp_path: Path) -> None:
    """Read, count and save in one transaction on two handles at once: no count is lost."""
    import time

    each = 15
    errors: list[BaseException] = []

    def count() -> None:
        store = PostgisStore(pg_db, data=tmp_path / "pgdata")
        try:
            for _ in range(each):
                with store.admin_transaction():
                    record = store.login_failures("user", "nobody")
                    time.sleep(0.005)  # another worker reads meanwhile
                    record.failures += 1
                    store.save_login_failures(record)
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            store.close()

    workers = [threading.Thread(target=count) for _ in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert errors == []
    store = PostgisStore(pg_db, data=tmp_path / "pgdata")
    try:
        assert store.login_failures("user", "nobody").failures == 2 * each
    finally:
        store.close()
