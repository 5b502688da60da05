"""The monthly report (通报): its figures equal ``gridwatch stats``, for every layer and a layer a
test registers; Word and PDF; the command line and the web endpoints."""

from __future__ import annotations

import io
import re
import shutil
import subprocess
from pathlib import Path

import docx
import geopandas as gpd
import pandas as pd
import pytest
import shapely
from PIL import Image

import layers
from geo.cli import main
from geo.figures.bulletin import build_bulletin, month_end_before, year_before
from geo.imports.importer import import_file
from geo.store.backends import open_store
from layers.base import Field, LayerSpec, Measure, Status
from tests.helpers.builders import EPSG_GK, X0, Y0, dated_sites, write_shp

AS_OF = "2022-06-30"


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    """The demo district loaded into a fresh store (dated data 2022, targets)."""
    data = tmp_path_factory.mktemp("demo") / "data"
    assert main(["--data", str(data), "demo"]) == 0
    return data


@pytest.fixture(scope="module")
def demo_docx(demo, tmp_path_factory) -> docx.document.Document:
    out = tmp_path_factory.mktemp("report") / "r.docx"
    assert main(["--data", str(demo), "report", "--as-of", AS_OF, "--format", "docx", "-o", str(out)]) == 0
    return docx.Document(str(out))


def _stats(data: Path, tmp: Path, day: str, level: str) -> pd.DataFrame:
    out = tmp / f"stats-{level}-{day}.csv"
    assert main(["--data", str(data), "stats", "--as-of", day, "--level", level, "-o", str(out)]) == 0
    return pd.read_csv(out, dtype={"code": str, "parent_code": str})


def _num(text: str) -> float:
    """A number as the report writes it (``1,846``, ``17.3%``) → float (a percentage as written)."""
    return float(text.replace(",", "").rstrip("%"))


def _tables(document) -> list[list[list[str]]]:
    return [[[c.text for c in row.cells] for row in t.rows] for t in document.tables]


def _layer_tables(document, kind: str) -> list[list[list[str]]]:
    """The headline (``指标``) or ranking (``排名``) tables, one per layer in registry order."""
    return [t for t in _tables(document) if t[0][0] == kind]


def _district(stats: pd.DataFrame) -> pd.Series:
    return stats[stats["code"] != "UNASSIGNED"].select_dtypes("number").sum()


@pytest.mark.slow
def test_every_figure_equals_stats(demo, demo_docx, tmp_path):
    top = "district"
    now = _district(_stats(demo, tmp_path, AS_OF, top))
    prev_day = month_end_before(pd.Timestamp(AS_OF).date()).isoformat()
    ago_day = year_before(pd.Timestamp(AS_OF).date()).isoformat()
    prev = _district(_stats(demo, tmp_path, prev_day, top))
    ago = _district(_stats(demo, tmp_path, ago_day, top))
    heads = _layer_tables(demo_docx, "指标")
    specs = layers.survey_layers()
    assert len(heads) == len(specs)
    checked = 0
    for spec, table in zip(specs, heads, strict=True):
        rows = {r[0]: r[1:] for r in table[1:]}
        w = spec.report_words
        n = spec.name
        found = rows[f"{w.found_zh}（{w.count_unit_zh}）"]
        done = rows[f"{w.completed_zh}（{w.count_unit_zh}）"]
        # 累计, 本月, 上月末, 去年同期
        assert [_num(v) for v in found] == [
            now[f"{n}_total"],
            now[f"{n}_total"] - prev[f"{n}_total"],
            prev[f"{n}_total"],
            ago[f"{n}_total"],
        ]
        assert [_num(v) for v in done] == [
            now[f"{n}_completed"],
            now[f"{n}_completed"] - prev[f"{n}_completed"],
            prev[f"{n}_completed"],
            ago[f"{n}_completed"],
        ]
        for m in spec.measures:
            unit = m.unit_words[0]
            total = rows[f"{m.label_zh}（{unit}）"]
            comp = rows[f"{w.completed_zh}{m.label_zh}（{unit}）"]
            col, ccol = m.total_column(n), m.completed_column(n)
            assert _num(total[0]) == pytest.approx(now[col], abs=0.005)
            assert _num(total[1]) == pytest.approx(now[col] - prev[col], abs=0.01)
            assert _num(comp[0]) == pytest.approx(now[ccol], abs=0.005)
            assert _num(comp[1]) == pytest.approx(now[ccol] - prev[ccol], abs=0.01)
            checked += 1
        rate = rows["完成率"]
        assert _num(rate[0]) == pytest.approx(100 * now[f"{n}_completed"] / now[f"{n}_total"], abs=0.05)
        assert _num(rate[2]) == pytest.approx(100 * prev[f"{n}_completed"] / prev[f"{n}_total"], abs=0.05)
        target = rows[f"年度目标（{w.completed_zh}，{w.count_unit_zh}）"][0]
        if f"{n}_completed_target" in now.index and now[f"{n}_completed_target"] > 0:
            assert _num(target) == now[f"{n}_completed_target"]
            progress = rows["目标完成度"][0]
            assert _num(progress) == pytest.approx(100 * now[f"{n}_completed_progress"], abs=0.05)
        else:
            assert target == "无目标"
    assert checked >= 3
    # the sentences say the same figures
    text = "\n".join(p.text for p in demo_docx.paragraphs)
    d = now
    assert f"累计排查违法建设{int(d['demolition_total']):,}处" in text
    assert f"已拆除{int(d['demolition_completed']):,}处" in text
    pp = 100 * (
        d["demolition_completed"] / d["demolition_total"]
        - prev["demolition_completed"] / prev["demolition_total"]
    )
    assert f"较上月提高{pp:.1f}个百分点" in text


