"""One POST to a webhook: to the address that was checked, no redirects, short timeouts, the
answer read up to a cap."""

from __future__ import annotations

import http.client
import socket
import ssl
from dataclasses import dataclass

from geo.notify.targets import Target

#: The most of an answer read (bytes).
MAX_ANSWER = 64 * 1024


@dataclass(frozen=True)
class Answer:
    """What came back: the HTTP status and the first :data:`MAX_ANSWER` bytes of the body."""

    status: int
    body: bytes
    location: str | None = None


class _PinnedHTTP(http.client.HTTPConnection):
    """An HTTP connection to ``address`` that names ``host`` in its ``Host`` header."""

    def __init__(self, host: str, port: int, address: str, timeout: float):
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPS(http.client.HTTPSConnection):
    """An HTTPS connection to ``address``, its certificate checked against ``host``."""

    def __init__(self, host: str, port: int, address: str, timeout: float, context: ssl.SSLContext):
        super().__init__(host, port, timeout=timeout, context=context)
        self._address = address
        self._ctx = context

    def connect(self) -> None:
        raw = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._ctx.wrap_socket(raw, server_hostname=self.host)


def post(target: Target, path: str, body: bytes, headers: dict[str, str], timeout: float) -> Answer:
    """POST ``body`` to ``target`` at ``path``; a redirect is returned as it is, never followed.
    Raises :class:`OSError` (timeouts included) and :class:`http.client.HTTPException`."""
    conn: http.client.HTTPConnection
    if target.scheme == "https":
        conn = _PinnedHTTPS(target.host, target.port, target.address, timeout, ssl.create_default_context())
    else:
        conn = _PinnedHTTP(target.host, target.port, target.address, timeout)
    try:
        conn.request(
            "POST",
            path,
            body=body,
            headers={
                "Content-Type": "application/json; charset=utf-8",
                "User-Agent": "gridwatch-webhook/1",
                **headers,
            },
        )
        resp = conn.getresponse()
        data = resp.read(MAX_ANSWER)
        return Answer(resp.status, data, resp.getheader("Location"))
    finally:
        conn.close()
