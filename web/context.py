"""What a request of the web service works with, in the manner of the Flask tutorial's ``db.py``:
the store (opened once per request, closed on teardown), the page's language and the labels
in it, and the JSON error bodies, which say what went wrong in both languages but never where
the service keeps its files."""

from __future__ import annotations

import logging
import os
import re
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from flask import current_app, g, jsonify, render_template, request
from flask.json.provider import DefaultJSONProvider
from markupsafe import escape
from werkzeug.http import HTTP_STATUS_CODES

from geo.store import clock
from geo.store.backends import gpkg_path, open_store
from geo.store.credentials import secrets_in, shown_location

LANGUAGES = ("zh", "en")

#: Chinese reasons for the HTTP errors a client can meet (English comes from werkzeug).
HTTP_REASONS_ZH = {
    400: "请求有误",
    401: "需要登录",
    403: "无权访问",
    404: "页面不存在",
    405: "不支持该请求方法",
    406: "无法提供所要求的格式",
    408: "请求超时",
    409: "与现有数据冲突",
    410: "已不存在",
    411: "缺少请求长度",
    413: "上传文件过大",
    414: "网址过长",
    415: "不支持的文件类型",
    422: "请求内容无法处理",
    429: "请求过于频繁",
    431: "请求头过大",
    500: "服务器内部错误",
    501: "功能未实现",
    502: "网关错误",
    503: "服务暂不可用",
    504: "网关超时",
}


# --- the store -------------------------------------------------------------------------------


def get_store() -> Any:
    """The store for this request, opened lazily and closed on teardown."""
    if "store" not in g:
        where = current_app.extensions["gridwatch_location"]
        g.store = open_store(where.store, data=where.data)
        actor = g.get("gw_actor")
        if actor is not None:
            g.store.actor = actor  # every write of this request is audited as this user
    return g.store


def data_folder() -> Path:
    """The data directory of this app (staged and archived uploads), from its settings --
    never from the store's location."""
    return Path(current_app.extensions["gridwatch_location"].data)


def close_store(_exc: BaseException | None = None) -> None:
    """Close the store of this request, if it opened one (at the end of the app context)."""
    store = g.pop("store", None)
    if store is not None:
        store.close()


# --- language --------------------------------------------------------------------------------


def select_locale() -> str:
    """Simplified Chinese unless ``?lang=en`` (remembered in a cookie) asks for English."""
    lang = request.args.get("lang") or request.cookies.get("gridwatch_lang")
    return lang if lang in LANGUAGES else "zh"


def remember_language(response: Any) -> Any:
    """After a request with ``?lang=``: the choice kept in a cookie for a year."""
    lang = request.args.get("lang")
    if lang in LANGUAGES:
        response.set_cookie("gridwatch_lang", lang, max_age=365 * 86400, samesite="Lax", httponly=True)
    return response


def lang_url(lang: str) -> str:
    """This page in another language (its other query parameters kept)."""
    args = {k: v for k, v in request.args.items() if k != "lang"}
    return f"{request.path}?{urlencode({**args, 'lang': lang})}"


def label(obj: Any, field: str = "label") -> str:
    """The Chinese or English label of a layer, field, status or level tuple, per the page language."""
    english = select_locale() == "en"
    if isinstance(obj, tuple):
        return str(obj[1] if english else obj[0])
    return str(getattr(obj, f"{field}_en" if english else f"{field}_zh"))


# --- time ------------------------------------------------------------------------------------


def local_time(text: str | None) -> str:
    """A stored time as pages show it: ``2022-06-30 14:05`` in ``GRIDWATCH_TIMEZONE``."""
    return clock.local_text(text, current_app.config.get("GRIDWATCH_TIMEZONE"))


def zone_note() -> str:
    """The zone of the times on a page, named once (``Asia/Shanghai (UTC+08:00)``)."""
    return clock.zone_note(current_app.config.get("GRIDWATCH_TIMEZONE"))


# --- JSON ------------------------------------------------------------------------------------


