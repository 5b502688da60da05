"""Import of real survey files: encodings, CRSs, zips, re-imports, rejects, dry runs."""

from __future__ import annotations

import csv
import zipfile

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pyproj
import pytest
import shapely

from geo.errors import CRSError, InputError
from geo.figures.tally import tally
from geo.imports.importer import import_file, prepare_import
from geo.store.backends import open_store
from layers import demolition
from layers.base import UNASSIGNED
from tests.helpers.builders import (
    COMM_A,
    COMM_B,
    EPSG_GK,
    X0,
    Y0,
    GbkZipInfo,
    grid_frame,
    points_frame,
    write_shp,
    zip_shp,
)

DEMOLITION_SPEC = demolition.LAYER

pytestmark = pytest.mark.backends


def sites(n_extra: int = 0) -> gpd.GeoDataFrame:
    xy = [
        (X0 + 50, Y0 - 50),  # inside cell A001
        (X0 + 150, Y0 - 150),  # inside A005
        (X0 + 100, Y0 - 50),  # on the edge A001|A002
        (X0 + 100, Y0 - 200),  # on the vertex A004|A005|B001|B002
        (X0 - 500, Y0 + 500),  # outside the grid
    ]
    xy += [(X0 + 10 + i, Y0 - 250) for i in range(n_extra)]
    n = len(xy)
    return points_frame(
        xy,
        案件编号=[f"WJ-{i:03d}" for i in range(n)],
        违建地址=[f"弋江街道测试路{i}号" for i in range(n)],
        违建面积=["12.5㎡", "1,250", "30", "", "8"] + ["5"] * n_extra,
        当前状态=["已拆除", "已登记", "已拆除", "已下发通知", "已拆除"] + ["已登记"] * n_extra,
        违建位置=["地面", "楼顶", "平台", "楼顶", "地面"] + ["地面"] * n_extra,
        发现时间=["2022-01-05", "2022/3/1", "2022年4月2日", "20220510", "2022-02-01"]
        + ["2022-01-01"] * n_extra,
        拆除时间=["2022-06-01", "", "2022-05-31", "", "2022-03-01"] + [""] * n_extra,
    )


@pytest.mark.slow
def test_grid_gbk_without_cpg(gridded_store):
    attrs = gridded_store.read_attributes(__import__("layers").get("grid"))
    assert sorted(attrs["community"].unique()) == ["赭山社区", "镜湖社区"]
    assert sorted(attrs["code"])[0] == f"{COMM_A}001"
    assert gridded_store.srs_epsg() == EPSG_GK
    batch = gridded_store.batches()[0]
    assert batch.encoding == "gb18030"
    assert batch.added == 9


def test_points_assigned_once_and_unassigned_kept(gridded_store, tmp_path):
    shp = write_shp(sites(), tmp_path / "s" / "违建.shp")
    report = import_file(gridded_store, "demolition", shp)
    assert report.added == 5 and not report.rejected
    assert report.unassigned == 1
    attrs = gridded_store.read_attributes(__import__("layers").get("demolition"))
    unit = dict(zip(attrs["case_id"], attrs["gw_unit"], strict=True))
    assert unit["WJ-000"] == f"{COMM_A}001"
    assert unit["WJ-001"] == f"{COMM_A}005"
    assert unit["WJ-002"] == f"{COMM_A}001"  # edge: smaller code
    assert unit["WJ-003"] == f"{COMM_A}004"  # vertex of four cells: smallest code
    assert unit["WJ-004"] == UNASSIGNED
    t = tally(gridded_store, "grid", ["demolition"])
    assert t["demolition_total"].sum() == 5
    assert t.set_index("code").loc[UNASSIGNED, "demolition_total"] == 1
    # numbers like "12.5㎡" and "1,250" parsed
    area = dict(zip(attrs["case_id"], attrs["area_m2"], strict=True))
    assert area["WJ-000"] == 12.5 and area["WJ-001"] == 1250.0


