"""What the pages' edit form (static/gridwatch-edit.js) is told: each survey layer's fields by
kind, its vocabularies, and the form's words, in the page's language.  Rendered as the
``gw-edit-config`` block by the map page, the feature list and the phone page (/field)."""

from __future__ import annotations

from typing import Any

from flask import current_app, g, url_for
from flask_babel import gettext as _

import layers
from layers.base import LayerSpec
from web.context import label, select_locale


def can_edit() -> bool:
    """Whether this request's account may change features (surveyors and admins)."""
    if current_app.config.get("LOGIN_DISABLED"):
        return True
    user = getattr(g, "gw_user", None)
    return bool(user and user.can("surveyor"))


def _fields(spec: LayerSpec) -> list[dict[str, Any]]:
    """The layer's declared fields for the form: each with its kind and label (which names its unit), the values
    of a vocabulary field, and whether an edit changes it (the status, the other vocabularies,
    dates and numbers; text such as the survey id and the address only when a site is added)."""
    vocab = spec.vocab_fields

    def order(f: Any) -> int:  # the status first, then dates, numbers, other vocabularies, text
        if f.name == spec.status_field:
            return 0
        return {"date": 1, "float": 2, "int": 2}.get(f.kind, 3 if f.name in vocab else 4)

    out = []
    for f in sorted(spec.fields, key=order):
        choices = vocab.get(f.name)
        out.append(
            {
                "name": f.name,
                "kind": f.kind,
                "label": label(f),
                "choices": None
                if choices is None
                else [{"code": s.code, "label": label(s)} for s in choices],
                "status": f.name == spec.status_field,
                "editable": choices is not None or f.kind != "str",
            }
        )
    return out


def _need_name(spec: LayerSpec) -> str:
    """What the form says of a new feature without any of the layer's ``required_any`` fields."""
    if not spec.required_any:
        return ""
    names = _("或").join(label(spec.field(name)) for name in spec.required_any)
    return _("请至少填写%(fields)s", fields=names)


def edit_config() -> dict[str, Any]:
    """The ``gw-edit-config`` block of a page."""
    return {
        "api": url_for("api.api_layers").rsplit("/", 1)[0],
        "lang": select_locale(),
        "canEdit": can_edit(),
        "layers": {
            s.name: {
                "label": label(s),
                "fields": _fields(s),
                "defaultStatus": s.default_status or (s.statuses[0].code if s.statuses else None),
                "requiredAny": list(s.required_any),
                "needName": _need_name(s),
            }
            for s in layers.survey_layers()
        },
        "labels": {
            "edit": _("修改"),
            "loading": _("读取中…"),
            "note": _("备注"),
            "photo": _("照片"),
            "save": _("保存"),
            "add": _("添加"),
            "saving": _("正在保存…"),
            "sendingPhoto": _("正在上传照片…"),
            "saved": _("已保存"),
            "added": _("已添加"),
            "nothing": _("没有修改"),
            "network": _("网络连接失败，修改未保存"),
            "retry": _("重试"),
            "conflict": _("该要素已被他人修改（当前版本 {version}），您的修改没有保存。请重新读取后再修改。"),
            "reload": _("重新读取"),
            "forbidden": _("没有权限修改此要素"),
            "signIn": _("登录已过期，请重新登录"),
            "failed": _("保存失败"),
            "badPhoto": _("无法读取这张照片"),
            "savedPhotoFailed": _("修改已保存，但照片未上传：{reason}"),
            "badNumber": _("{field}应为数字"),
        },
    }


def edit_config_json() -> str:
    """:func:`edit_config` as the JSON text of the page's block."""
    return str(current_app.json.dumps(edit_config()))
