"""Survey text carrying markup and script, in a real headless browser (Debian's chromium driven
by Playwright): unit, community and street names from the grid file, survey attributes, field
names and file names go through every page — map tooltips, popups, the unit panel and its
feature list, the legend, statistics with their table and charts, batches, audit trail, users,
account, the upload report and its preview map — and are shown as text: nothing runs, no dialog
opens, no element or event handler is injected.

The pages' Content-Security-Policy would stop injected script on its own; it is bypassed here,
so that what is tested is that nothing is injected in the first place."""

from __future__ import annotations

from urllib.parse import quote, urlparse

import pytest

from tests.helpers.builders import X0, Y0, grid_frame, points_frame, shapefile_entries, write_shp, zip_of
from tests.helpers.hostile import (
    ADMIN_PASSWORD,
    HOSTILE_CODE,
    P_ATTR,
    P_IMG,
    P_JS,
    P_SCRIPT,
    P_SVG,
    PAYLOADS,
    hostile_csv,
    hostile_store,
)
from tests.helpers.needs import chromium
from tests.helpers.web import serving, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.needs("chromium", "node_modules", "translations")]

#: Anything a page holds that survey text could have put there: the flag the payloads set,
#: elements they would create, event-handler attributes and javascript: links.
_INJECTED = """() => {
    const handlers = [];
    document.querySelectorAll('*').forEach((el) => {
        for (const a of el.attributes) if (a.name.startsWith('on')) handlers.push(el.tagName + ' ' + a.name);
    });
    const links = [];
    document.querySelectorAll('[href], [src], [action], [formaction]').forEach((el) => {
        ['href', 'src', 'action', 'formaction'].forEach((name) => {
            const v = el.getAttribute(name);
            if (v && /^\\s*javascript:/i.test(v)) links.push(el.tagName + ' ' + name);
        });
    });
    const scripts = [...document.scripts].filter((s) => !s.src && !s.nonce && s.type !== 'application/json');
    return {
        pwned: window.__pwned === undefined ? null : String(window.__pwned),
        elements: document.querySelectorAll('img[src="x"], svg[onload]').length,
        handlers, links, scripts: scripts.length,
    };
}"""


@pytest.fixture
def live_server(tmp_path, make_app):
    data = hostile_store(tmp_path)
    app = make_app(data)
    with serving(app) as port:
        yield f"http://127.0.0.1:{port}"


class Watch:
    """What the browser reports: dialogs (dismissed), errors, and requests for ``x`` (the source
    of an injected image)."""

    def __init__(self, page):
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        self.requests: list[str] = []
        page.on("dialog", self._dialog)
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("request", lambda r: self.requests.append(r.url))

    def _dialog(self, dialog) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()


