"""Editing and adding features by hand: a feature keeps its id across row versions and counts its
versions; an edit is a batch of its own (history, audit, as-of), refused at a stale version and
outside the account's area; rolling back an import whose features were edited since lists those
edits -- on both backends."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pyproj
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from geo.edits.edit import add_feature, edit_feature
from geo.edits.ids import current_rows, find_feature, ids_of_rows
from geo.errors import Conflict, Forbidden, InputError, NotFound
from geo.figures import areas
from geo.imports.batches import rollback
from geo.imports.importer import import_file
from geo.registry import get_layer
from geo.store import accounts
from tests.helpers.builders import COMM_A, COMM_B, EPSG_GK, X0, Y0, grid_frame, points_frame, write_shp
from tests.helpers.postgis import open_test_store
from tests.helpers.web import PASSWORDS, Session, csrf_from, login

pytestmark = pytest.mark.backends

SITES = get_layer("demolition")
TO_LONLAT = pyproj.Transformer.from_crs(EPSG_GK, 4326, always_xy=True)


#: S1 and S2 in community A (units 001 and 005), S3 in community B (its unit 001)
POSITIONS = {"S1": (X0 + 50, Y0 - 50), "S2": (X0 + 150, Y0 - 150), "S3": (X0 + 50, Y0 - 250)}


def _lonlat(x: float, y: float) -> list[float]:
    lon, lat = TO_LONLAT.transform(x, y)
    return [float(lon), float(lat)]


def _import(
    store: Any, tmp_path: Path, name: str, keys: list[str], statuses: list[str], user: str | None = None
):
    xy = [POSITIONS.get(k, (X0 + 250, Y0 - 50)) for k in keys]
    frame = points_frame(xy, 案件编号=keys, 当前状态=statuses, 违建面积=[10.0] * len(keys))
    return import_file(store, "demolition", write_shp(frame, tmp_path / name / "s.shp"), user=user)


@pytest.fixture
def sites(gridded_store: Any, tmp_path: Path) -> Any:
    """The grid and three sites S1-S3 (S1, S2 in community A, S3 in B), none demolished."""
    report = _import(gridded_store, tmp_path, "first", ["S1", "S2", "S3"], ["已登记"] * 3)
    assert report.added == 3
    return gridded_store


def _row(store: Any, key: str) -> Any:
    table = store.read_attributes(SITES, ["case_id"])
    fid = int(table.loc[table["case_id"] == key, "fid"].iloc[0])
    found = find_feature(store, SITES, fid)
    assert found is not None
    return found


def test_a_feature_keeps_its_id_and_counts_versions_across_imports(sites: Any, tmp_path: Path) -> None:
    s1, s2 = _row(sites, "S1"), _row(sites, "S2")
    assert (s1["version"], s2["version"]) == (1, 1) and s1["id"] == s1["fid"]
    report = _import(sites, tmp_path, "second", ["S1", "S2", "S3"], ["已拆除", "已登记", "已登记"])
    assert (report.updated, report.unchanged) == (1, 2)
    again = current_rows(sites, SITES, [s1["id"], s2["id"]])
    assert list(again["id"]) == [s1["id"], s2["id"]]
    assert list(again["version"]) == [2, 1]
    assert again["fid"].iloc[0] != s1["fid"] and again["fid"].iloc[1] == s2["fid"]
    assert again["status"].iloc[0] == "已拆除"
    # the new row's fid names the same feature; the old fid no longer names a current row
    assert find_feature(sites, SITES, int(again["fid"].iloc[0]))["id"] == s1["id"]
    by_row = ids_of_rows(sites, SITES, again["fid"].to_numpy())
    fid_of = dict(zip(again["id"], again["fid"], strict=True))
    assert list(by_row["id"]) == sorted([s1["id"], s2["id"]], key=lambda i: fid_of[i])


def test_an_edit_is_a_batch_of_its_own_with_history_and_audit(sites: Any) -> None:
    s1 = _row(sites, "S1")
    result = edit_feature(
        sites,
        "demolition",
        int(s1["id"]),
        1,
        {"status": "已拆除", "area_m2": "12.5"},
        note="现场核实",
        user="wang",
    )
    assert (result.id, result.version) == (s1["id"], 2) and result.batch_id is not None
    edit_tx, edit_batch = sites.layer_revision("demolition")
    assert edit_batch == result.batch_id
    assert sorted(result.changed) == ["area_m2", "done_on", "status", "status_raw"]
    row = current_rows(sites, SITES, [s1["id"]]).iloc[0]
    assert row["status"] == "已拆除" and float(row["area_m2"]) == 12.5 and row["done_on"]  # today's date
    assert row["case_id"] == "S1" and row["gw_key"] == "S1"  # the survey id stays: later imports still match
    batch = sites.batch(result.batch_id)
    assert (batch.kind, batch.user, batch.updated) == ("edit", "wang", 1)
    assert batch.report["note"] == "现场核实" and batch.report["feature"] == s1["id"]
    entry = next(e for e in sites.audit_entries(action="edit") if e.batch_id == result.batch_id)
    assert entry.action == "edit" and entry.layer == "demolition"
    # the row it replaced is in the history: the layer as of the transaction before reads as before
    old = sites.read_table(SITES, ["status"], tx=int(edit_tx) - 1)
    assert (
        dict(zip(old["fid"].to_pylist(), old["status"].to_pylist(), strict=True))[int(s1["fid"])] == "已登记"
    )
    # rolled back like any batch: the old row comes back, one version further on
    rollback(sites, result.batch_id)
    back = current_rows(sites, SITES, [s1["id"]]).iloc[0]
    assert back["status"] == "已登记" and back["version"] == 3 and back["fid"] == s1["fid"]


def test_an_edit_at_a_stale_version_is_refused_and_writes_nothing(sites: Any, tmp_path: Path) -> None:
    s1 = _row(sites, "S1")
    edit_feature(sites, "demolition", int(s1["id"]), 1, {"address": "一号"})
    batches = len(sites.batches())
    generation = sites.layer_generation(SITES)
    with pytest.raises(Conflict) as caught:
        edit_feature(sites, "demolition", int(s1["id"]), 1, {"address": "另一个"})
    assert caught.value.code == "version_conflict" and caught.value.details["current_version"] == 2
    assert len(sites.batches()) == batches and sites.layer_generation(SITES) == generation
    assert current_rows(sites, SITES, [s1["id"]]).iloc[0]["address"] == "一号"
    # an import that updates the feature bumps its version too: an edit based on 2 is refused
    _import(sites, tmp_path, "third", ["S1"], ["已下发通知"])
    assert current_rows(sites, SITES, [s1["id"]]).iloc[0]["version"] == 3
    with pytest.raises(Conflict):
        edit_feature(sites, "demolition", int(s1["id"]), 2, {"status": "已拆除"})


def test_an_edit_that_changes_nothing_writes_nothing(sites: Any) -> None:
    s1 = _row(sites, "S1")
    batches = len(sites.batches())
    result = edit_feature(sites, "demolition", int(s1["id"]), 1, {"status": "已登记"})
    assert result.batch_id is None and result.version == 1 and result.changed == []
    assert len(sites.batches()) == batches


def test_rolling_back_an_import_with_later_edits_lists_them(sites: Any, tmp_path: Path) -> None:
    s1, s2 = _row(sites, "S1"), _row(sites, "S2")
    second = _import(sites, tmp_path, "second", ["S1", "S2"], ["已下发通知", "已下发通知"])
    e1 = edit_feature(sites, "demolition", int(s1["id"]), 2, {"status": "已拆除"}, user="wang")
    e2 = edit_feature(sites, "demolition", int(s1["id"]), 3, {"address": "二号"}, user="li")
    with pytest.raises(Conflict) as caught:
        rollback(sites, second.batch_id)
    err = caught.value
    assert err.code == "rollback_blocked" and err.details["blocking_batches"] == [e1.batch_id]
    assert [e["batch_id"] for e in err.details["edits"]] == [e1.batch_id]
    assert err.details["edits"][0]["user"] == "wang" and err.details["edits"][0]["feature"] == s1["id"]
    assert f"#{s1['id']}" in err.zh and "edited since" in err.en
    assert current_rows(sites, SITES, [s1["id"]]).iloc[0]["version"] == 4  # nothing rolled back
    # an admin's choice: the edits go with it, newest first, each one audited
    rollback(sites, second.batch_id, drop_edits=True)
    rows = current_rows(sites, SITES, [s1["id"], s2["id"]])
    assert list(rows["status"]) == ["已登记", "已登记"] and list(rows["fid"]) == [s1["fid"], s2["fid"]]
    assert {sites.batch(b).status for b in (e1.batch_id, e2.batch_id, second.batch_id)} == {"rolled_back"}
    rolled = [e.batch_id for e in sites.audit_entries() if e.action == "rollback"]
    assert rolled[-3:] == [e2.batch_id, e1.batch_id, second.batch_id] or set(rolled) >= {
        e1.batch_id,
        e2.batch_id,
        second.batch_id,
    }


def test_edits_keep_to_the_accounts_area(sites: Any) -> None:
    areas.add_bound_user(sites, "a_surveyor", "surveyor", "longenough-1", COMM_A)
    s1, s3 = _row(sites, "S1"), _row(sites, "S3")
    assert str(s3["gw_unit"]).startswith(COMM_B)
    with pytest.raises(NotFound):  # another area's feature, unseen: not found, as to read
        edit_feature(sites, "demolition", int(s3["id"]), 1, {"status": "已拆除"}, user="a_surveyor")
    # moving a feature of the area out of it is refused too
    out = {"type": "Point", "coordinates": _lonlat(X0 + 50, Y0 - 250)}
    with pytest.raises(Forbidden):
        edit_feature(sites, "demolition", int(s1["id"]), 1, geometry=out, user="a_surveyor")
    inside = {"type": "Point", "coordinates": _lonlat(X0 + 150, Y0 - 50)}
    moved = edit_feature(sites, "demolition", int(s1["id"]), 1, geometry=inside, user="a_surveyor")
    assert moved.changed == ["geometry"] and moved.unit == f"{COMM_A}002"
    _, geoms = sites.read_geometry_rows(SITES, np.array([moved.fid]))
    assert geoms[0].x == pytest.approx(X0 + 150, abs=0.01) and geoms[0].y == pytest.approx(Y0 - 50, abs=0.01)
    assert current_rows(sites, SITES, [s1["id"]]).iloc[0]["gw_unit"] == f"{COMM_A}002"
    # an account that may see the district still writes only in its area
    areas.bind_area(sites, "a_surveyor", sees_district=True)
    with pytest.raises(Forbidden):
        edit_feature(sites, "demolition", int(s3["id"]), 1, {"status": "已拆除"}, user="a_surveyor")


def test_adding_a_feature(sites: Any) -> None:
    here = {"type": "Point", "coordinates": _lonlat(X0 + 250, Y0 - 150)}
    made = add_feature(sites, "demolition", {"case_id": "N1", "address": "<b>新</b>"}, here, user="wang")
    assert made.version == 1 and made.unit == f"{COMM_A}006"
    row = current_rows(sites, SITES, [made.id]).iloc[0]
    assert row["status"] == "已登记" and row["found_on"] and row["address"] == "<b>新</b>"
    assert row["gw_key"] == "N1" and sites.batch(made.batch_id).kind == "edit"
    with pytest.raises(Conflict) as taken:
        add_feature(sites, "demolition", {"case_id": "N1"}, here)
    assert taken.value.code == "id_taken"
    far = {"type": "Point", "coordinates": _lonlat(X0 + 5000, Y0 + 5000)}
    with pytest.raises(InputError) as outside:
        add_feature(sites, "demolition", {"address": "远处"}, far)
    assert outside.value.code == "outside_grid"
    areas.add_bound_user(sites, "b_surveyor", "surveyor", "longenough-1", COMM_B)
    with pytest.raises(Forbidden):
        add_feature(sites, "demolition", {"address": "别处"}, here, user="b_surveyor")
    # a later import with the same survey id updates the feature added by hand
    edit_feature(sites, "demolition", made.id, 1, {"status": "已拆除"})
    assert current_rows(sites, SITES, [made.id]).iloc[0]["version"] == 2


def test_the_layer_extent_grows_with_imports_and_edits(sites: Any, tmp_path: Path) -> None:
    """What GIS clients zoom to (``gpkg_contents`` / ``gw_layers``) holds every feature written,
    not only the last import's."""

    def holds(box: Any, x: float, y: float) -> bool:  # a micrometre for the trip through lon/lat
        return box[0] - 1e-6 <= x <= box[2] + 1e-6 and box[1] - 1e-6 <= y <= box[3] + 1e-6

    first = sites.extent(SITES)
    assert first is not None and all(holds(first, x, y) for x, y in POSITIONS.values())
    _import(sites, tmp_path, "lone", ["S9"], ["已登记"])  # one site elsewhere: the box keeps the others
    after = sites.extent(SITES)
    assert all(holds(after, x, y) for x, y in [*POSITIONS.values(), (X0 + 250, Y0 - 50)])
    here = (X0 + 290, Y0 - 290)
    add_feature(sites, "demolition", {"address": "角落"}, {"type": "Point", "coordinates": _lonlat(*here)})
    there = (X0 + 5, Y0 - 5)
    s2 = _row(sites, "S2")
    edit_feature(
        sites, "demolition", int(s2["id"]), 1, geometry={"type": "Point", "coordinates": _lonlat(*there)}
    )
    box = sites.extent(SITES)
    assert holds(box, *here) and holds(box, *there), box
    assert box[0] <= after[0] and box[1] <= after[1] and box[2] >= after[2] and box[3] >= after[3]


