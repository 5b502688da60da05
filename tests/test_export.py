"""Statistics renderers: the figures a user checks in each exported file."""

from __future__ import annotations

import csv
import io
import json
import math
import subprocess
import zipfile
from pathlib import Path

import geopandas as gpd
import numpy as np
import openpyxl
import pandas as pd
import pyogrio
import pytest
import shapely

from geo.errors import InputError
from geo.figures.report import StatsReport
from geo.output.export import (
    Renderer,
    content_disposition,
    get_renderer,
    register_renderer,
    renderers,
    unregister_renderer,
)
from geo.output.tables import column_kind, spreadsheet_cell, totals
from tests.helpers.needs import libreoffice

AS_OF = "2022-06-30"
COMM = "340291001001"
GRID_CODES = [f"{COMM}001", f"{COMM}002", f"{COMM}003", "UNASSIGNED"]
LABELS = {
    "code": ("编码", "Code"),
    "name": ("名称", "Name"),
    "level": ("层级", "Level"),
    "parent_code": ("上级编码", "Parent code"),
    "parent_name": ("上级名称", "Parent"),
    "demolition_total": ("违法建设总数", "Illegal construction: total"),
    "demolition_completed": ("违法建设已完成", "Illegal construction: completed"),
    "demolition_rate": ("违法建设完成率", "Illegal construction: completion rate"),
    "demolition_area_m2": ("违法建设面积(m²)", "Illegal construction: area(m²)"),
    "demolition_area_completed_m2": ("违法建设已完成面积(m²)", "Illegal construction: completed area(m²)"),
    "demolition_completed_target": ("违法建设已完成目标", "Illegal construction: completed target"),
    "demolition_completed_progress": ("违法建设已完成目标完成度", "Illegal construction: completed progress"),
    "charging_ports": ("充电棚端口数", "E-bike charging shed: ports"),
    "charging_ports_completed": ("充电棚已完成端口数", "E-bike charging shed: completed ports"),
}
# Per grid, then UNASSIGNED: totals 20, completed 15 -> rate 15/20 = 0.75
# (the mean of the row rates 0.8, 0.667, -, 0.75 would be 0.739).
TOTAL = [10, 6, 0, 4]
DONE = [8, 4, 0, 3]
AREA = [120.5, 80.25, 0.0, 40.0]
AREA_DONE = [100.0, 60.5, 0.0, 30.0]
TARGET = [10.0, 5.0, np.nan, np.nan]
PORTS = [24.0, 0.0, 12.0, 0.0]
PORTS_DONE = [20.0, 0.0, 6.0, 0.0]


def _cell(i: int) -> shapely.Polygon:
    """A ~95 m x 110 m unit grid near 118.4°E 31.3°N (lon/lat)."""
    x = 118.4 + i * 0.001
    return shapely.box(x, 31.3, x + 0.001, 31.301)


def _grid_table() -> pd.DataFrame:
    t = pd.DataFrame(
        {
            "code": GRID_CODES,
            "name": ["网格001", "网格002", "网格003", "未落入网格"],
            "level": "grid",
            "parent_code": [COMM] * 3 + [None],
            "parent_name": ["赭山社区"] * 3 + [None],
            "demolition_total": np.array(TOTAL, dtype="int64"),
            "demolition_completed": np.array(DONE, dtype="int64"),
        }
    )
    t["demolition_rate"] = np.where(
        t["demolition_total"] > 0, t["demolition_completed"] / t["demolition_total"].clip(lower=1), np.nan
    )
    t["demolition_area_m2"] = AREA
    t["demolition_area_completed_m2"] = AREA_DONE
    t["demolition_completed_target"] = TARGET
    t["demolition_completed_progress"] = t["demolition_completed"] / t["demolition_completed_target"]
    t["charging_ports"] = PORTS
    t["charging_ports_completed"] = PORTS_DONE
    return t


