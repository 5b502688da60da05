"""The working-day calendar: deadlines in calendar or working days, overdue, days between.

A working day is a Monday to Friday that is not an official holiday, or a weekend day that is a
make-up working day (调休上班).  The holidays and make-up days come from a calendar file, one
line each (CSV: ``kind,first,last,name``)::

    year,2026,,国务院办公厅关于2026年部分节假日安排的通知（2025年11月4日）
    holiday,2026-02-15,2026-02-23,春节
    workday,2026-02-14,,春节调休

A ``year`` line says which years the file covers and names the notice it follows; the
``holiday`` and ``workday`` lines after it belong to that year.  Lines starting with ``#`` and
blank lines are skipped.  The package ships :data:`SHIPPED` (China's official holidays from
the State Council General Office's yearly notices); a site adds years or replaces shipped ones
with its own file (``GRIDWATCH_HOLIDAYS``, :func:`site_calendar`): a year the site file
declares is taken from it entirely.  A day in a year no file covers counts weekends only, and
every answer that touched such a year says so (:attr:`Due.uncovered`, :attr:`Due.warning`).
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import lru_cache
from pathlib import Path

from geo.errors import InputError

#: The calendar shipped with the package.
SHIPPED = Path(__file__).resolve().parent / "data" / "holidays_cn.csv"

#: The setting naming a site's own calendar file (years added to or replacing the shipped ones).
ENV = "GRIDWATCH_HOLIDAYS"

#: The longest deadline counted, in days (a bound on the loops, and on a typing slip).
MAX_DAYS = 3660

_KINDS = ("year", "holiday", "workday")


@dataclass(frozen=True)
class Calendar:
    """Holidays and make-up working days by date, and the years covered with their notices."""

    holidays: dict[date, str] = field(default_factory=dict)
    workdays: dict[date, str] = field(default_factory=dict)
    years: dict[int, str] = field(default_factory=dict)

    def covers(self, day: date) -> bool:
        """Whether ``day``'s year is covered by a notice (else weekends only count)."""
        return day.year in self.years

    def is_working_day(self, day: date) -> bool:
        """Whether ``day`` is a working day (see the module docstring)."""
        if day in self.workdays:
            return True
        if day in self.holidays:
            return False
        return day.weekday() < 5

    def merged(self, site: Calendar) -> Calendar:
        """This calendar with ``site``'s years added, a year both declare taken from ``site``."""
        replaced = set(site.years)
        holidays = {d: n for d, n in self.holidays.items() if d.year not in replaced}
        workdays = {d: n for d, n in self.workdays.items() if d.year not in replaced}
        holidays.update(site.holidays)
        workdays.update(site.workdays)
        return Calendar(holidays, workdays, {**self.years, **site.years})


@dataclass(frozen=True)
class Due:
    """An answer about days: its ``value`` (a date, a count or a yes/no) and the years it
    touched that the calendar does not cover (counted by weekends only)."""

    value: date | int | bool
    uncovered: tuple[int, ...] = ()

    @property
    def warning(self) -> str | None:
        """Chinese and English, when a year was not covered; None otherwise."""
        if not self.uncovered:
            return None
        years = "、".join(str(y) for y in self.uncovered)
        years_en = ", ".join(str(y) for y in self.uncovered)
        return (
            f"节假日日历未覆盖 {years} 年，只按周末计算"
            f" / the holiday calendar does not cover {years_en}: weekends only"
        )

    def to_dict(self) -> dict[str, object]:
        """The answer as JSON: ``value`` (ISO date, number or boolean), ``uncovered``, ``warning``."""
        value = self.value.isoformat() if isinstance(self.value, date) else self.value
        return {"value": value, "uncovered": list(self.uncovered), "warning": self.warning}


def _bad(line: int, zh: str, en: str, where: str) -> InputError:
    return InputError(
        f"节假日日历 {where} 第 {line} 行：{zh}",
        f"holiday calendar {where} line {line}: {en}",
        code="bad_calendar",
        details={"line": line},
    )


