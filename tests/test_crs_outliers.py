"""Files whose rows are mostly in one CRS and a few are not: the CRS is decided from the bulk,
the stray rows (X/Y swapped, zero, another zone, lon/lat among metres, huge values) are
rejected by row with the reason and their coordinates, and a file mostly astray is refused
with a message saying what its rows look like.  Every file is written by the test."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pyproj
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from geo.cli import main
from geo.errors import CRSError
from geo.imports.importer import import_file, prepare_import
from geo.store.backends import open_store
from tests.helpers.builders import EPSG_GK, X0, Y0, grid_frame, points_frame, write_shp

GK_TO_ZONE39 = pyproj.Transformer.from_crs(EPSG_GK, 4527, always_xy=True)
GK_TO_LONLAT = pyproj.Transformer.from_crs(EPSG_GK, 4490, always_xy=True)
LONLAT_TO_ZONE38 = pyproj.Transformer.from_crs(4490, 4526, always_xy=True)


def bulk_xy(n: int = 50) -> list[tuple[float, float]]:
    """``n`` points over the unit grid, EPSG:4548 (3-degree GK CM 117E, no zone prefix)."""
    return [(X0 + 5.0 + 5.0 * i, Y0 - 50.0 - (i % 5) * 40.0) for i in range(n)]


def survey(xy: list[tuple[float, float]], crs: int = EPSG_GK) -> gpd.GeoDataFrame:
    n = len(xy)
    frame = points_frame(
        xy,
        案件编号=[f"WJ-{i:03d}" for i in range(n)],
        违建地址=[f"弋江街道测试路{i}号" for i in range(n)],
        当前状态=["已登记"] * n,
        发现时间=["2022-01-05"] * n,
    )
    return frame.set_crs(crs, allow_override=True)


def coords(x: float, y: float) -> str:
    return f"{x:.12g}, {y:.12g}"


def only_rejected(report) -> dict[int, tuple[str, str, str | None]]:
    return {r.row: (r.reason_zh, r.reason_en, r.value) for r in report.rejected}


@pytest.mark.slow
def test_swapped_row_in_a_shapefile_without_prj_is_rejected_by_row(gridded_store, tmp_path):
    """The issue's file: 50 rows, GBK DBF without .cpg or .prj, EPSG:4548, row 18 swapped."""
    xy = bulk_xy()
    x, y = xy[17]
    xy[17] = (y, x)
    shp = write_shp(survey(xy), tmp_path / "s" / "违建台账.shp", prj=False)
    assert not shp.with_suffix(".prj").exists() and not shp.with_suffix(".cpg").exists()
    report = import_file(gridded_store, "demolition", shp)
    assert report.status == "committed" and report.encoding == "gb18030"
    assert report.crs_source == "inferred" and "EPSG:4548" in (report.crs or "")
    assert report.rows_read == 50 and report.added == 49 and report.rejected_total == 1
    zh, en, value = only_rejected(report)[18]
    assert "疑似 X/Y 颠倒" in zh and "X and Y look swapped" in en
    assert value == coords(y, x) and coords(y, x) in zh
    assert any("50 行中的 49 行" in w_zh and "49 of 50" in w_en for w_zh, w_en in report.warnings)
    assert report.rejected_by_reason == [
        {
            "reason_zh": "坐标疑似 X/Y 颠倒",
            "reason_en": "coordinates: X and Y look swapped",
            "field": None,
            "count": 1,
        }
    ]
    assert f"坐标「{coords(y, x)}」疑似 X/Y 颠倒" in report.summary()
    assert f"coordinates '{coords(y, x)}': X and Y look swapped" in report.summary("en")
    assert report.rejected[0].survey_id == "WJ-017"
    ids = set(gridded_store.read_attributes(__import__("layers").get("demolition"))["case_id"])
    assert len(ids) == 49 and "WJ-017" not in ids


@pytest.mark.slow
@pytest.mark.parametrize("stray", [(0.0, 0.0), (0.0, Y0 - 50.0), (X0 + 50.0, 0.0)])
def test_zero_row_is_rejected_by_row(gridded_store, tmp_path, stray):
    xy = bulk_xy()
    xy[30] = stray
    report = import_file(
        gridded_store, "demolition", write_shp(survey(xy), tmp_path / "s" / "s.shp", prj=False)
    )
    assert "EPSG:4548" in (report.crs or "") and report.added == 49
    zh, en, value = only_rejected(report)[31]
    assert "坐标为 0" in zh.replace(f"「{value}」", "") and "are zero" in en and value == coords(*stray)


def test_row_of_zone_38_in_a_zone_39_file(store, tmp_path):
    xy = [GK_TO_ZONE39.transform(x, y) for x, y in bulk_xy()]
    x38, y38 = LONLAT_TO_ZONE38.transform(115.6, 31.3)
    xy[4] = (x38, y38)
    report = import_file(
        store, "demolition", write_shp(survey(xy, 4527), tmp_path / "s" / "s.shp", prj=False)
    )
    assert report.crs_source == "inferred" and "EPSG:4527" in (report.crs or "")
    assert report.added == 49 and set(only_rejected(report)) == {5}
    zh, en, value = only_rejected(report)[5]
    assert "属于另一投影带（第 38 带）" in zh and "belong to another zone (38)" in en
    assert value == coords(x38, y38)
    assert store.srs_epsg() == EPSG_GK  # the new store's CRS follows the bulk, not the stray row


