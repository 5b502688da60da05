"""A standalone HTML map of one street or community, for e-mail: one file that opens offline.

Leaflet's script and style (installed from npm at set-up, ``node_modules/leaflet/dist``, where
the web pages' vendor route serves them from) are written into the file with its images as data
URIs; the units of the area, coloured by completion, and the survey points, in their status
colours with a popup of their fields, travel in one JSON block that the file's own script draws.
Nothing in the file points to a server or a CDN, and no base map is drawn (tiles would need the
network).  Text from the survey data is put into the page as text, never as markup.
"""

from __future__ import annotations

import base64
import html
import json
import re
from datetime import date
from pathlib import Path
from typing import Any

from geo.errors import GridwatchError, InputError
from geo.figures.hierarchy import grid_levels, load_hierarchy
from geo.figures.overview import area_levels, units_in
from geo.figures.viewport import BBox, cells_in_view, features_in_view
from geo.reading.values import parse_date
from geo.registry import get_layer
from geo.store.base import Store
from layers import survey_layers
from layers.base import PENDING, PENDING_CODE, Level

#: Where the set-up installs Leaflet (``npm ci``): the project's ``node_modules``.
LEAFLET_DIST = Path(__file__).resolve().parents[2] / "node_modules" / "leaflet" / "dist"

#: Completion-rate classes: upper bounds (the last class includes 100 %) and their fills.
RATE_BREAKS = (0.2, 0.4, 0.6, 0.8, 1.0)
RATE_COLOURS = ("#d73027", "#fc8d59", "#fee08b", "#91cf60", "#1a9850")
NO_DATA_COLOUR = "#dddddd"
#: At most this many survey points in one file.
MAX_POINTS = 25000

_WORDS = {
    "zh": {
        "rate": "完成率",
        "noData": "无数据",
        "status": "状态",
        "none": "无状态",
        "asOf": "截至",
        "source": "数据来源",
        "total": "总数",
        "completed": "已完成",
        "code": "编码",
        "unit": "所在网格",
        "all": "最新数据",
        "features": "要素",
    },
    "en": {
        "rate": "Completion rate",
        "noData": "No data",
        "status": "Status",
        "none": "No status",
        "asOf": "As of",
        "source": "Data source",
        "total": "Total",
        "completed": "Completed",
        "code": "Code",
        "unit": "Unit grid",
        "all": "the latest data",
        "features": "features",
    },
}


class AssetMissing(GridwatchError):
    """A file the set-up installs is not there (``npm ci`` not run)."""

    status = 503
    code = "asset_missing"


def leaflet_assets(dist: Path | None = None) -> tuple[str, str]:
    """Leaflet's script and its style sheet (images inlined as data URIs) from ``dist``
    (default :data:`LEAFLET_DIST`); :class:`AssetMissing` when the set-up has not installed them."""
    dist = LEAFLET_DIST if dist is None else dist
    js, css = dist / "leaflet.js", dist / "leaflet.css"
    if not (js.is_file() and css.is_file()):
        raise AssetMissing(
            f"找不到 Leaflet（{dist}），请先运行安装（npm ci）",
            f"Leaflet is not installed in {dist}: run the set-up (npm ci)",
        )

    def inline(m: re.Match[str]) -> str:
        image = dist / m.group(1)
        if not image.is_file():
            return "none"
        return "url(data:image/png;base64," + base64.b64encode(image.read_bytes()).decode("ascii") + ")"

    style = re.sub(r"url\((images/[\w.-]+\.png)\)", inline, css.read_text(encoding="utf-8"))
    return js.read_text(encoding="utf-8"), style


def _area(store: Store, within: str) -> tuple[str, str]:
    """The level label and the name of the unit ``within`` (any level), for the title."""
    hier = load_hierarchy(store)
    g = hier.grid
    for lv in grid_levels():
        col = hier.code_column(lv.name)
        hit = g[g[col] == within]
        if len(hit):
            name_col = "name" if col == "code" else f"{lv.name}_name"
            name = hit[name_col].iloc[0]
            return lv.name, (str(name) if name is not None and name == name else within)
    return "", within  # features_in_view says what is wrong with an unknown code


def map_areas(store: Store, area: frozenset[str] | None = None) -> list[tuple[Level, list[tuple[str, str]]]]:
    """The areas a standalone map is made for: per level between the unit grid and the top
    (streets, communities; see :func:`geo.figures.overview.area_levels`), its units' ``(code,
    name)`` sorted by code (the name is the code when the grid names none); with ``area`` (an
    account's unit grids) only the units holding one of them."""
    hier = load_hierarchy(store)
    out = []
    for lv in area_levels():
        units = units_in(hier, lv.name, area)
        names = [
            str(n) if n is not None and n == n else str(c)
            for c, n in zip(units["code"], units["name"], strict=True)
        ]
        out.append((lv, [(str(c), n) for c, n in zip(units["code"], names, strict=True)]))
    return out


