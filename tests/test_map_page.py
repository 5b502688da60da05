"""The map page on the demo district in a real browser (Debian's chromium through Playwright):
filters change the map without a page load and the URL carries the state, an area is framed,
the status list follows the layer, the headline figures follow the filters and equal
/api/summary, the base map choice is kept, the month slider plays, and the map explains itself
(legend, layers control, the selected unit, names, target and progress, 导出地图)."""

from __future__ import annotations

import io
import re
from datetime import date, timedelta
from urllib.parse import parse_qs, urlparse

import pytest

from geo.cli import main as cli_main
from tests.helpers.needs import chromium
from tests.helpers.web import serving, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.needs("chromium", "node_modules", "translations")]

COMMUNITY = "340291001004"  # 学苑社区 of the demo


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory):
    """The demo district served with the map open to anyone (no sign-in)."""
    from server import create_app

    data = tmp_path_factory.mktemp("demo") / "store"
    assert cli_main(["--data", str(data), "demo"]) == 0
    app = create_app(
        {
            "GRIDWATCH_DATA": str(data),
            "TESTING": True,
            "GRIDWATCH_PUBLIC_MAP": True,
            "GRIDWATCH_TILES": "none",
        }
    )
    with serving(app) as port:
        yield f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium(), args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


@pytest.fixture
def page(browser, demo_server):
    """A page whose requests stay on this machine (base-map tiles are refused), and which fails
    the test on a script error."""
    context = browser.new_context(viewport={"width": 1366, "height": 768})
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.on(
        "console",
        lambda m: errors.append(m.text) if m.type == "error" and "ERR_FAILED" not in m.text else None,
    )
    pg.route(re.compile(r"^https?://(?!127\.0\.0\.1)"), lambda route: route.abort())
    yield pg
    context.close()
    assert errors == []


def _open(page, url):
    page.goto(url)
    wait_for(
        page, "window.gridwatchMap && window.gridwatchMap.lastCells && window.gridwatchMap.summary", 20000
    )


def _query(page) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlparse(page.url).query).items()}


def _cells_request(page, change, **wanted):
    """Do ``change`` and return the query of the /api/cells request it made with ``wanted``."""
    with page.expect_request(
        lambda r: (
            "/api/cells?" in r.url
            and all(parse_qs(urlparse(r.url).query).get(k) == [v] for k, v in wanted.items())
        )
    ) as req:
        change()
    return {k: v[0] for k, v in parse_qs(urlparse(req.value.url).query).items()}


def test_filters_change_the_map_without_a_page_load(demo_server, page):
    _open(page, f"{demo_server}/?tiles=none&focus=abc")
    page.evaluate("() => { window.__stay = 1; }")
    form = "#gw-form"
    _cells_request(page, lambda: page.select_option(f"{form} [name=level]", "community"), level="community")
    _cells_request(page, lambda: page.fill(f"{form} [name=as_of]", "2022-06-30"), as_of="2022-06-30")
    _cells_request(page, lambda: page.select_option(f"{form} [name=within]", COMMUNITY), within=COMMUNITY)
    with page.expect_request(lambda r: "/api/features/demolition?" in r.url and "status=" in r.url) as req:
        page.select_option(f"{form} [name=status]", "已拆除")
    assert parse_qs(urlparse(req.value.url).query)["status"] == ["已拆除"]
    _cells_request(page, lambda: page.select_option(f"{form} [name=layer]", "parking"), layer="parking")
    page.select_option(f"{form} [name=metric]", "completed")
    wait_for(page, "location.search.includes('metric=completed')")
    assert page.evaluate("() => window.__stay") == 1  # no page was loaded
    q = _query(page)
    assert {k: q[k] for k in ("layer", "level", "metric", "within", "as_of", "tiles", "focus")} == {
        "layer": "parking",
        "level": "community",
        "metric": "completed",
        "within": COMMUNITY,
        "as_of": "2022-06-30",
        "tiles": "none",
        "focus": "abc",  # a parameter of another script is kept
    }
    assert "status" not in q  # 已拆除 is no status of parking
    assert re.fullmatch(r"-?\d+\.\d+,-?\d+\.\d+,\d+", q["at"])


