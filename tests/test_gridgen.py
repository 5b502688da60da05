"""Tests for geo.output.gridgen: generated unit grids cover the boundary exactly and are coded per DOMAIN.md."""

from __future__ import annotations

import math

import geopandas as gpd
import numpy as np
import pytest
import shapely
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from geo.errors import CRSError, InputError
from geo.output.gridgen import OUTPUT_COLUMNS, generate_grid

ADMIN = "340291"
X0, Y0 = 633_000.0, 3_465_000.0  # EPSG:4548 metres, near 118.4°E 31.3°N
REL = 1e-6

PROPERTY = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def frame(geoms: list[shapely.Geometry], crs: int | None = 4548, **columns: list[object]) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(columns, geometry=geoms, crs=crs)


def rect(x0: float, y0: float, x1: float, y1: float) -> shapely.Polygon:
    return shapely.box(X0 + x0, Y0 + y0, X0 + x1, Y0 + y1)


blobs = st.lists(
    st.tuples(
        st.floats(0, 1200),
        st.floats(0, 1200),
        st.floats(40, 450),
    ),
    min_size=1,
    max_size=6,
)


def blob_boundary(parts: list[tuple[float, float, float]]) -> shapely.Geometry:
    """Union of buffered points: convex for one part, concave or multi-part for several."""
    return shapely.union_all([shapely.Point(X0 + x, Y0 + y).buffer(r, quad_segs=6) for x, y, r in parts])


def assert_covers_exactly(cells: gpd.GeoDataFrame, boundary: shapely.Geometry) -> None:
    union = shapely.union_all(cells.geometry.to_numpy())
    assert union.area == pytest.approx(boundary.area, rel=REL)
    assert shapely.symmetric_difference(union, boundary).area <= REL * boundary.area
    assert cells.area.sum() == pytest.approx(union.area, rel=REL)  # no overlaps
    assert np.allclose(cells["area_m2"], cells.area)
    assert set(cells.geom_type) <= {"Polygon", "MultiPolygon"}


def assert_codes(cells: gpd.GeoDataFrame) -> None:
    assert cells["code"].is_unique
    assert cells["code"].str.fullmatch(r"\d{15}").all()
    assert (cells["code"].str[:6] == cells["dist_code"]).all()


# --------------------------------------------------------------------------- properties


@pytest.mark.slow
@PROPERTY
@given(
    parts=blobs,
    size=st.floats(25, 250),
    shape=st.sampled_from(["square", "hex"]),
    ox=st.floats(-500, 500),
    oy=st.floats(-500, 500),
)
def test_cells_tile_any_boundary(parts, size, shape, ox, oy):
    boundary = blob_boundary(parts)
    cells = generate_grid(
        frame([boundary]), size=size, shape=shape, admin_code=ADMIN, origin=(X0 + ox, Y0 + oy)
    )
    assert list(cells.columns) == list(OUTPUT_COLUMNS)
    assert cells.crs.to_epsg() == 4548
    assert_covers_exactly(cells, boundary)
    assert_codes(cells)
    assert (cells["code"].str[6:9] == "000").all()
    assert cells["area_m2"].max() <= size**2 * (1 + 1e-9)


communities_st = st.tuples(
    st.lists(st.tuples(st.floats(-100, 1300), st.floats(-100, 1300)), min_size=1, max_size=8, unique=True),
    st.booleans(),
)


def voronoi_communities(seeds: list[tuple[float, float]], boundary: shapely.Geometry, drop_one: bool):
    """Communities as Voronoi cells over the boundary's envelope; optionally one removed (a gap)."""
    pts = shapely.multipoints([(X0 + x, Y0 + y) for x, y in seeds])
    env = boundary.envelope.buffer(10)
    cells = [
        shapely.intersection(c, env) for c in shapely.get_parts(shapely.voronoi_polygons(pts, extend_to=env))
    ]
    cells = [c for c in cells if c.area > 0]
    if drop_one and len(cells) > 1:
        cells = cells[1:]
    codes = [f"{ADMIN}{1 + i // 3:03d}{1 + i % 3:03d}" for i in range(len(cells))]
    names = [f"社区{i}" for i in range(len(cells))]
    streets = [f"街道{1 + i // 3}" for i in range(len(cells))]
    return frame(cells, SQBM=codes, 社区名称=names, 所属街道=streets)


