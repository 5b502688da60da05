"""Generate a unit grid (单元网格) for a bureau that has none.

A regular tiling of squares or hexagons is laid over the district boundary, cut to
the boundary and, when a community layer is given, cut along community borders, so
every cell lies in one community.  Cells get 15-digit codes: 6-digit administrative
code + 3-digit street + 3-digit community + 3-digit sequence, the sequence running
west→east, north→south inside each community.

All geometry work happens in a projected CRS in metres: a geographic boundary is
projected to the CGCS2000 3° Gauss-Krüger zone (EPSG:4534–4554, no zone prefix) whose
central meridian is closest to the boundary's centroid.

This module checks the arguments and puts the steps together: the tiling and its clipping
are in :mod:`geo.output.gridgen_tiles`, the communities and the cells' codes in
:mod:`geo.output.gridgen_codes`.
"""

from __future__ import annotations

import math
import numbers
import re
from typing import Literal

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS
from shapely.geometry.base import BaseGeometry

from geo.errors import CRSError, InputError
from geo.output.gridgen_codes import area_field, code_cells, coded_levels, community_regions
from geo.output.gridgen_tiles import clip_tiles, drop_specks, polygonal, tiling
from geo.reading.crs import gk_zone_epsg

__all__ = ["OUTPUT_COLUMNS", "generate_grid"]


def _output_columns() -> tuple[str, ...]:
    unit, community, street, district = coded_levels()
    return (
        unit.code_field,
        unit.name_field,
        community.code_field,
        community.name_field,
        street.code_field,
        street.name_field,
        district.code_field,
        area_field(),
        "geometry",
    )


OUTPUT_COLUMNS: tuple[str, ...] = _output_columns()
"""Columns of the frame returned by :func:`generate_grid`, in order: the grid layer's code and
name fields of each level it declares (no district name), its area field and ``geometry``."""

# Polygonal pieces and holes below this fraction of a whole cell's area are overlay noise.
_SPECK = 1e-9
_CODE6 = re.compile(r"^\d{6}$")


