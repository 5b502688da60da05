"""Reading files users send: nothing they name outside the upload is opened or fetched, bombs
are refused from what they declare before they are read (and the server process stays small
while they are), and the reading helper's own limits hold.

Files that point elsewhere are watched from outside: a file whose opening is noticed (inotify), and a TCP listener on 127.0.0.1 that records any connection."""

from __future__ import annotations

import ctypes
import json
import os
import re
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pyogrio
import pyproj
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from geo.errors import InputError, TooLarge, UnsupportedFile
from geo.imports import dataset, importer, workspace
from geo.imports.batches import load_targets
from geo.reading import untrusted
from geo.reading.datasets import Dataset
from geo.reading.sources import open_source
from geo.reading.tables import read_table_file, scan_sheet
from tests.helpers import hostile
from tests.helpers.builders import EPSG_GK, X0, Y0, shapefile_zip, survey_shp, zip_of
from tests.helpers.hostile import MAX_RSS_BYTES, ROOT, post
from tests.helpers.postgis import open_test_store
from tests.helpers.web import Session

pytestmark = pytest.mark.backends

# the hostile-upload tests' fixtures: a store with a unit grid and a surveyor, and ``refuse``
data = hostile.data
scratch = hostile.scratch
app = hostile.app
surveyor = hostile.surveyor
refuse = hostile.refuse

# --- watchers ---------------------------------------------------------------------------------


class Canary:
    """A file with a secret that notices (inotify) when anything opens it."""

    IN_OPEN = 0x20
    IN_ACCESS = 0x01
    IN_NONBLOCK = 0o4000

    def __init__(self, path: Path):
        self.path = path
        path.write_text("SECRET-FROM-FILE\n")
        self._libc = ctypes.CDLL(None, use_errno=True)
        self._fd = self._libc.inotify_init1(self.IN_NONBLOCK)
        assert self._fd >= 0
        assert self._libc.inotify_add_watch(self._fd, str(path).encode(), self.IN_OPEN | self.IN_ACCESS) >= 0

    def close(self) -> bool:
        """Whether the file was opened since; stops watching."""
        time.sleep(0.1)
        try:
            opened = len(os.read(self._fd, 4096)) > 0
        except BlockingIOError:
            opened = False
        os.close(self._fd)
        return opened


class Listener:
    """A TCP server on 127.0.0.1 that records every connection."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.hits: list[bytes] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            conn.settimeout(1)
            try:
                self.hits.append(conn.recv(4096))
                conn.sendall(b"HTTP/1.0 200 OK\r\n\r\nSECRET-FROM-URL,x\n")
            except OSError:
                pass
            conn.close()

    def close(self) -> list[bytes]:
        time.sleep(0.1)
        self._stop.set()
        self._thread.join(5)
        self.sock.close()
        return self.hits


@pytest.fixture
def canary(tmp_path):
    return Canary(tmp_path / "secret.csv")


@pytest.fixture
def listener():
    server = Listener()
    yield server
    server.close()


def vrt(secret_path: Path, port: int) -> bytes:
    """A GDAL VRT that reads a local file (the pipe) and a URL (the listener) into a survey layer."""
    layer = (
        '<OGRVRTLayer name="{name}"><SrcDataSource>CSV:{src}</SrcDataSource>'
        '<OpenOptions><OOI key="HEADERS">NO</OOI></OpenOptions>'
        "<SrcSQL dialect=\"sqlite\">select 'L-1' as BH, field_1 as ZT, {x} as X, {y} as Y from {table}</SrcSQL>"
        "<GeometryType>wkbPoint</GeometryType><LayerSRS>EPSG:4326</LayerSRS>"
        '<GeometryField encoding="PointFromColumns" x="X" y="Y"/></OGRVRTLayer>'
    )
    return (
        "<OGRVRTDataSource>"
        + layer.format(name="a", src=secret_path, x=118.4, y=31.3, table=secret_path.stem)
        + layer.format(name="b", src=f"/vsicurl/http://127.0.0.1:{port}/x.csv", x=118.4, y=31.3, table="x")
        + "</OGRVRTDataSource>"
    ).encode()


# --- files that point elsewhere ---------------------------------------------------------------


def test_the_attack_is_real_outside_the_helper(tmp_path, canary, listener):
    """In a process with GDAL as it comes, the VRT named .geojson does read the file it names:
    what the tests below refuse is a real attack, not a file GDAL would reject anyway."""
    path = tmp_path / "survey.geojson"
    path.write_bytes(vrt(canary.path, listener.port))
    frame = pyogrio.read_dataframe(path, layer="a")
    assert "SECRET-FROM-FILE" in set(frame["ZT"])
    assert canary.close()


@pytest.mark.slow
@pytest.mark.parametrize(
    "name", ["survey.geojson", "survey.json", "survey.kml", "survey.gpkg", "上报.zip", "嵌套.zip"]
)
def test_a_vrt_under_any_name_is_refused_without_touching_what_it_names(
    refuse, tmp_path, canary, listener, name
):
    payload = vrt(canary.path, listener.port)
    if name == "上报.zip":
        payload = zip_of([("数据/survey.geojson", payload)])
    elif name == "嵌套.zip":
        payload = zip_of([("内层.zip", zip_of([("survey.kml", payload)]))])
    body = refuse(payload, name, 415, "content_mismatch")
    assert "SECRET" not in json.dumps(body, ensure_ascii=False)
    assert str(tmp_path) not in json.dumps(body, ensure_ascii=False)
    assert not canary.close()
    assert listener.close() == []


@pytest.mark.slow
def test_the_command_line_refuses_a_vrt_too(tmp_path, canary, listener):
    path = tmp_path / "survey.geojson"
    path.write_bytes(vrt(canary.path, listener.port))
    run = subprocess.run(
        [sys.executable, "-m", "geo.cli", "--data", str(tmp_path / "d"), "import", "demolition", str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 2, run.stderr
    assert "SECRET" not in run.stdout + run.stderr and "Traceback" not in run.stderr
    assert not canary.close()
    assert listener.close() == []


def _drivers() -> list[str]:
    return sorted(pyogrio.list_drivers())


@pytest.mark.slow
def test_only_the_accepted_drivers_are_registered_in_the_helper():
    assert set(untrusted.run(_drivers)) <= untrusted.ALLOWED_DRIVERS
    assert "OGR_VRT" in pyogrio.list_drivers()  # this process is untouched


def test_the_helper_cannot_open_a_vrt_even_past_the_content_check(tmp_path, canary, listener):
    path = tmp_path / "survey.geojson"
    path.write_bytes(vrt(canary.path, listener.port))
    with pytest.raises(InputError) as err:
        untrusted.run(pyogrio.read_dataframe, path)
    assert "SECRET" not in err.value.message
    assert not canary.close()
    assert listener.close() == []


def crs_link_geojson(port: int, member: str = "crs") -> bytes:
    return json.dumps(
        {
            "type": "FeatureCollection",
            member: {"type": "link", "properties": {"href": f"http://127.0.0.1:{port}/crs", "type": "proj4"}},
            "features": [
                {
                    "type": "Feature",
                    "properties": {"案件编号": "L1", "当前状态": "已登记"},
                    "geometry": {"type": "Point", "coordinates": [118.4, 31.3]},
                }
            ],
        }
    ).encode()


@pytest.mark.slow
def test_a_geojson_crs_link_is_refused_and_not_fetched(refuse, listener):
    body = refuse(crs_link_geojson(listener.port), "survey.geojson", 400, "crs_link")
    assert "链接" in body["message_zh"]
    assert listener.close() == []


def _read_geojson(path: Path) -> int:
    return len(pyogrio.read_dataframe(path))


@pytest.mark.slow
def test_the_helper_sends_no_request_for_a_crs_link_past_the_check(tmp_path, listener):
    """GDAL does fetch a GeoJSON's crs link (shown in this process); in the helper it cannot."""
    path = tmp_path / "link.geojson"
    path.write_bytes(crs_link_geojson(listener.port))
    assert untrusted.run(_read_geojson, path) == 1
    time.sleep(0.2)
    assert listener.hits == []
    pyogrio.read_dataframe(path)
    time.sleep(0.2)
    assert len(listener.close()) == 1


