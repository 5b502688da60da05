"""Assignment rules as properties: every feature in exactly one unit, nothing vanishes."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from geo.assign import Grid
from layers.base import UNASSIGNED


def _irregular_grid(xs: list[float], ys: list[float]) -> tuple[np.ndarray, np.ndarray]:
    """Rectangles between sorted cut lines: a gap-free tiling with cells of unequal size."""
    cells, codes = [], []
    for j in range(len(ys) - 1):
        for i in range(len(xs) - 1):
            cells.append(shapely.box(xs[i], ys[j], xs[i + 1], ys[j + 1]))
            codes.append(f"340291001001{len(codes) + 1:03d}")
    order = np.random.default_rng(len(cells)).permutation(len(cells))  # store order is not code order
    return np.array(codes, dtype=object)[order], np.array(cells, dtype=object)[order]


cuts = st.lists(st.integers(0, 1000), min_size=3, max_size=7, unique=True).map(sorted)


@settings(max_examples=60, deadline=None)
@given(xs=cuts, ys=cuts, data=st.data())
def test_points_exactly_one_unit(xs, ys, data):
    codes, cells = _irregular_grid([float(v) for v in xs], [float(v) for v in ys])
    grid = Grid(codes, cells)
    # points on vertices, on edges, inside, outside
    px = data.draw(st.lists(st.sampled_from(xs) | st.integers(-100, 1100), min_size=1, max_size=60))
    py = data.draw(
        st.lists(st.sampled_from(ys) | st.integers(-100, 1100), min_size=len(px), max_size=len(px))
    )
    pts = shapely.points(np.array(px, dtype=float), np.array(py, dtype=float))
    units = grid.assign(pts)
    assert len(units) == len(pts)
    covering = [[c for c, cell in zip(codes, cells, strict=True) if shapely.covers(cell, p)] for p in pts]
    for unit, cov in zip(units, covering, strict=True):
        if cov:
            assert unit == min(cov)  # documented rule: smallest code among the closed cells
        else:
            assert unit == UNASSIGNED
    # a tally over units counts every point exactly once
    _, counts = np.unique(units.astype(str), return_counts=True)
    assert counts.sum() == len(pts)
    # order of input does not matter
    perm = np.random.default_rng(0).permutation(len(pts))
    assert list(grid.assign(pts[perm])) == list(units[perm])


@pytest.mark.slow
@settings(max_examples=40, deadline=None)
@given(xs=cuts, ys=cuts, data=st.data())
def test_polygons_go_to_largest_overlap(xs, ys, data):
    codes, cells = _irregular_grid([float(v) for v in xs], [float(v) for v in ys])
    grid = Grid(codes, cells)
    n = data.draw(st.integers(1, 20))
    boxes = []
    for _ in range(n):
        x = data.draw(st.floats(-200, 1100))
        y = data.draw(st.floats(-200, 1100))
        w = data.draw(st.floats(1, 300))
        h = data.draw(st.floats(1, 300))
        boxes.append(shapely.box(x, y, x + w, y + h))
    polys = np.array(boxes, dtype=object)
    units = grid.assign(polys)
    for poly, unit in zip(polys, units, strict=True):
        areas = {
            c: shapely.area(shapely.intersection(poly, cell)) for c, cell in zip(codes, cells, strict=True)
        }
        best = max(areas.values())
        if best <= 0:
            assert unit == UNASSIGNED
        else:
            winners = [c for c, a in areas.items() if np.isclose(a, best, rtol=1e-9, atol=1e-9)]
            assert unit in winners


def test_multipart_and_empty_grid():
    grid = Grid(np.array([], dtype=object), np.array([], dtype=object))
    assert list(grid.assign(shapely.points([[0, 0]]))) == [UNASSIGNED]
    g = Grid(np.array(["b", "a"], dtype=object), np.array([shapely.box(0, 0, 1, 1), shapely.box(1, 0, 2, 1)]))
    mp = shapely.MultiPoint([(0.5, 0.5), (1.5, 0.5)])
    assert g.assign(np.array([mp], dtype=object))[0] == "a"  # multipoint on both: smallest code


@st.composite
def grid_changes(draw):
    xs = draw(cuts)
    ys = draw(cuts)
    codes, cells = _irregular_grid([float(v) for v in xs], [float(v) for v in ys])
    new_codes, new_cells = list(codes), list(cells)
    for _ in range(draw(st.integers(1, 3))):
        k = draw(st.integers(0, len(new_cells) - 1))
        action = draw(st.sampled_from(["drop", "split", "recode"]))
        cell = new_cells[k]
        if action == "drop":
            del new_codes[k], new_cells[k]
        elif action == "split":
            minx, miny, maxx, maxy = cell.bounds
            mid = (minx + maxx) / 2
            new_cells[k] = shapely.box(minx, miny, mid, maxy)
            new_cells.append(shapely.box(mid, miny, maxx, maxy))
            new_codes.append(f"340291001009{len(new_codes):03d}")
        else:
            new_codes[k] = f"340291001000{k:03d}"  # sorts first: wins shared edges
        if not new_cells:
            break
    px = draw(st.lists(st.sampled_from(xs) | st.integers(-100, 1100), min_size=1, max_size=40))
    py = draw(st.lists(st.sampled_from(ys) | st.integers(-100, 1100), min_size=len(px), max_size=len(px)))
    return codes, cells, new_codes, new_cells, px, py


@pytest.mark.slow
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(change=grid_changes())
def test_incremental_reassignment_equals_full(tmp_path_factory, change):
    """After a grid change, the incremental re-assignment gives what assigning everything gives."""
    import geopandas as gpd

    from geo.imports.importer import import_file
    from geo.store.backends import open_store
    from tests.helpers.builders import EPSG_GK, X0, Y0, points_frame, write_shp

    codes, cells, new_codes, new_cells, px, py = change
    if not new_cells:
        return
    tmp = tmp_path_factory.mktemp("r")

    def shift(geoms):
        return [shapely.transform(g, lambda xy: xy + np.array([X0, Y0])) for g in geoms]

    with open_store(tmp / "s") as store:
        g1 = gpd.GeoDataFrame({"网格编码": list(codes)}, geometry=shift(cells), crs=EPSG_GK)
        import_file(store, "grid", write_shp(g1, tmp / "g1" / "g.shp"))
        pts = points_frame(
            [(X0 + x, Y0 + y) for x, y in zip(px, py, strict=True)], 编号=[f"P{i}" for i in range(len(px))]
        )
        import_file(store, "parking", write_shp(pts, tmp / "p" / "p.shp"))
        g2 = gpd.GeoDataFrame({"网格编码": list(new_codes)}, geometry=shift(new_cells), crs=EPSG_GK)
        import_file(store, "grid", write_shp(g2, tmp / "g2" / "g.shp"))
        import layers

        attrs = store.read_attributes(layers.get("parking"))
        stored = dict(zip(attrs["pid"], attrs["gw_unit"], strict=True))
        expect = Grid(np.array(new_codes, dtype=object), np.array(shift(new_cells), dtype=object)).assign(
            np.asarray(pts.geometry.values, dtype=object)
        )
        assert [stored[f"P{i}"] for i in range(len(px))] == list(expect)
