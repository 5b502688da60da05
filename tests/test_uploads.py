"""The upload flow over HTTP: stage and preview, override and re-read, commit, and every class of
bad input answered with a clear 4xx and nothing written."""

from __future__ import annotations

import io
import json
import shutil
import zipfile
from pathlib import Path

import pytest

from geo.imports.importer import import_file
from tests.helpers.builders import X0, Y0, GbkZipInfo, grid_frame, points_frame, write_shp, zip_shp
from tests.helpers.postgis import open_test_store

pytestmark = pytest.mark.backends


@pytest.fixture
def app(tmp_path, make_app):
    data = tmp_path / "store"
    with open_test_store(data) as store:
        import_file(store, "grid", write_shp(grid_frame(), tmp_path / "g" / "g.shp"))
    return make_app(data, login=False, MAX_CONTENT_LENGTH=2 * 1024 * 1024)


@pytest.fixture
def survey_zip(tmp_path):
    sites = points_frame(
        [(X0 + 50, Y0 - 50), (X0 + 150, Y0 - 150), (X0 + 250, Y0 - 250)],
        案件编号=["U1", "U2", "U3"],
        当前状态=["已拆除", "已登记", "不知道"],
        违建面积=["10", "20", "三十"],
    )
    shp = write_shp(sites, tmp_path / "s" / "违建台账.shp")
    return zip_shp(shp, tmp_path / "上报.zip", folder="台账/").read_bytes()


def _post(client, data: bytes, name: str, **form):
    form.setdefault("layer", "demolition")
    return client.post(
        "/api/uploads", data={**form, "file": (io.BytesIO(data), name)}, content_type="multipart/form-data"
    )


def _count(client) -> int:
    rows = client.get("/api/stats?format=json&level=district&layer=demolition").get_json()["rows"]
    return sum(r["demolition_total"] for r in rows)


@pytest.mark.slow
def test_preview_then_commit(client, survey_zip):
    r = _post(client, survey_zip, "上报.zip")
    assert r.status_code == 201
    body = r.get_json()
    assert body["status"] == "preview" and body["rows_read"] == 3 and body["rejected_count"] == 1
    assert body["rejected"][0]["row"] == 3 and "面积" in body["rejected"][0]["reason_zh"]
    assert body["rejected"][0]["survey_id"] == "U3" and body["rejected"][0]["value"] == "三十"
    # what the commit will do, worked out before it: 2 new features
    assert (body["added"], body["updated"], body["unchanged"]) == (2, 0, 0)
    assert body["encoding"] == "gb18030" and "4548" in body["crs"]
    assert _count(client) == 0  # preview writes nothing
    r = client.post(f"/api/uploads/{body['upload_id']}/commit", data={"user": "surveyor"})
    assert r.status_code == 200 and r.get_json()["added"] == 2
    assert _count(client) == 2
    # the uploader is the signed-in account (tests/test_auth.py), never a name the form claims
    assert client.get("/api/batches").get_json()[-1]["user"] is None
    assert client.post(f"/api/uploads/{body['upload_id']}/commit").status_code == 404  # gone once committed
    again = _post(client, survey_zip, "上报.zip").get_json()
    assert again["status"] == "duplicate"


@pytest.mark.slow
def test_override_and_reread(client, tmp_path):
    sites = points_frame([(X0 + 50, Y0 - 50)], 编号=["P"], 状态=["已建成"])
    shp = write_shp(sites.to_crs(4490), tmp_path / "p" / "p.shp", prj=False)
    data = zip_shp(shp, tmp_path / "p.zip").read_bytes()
    first = _post(client, data, "p.zip", layer="parking").get_json()
    assert first["crs_source"] == "inferred"
    second = client.post(f"/api/uploads/{first['upload_id']}/preview", data={"crs": "EPSG:4490"}).get_json()
    assert second["crs_source"] == "override"
    assert client.post(f"/api/uploads/{first['upload_id']}/commit").get_json()["added"] == 1


@pytest.mark.parametrize(
    ("name", "payload", "code"),
    [
        ("empty.zip", b"", 400),
        ("bad.zip", b"PK\x03\x04garbage", 400),
        ("notes.docx", b"hello", 415),
        ("only.dbf", b"\x03" + b"\x00" * 40, 400),
    ],
)
def test_bad_files(client, name, payload, code):
    r = _post(client, payload, name)
    assert r.status_code == code
    body = r.get_json()
    assert body["error"] and body["message"] == body["message_zh"] and body["message_en"]
    assert "Traceback" not in body["message_zh"] + body["message_en"]
    assert _count(client) == 0 and client.get("/api/batches").get_json()[-1]["layer"] == "grid"


def test_wrong_layer_and_missing_fields(client, survey_zip):
    assert _post(client, survey_zip, "a.zip", layer="").status_code == 400
    assert _post(client, survey_zip, "a.zip", layer="grid").status_code == 400  # points are no grid
    r = client.post("/api/uploads", data={"layer": "demolition"}, content_type="multipart/form-data")
    assert r.status_code == 400 and r.get_json()["error"] == "no_file"


