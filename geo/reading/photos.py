"""Photos users send: checked by their content, decoded and encoded again so that nothing but
pixels is kept.

A photo is accepted when its first bytes say JPEG, PNG or WebP (never by its name or the type
the client declares), it is no larger than :attr:`PhotoLimits.max_bytes` and the size its
header declares is no more than :attr:`PhotoLimits.max_pixels` -- checked before a pixel is
decoded, so a decompression bomb (a small file declaring a huge image) costs no memory; Pillow's
own guard (``Image.MAX_IMAGE_PIXELS``) is set to the same cap as a second line.  The pixels are
then decoded, turned upright by the EXIF orientation and written again as JPEG (WebP when the
image has transparency) with no EXIF, ICC profile, comment or trailing data, plus a thumbnail.
Of the EXIF only two things are kept, as plain values: when the photo was taken
(``DateTimeOriginal`` with ``OffsetTimeOriginal`` when present) and where (the GPS position as
WGS-84 lon/lat); a value that is not a valid date or position is left out, never passed on.

:func:`read_photo` does the work in a confined helper process (:mod:`geo.reading.untrusted`);
:func:`process_photo` is the same in this process.
"""

from __future__ import annotations

import hashlib
import io
import math
import re
import warnings
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from geo.errors import InputError, TooLarge
from geo.reading import untrusted

__all__ = [
    "Photo",
    "PhotoLimits",
    "exif_position",
    "exif_taken_at",
    "process_photo",
    "read_photo",
    "sniff",
]

#: the formats accepted, by their first bytes → (Pillow's format name, MIME type)
FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}


@dataclass(frozen=True)
class PhotoLimits:
    """What a photo may be.

    Parameters
    ----------
    max_bytes : int
        Size of the file sent (default 20 MB).
    max_pixels : int
        Width × height its header declares (default 50 megapixels).
    thumb_px : int
        The longer side of the thumbnail.
    quality : int
        JPEG/WebP quality of the stored image.
    """

    max_bytes: int = 20 * 1024 * 1024
    max_pixels: int = 50_000_000
    thumb_px: int = 320
    quality: int = 88


@dataclass
class Photo:
    """A photo as it is stored: the image and its thumbnail encoded again (pixels only), their
    format, size and the plain values read from its EXIF."""

    image: bytes
    thumb: bytes
    mime: str
    width: int
    height: int
    #: ``YYYY-MM-DDTHH:MM:SS`` with ``+HH:MM`` when the photo says its offset; None when unknown
    taken_at: str | None = None
    lon: float | None = None
    lat: float | None = None
    #: what was read but left out (zh / en), e.g. a GPS position out of range
    warnings: list[str] = field(default_factory=list)

    @property
    def sha256(self) -> str:
        """The hex SHA-256 of :attr:`image` (the stored file's name)."""
        return hashlib.sha256(self.image).hexdigest()

    @property
    def suffix(self) -> str:
        """The stored file's suffix: ``.jpg`` or ``.webp``."""
        return ".webp" if self.mime == "image/webp" else ".jpg"


def _not_image(code: str = "not_an_image") -> InputError:
    return InputError(
        "文件不是可识别的照片（仅接受 JPEG、PNG、WebP 图像）",
        "the file is not a photo gridwatch accepts (JPEG, PNG or WebP images only)",
        code=code,
    )


def sniff(head: bytes) -> str | None:
    """The format (``JPEG``, ``PNG``, ``WEBP``) the first bytes of a file say, else None."""
    if head[:3] == b"\xff\xd8\xff":
        return "JPEG"
    if head[:8] == b"\x89PNG\r\n\x1a\n":
        return "PNG"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    return None


def check_size(size: int, limits: PhotoLimits) -> None:
    """Refuse an empty file and one over :attr:`PhotoLimits.max_bytes`."""
    if size == 0:
        raise InputError("照片文件为空", "the photo file is empty", code="empty_file")
    if size > limits.max_bytes:
        mb = limits.max_bytes / 1024 / 1024
        raise TooLarge(
            f"照片文件过大（上限 {mb:.0f} MB）",
            f"the photo file is too large (at most {mb:.0f} MB)",
            code="photo_too_large",
        )


