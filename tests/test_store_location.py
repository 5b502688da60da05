"""Where the store is and where the data directory is: ``GRIDWATCH_STORE`` / ``--store`` against
``GRIDWATCH_DATA`` / ``--data``, backends chosen by URL scheme, and credentials in a store URL
never shown -- through ``open_store``, the real app (``make_app``) and the command line."""

from __future__ import annotations

import io
import json
import logging
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from geo.errors import InputError, StoreError
from geo.imports.importer import import_file
from geo.store import backends
from geo.store.backends import gpkg_path, locate, open_store, register_backend
from geo.store.credentials import shown_location
from geo.store.gpkg import GpkgStore
from tests.helpers.builders import X0, Y0, grid_frame, points_frame, write_shp, zip_shp

ROOT = Path(__file__).resolve().parent.parent
SECRET = "s3cr3t-Pa55"
PG_URL = f"postgresql://gw:{SECRET}@db.example:5432/gridwatch"
#: a PostGIS store nobody answers for: connecting is refused at once
UNREACHABLE = f"postgresql://gw:{SECRET}@127.0.0.1:1/gridwatch"


@pytest.fixture
def backend(tmp_path, monkeypatch) -> list[tuple[str, Path]]:
    """A backend registered under ``testgw://NAME``: a real GeoPackage at ``tmp_path/elsewhere/
    NAME.gpkg``; the list records every (location, data directory) it was opened with."""
    calls: list[tuple[str, Path]] = []

    def factory(location: str, data: Path) -> Any:
        calls.append((location, data))
        name = location.split("://", 1)[1].strip("/") or "default"
        return GpkgStore(tmp_path / "elsewhere" / f"{name}.gpkg", data_dir=data)

    monkeypatch.setitem(backends._BACKENDS, "testgw", factory)
    return calls


@pytest.fixture
def leaky(monkeypatch) -> None:
    """A backend under ``leaky://`` whose driver fails with the whole URL in its message, as
    database drivers do."""

    def factory(location: str, data: Path) -> Any:
        raise RuntimeError(f'connection to "{location}" failed: password {SECRET} rejected')

    monkeypatch.setitem(backends._BACKENDS, "leaky", factory)


def _grid(tmp_path: Path) -> Path:
    return write_shp(grid_frame(), tmp_path / "g" / "网格.shp")


def _sites_zip(tmp_path: Path) -> bytes:
    sites = points_frame(
        [(X0 + 50, Y0 - 50), (X0 + 150, Y0 - 150)], 案件编号=["L1", "L2"], 当前状态=["已拆除", "已登记"]
    )
    return zip_shp(write_shp(sites, tmp_path / "s" / "违建.shp"), tmp_path / "违建.zip").read_bytes()


def _codes(resp: Any) -> list[str]:
    """The codes of the units a statistics answer has figures for (not the unassigned row)."""
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return [r["code"] for r in resp.get_json()["rows"] if r["code"] != "UNASSIGNED"]


# --- settling the locations -----------------------------------------------------------------


def test_the_store_is_in_the_data_directory_unless_named(tmp_path, monkeypatch):
    data = tmp_path / "data"
    assert locate(data) == (str(data / "gridwatch.gpkg"), data)
    # a .gpkg given as the data directory is the store, its folder the data directory
    assert locate(data / "own.gpkg") == (str(data / "own.gpkg"), data)
    # --store wins over what --data implies; the data directory stays
    assert locate(data, tmp_path / "gis" / "s.gpkg") == (str(tmp_path / "gis" / "s.gpkg"), data)
    assert locate(data / "own.gpkg", "testgw://x") == ("testgw://x", data)
    # $GRIDWATCH_STORE when --store is not given; an empty --store names none
    monkeypatch.setenv("GRIDWATCH_STORE", str(tmp_path / "env.gpkg"))
    assert locate(data) == (str(tmp_path / "env.gpkg"), data)
    assert locate(data, "") == (str(data / "gridwatch.gpkg"), data)
    # neither given: $GRIDWATCH_DATA
    monkeypatch.delenv("GRIDWATCH_STORE")
    monkeypatch.setenv("GRIDWATCH_DATA", str(tmp_path / "envdata"))
    assert locate() == (str(tmp_path / "envdata" / "gridwatch.gpkg"), tmp_path / "envdata")


