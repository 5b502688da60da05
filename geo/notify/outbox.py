"""Webhooks set up, events queued in the store's outbox, and what is due sent.

Nothing here runs inside a request's time: a write queues its events in the outbox in its own
transaction (:func:`queue_event`), and a :class:`Sender` -- one per store in each server
process, a daemon thread -- claims due rows (each row by one claimant only, however many
processes send), posts them and records every attempt.  A failed attempt (no answer, a timeout,
408, 429, a 5xx, a robot's ``errcode``) is tried again after :attr:`Policy.backoff` seconds,
doubled each time, until :attr:`Policy.attempts`; a redirect or another 4xx, or an address that
may not be reached, fails at once.  Errors are recorded without the URL's secrets.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.client import HTTPException
from typing import Any

from geo.errors import GridwatchError, InputError, NotFound
from geo.notify import delivery, formats
from geo.notify.targets import Network, allowed_networks, mask_url, resolve, scrub, url_secrets
from geo.registry import grid_spec
from geo.store.interface.outbox import Delivery, OutboxRow, Webhook

log = logging.getLogger("gridwatch.webhooks")

#: The setting that turns the background sender on (off by default).
ENABLED_ENV = "GRIDWATCH_WEBHOOKS"

#: The longest wait before a retry (seconds).
MAX_BACKOFF = 3600.0


@dataclass(frozen=True)
class Policy:
    """How webhooks are sent: the networks allowed though not public, the timeout of one
    attempt (s), the attempts before giving up, the first retry's delay (s, doubled each time),
    and how long a claim holds before another sender may take the row (s)."""

    allow: tuple[Network, ...] = ()
    timeout: float = 5.0
    attempts: int = 5
    backoff: float = 30.0
    lease: float = 120.0

    @classmethod
    def from_env(cls, allow: str | None = None) -> Policy:
        """The policy of ``allow`` (default ``$GRIDWATCH_WEBHOOK_ALLOW``), other values default."""
        return cls(allow=allowed_networks(allow))


def _area_ok(code: str) -> bool:
    lengths = {level.code_digits for level in grid_spec().levels}
    return code.isdigit() and len(code) in lengths


def add_webhook(
    store: Any,
    url: str,
    fmt: str,
    *,
    area: str | None = None,
    account: str | None = None,
    secret: str | None = None,
    by: str | None = None,
    policy: Policy | None = None,
) -> Webhook:
    """Set a webhook up for an area code (a street, community or unit) or an account; its URL is
    checked and resolved now (and again at every send)."""
    pol = policy or Policy.from_env()
    if (area is None) == (account is None):
        raise InputError(
            "请给出区域代码或账户之一", "give either an area code or an account", code="bad_webhook"
        )
    if fmt not in formats.FORMATS:
        raise InputError(
            f"格式应为 {'、'.join(formats.FORMATS)}",
            f"the format should be one of {', '.join(formats.FORMATS)}",
            code="bad_webhook_format",
        )
    if secret is not None and (fmt != "dingtalk" or not secret.strip() or len(secret) > 200):
        raise InputError(
            "只有钉钉机器人使用签名密钥",
            "only a dingtalk robot takes a signing secret",
            code="bad_webhook_secret",
        )
    if area is not None:
        area = area.strip()
        if not _area_ok(area):
            raise InputError(
                f"区域代码无效：{area[:40]}", f"not an area code: {area[:40]!r}", code="bad_area"
            )
        kind, target = "area", area
    else:
        name = (account or "").strip()
        if not name or store.get_user(name) is None:
            raise NotFound(f"没有账户 {name[:64]}", f"no account {name[:64]!r}")
        kind, target = "account", name
    resolve(url, pol.allow)
    hook = store.add_webhook(kind, target, fmt, url, secret or None, by)
    store.record_audit("webhook_add", detail=f"{hook.id} {kind} {target} {fmt} {mask_url(url)}")
    return hook


def remove_webhook(store: Any, webhook_id: int) -> None:
    """Remove a webhook; what it still had to send is given up."""
    if not store.remove_webhook(webhook_id):
        raise NotFound(f"没有 Webhook {webhook_id}", f"no webhook {webhook_id}")
    store.record_audit("webhook_remove", detail=str(webhook_id))


def get_webhook(store: Any, webhook_id: int) -> Webhook:
    """One webhook, or :class:`NotFound`."""
    hook = store.webhook(webhook_id)
    if hook is None:
        raise NotFound(f"没有 Webhook {webhook_id}", f"no webhook {webhook_id}")
    return hook


def webhook_dict(hook: Webhook) -> dict[str, Any]:
    """A webhook as shown: its URL masked, whether it has a secret (never the secret)."""
    return {
        "id": hook.id,
        "area": hook.target if hook.target_kind == "area" else None,
        "account": hook.target if hook.target_kind == "account" else None,
        "format": hook.format,
        "url": mask_url(hook.url),
        "signed": bool(hook.secret),
        "created_at": hook.created_at,
        "created_by": hook.created_by,
    }


def delivery_dict(d: Delivery) -> dict[str, Any]:
    """An attempt as shown (its error was stored without secrets)."""
    return {
        "id": d.id,
        "outbox_id": d.outbox_id,
        "event": d.event,
        "at": d.at,
        "attempt": d.attempt,
        "outcome": d.outcome,
        "http_status": d.http_status,
        "error": d.error,
    }


def recipients(store: Any, area: str | None = None, account: str | None = None) -> list[Webhook]:
    """The webhooks an event about ``area`` (a code) and ``account`` goes to: those of the area
    or any area containing it (a street's webhook hears of its communities' tasks), and the
    account's."""

    def concerned(hook: Webhook) -> bool:
        if hook.target_kind == "area":
            return bool(area) and str(area).startswith(hook.target)
        return bool(account) and hook.target == account

    return [hook for hook in store.webhooks() if concerned(hook)]