def read_photo(data: bytes, limits: PhotoLimits | None = None) -> Photo:
    """:func:`process_photo` in a confined helper process (the size and format checked here
    first, so a file that is refused never starts one)."""
    limits = limits or PhotoLimits()
    check_size(len(data), limits)
    if sniff(data[:16]) is None:
        raise _not_image()
    # room for the decoded pixels (4 bytes each), a converted copy and the encoders: libwebp
    # needs about 1.5 GB for 48 megapixels with transparency (measured; it fails at 1 GiB)
    memory = max(2 * 1024**3, limits.max_pixels * 40 + limits.max_bytes * 4)
    return untrusted.run(
        process_photo,
        data,
        limits,
        limits=untrusted.ReadLimits(memory_bytes=memory, cpu_seconds=60, wall_seconds=120.0),
    )


def process_photo(data: bytes, limits: PhotoLimits | None = None) -> Photo:
    """Check, decode and encode again the photo ``data`` (see the module docstring).

    Raises
    ------
    InputError
        Not a JPEG, PNG or WebP image by its content (``not_an_image``), empty
        (``empty_file``), damaged or truncated (``bad_image``).
    TooLarge
        Larger than the byte cap (``photo_too_large``) or declaring more pixels than the
        pixel cap (``too_many_pixels``).
    """
    from PIL import Image

    limits = limits or PhotoLimits()
    check_size(len(data), limits)
    fmt = sniff(data[:16])
    if fmt is None:
        raise _not_image()
    # Pillow's guard is process-wide: set for this photo only, and put back after it
    previous = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = limits.max_pixels
    try:
        return _process(data, fmt, limits)
    finally:
        Image.MAX_IMAGE_PIXELS = previous


def _process(data: bytes, fmt: str, limits: PhotoLimits) -> Photo:
    """:func:`process_photo` of ``data`` in format ``fmt``, Pillow's guard set."""
    from PIL import Image, ImageOps

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data), formats=[fmt])
            width, height = im.size
            _check_pixels(width, height, limits)
            if getattr(im, "n_frames", 1) > 1:
                im.seek(0)  # an animated WebP/PNG: its first frame
            exif = im.getexif()
            im.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise _too_many(limits) from None
    except TooLarge:
        raise
    except (OSError, SyntaxError, ValueError, EOFError, TypeError, IndexError, KeyError) as exc:
        if isinstance(exc, Image.UnidentifiedImageError):
            raise _not_image() from None
        raise InputError(
            "照片文件已损坏或不完整，无法读取",
            "the photo is damaged or incomplete and cannot be read",
            code="bad_image",
        ) from None
    taken_at, w1 = exif_taken_at(exif)
    (lon, lat), w2 = exif_position(exif)
    # one copy of the pixels at a time: turned, converted and shrunk in place where it can
    try:
        alpha = im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info)
        ImageOps.exif_transpose(im, in_place=True)
        pixels: Image.Image = im
        del im
        if pixels.mode in ("I;16", "I;16B", "I;16L", "I"):
            pixels = pixels.point(lambda v: v / 256).convert("L")
        target = "RGBA" if alpha else "RGB"
        clean = pixels if pixels.mode == target else pixels.convert(target)
        del pixels
    except (OSError, ValueError) as exc:
        raise InputError(
            "无法转换照片的颜色模式", "cannot convert the photo's colour mode", code="bad_image"
        ) from exc
    clean.info = {}  # no profile, comment, EXIF or other chunk goes on
    out_format = "WEBP" if alpha else "JPEG"
    width, height = clean.size
    image = _encode(clean, out_format, limits.quality)
    clean.thumbnail((limits.thumb_px, limits.thumb_px), Image.Resampling.LANCZOS)
    return Photo(
        image=image,
        thumb=_encode(clean, out_format, 80),
        mime=FORMATS[out_format],
        width=width,
        height=height,
        taken_at=taken_at,
        lon=lon,
        lat=lat,
        warnings=w1 + w2,
    )


def _check_pixels(width: int, height: int, limits: PhotoLimits) -> None:
    if width <= 0 or height <= 0:
        raise InputError("照片尺寸无效", "the photo declares no size", code="bad_image")
    if width * height > limits.max_pixels:
        raise _too_many(limits, width, height)


