"""The search box's engine (geo.figures.search) and GET /api/search: units of every level by code
or name, features by survey id or address, ranking, limits, hostile text, roles."""

from __future__ import annotations

import dataclasses

import pytest
import shapely

import layers
from geo.errors import InputError
from geo.figures.report import unit_geometry
from geo.figures.search import EXACT, MAX_QUERY, PREFIX, SUBSTRING, search
from geo.imports.importer import import_file
from geo.store import accounts
from geo.store.backends import open_store
from layers.base import Field, LayerSpec
from tests.helpers.builders import COMM_A, COMM_B, X0, Y0, grid_frame, points_frame, write_shp
from tests.helpers.web import PASSWORDS, login

GRID_CODE = f"{COMM_A}001"
STREET = COMM_A[:9]
DISTRICT = COMM_A[:6]


def _sites() -> object:
    return points_frame(
        [(X0 + 50, Y0 - 50), (X0 + 150, Y0 - 150), (X0 + 250, Y0 - 250)],
        案件编号=["WJ-001", "WJ-002", "X<script>%_.*"],
        违建地址=["弋江路1号", "<img src=x>镜湖路%_2号", "中山路 (3) 号"],
        当前状态=["已拆除", "已登记", "已登记"],
    )


def _fill(tmp_path):
    store = open_store(tmp_path / "store")
    import_file(store, "grid", write_shp(grid_frame(), tmp_path / "g" / "g.shp"))
    import_file(store, "demolition", write_shp(_sites(), tmp_path / "s" / "s.shp"))
    parking = points_frame([(X0 + 20, Y0 - 20)], 编号=["P1"], 名称=["弋江停车点"], 地址=["弋江路2号"])
    import_file(store, "parking", write_shp(parking, tmp_path / "p" / "p.shp"))
    return store


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    """One store for the tests that only read it."""
    store = _fill(tmp_path_factory.mktemp("search"))
    yield store
    store.close()


@pytest.fixture
def written(tmp_path):
    """A store of its own, for a test that writes to it."""
    store = _fill(tmp_path)
    yield store
    store.close()


def _keys(hits):
    return [(h.kind, h.group, h.code) for h in hits]


def test_a_unit_grid_code_is_found_exactly_first_with_its_outline(searched):
    hits = search(searched, GRID_CODE)
    first = hits[0]
    assert (first.kind, first.code, first.rank) == ("unit", GRID_CODE, EXACT)
    assert first.group == layers.GRID and first.label == "网格001" and first.parent == "赭山社区"
    # where to go: the cell's own box, a point in it, its outline
    cell = unit_geometry(searched, first.group).loc[GRID_CODE]
    w, s, e, n = first.bbox
    assert (w, s, e, n) == pytest.approx(shapely.bounds(cell).tolist(), abs=1e-6)
    assert cell.contains(shapely.Point(first.point))
    assert shapely.geometry.shape(first.outline).hausdorff_distance(cell) < 1e-6


def test_a_code_prefix_finds_the_units_above_first_then_the_cells_under_it(searched):
    hits = search(searched, STREET, limit=100)
    assert hits[0].code == STREET and hits[0].rank == EXACT
    # the communities under the street, then its nine cells: prefixes, upper levels first
    rest = [(h.group, h.code) for h in hits[1:]]
    levels = [lv.name for lv in layers.get(layers.GRID).levels]
    assert rest[:2] == [(levels[1], COMM_A), (levels[1], COMM_B)]
    assert [g for g, _ in rest[2:]] == [levels[0]] * 9
    assert all(h.rank == PREFIX for h in hits[1:])
    assert len(hits) == 12


def test_names_are_found_by_substring_at_every_level(searched):
    by_name = {h.code: h for h in search(searched, "镜湖")}
    assert COMM_B in by_name and by_name[COMM_B].rank == SUBSTRING
    assert by_name[COMM_B].parent == "弋江街道"
    assert by_name[COMM_B].group_label == "社区"
    street = search(searched, "弋江街道")[0]
    assert (street.code, street.rank) == (STREET, EXACT)
    assert search(searched, "弋江街道", lang="en")[0].group_label == "Street"


