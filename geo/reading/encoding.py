"""Text encodings of shapefile attribute tables (DBF) and zip entry names.

Chinese survey shapefiles often store GBK text without a ``.cpg`` file and with
a DBF language-driver byte (LDID) that does not say GBK; GDAL then decodes the
text as Latin-1 and silently returns mojibake such as ``"µØÖ·"`` (地址).  This
module decides the encoding from, in order: the user's override, the ``.cpg``
text, a trusted LDID, and finally evidence in the raw bytes of the character
fields.  It parses the DBF header itself and never decodes through GDAL.

Returned encodings are Python codec names that GDAL/iconv also understands
(``"gb18030"``, ``"utf-8"``, ``"big5"``, ``"cp1252"`` ...), so they can be passed
to ``pyogrio.read_dataframe(..., encoding=...)``.  GBK, CP936 and GB2312 are
reported as ``"gb18030"``, their superset.
"""

from __future__ import annotations

import codecs
import re
import struct
import unicodedata
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

from geo.errors import EncodingError
from geo.reading.dbf import DbfHeader, parse_header

__all__ = [
    "TEXT_ENCODINGS",
    "EncodingGuess",
    "decode_dbf_field_names",
    "detect_dbf_encoding",
    "looks_like_mojibake",
    "normalize_encoding",
    "zip_member_name",
]

EncodingSource = Literal["override", "cpg", "ldid", "content"]

#: At most this many bytes of records are sampled for content evidence.
SAMPLE_BYTES = 512 * 1024
#: Share of "expected" characters a decoding needs to count as fitting.
FIT_SHARE = 0.8
#: At most this many non-ASCII characters are examined when scoring a decoding.
MAX_CHARS_EXAMINED = 50_000

# LDID values GDAL maps to code page 936 (GBK).  Other values (0x00 none,
# 0x57 ANSI 1252, 0x01/0x03 DOS/Windows Latin ...) say nothing reliable about
# non-ASCII text in Chinese files.
_LDID_GBK = {0x4D, 0x7A}

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


@dataclass(frozen=True)
class EncodingGuess:
    """The text encoding of a DBF and where it came from.

    Parameters
    ----------
    encoding : str
        Python codec name (``"gb18030"``, ``"utf-8"``, ``"big5"``, ``"cp1252"`` ...).
    source : {"override", "cpg", "ldid", "content"}
        What decided it: the user's choice, the ``.cpg`` file, the DBF
        language-driver byte, or the raw bytes of the text fields.
    note_zh, note_en : str
        Explanation for the user, in Chinese and English.
    """

    encoding: str
    source: EncodingSource
    note_zh: str
    note_en: str


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
    shown = _shown(raw)
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


def _shown(text: str) -> str:
    """A name from a file or a form, safe to repeat in a message."""
    from geo.reading.display import safe_display_name

    shown = safe_display_name(text)
    return shown if len(shown) <= _SHOWN else shown[:_SHOWN] + "…"


# --------------------------------------------------------------------------- DBF parsing


def _read_dbf_bytes(dbf: bytes | Path, limit: int | None) -> bytes:
    """Header plus at most ``limit`` bytes of records (all of them when None)."""
    if isinstance(dbf, (bytes, bytearray, memoryview)):
        return bytes(dbf)
    path = Path(dbf)
    try:
        with path.open("rb") as fh:
            head = fh.read(32)
            if len(head) < 32:
                return head
            header_len = struct.unpack_from("<H", head, 8)[0]
            if limit is None:
                return head + fh.read()
            return head + fh.read(max(header_len - 32, 0) + limit)
    except OSError as exc:
        raise EncodingError(
            f"无法读取 DBF 文件：{path.name}",
            f"cannot read the DBF file: {path.name} ({exc.strerror or exc})",
        ) from exc


def _not_dbf(reason_en: str) -> EncodingError:
    return EncodingError("文件不是有效的 DBF 属性表", f"not a valid DBF attribute table: {reason_en}")


def _parse_header(data: bytes) -> DbfHeader:
    header = parse_header(data) if len(data) >= 33 else None
    if header is None:
        raise _not_dbf("file shorter than a DBF header")
    if header.header_len < 33 or header.record_len < 1:
        raise _not_dbf("header or record length is zero")
    if not header.fields:
        raise _not_dbf("no field descriptors")
    return header


