"""Commit what was previewed: the preview keeps its prepared rows beside the staged file and
the commit writes them (the file is not read again), unless what they were made from changed
in between; a byte-identical re-upload is recognised before the file is read."""

from __future__ import annotations

import io
import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest
import shapely

from geo.figures.hierarchy import grid_levels
from geo.imports import importer, upload_prepared, upload_review
from geo.imports.importer import import_file
from geo.imports.uploads import uploads_dir
from geo.reading.vocab import vocab_key
from geo.registry import get_layer
from geo.store.backends import open_store
from geo.store.base import STORE_FILE
from geo.store.gpkg import feature_writes
from geo.store.gpkg.blobs import encode_geometries
from tests.helpers.builders import X0, Y0, grid_frame, points_frame, write_shp, zip_shp

LAYER = "demolition"


@pytest.fixture
def make(tmp_path, make_app):
    """A fresh app on its own store holding the unit grid (call it once per store wanted)."""
    made = []

    def new():
        data = tmp_path / f"store{len(made)}"
        with open_store(data) as store:
            import_file(store, "grid", write_shp(grid_frame(), tmp_path / f"g{len(made)}" / "g.shp"))
        app = make_app(data, login=False)
        made.append(app)
        return app

    return new


def _sites_zip(tmp_path: Path, name: str, ids: list[str], status: list[str] | None = None) -> bytes:
    n = len(ids)
    xy = [(X0 + 20 + 31 * i, Y0 - 20 - 29 * i) for i in range(n)]
    xy[-1] = (X0 - 500, Y0 + 500)  # outside every unit
    sites = points_frame(
        xy,
        案件编号=ids,
        当前状态=status or (["已拆除", "已登记", "暂缓拆除", "已拆除"] * n)[:n],
        违建面积=[str(10 + i) if i != 1 else "三十" for i in range(n)],  # row 2 is rejected
        发现时间=[f"2022-0{1 + i % 9}-05" for i in range(n)],
        拆除时间=[f"2022-1{i % 3}-01" if i % 2 == 0 else "" for i in range(n)],
        地址=[f"测试路{i}号" for i in range(n)],
    )
    shp = write_shp(sites, tmp_path / name / f"{name}.shp")
    return zip_shp(shp, tmp_path / f"{name}.zip").read_bytes()


def _stage(client, data: bytes, name: str = "f.zip") -> dict:
    r = client.post(
        "/api/uploads",
        data={"layer": LAYER, "file": (io.BytesIO(data), name)},
        content_type="multipart/form-data",
    )
    assert r.status_code == 201, r.get_json()
    return r.get_json()


def _folder(app, upload_id: str) -> Path:
    return uploads_dir(Path(app.config["GRIDWATCH_DATA"])) / upload_id


class Reads:
    """Counts the commits that read the staged file again (``fail``: such a read is an error)."""

    def __init__(self, monkeypatch, fail: bool = False) -> None:
        self.count = 0
        real = upload_review.prepare_staged

        def counted(*args, **kwargs):
            self.count += 1
            if fail:
                raise AssertionError("the staged file was read again")
            return real(*args, **kwargs)

        monkeypatch.setattr(upload_review, "prepare_staged", counted)


def _commit(client, upload_id: str):
    return client.post(f"/api/uploads/{upload_id}/commit")


def _dump(app) -> dict:
    """Everything the store holds of the layer and what the figures say, at every level."""
    spec = get_layer(LAYER)
    client = app.test_client()
    with open_store(app.config["GRIDWATCH_DATA"]) as store:
        attrs = store.read_attributes(spec)
        fids, geoms = store.read_geometry(spec)
        batches = [
            {k: v for k, v in b.to_dict().items() if k not in ("created_at", "report")}
            for b in store.batches()
        ]
    attrs = attrs[[c for c in attrs.columns if not c.endswith("_at")]]
    geometry = dict(
        zip(np.asarray(fids).tolist(), shapely.to_wkt(geoms, rounding_precision=6).tolist(), strict=True)
    )
    stats = {
        level.name: client.get(f"/api/stats?format=json&level={level.name}&layer={LAYER}").get_json()["rows"]
        for level in grid_levels()
    }
    return {
        "attrs": attrs.sort_values(list(attrs.columns[:1])).to_json(orient="records", force_ascii=False),
        "geometry": geometry,
        "batches": batches,
        "stats": stats,
    }


def _report(body: dict) -> dict:
    return {k: v for k, v in body.items() if k not in ("timings", "batch_id")}


