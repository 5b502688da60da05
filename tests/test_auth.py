"""Accounts on the web: every route × every role, CSRF, API tokens, cookies, login throttling,
ownership of uploads and batches, the audit trail and the security headers."""

from __future__ import annotations

import io
import logging
import re
import zipfile

import pytest

from geo.imports.importer import import_file
from geo.store import accounts
from tests.helpers.builders import X0, Y0, grid_frame, points_frame, shapefile_zip, write_shp
from tests.helpers.postgis import open_test_store
from tests.helpers.web import PASSWORDS, Session, csrf_from, login

pytestmark = pytest.mark.backends

ROLE_OF = {"admin": "admin", "surveyor": "surveyor", "surveyor2": "surveyor", "viewer": "viewer"}


@pytest.fixture
def data(tmp_path, store_url):
    """The data folder of a store with the grid, the accounts and two sites (on PostGIS,
    ``store_url`` names the store)."""
    data = tmp_path / "store"
    with open_test_store(data) as store:
        import_file(store, "grid", write_shp(grid_frame(), tmp_path / "g" / "g.shp"))
        for name, password in PASSWORDS.items():
            accounts.add_user(store, name, ROLE_OF[name], password)
        sites = points_frame([(X0 + 50, Y0 - 50), (X0 + 150, Y0 - 150)], 案件编号=["S1", "S2"])
        import_file(store, "demolition", write_shp(sites, tmp_path / "s" / "s.shp"), user="surveyor")
    return data


# endpoint → (method, url, who may: "public" | "map" | "user" | a role)
ROUTES = {
    "main.healthz": ("GET", "/healthz", "public"),
    "main.vendor": ("GET", "/vendor/leaflet/leaflet.js", "public"),
    "main.index": ("GET", "/?tiles=none", "map"),
    "main.stats": ("GET", "/stats", "viewer"),
    "main.field": ("GET", "/field?tiles=none", "surveyor"),
    "main.upload": ("GET", "/upload?tiles=none", "surveyor"),
    "main.batches": ("GET", "/batches", "surveyor"),
    "api.api_layers": ("GET", "/api/layers", "map"),
    "api.api_cells": ("GET", "/api/cells?level=grid&zoom=16", "map"),
    "api.api_summary": ("GET", "/api/summary?layer=demolition", "map"),
    "api.api_features": ("GET", "/api/features/demolition?bbox=118,31,119,32&zoom=16", "map"),
    "api.api_feature": ("GET", "/api/features/demolition/1", "map"),
    "main.features": ("GET", "/features", "viewer"),
    "api.api_features_table": ("GET", "/api/features-table?layer=demolition&format=csv", "viewer"),
    "api.api_search": ("GET", "/api/search?q=S1", "map"),
    "api.api_stats": ("GET", "/api/stats?level=grid&layer=demolition", "viewer"),
    "api.api_ledger": ("GET", "/api/ledger/demolition?format=csv", "viewer"),
    "api.api_html_map": ("GET", "/api/html-map?within=340291001001", "viewer"),
    "api.api_batches": ("GET", "/api/batches", "surveyor"),
    "api.api_rollback": ("DELETE", "/api/batches/999", "surveyor"),
    "api.api_upload": ("POST", "/api/uploads", "surveyor"),
    "api.api_upload_preview": ("POST", "/api/uploads/aaaaaaaaaaaaaaaaaaaaaaaa/preview", "surveyor"),
    "api.api_upload_commit": ("POST", "/api/uploads/aaaaaaaaaaaaaaaaaaaaaaaa/commit", "surveyor"),
    "api.api_upload_features": ("GET", "/api/uploads/aaaaaaaaaaaaaaaaaaaaaaaa/features", "surveyor"),
    "api.api_upload_discard": ("DELETE", "/api/uploads/aaaaaaaaaaaaaaaaaaaaaaaa", "surveyor"),
    "api.api_openapi": ("GET", "/api/openapi.json", "public"),
    "api.api_report": ("GET", "/api/report?as_of=2022-06-30&format=nope", "viewer"),
    "api.api_map_image": ("GET", "/api/map-image?format=nope", "map"),
    "api.api_features_near": ("GET", "/api/features/near?lon=118.4&lat=31.3&radius=1000", "viewer"),
    "photos.api_photo_upload": ("POST", "/api/features/demolition/1/photos", "surveyor"),
    "api.api_feature_edit": ("PATCH", "/api/features/demolition/1", "surveyor"),
    "api.api_feature_add": ("POST", "/api/features/demolition", "surveyor"),
    "api.api_feature_history": ("GET", "/api/features/demolition/1/history", "viewer"),
    "photos.api_photos": ("GET", "/api/features/demolition/1/photos", "viewer"),
    "photos.api_photo": ("GET", "/api/photos/999", "viewer"),
    "patrols.api_patrol_file": ("POST", "/api/patrols", "surveyor"),
    "patrols.api_patrols": ("GET", "/api/patrols", "viewer"),
    "patrols.api_patrol_coverage": ("GET", "/api/patrols/coverage?level=community", "viewer"),
    "patrols.patrol_page": ("GET", "/patrol", "surveyor"),
    "tasks.tasks_page": ("GET", "/tasks", "viewer"),
    "tasks.api_tasks": ("GET", "/api/tasks", "viewer"),
    "tasks.api_task": ("GET", "/api/tasks/999", "viewer"),
    "tasks.api_task_stats": ("GET", "/api/tasks/stats?level=community", "viewer"),
    "tasks.api_task_create": ("POST", "/api/tasks", "surveyor"),
    "tasks.api_task_preview": ("POST", "/api/tasks/preview", "surveyor"),
    "tasks.api_task_fixed": ("POST", "/api/tasks/999/fixed", "surveyor"),
    "tasks.api_task_verify": ("POST", "/api/tasks/999/verify", "surveyor"),
    "tasks.api_task_return": ("POST", "/api/tasks/999/return", "surveyor"),
    "auth.login": ("GET", "/login", "public"),
    "auth.logout": ("POST", "/logout", "public"),
    "auth.account": ("GET", "/account", "user"),
    "auth.users": ("GET", "/users", "admin"),
    "auth.audit": ("GET", "/audit", "admin"),
    "auth.audit_csv": ("GET", "/audit.csv", "admin"),
    "auth.webhooks_page": ("GET", "/webhooks", "admin"),
    "api.api_webhooks": ("GET", "/api/webhooks", "admin"),
    "api.api_webhook_add": ("POST", "/api/webhooks", "admin"),
    "api.api_webhook_remove": ("DELETE", "/api/webhooks/999", "admin"),
    "api.api_webhook_test": ("POST", "/api/webhooks/999/test", "admin"),
    "api.api_webhook_deliveries": ("GET", "/api/webhooks/999/deliveries", "admin"),
}
RANK = {"viewer": 1, "surveyor": 2, "admin": 3}


