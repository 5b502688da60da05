"""Hostile uploads over HTTP, signed in as a surveyor with a real account: zip slip, zip bombs,
floods of files, bodies above the size limit, damaged DBF/SHX/SHP files and a polygon of a
million vertices are each refused with a clear JSON 4xx in the request's language, in bounded
time and memory, and nothing is written (no batch, feature or audit entry; nothing left in the
staging folder or the scratch directory).  Then survey text carrying markup and script: every
HTML page and JSON answer carries it escaped only."""

from __future__ import annotations

import io
import json
import re
import socket
import struct
import subprocess
import sys
import tempfile
import time
import zipfile
import zlib
from functools import lru_cache
from pathlib import Path
from urllib.parse import quote

import geopandas as gpd
import numpy as np
import pytest
import shapely
from markupsafe import escape

import layers
from geo.errors import TooLarge
from geo.imports import dataset, geometry
from geo.imports.importer import import_file
from geo.imports.uploads import uploads_dir
from geo.reading import sources
from geo.reading.datasets import Dataset
from geo.reading.zips import ZipLimits
from geo.store import accounts
from geo.store.backends import open_store
from server import create_app
from tests.conftest import EPSG_GK, X0, Y0, grid_frame, points_frame, serving, write_shp, zip_shp
from tests.test_auth import PASSWORDS, Session

ROOT = Path(__file__).resolve().parent.parent
MAX_UPLOAD = 16 * 1024 * 1024
#: A generous bound on a refusing process's peak memory (it starts at about 0.3 GB).
MAX_RSS_BYTES = 1024**3
_CJK = re.compile(r"[\u4e00-\u9fff]")


@pytest.fixture
def data(tmp_path):
    data = tmp_path / "store"
    with open_store(data) as store:
        import_file(store, "grid", write_shp(grid_frame(), tmp_path / "g" / "g.shp"))
        accounts.add_user(store, "surveyor", "surveyor", PASSWORDS["surveyor"])
    return data


@pytest.fixture
def scratch(tmp_path, monkeypatch):
    """The directory imports unpack into, checked to be empty after every refusal."""
    path = tmp_path / "scratch"
    path.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(path))
    return path


@pytest.fixture
def app(data, scratch):
    return create_app({"GRIDWATCH_DATA": str(data), "TESTING": True, "MAX_CONTENT_LENGTH": MAX_UPLOAD})


@pytest.fixture
def surveyor(app):
    return Session(app, "surveyor")


def _state(data: Path, scratch: Path) -> tuple[object, ...]:
    """Everything an upload could leave behind."""
    with open_store(data) as store:
        batches = [(b.id, b.status) for b in store.batches()]
        features = {s.name: store.layer_count(s) for s in layers.all_layers()}
        audit = len(store.audit_entries(limit=10_000))
    staged = sorted(p.name for p in uploads_dir(data).glob("*") if not p.name.startswith("."))  # not locks
    return batches, features, audit, staged, sorted(p.name for p in scratch.iterdir())


def multipart(payload: bytes, name: str, **form: str) -> tuple[bytes, str]:
    """A multipart body as a browser sends it (encoded here rather than by the test client,
    which would spool a large one to a temporary file it never closes)."""
    assert '"' not in name
    boundary = "gridwatch-hostile-" + zlib.crc32(payload).to_bytes(4, "big").hex()
    head = "".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n' for k, v in form.items()
    )
    head += f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
    head += "Content-Type: application/octet-stream\r\n\r\n"
    body = head.encode() + payload + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def post(session: Session, payload: bytes, name: str, lang: str = "zh", **form: str):
    """Upload in Chinese (no language asked for, none remembered) or in English (``?lang=en``)."""
    form.setdefault("layer", "demolition")
    session.client.delete_cookie("gridwatch_lang")
    body, content_type = multipart(payload, name, **form)
    return session.request(
        "POST", "/api/uploads" + ("?lang=en" if lang == "en" else ""), data=body, content_type=content_type
    )


def assert_clear_error(resp, status: int, code: str, lang: str = "zh") -> dict:
    """A JSON error with the status and code, its message in ``lang``, and no trace of Python."""
    text = resp.get_data(as_text=True)
    assert resp.status_code == status, text[:500]
    assert resp.is_json, text[:500]
    body = resp.get_json()
    assert body["error"] == code, body
    assert body["message"] == (body["message_en"] if lang == "en" else body["message_zh"])
    assert _CJK.search(body["message_zh"]) and re.search("[A-Za-z]{3}", body["message_en"])
    assert "Traceback" not in text and 'File "' not in text
    return body


@pytest.fixture
def refuse(surveyor, data, scratch):
    """Upload ``payload`` in Chinese and in English: refused with ``status``/``code``, nothing
    written or left behind.  Returns the Chinese answer."""

    def check(payload: bytes, name: str, status: int, code: str, **form: str) -> dict:
        before = _state(data, scratch)
        answers = {}
        for lang in ("zh", "en"):
            answers[lang] = assert_clear_error(
                post(surveyor, payload, name, lang, **form), status, code, lang
            )
            assert _state(data, scratch) == before
        assert answers["zh"]["message_en"] == answers["en"]["message"]
        return answers["zh"]

    return check


