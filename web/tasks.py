"""Hand-over tasks (交办单) over HTTP: the JSON API (``/api/tasks`` …) and the tasks page.

Each route parses the request and calls one function of :mod:`geo.tasks.handover` or
:mod:`geo.figures.tasks`; who may do what on which area is decided there, from the account
signed in.  Writes need a surveyor (or an admin); reads a viewer.
"""

from __future__ import annotations

import math
from datetime import date
from typing import Any

from flask import Blueprint, Response, jsonify, render_template, request, url_for
from flask_babel import gettext as _

import layers
from geo.errors import InputError
from geo.figures.hierarchy import check_level, get_level, grid_levels, level_names
from geo.figures.overview import map_summary
from geo.figures.tasks import LABELS, METRICS, task_stats, totals
from geo.output.export import content_disposition
from geo.output.task_table import render_task_table
from geo.reading.gcj02 import wgs84_to_gcj02
from geo.reading.values import parse_date
from geo.store import clock
from geo.tasks import handover
from web.access import area_units, requires, scope, user_name
from web.common import register_converters, timezone
from web.context import get_store, label, select_locale
from web.maps import map_config, requested_base_map

bp = Blueprint("tasks", __name__)
bp.record_once(register_converters)  # <id:...> in the routes below


def _body() -> dict[str, Any]:
    try:
        body = request.get_json(silent=True)
    except RecursionError:  # nested past the parser's limit (a drawn shape's arrays, say)
        body = None
    if not isinstance(body, dict):
        raise InputError("请求体应为 JSON 对象", "the request body must be a JSON object", code="bad_json")
    return body


def _day(name: str = "as_of") -> date:
    return parse_date(request.args.get(name)) or clock.today(timezone())


def _items(body: dict[str, Any]) -> list[int] | None:
    items = body.get("items")
    if items is None:
        return None
    if not isinstance(items, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in items):
        raise InputError("请勾选条目", "items must be a list of item ids", code="bad_items")
    return items


def _int_or_none(body: dict[str, Any], name: str) -> int | None:
    value = body.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError("期限天数应为整数", f"{name} must be an integer", code="bad_days")
    return value


def _area(body: dict[str, Any]) -> str | list[str]:
    area = body.get("area") or ()
    if not isinstance(area, str | list):
        raise InputError(
            "交办区域应为街道、社区或单元网格编码", "area must be a code or a list of codes", code="bad_area"
        )
    return area or []


@bp.post("/api/tasks")
@requires("surveyor")
def api_task_create() -> Any:
    body = _body()
    area = _area(body)
    task = handover.create_task(
        get_store(),
        title=body.get("title"),
        instructions=body.get("instructions"),
        selection=handover.selection_from(body),
        area=area,
        assignee=body.get("assignee") or None,
        days=_int_or_none(body, "days"),
        working_days=_int_or_none(body, "workdays"),
        user=user_name(),
    )
    assert task.id is not None
    detail = handover.task_detail(get_store(), task.id, user=user_name(), as_of=clock.today(timezone()))
    return jsonify(detail), 201


@bp.post("/api/tasks/preview")
@requires("surveyor")
def api_task_preview() -> Any:
    """The features ``POST /api/tasks`` would hand over with the same body, written nowhere;
    their positions in GCJ-02 with ``?crs=gcj02``."""
    body = _body()
    return jsonify(
        handover.preview_task(
            get_store(),
            selection=handover.selection_from(body),
            area=_area(body),
            assignee=body.get("assignee") or None,
            user=user_name(),
            gcj02=request.args.get("crs", "").lower() in ("gcj02", "gcj-02"),
        )
    )


@bp.get("/api/tasks")
@requires("viewer")
def api_tasks() -> Any:
    day = _day()
    tasks = handover.list_tasks(get_store(), scope(), user_name(), day, request.args.get("status") or None)
    return jsonify({"as_of": day.isoformat(), "tasks": tasks})


@bp.get("/api/tasks/<id:task_id>")
@requires("viewer")
def api_task(task_id: int) -> Any:
    return jsonify(handover.task_detail(get_store(), task_id, scope(), user_name(), _day()))


def _photos(body: dict[str, Any]) -> list[int]:
    photos = body.get("photos") or []
    if not isinstance(photos, list):
        raise InputError("照片应为照片编号列表", "photos must be a list of photo ids", code="bad_photo")
    return photos


@bp.post("/api/tasks/<id:task_id>/fixed")
@requires("surveyor")
def api_task_fixed(task_id: int) -> Any:
    body = _body()
    store = get_store()
    handover.mark_fixed(
        store, task_id, _items(body), note=body.get("note"), photos=_photos(body), user=user_name()
    )
    return jsonify(handover.task_detail(store, task_id, scope(), user_name(), clock.today(timezone())))


