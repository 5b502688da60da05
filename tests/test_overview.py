"""The figures of the map and statistics pages, without a web framework: counted by hand from
four demolition sites on the test grid, and checked against the tally at month ends."""

from __future__ import annotations

import calendar
import json
from datetime import date

import pyproj
import pytest

from geo.figures.overview import DEFAULT_BOUNDS, map_summary, stats_page_data
from geo.figures.tally import tally
from geo.imports.importer import import_file
from geo.registry import get_layer
from tests.helpers.builders import COMM_A, COMM_B, EPSG_GK, X0, Y0, grid_frame, points_frame, write_shp

pytestmark = pytest.mark.backends

STREET = COMM_A[:9]


@pytest.fixture
def surveyed(gridded_store, tmp_path):
    """A1 demolished 2022-03-01 (cell A001), A2 registered (cell A002), A3 demolished without a
    date (cell B001, community B), A4 registered outside the grid; areas 100, 50, 30, 20 m²."""
    sites = points_frame(
        [(X0 + 50, Y0 - 50), (X0 + 150, Y0 - 50), (X0 + 50, Y0 - 250), (X0 - 500, Y0 - 50)],
        案件编号=["A1", "A2", "A3", "A4"],
        当前状态=["已拆除", "已登记", "已拆除", "已登记"],
        发现时间=["2022-01-05", "2022-05-20", "2022-02-01", "2022-03-10"],
        拆除时间=["2022-03-01", "", "", ""],
        违建面积=[100.0, 50.0, 30.0, 20.0],
    )
    import_file(gridded_store, "demolition", write_shp(sites, tmp_path / "s" / "s.shp"))
    return gridded_store


def test_map_summary_counts_the_sites(surveyed):
    summary = map_summary(surveyed, "demolition")
    assert summary["totals"] == {"total": 4, "completed": 2, "unassigned": 1}
    assert summary["max_completed"] == 1  # one demolished site per cell at most
    assert summary["measure_column"] == get_layer("demolition").measures[0].completed_column("demolition")
    assert summary["max_measure"] == 100.0  # A1's area, the largest demolished in one cell
    assert summary["areas"] == {
        "street": [(STREET, "弋江街道")],
        "community": [(COMM_A, "赭山社区"), (COMM_B, "镜湖社区")],
    }
    json.dumps(summary)  # plain data: numbers, text, lists and mappings


def test_map_summary_scales_follow_the_level(surveyed):
    street = map_summary(surveyed, "demolition", "street")
    assert street["max_completed"] == 2  # both demolished sites lie in the one street
    assert street["max_measure"] == 130.0
    # as of 2022-03-31: A1 demolished; A2 not yet found
    early = map_summary(surveyed, "demolition", "grid", date(2022, 3, 31))
    assert early["totals"] == {"total": 3, "completed": 1, "unassigned": 1}


def test_map_summary_bounds_are_the_grid_in_lon_lat(surveyed):
    west, south, east, north = grid_frame().total_bounds
    to_lonlat = pyproj.Transformer.from_crs(EPSG_GK, 4490, always_xy=True)
    corners = [to_lonlat.transform(x, y) for x in (west, east) for y in (south, north)]
    expected = [
        min(c[0] for c in corners),
        min(c[1] for c in corners),
        max(c[0] for c in corners),
        max(c[1] for c in corners),
    ]
    assert map_summary(surveyed, "demolition")["bounds"] == pytest.approx(expected, abs=1e-6)


def test_map_summary_without_a_grid(store):
    summary = map_summary(store, "parking")
    assert summary["bounds"] == list(DEFAULT_BOUNDS)
    assert summary["totals"] == {"total": 0, "completed": 0, "unassigned": 0}
    assert summary["max_completed"] == 1 and summary["max_measure"] == 1.0
    assert summary["areas"] == {"street": [], "community": []}


@pytest.mark.slow
def test_stats_page_data_by_hand(surveyed):
    data = stats_page_data(surveyed, "demolition", "community")
    rows = {r["code"]: r for r in data["rows"]}
    assert list(rows) == [COMM_A, COMM_B, "UNASSIGNED"]
    assert [rows[c]["demolition_total"] for c in rows] == [2, 1, 1]
    assert [rows[c]["demolition_completed"] for c in rows] == [1, 1, 0]
    # lagging: units with sites, lowest completion first; the unassigned sites are no unit
    assert [r["code"] for r in data["lagging"]] == [COMM_A, COMM_B]
    assert data["by_level"] == [  # the levels between unit grid and district, from the top down
        {"name": "street", "labels": ["弋江街道"], "rates": [66.7]},  # 2 of the 3 sites inside the grid
        {"name": "community", "labels": ["赭山社区", "镜湖社区"], "rates": [50.0, 100.0]},
    ]
    assert data["undated_now"] == 1 and data["has_undated"]  # A3
    json.dumps(data)


@pytest.mark.slow
def test_stats_page_lagging_units_at_the_grid_level(surveyed):
    lagging = stats_page_data(surveyed, "demolition")["lagging"]
    assert lagging[0]["code"] == f"{COMM_A}002"  # A2, not demolished
    assert {r["code"] for r in lagging} == {f"{COMM_A}001", f"{COMM_A}002", f"{COMM_B}001"}


@pytest.mark.slow
def test_stats_page_monthly_series_agrees_with_the_tally(surveyed):
    series = stats_page_data(surveyed, "demolition")["monthly"]
    months = series["months"]
    assert months[:6] == ["2022-01", "2022-02", "2022-03", "2022-04", "2022-05", "2022-06"]
    assert series["total"][:6] == [1, 2, 3, 3, 4, 4]
    assert series["completed"][:6] == [0, 0, 1, 1, 1, 1]  # A1 in March; A3 has no date
    # A3 counts from the day of its import, apart from the dated completions
    assert series["undated"][-1] == 1 and sum(series["undated"][:6]) == 0
    for i in (*range(6), len(months) - 1):
        year, month = (int(p) for p in months[i].split("-"))
        end = date(year, month, calendar.monthrange(year, month)[1])
        table = tally(surveyed, "district", ["demolition"], end)
        assert series["total"][i] == table["demolition_total"].sum()
        assert series["completed"][i] + series["undated"][i] == table["demolition_completed"].sum()


def test_stats_page_data_as_of_ends_the_series(surveyed):
    data = stats_page_data(surveyed, "demolition", "district", date(2022, 4, 15))
    assert data["monthly"]["months"] == ["2022-01", "2022-02", "2022-03", "2022-04"]
    assert data["undated_now"] == 0  # A3's completion counts from its import, after that day
    rows = {r["code"]: r for r in data["rows"]}
    assert rows[STREET[:6]]["demolition_total"] == 2 and rows["UNASSIGNED"]["demolition_total"] == 1
