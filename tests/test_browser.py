"""The map in a real headless browser (Debian's chromium driven by Playwright): it loads, draws
units and features from the API, hovers, clicks and toggles layers, with no console errors and
no request leaving this machine."""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest

from geo.imports.importer import import_file
from geo.store import accounts
from geo.store.backends import open_store
from tests.helpers.builders import X0, Y0, grid_frame, points_frame, write_shp, zip_shp
from tests.helpers.needs import chromium
from tests.helpers.web import serving, wait_for

ADMIN_PASSWORD = "browser-admin-pass"
pytestmark = [pytest.mark.slow, pytest.mark.needs("chromium", "node_modules", "translations")]


@pytest.fixture
def live_server(tmp_path, make_app):
    data = tmp_path / "store"
    with open_store(data) as store:
        import_file(store, "grid", write_shp(grid_frame(), tmp_path / "g" / "g.shp"))
        rng = np.random.default_rng(4)
        xy = np.column_stack([X0 + rng.uniform(5, 295, 60), Y0 - rng.uniform(5, 295, 60)])
        sites = points_frame(
            [tuple(p) for p in xy],
            案件编号=[f"B{i}" for i in range(60)],
            违建地址=['<img src=x onerror="window.__pwned=1">'] * 60,
            当前状态=["已拆除" if i % 3 == 0 else "已登记" for i in range(60)],
            违建位置=[("地面", "平台", "楼顶", "")[i % 4] for i in range(60)],
        )
        import_file(store, "demolition", write_shp(sites, tmp_path / "s" / "s.shp"))
        parking = points_frame([(X0 + 20, Y0 - 20)], 编号=["P1"], 名称=["<b>停车</b>"], 状态=["已建成"])
        import_file(store, "parking", write_shp(parking, tmp_path / "p" / "p.shp"))
        accounts.add_user(store, "admin", "admin", ADMIN_PASSWORD)
    app = make_app(data)
    with serving(app) as port:
        yield f"http://127.0.0.1:{port}"


