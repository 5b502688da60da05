"""Pages in the bureau's language and time: times in the configured zone, HTML error pages for
browsers (the API keeps JSON), the audit trail's counts, actions and layers in the page language,
and the unit grid's batches apart from the survey batches."""

from __future__ import annotations

import csv
import io
import re

import pytest

from geo.imports.importer import import_file
from geo.store import accounts, clock
from geo.store.backends import open_store
from tests.helpers.builders import X0, Y0, grid_frame, points_frame, write_shp
from tests.helpers.web import PASSWORDS, Session

BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
ROLE_OF = {"admin": "admin", "surveyor": "surveyor", "surveyor2": "surveyor", "viewer": "viewer"}


@pytest.fixture
def data(tmp_path):
    data = tmp_path / "store"
    with open_store(data) as store:
        import_file(store, "grid", write_shp(grid_frame(), tmp_path / "g" / "g.shp"), user="admin")
        for name, password in PASSWORDS.items():
            accounts.add_user(store, name, ROLE_OF[name], password)
        sites = points_frame([(X0 + 50, Y0 - 50), (X0 + 150, Y0 - 150)], 案件编号=["S1", "S2"])
        import_file(store, "demolition", write_shp(sites, tmp_path / "s" / "s.shp"), user="surveyor")
    return data


# --- times ---------------------------------------------------------------------------------------


def test_local_text_is_in_the_configured_zone():
    assert clock.local_text("2022-06-30T06:05:09.123456Z", "Asia/Shanghai") == "2022-06-30 14:05"
    assert clock.local_text("2022-06-30T06:05:09Z", "UTC") == "2022-06-30 06:05"
    assert clock.local_text("2022-06-30T18:05:00+00:00", "Asia/Shanghai") == "2022-07-01 02:05"
    assert clock.local_text(None) == "" and clock.local_text("never") == "never"
    assert clock.zone_note("Asia/Shanghai") == "Asia/Shanghai (UTC+08:00)"


@pytest.mark.slow
@pytest.mark.parametrize("tz", ["Asia/Shanghai", "America/New_York"])
def test_account_pages_show_times_in_the_zone(data, make_app, tz):
    admin = Session(make_app(data, GRIDWATCH_TIMEZONE=tz), "admin")
    with open_store(data) as store:
        batch = store.batches()[0]
        user = store.get_user("viewer")
        entry = store.audit_entries()[0]
    for path, stored in (("/batches", batch.created_at), ("/users", user.created_at), ("/audit", entry.at)):
        page = admin.request("GET", path).text
        assert f"<td>{clock.local_text(stored, tz)}</td>" in page, path
        assert clock.zone_note(tz) in page and "UTC)" not in page.replace(clock.zone_note(tz), "")
        assert stored not in page  # no raw UTC stamp left


# --- error pages ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "status", "zh", "en"),
    [
        ("/nope", 404, "页面不存在: /nope", "not found: /nope"),
        ("/stats?layer=nosuch", 400, "未知图层", "unknown layer"),
        ("/?metric=volume&tiles=none", 400, "未知指标", "unknown metric"),
    ],
)
def test_browsers_get_an_error_page_in_their_language(client, path, status, zh, en):
    r = client.get(path, headers=BROWSER)
    assert r.status_code == status and r.mimetype == "text/html"
    page = r.get_data(as_text=True)
    assert 'id="gw-error"' in page and zh in page and '<a href="/" id="gw-error-back">' in page
    assert 'lang="zh-CN"' in page and "Traceback" not in page
    sep = "&" if "?" in path else "?"
    page = client.get(f"{path}{sep}lang=en", headers=BROWSER).get_data(as_text=True)
    assert en in page and zh not in page and "Back to the map" in page and 'lang="en"' in page
    # scripts asking without Accept (or for JSON) keep the JSON body
    assert client.get(path, headers={"Accept": "application/json"}).get_json()["error"]
    assert client.get(path).is_json


def test_the_api_keeps_json_even_for_browsers(client):
    r = client.get("/api/nope", headers=BROWSER)
    assert r.status_code == 404 and r.get_json()["error"] == "not_found"
    r = client.get("/api/stats?level=planet", headers=BROWSER)
    assert r.status_code == 400 and r.get_json()["error"] == "bad_level"


def test_a_wrong_method_is_a_405_page(client):
    r = client.post("/stats", headers=BROWSER)
    assert r.status_code == 405 and r.mimetype == "text/html" and "不支持该请求方法" in r.text
    assert client.post("/stats").get_json()["error"] == "method_not_allowed"


