"""Signing in to the real app and serving it: the accounts the tests use, a signed-in test
client that sends its CSRF token, and the app on a local port for a browser or raw sockets."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

#: The accounts the tests sign in with, by name (their role is their name, ``surveyor2`` a surveyor).
PASSWORDS = {
    "admin": "admin-pass-1",
    "surveyor": "surveyor-pass-1",
    "surveyor2": "surveyor-pass-2",
    "viewer": "viewer-pass-1",
}


def csrf_from(html: str) -> str:
    """The CSRF token a page carries (its meta tag, or a form's hidden field)."""
    m = re.search(r'name="csrf-token" content="([^"]+)"', html) or re.search(
        r'name="csrf_token" type="hidden" value="([^"]+)"', html
    )
    assert m, "no CSRF token in the page"
    return m.group(1)


def login(client, name: str, password: str | None = None, **kw):
    """Sign ``client`` in through the login form (``password`` defaults to :data:`PASSWORDS`)."""
    token = csrf_from(client.get("/login", **kw).text)
    return client.post(
        "/login", data={"username": name, "password": password or PASSWORDS[name], "csrf_token": token}, **kw
    )


class Session:
    """A test client signed in as ``name`` (or anonymous) that sends its CSRF token on writes."""

    def __init__(self, app, name: str | None):
        self.client = app.test_client()
        self.token = ""
        if name:
            assert login(self.client, name).status_code == 302
            self.token = csrf_from(self.client.get("/account").text)

    def request(self, method: str, url: str, **kw):
        headers = kw.pop("headers", {})
        if method not in ("GET", "HEAD") and self.token:
            headers["X-CSRFToken"] = self.token
        return self.client.open(url, method=method, headers=headers, **kw)


@contextmanager
def serving(app) -> Iterator[int]:
    """Serve ``app`` on 127.0.0.1 (a threaded development server) for the block; yields the port."""
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, _read_through(app), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_port
    finally:
        server.shutdown()
        thread.join(timeout=10)


def _read_through(app):
    """``app`` answering with its whole body at once, its iterable closed before a byte is sent.

    A browser drops connections it no longer needs (a favicon, a superseded request); the
    development server then leaves a sent file open until the garbage collector finds it, and
    the ResourceWarning of that (an error under this suite's warning filter) lands in whichever
    test runs next.  No answer of the app is streamed, so nothing changes but when files close."""

    def wsgi(environ, start_response):
        body = app(environ, start_response)
        try:
            return [b"".join(body)]
        finally:
            if hasattr(body, "close"):
                body.close()

    return wsgi


def wait_for(page, expression: str, timeout: float = 10000) -> None:
    """Wait until ``expression`` is true in the page.  (Playwright's own wait_for_function
    evaluates a string with eval, which the pages' Content-Security-Policy forbids; this
    asks through the DevTools protocol, which the policy does not govern.)"""
    deadline = time.monotonic() + timeout / 1000
    while not page.evaluate(f"() => Boolean({expression})"):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {expression}")
        page.wait_for_timeout(50)
