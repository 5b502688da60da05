"""The working-day calendar: the shipped years, deadlines, a site's own file, bad files, the CLI."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geo import workdays
from geo.cli import main
from geo.errors import InputError

CAL = workdays.load_calendar(workdays.SHIPPED)
D = date.fromisoformat


def test_the_shipped_years_name_their_notices():
    assert set(CAL.years) == {2025, 2026}
    assert "2026年部分节假日安排" in CAL.years[2026]
    assert "国办发明电〔2024〕12号" in CAL.years[2025]


def test_spring_festival_2026_and_its_make_up_saturdays():
    # 2月15日（周日）至23日（周一）放假；2月14日（周六）、2月28日（周六）上班
    for day in range(15, 24):
        assert not CAL.is_working_day(date(2026, 2, day))
    assert CAL.is_working_day(D("2026-02-14")) and D("2026-02-14").weekday() == 5
    assert CAL.is_working_day(D("2026-02-28")) and D("2026-02-28").weekday() == 5
    assert CAL.is_working_day(D("2026-02-24"))
    # a task handed over on Friday the 13th with 1 working day is due on the make-up Saturday
    assert workdays.due_date(D("2026-02-13"), 1, working_days=True, calendar=CAL).value == D("2026-02-14")
    # with 2 working days it skips the whole festival
    assert workdays.due_date(D("2026-02-13"), 2, working_days=True, calendar=CAL).value == D("2026-02-24")
    # calendar days ignore holidays
    assert workdays.due_date(D("2026-02-13"), 2, calendar=CAL).value == D("2026-02-15")


@pytest.mark.parametrize(
    ("day", "working"),
    [
        ("2026-01-01", False),  # 元旦
        ("2026-01-02", False),
        ("2026-01-04", True),  # 元旦调休（周日）
        ("2026-05-05", False),  # 劳动节
        ("2026-05-09", True),  # 劳动节调休（周六）
        ("2026-06-19", False),  # 端午节（周五）
        ("2026-09-20", True),  # 国庆节调休（周日）
        ("2026-10-07", False),
        ("2026-10-08", True),
        ("2026-10-10", True),  # 国庆节调休（周六）
        ("2026-10-11", False),  # an ordinary Sunday
        ("2025-10-08", False),  # 2025: 国庆节、中秋节 8 days
        ("2025-09-28", True),
    ],
)
def test_known_days(day, working):
    answer = workdays.is_working_day(D(day), CAL)
    assert answer.value is working
    assert answer.uncovered == () and answer.warning is None


def test_a_year_not_covered_counts_weekends_and_says_so():
    answer = workdays.due_date(D("2026-12-30"), 5, working_days=True, calendar=CAL)
    assert answer.value == D("2027-01-06")  # Thu 31, Fri 1, Mon 4, Tue 5, Wed 6
    assert answer.uncovered == (2027,)
    assert "2027" in answer.warning and "weekends only" in answer.warning
    assert answer.to_dict()["uncovered"] == [2027]
    assert workdays.is_working_day(D("2027-01-01"), CAL).warning  # no holiday known: a warning
    assert workdays.working_days_between(D("2024-12-30"), D("2025-01-03"), CAL).uncovered == (2024,)


days = st.dates(min_value=date(2024, 6, 1), max_value=date(2027, 6, 30))


@pytest.mark.slow
@settings(max_examples=150, deadline=None)
@given(start=days, n=st.integers(min_value=1, max_value=200))
def test_adding_working_days_lands_on_a_working_day_and_counts_back(start, n):
    due = workdays.due_date(start, n, working_days=True, calendar=CAL).value
    assert isinstance(due, date)
    assert CAL.is_working_day(due)
    assert workdays.working_days_between(start, due, CAL).value == n
    assert workdays.working_days_between(due, start, CAL).value == -n
    assert due > start


@pytest.mark.slow
@settings(max_examples=100, deadline=None)
@given(start=days, n=st.integers(min_value=0, max_value=100), more=st.integers(min_value=1, max_value=30))
def test_deadlines_grow_with_n(start, n, more):
    for working in (True, False):
        a = workdays.due_date(start, n, working_days=working, calendar=CAL).value
        b = workdays.due_date(start, n + more, working_days=working, calendar=CAL).value
        assert b > a  # strictly: each further day, working or not, moves the deadline on
    assert workdays.due_date(start, n, calendar=CAL).value == start + timedelta(days=n)
    assert workdays.days_between(start, start + timedelta(days=n)) == n


def test_overdue_is_after_the_deadline_day():
    deadline = D("2026-02-24")
    assert not workdays.is_overdue(deadline, D("2026-02-24"))
    assert workdays.is_overdue(deadline, D("2026-02-25"))
    assert not workdays.is_overdue(deadline, D("2026-02-01"))


def test_out_of_range_n_is_refused():
    with pytest.raises(InputError):
        workdays.due_date(D("2026-01-01"), -1, working_days=True, calendar=CAL)
    with pytest.raises(InputError):
        workdays.due_date(D("2026-01-01"), workdays.MAX_DAYS + 1, calendar=CAL)


def test_a_site_file_replaces_a_year_and_adds_one(tmp_path, monkeypatch):
    site = tmp_path / "site.csv"
    site.write_text(
        "# our own\n"
        "year,2026,,本地通知\n"
        "holiday,2026-03-02,2026-03-02,本地假日\n"
        "year,2027,,国务院办公厅关于2027年部分节假日安排的通知\n"
        "holiday,2027-01-01,2027-01-01,元旦\n",
        encoding="utf-8",
    )
    monkeypatch.setenv(workdays.ENV, str(site))
    cal = workdays.site_calendar()
    assert cal.years[2026] == "本地通知" and 2025 in cal.years and 2027 in cal.years
    assert not cal.is_working_day(D("2026-03-02"))
    assert cal.is_working_day(D("2026-02-16"))  # the shipped 2026 is replaced entirely
    assert not cal.is_working_day(D("2025-10-08"))  # 2025 kept
    assert workdays.is_working_day(D("2027-01-01")).uncovered == ()  # default: the site calendar


BAD = [
    ("year,2026,,x\nholiday,2026-13-01,,bad\n", 2, "YYYY-MM-DD"),
    ("year,2026,,x\nworkday,2026-02-16,,周一\n", 2, "not a weekend day"),
    ("# c\nholiday,2026-02-16,,no year\n", 2, "year line must come first"),
    ("year,2026,,x\nholday,2026-02-16,,typo\n", 2, "kind"),
    ("year,2026,,x\nholiday,2026-02-20,2026-02-16,backwards\n", 2, "range"),
    ("year,2026,,x\nyear,2026,,again\n", 2, "declared twice"),
    ("year,twenty,,x\n", 1, "not a year"),
    ("year,2026,,x\nholiday,2030-01-01,,far\n", 2, "outside 2026"),
    ("year,2026,,x\nholiday,2026-02-14,,a\nworkday,2026-02-14,,b\n", 3, "both"),
    ("# nothing\n", 1, "no year"),
]


@pytest.mark.parametrize(("text", "line", "words"), BAD)
def test_bad_files_name_the_line(tmp_path, text, line, words):
    path = tmp_path / "cal.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InputError) as err:
        workdays.load_calendar(path)
    assert f"line {line}" in err.value.en and f"第 {line} 行" in err.value.zh
    assert words in err.value.en
    assert err.value.code == "bad_calendar"


def test_a_file_not_utf8_is_refused(tmp_path):
    path = tmp_path / "cal.csv"
    path.write_bytes("year,2026,,国务院\n".encode("gbk"))
    with pytest.raises(InputError, match="UTF-8"):
        workdays.load_calendar(path)


def test_cli_due_and_check(tmp_path, capsys):
    assert main(["calendar", "due", "2026-02-13", "2", "--working-days"]) == 0
    assert capsys.readouterr().out.strip() == "2026-02-24"
    assert main(["calendar", "due", "2027-03-01", "1", "--working-days", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["value"] == "2027-03-02" and out["uncovered"] == [2027] and out["warning"]
    assert main(["calendar", "check", str(workdays.SHIPPED)]) == 0
    assert "2026" in capsys.readouterr().out
    bad = Path(tmp_path / "bad.csv")
    bad.write_text("year,2026,,x\nworkday,2026-02-16,,周一\n", encoding="utf-8")
    assert main(["calendar", "check", str(bad)]) == 2
    assert "line 2" in capsys.readouterr().err
    assert main(["calendar", "due", "2026-02-30", "2"]) == 2
    assert main(["calendar", "due", "2026-02-03", "-2"]) == 2
