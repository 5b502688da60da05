"""The settings of the web service, declared once: name, default, type and meaning.

Each is read, in this order, from its default, from ``instance/gridwatch.cfg`` (Python
assignments, ``NAME = value``), from the environment and from the mapping given to
``create_app``.  In the environment a setting is spelt ``GRIDWATCH_<NAME>``; a setting whose
name already starts with ``GRIDWATCH_`` keeps it (``GRIDWATCH_TILES``, but
``GRIDWATCH_SECRET_KEY`` for ``SECRET_KEY``).  Values from the environment and the file are
checked against the setting's type; a bad one stops the start with a clear message.
README's settings table lists every setting here (``tests/test_settings.py`` checks it).
"""

from __future__ import annotations

import logging
import os
import re
import secrets
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from geo.errors import InputError
from geo.imports import uploads
from geo.reading import untrusted
from geo.store import clock
from geo.store.base import DEFAULT_DATA_DIR
from web import clients

ENV_PREFIX = "GRIDWATCH_"

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")


def _flag(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise _bad(name, value, "1 / 0")


_SIZE = re.compile(r"^(\d+)\s*([kmg]i?b?)?$", re.IGNORECASE)
_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def _size(name: str, value: Any) -> int:
    """Bytes: ``209715200``, ``200M``, ``200 MB`` (units of 1024)."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    m = _SIZE.match(str(value).strip())
    if not m or int(m.group(1)) <= 0:
        raise _bad(name, value, "200M")
    return int(m.group(1)) * _UNITS[(m.group(2) or "")[:1].lower()]


def _count(name: str, value: Any) -> int:
    """A whole number above zero."""
    try:
        number = int(str(value).strip())
    except ValueError:
        number = 0
    if number <= 0:
        raise _bad(name, value, "20")
    return number


def _networks(name: str, value: Any) -> str:
    """Addresses or networks, comma-separated (``127.0.0.1, 10.0.0.0/8``)."""
    from geo.notify.targets import allowed_networks

    text = _text(name, value)
    allowed_networks(text)  # an InputError names the bad entry
    return text


def _hours(name: str, value: Any) -> float:
    """A number of hours above zero (``2``, ``0.5``)."""
    try:
        number = float(str(value).strip())
    except ValueError:
        number = 0.0
    if not 0 < number < float("inf"):
        raise _bad(name, value, "2")
    return number


def _zone(name: str, value: Any) -> str:
    """An IANA time zone name (``Asia/Shanghai``, ``UTC``)."""
    try:
        return clock.check_zone(str(value))
    except InputError:
        raise _bad(name, value, clock.DEFAULT_ZONE) from None


def _text(_name: str, value: Any) -> str:
    return "" if value is None else str(value)


def _key(name: str, value: Any) -> str | bytes:
    """A signing key: text, or bytes as a settings file may give (``os.urandom(32)``)."""
    return value if isinstance(value, bytes) else _text(name, value)


def _bad(name: str, value: Any, example: str) -> InputError:
    shown = str(value)[:40]
    return InputError(
        f"设置 {name} 的值无效: {shown!r}（例如 {example}）",
        f"setting {name} has an invalid value: {shown!r} (for example {example})",
        code="bad_setting",
    )


@dataclass(frozen=True)
class Setting:
    """One setting: its name (in the settings file and ``app.config``), default, type and meaning."""

    name: str
    default: Any
    #: Turns a value from the file, the environment or ``create_app`` into the setting's type.
    parse: Callable[[str, Any], Any]
    help: str

    @property
    def env(self) -> str:
        """Its name in the environment."""
        return self.name if self.name.startswith(ENV_PREFIX) else ENV_PREFIX + self.name


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "GRIDWATCH_DATA",
        str(DEFAULT_DATA_DIR),
        _text,
        "data directory: archived uploads, staged uploads, the session key and, unless "
        "GRIDWATCH_STORE names another, the GeoPackage store (a .gpkg file given here is the store)",
    ),
    Setting(
        "GRIDWATCH_STORE",
        "",
        _text,
        "the store, when not the GeoPackage in the data directory: a .gpkg file "
        "(or a URL of a registered backend; postgresql:// is not available yet)",
    ),
    Setting(
        "GRIDWATCH_TILES",
        "osm",
        _text,
        "base map: osm, tianditu, gaode (GCJ-02), none (intranets), or a tile URL template",
    ),
    Setting("GRIDWATCH_TIANDITU_KEY", "", _text, "the tk key for 天地图"),
    Setting("MAX_CONTENT_LENGTH", 200 * 1024 * 1024, _size, "largest upload; larger ones get 413"),
    Setting("GRIDWATCH_PUBLIC_MAP", False, _flag, "1: anonymous visitors may read the map"),
    Setting(
        "GRIDWATCH_WEBHOOKS", False, _flag, "1: send webhook notifications (a background sender per process)"
    ),
    Setting(
        "GRIDWATCH_WEBHOOK_ALLOW",
        "",
        _networks,
        "addresses or networks webhooks may reach though not public (127.0.0.1, 10.0.0.0/8), comma-separated",
    ),
    Setting(
        "GRIDWATCH_PHOTO_MAX_BYTES",
        20 * 1024 * 1024,
        _size,
        "largest photo on a feature; larger ones get 413",
    ),
    Setting(
        "GRIDWATCH_PHOTO_MAX_PIXELS", 50_000_000, _count, "most pixels a photo may declare; more get 413"
    ),
    Setting("GRIDWATCH_SECURE_COOKIES", False, _flag, "1 behind HTTPS: cookies only over HTTPS"),
    Setting(
        "GRIDWATCH_PROXY_FIX",
        False,
        _flag,
        "1 behind one reverse proxy: client address and scheme from X-Forwarded-*",
    ),
    Setting(
        "SECRET_KEY",
        None,
        _key,
        "signing key of sessions and CSRF tokens (default: kept in <data>/secret_key)",
    ),
    Setting(
        "GRIDWATCH_STAGING_QUOTA",
        uploads.QUOTA_BYTES,
        _size,
        "bytes each account may keep in uploads waiting for their commit; more get 413",
    ),
    Setting(
        "GRIDWATCH_STAGING_UPLOADS",
        uploads.QUOTA_UPLOADS,
        _count,
        "uploads waiting for their commit each account may keep; more get 429",
    ),
    Setting(
        "GRIDWATCH_STAGING_HOURS",
        uploads.MAX_AGE_S / 3600,
        _hours,
        "uploads not committed are removed after this many hours without use",
    ),
    Setting(
        "GRIDWATCH_READ_MEMORY",
        untrusted.ReadLimits.memory_bytes,
        _size,
        "memory (heap and private mappings) of the helper process that reads each upload",
    ),
    Setting(
        "GRIDWATCH_READ_CPU_SECONDS",
        untrusted.ReadLimits.cpu_seconds,
        _count,
        "CPU seconds the helper reading an upload may use",
    ),
    Setting(
        "GRIDWATCH_UPLOAD_MAX_ROWS",
        clients.UPLOAD_MAX_ROWS,
        _count,
        "rows an upload may hold (the command line takes up to 10 million)",
    ),
    Setting(
        "GRIDWATCH_TIMEZONE",
        clock.DEFAULT_ZONE,
        _zone,
        "time zone of the days and moments people give and read: known_at without a zone, a bare "
        "known_at date (the end of that day), a grid's default valid-from day, export times",
    ),
    Setting(
        "GRIDWATCH_READ_SECONDS",
        int(untrusted.ReadLimits.wall_seconds),
        _count,
        "seconds an upload may take to read before it is stopped",
    ),
)


def defaults() -> dict[str, Any]:
    return {s.name: s.default for s in SETTINGS}


def from_environ(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The settings given in the environment, by setting name (unparsed)."""
    env = os.environ if environ is None else environ
    return {s.name: env[s.env] for s in SETTINGS if s.env in env}


def check(config: MutableMapping[str, Any]) -> None:
    """Turn every setting in ``config`` into its type (:class:`InputError` for a bad value)."""
    for s in SETTINGS:
        if s.name in config and config[s.name] is not None:
            config[s.name] = s.parse(s.name, config[s.name])


def secret_key(data_dir: str) -> str:
    """The signing key of sessions and CSRF tokens: from the settings, else kept in the data
    directory (created once, readable by the owner only) so that every worker shares it."""
    path = Path(data_dir) / "secret_key"
    try:
        return path.read_text(encoding="ascii").strip()
    except OSError:
        pass  # not made yet (or cannot be: see below)
    key = secrets.token_hex(32)
    tmp = path.with_suffix(f".{secrets.token_hex(4)}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(key, encoding="ascii")
        tmp.chmod(0o600)
        try:
            # link, not rename: when two workers start at once the first key stays
            path.hardlink_to(tmp)
        except FileExistsError:
            pass
        finally:
            tmp.unlink(missing_ok=True)
    except OSError as exc:
        # a read-only data directory: the map and statistics still work, but sign-ins made in one
        # worker are unknown to the others until SECRET_KEY is set
        logging.getLogger("gridwatch").warning(
            "无法保存会话密钥，请设置 SECRET_KEY / cannot keep the session key in %s (%s): set SECRET_KEY",
            path,
            exc,
        )
        return key
    return path.read_text(encoding="ascii").strip()
