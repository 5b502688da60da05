"""Webhooks on the API (admins only): list, add, remove, send a test message, see deliveries;
and the background sender of this process, started at its first request when
``GRIDWATCH_WEBHOOKS`` is on.  Routes of the ``api`` blueprint (``/api/webhooks…``)."""

from __future__ import annotations

from typing import Any

from flask import Flask, current_app, jsonify, request

from geo.errors import InputError
from geo.notify import outbox
from geo.notify.targets import allowed_networks
from geo.store.backends import open_store
from web.access import requires, user_name
from web.api import bp
from web.context import get_store


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