def test_a_link_reproduces_the_view(demo_server, page):
    url = (
        f"{demo_server}/?tiles=none&layer=demolition&level=community&metric=progress&within={COMMUNITY}"
        "&status=已登记&as_of=2022-06-30&at=31.30500,118.39000,15"
    )
    _open(page, url)
    values = page.evaluate(
        "() => Object.fromEntries(['layer','level','metric','within','status','as_of'].map("
        "(n) => [n, document.querySelector('#gw-form [name=' + n + ']').value]))"
    )
    assert values == {
        "layer": "demolition",
        "level": "community",
        "metric": "progress",
        "within": COMMUNITY,
        "status": "已登记",
        "as_of": "2022-06-30",
    }
    view = page.evaluate(
        "() => { const m = window.gridwatchMap.map, c = m.getCenter(); return [c.lat, c.lng, m.getZoom()]; }"
    )
    assert view == [pytest.approx(31.305, abs=1e-4), pytest.approx(118.39, abs=1e-4), 15]
    # the page's own link, as written back, opens the same view again
    again = page.url
    _open(page, again)
    assert page.evaluate(
        "() => { const m = window.gridwatchMap.map, c = m.getCenter(); return [c.lat, c.lng, m.getZoom()]; }"
    ) == [pytest.approx(31.305, abs=1e-4), pytest.approx(118.39, abs=1e-4), 15]


def test_choosing_an_area_frames_it(demo_server, page):
    _open(page, f"{demo_server}/?tiles=none")
    area = page.request.get(f"{demo_server}/api/summary?layer=demolition&within={COMMUNITY}").json()["bounds"]
    page.select_option("#gw-form [name=within]", COMMUNITY)
    wait_for(page, f"window.gridwatchMap.summary && window.gridwatchMap.summary.bounds[0] === {area[0]}")
    page.wait_for_timeout(200)
    w, s, e, n = page.evaluate(
        "() => { const b = window.gridwatchMap.map.getBounds();"
        " return [b.getWest(), b.getSouth(), b.getEast(), b.getNorth()]; }"
    )
    assert w <= area[0] and s <= area[1] and e >= area[2] and n >= area[3]  # the area is in view
    # ... and fills it: at one zoom level more it would not fit (a view at most ~4x its span)
    assert (e - w) <= 4.5 * (area[2] - area[0]) or (n - s) <= 4.5 * (area[3] - area[1])


def test_status_list_follows_the_layer(demo_server, page):
    def options():
        return page.evaluate(
            "() => [...document.querySelectorAll('#gw-form [name=status] option')].map((o) => o.value)"
        )

    # the lists the page is built with for each layer ...
    _open(page, f"{demo_server}/?tiles=none&layer=charging")
    charging = options()
    _open(page, f"{demo_server}/?tiles=none")
    demolition = options()
    layers = {s["name"]: s for s in page.request.get(f"{demo_server}/api/layers").json()}
    assert set(demolition) - {""} <= {s["code"] for s in layers["demolition"]["statuses"]}
    assert "已拆除" in demolition and "已拆除" not in charging and "在建" in charging
    # ... are what a change of layer gives
    page.select_option("#gw-form [name=status]", "已拆除")
    page.select_option("#gw-form [name=layer]", "charging")
    assert options() == charging
    assert page.input_value("#gw-form [name=status]") == ""
    # the metric "area" names the layer's measure
    area = "#gw-form [name=metric] option[value=area]"
    assert page.inner_text(area).startswith("端口数")
    page.select_option("#gw-form [name=layer]", "demolition")
    assert page.inner_text(area).startswith("面积")


