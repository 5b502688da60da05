"""Shared fixtures: the real app on a temporary store (``app``, ``client``, ``make_app``), the
command line (``runner``), an opened store (``store``, ``gridded_store``), and the ``needs``
marker.  Builders of survey files and request bodies are in :mod:`tests.helpers.builders`."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from geo.store.backends import open_store
from tests.helpers import needs
from tests.helpers.builders import X0, Y0, grid_frame, points_frame, write_shp


def pytest_runtest_setup(item: pytest.Item) -> None:
    for mark in item.iter_markers("needs"):
        needs.check(*mark.args)


@pytest.fixture(autouse=True)
def _isolate_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GRIDWATCH_DATA", str(tmp_path / "envdata"))
    monkeypatch.delenv("GRIDWATCH_STORE", raising=False)
    os.environ.pop("GRIDWATCH_CRS", None)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Any]:
    """An empty store, opened in ``tmp_path/data`` and closed after the test."""
    s = open_store(tmp_path / "data")
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
def make_app(tmp_path: Path) -> Callable[..., Any]:
    """Make the real app (``create_app``) on the store in ``data`` (default ``tmp_path/store``),
    testing config.  ``login=False`` turns the sign-in and CSRF checks off (route tests); other
    keywords are config."""
    from server import create_app

    def make(data: Path | str | None = None, *, login: bool = True, **config: Any) -> Any:
        base: dict[str, Any] = {"GRIDWATCH_DATA": str(tmp_path / "store" if data is None else data)}
        base["TESTING"] = True
        if not login:
            base.update(LOGIN_DISABLED=True, WTF_CSRF_ENABLED=False)
        return create_app({**base, **config})

    return make


@pytest.fixture
def app(tmp_path: Path, make_app: Callable[..., Any]) -> Any:
    """The app, sign-in off, on a store with the unit grid and one demolition site whose case id
    is markup (pages must show it as text)."""
    from geo.imports.importer import import_file

    data = tmp_path / "store"
    with open_store(data) as s:
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
def runner(capsys: pytest.CaptureFixture[str]) -> Callable[..., Run]:
    """Run the ``gridwatch`` engine command (:func:`geo.cli.main`) in-process on ``args``,
    capturing what it writes."""
    from geo.cli import main

    def run(*args: str) -> Run:
        capsys.readouterr()
        code = main(list(args))
        captured = capsys.readouterr()
        return Run(code, captured.out, captured.err)

    return run
