"""Accounts on the web: login, roles on every route, CSRF, API tokens, security headers.

Every view declares who may use it with :func:`requires`; :func:`enforce` runs before every
request and refuses a view that declares nothing, so a route cannot be left open by
omission.  Browsers authenticate with the session cookie (and then send a CSRF token with
every write); scripts with ``Authorization: Bearer <token>`` (no cookie, no CSRF token).
The account logic itself lives in :mod:`geo.store.accounts`.
"""

from __future__ import annotations

import io
import ipaddress
import logging
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Response,
    current_app,
    flash,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext as _
from flask_login import LoginManager, UserMixin, current_user, login_user, logout_user
from flask_wtf import FlaskForm
from flask_wtf.csrf import CSRFError, CSRFProtect
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, Length

from geo.errors import GridwatchError, InputError, StoreError
from geo.output.audit import ACTIONS, action_label, write_csv
from geo.store import accounts
from geo.store.interface.accounts import User

bp = Blueprint("auth", __name__)
login_manager = LoginManager()
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


class WebUser(UserMixin):  # type: ignore[misc]
    """An account as Flask-Login sees it.  The id carries the account's session version, so
    a password change, a role change or disabling the account ends its sessions."""

    def __init__(self, user: User, via_token: bool = False):
        self.user = user
        self.name = user.name
        self.role = user.role
        self.via_token = via_token

    def get_id(self) -> str:
        return f"{self.user.session_version}:{self.user.name}"

    @property
    def is_active(self) -> bool:
        return self.user.active

    def can(self, role: str) -> bool:
        return accounts.role_at_least(self.role, role)


def _store() -> Any:
    from server import get_store

    return get_store()


@login_manager.user_loader
def _load_user(user_id: str) -> WebUser | None:
    version, _sep, name = user_id.partition(":")
    user = _store().get_user(name)
    if user is None or not user.active or str(user.session_version) != version:
        return None
    return WebUser(user)


@login_manager.request_loader
def _load_token(req: Any) -> WebUser | None:
    header = req.headers.get("Authorization", "")
    if not header.lower().startswith("bearer "):
        return None
    user = accounts.token_user(_store(), header[7:].strip())
    return WebUser(user, via_token=True) if user is not None else None


def _wants_json() -> bool:
    return request.path.startswith("/api/") or request.accept_mimetypes.best == "application/json"


def _deny(status: int) -> Any:
    if status == 401:
        if _wants_json():
            return _json_error(401, "login_required", "请先登录", "login required")
        return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
    return _json_error(403, "forbidden", "没有权限执行此操作", "your role does not allow this")


def _json_error(status: int, code: str, zh: str, en: str) -> Any:
    from server import error_body

    return jsonify(error_body(code, zh, en)), status


def enforce() -> Any:
    """Before every request: who is asking, may they, and (for cookie writes) the CSRF token."""
    endpoint = request.endpoint
    if endpoint is None:
        return None  # 404/405: answered by the error handlers
    view = current_app.view_functions[endpoint]
    access = "public" if endpoint == "static" else getattr(view, "gw_access", None)
    if access is None:
        return _json_error(403, "forbidden", "此地址未声明访问权限", "this route declares no access")
    user = current_user if current_user.is_authenticated else None
    g.gw_user = user
    from geo.store.interface.audit import Actor

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


def user_name() -> str | None:
    user = getattr(g, "gw_user", None)
    return user.name if user else None


# --- who is signing in, from where -----------------------------------------------------------


def client_key() -> str:
    """The client address failed logins are counted under (:func:`geo.store.accounts.authenticate`):
    the IP address, or for IPv6 its /64 network (what one subscriber usually holds)."""
    addr = request.remote_addr or ""
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        return addr[:64] or "?"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


# --- pages -----------------------------------------------------------------------------------


class LoginForm(FlaskForm):  # type: ignore[misc]
    username = StringField("用户名", validators=[DataRequired(), Length(max=64)])
    password = PasswordField("密码", validators=[DataRequired(), Length(max=1024)])


def _safe_next(target: str | None) -> str:
    """Only a plain path on this site is followed after login: no scheme or host, no ``//``
    or backslash (which browsers read as ``//``), no control characters (a line break would
    split the ``Location`` header); anything else goes to the map."""
    home = url_for("main.index")
    if not target or not target.startswith("/") or target.startswith("//"):
        return home
    if "\\" in target or any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in target):
        return home
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return home
    return target


