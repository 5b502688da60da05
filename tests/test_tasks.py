"""Hand-over tasks in the store and the workflow (geo.tasks.handover), on both backends: a task
handed over, fixed, verified and returned; who may do what; the selection by list, area and
status, and drawn shape; the events and webhooks; the copy of a store with tasks."""

from __future__ import annotations

import json
from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest
from pyproj import Transformer

from geo.errors import Conflict, Forbidden, InputError, NotFound
from geo.figures import areas
from geo.figures.areas import Scope, area_units
from geo.figures.tasks import task_stats
from geo.imports.importer import import_file
from geo.notify import outbox
from geo.notify.targets import allowed_networks
from geo.registry import get_layer
from geo.store.backends import Location
from geo.store.copy import copy_store
from geo.tasks import handover
from geo.tasks.handover import Selection
from tests.helpers.builders import COMM_A, COMM_B, X0, Y0, points_frame, write_shp

pytestmark = pytest.mark.backends

TZ = ZoneInfo("Asia/Shanghai")
STREET = COMM_A[:9]
PASSWORD = "task-pass-1"
LOCAL = outbox.Policy(allow=allowed_networks("127.0.0.1"), timeout=1.0, attempts=1, backoff=0.0)


def at(day: str, hour: int = 10) -> datetime:
    return datetime.fromisoformat(f"{day}T{hour:02d}:00:00").replace(tzinfo=TZ)