@pytest.mark.slow
def test_where_a_geopackage_location_points(tmp_path):
    assert gpkg_path("/srv/x.gpkg") == Path("/srv/x.gpkg")
    assert gpkg_path("/srv/data") == Path("/srv/data/gridwatch.gpkg")
    assert gpkg_path("gpkg:/srv/x.gpkg") == gpkg_path("GPKG:///srv/x.gpkg") == Path("/srv/x.gpkg")
    assert gpkg_path("gpkg:rel/x.gpkg") == gpkg_path("gpkg://rel/x.gpkg") == Path("rel/x.gpkg")
    assert gpkg_path("data:2024/x.gpkg") == Path("data:2024/x.gpkg")  # a colon in a file name
    assert gpkg_path(PG_URL) is None


def test_a_url_as_the_data_directory_is_refused_without_showing_it(tmp_path, runner, make_app, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InputError) as exc:
        locate(PG_URL)
    assert exc.value.code == "bad_data_dir" and "--store" in exc.value.en and SECRET not in str(exc.value)
    run = runner("--data", PG_URL, "grids")
    assert run.code == 2 and "GRIDWATCH_STORE" in run.err and SECRET not in run.err
    with pytest.raises(InputError):
        make_app(PG_URL)
    assert not any(tmp_path.iterdir())  # no folder called "postgresql:" made


@pytest.mark.parametrize("form", ["plain", "gpkg:", "gpkg://", "dir"])
def test_a_geopackage_is_named_by_path_or_gpkg_url(tmp_path, form):
    target = tmp_path / "sub" / "gridwatch.gpkg"
    location = {
        "plain": str(target),
        "gpkg:": f"gpkg:{target}",
        "gpkg://": f"gpkg://{target}",
        "dir": str(target.parent),
    }[form]
    with open_store(location) as store:
        import_file(store, "grid", _grid(tmp_path))
    assert target.is_file()
    with open_store(target) as store:
        assert len(store.grid_versions()) == 1


@pytest.mark.slow
def test_the_backend_is_chosen_by_the_scheme(tmp_path, backend):
    data = tmp_path / "data"
    with open_store("testgw://site", data=data) as store:
        import_file(store, "grid", _grid(tmp_path))
    assert backend == [("testgw://site", data)]
    assert (tmp_path / "elsewhere" / "site.gpkg").is_file()
    # the scheme is read without regard to case; the store it gives is the same one
    with open_store("TESTGW://site", data=data) as store:
        assert len(store.grid_versions()) == 1
    assert not (data / "gridwatch.gpkg").exists()


def test_a_registration_names_a_url_scheme_only():
    with pytest.raises(ValueError):
        register_backend("no scheme", lambda location, data: None)  # type: ignore[arg-type,return-value]


def test_an_unknown_scheme_is_a_clear_error(tmp_path):
    with pytest.raises(InputError) as exc:
        open_store("mysql://db/gis", data=tmp_path)
    assert exc.value.code == "unknown_backend"
    assert "未知的存储类型: mysql" in exc.value.zh and "unknown store backend: mysql" in exc.value.en
    assert "gpkg" in exc.value.en  # says what there is
    with pytest.raises(InputError) as exc:
        open_store("not a scheme://x", data=tmp_path)
    assert exc.value.code == "bad_store" and "x" not in exc.value.en.split("(")[0]
    assert not any(tmp_path.iterdir())  # nothing made


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql://gw:{SECRET}@/gridwatch?host=/nonexistent-gridwatch-socket",
        f"postgres://gw:{SECRET}@127.0.0.1:1/gridwatch",
        f"postgresql:///gridwatch?host=/nonexistent-gridwatch-socket&user=gw&password={SECRET}",
        "postgresql://gw:s3cr%40t-Pa55@127.0.0.1:1/gridwatch",
    ],
)
def test_an_unreachable_postgis_store_says_so_and_the_password_stays_hidden(tmp_path, url):
    try:
        with open_store(url, data=tmp_path) as store:
            store.revision()
    except StoreError as exc:
        err = exc
    else:
        raise AssertionError("an unreachable database was opened")
    assert err.code == "store_unavailable"
    for text in (err.zh, err.en, str(err), repr(err)):
        assert SECRET not in text and "s3cr@t" not in text and "s3cr%40t" not in text
    assert "gridwatch" in err.en  # which store it was is still said


