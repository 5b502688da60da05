"""Reading survey files through the reader registry (geo.reading.sources, geo.reading.readers).

Each registered format is read from a real file written here: a GBK shapefile without .cpg
or .prj inside a nested zip, GeoPackage, GeoJSON, KML and KMZ, CSV in GBK and in UTF-8 with
a BOM, XLSX.  A format no reader is registered for is refused with a bilingual error, and a
reader registered for a new format is used for listing, unpacking and reading until it is
unregistered.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from pathlib import Path

import geopandas as gpd
import numpy as np
import openpyxl
import pandas as pd
import pytest
import shapely

from geo.errors import InputError, UnsupportedFile
from geo.reading.datasets import Dataset, RawTable, Select
from geo.reading.readers import (
    Reader,
    get_reader,
    read_dataset,
    reader_for_suffix,
    readers,
    register_reader,
    unregister_reader,
)
from geo.reading.sources import expand_containers, open_source
from tests.helpers.builders import EPSG_GK, LONLAT_TO_GK, X0, Y0, points_frame, write_shp, zip_shp

ADDRESSES = ["镜湖区赭山街道", "弋江区中山南路"]
#: Two points inside the test grid, in CGCS2000 3-degree GK (metres) and as lon/lat.
GK_XY = [(X0 + 50, Y0 - 50), (X0 + 150, Y0 - 150)]
LONLAT = [LONLAT_TO_GK.transform(x, y, direction="INVERSE") for x, y in GK_XY]


def _only(path: Path, workdir: Path) -> Dataset:
    source = open_source(path, workdir)
    assert len(source.datasets) == 1, source.datasets
    return source.datasets[0]


def _lonlat_frame() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {"违建地址": ADDRESSES, "当前状态": ["已拆除", "存量"]}, geometry=shapely.points(LONLAT), crs=4490
    )


def test_the_built_in_formats_are_registered() -> None:
    formats = {r.format: r.suffixes for r in readers()}
    assert set(formats) == {"shp", "gpkg", "geojson", "kml", "csv", "xlsx"}
    assert reader_for_suffix(".JSON") is get_reader("geojson")
    assert reader_for_suffix(".kmz") is get_reader("kml")
    assert reader_for_suffix(".dbf") is None


def test_a_gbk_shapefile_without_cpg_or_prj_in_a_nested_zip(tmp_path: Path) -> None:
    """Entry names in GBK without the UTF-8 flag, a sub-folder, a zip inside the zip: the
    text is told GBK from its bytes and the CRS inferred from the coordinates."""
    frame = points_frame(GK_XY, 违建地址=ADDRESSES, 当前状态=["已拆除", "存量"])
    shp = write_shp(frame, tmp_path / "src" / "违建图斑.shp", prj=False)
    assert not shp.with_suffix(".cpg").exists() and not shp.with_suffix(".prj").exists()
    inner = zip_shp(shp, tmp_path / "内层.zip", folder="2022年/")
    outer = tmp_path / "上报.zip"
    with zipfile.ZipFile(outer, "w") as zf:
        zf.write(inner, "区县/内层.zip")
        zf.writestr("说明.docx", b"not a layer")

    source = open_source(outer, tmp_path / "work")
    assert [d.name for d in source.datasets] == ["区县/内层_zip/2022年/违建图斑.shp"]
    assert source.skipped == ["说明.docx"]
    table = read_dataset(source.datasets[0], hint_lon=117.0)  # the grid's longitude tells the zone

    assert table.attrs["违建地址"].tolist() == ADDRESSES
    assert (table.encoding, table.encoding_source) == ("gb18030", "content")
    assert table.crs_source == "inferred" and table.crs is not None and table.crs.to_epsg() == EPSG_GK
    assert table.crs_note is not None and "4548" in table.crs_note[1]
    assert table.misfit is None
    assert shapely.get_coordinates(table.geometry).tolist() == [list(xy) for xy in GK_XY]


def test_a_shapefile_with_prj_takes_its_crs(tmp_path: Path) -> None:
    shp = write_shp(points_frame(GK_XY, 违建地址=ADDRESSES), tmp_path / "s" / "sites.shp")
    table = read_dataset(_only(shp, tmp_path / "work"))
    assert table.crs_source == "prj" and table.crs is not None and table.crs.to_epsg() == EPSG_GK
    assert table.attrs["违建地址"].tolist() == ADDRESSES


def test_geopackage_layers_are_datasets_of_their_own(tmp_path: Path) -> None:
    gpkg = tmp_path / "调查.gpkg"
    _lonlat_frame().to_file(gpkg, layer="违建", engine="pyogrio")
    points_frame(GK_XY, 名称=["甲", "乙"]).to_file(gpkg, layer="停放点", engine="pyogrio")

    datasets = expand_containers(open_source(gpkg, tmp_path / "work").datasets)
    assert sorted(d.name for d in datasets) == ["调查.gpkg:停放点", "调查.gpkg:违建"]
    tables = {d.layer: read_dataset(d) for d in datasets}
    assert tables["违建"].attrs["违建地址"].tolist() == ADDRESSES
    assert tables["违建"].crs is not None and tables["违建"].crs.to_epsg() == 4490
    assert tables["停放点"].crs is not None and tables["停放点"].crs.to_epsg() == EPSG_GK
    assert all(t.crs_source == "file" for t in tables.values())


@pytest.mark.parametrize("suffix", [".geojson", ".json"])
def test_geojson_is_lon_lat(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"sites{suffix}"
    _lonlat_frame().to_file(path, driver="GeoJSON", engine="pyogrio")
    dataset = _only(path, tmp_path / "work")
    assert dataset.kind == "geojson"
    table = read_dataset(dataset)
    assert table.attrs["违建地址"].tolist() == ADDRESSES
    assert table.crs_source == "file" and table.crs is not None and table.crs.to_epsg() in (4326, 4490)
    assert np.allclose(shapely.get_coordinates(table.geometry), LONLAT)


def test_kml_and_kmz(tmp_path: Path) -> None:
    kml = tmp_path / "sites.kml"
    _lonlat_frame().to_crs(4326).to_file(kml, driver="KML", engine="pyogrio")
    table = read_dataset(expand_containers([_only(kml, tmp_path / "w1")])[0])
    assert table.crs is not None and table.crs.to_epsg() == 4326 and len(table.attrs) == 2
    assert np.allclose(shapely.get_coordinates(table.geometry)[:, :2], LONLAT, atol=1e-9)

    kmz = tmp_path / "sites.kmz"
    with zipfile.ZipFile(kmz, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.write(kml, "doc.kml")
    dataset = _only(kmz, tmp_path / "w2")
    assert (dataset.name, dataset.kind) == ("sites.kmz/doc.kml", "kml")
    assert len(read_dataset(expand_containers([dataset])[0]).attrs) == 2


@pytest.mark.parametrize(
    ("encoding", "expected"),
    [("gbk", "gb18030"), ("utf-8-sig", "utf-8-sig"), ("utf-8", "utf-8-sig")],
)
def test_csv_in_gbk_or_utf8_with_a_bom(tmp_path: Path, encoding: str, expected: str) -> None:
    """Excel on Chinese Windows saves CSV as GBK, WPS and Excel's UTF-8 option with a BOM: the
    text is decoded either way, the BOM never becomes part of the first header."""
    path = tmp_path / "sites.csv"
    lines = ["编号,违建地址,经度,纬度"] + [
        f"W{i},{a},{lon:.8f},{lat:.8f}"
        for i, (a, (lon, lat)) in enumerate(zip(ADDRESSES, LONLAT, strict=True))
    ]
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode(encoding))

    table = read_dataset(_only(path, tmp_path / "work"))
    assert (table.encoding, table.encoding_source) == (expected, "content")
    assert table.columns == ["编号", "违建地址"]
    assert table.attrs["编号"].tolist() == ["W0", "W1"]
    assert table.attrs["违建地址"].tolist() == ADDRESSES
    assert table.crs_source == "inferred" and table.crs is not None and table.crs.to_epsg() == 4490


def test_a_csv_encoding_given_by_a_person_is_used(tmp_path: Path) -> None:
    path = tmp_path / "sites.csv"
    lon, lat = LONLAT[0]
    path.write_bytes(f"名稱,lon,lat\n路口,{lon},{lat}\n".encode("big5"))
    table = read_dataset(Dataset("sites.csv", path, "csv"), encoding="Big5")
    assert table.encoding == "big5" and table.attrs["名稱"].tolist() == ["路口"]


def test_xlsx_with_x_and_y_columns(tmp_path: Path) -> None:
    path = tmp_path / "sites.xlsx"
    wb = openpyxl.Workbook()
    ws = wb.active
    assert ws is not None
    ws.append(["编号", "X坐标", "Y坐标"])
    for i, (x, y) in enumerate(GK_XY):
        ws.append([f"P{i}", x, y])
    wb.save(path)

    table = read_dataset(_only(path, tmp_path / "work"), hint_lon=117.0)
    assert table.attrs["编号"].tolist() == ["P0", "P1"]
    assert table.crs_source == "inferred" and table.crs is not None and table.crs.to_epsg() == EPSG_GK
    assert shapely.get_coordinates(table.geometry).tolist() == [list(xy) for xy in GK_XY]


def test_an_unknown_format_is_refused_in_both_languages(tmp_path: Path) -> None:
    path = tmp_path / "sites.gpx"
    path.write_text("<gpx/>", encoding="utf-8")
    with pytest.raises(UnsupportedFile) as read:
        read_dataset(Dataset("sites.gpx", path, "gpx"))
    assert read.value.code == "unsupported_format" and read.value.status == 415
    assert read.value.zh.startswith("不支持的文件格式: gpx") and "shp" in read.value.zh
    assert read.value.en.startswith("unsupported file format: gpx") and "xlsx" in read.value.en

    with pytest.raises(UnsupportedFile) as listed:
        open_source(path, tmp_path / "work")
    assert "不支持的文件类型: .gpx" in listed.value.zh and "unsupported file type: .gpx" in listed.value.en


def _read_wkt(dataset: Dataset, encoding: str | None, select: Select | None) -> RawTable:
    """A toy format: one WKT geometry per line, ``name;WKT``."""
    rows = [line.split(";", 1) for line in dataset.path.read_text(encoding or "utf-8").splitlines() if line]
    attrs = pd.DataFrame({"名称": [name for name, _ in rows]})
    geoms = np.asarray(shapely.from_wkt([wkt for _, wkt in rows]), dtype=object)
    return RawTable(dataset, attrs, geoms, None, False, "none", None, "utf-8", "file", [], ["名称"])


def _check_wkt(dataset: Dataset) -> None:
    if b";" not in dataset.path.read_bytes()[:200]:
        raise UnsupportedFile("内容不是 WKT 列表", "not a WKT list", code="content_mismatch")


@pytest.fixture
def wkt_reader() -> Iterator[Reader]:
    reader = register_reader(Reader("wkt", (".wkt",), _read_wkt, _check_wkt))
    try:
        yield reader
    finally:
        unregister_reader("wkt")


def test_a_reader_registered_for_a_new_format_is_used_until_unregistered(
    tmp_path: Path, wkt_reader: Reader
) -> None:
    path = tmp_path / "sites.wkt"
    path.write_text("".join(f"点{i};POINT ({x} {y})\n" for i, (x, y) in enumerate(GK_XY)), encoding="utf-8")
    archive = tmp_path / "sites.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(path, "数据/sites.wkt")

    assert get_reader("wkt") is wkt_reader and reader_for_suffix(".WKT") is wkt_reader
    dataset = _only(archive, tmp_path / "w1")
    assert (dataset.name, dataset.kind) == ("数据/sites.wkt", "wkt")
    table = read_dataset(dataset, hint_lon=117.0)
    assert table.attrs["名称"].tolist() == ["点0", "点1"]
    assert table.crs_source == "inferred" and table.crs is not None and table.crs.to_epsg() == EPSG_GK

    bad = tmp_path / "bad.wkt"
    bad.write_text("POINT (1 2)\n", encoding="utf-8")
    with pytest.raises(UnsupportedFile, match="not a WKT list"):
        read_dataset(Dataset("bad.wkt", bad, "wkt"))

    unregister_reader("wkt")
    assert reader_for_suffix(".wkt") is None
    with pytest.raises(UnsupportedFile) as gone:
        read_dataset(dataset)
    assert gone.value.code == "unsupported_format"
    with pytest.raises(InputError) as nothing:  # no longer unpacked: listed as skipped
        open_source(archive, tmp_path / "w2")
    assert nothing.value.code == "no_dataset" and nothing.value.details == {"skipped": ["数据/sites.wkt"]}


@pytest.mark.parametrize(
    "reader",
    [
        Reader("WKT", (".wkt",), _read_wkt),
        Reader("wkt", ("wkt",), _read_wkt),
        Reader("wkt", (".WKT",), _read_wkt),
    ],
)
def test_a_reader_needs_a_lower_case_format_and_dotted_suffixes(reader: Reader) -> None:
    with pytest.raises(ValueError):
        register_reader(reader)
    assert reader_for_suffix(".wkt") is None