def _script_json(value: Any) -> str:
    """JSON safe inside a ``<script>`` element (no ``</script>``, no ``<!--``)."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def html_map(
    store: Store,
    within: str,
    layer: str | None = None,
    as_of: str | date | None = None,
    known_at: str | None = None,
    grid: str | int | None = None,
    lang: str = "zh",
    source: str = "gridwatch",
    leaflet_dir: Path | None = None,
) -> bytes:
    """One self-contained HTML file mapping the unit grids under ``within`` and a survey layer.

    Parameters
    ----------
    within : str
        A street, community (or unit grid) code; the map shows the unit grids under it.
    layer : str, optional
        The survey layer (name or Chinese name); default the first survey layer.
    as_of : str or date, optional
        Figures and points as of this day, each point as the figures count it then (see
        :func:`geo.figures.viewport.features_in_view`: a site completed later is drawn as
        :data:`layers.base.PENDING`).
    known_at, grid : optional
        As for :func:`geo.figures.viewport.cells_in_view` (the units' figures).
    lang : str
        ``zh`` or ``en``: the words of the legend and popups.
    source : str
        The data source named under the title.
    leaflet_dir : Path, optional
        Where Leaflet's ``dist`` is (default :data:`LEAFLET_DIST`).

    Returns
    -------
    bytes
        UTF-8 HTML.  Coordinates in it are lon/lat (EPSG:4326); units carry their completion
        rate (0–1) and counts, points their status and fields.
    """
    spec = get_layer(layer) if layer else survey_layers()[0]
    script, style = leaflet_assets(leaflet_dir)
    world = BBox(-180.0, -90.0, 180.0, 90.0)
    # points first: an unknown area code is said here, as a user's error
    # (at a district's zoom a polygon site is sent as its point: the map marks every site alike)
    points = features_in_view(
        store, spec.name, world, zoom=14, as_of=as_of, within=within, max_features=MAX_POINTS, detail=True
    )
    if points["aggregated"]:
        raise InputError(
            f"范围内要素过多（{points['total']} 个，最多 {MAX_POINTS} 个），请选择更小的范围",
            f"too many features in the area ({points['total']}, at most {MAX_POINTS}): choose a smaller one",
            code="too_many_features",
        )
    level = grid_levels()[0].name
    cells = cells_in_view(
        store, level, None, 18, layer=spec.name, as_of=as_of, within=within, known_at=known_at, grid=grid
    )
    words = _WORDS.get(lang, _WORDS["zh"])
    en = lang == "en"
    _, area_name = _area(store, within)
    day = parse_date(as_of)
    layer_label = spec.label_en if en else spec.label_zh
    title = f"{area_name} · {layer_label}"
    fields = [{"name": f.name, "label": f.label_en if en else f.label_zh} for f in spec.stored_fields]
    statuses = [
        {
            "code": s.code,
            "label": s.label_en if en else s.label_zh,
            "color": s.color,
            "completed": s.completed,
        }
        # a site completed since the as-of day is drawn as it was then (PENDING), listed when drawn
        for s in (*spec.all_statuses, PENDING)
        if s is not PENDING or any(p["properties"]["status"] == PENDING_CODE for p in points["features"])
    ]
    rate = f"{spec.name}_rate"
    units = [
        {
            "type": "Feature",
            "geometry": f["geometry"],
            "properties": {
                "code": f["properties"]["code"],
                "name": f["properties"].get("name"),
                "rate": f["properties"].get(rate),
                "total": f["properties"].get(f"{spec.name}_total"),
                "completed": f["properties"].get(f"{spec.name}_completed"),
            },
        }
        for f in cells["features"]
    ]
    data = {
        "units": {"type": "FeatureCollection", "features": units},
        "points": {"type": "FeatureCollection", "features": points["features"]},
        "fields": fields,
        "statuses": statuses,
        "color": spec.style.get("color", "#3388ff"),
        "breaks": list(RATE_BREAKS),
        "colours": list(RATE_COLOURS),
        "noData": NO_DATA_COLOUR,
        "words": words,
    }
    as_of_text = day.isoformat() if day is not None else words["all"]
    subtitle = (
        f"{words['asOf']} {as_of_text} · {words['source']}: {source} · {points['total']} {words['features']}"
    )
    if known_at:
        subtitle += f" · known at {known_at}"
    page = _PAGE.format(
        lang="en" if en else "zh-CN",
        title=html.escape(title),
        subtitle=html.escape(subtitle),
        style=style.replace("</", "<\\/"),
        script=script.replace("</script", "<\\/script"),
        data=_script_json(data),
        draw=_DRAW,
    )
    return page.encode("utf-8")


_PAGE = """<!DOCTYPE html>
<html lang="{lang}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>{style}</style>
<style>
html, body {{ margin: 0; height: 100%; font-family: "Noto Sans CJK SC", "Microsoft YaHei", sans-serif; }}
body {{ display: flex; flex-direction: column; }}
#head {{ padding: 6px 12px; background: #1f3b63; color: #fff; }}
#head h1 {{ margin: 0; font-size: 18px; }}
#head p {{ margin: 2px 0 0; font-size: 13px; }}
#map {{ flex: 1; min-height: 240px; background: #f4f4f4; }}
.legend {{ background: #fff; padding: 6px 8px; font-size: 12px; line-height: 18px; border-radius: 4px;
  box-shadow: 0 1px 4px rgba(0,0,0,.3); }}
.legend i {{ display: inline-block; width: 14px; height: 12px; margin-right: 6px; vertical-align: middle; }}
.legend b {{ display: block; }}
table.props th {{ text-align: left; padding-right: 8px; font-weight: normal; color: #555; }}
</style>
</head>
<body>
<div id="head"><h1>{title}</h1><p>{subtitle}</p></div>
<div id="map"></div>
<script>{script}</script>
<script type="application/json" id="gw-data">{data}</script>
<script>{draw}</script>
</body>
</html>
"""

_DRAW = """
(function () {
  "use strict";
  var d = JSON.parse(document.getElementById("gw-data").textContent), w = d.words;
  var map = L.map("map", { attributionControl: false });
  L.control.scale({ imperial: false }).addTo(map);
  function fill(rate) {
    if (rate === null || rate === undefined) return d.noData;
    for (var i = 0; i < d.breaks.length; i++) if (rate < d.breaks[i] || i === d.breaks.length - 1) return d.colours[i];
    return d.noData;
  }
  function el(tag, text) { var n = document.createElement(tag); if (text !== undefined && text !== null) n.textContent = String(text); return n; }
  function table(rows) {
    var t = el("table"); t.className = "props";
    rows.forEach(function (r) { var tr = el("tr"); tr.appendChild(el("th", r[0])); tr.appendChild(el("td", r[1] === null || r[1] === undefined ? "—" : r[1])); t.appendChild(tr); });
    return t;
  }
  var colours = {};
  d.statuses.forEach(function (s) { colours[s.code] = s.color; });
  function pointColour(p) { return colours[p.status] || d.color; }
  var units = L.geoJSON(d.units, {
    style: function (f) { return { color: "#555", weight: 1, fillOpacity: 0.75, fillColor: fill(f.properties.rate) }; },
    onEachFeature: function (f, layer) {
      var p = f.properties;
      layer.bindTooltip(function () {
        var box = el("div");
        if (p.name) box.appendChild(el("b", p.name));
        box.appendChild(table([[w.code, p.code], [w.total, p.total], [w.completed, p.completed],
          [w.rate, p.rate === null || p.rate === undefined ? null : (p.rate * 100).toFixed(1) + "%"]]));
        return box;
      }, { sticky: true });
    }
  }).addTo(map);
  var points = L.geoJSON(d.points, {
    pointToLayer: function (f, latlng) {
      var c = pointColour(f.properties);
      return L.featureGroup([
        L.circleMarker(latlng, { radius: 7.5, stroke: false, fillColor: "#fff", fillOpacity: 1, interactive: false }),
        L.circleMarker(latlng, { radius: 5, weight: 1, color: "#333", fillColor: c, fillOpacity: 0.9 })
      ]);
    },
    onEachFeature: function (f, layer) {
      var rows = d.fields.map(function (x) { return [x.label, f.properties[x.name]]; });
      rows.push([w.unit, f.properties.unit]);
      layer.bindPopup(function () { return table(rows); });
    }
  }).addTo(map);
  var bounds = units.getBounds();
  if (points.getLayers().length) bounds.extend(points.getBounds());
  if (bounds.isValid()) map.fitBounds(bounds, { padding: [12, 12] }); else map.setView([0, 0], 2);
  var legend = L.control({ position: "bottomright" });
  legend.onAdd = function () {
    var box = el("div"); box.className = "legend";
    box.appendChild(el("b", w.rate));
    var lo = 0;
    d.breaks.forEach(function (hi, i) {
      var row = el("div"), sw = el("i"); sw.style.background = d.colours[i];
      row.appendChild(sw); row.appendChild(document.createTextNode(Math.round(lo * 100) + "–" + Math.round(hi * 100) + "%"));
      box.appendChild(row); lo = hi;
    });
    var none = el("div"), sw = el("i"); sw.style.background = d.noData;
    none.appendChild(sw); none.appendChild(document.createTextNode(w.noData)); box.appendChild(none);
    box.appendChild(el("b", w.status));
    d.statuses.forEach(function (s) {
      var row = el("div"), dot = el("i"); dot.style.background = s.color; dot.style.borderRadius = "7px";
      row.appendChild(dot); row.appendChild(document.createTextNode(s.label)); box.appendChild(row);
    });
    return box;
  };
  legend.addTo(map);
  window.gwStandalone = { map: map, units: units, points: points };
})();
"""
