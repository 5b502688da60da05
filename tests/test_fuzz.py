"""Fuzzing: no request and no command line, however odd, meets a server error or a traceback.

* every operation of the OpenAPI document (``/api/openapi.json``), with requests generated
  from it by schemathesis (valid and invalid ones) and sent through the real Flask app
  (WSGI), with an admin's API token and anonymously; checked with schemathesis'
  ``not_a_server_error``;
* every page and form route of the app's URL map, GET with random query strings and POST
  with random form fields, signed in (with the form's CSRF token) and anonymously;
* the ``gridwatch`` command with random argument values and a few hostile files: exit 0 or
  2, never 1, never a traceback.

Bounded for a 2-core machine: ``GRIDWATCH_FUZZ_EXAMPLES`` (default 40) examples per API
operation and identity, a few hundred requests per page test, 60 command lines; inputs are
derandomized so a run is repeatable (``GRIDWATCH_FUZZ_RANDOM=1`` draws new ones).
"""

from __future__ import annotations

import io
import os
import re
import string
import zipfile
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from werkzeug.datastructures import MultiDict

from geo.imports.importer import import_file
from geo.store import accounts
from geo.store.backends import open_store
from server import create_app
from tests.helpers.builders import X0, Y0, grid_frame, points_frame, write_shp, zip_shp
from tests.helpers.web import csrf_from, login
from web.openapi import document