def test_rollups_by_code_prefix(gridded_store, tmp_path):
    import_file(gridded_store, "demolition", write_shp(sites(), tmp_path / "s" / "违建.shp"))
    comm = tally(gridded_store, "community", ["demolition"]).set_index("code")
    assert comm.loc[COMM_A, "demolition_total"] == 4
    assert comm.loc[COMM_A, "name"] == "赭山社区"
    assert comm.loc[COMM_A, "demolition_completed"] == 2
    assert comm.loc[COMM_A, "demolition_rate"] == pytest.approx(0.5)
    assert comm.loc[COMM_A, "demolition_area_completed_m2"] == pytest.approx(42.5)
    assert comm.loc[COMM_B, "demolition_total"] == 0
    street = tally(gridded_store, "street", ["demolition"]).set_index("code")
    assert street.loc["340291001", "demolition_total"] == 4
    district = tally(gridded_store, "district", ["demolition"]).set_index("code")
    assert list(district.index) == ["340291", UNASSIGNED]


def test_as_of_dates(gridded_store, tmp_path):
    import_file(gridded_store, "demolition", write_shp(sites(), tmp_path / "s" / "违建.shp"))
    may = tally(gridded_store, "grid", ["demolition"], as_of="2022-05-31").set_index("code")
    june = tally(gridded_store, "grid", ["demolition"], as_of="2022-06-01").set_index("code")
    # WJ-000 demolished on 2022-06-01: pending in May, done in June
    assert may.loc[f"{COMM_A}001", "demolition_completed"] == 1  # only WJ-002 (2022-05-31)
    assert june.loc[f"{COMM_A}001", "demolition_completed"] == 2
    # WJ-003 found 2022-05-10: absent in April
    april = tally(gridded_store, "grid", ["demolition"], as_of="2022-04-30").set_index("code")
    assert april.loc[f"{COMM_A}004", "demolition_total"] == 0
    assert may.loc[f"{COMM_A}004", "demolition_total"] == 1


@pytest.mark.slow
def test_reimport_identical_and_updated(gridded_store, tmp_path):
    shp = write_shp(sites(), tmp_path / "s" / "违建.shp")
    first = import_file(gridded_store, "demolition", shp)
    again = import_file(gridded_store, "demolition", shp)
    assert again.status == "duplicate" and again.duplicate_of == first.batch_id
    assert len(gridded_store.batches("demolition")) == 1
    changed = sites()
    changed.loc[1, "当前状态"] = "已拆除"
    changed.loc[1, "拆除时间"] = "2022-07-01"
    shp2 = write_shp(changed, tmp_path / "s2" / "违建.shp")
    second = import_file(gridded_store, "demolition", shp2)
    assert (second.added, second.updated, second.unchanged) == (0, 1, 4)
    t = tally(gridded_store, "grid", ["demolition"])
    assert t["demolition_total"].sum() == 5
    assert t["demolition_completed"].sum() == 4


def test_a_row_without_survey_id_beside_known_ones_is_added(gridded_store, tmp_path):
    """Into a layer that has rows, a file whose rows partly lack 案件编号: the keyed row updates
    its site, the row without an id is a new site, and no id is compared with a missing one."""
    shp = write_shp(sites(), tmp_path / "s" / "违建.shp")
    import_file(gridded_store, "demolition", shp)
    more = sites().iloc[:2].copy()
    more["案件编号"] = [more["案件编号"].iloc[0], ""]
    more["当前状态"] = ["已拆除", "已登记"]
    more["拆除时间"] = ["2022-07-01", ""]
    report = import_file(gridded_store, "demolition", write_shp(more, tmp_path / "m" / "违建.shp"))
    assert (report.status, report.added, report.updated) == ("committed", 1, 1)
    t = tally(gridded_store, "grid", ["demolition"])
    assert t["demolition_total"].sum() == len(sites()) + 1


