"""Generate a unit grid (单元网格) for a bureau that has none.

A regular tiling of squares or hexagons is laid over the district boundary, cut to
the boundary and, when a community layer is given, cut along community borders, so
every cell lies in one community.  Cells get 15-digit codes: 6-digit administrative
code + 3-digit street + 3-digit community + 3-digit sequence, the sequence running
west→east, north→south inside each community.

All geometry work happens in a projected CRS in metres: a geographic boundary is
projected to the CGCS2000 3° Gauss-Krüger zone (EPSG:4534–4554, no zone prefix) whose
central meridian is closest to the boundary's centroid.
"""

from __future__ import annotations

import math
import numbers
import re
from typing import Literal, NoReturn

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import pandas as pd
import shapely
from pyproj import CRS
from shapely.geometry.base import BaseGeometry

from geo.errors import CRSError, InputError
from geo.reading.crs import gk_zone_epsg
from geo.reading.fields import norm_key
from geo.registry import grid_spec
from layers.base import Level

__all__ = ["OUTPUT_COLUMNS", "generate_grid"]


def _levels() -> tuple[Level, Level, Level, Level]:
    """The grid's levels as cells are coded: unit grid, community, street, district (15, 12, 9
    and 6 digits, each code a prefix of the one below)."""
    levels = grid_spec().levels
    if tuple(lv.code_digits for lv in levels) != (15, 12, 9, 6):
        raise RuntimeError(
            "grid generation codes cells as 6 + 3 + 3 + 3 digits (unit grid, community, street, "
            f"district); the grid declares {[(lv.name, lv.code_digits) for lv in levels]}"
        )
    unit, community, street, district = levels
    return unit, community, street, district


def _area_field() -> str:
    """The grid field holding a cell's area in m²."""
    return next(f.name for f in grid_spec().fields if f.kind == "float" and f.unit == "m2")


def _output_columns() -> tuple[str, ...]:
    unit, community, street, district = _levels()
    return (
        unit.code_field,
        unit.name_field,
        community.code_field,
        community.name_field,
        street.code_field,
        street.name_field,
        district.code_field,
        _area_field(),
        "geometry",
    )


OUTPUT_COLUMNS: tuple[str, ...] = _output_columns()
"""Columns of the frame returned by :func:`generate_grid`, in order: the grid layer's code and
name fields of each level it declares (no district name), its area field and ``geometry``."""

_MAX_SEQUENCE = 999
_MAX_SEQUENCE_NO_COMMUNITY = 999_999
# Polygonal pieces and holes below this fraction of a whole cell's area are overlay noise.
_SPECK = 1e-9
_POLYGONAL = (shapely.GeometryType.POLYGON, shapely.GeometryType.MULTIPOLYGON)
_CODE12 = re.compile(r"^\d{12}$")
_CODE6 = re.compile(r"^\d{6}$")

# Hexagons are pointy-topped.  A regular hexagon of circumradius R has area (3√3/2)·R²;
# choosing R = size·√(2/(3√3)) makes that area exactly size².
_HEX_RADIUS_PER_SIZE = math.sqrt(2.0 / (3.0 * math.sqrt(3.0)))