def _connect(port: int) -> str:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except OSError as exc:
        return f"refused: {exc.__class__.__name__}"
    return "connected"


@pytest.mark.slow
def test_the_helper_has_no_network_where_the_system_allows_it(listener):
    how = untrusted.network_isolation()
    assert how in ("namespace", "gdal")
    if how != "namespace":
        pytest.skip("this system allows no network namespace: GDAL's and PROJ's requests are refused instead")
    assert untrusted.run(_connect, listener.port).startswith("refused")
    assert listener.close() == []
    assert _connect_here(listener) == "connected"


def _connect_here(listener: Listener) -> str:
    other = Listener()
    try:
        return _connect(other.port)
    finally:
        other.close()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "payload"),
    [
        (
            "survey.geojson",
            b'<?xml version="1.0"?><gml:FeatureCollection xmlns:gml="http://www.opengis.net/gml"/>',
        ),
        (
            "survey.kml",
            b'<?xml version="1.0"?><!DOCTYPE kml [<!ENTITY x SYSTEM "file:///etc/passwd">]><kml>&x;</kml>',
        ),
        ("survey.kml", b"<OGRVRTDataSource><!-- <kml> --></OGRVRTDataSource>"),
        ("survey.gpkg", b"SQLite format 3\x00" + bytes(200)),
        ("survey.xlsx", b"PK\x05\x06" + bytes(18)),
        ("survey.json", b"\xef\xbb\xbf  [1, 2, 3]"),
    ],
)
def test_content_of_another_kind_is_refused(refuse, name, payload):
    refuse(payload, name, 415, "content_mismatch")


# --- bombs: refused from what they declare, the server process staying small --------------------


def _gpkg_with_view(path: Path, rows: int) -> None:
    """A GeoPackage whose feature table is a recursive view of ``rows`` rows (a few KB)."""
    import geopandas as gpd
    import shapely

    gpd.GeoDataFrame(
        {"案件编号": ["A"], "当前状态": ["已登记"]}, geometry=[shapely.Point(X0, Y0)], crs=EPSG_GK
    ).to_file(path, layer="real", engine="pyogrio")
    con = sqlite3.connect(path)
    geom = con.execute("SELECT geom FROM real").fetchone()[0]
    con.execute(
        f"CREATE VIEW bomb AS WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {rows}) "
        "SELECT i AS fid, 'B' || i AS 案件编号, '已登记' AS 当前状态, ? AS geom FROM n".replace(
            "?", "X'" + geom.hex() + "'"
        )
    )
    con.execute(
        "INSERT INTO gpkg_contents (table_name, data_type, identifier, srs_id) VALUES ('bomb', 'features', 'bomb', ?)",
        (EPSG_GK,),
    )
    con.execute("INSERT INTO gpkg_geometry_columns VALUES ('bomb', 'geom', 'POINT', ?, 0, 0)", (EPSG_GK,))
    con.execute("DELETE FROM gpkg_contents WHERE table_name = 'real'")
    con.commit()
    con.close()


