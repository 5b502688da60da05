"""The features nearest a position (geo/figures/nearby.py, GET /api/features/near): the same
features and distances as measuring every stored geometry in the store's CRS, polygons measured
to their outline, statuses and an account's area kept to, GCJ-02 in and out."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pyproj
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from geo.edits.ids import current_rows, ids_of_rows
from geo.errors import InputError
from geo.figures import areas
from geo.figures.nearby import MAX_LIMIT, MAX_RADIUS_M, features_near
from geo.imports.importer import import_file
from geo.reading.gcj02 import wgs84_to_gcj02
from geo.registry import get_layer
from tests.helpers.builders import COMM_B, EPSG_GK, X0, Y0, grid_frame, write_shp
from tests.helpers.postgis import open_test_store
from tests.helpers.web import Session, csrf_from, login

pytestmark = pytest.mark.backends

GK_TO_LONLAT = pyproj.Transformer.from_crs(EPSG_GK, 4326, always_xy=True)
STATUSES = ["已登记", "已下发通知", "已拆除"]
PASSWORD = "near-pass-1"


def lonlat(x: float, y: float) -> tuple[float, float]:
    lon, lat = GK_TO_LONLAT.transform(x, y)
    return float(lon), float(lat)


def sites() -> gpd.GeoDataFrame:
    """60 points scattered over and around the 300 m grid, and two 40 m squares."""
    rng = np.random.default_rng(7)
    xs = X0 - 200 + rng.random(60) * 700
    ys = Y0 + 200 - rng.random(60) * 700
    geoms = [*shapely.points(np.column_stack([xs, ys])).tolist()]
    geoms += [
        shapely.box(X0 + 20, Y0 - 280, X0 + 60, Y0 - 240),
        shapely.box(X0 + 220, Y0 - 80, X0 + 260, Y0 - 40),
    ]
    n = len(geoms)
    return gpd.GeoDataFrame(
        {
            "案件编号": [f"N{i:03d}" for i in range(n)],
            "违建地址": [f"测试路{i}号" for i in range(n)],
            "当前状态": [STATUSES[i % 3] for i in range(n)],
        },
        geometry=geoms,
        crs=EPSG_GK,
    )


@pytest.fixture
def near_data(tmp_path: Path, store_url: str | None) -> Path:
    data = tmp_path / "store"
    with open_test_store(data) as store:
        import_file(store, "grid", write_shp(grid_frame(), tmp_path / "g" / "g.shp"))
        path = tmp_path / "s" / "sites.gpkg"
        path.parent.mkdir(parents=True)
        sites().to_file(path, driver="GPKG")
        import_file(store, "demolition", path)
        areas.add_bound_user(store, "b_surveyor", "surveyor", PASSWORD, COMM_B)
    return data


def brute_force(
    store, x: float, y: float, radius: float, statuses=None, units=None
) -> list[tuple[float, int]]:
    """(distance, id) of every stored feature within ``radius`` of ``x, y``, measured one by one."""
    spec = get_layer("demolition")
    fids, geoms = store.read_geometry(spec)
    rows = store.read_rows(spec, np.sort(fids)).set_index("fid")
    out = []
    for fid, geom in zip(fids.tolist(), geoms, strict=True):
        d = shapely.distance(geom, shapely.Point(x, y))
        if d > radius:
            continue
        if statuses and rows.loc[fid, "status"] not in statuses:
            continue
        if units is not None and rows.loc[fid, "gw_unit"] not in units:
            continue
        out.append((float(d), int(fid)))
    ids = dict(
        zip(*(ids_of_rows(store, spec, [f for _, f in out])[c].tolist() for c in ("fid", "id")), strict=True)
    )
    return sorted((d, ids[fid]) for d, fid in out)


def test_nearest_is_what_measuring_every_feature_gives(near_data: Path) -> None:
    with open_test_store(near_data) as store:

        @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
        @given(
            dx=st.floats(-400, 700),
            dy=st.floats(-700, 400),
            radius=st.floats(1, 800),
            limit=st.integers(1, 80),
            status=st.sampled_from([None, ("已拆除",), ("已登记", "已下发通知")]),
        )
        def check(dx: float, dy: float, radius: float, limit: int, status: tuple[str, ...] | None) -> None:
            x, y = X0 + dx, Y0 + dy
            lon, lat = lonlat(x, y)
            got = features_near(store, lon, lat, radius, ["demolition"], status, limit)
            want = brute_force(store, x, y, radius, status)
            # a feature a hair's breadth from the circle may fall either way of it
            on_edge = {fid for d, fid in want if abs(d - radius) < 1e-3}
            assert got["total"] in range(len(want) - len(on_edge), len(want) + len(on_edge) + 1)
            shown = [(f["distance"], f["id"]) for f in got["features"]]
            assert len(shown) == min(limit, got["total"])
            kept = [w for w in want if w[1] not in on_edge][: len(shown)]
            for (d, fid), (wd, wfid) in zip([s for s in shown if s[1] not in on_edge], kept, strict=False):
                assert abs(d - wd) <= 0.051
                # equal distances (two features inside one polygon...) keep the order of their fids
                assert fid == wfid or abs(d - wd) <= 0.051
            assert [s[0] for s in shown] == sorted(s[0] for s in shown)
            for f in got["features"]:
                assert f["layer"] == "demolition" and f["label"][0].startswith("N")
                assert status is None or f["status"] in status

        check()


def test_a_polygon_is_measured_to_its_outline(near_data: Path) -> None:
    with open_test_store(near_data) as store:
        inside = features_near(store, *lonlat(X0 + 40, Y0 - 260), 1, ["demolition"])
        assert [f["label"][0] for f in inside["features"]] == ["N060"]
        assert inside["features"][0]["distance"] == 0
        beside = features_near(store, *lonlat(X0 + 40, Y0 - 300), 25, ["demolition"])
        square = [f for f in beside["features"] if f["label"][0] == "N060"]
        assert square and abs(square[0]["distance"] - 20) <= 0.05


def test_the_area_and_gcj02(near_data: Path) -> None:
    with open_test_store(near_data) as store:
        units = areas.area_units(store, [COMM_B])
        x, y = X0 + 150, Y0 - 150
        lon, lat = lonlat(x, y)
        got = features_near(store, lon, lat, 600, None, None, MAX_LIMIT, units=units)
        want = brute_force(store, x, y, 600, units=units)
        assert got["total"] == len(want) > 0
        assert sorted(f["id"] for f in got["features"]) == sorted(i for _, i in want)
        everything = features_near(store, lon, lat, 600, None, None, MAX_LIMIT)
        assert everything["total"] > got["total"]
        glon, glat = (float(v[0]) for v in wgs84_to_gcj02(np.array([lon]), np.array([lat])))
        shifted = features_near(store, glon, glat, 600, None, None, MAX_LIMIT, gcj02=True)
        assert [f["id"] for f in shifted["features"]] == [f["id"] for f in everything["features"]]
        first, again = everything["features"][0], shifted["features"][0]
        assert abs(first["distance"] - again["distance"]) < 0.2
        expect = wgs84_to_gcj02(np.array([first["lon"]]), np.array([first["lat"]]))
        assert (
            abs(again["lon"] - float(expect[0][0])) < 1e-6 and abs(again["lat"] - float(expect[1][0])) < 1e-6
        )


@pytest.mark.parametrize(
    "args",
    [
        (200.0, 31.3, 100, 10),
        (118.4, float("nan"), 100, 10),
        (118.4, 31.3, 0, 10),
        (118.4, 31.3, MAX_RADIUS_M + 1, 10),
        (118.4, 31.3, 100, 0),
        (118.4, 31.3, 100, MAX_LIMIT + 1),
    ],
)
def test_out_of_range_is_refused(near_data: Path, args) -> None:
    lon, lat, radius, limit = args
    with open_test_store(near_data) as store, pytest.raises(InputError):
        features_near(store, lon, lat, radius, None, None, limit)


def test_the_api(near_data: Path, make_app) -> None:
    app = make_app(near_data)
    admin = Session(app, None)
    with open_test_store(near_data) as store:
        areas.add_bound_user(store, "boss", "admin", PASSWORD)
    assert login(admin.client, "boss", PASSWORD).status_code == 302
    lon, lat = lonlat(X0 + 150, Y0 - 150)
    url = f"/api/features/near?lon={lon}&lat={lat}&radius=600&limit=200"
    every = admin.client.get(url).json
    assert every["total"] > 10 and len(every["features"]) == every["total"]
    one = every["features"][0]
    assert set(one) == {"id", "version", "layer", "status", "completed", "label", "distance", "lon", "lat"}
    bound = Session(app, None)
    assert login(bound.client, "b_surveyor", PASSWORD).status_code == 302
    bound.token = csrf_from(bound.client.get("/account").text)
    mine = bound.client.get(url).json
    assert 0 < mine["total"] < every["total"]
    with open_test_store(near_data) as store:
        units = areas.area_units(store, [COMM_B])
        rows = current_rows(store, get_layer("demolition"), [f["id"] for f in mine["features"]])
        assert set(rows["gw_unit"]) <= units
    only = admin.client.get(url + "&layer=违法建设&status=已拆除").json
    assert only["total"] and {f["status"] for f in only["features"]} == {"已拆除"}
    for bad in (
        "lon=x&lat=31",
        "lat=31.3",
        f"lon={lon}&lat={lat}&radius=9000",
        f"lon={lon}&lat={lat}&layer=grid",
    ):
        resp = admin.client.get("/api/features/near?" + bad)
        assert resp.status_code == 400 and "error" in resp.json, bad


def test_an_edited_feature_is_listed_once_with_its_id_and_version(near_data: Path) -> None:
    from geo.edits.edit import edit_feature

    with open_test_store(near_data) as store:
        lon, lat = lonlat(X0 + 40, Y0 - 260)
        before = features_near(store, lon, lat, 1, ["demolition"])["features"][0]
        assert before["version"] == 1 and before["status"] == STATUSES[60 % 3]
        edit_feature(store, "demolition", before["id"], 1, {"status": "已拆除"}, user="b_surveyor")
        after = features_near(store, lon, lat, 1, ["demolition"])
        assert after["total"] == 1
        assert after["features"][0] | {"status": before["status"], "version": 1, "completed": False} == before
        assert after["features"][0]["version"] == 2 and after["features"][0]["status"] == "已拆除"
        assert after["features"][0]["completed"] is True
