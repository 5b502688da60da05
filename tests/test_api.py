"""The JSON API's non-upload routes with hostile and unusual input: dates in every accepted form,
ids past SQLite's integers, download names, and spreadsheet formulas in unit names."""

from __future__ import annotations

import csv
import io
from urllib.parse import quote, unquote

import numpy as np
import openpyxl
import pytest
import schemathesis
from schemathesis.specs.openapi.checks import response_schema_conformance

from geo.imports.importer import import_file
from geo.store.backends import open_store
from tests.helpers.builders import X0, Y0, dated_sites, grid_frame, points_frame, write_shp

#: Unit names a spreadsheet would run as formulas if written as they are.
FORMULAS = ['=HYPERLINK("http://x","y")', "+1", "-2+3", "@SUM(A1)", "\t=1"]
DATES = ["2022-05-25", "20220525", "2022年5月25日", " 2022-05-25", "2022/5/25"]


@pytest.fixture
def app(tmp_path, make_app):
    data = tmp_path / "store"
    grid = grid_frame()
    grid.loc[: len(FORMULAS) - 1, "网格名称"] = FORMULAS
    grid.loc[0, "所属社区"] = "@社区()"
    grid.loc[0, "所属街道"] = "-街道"
    with open_store(data) as store:
        import_file(store, "grid", write_shp(grid, tmp_path / "g" / "g.shp"))
        import_file(store, "demolition", write_shp(dated_sites(), tmp_path / "s" / "s.shp"))
    return make_app(data, login=False)


def _totals(client, as_of: str) -> tuple[int, int]:
    r = client.get(f"/api/stats?level=district&layer=demolition&as_of={quote(as_of)}")
    assert r.status_code == 200, r.get_json()
    row = r.get_json()["rows"][0]
    return row["demolition_total"], row["demolition_completed"]


@pytest.mark.slow
@pytest.mark.parametrize("as_of", DATES)
def test_stats_as_of_every_accepted_form(client, as_of):
    assert _totals(client, as_of) == (2, 1)
    assert client.get(f"/api/stats?format=json&as_of={quote(as_of)}").get_json()["as_of"] == "2022-05-25"


@pytest.mark.slow
def test_stats_before_the_first_data_month(client):
    assert _totals(client, "2021-06-30") == (0, 0)


@pytest.mark.slow
@pytest.mark.parametrize("as_of", ["2022-13-01", "昨天", "2022-05-25\x00", "9" * 300])
def test_bad_dates_are_a_bilingual_400(client, as_of):
    for url in (
        f"/api/stats?as_of={quote(as_of)}",
        f"/api/stats?format=xlsx&as_of={quote(as_of)}",
        f"/api/cells?as_of={quote(as_of)}",
        f"/api/features/demolition?bbox=118,31,119,32&as_of={quote(as_of)}",
    ):
        r = client.get(url)
        assert r.status_code == 400 and r.get_json()["error"] == "bad_date", url
        assert r.get_json()["message_zh"] != r.get_json()["message_en"]


@pytest.mark.slow
@pytest.mark.parametrize("as_of", DATES)
def test_download_name_from_the_parsed_date(client, as_of):
    for fmt, name in (
        ("xlsx", "gridwatch_all_2022-05-25.xlsx"),
        ("csv", "gridwatch_grid_2022-05-25.csv"),
        ("shp", "gridwatch_all_2022-05-25.zip"),
    ):
        r = client.get(f"/api/stats?format={fmt}&as_of={quote(as_of)}")
        assert r.status_code == 200
        header = r.headers["Content-Disposition"]
        header.encode("latin-1")  # a header that does not encode breaks the WSGI server (500)
        # the ASCII name for old clients, the bureau's name (layers, level, day) as RFC 5987
        ascii_part, utf8_part = header.split("; filename*=UTF-8''")
        assert ascii_part == f'attachment; filename="{name}"'
        assert (
            unquote(utf8_part) == f"违法建设+非机动车停放点+充电棚_单元网格_2022-05-25.{name.rsplit('.')[1]}"
        )


@pytest.mark.slow
@pytest.mark.parametrize("as_of", DATES)
def test_cells_and_features_take_every_date_form(client, as_of):
    cells = client.get(f"/api/cells?level=grid&zoom=16&as_of={quote(as_of)}")
    assert cells.status_code == 200
    base = client.get("/api/cells?level=grid&zoom=16&as_of=2022-05-25").get_json()
    assert cells.get_json() == base
    r = client.get(f"/api/features/demolition?bbox=118,31,119,32&zoom=18&as_of={quote(as_of)}")
    assert r.status_code == 200 and len(r.get_json()["features"]) == 2


@pytest.mark.slow
@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("GET", "/api/features/demolition/99999999999999999999"),
        ("GET", "/api/features/demolition/9223372036854775808"),
        ("GET", "/api/features/demolition/0"),
        ("GET", "/api/features/demolition/-1"),
        ("DELETE", "/api/batches/99999999999999999999"),
        ("DELETE", "/api/batches/9223372036854775808"),
        ("DELETE", "/api/batches/0"),
    ],
)
def test_ids_past_sqlite_integers_are_404(client, method, url):
    r = client.open(url, method=method)
    assert r.status_code == 404 and r.get_json()["error"] == "not_found"


def test_largest_id_is_looked_up(client):
    assert client.get("/api/features/demolition/9223372036854775807").status_code == 404
    assert client.delete("/api/batches/9223372036854775807").status_code == 404
    assert client.get("/api/features/demolition/1").status_code == 200