# Hexagon vertices on the half-lattice: x in steps of half the hexagon's width,
# y in steps of half the circumradius, relative to the centre; closed ring, clockwise from the top.
_HEX_DX = np.array([0, 1, 1, 0, -1, -1, 0])
_HEX_DY = np.array([2, 1, -1, -2, -1, 1, 2])
_SQUARE_DX = np.array([0, 1, 1, 0, 0])
_SQUARE_DY = np.array([0, 0, 1, 1, 0])


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
    area_geom = _drop_specks(_boundary_geometry(boundary.to_crs(crs)), speck)
    if area_geom.is_empty:
        raise InputError("边界图层不含面要素", "the boundary has no polygon")

    if communities is not None:
        regions, info = _community_regions(
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
        _, community, street, _ = _levels()
        info = pd.DataFrame(
            {community.code_field: [None], community.name_field: [None], street.name_field: [None]}
        )

    tiles, rows, cols = _tiling(area_geom, float(size), shape, origin)
    cells = _clip(tiles, rows, cols, regions, area_geom, speck)
    out = _code_cells(cells, info, admin_code, float(size))
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
    geoms = _polygonal(shapely.make_valid(boundary.geometry.to_numpy()))
    merged = shapely.union_all(geoms)
    merged = _polygonal(np.array([merged], dtype=object))[0]
    if merged is None or merged.is_empty or merged.area <= 0:
        raise InputError("边界图层不含面要素", "the boundary has no polygon")
    return merged


def _polygonal(geoms: npt.NDArray[np.object_]) -> npt.NDArray[np.object_]:
    """Keep only the polygonal parts of each geometry; None where nothing polygonal is left."""
    geoms = np.asarray(geoms, dtype=object).copy()
    types = shapely.get_type_id(geoms)
    for i in np.flatnonzero(~np.isin(types, _POLYGONAL)):
        parts = shapely.get_parts(geoms[i])
        polys = parts[np.isin(shapely.get_type_id(parts), _POLYGONAL)]
        if len(polys) == 0:
            geoms[i] = None
            continue
        flat = shapely.get_parts(polys)
        geoms[i] = flat[0] if len(flat) == 1 else shapely.multipolygons(flat)
    return geoms


def _drop_specks(geom: BaseGeometry, speck: float) -> BaseGeometry:
    """The polygonal part of ``geom`` without parts or holes of at most ``speck`` m².

    Overlays leave needle-thin polygons of ~1e-9 m² along shared borders.  GEOS can
    mis-handle such a needle inside a MultiPolygon (the intersection of a tile with it
    came out as the whole tile), so they are removed before any further overlay.
    """
    parts = shapely.get_parts(geom)
    polys: list[shapely.Polygon] = []
    for part in parts[np.isin(shapely.get_type_id(parts), _POLYGONAL)]:
        for poly in shapely.get_parts(part):
            if poly.area <= speck:
                continue
            holes = [ring for ring in poly.interiors if shapely.Polygon(ring).area > speck]
            polys.append(poly if len(holes) == len(poly.interiors) else shapely.Polygon(poly.exterior, holes))
    if not polys:
        return shapely.Polygon()
    return polys[0] if len(polys) == 1 else shapely.MultiPolygon(polys)


def _community_regions(
    communities: gpd.GeoDataFrame,
    crs: CRS,
    area_geom: BaseGeometry,
    speck: float,
    admin_code: str | None,
    code_field: str | None,
    name_field: str | None,
    street_field: str | None,
) -> tuple[npt.NDArray[np.object_], pd.DataFrame]:
    """Disjoint community polygons clipped to the boundary, and their codes and names."""
    if communities.crs is None:
        raise CRSError("社区图层没有坐标系（缺少 .prj）", "the community layer has no CRS (missing .prj)")
    if len(communities) == 0:
        raise InputError("社区图层为空", "the community layer is empty")
    communities = communities.reset_index(drop=True)
    columns = [c for c in communities.columns if c != communities.geometry.name]
    code_field = code_field or _detect_code_field(communities, columns)
    if code_field not in communities.columns:
        raise InputError(
            f"社区图层中没有字段 {code_field}", f"the community layer has no field {code_field!r}"
        )
    codes = communities[code_field].map(_as_code)
    bad = codes[~codes.fillna("").str.match(_CODE12)]
    if len(bad):
        raise InputError(
            f"社区编码须为 12 位数字（字段 {code_field}），例如 {communities[code_field].iloc[bad.index[0]]!r}",
            f"community codes must be 12 digits (field {code_field!r}), e.g. "
            f"{communities[code_field].iloc[bad.index[0]]!r}",
        )
    if admin_code is not None and not codes.str.startswith(admin_code).all():
        raise InputError(
            f"社区编码的前 6 位与行政区划代码 {admin_code} 不一致",
            f"community codes do not start with admin_code {admin_code}",
        )
    _, community, street, _ = _levels()
    # a community layer's plain name field (名称/NAME/MC) is the community's name
    name_field = name_field or _detect_field(
        columns, community.name_field, exclude={code_field}, also=("名称", "NAME", "MC")
    )
    street_field = street_field or _detect_field(columns, street.name_field, exclude={code_field, name_field})
    for f in (name_field, street_field):
        if f is not None and f not in communities.columns:
            raise InputError(f"社区图层中没有字段 {f}", f"the community layer has no field {f!r}")

    frame = pd.DataFrame(
        {
            community.code_field: codes.to_numpy(),
            community.name_field: _text(communities[name_field]) if name_field else None,
            street.name_field: _text(communities[street_field]) if street_field else None,
            "geometry": communities.to_crs(crs).geometry.to_numpy(),
        }
    )
    order = pd.unique(frame[community.code_field])
    regions: list[BaseGeometry] = []
    taken: BaseGeometry = shapely.Polygon()
    for _, rows in frame.groupby(community.code_field, sort=False):
        geom = shapely.union_all(_polygonal(shapely.make_valid(rows["geometry"].to_numpy())))
        geom = shapely.difference(shapely.intersection(geom, area_geom), taken)
        taken = shapely.union(taken, geom)
        regions.append(_drop_specks(geom, speck))
    if all(r.is_empty for r in regions):
        raise InputError("社区图层与边界没有重叠", "no community overlaps the boundary")
    info = (
        frame.drop(columns="geometry")
        .groupby(community.code_field, sort=False, dropna=False)
        .first()
        .reindex(order)
        .reset_index()
    )
    return np.array(regions, dtype=object), info


def _as_code(value: object) -> str | None:
    """A code cell as text: integers and floats like 340291001001.0 lose their decimals."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _text(values: pd.Series) -> list[str | None]:
    return [None if v is None or (isinstance(v, float) and math.isnan(v)) else str(v).strip() for v in values]


def _detect_code_field(communities: gpd.GeoDataFrame, columns: list[str]) -> str:
    """The field whose values are all 12-digit codes, preferring one named like a community code."""
    candidates = [c for c in columns if communities[c].map(_as_code).fillna("").str.match(_CODE12).all()]
    if not candidates:
        raise InputError(
            "社区图层中找不到 12 位社区编码字段，请指定 community_code_field",
            "no field of 12-digit community codes found in the community layer; pass community_code_field",
        )
    community = _levels()[1]
    preferred = {
        norm_key(a) for a in (*grid_spec().field(community.code_field).aliases, "编码", "代码", "CODE")
    }
    for c in candidates:
        if norm_key(c) in preferred:
            return c
    return candidates[0]


def _detect_field(
    columns: list[str], canonical: str, exclude: set[str | None], also: tuple[str, ...] = ()
) -> str | None:
    """The first column named like an alias of the grid layer's ``canonical`` field (or like
    one of ``also``, after them)."""
    aliases = [norm_key(a) for a in (*grid_spec().field(canonical).aliases, *also)]
    by_name = {norm_key(c): c for c in columns if c not in exclude}
    for alias in aliases:
        if alias in by_name:
            return by_name[alias]
    return None


def _tiling(
    area_geom: BaseGeometry, size: float, shape: str, origin: tuple[float, float] | None
) -> tuple[npt.NDArray[np.object_], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Tiles covering the boundary's bounding box, with their row (south→north) and column keys.

    Vertices are placed on an integer lattice (``x0 + i·dx``, ``y0 + j·dy``), so
    neighbouring tiles share bit-identical coordinates and the tiling has no slivers.
    The column key grows west→east within a row.
    """
    x0, y0 = origin if origin is not None else (0.0, 0.0)
    minx, miny, maxx, maxy = area_geom.bounds
    if shape == "square":
        dx = dy = size
        i = np.arange(math.floor((minx - x0) / dx) - 1, math.ceil((maxx - x0) / dx) + 1)
        j = np.arange(math.floor((miny - y0) / dy) - 1, math.ceil((maxy - y0) / dy) + 1)
        ii, jj = (a.ravel() for a in np.meshgrid(i, j))
        vx = ii[:, None] + _SQUARE_DX[None, :]
        vy = jj[:, None] + _SQUARE_DY[None, :]
        rows, cols = jj, ii
    else:
        radius = size * _HEX_RADIUS_PER_SIZE
        dx = math.sqrt(3.0) * radius / 2.0  # half the hexagon's width
        dy = radius / 2.0
        j = np.arange(math.floor((miny - y0) / (3 * dy)) - 1, math.ceil((maxy - y0) / (3 * dy)) + 2)
        i = np.arange(math.floor((minx - x0) / (2 * dx)) - 1, math.ceil((maxx - x0) / (2 * dx)) + 2)
        ii, jj = (a.ravel() for a in np.meshgrid(i, j))
        kc = 2 * ii + (jj % 2)
        mc = 3 * jj
        vx = kc[:, None] + _HEX_DX[None, :]
        vy = mc[:, None] + _HEX_DY[None, :]
        rows, cols = jj, kc
    coords = np.stack([x0 + vx * dx, y0 + vy * dy], axis=-1)
    tiles = np.asarray(shapely.polygons(coords), dtype=object)
    return tiles, rows.astype(np.int64), cols.astype(np.int64)