def _totals(page) -> list[int]:
    return [int(n) for n in re.findall(r"\d+", page.inner_text("#gw-totals"))]


@pytest.mark.parametrize(
    "change",
    [
        {"within": COMMUNITY},
        {"status": "已拆除"},
        {"as_of": "2022-03-31"},
    ],
)
def test_totals_follow_area_status_and_date_and_equal_the_summary(demo_server, page, change):
    _open(page, f"{demo_server}/?tiles=none")
    before = _totals(page)
    name, value = next(iter(change.items()))
    if name == "as_of":
        page.fill("#gw-form [name=as_of]", value)
    else:
        page.select_option(f"#gw-form [name={name}]", value)
    key = {"as_of": "asOf"}.get(name, name)
    wait_for(page, f"window.gridwatchMap.state.{key} === {value!r} && window.gridwatchMap.summary")
    wait_for(page, f"!document.getElementById('gw-totals').textContent.includes('{before[0]}')")
    api = page.request.get(f"{demo_server}/api/summary", params={"layer": "demolition", **change}).json()
    assert _totals(page) == [api["total"], api["completed"], api["unassigned"]]
    assert api["total"] < before[0]


def test_base_map_choice_is_kept(demo_server, page):
    _open(page, f"{demo_server}/?tiles=none")
    names = page.evaluate(
        "() => [...document.querySelectorAll('.leaflet-control-layers-base label')].map((l) => l.textContent.trim())"
    )
    assert names[-1] == "无底图" and "OpenStreetMap" in names
    assert "天地图" not in names  # no key configured
    tiles = (
        "() => { const urls = []; window.gridwatchMap.map.eachLayer((l) => { if (l instanceof L.TileLayer)"
        " urls.push(new URL(l.getTileUrl({x: 1, y: 2, z: 3})).hostname); }); return urls; }"
    )
    assert page.evaluate(tiles) == []
    page.get_by_role("radio", name="OpenStreetMap").check()
    wait_for(page, "location.search.includes('tiles=osm')")
    assert page.evaluate(tiles) == ["tile.openstreetmap.org"]
    page.select_option("#gw-form [name=level]", "street")
    wait_for(page, "location.search.includes('level=street')")
    assert _query(page)["tiles"] == "osm"
    _open(page, page.url)
    assert page.get_by_role("radio", name="OpenStreetMap").is_checked()
    assert page.evaluate(tiles) == ["tile.openstreetmap.org"]
    page.get_by_role("radio", name="无底图").check()
    wait_for(page, "location.search.includes('tiles=none')")
    assert page.evaluate(tiles) == []


def test_month_slider_plays_through_2022(demo_server, page):
    _open(page, f"{demo_server}/?tiles=none")
    months = page.evaluate("() => document.querySelector('.gw-month').max")
    assert int(months) > 12
    first = page.evaluate("() => window.gridwatchMap.summary.first_day")
    assert first <= "2022-01-31"
    # put the slider on 2022-01 (as a person would drag it), then play
    with page.expect_request(lambda r: "/api/cells?" in r.url and "as_of=2022-01-31" in r.url):
        page.evaluate(
            """() => {
                const range = document.querySelector('.gw-month');
                const start = window.gridwatchMap.summary.first_day.slice(0, 7);
                const [y, m] = start.split('-').map(Number);
                range.value = String((2022 - y) * 12 + (1 - m));
                range.dispatchEvent(new Event('input'));
            }"""
        )
    assert page.input_value("#gw-form [name=as_of]") == "2022-01-31"
    seen: list[str] = []
    page.on(
        "request",
        lambda r: (
            seen.append(parse_qs(urlparse(r.url).query)["as_of"][0])
            if "/api/cells?" in r.url and "level=grid" in r.url
            else None
        ),
    )
    page.get_by_role("button", name="播放").click()
    wait_for(page, "window.gridwatchMap.lastCells.asOf === '2022-04-30'", 20000)
    page.get_by_role("button", name="暂停").click()
    months_seen = list(dict.fromkeys(seen))
    assert months_seen[:3] == ["2022-02-28", "2022-03-31", "2022-04-30"]
    assert page.inner_text(".gw-month-text") in ("2022-04", "2022-05")
    assert _query(page)["as_of"] in ("2022-04-30", "2022-05-31")


