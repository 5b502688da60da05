"""Settings: each one declared in web.settings works when given in the environment (as it is in
production) and in instance/gridwatch.cfg, and README's settings table lists exactly them;
the sample gunicorn settings listen on this machine only unless told otherwise."""

from __future__ import annotations

import io
import re
from pathlib import Path

import flask
import pytest

from geo.errors import InputError
from geo.imports.importer import import_file
from geo.store import accounts
from geo.store.backends import open_store
from server import create_app
from tests.helpers.builders import grid_frame, write_shp
from tests.helpers.web import csrf_from, login
from web.settings import SETTINGS

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def data(tmp_path, monkeypatch):
    """A store with a grid and two accounts, named only by $GRIDWATCH_DATA."""
    data = tmp_path / "env-store"
    with open_store(data) as store:
        import_file(store, "grid", write_shp(grid_frame(), tmp_path / "g" / "g.shp"))
        accounts.add_user(store, "admin", "admin", "admin-pass-1")
        accounts.add_user(store, "viewer", "viewer", "viewer-pass-1")
    monkeypatch.setenv("GRIDWATCH_DATA", str(data))
    return data


def session_cookie(resp) -> str:
    return next(h for h in resp.headers.getlist("Set-Cookie") if h.startswith("gridwatch_session="))


@pytest.mark.slow
def test_data_from_the_environment(data):
    app = create_app()
    assert app.config["GRIDWATCH_DATA"] == str(data)
    assert login(app.test_client(), "viewer", "viewer-pass-1").status_code == 302  # its accounts


@pytest.mark.slow
def test_secure_cookies_from_the_environment(data, monkeypatch):
    assert "Secure" not in session_cookie(login(create_app().test_client(), "viewer", "viewer-pass-1"))
    monkeypatch.setenv("GRIDWATCH_SECURE_COOKIES", "1")
    assert "Secure" in session_cookie(login(create_app().test_client(), "viewer", "viewer-pass-1"))


@pytest.mark.slow
def test_proxy_fix_from_the_environment(data, monkeypatch):
    def audited_client(app) -> str:
        c = app.test_client()
        hop = {"environ_base": {"REMOTE_ADDR": "10.0.0.2"}, "headers": {"X-Forwarded-For": "203.0.113.9"}}
        assert login(c, "admin", "admin-pass-1", **hop).status_code == 302
        token = csrf_from(c.get("/users", **hop).text)
        form = {"action": "add", "new-name": f"u{id(app)}", "new-role": "viewer"}
        c.post("/users", data={**form, "new-password": "password-9", "csrf_token": token}, **hop)
        with open_store(data) as store:
            return store.audit_entries(action="user_add")[0].client

    assert audited_client(create_app()) == "10.0.0.2"
    monkeypatch.setenv("GRIDWATCH_PROXY_FIX", "1")
    assert audited_client(create_app()) == "203.0.113.9"


def test_public_map_from_the_environment(data, monkeypatch):
    assert create_app().test_client().get("/api/layers").status_code == 401
    monkeypatch.setenv("GRIDWATCH_PUBLIC_MAP", "1")
    c = create_app().test_client()
    assert c.get("/api/layers").status_code == 200
    assert c.get("/?tiles=none").status_code == 200
    assert c.get("/stats").status_code == 302  # the map only


@pytest.mark.slow
def test_tianditu_key_from_the_environment(data, monkeypatch):
    monkeypatch.setenv("GRIDWATCH_TIANDITU_KEY", "env-key-123")
    c = create_app().test_client()
    login(c, "viewer", "viewer-pass-1")
    page = c.get("/?tiles=tianditu")
    assert page.status_code == 200 and "tk=env-key-123" in page.text


@pytest.mark.slow
def test_tiles_from_the_environment(data, monkeypatch):
    monkeypatch.setenv("GRIDWATCH_TILES", "https://tiles.example.gov.cn/{z}/{x}/{y}.png")
    c = create_app().test_client()
    login(c, "viewer", "viewer-pass-1")
    page = c.get("/")
    assert "tiles.example.gov.cn/{z}/{x}/{y}.png" in page.text
    assert "https://tiles.example.gov.cn" in page.headers["Content-Security-Policy"]


def test_max_content_length_from_the_environment(data, monkeypatch):
    monkeypatch.setenv("GRIDWATCH_MAX_CONTENT_LENGTH", "2K")
    app = create_app()
    assert app.config["MAX_CONTENT_LENGTH"] == 2048
    with open_store(data) as store:
        _token, secret = accounts.create_token(store, "admin", "script")
    resp = app.test_client().post(
        "/api/uploads",
        data={"layer": "demolition", "file": (io.BytesIO(b"x" * 4096), "big.csv")},
        headers={"Authorization": f"Bearer {secret}"},
    )
    assert resp.status_code == 413 and resp.json["error"] == "too_large"
    assert "2 KB" in resp.json["message_en"]


