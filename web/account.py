"""One's own account: the password, and the API tokens scripts sign in with."""

from __future__ import annotations

from typing import Any

from flask import flash, g, render_template, request
from flask_babel import gettext as _
from flask_login import login_user
from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, Length

from geo.errors import GridwatchError, InputError
from geo.store import accounts
from web.access import bp, requires
from web.context import get_store, select_locale
from web.login import WebUser, client_key


class PasswordForm(FlaskForm):  # type: ignore[misc]
    current = PasswordField("当前密码", validators=[DataRequired()])
    new = PasswordField("新密码", validators=[DataRequired(), Length(min=accounts.MIN_PASSWORD, max=1024)])


class TokenForm(FlaskForm):  # type: ignore[misc]
    label = StringField("用途", validators=[Length(max=100)])


@bp.route("/account", methods=["GET", "POST"])
@requires("user")
def account() -> Any:
    store = get_store()
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
            flash(exc.en if select_locale() == "en" else exc.zh)
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
