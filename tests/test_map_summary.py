"""The map page's headline figures for its filters (``geo.figures.overview.map_totals`` and
``GET /api/summary``): counted by hand from five demolition sites on the test grid, the area's
extent computed from the grid file itself, and the API equal to the engine."""

from __future__ import annotations

from datetime import date

import pyproj
import pytest

from geo.figures.overview import first_day, map_summary, map_totals
from geo.imports.importer import import_file
from geo.store.backends import open_store
from tests.helpers.builders import COMM_A, COMM_B, EPSG_GK, X0, Y0, grid_frame, points_frame, write_shp

STREET = COMM_A[:9]


def _sites():
    """A1 demolished 2022-03-01 (community A), A2 registered (A), A3 demolished 2022-06-10
    (community B), A4 notice served (B), A5 registered outside the grid."""
    return points_frame(
        [
            (X0 + 50, Y0 - 50),
            (X0 + 150, Y0 - 50),
            (X0 + 50, Y0 - 250),
            (X0 + 250, Y0 - 250),
            (X0 - 500, Y0 - 50),
        ],
        案件编号=["A1", "A2", "A3", "A4", "A5"],
        当前状态=["已拆除", "已登记", "已拆除", "已下发通知", "已登记"],
        发现时间=["2022-01-05", "2022-05-20", "2022-02-01", "2022-07-01", "2022-03-10"],
        拆除时间=["2022-03-01", "", "2022-06-10", "", ""],
    )


@pytest.fixture
def data(tmp_path):
    data = tmp_path / "store"
    with open_store(data) as store:
        import_file(store, "grid", write_shp(grid_frame(), tmp_path / "g" / "g.shp"))
        import_file(store, "demolition", write_shp(_sites(), tmp_path / "s" / "s.shp"))
    return data


def _lonlat_bounds(frame):
    """[west, south, east, north] in degrees of a frame in EPSG_GK, computed apart from the engine."""
    to_lonlat = pyproj.Transformer.from_crs(EPSG_GK, 4490, always_xy=True)
    w, s, e, n = frame.total_bounds
    return to_lonlat.transform_bounds(w, s, e, n)


def test_totals_follow_area_status_and_date(data):
    with open_store(data) as store:
        assert map_totals(store, "demolition") | {"bounds": None} == {
            "layer": "demolition",
            "total": 5,
            "completed": 2,
            "unassigned": 1,
            "rate": 0.4,
            "bounds": None,
            "max_completed": 1,  # A1 and A3 lie in different cells
            "measure_column": "demolition_area_completed_m2",
            "max_measure": 1,  # no area surveyed
            "first_day": "2022-01-05",
        }
        assert map_totals(store, "demolition", level="street")["max_completed"] == 2
        a = map_totals(store, "demolition", within=COMM_A)
        assert (a["total"], a["completed"], a["unassigned"]) == (2, 1, 0)
        b = map_totals(store, "demolition", within=COMM_B, statuses=("已拆除",))
        assert (b["total"], b["completed"]) == (1, 1)
        registered = map_totals(store, "demolition", statuses=("已登记",))
        assert (registered["total"], registered["completed"], registered["unassigned"]) == (2, 0, 1)
        # as of 2022-03-31: A1, A3, A5 found; A1 demolished (A3 only in June)
        march = map_totals(store, "demolition", as_of=date(2022, 3, 31))
        assert (march["total"], march["completed"], march["unassigned"]) == (3, 1, 1)
        street = map_totals(store, "demolition", within=STREET, as_of=date(2022, 6, 30))
        assert (street["total"], street["completed"]) == (3, 2)


def test_the_area_bounds_are_its_units(data):
    grid = grid_frame()
    with open_store(data) as store:
        for code in (COMM_A, COMM_B):
            mine = grid[grid["网格编码"].str.startswith(code)]
            assert map_totals(store, "demolition", within=code)["bounds"] == pytest.approx(
                _lonlat_bounds(mine), abs=1e-6
            )
        assert map_totals(store, "demolition")["bounds"] == pytest.approx(_lonlat_bounds(grid), abs=1e-6)