@pytest.fixture
def page(live_server):
    """A browser page signed in as the admin through the login form, its security policy bypassed."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=chromium(),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"],
        )
        context = browser.new_context(bypass_csp=True, viewport={"width": 1300, "height": 850})
        pg = context.new_page()
        pg.goto(f"{live_server}/login")
        pg.fill("#username", "admin")
        pg.fill("#password", ADMIN_PASSWORD)
        pg.click("#gw-login button[type=submit]")
        pg.wait_for_url(f"{live_server}/")
        pg.goto(f"{live_server}/account")  # off the map, whose base map this machine cannot reach
        pg.watch = Watch(pg)
        yield pg
        browser.close()


def assert_clean(page, where: str) -> None:
    found = page.evaluate(_INJECTED)
    assert found == {"pwned": None, "elements": 0, "handlers": [], "links": [], "scripts": 0}, where
    assert page.watch.dialogs == [], where
    assert not [u for u in page.watch.requests if urlparse(u).path.endswith("/x")], where


def text_of(page, selector: str) -> str:
    return page.evaluate(
        "(s) => [...document.querySelectorAll(s)].map((e) => e.textContent).join('\\n')", selector
    )


def hover_texts(page, payloads, scope: str = "main") -> None:
    """Move the mouse over the text of each payload shown in ``scope`` (an injected handler
    would fire)."""
    for p in payloads:
        target = page.locator(scope).get_by_text(p, exact=False)
        for i in range(min(target.count(), 3)):
            if target.nth(i).is_visible():
                target.nth(i).hover()


_MAP = "window.gridwatch.maps.main"

_ALL_SITES = """(() => {
    let n = 0;
    window.gridwatchMap.overlays.demolition.eachLayer((g) => g.eachLayer && g.eachLayer(() => { n += 1; }));
    return n === 9;
})()"""

# Screen positions of each unit's quarter point (clear of the feature at its centre) and of the
# features drawn, on the map's canvas.
_POSITIONS = """() => {
    const m = window.gridwatch.maps.main;
    const r = m.getContainer().getBoundingClientRect();
    const at = (ll) => { const p = m.latLngToContainerPoint(ll); return [r.left + p.x, r.top + p.y]; };
    const cells = window.gridwatchMap.cells.getLayers().map((c) => {
        const b = c.getBounds();
        return at([b.getSouth() + 0.25 * (b.getNorth() - b.getSouth()), b.getWest() + 0.25 * (b.getEast() - b.getWest())]);
    });
    const markers = [];
    window.gridwatchMap.overlays.demolition.eachLayer((g) => g.eachLayer && g.eachLayer((l) => {
        if (l.getLatLng) markers.push(at(l.getLatLng()));
    }));
    return {cells, markers};
}"""


def test_map_shows_hostile_names_as_text(live_server, page):
    page.goto(f"{live_server}/?level=grid&layer=demolition&tiles=none")
    wait_for(page, "window.gridwatchMap && window.gridwatchMap.cells.getLayers().length >= 9", timeout=20000)
    wait_for(page, "window.gridwatchMap.overlays.demolition.getLayers().length > 0", timeout=20000)
    page.wait_for_timeout(300)
    # streets and communities from the grid file in the area filter
    areas = text_of(page, "select[name=within] option")
    assert P_ATTR in areas and P_IMG in areas and P_SCRIPT in areas
    where = page.evaluate(_POSITIONS)
    view = page.evaluate(
        f"() => {{ const c = {_MAP}.getCenter(); return [[c.lat, c.lng], {_MAP}.getZoom()]; }}"
    )
    # hover every unit: its name in the tooltip, as text
    tooltips = []
    for x, y in where["cells"]:
        page.mouse.move(x, y)
        page.wait_for_selector(".leaflet-tooltip", timeout=5000)
        tooltips.append(text_of(page, ".leaflet-tooltip"))
        page.mouse.move(5, 840)
    for p in (*PAYLOADS, HOSTILE_CODE):
        assert any(p in t for t in tooltips), p
    assert_clean(page, "unit tooltips")
    # click a unit: its name heads the panel, its features are listed with their attributes
    x, y = where["cells"][0]
    page.mouse.click(x, y)
    wait_for(page, "document.querySelectorAll('#gw-panel ol li').length > 0")
    k = PAYLOADS.index(text_of(page, "#gw-panel h3"))
    panel = text_of(page, "#gw-panel ol")
    for i in range(3):  # the unit's site: address, structure, position
        assert PAYLOADS[(k + i) % len(PAYLOADS)] in panel
    hover_texts(page, PAYLOADS, "#gw-panel")
    assert_clean(page, "unit panel")
    # click a feature: its attributes in the popup
    popups = []
    for i in range(5):
        # back to the first view (a popup pans the map to fit), all sites drawn again
        page.evaluate(
            f"(v) => {{ {_MAP}.closePopup(); {_MAP}.setView(v[0], v[1], {{animate: false}}); }}", view
        )
        page.wait_for_timeout(300)
        wait_for(page, _ALL_SITES)
        x, y = page.evaluate(_POSITIONS)["markers"][i]
        page.mouse.click(x, y)
        wait_for(page, "document.querySelector('.leaflet-popup-content table') !== null")
        popups.append(text_of(page, ".leaflet-popup-content"))
    for p in PAYLOADS:
        assert any(p in t for t in popups), p
    assert_clean(page, "feature popups")
    # the parking layer too; the legend follows the layers shown
    page.get_by_role("checkbox", name="非机动车停放点").check()
    wait_for(page, "document.querySelector('.gw-legend').textContent.includes('非机动车停放点')")
    page.wait_for_timeout(300)
    assert not any(p in text_of(page, ".gw-legend") for p in PAYLOADS)
    assert_clean(page, "legend")
    assert page.watch.errors == []


def test_statistics_batches_audit_users_and_account(live_server, page):
    page.goto(f"{live_server}/stats?level=grid&layer=demolition")
    wait_for(page, "window.Chart && Chart.getChart('gw-chart-community') !== undefined")
    table = text_of(page, "#gw-table")
    for p in (*PAYLOADS, HOSTILE_CODE):
        assert p in table, p
    assert P_IMG in text_of(page, "#gw-table tbody tr td:nth-child(3)")  # communities as parents
    assert P_SCRIPT in text_of(page, "ol.lagging")
    labels = page.evaluate("() => Chart.getChart('gw-chart-community').data.labels")
    assert sorted(labels) == sorted([P_IMG, P_SCRIPT])
    assert page.evaluate("() => Chart.getChart('gw-chart-street').data.labels") == [P_ATTR]
    box = page.locator("#gw-chart-community").bounding_box()
    for dx in (0.3, 0.7):  # over the bars: the chart draws its tooltip
        page.mouse.move(box["x"] + dx * box["width"], box["y"] + 0.8 * box["height"])
        page.wait_for_timeout(100)
    page.click("#gw-table th:nth-child(2)")  # sort by name
    hover_texts(page, (P_ATTR, P_JS))
    assert_clean(page, "statistics")
    page.goto(f"{live_server}/stats?level=community&layer=demolition")
    page.wait_for_selector("#gw-table tbody tr")
    assert P_IMG in text_of(page, "#gw-table") and P_ATTR in text_of(page, "#gw-table")
    assert_clean(page, "statistics by community")

    page.goto(f"{live_server}/batches")
    assert P_IMG + ".zip" in text_of(page, "table")
    hover_texts(page, (P_IMG,))
    assert_clean(page, "batches")

    page.goto(f"{live_server}/audit")
    audit = text_of(page, "#gw-audit")
    assert P_IMG + ".zip" in audit and P_SCRIPT in audit  # a file name, a token's label
    assert_clean(page, "audit")
    page.goto(f"{live_server}/audit?user={quote(P_ATTR)}")
    assert page.input_value("input[name=user]") == P_ATTR
    hover_texts(page, ())
    page.hover("input[name=user]")
    assert_clean(page, "audit filtered by a hostile user name")

    page.goto(f"{live_server}/users")
    page.fill("#new-name", P_IMG)
    page.fill("#new-password", "long-enough-1")
    page.click("#gw-add-user button[type=submit]")
    page.wait_for_selector("p.notice")
    # refused: not a user name (the area lists may name hostile units, as text)
    names = page.evaluate("[...document.querySelectorAll('#gw-users tr')].map((r) => r.cells[0].innerText)")
    assert P_IMG not in "\n".join(names)
    assert_clean(page, "users")

    page.goto(f"{live_server}/account")
    page.fill("#tk-label", P_SVG)
    page.click("form:has(#tk-label) button[type=submit]")
    page.wait_for_selector("#gw-new-token")
    tokens = text_of(page, "table.gw-grid")
    assert P_SCRIPT in tokens and P_SVG in tokens
    hover_texts(page, (P_SVG,))
    assert_clean(page, "account")
    # the one error: the browser logs the users page answering the refused name with a 400
    assert page.watch.errors == [
        "Failed to load resource: the server responded with a status of 400 (BAD REQUEST)"
    ]


def test_upload_report_and_preview_show_hostile_text(live_server, page, tmp_path):
    sites = points_frame(
        [(X0 + 50, Y0 - 50), (X0 + 150, Y0 - 150), (X0 + 250, Y0 - 250)],
        案件编号=["A1", "A2", "A3"],
        当前状态=["已登记", P_SCRIPT, "已拆除"],
        违建面积=[P_SCRIPT, "1", "2"],
        违建地址=[P_ATTR, P_IMG, P_JS],
        违建位置=[P_SVG] * 3,
    )
    shp = write_shp(sites, tmp_path / "up" / "台账.shp")
    upload = tmp_path / f"{P_IMG}.zip"
    upload.write_bytes(zip_of(shapefile_entries(shp, P_IMG + "/")))
    page.goto(f"{live_server}/upload?tiles=none")
    page.select_option("select[name=layer]", "demolition")
    page.set_input_files("#gw-file", str(upload))
    assert text_of(page, "#gw-filename").startswith(P_IMG + ".zip")
    page.click("#gw-send")
    page.wait_for_selector("#gw-report:not([hidden])", timeout=20000)
    wait_for(page, "document.querySelector('#gw-summary').textContent.includes('gb18030')", timeout=20000)
    summary = text_of(page, "#gw-summary")
    assert f"{P_IMG}/台账.shp" in summary  # the folder inside the zip, as named
    assert "_img src=x onerror=window.__pwned=1_.zip" in summary  # the upload's name, as stored
    rejected = text_of(page, "#gw-rejected tbody")
    assert f"违建面积(m²)「{P_SCRIPT}」不是数字" in rejected
    values = text_of(page, "#gw-values")  # the value table: raw values as text, in the page's own order
    assert P_SCRIPT in values and P_SVG in values
    assert "违建位置" in text_of(page, "#gw-warnings")
    wait_for(
        page,
        "window.gridwatchUpload.features && window.gridwatchUpload.features.getLayers().length === 2",
        timeout=20000,
    )
    page.locator("#gw-preview-map").scroll_into_view_if_needed()
    x, y = page.evaluate(
        """() => {
            const state = window.gridwatchUpload, m = state.map;
            const p = m.latLngToContainerPoint(state.features.getLayers()[0].getLatLng());
            const r = m.getContainer().getBoundingClientRect();
            return [r.left + p.x, r.top + p.y];
        }"""
    )
    page.mouse.move(x, y)
    page.wait_for_selector("#gw-preview-map .leaflet-tooltip", timeout=5000)
    assert text_of(page, "#gw-preview-map .leaflet-tooltip") == f"所在网格: {HOSTILE_CODE}"  # the centre unit
    hover_texts(page, (P_SCRIPT,))
    assert_clean(page, "upload report")
    # a unit grid whose codes are not 15 digits: the warning quotes one, as text
    grid = grid_frame()
    grid.loc[0, "网格编码"] = P_IMG
    grid_zip = tmp_path / "网格.zip"
    grid_zip.write_bytes(zip_of(shapefile_entries(write_shp(grid, tmp_path / "grid" / "网格.shp"))))
    page.select_option("select[name=layer]", "grid")
    page.set_input_files("#gw-file", str(grid_zip))
    page.click("#gw-send")
    wait_for(page, "document.querySelector('#gw-summary').textContent.includes('网格.shp')", timeout=20000)
    assert f"（如 {P_IMG}）" in text_of(page, "#gw-warnings")
    assert_clean(page, "grid upload report")
    page.select_option("select[name=layer]", "demolition")
    # a table whose column names are markup: the refusal quotes them, as text
    table = tmp_path / "字段.csv"
    table.write_bytes(hostile_csv())
    page.set_input_files("#gw-file", str(table))
    page.click("#gw-send")
    page.wait_for_selector("#gw-message.error", timeout=20000)
    message = text_of(page, "#gw-message")
    for p in PAYLOADS:
        assert p in message, p
    assert_clean(page, "upload refused")
    assert len(page.watch.errors) == 1 and "400" in page.watch.errors[0]  # the refused upload