@bp.post("/api/tasks/<id:task_id>/verify")
@requires("surveyor")
def api_task_verify(task_id: int) -> Any:
    body = _body()
    store = get_store()
    handover.verify_items(store, task_id, _items(body), note=body.get("note"), user=user_name())
    return jsonify(handover.task_detail(store, task_id, scope(), user_name(), clock.today(timezone())))


@bp.post("/api/tasks/<id:task_id>/return")
@requires("surveyor")
def api_task_return(task_id: int) -> Any:
    body = _body()
    store = get_store()
    deadline = body.get("deadline")
    if deadline is not None and not isinstance(deadline, str):
        raise InputError(
            "新期限应为日期 YYYY-MM-DD", "deadline must be a date YYYY-MM-DD", code="bad_deadline"
        )
    handover.return_items(
        store, task_id, _items(body), note=body.get("note"), deadline=deadline, user=user_name()
    )
    return jsonify(handover.task_detail(store, task_id, scope(), user_name(), clock.today(timezone())))


@bp.get("/api/tasks/stats")
@requires("viewer")
def api_task_stats() -> Any:
    level = check_level(request.args.get("level"))
    day = _day()
    frame = task_stats(get_store(), day, level, scope())
    fmt = request.args.get("format", "json")
    if fmt == "json":
        rows = [
            {k: (None if isinstance(v, float) and v != v else v) for k, v in r.items()}
            for r in frame.to_dict("records")
        ]
        return jsonify(
            {
                "level": level,
                "as_of": day.isoformat(),
                "metrics": list(METRICS),
                "rows": rows,
                "totals": totals(frame),
            }
        )
    body, mimetype, name = render_task_table(frame, fmt, level, day)
    resp = Response(body, mimetype=mimetype)
    resp.headers["Content-Disposition"] = content_disposition(name, fallback=f"tasks_{level}_{day}.{fmt}")
    return resp


@bp.get("/tasks")
@requires("viewer")
def tasks_page() -> Any:
    en = select_locale() == "en"
    config = {
        "today": clock.today(timezone()).isoformat(),
        "levels": [{"name": lv, "label": label(get_level(lv))} for lv in level_names()],
        "layers": [
            {"name": s.name, "label": label(s), "statuses": [[st.code, label(st)] for st in s.statuses]}
            for s in layers.survey_layers()
        ],
        "metrics": [[m, LABELS[m][1 if en else 0]] for m in METRICS],
        "prefill": {k: request.args.get(k, "") for k in ("layer", "within", "status", "ids", "area")},
        "user": user_name(),
        "labels": {
            "states": {"open": _("待整改"), "fixed": _("已整改待核查"), "verified": _("已销号")},
            "status": {"open": _("办理中"), "fixed": _("待核查"), "verified": _("已销号")},
            "overdue": _("逾期"),
            "none": _("（无）"),
            "done": _("已保存"),
            "total": _("合计"),
            "chooseItems": _("请先勾选条目"),
            "items": _("条目"),
            "created": _("已交办：{number}"),
            "sending": _("正在提交…"),
            "uploading": _("正在上传照片…"),
            "photos": _("照片"),
        },
    }
    return render_template("tasks.html", config=config, map_config=_selection_map())


def _selection_map() -> dict[str, Any]:
    """The new task's map (the main map's base map and layers): where features are chosen by a
    drawn rectangle or polygon or by a click; it opens on the account's area."""
    base_error = None
    try:
        base = requested_base_map()
    except InputError as exc:  # the map then draws without a base map; choosing still works
        base, base_error = None, exc.en if select_locale() == "en" else exc.zh
    store, spec = get_store(), layers.survey_layers()[0]
    bounds = map_summary(store, spec.name, grid_levels()[0].name, None, units=area_units())["bounds"]
    if base and base.get("gcj02") and all(isinstance(v, int | float) and math.isfinite(v) for v in bounds):
        # on a Gaode base map the area lies where GCJ-02 puts it (hundreds of metres off)
        lon, lat = wgs84_to_gcj02([bounds[0], bounds[2]], [bounds[1], bounds[3]])
        bounds = [float(lon[0]), float(lat[0]), float(lon[1]), float(lat[1])]
    return map_config("tasks", base, base_error, container="gw-task-map") | {
        "bounds": bounds,
        "preview": url_for("tasks.api_task_preview"),
        "select": {
            "rectangle": _("画矩形"),
            "polygon": _("画多边形"),
            "clear": _("清除选择"),
            "hint": _("画矩形或多边形选取要素，点击要素可加选或取消；与状态、范围条件同时生效"),
            "count": _("将交办 {n} 个要素"),
            "more": _("另有 {m} 个未列出"),
            "none": _("所选范围内没有要素"),
            "tooMany": _("超过一张交办单的上限（{limit} 个），请缩小范围"),
            "held": _("其中 {n} 个要素已在未销号的交办单中，不能再次交办：{list}"),
            "needTarget": _("填写交办区域或账户后显示预览"),
            "feature": _("要素"),
            "unit": _("单元网格"),
            "status": _("状态"),
            "picked": _("（点选改动 {n} 个）"),
        },
    }
