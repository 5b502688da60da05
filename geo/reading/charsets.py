"""Text encodings: which ones survey files may be read with (:func:`normalize_encoding`),
how text looks when decoded with the right one or a wrong one (:func:`fit_share`,
:func:`utf8_reads_as_text`, :func:`looks_like_mojibake`), and the one way a CSV file's
text is decoded (:func:`decode_csv_text`).

Returned encodings are Python codec names that GDAL/iconv also understand
(``"gb18030"``, ``"utf-8"``, ``"big5"``, ``"cp1252"`` ...).  GBK, CP936 and GB2312 are
reported as ``"gb18030"``, their superset.
"""

from __future__ import annotations

import codecs
import re
import unicodedata
from collections.abc import Iterator
from functools import lru_cache

from geo.errors import EncodingError
from geo.reading.display import safe_display_name

__all__ = [
    "CSV_ENCODINGS",
    "FIT_SHARE",
    "TEXT_ENCODINGS",
    "decode_csv_text",
    "fit_share",
    "looks_like_mojibake",
    "normalize_encoding",
    "shown_name",
    "utf8_reads_as_text",
]

#: Share of "expected" characters a decoding needs to count as fitting.
FIT_SHARE = 0.8
#: At most this many non-ASCII characters are examined when scoring a decoding.
MAX_CHARS_EXAMINED = 50_000

# Code-page names seen in .cpg files and CLI input, normalised to a Python codec.
_CODEPAGES: dict[str, str] = {
    "utf8": "utf-8",
    "utf-8": "utf-8",
    "65001": "utf-8",
    "cp65001": "utf-8",
    "gbk": "gb18030",
    "936": "gb18030",
    "cp936": "gb18030",
    "ms936": "gb18030",
    "windows-936": "gb18030",
    "gb2312": "gb18030",
    "gb_2312-80": "gb18030",
    "euc-cn": "gb18030",
    "euccn": "gb18030",
    "gb18030": "gb18030",
    "gb-18030": "gb18030",
    "54936": "gb18030",
    "big5": "big5",
    "950": "big5",
    "cp950": "big5",
    "1252": "cp1252",
    "88591": "iso-8859-1",
    "8859-1": "iso-8859-1",
    "8859_1": "iso-8859-1",
    "iso-8859-1": "iso-8859-1",
    "iso8859-1": "iso-8859-1",
    "iso88591": "iso-8859-1",
    "latin1": "iso-8859-1",
    "latin-1": "iso-8859-1",
}


#: The text encodings a survey file may be read with, by the canonical name
#: :func:`codecs.lookup` gives them.  Everything else Python can look up — byte transforms
#: (``zlib``, ``hex``, ``base64``, ``uu_codec``, ``rot13``), escape decoders that turn ``\\x00``
#: into a NUL or a lone surrogate (``unicode_escape``, ``raw_unicode_escape``), ``idna`` and
#: ``punycode`` (host names), ``undefined``, ``utf-7`` (decodes plain-ASCII bytes such as
#: ``+ADw-`` into markup), ``mbcs`` (Windows only) — is refused.
TEXT_ENCODINGS = frozenset(
    {
        "utf-8",
        "utf-8-sig",
        "utf-16",
        "utf-16-le",
        "utf-16-be",
        "gb18030",
        "big5",
        "cp950",
        "big5hkscs",
        "iso8859-1",
        "cp1252",
        "ascii",
    }
)


_SHOWN = 40  # at most this many characters of a refused name are repeated in the message