def allowed(access: str, role: str | None, public_map: bool) -> bool:
    if access == "public":
        return True
    if access == "map" and public_map:
        return True
    if role is None:
        return False
    needed = "viewer" if access in ("map", "user") else access
    return RANK[role] >= RANK[needed]


@pytest.mark.slow
def test_every_route_is_in_the_matrix(data, make_app):
    app = make_app(data)
    endpoints = {r.endpoint for r in app.url_map.iter_rules() if r.endpoint != "static"}
    assert endpoints == set(ROUTES), f"declare the access of: {endpoints ^ set(ROUTES)}"
    for endpoint in endpoints:
        assert getattr(app.view_functions[endpoint], "gw_access", None) is not None, endpoint


@pytest.mark.slow
@pytest.mark.parametrize("public_map", [False, True])
@pytest.mark.parametrize("who", [None, "viewer", "surveyor", "admin"])
def test_route_role_matrix(data, who, public_map, make_app):
    app = make_app(data, GRIDWATCH_PUBLIC_MAP=public_map)
    session = Session(app, who)
    # /logout ends every session of the account: it comes last
    for endpoint, (method, url, access) in sorted(ROUTES.items(), key=lambda kv: kv[0] == "auth.logout"):
        resp = session.request(method, url)
        resp.close()
        role = ROLE_OF.get(who) if who else None
        if allowed(access, role, public_map):
            assert resp.status_code not in (401, 403), (endpoint, who, resp.status_code)
            assert resp.status_code < 500, (endpoint, who, resp.status_code)
        elif role is None:
            if url.startswith("/api/"):
                assert resp.status_code == 401, (endpoint, resp.status_code)
                assert resp.json["error"] == "login_required"
            else:
                assert resp.status_code == 302 and "/login" in resp.headers["Location"], endpoint
        else:
            assert resp.status_code == 403, (endpoint, who, resp.status_code)
            if url.startswith("/api/"):
                assert resp.json["error"] == "forbidden"