def _community_table(grid: pd.DataFrame) -> pd.DataFrame:
    inside = grid.iloc[:3]
    row = {c: inside[c].sum() for c in grid.columns if c.startswith(("demolition", "charging"))}
    row["demolition_rate"] = row["demolition_completed"] / row["demolition_total"]
    row["demolition_completed_target"] = 15.0
    row["demolition_completed_progress"] = row["demolition_completed"] / 15.0
    t = pd.DataFrame(
        [
            {
                "code": COMM,
                "name": "赭山社区",
                "level": "community",
                "parent_code": "340291001",
                "parent_name": "弋江街道",
                **row,
            },
            {
                "code": "UNASSIGNED",
                "name": "未落入网格",
                "level": "community",
                "parent_code": None,
                "parent_name": None,
                **grid.iloc[3][list(row)].to_dict(),
            },
        ]
    )
    return t.astype({"demolition_total": "int64", "demolition_completed": "int64"})


@pytest.fixture
def report() -> StatsReport:
    grid = _grid_table()
    comm = _community_table(grid)
    cells = [_cell(i) for i in range(3)]
    geometry = {
        "grid": gpd.GeoSeries([*cells, None], index=grid.index, crs=4490),
        "community": gpd.GeoSeries([shapely.union_all(cells), None], index=comm.index, crs=4490),
    }
    return StatsReport(
        levels={"grid": grid, "community": comm}, columns=LABELS, as_of=AS_OF, geometry=geometry
    )


# --------------------------------------------------------------------------- registry


def test_builtin_renderers_registered() -> None:
    names = [r.name for r in renderers()]
    assert names[:6] == ["csv", "xlsx", "json", "geojson", "gpkg", "shp"]
    assert get_renderer("XLSX").extension == "xlsx"
    assert get_renderer(".csv").mimetype.startswith("text/csv")
    shp = get_renderer("shp")
    assert shp.extension == "zip" and shp.all_levels and shp.needs_geometry


def test_unknown_format_lists_known_ones() -> None:
    with pytest.raises(InputError) as err:
        get_renderer("docx")
    assert err.value.code == "unknown_format"
    assert "xlsx" in err.value.en and "csv" in err.value.zh
    assert "gpkg" in err.value.details["known"]


def test_register_custom_renderer(report: StatsReport) -> None:
    def render_count(rep: StatsReport, level: str | None) -> bytes:
        lv = level or next(iter(rep.levels))
        return str(len(rep.levels[lv])).encode()

    register_renderer(Renderer("count", "txt", "text/plain", render_count))
    try:
        assert get_renderer("count").render(report, "community") == b"2"
        assert "count" in [r.name for r in renderers()]
    finally:
        unregister_renderer("count")
    with pytest.raises(InputError):
        get_renderer("count")


def test_filename(report: StatsReport) -> None:
    assert get_renderer("csv").filename(report, "grid") == "gridwatch_grid_2022-06-30.csv"
    assert get_renderer("xlsx").filename(report, "grid") == "gridwatch_all_2022-06-30.xlsx"


def test_unknown_level_is_an_input_error(report: StatsReport) -> None:
    for fmt in ("csv", "json", "xlsx"):
        with pytest.raises(InputError) as err:
            get_renderer(fmt).render(report, "street")
        assert err.value.code == "unknown_level"


# --------------------------------------------------------------------------- totals


def test_totals_sum_counts_and_recompute_rates(report: StatsReport) -> None:
    t = totals(report.levels["grid"])
    assert t["demolition_total"] == 20 and isinstance(t["demolition_total"], int)
    assert t["demolition_completed"] == 15
    assert t["demolition_rate"] == pytest.approx(15 / 20)
    assert t["demolition_rate"] != pytest.approx(report.levels["grid"]["demolition_rate"].mean())
    assert t["demolition_area_m2"] == pytest.approx(sum(AREA))
    assert t["demolition_area_completed_m2"] == pytest.approx(sum(AREA_DONE))
    assert t["charging_ports"] == pytest.approx(36.0)
    assert t["demolition_completed_target"] == pytest.approx(15.0)
    # achieved over target, on the rows that have a target: (8 + 4) / (10 + 5)
    assert t["demolition_completed_progress"] == pytest.approx(12 / 15)
    assert t["code"] is None and t["name"] is None


