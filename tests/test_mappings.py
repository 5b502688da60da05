"""Value mappings a bureau can see and correct: the value table of every import report, mappings
given with ``--map`` / ``--value-map`` and remembered per layer, unrecognised statuses kept and
counted apart, undated completions told apart, and dry runs that say what the commit will do."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from geo.cli import main
from geo.errors import InputError
from geo.figures.tally import tally
from geo.imports.commit import commit_import
from geo.imports.importer import import_file, prepare_import
from geo.reading.mappings import parse_map, read_value_map
from geo.store.backends import open_store
from layers import demolition
from tests.helpers.builders import X0, Y0, grid_frame, points_frame, write_shp

SPEC = demolition.LAYER
#: What the issue found counted as demolished, and a typo of the real thing.
MESSY = ["暂缓拆除", "待拆除", "不予拆除", "拆除未完成", "部分拆除", "己拆除"]


def survey(statuses: list[str], prefix: str = "S", done_on: str | None = "2022-05-01") -> gpd.GeoDataFrame:
    n = len(statuses)
    return points_frame(
        [(X0 + 10 + (i % 28) * 10, Y0 - 10 - (i // 28) * 10) for i in range(n)],
        案件编号=[f"{prefix}{i:03d}" for i in range(n)],
        当前状态=statuses,
        发现时间=["2022-01-10"] * n,
        拆除时间=[done_on or ""] * n,
    )


@pytest.fixture
def data(tmp_path: Path) -> str:
    store_dir = str(tmp_path / "store")
    assert (
        main(["--data", store_dir, "import", "grid", str(write_shp(grid_frame(), tmp_path / "g" / "g.shp"))])
        == 0
    )
    return store_dir


def _table(report: dict, field: str = "status") -> dict[str | None, dict]:
    entry = next(e for e in report["value_mappings"] if e["field"] == field)
    return {v["raw"]: v for v in entry["values"]}


def _district(data: str) -> dict:
    with open_store(data) as store:
        row = tally(store, "district", ["demolition"]).iloc[0]
    return row.to_dict()


@pytest.mark.slow
def test_messy_statuses_count_as_done_only_once_someone_maps_them(tmp_path, data, capsys):
    """The issue's walk-through: a GBK shapefile whose statuses include deferred, refused,
    unfinished and partial demolitions and the typo 己拆除."""
    statuses = ["已拆除"] * 20 + MESSY * 5
    shp = write_shp(survey(statuses), tmp_path / "s" / "违建台账.shp")
    assert main(["--data", data, "import", "demolition", str(shp), "--dry-run", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["status"] == "preview" and report["added"] == 50 and report["rejected_count"] == 0
    table = _table(report)
    assert (table["已拆除"]["code"], table["已拆除"]["how"], table["已拆除"]["count"]) == (
        "已拆除",
        "exact",
        20,
    )
    for raw in MESSY:
        assert table[raw]["code"] == "未识别" and table[raw]["count"] == 5, raw
    assert table["己拆除"]["suggestion"] == "已拆除"
    assert all(table[raw]["suggestion"] is None for raw in MESSY[:-1])
    # the text report lists the table too
    assert main(["--data", data, "import", "demolition", str(shp), "--dry-run"]) == 0
    text = capsys.readouterr().out
    assert "值对应 当前状态" in text and "暂缓拆除 → 未识别" in text and "建议: 已拆除" in text
    assert "新增 50" in text

    assert main(["--data", data, "import", "demolition", str(shp)]) == 0
    capsys.readouterr()
    district = _district(data)
    assert (district["demolition_total"], district["demolition_completed"]) == (50, 20)
    assert district["demolition_unrecognised"] == 30
    with open_store(data) as store:
        rows = store.read_attributes(SPEC)
    kept = rows[rows["status"] == "未识别"]
    assert sorted(set(kept["status_raw"])) == sorted(MESSY)  # the text as written, beside the code

    # someone maps them: the same file again, with two mappings
    assert (
        main(
            [
                "--data",
                data,
                "import",
                "demolition",
                str(shp),
                "--map",
                "当前状态:己拆除=已拆除",
                "--map",
                "status:暂缓拆除=Notice served",
                "--json",
            ]
        )
        == 0
    )
    report = json.loads(capsys.readouterr().out)
    assert report["status"] == "committed" and report["updated"] == 10 and report["unchanged"] == 40
    assert _table(report)["己拆除"]["how"] == "manual" and report["mappings_remembered"] == 2
    district = _district(data)
    assert (district["demolition_completed"], district["demolition_unrecognised"]) == (25, 20)

    # the next file finds them remembered
    later = write_shp(survey(["己拆除", "暂缓 拆除", "待拆除"], prefix="L"), tmp_path / "l" / "l.shp")
    assert main(["--data", data, "import", "demolition", str(later), "--json"]) == 0
    table = _table(json.loads(capsys.readouterr().out))
    assert (table["己拆除"]["code"], table["己拆除"]["how"]) == ("已拆除", "remembered")
    assert (table["暂缓 拆除"]["code"], table["暂缓 拆除"]["how"]) == ("已下发通知", "remembered")
    assert table["待拆除"]["code"] == "未识别"

    # listed, and removable: a removed mapping no longer applies, and stays listed with --all
    assert main(["--data", data, "mappings", "--json"]) == 0
    maps = json.loads(capsys.readouterr().out)
    assert {(m["raw"], m["code"]) for m in maps} == {("己拆除", "已拆除"), ("暂缓拆除", "已下发通知")}
    typo = next(m for m in maps if m["raw"] == "己拆除")
    assert main(["--data", data, "mappings", "remove", "--id", str(typo["id"])]) == 0
    assert main(["--data", data, "mappings", "remove", "--id", str(typo["id"])]) == 2  # already removed
    capsys.readouterr()
    again = write_shp(survey(["己拆除"], prefix="M"), tmp_path / "m" / "m.shp")
    assert main(["--data", data, "import", "demolition", str(again), "--dry-run", "--json"]) == 0
    assert _table(json.loads(capsys.readouterr().out))["己拆除"]["code"] == "未识别"
    assert main(["--data", data, "mappings", "--all", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert next(m for m in listed if m["id"] == typo["id"])["removed_at"] is not None
    # every change of a mapping is in the audit trail
    with open_store(data) as store:
        actions = [e.action for e in store.audit_entries(limit=50)]
    assert actions.count("mapping_add") == 2 and actions.count("mapping_remove") == 1


def test_value_map_file_utf8_bom_and_gbk(tmp_path, data, capsys):
    shp = write_shp(survey(["暂缓拆除", "己拆除", "拆除未完成"]), tmp_path / "s" / "s.shp")
    utf8 = tmp_path / "值对应.csv"
    utf8.write_text(
        "字段,原值,映射为\r\n当前状态,暂缓拆除,已下发通知\r\n当前状态,己拆除,已拆除\r\n", encoding="utf-8-sig"
    )
    gbk = tmp_path / "map_gbk.csv"
    gbk.write_bytes("field,raw,code\nstatus,拆除未完成,拆除中\n".encode("gbk"))
    assert read_value_map(gbk) == [("status", "拆除未完成", "拆除中")]
    args = [
        "--data",
        data,
        "import",
        "demolition",
        str(shp),
        "--value-map",
        str(utf8),
        "--value-map",
        str(gbk),
    ]
    assert main([*args, "--no-remember", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    table = _table(report)
    assert {raw: v["code"] for raw, v in table.items()} == {
        "暂缓拆除": "已下发通知",
        "己拆除": "已拆除",
        "拆除未完成": "拆除中",
    }
    assert report["mappings_remembered"] == 0
    assert main(["--data", data, "mappings", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []


@pytest.mark.parametrize(
    ("content", "why"),
    [
        ("原值,映射为\n暂缓拆除,已下发通知\n", "列"),
        ("字段,原值,映射为\n当前状态,,已下发通知\n", "空"),
        ("字段,原值,映射为\n当前状态,暂缓拆除,拆了\n", "不是可选的值"),
        ("字段,原值,映射为\n面积,暂缓拆除,已拆除\n", "取值表"),
        ("字段,原值,映射为\n没有的字段,暂缓拆除,已拆除\n", "没有字段"),
    ],
)
def test_bad_value_map_files_exit_2_before_anything_is_read(tmp_path, data, capsys, content, why):
    path = tmp_path / "map.csv"
    path.write_text(content, encoding="utf-8")
    shp = write_shp(survey(["暂缓拆除"]), tmp_path / "s" / "s.shp")
    assert main(["--data", data, "import", "demolition", str(shp), "--value-map", str(path)]) == 2
    err = capsys.readouterr().err
    assert why in err and err.count("\n") == 1 and "Traceback" not in err
    with open_store(data) as store:
        assert store.batches("demolition") == []


def test_value_map_files_that_are_no_tables_are_refused(tmp_path):
    big = tmp_path / "big.csv"
    big.write_bytes(b"field,raw,code\n" + b"status,x,y\n" * 200_000)
    with pytest.raises(InputError, match="too large"):
        read_value_map(big)
    binary = tmp_path / "bin.csv"
    binary.write_bytes(b"field,raw,code\n\x00\xff\xfe")
    with pytest.raises(InputError):
        read_value_map(binary)


@pytest.mark.parametrize("text", ["当前状态暂缓拆除=已拆除", "当前状态:暂缓拆除", ":x=y", "当前状态:=已拆除"])
def test_bad_map_arguments(text):
    with pytest.raises(InputError) as err:
        parse_map(text)
    assert err.value.code == "bad_mapping"


def test_map_argument_forms():
    assert parse_map("当前状态:暂缓拆除=已下发通知") == ("当前状态", "暂缓拆除", "已下发通知")
    assert parse_map("当前状态：a=b=已拆除") == ("当前状态", "a=b", "已拆除")  # full-width colon; last =
    assert parse_map("status:x:y=未识别") == ("status", "x:y", "未识别")


@pytest.mark.slow
def test_field_map_takes_a_second_date_column(tmp_path, data, capsys):
    frame = survey(["已拆除", "已拆除"], done_on=None)
    frame["处置日期"] = ["2022-05-01", "2022-06-01"]
    shp = write_shp(frame, tmp_path / "s" / "s.shp")
    assert main(["--data", data, "import", "demolition", str(shp), "--dry-run", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["completed_undated"] == 2 and "处置日期" in report["unmatched_fields"]
    assert (
        main(["--data", data, "import", "demolition", str(shp), "--field", "处置日期=done_on", "--json"]) == 0
    )
    report = json.loads(capsys.readouterr().out)
    assert report["completed_undated"] == 0 and report["field_mapping"]["处置日期"] == "done_on"
    with open_store(data) as store:
        assert sorted(store.read_attributes(SPEC)["done_on"]) == ["2022-05-01", "2022-06-01"]
    assert main(["--data", data, "import", "demolition", str(shp), "--field", "没有=done_on"]) == 2


@pytest.mark.slow
def test_undated_completions_are_counted_apart_and_said(tmp_path, data, capsys):
    frame = survey(["已拆除"] * 3 + ["已登记"], done_on=None)
    frame.loc[0, "拆除时间"] = "2022-03-01"
    shp = write_shp(frame, tmp_path / "s" / "s.shp")
    assert main(["--data", data, "import", "demolition", str(shp), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["completed_undated"] == 2
    assert any("导入当天" in w["zh"] and "day of the import" in w["en"] for w in report["warnings"])
    with open_store(data) as store:
        grid = tally(store, "grid", ["demolition"])
        as_of = tally(store, "grid", ["demolition"], as_of="2022-12-31")
    assert grid["demolition_completed_undated"].sum() == 2 and grid["demolition_completed"].sum() == 3
    # as of a day before the import, only the dated one is done; the undated count from the import day
    assert as_of["demolition_completed"].sum() == 1 and as_of["demolition_completed_undated"].sum() == 0


@pytest.mark.slow
def test_unrecognised_and_undated_columns_match_an_independent_count(tmp_path):
    """Per unit, the two new columns equal a plain spatial join and count of the stored rows."""
    rng = np.random.default_rng(7)
    n = 200
    statuses = rng.choice(["已拆除", "已登记", "暂缓拆除", "己拆除", "拆除中", "xx"], size=n).tolist()
    frame = survey(statuses)
    frame["拆除时间"] = np.where(rng.random(n) < 0.4, "", "2022-04-01")
    frame.geometry = shapely.points(
        np.column_stack([X0 + rng.uniform(1, 299, n), Y0 - rng.uniform(1, 299, n)])
    )
    with open_store(tmp_path / "st") as store:
        import_file(store, "grid", write_shp(grid_frame(), tmp_path / "g" / "g.shp"))
        import_file(store, "demolition", write_shp(frame, tmp_path / "s" / "s.shp"))
        table = tally(store, "grid", ["demolition"]).set_index("code")
    cells = grid_frame().rename(columns={"网格编码": "code"})[["code", "geometry"]]
    joined = gpd.sjoin(frame, cells, predicate="within")
    unknown = ~joined["当前状态"].isin([s.code for s in SPEC.statuses])
    undated = (joined["当前状态"] == "已拆除") & (joined["拆除时间"] == "")
    for code in cells["code"]:
        here = joined["code"] == code
        assert table.loc[code, "demolition_unrecognised"] == int((here & unknown).sum())
        assert table.loc[code, "demolition_completed_undated"] == int((here & undated).sum())
        assert table.loc[code, "demolition_total"] == int(here.sum())


@pytest.mark.slow
def test_same_file_with_other_mappings_is_no_duplicate(tmp_path, data, capsys):
    shp = write_shp(survey(["暂缓拆除", "已拆除"]), tmp_path / "s" / "s.shp")
    base = ["--data", data, "import", "demolition", str(shp), "--json", "--no-remember"]
    assert main(base) == 0
    assert json.loads(capsys.readouterr().out)["added"] == 2
    assert main(base) == 0
    assert json.loads(capsys.readouterr().out)["status"] == "duplicate"
    assert main([*base, "--map", "当前状态:暂缓拆除=已下发通知"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["status"] == "committed" and (report["updated"], report["unchanged"]) == (1, 1)


# --------------------------------------------------------------------------- dry run = commit

_STATUSES = ["已拆除", "已登记", "暂缓拆除", "拆除中", "己拆除"]


@pytest.mark.slow
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    first=st.lists(st.tuples(st.integers(0, 30), st.sampled_from(_STATUSES)), min_size=1, max_size=25),
    second=st.lists(
        st.tuples(st.integers(0, 40), st.sampled_from([*_STATUSES, "BAD-AREA"])), min_size=1, max_size=25
    ),
)
def test_property_dry_run_figures_are_what_the_commit_does(tmp_path_factory, first, second):
    """Whatever the store holds and the file brings (new ids, changed statuses, unchanged rows,
    repeated ids, bad values), the dry run's added/updated/unchanged/rejected equal the commit's."""
    tmp = tmp_path_factory.mktemp("dry")

    def frame(rows: list[tuple[int, str]]) -> gpd.GeoDataFrame:
        return points_frame(
            [(X0 + 5 + (i % 29) * 10, Y0 - 5 - (i // 29) * 10) for i, _ in rows],
            案件编号=[f"K{i}" for i, _ in rows],
            当前状态=["已登记" if s == "BAD-AREA" else s for _, s in rows],
            违建面积=["三十" if s == "BAD-AREA" else "12" for _, s in rows],
        )

    with open_store(tmp / "st") as store:
        import_file(store, "grid", write_shp(grid_frame(), tmp / "g" / "g.shp"))
        ok = [r for r in dict(first).items()]
        import_file(store, "demolition", write_shp(frame(ok), tmp / "a" / "a.shp"))
        path = write_shp(frame(second), tmp / "b" / "b.shp")
        revision = store.revision()
        try:
            dry = import_file(store, "demolition", path, dry_run=True)
        except InputError as exc:
            assert exc.code == "no_valid_rows"
            return
        assert store.revision() == revision  # nothing written
        prepared = prepare_import(store, "demolition", path)
        done = commit_import(store, prepared)
        if dry.status == "duplicate":  # the same file again: the commit finds it so too
            assert done.status == "duplicate"
            return
        assert dry.status == "preview" and done.status == "committed"
        assert (dry.added, dry.updated, dry.unchanged, dry.rejected_total) == (
            done.added,
            done.updated,
            done.unchanged,
            done.rejected_total,
        )
        assert len(store.read_attributes(SPEC)) == len(dict(ok)) + done.added


# --------------------------------------------------------------------------- the ledger


def test_ledger_shows_the_status_as_stored_and_as_surveyed(tmp_path, data, capsys):
    frame = survey(["暂缓拆除", "已拆除", '=HYPERLINK("x")'])
    shp = write_shp(frame, tmp_path / "s" / "s.shp")
    assert (
        main(["--data", data, "import", "demolition", str(shp), "--map", "当前状态:暂缓拆除=已下发通知"]) == 0
    )
    capsys.readouterr()
    out = tmp_path / "台账.csv"
    assert main(["--data", data, "ledger", "demolition", "--format", "csv", "-o", str(out)]) == 0
    table = pd.read_csv(out, encoding="utf-8-sig", dtype=str)
    columns = list(table.columns)
    assert columns.index("当前状态(原值)") == columns.index("当前状态") + 1
    assert {"所在单元网格", "导入批次", "经度", "纬度"} <= set(columns)
    pairs = set(zip(table["当前状态"], table["当前状态(原值)"], strict=True))
    assert pairs == {("已下发通知", "暂缓拆除"), ("已拆除", "已拆除"), ("未识别", '\'=HYPERLINK("x")')}
    assert main(["--data", data, "--lang", "en", "ledger", "demolition", "-o", str(tmp_path / "l.xlsx")]) == 0
    import openpyxl

    ws = openpyxl.load_workbook(tmp_path / "l.xlsx").active
    header = [c.value for c in ws[1]]
    assert "Status (as surveyed)" in header and ws.max_row == 4
    assert main(["--data", data, "ledger", "grid", "--format", "csv"]) == 2
    assert main(["--data", data, "ledger", "demolition", "--format", "xlsx"]) == 2  # binary: needs -o


@pytest.mark.slow
def test_ledger_through_the_api(tmp_path, make_app):
    store_dir = tmp_path / "st"
    with open_store(store_dir) as store:
        import_file(store, "grid", write_shp(grid_frame(), tmp_path / "g" / "g.shp"))
        import_file(store, "demolition", write_shp(survey(["己拆除", "已拆除"]), tmp_path / "s" / "s.shp"))
    client = make_app(store_dir, login=False).test_client()
    r = client.get("/api/ledger/demolition?format=geojson")
    assert r.status_code == 200
    doc = r.get_json()
    assert [f["properties"]["status_raw"] for f in doc["features"]] == ["己拆除", "已拆除"]
    assert doc["columns"]["status_raw"] == "当前状态(原值)"
    r = client.get("/api/ledger/demolition")
    assert r.status_code == 200 and r.data[:2] == b"PK"
    assert "attachment" in r.headers["Content-Disposition"]
    assert client.get("/api/ledger/demolition?format=pdf").status_code == 400
    assert client.get("/api/ledger/nosuch").status_code in (400, 404)
