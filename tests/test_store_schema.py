"""The stored schema as GIS tools and database roles meet it: the typed views of a layer that
holds points and polygons (both backends; GDAL reads the GeoPackage's, PostGIS lists its own in
``geometry_columns``), the PostGIS schema version and its upgrade, and a PostGIS role without
the right to create tables."""

from __future__ import annotations

import dataclasses
import sqlite3
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pyogrio
import pytest
import shapely
import shapely.affinity

from geo.errors import StoreError
from geo.store.gpkg import GpkgStore
from geo.store.gpkg.migrations import SCHEMA_VERSION as GPKG_SCHEMA
from geo.store.postgis import PostgisStore
from geo.store.postgis.connection import SCHEMA_VERSION as PG_SCHEMA
from geo.store.typed_views import view_name, views_needed
from tests import test_store_postgis as on_pg
from tests.test_store_postgis import EPSG, SURVEY, _rollback, _rows, _write

# an empty PostGIS store, as the PostGIS backend's own tests have it (the cluster and its
# databases: pg_cluster, pg_db in tests/conftest.py)
pg = on_pg.pg

POINT_VIEW = view_name(SURVEY.name, "POINT")
POLYGON_VIEW = view_name(SURVEY.name, "POLYGON")


def _mixed(store: Any) -> None:
    """Two points (batch 1), then a polygon and a third point (batch 2)."""
    _write(store, 1, _rows([("a", 0, 1, "u1"), ("b", 1, 2, "u2")]), False)
    _write(store, 2, _rows([("c", 3, 1, "u1"), ("d", 2, 3, "u2")]), False)


def test_views_needed() -> None:
    assert views_needed("POINT", None, ["POINT"]) == []
    assert views_needed("GEOMETRY", "POINT", ["POLYGON"]) == ["POINT", "POLYGON"]
    assert views_needed("Geometry", "MultiPoint", ["Polygon"]) == ["POINT", "POLYGON", "MULTIPOINT"]
    assert views_needed("GEOMETRY", "GEOMETRY", ["MULTIPOLYGON"]) == ["MULTIPOLYGON"]


# GeoPackage ----------------------------------------------------------------------------------
def _gdal_layers(path: Path) -> dict[str, tuple[str, int]]:
    """Each feature layer GDAL finds: (geometry type, feature count); no GDAL warning allowed."""
    out = {}
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        for name, kind in pyogrio.list_layers(path):
            if kind is None:
                continue
            info = pyogrio.read_info(path, layer=name)
            frame = pyogrio.read_dataframe(path, layer=name, fid_as_index=True)
            assert len(frame) == info["features"]
            out[str(name)] = (str(info["geometry_type"]), len(frame))
    assert [str(w.message) for w in seen] == []
    return out


@pytest.mark.slow
def test_geopackage_views_split_a_mixed_layer_for_gdal(tmp_path: Path) -> None:
    path = tmp_path / "store.gpkg"

    def step(fn: Any) -> dict[str, tuple[str, int]]:
        """``fn`` on a handle of the store, closed before GDAL reads the file."""
        with GpkgStore(path) as store:
            fn(store)
        return _gdal_layers(path)

    seen = step(
        lambda s: (s.set_srs_epsg(EPSG), _write(s, 1, _rows([("a", 0, 1, "u1"), ("b", 1, 2, "u2")]), False))
    )
    assert seen[SURVEY.name] == ("Point", 2) and POINT_VIEW not in seen  # one type: the table alone

    def second(s: GpkgStore) -> None:
        _write(s, 2, _rows([("c", 3, 1, "u1"), ("d", 2, 3, "u2")]), False)
        with s.transaction():
            s.update_extent(SURVEY, (500_000.0, 3_000_000.0, 500_035.0, 3_000_005.0))

    seen = step(second)
    assert seen[SURVEY.name] == ("Unknown", 4)
    assert seen[POINT_VIEW] == ("Point", 3) and seen[POLYGON_VIEW] == ("Polygon", 1)
    # GDAL's feature ids are the table's
    fids = pyogrio.read_dataframe(path, layer=POLYGON_VIEW, fid_as_index=True).index.tolist()
    con = sqlite3.connect(path)
    assert fids == [r[0] for r in con.execute(f"SELECT fid FROM \"{SURVEY.name}\" WHERE gw_key='c'")]
    assert con.execute(
        "SELECT count(*) FROM gpkg_contents WHERE table_name IN (?, ?) AND max_x = 500035",
        (POINT_VIEW, POLYGON_VIEW),
    ).fetchone() == (2,)
    con.close()
    # views follow writes: the polygon batch rolled back empties its view
    seen = step(lambda s: _rollback(s, 2))
    assert seen[POINT_VIEW] == ("Point", 2) and seen[POLYGON_VIEW] == ("Polygon", 0)
    assert seen[SURVEY.name][1] == 2


