"""``/api/stats`` and ``/api/cells`` as answers a client may keep (web/answers.py): a strong ETag
that changes with everything the body depends on, ``304`` on ``If-None-Match``, the body kept in
the store's cache (rendered once per state, also when threads ask at once) and sent
gzip-compressed to a client that accepts it -- on the real app and a real store."""

from __future__ import annotations

import gzip
import threading
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import web.api
from geo.imports.batches import load_targets, rollback
from geo.imports.importer import import_file
from geo.store import clock
from geo.store.cache import MISSING
from tests.helpers.builders import COMM_A, X0, Y0, grid_frame, points_frame, write_shp

pytestmark = pytest.mark.backends

STATS = "/api/stats?level=grid&format=csv"
JSON = "/api/stats?level=grid"


def _get(client: Any, url: str, **headers: str) -> Any:
    return client.get(url, headers=headers)


def _tag(client: Any, url: str = JSON) -> str:
    resp = _get(client, url)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return str(resp.headers["ETag"])


@pytest.fixture
def store_dir(tmp_path: Path) -> Path:
    return tmp_path / "store"


@pytest.fixture
def write(open_db: Callable[..., Any], store_dir: Path) -> Callable[[Callable[[Any], Any]], Any]:
    """Run ``fn(store)`` on a store handle of its own (as another process would write)."""

    def run(fn: Callable[[Any], Any]) -> Any:
        with open_db(store_dir) as s:
            return fn(s)

    return run


def _sites(tmp_path: Path, name: str, n: int = 1) -> Path:
    xy = [(X0 + 20 + 10 * i, Y0 - 20) for i in range(n)]
    frame = points_frame(xy, 案件编号=[f"{name}{i}" for i in range(n)], 当前状态=["已拆除"] * n)
    return write_shp(frame, tmp_path / name / "s.shp")


def _parking(tmp_path: Path, name: str) -> Path:
    frame = points_frame([(X0 + 150, Y0 - 150)], 编号=[f"{name}1"], 名称=["停放点"], 状态=["正常"])
    return write_shp(frame, tmp_path / name / "p.shp")


def test_the_answer_has_a_strong_tag_and_a_repeat_gets_304(client: Any) -> None:
    first = _get(client, STATS)
    assert first.status_code == 200
    tag = first.headers["ETag"]
    assert tag.startswith('"') and tag.endswith('"') and not tag.startswith("W/")
    assert first.headers["Cache-Control"] == "private, no-cache"
    assert "Accept-Encoding" in first.headers["Vary"]
    again = _get(client, STATS)
    assert again.headers["ETag"] == tag and again.get_data() == first.get_data()
    cond = _get(client, STATS, **{"If-None-Match": tag})
    assert cond.status_code == 304 and cond.get_data() == b"" and cond.headers["ETag"] == tag
    other = _get(client, STATS, **{"If-None-Match": '"not-it"'})
    assert other.status_code == 200 and other.get_data() == first.get_data()


def test_the_tag_follows_the_query_the_format_and_the_language(client: Any) -> None:
    tags = {
        _tag(client, JSON),
        _tag(client, STATS),
        _tag(client, JSON + "&rows=arrays"),
        _tag(client, "/api/stats?level=community"),
        _tag(client, JSON + "&as_of=2022-06-30"),
        _tag(client, JSON + "&as_of=2022-07-01"),
        _tag(client, JSON + "&lang=en"),
    }
    assert len(tags) == 7
    client.set_cookie("gridwatch_lang", "en")
    assert _tag(client, JSON) not in tags  # the language of a cookie counts too


def test_gzip_for_a_client_that_accepts_it_with_a_tag_of_its_own(client: Any) -> None:
    plain = _get(client, JSON)
    packed = _get(client, JSON, **{"Accept-Encoding": "gzip, deflate"})
    assert packed.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(packed.get_data()) == plain.get_data()
    assert packed.headers["ETag"] != plain.headers["ETag"]
    assert "Content-Encoding" not in _get(client, JSON, **{"Accept-Encoding": "gzip;q=0"}).headers
    cond = _get(client, JSON, **{"Accept-Encoding": "gzip", "If-None-Match": packed.headers["ETag"]})
    assert cond.status_code == 304 and cond.headers["ETag"] == packed.headers["ETag"]


