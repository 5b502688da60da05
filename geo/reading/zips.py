"""Zip archives handed in by surveyors, unpacked safely: entry names as their authors wrote
them (UTF-8 or GBK, with or without the UTF-8 flag — :func:`zip_member_name`), no entry
outside the target (zip slip), and one budget of bytes, files, compression ratio and nesting
per upload (:class:`ZipLimits`), shared by nested zips and by zips read in memory
(``.xlsx``, ``.kmz`` — :func:`check_packed`)."""

from __future__ import annotations

import errno
import stat
import struct
import zipfile
import zlib
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from geo.errors import DISK_FULL_ERRNOS, InputError, TooLarge, disk_full
from geo.reading.charsets import FIT_SHARE, fit_share, utf8_reads_as_text

__all__ = ["ZipLimits", "check_packed", "unzip", "zip_member_name"]

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
    路 is UTF-8 ·), as in :func:`geo.reading.encoding.detect_dbf_encoding`.

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
        gb is None or utf8_reads_as_text([utf8]) or fit_share([gb], "gb18030") < FIT_SHARE
    ):
        return utf8
    if gb is not None:
        return gb
    return name


@dataclass(frozen=True)
class ZipLimits:
    """Caps for unpacking uploads (zip bombs, zip slip, file floods)."""

    max_total_bytes: int = 2 * 1024**3
    max_ratio: float = 200.0
    max_files: int = 2000
    max_depth: int = 2


@dataclass
class _Budget:
    """What is left of the caps for one upload.  Archives inside an archive spend the same
    budget, so nesting cannot multiply the caps."""

    bytes: int
    files: int


#: Compression methods :mod:`zipfile` can read.
_ZIP_METHODS = frozenset({zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA})

#: OS errors of a member that cannot be unpacked as named: a name used both as a file and as a
#: folder, or a name too long for the file system.
_BAD_NAME_ERRNOS = frozenset({errno.EEXIST, errno.ENOTDIR, errno.EISDIR, errno.ENAMETOOLONG})


def unzip(
    archive: Path, target: Path, limits: ZipLimits, skipped: list[str], allowed: Collection[str]
) -> None:
    """Unpack ``archive`` into ``target`` within ``limits``.

    Parameters
    ----------
    archive : Path
        The zip.
    target : Path
        Directory to unpack into; nested zips are unpacked beside themselves and removed.
    limits : ZipLimits
        Caps on bytes, files, ratio and nesting, one budget for the whole archive.
    skipped : list of str
        Entries whose suffix is not in ``allowed`` are appended here, never written.
    allowed : collection of str
        Lower-case suffixes (``".shp"``, ``".zip"`` …) that are unpacked.

    Raises
    ------
    InputError
        A damaged or encrypted archive, an unsafe path, a member that cannot be unpacked as
        named.
    TooLarge
        Beyond ``limits``.
    """
    try:
        budget = _Budget(limits.max_total_bytes, limits.max_files)
        _safe_unzip(archive, target, limits, 1, skipped, budget, frozenset(allowed))
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as exc:
        # a bad CRC, bad compressed data, a member cut short, a zip feature zipfile cannot read
        raise _damaged_zip(exc) from exc
    except OSError as exc:
        if exc.errno == errno.EINVAL and exc.filename is None:  # a seek before the start of the zip
            raise _damaged_zip(exc) from exc
        if exc.errno not in _BAD_NAME_ERRNOS:
            raise
        where = str(exc.filename or "")
        member = where[len(str(target)) + 1 :] if where.startswith(str(target)) else Path(where).name
        raise InputError(
            f"压缩包中的文件无法按原名解压（重名或文件名过长）: {member}",
            f"a file in the zip cannot be unpacked under its name (clashing or too long): {member}",
            code="zip_bad_name",
        ) from exc


def _damaged_zip(exc: Exception) -> InputError:
    return InputError(
        "zip 文件已损坏或使用了无法读取的压缩功能，请用标准 zip 重新打包后上传",
        f"the zip file is damaged or uses a feature that cannot be read ({_reason(exc)}): re-pack it as a "
        "standard zip",
        code="bad_zip",
    )


