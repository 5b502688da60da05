"""Viewport data for web maps: outlines with figures, features one by one or clustered, GCJ-02 shift."""

from __future__ import annotations

import math
from collections import Counter
from datetime import date, timedelta

import numpy as np
import pyproj
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import layers
from geo.errors import InputError
from geo.figures.tally import tally
from geo.figures.viewport import (
    BIN_PX,
    BBox,
    _bins,
    _lonlat_geoms,
    _to_lonlat,
    cells_in_view,
    clusters,
    features_in_view,
)
from geo.imports.importer import import_file
from geo.reading.gcj02 import wgs84_to_gcj02
from geo.store.backends import open_store
from layers.base import PENDING_CODE, Category, Field, LayerSpec, Status
from tests.helpers.builders import COMM_A, EPSG_GK, X0, Y0, grid_frame, points_frame, write_shp

TO_LONLAT = pyproj.Transformer.from_crs(EPSG_GK, 4326, always_xy=True)
WEST, SOUTH = TO_LONLAT.transform(X0 - 50, Y0 - 350)
EAST, NORTH = TO_LONLAT.transform(X0 + 350, Y0 + 50)
VIEW = BBox(WEST, SOUTH, EAST, NORTH)


@pytest.fixture
def loaded(gridded_store, tmp_path):
    rng = np.random.default_rng(2)
    n = 400
    xy = np.column_stack([X0 + rng.uniform(1, 299, n), Y0 - rng.uniform(1, 299, n)])
    g = points_frame(
        [tuple(p) for p in xy],
        案件编号=[f"V{i}" for i in range(n)],
        违建地址=['<img src=x onerror="alert(1)">'] * n,
        当前状态=["已拆除" if i % 4 == 0 else "已登记" for i in range(n)],
        发现时间=["2022-01-01"] * n,
        拆除时间=["2022-06-01" if i % 4 == 0 else "" for i in range(n)],
    )
    import_file(gridded_store, "demolition", write_shp(g, tmp_path / "v" / "v.shp"))
    return gridded_store


@pytest.mark.slow
def test_features_one_by_one_when_few(loaded):
    fc = features_in_view(loaded, "demolition", VIEW, zoom=14, max_features=1000, detail=True)
    assert fc["aggregated"] is False and fc["total"] == 400 and len(fc["features"]) == 400
    props = fc["features"][0]["properties"]
    assert props["address"] == '<img src=x onerror="alert(1)">'  # data as stored; pages escape it
    lon, lat = fc["features"][0]["geometry"]["coordinates"]
    assert WEST <= lon <= EAST and SOUTH <= lat <= NORTH


@pytest.mark.slow
def test_features_clustered_when_many(loaded):
    fc = features_in_view(loaded, "demolition", VIEW, zoom=12, max_features=50)
    assert fc["aggregated"] is True and fc["total"] == 400
    assert sum(f["properties"]["count"] for f in fc["features"]) == 400  # nothing lost in clusters
    assert sum(f["properties"]["completed"] for f in fc["features"]) == 100
    for f in fc["features"]:  # each ring's arcs add up to its count
        props = f["properties"]
        assert sum(s["count"] for s in props["statuses"]) == props["count"]
    mix: Counter[str | None] = Counter()
    for f in fc["features"]:
        mix.update({s["status"]: s["count"] for s in f["properties"]["statuses"]})
    one_by_one = features_in_view(loaded, "demolition", VIEW, zoom=12, max_features=1000)
    assert one_by_one["aggregated"] is False
    assert mix == Counter(f["properties"]["status"] for f in one_by_one["features"])
    assert mix == {"已拆除": 100, "已登记": 300}


CODES = ["已登记", "已拆除", "未识别"]