def _legend(page) -> str:
    return page.inner_text(".gw-scale-legend")


def test_legend_and_layers_control_name_the_metric(demo_server, page):
    _open(page, f"{demo_server}/?tiles=none")
    text = _legend(page)
    assert "单元网格 · 完成率" in text
    assert "90% – 100%" in text and "0% – 10%" in text and "无数据" in text
    assert page.get_by_role("checkbox", name="单元网格 · 完成率").is_checked()
    page.select_option("#gw-form [name=level]", "community")
    page.select_option("#gw-form [name=metric]", "completed")
    wait_for(page, "document.querySelector('.gw-scale-legend').textContent.includes('社区 · 已完成数')")
    wait_for(page, "window.gridwatchMap.summary && window.gridwatchMap.state.level === 'community'")
    top = page.request.get(f"{demo_server}/api/summary?layer=demolition&level=community").json()[
        "max_completed"
    ]
    assert f"– {top:,}" in _legend(page)  # the top class ends at the largest unit's count
    assert page.get_by_role("checkbox", name="社区 · 已完成数").is_checked()
    assert page.get_by_role("checkbox", name="单元网格 · 完成率").count() == 0


def test_legend_in_english(demo_server, page):
    _open(page, f"{demo_server}/?tiles=none&lang=en&metric=progress")
    text = _legend(page)
    assert "Unit grid · Progress" in text or "Unit grid · " in text
    assert "No data" in text


def _cell_centre(page, i):
    return page.evaluate(
        """(i) => {
            const m = window.gridwatchMap.map, cell = window.gridwatchMap.cells.getLayers()[i];
            const p = m.latLngToContainerPoint(cell.getBounds().getCenter());
            const r = m.getContainer().getBoundingClientRect();
            return [r.left + p.x, r.top + p.y];
        }""",
        i,
    )


_WEIGHTS = (
    "() => window.gridwatchMap.cells.getLayers().map((l) => [l.feature.properties.code, l.options.weight])"
)


def test_clicking_a_unit_outlines_it_with_target_and_progress(demo_server, page):
    _open(page, f"{demo_server}/?tiles=none&level=community&metric=progress")
    page.get_by_role("checkbox", name="违法建设").uncheck()  # the clusters would take the click
    # units are drawn on a canvas: the click is found by position, as a person's would be
    x, y = _cell_centre(page, 3)
    page.mouse.move(x, y)
    page.wait_for_selector(".leaflet-tooltip")
    tip = page.inner_text(".leaflet-tooltip")
    assert "目标" in tip and "目标完成度" in tip
    page.mouse.click(x, y)
    wait_for(page, "document.querySelector('#gw-panel table') !== null")
    panel = page.inner_text("#gw-panel")
    code = re.search(r"编码\s+(\d+)", panel).group(1)
    assert "目标" in panel and re.search(r"目标完成度\s+\d+\.\d%", panel)
    weights = dict(page.evaluate(_WEIGHTS))
    assert weights[code] == 4 and sorted(weights.values())[-2] < 1  # only that one is outlined
    # another unit: the outline moves; the panel closed: none
    x2, y2 = _cell_centre(page, 8)
    page.mouse.click(x2, y2)
    wait_for(page, f"!document.querySelector('#gw-panel').textContent.includes('{code}')")
    weights = dict(page.evaluate(_WEIGHTS))
    assert weights[code] < 1 and max(weights.values()) == 4
    page.get_by_role("button", name="关闭").click()
    assert max(dict(page.evaluate(_WEIGHTS)).values()) < 1


