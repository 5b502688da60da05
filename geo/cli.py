"""``gridwatch`` command line: import surveys, manage batches and targets, export statistics.

Exit status: 0 on success, 2 when the input is rejected — a bad argument value, a file that
cannot be read or is hostile (one line on stderr says why, in Chinese and English) — and 1
only on an unexpected failure.  Human-readable output shows control characters, escape
sequences and bidi controls from survey values as escapes (``\\x1b``, ``\\u202e``), so a
value cannot recolour, move or reorder what a terminal shows; ``--json`` escapes them too.
"""

from __future__ import annotations

import argparse
import csv
import errno
import json
import os
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from geo.errors import GridwatchError, InputError
from geo.reading.values import parse_date, terminal_safe
from geo.registry import grid_spec

DEMO_DIR = Path(__file__).resolve().parent.parent / "data" / "shapefiles"

#: The demo's files in load order (图层,文件: layer, file name), written by data/make_demo.py.
DEMO_LOAD_ORDER = "载入顺序.csv"
#: The demo's value map (字段,原值,映射为), applied to its survey files.
DEMO_VALUE_MAP = "值对应.csv"


# --------------------------------------------------------------------------- output


def _say(text: object = "", *, err: bool = False) -> None:
    """Print human-readable text with every control and bidi character escaped (line ends kept)."""
    print(terminal_safe(str(text)), file=sys.stderr if err else sys.stdout)


def _row(*values: object) -> None:
    """Print one tab-separated row; a value's own tabs and line ends are escaped too."""
    print("\t".join(terminal_safe("" if v is None else str(v), keep="") for v in values))


# C1 controls, DEL, lone surrogates, bidi controls and line separators that json.dumps with
# ensure_ascii=False writes as they are (it escapes only C0)
_JSON_UNSAFE = re.compile("[\x7f-\x9f\ud800-\udfff\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]")


def _print_json(obj: Any) -> None:
    text = json.dumps(obj, ensure_ascii=False, indent=2, default=str)
    print(_JSON_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text))


def _one_line(text: str) -> str:
    """A message on one line, safe for a terminal."""
    return terminal_safe(" ".join(str(text).split()), keep="")


# --------------------------------------------------------------------------- argument values


def _row_id(text: str) -> int:
    """A batch or token number: 1 to 2⁶³−1 (SQLite's integers)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"应为正整数 / not a whole number: {text!r}") from None
    if not 1 <= value <= 2**63 - 1:
        raise argparse.ArgumentTypeError(f"超出范围 / out of range: {text!r}")
    return value


def bounded_int(lo: int, hi: int) -> Any:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"应为整数 / not a whole number: {text!r}") from None
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"应在 {lo}–{hi} 之间 / must be within {lo}..{hi}: {text!r}")
        return value

    return parse


def _cell_size(text: str) -> float:
    """Grid cell size in metres: finite, 1 m to 100 km."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"应为数字 / not a number: {text!r}") from None
    if not 1.0 <= value <= 100_000.0:  # also refuses NaN and infinities
        raise argparse.ArgumentTypeError(f"应在 1–100000 米之间 / must be 1..100000 m: {text!r}")
    return value


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad argument in one bilingual line and exits 2."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"gridwatch: 参数有误 / bad arguments: {_one_line(message)}\n")
        raise SystemExit(2)


# --------------------------------------------------------------------------- commands


def _store(args: argparse.Namespace) -> Any:
    from geo.store.backends import open_store
    from geo.store.base import Actor

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
    from geo.store import accounts

    store = _store(args)
    if args.action == "list":
        users = store.list_users()
        if args.json:
            _print_json([_user_dict(u) for u in users])
            return 0
        for u in users:
            state = "" if u.active else " 已停用/disabled"
            if u.locked_until:
                state += f" 锁定至/locked until {u.locked_until}"
            _row(u.name, u.role, f"{u.created_at}{state}")
        return 0
    if not args.name:
        raise InputError("请给出用户名", "give a user name", code="bad_user_name")
    if args.action == "add":
        user = accounts.add_user(store, args.name, args.role or "viewer", _read_password(args))
        _say(f"已创建用户 / created: {user.name} ({user.role})")
    elif args.action == "passwd":
        accounts.set_password(store, args.name, _read_password(args))
        _say(f"已修改密码 / password changed: {args.name}")
    elif args.action in ("disable", "enable"):
        accounts.set_active(store, args.name, args.action == "enable")
        _say(f"{'已启用 / enabled' if args.action == 'enable' else '已停用 / disabled'}: {args.name}")
    elif args.action == "role":
        user = accounts.set_role(store, args.name, args.role or "")
        _say(f"已修改角色 / role changed: {user.name} ({user.role})")
    return 0


