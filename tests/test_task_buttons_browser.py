"""The tasks and patrol pages in Chromium against double clicks and the numbers a user cannot
see: a double click on 交办 hands over once, on 无异常 files once and says 已提交; a task is
made from case ids typed as the feature list shows them, its items named by the layer and the
case id; the fix uploads the photos chosen; /features' "交办这些要素" fills the area; on a phone
the item table's state column shows whole."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from geo.figures import areas
from geo.imports.importer import import_file
from geo.store.backends import open_store
from tests.helpers.builders import COMM_A, X0, Y0, grid_frame, points_frame, write_shp
from tests.helpers.needs import chromium
from tests.helpers.web import serving, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.needs("chromium", "node_modules", "translations")]

PASSWORD = "task-pass-1"
SITES = [(X0 + 10 + 9 * i, Y0 - 10 - 15 * (i % 2) - 100 * (i // 5)) for i in range(10)]
PHONE = {"width": 390, "height": 844}
LAPTOP = {"width": 1366, "height": 768}


def photo() -> bytes:
    """A small JPEG of the site after the fix, written with Pillow."""
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (40, 120, 200)).save(buf, "JPEG")
    return buf.getvalue()


@pytest.fixture
def site(tmp_path: Path, make_app: Any) -> Iterator[tuple[str, Path]]:
    data = tmp_path / "store"
    with open_store(data) as store:
        import_file(store, "grid", write_shp(grid_frame(), tmp_path / "g" / "g.shp"))
        frame = points_frame(SITES, 案件编号=[f"WJ2022-{i:05d}" for i in range(10)], 当前状态=["已登记"] * 10)
        import_file(store, "demolition", write_shp(frame, tmp_path / "s" / "s.shp"))
        areas.add_bound_user(store, "boss", "admin", PASSWORD)
        areas.add_bound_user(store, "comm_a", "surveyor", PASSWORD, COMM_A)
    with serving(make_app(data)) as port:
        yield f"http://127.0.0.1:{port}", data


def signed_in(browser: Any, base: str, name: str, viewport: dict[str, int]) -> Any:
    page = browser.new_context(viewport=viewport).new_page()
    page.goto(f"{base}/login")
    page.fill("#username", name)
    page.fill("#password", PASSWORD)
    page.click("#gw-login button[type=submit]")
    page.wait_for_url(f"{base}/")
    return page


def launch(p: Any) -> Any:
    return p.chromium.launch(executable_path=chromium(), args=["--no-sandbox", "--disable-gpu"])


@pytest.mark.parametrize("viewport", [PHONE, LAPTOP])
def test_a_double_click_hands_over_once_by_case_ids(
    site: tuple[str, Path], viewport: dict[str, int], tmp_path: Path
) -> None:
    from playwright.sync_api import sync_playwright

    base, data = site
    with sync_playwright() as p:
        browser = launch(p)
        try:
            errors: list[str] = []
            boss = signed_in(browser, base, "boss", viewport)
            boss.on("pageerror", lambda e: errors.append(str(e)))
            posts: list[str] = []
            boss.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)
            # from the feature list's link: the area is filled with the range's code
            boss.goto(f"{base}/tasks?layer=demolition&within={COMM_A}&status=")
            wait_for(boss, "document.querySelector('#gw-task-stats tbody tr')")
            assert boss.input_value("#gw-task-form input[name=area]") == COMM_A
            boss.fill("#gw-task-form input[name=title]", "拆违")
            boss.fill("#gw-task-form input[name=ids]", "WJ2022-00003，WJ2022-00004")
            boss.dblclick("#gw-task-form button[type=submit]")
            wait_for(boss, "document.querySelectorAll('#gw-task-items tbody tr').length === 2")
            boss.wait_for_timeout(500)
            assert len([u for u in posts if "/api/tasks?" in u]) == 1  # previews aside
            cells = boss.eval_on_selector_all(
                "#gw-task-items tbody tr",
                "rows => rows.map(r => [r.cells[2].textContent, r.cells[3].textContent])",
            )
            assert [c[0] for c in cells] == ["违法建设"] * 2
            assert [c[1].split(" · ")[0] for c in cells] == ["WJ2022-00003", "WJ2022-00004"]
            with open_store(data) as store:
                assert len(store.tasks()) == 1 and len(store.task_items()) == 2

            # the community's account reports the fix with a photo, its note cleared after
            worker = signed_in(browser, base, "comm_a", viewport)
            worker.on("pageerror", lambda e: errors.append(str(e)))
            worker.goto(f"{base}/tasks")
            wait_for(worker, "document.querySelector('#gw-task-list tr[data-task]')")
            worker.click("#gw-task-list tr[data-task]")
            wait_for(worker, "document.querySelectorAll('#gw-task-items tbody tr').length === 2")
            assert worker.is_hidden("#gw-task-verify") and worker.is_visible("#gw-task-fixed")
            shot = tmp_path / "fix.jpg"
            shot.write_bytes(photo())
            worker.locator("#gw-task-items tbody input[type=checkbox]").first.check()
            worker.set_input_files("#gw-task-photos", str(shot))
            worker.fill("#gw-task-note", "已拆除")
            worker.dblclick("#gw-task-fixed")
            wait_for(
                worker,
                "document.querySelectorAll('#gw-task-items tbody tr')[0].cells[6].textContent.startsWith('已整改')",
            )
            assert worker.input_value("#gw-task-note") == ""
            # the state column is seen whole, not cut off by the edge of the screen or of its box
            inside = worker.eval_on_selector_all(
                "#gw-task-items tbody tr",
                "rows => rows.map(r => r.cells[6].getBoundingClientRect().right <= Math.min(window.innerWidth,"
                " r.closest('.gw-scroll').getBoundingClientRect().right) + 1)",
            )
            assert all(inside), inside
            with open_store(data) as store:
                events = [e for e in store.task_events() if e.kind == "fixed"]
                assert len(events) == 1 and events[0].photos and events[0].note == "已拆除"
            assert errors == []
        finally:
            browser.close()


def test_a_double_tap_on_nothing_found_files_once(site: tuple[str, Path]) -> None:
    from playwright.sync_api import sync_playwright

    base, data = site
    with sync_playwright() as p:
        browser = launch(p)
        try:
            page = signed_in(browser, base, "comm_a", PHONE)
            page.goto(f"{base}/patrol")
            page.dblclick("#gw-patrol-nothing")
            wait_for(page, "document.getElementById('gw-patrol-status').className === 'ok'")
            page.wait_for_timeout(800)
            assert page.get_attribute("#gw-patrol-status", "class") == "ok"
            assert page.inner_text("#gw-patrol-status").startswith("已提交")
            assert page.is_hidden("#gw-patrol-amend-box")
            with open_store(data) as store:
                assert len(store.patrols()) == 1
        finally:
            browser.close()
