"""Cleaning survey values: numbers, dates and text.

Survey tables come from Excel, WPS, DBF and CSV files typed by hand.  The same
column holds ``12.5``, ``"12.5㎡"``, ``"1,250"`` and ``"约30"``; a date column holds
datetimes, ``"2022年5月25日"`` and Excel serial numbers side by side.  The functions
here take a :class:`pandas.Series` and return cleaned values plus a boolean ``bad``
mask marking values that were present but could not be understood, so the caller
can report them by row.  Empty values are never bad.

Every parser works on the distinct values of a column (survey columns repeat a lot)
and keeps plain numeric and datetime columns on vectorised numpy paths, so 100,000
rows take a fraction of a second.
"""

from __future__ import annotations

import math
import numbers
import unicodedata
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from geo.errors import InputError
from geo.reading.display import CONTROL_RE2, UNSAFE_RE, safe_display_name, strip_controls

__all__ = [
    "DATE_MAX_YEAR",
    "DATE_MIN_YEAR",
    "EXCEL_EPOCH",
    "EXCEL_SERIAL_RANGE",
    "PLACEHOLDERS",
    "clean_text",
    "parse_date",
    "parse_dates",
    "parse_month",
    "parse_numbers",
]

DATE_MIN_YEAR = 1950
DATE_MAX_YEAR = 2100
EXCEL_EPOCH = date(1899, 12, 30)
EXCEL_SERIAL_RANGE = (20000.0, 80000.0)

#: Text placeholders survey tables use for "no value".
PLACEHOLDERS = frozenset(
    {"", "-", "--", "---", "—", "——", "/", "\\", "无", "空", "null", "none", "nan", "n/a", "na"}
)

# RE2 patterns (run by Arrow), applied after NFKC, lower-casing and trimming; full-match implied.
_NUMBER = (
    r"(?:约|大约|约合|近|~|≈)?\s*"
    r"(?P<num>[+-]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d*)?(?:e[+-]?\d+)?|[+-]?\.\d+(?:e[+-]?\d+)?)"
    r"\s*(?:余|多)?\s*"
    r"(?:m2|m\^2|sqm|sq\.?m|平方米|平方|平米|米|m|个|处|辆|座|间|层|口|位)?"
    r"\s*(?:左右)?"
)
_DATE = (
    r"(?P<y>\d{4})\s*(?:[-/.]|年)\s*(?P<m>\d{1,2})\s*"
    r"(?:(?:[-/.]|月)\s*(?P<d>\d{1,2})\s*[日号]?|月)?"
    r"(?:(?:\s+|t)\s*\d{1,2}\s*[:时]\s*\d{1,2}(?:\s*[:分]\s*\d{1,2}(?:\.\d+)?\s*秒?)?"
    r"\s*(?:z|[+-]\d{2}:?\d{2})?)?"
)
_DATE_COMPACT = r"(?P<y>\d{4})(?P<m>\d{2})(?P<d>\d{2})"
_SERIAL = r"(?P<num>\d{5}(?:\.\d*)?)"

# --------------------------------------------------------------------------- dispatch by kind of value

_EMPTY = object()
_BAD = object()

Batch = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