def test_community_names_are_labelled(demo_server, page):
    _open(page, f"{demo_server}/?tiles=none")
    wait_for(page, "document.querySelectorAll('.gw-label span').length > 5")
    names = page.evaluate("() => [...document.querySelectorAll('.gw-label span')].map((s) => s.textContent)")
    assert "学苑社区" in names
    page.select_option("#gw-form [name=level]", "street")
    wait_for(page, "window.gridwatchMap.lastCells.level === 'street'")
    wait_for(page, "document.querySelectorAll('.gw-label span').length > 0")
    streets = page.evaluate(
        "() => [...document.querySelectorAll('.gw-label span')].map((s) => s.textContent)"
    )
    assert streets and all(s.endswith(("街道", "镇")) or s for s in streets)
    assert "学苑社区" not in streets


def test_export_map_links_carry_the_view(demo_server, page):
    _open(page, f"{demo_server}/?tiles=none&level=community&as_of=2022-06-30&within={COMMUNITY}")
    page.get_by_role("button", name="导出地图").click()
    links = page.locator(".gw-export-menu a")
    assert links.count() == 4
    href = links.nth(3).get_attribute("href")
    q = {k: v[0] for k, v in parse_qs(urlparse(href).query).items()}
    assert urlparse(href).path == "/api/map-image"
    assert {k: q[k] for k in ("format", "paper", "layer", "level", "metric", "as_of", "within")} == {
        "format": "pdf",
        "paper": "a3",
        "layer": "demolition",
        "level": "community",
        "metric": "rate",
        "as_of": "2022-06-30",
        "within": COMMUNITY,
    }
    w, s, e, n = (float(v) for v in q["bbox"].split(","))
    view = page.evaluate(
        "() => { const b = window.gridwatchMap.map.getBounds();"
        " return [b.getWest(), b.getSouth(), b.getEast(), b.getNorth()]; }"
    )
    assert [w, s, e, n] == pytest.approx(view, abs=1e-5)


@pytest.mark.parametrize("size", [(1366, 768), (390, 844)], ids=["1366", "390"])
def test_first_view_frames_the_district_with_legend_and_figures(demo_server, browser, size):
    context = browser.new_context(viewport={"width": size[0], "height": size[1]})
    page = context.new_page()
    try:
        _open(page, f"{demo_server}/?tiles=none")
        page.wait_for_timeout(300)  # the layout settles
        w, s, e, n = page.request.get(f"{demo_server}/api/summary?layer=demolition").json()["bounds"]
        view = page.evaluate(
            "() => { const b = window.gridwatchMap.map.getBounds();"
            " return [b.getWest(), b.getSouth(), b.getEast(), b.getNorth()]; }"
        )
        assert view[0] <= w and view[1] <= s and view[2] >= e and view[3] >= n
        assert (view[2] - view[0]) < 4.5 * (e - w) or (view[3] - view[1]) < 4.5 * (n - s)
        assert page.evaluate("() => document.querySelector('.gw-scale-legend').checkVisibility()")
        rows = "() => document.querySelector('.gw-scale-legend .gw-legend-row').checkVisibility()"
        assert page.evaluate(rows) is (size[0] > 600)  # folded under its title on a phone
        page.click(".gw-scale-legend .gw-legend-title")
        assert page.evaluate(rows) is (size[0] <= 600)
        totals = _totals(page)
        assert totals[0] > 0 and totals[1] > 0
    finally:
        context.close()


def test_a_filter_that_matches_nothing_says_so(demo_server, page):
    _open(page, f"{demo_server}/?tiles=none&layer=charging&within=340291001002")
    assert page.inner_text("#gw-note") == ""
    page.select_option("#gw-form [name=status]", "在建")
    wait_for(page, "document.getElementById('gw-note').textContent !== ''")
    assert page.inner_text("#gw-note") == "没有符合条件的要素"
    assert _totals(page)[:2] == [0, 0]
    page.select_option("#gw-form [name=status]", "")
    wait_for(page, "document.getElementById('gw-note').textContent === ''")