def test_shown_location_leaves_credentials_out():
    assert shown_location(PG_URL) == "postgresql://gw:***@db.example:5432/gridwatch"
    assert shown_location("postgresql://h/db?sslmode=require&password=x1y2") == (
        "postgresql://h/db?sslmode=require&password=***"
    )
    assert shown_location("/srv/gis/gridwatch.gpkg") == "/srv/gis/gridwatch.gpkg"
    assert shown_location("postgresql://gw@h/db") == "postgresql://gw@h/db"


def test_a_driver_error_with_the_url_in_it_is_told_without_the_password(tmp_path, leaky):
    with pytest.raises(StoreError) as exc:
        open_store(f"leaky://gw:{SECRET}@db/gis", data=tmp_path)
    err = exc.value
    assert err.code == "store_unavailable" and "leaky://gw:***@db/gis" in err.en
    assert SECRET not in err.zh + err.en + str(err)
    assert err.__cause__ is None and err.__context__ is None  # no chained traceback shows it


# --- the app ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_the_app_reads_the_named_store_and_keeps_uploads_in_the_data_directory(tmp_path, make_app):
    gis, data = tmp_path / "gis" / "city.gpkg", tmp_path / "data"
    with open_store(gis, data=data) as store:
        import_file(store, "grid", _grid(tmp_path))
    app = make_app(data, login=False, GRIDWATCH_STORE=str(gis))
    client = app.test_client()
    assert _codes(client.get("/api/stats?format=json&level=district")) == ["340291"]
    body = _sites_zip(tmp_path)
    r = client.post(
        "/api/uploads",
        data={"layer": "demolition", "file": (io.BytesIO(body), "违建.zip")},
        content_type="multipart/form-data",
    )
    assert r.status_code == 201, r.get_json()
    assert (data / "uploads" / r.get_json()["upload_id"]).is_dir()
    r = client.post(f"/api/uploads/{r.get_json()['upload_id']}/commit")
    assert r.status_code == 200 and r.get_json()["added"] == 2
    # archived and staged uploads and the session key are in the data directory, not beside the store
    assert sorted(p.name for p in gis.parent.iterdir()) == ["city.gpkg"]
    assert (data / "archive").is_dir() and (data / "secret_key").is_file()
    assert not (data / "gridwatch.gpkg").exists()
    batch = client.get("/api/batches").get_json()[-1]
    with open_store(gis, data=data) as store:
        assert store.archived_source(batch["id"])[0] == "违建.zip"


@pytest.mark.slow
def test_the_store_from_the_environment_wins_over_the_data_directory(tmp_path, make_app, monkeypatch):
    gis = tmp_path / "gis" / "city.gpkg"
    with open_store(gis) as store:
        import_file(store, "grid", _grid(tmp_path))
    monkeypatch.setenv("GRIDWATCH_STORE", str(gis))
    app = make_app(tmp_path / "data", login=False)
    assert app.config["GRIDWATCH_STORE"] == str(gis)
    assert _codes(app.test_client().get("/api/stats?format=json&level=street")) == ["340291001"]
    assert not (tmp_path / "data" / "gridwatch.gpkg").exists()


@pytest.mark.slow
def test_a_store_file_as_the_data_setting_keeps_working(tmp_path, make_app):
    store_file = tmp_path / "old" / "my.gpkg"
    with open_store(store_file) as store:
        import_file(store, "grid", _grid(tmp_path))
    app = make_app(store_file, login=False)
    assert app.test_client().get("/api/stats?format=json&level=district").status_code == 200
    assert (tmp_path / "old" / "secret_key").is_file()  # the key beside it, not inside "my.gpkg/"


@pytest.mark.slow
def test_the_app_uses_a_registered_backend(tmp_path, make_app, backend):
    with open_store("testgw://district", data=tmp_path / "data") as store:
        import_file(store, "grid", _grid(tmp_path))
    app = make_app(tmp_path / "data", login=False, GRIDWATCH_STORE="testgw://district")
    r = app.test_client().get("/api/stats?format=json&level=district")
    assert r.status_code == 200 and _codes(r) == ["340291"]
    assert backend[-1] == ("testgw://district", tmp_path / "data")


