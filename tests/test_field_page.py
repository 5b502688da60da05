"""The phone page (/field) and the edit form's configuration as the server renders them: who gets
the page, the link and the form; the fields the form offers, by kind, in the page's language."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from geo.imports.importer import import_file
from geo.store import accounts
from layers import survey_layers
from tests.helpers.builders import X0, Y0, grid_frame, points_frame, write_shp
from tests.helpers.postgis import open_test_store
from tests.helpers.web import PASSWORDS, Session, login

pytestmark = pytest.mark.backends


@pytest.fixture
def site(tmp_path: Path, make_app, store_url):
    data = tmp_path / "store"
    with open_test_store(data) as store:
        import_file(store, "grid", write_shp(grid_frame(), tmp_path / "g" / "g.shp"))
        sites = points_frame([(X0 + 50, Y0 - 50)], 案件编号=["F1"], 当前状态=["已登记"])
        import_file(store, "demolition", write_shp(sites, tmp_path / "s" / "s.shp"))
        for name in ("admin", "surveyor", "viewer"):
            accounts.add_user(store, name, name, PASSWORDS[name])
    return make_app(data)


def signed_in(app, name: str) -> Session:
    s = Session(app, None)
    assert login(s.client, name).status_code == 302
    return s


def block(html: str, name: str) -> dict:
    m = re.search(rf'<script type="application/json" id="{name}">(.*?)</script>', html, re.S)
    assert m, name
    return json.loads(m.group(1))


def test_the_field_page_is_a_surveyors(site) -> None:
    surveyor, viewer = signed_in(site, "surveyor"), signed_in(site, "viewer")
    page = surveyor.client.get("/field?tiles=none")
    assert page.status_code == 200
    html = page.text
    assert 'id="gw-nav-field"' in html and "外业" in html
    assert (
        "/vendor/leaflet/leaflet.js" in html
        and "https://" not in html.split("<body", 1)[1].split("gw-map-config")[0]
    )
    config = block(html, "gw-map-config")
    assert config["field"]["near"] == "/api/features/near"
    assert len(config["field"]["bounds"]) == 4
    assert viewer.client.get("/field?tiles=none").status_code == 403
    assert 'id="gw-nav-field"' not in viewer.client.get("/features").text
    english = surveyor.client.get("/field?tiles=none&lang=en").text
    assert "Field work: features nearby" in english and "Locate me" in english


def test_the_edit_form_is_told_each_layers_fields(site) -> None:
    surveyor = signed_in(site, "surveyor")
    config = block(surveyor.client.get("/?tiles=none").text, "gw-edit-config")
    assert config["canEdit"] is True and config["api"] == "/api"
    for spec in survey_layers():
        fields = config["layers"][spec.name]["fields"]
        assert [f["name"] for f in fields if not f["editable"]] == [
            f.name for f in spec.fields if f.kind == "str" and f.name not in spec.vocab_fields
        ]
        if spec.status_field:
            assert fields[0]["name"] == spec.status_field and fields[0]["status"]
            assert [c["code"] for c in fields[0]["choices"]] == [s.code for s in spec.statuses]
        assert {f["kind"] for f in fields} <= {"str", "int", "float", "date"}
    english = block(surveyor.client.get("/?tiles=none&lang=en").text, "gw-edit-config")
    assert "your changes were not saved" in english["labels"]["conflict"]
    # what names a new site, said in the page's language before anything is sent
    assert config["layers"]["demolition"]["requiredAny"] == ["case_id", "address"]
    assert config["layers"]["demolition"]["needName"] == "请至少填写案件编号或违建地址"
    assert english["layers"]["demolition"]["needName"] == "Fill in at least the Case id or Address"
    assert "{reason}" in english["labels"]["savedPhotoFailed"] and "{field}" in english["labels"]["badNumber"]
    viewer = signed_in(site, "viewer")
    assert block(viewer.client.get("/?tiles=none").text, "gw-edit-config")["canEdit"] is False


def test_the_feature_list_offers_the_form_to_surveyors_only(site) -> None:
    surveyor, viewer = signed_in(site, "surveyor"), signed_in(site, "viewer")
    mine = surveyor.client.get("/features?layer=demolition").text
    assert 'class="gw-row-edit linklike"' in mine and "gridwatch-edit.js" in mine
    theirs = viewer.client.get("/features?layer=demolition").text
    assert "gw-row-edit linklike" not in theirs and "gw-edit-config" not in theirs
