"""The web layer over the engine: app factory, health, stats download, map page, errors."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import openpyxl
import pytest

from tests.helpers.builders import X0, Y0


@pytest.mark.slow
def test_healthz_and_layers(client):
    assert client.get("/healthz").get_json()["status"] == "ok"
    names = [layer["name"] for layer in client.get("/api/layers").get_json()]
    assert names == ["grid", "demolition", "parking", "charging"]


@pytest.mark.slow
def test_stats_downloads(client):
    r = client.get("/api/stats?level=community&format=csv")
    assert r.status_code == 200 and r.data.startswith(b"\xef\xbb\xbf")
    assert b"demolition_total" in r.data
    r = client.get("/api/stats?format=xlsx")
    wb = openpyxl.load_workbook(io.BytesIO(r.data))
    assert "社区" in wb.sheetnames


@pytest.mark.needs("node_modules")
def test_map_page_serves_its_own_assets(client):
    import json
    import re

    r = client.get("/?level=community&layer=demolition&tiles=none")
    assert r.status_code == 200
    page = r.get_data(as_text=True)
    assert "违法建设" in page and "L.map" in page
    assert "<script>alert(1)</script>" not in page  # survey data is not embedded; it comes from the API
    refs = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert refs and all(ref.startswith("/") for ref in refs), refs  # no CDN: works without internet
    for ref in refs:
        if ref.startswith(("/vendor/", "/static/")):
            with client.get(ref) as asset:
                assert asset.status_code == 200 and len(asset.data) > 200, ref
    config = json.loads(
        re.search(r'<script type="application/json" id="gw-map-config">(.*?)</script>', page, re.S)[1]
    )
    assert config["level"] == "community" and config["layer"] == "demolition" and config["gcj02"] is False


def test_map_base_maps(client, app):
    assert "tile.openstreetmap.org" in client.get("/").get_data(as_text=True)
    gaode = client.get("/?tiles=gaode").get_data(as_text=True)
    assert "autonavi" in gaode and '"gcj02": true' in gaode
    assert client.get("/?tiles=tianditu").status_code == 400  # no key configured
    app.config["GRIDWATCH_TIANDITU_KEY"] = "abc123"
    assert "tk=abc123" in client.get("/?tiles=tianditu").get_data(as_text=True)
    assert client.get("/?tiles=bogus").get_json()["error"] == "bad_tiles"
    for path in ("/vendor/evil/x.js", "/vendor/leaflet/../../package.json"):
        with client.get(path) as resp:
            assert resp.status_code == 404


def test_errors_are_json_with_status(client):
    r = client.get("/api/stats?level=planet")
    assert r.status_code == 400 and r.get_json()["error"] == "bad_level"
    r = client.get("/api/stats?format=pdf")
    assert r.status_code == 400 and "format" in r.get_json()["message_en"]
    r = client.get("/nope")
    assert r.status_code == 404 and r.get_json()["error"] == "not_found"
    r = client.get("/api/stats?as_of=yesterday")
    assert r.status_code == 400


def _bbox() -> str:
    import pyproj

    from tests.helpers.builders import EPSG_GK

    t = pyproj.Transformer.from_crs(EPSG_GK, 4326, always_xy=True)
    w, s = t.transform(X0 - 100, Y0 - 400)
    e, n = t.transform(X0 + 400, Y0 + 100)
    return f"{w},{s},{e},{n}"


@pytest.mark.slow
def test_api_cells_and_features(client):
    r = client.get(f"/api/cells?level=grid&layer=demolition&zoom=16&bbox={_bbox()}")
    assert r.status_code == 200
    fc = r.get_json()
    assert len(fc["features"]) == 9 and sum(f["properties"]["demolition_total"] for f in fc["features"]) == 1
    r = client.get(f"/api/features/demolition?zoom=16&detail=1&bbox={_bbox()}")
    body = r.get_json()
    assert body["total"] == 1 and body["features"][0]["properties"]["case_id"] == "<script>alert(1)</script>"
    assert r.headers["Content-Type"].startswith("application/json")
    assert b"<script>" not in r.data  # JSON escapes < and > so the payload is inert even if sniffed
    assert (
        client.get(f"/api/features/demolition?zoom=16&bbox={_bbox()}&status=已登记").get_json()["total"] == 0
    )


@pytest.mark.slow
def test_api_bad_parameters(client):
    assert client.get("/api/features/demolition?zoom=16").status_code == 400
    assert client.get("/api/features/demolition?bbox=1,2,3").get_json()["error"] == "bad_bbox"
    assert client.get(f"/api/features/demolition?bbox={_bbox()}&zoom=99").status_code == 400
    assert client.get(f"/api/features/nosuch?bbox={_bbox()}").status_code == 400
    assert client.get("/api/cells?layer=nosuch").status_code == 400


def test_api_batches_and_rollback(client):
    batches = client.get("/api/batches").get_json()
    assert [b["layer"] for b in batches] == ["grid", "demolition"]
    r = client.delete(f"/api/batches/{batches[1]['id']}")
    assert r.status_code == 200 and r.get_json()["status"] == "rolled_back"
    assert client.delete(f"/api/batches/{batches[1]['id']}").status_code == 409
    assert client.delete("/api/batches/999").status_code == 404
    assert client.get("/api/stats?format=json&level=district").get_json()["rows"][0]["demolition_total"] == 0


def test_openapi_documents_every_api_route(app, client):
    doc = client.get("/api/openapi.json").get_json()
    assert doc["openapi"].startswith("3.")
    documented = {(path, method) for path, ops in doc["paths"].items() for method in ops}
    for rule in app.url_map.iter_rules():
        if not (rule.rule.startswith("/api/") or rule.rule == "/healthz"):
            continue
        path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule)  # <id:fid> -> {fid}
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert (path, method.lower()) in documented, f"{method} {path} is not in /api/openapi.json"


def _error(r, status: int) -> dict:
    assert r.status_code == status and r.is_json
    body = r.get_json()
    assert body["message_zh"] and body["message_en"] and body["message_zh"] != body["message_en"]
    return body


def test_error_messages_follow_the_language(client):
    body = _error(client.get("/api/stats?level=planet"), 400)
    assert body["error"] == "bad_level" and body["message"] == body["message_zh"]
    assert "/" not in body["message"] and any("\u4e00" <= ch <= "\u9fff" for ch in body["message"])
    body = _error(client.get("/api/stats?level=planet&lang=en"), 400)
    assert body["message"] == body["message_en"] and body["message_en"].isascii()
    # the choice is remembered in the cookie, for the API as for the pages
    assert _error(client.get("/api/stats?level=planet"), 400)["message"] == body["message_en"]
    assert _error(client.delete("/api/batches/999"), 404)["message"] == "batch 999 not found"
    zh = _error(client.get("/api/stats?level=planet&lang=zh"), 400)
    assert zh["message"] == zh["message_zh"]


def test_http_errors_in_both_languages(client):
    body = _error(client.get("/nope"), 404)
    assert body["error"] == "not_found" and body["message"] == "页面不存在: /nope"
    assert body["message_en"] == "not found: /nope"
    body = _error(client.get("/api/uploads"), 405)  # POST only
    assert body["error"] == "method_not_allowed" and body["message"] == "405 不支持该请求方法"
    assert "Method Not Allowed" in body["message_en"]
    client.set_cookie("gridwatch_lang", "en")
    assert _error(client.get("/nope"), 404)["message"] == "not found: /nope"
    assert _error(client.get("/api/uploads"), 405)["message"].startswith("405 Method Not Allowed")


def test_server_error_is_json_in_both_languages(tmp_path, make_app):
    app = make_app(tmp_path / "d", login=False, TESTING=False)

    def boom():
        raise RuntimeError("secret detail")

    boom.gw_access = "public"  # a route that declares no access is refused (test_auth)
    app.add_url_rule("/boom", "boom", boom)
    client = app.test_client()
    body = _error(client.get("/boom"), 500)
    assert body == {
        "error": "server_error",
        "message": "服务器内部错误",
        "message_zh": "服务器内部错误",
        "message_en": "internal server error",
    }
    assert _error(client.get("/boom?lang=en"), 500)["message"] == "internal server error"


@pytest.mark.slow
@pytest.mark.needs("node_modules")
def test_upload_page_base_map_and_assets(client, app):
    import json
    import re

    def config(path: str, block: str = "gw-map-config") -> dict:
        page = client.get(path).get_data(as_text=True)
        return json.loads(re.search(rf'id="{block}">(.*?)</script>', page, re.S)[1])

    page = client.get("/upload").get_data(as_text=True)
    refs = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert "/vendor/leaflet/leaflet.js" in refs and "/vendor/leaflet/leaflet.css" in refs
    assert all(ref.startswith("/") for ref in refs), refs  # no CDN: works without internet
    for ref in refs:
        if ref.startswith(("/vendor/", "/static/")):
            with client.get(ref) as asset:
                assert asset.status_code == 200 and len(asset.data) > 200, ref
    assert "tile.openstreetmap.org" in config("/upload")["base"]["url"]
    gaode = config("/upload?tiles=gaode")
    assert "autonavi" in gaode["base"]["url"] and gaode["gcj02"] is True
    none = config("/upload?tiles=none")
    assert none["base"] is None and none["gcj02"] is False and none["baseError"] is None
    app.config["GRIDWATCH_TILES"] = "none"
    assert config("/upload")["base"] is None
    # a base map that cannot be used does not block uploads: the preview says why it has none
    broken = config("/upload?tiles=tianditu")
    assert broken["base"] is None and "GRIDWATCH_TIANDITU_KEY" in broken["baseError"]
    assert (
        config("/upload", "gw-upload-config")["api"] == "/api/uploads" and config("/upload")["api"] == "/api"
    )
    assert config("/upload")["map"] == {"key": "preview", "container": "gw-preview-map"}


def test_upload_and_batches_pages(client):
    page = client.get("/upload").get_data(as_text=True)
    assert "上传调查数据" in page and 'value="demolition"' in page
    batches = client.get("/batches").get_data(as_text=True)
    assert "导入批次" in batches and "回滚" in batches and "违法建设" in batches


@pytest.mark.slow
def test_stats_page(client):
    page = client.get("/stats?level=community&layer=demolition").get_data(as_text=True)
    assert "违法建设 · 统计" in page and "340291001001" in page and "滞后单元" in page
    assert "/vendor/chartjs/chart.umd.min.js" in page
    assert client.get("/stats?layer=grid").status_code == 400


@pytest.mark.slow
def test_map_filters(client):
    page = client.get("/?tiles=none&within=340291001002&status=已拆除").get_data(as_text=True)
    assert 'value="340291001002" selected' in page and 'value="已拆除" selected' in page
    assert '"within": "340291001002"' in page and '"status": "已拆除"' in page
    r = client.get("/api/cells?level=grid&layer=demolition&zoom=16&within=340291001002")
    assert {f["id"][:12] for f in r.get_json()["features"]} == {"340291001002"}


def test_unknown_layer_on_pages_is_a_400(client):
    for path in ("/?layer=nosuch&tiles=none", "/stats?layer=nosuch"):
        r = client.get(path)
        assert r.status_code == 400 and r.get_json()["error"] == "unknown_layer"


def test_map_colours_units_by_completed_area(client):
    page = client.get("/?metric=area&layer=demolition&level=community&tiles=none")
    assert page.status_code == 200
    config = json.loads(re.search(r'id="gw-map-config">(.*?)</script>', page.text, re.S).group(1))
    assert config["metric"] == "area" and config["measureColumn"] == "demolition_area_completed_m2"
    assert config["maxMeasure"] > 0 and "面积" in config["measureLabel"]
    cells = client.get("/api/cells?level=community&layer=demolition&zoom=14").get_json()
    assert cells["features"] and all(
        "demolition_area_completed_m2" in f["properties"] for f in cells["features"]
    )
    assert client.get("/?metric=volume&tiles=none").status_code == 400


def _assert_no_server_paths(text: str, *folders) -> None:
    for folder in folders:
        for form in {str(folder), str(folder.resolve())}:
            assert form not in text, f"{form} in {text}"


def _not_a_geopackage(folder: Path) -> Path:
    """A data directory whose store file is an SQLite database of another application."""
    import sqlite3

    folder.mkdir(parents=True)
    con = sqlite3.connect(folder / "gridwatch.gpkg")
    con.executescript("PRAGMA application_id = 12345; CREATE TABLE t (x);")
    con.close()
    return folder


def test_healthz_names_no_file_or_directory(tmp_path, make_app):
    data = tmp_path / "store"
    app = make_app(data)
    resp = app.test_client().get("/healthz")
    assert resp.status_code == 200 and resp.get_json() == {"status": "ok"}
    # a store that cannot be read: unavailable, still without a path
    other = _not_a_geopackage(tmp_path / "other")
    garbage = tmp_path / "garbage"
    garbage.mkdir()
    (garbage / "gridwatch.gpkg").write_bytes(b"this is not a database" * 100)
    for bad in (other, garbage):
        resp = make_app(bad).test_client().get("/healthz")
        assert resp.status_code == 503 and resp.get_json() == {"status": "unavailable"}


@pytest.mark.parametrize("broken", ["not_a_geopackage", "data_dir_under_a_file"])
def test_error_answers_name_no_server_directory(tmp_path, broken, make_app):
    if broken == "not_a_geopackage":
        data = _not_a_geopackage(tmp_path / "data")
    else:
        (tmp_path / "file").write_text("x", encoding="utf-8")
        data = tmp_path / "file" / "data"
    app = make_app(data, login=False)
    c = app.test_client()
    for url in ("/api/cells?level=grid&zoom=16", "/api/batches", "/api/stats?lang=en"):
        resp = c.get(url)
        assert resp.status_code == 503, (url, resp.status_code)
        body = resp.get_data(as_text=True)
        assert resp.get_json()["error"] == "store_unavailable", body
        _assert_no_server_paths(body, data, tmp_path)
        assert "$GRIDWATCH_DATA" in resp.get_json()["message_zh"]  # still says which file it is


def test_upload_errors_name_no_server_directory(app, client, tmp_path):
    data = Path(app.config["GRIDWATCH_DATA"])
    bad_zip = (io.BytesIO(b"PK\x03\x04 this is not really a zip" * 50), "上报.zip")
    for form in (
        {"layer": "demolition", "file": bad_zip},
        {"layer": "demolition", "file": (io.BytesIO(b"\xff\xfe\x00garbage"), "x.shp")},
        {"layer": "demolition", "file": (io.BytesIO(b"a,b\n1,2\n"), "x.csv")},
    ):
        resp = client.post("/api/uploads", data=form)
        assert 400 <= resp.status_code < 500, resp.get_data(as_text=True)
        _assert_no_server_paths(resp.get_data(as_text=True), data, tmp_path)
    resp = client.post("/api/uploads/aaaaaaaaaaaaaaaaaaaaaaaa/commit")
    assert resp.status_code == 404
    _assert_no_server_paths(resp.get_data(as_text=True), data, tmp_path)
