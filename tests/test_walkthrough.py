"""The field loop tried on the demo district as a new user would, end to end on the real app:

* a street (街道) account sees only its street;
* from a phone-sized Chromium with its position mocked it finds the sites near it, marks one
  已拆除 with a photo, and the map, the statistics and the audit trail show it;
* an admin hands ten sites to a community with a three-day deadline, the community's account marks
  them fixed, the admin verifies eight and returns two: the statistics say 10 handed over, 8
  verified, 2 rework, and -- once the deadline has passed -- an on-time rate of 8 / 10, as counted
  by hand;
* the community's daily patrol report appears in the coverage.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyproj
import pytest
from PIL import Image

from geo.edits.ids import ids_of_rows
from geo.figures import areas
from geo.registry import get_layer
from geo.store import accounts, clock
from geo.store.backends import open_store
from tests.helpers.needs import chromium
from tests.helpers.web import Session, csrf_from, login, serving, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.needs("chromium", "node_modules", "translations")]

PASSWORD = "walk-pass-1"
STREET = "340291001"  # 弋江街道
COMMUNITY = "340291001006"  # one of its communities
PHONE = {"width": 390, "height": 844}
SITES = get_layer("demolition")


def _photo() -> bytes:
    im = Image.new("RGB", (1200, 900), (60, 130, 90))
    im.paste((220, 200, 40), (0, 0, 600, 450))
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=90)
    return buf.getvalue()


@pytest.fixture(scope="module")
def district(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo district as ``gridwatch demo`` loads it, with an admin, a street account and a
    community account."""
    from geo.cli import main

    data = tmp_path_factory.mktemp("walk") / "data"
    assert main(["--data", str(data), "demo"]) == 0
    with open_store(data) as store:
        accounts.add_user(store, "admin", "admin", PASSWORD)
        areas.add_bound_user(store, "jiedao", "surveyor", PASSWORD, STREET)
        areas.add_bound_user(store, "shequ", "surveyor", PASSWORD, COMMUNITY)
    return data


def _sites(data: Path) -> Any:
    """The demo's demolition sites now: case id, status, unit, stable id, version, lon/lat."""
    with open_store(data) as store:
        table = store.read_attributes(SITES, ["case_id", "status", "gw_unit"])
        fids, geoms = store.read_geometry(SITES, table["fid"].to_numpy())
        ids = ids_of_rows(store, SITES, table["fid"].to_numpy())
        epsg = store.srs_epsg()
    table = table.merge(ids, on="fid")
    lon, lat = pyproj.Transformer.from_crs(epsg, 4326, always_xy=True).transform(
        np.array([g.centroid.x for g in geoms]), np.array([g.centroid.y for g in geoms])
    )
    where = dict(zip(fids.tolist(), zip(lon.tolist(), lat.tolist(), strict=True), strict=True))
    table["lonlat"] = table["fid"].map(where)
    return table


def _session(app: Any, name: str) -> Session:
    s = Session(app, None)
    assert login(s.client, name, PASSWORD).status_code == 302
    s.token = csrf_from(s.client.get("/account").text)
    return s


@pytest.fixture
def server(district: Path, make_app: Any) -> Iterator[tuple[str, Any]]:
    app = make_app(district)
    with serving(app) as port:
        yield f"http://127.0.0.1:{port}", app


def test_a_street_account_on_a_phone_marks_a_site_demolished(server: tuple[str, Any], district: Path) -> None:
    from playwright.sync_api import sync_playwright

    base, app = server
    street = _session(app, "jiedao")
    # it sees only its street
    rows = street.request("GET", "/api/stats?level=street&layer=demolition").json["rows"]
    assert {r["code"] for r in rows} - {"UNASSIGNED"} == {STREET}
    before = sum(r["demolition_completed"] for r in rows)
    sites = _sites(district)
    open_sites = sites[sites["gw_unit"].str.startswith(STREET) & (sites["status"] != "已拆除")]
    target = open_sites.sort_values("fid").iloc[0]
    lon, lat = target["lonlat"]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=["--no-sandbox", "--disable-gpu"])
        try:
            context = browser.new_context(
                geolocation={"longitude": lon + 0.00005, "latitude": lat, "accuracy": 10},
                permissions=["geolocation"],
                viewport=PHONE,
                locale="zh-CN",
            )
            page = context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(f"{base}/login")
            page.fill("#username", "jiedao")
            page.fill("#password", PASSWORD)
            page.click("#gw-login button[type=submit]")
            page.wait_for_url(f"{base}/")
            page.goto(f"{base}/field?tiles=none")
            wait_for(page, "document.querySelectorAll('.gw-field-item').length > 0", timeout=20000)
            nearest = page.inner_text(".gw-field-item:first-child .gw-field-name")
            assert nearest == target["case_id"]
            page.click(".gw-field-item:first-child .gw-field-open")
            wait_for(page, "document.querySelector('#gw-field-sheet .gw-edit select')", timeout=10000)
            page.select_option("#gw-field-sheet select[name=status]", "已拆除")
            page.fill("#gw-field-sheet textarea[name=note]", "现场核实已拆除")
            page.set_input_files(
                "#gw-field-sheet input[name=photo]",
                files=[{"name": "拆除后.jpg", "mimeType": "image/jpeg", "buffer": _photo()}],
            )
            page.click("#gw-field-sheet .gw-edit-save")
            wait_for(page, "document.querySelector('#gw-field-sheet .gw-edit-ok')", timeout=30000)
            assert errors == []
        finally:
            browser.close()
    # the statistics, the map and the audit trail show it
    rows = street.request("GET", "/api/stats?level=street&layer=demolition").json["rows"]
    assert sum(r["demolition_completed"] for r in rows) == before + 1
    detail = street.request("GET", f"/api/features/demolition/{int(target['id'])}").json
    assert (
        detail["properties"]["status"] == "已拆除"
        and detail["properties"]["version"] == target["version"] + 1
    )
    photos = street.request("GET", f"/api/features/demolition/{int(target['id'])}/photos").json["photos"]
    assert len(photos) == 1 and photos[0]["uploaded_by"] == "jiedao"
    x, y = target["lonlat"]
    bbox = f"{x - 0.001},{y - 0.001},{x + 0.001},{y + 0.001}"
    shown = street.request("GET", f"/api/features/demolition?bbox={bbox}&zoom=18&detail=1").json
    mine = [f for f in shown["features"] if f["properties"].get("case_id") == target["case_id"]]
    assert mine and mine[0]["properties"]["status"] == "已拆除"
    with open_store(district) as store:
        done = {e.action for e in store.audit_entries(user="jiedao")}
    assert {"edit", "photo_add"} <= done or ("edit" in done and len(done) >= 2)
    # another street's site stays out of reach
    other = sites[~sites["gw_unit"].str.startswith(STREET) & (sites["gw_unit"] != "UNASSIGNED")].iloc[0]
    assert street.request("GET", f"/api/features/demolition/{int(other['id'])}").status_code == 404
    refused = street.request(
        "PATCH",
        f"/api/features/demolition/{int(other['id'])}",
        json={"version": int(other["version"]), "fields": {"status": "已拆除"}},
    )
    assert refused.status_code == 404  # not found to write either, as to read