# --- building hostile files -------------------------------------------------------------------


def survey_shp(folder: Path, n: int = 3, geoms=None) -> Path:
    """A valid survey shapefile: ``n`` sites inside the unit grid (points, or ``geoms``)."""
    if geoms is None:
        geoms = shapely.points(np.column_stack([X0 + 50 + 100 * np.arange(n) % 300, Y0 - 50 - np.arange(n)]))
    frame = gpd.GeoDataFrame(
        {"案件编号": [f"H{i}" for i in range(len(geoms))], "当前状态": ["已登记"] * len(geoms)},
        geometry=list(geoms),
        crs=EPSG_GK,
    )
    return write_shp(frame, folder / "台账.shp")


def shapefile_zip(path: Path, /, **replace: bytes) -> bytes:
    """The shapefile's parts zipped, some replaced (``dbf=b"..."``)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for part in sorted(path.parent.glob(path.stem + ".*")):
            zf.writestr(part.name, replace.get(part.suffix[1:].lower(), part.read_bytes()))
    return buf.getvalue()


def zip_of(entries: list[tuple[str, bytes]], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as zf:
        for name, payload in entries:
            zf.writestr(zipfile.ZipInfo(name), payload, compress_type=method)
    return buf.getvalue()


def shapefile_entries(shp: Path, folder: str = "") -> list[tuple[str, bytes]]:
    return [(folder + p.name, p.read_bytes()) for p in sorted(shp.parent.glob(shp.stem + ".*"))]


_CHUNK = 64 * 1024 * 1024


@lru_cache(maxsize=1)
def _zeros() -> tuple[bytes, int]:
    """64 MiB of zero bytes as raw deflate data ending on a full flush (so copies of it can be
    strung together into one stream), and its CRC-32."""
    block = bytes(_CHUNK)
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    return comp.compress(block) + comp.flush(zlib.Z_FULL_FLUSH), zlib.crc32(block)


_END = zlib.compressobj(9, zlib.DEFLATED, -15).flush()  # an empty final block


def raw_zip(members: list[tuple[str, bytes, int, int, int]]) -> bytes:
    """A zip written by hand from members ``(name, data, crc, declared size, method)`` whose
    data is already compressed, so that gigabytes of zeros cost a copy of one small stream."""
    out = io.BytesIO()
    central = []
    for name, payload, crc, size, method in members:
        raw_name = name.encode()
        offset = out.tell()
        fixed = (20, 0x800, method, 0, 0x21, crc, len(payload), size, len(raw_name))
        out.write(struct.pack("<4s5H3I2H", b"PK\x03\x04", *fixed, 0))
        out.write(raw_name + payload)
        central.append(
            struct.pack("<4s6H3I5H2I", b"PK\x01\x02", 20, *fixed, 0, 0, 0, 0, 0, offset) + raw_name
        )
    start = out.tell()
    out.write(b"".join(central))
    size = out.tell() - start
    out.write(struct.pack("<4s4H2IH", b"PK\x05\x06", 0, 0, len(central), len(central), size, start, 0))
    return out.getvalue()


def zeros_member(name: str, chunks: int = 1) -> tuple[str, bytes, int, int, int]:
    """A member of ``chunks`` × 64 MiB of zeros (one chunk: a 64 KB stream)."""
    stream, crc = _zeros()
    if chunks != 1:
        crc = 0
        for _ in range(chunks):
            crc = zlib.crc32(bytes(_CHUNK), crc)
    return name, stream * chunks + _END, crc, chunks * _CHUNK, zipfile.ZIP_DEFLATED


def zip_bomb(members: int = 96, stem: str = "炸弹/part", suffix: str = ".dbf") -> bytes:
    """``members`` × 64 MiB of zeros (6 GiB by default) in a zip of about 6 MB."""
    return raw_zip([zeros_member(f"{stem}{i:03d}{suffix}") for i in range(members)])


# --- zip slip, bombs, floods ------------------------------------------------------------------


@pytest.mark.parametrize(
    "entry",
    [
        "../evil.shp",
        "../../evil.dbf",
        "台账/../../evil.shp",
        "{abs}/evil.shp",
        "..\\evil.shp",
        "台账\\..\\..\\evil.shx",
        "\\evil.shp",
        "\\\\server\\share\\evil.shp",
        "C:\\evil.shp",
        "C:/evil.shp",
        "C:evil.shp",
    ],
)
def test_zip_slip_is_refused(refuse, tmp_path, entry):
    outside = tmp_path / "outside"
    outside.mkdir()
    entry = entry.replace("{abs}", str(outside))
    shp = survey_shp(tmp_path / "s")
    entries = shapefile_entries(shp, "台账/")
    entries.insert(2, (entry, b"\x00" * 100))
    body = refuse(zip_of(entries), "上报.zip", 400, "zip_unsafe_path")
    assert entry in body["message_zh"]
    assert not list(outside.iterdir())
    assert not [p for p in tmp_path.rglob("evil*")]


def test_zip_bomb_of_gigabytes_is_refused_before_unpacking(refuse, tmp_path, monkeypatch):
    opened: list[str] = []
    original = zipfile.ZipFile.open

    def open_member(self, name, *args, **kwargs):
        opened.append(getattr(name, "filename", name))
        return original(self, name, *args, **kwargs)

    monkeypatch.setattr(zipfile.ZipFile, "open", open_member)
    bomb = zip_bomb()
    assert len(bomb) < 8 * 1024 * 1024
    assert sum(i.file_size for i in zipfile.ZipFile(io.BytesIO(bomb)).infolist()) == 6 * 1024**3
    refuse(bomb, "上报.zip", 413, "zip_bomb")
    # inside another zip, stored so that the outer one looks harmless
    shp = survey_shp(tmp_path / "s")
    nested = zip_of([*shapefile_entries(shp), ("附件/资料.zip", bomb)], zipfile.ZIP_STORED)
    refuse(nested, "上报.zip", 413, "zip_bomb")
    # an .xlsx or .kmz is a zip its reader unpacks in memory: the same caps
    refuse(zip_bomb(48, "xl/worksheets/sheet", ".xml"), "台账.xlsx", 413, "zip_bomb")
    with_kmz = zip_of(
        [*shapefile_entries(shp), ("轨迹.kmz", zip_bomb(48, "doc", ".kml"))], zipfile.ZIP_STORED
    )
    refuse(with_kmz, "上报.zip", 413, "zip_bomb")
    assert opened and not [n for n in opened if n.startswith(("炸弹/", "xl/", "doc"))]  # none read


def test_a_member_larger_than_declared_is_refused(refuse, tmp_path):
    """Zipfile yields no more than a member's declared size, so a member that inflates to
    1 GiB while declaring 1,000 bytes fails its check instead of filling the disk."""
    shp = survey_shp(tmp_path / "s")
    name, stream, crc, _size, method = zeros_member("台账.dbf", chunks=16)
    members = [(n, zlib.compress(d)[2:-4], zlib.crc32(d), len(d), 8) for n, d in shapefile_entries(shp)]
    members = [m for m in members if not m[0].endswith(".dbf")] + [(name, stream, crc, 1000, method)]
    refuse(raw_zip(members), "上报.zip", 400, "bad_zip")


def _padded_inner(megabytes: int) -> bytes:
    """A zip expanding to ``megabytes`` MiB at a ratio under the cap (200): zeros, plus a stored
    member of incompressible bytes."""
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    zeros = comp.compress(bytes(megabytes << 20)) + comp.flush()
    noise = np.random.default_rng(megabytes).bytes((megabytes << 20) // 150)
    return raw_zip(
        [
            ("填充.txt", zeros, zlib.crc32(bytes(megabytes << 20)), megabytes << 20, zipfile.ZIP_DEFLATED),
            ("噪声.txt", noise, zlib.crc32(noise), len(noise), zipfile.ZIP_STORED),
        ]
    )


def test_nested_zips_share_one_budget(refuse, tmp_path, monkeypatch):
    """Each archive within the caps, together beyond them: nesting does not multiply the caps.
    (Caps lowered to 32 MiB and 40 files so that the test writes megabytes, not gigabytes.)"""
    monkeypatch.setattr(sources, "ZipLimits", lambda: ZipLimits(max_total_bytes=32 << 20, max_files=40))
    shp = survey_shp(tmp_path / "s")
    inner = _padded_inner(20)
    assert 20 << 20 < sum(i.file_size for i in zipfile.ZipFile(io.BytesIO(inner)).infolist()) < 32 << 20
    two = zip_of([*shapefile_entries(shp), ("一.zip", inner), ("二.zip", inner)], zipfile.ZIP_STORED)
    refuse(two, "上报.zip", 413, "zip_bomb")
    many = zip_of([(f"{i}.txt", b"x") for i in range(30)])
    flood = zip_of([*shapefile_entries(shp), ("一.zip", many), ("二.zip", many)], zipfile.ZIP_STORED)
    body = refuse(flood, "上报.zip", 413, "zip_too_many_files")
    assert "40" in body["message_zh"]


def test_zip_of_ten_thousand_files_is_refused(refuse, tmp_path):
    shp = survey_shp(tmp_path / "s")
    flood = zip_of([*shapefile_entries(shp), *((f"照片/{i:05d}.txt", b"x") for i in range(10_000))])
    body = refuse(flood, "上报.zip", 413, "zip_too_many_files")
    assert "10004" in body["message_zh"] and "2000" in body["message_zh"]


def test_zips_nested_too_deep_are_refused(refuse, tmp_path):
    inner = shapefile_zip(survey_shp(tmp_path / "s"))
    for level in range(3):
        inner = zip_of([(f"第{level}层.zip", inner)])
    refuse(inner, "上报.zip", 400, "zip_too_deep")


def _flip_crc(payload: bytes) -> bytes:
    out = bytearray(payload)
    at = payload.rfind(b"PK\x01\x02")
    out[at + 16] ^= 0xFF
    return bytes(out)


def _set_central(payload: bytes, offset: int, value: int, fmt: str = "<H") -> bytes:
    out = bytearray(payload)
    at = payload.find(b"PK\x01\x02")
    while at >= 0:
        out[at + offset : at + offset + (2 if fmt == "<H" else 4)] = struct.pack(fmt, value)
        at = payload.find(b"PK\x01\x02", at + 4)
    return bytes(out)


@pytest.mark.parametrize(
    ("case", "code"),
    [
        ("bad-crc", "bad_zip"),
        ("encrypted", "zip_encrypted"),
        ("deflate64", "zip_unsupported_method"),
        ("file-and-folder", "zip_bad_name"),
        ("name-too-long", "zip_bad_name"),
        ("cut-short", "bad_zip"),
    ],
)
def test_damaged_zips_are_refused(refuse, tmp_path, case, code):
    shp = survey_shp(tmp_path / "s")
    entries = shapefile_entries(shp)
    good = zip_of(entries)
    payload = {
        "bad-crc": lambda: _flip_crc(good),
        "encrypted": lambda: _set_central(good, 8, 0x1),
        "deflate64": lambda: _set_central(good, 10, 9),
        "file-and-folder": lambda: zip_of([*entries, ("台账.shp/说明.prj", b"x")]),
        "name-too-long": lambda: zip_of([*entries, ("长" * 100 + ".prj", b"x")]),
        "cut-short": lambda: good[: len(good) // 2],
    }[case]()
    refuse(payload, "上报.zip", 400, code)


# --- bodies above the size limit --------------------------------------------------------------


def test_oversized_upload_is_refused(surveyor, data, scratch):
    before = _state(data, scratch)
    body = b"--x\r\n" + b"x" * (MAX_UPLOAD + 1) + b"\r\n--x--\r\n"
    for lang in ("zh", "en"):
        surveyor.client.delete_cookie("gridwatch_lang")
        resp = surveyor.request(
            "POST",
            "/api/uploads" + ("?lang=en" if lang == "en" else ""),
            data=body,
            content_type="multipart/form-data; boundary=x",
        )
        err = assert_clear_error(resp, 413, "too_large", lang)
        assert "16 MB" in err["message"]
    assert _state(data, scratch) == before


@pytest.fixture
def live(app):
    with serving(app) as port:
        yield port


def _answer(port: int, head: str, body: bytes | None = None, chunks: int = 0) -> tuple[int, dict]:
    """Send a request by hand and read the answer; the socket timeout guards against a server
    that waits for a body it should have refused unread."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(head.encode() + b"\r\n")
        try:
            if body is not None:
                sock.sendall(body)
            for _ in range(chunks):
                sock.sendall(b"100000\r\n" + b"y" * 0x100000 + b"\r\n")
        except OSError:  # the server answered and stopped reading
            pass
        raw = b""
        while b"\r\n\r\n" not in raw:
            raw += sock.recv(65536)
        headers, _, rest = raw.partition(b"\r\n\r\n")
        length = int(re.search(rb"(?i)content-length: (\d+)", headers).group(1))
        while len(rest) < length:
            rest += sock.recv(65536)
    return int(headers.split()[1]), json.loads(rest[:length])


