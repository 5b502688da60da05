"""Shared fixtures: the real app on a temporary store (``app``, ``client``, ``make_app``), the
command line (``runner``), an opened store (``store``, ``gridded_store``, ``open_db``), and the
``needs`` marker.  Builders of survey files and request bodies are in :mod:`tests.helpers.builders`.

Backends: these fixtures open the store the ``store_backend`` fixture names -- the GeoPackage in the
data folder (``gpkg``, the default) or a fresh PostGIS database (``postgis``, in a throw-away
cluster for the session: ``pg_cluster``, ``pg_db``, :mod:`tests.helpers.postgis`).  A module
marked ``pytest.mark.backends`` runs each of its tests that uses them on both
(``test_x[gpkg]``, ``test_x[postgis]``; the PostGIS variant is ``slow`` and ``needs("postgis")``);
``pytest.mark.gpkg_only`` keeps one test (that looks inside the GeoPackage) on the GeoPackage.
The data folder is tmp_path either way; on PostGIS ``GRIDWATCH_STORE`` names the database, so the
app and the command line (``--data``) use it too."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from tests.helpers import needs
from tests.helpers import postgis as pgtest
from tests.helpers.builders import X0, Y0, grid_frame, points_frame, write_shp


def pytest_runtest_setup(item: pytest.Item) -> None:
    for mark in item.iter_markers("needs"):
        needs.check(*mark.args)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "store_backend" not in metafunc.fixturenames:
        return
    node = metafunc.definition
    if node.get_closest_marker("backends") is None or node.get_closest_marker("gpkg_only"):
        return
    metafunc.parametrize(
        "store_backend",
        [
            pytest.param("gpkg", id="gpkg"),
            pytest.param("postgis", id="postgis", marks=[pytest.mark.needs("postgis"), pytest.mark.slow]),
        ],
        indirect=True,
    )


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[pgtest.Cluster]:
    """A throw-away PostgreSQL cluster for the session, with a PostGIS template database."""
    with pgtest.cluster() as running:
        yield running


@pytest.fixture
def pg_db(pg_cluster: pgtest.Cluster) -> Iterator[str]:
    """URL of a fresh database with PostGIS (dropped after the test)."""
    with pgtest.database(pg_cluster) as url:
        yield url


@pytest.fixture
def store_backend(request: pytest.FixtureRequest) -> str:
    """The store backend of this test: ``gpkg`` unless the module runs on both (not named
    ``backend``: tests/test_store_location.py has a fixture of that name)."""
    return str(getattr(request, "param", "gpkg"))


@pytest.fixture
def store_url(
    store_backend: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> str | None:
    """Where the test's store is: None for the GeoPackage in the data folder, else the URL of a
    fresh PostGIS database, which ``GRIDWATCH_STORE`` then names."""
    if store_backend == "gpkg":
        return None
    url = str(request.getfixturevalue("pg_db"))
    monkeypatch.setenv("GRIDWATCH_STORE", url)
    return url


@pytest.fixture
def open_db(store_url: str | None) -> Callable[..., Any]:
    """Open the test's store with data folder ``data`` (on the GeoPackage: the store file in it)."""

    return pgtest.open_test_store


@pytest.fixture(autouse=True)
def _isolate_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GRIDWATCH_DATA", str(tmp_path / "envdata"))
    monkeypatch.delenv("GRIDWATCH_STORE", raising=False)
    os.environ.pop("GRIDWATCH_CRS", None)


@pytest.fixture
def store(tmp_path: Path, open_db: Callable[..., Any]) -> Iterator[Any]:
    """An empty store, opened in ``tmp_path/data`` and closed after the test."""
    s = open_db(tmp_path / "data")
    yield s
    s.close()


@pytest.fixture
def grid_shp(tmp_path: Path) -> Path:
    return write_shp(grid_frame(), tmp_path / "in" / "网格.shp")


@pytest.fixture
def gridded_store(store, grid_shp):
    from geo.imports.importer import import_file

    import_file(store, "grid", grid_shp)
    return store


@pytest.fixture
def make_app(tmp_path: Path, store_url: str | None) -> Callable[..., Any]:
    """Make the real app (``create_app``) on the store in ``data`` (default ``tmp_path/store``),
    testing config.  ``login=False`` turns the sign-in and CSRF checks off (route tests); other
    keywords are config."""
    from server import create_app

    def make(data: Path | str | None = None, *, login: bool = True, **config: Any) -> Any:
        base: dict[str, Any] = {"GRIDWATCH_DATA": str(tmp_path / "store" if data is None else data)}
        base["TESTING"] = True
        if store_url is not None:
            base["GRIDWATCH_STORE"] = store_url
        if not login:
            base.update(LOGIN_DISABLED=True, WTF_CSRF_ENABLED=False)
        return create_app({**base, **config})

    return make


@pytest.fixture
def app(tmp_path: Path, make_app: Callable[..., Any], open_db: Callable[..., Any]) -> Any:
    """The app, sign-in off, on a store with the unit grid and one demolition site whose case id
    is markup (pages must show it as text)."""
    from geo.imports.importer import import_file

    data = tmp_path / "store"
    with open_db(data) as s:
        import_file(s, "grid", write_shp(grid_frame(), tmp_path / "g" / "g.shp"))
        sites = points_frame(
            [(X0 + 50, Y0 - 50)], 案件编号=["<script>alert(1)</script>"], 当前状态=["已拆除"]
        )
        import_file(s, "demolition", write_shp(sites, tmp_path / "s" / "s.shp"))
    return make_app(data, login=False)


@pytest.fixture
def client(app: Any) -> Any:
    return app.test_client()


class Run(NamedTuple):
    """What a run of the command line gave: its exit status and what it wrote."""

    code: int
    out: str
    err: str


@pytest.fixture
def runner(capsys: pytest.CaptureFixture[str], store_url: str | None) -> Callable[..., Run]:
    """Run the ``gridwatch`` engine command (:func:`geo.cli.main`) in-process on ``args``,
    capturing what it writes (on the test's backend: ``GRIDWATCH_STORE`` names it)."""
    from geo.cli import main

    def run(*args: str) -> Run:
        capsys.readouterr()
        code = main(list(args))
        captured = capsys.readouterr()
        return Run(code, captured.out, captured.err)

    return run