def _reason(exc: BaseException) -> str:
    """What went wrong, without the file's path on the server (an OSError's text names it)."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    text = str(exc)
    return type(exc).__name__ if "/" in text else text


#: Bytes of central directory allowed per member (a 46-byte record, its name and extras).
_CENTRAL_BYTES_PER_FILE = 1024


def _check_directory(archive: Path, files_left: int, limits: ZipLimits) -> None:
    """Refuse a zip whose central directory declares more members, or more bytes of them, than
    the caps allow, before :mod:`zipfile` builds an entry for each (millions of one-byte
    names take gigabytes)."""
    size = archive.stat().st_size
    with open(archive, "rb") as fh:
        fh.seek(max(0, size - 65557))
        tail = fh.read()
        at = tail.rfind(b"PK\x05\x06")
        if at < 0 or len(tail) - at < 22:
            return  # no end record: zipfile reports the damage
        entries, directory = struct.unpack_from("<HI", tail, at + 10)
        if (
            (entries == 0xFFFF or directory == 0xFFFFFFFF)
            and at >= 20
            and tail[at - 20 : at - 16] == b"PK\x06\x07"
        ):
            (record,) = struct.unpack_from("<Q", tail, at - 20 + 8)
            fh.seek(record)
            head = fh.read(56)
            if len(head) == 56 and head[:4] == b"PK\x06\x06":
                entries, directory = struct.unpack_from("<QQ", head, 32)
    if entries > files_left or directory > limits.max_files * _CENTRAL_BYTES_PER_FILE:
        seen = limits.max_files - files_left + entries  # with those of enclosing zips
        raise TooLarge(
            f"压缩包内文件过多（{seen} 个，上限 {limits.max_files}）",
            f"too many files in the zip ({seen}, limit {limits.max_files})",
            code="zip_too_many_files",
        )


def _check_members(infos: list[zipfile.ZipInfo]) -> None:
    """Refuse encrypted members and compression methods that cannot be read."""
    for info in infos:
        if info.is_dir():
            continue
        name = zip_member_name(info)
        if info.flag_bits & 0x1:
            raise InputError(
                f"压缩包已加密，请解密后再上传: {name}",
                f"the zip is encrypted: upload it without a password ({name})",
                code="zip_encrypted",
            )
        if info.compress_type not in _ZIP_METHODS:
            raise InputError(
                f"压缩包使用了不支持的压缩方式（{info.compress_type}），请用标准 zip 重新打包: {name}",
                f"the zip uses an unsupported compression method ({info.compress_type}): re-pack it "
                f"as a standard zip ({name})",
                code="zip_unsupported_method",
            )


def check_packed(path: Path, name: str, limits: ZipLimits) -> None:
    """An ``.xlsx`` or ``.kmz`` is a zip its reader unpacks in memory: refuse one that would
    expand beyond ``limits``.  (Python's zipfile, and so openpyxl, never yields more than
    a member's declared size.)

    Parameters
    ----------
    path : Path
        The file.
    name : str
        Its name as the user knows it, for messages.
    limits : ZipLimits

    Raises
    ------
    InputError, TooLarge
    """
    _check_directory(path, limits.max_files, limits)
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, OSError) as exc:
        raise InputError(
            f"文件已损坏或无法读取: {name}", f"damaged or unreadable: {name} ({_reason(exc)})"
        ) from exc
    total = sum(i.file_size for i in infos)
    packed = max(1, sum(i.compress_size for i in infos))
    if len(infos) > limits.max_files or total > limits.max_total_bytes or total / packed > limits.max_ratio:
        raise TooLarge(
            f"{name} 解压后过大，疑似压缩炸弹，已拒绝",
            f"{name} expands to {total} bytes (ratio {total / packed:.0f}): refused as a possible zip bomb",
            code="zip_bomb",
        )


def _safe_unzip(
    archive: Path,
    target: Path,
    limits: ZipLimits,
    depth: int,
    skipped: list[str],
    budget: _Budget,
    allowed: frozenset[str],
) -> None:
    if depth > limits.max_depth:
        raise InputError("压缩包嵌套层数过多", "zip nested too deeply", code="zip_too_deep")
    _check_directory(archive, budget.files, limits)
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as exc:
        raise InputError(
            "zip 文件已损坏或无法读取",
            f"the zip file is damaged or unreadable ({_reason(exc)})",
            code="bad_zip",
        ) from exc
    with zf:
        infos = zf.infolist()
        if len(infos) > budget.files:
            seen = limits.max_files - budget.files + len(infos)  # with those of enclosing zips
            raise TooLarge(
                f"压缩包内文件过多（{seen} 个，上限 {limits.max_files}）",
                f"too many files in the zip ({seen}, limit {limits.max_files})",
                code="zip_too_many_files",
            )
        total = sum(i.file_size for i in infos)
        packed = max(1, sum(i.compress_size for i in infos))
        if total > budget.bytes or total / packed > limits.max_ratio:
            expands = limits.max_total_bytes - budget.bytes + total
            raise TooLarge(
                "压缩包解压后过大，疑似压缩炸弹，已拒绝",
                f"the zip expands to {expands} bytes (ratio {total / packed:.0f}): refused as a possible zip bomb",
                code="zip_bomb",
            )
        # zipfile never yields more than a member's declared size (more fails its CRC check),
        # so the declared sizes bound what is written
        budget.bytes -= total
        budget.files -= len(infos)
        _check_members(infos)
        target.mkdir(parents=True, exist_ok=True)
        written = 0
        for info in infos:
            name = zip_member_name(info)
            pure = PurePosixPath(name.replace("\\", "/"))
            if (
                name.startswith(("/", "\\"))
                or pure.is_absolute()
                or ".." in pure.parts
                or (pure.parts and ":" in pure.parts[0])
            ):
                raise InputError(
                    f"压缩包含有不安全的路径: {name}", f"unsafe path in zip: {name}", code="zip_unsafe_path"
                )
            if info.is_dir() or stat.S_ISLNK(info.external_attr >> 16):
                continue
            if pure.name.startswith(".") or "__MACOSX" in pure.parts:
                continue
            suffix = pure.suffix.lower()
            if suffix not in allowed:
                skipped.append(name)
                continue
            dest = target.joinpath(*pure.parts)
            try:
                dest.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(dest, "wb") as out:
                    while True:
                        chunk = src.read(1 << 20)
                        if not chunk:
                            break
                        written += len(chunk)
                        if written > limits.max_total_bytes:
                            raise TooLarge(
                                "压缩包解压后过大", "the zip expands beyond the size limit", code="zip_bomb"
                            )
                        out.write(chunk)
            except OSError as exc:
                if exc.errno in DISK_FULL_ERRNOS:  # the scratch directory is full
                    raise disk_full() from exc
                raise
            if suffix == ".zip":
                inner = dest.with_suffix("")
                inner = inner.parent / (inner.name + "_zip")
                _safe_unzip(dest, inner, limits, depth + 1, skipped, budget, allowed)
                dest.unlink()
