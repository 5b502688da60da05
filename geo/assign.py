"""Assign every feature to exactly one unit grid.

Rules (documented in README, tested as properties):

* A point inside one cell belongs to it.  A point on a shared edge or vertex lies in
  several closed cells; it goes to the one whose code sorts first (string order of the
  15-digit code), so the result depends neither on input order nor on floating noise
  in the tree query.
* A polygon belongs to the cell holding the largest part of its area (ties: the code
  that sorts first); a line to the cell holding the longest part of it.
* A feature touching no cell with positive area/length (or, for points, lying outside
  every closed cell) is :data:`layers.base.UNASSIGNED`.  Nothing is dropped.

All inputs are in one projected CRS (metres).
"""

from __future__ import annotations

import weakref

import numpy as np
import shapely

from layers.base import UNASSIGNED


class Grid:
    """Unit-grid cells ready for assignment (an STRtree over the cells).

    Parameters
    ----------
    codes : ndarray of str
        Unit-grid codes, unique.
    cells : ndarray of shapely Polygon/MultiPolygon
        Cell geometries in the store's projected CRS.
    """

    def __init__(self, codes: np.ndarray, cells: np.ndarray):
        self.codes = np.asarray(codes, dtype=object)
        self.cells = np.asarray(cells, dtype=object)
        order = np.argsort(self.codes.astype(str), kind="stable")
        self.rank = np.empty(len(order), dtype=np.int64)
        self.rank[order] = np.arange(len(order))
        shapely.prepare(self.cells)
        self._tree: shapely.STRtree | None = None
        self._wkb: list[bytes] | None = None

    def wkb(self) -> list[bytes]:
        """The cells as WKB, made on first use (comparing two grids cell by cell)."""
        if self._wkb is None:
            self._wkb = shapely.to_wkb(self.cells).tolist()
        return self._wkb

    @property
    def tree(self) -> shapely.STRtree:
        """STRtree over the cells, built on first use."""
        if self._tree is None:
            self._tree = shapely.STRtree(self.cells)
        return self._tree

    def __len__(self) -> int:
        return len(self.codes)

    def assign(self, geoms: np.ndarray) -> np.ndarray:
        """Unit code per geometry (``UNASSIGNED`` outside every cell).

        Parameters
        ----------
        geoms : ndarray of shapely geometries
            Features in the same projected CRS as the cells.

        Returns
        -------
        ndarray of str (object)
        """
        return self._labels[self.assign_index(geoms)]

    @property
    def _labels(self) -> np.ndarray:
        """Codes followed by ``UNASSIGNED``, so index -1 reads as UNASSIGNED."""
        return np.append(self.codes, np.array([UNASSIGNED], dtype=object))

    def assign_index(self, geoms: np.ndarray) -> np.ndarray:
        """Like :meth:`assign` but the position of the cell in ``codes`` (-1 outside every cell)."""
        geoms = np.asarray(geoms, dtype=object)
        out = np.full(len(geoms), -1, dtype=np.int64)
        if len(geoms) == 0 or len(self.codes) == 0:
            return out
        type_ids = shapely.get_type_id(geoms)
        points = np.isin(type_ids, (0, 4))
        if points.all():
            return self._assign_points(geoms)
        idx = np.flatnonzero(points)
        if len(idx):
            out[idx] = self._assign_points(geoms[idx])
        idx = np.flatnonzero(~points & (type_ids >= 0))
        if len(idx):
            out[idx] = self._assign_extended(geoms[idx])
        return out

    def _assign_points(self, pts: np.ndarray) -> np.ndarray:
        out = np.full(len(pts), -1, dtype=np.int64)
        if len(pts) > len(self.cells):
            # Many more points than cells: index the points and ask each (prepared) cell which
            # points it touches -- the same pairs, found 1.5x faster than a query per point.
            cell_idx, pt_idx = _points_tree(pts).query(self.cells, predicate="intersects")
            src, tgt = pt_idx, cell_idx
        else:
            src, tgt = self.tree.query(pts, predicate="intersects")
        if len(src) == 0:
            return out
        if np.bincount(src, minlength=len(pts)).max() <= 1:
            # the usual case: no point on a shared edge, one candidate each
            out[src] = tgt
            return out
        order = np.lexsort((self.rank[tgt], src))
        src, tgt = src[order], tgt[order]
        first = np.unique(src, return_index=True)[1]
        out[src[first]] = tgt[first]
        return out

    def _assign_extended(self, geoms: np.ndarray) -> np.ndarray:
        out = np.full(len(geoms), -1, dtype=np.int64)
        src, tgt = self.tree.query(geoms, predicate="intersects")
        if len(src) == 0:
            return out
        inter = shapely.intersection(geoms[src], self.cells[tgt])
        polygonal = np.isin(shapely.get_type_id(geoms[src]), (3, 6))
        measure = np.where(polygonal, shapely.area(inter), shapely.length(inter))
        keep = measure > 0
        src, tgt, measure = src[keep], tgt[keep], measure[keep]
        if len(src) == 0:
            return out
        # largest measure first, then smallest code rank
        order = np.lexsort((self.rank[tgt], -measure, src))
        src, tgt = src[order], tgt[order]
        first = np.unique(src, return_index=True)[1]
        out[src[first]] = tgt[first]
        return out


_POINT_TREE: dict[int, tuple[weakref.ref[np.ndarray], shapely.STRtree]] = {}


def _points_tree(pts: np.ndarray) -> shapely.STRtree:
    """STRtree over ``pts``, kept while that very array lives (the store keeps a layer's
    decoded geometry as one array, so assigning it again reuses the tree)."""
    hit = _POINT_TREE.get(id(pts))
    if hit is not None and hit[0]() is pts:
        return hit[1]
    tree = shapely.STRtree(pts)
    _POINT_TREE.clear()
    _POINT_TREE[id(pts)] = (weakref.ref(pts), tree)
    return tree


def assign(geoms: np.ndarray, codes: np.ndarray, cells: np.ndarray) -> np.ndarray:
    """Unit code per feature; see the module docstring for the rules.

    Parameters
    ----------
    geoms : ndarray of shapely geometries
        Features, projected CRS (metres).
    codes, cells : ndarray
        Unit-grid codes and polygons in the same CRS.
    """
    return Grid(codes, cells).assign(geoms)


def grid_diff(previous: Grid | None, grid: Grid | None) -> tuple[list[str] | None, np.ndarray | None]:
    """Codes of old cells removed or reshaped, and the geometry of new or reshaped cells.

    ``(None, None)`` when there is no usable previous grid or more than a fifth of the
    cells changed (then assigning everything again is as fast).
    """
    if previous is None or grid is None or len(previous) == 0:
        return None, None
    old = dict(zip(previous.codes.tolist(), previous.wkb(), strict=True))
    new_wkb = grid.wkb()
    new = dict(zip(grid.codes.tolist(), new_wkb, strict=True))
    changed_old = [c for c, w in old.items() if new.get(c) != w]
    changed_idx = [
        i for i, (c, w) in enumerate(zip(grid.codes.tolist(), new_wkb, strict=True)) if old.get(c) != w
    ]
    if len(changed_old) + len(changed_idx) > 0.2 * (len(old) + len(new)):
        return None, None
    return changed_old, grid.cells[np.asarray(changed_idx, dtype=np.int64)]
