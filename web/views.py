"""Map page, statistics download and a small JSON API.  Only turns requests into engine calls."""

from __future__ import annotations

import html
from typing import Any

import folium
import numpy as np
from flask import Blueprint, jsonify, render_template, request

import layers
from geo.errors import InputError
from geo.report import unit_geometry
from geo.store import UNASSIGNED
from geo.tally import LEVEL_LABELS, LEVELS, check_level, tally

bp = Blueprint("main", __name__)


def _store() -> Any:
    from server import get_store

    return get_store()


def _args() -> tuple[str, list[str] | None, str | None]:
    level = check_level(request.args.get("level", "grid"))
    layer = request.args.get("layer") or None
    as_of = request.args.get("as_of") or None
    return level, [layer] if layer else None, as_of


@bp.get("/healthz")
def healthz() -> Any:
    store = _store()
    return jsonify({"status": "ok", "store": store.location, "revision": store.revision()})


def _color(rate: float) -> str:
    if rate != rate:  # NaN: nothing to do in this unit
        return "#dddddd"
    stops = ["#d73027", "#fc8d59", "#fee08b", "#d9ef8b", "#91cf60", "#1a9850"]
    return stops[min(int(rate * (len(stops) - 1) + 0.5), len(stops) - 1)]


@bp.get("/")
def index() -> Any:
    level, layer_names, as_of = _args()
    spec = layers.get(layer_names[0]) if layer_names else layers.survey_layers()[0]
    if spec.is_grid:
        raise InputError("请选择调查图层", "choose a survey layer")
    store = _store()
    table = tally(store, level, [spec.name], as_of)
    geom = unit_geometry(store, level)
    tiles = request.args.get("tiles") or None
    m = folium.Map(location=[31.3, 118.4], zoom_start=13, tiles=None, control_scale=True)
    if tiles != "none" and (tiles or "") != "none":
        folium.TileLayer("OpenStreetMap", name="OpenStreetMap").add_to(m)
    rows = table[table["code"] != UNASSIGNED].set_index("code")
    features = []
    for code, outline in geom.items():
        if code not in rows.index or outline is None:
            continue
        r = rows.loc[code]
        rate = float(r[f"{spec.name}_rate"])
        features.append(
            {
                "type": "Feature",
                "geometry": outline.__geo_interface__,
                "properties": {
                    "code": html.escape(str(code)),
                    "name": html.escape(str(r["name"] if r["name"] == r["name"] else "")),
                    "total": int(r[f"{spec.name}_total"]),
                    "completed": int(r[f"{spec.name}_completed"]),
                    "rate": "—" if rate != rate else f"{rate:.0%}",
                    "fill": _color(rate),
                },
            }
        )
    if features:
        gj = folium.GeoJson(
            {"type": "FeatureCollection", "features": features},
            name=f"{LEVEL_LABELS[level][0]} {spec.label_zh}完成率",
            style_function=lambda f: {
                "fillColor": f["properties"]["fill"],
                "color": "#555",
                "weight": 0.6,
                "fillOpacity": 0.65,
            },
            tooltip=folium.GeoJsonTooltip(
                ["code", "name", "total", "completed", "rate"],
                aliases=["编码", "名称", "总数", "已完成", "完成率"],
            ),
        )
        gj.add_to(m)
        bounds = geom.total_bounds
        if np.isfinite(bounds).all():
            m.fit_bounds([[bounds[1], bounds[0]], [bounds[3], bounds[2]]])
    folium.LayerControl().add_to(m)
    root = m.get_root()
    root.render()
    unassigned = table[table["code"] == UNASSIGNED].iloc[0]
    return render_template(
        "map.html",
        map_header=root.header.render(),
        map_html=root.html.render(),
        map_script=root.script.render(),
        level=level,
        levels=[(lv, LEVEL_LABELS[lv]) for lv in LEVELS],
        layer=spec,
        survey_layers=layers.survey_layers(),
        as_of=as_of or "",
        totals={
            "total": int(table[f"{spec.name}_total"].sum()),
            "completed": int(table[f"{spec.name}_completed"].sum()),
            "unassigned": int(unassigned[f"{spec.name}_total"]),
        },
    )
