"""Builders of the files surveyors hand in and of the requests that carry them: a tiny unit
grid around 118.4°E 31.3°N, survey points, shapefiles as surveyors' tools write them (GBK DBF
without .cpg, LDID 0, missing .prj), zips with sub-folders and GBK member names, and multipart
bodies as a browser sends them."""

from __future__ import annotations

import io
import zipfile
import zlib
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyproj
import shapely

EPSG_GK = 4548  # CGCS2000 3-degree GK CM 117E
#: CGCS2000 lon/lat (EPSG:4490) to :data:`EPSG_GK`, x/y order.
LONLAT_TO_GK = pyproj.Transformer.from_crs(4490, EPSG_GK, always_xy=True)
X0, Y0 = (round(v, -2) for v in LONLAT_TO_GK.transform(118.4, 31.3))

COMM_A = "340291001001"
COMM_B = "340291001002"


# --- frames -----------------------------------------------------------------------------------


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


def points_frame(xy: list[tuple[float, float]], **cols: list[object]) -> gpd.GeoDataFrame:
    """Points at ``xy`` (:data:`EPSG_GK` metres) with the columns ``cols``."""
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


# --- shapefiles -------------------------------------------------------------------------------


def write_shp(
    gdf: gpd.GeoDataFrame,
    path: Path,
    *,
    encoding: str = "GBK",
    cpg: bool = False,
    ldid: int | None = 0x00,
    prj: bool = True,
) -> Path:
    """Write ``gdf`` as a shapefile the way surveyors' tools do: GBK DBF, no .cpg, LDID 0.

    ``ldid=None`` leaves the DBF's language driver byte as GDAL wrote it.
    """
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


def survey_shp(folder: Path, n: int = 3, geoms=None) -> Path:
    """A valid survey shapefile ``folder/台账.shp``: ``n`` sites inside the unit grid (points, or ``geoms``)."""
    if geoms is None:
        geoms = shapely.points(np.column_stack([X0 + 50 + 100 * np.arange(n) % 300, Y0 - 50 - np.arange(n)]))
    frame = gpd.GeoDataFrame(
        {"案件编号": [f"H{i}" for i in range(len(geoms))], "当前状态": ["已登记"] * len(geoms)},
        geometry=list(geoms),
        crs=EPSG_GK,
    )
    return write_shp(frame, folder / "台账.shp")


# --- zips -------------------------------------------------------------------------------------


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


def shapefile_entries(shp: Path, folder: str = "") -> list[tuple[str, bytes]]:
    """The shapefile's parts as zip entries ``(folder + name, bytes)``."""
    return [(folder + p.name, p.read_bytes()) for p in sorted(shp.parent.glob(shp.stem + ".*"))]


def zip_of(entries: list[tuple[str, bytes]], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    """A zip, in memory, of ``entries`` ``(name, bytes)``."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as zf:
        for name, payload in entries:
            zf.writestr(zipfile.ZipInfo(name), payload, compress_type=method)
    return buf.getvalue()


def shapefile_zip(path: Path, /, compresslevel: int | None = None, **replace: bytes) -> bytes:
    """The shapefile's parts zipped in memory, some replaced (``dbf=b"..."``)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=compresslevel) as zf:
        for part in sorted(path.parent.glob(path.stem + ".*")):
            zf.writestr(part.name, replace.get(part.suffix[1:].lower(), part.read_bytes()))
    return buf.getvalue()


# --- multipart bodies -------------------------------------------------------------------------


def multipart_head(
    boundary: str, name: str, file_type: str = "application/octet-stream", **form: str
) -> bytes:
    """The start of a multipart body: the ``form`` fields, then the headers of a file part
    named ``name``; the file's bytes and :func:`multipart_tail` follow."""
    assert '"' not in name
    head = "".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n' for k, v in form.items()
    )
    head += f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
    head += f"Content-Type: {file_type}\r\n\r\n"
    return head.encode()


def multipart_tail(boundary: str) -> bytes:
    """The end of a multipart body after the file's bytes."""
    return f"\r\n--{boundary}--\r\n".encode()


def multipart(
    payload: bytes, name: str, file_type: str = "application/octet-stream", **form: str
) -> tuple[bytes, str]:
    """A multipart body as a browser sends it, and its content type (encoded here rather than by
    the test client, which would spool a large one to a temporary file it never closes)."""
    boundary = "gridwatch-hostile-" + zlib.crc32(payload).to_bytes(4, "big").hex()
    body = multipart_head(boundary, name, file_type, **form) + payload + multipart_tail(boundary)
    return body, f"multipart/form-data; boundary={boundary}"