def normalize_encoding(name: str) -> str:
    """Map a code-page or encoding name to a Python codec name, accepting only text encodings.

    The one gate for every encoding a person or a file names: ``--encoding``, the upload
    form's encoding and the text of a ``.cpg`` file.  The name is resolved through
    :func:`codecs.lookup` and its canonical name must be in :data:`TEXT_ENCODINGS`.

    Parameters
    ----------
    name : str
        e.g. ``"UTF-8"``, ``"GBK"``, ``"936"``, ``"CP936"``, ``"GB2312"``,
        ``"65001"``, ``"ANSI 936"``, ``"big5"``, ``"1252"``, ``"latin-1"``.

    Returns
    -------
    str
        ``"utf-8"``, ``"gb18030"`` (for GBK/CP936/GB2312/GB18030), ``"big5"``,
        ``"cp1252"``, ``"iso-8859-1"`` ... (a name Python and GDAL both know).

    Raises
    ------
    EncodingError
        Python knows no such codec (``unknown_encoding``), or it is not a text encoding a
        survey is written in (``not_text_encoding``).
    """
    raw = str(name).strip().lstrip("\ufeff").strip()
    shown = shown_name(raw)
    key = re.sub(r"\s+", " ", raw.lower())
    key = re.sub(r"^(ansi|oem|windows|codepage|cp)[ _-]?(\d+)$", r"\2", key)
    if key in _CODEPAGES:
        return _CODEPAGES[key]
    if key.isdigit():
        key = f"cp{key}"
    try:
        info = codecs.lookup(key) if key.isascii() and key.isprintable() else None
    except (LookupError, ValueError):
        info = None
    if info is None:
        raise EncodingError(
            f"未知的文字编码：{shown}",
            f"unknown text encoding: {shown}",
            code="unknown_encoding",
            details={"encoding": shown},
        )
    canonical = info.name
    if canonical in {"gbk", "gb2312", "cp936"}:
        return "gb18030"
    if canonical not in TEXT_ENCODINGS:
        raise EncodingError(
            f"“{shown}”不是可用的文字编码（可用 UTF-8、GBK/GB18030、Big5、UTF-16、Latin-1 等）",
            f"'{shown}' is not a text encoding surveys are read with "
            "(use UTF-8, GBK/GB18030, Big5, UTF-16, Latin-1 ...)",
            code="not_text_encoding",
            details={"encoding": shown},
        )
    if canonical == "iso8859-1":
        return "iso-8859-1"
    return canonical


def shown_name(text: str) -> str:
    """A name from a file or a form, safe to repeat in a message (at most 40 characters)."""
    shown = safe_display_name(text)
    return shown if len(shown) <= _SHOWN else shown[:_SHOWN] + "…"


def _is_cjk(ch: str) -> bool:
    """Han ideographs, CJK symbols and punctuation, full-width forms."""
    cp = ord(ch)
    if 0x20000 <= cp <= 0x3FFFF:
        # the supplementary ideographs are only partly assigned: GBK bytes such as 鸠建 (F0 AF BD
        # A8) are valid UTF-8 for an unassigned code point there, which is no text at all
        return unicodedata.category(ch) == "Lo"
    return (
        0x4E00 <= cp <= 0x9FFF
        or 0x3400 <= cp <= 0x4DBF
        or 0xF900 <= cp <= 0xFAFF
        or 0x3000 <= cp <= 0x303F
        or 0xFF00 <= cp <= 0xFFEF
    )


def _is_neutral(ch: str) -> bool:
    """Symbols common in Chinese text in any encoding (·, °, ×, —, “”, ①, Ⅱ, ㎡, ★ ...)."""
    cp = ord(ch)
    return (
        0x00A0 <= cp <= 0x00BF
        or cp in (0x00D7, 0x00F7)
        or 0x2000 <= cp <= 0x2BFF
        or 0x3200 <= cp <= 0x33FF
        or 0xFE30 <= cp <= 0xFE4F
    )


@lru_cache(maxsize=65536)
def _is_common_han(ch: str, encoding: str) -> bool:
    """CJK character from the main character set of ``encoding``.

    For GB18030 that is GB2312 (hanzi rows 0xB0-0xF7) plus CJK punctuation and
    full-width forms; for Big5 the frequent hanzi 0xA440-0xC67E.  Big5 bytes
    decoded as GBK give mostly kana, Cyrillic, private-use or GBK-extension
    characters, and UTF-8 bytes decoded as GBK mostly rare or traditional ones.
    """
    if not _is_cjk(ch):
        return False
    cp = ord(ch)
    if 0x3000 <= cp <= 0x303F or 0xFF00 <= cp <= 0xFFEF:
        return True
    try:
        if encoding == "gb18030":
            return ch.encode("gb2312")[0] >= 0xB0
        if encoding == "big5":
            raw = ch.encode("big5")
            return len(raw) == 2 and 0xA440 <= int.from_bytes(raw, "big") <= 0xC67E
        ch.encode(encoding)
    except UnicodeEncodeError:
        return False
    return True


def _non_ascii(texts: list[str]) -> Iterator[str]:
    """Non-ASCII characters of ``texts``, at most ``MAX_CHARS_EXAMINED`` of them."""
    seen = 0
    for text in texts:
        if text.isascii():
            continue
        for ch in text:
            if ord(ch) >= 0x80:
                yield ch
                seen += 1
                if seen >= MAX_CHARS_EXAMINED:
                    return


def fit_share(texts: list[str], encoding: str) -> float:
    """Share of non-ASCII, non-symbol characters that are common CJK for ``encoding``."""
    total = good = 0
    for ch in _non_ascii(texts):
        if _is_neutral(ch):
            continue
        total += 1
        if _is_common_han(ch, encoding):
            good += 1
    return good / total if total else 1.0