def test_missing_prj_inferred_prefixed_zone(store, tmp_path):
    g = grid_frame().to_crs(4527)  # CGCS2000 3-degree GK zone 39, zone prefix in the easting
    shp = write_shp(g, tmp_path / "g" / "grid.shp", prj=False)
    report = import_file(store, "grid", shp)
    assert report.crs_source == "inferred"
    assert "4527" in (report.crs or "")
    assert any("推断" in zh for zh, _ in report.warnings)
    assert store.srs_epsg() == EPSG_GK  # stored in the zone fitting the data


def test_missing_prj_unprefixed_needs_grid(gridded_store, tmp_path):
    shp = write_shp(sites(), tmp_path / "s" / "违建.shp", prj=False)
    with open_store(tmp_path / "empty") as empty, pytest.raises(CRSError):
        import_file(empty, "demolition", shp)  # empty store: central meridian unknown
    report = import_file(gridded_store, "demolition", shp)  # grid tells the central meridian
    assert report.crs_source == "inferred" and "4548" in (report.crs or "")
    assert report.added == 5


def test_crs_override_and_geographic(gridded_store, tmp_path):
    g = sites().to_crs(4490)
    shp = write_shp(g, tmp_path / "s" / "违建.shp", prj=False)
    report = import_file(gridded_store, "demolition", shp, crs="EPSG:4490")
    assert report.crs_source == "override"
    attrs = gridded_store.read_attributes(__import__("layers").get("demolition"))
    assert dict(zip(attrs["case_id"], attrs["gw_unit"], strict=True))["WJ-001"] == f"{COMM_A}005"


def test_nested_zip_with_subfolder_and_gbk_names(gridded_store, tmp_path):
    shp = write_shp(sites(), tmp_path / "s" / "违法建设台账.shp")
    inner = zip_shp(shp, tmp_path / "内层.zip", folder="2022年/三月/")
    outer = tmp_path / "上报.zip"
    with zipfile.ZipFile(outer, "w") as zf:
        info = GbkZipInfo("资料/内层.zip")
        zf.writestr(info, inner.read_bytes())
    report = import_file(gridded_store, "demolition", outer)
    assert report.added == 5
    assert report.dataset and report.dataset.endswith("违法建设台账.shp")


def test_zip_with_several_layers_picks_by_fields(gridded_store, tmp_path):
    shp1 = write_shp(sites(), tmp_path / "a" / "违建.shp")
    parking = points_frame([(X0 + 20, Y0 - 20)], 编号=["P1"], 名称=["停车点"], 泊位数=["20"], 状态=["已施划"])
    shp2 = write_shp(parking, tmp_path / "a" / "停放点.shp")
    z = tmp_path / "all.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for shp in (shp1, shp2):
            for part in shp.parent.glob(shp.stem + ".*"):
                zf.write(part, f"图层/{part.name}")
    assert import_file(gridded_store, "parking", z).added == 1
    assert import_file(gridded_store, "demolition", z).added == 5


def test_rejected_rows_reported(gridded_store, tmp_path):
    g = sites()
    g.loc[0, "违建面积"] = "三十"
    g.loc[1, "当前状态"] = "不知道"
    g.loc[2, "发现时间"] = "2022-13-45"
    g.loc[3, "案件编号"] = "WJ-004"  # duplicate id of row 5
    report = import_file(gridded_store, "demolition", write_shp(g, tmp_path / "s" / "w.shp"))
    rows = {r.row: r for r in report.rejected}
    # an unknown status is no reason to lose the row: it is kept as 未识别 (see test_unrecognised_...)
    assert sorted(rows) == [1, 3, 5]
    assert "不是数字" in rows[1].reason_zh and "not a number" in rows[1].reason_en
    # each rejected row names its survey id and the offending raw value
    assert (rows[1].survey_id, rows[1].value) == (g.loc[0, "案件编号"], "三十")
    assert (rows[3].survey_id, rows[3].value) == (g.loc[2, "案件编号"], "2022-13-45")
    assert rows[5].survey_id == "WJ-004"
    assert report.added == 2
    assert gridded_store.batch(report.batch_id).rejected == 3
    kept = gridded_store.read_attributes(DEMOLITION_SPEC)
    row = kept[kept["case_id"] == g.loc[1, "案件编号"]].iloc[0]
    assert (row["status"], row["status_raw"]) == ("未识别", "不知道")