def test_totals_rate_nan_when_nothing_counted() -> None:
    t = totals(pd.DataFrame({"code": ["a"], "x_total": [0], "x_completed": [0], "x_rate": [np.nan]}))
    assert math.isnan(t["x_rate"])


def test_column_kinds(report: StatsReport) -> None:
    g = report.levels["grid"]
    kinds = {c: column_kind(c, g[c]) for c in g.columns}
    assert kinds["code"] == kinds["parent_name"] == "text"
    assert kinds["demolition_rate"] == "rate"
    assert kinds["demolition_completed_progress"] == "progress"
    assert kinds["demolition_area_m2"] == "area"
    assert (
        kinds["demolition_total"]
        == kinds["charging_ports"]
        == kinds["demolition_completed_target"]
        == "count"
    )


# --------------------------------------------------------------------------- csv


def test_csv(report: StatsReport) -> None:
    data = get_renderer("csv").render(report, None)
    assert data.startswith(b"\xef\xbb\xbf")
    text = data.decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == list(report.levels["grid"].columns)
    assert rows[1][:3] == [f"{COMM}001", "网格001", "grid"]
    assert len(rows) == 5
    header = rows[0]
    assert rows[1][header.index("demolition_rate")] == "0.8"
    assert rows[3][header.index("demolition_rate")] == ""  # total 0: no rate
    assert rows[4][0] == "UNASSIGNED"
    back = pd.read_csv(io.BytesIO(data), encoding="utf-8-sig", dtype={"code": str, "parent_code": str})
    assert back["demolition_total"].tolist() == TOTAL
    assert back["demolition_area_m2"].tolist() == AREA
    assert back["code"].tolist() == GRID_CODES


def test_csv_other_level(report: StatsReport) -> None:
    text = get_renderer("csv").render(report, "community").decode("utf-8-sig")
    assert "赭山社区" in text and f"{COMM}001" not in text


def test_csv_no_scientific_notation() -> None:
    t = pd.DataFrame({"code": ["a"], "x_mean": [0.00005], "x_rate": [0.00005], "big_m2": [1.5e16]})
    rep = StatsReport(levels={"grid": t}, columns={}, as_of=AS_OF)
    line = get_renderer("csv").render(rep, None).decode("utf-8-sig").splitlines()[1]
    assert line == "a,0.00005,0,15000000000000000"  # a rate as the workbook shows it: 0.0%


# --------------------------------------------------------------------------- xlsx


def _xlsx(report: StatsReport, level: str | None = None) -> openpyxl.Workbook:
    return openpyxl.load_workbook(io.BytesIO(get_renderer("xlsx").render(report, level)))


def test_xlsx_sheets_title_and_headers(report: StatsReport) -> None:
    wb = _xlsx(report)
    assert wb.sheetnames == ["单元网格", "社区"]
    ws = wb["单元网格"]
    assert "统计截至 2022-06-30" in ws["A1"].value
    headers = [c.value for c in ws[2]]
    assert headers == [LABELS[c][0] for c in report.levels["grid"].columns]
    comment = ws.cell(row=2, column=6).comment
    assert comment is not None
    assert "Illegal construction: total" in comment.text and "demolition_total" in comment.text
    assert ws.freeze_panes == "C3"
    assert ws.auto_filter.ref == "A2:N6"
    assert [ws.cell(row=r, column=1).value for r in range(3, 7)] == GRID_CODES
    assert ws.cell(row=3, column=3).value == "单元网格"  # level shown in Chinese
    assert ws.column_dimensions["B"].width >= 8