def test_an_unknown_backend_stops_the_start_with_a_clear_message(tmp_path, make_app):
    with pytest.raises(InputError) as exc:
        make_app(tmp_path / "data", GRIDWATCH_STORE="nosuch://x")
    assert exc.value.code == "unknown_backend" and "nosuch" in exc.value.zh and "nosuch" in exc.value.en


def test_an_unreachable_postgis_store_at_the_start_answers_503_without_the_password(
    tmp_path, make_app, caplog
):
    caplog.set_level(logging.DEBUG)
    url = f"postgresql://gw:{SECRET}@127.0.0.1:1/gridwatch"
    try:
        app = make_app(tmp_path / "data", login=False, GRIDWATCH_STORE=url)
    except StoreError as exc:  # the app may open its store at the start
        assert exc.code == "store_unavailable" and SECRET not in exc.zh + exc.en
    else:
        r = app.test_client().get("/api/stats?format=json")
        assert r.status_code == 503 and SECRET not in r.get_data(as_text=True)
    assert SECRET not in caplog.text


def test_a_failing_backend_answers_503_without_the_password(tmp_path, make_app, leaky, caplog):
    caplog.set_level(logging.DEBUG)
    url = f"leaky://gw:{SECRET}@db/gis"
    app = make_app(tmp_path / "data", login=False, GRIDWATCH_STORE=url)
    client = app.test_client()
    for path in ("/api/stats?format=json", "/api/batches"):
        r = client.get(path)
        assert r.status_code == 503, (path, r.status_code)
        assert SECRET not in r.get_data(as_text=True)
    body = client.get("/api/stats?format=json").get_json()
    assert body["error"] == "store_unavailable" and "$GRIDWATCH_STORE" in body["message_en"]
    assert "db/gis" not in str(body)
    assert SECRET not in caplog.text


@pytest.mark.slow
def test_a_failing_backend_gives_a_page_without_the_password(tmp_path, make_app, leaky, caplog):
    caplog.set_level(logging.DEBUG)
    app = make_app(tmp_path / "data", login=False, GRIDWATCH_STORE=f"leaky://gw:{SECRET}@db/gis")
    for lang in ("zh", "en"):
        r = app.test_client().get(f"/?lang={lang}", headers={"Accept": "text/html"})
        page = r.get_data(as_text=True)
        assert r.status_code == 503 and "<html" in page.lower() and "$GRIDWATCH_STORE" in page
        assert SECRET not in page and "db/gis" not in page  # which database: the operator's business
    assert SECRET not in caplog.text


@pytest.mark.parametrize("prefix", ["", "gpkg:"])
def test_a_path_of_the_store_outside_the_data_directory_is_not_shown(tmp_path, make_app, prefix):
    gis = tmp_path / "gis" / "city.gpkg"
    gis.parent.mkdir()
    con = sqlite3.connect(gis)  # a database of another application
    con.executescript("PRAGMA application_id = 12345; CREATE TABLE t (x);")
    con.close()
    app = make_app(tmp_path / "data", login=False, GRIDWATCH_STORE=prefix + str(gis))
    r = app.test_client().get("/api/stats?format=json")
    assert r.status_code == 503 and "$GRIDWATCH_STORE" in r.get_json()["message_en"]
    assert str(gis.parent) not in r.get_data(as_text=True)


# --- the command line ------------------------------------------------------------------------


@pytest.mark.slow
def test_the_command_line_names_the_store_apart_from_the_data_directory(tmp_path, runner, monkeypatch):
    gis, data = tmp_path / "gis" / "city.gpkg", tmp_path / "data"
    run = runner("--data", str(data), "--store", str(gis), "import", "grid", str(_grid(tmp_path)))
    assert run.code == 0, run.err
    assert gis.is_file() and not (data / "gridwatch.gpkg").exists()
    assert any((data / "archive").iterdir())  # the original upload kept in the data directory
    assert sorted(p.name for p in gis.parent.iterdir()) == ["city.gpkg"]
    run = runner("--store", f"gpkg:{gis}", "stats", "--level", "district", "--format", "json")
    assert run.code == 0 and '"rows"' in run.out
    # $GRIDWATCH_STORE wins over --data; --store over $GRIDWATCH_STORE
    monkeypatch.setenv("GRIDWATCH_STORE", str(gis))
    assert runner("--data", str(tmp_path / "other"), "grids", "--json").code == 0
    assert not (tmp_path / "other" / "gridwatch.gpkg").exists()
    assert len(json.loads(runner("grids", "--json").out)) == 1
    run = runner("--store", str(tmp_path / "empty.gpkg"), "grids", "--json")
    assert run.code == 0 and json.loads(run.out) == []