def _neutral(text: str) -> bool:
    return not text.startswith(("=", "+", "-", "@", "\t", "\r"))


@pytest.mark.slow
def test_stats_csv_neutralises_unit_names(client):
    for level in ("grid", "community", "street"):
        r = client.get(f"/api/stats?format=csv&level={level}")
        rows = list(csv.DictReader(io.StringIO(r.data.decode("utf-8-sig"))))
        for row in rows:
            for key in ("name", "parent_name", "code"):
                assert _neutral(row[key] or ""), (level, key, row[key])
    grid = list(csv.DictReader(io.StringIO(client.get("/api/stats?format=csv").data.decode("utf-8-sig"))))
    # names are stored trimmed ("\t=1" is "=1"), then neutralised
    assert [r["name"] for r in grid[: len(FORMULAS)]] == ["'" + f.strip() for f in FORMULAS]


@pytest.mark.slow
def test_stats_xlsx_neutralises_unit_names(client):
    wb = openpyxl.load_workbook(io.BytesIO(client.get("/api/stats?format=xlsx").data))
    seen = set()
    for ws in wb.worksheets:
        for row in ws.iter_rows():
            for cell in row:
                assert cell.data_type != "f", (ws.title, cell.coordinate, cell.value)
                if isinstance(cell.value, str):
                    assert cell.data_type == "s" and _neutral(cell.value), (ws.title, cell.value)
                    seen.add(cell.value)
    assert {"'" + f.strip() for f in FORMULAS} <= seen and "'@社区()" in seen and "'-街道" in seen


@pytest.fixture
def crowded(tmp_path, make_app):
    """1,600 sites in view: more than the features endpoint sends one by one."""
    data = tmp_path / "crowded"
    rng = np.random.default_rng(11)
    n = 1600
    xy = np.column_stack([X0 + rng.uniform(1, 299, n), Y0 - rng.uniform(1, 299, n)])
    sites = points_frame(
        [tuple(p) for p in xy],
        案件编号=[f"C{i}" for i in range(n)],
        当前状态=["已拆除" if i % 5 == 0 else ("已登记" if i % 5 < 4 else "说不清") for i in range(n)],
        发现时间=["2022-01-01"] * n,
        拆除时间=["2022-06-01" if i % 5 == 0 else "" for i in range(n)],
    )
    with open_store(data) as store:
        import_file(store, "grid", write_shp(grid_frame(), tmp_path / "g" / "g.shp"))
        import_file(store, "demolition", write_shp(sites, tmp_path / "s" / "s.shp"))
    return make_app(data, login=False)


@pytest.mark.slow
def test_clusters_carry_their_status_mix(crowded):
    schema = schemathesis.openapi.from_wsgi("/api/openapi.json", crowded)
    case = schema["/api/features/{layer}"]["GET"].Case(
        path_parameters={"layer": "demolition"}, query={"bbox": "-180,-90,180,90", "zoom": 12}
    )
    response = case.call()
    case.validate_response(response, checks=[response_schema_conformance])  # the document says so
    body = response.json()
    assert body["aggregated"] is True and body["total"] == 1600
    mix: dict[str | None, int] = {}
    for f in body["features"]:
        props = f["properties"]
        assert sum(s["count"] for s in props["statuses"]) == props["count"]
        for s in props["statuses"]:
            mix[s["status"]] = mix.get(s["status"], 0) + s["count"]
    assert mix == {"已拆除": 320, "已登记": 960, "未识别": 320}


@pytest.mark.slow
def test_features_as_of_a_day_show_sites_completed_later_as_pending(crowded):
    schema = schemathesis.openapi.from_wsgi("/api/openapi.json", crowded)
    operation = schema["/api/features/{layer}"]["GET"]
    mixes = {}
    for as_of in ("2022-05-31", "2022-06-01"):
        case = operation.Case(
            path_parameters={"layer": "demolition"},
            query={"bbox": "-180,-90,180,90", "zoom": 12, "as_of": as_of},
        )
        response = case.call()
        case.validate_response(response, checks=[response_schema_conformance])
        body = response.json()
        assert body["aggregated"] is True and body["as_of"] == as_of
        mix: dict[str | None, int] = {}
        for f in body["features"]:
            for s in f["properties"]["statuses"]:
                mix[s["status"]] = mix.get(s["status"], 0) + s["count"]
        mixes[as_of] = mix
        stats = crowded.test_client().get(f"/api/stats?level=district&layer=demolition&as_of={as_of}")
        assert mix.get("已拆除", 0) == stats.get_json()["rows"][0]["demolition_completed"]
    assert mixes["2022-05-31"] == {"__pending__": 320, "已登记": 960, "未识别": 320}
    assert mixes["2022-06-01"] == {"已拆除": 320, "已登记": 960, "未识别": 320}
    one = crowded.test_client().get("/api/features/demolition?bbox=-180,-90,180,90&zoom=18&as_of=2022-05-31")
    body = one.get_json()
    assert body["aggregated"] is False and body["as_of"] == "2022-05-31"
    one_by_one: dict[str | None, int] = {}
    for f in body["features"]:
        one_by_one[f["properties"]["status"]] = one_by_one.get(f["properties"]["status"], 0) + 1
        assert f["properties"]["completed"] is False
    assert one_by_one == mixes["2022-05-31"]
