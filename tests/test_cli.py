"""The ``gridwatch`` command line, run as a user would (in-process and as a real subprocess)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import openpyxl
import pandas as pd
import pyogrio
import pytest

from geo.cli import main
from tests.helpers.builders import COMM_A, X0, Y0, grid_frame, points_frame, write_shp


@pytest.fixture
def data(tmp_path: Path) -> str:
    return str(tmp_path / "store")


@pytest.fixture
def loaded(tmp_path: Path, data: str) -> str:
    assert (
        main(["--data", data, "import", "grid", str(write_shp(grid_frame(), tmp_path / "g" / "网格.shp"))])
        == 0
    )
    sites = points_frame(
        [(X0 + 50, Y0 - 50), (X0 + 150, Y0 - 50), (X0 - 900, Y0 + 900)],
        案件编号=["A", "B", "C"],
        当前状态=["已拆除", "已登记", "已登记"],
        违建面积=["10", "20", "5"],
        发现时间=["2022-01-01"] * 3,
        拆除时间=["2022-06-01", "", ""],
    )
    assert (
        main(["--data", data, "import", "demolition", str(write_shp(sites, tmp_path / "s" / "违建.shp"))])
        == 0
    )
    return data


@pytest.mark.slow
def test_import_report_and_json(tmp_path, data, runner):
    shp = write_shp(grid_frame(), tmp_path / "g" / "网格.shp")
    run = runner("--data", data, "import", "grid", str(shp), "--dry-run", "--json")
    assert run.code == 0
    out = json.loads(run.out)
    assert out["status"] == "preview" and out["rows_read"] == 9 and out["encoding"] == "gb18030"
    run = runner("--data", data, "import", "grid", str(shp))
    assert run.code == 0
    assert "读取 9 行" in run.out and "新增 9" in run.out
    run = runner("--data", data, "--lang", "en", "import", "grid", str(shp))
    assert run.code == 0 and "already imported" in run.out


def test_rejected_input_exits_nonzero_with_one_line(tmp_path, data, capsys):
    bad = tmp_path / "x.zip"
    bad.write_bytes(b"not a zip")
    assert main(["--data", data, "import", "demolition", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "zip" in err and "Traceback" not in err
    assert main(["--data", data, "import", "nosuch", str(bad)]) == 2
    assert "未知图层" in capsys.readouterr().err
    assert main(["--data", data, "rollback", "42"]) == 2
    assert "not found" in capsys.readouterr().err
    assert main(["--data", data, "stats", "--as-of", "2022-13-40"]) == 2


@pytest.mark.slow
def test_stats_csv_has_bom_units_and_unassigned(loaded, tmp_path):
    out = tmp_path / "stats.csv"
    assert main(["--data", loaded, "stats", "--level", "grid", "--layer", "demolition", "-o", str(out)]) == 0
    raw = out.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    df = pd.read_csv(out, encoding="utf-8-sig", dtype={"code": str})
    for col in (
        "code",
        "name",
        "demolition_total",
        "demolition_completed",
        "demolition_rate",
        "demolition_area_m2",
        "demolition_area_completed_m2",
    ):
        assert col in df.columns
    assert len(df) == 10 and df["code"].iloc[-1] == "UNASSIGNED"
    assert df["demolition_total"].sum() == 3
    row = df.set_index("code").loc[f"{COMM_A}001"]
    assert (row["demolition_total"], row["demolition_completed"], row["demolition_area_completed_m2"]) == (
        1,
        1,
        10,
    )
    may = tmp_path / "may.csv"
    assert main(["--data", loaded, "stats", "--as-of", "2022-05-31", "-o", str(may)]) == 0
    assert pd.read_csv(may, encoding="utf-8-sig")["demolition_completed"].sum() == 0


@pytest.mark.slow
def test_stats_xlsx_all_levels_chinese_headers(loaded, tmp_path):
    out = tmp_path / "stats.xlsx"
    assert main(["--data", loaded, "stats", "--format", "xlsx", "-o", str(out)]) == 0
    wb = openpyxl.load_workbook(out)
    assert wb.sheetnames[:4] == ["单元网格", "社区", "街道", "区"]
    ws = wb["社区"]
    headers = [c.value for row in ws.iter_rows(min_row=1, max_row=3) for c in row]
    assert "违法建设完成率" in headers and "违法建设总数" in headers
    values = [c.value for c in ws[ws.max_row]]
    assert "合计" in values


@pytest.mark.slow
def test_stats_geojson_and_gpkg(loaded, tmp_path, capsys):
    assert main(["--data", loaded, "stats", "--level", "community", "--format", "geojson"]) == 0
    fc = json.loads(capsys.readouterr().out)
    assert fc["type"] == "FeatureCollection" and len(fc["features"]) == 3
    lon, lat = fc["features"][0]["geometry"]["coordinates"][0][0][:2]
    assert 118 < lon < 119 and 31 < lat < 32
    out = tmp_path / "s.gpkg"
    assert main(["--data", loaded, "stats", "--format", "gpkg", "-o", str(out)]) == 0
    layers_found = [r[0] for r in pyogrio.list_layers(out)]
    assert "stats_grid" in layers_found and "stats_street" in layers_found


@pytest.mark.slow
def test_batches_and_rollback(loaded, capsys):
    assert main(["--data", loaded, "batches", "--json"]) == 0
    batches = json.loads(capsys.readouterr().out)
    assert [b["layer"] for b in batches] == ["grid", "demolition"]
    assert main(["--data", loaded, "rollback", str(batches[1]["id"])]) == 0
    capsys.readouterr()
    assert main(["--data", loaded, "batches"]) == 0
    assert "已回滚" in capsys.readouterr().out


@pytest.mark.slow
def test_console_script_runs(tmp_path, loaded):
    exe = Path(sys.executable).with_name("gridwatch")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "geo.cli"]
    proc = subprocess.run(
        [*cmd, "--data", loaded, "stats", "--level", "street", "--format", "json"],
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    body = json.loads(proc.stdout)
    assert body["level"] == "street" and body["rows"][0]["code"] == "340291001"
    proc = subprocess.run(
        [*cmd, "--data", loaded, "import", "grid", str(tmp_path / "missing.shp")],
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 2 and b"Traceback" not in proc.stderr


@pytest.mark.slow
def test_monthly_series(loaded, tmp_path):
    out = tmp_path / "monthly.csv"
    args = ["--data", loaded, "stats", "--monthly", "2022-01:2022-07", "--level", "district", "-o", str(out)]
    assert main(args) == 0
    df = pd.read_csv(out, encoding="utf-8-sig", dtype={"code": str})
    d = df[df["code"] == "340291"]
    assert d["month"].tolist() == [f"2022-{m:02d}" for m in range(1, 8)]
    assert d["demolition_completed"].tolist() == [0, 0, 0, 0, 0, 1, 1]  # demolished 2022-06-01
    assert d["demolition_total"].tolist() == [2] * 7


@pytest.mark.slow
def test_grid_generate_and_load(tmp_path, data, capsys):
    import geopandas as gpd
    import shapely

    from tests.helpers.builders import EPSG_GK

    boundary = gpd.GeoDataFrame(
        {"名称": ["青弋区"]}, geometry=[shapely.box(X0, Y0, X0 + 1000, Y0 + 600)], crs=EPSG_GK
    )
    bshp = write_shp(boundary, tmp_path / "b" / "边界.shp")
    comm = gpd.GeoDataFrame(
        {"社区编码": ["340291001001", "340291001002"], "社区名称": ["东社区", "西社区"]},
        geometry=[shapely.box(X0 + 500, Y0, X0 + 1000, Y0 + 600), shapely.box(X0, Y0, X0 + 500, Y0 + 600)],
        crs=EPSG_GK,
    )
    cshp = write_shp(comm, tmp_path / "c" / "社区.shp")
    out = tmp_path / "网格.gpkg"
    args = [
        "--data",
        data,
        "grid-generate",
        str(bshp),
        "--size",
        "100",
        "--communities",
        str(cshp),
        "-o",
        str(out),
    ]
    assert main([*args, "--load"]) == 0
    assert "生成 60 个单元网格" in capsys.readouterr().out
    grid = gpd.read_file(out)
    assert len(grid) == 60 and grid["code"].str.len().eq(15).all()
    assert set(grid["code"].str[:12]) == {"340291001001", "340291001002"}
    assert abs(grid.geometry.area.sum() - 600_000) < 1e-3
    assert main(["--data", data, "stats", "--level", "community", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert [r["code"] for r in rows] == ["340291001001", "340291001002", "UNASSIGNED"]
    bad = ["--data", data, "grid-generate", str(bshp), "--size", "100", "-o", str(tmp_path / "x.gpkg")]
    assert main(bad) == 2  # neither communities nor an admin code
    assert capsys.readouterr().err.startswith("gridwatch: ")


# --------------------------------------------------------------------------- hostile values and arguments


def _one_bilingual_line(err: str) -> str:
    line = err.strip()
    assert line.count("\n") == 0 and "Traceback" not in line and line.startswith("gridwatch: "), err
    assert "/" in line, err  # Chinese / English
    return line


@pytest.mark.slow
def test_terminal_escapes_are_shown_not_run(tmp_path, loaded, capsys):
    """DBF and CSV values, and file names, reach the terminal with controls and bidi escaped."""
    csv_file = tmp_path / "a\x1b[31mred\u202etxt.csv"
    lon, lat = 118.4005, 31.2995
    csv_file.write_text(
        f"案件编号,当前状态,经度,纬度\nX1,\x1b[2J\u202e已拆除,{lon},{lat}\n\u009b5m,\x07,{lon},{lat}\n",
        encoding="utf-8",
    )
    capsys.readouterr()
    assert main(["--data", loaded, "import", "demolition", str(csv_file)]) == 0
    out = capsys.readouterr().out
    assert main(["--data", loaded, "batches"]) == 0
    out += capsys.readouterr().out
    for raw in ("\x1b", "\u202e", "\x07", "\u009b"):
        assert raw not in out
    assert "\\x1b[31mred\\u202etxt.csv" in out
    # a tab inside a value cannot shift the columns of the list
    assert all(line.count("\t") == 10 for line in out.splitlines() if line.startswith(("1\t", "2\t", "3\t")))
    assert main(["--data", loaded, "batches", "--json"]) == 0
    text = capsys.readouterr().out
    assert "\x1b" not in text and "\u202e" not in text and "\\u202e" in text
    assert json.loads(text)[-1]["source_name"] == csv_file.name


@pytest.mark.slow
@pytest.mark.parametrize(
    "args",
    [
        ["rollback", "99999999999999999999"],
        ["rollback", "-1"],
        ["rollback", "abc"],
        ["token", "revoke", "--id", "18446744073709551616"],
        ["audit", "--limit", "99999999999999999999"],
        ["stats", "--as-of", "2022-13-40"],
        ["stats", "--as-of", "2022-05-25\x1b[31m"],
        ["stats", "--monthly", "2022-13:2022-14"],
        ["stats", "--monthly", "2022-12:2022-01"],
        ["stats", "--monthly", "2022-01"],
        ["stats", "--monthly", "1:2:3"],
        ["stats", "--format", "docx"],
        ["stats", "--level", "\x1b[2J"],
        ["stats", "-o", "/nonexistent/dir/x.csv"],
        ["import", "demolition", "/nonexistent/x.zip"],
        ["import", "demolition", "x.zip", "--encoding", "rot13"],
        ["import", "demolition", "x.zip", "--encoding", "unicode_escape"],
        ["grid-generate", "b.shp", "--size", "nan", "-o", "x.gpkg"],
        ["grid-generate", "b.shp", "--size", "1e300", "-o", "x.gpkg"],
        ["nosuch"],
    ],
)
def test_bad_argument_values_exit_2_with_one_line(loaded, args, capsys):
    assert main(["--data", loaded, *args]) == 2
    line = _one_bilingual_line(capsys.readouterr().err)
    assert "\x1b" not in line


@pytest.mark.slow
@pytest.mark.parametrize("as_of", ["20220701", "2022年7月1日", " 2022-07-01", "2022/7/1"])
def test_stats_as_of_in_every_accepted_form(loaded, tmp_path, as_of):
    iso, other = tmp_path / "iso.csv", tmp_path / "other.csv"
    assert main(["--data", loaded, "stats", "--as-of", "2022-07-01", "-o", str(iso)]) == 0
    assert main(["--data", loaded, "stats", "--as-of", as_of, "-o", str(other)]) == 0
    assert other.read_bytes() == iso.read_bytes()
    assert main(["--data", loaded, "stats", "--as-of", as_of, "--format", "json"]) == 0


@pytest.mark.slow
def test_stats_before_the_first_data_month(loaded, tmp_path, capsys):
    assert main(["--data", loaded, "stats", "--as-of", "2021-06-30", "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["as_of"] == "2021-06-30" and sum(r["demolition_total"] for r in doc["rows"]) == 0
    out = tmp_path / "m.csv"
    assert main(["--data", loaded, "stats", "--monthly", "2021-01:2021-06", "-o", str(out)]) == 0
    table = pd.read_csv(out, encoding="utf-8-sig")
    assert len(table) == 6 * 10 and table["demolition_total"].sum() == 0
    assert main(["--data", loaded, "stats", "--monthly", "2021年1月:2021年6月", "-o", str(out)]) == 0


@pytest.mark.slow
def test_cpg_naming_no_text_encoding_is_ignored_with_a_warning(tmp_path, loaded, capsys):
    sites = points_frame([(X0 + 50, Y0 - 50)], 案件编号=["Z1"], 违建地址=["赭山路"])
    shp = write_shp(sites, tmp_path / "z" / "违建.shp")
    for codec in ("rot13", "zlib", "unicode_escape", "undefined"):
        shp.with_suffix(".cpg").write_text(codec)
        assert main(["--data", loaded, "import", "demolition", str(shp), "--dry-run", "--json"]) == 0
        report = json.loads(capsys.readouterr().out)
        assert report["encoding"] == "gb18030" and report["rows_read"] == 1


@pytest.mark.slow
@pytest.mark.parametrize(
    "codec", ["rot13", "zlib", "hex", "base64", "uu_codec", "undefined", "idna", "punycode"]
)
def test_encoding_naming_no_text_codec_exits_2(tmp_path, loaded, codec, capsys):
    shp = write_shp(points_frame([(X0 + 50, Y0 - 50)], 案件编号=["Z1"]), tmp_path / "z" / "违建.shp")
    capsys.readouterr()
    assert main(["--data", loaded, "import", "demolition", str(shp), "--encoding", codec]) == 2
    assert "encoding" in _one_bilingual_line(capsys.readouterr().err)