@pytest.mark.slow
def test_lonlat_csv_with_one_swapped_row(gridded_store, tmp_path):
    lonlat = [GK_TO_LONLAT.transform(x, y) for x, y in bulk_xy()]
    path = tmp_path / "台账.csv"
    with open(path, "w", encoding="gbk", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["案件编号", "经度", "纬度", "当前状态"])
        for i, (lon, lat) in enumerate(lonlat):
            a, b = (lat, lon) if i == 9 else (lon, lat)
            w.writerow([f"C-{i}", f"{a:.8f}", f"{b:.8f}", "已登记"])
    report = import_file(gridded_store, "demolition", path)
    assert report.crs_source == "inferred" and "EPSG:4490" in (report.crs or "")
    assert report.added == 49 and set(only_rejected(report)) == {10}
    zh, en, value = only_rejected(report)[10]
    lon, lat = lonlat[9]
    assert "X/Y 颠倒" in zh and "swapped" in en and value == coords(float(f"{lat:.8f}"), float(f"{lon:.8f}"))


@pytest.mark.slow
def test_xlsx_xy_columns_with_a_swapped_and_a_lonlat_row(gridded_store, tmp_path):
    xy = bulk_xy(40)
    lon, lat = GK_TO_LONLAT.transform(*xy[2])
    path = tmp_path / "台账.xlsx"
    pd.DataFrame(
        {
            "案件编号": [f"X-{i}" for i in range(40)],
            "X": [y if i == 0 else (lon if i == 2 else x) for i, (x, y) in enumerate(xy)],
            "Y": [x if i == 0 else (lat if i == 2 else y) for i, (x, y) in enumerate(xy)],
            "当前状态": ["已登记"] * 40,
        }
    ).to_excel(path, index=False)
    report = import_file(gridded_store, "demolition", path)
    assert "EPSG:4548" in (report.crs or "") and report.added == 38
    rejected = only_rejected(report)
    assert set(rejected) == {1, 3}
    assert "X/Y 颠倒" in rejected[1][0] and "像是经纬度" in rejected[3][0] and "lon/lat" in rejected[3][1]


def test_polygon_grid_with_a_swapped_cell_without_prj(store, tmp_path):
    grid = grid_frame().to_crs(4527)
    grid.loc[4, "geometry"] = shapely.transform(grid.loc[4, "geometry"], lambda xy: xy[:, ::-1])
    report = import_file(store, "grid", write_shp(grid, tmp_path / "g" / "网格.shp", prj=False))
    assert "EPSG:4527" in (report.crs or "") and report.added == 8
    zh, _en, value = only_rejected(report)[5]
    assert "X/Y 颠倒" in zh and value is not None and " … " in value  # a polygon: its bounds
    assert store.srs_epsg() == EPSG_GK


@pytest.mark.slow
def test_declared_crs_rejects_swapped_and_zero_rows_with_their_reason(gridded_store, tmp_path):
    """With a .prj the CRS is not in question, but a swapped row is named as swapped, not as
    untransformable or far away; a row far from the grid keeps its own reason."""
    xy = bulk_xy()
    xy[1] = (xy[1][1], xy[1][0])
    xy[2] = (0.0, 0.0)
    xy[3] = (X0 + 90_000.0, Y0)
    report = import_file(gridded_store, "demolition", write_shp(survey(xy), tmp_path / "s" / "s.shp"))
    assert report.crs_source == "prj" and report.added == 47
    rejected = only_rejected(report)
    assert "X/Y 颠倒" in rejected[2][0] and "为 0" in rejected[3][0] and "公里" in rejected[4][0]
    assert not any("inferred" in en for _zh, en in report.warnings)


@pytest.mark.slow
def test_declared_crs_most_rows_do_not_fit_is_refused(gridded_store, tmp_path):
    shp = write_shp(survey(bulk_xy(10)), tmp_path / "s" / "s.shp", prj=False)
    with pytest.raises(CRSError) as exc:
        import_file(gridded_store, "demolition", shp, crs="EPSG:4490")
    assert exc.value.code == "crs_mismatch"
    assert (
        "10 行中只有 0 行符合" in exc.value.zh
        and "10 look like 3-degree Gauss-Kruger without zone prefix" in (exc.value.en)
    )
    assert gridded_store.batches("demolition") == []


def geojson(path: Path, xy: list[tuple[float, float]]) -> Path:
    """A GeoJSON without a ``crs`` member, as many tools write it whatever the coordinates."""
    features = [
        {
            "type": "Feature",
            "properties": {"案件编号": f"G-{i}", "当前状态": "已登记"},
            "geometry": {"type": "Point", "coordinates": [x, y]},
        }
        for i, (x, y) in enumerate(xy)
    ]
    path.write_text(
        json.dumps({"type": "FeatureCollection", "features": features}, ensure_ascii=False), "utf-8"
    )
    return path


