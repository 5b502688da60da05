"""Cleaning survey values: the forms found in real Excel/WPS/DBF registers."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa
import pyogrio
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from openpyxl.utils.datetime import from_excel, to_excel

import layers
from geo.errors import InputError
from geo.reading.display import safe_display_name, terminal_safe
from geo.reading.fields import FieldMatch, match_fields, norm_key
from geo.reading.values import clean_text, parse_date, parse_dates, parse_month, parse_numbers
from geo.reading.vocab import UNRECOGNISED, is_qualified, map_vocab, resolve_code, suggest_code, vocab_key
from layers import charging, demolition, grid, parking

DEMOLITION = demolition.LAYER
FULL_WIDTH = str.maketrans("0123456789,.-", "０１２３４５６７８９，．－")


# --------------------------------------------------------------------------- norm_key


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ("违建面积", "违建面积"),
        (" 违建面积（㎡） ", "违建面积"),
        ("违建面积(m²)", "违建面积"),
        ("违建面积（平方米）", "违建面积"),
        ("违建面积[m2]", "违建面积"),
        ("Case_ID", "caseid"),
        ("case-id", "caseid"),
        ("Case Id", "caseid"),
        ("ＷＪＭＪ", "wjmj"),
        ("*案件编号", "案件编号"),
        ("AREA (m²)", "area"),
        ("", ""),
    ],
)
def test_norm_key(raw: str, key: str) -> None:
    assert norm_key(raw) == key


def test_norm_key_keeps_non_unit_brackets() -> None:
    assert norm_key("编号(旧)") != norm_key("编号")


# --------------------------------------------------------------------------- match_fields


def test_match_fields_register_headers() -> None:
    cols = ["序号", "违建编号", "违建地址", "违建面积（㎡）", "当前状态", "发现时间", "备注"]
    m = match_fields(cols, DEMOLITION)
    assert isinstance(m, FieldMatch)
    assert m.mapping == {
        "违建编号": "case_id",
        "违建地址": "address",
        "违建面积（㎡）": "area_m2",
        "当前状态": "status",
        "发现时间": "found_on",
    }
    assert m.unmatched == ["序号", "备注"]
    assert m.missing == ["structure", "position", "floors", "usage", "kind", "done_on"]


@pytest.mark.parametrize("cols", [["面积", "违建面积"], ["违建面积", "面积"]])
def test_match_fields_earlier_alias_wins_whatever_the_column_order(cols: list[str]) -> None:
    m = match_fields(cols, DEMOLITION)
    assert m.mapping == {"违建面积": "area_m2"}
    assert m.unmatched == ["面积"]


def test_match_fields_name_and_labels() -> None:
    m = match_fields(["case_id", "Address", "违建面积(m²)", "Area (m²)"], DEMOLITION)
    assert m.mapping == {"case_id": "case_id", "Address": "address", "违建面积(m²)": "area_m2"}
    assert m.unmatched == ["Area (m²)"]


def test_match_fields_full_width_pinyin_and_case() -> None:
    m = match_fields(["ＷＪＭＪ", "zt", "Fxsj", "wj_bh"], DEMOLITION)
    assert m.mapping == {"ＷＪＭＪ": "area_m2", "zt": "status", "Fxsj": "found_on", "wj_bh": "case_id"}


def test_match_fields_each_column_once_and_duplicate_keys() -> None:
    m = match_fields(["状态", "状态 ", "面积"], charging.LAYER)
    assert m.mapping == {"状态": "status", "面积": "area_m2"}
    assert m.unmatched == ["状态 "]


def test_match_fields_grid_file() -> None:
    m = match_fields(["网格编码", "网格名称", "所属社区", "所属街道", "网格员", "Shape_Area"], grid.LAYER)
    assert m.mapping == {
        "网格编码": "code",
        "网格名称": "name",
        "所属社区": "community",
        "所属街道": "street",
        "网格员": "worker",
        "Shape_Area": "area_m2",
    }
    assert m.unmatched == []


# --------------------------------------------------------------------------- parse_numbers


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        (12.5, 12.5),
        (12, 12.0),
        ("12.5", 12.5),
        ("12.5㎡", 12.5),
        ("12.5 m2", 12.5),
        ("12.5m²", 12.5),
        ("12.5 M2", 12.5),
        ("12.5平方米", 12.5),
        ("12.5平米", 12.5),
        ("1,250", 1250.0),
        ("1,250.75", 1250.75),
        ("12,345,678", 12345678.0),
        ("１２５０", 1250.0),
        ("１，２５０．５", 1250.5),
        (" 3 ", 3.0),
        ("\u30003\u3000", 3.0),
        ("约30", 30.0),
        ("30左右", 30.0),
        ("200余处", 200.0),
        ("-4.5", -4.5),
        ("－５", -5.0),
        ("1e3", 1000.0),
        (Decimal("2.5"), 2.5),
        (np.int64(7), 7.0),
    ],
)
def test_parse_numbers_accepts(raw: object, value: float) -> None:
    values, bad = parse_numbers(pd.Series([raw], dtype=object))
    assert values.dtype == np.float64
    assert values.iloc[0] == pytest.approx(value)
    assert not bad.iloc[0]


@pytest.mark.parametrize("raw", ["", "  ", None, np.nan, "-", "/", "无"])
def test_parse_numbers_empty_is_not_bad(raw: object) -> None:
    values, bad = parse_numbers(pd.Series([raw], dtype=object))
    assert np.isnan(values.iloc[0])
    assert not bad.iloc[0]


@pytest.mark.parametrize("raw", ["三十", "abc", "1,25", "12.5%", "1.2.3", "inf", float("inf"), True])
def test_parse_numbers_bad(raw: object) -> None:
    values, bad = parse_numbers(pd.Series([raw], dtype=object))
    assert np.isnan(values.iloc[0])
    assert bad.iloc[0]


def test_parse_numbers_keeps_index_and_handles_dtypes() -> None:
    idx = pd.Index([10, 20, 30])
    for s in (
        pd.Series(["1", None, "x"], index=idx),  # pandas string dtype
        pd.Series(["1", None, "x"], index=idx, dtype=object),
    ):
        values, bad = parse_numbers(s)
        assert list(values.index) == [10, 20, 30]
        assert values.iloc[0] == 1.0 and np.isnan(values.iloc[1])
        assert bad.tolist() == [False, False, True]
    values, bad = parse_numbers(pd.Series([1.5, np.nan, 3], index=idx))
    assert values.tolist()[0] == 1.5 and not bad.any()
    values, bad = parse_numbers(pd.Series([1, 2], dtype="Int64"))
    assert values.tolist() == [1.0, 2.0]
    values, bad = parse_numbers(pd.Series([], dtype=object))
    assert len(values) == 0 and len(bad) == 0


def test_parse_numbers_mixed_column_from_excel() -> None:
    s = pd.Series([120.5, "80㎡", "1,000平方米", None, "待测", 0], dtype=object)
    values, bad = parse_numbers(s)
    assert values.tolist()[:3] == [120.5, 80.0, 1000.0]
    assert np.isnan(values.iloc[3]) and np.isnan(values.iloc[4])
    assert values.iloc[5] == 0.0
    assert bad.tolist() == [False, False, False, False, True, False]
    assert bad.dtype == bool


_SUFFIXES = ["", "㎡", " ㎡", "m2", " m2", "m²", "平方米", " 平方米", "平米"]


@pytest.mark.slow
@settings(deadline=None, max_examples=200)
@given(
    st.lists(
        st.tuples(
            st.floats(min_value=-1e12, max_value=1e12, allow_nan=False, allow_infinity=False),
            st.sampled_from(_SUFFIXES),
            st.booleans(),
            st.booleans(),
        ),
        min_size=1,
        max_size=30,
    )
)
def test_parse_numbers_roundtrip_property(items: list[tuple[float, str, bool, bool]]) -> None:
    texts = []
    for x, suffix, full_width, prefixed in items:
        text = f"{x:,}{suffix}"  # shortest repr with thousands separators (exponent for tiny values)
        if full_width:
            text = text.translate(FULL_WIDTH)
        texts.append(("约" if prefixed else "") + text)
    values, bad = parse_numbers(pd.Series(texts))
    assert not bad.any(), [t for t, b in zip(texts, bad, strict=True) if b]
    for (x, *_), got in zip(items, values, strict=True):
        assert got == pytest.approx(x, rel=1e-9, abs=1e-300)


# --------------------------------------------------------------------------- parse_dates


@pytest.mark.parametrize(
    "raw",
    [
        dt.datetime(2022, 5, 25, 13, 45),
        dt.date(2022, 5, 25),
        pd.Timestamp("2022-05-25 08:00"),
        np.datetime64("2022-05-25"),
        "2022-05-25",
        "2022/5/25",
        "2022/05/25",
        "2022.5.25",
        "2022年5月25日",
        "2022年05月25日",
        "2022年5月25号",
        "２０２２年５月２５日",
        "20220525",
        "2022-05-25 13:45:00",
        "2022/5/25 13:45",
        "2022-05-25T13:45:00+08:00",
        " 2022-05-25 ",
        44706,
        44706.0,
        44706.75,
        "44706",
        20220525,
    ],
)
def test_parse_dates_accepts(raw: object) -> None:
    values, bad = parse_dates(pd.Series([raw], dtype=object))
    assert values.iloc[0] == "2022-05-25"
    assert not bad.iloc[0]


def test_excel_serial_matches_openpyxl() -> None:
    assert from_excel(44706).date() == dt.date(2022, 5, 25)


@pytest.mark.parametrize(
    ("raw", "iso"), [("2022年05月", "2022-05-01"), ("2022年5月", "2022-05-01"), ("2022-05", "2022-05-01")]
)
def test_parse_dates_month_only_is_first_day(raw: str, iso: str) -> None:
    values, bad = parse_dates(pd.Series([raw]))
    assert values.iloc[0] == iso and not bad.iloc[0]


@pytest.mark.parametrize("raw", ["", "  ", None, np.nan, pd.NaT, "-", "/"])
def test_parse_dates_empty_is_not_bad(raw: object) -> None:
    values, bad = parse_dates(pd.Series([raw], dtype=object))
    assert values.iloc[0] is None
    assert not bad.iloc[0]


@pytest.mark.parametrize(
    "raw",
    [
        "2022-13-45",
        "2022-02-29",
        "2022-04-31",
        "昨天",
        "二〇二二年五月",
        "1949-12-31",
        "2101-01-01",
        dt.date(1900, 1, 1),
        "2022",
        5,
        19999,  # below the serial range
        80001,
        True,
    ],
)
def test_parse_dates_bad(raw: object) -> None:
    values, bad = parse_dates(pd.Series([raw], dtype=object))
    assert values.iloc[0] is None
    assert bad.iloc[0]


def test_parse_dates_leap_day() -> None:
    values, bad = parse_dates(pd.Series(["2024-02-29", "2100-02-29", "2000-02-29"]))
    assert values.tolist() == ["2024-02-29", None, "2000-02-29"]
    assert bad.tolist() == [False, True, False]


def test_parse_dates_datetime64_columns() -> None:
    s = pd.Series(pd.to_datetime(["2022-05-25 13:45", None, "1900-01-01 00:00"]), index=[5, 6, 7])
    values, bad = parse_dates(s)
    assert values.dtype == object
    assert values.tolist() == ["2022-05-25", None, None]
    assert bad.tolist() == [False, False, True]
    assert list(values.index) == [5, 6, 7]
    tz = pd.Series(pd.to_datetime(["2022-05-25 23:30"]).tz_localize("Asia/Shanghai"))
    assert parse_dates(tz)[0].tolist() == ["2022-05-25"]


def test_parse_dates_numeric_column_of_serials() -> None:
    values, bad = parse_dates(pd.Series([44706.0, np.nan, 5.0]))
    assert values.tolist() == ["2022-05-25", None, None]
    assert bad.tolist() == [False, False, True]


def test_parse_dates_from_dbf_date_field(tmp_path: Path) -> None:
    """pyogrio returns DBF Date fields as datetime64; empty dates as NaT."""
    dates = pd.array([dt.date(2022, 5, 25), None], dtype=pd.ArrowDtype(pa.date32()))
    gdf = gpd.GeoDataFrame({"FXSJ": dates}, geometry=[shapely.Point(118.4, 31.3)] * 2, crs=4490)
    path = tmp_path / "sites.shp"
    pyogrio.write_dataframe(gdf, path, use_arrow=True)
    back = pyogrio.read_dataframe(path)
    assert pd.api.types.is_datetime64_any_dtype(back["FXSJ"].dtype)
    for s in (back["FXSJ"], back["FXSJ"].astype(object)):
        values, bad = parse_dates(s)
        assert values.tolist() == ["2022-05-25", None]
        assert not bad.any()


def test_parse_dates_keeps_the_wall_clock_date_of_aware_values() -> None:
    shanghai = dt.timezone(dt.timedelta(hours=8))
    late = dt.datetime(2022, 5, 25, 23, 30, tzinfo=shanghai)
    values, bad = parse_dates(pd.Series([late, pd.Timestamp(late), dt.date(2022, 5, 26)], dtype=object))
    assert values.tolist() == ["2022-05-25", "2022-05-25", "2022-05-26"]
    assert not bad.any()


def test_parse_dates_mixed_excel_column() -> None:
    s = pd.Series([dt.datetime(2022, 5, 25), "2022年6月1日", 44713, None, "待定"], dtype=object)
    values, bad = parse_dates(s)
    assert values.tolist() == ["2022-05-25", "2022-06-01", "2022-06-01", None, None]
    assert bad.tolist() == [False, False, False, False, True]


_DATE_FORMATS = [
    lambda d: d.isoformat(),
    lambda d: f"{d.year}/{d.month}/{d.day}",
    lambda d: f"{d.year}.{d.month}.{d.day}",
    lambda d: f"{d.year}年{d.month}月{d.day}日",
    lambda d: f"{d.year}年{d.month:02d}月{d.day:02d}日",
    lambda d: d.strftime("%Y%m%d"),
    lambda d: f"{d.isoformat()} 13:45:00",
    lambda d: f"{d.year}-{d.month}-{d.day}".translate(FULL_WIDTH),
    lambda d: dt.datetime(d.year, d.month, d.day, 9, 30),
    lambda d: pd.Timestamp(d),
    lambda d: d,
]


@pytest.mark.slow
@settings(deadline=None, max_examples=200)
@given(
    st.lists(
        st.tuples(
            st.dates(min_value=dt.date(1950, 1, 1), max_value=dt.date(2100, 12, 31)),
            st.integers(min_value=0, max_value=len(_DATE_FORMATS) - 1),
        ),
        min_size=1,
        max_size=30,
    )
)
def test_parse_dates_roundtrip_property(items: list[tuple[dt.date, int]]) -> None:
    raw = pd.Series([_DATE_FORMATS[i](d) for d, i in items], dtype=object)
    values, bad = parse_dates(raw)
    assert not bad.any()
    assert values.tolist() == [d.isoformat() for d, _ in items]


@pytest.mark.slow
@settings(deadline=None, max_examples=200)
@given(
    st.dates(min_value=dt.date(1954, 10, 3), max_value=dt.date(2100, 12, 31)),
    st.floats(min_value=0, max_value=0.999),
    st.sampled_from(["int", "float", "str"]),
)
def test_excel_serial_roundtrip_property(day: dt.date, time_of_day: float, form: str) -> None:
    serial = to_excel(dt.datetime(day.year, day.month, day.day))
    assert isinstance(serial, int | float) and 20000 <= serial <= 80000
    raw: object = {"int": int(serial), "float": serial + time_of_day, "str": str(int(serial))}[form]
    values, bad = parse_dates(pd.Series([raw], dtype=object))
    assert values.iloc[0] == day.isoformat() and not bad.iloc[0]


@settings(deadline=None, max_examples=100)
@given(st.dates(min_value=dt.date(1, 1, 1), max_value=dt.date(9999, 12, 31)))
def test_parse_dates_year_window_property(day: dt.date) -> None:
    values, bad = parse_dates(pd.Series([day.isoformat(), day], dtype=object))
    inside = 1950 <= day.year <= 2100
    assert values.tolist() == ([day.isoformat()] * 2 if inside else [None, None])
    assert bad.tolist() == [not inside] * 2


# --------------------------------------------------------------------------- map_vocab


def _one(
    raw: object, vocab: tuple = DEMOLITION.statuses, default: str | None = "已登记", **kw: dict
) -> tuple:
    result = map_vocab(pd.Series([raw], dtype=object), vocab, default, **kw)
    entry = result.values[0]
    return result.codes.iloc[0], entry.how, entry.suggestion


@pytest.mark.parametrize(
    ("raw", "code", "how"),
    [
        ("已拆除", "已拆除", "exact"),
        ("Demolished", "已拆除", "exact"),
        (" 已拆除 ", "已拆除", "exact"),
        ("已 拆 除。", "已拆除", "exact"),
        ("「已拆除」", "已拆除", "exact"),
        ("拆除", "已拆除", "alias"),
        ("DONE", "已拆除", "alias"),
        ("ｄｏｎｅ", "已拆除", "alias"),
        ("補辦手續", "已补办手续", "alias"),  # traditional characters
        ("已補辦手續", "已补办手续", "exact"),
        ("拆除中", "拆除中", "exact"),
        ("未拆除", "已登记", "alias"),
        ("in progress", "拆除中", "alias"),
        ("In-Progress", "拆除中", "alias"),
    ],
)
def test_map_vocab_exact_and_alias(raw: str, code: str, how: str) -> None:
    assert _one(raw)[:2] == (code, how)


#: Statuses that contain 拆除 (or 施划) without saying it is done.
QUALIFIED_DEMOLITION = [
    "暂缓拆除",
    "待拆除",
    "拟拆除",
    "不予拆除",
    "拆除未完成",
    "部分拆除",
    "不拆除",
    "尚未拆除完毕",
]


@pytest.mark.parametrize("raw", QUALIFIED_DEMOLITION)
def test_deferred_negated_or_partial_statuses_are_never_completed(raw: str) -> None:
    code, how, suggestion = _one(raw)
    assert code == UNRECOGNISED
    assert how in ("unrecognised", "suggested")
    assert suggestion not in DEMOLITION.completed_statuses


@pytest.mark.parametrize("raw", ["暂不施划", "施划中", "未施划完成", "計劃施劃"])
def test_parking_qualified_statuses_are_never_marked_out(raw: str) -> None:
    spec = parking.LAYER
    code, _, suggestion = _one(raw, spec.statuses, spec.default_status)
    assert code not in spec.completed_statuses
    assert suggestion not in spec.completed_statuses


@pytest.mark.parametrize(
    ("raw", "suggestion"),
    [
        ("已拆除完毕", "已拆除"),
        ("己拆除", "已拆除"),  # a typo: 己 for 已
        ("正在拆除中", "拆除中"),
        ("已下发整改通知", "已下发通知"),
        ("已下发通知，未拆除", None),  # two statuses: no proposal
        ("违章", None),
    ],
)
def test_containment_and_similarity_only_suggest(raw: str, suggestion: str | None) -> None:
    code, how, hint = _one(raw)
    assert code == UNRECOGNISED
    assert hint == suggestion
    assert how == ("suggested" if suggestion else "unrecognised")


@pytest.mark.parametrize("raw", ["", None, np.nan, "  ", "/", "—"])
def test_map_vocab_empty_gets_default(raw: object) -> None:
    assert _one(raw)[:2] == ("已登记", "empty")
    assert _one(raw, default=None)[:2] == (None, "empty")


def test_manual_wins_and_remembered_comes_after_exact_names() -> None:
    key = vocab_key("暂缓拆除")
    assert _one("暂缓拆除", manual={key: "已下发通知"})[:2] == ("已下发通知", "manual")
    assert _one("暂缓 拆除", remembered={key: "已下发通知"})[:2] == ("已下发通知", "remembered")
    # an exact name is not changed by a remembered mapping; only by one given for the import
    exact = vocab_key("已拆除")
    assert _one("已拆除", remembered={exact: "拆除中"})[:2] == ("已拆除", "exact")
    assert _one("已拆除", manual={exact: "拆除中"})[:2] == ("拆除中", "manual")


def test_map_vocab_table_counts_every_row_once() -> None:
    raw = ["已拆除", "暂缓拆除", "已拆除", None, "己拆除", "已拆除 ", "暂缓拆除", ""]
    result = map_vocab(pd.Series(raw, dtype=object, index=range(10, 18)), DEMOLITION.statuses, "已登记")
    assert result.codes.tolist() == [
        "已拆除",
        UNRECOGNISED,
        "已拆除",
        "已登记",
        UNRECOGNISED,
        "已拆除",
        UNRECOGNISED,
        "已登记",
    ]
    assert list(result.codes.index) == list(range(10, 18))
    assert result.raw.tolist() == ["已拆除", "暂缓拆除", "已拆除", None, "己拆除", "已拆除", "暂缓拆除", None]
    table = {(v.raw, v.code, v.how): v.count for v in result.values}
    assert table == {
        ("已拆除", "已拆除", "exact"): 3,
        ("暂缓拆除", UNRECOGNISED, "unrecognised"): 2,
        (None, "已登记", "empty"): 2,
        ("己拆除", UNRECOGNISED, "suggested"): 1,
    }
    assert sum(v.count for v in result.values) == len(raw)
    assert [v.count for v in result.values] == sorted((v.count for v in result.values), reverse=True)


def test_categories_are_mapped_the_same_way() -> None:
    position = DEMOLITION.categories[0].values
    s = pd.Series(["地上", "楼顶平台", "屋顶", "roof", "露台"], index=list("abcde"))
    result = map_vocab(s, position, None)
    # "楼顶平台" names two categories: unrecognised
    assert result.codes.tolist() == ["地面", UNRECOGNISED, "楼顶", "楼顶", "平台"]
    assert list(result.codes.index) == list("abcde")


def test_no_completed_status_word_holds_a_qualifier() -> None:
    """A layer's own words for a completed status must never look deferred or negated."""
    for spec in layers.all_layers():
        for status in spec.statuses:
            if status.completed:
                for word in (status.code, status.label_zh, status.label_en, *status.aliases):
                    assert not is_qualified(vocab_key(word)), (spec.name, word)


