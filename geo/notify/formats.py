"""What a webhook receives: the events' payloads and the body of each format.

Every event is stored in the outbox as an *envelope* (:func:`envelope`): ``event`` (one of
:data:`EVENTS`), ``occurred_at`` (ISO 8601 UTC) and ``data``.  At sending it becomes the body
of the webhook's format:

``json``      the envelope with ``schema`` (:data:`SCHEMA`, raised when a field changes meaning
              or goes away; new fields may appear within one version) and ``delivery`` (the
              outbox row's id: a receiver that sees one twice after a retry can drop it), sent
              with the headers ``X-Gridwatch-Event`` and ``X-Gridwatch-Delivery``.
``wecom``     a 企业微信 group robot message: ``{"msgtype": "markdown", "markdown": {"content": …}}``.
``dingtalk``  a 钉钉 group robot message: ``{"msgtype": "markdown", "markdown": {"title": …,
              "text": …}}``; with a secret the URL gets ``timestamp`` (ms) and ``sign`` -- the
              Base64 HMAC-SHA256 of ``"{timestamp}\\n{secret}"`` keyed by the secret, URL-encoded.

The task events' ``data`` (:func:`task_created` …) are made from plain dicts with the keys
``id``, ``title``, ``area`` (a unit, community or street code), ``area_name``, ``assignee``
(an account), ``deadline`` (ISO date), ``items`` (how many features) and ``by`` (who acted).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote_plus

#: The version of the plain JSON body.
SCHEMA = "gridwatch.webhook/1"

#: The formats a webhook may have.
FORMATS = ("json", "wecom", "dingtalk")

#: The events, with their Chinese and English titles.
EVENTS = {
    "task.created": ("新交办单", "new task"),
    "task.overdue": ("交办单已逾期", "task overdue"),
    "task.verified": ("核查通过（销号）", "task verified"),
    "task.returned": ("核查退回", "task returned"),
    "webhook.test": ("测试消息", "test message"),
}

_TASK_KEYS = ("id", "title", "area", "area_name", "assignee", "deadline", "items", "by")


def envelope(event: str, data: dict[str, Any], at: datetime | None = None) -> dict[str, Any]:
    """The stored form of an event: its name, when it happened and its data."""
    if event not in EVENTS:
        raise ValueError(event)
    moment = (at or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    return {"event": event, "occurred_at": moment.isoformat().replace("+00:00", "Z"), "data": data}


def _task(task: dict[str, Any]) -> dict[str, Any]:
    return {k: task.get(k) for k in _TASK_KEYS}


def task_created(task: dict[str, Any]) -> dict[str, Any]:
    """``task.created``: a task was handed over to an area or account."""
    return envelope("task.created", _task(task))


def task_overdue(task: dict[str, Any], as_of: str, days_overdue: int) -> dict[str, Any]:
    """``task.overdue``: a task's deadline passed unfinished, as of a day."""
    return envelope("task.overdue", {**_task(task), "as_of": as_of, "days_overdue": int(days_overdue)})


def task_verified(task: dict[str, Any], verified: int | None = None) -> dict[str, Any]:
    """``task.verified``: the sender verified the fix (核查通过, 销号); ``verified`` items of ``items``."""
    return envelope("task.verified", {**_task(task), "verified": verified})


def task_returned(
    task: dict[str, Any], reason: str | None = None, new_deadline: str | None = None
) -> dict[str, Any]:
    """``task.returned``: the sender returned the task for more work (退回, counted as rework)."""
    return envelope("task.returned", {**_task(task), "reason": reason, "new_deadline": new_deadline})


def webhook_test(webhook_id: int, by: str | None) -> dict[str, Any]:
    """``webhook.test``: a test message an admin asked for."""
    return envelope("webhook.test", {"webhook": int(webhook_id), "by": by})


def _clean(value: Any, limit: int = 200) -> str:
    """A value on one line, without the characters robot markdown acts on at a line's start."""
    text = " ".join(str(value).split())
    return text[:limit]


def text_lines(env: dict[str, Any]) -> tuple[str, list[str]]:
    """The title and the lines of a robot message for an envelope (Chinese with English)."""
    zh, en = EVENTS.get(env.get("event", ""), ("通知", "notice"))
    data = env.get("data") or {}
    labels = (
        ("id", "交办单 / task"),
        ("title", "事项 / title"),
        ("area_name", "区域 / area"),
        ("area", "区域代码 / area code"),
        ("assignee", "承办 / assignee"),
        ("deadline", "期限 / deadline"),
        ("items", "问题数 / items"),
        ("days_overdue", "逾期天数 / days overdue"),
        ("verified", "通过数 / verified"),
        ("reason", "退回原因 / reason"),
        ("new_deadline", "新期限 / new deadline"),
        ("by", "操作人 / by"),
        ("webhook", "Webhook"),
    )
    lines = [f"{label}: {_clean(data[key])}" for key, label in labels if data.get(key) not in (None, "")]
    lines.append(f"时间 / at: {env.get('occurred_at', '')}")
    return f"{zh} / {en}", lines


def body(fmt: str, env: dict[str, Any], delivery: int) -> dict[str, Any]:
    """The JSON body of format ``fmt`` for the envelope ``env`` sent as outbox row ``delivery``."""
    if fmt == "json":
        return {"schema": SCHEMA, "delivery": int(delivery), **env}
    title, lines = text_lines(env)
    if fmt == "wecom":
        content = f"**gridwatch {title}**\n" + "\n".join(f"> {line}" for line in lines)
        return {"msgtype": "markdown", "markdown": {"content": content}}
    if fmt == "dingtalk":
        text = f"#### gridwatch {title}\n\n" + "\n\n".join(f"- {line}" for line in lines)
        return {"msgtype": "markdown", "markdown": {"title": f"gridwatch {title}", "text": text}}
    raise ValueError(fmt)


def encode(payload: dict[str, Any]) -> bytes:
    """A body as sent: UTF-8 JSON."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def dingtalk_sign(secret: str, timestamp_ms: int | None = None) -> tuple[str, str]:
    """(timestamp in ms, signature) for a 钉钉 robot with a signing secret: the Base64 of the
    HMAC-SHA256 of ``"{timestamp}\\n{secret}"`` keyed by the secret, URL-encoded."""
    ts = str(int(time.time() * 1000) if timestamp_ms is None else timestamp_ms)
    digest = hmac.new(secret.encode("utf-8"), f"{ts}\n{secret}".encode(), hashlib.sha256).digest()
    return ts, quote_plus(base64.b64encode(digest))


def signed_path(path: str, fmt: str, secret: str | None, timestamp_ms: int | None = None) -> str:
    """The request path (with query) of a webhook: 钉钉 with a secret gets ``timestamp`` and ``sign``."""
    if fmt != "dingtalk" or not secret:
        return path
    ts, sign = dingtalk_sign(secret, timestamp_ms)
    return f"{path}{'&' if '?' in path else '?'}timestamp={ts}&sign={sign}"


def robot_error(fmt: str, answer: bytes) -> str | None:
    """The error a robot reports in a 200 answer (``errcode`` not 0), or None."""
    if fmt not in ("wecom", "dingtalk"):
        return None
    try:
        data = json.loads(answer.decode("utf-8", "replace"))
    except ValueError:
        return None
    if isinstance(data, dict) and data.get("errcode") not in (None, 0):
        return f"errcode {_clean(data.get('errcode'), 20)}: {_clean(data.get('errmsg', ''), 200)}"
    return None
