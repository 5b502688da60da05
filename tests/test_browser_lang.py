"""Pages in the page language in a real browser (Debian's chromium through Playwright): the
upload page's default layer and its links onward after a commit, the statistics page's English
legends, headline and totals row, the unit grid's own rollback warning and the HTML error page."""

from __future__ import annotations

import pytest

from geo.store import clock
from tests.helpers.web import wait_for
from tests.test_browser import _survey_upload, live_server, page  # noqa: F401 - fixtures

pytestmark = [pytest.mark.slow, pytest.mark.needs("chromium", "node_modules", "translations")]


def _watch(pg) -> list[str]:
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    return errors


def test_upload_starts_on_a_survey_layer_and_links_onward(live_server, page, tmp_path):  # noqa: F811
    errors = _watch(page)
    page.goto(f"{live_server}/upload?tiles=none")
    assert page.input_value("select[name=layer]") == "demolition"
    assert page.is_hidden("#gw-valid-from") and page.is_hidden("#gw-onward")
    page.set_input_files("#gw-file", str(_survey_upload(tmp_path)))
    page.click("#gw-send")
    wait_for(page, "document.querySelector('#gw-summary').textContent.includes('gb18030')", timeout=20000)
    page.click("#gw-commit")
    wait_for(page, "document.querySelector('#gw-message').textContent.includes('已导入')", timeout=20000)
    assert page.is_visible("#gw-onward")
    today = clock.today().isoformat()
    assert page.get_attribute("#gw-onward-map", "href") == f"/?layer=demolition&as_of={today}"
    assert page.get_attribute("#gw-onward-stats", "href") == f"/stats?layer=demolition&as_of={today}"
    assert page.get_attribute("#gw-onward-batches", "href") == "/batches?layer=demolition"
    page.click("#gw-onward-batches")
    page.wait_for_url(f"{live_server}/batches?layer=demolition")
    assert "新台账.zip" in page.inner_text("#gw-survey-batches")
    assert "违法建设" in page.inner_text("h1")
    assert errors == []


def test_stats_in_english_legends_headline_and_totals(live_server, page):  # noqa: F811
    errors = _watch(page)
    page.goto(f"{live_server}/stats?level=grid&layer=demolition&lang=en")
    wait_for(page, "window.Chart && Chart.getChart('gw-chart-monthly') !== undefined")
    legends = page.evaluate("() => Chart.getChart('gw-chart-monthly').data.datasets.map((d) => d.label)")
    assert legends[:2] == ["Total", "Completed (dated)"]
    assert (
        page.evaluate("() => Chart.getChart('gw-chart-community').data.datasets[0].label") == "Completion %"
    )
    assert page.inner_text("#gw-head-total") == "60" and page.inner_text("#gw-head-rate") == "33.3%"
    total_row = page.inner_text("#gw-total-row")
    assert total_row.startswith("Total") and "60" in total_row and "33.3%" in total_row
    # sorting moves the units, never the totals row
    page.click("#gw-table th:nth-child(4)")
    assert page.inner_text("#gw-table tfoot tr").startswith("Total")
    assert errors == []


def test_a_grid_rollback_warns_that_every_feature_is_reassigned(live_server, page):  # noqa: F811
    errors = _watch(page)
    page.goto(f"{live_server}/batches")
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.click("#gw-grid-batches button.gw-rollback")
    assert dialogs and "所有要素都将重新分配到上一版网格的单元" in dialogs[0]
    assert page.inner_text("#gw-message") == ""  # dismissed: nothing rolled back
    page.click("#gw-survey-batches button.gw-rollback >> nth=0")
    assert "确定回滚批次" in dialogs[1] and "网格" not in dialogs[1]
    assert errors == []


def test_a_browser_gets_an_error_page(live_server, page):  # noqa: F811
    response = page.goto(f"{live_server}/no-such-page?lang=en")
    assert response.status == 404
    assert page.inner_text("h1") == "404 · Not Found"
    assert "not found: /no-such-page" in page.inner_text("#gw-error-message")
    page.click("#gw-error-back")
    page.wait_for_url(f"{live_server}/")