def test_xlsx_formats(report: StatsReport) -> None:
    ws = _xlsx(report)["单元网格"]
    cols = list(report.levels["grid"].columns)

    def cell(row: int, col: str) -> openpyxl.cell.Cell:
        return ws.cell(row=row, column=cols.index(col) + 1)

    assert cell(3, "demolition_rate").number_format == "0.0%"
    assert cell(3, "demolition_rate").value == pytest.approx(0.8)
    assert cell(3, "demolition_completed_progress").number_format == "0.0%"
    assert cell(3, "demolition_area_m2").number_format == "#,##0.0"
    assert cell(3, "demolition_total").number_format == "#,##0"
    assert cell(3, "charging_ports").number_format == "#,##0"
    assert cell(5, "demolition_rate").value is None  # NaN -> empty cell
    assert cell(3, "code").data_type == "s"


def test_xlsx_totals_row(report: StatsReport) -> None:
    ws = _xlsx(report)["单元网格"]
    cols = list(report.levels["grid"].columns)
    row = [c.value for c in ws[7]]
    assert row[0] == "合计"
    assert ws.cell(row=7, column=1).font.b
    values = dict(zip(cols, row, strict=True))
    assert values["demolition_total"] == sum(TOTAL) == 20
    assert values["demolition_completed"] == sum(DONE) == 15
    assert values["demolition_rate"] == pytest.approx(0.75)
    assert values["demolition_area_m2"] == pytest.approx(sum(AREA))
    assert values["demolition_area_completed_m2"] == pytest.approx(sum(AREA_DONE))
    assert values["demolition_completed_progress"] == pytest.approx(12 / 15)
    assert ws.cell(row=7, column=cols.index("demolition_rate") + 1).number_format == "0.0%"
    assert ws.max_row == 7


def test_xlsx_active_sheet_and_text_not_formula(report: StatsReport) -> None:
    report.levels["grid"].loc[1, "name"] = '=HYPERLINK("http://x")'
    wb = _xlsx(report, "community")
    assert wb.active.title == "社区"
    assert [ws.sheet_view.tabSelected for ws in wb.worksheets] == [False, True]
    cell = wb["单元网格"]["B4"]
    assert cell.data_type == "s" and cell.value == '\'=HYPERLINK("http://x")'


def test_xlsx_unknown_level_sheet_name() -> None:
    t = pd.DataFrame({"code": ["a"], "x_total": [1]})
    wb = _xlsx(StatsReport(levels={"zone/1": t}, columns={}, as_of=AS_OF))
    assert wb.sheetnames == ["zone_1"]


@pytest.mark.slow
@pytest.mark.needs("libreoffice")
def test_xlsx_opens_in_libreoffice(report: StatsReport, tmp_path: Path) -> None:
    exe = libreoffice()
    assert exe is not None
    src = tmp_path / "stats.xlsx"
    src.write_bytes(get_renderer("xlsx").render(report, None))
    subprocess.run(
        [
            exe,
            "--headless",
            f"-env:UserInstallation=file://{tmp_path}/lo",
            "--convert-to",
            "csv:Text - txt - csv (StarCalc):44,34,76",
            "--outdir",
            str(tmp_path),
            str(src),
        ],
        check=True,
        capture_output=True,
        timeout=180,
    )
    text = (tmp_path / "stats.csv").read_text(encoding="utf-8")
    assert "违法建设总数" in text and "合计" in text


# --------------------------------------------------------------------------- json


def test_json(report: StatsReport) -> None:
    data = get_renderer("json").render(report, None)
    assert "网格001".encode() in data  # not \u-escaped
    doc = json.loads(data)
    assert doc["as_of"] == AS_OF and doc["level"] == "grid"
    assert doc["columns"]["demolition_total"] == {"zh": "违法建设总数", "en": "Illegal construction: total"}
    assert len(doc["rows"]) == 4
    assert doc["rows"][0]["demolition_total"] == 10
    assert doc["rows"][2]["demolition_rate"] is None
    assert doc["rows"][3]["parent_code"] is None
    assert doc["totals"]["demolition_rate"] == pytest.approx(0.75)
    assert b"NaN" not in data


