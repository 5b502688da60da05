"""The store file as GIS tools see it: GDAL (through pyogrio) opens it without a warning, each
layer declares its geometry type and has an R-tree spatial index that stays equal to its rows
through imports, re-imports that replace rows, rollbacks and aborted transactions; GDAL's own
writes keep the index current too; a store of schema 5 (no index, every layer ``GEOMETRY``,
GeoPackage 1.4) gets all of that when it is opened."""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
import struct
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import apsw
import numpy as np
import pandas as pd
import pyogrio
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import layers
from geo.imports.batches import rollback
from geo.imports.importer import import_file
from geo.store.backends import open_store
from geo.store.base import STORE_FILE
from geo.store.gpkg.blobs import decode_geometries, encode_geometries
from geo.store.gpkg.spatial import register_functions, rtree_name, widen
from geo.store.interface.batches import Batch, batch_kind
from geo.store.interface.features import FeatureRows
from tests.helpers.builders import EPSG_GK, X0, Y0, grid_frame, points_frame, write_shp
from tests.test_faults import ROOT, _unprivileged

PARKING = layers.get("parking")
DEMOLITION = layers.get("demolition")


def _gdal_messages(path: Path, fn: Any) -> list[str]:
    """What GDAL reports (its warnings reach Python as RuntimeWarning) while ``fn(path)`` runs."""
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        fn(path)
    return [str(w.message) for w in seen]


def _read_all(path: Path) -> None:
    for name, _ in pyogrio.list_layers(path):
        pyogrio.read_info(path, layer=name)
        pyogrio.read_dataframe(path, layer=name)


def _index_matches(store: Any, table: str, box: tuple[float, float, float, float]) -> None:
    """The R-tree of ``table`` has its six triggers (for other writers) and holds one entry per row, and a bbox query on it finds exactly the
    rows shapely finds in the whole layer (coordinates are whole metres, exact in the R-tree's
    32-bit floats)."""
    con = store.conn
    rows = con.execute(f'SELECT fid, geom FROM "{table}" ORDER BY fid').fetchall()
    fids = np.array([r[0] for r in rows], dtype=np.int64)
    geoms = decode_geometries([bytes(r[1]) for r in rows])
    rt = rtree_name(table)
    triggers = {
        r[0]
        for r in con.execute("SELECT name FROM sqlite_master WHERE type='trigger' AND tbl_name=?", (table,))
    }
    assert triggers == {f"{rt}_{t}" for t in ("insert", "update1", "update2", "update3", "update4", "delete")}
    assert sorted(r[0] for r in con.execute(f'SELECT id FROM "{rt}"')) == fids.tolist()
    x0, y0, x1, y1 = box
    hits = sorted(
        r[0]
        for r in con.execute(
            f'SELECT id FROM "{rt}" WHERE maxx >= ? AND minx <= ? AND maxy >= ? AND miny <= ?',
            (x0, x1, y0, y1),
        )
    )
    expected = fids[shapely.intersects(geoms, shapely.box(x0, y0, x1, y1))] if len(fids) else fids
    assert hits == sorted(expected.tolist())


def _write(store: Any, xy: list[tuple[int, int]], keys: list[str], fail: bool = False) -> int:
    """One parking import of points at ``xy`` with survey ids ``keys`` (through the store, as the
    importer commits); with ``fail`` the transaction is aborted after the write."""
    n = len(xy)
    rows = FeatureRows(
        attrs=pd.DataFrame(index=range(n)),
        geometry=shapely.points(np.asarray(xy, dtype=float).reshape(n, 2)),
        keys=np.array(keys, dtype=object),
        units=np.array(["-"] * n, dtype=object),
    )
    batch = Batch(
        0,
        PARKING.name,
        "p.shp",
        "",
        "2026-01-01T00:00:00Z",
        None,
        "active",
        n,
        0,
        0,
        0,
        0,
        None,
        None,
        batch_kind(PARKING),
    )
    with store.transaction():
        if store.srs_epsg() is None:
            store.set_srs_epsg(EPSG_GK)
        bid = store.new_batch(batch, None)
        store.write_features(PARKING, bid, rows, replace_all=False)
        if fail:
            raise RuntimeError("aborted")
    return bid


_coord = st.tuples(st.integers(0, 400), st.integers(0, 400))
_box = st.tuples(st.integers(-10, 400), st.integers(-10, 400), st.integers(0, 300), st.integers(0, 300))


