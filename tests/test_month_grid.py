"""The map's month slider on the grid version in force each month: a store whose grid was revised
from 2022-07-01 (unit 003 removed, 010 added, 001 and 002 reshaped) draws the first version's
units for the months before and the second's for the months after, in the API and in a real
browser (Debian's chromium through Playwright)."""

from __future__ import annotations

import re

import geopandas as gpd
import pandas as pd
import pytest
import shapely

from geo.imports.importer import import_file
from geo.store.backends import open_store
from tests.helpers.builders import COMM_A, EPSG_GK, X0, Y0, grid_frame, points_frame, write_shp
from tests.helpers.needs import chromium
from tests.helpers.web import serving, wait_for

pytestmark = pytest.mark.slow

REVISED_FROM = "2022-07-01"
GONE, ADDED, RESHAPED = f"{COMM_A}003", f"{COMM_A}010", f"{COMM_A}001"


def revised_grid() -> gpd.GeoDataFrame:
    """The builders' grid revised: 001 and 002 reshaped (their shared edge 60 m east), 003
    removed, a new unit 010 east of the grid."""
    g = grid_frame()
    geoms = list(g.geometry)
    codes = list(g["网格编码"])
    geoms[codes.index(RESHAPED)] = shapely.box(X0, Y0 - 100, X0 + 160, Y0)
    geoms[codes.index(f"{COMM_A}002")] = shapely.box(X0 + 160, Y0 - 100, X0 + 200, Y0)
    g = g.set_geometry(geoms)
    g = g[g["网格编码"] != GONE]
    extra = g.iloc[[0]].copy()
    extra["网格编码"] = ADDED
    extra["网格名称"] = "网格010"
    extra = extra.set_geometry([shapely.box(X0 + 300, Y0 - 100, X0 + 400, Y0)])
    return gpd.GeoDataFrame(pd.concat([g, extra], ignore_index=True), crs=EPSG_GK)


@pytest.fixture(scope="module")
def two_grids(tmp_path_factory):
    """A store with the grid in force from 2022-01-01, its revision from :data:`REVISED_FROM`,
    and sites surveyed through 2022 (one in 003, one in 010's place)."""
    tmp = tmp_path_factory.mktemp("two-grids")
    data = tmp / "store"
    sites = points_frame(
        [(X0 + 50, Y0 - 50), (X0 + 250, Y0 - 50), (X0 + 150, Y0 - 150), (X0 + 350, Y0 - 50)],
        案件编号=["S1", "S2", "S3", "S4"],
        当前状态=["已拆除", "已拆除", "已登记", "已拆除"],
        发现时间=["2022-01-05", "2022-01-20", "2022-03-01", "2022-08-01"],
        拆除时间=["2022-03-01", "2022-04-01", "", "2022-09-10"],
    )
    with open_store(data) as store:
        import_file(store, "grid", write_shp(grid_frame(), tmp / "g1" / "g.shp"), valid_from="2022-01-01")
        import_file(store, "demolition", write_shp(sites, tmp / "s" / "s.shp"))
        import_file(store, "grid", write_shp(revised_grid(), tmp / "g2" / "g.shp"), valid_from=REVISED_FROM)
    return data


def _ids(fc: dict) -> set[str]:
    return {f["id"] for f in fc["features"]}