# --------------------------------------------------------------------------- geojson


def test_geojson(report: StatsReport) -> None:
    doc = json.loads(get_renderer("geojson").render(report, "grid"))
    assert doc["type"] == "FeatureCollection"
    feats = doc["features"]
    assert len(feats) == 4
    assert [f["id"] for f in feats] == GRID_CODES
    assert feats[3]["geometry"] is None and feats[3]["properties"]["code"] == "UNASSIGNED"
    assert feats[0]["properties"]["demolition_total"] == 10
    assert feats[2]["properties"]["demolition_rate"] is None
    for f in feats[:3]:
        ring = np.array(f["geometry"]["coordinates"][0])
        assert ((ring[:, 0] > 118.39) & (ring[:, 0] < 118.41)).all()  # lon first
        assert ((ring[:, 1] > 31.29) & (ring[:, 1] < 31.31)).all()
        assert shapely.LinearRing(ring).is_ccw  # RFC 7946 exterior ring


def test_geojson_reprojects_and_needs_geometry(report: StatsReport) -> None:
    assert report.geometry is not None
    report.geometry["grid"] = report.geometry["grid"].to_crs(4548)
    feats = json.loads(get_renderer("geojson").render(report, "grid"))["features"]
    lon, lat = feats[0]["geometry"]["coordinates"][0][0]
    assert 118.39 < lon < 118.41 and 31.29 < lat < 31.31
    report.geometry = None
    with pytest.raises(InputError) as err:
        get_renderer("geojson").render(report, "grid")
    assert err.value.code == "no_geometry"


# --------------------------------------------------------------------------- gpkg


def test_gpkg(report: StatsReport, tmp_path: Path) -> None:
    path = tmp_path / "stats.gpkg"
    path.write_bytes(get_renderer("gpkg").render(report, None))
    layers = pyogrio.list_layers(path)
    assert [name for name, _ in layers] == ["stats_grid", "stats_community"]
    grid = pyogrio.read_dataframe(path, layer="stats_grid")
    assert grid.crs.to_epsg() == 4490
    assert grid["code"].tolist() == GRID_CODES
    assert grid["demolition_total"].tolist() == TOTAL
    assert grid["demolition_area_m2"].tolist() == AREA
    assert np.isnan(grid["demolition_rate"].iloc[2])
    assert grid.geometry.iloc[3] is None
    assert grid.geometry.iloc[0].equals(_cell(0))
    comm = pyogrio.read_dataframe(path, layer="stats_community")
    assert comm["name"].tolist() == ["赭山社区", "未落入网格"]


# --------------------------------------------------------------------------- shp


def _unzip(data: bytes, dest: Path) -> zipfile.ZipFile:
    zf = zipfile.ZipFile(io.BytesIO(data))
    zf.extractall(dest)
    return zf


