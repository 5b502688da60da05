"""Commands that write figures, tables and maps out: ``stats``, ``ledger`` and ``html-map``."""

from __future__ import annotations

import argparse
from typing import Any

from geo.cli.common import cli_store, say, settle_format, write_output
from geo.errors import InputError
from geo.reading.values import parse_date


def cmd_ledger(args: argparse.Namespace) -> int:
    """``gridwatch ledger``: a layer's features as a table."""
    from geo.output.ledger import render_ledger
    from geo.registry import get_layer

    settle_format(args, {".xlsx": "xlsx", ".csv": "csv", ".geojson": "geojson", ".json": "geojson"}, "xlsx")
    spec = get_layer(args.layer)
    store = cli_store(args)
    write_output(render_ledger(store, spec, args.format, lang=args.lang, headers=args.headers), args)
    return 0


#: Output extensions of ``stats`` and the formats they imply.
STATS_SUFFIXES = {
    ".csv": "csv",
    ".xlsx": "xlsx",
    ".json": "json",
    ".geojson": "geojson",
    ".gpkg": "gpkg",
    ".shp": "shp",
    ".zip": "shp",
}


def cmd_stats(args: argparse.Namespace) -> int:
    """``gridwatch stats``: the figures per level in a format, as of a day (or month by month)."""
    from geo.figures.hierarchy import level_names
    from geo.figures.report import build_report
    from geo.figures.tally import Filters
    from geo.figures.versions import parse_grid
    from geo.output.export import get_renderer
    from geo.store import clock

    renderer = get_renderer(settle_format(args, STATS_SUFFIXES, "csv"))
    # -o x.shp: that one level as the shapefile set x.shp/.shx/.dbf/.prj/.cpg (x.zip: every level)
    shapefile = renderer.name == "shp" and str(args.output).lower().endswith(".shp")
    as_of = parse_date(args.as_of)  # once, before anything is read: a bad date exits 2
    known_at = clock.parse_known_at(args.known_at)  # the configured zone: $GRIDWATCH_TIMEZONE
    grid = parse_grid(args.grid)
    store = cli_store(args)
    if args.monthly:
        return _monthly(store, renderer, args, known_at, grid)
    every = renderer.all_levels and not args.level_given and not shapefile
    levels = level_names() if every else [args.level]
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
    report.headers = args.headers
    if shapefile:
        from geo.output.to_shp import write_shapefile

        written = write_shapefile(report, args.level, args.output)
        say(f"已写入 / wrote {', '.join(str(p) for p in written)}", err=True)
        return 0
    write_output(renderer.render(report, args.level if args.level in levels else levels[0]), args)
    return 0


def _monthly(store: Any, renderer: Any, args: argparse.Namespace, known_at: Any, grid: Any) -> int:
    import pandas as pd

    from geo.figures.asof import choose_version, resolve_view
    from geo.figures.report import StatsReport, pin, provenance
    from geo.figures.tally import column_labels, monthly, survey_specs

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
        headers=args.headers,
    )
    if report.provenance is not None and months:
        report.provenance["as_of"] = f"{months[0]}..{months[-1]} (month ends)"
    write_output(renderer.render(report, args.level), args)
    return 0


def cmd_html_map(args: argparse.Namespace) -> int:
    """``gridwatch html-map``: one street's or community's map as a standalone HTML file."""
    from geo.figures.versions import parse_grid
    from geo.output.html_map import html_map
    from geo.store import clock

    as_of = parse_date(args.as_of)
    known_at = clock.parse_known_at(args.known_at)  # a bad time exits 2 before anything is read
    grid = parse_grid(args.grid)
    store = cli_store(args)
    page = html_map(
        store,
        args.within,
        args.layer,
        as_of,
        known_at=known_at,
        grid=grid,
        lang=args.lang if args.lang in ("zh", "en") else "zh",
    )
    write_output(page, args)
    return 0
