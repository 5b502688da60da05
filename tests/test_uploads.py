"""The upload flow over HTTP: stage and preview, override and re-read, commit, and every class of
bad input answered with a clear 4xx and nothing written."""

from __future__ import annotations

import io
import zipfile

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
    return create_app({"GRIDWATCH_DATA": str(data), "TESTING": True, "MAX_CONTENT_LENGTH": 2 * 1024 * 1024})


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
    assert client.get("/api/batches").get_json()[-1]["user"] == "surveyor"
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
    assert body["error"] and " / " in body["message"] and "Traceback" not in body["message"]
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


def test_unknown_upload_id(client):
    assert client.post("/api/uploads/../../etc/commit").status_code == 404
    assert (
        client.post("/api/uploads/AAAAAAAAAAAAAAAAAAAAAAAA/commit").get_json()["error"] == "upload_not_found"
    )