def test_oversized_upload_is_refused_before_its_body_is_read(app, live, data, scratch):
    """Headers announcing 50 GiB and no body at all: a 413 comes back at once, with a cookie
    session (CSRF token) and with an API token; a chunked body without a length is cut off at
    the limit."""
    before = _state(data, scratch)
    session = Session(app, "surveyor")
    cookie = session.client.get_cookie("gridwatch_session").value
    with open_store(data) as store:
        _token, secret = accounts.create_token(store, "surveyor", "script")
    before = _state(data, scratch)
    common = "Host: 127.0.0.1\r\nContent-Type: multipart/form-data; boundary=x\r\nConnection: close\r\n"
    for auth in (
        f"Cookie: gridwatch_session={cookie}\r\nX-CSRFToken: {session.token}\r\n",
        f"Authorization: Bearer {secret}\r\n",
    ):
        for lang in ("zh", "en"):
            started = time.perf_counter()
            status, err = _answer(
                live,
                f"POST /api/uploads?lang={lang} HTTP/1.1\r\n{common}{auth}Content-Length: {50 * 1024**3}\r\n",
            )
            assert (status, err["error"]) == (413, "too_large")
            assert err["message"] == err[f"message_{lang}"]
            assert time.perf_counter() - started < 25  # answered without waiting for the body
    head = f"POST /api/uploads HTTP/1.1\r\n{common}Authorization: Bearer {secret}\r\nTransfer-Encoding: chunked\r\n"
    status, err = _answer(live, head, chunks=17)
    assert (status, err["error"]) == (413, "too_large")
    assert _state(data, scratch) == before