@pytest.mark.slow
def test_a_forbidden_page_is_a_403_page(data, make_app):
    viewer = Session(make_app(data), "viewer")
    r = viewer.request("GET", "/batches", headers=BROWSER)
    assert r.status_code == 403 and r.mimetype == "text/html" and "无权访问" in r.text
    assert 'id="gw-error-back"' in r.text
    assert viewer.request("GET", "/batches").get_json()["error"] == "forbidden"
    # a page that does not exist still names who is signed in
    missing = viewer.request("GET", "/nope", headers=BROWSER)
    assert missing.status_code == 404 and '<a href="/account" id="gw-me">viewer</a>' in missing.text


def test_a_server_error_is_a_page_without_traceback(app, client):
    def broken():
        raise RuntimeError("secret detail /srv/gridwatch")

    broken.gw_access = "public"  # type: ignore[attr-defined]
    app.add_url_rule("/broken", "broken", broken)
    app.config["PROPAGATE_EXCEPTIONS"] = False
    r = client.get("/broken", headers=BROWSER)
    assert r.status_code == 500 and r.mimetype == "text/html"
    assert "服务器内部错误" in r.text and "secret detail" not in r.text and "Traceback" not in r.text
    assert client.get("/broken").get_json()["error"] == "server_error"


# --- the audit trail -----------------------------------------------------------------------------


@pytest.mark.slow
def test_audit_page_and_export_in_the_page_language(data, make_app):
    admin = Session(make_app(data), "admin")
    zh = admin.request("GET", "/audit").text
    assert "新增 2" in zh and "违法建设" in zh and "单元网格" in zh and "导入" in zh
    assert "added 2" not in zh and "<td>demolition</td>" not in zh
    en = admin.request("GET", "/audit?lang=en").text
    assert "Added 2" in en and "Illegal construction" in en and "Unit grid" in en
    rows = list(csv.reader(io.StringIO(admin.request("GET", "/audit.csv?lang=zh").text.lstrip("\ufeff"))))
    header = rows[0]
    assert header[0] == "时间 (Asia/Shanghai)" and "数量" not in header
    assert {"读取", "新增", "更新", "未变", "拒绝"} <= set(header)
    imports = [dict(zip(header, r, strict=True)) for r in rows[1:] if r[header.index("图层")] == "违法建设"]
    assert (
        imports and imports[0]["新增"] == "2" and imports[0]["读取"] == "2" and imports[0]["操作"] == "导入"
    )
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}", imports[0][header[0]])
    en_rows = list(csv.reader(io.StringIO(admin.request("GET", "/audit.csv?lang=en").text.lstrip("\ufeff"))))
    assert {"Added", "Rows read", "Layer"} <= set(en_rows[0])
    assert any("Illegal construction" in r for r in en_rows[1:])


# --- batches -------------------------------------------------------------------------------------


@pytest.mark.slow
def test_grid_batches_are_apart_with_an_admin_only_rollback(data, make_app):
    app = make_app(data)
    with open_store(data) as store:
        grid_id = next(b.id for b in store.batches() if b.kind == "grid")
        survey_id = next(b.id for b in store.batches() if b.kind == "import")

    def sections(html):
        survey = html[html.index('id="gw-survey-batches"') : html.index('id="gw-grid-batches"')]
        return survey, html[html.index('id="gw-grid-batches"') :]

    survey, grid = sections(Session(app, "admin").request("GET", "/batches").text)
    assert f'data-batch="{survey_id}"' in survey and f'data-batch="{grid_id}"' not in survey
    assert f'<button class="gw-rollback" data-batch="{grid_id}" data-grid="1">' in grid
    page = Session(app, "admin").request("GET", "/batches").text
    assert "所有要素都将重新分配到上一版网格的单元" in page  # the grid's own confirmation
    survey, grid = sections(Session(app, "surveyor").request("GET", "/batches").text)
    assert f'data-batch="{grid_id}"' in grid and "gw-rollback" not in grid
    assert f'<button class="gw-rollback" data-batch="{survey_id}">' in survey
    en = Session(app, "admin").request("GET", "/batches?lang=en").text
    assert "Unit grid batches" in en and "Illegal construction" in en


# --- statistics: totals row and headline ---------------------------------------------------------


