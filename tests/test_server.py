"""The web layer over the engine: app factory, health, stats download, map page, errors."""

from __future__ import annotations

import io

import openpyxl
import pytest

from geo.importer import import_file
from server import create_app
from tests.conftest import X0, Y0, grid_frame, points_frame, write_shp


@pytest.fixture
def app(tmp_path):
    data = tmp_path / "store"
    from geo.store import open_store

    with open_store(data) as store:
        import_file(store, "grid", write_shp(grid_frame(), tmp_path / "g" / "g.shp"))
        sites = points_frame(
            [(X0 + 50, Y0 - 50)], 案件编号=["<script>alert(1)</script>"], 当前状态=["已拆除"]
        )
        import_file(store, "demolition", write_shp(sites, tmp_path / "s" / "s.shp"))
    return create_app({"GRIDWATCH_DATA": str(data), "TESTING": True})


@pytest.fixture
def client(app):
    return app.test_client()


def test_healthz_and_layers(client):
    assert client.get("/healthz").get_json()["status"] == "ok"
    names = [layer["name"] for layer in client.get("/api/layers").get_json()]
    assert names == ["grid", "demolition", "parking", "charging"]


def test_stats_downloads(client):
    r = client.get("/api/stats?level=community&format=csv")
    assert r.status_code == 200 and r.data.startswith(b"\xef\xbb\xbf")
    assert b"demolition_total" in r.data
    r = client.get("/api/stats?format=xlsx")
    wb = openpyxl.load_workbook(io.BytesIO(r.data))
    assert "社区" in wb.sheetnames


def test_map_page(client):
    r = client.get("/?level=community&layer=demolition&tiles=none")
    assert r.status_code == 200
    page = r.get_data(as_text=True)
    assert "违法建设" in page and "L.map" in page and "340291001001" in page
    assert "<script>alert(1)</script>" not in page


def test_errors_are_json_with_status(client):
    r = client.get("/api/stats?level=planet")
    assert r.status_code == 400 and r.get_json()["error"] == "bad_level"
    r = client.get("/api/stats?format=pdf")
    assert r.status_code == 400 and "format" in r.get_json()["message"]
    r = client.get("/nope")
    assert r.status_code == 404 and r.get_json()["error"] == "not_found"
    r = client.get("/api/stats?as_of=yesterday")
    assert r.status_code == 400
