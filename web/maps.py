"""The maps of the pages, set up one way: the base maps, the one JSON block that configures the
browser's map module (static/gridwatch-mapcore.js: base map, levels, survey layers, labels) and the
map page's scaffold, which Folium builds and which puts its map on ``gridwatch.maps`` under a fixed
key, where the module finds it."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

import folium
import numpy as np
from flask import current_app, request, url_for
from flask_babel import gettext as _
from folium.map import FitBounds
from folium.template import Template

import layers
from geo.errors import InputError
from geo.figures.hierarchy import grid_levels
from layers.base import PENDING, UNRECOGNISED, LayerSpec, Status
from web.context import label, select_locale

BASE_MAPS: dict[str, dict[str, Any]] = {
    "osm": {
        "url": "https://tile.openstreetmap.org/{z}/{x}/{y}.png",
        "attr": "&copy; OpenStreetMap contributors",
        "name": "OpenStreetMap",
    },
    "tianditu": {
        "url": "https://t{s}.tianditu.gov.cn/vec_w/wmts?SERVICE=WMTS&REQUEST=GetTile&VERSION=1.0.0&LAYER=vec"
        "&STYLE=default&TILEMATRIXSET=w&FORMAT=tiles&TILEMATRIX={z}&TILEROW={y}&TILECOL={x}&tk={tk}",
        "labels": "https://t{s}.tianditu.gov.cn/cva_w/wmts?SERVICE=WMTS&REQUEST=GetTile&VERSION=1.0.0&LAYER=cva"
        "&STYLE=default&TILEMATRIXSET=w&FORMAT=tiles&TILEMATRIX={z}&TILEROW={y}&TILECOL={x}&tk={tk}",
        "subdomains": "01234567",
        "attr": "天地图 Tianditu",
        "name": "天地图",
    },
    "gaode": {
        "url": "https://webrd0{s}.is.autonavi.com/appmaptile?lang=zh_cn&size=1&scale=1&style=8&x={x}&y={y}&z={z}",
        "subdomains": "1234",
        "attr": "高德地图 AutoNavi",
        "name": "高德地图",
        "gcj02": True,
    },
}


def base_map(choice: str) -> dict[str, Any] | None:
    """The base map named ``choice`` (a key of :data:`BASE_MAPS`, ``none``, or the tile URL of
    the settings), with the Tianditu key filled in; an :class:`InputError` for any other."""
    if choice == "none":
        return None
    if choice in BASE_MAPS:
        base = dict(BASE_MAPS[choice])
        if choice == "tianditu":
            key = current_app.config.get("GRIDWATCH_TIANDITU_KEY", "")
            if not key:
                raise InputError(
                    "未配置天地图密钥 GRIDWATCH_TIANDITU_KEY",
                    "no Tianditu key configured",
                    code="no_tianditu_key",
                )
            base["url"] = base["url"].replace("{tk}", key)
            base["labels"] = base["labels"].replace("{tk}", key)
        return base
    configured = current_app.config.get("GRIDWATCH_TILES", "")
    # a tile URL of one's own only from the settings: the page's security policy names its host
    if choice.startswith(("http://", "https://")) and "{z}" in choice and choice == configured:
        return {"url": choice, "attr": urlsplit(choice).hostname or "", "name": "底图 base map"}
    raise InputError(
        f"未知底图: {choice}", f"unknown base map: {choice} (osm, tianditu, gaode, none)", code="bad_tiles"
    )


def usable_base_maps(current: str) -> list[dict[str, Any]]:
    """The base maps the map page may switch between, each ``{"key": ..., **base}``: the built-in
    ones that work here (Tianditu only with a key), the configured tile URL (or ``current``
    when it is that URL), in the order of :data:`BASE_MAPS`.  ``none`` is the page's own."""
    out = []
    configured = current_app.config.get("GRIDWATCH_TILES", "")
    keys = [*BASE_MAPS, *([configured] if configured.startswith(("http://", "https://")) else [])]
    for key in keys:
        try:
            base = base_map(key)
        except InputError:  # Tianditu without a key
            continue
        if base is not None:
            out.append({"key": key, **base, "name": label(_BASE_MAP_NAMES.get(key, (base["name"],) * 2))})
    return out


#: The base maps' names in the page's language (Chinese, English).
_BASE_MAP_NAMES = {
    "osm": ("OpenStreetMap", "OpenStreetMap"),
    "tianditu": ("天地图", "Tianditu"),
    "gaode": ("高德地图", "Gaode (AutoNavi)"),
}


def requested_base_map() -> dict[str, Any] | None:
    """The base map this request asks for (``?tiles=``), else the one of the settings."""
    return base_map(request.args.get("tiles") or current_app.config.get("GRIDWATCH_TILES", "osm"))


def map_levels() -> list[dict[str, str]]:
    """The levels of the unit hierarchy, the unit grid first, labelled in the page's language."""
    return [{"name": lv.name, "label": label(lv)} for lv in grid_levels()]


def map_layers() -> list[dict[str, Any]]:
    """The survey layers as the map draws them: fields, statuses with their colours (and, for a
    layer with completed statuses, :data:`~layers.base.PENDING`, the state of a site completed
    after the map's as-of day, marked ``asOf``), marker shapes and style, labelled in the page's
    language."""
    return [
        {
            "name": s.name,
            "label": label(s),
            "fields": [_field(s, f.name, label(f)) for f in s.stored_fields],
            "colors": {st.code: st.color for st in _drawn(s)},
            "statuses": [
                {"code": st.code, "label": label(st), "color": st.color, "asOf": st is PENDING}
                for st in _drawn(s)
            ],
            "statusLabel": label(s.field(s.status_field)) if s.status_field else "",
            "shapes": _shapes(s),
            "color": s.style.get("color", "#3388ff"),
            "radius": s.style.get("radius", 5),
        }
        for s in layers.survey_layers()
    ]


