"""Hostile uploads: the harness that posts a file as a signed-in surveyor and checks it is refused
cleanly (fixtures ``data``, ``scratch``, ``app``, ``surveyor``, ``refuse``; :func:`post`,
:func:`measure` in a process of its own), and survey text carrying markup and script (the
payloads and a store full of them).  Test modules take the fixtures by assignment
(``refuse = hostile.refuse``)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

import layers
from geo.imports.importer import import_file
from geo.imports.uploads import uploads_dir
from geo.store import accounts
from tests.helpers.builders import X0, Y0, grid_frame, multipart, points_frame, write_shp, zip_shp
from tests.helpers.postgis import open_test_store
from tests.helpers.web import PASSWORDS, Session

ROOT = Path(__file__).resolve().parent.parent.parent
MAX_UPLOAD = 16 * 1024 * 1024
#: A generous bound on a refusing process's peak memory (it starts at about 0.3 GB).
MAX_RSS_BYTES = 1024**3
_CJK = re.compile(r"[\u4e00-\u9fff]")


@pytest.fixture
def data(tmp_path, store_url):
    """The data folder of a store with the grid and a surveyor (on PostGIS ``store_url`` names
    the store)."""
    data = tmp_path / "store"
    with open_test_store(data) as store:
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
def app(data, scratch, make_app):
    return make_app(data, MAX_CONTENT_LENGTH=MAX_UPLOAD)


@pytest.fixture
def surveyor(app):
    return Session(app, "surveyor")


def upload_state(data: Path, scratch: Path) -> tuple[object, ...]:
    """Everything an upload could leave behind."""
    with open_test_store(data) as store:
        batches = [(b.id, b.status) for b in store.batches()]
        features = {s.name: store.layer_count(s) for s in layers.all_layers()}
        audit = len(store.audit_entries(limit=10_000))
    staged = sorted(p.name for p in uploads_dir(data).glob("*") if not p.name.startswith("."))  # not locks
    return batches, features, audit, staged, sorted(p.name for p in scratch.iterdir())


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
        before = upload_state(data, scratch)
        answers = {}
        for lang in ("zh", "en"):
            answers[lang] = assert_clear_error(
                post(surveyor, payload, name, lang, **form), status, code, lang
            )
            assert upload_state(data, scratch) == before
        assert answers["zh"]["message_en"] == answers["en"]["message"]
        return answers["zh"]

    return check


# --- measured in a process of its own -----------------------------------------------------------

_MEASURE = """
import json, sys, time
from server import create_app
from tests.helpers.builders import multipart
from tests.helpers.web import Session

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
    with open_test_store(data) as store:
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