@pytest.mark.slow
@settings(max_examples=150, deadline=None)
@given(
    points=st.lists(
        st.tuples(
            st.floats(116.0, 116.2, allow_nan=False),
            st.floats(39.8, 40.0, allow_nan=False),
            st.integers(0, len(CODES)),  # len(CODES): no status
            st.booleans(),
        ),
        max_size=200,
    ),
    zoom=st.integers(8, 18),
)
def test_cluster_status_mix_property(points, zoom):
    lon = np.array([p[0] for p in points], dtype=float)
    lat = np.array([p[1] for p in points], dtype=float)
    status = np.array([p[2] for p in points], dtype=np.int64)
    completed = np.array([p[3] for p in points], dtype=bool)
    got = clusters(lon, lat, completed, status, zoom, CODES)
    # counted again, one point at a time, into the same bins
    size = 360.0 / (256 * 2**zoom) * BIN_PX
    bins: dict[tuple[int, int], Counter[str | None]] = {}
    names = [*CODES, None]
    for x, y, k, _ in points:
        bins.setdefault((math.floor(x / size), math.floor(y / size)), Counter())[names[k]] += 1
    expected = sorted((sorted(c.items(), key=repr) for c in bins.values()), key=repr)
    mixes = [{s["status"]: s["count"] for s in f["properties"]["statuses"]} for f in got]
    assert sorted((sorted(m.items(), key=repr) for m in mixes), key=repr) == expected
    assert sum(f["properties"]["count"] for f in got) == len(points)
    assert sum(f["properties"]["completed"] for f in got) == int(completed.sum())
    for f, m in zip(got, mixes, strict=True):
        assert sum(m.values()) == f["properties"]["count"] and all(m.values())
        assert [s["status"] for s in f["properties"]["statuses"]] == [n for n in names if n in m]


@settings(max_examples=150, deadline=None)
@given(
    cells=st.lists(st.tuples(st.integers(0, 200), st.integers(0, 200)), min_size=1, max_size=300),
    spread=st.sampled_from([1, 3, 1 << 20]),
)
def test_bins_are_numbered_as_a_sort_numbers_them(cells, spread):
    """Counted in one pass (a few bins) or sorted (bins far apart), the clusters' bins are
    those np.unique gives, in the same order."""
    ix = np.array([c[0] for c in cells], dtype=np.int64) * spread
    iy = np.array([c[1] for c in cells], dtype=np.int64)
    ix -= ix.min()
    iy -= iy.min()
    inverse, counts = _bins(ix, iy)
    _, expected_inverse, expected_counts = np.unique(
        ix * (1 << 32) + iy, return_inverse=True, return_counts=True
    )
    assert inverse.tolist() == expected_inverse.ravel().tolist()
    assert counts.tolist() == expected_counts.tolist()


def test_feature_filters(loaded):
    done = features_in_view(loaded, "demolition", VIEW, zoom=16, statuses=("已拆除",))
    assert done["total"] == 100
    may = features_in_view(loaded, "demolition", VIEW, zoom=16, as_of="2022-05-31")
    assert may["total"] == 400 and not any(f["properties"]["completed"] for f in may["features"])
    cell = features_in_view(loaded, "demolition", VIEW, zoom=16, unit=f"{COMM_A}001", detail=True)
    assert 0 < cell["total"] < 400 and {f["properties"]["unit"] for f in cell["features"]} == {f"{COMM_A}001"}
    far = BBox(100.0, 20.0, 100.1, 20.1)
    assert features_in_view(loaded, "demolition", far, zoom=16)["total"] == 0


def test_gcj02_shift(loaded):
    plain = features_in_view(loaded, "demolition", VIEW, zoom=16, max_features=5)
    lon, lat = plain["features"][0]["geometry"]["coordinates"]
    glon, glat = wgs84_to_gcj02(np.array([lon]), np.array([lat]))
    (gw, ge), (gs, gn) = wgs84_to_gcj02(np.array([WEST, EAST]), np.array([SOUTH, NORTH]))
    gview = BBox(float(gw), float(gs), float(ge), float(gn))
    shifted = features_in_view(loaded, "demolition", gview, zoom=16, max_features=5, gcj02=True)
    assert shifted["total"] == plain["total"]
    assert shifted["features"][0]["geometry"]["coordinates"] == pytest.approx([glon[0], glat[0]], abs=1e-6)


@pytest.mark.slow
def test_cells_with_figures(loaded):
    fc = cells_in_view(loaded, "grid", VIEW, zoom=16, layer="demolition")
    assert len(fc["features"]) == 9
    assert sum(f["properties"]["demolition_total"] for f in fc["features"]) == 400
    community = cells_in_view(loaded, "community", VIEW, zoom=14, layer="demolition")
    assert {f["id"] for f in community["features"]} == {"340291001001", "340291001002"}
    few = cells_in_view(loaded, "grid", VIEW, zoom=16, layer="demolition", max_units=3)
    assert few["features"] == [] and few["too_many"] == 9


def test_bad_bbox():
    with pytest.raises(InputError):
        BBox.parse("1,2,3")
    with pytest.raises(InputError):
        BBox.parse("10,10,5,5")
    assert BBox.parse(None) is None


