"""A new installation: every page and every GET of the API on a store with nothing in it yet
(no grid, no survey layer) answers without a server error, in Chinese and in English."""

from __future__ import annotations

import pytest

from tests.helpers.web import login
from tests.test_auth import ROUTES

GETS = sorted({path for method, path, _ in ROUTES.values() if method == "GET"})


@pytest.fixture(scope="module")
def empty_client(tmp_path_factory):
    """An administrator signed in to a new installation (the account is all its store holds)."""
    from geo.store.accounts import add_user
    from geo.store.backends import open_store
    from server import create_app

    data = tmp_path_factory.mktemp("empty") / "data"
    with open_store(data) as store:
        add_user(store, "admin", "admin", "empty-store-admin")
    app = create_app({"TESTING": True, "GRIDWATCH_DATA": str(data)})
    client = app.test_client()
    assert login(client, "admin", "empty-store-admin").status_code == 302
    return client


@pytest.mark.parametrize("lang", ["zh", "en"])
@pytest.mark.parametrize("path", GETS)
def test_every_page_and_read_answers_on_an_empty_store(empty_client, path, lang):
    sep = "&" if "?" in path else "?"
    with empty_client.get(f"{path}{sep}lang={lang}") as r:
        assert r.status_code < 500, (path, r.status_code, r.data[:300])
        if r.status_code >= 400 and r.mimetype == "application/json":
            body = r.get_json()
            assert body["error"] and body["message_zh"] and body["message_en"]


def test_the_map_on_an_empty_store_has_a_scale_to_draw_with(empty_client):
    r = empty_client.get("/api/summary?layer=demolition")
    assert r.status_code == 200
    body = r.get_json()
    assert body["total"] == 0 and body["rate"] is None