def _kinds(values: np.ndarray, missing: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Masks of the values that are ``str`` and that are real numbers (bools excluded)."""
    none = np.zeros(len(values), dtype=bool)
    kind = pd.api.types.infer_dtype(values, skipna=True)
    if kind == "string":
        return ~missing, none
    if kind in ("integer", "floating", "mixed-integer-float", "decimal"):
        return none, ~missing
    if kind in ("datetime", "date", "datetime64", "boolean", "empty"):
        return none, none
    types = [type(v) for v in values]
    label = {t: _kind_of_type(t) for t in set(types)}
    codes = np.fromiter((label[t] for t in types), dtype=np.int8, count=len(types))
    return codes == 1, codes == 2


def _kind_of_type(t: type) -> int:
    if issubclass(t, str):
        return 1
    if issubclass(t, numbers.Real | Decimal) and not issubclass(t, bool | np.bool_):
        return 2
    return 0


def _dispatch(
    s: pd.Series, *, text: Batch, number: Batch, other: Batch, fill: object, dtype: str
) -> tuple[np.ndarray, np.ndarray]:
    """Route the non-missing values of ``s`` to the parser for their kind.

    ``text`` gets the *distinct* strings, ``number`` the numbers and ``other``
    everything else (datetimes, bools ...), each as an object array; each
    returns ``(results, bad)`` arrays.  Missing values get ``fill`` and are not
    bad.  Strings are parsed once per distinct value because survey columns
    repeat a lot.
    """
    values = s.to_numpy(dtype=object, copy=True)
    n = len(values)
    out = np.full(n, fill, dtype=dtype)
    bad = np.zeros(n, dtype=bool)
    if n == 0:
        return out, bad
    missing = pd.isna(values)
    values[missing] = None
    is_str, is_num = _kinds(values, missing)
    if is_num.any():
        out[is_num], bad[is_num] = number(values[is_num])
    if is_str.any():
        codes, uniques = pd.factorize(values[is_str])
        res, res_bad = text(np.asarray(uniques, dtype=object))
        out[is_str], bad[is_str] = res[codes], res_bad[codes]
    rest = ~(missing | is_str | is_num)
    if rest.any():
        out[rest], bad[rest] = other(values[rest])
    return out, bad


def _per_value(parse: Callable[[object], object], empty: object = None) -> Batch:
    """A batch parser calling ``parse`` per value.

    ``parse`` returns a result, ``_EMPTY`` (result ``empty``, not bad) or ``_BAD``
    (result ``None``, bad).
    """

    def batch(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        parsed = [parse(v) for v in values]
        res = np.empty(len(parsed), dtype=object)
        res[:] = [empty if p is _EMPTY else None if p is _BAD else p for p in parsed]
        return res, np.fromiter((p is _BAD for p in parsed), dtype=bool, count=len(parsed))

    return batch


def _prepare_text(texts: np.ndarray) -> tuple[pa.Array, np.ndarray]:
    """NFKC, lower-case and trim strings in Arrow; also return the mask of blanks/placeholders."""
    arr = pa.array(texts, type=pa.string())
    arr = pc.utf8_lower(pc.utf8_normalize(arr, "NFKC"))
    arr = pc.utf8_trim_whitespace(pc.replace_substring(arr, "\u2212", "-"))
    blank = pc.is_in(arr, value_set=pa.array(sorted(PLACEHOLDERS), type=pa.string()))
    return arr, blank.to_numpy(zero_copy_only=False).astype(bool)


def _extract(arr: pa.Array, pattern: str) -> tuple[np.ndarray, pa.StructArray]:
    """Full-match ``pattern``; return the match mask and the struct of named groups."""
    ext = pc.extract_regex(arr, f"^(?:{pattern})$")
    return ext.is_valid().to_numpy(zero_copy_only=False).astype(bool), ext


def _group(ext: pa.StructArray, name: str, ok: np.ndarray) -> pa.Array:
    """Group ``name`` of the matched rows."""
    return pc.filter(ext.field(name), pa.array(ok))


def _group_int(ext: pa.StructArray, name: str, ok: np.ndarray, missing: int) -> np.ndarray:
    """Group ``name`` of the matched rows as int64; an unmatched optional group gives ``missing``."""
    g = _group(ext, name, ok)
    g = pc.if_else(pc.equal(g, ""), str(missing), g)
    return pc.cast(g, pa.int64()).to_numpy(zero_copy_only=False)


def _to_float(texts: pa.Array) -> np.ndarray:
    """Cast validated numeric strings (thousands commas allowed) to float64."""
    return pc.cast(pc.replace_substring(texts, ",", ""), pa.float64()).to_numpy(zero_copy_only=False)


# --------------------------------------------------------------------------- numbers


def _numbers_from_text(texts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    arr, blank = _prepare_text(texts)
    ok, ext = _extract(arr, _NUMBER)
    ok &= ~blank
    values = np.full(len(texts), np.nan)
    values[ok] = _to_float(_group(ext, "num", ok))
    inf = np.isinf(values)
    values[inf] = np.nan
    return values, (~ok & ~blank) | inf


def _numbers_from_numbers(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = values.astype("float64")
    inf = np.isinf(x)
    return np.where(inf, np.nan, x), inf


def _no_numbers(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.full(len(values), np.nan), np.ones(len(values), dtype=bool)


def parse_numbers(s: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Parse a column of survey numbers (areas, counts) to floats.

    Accepts numbers and text such as ``"12.5㎡"``, ``"12.5 m2"``, ``"12.5平方米"``,
    ``"1,250"`` (comma thousands separators, which must group by three),
    ``"１２５０"`` (full-width), ``" 3 "``, ``"约30"``, ``"200余处"``.  Units are
    dropped, not converted: the value is taken to be in the field's unit.
    Negative numbers are returned as they are.

    Parameters
    ----------
    s : pandas.Series
        Raw values of any dtype.

    Returns
    -------
    values : pandas.Series of float64
        Parsed numbers, NaN where empty or bad.  Same index as ``s``.
    bad : pandas.Series of bool
        True where a value was present but is not a number (``"三十"``,
        ``"abc"``, ``"1,25"``, infinity, booleans).  Empty strings, ``None``,
        NaN and placeholders like ``"-"``, ``"/"``, ``"无"`` are empty, not bad.
    """
    if pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype):
        values, bad = _numbers_from_numbers(s.to_numpy(dtype="float64", na_value=np.nan))
    else:
        values, bad = _dispatch(
            s,
            text=_numbers_from_text,
            number=_numbers_from_numbers,
            other=_no_numbers,
            fill=np.nan,
            dtype="float64",
        )
    return (
        pd.Series(values, index=s.index, name=s.name, dtype="float64"),
        pd.Series(bad, index=s.index, name=s.name, dtype=bool),
    )