def test_feature_detail_and_slim_map_features(loaded):
    from geo.figures.viewport import feature_detail

    slim = features_in_view(loaded, "demolition", VIEW, zoom=16)
    props = slim["features"][0]["properties"]
    # the map asks for the rest on click; the shape field's value decides the marker
    assert set(props) == {"fid", "status", "completed", "position"}
    full = feature_detail(loaded, "demolition", props["fid"])
    assert full["properties"]["case_id"].startswith("V") and full["properties"]["unit"].startswith("340291")
    with pytest.raises(InputError):
        features_in_view(loaded, "grid", VIEW, zoom=16)


@pytest.mark.slow
def test_features_within_an_area(loaded):
    east = features_in_view(loaded, "demolition", VIEW, zoom=16, within=COMM_A, detail=True)
    everything = features_in_view(loaded, "demolition", VIEW, zoom=16)
    assert 0 < east["total"] < everything["total"]
    assert {f["properties"]["unit"][:12] for f in east["features"]} == {COMM_A}
    with pytest.raises(InputError):
        features_in_view(loaded, "demolition", VIEW, zoom=16, within="999")


def _by_case(store, layer: str, id_field: str) -> dict[str, dict]:
    """Slim map properties of every feature in VIEW, keyed by survey id."""
    ids = {
        f["id"]: f["properties"][id_field]
        for f in features_in_view(store, layer, VIEW, zoom=16, detail=True)["features"]
    }
    return {ids[f["id"]]: f["properties"] for f in features_in_view(store, layer, VIEW, zoom=16)["features"]}


@pytest.mark.slow
def test_features_carry_their_marker_shape_value(gridded_store, tmp_path):
    given = ["地面", "平台", "楼顶", "屋顶", "乱写", ""]
    sites = points_frame(
        [(X0 + 20 + 40 * i, Y0 - 50) for i in range(len(given))],
        案件编号=[f"S{i}" for i in range(len(given))],
        违建位置=given,
        当前状态=["已登记"] * len(given),
    )
    import_file(gridded_store, "demolition", write_shp(sites, tmp_path / "s" / "s.shp"))
    props = _by_case(gridded_store, "demolition", "case_id")
    # aliases are normalised at import; a value outside the vocabulary (stored as 未识别, its text
    # beside it) or an empty one gives None
    assert {k: p["position"] for k, p in props.items()} == {
        "S0": "地面",
        "S1": "平台",
        "S2": "楼顶",
        "S3": "楼顶",
        "S4": None,
        "S5": None,
    }
    detail = features_in_view(gridded_store, "demolition", VIEW, zoom=16, detail=True)
    # lists show what is stored: the code, and the value as surveyed
    assert "未识别" in {f["properties"]["position"] for f in detail["features"]}
    assert "乱写" in {f["properties"]["position_raw"] for f in detail["features"]}
    # a later import changes the value the map gets (the cached column follows the store)
    moved = points_frame([(X0 + 20, Y0 - 50)], 案件编号=["S0"], 违建位置=["平台"], 当前状态=["已登记"])
    import_file(gridded_store, "demolition", write_shp(moved, tmp_path / "m" / "m.shp"))
    assert _by_case(gridded_store, "demolition", "case_id")["S0"]["position"] == "平台"
    # a layer without a shape field sends nothing extra
    parking = points_frame([(X0 + 30, Y0 - 30)], 编号=["P1"], 状态=["已建成"])
    import_file(gridded_store, "parking", write_shp(parking, tmp_path / "p" / "p.shp"))
    assert set(_by_case(gridded_store, "parking", "pid")["P1"]) == {"fid", "status", "completed"}


KIOSK = LayerSpec(
    name="kiosk",
    label_zh="报刊亭",
    label_en="Kiosk",
    geometry_types=frozenset({"Point"}),
    id_field="kid",
    fields=(
        Field("kid", "str", "编号", "Id", ("编号",)),
        Field("side", "str", "路侧", "Side", ("路侧",)),
        Field("status", "str", "状态", "Status", ("状态",)),
    ),
    status_field="status",
    statuses=(Status("在用", "在用", "In use"),),
    default_status="在用",
    categories=(
        Category(
            "side",
            (Status("东", "东", "East", shape="diamond"), Status("西", "西", "West", shape="square")),
        ),
    ),
    shape_field="side",
)


