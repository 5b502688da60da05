"""Daily patrol reports: filing (days, units, areas, features, amending), the rows and audit
entries on both backends, ``store copy`` carrying them, and coverage per unit and rolled up --
checked against a brute-force count with hypothesis."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from geo.errors import Conflict, Forbidden, InputError
from geo.figures.areas import Scope
from geo.figures.patrols import Period, due_days, patrol_coverage, patrol_period, reported_days, unit_coverage
from geo.imports.importer import import_file
from geo.imports.patrols import file_patrol, patrol_list
from geo.store import accounts, clock
from geo.store.interface.patrols import PatrolRow
from geo.workdays import Calendar, site_calendar
from tests.helpers.builders import COMM_A, COMM_B, X0, Y0, grid_frame, points_frame, write_shp

pytestmark = pytest.mark.backends

A_UNITS = [f"{COMM_A}{i:03d}" for i in range(1, 7)]
B_UNITS = [f"{COMM_B}{i:03d}" for i in range(1, 4)]


@pytest.fixture
def patrolled(tmp_path: Path, store: Any) -> Any:
    """The 3 x 3 grid, two demolition sites (one in community A, one in B), an admin, a surveyor
    bound to community A and one bound to no area."""
    import_file(store, "grid", write_shp(grid_frame(), tmp_path / "g" / "g.shp"))
    sites = points_frame([(X0 + 50, Y0 - 50), (X0 + 50, Y0 - 250)], 案件编号=["S1", "S2"])
    import_file(store, "demolition", write_shp(sites, tmp_path / "s" / "s.shp"))
    accounts.add_user(store, "admin", "admin", "admin-pass-1")
    accounts.add_user(store, "surveyor", "surveyor", "surveyor-pass-1", (COMM_A,))
    accounts.add_user(store, "free", "surveyor", "surveyor-pass-2")
    return store


def test_a_filing_is_kept_with_its_units_and_audit_entry(patrolled: Any) -> None:
    patrolled.actor.user = "surveyor"
    row, amends = file_patrol(patrolled, "surveyor", note="  一切正常  ")
    assert amends == [] and row.id and row.day == clock.today().isoformat() and not row.late
    assert row.units == tuple(A_UNITS) and row.result == "nothing_found" and row.note == "一切正常"
    assert patrolled.patrols() == [row]
    assert patrolled.patrols(row.day, row.day) == [row]
    assert patrolled.patrols("2000-01-01", "2000-01-02") == []
    entry = patrolled.audit_entries(action="patrol_add")[0]
    assert entry.user == "surveyor" and entry.counts["patrol"] == row.id and entry.counts["units"] == 6


def test_a_store_without_filings_reads_none(store: Any) -> None:
    assert store.patrols() == []


def test_filing_rules(patrolled: Any) -> None:
    today = clock.today()
    with pytest.raises(InputError) as caught:
        file_patrol(patrolled, "surveyor", day=today + timedelta(days=1))
    assert caught.value.code == "patrol_future_day"
    with pytest.raises(InputError) as caught:
        file_patrol(patrolled, "surveyor", day="not a day")
    assert caught.value.code == "bad_date"
    with pytest.raises(InputError) as caught:
        file_patrol(patrolled, "surveyor", result="maybe")
    assert caught.value.code == "bad_result"
    with pytest.raises(InputError) as caught:  # an account bound to no area names its units
        file_patrol(patrolled, "free")
    assert caught.value.code == "patrol_units_required"
    with pytest.raises(InputError) as caught:
        file_patrol(patrolled, "free", units="999")
    assert caught.value.code == "unknown_area"
    with pytest.raises(Forbidden):
        file_patrol(patrolled, "surveyor", units=[B_UNITS[0]])
    with pytest.raises(InputError) as caught:  # found needs features, nothing found has none
        file_patrol(patrolled, "surveyor", result="found")
    assert caught.value.code == "bad_features"
    with pytest.raises(InputError) as caught:
        file_patrol(patrolled, "surveyor", features=[{"layer": "demolition", "id": 1}])
    assert caught.value.code == "bad_features"
    with pytest.raises(InputError) as caught:
        file_patrol(patrolled, "surveyor", result="found", features=[{"layer": "demolition", "id": 99}])
    assert caught.value.code == "patrol_feature_unknown"
    with pytest.raises(Forbidden):  # site 2 lies in community B
        file_patrol(patrolled, "surveyor", result="found", features=[{"layer": "demolition", "id": 2}])
    with pytest.raises(InputError):
        file_patrol(patrolled, "surveyor", note="长" * 501)
    assert patrolled.patrols() == []


def test_late_filing_a_community_code_and_features(patrolled: Any) -> None:
    past = clock.today() - timedelta(days=3)
    row, _ = file_patrol(
        patrolled,
        "free",
        day=past.isoformat(),
        units=COMM_B,
        result="found",
        features=[{"layer": "违法建设", "id": 2}, {"layer": "demolition", "id": 2}],
    )
    assert row.late and row.day == past.isoformat() and row.units == tuple(B_UNITS)
    assert row.features == [{"layer": "demolition", "id": 2}]
    assert patrolled.patrols()[0].features == row.features


def test_a_second_filing_the_same_day_amends_only_when_asked(patrolled: Any) -> None:
    first, _ = file_patrol(patrolled, "surveyor", units=A_UNITS[:2])
    with pytest.raises(Conflict) as caught:
        file_patrol(patrolled, "surveyor", units=A_UNITS[1:3])
    assert caught.value.code == "patrol_already_filed" and caught.value.details["ids"] == [first.id]
    other, _ = file_patrol(patrolled, "admin", units=A_UNITS[:2])  # another account: its own report
    second, amends = file_patrol(patrolled, "surveyor", units=A_UNITS[:3], note="更正", amend=True)
    assert amends == [first.id]
    listed = {p["id"]: p for p in patrol_list(patrolled)}
    assert listed[first.id]["amended_by"] == second.id
    assert listed[second.id]["amended_by"] is None and listed[other.id]["amended_by"] is None
    assert [p["id"] for p in patrol_list(patrolled)] == [second.id, other.id, first.id]
    scoped = patrol_list(patrolled, scope=Scope(frozenset(A_UNITS[2:3]), (A_UNITS[2],)))
    assert [(p["id"], p["units"]) for p in scoped] == [(second.id, [A_UNITS[2]])]


def test_coverage_per_unit_and_rolled_up(patrolled: Any) -> None:
    today = clock.today()
    start = today - timedelta(days=6)
    file_patrol(patrolled, "surveyor", day=start)
    file_patrol(patrolled, "surveyor", day=today, units=A_UNITS[:1])
    period = Period(start, today, today, working_days=False)
    units = patrol_coverage(patrolled, None, period)
    first = units.table.set_index("code").loc[A_UNITS[0]]
    assert first["days_due"] == 7 and first["days_reported"] == 2 and first["missed"] == 5
    assert first["coverage"] == pytest.approx(2 / 7) and first["last_report"] == today.isoformat()
    assert first["missed_days"] == [(start + timedelta(days=i)).isoformat() for i in range(1, 6)]
    b = units.table.set_index("code").loc[B_UNITS[0]]
    assert b["days_reported"] == 0 and not isinstance(b["last_report"], str) and b["name"] == "网格001"
    community = patrol_coverage(patrolled, "community", period).table.set_index("code")
    assert community.loc[COMM_A, "units"] == 6 and community.loc[COMM_A, "days_due"] == 42
    assert community.loc[COMM_A, "days_reported"] == 7 and community.loc[COMM_B, "days_reported"] == 0
    assert community.loc[COMM_A, "name"] == "赭山社区"
    # known at the end of the day before: both were filed today, neither counts yet
    before = patrol_coverage(patrolled, None, Period(start, today, today - timedelta(days=1), False))
    got = before.table.set_index("code").loc[A_UNITS[0]]
    assert got["days_reported"] == 0 and got["days_due"] == 6
    # the scope of an area: its units only
    scoped = patrol_coverage(patrolled, "street", period, scope=Scope(frozenset(A_UNITS), (COMM_A,)))
    assert scoped.table["units"].tolist() == [6] and scoped.totals["days_due"] == 42


def test_a_late_filing_counts_from_when_it_was_filed(patrolled: Any) -> None:
    yesterday = clock.today() - timedelta(days=1)
    file_patrol(patrolled, "surveyor", day=yesterday)
    as_of_yesterday = Period(yesterday, yesterday, yesterday, working_days=False)
    got = patrol_coverage(patrolled, None, as_of_yesterday).table.set_index("code")
    assert got.loc[A_UNITS[0], "days_reported"] == 0  # filed today, not known yesterday
    now = patrol_coverage(patrolled, None, Period(yesterday, yesterday, clock.today(), False))
    assert now.table.set_index("code").loc[A_UNITS[0], "days_reported"] == 1


def test_the_period_defaults_and_checks() -> None:
    today = clock.today()
    period = patrol_period()
    assert (period.first, period.last, period.as_of) == (today.replace(day=1), today, today)
    with pytest.raises(InputError):
        patrol_period(first="2026-05-02", last="2026-05-01", as_of="2026-05-03")
    with pytest.raises(InputError):
        patrol_period(first="2024-01-01", last="2026-01-01", as_of="2026-01-01")
    with pytest.raises(InputError):
        patrol_period(as_of=today + timedelta(days=1))
    # 2026: 09-25..27 Mid-Autumn, 10-01..07 National Day, 10-10 (Saturday) a make-up working day
    weeks = patrol_period("2026-09-26", "2026-10-11", "2026-10-11")
    assert [d.day for d in due_days(weeks, site_calendar())] == [28, 29, 30, 8, 9, 10]


# against a brute-force count ------------------------------------------------------------------
_UNITS = ["u1", "u2", "u3"]
_START = date(2026, 9, 20)


@st.composite
def _filings(draw: Any) -> tuple[list[PatrolRow], Period]:
    rows = []
    for i in range(draw(st.integers(0, 25))):
        day = _START + timedelta(days=draw(st.integers(0, 25)))
        filed = day + timedelta(days=draw(st.integers(0, 5)))
        units = tuple(sorted(draw(st.sets(st.sampled_from(_UNITS), min_size=1))))
        stamp = clock.stamp(datetime.combine(filed, time(10), tzinfo=clock.zone()))
        rows.append(
            PatrolRow(i + 1, "a", day.isoformat(), "nothing_found", [], None, stamp, filed > day, units)
        )
    first = _START + timedelta(days=draw(st.integers(0, 15)))
    last = first + timedelta(days=draw(st.integers(0, 15)))
    as_of = _START + timedelta(days=draw(st.integers(0, 35)))
    return rows, Period(first, last, as_of, draw(st.booleans()))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_filings())
def test_coverage_matches_a_brute_force_count(case: tuple[list[PatrolRow], Period]) -> None:
    rows, period = case
    cal: Calendar = site_calendar()
    days = due_days(period, cal)
    known = clock.parse_known_at(period.as_of)
    assert known is not None
    table = unit_coverage(_UNITS, days, reported_days(rows, known)).set_index("code")
    for unit in _UNITS:
        due = reported = 0
        missed = []
        day = period.first
        while day <= period.last:
            if day <= period.as_of and (not period.working_days or cal.is_working_day(day)):
                due += 1
                if any(
                    r.day == day.isoformat()
                    and unit in r.units
                    and date.fromisoformat(r.created_at[:10]) <= period.as_of  # filed 10:00 local
                    for r in rows
                ):
                    reported += 1
                else:
                    missed.append(day.isoformat())
            day += timedelta(days=1)
        got = table.loc[unit]
        assert (got["days_due"], got["days_reported"], got["missed"]) == (due, reported, len(missed))
        assert got["missed_days"] == missed
        if due:
            assert got["coverage"] == pytest.approx(reported / due)


# store copy -----------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.gpkg_only
def test_store_copy_carries_the_filings(patrolled: Any, tmp_path: Path, pg_db: str) -> None:
    """GeoPackage → PostGIS → GeoPackage: filings and their units, ids kept."""
    from geo.store.backends import Location, open_store
    from geo.store.copy import copy_store

    pytest.importorskip("psycopg")
    first, _ = file_patrol(patrolled, "surveyor", note="零报告")
    second, _ = file_patrol(
        patrolled, "free", units=[B_UNITS[0]], result="found", features=[{"layer": "demolition", "id": 2}]
    )
    source = Location(str(patrolled.location), tmp_path / "data")
    patrolled.close()
    middle = Location(pg_db, tmp_path / "pgdata")
    back = Location(str(tmp_path / "back" / "gridwatch.gpkg"), tmp_path / "back")
    result = copy_store(source, middle)
    assert result.rows["patrols"] == 2 and result.rows["patrol_units"] == 7
    copy_store(middle, back)
    for where in (middle, back):
        copied = open_store(where.store, data=where.data)
        try:
            assert copied.patrols() == [first, second]
            copied.actor.user = "surveyor"
            third, _ = file_patrol(copied, "surveyor", units=[A_UNITS[0]], amend=True)
            assert third.id == second.id + 1
        finally:
            copied.close()


# the command line -----------------------------------------------------------------------------
def test_the_coverage_command(patrolled: Any, tmp_path: Path, runner: Any) -> None:
    import json

    import openpyxl

    file_patrol(patrolled, "surveyor")
    data = str(tmp_path / "data")
    today = clock.today().isoformat()
    run = runner("--data", data, "patrol", "coverage", "--level", "community", "--from", today, "--all-days")
    assert run.code == 0, run.err
    lines = [line.split("\t") for line in run.out.splitlines()[1:]]
    assert lines[0] == ["code", "name", "due", "reported", "coverage", "missed"]
    assert lines[1] == [COMM_A, "赭山社区", "6", "6", "100.0%", "0"]
    assert lines[2] == [COMM_B, "镜湖社区", "3", "0", "0.0%", "3"]
    run = runner("--data", data, "patrol", "coverage", "--from", today, "--all-days", "--json")
    got = {r["code"]: r for r in json.loads(run.out)["rows"]}
    assert got[A_UNITS[0]]["days_reported"] == 1 and got[B_UNITS[0]]["missed_days"] == [today]
    out = tmp_path / "coverage.xlsx"
    run = runner("--data", data, "--lang", "en", "patrol", "coverage", "--level", "street", "-o", str(out))
    assert run.code == 0 and openpyxl.load_workbook(out).active["A2"].value == "Code"
    run = runner("--data", data, "patrol", "coverage", "--from", "2026-02-01", "--to", "2026-01-01")
    assert run.code == 2 and "bad" not in run.out
    run = runner("--data", data, "patrol", "coverage", "--all-days", "--format", "csv")
    assert run.code == 0 and "编码" in run.out


def test_a_feature_found_is_named_by_its_stable_id(patrolled: Any) -> None:
    from geo.edits.edit import edit_feature

    edited = edit_feature(patrolled, "demolition", 1, 1, {"status": "已拆除"}, user="surveyor")
    assert edited.fid != edited.id  # a new row version, the same feature
    row, _ = file_patrol(patrolled, "surveyor", result="found", features=[{"layer": "demolition", "id": 1}])
    assert row.features == [{"layer": "demolition", "id": 1}]
    with pytest.raises(InputError) as caught:  # a row fid is no feature's id
        file_patrol(
            patrolled,
            "surveyor",
            result="found",
            features=[{"layer": "demolition", "id": edited.fid}],
            amend=True,
        )
    assert caught.value.code == "patrol_feature_unknown"


@pytest.mark.slow
@pytest.mark.needs("postgis")
def test_a_postgis_store_without_the_tables_reads_no_filings(pg_db: str, tmp_path: Path) -> None:
    from geo.store.backends import open_store

    with open_store(pg_db, data=tmp_path / "pg") as pg:
        pg.conn.execute("DROP TABLE gw_patrol_units, gw_patrols")
        assert pg.patrols() == []


def test_a_feature_found_is_named_by_its_survey_id(patrolled: Any) -> None:
    """The surveyor types the case id the feature list shows (S1), or its number; a case id no
    site holds is named in a 400 that speaks Chinese in its Chinese part."""
    row, _ = file_patrol(
        patrolled, "surveyor", result="found", features=[{"layer": "demolition", "id": " S1 "}]
    )
    assert row.features == [{"layer": "demolition", "id": 1}]
    with pytest.raises(InputError) as caught:
        file_patrol(
            patrolled,
            "surveyor",
            result="found",
            features=[{"layer": "demolition", "id": "WJ2022-00319"}, {"layer": "demolition", "id": "1"}],
            amend=True,
        )
    assert caught.value.code == "patrol_feature_unknown" and caught.value.details["ids"] == ["WJ2022-00319"]
    assert "违法建设" in caught.value.zh and "WJ2022-00319" in caught.value.zh
    with pytest.raises(Forbidden) as outside:  # S2 lies in community B
        file_patrol(
            patrolled, "surveyor", result="found", features=[{"layer": "demolition", "id": "S2"}], amend=True
        )
    assert "demolition" not in outside.value.zh and "违法建设 2" in outside.value.zh