def _user_dict(u: Any) -> dict[str, Any]:
    return {k: v for k, v in u.__dict__.items() if k != "password"}


def cmd_token(args: argparse.Namespace) -> int:
    from geo.store import accounts

    store = _store(args)
    if args.action == "add":
        token, secret = accounts.create_token(store, args.name, args.label or "")
        _say(f"令牌 #{token.id}（只显示这一次 / shown once）:\n{secret}")
    elif args.action == "list":
        for t in store.list_tokens(args.name):
            state = f"revoked {t.revoked_at}" if t.revoked_at else f"last used {t.last_used or '-'}"
            _row(f"#{t.id}", t.user, t.label, t.created_at, state)
    else:
        if args.id is None:
            raise InputError("请给出令牌编号 --id", "give the token number with --id", code="bad_token")
        accounts.revoke_token(store, args.id)
        _say(f"已撤销令牌 / revoked: #{args.id}")
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    from geo.output.audit import write_csv

    store = _store(args)
    entries = store.audit_entries(limit=args.limit, user=args.by, action=args.action)
    if args.csv:
        write_csv(entries, sys.stdout)
        return 0
    for e in entries:
        _row(
            e.at,
            e.user or "-",
            e.client or "-",
            e.action,
            e.layer or "",
            e.batch_id or "",
            json.dumps(e.counts, ensure_ascii=False),
            e.detail or "",
        )
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from geo.imports.importer import import_file
    from geo.reading.encoding import normalize_encoding
    from geo.reading.mappings import parse_map, read_value_map

    if args.encoding:
        normalize_encoding(args.encoding)  # a name that is no text encoding: exit 2 before reading
    # mappings are checked before anything is read: a malformed one exits 2 at once
    value_map = [entry for path in args.value_map or () for entry in read_value_map(path)]
    value_map += [parse_map(text) for text in args.map or ()]
    field_map = dict(_field_override(text) for text in args.field or ())
    store = _store(args)
    if args.valid_from is not None:
        parse_date(args.valid_from)  # a date that is not one: exit 2 before reading
    report = import_file(
        store,
        args.layer,
        args.path,
        dry_run=args.dry_run,
        valid_from=args.valid_from,
        encoding=args.encoding,
        crs=args.crs,
        member=args.member,
        user=args.user or os.environ.get("USER"),
        field_map=field_map or None,
        value_map=value_map or None,
        remember=False if args.no_remember else None,
    )
    _print_report(report, args)
    return 0


def _field_override(text: str) -> tuple[str, str]:
    """``--field 列名=字段`` → (column, field); ``列名=`` leaves the column out."""
    column, eq, target = str(text).rpartition("=")
    if not eq or not column.strip():
        raise InputError(
            f"--field 应写作 列名=字段，如 拆除日期2=done_on: {_one_line(text)}",
            f"--field must read COLUMN=FIELD, e.g. 拆除日期2=done_on: {_one_line(text)}",
            code="bad_field_map",
        )
    return column.strip(), target.strip()


def cmd_ledger(args: argparse.Namespace) -> int:
    from geo.output.ledger import render_ledger
    from geo.registry import get_layer

    spec = get_layer(args.layer)
    store = _store(args)
    _write(render_ledger(store, spec, args.format, lang=args.lang), args)
    return 0


def cmd_mappings(args: argparse.Namespace) -> int:
    from geo.imports.importer import manual_mappings
    from geo.registry import get_layer

    store = _store(args)
    if args.action == "remove":
        if args.id is None:
            raise InputError("请给出值对应编号 --id", "give the mapping number with --id", code="bad_mapping")
        m = store.remove_value_map(args.id)
        _say(f"已删除值对应 #{m.id}（{m.layer} {m.field}: {m.raw} → {m.code}） / removed")
        return 0
    if args.action == "add":
        if not args.layer or not args.map:
            raise InputError(
                "请给出 --layer 和 --map 字段:原值=映射为",
                "give --layer and --map FIELD:RAW=CODE",
                code="bad_mapping",
            )
        from geo.reading.mappings import parse_map
        from geo.reading.values import vocab_key

        spec = get_layer(args.layer)
        _, entries = manual_mappings(spec, [parse_map(t) for t in args.map])
        with store.transaction():
            ids = [store.save_value_map(spec.name, f, vocab_key(raw), raw, code) for f, raw, code in entries]
        _say(f"已保存值对应 / saved: {', '.join(f'#{i}' for i in ids)}")
        return 0
    maps = store.value_maps(args.layer, include_removed=args.all)
    if args.json:
        _print_json([m.__dict__ for m in maps])
        return 0
    _row("编号", "图层", "字段", "原值", "映射为", "用户", "时间", "状态")
    for m in maps:
        _row(
            f"#{m.id}",
            m.layer,
            m.field,
            m.raw,
            m.code,
            m.user or "",
            m.created_at,
            "有效" if m.removed_at is None else f"已删除 {m.removed_at}",
        )
    return 0


