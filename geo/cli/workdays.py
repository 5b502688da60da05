"""``gridwatch calendar``: check a holiday calendar file, count a deadline."""

from __future__ import annotations

import argparse
from datetime import date
from typing import Any

from geo.cli.common import print_json, say
from geo.errors import InputError


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InputError(
            f"日期“{text}”应写作 YYYY-MM-DD", f"date {text!r} should be YYYY-MM-DD", code="bad_date"
        ) from None


def cmd_calendar(args: argparse.Namespace) -> int:
    """``gridwatch calendar check FILE`` and ``gridwatch calendar due START N [--working-days]``."""
    from geo import workdays

    if args.action == "check":
        cal = workdays.load_calendar(args.file)
        if args.json:
            print_json({"years": cal.years, "holidays": len(cal.holidays), "workdays": len(cal.workdays)})
            return 0
        for year, notice in sorted(cal.years.items()):
            days_off = sum(1 for d in cal.holidays if d.year == year)
            extra = sum(1 for d in cal.workdays if d.year == year)
            say(
                f"{year}: 放假 {days_off} 天，调休上班 {extra} 天 / {days_off} days off, {extra} make-up working days"
            )
            say(f"  {notice}")
        say(f"日历无误 / the calendar is valid: {args.file}")
        return 0
    start = _day(args.start)
    cal = workdays.site_calendar(args.calendar)
    due = workdays.due_date(start, args.n, working_days=args.working_days, calendar=cal)
    out: dict[str, Any] = due.to_dict()
    out["start"] = start.isoformat()
    out["days"] = args.n
    out["working_days"] = bool(args.working_days)
    if args.json:
        print_json(out)
        return 0
    say(out["value"])
    if due.warning:
        say(f"注意 / note: {due.warning}", err=True)
    return 0


def add_calendar_parser(sub: Any) -> None:
    """The ``calendar`` command and its two actions."""
    from geo.cli.common import bounded_int
    from geo.workdays import MAX_DAYS

    c = sub.add_parser("calendar", help="节假日日历 / the working-day calendar: check | due")
    actions = c.add_subparsers(dest="action", required=True)
    check = actions.add_parser("check", help="检查日历文件 / check a calendar file")
    check.add_argument("file")
    check.add_argument("--json", action="store_true")
    due = actions.add_parser("due", help="计算期限 / the deadline N days after START")
    due.add_argument("start", metavar="START", help="YYYY-MM-DD")
    due.add_argument("n", metavar="N", type=bounded_int(0, MAX_DAYS))
    due.add_argument("--working-days", action="store_true", help="按工作日计 / count working days")
    due.add_argument("--calendar", metavar="FILE", help="站点日历文件（默认 $GRIDWATCH_HOLIDAYS）")
    due.add_argument("--json", action="store_true")
    c.set_defaults(func=cmd_calendar)