_IMPLAUSIBLE_CATEGORIES = frozenset({"Mn", "Me", "Cc", "Cf", "Co", "Cn", "Cs"})

# Pinyin letters with tone marks outside Latin-1 (Latin-1 letters count as plausible anyway).
_PINYIN_LETTERS = frozenset("āēěīōūǎǐǒǔǖǘǚǜńňǹĀĒĚĪŌŪǍǏǑǓǕǗǙǛŃŇǸ")


def utf8_reads_as_text(texts: list[str]) -> bool:
    """Whether strictly decoded UTF-8 looks like real text rather than GBK bytes
    that happen to form valid UTF-8.

    Such accidental UTF-8 gives controls, lone combining marks, private use and
    IPA/Greek/Cyrillic/Hebrew/Arabic characters (U+0250-U+07FF), or bare
    Latin-1 symbols (GBK 路 is UTF-8 ·) or rare Latin letters (GBK 磨 is UTF-8 ĥ).
    Real text has CJK with few such characters, or Latin-1 letters and pinyin
    tone marks without them.
    """
    total = bad = cjk = latin = 0
    for ch in _non_ascii(texts):
        total += 1
        cp = ord(ch)
        if _is_cjk(ch):
            cjk += 1
        elif unicodedata.category(ch) in _IMPLAUSIBLE_CATEGORIES or 0x0250 <= cp <= 0x07FF:
            bad += 1
        elif (0x00C0 <= cp <= 0x00FF and ch.isalpha()) or ch in _PINYIN_LETTERS:
            latin += 1
    if total == 0:
        return False
    if cjk:
        return bad / total <= 0.2
    return latin > 0 and bad == 0


# Characters cp1252 puts in 0x80-0x9F, seen when UTF-8 or GBK bytes are decoded as cp1252.
_CP1252_EXTRA = frozenset("€‚ƒ„…†‡ˆ‰Š‹ŒŽ‘’“”•–—˜™š›œžŸ")


def looks_like_mojibake(text: str) -> bool:
    """True for GBK or UTF-8 text wrongly decoded as Latin-1/cp1252.

    Examples: ``"µØÖ·"`` (地址 as GBK), ``"Ã¥Â°"`` (UTF-8).  Such text is made
    of characters U+0080-U+00FF (or cp1252 punctuation) in runs, with symbols
    like ``µ·¥°`` among them, and no CJK.  Ordinary accented words
    (``"Café"``, ``"Größe"``) and Chinese or ASCII text give False.

    Parameters
    ----------
    text : str
        A decoded string (field name or value).

    Returns
    -------
    bool
    """
    if not text:
        return False
    high = 0
    symbols = 0
    letters = 0
    run = longest_run = 0
    for ch in text:
        cp = ord(ch)
        if _is_cjk(ch) or 0x3040 <= cp <= 0x30FF or 0xAC00 <= cp <= 0xD7AF:
            return False
        is_high = 0x80 <= cp <= 0xFF or ch in _CP1252_EXTRA
        if is_high:
            high += 1
            letters += 1
            run += 1
            longest_run = max(longest_run, run)
            if cp <= 0xBF or cp in (0xD7, 0xF7) or ch in _CP1252_EXTRA:
                symbols += 1
        else:
            run = 0
            if ch.isalpha():
                letters += 1
    if high < 2 or letters == 0:
        return False
    return high / letters > 0.5 and longest_run >= 2 and (symbols >= 1 or longest_run >= 3)


#: The encodings a CSV file is tried in when none is given: UTF-8 (with or without the BOM
#: Excel and WPS write), then GB18030 (GBK, what Excel saves "CSV" as on Chinese Windows).
CSV_ENCODINGS = ("utf-8-sig", "gb18030")


def decode_csv_text(data: bytes, override: str | None = None) -> tuple[str, str] | None:
    """The text of a CSV file and the encoding it was read with.

    The one way CSV files are decoded, survey tables and value-map files alike: with the
    encoding given (passed through :func:`normalize_encoding`, so only a real text encoding
    is taken), else the first of :data:`CSV_ENCODINGS` that decodes every byte.

    Parameters
    ----------
    data : bytes
        The whole file.
    override : str, optional
        An encoding a person named (``--encoding``, the upload form).

    Returns
    -------
    (str, str) or None
        The text and the Python codec name used; None when no candidate decodes the bytes.

    Raises
    ------
    EncodingError
        ``override`` is not a text encoding.
    """
    candidates = [normalize_encoding(override)] if override else list(CSV_ENCODINGS)
    for enc in candidates:
        try:
            return data.decode(enc), enc
        except (UnicodeDecodeError, LookupError):
            continue
    return None