_WORDS = [w for st in DEMOLITION.statuses for w in (st.code, st.label_zh, *st.aliases)]
_QUALIFIERS = ["暂缓", "待", "拟", "不予", "不", "未", "尚未", "部分", "计划", "申请"]


@pytest.mark.slow
@settings(max_examples=300, deadline=None)
@given(
    before=st.sampled_from(["", *_WORDS]),
    qualifier=st.sampled_from(_QUALIFIERS),
    word=st.sampled_from(_WORDS),
    after=st.sampled_from(["", "完成", "完毕", "中", "。", "（已告知）", *_WORDS]),
    order=st.booleans(),
)
def test_property_a_qualified_value_never_maps_to_completed(
    before: str, qualifier: str, word: str, after: str, order: bool
) -> None:
    raw = before + (qualifier + word if order else word + qualifier) + after
    code, _, suggestion = _one(raw)
    assert code not in DEMOLITION.completed_statuses
    assert suggestion not in DEMOLITION.completed_statuses


def test_resolve_code_takes_codes_labels_and_unrecognised() -> None:
    assert resolve_code(DEMOLITION.statuses, "已拆除") == "已拆除"
    assert resolve_code(DEMOLITION.statuses, "Notice served") == "已下发通知"
    assert resolve_code(DEMOLITION.statuses, "未识别") == UNRECOGNISED
    assert resolve_code(DEMOLITION.statuses, "unrecognised") == UNRECOGNISED
    with pytest.raises(InputError) as err:
        resolve_code(DEMOLITION.statuses, "拆了")
    assert err.value.code == "bad_mapping"


