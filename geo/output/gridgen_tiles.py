"""The geometry of a generated grid: a tiling of the plane cut to regions.

Squares or pointy-topped hexagons are laid on an integer lattice over a boundary and
intersected with regions (the communities, or the whole boundary), so the pieces cover
the boundary without gaps or overlaps; overlay noise (needle-thin pieces and holes) is
dropped on the way.  :func:`geo.output.gridgen.generate_grid` codes the pieces.

Everything here works in the caller's projected CRS, in metres and square metres.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import pandas as pd
import shapely
from shapely.geometry.base import BaseGeometry

__all__ = ["clip_tiles", "drop_specks", "polygonal", "tiling"]

_POLYGONAL = (shapely.GeometryType.POLYGON, shapely.GeometryType.MULTIPOLYGON)

# Hexagons are pointy-topped.  A regular hexagon of circumradius R has area (3√3/2)·R²;
# choosing R = size·√(2/(3√3)) makes that area exactly size².
_HEX_RADIUS_PER_SIZE = math.sqrt(2.0 / (3.0 * math.sqrt(3.0)))

# Hexagon vertices on the half-lattice: x in steps of half the hexagon's width,
# y in steps of half the circumradius, relative to the centre; closed ring, clockwise from the top.
_HEX_DX = np.array([0, 1, 1, 0, -1, -1, 0])
_HEX_DY = np.array([2, 1, -1, -2, -1, 1, 2])
_SQUARE_DX = np.array([0, 1, 1, 0, 0])
_SQUARE_DY = np.array([0, 0, 1, 1, 0])


def polygonal(geoms: npt.NDArray[np.object_]) -> npt.NDArray[np.object_]:
    """Keep only the polygonal parts of each geometry.

    Parameters
    ----------
    geoms : numpy.ndarray of shapely geometries
        Geometries of any type, in any CRS (the coordinates are not changed).

    Returns
    -------
    numpy.ndarray of object
        A new array of the same length: each geometry's Polygon and MultiPolygon parts as a
        Polygon or MultiPolygon (unchanged when it already is one), or None where nothing
        polygonal is left.
    """
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


def drop_specks(geom: BaseGeometry, speck: float) -> BaseGeometry:
    """The polygonal part of ``geom`` without parts or holes of at most ``speck`` m².

    Overlays leave needle-thin polygons of ~1e-9 m² along shared borders.  GEOS can
    mis-handle such a needle inside a MultiPolygon (the intersection of a tile with it
    came out as the whole tile), so they are removed before any further overlay.

    Parameters
    ----------
    geom : shapely geometry
        Any geometry in a projected CRS in metres.
    speck : float
        Largest area of a part or hole to drop, in m².

    Returns
    -------
    shapely geometry
        A Polygon or MultiPolygon in the same CRS, or an empty Polygon when no part is
        larger than ``speck``.
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


def tiling(
    area_geom: BaseGeometry, size: float, shape: str, origin: tuple[float, float] | None
) -> tuple[npt.NDArray[np.object_], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Tiles covering the boundary's bounding box, with their row (south→north) and column keys.

    Vertices are placed on an integer lattice (``x0 + i·dx``, ``y0 + j·dy``), so
    neighbouring tiles share bit-identical coordinates and the tiling has no slivers.
    The column key grows west→east within a row.

    Parameters
    ----------
    area_geom : shapely geometry
        The boundary, in a projected CRS in metres; only its bounds are used.
    size : float
        Cell size in metres: a whole tile's area is ``size²`` m² (the side of a square; a
        pointy-topped regular hexagon of circumradius ``size·√(2/(3√3))``).
    shape : {"square", "hex"}
        Tile shape.
    origin : tuple of float or None
        Anchor of the lattice in the same CRS (metres): a corner of a square or the centre
        of a hexagon; None for ``(0, 0)``.

    Returns
    -------
    tiles : numpy.ndarray of shapely.Polygon
        The tiles, in the CRS of ``area_geom``, with a margin of at least one tile around
        the bounds.
    rows, cols : numpy.ndarray of int64
        Each tile's row key (growing south→north) and column key (growing west→east).
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


def clip_tiles(
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

    Parameters
    ----------
    tiles : numpy.ndarray of shapely.Polygon
        Tiles from :func:`tiling`, in a projected CRS in metres.
    rows, cols : numpy.ndarray of int64
        Their row and column keys, from :func:`tiling`.
    regions : numpy.ndarray of shapely geometries
        Disjoint polygonal regions inside the boundary (some may be empty), in the same CRS.
    area_geom : shapely geometry
        The boundary, in the same CRS.
    speck : float
        Pieces of at most this area, in m², are overlay noise and left out.

    Returns
    -------
    pandas.DataFrame
        Columns ``tile`` (index into ``tiles``), ``region`` (index into ``regions``),
        ``geometry`` (Polygon or MultiPolygon, same CRS), ``row`` and ``col`` (the tile's keys).
    """
    valid = ~shapely.is_empty(regions)
    tree = shapely.STRtree(tiles)
    shapely.prepare(regions)
    region_idx, tile_idx = tree.query(regions, predicate="intersects")
    inside = shapely.contains_properly(regions[region_idx], tiles[tile_idx])
    pieces = tiles[tile_idx].copy()
    cut = ~inside
    pieces[cut] = shapely.intersection(tiles[tile_idx[cut]], regions[region_idx[cut]])
    pieces = polygonal(pieces)
    keep = np.array([p is not None for p in pieces], dtype=bool)
    keep[keep] = shapely.area(pieces[keep]) > speck
    cells = pd.DataFrame({"tile": tile_idx[keep], "region": region_idx[keep], "geometry": pieces[keep]})

    covered = shapely.union_all(regions[valid])
    rest = drop_specks(shapely.difference(area_geom, covered), speck)
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
    pieces = polygonal(shapely.intersection(tiles[tile_idx], rest))
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
    out["geometry"] = polygonal(out["geometry"].to_numpy(dtype=object))
    return out
