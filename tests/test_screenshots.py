"""Screenshots of every page for a person to look at: the demo district in a real browser
(Debian's chromium driven by Playwright) at an office screen (1366×768), a large one (1920×1080)
and a phone (390×844), in Chinese and in English, saved into tests/screenshots/ (ignored by
git) as ``<page>-<width>x<height>-<lang>.png``.  Each file must be written and show something:
a blank or one-colour picture fails."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image, ImageStat

from tests.helpers.pages import PAGES, browser, demo_server, open_context, settle

pytestmark = [pytest.mark.slow, pytest.mark.needs("chromium", "node_modules", "translations")]

OUT = Path(__file__).resolve().parent / "screenshots"
SHOTS = [(lang, size) for lang in ("zh", "en") for size in ((1366, 768), (1920, 1080), (390, 844))]


def not_blank(path: Path) -> float:
    """The spread of the grey levels of the picture at ``path`` (0 for a single colour)."""
    with Image.open(path) as img:
        return max(ImageStat.Stat(img.convert("L")).stddev)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    with demo_server(tmp_path_factory.mktemp("shots") / "store") as base:
        yield base


@pytest.fixture(scope="module")
def contexts(site):
    """A browser context per (language, signed in)."""
    with browser() as b:
        made = {
            (lang, signed): open_context(b, site, lang, signed_in=signed)
            for lang in ("zh", "en")
            for signed in (True, False)
        }
        yield made
        for ctx in made.values():
            ctx.close()


@pytest.mark.parametrize(("lang", "size"), SHOTS, ids=[f"{lang}-{w}x{h}" for lang, (w, h) in SHOTS])
def test_screenshot_of_every_page(site, contexts, lang, size):
    OUT.mkdir(exist_ok=True)
    width, height = size
    written = []
    for target in PAGES:
        page = contexts[lang, target.signed_in].new_page()
        page.set_viewport_size({"width": width, "height": height})
        path = OUT / f"{target.name}-{width}x{height}-{lang}.png"
        path.unlink(missing_ok=True)
        page.goto(site + target.path)
        if page.evaluate("document.contentType") == "text/html":
            settle(page, target.name)
        page.screenshot(path=str(path))
        page.close()
        written.append(path)
    for path in written:
        assert path.is_file() and path.stat().st_size > 1000, path
        assert not_blank(path) > 2, f"{path.name} is blank"
        with Image.open(path) as img:
            assert img.size == size
