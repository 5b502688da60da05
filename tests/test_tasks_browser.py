"""The tasks page in Chromium, on a phone (390×844) and a laptop (1366×768): an admin hands a
community's sites over by area, the community's account marks them fixed, the admin verifies
eight and returns two; the figures follow, text stays text and the page fits the screen."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from geo.figures import areas
from geo.imports.importer import import_file
from geo.store.backends import open_store
from tests.helpers.builders import COMM_A, COMM_B, X0, Y0, grid_frame, points_frame, write_shp
from tests.helpers.needs import chromium
from tests.helpers.web import serving, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.needs("chromium", "node_modules", "translations")]

PASSWORD = "task-pass-1"
SITES = [(X0 + 10 + 9 * i, Y0 - 10 - 15 * (i % 2) - 100 * (i // 5)) for i in range(10)]
TITLE = '<img src=x onerror="window.__pwned=1">拆违'


@pytest.fixture
def site(tmp_path: Path, make_app: Any) -> Iterator[str]:
    data = tmp_path / "store"
    with open_store(data) as store:
        import_file(store, "grid", write_shp(grid_frame(), tmp_path / "g" / "g.shp"))
        frame = points_frame(SITES, 案件编号=[f"S{i}" for i in range(10)], 当前状态=["已登记"] * 10)
        import_file(store, "demolition", write_shp(frame, tmp_path / "s" / "s.shp"))
        areas.add_bound_user(store, "boss", "admin", PASSWORD)
        areas.add_bound_user(store, "comm_a", "surveyor", PASSWORD, COMM_A)
    with serving(make_app(data)) as port:
        yield f"http://127.0.0.1:{port}"


def signed_in(browser: Any, base: str, name: str, viewport: dict[str, int]) -> Any:
    page = browser.new_context(viewport=viewport).new_page()
    page.goto(f"{base}/login")
    page.fill("#username", name)
    page.fill("#password", PASSWORD)
    page.click("#gw-login button[type=submit]")
    page.wait_for_url(f"{base}/")
    return page


def tick(page: Any, rows: range) -> None:
    boxes = page.locator("#gw-task-items tbody input[type=checkbox]")
    for i in rows:
        boxes.nth(i).check()


def states(page: Any) -> list[str]:
    return page.eval_on_selector_all(
        "#gw-task-items tbody tr", "rows => rows.map(r => r.cells[6].textContent)"
    )


def fits(page: Any) -> None:
    width = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert width <= 1, f"the page is {width}px wider than the screen"


@pytest.mark.parametrize("viewport", [{"width": 390, "height": 844}, {"width": 1366, "height": 768}])
def test_hand_over_fix_and_check(site: str, viewport: dict[str, int]) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=["--no-sandbox", "--disable-gpu"])
        try:
            errors: list[str] = []
            boss = signed_in(browser, site, "boss", viewport)
            boss.on("pageerror", lambda e: errors.append(str(e)))
            boss.goto(f"{site}/tasks")
            wait_for(boss, "document.querySelector('#gw-task-stats tbody tr')")
            fits(boss)
            boss.fill("#gw-task-form input[name=title]", TITLE)
            boss.fill("#gw-task-form input[name=area]", COMM_A)
            boss.fill("#gw-task-form input[name=within]", COMM_A)
            boss.fill("#gw-task-form input[name=n]", "3")
            boss.click("#gw-task-form button[type=submit]")
            wait_for(boss, "document.querySelectorAll('#gw-task-items tbody tr').length === 10")
            assert "JB-" in boss.inner_text("#gw-task-message")
            assert TITLE in boss.inner_text("#gw-task-title")  # markup shown as text
            assert boss.evaluate("window.__pwned") is None
            assert set(states(boss)) == {"待整改"}
            fits(boss)

            worker = signed_in(browser, site, "comm_a", viewport)
            worker.goto(f"{site}/tasks")
            wait_for(worker, "document.querySelector('#gw-task-list tr[data-task]')")
            worker.click("#gw-task-list tr[data-task]")
            wait_for(worker, "document.querySelectorAll('#gw-task-items tbody tr').length === 10")
            worker.check("#gw-task-all")
            worker.fill("#gw-task-note", "已拆除")
            worker.click("#gw-task-fixed")
            wait_for(
                worker,
                "[...document.querySelectorAll('#gw-task-items tbody tr')].every(r => r.cells[6].textContent.startsWith('已整改'))",
            )
            # the community does not check its own work: it is not offered the sender's buttons
            assert worker.is_hidden("#gw-task-verify") and worker.is_hidden("#gw-task-return")
            assert worker.input_value("#gw-task-note") == ""  # the note sent is cleared

            boss.reload()
            wait_for(boss, "document.querySelector('#gw-task-list tr[data-task]')")
            boss.click("#gw-task-list tr[data-task]")
            wait_for(boss, "document.querySelectorAll('#gw-task-items tbody tr').length === 10")
            tick(boss, range(8))
            boss.click("#gw-task-verify")
            wait_for(
                boss,
                "document.querySelectorAll('#gw-task-items tbody tr')[7].cells[6].textContent === '已销号'",
            )
            tick(boss, range(8, 10))
            boss.fill("#gw-task-note", "未拆净")
            boss.click("#gw-task-return")
            wait_for(
                boss, "document.querySelectorAll('#gw-task-items tbody tr')[9].cells[7].textContent === '1'"
            )
            assert states(boss) == ["已销号"] * 8 + ["待整改"] * 2
            # the figures of the community: 10 handed over, 8 verified, 2 reworked
            boss.select_option("#gw-task-level", index=1)
            wait_for(boss, "document.querySelector('#gw-task-stats tbody tr')")
            headers = boss.eval_on_selector_all(
                "#gw-task-stats thead th, #gw-task-stats thead td", "c => c.map(x => x.textContent)"
            )
            total = boss.eval_on_selector_all(
                "#gw-task-stats tbody tr:last-child td", "c => c.map(x => x.textContent)"
            )
            figures = dict(zip(headers, total, strict=True))
            assert (figures["交办"], figures["已销号"], figures["返工"], figures["返工率"]) == (
                "10",
                "8",
                "2",
                "20.0%",
            )
            fits(boss)
            # the map's metric "tasks": community A coloured by its on-time rate after the deadline
            later = (date.today() + timedelta(days=5)).isoformat()
            boss.goto(f"{site}/?tiles=none&level=community&layer=demolition&metric=tasks&as_of={later}")
            wait_for(
                boss,
                "window.gridwatchMap && window.gridwatchMap.lastCells && window.gridwatchMap.lastCells.count > 1",
                20000,
            )
            wait_for(
                boss, "document.querySelector('.gw-scale-legend').textContent.includes('交办按期完成率')"
            )
            colours = "() => Object.fromEntries(window.gridwatchMap.cells.getLayers().map((l) => [l.feature.properties.code, l.options.fillColor]))"
            wait_for(boss, f"(({colours})())['{COMM_A}'] !== (({colours})())['{COMM_B}']")
            assert errors == []
        finally:
            browser.close()
