"""Choosing a task's features by a drawn shape (geo.tasks.handover), on both backends: the preview
is the selection creation makes (a property over random shapes and status filters); a shape drawn
in GCJ-02 selects what the same shape in WGS-84 selects; a shape reaching outside the account's
area takes only what lies inside it; hostile shapes are refused as bad requests."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyproj import Transformer

from geo.errors import Conflict, InputError
from geo.figures import areas
from geo.imports.importer import import_file
from geo.reading.gcj02 import wgs84_to_gcj02
from geo.tasks import handover
from geo.tasks.handover import MAX_VERTICES, Selection, selection_from
from tests.helpers.builders import COMM_A, COMM_B, X0, Y0, points_frame, write_shp

pytestmark = pytest.mark.backends

PASSWORD = "draw-pass-1"
STREET = COMM_A[:9]
#: a 6 x 6 lattice of sites over the 300 m x 300 m grid (rows 0-3 in community A, 4-5 in B)
SITES = [(X0 + 25 + 50 * (k % 6), Y0 - 25 - 50 * (k // 6)) for k in range(36)]
STATES = ("已登记", "已下发通知", "已拆除")
STATUS = [STATES[k % 3] for k in range(36)]


@pytest.fixture
def sites(gridded_store, tmp_path):
    store = gridded_store
    frame = points_frame(SITES, 案件编号=[f"D{k:02d}" for k in range(36)], 当前状态=STATUS)
    import_file(store, "demolition", write_shp(frame, tmp_path / "s" / "s.shp"))
    areas.add_bound_user(store, "boss", "admin", PASSWORD)
    areas.add_bound_user(store, "street", "surveyor", PASSWORD, STREET)
    return store


def lonlat_ring(store, box: tuple[float, float, float, float]) -> list[list[float]]:
    """The closed ring of ``box`` (west, south, east, north in the store's metres) in lon/lat."""
    to_lonlat = Transformer.from_crs(store.srs_epsg(), 4326, always_xy=True).transform
    w, s, e, n = box
    return [list(to_lonlat(x, y)) for x, y in [(w, s), (e, s), (e, n), (w, n), (w, s)]]


def sites_in(box: tuple[float, float, float, float], statuses=()) -> set[int]:
    """The indexes of SITES inside ``box`` with one of ``statuses`` (any when empty)."""
    w, s, e, n = box
    return {
        k
        for k, (x, y) in enumerate(SITES)
        if w < x < e and s < y < n and (not statuses or STATUS[k] in statuses)
    }


def first_id(store) -> int:
    """The stable id of the site D00 (SITES[0])."""
    from geo.registry import get_layer

    rows = store.read_attributes(get_layer("demolition"))
    return int(rows.loc[rows["case_id"] == "D00", "fid"].iloc[0])


def chosen_ids(preview) -> list[int]:
    return [one["id"] for one in preview["ids"]]


# the preview is the selection creation makes -----------------------------------------------------
#: box edges on a 10 m lattice, never on a site (sites sit at 25 + 50 k)
edges = st.integers(min_value=-5, max_value=35).map(lambda k: 10 * k)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    xs=st.tuples(edges, edges).filter(lambda p: p[0] != p[1]),
    ys=st.tuples(edges, edges).filter(lambda p: p[0] != p[1]),
    statuses=st.lists(st.sampled_from(STATES), unique=True, max_size=2),
    triangle=st.booleans(),
    user=st.sampled_from(["boss", "street"]),
)
def test_preview_takes_what_creation_takes(sites, xs, ys, statuses, triangle, user):
    store = sites
    box = (X0 + min(xs), Y0 - max(ys), X0 + max(xs), Y0 - min(ys))
    ring = lonlat_ring(store, box)
    if triangle:  # a polygon of three corners: half the box
        ring = [ring[0], ring[1], ring[2], ring[0]]
    body = {"layer": "demolition", "shape": {"type": "Polygon", "coordinates": [ring]}, "status": statuses}
    selection = selection_from(body)
    preview = handover.preview_task(store, selection=selection, area=COMM_A, user=user)
    assert preview["count"] == len(preview["ids"]) == len(set(chosen_ids(preview)))
    assert preview["more"] == max(0, preview["count"] - handover.PREVIEW_SHOWN)
    if not triangle:  # a box: exactly the sites of community A (rows 0-3) inside it, filtered
        inside = {k for k in sites_in(box, statuses) if k < 24}
        assert preview["count"] == len(inside)
    if not preview["count"]:
        with pytest.raises(InputError) as err:
            handover.create_task(store, title="t", selection=selection, area=COMM_A, days=3, user=user)
        assert err.value.code == "no_features"
        return
    if preview["held"]:  # features of an earlier example's task, not verified: refused alike
        with pytest.raises(Conflict) as held:
            handover.create_task(store, title="t", selection=selection, area=COMM_A, days=3, user=user)
        assert held.value.code == "already_handed_over"
        assert held.value.details["features"] == preview["held"]
        return
    task = handover.create_task(store, title="t", selection=selection, area=COMM_A, days=3, user=user)
    items = store.task_items(task.id)
    assert sorted(i.feature for i in items) == sorted(chosen_ids(preview))
    assert {(i.feature, i.unit) for i in items} >= {(one["id"], one["unit"]) for one in preview["items"]}