def _clip(
    tiles: npt.NDArray[np.object_],
    rows: npt.NDArray[np.int64],
    cols: npt.NDArray[np.int64],
    regions: npt.NDArray[np.object_],
    area_geom: BaseGeometry,
    speck: float,
) -> pd.DataFrame:
    """Intersect tiles with regions; one row per (tile, region) with a polygonal piece.

    Parts of the boundary outside every region are merged into the cell of the same tile
    with the largest area, or, when the tile has no cell, into a new cell of the nearest region.
    """
    valid = ~shapely.is_empty(regions)
    tree = shapely.STRtree(tiles)
    shapely.prepare(regions)
    region_idx, tile_idx = tree.query(regions, predicate="intersects")
    inside = shapely.contains_properly(regions[region_idx], tiles[tile_idx])
    pieces = tiles[tile_idx].copy()
    cut = ~inside
    pieces[cut] = shapely.intersection(tiles[tile_idx[cut]], regions[region_idx[cut]])
    pieces = _polygonal(pieces)
    keep = np.array([p is not None for p in pieces], dtype=bool)
    keep[keep] = shapely.area(pieces[keep]) > speck
    cells = pd.DataFrame({"tile": tile_idx[keep], "region": region_idx[keep], "geometry": pieces[keep]})

    covered = shapely.union_all(regions[valid])
    rest = _drop_specks(shapely.difference(area_geom, covered), speck)
    if not rest.is_empty:
        cells = _absorb_rest(cells, tiles, rest, regions, valid, speck)

    cells["row"] = rows[cells["tile"].to_numpy()]
    cells["col"] = cols[cells["tile"].to_numpy()]
    return cells