def test_unknown_status_and_area_are_refused(data):
    from geo.errors import InputError

    with open_store(data) as store:
        with pytest.raises(InputError) as bad:
            map_totals(store, "demolition", statuses=("拆了",))
        assert bad.value.code == "bad_status"
        with pytest.raises(InputError) as nowhere:
            map_totals(store, "demolition", within="999")
        assert nowhere.value.code == "unknown_unit"


def test_first_day_is_the_earliest_date(data):
    with open_store(data) as store:
        assert first_day(store, "demolition") == "2022-01-05"
        assert map_summary(store, "demolition")["first_day"] == "2022-01-05"
        assert first_day(store, "parking") == ""


@pytest.mark.slow
def test_summary_api_equals_the_engine(data, make_app):
    client = make_app(data, login=False).test_client()
    queries = [
        {"layer": "demolition"},
        {"layer": "demolition", "within": COMM_A},
        {"layer": "demolition", "within": COMM_B, "status": "已拆除"},
        {"layer": "demolition", "status": "已登记,已下发通知", "as_of": "2022-06-30"},
        {"layer": "demolition", "within": STREET, "as_of": "2022-03-31", "level": "community"},
        {"layer": "demolition", "level": "street"},
    ]
    for q in queries:
        resp = client.get("/api/summary", query_string=q)
        assert resp.status_code == 200, resp.json
        statuses = tuple(q["status"].split(",")) if "status" in q else None
        as_of = date.fromisoformat(q["as_of"]) if "as_of" in q else None
        with open_store(data) as store:
            assert resp.json == map_totals(
                store, "demolition", as_of, q.get("within"), statuses, level=q.get("level")
            )
    assert client.get("/api/summary?layer=demolition&status=已登记,已下发通知").json["total"] == 3
    for bad, code in (
        ("layer=grid", "unknown_layer"),
        ("layer=demolition&status=nope", "bad_status"),
        ("layer=demolition&within=123", "unknown_unit"),
        ("layer=demolition&as_of=2022-13-45", "bad_date"),
        ("layer=demolition&level=cell", "bad_level"),
    ):
        resp = client.get("/api/summary?" + bad)
        assert resp.status_code == 400 and resp.json["error"] == code, (bad, resp.json)


@pytest.mark.slow
def test_the_base_map_switcher_offers_tianditu_only_with_a_key(data, make_app):
    import json
    import re

    def offered(lang="zh", **config):
        html = make_app(data, login=False, **config).test_client().get(f"/?tiles=none&lang={lang}").text
        block = re.search(r'id="gw-map-config">(.*?)</script>', html, re.S).group(1)
        return {b["key"]: b["name"] for b in json.loads(block)["page"]["baseMaps"]}

    assert list(offered()) == ["osm", "gaode"]
    assert offered(GRIDWATCH_TIANDITU_KEY="k123") == {
        "osm": "OpenStreetMap",
        "tianditu": "天地图",
        "gaode": "高德地图",
    }
    assert offered("en", GRIDWATCH_TIANDITU_KEY="k123")["tianditu"] == "Tianditu"


@pytest.mark.slow
def test_the_page_without_script_counts_its_filters(data, make_app):
    """The filter form is a plain GET too: the page's totals follow its area and status."""
    client = make_app(data, login=False).test_client()
    page = client.get("/", query_string={"tiles": "none", "within": COMM_A, "status": "已拆除"}).text
    assert "共 1 处，已完成 1 处，未落入网格 0 处" in page
    page = client.get("/", query_string={"tiles": "none", "as_of": "2022-03-31"}).text
    assert "共 3 处，已完成 1 处，未落入网格 1 处" in page
    bad = client.get("/", query_string={"tiles": "none", "status": "拆了"})
    assert bad.status_code == 400
