"""``gridwatch store copy SRC DST``: a whole store into an empty one, GeoPackage to GeoPackage
and GeoPackage to PostGIS and back -- every table, id, retired row, grid version, archive and
figure the same --, and what it refuses: a target that is not empty, writes to the source while
it is copied, a copy that differs from its source (left unusable, saying why)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyproj
import pytest
import shapely

import layers
from geo.cli import main
from geo.errors import InputError, StoreError
from geo.figures.compare import compare_figures
from geo.figures.tally import tally
from geo.store import accounts
from geo.store.backends import Location, open_store
from geo.store.copy import copy_store
from geo.store.gpkg.transfer import GpkgTransfer

pytestmark = pytest.mark.slow

GRID = next(s for s in layers.all_layers() if s.is_grid)
SURVEY = "demolition"


def _story(store: Any, folder: Path) -> None:
    """A store with some of everything: two grid versions, imports that replace rows, a
    rollback, targets, value maps, accounts (one bound to an area), tokens, failed logins, the audit trail, archives."""
    from geo.imports.batches import load_targets, rollback
    from geo.imports.importer import import_file
    from tests.helpers.builders import X0, Y0, dated_sites, grid_frame, write_shp

    import_file(
        store, GRID.name, write_shp(grid_frame(), folder / "g1" / "网格.shp"), valid_from="2022-01-01"
    )
    import_file(store, SURVEY, write_shp(dated_sites(), folder / "a" / "a.shp"))
    later = dated_sites()
    later["当前状态"] = ["已拆除", "已拆除"]
    later["拆除时间"] = ["2022-03-01", "2022-07-01"]
    import_file(store, SURVEY, write_shp(later, folder / "b" / "b.shp"))
    moved = grid_frame()
    moved.geometry = moved.geometry.translate(60, 0)  # another grid: some sites fall elsewhere
    import_file(store, GRID.name, write_shp(moved, folder / "g2" / "网格.shp"), valid_from="2023-01-01")
    sheds = dated_sites().iloc[:1].copy()  # a polygon too: the layer gets its typed views
    sheds["案件编号"] = ["P1"]
    sheds.geometry = [shapely.box(X0 + 20, Y0 - 80, X0 + 40, Y0 - 60)]
    import_file(store, SURVEY, write_shp(sheds, folder / "p" / "p.shp"))
    third = later.copy()
    third["案件编号"] = ["A3", "A4"]
    last = import_file(store, SURVEY, write_shp(third, folder / "c" / "c.shp"))
    rollback(store, int(last.batch_id))
    # edits by hand: a feature updated by an import edited again (its id and version carried), and
    # one added -- batches without an archived file
    from geo.edits.edit import add_feature, edit_feature
    from tests.helpers.builders import EPSG_GK

    spec = next(s for s in layers.survey_layers() if s.name == SURVEY)
    by_key = store.read_attributes(spec, ["gw_key"])
    fid = int(by_key.loc[by_key["gw_key"] == str(later["案件编号"].iloc[0]), "fid"].iloc[0])
    row = store.ids_of_rows(spec, np.array([fid]))
    edit_feature(
        store, SURVEY, int(row["id"].iloc[0]), int(row["version"].iloc[0]), {"address": "改"}, user="bob"
    )
    lon, lat = pyproj.Transformer.from_crs(EPSG_GK, 4326, always_xy=True).transform(X0 + 150, Y0 - 150)
    add_feature(store, SURVEY, {"case_id": "H1"}, {"type": "Point", "coordinates": [lon, lat]})
    code = str(grid_frame()["网格编码"].iloc[0])
    (folder / "t.csv").write_text(f"code,layer,metric,target\n{code},{SURVEY},total,5\n", encoding="utf-8")
    load_targets(store, folder / "t.csv")
    (folder / "t2.csv").write_text(f"code,layer,metric,target\n{code},{SURVEY},total,7\n", encoding="utf-8")
    load_targets(store, folder / "t2.csv")
    store.save_value_map(SURVEY, "当前状态", "暂缓", "暂缓", "已登记")
    accounts.add_user(store, "alice", "admin", "correct horse battery")
    accounts.add_user(store, "bob", "surveyor", "another long password")
    accounts.create_token(store, "bob", "phone")
    accounts.set_area(store, "bob", [str(grid_frame()["网格编码"].iloc[0])[:12]], sees_district=True)
    with pytest.raises(Exception):  # noqa: B017 -- a wrong password: a failed login is kept
        accounts.authenticate(store, "alice", "wrong", client="10.0.0.1")


def _tables(store: Any) -> dict[str, pa.Table]:
    """Every neutral table of ``store``, as one Arrow table each."""
    out: dict[str, list[pa.RecordBatch]] = {}
    with store.hold_writes():
        for name, batch in store.dump_tables():
            out.setdefault(name, []).append(batch)
    return {k: pa.Table.from_batches(v) for k, v in out.items()}


def _plain(t: Any) -> dict[str, list[Any]]:
    return dict(t.round(9).astype(object).where(t.notna(), None).to_dict("list"))


def _figures(store: Any) -> list[Any]:
    """The tallies at every level: now, as of two days, and as known after each write."""
    out = []
    last = store.last_tx().id
    for level in [lv.name for lv in GRID.levels]:
        for as_of in (None, "2022-06-30", "2023-06-30"):
            out.append(_plain(tally(store, level, as_of=as_of)))
        for tx in range(1, last + 1):
            at = store.tx(tx).at
            out.append(_plain(tally(store, level, known_at=at.replace("Z", "+00:00"))))
    return out


def _state(store: Any) -> dict[str, Any]:
    spec = next(s for s in layers.survey_layers() if s.name == SURVEY)
    return {
        "batches": [(b.id, b.kind, b.status, b.layer) for b in store.batches()],
        "grids": [v.to_dict() for v in store.grid_versions()],
        "fids": store.read_attributes(spec)[["fid", "gw_key", "gw_unit"]].to_dict("list"),
        "retired": store.read_retired(spec)[0].tolist(),
        "users": sorted((u.name, u.area, u.sees_district) for u in store.list_users()),
        "tokens": [(t.id, t.user, t.label) for t in store.list_tokens()],
        "audit": [(e.id, e.action, e.batch_id) for e in store.audit_entries(limit=1000)],
        "value_maps": [(v.id, v.raw, v.code) for v in store.value_maps(include_removed=True)],
        "targets": store.targets().to_dict("list"),
        "last_tx": store.last_tx(),
        "revision": store.revision(),
        "srs": store.srs_epsg(),
        "views": _views(store),
    }


def _views(store: Any) -> list[str]:
    """The typed views of SURVEY, which holds points and polygons."""
    if isinstance(store, GpkgTransfer):
        from geo.store.gpkg.spatial import typed_views

        return sorted(typed_views(store.conn, SURVEY))
    from geo.store.typed_views import VIEW_TYPES, view_name

    names = [view_name(SURVEY, t) for t in VIEW_TYPES]
    rows = store._run(
        "SELECT f_table_name FROM geometry_columns WHERE f_table_name = ANY(%s)", (names,)
    ).fetchall()
    return sorted(str(r[0]) for r in rows)


def _same(a: Any, b: Any) -> None:
    assert _state(b) == _state(a)
    left, right = _tables(a), _tables(b)
    assert sorted(right) == sorted(left)
    for name in left:
        if name == "audit":  # the counts are JSON: PostgreSQL's jsonb writes it its own way
            rows = [left[name].to_pylist(), right[name].to_pylist()]
            for side in rows:
                for row in side:
                    row["counts"] = json.loads(row["counts"] or "null")
            assert rows[1] == rows[0]
            continue
        assert right[name].equals(left[name]), name
    assert _figures(b) == _figures(a)
    assert compare_figures(a, b) == []
    for batch in a.batches():  # every batch's original, targets too (an edit has none)
        if batch.kind != "edit":
            assert b.archived_source(batch.id) == a.archived_source(batch.id)


@pytest.fixture
def source(tmp_path: Path) -> Location:
    where = Location(str(tmp_path / "src" / "gridwatch.gpkg"), tmp_path / "src")
    with open_store(where.store, data=where.data) as store:
        _story(store, tmp_path / "files")
    return where


def test_copy_gpkg_to_gpkg_keeps_everything(source: Location, tmp_path: Path) -> None:
    target = Location(str(tmp_path / "dst" / "gridwatch.gpkg"), tmp_path / "dst")
    result = copy_store(source, target, verify=compare_figures)
    assert result.rows["tx"] >= 8 and result.rows[f"{SURVEY}_history"] > 0
    assert result.archives == 8 and not result.archives_missing
    assert (tmp_path / "dst" / "archive").is_dir()
    with open_store(source.store, data=source.data) as a, open_store(target.store, data=target.data) as b:
        assert b.unusable() is None
        assert _views(a) == [f"{SURVEY}_point", f"{SURVEY}_polygon"]
        _same(a, b)
        # ids go on from where the source was: the next batch and write get the same numbers
        for s in (a, b):
            accounts.create_token(s, "alice", "next")
        assert [t.id for t in a.list_tokens()] == [t.id for t in b.list_tokens()]


@pytest.mark.needs("postgis")
def test_copy_through_postgis_and_back(source: Location, tmp_path: Path, pg_db: str) -> None:
    pytest.importorskip("psycopg")
    middle = Location(pg_db, tmp_path / "pgdata")
    back = Location(str(tmp_path / "back.gpkg"), tmp_path / "back-data")
    copy_store(source, middle, verify=compare_figures)
    copy_store(middle, back, verify=compare_figures)
    with (
        open_store(source.store, data=source.data) as a,
        open_store(middle.store, data=middle.data) as m,
        open_store(back.store, data=back.data) as b,
    ):
        _same(a, m)
        _same(a, b)


def test_a_target_that_is_not_empty_is_refused(source: Location, tmp_path: Path, capsys: Any) -> None:
    target = tmp_path / "dst"
    with open_store(target) as store:
        accounts.add_user(store, "carol", "viewer", "a long enough password")
    with pytest.raises(InputError) as caught:
        copy_store(source, Location(str(target / "gridwatch.gpkg"), target))
    assert caught.value.code == "store_not_empty"
    assert main(["store", "copy", source.store, str(target)]) == 2
    err = capsys.readouterr().err
    assert "不是空的" in err and "not empty" in err
    with open_store(target) as store:  # left as it was
        assert [u.name for u in store.list_users()] == ["carol"] and store.unusable() is None


def _unregistered(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    kept = [s for s in layers.all_layers() if s.name != name]
    monkeypatch.setattr(layers, "all_layers", lambda: list(kept))


def test_layers_no_module_declares_are_refused_not_left_behind(
    source: Location, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    # a feature table added to the GeoPackage with a GIS tool
    import geopandas as gpd
    import pyogrio

    extra = gpd.GeoDataFrame({"名称": ["旧图层"]}, geometry=[shapely.Point(120.1, 30.2)], crs="EPSG:4326")
    pyogrio.write_dataframe(extra, source.store, layer="old_survey", driver="GPKG", append=False)
    target = Location(str(tmp_path / "dst" / "gridwatch.gpkg"), tmp_path / "dst")
    with pytest.raises(InputError) as caught:
        copy_store(source, target, verify=compare_figures)
    assert caught.value.code == "unknown_layers" and "old_survey" in caught.value.en
    # a layer the store holds whose module is no longer installed
    _unregistered(monkeypatch, SURVEY)
    assert main(["store", "copy", source.store, str(tmp_path / "dst2")]) == 2
    err = capsys.readouterr().err
    assert "未登记的图层" in err and f"{SURVEY}, old_survey" in err
    for folder in ("dst", "dst2"):
        with open_store(tmp_path / folder) as store:  # nothing was written
            assert store.is_empty() and store.unusable() is None


@pytest.mark.needs("postgis")
def test_a_postgis_source_with_a_layer_no_module_declares_is_refused(
    source: Location, tmp_path: Path, pg_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("psycopg")
    middle = Location(pg_db, tmp_path / "pgdata")
    copy_store(source, middle)
    _unregistered(monkeypatch, SURVEY)
    target = Location(str(tmp_path / "back.gpkg"), tmp_path / "back")
    with pytest.raises(InputError) as caught:
        copy_store(middle, target)
    assert caught.value.code == "unknown_layers" and caught.value.en.count(SURVEY) == 1
    with open_store(target.store, data=target.data) as store:
        assert store.is_empty()


def _drop_one_row(original: Callable[..., None]) -> Callable[..., None]:
    def insert(self: Any, table: str, batch: pa.RecordBatch, rename: Any = None) -> None:
        if table == SURVEY:
            batch = batch.slice(1)
        original(self, table, batch, rename)

    return insert


def _move_one_row(original: Callable[..., None]) -> Callable[..., None]:
    def insert(self: Any, table: str, batch: pa.RecordBatch, rename: Any = None) -> None:
        if table == f"{SURVEY}_assign":  # as many rows, one of them on another unit
            units = batch.column("unit").to_pylist()
            units[0] = "999999999999999"
            batch = batch.set_column(batch.schema.get_field_index("unit"), "unit", pa.array(units))
        original(self, table, batch, rename)

    return insert


@pytest.mark.parametrize(("fault", "said"), [(_drop_one_row, SURVEY), (_move_one_row, "figures differ")])
def test_a_copy_that_differs_is_left_unusable(
    source: Location,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: Any,
    fault: Callable[..., Any],
    said: str,
) -> None:
    monkeypatch.setattr(GpkgTransfer, "_insert", fault(GpkgTransfer._insert))
    target = tmp_path / "dst"
    assert main(["store", "copy", source.store, str(target)]) == 2
    err = capsys.readouterr().err
    assert "核对不一致" in err and "differs from its source" in err and said in err
    with pytest.raises(StoreError) as caught:
        open_store(target)
    assert caught.value.code == "store_unusable"
    assert "copy again" in caught.value.en and said in caught.value.en and "重新复制" in caught.value.zh
    assert main(["--data", str(target), "stats"]) == 2
    assert "不可用" in capsys.readouterr().err


def test_writes_to_the_source_wait_while_it_is_copied(source: Location, tmp_path: Path) -> None:
    seen: dict[str, Any] = {}

    def write_meanwhile() -> None:
        def attempt() -> None:
            with open_store(source.store, data=source.data) as other:
                seen["read"] = len(other.batches())  # readers go on
                other.conn.set_busy_timeout(200)
                try:
                    accounts.add_user(other, "mallory", "viewer", "a long enough password")
                except StoreError as exc:
                    seen["refused"] = exc.code

        thread = threading.Thread(target=attempt)
        thread.start()
        thread.join(30)

    target = Location(str(tmp_path / "dst" / "gridwatch.gpkg"), tmp_path / "dst")
    copy_store(source, target, verify=compare_figures, during=write_meanwhile)
    assert seen == {"read": 10, "refused": "store_busy"}
    with open_store(source.store, data=source.data) as a:
        assert "mallory" not in [u.name for u in a.list_users()]
        accounts.add_user(a, "mallory", "viewer", "a long enough password")  # after the copy: fine


@pytest.mark.needs("postgis")
def test_writes_to_a_postgis_source_wait_and_credentials_never_show(
    source: Location, tmp_path: Path, pg_db: str, capsys: Any
) -> None:
    pytest.importorskip("psycopg")
    secret_url = pg_db.replace("gridwatch@", "gridwatch:s3cr3t-pw@")
    data = tmp_path / "pgdata"
    assert main(["--data", str(data), "store", "copy", source.store, secret_url]) == 0
    out, err = capsys.readouterr()
    assert "gridwatch:***@" in out and "s3cr3t" not in out + err
    # into it again: refused, and the message shows no password either
    assert main(["--data", str(data), "store", "copy", source.store, secret_url]) == 2
    out, err = capsys.readouterr()
    assert "not empty" in err and "s3cr3t" not in out + err

    seen: dict[str, Any] = {}

    def write_meanwhile() -> None:
        def attempt() -> None:
            with open_store(pg_db, data=data) as other:
                seen["read"] = len(other.batches())
                other.conn.execute("SET lock_timeout = '200ms'")
                try:
                    accounts.add_user(other, "mallory", "viewer", "a long enough password")
                except StoreError as exc:
                    seen["refused"] = exc.code

        thread = threading.Thread(target=attempt)
        thread.start()
        thread.join(30)

    copy_store(
        Location(pg_db, data),
        Location(str(tmp_path / "back.gpkg"), tmp_path / "back"),
        during=write_meanwhile,
    )
    assert seen == {"read": 10, "refused": "store_busy"}