def test_suggest_code_never_proposes_completed_for_qualified_text() -> None:
    assert suggest_code(vocab_key("已拆除完毕"), DEMOLITION.statuses) == "已拆除"
    assert suggest_code(vocab_key("拆除未完毕"), DEMOLITION.statuses) is None


# --------------------------------------------------------------------------- clean_text


def test_clean_text() -> None:
    s = pd.Series(
        [
            " 镜湖区 ",
            "\u3000赭山路1号\u3000",
            "",
            "   ",
            None,
            np.nan,
            123.0,
            12.5,
            7,
            "Cafe\u0301",
            340291001001001,
        ],
        dtype=object,
    )
    assert clean_text(s).tolist() == [
        "镜湖区",
        "赭山路1号",
        None,
        None,
        None,
        None,
        "123",
        "12.5",
        "7",
        "Café",
        "340291001001001",
    ]


def test_clean_text_float_id_column_and_dtypes() -> None:
    out = clean_text(pd.Series([1001.0, np.nan, 1002.0], index=[3, 4, 5]))
    assert out.dtype == object
    assert out.tolist() == ["1001", None, "1002"]
    assert list(out.index) == [3, 4, 5]
    assert clean_text(pd.Series(["a", None])).tolist() == ["a", None]
    assert clean_text(pd.Series([], dtype=object)).tolist() == []