def _print_report(report: Any, args: argparse.Namespace) -> None:
    if getattr(args, "json", False):
        _print_json(report.to_dict())
    else:
        _say(report.summary(args.lang))


def cmd_batches(args: argparse.Namespace) -> int:
    store = _store(args)
    rows = [b.to_dict() for b in store.batches(args.layer)]
    if args.json:
        _print_json(rows)
        return 0
    _row("批次", "图层", "文件", "时间", "用户", "状态", "读取", "新增", "更新", "未变", "拒绝")
    for b in rows:
        _row(
            b["id"],
            b["layer"],
            b["source_name"],
            b["created_at"],
            b["user"] or "",
            "有效" if b["status"] == "active" else "已回滚",
            b["rows_read"],
            b["added"],
            b["updated"],
            b["unchanged"],
            b["rejected"],
        )
    return 0


def cmd_grids(args: argparse.Namespace) -> int:
    from geo.store import clock

    store = _store(args)
    current = store.current_grid_version()
    rows = []
    for v in store.grid_versions():
        status = "rolled_back" if v.rolled_back_tx is not None else "active"
        rows.append(
            {
                "id": v.id,
                "valid_from": v.valid_from,
                "imported_at": v.created_at,
                "user": v.user,
                "units": v.units,
                "status": status,
                "current": current is not None and v.id == current.id,
                "parent": v.parent,
                "tx": v.tx,
                "rolled_back_tx": v.rolled_back_tx,
            }
        )
    if args.json:
        _print_json(rows)
        return 0
    _row("版本", "生效日期", "导入时间", "用户", "单元数", "状态")
    for r in rows:
        state = "当前" if r["current"] else ("有效" if r["status"] == "active" else "已回滚")
        _row(
            r["id"],
            r["valid_from"],
            clock.shown(r["imported_at"]) or "",
            r["user"] or "",
            r["units"],
            state,
        )
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    from geo.imports.batches import rollback

    store = _store(args)
    batch = rollback(store, args.batch)
    _say(f"已回滚批次 {batch.id}（{batch.layer}，{batch.source_name}） / rolled back batch {batch.id}")
    return 0


def cmd_targets(args: argparse.Namespace) -> int:
    from geo.imports.batches import load_targets

    store = _store(args)
    report = load_targets(store, args.path, user=args.user or os.environ.get("USER"), dry_run=args.dry_run)
    _print_report(report, args)
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    from geo.figures.hierarchy import level_names
    from geo.figures.report import build_report
    from geo.figures.tally import Filters
    from geo.figures.versions import parse_grid
    from geo.output.export import get_renderer
    from geo.store import clock

    renderer = get_renderer(args.format)
    as_of = parse_date(args.as_of)  # once, before anything is read: a bad date exits 2
    known_at = clock.parse_known_at(args.known_at)  # the configured zone: $GRIDWATCH_TIMEZONE
    grid = parse_grid(args.grid)
    store = _store(args)
    if args.monthly:
        return _monthly(store, renderer, args, known_at, grid)
    levels = level_names() if renderer.all_levels and not args.level_given else [args.level]
    filters = Filters(within=args.within) if args.within else None
    report = build_report(
        store,
        levels,
        args.layer or None,
        as_of,
        filters,
        with_geometry=renderer.needs_geometry,
        known_at=known_at,
        grid=grid,
    )
    report.csv_header = args.csv_header
    _write(renderer.render(report, args.level if args.level in levels else levels[0]), args)
    return 0