_MARKER = """(fid) => {
    const g = window.gridwatchMap;
    let found = null;
    const walk = (l) => {
        if (l.feature && l.feature.properties && l.feature.properties.fid === fid) found = found || l;
        else if (l.eachLayer) l.eachLayer(walk);
    };
    Object.values(g.overlays).forEach(walk);
    if (!found) return null;
    const [lon, lat] = found.feature.geometry.coordinates;
    const p = g.map.latLngToContainerPoint([lat, lon]), box = g.map.getContainer().getBoundingClientRect();
    return { fill: found.options.fillColor, status: found.feature.properties.status,
             x: box.left + p.x, y: box.top + p.y };
}"""


_FRAMES = "() => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)))"


def _drawn(page, fid: int) -> tuple[str, tuple[int, int, int]]:
    """The fill the marker of feature ``fid`` was given, and the colour of the pixel at its centre
    as the browser painted it (the map draws on a canvas)."""
    from PIL import Image

    marker = page.evaluate(_MARKER, fid)
    png = page.screenshot(clip={"x": round(marker["x"]), "y": round(marker["y"]), "width": 1, "height": 1})
    r, g, b = Image.open(io.BytesIO(png)).convert("RGB").getpixel((0, 0))
    return marker["fill"], (r, g, b)


def _month_end(day: str) -> str:
    y, m = int(day[:4]), int(day[5:7])
    return (date(y + m // 12, m % 12 + 1, 1) - timedelta(days=1)).isoformat()


def test_a_point_takes_its_colour_as_of_the_chosen_day(demo_server, page):
    # a site of the demo demolished in 2022 (after its month's start), found months before
    sites = page.request.get(f"{demo_server}/api/features/demolition?bbox=-180,-90,180,90&zoom=18&detail=1")
    site = next(
        f
        for f in sites.json()["features"]
        if f["properties"]["status"] == "已拆除"
        and "2022-02-01" < (f["properties"]["done_on"] or "")[:10] < "2022-12-01"
        and (f["properties"]["found_on"] or "9")[:7] < f["properties"]["done_on"][:7]
        and f["geometry"]["type"] == "Point"
    )
    fid, done = site["properties"]["fid"], site["properties"]["done_on"][:10]
    before = _month_end((date.fromisoformat(done[:8] + "01") - timedelta(days=1)).isoformat())
    lon, lat = site["geometry"]["coordinates"]
    _open(page, f"{demo_server}/?tiles=none&as_of={before}&at={lat:.6f},{lon:.6f},18")
    grey, green = "#9e9e9e", "#2ca02c"  # 截至当日未完成, 已拆除
    seen = f"(() => {{ const m = ({_MARKER})({fid}); return m && m.fill; }})()"
    wait_for(page, f"{seen} === '{grey}'", 20000)
    page.evaluate(_FRAMES)  # the canvas is painted on the next frame
    _, (r, g, b) = _drawn(page, fid)
    assert max(r, g, b) - min(r, g, b) < 50, (r, g, b)  # grey, whatever the unit's fill under it
    assert "截至当日未完成" in page.inner_text(".gw-legend")
    # the month slider moved on to the month it was demolished: drawn in its status colour
    page.evaluate(
        """(month) => {
            const range = document.querySelector('.gw-month');
            const start = window.gridwatchMap.summary.first_day.slice(0, 7);
            const [y, m] = start.split('-').map(Number);
            const [ty, tm] = month.split('-').map(Number);
            range.value = String((ty - y) * 12 + (tm - m));
            range.dispatchEvent(new Event('input'));
        }""",
        done[:7],
    )
    wait_for(page, f"{seen} === '{green}'", 20000)
    page.evaluate(_FRAMES)
    _, (r, g, b) = _drawn(page, fid)
    assert g - r > 60 and g - b > 60, (r, g, b)
    assert page.input_value("#gw-form [name=as_of]") == _month_end(done)