def test_zip_slip_and_bomb(client, tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("../../evil.shp", b"x")
    r = _post(client, buf.getvalue(), "slip.zip")
    assert r.status_code == 400 and r.get_json()["error"] == "zip_unsafe_path"
    assert not (tmp_path / "evil.shp").exists()
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as zf:
        info = GbkZipInfo("大.dbf")
        info.compress_type = zipfile.ZIP_DEFLATED
        zf.writestr(info, b"\x00" * (50 * 1024 * 1024))
    assert len(bomb.getvalue()) < 1024 * 1024
    r = _post(client, bomb.getvalue(), "bomb.zip")
    assert r.status_code == 413 and r.get_json()["error"] == "zip_bomb"


def test_oversized_upload(client):
    body = b"--x\r\n" + b"x" * (3 * 1024 * 1024) + b"\r\n--x--\r\n"
    r = client.post("/api/uploads", data=body, content_type="multipart/form-data; boundary=x")
    assert r.status_code == 413 and r.get_json()["error"] == "too_large"
    assert r.get_json()["message"] == "上传文件超过 2 MB"
    r = client.post("/api/uploads?lang=en", data=body, content_type="multipart/form-data; boundary=x")
    err = r.get_json()
    assert err["message"] == err["message_en"] == "the upload exceeds 2 MB" and err["message_zh"]


def test_unknown_upload_id(client):
    assert client.post("/api/uploads/../../etc/commit").status_code == 404
    assert (
        client.post("/api/uploads/AAAAAAAAAAAAAAAAAAAAAAAA/commit").get_json()["error"] == "upload_not_found"
    )


# --- the preview map's features ---------------------------------------------------------------


def _lonlat(x: float, y: float) -> tuple[float, float]:
    import pyproj

    from tests.helpers.builders import EPSG_GK

    lon, lat = pyproj.Transformer.from_crs(EPSG_GK, 4326, always_xy=True).transform(x, y)
    return float(lon), float(lat)


def _staged(client, frame, tmp_path, name="f", **form) -> dict:
    shp = write_shp(frame, tmp_path / name / f"{name}.shp", prj=form.pop("prj", True))
    r = _post(client, zip_shp(shp, tmp_path / f"{name}.zip").read_bytes(), f"{name}.zip", **form)
    assert r.status_code == 201, r.get_json()
    return r.get_json()


@pytest.mark.slow
def test_features_inside_and_outside_the_grid(client, tmp_path):
    sites = points_frame(
        [(X0 + 50, Y0 - 50), (X0 + 250, Y0 - 150), (X0 + 150, Y0 - 250), (X0 + 1000, Y0 - 100), (X0, Y0)],
        案件编号=["A", "B", "C", "FAR", "BAD"],
        当前状态=["已登记", "已登记", "已拆除", "已登记", "不知道"],
        违建面积=["1", "2", "3", "4", "三十"],
    )
    report = _staged(client, sites, tmp_path)
    assert report["accepted"] == 4 and report["unassigned"] == 1
    r = client.get(f"/api/uploads/{report['upload_id']}/features")
    assert r.status_code == 200
    fc = r.get_json()
    assert fc["type"] == "FeatureCollection"
    assert (fc["total"], fc["sent"], fc["inside"], fc["outside"]) == (4, 4, 3, 1)
    assert fc["as_points"] is False
    inside = [f for f in fc["features"] if f["properties"]["inside"]]
    outside = [f for f in fc["features"] if not f["properties"]["inside"]]
    assert {f["properties"]["unit"] for f in inside} == {
        "340291001001001",
        "340291001001006",
        "340291001002002",
    }
    assert len(outside) == 1 and outside[0]["properties"]["unit"] is None
    # lon/lat degrees where the points were put (the rejected row is not sent)
    lon, lat = outside[0]["geometry"]["coordinates"]
    assert (lon, lat) == pytest.approx(_lonlat(X0 + 1000, Y0 - 100), abs=1e-6)
    corners = [_lonlat(X0 + dx, Y0 - dy) for dx in (0, 300) for dy in (0, 300)]
    west, south, east, north = fc["grid_bbox"]
    assert (west, east) == pytest.approx((min(c[0] for c in corners), max(c[0] for c in corners)), abs=1e-6)
    assert (south, north) == pytest.approx((min(c[1] for c in corners), max(c[1] for c in corners)), abs=1e-6)
    assert lon > east  # 700 m east of the grid
    for f in inside:
        x, y = f["geometry"]["coordinates"]
        assert west < x < east and south < y < north
    assert fc["bbox"][2] == pytest.approx(lon) and fc["bbox"][0] == pytest.approx(_lonlat(X0 + 50, Y0)[0])


@pytest.mark.slow
def test_features_follow_a_reread_and_gcj02(client, tmp_path):
    from geo.reading.gcj02 import wgs84_to_gcj02

    sites = points_frame([(X0 + 150, Y0 - 150), (X0 + 50, Y0 - 250)], 编号=["P1", "P2"], 状态=["已建成"] * 2)
    report = _staged(client, sites.to_crs(4490), tmp_path, layer="parking", prj=False)
    url = f"/api/uploads/{report['upload_id']}/features"
    plain = client.get(url).get_json()
    assert plain["inside"] == 2
    shifted = client.get(url + "?crs=gcj02").get_json()
    for a, b in zip(plain["features"], shifted["features"], strict=True):
        expected = wgs84_to_gcj02(*a["geometry"]["coordinates"])
        assert b["geometry"]["coordinates"] == pytest.approx([float(v) for v in expected], abs=1e-6)
    assert shifted["bbox"] != plain["bbox"] and shifted["grid_bbox"] != plain["grid_bbox"]
    # read again as GCJ-02 coordinates: the features move some 500 m and the map shows where
    again = client.post(f"/api/uploads/{report['upload_id']}/preview", data={"crs": "gcj02"})
    assert again.status_code == 200
    moved = client.get(url).get_json()
    dx = (
        moved["features"][0]["geometry"]["coordinates"][0]
        - plain["features"][0]["geometry"]["coordinates"][0]
    )
    assert 0.002 < abs(dx) < 0.01
    assert moved["outside"] == again.get_json()["unassigned"] == 2
    # a re-read that fails changes nothing: the upload keeps the settings and features of the last
    # read that succeeded
    failed = client.post(f"/api/uploads/{report['upload_id']}/preview", data={"crs": "EPSG:3857"})
    assert failed.status_code == 400
    assert client.get(url).get_json() == moved


@pytest.mark.slow
def test_features_are_capped(client, tmp_path):
    import numpy as np

    rng = np.random.default_rng(7)
    n = 6000
    xy = np.column_stack([X0 + rng.uniform(1, 299, n), Y0 - rng.uniform(1, 299, n)])
    xy[:600, 0] += 1000  # one in ten east of the grid
    sites = points_frame(
        [tuple(p) for p in xy], 案件编号=[f"C{i}" for i in range(n)], 当前状态=["已登记"] * n
    )
    report = _staged(client, sites, tmp_path)
    url = f"/api/uploads/{report['upload_id']}/features"
    fc = client.get(url).get_json()
    assert (fc["total"], fc["sent"], len(fc["features"])) == (n, 5000, 5000)
    assert (fc["inside"], fc["outside"]) == (n - 600, 600)  # counts over all, not over those sent
    sent_outside = sum(not f["properties"]["inside"] for f in fc["features"])
    assert sent_outside == 500  # an even sample keeps the proportion
    few = client.get(url + "?limit=100").get_json()
    assert (few["total"], few["sent"]) == (n, 100)
    assert client.get(url + "?limit=0").status_code == 400
    assert client.get(url + "?limit=5001").get_json()["error"] == "bad_parameter"


@pytest.mark.slow
def test_polygons_simplified_or_sent_as_points(app, client, tmp_path):
    from pathlib import Path

    import geopandas as gpd
    import shapely

    from geo.imports import upload_features
    from tests.helpers.builders import EPSG_GK

    def ring(cx: float, cy: float) -> shapely.Polygon:  # 64 vertices, 8 m across
        return shapely.Point(cx, cy).buffer(4, quad_segs=16)

    shapes = [ring(X0 + 20 + 40 * (i % 7), Y0 - 20 - 40 * (i // 7)) for i in range(30)]
    sites = gpd.GeoDataFrame(
        {"案件编号": [f"S{i}" for i in range(30)], "当前状态": ["已登记"] * 30}, geometry=shapes, crs=EPSG_GK
    )
    report = _staged(client, sites, tmp_path)
    fc = client.get(f"/api/uploads/{report['upload_id']}/features").get_json()
    assert fc["as_points"] is False and {f["geometry"]["type"] for f in fc["features"]} == {"Polygon"}
    assert all(len(f["geometry"]["coordinates"][0]) < 65 for f in fc["features"])
    data = Path(app.config["GRIDWATCH_DATA"])
    with open_test_store(data) as store:
        many = upload_features.features(store, data, report["upload_id"], max_shapes=10)
        heavy = upload_features.features(store, data, report["upload_id"], max_vertices=100)
    for out in (many, heavy):
        assert out["as_points"] is True and {f["geometry"]["type"] for f in out["features"]} == {"Point"}
        assert out["sent"] == 30
    centre = _lonlat(X0 + 20, Y0 - 20)
    assert many["features"][0]["geometry"]["coordinates"] == pytest.approx(centre, abs=5e-5)


def test_features_read_again_when_not_kept(app, client, survey_zip):
    from pathlib import Path

    from geo.imports.uploads import uploads_dir

    report = _post(client, survey_zip, "上报.zip").get_json()
    url = f"/api/uploads/{report['upload_id']}/features"
    first = client.get(url).get_json()
    folder = uploads_dir(Path(app.config["GRIDWATCH_DATA"])) / report["upload_id"]
    (folder / "features.arrow").unlink()
    assert client.get(url).get_json() == first and (folder / "features.arrow").exists()


@pytest.mark.slow
def test_features_of_unknown_uploads_are_404(client, survey_zip):
    for bad in ("AAAAAAAAAAAAAAAAAAAAAAAA", "x", "..%2F..%2Fetc"):
        r = client.get(f"/api/uploads/{bad}/features")
        assert r.status_code == 404 and r.is_json, bad
    upload_id = _post(client, survey_zip, "上报.zip").get_json()["upload_id"]
    assert client.get(f"/api/uploads/{upload_id}/features").status_code == 200
    assert client.delete(f"/api/uploads/{upload_id}").status_code == 204
    r = client.get(f"/api/uploads/{upload_id}/features")
    assert r.status_code == 404 and r.get_json()["error"] == "upload_not_found"
    upload_id = _post(client, survey_zip, "上报.zip").get_json()["upload_id"]
    assert client.post(f"/api/uploads/{upload_id}/commit").status_code == 200
    assert client.get(f"/api/uploads/{upload_id}/features").status_code == 404


def test_an_upload_that_cannot_be_staged_is_a_clear_503(app, client, tmp_path):
    data = Path(app.config["GRIDWATCH_DATA"])
    (data / "uploads").parent.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(data / "uploads", ignore_errors=True)
    (data / "uploads").write_text("not a folder")  # the staging folder cannot be made
    r = client.post("/api/uploads", data={"layer": "demolition", "file": (io.BytesIO(b"x"), "a.csv")})
    assert r.status_code == 503
    body = r.get_json()
    assert body["error"] == "staging_failed" and body["message_zh"] and "stage" in body["message_en"]


def test_the_app_starts_when_the_session_key_cannot_be_kept(tmp_path, caplog, make_app):
    blocker = tmp_path / "file"
    blocker.write_text("")
    app = make_app(blocker / "data")
    assert len(app.config["SECRET_KEY"]) == 64
    assert "SECRET_KEY" in caplog.text


# --- writes that cannot double or lie ---------------------------------------------------------


def _many_sites_zip(tmp_path, n: int = 200, prefix: str = "R", name: str = "many") -> bytes:
    xy = [(X0 + 5 + (i % 29) * 10, Y0 - 5 - (i // 29) * 10) for i in range(n)]
    sites = points_frame(xy, 案件编号=[f"{prefix}{i:04d}" for i in range(n)], 当前状态=["已登记"] * n)
    shp = write_shp(sites, tmp_path / name / f"{name}.shp")
    return zip_shp(shp, tmp_path / f"{name}.zip").read_bytes()


def _in_threads(calls) -> list:
    """Run each call in its own thread at once; their results (or exceptions) in order."""
    import threading

    out: list = [None] * len(calls)

    def run(i, call):
        try:
            out[i] = call()
        except BaseException as exc:  # handed back to the test
            out[i] = exc

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return out


@pytest.mark.slow
def test_two_stagings_of_one_file_committed_at_once_are_stored_once(app, client, tmp_path, monkeypatch):
    """Both commits have read their file before either writes: the duplicate is found inside the
    write transaction, so one batch is written and the other commit is a clear 409."""
    import threading

    from geo.imports import upload_review

    data = _many_sites_zip(tmp_path)
    first = _post(client, data, "a.zip").get_json()
    second = _post(client, data, "a.zip").get_json()
    assert first["status"] == second["status"] == "preview"
    both_read = threading.Barrier(2, timeout=60)
    real = upload_review.commit_import

    def after_both_read(*args, **kwargs):
        both_read.wait()
        return real(*args, **kwargs)

    monkeypatch.setattr(upload_review, "commit_import", after_both_read)
    answers = _in_threads(
        [lambda u=u: app.test_client().post(f"/api/uploads/{u['upload_id']}/commit") for u in (first, second)]
    )
    assert sorted(r.status_code for r in answers) == [200, 409]
    done = next(r for r in answers if r.status_code == 200).get_json()
    refused = next(r for r in answers if r.status_code == 409).get_json()
    assert done["added"] == 200
    assert refused["error"] == "duplicate" and refused["details"]["duplicate_of"] == done["batch_id"]
    assert f"批次 {done['batch_id']}" in refused["message_zh"] and "already imported" in refused["message_en"]
    assert _count(client) == 200
    assert [b["layer"] for b in client.get("/api/batches").get_json()] == ["grid", "demolition"]


@pytest.mark.slow
def test_parallel_rollbacks_of_one_batch_roll_it_back_once(app, client, survey_zip):
    import threading

    upload_id = _post(client, survey_zip, "上报.zip").get_json()["upload_id"]
    batch_id = client.post(f"/api/uploads/{upload_id}/commit").get_json()["batch_id"]
    together = threading.Barrier(3, timeout=60)

    def roll_back():
        c = app.test_client()
        together.wait()
        return c.delete(f"/api/batches/{batch_id}")

    answers = _in_threads([roll_back] * 3)
    assert sorted(r.status_code for r in answers) == [200, 409, 409]
    assert {r.get_json()["error"] for r in answers if r.status_code == 409} == {"already_rolled_back"}
    with open_test_store(app.config["GRIDWATCH_DATA"]) as store:
        assert len(store.audit_entries(action="rollback")) == 1
        assert store.batch(batch_id).status == "rolled_back"


@pytest.mark.slow
def test_an_upload_being_committed_is_locked(app, client, survey_zip, monkeypatch):
    """While its commit runs, a staged upload cannot be discarded, read again, shown or committed
    a second time (409 at once); the commit keeps its file and archives it."""
    import threading

    from geo.imports import upload_folder, upload_review

    monkeypatch.setattr(upload_folder, "LOCK_WAIT_S", 0.1, raising=False)
    upload_id = _post(client, survey_zip, "上报.zip").get_json()["upload_id"]
    inside, release = threading.Event(), threading.Event()
    real = upload_review.commit_import

    def held(*args, **kwargs):
        inside.set()
        assert release.wait(60)
        return real(*args, **kwargs)

    monkeypatch.setattr(upload_review, "commit_import", held)
    answer: list = []
    worker = threading.Thread(
        target=lambda: answer.append(app.test_client().post(f"/api/uploads/{upload_id}/commit"))
    )
    worker.start()
    try:
        assert inside.wait(60)
        for method, suffix in (
            ("DELETE", ""),
            ("POST", "/preview"),
            ("POST", "/commit"),
            ("GET", "/features"),
        ):
            r = client.open(f"/api/uploads/{upload_id}{suffix}", method=method)
            body = r.get_json()
            assert r.status_code == 409 and body["error"] == "upload_busy", (method, suffix, body)
            assert "正在提交" in body["message_zh"] and "being committed" in body["message_en"]
    finally:
        release.set()
        worker.join(timeout=60)
    assert answer[0].status_code == 200, answer[0].get_json()
    batch_id = answer[0].get_json()["batch_id"]
    with open_test_store(app.config["GRIDWATCH_DATA"]) as store:
        assert store.archived_source(batch_id) == ("上报.zip", survey_zip)
    assert client.delete(f"/api/uploads/{upload_id}").status_code == 404  # committed: gone


def _staged_folder(app, upload_id: str) -> Path:
    from geo.imports.uploads import uploads_dir

    return uploads_dir(Path(app.config["GRIDWATCH_DATA"])) / upload_id


@pytest.mark.parametrize(
    "settings",
    [
        b"",  # what a reader of a file rewritten in place could see
        b'{"layer": "demolition", "encoding": null, "na',
        b"\xff\xfe\x00garbage",
        b"[1, 2, 3]",
        b'{"layer": "demolition", "name": "../../gridwatch.gpkg"}',
    ],
)
def test_damaged_upload_settings_are_a_clear_4xx(app, client, survey_zip, settings):
    upload_id = _post(client, survey_zip, "上报.zip").get_json()["upload_id"]
    (_staged_folder(app, upload_id) / "upload.json").write_bytes(settings)
    for method, suffix in (("POST", "/preview"), ("POST", "/commit"), ("GET", "/features")):
        r = client.open(f"/api/uploads/{upload_id}{suffix}", method=method)
        body = r.get_json()
        assert r.status_code == 400 and body["error"] == "upload_damaged", (suffix, r.status_code, body)
        assert body["message_zh"] and "upload the file again" in body["message_en"]
    assert client.delete(f"/api/uploads/{upload_id}").status_code == 204  # it can still be discarded
    assert _count(client) == 0


@pytest.mark.slow
def test_settings_are_replaced_whole_while_others_read_them(app, client, tmp_path):
    """Re-reads rewrite upload.json while another thread reads it in a loop: it is never seen
    half-written."""
    import threading

    from geo.imports import uploads

    sites = points_frame([(X0 + 50, Y0 - 50)], 编号=["P"], 状态=["已建成"])
    shp = write_shp(sites, tmp_path / "p" / "p.shp")
    upload_id = _post(client, zip_shp(shp, tmp_path / "p.zip").read_bytes(), "p.zip", layer="parking")
    upload_id = upload_id.get_json()["upload_id"]
    data = Path(app.config["GRIDWATCH_DATA"])
    stop, seen, errors = threading.Event(), [0], []

    def read():
        while not stop.is_set():
            try:
                uploads.owner(data, upload_id)
                seen[0] += 1
            except Exception as exc:
                errors.append(exc)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for i in range(12):
            r = client.post(
                f"/api/uploads/{upload_id}/preview", data={"encoding": "GBK" if i % 2 else "GB18030"}
            )
            assert r.status_code == 200
    finally:
        stop.set()
        reader.join(timeout=30)
    assert not errors and seen[0] > 0


@pytest.mark.slow
def test_a_failed_reread_keeps_the_settings_that_worked(client, tmp_path):
    sites = points_frame([(X0 + 50, Y0 - 50), (X0 + 150, Y0 - 50)], 编号=["P1", "P2"], 状态=["已建成"] * 2)
    shp = write_shp(sites, tmp_path / "p" / "p.shp")
    staged = _post(client, zip_shp(shp, tmp_path / "p.zip").read_bytes(), "p.zip", layer="parking").get_json()
    assert "4548" in staged["crs"]
    bad = client.post(f"/api/uploads/{staged['upload_id']}/preview", data={"crs": "EPSG:3857"})
    assert bad.status_code == 400  # the sites would lie far from the grid
    again = client.post(f"/api/uploads/{staged['upload_id']}/preview")
    assert again.status_code == 200 and again.get_json()["crs"] == staged["crs"]
    done = client.post(f"/api/uploads/{staged['upload_id']}/commit")
    assert (
        done.status_code == 200 and done.get_json()["added"] == 2 and done.get_json()["crs"] == staged["crs"]
    )


# --- staged uploads: quota per account and expiry ----------------------------------------------


@pytest.fixture
def accounts_app(tmp_path, make_app):
    """An app with accounts: surveyor, surveyor2 and admin, each with an API token; demo sites
    D1, D2 imported without an account and sites S1, S2 imported by surveyor."""
    from geo.store import accounts

    data = tmp_path / "acc"
    tokens = {}
    with open_test_store(data) as store:
        import_file(store, "grid", write_shp(grid_frame(), tmp_path / "g" / "g.shp"))
        demo = points_frame(
            [(X0 + 20, Y0 - 20), (X0 + 120, Y0 - 20)], 案件编号=["D1", "D2"], 当前状态=["已登记"] * 2
        )
        import_file(store, "demolition", write_shp(demo, tmp_path / "d" / "d.shp"))
        own = points_frame(
            [(X0 + 50, Y0 - 50), (X0 + 150, Y0 - 150)], 案件编号=["S1", "S2"], 当前状态=["已登记"] * 2
        )
        import_file(store, "demolition", write_shp(own, tmp_path / "s" / "s.shp"), user="surveyor")
        for name, role in (("surveyor", "surveyor"), ("surveyor2", "surveyor"), ("admin", "admin")):
            accounts.add_user(store, name, role, f"{name}-password-1")
            tokens[name] = {"Authorization": f"Bearer {accounts.create_token(store, name, 'tests')[1]}"}

    def make(**config):
        app = make_app(data, **config)
        app.tokens = tokens
        return app

    return make


def _upload_as(app, who: str, data: bytes, name: str = "up.zip", **form):
    form.setdefault("layer", "demolition")
    return app.test_client().post(
        "/api/uploads",
        data={**form, "file": (io.BytesIO(data), name)},
        content_type="multipart/form-data",
        headers=app.tokens[who],
    )


@pytest.mark.slow
def test_staged_uploads_are_limited_in_number_per_account(accounts_app, survey_zip, monkeypatch):
    monkeypatch.setenv("GRIDWATCH_STAGING_UPLOADS", "2")
    app = accounts_app()
    first = _upload_as(app, "surveyor", survey_zip)
    assert first.status_code == 201
    assert _upload_as(app, "surveyor", survey_zip).status_code == 201
    third = _upload_as(app, "surveyor", survey_zip)
    body = third.get_json()
    assert third.status_code == 429 and body["error"] == "staging_quota"
    assert (
        "确认导入或删除" in body["message_zh"] and "commit or discard earlier uploads" in body["message_en"]
    )
    assert _upload_as(app, "surveyor2", survey_zip).status_code == 201  # a quota per account
    c = app.test_client()
    upload_id = first.get_json()["upload_id"]
    assert c.delete(f"/api/uploads/{upload_id}", headers=app.tokens["surveyor"]).status_code == 204
    assert _upload_as(app, "surveyor", survey_zip).status_code == 201


@pytest.mark.slow
def test_staged_uploads_are_limited_in_bytes_per_account(accounts_app, app_files):
    app = accounts_app(GRIDWATCH_STAGING_QUOTA="100K")
    padded = app_files  # a survey zip padded with 60 KB of incompressible notes
    assert 60_000 < len(padded) < 70_000
    assert _upload_as(app, "surveyor", padded).status_code == 201
    refused = _upload_as(app, "surveyor", padded)
    body = refused.get_json()
    assert refused.status_code == 413 and body["error"] == "staging_quota"
    assert "100.0 KB" not in body["message_en"] and "0.1 MB" in body["message_en"]
    assert (
        "commit or discard earlier uploads" in body["message_en"] and "删除之前的上传" in body["message_zh"]
    )
    assert _upload_as(app, "surveyor2", padded).status_code == 201
    folders = [p for p in (Path(app.config["GRIDWATCH_DATA"]) / "uploads").iterdir() if p.is_dir()]
    assert len(folders) == 2  # nothing of the refused upload is kept


@pytest.fixture
def app_files(tmp_path, survey_zip) -> bytes:
    import os

    buf = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(survey_zip)) as src, zipfile.ZipFile(buf, "w") as out:
        for info in src.infolist():
            out.writestr(info, src.read(info))
        out.writestr("说明.txt", os.urandom(60_000))
    return buf.getvalue()


@pytest.mark.slow
def test_staged_uploads_expire_after_two_hours(app, client, survey_zip):
    import os
    import time

    old = _post(client, survey_zip, "上报.zip").get_json()["upload_id"]
    recent = _post(client, survey_zip, "上报.zip").get_json()["upload_id"]
    now = time.time()
    os.utime(_staged_folder(app, old), (now - 2 * 3600 - 60, now - 2 * 3600 - 60))
    os.utime(_staged_folder(app, recent), (now - 3600, now - 3600))
    _post(client, survey_zip, "上报.zip")  # each new upload clears the expired ones
    assert client.get(f"/api/uploads/{old}/features").status_code == 404
    assert client.get(f"/api/uploads/{recent}/features").status_code == 200


@pytest.mark.slow
def test_the_expiry_of_staged_uploads_is_a_setting(app, make_app, survey_zip, monkeypatch):
    import os
    import time

    monkeypatch.setenv("GRIDWATCH_STAGING_HOURS", "0.5")
    client = make_app(app.config["GRIDWATCH_DATA"], login=False).test_client()  # reads the setting
    staged = _post(client, survey_zip, "上报.zip").get_json()["upload_id"]
    then = time.time() - 40 * 60
    os.utime(_staged_folder(app, staged), (then, then))
    _post(client, survey_zip, "上报.zip")
    assert client.get(f"/api/uploads/{staged}/features").status_code == 404


# --- whose features an import may update ---------------------------------------------------------


def _sites_zip(tmp_path, name: str, ids: list[str], status: str = "已拆除") -> bytes:
    xy = [(X0 + 30 + 20 * i, Y0 - 40) for i in range(len(ids))]
    shp = write_shp(
        points_frame(xy, 案件编号=ids, 当前状态=[status] * len(ids)), tmp_path / name / f"{name}.shp"
    )
    return zip_shp(shp, tmp_path / f"{name}.zip").read_bytes()


def _statuses(app) -> dict[str, tuple[str, str | None]]:
    import layers

    with open_test_store(app.config["GRIDWATCH_DATA"]) as store:
        attrs = store.read_attributes(layers.get("demolition"))
        users = {b.id: b.user for b in store.batches()}
    return {
        k: (s, users[b]) for k, s, b in zip(attrs["case_id"], attrs["status"], attrs["gw_batch"], strict=True)
    }


@pytest.mark.slow
def test_a_surveyor_cannot_overwrite_features_of_other_accounts(accounts_app, tmp_path):
    app = accounts_app()
    before = _statuses(app)
    data = _sites_zip(tmp_path, "other", ["S1", "D1", "N1"])
    staged = _upload_as(app, "surveyor2", data)
    assert staged.status_code == 201
    preview = staged.get_json()
    assert preview["accepted"] == 1 and preview["rejected_count"] == 2  # told before the commit
    c = app.test_client()
    done = c.post(f"/api/uploads/{preview['upload_id']}/commit", headers=app.tokens["surveyor2"])
    assert done.status_code == 200, done.get_json()
    report = done.get_json()
    assert (report["added"], report["updated"], report["rejected_count"]) == (1, 0, 2)
    rows = {r["row"]: r for r in report["rejected"]}
    assert set(rows) == {1, 2} and rows[1]["value"] == "S1" and rows[2]["value"] == "D1"
    assert "S1" in rows[1]["reason_zh"] and "其他账户的批次" in rows[1]["reason_zh"]
    assert "another account" in rows[2]["reason_en"] and "D1" in rows[2]["reason_en"]
    after = _statuses(app)
    assert {k: after[k] for k in before} == before  # nothing of theirs changed
    assert after["N1"] == ("已拆除", "surveyor2")
    with open_test_store(app.config["GRIDWATCH_DATA"]) as store:
        assert store.batch(report["batch_id"]).rejected == 2
        mine = next(b.id for b in store.batches("demolition") if b.user == "surveyor")
    # the owner's rollback is not blocked
    assert c.delete(f"/api/batches/{mine}", headers=app.tokens["surveyor"]).status_code == 200
    # a file of nothing but other accounts' features is refused whole
    only = _upload_as(app, "surveyor2", _sites_zip(tmp_path, "only", ["D1", "D2"]))
    assert only.status_code == 400 and only.get_json()["error"] == "no_valid_rows"
    assert "其他账户" in only.get_json()["message_zh"]


@pytest.mark.slow
def test_surveyors_update_their_own_features_and_admins_any(accounts_app, tmp_path):
    app = accounts_app()
    c = app.test_client()
    own = _upload_as(app, "surveyor", _sites_zip(tmp_path, "own", ["S1"])).get_json()
    done = c.post(f"/api/uploads/{own['upload_id']}/commit", headers=app.tokens["surveyor"]).get_json()
    assert (done["updated"], done["rejected_count"]) == (1, 0)
    admin = _upload_as(app, "admin", _sites_zip(tmp_path, "adm", ["S2", "D2"])).get_json()
    assert admin["rejected_count"] == 0
    done = c.post(f"/api/uploads/{admin['upload_id']}/commit", headers=app.tokens["admin"]).get_json()
    assert (done["updated"], done["rejected_count"]) == (2, 0)
    after = _statuses(app)
    assert after["S1"] == ("已拆除", "surveyor") and after["S2"] == after["D2"] == ("已拆除", "admin")


def _mapping_of(report: dict, field: str = "status") -> dict:
    entry = next(e for e in report["value_mappings"] if e["field"] == field)
    return {v["raw"]: v for v in entry["values"]}


@pytest.mark.slow
def test_value_table_changed_in_the_preview_is_committed_and_remembered(client, tmp_path):
    sites = points_frame(
        [(X0 + 50, Y0 - 50), (X0 + 150, Y0 - 150), (X0 + 250, Y0 - 250), (X0 + 60, Y0 - 60)],
        案件编号=["V1", "V2", "V3", "V4"],
        当前状态=["暂缓拆除", "暂缓拆除", "己拆除", "已拆除"],
    )
    first = _staged(client, sites, tmp_path)
    table = _mapping_of(first)
    assert table["暂缓拆除"]["code"] == "未识别" and table["暂缓拆除"]["count"] == 2
    assert (table["己拆除"]["how"], table["己拆除"]["suggestion"]) == ("suggested", "已拆除")
    assert table["已拆除"]["how"] == "exact"
    assert first["added"] == 4 and first["rejected_count"] == 0  # nothing is lost for a value
    # the select in the preview sends the changed mappings; they are read again at once
    again = client.post(
        f"/api/uploads/{first['upload_id']}/preview",
        data={
            "value_map": json.dumps([["当前状态", "己拆除", "已拆除"], ["status", "暂缓拆除", "已下发通知"]])
        },
    ).get_json()
    table = _mapping_of(again)
    assert (table["己拆除"]["code"], table["己拆除"]["how"]) == ("已拆除", "manual")
    assert table["暂缓拆除"]["code"] == "已下发通知"
    committed = client.post(f"/api/uploads/{first['upload_id']}/commit").get_json()
    assert committed["added"] == 4 and committed["mappings_remembered"] == 2
    rows = client.get("/api/stats?format=json&level=district&layer=demolition").get_json()["rows"]
    district = rows[0]
    assert (district["demolition_total"], district["demolition_completed"]) == (4, 2)
    assert district["demolition_unrecognised"] == 0
    # the next file finds them remembered
    later = points_frame([(X0 + 70, Y0 - 70)], 案件编号=["V9"], 当前状态=["己拆除"])
    table = _mapping_of(_staged(client, later, tmp_path / "later"))
    assert (table["己拆除"]["code"], table["己拆除"]["how"]) == ("已拆除", "remembered")


@pytest.mark.slow
@pytest.mark.parametrize(
    "form",
    [
        {"value_map": "not json"},
        {"value_map": "[" * 100_000 + "]" * 100_000},  # nested past the parser's recursion limit
        {"value_map": "[" + "9" * 100_000 + "]"},  # an integer of more digits than Python converts
        {"value_map": json.dumps({"a": 1})},
        {"value_map": json.dumps([["当前状态", "x"]])},
        {"value_map": json.dumps([["当前状态", "x", "拆了"]])},
        {"value_map": json.dumps([["面积", "x", "已拆除"]])},
        {"field_map": json.dumps({"没有这列": "status"})},
        {"field_map": json.dumps({"当前状态": "nofield"})},
        {"field_map": json.dumps(["当前状态"])},
        {"remember": "maybe"},
    ],
)
def test_bad_mappings_are_a_clear_400(client, tmp_path, form):
    sites = points_frame([(X0 + 50, Y0 - 50)], 案件编号=["M1"], 当前状态=["已拆除"])
    first = _staged(client, sites, tmp_path)
    r = client.post(
        f"/api/uploads/{first['upload_id']}/preview", data=form, content_type="multipart/form-data"
    )
    assert r.status_code == 400
    body = r.get_json()
    assert body["error"] in ("bad_mapping", "bad_field_map") and body["message"]
    # the upload is as it was: it still commits
    assert client.post(f"/api/uploads/{first['upload_id']}/commit").get_json()["added"] == 1


@pytest.mark.slow
def test_odd_text_in_a_value_map_is_read_as_text(client, tmp_path):
    """A lone surrogate, a NUL and markup in a mapping's raw value: no error, nothing half-written."""
    sites = points_frame([(X0 + 50, Y0 - 50)], 案件编号=["O1"], 当前状态=["暂缓拆除"])
    first = _staged(client, sites, tmp_path)
    odd = '[["当前状态", "\\ud800", "已拆除"], ["当前状态", "a\\u0000b", "已拆除"], ["当前状态", "<b>x</b>", "已拆除"]]'
    r = client.post(f"/api/uploads/{first['upload_id']}/preview", data={"value_map": odd})
    assert r.status_code == 200
    assert _mapping_of(r.get_json())["暂缓拆除"]["code"] == "未识别"  # none of them is that value
    assert client.post(f"/api/uploads/{first['upload_id']}/commit").get_json()["added"] == 1


@pytest.mark.slow
def test_field_map_changed_in_the_preview(client, tmp_path):
    sites = points_frame(
        [(X0 + 50, Y0 - 50), (X0 + 150, Y0 - 150)],
        案件编号=["F1", "F2"],
        当前状态=["已拆除", "已拆除"],
        处置日期=["2022-05-01", "2022-06-01"],
    )
    first = _staged(client, sites, tmp_path)
    assert "处置日期" in first["unmatched_fields"] and first["completed_undated"] == 2
    again = client.post(
        f"/api/uploads/{first['upload_id']}/preview", data={"field_map": json.dumps({"处置日期": "拆除时间"})}
    ).get_json()
    assert again["field_mapping"]["处置日期"] == "done_on" and again["completed_undated"] == 0
    assert client.post(f"/api/uploads/{first['upload_id']}/commit").get_json()["added"] == 2