#: ten sites in community A (rows 0 and 1 of the grid), two in community B (row 2)
SITES_A = [(X0 + 10 + 9 * i, Y0 - 10 - 15 * (i % 2) - 100 * (i // 5)) for i in range(10)]
SITES_B = [(X0 + 50, Y0 - 250), (X0 + 150, Y0 - 250)]


@pytest.fixture
def sites(gridded_store, tmp_path):
    store = gridded_store
    frame = points_frame(
        SITES_A + SITES_B,
        案件编号=[f"S{i:02d}" for i in range(12)],
        当前状态=["未拆除"] * 6 + ["已拆除"] * 4 + ["未拆除"] * 2,
    )
    import_file(store, "demolition", write_shp(frame, tmp_path / "s" / "s.shp"))
    areas.add_bound_user(store, "boss", "admin", PASSWORD)
    areas.add_bound_user(store, "street", "surveyor", PASSWORD, STREET)
    areas.add_bound_user(store, "comm_a", "surveyor", PASSWORD, COMM_A)
    areas.add_bound_user(store, "comm_b", "surveyor", PASSWORD, COMM_B)
    areas.add_bound_user(store, "look", "viewer", PASSWORD, COMM_A)
    areas.add_bound_user(store, "roamer", "surveyor", PASSWORD)
    return store


def ids_in(store, community: str) -> list[int]:
    """The ids of the demolition sites in ``community`` (never updated: the row fids)."""
    rows = store.read_attributes(get_layer("demolition"))
    return sorted(
        int(f) for f, u in zip(rows["fid"], rows["gw_unit"], strict=True) if str(u).startswith(community)
    )


def ten(store) -> Selection:
    ids = ids_in(store, COMM_A)
    assert len(ids) == 10
    return Selection(features=tuple(("demolition", i) for i in ids))


def test_hand_over_fix_verify_return(sites):
    store = sites
    task = handover.create_task(
        store,
        title="拆除违建",
        instructions="三日内整改",
        selection=ten(store),
        area=COMM_A,
        days=3,
        user="boss",
        at=at("2026-11-02"),
    )
    assert task.number == "JB-2026-0001" and task.deadline == "2026-11-05"
    items = store.task_items(task.id)
    assert len(items) == 10 and {i.state for i in items} == {"open"}
    assert all(i.unit.startswith(COMM_A) for i in items)
    fixed = handover.mark_fixed(store, task.id, note="已拆", user="comm_a", at=at("2026-11-03"))
    assert len(fixed) == 10
    ids = [i.id for i in items]
    handover.verify_items(store, task.id, ids[:8], user="boss", at=at("2026-11-04"))
    handover.return_items(store, task.id, ids[8:], note="未拆干净", user="boss", at=at("2026-11-04"))
    after = {i.id: i for i in store.task_items(task.id)}
    assert [after[i].state for i in ids] == ["verified"] * 8 + ["open"] * 2
    assert [after[i].rework for i in ids] == [0] * 8 + [1] * 2
    assert after[ids[9]].deadline == "2026-11-05"  # a return keeps the deadline
    kinds = [e.kind for e in store.task_events(task.id)]
    assert kinds == ["created"] * 10 + ["fixed"] * 10 + ["verified"] * 8 + ["returned"] * 2
    actions = [e.action for e in store.audit_entries(limit=20)]
    assert {"task_create", "task_fixed", "task_verified", "task_returned"} <= set(actions)
    detail = handover.task_detail(store, task.id, as_of=date(2026, 11, 10))
    assert detail["status"] == "open"
    assert detail["counts"] == {
        "handed_over": 10,
        "open": 2,
        "fixed": 0,
        "verified": 8,
        "overdue": 2,
        "reworked": 2,
    }
    # the next task of the year takes the next number (the sites verified may be handed over again)
    done = tuple(("demolition", after[i].feature) for i in ids[:8])
    again = handover.create_task(
        store,
        title="t2",
        selection=Selection(features=done),
        area=COMM_A,
        working_days=2,
        user="street",
        at=at("2026-11-06"),
    )
    assert again.number == "JB-2026-0002"
    assert again.deadline == "2026-11-10"  # Friday + 2 working days: Tuesday


def test_figures_as_of_days(sites):
    store = sites
    task = handover.create_task(
        store, title="t", selection=ten(store), area=COMM_A, days=3, user="boss", at=at("2026-11-02")
    )
    ids = [i.id for i in store.task_items(task.id)]
    handover.mark_fixed(store, task.id, ids[:6], user="comm_a", at=at("2026-11-03"))
    handover.mark_fixed(store, task.id, ids[6:], user="comm_a", at=at("2026-11-07"))  # late
    handover.verify_items(store, task.id, user="boss", at=at("2026-11-08"))
    assert task_stats(store, date(2026, 11, 1), "community").empty
    mid = task_stats(store, date(2026, 11, 4), "community").set_index("code").loc[COMM_A]
    assert (mid["handed_over"], mid["fixed"], mid["open"], mid["due"]) == (10, 6, 4, 0)
    assert mid["on_time_rate"] is None or mid["on_time_rate"] != mid["on_time_rate"]
    late = task_stats(store, date(2026, 11, 6), "community").set_index("code").loc[COMM_A]
    assert (late["due"], late["overdue"], late["on_time"]) == (10, 4, 0)
    end = task_stats(store, date(2026, 11, 30), "street").set_index("code").loc[STREET]
    assert (end["verified"], end["on_time"], end["overdue"], end["on_time_rate"]) == (10, 6, 0, 0.6)
    units = task_stats(store, date(2026, 11, 30), "grid")
    assert units["handed_over"].sum() == 10 and set(units["code"]) <= set(area_units(store, [COMM_A]))
    scoped = task_stats(
        store, date(2026, 11, 30), "district", scope=Scope(area_units(store, [COMM_B]), (COMM_B,))
    )
    assert scoped.empty


def test_who_may_do_what(sites):
    store = sites
    sel = ten(store)
    for user, area in (
        ("comm_a", COMM_A),
        ("comm_b", COMM_A),
        ("look", COMM_A),
        ("roamer", COMM_A),
        ("street", STREET),
    ):
        with pytest.raises(Forbidden):
            handover.create_task(store, title="t", selection=sel, area=area, days=3, user=user)
    task = handover.create_task(store, title="t", selection=sel, area=COMM_A, days=3, user="street")
    assert task.created_by == "street"
    with pytest.raises(Forbidden):
        handover.mark_fixed(store, task.id, user="comm_b")
    with pytest.raises(Forbidden):
        handover.mark_fixed(store, task.id, user="look")
    handover.mark_fixed(store, task.id, user="comm_a")
    for user in ("comm_a", "comm_b", "look", "roamer"):
        with pytest.raises(Forbidden):
            handover.verify_items(store, task.id, user=user)
        with pytest.raises(Forbidden):
            handover.return_items(store, task.id, user=user)
    handover.verify_items(store, task.id, user="street")
    with pytest.raises(Conflict):
        handover.verify_items(store, task.id, user="boss")  # nothing fixed left
    with pytest.raises(NotFound):
        handover.verify_items(store, 999, user="boss")
    # an account the task is handed to, bound to no area, reports the fix
    assigned = handover.create_task(store, title="t", selection=sel, assignee="roamer", days=1, user="boss")
    handover.mark_fixed(store, assigned.id, user="roamer")
    # community B's sites are not community A's to hand over, nor inside a task to community A
    b_ids = ids_in(store, COMM_B)
    with pytest.raises(InputError) as bad:
        handover.create_task(
            store,
            title="t",
            selection=Selection(features=(("demolition", b_ids[0]),)),
            area=COMM_A,
            days=3,
            user="boss",
        )
    assert bad.value.code == "outside_target"
    with pytest.raises(InputError) as unknown:
        handover.create_task(
            store,
            title="t",
            selection=Selection(features=(("demolition", 999), ("demolition", "NO-SUCH"))),
            area=COMM_A,
            days=3,
            user="boss",
        )
    assert unknown.value.code == "feature_not_found"
    assert unknown.value.details["ids"] == ["NO-SUCH", "999"]


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"title": ""}, "missing_title"),
        ({"days": None}, "bad_deadline"),
        ({"working_days": 2}, "bad_deadline"),
        ({"days": -1}, "bad_days"),
        ({"area": "999"}, "unknown_area"),
        ({"area": ()}, "no_target"),
        ({"assignee": "nobody", "area": ()}, "unknown_account"),
    ],
)
def test_bad_input(sites, kwargs, code):
    base = {"title": "t", "selection": ten(sites), "area": COMM_A, "days": 3, "user": "boss"}
    with pytest.raises(InputError) as err:
        handover.create_task(sites, **{**base, **kwargs})
    assert err.value.code == code


