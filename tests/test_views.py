"""Pages with unusual query strings: the statistics and map pages take a date in every form the
API accepts, show it as ISO, and link downloads with the parsed date."""

from __future__ import annotations

import json
import re
from urllib.parse import quote

import pytest

from geo.imports.importer import import_file
from geo.store.backends import open_store
from tests.helpers.builders import X0, Y0, dated_sites, grid_frame, points_frame, write_shp

DATES = ["2022-05-25", "20220525", "2022年5月25日", " 2022-05-25", "2022/5/25"]


@pytest.fixture
def client(tmp_path, make_app):
    data = tmp_path / "store"
    with open_store(data) as store:
        import_file(store, "grid", write_shp(grid_frame(), tmp_path / "g" / "g.shp"))
        import_file(store, "demolition", write_shp(dated_sites(), tmp_path / "s" / "s.shp"))
    return make_app(data, login=False).test_client()


def _chart(page: str) -> dict:
    m = re.search(r'<script type="application/json" id="gw-chart-data">(.*?)</script>', page, re.S)
    assert m, "no chart data in the page"
    return json.loads(m[1])


@pytest.mark.slow
@pytest.mark.parametrize("as_of", DATES)
def test_stats_page_takes_every_date_form(client, as_of):
    r = client.get(f"/stats?layer=demolition&as_of={quote(as_of)}")
    assert r.status_code == 200
    page = r.get_data(as_text=True)
    assert 'value="2022-05-25"' in page
    assert "as_of=2022-05-25" in page  # download links carry the parsed date
    assert _chart(page)["monthly"]["months"][-1] == "2022-05"


@pytest.mark.slow
def test_stats_page_before_the_first_data_month(client):
    r = client.get("/stats?as_of=2021-06-30")
    assert r.status_code == 200
    assert _chart(r.get_data(as_text=True))["monthly"] == {
        "months": [],
        "total": [],
        "completed": [],
        "undated": [],
    }


@pytest.mark.slow
@pytest.mark.parametrize("as_of", ["2022-13-01", "昨天", "2022-05-25\x1b[31m"])
def test_pages_refuse_a_bad_date_with_a_400(client, as_of):
    for url in (f"/stats?as_of={quote(as_of)}", f"/?tiles=none&as_of={quote(as_of)}"):
        r = client.get(url)
        assert r.status_code == 400 and r.get_json()["error"] == "bad_date"


@pytest.mark.slow
@pytest.mark.parametrize("as_of", DATES)
def test_map_page_takes_every_date_form(client, as_of):
    r = client.get(f"/?tiles=none&as_of={quote(as_of)}")
    assert r.status_code == 200
    page = r.get_data(as_text=True)
    assert 'value="2022-05-25"' in page and '"asOf": "2022-05-25"' in page


@pytest.mark.slow
def test_batches_page_shows_file_names_without_bidi_or_controls(tmp_path, make_app):
    data = tmp_path / "store"
    with open_store(data) as store:
        import_file(store, "grid", write_shp(grid_frame(), tmp_path / "g" / "g.shp"))
        sites = points_frame([(X0 + 50, Y0 - 50)], 案件编号=["B1"])
        import_file(store, "demolition", write_shp(sites, tmp_path / "s" / "报告\u202eexe.\x1bshp.shp"))
    app = make_app(data, login=False)
    page = app.test_client().get("/batches").get_data(as_text=True)
    assert "报告\ufffdexe.\ufffdshp.shp" in page
    assert "\u202e" not in page and "\x1b" not in page


def _config(page: str, block: str) -> dict:
    m = re.search(rf'<script type="application/json" id="{block}">(.*?)</script>', page, re.S)
    assert m, f"no {block} in the page"
    return json.loads(m[1])


