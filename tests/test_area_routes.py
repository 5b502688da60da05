"""Accounts bound to an area on the web: every route of tests/test_auth.py's ROUTES walked by a
bound viewer, a bound surveyor, a bound account that may see the district and an admin; no
route gives a bound account another area's features, figures or names.  Kept answers and
their tags differ by area; a change of area ends the account's sessions."""

from __future__ import annotations

import json

import pytest

from geo.figures import areas
from geo.imports.importer import import_file
from geo.store import accounts
from tests.helpers.builders import COMM_A, COMM_B, X0, Y0, grid_frame, points_frame, write_shp
from tests.helpers.postgis import open_test_store
from tests.helpers.web import Session, csrf_from, login
from tests.test_auth import ROUTES

pytestmark = pytest.mark.backends

PASSWORD = "area-pass-1"
#: what only community A holds: its sites' case ids, its name, its units' codes
A_ONLY = ("AREAA1", "AREAA2", "赭山社区", COMM_A + "0")
B_SITE = "BSITE1"
#: community B's name is markup: every page shows it as text
B_NAME = "<i>镜湖</i>社区"
ACCOUNTS = {  # name → (role, area, sees the district)
    "b_viewer": ("viewer", COMM_B, False),
    "b_surveyor": ("surveyor", COMM_B, False),
    "b_flagged": ("viewer", COMM_B, True),
    "boss": ("admin", "", False),
}


@pytest.fixture
def data(tmp_path, store_url):
    """A store with the grid, two sites in community A, one in community B and the accounts."""
    data = tmp_path / "store"
    with open_test_store(data) as store:
        grid = grid_frame()
        grid.loc[grid["所属社区"] == "镜湖社区", "所属社区"] = B_NAME
        import_file(store, "grid", write_shp(grid, tmp_path / "g" / "g.shp"))
        for name, (role, area, flag) in ACCOUNTS.items():
            areas.add_bound_user(store, name, role, PASSWORD, area)
            if flag:
                areas.bind_area(store, name, sees_district=True)
        sites = points_frame(
            [(X0 + 50, Y0 - 50), (X0 + 150, Y0 - 150), (X0 + 50, Y0 - 250)],
            案件编号=["AREAA1", "AREAA2", B_SITE],
            当前状态=["已拆除", "未拆除", "未拆除"],
        )
        import_file(store, "demolition", write_shp(sites, tmp_path / "s" / "s.shp"), user="boss")
    return data


def _session(app, name):
    s = Session(app, None)
    assert login(s.client, name, PASSWORD).status_code == 302
    s.token = csrf_from(s.client.get("/account").text)
    return s


# the routes that ask for another area (or a feature of it) by name, on top of ROUTES
PROBES = [
    "/api/features/demolition/1",
    "/api/features/demolition/2",
    f"/api/cells?level=community&zoom=16&within={COMM_A}",
    "/api/cells?level=street&zoom=14",
    "/api/cells?level=district&zoom=12",
    f"/api/summary?layer=demolition&within={COMM_A}",
    "/api/stats?level=community&layer=demolition",
    "/api/stats?level=district&layer=demolition&format=csv",
    "/api/stats?level=grid&layer=demolition&format=xlsx",
    "/api/features/demolition?bbox=118,31,119,32&zoom=18&detail=1",
    "/api/features-table?layer=demolition",
    "/api/features-table?layer=demolition&format=geojson",
    "/api/search?q=AREAA",
    "/api/features/near?lon=118.4&lat=31.3&radius=2000",
    "/api/features/near?lon=118.4&lat=31.3&radius=2000&layer=demolition&status=已拆除",
    "/api/search?q=赭山",
    "/features?layer=demolition",
    "/stats?level=community",
    "/?tiles=none&level=community",
    "/api/patrols/coverage?level=grid&working_days=0",
    "/api/patrols/coverage?level=street&format=csv",
    "/api/patrols/coverage?level=district&format=xlsx",
    "/api/tasks/stats?level=grid",
    "/api/tasks/stats?level=community&format=csv",
]