def _day(text: str, line: int, where: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise _bad(
            line, f"日期“{text}”应写作 YYYY-MM-DD", f"date {text!r} should be YYYY-MM-DD", where
        ) from None


def parse_calendar(text: str, where: str = "") -> Calendar:
    """The calendar in ``text`` (the file format of the module docstring); ``where`` names the
    file in errors.  Raises :class:`geo.errors.InputError` naming the line of the first problem:
    an unknown kind, a bad date, a range that ends before it starts or is longer than 31 days, a
    day outside its year's notice by more than a month, a make-up working day that is not a
    weekend day, a day both a holiday and a working day, a year declared twice, a line before any
    ``year`` line."""
    holidays: dict[date, str] = {}
    workdays: dict[date, str] = {}
    years: dict[int, str] = {}
    year: int | None = None
    for number, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        if not row or not "".join(row).strip() or row[0].lstrip().startswith("#"):
            continue
        cells = [c.strip() for c in row] + [""] * 4
        kind, first, last, name = cells[0].lower(), cells[1], cells[2], cells[3]
        if kind not in _KINDS:
            raise _bad(
                number,
                f"类别“{cells[0]}”应为 year、holiday 或 workday",
                f"kind {cells[0]!r} should be year, holiday or workday",
                where,
            )
        if kind == "year":
            if not (first.isdigit() and 1949 <= int(first) <= 2200):
                raise _bad(number, f"年份“{first}”无效", f"year {first!r} is not a year", where)
            year = int(first)
            if year in years:
                raise _bad(number, f"{year} 年重复声明", f"year {year} is declared twice", where)
            years[year] = name or str(year)
            continue
        if year is None:
            raise _bad(number, "此行之前缺少 year 行", "a year line must come first", where)
        start = _day(first, number, where)
        end = _day(last, number, where) if last else start
        if end < start or (end - start).days > 31:
            raise _bad(number, "日期范围无效", f"the range {first}..{last} is not valid", where)
        if abs((date(year, 7, 1) - start).days) > 215:
            raise _bad(number, f"日期不属于 {year} 年的通知", f"the date is outside {year}'s notice", where)
        day = start
        while day <= end:
            if kind == "workday":
                if day.weekday() < 5:
                    raise _bad(
                        number,
                        f"{day} 不是周末，无需调休上班",
                        f"{day} is not a weekend day, so it cannot be a make-up working day",
                        where,
                    )
                workdays[day] = name
            else:
                holidays[day] = name
            if day in holidays and day in workdays:
                raise _bad(
                    number, f"{day} 既是假日又是上班日", f"{day} is both a holiday and a working day", where
                )
            day += timedelta(days=1)
    if not years:
        raise _bad(1, "文件中没有 year 行", "the file declares no year", where)
    return Calendar(holidays, workdays, years)


def load_calendar(path: str | os.PathLike[str]) -> Calendar:
    """The calendar file at ``path`` (UTF-8, a BOM allowed); see :func:`parse_calendar`."""
    p = Path(path)
    try:
        text = p.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(
            f"节假日日历 {p.name} 不是 UTF-8 文本",
            f"holiday calendar {p.name} is not UTF-8 text",
            code="bad_calendar",
        ) from None
    return parse_calendar(text, p.name)


@lru_cache(maxsize=8)
def _cached(site: str | None, stamp: float | None) -> Calendar:
    shipped = load_calendar(SHIPPED)
    return shipped.merged(load_calendar(site)) if site else shipped


def site_calendar(site: str | os.PathLike[str] | None = None) -> Calendar:
    """The shipped calendar with the site's file merged in: ``site``, else ``$GRIDWATCH_HOLIDAYS``
    when set (read again when the file changes)."""
    chosen = str(site) if site else os.environ.get(ENV) or None
    stamp = Path(chosen).stat().st_mtime if chosen and Path(chosen).exists() else None
    return _cached(chosen, stamp)


def _uncovered(cal: Calendar, first: date, last: date) -> tuple[int, ...]:
    lo, hi = sorted((first, last))
    return tuple(y for y in range(lo.year, hi.year + 1) if y not in cal.years)


def _check_n(n: int) -> None:
    if not 0 <= n <= MAX_DAYS:
        raise InputError(
            f"天数应在 0 到 {MAX_DAYS} 之间", f"the number of days should be 0 to {MAX_DAYS}", code="bad_days"
        )


def is_working_day(day: date, calendar: Calendar | None = None) -> Due:
    """Whether ``day`` is a working day, with the warning when its year is not covered."""
    cal = calendar or site_calendar()
    return Due(cal.is_working_day(day), _uncovered(cal, day, day))


def due_date(start: date, n: int, *, working_days: bool = False, calendar: Calendar | None = None) -> Due:
    """The deadline ``n`` days after ``start``: calendar days (``start + n``), or the ``n``-th
    working day after ``start`` (``n == 0``: ``start`` itself)."""
    _check_n(n)
    if not working_days:
        end = start + timedelta(days=n)
        return Due(end, ())
    cal = calendar or site_calendar()
    day, left = start, n
    while left:
        day += timedelta(days=1)
        if cal.is_working_day(day):
            left -= 1
    return Due(day, _uncovered(cal, start, day))


def working_days_between(start: date, end: date, calendar: Calendar | None = None) -> Due:
    """The working days after ``start`` up to and including ``end`` (negative when ``end`` is
    before ``start``): ``working_days_between(s, due_date(s, n, working_days=True)) == n``."""
    cal = calendar or site_calendar()
    lo, hi, sign = (start, end, 1) if start <= end else (end, start, -1)
    if (hi - lo).days > MAX_DAYS * 2:
        raise InputError("日期相隔太远", "the dates are too far apart", code="bad_days")
    count, day = 0, lo
    while day < hi:
        day += timedelta(days=1)
        count += cal.is_working_day(day)
    return Due(sign * count, _uncovered(cal, lo, hi))


def days_between(start: date, end: date) -> int:
    """Calendar days from ``start`` to ``end`` (negative when ``end`` is earlier)."""
    return (end - start).days


def is_overdue(deadline: date, as_of: date) -> bool:
    """Whether a deadline has passed as of a day: the deadline day itself is still in time."""
    return as_of > deadline