@pytest.mark.slow
def test_a_geopackage_of_schema_6_gets_its_typed_views(tmp_path: Path) -> None:
    path = tmp_path / "store.gpkg"
    store = GpkgStore(path)
    store.set_srs_epsg(EPSG)
    _mixed(store)
    store.close()
    con = sqlite3.connect(path)  # what the code of schema 6 wrote: no views
    for view in (POINT_VIEW, POLYGON_VIEW):
        con.execute(f'DROP VIEW "{view}"')
        con.execute("DELETE FROM gpkg_geometry_columns WHERE table_name=?", (view,))
        con.execute("DELETE FROM gpkg_contents WHERE table_name=?", (view,))
    con.execute("UPDATE gw_meta SET value='6' WHERE key='schema'")
    con.commit()
    con.close()
    assert POINT_VIEW not in _gdal_layers(path)
    with GpkgStore(path) as store:
        assert store._meta("schema") == str(GPKG_SCHEMA)
    seen = _gdal_layers(path)
    assert seen[POINT_VIEW] == ("Point", 3) and seen[POLYGON_VIEW] == ("Polygon", 1)


# PostGIS ------------------------------------------------------------------------------------
def _pg_views(store: PostgisStore) -> dict[str, tuple[str, int, int]]:
    """Each typed view of SURVEY in ``geometry_columns``: (type, srid, rows)."""
    out = {}
    for name, kind, srid in store.conn.execute(
        "SELECT f_table_name, type, srid FROM geometry_columns WHERE f_table_name LIKE %s ORDER BY 1",
        (SURVEY.name + "\\_%",),
    ).fetchall():
        if name.endswith("_history"):
            continue
        count = store.conn.execute(f'SELECT count(*) FROM "{name}"').fetchone()
        assert count is not None
        out[str(name)] = (str(kind), int(srid), int(count[0]))
    return out


@pytest.mark.needs("postgis")
@pytest.mark.slow
def test_postgis_views_are_typed_in_geometry_columns_and_follow_writes(pg: PostgisStore) -> None:
    _write(pg, 1, _rows([("a", 0, 1, "u1"), ("b", 1, 2, "u2")]), False)
    assert _pg_views(pg) == {}
    _write(pg, 2, _rows([("c", 3, 1, "u1"), ("d", 2, 3, "u2")]), False)
    assert _pg_views(pg) == {POINT_VIEW: ("POINT", EPSG, 3), POLYGON_VIEW: ("POLYGON", EPSG, 1)}
    assert pg.layer_count(SURVEY) == 4
    columns = [
        r[0]
        for r in pg.conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name=%s ORDER BY ordinal_position",
            (POLYGON_VIEW,),
        )
    ]
    assert columns[:2] == ["fid", "geom"] and {f.name for f in SURVEY.stored_fields} <= set(columns)
    comment = pg.conn.execute("SELECT obj_description(to_regclass(%s))", (POLYGON_VIEW,)).fetchone()
    assert comment is not None and SURVEY.label_zh in comment[0]
    _rollback(pg, 2)
    assert _pg_views(pg) == {POINT_VIEW: ("POINT", EPSG, 2), POLYGON_VIEW: ("POLYGON", EPSG, 0)}


@pytest.mark.needs("postgis")
@pytest.mark.slow
def test_a_postgis_store_of_schema_1_is_upgraded_on_open(pg: PostgisStore, pg_db: str) -> None:
    _mixed(pg)
    revision = pg.revision()
    with pg.admin_transaction():  # back to what schema 1 held
        pg.conn.execute(f'DROP VIEW "{POINT_VIEW}", "{POLYGON_VIEW}"')
        pg.conn.execute("UPDATE gw_meta SET value='1' WHERE key='schema'")
    pg.close()
    with PostgisStore(pg_db) as again:
        assert again._meta("schema") == str(PG_SCHEMA) == "3"
        assert _pg_views(again) == {POINT_VIEW: ("POINT", EPSG, 3), POLYGON_VIEW: ("POLYGON", EPSG, 1)}
        assert again.revision() == revision and again.layer_count(SURVEY) == 4