# --- damaged shapefiles -----------------------------------------------------------------------


def _put(payload: bytes, offset: int, value: float, fmt: str) -> bytes:
    out = bytearray(payload)
    out[offset : offset + len(struct.pack(fmt, value))] = struct.pack(fmt, value)
    return bytes(out)


def _garbage(n: int) -> bytes:
    return np.random.default_rng(n).bytes(n)


_R1 = 100 + 8  # where the first record's content starts in a .shp
# part → change of its bytes (p: the part's bytes, o: the other parts)
DAMAGE = {
    "dbf-cut-short": ("dbf", lambda p: p[: len(p) // 2], "damaged_dbf"),
    "dbf-cut-in-header": ("dbf", lambda p: p[:20], "damaged_dbf"),
    "dbf-count-too-high": ("dbf", lambda p: _put(p, 4, 1000, "<I"), "damaged_dbf"),
    "dbf-count-too-low": ("dbf", lambda p: _put(p, 4, 1, "<I"), "damaged_dbf"),
    "dbf-count-huge": ("dbf", lambda p: _put(p, 4, 0xFFFFFFFF, "<I"), "damaged_dbf"),
    "dbf-header-length-off": (
        "dbf",
        lambda p: _put(p, 8, int.from_bytes(p[8:10], "little") - 3, "<H"),
        "damaged_dbf",
    ),
    "dbf-header-length-huge": ("dbf", lambda p: _put(p, 8, 60000, "<H"), "damaged_dbf"),
    "dbf-record-length-wrong": (
        "dbf",
        lambda p: _put(p, 10, int.from_bytes(p[10:12], "little") + 1, "<H"),
        "damaged_dbf",
    ),
    "dbf-field-width-zero": ("dbf", lambda p: _put(p, 32 + 16, 0, "<B"), "damaged_dbf"),
    "dbf-garbage": ("dbf", lambda p: _garbage(len(p)), "damaged_dbf"),
    "dbf-fewer-records-than-shapes": ("dbf", "two-rows", "shapefile_mismatch"),
    "shp-cut-short": ("shp", lambda p: p[:120], "damaged_shp"),
    "shp-cut-in-header": ("shp", lambda p: p[:50], "damaged_shp"),
    "shx-cut-short": ("shx", lambda p: p[:-8], "damaged_shp"),
    "shx-offset-past-the-end": ("shx", lambda p: _put(p, 108, 10**6, ">i"), "damaged_shp"),
    "shx-offset-negative": ("shx", lambda p: _put(p, 108, -8, ">i"), "damaged_shp"),
    "shx-length-lies": ("shx", lambda p: _put(p, 112, 10**6, ">i"), "damaged_shp"),
    "shp-record-length-lies": ("shp", lambda p: _put(p, 104, 10**6, ">i"), "damaged_shp"),
    "shp-header-type-wrong": ("shp", lambda p: _put(p, 32, 5, "<i"), "damaged_shp"),
    "shp-record-type-wrong": ("shp", lambda p: _put(p, _R1, 5, "<i"), "damaged_shp"),
    "shp-type-unknown": ("shp", lambda p: _put(p, 32, 77, "<i"), "damaged_shp"),
    "shp-garbage": ("shp", lambda p: p[:4] + _garbage(len(p) - 4), "damaged_shp"),
    "shx-garbage": ("shx", lambda p: _garbage(len(p)), "damaged_shp"),
}
POLYGON_DAMAGE = {
    "polygon-points-lie": (lambda p: _put(p, _R1 + 40, 10**6, "<i"), "damaged_shp"),
    "polygon-parts-negative": (lambda p: _put(p, _R1 + 36, -5, "<i"), "damaged_shp"),
    "polygon-points-huge": (lambda p: _put(p, _R1 + 40, 2**31 - 1, "<i"), "damaged_shp"),
    "polygon-ring-not-closed": (lambda p: _put(p, _R1 + 48, float("nan"), "<d"), "unreadable"),
    "polygon-ring-too-short": (lambda p: _put(p, _R1 + 40, 2, "<i"), "unreadable"),
}


@pytest.mark.parametrize("case", list(DAMAGE))
def test_damaged_shapefiles_are_refused(refuse, tmp_path, case):
    part, change, code = DAMAGE[case]
    shp = survey_shp(tmp_path / "s")
    original = shp.with_suffix("." + part).read_bytes()
    if change == "two-rows":
        damaged = survey_shp(tmp_path / "two", n=2).with_suffix(".dbf").read_bytes()
    else:
        damaged = change(original)
    assert damaged != original
    refuse(shapefile_zip(shp, **{part: damaged}), "上报.zip", 400, code)


# GDAL warns about an unclosed ring; in production a warning is only logged, so it is here too
@pytest.mark.filterwarnings("ignore:Non closed ring detected:RuntimeWarning")
@pytest.mark.parametrize("case", list(POLYGON_DAMAGE))
def test_damaged_polygon_records_are_refused(refuse, tmp_path, case):
    change, code = POLYGON_DAMAGE[case]
    boxes = [shapely.box(X0 + 10 + 30 * i, Y0 - 40, X0 + 30 + 30 * i, Y0 - 20) for i in range(3)]
    shp = survey_shp(tmp_path / "s", geoms=boxes)
    refuse(shapefile_zip(shp, shp=change(shp.read_bytes())), "上报.zip", 400, code)


# --- a polygon of a million vertices ----------------------------------------------------------


def circle(vertices: int, radius: float = 40.0) -> shapely.Polygon:
    angles = np.linspace(0, 2 * np.pi, vertices, endpoint=False)
    return shapely.Polygon(
        np.column_stack([X0 + 150 + radius * np.cos(angles), Y0 - 150 + radius * np.sin(angles)])
    )


def test_a_feature_over_the_vertex_limit_is_rejected_by_row(surveyor, data, scratch, tmp_path):
    assert geometry.MAX_FEATURE_VERTICES == 100_000
    shp = survey_shp(tmp_path / "s", geoms=[circle(1_000_000), shapely.box(X0 + 5, Y0 - 25, X0 + 25, Y0 - 5)])
    report = post(surveyor, shapefile_zip(shp), "上报.zip")
    assert report.status_code == 201, report.get_json()
    body = report.get_json()
    assert (body["rows_read"], body["accepted"]) == (2, 1)
    (row,) = body["rejected"]
    assert (
        row["row"] == 1 and row["reason_zh"] == "要素顶点过多（1,000,001 个，上限 100,000），请简化后再导入"
    )
    assert row["reason_en"] == "too many vertices (1,000,001, limit 100,000): simplify the feature"
    assert surveyor.request("DELETE", f"/api/uploads/{body['upload_id']}").status_code == 204
    assert _state(data, scratch)[3:] == ([], [])


def test_a_file_over_the_vertex_limit_is_refused_before_reading(refuse, tmp_path, monkeypatch):
    """Two features of 90,000 vertices each against a limit lowered to 150,000: the whole file
    is refused from the .shp headers, before its records are read."""
    monkeypatch.setattr(geometry, "MAX_FILE_VERTICES", 150_000)
    shp = survey_shp(tmp_path / "s", geoms=[circle(90_000), circle(90_000, 30.0)])
    body = refuse(shapefile_zip(shp), "上报.zip", 413, "too_many_vertices")
    assert "180,002" in body["message_zh"] and "150,000" in body["message_en"]
    # the check of the headers, made before read_dataset in the reading helper, refuses it
    found = Dataset("s.shp", shp, "shp")
    with pytest.raises(TooLarge):
        dataset._check_shapefile(found, 150_000)


_MEASURE = """
import json, sys, time
from server import create_app
from tests.test_auth import Session
from tests.test_hostile import multipart

def kib(key):
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith(key + ":"))

data, path, name, limit = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
app = create_app({"GRIDWATCH_DATA": data, "TESTING": True, "MAX_CONTENT_LENGTH": limit})
session = Session(app, "surveyor")
with open(path, "rb") as fh:
    payload = fh.read()
body, content_type = multipart(payload, name, layer="demolition")
# the peak of this process so far (VmHWM belongs to the process image: a new one at exec, unlike
# ru_maxrss, which a process forked from a large one starts with)
startup_peak = kib("VmHWM")
with open("/proc/self/clear_refs", "w") as fh:
    fh.write("5")  # the peak (VmHWM) counts from here
before = kib("VmRSS")
started = time.perf_counter()
resp = session.request("POST", "/api/uploads", data=body, content_type=content_type)
print(json.dumps({"status": resp.status_code, "body": resp.get_json(), "seconds": time.perf_counter() - started,
                  "rss_before": before * 1024, "rss_peak": kib("VmHWM") * 1024,
                  "process_peak": max(startup_peak, kib("VmHWM")) * 1024}))
"""


def measure(data: Path, path: Path, payload: bytes, name: str, limit: int) -> dict:
    """Upload ``payload`` (saved at ``path``) as ``name`` in a server process of its own, with an
    upload limit of ``limit`` bytes: its answer, time and peak memory (see :data:`_MEASURE`).
    The timeout only guards against a hang."""
    path.write_bytes(payload)
    run = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(data), str(path), name, str(limit)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("case", ["million-vertex-polygon", "zip-bomb-6-gib", "zip-of-10000-files"])
def test_refusals_stay_within_memory(data, tmp_path, case):
    """Each refusal measured in a process of its own: its peak memory (everything the process
    ever held, GDAL and GEOS included) stays under 1 GB.  The timeout only guards against a hang."""
    if case == "million-vertex-polygon":
        payload = shapefile_zip(survey_shp(tmp_path / "s", geoms=[circle(1_000_000)]))
        expected = (400, "no_valid_rows")
    elif case == "zip-bomb-6-gib":
        payload, expected = zip_bomb(), (413, "zip_bomb")
    else:
        shp = survey_shp(tmp_path / "s")
        payload = zip_of([*shapefile_entries(shp), *((f"照片/{i:05d}.txt", b"x") for i in range(10_000))])
        expected = (413, "zip_too_many_files")
    out = measure(data, tmp_path / "payload.zip", payload, "上报.zip", MAX_UPLOAD)
    assert (out["status"], out["body"]["error"]) == expected
    if case == "million-vertex-polygon":
        assert "要素顶点过多（1,000,001 个" in out["body"]["message_zh"]
    assert out["rss_peak"] < MAX_RSS_BYTES and out["process_peak"] < MAX_RSS_BYTES
    print(
        f"{case}: {len(payload) / 1e6:.1f} MB refused in {out['seconds']:.2f} s; peak memory during the "
        f"request {out['rss_peak'] / 2**20:.0f} MiB, {(out['rss_peak'] - out['rss_before']) / 2**20:.0f} MiB "
        f"above the process before it (whole process's peak {out['process_peak'] / 2**20:.0f} MiB)"
    )


# --- markup and script in survey data ---------------------------------------------------------

P_SCRIPT = "<script>window.__pwned=1</script>"
P_ATTR = '" onmouseover="window.__pwned=1'
P_IMG = "<img src=x onerror=window.__pwned=1>"
P_JS = "javascript:window.__pwned=1"
P_SVG = "<svg onload=alert('pwned')>"
PAYLOADS = (P_SCRIPT, P_ATTR, P_IMG, P_JS, P_SVG)
#: What must never appear unescaped in a page.
RAW = ("<script>window", '" onmouseover="', "<img src=x", "<svg onload", "<b onmouseover")
ADMIN_PASSWORD = "hostile-admin-pass"
#: The code of the unit grid in the middle.
HOSTILE_CODE = "<b onmouseover=window.__pwned=1>5</b>"


def hostile_store(tmp_path: Path) -> Path:
    """A store whose unit grid names units, communities and streets with markup and script,
    with surveys whose attributes carry them too, imported from a file so named, and an API
    token labelled with them.  Accounts: ``admin`` (:data:`ADMIN_PASSWORD`) and ``surveyor``."""
    data = tmp_path / "hostile-store"
    grid = grid_frame()
    grid["网格名称"] = [PAYLOADS[i % len(PAYLOADS)] for i in range(len(grid))]
    grid["所属社区"] = [P_IMG if c.startswith("340291001001") else P_SCRIPT for c in grid["网格编码"]]
    grid["所属街道"] = P_ATTR
    # roll-ups by explicit codes, so that a unit's own code may be anything: the centre one's is markup
    grid["社区编码"] = [c[:12] for c in grid["网格编码"]]
    grid["街道编码"] = "340291001"
    grid.loc[4, "网格编码"] = HOSTILE_CODE
    cells = list(grid.geometry)
    sites = points_frame(
        [(c.centroid.x, c.centroid.y) for c in cells],
        案件编号=[f"H{i}" for i in range(len(cells))],
        违建地址=[PAYLOADS[i % len(PAYLOADS)] for i in range(len(cells))],
        结构类型=[PAYLOADS[(i + 1) % len(PAYLOADS)] for i in range(len(cells))],
        违建位置=[PAYLOADS[(i + 2) % len(PAYLOADS)] for i in range(len(cells))],
        当前状态=["已拆除" if i % 2 else "已登记" for i in range(len(cells))],
    )
    with open_store(data) as store:
        import_file(store, "grid", write_shp(grid, tmp_path / "hostile-grid" / "网格.shp"), user="admin")
        shp = write_shp(sites, tmp_path / "hostile-survey" / "台账.shp")
        import_file(store, "demolition", zip_shp(shp, tmp_path / f"{P_IMG}.zip"), user="surveyor")
        parking = points_frame([(X0 + 20, Y0 - 20)], 编号=["P1"], 名称=[P_SVG], 状态=["已建成"])
        import_file(store, "parking", write_shp(parking, tmp_path / "hostile-parking" / "停车.shp"))
        accounts.add_user(store, "admin", "admin", ADMIN_PASSWORD)
        accounts.add_user(store, "surveyor", "surveyor", PASSWORDS["surveyor"])
        accounts.create_token(store, "admin", P_SCRIPT)
    return data


def hostile_csv() -> bytes:
    """A table of sites whose column names are markup (so the file matches no field)."""
    return ("经度,纬度," + ",".join(p.replace('"', '""').join('""') for p in PAYLOADS) + "\n").encode() + (
        "118.4,31.3," + ",".join(["x"] * len(PAYLOADS)) + "\n"
    ).encode()


def assert_escaped(html: str, where: str) -> None:
    for raw in RAW:
        assert raw not in html, (where, raw)
    assert not re.search(r"""(href|src|action|formaction)\s*=\s*["']?\s*javascript:""", html, re.I), where


@pytest.fixture
def hostile(tmp_path, monkeypatch):
    data = hostile_store(tmp_path)
    app = create_app({"GRIDWATCH_DATA": str(data), "TESTING": True})
    monkeypatch.setitem(PASSWORDS, "admin", ADMIN_PASSWORD)
    return app, data


def test_pages_carry_survey_markup_only_escaped(hostile):
    app, _data = hostile
    admin = Session(app, "admin")
    shown = {
        "/?tiles=none&level=grid&layer=demolition": (P_IMG, P_SCRIPT, P_ATTR),  # streets, communities
        "/stats?level=grid&layer=demolition": (*PAYLOADS, HOSTILE_CODE),
        "/stats?level=community&layer=demolition": (P_IMG, P_SCRIPT, P_ATTR),
        "/stats?level=street&layer=demolition": (P_ATTR,),
        "/upload?tiles=none": (),
        "/batches": (P_IMG,),
        "/audit": (P_IMG, P_SCRIPT),
        f"/audit?user={quote(P_ATTR)}": (P_ATTR,),
        "/users": (),
        "/account": (P_SCRIPT,),
    }
    for url, payloads in shown.items():
        for lang in ("", "&lang=en" if "?" in url else "?lang=en"):
            resp = admin.request("GET", url + lang)
            assert resp.status_code == 200, url
            html = resp.get_data(as_text=True)
            assert_escaped(html, url)
            for p in payloads:
                assert str(escape(p)) in html, (url, p)
    # messages quoting what was sent
    for form, payload in (
        ({"action": "disable", "name": P_IMG}, P_IMG),
        ({"action": "role", "name": "surveyor", "role": P_SCRIPT}, P_SCRIPT),
    ):
        resp = admin.request("POST", "/users", data={**form, "csrf_token": admin.token})
        assert resp.status_code in (400, 404)
        assert_escaped(resp.get_data(as_text=True), "/users")
        assert str(escape(payload)) in resp.get_data(as_text=True)
    anonymous = app.test_client()
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', anonymous.get("/login").text).group(
        1
    )
    resp = anonymous.post("/login", data={"username": P_ATTR, "password": "x" * 8, "csrf_token": token})
    assert resp.status_code == 401
    assert_escaped(resp.get_data(as_text=True), "/login")
    assert str(escape(P_ATTR)) in resp.get_data(as_text=True)  # kept in the form, as a value


def test_json_carries_survey_markup_escaped_and_intact(hostile, tmp_path):
    """No ``<`` or ``>`` in any JSON answer, whatever a browser guesses it to be; decoded, the
    text is what the file held."""
    app, _data = hostile
    admin = Session(app, "admin")
    cells = admin.request("GET", "/api/cells?level=grid&zoom=16&layer=demolition")
    features = admin.request("GET", "/api/features/demolition?bbox=100,20,130,40&zoom=18&detail=1")
    fid = features.get_json()["features"][0]["properties"]["fid"]
    answers = [
        cells,
        features,
        admin.request("GET", f"/api/features/demolition/{fid}"),
        admin.request("GET", "/api/stats?level=community&layer=demolition"),
        admin.request("GET", "/api/stats?level=grid&layer=demolition&format=geojson"),
        admin.request("GET", "/api/batches"),
    ]
    shp = write_shp(
        points_frame(
            [(X0 + 50, Y0 - 50), (X0 + 150, Y0 - 150)], 案件编号=["A1", "A2"], 当前状态=[P_SCRIPT, "已登记"]
        ),
        tmp_path / "up" / "台账.shp",
    )
    upload = post(admin, zip_of(shapefile_entries(shp, P_IMG + "/")), P_IMG + ".zip")
    assert upload.status_code == 201
    answers.append(upload)
    answers.append(admin.request("GET", f"/api/uploads/{upload.get_json()['upload_id']}/features"))
    refused = post(admin, hostile_csv(), "台账.csv")
    assert refused.status_code == 400 and refused.get_json()["error"] == "wrong_layer"
    answers.append(refused)
    for resp in answers:
        text = resp.get_data(as_text=True)
        assert "<" not in text and ">" not in text, text[:300]
    decoded = json.dumps([r.get_json() for r in answers], ensure_ascii=False)
    for p in PAYLOADS:
        assert p.replace('"', '\\"') in decoded, p
    # the hostile status is kept as unrecognised, its text intact in the value table
    table = upload.get_json()["value_mappings"][0]
    assert table["field"] == "status" and P_SCRIPT in {v["raw"] for v in table["values"]}


def test_a_urlencoded_body_of_escapes_is_refused_before_it_is_unquoted(app):
    """A form sent urlencoded is read and unquoted whole, about 80 bytes of memory per "%xx"
    (12 MB of escapes took 900 MB): beyond the form-field limit it is a 413 before it is read;
    a form under it is answered as before."""
    limit = app.config["MAX_FORM_MEMORY_SIZE"]
    kind = "application/x-www-form-urlencoded"
    client = app.test_client()
    bomb = b"username=" + b"%7B" * (limit // 3 + 1)
    resp = client.post("/login", data=bomb, content_type=kind)
    assert resp.status_code == 413 and "too_large" in resp.get_data(as_text=True)
    resp = client.post("/login", data=b"username=" + b"%7B" * 1000, content_type=kind)
    assert resp.status_code in (200, 400)  # read and answered (no CSRF token, no password)