def _iter_text_values(data: bytes, dbf: DbfHeader) -> Iterable[bytes]:
    """Raw bytes of the non-empty character-field values of the sampled, non-deleted records."""
    text_fields = [f for f in dbf.fields if f.type == "C" and f.length > 0]
    if not text_fields:
        return
    max_records = max(SAMPLE_BYTES // dbf.record_len, 1)
    n = min(dbf.n_records, max_records, max((len(data) - dbf.header_len) // dbf.record_len, 0))
    for i in range(n):
        start = dbf.header_len + i * dbf.record_len
        if data[start] == 0x2A:  # "*": deleted record
            continue
        for f in text_fields:
            value = data[start + f.offset : start + f.offset + f.length].rstrip(b" \x00")
            if value:
                yield value


# --------------------------------------------------------------------------- decoding evidence


_TRUNCATED_REASONS = ("unexpected end of data", "incomplete multibyte sequence")


def _decode(value: bytes, encoding: str) -> str | None:
    """Strictly decode ``value``; None when the bytes are invalid.

    An incomplete multi-byte sequence at the very end (text cut at the field
    width, e.g. a UTF-8 field name cut at 10 bytes) is dropped.
    """
    try:
        return value.decode(encoding)
    except UnicodeDecodeError as exc:
        if exc.end == len(value) and exc.start >= len(value) - 3 and exc.reason in _TRUNCATED_REASONS:
            try:
                return value[: exc.start].decode(encoding)
            except UnicodeDecodeError:
                return None
        return None


def _decode_all(values: list[bytes], encoding: str) -> list[str] | None:
    out: list[str] = []
    for v in values:
        text = _decode(v, encoding)
        if text is None:
            return None
        out.append(text)
    return out


def _is_cjk(ch: str) -> bool:
    """Han ideographs, CJK symbols and punctuation, full-width forms."""
    cp = ord(ch)
    return (
        0x4E00 <= cp <= 0x9FFF
        or 0x3400 <= cp <= 0x4DBF
        or 0xF900 <= cp <= 0xFAFF
        or 0x20000 <= cp <= 0x3FFFF
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


def _fit_share(texts: list[str], encoding: str) -> float:
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


def _utf8_reads_as_text(texts: list[str]) -> bool:
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


def _utf8_evidence(values: list[bytes]) -> list[str] | None:
    """Decoded text when the bytes are strict multi-byte UTF-8 that reads as real text."""
    if all(v.isascii() for v in values):
        return None
    texts = _decode_all(values, "utf-8")
    if texts is None or not _utf8_reads_as_text(texts):
        return None
    return texts


def _mostly_mojibake(texts: list[str]) -> bool:
    non_ascii = [t for t in texts if not t.isascii()][:1000]
    if not non_ascii:
        return False
    return sum(looks_like_mojibake(t) for t in non_ascii) * 2 >= len(non_ascii)


def _distrust(values: list[bytes], encoding: str) -> tuple[str, str] | None:
    """Why a declared encoding (.cpg or LDID) does not fit the bytes, or None if it fits."""
    texts = _decode_all(values, encoding)
    if texts is None:
        return ("属性表字节不是该编码的有效文本", "the attribute bytes are not valid text in that encoding")
    if encoding != "utf-8" and _utf8_evidence(values) is not None and _fit_share(texts, encoding) < FIT_SHARE:
        return (
            "属性表字节是有效的 UTF-8 文本，按该编码解码则是乱码",
            "the bytes are valid UTF-8 that this encoding garbles",
        )
    if _mostly_mojibake(texts):
        return ("按该编码解码得到乱码", "decoding with it gives mojibake")
    return None


def _content_guess(values: list[bytes], prefix_zh: str = "", prefix_en: str = "") -> EncodingGuess:
    if all(v.isascii() for v in values):
        return EncodingGuess(
            "utf-8",
            "content",
            f"{prefix_zh}属性表文字全部为 ASCII 字符，编码不影响读取",
            f"{prefix_en}all attribute text is ASCII, so the encoding does not matter",
        )
    gb = _decode_all(values, "gb18030")
    gb_fits = gb is not None and _fit_share(gb, "gb18030") >= FIT_SHARE
    utf8 = _decode_all(values, "utf-8")
    if utf8 is not None and (not gb_fits or _utf8_reads_as_text(utf8)):
        return EncodingGuess(
            "utf-8",
            "content",
            f"{prefix_zh}属性表文字是有效的 UTF-8 多字节编码，按 UTF-8 读取",
            f"{prefix_en}the attribute text is valid multi-byte UTF-8: reading it as UTF-8",
        )
    if gb_fits:
        return EncodingGuess(
            "gb18030",
            "content",
            f"{prefix_zh}属性表文字按 GBK/GB18030 解码为常用汉字，按 GB18030 读取",
            f"{prefix_en}the attribute text decodes as GBK/GB18030 into common Chinese characters: "
            "reading it as GB18030",
        )
    big5 = _decode_all(values, "big5")
    if big5 is not None and _fit_share(big5, "big5") >= FIT_SHARE:
        return EncodingGuess(
            "big5",
            "content",
            f"{prefix_zh}属性表文字按 Big5 解码为常用繁体汉字，按 Big5 读取",
            f"{prefix_en}the attribute text decodes as Big5 into common traditional Chinese characters: "
            "reading it as Big5",
        )
    raise EncodingError(
        f"{prefix_zh}无法识别 DBF 编码，请用 --encoding 指定（如 GBK 或 UTF-8）",
        f"{prefix_en}cannot tell the DBF text encoding, pass --encoding (e.g. GBK or UTF-8)",
        code="encoding_needed",
    )


def _evidence(dbf: bytes | Path) -> tuple[DbfHeader, list[bytes]]:
    data = _read_dbf_bytes(dbf, SAMPLE_BYTES)
    header = _parse_header(data)
    values = [f.name_raw for f in header.fields if f.name_raw]
    values.extend(_iter_text_values(data, header))
    return header, values


def detect_dbf_encoding(
    dbf: bytes | Path, cpg: str | None = None, override: str | None = None
) -> EncodingGuess:
    """Decide the text encoding of a shapefile's DBF.

    Order: ``override`` -> ``.cpg`` text -> LDID byte (header offset 29; only
    0x4D and 0x7A, code page 936, are trusted) -> evidence in the raw bytes of
    the field names and character fields (at most ``SAMPLE_BYTES`` of records):

    * all ASCII: ``"utf-8"`` (any ASCII-compatible encoding reads the same);
    * strict UTF-8 with multi-byte sequences: ``"utf-8"``;
    * GB18030 decoding into mostly common hanzi/CJK punctuation: ``"gb18030"``;
    * Big5 decoding into mostly common Big5 hanzi: ``"big5"``.

    A ``.cpg`` or LDID is not trusted when its encoding cannot decode the bytes
    (e.g. a ``.cpg`` saying UTF-8 over GBK text), when the bytes are valid UTF-8
    that it garbles, or when it yields mojibake; the note then says why.

    Parameters
    ----------
    dbf : bytes or Path
        Content of, or path to, the ``.dbf`` file.
    cpg : str, optional
        Text of the ``.cpg`` file (``"UTF-8"``, ``"GBK"``, ``"936"``, ``"ANSI 936"`` ...).
    override : str, optional
        Encoding chosen by the user (``--encoding``); wins over everything.

    Returns
    -------
    EncodingGuess

    Raises
    ------
    EncodingError
        Unknown override, not a DBF, or no encoding fits the bytes.
    """
    if override is not None and override.strip():
        enc = normalize_encoding(override)
        return EncodingGuess(
            enc,
            "override",
            f"按用户指定的编码 {_shown(override.strip())} 读取",
            f"reading with the encoding given by the user: {_shown(override.strip())}",
        )
    header, values = _evidence(dbf)
    prefix_zh = prefix_en = ""

    cpg_text = _shown((cpg or "").strip().lstrip("\ufeff").strip())
    if cpg_text:
        try:
            cpg_enc: str | None = normalize_encoding(cpg_text)
        except EncodingError:
            cpg_enc = None
            prefix_zh = f".cpg 文件中的编码“{cpg_text}”无法识别或不是文字编码，未采用；"
            prefix_en = f"the .cpg names an unknown or non-text encoding '{cpg_text}', so it is ignored; "
        if cpg_enc is not None:
            why = _distrust(values, cpg_enc)
            if why is None:
                return EncodingGuess(
                    cpg_enc,
                    "cpg",
                    f"按 .cpg 文件声明的编码 {cpg_text} 读取",
                    f"reading with the encoding declared in the .cpg file: {cpg_text}",
                )
            prefix_zh = f".cpg 文件声明为 {cpg_text}，但{why[0]}，未采用；"
            prefix_en = f"the .cpg says {cpg_text} but {why[1]}, so it is ignored; "

    if header.ldid in _LDID_GBK:
        why = _distrust(values, "gb18030")
        if why is None:
            return EncodingGuess(
                "gb18030",
                "ldid",
                f"{prefix_zh}DBF 语言驱动标识 0x{header.ldid:02X} 表示 GBK（代码页 936），按 GB18030 读取",
                f"{prefix_en}the DBF language driver id 0x{header.ldid:02X} means GBK (code page 936): "
                "reading as GB18030",
            )
        prefix_zh += f"DBF 语言驱动标识 0x{header.ldid:02X} 表示 GBK，但{why[0]}，未采用；"
        prefix_en += (
            f"the DBF language driver id 0x{header.ldid:02X} says GBK but {why[1]}, so it is ignored; "
        )
    return _content_guess(values, prefix_zh, prefix_en)


def decode_dbf_field_names(dbf: bytes | Path, encoding: str) -> list[str]:
    """Field names of a DBF decoded with ``encoding``.

    Names hold at most 10 bytes: 5 Chinese characters in GBK, 3 in UTF-8.  A
    multi-byte character cut at the 10-byte limit is dropped.

    Parameters
    ----------
    dbf : bytes or Path
        Content of, or path to, the ``.dbf`` file.
    encoding : str
        Encoding name (normalised by :func:`normalize_encoding`).

    Returns
    -------
    list of str
        Names in field order.

    Raises
    ------
    EncodingError
        Not a DBF, or a name is not valid in ``encoding``.
    """
    enc = normalize_encoding(encoding)
    data = _read_dbf_bytes(dbf, 0)
    header = _parse_header(data)
    names: list[str] = []
    for f in header.fields:
        name = _decode(f.name_raw, enc)
        if name is None:
            raise EncodingError(
                f"字段名不是有效的 {encoding} 文本：{f.name_raw!r}",
                f"a field name is not valid {encoding} text: {f.name_raw!r}",
                details={"field": f.name_raw.hex()},
            )
        names.append(name)
    return names


# --------------------------------------------------------------------------- zip names

_ZIP_UTF8_FLAG = 0x800
_ZIP_UNICODE_PATH_EXTRA = 0x7075


def _unicode_path_extra(extra: bytes, raw_name: bytes) -> str | None:
    """UTF-8 name from an Info-ZIP Unicode Path extra field, if present and current."""
    pos = 0
    while pos + 4 <= len(extra):
        tag, size = struct.unpack_from("<HH", extra, pos)
        body = extra[pos + 4 : pos + 4 + size]
        pos += 4 + size
        if tag != _ZIP_UNICODE_PATH_EXTRA or len(body) < 5 or body[0] != 1:
            continue
        crc = struct.unpack_from("<I", body, 1)[0]
        if crc != zlib.crc32(raw_name):
            continue
        try:
            return body[5:].decode("utf-8")
        except UnicodeDecodeError:
            return None
    return None


def _strict(raw: bytes, encoding: str) -> str | None:
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError:
        return None


def zip_member_name(info: zipfile.ZipInfo) -> str:
    """Real name of a zip entry.

    With the UTF-8 flag (bit 0x800) the name is already right.  Without it,
    Python decoded the raw bytes as CP437; they are re-encoded and decoded as
    UTF-8 (Info-ZIP Unicode Path field first, then the name itself) if valid,
    else as GB18030 (Chinese Windows zip tools), else kept as is.  Bytes valid
    in both go to GB18030 when their UTF-8 reading is not plausible text (GBK
    路 is UTF-8 ·), as in :func:`detect_dbf_encoding`.

    Parameters
    ----------
    info : zipfile.ZipInfo
        Entry from ``ZipFile.infolist()``.

    Returns
    -------
    str
        The entry name, e.g. ``"违建图斑/违建.shp"``.
    """
    name = info.filename
    if info.flag_bits & _ZIP_UTF8_FLAG:
        return name
    try:
        raw = name.encode("cp437")
    except UnicodeEncodeError:
        return name  # decoded with another metadata encoding already
    from_extra = _unicode_path_extra(info.extra or b"", raw)
    if from_extra is not None:
        return from_extra
    if raw.isascii():
        return name
    utf8 = _strict(raw, "utf-8")
    gb = _strict(raw, "gb18030")
    if utf8 is not None and (
        gb is None or _utf8_reads_as_text([utf8]) or _fit_share([gb], "gb18030") < FIT_SHARE
    ):
        return utf8
    if gb is not None:
        return gb
    return name


# --------------------------------------------------------------------------- mojibake

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