@pytest.mark.slow
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    first=st.lists(_coord, min_size=1, max_size=40),
    second=st.lists(_coord, min_size=1, max_size=40),
    shift=st.integers(0, 40),
    box=_box,
)
def test_the_rtree_equals_the_rows_through_imports_replacements_and_rollbacks(
    tmp_path_factory, first, second, shift, box
):
    store = open_store(tmp_path_factory.mktemp("s") / "data")
    try:
        x, y, w, h = box
        bbox = (X0 + x, Y0 + y, X0 + x + w, Y0 + y + h)

        def at(pts: list[tuple[int, int]]) -> list[tuple[int, int]]:
            return [(X0 + a, Y0 + b) for a, b in pts]

        _write(store, at(first), [f"K{i}" for i in range(len(first))])
        _index_matches(store, PARKING.name, bbox)
        # a re-import: ids shifted, so some rows replace earlier ones (moved) and some are new
        second_id = _write(store, at(second), [f"K{i + shift}" for i in range(len(second))])
        _index_matches(store, PARKING.name, bbox)
        # an import whose transaction fails leaves the index as it was
        with pytest.raises(RuntimeError):
            _write(store, at(first[::-1]), [f"K{i}" for i in range(len(first))], fail=True)
        _index_matches(store, PARKING.name, bbox)
        # rolling the re-import back puts the replaced rows back, under new fids
        rollback(store, second_id)
        _index_matches(store, PARKING.name, bbox)
        assert store.layer_count(PARKING) == len(first)
    finally:
        store.close()


@pytest.mark.parametrize(
    ("declared", "names", "wider"),
    [
        (None, {"POINT"}, "POINT"),
        ("POINT", {"MULTIPOINT"}, "MULTIPOINT"),
        ("MULTIPOLYGON", {"POLYGON"}, "MULTIPOLYGON"),
        ("POINT", {"POLYGON"}, "GEOMETRY"),
        ("GEOMETRY", {"POINT"}, "GEOMETRY"),
        (None, {"GEOMETRYCOLLECTION"}, "GEOMETRY"),
        ("POLYGON", set(), "POLYGON"),
        (None, set(), None),
    ],
)
def test_the_declared_type_widens_to_cover_what_a_layer_holds(declared, names, wider):
    assert widen(declared, names) == wider


def _gridded(data: Path, tmp_path: Path) -> Any:
    store = open_store(data)
    import_file(store, "grid", write_shp(grid_frame(), tmp_path / "g" / "网格.shp"))
    return store


def _parking_shp(tmp_path: Path, name: str, n: int) -> Path:
    xy = [(X0 + 10 + (i * 37) % 280, Y0 - 10 - (i * 53) % 280) for i in range(n)]
    frame = points_frame(xy, 编号=[f"P{i}" for i in range(n)], 状态=["规划"] * n)
    return write_shp(frame, tmp_path / name / "停放点.shp")


def _polygon_sites(tmp_path: Path) -> Path:
    boxes = [shapely.box(X0 + 20 + 30 * i, Y0 - 80, X0 + 40 + 30 * i, Y0 - 60) for i in range(3)]
    frame = points_frame([(0, 0)] * 3, 案件编号=["S1", "S2", "S3"], 当前状态=["已登记"] * 3).set_geometry(
        pd.Series(boxes), crs=EPSG_GK
    )
    return write_shp(frame, tmp_path / "poly" / "违法建设_面.shp")


@pytest.mark.slow
def test_gdal_opens_the_store_without_a_warning_with_types_and_indexes(tmp_path):
    data = tmp_path / "data"
    with _gridded(data, tmp_path) as store:
        import_file(store, "parking", _parking_shp(tmp_path, "p", 30))
        import_file(store, "demolition", _polygon_sites(tmp_path))
    path = data / STORE_FILE
    assert _gdal_messages(path, _read_all) == []
    types = {
        name: pyogrio.read_info(path, layer=name)["geometry_type"]
        for name in ("grid", "parking", "demolition")
    }
    assert types == {"grid": "Polygon", "parking": "Point", "demolition": "Polygon"}
    for name in types:
        assert pyogrio.read_info(path, layer=name)["capabilities"]["fast_spatial_filter"] is True
    con = sqlite3.connect(path)
    assert con.execute("PRAGMA application_id").fetchone()[0] == 0x47504B47
    assert con.execute("PRAGMA user_version").fetchone()[0] == 10300
    assert {
        r[0]
        for r in con.execute("SELECT table_name FROM gpkg_extensions WHERE extension_name='gpkg_rtree_index'")
    } == set(types)
    con.close()
    # GDAL's spatial filter (on the index) finds what shapely finds
    frame = pyogrio.read_dataframe(path, layer="parking", fid_as_index=True)
    box = (X0 + 50, Y0 - 200, X0 + 200, Y0 - 40)
    hits = pyogrio.read_dataframe(path, layer="parking", bbox=box, fid_as_index=True)
    assert sorted(hits.index) == sorted(frame.index[frame.intersects(shapely.box(*box))])
    assert 0 < len(hits) < len(frame)