def generate_grid(
    boundary: gpd.GeoDataFrame,
    size: float = 100.0,
    shape: Literal["square", "hex"] = "square",
    communities: gpd.GeoDataFrame | None = None,
    admin_code: str | None = None,
    community_code_field: str | None = None,
    community_name_field: str | None = None,
    street_name_field: str | None = None,
    origin: tuple[float, float] | None = None,
) -> gpd.GeoDataFrame:
    """Cut a district into coded unit-grid cells.

    The plane is tiled with squares or hexagons; each tile is intersected with the
    boundary (and with each community polygon), so the cells cover the boundary
    exactly, without gaps or overlaps.  Every polygonal piece is kept, however small:
    a tile cut by a concave boundary into separate parts stays one cell with a
    MultiPolygon geometry.  Only overlay noise is left out: tiles that merely touch the
    boundary along a line, and needle-thin pieces of at most ``1e-9·size²`` m².

    Parameters
    ----------
    boundary : GeoDataFrame
        District boundary polygon(s); all rows are unioned.  Must have a CRS.  A
        geographic CRS (degrees) is projected to the CGCS2000 3° Gauss-Krüger zone fitting
        the boundary's centroid (EPSG:4534–4554, e.g. EPSG:4548 for 118.4°E); a projected
        CRS must be in metres and is kept.
    size : float, default 100.0
        Cell size in metres, defined so that a whole cell's area is ``size²`` m²: the side of
        a square, or for a hexagon the side of the square of equal area (a pointy-topped
        regular hexagon of circumradius ``size·√(2/(3√3)) ≈ 0.620·size`` and width
        ``≈ 1.075·size``).  The default gives the 万米单元网格 of about 10,000 m².
    shape : {"square", "hex"}, default "square"
        Tile shape.
    communities : GeoDataFrame, optional
        Community (社区) polygons with a 12-digit code (6 district + 3 street + 3 community),
        in any CRS.  Cells are cut along community borders so each lies in one community.
        Parts of the boundary outside every community join the community holding the
        largest part of the same tile, or else the nearest community.  Polygons sharing
        a code are treated as one community; where communities overlap, the first row wins.
    admin_code : str, optional
        6-digit administrative division code (GB/T 2260).  Required without
        ``communities``; with them it must match the first 6 digits of their codes.
    community_code_field : str, optional
        Field of ``communities`` holding the 12-digit code.  By default the first field
        whose values are all 12-digit codes.
    community_name_field, street_name_field : str, optional
        Fields of ``communities`` holding the community and street names.  By default
        fields named like 社区名称/所属社区 and 街道名称/所属街道 (the aliases of the
        grid layer), if present.
    origin : tuple of float, optional
        Anchor of the tiling in the working CRS (metres): a corner of a square or the
        centre of a hexagon.  By default ``(0, 0)``, so a grid regenerated for the same
        CRS and size lines up with the previous one.

    Returns
    -------
    GeoDataFrame
        One row per cell, in the working projected CRS, sorted by code, with columns
        ``code`` (15 digits), ``name``, ``comm_code`` (12 digits), ``community``,
        ``street_cd`` (9 digits), ``street``, ``dist_code`` (6 digits), ``area_m2``
        (cell area in m²) and ``geometry`` (Polygon or MultiPolygon).

        With communities, ``code = comm_code + sequence`` (001…999 per community) and
        the name reads ``"<社区>第012网格"``.  Without communities, the code is
        ``admin_code + "000" + "000" + sequence`` and the name ``"网格012"``; past 999
        cells the sequence carries on into the community segment as one 6-digit counter
        (``admin_code + "000" + "001000"`` is cell 1000), so up to 999,999 cells are coded.
        The community and street columns are then empty.

    Raises
    ------
    InputError
        Bad size, shape or codes, an empty boundary, or more than 999 cells in one
        community (the message suggests a larger size).
    CRSError
        The boundary or communities have no CRS, or a projected CRS not in metres.
    """
    if not (
        isinstance(size, numbers.Real) and not isinstance(size, bool) and math.isfinite(size) and size > 0
    ):
        raise InputError(
            f"网格尺寸必须为正数（米），收到 {size!r}",
            f"size must be a positive number of metres, got {size!r}",
        )
    if shape not in ("square", "hex"):
        raise InputError(
            f"网格形状须为 square 或 hex，收到 {shape!r}", f"shape must be 'square' or 'hex', got {shape!r}"
        )
    if admin_code is not None and not _CODE6.match(str(admin_code)):
        raise InputError(
            f"行政区划代码须为 6 位数字，收到 {admin_code!r}",
            f"admin_code must be 6 digits, got {admin_code!r}",
        )

    crs = _working_crs(boundary)
    speck = _SPECK * float(size) ** 2
    area_geom = drop_specks(_boundary_geometry(boundary.to_crs(crs)), speck)
    if area_geom.is_empty:
        raise InputError("边界图层不含面要素", "the boundary has no polygon")

    if communities is not None:
        regions, info = community_regions(
            communities,
            crs,
            area_geom,
            speck,
            admin_code,
            community_code_field,
            community_name_field,
            street_name_field,
        )
    else:
        if admin_code is None:
            raise InputError(
                "未提供社区图层时须给出 6 位行政区划代码 admin_code",
                "admin_code (6 digits) is required when no communities are given",
            )
        regions = np.array([area_geom], dtype=object)
        _, community, street, _ = coded_levels()
        info = pd.DataFrame(
            {community.code_field: [None], community.name_field: [None], street.name_field: [None]}
        )

    tiles, rows, cols = tiling(area_geom, float(size), shape, origin)
    cells = clip_tiles(tiles, rows, cols, regions, area_geom, speck)
    out = code_cells(cells, info, admin_code, float(size))
    return gpd.GeoDataFrame(out, geometry="geometry", crs=crs)


def _working_crs(boundary: gpd.GeoDataFrame) -> CRS:
    """The projected CRS in metres the grid is built in."""
    if boundary.crs is None:
        raise CRSError("边界图层没有坐标系（缺少 .prj）", "the boundary has no CRS (missing .prj)")
    crs = CRS.from_user_input(boundary.crs)
    if crs.is_geographic:
        hull = shapely.union_all(shapely.make_valid(boundary.to_crs(4490).geometry.to_numpy()))
        if hull.is_empty:
            raise InputError("边界图层为空", "the boundary is empty")
        return CRS.from_epsg(gk_zone_epsg(hull.centroid.x))
    if not crs.is_projected or any(
        ax.unit_name not in ("metre", "meter") for ax in crs.axis_info if ax.direction in ("east", "north")
    ):
        raise CRSError(
            f"边界坐标系须为以米为单位的投影坐标系或地理坐标系，收到 {crs.name}",
            f"the boundary CRS must be geographic or projected in metres, got {crs.name}",
        )
    return crs


def _boundary_geometry(boundary: gpd.GeoDataFrame) -> BaseGeometry:
    """Union of the polygonal parts of all boundary rows."""
    geoms = polygonal(shapely.make_valid(boundary.geometry.to_numpy()))
    merged = shapely.union_all(geoms)
    merged = polygonal(np.array([merged], dtype=object))[0]
    if merged is None or merged.is_empty or merged.area <= 0:
        raise InputError("边界图层不含面要素", "the boundary has no polygon")
    return merged
