"""CRS parsing, .prj reading, inference from coordinate magnitudes, datum
warnings and GCJ-02 (geo.reading.crs, .crs_fit, .crs_declared, .crs_infer, .gcj02).

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

from geo.errors import CRSError
from geo.reading.crs import (
    CRSChoice,
    CRSGuess,
    crs_from_prj,
    datum_warning,
    gk_zone_epsg,
    parse_crs,
    transformer,
)
from geo.reading.crs_declared import declared_mismatch, fit_rows
from geo.reading.crs_fit import (
    MISFIT_GK3_ZONE,
    MISFIT_LARGE,
    MISFIT_LONLAT,
    MISFIT_OUTSIDE,
    MISFIT_SWAPPED,
    MISFIT_UNPREFIXED,
    MISFIT_ZERO,
    MISFIT_ZONE,
    misfit_reason,
    row_kinds,
)
from geo.reading.crs_infer import infer_crs, infer_crs_rows, inferred_note
from geo.reading.gcj02 import gcj02_to_wgs84, wgs84_to_gcj02

LON0, LAT0 = 118.4, 31.3
X_GK, Y_GK = (round(v) for v in pyproj.Transformer.from_crs(4490, 4548, always_xy=True).transform(LON0, LAT0))
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


@pytest.mark.slow
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


@pytest.mark.slow
@HYPO
@given(
    hnp.arrays(np.float64, st.integers(1, 40), elements=st.floats(73.5, 134.5)),
    st.data(),
)
def test_infer_random_points_in_china_are_geographic(lon: np.ndarray, data: st.DataObject) -> None:
    lat = data.draw(hnp.arrays(np.float64, lon.shape, elements=st.floats(3.5, 53.5)))
    assert infer_crs(lon, lat).epsg == 4490


@pytest.mark.slow
@HYPO
@given(st.integers(25, 45), st.floats(-1.4, 1.4), st.floats(18.0, 50.0))
def test_infer_prefixed_zone_property(zone: int, dlon: float, lat: float) -> None:
    epsg = 4513 + zone - 25
    lon = np.array([3 * zone + dlon, 3 * zone + dlon / 2])
    x, y = project(epsg, lon, np.array([lat, lat + 0.05]))
    assert infer_crs(x, y).epsg == epsg


@pytest.mark.slow
@HYPO
@given(st.floats(74.0, 134.0), st.floats(18.0, 50.0))
def test_infer_unprefixed_uses_hint_property(lon: float, lat: float) -> None:
    epsg = gk_zone_epsg(lon)
    x, y = project(epsg, np.array([lon, lon + 0.01]), np.array([lat, lat + 0.01]))
    assert infer_crs(x, y, hint_lon=lon).epsg == epsg


# --------------------------------------------------------------------------- outliers: rows that do not fit

FAMILIES = ("prefixed", "unprefixed", "lonlat")
OUTLIERS = ("swapped", "zero", "zero_x", "zero_y", "huge", "foreign", "foreign2")


def bulk(family: str, zone: int, lon: np.ndarray, lat: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
    """The bulk of a file: its EPSG code and coordinates."""
    if family == "lonlat":
        return 4490, lon.copy(), lat.copy()
    epsg = (4513 if family == "prefixed" else 4534) + zone - 25
    x, y = project(epsg, lon, lat)
    return epsg, x.copy(), y.copy()


def outlier(
    family: str, zone: int, kind: str, x: float, y: float, lon: float, lat: float, side: int, size: float
) -> tuple[float, float, int]:
    """One stray row made from a bulk row ``(x, y)`` at ``lon, lat``, and the reason expected."""
    if kind == "swapped":
        return y, x, MISFIT_SWAPPED
    if kind == "zero":
        return 0.0, 0.0, MISFIT_ZERO
    if kind == "zero_x":
        return 0.0, y, MISFIT_ZERO
    if kind == "zero_y":
        return x, 0.0, MISFIT_ZERO
    if kind == "huge":
        return side * size, size, MISFIT_OUTSIDE
    other = zone + side  # a neighbouring 3-degree zone, with its prefix
    px, py = project(4513 + other - 25, np.array([3 * other + (lon - 3 * zone)]), np.array([lat]))
    gk_row = (float(px[0]), float(py[0]))
    if family == "prefixed":
        if kind == "foreign":
            return *gk_row, MISFIT_ZONE + other
        return lon, lat, MISFIT_LONLAT
    if family == "unprefixed":
        if kind == "foreign":
            return *gk_row, MISFIT_GK3_ZONE + other
        return lon, lat, MISFIT_LONLAT
    if kind == "foreign":
        return *gk_row, MISFIT_GK3_ZONE + other
    ux, uy = project(4534 + zone - 25, np.array([lon]), np.array([lat]))
    return float(ux[0]), float(uy[0]), MISFIT_UNPREFIXED


@pytest.mark.slow
@HYPO
@given(
    st.sampled_from(FAMILIES),
    st.integers(26, 44),
    st.floats(20.0, 45.0),
    st.integers(10, 400),
    st.integers(0, 2**32 - 1),
    st.data(),
)
def test_inference_survives_outliers_property(
    family: str, zone: int, lat0: float, n: int, seed: int, data: st.DataObject
) -> None:
    """Bulk rows in one CRS with k < 10% stray rows of random kinds: the bulk's CRS is inferred
    and exactly the stray rows are marked, each with its reason."""
    rng = np.random.default_rng(seed)
    lon = 3 * zone + rng.uniform(-1.2, 1.2, n)
    lat = lat0 + rng.uniform(-0.3, 0.3, n)
    epsg, x, y = bulk(family, zone, lon, lat)
    k = data.draw(st.integers(0, -(-n // 10) - 1), label="k")  # k < n / 10
    rows = data.draw(st.lists(st.integers(0, n - 1), min_size=k, max_size=k, unique=True), label="rows")
    expected: dict[int, int] = {}
    for i in rows:
        kind = data.draw(st.sampled_from(OUTLIERS))
        side = data.draw(st.sampled_from((-1, 1)))
        size = 10.0 ** data.draw(st.floats(9.0, 15.0))
        x[i], y[i], expected[i] = outlier(family, zone, kind, x[i], y[i], lon[i], lat[i], side, size)
    hint = 3.0 * zone if family == "unprefixed" else None
    guess, fit = infer_crs_rows(x, y, x, y, hint_lon=hint)
    assert guess.epsg == epsg
    marked = np.flatnonzero(fit.codes)
    assert {int(i): int(fit.codes[i]) for i in marked} == expected
    assert (fit.fit, fit.total) == (n - k, n)


def test_infer_rows_names_each_kind_of_stray_row() -> None:
    lon, lat = demo_lonlat(100)
    x, y = project(4527, lon, lat)
    x38, y38 = project(4526, np.array([LON0 - 3.0]), np.array([LAT0]))
    strays = {
        3: ((y[3], x[3]), MISFIT_SWAPPED),
        10: ((0.0, 0.0), MISFIT_ZERO),
        11: ((0.0, y[11]), MISFIT_ZERO),
        20: ((x38[0], y38[0]), MISFIT_ZONE + 38),
        30: ((LON0, LAT0), MISFIT_LONLAT),
        40: ((500_000.0, 3_400_000.0), MISFIT_UNPREFIXED),
        50: ((1e13, 1e13), MISFIT_OUTSIDE),
        60: ((-1e300, 5.0), MISFIT_OUTSIDE),
    }
    for i, ((sx, sy), _code) in strays.items():
        x[i], y[i] = sx, sy
    x[70], y[70] = np.nan, np.inf  # no usable coordinates: not judged here
    guess, fit = infer_crs_rows(x, y, x, y)
    assert guess.epsg == 4527
    assert {int(i): int(fit.codes[i]) for i in np.flatnonzero(fit.codes)} == {
        i: code for i, (_xy, code) in strays.items()
    }
    assert (fit.fit, fit.total, fit.misfit) == (91, 99, 8)
    zh, en = inferred_note(fit)
    assert "99 行中的 91 行" in zh and "91 of 99" in en and "8" in en


def test_infer_rows_judges_polygons_by_their_whole_bounds() -> None:
    cells = [shapely.box(X_GK + i * 100, Y_GK, X_GK + i * 100 + 100, Y_GK + 100) for i in range(20)]
    cells[4] = shapely.Polygon([(0.0, 0.0), (X_GK, Y_GK), (X_GK + 100, Y_GK)])  # one vertex at zero
    cells[6] = shapely.transform(cells[6], lambda xy: xy[:, ::-1])  # X and Y swapped
    b = shapely.bounds(np.array(cells))
    guess, fit = infer_crs_rows(b[:, 0], b[:, 1], b[:, 2], b[:, 3], hint_lon=LON0)
    assert guess.epsg == 4548
    assert fit.codes.tolist() == [0, 0, 0, 0, MISFIT_ZERO, 0, MISFIT_SWAPPED] + [0] * 13


@pytest.mark.parametrize(("good", "bad", "inferred"), [(8, 2, True), (7, 3, False), (1, 0, True)])
def test_infer_rows_needs_the_majority(good: int, bad: int, inferred: bool) -> None:
    """At least 80% of the rows with coordinates decide; a single row decides only itself."""
    x, y = project(4527, *demo_lonlat(good + bad))
    x[good:], y[good:] = y[good:].copy(), x[good:].copy()
    if inferred:
        assert infer_crs_rows(x, y, x, y)[0].epsg == 4527
    else:
        with pytest.raises(CRSError):
            infer_crs_rows(x, y, x, y)


def test_infer_rows_refusal_says_what_the_rows_look_like() -> None:
    x, y = project(4527, *demo_lonlat(50))
    x[:30], y[:30] = y[:30].copy(), x[:30].copy()  # 60% swapped
    x[30], y[30] = 0.0, 0.0
    x[31], y[31] = LON0, LAT0
    with pytest.raises(CRSError) as exc:
        infer_crs_rows(x, y, x, y)
    err = exc.value
    assert err.code == "crs_needed" and "80%" in err.zh and "80%" in err.en
    assert "30 行疑似 X/Y 颠倒（交换后像是3度带第39带坐标）" in err.zh
    assert "18 行像是3度带第39带坐标" in err.zh and "1 行坐标为 0" in err.zh and "1 行像是经纬度" in err.zh
    assert "30 look like 3-degree Gauss-Kruger zone 39 with X and Y swapped" in err.en
    assert "18 look like 3-degree Gauss-Kruger zone 39" in err.en and "1 look like lon/lat" in err.en
    assert "--crs" in err.zh and "--crs" in err.en and ".prj" in err.en
    assert err.details["rows"] == 50


@pytest.mark.parametrize(
    ("epsg", "swap"),
    [
        (4548, True),
        (4527, True),
        (4490, True),
        (4326, True),
        (3857, True),
        (XIAN80_GK_CM117, True),
        (4498, False),
    ],
)
def test_fit_rows_of_a_declared_crs(epsg: int, swap: bool) -> None:
    x, y = project(epsg if epsg != XIAN80_GK_CM117 else 4548, *demo_lonlat(20))
    if epsg == 4498:  # 6-degree zone 20: a row of zone 19
        x[5] -= 1e6
    else:
        x[5], y[5] = y[5], x[5]
    x[6], y[6] = 0.0, y[6]
    fit = fit_rows(pyproj.CRS.from_epsg(epsg), x, y, x, y)
    assert fit is not None and (fit.fit, fit.total) == (18, 20)
    assert fit.codes[5] == (MISFIT_SWAPPED if swap else MISFIT_ZONE + 19) and fit.codes[6] == MISFIT_ZERO


def test_fit_rows_of_a_custom_transverse_mercator() -> None:
    custom = pyproj.CRS.from_proj4(
        "+proj=tmerc +lat_0=0 +lon_0=118.5 +k=1 +x_0=500000 +y_0=0 +ellps=GRS80 +units=m"
    )
    lon, lat = demo_lonlat(10)
    x, y = (np.asarray(v) for v in transformer(pyproj.CRS.from_epsg(4490), custom).transform(lon, lat))
    x[0], y[0] = y[0], x[0]
    fit = fit_rows(custom, x, y, x, y)
    assert fit is not None and fit.codes.tolist() == [MISFIT_SWAPPED] + [0] * 9


def test_fit_rows_judges_nothing_for_a_crs_away_from_china() -> None:
    assert fit_rows(pyproj.CRS.from_epsg(32633), [500_000.0], [5e6], [500_000.0], [5e6]) is None  # UTM 33N


def test_declared_mismatch_says_what_the_rows_look_like() -> None:
    x, y = project(4527, *demo_lonlat(10))
    fit = fit_rows(pyproj.CRS.from_epsg(4490), x, y, x, y)
    assert fit is not None and fit.fit == 0
    err = declared_mismatch("EPSG:4490 China Geodetic Coordinate System 2000", "override", fit, (x, y, x, y))
    assert err.code == "crs_mismatch"
    assert "10 行中只有 0 行符合" in err.zh and "10 行像是3度带第39带坐标" in err.zh
    assert "only 0 of 10 rows" in err.en and "10 look like 3-degree Gauss-Kruger zone 39" in err.en


@pytest.mark.parametrize(
    "code",
    [
        MISFIT_ZERO,
        MISFIT_SWAPPED,
        MISFIT_LONLAT,
        MISFIT_UNPREFIXED,
        MISFIT_LARGE,
        MISFIT_OUTSIDE,
        MISFIT_ZONE + 38,
    ],
)
def test_misfit_reasons_are_bilingual_and_quote_the_coordinates(code: int) -> None:
    zh, en = misfit_reason(code)
    assert zh.startswith("坐标「{v}」") and "'{v}'" in en
    if code == MISFIT_SWAPPED:
        assert "X/Y 颠倒" in zh and "X and Y look swapped" in en
    if code == MISFIT_ZONE + 38:
        assert "另一投影带（第 38 带）" in zh and "another zone (38)" in en


def test_row_kinds_of_stray_values_raise_no_warning() -> None:
    values = np.array([np.nan, np.inf, -np.inf, 1e308, -1e308, 0.0, 5e-324])
    kinds = row_kinds(values, values[::-1], values, values[::-1])
    assert kinds.dtype == np.int16 and kinds.shape == values.shape


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


@pytest.mark.slow
@HYPO
@given(st.floats(73.0, 135.0), st.floats(3.0, 54.0))
def test_gcj02_round_trip_property(lon: float, lat: float) -> None:
    glon, glat = wgs84_to_gcj02(lon, lat)
    wlon, wlat = gcj02_to_wgs84(glon, glat)
    assert abs(float(wlon) - lon) < 1e-7  # about 1 cm
    assert abs(float(wlat) - lat) < 1e-7


@pytest.mark.slow
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