@pytest.mark.slow
def test_commit_after_preview_writes_exactly_the_previewed_rows(make, tmp_path, monkeypatch):
    data = _sites_zip(tmp_path, "f", [f"P{i}" for i in range(12)])
    kept, read = make(), make()
    # kept rows: the commit does not read the file
    first = _stage(kept.test_client(), data)
    folder = _folder(kept, first["upload_id"])
    assert (folder / upload_prepared.PREPARED_FILE).is_file() and (
        folder / upload_prepared.PREPARED_STAMP
    ).is_file()
    assert (first["added"], first["rejected_count"], first["unassigned"]) == (11, 1, 2)
    with monkeypatch.context() as m:
        Reads(m, fail=True)
        a = _commit(kept.test_client(), first["upload_id"])
    assert a.status_code == 200, a.get_json()
    assert not folder.exists()  # removed with the staged upload
    # the same file committed without kept rows: read again at the commit
    second = _stage(read.test_client(), data)
    upload_prepared.drop(_folder(read, second["upload_id"]))
    reads = Reads(monkeypatch)
    b = _commit(read.test_client(), second["upload_id"])
    assert b.status_code == 200 and reads.count == 1
    assert _report(a.get_json()) == _report(b.get_json())
    assert a.get_json()["added"] == 11 and a.get_json()["status"] == "committed"
    assert _dump(kept) == _dump(read)


@pytest.mark.slow
def test_value_mapping_changed_between_preview_and_commit_reads_again(make, tmp_path, monkeypatch):
    app = make()
    client = app.test_client()
    first = _stage(client, _sites_zip(tmp_path, "f", ["M1", "M2", "M3", "M4"]))
    unrecognised = [v for e in first["value_mappings"] for v in e["values"] if v["raw"] == "暂缓拆除"]
    assert unrecognised and unrecognised[0]["how"] != "remembered"
    with open_store(app.config["GRIDWATCH_DATA"]) as store:  # an admin maps the value meanwhile
        store.save_value_map(LAYER, "status", vocab_key("暂缓拆除"), "暂缓拆除", "已拆除")
    reads = Reads(monkeypatch)
    r = _commit(client, first["upload_id"])
    assert r.status_code == 200 and reads.count == 1  # recomputed, not the stale rows
    mapped = [v for e in r.get_json()["value_mappings"] for v in e["values"] if v["raw"] == "暂缓拆除"]
    assert (mapped[0]["how"], mapped[0]["code"]) == ("remembered", "已拆除")
    with open_store(app.config["GRIDWATCH_DATA"]) as store:
        attrs = store.read_attributes(get_layer(LAYER))
    assert attrs.set_index("case_id").loc["M3", "status"] == "已拆除"


def _smaller_grid(tmp_path: Path) -> Path:
    cells = grid_frame()
    return write_shp(cells.iloc[3:].reset_index(drop=True), tmp_path / "g2" / "g2.shp")


@pytest.mark.slow
def test_grid_replaced_between_preview_and_commit_assigns_the_kept_rows_again(make, tmp_path, monkeypatch):
    data = _sites_zip(tmp_path, "f", [f"G{i}" for i in range(8)])
    kept, read = make(), make()
    first = _stage(kept.test_client(), data)
    with open_store(kept.config["GRIDWATCH_DATA"]) as store:  # the grid is replaced meanwhile
        import_file(store, "grid", _smaller_grid(tmp_path))
    with monkeypatch.context() as m:
        Reads(m, fail=True)  # the rows are kept: only their units are assigned again
        a = _commit(kept.test_client(), first["upload_id"])
    assert a.status_code == 200, a.get_json()
    assert a.get_json()["unassigned"] > first["unassigned"]  # the new grid has fewer units
    # against a store whose grid was replaced before the file was read at all
    with open_store(read.config["GRIDWATCH_DATA"]) as store:
        import_file(store, "grid", _smaller_grid(tmp_path))
    second = _stage(read.test_client(), data)
    upload_prepared.drop(_folder(read, second["upload_id"]))
    b = _commit(read.test_client(), second["upload_id"])
    assert b.status_code == 200
    assert a.get_json()["unassigned"] == b.get_json()["unassigned"]
    assert _dump(kept) == _dump(read)


