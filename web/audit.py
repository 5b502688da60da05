"""The audit trail (admins): who wrote what, page by page, and the whole of it as CSV."""

from __future__ import annotations

import io
from typing import Any

from flask import Response, current_app, render_template, request

from geo.errors import InputError
from geo.output.audit import ACTIONS, action_label, count_label, detail_text, layer_label, write_csv
from web.access import bp, requires
from web.context import get_store, select_locale

#: Pages of the audit trail one may ask for (100 entries each).
MAX_PAGE = 10**9


def _page(value: str | None) -> int:
    """``?page=``: a whole number from 1 to :data:`MAX_PAGE` (1 when absent), else a clear 400."""
    if value is None or value == "":
        return 1
    text = value.strip()
    if text.isascii() and text.isdigit() and len(text) <= 10 and 1 <= int(text) <= MAX_PAGE:
        return int(text)
    raise InputError(
        f"页码须为 1 到 {MAX_PAGE} 之间的整数",
        f"page must be a whole number from 1 to {MAX_PAGE}",
        code="bad_page",
    )


@bp.get("/audit")
@requires("admin")
def audit() -> Any:
    store = get_store()
    page = _page(request.args.get("page"))
    who = request.args.get("user") or None
    action = request.args.get("action") or None
    entries = store.audit_entries(limit=100, offset=(page - 1) * 100, user=who, action=action)
    lang = select_locale()
    return render_template(
        "audit.html",
        entries=entries,
        page=page,
        who=who or "",
        action=action or "",
        actions=[(k, action_label(k, select_locale())) for k in ACTIONS],
        action_label=lambda a: action_label(a, lang),
        # counts, actions and layers in the page language
        count_label=lambda k: count_label(k, lang),
        layer_label=lambda name: layer_label(name, lang),
        detail_text=lambda detail: detail_text(detail, lang),
    )


@bp.get("/audit.csv")
@requires("admin")
def audit_csv() -> Any:
    entries = get_store().audit_entries(
        limit=1_000_000, user=request.args.get("user") or None, action=request.args.get("action") or None
    )
    buf = io.StringIO()
    write_csv(entries, buf, select_locale(), current_app.config.get("GRIDWATCH_TIMEZONE"))
    return Response(
        buf.getvalue().encode("utf-8"),
        mimetype="text/csv",
        headers={"Content-Disposition": "attachment; filename=audit.csv"},
    )