@pytest.mark.slow
@PROPERTY
@given(parts=blobs, comm=communities_st, size=st.floats(80, 250), shape=st.sampled_from(["square", "hex"]))
def test_cells_split_along_communities(parts, comm, size, shape):
    boundary = blob_boundary(parts)
    seeds, drop_one = comm
    communities = voronoi_communities(seeds, boundary, drop_one)
    assume(shapely.intersection(shapely.union_all(communities.geometry.to_numpy()), boundary).area > 1)
    cells = generate_grid(frame([boundary]), size=size, shape=shape, communities=communities)
    assert_covers_exactly(cells, boundary)
    assert_codes(cells)
    assert (cells["code"].str[:12] == cells["comm_code"]).all()
    assert (cells["comm_code"].str[:9] == cells["street_cd"]).all()
    assert cells["comm_code"].isin(communities["SQBM"]).all()
    assert (
        cells.groupby("comm_code")["code"]
        .apply(lambda c: c.str[-3:].astype(int).tolist() == list(range(1, len(c) + 1)))
        .all()
    )
    if not drop_one:
        by_code = dict(zip(communities["SQBM"], communities.geometry, strict=True))
        outside = [
            shapely.difference(g, by_code[c]).area
            for g, c in zip(cells.geometry, cells["comm_code"], strict=True)
        ]
        assert max(outside) <= 1e-6 * size**2


@settings(max_examples=15, deadline=None)
@given(size=st.sampled_from([50.0, 100.0, 150.0]))
def test_hex_interior_cells_have_area_size_squared(size):
    boundary = shapely.Point(X0, Y0).buffer(12 * size)
    cells = generate_grid(frame([boundary]), size=size, shape="hex", admin_code=ADMIN)
    interior = cells[shapely.distance(cells.geometry.to_numpy(), boundary.exterior) > 1e-3]
    assert len(interior) > 100
    assert np.allclose(interior["area_m2"], size**2, rtol=1e-9)
    assert np.allclose(shapely.get_num_coordinates(interior.geometry.to_numpy()), 7)


# --------------------------------------------------------------------------- examples


def test_sequence_runs_west_to_east_then_north_to_south():
    cells = generate_grid(frame([rect(0, 0, 500, 300)]), size=100, admin_code=ADMIN, origin=(X0, Y0))
    assert len(cells) == 15
    assert cells["code"].tolist() == [f"340291000000{i:03d}" for i in range(1, 16)]
    assert cells["name"].iloc[11] == "网格012"
    centres = cells.geometry.centroid
    first = centres.iloc[0]
    assert (first.x - X0, first.y - Y0) == pytest.approx((50, 250))
    assert (centres.iloc[4].x - X0, centres.iloc[4].y - Y0) == pytest.approx((450, 250))
    assert (centres.iloc[5].x - X0, centres.iloc[5].y - Y0) == pytest.approx((50, 150))
    assert (centres.iloc[14].x - X0, centres.iloc[14].y - Y0) == pytest.approx((450, 50))
    assert np.allclose(cells["area_m2"], 10_000)
    assert cells["community"].isna().all()


def test_sequence_restarts_in_each_community_with_names():
    communities = frame(
        [rect(0, 0, 250, 300), rect(250, 0, 500, 300)],
        SQBM=[340291001002, 340291003001],
        社区名称=["江岸社区", "松林社区"],
        所属街道=["弋江街道", "赭麓街道"],
    )
    cells = generate_grid(frame([rect(0, 0, 500, 300)]), size=100, communities=communities, origin=(X0, Y0))
    west = cells[cells["comm_code"] == "340291001002"]
    east = cells[cells["comm_code"] == "340291003001"]
    assert len(west) == len(east) == 9  # the middle column is split along x = 250
    assert west["code"].tolist() == [f"340291001002{i:03d}" for i in range(1, 10)]
    assert west["name"].iloc[0] == "江岸社区第001网格"
    assert set(west["street"]) == {"弋江街道"} and set(east["street"]) == {"赭麓街道"}
    assert set(east["street_cd"]) == {"340291003"} and set(cells["dist_code"]) == {ADMIN}
    # row from the north first, then west→east: 001 is the north-west piece, 004 starts the second row
    c = east.geometry.centroid
    assert (c.iloc[0].x - X0, c.iloc[0].y - Y0) == pytest.approx((275, 250))
    assert (c.iloc[3].x - X0, c.iloc[3].y - Y0) == pytest.approx((275, 150))
    assert east["area_m2"].iloc[0] == pytest.approx(5_000)


