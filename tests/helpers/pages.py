"""Every page of the app in a real browser: the demo district served with an admin account,
Debian's chromium driven by Playwright, a signed-in browser context per language, and a page
made ready to look at (the map's units drawn, the charts drawn)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

from tests.helpers.needs import chromium
from tests.helpers.web import serving, wait_for

ADMIN = "admin"
ADMIN_PASSWORD = "pages-admin-pass"


class Page(NamedTuple):
    """One page to try: a short name (used in file names), its address and whether it needs a sign-in."""

    name: str
    path: str
    signed_in: bool = True


#: Every page a bureau works in; an address nobody serves shows the error page.
PAGES = (
    Page("map", "/"),
    Page("stats", "/stats"),
    Page("features", "/features"),
    Page("upload", "/upload"),
    Page("batches", "/batches"),
    Page("field", "/field"),
    Page("audit", "/audit"),
    Page("users", "/users"),
    Page("account", "/account"),
    Page("patrol", "/patrol"),
    Page("tasks", "/tasks"),
    Page("tasks-drawn", "/tasks"),
    Page("login", "/login", signed_in=False),
    Page("error", "/no-such-page"),
)

#: Office screens (width, height) and a phone.
SIZES = ((1024, 768), (1280, 900), (1366, 768), (1440, 900), (1920, 1080), (390, 844))

BROWSER_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@contextmanager
def demo_server(data: Path) -> Iterator[str]:
    """The demo district loaded into ``data``, an admin account, and the real app serving it;
    yields the base address."""
    from geo.cli import main as cli_main
    from geo.store import accounts
    from geo.store.backends import open_store
    from server import create_app

    assert cli_main(["--data", str(data), "demo"]) == 0
    with open_store(data) as store:
        accounts.add_user(store, ADMIN, "admin", ADMIN_PASSWORD)
    # no base map: nothing is fetched from outside this machine
    app = create_app({"GRIDWATCH_DATA": str(data), "TESTING": True, "GRIDWATCH_TILES": "none"})
    with serving(app) as port:
        yield f"http://127.0.0.1:{port}"


@contextmanager
def browser() -> Iterator[Any]:
    """Debian's chromium, headless, driven by Playwright."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium(), args=BROWSER_ARGS)
        try:
            yield b
        finally:
            b.close()


def open_context(b: Any, base: str, lang: str, *, signed_in: bool) -> Any:
    """A browser context in ``lang`` (``zh`` or ``en``), signed in as the admin or not."""
    ctx = b.new_context(viewport={"width": 1366, "height": 768})
    # the pages need nothing from outside this machine; anything asked for elsewhere is refused
    ctx.route(lambda url: not url.startswith(base), lambda route: route.abort())
    page = ctx.new_page()
    if signed_in:
        page.goto(f"{base}/login")
        page.fill("#username", ADMIN)
        page.fill("#password", ADMIN_PASSWORD)
        page.click("#gw-login button[type=submit]")
        page.wait_for_url(f"{base}/")
    page.goto(f"{base}/login?lang={lang}" if not signed_in else f"{base}/account?lang={lang}")
    page.close()
    return ctx


#: the demo district's streets: the area a new task is handed to in the ``tasks-drawn`` state
DEMO_STREETS = "340291001,340291002,340291003,340291004"


def draw_on_tasks_map(page: Any) -> None:
    """The tasks page with a new task's features chosen: a rectangle drawn over the middle of its
    map, the preview counted, listed and highlighted, the form in view."""
    page.fill("#gw-task-form input[name=title]", "拆违")
    page.fill("#gw-task-form input[name=area]", DEMO_STREETS)
    page.press("#gw-task-form input[name=area]", "Tab")
    page.locator("#gw-task-map").scroll_into_view_if_needed()
    page.click("#gw-task-draw-rect")
    box = page.locator("#gw-task-map").bounding_box()
    x0, y0 = box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.3
    x1, y1 = box["x"] + box["width"] * 0.6, box["y"] + box["height"] * 0.6
    page.mouse.click(x0, y0)
    page.mouse.move((x0 + x1) / 2, (y0 + y1) / 2)
    page.mouse.click(x1, y1)
    wait_for(page, "/[0-9]/.test(document.getElementById('gw-task-count').textContent)", timeout=15000)
    page.evaluate("document.getElementById('gw-task-form').scrollIntoView()")


def settle(page: Any, name: str) -> None:
    """Wait until the page ``name`` shows what it loads after the first paint."""
    page.wait_for_load_state("load")
    if name == "map":
        wait_for(
            page, "window.gridwatchMap && window.gridwatchMap.cells.getLayers().length > 0", timeout=30000
        )
    elif name == "stats":
        wait_for(page, "window.Chart && Object.keys(window.Chart.instances).length > 0", timeout=15000)
    elif name == "tasks-drawn":
        draw_on_tasks_map(page)
    page.evaluate("() => document.fonts.ready.then(() => true)")
    page.wait_for_timeout(150)