@pytest.mark.slow
def test_layer_written_by_another_commit_in_between(make, tmp_path, monkeypatch):
    """The preview's added and updated figures are what a commit would have done then; the
    commit decides them again against the layer as it is, from the same kept rows."""
    data = _sites_zip(tmp_path, "f", [f"L{i}" for i in range(6)])
    other = _sites_zip(tmp_path, "o", ["L0", "X8", "L2", "X9"], status=["已登记"] * 4)
    kept, read = make(), make()
    first = _stage(kept.test_client(), data)
    assert (first["added"], first["updated"]) == (5, 0)
    meanwhile = _stage(kept.test_client(), other, "o.zip")
    assert _commit(kept.test_client(), meanwhile["upload_id"]).status_code == 200
    with monkeypatch.context() as m:
        Reads(m, fail=True)
        a = _commit(kept.test_client(), first["upload_id"])
    assert a.status_code == 200, a.get_json()
    assert (a.get_json()["added"], a.get_json()["updated"]) == (3, 2)  # not the preview's 5 and 0
    # the same order of commits, the file read again at its commit
    first_b = _stage(read.test_client(), data)
    upload_prepared.drop(_folder(read, first_b["upload_id"]))
    meanwhile_b = _stage(read.test_client(), other, "o.zip")
    assert _commit(read.test_client(), meanwhile_b["upload_id"]).status_code == 200
    b = _commit(read.test_client(), first_b["upload_id"])
    assert _report(a.get_json()) == _report(b.get_json())
    assert _dump(kept) == _dump(read)


def _truncate(folder: Path) -> None:
    path = folder / upload_prepared.PREPARED_FILE
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _flip(folder: Path) -> None:
    path = folder / upload_prepared.PREPARED_FILE
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))


def _swap_rows(folder: Path) -> None:
    """Another valid Arrow file in place of the rows: every status changed."""
    import pyarrow as pa
    import pyarrow.feather as feather

    path = folder / upload_prepared.PREPARED_FILE
    table = feather.read_table(path)
    i = table.column_names.index("status")
    table = table.set_column(i, "status", pa.array(["已拆除"] * len(table), type=pa.string()))
    feather.write_feather(table, path)


def _edit_stamp(folder: Path) -> None:
    path = folder / upload_prepared.PREPARED_STAMP
    stamp = json.loads(path.read_text())
    stamp["report"]["rows_read"] += 1
    path.write_text(json.dumps(stamp))


def _garbage_stamp(folder: Path) -> None:
    (folder / upload_prepared.PREPARED_STAMP).write_bytes(b"\xff\x00{")


@pytest.mark.slow
@pytest.mark.parametrize("damage", [_truncate, _flip, _swap_rows, _edit_stamp, _garbage_stamp])
def test_a_tampered_or_truncated_prepared_file_is_read_again(make, tmp_path, monkeypatch, damage):
    data = _sites_zip(tmp_path, "f", [f"T{i}" for i in range(6)])
    app, clean = make(), make()
    first = _stage(app.test_client(), data)
    damage(_folder(app, first["upload_id"]))
    reads = Reads(monkeypatch)
    r = _commit(app.test_client(), first["upload_id"])
    assert r.status_code == 200 and reads.count == 1, r.get_json()
    second = _stage(clean.test_client(), data)
    assert _commit(clean.test_client(), second["upload_id"]).status_code == 200
    assert _dump(app) == _dump(clean)


@pytest.mark.slow
def test_a_byte_identical_upload_is_recognised_before_it_is_read(make, tmp_path, monkeypatch):
    app = make()
    client = app.test_client()
    data = _sites_zip(tmp_path, "f", [f"D{i}" for i in range(5)])
    first = _stage(client, data)
    committed = _commit(client, first["upload_id"]).get_json()

    def no_read(*args, **kwargs):
        raise AssertionError("the file was read")

    with monkeypatch.context() as m:
        m.setattr(importer, "_read", no_read)
        again = _stage(client, data, "again.zip")
        assert again["status"] == "duplicate" and again["duplicate_of"] == committed["batch_id"]
        # what the page shows of a duplicate is what reading it found the first time
        for key in ("rows_read", "accepted", "rejected_count", "unassigned", "encoding", "crs", "crs_source"):
            assert again[key] == first[key], key
        assert again["rejected"] == first["rejected"] and again["rejected_count"] == 1
        r = _commit(client, again["upload_id"])
    body = r.get_json()
    assert r.status_code == 409 and body["error"] == "duplicate"
    assert body["message_zh"] == f"文件已导入过（批次 {committed['batch_id']}），未重复写入"
    assert "already imported" in body["message_en"]


