"""The fast shapefile readers agree with GDAL, including blanks, dates, logicals and deleted records."""

from __future__ import annotations

import datetime as dt

import geopandas as gpd
import numpy as np
import pyogrio
import shapely

from geo.dbf import read_dbf, read_point_shp
from geo.sources import Dataset, read_dataset
from tests.conftest import EPSG_GK, X0, Y0, write_shp


def _frame(n: int = 6) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {
            "编号": [f"B{i}" for i in range(n)],
            "地址": ["  前导空格", "镜湖区", "", "赭山路—12号", "很长的地址" * 10, "ABC"][:n],
            "面积": [12.5, np.nan, 0.0, 1250.25, 3.0, -1.5][:n],
            "层数": [1, 2, 3, 4, 5, 6][:n],
            "日期": [dt.date(2022, 5, 25), None, dt.date(2021, 1, 1), None, dt.date(2022, 12, 31), None][:n],
            "已核": [True, False, True, True, False, True][:n],
        },
        geometry=shapely.points(np.column_stack([X0 + np.arange(n) * 10.0, np.full(n, Y0)])),
        crs=EPSG_GK,
    )


def test_dbf_matches_gdal(tmp_path):
    shp = write_shp(_frame(), tmp_path / "a" / "表.shp")
    ours, deleted = read_dbf(shp.with_suffix(".dbf"), "gb18030")
    gdal = pyogrio.read_dataframe(shp, encoding="GB18030")
    assert not deleted.any() and list(ours.columns) == [c for c in gdal.columns if c != "geometry"]
    assert ours["编号"].tolist() == gdal["编号"].tolist()
    assert ours["地址"].tolist()[1:] == ["镜湖区", None, "赭山路—12号", "很长的地址" * 10, "ABC"]
    assert ours["地址"].iloc[0] == "前导空格"
    np.testing.assert_allclose(ours["面积"].to_numpy(dtype=float), gdal["面积"].to_numpy(dtype=float))
    assert ours["层数"].tolist() == [1, 2, 3, 4, 5, 6]
    assert ours["日期"].tolist() == ["2022-05-25", None, "2021-01-01", None, "2022-12-31", None]
    assert ours["已核"].tolist() == gdal["已核"].tolist()


def test_point_shp_matches_gdal(tmp_path):
    shp = write_shp(_frame(), tmp_path / "a" / "p.shp")
    ours = read_point_shp(shp)
    gdal = pyogrio.read_dataframe(shp, columns=[]).geometry.values
    assert ours is not None and all(shapely.equals(ours, np.asarray(gdal, dtype=object)))
    polys = gpd.GeoDataFrame({"a": [1]}, geometry=[shapely.box(X0, Y0, X0 + 1, Y0 + 1)], crs=EPSG_GK)
    assert read_point_shp(write_shp(polys, tmp_path / "b" / "poly.shp")) is None


def test_deleted_record_skipped_like_gdal(tmp_path):
    shp = write_shp(_frame(), tmp_path / "a" / "d.shp")
    dbf = shp.with_suffix(".dbf")
    data = bytearray(dbf.read_bytes())
    header_len = int.from_bytes(data[8:10], "little")
    record_len = int.from_bytes(data[10:12], "little")
    data[header_len + 2 * record_len] = ord("*")  # third record marked deleted
    dbf.write_bytes(bytes(data))
    table = read_dataset(Dataset("d.shp", shp, "shp"))
    gdal = pyogrio.read_dataframe(shp, encoding="GB18030")
    assert table.attrs["编号"].tolist() == gdal["编号"].tolist()
    assert len(table.geometry) == len(table.attrs)