@pytest.mark.slow
@pytest.mark.parametrize("who", list(ACCOUNTS))
def test_no_route_leaks_another_area(data, who, make_app):
    app = make_app(data)
    session = _session(app, who)
    _role, area, flag = ACCOUNTS[who]
    bound = bool(area) and not flag
    urls = [(m, u) for e, (m, u, _) in sorted(ROUTES.items()) if e != "auth.logout"] + [
        ("GET", u) for u in PROBES
    ]
    seen_b = False
    for method, url in urls:
        resp = session.request(method, url)
        body = resp.get_data()
        resp.close()
        assert resp.status_code < 500, (who, url, resp.status_code)
        if url.startswith("/users") or url.startswith("/audit"):
            continue  # admins only (and they see everything)
        text = body.decode("utf-8", "replace") if not url.endswith("xlsx") else _xlsx_text(body)
        if bound:
            for secret in A_ONLY:
                assert secret not in text, (who, url, secret)
        seen_b |= B_SITE in text
    assert seen_b
    detail = session.request("GET", "/api/features/demolition/1")
    assert detail.status_code == (404 if bound else 200)
    if bound:
        assert detail.json["error"] == "feature_not_found"
        for url in ("/api/ledger/demolition?format=csv", "/api/report?as_of=2022-06-30", "/api/map-image"):
            refused = session.request("GET", url)
            assert refused.status_code == 403 and refused.json["error"] == "outside_area", url
    feats = session.request("GET", "/api/features/demolition?bbox=118,31,119,32&zoom=18").json
    assert len(feats["features"]) == (1 if bound else 3)
    stats = session.request("GET", "/api/stats?level=district&layer=demolition").json
    totals = [r["demolition_total"] for r in stats["rows"] if r["code"] != "UNASSIGNED"]
    assert sum(totals) == (1 if bound else 3)


def _xlsx_text(body: bytes) -> str:
    import io

    import openpyxl

    wb = openpyxl.load_workbook(io.BytesIO(body), read_only=True)
    return json.dumps(
        [[c for c in row] for ws in wb.worksheets for row in ws.iter_rows(values_only=True)],
        default=str,
        ensure_ascii=False,
    )


@pytest.mark.slow
def test_kept_answers_and_tags_differ_by_area(data, make_app):
    with open_test_store(data) as store:
        areas.add_bound_user(store, "a_viewer", "viewer", PASSWORD, COMM_A)
        areas.add_bound_user(store, "b_viewer2", "viewer", PASSWORD, COMM_B)
    app = make_app(data)
    url = "/api/stats?level=community&layer=demolition"
    a, b, b2, boss = (_session(app, n) for n in ("a_viewer", "b_viewer", "b_viewer2", "boss"))
    got = {}
    for name, s in (("a", a), ("b", b), ("boss", boss), ("b2", b2)):
        resp = s.request("GET", url)
        got[name] = (resp.headers["ETag"], resp.json)
    assert len({got[n][0] for n in ("a", "b", "boss")}) == 3
    assert got["b"][0] == got["b2"][0]  # the same area shares the kept answer
    assert [r["code"] for r in got["a"][1]["rows"]] == [COMM_A, "UNASSIGNED"]
    assert [r["code"] for r in got["b"][1]["rows"]] == [COMM_B, "UNASSIGNED"]
    assert got["a"][1]["rows"][-1]["demolition_total"] == 0  # outside every unit is in no area
    # a tag of another area is no tag of this one: the whole answer, never a 304
    for s, other in ((a, "b"), (b, "a"), (boss, "a"), (a, "boss")):
        resp = s.request("GET", url, headers={"If-None-Match": got[other][0]})
        assert resp.status_code == 200 and resp.headers["ETag"] != got[other][0]
    again = a.request("GET", url, headers={"If-None-Match": got["a"][0]})
    assert again.status_code == 304


@pytest.mark.slow
def test_a_change_of_area_ends_the_sessions(data, make_app):
    app = make_app(data)
    viewer = _session(app, "b_viewer")
    assert viewer.request("GET", "/api/layers").status_code == 200
    with open_test_store(data) as store:
        areas.bind_area(store, "b_viewer", COMM_A)
    assert viewer.request("GET", "/api/layers").status_code == 401
    flagged = _session(app, "b_viewer")
    with open_test_store(data) as store:
        areas.bind_area(store, "b_viewer", sees_district=True)
    assert flagged.request("GET", "/api/layers").status_code == 401
    with open_test_store(data) as store:
        accounts.set_role(store, "b_viewer", "surveyor")  # unrelated changes keep the area
        assert store.get_user("b_viewer").area == (COMM_A,)