@pytest.mark.slow
def test_a_write_to_any_layer_changes_the_tag(client: Any, write: Any, tmp_path: Path) -> None:
    before = _get(client, JSON)
    write(lambda s: import_file(s, "demolition", _sites(tmp_path, "D", 2)))
    after = _get(client, JSON)
    assert after.headers["ETag"] != before.headers["ETag"] and after.get_data() != before.get_data()
    assert _get(client, JSON, **{"If-None-Match": before.headers["ETag"]}).status_code == 200
    csv_tag = _tag(client, STATS)
    write(lambda s: import_file(s, "parking", _parking(tmp_path, "P")))
    assert _tag(client, STATS) != csv_tag


@pytest.mark.slow
def test_a_rollback_changes_the_tag(client: Any, write: Any, tmp_path: Path) -> None:
    report = write(lambda s: import_file(s, "demolition", _sites(tmp_path, "D", 2)))
    tag, body = _tag(client), _get(client, STATS).get_data()
    write(lambda s: rollback(s, report.batch_id))
    assert _tag(client) != tag and _get(client, STATS).get_data() != body


@pytest.mark.slow
def test_a_grid_revision_changes_the_tag(client: Any, write: Any, tmp_path: Path) -> None:
    tag = _tag(client, STATS)
    grid = grid_frame()
    grid = grid[grid["网格编码"] != f"{COMM_A}003"]
    write(lambda s: import_file(s, "grid", write_shp(grid, tmp_path / "g2" / "g.shp")))
    resp = _get(client, STATS)
    assert resp.headers["ETag"] != tag and f"{COMM_A}003" not in resp.get_data(as_text=True)


@pytest.mark.slow
def test_a_target_changes_the_tag(client: Any, write: Any, tmp_path: Path) -> None:
    url = "/api/stats?level=community&format=csv"
    tag = _tag(client, url)
    path = tmp_path / "t" / "目标.csv"
    path.parent.mkdir()
    pd.DataFrame({"编码": [COMM_A], "图层": ["demolition"], "指标": ["completed"], "目标": ["4"]}).to_csv(
        path, index=False, encoding="utf-8-sig"
    )
    write(lambda s: load_targets(s, path))
    resp = _get(client, url)
    assert resp.headers["ETag"] != tag and "demolition_completed_target" in resp.get_data(as_text=True)


def test_a_value_mapping_change_changes_the_tag(client: Any, write: Any) -> None:
    tag = _tag(client)
    map_id = write(lambda s: s.save_value_map("demolition", "status", "拆了", "拆了", "demolished"))
    saved = _tag(client)
    assert saved != tag
    write(lambda s: s.remove_value_map(map_id))
    assert _tag(client) not in (tag, saved)


