"""Text encodings of shapefile attribute tables (DBF).

Chinese survey shapefiles often store GBK text without a ``.cpg`` file and with
a DBF language-driver byte (LDID) that does not say GBK; GDAL then decodes the
text as Latin-1 and silently returns mojibake such as ``"µØÖ·"`` (地址).  This
module decides the encoding from, in order: the user's override, the ``.cpg``
text, a trusted LDID, and finally evidence in the raw bytes of the character
fields.  It parses the DBF header itself and never decodes through GDAL.

Returned encodings are Python codec names that GDAL/iconv also understands
(``"gb18030"``, ``"utf-8"``, ``"big5"``, ``"cp1252"`` ...), so they can be passed
to ``pyogrio.read_dataframe(..., encoding=...)``; which names are accepted and how
decoded text is scored is :mod:`geo.reading.charsets`.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from geo.errors import EncodingError
from geo.reading.charsets import (
    FIT_SHARE,
    fit_share,
    looks_like_mojibake,
    normalize_encoding,
    shown_name,
    utf8_reads_as_text,
)
from geo.reading.dbf import DbfHeader, parse_header

__all__ = ["EncodingGuess", "decode_dbf_field_names", "detect_dbf_encoding"]

EncodingSource = Literal["override", "cpg", "ldid", "content"]

#: At most this many bytes of records are sampled for content evidence.
SAMPLE_BYTES = 512 * 1024

# LDID values GDAL maps to code page 936 (GBK).  Other values (0x00 none,
# 0x57 ANSI 1252, 0x01/0x03 DOS/Windows Latin ...) say nothing reliable about
# non-ASCII text in Chinese files.
_LDID_GBK = {0x4D, 0x7A}


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


def _utf8_evidence(values: list[bytes]) -> list[str] | None:
    """Decoded text when the bytes are strict multi-byte UTF-8 that reads as real text."""
    if all(v.isascii() for v in values):
        return None
    texts = _decode_all(values, "utf-8")
    if texts is None or not utf8_reads_as_text(texts):
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
    if encoding != "utf-8" and _utf8_evidence(values) is not None and fit_share(texts, encoding) < FIT_SHARE:
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
    gb_fits = gb is not None and fit_share(gb, "gb18030") >= FIT_SHARE
    utf8 = _decode_all(values, "utf-8")
    if utf8 is not None and (not gb_fits or utf8_reads_as_text(utf8)):
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
    if big5 is not None and fit_share(big5, "big5") >= FIT_SHARE:
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
            f"按用户指定的编码 {shown_name(override.strip())} 读取",
            f"reading with the encoding given by the user: {shown_name(override.strip())}",
        )
    header, values = _evidence(dbf)
    prefix_zh = prefix_en = ""

    cpg_text = shown_name((cpg or "").strip().lstrip("\ufeff").strip())
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
