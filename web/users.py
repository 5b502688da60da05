"""User administration (admins): add accounts, disable and enable them, set roles and passwords."""

from __future__ import annotations

from typing import Any

from flask import flash, render_template, request
from flask_babel import gettext as _
from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, Length

from geo.errors import GridwatchError, InputError
from geo.store import accounts
from web.access import bp, requires, user_name
from web.context import get_store, select_locale


class UserForm(FlaskForm):  # type: ignore[misc]
    name = StringField("用户名", validators=[DataRequired(), Length(max=64)])
    role = StringField("角色", validators=[DataRequired()])  # checked by geo.store.accounts.check_role
    password = PasswordField(
        "初始密码", validators=[DataRequired(), Length(min=accounts.MIN_PASSWORD, max=1024)]
    )


@bp.route("/users", methods=["GET", "POST"])
@requires("admin")
def users() -> Any:
    store = get_store()
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
            flash(exc.en if select_locale() == "en" else exc.zh)
            status = exc.status if exc.status < 500 else 400
    return render_template(
        "users.html",
        users=store.list_users(),
        form=form,
        roles=accounts.ROLES,
        role_labels=accounts.ROLE_LABELS,
    ), status