def _upload_zip(tmp_path, name="new.zip"):
    sites = points_frame([(X0 + 60, Y0 - 60)], 案件编号=["N1"])
    shp = write_shp(sites, tmp_path / "up" / "违法建设.shp")
    return (io.BytesIO(shapefile_zip(shp)), name)


@pytest.mark.slow
def test_cookie_writes_need_the_csrf_token_and_token_writes_do_not(data, tmp_path, make_app):
    app = make_app(data)
    s = Session(app, "surveyor")
    no_token = s.client.post("/api/uploads", data={"layer": "demolition", "file": _upload_zip(tmp_path)})
    assert no_token.status_code == 400 and no_token.json["error"] == "csrf_failed"
    bad = s.client.post(
        "/api/uploads",
        data={"layer": "demolition", "file": _upload_zip(tmp_path)},
        headers={"X-CSRFToken": "forged"},
    )
    assert bad.status_code == 400 and bad.json["error"] == "csrf_failed"
    ok = s.request("POST", "/api/uploads", data={"layer": "demolition", "file": _upload_zip(tmp_path)})
    assert ok.status_code == 201
    # the login form itself is protected
    resp = app.test_client().post("/login", data={"username": "admin", "password": PASSWORDS["admin"]})
    assert resp.status_code == 400
    # a script with an API token sends no CSRF token
    with open_test_store(data) as store:
        _tok, secret = accounts.create_token(store, "surveyor", "script")
    resp = app.test_client().post(
        "/api/uploads",
        data={"layer": "demolition", "file": _upload_zip(tmp_path)},
        headers={"Authorization": f"Bearer {secret}"},
    )
    assert resp.status_code == 201


@pytest.mark.slow
def test_api_tokens_authenticate_until_revoked(data, make_app):
    app = make_app(data)
    with open_test_store(data) as store:
        token, secret = accounts.create_token(store, "viewer", "dashboard")
    c = app.test_client()
    auth = {"Authorization": f"Bearer {secret}"}
    assert c.get("/api/stats?level=grid&layer=demolition", headers=auth).status_code == 200
    assert c.get("/api/batches", headers=auth).status_code == 403  # a viewer's token is a viewer
    assert c.get("/api/stats", headers={"Authorization": "Bearer gw_wrong"}).status_code == 401
    with open_test_store(data) as store:
        accounts.revoke_token(store, token.id)
    assert c.get("/api/stats?level=grid&layer=demolition", headers=auth).status_code == 401


@pytest.mark.slow
def test_tokens_are_made_and_revoked_on_the_account_page(data, make_app):
    app = make_app(data)
    s = Session(app, "viewer")
    page = s.request(
        "POST", "/account", data={"action": "token", "tk-label": "报表脚本", "csrf_token": s.token}
    )
    secret = re.search(r'id="gw-new-token">([^<]+)<', page.text).group(1)
    auth = {"Authorization": f"Bearer {secret}"}
    assert app.test_client().get("/api/layers", headers=auth).status_code == 200
    with open_test_store(data) as store:
        token_id = store.list_tokens("viewer")[0].id
    # another user cannot revoke it
    other = Session(app, "surveyor")
    resp = other.request(
        "POST", "/account", data={"action": "revoke", "token_id": token_id, "csrf_token": other.token}
    )
    assert resp.status_code == 404
    assert app.test_client().get("/api/layers", headers=auth).status_code == 200
    s.request("POST", "/account", data={"action": "revoke", "token_id": token_id, "csrf_token": s.token})
    assert app.test_client().get("/api/layers", headers=auth).status_code == 401