@pytest.mark.slow
def test_ranking_equals_stats_by_street(demo, demo_docx, tmp_path):
    now = _stats(demo, tmp_path, AS_OF, "street").set_index("name")
    prev = _stats(demo, tmp_path, month_end_before(pd.Timestamp(AS_OF).date()).isoformat(), "street")
    prev = prev.set_index("name")
    for spec, table in zip(layers.survey_layers(), _layer_tables(demo_docx, "排名"), strict=True):
        header, body = table[0], table[1:]
        w, n = spec.report_words, spec.name
        col = {h: i for i, h in enumerate(header)}
        assert len(body) == (now.index != "未落入网格").sum()
        rates = []
        for row in body:
            name = row[1]
            s, p = now.loc[name], prev.loc[name]
            assert _num(row[col[w.found_zh]]) == s[f"{n}_total"]
            assert _num(row[col[w.completed_zh]]) == s[f"{n}_completed"]
            assert _num(row[col["完成率"]]) == pytest.approx(100 * s[f"{n}_rate"], abs=0.05)
            assert _num(row[col[f"本月{w.completed_zh}"]]) == s[f"{n}_completed"] - p[f"{n}_completed"]
            rates.append(s[f"{n}_rate"])
        assert [r[0] for r in body] == [str(i) for i in range(1, len(body) + 1)]
        assert rates == sorted(rates, reverse=True)  # ranked by completion rate


