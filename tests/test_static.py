"""The browser scripts in static/: one map set-up (gridwatch-mapcore.js) for every page with a
map, found through a fixed key rather than Folium's generated names, on Leaflet's public API."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = sorted((ROOT / "static").glob("*.js"))
MODULE = "gridwatch-mapcore.js"


def test_there_are_scripts_to_check():
    assert MODULE in {p.name for p in SCRIPTS} and len(SCRIPTS) >= 3


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: p.name)
def test_no_folium_generated_names(path):
    text = path.read_text(encoding="utf-8")
    assert not re.search(r"map_[0-9a-f]{32}", text)
    assert "mapName" not in text and "get_name" not in text


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: p.name)
def test_no_private_members(path):
    """Leaflet's private members start with an underscore: ``layer._map``, ``L.Map.prototype._…``,
    a subclass defining ``_updatePath() {…}``."""
    text = path.read_text(encoding="utf-8")
    assert re.findall(r"\._[A-Za-z]\w*", text) == []
    assert re.findall(r"^\s*_[A-Za-z]\w*\s*(?:\(|:)", text, re.M) == []
    assert "prototype" not in text


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: p.name)
def test_maps_and_base_maps_are_made_by_the_module_only(path):
    text = path.read_text(encoding="utf-8")
    made = re.findall(r"\bL\.(map|tileLayer)\(", text)
    if path.name == MODULE:
        assert sorted(set(made)) == ["map", "tileLayer"]
    else:
        assert made == [], path.name


@pytest.mark.parametrize(
    ("template", "script"),
    [
        ("map.html", "gridwatch-map.js"),
        ("upload.html", "gridwatch-upload.js"),
        ("tasks.html", "gridwatch-tasks.js"),
    ],
)
def test_map_pages_load_the_module_and_its_one_config_block(template, script):
    text = (ROOT / "templates" / template).read_text(encoding="utf-8")
    assert text.count('id="gw-map-config"') == 1
    module, page = text.index(f"filename='{MODULE}'"), text.index(f"filename='{script}'")
    assert text.index('id="gw-map-config"') < module < page
