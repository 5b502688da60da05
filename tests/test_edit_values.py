"""What an edit may write, on both backends: measures finite and not negative (counts whole), dates
no later than today and a completion date no earlier than the found date, a new site named by its
survey id or address; and a far-future or very old date stored (an import takes one) never breaks
the monthly figures or the statistics page."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pyproj
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import layers
from geo.edits.edit import add_feature, edit_feature
from geo.edits.ids import current_rows
from geo.errors import InputError
from geo.figures.overview import stats_page_data
from geo.figures.tally import MAX_MONTHS, monthly
from geo.imports.importer import import_file
from geo.registry import get_layer
from geo.store import accounts, clock
from tests.helpers.builders import EPSG_GK, X0, Y0, grid_frame, points_frame, write_shp
from tests.helpers.postgis import open_test_store
from tests.helpers.web import PASSWORDS, Session

pytestmark = pytest.mark.backends

SITES = get_layer("demolition")
TO_LONLAT = pyproj.Transformer.from_crs(EPSG_GK, 4326, always_xy=True)


def _sites(store: Any, tmp_path: Path, done: list[str], status: list[str], found: list[str]) -> None:
    frame = points_frame(
        [(X0 + 50, Y0 - 50), (X0 + 150, Y0 - 150)][: len(done)],
        案件编号=["S1", "S2"][: len(done)],
        当前状态=status,
        违建面积=[10.0] * len(done),
        违建层数=[1] * len(done),
        发现时间=found,
        拆除时间=done,
    )
    import_file(store, "demolition", write_shp(frame, tmp_path / "s" / "s.shp"))


@pytest.fixture
def site(gridded_store: Any, tmp_path: Path) -> tuple[Any, int]:
    """A store with one site S1, found 2024-03-01, not demolished; and its id."""
    _sites(gridded_store, tmp_path, [""], ["已登记"], ["2024-03-01"])
    return gridded_store, int(current_rows(gridded_store, SITES, [1]).iloc[0]["id"])


def _refused(store: Any, fid: int, fields: dict[str, Any]) -> InputError:
    batches = len(store.batches())
    with pytest.raises(InputError) as caught:
        edit_feature(store, "demolition", fid, 1, fields)
    assert caught.value.code == "bad_field" and caught.value.zh and caught.value.en
    assert len(store.batches()) == batches
    assert int(current_rows(store, SITES, [fid]).iloc[0]["version"]) == 1
    return caught.value


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"area_m2": -5}, "area_m2"),
        ({"area_m2": "-5"}, "area_m2"),
        ({"area_m2": "-0.01"}, "area_m2"),
        ({"floors": -3}, "floors"),
        ({"floors": "-3"}, "floors"),
    ],
)
def test_a_negative_measure_is_refused(site: tuple[Any, int], fields: dict[str, Any], field: str) -> None:
    store, fid = site
    error = _refused(store, fid, fields)
    assert "负数" in error.zh and "negative" in error.en and error.details == {"field": field}


@pytest.mark.parametrize(
    "fields",
    [
        {"area_m2": float("inf")},
        {"area_m2": "1e309"},
        {"area_m2": "NaN"},
        {"floors": 2.5},
        {"floors": "2.5"},
    ],
)
def test_an_infinite_or_fractional_measure_is_refused(site: tuple[Any, int], fields: dict[str, Any]) -> None:
    store, fid = site
    _refused(store, fid, fields)


def test_zero_and_fractions_of_a_float_measure_are_kept(site: tuple[Any, int]) -> None:
    store, fid = site
    edit_feature(store, "demolition", fid, 1, {"area_m2": "12.5", "floors": "0"})
    row = current_rows(store, SITES, [fid]).iloc[0]
    assert float(row["area_m2"]) == 12.5 and int(row["floors"]) == 0


def test_a_date_after_today_is_refused(site: tuple[Any, int]) -> None:
    store, fid = site
    tomorrow = (clock.today() + timedelta(days=1)).isoformat()
    for fields in (
        {"done_on": "2099-12-31", "status": "已拆除"},
        {"done_on": tomorrow},
        {"found_on": tomorrow},
    ):
        error = _refused(store, fid, fields)
        assert "今天" in error.zh and "after today" in error.en
    edit_feature(store, "demolition", fid, 1, {"done_on": clock.today().isoformat(), "status": "已拆除"})
    assert current_rows(store, SITES, [fid]).iloc[0]["done_on"] == clock.today().isoformat()


def test_a_completion_before_the_found_date_is_refused(site: tuple[Any, int]) -> None:
    store, fid = site
    error = _refused(store, fid, {"done_on": "2024-02-29", "status": "已拆除"})  # found 2024-03-01
    assert (
        "2024-03-01" in error.zh and "before found on" in error.en and error.details == {"field": "done_on"}
    )
    _refused(store, fid, {"found_on": "2024-05-01", "done_on": "2024-04-30"})
    edit_feature(store, "demolition", fid, 1, {"done_on": "2024-03-01", "status": "已拆除"})
    # the found date moved after the stored completion date: refused too
    with pytest.raises(InputError) as caught:
        edit_feature(store, "demolition", fid, 2, {"found_on": "2024-03-02"})
    assert caught.value.code == "bad_field"


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    area=st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-(10**13), 10**13)),
    floors=st.one_of(st.floats(-100, 100), st.integers(-100, 100)),
)
def test_what_an_edit_stores_is_a_finite_measure_not_below_zero(
    site: tuple[Any, int], area: float, floors: float
) -> None:
    """Whatever number is sent, either it is refused or what is stored is finite, not negative,
    and (a count) whole."""
    store, fid = site
    version = int(current_rows(store, SITES, [fid]).iloc[0]["version"])
    try:
        edit_feature(store, "demolition", fid, version, {"area_m2": area, "floors": floors})
    except InputError as e:
        assert e.code == "bad_field"
        return
    row = current_rows(store, SITES, [fid]).iloc[0]
    assert 0 <= float(row["area_m2"]) < float("inf") and float(row["area_m2"]) == float(area)
    assert int(row["floors"]) == floors >= 0


def test_a_new_site_needs_its_id_or_address(gridded_store: Any) -> None:
    lon, lat = TO_LONLAT.transform(X0 + 250, Y0 - 150)
    here = {"type": "Point", "coordinates": [float(lon), float(lat)]}
    for fields in ({}, {"case_id": "  "}, {"floors": 2, "area_m2": 10}):
        with pytest.raises(InputError) as caught:
            add_feature(gridded_store, "demolition", fields, here)
        assert caught.value.code == "bad_field"
        assert (
            "案件编号" in caught.value.zh and "违建地址" in caught.value.zh and "address" in caught.value.en
        )
    assert gridded_store.batches() and all(b.kind != "edit" for b in gridded_store.batches())
    assert add_feature(gridded_store, "demolition", {"address": "新发现路"}, here).version == 1
    assert add_feature(gridded_store, "demolition", {"case_id": "N2"}, here).version == 1


def test_every_survey_layer_says_what_names_a_new_feature() -> None:
    for spec in layers.survey_layers():
        assert spec.required_any and spec.id_field in spec.required_any
        assert set(spec.required_any) <= set(spec.field_names)


def test_a_far_future_or_very_old_date_does_not_widen_the_months(gridded_store: Any, tmp_path: Path) -> None:
    """An import takes any date of 1950-2100: such a row leaves the months ending this month, at
    most MAX_MONTHS of them; a range asked for explicitly may still be refused."""
    _sites(gridded_store, tmp_path, ["2099-12-31", ""], ["已拆除", "已登记"], ["2024-03-01", "1950-01-01"])
    series = monthly(gridded_store, "district", ["demolition"])
    months = sorted(set(series["month"]))
    assert months[-1] == clock.today().isoformat()[:7] and len(months) == MAX_MONTHS
    data = stats_page_data(gridded_store, "demolition")
    assert data["monthly"]["months"][-1] == clock.today().isoformat()[:7]
    with pytest.raises(InputError) as caught:
        monthly(gridded_store, "district", ["demolition"], start="1990-01", end="2099-12")
    assert caught.value.code == "bad_range"


@pytest.fixture
def site_data(tmp_path: Path, store_url: str | None) -> Path:
    data = tmp_path / "store"
    with open_test_store(data) as store:
        import_file(store, "grid", write_shp(grid_frame(), tmp_path / "g" / "g.shp"))
        for name, password in PASSWORDS.items():
            accounts.add_user(store, name, "surveyor" if name.startswith("surveyor") else name, password)
        _sites(store, tmp_path, ["", ""], ["已登记", "已登记"], ["2024-03-01", "2024-03-01"])
    return data


def test_over_http_impossible_values_are_refused_and_the_statistics_stay_up(
    site_data: Path, make_app: Any
) -> None:
    app = make_app(site_data)
    surveyor, viewer = Session(app, "surveyor"), Session(app, "viewer")
    # 1e309 is a JSON number Python reads as infinity
    raw = '{"version": 1, "fields": {"area_m2": 1e309}}'
    got = surveyor.request(
        "PATCH", "/api/features/demolition/1", data=raw, headers={"Content-Type": "application/json"}
    )
    assert got.status_code == 400 and got.json["error"] == "bad_field"
    for fields in ({"area_m2": -5}, {"floors": "2.5"}, {"done_on": "2099-12-31", "status": "已拆除"}):
        got = surveyor.request("PATCH", "/api/features/demolition/1", json={"version": 1, "fields": fields})
        assert got.status_code == 400 and got.json["error"] == "bad_field", fields
    added = surveyor.request(
        "POST",
        "/api/features/demolition",
        json={"geometry": viewer.request("GET", "/api/features/demolition/1").json["geometry"], "fields": {}},
    )
    assert added.status_code == 400 and added.json["error"] == "bad_field"
    assert viewer.request("GET", "/api/features/demolition/1").json["properties"]["version"] == 1
    assert viewer.request("GET", "/stats").status_code == 200


def test_the_statistics_page_answers_with_a_far_future_date_stored(
    tmp_path: Path, store_url: str | None, make_app: Any
) -> None:
    data = tmp_path / "store"
    with open_test_store(data) as store:
        import_file(store, "grid", write_shp(grid_frame(), tmp_path / "g" / "g.shp"))
        accounts.add_user(store, "viewer", "viewer", PASSWORDS["viewer"])
        _sites(store, tmp_path, ["2099-12-31", ""], ["已拆除", "已登记"], ["2024-03-01", "2024-03-01"])
    viewer = Session(make_app(data), "viewer")
    page = viewer.request("GET", "/stats")
    assert page.status_code == 200, page.get_data(as_text=True)[:300]
    assert "月份范围过长" not in page.get_data(as_text=True)


def test_an_import_warns_of_dates_after_today(gridded_store: Any, tmp_path: Path) -> None:
    """An import keeps such a row (it was so surveyed) and says so; an edit refuses the date."""
    frame = points_frame(
        [(X0 + 50, Y0 - 50), (X0 + 150, Y0 - 150)],
        案件编号=["F1", "F2"],
        当前状态=["已拆除", "已登记"],
        发现时间=["2024-03-01", "2024-03-01"],
        拆除时间=["2099-12-31", ""],
    )
    report = import_file(gridded_store, "demolition", write_shp(frame, tmp_path / "f" / "f.shp"))
    assert report.added == 2
    assert any(
        "1 行的日期晚于今天" in zh and "1 rows have a date after today" in en for zh, en in report.warnings
    )
