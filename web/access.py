"""Who may use what: roles on every route, and the CSRF check.

Every view declares who may use it with :func:`requires`; :func:`enforce` runs before every
request and refuses a view that declares nothing, so a route cannot be left open by
omission.  Browsers authenticate with the session cookie (and then send a CSRF token with
every write); scripts with ``Authorization: Bearer <token>`` (no cookie, no CSRF token): both
are recognised in :mod:`web.login`.  The account logic itself lives in :mod:`geo.store.accounts`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Blueprint, abort, current_app, g, jsonify, make_response, redirect, request, url_for
from flask_login import current_user
from flask_wtf.csrf import CSRFError, CSRFProtect

from geo.figures.areas import EVERYTHING, Scope, scope_of
from geo.store import accounts
from geo.store.interface.audit import Actor
from web.context import error_body, error_page, get_store, wants_html

#: The account pages (endpoints ``auth.*``): sign-in in :mod:`web.login`, one's own account in
#: :mod:`web.account`, user administration in :mod:`web.users`, the audit trail in :mod:`web.audit`.
bp = Blueprint("auth", __name__)
csrf = CSRFProtect()

#: Who may use a view: anyone, anyone when the public map is on (else viewers), or a role.
PUBLIC = "public"
MAP = "map"
ACCESS = (PUBLIC, MAP, *accounts.ROLES, "user")


def requires(access: str) -> Callable[[Any], Any]:
    """Declare the access of a view: ``"public"``, ``"map"``, ``"user"`` (any account) or a role."""
    if access not in ACCESS:
        raise ValueError(access)

    def mark(view: Any) -> Any:
        view.gw_access = access
        return view

    return mark


def _wants_json() -> bool:
    return request.path.startswith("/api/") or request.accept_mimetypes.best == "application/json"


def _deny(status: int) -> Any:
    if status == 401:
        if _wants_json():
            return _json_error(401, "login_required", "请先登录", "login required")
        return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
    return _json_error(403, "forbidden", "没有权限执行此操作", "your role does not allow this")


def _json_error(status: int, code: str, zh: str, en: str) -> Any:
    if wants_html():  # a browser's page: the error page in its language
        return error_page(status, zh, en)
    return jsonify(error_body(code, zh, en)), status


def enforce() -> Any:
    """Before every request: who is asking, may they, and (for cookie writes) the CSRF token."""
    endpoint = request.endpoint
    if endpoint is None:
        # 404/405: answered by the error handlers (a browser's error page names who is signed in)
        g.gw_user = current_user if current_user.is_authenticated else None
        return None
    view = current_app.view_functions[endpoint]
    access = "public" if endpoint == "static" else getattr(view, "gw_access", None)
    if access is None:
        return _json_error(403, "forbidden", "此地址未声明访问权限", "this route declares no access")
    user = current_user if current_user.is_authenticated else None
    g.gw_user = user
    g.gw_actor = Actor(user.name if user else None, request.remote_addr)
    if "store" in g:  # opened while loading the user
        g.store.actor = g.gw_actor
    if current_app.config.get("LOGIN_DISABLED"):
        return None
    public = access == PUBLIC or (
        access == MAP and user is None and current_app.config.get("GRIDWATCH_PUBLIC_MAP")
    )
    if not public:
        if user is None:
            return _deny(401)
        if not user.can("viewer" if access in (MAP, "user") else access):
            return _deny(403)
    unsafe = request.method not in ("GET", "HEAD", "OPTIONS")
    if unsafe and not (user and user.via_token) and current_app.config.get("WTF_CSRF_ENABLED", True):
        csrf.protect()
    return None


def is_admin() -> bool:
    """Whether this request may do what only admins may (always, with login disabled)."""
    if current_app.config.get("LOGIN_DISABLED"):
        return True
    user = getattr(g, "gw_user", None)
    return bool(user and user.can("admin"))


def scope() -> Scope:
    """What this request's account may see and write (:class:`geo.figures.areas.Scope`): the
    whole district, or the unit grids of the area it is bound to.  Made once per request; the
    rule itself is :func:`geo.figures.areas.scope_of`."""
    if "gw_scope" not in g:
        user = getattr(g, "gw_user", None)
        if current_app.config.get("LOGIN_DISABLED") or user is None:
            g.gw_scope = EVERYTHING
        else:
            g.gw_scope = scope_of(get_store(), user.user)
    return g.gw_scope  # type: ignore[no-any-return]


def area_units() -> frozenset[str] | None:
    """The unit grids this request's account is limited to, None for the whole district."""
    return scope().units


def refuse_bound(what: tuple[str, str]) -> None:
    """Refuse (403, ``outside_area``) what an account bound to an area may not have: ``what``
    names it in Chinese and English (a whole-district file: the ledger, a report)."""
    if scope().units is not None:
        zh, en = what
        refused = _json_error(
            403, "outside_area", f"限定区域的账户不能获取{zh}", f"an account bound to an area cannot get {en}"
        )
        abort(make_response(refused))


def user_name() -> str | None:
    user = getattr(g, "gw_user", None)
    return user.name if user else None


def csrf_error(exc: CSRFError) -> Any:
    return _json_error(
        400,
        "csrf_failed",
        "页面已过期或缺少安全令牌，请刷新页面后重试",
        f"CSRF check failed: {exc.description}",
    )


def init_app(app: Any) -> None:
    """The CSRF protection, the access check before every request and the page helpers that
    name the signed-in account (after :func:`web.login.init_app`, which recognises it)."""
    csrf.init_app(app)
    app.before_request(enforce)
    app.register_error_handler(CSRFError, csrf_error)
    app.jinja_env.globals["current_account"] = lambda: getattr(g, "gw_user", None)
    app.jinja_env.globals["role_label"] = lambda role: accounts.ROLE_LABELS.get(role, (role, role))