@pytest.mark.slow
def test_wrong_layer_and_wrong_geometry(gridded_store, tmp_path):
    with pytest.raises(InputError) as err:
        import_file(gridded_store, "parking", write_shp(grid_frame(), tmp_path / "g" / "g.shp"))
    assert err.value.code in ("wrong_layer", "wrong_geometry_type")
    lines = gpd.GeoDataFrame(
        {"编号": ["L1"]}, geometry=[shapely.LineString([(X0, Y0), (X0 + 10, Y0)])], crs=EPSG_GK
    )
    with pytest.raises(InputError) as err2:
        import_file(gridded_store, "parking", write_shp(lines, tmp_path / "l" / "l.shp"))
    assert err2.value.code == "wrong_geometry_type"
    assert gridded_store.batches("parking") == []


def test_dry_run_writes_nothing(gridded_store, tmp_path):
    rev = gridded_store.revision()
    report = import_file(
        gridded_store, "demolition", write_shp(sites(), tmp_path / "s" / "w.shp"), dry_run=True
    )
    assert report.dry_run and report.status == "preview" and report.rows_read == 5
    assert gridded_store.revision() == rev
    assert gridded_store.batches("demolition") == []


def test_csv_gcj02(gridded_store, tmp_path):
    from geo.reading.gcj02 import wgs84_to_gcj02

    t = pyproj.Transformer.from_crs(EPSG_GK, 4490, always_xy=True)
    lon, lat = t.transform(X0 + 150, Y0 - 150)
    glon, glat = wgs84_to_gcj02(np.array([lon]), np.array([lat]))
    path = tmp_path / "points.csv"
    with open(path, "w", encoding="gb18030", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["编号", "名称", "经度", "纬度", "泊位数", "状态"])
        w.writerow(["P-1", "高德取点", f"{glon[0]:.8f}", f"{glat[0]:.8f}", "12", "已建成"])
    report = import_file(gridded_store, "parking", path, crs="gcj02")
    assert report.added == 1
    attrs = gridded_store.read_attributes(__import__("layers").get("parking"))
    assert attrs["gw_unit"].iloc[0] == f"{COMM_A}005"
    # without the GCJ-02 correction the point lands hundreds of metres away
    report2 = prepare_import(gridded_store, "parking", path, crs="EPSG:4490").report
    assert report2.unassigned == 1


def test_invalid_polygon_repaired_and_z_dropped(gridded_store, tmp_path):
    bow = shapely.Polygon([(X0 + 10, Y0 - 10), (X0 + 60, Y0 - 60), (X0 + 60, Y0 - 10), (X0 + 10, Y0 - 60)])
    z = shapely.Polygon([(X0 + 110, Y0 - 10, 5), (X0 + 150, Y0 - 10, 5), (X0 + 150, Y0 - 50, 5)])
    g = gpd.GeoDataFrame(
        {"案件编号": ["P1", "P2"], "当前状态": ["已登记", "已登记"]}, geometry=[bow, z], crs=EPSG_GK
    )
    report = import_file(gridded_store, "demolition", write_shp(g, tmp_path / "p" / "p.shp"))
    assert report.repaired == 1 and report.added == 2
    assert report.z_dropped == 2  # one Z ring makes the whole shapefile PolygonZ
    assert report.areas_from_geometry == 2