@pytest.mark.slow
def test_an_upload_keeps_to_the_area(data, tmp_path, make_app):
    import io

    from tests.helpers.builders import shapefile_zip

    app = make_app(data)
    s = _session(app, "b_surveyor")
    sites = points_frame([(X0 + 60, Y0 - 60), (X0 + 60, Y0 - 260)], 案件编号=["UPA", "UPB"])
    zipped = shapefile_zip(write_shp(sites, tmp_path / "up" / "违法建设.shp"))
    up = s.request(
        "POST", "/api/uploads", data={"layer": "demolition", "file": (io.BytesIO(zipped), "x.zip")}
    )
    assert up.status_code == 201, up.json
    report = up.json
    assert report["added"] == 1 and report["rejected_count"] == 1
    (row,) = report["rejected"]
    assert row["row"] == 1 and f"{COMM_A}001" in row["reason_zh"] and "outside the area" in row["reason_en"]
    done = s.request("POST", f"/api/uploads/{report['upload_id']}/commit")
    assert done.status_code in (200, 201), done.json
    assert done.json["added"] == 1 and done.json["rejected_count"] == 1
    feats = s.request("GET", "/api/features/demolition?bbox=118,31,119,32&zoom=18&detail=1").json
    assert len(feats["features"]) == 2  # BSITE1 and UPB


@pytest.mark.slow
def test_admins_set_areas_on_the_users_page(data, make_app):
    app = make_app(data)
    boss = _session(app, "boss")
    page = boss.request("GET", "/users").get_data(as_text=True)
    assert B_NAME not in page and "&lt;i&gt;镜湖&lt;/i&gt;社区" in page  # names are text, never markup
    assert f'<option value="{COMM_A}"' in page and f'<option value="{COMM_B}" selected' in page
    viewer = _session(app, "b_viewer")
    resp = boss.request(
        "POST", "/users", data={"action": "area", "name": "b_viewer", "area": [COMM_A, COMM_B]}
    )
    assert resp.status_code == 200
    with open_test_store(data) as store:
        user = store.get_user("b_viewer")
        assert user.area == (COMM_A, COMM_B) and not user.sees_district
    assert viewer.request("GET", "/api/layers").status_code == 401  # its sessions ended
    resp = boss.request("POST", "/users", data={"action": "area", "name": "b_viewer", "sees_district": "yes"})
    with open_test_store(data) as store:
        user = store.get_user("b_viewer")
        assert user.area == () and user.sees_district
    for form in (
        {"action": "area", "name": "boss", "area": COMM_A},
        {"action": "area", "name": "b_viewer", "area": "340291999"},
        {"action": "area", "name": "b_viewer", "area": "<script>x</script>"},
    ):
        resp = boss.request("POST", "/users", data=form)
        assert resp.status_code in (400, 409), form
        assert "<script>x" not in resp.get_data(as_text=True)
    with open_test_store(data) as store:
        assert store.get_user("boss").area == () and store.get_user("b_viewer").area == ()
        actions = [e.action for e in store.audit_entries()]
        assert actions.count("user_area") >= 2 and "user_sees_district" in actions


@pytest.mark.slow
def test_photos_keep_to_the_area(data, make_app):
    import io

    from PIL import Image

    from geo.imports.photos import add_photo

    def jpeg() -> bytes:
        buf = io.BytesIO()
        Image.new("RGB", (64, 48), (40, 120, 200)).save(buf, "JPEG")
        return buf.getvalue()

    with open_test_store(data) as store:
        a_photo, _ = add_photo(store, data, "demolition", 1, jpeg())  # community A's site
        b_photo, _ = add_photo(store, data, "demolition", 3, jpeg())  # community B's
    app = make_app(data)
    viewer, surveyor, flagged = (_session(app, n) for n in ("b_viewer", "b_surveyor", "b_flagged"))
    a_id, b_id = a_photo.id, b_photo.id
    for url, code in (
        ("/api/features/demolition/1/photos", "feature_not_found"),
        (f"/api/photos/{a_id}", "photo_not_found"),  # naming no feature
        (f"/api/photos/{a_id}?size=thumb", "photo_not_found"),
    ):
        resp = viewer.request("GET", url)
        assert resp.status_code == 404 and resp.json["error"] == code, url
        if code == "photo_not_found":
            assert "要素" not in resp.json["message"] and "feature" not in resp.json["message"], url
        assert flagged.request("GET", url).status_code == 200, url  # may see the district
    assert viewer.request("GET", f"/api/photos/{b_id}").status_code == 200
    listed = viewer.request("GET", "/api/features/demolition/3/photos").json
    assert [p["id"] for p in listed["photos"]] == [b_id]

    def send(session, fid):
        return session.request(
            "POST", f"/api/features/demolition/{fid}/photos", data={"file": (io.BytesIO(jpeg()), "a.jpg")}
        )

    # another area's site is not found to write to, as to read: no answer tells it exists
    unseen, missing = send(surveyor, 1), send(surveyor, 999_999)
    assert unseen.status_code == missing.status_code == 404
    assert unseen.json["error"] == missing.json["error"] == "feature_not_found"
    # a surveyor who may see the district still writes only in its area
    with open_test_store(data) as store:
        areas.add_bound_user(store, "b_flagged_surveyor", "surveyor", PASSWORD, COMM_B)
        areas.bind_area(store, "b_flagged_surveyor", sees_district=True)
    flagged_surveyor = _session(app, "b_flagged_surveyor")
    assert flagged_surveyor.request("GET", f"/api/photos/{a_id}").status_code == 200
    refused = send(flagged_surveyor, 1)
    assert refused.status_code == 403 and refused.json["error"] == "outside_area"
    assert send(surveyor, 3).status_code == 201
    with open_test_store(data) as store:
        assert len(store.photos("demolition", 1)) == 1  # nothing added to community A's site


