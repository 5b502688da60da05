"""Signing in and out, and who is asking: the session cookie of a browser or the API token of
a script, each as a :class:`WebUser`; failed sign-ins are counted per client address
(:func:`client_key`) and throttled in :func:`geo.store.accounts.authenticate`."""

from __future__ import annotations

import ipaddress
import logging
from typing import Any
from urllib.parse import urlsplit

from flask import g, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_login import LoginManager, UserMixin, login_user, logout_user
from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, Length

from geo.errors import GridwatchError, StoreError
from geo.store import accounts
from geo.store.interface.accounts import User
from web.access import PUBLIC, bp, requires
from web.context import get_store, select_locale

login_manager = LoginManager()


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


@login_manager.user_loader
def _load_user(user_id: str) -> WebUser | None:
    version, _sep, name = user_id.partition(":")
    user = get_store().get_user(name)
    if user is None or not user.active or str(user.session_version) != version:
        return None
    return WebUser(user)


@login_manager.request_loader
def _load_token(req: Any) -> WebUser | None:
    header = req.headers.get("Authorization", "")
    if not header.lower().startswith("bearer "):
        return None
    user = accounts.token_user(get_store(), header[7:].strip())
    return WebUser(user, via_token=True) if user is not None else None


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
                    get_store(), form.username.data, form.password.data, client=client_key()
                )
            except GridwatchError as exc:
                error, status = (exc.en if select_locale() == "en" else exc.zh), exc.status
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


@bp.post("/logout")
@requires(PUBLIC)
def logout() -> Any:
    """Sign out: the account's session version moves on, so this session cookie (and any copy
    of it) is refused from now on -- as are the account's sessions in other browsers."""
    user = getattr(g, "gw_user", None)
    if user is not None and not user.via_token:
        try:
            accounts.end_sessions(get_store(), user.name)
        except StoreError:  # a read-only store: this browser's cookie goes at least
            logging.getLogger("gridwatch").warning(
                "sign-out of %s not recorded: the store is read-only", user.name
            )
    logout_user()
    session.clear()
    return redirect(url_for("auth.login"))


def init_app(app: Any) -> None:
    """Recognise the account of every request (session cookie or API token)."""
    login_manager.init_app(app)
    login_manager.session_protection = "basic"