@pytest.fixture
def page(live_server):
    """A browser page signed in as the admin through the login form."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=chromium(),
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        pg = browser.new_page(viewport={"width": 1300, "height": 850})
        pg.goto(f"{live_server}/login")
        pg.fill("#username", "admin")
        pg.fill("#password", ADMIN_PASSWORD)
        pg.click("#gw-login button[type=submit]")
        pg.wait_for_url(f"{live_server}/")
        yield pg
        browser.close()


def test_map_loads_hovers_clicks_and_toggles(live_server, page):
    errors: list[str] = []
    hosts: set[str] = set()
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: hosts.add(urlparse(r.url).hostname or ""))
    page.on("response", lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    page.goto(f"{live_server}/?level=grid&layer=demolition&tiles=none")
    wait_for(page, "window.gridwatchMap && window.gridwatchMap.cells.getLayers().length >= 9", timeout=20000)
    wait_for(page, "window.gridwatchMap.overlays.demolition.getLayers().length > 0", timeout=20000)
    # the centre of the first unit on screen (units are drawn on a canvas)
    x, y = page.evaluate(
        """() => {
            const m = window.gridwatch.maps.main;
            const cell = window.gridwatchMap.cells.getLayers()[0];
            const p = m.latLngToContainerPoint(cell.getBounds().getCenter());
            const r = m.getContainer().getBoundingClientRect();
            return [r.left + p.x, r.top + p.y];
        }"""
    )
    # hover a unit: its figures in a tooltip
    page.mouse.move(x, y)
    page.wait_for_selector(".leaflet-tooltip", timeout=5000)
    assert "完成率" in page.inner_text(".leaflet-tooltip")
    # click a unit: figures and its features in the side panel, survey text shown as text
    page.mouse.click(x, y)
    wait_for(page, "document.querySelector('#gw-panel table') !== null")
    panel = page.inner_text("#gw-panel")
    assert "总数" in panel
    # toggle the parking layer on: its features are fetched for the viewport
    with page.expect_response(lambda r: "/api/features/parking" in r.url) as resp:
        page.get_by_role("checkbox", name="非机动车停放点").check()
    assert resp.value.json()["total"] == 1
    page.wait_for_timeout(300)
    assert page.evaluate("window.__pwned") is None  # no markup from survey data ran
    assert errors == []
    assert hosts <= {"127.0.0.1"}


# What the shared map module set up on a page: its namespace, its configuration (as parsed from
# the page's one JSON block) and the maps registered under their keys.
_MAP_MODULE = """() => {
    const ns = window.gridwatch, cfg = JSON.parse(document.getElementById('gw-map-config').textContent);
    return {
        module: Boolean(ns && ns.mapcore),
        sameConfig: JSON.stringify(ns.mapcore.config) === JSON.stringify(cfg),
        key: cfg.map.key,
        maps: Object.keys(ns.maps),
        isMap: ns.maps[cfg.map.key] instanceof L.Map,
        leafletMaps: document.querySelectorAll('.leaflet-container').length,
    };
}"""


def test_map_page_is_built_by_the_shared_map_module(live_server, page):
    page.goto(f"{live_server}/?level=grid&layer=demolition&tiles=none&lang=en")
    wait_for(page, "window.gridwatchMap && window.gridwatchMap.cells.getLayers().length >= 9", timeout=20000)
    built = page.evaluate(_MAP_MODULE)
    assert built == {
        "module": True,
        "sameConfig": True,
        "key": "main",
        "maps": ["main"],
        "isMap": True,
        "leafletMaps": 1,
    }
    # the page's layers are on the registered map; the levels and legend come from the config
    assert page.evaluate(
        "() => window.gridwatch.maps.main === window.gridwatchMap.map"
        " && window.gridwatch.maps.main.hasLayer(window.gridwatchMap.cells)"
    )
    assert page.evaluate("() => window.gridwatch.mapcore.config.levels.map((lv) => lv.label)") == [
        "Unit grid",
        "Community",
        "Street",
        "District",
    ]
    assert "Illegal construction" in page.inner_text(".gw-legend")
    # one scale, in metres only
    assert page.locator(".leaflet-control-scale-line").count() == 1
    assert re.fullmatch(r"\d+ k?m", page.inner_text(".leaflet-control-scale-line").strip())
    # a shaped marker answers a click with its feature's popup, read from the API
    wait_for(page, "window.gridwatchMap.overlays.demolition.getLayers().length > 0", timeout=20000)
    x, y = page.evaluate(
        """() => {
            const m = window.gridwatch.maps.main, r = m.getContainer().getBoundingClientRect();
            const squares = [];
            window.gridwatchMap.overlays.demolition.eachLayer((g) => g.eachLayer && g.eachLayer((l) => {
                if (l.feature && l.options.shape === 'square') squares.push(l);
            }));
            const p = m.latLngToContainerPoint(squares[0].getLatLng());
            return [r.left + p.x, r.top + p.y];
        }"""
    )
    page.mouse.click(x, y)
    wait_for(
        page, "(document.querySelector('.leaflet-popup-content') || {}).textContent?.includes('Case id')"
    )
    assert "Unit" in page.inner_text(".leaflet-popup-content")
    # statuses and categories in the page's language, as the legend has them (the values as
    # surveyed keep their own rows)
    shown = page.evaluate(
        """() => {
            const spec = window.gridwatch.mapcore.config.layers.find((l) => l.name === 'demolition');
            const rows = [...document.querySelectorAll('.leaflet-popup-content table.gw-props tr')]
                .map((tr) => [tr.querySelector('th').textContent, tr.querySelector('td').textContent]);
            return spec.fields.filter((f) => f.values).map((f) => ({
                value: (rows.find(([k]) => k === f.label) || [null, null])[1],
                labels: Object.values(f.values),
            }));
        }"""
    )
    assert len(shown) >= 2  # the status and at least one category
    for field in shown:
        assert field["value"] == "—" or field["value"] in field["labels"], field
    assert any(field["value"] != "—" for field in shown)
    assert not any(re.search("[\u4e00-\u9fff]", field["value"]) for field in shown), shown


# Markers drawn on the map's canvas, with their shape options and their feature's position.
_MARKERS = """() => {
    const out = [];
    window.gridwatchMap.overlays.demolition.eachLayer((group) => {
        if (!group.eachLayer) return;
        group.eachLayer((m) => {
            if (m.feature) out.push({shape: m.options.shape, dashed: !!m.options.dashArray,
                                    position: m.feature.properties.position});
        });
    });
    return out;
}"""

# For one isolated marker of each shape, drawn with a radius of 12 px: is the canvas painted
# at its centre, at the top-left corner of its bounding square and just below its top?
_PROBES = """() => {
    const map = window.gridwatch.maps.main;
    const markers = [];
    window.gridwatchMap.overlays.demolition.eachLayer((g) => g.eachLayer && g.eachLayer((m) => {
        if (m.feature) markers.push(m);
    }));
    const at = (m) => map.latLngToContainerPoint(m.getLatLng());
    const isolated = (m) => markers.every((o) => o === m || at(o).distanceTo(at(m)) > 40);
    const chosen = {};
    markers.forEach((m) => {
        if (!m.options.dashArray && !(m.options.shape in chosen) && isolated(m)) chosen[m.options.shape] = m;
    });
    Object.values(chosen).forEach((m) => m.setRadius(12));
    return new Promise((resolve) => setTimeout(() => {
        const canvas = map.getPane("overlayPane").querySelector("canvas");
        const box = canvas.getBoundingClientRect(), frame = map.getContainer().getBoundingClientRect();
        const k = canvas.width / box.width;
        const out = {};
        Object.entries(chosen).forEach(([shape, m]) => {
            const p = at(m);
            const painted = (dx, dy) => {
                const x = (frame.left + p.x + dx - box.left) * k, y = (frame.top + p.y + dy - box.top) * k;
                const [r, g, b, a] = canvas.getContext("2d").getImageData(x, y, 1, 1).data;
                return a > 100 && Math.min(r, g, b) < 230; // the marker, not its white halo
            };
            out[shape] = {centre: painted(0, 0), corner: painted(-10, -10), apex: painted(0, -16)};
        });
        resolve(out);
    }, 300));
}"""


def test_markers_shaped_by_position_with_a_legend(live_server, page):
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(f"{live_server}/?level=grid&layer=demolition&tiles=none")
    wait_for(page, "window.gridwatchMap && window.gridwatchMap.cells.getLayers().length >= 9")
    legend = page.locator(".gw-legend")
    for text in ("违法建设", "当前状态", "已登记", "已拆除", "违建位置", "地面", "平台", "楼顶", "未注明"):
        assert text in legend.inner_text()
    assert legend.locator("svg.gw-shape-square").count() == 1
    assert legend.locator("svg.gw-shape-triangle").count() == 1
    assert legend.locator("svg.gw-shape-unknown").count() == 1
    # from the whole district down to the street: the sites come one by one
    set_zoom = "(z) => { window.gridwatch.maps.main.setZoom(z); }"
    with page.expect_response(lambda r: "/api/features/demolition" in r.url and "zoom=13" in r.url):
        page.evaluate(set_zoom, 13)
    page.wait_for_timeout(300)
    page.evaluate("() => { window.__drawn = window.gridwatchMap.overlays.demolition.getLayers()[0]; }")
    with page.expect_response(lambda r: "/api/features/demolition" in r.url and "zoom=18" in r.url) as resp:
        page.evaluate(set_zoom, 18)
    data = resp.value.json()
    assert data["aggregated"] is False and data["total"] == 60
    wait_for(page, "window.gridwatchMap.overlays.demolition.getLayers()[0] !== window.__drawn")
    markers = page.evaluate(_MARKERS)
    assert len(markers) == 60
    kinds = {(m["position"], m["shape"], m["dashed"]) for m in markers}
    assert kinds == {
        ("地面", "circle", False),
        ("平台", "square", False),
        ("楼顶", "triangle", False),
        (None, "circle", True),
    }
    # the shapes are what the canvas shows (units hidden so only sites are painted)
    page.get_by_role("checkbox", name="单元网格 · 完成率").uncheck()
    assert page.evaluate(_PROBES) == {
        "circle": {"centre": True, "corner": False, "apex": False},
        "square": {"centre": True, "corner": True, "apex": False},
        "triangle": {"centre": True, "corner": False, "apex": True},
    }
    # the legend follows the layers shown
    page.get_by_role("checkbox", name="非机动车停放点").check()
    wait_for(page, "document.querySelector('.gw-legend').textContent.includes('非机动车停放点')")
    page.get_by_role("checkbox", name="违法建设").uncheck()
    assert "违建位置" not in legend.inner_text() and "非机动车停放点" in legend.inner_text()
    assert errors == []


def test_legend_in_english(live_server, page):
    page.goto(f"{live_server}/?level=grid&layer=demolition&tiles=none&lang=en")
    page.wait_for_selector(".gw-legend-row")
    text = page.inner_text(".gw-legend")
    assert all(
        w in text for w in ("Illegal construction", "Position", "Ground", "Platform", "Rooftop", "Not given")
    )


def _survey_upload(tmp_path):
    """Four sites inside the unit grid -- one with a typo in its status (己拆除), one deferred, one
    with an area that is no number -- and one 500 m east of it."""
    sites = points_frame(
        [
            (X0 + 60, Y0 - 60),
            (X0 + 160, Y0 - 160),
            (X0 + 260, Y0 - 260),
            (X0 + 800, Y0 - 150),
            (X0 + 60, Y0 - 260),
        ],
        案件编号=["N1", "N2", "N3", "N4", "N5"],
        当前状态=["已拆除", "己拆除", "乱写", "已登记", "暂缓拆除"],
        违建面积=["10", "20", "三十", "40", "50"],
        违建地址=["<b>x</b>"] * 5,
    )
    return zip_shp(write_shp(sites, tmp_path / "u" / "新台账.shp"), tmp_path / "新台账.zip", folder="子目录/")


# Features on the preview map: [inside, fill colour, visible in the map's view] each.
_PREVIEW = """() => {
    const state = window.gridwatchUpload;
    const view = state.map.getBounds();
    return state.features.getLayers().map((m) => [
        m.feature.properties.inside, m.options.fillColor, view.contains(m.getLatLng())]);
}"""


def test_upload_preview_confirm_and_figures_change(live_server, page, tmp_path):
    upload = _survey_upload(tmp_path)
    errors: list[str] = []
    hosts: set[str] = set()
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("request", lambda r: hosts.add(urlparse(r.url).hostname or ""))
    before = page.request.get(f"{live_server}/api/stats?format=json&level=district&layer=demolition").json()
    page.goto(f"{live_server}/upload?tiles=none")
    assert "Upload a survey" not in page.content()  # Chinese only
    page.select_option("select[name=layer]", "demolition")
    page.set_input_files("#gw-file", str(upload))
    page.click("#gw-send")
    page.wait_for_selector("#gw-report:not([hidden])", timeout=20000)
    wait_for(page, "document.querySelector('#gw-summary').textContent.includes('gb18030')")
    summary = page.inner_text("#gw-summary")
    assert "可导入\t4" in summary and "未落入网格\t1" in summary and "Rows read" not in summary
    assert "将新增\t4" in summary and "将更新\t0" in summary  # the commit's figures, before it
    rejected = page.inner_text("#gw-rejected")
    assert "三十" in rejected and "N3" in rejected and "不是数字" in rejected  # survey id and raw value
    # the value table: nothing but exact names is taken; the typo is suggested, the deferral not
    values = page.inner_text("#gw-values")
    assert "己拆除" in values and "暂缓拆除" in values and "乱写" not in values  # N3 was rejected
    typo = page.locator("#gw-values tr:has-text('己拆除')")
    assert typo.locator("select").input_value() == "未识别"
    assert "建议" in typo.inner_text()
    deferred = page.locator("#gw-values tr:has-text('暂缓拆除')")
    assert deferred.locator("select").input_value() == "未识别" and "建议" not in deferred.inner_text()
    # the preview map: the accepted sites over the unit grid, the one outside in its own colour
    wait_for(
        page,
        "window.gridwatchUpload.features && window.gridwatchUpload.features.getLayers().length === 4",
        timeout=20000,
    )
    wait_for(page, "window.gridwatchUpload.grid.getLayers().length === 9", timeout=20000)
    drawn = page.evaluate(_PREVIEW)
    inside_colour, outside_colour = page.evaluate(
        """() => ['gw-inside', 'gw-outside'].map((c) =>
            getComputedStyle(document.querySelector('.gw-swatch.' + c)).backgroundColor)"""
    )
    assert sorted(drawn) == sorted([[True, inside_colour, True]] * 3 + [[False, outside_colour, True]])
    assert inside_colour != outside_colour
    assert page.is_visible("#gw-preview-map .leaflet-overlay-pane canvas")
    assert "地图上显示 4 / 4 个要素" in page.inner_text("#gw-preview-note")
    # the preview map is the shared module's, made in the container its configuration names
    built = page.evaluate(_MAP_MODULE)
    assert built == {
        "module": True,
        "sameConfig": True,
        "key": "preview",
        "maps": ["preview"],
        "isMap": True,
        "leafletMaps": 1,
    }
    assert page.evaluate(
        "() => window.gridwatch.maps.preview === window.gridwatchUpload.map"
        " && window.gridwatchUpload.map.getContainer().id === 'gw-preview-map'"
    )
    # take the suggestion for the typo: the commit waits for a re-read
    typo.locator("button.linklike").click()
    assert typo.locator("select").input_value() == "已拆除"
    assert page.is_visible("#gw-dirty") and page.is_disabled("#gw-commit")
    page.click("#gw-reread")
    wait_for(page, "document.querySelector('#gw-dirty').hidden", timeout=20000)
    typo = page.locator("#gw-values tr:has-text('己拆除')")
    assert typo.locator("select").input_value() == "已拆除" and "本次指定" in typo.inner_text()
    page.click("#gw-commit")
    wait_for(page, "document.querySelector('#gw-message').textContent.includes('已导入')", timeout=20000)
    assert "记住值对应 1 个" in page.inner_text("#gw-message")  # an admin's mapping is remembered
    after = page.request.get(f"{live_server}/api/stats?format=json&level=district&layer=demolition").json()
    total = lambda stats, col="demolition_total": sum(r[col] for r in stats["rows"])  # noqa: E731
    assert total(after) == total(before) + 4  # the one outside the grid counted as UNASSIGNED
    assert total(after, "demolition_completed") == total(before, "demolition_completed") + 2
    assert total(after, "demolition_unrecognised") == total(before, "demolition_unrecognised") + 1
    page.goto(f"{live_server}/batches")
    assert "新台账.zip" in page.inner_text("table")
    # roll the new batch back from the batches page: confirm, then the figures are as before
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.accept()))
    page.click("tr:has-text('新台账.zip') button.gw-rollback")
    wait_for(page, "document.querySelector('#gw-message').textContent.includes('已回滚批次')", timeout=20000)
    assert dialogs and "确定回滚批次" in dialogs[0]
    rolled = page.request.get(f"{live_server}/api/stats?format=json&level=district&layer=demolition").json()
    # the same figures; the metadata names the later write they were computed at
    assert rolled.pop("metadata")["computed_at"]["tx"] > before.pop("metadata")["computed_at"]["tx"]
    assert rolled == before
    assert errors == []
    assert hosts <= {"127.0.0.1"}


def test_upload_page_in_english(live_server, page, tmp_path):
    upload = _survey_upload(tmp_path)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(f"{live_server}/upload?lang=en&tiles=none")
    assert page.inner_text("h1") == "Upload a survey"
    assert page.inner_text("#gw-send") == "Upload and check"
    assert "上传并检查" not in page.content()
    assert page.locator("select[name=layer] option[value=demolition]").inner_text() == "Illegal construction"
    page.click("#gw-send")  # no file chosen yet
    assert page.inner_text("#gw-message") == "Choose a file first"
    page.select_option("select[name=layer]", "demolition")
    page.set_input_files("#gw-file", str(upload))
    page.click("#gw-send")
    wait_for(page, "document.querySelector('#gw-summary').textContent.includes('gb18030')")
    summary = page.inner_text("#gw-summary")
    assert "Rows read\t5" in summary and "Outside every grid\t1" in summary and "读取行数" not in summary
    assert "Will add\t4" in summary
    rejected = page.inner_text("#gw-rejected")
    assert "Reason" in rejected and "三十" in rejected and "不是数字" not in rejected
    values = page.inner_text("#gw-mapping")
    assert "Value mapping" in values and "unrecognised" in values and "suggested:" in values
    wait_for(
        page,
        "document.querySelector('#gw-preview-note').textContent.includes('4 of 4 features shown')",
        timeout=20000,
    )
    assert page.inner_text("#gw-message") == "Checked: confirm to import"
    assert errors == []
    # a server error comes back in English too (the browser logs the refused request)
    page.click("summary")
    page.fill("input[name=crs]", "EPSG:3857")
    page.click("#gw-reread")
    page.wait_for_selector("#gw-message.error", timeout=20000)
    message = page.inner_text("#gw-message")
    assert "CRS" in message and message.isascii()
    assert page.is_hidden("#gw-preview")  # nothing left of the previous read
    assert len(errors) == 1 and "400" in errors[0]


def test_stats_page_charts_sort_and_download(live_server, page):
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(f"{live_server}/stats?level=grid&layer=demolition")
    wait_for(page, "window.Chart && Chart.getChart('gw-chart-community') !== undefined")
    first_before = page.inner_text("#gw-table tbody tr:first-child td:first-child")
    page.click("#gw-table th:nth-child(4)")  # 总数, ascending
    page.click("#gw-table th:nth-child(4)")  # descending
    totals = [int(t) for t in page.locator("#gw-table tbody tr td:nth-child(4)").all_inner_texts()]
    assert totals == sorted(totals, reverse=True) and first_before
    with page.expect_download() as download:
        page.click("text=XLSX")
    assert download.value.suggested_filename.endswith(".xlsx")
    assert errors == []


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_upload_report_of_many_rejected_rows_says_how_many_it_does_not_list(
    live_server, page, tmp_path, lang
):
    """1,200 rows with an area that is no number and one good one: the page lists 500, says how
    many more there are (the report itself lists 1,000 and counts all), and screenshots are taken."""
    rows = ["经度,纬度,案件编号,违建面积"] + [f"118.40{i % 90:02d},31.30,K{i},乱写{i}" for i in range(1200)]
    path = tmp_path / "台账.csv"
    path.write_text("\n".join([*rows, "118.4005,31.3005,OK,12"]) + "\n", encoding="utf-8")
    page.goto(f"{live_server}/upload?tiles=none" + ("&lang=en" if lang == "en" else ""))
    page.select_option("select[name=layer]", "demolition")
    page.set_input_files("#gw-file", str(path))
    page.click("#gw-send")
    page.wait_for_selector("#gw-report:not([hidden])", timeout=30000)
    wait_for(page, "document.querySelectorAll('#gw-rejected tbody tr').length > 0", timeout=30000)
    assert page.locator("#gw-rejected tbody tr").count() == 501
    last = page.inner_text("#gw-rejected tbody tr:last-child")
    assert ("… 700 more rejected rows" if lang == "en" else "… 另有 700 行被拒绝") in last
    assert "1200" in page.inner_text("#gw-summary")
    shots = Path(os.environ.get("GRIDWATCH_SHOTS", tmp_path))
    for width, height in ((1366, 768), (1920, 1080), (390, 844)):
        page.set_viewport_size({"width": width, "height": height})
        page.locator("#gw-rejected tbody tr:last-child").scroll_into_view_if_needed()
        page.screenshot(path=str(shots / f"upload-rejected-{lang}-{width}.png"), full_page=False)


def test_a_rollback_blocked_by_edits_lists_them_and_drops_them_on_request(live_server, page):
    """A feature of the survey import edited in the browser: rolling the import back is refused
    with the edit named; the admin's button rolls both back."""
    token = page.locator('meta[name="csrf-token"]').get_attribute("content")
    feature = page.request.get(f"{live_server}/api/features/demolition/2").json()
    edited = page.request.patch(
        f"{live_server}/api/features/demolition/2",
        data={"version": feature["properties"]["version"], "fields": {"status": "已拆除"}},
        headers={"X-CSRFToken": token, "Content-Type": "application/json"},
    )
    assert edited.status == 200 and edited.json()["version"] == 2
    page.goto(f"{live_server}/batches")
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.accept()))
    page.click("tr:has-text('s.shp') button.gw-rollback")
    wait_for(page, "document.querySelector('#gw-message button.gw-drop-edits') !== null", timeout=20000)
    said = page.inner_text("#gw-message")
    assert "之后被编辑过" in said and "#2" in said
    page.click("#gw-message button.gw-drop-edits")
    wait_for(page, "document.querySelector('#gw-message').textContent.includes('已回滚批次')", timeout=20000)
    assert any("1 次编辑" in d for d in dialogs)
    batches = page.request.get(f"{live_server}/api/batches?layer=demolition").json()
    assert {b["status"] for b in batches} == {"rolled_back"}