def _absorb_rest(
    cells: pd.DataFrame,
    tiles: npt.NDArray[np.object_],
    rest: BaseGeometry,
    regions: npt.NDArray[np.object_],
    valid: npt.NDArray[np.bool_],
    speck: float,
) -> pd.DataFrame:
    """Give the uncovered parts of each tile to the tile's biggest cell or the nearest region."""
    tree = shapely.STRtree(tiles)
    tile_idx = tree.query(rest, predicate="intersects")
    pieces = _polygonal(shapely.intersection(tiles[tile_idx], rest))
    keep = np.array([p is not None and p.area > speck for p in pieces], dtype=bool)
    tile_idx, pieces = tile_idx[keep], pieces[keep]
    if len(pieces) == 0:
        return cells

    cells = cells.copy()
    cells["_area"] = shapely.area(cells["geometry"].to_numpy())
    biggest = cells.sort_values("_area", ascending=False).drop_duplicates("tile").set_index("tile")["region"]
    region_ids = np.flatnonzero(valid)
    region_tree = shapely.STRtree(regions[region_ids])
    extra = []
    for t, piece in zip(tile_idx, pieces, strict=True):
        if t in biggest.index:
            r = int(biggest.loc[t])
        else:
            r = int(region_ids[region_tree.query_nearest(piece, all_matches=False)[0]])
        extra.append({"tile": int(t), "region": r, "geometry": piece})

    merged = pd.concat([cells.drop(columns="_area"), pd.DataFrame(extra)], ignore_index=True)
    groups: dict[tuple[int, int], list[BaseGeometry]] = {}
    for t, r, geom in merged[["tile", "region", "geometry"]].itertuples(index=False, name=None):
        groups.setdefault((int(t), int(r)), []).append(geom)
    out = pd.DataFrame(
        [
            {"tile": t, "region": r, "geometry": g[0] if len(g) == 1 else shapely.union_all(g)}
            for (t, r), g in groups.items()
        ]
    )
    out["geometry"] = _polygonal(out["geometry"].to_numpy(dtype=object))
    return out


