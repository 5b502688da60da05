"""Shared fixtures: a tiny unit grid around 118.4°E 31.3°N and writers for the kinds of
files surveyors hand in (GBK DBF without .cpg, missing .prj, zips with sub-folders)."""

from __future__ import annotations

import os
import threading
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyproj
import pytest
import shapely

from geo.store.backends import open_store

EPSG_GK = 4548  # CGCS2000 3-degree GK CM 117E
_T = pyproj.Transformer.from_crs(4490, EPSG_GK, always_xy=True)
X0, Y0 = (round(v, -2) for v in _T.transform(118.4, 31.3))

COMM_A = "340291001001"
COMM_B = "340291001002"


def grid_frame() -> gpd.GeoDataFrame:
    """3 x 3 cells of 100 m: row 0 (north) and row 1 in community A, row 2 in community B.

    Codes follow the 15-digit rule and run west→east, north→south.
    """
    cells, codes, comms, names = [], [], [], []
    seq = {COMM_A: 0, COMM_B: 0}
    for row in range(3):
        for col in range(3):
            comm = COMM_A if row < 2 else COMM_B
            seq[comm] += 1
            x = X0 + col * 100
            y = Y0 - (row + 1) * 100
            cells.append(shapely.box(x, y, x + 100, y + 100))
            codes.append(f"{comm}{seq[comm]:03d}")
            comms.append("赭山社区" if comm == COMM_A else "镜湖社区")
            names.append(f"网格{seq[comm]:03d}")
    return gpd.GeoDataFrame(
        {
            "网格编码": codes,
            "网格名称": names,
            "所属社区": comms,
            "所属街道": ["弋江街道"] * 9,
            "网格员": ["王芳"] * 9,
        },
        geometry=cells,
        crs=EPSG_GK,
    )


def write_shp(
    gdf: gpd.GeoDataFrame,
    path: Path,
    *,
    encoding: str = "GBK",
    cpg: bool = False,
    ldid: int | None = 0x00,
    prj: bool = True,
) -> Path:
    """Write ``gdf`` as a shapefile the way surveyors' tools do: GBK DBF, no .cpg, LDID 0."""
    path.parent.mkdir(parents=True, exist_ok=True)
    gdf.to_file(path, engine="pyogrio", encoding=encoding)
    if not cpg:
        path.with_suffix(".cpg").unlink(missing_ok=True)
    if ldid is not None:
        dbf = path.with_suffix(".dbf")
        data = bytearray(dbf.read_bytes())
        data[29] = ldid
        dbf.write_bytes(bytes(data))
    if not prj:
        path.with_suffix(".prj").unlink(missing_ok=True)
    return path


class GbkZipInfo(zipfile.ZipInfo):
    """A zip entry whose name is stored as GBK bytes without the UTF-8 flag, as Windows tools write."""

    def _encodeFilenameFlags(self):
        return self.filename.encode("gbk"), self.flag_bits & ~0x800


def zip_shp(shp: Path, zpath: Path, folder: str = "", gbk_names: bool = True) -> Path:
    """Zip a shapefile's parts into ``folder/`` inside ``zpath``; names GBK without the UTF-8 flag."""
    with zipfile.ZipFile(zpath, "w", zipfile.ZIP_DEFLATED) as zf:
        for part in sorted(shp.parent.glob(shp.stem + ".*")):
            name = f"{folder}{part.name}"
            info = GbkZipInfo(name) if gbk_names else zipfile.ZipInfo(name)
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, part.read_bytes())
    return zpath


def points_frame(xy: list[tuple[float, float]], **cols: list[object]) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(cols, geometry=shapely.points(np.asarray(xy, dtype=float)), crs=EPSG_GK)


def dated_sites() -> gpd.GeoDataFrame:
    """Two sites with found and demolition dates: A1 demolished 2022-03-01, A2 found 2022-05-20."""
    return points_frame(
        [(X0 + 50, Y0 - 50), (X0 + 150, Y0 - 50)],
        案件编号=["A1", "A2"],
        当前状态=["已拆除", "已登记"],
        发现时间=["2022-01-05", "2022-05-20"],
        拆除时间=["2022-03-01", ""],
    )


def open_app(data: Path, **config: object):
    """The real app on the store in ``data``, signed-in checks and CSRF off (route tests)."""
    from server import create_app

    return create_app(
        {
            "GRIDWATCH_DATA": str(data),
            "TESTING": True,
            "LOGIN_DISABLED": True,
            "WTF_CSRF_ENABLED": False,
            **config,
        }
    )


@pytest.fixture
def store(tmp_path: Path):
    s = open_store(tmp_path / "data")
    yield s
    s.close()


@pytest.fixture
def grid_shp(tmp_path: Path) -> Path:
    return write_shp(grid_frame(), tmp_path / "in" / "网格.shp")


@pytest.fixture
def gridded_store(store, grid_shp):
    from geo.imports.importer import import_file

    import_file(store, "grid", grid_shp)
    return store


@pytest.fixture(autouse=True)
def _isolate_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GRIDWATCH_DATA", str(tmp_path / "envdata"))
    os.environ.pop("GRIDWATCH_CRS", None)


@contextmanager
def serving(app) -> Iterator[int]:
    """Serve ``app`` on 127.0.0.1 (a threaded development server) for the block; yields the port."""
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_port
    finally:
        server.shutdown()
        thread.join(timeout=10)
