"""Webhook notifications against a real receiver on 127.0.0.1: each format's body, 钉钉's
signature, retries, giving up, redirects, refused targets, masked secrets, the outbox claimed
once by competing senders, the admin API and a request that does not wait for the receiver."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote_plus, urlsplit

import pytest

from geo.cli import main
from geo.errors import InputError, NotFound
from geo.notify import formats, outbox
from geo.notify.targets import allowed_networks, mask_url, resolve
from geo.store import accounts
from tests.helpers.postgis import open_test_store

pytestmark = pytest.mark.backends

LOCAL = outbox.Policy(allow=allowed_networks("127.0.0.1"), timeout=2.0, attempts=3, backoff=0.0)
AREA = "340291001"  # a street: its communities' and units' tasks reach it


class Receiver:
    """A threaded HTTP server on 127.0.0.1 that records each request and answers from a script
    (``replies``: status codes, ``"slow"`` to answer late, ``"redirect"``); ``gate`` makes it
    wait before answering."""

    def __init__(self):
        self.requests: list[dict] = []
        self.replies: list = []
        self.gate: threading.Event | None = None
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                size = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(size)
                with receiver.lock:
                    receiver.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                    reply = receiver.replies.pop(0) if receiver.replies else 200
                if receiver.gate is not None:
                    receiver.gate.wait(10)
                if reply == "slow":
                    time.sleep(1.5)
                    reply = 200
                if reply == "redirect":
                    self.send_response(302)
                    self.send_header("Location", f"http://127.0.0.1:{receiver.port}/elsewhere?key=LEAKME")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                data = b'{"errcode":0,"errmsg":"ok"}' if reply == 200 else b"server trouble"
                try:
                    self.send_response(reply)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass  # the client gave up (a timeout)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def close(self):
        if self.gate is not None:
            self.gate.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def drain(store, policy=LOCAL) -> None:
    """Send until nothing is due (retries are due at once with a zero backoff)."""
    for _ in range(20):
        if not outbox.send_due(store, policy):
            return


def test_json_body_and_headers(store, receiver):
    hook = outbox.add_webhook(store, receiver.url(), "json", area=AREA, by="admin", policy=LOCAL)
    task = {
        "id": 7,
        "title": "拆除违建",
        "area": AREA + "001",
        "deadline": "2026-02-24",
        "items": 10,
        "by": "admin",
    }
    rows = outbox.queue_event(store, formats.task_created(task), area=task["area"])
    assert len(rows) == 1
    drain(store)
    (req,) = receiver.requests
    body = json.loads(req["body"])
    assert body["schema"] == formats.SCHEMA == "gridwatch.webhook/1"
    assert body["event"] == "task.created" and body["delivery"] == rows[0]
    assert body["data"]["id"] == 7 and body["data"]["title"] == "拆除违建" and body["data"]["items"] == 10
    assert body["occurred_at"].endswith("Z")
    assert req["headers"]["X-Gridwatch-Event"] == "task.created"
    assert req["headers"]["X-Gridwatch-Delivery"] == str(rows[0])
    (d,) = store.deliveries(hook.id)
    assert (d.outcome, d.http_status, d.attempt) == ("sent", 200, 1)


def test_wecom_markdown_body(store, receiver):
    accounts.add_user(store, "community1", "surveyor", "password-123")
    outbox.add_webhook(
        store, receiver.url("/cgi-bin/webhook/send?key=abc123"), "wecom", account="community1", policy=LOCAL
    )
    env = formats.task_overdue({"id": 3, "title": "停放点整改", "deadline": "2026-02-24"}, "2026-02-26", 2)
    assert outbox.queue_event(store, env, account="community1")
    assert not outbox.queue_event(store, env, account="someone-else")
    drain(store)
    (req,) = receiver.requests
    assert req["path"] == "/cgi-bin/webhook/send?key=abc123"
    body = json.loads(req["body"])
    assert body["msgtype"] == "markdown" and set(body["markdown"]) == {"content"}
    content = body["markdown"]["content"]
    assert "交办单已逾期" in content and "停放点整改" in content and "逾期天数 / days overdue: 2" in content


def test_dingtalk_body_and_signature(store, receiver):
    secret = "SECtest0123456789"
    outbox.add_webhook(
        store,
        receiver.url("/robot/send?access_token=tok42"),
        "dingtalk",
        area=AREA,
        secret=secret,
        policy=LOCAL,
    )
    env = formats.task_returned(
        {"id": 5, "title": "充电棚", "area": AREA}, reason="照片不清", new_deadline="2026-03-02"
    )
    outbox.queue_event(store, env, area=AREA)
    before = int(time.time() * 1000)
    drain(store)
    (req,) = receiver.requests
    query = parse_qs(urlsplit(req["path"]).query, keep_blank_values=True)
    assert query["access_token"] == ["tok42"]
    ts = query["timestamp"][0]
    assert before - 5000 <= int(ts) <= int(time.time() * 1000)
    # recomputed as 钉钉 documents it: Base64(HMAC-SHA256(key=secret, "timestamp\nsecret"))
    expected = base64.b64encode(
        hmac.new(secret.encode(), f"{ts}\n{secret}".encode(), hashlib.sha256).digest()
    ).decode()
    assert query["sign"] == [expected]  # parse_qs undoes the URL encoding
    raw_sign = urlsplit(req["path"]).query.split("sign=")[1]
    assert unquote_plus(raw_sign) == expected and "+" not in raw_sign and "/" not in raw_sign
    body = json.loads(req["body"])
    assert body["msgtype"] == "markdown"
    assert body["markdown"]["title"].startswith("gridwatch 核查退回")
    assert "照片不清" in body["markdown"]["text"] and "2026-03-02" in body["markdown"]["text"]


def test_the_task_payload_builders():
    task = {
        "id": 1,
        "title": "t",
        "area": "340291001001",
        "assignee": "c1",
        "deadline": "2026-02-24",
        "items": 3,
    }
    assert formats.task_created(task)["data"]["assignee"] == "c1"
    assert formats.task_verified(task, verified=8)["data"]["verified"] == 8
    assert formats.task_overdue(task, "2026-02-25", 1)["data"]["days_overdue"] == 1
    assert set(formats.EVENTS) == {
        "task.created",
        "task.overdue",
        "task.verified",
        "task.returned",
        "webhook.test",
    }
    with pytest.raises(ValueError):
        formats.envelope("task.deleted", {})


def test_retries_after_500s_and_a_timeout(store, receiver):
    hook = outbox.add_webhook(store, receiver.url(), "json", area=AREA, policy=LOCAL)
    receiver.replies = [500, "slow", 200]
    outbox.queue_test(store, hook.id, "admin")
    policy = outbox.Policy(allow=LOCAL.allow, timeout=0.5, attempts=5, backoff=0.0)
    drain(store, policy)
    outcomes = [(d.attempt, d.outcome, d.http_status) for d in reversed(store.deliveries(hook.id))]
    assert outcomes == [(1, "retry", 500), (2, "retry", None), (3, "sent", 200)]
    timed_out = store.deliveries(hook.id)[1]
    assert "timed out" in timed_out.error
    (row,) = store.outbox_rows(hook.id)
    assert row.status == "sent" and row.attempts == 3


def test_backoff_waits_before_the_retry(store, receiver):
    hook = outbox.add_webhook(store, receiver.url(), "json", area=AREA, policy=LOCAL)
    receiver.replies = [503]
    outbox.queue_test(store, hook.id)
    policy = outbox.Policy(allow=LOCAL.allow, timeout=2.0, attempts=5, backoff=3600.0)
    assert outbox.send_due(store, policy) == 1
    assert outbox.send_due(store, policy) == 0  # not due for an hour
    (row,) = store.outbox_rows(hook.id)
    assert row.status == "pending" and row.attempts == 1 and row.next_at > store.deliveries(hook.id)[0].at


def test_gives_up_after_the_limit(store, receiver):
    hook = outbox.add_webhook(store, receiver.url(), "json", area=AREA, policy=LOCAL)
    receiver.replies = [500] * 10
    outbox.queue_test(store, hook.id)
    drain(store)
    assert len(receiver.requests) == LOCAL.attempts == 3
    last = store.deliveries(hook.id)[0]
    assert last.outcome == "failed" and "gave up after 3 attempts" in last.error
    assert store.outbox_rows(hook.id)[0].status == "failed"


def test_a_redirect_is_not_followed(store, receiver):
    hook = outbox.add_webhook(store, receiver.url(), "json", area=AREA, policy=LOCAL)
    receiver.replies = ["redirect"]
    outbox.queue_test(store, hook.id)
    drain(store)
    assert [r["path"] for r in receiver.requests] == ["/hook"]
    (d,) = store.deliveries(hook.id)
    assert d.outcome == "failed" and d.http_status == 302 and "redirect not followed" in d.error
    assert "LEAKME" not in d.error


@pytest.mark.parametrize(
    "url",
    [
        "http://10.0.0.1/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]:8080/hook",
        "http://localhost:8080/hook",  # a name that resolves to 127.0.0.1
        "http://0.0.0.0/hook",
        "http://224.0.0.1/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://192.168.1.10/hook",
    ],
)
def test_targets_not_public_are_refused(store, url):
    with pytest.raises(InputError) as err:
        outbox.add_webhook(store, url, "json", area=AREA, policy=outbox.Policy())
    assert err.value.code == "webhook_refused"
    assert store.webhooks() == []


@pytest.mark.parametrize(
    "url", ["ftp://example.com/x", "file:///etc/passwd", "http:///nohost", "gopher://a/", ""]
)
def test_urls_that_are_not_http_are_refused(store, url):
    with pytest.raises(InputError):
        outbox.add_webhook(store, url, "json", area=AREA, policy=LOCAL)


def test_a_target_refused_at_sending_is_not_contacted(store, receiver):
    hook = outbox.add_webhook(store, receiver.url(), "json", area=AREA, policy=LOCAL)
    outbox.queue_test(store, hook.id)
    drain(store, outbox.Policy())  # the sender's setting no longer allows 127.0.0.1
    assert receiver.requests == []
    (d,) = store.deliveries(hook.id)
    assert d.outcome == "failed" and "not allowed" in d.error


def test_the_checked_address_is_the_one_connected_to():
    target = resolve("http://localhost:9/x?y=1", allowed_networks("127.0.0.1,::1"))
    assert target.address in ("127.0.0.1", "::1") and target.host == "localhost" and target.path == "/x?y=1"


def test_credentials_are_masked_in_lists_logs_and_errors(store, caplog):
    url = "http://user:pa55word@127.0.0.1:9/robot/send?access_token=SECRETTOKEN"
    hook = outbox.add_webhook(
        store, url, "dingtalk", area=AREA, secret="SECsigning", by="admin", policy=LOCAL
    )
    shown = outbox.webhook_dict(hook)
    assert (
        shown["url"] == "http://user:***@127.0.0.1:9/robot/send?access_token=***" and shown["signed"] is True
    )
    assert "secret" not in shown
    assert mask_url(url) == shown["url"]
    outbox.queue_test(store, hook.id)
    with caplog.at_level("INFO"):
        drain(store)  # port 9: the connection is refused, retried, given up
    texts = [d.error or "" for d in store.deliveries(hook.id)] + [r.getMessage() for r in caplog.records]
    texts += [e.detail or "" for e in store.audit_entries()]
    assert len(store.deliveries(hook.id)) == LOCAL.attempts
    for text in texts:
        assert "SECRETTOKEN" not in text and "pa55word" not in text and "SECsigning" not in text
    with pytest.raises(InputError) as err:
        outbox.add_webhook(store, "http://u:pa55word@10.0.0.1/x?key=SECRETTOKEN", "json", area=AREA)
    assert "SECRETTOKEN" not in err.value.message and "pa55word" not in err.value.message


def test_bad_webhooks_are_refused(store, receiver):
    with pytest.raises(InputError):
        outbox.add_webhook(store, receiver.url(), "slack", area=AREA, policy=LOCAL)
    with pytest.raises(InputError):
        outbox.add_webhook(store, receiver.url(), "json", area="34029", policy=LOCAL)  # no level has 5 digits
    with pytest.raises(InputError):
        outbox.add_webhook(store, receiver.url(), "json", area=AREA, account="admin", policy=LOCAL)
    with pytest.raises(InputError):
        outbox.add_webhook(store, receiver.url(), "json", area=AREA, secret="s3cret", policy=LOCAL)
    with pytest.raises(NotFound):
        outbox.add_webhook(store, receiver.url(), "json", account="nobody", policy=LOCAL)
    with pytest.raises(NotFound):
        outbox.remove_webhook(store, 99)


def test_events_are_queued_in_the_writing_transaction(store, receiver):
    outbox.add_webhook(store, receiver.url(), "json", area=AREA, policy=LOCAL)
    env = formats.task_created({"id": 1, "area": AREA + "001001"})
    with pytest.raises(RuntimeError), store.transaction():
        outbox.queue_event(store, env, area=AREA + "001001")
        raise RuntimeError("the write fails")
    assert store.outbox_rows() == []
    with store.transaction():
        assert outbox.queue_event(store, env, area=AREA + "001001")
    assert len(store.outbox_rows()) == 1
    assert outbox.queue_event(store, env, area="340291002001") == []  # another street


def test_a_removed_webhook_sends_nothing_more(store, receiver):
    hook = outbox.add_webhook(store, receiver.url(), "json", area=AREA, policy=LOCAL)
    outbox.queue_test(store, hook.id)
    outbox.remove_webhook(store, hook.id)
    drain(store)
    assert receiver.requests == [] and store.webhooks() == []
    assert store.outbox_rows()[0].status == "failed"


@pytest.mark.slow
def test_each_row_is_sent_once_by_two_senders(store, receiver, tmp_path):
    hook = outbox.add_webhook(store, receiver.url(), "json", area=AREA, policy=LOCAL)
    ids = [outbox.queue_test(store, hook.id) for _ in range(30)]
    store.close()
    errors: list[BaseException] = []

    def run(name: str) -> None:
        handle = open_test_store(tmp_path / "data")
        try:
            for _ in range(50):
                outbox.send_due(handle, LOCAL, worker=name, limit=3)
                if all(r.status == "sent" for r in handle.outbox_rows()):
                    return
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            handle.close()

    threads = [threading.Thread(target=run, args=(f"w{i}",)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    seen = [json.loads(r["body"])["delivery"] for r in receiver.requests]
    assert sorted(seen) == ids  # every row once, none twice
    assert {r.status for r in store.outbox_rows()} == {"sent"}


def test_cli_add_list_test_remove(receiver, runner, tmp_path, monkeypatch, store):
    monkeypatch.setenv("GRIDWATCH_WEBHOOK_ALLOW", "127.0.0.1")
    data = str(tmp_path / "data")
    store.close()
    url = receiver.url("/send?key=CLISECRET")
    assert main(["--data", data, "webhook", "add", "--area", AREA, "--format", "wecom", url]) == 0
    run = runner("--data", data, "webhook", "list", "--json")
    (listed,) = json.loads(run.out)
    assert listed["url"].endswith("key=***") and "CLISECRET" not in run.out
    run = runner("--data", data, "webhook", "test", str(listed["id"]), "--json")
    assert run.code == 0 and json.loads(run.out)["outcome"] == "sent"
    assert json.loads(receiver.requests[0]["body"])["msgtype"] == "markdown"
    assert (
        runner("--data", data, "webhook", "add", "--area", AREA, "--format", "json", "http://10.0.0.1/").code
        == 2
    )
    assert runner("--data", data, "webhook", "remove", str(listed["id"])).code == 0
    assert runner("--data", data, "webhook", "remove", str(listed["id"])).code == 2
    assert json.loads(runner("--data", data, "webhook", "list", "--json").out) == []


# --- the admin API and the server's sender -------------------------------------------------


@pytest.fixture
def site(tmp_path, store):
    """A store with an admin and a viewer (the test's backend), closed for the app to use."""
    from tests.helpers.web import PASSWORDS

    accounts.add_user(store, "admin", "admin", PASSWORDS["admin"])
    accounts.add_user(store, "viewer", "viewer", PASSWORDS["viewer"])
    store.close()
    return tmp_path / "data"


def _wait_for(check, seconds: float = 15.0):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    return check()


@pytest.mark.slow
def test_api_queues_without_waiting_for_the_receiver(site, receiver, make_app):
    from tests.helpers.web import Session

    app = make_app(site, GRIDWATCH_WEBHOOKS=True, GRIDWATCH_WEBHOOK_ALLOW="127.0.0.1")
    admin = Session(app, "admin")
    try:
        made = admin.request(
            "POST",
            "/api/webhooks",
            json={"area": AREA, "format": "json", "url": receiver.url("/hook?token=APISECRET")},
        )
        assert made.status_code == 201, made.json
        hook = made.json
        assert hook["url"].endswith("token=***") and "APISECRET" not in made.text
        listed = admin.request("GET", "/api/webhooks")
        assert [h["id"] for h in listed.json] == [hook["id"]] and "APISECRET" not in listed.text

        receiver.gate = threading.Event()  # the receiver holds its answer until the test lets it go
        queued = admin.request("POST", f"/api/webhooks/{hook['id']}/test")
        assert queued.status_code == 202 and queued.json["sending"] is True
        # the request has returned; the sender has reached the receiver, which has not answered yet
        assert _wait_for(lambda: receiver.requests)
        assert not receiver.gate.is_set()
        assert admin.request("GET", f"/api/webhooks/{hook['id']}/deliveries").json == []
        receiver.gate.set()
        done = _wait_for(lambda: admin.request("GET", f"/api/webhooks/{hook['id']}/deliveries").json)
        assert done[0]["outcome"] == "sent" and done[0]["event"] == "webhook.test"
        assert json.loads(receiver.requests[0]["body"])["data"]["by"] == "admin"

        assert admin.request("DELETE", f"/api/webhooks/{hook['id']}").status_code == 204
        assert admin.request("DELETE", f"/api/webhooks/{hook['id']}").status_code == 404
        assert admin.request("GET", f"/api/webhooks/{hook['id']}/deliveries").status_code == 404
    finally:
        sender = outbox.running_sender(app.extensions["gridwatch_location"].store)
        if sender is not None:
            sender.stop()


@pytest.mark.slow
def test_api_refuses_bad_webhooks_and_other_roles(site, make_app):
    from tests.helpers.web import Session

    app = make_app(site)
    admin = Session(app, "admin")
    for body in (
        {"area": AREA, "format": "json", "url": "http://169.254.169.254/latest"},
        {"area": AREA, "format": "json", "url": "http://127.0.0.1:9/x"},  # not allowed by default
        {"area": AREA, "format": "json", "url": "ftp://example.com/"},
        {"area": AREA, "format": "teams", "url": "http://example.com/"},
        {"format": "json", "url": "http://example.com/"},
        {"area": ["x"], "format": "json", "url": "http://example.com/"},
        ["not", "an", "object"],
    ):
        resp = admin.request("POST", "/api/webhooks", json=body)
        assert resp.status_code in (400, 404), (body, resp.status_code)
        assert resp.json["message_en"]
    viewer = Session(app, "viewer")
    assert viewer.request("GET", "/api/webhooks").status_code == 403
    assert viewer.request("POST", "/api/webhooks", json={}).status_code == 403
    assert outbox.running_sender(app.extensions["gridwatch_location"].store) is None  # off by default


@pytest.mark.slow
def test_admin_page_adds_tests_and_removes(site, receiver, make_app):
    from tests.helpers.web import Session

    app = make_app(site, GRIDWATCH_WEBHOOK_ALLOW="127.0.0.1")
    admin = Session(app, "admin")
    page = admin.client.get("/webhooks")
    assert page.status_code == 200 and "尚未设置 Webhook" in page.text
    form = {"csrf_token": admin.token, "action": "add", "whom": "area", "target": AREA, "format": "dingtalk"}
    added = admin.client.post(
        "/webhooks",
        data={**form, "url": receiver.url("/robot/send?access_token=PAGESECRET"), "secret": "SECpage"},
    )
    assert added.status_code == 200 and "已添加 Webhook" in added.text
    assert "access_token=***" in added.text and "PAGESECRET" not in added.text and "SECpage" not in added.text
    (hook,) = outbox_hooks(site)
    refused = admin.client.post("/webhooks", data={**form, "url": "http://10.0.0.1/x", "format": "json"})
    assert refused.status_code == 400 and "不允许" in refused.text
    tested = admin.client.post("/webhooks", data={"csrf_token": admin.token, "action": "test", "id": hook})
    assert "通知未开启" in tested.text  # queued, not sent: GRIDWATCH_WEBHOOKS is off
    english = admin.client.get("/webhooks?lang=en")
    assert "Notification webhooks" in english.text and "No webhooks yet" not in english.text
    gone = admin.client.post("/webhooks", data={"csrf_token": admin.token, "action": "remove", "id": hook})
    assert gone.status_code == 200 and outbox_hooks(site) == []
    assert (
        admin.client.post(
            "/webhooks", data={"csrf_token": admin.token, "action": "remove", "id": "x"}
        ).status_code
        == 400
    )


def outbox_hooks(data) -> list[int]:
    handle = open_test_store(data)
    try:
        return [h.id for h in handle.webhooks()]
    finally:
        handle.close()


def _webhook_state(where) -> tuple:
    from geo.store.backends import open_store

    with open_store(where.store, data=where.data) as s:
        hooks = [(h.id, h.target_kind, h.target, h.format, h.url, h.secret) for h in s.webhooks()]
        rows = [
            (r.id, r.webhook_id, r.event, json.loads(r.payload), r.status, r.attempts)
            for r in s.outbox_rows()
        ]
        sent = [
            (d.id, d.outbox_id, d.outcome, d.http_status, d.error)
            for h in s.webhooks()
            for d in s.deliveries(h.id)
        ]
        return hooks, rows, sent


@pytest.mark.slow
@pytest.mark.needs("postgis")
def test_store_copy_keeps_webhooks_and_their_log(tmp_path, pg_db):
    from geo.store.backends import Location, open_store
    from geo.store.copy import copy_store

    source = Location(str(tmp_path / "src" / "gridwatch.gpkg"), tmp_path / "src")
    with open_store(source.store, data=source.data) as s:
        hook = outbox.add_webhook(
            s, "http://127.0.0.1:9/x?key=K", "dingtalk", area=AREA, secret="SECk", policy=LOCAL
        )
        outbox.queue_test(s, hook.id, "admin")
        outbox.send_due(
            s, outbox.Policy(allow=LOCAL.allow, attempts=5, backoff=3600.0)
        )  # refused: one attempt
        gone = outbox.add_webhook(s, "http://127.0.0.1:9/y", "json", area=AREA, policy=LOCAL)
        outbox.remove_webhook(s, gone.id)
    middle = Location(pg_db, tmp_path / "pgdata")
    back = Location(str(tmp_path / "back" / "gridwatch.gpkg"), tmp_path / "back")
    copy_store(source, middle)
    copy_store(middle, back)
    before = _webhook_state(source)
    assert before[0] and before[1] and before[2]
    assert _webhook_state(middle) == before == _webhook_state(back)
    with open_store(back.store, data=back.data) as b:  # ids go on after the copied ones
        assert (
            outbox.add_webhook(b, "http://127.0.0.1:9/z", "json", area=AREA, policy=LOCAL).id == gone.id + 1
        )
