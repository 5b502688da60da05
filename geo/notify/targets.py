"""Where a webhook may send: its URL checked and resolved, its secrets masked.

A URL is ``http`` or ``https`` with a host; its host is resolved and every address it gives must
be a public one -- loopback, link-local, private, multicast, reserved and unspecified addresses
(IPv4-mapped IPv6 included) are refused unless an allowed network lists them (the setting
``GRIDWATCH_WEBHOOK_ALLOW``: addresses or networks, comma-separated).  The request is then made
to the address checked (:class:`Target`), so the name cannot resolve elsewhere in between.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit, urlunsplit

from geo.errors import InputError

#: The setting listing the networks a webhook may reach though they are not public.
ALLOW_ENV = "GRIDWATCH_WEBHOOK_ALLOW"

#: The longest URL kept.
MAX_URL = 2000

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def allowed_networks(text: str | None = None) -> tuple[Network, ...]:
    """The networks of ``text`` (default ``$GRIDWATCH_WEBHOOK_ALLOW``): ``127.0.0.1``,
    ``10.0.0.0/8``, ``::1`` …, comma-separated; a bad entry is an :class:`InputError`."""
    raw = os.environ.get(ALLOW_ENV, "") if text is None else text
    nets = []
    for part in raw.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            nets.append(ipaddress.ip_network(part, strict=False))
        except ValueError:
            raise InputError(
                f"{ALLOW_ENV} 中的“{part}”不是地址或网段",
                f"{part!r} in {ALLOW_ENV} is not an address or network",
                code="bad_setting",
            ) from None
    return tuple(nets)


def mask_url(url: str) -> str:
    """``url`` as shown to people and logs: a password in it and every query value (robot
    ``key``/``access_token``, signatures) replaced by ``***``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "***"
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:***@{host}" if user else f"***@{host}"
    query = "&".join(
        (p.split("=", 1)[0] + "=***") if "=" in p else ("***" if p else "") for p in parts.query.split("&")
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def scrub(text: str, secrets: Iterable[str | None]) -> str:
    """``text`` with every secret in ``secrets`` (URL parts, a signing secret) replaced by ``***``."""
    for secret in secrets:
        if secret and len(secret) >= 3:
            text = text.replace(secret, "***")
    return text


def url_secrets(url: str, secret: str | None = None) -> list[str]:
    """The parts of a webhook that must never be shown: its password, its query values, its secret."""
    out: list[str | None] = [secret]
    try:
        parts = urlsplit(url)
    except ValueError:
        return [url]
    out.append(parts.password)
    out.extend(p.split("=", 1)[1] for p in parts.query.split("&") if "=" in p)
    return sorted((s for s in out if s), key=len, reverse=True)


@dataclass(frozen=True)
class Target:
    """A checked URL: its parts, its host and port, and the address to connect to."""

    url: str
    scheme: str
    host: str
    port: int
    address: str
    path: str  # path and query, as sent


_BAD_HOST = re.compile(r"[\s\x00-\x1f\x7f]")


def check_url(url: str) -> SplitResult:
    """The parts of ``url`` if it may be a webhook URL at all (http/https, a host, no fragment
    tricks); raises :class:`InputError` (the URL masked in the message)."""
    shown = mask_url(url)
    if not isinstance(url, str) or not url or len(url) > MAX_URL or _BAD_HOST.search(url):
        raise InputError("网址无效", f"the URL is not valid: {shown}", code="bad_webhook_url")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise InputError(
            f"网址无效：{shown}", f"the URL is not valid: {shown}", code="bad_webhook_url"
        ) from None
    if parts.scheme not in ("http", "https"):
        raise InputError(
            f"网址须以 http:// 或 https:// 开头：{shown}",
            f"the URL must be http:// or https://: {shown}",
            code="bad_webhook_url",
        )
    if not parts.hostname:
        raise InputError(f"网址缺少主机名：{shown}", f"the URL has no host: {shown}", code="bad_webhook_url")
    if port == 0:
        raise InputError(
            f"网址端口无效：{shown}", f"the URL's port is not valid: {shown}", code="bad_webhook_url"
        )
    return parts


def _public(address: Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return _public(address.ipv4_mapped)
    return not (
        address.is_loopback
        or address.is_link_local
        or address.is_private
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or (isinstance(address, ipaddress.IPv6Address) and address.is_site_local)
    )


def refused(address: Address, allow: tuple[Network, ...]) -> bool:
    """Whether ``address`` may not be reached: not public and in no allowed network."""
    if any(address in net for net in allow if net.version == address.version):
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    if mapped is not None and any(mapped in net for net in allow if net.version == 4):
        return False
    return not _public(address)


def resolve(url: str, allow: tuple[Network, ...] | None = None) -> Target:
    """Check ``url`` and resolve its host: the :class:`Target` to connect to (the first address
    it resolves to), when every address it resolves to may be reached; else :class:`InputError`."""
    parts = check_url(url)
    nets = allowed_networks() if allow is None else allow
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    shown = mask_url(url)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise InputError(
            f"无法解析网址的主机：{shown}",
            f"the URL's host does not resolve: {shown}",
            code="webhook_unresolved",
        ) from None
    addresses: list[Address] = []
    for info in infos:
        text = str(info[4][0]).split("%", 1)[0]
        addresses.append(ipaddress.ip_address(text))
    if not addresses:
        raise InputError(
            f"无法解析网址的主机：{shown}",
            f"the URL's host does not resolve: {shown}",
            code="webhook_unresolved",
        )
    bad = [a for a in addresses if refused(a, nets)]
    if bad:
        raise InputError(
            f"不允许向内网、本机或保留地址（{bad[0]}）发送：{shown}",
            f"the URL leads to a loopback, private, link-local or reserved address ({bad[0]}),"
            f" which is not allowed: {shown}",
            code="webhook_refused",
        )
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return Target(url, parts.scheme, host, port, str(addresses[0]), path)
