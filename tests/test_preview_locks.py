"""An upload's preview (a dry run) gives exactly the report the commit then gives, for files of
points, polygons and both; on PostGIS it neither waits for a commit under way nor alters the
layer's table (a polygon preview into a points-only layer leaves the table as it was)."""

from __future__ import annotations

import threading
from pathlib import Path

import geopandas as gpd
import numpy as np
import psycopg
import pytest
import shapely

import layers
from geo.imports.importer import import_file
from geo.store.backends import open_store
from tests.helpers.builders import EPSG_GK, X0, Y0

#: the report fields a preview and its commit must agree on
COMPARED = (
    "rows_read",
    "added",
    "updated",
    "unchanged",
    "removed",
    "rejected_total",
    "rejected_by_reason",
    "unassigned",
    "mappings_remembered",
    "warnings",
    "value_mappings",
    "completed_undated",
    "areas_from_geometry",
)


def _sites(kind: str, n: int = 8, shift: float = 0.0) -> list[shapely.Geometry]:
    """``n`` sites inside the grid: points, squares of 6 m, or both in turn; ``shift`` moves them."""
    xy = np.column_stack([X0 + 20 + 35 * np.arange(n) % 260 + shift, Y0 - 30 - 25 * (np.arange(n) % 10)])
    points = shapely.points(xy)
    boxes = shapely.box(xy[:, 0] - 3, xy[:, 1] - 3, xy[:, 0] + 3, xy[:, 1] + 3)
    if kind == "point":
        return list(points)
    if kind == "polygon":
        return list(boxes)
    return [boxes[i] if i % 2 else points[i] for i in range(n)]


def _file(folder: Path, geoms: list[shapely.Geometry], keys: list[str]) -> Path:
    """A GeoPackage survey file (it may hold points and polygons in one layer)."""
    folder.mkdir(parents=True, exist_ok=True)
    frame = gpd.GeoDataFrame(
        {"案件编号": keys, "当前状态": ["已登记"] * len(keys)}, geometry=geoms, crs=EPSG_GK
    )
    path = folder / "台账.gpkg"
    frame.to_file(path, engine="pyogrio", layer="台账")
    return path


def _compared(report) -> dict:
    data = report.to_dict()
    return {k: data[k] for k in COMPARED}


def _next_file(tmp_path: Path, kind: str) -> Path:
    """After the 8 base points H0..H7: H0..H2 as they were, H3..H5 moved or reshaped, H6..H7
    gone from the file, H8..H10 new -- in geometries of ``kind``."""
    base = _sites("point")
    other = _sites(kind, n=11, shift=4.0)
    geoms = base[:3] + other[3:6] + other[8:11]
    keys = [f"H{i}" for i in (0, 1, 2, 3, 4, 5, 8, 9, 10)]
    return _file(tmp_path / f"next-{kind}", geoms, keys)


@pytest.mark.backends
@pytest.mark.parametrize("kind", ["point", "polygon", "mixed"])
def test_a_preview_reports_what_the_commit_then_does(gridded_store, tmp_path, kind):
    store = gridded_store
    spec = layers.get("demolition")
    import_file(store, "demolition", _file(tmp_path / "base", _sites("point"), [f"H{i}" for i in range(8)]))
    path = _next_file(tmp_path, kind)
    preview = import_file(store, "demolition", path, dry_run=True)
    assert preview.status == "preview" and preview.batch_id is None
    assert (preview.added, preview.updated, preview.unchanged, preview.removed) == (3, 3, 3, 0)
    again = import_file(store, "demolition", path, dry_run=True)
    assert _compared(again) == _compared(preview)  # the preview left nothing behind
    committed = import_file(store, "demolition", path)
    assert committed.status == "committed"
    assert _compared(committed) == _compared(preview)
    fids, geoms = store.read_geometry(spec)
    assert len(fids) == 11
    wanted = {"point": {"Point"}, "polygon": {"Point", "Polygon"}, "mixed": {"Point", "Polygon"}}[kind]
    assert set(shapely.get_type_id(geoms).tolist()) == {{"Point": 0, "Polygon": 3}[t] for t in wanted}


# --- PostGIS only -----------------------------------------------------------------------------


def _base_points(store, tmp_path: Path, n: int = 8) -> None:
    import_file(
        store, "demolition", _file(tmp_path / "base", _sites("point", n), [f"H{i}" for i in range(n)])
    )


@pytest.mark.slow
@pytest.mark.needs("postgis")
@pytest.mark.parametrize("store_backend", ["postgis"], indirect=True)
def test_a_preview_finishes_while_a_commit_holds_its_transaction_open(gridded_store, tmp_path, store_url):
    store = gridded_store
    _base_points(store, tmp_path)
    # the commit held open updates H3..H5 and adds H8..H10 (points: it does not widen the table,
    # which would hold every reader of it until it ends)
    theirs = _next_file(tmp_path, "point")
    mine = _next_file(tmp_path, "mixed")  # the preview touches the same keys
    expected = import_file(store, "demolition", mine, dry_run=True)
    written, release = threading.Event(), threading.Event()
    failures: list[BaseException] = []

    def hold() -> None:
        try:
            with open_store(store_url, data=tmp_path / "data") as other, other.transaction():
                import_file(other, "demolition", theirs)  # nested: it commits when the outer one does
                written.set()
                assert release.wait(60)
        except BaseException as exc:  # told to the test below
            failures.append(exc)
            written.set()

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert written.wait(60) and not failures
        # fail rather than wait: a preview that queued behind the commit would be refused as busy
        store.conn.execute("SET lock_timeout = '3s'")
        during = import_file(store, "demolition", mine, dry_run=True)
    finally:
        release.set()
        holder.join(60)
    assert not failures and not holder.is_alive()
    assert during.warnings == [] and _compared(during) == _compared(expected)
    after = import_file(store, "demolition", mine, dry_run=True)  # the commit is in now
    assert (after.added, after.updated, after.unchanged) == (0, 3, 6)  # its polygons differ