def test_the_command_line_uses_a_registered_backend(tmp_path, runner, backend):
    run = runner("--data", str(tmp_path / "data"), "--store", "testgw://cli", "grids", "--json")
    assert run.code == 0 and json.loads(run.out) == [], run.err
    assert backend == [("testgw://cli", tmp_path / "data")]
    assert (tmp_path / "elsewhere" / "cli.gpkg").is_file() and not (tmp_path / "data").exists()


def test_the_app_opens_a_registered_backend_for_each_request(tmp_path, make_app, backend):
    app = make_app(tmp_path / "data", login=False, GRIDWATCH_STORE="testgw://web")
    client = app.test_client()
    assert client.get("/api/batches").get_json() == []
    assert client.get("/api/batches?layer=demolition").status_code == 200
    assert backend == [("testgw://web", tmp_path / "data")] * 2
    assert (tmp_path / "elsewhere" / "web.gpkg").is_file()


def test_the_command_line_refuses_an_unknown_backend(tmp_path, runner):
    run = runner("--data", str(tmp_path / "data"), "--store", "nosuch://x", "grids")
    assert run.code == 2 and run.out == ""
    assert (
        run.err.count("\n") == 1
        and "未知的存储类型: nosuch" in run.err
        and "unknown store backend" in run.err
    )
    run = runner("--lang", "en", "--store", "nosuch://x", "grids")
    assert run.code == 2 and run.err.startswith("gridwatch: unknown store backend: nosuch")


@pytest.mark.parametrize("command", [["grids"], ["user", "list"], ["serve", "--port", "5998"]])
def test_an_unreachable_postgis_store_on_the_command_line_hides_the_password(
    tmp_path, capsys, command, caplog
):
    import server

    caplog.set_level(logging.DEBUG)
    code = server.main(["--data", str(tmp_path / "data"), "--store", UNREACHABLE, *command])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert "无法连接数据库" in err and "cannot connect" in err and "gw:***@127.0.0.1:1" in err
    assert SECRET not in out + err + caplog.text
    assert not (tmp_path / "data" / "gridwatch.gpkg").exists()


def test_a_failing_backend_on_the_command_line_hides_the_password(tmp_path, runner, leaky):
    run = runner("--store", f"leaky://gw:{SECRET}@db/gis", "batches")
    assert run.code == 2 and SECRET not in run.out + run.err and "leaky://gw:***@db/gis" in run.err


@pytest.mark.slow
def test_the_gridwatch_command_hides_the_password(tmp_path):
    """The installed ``gridwatch`` entry point in a process of its own, the URL given by
    ``--store`` and by ``$GRIDWATCH_STORE``."""
    exe = Path(sys.executable).with_name("gridwatch")
    cmd = (
        [str(exe)] if exe.exists() else [sys.executable, "-c", "import sys, server; sys.exit(server.main())"]
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "GRIDWATCH_DATA": str(tmp_path / "data")}
    env.pop("GRIDWATCH_DEBUG", None)
    for args, extra in (
        (["--store", UNREACHABLE, "stats"], {}),
        (["stats"], {"GRIDWATCH_STORE": UNREACHABLE}),
        (["serve", "--port", "5999"], {"GRIDWATCH_STORE": UNREACHABLE}),
    ):
        proc = subprocess.run(
            [*cmd, *args], capture_output=True, text=True, timeout=120, check=False, env={**env, **extra}
        )
        assert proc.returncode == 2, (args, proc.stderr)
        assert "cannot connect" in proc.stderr and "Traceback" not in proc.stderr
        assert SECRET not in proc.stdout + proc.stderr
