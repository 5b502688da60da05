"""Webhooks on the API and on the page ``/webhooks`` (admins only): list, add, remove, send a
test message, see deliveries; and the background sender of this process, started at its first request when
``GRIDWATCH_WEBHOOKS`` is on.  Routes of the ``api`` blueprint (``/api/webhooks…``)."""

from __future__ import annotations

from typing import Any

from flask import Flask, current_app, flash, jsonify, render_template, request
from flask_babel import gettext as _

from geo.errors import GridwatchError, InputError
from geo.notify import formats, outbox
from geo.notify.targets import allowed_networks
from geo.store.backends import open_store
from web.access import bp as auth_bp
from web.access import requires, user_name
from web.api import bp
from web.context import get_store, select_locale


def policy() -> outbox.Policy:
    """The sending policy of the app's settings."""
    return outbox.Policy(allow=allowed_networks(current_app.config.get("GRIDWATCH_WEBHOOK_ALLOW") or ""))


def _sender(app: Flask) -> outbox.Sender | None:
    """This process's sender of the app's store (started when missing), when webhooks are on."""
    if not app.config.get("GRIDWATCH_WEBHOOKS"):
        return None
    where = app.extensions["gridwatch_location"]
    allow = allowed_networks(app.config.get("GRIDWATCH_WEBHOOK_ALLOW") or "")
    return outbox.sender_for(
        where.store, lambda: open_store(where.store, data=where.data), outbox.Policy(allow=allow)
    )


def init_app(app: Flask) -> None:
    """Start the sender at the first request of each process (after a fork, in the worker)."""

    @app.before_request
    def _start_sender() -> None:
        _sender(app)


@bp.get("/webhooks")
@requires("admin")
def api_webhooks() -> Any:
    return jsonify([outbox.webhook_dict(h) for h in get_store().webhooks()])


def _field(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > 2000:
        raise InputError(f"{name} 应为文本", f"{name} should be text", code="bad_webhook")
    return value


@bp.post("/webhooks")
@requires("admin")
def api_webhook_add() -> Any:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise InputError("请求体应为 JSON 对象", "the body should be a JSON object", code="bad_webhook")
    hook = outbox.add_webhook(
        get_store(),
        _field(body, "url") or "",
        _field(body, "format") or "",
        area=_field(body, "area"),
        account=_field(body, "account"),
        secret=_field(body, "secret"),
        by=user_name(),
        policy=policy(),
    )
    return jsonify(outbox.webhook_dict(hook)), 201


@bp.delete("/webhooks/<id:webhook_id>")
@requires("admin")
def api_webhook_remove(webhook_id: int) -> Any:
    outbox.remove_webhook(get_store(), webhook_id)
    return "", 204


@bp.post("/webhooks/<id:webhook_id>/test")
@requires("admin")
def api_webhook_test(webhook_id: int) -> Any:
    row = outbox.queue_test(get_store(), webhook_id, user_name())
    sender = _sender(current_app._get_current_object())  # type: ignore[attr-defined]
    if sender is not None:
        sender.wake()
    return jsonify({"outbox_id": row, "queued": True, "sending": sender is not None}), 202


@bp.get("/webhooks/<id:webhook_id>/deliveries")
@requires("admin")
def api_webhook_deliveries(webhook_id: int) -> Any:
    store = get_store()
    outbox.get_webhook(store, webhook_id)
    return jsonify([outbox.delivery_dict(d) for d in store.deliveries(webhook_id)])


# --- the admin page ----------------------------------------------------------------------


@auth_bp.route("/webhooks", methods=["GET", "POST"])
@requires("admin")
def webhooks_page() -> Any:
    store = get_store()
    status = 200
    if request.method == "POST":
        action = request.form.get("action", "")
        try:
            if action == "add":
                whom = request.form.get("whom", "area")
                target = (request.form.get("target") or "").strip()
                hook = outbox.add_webhook(
                    store,
                    (request.form.get("url") or "").strip(),
                    request.form.get("format", ""),
                    area=target if whom == "area" else None,
                    account=target if whom == "account" else None,
                    secret=(request.form.get("secret") or "").strip() or None,
                    by=user_name(),
                    policy=policy(),
                )
                flash(_("已添加 Webhook %(id)s", id=hook.id))
            elif action in ("test", "remove"):
                hook_id = _form_id(request.form.get("id"))
                if action == "test":
                    outbox.queue_test(store, hook_id, user_name())
                    sender = _sender(current_app._get_current_object())  # type: ignore[attr-defined]
                    if sender is not None:
                        sender.wake()
                        flash(_("测试消息已排队发送"))
                    else:
                        flash(_("测试消息已排队；通知未开启（GRIDWATCH_WEBHOOKS），不会发送"))
                else:
                    outbox.remove_webhook(store, hook_id)
                    flash(_("已删除 Webhook %(id)s", id=hook_id))
            else:
                raise InputError("未知操作", "unknown action")
        except GridwatchError as exc:
            flash(exc.en if select_locale() == "en" else exc.zh)
            status = exc.status if exc.status < 500 else 400
    hooks = store.webhooks()
    return render_template(
        "webhooks.html",
        hooks=[outbox.webhook_dict(h) for h in hooks],
        deliveries={h.id: [outbox.delivery_dict(d) for d in store.deliveries(h.id, limit=5)] for h in hooks},
        formats=formats.FORMATS,
        enabled=bool(current_app.config.get("GRIDWATCH_WEBHOOKS")),
    ), status


def _form_id(value: str | None) -> int:
    text = (value or "").strip()
    if text.isascii() and text.isdigit() and len(text) <= 18 and int(text) > 0:
        return int(text)
    raise InputError("编号无效", "not a valid id", code="bad_id")
