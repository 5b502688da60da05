"""The tasks API (web/tasks.py) with real accounts on the real app: who may create, fix, verify
and return (roles and areas: 403), what is not found (404), a state that does not allow the
step (409), bad bodies (400); the lists and details keep to the account's area; the figures as
JSON, CSV and XLSX; the tasks page."""

from __future__ import annotations

import io
from datetime import timedelta

import openpyxl
import pytest

from geo.figures import areas
from geo.imports.importer import import_file
from geo.registry import get_layer
from geo.store import clock
from tests.helpers.builders import COMM_A, COMM_B, X0, Y0, grid_frame, points_frame, write_shp
from tests.helpers.postgis import open_test_store
from tests.helpers.web import Session, csrf_from, login

pytestmark = pytest.mark.backends

PASSWORD = "task-pass-1"
STREET = COMM_A[:9]
ACCOUNTS = {
    "boss": ("admin", ""),
    "street": ("surveyor", STREET),
    "comm_a": ("surveyor", COMM_A),
    "comm_b": ("surveyor", COMM_B),
    "look_a": ("viewer", COMM_A),
    "look_b": ("viewer", COMM_B),
}
SITES_A = [(X0 + 10 + 9 * i, Y0 - 10 - 15 * (i % 2) - 100 * (i // 5)) for i in range(10)]
SITES_B = [(X0 + 50, Y0 - 250), (X0 + 150, Y0 - 250)]


@pytest.fixture
def data(tmp_path, store_url):
    data = tmp_path / "store"
    with open_test_store(data) as store:
        import_file(store, "grid", write_shp(grid_frame(), tmp_path / "g" / "g.shp"))
        for name, (role, area) in ACCOUNTS.items():
            areas.add_bound_user(store, name, role, PASSWORD, area)
        frame = points_frame(
            SITES_A + SITES_B,
            案件编号=[f"S{i:02d}" for i in range(12)],
            当前状态=["已登记"] * 6 + ["已拆除"] * 4 + ["已登记"] * 2,
        )
        import_file(store, "demolition", write_shp(frame, tmp_path / "s" / "s.shp"))
        rows = store.read_attributes(get_layer("demolition"))
    by_comm: dict[str, list[int]] = {COMM_A: [], COMM_B: []}
    for fid, unit in zip(rows["fid"], rows["gw_unit"], strict=True):
        by_comm[str(unit)[:12]].append(int(fid))
    return data, {k: sorted(v) for k, v in by_comm.items()}


def session(app, name):
    s = Session(app, None)
    assert login(s.client, name, PASSWORD).status_code == 302
    s.token = csrf_from(s.client.get("/account").text)
    return s


def features(ids):
    return [{"layer": "demolition", "id": i} for i in ids]


def test_roles_and_areas(data, make_app):
    folder, ids = data
    app = make_app(folder)
    boss, street, comm_a, comm_b, look_a = (
        session(app, n) for n in ("boss", "street", "comm_a", "comm_b", "look_a")
    )
    body = {"title": "拆违", "area": COMM_A, "days": 3, "features": features(ids[COMM_A])}
    # a viewer may not write; a community may not hand over to itself or to another
    assert look_a.request("POST", "/api/tasks", json=body).status_code == 403
    for who in (comm_a, comm_b):
        r = who.request("POST", "/api/tasks", json=body)
        assert r.status_code == 403 and r.json["error"] in ("outside_area", "forbidden")
    r = street.request("POST", "/api/tasks", json=body)
    assert r.status_code == 201, r.json
    task = r.json
    assert task["number"].startswith("JB-") and len(task["items"]) == 10
    tid = task["id"]
    # community B neither sees it nor fixes it; community A's viewer sees it, cannot fix it
    assert comm_b.request("GET", f"/api/tasks/{tid}").status_code == 404
    assert comm_b.request("GET", "/api/tasks").json["tasks"] == []
    assert comm_b.request("POST", f"/api/tasks/{tid}/fixed", json={}).status_code == 403
    assert look_a.request("GET", f"/api/tasks/{tid}").status_code == 200
    assert look_a.request("POST", f"/api/tasks/{tid}/fixed", json={}).status_code == 403
    # verify before anything is fixed: nothing to verify
    r = street.request("POST", f"/api/tasks/{tid}/verify", json={})
    assert r.status_code == 409 and r.json["error"] == "bad_state"
    item_ids = [i["id"] for i in task["items"]]
    r = comm_a.request("POST", f"/api/tasks/{tid}/fixed", json={"items": item_ids[:3], "note": "已拆除"})
    assert r.status_code == 200 and [i["state"] for i in r.json["items"]][:4] == ["fixed"] * 3 + ["open"]
    again = comm_a.request("POST", f"/api/tasks/{tid}/fixed", json={"items": item_ids[:1]})
    assert again.status_code == 409 and again.json["error"] == "bad_state"
    # the community does not check its own work; the street and the admin do
    assert comm_a.request("POST", f"/api/tasks/{tid}/verify", json={}).status_code == 403
    assert comm_a.request("POST", f"/api/tasks/{tid}/return", json={}).status_code == 403
    r = street.request("POST", f"/api/tasks/{tid}/verify", json={"items": item_ids[:2]})
    assert r.status_code == 200
    r = boss.request("POST", f"/api/tasks/{tid}/return", json={"items": item_ids[2:3], "note": "未拆净"})
    assert r.status_code == 200 and r.json["items"][2]["rework"] == 1
    # not found
    assert boss.request("GET", "/api/tasks/999").status_code == 404
    assert boss.request("POST", "/api/tasks/999/verify", json={}).status_code == 404
    r = boss.request("POST", f"/api/tasks/{tid}/verify", json={"items": [12345]})
    assert r.status_code == 404 and r.json["error"] == "item_not_found"


@pytest.mark.parametrize(
    ("change", "status", "code"),
    [
        ({"title": ""}, 400, "missing_title"),
        ({"days": None}, 400, "bad_deadline"),
        ({"days": "x"}, 400, "bad_days"),
        ({"days": 99999}, 400, "bad_days"),
        ({"workdays": 2}, 400, "bad_deadline"),
        ({"area": "123"}, 400, "unknown_area"),
        ({"area": 5}, 400, "bad_area"),
        ({"features": []}, 400, "bad_task"),
        ({"features": [{"layer": "demolition", "id": True}]}, 400, "bad_task"),
        ({"features": [{"layer": "demolition", "id": 999}]}, 400, "feature_not_found"),
        (
            {"features": None, "layer": "demolition", "shape": {"type": "Polygon", "coordinates": "x"}},
            400,
            "bad_shape",
        ),
        ({"features": None, "layer": "demolition"}, 400, "no_selection"),
        ({"features": None}, 400, "no_selection"),
        ({"features": [{"layer": "grid", "id": 1}]}, 400, "bad_layer"),
        ({"features": [{"layer": "nope", "id": 1}]}, 400, "unknown_layer"),
        ({"features": [{"layer": "demolition", "id": 2**70}]}, 400, "bad_task"),
        ({"features": None, "layer": "demolition", "status": 5}, 400, "bad_status"),
        ({"features": None, "layer": "demolition", "within": 5}, 400, "bad_task"),
        ({"features": None, "layer": "demolition", "status": ["nope"]}, 400, "bad_status"),
    ],
)
def test_bad_requests(data, make_app, change, status, code):
    folder, ids = data
    app = make_app(folder)
    boss = session(app, "boss")
    body = {"title": "t", "area": COMM_A, "days": 3, "features": features(ids[COMM_A][:2])}
    body = {k: v for k, v in {**body, **change}.items() if v is not None}
    r = boss.request("POST", "/api/tasks", json=body)
    assert r.status_code == status and r.json["error"] == code, r.json


def test_not_json_and_bad_as_of(data, make_app):
    folder, _ids = data
    boss = session(make_app(folder), "boss")
    assert boss.request("POST", "/api/tasks", data="x", content_type="text/plain").json["error"] == "bad_json"
    assert boss.request("GET", "/api/tasks?as_of=nope").status_code == 400
    assert boss.request("GET", "/api/tasks?status=nope").status_code == 400
    assert boss.request("GET", "/api/tasks/stats?level=planet").status_code == 400
    assert boss.request("GET", "/api/tasks/stats?format=doc").status_code == 400


def test_selection_by_area_and_status(data, make_app):
    folder, _ids = data
    street = session(make_app(folder), "street")
    body = {"title": "t", "area": COMM_A, "workdays": 2, "layer": "demolition", "status": ["已登记"]}
    r = street.request("POST", "/api/tasks", json=body)
    assert r.status_code == 201 and len(r.json["items"]) == 6  # community A's registered sites only
    assert r.json["working_days"] is True


def test_stats_exports_and_page(data, make_app):
    folder, ids = data
    app = make_app(folder)
    boss = session(app, "boss")
    body = {"title": "t", "area": COMM_A, "days": 3, "features": features(ids[COMM_A])}
    assert boss.request("POST", "/api/tasks", json=body).status_code == 201
    stats = boss.request("GET", "/api/tasks/stats?level=community").json
    assert stats["rows"][0]["code"] == COMM_A and stats["totals"]["handed_over"] == 10
    csv_body = boss.request("GET", "/api/tasks/stats?level=community&format=csv")
    text = csv_body.get_data().decode("utf-8-sig")
    assert "按期完成率" in text and COMM_A in text and "合计" in text
    assert "attachment" in csv_body.headers["Content-Disposition"]
    xlsx = boss.request("GET", "/api/tasks/stats?level=street&format=xlsx").get_data()
    ws = openpyxl.load_workbook(io.BytesIO(xlsx)).active
    values = [[c for c in row] for row in ws.iter_rows(values_only=True)]
    assert values[2][0] == STREET and values[2][2] == 10
    assert 'id="gw-task-link"' in boss.request("GET", "/stats").text  # the statistics lead to them
    page = boss.request("GET", "/tasks")
    assert page.status_code == 200 and "gridwatch-tasks.js" in page.text
    # an account of community B sees none of community A's figures
    look_b = session(app, "look_b")
    assert look_b.request("GET", "/api/tasks/stats?level=district").json["rows"] == []
    assert look_b.request("GET", "/tasks").status_code == 200


def test_a_return_may_set_a_new_deadline(data, make_app):
    folder, ids = data
    app = make_app(folder)
    boss, comm_a = session(app, "boss"), session(app, "comm_a")
    tid = boss.request(
        "POST",
        "/api/tasks",
        json={"title": "t", "area": COMM_A, "days": 1, "features": features(ids[COMM_A][:1])},
    ).json["id"]
    comm_a.request("POST", f"/api/tasks/{tid}/fixed", json={})
    later = (clock.today() + timedelta(days=9)).isoformat()
    bad = boss.request("POST", f"/api/tasks/{tid}/return", json={"deadline": "2000-01-01"})
    assert bad.status_code == 400 and bad.json["error"] == "bad_deadline"
    r = boss.request("POST", f"/api/tasks/{tid}/return", json={"deadline": later})
    assert r.status_code == 200 and r.json["items"][0]["deadline"] == later
    assert r.json["events"][-1]["kind"] == "returned" and r.json["events"][-1]["deadline"] == later


def test_a_double_click_on_hand_over_writes_one_task(data, make_app):
    """Two POST /api/tasks with the same sites at once (a double click), each request on its own
    store connection: one 201, one 409 ``already_handed_over`` naming each site by its layer and
    case id and the task holding it, in Chinese in the Chinese part; the figures count 10."""
    import threading

    folder, ids = data
    app = make_app(folder)
    clients = [session(app, "boss"), session(app, "boss")]
    body = {"title": "拆违", "area": COMM_A, "days": 3, "features": features(ids[COMM_A])}
    answers: list = []
    start = threading.Barrier(2)

    def send(s):
        start.wait()
        answers.append(s.request("POST", "/api/tasks?lang=zh", json=body))

    threads = [threading.Thread(target=send, args=(s,)) for s in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(r.status_code for r in answers) == [201, 409]
    refused = next(r for r in answers if r.status_code == 409).json
    number = next(r for r in answers if r.status_code == 201).json["number"]
    assert refused["error"] == "already_handed_over"
    assert [(f["id"], f["task"]) for f in refused["details"]["features"]] == [
        (i, number) for i in ids[COMM_A]
    ]
    assert f"违法建设 S00（{number}）" in refused["message_zh"] and "demolition" not in refused["message_zh"]
    stats = clients[0].request("GET", "/api/tasks/stats?level=district").json
    assert stats["totals"]["handed_over"] == 10


def test_survey_ids_and_the_names_of_items(data, make_app):
    """Case ids typed as the feature list shows them make a task; its items say the layer's name
    and the case id; ids not found are a 400 naming them, Chinese only in the Chinese part."""
    folder, ids = data
    app = make_app(folder)
    boss = session(app, "boss")
    body = {"title": "拆违", "area": COMM_A, "days": 3}
    missing = boss.request(
        "POST", "/api/tasks", json={**body, "features": features(["S00", "WJ2022-00319", "WJ2022-00462"])}
    )
    assert missing.status_code == 400 and missing.json["error"] == "feature_not_found"
    assert missing.json["details"]["ids"] == ["WJ2022-00319", "WJ2022-00462"]
    assert "违法建设" in missing.json["message_zh"] and "demolition" not in missing.json["message_zh"]
    made = boss.request("POST", "/api/tasks", json={**body, "features": features(["S00", "S01"])})
    assert made.status_code == 201
    items = made.json["items"]
    assert [(i["feature"], i["label_zh"], i["label_en"], i["key"]) for i in items] == [
        (ids[COMM_A][0], "违法建设", "Illegal construction", "S00"),
        (ids[COMM_A][1], "违法建设", "Illegal construction", "S01"),
    ]
    assert made.json["may"] == {"fixed": True, "verify": True, "return": True}


def test_the_receiver_is_told_only_the_sender_verifies(data, make_app):
    folder, ids = data
    app = make_app(folder)
    street, comm_a = session(app, "street"), session(app, "comm_a")
    body = {"title": "拆违", "area": COMM_A, "days": 3, "features": features(ids[COMM_A][:2])}
    task = street.request("POST", "/api/tasks", json=body).json
    assert comm_a.request("POST", f"/api/tasks/{task['id']}/fixed", json={}).status_code == 200
    shown = comm_a.request("GET", f"/api/tasks/{task['id']}").json
    assert shown["may"] == {"fixed": True, "verify": False, "return": False}
    for step in ("verify", "return"):
        r = comm_a.request("POST", f"/api/tasks/{task['id']}/{step}?lang=zh", json={})
        assert r.status_code == 403 and r.json["error"] == "not_sender"
        assert r.json["message_zh"] == "只有交办方可以核查和退回"


@pytest.mark.parametrize(
    "body",
    [
        {"title": "拆违", "area": 5, "days": 3, "layer": "demolition", "within": COMM_A},
        {"title": "拆违", "days": 3, "layer": "demolition", "within": COMM_A},
        {"title": "", "area": COMM_A, "days": 3, "layer": "demolition", "within": COMM_A},
        {"title": "拆违", "area": COMM_A, "layer": "demolition", "within": COMM_A},
        {"title": "拆违", "area": COMM_A, "days": 3, "features": "x"},
        {"title": "拆违", "area": COMM_A, "days": 3, "layer": "demolition"},
    ],
)
def test_task_messages_speak_one_language_each(data, make_app, body):
    """Every refusal of a bad task says its Chinese part in Chinese: no field names."""
    import re

    folder, _ids = data
    boss = session(make_app(folder), "boss")
    r = boss.request("POST", "/api/tasks", json=body)
    assert r.status_code == 400
    assert not re.search(r"[A-Za-z_]{3,}", r.json["message_zh"]), r.json["message_zh"]
    assert not re.search(r"[\u4e00-\u9fff]", r.json["message_en"]), r.json["message_en"]