def test_a_declared_layer_gets_marker_shapes(gridded_store, tmp_path):
    layers.register(KIOSK)
    try:
        kiosks = points_frame(
            [(X0 + 20, Y0 - 20), (X0 + 120, Y0 - 20), (X0 + 220, Y0 - 20)],
            编号=["K1", "K2", "K3"],
            路侧=["东", "西", "北"],
        )
        import_file(gridded_store, "kiosk", write_shp(kiosks, tmp_path / "k" / "k.shp"))
        props = _by_case(gridded_store, "kiosk", "kid")
        assert {k: p["side"] for k, p in props.items()} == {"K1": "东", "K2": "西", "K3": None}
    finally:
        layers.unregister("kiosk")


def test_shape_field_must_be_a_category_with_a_shape_per_value():
    with pytest.raises(ValueError, match="not one of its categories"):
        LayerSpec("bad", "坏", "Bad", frozenset({"Point"}), KIOSK.fields, shape_field="kid")
    shapeless = Category("side", (Status("东", "东", "East", shape="circle"), Status("西", "西", "West")))
    with pytest.raises(ValueError, match="needs a shape"):
        LayerSpec(
            "bad",
            "坏",
            "Bad",
            frozenset({"Point"}),
            KIOSK.fields,
            categories=(shapeless,),
            shape_field="side",
        )


# --- as of a day: points and clusters as the tallies count them --------------------------------

#: Statuses of the sites drawn (two of them count as completed) and the day range of their dates.
AS_OF_STATUSES = ["已登记", "拆除中", "已拆除", "已补办手续"]
DAY0 = date(2021, 12, 1)
WORLD = BBox(-180.0, -90.0, 180.0, 90.0)


@pytest.mark.slow
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    sites=st.lists(
        st.tuples(
            st.integers(1, 299),
            st.integers(1, 299),
            st.sampled_from(AS_OF_STATUSES),
            st.none() | st.integers(0, 400),  # found: days after DAY0, or none (then the import day)
            st.none() | st.integers(0, 400),  # completed: days after DAY0, or none (then the import day)
        ),
        min_size=1,
        max_size=40,
    ),
    offset=st.integers(-30, 430) | st.sampled_from(["import", "before import"]),
    zoom=st.sampled_from([12, 16]),
    max_features=st.sampled_from([1, 1000]),
)
def test_done_statuses_as_of_equal_the_tally_property(tmp_path_factory, sites, offset, zoom, max_features):
    folder = tmp_path_factory.mktemp("asof")
    spec = layers.get("demolition")
    done_codes = spec.completed_statuses

    def day_text(n: int | None) -> str:
        return "" if n is None else (DAY0 + timedelta(days=n)).isoformat()

    frame = points_frame(
        [(X0 + x, Y0 - y) for x, y, *_ in sites],
        案件编号=[f"P{i}" for i in range(len(sites))],
        当前状态=[s[2] for s in sites],
        发现时间=[day_text(s[3]) for s in sites],
        拆除时间=[day_text(s[4]) for s in sites],
    )
    with open_store(folder / "data") as store:
        import_file(store, "grid", write_shp(grid_frame(), folder / "g" / "g.shp"), valid_from="2000-01-01")
        import_file(store, "demolition", write_shp(frame, folder / "s" / "s.shp"))
        imported = date.fromisoformat(store.batches("demolition")[0].created_at[:10])
        if offset == "import":
            day = imported
        elif offset == "before import":
            day = imported - timedelta(days=1)
        else:
            assert isinstance(offset, int)
            day = DAY0 + timedelta(days=offset)
        # counted again, site by site, from what was written into the file
        present = [(imported if s[3] is None else DAY0 + timedelta(days=s[3])) <= day for s in sites]
        by_then = [
            s[2] in done_codes and (imported if s[4] is None else DAY0 + timedelta(days=s[4])) <= day
            for s in sites
        ]
        expected_done = sum(p and d for p, d in zip(present, by_then, strict=True))
        expected_pending = sum(
            p and s[2] in done_codes and not d for s, p, d in zip(sites, present, by_then, strict=True)
        )

        fc = features_in_view(store, "demolition", WORLD, zoom=zoom, as_of=day, max_features=max_features)
        assert fc["total"] == sum(present) and fc["as_of"] == day.isoformat()
        mix: Counter[str | None] = Counter()
        if fc["aggregated"]:
            for f in fc["features"]:
                mix.update({s["status"]: s["count"] for s in f["properties"]["statuses"]})
            completed = sum(f["properties"]["completed"] for f in fc["features"])
        else:
            mix.update(f["properties"]["status"] for f in fc["features"])
            completed = sum(f["properties"]["completed"] for f in fc["features"])
            for f in fc["features"]:  # a feature is completed exactly when drawn in a done status
                assert f["properties"]["completed"] == (f["properties"]["status"] in done_codes)
        drawn_done = sum(n for code, n in mix.items() if code in done_codes)
        assert drawn_done == completed == expected_done
        assert mix[PENDING_CODE] == expected_pending
        table = tally(store, "district", ["demolition"], day)
        assert int(table["demolition_completed"].sum()) == expected_done
        assert int(table["demolition_total"].sum()) == sum(present)
        # without a day: every site, in its stored status, none pending
        now = features_in_view(store, "demolition", WORLD, zoom=16, max_features=1000)
        assert now["as_of"] is None and now["total"] == len(sites)
        assert Counter(f["properties"]["status"] for f in now["features"]) == Counter(s[2] for s in sites)