def _field(spec: LayerSpec, name: str, shown: str) -> dict[str, Any]:
    """A field as the map's popups show it: its label and, for a status or category, the label
    of each code in the page's language (a value the import did not recognise included)."""
    out: dict[str, Any] = {"name": name, "label": shown}
    values = spec.vocab_fields.get(name)
    if values is not None:
        out["values"] = {v.code: label(v) for v in (*values, UNRECOGNISED)}
    return out


def _drawn(spec: LayerSpec) -> tuple[Status, ...]:
    """The states a feature of ``spec`` is drawn in: its statuses, then PENDING when it has
    completed ones (as of a day, a site completed later is drawn so)."""
    return (*spec.all_statuses, PENDING) if spec.completed_statuses else spec.all_statuses


def _shapes(spec: LayerSpec) -> dict[str, Any] | None:
    """The marker shape of each value of the layer's shape field, labelled for the page."""
    category = spec.shape_category
    if category is None:
        return None
    return {
        "field": category.field,
        "label": label(spec.field(category.field)),
        "values": [{"code": v.code, "label": label(v), "shape": v.shape} for v in category.values],
    }


def map_config(
    key: str,
    base: dict[str, Any] | None,
    base_error: str | None = None,
    *,
    container: str | None = None,
    survey_layers: bool = True,
) -> dict[str, Any]:
    """The configuration of a page's map, rendered as the page's ``gw-map-config`` block.

    ``key`` names the map on the page (``gridwatch.maps[key]``): the map the page's scaffold
    put there (see :func:`scaffold`), else one the module makes in the element with the id
    ``container``.  ``base`` is the base map (see :func:`base_map`), ``base_error`` why there
    is none when one was asked for.  Without ``survey_layers`` (a map that draws none) the
    layers are left out, and with them their status codes, which are words of the survey.
    """
    return {
        "map": {"key": key, "container": container},
        "api": url_for("api.api_layers").rsplit("/", 1)[0],
        "lang": select_locale(),
        "base": base,
        "baseError": base_error,
        "gcj02": bool(base and base.get("gcj02")),
        "levels": map_levels(),
        "layers": map_layers() if survey_layers else [],
        "labels": {
            "code": _("编码"),
            "name": _("名称"),
            "total": _("总数"),
            "completed": _("已完成"),
            "rate": _("完成率"),
            "unit": _("所在网格"),
            "loading": _("读取中…"),
            "cells": _("单元网格完成率"),
            "features": _("本单元要素 {n} 个"),
            "tooMany": _("当前范围内单元过多（{n} 个），请放大或切换到社区/街道层级"),
            "shapeUnknown": _("未注明"),
            "statusNone": _("无状态"),
            "photos": _("现场照片"),
            "takenAt": _("拍摄时间"),
            "takenUnknown": _("未知"),
        },
    }


#: The viewport line of Folium's scaffold, left out of the map page's head.
_FOLIUM_VIEWPORT = re.compile(r"<meta\s+name=\"viewport\"[^>]*>", re.IGNORECASE)


class RegisterMap(folium.MacroElement):  # type: ignore[misc]
    """Puts its parent Folium map on the page's ``gridwatch.maps`` under a fixed key, where the
    browser's map module finds it (Folium's own variable name is generated per page)."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
            window.gridwatch = window.gridwatch || {};
            window.gridwatch.maps = window.gridwatch.maps || {};
            window.gridwatch.maps[{{ this.key|tojavascript }}] = {{ this._parent.get_name() }};
        {% endmacro %}
        """
    )

    def __init__(self, key: str) -> None:
        super().__init__()
        self._name = "RegisterMap"
        self.key = key


def scaffold(key: str, bounds: np.ndarray) -> dict[str, str]:
    """The map page's scaffold, built by Folium: Leaflet's script and style (served from here),
    the map's element, and the script that makes the map, fits it to ``bounds`` (west, south,
    east, north in degrees) and registers it under ``key``.  Base maps and layers are the
    module's."""
    centre = [(bounds[1] + bounds[3]) / 2, (bounds[0] + bounds[2]) / 2]
    m = folium.Map(
        location=centre, zoom_start=13, tiles=None, control_scale=False, prefer_canvas=True
    )  # metres only: gridwatch-mapcore.js
    m.default_js = [("leaflet", url_for("main.vendor", package="leaflet", filename="leaflet.js"))]
    m.default_css = [("leaflet_css", url_for("main.vendor", package="leaflet", filename="leaflet.css"))]
    if np.isfinite(bounds).all():
        fit = FitBounds([[bounds[1], bounds[0]], [bounds[3], bounds[2]]])
        # at once, not animated: the page's script may set a view of its own (a link's) next
        fit.options["animate"] = False
        m.add_child(fit)
    RegisterMap(key).add_to(m)
    root = m.get_root()
    root.render()
    # Folium's own viewport line forbids zooming (user-scalable=no): the page keeps the base
    # template's, so a phone can pinch-zoom the map page as every other page
    header = _FOLIUM_VIEWPORT.sub("", root.header.render())
    return {"header": header, "html": root.html.render(), "script": root.script.render()}
