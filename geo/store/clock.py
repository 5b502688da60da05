"""Times of figures: the configured time zone, the stamps of store writes and ``--known-at``.

Every write to the store is one transaction with a stamp: UTC with microseconds in one
fixed-width form (``2024-05-01T02:03:04.123456Z``), so stamps sort as text and the stamps of
successive writes strictly increase.  ``--known-at`` (``known_at=`` in the API) names a moment;
the figures are those of the last write stamped at or before it.  A moment given without a
zone is in the configured time zone (``GRIDWATCH_TIMEZONE``, default Asia/Shanghai); a bare
date is the end of that day there.  Days a person names (the import day, a grid's valid-from
date, "today") are days in that zone too.
"""

from __future__ import annotations

import os
import re
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from geo.errors import InputError
from geo.reading.display import safe_display_name
from geo.reading.values import DATE_MAX_YEAR, DATE_MIN_YEAR, parse_date

__all__ = [
    "DEFAULT_ZONE",
    "check_zone",
    "local_day",
    "local_text",
    "next_stamp",
    "now_iso",
    "now_stamp",
    "parse_known_at",
    "shown",
    "stamp",
    "today",
    "zone",
    "zone_note",
]

DEFAULT_ZONE = "Asia/Shanghai"
_STAMP_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
# a date and a time: 2024-05-01T10:00, 2024-05-01 10:00:00.5+08:00, 20240501T1000Z ...
_HAS_TIME = re.compile(r"^\s*\d{4}-?\d{2}-?\d{2}[T\s]\d{1,2}(:?\d{2})?")
_MAX_TEXT = 64


def check_zone(name: str) -> str:
    """``name`` when it is an IANA time zone (``Asia/Shanghai``, ``UTC``), else :class:`InputError`."""
    text = str(name).strip()
    try:
        if not text or len(text) > 64 or text.startswith(("/", ".")) or ".." in text:
            raise ValueError(text)
        ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        shown_name = safe_display_name(text)[:40]
        raise InputError(
            f"未知的时区: {shown_name!r}（例如 Asia/Shanghai）",
            f"unknown time zone: {shown_name!r} (for example Asia/Shanghai)",
            code="bad_timezone",
        ) from None
    return text


def zone(name: str | None = None) -> ZoneInfo:
    """The time zone ``name``, else ``$GRIDWATCH_TIMEZONE``, else Asia/Shanghai."""
    return ZoneInfo(check_zone(name or os.environ.get("GRIDWATCH_TIMEZONE") or DEFAULT_ZONE))


def today(tz: str | None = None) -> date:
    """Today in the configured time zone."""
    return datetime.now(zone(tz)).date()


def stamp(moment: datetime) -> str:
    """``moment`` (aware) as a store stamp: UTC, microseconds, fixed width."""
    return moment.astimezone(UTC).strftime(_STAMP_FORMAT)


def now_iso() -> str:
    """Now in UTC to the second, ISO 8601 with ``Z`` (creation times of batches, uploads, users)."""
    return datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def now_stamp() -> str:
    """Now as a store stamp (:func:`stamp`)."""
    return stamp(datetime.now(UTC))


def next_stamp(previous: str | None) -> str:
    """Now as a stamp, or one microsecond after ``previous`` when the clock is not past it
    (stamps of successive writes strictly increase whatever the clock does)."""
    now = now_stamp()
    if previous is None or now > previous:
        return now
    return stamp(_parse_stamp(previous) + timedelta(microseconds=1))


def _parse_stamp(text: str) -> datetime:
    return datetime.strptime(text, _STAMP_FORMAT).replace(tzinfo=UTC)


def local_day(text: str, tz: str | None = None) -> date:
    """The day in the configured zone of a store stamp or of an ISO time (``created_at``)."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(zone(tz)).date()


def shown(text: str | None, tz: str | None = None) -> str | None:
    """A store stamp (or any ISO time, UTC when it names no zone) as a person reads it: ISO 8601
    in the configured zone with its offset."""
    if not text:
        return None
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(zone(tz)).isoformat()


def local_text(text: str | None, tz: str | None = None) -> str:
    """A store stamp (or any ISO time, UTC when it names no zone) as pages and exports show it:
    ``2022-06-30 14:05`` in the configured zone (the zone named once on the page,
    :func:`zone_note`); empty for no time, the text itself when it is no time."""
    if not text:
        return ""
    try:
        moment = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return str(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(zone(tz)).strftime("%Y-%m-%d %H:%M")


def zone_note(tz: str | None = None) -> str:
    """The configured zone as a page names it once: ``Asia/Shanghai (UTC+08:00)``."""
    where = zone(tz)
    offset = datetime.now(where).strftime("%z")
    return f"{where.key} (UTC{offset[:3]}:{offset[3:]})"


def parse_known_at(value: object, tz: str | None = None) -> str | None:
    """The moment of ``--known-at`` / ``known_at=`` as a store stamp (None: now).

    Parameters
    ----------
    value : str, datetime, date or None
        An ISO 8601 timestamp (``2024-05-01T10:30``, ``2024-05-01 10:30:00+08:00``,
        ``2024-05-01T02:30:00Z``) or a date in any form ``--as-of`` takes (``2024-05-01``,
        ``20240501``, ``2024年5月1日``).  Without a zone it is in ``tz`` (the configured time
        zone); a bare date is the end of that day.
    tz : str, optional
        Time zone name; default ``$GRIDWATCH_TIMEZONE`` or Asia/Shanghai.

    Raises
    ------
    InputError
        ``code="bad_known_at"``: not a moment, or its year outside 1950–2100.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    where = zone(tz)
    if isinstance(value, datetime):
        moment = value if value.tzinfo is not None else value.replace(tzinfo=where)
    elif isinstance(value, date):
        moment = _end_of(value, where)
    else:
        text = str(value).strip()
        if len(text) > _MAX_TEXT:
            raise _bad(text)
        if _HAS_TIME.match(text):
            try:
                moment = datetime.fromisoformat(text.replace("z", "Z"))
            except ValueError:
                raise _bad(text) from None
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=where)
        else:
            try:
                day = parse_date(text)
            except InputError:
                raise _bad(text) from None
            assert day is not None
            moment = _end_of(day, where)
    if not DATE_MIN_YEAR <= moment.year <= DATE_MAX_YEAR:
        raise _bad(str(value))
    return stamp(moment)


def _end_of(day: date, where: ZoneInfo) -> datetime:
    return datetime.combine(day, time(23, 59, 59, 999999), tzinfo=where)


def _bad(text: str) -> InputError:
    shown_text = safe_display_name(text)[:_MAX_TEXT]
    return InputError(
        f"时点无效：{shown_text}（应为 2024-05-01T10:30、2024-05-01T10:30+08:00 或日期 2024-05-01 等，"
        f"年份 {DATE_MIN_YEAR}–{DATE_MAX_YEAR}）",
        f"invalid --known-at: {shown_text} (give an ISO 8601 time such as 2024-05-01T10:30 or "
        f"2024-05-01T10:30+08:00, or a date; years {DATE_MIN_YEAR}-{DATE_MAX_YEAR})",
        code="bad_known_at",
    )