@pytest.mark.parametrize(
    ("fields", "geometry", "code"),
    [
        ({"status": "差不多拆了"}, None, "bad_field"),
        ({"nope": 1}, None, "unknown_field"),
        ({"found_on": "2024-13-40"}, None, "bad_field"),
        ({"floors": "2.5"}, None, "bad_field"),
        ({"area_m2": "inf"}, None, "bad_field"),
        ({"address": "x" * 501}, None, "bad_field"),
        ({"address": "a\x00b"}, None, "bad_field"),
        ({"case_id": "S9"}, None, "bad_field"),  # the survey id is fixed once set
        ({}, None, "no_change"),
        (None, {"type": "LineString", "coordinates": [[118.4, 31.3], [118.41, 31.3]]}, "bad_geometry"),
        (None, {"type": "Point", "coordinates": [200, 31.3]}, "bad_geometry"),
        (None, {"type": "Point", "coordinates": ["a", "b"]}, "bad_geometry"),
        (
            None,
            {
                "type": "Polygon",
                "coordinates": [
                    [[118.4, 31.3], [118.41, 31.31], [118.41, 31.3], [118.4, 31.31], [118.4, 31.3]]
                ],
            },
            "bad_geometry",
        ),
    ],
)
def test_bad_values_are_refused_with_a_reason(sites: Any, fields: Any, geometry: Any, code: str) -> None:
    s1 = _row(sites, "S1")
    batches = len(sites.batches())
    with pytest.raises(InputError) as caught:
        edit_feature(sites, "demolition", int(s1["id"]), 1, fields, geometry)
    assert caught.value.code == code and caught.value.zh and caught.value.en
    assert len(sites.batches()) == batches


