"""Daily patrol reports over HTTP: who may file (roles, areas), what is refused (400, 403, 409),
the list and the coverage keeping to the account's area, the CSV and Excel exports, the
"今日巡查" page and the coverage on the statistics page -- on both backends."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from pathlib import Path
from typing import Any

import openpyxl
import pytest

from geo.figures import areas
from geo.imports.importer import import_file
from geo.store import clock
from tests.helpers.builders import COMM_A, COMM_B, X0, Y0, grid_frame, points_frame, write_shp
from tests.helpers.postgis import open_test_store
from tests.helpers.web import PASSWORDS, Session

pytestmark = pytest.mark.backends

A_UNITS = [f"{COMM_A}{i:03d}" for i in range(1, 7)]
B_UNITS = [f"{COMM_B}{i:03d}" for i in range(1, 4)]
#: name → (role, area)
ACCOUNTS = {
    "admin": ("admin", ""),
    "surveyor": ("surveyor", COMM_A),
    "surveyor2": ("surveyor", ""),
    "viewer": ("viewer", COMM_B),
}


@pytest.fixture
def site(tmp_path: Path, store_url: str | None) -> Path:
    data = tmp_path / "store"
    with open_test_store(data) as store:
        import_file(store, "grid", write_shp(grid_frame(), tmp_path / "g" / "g.shp"))
        for name, (role, area) in ACCOUNTS.items():
            areas.add_bound_user(store, name, role, PASSWORDS[name], area)
        sites = points_frame([(X0 + 50, Y0 - 50), (X0 + 50, Y0 - 250)], 案件编号=["S1", "S2"])
        import_file(store, "demolition", write_shp(sites, tmp_path / "s" / "s.shp"))
    return data


def _file(session: Session, **body: Any) -> Any:
    return session.request("POST", "/api/patrols", json=body)


def test_filing_today_and_amending(site: Path, make_app: Any) -> None:
    app = make_app(site)
    surveyor = Session(app, "surveyor")
    first = _file(surveyor, note="零报告")
    assert first.status_code == 201, first.json
    got = first.json
    assert got["units"] == A_UNITS and got["result"] == "nothing_found" and got["amends"] == []
    assert got["day"] == clock.today().isoformat() and not got["late"] and got["account"] == "surveyor"
    again = _file(surveyor, units=[A_UNITS[0]])
    assert again.status_code == 409 and again.json["error"] == "patrol_already_filed"
    assert again.json["details"]["ids"] == [got["id"]]
    amended = _file(
        surveyor, units=A_UNITS, result="found", features=[{"layer": "demolition", "id": 1}], amend=True
    )
    assert amended.status_code == 201 and amended.json["amends"] == [got["id"]]
    listed = surveyor.request("GET", "/api/patrols").json["patrols"]
    assert [(p["id"], p["amended_by"]) for p in listed] == [
        (amended.json["id"], None),
        (got["id"], amended.json["id"]),
    ]
    late = _file(surveyor, day=(clock.today() - timedelta(days=2)).isoformat())
    assert late.status_code == 201 and late.json["late"]
    with open_test_store(site) as store:
        entries = store.audit_entries(action="patrol_add")
    assert len(entries) == 3 and {e.user for e in entries} == {"surveyor"}


def test_roles(site: Path, make_app: Any) -> None:
    app = make_app(site)
    assert _file(Session(app, None)).status_code == 401
    refused = _file(Session(app, "viewer"))
    assert refused.status_code == 403 and refused.json["error"] == "forbidden"
    admin = _file(Session(app, "admin"), units=[COMM_B])
    assert admin.status_code == 201 and admin.json["units"] == B_UNITS
    assert Session(app, "viewer").request("GET", "/api/patrols").status_code == 200


def test_what_is_refused(site: Path, make_app: Any) -> None:
    app = make_app(site)
    surveyor, free = Session(app, "surveyor"), Session(app, "surveyor2")
    tomorrow = (clock.today() + timedelta(days=1)).isoformat()
    cases = [
        (surveyor, {"day": tomorrow}, 400, "patrol_future_day"),
        (surveyor, {"day": "someday"}, 400, "bad_date"),
        (surveyor, {"day": ["2026"]}, 400, "bad_date"),
        (surveyor, {"result": "maybe"}, 400, "bad_result"),
        (surveyor, {"result": "found"}, 400, "bad_features"),
        (
            surveyor,
            {"result": "found", "features": [{"layer": "demolition", "id": 99}]},
            400,
            "patrol_feature_unknown",
        ),
        (surveyor, {"result": "found", "features": [{"layer": "nope", "id": 1}]}, 400, "bad_features"),
        (surveyor, {"result": "found", "features": "1"}, 400, "bad_features"),
        (surveyor, {"note": "长" * 501}, 400, "bad_note"),
        (surveyor, {"amend": "yes"}, 400, "bad_patrol"),
        (surveyor, {"units": {"a": 1}}, 400, "bad_units"),
        (free, {}, 400, "patrol_units_required"),
        (free, {"units": ["123"]}, 400, "unknown_area"),
        (surveyor, {"units": [B_UNITS[0]]}, 403, "outside_area"),
        (surveyor, {"units": [COMM_B]}, 403, "outside_area"),
        (surveyor, {"result": "found", "features": [{"layer": "demolition", "id": 2}]}, 403, "outside_area"),
    ]
    for session, body, status, code in cases:
        resp = _file(session, **body)
        assert (resp.status_code, resp.json["error"]) == (status, code), body
    not_json = surveyor.request("POST", "/api/patrols", data="x", content_type="text/plain")
    assert not_json.status_code == 400 and not_json.json["error"] == "bad_patrol"
    assert surveyor.request("GET", "/api/patrols").json["patrols"] == []
    for url in (
        "/api/patrols/coverage?from=2026-05-02&to=2026-05-01",
        "/api/patrols/coverage?level=planet",
        "/api/patrols/coverage?format=pdf",
        "/api/patrols/coverage?working_days=maybe",
        f"/api/patrols/coverage?as_of={tomorrow}",
        "/api/patrols?from=2020-01-01&to=2026-01-01",
    ):
        assert surveyor.request("GET", url).status_code == 400, url


def test_list_and_coverage_keep_to_the_area(site: Path, make_app: Any) -> None:
    app = make_app(site)
    assert _file(Session(app, "surveyor"), note="赭山巡查").status_code == 201
    assert _file(Session(app, "admin"), units=[B_UNITS[0]]).status_code == 201
    viewer, admin = Session(app, "viewer"), Session(app, "admin")
    seen = viewer.request("GET", "/api/patrols").json["patrols"]
    assert [p["units"] for p in seen] == [[B_UNITS[0]]]
    assert len(admin.request("GET", "/api/patrols").json["patrols"]) == 2
    assert [p["units"] for p in admin.request("GET", f"/api/patrols?unit={COMM_A}").json["patrols"]] == [
        A_UNITS
    ]
    today = clock.today().isoformat()
    query = f"from={today}&to={today}&working_days=0"
    mine = viewer.request("GET", f"/api/patrols/coverage?level=community&{query}").json
    assert [r["code"] for r in mine["rows"]] == [COMM_B]
    assert mine["rows"][0]["days_due"] == 3 and mine["rows"][0]["days_reported"] == 1
    units = admin.request("GET", f"/api/patrols/coverage?{query}").json
    by_code = {r["code"]: r for r in units["rows"]}
    assert by_code[A_UNITS[0]]["days_reported"] == 1 and by_code[A_UNITS[0]]["coverage"] == 1
    assert by_code[B_UNITS[1]]["missed_days"] == [today] and by_code[B_UNITS[1]]["last_report"] is None
    assert units["totals"]["days_due"] == 9 and units["totals"]["days_reported"] == 7
    # known at the end of yesterday: nothing filed yet
    yesterday = (clock.today() - timedelta(days=1)).isoformat()
    before = admin.request(
        "GET", f"/api/patrols/coverage?from={yesterday}&to={today}&as_of={yesterday}&working_days=0"
    )
    assert before.json["totals"]["days_reported"] == 0 and before.json["days_due"] == [yesterday]


def test_coverage_exports(site: Path, make_app: Any) -> None:
    app = make_app(site)
    assert _file(Session(app, "admin"), units=A_UNITS).status_code == 201
    admin = Session(app, "admin")
    today = clock.today().isoformat()
    resp = admin.request(
        "GET", f"/api/patrols/coverage?level=community&from={today}&working_days=0&format=csv"
    )
    assert resp.status_code == 200 and resp.mimetype == "text/csv"
    assert "filename*=UTF-8''" in resp.headers["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(resp.get_data().decode("utf-8-sig"))))
    header = next(i for i, r in enumerate(rows) if r and r[0] == "编码")
    table = {r[0]: r for r in rows[header + 1 :]}
    # a community's days are unit-days: its six units reported today
    assert "已巡查天数" not in rows[header]
    assert table[COMM_A][rows[header].index("已巡查网格天次")] == "6"
    assert table[COMM_A][rows[header].index("单元网格数")] == "6"
    assert table[COMM_B][rows[header].index("漏报日期")] == today
    resp = admin.request("GET", f"/api/patrols/coverage?from={today}&working_days=0&format=xlsx&lang=en")
    assert resp.status_code == 200
    ws = openpyxl.load_workbook(io.BytesIO(resp.get_data())).active
    values = [[c.value for c in r] for r in ws.iter_rows()]
    head = next(i for i, r in enumerate(values) if r[0] == "Code")
    got = {r[0]: dict(zip(values[head], r, strict=True)) for r in values[head + 1 :]}
    assert got[A_UNITS[0]]["Days reported"] == 1 and got[A_UNITS[0]]["Coverage"] == 1
    assert got[B_UNITS[0]]["Days missed"] == 1 and got[B_UNITS[0]]["Missed days"] == today


def test_the_patrol_page_and_the_statistics_page(site: Path, make_app: Any) -> None:
    app = make_app(site)
    surveyor, viewer = Session(app, "surveyor"), Session(app, "viewer")
    page = surveyor.request("GET", "/patrol")
    assert page.status_code == 200 and "gw-patrol-nothing" in page.text and COMM_A in page.text
    assert 'id="gw-nav-patrol"' in page.text
    assert 'id="gw-nav-patrol"' not in viewer.request("GET", "/stats").text
    assert viewer.request("GET", "/patrol").status_code == 403
    assert _file(surveyor).status_code == 201
    stats = surveyor.request("GET", "/stats").text
    assert 'id="gw-patrol-coverage"' in stats and f'data-code="{A_UNITS[0]}"' in stats
    assert "应巡查天数" in stats and "网格天次" not in stats.split('id="gw-patrol-table"')[1]
    above = surveyor.request("GET", "/stats?level=community&lang=en").text.split('id="gw-patrol-table"')[1]
    assert "Unit-days due" in above and "Unit grids" in above and "Days due" not in above
    assert "尚未提交" not in surveyor.request("GET", "/patrol").text
    english = surveyor.request("GET", "/patrol?lang=en").text
    assert "Today's patrol" in english and "Nothing found" in english


def test_a_feature_found_by_its_case_id_over_http(site: Path, make_app: Any) -> None:
    surveyor = Session(make_app(site), "surveyor")
    got = _file(surveyor, result="found", features=[{"layer": "demolition", "id": "S1"}])
    assert got.status_code == 201, got.json
    assert got.json["features"] == [{"layer": "demolition", "id": 1}]
    missing = _file(
        surveyor, result="found", features=[{"layer": "demolition", "id": "WJ2022-00319"}], amend=True
    )
    assert missing.status_code == 400 and missing.json["details"]["ids"] == ["WJ2022-00319"]


@pytest.mark.parametrize(
    "body",
    [
        {"units": 5},
        {"result": "maybe"},
        {"amend": "yes"},
        {"result": "found", "features": "x"},
        {"result": "found", "features": [{"layer": "demolition", "id": True}]},
    ],
)
def test_patrol_messages_speak_one_language_each(site: Path, make_app: Any, body: dict[str, Any]) -> None:
    """A refused filing says its Chinese part in Chinese (no field names), its English in English."""
    import re

    r = _file(Session(make_app(site), "surveyor"), **body)
    assert r.status_code == 400, r.json
    assert not re.search(r"[A-Za-z_]{3,}", r.json["message_zh"]), r.json["message_zh"]
    assert not re.search(r"[\u4e00-\u9fff]", r.json["message_en"]), r.json["message_en"]
