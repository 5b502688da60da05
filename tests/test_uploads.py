"""The upload flow over HTTP: stage and preview, override and re-read, commit, and every class of
bad input answered with a clear 4xx and nothing written."""

from __future__ import annotations

import io
import shutil
import zipfile
from pathlib import Path

import pytest

from geo.importer import import_file
from geo.store import open_store
from server import create_app
from tests.conftest import X0, Y0, GbkZipInfo, grid_frame, points_frame, write_shp, zip_shp


@pytest.fixture
def app(tmp_path):
    data = tmp_path / "store"
    with open_store(data) as store:
        import_file(store, "grid", write_shp(grid_frame(), tmp_path / "g" / "g.shp"))
    return create_app(
        {
            "GRIDWATCH_DATA": str(data),
            "TESTING": True,
            "LOGIN_DISABLED": True,
            "WTF_CSRF_ENABLED": False,
            "MAX_CONTENT_LENGTH": 2 * 1024 * 1024,
        }
    )


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def survey_zip(tmp_path):
    sites = points_frame(
        [(X0 + 50, Y0 - 50), (X0 + 150, Y0 - 150), (X0 + 250, Y0 - 250)],
        案件编号=["U1", "U2", "U3"],
        当前状态=["已拆除", "已登记", "不知道"],
        违建面积=["10", "20", "30"],
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


def test_preview_then_commit(client, survey_zip):
    r = _post(client, survey_zip, "上报.zip")
    assert r.status_code == 201
    body = r.get_json()
    assert body["status"] == "preview" and body["rows_read"] == 3 and body["rejected_count"] == 1
    assert body["rejected"][0]["row"] == 3 and "状态" in body["rejected"][0]["reason_zh"]
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

    from tests.conftest import EPSG_GK

    lon, lat = pyproj.Transformer.from_crs(EPSG_GK, 4326, always_xy=True).transform(x, y)
    return float(lon), float(lat)


def _staged(client, frame, tmp_path, name="f", **form) -> dict:
    shp = write_shp(frame, tmp_path / name / f"{name}.shp", prj=form.pop("prj", True))
    r = _post(client, zip_shp(shp, tmp_path / f"{name}.zip").read_bytes(), f"{name}.zip", **form)
    assert r.status_code == 201, r.get_json()
    return r.get_json()


def test_features_inside_and_outside_the_grid(client, tmp_path):
    sites = points_frame(
        [(X0 + 50, Y0 - 50), (X0 + 250, Y0 - 150), (X0 + 150, Y0 - 250), (X0 + 1000, Y0 - 100), (X0, Y0)],
        案件编号=["A", "B", "C", "FAR", "BAD"],
        当前状态=["已登记", "已登记", "已拆除", "已登记", "不知道"],
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


def test_features_follow_a_reread_and_gcj02(client, tmp_path):
    from geo.crs import wgs84_to_gcj02

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
    # a re-read that fails leaves no features of the previous read behind
    failed = client.post(f"/api/uploads/{report['upload_id']}/preview", data={"crs": "EPSG:3857"})
    assert failed.status_code == 400
    r = client.get(url)
    assert r.status_code == 400 and r.get_json()["error"] == failed.get_json()["error"]


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


def test_polygons_simplified_or_sent_as_points(app, client, tmp_path):
    from pathlib import Path

    import geopandas as gpd
    import shapely

    from geo import uploads
    from tests.conftest import EPSG_GK

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
    with open_store(data) as store:
        data = Path(store.location).parent
        many = uploads.features(store, data, report["upload_id"], max_shapes=10)
        heavy = uploads.features(store, data, report["upload_id"], max_vertices=100)
    for out in (many, heavy):
        assert out["as_points"] is True and {f["geometry"]["type"] for f in out["features"]} == {"Point"}
        assert out["sent"] == 30
    centre = _lonlat(X0 + 20, Y0 - 20)
    assert many["features"][0]["geometry"]["coordinates"] == pytest.approx(centre, abs=5e-5)


def test_features_read_again_when_not_kept(app, client, survey_zip):
    from pathlib import Path

    from geo.uploads import uploads_dir

    report = _post(client, survey_zip, "上报.zip").get_json()
    url = f"/api/uploads/{report['upload_id']}/features"
    first = client.get(url).get_json()
    with open_store(app.config["GRIDWATCH_DATA"]) as store:
        folder = uploads_dir(Path(store.location).parent) / report["upload_id"]
    (folder / "features.arrow").unlink()
    assert client.get(url).get_json() == first and (folder / "features.arrow").exists()


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


def test_the_app_starts_when_the_session_key_cannot_be_kept(tmp_path, caplog):
    blocker = tmp_path / "file"
    blocker.write_text("")
    app = create_app({"GRIDWATCH_DATA": str(blocker / "data"), "TESTING": True})
    assert len(app.config["SECRET_KEY"]) == 64
    assert "SECRET_KEY" in caplog.text