def test_preview_lists_the_first_and_counts_the_rest(sites):
    store = sites
    ring = lonlat_ring(store, (X0, Y0 - 300, X0 + 300, Y0))
    selection = selection_from({"layer": "demolition", "shape": {"type": "Polygon", "coordinates": [ring]}})
    preview = handover.preview_task(store, selection=selection, area=STREET, user="boss", shown=10)
    assert preview["count"] == 36 and len(preview["items"]) == 10 and preview["more"] == 26
    first = preview["items"][0]
    assert first["status"] in STATES and first["unit"].startswith(STREET)
    assert first["fid"] == first["id"]  # never edited: the first row is the current one
    assert not preview["too_many"] and preview["limit"] == handover.MAX_ITEMS
    # each with a point on it in lon/lat (GCJ-02 when asked), where the map marks it
    to_lonlat = Transformer.from_crs(store.srs_epsg(), 4326, always_xy=True).transform
    case = {one["id"]: one["at"] for one in preview["ids"]}
    lon, lat = to_lonlat(*SITES[0])
    assert case[first_id(store)] == pytest.approx([lon, lat], abs=1e-6)
    shifted = handover.preview_task(store, selection=selection, area=STREET, user="boss", gcj02=True)
    glon, glat = wgs84_to_gcj02(lon, lat)
    assert {o["id"]: o["at"] for o in shifted["ids"]}[first_id(store)] == pytest.approx(
        [float(glon), float(glat)], abs=1e-6
    )
    # a preview writes nothing
    assert store.tasks() == []


def test_a_shape_reaching_outside_the_area_takes_what_lies_inside(sites):
    """The street's account hands community A the whole grid: B's sites stay out, in the preview
    as in the task (creation keeps a filter to the target area, it does not refuse)."""
    store = sites
    ring = lonlat_ring(store, (X0 - 500, Y0 - 800, X0 + 800, Y0 + 500))
    selection = selection_from({"layer": "demolition", "shape": {"type": "Polygon", "coordinates": [ring]}})
    preview = handover.preview_task(store, selection=selection, area=COMM_A, user="street")
    assert preview["count"] == 24
    assert all(one["unit"].startswith(COMM_A) for one in preview["items"])
    task = handover.create_task(store, title="t", selection=selection, area=COMM_A, days=3, user="street")
    assert sorted(i.feature for i in store.task_items(task.id)) == sorted(chosen_ids(preview))
    # the street may not hand over to another street's area: refused alike
    areas.add_bound_user(store, "comm_b", "surveyor", PASSWORD, COMM_B)
    for call in (handover.preview_task, handover.create_task):
        kwargs = {"title": "t", "days": 3} if call is handover.create_task else {}
        with pytest.raises(Exception) as err:
            call(store, selection=selection, area=COMM_A, user="comm_b", **kwargs)
        assert getattr(err.value, "code", None) == "outside_area"


# GCJ-02 ------------------------------------------------------------------------------------------
def test_a_square_drawn_in_gcj02_selects_what_the_same_square_in_wgs84_selects(sites):
    store = sites
    box = (X0 + 40, Y0 - 190, X0 + 190, Y0 - 40)
    ring = lonlat_ring(store, box)
    lon, lat = wgs84_to_gcj02([p[0] for p in ring], [p[1] for p in ring])
    drawn = [[float(x), float(y)] for x, y in zip(lon, lat, strict=True)]
    assert abs(drawn[0][0] - ring[0][0]) > 0.003  # the offset is hundreds of metres
    wgs = selection_from({"layer": "demolition", "shape": {"type": "Polygon", "coordinates": [ring]}})
    gcj = selection_from(
        {"layer": "demolition", "crs": "gcj02", "shape": {"type": "Polygon", "coordinates": [drawn]}}
    )
    naive = selection_from({"layer": "demolition", "shape": {"type": "Polygon", "coordinates": [drawn]}})
    got = {
        name: chosen_ids(handover.preview_task(store, selection=sel, area=STREET, user="boss"))
        for name, sel in (("wgs", wgs), ("gcj", gcj), ("naive", naive))
    }
    assert len(got["wgs"]) == len(sites_in(box)) == 9
    assert got["gcj"] == got["wgs"]
    assert got["naive"] != got["wgs"]  # read as WGS-84, the same numbers lie hundreds of metres off


# hostile shapes ----------------------------------------------------------------------------------
SQUARE = [[118.4, 31.3], [118.401, 31.3], [118.401, 31.301], [118.4, 31.301], [118.4, 31.3]]


def many_vertices(n: int) -> list[list[float]]:
    ring = [
        [118.4 + 0.001 * math.cos(2 * math.pi * k / n), 31.3 + 0.001 * math.sin(2 * math.pi * k / n)]
        for k in range(n)
    ]
    return [*ring, ring[0]]


