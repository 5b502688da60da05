"""gridwatch web service: application factory.

Development: ``gridwatch serve``.  Production: ``gunicorn 'server:create_app()'``.
Settings (declared in :mod:`web.settings`) come from defaults, then ``instance/gridwatch.cfg``
(if present), then ``GRIDWATCH_*`` environment variables, then the ``config`` mapping given here.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Any

from flask import Flask, g, jsonify, request
from flask.json.provider import DefaultJSONProvider
from flask_babel import Babel
from werkzeug.exceptions import HTTPException

from geo.errors import GridwatchError
from geo.reading.values import safe_display_name
from geo.store.backends import open_store
from web import settings


def markup_free_json(text: str) -> str:
    """JSON text with ``<``, ``>``, ``&`` written as ``\\u003c`` etc. (they occur only inside
    strings), so survey text can never be read as markup, whatever a browser guesses the type to be."""
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


class SafeJSONProvider(DefaultJSONProvider):
    """JSON with Chinese kept readable and markup characters escaped (:func:`markup_free_json`)."""

    ensure_ascii = False

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        return markup_free_json(super().dumps(obj, **kwargs))


def create_app(config: dict[str, Any] | None = None) -> Flask:
    app = Flask(__name__, instance_relative_config=True, template_folder="templates")
    app.json = SafeJSONProvider(app)
    app.config["BABEL_DEFAULT_LOCALE"] = "zh"
    app.config["BABEL_TRANSLATION_DIRECTORIES"] = str(Path(__file__).resolve().parent / "translations")
    app.config["JSON_AS_ASCII"] = False
    # settings (web.settings): defaults, instance/gridwatch.cfg, GRIDWATCH_* variables, ``config``
    app.config.from_mapping(settings.defaults())
    app.config.from_pyfile("gridwatch.cfg", silent=True)
    app.config.from_mapping(settings.from_environ())
    if config:
        app.config.update(config)
    settings.check(app.config)
    if not app.config.get("SECRET_KEY"):
        from web.auth import secret_key

        app.config["SECRET_KEY"] = secret_key(app.config["GRIDWATCH_DATA"])
    secure = app.config["GRIDWATCH_SECURE_COOKIES"]  # set it when the service is reached over HTTPS
    app.config.update(
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=secure,
        SESSION_COOKIE_NAME="gridwatch_session",
        REMEMBER_COOKIE_HTTPONLY=True,
        REMEMBER_COOKIE_SAMESITE="Lax",
        REMEMBER_COOKIE_SECURE=secure,
        WTF_CSRF_CHECK_DEFAULT=False,  # checked in web.auth.enforce, skipped for API tokens
        WTF_CSRF_TIME_LIMIT=None,  # tied to the session; a map left open all day can still write
        WTF_CSRF_SSL_STRICT=secure,
    )
    if app.config["GRIDWATCH_PROXY_FIX"]:
        # behind one reverse proxy (nginx): client address and scheme from its X-Forwarded-* headers
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1, x_host=1)  # type: ignore[method-assign]

    Babel(app, locale_selector=select_locale)
    app.jinja_env.globals["lbl"] = label
    app.jinja_env.globals["current_lang"] = select_locale
    app.jinja_env.globals["lang_url"] = lang_url

    @app.after_request
    def _remember_language(response: Any) -> Any:
        lang = request.args.get("lang")
        if lang in LANGUAGES:
            response.set_cookie("gridwatch_lang", lang, max_age=365 * 86400, samesite="Lax", httponly=True)
        return response

    from web import auth, security
    from web.api import bp as api_bp
    from web.views import bp

    # first of the request hooks: the sign-in and CSRF checks read the form
    @app.before_request
    def _bound_plain_forms() -> None:
        # A urlencoded body is read and unquoted whole (Werkzeug applies no form memory limit
        # to it), at about 80 bytes of memory per "%xx": 12 MB of escapes took 900 MB.  Such
        # forms carry a few short fields, so they get the form-field limit; files come as
        # multipart, whose fields Werkzeug bounds as it reads them.
        if request.mimetype == "application/x-www-form-urlencoded":
            request.max_content_length = app.config["MAX_FORM_MEMORY_SIZE"]

    auth.init_app(app)
    security.init_app(app)
    app.register_blueprint(bp)
    app.register_blueprint(api_bp)
    app.jinja_env.filters["display"] = safe_display_name  # names as they are, never as they pretend
    app.extensions["gridwatch_private_dirs"] = private_dirs(app.config["GRIDWATCH_DATA"], app.root_path)

    @app.teardown_appcontext
    def _close_store(_exc: BaseException | None) -> None:
        store = g.pop("store", None)
        if store is not None:
            store.close()

    @app.errorhandler(GridwatchError)
    def _domain_error(exc: GridwatchError) -> Any:
        return _error_response(exc.to_dict(), exc.status)

    @app.errorhandler(404)
    def _not_found(_exc: Exception) -> Any:
        return _error(404, "not_found", f"页面不存在: {request.path}", f"not found: {request.path}")

    @app.errorhandler(413)
    def _too_large(_exc: Exception) -> Any:
        limit = _size_text(request.max_content_length or app.config["MAX_CONTENT_LENGTH"])
        return _error(413, "too_large", f"上传文件超过 {limit}", f"the upload exceeds {limit}")

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Any:
        status = exc.code or 500
        code = (exc.name or "error").lower().replace(" ", "_")
        zh = f"{status} {HTTP_REASONS_ZH.get(status, '请求无法处理')}"
        return _error(status, code, zh, f"{status} {exc.name}: {exc.description}")

    @app.errorhandler(500)
    def _server_error(_exc: Exception) -> Any:
        return _error(500, "server_error", "服务器内部错误", "internal server error")

    return app


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


def error_body(code: str, zh: str, en: str) -> dict[str, Any]:
    """The JSON body of an error, ``message`` in the request's language."""
    return {
        "error": code,
        "message_zh": zh,
        "message_en": en,
        "message": en if select_locale() == "en" else zh,
    }


