"""Patrol coverage (日巡查覆盖率): per unit grid, and rolled up to each level of the hierarchy, the
days a patrol was due over a period, the days one was reported, the rate and the days missed.

The days due are the working days of the period (:mod:`geo.workdays`: China's holidays and
make-up days, and the site's own calendar), or every day with ``working_days=False``; days after
the as-of day are not due yet.  A unit counts as reported on a day when any filing (of any
account) for that day covers it and was filed by the end of the as-of day ("known at": a late
filing made after that moment does not count).  A filing on a day that is not due counts for
nothing but ``last_report``.

Upper levels sum their units: ``days_due`` and ``days_reported`` are unit-days, ``missed_days``
the days on which at least one of their units was missed.  Days are local days in the
configured time zone (:mod:`geo.store.clock`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta

import numpy as np
import pandas as pd

from geo.errors import InputError
from geo.figures.areas import EVERYTHING, Scope
from geo.figures.hierarchy import Hierarchy, check_level, level_names, load_hierarchy
from geo.reading.values import parse_date
from geo.store import clock
from geo.store.base import Store
from geo.store.interface.patrols import PatrolRow
from geo.workdays import Calendar, site_calendar

__all__ = [
    "COVERAGE_COLUMNS",
    "MAX_PERIOD_DAYS",
    "UNIT_DAY_COLUMNS",
    "Coverage",
    "Period",
    "due_days",
    "patrol_coverage",
    "patrol_period",
    "reported_days",
    "unit_coverage",
]

#: the longest period coverage is counted over, in days
MAX_PERIOD_DAYS = 366

#: the columns of a coverage table, with their labels (Chinese, English)
COVERAGE_COLUMNS: dict[str, tuple[str, str]] = {
    "code": ("编码", "Code"),
    "name": ("名称", "Name"),
    "parent_code": ("上级编码", "Parent code"),
    "parent_name": ("上级名称", "Parent"),
    "units": ("单元网格数", "Unit grids"),
    "days_due": ("应巡查天数", "Days due"),
    "days_reported": ("已巡查天数", "Days reported"),
    "coverage": ("覆盖率", "Coverage"),
    "missed": ("漏报天数", "Days missed"),
    "missed_days": ("漏报日期", "Missed days"),
    "last_report": ("最近巡查", "Last report"),
}

#: above the unit grid, days due, reported and missed are summed over the units: unit-days
UNIT_DAY_COLUMNS: dict[str, tuple[str, str]] = {
    "days_due": ("应巡查网格天次", "Unit-days due"),
    "days_reported": ("已巡查网格天次", "Unit-days reported"),
    "missed": ("漏报网格天次", "Unit-days missed"),
}


@dataclass(frozen=True)
class Period:
    """The days coverage is counted over: ``first`` to ``last`` (both included), as known at the
    end of ``as_of``; ``working_days`` whether only working days are due."""

    first: date
    last: date
    as_of: date
    working_days: bool = True

    @property
    def due_until(self) -> date:
        """The last day that can be due: ``last`` or ``as_of``, whichever is earlier."""
        return min(self.last, self.as_of)


@dataclass
class Coverage:
    """Coverage at one level: the period, the days due (the same for every unit) and one row per
    unit (see :data:`COVERAGE_COLUMNS`; ``missed_days`` a list of ISO days), sorted by code."""

    level: str
    period: Period
    days: list[date]
    table: pd.DataFrame
    warning: str | None = None
    totals: dict[str, object] = field(default_factory=dict)

    @property
    def unit_days(self) -> bool:
        """Whether the days are unit-days: a level above the unit grid sums its units'."""
        return self.level != level_names()[0]

    def columns(self, lang: str = "zh") -> dict[str, str]:
        """The table's columns and their labels in ``lang`` (``zh`` or ``en``): unit-days above
        the unit grid (:data:`UNIT_DAY_COLUMNS`)."""
        labels = COVERAGE_COLUMNS | (UNIT_DAY_COLUMNS if self.unit_days else {})
        return {c: pair[1 if lang == "en" else 0] for c, pair in labels.items()}