@pytest.mark.slow
def test_session_cookie_flags(data, make_app):
    resp = login(make_app(data).test_client(), "viewer")
    cookie = next(h for h in resp.headers.getlist("Set-Cookie") if h.startswith("gridwatch_session="))
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    resp = login(make_app(data, GRIDWATCH_SECURE_COOKIES="1").test_client(), "viewer")
    cookie = next(h for h in resp.headers.getlist("Set-Cookie") if h.startswith("gridwatch_session="))
    assert "Secure" in cookie


@pytest.mark.slow
@pytest.mark.parametrize(
    ("target", "location"),
    [
        ("/stats", "/stats"),
        ("//evil.example/x", "/"),
        ("https://evil.example/x", "/"),
        ("/\\evil.example/x", "/"),  # browsers read a backslash as a slash
        ("/stats\r\nSet-Cookie: x=1", "/"),  # would split the Location header
        ("/stats\x00", "/"),
        ("stats", "/"),
    ],
)
def test_login_follows_only_local_next_links(data, target, location, make_app):
    c = make_app(data).test_client()
    token = csrf_from(c.get("/login").text)
    form = {"username": "viewer", "password": PASSWORDS["viewer"], "csrf_token": token}
    resp = c.post("/login", query_string={"next": target}, data=form)
    assert resp.status_code == 302 and resp.headers["Location"] == location


@pytest.mark.slow
def test_failed_logins_lock_the_name(data, make_app):
    app = make_app(data)
    c = app.test_client()
    for _ in range(accounts.MAX_FAILURES):
        assert login(c, "viewer", "wrong-password").status_code == 401
    locked = login(c, "viewer")
    assert locked.status_code == 429 and "登录失败次数过多" in locked.text


@pytest.mark.slow
def test_failures_from_an_address_never_refuse_a_right_password(data, make_app):
    """Forty failures for a name nobody has, from one address (behind NAT: everyone's), and
    then a colleague at that address signs in with the right password."""
    app = make_app(data)
    office = {"REMOTE_ADDR": "192.0.2.10"}
    c = app.test_client()
    token = csrf_from(c.get("/login", environ_base=office).text)
    for i in range(40):
        form = {"username": "nobody", "password": f"guess-{i:04d}", "csrf_token": token}
        assert c.post("/login", data=form, environ_base=office).status_code in (401, 429)
    colleague = app.test_client()
    assert login(colleague, "surveyor", environ_base=office).status_code == 302


def _normalised(resp, name: str) -> tuple:
    """A login answer with what differs by design taken out: the name typed (echoed in the
    form), the CSP nonce and CSRF token (new for every answer), the session cookie."""
    text = resp.get_data(as_text=True).replace(name, "NAME")
    text = re.sub(r"nonce-?[=\"']*[A-Za-z0-9_-]{16,}", "NONCE", text)
    text = re.sub(r'(csrf-token" content="|csrf_token" type="hidden" value=")[^"]+', r"\1TOKEN", text)
    headers = sorted(
        (k, re.sub(r"'nonce-[^']+'", "NONCE", v))
        for k, v in resp.headers.items()
        if k not in ("Set-Cookie", "Content-Length")
    )
    return resp.status_code, text, headers


@pytest.mark.slow
def test_unknown_and_known_names_get_identical_answers(data, monkeypatch, make_app):
    hashes = {"checked": 0}
    real_check = accounts.verify_password

    def counting_check(pwhash, password):
        hashes["checked"] += 1
        return real_check(pwhash, password)

    monkeypatch.setattr(accounts, "verify_password", counting_check)
    app = make_app(data)
    answers = {}
    for name, addr in (("viewer", "198.51.100.1"), ("nobody-here", "198.51.100.2")):
        c = app.test_client()
        hashes["checked"] = 0
        answers[name] = [
            _normalised(login(c, name, "wrong-password", environ_base={"REMOTE_ADDR": addr}), name)
            for _ in range(accounts.MAX_FAILURES + 2)
        ]
        assert hashes["checked"] == accounts.MAX_FAILURES + 2  # one password check per attempt
    assert answers["viewer"] == answers["nobody-here"]
    assert [a[0] for a in answers["viewer"]] == [401] * accounts.MAX_FAILURES + [429, 429]