def test_far_outside_is_rejected(gridded_store, tmp_path):
    g = sites()
    g.loc[4, "geometry"] = shapely.Point(X0 + 90_000, Y0)
    report = import_file(gridded_store, "demolition", write_shp(g, tmp_path / "s" / "w.shp"))
    assert [r.row for r in report.rejected] == [5]
    assert "公里" in report.rejected[0].reason_zh


def test_empty_and_garbage_files(gridded_store, tmp_path):
    empty = tmp_path / "e.zip"
    empty.write_bytes(b"")
    with pytest.raises(InputError):
        import_file(gridded_store, "demolition", empty)
    junk = tmp_path / "j.zip"
    junk.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(InputError):
        import_file(gridded_store, "demolition", junk)
    txt = tmp_path / "a.doc"
    txt.write_text("hello")
    with pytest.raises(InputError):
        import_file(gridded_store, "demolition", txt)
    with pytest.raises(InputError):
        import_file(gridded_store, "nosuchlayer", txt)


@pytest.mark.gpkg_only
def test_store_is_a_geopackage_gdal_reads(gridded_store, tmp_path):
    import_file(gridded_store, "demolition", write_shp(sites(), tmp_path / "s" / "w.shp"))
    path = gridded_store.location
    names = [row[0] for row in pyogrio.list_layers(path)]
    assert {"grid", "demolition", "gw_batches"} <= set(names)
    g = pyogrio.read_dataframe(path, layer="grid")
    assert g.crs.to_epsg() == EPSG_GK
    assert len(g) == 9 and set(g["community"]) == {"赭山社区", "镜湖社区"}
    assert shapely.equals(g.geometry.values[0], grid_frame().geometry.values[0])
    d = pyogrio.read_dataframe(path, layer="demolition")
    assert len(d) == 5 and "WJ-000" in set(d["case_id"])


@pytest.mark.slow
def test_targets_progress(gridded_store, tmp_path):
    import_file(gridded_store, "demolition", write_shp(sites(), tmp_path / "s" / "w.shp"))
    from geo.imports.batches import load_targets

    path = tmp_path / "targets.csv"
    pd.DataFrame(
        {
            "编码": [COMM_A, "340291001", "999"],
            "图层": ["demolition", "违法建设", "demolition"],
            "指标": ["completed", "area_completed_m2", "completed"],
            "目标": ["4", "100", "1"],
        }
    ).to_csv(path, index=False, encoding="utf-8-sig")
    report = load_targets(gridded_store, path)
    assert report.added == 2 and [r.row for r in report.rejected] == [3]
    comm = tally(gridded_store, "community", ["demolition"]).set_index("code")
    assert comm.loc[COMM_A, "demolition_completed_target"] == 4
    assert comm.loc[COMM_A, "demolition_completed_progress"] == pytest.approx(0.5)
    street = tally(gridded_store, "street", ["demolition"]).set_index("code")
    assert street.loc["340291001", "demolition_area_completed_m2_progress"] == pytest.approx(0.425)


@pytest.mark.slow
def test_update_few_ids_spread_over_a_large_layer(gridded_store, tmp_path):
    """Updating two ids at both ends of 300 stored ones (the key lookup through a temporary table)."""
    ids = [f"K{i:03d}" for i in range(300)]
    g = points_frame([(X0 + 50, Y0 - 50)] * 300, 案件编号=ids, 当前状态=["已登记"] * 300)
    import_file(gridded_store, "demolition", write_shp(g, tmp_path / "a" / "a.shp"))
    upd = points_frame([(X0 + 50, Y0 - 50)] * 3, 案件编号=["K000", "K299", "NEW"], 当前状态=["已拆除"] * 3)
    rep = import_file(gridded_store, "demolition", write_shp(upd, tmp_path / "b" / "b.shp"))
    assert (rep.added, rep.updated, rep.unchanged) == (1, 2, 0)
    t = tally(gridded_store, "grid", ["demolition"])
    assert (t["demolition_total"].sum(), t["demolition_completed"].sum()) == (301, 3)