def test_shp_zip_survives_chinese(report: StatsReport, tmp_path: Path) -> None:
    zf = _unzip(get_renderer("shp").render(report, None), tmp_path)
    names = zf.namelist()
    for lv in ("grid", "community"):
        for ext in ("shp", "shx", "dbf", "prj", "cpg"):
            assert f"stats_{lv}.{ext}" in names
    assert (tmp_path / "stats_grid.cpg").read_text().strip() == "GBK"

    # DBF header: 32-byte field descriptors from byte 32, name in the first 11 bytes.
    dbf = (tmp_path / "stats_grid.dbf").read_bytes()
    fields = []
    for off in range(32, dbf.index(b"\r", 32), 32):
        fields.append(dbf[off : off + 11].split(b"\0")[0])
    assert all(len(f) <= 10 and f.isascii() for f in fields)
    assert "赭山社区".encode("gbk") in dbf

    with (tmp_path / "fields.csv").open(encoding="utf-8-sig") as fh:
        table = list(csv.DictReader(fh))
    assert set(table[0]) == {"code", "column", "中文名", "English"}
    code_of = {r["column"]: r["code"] for r in table}
    assert {r["中文名"] for r in table} >= {"违法建设总数", "违法建设完成率"}
    assert len(set(code_of.values())) == len(code_of)

    back = pyogrio.read_dataframe(tmp_path / "stats_grid.shp")
    assert back.crs.to_epsg() == 4490
    assert back[code_of["name"]].tolist() == ["网格001", "网格002", "网格003", "未落入网格"]
    assert back[code_of["parent_name"]].tolist()[:3] == ["赭山社区"] * 3
    assert back[code_of["demolition_total"]].tolist() == TOTAL
    assert back[code_of["demolition_area_m2"]].tolist() == pytest.approx(AREA)
    assert back[code_of["demolition_rate"]].iloc[0] == pytest.approx(0.8)
    assert back.geometry.iloc[3] is None
    assert back.geometry.iloc[0].normalize().equals(_cell(0).normalize())


def test_shp_reads_back_without_cpg_when_told_gbk(report: StatsReport, tmp_path: Path) -> None:
    _unzip(get_renderer("shp").render(report, None), tmp_path)
    (tmp_path / "stats_community.cpg").unlink()
    back = pyogrio.read_dataframe(tmp_path / "stats_community.shp", encoding="GBK")
    assert "赭山社区" in back.to_numpy().ravel().tolist()


def test_shp_falls_back_to_gb18030_outside_gbk(report: StatsReport, tmp_path: Path) -> None:
    report.levels["grid"].loc[0, "name"] = "𠮷网格"  # U+20BB7 is not in GBK
    _unzip(get_renderer("shp").render(report, None), tmp_path)
    assert (tmp_path / "stats_grid.cpg").read_text().strip() == "GB18030"
    back = pyogrio.read_dataframe(tmp_path / "stats_grid.shp")
    assert "𠮷网格" in back.to_numpy().ravel().tolist()


def test_spatial_formats_need_geometry(report: StatsReport) -> None:
    report.geometry = None
    for fmt in ("gpkg", "shp"):
        with pytest.raises(InputError):
            get_renderer(fmt).render(report, None)


# --------------------------------------------------------------------------- formulas and file names

#: Names a spreadsheet would run as a formula (or strip to one) if written as they are.
FORMULAS = ['=HYPERLINK("http://x","y")', "+1", "-2+3", "@SUM(A1)", "\t=1", "\r=1", "=1+1"]


def _hostile(report: StatsReport) -> StatsReport:
    grid = report.levels["grid"]
    grid["name"] = [*FORMULAS[:3], FORMULAS[3]]
    grid["parent_name"] = [FORMULAS[4], FORMULAS[5], FORMULAS[6], None]
    grid["demolition_area_m2"] = [-1.5, 80.25, 0.0, 40.0]  # a negative number stays a number
    report.columns = {**LABELS, "name": ("=名称", "=Name")}
    return report


def test_spreadsheet_cell() -> None:
    for text in FORMULAS:
        assert spreadsheet_cell(text) == "'" + text
    for value in ("网格001", "a=b", "", 5, -2.5, None, math.nan):
        assert spreadsheet_cell(value) is value


