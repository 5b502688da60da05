"""What the web layer tells the engine about the request it serves: the limits of the reading
helper from the settings, and whether the client is still there."""

from __future__ import annotations

import functools
import select
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from flask import current_app, request

from geo.reading import untrusted

#: Rows an upload may hold (the command line takes up to 10 million): what is accepted is
#: cleaned and assigned in a server process, about 1 KB a row while it happens.
UPLOAD_MAX_ROWS = 1_000_000


def client_gone(environ: dict[str, Any]) -> Callable[[], bool]:
    """A check that answers True once the client has closed its connection.

    gunicorn hands the connection's socket to the application (``gunicorn.socket``); a
    socket that is readable but yields no byte when peeked at has been closed by the
    client.  Without a socket (the development server, tests) the client never counts as
    gone."""
    sock = environ.get("gunicorn.socket")
    if not isinstance(sock, socket.socket):
        return lambda: False

    def gone() -> bool:
        try:
            readable, _, _ = select.select([sock], [], [], 0)
            if not readable:
                return False
            return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
        except BlockingIOError:
            return False
        except OSError:
            return True

    return gone


def read_limits() -> untrusted.ReadLimits:
    """The reading helper's limits from the app's settings."""
    cfg = current_app.config
    defaults = untrusted.ReadLimits()
    return untrusted.ReadLimits(
        memory_bytes=int(cfg.get("GRIDWATCH_READ_MEMORY") or defaults.memory_bytes),
        cpu_seconds=int(cfg.get("GRIDWATCH_READ_CPU_SECONDS") or defaults.cpu_seconds),
        wall_seconds=float(cfg.get("GRIDWATCH_READ_SECONDS") or defaults.wall_seconds),
        max_rows=int(cfg.get("GRIDWATCH_UPLOAD_MAX_ROWS") or UPLOAD_MAX_ROWS),
    )


@contextmanager
def reading() -> Iterator[None]:
    """Every file read inside the block uses the configured limits and stops when the client
    of this request goes away."""
    with untrusted.scope(read_limits(), client_gone(request.environ)):
        yield


def reads_files(view: Callable[..., Any]) -> Callable[..., Any]:
    """Decorate a view that reads files users send: see :func:`reading`."""

    @functools.wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        with reading():
            return view(*args, **kwargs)

    return wrapped