@bp.route("/login", methods=["GET", "POST"])
@requires(PUBLIC)
def login() -> Any:
    form = LoginForm()
    status = 200
    error = None
    if request.method == "POST":
        if form.validate_on_submit():
            try:
                user = accounts.authenticate(
                    _store(), form.username.data, form.password.data, client=client_key()
                )
            except GridwatchError as exc:
                error, status = (exc.en if _lang() == "en" else exc.zh), exc.status
            else:
                # a new session: nothing carried over from before the login, the CSRF secret
                # included (Flask-WTF makes a fresh one on the next page)
                session.clear()
                g.pop("csrf_token", None)
                login_user(WebUser(user))
                return redirect(_safe_next(request.args.get("next")))
        else:
            error, status = _("请输入用户名和密码"), 400
    return render_template("login.html", form=form, error=error), status


def _lang() -> str:
    from server import select_locale

    return select_locale()


@bp.post("/logout")
@requires(PUBLIC)
def logout() -> Any:
    """Sign out: the account's session version moves on, so this session cookie (and any copy
    of it) is refused from now on -- as are the account's sessions in other browsers."""
    user = getattr(g, "gw_user", None)
    if user is not None and not user.via_token:
        try:
            accounts.end_sessions(_store(), user.name)
        except StoreError:  # a read-only store: this browser's cookie goes at least
            logging.getLogger("gridwatch").warning(
                "sign-out of %s not recorded: the store is read-only", user.name
            )
    logout_user()
    session.clear()
    return redirect(url_for("auth.login"))


class PasswordForm(FlaskForm):  # type: ignore[misc]
    current = PasswordField("当前密码", validators=[DataRequired()])
    new = PasswordField("新密码", validators=[DataRequired(), Length(min=accounts.MIN_PASSWORD, max=1024)])


class TokenForm(FlaskForm):  # type: ignore[misc]
    label = StringField("用途", validators=[Length(max=100)])


@bp.route("/account", methods=["GET", "POST"])
@requires("user")
def account() -> Any:
    store = _store()
    me = g.gw_user
    pw_form, token_form = PasswordForm(prefix="pw"), TokenForm(prefix="tk")
    secret = None
    status = 200
    if request.method == "POST":
        action = request.form.get("action")
        try:
            if action == "password" and pw_form.validate_on_submit():
                accounts.authenticate(store, me.name, pw_form.current.data, client=client_key())
                accounts.set_password(store, me.name, pw_form.new.data)
                login_user(WebUser(accounts.get_user(store, me.name)))
                flash(_("密码已修改"))
            elif action == "token" and token_form.validate_on_submit():
                _token, secret = accounts.create_token(store, me.name, token_form.label.data or "")
            elif action == "revoke":
                accounts.revoke_token(store, _token_id(request.form.get("token_id")), owner=me.name)
                flash(_("令牌已撤销"))
            else:
                flash(_("输入有误，请检查"))
                status = 400
        except GridwatchError as exc:
            flash(exc.en if _lang() == "en" else exc.zh)
            status = exc.status if exc.status < 500 else 400
    tokens = store.list_tokens(me.name)
    return render_template(
        "account.html", me=me, pw_form=pw_form, token_form=token_form, tokens=tokens, secret=secret
    ), status


def _token_id(value: str | None) -> int:
    """The token number of a form, a clear 400 when it is not one."""
    text = (value or "").strip()
    if not (text.isascii() and text.isdigit() and 0 < len(text) <= 18):
        raise InputError("令牌编号无效", "invalid token number", code="bad_token")
    return int(text)


class UserForm(FlaskForm):  # type: ignore[misc]
    name = StringField("用户名", validators=[DataRequired(), Length(max=64)])
    role = StringField("角色", validators=[DataRequired()])  # checked by geo.store.accounts.check_role
    password = PasswordField(
        "初始密码", validators=[DataRequired(), Length(min=accounts.MIN_PASSWORD, max=1024)]
    )