@pytest.mark.slow
def test_a_locked_admin_still_gets_in_from_elsewhere(data, make_app):
    app = make_app(data)
    attacker = app.test_client()
    a = {"environ_base": {"REMOTE_ADDR": "203.0.113.66"}}
    for i in range(accounts.MAX_FAILURES + 5):
        login(attacker, "admin", f"guess-{i}", **a)
    assert login(attacker, "admin", **a).status_code == 429  # locked for the guessing address
    b = {"environ_base": {"REMOTE_ADDR": "192.0.2.7"}}
    admin = app.test_client()
    assert login(admin, "admin", **b).status_code == 302
    assert admin.get("/users", **b).status_code == 200
    # and that cleared the lock
    with open_test_store(data) as store:
        assert store.get_user("admin").locked_until is None


@pytest.mark.slow
def test_a_session_cookie_is_refused_after_logout(data, make_app):
    app = make_app(data)
    s = Session(app, "surveyor")
    cookie = s.client.get_cookie("gridwatch_session").value
    assert s.request("GET", "/api/batches").status_code == 200
    assert s.request("POST", "/logout", data={"csrf_token": s.token}).status_code == 302
    replay = app.test_client()
    replay.set_cookie("gridwatch_session", cookie)
    assert replay.get("/api/batches").status_code == 401
    assert replay.get("/batches").status_code == 302  # to /login


@pytest.mark.slow
def test_the_csrf_token_changes_at_login(data, tmp_path, make_app):
    app = make_app(data)
    c = app.test_client()
    before = csrf_from(c.get("/login").text)
    resp = c.post(
        "/login", data={"username": "surveyor", "password": PASSWORDS["surveyor"], "csrf_token": before}
    )
    assert resp.status_code == 302
    after = csrf_from(c.get("/account").text)
    assert after != before
    upload = {"layer": "demolition", "file": _upload_zip(tmp_path)}
    stale = c.post("/api/uploads", data=upload, headers={"X-CSRFToken": before})
    assert stale.status_code == 400 and stale.json["error"] == "csrf_failed"
    upload = {"layer": "demolition", "file": _upload_zip(tmp_path)}
    assert c.post("/api/uploads", data=upload, headers={"X-CSRFToken": after}).status_code == 201


@pytest.mark.slow
@pytest.mark.parametrize("token_id", ["abc", "", "1e3", "-1", "99999999999999999999999"])
def test_revoking_a_token_that_is_no_number_is_a_400(data, token_id, make_app):
    app = make_app(data)
    s = Session(app, "viewer")
    resp = s.request(
        "POST", "/account", data={"action": "revoke", "token_id": token_id, "csrf_token": s.token}
    )
    assert resp.status_code in (400, 404)
    assert resp.status_code == 400 or token_id.isdigit()


@pytest.mark.slow
@pytest.mark.parametrize("page", ["1e20", str(10**20), "0", "-3", "x", "9" * 30])
def test_audit_pages_out_of_range_are_a_400(data, page, make_app):
    admin = Session(make_app(data), "admin")
    resp = admin.request("GET", f"/audit?page={page}")
    assert resp.status_code == 400 and resp.json["error"] == "bad_page"
    assert admin.request("GET", "/audit?page=2").status_code == 200


@pytest.mark.slow
@pytest.mark.parametrize(
    "name", ["viewer\n", " viewer", "viewer ", "vie\x00wer", "\u202eviewer", "vie\u2066wer"]
)
def test_the_users_page_refuses_names_that_hide_characters(data, name, make_app):
    admin = Session(make_app(data), "admin")
    resp = admin.request(
        "POST",
        "/users",
        data={
            "action": "add",
            "new-name": name,
            "new-role": "admin",
            "new-password": "another-pass-1",
            "csrf_token": admin.token,
        },
    )
    assert resp.status_code == 400
    with open_test_store(data) as store:
        assert sorted(u.name for u in store.list_users()) == sorted(PASSWORDS)