def test_gap_between_communities_joins_the_biggest_piece_of_the_tile():
    communities = frame([rect(0, 0, 240, 200), rect(260, 0, 500, 200)], code=["340291001001", "340291001002"])
    cells = generate_grid(frame([rect(0, 0, 500, 200)]), size=100, communities=communities, origin=(X0, Y0))
    assert_covers_exactly(cells, rect(0, 0, 500, 200))
    middle = cells[cells.geometry.intersects(shapely.Point(X0 + 250, Y0 + 50))]
    assert len(middle) == 1
    # the tile from x=200 to 300 has 40 m in the west community and 40 m in the east; the first wins the tie
    assert middle["comm_code"].iloc[0] in {"340291001001", "340291001002"}
    assert middle["area_m2"].iloc[0] == pytest.approx(6_000)


def test_communities_away_from_the_boundary():
    communities = frame([rect(1000, 0, 1200, 100)], code=["340291001001"])
    with pytest.raises(InputError):
        generate_grid(frame([rect(0, 0, 200, 100)]), communities=communities)


def test_more_than_999_cells_continue_into_the_community_segment():
    cells = generate_grid(
        frame([rect(0, 0, 1100, 1000)]), size=10 * math.sqrt(10), admin_code=ADMIN, origin=(X0, Y0)
    )
    assert len(cells) > 1000
    assert_codes(cells)
    assert cells["code"].iloc[998] == "340291000000999"
    assert cells["code"].iloc[999] == "340291000001000"


def test_too_many_cells_in_one_community_suggests_a_larger_size():
    communities = frame([rect(0, 0, 1000, 1000)], code=["340291001001"])
    with pytest.raises(InputError) as err:
        generate_grid(frame([rect(0, 0, 1000, 1000)]), size=20, communities=communities)
    assert "340291001001" in err.value.zh and "size=" in err.value.en
    assert err.value.details["cells"] == 2500
    assert err.value.details["suggested_size"] == 34
    cells = generate_grid(frame([rect(0, 0, 1000, 1000)]), size=34, communities=communities)
    assert len(cells) <= 999


def test_geographic_boundary_is_projected_to_its_gauss_kruger_zone():
    lon, lat = 118.4, 31.3
    ring = [(lon, lat), (lon + 0.01, lat), (lon + 0.01, lat + 0.01), (lon, lat + 0.01)]
    cells = generate_grid(frame([shapely.Polygon(ring)], crs=4490), size=100, admin_code=ADMIN)
    assert cells.crs.to_epsg() == 4548
    expected = frame([shapely.Polygon(ring)], crs=4490).to_crs(4548).area.iloc[0]
    assert cells["area_m2"].sum() == pytest.approx(expected, rel=REL)


def test_far_east_boundary_gets_its_own_zone():
    ring = [(134.5, 47.5), (134.51, 47.5), (134.51, 47.51), (134.5, 47.51)]
    cells = generate_grid(
        frame([shapely.Polygon(ring)], crs=4326), size=200, shape="hex", admin_code="230881"
    )
    assert cells.crs.to_epsg() == 4554


def test_community_codes_are_detected_and_checked():
    boundary = frame([rect(0, 0, 200, 100)])
    communities = frame([rect(0, 0, 200, 100)], 序号=[1], 社区代码=["340291001001"], 名称=["江岸社区"])
    cells = generate_grid(boundary, communities=communities)
    assert set(cells["community"]) == {"江岸社区"} and cells["street"].isna().all()
    with pytest.raises(InputError):
        generate_grid(
            boundary,
            communities=frame([rect(0, 0, 200, 100)], code=["3402910011"]),
            community_code_field="code",
        )
    with pytest.raises(InputError):
        generate_grid(boundary, communities=communities, admin_code="340202")


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({}, InputError),  # no admin code and no communities
        ({"admin_code": "34029"}, InputError),
        ({"admin_code": ADMIN, "size": 0}, InputError),
        ({"admin_code": ADMIN, "shape": "triangle"}, InputError),
    ],
)
def test_bad_arguments(kwargs, error):
    with pytest.raises(error):
        generate_grid(frame([rect(0, 0, 200, 100)]), **kwargs)


def test_boundary_without_crs_or_in_feet():
    with pytest.raises(CRSError):
        generate_grid(frame([rect(0, 0, 200, 100)], crs=None), admin_code=ADMIN)
    with pytest.raises(CRSError):
        generate_grid(frame([shapely.box(0, 0, 1000, 1000)], crs=2263), admin_code=ADMIN)