def _error(status: int, code: str, zh: str, en: str) -> Any:
    return jsonify(path_free(error_body(code, zh, en))), status


def _error_response(body: dict[str, Any], status: int) -> Any:
    """A JSON error with ``message`` in the request's language; ``message_zh`` and
    ``message_en`` are always there too."""
    body = {**body, "message": body["message_en"] if select_locale() == "en" else body["message_zh"]}
    return jsonify(path_free(body)), status


def _size_text(size: int) -> str:
    for unit, factor in (("GB", 1024**3), ("MB", 1024**2), ("KB", 1024)):
        if size >= factor:
            return f"{size / factor:.3g} {unit}"
    return f"{size} B"


def private_dirs(data: str, root: str) -> list[tuple[re.Pattern[str], str]]:
    """The server's own directories -- the data directory (as configured and resolved),
    temporary files, the application, the home directory -- each with what an answer shows
    instead, most specific first (for :func:`path_free`)."""
    named = [(data, "$GRIDWATCH_DATA")]
    if data.lower().endswith(".gpkg"):  # the store file given: its folder holds the rest
        named.append((str(Path(data).parent), "$GRIDWATCH_DATA"))
    named += [(folder, "…") for folder in (tempfile.gettempdir(), root, str(Path.home()))]
    shown: dict[str, str] = {}
    for folder, placeholder in named:
        for form in (os.path.abspath(folder), str(Path(folder).resolve())):
            if len(form) > 1:
                shown.setdefault(form, placeholder)
    return [
        (re.compile(re.escape(folder) + r"(?![\w.-])"), placeholder)
        for folder, placeholder in sorted(shown.items(), key=lambda kv: -len(kv[0]))
    ]


def path_free(value: Any) -> Any:
    """``value`` (an error body: text, lists and mappings of it) with the server's directories
    written as ``$GRIDWATCH_DATA`` or ``…``: an answer says what went wrong, never where the
    service keeps its files."""
    from flask import current_app

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


def select_locale() -> str:
    """Simplified Chinese unless ``?lang=en`` (remembered in a cookie) asks for English."""
    lang = request.args.get("lang") or request.cookies.get("gridwatch_lang")
    return lang if lang in LANGUAGES else "zh"


def lang_url(lang: str) -> str:
    """This page in another language (its other query parameters kept)."""
    from urllib.parse import urlencode

    args = {k: v for k, v in request.args.items() if k != "lang"}
    return f"{request.path}?{urlencode({**args, 'lang': lang})}"


def label(obj: Any, field: str = "label") -> str:
    """The Chinese or English label of a layer, field, status or level tuple, per the page language."""
    english = select_locale() == "en"
    if isinstance(obj, tuple):
        return str(obj[1] if english else obj[0])
    return str(getattr(obj, f"{field}_en" if english else f"{field}_zh"))


def get_store() -> Any:
    """The store for this request, opened lazily and closed on teardown."""
    from flask import current_app

    if "store" not in g:
        g.store = open_store(current_app.config["GRIDWATCH_DATA"])
        actor = g.get("gw_actor")
        if actor is not None:
            g.store.actor = actor  # every write of this request is audited as this user
    return g.store


def _serve(args: Any) -> int:
    config: dict[str, Any] = {}
    if args.data:
        config["GRIDWATCH_DATA"] = args.data
    app = create_app(config)
    app.run(host=args.host, port=args.port, debug=args.debug, threaded=True)
    return 0


def _add_serve(sub: Any) -> None:
    from geo.cli.common import bounded_int

    v = sub.add_parser("serve", help="启动 Web 服务 / run the web service (development)")
    v.add_argument("--host", default="127.0.0.1")
    v.add_argument("--port", type=bounded_int(1, 65535), default=5000)
    v.add_argument("--debug", action="store_true")
    v.set_defaults(func=_serve)


def main(argv: list[str] | None = None) -> int:
    """The ``gridwatch`` command: the engine's commands (:mod:`geo.cli`) and ``serve``, which
    runs this application -- composed here, so the engine never imports the web layer."""
    from geo.cli import main as engine_main

    return engine_main(argv, extend=_add_serve)