def test_cells_as_of_a_day_are_those_of_the_grid_in_force(two_grids, make_app):
    client = make_app(two_grids, login=False).test_client()
    first = set(grid_frame()["网格编码"])
    second = set(revised_grid()["网格编码"])
    for day in ("2022-01-31", "2022-03-31", "2022-06-30"):
        r = client.get(f"/api/cells?level=grid&layer=demolition&as_of={day}")
        assert r.status_code == 200 and _ids(r.get_json()) == first, day
    for day in (REVISED_FROM, "2022-09-30", "2022-12-31"):
        assert _ids(client.get(f"/api/cells?level=grid&layer=demolition&as_of={day}").get_json()) == second, (
            day
        )
    assert _ids(client.get("/api/cells?level=grid&layer=demolition").get_json()) == second  # today
    # the reshaped unit is drawn in its shape of the day: 100 m wide before, 160 m after
    widths = {}
    for day in ("2022-06-30", "2022-07-31"):
        fc = client.get(f"/api/cells?level=grid&layer=demolition&as_of={day}").get_json()
        (cell,) = [f for f in fc["features"] if f["id"] == RESHAPED]
        lons = [p[0] for ring in cell["geometry"]["coordinates"] for p in ring]
        widths[day] = max(lons) - min(lons)
    assert widths["2022-07-31"] == pytest.approx(widths["2022-06-30"] * 1.6, rel=0.02)
    # the figures go with the outlines: the site in 003 counts there before the revision
    before = client.get("/api/cells?level=grid&layer=demolition&as_of=2022-06-30").get_json()
    (gone,) = [f for f in before["features"] if f["id"] == GONE]
    assert gone["properties"]["demolition_completed"] == 1


@pytest.mark.needs("chromium", "node_modules", "translations")
def test_month_slider_draws_each_month_on_its_grid(two_grids):
    from playwright.sync_api import sync_playwright

    from server import create_app

    app = create_app(
        {
            "GRIDWATCH_DATA": str(two_grids),
            "TESTING": True,
            "GRIDWATCH_PUBLIC_MAP": True,
            "GRIDWATCH_TILES": "none",
        }
    )
    with serving(app) as port, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 1366, "height": 768})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.route(re.compile(r"^https?://(?!127\.0\.0\.1)"), lambda route: route.abort())
            page.goto(f"http://127.0.0.1:{port}/?tiles=none&layer=demolition&level=grid")
            wait_for(
                page,
                "window.gridwatchMap && window.gridwatchMap.lastCells && window.gridwatchMap.summary",
                20000,
            )
            # the whole of both versions in view
            page.evaluate("() => window.gridwatchMap.map.setZoom(window.gridwatchMap.map.getZoom() - 1)")

            def drawn_at(month: str, day: str) -> tuple[set[str], set[str]]:
                """Move the slider to ``month`` as a person would; the units the API sent and
                those drawn."""
                with page.expect_response(
                    lambda r: "/api/cells?" in r.url and "level=grid" in r.url and f"as_of={day}" in r.url
                ) as resp:
                    page.evaluate(
                        """(month) => {
                            const range = document.querySelector('.gw-month');
                            const [y0, m0] = window.gridwatchMap.summary.first_day.slice(0, 7).split('-').map(Number);
                            const [y, m] = month.split('-').map(Number);
                            range.value = String((y - y0) * 12 + (m - m0));
                            range.dispatchEvent(new Event('input'));
                        }""",
                        month,
                    )
                wait_for(page, f"window.gridwatchMap.lastCells.asOf === '{day}'", 20000)
                assert page.inner_text(".gw-month-text") == month
                # the same question asked again (the store does not change): the browser may have
                # let go of the body of a response the page has moved on from
                again = page.request.get(resp.value.url)
                try:
                    assert again.ok
                    sent = _ids(again.json())
                finally:
                    again.dispose()
                drawn = set(
                    page.evaluate("() => window.gridwatchMap.cells.getLayers().map((l) => l.feature.id)")
                )
                return sent, drawn

            sent, drawn = drawn_at("2022-03", "2022-03-31")
            assert sent == drawn and GONE in drawn and ADDED not in drawn
            assert drawn == set(grid_frame()["网格编码"])
            sent, drawn = drawn_at("2022-09", "2022-09-30")
            assert sent == drawn and GONE not in drawn and ADDED in drawn
            assert drawn == set(revised_grid()["网格编码"])
            sent, drawn = drawn_at("2022-06", "2022-06-30")  # and back
            assert drawn == set(grid_frame()["网格编码"])
            assert errors == []
        finally:
            browser.close()