@pytest.mark.slow
def test_a_duplicate_rolled_back_before_the_commit_is_read_and_written(make, tmp_path):
    app = make()
    client = app.test_client()
    data = _sites_zip(tmp_path, "f", [f"R{i}" for i in range(5)])
    committed = _commit(client, _stage(client, data)["upload_id"]).get_json()
    again = _stage(client, data, "again.zip")
    assert again["status"] == "duplicate"
    assert client.delete(f"/api/batches/{committed['batch_id']}").status_code == 200
    r = _commit(client, again["upload_id"])
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["added"] == committed["added"] == 4


@pytest.mark.slow
def test_a_file_whose_batch_left_rows_unchanged_is_read(make, tmp_path, monkeypatch):
    """Its rows could have been updated since without the batch being superseded: only the
    file's survey ids tell, so it is read (and its commit finds it no duplicate)."""
    app = make()
    client = app.test_client()
    base = _sites_zip(tmp_path, "b", ["U0", "U1", "U2"])
    assert _commit(client, _stage(client, base)["upload_id"]).status_code == 200
    data = _sites_zip(tmp_path, "f", ["U0", "U1", "U2", "U3", "U4"])  # U0 repeated unchanged
    assert _commit(client, _stage(client, data)["upload_id"]).get_json()["unchanged"] >= 1
    later = _sites_zip(tmp_path, "l", ["U0", "Z1"], status=["已登记", "已登记"])
    assert _commit(client, _stage(client, later, "l.zip")["upload_id"]).status_code == 200
    calls = []
    real = importer._read
    monkeypatch.setattr(importer, "_read", lambda *a, **k: calls.append(1) or real(*a, **k))
    again = _stage(client, data, "again.zip")
    assert calls  # read, not recognised by its bytes
    r = _commit(client, again["upload_id"])
    assert r.status_code == 200 and r.get_json()["updated"] == 1, r.get_json()  # U0 back as the file has it


@pytest.mark.slow
def test_layer_declaration_changed_between_preview_and_commit_reads_again(make, tmp_path, monkeypatch):
    import dataclasses

    import layers

    app = make()
    client = app.test_client()
    first = _stage(client, _sites_zip(tmp_path, "f", ["S1", "S2", "S3"]))
    spec = layers.get(LAYER)
    layers.register(dataclasses.replace(spec, label_en=spec.label_en + " (declared again)"))
    try:
        reads = Reads(monkeypatch)
        r = _commit(client, first["upload_id"])
    finally:
        layers.register(spec)
    assert r.status_code == 200 and reads.count == 1, r.get_json()
    assert r.get_json()["added"] == first["added"] == 2


def test_given_wkb_makes_the_blobs_encoding_would():
    """The WKB a preview keeps is the WKB the GeoPackage writer stores, so handing it on
    changes no byte: points, polygons, multi, 3D (stored 2D) and empty geometries."""
    geoms = np.array(
        [
            shapely.Point(X0 + 0.1, Y0 - 0.3),
            shapely.Point(X0 + 1, Y0 - 1, 7.5),
            shapely.box(X0, Y0 - 10, X0 + 10, Y0),
            shapely.MultiPoint([(X0, Y0), (X0 + 3, Y0 - 3)]),
            shapely.Point(),
        ],
        dtype=object,
    )
    wkb = shapely.to_wkb(geoms, byte_order=1, flavor="iso", include_srid=False, output_dimension=2)
    assert encode_geometries(geoms, 4547, wkb) == encode_geometries(geoms, 4547)


@pytest.mark.slow
def test_the_commit_hands_the_kept_wkb_to_the_store(make, tmp_path, monkeypatch):

    app = make()
    staged = _stage(app.test_client(), _sites_zip(tmp_path, "f", [f"W{i}" for i in range(6)]))
    given: list[bool] = []
    real = feature_writes.encode_geometries

    def spied(geoms, srs, wkb=None):
        given.append(wkb is not None)
        return real(geoms, srs, wkb)

    monkeypatch.setattr(feature_writes, "encode_geometries", spied)
    with monkeypatch.context() as m:
        Reads(m, fail=True)
        assert _commit(app.test_client(), staged["upload_id"]).status_code == 200
    assert given == [True]
    con = sqlite3.connect(Path(app.config["GRIDWATCH_DATA"]) / STORE_FILE)
    blobs = [bytes(r[0]) for r in con.execute(f'SELECT geom FROM "{get_layer(LAYER).name}" ORDER BY fid')]
    srs = con.execute("SELECT srs_id FROM gpkg_geometry_columns WHERE table_name=?", (get_layer(LAYER).name,))
    srs_id = srs.fetchone()[0]
    con.close()
    geoms = shapely.from_wkb([b[40:] for b in blobs])
    assert len(blobs) == 5 and blobs == encode_geometries(geoms, srs_id)
