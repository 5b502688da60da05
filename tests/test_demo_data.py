"""Tests for data/make_demo.py: the demo district's shapefiles look like surveyors' files and are consistent."""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib.util
import re
import sys
import zipfile
from pathlib import Path
from types import ModuleType

import numpy as np
import openpyxl
import pandas as pd
import pyogrio
import pytest
import shapely
from pyproj import CRS

from layers import charging, demolition, parking

SCRIPT = Path(__file__).resolve().parents[1] / "data" / "make_demo.py"
SHAPEFILES = ("单元网格", "违法建设", "违法建设_面", "停放点", "充电棚")
DATE_FORMS = (r"\d{4}-\d{2}-\d{2}", r"\d{4}/\d{1,2}/\d{1,2}", r"\d{4}年\d{1,2}月\d{1,2}日", r"\d{8}")


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_demo", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["make_demo"] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, int]]:
    script = load_script()
    first = tmp_path_factory.mktemp("demo_a")
    second = tmp_path_factory.mktemp("demo_b")
    counts = script.make_demo(first)
    assert script.main(["--out", str(second)]) == 0
    return first, second, counts


@pytest.fixture(scope="module")
def out(demo: tuple[Path, Path, dict[str, int]]) -> Path:
    return demo[0]


def read(out: Path, name: str) -> pd.DataFrame:
    return pyogrio.read_dataframe(out / f"{name}.shp", encoding="GBK")


@pytest.fixture(scope="module")
def grid(out: Path) -> pd.DataFrame:
    return read(out, "单元网格")


@pytest.fixture(scope="module")
def sites(out: Path) -> pd.DataFrame:
    return pd.concat([read(out, "违法建设"), read(out, "违法建设_面")], ignore_index=True)


def parse_date(text: str) -> dt.date:
    digits = [int(p) for p in re.findall(r"\d+", text)]
    if len(digits) == 1:
        return dt.datetime.strptime(text, "%Y%m%d").date()
    return dt.date(*digits)


# --------------------------------------------------------------------------- counts and determinism


@pytest.mark.slow
def test_counts_are_in_the_stated_ranges(demo, grid, sites, out):
    counts = demo[2]
    assert 300 <= len(grid) == counts["grid"] <= 400
    assert grid["社区编码"].nunique() == 20 and grid["街道编码"].nunique() == 4
    assert 1800 <= len(sites) == counts["sites"] <= 2200
    assert 0.6 <= counts["site_points"] / counts["sites"] <= 0.8
    assert 250 <= len(read(out, "停放点")) <= 350
    assert 30 <= len(read(out, "充电棚")) <= 50


@pytest.mark.slow
def test_two_runs_write_byte_identical_files(demo):
    first, second, _ = demo

    def digests(folder: Path) -> dict[str, str]:
        return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}

    assert digests(first) == digests(second)
    assert (
        len(digests(first)) == 5 * 4 + 6
    )  # shp/shx/dbf/prj per layer, zip, csv, xlsx, README, value map, load order


# --------------------------------------------------------------------------- surveyor-style files


@pytest.mark.parametrize("name", SHAPEFILES)
def test_shapefiles_are_gbk_without_cpg_and_with_esri_prj(out, name):
    assert not (out / f"{name}.cpg").exists()
    header = (out / f"{name}.dbf").read_bytes()[:32]
    assert header[29] == 0
    assert tuple(header[1:4]) == (122, 12, 31)
    prj = (out / f"{name}.prj").read_text(encoding="ascii")
    assert prj.startswith('PROJCS["CGCS2000_3_Degree_GK_CM_117E"')
    assert CRS.from_wkt(prj).to_epsg() == 4548


@pytest.mark.parametrize("name", SHAPEFILES)
def test_field_names_fit_the_dbf_header_in_gbk(out, name):
    raw = (out / f"{name}.dbf").read_bytes()
    header_len = int.from_bytes(raw[8:10], "little")
    names = []
    for offset in range(32, header_len - 1, 32):
        names.append(raw[offset : offset + 11].split(b"\x00")[0].decode("gbk"))
    assert all(len(n.encode("gbk")) <= 10 for n in names)
    assert names == list(read(out, name).columns[:-1])
    assert all(re.search(r"[\u4e00-\u9fff]", n) for n in names)


