"""``gridwatch`` command line: import surveys, manage batches and targets, export statistics.

Exit status: 0 on success, 2 when the input is rejected — a bad argument value, a file that
cannot be read or is hostile (one line on stderr says why, in Chinese and English) — and 1
only on an unexpected failure.  Human-readable output shows control characters, escape
sequences and bidi controls from survey values as escapes (``\\x1b``, ``\\u202e``), so a
value cannot recolour, move or reorder what a terminal shows; ``--json`` escapes them too.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from geo.cli.accounts import cmd_audit, cmd_token, cmd_user
from geo.cli.batches import cmd_batches, cmd_grids, cmd_rollback
from geo.cli.common import Parser, bounded_int, cell_size, one_line, row_id
from geo.cli.figures import cmd_html_map, cmd_ledger, cmd_stats
from geo.cli.gridgen import cmd_grid_generate
from geo.cli.imports import cmd_demo, cmd_import, cmd_mappings, cmd_targets
from geo.cli.patrols import add_patrol_parser
from geo.cli.report import add_report_parser
from geo.cli.stores import add_store_parser
from geo.cli.tasks import add_task_parser
from geo.cli.webhooks import add_webhook_parser
from geo.cli.workdays import add_calendar_parser
from geo.errors import GridwatchError
from geo.registry import grid_spec, layer_name, layer_names

#: Adds commands of the layers above the engine (``serve``, added by :func:`server.main`).
Extension = Callable[[Any], None]


def build_parser(extend: Extension | None = None) -> argparse.ArgumentParser:
    """The engine's commands; ``extend`` gets the sub-command table to add its own."""
    p = Parser(prog="gridwatch", description="网格化管理统计 / grid-management statistics")
    p.add_argument(
        "--data",
        help="数据目录（存档与暂存的上传；默认 $GRIDWATCH_DATA 或 ./var/gridwatch）或 .gpkg 文件"
        " / data directory (archived and staged uploads) or a .gpkg file",
    )
    p.add_argument(
        "--store",
        metavar="LOCATION",
        help="存储位置：.gpkg 文件或网址，优先于 --data 所指（默认 $GRIDWATCH_STORE，否则数据目录中的"
        " gridwatch.gpkg）/ the store: a .gpkg file or a URL; wins over the one --data implies",
    )
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
    i.add_argument(
        "--valid-from",
        metavar="DATE",
        help="网格版本生效日期（仅单元网格；默认导入当日，不能晚于今天）/ the day a grid version is in force from",
    )
    i.add_argument(
        "--map",
        action="append",
        metavar="字段:原值=映射为",
        help="值对应，如 当前状态:暂缓拆除=已下发通知（可重复）/ FIELD:RAW=CODE, repeatable",
    )
    i.add_argument("--value-map", action="append", metavar="FILE.csv", help="值对应表：字段,原值,映射为")
    i.add_argument("--field", action="append", metavar="列名=字段", help="字段对应，如 拆除日期2=done_on")
    i.add_argument(
        "--no-remember", action="store_true", help="值对应只用于本次导入 / do not remember the mappings"
    )
    i.add_argument("--json", action="store_true")
    i.add_argument("--user")
    i.set_defaults(func=cmd_import)

    ld = sub.add_parser("ledger", help="要素台账 / a layer's features as a table (CSV/XLSX/GeoJSON)")
    ld.add_argument("layer")
    ld.add_argument(
        "--format",
        choices=("xlsx", "csv", "geojson"),
        help="默认按 -o 的扩展名，否则 xlsx / default: from -o's extension, else xlsx",
    )
    ld.add_argument(
        "--headers",
        choices=("zh", "en", "code"),
        help="表头：中文、英文或字段名（默认按 --lang）/ headers: Chinese, English or field names (default: --lang)",
    )
    ld.add_argument("-o", "--output")
    ld.set_defaults(func=cmd_ledger)

    m = sub.add_parser("mappings", help="已记住的值对应 / remembered value mappings: list | add | remove")
    m.add_argument("action", nargs="?", choices=("list", "add", "remove"), default="list")
    m.add_argument("--layer")
    m.add_argument("--map", action="append", metavar="字段:原值=映射为")
    m.add_argument("--id", type=row_id, help="值对应编号（删除时）/ mapping number to remove")
    m.add_argument("--all", action="store_true", help="含已删除的 / include removed ones")
    m.add_argument("--json", action="store_true")
    m.add_argument("--user")
    m.set_defaults(func=cmd_mappings)

    b = sub.add_parser("batches", help="导入批次 / list batches")
    b.add_argument("--layer")
    b.add_argument("--json", action="store_true")
    b.set_defaults(func=cmd_batches)

    gv = sub.add_parser("grids", help="网格版本 / grid versions")
    gv.add_argument("--json", action="store_true")
    gv.set_defaults(func=cmd_grids)

    r = sub.add_parser("rollback", help="回滚批次 / roll back a batch")
    r.add_argument("batch", type=row_id)
    r.add_argument(
        "--drop-edits",
        action="store_true",
        help="连同之后对这些要素的编辑一起回滚 / also roll back the later edits of its features",
    )
    r.set_defaults(func=cmd_rollback)

    t = sub.add_parser("targets", help="载入年度目标 / load targets (CSV/XLSX: code, layer, metric, target)")
    t.add_argument("path")
    t.add_argument("--dry-run", action="store_true")
    t.add_argument("--json", action="store_true")
    t.add_argument("--user")
    t.set_defaults(func=cmd_targets)

    s = sub.add_parser("stats", help="统计 / statistics")
    s.add_argument("--level", choices=[lv.name for lv in grid_spec().levels], default=None)
    s.add_argument("--layer", action="append", help="图层（可重复）")
    s.add_argument("--as-of", help="统计截至日期：2022-06-30、20220630、2022年6月30日 …")
    s.add_argument("--within", help="只统计某社区/街道编码下的单元（与 --monthly 同用时为单元编码）")
    s.add_argument(
        "--monthly",
        nargs="?",
        const="auto",
        metavar="YYYY-MM:YYYY-MM",
        help="逐月统计（每月末截至）/ monthly series, as of each month end",
    )
    s.add_argument(
        "--known-at",
        metavar="TIME",
        help="按当时存储中的数据统计：2024-05-01T10:30、2024-05-01T10:30+08:00 或日期（当日结束）"
        " / the figures as the store held them then (ISO 8601; without a zone: $GRIDWATCH_TIMEZONE)",
    )
    s.add_argument(
        "--grid",
        metavar="current|ID",
        help="按当前网格或指定网格版本统计（默认：截至日期当日生效的版本）/ count on the current grid or a version",
    )
    s.add_argument(
        "--csv-header",
        action="store_true",
        help="CSV 开头加 # 注释行说明数据来源 / start the CSV with # lines saying what it was computed from",
    )
    s.add_argument(
        "--headers",
        choices=("code", "zh", "en"),
        default="code",
        help="CSV 表头：字段名（默认，便于脚本）、中文或英文 / CSV headers: column names (default), Chinese or English",
    )
    s.add_argument(
        "--format",
        choices=("csv", "xlsx", "json", "geojson", "gpkg", "shp"),
        help="默认按 -o 的扩展名（.xlsx .json .geojson .gpkg .shp .zip），否则 csv；--format shp -o x.shp 写出 "
        "x.shp/.shx/.dbf/.prj/.cpg，-o x.zip 写出各级的 zip / default: from -o's extension, else csv",
    )
    s.add_argument("-o", "--output")
    s.set_defaults(func=cmd_stats)

    hm = sub.add_parser(
        "html-map",
        help="单张地图 HTML / one street's or community's map as a standalone HTML file (for e-mail)",
    )
    hm.add_argument("--within", required=True, help="街道或社区编码 / a street or community code")
    hm.add_argument("--layer", help="图层（默认第一个调查图层）/ survey layer (default: the first)")
    hm.add_argument("--as-of", help="截至日期 / as of this day")
    hm.add_argument(
        "--known-at", metavar="TIME", help="按当时存储中的数据 / the figures as the store held them then"
    )
    hm.add_argument("--grid", metavar="current|ID", help="网格版本 / grid version")
    hm.add_argument("-o", "--output", required=True, help="输出文件 FILE.html")
    hm.set_defaults(func=cmd_html_map, format="html")

    add_report_parser(sub)
    add_store_parser(sub)

    g = sub.add_parser("grid-generate", help="生成单元网格 / generate unit grids inside a boundary")
    g.add_argument("boundary")
    g.add_argument("--size", type=cell_size, default=100.0, help="网格边长（米），默认 100")
    g.add_argument("--shape", choices=("square", "hex"), default="square")
    g.add_argument("--communities", help="社区边界文件（含 12 位社区编码）")
    g.add_argument("--admin-code", help="6 位行政区划代码（无社区边界时必填）")
    g.add_argument("-o", "--output", required=True)
    g.add_argument("--load", action="store_true", help="生成后导入为网格图层")
    g.add_argument("--user")
    g.set_defaults(func=cmd_grid_generate)

    u = sub.add_parser("user", help="用户 / accounts: add | list | disable | enable | passwd | role | area")
    u.add_argument("action", choices=("add", "list", "disable", "enable", "passwd", "role", "area"))
    u.add_argument("name", nargs="?")
    u.add_argument("--role", choices=("viewer", "surveyor", "admin"))
    u.add_argument("--area", help="add: 限定区域（街道/社区/网格编码，逗号分隔） / bound to these codes")
    u.add_argument(
        "--set", dest="area_set", metavar="CODE[,CODE…]", help="area: 限定区域 / bind to these codes"
    )
    u.add_argument("--clear", action="store_true", help="area: 清除区域（全区） / the whole district again")
    u.add_argument(
        "--sees-district", choices=("yes", "no"), help="area: 可看全区统计 / may see the whole district"
    )
    u.add_argument(
        "--password-stdin", action="store_true", help="从标准输入读取密码 / read the password from stdin"
    )
    u.add_argument("--json", action="store_true")
    u.set_defaults(func=cmd_user)

    k = sub.add_parser("token", help="API 令牌 / API tokens: add | list | revoke")
    k.add_argument("action", choices=("add", "list", "revoke"))
    k.add_argument("name", nargs="?", help="用户名 / user")
    k.add_argument("--label", help="用途说明 / what it is for")
    k.add_argument("--id", type=row_id, help="令牌编号（撤销时）/ token number to revoke")
    k.set_defaults(func=cmd_token)

    a = sub.add_parser("audit", help="操作日志 / audit trail")
    a.add_argument("--limit", type=bounded_int(1, 1_000_000), default=100)
    a.add_argument("--by", help="只看某用户 / only this user")
    a.add_argument("--action", help="只看某操作 / only this action")
    a.add_argument("--csv", action="store_true")
    a.set_defaults(func=cmd_audit)

    add_calendar_parser(sub)
    add_webhook_parser(sub)
    add_patrol_parser(sub)
    add_task_parser(sub)

    if extend is not None:
        extend(sub)
    return p


