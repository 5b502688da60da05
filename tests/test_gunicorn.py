"""Under gunicorn with the sample settings (deploy/gunicorn.conf.py), a large upload on its way
in does not hold up other users' map requests, and an upload broken off half-way leaves
nothing behind.  (How long requests take is measured in bench/bench_upload_stall.py.)"""

from __future__ import annotations

import json
import socket
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from geo.imports.importer import import_file
from geo.store import accounts
from geo.store.backends import open_store
from tests.helpers.builders import X0, Y0, grid_frame, multipart, multipart_head, points_frame, write_shp
from tests.helpers.load.server import free_port, gunicorn

GUNICORN = Path(sys.executable).parent / "gunicorn"
pytestmark = [pytest.mark.skipif(not GUNICORN.exists(), reason="gunicorn is not installed"), pytest.mark.slow]


TOKEN: dict[str, str] = {}


def _get(url: str, timeout: float = 60) -> tuple[int, bytes]:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {TOKEN['secret']}"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return resp.status, resp.read()


@pytest.fixture
def gunicorn_server(tmp_path):
    data = tmp_path / "store"
    with open_store(data) as store:
        import_file(store, "grid", write_shp(grid_frame(), tmp_path / "g" / "g.shp"))
        rng = np.random.default_rng(7)
        xy = np.column_stack([X0 + rng.uniform(5, 295, 40), Y0 - rng.uniform(5, 295, 40)])
        sites = points_frame([tuple(p) for p in xy], 案件编号=[f"G{i}" for i in range(40)])
        import_file(store, "demolition", write_shp(sites, tmp_path / "s" / "s.shp"))
        accounts.add_user(store, "admin", "admin", "admin-password")
        TOKEN["secret"] = accounts.create_token(store, "admin", "tests")[1]
    port = free_port()
    # gunicorn with the sample settings, as the load test starts it
    with gunicorn(data, port, None, tmp_path / "gunicorn.log", TOKEN["secret"]):
        yield f"http://127.0.0.1:{port}", port, data


def test_map_requests_are_served_while_a_100_mb_upload_is_arriving(gunicorn_server):
    base, port, data = gunicorn_server
    size = 100 * 1024 * 1024
    boundary = "gwtestboundary"
    head = multipart_head(boundary, "big.zip", "application/zip", layer="demolition")
    # a surveyor on a slow line: the headers and the first 2 MB of a 100 MB body, then a pause
    upload = socket.create_connection(("127.0.0.1", port), timeout=60)
    try:
        upload.sendall(
            (
                f"POST /api/uploads HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                f"Authorization: Bearer {TOKEN['secret']}\r\n"
                f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
                f"Content-Length: {len(head) + size}\r\n\r\n"
            ).encode()
            + head
        )
        upload.sendall(b"\0" * (2 * 1024 * 1024))
        # every kind of request a map viewer makes is answered while the upload is still open
        # (several rounds, so that requests land on both workers and on every thread)
        lon, lat = 118.4, 31.3
        bbox = f"{lon - 0.02},{lat - 0.02},{lon + 0.02},{lat + 0.02}"
        for _ in range(12):
            for url in (
                f"{base}/?tiles=none",
                f"{base}/api/cells?level=grid&layer=demolition&zoom=16&bbox={bbox}",
                f"{base}/api/features/demolition?zoom=16&bbox={bbox}",
                f"{base}/api/stats?level=community&layer=demolition",
            ):
                status, body = _get(url)
                assert status == 200, url
        status, body = _get(f"{base}/api/features/demolition?zoom=18&bbox={bbox}")
        assert json.loads(body)["total"] == 40
    finally:
        # the upload is broken off half-way
        upload.close()
    # nothing is staged or written for the broken-off upload, and the server carries on
    time.sleep(0.5)
    staged = data / "uploads"
    assert not staged.exists() or not any(staged.iterdir())
    status, body = _get(f"{base}/api/batches")
    assert status == 200 and len(json.loads(body)) == 2
    status, body = _get(f"{base}/api/features/demolition?zoom=18&bbox={bbox}")
    assert json.loads(body)["total"] == 40


def _reading_helpers(data: Path) -> list[int]:
    """Processes of the server on ``data`` with the reading helper's memory limit: the helpers
    reading uploads right now."""
    from geo.reading.untrusted import ReadLimits

    limit = str(ReadLimits().memory_bytes)
    mark = f"GRIDWATCH_DATA={data}".encode()
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            limits = (proc / "limits").read_text()
            if mark not in (proc / "environ").read_bytes().split(b"\0"):
                continue
        except OSError:
            continue
        line = next((x for x in limits.splitlines() if x.startswith("Max data size")), "")
        if line.split()[3:4] == [limit]:
            found.append(int(proc.name))
    return found


def _slow_kmz(placemarks: int) -> bytes:
    """A KMZ of sites that takes the reading helper many seconds to read."""
    import io
    import zipfile

    marks = "".join(
        '<Placemark><ExtendedData><SchemaData schemaUrl="#s"><SimpleData name="案件编号">K'
        f"{i}</SimpleData></SchemaData></ExtendedData><Point><coordinates>118.4{i % 1000:03d},31.3"
        "</coordinates></Point></Placemark>"
        for i in range(placemarks)
    )
    doc = (
        '<?xml version="1.0" encoding="UTF-8"?><kml xmlns="http://www.opengis.net/kml/2.2"><Document>'
        '<Schema name="s" id="s"><SimpleField name="案件编号" type="string"/></Schema><Folder><name>s</name>'
        + marks
        + "</Folder></Document></kml>"
    )
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("doc.kml", doc)
    return buf.getvalue()


def test_a_read_stops_when_its_client_goes_away(gunicorn_server):
    """A surveyor closes the page while a large file is being read: the helper reading it is
    stopped within seconds, not when the read would have ended (half a minute later)."""
    _base, port, data = gunicorn_server
    before = set(_reading_helpers(data))
    payload = _slow_kmz(500_000)
    body, content_type = multipart(
        payload, "slow.kmz", "application/vnd.google-earth.kmz", layer="demolition"
    )
    upload = socket.create_connection(("127.0.0.1", port), timeout=60)
    upload.sendall(
        (
            f"POST /api/uploads HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Authorization: Bearer {TOKEN['secret']}\r\n"
            f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        + body
    )
    deadline = time.monotonic() + 30
    reading: set[int] = set()
    while not reading and time.monotonic() < deadline:
        time.sleep(0.2)
        reading = set(_reading_helpers(data)) - before
    assert reading, "no helper started reading the upload"
    time.sleep(1.0)
    if not set(_reading_helpers(data)) & reading:
        upload.settimeout(5)
        pytest.fail("the read ended by itself: " + upload.recv(2000).decode(errors="replace"))
    upload.close()
    stopped_by = time.monotonic() + 5
    while set(_reading_helpers(data)) & reading and time.monotonic() < stopped_by:
        time.sleep(0.1)
    assert not set(_reading_helpers(data)) & reading