def test_without_the_encoding_gdal_misreads_the_names(out):
    columns = pyogrio.read_dataframe(out / "单元网格.shp", max_features=1).columns
    assert "网格编码" not in columns


def test_zip_holds_the_register_in_a_gbk_named_subfolder(out):
    with zipfile.ZipFile(out / "违法建设_2022.zip") as zf:
        infos = zf.infolist()
        assert all(not i.flag_bits & 0x800 for i in infos)
        names = [i.orig_filename.encode("cp437").decode("gbk") for i in infos]
        assert names[0] == "2022年违建台账/"
        files = {
            n.removeprefix("2022年违建台账/"): i
            for n, i in zip(names, infos, strict=True)
            if not n.endswith("/")
        }
        assert set(files) == {
            f"{layer}{ext}"
            for layer in ("违法建设", "违法建设_面")
            for ext in (".shp", ".shx", ".dbf", ".prj")
        }
        for member, info in files.items():
            assert zf.read(info) == (out / member).read_bytes()


def test_readme_is_chinese_first_then_english(out):
    text = (out / "README.md").read_text(encoding="utf-8")
    assert text.startswith("# 演示数据")
    assert text.index("# Demo data") > text.index("EPSG:4548")


# --------------------------------------------------------------------------- the grid


def test_grid_codes_follow_the_hierarchy(grid):
    code = grid["网格编码"]
    assert code.is_unique and code.str.fullmatch(r"\d{15}").all()
    assert (code.str[:6] == "340291").all() and (grid["区编码"] == "340291").all()
    assert (code.str[:9] == grid["街道编码"]).all()
    assert (code.str[:12] == grid["社区编码"]).all()
    assert (grid["所属区"] == "青弋区").all()
    assert grid.groupby("社区编码")["所属社区"].nunique().eq(1).all()
    assert grid.groupby("所属社区")["社区编码"].nunique().eq(1).all()
    assert grid.groupby("街道编码")["所属街道"].nunique().eq(1).all()
    assert grid.groupby("所属街道")["街道编码"].nunique().eq(1).all()
    assert set(grid["所属街道"]) == {"弋江街道", "赭麓街道", "湖滨街道", "新芜街道"}
    assert (grid["社区编码"].str[9:] != "000").all()
    assert [n.startswith(c) for n, c in zip(grid["网格名称"], grid["所属社区"], strict=True)] == [True] * len(
        grid
    )
    for _, group in grid.groupby("社区编码"):
        assert sorted(group["网格编码"].str[12:].astype(int)) == list(range(1, len(group) + 1))
    assert grid["网格员"].notna().all()


def test_grid_sequence_runs_north_to_south(grid):
    for _, group in grid.groupby("社区编码"):
        seq = group["网格编码"].str[12:].astype(int).to_numpy()
        y = group.geometry.centroid.y.to_numpy()
        assert np.corrcoef(seq, -y)[0, 1] > 0.7
        assert y[seq == 1][0] >= np.median(y)


def test_grid_tiles_the_district_without_gaps_or_overlaps(grid):
    geoms = grid.geometry.to_numpy()
    assert set(grid.geom_type) == {"Polygon"} and shapely.is_valid(geoms).all()
    assert shapely.coverage_is_valid(geoms)
    union = shapely.coverage_union_all(geoms)
    assert union.geom_type == "Polygon" and len(union.interiors) == 0
    assert union.area == pytest.approx(12_000_000, rel=1e-3)
    assert grid.area.sum() == pytest.approx(union.area, rel=1e-9)
    assert np.allclose(grid["面积"], grid.area, atol=0.006)


# --------------------------------------------------------------------------- survey layers


