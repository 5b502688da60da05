"""Map page and vendored web assets.  Only turns requests into engine calls."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
from flask import (
    Blueprint,
    abort,
    current_app,
    g,
    jsonify,
    render_template,
    request,
    send_from_directory,
    url_for,
)
from flask_babel import gettext as _

import layers
from geo.errors import InputError
from geo.figures.feature_list import PAGE_SIZES, UNIT_COLUMN, FeatureQuery, area_choices, feature_page
from geo.figures.hierarchy import grid_levels
from geo.figures.overview import area_levels, map_summary, map_totals, stats_page_data
from geo.figures.patrols import patrol_coverage, patrol_period
from geo.figures.tally import column_labels
from geo.imports.batches import TARGET_SPEC, may_roll_back
from geo.output.html_map import map_areas
from geo.reading.display import safe_display_name
from geo.registry import grid_spec, layer_name
from geo.store import clock
from geo.store.interface.batches import Batch, batch_kind
from geo.workdays import site_calendar
from layers.base import UNASSIGNED, UNRECOGNISED
from web.access import MAP, PUBLIC, area_units, is_admin, requires, scope, user_name
from web.common import query_args, survey_spec, timezone
from web.context import get_store, label, select_locale
from web.editing import can_edit, edit_config_json
from web.maps import map_config, requested_base_map, scaffold, usable_base_maps

bp = Blueprint("main", __name__)


@bp.get("/healthz")
@requires(PUBLIC)
def healthz() -> Any:
    """For load balancers: ``ok`` (200) when the store can be read, else ``unavailable`` (503).
    It names no file or directory."""
    try:
        get_store().revision()
    except Exception:  # whatever keeps the store from being read, the answer is the same
        logging.getLogger("gridwatch").exception("health check: the store cannot be read")
        return jsonify({"status": "unavailable"}), 503
    return jsonify({"status": "ok"})


VENDOR = {
    "leaflet": "leaflet/dist",
    "markercluster": "leaflet.markercluster/dist",
    "chartjs": "chart.js/dist",
    # drawing a rectangle or polygon on a map (the tasks page's selection); MIT, @geoman-io
    "geoman": "@geoman-io/leaflet-geoman-free/dist",
}
NODE_MODULES = Path(__file__).resolve().parent.parent / "node_modules"


@bp.get("/vendor/<package>/<path:filename>")
@requires(PUBLIC)
def vendor(package: str, filename: str) -> Any:
    """Leaflet and its plugins, installed from the npm registry at set-up and served from here."""
    if package not in VENDOR:
        abort(404)
    return send_from_directory(NODE_MODULES / VENDOR[package], filename, max_age=86400)


@bp.get("/")
@requires(MAP)
def index() -> Any:
    level, layer_names, as_of = query_args()
    spec = survey_spec(layer_names)
    metric = request.args.get("metric", "rate")
    if metric not in ("rate", "completed", "area", "progress", "tasks") or (
        metric == "area" and not spec.measures
    ):
        raise InputError(f"未知指标: {metric}", f"unknown metric: {metric}", code="bad_metric")
    store = get_store()
    tiles = request.args.get("tiles") or current_app.config.get("GRIDWATCH_TILES", "osm")
    base = requested_base_map()
    summary = map_summary(store, spec.name, level, as_of, units=area_units())
    page_map = scaffold("main", np.array(summary["bounds"]))
    config = map_config("main", base) | {
        "level": level,
        "layer": spec.name,
        "metric": metric,
        "asOf": as_of.isoformat() if as_of else "",
        "status": request.args.get("status", ""),
        "within": request.args.get("within", ""),
        "maxCompleted": summary["max_completed"],
        # "area": the first measure completed (demolished area), scaled by its largest unit
        "measureColumn": summary["measure_column"],
        "maxMeasure": summary["max_measure"],
        "measureLabel": _measure_label(spec),
        "page": map_page_config(tiles, summary["first_day"]) | {"bounds": summary["bounds"]},
    }
    areas = [(label(lv), summary["areas"][lv.name]) for lv in area_levels()]
    return render_template(
        "map.html",
        areas=areas,
        bound_area=area_units() is not None,
        within=request.args.get("within", ""),
        status=request.args.get("status", ""),
        map_header=page_map["header"],
        map_html=page_map["html"],
        map_script=page_map["script"],
        map_config_json=current_app.json.dumps(config),
        edit_config_json=edit_config_json(),
        level=level,
        levels=[(lv.name, lv) for lv in grid_levels()],
        layer=spec,
        survey_layers=layers.survey_layers(),
        as_of=as_of.isoformat() if as_of else "",
        today=clock.today(timezone()).isoformat(),
        measure_label=_measure_label(spec),
        metric=metric,
        totals=map_totals(
            store,
            spec.name,
            as_of,
            within=request.args.get("within") or None,
            statuses=tuple(s for s in request.args.get("status", "").split(",") if s) or None,
            level=level,
            units=area_units(),
        ),
    )


def _measure_label(spec: layers.LayerSpec) -> str:
    """The map's name of the metric "area": the layer's first measure, completed (in m² for areas)."""
    if not spec.measures:
        return ""
    opening, closing = (" (", ")") if select_locale() == "en" else ("（", "）")
    unit = ", m²" if spec.measures[0].unit == "m2" else ""
    return f"{label(spec.measures[0])}{opening}{_('已完成')}{unit}{closing}"


def map_page_config(tiles: str, first: str) -> dict[str, Any]:
    """What the map page's script needs beyond the shared map config: each survey layer's metric
    "area" (its column and name), the base maps it may switch to (``tiles`` the current one), the
    first day of the month slider, today in the configured zone and the page's words."""
    return {
        "measures": {
            s.name: {
                "column": s.measures[0].completed_column(s.name) if s.measures else "",
                "label": _measure_label(s),
            }
            for s in layers.survey_layers()
        },
        # the statuses the filter offers (the surveyed ones; the map's colours cover unrecognised too)
        "statuses": {s.name: [st.code for st in s.statuses] for s in layers.survey_layers()},
        "tiles": tiles,
        "baseMaps": usable_base_maps(tiles),
        "firstDay": first,
        "today": clock.today(timezone()).isoformat(),
        "mapImage": url_for("api.api_summary").rsplit("/", 1)[0] + "/map-image",
        "labels": {
            "metrics": {
                "rate": _("完成率"),
                "completed": _("已完成数"),
                "area": "",
                "progress": _("目标完成度"),
                "tasks": _("交办按期完成率"),
            },
            # the figures of the hand-over tasks in a unit (the metric "tasks", from /api/tasks/stats)
            "tasks": {
                "handed_over": _("交办"),
                "verified": _("已销号"),
                "overdue": _("逾期"),
                "on_time_rate": _("按期完成率"),
                "rework_rate": _("返工率"),
            },
            "noData": _("无数据"),
            "noBase": _("无底图"),
            "totals": _("{layer}：共 {total} 处，已完成 {completed} 处，未落入网格 {unassigned} 处"),
            "nothing": _("没有符合条件的要素"),
            "target": _("目标"),
            "progress": _("目标完成度"),
            "month": _("月份"),
            "play": _("播放"),
            "pause": _("暂停"),
            "export": _("导出地图"),
            "close": _("关闭"),
            "clickUnit": _("点击单元查看数据"),
        },
    }