def test_a_status_may_be_given_by_its_label(sites: Any) -> None:
    s1 = _row(sites, "S1")
    edit_feature(sites, "demolition", int(s1["id"]), 1, {"status": "Demolished", "done_on": "2026-11-30"})
    row = current_rows(sites, SITES, [s1["id"]]).iloc[0]
    assert row["status"] == "已拆除" and row["done_on"] == "2026-11-30"


def test_unknown_features_are_not_found(sites: Any) -> None:
    with pytest.raises(NotFound):
        edit_feature(sites, "demolition", 999, 1, {"status": "已拆除"})


# properties ------------------------------------------------------------------------------------
OPS = st.lists(
    st.one_of(
        st.tuples(st.just("edit"), st.integers(0, 2), st.sampled_from(["已登记", "已下发通知", "已拆除"])),
        st.tuples(st.just("import"), st.integers(0, 2), st.sampled_from(["已登记", "已下发通知", "已拆除"])),
        st.tuples(st.just("rollback"), st.integers(0, 30), st.just("")),
    ),
    min_size=1,
    max_size=8,
)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=OPS)
def test_ids_and_versions_follow_any_sequence_of_writes(
    tmp_path_factory: Any, open_db: Any, ops: list
) -> None:
    """Against a model of the features: after any sequence of imports, edits and rollbacks each
    feature is exactly one current row under its id, holds the status the model says, and its
    version grew by one at each write that changed it -- nothing vanishes, nothing doubles."""
    tmp = tmp_path_factory.mktemp("ops")
    store = open_db(tmp / "data")
    try:
        import_file(store, "grid", write_shp(grid_frame(), tmp / "g" / "g.shp"))
        _import(store, tmp, "base", ["S1", "S2", "S3"], ["已登记"] * 3)
        ids = [int(_row(store, k)["id"]) for k in ("S1", "S2", "S3")]
        # model: per feature a stack of (batch id, status) states; version = writes that changed it
        # (a PostGIS test database serves every example: the versions start where the last ended)
        model = {i: [(None, "已登记")] for i in ids}
        version = {i: int(v) for i, v in zip(ids, current_rows(store, SITES, ids)["version"], strict=True)}
        mine: set[int] = set()
        for n, (op, which, status) in enumerate(ops):
            if op == "rollback":
                live = [b for b in store.batches("demolition") if b.status == "active" and b.id in mine]
                if not live:
                    continue
                batch = live[which % len(live)]
                try:
                    rollback(store, batch.id)
                except Conflict:
                    continue
                for i in ids:
                    if model[i][-1][0] == batch.id:
                        model[i].pop()
                        version[i] += 1
                continue
            i = ids[which]
            if model[i][-1][1] == status:
                continue  # no change: nothing written
            if op == "edit":
                got = edit_feature(store, "demolition", i, version[i], {"status": status})
                batch_id = got.batch_id
            else:
                report = _import(store, tmp, f"op{n}", [f"S{which + 1}"], [status])
                batch_id = report.batch_id
            model[i].append((batch_id, status))
            mine.add(int(batch_id))
            version[i] += 1
        rows = current_rows(store, SITES, ids)
        assert list(rows["id"]) == ids
        assert store.layer_count(SITES) == 3
        assert list(rows["status"]) == [model[i][-1][1] for i in ids]
        assert list(rows["version"]) == [version[i] for i in ids]
    finally:
        store.close()


