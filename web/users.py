"""User administration (admins): add accounts, disable and enable them, set roles, passwords and
the area each account is bound to (streets and communities of the grid) with its district flag."""

from __future__ import annotations

from typing import Any

from flask import flash, render_template, request
from flask_babel import gettext as _
from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, Length

from geo.errors import GridwatchError, InputError
from geo.figures import areas
from geo.figures.hierarchy import load_hierarchy
from geo.output.html_map import map_areas
from geo.store import accounts
from web.access import bp, requires, user_name
from web.context import get_store, label, select_locale


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
            elif action == "area":
                chosen = request.form.getlist("area")
                if len(chosen) > 1000:
                    raise InputError("区域编码过多", "too many area codes", code="bad_parameter")
                areas.bind_area(store, name, chosen, request.form.get("sees_district") == "yes")
                flash(_("已更新 %(name)s 的区域", name=name))
            elif action == "password":
                accounts.set_password(store, name, request.form.get("password", ""))
                flash(_("已重设 %(name)s 的密码", name=name))
            else:
                raise InputError("未知操作", "unknown action")
        except GridwatchError as exc:
            flash(exc.en if select_locale() == "en" else exc.zh)
            status = exc.status if exc.status < 500 else 400
    users = store.list_users()
    hier = load_hierarchy(store)
    names = {u.name: areas.unit_names(hier, u.area).to_dict("records") for u in users if u.area}
    return render_template(
        "users.html",
        users=users,
        form=form,
        roles=accounts.ROLES,
        role_labels=accounts.ROLE_LABELS,
        area_names=names,
        # the streets and communities an account may be bound to, per level from the top down
        area_choices=[(label(lv), units) for lv, units in map_areas(store)],
    ), status