def settle(store, task) -> None:
    """Fix and verify every item of ``task``: its features may be handed over again."""
    handover.mark_fixed(store, task.id)
    handover.verify_items(store, task.id)


def test_selection_by_area_status_and_shape(sites):
    store = sites
    by_status = handover.create_task(
        store,
        title="t",
        selection=Selection(layer="demolition", within=COMM_A, statuses=("已登记",)),
        area=COMM_A,
        days=3,
        user="boss",
    )
    assert len(store.task_items(by_status.id)) == 6
    settle(store, by_status)
    # the street's account hands the whole street's unfinished sites to community A: A's only
    scoped = handover.create_task(
        store,
        title="t",
        selection=Selection(layer="demolition", statuses=("已登记",)),
        area=COMM_A,
        days=3,
        user="street",
    )
    assert len(store.task_items(scoped.id)) == 6
    settle(store, scoped)
    to_lonlat = Transformer.from_crs(store.srs_epsg(), 4326, always_xy=True).transform
    ring = [
        to_lonlat(x, y) for x, y in [(X0, Y0), (X0 + 50, Y0), (X0 + 50, Y0 - 200), (X0, Y0 - 200), (X0, Y0)]
    ]
    drawn = handover.create_task(
        store,
        title="t",
        selection=Selection(layer="demolition", shape={"type": "Polygon", "coordinates": [ring]}),
        area=COMM_A,
        days=3,
        user="boss",
    )
    inside = [i for i, (x, _y) in enumerate(SITES_A) if x < X0 + 50]
    assert len(store.task_items(drawn.id)) == len(inside)
    with pytest.raises(InputError):
        handover.create_task(
            store,
            title="t",
            selection=Selection(layer="demolition", shape={"type": "Point", "coordinates": [118, 31]}),
            area=COMM_A,
            days=3,
            user="boss",
        )


def test_webhooks_and_overdue_once(sites):
    store = sites
    hook = outbox.add_webhook(
        store,
        "http://127.0.0.1:9/hook",
        "json",
        area=STREET,
        policy=LOCAL,
    )
    task = handover.create_task(
        store, title="t", selection=ten(store), area=COMM_A, days=3, user="boss", at=at("2026-11-02")
    )
    handover.mark_fixed(store, task.id, user="comm_a", at=at("2026-11-03"))
    ids = [i.id for i in store.task_items(task.id)]
    handover.verify_items(store, task.id, ids[:8], user="boss", at=at("2026-11-04"))
    handover.return_items(store, task.id, ids[8:], deadline="2026-11-20", user="boss", at=at("2026-11-04"))
    assert handover.send_overdue(store, date(2026, 11, 10)) == []  # the new deadline is later
    assert handover.send_overdue(store, date(2026, 11, 21)) == [task.number]
    assert handover.send_overdue(store, date(2026, 11, 22)) == []  # once per task
    events = [json.loads(r.payload) for r in store.outbox_rows(hook.id)]
    assert [e["event"] for e in events] == ["task.created", "task.verified", "task.returned", "task.overdue"]
    assert events[0]["data"]["id"] == task.number and events[0]["data"]["items"] == 10
    assert events[1]["data"]["verified"] == 8
    assert events[2]["data"]["new_deadline"] == "2026-11-20"
    assert events[3]["data"]["days_overdue"] == 1