# over HTTP -----------------------------------------------------------------------------------------
@pytest.fixture
def site_data(tmp_path: Path, store_url: str | None) -> Path:
    data = tmp_path / "store"
    with open_test_store(data) as store:
        import_file(store, "grid", write_shp(grid_frame(), tmp_path / "g" / "g.shp"))
        for name, password in PASSWORDS.items():
            accounts.add_user(store, name, "surveyor" if name.startswith("surveyor") else name, password)
        areas.add_bound_user(store, "b_surveyor", "surveyor", "longenough-1", COMM_B)
        _import(store, tmp_path, "s", ["S1", "S2"], ["已登记", "已登记"], user="surveyor")
    return data


def test_edits_over_http(site_data: Path, make_app: Any) -> None:
    app = make_app(site_data)
    surveyor, viewer, admin = Session(app, "surveyor"), Session(app, "viewer"), Session(app, "admin")
    detail = viewer.request("GET", "/api/features/demolition/1").json
    assert detail["id"] == 1 and detail["properties"]["version"] == 1 and detail["properties"]["id"] == 1
    patch = {"version": 1, "fields": {"status": "已拆除"}, "note": "拆除完毕"}
    assert viewer.request("PATCH", "/api/features/demolition/1", json=patch).status_code == 403
    resp = surveyor.request("PATCH", "/api/features/demolition/1", json=patch)
    assert resp.status_code == 200, resp.json
    assert resp.json["version"] == 2 and resp.headers["ETag"] == '"2"'
    new_fid = resp.json["fid"]
    # the same edit again at version 1: refused, with the version there is now
    stale = surveyor.request("PATCH", "/api/features/demolition/1", json=patch)
    assert stale.status_code == 409 and stale.json["error"] == "version_conflict"
    assert stale.json["details"]["current_version"] == 2 and "刷新" in stale.json["message_zh"]
    # If-Match instead of a version in the body
    by_header = surveyor.request(
        "PATCH",
        "/api/features/demolition/1",
        json={"fields": {"address": "一号"}},
        headers={"If-Match": '"2"'},
    )
    assert by_header.status_code == 200 and by_header.json["version"] == 3
    # the map hands out the fids of current rows: they name the same feature; a retired row's not
    assert viewer.request("GET", f"/api/features/demolition/{by_header.json['fid']}").json["id"] == 1
    assert viewer.request("GET", f"/api/features/demolition/{new_fid}").status_code == 404
    stats = viewer.request("GET", "/api/stats?level=district&layer=demolition").json
    assert stats["rows"][0]["demolition_total"] == 2 and stats["rows"][0]["demolition_completed"] == 1
    history = viewer.request("GET", "/api/features/demolition/1/history").json
    assert [(v["version"], v["kind"], v["user"]) for v in history["versions"]] == [
        (1, "import", "surveyor"),
        (2, "edit", "surveyor"),
        (3, "edit", "surveyor"),
    ]
    # the batches page names an edit in the page's language
    for lang, said, other in (
        ("zh", "编辑要素 1（第 3 版）", "Feature 1"),
        ("en", "Feature 1 edited (version 3)", "编辑"),
    ):
        page = surveyor.request("GET", f"/batches?lang={lang}").get_data(as_text=True)
        assert said in page and other not in page, lang
    assert history["versions"][1]["note"] == "拆除完毕"
    audit = admin.request("GET", "/audit?action=edit").get_data(as_text=True)
    assert "编辑要素" in audit and "surveyor" in audit
    # another area's surveyor: not found, as to read
    b = Session(app, None)
    assert login(b.client, "b_surveyor", "longenough-1").status_code == 302
    b.token = csrf_from(b.client.get("/account").text)
    assert (
        b.request(
            "PATCH", "/api/features/demolition/1", json={"version": 3, "fields": {"status": "已拆除"}}
        ).status_code
        == 404
    )
    # adding
    add = {
        "geometry": {"type": "Point", "coordinates": _lonlat(X0 + 250, Y0 - 50)},
        "fields": {"case_id": "N1"},
    }
    made = surveyor.request("POST", "/api/features/demolition", json=add)
    assert made.status_code == 201 and made.json["version"] == 1
    assert (
        viewer.request("GET", f"/api/features/demolition/{made.json['id']}").json["properties"]["case_id"]
        == "N1"
    )
    # bad bodies: clear 400s
    for body in (
        [1, 2],
        {"version": "x", "fields": {}},
        {"version": 3, "fields": {"status": "?"}},
        {"fields": {}},
    ):
        got = surveyor.request("PATCH", "/api/features/demolition/1", json=body)
        assert got.status_code == 400 and got.json["error"], body
    assert surveyor.request("POST", "/api/features/demolition", json={"fields": {}}).status_code == 400
    assert (
        surveyor.request("PATCH", "/api/features/grid/1", json={"version": 1, "fields": {}}).status_code
        == 400
    )
    # a surveyor may not drop others' edits with a rollback
    batches = admin.request("GET", "/api/batches?layer=demolition").json
    first = min(b["id"] for b in batches)
    refused = admin.request("DELETE", f"/api/batches/{first}")
    assert refused.status_code == 409 and refused.json["details"]["edits"]
    assert surveyor.request("DELETE", f"/api/batches/{first}?drop_edits=1").status_code == 403
    assert admin.request("DELETE", f"/api/batches/{first}?drop_edits=1").status_code == 200