def _too_many(limits: PhotoLimits, width: int = 0, height: int = 0) -> TooLarge:
    mp = limits.max_pixels / 1_000_000
    size = f" ({width}×{height})" if width else ""
    return TooLarge(
        f"照片像素过多{size}，上限 {mp:g} 百万像素",
        f"the photo has too many pixels{size}: at most {mp:g} megapixels",
        code="too_many_pixels",
    )


def _encode(im: Any, fmt: str, quality: int) -> bytes:
    buf = io.BytesIO()
    if fmt == "JPEG":
        im.save(buf, "JPEG", quality=quality, optimize=True, exif=b"", icc_profile=None)
    else:
        im.save(buf, "WEBP", quality=quality, exif=b"", icc_profile="", xmp=b"")
    return buf.getvalue()


# EXIF ---------------------------------------------------------------------------------------
_EXIF_IFD = 0x8769
_GPS_IFD = 0x8825
_DATETIME_ORIGINAL = 36867
_OFFSET_TIME_ORIGINAL = 36881
_DATETIME = 306
_STAMP = re.compile(r"^(\d{4}):(\d{2}):(\d{2}) (\d{2}):(\d{2}):(\d{2})$")
_OFFSET = re.compile(r"^[+-](0\d|1[0-4]):[0-5]\d$")


def _text(value: Any) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    if not isinstance(value, str):
        return None
    return value.strip("\x00 ").strip()


def exif_taken_at(exif: Any) -> tuple[str | None, list[str]]:
    """When the photo was taken (``YYYY-MM-DDTHH:MM:SS``, ``+HH:MM`` added when the EXIF says
    the offset) from ``DateTimeOriginal`` (else ``DateTime``), and what was left out."""
    sub = exif.get_ifd(_EXIF_IFD) if exif else {}
    raw = _text(sub.get(_DATETIME_ORIGINAL)) or _text(exif.get(_DATETIME) if exif else None)
    if not raw:
        return None, []
    match = _STAMP.match(raw)
    try:
        if match is None:
            raise ValueError(raw)
        y, mo, d, h, mi, se = (int(g) for g in match.groups())
        moment = datetime(y, mo, d, h, mi, se)
    except ValueError:
        return None, ["EXIF 拍摄时间无效，已忽略 / the EXIF time is not a valid date and was left out"]
    if not 1990 <= moment.year <= 2100:
        return None, ["EXIF 拍摄时间不合理，已忽略 / the EXIF time is out of range and was left out"]
    out = moment.isoformat()
    offset = _text(sub.get(_OFFSET_TIME_ORIGINAL))
    if offset and _OFFSET.match(offset):
        out += offset
    return out, []


def _number(value: Any) -> float:
    out = float(value)
    if math.isnan(out) or math.isinf(out):
        raise ValueError(value)
    return out


def _degrees(parts: Any) -> float:
    if not isinstance(parts, tuple | list):
        return _number(parts)
    d, m, s = (_number(p) for p in tuple(parts)[:3])
    if d < 0 or not 0 <= m < 60 or not 0 <= s < 60:
        raise ValueError(parts)
    return d + m / 60 + s / 3600


def exif_position(exif: Any) -> tuple[tuple[float | None, float | None], list[str]]:
    """The GPS position (lon, lat in WGS-84 degrees) of the photo's EXIF and what was left out;
    (None, None) when it has none, or one out of range (0, 0 is taken as none: a camera
    without a fix writes it)."""
    gps = exif.get_ifd(_GPS_IFD) if exif else {}
    if not gps or 2 not in gps or 4 not in gps:
        return (None, None), []
    try:
        lat = _degrees(gps[2])
        lon = _degrees(gps[4])
        lat_ref = (_text(gps.get(1)) or "N").upper()
        lon_ref = (_text(gps.get(3)) or "E").upper()
        if lat_ref not in ("N", "S") or lon_ref not in ("E", "W"):
            raise ValueError((lat_ref, lon_ref))
        lat = -lat if lat_ref == "S" else lat
        lon = -lon if lon_ref == "W" else lon
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):
            raise ValueError((lon, lat))
    except (ValueError, TypeError, ZeroDivisionError, IndexError):
        return (None, None), ["EXIF 位置无效，已忽略 / the EXIF GPS position is not valid and was left out"]
    if lat == 0 and lon == 0:
        return (None, None), []
    return (round(lon, 7), round(lat, 7)), []