def test_csv_neutralises_formulas(report: StatsReport) -> None:
    data = get_renderer("csv").render(_hostile(report), "grid").decode("utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(data)))
    assert [r["name"] for r in rows] == ["'" + f for f in FORMULAS[:4]]
    assert [r["parent_name"] for r in rows] == ["'" + f for f in FORMULAS[4:7]] + [""]
    assert rows[0]["demolition_area_m2"] == "-1.5"
    for row in rows:
        assert not any(
            v.startswith(("=", "+", "-", "@", "\t", "\r"))
            for k, v in row.items()
            if k != "demolition_area_m2"
        )


def test_xlsx_neutralises_formulas(report: StatsReport) -> None:
    ws = _xlsx(_hostile(report))["单元网格"]
    names = [ws.cell(row=r, column=2) for r in range(3, 7)]
    parents = [ws.cell(row=r, column=5) for r in range(3, 6)]
    for cell, text in zip(names + parents, FORMULAS, strict=True):
        # XML reads a CR back as LF; either way the cell is text with the mark in front
        assert cell.data_type == "s" and cell.value in ("'" + text, "'" + text.replace("\r", "\n"))
        assert not cell.value.startswith("=")
    assert ws["B2"].value == "'=名称"  # headers too
    area = ws.cell(row=3, column=[c.value for c in ws[2]].index("违法建设面积(m²)") + 1)
    assert area.data_type == "n" and area.value == -1.5
    for row in ws.iter_rows():
        assert all(c.data_type != "f" for c in row)


def test_shp_fields_csv_neutralises_formulas(report: StatsReport, tmp_path: Path) -> None:
    _unzip(get_renderer("shp").render(_hostile(report), None), tmp_path)
    with (tmp_path / "fields.csv").open(encoding="utf-8-sig") as fh:
        table = {r["column"]: r for r in csv.DictReader(fh)}
    assert table["name"]["中文名"] == "'=名称" and table["name"]["English"] == "'=Name"


def test_audit_csv_neutralises_formulas_and_bidi() -> None:
    from geo.output.audit import write_csv
    from geo.store.interface.audit import AuditEntry

    texts = [*FORMULAS, "报告\u202eslx.exe"]
    entries = [
        AuditEntry(i, "2026-01-01T00:00:00Z", text, "127.0.0.1", "import", None, None, {}, text)
        for i, text in enumerate(texts, 1)
    ]
    out = io.StringIO()
    write_csv(entries, out)
    rows = list(csv.reader(io.StringIO(out.getvalue().lstrip("\ufeff"))))[1:]
    for row in rows:
        for cell in (row[1], row[-1]):
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), cell
            assert "\u202e" not in cell and "\t" not in cell and "\r" not in cell
    assert rows[0][1] == '\'=HYPERLINK("http://x","y")' and rows[2][-1] == "'-2+3"
    assert rows[-1][-1] == "报告\ufffdslx.exe"


def test_filename_takes_only_the_iso_date_and_level(report: StatsReport) -> None:
    report.as_of = '2022年5月25日"; x=../../'
    assert get_renderer("csv").filename(report, "grid") == "gridwatch_grid_2022525x.csv"


@pytest.mark.parametrize(
    ("name", "header"),
    [
        ("gridwatch_grid_2022-06-30.csv", 'attachment; filename="gridwatch_grid_2022-06-30.csv"'),
        (
            "统计_2022-06-30.csv",
            "attachment; filename=\"___2022-06-30.csv\"; filename*=UTF-8''%E7%BB%9F%E8%AE%A1_2022-06-30.csv",
        ),
        (
            'a"b\r\nSet-Cookie: x=1/..\\c.csv',
            "attachment; filename=\"a_bSet-Cookie: x=1..c.csv\"; filename*=UTF-8''a%22bSet-Cookie%3A%20x%3D1..c.csv",
        ),
    ],
)
def test_content_disposition(name: str, header: str) -> None:
    value = content_disposition(name)
    assert value == header
    value.encode("latin-1")  # what HTTP headers must be
    assert "\r" not in value and "\n" not in value


# --------------------------------------------------------------------------- provenance

PROVENANCE = {
    "as_of": AS_OF,
    "known_at": None,
    "computed_at": {
        "tx": 17,
        "at": "2024-07-01T02:00:00.123456Z",
        "at_local": "2024-07-01T10:00:00.123456+08:00",
    },
    "grid": {"chosen": "in_force", "versions": [{"id": 3, "valid_from": "2022-01-01", "imported_at": "x"}]},
    "layers": [{"layer": "demolition", "tx": 16, "batch": 12, "features": 20}],
    "timezone": "Asia/Shanghai",
}