# stores written before the ids --------------------------------------------------------------------
@pytest.mark.slow
def test_a_store_of_the_schema_before_ids_gets_them_on_open(
    sites: Any, tmp_path: Path, store_url: Any
) -> None:
    """A store whose layer tables have no ``gw_id`` / ``gw_version`` (GeoPackage schema 8,
    PostGIS schema 2): read-only, its rows are their features' first versions; opened for
    writing, it gains the columns, and edits work."""
    from geo.store.backends import open_store

    s1 = _row(sites, "S1")
    if store_url is None:
        path = sites.path
        sites.close()
        con = sqlite3.connect(path)
        con.execute('DROP INDEX "demolition_gw_id"')
        con.execute('DROP INDEX "demolition_history_gw_id"')
        for table in ("demolition", "demolition_history"):
            for col in ("gw_id", "gw_version"):
                con.execute(f'ALTER TABLE "{table}" DROP COLUMN {col}')
        con.execute("UPDATE gw_meta SET value='8' WHERE key='schema'")
        con.commit()
        con.close()
        path.chmod(0o444)  # read-only: it cannot be upgraded and is still read
        try:
            with open_store(str(path), data=path.parent) as old:
                assert find_feature(old, SITES, int(s1["fid"]))["version"] == 1
                assert list(ids_of_rows(old, SITES, np.array([int(s1["fid"])]))["id"]) == [int(s1["fid"])]
        finally:
            path.chmod(0o644)
        where = str(path)
    else:
        for table in ("demolition", "demolition_history"):
            sites.conn.execute(f'ALTER TABLE "{table}" DROP COLUMN gw_id, DROP COLUMN gw_version')
        sites.conn.execute("UPDATE gw_meta SET value='2' WHERE key='schema'")
        sites.conn.commit()
        sites.close()
        where = store_url
    with open_store(where, data=tmp_path / "data") as store:
        row = find_feature(store, SITES, int(s1["fid"]))
        assert (row["id"], row["version"]) == (s1["fid"], 1)
        edited = edit_feature(store, "demolition", int(row["id"]), 1, {"status": "已拆除"})
        assert (
            edited.version == 2 and current_rows(store, SITES, [int(row["id"])]).iloc[0]["status"] == "已拆除"
        )