def markup_free_json(text: str) -> str:
    """JSON text with ``<``, ``>``, ``&`` written as ``\\u003c`` etc. (they occur only inside
    strings), so survey text can never be read as markup, whatever a browser guesses the type to be."""
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


class SafeJSONProvider(DefaultJSONProvider):
    """JSON with Chinese kept readable and markup characters escaped (:func:`markup_free_json`)."""

    ensure_ascii = False

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        return markup_free_json(super().dumps(obj, **kwargs))


# --- errors ----------------------------------------------------------------------------------


#: The command line's options as the web names its controls (the upload form's boxes, the API's
#: parameters): a message from the engine sends a browser user to what they can use.
WEB_WORDING: tuple[tuple[str, str, str], ...] = (
    ("--crs", "“坐标系”栏", "the CRS box"),
    ("--encoding", "“文字编码”栏", "the encoding box"),
    ("--member", "“压缩包内文件”栏", "the “file in the zip” box"),
    ("--known-at", " known_at 参数", "known_at"),
    ("--as-of", "“截至”日期", "the “as of” date"),
    ("--json", "检查结果", "the report"),
)
_FLAG = re.compile(r"(\s?)(?<![\w-])(--[a-z][a-z-]*)(\s?)")
_PASS = re.compile(r"\b([Pp])ass (?=--(?:crs|encoding|member)\b)")


def web_wording(text: str, lang: str = "zh") -> str:
    """``text`` (a message of the engine, written for the command line) with its options named
    as the web's controls: ``请用 --crs 指定`` → ``请用“坐标系”栏指定``, ``pass --crs`` → ``set
    the CRS box``."""
    names = {flag: (zh, en) for flag, zh, en in WEB_WORDING}

    def swap(m: re.Match[str]) -> str:
        found = names.get(m.group(2))
        if found is None:
            return m.group(0)
        if lang == "en":
            return f"{m.group(1)}{found[1]}{m.group(3)}"
        # Chinese needs no spaces around a box's name, but keeps them around a parameter's
        return f" {found[0].strip()} " if found[0].startswith(" ") else found[0]

    if lang == "en":
        text = text.replace("pass the right --encoding", "set the right encoding in the encoding box")
        text = _PASS.sub(lambda m: ("S" if m.group(1) == "P" else "s") + "et ", text)
    return _FLAG.sub(swap, text).strip()


def web_messages(body: Any) -> Any:
    """An answer's ``message_zh`` / ``message_en`` / ``message`` and upload warnings
    (``{"zh", "en"}``) in the web's wording (:func:`web_wording`)."""
    if isinstance(body, dict):
        out = {}
        for k, v in body.items():
            if isinstance(v, str) and k in ("message_zh", "zh"):
                out[k] = web_wording(v, "zh")
            elif isinstance(v, str) and k in ("message_en", "en"):
                out[k] = web_wording(v, "en")
            elif isinstance(v, str) and k == "message":
                out[k] = web_wording(v, select_locale())
            else:
                out[k] = web_messages(v) if k in ("warnings", "details") else v
        return out
    if isinstance(body, list):
        return [web_messages(v) for v in body]
    return body


def error_body(code: str, zh: str, en: str) -> dict[str, Any]:
    """The JSON body of an error, ``message`` in the request's language, options named as the
    web's controls (:func:`web_wording`)."""
    zh, en = web_wording(zh, "zh"), web_wording(en, "en")
    return {
        "error": code,
        "message_zh": zh,
        "message_en": en,
        "message": en if select_locale() == "en" else zh,
    }


def json_error(status: int, code: str, zh: str, en: str) -> Any:
    """A JSON error response: :func:`error_body`, free of the server's paths."""
    return jsonify(path_free(error_body(code, zh, en))), status


def error_response(body: dict[str, Any], status: int) -> Any:
    """A JSON error with ``message`` in the request's language; ``message_zh`` and
    ``message_en`` are always there too."""
    body = {**body, "message": body["message_en"] if select_locale() == "en" else body["message_zh"]}
    return jsonify(path_free(web_messages(body))), status


