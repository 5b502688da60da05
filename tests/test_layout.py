"""Every page at every office screen size and on a phone, in Chinese and in English, in a real
browser (Debian's chromium driven by Playwright): every control can be reached and clicked
(``document.elementFromPoint`` at its centre is the control), opening the menu, the map's filters
or its unit drawer first where a narrow screen folds them away; the page never scrolls sideways;
the map keeps a usable size.  And on paper: the print stylesheets hide the controls, /stats
repeats its table header on every printed page and its charts never overlap, the map page
prints its title, map and legend."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.helpers.pages import PAGES, SIZES, browser, demo_server, open_context, settle
from tests.helpers.web import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.needs("chromium", "node_modules", "translations")]

# The controls a person uses: links, buttons, fields.  Each is tagged with a number once so that
# the states of a page (menu open, filters open, drawer open) can be told apart.
_TAG = """() => {
    const sel = 'a[href], button, select, input:not([type=hidden]), textarea, summary';
    const all = [...document.querySelectorAll(sel)];
    all.forEach((el, i) => { el.dataset.gwProbe = String(i); });
    // what must be reachable in some state: not hidden on purpose (the attribute ``hidden``, a
    // closed <details>) and not a button that only opens or closes a part of the page
    const folded = (el) => el.closest('[hidden]') || (el.closest('details:not([open])') && el.tagName !== 'SUMMARY');
    const toggles = '#gw-menu-toggle, #gw-filter-toggle, #gw-drawer-toggle, #gw-drawer-close, .leaflet-control-layers-toggle';
    return all.filter((el) => !folded(el) && !el.matches(toggles) && !el.closest('.leaflet-popup'))
        .map((el) => el.dataset.gwProbe);
}"""

# Every control visible now, inside ``scope`` (a selector, or the whole page): scrolled into
# view, the element at the centre of its first box is it or inside it.  Returns what was
# reached and what was not (with the element found in its place).
_REACH = """(scope) => {
    const root = scope ? document.querySelector(scope) : document;
    const reached = [], blocked = [];
    const name = (el) => el ? (el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') +
        (el.className && typeof el.className === 'string' ? '.' + el.className.trim().split(/\\s+/).join('.') : '') +
        ' "' + (el.textContent || el.value || el.name || '').trim().slice(0, 30) + '"') : 'nothing';
    for (const el of root.querySelectorAll('[data-gw-probe]')) {
        if (!el.checkVisibility({ checkOpacity: true, checkVisibilityCSS: true })) continue;
        if (!el.getClientRects().length) continue;
        el.scrollIntoView({ block: 'center', inline: 'center' });
        const box = el.getClientRects()[0];
        if (box.width < 1 || box.height < 1) continue;
        const x = box.left + box.width / 2, y = box.top + box.height / 2;
        const inView = x >= 0 && y >= 0 && x <= innerWidth && y <= innerHeight;
        const hit = inView ? document.elementFromPoint(x, y) : null;
        const label = el.closest('label');
        if (hit && (hit === el || el.contains(hit) || (label && label.contains(hit) && label.contains(el)))) {
            reached.push(el.dataset.gwProbe);
        } else {
            blocked.push(name(el) + ' covered by ' + name(hit) + (inView ? '' : ' (off screen)'));
        }
    }
    window.scrollTo(0, 0);
    return { reached, blocked };
}"""

_OVERFLOW = "() => [document.documentElement.scrollWidth, window.innerWidth]"

_MAP_BOX = """() => {
    const r = document.getElementById('mapwrap').getBoundingClientRect();
    return [r.width, r.height];
}"""


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    with demo_server(tmp_path_factory.mktemp("layout") / "store") as base:
        yield base


@pytest.fixture(scope="module")
def chromium_browser(site):
    with browser() as b:
        yield b


@pytest.fixture(scope="module")
def contexts(site, chromium_browser):
    """One browser context per (language, signed in), made on first use."""
    made: dict[tuple[str, bool], object] = {}

    def get(lang: str, signed_in: bool):
        if (lang, signed_in) not in made:
            made[lang, signed_in] = open_context(chromium_browser, site, lang, signed_in=signed_in)
        return made[lang, signed_in]

    yield get
    for ctx in made.values():
        ctx.close()


def _is_visible(page, selector: str) -> bool:
    return page.evaluate(
        "(s) => { const el = document.querySelector(s); return Boolean(el && el.checkVisibility()); }",
        selector,
    )


def _open(page, toggle: str, holder: str, cls: str) -> None:
    page.click(toggle)
    wait_for(page, f"document.querySelector('{holder}').classList.contains('{cls}')", timeout=3000)
    _settled(page)


def _settled(page) -> None:
    """Wait until no transition runs (the drawer has slid in or out)."""
    wait_for(page, "document.getAnimations().every((a) => a.playState !== 'running')", timeout=5000)


@pytest.mark.parametrize("lang", ["zh", "en"])
@pytest.mark.parametrize("target", PAGES, ids=lambda p: p.name)
def test_every_control_is_reachable_at_every_size(site, contexts, target, lang):
    page = contexts(lang, target.signed_in).new_page()
    try:
        response = page.goto(site + target.path)
        assert response is not None
        if "text/html" not in response.headers.get("content-type", ""):
            pytest.skip(f"{target.path} answers {response.headers.get('content-type')}, not a page")
        settle(page, target.name)
        expected = set(page.evaluate(_TAG))
        assert expected, "no controls found"
        problems: list[str] = []
        for width, height in SIZES:
            at = f"{width}×{height}"
            page.set_viewport_size({"width": width, "height": height})
            page.wait_for_timeout(100)
            _settled(page)
            reached: set[str] = set()

            def probe(
                scope: str | None = None, state: str = "", *, at: str = at, reached: set[str] = reached
            ) -> None:
                found = page.evaluate(_REACH, scope)
                reached.update(found["reached"])
                problems.extend(f"{at}{state}: {b}" for b in found["blocked"])
                scroll, inner = page.evaluate(_OVERFLOW)
                if scroll > inner:
                    problems.append(f"{at}{state}: the page is {scroll} px wide in a {inner} px window")

            probe()
            if target.name == "map":
                w, h = page.evaluate(_MAP_BOX)
                if w < 300 or h < 300:
                    problems.append(f"{at}: the map is {w:.0f}×{h:.0f} px")
            if _is_visible(page, "#gw-menu-toggle"):
                _open(page, "#gw-menu-toggle", ".gw-header", "gw-open")
                probe("#gw-menu", " (menu open)")
                page.click("#gw-menu-toggle")
                assert not _is_visible(page, "#gw-menu"), f"{at}: the menu does not close"
            if _is_visible(page, "#gw-filter-toggle"):
                _open(page, "#gw-filter-toggle", "#gw-toolbar", "gw-filters-open")
                probe("#gw-toolbar", " (filters open)")
                w, h = page.evaluate(_MAP_BOX)
                if w < 300 or h < 150:
                    problems.append(f"{at} (filters open): the map is {w:.0f}×{h:.0f} px")
                page.click("#gw-filter-toggle")
            if _is_visible(page, "#gw-drawer-toggle"):
                _open(page, "#gw-drawer-toggle", "#gw-side", "gw-open")
                probe("#gw-side", " (drawer open)")
                if not _is_visible(page, "#gw-drawer-close"):
                    problems.append(f"{at}: the drawer has no close button")
                else:
                    page.click("#gw-drawer-close")
                    wait_for(
                        page,
                        "!document.getElementById('gw-side').classList.contains('gw-open')",
                        timeout=3000,
                    )
                    _settled(page)
            elif target.name == "map" and not _is_visible(page, "#gw-panel"):
                problems.append(f"{at}: neither the unit panel nor a button to open it is shown")
            missing = expected - reached
            if missing:
                names = page.evaluate(
                    """(ids) => ids.map((i) => { const el = document.querySelector(`[data-gw-probe="${i}"]`);
                        return el.tagName.toLowerCase() + '.' + el.className + ' "' + (el.textContent || el.name || '').trim().slice(0, 30) + '"'; })""",
                    sorted(missing),
                )
                problems.extend(f"{at}: never shown: {n}" for n in names)
        assert not problems, "\n".join(problems)
    finally:
        page.close()


@pytest.mark.parametrize("width", [1366, 768, 390])
def test_a_unit_clicked_on_the_map_opens_the_drawer_on_a_narrow_screen(site, contexts, width):
    page = contexts("zh", True).new_page()
    try:
        page.set_viewport_size({"width": width, "height": 844})
        page.goto(site + "/")
        settle(page, "map")
        assert not page.evaluate("document.getElementById('gw-side').classList.contains('gw-open')")
        x, y = page.evaluate(
            """() => {
                const m = window.gridwatch.maps.main, wrap = m.getContainer().getBoundingClientRect();
                // the unit nearest the middle of the map whose centre no marker or control covers
                const centre = m.getCenter();
                const cells = window.gridwatchMap.cells.getLayers().map((c) => c.getBounds().getCenter())
                    .sort((a, b) => a.distanceTo(centre) - b.distanceTo(centre));
                for (const c of cells) {
                    const p = m.latLngToContainerPoint(c), x = wrap.left + p.x, y = wrap.top + p.y;
                    const hit = document.elementFromPoint(x, y);
                    if (hit && hit.tagName === 'CANVAS') return [x, y];
                }
                return null;
            }"""
        )
        page.mouse.click(x, y)
        wait_for(page, "document.querySelector('#gw-panel table') !== null", timeout=10000)
        _settled(page)
        side = page.evaluate(
            """() => { const r = document.getElementById('gw-panel').getBoundingClientRect();
                return [r.left, r.top, r.width, r.height, innerWidth, innerHeight]; }"""
        )
        left, top, w, h, inner_w, inner_h = side
        # shown on screen: beside the map on a wide screen, in the drawer on a phone
        assert w > 200 and h > 150 and left >= 0 and left + w <= inner_w + 1 and top < inner_h
        opened = page.evaluate("document.getElementById('gw-side').classList.contains('gw-open')")
        assert opened == (width <= 900)
        if width <= 900:
            # nothing covers the drawer's close button
            x, y = page.evaluate(
                """() => { const r = document.getElementById('gw-drawer-close').getBoundingClientRect();
                    return [r.left + r.width / 2, r.top + r.height / 2]; }"""
            )
            assert (
                page.evaluate("([x, y]) => document.elementFromPoint(x, y).id", [x, y]) == "gw-drawer-close"
            )
            page.click("#gw-drawer-close")
            wait_for(page, "!document.getElementById('gw-side').classList.contains('gw-open')", timeout=3000)
    finally:
        page.close()


# --- paper -------------------------------------------------------------------------------------


def _pdf_pages(pdf: Path) -> list[str]:
    """The text of each page of ``pdf`` (poppler's pdftotext)."""
    text = subprocess.run(
        ["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True
    ).stdout
    return text.split("\f")[:-1] if text.endswith("\f") else text.split("\f")


@pytest.mark.needs("chromium")
def test_stats_print_repeats_the_table_header_and_keeps_charts_apart(site, contexts, tmp_path):
    page = contexts("zh", True).new_page()
    try:
        page.set_viewport_size({"width": 1366, "height": 768})
        page.goto(site + "/stats?level=grid")
        settle(page, "stats")
        rows = page.evaluate("document.querySelectorAll('#gw-table tbody tr').length")
        assert rows > 100  # enough for several printed pages
        codes = page.evaluate(
            "[...document.querySelectorAll('#gw-table tbody tr td:first-child')].map((t) => t.textContent)"
        )
        page.emulate_media(media="print")
        page.evaluate("() => window.dispatchEvent(new Event('beforeprint'))")
        page.wait_for_timeout(200)
        hidden = page.evaluate(
            """() => ['.gw-header', 'main form', 'main button'].map((s) =>
                [...document.querySelectorAll(s)].every((el) => !el.checkVisibility()))"""
        )
        assert hidden == [True, True, True]
        boxes = page.evaluate(
            """() => [...document.querySelectorAll('.charts > div')].map((d) => {
                const r = d.getBoundingClientRect(), c = d.querySelector('canvas').getBoundingClientRect();
                return { box: [r.left, r.top, r.right, r.bottom], canvas: [c.left, c.top, c.right, c.bottom] };
            })"""
        )
        assert len(boxes) >= 2
        for i, a in enumerate(boxes):
            bl, bt, br, bb = a["box"]
            cl, ct, cr, cb = a["canvas"]
            assert cr - cl > 100 and cb - ct > 100, "a chart is drawn too small to read"
            assert bl - 0.5 <= cl and ct >= bt - 0.5 and cr <= br + 0.5 and cb <= bb + 0.5, (
                "a chart spills out of its box"
            )
            for b in boxes[i + 1 :]:
                ol, ot, orr, ob = b["box"]
                assert orr <= bl + 0.5 or ol >= br - 0.5 or ob <= bt + 0.5 or ot >= bb - 0.5, (
                    "two charts overlap"
                )
        pdf = tmp_path / "stats.pdf"
        page.pdf(path=str(pdf), prefer_css_page_size=True, print_background=True)
        pages = _pdf_pages(pdf)
        assert len(pages) >= 2
        # every printed page of the table starts with its header row
        codes = set(codes)
        with_rows = [
            i
            for i, text in enumerate(pages)
            if any(line.split()[0] in codes for line in text.splitlines() if line.split())
        ]
        assert len(with_rows) >= 2
        for i in with_rows:  # the figures' table (完成率), then the patrol coverage (覆盖率)
            assert (
                "编码" in pages[i] and ("完成率" in pages[i] or "覆盖率" in pages[i]) and "上级" in pages[i]
            ), f"page {i + 1} has no header row"
        # A4 landscape: wider than tall
        info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True, check=True).stdout
        size = next(line for line in info.splitlines() if line.startswith("Page size"))
        w, h = (float(v) for v in size.split(":")[1].split("pts")[0].split(" x "))
        assert abs(w - 841.9) < 3 and abs(h - 595.3) < 3, size
    finally:
        page.emulate_media(media="screen")
        page.close()


def test_map_prints_its_title_map_and_legend_without_controls(site, contexts):
    page = contexts("zh", True).new_page()
    try:
        page.set_viewport_size({"width": 1366, "height": 768})
        page.goto(site + "/?as_of=2022-06-30")
        settle(page, "map")
        page.emulate_media(media="print")
        page.evaluate("() => window.dispatchEvent(new Event('beforeprint'))")
        page.wait_for_timeout(200)
        shown = page.evaluate(
            """() => Object.fromEntries(['.gw-header', '#gw-form', '#gw-side', '.leaflet-control-zoom',
                '.leaflet-control-layers', '#gw-print-title', '.leaflet-container .gw-legend', '#gw-totals',
                '.leaflet-control-scale', '#gw-search', '.gw-slider', '.gw-export'].map((s) => [s, Boolean(document.querySelector(s) && document.querySelector(s).checkVisibility())]))"""
        )
        assert shown == {
            ".gw-header": False,
            "#gw-form": False,
            "#gw-side": False,
            ".leaflet-control-zoom": False,
            ".leaflet-control-layers": False,
            "#gw-print-title": True,
            ".leaflet-container .gw-legend": True,
            "#gw-totals": True,
            ".leaflet-control-scale": True,
            "#gw-search": False,
            ".gw-slider": False,
            ".gw-export": False,
        }
        title = page.inner_text("#gw-print-title")
        assert title == "违法建设 · 完成率 · 全区 · 截至 2022-06-30"
        # the unit legend names the metric on paper, its rows shown even when folded on screen
        page.emulate_media(media="screen")
        page.click(".gw-scale-legend .gw-legend-title")
        page.emulate_media(media="print")
        assert page.inner_text(".gw-scale-legend").startswith("单元网格 · 完成率")
        assert page.evaluate(
            "() => [...document.querySelectorAll('.gw-scale-legend .gw-legend-row')].every((r) => r.checkVisibility())"
        )
        width, page_width = page.evaluate(
            "[document.getElementById('mapwrap').getBoundingClientRect().width, document.body.clientWidth]"
        )
        assert width >= page_width - 2
    finally:
        page.emulate_media(media="screen")
        page.close()


def test_map_print_title_names_layer_metric_area_and_date_in_english(site, contexts):
    """In English the printed title is in English: layer, metric, area and date, as chosen in
    the filters (in place, without a page load); with no date chosen, today's."""
    from geo.store import clock

    page = contexts("en", True).new_page()
    try:
        page.set_viewport_size({"width": 1366, "height": 768})
        page.goto(site + "/?within=340291001004&metric=completed&lang=en")
        settle(page, "map")
        today = clock.today("Asia/Shanghai").isoformat()
        page.emulate_media(media="print")
        page.evaluate("() => window.dispatchEvent(new Event('beforeprint'))")
        title = page.inner_text("#gw-print-title")
        assert title == f"Illegal construction · Completed · 学苑社区 · As of {today}", title
        page.emulate_media(media="screen")
        # the filters changed in place: the title follows them
        page.select_option("#gw-form [name=metric]", "area")
        page.select_option("#gw-form [name=within]", "")
        page.fill("#gw-form [name=as_of]", "2022-05-31")
        page.dispatch_event("#gw-form [name=as_of]", "change")
        page.emulate_media(media="print")
        page.evaluate("() => window.dispatchEvent(new Event('beforeprint'))")
        title = page.inner_text("#gw-print-title")
        assert title == "Illegal construction · Area (Completed, m²) · Whole district · As of 2022-05-31", (
            title
        )
        assert not re.search(r"[\u4e00-\u9fff（）]", title)
    finally:
        page.emulate_media(media="screen")
        page.close()
