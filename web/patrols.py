"""Daily patrol reports over HTTP: filed by surveyors and admins (within their area), listed and
counted as coverage for the accounts that may see the units, and the phone-sized page
"今日巡查" that files today's patrol."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, render_template, request
from flask_babel import gettext as _

import layers
from geo.errors import InputError
from geo.figures.areas import units_of
from geo.figures.hierarchy import load_hierarchy
from geo.figures.patrols import patrol_coverage, patrol_period
from geo.imports.patrols import MAX_NOTE, file_patrol, patrol_dict, patrol_list
from geo.output.export import content_disposition
from geo.output.patrols import COVERAGE_FORMATS, coverage_records, render_coverage
from geo.store import clock
from geo.workdays import site_calendar
from web.access import requires, scope, user_name
from web.common import timezone
from web.context import get_store, label, select_locale

bp = Blueprint("patrols", __name__)


def _flag(name: str, default: bool) -> bool:
    raw = request.args.get(name)
    if raw in (None, ""):
        return default
    if raw in ("1", "true", "yes"):
        return True
    if raw in ("0", "false", "no"):
        return False
    raise InputError("参数应为 0 或 1", f"{name} must be 0 or 1", code="bad_parameter")


@bp.post("/api/patrols")
@requires("surveyor")
def api_patrol_file() -> Any:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise InputError("请求体应为 JSON 对象", "the body should be a JSON object", code="bad_patrol")
    amend = body.get("amend", False)
    note = body.get("note")
    if not isinstance(amend, bool) or (note is not None and not isinstance(note, str)):
        raise InputError(
            "是否更正应为是或否，备注应为文字",
            "amend must be true or false, note text",
            code="bad_patrol",
        )
    row, amends = file_patrol(
        get_store(),
        user_name(),
        day=body.get("day"),
        units=body.get("units"),
        result=body.get("result") or "nothing_found",
        features=body.get("features"),
        note=note,
        amend=amend,
        tz=timezone(),
    )
    out = patrol_dict(row, timezone())
    out["amends"] = amends
    return jsonify(out), 201


@bp.get("/api/patrols")
@requires("viewer")
def api_patrols() -> Any:
    period = patrol_period(request.args.get("from"), request.args.get("to"), tz=timezone())
    rows = patrol_list(get_store(), period.first, period.last, scope())
    unit = request.args.get("unit")
    if unit:
        wanted, _unknown = units_of(load_hierarchy(get_store()), [unit])
        rows = [r for r in rows if set(r["units"]) & wanted]
    return jsonify({"from": period.first.isoformat(), "to": period.last.isoformat(), "patrols": rows})


@bp.get("/api/patrols/coverage")
@requires("viewer")
def api_patrol_coverage() -> Any:
    period = patrol_period(
        request.args.get("from"),
        request.args.get("to"),
        request.args.get("as_of"),
        working_days=_flag("working_days", True),
        tz=timezone(),
    )
    fmt = request.args.get("format") or "json"
    if fmt != "json" and fmt not in COVERAGE_FORMATS:
        raise InputError(
            f"格式应为 json、{'、'.join(COVERAGE_FORMATS)}",
            f"format must be json, {', '.join(COVERAGE_FORMATS)}",
            code="bad_format",
        )
    coverage = patrol_coverage(
        get_store(), request.args.get("level"), period, scope(), site_calendar(), timezone()
    )
    if fmt == "json":
        return jsonify(
            {
                "level": coverage.level,
                "from": period.first.isoformat(),
                "to": period.last.isoformat(),
                "as_of": period.as_of.isoformat(),
                "working_days": period.working_days,
                "days_due": [d.isoformat() for d in coverage.days],
                "warning": coverage.warning,
                "totals": coverage.totals,
                "rows": coverage_records(coverage),
            }
        )
    mimetype, ext = COVERAGE_FORMATS[fmt]
    resp = Response(render_coverage(coverage, fmt, select_locale()), mimetype=mimetype)
    name = f"{_('巡查覆盖率')}_{period.first.isoformat()}_{period.last.isoformat()}.{ext}"
    resp.headers["Content-Disposition"] = content_disposition(
        name, fallback=f"gridwatch_patrol_coverage_{coverage.level}_{period.last.isoformat()}.{ext}"
    )
    return resp


@bp.get("/patrol")
@requires("surveyor")
def patrol_page() -> Any:
    """今日巡查: file today's patrol ("nothing found", or features found) for one's area."""
    store = get_store()
    name = user_name()
    account = store.get_user(name) if name else None
    today = clock.today(timezone())
    mine = [p for p in patrol_list(store, today, today) if p["account"] == (name or "-")]
    return render_template(
        "patrol.html",
        today=today.isoformat(),
        area=list(account.area) if account is not None and account.role != "admin" else [],
        mine=mine,
        max_note=MAX_NOTE,
        survey_layers=[(s.name, label(s)) for s in layers.survey_layers()],
    )
