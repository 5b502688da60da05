"""Answers that change only when the data changes: a strong ``ETag``, the rendered body kept.

``/api/stats`` of every unit is a few megabytes rendered from figures that change only with a
write.  :func:`respond` gives such an answer

* a strong ``ETag`` made from everything the body depends on (:func:`answer_state` and the
  request: path, query, language, time zone, the code serving it), identical in every worker
  and process on the same store;
* ``Cache-Control: private, no-cache`` (kept by the browser, asked again every time) and
  ``Vary: Accept-Encoding, Cookie`` (the language may come from a cookie);
* ``304 Not Modified`` with no body when ``If-None-Match`` names the current tag -- decided from
  the state alone, before anything is rendered;
* the body kept in the store's cache (:mod:`geo.store.cache`, region ``answers``: bounded in
  bytes, least recently used first out, one entry per query whose newer state drops the older),
  rendered once per state even when several threads ask at once, and gzip-compressed once too
  when the client accepts gzip (``Content-Encoding: gzip``; the compressed answer has a tag of
  its own, as a strong tag names one sequence of bytes).

What the tag is made of (:func:`answer_state`): the store revision (new with every write
transaction -- a commit, a rollback, a grid revision, targets), every layer's generation (the
grid's among them), the targets' generation, the value mappings kept (an audited change of them
is no write transaction), and today's date in the configured zone (an answer without ``as_of``
counts as of today and chooses the grid version in force today).  A body rendered while a write
landed is sent without a tag and not kept: a tag always names the state the body was made from.

Who asks is in the tag only as far as the answer depends on it: the scope of the account
(:func:`web.access.scope` -- the whole district, or the area's codes), so two accounts with
different areas never get each other's kept body or a 304 on the other's tag, while every
account that sees the whole district shares one.
"""

from __future__ import annotations

import hashlib
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flask import Response, request

import layers
from geo.store import clock
from geo.store.cache import MISSING
from web.access import scope
from web.context import select_locale

__all__ = ["Answer", "answer_state", "code_token", "respond"]

#: The name of the store cache's region that keeps the rendered answers.
REGION = "answers"

#: Bodies shorter than this are sent as they are (compressing them gains nothing worth the time).
GZIP_MIN_BYTES = 1024

#: zlib level of the compressed bodies: fast (one level-1 pass of the 28 MB default JSON of
#: 40,000 units takes about a tenth of a second and shrinks it about fifteen-fold).
GZIP_LEVEL = 1

#: Raised when the way answers are rendered changes without the code changing (kept in the tag).
FORMAT = "1"

_code_token: str | None = None


def code_token() -> str:
    """A digest of the code that renders answers (every ``.py`` file of ``geo/``, ``web/`` and
    ``layers/`` and ``server.py``), the same in every worker: an upgraded server gives new tags."""
    global _code_token
    if _code_token is None:
        root = Path(__file__).resolve().parent.parent
        digest = hashlib.sha256()
        files = [root / "server.py"]
        for pkg in ("geo", "web", "layers"):
            files.extend(sorted((root / pkg).rglob("*.py")))
        for path in files:
            if path.is_file():
                digest.update(str(path.relative_to(root)).encode())
                digest.update(path.read_bytes())
        _code_token = digest.hexdigest()[:16]
    return _code_token


def answer_state(store: Any, tz: str | None) -> tuple[str, ...]:
    """What an answer computed from ``store`` now depends on beyond its request: the store
    revision, each layer's generation, the targets' generation, the value mappings kept, and
    today's date in the zone ``tz`` -- read in one snapshot, so they are of one state."""
    with store.snapshot():
        out = [store.revision()]
        out += [f"{spec.name}={store.layer_generation(spec)}" for spec in layers.all_layers()]
        out.append("targets=" + store.generation("~targets"))
        maps = store.value_maps(include_removed=True)
        out.append(
            f"maps={len(maps)}:{sum(m.removed_at is not None for m in maps)}:{max((m.id for m in maps), default=0)}"
        )
    out.append(clock.today(tz).isoformat())
    return tuple(out)


