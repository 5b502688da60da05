"""The search box and the feature list in a real browser (Debian's chromium through Playwright):
a unit code typed into the box is found, the map zooms to it and outlines it; arrow keys and
Enter choose a feature, drawn as a ring; survey text in the hits stays text; a row of the
feature list opens the map focused on its feature."""

from __future__ import annotations

import re

import pytest

from tests.helpers.builders import COMM_A
from tests.helpers.web import wait_for
from tests.test_browser import live_server, page  # noqa: F401 -- the fixtures of the map tests

pytestmark = [pytest.mark.slow, pytest.mark.needs("chromium", "node_modules", "translations")]

CODE = f"{COMM_A}005"

#: The map's view and what the search marked: its zoom, whether the view holds a box, the
#: number of shapes drawn in the search pane.
_VIEW = """(box) => {
    const m = window.gridwatchMap.map, b = m.getBounds();
    const inside = box ? b.contains(L.latLngBounds([box[1], box[0]], [box[3], box[2]])) : null;
    return {zoom: m.getZoom(), inside, center: [m.getCenter().lng, m.getCenter().lat],
            marks: document.querySelectorAll('.leaflet-gw-search-pane path').length};
}"""


def _ready(page, url):  # noqa: F811
    page.goto(url)
    wait_for(page, "window.gridwatchMap && window.gridwatchSearch", timeout=20000)


def test_a_unit_code_typed_into_the_box_is_found_zoomed_to_and_outlined(live_server, page):  # noqa: F811
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    _ready(page, f"{live_server}/?level=grid&layer=demolition&tiles=none")
    # from far out and elsewhere
    page.evaluate("() => { window.gridwatchMap.map.setView([31.2, 118.3], 12, {animate: false}); }")
    before = page.evaluate(_VIEW, None)
    page.fill("#gw-search", CODE)
    page.wait_for_selector("#gw-search-hits:not([hidden]) li[role=option]", timeout=10000)
    first = page.inner_text("#gw-search-hits li[aria-selected=true]")
    assert "网格005" in first and "单元网格" in first
    page.press("#gw-search", "Enter")
    wait_for(page, f"window.gridwatchSearch.chosen && window.gridwatchSearch.chosen.code === '{CODE}'")
    hit = page.evaluate("window.gridwatchSearch.chosen")
    assert hit["kind"] == "unit" and hit["outline"]["type"] == "Polygon"
    page.wait_for_timeout(600)  # the zoom animation
    after = page.evaluate(_VIEW, hit["bbox"])
    assert after["inside"] and after["zoom"] > before["zoom"]
    assert after["marks"] == 1  # the unit's outline, drawn above the units
    assert page.is_hidden("#gw-search-hits")
    # the outline is on screen where the unit is: the point the hit gives is inside the map
    x, y = page.evaluate(
        """(pt) => { const m = window.gridwatchMap.map, r = m.getContainer().getBoundingClientRect();
                     const p = m.latLngToContainerPoint([pt[1], pt[0]]); return [r.left + p.x, r.top + p.y]; }""",
        hit["point"],
    )
    box = page.evaluate(
        "() => { const r = window.gridwatchMap.map.getContainer().getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; }"
    )
    assert box[0] < x < box[2] and box[1] < y < box[3]
    assert errors == []


def test_arrow_keys_choose_a_feature_and_survey_text_stays_text(live_server, page):  # noqa: F811
    _ready(page, f"{live_server}/?level=grid&layer=demolition&tiles=none")
    page.fill("#gw-search", "b1")
    page.wait_for_selector("#gw-search-hits:not([hidden]) li[role=option]", timeout=10000)
    labels = page.locator("#gw-search-hits li[role=option]").all_inner_texts()
    # B1 exactly first, then the ids starting with it; the address (markup in the data) as text
    assert labels[0].startswith("B1 <img src=x")
    assert all(re.match(r"B1\d* ", text) for text in labels)
    page.press("#gw-search", "ArrowDown")
    second = page.inner_text("#gw-search-hits li[aria-selected=true]")
    assert second.split(" ")[0] == labels[1].split(" ")[0]
    page.press("#gw-search", "Enter")
    wait_for(page, "window.gridwatchSearch.chosen && window.gridwatchSearch.chosen.kind === 'feature'")
    chosen = page.evaluate("window.gridwatchSearch.chosen")
    assert chosen["code"] == labels[1].split(" ")[0]
    page.wait_for_timeout(600)
    view = page.evaluate(_VIEW, chosen["bbox"])
    assert view["zoom"] >= 17 and view["marks"] >= 2  # the feature and a ring round it
    assert view["center"] == pytest.approx(chosen["point"], abs=1e-4)
    assert page.evaluate("window.__pwned") is None
    # nothing found: a word, not an empty box
    page.fill("#gw-search", "没有这个地方")
    page.wait_for_selector("#gw-search-hits .gw-search-none", timeout=10000)
    assert page.inner_text("#gw-search-hits") == "没有找到"


def test_a_row_of_the_feature_list_opens_the_map_focused_on_its_feature(live_server, page):  # noqa: F811
    page.goto(f"{live_server}/features?layer=demolition&q=B7&sort=case_id")
    assert "共 1 个要素" in page.inner_text("#gw-total")
    assert page.inner_text("#gw-features tbody tr td:nth-child(2)") == "B7"
    page.click("#gw-features tbody a.gw-on-map")
    page.wait_for_url(re.compile(r"focus=feature%3Ademolition%3A\d+|focus=feature:demolition:\d+"))
    wait_for(page, "window.gridwatchSearch && window.gridwatchSearch.chosen", timeout=20000)
    chosen = page.evaluate("window.gridwatchSearch.chosen")
    feature = page.evaluate(f"() => fetch('/api/features/demolition/{chosen['fid']}').then((r) => r.json())")
    assert feature["properties"]["case_id"] == "B7"
    page.wait_for_timeout(600)
    view = page.evaluate(_VIEW, None)
    assert view["zoom"] >= 17 and view["marks"] >= 2
    assert view["center"] == pytest.approx(feature["geometry"]["coordinates"], abs=1e-4)


def test_a_focus_link_to_a_unit_outlines_it(live_server, page):  # noqa: F811
    _ready(page, f"{live_server}/?level=grid&layer=demolition&tiles=none&focus=unit:{CODE}")
    wait_for(page, f"window.gridwatchSearch.chosen && window.gridwatchSearch.chosen.code === '{CODE}'")
    page.wait_for_timeout(600)
    hit = page.evaluate("window.gridwatchSearch.chosen")
    assert page.evaluate(_VIEW, hit["bbox"])["inside"]
