"""Text that is stored or shown: control characters stripped from stored values
(:func:`strip_controls`), names that show as what they are (:func:`safe_display_name`), and
values escaped for a terminal (:func:`terminal_safe`)."""

from __future__ import annotations

import re
import unicodedata

__all__ = ["CONTROL_RE2", "UNSAFE_RE", "safe_display_name", "strip_controls", "terminal_safe"]

# Control characters never stored: C0 (NUL, ESC ...) but tab and line ends, DEL and C1.
_CONTROLS = "\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f"

_CONTROL_RE = re.compile(f"[{_CONTROLS}]")

# The same class for RE2 (Arrow), which takes \\x{..} escapes.
CONTROL_RE2 = r"[\x{0}-\x{8}\x{b}\x{c}\x{e}-\x{1f}\x{7f}-\x{9f}]"

_SURROGATE_RE = re.compile("[\ud800-\udfff]")

# Characters that change how the text around them is shown: bidirectional embeddings,
# overrides, isolates and marks, and the line and paragraph separators.
_BIDI = "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029"

# Everything that must not reach a person's screen as it is: all controls (tab and line ends
# too), lone surrogates and the bidi controls.
UNSAFE_RE = re.compile(f"[\x00-\x1f\x7f-\x9f\ud800-\udfff{_BIDI}]")


def strip_controls(text: str) -> str:
    """``text`` without NUL and the other control characters a survey value never holds.

    C0 controls other than tab, CR and LF, DEL and the C1 controls are removed; lone
    surrogates (what a lax decoder leaves for bytes it could not read) become U+FFFD.
    """
    if _SURROGATE_RE.search(text):
        text = _SURROGATE_RE.sub("\ufffd", text)
    return _CONTROL_RE.sub("", text)


def safe_display_name(text: str) -> str:
    """A name (an uploaded file's, a batch's) that shows as what it is.

    Control characters (C0, DEL, C1), lone surrogates and the bidirectional controls that can
    make ``报告\u202eslx.exe`` look like ``报告exe.xls`` are each replaced with U+FFFD (�),
    so a tampered name stays visibly tampered; NFC, outer white space trimmed.

    Parameters
    ----------
    text : str
        The name as given.

    Returns
    -------
    str
    """
    return unicodedata.normalize("NFC", UNSAFE_RE.sub("\ufffd", str(text))).strip()


def terminal_safe(text: str, keep: str = "\n") -> str:
    """``text`` for a terminal: controls and bidi characters written as escapes (``\\x1b``,
    ``\\u202e``), so a value cannot move the cursor, recolour or reorder what follows.

    Parameters
    ----------
    text : str
    keep : str
        Characters passed through as they are (by default the line end).
    """

    def escape(m: re.Match[str]) -> str:
        ch = m.group()
        if ch in keep:
            return ch
        cp = ord(ch)
        return f"\\x{cp:02x}" if cp < 0x100 else f"\\u{cp:04x}"

    return UNSAFE_RE.sub(escape, str(text))
