"""``gridwatch patrol coverage``: daily patrol coverage per unit of a level over a period, as a
table on the terminal, JSON, CSV or an Excel workbook."""

from __future__ import annotations

import argparse
from typing import Any

from geo.cli.common import cli_store, print_json, print_row, say, settle_format, write_output

_SUFFIXES = {".csv": "csv", ".xlsx": "xlsx"}


def cmd_patrol(args: argparse.Namespace) -> int:
    """``gridwatch patrol coverage [--from D] [--to D] [--as-of D] [--level L] [--all-days]``."""
    from geo.figures.patrols import patrol_coverage, patrol_period
    from geo.output.patrols import coverage_records, render_coverage

    period = patrol_period(args.date_from, args.date_to, args.as_of, working_days=not args.all_days)
    fmt = settle_format(args, _SUFFIXES, "csv") if args.output or args.format else "text"
    coverage = patrol_coverage(cli_store(args), args.level, period)
    if args.json:
        print_json(
            {
                "level": coverage.level,
                "from": period.first.isoformat(),
                "to": period.last.isoformat(),
                "as_of": period.as_of.isoformat(),
                "working_days": period.working_days,
                "totals": coverage.totals,
                "rows": coverage_records(coverage),
            }
        )
        return 0
    if fmt in ("csv", "xlsx"):
        write_output(render_coverage(coverage, fmt, args.lang), args)
        return 0
    rule = "工作日 / working days" if period.working_days else "每天 / every day"
    say(f"巡查覆盖率 / patrol coverage {period.first.isoformat()} – {period.due_until.isoformat()} ({rule})")
    print_row("code", "name", "due", "reported", "coverage", "missed")
    for row in coverage_records(coverage):
        rate = "—" if row["coverage"] is None else f"{row['coverage'] * 100:.1f}%"
        print_row(row["code"], row["name"] or "", row["days_due"], row["days_reported"], rate, row["missed"])
    if coverage.warning:
        say(f"注意 / note: {coverage.warning}", err=True)
    return 0


def add_patrol_parser(sub: Any) -> None:
    """The ``patrol`` command and its one action, ``coverage``."""
    p = sub.add_parser("patrol", help="日巡查 / daily patrol reports: coverage")
    actions = p.add_subparsers(dest="action", required=True)
    c = actions.add_parser("coverage", help="巡查覆盖率 / patrol coverage per unit")
    c.add_argument("--from", dest="date_from", metavar="DATE", help="开始日期（默认本月1日）/ first day")
    c.add_argument("--to", dest="date_to", metavar="DATE", help="结束日期（默认截至日）/ last day")
    c.add_argument(
        "--as-of", metavar="DATE", help="截至该日日终提交的巡查（默认今天）/ filings known by then"
    )
    c.add_argument("--level", help="层级（默认单元网格）/ level (default: the unit grid)")
    c.add_argument("--all-days", action="store_true", help="每天都应巡查（默认只算工作日）/ every day is due")
    c.add_argument("--format", choices=("csv", "xlsx"), help="输出格式 / output format")
    c.add_argument("-o", "--output", help="输出文件 / output file (.csv, .xlsx)")
    c.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_patrol)