def _monthly(store: Any, renderer: Any, args: argparse.Namespace, known_at: Any, grid: Any) -> int:
    import pandas as pd

    from geo.figures.report import StatsReport, pin, provenance
    from geo.figures.tally import choose_version, column_labels, monthly, resolve_view, survey_specs

    if renderer.needs_geometry:
        raise InputError(
            "逐月统计只能导出为 csv、xlsx 或 json", "monthly series export as csv, xlsx or json only"
        )
    start, colon, end = (args.monthly if args.monthly != "auto" else "").partition(":")
    if args.monthly != "auto" and (not colon or ":" in end):
        raise InputError(
            f"--monthly 应为 起始月份:结束月份（如 2022-01:2022-12），而不是 {args.monthly}",
            f"--monthly takes FIRST:LAST months (e.g. 2022-01:2022-12), not {args.monthly}",
            code="bad_range",
        )
    view = pin(store, resolve_view(store, None, known_at, grid))
    table = monthly(
        store, args.level, args.layer or None, start or None, end or None, code=args.within, view=view
    )
    specs = survey_specs(args.layer or None)
    labels = {"month": ("月份", "Month"), **column_labels(specs)}
    months = sorted(set(table["month"])) if len(table) else []
    used = [
        choose_version(view, pd.Period(m, freq="M").end_time.date())
        if view.grid == "in_force"
        else view.version
        for m in months
    ]
    report = StatsReport(
        levels={args.level: table},
        columns=labels,
        as_of=str(table["month"].max()) if len(table) else "",
        provenance=provenance(store, view, used, [s.name for s in specs], None),
        csv_header=args.csv_header,
    )
    if report.provenance is not None and months:
        report.provenance["as_of"] = f"{months[0]}..{months[-1]} (month ends)"
    _write(renderer.render(report, args.level), args)
    return 0


def _write(data: bytes, args: argparse.Namespace) -> None:
    if args.output and args.output != "-":
        Path(args.output).write_bytes(data)
        _say(f"已写入 {args.output} / wrote {args.output}", err=True)
    elif args.format in ("xlsx", "gpkg", "shp"):
        raise InputError(
            f"{args.format} 为二进制格式，请用 -o 指定输出文件", f"{args.format} is binary: pass -o FILE"
        )
    else:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()


def cmd_demo(args: argparse.Namespace) -> int:
    from geo.imports.batches import load_targets
    from geo.imports.importer import import_file
    from geo.reading.mappings import read_value_map

    store = _store(args)
    src = Path(args.source) if args.source else DEMO_DIR
    # the demo's messy statuses are read as its value map says (and remembered for later uploads)
    mapping_file = src / DEMO_VALUE_MAP
    value_map = read_value_map(mapping_file) if mapping_file.exists() else []
    for layer, name in demo_files(src):
        path = src / name
        if not path.exists():
            raise InputError(f"找不到示例文件: {path}", f"demo file missing: {path}", code="file_not_found")
        own = [e for e in value_map if _has_vocab_field(layer, e[0])]
        report = import_file(store, layer, path, user="demo", value_map=own or None)
        _say(
            report.summary(args.lang).splitlines()[0]
            if report.status == "duplicate"
            else report.summary(args.lang)
        )
    targets = src / "targets.csv"
    if targets.exists():
        report = load_targets(store, targets, user="demo")
        _say(report.summary(args.lang).splitlines()[0])
    _say(f"示例区已载入 {store.location} / demo district loaded into {store.location}")
    return 0


def demo_files(src: Path) -> list[tuple[str, str]]:
    """The demo's files in load order, as (layer, file name).

    Parameters
    ----------
    src : Path
        A demo folder; its ``载入顺序.csv`` lists the files (the built-in demo's list when it has
        none).

    Returns
    -------
    list of (str, str)
        Layer name and file name (in ``src``) of each file, the grid first.
    """
    path = src / DEMO_LOAD_ORDER
    if not path.exists():
        path = DEMO_DIR / DEMO_LOAD_ORDER
    with path.open(encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.reader(fh))
    return [(row[0].strip(), row[1].strip()) for row in rows[1:] if len(row) >= 2]


def _has_vocab_field(layer: str, name: str) -> bool:
    """Whether ``layer`` has a vocabulary field called ``name`` (as :func:`field_name` reads it)."""
    from geo.imports.importer import field_name
    from geo.registry import get_layer

    spec = get_layer(layer)
    try:
        return field_name(spec, name) in spec.vocab_fields
    except InputError:
        return False


def cmd_grid_generate(args: argparse.Namespace) -> int:
    from geo.output.gridgen import generate_grid

    boundary = _read_outline(args.boundary)
    communities = _read_outline(args.communities) if args.communities else None
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
    _say(f"已生成 {len(grid)} 个单元网格 → {out} / generated {len(grid)} unit grids → {out}")
    if args.load:
        from geo.imports.importer import import_file

        report = import_file(_store(args), grid_spec().name, out, user=args.user)
        _say(report.summary(args.lang))
    return 0