@pytest.mark.slow
def test_patrols_keep_to_the_area(data, make_app):
    from geo.imports.patrols import file_patrol

    with open_test_store(data) as store:
        file_patrol(store, "boss", units=COMM_A, note="AREAA1 巡查")
        file_patrol(store, "boss", units=COMM_B, note="BSITE1 巡查", amend=True)
    app = make_app(data)
    urls = [
        "/api/patrols",
        f"/api/patrols?unit={COMM_A}",
        "/api/patrols/coverage?level=grid&working_days=0",
        "/api/patrols/coverage?level=community&working_days=0&format=csv",
        "/stats?level=grid",
    ]
    for who in ("b_viewer", "b_surveyor"):
        session = _session(app, who)
        for url in urls:
            resp = session.request("GET", url)
            assert resp.status_code == 200, (who, url)
            for secret in A_ONLY:
                assert secret not in resp.get_data(as_text=True), (who, url, secret)
        listed = session.request("GET", "/api/patrols").json["patrols"]
        assert [p["note"] for p in listed] == ["BSITE1 巡查"]
    surveyor = _session(app, "b_surveyor")
    refused = surveyor.request("POST", "/api/patrols", json={"units": [COMM_A]})
    assert refused.status_code == 403 and refused.json["error"] == "outside_area"
    filed = surveyor.request("POST", "/api/patrols", json={"note": "本区"})
    assert filed.status_code == 201 and all(u.startswith(COMM_B) for u in filed.json["units"])
    flagged = _session(app, "b_flagged")  # may see the district: every filing
    assert len(flagged.request("GET", "/api/patrols").json["patrols"]) == 3


def test_edits_keep_to_the_area(data, make_app):
    """Another area's feature: not found to read (its history) or to edit unless the account may
    see the district (then 403), refused to add at (403); the account's own area: edited and
    added to."""
    import pyproj

    from tests.helpers.builders import EPSG_GK

    def at(x, y):
        lon, lat = pyproj.Transformer.from_crs(EPSG_GK, 4326, always_xy=True).transform(x, y)
        return {"type": "Point", "coordinates": [lon, lat]}

    app = make_app(data)
    viewer, surveyor, boss = (_session(app, n) for n in ("b_viewer", "b_surveyor", "boss"))
    change = {"version": 1, "fields": {"status": "已拆除"}}
    # community A's site, unseen by this account, is not found to edit (as to read), like a
    # site that does not exist: no answer tells the one from the other
    unseen = surveyor.request("PATCH", "/api/features/demolition/1", json=change)
    missing = surveyor.request("PATCH", "/api/features/demolition/999999", json=change)
    assert unseen.status_code == missing.status_code == 404
    assert unseen.json["error"] == missing.json["error"] == "feature_not_found"
    with open_test_store(data) as store:
        areas.add_bound_user(store, "b_flagged_surveyor", "surveyor", PASSWORD, COMM_B)
        areas.bind_area(store, "b_flagged_surveyor", sees_district=True)
    refused = _session(app, "b_flagged_surveyor").request("PATCH", "/api/features/demolition/1", json=change)
    assert refused.status_code == 403 and refused.json["error"] == "outside_area"  # seen, not written
    assert viewer.request("PATCH", "/api/features/demolition/3", json=change).status_code == 403  # a viewer
    gone = viewer.request("GET", "/api/features/demolition/1/history")
    assert gone.status_code == 404 and gone.json["error"] == "feature_not_found"
    assert viewer.request("GET", "/api/features/demolition/3/history").status_code == 200
    moved_out = surveyor.request(
        "PATCH", "/api/features/demolition/3", json={"version": 1, "geometry": at(X0 + 50, Y0 - 50)}
    )
    assert moved_out.status_code == 403
    done = surveyor.request("PATCH", "/api/features/demolition/3", json=change)
    assert done.status_code == 200 and done.json["version"] == 2
    added_out = surveyor.request(
        "POST",
        "/api/features/demolition",
        json={"geometry": at(X0 + 250, Y0 - 50), "fields": {"address": "一号"}},
    )
    assert added_out.status_code == 403 and added_out.json["error"] == "outside_area"
    added = surveyor.request(
        "POST",
        "/api/features/demolition",
        json={"geometry": at(X0 + 250, Y0 - 250), "fields": {"address": "二号"}},
    )
    assert added.status_code == 201
    # the admin edits anywhere; community A's site is as it was
    assert boss.request("GET", "/api/features/demolition/1").json["properties"]["version"] == 1
    assert boss.request("PATCH", "/api/features/demolition/1", json=change).status_code == 200