@pytest.mark.slow
def test_top_and_bottom_lists_name_the_ends_of_the_ranking(demo_docx):
    """红榜 names the first ranked units with their rates, 黑榜 the last ones, lowest first."""
    from geo.figures.bulletin import LIST_SIZE

    tops = [p.text for p in demo_docx.paragraphs if p.text.startswith("红榜：")]
    bottoms = [p.text for p in demo_docx.paragraphs if p.text.startswith("黑榜：")]
    tables = _layer_tables(demo_docx, "排名")
    assert len(tops) == len(bottoms) == len(tables) > 0
    for top, bottom, table in zip(tops, bottoms, tables, strict=True):
        rate = table[0].index("完成率")
        ranked = [(r[1], r[rate]) for r in table[1:] if r[0]]
        k = min(LIST_SIZE, len(ranked) // 2)
        assert top == "红榜：" + "、".join(f"{name}（{pct}）" for name, pct in ranked[:k])
        assert bottom == "黑榜：" + "、".join(f"{name}（{pct}）" for name, pct in reversed(ranked[-k:]))


@pytest.mark.slow
def test_first_page_states_the_provenance(demo_docx):
    first = _tables(demo_docx)[0]
    about = {r[0]: r[1] for r in first[1:]}
    assert about["统计截至日期"] == AS_OF
    assert "tx" in about["包含的最后一次写入"]
    assert about["网格版本"].startswith("#")
    assert "批次" in about["数据来源"]
    assert (
        demo_docx.paragraphs[0].text == "关于违法建设治理、非机动车停放点建设、充电棚建设工作进展情况的通报"
    )
    # the ranking tables repeat their header row on each page
    ranking = next(t for t in demo_docx.tables if t.rows[0].cells[0].text == "排名")
    assert ranking.rows[0]._tr.trPr.find(docx.oxml.ns.qn("w:tblHeader")) is not None


KIOSK = LayerSpec(
    name="kiosk",
    label_zh="报刊亭",
    label_en="Kiosk",
    geometry_types=frozenset({"Point", "Polygon"}),
    id_field="kid",
    fields=(
        Field("kid", "str", "编号", "Id", ("编号",)),
        Field("status", "str", "状态", "Status", ("状态",)),
        Field("found_on", "date", "登记日期", "Found", ("登记日期",)),
        Field("done_on", "date", "整治日期", "Done", ("整治日期",)),
        Field("area_m2", "float", "面积", "Area", ("面积",), "m2"),
    ),
    status_field="status",
    statuses=(Status("待整治", "待整治", "To do"), Status("已整治", "已整治", "Done", completed=True)),
    default_status="待整治",
    found_field="found_on",
    completed_field="done_on",
    measures=(Measure("area", "area_m2", "面积", "Area", "m2", from_geometry=True),),
)


@pytest.fixture
def kiosk():
    layers.register(KIOSK)
    yield KIOSK
    layers.unregister("kiosk")


@pytest.mark.slow
def test_a_layer_registered_by_a_test_gets_a_report(gridded_store, tmp_path, kiosk):
    g = gpd.GeoDataFrame(
        {
            "编号": ["K1", "K2", "K3"],
            "状态": ["已整治", "待整治", "已整治"],
            "登记日期": ["2022-04-02", "2022-05-03", "2022-06-04"],
            "整治日期": ["2022-05-01", "", "2022-06-20"],
        },
        geometry=[
            shapely.box(X0 + 10, Y0 - 90, X0 + 30, Y0 - 60),  # 600 m²
            shapely.box(X0 + 140, Y0 - 60, X0 + 160, Y0 - 40),  # 400 m²
            shapely.box(X0 + 50, Y0 - 260, X0 + 60, Y0 - 250),  # 100 m²
        ],
        crs=EPSG_GK,
    )
    import_file(gridded_store, "kiosk", write_shp(g, tmp_path / "k" / "亭.shp"))
    b = build_bulletin(gridded_store, AS_OF, layer_names=["kiosk"])
    (lb,) = b.layers
    assert (lb.cumulative.found, lb.cumulative.completed) == (3, 2)
    assert (lb.month.found, lb.month.completed) == (1, 1)  # June: K3 found and done
    assert lb.cumulative.measures[0].completed == pytest.approx(700.0)  # K1 and K3
    assert lb.month.measures[0].completed == pytest.approx(100.0)
    # the defaults speak of it: 登记 … 完成 … 个, no target
    text = "".join(lb.sentences_zh)
    assert "累计登记报刊亭3个" in text and "已完成2个" in text and "无目标" in text
    assert b.title_zh == "关于报刊亭工作进展情况的通报"
    out = tmp_path / "k.docx"
    data = str(tmp_path / "data")  # the gridded store's folder
    assert main(["--data", data, "report", "--as-of", AS_OF, "--layer", "kiosk", "-o", str(out)]) == 0
    assert "报刊亭" in "".join(p.text for p in docx.Document(str(out)).paragraphs)


@pytest.mark.slow
def test_no_data_no_target_first_month(gridded_store, tmp_path):
    empty = build_bulletin(gridded_store, AS_OF, layer_names=["demolition"])
    (lb,) = empty.layers
    assert lb.cumulative.found == 0 and lb.cumulative.rate is None and lb.change_pp is None
    assert "尚无违法建设数据" in lb.sentences_zh[0]
    import_file(gridded_store, "demolition", write_shp(dated_sites(), tmp_path / "s" / "s.shp"))
    first = build_bulletin(gridded_store, "2022-01-31", layer_names=["demolition"]).layers[0]
    assert first.cumulative.found == 1 and first.previous.found == 0
    assert "较上月" not in first.sentences_zh[0] and "上月无可比数据" in first.sentences_zh[0]
    assert any("无目标" in s for s in first.sentences_zh)


@pytest.mark.slow
def test_cli_exit_codes(demo, tmp_path, capsys):
    d = str(demo)
    assert main(["--data", d, "report", "--as-of", AS_OF]) == 2  # no -o
    assert "-o" in capsys.readouterr().err
    assert main(["--data", d, "report", "--as-of", "2022-13-40", "-o", str(tmp_path / "x.docx")]) == 2
    assert (
        main(["--data", d, "report", "--as-of", AS_OF, "--layer", "nope", "-o", str(tmp_path / "x.docx")])
        == 2
    )
    assert "nope" in capsys.readouterr().err
    assert (
        main(["--data", d, "report", "--as-of", AS_OF, "--level", "grid", "-o", str(tmp_path / "x.docx")])
        == 2
    )
    assert not (tmp_path / "x.docx").exists()
    assert main(["--data", d, "report", "--as-of", AS_OF, "-o", str(tmp_path)]) == 2  # a folder
    assert main(["--data", d, "report", "--as-of", AS_OF, "-o", str(tmp_path / "no" / "x.docx")]) == 2
    out = tmp_path / "c.docx"
    args = [
        "--data",
        d,
        "report",
        "--as-of",
        AS_OF,
        "--layer",
        "违法建设",
        "--level",
        "community",
        "-o",
        str(out),
    ]
    assert main(args) == 0
    ranking = _layer_tables(docx.Document(str(out)), "排名")
    assert len(ranking) == 1 and ranking[0][0][1] == "社区" and ranking[0][0][2] == "上级"


@pytest.mark.slow
def test_pdf_without_libreoffice_is_refused(demo, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None)
    out = tmp_path / "r.pdf"
    assert main(["--data", str(demo), "report", "--as-of", AS_OF, "--format", "pdf", "-o", str(out)]) == 2
    assert "LibreOffice" in capsys.readouterr().err and not out.exists()


@pytest.mark.slow
@pytest.mark.needs("libreoffice")
def test_pdf_has_pages(demo, tmp_path):
    out = tmp_path / "r.pdf"
    args = ["--data", str(demo), "report", "--as-of", AS_OF, "--layer", "demolition", "--format", "pdf"]
    assert main([*args, "-o", str(out)]) == 0
    assert out.read_bytes().startswith(b"%PDF")
    subprocess.run(["pdftoppm", "-r", "40", "-png", str(out), str(tmp_path / "p")], check=True, timeout=120)
    pages = sorted(tmp_path.glob("p-*.png"))
    assert len(pages) >= 2
    first = Image.open(pages[0]).convert("L")
    assert first.width < first.height  # A4 portrait
    colours = first.getcolors(maxcolors=256)
    assert colours is not None and len(colours) > 20  # text and tables, not a blank page


def _image(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data))