@pytest.mark.slow
def test_disabling_a_user_or_changing_a_password_ends_their_sessions(data, make_app):
    app = make_app(data)
    s = Session(app, "surveyor")
    assert s.request("GET", "/api/batches").status_code == 200
    admin = Session(app, "admin")
    resp = admin.request(
        "POST", "/users", data={"action": "disable", "name": "surveyor", "csrf_token": admin.token}
    )
    assert resp.status_code == 200
    assert s.request("GET", "/api/batches").status_code == 401
    assert login(app.test_client(), "surveyor").status_code == 401
    admin.request("POST", "/users", data={"action": "enable", "name": "surveyor", "csrf_token": admin.token})
    s = Session(app, "surveyor")
    admin.request(
        "POST",
        "/users",
        data={
            "action": "password",
            "name": "surveyor",
            "password": "a-new-pass-9",
            "csrf_token": admin.token,
        },
    )
    assert s.request("GET", "/api/batches").status_code == 401
    assert login(app.test_client(), "surveyor", "a-new-pass-9").status_code == 302


@pytest.mark.slow
def test_admins_manage_users_on_the_users_page(data, make_app):
    app = make_app(data)
    admin = Session(app, "admin")
    resp = admin.request(
        "POST",
        "/users",
        data={
            "action": "add",
            "new-name": "newbie",
            "new-role": "surveyor",
            "new-password": "newbie-pass",
            "csrf_token": admin.token,
        },
    )
    assert resp.status_code == 200 and "newbie" in resp.text
    assert login(app.test_client(), "newbie", "newbie-pass").status_code == 302
    resp = admin.request(
        "POST",
        "/users",
        data={"action": "role", "name": "newbie", "role": "viewer", "csrf_token": admin.token},
    )
    with open_test_store(data) as store:
        assert store.get_user("newbie").role == "viewer"
    # an admin cannot lock themselves out
    resp = admin.request(
        "POST", "/users", data={"action": "disable", "name": "admin", "csrf_token": admin.token}
    )
    assert resp.status_code == 400
    with open_test_store(data) as store:
        assert store.get_user("admin").active


@pytest.mark.slow
def test_surveyors_commit_and_roll_back_only_their_own(data, tmp_path, make_app):
    app = make_app(data)
    mine, other, admin = Session(app, "surveyor"), Session(app, "surveyor2"), Session(app, "admin")
    up = mine.request("POST", "/api/uploads", data={"layer": "demolition", "file": _upload_zip(tmp_path)})
    upload_id = up.json["upload_id"]
    for method, suffix in (("GET", "/features"), ("POST", "/preview"), ("POST", "/commit"), ("DELETE", "")):
        resp = other.request(method, f"/api/uploads/{upload_id}{suffix}")
        assert resp.status_code == 403, suffix
    done = mine.request("POST", f"/api/uploads/{upload_id}/commit")
    assert done.status_code == 200
    batch_id = done.json["batch_id"]
    with open_test_store(data) as store:
        assert store.batch(batch_id).user == "surveyor"
    assert other.request("DELETE", f"/api/batches/{batch_id}").status_code == 403
    assert mine.request("DELETE", f"/api/batches/{batch_id}").status_code == 200
    # the grid is the admin's: a surveyor can neither replace it nor roll it back
    grid_zip = io.BytesIO()
    shp = write_shp(grid_frame(), tmp_path / "g2" / "grid.shp")
    with zipfile.ZipFile(grid_zip, "w") as zf:
        for part in shp.parent.iterdir():
            zf.write(part, part.name)
    resp = mine.request(
        "POST", "/api/uploads", data={"layer": "grid", "file": (io.BytesIO(grid_zip.getvalue()), "g.zip")}
    )
    assert resp.status_code == 403
    assert mine.request("DELETE", "/api/batches/1").status_code == 403
    resp = admin.request(
        "POST", "/api/uploads", data={"layer": "grid", "file": (io.BytesIO(grid_zip.getvalue()), "g.zip")}
    )
    assert resp.status_code == 201