@bp.route("/users", methods=["GET", "POST"])
@requires("admin")
def users() -> Any:
    store = _store()
    form = UserForm(prefix="new")
    status = 200
    if request.method == "POST":
        action = request.form.get("action")
        name = request.form.get("name", "")
        try:
            if action == "add":
                if not form.validate_on_submit():
                    raise InputError(
                        "请填写用户名、角色和至少 8 位的密码",
                        "fill in name, role and a password of 8+ characters",
                    )
                accounts.add_user(store, form.name.data, form.role.data, form.password.data)
                flash(_("已创建用户 %(name)s", name=form.name.data))
            elif action in ("disable", "enable"):
                if action == "disable" and name == user_name():
                    raise InputError("不能停用自己的账户", "you cannot disable your own account")
                accounts.set_active(store, name, action == "enable")
                flash(_("已更新用户 %(name)s", name=name))
            elif action == "role":
                if name == user_name():
                    raise InputError("不能修改自己的角色", "you cannot change your own role")
                accounts.set_role(store, name, request.form.get("role", ""))
                flash(_("已更新用户 %(name)s", name=name))
            elif action == "password":
                accounts.set_password(store, name, request.form.get("password", ""))
                flash(_("已重设 %(name)s 的密码", name=name))
            else:
                raise InputError("未知操作", "unknown action")
        except GridwatchError as exc:
            flash(exc.en if _lang() == "en" else exc.zh)
            status = exc.status if exc.status < 500 else 400
    return render_template(
        "users.html",
        users=store.list_users(),
        form=form,
        roles=accounts.ROLES,
        role_labels=accounts.ROLE_LABELS,
    ), status


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
    store = _store()
    page = _page(request.args.get("page"))
    who = request.args.get("user") or None
    action = request.args.get("action") or None
    entries = store.audit_entries(limit=100, offset=(page - 1) * 100, user=who, action=action)
    return render_template(
        "audit.html",
        entries=entries,
        page=page,
        who=who or "",
        action=action or "",
        actions=[(k, action_label(k, _lang())) for k in ACTIONS],
        action_label=lambda a: action_label(a, _lang()),
    )


@bp.get("/audit.csv")
@requires("admin")
def audit_csv() -> Any:
    entries = _store().audit_entries(
        limit=1_000_000, user=request.args.get("user") or None, action=request.args.get("action") or None
    )
    buf = io.StringIO()
    write_csv(entries, buf, _lang())
    return Response(
        buf.getvalue().encode("utf-8"),
        mimetype="text/csv",
        headers={"Content-Disposition": "attachment; filename=audit.csv"},
    )


# --- set-up ----------------------------------------------------------------------------------


def secret_key(data_dir: str) -> str:
    """The signing key of sessions and CSRF tokens: from the settings, else kept in the data
    directory (created once, readable by the owner only) so that every worker shares it."""
    path = Path(data_dir) / "secret_key"
    try:
        return path.read_text(encoding="ascii").strip()
    except OSError:
        pass  # not made yet (or cannot be: see below)
    key = secrets.token_hex(32)
    tmp = path.with_suffix(f".{secrets.token_hex(4)}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(key, encoding="ascii")
        tmp.chmod(0o600)
        try:
            # link, not rename: when two workers start at once the first key stays
            path.hardlink_to(tmp)
        except FileExistsError:
            pass
        finally:
            tmp.unlink(missing_ok=True)
    except OSError as exc:
        # a read-only data directory: the map and statistics still work, but sign-ins made in one
        # worker are unknown to the others until SECRET_KEY is set
        logging.getLogger("gridwatch").warning(
            "无法保存会话密钥，请设置 SECRET_KEY / cannot keep the session key in %s (%s): set SECRET_KEY",
            path,
            exc,
        )
        return key
    return path.read_text(encoding="ascii").strip()


def csrf_error(exc: CSRFError) -> Any:
    return _json_error(
        400,
        "csrf_failed",
        "页面已过期或缺少安全令牌，请刷新页面后重试",
        f"CSRF check failed: {exc.description}",
    )


def init_app(app: Any) -> None:
    login_manager.init_app(app)
    login_manager.session_protection = "basic"
    csrf.init_app(app)
    app.register_blueprint(bp)
    app.before_request(enforce)
    app.register_error_handler(CSRFError, csrf_error)
    app.jinja_env.globals["current_account"] = lambda: getattr(g, "gw_user", None)
    app.jinja_env.globals["role_label"] = lambda role: accounts.ROLE_LABELS.get(role, (role, role))