@pytest.mark.slow
def test_a_layer_of_points_and_polygons_declares_geometry(tmp_path):
    """Demolition sites come as points and as polygons into the same layer: it then declares
    GEOMETRY (GDAL: Unknown, QGIS offers it split by type), and keeps its index."""
    data = tmp_path / "data"
    with _gridded(data, tmp_path) as store:
        import_file(store, "demolition", _polygon_sites(tmp_path))
        frame = points_frame([(X0 + 150, Y0 - 150)], 案件编号=["T1"], 当前状态=["已登记"])
        import_file(store, "demolition", write_shp(frame, tmp_path / "pt" / "违法建设.shp"))
        _index_matches(store, DEMOLITION.name, (X0, Y0 - 300, X0 + 300, Y0))
    path = data / STORE_FILE
    assert pyogrio.read_info(path, layer="demolition")["geometry_type"] == "Unknown"
    assert _gdal_messages(path, _read_all) == []


@pytest.mark.slow
def test_gdal_writing_the_store_keeps_the_index_current(tmp_path):
    """GDAL registers its own ST_ functions: a feature QGIS or ogr2ogr appends lands in the index."""
    data = tmp_path / "data"
    with _gridded(data, tmp_path) as store:
        import_file(store, "parking", _parking_shp(tmp_path, "p", 5))
    path = data / STORE_FILE
    extra = pyogrio.read_dataframe(path, layer="parking").iloc[:1].copy()
    extra = extra.set_geometry([shapely.Point(X0 + 7, Y0 - 9)], crs=EPSG_GK)
    assert (
        _gdal_messages(path, lambda p: pyogrio.write_dataframe(extra, p, layer="parking", append=True)) == []
    )
    con = sqlite3.connect(path)
    assert con.execute("SELECT count(*) FROM parking").fetchone()[0] == 6
    assert con.execute("SELECT count(*) FROM rtree_parking_geom").fetchone()[0] == 6
    assert con.execute("SELECT id FROM rtree_parking_geom WHERE minx < ? + 8", (X0,)).fetchall() == [(6,)]
    con.close()


def test_a_gdal_warning_is_seen(tmp_path):
    """The check above can fail: a GeoPackage of a later version than GDAL knows is reported."""
    data = tmp_path / "data"
    open_store(data).close()
    path = data / STORE_FILE
    con = sqlite3.connect(path)
    con.execute("PRAGMA user_version = 10900")
    con.commit()
    con.close()
    assert any("user_version" in m for m in _gdal_messages(path, _read_all))


def _as_schema_5(path: Path) -> None:
    """What the code of schema 5 wrote: GeoPackage 1.4, every layer GEOMETRY, no R-tree."""
    con = sqlite3.connect(path)
    tables = [r[0] for r in con.execute("SELECT table_name FROM gpkg_geometry_columns")]
    for t in tables:
        for (trigger,) in con.execute(
            "SELECT name FROM sqlite_master WHERE type='trigger' AND tbl_name=?", (t,)
        ).fetchall():
            con.execute(f'DROP TRIGGER "{trigger}"')
        con.execute(f'DROP TABLE "rtree_{t}_geom"')
    con.execute("DROP TABLE gpkg_extensions")
    con.execute("UPDATE gpkg_geometry_columns SET geometry_type_name='GEOMETRY'")
    con.execute("PRAGMA user_version = 10400")
    con.execute("UPDATE gw_meta SET value='5' WHERE key='schema'")
    con.commit()
    con.close()


