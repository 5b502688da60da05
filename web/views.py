"""Map page and vendored web assets.  Only turns requests into engine calls."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import folium
import numpy as np
from flask import (
    Blueprint,
    abort,
    current_app,
    jsonify,
    render_template,
    request,
    send_from_directory,
    url_for,
)
from flask_babel import gettext as _

import layers
from geo.errors import InputError
from geo.figures.hierarchy import grid_levels, load_hierarchy
from geo.figures.report import unit_geometry
from geo.figures.tally import monthly, tally
from geo.reading.values import safe_display_name
from geo.registry import grid_spec
from geo.store import clock
from layers.base import UNASSIGNED, LayerSpec, Level
from server import label, select_locale
from web.auth import MAP, PUBLIC, is_admin, requires, user_name
from web.common import current_store, query_args, survey_spec

bp = Blueprint("main", __name__)


@bp.get("/healthz")
@requires(PUBLIC)
def healthz() -> Any:
    """For load balancers: ``ok`` (200) when the store can be read, else ``unavailable`` (503).
    It names no file or directory."""
    try:
        current_store().revision()
    except Exception:  # whatever keeps the store from being read, the answer is the same
        logging.getLogger("gridwatch").exception("health check: the store cannot be read")
        return jsonify({"status": "unavailable"}), 503
    return jsonify({"status": "ok"})


VENDOR = {
    "leaflet": "leaflet/dist",
    "markercluster": "leaflet.markercluster/dist",
    "chartjs": "chart.js/dist",
}
NODE_MODULES = Path(__file__).resolve().parent.parent / "node_modules"

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


@bp.get("/vendor/<package>/<path:filename>")
@requires(PUBLIC)
def vendor(package: str, filename: str) -> Any:
    """Leaflet and its plugins, installed from the npm registry at set-up and served from here."""
    if package not in VENDOR:
        abort(404)
    return send_from_directory(NODE_MODULES / VENDOR[package], filename, max_age=86400)


def _levels_config() -> list[dict[str, str]]:
    """The grid's levels for a page's JSON config, the unit grid first: name and label."""
    return [{"name": lv.name, "label": label(lv)} for lv in grid_levels()]


def _middle_levels() -> list[Level]:
    """The levels between the unit grid and the top one, from the top down (street, community):
    the areas the map page offers and the completion charts of the statistics page."""
    return list(grid_levels()[-2:0:-1])


def _base_map(choice: str) -> dict[str, Any] | None:
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


@bp.get("/")
@requires(MAP)
def index() -> Any:
    level, layer_names, as_of = query_args()
    spec = survey_spec(layer_names)
    metric = request.args.get("metric", "rate")
    if metric not in ("rate", "completed", "area", "progress") or (metric == "area" and not spec.measures):
        raise InputError(f"未知指标: {metric}", f"unknown metric: {metric}", code="bad_metric")
    store = current_store()
    base = _base_map(request.args.get("tiles") or current_app.config.get("GRIDWATCH_TILES", "osm"))
    outline = unit_geometry(store, grid_levels()[0].name)  # bounds only: no need to dissolve
    bounds = outline.total_bounds if len(outline) else np.array([118.35, 31.25, 118.45, 31.35])
    m = folium.Map(
        location=[(bounds[1] + bounds[3]) / 2, (bounds[0] + bounds[2]) / 2],
        zoom_start=13,
        tiles=None,
        control_scale=True,
        prefer_canvas=True,
    )
    m.default_js = [("leaflet", url_for("main.vendor", package="leaflet", filename="leaflet.js"))]
    m.default_css = [("leaflet_css", url_for("main.vendor", package="leaflet", filename="leaflet.css"))]
    if base is not None:
        folium.TileLayer(
            base["url"],
            attr=base["attr"],
            name=base["name"],
            subdomains=base.get("subdomains", "abc"),
            max_zoom=19,
        ).add_to(m)
        if base.get("labels"):
            folium.TileLayer(
                base["labels"],
                attr=base["attr"],
                name="注记",
                subdomains=base["subdomains"],
                overlay=True,
                control=False,
            ).add_to(m)
    if np.isfinite(bounds).all():
        m.fit_bounds([[bounds[1], bounds[0]], [bounds[3], bounds[2]]])
    root = m.get_root()
    root.render()
    table = tally(store, level, [spec.name], as_of)
    unassigned = table[table["code"] == UNASSIGNED].iloc[0]
    config = {
        "mapName": m.get_name(),
        "api": url_for("api.api_layers").rsplit("/", 1)[0],
        "level": level,
        "levels": _levels_config(),
        "layer": spec.name,
        "metric": metric,
        "asOf": as_of.isoformat() if as_of else "",
        "status": request.args.get("status", ""),
        "within": request.args.get("within", ""),
        "gcj02": bool(base and base.get("gcj02")),
        "maxCompleted": int(table[f"{spec.name}_completed"].max() or 1),
        # "area": the first measure completed (demolished area), scaled by its largest unit
        "measureColumn": spec.measures[0].completed_column(spec.name) if spec.measures else "",
        "maxMeasure": float(table[spec.measures[0].completed_column(spec.name)].max() or 1)
        if spec.measures
        else 1,
        "measureLabel": (
            f"{label(spec.measures[0])}（{_('已完成')}{', m²' if spec.measures[0].unit == 'm2' else ''}）"
            if spec.measures
            else ""
        ),
        "surveyLayers": [
            {
                "name": s.name,
                "label": label(s),
                "on": s.name == spec.name,
                "fields": [{"name": f.name, "label": label(f)} for f in s.stored_fields],
                "colors": {st.code: st.color for st in s.all_statuses},
                "statuses": [
                    {"code": st.code, "label": label(st), "color": st.color} for st in s.all_statuses
                ],
                "statusLabel": label(s.field(s.status_field)) if s.status_field else "",
                "shapes": _shapes(s),
                "color": s.style.get("color", "#3388ff"),
                "radius": s.style.get("radius", 5),
            }
            for s in layers.survey_layers()
        ],
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
        },
    }
    hier = load_hierarchy(store)
    areas = [
        (
            label(lv),
            [(r["code"], r["name"] or r["code"]) for r in hier.units(lv.name).to_dict("records")],
        )
        for lv in _middle_levels()
    ]
    return render_template(
        "map.html",
        areas=areas,
        within=request.args.get("within", ""),
        status=request.args.get("status", ""),
        map_header=root.header.render(),
        map_html=root.html.render(),
        map_script=root.script.render(),
        config_json=current_app.json.dumps(config),
        level=level,
        levels=[(lv.name, lv) for lv in grid_levels()],
        layer=spec,
        survey_layers=layers.survey_layers(),
        as_of=as_of.isoformat() if as_of else "",
        metric=metric,
        totals={
            "total": int(table[f"{spec.name}_total"].sum()),
            "completed": int(table[f"{spec.name}_completed"].sum()),
            "unassigned": int(unassigned[f"{spec.name}_total"]),
        },
    )


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


@bp.get("/upload")
@requires("surveyor")
def upload() -> Any:
    english = select_locale() == "en"
    base_error = None
    try:
        base = _base_map(request.args.get("tiles") or current_app.config.get("GRIDWATCH_TILES", "osm"))
    except InputError as exc:  # the preview map then draws without a base map; uploads still work
        base, base_error = None, exc.en if english else exc.zh
    config = {
        "api": url_for("api.api_upload"),
        "cells": url_for("api.api_cells"),
        "lang": select_locale(),
        "base": base,
        "baseError": base_error,
        "gcj02": bool(base and base.get("gcj02")),
        "levels": _levels_config(),
        "labels": {
            "network": _("网络错误"),
            "error": _("错误"),
            "chooseFile": _("请选择文件"),
            "checked": _("检查完成，确认后写入"),
            "duplicate": _("该文件已导入过（批次 {batch}），不会重复写入"),
            "imported": _("已导入：批次 {batch}，新增 {added}，更新 {updated}"),
            "file": _("文件"),
            "rowsRead": _("读取行数"),
            "accepted": _("可导入"),
            "rejected": _("拒绝"),
            "unassigned": _("未落入网格"),
            "encoding": _("文字编码"),
            "crs": _("坐标系"),
            "loading": _("读取中…"),
            "shown": _("地图上显示 {sent} / {total} 个要素"),
            "insideOutside": _("落入单元网格 {inside} 个，未落入网格 {outside} 个"),
            "asPoints": _("要素较多，面以其内部一点表示"),
            "unit": _("所在网格"),
            "added": _("将新增"),
            "updated": _("将更新"),
            "unchanged": _("未变"),
            "notImported": _("（不导入）"),
            "empty": _("（空）"),
            "rows": _("{count} 行"),
            "suggestion": _("建议: {code}"),
            "useSuggestion": _("采用建议"),
            "moreValues": _("另有 {count} 个值（{rows} 行）未列出"),
            "qualifiedDone": _("该值含“暂缓、待、未、部分”等字样，却对应到已完成状态，请确认"),
            "valueHeader": _("原值"),
            "rowsHeader": _("行数"),
            "howHeader": _("方式"),
            "codeHeader": _("对应为"),
            "imported2": _("已导入：批次 {batch}，新增 {added}，更新 {updated}，记住值对应 {remembered} 个"),
        },
        "how": {
            "exact": _("与名称一致"),
            "alias": _("别名"),
            "remembered": _("已记住"),
            "manual": _("本次指定"),
            "suggested": _("未识别（有建议）"),
            "unrecognised": _("未识别"),
            "empty": _("空值，取默认"),
        },
        "admin": is_admin(),
        "layerFields": {
            s.name: [{"name": f.name, "label": label(f)} for f in s.fields] for s in layers.all_layers()
        },
        "sources": {
            "override": _("手动指定"),
            "cpg": _("按 .cpg 文件"),
            "ldid": _("按 DBF 语言标记"),
            "content": _("按文字内容判断"),
            "prj": _("按 .prj 文件"),
            "file": _("文件自带"),
            "inferred": _("按坐标推断"),
            "none": _("未知"),
        },
        # a grid upload: its version's first day and what it changes in units
        "gridVersion": {
            "validFrom": _("生效日期"),
            "units": _("单元网格：新增 {added}，删除 {removed}，形状改变 {reshaped}"),
            "issued": _(
                "生效日期早于今天：截至 {from} 至 {to} 的统计原按网格版本 {version} 计算，将改按本版本计算"
            ),
        },
    }
    return render_template(
        "upload.html",
        all_layers=layers.all_layers(),
        config_json=current_app.json.dumps(config),
        today=clock.today(current_app.config.get("GRIDWATCH_TIMEZONE")).isoformat(),
    )


@bp.get("/batches")
@requires("surveyor")
def batches() -> Any:
    labels = {s.name: label(s) for s in layers.all_layers()} | {"targets": _("年度目标")}
    me, admin = user_name(), is_admin()
    config = {
        "labels": {
            "confirm": _("确定回滚批次 {id}？该批次的要素将被删除，被它替换的要素将恢复。"),
            "done": _("已回滚批次 {id}"),
        }
    }
    return render_template(
        "batches.html",
        # file names shown as what they are: controls and bidi overrides become U+FFFD
        batches=[
            replace(
                b, source_name=safe_display_name(b.source_name), user=b.user and safe_display_name(b.user)
            )
            for b in reversed(current_store().batches())
        ],
        labels=labels,
        # surveyors roll back their own survey batches; admins any batch
        may_roll_back=lambda b: admin or (b.user == me and b.layer not in (grid_spec().name, "targets")),
        config_json=current_app.json.dumps(config),
    )


@bp.get("/stats")
@requires("viewer")
def stats() -> Any:
    level, layer_names, as_of = query_args()
    spec = survey_spec(layer_names)
    store = current_store()
    table = tally(store, level, [spec.name], as_of)
    units = table[table["code"] != UNASSIGNED]
    rate = f"{spec.name}_rate"
    lagging = units[units[f"{spec.name}_total"] > 0].sort_values(
        [rate, f"{spec.name}_total"], ascending=[True, False]
    )
    measures = [
        (m.total_column(spec.name), m.completed_column(spec.name), label(m), m.unit) for m in spec.measures
    ]
    by_level, charts = [], []
    for lv in _middle_levels():
        t = tally(store, lv.name, [spec.name], as_of)
        t = t[(t["code"] != UNASSIGNED) & (t[f"{spec.name}_total"] > 0)]
        by_level.append(
            {
                "name": lv.name,
                "labels": [str(n or c) for n, c in zip(t["name"], t["code"], strict=True)],
                "rates": [round(float(v) * 100, 1) for v in t[rate]],
            }
        )
        # "各街道完成率 (%)", "Completion by street (%)"
        charts.append(
            (lv.name, label((f"各{lv.label_zh}完成率 (%)", f"Completion by {lv.label_en.lower()} (%)")))
        )
    series = monthly(store, grid_levels()[-1].name, [spec.name], end=as_of)
    undated_col = f"{spec.name}_completed_undated"
    cols = [f"{spec.name}_total", f"{spec.name}_completed"] + ([undated_col] if undated_col in series else [])
    months = series.groupby("month")[cols].sum().reset_index()
    undated = months[undated_col] if undated_col in months else 0 * months[f"{spec.name}_total"]
    chart = {
        "levels": by_level,  # one completion chart per level
        "monthly": {
            "months": months["month"].tolist(),
            "total": [int(v) for v in months[f"{spec.name}_total"]],
            # completions with a date, and apart from them those without one: they count from the
            # day of their import, which is no progress of that month
            "completed": [int(v) for v in months[f"{spec.name}_completed"] - undated],
            "undated": [int(v) for v in undated],
        },
        "labels": {
            "rate": _("完成率 %"),
            "total": _("总数"),
            "completed": _("已完成（有完成日期）"),
            "undated": _("已完成但无完成日期（按导入日计）"),
        },
    }
    undated_now = int(table[undated_col].sum()) if undated_col in table else 0
    return render_template(
        "stats.html",
        layer=spec,
        level=level,
        levels=[(lv.name, lv) for lv in grid_levels()],
        charts=charts,
        survey_layers=layers.survey_layers(),
        as_of=as_of.isoformat() if as_of else "",
        rows=table.to_dict("records"),
        lagging=lagging.head(10).to_dict("records"),
        measures=measures,
        chart_json=current_app.json.dumps(chart),
        undated_now=undated_now,
        has_status=bool(spec.status_field),
        has_undated=undated_col in table,
    )