def test_the_day_changes_the_tag_of_an_answer_without_as_of(
    client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    tag = _tag(client)
    tomorrow = clock.today() + timedelta(days=1)
    monkeypatch.setattr(clock, "today", lambda tz=None: tomorrow)
    resp = _get(client, JSON)
    assert resp.headers["ETag"] != tag and resp.get_json()["as_of"] == tomorrow.isoformat()


def _count_reports(monkeypatch: pytest.MonkeyPatch, hook: Callable[[], None] | None = None) -> list[int]:
    calls: list[int] = []
    real = web.api.build_report

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if hook is not None:
            hook()
        return real(*args, **kwargs)

    monkeypatch.setattr(web.api, "build_report", counted)
    return calls


def test_a_repeat_is_served_from_the_store_cache(
    client: Any, app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _count_reports(monkeypatch)
    first = _get(client, JSON).get_data()
    assert _get(client, JSON).get_data() == first
    assert _get(client, JSON, **{"If-None-Match": "*"}).status_code == 304
    assert len(calls) == 1
    from web.context import get_store

    with app.test_request_context():
        cache = get_store().cache
        kept = cache.nbytes()["answers"]
        assert kept >= len(first)
        _get(client, JSON, **{"Accept-Encoding": "gzip"})
        assert cache.nbytes()["answers"] > kept  # the compressed body is counted too
    assert len(calls) == 1


def test_threads_asking_at_once_render_once(app: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from web.context import get_store

    with app.test_request_context():
        region = get_store().cache.region("answers")
    inside, go = threading.Event(), threading.Event()
    calls = _count_reports(monkeypatch, lambda: (inside.set(), go.wait(10)))
    missed = threading.Event()
    real_get = region.get

    def get(key: Any, default: Any = MISSING) -> Any:
        hit = real_get(key, default)
        if threading.current_thread().name == "second" and hit is MISSING:
            missed.set()
        return hit

    monkeypatch.setattr(region, "get", get)
    bodies: dict[str, bytes] = {}

    def ask(name: str) -> None:
        bodies[name] = app.test_client().get(JSON).get_data()

    first = threading.Thread(target=ask, args=("first",), name="first")
    first.start()
    assert inside.wait(10)
    second = threading.Thread(target=ask, args=("second",), name="second")
    second.start()
    assert missed.wait(10)  # the second looked and found nothing: it must wait for the first
    go.set()
    first.join(10)
    second.join(10)
    assert len(calls) == 1 and bodies["first"] == bodies["second"]


def test_a_write_while_rendering_gives_no_tag_and_keeps_nothing(
    app: Any, write: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from web.context import get_store

    done: list[int] = []

    def land_a_write() -> None:
        if not done:
            done.append(1)
            write(lambda s: import_file(s, "demolition", _sites(tmp_path, "W", 1)))

    _count_reports(monkeypatch, land_a_write)
    resp = app.test_client().get(JSON)
    assert resp.status_code == 200 and "ETag" not in resp.headers
    with app.test_request_context():
        assert len(get_store().cache.region("answers")) == 0
    assert "ETag" in app.test_client().get(JSON).headers


def test_bad_input_is_a_400_without_a_tag(client: Any) -> None:
    resp = _get(client, JSON + "&rows=rows")
    assert resp.status_code == 400 and "ETag" not in resp.headers
    assert _get(client, JSON + "&as_of=notaday").status_code == 400


def test_cells_carry_a_tag_and_revalidate(client: Any, write: Any, tmp_path: Path) -> None:
    url = "/api/cells?zoom=16"
    first = _get(client, url)
    assert first.status_code == 200 and first.get_json()
    tag = first.headers["ETag"]
    assert _get(client, url, **{"If-None-Match": tag}).status_code == 304
    assert _get(client, url + "&layer=parking").headers["ETag"] != tag
    write(lambda s: import_file(s, "demolition", _sites(tmp_path, "C", 1)))
    assert _get(client, url).headers["ETag"] != tag


def test_the_tag_is_the_same_from_another_app_on_the_same_store(
    client: Any, make_app: Any, store_dir: Path
) -> None:
    other = make_app(store_dir, login=False).test_client()
    assert _tag(client) == _tag(other)
    assert date.fromisoformat(_get(other, JSON).get_json()["as_of"]) == clock.today()


@pytest.mark.slow
@pytest.mark.gpkg_only
@pytest.mark.needs("chromium", "node_modules", "translations")
def test_a_browser_revalidates_the_map_cells_and_still_draws_them(app: Any) -> None:
    """The map page in Chromium: opened again, its /api/cells requests carry If-None-Match, are
    answered 304, and the map has its cells."""
    from playwright.sync_api import sync_playwright

    from tests.helpers.needs import chromium
    from tests.helpers.web import serving, wait_for

    seen: list[tuple[int, bool]] = []

    def note(resp: Any) -> Any:
        from flask import request

        if request.path == "/api/cells":
            seen.append((resp.status_code, bool(request.headers.get("If-None-Match"))))
        return resp

    app.after_request(note)
    app.config["GRIDWATCH_TILES"] = "none"
    with serving(app) as port, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_context(viewport={"width": 1366, "height": 768}).new_page()
            counts = []
            for _ in range(2):
                page.goto(f"http://127.0.0.1:{port}/?tiles=none")
                wait_for(page, "window.gridwatchMap && window.gridwatchMap.lastCells", 20000)
                counts.append(page.evaluate("() => window.gridwatchMap.lastCells.count"))
        finally:
            browser.close()
    assert seen[0] == (200, False)
    assert (304, True) in seen
    assert counts[0] > 0 and counts[1] == counts[0]  # the revalidated cells drawn as before