HOSTILE = [
    ({"type": "Polygon", "coordinates": [many_vertices(MAX_VERTICES + 1)]}, "too_many_vertices"),
    (
        {"type": "MultiPolygon", "coordinates": [[many_vertices(MAX_VERTICES // 2)]] * 3},
        "too_many_vertices",
    ),
    ({"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]}, "bad_shape"),  # bow tie
    ({"type": "Polygon", "coordinates": []}, "bad_shape"),
    ({"type": "Polygon", "coordinates": [[]]}, "bad_shape"),
    ({"type": "Polygon", "coordinates": [[[118.4, 31.3]] * 4]}, "bad_shape"),  # no area
    ({"type": "Polygon", "coordinates": [SQUARE[:-1]]}, "bad_shape"),  # not closed
    ({"type": "Point", "coordinates": [118.4, 31.3]}, "bad_shape"),
    ({"type": "LineString", "coordinates": SQUARE}, "bad_shape"),
    ({"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [SQUARE]}}, "bad_shape"),
    ({"type": "Polygon", "coordinates": [[[200, 0], [201, 0], [201, 1], [200, 0]]]}, "shape_out_of_range"),
    ({"type": "Polygon", "coordinates": [[[0, 95], [1, 95], [1, 96], [0, 95]]]}, "shape_out_of_range"),
    ({"type": "Polygon", "coordinates": [[[1e308, 0], [1, 0], [1, 1], [1e308, 0]]]}, "shape_out_of_range"),
    ({"type": "Polygon", "coordinates": [[[math.inf, 0], [1, 0], [1, 1], [0, 0]]]}, "shape_out_of_range"),
    ({"type": "Polygon", "coordinates": [[[math.nan, 0], [1, 0], [1, 1], [0, 0]]]}, "shape_out_of_range"),
    ({"type": "Polygon", "coordinates": [[["118", "31"], [1, 0], [1, 1], ["118", "31"]]]}, "bad_shape"),
    ({"type": "Polygon", "coordinates": [[[True, 0], [1, 0], [1, 1], [True, 0]]]}, "bad_shape"),
    ({"type": "Polygon", "coordinates": [[[0, 0, 0, 0], [1, 0], [1, 1], [0, 0]]]}, "bad_shape"),
    ({"type": "Polygon", "coordinates": "x"}, "bad_shape"),
    ({"type": "Polygon"}, "bad_shape"),
    ("POLYGON((0 0, 1 0, 1 1, 0 0))", "bad_shape"),
    ([1, 2, 3], "bad_shape"),
]


@pytest.mark.parametrize(("shape", "code"), HOSTILE, ids=[f"{i}-{c}" for i, (_s, c) in enumerate(HOSTILE)])
def test_hostile_shapes_are_bad_requests(shape, code):
    with pytest.raises(InputError) as err:
        selection_from({"layer": "demolition", "shape": shape})
    assert err.value.code == code
    assert err.value.zh and err.value.en
    if code == "too_many_vertices":
        assert str(MAX_VERTICES) in err.value.zh and str(MAX_VERTICES) in err.value.en


def test_an_unknown_crs_is_a_bad_request():
    shape = {"type": "Polygon", "coordinates": [SQUARE]}
    with pytest.raises(InputError) as err:
        selection_from({"layer": "demolition", "shape": shape, "crs": "bd09"})
    assert err.value.code == "bad_crs"
    assert selection_from({"layer": "demolition", "shape": shape, "crs": "EPSG:4326"}).shape is not None


def test_the_cap_counts_every_ring_and_a_shape_at_the_cap_is_taken(sites):
    ring = many_vertices(MAX_VERTICES - 1)  # MAX_VERTICES positions with the closing one
    selection = selection_from({"layer": "demolition", "shape": {"type": "Polygon", "coordinates": [ring]}})
    assert isinstance(selection, Selection)
    coords = np.asarray(selection.shape["coordinates"][0])
    assert coords.shape == (MAX_VERTICES, 2)
    handover.preview_task(sites, selection=selection, area=STREET, user="boss")


def test_past_what_a_task_may_hold_the_preview_counts_and_creation_refuses(sites, monkeypatch):
    store = sites
    monkeypatch.setattr(handover, "MAX_ITEMS", 5)
    ring = lonlat_ring(store, (X0, Y0 - 300, X0 + 300, Y0))
    selection = selection_from({"layer": "demolition", "shape": {"type": "Polygon", "coordinates": [ring]}})
    preview = handover.preview_task(store, selection=selection, area=STREET, user="boss")
    assert preview["count"] == 36 and preview["too_many"] and preview["limit"] == 5
    assert len(preview["ids"]) == 5
    with pytest.raises(InputError) as err:
        handover.create_task(store, title="t", selection=selection, area=STREET, days=3, user="boss")
    assert err.value.code == "too_many"
    assert store.tasks() == []