# --------------------------------------------------------------------------- one date given by a person


@pytest.mark.parametrize(
    "text",
    ["2022-05-25", "20220525", "2022年5月25日", " 2022-05-25", "2022-05-25 ", "2022/5/25", "2022.5.25"],
)
def test_parse_date_takes_every_form_the_api_accepts(text: str) -> None:
    assert parse_date(text) == dt.date(2022, 5, 25)


def test_parse_date_none_blank_and_date_objects() -> None:
    assert parse_date(None) is None and parse_date("") is None and parse_date("  ") is None
    assert parse_date(dt.date(2021, 6, 30)) == dt.date(2021, 6, 30)
    assert parse_date(dt.datetime(2021, 6, 30, 13, 5)) == dt.date(2021, 6, 30)
    assert parse_month("2022年5月") == "2022-05" and parse_month("20220525") == "2022-05"


@pytest.mark.parametrize(
    "text",
    ["2022-13-01", "2022-02-30", "昨天", "1900-01-01", "2022-05-25\x00", "2022-05-25\n", "9" * 500, "\ud800"],
)
def test_parse_date_refuses_with_a_bilingual_400(text: str) -> None:
    with pytest.raises(InputError) as err:
        parse_date(text)
    assert err.value.code == "bad_date" and err.value.status == 400
    assert "\x00" not in err.value.zh and "\ud800" not in err.value.en and len(err.value.en) < 200