@pytest.mark.slow
@pytest.mark.parametrize(("paper", "ratio"), [("a4", 297 / 210), ("a3", 420 / 297)])
def test_map_image_has_the_papers_shape_and_is_not_blank(demo, paper, ratio):
    from geo.output.mapimage import render_map

    with open_store(demo) as store:
        png = render_map(store, level="street", as_of=AS_OF, paper=paper)
    im = _image(png)
    assert im.width / im.height == pytest.approx(ratio, rel=0.01)
    assert im.width >= 11 * 150  # at least 150 dpi on the paper's width
    colours = im.convert("RGB").getcolors(maxcolors=1_000_000)
    assert colours is not None and len(colours) > 50


@pytest.mark.slow
def test_endpoints(demo, make_app):
    client = make_app(demo, login=False).test_client()
    r = client.get(f"/api/map-image?format=png&paper=a4&layer=demolition&level=community&as_of={AS_OF}")
    assert r.status_code == 200 and r.mimetype == "image/png"
    assert _image(r.data).width / _image(r.data).height == pytest.approx(297 / 210, rel=0.01)
    r = client.get("/api/map-image?format=pdf&metric=progress&bbox=118.35,31.28,118.45,31.33&lang=en")
    assert r.status_code == 200 and r.mimetype == "application/pdf" and r.data.startswith(b"%PDF")
    r = client.get("/api/map-image?bbox=-180,-90,180,90")  # a view the grid's CRS cannot hold: every unit
    assert r.status_code == 200
    for bad in (
        "metric=volume",
        "format=gif",
        "paper=a5",
        "bbox=1,2,3",
        "level=city",
        "layer=grid",
        "as_of=x",
    ):
        r = client.get(f"/api/map-image?{bad}")
        assert r.status_code == 400 and r.is_json and r.json["message"], bad
    r = client.get(f"/api/report?as_of={AS_OF}&format=docx&layer=demolition&lang=zh")
    assert r.status_code == 200 and r.mimetype.endswith("wordprocessingml.document")
    assert "attachment" in r.headers["Content-Disposition"]
    assert "通报" in "".join(p.text for p in docx.Document(io.BytesIO(r.data)).paragraphs)
    for bad in ("format=xls", "as_of=2022-02-30", "level=grid", "layer=nope", "known_at=yesterday"):
        r = client.get(f"/api/report?as_of={AS_OF}&{bad}" if "as_of" not in bad else f"/api/report?{bad}")
        assert r.status_code == 400 and r.is_json, bad


