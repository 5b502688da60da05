"""What every command shares: terminal-safe output, argument values, the store."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path
from typing import Any, NoReturn

from geo.errors import InputError
from geo.reading.display import terminal_safe


def say(text: object = "", *, err: bool = False) -> None:
    """Print human-readable text with every control and bidi character escaped (line ends kept)."""
    print(terminal_safe(str(text)), file=sys.stderr if err else sys.stdout)


def print_row(*values: object) -> None:
    """Print one tab-separated row; a value's own tabs and line ends are escaped too."""
    print("\t".join(terminal_safe("" if v is None else str(v), keep="") for v in values))


# C1 controls, DEL, lone surrogates, bidi controls and line separators that json.dumps with
# ensure_ascii=False writes as they are (it escapes only C0)
_JSON_UNSAFE = re.compile("[\x7f-\x9f\ud800-\udfff\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]")


def print_json(obj: Any) -> None:
    """Print ``obj`` as JSON with every character a terminal would act on escaped."""
    text = json.dumps(obj, ensure_ascii=False, indent=2, default=str)
    print(_JSON_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text))


def one_line(text: str) -> str:
    """A message on one line, safe for a terminal."""
    return terminal_safe(" ".join(str(text).split()), keep="")


def row_id(text: str) -> int:
    """A batch or token number: 1 to 2⁶³−1 (SQLite's integers)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"应为正整数 / not a whole number: {text!r}") from None
    if not 1 <= value <= 2**63 - 1:
        raise argparse.ArgumentTypeError(f"超出范围 / out of range: {text!r}")
    return value


def bounded_int(lo: int, hi: int) -> Any:
    """An argparse type: a whole number from ``lo`` to ``hi``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"应为整数 / not a whole number: {text!r}") from None
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"应在 {lo}–{hi} 之间 / must be within {lo}..{hi}: {text!r}")
        return value

    return parse


def cell_size(text: str) -> float:
    """Grid cell size in metres: finite, 1 m to 100 km."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"应为数字 / not a number: {text!r}") from None
    if not 1.0 <= value <= 100_000.0:  # also refuses NaN and infinities
        raise argparse.ArgumentTypeError(f"应在 1–100000 米之间 / must be 1..100000 m: {text!r}")
    return value


class Parser(argparse.ArgumentParser):
    """argparse that reports a bad argument in one bilingual line and exits 2."""

    def error(self, message: str) -> NoReturn:
        """Report a bad argument as one bilingual line on stderr and exit with status 2 (no usage text)."""
        sys.stderr.write(f"gridwatch: 参数有误 / bad arguments: {one_line(message)}\n")
        raise SystemExit(2)


def cli_store(args: argparse.Namespace) -> Any:
    """The store of ``--store`` / ``--data`` (see :func:`geo.store.backends.locate`), its audit
    trail naming whoever runs the command; :func:`geo.cli.main` closes it when the command
    ends (a database connection is not left to the garbage collector)."""
    from geo.store.backends import locate, open_store
    from geo.store.interface.audit import Actor

    where = locate(args.data, getattr(args, "store", None))
    store = open_store(where.store, data=where.data)
    # the audit trail names whoever runs the command, from the command line
    store.actor = Actor(getattr(args, "user", None) or os.environ.get("USER") or "cli", "cli")
    vars(args).setdefault("opened_stores", []).append(store)
    return store


def print_report(report: Any, args: argparse.Namespace) -> None:
    """Print an import or targets report: as JSON with ``--json``, else its summary."""
    if getattr(args, "json", False):
        print_json(report.to_dict())
    else:
        say(report.summary(args.lang))


#: Binary formats: written only to a file named with one of these extensions.
BINARY_SUFFIXES = {"xlsx": (".xlsx",), "gpkg": (".gpkg",), "shp": (".shp", ".zip")}


def settle_format(args: argparse.Namespace, by_suffix: dict[str, str], default: str) -> str:
    """``--format`` of a command that writes ``-o``: as given, else from ``-o``'s extension
    (``x.xlsx`` → xlsx), else ``default``.  A format that contradicts the extension
    (``--format csv -o x.xlsx``) and a binary format written to a file without its extension
    are refused with a clear message.  Sets and returns ``args.format``."""
    output = args.output if args.output and args.output != "-" else None
    suffix = Path(output).suffix.lower() if output else ""
    implied = by_suffix.get(suffix)
    if args.format is None:
        args.format = implied or default
    elif implied is not None and implied != args.format:
        raise InputError(
            f"-o 的扩展名 {suffix} 与 --format {args.format} 不符（去掉 --format 即按扩展名写出 {implied}）",
            f"-o has the extension {suffix} but --format is {args.format} "
            f"(leave --format out to write {implied} as the name says)",
            code="format_mismatch",
        )
    wanted = BINARY_SUFFIXES.get(args.format)
    if output and wanted and suffix not in wanted:
        names = " 或 ".join(wanted)
        raise InputError(
            f"{args.format} 为二进制格式，-o 的文件名应以 {names} 结尾（当前: {Path(output).name}）",
            f"{args.format} is a binary format: -o must end in {' or '.join(wanted)} (got {Path(output).name})",
            code="format_mismatch",
        )
    return str(args.format)


def write_output(data: bytes, args: argparse.Namespace) -> None:
    """Write ``data`` to ``-o`` (a binary format needs one), else to stdout."""
    if args.output and args.output != "-":
        Path(args.output).write_bytes(data)
        say(f"已写入 {args.output} / wrote {args.output}", err=True)
    elif args.format in ("xlsx", "gpkg", "shp"):
        raise InputError(
            f"{args.format} 为二进制格式，请用 -o 指定输出文件", f"{args.format} is binary: pass -o FILE"
        )
    else:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
