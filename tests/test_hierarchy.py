"""The unit hierarchy is what the grid layer declares (geo.figures.hierarchy): its levels, their
code and name fields and code prefixes — a grid declared otherwise is counted its own way."""

from __future__ import annotations

import geopandas as gpd
import pandas as pd
import pytest
import shapely

import layers
from geo.errors import InputError
from geo.figures.hierarchy import UNCODED, check_level, hierarchy_from_grid, level_names
from geo.figures.tally import tally
from geo.imports.importer import import_file
from layers.base import Field, LayerSpec, Level
from tests.helpers.builders import EPSG_GK, X0, Y0, points_frame, write_shp
from tests.helpers.postgis import open_test_store

pytestmark = pytest.mark.backends

#: A grid of another bureau: 8-digit cell codes = 2 city + 3 ward + 3 sequence, other field names.
CELLS = LayerSpec(
    name="cells",
    label_zh="单元格",
    label_en="Cells",
    geometry_types=frozenset({"Polygon"}),
    fields=(
        Field("cell_id", "str", "单元编号", "Cell id"),
        Field("cell_nm", "str", "单元名称", "Cell name"),
        Field("ward_id", "str", "片区编号", "Ward id"),
        Field("ward_nm", "str", "片区名称", "Ward"),
        Field("city_id", "str", "市编号", "City id"),
        Field("city_nm", "str", "市名称", "City"),
    ),
    id_field="cell_id",
    is_grid=True,
    levels=(
        Level("cell", "单元格", "Cell", "cell_id", "cell_nm", 8),
        Level("ward", "片区", "Ward", "ward_id", "ward_nm", 5),
        Level("city", "市", "City", "city_id", "city_nm", 2),
    ),
)


@pytest.fixture
def cells_grid(monkeypatch):
    """The registry with CELLS in place of the built-in grid (restored afterwards)."""
    registry = {"cells": CELLS, **{s.name: s for s in layers.all_layers() if not s.is_grid}}
    monkeypatch.setattr(layers, "_REGISTRY", registry)
    return CELLS


def test_the_builtin_grid_rolls_up_by_its_declared_fields_and_prefixes():
    attrs = pd.DataFrame(
        {
            "code": ["340291001001001", "340291001002001", "X1"],
            "name": ["网格001", "网格002", "网格X"],
            "comm_code": [None, "340291001099", None],
            "community": ["赭山社区", "镜湖社区", None],
        }
    )
    h = hierarchy_from_grid(attrs)
    assert h.level_names == level_names() == ["grid", "community", "street", "district"]
    assert h.mapping("community") == {
        "340291001001001": "340291001001",  # 12-digit prefix
        "340291001002001": "340291001099",  # the explicit code field wins
        "X1": UNCODED,
    }
    assert h.mapping("district") == {"340291001001001": "340291", "340291001002001": "340291", "X1": UNCODED}


def test_a_grid_declared_otherwise_is_honoured(cells_grid):
    attrs = pd.DataFrame(
        {
            "cell_id": ["12345001", "12345002", "12399001", "ABC"],
            "cell_nm": ["一号", "二号", "三号", "无号"],
            "ward_id": [None, None, "12398", None],
            "ward_nm": ["东片", "东片", "西片", None],
            "city_nm": ["江城", "江城", "江城", None],
        }
    )
    h = hierarchy_from_grid(attrs)
    assert level_names() == h.level_names == ["cell", "ward", "city"]
    assert h.mapping("ward") == {
        "12345001": "12345",
        "12345002": "12345",
        "12399001": "12398",
        "ABC": UNCODED,
    }
    assert h.mapping("city") == {"12345001": "12", "12345002": "12", "12399001": "12", "ABC": UNCODED}
    cells = h.units("cell")
    assert cells["code"].tolist() == ["12345001", "12345002", "12399001", "ABC"]
    assert cells["name"].tolist() == ["一号", "二号", "三号", "无号"]
    assert cells["parent_code"].tolist() == ["12345", "12345", "12398", UNCODED]
    wards = h.units("ward")
    assert wards[["code", "name", "parent_code", "parent_name"]].head(2).values.tolist() == [
        ["12345", "东片", "12", "江城"],
        ["12398", "西片", "12", "江城"],
    ]
    assert wards["code"].iloc[2] == wards["parent_code"].iloc[2] == UNCODED  # kept, not dropped
    city = h.units("city")
    assert city["code"].tolist() == ["12", UNCODED] and city["parent_code"].isna().all()
    assert check_level(None) == "cell" and check_level("ward") == "ward"
    with pytest.raises(InputError) as err:
        check_level("community")
    assert err.value.code == "bad_level" and "cell, ward, city" in err.value.en


def test_a_store_counts_on_a_grid_declared_otherwise(cells_grid, tmp_path):
    boxes = [shapely.box(X0 + i * 100, Y0 - 100, X0 + (i + 1) * 100, Y0) for i in range(3)]
    grid = gpd.GeoDataFrame(
        {
            "cell_id": ["12345001", "12345002", "12346001"],
            "cell_nm": ["一号", "二号", "三号"],
            "ward_nm": ["东片", "东片", "西片"],
        },
        geometry=boxes,
        crs=EPSG_GK,
    )
    sites = points_frame(
        [(X0 + 50, Y0 - 50), (X0 + 60, Y0 - 50), (X0 + 250, Y0 - 50), (X0 + 900, Y0 - 50)],
        案件编号=["A1", "A2", "A3", "A4"],
        当前状态=["已拆除", "已登记", "已拆除", "已登记"],
    )
    with open_test_store(tmp_path / "data") as store:
        report = import_file(store, "cells", write_shp(grid, tmp_path / "g" / "cells.shp"))
        assert report.accepted == 3 and not any("digits" in en for _, en in report.warnings)
        import_file(store, "demolition", write_shp(sites, tmp_path / "s" / "sites.shp"))
        by_cell = tally(store, layer_names=["demolition"]).set_index("code")
        assert by_cell["level"].iloc[0] == "cell"
        assert by_cell["demolition_total"].to_dict() == {
            "12345001": 2,
            "12345002": 0,
            "12346001": 1,
            "UNASSIGNED": 1,
        }
        by_ward = tally(store, "ward", ["demolition"]).set_index("code")
        assert by_ward.loc["12345", "name"] == "东片" and by_ward.loc["12345", "parent_code"] == "12"
        assert by_ward["demolition_total"].to_dict() == {"12345": 2, "12346": 1, "UNASSIGNED": 1}
        assert by_ward["demolition_completed"].to_dict() == {"12345": 1, "12346": 1, "UNASSIGNED": 0}
        with pytest.raises(InputError):
            tally(store, "street")
