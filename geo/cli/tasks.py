"""``gridwatch task``: hand-over tasks -- list, show, their figures, and the overdue notices."""

from __future__ import annotations

import argparse
from typing import Any

from geo.cli.common import cli_store, print_json, print_row, row_id, say, write_output
from geo.reading.values import parse_date


def _day(text: str | None) -> Any:
    return parse_date(text) if text else None


def cmd_task(args: argparse.Namespace) -> int:
    """``task list|show|stats|overdue``."""
    from geo.figures.hierarchy import check_level
    from geo.figures.tasks import METRICS, task_stats, totals
    from geo.output.task_table import render_task_table
    from geo.store import clock
    from geo.tasks import handover

    store = cli_store(args)
    as_of = _day(args.as_of) or clock.today()
    if args.action == "list":
        tasks = handover.list_tasks(store, as_of=as_of, status=args.status)
        if args.json:
            print_json(tasks)
            return 0
        for t in tasks:
            c = t["counts"]
            whom = ",".join(t["area"]) or ""
            if t["assignee"]:
                whom = f"{whom} {t['assignee']}".strip()
            print_row(
                t["id"],
                t["number"],
                t["title"],
                whom,
                t["deadline"],
                t["status"],
                f"{c['verified']}/{c['handed_over']}",
                f"overdue {c['overdue']}",
            )
        return 0
    if args.action == "show":
        detail = handover.task_detail(store, args.id, as_of=as_of)
        if args.json:
            print_json(detail)
            return 0
        say(f"{detail['number']} {detail['title']} · {','.join(detail['area'])} {detail['assignee'] or ''}")
        say(f"期限 deadline {detail['deadline']} · {detail['status']}")
        for i in detail["items"]:
            late = " overdue" if i["overdue"] else ""
            print_row(
                i["id"],
                i["layer"],
                i["feature"],
                i["unit"] or "",
                i["deadline"],
                i["state"] + late,
                i["rework"],
            )
        return 0
    if args.action == "stats":
        frame = task_stats(store, as_of, args.level)
        if args.format in ("csv", "xlsx"):
            body, _mime, _name = render_task_table(frame, args.format, check_level(args.level), as_of)
            write_output(body, args)
            return 0
        if args.json:
            rows = [
                {k: (None if isinstance(v, float) and v != v else v) for k, v in r.items()}
                for r in frame.to_dict("records")
            ]
            print_json({"as_of": as_of.isoformat(), "rows": rows, "totals": totals(frame)})
            return 0
        print_row("code", *METRICS)
        for r in frame.to_dict("records"):
            print_row(r["code"], *("" if r[m] is None or r[m] != r[m] else r[m] for m in METRICS))
        print_row("total", *("" if v is None else v for v in totals(frame).values()))
        return 0
    told = handover.send_overdue(store, as_of)
    say(
        f"已通知逾期交办单 {len(told)} 张 / overdue notices queued for {len(told)} tasks: {' '.join(told)}".strip()
    )
    return 0


def add_task_parser(sub: Any) -> None:
    """The ``task`` command and its actions."""
    t = sub.add_parser("task", help="交办单 / hand-over tasks: list | show | stats | overdue")
    actions = t.add_subparsers(dest="action", required=True)
    ls = actions.add_parser("list", help="列出 / list the tasks, newest first")
    ls.add_argument("--status", choices=("open", "fixed", "verified", "overdue"))
    show = actions.add_parser("show", help="一张交办单及其条目 / one task and its items")
    show.add_argument("id", type=row_id)
    st = actions.add_parser("stats", help="交办统计 / task figures per unit")
    st.add_argument("--level", help="层级 / the grid level (default the unit grid)")
    st.add_argument("--format", choices=("text", "csv", "xlsx"), default="text")
    st.add_argument("-o", "--output", help="输出文件 / output file")
    od = actions.add_parser(
        "overdue", help="发送逾期通知（每张交办单一次）/ queue task.overdue once per task now overdue"
    )
    for p in (ls, show, st, od):
        p.add_argument("--as-of", dest="as_of", help="截至日期 / as of this day (default today)")
        p.add_argument("--json", action="store_true")
        p.add_argument("--user")
    t.set_defaults(func=cmd_task)