def _xlsx(path: Path, far_cell: str | None = None, dimension: str | None = None) -> None:
    """A small workbook of sites; ``far_cell`` adds one value at that reference, ``dimension``
    makes the sheet declare that range."""
    import openpyxl

    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["经度", "纬度", "案件编号", "当前状态"])
    ws.append([118.4, 31.3, "X1", "已登记"])
    if far_cell:
        ws[far_cell] = "x"
    wb.save(path)
    if dimension:
        with zipfile.ZipFile(path) as zf:
            members = {n: zf.read(n) for n in zf.namelist()}
        sheet = "xl/worksheets/sheet1.xml"
        members[sheet], n = re.subn(
            rb'<dimension ref="[^"]*"', f'<dimension ref="{dimension}"'.encode(), members[sheet]
        )
        assert n == 1
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
            for n, b in members.items():
                zf.writestr(n, b)


def _dbf_shapefile(folder: Path, fields: int, rows: int) -> Path:
    """A point shapefile of ``rows`` sites in the unit grid whose DBF has 案件编号 and 当前状态
    and ``fields`` more one-byte fields, written straight as bytes (GDAL would take minutes).
    A random byte per record keeps the zip's compression ratio ordinary."""
    folder.mkdir(parents=True, exist_ok=True)
    shp = folder / "台账.shp"
    widths = [10, 6] + [1] * fields
    names = ["案件编号".encode("gbk"), "当前状态".encode("gbk")] + [f"F{i}".encode() for i in range(fields)]
    head_len = 32 + 32 * len(widths) + 1
    rec_len = 1 + sum(widths)
    header = bytearray(32)
    header[0] = 3
    header[1:4] = bytes([126, 1, 1])
    header[4:8] = rows.to_bytes(4, "little")
    header[8:10] = head_len.to_bytes(2, "little")
    header[10:12] = rec_len.to_bytes(2, "little")
    for name, width in zip(names, widths, strict=True):
        d = bytearray(32)
        d[: len(name)] = name
        d[11] = ord("C")
        d[16] = width
        header += d
    header += b"\r"
    records = np.full((rows, rec_len), 0x20, dtype=np.uint8)
    ids = np.array([f"W{i:09d}" for i in range(rows)], dtype="S10").view(np.uint8).reshape(rows, 10)
    records[:, 1:11] = ids
    records[:, 11:17] = np.frombuffer("已登记".encode("gbk"), dtype=np.uint8)
    rng = np.random.default_rng(7)
    if fields:
        cols = 17 + rng.integers(0, fields, rows)
        records[np.arange(rows), cols] = rng.integers(65, 91, rows, dtype=np.uint8)
    shp.with_suffix(".dbf").write_bytes(bytes(header) + records.tobytes() + b"\x1a")
    # points on a 3 x 3 grid of cells, 28-byte records
    xy = np.column_stack([X0 + 5 + (np.arange(rows) % 290), Y0 - 5 - (np.arange(rows) // 290) % 290]).astype(
        "<f8"
    )
    body = np.zeros((rows, 28), dtype=np.uint8)
    body[:, 0:4] = (np.arange(1, rows + 1, dtype=">i4")).view(np.uint8).reshape(rows, 4)
    body[:, 4:8] = np.frombuffer((10).to_bytes(4, "big"), dtype=np.uint8)
    body[:, 8:12] = np.frombuffer((1).to_bytes(4, "little"), dtype=np.uint8)
    body[:, 12:28] = xy.view(np.uint8).reshape(rows, 16)
    box = np.array([xy[:, 0].min(), xy[:, 1].min(), xy[:, 0].max(), xy[:, 1].max()], dtype="<f8").tobytes()

    def head(length_words: int) -> bytes:
        return (
            (9994).to_bytes(4, "big")
            + bytes(20)
            + length_words.to_bytes(4, "big")
            + (1000).to_bytes(4, "little")
            + (1).to_bytes(4, "little")
            + box
            + bytes(32)
        )

    shp.write_bytes(head((100 + 28 * rows) // 2) + body.tobytes())
    offsets = np.empty((rows, 2), dtype=">i4")
    offsets[:, 0] = (100 + 28 * np.arange(rows)) // 2
    offsets[:, 1] = 10
    shp.with_suffix(".shx").write_bytes(head((100 + 8 * rows) // 2) + offsets.tobytes())
    shp.with_suffix(".prj").write_text(pyproj.CRS.from_epsg(EPSG_GK).to_wkt("WKT1_ESRI"))
    return shp


def measure(data: Path, tmp_path: Path, payload: bytes, name: str) -> dict:
    """Upload ``payload`` in a server process of its own; its answer and peak memory."""
    return hostile.measure(data, tmp_path / ("payload-" + name), payload, name, 256 * 1024 * 1024)


def _bomb(case: str, tmp_path: Path) -> tuple[bytes, str]:
    kind, _, param = case.partition(":")
    if kind == "xlsx-far-cell":
        _xlsx(tmp_path / "b.xlsx", far_cell=param)
        return (tmp_path / "b.xlsx").read_bytes(), "台账.xlsx"
    if kind == "xlsx-dimension":
        _xlsx(tmp_path / "b.xlsx", dimension=param)
        return (tmp_path / "b.xlsx").read_bytes(), "台账.xlsx"
    if kind == "gpkg-view":
        _gpkg_with_view(tmp_path / "b.gpkg", int(param))
        return (tmp_path / "b.gpkg").read_bytes(), "台账.gpkg"
    if kind == "dbf-fields":
        fields, rows = (int(v) for v in param.split("x"))
        return shapefile_zip(_dbf_shapefile(tmp_path / "wide", fields, rows), compresslevel=1), "台账.zip"
    if kind == "csv-columns":
        header = ",".join(["经度", "纬度"] + [f"c{i}" for i in range(int(param))])
        return (header + "\n118.4,31.3\n").encode(), "台账.csv"
    if kind == "csv-line":
        return ("经度,纬度,案件编号\n118.4,31.3," + "x" * int(param) + "\n").encode(), "台账.csv"
    raise AssertionError(case)


BOMBS = {
    # case: (status, code)
    "xlsx-far-cell:XFD30000": (413, "too_many_columns"),
    "xlsx-far-cell:ALN7": (413, "too_many_columns"),  # column 1,002
    "xlsx-dimension:A1:XFD1048576": (413, "too_many_columns"),
    "gpkg-view:100000000": (400, "gpkg_view"),
    "gpkg-view:3000": (400, "gpkg_view"),
    "dbf-fields:2040x150000": (413, "too_many_fields"),
    "dbf-fields:1200x20000": (413, "too_many_fields"),
    "csv-columns:1000000": (413, "line_too_long"),
    "csv-columns:20000": (413, "too_many_columns"),
    "csv-line:300000": (413, "line_too_long"),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(BOMBS))
def test_bombs_are_refused_while_the_server_stays_small(data, tmp_path, case):
    payload, name = _bomb(case, tmp_path)
    out = measure(data, tmp_path, payload, name)
    assert (out["status"], out["body"]["error"]) == BOMBS[case], out["body"]
    assert out["rss_peak"] < MAX_RSS_BYTES and out["process_peak"] < MAX_RSS_BYTES
    print(
        f"{case}: {len(payload) / 1e6:.2f} MB refused in {out['seconds']:.2f} s; server process peak "
        f"{out['process_peak'] / 2**20:.0f} MiB ({(out['rss_peak'] - out['rss_before']) / 2**20:.0f} MiB above "
        "its size before the request)"
    )


@pytest.mark.slow
def test_a_wide_table_decodes_only_the_columns_the_layer_uses(data, tmp_path):
    """900 unused one-byte fields × 150,000 rows (135 MB of records): imported, with only the
    two mapped columns decoded, and the server process stays under 1 GB."""
    shp = _dbf_shapefile(tmp_path / "wide", 900, 150_000)
    out = measure(data, tmp_path, shapefile_zip(shp, compresslevel=1), "台账.zip")
    assert out["status"] == 201, out["body"]
    body = out["body"]
    assert body["rows_read"] == body["accepted"] == 150_000
    assert body["field_mapping"] == {"案件编号": "case_id", "当前状态": "status"}
    assert len(body["unmatched_fields"]) == 100 and body["unmatched_fields"][0] == "F0"
    assert out["process_peak"] < MAX_RSS_BYTES


@pytest.mark.slow
@pytest.mark.parametrize(("row", "code"), [(",,,", "no_geometry"), ("118.4,31.3,,乱写", "no_valid_rows")])
def test_a_report_of_many_broken_rows_stays_small(surveyor, row, code):
    rows = 400_000
    payload = ("经度,纬度,案件编号,违建面积\n" + (row + "\n") * rows).encode()
    resp = post(surveyor, payload, "台账.csv")
    assert resp.status_code == 400
    assert len(resp.data) < 100_000
    assert resp.get_json()["error"] == code


@pytest.mark.slow
def test_a_report_lists_the_first_thousand_rejected_rows_and_counts_all(surveyor):
    long_area = "未知" * 150
    lines = ["经度,纬度,案件编号,违建面积"] + [f"118.4,31.3,K{i},{long_area}" for i in range(3000)]
    lines += ["118.4,31.3,OK1,12"]
    resp = post(surveyor, ("\n".join(lines) + "\n").encode(), "台账.csv")
    assert resp.status_code == 201, resp.get_json()
    body = resp.get_json()
    assert body["rejected_count"] == 3000 and body["rejected_listed"] == len(body["rejected"]) == 1000
    assert body["accepted"] == 1
    assert all(len(r["value"]) <= 100 and len(r["reason_zh"]) < 100 for r in body["rejected"])
    assert body["rejected_by_reason"][0]["count"] == 3000
    assert len(resp.data) < 1_000_000


@pytest.mark.slow
def test_a_value_table_of_many_distinct_values_is_capped(surveyor):
    """3,000 distinct unknown statuses: every row is kept as unrecognised, the table lists the 200
    most frequent and counts the rest, and the report stays small."""
    lines = ["经度,纬度,案件编号,当前状态"] + [f"118.4,31.3,K{i},{'乱写' * 40}{i}" for i in range(3000)]
    lines += [f"118.4,31.3,D{i},暂缓拆除" for i in range(5)]
    resp = post(surveyor, ("\n".join(lines) + "\n").encode(), "台账.csv")
    assert resp.status_code == 201, resp.get_json()
    body = resp.get_json()
    assert body["accepted"] == 3005 and body["rejected_count"] == 0
    table = body["value_mappings"][0]
    assert (table["distinct"], table["listed"], len(table["values"])) == (3001, 200, 200)
    assert table["values"][0] == {
        "raw": "暂缓拆除",
        "code": "未识别",
        "how": "unrecognised",
        "count": 5,
        "suggestion": None,
        "qualified": True,
    }
    assert table["more_rows"] == 2801 and table["more_unrecognised"] == 2801
    assert all(len(v["raw"]) <= 100 for v in table["values"])
    assert len(resp.data) < 1_000_000


@pytest.mark.slow
def test_the_command_line_report_is_capped_too(tmp_path):
    from geo.cli import main

    lines = ["经度,纬度,案件编号,违建面积"] + [f"118.4,31.3,K{i},乱写{i}" for i in range(2500)]
    lines += ["118.4,31.3,OK1,12"]
    path = tmp_path / "台账.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "geo.cli",
            "--data",
            str(tmp_path / "d"),
            "import",
            "demolition",
            str(path),
            "--json",
            "--dry-run",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    body = json.loads(run.stdout)
    assert body["rejected_count"] == 2500 and len(body["rejected"]) == 1000
    assert main is not None


def test_targets_files_are_read_in_the_helper_with_the_same_caps(tmp_path):
    _xlsx(tmp_path / "目标.xlsx", far_cell="XFD30000")
    with open_test_store(tmp_path / "d") as store, pytest.raises(TooLarge) as err:
        load_targets(store, tmp_path / "目标.xlsx")
    assert err.value.code == "too_many_columns"
    (tmp_path / "目标.csv").write_bytes(("编码,图层,指标,目标" + ",x" * 5000 + "\n").encode())
    with open_test_store(tmp_path / "d") as store, pytest.raises(TooLarge):
        load_targets(store, tmp_path / "目标.csv")


def test_the_sheet_scan_counts_cells_references_and_the_declared_range(tmp_path):
    _xlsx(tmp_path / "a.xlsx", far_cell="AB70")
    with zipfile.ZipFile(tmp_path / "a.xlsx") as zf:
        assert scan_sheet(zf, "xl/worksheets/sheet1.xml") == (28, 70, 9)


def test_an_xlsx_reads_as_pandas_would(tmp_path):
    import pandas as pd

    _xlsx(tmp_path / "a.xlsx")
    frame, names, _ = read_table_file(tmp_path / "a.xlsx", "xlsx")
    expected = pd.read_excel(tmp_path / "a.xlsx", dtype=object)
    assert names == list(expected.columns)
    assert frame.astype(object).to_dict("list") == expected.to_dict("list")


def test_read_me_files_in_a_zip_are_not_unpacked(tmp_path):
    shp = survey_shp(tmp_path / "s")
    archive = tmp_path / "a.zip"
    archive.write_bytes(
        zip_of(
            [
                *((p.name, p.read_bytes()) for p in shp.parent.iterdir()),
                ("说明.txt", b"x" * 10_000),
                ("README.md", b"y"),
            ]
        )
    )
    work = tmp_path / "work"
    work.mkdir()
    source = open_source(archive, work)
    assert sorted(source.skipped) == ["README.md", "说明.txt"]
    assert not [p for p in work.rglob("*") if p.suffix in (".txt", ".md")]


# --- the helper's own limits ------------------------------------------------------------------


def _allocate(megabytes: int) -> int:
    block = bytearray(megabytes * 2**20)
    return len(block)


def _spin() -> None:
    while True:
        pass


def _sleep_and_tell(path: Path, seconds: float) -> None:
    told = path.with_name(path.name + ".part")
    told.write_text(str(os.getpid()))
    os.replace(told, path)  # whole when it appears
    time.sleep(seconds)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.slow
def test_memory_beyond_the_helpers_budget_is_a_clear_refusal():
    assert untrusted.run(_allocate, 100, limits=untrusted.ReadLimits(memory_bytes=1024**3)) == 100 * 2**20
    with pytest.raises(TooLarge) as err:
        untrusted.run(_allocate, 2048, limits=untrusted.ReadLimits(memory_bytes=1024**3))
    assert err.value.code == "read_limit"


@pytest.mark.slow
def test_cpu_time_beyond_the_helpers_budget_is_a_clear_refusal():
    started = time.monotonic()
    with pytest.raises(TooLarge) as err:
        untrusted.run(_spin, limits=untrusted.ReadLimits(cpu_seconds=1))
    assert err.value.code == "read_limit" and time.monotonic() - started < 30


@pytest.mark.slow
@pytest.mark.parametrize("how", ["wall time", "client gone"])
def test_a_read_no_one_waits_for_is_stopped(tmp_path, how):
    pidfile = tmp_path / "pid"
    if how == "wall time":
        # long enough for the helper to start on a busy machine and say who it is
        kwargs = {"limits": untrusted.ReadLimits(wall_seconds=8)}
        expected: type[Exception] = TooLarge
    else:
        kwargs = {"cancelled": pidfile.exists}  # the client goes once the read is under way
        expected = untrusted.ReadCancelled
    started = time.monotonic()
    with pytest.raises(expected):
        untrusted.run(_sleep_and_tell, pidfile, 120, **kwargs)
    assert time.monotonic() - started < 100  # not the helper's two minutes
    assert pidfile.exists() and not _alive(int(pidfile.read_text()))


def test_a_closed_connection_counts_as_a_client_gone():
    from web.clients import client_gone

    server, client = socket.socketpair()
    gone = client_gone({"gunicorn.socket": server})
    assert not gone()
    client.sendall(b"GET / HTTP/1.1\r\n")  # a pipelined request is not a goodbye
    assert not gone()
    server.recv(100)
    client.close()
    assert gone()
    server.close()
    assert client_gone({})() is False


def test_user_errors_raised_in_the_helper_arrive_as_themselves(tmp_path):
    path = tmp_path / "a.geojson"
    path.write_bytes(b"<gml/>")
    with pytest.raises(UnsupportedFile) as err:
        untrusted.run(
            dataset.read_upload,
            [Dataset("a.geojson", path, "geojson")],
            "demolition",
            None,
            None,
            None,
            None,
            10,
        )
    assert err.value.code == "content_mismatch" and err.value.status == 415


_CELL_VALUES = st.one_of(
    st.none(),
    st.just(float("nan")),
    st.text(max_size=8),
    st.sampled_from(["已拆除", "已登记", ""]),
    st.floats(allow_nan=False),
    st.dates(),
    st.booleans(),
    st.sampled_from([1, 1.0, 0, True, False, "1"]),
)


@pytest.mark.slow
@settings(max_examples=300)
@given(
    cells=st.lists(_CELL_VALUES, max_size=40),
    numbers=st.lists(st.floats(allow_nan=True), max_size=40),
)
def test_a_table_crosses_from_the_helper_unchanged(cells, numbers):
    """What the helper sends back (text as codes into distinct values) is the table it read:
    every value, None and NaN told apart, in order."""
    import pickle

    import pandas as pd

    n = min(len(cells), len(numbers))
    frame = pd.DataFrame(
        {"文本": pd.Series(cells[:n], dtype=object), "数值": pd.Series(numbers[:n], dtype=float)}
    )
    back = dataset.unpack_frame(pickle.loads(pickle.dumps(dataset.pack_frame(frame))))
    assert list(back.columns) == ["文本", "数值"] and len(back) == n
    for a, b in zip(frame["文本"], back["文本"], strict=True):
        assert (
            (a is None and b is None)
            or (a != a and b != b and b is not None)
            or (type(a) is type(b) and a == b)
        )
    np.testing.assert_array_equal(frame["数值"].to_numpy(), back["数值"].to_numpy())


@pytest.mark.slow
def test_the_helpers_limits_come_from_the_settings(data, monkeypatch):
    """Set through the environment, as in production: a helper given less memory than reading
    needs refuses every upload with a clear 413; the other limits reach the helper too."""
    from server import create_app
    from web.clients import read_limits

    monkeypatch.setenv("GRIDWATCH_DATA", str(data))
    monkeypatch.setenv("GRIDWATCH_READ_MEMORY", "32M")
    monkeypatch.setenv("GRIDWATCH_READ_CPU_SECONDS", "7")
    monkeypatch.setenv("GRIDWATCH_READ_SECONDS", "9")
    app = create_app({"TESTING": True})
    with app.app_context():
        assert read_limits() == untrusted.ReadLimits(
            memory_bytes=32 * 2**20, cpu_seconds=7, wall_seconds=9, max_rows=1_000_000
        )
    resp = post(Session(app, "surveyor"), "经度,纬度,案件编号\n118.4,31.3,A1\n".encode(), "台账.csv")
    assert resp.status_code == 413 and resp.get_json()["error"] == "read_limit", resp.get_json()
    monkeypatch.delenv("GRIDWATCH_READ_MEMORY")
    resp = post(
        Session(create_app({"TESTING": True}), "surveyor"),
        "经度,纬度,案件编号\n118.4,31.3,A1\n".encode(),
        "台账.csv",
    )
    assert resp.status_code == 201, resp.get_json()


def _two_years(archive: Path, a: Path, b: Path) -> Path:
    """A zip holding shapefile ``a`` under 2022年/ and ``b`` under 2023年/, both named 台账.shp."""
    archive.write_bytes(
        zip_of(
            [(f"2022年/{p.name}", p.read_bytes()) for p in a.parent.iterdir()]
            + [(f"2023年/{p.name}", p.read_bytes()) for p in b.parent.iterdir()]
        )
    )
    return archive


def test_member_names_a_dataset_exactly(tmp_path):
    """``--member`` takes the dataset's name in the upload, or a file name only one dataset
    has; never a stem that could pick a layer the user did not mean."""
    from geo.imports.importer import prepare_import
    from tests.helpers.builders import grid_frame, write_shp

    a = survey_shp(tmp_path / "a")
    b = survey_shp(tmp_path / "b", n=2)
    archive = _two_years(tmp_path / "两年.zip", a, b)
    with open_test_store(tmp_path / "d") as store:
        from geo.imports.importer import import_file

        import_file(store, "grid", write_shp(grid_frame(), tmp_path / "g" / "g.shp"))
        assert prepare_import(store, "demolition", archive, member="2023年/台账.shp").report.rows_read == 2
        for member in ("台账", "台账.shp", "2023年/台账", "2023"):
            with pytest.raises(InputError) as err:
                prepare_import(store, "demolition", archive, member=member)
            assert err.value.code == "no_such_member", member


@pytest.mark.parametrize("encoding", ["unicode_escape", "rot13", "base64", "utf-7"])
def test_an_encoding_that_is_no_text_encoding_is_refused_up_front(refuse, encoding):
    body = refuse(
        "经度,纬度,案件编号\n118.4,31.3,A\\x00B\n".encode(),
        "台账.csv",
        400,
        "not_text_encoding",
        encoding=encoding,
    )
    assert encoding in body["message_en"]


@pytest.mark.slow
def test_an_upload_name_with_direction_controls_shows_as_tampered(surveyor):
    resp = post(surveyor, "经度,纬度,案件编号\n118.4,31.3,A1\n".encode(), "报告\u202ecsv.exe.csv")
    assert resp.status_code == 201, resp.get_json()
    name = resp.get_json()["source_name"]
    assert "\u202e" not in name and "\ufffd" in name and name.endswith(".csv")


_GEOMETRIES = st.one_of(
    st.none(),
    st.builds(lambda x, y: shapely.Point(x, y), st.floats(-1e7, 1e7), st.floats(-1e7, 1e7)),
    st.builds(
        lambda x, y, z: shapely.Point(x, y, z), st.floats(-1e3, 1e3), st.floats(-1e3, 1e3), st.floats(-10, 10)
    ),
    st.just(shapely.Point()),
    st.builds(lambda x: shapely.box(x, 0, x + 1, 1), st.floats(-1e6, 1e6)),
)


@settings(max_examples=200)
@given(st.lists(_GEOMETRIES, max_size=30))
def test_geometry_crosses_from_the_helper_unchanged(geoms):
    import pickle

    array = np.array(geoms, dtype=object)
    back = dataset.unpack_geometry(pickle.loads(pickle.dumps(dataset.pack_geometry(array))))
    assert len(back) == len(array)
    for a, b in zip(array, back, strict=True):
        assert (
            (a is None and b is None)
            or (
                a is not None
                and b is not None
                and shapely.equals_exact(a, b, 0)
                and shapely.has_z(a) == shapely.has_z(b)
            )
            or (a is not None and a.is_empty and b.is_empty)
        )


# --- found by attacking the reading path --------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    "crs",
    [
        "+init={secret}:x",
        "+proj=longlat +ellps=GRS80 +nadgrids={secret}",
        "+proj=pipeline +step +proj=hgridshift +grids={secret}",
        "http://127.0.0.1:9/crs",
    ],
)
def test_a_crs_that_names_a_file_or_url_is_refused_without_opening_it(refuse, canary, crs):
    body = refuse(
        "经度,纬度,案件编号\n118.4,31.3,A1\n".encode(),
        "台账.csv",
        400,
        "crs_external",
        crs=crs.format(secret=canary.path),
    )
    assert "SECRET" not in json.dumps(body, ensure_ascii=False) and str(canary.path) not in json.dumps(body)
    assert not canary.close()


@pytest.mark.slow
def test_a_prj_that_names_a_file_is_refused_in_the_helper(refuse, tmp_path, canary):
    shp = survey_shp(tmp_path / "s")
    prj = f'GEOGCRS["x",BOUNDCRS[PARAMETERFILE["Latitude and longitude difference file","{canary.path}"]]]'
    refuse(shapefile_zip(shp, prj=prj.encode()), "上报.zip", 400, "crs_external")
    assert not canary.close()


def test_a_prj_that_cannot_be_read_is_not_quoted_back(refuse, tmp_path):
    shp = survey_shp(tmp_path / "s")
    body = refuse(shapefile_zip(shp, prj=b"not a CRS: /srv/secret/path"), "上报.zip", 400, "bad_crs")
    assert "/srv/secret" not in json.dumps(body, ensure_ascii=False)


@pytest.mark.slow
def test_vertices_are_counted_in_the_helper_for_every_kind(tmp_path):
    """A GeoJSON line of 200,000 vertices against a limit of 150,000: refused in the helper, so
    the server process never receives the geometry (shapefiles are refused from their headers)."""
    coords = [[118.4 + i * 1e-7, 31.3] for i in range(200_000)]
    path = tmp_path / "line.geojson"
    path.write_text(
        json.dumps(
            {
                "type": "FeatureCollection",
                "features": [
                    {
                        "type": "Feature",
                        "properties": {"案件编号": "L"},
                        "geometry": {"type": "LineString", "coordinates": coords},
                    }
                ],
            }
        )
    )
    with pytest.raises(TooLarge) as err:
        untrusted.run(
            dataset.read_upload,
            [Dataset("line.geojson", path, "geojson")],
            "demolition",
            None,
            None,
            None,
            None,
            150_000,
        )
    assert err.value.code == "too_many_vertices"


def _central_directory_flood(entries: int) -> bytes:
    """A zip of one empty member listed ``entries`` times in its central directory."""
    import struct

    name = b"a"
    local = struct.pack("<4s5H3I2H", b"PK\x03\x04", 20, 0, 0, 0, 0x21, 0, 0, 0, len(name), 0) + name
    record = (
        struct.pack("<4s6H3I5H2I", b"PK\x01\x02", 20, 20, 0, 0, 0, 0x21, 0, 0, 0, len(name), 0, 0, 0, 0, 0, 0)
        + name
    )
    directory = record * entries
    end = struct.pack("<4s4H2IH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, len(directory), len(local), 0)
    return local + directory + end


@pytest.mark.slow
@pytest.mark.parametrize("name", ["上报.zip", "台账.xlsx"])
def test_a_central_directory_flood_is_refused_before_it_is_parsed(data, tmp_path, name):
    """Three million entries (140 MB): refused from the end record in a fraction of the time and
    memory zipfile would take to list them (1.4 GB)."""
    out = measure(data, tmp_path, _central_directory_flood(3_000_000), name)
    assert (out["status"], out["body"]["error"]) == (413, "zip_too_many_files"), out["body"]
    assert out["rss_peak"] - out["rss_before"] < 300 * 2**20
    print(
        f"{name}: refused in {out['seconds']:.2f} s, {(out['rss_peak'] - out['rss_before']) / 2**20:.0f} MiB above the process before it"
    )


def _raise_bad_alloc() -> None:
    raise RuntimeError("std::bad_alloc")


@pytest.mark.slow
def test_an_allocation_refused_inside_gdal_or_geos_is_a_memory_refusal():
    with pytest.raises(TooLarge) as err:
        untrusted.run(_raise_bad_alloc)
    assert err.value.code == "read_limit"


@pytest.mark.slow
@pytest.mark.parametrize(
    "crs",
    [
        '{"type": "\\u006cink", "properties": {"\\u0068ref": "http://127.0.0.1:9/x"}}',
        '{"properties": {"pad": "' + "x" * 5000 + '", "href": "http://127.0.0.1:9/x"}, "type": "link"}',
    ],
)
def test_a_disguised_crs_link_is_refused_too(refuse, crs):
    text = (
        '{"type": "FeatureCollection", "crs": ' + crs + ', "features": [{"type": "Feature", '
        '"properties": {"案件编号": "L1"}, "geometry": {"type": "Point", "coordinates": [118.4, 31.3]}}]}'
    )
    refuse(text.encode(), "survey.geojson", 400, "crs_link")


def test_a_geopackage_with_a_view_outside_its_contents_is_refused(refuse, tmp_path):
    import geopandas as gpd

    path = tmp_path / "v.gpkg"
    gpd.GeoDataFrame({"案件编号": ["A"]}, geometry=[shapely.Point(X0 + 50, Y0 - 50)], crs=EPSG_GK).to_file(
        path, layer="sites", engine="pyogrio"
    )
    con = sqlite3.connect(path)
    con.execute(
        "CREATE VIEW v AS WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT i FROM n"
    )
    con.commit()
    con.close()
    refuse(path.read_bytes(), "台账.gpkg", 400, "gpkg_view")


@pytest.mark.slow
def test_uploads_hold_at_most_the_configured_rows(data, monkeypatch):
    """Set through the environment: more rows than GRIDWATCH_UPLOAD_MAX_ROWS is a 413 from the
    helper, so the server process never builds them; the command line is not bound by it."""
    from server import create_app

    monkeypatch.setenv("GRIDWATCH_DATA", str(data))
    monkeypatch.setenv("GRIDWATCH_UPLOAD_MAX_ROWS", "5")
    session = Session(create_app({"TESTING": True}), "surveyor")
    rows = "".join(f"118.4,31.3,R{i}\n" for i in range(6))
    resp = post(session, ("经度,纬度,案件编号\n" + rows).encode(), "台账.csv")
    assert resp.status_code == 413 and resp.get_json()["error"] == "too_many_rows", resp.get_json()
    assert "命令行" in resp.get_json()["message_zh"]
    rows = "".join(f"118.4,31.3,R{i}\n" for i in range(5))
    assert post(session, ("经度,纬度,案件编号\n" + rows).encode(), "台账.csv").status_code == 201


@pytest.mark.slow
def test_large_files_are_cleaned_one_at_a_time(tmp_path, monkeypatch):
    """Four large uploads prepared at once in one process: their cleaning and assignment (about
    1 KB a row in the server process) runs one at a time, so memory does not add up; small
    files are not held up."""
    from geo.imports.importer import import_file, prepare_import
    from tests.helpers.builders import grid_frame, write_shp

    monkeypatch.setattr(workspace, "LARGE_IMPORT_ROWS", 3)
    inside = {"now": 0, "most": 0}
    lock = threading.Lock()
    original = importer.build_rows

    def counting(*args, **kwargs):
        with lock:
            inside["now"] += 1
            inside["most"] = max(inside["most"], inside["now"])
        time.sleep(0.3)
        try:
            return original(*args, **kwargs)
        finally:
            with lock:
                inside["now"] -= 1

    monkeypatch.setattr(importer, "build_rows", counting)
    with open_test_store(tmp_path / "d") as store:
        import_file(store, "grid", write_shp(grid_frame(), tmp_path / "g" / "g.shp"))
    paths = []
    for k, n in enumerate((4, 4, 4, 4, 2, 2)):
        path = tmp_path / f"f{k}.csv"
        path.write_text(
            "经度,纬度,案件编号\n" + "".join(f"118.4,31.3,F{k}-{i}\n" for i in range(n)), encoding="utf-8"
        )
        paths.append(path)
    errors: list[BaseException] = []

    def prepare(path: Path) -> None:
        try:
            with open_test_store(tmp_path / "d") as store:
                prepare_import(store, "demolition", path)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=prepare, args=(p,)) for p in paths[:4]]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and inside["most"] == 1
    inside["most"] = 0
    threads = [threading.Thread(target=prepare, args=(p,)) for p in paths[4:]]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and inside["most"] == 2  # small ones together


@pytest.mark.slow
def test_each_dataset_of_a_file_imports_once(tmp_path):
    """A zip of two years' sites: importing one member, then the other, imports both; the same
    member again is the duplicate."""
    from geo.imports.importer import import_file
    from tests.helpers.builders import grid_frame, points_frame, write_shp

    a = write_shp(
        points_frame([(X0 + 50, Y0 - 50 - i) for i in range(3)], 案件编号=["A0", "A1", "A2"]),
        tmp_path / "a" / "台账.shp",
    )
    b = write_shp(
        points_frame([(X0 + 150, Y0 - 50 - i) for i in range(2)], 案件编号=["B0", "B1"]),
        tmp_path / "b" / "台账.shp",
    )
    archive = _two_years(tmp_path / "两年.zip", a, b)
    with open_test_store(tmp_path / "d") as store:
        import_file(store, "grid", write_shp(grid_frame(), tmp_path / "g" / "g.shp"))
        first = import_file(store, "demolition", archive, member="2022年/台账.shp")
        second = import_file(store, "demolition", archive, member="2023年/台账.shp")
        assert (first.status, first.added, second.status, second.added) == ("committed", 3, "committed", 2)
        again = import_file(store, "demolition", archive, member="2022年/台账.shp")
        assert again.status == "duplicate" and again.duplicate_of == first.batch_id


def test_work_folders_left_by_a_killed_import_are_removed(tmp_path, monkeypatch):
    import tempfile

    from geo.imports.importer import import_file
    from tests.helpers.builders import grid_frame, write_shp

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    stale = tmp_path / "tmp" / "gridwatch-import-killed"
    (stale / "unzipped").mkdir(parents=True)
    (stale / "unzipped" / "台账.dbf").write_bytes(b"x" * 1000)
    os.utime(stale, (time.time() - 7 * 3600, time.time() - 7 * 3600))
    recent = tmp_path / "tmp" / "gridwatch-import-running"
    recent.mkdir()
    with open_test_store(tmp_path / "d") as store:
        import_file(store, "grid", write_shp(grid_frame(), tmp_path / "g" / "g.shp"))
    assert not stale.exists() and recent.exists()
    assert sorted(p.name for p in (tmp_path / "tmp").glob("gridwatch-import-*")) == [
        "gridwatch-import-running"
    ]
