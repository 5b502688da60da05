"""A surveyor on a phone (390 × 844) files today's patrol from the menu -- "nothing found" --,
is refused a second filing until amending it, and sees the report in the coverage table of the
statistics page (Chromium)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from geo.figures import areas
from geo.imports.importer import import_file
from geo.store import clock
from geo.store.backends import open_store
from tests.helpers.builders import COMM_A, grid_frame, write_shp
from tests.helpers.needs import chromium
from tests.helpers.web import serving, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.needs("chromium", "node_modules", "translations")]

PASSWORD = "patrol-surveyor-pass-1"
PHONE = {"width": 390, "height": 844}


@pytest.fixture
def patrol_server(tmp_path: Path, make_app: Any) -> Iterator[str]:
    data = tmp_path / "store"
    with open_store(data) as store:
        import_file(store, "grid", write_shp(grid_frame(), tmp_path / "g" / "g.shp"))
        areas.add_bound_user(store, "wangfang", "surveyor", PASSWORD, COMM_A)
    app = make_app(data)
    with serving(app) as port:
        yield f"http://127.0.0.1:{port}"


def test_nothing_found_on_a_phone_shows_in_coverage(patrol_server: str) -> None:
    from playwright.sync_api import sync_playwright

    base = patrol_server
    today = clock.today().isoformat()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport=PHONE, is_mobile=True, has_touch=True)
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(f"{base}/login?next=/stats")
            page.fill("#username", "wangfang")
            page.fill("#password", PASSWORD)
            page.click("#gw-login button[type=submit]")
            page.wait_for_url(f"{base}/stats")
            # before: the unit has no report
            assert page.inner_text(f"#gw-patrol-table tr[data-code='{COMM_A}001'] .gw-last-report") == "—"
            # the menu folds on a phone: open it, then 今日巡查
            page.click("#gw-menu-toggle")
            page.click("#gw-nav-patrol")
            page.wait_for_url(f"{base}/patrol")
            assert page.input_value("#gw-patrol-units") == COMM_A
            assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
            button = page.locator("#gw-patrol-nothing")
            box = button.bounding_box()
            assert box is not None and box["height"] >= 44 and box["width"] >= 300  # thumb-sized
            page.fill("#gw-patrol-note", "<b>一切正常</b>")
            button.tap()
            wait_for(page, "document.getElementById('gw-patrol-status').className === 'ok'")
            assert "已提交：6 个网格" in page.inner_text("#gw-patrol-status")
            assert "<b>一切正常</b>" in page.inner_text("#gw-patrol-mine")  # the note as text
            # a second filing the same day is refused until it amends the first
            button.tap()
            wait_for(page, "!document.getElementById('gw-patrol-amend-box').hidden")
            page.tap("#gw-patrol-amend")
            wait_for(page, "document.getElementById('gw-patrol-status').className === 'ok'")
            assert page.locator("#gw-patrol-mine li").count() == 2
            # the report in the coverage on the statistics page
            page.click("a[href$='#gw-patrol-coverage']")
            page.wait_for_url(f"{base}/stats#gw-patrol-coverage")
            row = f"#gw-patrol-table tr[data-code='{COMM_A}001']"
            assert page.inner_text(f"{row} .gw-last-report") == today
            assert page.inner_text(f"{row} .gw-reported") == ("1" if _working(today) else "0")
            assert (
                page.locator("#gw-patrol-table tr[data-code='340291001002001']").count() == 0
            )  # another area's
            assert errors == []
        finally:
            browser.close()


def _working(day: str) -> bool:
    from datetime import date

    from geo.workdays import site_calendar

    return site_calendar().is_working_day(date.fromisoformat(day))