# --- whose features an import may update ---------------------------------------------------------


@pytest.fixture
def owned_store(gridded_store, tmp_path):
    """Accounts surveyor, surveyor2 and admin; sites D1 imported without an account, S1 and S2 by
    surveyor."""
    from geo.store import accounts

    for name, role in (("surveyor", "surveyor"), ("surveyor2", "surveyor"), ("admin", "admin")):
        accounts.add_user(gridded_store, name, role, f"{name}-password-1")
    demo = points_frame([(X0 + 20, Y0 - 20)], 案件编号=["D1"], 当前状态=["已登记"])
    import_file(gridded_store, "demolition", write_shp(demo, tmp_path / "d" / "d.shp"))
    own = points_frame(
        [(X0 + 50, Y0 - 50), (X0 + 150, Y0 - 150)], 案件编号=["S1", "S2"], 当前状态=["已登记"] * 2
    )
    import_file(gridded_store, "demolition", write_shp(own, tmp_path / "s" / "s.shp"), user="surveyor")
    return gridded_store


def _demolished(tmp_path, name: str, ids: list[str]):
    xy = [(X0 + 30 + 20 * i, Y0 - 40) for i in range(len(ids))]
    return write_shp(
        points_frame(xy, 案件编号=ids, 当前状态=["已拆除"] * len(ids)), tmp_path / name / "x.shp"
    )


def _status(store) -> dict[str, str]:
    attrs = store.read_attributes(__import__("layers").get("demolition"))
    return dict(zip(attrs["case_id"], attrs["status"], strict=True))


@pytest.mark.slow
def test_imports_update_only_their_own_accounts_features(owned_store, tmp_path):
    rep = import_file(
        owned_store, "demolition", _demolished(tmp_path, "a", ["N1", "S1", "D1"]), user="surveyor2"
    )
    assert (rep.added, rep.updated, rep.to_dict()["rejected_count"]) == (1, 0, 2)
    assert [(r.row, r.field, r.value) for r in rep.rejected] == [(2, "case_id", "S1"), (3, "case_id", "D1")]
    assert "批次 3" in rep.rejected[0].reason_zh and "batch 2" in rep.rejected[1].reason_en  # 1 is the grid
    assert owned_store.batch(rep.batch_id).rejected == 2
    assert _status(owned_store) == {"D1": "已登记", "S1": "已登记", "S2": "已登记", "N1": "已拆除"}
    mine = import_file(owned_store, "demolition", _demolished(tmp_path, "b", ["S1"]), user="surveyor")
    assert (mine.updated, mine.to_dict()["rejected_count"]) == (1, 0)
    for i, who in enumerate(("admin", None, "cli-operator")):  # an admin; imports without an account
        path = _demolished(tmp_path, f"c{i}", ["S2", "D1", f"M{i}"])
        rep = import_file(owned_store, "demolition", path, user=who)
        assert (rep.to_dict()["rejected_count"], rep.added, rep.updated + rep.unchanged) == (0, 1, 2), who


@pytest.mark.slow
def test_ownership_is_decided_when_the_batch_is_written(owned_store, tmp_path):
    """surveyor2 prepares a file with a new id; surveyor commits the same id first: surveyor2's
    commit rejects that row."""
    from geo.imports.commit import commit_import

    prepared = prepare_import(
        owned_store, "demolition", _demolished(tmp_path, "a", ["K1", "K2"]), user="surveyor2"
    )
    assert prepared.report.to_dict()["rejected_count"] == 0
    import_file(owned_store, "demolition", _demolished(tmp_path, "b", ["K1"]), user="surveyor")
    rep = commit_import(owned_store, prepared, user="surveyor2")
    assert rep.status == "committed" and rep.added == 1 and [r.value for r in rep.rejected] == ["K1"]
    assert rep.rejected[0].row == 1