@given(st.text(max_size=30))
@settings(max_examples=200, deadline=None)
def test_parse_date_gives_a_date_or_a_clear_error(text: str) -> None:
    try:
        day = parse_date(text)
    except InputError as exc:
        assert exc.code == "bad_date"
    else:
        assert day is None or 1950 <= day.year <= 2100


# --------------------------------------------------------------------------- control characters


def test_clean_text_removes_nul_and_control_characters() -> None:
    raw = pd.Series(["A\x002", "x\x1b[31my", "\x00", "a\x85b\x7f", "行1\n行2", "a\ud800b"], dtype=object)
    out = clean_text(raw).tolist()
    assert out == ["A2", "x[31my", None, "ab", "行1\n行2", "a\ufffdb"]


@pytest.mark.slow
def test_nul_bytes_from_a_csv_are_not_stored(gridded_store, tmp_path: Path) -> None:
    from geo.imports.importer import import_file
    from layers import demolition as layer
    from tests.helpers.builders import LONLAT_TO_GK, X0, Y0

    lon, lat = LONLAT_TO_GK.transform(X0 + 50, Y0 - 50, direction="INVERSE")
    csv = tmp_path / "sites.csv"
    csv.write_bytes(f"案件编号,违建地址,经度,纬度\nA\x002,路\x1b[31m口,{lon},{lat}\n".encode())
    import_file(gridded_store, "demolition", csv)
    attrs = gridded_store.read_attributes(layer.LAYER, ["case_id", "address"])
    assert attrs["case_id"].tolist() == ["A2"] and attrs["address"].tolist() == ["路[31m口"]


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("报告\u202eslx.exe", "报告\ufffdslx.exe"),
        ("a\u2066b\u2069c\u200f", "a\ufffdb\ufffdc\ufffd"),
        ("x\x1b[2Jy\x00z\x9b", "x\ufffd[2Jy\ufffdz\ufffd"),
        ("违建台账.zip", "违建台账.zip"),
    ],
)
def test_safe_display_name(raw: str, shown: str) -> None:
    assert safe_display_name(raw) == shown


def test_terminal_safe_escapes_controls_and_bidi() -> None:
    assert terminal_safe("a\x1b[31mb\u202ec\nd\x85") == "a\\x1b[31mb\\u202ec\nd\\x85"
    assert terminal_safe("a\tb\nc", keep="") == "a\\x09b\\x0ac"