MESSY = {"暂缓拆除": "已下发通知", "待拆除": "已下发通知", "拆除未完成": "拆除中", "己拆除": "已拆除"}


def test_sites_attributes_use_the_layer_vocabularies(sites):
    assert sites["案件编号"].is_unique and sites["案件编号"].str.fullmatch(r"WJ2022-\d{5}").all()
    # a few statuses as field teams write them; the rest are the vocabulary's codes
    codes = {s.code for s in demolition.LAYER.statuses}
    assert set(sites["当前状态"]) == codes | set(MESSY)
    assert 10 <= sites["当前状态"].isin(list(MESSY)).sum() <= 20
    assert set(sites["结构类型"]) <= {"砖混", "钢结构", "彩钢板", "木结构"}
    assert set(sites["违建位置"]) == {"地面", "平台", "楼顶"}
    assert set(sites["违建类型"]) == {"存量", "新增"}
    assert sites["违建地址"].str.contains("街道").all()
    assert sites["违建层数"].between(1, 3).all()


def test_site_dates_are_mixed_text_and_consistent(sites):
    found = sites["发现时间"]
    for form in DATE_FORMS:
        assert found.str.fullmatch(form).sum() > 50
    demolished = sites["当前状态"].isin(["已拆除", "己拆除"])  # the typo too: those sites are gone
    assert sites.loc[demolished, "拆除时间"].notna().all()
    assert sites.loc[~demolished, "拆除时间"].isna().all()
    for f, d in zip(found[demolished], sites.loc[demolished, "拆除时间"], strict=True):
        assert dt.date(2022, 1, 1) <= parse_date(f) < parse_date(d) <= dt.date(2022, 12, 31)


def test_site_progress_differs_by_community_and_position(sites, grid):
    done = sites["当前状态"].isin(demolition.LAYER.completed_statuses)
    assert 0.5 <= (sites["当前状态"] == "已拆除").mean() <= 0.7
    by_position = done.groupby(sites["违建位置"]).mean()
    assert by_position["地面"] > by_position["平台"] > by_position["楼顶"]
    where = shapely.STRtree(grid.geometry.to_numpy())
    site_idx, grid_idx = where.query(
        shapely.point_on_surface(sites.geometry.to_numpy()), predicate="intersects"
    )
    first = pd.Series(grid_idx).groupby(site_idx).first()
    community = grid["社区编码"].to_numpy()[first.to_numpy()]
    rate = done.iloc[first.index].groupby(community).mean()
    assert rate.max() >= 0.95 and rate.min() <= 0.6


def test_site_areas_and_geometry(sites):
    polygons = sites.geom_type == "Polygon"
    assert set(sites.geom_type) == {"Point", "Polygon"}
    area = sites.loc[polygons].area
    assert area.between(9.9, 300.1).all()
    recorded = sites.loc[polygons, "违建面积"]
    assert 3 <= recorded.isna().sum() <= 30
    assert sites.loc[~polygons, "违建面积"].notna().all()
    ratio = (recorded / area).dropna()
    assert ratio.between(0.95, 1.05).all()


def test_the_value_map_reads_every_messy_status_and_nothing_else(out, sites):
    from geo.reading.mappings import read_value_map

    entries = read_value_map(out / "值对应.csv")
    assert {raw: code for _, raw, code in entries} == MESSY
    assert {f for f, _, _ in entries} == {"当前状态"}
    assert (out / "值对应.csv").read_bytes().startswith("\ufeff字段,原值,映射为\r\n".encode())
    assert set(sites["当前状态"]) - {s.code for s in demolition.LAYER.statuses} == set(MESSY)


def test_one_point_has_x_and_y_swapped(sites, grid):
    xy = shapely.get_coordinates(shapely.point_on_surface(sites.geometry.to_numpy()))
    points = (sites.geom_type == "Point").to_numpy()
    swapped = pd.Series(points & (xy[:, 0] > 3_000_000) & (xy[:, 1] < 1_000_000), index=sites.index)
    assert swapped.sum() == 1
    # swapped back it lies in the district
    row = sites[swapped].iloc[0]
    district = shapely.coverage_union_all(grid.geometry.to_numpy())
    assert district.contains(shapely.Point(row.geometry.y, row.geometry.x))


