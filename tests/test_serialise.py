"""Statistics as CSV and JSON written column by column (geo.output.columnar): the same cells and
values as an independent computation from the tally frame, on a real store through the real app,
with units without data (NaN rates), fractional rates and names holding commas, quotes, line
ends, formula starts and markup."""

from __future__ import annotations

import csv
import io
import json
import math
from typing import Any

import numpy as np
import pandas as pd
import pytest

from geo.figures.tally import tally
from geo.output.columnar import csv_column, json_column, json_rows
from geo.output.tables import csv_value, plain_value
from geo.store.backends import open_store
from tests.helpers.builders import X0, Y0, grid_frame, points_frame, write_shp

#: Unit names no writer may break: separators, quotes, a line end, a formula, markup, nothing.
NAMES = ["网格,一", '网格"二"', "网格\n三", "=SUM(A1)", "<b>网格&五</b>", "", "网格七", "-2+3", "网格九"]


@pytest.fixture(scope="module")
def hostile_app(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The app (sign-in off) on a store whose unit names are :data:`NAMES`, with three
    demolition sites in the first unit (one completed: a rate of 1/3, areas with decimals)
    and one in the fifth; the other units have no data."""
    from geo.imports.importer import import_file
    from server import create_app

    tmp_path = tmp_path_factory.mktemp("serialise")
    grid = grid_frame()
    grid["网格名称"] = NAMES
    data = tmp_path / "store"
    with open_store(data) as s:
        import_file(s, "grid", write_shp(grid, tmp_path / "g" / "g.shp"))
        sites = points_frame(
            [(X0 + 20, Y0 - 20), (X0 + 50, Y0 - 50), (X0 + 80, Y0 - 80), (X0 + 150, Y0 - 150)],
            案件编号=["A1", "A2", "A3", "B1"],
            当前状态=["已拆除", "已登记", "已登记", "已拆除"],
            违建面积=[12.5, 7.25, 100.0, 0.1],
        )
        import_file(s, "demolition", write_shp(sites, tmp_path / "s" / "s.shp"))
    return create_app(
        {"GRIDWATCH_DATA": str(data), "TESTING": True, "LOGIN_DISABLED": True, "WTF_CSRF_ENABLED": False}
    )


def _frame(app: Any) -> pd.DataFrame:
    with open_store(app.config["GRIDWATCH_DATA"]) as s:
        return tally(s)


@pytest.mark.slow
def test_the_store_holds_the_hostile_names(hostile_app: Any) -> None:
    table = _frame(hostile_app)
    names = [n if isinstance(n, str) else "" for n in table["name"]]
    assert set(NAMES) - {""} <= set(names)
    rates = table["demolition_rate"].to_numpy()
    assert np.isnan(rates).any() and (rates == 1 / 3).any()  # units without data and a real fraction


def _expected_csv(table: pd.DataFrame) -> list[list[str]]:
    """The CSV cells from pandas' own writer: rates rounded to 3 decimals, formula text quoted
    with a leading ``'``, NaN empty."""
    t = table.copy()
    for c in t.columns:
        if str(c).endswith(("_rate", "_progress")):
            t[c] = t[c].astype("float64").round(3)
        elif t[c].dtype == object or pd.api.types.is_string_dtype(t[c].dtype):
            t[c] = [
                ("'" + v if v[:1] in ("=", "+", "-", "@", "\t", "\r", "\n") else v)
                if isinstance(v, str)
                else v
                for v in t[c]
            ]
    text = t.to_csv(index=False, lineterminator="\r\n")
    return list(csv.reader(io.StringIO(text)))


def _same_cell(got: str, want: str) -> bool:
    if got == want:
        return True
    try:
        return float(got) == float(want)  # pandas writes 3.0 where the export writes 3
    except ValueError:
        return False


@pytest.mark.slow
@pytest.mark.parametrize("headers", ["code", "zh", "en"])
def test_csv_has_the_cells_of_an_independent_computation(hostile_app: Any, headers: str) -> None:
    table = _frame(hostile_app)
    r = hostile_app.test_client().get(f"/api/stats?format=csv&level=grid&headers={headers}")
    assert r.status_code == 200
    raw = r.data
    assert raw.startswith(b"\xef\xbb\xbf")  # Excel and WPS read it as UTF-8
    text = raw.decode("utf-8-sig")
    assert (
        text.endswith("\r\n") and "\r\n" in text and '"网格\n三"' in text
    )  # the line end kept inside quotes
    assert text.count("\r\n") == len(table) + 1  # one line per unit: no record broken
    got = list(csv.reader(io.StringIO(text)))
    want = _expected_csv(table)
    if headers == "code":
        assert got[0] == want[0]
    else:
        assert got[0] != want[0] and len(got[0]) == len(want[0])
        assert ("编码" if headers == "zh" else "Code") in got[0]
    assert len(got) == len(want)
    bad = [
        (i, want[0][j], g, w)
        for i, (grow, wrow) in enumerate(zip(got[1:], want[1:], strict=True), 1)
        for j, (g, w) in enumerate(zip(grow, wrow, strict=True))
        if not _same_cell(g, w)
    ]
    assert not bad
    name = want[0].index("name")
    assert "'=SUM(A1)" in [row[name] for row in got] and "'-2+3" in [row[name] for row in got]
    rate = want[0].index("demolition_rate")
    assert "0.333" in [row[rate] for row in got] and "" in [row[rate] for row in got]
    back = pd.read_csv(io.BytesIO(raw), encoding="utf-8-sig", dtype=str, keep_default_na=False)
    assert len(back) == len(table)


def _python_rows(table: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as Python values straight from pandas: NaN as None, numbers as int or float."""
    out = []
    for rec in table.astype(object).to_dict("records"):
        row = {}
        for k, v in rec.items():
            if isinstance(v, np.generic):
                v = v.item()
            if v is None or (isinstance(v, float) and math.isnan(v)):
                v = None
            row[str(k)] = v
        out.append(row)
    return out


def _typed(rows: list[dict[str, Any]]) -> list[dict[str, tuple[str, Any]]]:
    return [{k: (type(v).__name__, v) for k, v in row.items()} for row in rows]


@pytest.mark.slow
def test_json_rows_are_the_frame_value_for_value(hostile_app: Any) -> None:
    table = _frame(hostile_app)
    r = hostile_app.test_client().get("/api/stats?format=json&level=grid")
    assert r.status_code == 200
    assert b"<" not in r.data and b"&" not in r.data  # markup written as \u003c, \u0026
    doc = json.loads(r.data)
    assert _typed(doc["rows"]) == _typed(_python_rows(table))  # 3 stays an int, 3.0 a float, NaN null
    assert list(doc["rows"][0]) == [str(c) for c in table.columns]
    old = json.dumps(_python_rows(table), ensure_ascii=False)
    for ch, esc in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        old = old.replace(ch, esc)
    assert json_rows(table).decode("utf-8") == old  # the very text json.dumps writes
    assert "fields" not in doc


@pytest.mark.slow
def test_compact_rows_are_the_text_json_dumps_writes(hostile_app: Any) -> None:
    table = _frame(hostile_app)
    table["ints_after_text"] = np.arange(len(table), dtype=np.int64)  # a second run of numbers
    for rows in (table, table.head(1), table[["demolition_total"]], table[["code", "name"]]):
        want = json.dumps(
            [list(r.values()) for r in _python_rows(rows)], ensure_ascii=False, separators=(",", ":")
        )
        for ch, esc in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
            want = want.replace(ch, esc)
        assert json_rows(rows, arrays=True).decode("utf-8") == want


@pytest.mark.slow
def test_compact_json_is_the_same_rows_as_arrays(hostile_app: Any) -> None:
    client = hostile_app.test_client()
    full = client.get("/api/stats?format=json&level=grid").get_json()
    r = client.get("/api/stats?format=json&level=grid&rows=arrays")
    assert r.status_code == 200
    compact = r.get_json()
    assert compact["fields"] == list(full["rows"][0])
    assert all(isinstance(row, list) for row in compact["rows"])
    assert _typed([dict(zip(compact["fields"], row, strict=True)) for row in compact["rows"]]) == _typed(
        full["rows"]
    )
    assert {k: v for k, v in compact.items() if k not in ("rows", "fields")} == {
        k: v for k, v in full.items() if k != "rows"
    }
    rows_text = len(json.dumps(compact["rows"], ensure_ascii=False))
    assert rows_text < len(json.dumps(full["rows"], ensure_ascii=False)) / 2


@pytest.mark.slow
def test_a_bad_rows_value_is_a_clear_400(hostile_app: Any) -> None:
    r = hostile_app.test_client().get("/api/stats?format=json&rows=tables")
    assert r.status_code == 400
    assert r.get_json()["error"] == "bad_parameter"
    assert "rows" in r.get_json()["message"]


EDGE_FLOATS = [
    0.0,
    -0.0,
    1.0,
    0.1,
    1 / 3,
    2 / 3,
    0.00005,
    1e-4,
    1580.9,
    1e10 + 0.5,
    1.5e16,
    1e300,
    math.nan,
    math.inf,
]


@pytest.mark.parametrize(
    "values",
    [
        pd.Series(EDGE_FLOATS),
        pd.Series([0.0, 1.0, 25.0, math.nan]),  # whole floats
        pd.Series([0.5, 0.25, 3.0]),
        pd.Series([1, -2, 2**62], dtype="int64"),
        pd.Series(
            ["a", None, "", "x,y", 'q"r', "l\nm", "\\", "\x01", "<&>", "-1", "@x", "中文"], dtype=object
        ),
        pd.Series(["a", "b"], dtype="str"),
        pd.Series([True, None, 3, 2.5, "t"], dtype=object),
        pd.Series([True, False]),
        pd.Series([], dtype="float64"),
    ],
)
def test_column_texts_are_the_per_cell_helpers(values: pd.Series) -> None:
    """Every cell's text made by Arrow is the per-cell helpers' text (``csv_value``,
    ``json.dumps(plain_value(v))``), edge values included."""
    want_json = [json.dumps(plain_value(v), ensure_ascii=False) for v in values.to_numpy(dtype=object)]
    for ch, esc in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        want_json = [t.replace(ch, esc) for t in want_json]
    assert json_column(values).to_pylist() == want_json
    want_csv = [csv_value(v) for v in values.to_numpy(dtype=object)]
    got_csv = [("" if v is None else str(v)) for v in csv_column(values).to_pylist()]
    if values.dtype.kind == "f":  # Arrow writes the numbers itself; compare what it writes
        import pyarrow as pa
        import pyarrow.csv as pacsv

        buf = io.BytesIO()
        pacsv.write_csv(
            pa.table({"c": csv_column(values)}),
            buf,
            pacsv.WriteOptions(include_header=False, quoting_style="none"),
        )
        got_csv = buf.getvalue().decode().split("\n")[:-1]
    elif values.dtype.kind == "b":
        got_csv = [str(v) for v in csv_column(values).to_pylist()]
    assert got_csv == want_csv


def test_a_numeric_columns_text_is_kept_by_its_values() -> None:
    counts = pd.Series(np.array([3, 0, 250], dtype=np.int64))
    first = csv_column(counts)
    assert csv_column(counts.copy()) is first  # the same values: the text kept
    other = csv_column(pd.Series(np.array([3, 0, 251], dtype=np.int64)))
    assert other is not first and other.to_pylist() == ["3", "0", "251"]
    assert csv_column(counts) is not first  # one text per column: the newer values replaced it
    named = csv_column(pd.Series(np.array([3, 0, 250], dtype=np.int64), name="demolition_total"))
    assert csv_column(counts) is not named and named.to_pylist() == ["3", "0", "250"]
    wide = csv_column(pd.Series(np.array([3, 0, 2**40], dtype=np.int64)))  # not narrowed
    assert wide.to_pylist() == ["3", "0", str(2**40)]
    shorter = json_column(pd.Series(np.array([3, 0], dtype=np.int64)))
    assert shorter.to_pylist() == ["3", "0"]


def _json_rows_before(table: pd.DataFrame) -> bytes:
    """The default rows as :func:`json_rows` joined them before (one keyed array per column,
    joined by ``, ``, then ``}``, then the rows as a list): the reference of the shape."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from geo.output.columnar import _encode_str, _markup_free

    n = len(table)
    cols = [json_column(table[c]) for c in table.columns]
    keyed = []
    for i, (c, col) in enumerate(zip(table.columns, cols, strict=True)):
        key = ("{" if i == 0 else "") + _markup_free(_encode_str(str(c))) + ": "
        keyed.append(pc.binary_join_element_wise(key, col, ""))
    rows = pc.binary_join_element_wise(*keyed, ", ")
    rows = pc.binary_join_element_wise(rows, "}", "")
    rows = pc.cast(rows, pa.large_string())
    one = pa.LargeListArray.from_arrays(pa.array([0, n], type=pa.int64()), rows)
    return b"[" + pc.binary_join(one, pa.scalar(", ", pa.large_string()))[0].as_buffer().to_pybytes() + b"]"


@pytest.mark.parametrize("large", [False, True])
def test_default_rows_are_byte_for_byte_those_of_the_renderer_before(
    large: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    from geo.output import columnar

    if large:  # the 64-bit path of tables beyond 2 GiB of text
        monkeypatch.setattr(columnar, "LARGE_ROWS_BYTES", 0)
    rng = np.random.default_rng(7)
    n = 257
    table = pd.DataFrame(
        {
            "code": [f"3402910010010{k:02d}" for k in range(n)],
            "name": [None if k % 5 == 0 else f'网格<{k}>&,"{k}"' for k in range(n)],
            "level": ["grid"] * n,
            "a_total": rng.integers(0, 10_000, n),
            "a_rate": np.where(rng.random(n) < 0.2, np.nan, rng.random(n)),
            "a_area_m2": rng.random(n) * 1e6,
            "b\u00e9<x>": rng.integers(-5, 5, n).astype("int32"),
            "edge": (EDGE_FLOATS * (n // len(EDGE_FLOATS) + 1))[:n],
        }
    )
    for sample in (table, table.head(1), table[["a_total"]], table[["name"]], table.iloc[100:140]):
        assert json_rows(sample) == _json_rows_before(sample)
    assert json.loads(json_rows(table))[5]["name"] is None