@pytest.mark.slow
def test_a_store_of_schema_5_gets_its_indexes_and_types(tmp_path):
    data = tmp_path / "data"
    with _gridded(data, tmp_path) as store:
        import_file(store, "parking", _parking_shp(tmp_path, "p", 20))
        # a handle opened before still reads the store once it is back in the old layout (as a
        # read-only store that cannot be upgraded is read)
        _as_schema_5(data / STORE_FILE)
        assert store.layer_count(PARKING) == 20
        assert len(store.read_geometry(PARKING)[0]) == 20
    path = data / STORE_FILE
    assert pyogrio.read_info(path, layer="parking")["geometry_type"] == "Unknown"
    with open_store(data) as store:
        assert store._meta("schema") == "9"
        _index_matches(store, PARKING.name, (X0, Y0 - 150, X0 + 150, Y0))
        _index_matches(store, "grid", (X0, Y0 - 150, X0 + 150, Y0))
        # and it goes on: a re-import that moves rows keeps the index equal to the rows
        import_file(store, "parking", _parking_shp(tmp_path, "p2", 25))
        _index_matches(store, PARKING.name, (X0, Y0 - 150, X0 + 150, Y0))
    assert _gdal_messages(path, _read_all) == []
    assert pyogrio.read_info(path, layer="parking")["geometry_type"] == "Point"
    assert pyogrio.read_info(path, layer="grid")["geometry_type"] == "Polygon"


def test_the_sql_functions_read_blobs_with_and_without_an_envelope():
    """The functions the triggers call, on what other writers store too: a point without an
    envelope (as GDAL writes points), a big-endian header, an empty geometry and NULL."""
    con = apsw.Connection(":memory:")
    register_functions(con)
    poly = encode_geometries(np.array([shapely.box(1, 2, 3, 5)], dtype=object), 0)[0]
    bare = b"GP\x00\x01" + struct.pack("<i", 0) + shapely.to_wkb(shapely.Point(7, 8), byte_order=1)
    big = (
        b"GP\x00\x02"
        + struct.pack(">i", 0)
        + struct.pack(">4d", 1, 3, 2, 5)
        + shapely.to_wkb(shapely.box(1, 2, 3, 5), byte_order=0)
    )
    empty = encode_geometries(np.array([shapely.Point()], dtype=object), 0)[0]
    sql = "SELECT ST_MinX(?1), ST_MaxX(?1), ST_MinY(?1), ST_MaxY(?1), ST_IsEmpty(?1), gw_wkb_type(?1)"
    assert con.execute(sql, (poly,)).fetchone() == (1.0, 3.0, 2.0, 5.0, 0, 3)
    assert con.execute(sql, (bare,)).fetchone() == (7.0, 7.0, 8.0, 8.0, 0, 1)
    assert con.execute(sql, (big,)).fetchone() == (1.0, 3.0, 2.0, 5.0, 0, 3)
    assert con.execute(sql, (empty,)).fetchone() == (None, None, None, None, 1, 1)
    assert con.execute(sql, (None,)).fetchone() == (None,) * 6
    con.close()


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory outside pytest's private temporary tree, so that another user can reach it."""
    path = Path(tempfile.mkdtemp(prefix="gridwatch-gpkg-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


_READ_OLD = """
import sys
import layers
from geo.store.backends import open_store
with open_store(sys.argv[1]) as store:
    spec = layers.get("parking")
    print(store._meta("schema"), store.layer_count(spec), len(store.read_geometry(spec)[0]))
"""


@pytest.mark.slow
def test_a_read_only_store_of_schema_5_is_read_as_it_is(shared_dir, tmp_path):
    """A store of schema 5 that cannot be written (mode 0444, read by a user who cannot write
    it) is not upgraded and reads as before; the file does not change."""
    data = shared_dir / "store"
    with _gridded(data, tmp_path) as store:
        import_file(store, "parking", _parking_shp(tmp_path, "p", 20))
    path = data / STORE_FILE
    _as_schema_5(path)
    for p in [shared_dir, *shared_dir.rglob("*")]:
        p.chmod(0o755 if p.is_dir() else 0o644)
    path.chmod(0o444)
    runner = _unprivileged(path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    run = subprocess.run(
        [*runner.prefix, sys.executable, "-c", _READ_OLD, str(data)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        **runner.popen,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.split() == ["5", "20", "20"]
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest
