"""The standalone HTML map of a street or community: one file with Leaflet inlined, no reference to
a server or a CDN, hostile names kept as text; the CLI writes it; it opens in a browser cut off
from the network and draws the area's units and sites."""

from __future__ import annotations

import json
import re

import pytest

from geo.errors import InputError
from geo.imports.importer import import_file
from geo.output.html_map import AssetMissing, html_map
from tests.helpers.builders import COMM_A, X0, Y0, grid_frame, points_frame, write_shp
from tests.helpers.needs import chromium

HOSTILE = "<script>window.__pwned=1</script>"
COMMUNITY = "</script><img src=x onerror=window.__pwned=2>"


@pytest.fixture
def mapped(store, tmp_path):
    grid = grid_frame()
    grid.loc[grid["网格编码"].str.startswith(COMM_A), "所属社区"] = COMMUNITY
    grid.loc[0, "网格名称"] = HOSTILE
    import_file(store, "grid", write_shp(grid, tmp_path / "g" / "g.shp"))
    sites = points_frame(
        [(X0 + 50, Y0 - 50), (X0 + 150, Y0 - 50), (X0 + 250, Y0 - 150), (X0 + 50, Y0 - 250)],
        案件编号=["A1", "A2", "A3", "B1"],
        违建地址=[HOSTILE, "二号", "三号", "四号"],
        当前状态=["已拆除", "已登记", "已登记", "已拆除"],
        发现时间=["2022-01-05", "2022-05-20", "2022-07-01", "2022-01-05"],
        拆除时间=["2022-03-01", "", "", "2022-02-01"],
    )
    import_file(store, "demolition", write_shp(sites, tmp_path / "s" / "s.shp"))
    return store


def _data(page: str) -> dict:
    block = re.search(r'<script type="application/json" id="gw-data">(.*?)</script>', page, re.S)
    assert block
    return json.loads(block.group(1))


@pytest.mark.slow
def test_one_file_with_nothing_from_elsewhere(mapped):
    page = html_map(mapped, COMM_A, "demolition", as_of="2022-06-30").decode("utf-8")
    # Leaflet is in the file; nothing is fetched: no src/href/url()/@import to another place
    assert "L.map(" in page and ".leaflet-container" in page
    assert not re.search(r"<script[^>]*\ssrc\s*=", page, re.I)  # every script is in the file
    assert not re.search(r"<(?:img|iframe|object|embed)\b", page, re.I)
    assert not re.search(r"<link\b", page, re.I)
    assert not re.search(r"""url\(\s*["']?(?!data:|#)""", page)
    assert "@import" not in page
    # hostile names never appear as markup
    assert HOSTILE not in page and COMMUNITY not in page
    assert page.count("</script>") == page.count("<script")  # every script ends where it should
    assert "&lt;/script&gt;&lt;img" in page  # the community's name in the title, escaped
    data = _data(page)
    assert len(data["units"]["features"]) == 6  # community A's six unit grids
    assert {f["properties"]["code"] for f in data["units"]["features"]} == {
        f"{COMM_A}{i:03d}" for i in range(1, 7)
    }
    # sites found by the day, in the community; their statuses and fields for the popups
    ids = sorted(f["properties"]["case_id"] for f in data["points"]["features"])
    assert ids == ["A1", "A2"]
    assert {s["code"] for s in data["statuses"]} >= {"已拆除", "已登记"}
    rates = {f["properties"]["code"]: f["properties"]["rate"] for f in data["units"]["features"]}
    assert rates[f"{COMM_A}001"] == 1.0 and rates[f"{COMM_A}002"] == 0.0


def test_english_words(mapped):
    page = html_map(mapped, COMM_A, lang="en").decode("utf-8")
    assert "Illegal construction" in page and _data(page)["words"]["rate"] == "Completion rate"


def test_bad_area_layer_and_missing_leaflet(mapped, tmp_path):
    with pytest.raises(InputError) as bad:
        html_map(mapped, "999999", "demolition")
    assert bad.value.code == "unknown_unit"
    with pytest.raises(InputError):
        html_map(mapped, COMM_A, "no-such-layer")
    with pytest.raises(AssetMissing) as missing:
        html_map(mapped, COMM_A, "demolition", leaflet_dir=tmp_path / "nowhere")
    assert "npm ci" in missing.value.zh and "npm ci" in missing.value.en


def test_cli_writes_the_file(mapped, runner, tmp_path):
    data = str(tmp_path / "data")  # the store fixture's folder
    out = tmp_path / "弋江.html"
    run = runner("--data", data, "html-map", "--within", COMM_A, "--layer", "demolition", "-o", str(out))
    assert run.code == 0, run.err
    assert _data(out.read_text(encoding="utf-8"))["units"]["features"]
    bad = runner("--data", data, "html-map", "--within", "123", "-o", str(tmp_path / "x.html"))
    assert bad.code == 2 and "找不到单元" in bad.err and not (tmp_path / "x.html").exists()
    no_out = runner("--data", data, "html-map", "--within", COMM_A)
    assert no_out.code == 2


