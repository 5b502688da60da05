"""The ``grid-generate`` command: unit grids drawn inside a boundary."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from geo.cli.common import cli_store, say
from geo.errors import InputError


def cmd_grid_generate(args: argparse.Namespace) -> int:
    """``gridwatch grid-generate``: unit grids drawn inside a boundary (and loaded with ``--load``)."""
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
    say(f"已生成 {len(grid)} 个单元网格 → {out} / generated {len(grid)} unit grids → {out}")
    if args.load:
        from geo.imports.importer import import_file
        from geo.registry import grid_spec

        report = import_file(cli_store(args), grid_spec().name, out, user=args.user)
        say(report.summary(args.lang))
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
