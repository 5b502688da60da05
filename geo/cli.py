"""``gridwatch`` command line: import surveys, manage batches and targets, export statistics.

Exit status: 0 on success, 2 when the input is rejected (one line on stderr says why,
in Chinese and English), 1 on an unexpected failure.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from geo.errors import GridwatchError, InputError

DEMO_DIR = Path(__file__).resolve().parent.parent / "data" / "shapefiles"

#: Demo files in load order: (layer, file name).
DEMO_FILES = (
    ("grid", "单元网格.shp"),
    ("demolition", "违法建设.shp"),
    ("demolition", "违法建设_面.shp"),
    ("parking", "停放点.shp"),
    ("charging", "充电棚.shp"),
)


def _store(args: argparse.Namespace) -> Any:
    from geo.store import Actor, open_store

    store = open_store(args.data)
    # the audit trail names whoever runs the command, from the command line
    store.actor = Actor(getattr(args, "user", None) or os.environ.get("USER") or "cli", "cli")
    return store


def _read_password(args: argparse.Namespace) -> str:
    """From stdin with --password-stdin (scripts), else asked twice without echo."""
    if getattr(args, "password_stdin", False):
        return sys.stdin.readline().rstrip("\r\n")
    import getpass

    first = getpass.getpass("密码 / password: ")
    if getpass.getpass("再次输入 / again: ") != first:
        raise InputError("两次输入的密码不一致", "the passwords do not match", code="password_mismatch")
    return first


def cmd_user(args: argparse.Namespace) -> int:
    from geo import accounts

    store = _store(args)
    if args.action == "list":
        users = store.list_users()
        if args.json:
            print(json.dumps([_user_dict(u) for u in users], ensure_ascii=False, indent=2))
            return 0
        for u in users:
            state = "" if u.active else " 已停用/disabled"
            if u.locked_until:
                state += f" 锁定至/locked until {u.locked_until}"
            print(f"{u.name}\t{u.role}\t{u.created_at}{state}")
        return 0
    if not args.name:
        raise InputError("请给出用户名", "give a user name", code="bad_user_name")
    if args.action == "add":
        user = accounts.add_user(store, args.name, args.role or "viewer", _read_password(args))
        print(f"已创建用户 / created: {user.name} ({user.role})")
    elif args.action == "passwd":
        accounts.set_password(store, args.name, _read_password(args))
        print(f"已修改密码 / password changed: {args.name}")
    elif args.action in ("disable", "enable"):
        accounts.set_active(store, args.name, args.action == "enable")
        print(f"{'已启用 / enabled' if args.action == 'enable' else '已停用 / disabled'}: {args.name}")
    elif args.action == "role":
        user = accounts.set_role(store, args.name, args.role or "")
        print(f"已修改角色 / role changed: {user.name} ({user.role})")
    return 0


def _user_dict(u: Any) -> dict[str, Any]:
    return {k: v for k, v in u.__dict__.items() if k != "password"}


def cmd_token(args: argparse.Namespace) -> int:
    from geo import accounts

    store = _store(args)
    if args.action == "add":
        token, secret = accounts.create_token(store, args.name, args.label or "")
        print(f"令牌 #{token.id}（只显示这一次 / shown once）:\n{secret}")
    elif args.action == "list":
        for t in store.list_tokens(args.name):
            state = f"revoked {t.revoked_at}" if t.revoked_at else f"last used {t.last_used or '-'}"
            print(f"#{t.id}\t{t.user}\t{t.label}\t{t.created_at}\t{state}")
    else:
        if args.id is None:
            raise InputError("请给出令牌编号 --id", "give the token number with --id", code="bad_token")
        accounts.revoke_token(store, args.id)
        print(f"已撤销令牌 / revoked: #{args.id}")
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    from geo.audit import write_csv

    store = _store(args)
    entries = store.audit_entries(limit=args.limit, user=args.by, action=args.action)
    if args.csv:
        write_csv(entries, sys.stdout)
        return 0
    for e in entries:
        print(
            f"{e.at}\t{e.user or '-'}\t{e.client or '-'}\t{e.action}\t{e.layer or ''}\t"
            f"{e.batch_id or ''}\t{json.dumps(e.counts, ensure_ascii=False)}\t{e.detail or ''}"
        )
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from geo.importer import import_file

    store = _store(args)
    report = import_file(
        store,
        args.layer,
        args.path,
        dry_run=args.dry_run,
        encoding=args.encoding,
        crs=args.crs,
        member=args.member,
        user=args.user or os.environ.get("USER"),
    )
    _print_report(report, args)
    return 0


def _print_report(report: Any, args: argparse.Namespace) -> None:
    if getattr(args, "json", False):
        print(json.dumps(report.to_dict(), ensure_ascii=False, indent=2, default=str))
    else:
        print(report.summary(args.lang))


def cmd_batches(args: argparse.Namespace) -> int:
    store = _store(args)
    rows = [b.to_dict() for b in store.batches(args.layer)]
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
        return 0
    head = ("批次", "图层", "文件", "时间", "用户", "状态", "读取", "新增", "更新", "未变", "拒绝")
    print("\t".join(head))
    for b in rows:
        status = "有效" if b["status"] == "active" else "已回滚"
        print(
            "\t".join(
                str(x)
                for x in (
                    b["id"],
                    b["layer"],
                    b["source_name"],
                    b["created_at"],
                    b["user"] or "",
                    status,
                    b["rows_read"],
                    b["added"],
                    b["updated"],
                    b["unchanged"],
                    b["rejected"],
                )
            )
        )
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    from geo.batches import rollback

    store = _store(args)
    batch = rollback(store, args.batch)
    print(f"已回滚批次 {batch.id}（{batch.layer}，{batch.source_name}） / rolled back batch {batch.id}")
    return 0


def cmd_targets(args: argparse.Namespace) -> int:
    from geo.batches import load_targets

    store = _store(args)
    report = load_targets(store, args.path, user=args.user or os.environ.get("USER"), dry_run=args.dry_run)
    _print_report(report, args)
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    from geo.export import get_renderer
    from geo.report import build_report
    from geo.tally import LEVELS, Filters

    store = _store(args)
    renderer = get_renderer(args.format)
    if args.monthly:
        return _monthly(store, renderer, args)
    levels = list(LEVELS) if renderer.all_levels and not args.level_given else [args.level]
    filters = Filters(within=args.within) if args.within else None
    report = build_report(
        store, levels, args.layer or None, args.as_of, filters, with_geometry=renderer.needs_geometry
    )
    _write(renderer.render(report, args.level if args.level in levels else levels[0]), args)
    return 0


def _monthly(store: Any, renderer: Any, args: argparse.Namespace) -> int:
    from geo.export import StatsReport
    from geo.tally import column_labels, monthly, survey_specs

    if renderer.needs_geometry:
        raise InputError(
            "逐月统计只能导出为 csv、xlsx 或 json", "monthly series export as csv, xlsx or json only"
        )
    start, _, end = (args.monthly if args.monthly != "auto" else "").partition(":")
    table = monthly(store, args.level, args.layer or None, start or None, end or None, code=args.within)
    labels = {"month": ("月份", "Month"), **column_labels(survey_specs(args.layer or None))}
    report = StatsReport(
        levels={args.level: table}, columns=labels, as_of=str(table["month"].max()) if len(table) else ""
    )
    _write(renderer.render(report, args.level), args)
    return 0


def _write(data: bytes, args: argparse.Namespace) -> None:
    if args.output and args.output != "-":
        Path(args.output).write_bytes(data)
        print(f"已写入 {args.output} / wrote {args.output}", file=sys.stderr)
    elif args.format in ("xlsx", "gpkg", "shp"):
        raise InputError(
            f"{args.format} 为二进制格式，请用 -o 指定输出文件", f"{args.format} is binary: pass -o FILE"
        )
    else:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()


def cmd_demo(args: argparse.Namespace) -> int:
    from geo.batches import load_targets
    from geo.importer import import_file

    store = _store(args)
    src = Path(args.source) if args.source else DEMO_DIR
    for layer, name in DEMO_FILES:
        path = src / name
        if not path.exists():
            raise InputError(f"找不到示例文件: {path}", f"demo file missing: {path}", code="file_not_found")
        report = import_file(store, layer, path, user="demo")
        print(
            report.summary(args.lang).splitlines()[0]
            if report.status == "duplicate"
            else report.summary(args.lang)
        )
    targets = src / "targets.csv"
    if targets.exists():
        report = load_targets(store, targets, user="demo")
        print(report.summary(args.lang).splitlines()[0])
    print(f"示例区已载入 {store.location} / demo district loaded into {store.location}")
    return 0


def cmd_grid_generate(args: argparse.Namespace) -> int:
    import geopandas as gpd

    from geo.gridgen import generate_grid

    try:
        boundary = gpd.read_file(args.boundary)
        communities = gpd.read_file(args.communities) if args.communities else None
    except Exception as exc:  # GDAL errors of many kinds
        raise InputError(f"无法读取边界文件: {args.boundary}", f"cannot read boundary: {exc}") from exc
    if boundary.crs is None:
        raise InputError(
            "边界文件没有坐标系（缺少 .prj）", "the boundary file has no CRS (.prj missing)", code="bad_crs"
        )
    grid = generate_grid(
        boundary, size=args.size, shape=args.shape, communities=communities, admin_code=args.admin_code
    )
    out = Path(args.output)
    if out.suffix.lower() == ".shp":
        grid.to_file(out, engine="pyogrio", encoding="GBK")
    else:
        grid.to_file(out, engine="pyogrio")
    print(f"已生成 {len(grid)} 个单元网格 → {out} / generated {len(grid)} unit grids → {out}")
    if args.load:
        from geo.importer import import_file

        report = import_file(_store(args), "grid", out, user=args.user)
        print(report.summary(args.lang))
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from server import create_app

    config: dict[str, Any] = {}
    if args.data:
        config["GRIDWATCH_DATA"] = args.data
    app = create_app(config)
    app.run(host=args.host, port=args.port, debug=args.debug, threaded=True)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="gridwatch", description="网格化管理统计 / grid-management statistics")
    p.add_argument("--data", help="数据目录或 .gpkg 文件（默认 $GRIDWATCH_DATA 或 ./var/gridwatch）")
    p.add_argument("--lang", choices=("zh", "en"), default=os.environ.get("GRIDWATCH_LANG", "zh"))
    sub = p.add_subparsers(dest="command", required=True)

    d = sub.add_parser("demo", help="载入示例区 / load the demo district")
    d.add_argument("--source", help="示例数据目录 (default: data/shapefiles)")
    d.set_defaults(func=cmd_demo)

    i = sub.add_parser("import", help="导入调查文件 / import a survey file")
    i.add_argument("layer")
    i.add_argument("path")
    i.add_argument("--encoding", help="DBF/CSV 编码，如 GBK")
    i.add_argument("--crs", help="源坐标系：EPSG:4548、ESRI 名称、WKT 或 gcj02")
    i.add_argument("--member", help="压缩包中的图层文件名")
    i.add_argument("--dry-run", action="store_true", help="只检查，不写入 / check only")
    i.add_argument("--json", action="store_true")
    i.add_argument("--user")
    i.set_defaults(func=cmd_import)

    b = sub.add_parser("batches", help="导入批次 / list batches")
    b.add_argument("--layer")
    b.add_argument("--json", action="store_true")
    b.set_defaults(func=cmd_batches)

    r = sub.add_parser("rollback", help="回滚批次 / roll back a batch")
    r.add_argument("batch", type=int)
    r.set_defaults(func=cmd_rollback)

    t = sub.add_parser("targets", help="载入年度目标 / load targets (CSV/XLSX: code, layer, metric, target)")
    t.add_argument("path")
    t.add_argument("--dry-run", action="store_true")
    t.add_argument("--json", action="store_true")
    t.add_argument("--user")
    t.set_defaults(func=cmd_targets)

    s = sub.add_parser("stats", help="统计 / statistics")
    s.add_argument("--level", choices=("grid", "community", "street", "district"), default=None)
    s.add_argument("--layer", action="append", help="图层（可重复）")
    s.add_argument("--as-of", help="统计截至日期 YYYY-MM-DD")
    s.add_argument("--within", help="只统计某社区/街道编码下的单元（与 --monthly 同用时为单元编码）")
    s.add_argument(
        "--monthly",
        nargs="?",
        const="auto",
        metavar="YYYY-MM:YYYY-MM",
        help="逐月统计（每月末截至）/ monthly series, as of each month end",
    )
    s.add_argument("--format", choices=("csv", "xlsx", "json", "geojson", "gpkg", "shp"), default="csv")
    s.add_argument("-o", "--output")
    s.set_defaults(func=cmd_stats)

    g = sub.add_parser("grid-generate", help="生成单元网格 / generate unit grids inside a boundary")
    g.add_argument("boundary")
    g.add_argument("--size", type=float, default=100.0, help="网格边长（米），默认 100")
    g.add_argument("--shape", choices=("square", "hex"), default="square")
    g.add_argument("--communities", help="社区边界文件（含 12 位社区编码）")
    g.add_argument("--admin-code", help="6 位行政区划代码（无社区边界时必填）")
    g.add_argument("-o", "--output", required=True)
    g.add_argument("--load", action="store_true", help="生成后导入为网格图层")
    g.add_argument("--user")
    g.set_defaults(func=cmd_grid_generate)

    u = sub.add_parser("user", help="用户 / accounts: add | list | disable | enable | passwd | role")
    u.add_argument("action", choices=("add", "list", "disable", "enable", "passwd", "role"))
    u.add_argument("name", nargs="?")
    u.add_argument("--role", choices=("viewer", "surveyor", "admin"))
    u.add_argument(
        "--password-stdin", action="store_true", help="从标准输入读取密码 / read the password from stdin"
    )
    u.add_argument("--json", action="store_true")
    u.set_defaults(func=cmd_user)

    k = sub.add_parser("token", help="API 令牌 / API tokens: add | list | revoke")
    k.add_argument("action", choices=("add", "list", "revoke"))
    k.add_argument("name", nargs="?", help="用户名 / user")
    k.add_argument("--label", help="用途说明 / what it is for")
    k.add_argument("--id", type=int, help="令牌编号（撤销时）/ token number to revoke")
    k.set_defaults(func=cmd_token)

    a = sub.add_parser("audit", help="操作日志 / audit trail")
    a.add_argument("--limit", type=int, default=100)
    a.add_argument("--by", help="只看某用户 / only this user")
    a.add_argument("--action", help="只看某操作 / only this action")
    a.add_argument("--csv", action="store_true")
    a.set_defaults(func=cmd_audit)

    v = sub.add_parser("serve", help="启动 Web 服务 / run the web service (development)")
    v.add_argument("--host", default="127.0.0.1")
    v.add_argument("--port", type=int, default=5000)
    v.add_argument("--debug", action="store_true")
    v.set_defaults(func=cmd_serve)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "stats":
        args.level_given = args.level is not None
        args.level = args.level or "grid"
    try:
        return int(args.func(args))
    except GridwatchError as exc:
        msg = exc.zh if args.lang == "zh" else exc.en
        print(f"gridwatch: {msg} / {exc.en}" if args.lang == "zh" else f"gridwatch: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("gridwatch: 已中断 / interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug or an environment problem: one line, traceback on request
        if os.environ.get("GRIDWATCH_DEBUG"):
            raise
        print(
            f"gridwatch: 内部错误 / internal error: {type(exc).__name__}: {exc} (GRIDWATCH_DEBUG=1 显示详情 / for details)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