def test_some_sites_are_outside_and_some_on_shared_grid_edges(sites, grid):
    district = shapely.coverage_union_all(grid.geometry.to_numpy())
    outside = ~shapely.intersects(sites.geometry.to_numpy(), district)
    assert 3 <= outside.sum() <= 10
    points = sites[sites.geom_type == "Point"].geometry.to_numpy()
    site_idx, _ = shapely.STRtree(grid.geometry.to_numpy()).query(points, predicate="intersects")
    hits = np.bincount(site_idx, minlength=len(points))
    assert (hits >= 2).sum() >= 4
    assert (hits >= 3).sum() >= 2


def test_parking_points(out):
    frame = read(out, "停放点")
    assert set(frame.geom_type) == {"Point"}
    assert list(frame.columns[:-1]) == ["编号", "名称", "地址", "泊位数", "状态", "登记日期", "完成日期"]
    assert frame["编号"].is_unique
    assert set(frame["状态"]) == {s.code for s in parking.LAYER.statuses}
    assert frame["泊位数"].between(10, 60).all()
    completed = frame["状态"].isin(parking.LAYER.completed_statuses)
    assert frame.loc[completed, "完成日期"].notna().all() and frame.loc[~completed, "完成日期"].isna().all()


def test_charging_sheds(out):
    frame = read(out, "充电棚")
    assert set(frame.geom_type) == {"Polygon"}
    assert list(frame.columns[:-1]) == [
        "编号",
        "名称",
        "地址",
        "端口数",
        "棚面积",
        "状态",
        "登记日期",
        "建成日期",
    ]
    assert set(frame["状态"]) <= {s.code for s in charging.LAYER.statuses}
    assert np.allclose(frame["棚面积"], frame.area, atol=0.06)
    assert frame["端口数"].between(10, 40).all()
    assert pd.api.types.is_datetime64_any_dtype(frame["建成日期"])
    built = frame["状态"] == "已建成"
    assert (frame.loc[built, "建成日期"] > frame.loc[built, "登记日期"]).all()
    assert frame.loc[~built, "建成日期"].isna().all()


# --------------------------------------------------------------------------- targets


def test_targets_csv_and_xlsx(out, grid):
    raw = (out / "targets.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    csv = pd.read_csv(out / "targets.csv", encoding="utf-8-sig", dtype={"编码": str})
    assert list(csv.columns) == ["编码", "图层", "指标", "目标"]
    assert set(csv["图层"]) == {"demolition", "parking", "charging"}
    assert set(csv["指标"]) == {"completed", "area_completed_m2", "capacity_completed", "ports_completed"}
    assert csv["编码"].str.len().isin([6, 9, 12]).all()
    assert (csv["目标"] > 0).all()
    communities = set(grid["社区编码"])
    streets = set(grid["街道编码"])
    per_community = csv[csv["编码"].str.len() == 12]
    assert set(per_community["编码"]) == communities
    assert per_community.groupby("指标").size().to_dict() == {"area_completed_m2": 20, "completed": 20}
    per_street = csv[csv["编码"].str.len() == 9]
    assert set(per_street["编码"]) == streets
    assert sorted(zip(per_street["图层"], per_street["指标"], strict=True)) == sorted(
        [("parking", "completed")] * 4 + [("charging", "ports_completed")] * 4
    )
    assert (csv.loc[csv["编码"].str.len() == 6, "编码"] == "340291").all()

    book = openpyxl.load_workbook(out / "targets.xlsx", read_only=True)
    rows = list(book.active.iter_rows(values_only=True))
    book.close()
    assert list(rows[0]) == list(csv.columns)
    assert [tuple(r) for r in rows[1:]] == list(csv.itertuples(index=False, name=None))