@pytest.mark.needs("postgis")
@pytest.mark.slow
def test_a_postgis_store_of_a_newer_schema_is_refused(pg: PostgisStore, pg_db: str) -> None:
    with pg.admin_transaction():
        pg.conn.execute("UPDATE gw_meta SET value='99' WHERE key='schema'")
    for create in (True, False):
        with pytest.raises(StoreError) as caught:
            PostgisStore(pg_db, create=create).revision()
        assert caught.value.code == "store_too_new"
        assert "99" in caught.value.zh and "gridwatch" in caught.value.zh
        assert "newer gridwatch" in caught.value.en and "99" in caught.value.en
    with psycopg.connect(pg_db) as conn:  # refused without touching it
        assert conn.execute("SELECT value FROM gw_meta WHERE key='schema'").fetchone() == ("99",)


@pytest.fixture
def clerk(pg_cluster: tuple[str, str], pg_db: str) -> Iterator[str]:
    """A login role of the throw-away cluster that owns nothing and may create nothing (its
    grants in ``pg_db`` dropped with it)."""
    _, url = pg_cluster
    role = f"clerk_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN")
    yield role
    with psycopg.connect(pg_db, autocommit=True) as conn:
        conn.execute(f"DROP OWNED BY {role}")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DROP ROLE {role}")


@pytest.mark.needs("postgis")
@pytest.mark.slow
def test_a_role_without_create_rights_is_told_which_sql_to_run(
    pg_cluster: tuple[str, str], pg_db: str, clerk: str, tmp_path: Path
) -> None:
    folder, url = pg_cluster
    as_clerk = pg_db.replace("postgresql://gridwatch@", f"postgresql://{clerk}@")
    # no tables yet, and no right to make them: the GRANT to run, in both languages
    with pytest.raises(StoreError) as caught:
        PostgisStore(as_clerk, data=tmp_path).revision()
    assert caught.value.code == "no_create_rights", caught.value.en
    grant = f'GRANT CREATE ON SCHEMA public TO "{clerk}";'
    assert grant in caught.value.zh and grant in caught.value.en
    # no PostGIS either (a database made from template0): the CREATE EXTENSION to run
    db = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {db} TEMPLATE template0")
    try:
        with pytest.raises(StoreError) as caught:
            PostgisStore(f"postgresql://{clerk}@/{db}?host={folder}", data=tmp_path).revision()
        assert caught.value.code == "no_postgis"
        assert "CREATE EXTENSION IF NOT EXISTS postgis" in caught.value.en
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE {db} WITH (FORCE)")
    # the owner made the schema and the layer and granted the rows: the clerk works with them
    with PostgisStore(pg_db, data=tmp_path) as owner:
        owner.set_srs_epsg(EPSG)
        _mixed(owner)
        owner.conn.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {clerk};")
    with PostgisStore(as_clerk, data=tmp_path) as store:
        assert store.layer_count(SURVEY) == 4
        _write(store, 3, _rows([("e", 0, 2, "u1")]), False)
        assert _pg_views(store)[POINT_VIEW] == ("POINT", EPSG, 4)
    # an older schema the clerk may not upgrade: told to open it once as the owner
    with psycopg.connect(pg_db, autocommit=True) as conn:
        conn.execute("UPDATE gw_meta SET value='1' WHERE key='schema'")
    with pytest.raises(StoreError) as caught:
        PostgisStore(as_clerk, data=tmp_path).revision()
    assert caught.value.code == "no_create_rights" and "owner" in caught.value.en
    with PostgisStore(pg_db, data=tmp_path) as owner:
        assert owner._meta("schema") == str(PG_SCHEMA)