# --------------------------------------------------------------------------- dates


def _iso_from_ymd(y: np.ndarray, m: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ISO strings for integer year/month/day arrays; invalid or out-of-range -> None and bad."""
    ok = (y >= DATE_MIN_YEAR) & (y <= DATE_MAX_YEAR) & (m >= 1) & (m <= 12) & (d >= 1)
    month = np.where(ok, (y - 1970) * 12 + (m - 1), 0).astype("datetime64[M]")
    days_in_month = ((month + 1).astype("datetime64[D]") - month.astype("datetime64[D]")).astype(int)
    ok &= d <= days_in_month
    day = month.astype("datetime64[D]") + np.where(ok, d - 1, 0).astype("timedelta64[D]")
    iso = np.datetime_as_string(day, unit="D").astype(object)
    iso[~ok] = None
    return iso, ~ok


def _iso_from_days(days: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ISO strings for ``datetime64[D]`` values; NaT -> None (not bad)."""
    nat = np.isnat(days)
    years = days.astype("datetime64[Y]").astype("int64") + 1970
    bad = ~nat & ((years < DATE_MIN_YEAR) | (years > DATE_MAX_YEAR))
    iso = np.datetime_as_string(days, unit="D").astype(object)
    iso[nat | bad] = None
    return iso, bad


def _dates_from_numbers(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Excel serials (20000-80000) and ``YYYYMMDD`` integers; NaN -> None (not bad)."""
    lo, hi = EXCEL_SERIAL_RANGE
    serial = (x >= lo) & (x <= hi)
    compact = ~serial & (x >= 10_000_000) & (x <= 99_999_999) & (np.mod(x, 1) == 0)
    iso = np.full(len(x), None, dtype=object)
    bad = ~np.isnan(x) & ~serial & ~compact
    if serial.any():
        days = np.datetime64(EXCEL_EPOCH, "D") + np.floor(x[serial]).astype("int64").astype("timedelta64[D]")
        iso[serial], bad[serial] = _iso_from_days(days)
    if compact.any():
        n = x[compact].astype("int64")
        iso[compact], bad[compact] = _iso_from_ymd(n // 10000, n // 100 % 100, n % 100)
    return iso, bad


def _dates_from_text(texts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    arr, blank = _prepare_text(texts)
    iso = np.full(len(texts), None, dtype=object)
    bad = ~blank
    todo = ~blank
    for pattern in (_DATE, _DATE_COMPACT):
        ok, ext = _extract(arr, pattern)
        ok &= todo
        if ok.any():
            y, m, d = (_group_int(ext, g, ok, 1) for g in ("y", "m", "d"))
            iso[ok], bad[ok] = _iso_from_ymd(y, m, d)
            todo &= ~ok
    ok, ext = _extract(arr, _SERIAL)
    ok &= todo
    if ok.any():
        iso[ok], bad[ok] = _dates_from_numbers(_to_float(_group(ext, "num", ok)))
    return iso, bad


_UNIX_ORDINAL = date(1970, 1, 1).toordinal()


def _ordinal(v: object) -> int:
    """Proleptic Gregorian ordinal of a date-like value (its wall-clock date); 0 if not date-like."""
    if isinstance(v, np.datetime64):
        v = pd.Timestamp(v)
    return v.toordinal() if isinstance(v, date) else 0


def _dates_from_objects(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Datetime-like objects (``datetime``, ``date``, ``Timestamp``, ``datetime64``); others are bad."""
    try:
        ordinals = np.fromiter((v.toordinal() for v in values), dtype=np.int64, count=len(values))
    except AttributeError:
        ordinals = np.fromiter((_ordinal(v) for v in values), dtype=np.int64, count=len(values))
    ok = ordinals > 0
    days = (ordinals - _UNIX_ORDINAL).astype("timedelta64[D]") + np.datetime64("1970-01-01", "D")
    iso, bad = _iso_from_days(np.where(ok, days, np.datetime64("NaT", "D")))
    return iso, bad | ~ok


def parse_dates(s: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Parse a column of survey dates to ISO ``YYYY-MM-DD`` strings.

    Accepts ``datetime``/``date``/``Timestamp`` values and datetime64 columns
    (what pyogrio returns for DBF and GeoPackage dates), and text such as
    ``"2022-05-25"``, ``"2022/5/25"``, ``"2022.5.25"``, ``"2022年5月25日"``,
    ``"20220525"``, ``"2022-05-25 13:45:00"``; a month without a day
    (``"2022年05月"``, ``"2022-05"``) gives the first day of the month.  Excel
    serial day numbers from 20000 to 80000 (1954-10-03 to 2119-01-10; numbers
    or numeric text, epoch 1899-12-30, the fraction is the time of day) and
    ``YYYYMMDD`` integers are converted.  Times and time zones are dropped:
    the date is the one written.

    Parameters
    ----------
    s : pandas.Series
        Raw values of any dtype.

    Returns
    -------
    values : pandas.Series of object
        ISO date strings, ``None`` where empty or bad.  Same index as ``s``.
    bad : pandas.Series of bool
        True where a value was present but is not a valid date (``"2022-13-45"``,
        ``"昨天"``, other numbers) or its year lies outside 1950–2100.
    """
    if pd.api.types.is_datetime64_any_dtype(s.dtype):
        dt = s.dt.tz_localize(None) if getattr(s.dt, "tz", None) is not None else s
        iso, bad = _iso_from_days(dt.to_numpy(dtype="datetime64[s]").astype("datetime64[D]"))
    elif pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype):
        iso, bad = _dates_from_numbers(s.to_numpy(dtype="float64", na_value=np.nan))
    else:
        iso, bad = _dispatch(
            s,
            text=_dates_from_text,
            number=lambda v: _dates_from_numbers(v.astype("float64")),
            other=_dates_from_objects,
            fill=None,
            dtype="object",
        )
    return (
        pd.Series(iso, index=s.index, name=s.name, dtype=object),
        pd.Series(bad, index=s.index, name=s.name, dtype=bool),
    )


#: Longest date text looked at; anything longer is not a date.
_DATE_TEXT_MAX = 64


def parse_date(value: object) -> date | None:
    """One date given by a person (``--as-of``, ``?as_of=``), in any form :func:`parse_dates` reads.

    ``"2022-05-25"``, ``"20220525"``, ``"2022年5月25日"``, ``"2022/5/25"``, ``" 2022-05-25 "``,
    a ``date`` or ``datetime``; ``"2022-05"`` is the first of the month.  Every caller parses
    once and passes the ``date`` on, so pages, exports and file names all show the ISO form.

    Parameters
    ----------
    value : str, date or None
        The date as given.

    Returns
    -------
    datetime.date or None
        None for ``None`` and blank text.

    Raises
    ------
    InputError
        ``code="bad_date"``: not a date, or its year outside 1950–2100.
    """
    if value is None:
        return None
    if isinstance(value, datetime):
        value = value.date()
    if isinstance(value, date):
        if not DATE_MIN_YEAR <= value.year <= DATE_MAX_YEAR:
            raise _bad_date(value.isoformat())
        return value
    text = str(value)
    if not text.strip():
        return None
    if len(text) > _DATE_TEXT_MAX or UNSAFE_RE.search(text):
        raise _bad_date(text)
    parsed, bad = parse_dates(pd.Series([text.strip()], dtype=object))
    iso = parsed.iloc[0]
    if bool(bad.iloc[0]) or not isinstance(iso, str):
        raise _bad_date(text)
    return date.fromisoformat(iso)


def parse_month(value: object) -> str | None:
    """A month given by a person (``2022-05``, ``2022年5月``, or any day of it) as ``"YYYY-MM"``.

    Raises
    ------
    InputError
        ``code="bad_date"``.
    """
    day = parse_date(value)
    return None if day is None else f"{day.year:04d}-{day.month:02d}"


def _bad_date(text: str) -> InputError:
    shown = safe_display_name(text)[:_DATE_TEXT_MAX]
    return InputError(
        f"日期无效：{shown}（应为 2022-05-25、20220525 或 2022年5月25日 等，年份 {DATE_MIN_YEAR}–{DATE_MAX_YEAR}）",
        f"invalid date: {shown} (give e.g. 2022-05-25, 20220525 or 2022年5月25日, "
        f"years {DATE_MIN_YEAR}–{DATE_MAX_YEAR})",
        code="bad_date",
    )


# --------------------------------------------------------------------------- text


def _clean_str(v: object) -> object:
    t = unicodedata.normalize("NFC", strip_controls(str(v))).strip().strip("\ufeff\u200b").strip()
    return t if t else _EMPTY


_TRIM = " \t\r\n\u3000\ufeff\u200b\xa0"


def _clean_strings(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_clean_str` for many distinct strings at once, in Arrow."""
    texts = values.tolist()
    try:
        arr = pa.array(texts, type=pa.string())
    except (UnicodeEncodeError, pa.ArrowInvalid):  # lone surrogates cannot be UTF-8
        arr = pa.array([strip_controls(t) for t in texts], type=pa.string())
    arr = pc.replace_substring_regex(arr, CONTROL_RE2, "")
    arr = pc.utf8_trim(pc.utf8_normalize(arr, "NFC"), _TRIM)
    res = np.asarray(arr.to_numpy(zero_copy_only=False), dtype=object)
    res[pc.equal(arr, "").to_numpy(zero_copy_only=False)] = None
    return res, np.zeros(len(res), dtype=bool)


def _clean_number(v: object) -> object:
    if isinstance(v, float | np.floating):
        x = float(v)
        if math.isnan(x):
            return _EMPTY
        return str(int(x)) if x.is_integer() else repr(x)
    if isinstance(v, numbers.Integral):
        return str(int(v))
    return str(v)


def _clean_other(v: object) -> object:
    if isinstance(v, datetime | date):
        return v.isoformat()
    if isinstance(v, bool | np.bool_):
        return str(bool(v))
    return _clean_str(v)


def clean_text(s: pd.Series) -> pd.Series:
    """Clean a text column (ids, names, addresses).

    Strips surrounding whitespace (including full-width spaces), removes NUL and
    the other control characters (:func:`strip_controls`: a value never carries
    them, an id with a NUL in it would look equal to one without), applies
    Unicode NFC, turns empty strings into ``None``, and writes numbers read
    as floats without a spurious fraction (``123.0`` -> ``"123"``, as Excel
    and DBF give numeric ids).

    Parameters
    ----------
    s : pandas.Series
        Raw values.

    Returns
    -------
    pandas.Series of object
        ``str`` values or ``None``; same index as ``s``.
    """
    out, _ = _dispatch(
        s,
        text=_clean_strings,
        number=_per_value(_clean_number),
        other=_per_value(_clean_other),
        fill=None,
        dtype="object",
    )
    return pd.Series(out, index=s.index, name=s.name, dtype=object)
