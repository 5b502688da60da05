"""CRS parsing, .prj reading, inference from coordinate magnitudes, datum
warnings and GCJ-02 (geo.crs).

Coordinates for the inference tests are produced by pyproj from lon/lat around
the demo area, 118.4°E 31.3°N (Wuhu), where the CGCS2000 3-degree GK zone is
zone 39 / CM 117°E (EPSG:4527 prefixed, EPSG:4548 without prefix).
"""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pyproj
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from geo.crs import (
    CRSChoice,
    CRSGuess,
    crs_from_prj,
    datum_warning,
    gcj02_to_wgs84,
    gk_zone_epsg,
    infer_crs,
    parse_crs,
    transformer,
    wgs84_to_gcj02,
)
from geo.errors import CRSError

LON0, LAT0 = 118.4, 31.3
XIAN80_GK_CM117 = 2384  # Xian 1980 / 3-degree Gauss-Kruger CM 117E (EPSG:2385 is CM 120E)

HYPO = settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def demo_lonlat(n: int = 200, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Points scattered over about 20 km around the demo area, CGCS2000 degrees."""
    rng = np.random.default_rng(seed)
    return LON0 + rng.uniform(-0.1, 0.1, n), LAT0 + rng.uniform(-0.1, 0.1, n)


def project(epsg: int, lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    src = 4326 if epsg == 3857 else 4490
    x, y = pyproj.Transformer.from_crs(src, epsg, always_xy=True).transform(lon, lat)
    return np.asarray(x), np.asarray(y)


# --------------------------------------------------------------------------- parse_crs


@pytest.mark.parametrize(
    ("value", "epsg"),
    [
        ("EPSG:4548", 4548),
        ("epsg:4548", 4548),
        ("4548", 4548),
        (" EPSG:4527 ", 4527),
        ("wgs84", 4326),
        ("WGS84", 4326),
        ("cgcs2000", 4490),
        ("CGCS2000", 4490),
        ("CGCS2000_3_Degree_GK_CM_117E", 4548),
        ("CGCS2000_3_Degree_GK_Zone_39", 4527),
        ("CGCS2000 / 3-degree Gauss-Kruger CM 117E", 4548),
        ("xian80", 4610),
        ("urn:ogc:def:crs:EPSG::4548", 4548),
    ],
)
def test_parse_crs_codes_and_names(value: str, epsg: int) -> None:
    choice = parse_crs(value)
    assert isinstance(choice, CRSChoice)
    assert choice.epsg == epsg
    assert choice.crs is not None and choice.crs.to_epsg() == epsg
    assert not choice.gcj02
    assert choice.label.startswith(f"EPSG:{epsg} ")


def test_parse_crs_label() -> None:
    assert parse_crs("4548").label == "EPSG:4548 CGCS2000 / 3-degree Gauss-Kruger CM 117E"


@pytest.mark.parametrize("value", ["gcj02", "GCJ-02", "gcj", "GCJ02"])
def test_parse_crs_gcj02(value: str) -> None:
    choice = parse_crs(value)
    assert choice.gcj02
    assert choice.label == "GCJ-02"
    assert choice.crs is not None and choice.crs.to_epsg() == 4326
    assert choice.epsg is None


def test_parse_crs_wkt_and_proj_strings() -> None:
    esri = pyproj.CRS.from_epsg(4548).to_wkt("WKT1_ESRI")
    assert parse_crs(esri).epsg == 4548
    assert parse_crs(pyproj.CRS.from_epsg(4527).to_wkt()).epsg == 4527
    custom = parse_crs(
        "+proj=tmerc +lat_0=0 +lon_0=118.5 +k=1 +x_0=500000 +y_0=0 +ellps=GRS80 +units=m +no_defs"
    )
    assert custom.epsg is None and custom.crs is not None and custom.crs.is_projected
    assert custom.label


@pytest.mark.parametrize("value", ["hello", "", "   ", "EPSG:999999", "bd09", "2000"])
def test_parse_crs_rejects_with_bilingual_message(value: str) -> None:
    with pytest.raises(CRSError) as exc:
        parse_crs(value)
    assert exc.value.zh and exc.value.en
    assert exc.value.zh != exc.value.en
    assert exc.value.status == 400


# --------------------------------------------------------------------------- crs_from_prj


def test_prj_esri_wkt_resolves_to_epsg() -> None:
    text = pyproj.CRS.from_epsg(4548).to_wkt("WKT1_ESRI")
    assert 'PROJCS["CGCS2000_3_Degree_GK_CM_117E"' in text
    crs = crs_from_prj(text)
    assert crs.to_epsg() == 4548
    assert crs.srs.upper() == "EPSG:4548"


def test_prj_written_by_gdal(tmp_path: Path) -> None:
    shp = tmp_path / "grid.shp"
    gpd.GeoDataFrame({"BH": ["1"]}, geometry=[shapely.box(0, 0, 1, 1)], crs=4527).to_file(
        shp, engine="pyogrio"
    )
    assert crs_from_prj(shp.with_suffix(".prj").read_text()).to_epsg() == 4527


def test_prj_with_bom_and_renamed_projcs() -> None:
    text = pyproj.CRS.from_epsg(4548).to_wkt("WKT1_ESRI").replace("CGCS2000_3_Degree", "CGCS_2000_3_Degree")
    assert crs_from_prj("\ufeff" + text + "\n").to_epsg() == 4548


def test_prj_with_towgs84_is_kept() -> None:
    wkt = pyproj.CRS.from_epsg(XIAN80_GK_CM117).to_wkt("WKT1_GDAL")
    wkt = wkt.replace(
        'AUTHORITY["EPSG","6610"]]', 'TOWGS84[24,-123,-94,0.02,-0.25,-0.13,1.1],AUTHORITY["EPSG","6610"]]'
    )
    crs = crs_from_prj(wkt)
    assert crs.is_bound
    assert datum_warning(crs) is None  # the file's own shift parameters are used


@pytest.mark.parametrize("text", ["", "garbage", "PROJCS[", "EPSG:4548 but not wkt ["])
def test_prj_garbage(text: str) -> None:
    with pytest.raises(CRSError) as exc:
        crs_from_prj(text)
    assert ".prj" in exc.value.zh and ".prj" in exc.value.en


# --------------------------------------------------------------------------- infer_crs


def test_infer_geographic() -> None:
    lon, lat = demo_lonlat()
    guess = infer_crs(lon, lat)
    assert isinstance(guess, CRSGuess)
    assert guess.epsg == 4490 and guess.crs.to_epsg() == 4490
    assert "4490" in guess.reason_zh and "4490" in guess.reason_en
    assert "无 .prj" in guess.reason_zh and "no .prj" in guess.reason_en


def test_infer_prefixed_3_degree_zone() -> None:
    x, y = project(4527, *demo_lonlat())
    assert x.min() > 39_000_000 and x.max() < 40_000_000
    guess = infer_crs(x, y)
    assert guess.epsg == 4527
    assert "第39带" in guess.reason_zh and "EPSG:4527" in guess.reason_zh
    assert "zone 39" in guess.reason_en


def test_infer_unprefixed_with_hint() -> None:
    x, y = project(4548, *demo_lonlat())
    guess = infer_crs(x, y, hint_lon=118.4)
    assert guess.epsg == 4548
    assert "117" in guess.reason_zh and "117E" in guess.reason_en


def test_infer_unprefixed_without_hint_asks_for_crs() -> None:
    x, y = project(4548, *demo_lonlat())
    with pytest.raises(CRSError) as exc:
        infer_crs(x, y)
    assert "--crs" in exc.value.zh and "--crs" in exc.value.en


def test_infer_web_mercator_with_hint() -> None:
    x, y = project(3857, *demo_lonlat())
    guess = infer_crs(x, y, hint_lon=118.4)
    assert guess.epsg == 3857
    assert "4491" in guess.reason_en  # the rejected 6-degree reading is named


def test_infer_web_mercator_without_hint_is_ambiguous() -> None:
    x, y = project(3857, *demo_lonlat())
    with pytest.raises(CRSError) as exc:
        infer_crs(x, y)
    assert "3857" in exc.value.en and "4491" in exc.value.en and "--crs" in exc.value.zh


def test_infer_web_mercator_with_far_hint_refuses() -> None:
    x, y = project(3857, *demo_lonlat())
    with pytest.raises(CRSError):
        infer_crs(x, y, hint_lon=100.0)


def test_infer_prefixed_6_degree_zone() -> None:
    x, y = project(4498, *demo_lonlat())  # zone 20, CM 117E: no web-mercator reading fits China
    assert infer_crs(x, y).epsg == 4498


def test_infer_ignores_stray_points() -> None:
    x, y = project(4527, *demo_lonlat(300))
    x[:2], y[:2] = 0.0, 0.0
    x[2], y[2] = np.nan, np.inf
    assert infer_crs(x, y).epsg == 4527


def test_infer_swapped_axes_is_reported() -> None:
    x, y = project(4527, *demo_lonlat())
    with pytest.raises(CRSError) as exc:
        infer_crs(y, x)
    assert "swapped" in exc.value.en and "颠倒" in exc.value.zh


@pytest.mark.parametrize(
    ("x", "y"),
    [
        ([1.0, 2.0], [3.0, 4.0]),
        ([np.nan], [np.nan]),
        ([], []),
        ([5e9], [5e9]),
        ([-75.0], [40.0]),
    ],
)
def test_infer_unknown_raises(x: list[float], y: list[float]) -> None:
    with pytest.raises(CRSError) as exc:
        infer_crs(np.asarray(x, dtype=float), np.asarray(y, dtype=float))
    assert exc.value.zh and exc.value.en


@HYPO
@given(
    hnp.arrays(np.float64, st.integers(1, 40), elements=st.floats(73.5, 134.5)),
    st.data(),
)
def test_infer_random_points_in_china_are_geographic(lon: np.ndarray, data: st.DataObject) -> None:
    lat = data.draw(hnp.arrays(np.float64, lon.shape, elements=st.floats(3.5, 53.5)))
    assert infer_crs(lon, lat).epsg == 4490


@HYPO
@given(st.integers(25, 45), st.floats(-1.4, 1.4), st.floats(18.0, 50.0))
def test_infer_prefixed_zone_property(zone: int, dlon: float, lat: float) -> None:
    epsg = 4513 + zone - 25
    lon = np.array([3 * zone + dlon, 3 * zone + dlon / 2])
    x, y = project(epsg, lon, np.array([lat, lat + 0.05]))
    assert infer_crs(x, y).epsg == epsg


@HYPO
@given(st.floats(74.0, 134.0), st.floats(18.0, 50.0))
def test_infer_unprefixed_uses_hint_property(lon: float, lat: float) -> None:
    epsg = gk_zone_epsg(lon)
    x, y = project(epsg, np.array([lon, lon + 0.01]), np.array([lat, lat + 0.01]))
    assert infer_crs(x, y, hint_lon=lon).epsg == epsg


# --------------------------------------------------------------------------- zones and datums


def test_gk_zone_epsg() -> None:
    assert gk_zone_epsg(118.4) == 4548
    assert gk_zone_epsg(117.0) == 4548
    assert gk_zone_epsg(75.0) == 4534
    assert gk_zone_epsg(135.0) == 4554
    assert gk_zone_epsg(119.6) == 4549  # CM 120E
    for lon in (70.0, 140.0, float("nan")):
        with pytest.raises(CRSError):
            gk_zone_epsg(lon)


@HYPO
@given(st.floats(73.5, 136.4))
def test_gk_zone_epsg_property(lon: float) -> None:
    epsg = gk_zone_epsg(lon)
    assert 4534 <= epsg <= 4554
    cm = 75 + 3 * (epsg - 4534)
    assert abs(lon - cm) <= 1.5
    assert f"CM {cm}E" in pyproj.CRS.from_epsg(epsg).name


def test_xian80_code_used_here() -> None:
    assert pyproj.CRS.from_epsg(XIAN80_GK_CM117).name == "Xian 1980 / 3-degree Gauss-Kruger CM 117E"


@pytest.mark.parametrize("epsg", [XIAN80_GK_CM117, 2385, 4610, 2349, 2390, 4214, 2401, 2442])
def test_datum_warning_for_xian80_and_beijing54(epsg: int) -> None:
    warning = datum_warning(pyproj.CRS.from_epsg(epsg))
    assert warning is not None
    zh, en = warning
    assert "CGCS2000" in zh and "CGCS2000" in en
    assert "ballpark" in en and "tens of metres" in en
    assert "近似" in zh


@pytest.mark.parametrize("epsg", [4490, 4548, 4527, 4326, 3857])
def test_no_datum_warning_for_cgcs2000_and_wgs84(epsg: int) -> None:
    assert datum_warning(pyproj.CRS.from_epsg(epsg)) is None


def test_datum_warning_from_esri_prj() -> None:
    crs = crs_from_prj(pyproj.CRS.from_epsg(XIAN80_GK_CM117).to_wkt("WKT1_ESRI"))
    assert crs.to_epsg() == XIAN80_GK_CM117
    assert datum_warning(crs) is not None


# --------------------------------------------------------------------------- transformer


def test_transformer_is_cached_and_always_xy() -> None:
    a = transformer(pyproj.CRS.from_epsg(4490), pyproj.CRS.from_epsg(4548))
    b = transformer(pyproj.CRS.from_epsg(4490), pyproj.CRS.from_epsg(4548))
    assert a is b
    x, y = a.transform(LON0, LAT0)
    assert 600_000 < x < 700_000 and 3_400_000 < y < 3_500_000  # easting first
    c = transformer(crs_from_prj(pyproj.CRS.from_epsg(4548).to_wkt("WKT1_ESRI")), pyproj.CRS.from_epsg(4490))
    lon, lat = c.transform(x, y)
    assert lon == pytest.approx(LON0, abs=1e-9) and lat == pytest.approx(LAT0, abs=1e-9)


def test_transformer_for_custom_crs() -> None:
    custom = pyproj.CRS.from_proj4(
        "+proj=tmerc +lat_0=0 +lon_0=118.5 +k=1 +x_0=500000 +y_0=0 +ellps=GRS80 +units=m"
    )
    t = transformer(pyproj.CRS.from_epsg(4490), custom)
    x, _y = t.transform(118.5, 31.3)
    assert x == pytest.approx(500_000.0, abs=1e-3)
    assert transformer(pyproj.CRS.from_epsg(4490), custom) is t


# --------------------------------------------------------------------------- GCJ-02

REFERENCE_PAIRS = [
    ((116.404, 39.915), (116.41024449916938, 39.91640428150164)),
    ((118.4, 31.3), (118.40541023179279, 31.298149722433227)),
]


@pytest.mark.parametrize(("wgs", "gcj"), REFERENCE_PAIRS)
def test_wgs84_to_gcj02_reference_pairs(wgs: tuple[float, float], gcj: tuple[float, float]) -> None:
    lon, lat = wgs84_to_gcj02(*wgs)
    assert isinstance(lon, np.ndarray) and lon.dtype == np.float64
    assert abs(float(lon) - gcj[0]) < 1e-6 and abs(float(lat) - gcj[1]) < 1e-6


@pytest.mark.parametrize(("wgs", "gcj"), REFERENCE_PAIRS)
def test_gcj02_to_wgs84_reference_pairs(wgs: tuple[float, float], gcj: tuple[float, float]) -> None:
    lon, lat = gcj02_to_wgs84(*gcj)
    assert abs(float(lon) - wgs[0]) < 1e-7 and abs(float(lat) - wgs[1]) < 1e-7


def test_gcj02_vectorised() -> None:
    lon = np.array([p[0][0] for p in REFERENCE_PAIRS])
    lat = np.array([p[0][1] for p in REFERENCE_PAIRS])
    glon, glat = wgs84_to_gcj02(lon, lat)
    assert glon.shape == (2,) and glat.dtype == np.float64
    np.testing.assert_allclose(glon, [p[1][0] for p in REFERENCE_PAIRS], atol=1e-6)
    np.testing.assert_allclose(glat, [p[1][1] for p in REFERENCE_PAIRS], atol=1e-6)
    glon2, glat2 = wgs84_to_gcj02(lon.tolist(), lat.tolist())
    np.testing.assert_array_equal(glat, glat2)
    np.testing.assert_array_equal(glon, glon2)


def test_gcj02_outside_china_and_non_finite_unchanged() -> None:
    lon = np.array([-74.0, 2.35, 151.2, np.nan, np.inf, 118.4])
    lat = np.array([40.7, 48.85, -33.9, 30.0, 30.0, 31.3])
    for fn in (wgs84_to_gcj02, gcj02_to_wgs84):
        out_lon, out_lat = fn(lon, lat)
        np.testing.assert_array_equal(out_lon[:5], lon[:5])
        np.testing.assert_array_equal(out_lat[:5], lat[:5])
        assert out_lon[5] != lon[5]


def test_gcj02_offset_is_hundreds_of_metres() -> None:
    glon, glat = wgs84_to_gcj02(LON0, LAT0)
    geod = pyproj.Geod(ellps="WGS84")
    _, _, dist = geod.inv(LON0, LAT0, float(glon), float(glat))
    assert 100 < dist < 1000


@HYPO
@given(st.floats(73.0, 135.0), st.floats(3.0, 54.0))
def test_gcj02_round_trip_property(lon: float, lat: float) -> None:
    glon, glat = wgs84_to_gcj02(lon, lat)
    wlon, wlat = gcj02_to_wgs84(glon, glat)
    assert abs(float(wlon) - lon) < 1e-7  # about 1 cm
    assert abs(float(wlat) - lat) < 1e-7


@HYPO
@given(
    hnp.arrays(np.float64, st.integers(0, 30), elements=st.floats(73.0, 135.0)),
    st.floats(3.0, 54.0),
)
def test_gcj02_round_trip_arrays(lon: np.ndarray, lat0: float) -> None:
    lat = np.full(lon.shape, lat0)
    wlon, wlat = gcj02_to_wgs84(*wgs84_to_gcj02(lon, lat))
    assert wlon.shape == lon.shape
    if lon.size:
        assert np.max(np.abs(wlon - lon)) < 1e-7 and np.max(np.abs(wlat - lat)) < 1e-7
