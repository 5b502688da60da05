"""Every input format a bureau hands in, and the CRS families without a .prj."""

from __future__ import annotations

import ast
import warnings
import zipfile
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pyproj
import pytest

import layers
from geo.errors import InputError
from geo.imports.importer import import_file
from tests.helpers.builders import COMM_A, EPSG_GK, X0, Y0, points_frame, write_shp

DEMOLITION = layers.get("demolition")


def _sites() -> gpd.GeoDataFrame:
    return points_frame(
        [(X0 + 50, Y0 - 50), (X0 + 150, Y0 - 150)],
        案件编号=["F-1", "F-2"],
        违建地址=["赭山路1号", "镜湖路2号"],
        当前状态=["已拆除", "已登记"],
        发现时间=["2022-03-01", "2022-04-01"],
    )


def _units(store) -> dict[str, str]:
    attrs = store.read_attributes(DEMOLITION)
    return dict(zip(attrs["case_id"], attrs["gw_unit"], strict=True))


@pytest.mark.slow
@pytest.mark.parametrize("suffix", ["gpkg", "geojson", "kml"])
def test_ogr_formats(gridded_store, tmp_path, suffix):
    g = _sites()
    if suffix != "gpkg":
        g = g.to_crs(4326)  # GeoJSON and KML are lon/lat
    path = tmp_path / f"sites.{suffix}"
    g.to_file(path, engine="pyogrio", driver={"gpkg": "GPKG", "geojson": "GeoJSON", "kml": "KML"}[suffix])
    report = import_file(gridded_store, "demolition", path)
    assert report.added == 2, report.summary()
    assert _units(gridded_store) == {"F-1": f"{COMM_A}001", "F-2": f"{COMM_A}005"}
    attrs = gridded_store.read_attributes(DEMOLITION).set_index("case_id")
    assert attrs.loc["F-1", "address"] == "赭山路1号" and attrs.loc["F-1", "status"] == "已拆除"


@pytest.mark.slow
def test_xlsx_with_xy_columns_in_gk(gridded_store, tmp_path):
    path = tmp_path / "台账.xlsx"
    pd.DataFrame(
        {"案件编号": ["X-1"], "X": [X0 + 50], "Y": [Y0 - 50], "当前状态": ["已拆除"], "发现时间": [44621]}
    ).to_excel(path, index=False)
    report = import_file(gridded_store, "demolition", path)
    assert report.crs_source == "inferred" and "4548" in (report.crs or "")
    attrs = gridded_store.read_attributes(DEMOLITION).set_index("case_id")
    assert attrs.loc["X-1", "found_on"] == "2022-03-01"  # Excel serial date
    assert attrs.loc["X-1", "gw_unit"] == f"{COMM_A}001"


def _utf8_sites() -> gpd.GeoDataFrame:
    # at most 3 Chinese characters per name: 9 UTF-8 bytes fit a DBF header
    return _sites().rename(
        columns={"案件编号": "编号", "违建地址": "地址", "当前状态": "状态", "发现时间": "FXSJ"}
    )


@pytest.mark.slow
def test_encoding_override(gridded_store, tmp_path):
    shp = write_shp(
        _utf8_sites(), tmp_path / "s" / "s.shp", encoding="UTF-8", ldid=0x4D
    )  # LDID says GBK, bytes UTF-8
    report = import_file(gridded_store, "demolition", shp, encoding="UTF-8", dry_run=True)
    assert report.encoding_source == "override" and report.encoding == "utf-8"
    report = import_file(gridded_store, "demolition", shp, encoding="UTF-8")
    assert gridded_store.read_attributes(DEMOLITION)["address"].tolist() == ["赭山路1号", "镜湖路2号"]


def test_cpg_utf8(gridded_store, tmp_path):
    shp = write_shp(_utf8_sites(), tmp_path / "s" / "s.shp", encoding="UTF-8", cpg=True, ldid=None)
    report = import_file(gridded_store, "demolition", shp)
    assert report.encoding == "utf-8" and report.encoding_source == "cpg"
    assert report.added == 2