def test_download_from_the_api(mapped, make_app, tmp_path):
    mapped.close()
    client = make_app(tmp_path / "data", login=False).test_client()
    r = client.get(f"/api/html-map?within={COMM_A}&layer=demolition&as_of=2022-06-30&lang=en")
    assert r.status_code == 200 and r.mimetype == "text/html"
    assert "attachment" in r.headers["Content-Disposition"] and ".html" in r.headers["Content-Disposition"]
    assert "Completion rate" in r.text and len(_data(r.text)["points"]["features"]) == 2
    for bad in ("", "within=999", f"within={COMM_A}&layer=nope", f"within={COMM_A}&as_of=2022-13-45"):
        r = client.get(f"/api/html-map?{bad}")
        assert r.status_code == 400 and r.is_json and r.get_json()["message_en"], bad


@pytest.mark.slow
def test_stats_page_offers_the_map_of_an_area(mapped, make_app, tmp_path):
    mapped.close()
    client = make_app(tmp_path / "data", login=False).test_client()
    page = client.get("/stats?layer=demolition&as_of=2022-06-30").text
    form = re.search(r'<form method="get" action="(/api/html-map)"[^>]*>(.*?)</form>', page, re.S)
    assert form, "no map download on /stats"
    options = re.findall(r'<option value="(\d+)">', form.group(2))
    assert COMM_A in options and "340291001" in options  # communities and the street
    assert "&lt;/script&gt;&lt;img" in form.group(2) and COMMUNITY not in page  # names escaped
    assert 'name="as_of" value="2022-06-30"' in form.group(2)
    r = client.get(f"{form.group(1)}?layer=demolition&as_of=2022-06-30&within={COMM_A}")
    assert r.status_code == 200 and r.mimetype == "text/html"
    assert "单张地图 HTML" in page
    assert "Single map (HTML)" in client.get("/stats?layer=demolition&lang=en").text


@pytest.mark.slow
@pytest.mark.needs("chromium", "node_modules")
def test_opens_offline_and_draws_the_units(mapped, tmp_path):
    from playwright.sync_api import sync_playwright

    path = tmp_path / "map.html"
    path.write_bytes(html_map(mapped, COMM_A, "demolition", as_of="2022-06-30"))
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=["--no-sandbox", "--disable-gpu"])
        context = browser.new_context(viewport={"width": 1366, "height": 768})
        asked: list[str] = []

        def only_files(route):
            if route.request.url.startswith("file:"):
                route.continue_()
            else:
                asked.append(route.request.url)
                route.abort()

        context.route("**/*", only_files)
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(path.as_uri())
        page.wait_for_function("window.gwStandalone !== undefined", timeout=10000)
        # six units and two sites (a white halo and a dot each), drawn as SVG paths
        assert page.locator("path.leaflet-interactive").count() == 6 + 2
        assert page.locator(".legend").inner_text().count("%") == 5
        title = page.locator("#head h1").inner_text()
        assert COMMUNITY in title  # the hostile name as text
        marker = page.evaluate(
            """() => {
                const found = [];
                window.gwStandalone.points.eachLayer((l) => found.push(l));
                const hostile = found.find((l) => l.feature.properties.case_id === 'A1');
                hostile.openPopup();
                return document.querySelector('.leaflet-popup-content').textContent;
            }"""
        )
        assert HOSTILE in marker
        assert page.evaluate("window.__pwned") is None
        assert errors == [] and asked == []
        browser.close()


def test_a_site_completed_after_the_day_is_drawn_as_not_yet_completed(mapped):
    data = _data(html_map(mapped, COMM_A, "demolition", as_of="2022-02-15").decode("utf-8"))
    (site,) = data["points"]["features"]  # A2 was found later
    assert site["properties"]["case_id"] == "A1" and site["properties"]["status"] == "__pending__"
    assert site["properties"]["completed"] is False
    pending = [s for s in data["statuses"] if s["code"] == "__pending__"]
    assert pending == [
        {"code": "__pending__", "label": "截至当日未完成", "color": "#9e9e9e", "completed": False}
    ]
    rates = {f["properties"]["code"]: f["properties"]["completed"] for f in data["units"]["features"]}
    assert sum(v or 0 for v in rates.values()) == 0  # the units' figures say the same
    later = _data(html_map(mapped, COMM_A, "demolition", as_of="2022-06-30", lang="en").decode("utf-8"))
    assert {f["properties"]["status"] for f in later["points"]["features"]} == {"已拆除", "已登记"}
    assert "__pending__" not in {s["code"] for s in later["statuses"]}  # listed only when drawn
