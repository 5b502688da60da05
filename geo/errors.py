"""Errors a user can cause, each with an HTTP status and a bilingual message.

The engine raises these; the web layer and the CLI turn them into a response or
a one-line message with a non-zero exit.  Nothing here knows about Flask.
"""

from __future__ import annotations

from typing import Any


class GridwatchError(Exception):
    """Base class: a problem with the user's input or request.

    Parameters
    ----------
    zh, en : str
        The message in Simplified Chinese and in English.
    code : str, optional
        Machine-readable error code (``"bad_crs"``, ``"not_found"`` ...).
    details : dict, optional
        Extra JSON-serialisable context (row numbers, candidates ...).
    """

    status: int = 400
    code: str = "bad_request"

    def __init__(self, zh: str, en: str, *, code: str | None = None, details: dict[str, Any] | None = None):
        super().__init__(f"{zh} / {en}")
        self.zh = zh
        self.en = en
        if code is not None:
            self.code = code
        self.details = details or {}

    @property
    def message(self) -> str:
        return f"{self.zh} / {self.en}"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "error": self.code,
            "message": self.message,
            "message_zh": self.zh,
            "message_en": self.en,
        }
        if self.details:
            out["details"] = self.details
        return out


class InputError(GridwatchError):
    """The file or value given cannot be used (422-style, reported as 400)."""

    status = 400
    code = "bad_input"


class UnsupportedFile(InputError):
    status = 415
    code = "unsupported_file"


class EncodingError(InputError):
    code = "bad_encoding"


class CRSError(InputError):
    code = "bad_crs"


class NotFound(GridwatchError):
    status = 404
    code = "not_found"


class Conflict(GridwatchError):
    status = 409
    code = "conflict"


class TooLarge(GridwatchError):
    status = 413
    code = "too_large"


class StoreError(GridwatchError):
    """The store cannot be written (read-only, disk full, locked)."""

    status = 503
    code = "store_unavailable"