def test_features_by_survey_id_and_by_address(searched):
    hits = search(searched, "wj-00")  # any case
    assert _keys(hits) == [("feature", "demolition", "WJ-001"), ("feature", "demolition", "WJ-002")]
    assert all(h.rank == PREFIX for h in hits)
    exact = search(searched, "WJ-002")[0]
    assert exact.rank == EXACT and exact.parent == "网格005"
    assert exact.label.startswith("WJ-002") and "镜湖路" in exact.label
    # an address: the demolition site and the parking point on 弋江路, after the units named 弋江
    on_road = [h for h in search(searched, "弋江路") if h.kind == "feature"]
    assert {(h.group, h.code) for h in on_road} == {("demolition", "WJ-001"), ("parking", "P1")}
    assert all(h.rank == SUBSTRING for h in on_road)
    # a feature's place: a point, its box around it
    w, s, e, n = exact.bbox
    assert w <= exact.point[0] <= e and s <= exact.point[1] <= n and exact.outline is None


def test_the_layer_parameter_narrows_features(searched):
    assert {h.group for h in search(searched, "弋江路", layer="parking") if h.kind == "feature"} == {
        "parking"
    }
    assert [h for h in search(searched, "弋江路", layer=layers.GRID) if h.kind == "feature"] == []


def test_ranking_exact_then_prefix_then_substring(searched):
    hits = search(searched, COMM_A, limit=100)
    ranks = [h.rank for h in hits]
    assert ranks == sorted(ranks) and ranks[0] == EXACT
    # a code that is only inside another code is a substring hit
    inner = search(searched, COMM_A[3:], limit=100)
    assert inner and all(h.rank == SUBSTRING for h in inner)


def test_limit_caps_the_hits(searched):
    assert len(search(searched, DISTRICT, limit=3)) == 3
    assert len(search(searched, DISTRICT, limit=100)) == 1 + 1 + 2 + 9
    for bad in (0, 101):
        with pytest.raises(InputError):
            search(searched, DISTRICT, limit=bad)


def test_no_hit_is_an_empty_list(searched):
    assert search(searched, "不存在的地方") == []


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("%", {"X<script>%_.*", "WJ-002"}),  # literal, not a LIKE wildcard
        ("_", {"X<script>%_.*", "WJ-002"}),
        (".*", {"X<script>%_.*"}),  # literal, not a regex
        ("(3)", {"X<script>%_.*"}),
        ("<script>", {"X<script>%_.*"}),
        ("<img src=x>", {"WJ-002"}),
        ("[", set()),
        ("\\", set()),
    ],
)
def test_hostile_text_is_literal(searched, q, expected):
    assert {h.code for h in search(searched, q) if h.kind == "feature"} == expected


@pytest.mark.parametrize("q", ["", "   ", "x" * (MAX_QUERY + 1)])
def test_empty_or_too_long_queries_are_refused(searched, q):
    with pytest.raises(InputError) as e:
        search(searched, q)
    assert e.value.code == "bad_query"


@pytest.mark.slow
def test_a_layer_without_search_fields_is_searched_by_its_id(written, tmp_path):
    searched = written
    spec = layers.get("parking")
    bare = LayerSpec(
        "kiosks",
        "岗亭",
        "Kiosks",
        frozenset({"Point"}),
        (Field("kid", "str", "编号", "Id", ("编号",)), Field("addr", "str", "地址", "Address", ("地址",))),
        id_field="kid",
    )
    assert bare.searchable_fields == ("kid",)
    assert spec.searchable_fields[0] == spec.id_field
    layers.register(bare)
    try:
        frame = points_frame([(X0 + 60, Y0 - 60)], 编号=["K9"], 地址=["秘密路"])
        import_file(searched, "kiosks", write_shp(frame, tmp_path / "k" / "k.shp"))
        assert _keys(search(searched, "k9")) == [("feature", "kiosks", "K9")]
        assert search(searched, "秘密路") == []
    finally:
        layers.unregister("kiosks")


def test_search_fields_must_be_fields():
    with pytest.raises(ValueError, match="search_fields"):
        dataclasses.replace(layers.get("parking"), search_fields=("nowhere",))


