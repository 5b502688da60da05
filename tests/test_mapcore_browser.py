"""The shared map module in a real headless browser: clusters drawn as rings of their status mix
with a tooltip that lists them, and every point marker with a white halo that keeps it readable on
a unit of its own colour (checked on the pixels of a screenshot)."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest

from geo.imports.importer import import_file
from geo.store import accounts
from geo.store.backends import open_store
from tests.helpers.builders import X0, Y0, grid_frame, points_frame, write_shp
from tests.helpers.needs import chromium
from tests.helpers.web import serving, wait_for

PASSWORD = "mapcore-admin-pass"
N = 1600  # more than the features endpoint sends one by one
pytestmark = [pytest.mark.slow, pytest.mark.needs("chromium", "node_modules", "translations")]


def _status(i: int) -> str:
    return "已拆除" if i % 5 == 0 else ("已登记" if i % 5 < 4 else "说不清")


@pytest.fixture(scope="module")
def live_server(tmp_path_factory):
    from server import create_app

    tmp = tmp_path_factory.mktemp("mapcore")
    data = tmp / "store"
    with open_store(data) as store:
        import_file(store, "grid", write_shp(grid_frame(), tmp / "g" / "g.shp"))
        rng = np.random.default_rng(7)
        xy = np.column_stack([X0 + rng.uniform(5, 295, N), Y0 - rng.uniform(5, 295, N)])
        sites = points_frame(
            [tuple(p) for p in xy],
            案件编号=[f"R{i}" for i in range(N)],
            当前状态=[_status(i) for i in range(N)],
        )
        import_file(store, "demolition", write_shp(sites, tmp / "s" / "s.shp"))
        accounts.add_user(store, "admin", "admin", PASSWORD)
    app = create_app({"TESTING": True, "GRIDWATCH_DATA": str(data)})
    with serving(app) as port:
        yield f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium(), args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


@pytest.fixture
def page(live_server, browser):
    """A page signed in as the admin, its requests kept to this machine."""
    context = browser.new_context(viewport={"width": 1366, "height": 768})
    context.route("**/*", lambda r: r.continue_() if r.request.url.startswith(live_server) else r.abort())
    pg = context.new_page()
    pg.goto(f"{live_server}/login")
    pg.fill("#username", "admin")
    pg.fill("#password", PASSWORD)
    pg.click("#gw-login button[type=submit]")
    pg.wait_for_url(f"{live_server}/")
    yield pg
    context.close()


def _open_map(page, live_server, lang: str) -> None:
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{live_server}/?level=grid&layer=demolition&tiles=none&lang={lang}")
    wait_for(page, "window.gridwatch && window.gridwatch.maps && window.gridwatch.maps.main", timeout=20000)
    # far enough out that the 1,600 sites are clustered
    page.evaluate("window.gridwatch.maps.main.setZoom(15)")
    wait_for(page, "document.querySelectorAll('.gw-ring').length > 0", timeout=20000)
    page.wait_for_load_state("networkidle")
    assert errors == []


_RINGS = """() => Array.from(document.querySelectorAll('.gw-ring')).map((ring) => ({
    total: Number(ring.querySelector('text').textContent),
    size: ring.querySelector('svg').getAttribute('width'),
    arcs: Array.from(ring.querySelectorAll('.gw-ring-arc')).map((a) => ({
        status: a.dataset.status, count: Number(a.dataset.count), color: a.getAttribute('stroke'),
        length: parseFloat(a.getAttribute('stroke-dasharray')),
    })),
}))"""


@pytest.mark.parametrize(
    ("lang", "words"),
    [
        ("zh", {"已拆除": "已拆除", "已登记": "已登记", "未识别": "未识别"}),
        ("en", {"已拆除": "Demolished", "已登记": "Registered", "未识别": "Unrecognised"}),
    ],
)
def test_clusters_are_rings_of_their_status_mix(live_server, page, lang, words):
    _open_map(page, live_server, lang)
    cfg = page.evaluate("window.gridwatch.mapcore.config")
    spec = next(s for s in cfg["layers"] if s["name"] == "demolition")
    rings = page.evaluate(_RINGS)
    assert sum(r["total"] for r in rings) == N  # every site in view is in one ring
    mix: dict[str, int] = {}
    for ring in rings:
        assert sum(a["count"] for a in ring["arcs"]) == ring["total"]
        full = sum(a["length"] for a in ring["arcs"])
        for arc in ring["arcs"]:
            assert arc["color"] == spec["colors"][arc["status"]]  # the status's own colour
            assert arc["length"] == pytest.approx(full * arc["count"] / ring["total"], abs=0.02)
            mix[arc["status"]] = mix.get(arc["status"], 0) + arc["count"]
    assert mix == {"已拆除": N // 5, "已登记": 3 * N // 5, "未识别": N // 5}
    sizes = {int(r["size"]) for r in rings}
    biggest = max(rings, key=lambda r: r["total"])
    assert int(biggest["size"]) == max(sizes)  # larger counts, larger rings
    # hovering the biggest ring lists its statuses, in the page's language, with their counts
    box = page.locator(".gw-ring").nth(rings.index(biggest)).bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.wait_for_selector(".leaflet-tooltip", timeout=5000)
    rows = page.eval_on_selector_all(
        ".leaflet-tooltip tr", "rows => rows.map((r) => [r.cells[0].textContent, r.cells[1].textContent])"
    )
    expected = [[words[a["status"]], str(a["count"])] for a in biggest["arcs"]]
    assert rows == [*expected, [cfg["labels"]["total"], str(biggest["total"])]]


# A unit filled with a status's colour, far from the data, and one marker of each shape on it in
# the same colour, drawn by the module as the map draws features.
_ON_SAME_COLOUR = """(code) => {
    const core = window.gridwatch.mapcore, map = window.gridwatch.maps.main;
    const layer = core.config.layers.find((s) => s.name === 'demolition');
    // the layer's shape field with a value of every shape the module draws
    const shapes = ['square', 'triangle', 'diamond'].map((shape) => ({ code: 'v-' + shape, label: shape, shape }));
    const spec = { ...layer, shapes: { ...layer.shapes, values: shapes } };
    map.setView([10, 10], 17, { animate: false });
    const colour = spec.colors[code];
    const c = map.latLngToContainerPoint([10, 10]);
    const box = L.latLngBounds(map.containerPointToLatLng([c.x - 200, c.y - 60]),
                               map.containerPointToLatLng([c.x + 200, c.y + 60]));
    L.rectangle(box, { stroke: false, fillColor: colour, fillOpacity: 1 }).addTo(map);
    const values = [null, ...spec.shapes.values.map((v) => v.code)];
    const features = values.map((value, i) => {
        const at = map.containerPointToLatLng([c.x - 120 + 80 * i, c.y]);
        return { type: 'Feature', geometry: { type: 'Point', coordinates: [at.lng, at.lat] },
                 properties: { fid: i + 1, status: code, completed: false, [spec.shapes.field]: value } };
    });
    const group = L.layerGroup().addTo(map);
    core.drawFeatures(map, group, spec, { type: 'FeatureCollection', aggregated: false, features });
    const rect = map.getContainer().getBoundingClientRect();
    return { colour, radius: spec.radius, left: rect.left, top: rect.top,
             marks: values.map((value, i) => ({
                 shape: value === null ? 'circle' : spec.shapes.values[i - 1].shape,
                 x: c.x - 120 + 80 * i, y: c.y })) };
}"""

# outward normals of each shape's edges, and the edges' distance from the centre in radii
_EDGES = {
    "circle": ([(math.cos(a), math.sin(a)) for a in np.linspace(0, 2 * math.pi, 12, endpoint=False)], 1.0),
    "square": ([(1, 0), (-1, 0), (0, 1), (0, -1)], 0.9),
    "triangle": ([(0, 1), (math.sqrt(3) / 2, -0.5), (-math.sqrt(3) / 2, -0.5)], 0.725),
    "diamond": (
        [(s / math.sqrt(2), t / math.sqrt(2)) for s in (1, -1) for t in (1, -1)],
        1.25 / math.sqrt(2),
    ),
}


def _rgb(colour: str) -> tuple[int, int, int]:
    return tuple(int(colour[i : i + 2], 16) for i in (1, 3, 5))


@pytest.mark.parametrize("code", ["已登记", "已拆除"])  # red on red, green on green
def test_points_keep_a_white_halo_on_a_unit_of_their_colour(live_server, page, code, tmp_path):
    from PIL import Image

    _open_map(page, live_server, "zh")
    drawn = page.evaluate(_ON_SAME_COLOUR, code)
    page.wait_for_timeout(300)
    shot = Image.open(io.BytesIO(page.screenshot(path=str(tmp_path / "halo.png")))).convert("RGB")
    fill = _rgb(drawn["colour"])
    assert {m["shape"] for m in drawn["marks"]} == set(_EDGES)
    for mark in drawn["marks"]:
        normals, inradius = _EDGES[mark["shape"]]
        cx, cy = drawn["left"] + mark["x"], drawn["top"] + mark["y"]
        edge = inradius * drawn["radius"] + 0.5  # the outline is one pixel wide
        for nx, ny in normals:
            # the whitest pixel between the marker's outline and the unit around it
            halo = max(
                (
                    shot.getpixel((round(cx + nx * d), round(cy + ny * d)))
                    for d in np.arange(edge, edge + 2.6, 0.25)
                ),
                key=min,
            )
            cell = shot.getpixel((round(cx + nx * (edge + 6)), round(cy + ny * (edge + 6))))
            assert min(halo) >= 235, (mark["shape"], (nx, ny), halo)  # white around the marker
            assert max(abs(a - b) for a, b in zip(cell, fill, strict=True)) <= 3, (mark["shape"], cell)