def test_ten_sites_handed_to_a_community_and_a_patrol_report(server: tuple[str, Any], district: Path) -> None:
    _, app = server
    admin, community = _session(app, "admin"), _session(app, "shequ")
    sites = _sites(district)
    picked = sites[sites["gw_unit"].str.startswith(COMMUNITY) & (sites["status"] != "已拆除")].sort_values(
        "fid"
    )
    assert len(picked) >= 10
    ten = [{"layer": "demolition", "id": int(i)} for i in picked["id"].iloc[:10]]
    made = admin.request(
        "POST",
        "/api/tasks",
        json={
            "title": "违建整改",
            "instructions": "三日内拆除",
            "area": COMMUNITY,
            "days": 3,
            "features": ten,
        },
    )
    assert made.status_code == 201, made.json
    task = made.json
    today = clock.today()
    assert task["deadline"] == (today + timedelta(days=3)).isoformat() and len(task["items"]) == 10
    items = [i["id"] for i in task["items"]]
    # the community sees it and marks every site fixed
    assert [t["id"] for t in community.request("GET", "/api/tasks").json["tasks"]] == [task["id"]]
    assert (
        community.request("POST", f"/api/tasks/{task['id']}/fixed", json={"note": "已整改"}).status_code
        == 200
    )
    # a community account cannot verify its own fixes
    assert community.request("POST", f"/api/tasks/{task['id']}/verify", json={}).status_code == 403
    assert (
        admin.request("POST", f"/api/tasks/{task['id']}/verify", json={"items": items[:8]}).status_code == 200
    )
    assert (
        admin.request("POST", f"/api/tasks/{task['id']}/return", json={"items": items[8:]}).status_code == 200
    )

    def totals(day: Any, level: str = "community") -> dict[str, Any]:
        body = admin.request("GET", f"/api/tasks/stats?level={level}&as_of={day.isoformat()}").json
        return body["totals"]

    now = totals(today)
    assert (now["handed_over"], now["verified"], now["reworked"], now["open"]) == (10, 8, 2, 2)
    assert now["due"] == 0 and now["on_time_rate"] is None  # no deadline passed yet
    # by hand, the day after the deadline: 10 due; 8 verified with the fix reported in time → 80 %
    after = totals(today + timedelta(days=4), "street")
    assert (after["due"], after["on_time"], after["overdue"]) == (10, 8, 2)
    assert after["on_time_rate"] == pytest.approx(8 / 10) and after["rework_rate"] == pytest.approx(2 / 10)
    rows = admin.request("GET", "/api/tasks/stats?level=community").json["rows"]
    assert [
        (r["code"], r["handed_over"], r["verified"], r["reworked"]) for r in rows if r["handed_over"]
    ] == [(COMMUNITY, 10, 8, 2)]
    # the community's patrol today: nothing found; the coverage counts it for each of its units
    filed = community.request("POST", "/api/patrols", json={"note": "日巡查零报告"})
    assert filed.status_code == 201, filed.json
    coverage = admin.request(
        "GET", f"/api/patrols/coverage?level=community&from={today.isoformat()}&to={today.isoformat()}"
    ).json
    row = next(r for r in coverage["rows"] if r["code"] == COMMUNITY)
    # every unit of the community reported today (today is due on a working day: then 1 day each)
    assert row["last_report"] == today.isoformat() and row["missed"] == 0, row
    assert row["days_reported"] == row["days_due"] and row["days_due"] in (0, row["units"])
    others = [r for r in coverage["rows"] if r["code"] != COMMUNITY]
    assert others and all(r["days_reported"] == 0 and r["last_report"] is None for r in others)
