"""Choosing a new task's features on the tasks page's map in Chromium, on a laptop (1366×768) and a
phone (390×844): an admin draws a rectangle over known sites, sees the preview count, takes one
site out with a click, hands over, and the task holds exactly the sites previewed; the page fits
the screen and no script fails."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pyproj import Transformer

from geo.figures import areas
from geo.imports.importer import import_file
from geo.registry import get_layer
from geo.store.backends import open_store
from tests.helpers.builders import COMM_A, EPSG_GK, X0, Y0, grid_frame, points_frame, write_shp
from tests.helpers.needs import chromium
from tests.helpers.web import serving, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.needs("chromium", "node_modules", "translations")]

PASSWORD = "draw-pass-1"
#: a 6 x 6 lattice of sites over the 300 m x 300 m grid (rows 0-3 in community A)
SITES = [(X0 + 25 + 50 * (k % 6), Y0 - 25 - 50 * (k // 6)) for k in range(36)]
STATUS = ["已登记", "已拆除"] * 18
#: the rectangle drawn (metres): columns 1-3 and rows 1-2 of the lattice -- six sites
BOX = (X0 + 60, Y0 - 140, X0 + 190, Y0 - 60)
INSIDE = [k for k, (x, y) in enumerate(SITES) if BOX[0] < x < BOX[2] and BOX[1] < y < BOX[3]]
TO_LONLAT = Transformer.from_crs(EPSG_GK, 4326, always_xy=True).transform


@pytest.fixture
def site(tmp_path: Path, make_app: Any) -> Iterator[tuple[str, Path]]:
    data = tmp_path / "store"
    with open_store(data) as store:
        import_file(store, "grid", write_shp(grid_frame(), tmp_path / "g" / "g.shp"))
        frame = points_frame(SITES, 案件编号=[f"D{k:02d}" for k in range(36)], 当前状态=STATUS)
        import_file(store, "demolition", write_shp(frame, tmp_path / "s" / "s.shp"))
        areas.add_bound_user(store, "boss", "admin", PASSWORD)
    with serving(make_app(data)) as port:
        yield f"http://127.0.0.1:{port}", data


def fid_of_case(data: Path) -> dict[str, int]:
    with open_store(data) as store:
        rows = store.read_attributes(get_layer("demolition"))
    return {str(c): int(f) for c, f in zip(rows["case_id"], rows["fid"], strict=True)}


def screen_point(page: Any, x: float, y: float, gcj02: bool = False) -> tuple[float, float]:
    """Where the point (x, y) in the store's metres is on the page's screen (on a map in GCJ-02,
    where a Gaode base map puts it)."""
    lon, lat = TO_LONLAT(x, y)
    if gcj02:
        from geo.reading.gcj02 import wgs84_to_gcj02

        glon, glat = wgs84_to_gcj02(lon, lat)
        lon, lat = float(glon), float(glat)
    return page.evaluate(
        """([lat, lon]) => {
             const map = window.gridwatch.maps.tasks;
             const p = map.latLngToContainerPoint([lat, lon]);
             const r = map.getContainer().getBoundingClientRect();
             return [r.left + p.x, r.top + p.y];
           }""",
        [lat, lon],
    )


#: how many features the map draws one by one (on its canvas: counted through Leaflet's public API)
DRAWN = """(() => { const map = window.gridwatch && window.gridwatch.maps.tasks; if (!map) return 0;
  let n = 0; map.eachLayer((l) => { if (l.feature && l.feature.properties && l.feature.properties.fid) n += 1; });
  return n; })()"""


def fits(page: Any) -> None:
    width = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert width <= 1, f"the page is {width}px wider than the screen"


@pytest.mark.parametrize("viewport", [{"width": 1366, "height": 768}, {"width": 390, "height": 844}])
def test_draw_a_rectangle_preview_and_hand_over(site: tuple[str, Path], viewport: dict[str, int]) -> None:
    from playwright.sync_api import sync_playwright

    base, data = site
    fids = fid_of_case(data)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_context(viewport=viewport).new_page()
            page.goto(f"{base}/login")
            page.fill("#username", "boss")
            page.fill("#password", PASSWORD)
            page.click("#gw-login button[type=submit]")
            page.wait_for_url(f"{base}/")
            # (the map page signed in to asks for its tiles: what counts is this page's)
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("requestfailed", lambda r: r.failure == "net::ERR_ABORTED" or errors.append(r.url))
            # nothing from the internet: an intranet has none
            page.on("request", lambda r: r.url.startswith((base, "data:")) or errors.append(r.url))
            page.goto(f"{base}/tasks?tiles=none")
            page.fill("#gw-task-form input[name=title]", "拆违")
            page.fill("#gw-task-form input[name=area]", COMM_A)
            page.press("#gw-task-form input[name=area]", "Tab")
            page.locator("#gw-task-map").scroll_into_view_if_needed()
            wait_for(page, DRAWN + " >= 36")
            fits(page)

            page.click("#gw-task-draw-rect")
            page.locator("#gw-task-map").scroll_into_view_if_needed()
            x0, y0 = screen_point(page, BOX[0], BOX[3])
            x1, y1 = screen_point(page, BOX[2], BOX[1])
            page.mouse.move(x0, y0)
            page.mouse.click(x0, y0)
            for k in range(1, 6):
                page.mouse.move(x0 + (x1 - x0) * k / 5, y0 + (y1 - y0) * k / 5)
            page.mouse.click(x1, y1)
            wait_for(page, "document.getElementById('gw-task-count').textContent.includes('将交办 6 个要素')")
            listed = page.eval_on_selector_all(
                "#gw-task-preview-list tbody tr", "rows => rows.map(r => Number(r.dataset.fid))"
            )
            assert sorted(listed) == sorted(fids[f"D{k:02d}"] for k in INSIDE)

            # a click takes one site out of the selection, another click outside the box adds one
            out = INSIDE[0]
            page.mouse.click(*screen_point(page, *SITES[out]))
            wait_for(page, "document.getElementById('gw-task-count').textContent.includes('将交办 5 个要素')")
            added = 0  # the site at the lattice's north-west corner, outside the box
            page.mouse.click(*screen_point(page, *SITES[added]))
            wait_for(page, "document.getElementById('gw-task-count').textContent.includes('将交办 6 个要素')")
            expected = sorted(fids[f"D{k:02d}"] for k in [*INSIDE, added] if k != out)
            listed = page.eval_on_selector_all(
                "#gw-task-preview-list tbody tr", "rows => rows.map(r => Number(r.dataset.fid))"
            )
            assert sorted(listed) == expected
            fits(page)

            page.click("#gw-task-form button[type=submit]")
            wait_for(page, "document.querySelectorAll('#gw-task-items tbody tr').length === 6")
            assert "JB-" in page.inner_text("#gw-task-message")
            with open_store(data) as store:
                (task,) = store.tasks()
                assert sorted(i.feature for i in store.task_items(task.id)) == expected
            fits(page)
            # printed, the page keeps the tasks and leaves out the form with its map
            page.emulate_media(media="print")
            assert not page.locator("#gw-task-map").is_visible()
            assert not page.locator("#gw-task-draw-rect").is_visible()
            assert page.locator("#gw-task-items").is_visible()
            assert errors == []
        finally:
            browser.close()


def test_draw_a_polygon(site: tuple[str, Path]) -> None:
    """A triangle drawn corner by corner (the last click on the first corner closes it) takes the
    sites inside it, with the status field applied too."""
    import shapely
    from playwright.sync_api import sync_playwright

    base, data = site
    corners = [(X0 + 10, Y0 - 10), (X0 + 290, Y0 - 10), (X0 + 10, Y0 - 190)]
    triangle = shapely.Polygon(corners)
    inside = [k for k, xy in enumerate(SITES) if triangle.contains(shapely.Point(xy)) and k < 24]
    fids = fid_of_case(data)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_context(viewport={"width": 1366, "height": 768}).new_page()
            page.goto(f"{base}/login")
            page.fill("#username", "boss")
            page.fill("#password", PASSWORD)
            page.click("#gw-login button[type=submit]")
            page.wait_for_url(f"{base}/")
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(f"{base}/tasks?tiles=none")
            page.fill("#gw-task-form input[name=area]", COMM_A)
            page.select_option("#gw-task-layer-status", "已登记")
            page.locator("#gw-task-map").scroll_into_view_if_needed()
            wait_for(page, DRAWN + " >= 36")
            page.click("#gw-task-draw-poly")
            page.locator("#gw-task-map").scroll_into_view_if_needed()
            for xy in [*corners, corners[0]]:
                page.mouse.click(*screen_point(page, *xy))
            taken = [k for k in inside if STATUS[k] == "已登记"]
            wait_for(
                page,
                f"document.getElementById('gw-task-count').textContent.includes('将交办 {len(taken)} 个要素')",
            )
            listed = page.eval_on_selector_all(
                "#gw-task-preview-list tbody tr", "rows => rows.map(r => Number(r.dataset.fid))"
            )
            assert sorted(listed) == sorted(fids[f"D{k:02d}"] for k in taken)
            assert errors == []
        finally:
            browser.close()


def test_a_rectangle_drawn_on_a_gaode_base_map(site: tuple[str, Path]) -> None:
    """On a GCJ-02 base map the features are drawn where Gaode puts them and the drawn shape is
    sent with crs gcj02: the rectangle around the same sites takes the same sites."""
    from playwright.sync_api import sync_playwright

    base, data = site
    fids = fid_of_case(data)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=["--no-sandbox", "--disable-gpu"])
        try:
            context = browser.new_context(viewport={"width": 1366, "height": 768})
            context.route(lambda url: not url.startswith(base), lambda route: route.abort())  # no tiles here
            page = context.new_page()
            page.goto(f"{base}/login")
            page.fill("#username", "boss")
            page.fill("#password", PASSWORD)
            page.click("#gw-login button[type=submit]")
            page.wait_for_url(f"{base}/")
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            sent: list[Any] = []
            page.on("request", lambda r: sent.append(r) if "/api/tasks/preview" in r.url else None)
            page.goto(f"{base}/tasks?tiles=gaode")
            page.fill("#gw-task-form input[name=area]", COMM_A)
            page.locator("#gw-task-map").scroll_into_view_if_needed()
            wait_for(page, DRAWN + " >= 36")
            page.click("#gw-task-draw-rect")
            page.locator("#gw-task-map").scroll_into_view_if_needed()
            x0, y0 = screen_point(page, BOX[0], BOX[3], gcj02=True)
            x1, y1 = screen_point(page, BOX[2], BOX[1], gcj02=True)
            page.mouse.click(x0, y0)
            page.mouse.move((x0 + x1) / 2, (y0 + y1) / 2)
            page.mouse.click(x1, y1)
            wait_for(page, "document.getElementById('gw-task-count').textContent.includes('将交办 6 个要素')")
            listed = page.eval_on_selector_all(
                "#gw-task-preview-list tbody tr", "rows => rows.map(r => Number(r.dataset.fid))"
            )
            assert sorted(listed) == sorted(fids[f"D{k:02d}"] for k in INSIDE)
            body = sent[-1].post_data_json
            assert body["crs"] == "gcj02" and "crs=gcj02" in sent[-1].url
            assert errors == []
        finally:
            browser.close()