@dataclass
class Answer:
    """A rendered answer kept in the store's cache: its body, type, extra headers and tag; the
    gzip-compressed body is made on the first request that accepts it."""

    body: bytes
    mimetype: str
    headers: dict[str, str]
    etag: str
    gzipped: bytes | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def cache_bytes(self) -> int:
        """The bytes it holds (for the cache's byte bound)."""
        return len(self.body) + len(self.gzipped or b"") + 512

    def gzip(self) -> tuple[bytes, int]:
        """The compressed body (made once, by the first thread that asks) and the bytes it added."""
        if self.gzipped is not None:
            return self.gzipped, 0
        with self._lock:
            if self.gzipped is not None:
                return self.gzipped, 0
            compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)  # gzip wrapper, mtime 0
            self.gzipped = compressor.compress(self.body) + compressor.flush()
            return self.gzipped, len(self.gzipped)


def _wants_gzip() -> bool:
    return request.accept_encodings["gzip"] > 0


def _matches(tag: str) -> bool:
    """Whether ``If-None-Match`` names ``tag`` or its compressed twin (weak comparison, as
    RFC 9110 asks for ``If-None-Match``)."""
    inm = request.if_none_match
    if not inm:
        return False
    return bool(inm.star_tag or inm.contains_weak(tag) or inm.contains_weak(tag + "-gz"))


def _headers(resp: Response, tag: str | None) -> Response:
    if tag is not None:
        resp.headers["ETag"] = f'"{tag}"'
        resp.headers["Cache-Control"] = "private, no-cache"
    resp.headers["Vary"] = "Accept-Encoding, Cookie"
    return resp


def _send(answer: Answer, tag: str | None, region: Any = None, key: Any = None) -> Response:
    """The answer's body, compressed when the client accepts gzip (its tag then ends in ``-gz``);
    the bytes compression added are counted in ``region``'s entry ``key`` when it is kept."""
    body = answer.body
    resp = Response(mimetype=answer.mimetype, headers=answer.headers)
    if len(body) >= GZIP_MIN_BYTES and _wants_gzip():
        body, added = answer.gzip()
        if added and region is not None:
            region.grow(key, added)
        resp.headers["Content-Encoding"] = "gzip"
        tag = None if tag is None else tag + "-gz"
    resp.set_data(body)
    return _headers(resp, tag)


def respond(
    store: Any,
    tz: str | None,
    render: Callable[[], tuple[bytes, str, dict[str, str]]],
) -> Response:
    """The answer ``render()`` gives (body, mimetype, extra headers) for this request on
    ``store``, with its tag, from the store's cache when the same query was answered on the
    same state; 304 when the client holds it already.  Check the request's arguments before
    calling: what ``render`` raises is raised (nothing is kept)."""
    family = (
        request.path,
        tuple(sorted(request.args.items(multi=True))),
        select_locale(),
        str(tz),
        code_token(),
        FORMAT,
        scope().key(),
    )
    state = answer_state(store, tz)
    tag = hashlib.sha256(repr((family, state)).encode("utf-8")).hexdigest()[:40]
    region = store.cache.region(REGION)
    key = (family, state)
    hit = region.get(key)
    if _matches(tag):
        small = hit is not MISSING and len(hit.body) < GZIP_MIN_BYTES
        return _headers(Response(status=304), tag + "-gz" if _wants_gzip() and not small else tag)
    if hit is not MISSING:
        return _send(hit, tag, region, key)
    with region.filling(family):
        hit = region.get(key)
        if hit is not MISSING:
            return _send(hit, tag, region, key)
        body, mimetype, headers = render()
        answer = Answer(body, mimetype, headers, tag)
        if answer_state(store, tz) != state:  # a write landed meanwhile: a body of no one state
            return _send(answer, None)
        region[key] = answer
    return _send(answer, tag, region, key)