@pytest.fixture
def traced(report: StatsReport) -> StatsReport:
    report.provenance = json.loads(json.dumps(PROVENANCE))
    return report


def test_xlsx_about_sheet_and_footer(traced: StatsReport) -> None:
    wb = _xlsx(traced)
    assert wb.sheetnames == ["单元网格", "社区", "说明 About"]
    assert wb.active.title == "单元网格"  # the figures open first, the about sheet last
    about = {row[1].value: row[2].value for row in wb["说明 About"].iter_rows(min_row=3) if row[1].value}
    assert about["As of"] == AS_OF
    assert about["Computed at write"] == "tx 17 2024-07-01T10:00:00.123456+08:00"  # the configured zone
    assert about["Known at"].startswith("导出时 / now (2024-07-01T10:00:00.123456+08:00")
    assert about["Grid version"].startswith("3 (valid from 2022-01-01)")
    assert about["Layer demolition"] == "tx 16 batch 12 features 20"
    labels_zh = [row[0].value for row in wb["说明 About"].iter_rows(min_row=3)]
    assert labels_zh[:4] == ["统计截至", "数据时点", "所依据的写入", "网格版本"]
    footer = wb["单元网格"].oddFooter.left.text
    assert "tx 17" in footer and "2022-06-30" in footer
    for ws in wb.worksheets:
        for row in ws.iter_rows():
            for cell in row:
                assert cell.data_type != "f"


def test_json_and_geojson_carry_metadata(traced: StatsReport, report: StatsReport) -> None:
    doc = json.loads(get_renderer("json").render(traced, "grid"))
    assert doc["metadata"] == PROVENANCE
    fc = json.loads(get_renderer("geojson").render(traced, "grid"))
    assert fc["metadata"] == PROVENANCE and fc["type"] == "FeatureCollection" and len(fc["features"]) == 4
    traced.provenance = None
    assert "metadata" not in json.loads(get_renderer("json").render(report, "grid"))


def test_csv_header_lines_only_when_asked(traced: StatsReport) -> None:
    plain = get_renderer("csv").render(traced, "grid")
    untraced = StatsReport(levels=traced.levels, columns=traced.columns, as_of=AS_OF)
    assert plain == get_renderer("csv").render(untraced, "grid")  # off: the very same plain table
    traced.csv_header = True
    data = get_renderer("csv").render(traced, "grid")
    assert data.startswith(b"\xef\xbb\xbf# ")
    text = data.decode("utf-8-sig")
    comments = [line for line in text.splitlines() if line.startswith("#")]
    assert text.splitlines()[: len(comments)] == comments  # all before the table
    assert any("tx 17 2024-07-01T10:00:00.123456+08:00" in line for line in comments)
    assert all("," not in line and '"' not in line for line in comments)  # one cell each in Excel
    assert text.endswith(plain.decode("utf-8-sig"))
    back = pd.read_csv(io.BytesIO(data), encoding="utf-8-sig", comment="#", dtype={"code": str})
    assert back["code"].tolist() == GRID_CODES and back["demolition_total"].tolist() == TOTAL


def test_gpkg_and_shapefile_carry_provenance(traced: StatsReport, tmp_path: Path) -> None:
    path = tmp_path / "s.gpkg"
    path.write_bytes(get_renderer("gpkg").render(traced, None))
    meta = pyogrio.read_info(path, layer="stats_grid")["layer_metadata"]
    assert json.loads(meta["provenance"]) == PROVENANCE
    with zipfile.ZipFile(io.BytesIO(get_renderer("shp").render(traced, None))) as zf:
        assert json.loads(zf.read("about.json")) == PROVENANCE
