"""``gridwatch store copy SRC DST``: move a whole store into an empty one, of the same backend
or another (see :mod:`geo.store.copy`), and check the copy with the engine's figures."""

from __future__ import annotations

import argparse

from geo.cli.common import say
from geo.store.base import data_dir


def cmd_store(args: argparse.Namespace) -> int:
    """``gridwatch store copy``: copy SRC into the empty DST, checked; prints what was copied."""
    from geo.figures.compare import compare_figures
    from geo.store.backends import Location
    from geo.store.copy import copy_store, data_for

    default = data_dir(args.data) if args.data else data_dir()
    source = Location(args.source, data_for(args.source, args.source_data, default))
    target = Location(args.target, data_for(args.target, args.target_data, default))
    result = copy_store(source, target, verify=compare_figures)
    say(result.summary())
    return 0


def add_store_parser(sub: argparse._SubParsersAction) -> None:
    """The ``store`` command and its actions."""
    st = sub.add_parser("store", help="存储 / the store: copy")
    actions = st.add_subparsers(dest="action", required=True)
    c = actions.add_parser(
        "copy",
        help="把整个存储复制到空的存储（可跨后端）/ copy a whole store into an empty one (across backends)",
    )
    c.add_argument(
        "source", metavar="SRC", help=".gpkg 文件、数据目录或 postgresql://… / a .gpkg, a folder or a URL"
    )
    c.add_argument("target", metavar="DST", help="空的目标存储 / the empty store to copy into")
    c.add_argument(
        "--source-data",
        metavar="DIR",
        help="源的数据目录（存档）；默认 .gpkg 所在目录，网址则为 --data / the source's data directory",
    )
    c.add_argument(
        "--target-data",
        metavar="DIR",
        help="目标的数据目录；默认 .gpkg 所在目录，网址则为 --data / the target's data directory",
    )
    c.set_defaults(func=cmd_store)