@pytest.mark.needs("postgis")
@pytest.mark.slow
def test_postgis_views_take_the_fields_a_layer_gains(pg: PostgisStore) -> None:
    """A layer stored before it declared its last field: the field is added to the table and
    the views are made again with it (a PostgreSQL view keeps the columns it was made with)."""
    older = dataclasses.replace(SURVEY, fields=SURVEY.fields[:-1])
    last = SURVEY.fields[-1].name
    with pg.transaction():
        assert on_pg._new_batch(pg, SURVEY.name) == 1
        pg.write_features(older, 1, _rows([("a", 0, 1, "u1"), ("c", 3, 1, "u1")]), False)

    def columns(view: str) -> list[str]:
        return [
            r[0]
            for r in pg.conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name=%s", (view,)
            )
        ]

    assert last not in columns(POINT_VIEW)
    _write(pg, 2, _rows([("b", 1, 2, "u2")]), False)
    assert last in columns(POINT_VIEW) and last in columns(POLYGON_VIEW)
    assert _pg_views(pg) == {POINT_VIEW: ("POINT", EPSG, 2), POLYGON_VIEW: ("POLYGON", EPSG, 1)}


@pytest.mark.needs("postgis")
@pytest.mark.slow
def test_a_table_added_to_the_schema_without_a_new_version_is_made(pg: PostgisStore, pg_db: str) -> None:
    """The tables of SCHEMA_SQL are checked by their digest as well as the version number."""
    pg.conn.execute("DROP TABLE gw_logins")  # as if the code had added it since the database was made
    pg.conn.execute("UPDATE gw_meta SET value='older' WHERE key='schema_sql'")
    pg.close()
    with PostgisStore(pg_db) as again:
        assert again._meta("schema") == str(PG_SCHEMA)
        assert again.conn.execute("SELECT to_regclass('gw_logins')").fetchone() == ("gw_logins",)
        assert again._meta("schema_sql") != "older"


@pytest.mark.needs("postgis")
@pytest.mark.slow
def test_a_failed_upgrade_leaves_the_older_schema_as_it_was(
    pg: PostgisStore, pg_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The upgrade is one transaction: a step that fails after making a view keeps nothing."""
    _mixed(pg)
    with pg.admin_transaction():
        pg.conn.execute(f'DROP VIEW "{POINT_VIEW}", "{POLYGON_VIEW}"')
        pg.conn.execute("UPDATE gw_meta SET value='1' WHERE key='schema'")
    pg.close()
    made = PostgisStore.upgrade_views

    def fails(self: PostgisStore) -> None:
        made(self)
        raise RuntimeError("step failed")

    monkeypatch.setattr(PostgisStore, "upgrade_views", fails)
    with pytest.raises(RuntimeError, match="step failed"):
        PostgisStore(pg_db).revision()
    with psycopg.connect(pg_db) as conn:
        assert conn.execute("SELECT value FROM gw_meta WHERE key='schema'").fetchone() == ("1",)
        assert conn.execute("SELECT to_regclass(%s)", (POINT_VIEW,)).fetchone() == (None,)
    monkeypatch.undo()
    with PostgisStore(pg_db) as again:
        assert again._meta("schema") == str(PG_SCHEMA) and POINT_VIEW in _pg_views(again)


def _multi_rows() -> Any:
    """A point and a two-part polygon (a multi-polygon) of SURVEY."""
    rows = _rows([("m", 0, 1, "u1"), ("n", 3, 1, "u1")])
    geoms = rows.geometry.copy()
    geoms[1] = shapely.MultiPolygon([geoms[1], shapely.affinity.translate(geoms[1], 20, 0)])
    return dataclasses.replace(rows, geometry=geoms)


@pytest.mark.needs("postgis")
@pytest.mark.slow
def test_multi_part_rows_get_their_own_views(tmp_path: Path, pg: PostgisStore) -> None:
    path = tmp_path / "multi.gpkg"
    with GpkgStore(path) as store:
        store.set_srs_epsg(EPSG)
        _write(store, 1, _multi_rows(), False)
    seen = _gdal_layers(path)
    assert seen[POINT_VIEW] == ("Point", 1)
    assert seen[view_name(SURVEY.name, "MULTIPOLYGON")] == ("MultiPolygon", 1)
    assert POLYGON_VIEW not in seen
    _write(pg, 1, _multi_rows(), False)
    assert _pg_views(pg) == {
        POINT_VIEW: ("POINT", EPSG, 1),
        view_name(SURVEY.name, "MULTIPOLYGON"): ("MULTIPOLYGON", EPSG, 1),
    }