def _code_cells(cells: pd.DataFrame, info: pd.DataFrame, admin_code: str | None, size: float) -> pd.DataFrame:
    """Number the cells west→east, north→south in each community and build their codes and names."""
    cells = cells.sort_values(["region", "row", "col"], ascending=[True, False, True], kind="stable")
    seq = cells.groupby("region", sort=False).cumcount().to_numpy() + 1
    region = cells["region"].to_numpy()
    geoms = cells["geometry"].to_numpy()
    unit, community, street, district = _levels()
    with_communities = info[community.code_field].notna().all()

    if with_communities:
        counts = np.bincount(region, minlength=len(info))
        worst = int(np.argmax(counts))
        if counts[worst] > _MAX_SEQUENCE:
            _raise_too_many(
                int(counts[worst]),
                _MAX_SEQUENCE,
                size,
                f"社区 {info[community.code_field][worst]} ",
                f"community {info[community.code_field][worst]}",
            )
        comm = info[community.code_field].to_numpy(dtype=object)[region]
        comm_name = info[community.name_field].to_numpy(dtype=object)[region]
        street_name = info[street.name_field].to_numpy(dtype=object)[region]
        code = [f"{c}{s:03d}" for c, s in zip(comm, seq, strict=True)]
        name = [f"{n}第{s:03d}网格" if n else f"网格{s:03d}" for n, s in zip(comm_name, seq, strict=True)]
        street_cd: list[object] = [c[: street.code_digits] for c in comm]
        dist = [c[: district.code_digits] for c in comm]
    else:
        assert admin_code is not None
        if len(cells) > _MAX_SEQUENCE_NO_COMMUNITY:
            _raise_too_many(len(cells), _MAX_SEQUENCE_NO_COMMUNITY, size, "该区", "the district")
        code = [f"{admin_code}000{s:06d}" for s in seq]
        name = [f"网格{s:03d}" for s in seq]
        comm = comm_name = street_name = np.full(len(cells), None, dtype=object)
        street_cd = [None] * len(cells)
        dist = [admin_code] * len(cells)

    out = pd.DataFrame(
        {
            unit.code_field: code,
            unit.name_field: name,
            community.code_field: comm,
            community.name_field: comm_name,
            street.code_field: street_cd,
            street.name_field: street_name,
            district.code_field: dist,
            _area_field(): shapely.area(geoms),
            "geometry": geoms,
        }
    )
    return out.sort_values(unit.code_field, kind="stable").reset_index(drop=True)


def _raise_too_many(count: int, limit: int, size: float, where_zh: str, where_en: str) -> NoReturn:
    # 5% more than the area ratio leaves room for the partial cells along borders.
    suggested = math.ceil(size * math.sqrt(count / limit) * 1.05)
    raise InputError(
        f"{where_zh}有 {count} 个网格，超过编码上限 {limit}；请加大网格尺寸（例如 size={suggested} 米）",
        f"{where_en} would have {count} cells, more than the {limit} a code allows; "
        f"use a larger size (e.g. size={suggested} m)",
        details={"cells": count, "limit": limit, "suggested_size": suggested},
    )