def queue_event(
    store: Any, env: dict[str, Any], *, area: str | None = None, account: str | None = None
) -> list[int]:
    """Queue the event envelope ``env`` (:mod:`geo.notify.formats`) for every webhook it concerns,
    inside the transaction under way (so it is sent only if that write commits); the row ids."""
    text = json.dumps(env, ensure_ascii=False)
    return [store.queue_outbox(h.id, env["event"], text) for h in recipients(store, area, account)]


def queue_test(store: Any, webhook_id: int, by: str | None = None) -> int:
    """Queue a ``webhook.test`` message for one webhook; the outbox row's id."""
    hook = get_webhook(store, webhook_id)
    env = formats.webhook_test(hook.id, by)
    return int(store.queue_outbox(hook.id, env["event"], json.dumps(env, ensure_ascii=False)))


@dataclass
class Outcome:
    """How one attempt went: ``sent``, ``retry`` or ``failed``, the HTTP status, the error."""

    outcome: str
    http_status: int | None = None
    error: str | None = None


def attempt(hook: Webhook, row: OutboxRow, policy: Policy) -> Outcome:
    """Send one outbox row to its webhook once (see the module docstring for what is retried)."""
    secrets = url_secrets(hook.url, hook.secret)
    try:
        target = resolve(hook.url, policy.allow)
    except InputError as exc:
        retry = exc.code == "webhook_unresolved"
        return Outcome("retry" if retry else "failed", None, scrub(exc.en, secrets))
    env = json.loads(row.payload)
    payload = formats.encode(formats.body(hook.format, env, row.id))
    headers = {"X-Gridwatch-Event": row.event, "X-Gridwatch-Delivery": str(row.id)}
    path = formats.signed_path(target.path, hook.format, hook.secret)
    try:
        answer = delivery.post(target, path, payload, headers, policy.timeout)
    except TimeoutError:
        return Outcome("retry", None, f"timed out after {policy.timeout:g} s")
    except (OSError, HTTPException) as exc:
        return Outcome("retry", None, scrub(f"{type(exc).__name__}: {exc}", secrets)[:300])
    status = answer.status
    if 300 <= status < 400:
        where = mask_url(answer.location or "")
        return Outcome("failed", status, f"redirect not followed (to {where[:200]})")
    if 200 <= status < 300:
        robot = formats.robot_error(hook.format, answer.body)
        if robot:
            return Outcome("retry", status, scrub(robot, secrets))
        return Outcome("sent", status, None)
    text = scrub(answer.body[:200].decode("utf-8", "replace"), secrets)
    text = " ".join(text.split())
    if status in (408, 429) or status >= 500:
        return Outcome("retry", status, f"HTTP {status} {text}".strip())
    return Outcome("failed", status, f"HTTP {status} {text}".strip())