def _table_state(url: str, table: str) -> tuple[str, int, str]:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT format_type(a.atttypid, a.atttypmod), c.relfilenode::bigint, l.geometry_type"
            " FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN gw_layers l ON l.name = %s"
            " WHERE a.attrelid = to_regclass(%s) AND a.attname = 'geom'",
            (table, f'"{table}"'),
        ).fetchone()
    assert row is not None
    return str(row[0]), int(row[1]), str(row[2])


@pytest.mark.slow
@pytest.mark.needs("postgis")
@pytest.mark.parametrize("store_backend", ["postgis"], indirect=True)
def test_a_polygon_preview_leaves_a_points_only_table_as_it_was(
    gridded_store, tmp_path, store_url, monkeypatch
):
    store = gridded_store
    spec = layers.get("demolition")
    _base_points(store, tmp_path)
    table = spec.name
    before = _table_state(store_url, table)
    assert before[0].startswith("geometry(Point") and before[2] == "Point"
    pid = store.conn.info.backend_pid
    seen: list[
        tuple[str, str, bool]
    ] = []  # (mode, relation or lock type, on its own temporary table: one made in the
    # transaction has no pg_class row another connection sees yet)
    write = store.write_features

    def held(*args, **kwargs):
        result = write(*args, **kwargs)
        # the dry run is held here, its transaction open: what does it lock?
        with psycopg.connect(store_url, autocommit=True) as other:
            seen.extend(
                (str(r[0]), str(r[1]), bool(r[2]))
                for r in other.execute(
                    "SELECT l.mode, coalesce(c.relname, l.locktype), l.locktype = 'relation'"
                    " AND (c.oid IS NULL OR c.relpersistence = 't') FROM pg_locks l"
                    " LEFT JOIN pg_class c ON c.oid = l.relation WHERE l.pid = %s",
                    (pid,),
                ).fetchall()
            )
        return result

    monkeypatch.setattr(store, "write_features", held)
    path = _next_file(tmp_path, "polygon")
    preview = import_file(store, "demolition", path, dry_run=True)
    monkeypatch.undo()
    assert seen, "the hook ran inside the dry run"
    shared = [s for s in seen if not s[2]]
    assert not [s for s in shared if s[0] == "AccessExclusiveLock"], seen
    # nothing but reads of shared tables: it writes its own temporary table only
    assert {s[0] for s in shared if s[1] != "transactionid"} <= {"AccessShareLock", "ExclusiveLock"}, seen
    assert _table_state(store_url, table) == before
    assert (preview.added, preview.updated, preview.unchanged) == (3, 3, 3)

    committed = import_file(store, "demolition", path)
    assert _compared(committed) == _compared(preview)
    declared, _, registered = _table_state(store_url, table)
    assert declared.startswith("geometry(Geometry") and registered == "Geometry"
    fids, geoms = store.read_geometry(spec)
    polygons = geoms[shapely.get_type_id(geoms) == 3]
    assert len(fids) == 11 and len(polygons) == 6
    assert all(abs(shapely.area(p) - 36.0) < 1e-6 for p in polygons)
    with psycopg.connect(store_url, autocommit=True) as conn:
        views = {
            r[0]
            for r in conn.execute("SELECT viewname FROM pg_views WHERE viewname LIKE %s", (f"{table}_%",))
        }
    assert {f"{table}_point", f"{table}_polygon"} <= views


@pytest.mark.slow
@pytest.mark.needs("postgis")
@pytest.mark.parametrize("store_backend", ["postgis"], indirect=True)
def test_a_preview_matches_rows_of_a_table_made_before_a_field_was_declared(
    gridded_store, tmp_path, store_url
):
    store = gridded_store
    spec = layers.get("demolition")
    _base_points(store, tmp_path)
    field = next(f.name for f in reversed(spec.stored_fields) if f.name != spec.id_field)
    with psycopg.connect(store_url, autocommit=True) as conn:  # as a table made by an older gridwatch
        for table in (spec.name, f"{spec.name}_history"):
            conn.execute(f'ALTER TABLE "{table}" DROP COLUMN "{field}" CASCADE')
    path = _next_file(tmp_path, "polygon")
    preview = import_file(store, "demolition", path, dry_run=True)
    assert preview.warnings == [] and (preview.added, preview.updated, preview.unchanged) == (3, 3, 3)
    assert _compared(import_file(store, "demolition", path)) == _compared(preview)