@pytest.mark.slow
def test_secret_key_from_the_environment(data, monkeypatch):
    monkeypatch.setenv("GRIDWATCH_SECRET_KEY", "a-key-from-the-environment")
    app = create_app()
    assert app.secret_key == "a-key-from-the-environment"
    cookie = session_cookie(login(app.test_client(), "viewer", "viewer-pass-1"))
    # the session is signed with that key, and no key was made in the data directory
    probe = flask.Flask("probe")
    probe.secret_key = "a-key-from-the-environment"
    signed = cookie.split(";", 1)[0].split("=", 1)[1]
    assert probe.session_interface.get_signing_serializer(probe).loads(signed)["_user_id"].endswith(":viewer")
    assert not (data / "secret_key").exists()


@pytest.mark.slow
def test_timezone_from_the_environment(data, monkeypatch):
    """A known_at without a zone, or a bare date, is read in GRIDWATCH_TIMEZONE (the stats'
    metadata shows the moment asked in it)."""
    with open_store(data) as store:
        token = accounts.create_token(store, "viewer", "script")[1]

    def known_at(app) -> str:
        r = app.test_client().get(
            "/api/stats?known_at=2024-05-01", headers={"Authorization": f"Bearer {token}"}
        )
        assert r.status_code == 200, r.get_json()
        return r.get_json()["metadata"]["known_at"]

    assert known_at(create_app()) == "2024-05-01T23:59:59.999999+08:00"
    monkeypatch.setenv("GRIDWATCH_TIMEZONE", "UTC")
    app = create_app()
    assert app.config["GRIDWATCH_TIMEZONE"] == "UTC"
    assert known_at(app) == "2024-05-01T23:59:59.999999+00:00"
    monkeypatch.setenv("GRIDWATCH_TIMEZONE", "Mars/Olympus")
    with pytest.raises(InputError) as exc:
        create_app()
    assert exc.value.code == "bad_setting" and "GRIDWATCH_TIMEZONE" in exc.value.en


def test_a_bad_value_stops_the_start_with_a_clear_message(data, monkeypatch):
    monkeypatch.setenv("GRIDWATCH_PUBLIC_MAP", "perhaps")
    with pytest.raises(InputError) as exc:
        create_app()
    assert exc.value.code == "bad_setting" and "GRIDWATCH_PUBLIC_MAP" in exc.value.en


def test_the_settings_file_works_like_the_environment(data, tmp_path, monkeypatch):
    instance = tmp_path / "instance"
    instance.mkdir()
    (instance / "gridwatch.cfg").write_text(
        'GRIDWATCH_PUBLIC_MAP = "1"\nMAX_CONTENT_LENGTH = "1M"\nGRIDWATCH_TIANDITU_KEY = "file-key"\n',
        encoding="utf-8",
    )
    monkeypatch.setattr(flask.Flask, "auto_find_instance_path", lambda self: str(instance))
    app = create_app()
    assert app.config["GRIDWATCH_PUBLIC_MAP"] is True and app.config["MAX_CONTENT_LENGTH"] == 1024**2
    assert app.test_client().get("/api/layers").status_code == 200
    # the environment comes after the file
    monkeypatch.setenv("GRIDWATCH_TIANDITU_KEY", "env-key")
    assert create_app().config["GRIDWATCH_TIANDITU_KEY"] == "env-key"


def _readme_settings() -> dict[str, list[str]]:
    """README's settings table (section "Web service"): setting → the other cells of its row."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Web service", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and (m := re.fullmatch(r"`([A-Z_]+)`", cells[0])):
            rows[m.group(1)] = cells[1:]
    return rows


def test_every_setting_is_documented_in_the_readme_and_only_those():
    documented = _readme_settings()
    assert set(documented) == {s.name for s in SETTINGS}
    for s in SETTINGS:
        assert documented[s.name][0] == f"`{s.env}`", s.name  # its name in the environment
        assert s.help, s.name


def _gunicorn_settings() -> dict:
    settings: dict = {}
    exec((ROOT / "deploy" / "gunicorn.conf.py").read_text(encoding="utf-8"), settings)
    return settings


def test_gunicorn_listens_on_this_machine_unless_told(monkeypatch):
    monkeypatch.delenv("GRIDWATCH_BIND", raising=False)
    assert _gunicorn_settings()["bind"] == "127.0.0.1:8000"
    monkeypatch.setenv("GRIDWATCH_BIND", "0.0.0.0:8080")
    assert _gunicorn_settings()["bind"] == "0.0.0.0:8080"
