"""Commands that bring data in: ``import``, ``mappings``, ``targets`` and ``demo``."""

from __future__ import annotations

import argparse
import csv
import os
from pathlib import Path

from geo.cli.common import cli_store, one_line, print_json, print_report, print_row, say
from geo.errors import InputError
from geo.reading.values import parse_date

DEMO_DIR = Path(__file__).resolve().parents[2] / "data" / "shapefiles"

#: The demo's files in load order (图层,文件: layer, file name), written by data/make_demo.py.
DEMO_LOAD_ORDER = "载入顺序.csv"
#: The demo's value map (字段,原值,映射为), applied to its survey files.
DEMO_VALUE_MAP = "值对应.csv"


def cmd_import(args: argparse.Namespace) -> int:
    """``gridwatch import``: import a survey file into a layer (or check it with ``--dry-run``)."""
    from geo.imports.importer import import_file
    from geo.reading.charsets import normalize_encoding
    from geo.reading.mappings import parse_map, read_value_map

    if args.encoding:
        normalize_encoding(args.encoding)  # a name that is no text encoding: exit 2 before reading
    # mappings are checked before anything is read: a malformed one exits 2 at once
    value_map = [entry for path in args.value_map or () for entry in read_value_map(path)]
    value_map += [parse_map(text) for text in args.map or ()]
    field_map = dict(_field_override(text) for text in args.field or ())
    store = cli_store(args)
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
    print_report(report, args)
    return 0


def _field_override(text: str) -> tuple[str, str]:
    """``--field 列名=字段`` → (column, field); ``列名=`` leaves the column out."""
    column, eq, target = str(text).rpartition("=")
    if not eq or not column.strip():
        raise InputError(
            f"--field 应写作 列名=字段，如 拆除日期2=done_on: {one_line(text)}",
            f"--field must read COLUMN=FIELD, e.g. 拆除日期2=done_on: {one_line(text)}",
            code="bad_field_map",
        )
    return column.strip(), target.strip()


def cmd_mappings(args: argparse.Namespace) -> int:
    """``gridwatch mappings``: list, add or remove the value mappings remembered."""
    from geo.imports.columns import manual_mappings
    from geo.registry import get_layer

    store = cli_store(args)
    if args.action == "remove":
        if args.id is None:
            raise InputError("请给出值对应编号 --id", "give the mapping number with --id", code="bad_mapping")
        m = store.remove_value_map(args.id)
        say(f"已删除值对应 #{m.id}（{m.layer} {m.field}: {m.raw} → {m.code}） / removed")
        return 0
    if args.action == "add":
        if not args.layer or not args.map:
            raise InputError(
                "请给出 --layer 和 --map 字段:原值=映射为",
                "give --layer and --map FIELD:RAW=CODE",
                code="bad_mapping",
            )
        from geo.reading.mappings import parse_map
        from geo.reading.vocab import vocab_key

        spec = get_layer(args.layer)
        _, entries = manual_mappings(spec, [parse_map(t) for t in args.map])
        with store.transaction():
            ids = [store.save_value_map(spec.name, f, vocab_key(raw), raw, code) for f, raw, code in entries]
        say(f"已保存值对应 / saved: {', '.join(f'#{i}' for i in ids)}")
        return 0
    maps = store.value_maps(args.layer, include_removed=args.all)
    if args.json:
        print_json([m.__dict__ for m in maps])
        return 0
    print_row("编号", "图层", "字段", "原值", "映射为", "用户", "时间", "状态")
    for m in maps:
        print_row(
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


def cmd_targets(args: argparse.Namespace) -> int:
    """``gridwatch targets``: load a table of targets."""
    from geo.imports.batches import load_targets

    store = cli_store(args)
    report = load_targets(store, args.path, user=args.user or os.environ.get("USER"), dry_run=args.dry_run)
    print_report(report, args)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """``gridwatch demo``: load the demo district, its value map and targets (twice changes nothing)."""
    from geo.imports.batches import load_targets
    from geo.imports.importer import import_file
    from geo.reading.mappings import read_value_map

    store = cli_store(args)
    src = Path(args.source) if args.source else DEMO_DIR
    # the demo's messy statuses are read as its value map says (and remembered for later uploads)
    mapping_file = src / DEMO_VALUE_MAP
    value_map = read_value_map(mapping_file) if mapping_file.exists() else []
    for layer, name, valid_from in demo_files(src):
        path = src / name
        if not path.exists():
            raise InputError(f"找不到示例文件: {path}", f"demo file missing: {path}", code="file_not_found")
        own = [e for e in value_map if _has_vocab_field(layer, e[0])]
        report = import_file(store, layer, path, user="demo", value_map=own or None, valid_from=valid_from)
        say(
            report.summary(args.lang).splitlines()[0]
            if report.status == "duplicate"
            else report.summary(args.lang)
        )
    targets = src / "targets.csv"
    if targets.exists():
        report = load_targets(store, targets, user="demo")
        say(report.summary(args.lang).splitlines()[0])
    from geo.store.credentials import shown_location

    where = shown_location(store.location)
    say(f"示例区已载入 {where} / demo district loaded into {where}")
    return 0


def _has_vocab_field(layer: str, name: str) -> bool:
    """Whether ``layer`` has a vocabulary field called ``name`` (as :func:`geo.imports.fields.field_name` reads it)."""
    from geo.imports.fields import field_name
    from geo.registry import get_layer

    spec = get_layer(layer)
    try:
        return field_name(spec, name) in spec.vocab_fields
    except InputError:
        return False


def demo_files(src: Path) -> list[tuple[str, str, str | None]]:
    """The demo's files in load order, as (layer, file name, first day in force).

    Parameters
    ----------
    src : Path
        A demo folder; its ``载入顺序.csv`` lists the files (the built-in demo's list when it has
        none).

    Returns
    -------
    list of (str, str, str or None)
        Layer name and file name (in ``src``) of each file, the grid first, and for a grid the
        day its version is in force from (the list's third column, 生效日期; None: the day of
        loading), so that figures as of the demo's survey days count on it.
    """
    path = src / DEMO_LOAD_ORDER
    if not path.exists():
        path = DEMO_DIR / DEMO_LOAD_ORDER
    with path.open(encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.reader(fh))
    return [
        (row[0].strip(), row[1].strip(), (row[2].strip() if len(row) > 2 else "") or None)
        for row in rows[1:]
        if len(row) >= 2
    ]
