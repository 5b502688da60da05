"""The fast shapefile readers agree with GDAL, including blanks, dates, logicals and deleted records."""

from __future__ import annotations

import datetime as dt

import geopandas as gpd
import numpy as np
import pyogrio
import shapely

from geo.reading.datasets import Dataset
from geo.reading.dbf import read_dbf, read_point_shp
from geo.reading.readers import read_dataset
from tests.helpers.builders import EPSG_GK, X0, Y0, write_shp


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


def _wide_dbf(path, text: str, width: int = 300, byte17: int | None = None) -> None:
    """A DBF by hand: a text field ``width`` bytes wide (a width over 255 in bytes 16 and 17 of
    its descriptor, as Clipper writes it; ``byte17`` puts another value there, as writers that
    keep a "decimals" byte for text do) and a numeric field."""
    import struct

    fields = [(b"NOTE", b"C", width, 0), (b"AREA", b"N", 10, 2)]
    header_len = 32 + 32 * len(fields) + 1
    record_len = 1 + width + 10
    head = struct.pack("<B3BIHH20x", 3, 122, 12, 31, 1, header_len, record_len)
    for name, ftype, length, decimals in fields:
        # numbers keep their width in byte 16 alone; text may use byte 17 as the high byte
        lo, hi = (length, decimals) if ftype == b"N" else (length % 256, length // 256)
        if ftype == b"C" and byte17 is not None:
            hi = byte17
        head += struct.pack("<11sc4xBB14x", name, ftype, lo, hi)
    record = b" " + text.encode("gbk").ljust(width) + b"     12.50"
    path.write_bytes(head + b"\r" + record + b"\x1a")


def test_one_header_parser_reads_fields_wider_than_255_bytes(tmp_path):
    from geo.reading.dbf import parse_header
    from geo.reading.encoding import detect_dbf_encoding
    from geo.reading.shp_checks import check_dbf

    text = "违建地址" * 30 + "末尾"  # 244 bytes in GBK, past byte 240
    path = tmp_path / "wide.dbf"
    _wide_dbf(path, text)
    header = parse_header(path.read_bytes())
    assert [(f.name_raw, f.type, f.offset, f.length) for f in header.fields] == [
        (b"NOTE", "C", 1, 300),
        (b"AREA", "N", 301, 10),
    ]
    assert check_dbf(path) == 1  # the widths add up to the record length
    frame, deleted = read_dbf(path, "gb18030")
    assert frame["NOTE"].tolist() == [text] and frame["AREA"].tolist() == [12.5] and not deleted.any()
    assert detect_dbf_encoding(path).encoding == "gb18030"  # the evidence reaches into the wide field


def test_a_decimals_byte_on_a_text_field_is_no_width(tmp_path):
    """Byte 17 of a text field that some writers fill with "decimals": the widths add up without
    it, so it is ignored -- as GDAL reads the file."""
    from geo.reading.dbf import parse_header
    from geo.reading.shp_checks import check_dbf

    path = tmp_path / "narrow.dbf"
    _wide_dbf(path, "赭山路1号", width=20, byte17=2)
    assert [f.length for f in parse_header(path.read_bytes()).fields] == [20, 10]
    assert check_dbf(path) == 1
    ours, _ = read_dbf(path, "gb18030")
    gdal = pyogrio.read_dataframe(path, encoding="gb18030", read_geometry=False)
    assert ours["NOTE"].tolist() == gdal["NOTE"].tolist() == ["赭山路1号"]
    assert ours["AREA"].tolist() == gdal["AREA"].tolist() == [12.5]