@pytest.mark.slow
def test_web_writes_are_audited_and_the_audit_page_exports_csv(data, tmp_path, make_app):
    app = make_app(data)
    s = Session(app, "surveyor")
    up = s.request(
        "POST",
        "/api/uploads",
        data={"layer": "demolition", "file": _upload_zip(tmp_path)},
        environ_base={"REMOTE_ADDR": "10.1.2.3"},
    )
    done = s.request(
        "POST", f"/api/uploads/{up.json['upload_id']}/commit", environ_base={"REMOTE_ADDR": "10.1.2.3"}
    )
    with open_test_store(data) as store:
        entry = store.audit_entries(action="import")[0]
    assert (entry.user, entry.client, entry.batch_id, entry.counts["added"]) == (
        "surveyor",
        "10.1.2.3",
        done.json["batch_id"],
        1,
    )
    admin = Session(app, "admin")
    page = admin.request("GET", "/audit?user=surveyor")
    assert page.status_code == 200 and "10.1.2.3" in page.text
    csv = admin.request("GET", "/audit.csv?action=import")
    assert csv.status_code == 200 and csv.mimetype == "text/csv"
    text = csv.data.decode("utf-8-sig")
    assert text.splitlines()[0].startswith("时间 (Asia/Shanghai),用户,来源地址,操作") and "10.1.2.3" in text
    batches = s.request("GET", "/batches")
    assert "<td>surveyor</td>" in batches.text


@pytest.mark.slow
def test_passwords_never_reach_logs_pages_or_the_audit_trail(data, caplog, make_app):
    caplog.set_level(logging.DEBUG)
    app = make_app(data)
    login(app.test_client(), "viewer", "not-the-password-xyz")
    login(app.test_client(), "viewer")
    admin = Session(app, "admin")
    admin.request(
        "POST",
        "/users",
        data={
            "action": "add",
            "new-name": "lu",
            "new-role": "viewer",
            "new-password": "lu-secret-77",
            "csrf_token": admin.token,
        },
    )
    pages = admin.request("GET", "/users").text + admin.request("GET", "/audit.csv").data.decode("utf-8-sig")
    logged = "\n".join(r.getMessage() for r in caplog.records)
    for secret in ("not-the-password-xyz", PASSWORDS["viewer"], "lu-secret-77"):
        assert secret not in logged and secret not in pages
    with open_test_store(data) as store:
        assert all("lu-secret-77" not in (e.detail or "") for e in store.audit_entries())


@pytest.mark.slow
def test_security_headers_and_nonces(data, make_app):
    app = make_app(data, GRIDWATCH_TILES="https://tiles.example.gov.cn/{z}/{x}/{y}.png")
    s = Session(app, "viewer")
    page = s.request("GET", "/")
    csp = page.headers["Content-Security-Policy"]
    nonce = re.search(r"'nonce-([^']+)'", csp).group(1)
    assert "script-src 'self' 'nonce-" in csp and "frame-ancestors 'none'" in csp
    assert "connect-src 'self'" in csp and "https://tiles.example.gov.cn" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    # every inline script and style block of the page carries this response's nonce
    for tag in re.findall(r"<(?:script|style)\b[^>]*>", page.text):
        if 'type="application/json"' in tag or "src=" in tag:
            continue
        assert f'nonce="{nonce}"' in tag, tag
    other = s.request("GET", "/").headers["Content-Security-Policy"]
    assert re.search(r"'nonce-([^']+)'", other).group(1) != nonce
    # a tile URL of one's own is taken from the settings only, never from the address bar
    resp = s.request("GET", "/?tiles=https://evil.example/{z}/{x}/{y}.png")
    assert resp.status_code == 400
    api = s.request("GET", "/api/layers")
    assert api.headers["X-Content-Type-Options"] == "nosniff" and "Content-Security-Policy" in api.headers


@pytest.mark.slow
def test_first_admin_from_the_command_line_can_log_in(tmp_path, monkeypatch, make_app):
    from geo.cli import main

    monkeypatch.setattr("sys.stdin", io.StringIO("first-admin-pw\n"))
    assert (
        main(["--data", str(tmp_path / "d"), "user", "add", "admin", "--role", "admin", "--password-stdin"])
        == 0
    )
    app = make_app(tmp_path / "d")
    c = app.test_client()
    assert login(c, "admin", "first-admin-pw").status_code == 302
    assert c.get("/users").status_code == 200


@pytest.mark.slow
def test_a_route_that_declares_no_access_is_refused(data, make_app):
    app = make_app(data)

    def forgotten():
        return "should not be served"

    app.add_url_rule("/forgotten", "forgotten", forgotten)
    s = Session(app, "admin")
    resp = s.request("GET", "/forgotten")
    assert resp.status_code == 403 and resp.json["error"] == "forbidden"