#: OS errors that mean a path given on the command line cannot be used (a bad argument, exit 2).
_PATH_ERRNOS = frozenset(
    {errno.ENOENT, errno.EISDIR, errno.ENOTDIR, errno.EACCES, errno.EPERM, errno.ENAMETOOLONG, errno.ELOOP}
)


def main(argv: Sequence[str] | None = None, extend: Extension | None = None) -> int:
    """Run the ``gridwatch`` command line; ``extend`` as for :func:`build_parser`."""
    parser = build_parser(extend)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a bad argument (2, said in one line by Parser)
        return exc.code if isinstance(exc.code, int) else 2
    if args.command == "stats":
        args.level_given = args.level is not None
        args.level = args.level or grid_spec().levels[0].name
    try:
        _layer_codes(args)
        return int(args.func(args))
    except GridwatchError as exc:
        msg = exc.zh if args.lang == "zh" else exc.en
        line = f"{msg} / {exc.en}" if args.lang == "zh" else msg
        print(f"gridwatch: {one_line(line)}", file=sys.stderr)
        return 2
    except OSError as exc:
        if exc.errno not in _PATH_ERRNOS:
            return _internal_error(exc)
        where = one_line(str(exc.filename or ""))
        reason = one_line(exc.strerror or type(exc).__name__)
        print(f"gridwatch: 无法读写文件 / cannot use the file: {where} ({reason})", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("gridwatch: 已中断 / interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        return _internal_error(exc)
    finally:
        for store in vars(args).get("opened_stores", ()):
            with contextlib.suppress(Exception):
                store.close()


def _layer_codes(args: argparse.Namespace) -> None:
    """``layer`` / ``--layer`` of any command as the layer's code: a layer may be named by its
    code, its Chinese or its English label (``--layer 违法建设``)."""
    value = getattr(args, "layer", None)
    if isinstance(value, str) and value:
        args.layer = layer_name(value)
    elif isinstance(value, list):
        args.layer = layer_names(value)


def _internal_error(exc: BaseException) -> int:
    """A bug or an environment problem: one line, the traceback with GRIDWATCH_DEBUG=1."""
    if os.environ.get("GRIDWATCH_DEBUG"):
        raise exc
    print(
        f"gridwatch: 内部错误 / internal error: {one_line(f'{type(exc).__name__}: {exc}')} "
        "(GRIDWATCH_DEBUG=1 显示详情 / for details)",
        file=sys.stderr,
    )
    return 1