EXAMPLES = int(os.environ.get("GRIDWATCH_FUZZ_EXAMPLES", "40"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    derandomize=not os.environ.get("GRIDWATCH_FUZZ_RANDOM"),
    suppress_health_check=list(HealthCheck),
)

PASSWORD = "fuzz-pass-1"
#: Accounts of the fuzzed store: the API admin holds the token, the page admin the session;
#: form fields name only the others, so a random form cannot lock out the fuzzer itself.
USERS = {"apiadmin": "admin", "pageadmin": "admin", "surveyor": "surveyor", "viewer": "viewer"}

#: Cases that fail in code owned elsewhere, each with the request that fails; strict, so the
#: mark must go when the fix lands.
KNOWN_API_5XX: dict[tuple[str, str, str], str] = {}


def _store_with_data(root: Path) -> tuple[Path, str]:
    """A store with the small grid, two survey sites, the accounts above and the API token."""
    data = root / "store"
    with open_store(data) as store:
        import_file(store, "grid", write_shp(grid_frame(), root / "g" / "网格.shp"))
        sites = points_frame(
            [(X0 + 50, Y0 - 50), (X0 + 150, Y0 - 150)],
            案件编号=["F1", "=cmd|' /C calc'!A0"],
            当前状态=["已拆除", "已登记"],
            违建地址=["赭山路", "x\x1b[31m"],
            发现时间=["2022-01-05", "2022-05-20"],
        )
        import_file(store, "demolition", write_shp(sites, root / "s" / "违建.shp"), user="surveyor")
        for name, role in USERS.items():
            accounts.add_user(store, name, role, PASSWORD)
        _token, secret = accounts.create_token(store, "apiadmin", "fuzz")
    return data, secret


@pytest.fixture(scope="module")
def api_site(tmp_path_factory) -> tuple[Any, str]:
    data, secret = _store_with_data(tmp_path_factory.mktemp("api"))
    app = create_app({"GRIDWATCH_DATA": str(data), "TESTING": True, "MAX_CONTENT_LENGTH": 2 * 1024 * 1024})
    return app, secret


@pytest.fixture(scope="module")
def upload_files(tmp_path_factory) -> list[tuple[str, bytes]]:
    """Survey files to upload: a good zipped GBK shapefile and the hostile ones (name, bytes)."""
    root = tmp_path_factory.mktemp("uploads")
    sites = points_frame(
        [(X0 + 50, Y0 - 50), (X0 + 250, Y0 - 50)], 案件编号=["U1", "U2"], 当前状态=["已拆除", "?"]
    )
    good = zip_shp(write_shp(sites, root / "shp" / "违建.shp"), root / "违建.zip", folder="上报/")
    files = [("违建.zip", good.read_bytes())]
    files += [(f.name, f.read_bytes()) for f in _hostile_files(root / "hostile") if f.is_file()]
    files.append(("points.csv", "案件编号,经度,纬度\nP1,118.4005,31.2995\n".encode()))
    files.append(("a.kml", b"<kml><Document><Placemark><Point><coordinates>1e999,x</coordinates></Point>"))
    return files


@pytest.fixture(scope="module")
def staged(api_site, upload_files) -> list[str]:
    """Ids of uploads waiting to be committed, for the operations that take one."""
    app, secret = api_site
    client = app.test_client()
    ids = []
    for _ in range(4):
        name, data = upload_files[0]
        r = client.post(
            "/api/uploads",
            data={"layer": "demolition", "file": (io.BytesIO(data), name)},
            headers={"Authorization": f"Bearer {secret}"},
        )
        assert r.status_code == 201, r.get_json()
        ids.append(r.get_json()["upload_id"])
    return ids


@pytest.fixture(scope="module")
def api_schema(api_site) -> Any:
    app, _secret = api_site
    return schemathesis.openapi.from_wsgi("/api/openapi.json", app)


# --------------------------------------------------------------------------- the JSON API


def _operations() -> list[tuple[str, str]]:
    """(method, path) of every operation in the document; built without an app or a store."""
    return [(m.upper(), p) for p, ops in document()["paths"].items() for m in ops]


def _api_cases() -> list[Any]:
    cases = []
    for method, path in _operations():
        if path == "/api/openapi.json":
            continue  # the document itself: schemathesis reads it to fuzz the others
        for who in ("admin", "anonymous"):
            marks = []
            reason = KNOWN_API_5XX.get((method, path, who))
            if reason:
                marks.append(pytest.mark.xfail(strict=True, reason=reason))
            cases.append(pytest.param(method, path, who, id=f"{method} {path} [{who}]", marks=marks))
    return cases


#: West, south, east, north of views over the fuzzed grid (and one of the whole world).
VIEWS = ["118.39,31.29,118.41,31.31", "118.3999,31.2999,118.4001,31.3001", "-180,-90,180,90"]


@pytest.mark.slow
@pytest.mark.parametrize(("method", "path", "who"), _api_cases())
def test_api_operation_never_answers_5xx(api_site, api_schema, staged, method, path, who):
    _app, secret = api_site
    operation = api_schema[path][method]
    variants = [
        operation.as_strategy(generation_mode=GenerationMode.POSITIVE),
        operation.as_strategy(generation_mode=GenerationMode.NEGATIVE),
    ]
    # and requests that reach further than random values do: a real upload, a view over the grid
    if "{upload_id}" in path:
        variants += [operation.as_strategy(path_parameters={"upload_id": i}) for i in staged]
    if path in ("/api/cells", "/api/features/{layer}"):
        variants += [operation.as_strategy(query={"bbox": view}) for view in VIEWS]
    strategy = st.one_of(variants)
    headers = {"Authorization": f"Bearer {secret}"} if who == "admin" else {}

    @FUZZ
    @given(case=strategy)
    def fuzz(case: Any) -> None:
        response = case.call(headers=headers)
        case.validate_response(response, checks=[not_a_server_error], headers=headers)

    fuzz()


@pytest.mark.slow
def test_openapi_document_is_complete_and_valid(api_site, api_schema):
    """Every API route is an operation with typed, bounded parameters and its responses."""
    app, _secret = api_site
    documented = {(m, p) for m, p in _operations()}
    for rule in app.url_map.iter_rules():
        if not (rule.rule.startswith("/api/") or rule.rule == "/healthz"):
            continue
        path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert (method, path) in documented, f"{method} {path} is not in /api/openapi.json"
    doc = document()
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            assert "security" in op and op["responses"], (method, path)
            names = {p["name"] for p in op["parameters"] if p["in"] == "path"}
            assert names == set(re.findall(r"{([^}]+)}", path)), (method, path)
            for p in op["parameters"]:
                assert p["schema"].get("type") in ("string", "integer"), (method, path, p["name"])
                if p["schema"]["type"] == "integer":
                    assert "minimum" in p["schema"] and "maximum" in p["schema"], (path, p["name"])
    upload = doc["paths"]["/api/uploads"]["post"]["requestBody"]["content"]["multipart/form-data"]
    assert upload["schema"]["properties"]["file"]["format"] == "binary"
    fid = next(
        p for p in doc["paths"]["/api/features/{layer}/{fid}"]["get"]["parameters"] if p["name"] == "fid"
    )
    assert fid["schema"]["maximum"] == 2**63 - 1
    # schemathesis reads every other operation without an error (it leaves out the document itself)
    loaded = {(r.ok().method.upper(), r.ok().path) for r in api_schema.get_all_operations()}
    assert loaded == documented - {("GET", "/api/openapi.json")}


@pytest.mark.slow
def test_uploads_of_hostile_files_never_answer_5xx(api_site, upload_files):
    """Real and hostile files with random form fields, then a re-read, the preview map, and a
    commit or discard of what was accepted."""
    app, secret = api_site
    client = app.test_client()
    auth = {"Authorization": f"Bearer {secret}"}
    fields = st.fixed_dictionaries(
        {},
        optional={
            "encoding": st.one_of(
                st.sampled_from(["GBK", "utf-8", "big5", "rot13", "unicode_escape", "zlib"]), _VALUES
            ),
            "crs": st.one_of(
                st.sampled_from(["EPSG:4548", "gcj02", "EPSG:4326", "EPSG:99999", "+proj=x"]), _VALUES
            ),
            "member": st.one_of(st.sampled_from(["上报/违建.shp", "../../evil.shp"]), _VALUES),
        },
    )

    @settings(FUZZ, max_examples=max(10, EXAMPLES // 2))
    @given(
        file=st.sampled_from(upload_files),
        layer=st.one_of(st.sampled_from(["demolition", "parking", "charging", "grid"]), _VALUES),
        form=fields,
        reread=fields,
        limit=st.one_of(st.integers(-5, 6000), _VALUES),
        commit=st.booleans(),
    )
    def fuzz(file, layer, form, reread, limit, commit) -> None:
        name, data = file
        r = client.post(
            "/api/uploads", data={"layer": layer, **form, "file": (io.BytesIO(data), name)}, headers=auth
        )
        assert r.status_code < 500, (name, layer, form, r.get_json())
        if r.status_code != 201:
            return
        upload = f"/api/uploads/{r.get_json()['upload_id']}"
        r = client.post(f"{upload}/preview", data=reread, headers=auth)
        assert r.status_code < 500, (name, reread, r.get_json())
        r = client.get(f"{upload}/features?{urlencode({'limit': limit})}", headers=auth)
        assert r.status_code < 500, (name, limit, r.get_json())
        r = client.post(f"{upload}/commit", headers=auth) if commit else client.delete(upload, headers=auth)
        assert r.status_code < 500, (name, commit, r.get_json() if r.is_json else r.status_code)

    fuzz()


# --------------------------------------------------------------------------- pages and forms

#: Query keys the pages read, plus random ones.
QUERY_KEYS = [
    "level",
    "layer",
    "as_of",
    "metric",
    "tiles",
    "within",
    "status",
    "lang",
    "page",
    "user",
    "action",
    "next",
    "format",
]
#: Form fields the forms read (Flask-WTF prefixes included), plus random ones.
FORM_KEYS = [
    "action",
    "name",
    "role",
    "password",
    "token_id",
    "username",
    "pw-current",
    "pw-new",
    "tk-label",
    "new-name",
    "new-role",
    "new-password",
    "layer",
    "encoding",
]
_WORDS = st.sampled_from(
    [
        "",
        "grid",
        "community",
        "street",
        "district",
        "demolition",
        "parking",
        "charging",
        "rate",
        "area",
        "progress",
        "none",
        "osm",
        "gaode",
        "tianditu",
        "en",
        "zh",
        "2022-05-25",
        "20220525",
        "2022年5月25日",
        "2021-06-30",
        "340291001001",
        "UNASSIGNED",
        "viewer",
        "surveyor",
        "nobody",
        "add",
        "disable",
        "enable",
        "password",
        "token",
        "revoke",
        "import",
        "-1",
        "0",
        "99999999999999999999",
        "1e308",
        "nan",
        "//evil.example/",
        "=HYPERLINK(1)",
        "\u202eabc",
        "\x1b[31m",
        "\x00",
    ]
)
_VALUES = st.one_of(_WORDS, st.text(max_size=40))


def _params(keys: list[str]) -> st.SearchStrategy[list[tuple[str, str]]]:
    key = st.one_of(st.sampled_from(keys), st.text(min_size=1, max_size=12))
    return st.lists(st.tuples(key, _VALUES), max_size=6)


def _segment(rule_arg: str) -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(["leaflet", "chartjs", "leaflet.js", "../../etc/passwd", "%00", "a/b", "."]),
        st.text(min_size=1, max_size=30),
    )


def _page_rules(app: Any, method: str) -> list[Any]:
    return sorted(
        (r for r in app.url_map.iter_rules() if not r.rule.startswith("/api/") and method in r.methods),
        key=lambda r: r.rule,
    )


def _url(rule: Any, values: dict[str, str]) -> str:
    def fill(m: re.Match[str]) -> str:
        converter, name = m.group(1), m.group(2)
        return quote(values[name], safe="/" if converter == "path" else "")

    return re.sub(r"<(?:([^:>(]+)(?:\([^)]*\))?:)?([^>]+)>", fill, rule.rule)


@pytest.fixture(scope="module")
def page_app(tmp_path_factory) -> Any:
    data, _secret = _store_with_data(tmp_path_factory.mktemp("pages"))
    return create_app({"GRIDWATCH_DATA": str(data), "TESTING": True})


def _signed_in(app: Any) -> tuple[Any, str, str]:
    """A client signed in as the page admin, its session cookie and its CSRF token."""
    client = app.test_client()
    assert login(client, "pageadmin", PASSWORD).status_code == 302
    cookie = client.get_cookie("gridwatch_session").value
    csrf = csrf_from(client.get("/account").text)
    return client, cookie, csrf


@pytest.mark.slow
@pytest.mark.parametrize("signed_in", [False, True], ids=["anonymous", "signed-in"])
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_pages_and_forms_never_answer_5xx(page_app, method, signed_in):
    rules = _page_rules(page_app, method)
    assert rules, method
    if signed_in:
        client, cookie, csrf = _signed_in(page_app)
    else:
        client, cookie, csrf = page_app.test_client(), None, ""

    @settings(FUZZ, max_examples=EXAMPLES * 5)
    @given(data=st.data())
    def fuzz(data: Any) -> None:
        rule = data.draw(st.sampled_from(rules), label="rule")
        values = {arg: data.draw(_segment(arg), label=arg) for arg in sorted(rule.arguments)}
        url = _url(rule, values)
        query = data.draw(_params(QUERY_KEYS), label="query")
        if cookie is not None:
            client.set_cookie("gridwatch_session", cookie)  # a fuzzed logout or lock ends it
        if method == "GET":
            r = client.get(f"{url}?{urlencode(query)}")
        else:
            form = data.draw(_params(FORM_KEYS), label="form")
            if csrf and data.draw(st.booleans(), label="with csrf token"):
                form.append(("csrf_token", csrf))
            r = client.post(f"{url}?{urlencode(query)}", data=MultiDict(form))
        assert r.status_code < 500, f"{method} {url}?{urlencode(query)} → {r.status_code} {r.data[:300]!r}"

    fuzz()


# --------------------------------------------------------------------------- the command line


def _hostile_files(root: Path) -> list[Path]:
    """Files a hostile or careless surveyor might hand in."""
    root.mkdir(parents=True, exist_ok=True)
    files = []

    def put(name: str, data: bytes) -> None:
        path = root / name
        path.write_bytes(data)
        files.append(path)

    put("garbage.zip", b"PK\x03\x04" + os.urandom(200))
    put("empty.shp", b"")
    put("random.xlsx", os.urandom(300))
    put("random.gpkg", b"SQLite format 3\x00" + os.urandom(200))
    put("bad.geojson", b'{"type": "FeatureCollection", "features": [{"type": "Feature", "geometry": 5}]}')
    put("nul.csv", "案件编号,经度,纬度\nA\x002\x1b[31m,118.4005,31.2995\n\u202e,1e999,nan\n".encode())
    put("targets.csv", "编码,图层,指标,目标\n=1,demolition,total,-5\n340291001001,\x1b,x,1e400\n".encode())
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("../../evil.shp", b"x")
        zf.writestr("a/b.dbf", b"\x03" + b"\x00" * 40)
    put("slip.zip", buf.getvalue())
    shp = write_shp(points_frame([(X0 + 50, Y0 - 50)], 案件编号=["C1"]), root / "cpg" / "违建.shp")
    shp.with_suffix(".cpg").write_text("unicode_escape")
    files.append(shp)
    good = write_shp(points_frame([(X0 + 150, Y0 - 50)], 案件编号=["G1"]), root / "good" / "违建.shp")
    files.append(zip_shp(good, root / "good.zip", folder="上报/"))
    put("points.csv", "案件编号,经度,纬度\nP1,118.4005,31.2995\n".encode())
    files.append(root / "missing.zip")
    files.append(root)  # a directory
    return files


@pytest.fixture(scope="module")
def cli_site(tmp_path_factory) -> tuple[Path, list[Path], Path]:
    root = tmp_path_factory.mktemp("cli")
    data, _secret = _store_with_data(root)
    out = root / "out"
    out.mkdir()
    return data, _hostile_files(root / "hostile"), out


_TEXT = st.one_of(_WORDS, st.text(max_size=30))
_LAYER = st.sampled_from(["demolition", "parking", "charging", "grid"])
_ENCODING = st.sampled_from(["GBK", "utf-8", "big5", "utf-16", "latin-1", "rot13", "unicode_escape", "zlib"])
_CRS = st.sampled_from(
    ["EPSG:4548", "gcj02", "EPSG:4326", "EPSG:99999", "+proj=x", "CGCS2000_3_Degree_GK_CM_117E"]
)
#: Output file names: never a path out of the fuzz's own folder.
_OUT_NAME = st.text(
    alphabet=string.ascii_letters + string.digits + "_-.统计", min_size=1, max_size=20
).filter(lambda s: s not in (".", ".."))


@st.composite
def _command(draw: Any, files: list[Path], out: Path) -> list[str]:
    file = st.sampled_from([str(f) for f in files])
    pick = draw(
        st.sampled_from(
            [
                "import",
                "batches",
                "rollback",
                "targets",
                "stats",
                "grid-generate",
                "user",
                "token",
                "audit",
                "demo",
            ]
        )
    )
    args: list[str] = [pick]

    def opt(name: str, strategy: st.SearchStrategy[str]) -> list[str]:
        """``[name, value]`` or nothing."""
        return [name, draw(strategy)] if draw(st.booleans()) else []

    def flag(name: str) -> list[str]:
        return [name] if draw(st.booleans()) else []

    if pick == "import":
        args += [draw(st.one_of(_LAYER, _LAYER, _TEXT)), draw(file)]
        args += opt("--encoding", st.one_of(_ENCODING, _TEXT)) + opt("--crs", st.one_of(_CRS, _TEXT))
        args += (opt("--member", _TEXT) if draw(st.integers(0, 3)) == 0 else []) + flag("--dry-run")
        args += flag("--json")
    elif pick == "batches":
        args += opt("--layer", _TEXT) + flag("--json")
    elif pick == "rollback":
        args += [draw(st.one_of(_TEXT, st.integers(-(2**70), 2**70).map(str)))]
    elif pick == "targets":
        args += [draw(file), "--dry-run"]
    elif pick == "stats":
        args += opt("--level", st.sampled_from(["grid", "community", "street", "district"]))
        args += opt("--layer", st.one_of(st.sampled_from(["demolition", "parking", "grid"]), _TEXT))
        args += opt("--as-of", _TEXT) + opt("--within", _TEXT)
        args += opt("--monthly", st.one_of(_TEXT, st.tuples(_TEXT, _TEXT).map(":".join)))
        args += opt("--format", st.sampled_from(["csv", "xlsx", "json", "geojson", "gpkg", "shp"]))
        args += ["-o", str(out / draw(_OUT_NAME))]
    elif pick == "grid-generate":
        args += [draw(file), "-o", str(out / (draw(_OUT_NAME) + ".gpkg"))]
        args += opt("--size", st.one_of(_TEXT, st.floats().map(str))) + opt("--admin-code", _TEXT)
        args += opt("--shape", st.sampled_from(["square", "hex"]))
    elif pick == "user":
        action = draw(st.sampled_from(["add", "list", "disable", "enable", "passwd", "role"]))
        args += [action, draw(st.one_of(st.sampled_from(["viewer", "surveyor", "nobody"]), _TEXT))]
        args += [*opt("--role", st.sampled_from(["viewer", "surveyor", "admin"])), "--password-stdin"]
    elif pick == "token":
        action = draw(st.sampled_from(["add", "list", "revoke"]))
        args += [action, draw(st.sampled_from(["viewer", "surveyor", "nobody"]))]
        args += opt("--label", _TEXT) + opt("--id", st.one_of(_TEXT, st.integers(-(2**70), 2**70).map(str)))
    elif pick == "audit":
        args += opt("--limit", st.one_of(_TEXT, st.integers(-(2**70), 2**70).map(str)))
        args += opt("--by", _TEXT) + opt("--action", _TEXT) + flag("--csv")
    elif pick == "demo":
        args += ["--source", draw(file)]
    lang = ["--lang", "en"] if draw(st.booleans()) else []
    return lang + args


@pytest.mark.slow
def test_cli_exits_0_or_2_never_a_traceback(cli_site, capsys, monkeypatch):
    from geo.cli import main

    data, files, out = cli_site
    monkeypatch.delenv("GRIDWATCH_DEBUG", raising=False)

    @settings(FUZZ, max_examples=60)
    @given(argv=_command(files, out), stdin=st.text(max_size=20))
    def fuzz(argv: list[str], stdin: str) -> None:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin + "\n"))
        code = main(["--data", str(data), *argv])
        captured = capsys.readouterr()
        assert code in (0, 2), (argv, code, captured.err[-500:])
        assert "Traceback" not in captured.err and "internal error" not in captured.err, (argv, captured.err)
        if code == 2:
            assert captured.err.strip().count("\n") == 0, (argv, captured.err)
        shown = captured.err if "--csv" in argv else captured.out + captured.err  # CSV is data, not display
        assert "\x1b" not in shown and "\u202e" not in shown, argv

    fuzz()