def test_gcj02_shifts_the_place(searched):
    plain = search(searched, GRID_CODE)[0]
    shifted = search(searched, GRID_CODE, gcj02=True)[0]
    dx = shifted.point[0] - plain.point[0]
    assert 0.001 < abs(dx) < 0.01  # a few hundred metres east, as GCJ-02 is


@pytest.mark.slow
def test_a_new_survey_import_is_found_at_once(written, tmp_path):
    searched = written
    assert search(searched, "NEW-9") == []
    frame = points_frame([(X0 + 40, Y0 - 40)], 案件编号=["NEW-9"], 当前状态=["已登记"])
    import_file(searched, "demolition", write_shp(frame, tmp_path / "n" / "n.shp"))
    assert _keys(search(searched, "NEW-9")) == [("feature", "demolition", "NEW-9")]


@pytest.mark.slow
def test_a_new_grid_is_searched_at_once(written, tmp_path):
    grid = grid_frame()
    grid["网格名称"] = [f"新网格{i}" for i in range(len(grid))]
    import_file(written, layers.GRID, write_shp(grid, tmp_path / "g2" / "g.shp"))
    assert [h.label for h in search(written, "新网格3")] == ["新网格3"]
    assert [h for h in search(written, "网格001") if h.kind == "unit"] == []


# --- the API ----------------------------------------------------------------------------------


@pytest.fixture
def api(tmp_path, make_app):
    data = tmp_path / "store"
    with open_store(data) as store:
        import_file(store, "grid", write_shp(grid_frame(), tmp_path / "g" / "g.shp"))
        import_file(store, "demolition", write_shp(_sites(), tmp_path / "s" / "s.shp"))
        accounts.add_user(store, "viewer", "viewer", PASSWORDS["viewer"])
    return make_app(data)


@pytest.mark.slow
def test_api_search_answers_hits(api):
    client = api.test_client()
    login(client, "viewer")
    assert len(client.get(f"/api/search?q={COMM_A}&limit=2").get_json()["hits"]) == 2
    body = client.get(f"/api/search?q={GRID_CODE}").get_json()
    first = body["hits"][0]
    assert first["kind"] == "unit" and first["code"] == GRID_CODE and first["level"] == layers.GRID
    assert first["outline"]["type"] == "Polygon" and len(first["bbox"]) == 4 and len(first["point"]) == 2
    feature = client.get("/api/search?q=WJ-001").get_json()["hits"][0]
    assert (feature["kind"], feature["layer"], feature["code"]) == ("feature", "demolition", "WJ-001")
    assert isinstance(feature["fid"], int)
    shifted = client.get(f"/api/search?q={GRID_CODE}&crs=gcj02").get_json()["hits"][0]
    assert shifted["point"] != first["point"]
    english = client.get("/api/search?q=镜湖&lang=en").get_json()["hits"][0]
    assert english["group_label"] == "Community"


@pytest.mark.slow
@pytest.mark.parametrize(
    "query",
    ["", "q=", "q=%20%20", "q=" + "x" * 101, "q=a&limit=0", "q=a&limit=101", "q=a&limit=x", "q=a&layer=nope"],
)
def test_api_search_refuses_bad_input_with_a_message(api, query):
    client = api.test_client()
    login(client, "viewer")
    r = client.get(f"/api/search?{query}")
    assert r.status_code == 400
    body = r.get_json()
    assert body["message_zh"] and body["message_en"]


@pytest.mark.slow
def test_api_search_needs_an_account_unless_the_map_is_public(api, make_app, tmp_path):
    assert api.test_client().get("/api/search?q=WJ").status_code == 401
    public = make_app(tmp_path / "store", GRIDWATCH_PUBLIC_MAP=True)
    assert public.test_client().get("/api/search?q=WJ").status_code == 200


def test_control_characters_are_spaces_and_never_join_two_fields(searched):
    # the id and the address of WJ-001 are searched as one text joined by a line feed
    assert search(searched, "001\n弋江") == []
    assert [h.code for h in search(searched, "\tWJ-001\r\n")] == ["WJ-001"]