def patrol_period(
    first: object = None,
    last: object = None,
    as_of: object = None,
    working_days: bool = True,
    tz: str | None = None,
) -> Period:
    """The period of a coverage from what a person gave (any form ``--as-of`` takes; None: the
    default): ``as_of`` defaults to today, ``last`` to ``as_of``, ``first`` to the first of
    ``last``'s month.

    Raises
    ------
    InputError
        ``bad_date`` for a date that cannot be read; ``bad_period`` when ``first`` is after
        ``last``, ``as_of`` after today, or the period longer than :data:`MAX_PERIOD_DAYS`.
    """
    today = clock.today(tz)
    known = _day(as_of, "as_of") or today
    end = _day(last, "to") or known
    start = _day(first, "from") or end.replace(day=1)
    if known > today:
        raise InputError(
            f"截至日期 {known.isoformat()} 晚于今天",
            f"as_of {known.isoformat()} is after today",
            code="bad_period",
        )
    if start > end:
        raise InputError(
            f"开始日期 {start.isoformat()} 晚于结束日期 {end.isoformat()}",
            f"from {start.isoformat()} is after to {end.isoformat()}",
            code="bad_period",
        )
    if (end - start).days + 1 > MAX_PERIOD_DAYS:
        raise InputError(
            f"统计期间最长 {MAX_PERIOD_DAYS} 天",
            f"the period may be at most {MAX_PERIOD_DAYS} days",
            code="bad_period",
        )
    return Period(start, end, known, working_days)


def _day(value: object, name: str) -> date | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        return parse_date(value)
    except InputError:
        raise InputError(
            f"参数 {name} 不是日期: {str(value)[:40]}",
            f"{name} is not a date: {str(value)[:40]}",
            code="bad_date",
        ) from None


def due_days(period: Period, calendar: Calendar | None = None) -> list[date]:
    """The days of ``period`` a patrol is due: each day from ``first`` to
    :attr:`Period.due_until`, working days only when the period says so."""
    cal = calendar or site_calendar()
    out = []
    day = period.first
    while day <= period.due_until:
        if not period.working_days or cal.is_working_day(day):
            out.append(day)
        day += timedelta(days=1)
    return out


def reported_days(patrols: Iterable[PatrolRow], known_at: str) -> dict[str, set[date]]:
    """Per unit grid code, the days filings known at ``known_at`` (a store stamp: filed at or
    before it) cover."""
    out: dict[str, set[date]] = defaultdict(set)
    for row in patrols:
        if row.created_at <= known_at:
            day = date.fromisoformat(row.day)
            for unit in row.units:
                out[unit].add(day)
    return out


def unit_coverage(units: Iterable[str], days: list[date], reported: dict[str, set[date]]) -> pd.DataFrame:
    """Per unit grid of ``units``: ``days_due``, ``days_reported`` (due days with a report),
    ``coverage`` (their ratio, NaN when nothing was due), ``missed``, ``missed_days`` (ISO days)
    and ``last_report`` (the newest day reported, due or not; None)."""
    codes = list(units)
    at = {d: j for j, d in enumerate(days)}
    shown = [d.isoformat() for d in days]
    hit = np.zeros((len(codes), len(days)), dtype=bool)
    last: list[str | None] = [None] * len(codes)
    for i, code in enumerate(codes):
        got = reported.get(code)
        if got:
            for d in got:
                j = at.get(d)
                if j is not None:
                    hit[i, j] = True
            last[i] = max(got).isoformat()
    done = hit.sum(axis=1)
    patterns: dict[bytes, list[str]] = {}  # units reported on the same days share their list
    missed_days = []
    for row in hit:
        key = row.tobytes()
        if key not in patterns:
            patterns[key] = [shown[j] for j in np.flatnonzero(~row).tolist()]
        missed_days.append(patterns[key])
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = done / len(days) if days else np.full(len(codes), np.nan)
    return pd.DataFrame(
        {
            "code": pd.Series(codes, dtype=object),
            "units": np.ones(len(codes), dtype=np.int64),
            "days_due": np.full(len(codes), len(days), dtype=np.int64),
            "days_reported": done.astype(np.int64),
            "coverage": np.asarray(rate, dtype=np.float64),
            "missed": (len(days) - done).astype(np.int64),
            "missed_days": pd.Series(missed_days, dtype=object),
            "last_report": pd.Series(last, dtype=object),
        }
    )


