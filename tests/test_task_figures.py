"""The task figures (geo.figures.tasks): random histories of items checked against a plain
count made here from the same history, and the issue's scenario end to end through the API --
ten sites handed to a community with a three-day deadline, fixed by the community's account,
eight verified and two returned -- with the figures worked out by hand."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geo.figures.tasks import COUNTS, item_counts, replay
from geo.store import clock
from geo.store.interface.tasks import TaskEventRow
from tests.test_task_routes import COMM_A, STREET, data, features, session  # noqa: F401 -- the fixture

BASE = date(2026, 11, 2)


@st.composite
def histories(draw):
    """Per item: (day handed over, deadline, steps) as day numbers after :data:`BASE`, with steps
    a valid sequence of (kind, day, new deadline or None): fixed, then verified or returned
    (perhaps with a new deadline), again and again."""
    items = []
    for _ in range(draw(st.integers(1, 6))):
        created = day = draw(st.integers(0, 10))
        deadline = created + draw(st.integers(0, 6))
        steps = []
        while draw(st.booleans()):
            day += draw(st.integers(0, 4))
            steps.append(("fixed", day, None))
            if not draw(st.booleans()):
                break
            day += draw(st.integers(0, 3))
            if draw(st.booleans()):
                steps.append(("verified", day, None))
                break
            new = day + draw(st.integers(0, 5)) if draw(st.booleans()) else None
            steps.append(("returned", day, new))
        items.append((created, deadline, steps))
    return items


def events_of(items) -> list[TaskEventRow]:
    """The events of the items, written in the order of their days (as they would be)."""
    rows = []
    for n, (created, deadline, steps) in enumerate(items, start=1):
        rows.append((created, 0, n, "created", deadline))
        rows.extend((day, k, n, kind, new) for k, (kind, day, new) in enumerate(steps, start=1))
    rows.sort(key=lambda r: (r[0], r[2], r[1]))
    out = []
    for i, (day, _k, item, kind, deadline) in enumerate(rows, start=1):
        when = (BASE + timedelta(days=day)).isoformat()
        due = None if deadline is None else (BASE + timedelta(days=deadline)).isoformat()
        out.append(TaskEventRow(i, 1, item, kind, when + "T02:00:00.000000Z", when, "u", None, None, due))
    return out


def by_hand(events: list[TaskEventRow], as_of: date) -> dict[str, int]:
    """The figures counted straight from the definitions, item by item."""
    out = dict.fromkeys(COUNTS, 0)
    items = sorted({e.item_id for e in events})
    for item in items:
        mine = [e for e in events if e.item_id == item and date.fromisoformat(e.day) <= as_of]
        if not mine:
            continue
        deadline = date.fromisoformat(mine[0].deadline)
        for e in mine:
            if e.kind == "returned" and e.deadline:
                deadline = date.fromisoformat(e.deadline)
        decisive = [e for e in mine if e.kind in ("created", "fixed", "verified", "returned")]
        last = decisive[-1].kind
        state = {"created": "open", "returned": "open", "fixed": "fixed", "verified": "verified"}[last]
        fixes = [date.fromisoformat(e.day) for e in mine if e.kind == "fixed"]
        fix = fixes[-1] if fixes else None
        due = as_of > deadline
        in_time = fix is not None and fix <= deadline
        out["handed_over"] += 1
        out[state] += 1
        out["due"] += due
        out["on_time"] += due and state == "verified" and in_time
        out["overdue"] += due and (state == "open" or (state == "fixed" and not in_time))
        out["reworked"] += any(e.kind == "returned" for e in mine)
        out["checked"] += any(e.kind in ("verified", "returned") for e in mine)
    return out


@settings(max_examples=300, deadline=None)
@given(histories(), st.integers(-1, 30))
def test_figures_match_a_count_by_hand(items, offset):
    events = events_of(items)
    as_of = BASE + timedelta(days=offset)
    got = dict.fromkeys(COUNTS, 0)
    for state in replay(events, as_of).values():
        for k, v in item_counts(state, as_of).items():
            got[k] += v
    assert got == by_hand(events, as_of)
    assert got["handed_over"] == got["open"] + got["fixed"] + got["verified"]
    assert got["on_time"] <= got["due"] and got["on_time"] <= got["verified"]
    assert got["overdue"] + got["on_time"] <= got["due"]


@given(histories(), st.integers(0, 20), st.integers(0, 20))
@settings(max_examples=100, deadline=None)
def test_a_later_day_never_forgets(items, a, b):
    """What was handed over, reworked or checked by one day still is on any later day."""
    events = events_of(items)
    early, late = sorted((BASE + timedelta(days=a), BASE + timedelta(days=b)))
    first, second = by_hand(events, early), by_hand(events, late)
    for k in ("handed_over", "reworked", "checked"):
        assert first[k] <= second[k]


@pytest.mark.backends
def test_the_issue_scenario(data, make_app):  # noqa: F811 -- the fixture
    """An admin hands ten sites to a community with a three-day deadline, the community's
    account marks them fixed, the admin verifies eight and returns two."""
    folder, ids = data
    app = make_app(folder)
    boss, comm_a = session(app, "boss"), session(app, "comm_a")
    r = boss.request(
        "POST",
        "/api/tasks",
        json={
            "title": "拆除违建",
            "instructions": "三日内整改",
            "area": COMM_A,
            "days": 3,
            "features": features(ids[COMM_A]),
        },
    )
    assert r.status_code == 201
    task = r.json
    today = clock.today()
    assert task["deadline"] == (today + timedelta(days=3)).isoformat()
    items = [i["id"] for i in task["items"]]
    assert (
        comm_a.request("POST", f"/api/tasks/{task['id']}/fixed", json={"note": "已拆除"}).status_code == 200
    )
    assert (
        boss.request("POST", f"/api/tasks/{task['id']}/verify", json={"items": items[:8]}).status_code == 200
    )
    assert (
        boss.request("POST", f"/api/tasks/{task['id']}/return", json={"items": items[8:]}).status_code == 200
    )

    def figures(level: str, day: date) -> dict:
        body = boss.request("GET", f"/api/tasks/stats?level={level}&as_of={day.isoformat()}").json
        return body["totals"]

    now = figures("community", today)
    assert (now["handed_over"], now["verified"], now["reworked"], now["open"], now["fixed"]) == (
        10,
        8,
        2,
        2,
        0,
    )
    assert now["due"] == 0 and now["on_time_rate"] is None  # no deadline has passed yet
    assert now["checked"] == 10 and now["rework_rate"] == 0.2
    # after the deadline: 10 due; 8 verified with the fix reported in time; 2 back at work
    after = figures("street", today + timedelta(days=4))
    assert after["due"] == 10 and after["on_time"] == 8 and after["overdue"] == 2
    assert after["on_time_rate"] == 0.8 and after["rework_rate"] == 0.2
    rows = boss.request(
        "GET", f"/api/tasks/stats?level=street&as_of={(today + timedelta(days=4)).isoformat()}"
    ).json["rows"]
    assert [(r["code"], r["handed_over"], r["verified"], r["reworked"]) for r in rows] == [(STREET, 10, 8, 2)]
    # the day before the hand-over there was nothing
    assert figures("district", today - timedelta(days=1))["handed_over"] == 0
    listed = boss.request("GET", "/api/tasks").json["tasks"][0]
    assert listed["status"] == "open" and listed["counts"]["verified"] == 8
