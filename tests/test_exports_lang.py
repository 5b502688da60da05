"""Exports a bureau reads: layers named in Chinese or English wherever a layer is named, CSV
headers in Chinese, rates rounded as in the workbook, output files that are what their name
says, and workbooks set up for printing."""

from __future__ import annotations

import pytest

from geo.cli import main
from geo.errors import InputError
from geo.registry import get_layer, layer_name
from tests.helpers.builders import X0, Y0, grid_frame, points_frame, write_shp


@pytest.fixture
def loaded(tmp_path) -> str:
    data = str(tmp_path / "store")
    assert (
        main(["--data", data, "import", "grid", str(write_shp(grid_frame(), tmp_path / "g" / "网格.shp"))])
        == 0
    )
    sites = points_frame(
        [(X0 + 50, Y0 - 50), (X0 + 150, Y0 - 50), (X0 + 250, Y0 - 50)],
        案件编号=["A", "B", "C"],
        当前状态=["已拆除", "已登记", "已登记"],
        违建面积=["10", "20", "5"],
        发现时间=["2022-01-01"] * 3,
        拆除时间=["2022-06-01", "", ""],
    )
    # the layer named by its Chinese name
    assert (
        main(["--data", data, "import", "违法建设", str(write_shp(sites, tmp_path / "s" / "违建.shp"))]) == 0
    )
    return data


# --- layer names ---------------------------------------------------------------------------------


def test_a_layer_is_found_by_code_chinese_or_english_name():
    assert get_layer("违法建设").name == "demolition" == layer_name("demolition")
    assert layer_name("Illegal construction") == "demolition" == layer_name("illegal CONSTRUCTION")
    assert layer_name(" 单元网格 ") == "grid"
    with pytest.raises(InputError) as bad:
        get_layer("违建")
    assert bad.value.code == "unknown_layer"
    assert "demolition (违法建设 / Illegal construction)" in bad.value.zh and "parking" in bad.value.en


def test_the_command_line_takes_a_chinese_layer_name(loaded, tmp_path, capsys):
    out = tmp_path / "s.csv"
    assert main(["--data", loaded, "stats", "--layer", "违法建设", "-o", str(out)]) == 0
    assert "demolition_total" in out.read_text(encoding="utf-8-sig")
    assert main(["--data", loaded, "ledger", "Illegal construction", "--format", "csv"]) == 0
    assert "案件编号" in capsys.readouterr().out
    assert main(["--data", loaded, "stats", "--layer", "违建"]) == 2
    assert (
        "可选: grid (单元网格 / Unit grid); demolition (违法建设 / Illegal construction)"
        in capsys.readouterr().err
    )


def test_the_api_and_pages_take_a_chinese_layer_name(client):
    r = client.get("/api/cells?level=grid&zoom=16&layer=违法建设")
    assert r.status_code == 200 and r.get_json()["features"]
    r = client.get("/api/features/违法建设?bbox=-180,-90,180,90&zoom=16")
    assert r.status_code == 200
    assert client.get("/api/features/Illegal construction?bbox=-180,-90,180,90&zoom=16").status_code == 200
    assert client.get("/stats?layer=违法建设").status_code == 200
    r = client.get("/api/cells?level=grid&zoom=16&layer=违建")
    assert r.status_code == 400 and "Illegal construction" in r.get_json()["message_en"]