def wants_html() -> bool:
    """Whether an error answers with a page: a browser's request (its Accept prefers HTML to
    JSON) outside ``/api/``; the API and scripts keep their JSON bodies."""
    if request.path.startswith("/api/") or request.path == "/api":
        return False
    accept = request.accept_mimetypes
    return accept["text/html"] > accept["application/json"]


def http_error(status: int, code: str, zh: str, en: str) -> Any:
    """An error as a browser's page (:func:`web.context.wants_html`) or as the API's JSON body."""
    if wants_html():
        return error_page(status, zh, en)
    return json_error(status, code, zh, en)


def error_page(status: int, zh: str, en: str) -> Any:
    """``templates/error.html`` in the page language with ``status``; a plain page should the
    template itself fail (never a traceback)."""
    english = select_locale() == "en"
    zh, en = web_wording(zh, "zh"), web_wording(en, "en")
    reason = HTTP_STATUS_CODES.get(status, "Error") if english else HTTP_REASONS_ZH.get(status, "错误")
    message = str(path_free(en if english else zh))
    headers = {"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store"}
    try:
        page = render_template("error.html", status=status, reason=reason, message=message)
    except Exception:  # the page of an error must not fail in turn
        logging.getLogger("gridwatch").exception("the error page could not be drawn")
        page = (
            f"<!doctype html><meta charset=utf-8><title>{status}</title>"
            f'<h1>{status} {escape(reason)}</h1><p>{escape(message)}</p><p><a href="/">地图 / Map</a></p>'
        )
    return page, status, headers


def size_text(size: int) -> str:
    """A number of bytes as people read it (``200 MB``)."""
    for unit, factor in (("GB", 1024**3), ("MB", 1024**2), ("KB", 1024)):
        if size >= factor:
            return f"{size / factor:.3g} {unit}"
    return f"{size} B"


def private_dirs(data: str, root: str, store: str = "") -> list[tuple[re.Pattern[str], str]]:
    """The server's own directories -- the data directory (as configured and resolved), the
    store (its file and folder, or its URL), temporary files, the application, the home
    directory -- each with what an answer shows instead, most specific first (for
    :func:`path_free`).  The credentials of a store URL are never shown either."""
    named = [(data, "$GRIDWATCH_DATA")]
    if data.lower().endswith(".gpkg"):  # the store file given: its folder holds the rest
        named.append((str(Path(data).parent), "$GRIDWATCH_DATA"))
    secrets = secrets_in(store)
    store_file = gpkg_path(store) if store else None
    if store_file is not None and not _inside(str(store_file), named[-1][0]):
        named += [(str(store_file), "$GRIDWATCH_STORE"), (str(store_file.parent), "$GRIDWATCH_STORE")]
    named += [(folder, "…") for folder in (tempfile.gettempdir(), root, str(Path.home()))]
    shown: dict[str, str] = {}
    for folder, placeholder in named:
        for form in (os.path.abspath(folder), str(Path(folder).resolve())):
            if len(form) > 1:
                shown.setdefault(form, placeholder)
    found = [
        (re.compile(re.escape(folder) + r"(?![\w.-])"), placeholder)
        for folder, placeholder in sorted(shown.items(), key=lambda kv: -len(kv[0]))
    ]
    if store_file is None and store:  # a URL: as given and as messages show it (shown_location)
        for form in sorted({store, shown_location(store)}, key=len):
            found.insert(0, (re.compile(re.escape(form)), "$GRIDWATCH_STORE"))
    return found + [(re.compile(re.escape(secret)), "***") for secret in secrets]


def _inside(path: str, folder: str) -> bool:
    return Path(path).resolve().is_relative_to(Path(folder).resolve())


def path_free(value: Any) -> Any:
    """``value`` (an error body: text, lists and mappings of it) with the server's directories
    written as ``$GRIDWATCH_DATA`` or ``…``: an answer says what went wrong, never where the
    service keeps its files."""
    dirs = current_app.extensions.get("gridwatch_private_dirs", [])
    if isinstance(value, str):
        for pattern, placeholder in dirs:
            value = pattern.sub(placeholder, value)
        return value
    if isinstance(value, dict):
        return {k: path_free(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [path_free(v) for v in value]
    return value