def test_stats_totals_are_the_tally_summed_with_the_overall_rate(tmp_path):
    from geo.figures.overview import stats_page_data
    from geo.figures.tally import tally

    data = tmp_path / "s"
    with open_store(data) as store:
        import_file(store, "grid", write_shp(grid_frame(), tmp_path / "g" / "g.shp"))
        sites = points_frame(
            [
                (X0 + 50, Y0 - 50),
                (X0 + 60, Y0 - 60),
                (X0 + 70, Y0 - 70),
                (X0 + 150, Y0 - 150),
                (X0 - 900, Y0 + 900),
            ],
            案件编号=["A", "B", "C", "D", "E"],
            当前状态=["已拆除", "已登记", "已登记", "已拆除", "已拆除"],
            违建面积=["10", "20", "30", "40", "5"],
        )
        import_file(store, "demolition", write_shp(sites, tmp_path / "s" / "s.shp"))
        figures = stats_page_data(store, "demolition", "grid")
        table = tally(store, "grid", ["demolition"])
    totals = figures["totals"]
    assert totals["total"] == int(table["demolition_total"].sum()) == 5  # the one outside included
    assert totals["completed"] == int(table["demolition_completed"].sum()) == 3
    assert totals["rate"] == pytest.approx(3 / 5)
    units = table[table["demolition_total"] > 0]
    assert totals["rate"] != pytest.approx(units["demolition_rate"].mean())  # not the mean of rates
    assert totals["measures"]["demolition_area_m2"] == pytest.approx(105)
    assert figures["headline"]["total"] == 5 and figures["headline"]["targets"] == []


def test_stats_page_shows_the_totals_row_and_headline(client):
    zh = client.get("/stats?level=grid").get_data(as_text=True)
    foot = zh[zh.index("<tfoot>") : zh.index("</tfoot>")]
    assert "合计" in foot and "<td>1</td><td>1</td>" in foot and "100.0%" in foot
    head = zh[zh.index('id="gw-headline"') : zh.index("</section>")]
    assert 'id="gw-head-total">1<' in head and 'id="gw-head-rate">100.0%<' in head
    en = client.get("/stats?level=grid&lang=en").get_data(as_text=True)
    assert ">Total</th>" in en and "Outside every grid" in en


@pytest.mark.slow
def test_stats_headline_shows_the_target(data, make_app, tmp_path):
    from tests.helpers.builders import COMM_A

    targets = tmp_path / "targets.csv"
    targets.write_text(f"编码,图层,指标,目标\n{COMM_A},demolition,completed,4\n", encoding="utf-8")
    assert __import__("geo.cli", fromlist=["main"]).main(["--data", str(data), "targets", str(targets)]) == 0
    page = Session(make_app(data), "viewer").request("GET", "/stats?level=street").text
    head = page[page.index('id="gw-headline"') : page.index("</section>")]
    assert "违法建设已完成目标完成度" in head and "0.0%" in head and "0 / 4" in head


# --- upload page ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_the_upload_page_starts_on_the_first_survey_layer(data, make_app):
    app = make_app(data)
    surveyor = Session(app, "surveyor").request("GET", "/upload?tiles=none").text
    options = re.findall(r'<option value="(\w+)"[^>]*>', surveyor[surveyor.index('name="layer"') :])
    assert "grid" not in options and options[0] == "demolition"  # surveyors cannot replace the grid
    assert '<option value="demolition" selected>' in surveyor
    admin = Session(app, "admin").request("GET", "/upload?tiles=none").text
    assert '<option value="grid" data-grid="1">' in admin and '<option value="demolition" selected>' in admin
    assert 'id="gw-onward" hidden' in admin


def test_web_messages_name_the_forms_boxes_not_command_line_options():
    from web.context import web_wording

    assert web_wording("坐标无法判断，请用 --crs 指定坐标系") == "坐标无法判断，请用“坐标系”栏指定坐标系"
    assert (
        web_wording("无法识别 DBF 编码，请用 --encoding 指定（如 GBK）")
        == "无法识别 DBF 编码，请用“文字编码”栏指定（如 GBK）"
    )
    assert web_wording("the datum cannot be told: pass --crs for Xi'an 80", "en") == (
        "the datum cannot be told: set the CRS box for Xi'an 80"
    )
    assert web_wording("invalid --known-at: x", "en") == "invalid known_at: x"


def test_api_errors_name_web_parameters(client):
    body = client.get("/api/stats?known_at=yesterday").get_json()
    assert body["error"] == "bad_known_at"
    assert (
        "--" not in body["message_en"] and "--" not in body["message_zh"] and "known_at" in body["message_en"]
    )