def send_due(store: Any, policy: Policy | None = None, worker: str | None = None, limit: int = 20) -> int:
    """Claim the due outbox rows (up to ``limit``), send each once and record it; how many were tried."""
    pol = policy or Policy.from_env()
    me = worker or f"{os.getpid()}-{threading.get_ident()}"
    rows = store.claim_outbox(me, pol.lease, limit)
    for row in rows:
        hook = store.webhook(row.webhook_id)
        if hook is None:
            store.finish_outbox(row, "failed", None, "webhook removed", None)
            continue
        result = attempt(hook, row, pol)
        retry_in = None
        outcome = result.outcome
        if outcome == "retry":
            if row.attempts + 1 >= pol.attempts:
                outcome = "failed"
                result.error = f"gave up after {pol.attempts} attempts: {result.error or ''}".strip()
            else:
                retry_in = min(MAX_BACKOFF, pol.backoff * (2**row.attempts))
        store.finish_outbox(row, outcome, result.http_status, result.error, retry_in)
        log.info("webhook %s: %s #%s %s %s", hook.id, row.event, row.id, outcome, result.http_status or "")
    return len(rows)


@dataclass
class Sender:
    """The background sender of one store in this process: a daemon thread that sends what is
    due every :attr:`poll` seconds, and at once when :meth:`wake` is called.  ``opener`` opens a
    handle of the store for the thread."""

    opener: Callable[[], Any]
    policy: Policy = field(default_factory=Policy)
    poll: float = 5.0
    worker: str = field(default_factory=lambda: f"{os.getpid()}-{uuid.uuid4().hex[:8]}")
    _wake: threading.Event = field(default_factory=threading.Event)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Sender:
        """Start the thread (once)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="gridwatch-webhooks", daemon=True)
            self._thread.start()
        return self

    def wake(self) -> None:
        """Send what is due now rather than at the next poll."""
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the thread and wait for it (up to ``timeout`` s)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        store = None
        while not self._stop.is_set():
            try:
                if store is None:
                    store = self.opener()
                while not self._stop.is_set() and send_due(store, self.policy, self.worker):
                    pass
            except GridwatchError as exc:
                log.warning("webhook sender: %s", exc.en)
            except Exception:  # keep the thread alive: it retries at the next poll
                log.exception("webhook sender failed")
                if store is not None:
                    try:
                        store.close()
                    finally:
                        store = None
            self._wake.wait(self.poll)
            self._wake.clear()
        if store is not None:
            store.close()


_SENDERS: dict[str, Sender] = {}
_SENDERS_LOCK = threading.Lock()


def sender_for(location: str, opener: Callable[[], Any], policy: Policy, poll: float = 5.0) -> Sender:
    """The one running :class:`Sender` of the store at ``location`` in this process (started on
    first call)."""
    with _SENDERS_LOCK:
        sender = _SENDERS.get(location)
        alive = sender is not None and sender._thread is not None and sender._thread.is_alive()
        if sender is None or sender._stop.is_set() or not alive:
            sender = Sender(opener, policy, poll).start()
            _SENDERS[location] = sender
        return sender


def running_sender(location: str) -> Sender | None:
    """The sender of ``location`` in this process, if one runs."""
    with _SENDERS_LOCK:
        return _SENDERS.get(location)