def test_utf8_names_cut_mid_character(gridded_store, tmp_path):
    """A UTF-8 writer cuts 案件编号 (12 bytes) to 10 bytes; the file still imports."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # GDAL warns about the laundered names while writing
        shp = write_shp(_sites(), tmp_path / "s" / "s.shp", encoding="UTF-8", cpg=True, ldid=None)
    report = import_file(gridded_store, "demolition", shp)
    assert report.added == 2
    assert set(report.field_mapping.values()) >= {"case_id", "address", "status", "found_on"}
    assert _units(gridded_store) == {"F-1": f"{COMM_A}001", "F-2": f"{COMM_A}005"}


@pytest.mark.slow
@pytest.mark.parametrize(
    ("epsg", "expect"),
    [(4490, "4490"), (3857, "3857"), (4527, "4527")],
)
def test_missing_prj_each_family(gridded_store, tmp_path, epsg, expect):
    shp = write_shp(_sites().to_crs(epsg), tmp_path / "s" / "s.shp", prj=False)
    report = import_file(gridded_store, "demolition", shp)
    assert report.crs_source == "inferred" and expect in (report.crs or "")
    assert _units(gridded_store) == {"F-1": f"{COMM_A}001", "F-2": f"{COMM_A}005"}


def test_xian80_accepted_with_warning(gridded_store, tmp_path):
    xian = pyproj.CRS.from_epsg(2384)  # Xian 1980 / 3-degree GK CM 117E
    g = _sites().to_crs(xian)
    report = import_file(gridded_store, "demolition", write_shp(g, tmp_path / "s" / "s.shp"))
    assert report.added == 2
    assert any("西安" in zh or "Xi" in en or "datum" in en for zh, en in report.warnings)


def test_unknown_crs_refused(gridded_store, tmp_path):
    g = _sites()
    g["geometry"] = gpd.points_from_xy([5.0, 6.0], [7.0, 8.0])
    shp = write_shp(g, tmp_path / "s" / "s.shp", prj=False)
    with pytest.raises(InputError) as err:
        import_file(gridded_store, "demolition", shp)
    assert err.value.status == 400 and "--crs" in err.value.message
    assert gridded_store.batches("demolition") == []


def test_zip_missing_dbf_and_sidecar_only(gridded_store, tmp_path):
    shp = write_shp(_sites(), tmp_path / "s" / "s.shp")
    z = tmp_path / "nodbf.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for part in shp.parent.iterdir():
            if part.suffix != ".dbf":
                zf.write(part, part.name)
    with pytest.raises(InputError) as err:
        import_file(gridded_store, "demolition", z)
    assert err.value.code == "missing_dbf"
    with pytest.raises(InputError) as err2:
        import_file(gridded_store, "demolition", shp.with_suffix(".dbf"))
    assert err2.value.code == "incomplete_shapefile"


@pytest.mark.slow
def test_engine_never_imports_flask():
    """Neither the engine nor the layers import the web framework, the web layer or the app -- at
    module level, inside functions, or through importlib -- the command line included."""
    root = Path(__file__).resolve().parent.parent
    upward = ("flask", "flask_babel", "flask_login", "flask_wtf", "werkzeug", "server", "web")
    for package in ("geo", "layers"):
        for path in (root / package).rglob("*.py"):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                names = []
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom):
                    names = [node.module or ""]
                elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
                    func = node.func
                    called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                    if called in ("import_module", "__import__") and isinstance(node.args[0].value, str):
                        names = [node.args[0].value]
                assert not any(n.split(".")[0] in upward for n in names), f"{path} imports {names}"


def test_store_crs_is_projected_zone(gridded_store):
    assert pyproj.CRS.from_epsg(gridded_store.srs_epsg()).is_projected
    assert gridded_store.srs_epsg() == EPSG_GK


def _undocumented(root: Path) -> list[str]:
    """Public module-level functions and classes of ``root``'s modules, and public methods of
    public classes (properties aside), that have no docstring, as ``path:line name``."""
    missing = []
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        where = path.relative_to(root.parent)
        for node in tree.body:
            if not isinstance(node, ast.FunctionDef | ast.ClassDef) or node.name.startswith("_"):
                continue
            if not ast.get_docstring(node):
                missing.append(f"{where}:{node.lineno} {node.name}")
            if not isinstance(node, ast.ClassDef):
                continue
            for sub in node.body:
                if (
                    isinstance(sub, ast.FunctionDef)
                    and not sub.name.startswith("_")
                    and not ast.get_docstring(sub)
                    and not any(isinstance(d, ast.Name) and d.id == "property" for d in sub.decorator_list)
                ):
                    missing.append(f"{where}:{sub.lineno} {node.name}.{sub.name}")
    return missing


def test_public_names_in_geo_have_docstrings():
    """Every public function, class and method of ``geo/`` says what it does (STYLE rule 6)."""
    missing = _undocumented(Path(__file__).resolve().parent.parent / "geo")
    assert not missing, "no docstring:\n" + "\n".join(missing)