def test_lists_keep_to_the_area(sites):
    store = sites
    a = handover.create_task(store, title="A", selection=ten(store), area=COMM_A, days=3, user="boss")
    assert [t["number"] for t in handover.list_tasks(store)] == [a.number]
    b_scope = Scope(area_units(store, [COMM_B]), (COMM_B,))
    assert handover.list_tasks(store, b_scope, "comm_b") == []
    with pytest.raises(NotFound):
        handover.task_detail(store, a.id, b_scope, "comm_b")
    a_scope = Scope(area_units(store, [COMM_A]), (COMM_A,))
    assert len(handover.task_detail(store, a.id, a_scope, "comm_a")["items"]) == 10
    assert handover.list_tasks(store, status="verified") == []


def test_a_store_without_tasks_reads_as_none(store):
    assert store.tasks() == [] and store.task_items() == [] and store.task_events() == []
    assert store.task(1) is None


@pytest.mark.gpkg_only
@pytest.mark.slow
@pytest.mark.needs("postgis")
def test_copy_carries_tasks(sites, tmp_path, pg_db):
    """GeoPackage → PostGIS → GeoPackage keeps every task, item and event."""
    from geo.store.backends import open_store

    task = handover.create_task(sites, title="t", selection=ten(sites), area=COMM_A, days=3, user="boss")
    handover.mark_fixed(sites, task.id, user="comm_a")
    source = Location(sites.location, tmp_path / "data")
    middle = Location(pg_db, tmp_path / "middle")
    back = Location(str(tmp_path / "back" / "gridwatch.gpkg"), tmp_path / "back")
    copy_store(source, middle)
    copy_store(middle, back)
    for where in (middle, back):
        copied = open_store(where.store, data=where.data)
        try:
            assert [t.number for t in copied.tasks()] == [task.number]
            assert len(copied.task_items()) == 10 and len(copied.task_events()) == 20
            assert copied.task_events() == sites.task_events()
        finally:
            copied.close()


def test_command_line(sites, runner, tmp_path):
    store = sites
    task = handover.create_task(
        store, title="拆违", selection=ten(store), area=COMM_A, days=3, user="boss", at=at("2026-11-02")
    )
    handover.mark_fixed(store, task.id, user="comm_a", at=at("2026-11-03"))
    data = str(tmp_path / "data")
    listed = runner("--data", data, "task", "list", "--json")
    assert listed.code == 0 and json.loads(listed.out)[0]["number"] == task.number
    shown = runner("--data", data, "task", "show", str(task.id))
    assert shown.code == 0 and task.number in shown.out and "fixed" in shown.out
    stats = runner("--data", data, "task", "stats", "--level", "community", "--as-of", "2026-11-10", "--json")
    body = json.loads(stats.out)
    assert (
        body["totals"]["handed_over"] == 10
        and body["totals"]["fixed"] == 10
        and body["totals"]["overdue"] == 0
    )
    out = tmp_path / "t.xlsx"
    assert runner("--data", data, "task", "stats", "--format", "xlsx", "-o", str(out)).code == 0
    assert out.read_bytes()[:2] == b"PK"
    assert runner("--data", data, "task", "show", "999").code == 2
    told = runner("--data", data, "task", "overdue", "--as-of", "2026-11-10")
    assert told.code == 0 and "0" in told.out  # fixed in time: not overdue