def _roll_up(per_unit: pd.DataFrame, hierarchy: Hierarchy, level: str, days: list[date]) -> pd.DataFrame:
    mapping = hierarchy.mapping(level)
    groups: dict[str, list[int]] = defaultdict(list)
    for i, code in enumerate(per_unit["code"]):
        groups[str(mapping.get(code))].append(i)
    rows = []
    for code, at in groups.items():
        part = per_unit.iloc[at]
        due, hit = int(part["days_due"].sum()), int(part["days_reported"].sum())
        missed = sorted({d for ds in part["missed_days"] for d in ds})
        last = [d for d in part["last_report"] if isinstance(d, str)]
        rows.append(
            {
                "code": code,
                "units": len(part),
                "days_due": due,
                "days_reported": hit,
                "coverage": hit / due if due else float("nan"),
                "missed": due - hit,
                "missed_days": missed,
                "last_report": max(last) if last else None,
            }
        )
    return pd.DataFrame(rows, columns=per_unit.columns)


def patrol_coverage(
    store: Store,
    level: str | None = None,
    period: Period | None = None,
    scope: Scope = EVERYTHING,
    calendar: Calendar | None = None,
    tz: str | None = None,
) -> Coverage:
    """Patrol coverage of the current grid's units at ``level`` (default: the unit grid) over
    ``period`` (default: this month up to today), of the units in ``scope`` only.

    Returns
    -------
    Coverage
        One row per unit of ``level`` holding a unit grid of the scope: code, name, parent,
        unit grids, days due and reported (unit-days above the unit grid), coverage rate (0–1,
        NaN when nothing was due), days missed and their list, the last day reported.
    """
    level = check_level(level)
    period = period or patrol_period(tz=tz)
    cal = calendar or site_calendar()
    hierarchy = load_hierarchy(store)
    units = [str(c) for c in hierarchy.grid["code"] if scope.allows(c)]
    days = due_days(period, cal)
    known_at = clock.parse_known_at(period.as_of, tz)
    assert known_at is not None
    reported = reported_days(store.patrols(period.first.isoformat(), period.due_until.isoformat()), known_at)
    per_unit = unit_coverage(sorted(units), days, reported)
    table = per_unit if level == hierarchy.level_names[0] else _roll_up(per_unit, hierarchy, level, days)
    names = hierarchy.units(level).set_index("code")
    table.insert(1, "name", table["code"].map(names["name"]))
    table.insert(2, "parent_code", table["code"].map(names["parent_code"]))
    table.insert(3, "parent_name", table["code"].map(names["parent_name"]))
    table = table.sort_values("code", kind="stable").reset_index(drop=True)
    uncovered = sorted({d.year for d in (period.first, period.due_until) if not cal.covers(d)})
    warning = None
    if uncovered and period.working_days:
        years = ", ".join(str(y) for y in uncovered)
        warning = f"节假日日历未覆盖 {years} 年，只按周末计算 / the holiday calendar does not cover {years}: weekends only"
    due, hit = int(table["days_due"].sum()), int(table["days_reported"].sum())
    totals: dict[str, object] = {
        "units": int(table["units"].sum()),
        "days_due": due,
        "days_reported": hit,
        "coverage": hit / due if due else None,
        "missed": due - hit,
    }
    return Coverage(level, period, days, table, warning, totals)