@pytest.mark.slow
def test_geojson_without_crs_in_lonlat_with_a_swapped_row(gridded_store, tmp_path):
    lonlat = [GK_TO_LONLAT.transform(x, y) for x, y in bulk_xy(20)]
    lonlat[6] = (lonlat[6][1], lonlat[6][0])
    report = import_file(gridded_store, "demolition", geojson(tmp_path / "s.geojson", lonlat))
    assert report.crs_source == "file" and "4326" in (report.crs or "")
    assert report.added == 19 and "X/Y 颠倒" in only_rejected(report)[7][0]


@pytest.mark.slow
def test_geojson_without_crs_in_gauss_kruger_is_inferred(gridded_store, tmp_path):
    xy = [GK_TO_ZONE39.transform(x, y) for x, y in bulk_xy(20)]
    xy[0] = (xy[0][1], xy[0][0])
    report = import_file(gridded_store, "demolition", geojson(tmp_path / "s.geojson", xy))
    assert report.crs_source == "inferred" and "EPSG:4527" in (report.crs or "")
    assert report.added == 19 and "X/Y 颠倒" in only_rejected(report)[1][0]
    assert any("GeoJSON" in zh and "no crs" in en for zh, en in report.warnings)


@pytest.mark.slow
def test_file_mostly_swapped_is_refused_through_the_command_line(tmp_path):
    data = str(tmp_path / "store")
    assert (
        main(["--data", data, "import", "grid", str(write_shp(grid_frame(), tmp_path / "g" / "网格.shp"))])
        == 0
    )
    xy = bulk_xy()
    xy[:30] = [(y, x) for x, y in xy[:30]]  # 60% swapped
    shp = write_shp(survey(xy), tmp_path / "s" / "违建.shp", prj=False)
    exe = Path(sys.executable).with_name("gridwatch")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "geo.cli"]
    proc = subprocess.run(
        [*cmd, "--data", data, "import", "demolition", str(shp)],
        capture_output=True,
        timeout=120,
        check=False,
    )
    err = proc.stderr.decode()
    assert proc.returncode == 2, err
    assert "Traceback" not in err and err.strip().count("\n") == 0
    assert (
        "30 行疑似 X/Y 颠倒（交换后像是不带带号的 3 度带坐标）" in err
        and "20 行像是不带带号的 3 度带坐标" in err
    )
    assert "no CRS fits at least 80% of the rows" in err and "--crs" in err and ".prj" in err
    with open_store(data) as store:
        assert store.batches("demolition") == []


KINDS = ("swapped", "zero", "zone38", "zone40", "lonlat", "huge")


@pytest.mark.slow
@settings(
    deadline=None,
    max_examples=8,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(st.integers(20, 60), st.data())
def test_import_rejects_exactly_the_stray_rows_property(gridded_store, n, data):
    """Random bulk points of zone 39 over the grid with k < 10% stray rows of random kinds:
    imported as EPSG:4527, exactly the stray rows rejected, each with its reason."""
    offsets = data.draw(
        st.lists(st.tuples(st.floats(5.0, 295.0), st.floats(5.0, 295.0)), min_size=n, max_size=n)
    )
    xy = [GK_TO_ZONE39.transform(X0 + dx, Y0 - dy) for dx, dy in offsets]
    k = data.draw(st.integers(0, -(-n // 10) - 1), label="k")
    rows = data.draw(st.lists(st.integers(0, n - 1), min_size=k, max_size=k, unique=True), label="rows")
    expected: dict[int, str] = {}
    for i in rows:
        kind = data.draw(st.sampled_from(KINDS))
        x, y = xy[i]
        if kind == "swapped":
            xy[i], expected[i + 1] = (y, x), "X/Y 颠倒"
        elif kind == "zero":
            xy[i], expected[i + 1] = (x, 0.0), "为 0"
        elif kind in ("zone38", "zone40"):
            zone = int(kind[-2:])
            lon, lat = GK_TO_LONLAT.transform(X0, Y0)
            t = pyproj.Transformer.from_crs(4490, 4513 + zone - 25, always_xy=True)
            xy[i], expected[i + 1] = t.transform(lon + 3 * (zone - 39), lat), f"（第 {zone} 带）"
        elif kind == "lonlat":
            xy[i], expected[i + 1] = GK_TO_LONLAT.transform(X0, Y0), "像是经纬度"
        else:
            size = 10.0 ** data.draw(st.floats(9.0, 15.0))
            xy[i], expected[i + 1] = (size, size), "超出该坐标系范围"
    with tempfile.TemporaryDirectory() as tmp:
        shp = write_shp(survey([(float(x), float(y)) for x, y in xy], 4527), Path(tmp) / "s.shp", prj=False)
        report = prepare_import(gridded_store, "demolition", shp).report
    assert "EPSG:4527" in (report.crs or "")
    rejected = only_rejected(report)
    assert set(rejected) == set(expected)
    for row, words in expected.items():
        assert words in rejected[row][0]
    assert (report.rows_read, report.rejected_total) == (n, k)