def test_the_monthly_report_has_a_tasks_section(sites):
    import io

    import docx

    from geo.figures.bulletin import build_bulletin
    from geo.output.report_doc import render_docx

    store = sites
    assert build_bulletin(store, "2026-11-30", layer_names=["demolition"]).task_totals is None
    task = handover.create_task(
        store, title="t", selection=ten(store), area=COMM_A, days=3, user="boss", at=at("2026-11-02")
    )
    ids = [i.id for i in store.task_items(task.id)]
    handover.mark_fixed(store, task.id, user="comm_a", at=at("2026-11-03"))
    handover.verify_items(store, task.id, ids[:8], user="boss", at=at("2026-11-04"))
    handover.return_items(store, task.id, ids[8:], user="boss", at=at("2026-11-04"))
    b = build_bulletin(store, "2026-11-30", level="community", layer_names=["demolition"])
    assert b.task_totals is not None and b.task_totals["handed_over"] == 10
    assert [(r["code"], r["verified"], r["reworked"]) for r in b.tasks] == [(COMM_A, 8, 2)]
    document = docx.Document(io.BytesIO(render_docx(b)))
    text = "\n".join(p.text for p in document.paragraphs)
    assert "交办单办理情况" in text and "累计交办10处，已销号8处" in text and "按期完成率80.0%" in text
    table = next(t for t in document.tables if t.rows[0].cells[1].text == "交办")
    assert [c.text for c in table.rows[1].cells] == ["赭山社区", "10", "8", "2", "80.0%", "20.0%"]


def test_a_fix_carries_photos_of_its_features(sites, tmp_path):
    import io

    from PIL import Image

    from geo.imports.photos import add_photo

    store = sites
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 40, 40)).save(buf, "JPEG")
    ids = ids_in(store, COMM_A)
    own, _ = add_photo(store, tmp_path / "data", "demolition", ids[0], buf.getvalue(), note="整改后")
    other, _ = add_photo(store, tmp_path / "data", "demolition", ids_in(store, COMM_B)[0], buf.getvalue())
    task = handover.create_task(
        store,
        title="t",
        selection=Selection(features=(("demolition", ids[0]),)),
        area=COMM_A,
        days=3,
        user="boss",
    )
    (item,) = store.task_items(task.id)
    for bad in ([other.id], [999], ["x"]):
        with pytest.raises(InputError) as err:
            handover.mark_fixed(store, task.id, [item.id], photos=bad, user="comm_a")
        assert err.value.code == "bad_photo"
    handover.mark_fixed(store, task.id, [item.id], photos=[own.id], note="拆除完毕", user="comm_a")
    fixed = [e for e in handover.task_detail(store, task.id)["events"] if e["kind"] == "fixed"]
    assert fixed == [
        {**fixed[0], "photos": [own.id], "note": "拆除完毕", "user": "comm_a"},
    ]


def test_an_edited_feature_is_handed_over_by_its_stable_id(sites):
    from geo.edits.edit import edit_feature

    store = sites
    first = ids_in(store, COMM_A)[0]
    edited = edit_feature(store, "demolition", first, 1, {"status": "拆除中"}, user="boss")
    assert edited.fid != first  # a new row version, the same feature
    # named by its id, or by its current row's fid as the lists show it: the same feature, once
    sel = Selection(features=(("demolition", first), ("demolition", edited.fid)))
    task = handover.create_task(store, title="t", selection=sel, area=COMM_A, days=3, user="boss")
    assert [(i.layer, i.feature) for i in store.task_items(task.id)] == [("demolition", first)]
    settle(store, task)
    by_status = handover.create_task(
        store,
        title="t",
        selection=Selection(layer="demolition", statuses=("拆除中",)),
        area=COMM_A,
        days=3,
        user="boss",
    )
    assert [i.feature for i in store.task_items(by_status.id)] == [first]


def test_a_feature_in_an_open_task_is_not_handed_over_again(sites):
    """The second hand-over of a site still open in another task is refused (409) naming the
    site by its layer and case id and the task holding it, nothing written; once verified, the
    site may be handed over again."""
    store = sites
    first = handover.create_task(store, title="t", selection=ten(store), area=COMM_A, days=3, user="boss")
    ids = ids_in(store, COMM_A)
    with pytest.raises(Conflict) as refused:
        handover.create_task(
            store,
            title="again",
            selection=Selection(features=(("demolition", ids[0]), ("demolition", ids[1]))),
            area=COMM_A,
            days=3,
            user="boss",
        )
    assert refused.value.code == "already_handed_over"
    assert [(f["id"], f["task"], f["name_zh"]) for f in refused.value.details["features"]] == [
        (ids[0], first.number, "违法建设 S00"),
        (ids[1], first.number, "违法建设 S01"),
    ]
    assert "违法建设 S00（JB-2026-0001）" in refused.value.zh and "demolition" not in refused.value.zh
    assert "Illegal construction S00 (JB-2026-0001)" in refused.value.en
    assert [t.id for t in store.tasks()] == [first.id] and len(store.task_items()) == 10
    # a fixed item is still open to the sender's check: still refused
    handover.mark_fixed(store, first.id, user="comm_a")
    by_status = Selection(layer="demolition", within=COMM_A)
    with pytest.raises(Conflict):
        handover.create_task(store, title="t", selection=by_status, area=COMM_A, days=3, user="boss")
    handover.verify_items(store, first.id, user="boss")
    again = handover.create_task(store, title="t", selection=by_status, area=COMM_A, days=3, user="boss")
    assert len(store.task_items(again.id)) == 10


