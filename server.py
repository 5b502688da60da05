"""gridwatch web service: application factory.

Development: ``gridwatch serve``.  Production: ``gunicorn 'server:create_app()'``.
Settings (declared in :mod:`web.settings`) come from defaults, then ``instance/gridwatch.cfg``
(if present), then ``GRIDWATCH_*`` environment variables, then the ``config`` mapping given here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Flask, request
from flask_babel import Babel
from werkzeug.exceptions import HTTPException

from geo.errors import GridwatchError
from geo.reading.display import safe_display_name
from geo.store import memory
from geo.store.backends import backend_for, locate, open_store
from web import settings
from web.context import (
    HTTP_REASONS_ZH,
    SafeJSONProvider,
    close_store,
    error_page,
    error_response,
    http_error,
    label,
    lang_url,
    local_time,
    private_dirs,
    remember_language,
    select_locale,
    size_text,
    wants_html,
    zone_note,
)


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """The gridwatch application: its settings, extensions (translations, sign-in, CSRF,
    security headers), blueprints and error handlers.  Blueprints are imported here, so the
    ``gridwatch`` command (:func:`main`) starts without loading the pages."""
    memory.limit_heaps()  # a worker's freed memory is not spread over a heap per thread
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
    # the store and the data directory, settled once: the data directory never comes from the
    # store's location (a backend may have no folder); an unknown backend stops the start
    where = locate(app.config["GRIDWATCH_DATA"], app.config.get("GRIDWATCH_STORE") or "")
    backend_for(where.store)
    app.extensions["gridwatch_location"] = where
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = settings.secret_key(str(where.data))
    secure = app.config["GRIDWATCH_SECURE_COOKIES"]  # set it when the service is reached over HTTPS
    app.config.update(
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=secure,
        SESSION_COOKIE_NAME="gridwatch_session",
        REMEMBER_COOKIE_HTTPONLY=True,
        REMEMBER_COOKIE_SAMESITE="Lax",
        REMEMBER_COOKIE_SECURE=secure,
        WTF_CSRF_CHECK_DEFAULT=False,  # checked in web.access.enforce, skipped for API tokens
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
    app.jinja_env.globals["zone_note"] = zone_note
    app.jinja_env.filters["localtime"] = local_time

    app.after_request(remember_language)

    from web import access, api, login, patrols, photos, security, tasks, views

    # first of the request hooks: the sign-in and CSRF checks read the form
    @app.before_request
    def _bound_plain_forms() -> None:
        # A urlencoded body is read and unquoted whole (Werkzeug applies no form memory limit
        # to it), at about 80 bytes of memory per "%xx": 12 MB of escapes took 900 MB.  Such
        # forms carry a few short fields, so they get the form-field limit; files come as
        # multipart, whose fields Werkzeug bounds as it reads them.
        if request.mimetype == "application/x-www-form-urlencoded":
            request.max_content_length = app.config["MAX_FORM_MEMORY_SIZE"]

    login.init_app(app)
    access.init_app(app)
    # the account pages (endpoints auth.*) are routes of one blueprint, access.bp; importing
    # the modules that declare them adds them to it
    # (and web.webhooks the /api/webhooks routes to api.bp)
    from web import account, audit, edits, users, webhooks  # noqa: F401

    webhooks.init_app(app)
    app.register_blueprint(access.bp)
    security.init_app(app)
    app.register_blueprint(views.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(photos.bp)
    app.register_blueprint(patrols.bp)
    app.register_blueprint(tasks.bp)
    app.jinja_env.filters["display"] = safe_display_name  # names as they are, never as they pretend
    app.extensions["gridwatch_private_dirs"] = private_dirs(
        app.config["GRIDWATCH_DATA"], app.root_path, where.store
    )

    app.teardown_appcontext(close_store)

    @app.errorhandler(GridwatchError)
    def _domain_error(exc: GridwatchError) -> Any:
        if wants_html():
            return error_page(exc.status, exc.zh, exc.en)
        return error_response(exc.to_dict(), exc.status)

    @app.errorhandler(404)
    def _not_found(_exc: Exception) -> Any:
        return http_error(404, "not_found", f"页面不存在: {request.path}", f"not found: {request.path}")

    @app.errorhandler(413)
    def _too_large(_exc: Exception) -> Any:
        limit = size_text(request.max_content_length or app.config["MAX_CONTENT_LENGTH"])
        return http_error(413, "too_large", f"上传文件超过 {limit}", f"the upload exceeds {limit}")

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Any:
        status = exc.code or 500
        code = (exc.name or "error").lower().replace(" ", "_")
        zh = f"{status} {HTTP_REASONS_ZH.get(status, '请求无法处理')}"
        return http_error(status, code, zh, f"{status} {exc.name}: {exc.description}")

    @app.errorhandler(500)
    def _server_error(_exc: Exception) -> Any:
        return http_error(500, "server_error", "服务器内部错误", "internal server error")

    return app


def _serve(args: Any) -> int:
    config: dict[str, Any] = {}
    if args.data:
        config["GRIDWATCH_DATA"] = args.data
    if args.store:
        config["GRIDWATCH_STORE"] = args.store
    app = create_app(config)
    # a store that cannot be opened (a database that is down, a file that is no store) is said
    # now, once, rather than by every request
    where = app.extensions["gridwatch_location"]
    with open_store(where.store, data=where.data) as store:
        store.revision()
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