def test_a_bound_account_lists_its_own_batches_only(data, make_app):
    """Batches of other accounts (their file names) are not listed to an account bound to an area."""
    app = make_app(data)
    surveyor, boss = _session(app, "b_surveyor"), _session(app, "boss")
    assert surveyor.request("GET", "/api/batches").json == []
    made = surveyor.request(
        "POST",
        "/api/features/demolition",
        json={
            "geometry": boss.request("GET", "/api/features/demolition/3").json["geometry"],
            "fields": {"address": "三号"},
        },
    )
    assert made.status_code == 201
    assert [b["id"] for b in surveyor.request("GET", "/api/batches").json] == [made.json["batch_id"]]
    page = surveyor.request("GET", "/batches").get_data(as_text=True)
    assert "s.shp" not in page and "g.shp" not in page
    assert len(boss.request("GET", "/api/batches").json) == 3


def test_the_range_filter_of_a_bound_account_starts_with_its_area(data, make_app):
    """The range filters of the map and the feature list offer "this account's area", not the
    whole district, to an account bound to an area; an admin keeps "the whole district"."""
    app = make_app(data)
    viewer, boss = _session(app, "b_viewer"), _session(app, "boss")
    for url in ("/?layer=demolition", "/features?layer=demolition"):
        for lang, mine, whole in (
            ("zh", "本账户区域", "全区"),
            ("en", "This account's area", "Whole district"),
        ):
            first = viewer.request("GET", f"{url}&lang={lang}").get_data(as_text=True)
            option = first.split('<select name="within">', 1)[1].split("</option>", 1)[0]
            assert mine in option, (url, lang, option)
            admin = boss.request("GET", f"{url}&lang={lang}").get_data(as_text=True)
            option = admin.split('<select name="within">', 1)[1].split("</option>", 1)[0]
            assert whole in option and mine not in option, (url, lang, option)


def test_a_task_preview_keeps_to_the_area(data, make_app):
    """A bound account previews only its area: a drawn shape over the whole district takes the
    sites of its own area, and creating the task with the same body takes the same."""
    from pyproj import Transformer

    from tests.helpers.builders import EPSG_GK

    app = make_app(data)
    surveyor = _session(app, "b_surveyor")
    to_lonlat = Transformer.from_crs(EPSG_GK, 4326, always_xy=True).transform
    ring = [list(to_lonlat(X0 + x, Y0 + y)) for x, y in [(-900, -900), (900, -900), (900, 900), (-900, 900)]]
    body = {
        "title": "t",
        "days": 3,
        "area": COMM_B + "001",
        "layer": "demolition",
        "shape": {"type": "Polygon", "coordinates": [[*ring, ring[0]]]},
    }
    preview = surveyor.request("POST", "/api/tasks/preview", json=body)
    assert preview.status_code == 200, preview.json
    assert preview.json["count"] == 1 and preview.json["items"][0]["unit"].startswith(COMM_B)
    assert not any(secret in preview.get_data(as_text=True) for secret in A_ONLY)
    created = surveyor.request("POST", "/api/tasks", json=body)
    assert created.status_code == 201
    assert [i["feature"] for i in created.json["items"]] == [i["id"] for i in preview.json["ids"]]
    # handing community A's units over is refused alike for the preview and the creation
    for url in ("/api/tasks/preview", "/api/tasks"):
        refused = surveyor.request("POST", url, json={**body, "area": COMM_A})
        assert refused.status_code == 403 and refused.json["error"] == "outside_area", url
