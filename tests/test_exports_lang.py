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


# --- CSV headers and rates -----------------------------------------------------------------------


@pytest.mark.slow
def test_stats_csv_headers_in_chinese_english_or_codes(loaded, tmp_path):
    import csv

    def table(*extra):
        out = tmp_path / "t.csv"
        assert (
            main(
                [
                    "--data",
                    loaded,
                    "stats",
                    "--layer",
                    "demolition",
                    "--level",
                    "community",
                    "-o",
                    str(out),
                    *extra,
                ]
            )
            == 0
        )
        return list(csv.reader(out.read_text(encoding="utf-8-sig").splitlines()))

    code = table()  # the default stays the column names
    assert code[0][:2] == ["code", "name"] and "demolition_rate" in code[0]
    zh = table("--headers", "zh")
    assert "违法建设完成率" in zh[0] and "违法建设总数" in zh[0] and "demolition_rate" not in zh[0]
    en = table("--headers", "en")
    assert "Illegal construction: completion rate" in en[0]
    assert zh[1:] == code[1:] == en[1:]
    # one of three done: 0.333 as the workbook's 33.3 %, not 0.3333333333333333
    rates = {r[0]: r[code[0].index("demolition_rate")] for r in code[1:]}
    assert "0.333" in rates.values() and not any(len(v) > 5 for v in rates.values())


@pytest.mark.slow
def test_ledger_headers(loaded, capsys):
    assert main(["--data", loaded, "ledger", "demolition", "--format", "csv", "--headers", "code"]) == 0
    first = capsys.readouterr().out.lstrip("\ufeff").splitlines()[0]
    assert ("案件编号" not in first and "case_id" in first) or "id" in first
    assert main(["--data", loaded, "--lang", "en", "ledger", "demolition", "--format", "csv"]) == 0
    assert "Case id" in capsys.readouterr().out
    assert (
        main(["--data", loaded, "--lang", "en", "ledger", "demolition", "--format", "csv", "--headers", "zh"])
        == 0
    )
    assert "案件编号" in capsys.readouterr().out


def test_web_csv_headers(client):
    zh = client.get("/api/stats?format=csv&layer=违法建设&headers=zh").text.lstrip("\ufeff")
    assert zh.splitlines()[0].startswith("编码") or "违法建设完成率" in zh.splitlines()[0]
    assert "违法建设完成率" in zh.splitlines()[0]
    plain = client.get("/api/stats?format=csv&layer=demolition").text.lstrip("\ufeff")
    assert plain.startswith("code,name")
    r = client.get("/api/stats?format=csv&headers=fr")
    assert r.status_code == 400 and r.get_json()["error"] == "bad_parameter"
    ledger = client.get("/api/ledger/demolition?format=csv&headers=zh")
    assert "案件编号" in ledger.text
    disposition = ledger.headers["Content-Disposition"]
    assert "filename*=UTF-8''" in disposition and 'filename="gridwatch_demolition_ledger.csv"' in disposition


# --- files that are what their name says ---------------------------------------------------------


@pytest.mark.slow
def test_stats_shp_writes_the_shapefile_set_it_names(loaded, tmp_path, capsys):
    import pyogrio

    out = tmp_path / "x.shp"
    assert main(["--data", loaded, "stats", "--format", "shp", "-o", str(out)]) == 0
    for ext in (".shp", ".shx", ".dbf", ".prj", ".cpg"):
        assert out.with_suffix(ext).is_file(), ext
    frame = pyogrio.read_dataframe(out)
    assert len(frame) == 10 and "code" in frame.columns  # the unit grid and the unassigned row
    # the extension alone says the format
    alone = tmp_path / "y.shp"
    assert main(["--data", loaded, "stats", "--level", "community", "-o", str(alone)]) == 0
    assert len(pyogrio.read_dataframe(alone)) == 3  # two communities and the unassigned row
    zipped = tmp_path / "z.zip"
    assert main(["--data", loaded, "stats", "--format", "shp", "-o", str(zipped)]) == 0
    import zipfile

    assert "stats_street.shp" in zipfile.ZipFile(zipped).namelist()


@pytest.mark.slow
def test_the_output_extension_chooses_or_contradicts_the_format(loaded, tmp_path, capsys):
    import openpyxl

    book = tmp_path / "s.xlsx"
    assert main(["--data", loaded, "stats", "-o", str(book)]) == 0
    assert openpyxl.load_workbook(book).sheetnames[0] == "单元网格"
    capsys.readouterr()
    for args in (
        ["--format", "csv", "-o", str(tmp_path / "a.xlsx")],
        ["--format", "xlsx", "-o", str(tmp_path / "a.csv")],
        ["--format", "shp", "-o", str(tmp_path / "a")],
        ["--format", "gpkg", "-o", str(tmp_path / "a.dat")],
    ):
        assert main(["--data", loaded, "stats", *args]) == 2, args
        err = capsys.readouterr().err
        assert "--format" in err or "-o" in err, err
        assert err.count("\n") == 1 and "Traceback" not in err
    assert not any(tmp_path.glob("a*"))
    ledger = tmp_path / "l.csv"
    assert main(["--data", loaded, "ledger", "demolition", "-o", str(ledger)]) == 0
    assert "案件编号" in ledger.read_text(encoding="utf-8-sig")


# --- workbooks for paper -------------------------------------------------------------------------


def test_the_stats_workbook_prints_on_a4_landscape_with_page_numbers(client):
    import io

    import openpyxl

    r = client.get("/api/stats?format=xlsx&layer=违法建设&as_of=2022-06-30&level=grid")
    assert r.status_code == 200
    disposition = r.headers["Content-Disposition"]
    disposition.encode("latin-1")
    from urllib.parse import unquote

    ascii_part, name = disposition.split("; filename*=UTF-8''")
    assert unquote(name) == "违法建设_单元网格_2022-06-30.xlsx"
    assert ascii_part == 'attachment; filename="gridwatch_all_2022-06-30.xlsx"'
    wb = openpyxl.load_workbook(io.BytesIO(r.data))
    for ws in wb.worksheets:
        if ws.title.startswith("说明"):
            continue
        assert ws.page_setup.orientation == "landscape" and int(ws.page_setup.paperSize) == 9  # A4
        assert ws.page_setup.fitToWidth == 1 and ws.sheet_properties.pageSetUpPr.fitToPage
        assert ws.print_title_rows == "$2:$2"  # the header row on every printed page
        assert ws.oddFooter.center.text == "第 &P 页 共 &N 页"
        assert ws.cell(row=2, column=1).value == "编码"


def test_the_ledger_workbook_prints_on_a4_landscape(client):
    import io

    import openpyxl

    r = client.get("/api/ledger/违法建设?format=xlsx")
    assert r.status_code == 200
    ws = openpyxl.load_workbook(io.BytesIO(r.data)).worksheets[0]
    assert ws.page_setup.orientation == "landscape" and int(ws.page_setup.paperSize) == 9
    assert ws.print_title_rows == "$1:$1" and ws.oddFooter.center.text == "第 &P 页 共 &N 页"
    assert ws.sheet_properties.pageSetUpPr.fitToPage and ws.page_setup.fitToWidth == 1