def test_a_site_completed_after_the_day_is_pending_then(loaded):
    before = features_in_view(loaded, "demolition", VIEW, zoom=16, as_of="2022-05-31")
    statuses = Counter(f["properties"]["status"] for f in before["features"])
    assert statuses == {"已登记": 300, PENDING_CODE: 100}
    after = features_in_view(loaded, "demolition", VIEW, zoom=16, as_of="2022-06-01")
    assert Counter(f["properties"]["status"] for f in after["features"]) == {"已登记": 300, "已拆除": 100}
    ring = features_in_view(loaded, "demolition", VIEW, zoom=12, max_features=10, as_of="2022-05-31")
    mix: Counter[str | None] = Counter()
    for f in ring["features"]:
        mix.update({s["status"]: s["count"] for s in f["properties"]["statuses"]})
    assert mix == {"已登记": 300, PENDING_CODE: 100}


def test_positions_and_facts_of_one_state_when_a_commit_comes_between(loaded, monkeypatch):
    """Positions are cached per layer generation, facts per store revision: facts of another
    state (a commit between the two reads) are read again, never combined row by row."""
    from dataclasses import replace

    from geo.errors import StoreError
    from geo.figures import viewport
    from geo.registry import get_layer

    monkeypatch.setattr(viewport, "_map_columns", lambda store, spec: None)  # the full read
    real = viewport.load_facts
    current = real(loaded, get_layer("demolition"))
    stale = replace(current, fids=current.fids[:-1])  # as before the last site was committed
    answers = [stale]
    monkeypatch.setattr(
        viewport, "load_facts", lambda store, spec: answers.pop() if answers else real(store, spec)
    )
    out = features_in_view(loaded, "demolition", VIEW, zoom=18)
    assert out["total"] == len(current.fids) and not answers

    monkeypatch.setattr(viewport, "load_facts", lambda store, spec: stale)  # the layer never settles
    out = features_in_view(loaded, "demolition", VIEW, zoom=18)  # read in one snapshot
    assert out["total"] == len(current.fids)
    monkeypatch.setattr(viewport, "read_facts", lambda store, spec: stale)  # a snapshot not of one state
    with pytest.raises(StoreError) as err:
        features_in_view(loaded, "demolition", VIEW, zoom=18)
    assert err.value.status == 503 and err.value.code == "busy"


def _commit_one_more_site(location, tmp_path, n: int) -> None:
    """Commit a new site through a handle of its own, as another request would."""
    other = open_store(location)
    try:
        site = points_frame(
            [(X0 + 10 + n, Y0 - 10)], 案件编号=[f"R{n}"], 当前状态=["已登记"], 发现时间=["2022-01-01"]
        )
        import_file(other, "demolition", write_shp(site, tmp_path / f"r{n}" / "r.shp"))
    finally:
        other.close()


def test_a_layer_written_between_every_pair_of_reads_is_drawn_as_one_state(loaded, tmp_path, monkeypatch):
    """Positions and facts of different states (a commit landed between the two reads, every
    time) are never combined: after the retries both are read in one snapshot."""
    from geo.figures import viewport
    from geo.registry import get_layer

    monkeypatch.setattr(viewport, "_map_columns", lambda store, spec: None)  # the full read
    real = viewport.load_facts
    location = loaded.path.parent
    before = features_in_view(loaded, "demolition", VIEW, zoom=18)["total"]
    commits: list[int] = []

    def facts_after_a_commit(store, spec):
        commits.append(1)
        _commit_one_more_site(location, tmp_path, len(commits))
        return real(store, spec)

    monkeypatch.setattr(viewport, "load_facts", facts_after_a_commit)
    out = features_in_view(loaded, "demolition", VIEW, zoom=18)
    assert len(commits) == 5
    assert out["total"] == before + 5 == loaded.layer_count(get_layer("demolition"))
    assert len(out["features"]) == out["total"]


