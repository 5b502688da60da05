"""The ``report`` command: the monthly report (通报) as Word or PDF."""

from __future__ import annotations

import argparse
from typing import Any

from geo.cli.common import cli_store, say
from geo.errors import InputError
from geo.reading.values import parse_date
from geo.registry import grid_spec


def cmd_report(args: argparse.Namespace) -> int:
    """``gridwatch report``: the monthly report as of a day, written to ``-o``."""
    from pathlib import Path

    from geo.figures.versions import parse_grid
    from geo.output.report_doc import render_report
    from geo.store import clock

    as_of = parse_date(args.as_of)  # before anything is read: a bad date exits 2
    if as_of is None:
        raise InputError("请用 --as-of 给出统计截至日期", "give the as-of date with --as-of", code="bad_date")
    known_at = clock.parse_known_at(args.known_at)
    grid = parse_grid(args.grid)
    names = [_layer(n) for n in args.layer] if args.layer else None
    out = Path(args.output)
    if out.is_dir() or not out.parent.is_dir():  # said before minutes of drawing, not after
        raise InputError(
            f"无法写入 {args.output}：是目录或所在目录不存在",
            f"cannot write {args.output}: a folder, or its folder does not exist",
            code="bad_output",
        )
    store = cli_store(args)
    _, data = render_report(
        store, as_of, args.format, args.level, names, known_at, grid, lang=args.lang, source=args.source
    )
    out.write_bytes(data)
    say(f"已写入 {args.output} / wrote {args.output}", err=True)
    return 0


def _layer(name: str) -> str:
    """A layer by its name or its Chinese label (``违法建设``)."""
    import layers
    from geo.registry import get_layer

    for spec in layers.survey_layers():
        if name in (spec.label_zh, spec.label_en):
            return spec.name
    return get_layer(name).name


def add_report_parser(sub: Any) -> None:
    """Add ``report`` to the command table ``sub``."""
    r = sub.add_parser("report", help="月度通报 / the monthly report (docx or pdf)")
    r.add_argument("--as-of", required=True, help="统计截至日期：2022-06-30、20220630、2022年6月30日 …")
    levels = grid_spec().levels
    ranked = [lv.name for lv in levels[1:-1]] or [lv.name for lv in levels]
    r.add_argument(
        "--level",
        choices=ranked,
        default=None,
        help=f"排名层级（默认 {levels[min(2, len(levels) - 1)].name}）/ the level ranked",
    )
    r.add_argument("--layer", action="append", help="图层（可重复；默认全部调查图层）")
    r.add_argument("--known-at", metavar="TIME", help="按当时存储中的数据统计（同 stats）")
    r.add_argument("--grid", metavar="current|ID", help="按当前网格或指定网格版本统计（同 stats）")
    r.add_argument("--format", choices=("docx", "pdf"), default="docx")
    r.add_argument("--source", help="数据来源（写在首页）/ the data source named on the first page")
    r.add_argument("-o", "--output", required=True)
    r.set_defaults(func=cmd_report)