def test_a_features_history_says_who_changed_what_and_when(sites: Any, tmp_path: Path) -> None:
    from geo.edits.history import feature_history

    s1 = _row(sites, "S1")
    _import(sites, tmp_path, "second", ["S1"], ["已下发通知"], user="importer")
    edited = edit_feature(
        sites, "demolition", int(s1["id"]), 2, {"address": "一号"}, note="核实", user="wang"
    )
    rollback(sites, edited.batch_id)
    history = feature_history(sites, "demolition", int(s1["id"]))
    assert history["id"] == s1["id"] and history["version"] == 4
    got = [(v["version"], v["kind"], v["user"], v["rolled_back"], v["changed"]) for v in history["versions"]]
    assert got == [
        (1, "import", None, False, ["case_id", "area_m2", "status"]),
        (2, "import", "importer", False, ["status"]),
        (3, "edit", "wang", True, ["address"]),
        (4, "import", "importer", False, ["address"]),  # the second import's row, brought back
    ]
    assert history["versions"][2]["note"] == "核实"
    assert all(v["at"] for v in history["versions"])
    assert [v["until"] is None for v in history["versions"]] == [False, False, False, True]
    # the same by the current row's fid; not found outside an area
    assert (
        feature_history(sites, "demolition", int(find_feature(sites, SITES, int(s1["id"]))["fid"]))["id"]
        == s1["id"]
    )
    with pytest.raises(NotFound):
        feature_history(sites, "demolition", int(s1["id"]), units=frozenset({f"{COMM_B}001"}))


def test_two_edits_of_one_version_racing_write_once(sites: Any, store_url: Any, tmp_path: Path) -> None:
    """Two accounts send an edit of the same version at the same moment, each on its own
    connection: one is written, the other refused (409), never both."""
    import threading

    from geo.store.backends import open_store

    s1 = _row(sites, "S1")
    where = store_url or str(sites.path)
    results: list[Any] = []
    start = threading.Barrier(2)

    def send(address: str) -> None:
        with open_store(where, data=tmp_path / "data") as own:
            start.wait()
            try:
                results.append(edit_feature(own, "demolition", int(s1["id"]), 1, {"address": address}))
            except Conflict as exc:
                results.append(exc)

    threads = [threading.Thread(target=send, args=(a,)) for a in ("一号", "二号")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    written = [r for r in results if not isinstance(r, Exception)]
    refused = [r for r in results if isinstance(r, Conflict)]
    assert len(written) == 1 and len(refused) == 1 and refused[0].code == "version_conflict"
    row = current_rows(sites, SITES, [s1["id"]]).iloc[0]
    assert row["version"] == 2 and row["address"] in ("一号", "二号")
    assert len([b for b in sites.batches() if b.kind == "edit"]) == 1