@pytest.mark.slow
def test_stats_page_links_to_the_report(demo, make_app):
    client = make_app(demo, login=False).test_client()
    html = client.get(f"/stats?as_of={AS_OF}").get_data(as_text=True)
    links = re.findall(r'href="([^"]*/api/report[^"]*)"', html)
    assert {("format=docx" in u, "format=pdf" in u) for u in links} == {(True, False), (False, True)}
    assert all(f"as_of={AS_OF}" in u for u in links)


@pytest.mark.slow
def test_missing_cjk_font_or_libreoffice_is_a_clear_503(demo, make_app, monkeypatch):
    from geo.output import mapimage

    client = make_app(demo, login=False).test_client()
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None)
    r = client.get(f"/api/report?as_of={AS_OF}&format=pdf")
    assert r.status_code == 503 and "LibreOffice" in r.json["message_en"]
    monkeypatch.setattr(mapimage, "_CJK_FAMILIES", ("No Such Font",))
    with pytest.raises(mapimage.MissingTool, match="fonts-noto-cjk"):
        mapimage.cjk_font()
    r = client.get("/api/map-image?format=png")
    assert r.status_code == 503 and r.is_json and "fonts-noto-cjk" in r.json["message_zh"]


def test_map_image_points_are_drawn_as_the_figures_count_them_on_the_day(demo):
    """A site completed after the as-of day is drawn as not completed then (as on the live map),
    a site found later not at all: the done-coloured points are the day's completed count."""
    from datetime import date

    from geo.figures.asof import resolve_view
    from geo.figures.report import pin
    from geo.figures.tally import tally
    from geo.output.mapimage import _points
    from geo.registry import get_layer
    from layers.base import PENDING

    spec = get_layer("demolition")
    done = {s.color for s in spec.statuses if s.completed}
    with open_store(demo) as store:
        day = date.fromisoformat(AS_OF)
        view = pin(store, resolve_view(store, day, None, None))
        _xy, colours, legend = _points(store, spec, view, day, None)
        totals = tally(store, "district", ["demolition"], day, view=view).set_index("code")
        _xy_now, colours_now, _legend_now = _points(store, spec, view, None, None)
    found = int(totals["demolition_total"].sum())  # the unassigned row included
    completed = int(totals["demolition_completed"].sum())
    assert len(colours) == found < len(colours_now)
    assert sum(c in done for c in colours) == completed
    assert sum(c == PENDING.color for c in colours) > 0 and PENDING.code in legend
    assert PENDING.color not in colours_now