@bp.get("/upload")
@requires("surveyor")
def upload() -> Any:
    english = select_locale() == "en"
    base_error = None
    try:
        base = requested_base_map()
    except InputError as exc:  # the preview map then draws without a base map; uploads still work
        base, base_error = None, exc.en if english else exc.zh
    config = {
        "api": url_for("api.api_upload"),
        "lang": select_locale(),
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
    # only admins replace the unit grid; everyone starts on the first survey layer
    importable = [s for s in layers.all_layers() if is_admin() or not s.is_grid]
    config["links"] = {
        "map": url_for("main.index"),
        "stats": url_for("main.stats"),
        "batches": url_for("main.batches"),
        "today": clock.today(current_app.config.get("GRIDWATCH_TIMEZONE")).isoformat(),
    }
    return render_template(
        "upload.html",
        all_layers=importable,
        default_layer=layers.survey_layers()[0].name,
        config_json=current_app.json.dumps(config),
        map_config_json=current_app.json.dumps(
            map_config("preview", base, base_error, container="gw-preview-map", survey_layers=False)
        ),
        today=clock.today(current_app.config.get("GRIDWATCH_TIMEZONE")).isoformat(),
    )


def _batch_name(b: Batch) -> str:
    """What a batch is, for the batches page: an edit or a feature added by hand in the page's
    language (their stored name holds both languages), else the file's name as it is."""
    feature = b.report.get("feature") if b.kind == "edit" else None
    if isinstance(feature, int):
        if b.added:
            return _("手工新增要素 %(id)s", id=feature)
        return _("编辑要素 %(id)s（第 %(version)s 版）", id=feature, version=b.report.get("version", "?"))
    return safe_display_name(b.source_name)


@bp.get("/batches")
@requires("surveyor")
def batches() -> Any:
    labels = {s.name: label(s) for s in (*layers.all_layers(), TARGET_SPEC)}
    me, role = user_name(), "admin" if is_admin() else g.gw_user.role
    config = {
        "labels": {
            "confirm": _("确定回滚批次 {id}？该批次的要素将被删除，被它替换的要素将恢复。"),
            "confirmGrid": _(
                "确定回滚单元网格批次 {id}？将恢复上一版网格，所有要素都将重新分配到上一版网格的单元。"
            ),
            "done": _("已回滚批次 {id}"),
            "dropEdits": _("连同这些编辑一起回滚"),
            "confirmDrop": _("确定回滚批次 {id}，并撤销之后对其要素的 {n} 次编辑？"),
        },
        "admin": role == "admin",
    }
    grid_kind = batch_kind(grid_spec())
    layer = request.args.get("layer") or None  # ?layer=: that layer's batches only
    layer = layer and layer_name(layer)
    # file names shown as what they are: controls and bidi overrides become U+FFFD
    shown = [
        replace(b, source_name=_batch_name(b), user=b.user and safe_display_name(b.user))
        for b in reversed(get_store().batches(layer))
        # an account bound to an area sees its own batches only, not others' file names
        if area_units() is None or b.user == me
    ]
    return render_template(
        "batches.html",
        layer=layer,
        # the unit grid's batches apart: rolling one back re-assigns every feature
        survey_batches=[b for b in shown if b.kind != grid_kind],
        grid_batches=[b for b in shown if b.kind == grid_kind],
        labels=labels,
        # surveyors roll back their own survey batches; admins any batch
        may_roll_back=lambda b: may_roll_back(b, me, role),
        config_json=current_app.json.dumps(config),
    )


@bp.get("/stats")
@requires("viewer")
def stats() -> Any:
    level, layer_names, as_of = query_args()
    spec = survey_spec(layer_names)
    figures = stats_page_data(get_store(), spec.name, level, as_of, units=area_units())
    measures = [
        (m.total_column(spec.name), m.completed_column(spec.name), label(m), m.unit) for m in spec.measures
    ]
    charts = [
        # "各街道完成率 (%)", "Completion by street (%)"
        (lv.name, label((f"各{lv.label_zh}完成率 (%)", f"Completion by {lv.label_en.lower()} (%)")))
        for lv in area_levels()
    ]
    chart = {
        "levels": figures["by_level"],  # one completion chart per level: unit labels and rates
        # completions with a date, and apart from them those without one (they count from the
        # day of their import, which is no progress of that month)
        "monthly": figures["monthly"],
        "labels": {
            "rate": _("完成率 %"),
            "total": _("总数"),
            "completed": _("已完成（有完成日期）"),
            "undated": _("已完成但无完成日期（按导入日计）"),
        },
    }
    labels = column_labels([spec])
    totals = figures["totals"]
    # the headline's targets, each named in the page language ("违法建设已完成目标完成度")
    targets = [(label(labels[t["column"] + "_progress"]), t) for t in figures["headline"]["targets"]]
    return render_template(
        "stats.html",
        totals=totals,
        targets=targets,
        unassigned=UNASSIGNED,
        layer=spec,
        level=level,
        # the report ranks the units of a level between the unit grid and the top (street, community)
        report_level=level if level in {lv.name for lv in area_levels()} else None,
        levels=[(lv.name, lv) for lv in grid_levels()],
        charts=charts,
        survey_layers=layers.survey_layers(),
        as_of=as_of.isoformat() if as_of else "",
        rows=figures["rows"],
        lagging=figures["lagging"],
        measures=measures,
        chart_json=current_app.json.dumps(chart),
        undated_now=figures["undated_now"],
        has_status=bool(spec.status_field),
        has_undated=figures["has_undated"],
        map_areas=[(label(lv), units) for lv, units in map_areas(get_store(), area_units())],
        patrols=_patrol_coverage(level, as_of),
    )


def _patrol_coverage(level: str, as_of: date | None) -> Any:
    """The statistics page's patrol coverage: this month (of the as-of day) at the page's level."""
    today = clock.today(timezone())
    period = patrol_period(as_of=min(as_of or today, today), tz=timezone())
    return patrol_coverage(get_store(), level, period, scope(), site_calendar(), timezone())


@bp.get("/features")
@requires("viewer")
def features() -> Any:
    """要素列表: a survey layer's features filtered, sorted and paged, each linked to the map."""
    layer = request.args.get("layer") or None
    spec = survey_spec([layer] if layer else None)
    store = get_store()
    page = feature_page(store, replace(FeatureQuery.parse(spec.name, request.args), units=area_units()))
    kept = {k: v for k, v in request.args.items() if v and k not in ("page", "lang")}
    kept["layer"] = spec.name
    statuses = {s.code: label(s) for s in spec.all_statuses}
    # status and category values in the page's language
    # (a value the import did not recognise is stored as 未识别 in any vocabulary field)
    vocab = {
        name: {v.code: label(v) for v in (*values, UNRECOGNISED)}
        for name, values in spec.vocab_fields.items()
    }
    if spec.status_field:
        vocab[spec.status_field] = statuses
    headers = {f.name: label(f) for f in spec.fields} | {UNIT_COLUMN: _("所在单元网格")}
    exports = {k: v for k, v in kept.items() if k not in ("size", "lang", "format")}
    return render_template(
        "features.html",
        layer=spec,
        survey_layers=layers.survey_layers(),
        page=page,
        headers=headers,
        statuses=statuses,
        vocab=vocab,
        areas=[(label(lv), units) for lv, units in area_choices(store, area_units())],
        bound_area=area_units() is not None,
        date_fields=[(f, label(spec.field(f))) for f in FeatureQuery.date_fields(spec)],
        page_sizes=PAGE_SIZES,
        args=kept,
        link=lambda **changes: url_for("main.features", **{**kept, **changes}),
        export=lambda fmt: url_for("api.api_features_table", **exports, format=fmt),
        unit_column=UNIT_COLUMN,
        can_edit=can_edit(),
        edit_config_json=edit_config_json() if can_edit() else "",
    )


@bp.get("/field")
@requires("surveyor")
def field() -> Any:
    """外业: the phone page for field work -- the features near the phone's position (or a point
    tapped on its map, or a photo's EXIF position), a feature's sheet to change its status with a
    photo, and a new site added where one stands."""
    english = select_locale() == "en"
    base_error = None
    try:
        base = requested_base_map()
    except InputError as exc:  # the small map then draws without a base map; the list still works
        base, base_error = None, exc.en if english else exc.zh
    store, spec, level = get_store(), layers.survey_layers()[0], grid_levels()[0].name
    config = map_config("field", base, base_error, container="gw-field-map") | {
        "field": {
            "near": url_for("api.api_features_near"),
            "statuses": {s.name: [st.code for st in s.statuses] for s in layers.survey_layers()},
            "labels": {
                "locating": _("正在定位…"),
                "located": _("当前位置（精度约 {m} 米）"),
                "tapped": _("地图上选定的位置"),
                "fromPhoto": _("照片中的拍摄位置"),
                "noGeo": _("无法获取定位：{reason}。请在地图上点选位置，或用带位置信息的照片。"),
                "noGeoHttps": _(
                    "浏览器只在 HTTPS 页面上提供定位。请在地图上点选位置，或用带位置信息的照片。"
                ),
                "noPosition": _("请先定位，或在地图上点选位置"),
                "photoNoPosition": _("这张照片没有位置信息"),
                "nearby": _("附近 {radius} 米内 {total} 处"),
                "none": _("附近没有符合条件的要素"),
                "network": _("网络连接失败"),
                "retry": _("重试"),
                "metres": _("{m} 米"),
                "km": _("{km} 公里"),
                "back": _("返回列表"),
                "addHere": _("在此位置添加"),
                "addTitle": _("添加要素：{layer}"),
                "loading": _("读取中…"),
                "photos": _("现场照片"),
                "noLabel": _("（无编号）"),
                "details": _("全部属性"),
            },
            # the extent of the account's area, where the map opens before a position is known
            "bounds": map_summary(store, spec.name, level, None, units=area_units())["bounds"],
        }
    }
    return render_template(
        "field.html",
        map_config_json=current_app.json.dumps(config),
        edit_config_json=edit_config_json(),
        survey_layers=layers.survey_layers(),
    )