@pytest.mark.slow
def test_pages_take_the_levels_from_the_grid_declaration(client):
    from geo.registry import grid_spec

    levels = grid_spec().levels
    for lang, labels in (("zh", [lv.label_zh for lv in levels]), ("en", [lv.label_en for lv in levels])):
        for url, block in (
            (f"/?tiles=none&lang={lang}", "gw-map-config"),
            (f"/upload?lang={lang}", "gw-map-config"),
        ):
            config = _config(client.get(url).get_data(as_text=True), block)
            assert config["levels"] == [
                {"name": lv.name, "label": t} for lv, t in zip(levels, labels, strict=True)
            ]
    # a completion chart per level between the unit grid and the top one, top down, titled from its labels
    page = client.get("/stats?layer=demolition&lang=en").get_data(as_text=True)
    middle = levels[-2:0:-1]
    assert [c["name"] for c in _chart(page)["levels"]] == [lv.name for lv in middle]
    for lv in middle:
        assert f'<canvas id="gw-chart-{lv.name}"' in page
        assert f"<h3>Completion by {lv.label_en.lower()} (%)</h3>" in page
    zh = client.get("/stats?layer=demolition&lang=zh").get_data(as_text=True)
    assert all(f"<h3>各{lv.label_zh}完成率 (%)</h3>" in zh for lv in middle)
    assert '<option value="community" >社区</option>' in zh  # the level choice, labelled as declared


@pytest.mark.slow
def test_map_page_lets_a_phone_zoom(client):
    """The map page carries one viewport line, the base template's, which does not forbid
    pinch zoom (Folium's scaffold brings one with user-scalable=no and maximum-scale=1)."""
    page = client.get("/?tiles=none").get_data(as_text=True)
    metas = re.findall(r'<meta\s+name="viewport"\s+content="([^"]*)"', page)
    assert metas == ["width=device-width, initial-scale=1"], metas
    assert "user-scalable" not in page and "maximum-scale" not in page
    other = client.get("/stats").get_data(as_text=True)
    assert re.findall(r'<meta\s+name="viewport"\s+content="([^"]*)"', other) == metas


@pytest.mark.slow
def test_stats_report_links_carry_the_level_and_date(client):
    """The /stats page's report links name the page's level when the report ranks by it (the
    levels between the unit grid and the top) and the page's as-of date; a link works."""
    from html import unescape
    from urllib.parse import parse_qs, urlsplit

    from geo.figures.hierarchy import grid_levels
    from geo.figures.overview import area_levels

    ranked = {lv.name for lv in area_levels()}
    assert ranked and ranked < {lv.name for lv in grid_levels()}
    for lv in grid_levels():
        page = client.get(f"/stats?layer=demolition&level={lv.name}&as_of=2022年5月25日").get_data(
            as_text=True
        )
        hrefs = [unescape(h) for h in re.findall(r'class="report-link" href="([^"]+)"', page)]
        assert len(hrefs) == 2, hrefs
        for href in hrefs:
            query = {k: v[0] for k, v in parse_qs(urlsplit(href).query).items()}
            expected = {"layer": "demolition", "as_of": "2022-05-25", "format": query["format"]}
            if lv.name in ranked:
                expected["level"] = lv.name
            assert query == expected, (lv.name, href)
        if lv.name in ranked:
            r = client.get(hrefs[0])
            assert r.status_code == 200 and f"_{lv.name}_2022-05-25." in unquote_disposition(r)


def unquote_disposition(response) -> str:
    """The file name of a download, decoded from its Content-Disposition."""
    from urllib.parse import unquote

    return unquote(response.headers["Content-Disposition"])


@pytest.mark.slow
def test_stats_page_in_english_has_no_chinese_punctuation(client):
    """The statistics page's labels in English end in an English colon; unit names are data."""
    en = client.get("/stats?layer=demolition&lang=en").get_data(as_text=True)
    form = en[en.index("<form") : en.index("</form>")]
    assert "Download: " in form and "Monthly report: " in form and "Feature ledger: " in form
    assert "：" not in form and not re.search(r">[^<]*[\u4e00-\u9fff][^<]*<", form)
    zh = client.get("/stats?layer=demolition&lang=zh").get_data(as_text=True)
    assert "下载：" in zh and "生成通报：" in zh