def test_geometry_kept_under_a_generation_is_of_that_generation(loaded, tmp_path, monkeypatch):
    """A commit landing while the rows are decoded leaves the decoded copy under the
    generation it was read at, never under the new one."""
    import geo.store.gpkg.feature_reads as feature_reads
    from geo.registry import get_layer

    spec = get_layer("demolition")
    loaded.cache.clear()
    real = feature_reads.decode_geometries
    location = loaded.path.parent
    fired: list[int] = []

    def decode_then_commit(blobs):
        out = real(blobs)
        if not fired:
            fired.append(1)
            _commit_one_more_site(location, tmp_path, 1)
        return out

    monkeypatch.setattr(feature_reads, "decode_geometries", decode_then_commit)
    fids, _ = loaded.read_geometry(spec)
    assert fired
    fids_now, _ = loaded.read_geometry(spec)
    assert len(fids_now) == len(fids) + 1 == loaded.layer_count(spec)


def test_a_snapshot_sees_one_state_while_a_commit_lands_beside_it(loaded, tmp_path):
    """In WAL a commit of another handle does not wait for a snapshot: it lands while the
    snapshot is open, which goes on seeing the state it started with; after it, the new one."""
    import threading

    from geo.registry import get_layer

    spec = get_layer("demolition")
    n = loaded.layer_count(spec)
    with loaded.snapshot():
        assert loaded.layer_count(spec) == n
        writer = threading.Thread(target=_commit_one_more_site, args=(loaded.path.parent, tmp_path, 1))
        writer.start()
        writer.join(timeout=50.0)  # a guard against a commit held back (busy timeout 60 s), not a timing
        assert not writer.is_alive(), "the commit waited for the snapshot"
        other = open_store(loaded.path.parent)
        try:
            assert other.layer_count(spec) == n + 1  # the commit has landed
        finally:
            other.close()
        assert loaded.layer_count(spec) == n and len(loaded.read_geometry(spec)[0]) == n
    assert loaded.layer_count(spec) == n + 1
    assert len(loaded.read_geometry(spec)[0]) == n + 1


def test_no_write_inside_a_snapshot(store):
    with store.snapshot(), pytest.raises(RuntimeError), store.transaction():
        pass
    with store.snapshot(), pytest.raises(RuntimeError), store.admin_transaction():
        pass


class _InGaussKruger:
    def srs_epsg(self) -> int:
        return int(EPSG_GK)


@pytest.mark.parametrize("kind", ["points", "mixed", "with none"])
def test_positions_of_points_are_projected_coordinates_with_their_points_made_when_shown(kind):
    rng = np.random.default_rng(5)
    geoms = list(shapely.points(X0 + rng.uniform(0, 300, 50), Y0 - rng.uniform(0, 300, 50)))
    if kind == "mixed":
        geoms[7] = shapely.box(X0, Y0 - 20, X0 + 20, Y0)
        geoms[9] = shapely.LineString([(X0 + 1, Y0 - 1), (X0 + 40, Y0 - 30)])
    if kind == "with none":
        geoms[3] = None
    arr = np.array(geoms, dtype=object)
    _, lon, lat, lonlat = _to_lonlat(_InGaussKruger(), np.arange(50), arr)  # type: ignore[arg-type]
    # what every row's position was before points were kept as coordinates only
    to_lonlat = pyproj.Transformer.from_crs(EPSG_GK, 4326, always_xy=True)
    want = shapely.transform(arr, lambda xy: np.column_stack(to_lonlat.transform(xy[:, 0], xy[:, 1])))
    on_surface = shapely.point_on_surface(want)
    np.testing.assert_array_equal(lon, shapely.get_x(on_surface))
    np.testing.assert_array_equal(lat, shapely.get_y(on_surface))
    made = _lonlat_geoms(lonlat, lon, lat, np.arange(50))
    assert shapely.to_wkb(made).tolist() == shapely.to_wkb(want).tolist()
    assert (lonlat == None).all() == (kind == "points")  # noqa: E711  (points: made when shown)
    some = np.array([4, 7, 9, 3])
    assert (
        shapely.to_wkb(_lonlat_geoms(lonlat, lon, lat, some)).tolist() == shapely.to_wkb(want[some]).tolist()
    )
