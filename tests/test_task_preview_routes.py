"""The preview of a new task over HTTP (POST /api/tasks/preview) on the real app with real
accounts: the same body creates exactly what it previewed; the preview writes nothing; roles and
areas as for creation; a shape in GCJ-02; hostile bodies are 400 with a Chinese and an English
message, never a 500."""

from __future__ import annotations

import json

import pytest
from pyproj import Transformer

from geo.figures import areas
from geo.imports.importer import import_file
from geo.reading.gcj02 import wgs84_to_gcj02
from geo.tasks.handover import MAX_VERTICES
from tests.helpers.builders import COMM_A, COMM_B, EPSG_GK, X0, Y0, grid_frame, points_frame, write_shp
from tests.helpers.postgis import open_test_store
from tests.helpers.web import Session, csrf_from, login

pytestmark = pytest.mark.backends

PASSWORD = "preview-pass-1"
STREET = COMM_A[:9]
ACCOUNTS = {"boss": ("admin", ""), "street": ("surveyor", STREET), "comm_b": ("surveyor", COMM_B)}
ACCOUNTS |= {"look": ("viewer", STREET)}
SITES = [(X0 + 25 + 50 * (k % 6), Y0 - 25 - 50 * (k // 6)) for k in range(36)]
TO_LONLAT = Transformer.from_crs(EPSG_GK, 4326, always_xy=True).transform


@pytest.fixture
def app(tmp_path, store_url, make_app):
    data = tmp_path / "store"
    with open_test_store(data) as store:
        import_file(store, "grid", write_shp(grid_frame(), tmp_path / "g" / "g.shp"))
        for name, (role, area) in ACCOUNTS.items():
            areas.add_bound_user(store, name, role, PASSWORD, area)
        frame = points_frame(
            SITES, 案件编号=[f"P{k:02d}" for k in range(36)], 当前状态=["已登记", "已拆除"] * 18
        )
        import_file(store, "demolition", write_shp(frame, tmp_path / "s" / "s.shp"))
    return make_app(data)


def session(app, name):
    s = Session(app, None)
    assert login(s.client, name, PASSWORD).status_code == 302
    s.token = csrf_from(s.client.get("/account").text)
    return s


def square(w, s, e, n):
    """A GeoJSON polygon in lon/lat of the box (metres from X0, Y0; north up)."""
    ring = [TO_LONLAT(X0 + x, Y0 + y) for x, y in [(w, s), (e, s), (e, n), (w, n), (w, s)]]
    return {"type": "Polygon", "coordinates": [[list(p) for p in ring]]}


def test_the_same_body_creates_what_it_previewed(app):
    boss = session(app, "boss")
    body = {
        "title": "拆违",
        "area": COMM_A,
        "days": 3,
        "layer": "demolition",
        "shape": square(0, -160, 160, 0),
        "status": ["已登记"],
    }
    preview = boss.request("POST", "/api/tasks/preview", json=body)
    assert preview.status_code == 200, preview.json
    answer = preview.json
    assert answer["count"] == 6 and answer["more"] == 0  # 3 x 3 sites, those 已登记 (even k)
    assert {i["status"] for i in answer["items"]} == {"已登记"}
    assert boss.request("GET", "/api/tasks").json["tasks"] == []  # nothing written
    created = boss.request("POST", "/api/tasks", json=body)
    assert created.status_code == 201
    assert sorted(i["feature"] for i in created.json["items"]) == sorted(i["id"] for i in answer["ids"])
    # title and deadline are not needed to preview
    lean = {k: v for k, v in body.items() if k not in ("title", "days")}
    assert boss.request("POST", "/api/tasks/preview", json=lean).json["count"] == 6
    # now handed over and not verified: the preview says so, and a second task is refused alike
    again = boss.request("POST", "/api/tasks/preview", json=lean).json
    assert assert_held(again["held"], created.json["number"]) == 6
    refused = boss.request("POST", "/api/tasks", json=body)
    assert refused.status_code == 409 and refused.json["error"] == "already_handed_over"
    assert refused.json["details"]["features"] == again["held"]
    english = boss.request("POST", "/api/tasks/preview?lang=en", json=lean).json["held"][0]
    assert english["name_en"].startswith("Illegal construction") and english["name_zh"].startswith("违法建设")
    assert boss.request("GET", "/api/tasks").json["tasks"][0]["number"] == created.json["number"]
    assert len(boss.request("GET", "/api/tasks").json["tasks"]) == 1


def assert_held(held, number):
    assert held and all(h["task"] == number and h["layer"] == "demolition" for h in held)
    return len(held)


def test_roles_and_areas_as_for_creation(app):
    body = {"area": COMM_A, "layer": "demolition", "shape": square(-500, -800, 800, 500)}
    assert session(app, "look").request("POST", "/api/tasks/preview", json=body).status_code == 403
    refused = session(app, "comm_b").request("POST", "/api/tasks/preview", json=body)
    assert refused.status_code == 403 and refused.json["error"] == "outside_area"
    street = session(app, "street")
    answer = street.request("POST", "/api/tasks/preview", json=body).json
    assert answer["count"] == 24  # the shape reaches community B: only A's sites are taken
    assert all(i["unit"].startswith(COMM_A) for i in answer["items"])
    assert street.request("POST", "/api/tasks/preview", json={**body, "area": "999"}).status_code == 400


def test_a_shape_drawn_on_a_gcj02_base_map(app):
    boss = session(app, "boss")
    wgs = square(40, -190, 190, -40)
    lon, lat = wgs84_to_gcj02(*zip(*wgs["coordinates"][0], strict=True))
    gcj = {"type": "Polygon", "coordinates": [[[float(x), float(y)] for x, y in zip(lon, lat, strict=True)]]}
    body = {"area": STREET, "layer": "demolition"}
    a = boss.request("POST", "/api/tasks/preview", json={**body, "shape": wgs}).json
    b = boss.request("POST", "/api/tasks/preview", json={**body, "shape": gcj, "crs": "gcj02"}).json
    assert a["count"] == 9 and a["ids"] == b["ids"]


def circle(n):
    import math

    ring = [
        [118.4 + 0.001 * math.cos(2 * math.pi * k / n), 31.3 + 0.001 * math.sin(2 * math.pi * k / n)]
        for k in range(n)
    ]
    return [*ring, ring[0]]


@pytest.mark.parametrize("url", ["/api/tasks/preview", "/api/tasks"])
def test_hostile_bodies_are_bad_requests(app, url):
    boss = session(app, "boss")
    base = {"title": "t", "area": STREET, "days": 3, "layer": "demolition"}
    too_many = boss.request(
        "POST", url, json={**base, "shape": {"type": "Polygon", "coordinates": [circle(MAX_VERTICES + 5)]}}
    )
    assert too_many.status_code == 400 and too_many.json["error"] == "too_many_vertices"
    assert str(MAX_VERTICES) in too_many.json["message"]
    en = boss.request(
        "POST",
        url + "?lang=en",
        json={**base, "shape": {"type": "Polygon", "coordinates": [circle(MAX_VERTICES + 5)]}},
    )
    assert "too many vertices" in en.json["message"]
    prefix = json.dumps(base)[:-1]
    raw = [
        '"shape": {"type": "Polygon", "coordinates": [[[1e400, 0], [1, 0], [1, 1], [1e400, 0]]]}',
        '"shape": {"type": "Polygon", "coordinates": [[[NaN, 0], [1, 0], [1, 1], [NaN, 0]]]}',
        '"shape": {"type": "Polygon", "coordinates": [[[-1e400, 0], [1, 0], [1, 1], [-1e400, 0]]]}',
        '"shape": {"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]}',
        '"shape": {"type": "GeometryCollection", "geometries": []}',
        '"shape": {"type": "Polygon", "coordinates": ' + "[" * 5000 + "]" * 5000 + "}",
        '"shape": {"type": "Polygon", "coordinates": [[[118.4, 31.3]]]}',
        '"shape": "x"',
        '"shape": {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 0]]]}, "crs": 4326',
    ]
    for tail in raw:
        resp = boss.request("POST", url, data=prefix + ", " + tail + "}", content_type="application/json")
        assert resp.status_code == 400, (tail[:80], resp.status_code)
        assert resp.json["error"] in ("bad_shape", "shape_out_of_range", "bad_json", "bad_crs"), tail[:80]