def _read_outline(path: str) -> Any:
    """A boundary file as a GeoDataFrame with polygons; a clear error for anything else."""
    import warnings

    import geopandas as gpd

    try:
        with warnings.catch_warnings():  # GDAL's complaints about a broken file: the error says it
            warnings.simplefilter("ignore")
            frame = gpd.read_file(path, engine="pyogrio")
    except Exception as exc:  # GDAL errors of many kinds
        raise InputError(
            f"无法读取边界文件: {path}", f"cannot read the boundary file {path}: {exc}", code="unreadable"
        ) from exc
    if not isinstance(frame, gpd.GeoDataFrame) or frame.geometry.isna().all():
        raise InputError(
            f"边界文件中没有几何图形: {path}",
            f"the boundary file holds no geometry: {path}",
            code="no_geometry",
        )
    return frame


#: Adds commands of the layers above the engine (``serve``, added by :func:`server.main`).
Extension = Callable[[Any], None]


def build_parser(extend: Extension | None = None) -> argparse.ArgumentParser:
    """The engine's commands; ``extend`` gets the sub-command table to add its own."""
    p = _Parser(prog="gridwatch", description="网格化管理统计 / grid-management statistics")
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
    ld.add_argument("--format", choices=("xlsx", "csv", "geojson"), default="xlsx")
    ld.add_argument("-o", "--output")
    ld.set_defaults(func=cmd_ledger)

    m = sub.add_parser("mappings", help="已记住的值对应 / remembered value mappings: list | add | remove")
    m.add_argument("action", nargs="?", choices=("list", "add", "remove"), default="list")
    m.add_argument("--layer")
    m.add_argument("--map", action="append", metavar="字段:原值=映射为")
    m.add_argument("--id", type=_row_id, help="值对应编号（删除时）/ mapping number to remove")
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
    r.add_argument("batch", type=_row_id)
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
    s.add_argument("--format", choices=("csv", "xlsx", "json", "geojson", "gpkg", "shp"), default="csv")
    s.add_argument("-o", "--output")
    s.set_defaults(func=cmd_stats)

    g = sub.add_parser("grid-generate", help="生成单元网格 / generate unit grids inside a boundary")
    g.add_argument("boundary")
    g.add_argument("--size", type=_cell_size, default=100.0, help="网格边长（米），默认 100")
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
    k.add_argument("--id", type=_row_id, help="令牌编号（撤销时）/ token number to revoke")
    k.set_defaults(func=cmd_token)

    a = sub.add_parser("audit", help="操作日志 / audit trail")
    a.add_argument("--limit", type=bounded_int(1, 1_000_000), default=100)
    a.add_argument("--by", help="只看某用户 / only this user")
    a.add_argument("--action", help="只看某操作 / only this action")
    a.add_argument("--csv", action="store_true")
    a.set_defaults(func=cmd_audit)

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
    except SystemExit as exc:  # --help (0) or a bad argument (2, said in one line by _Parser)
        return exc.code if isinstance(exc.code, int) else 2
    if args.command == "stats":
        args.level_given = args.level is not None
        args.level = args.level or grid_spec().levels[0].name
    try:
        return int(args.func(args))
    except GridwatchError as exc:
        msg = exc.zh if args.lang == "zh" else exc.en
        line = f"{msg} / {exc.en}" if args.lang == "zh" else msg
        print(f"gridwatch: {_one_line(line)}", file=sys.stderr)
        return 2
    except OSError as exc:
        if exc.errno not in _PATH_ERRNOS:
            return _internal_error(exc)
        where = _one_line(str(exc.filename or ""))
        reason = _one_line(exc.strerror or type(exc).__name__)
        print(f"gridwatch: 无法读写文件 / cannot use the file: {where} ({reason})", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("gridwatch: 已中断 / interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        return _internal_error(exc)


def _internal_error(exc: BaseException) -> int:
    """A bug or an environment problem: one line, the traceback with GRIDWATCH_DEBUG=1."""
    if os.environ.get("GRIDWATCH_DEBUG"):
        raise exc
    print(
        f"gridwatch: 内部错误 / internal error: {_one_line(f'{type(exc).__name__}: {exc}')} "
        "(GRIDWATCH_DEBUG=1 显示详情 / for details)",
        file=sys.stderr,
    )
    return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