def test_two_hand_overs_racing_write_once(sites, store_url, tmp_path):
    """Two accounts hand the same sites over at the same moment, each on its own connection:
    one task is written, the other refused (409), never both."""
    import threading

    from geo.store.backends import open_store

    where = store_url or str(sites.path)
    results: list = []
    start = threading.Barrier(2)
    sel = ten(sites)

    def send(user: str) -> None:
        with open_store(where, data=tmp_path / "data") as own:
            start.wait()
            try:
                results.append(
                    handover.create_task(own, title=user, selection=sel, area=COMM_A, days=3, user=user)
                )
            except Conflict as exc:
                results.append(exc)

    threads = [threading.Thread(target=send, args=(u,)) for u in ("boss", "street")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    written = [r for r in results if not isinstance(r, Exception)]
    refused = [r for r in results if isinstance(r, Conflict)]
    assert len(written) == 1 and len(refused) == 1 and refused[0].code == "already_handed_over"
    assert len(sites.tasks()) == 1 and len(sites.task_items()) == 10


def test_features_named_by_their_survey_ids(sites):
    """A task's features may be named by their case ids (as the feature list shows them), mixed
    with numbers; the task's items say the layer's name, the case id and the address."""
    store = sites
    ids = ids_in(store, COMM_A)
    sel = handover.selection_from(
        {
            "features": [
                {"layer": "demolition", "id": "S00"},
                {"layer": "demolition", "id": " S01 "},
                {"layer": "demolition", "id": str(ids[2])},
                {"layer": "demolition", "id": ids[0]},
            ]
        }
    )
    task = handover.create_task(store, title="t", selection=sel, area=COMM_A, days=3, user="boss")
    assert sorted(i.feature for i in store.task_items(task.id)) == ids[:3]
    items = handover.task_detail(store, task.id)["items"]
    assert [(i["label_zh"], i["label_en"], i["key"]) for i in items] == [
        ("违法建设", "Illegal construction", f"S{n:02d}") for n in range(3)
    ]
    with pytest.raises(InputError) as unknown:
        handover.create_task(
            store,
            title="t",
            selection=handover.selection_from({"features": [{"layer": "demolition", "id": "WJ2022-00319"}]}),
            area=COMM_A,
            days=3,
            user="boss",
        )
    assert unknown.value.code == "feature_not_found" and "WJ2022-00319" in unknown.value.zh
    assert "demolition" not in unknown.value.zh and unknown.value.details["ids"] == ["WJ2022-00319"]


def test_the_receiver_is_told_only_the_sender_verifies(sites):
    """Community A's account fixes its items and is told, when it tries to verify them, that
    only the sender may; what each account may do is said with the task."""
    store = sites
    task = handover.create_task(store, title="t", selection=ten(store), area=COMM_A, days=3, user="street")
    handover.mark_fixed(store, task.id, user="comm_a")
    for act in (handover.verify_items, handover.return_items):
        with pytest.raises(Forbidden) as refused:
            act(store, task.id, user="comm_a")
        assert refused.value.code == "not_sender" and refused.value.zh == "只有交办方可以核查和退回"
    assert handover.task_detail(store, task.id, user="comm_a")["may"] == {
        "fixed": True,
        "verify": False,
        "return": False,
    }
    assert handover.task_detail(store, task.id, user="street")["may"]["verify"] is True
    assert handover.task_detail(store, task.id, user="look")["may"] == dict.fromkeys(
        ("fixed", "verify", "return"), False
    )
