"""What of a store location may be shown: a URL's credentials never are.

A location may carry credentials (``postgresql://user:secret@host/db``, or
``?password=secret``): every message and log line shows it through :func:`shown_location`,
and a text that may quote it passes through :func:`without` first.
"""

from __future__ import annotations

import os
import re
from urllib.parse import parse_qsl, unquote, urlsplit

__all__ = ["SCHEME", "secrets_in", "shown_location", "without"]

#: A URL scheme at the start of a location.
SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
#: Query parameters of a URL that hold secrets (libpq spells the password ``password``).
_SECRET_PARAMS = frozenset({"password", "passwd", "pass", "secret", "token", "sslpassword", "key"})


def secrets_in(location: str) -> list[str]:
    """The credentials written in ``location`` (the password of its user part, secret query
    parameters), as written and decoded -- what must never be shown."""
    if SCHEME.match(location) is None or "://" not in location:
        return []
    try:
        parts = urlsplit(location)
        password = parts.password
        query = parse_qsl(parts.query, keep_blank_values=True)
    except ValueError:  # a URL too broken to read: show none of it
        return [location]
    found = []
    if password:
        found += [password, unquote(password)]
    raw = dict(p.split("=", 1) for p in parts.query.split("&") if "=" in p)
    for name, value in query:
        if name.lower() in _SECRET_PARAMS and value:
            found += [value, raw.get(name, value)]
    return sorted({s for s in found if s}, key=len, reverse=True)


def shown_location(location: str | os.PathLike[str]) -> str:
    """``location`` as messages and logs may show it: a URL without its password or secret
    query parameters (``postgresql://gw:***@db/gridwatch``), a path as it is."""
    text = str(location)
    secrets = secrets_in(text)
    if not secrets:
        return text
    try:
        parts = urlsplit(text)
    except ValueError:
        return "***"
    netloc = parts.netloc
    if parts.password is not None:
        user, _, host = netloc.rpartition("@")
        netloc = f"{user.split(':', 1)[0]}:***@{host}"
    query = "&".join(
        f"{p.split('=', 1)[0]}=***" if p.split("=", 1)[0].lower() in _SECRET_PARAMS and "=" in p else p
        for p in parts.query.split("&")
        if p
    )
    shown = f"{parts.scheme}://{netloc}{parts.path}" + (f"?{query}" if query else "")
    for secret in secrets:  # whatever the parts above missed
        shown = shown.replace(secret, "***")
    return shown


def without(text: str, secrets: list[str]) -> str:
    """``text`` with every one of ``secrets`` (see :func:`secrets_in`) written as ``***``."""
    for secret in secrets:
        text = text.replace(secret, "***")
    return text
