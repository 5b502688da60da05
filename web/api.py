"""JSON API: thin wrappers that turn query strings into engine calls and results into JSON."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, abort, current_app, g, jsonify, request
from flask_babel import gettext as _

import layers
from geo.errors import Forbidden, InputError
from geo.figures.feature_list import FeatureQuery, feature_page, filtered_fids
from geo.figures.hierarchy import check_level, level_names
from geo.figures.overview import map_totals
from geo.figures.report import build_report
from geo.figures.search import MAX_LIMIT, search
from geo.figures.tally import Filters, survey_specs
from geo.figures.viewport import BBox, cells_in_view, feature_detail, features_in_view
from geo.imports import upload_features, upload_review, uploads
from geo.imports.batches import may_roll_back, rollback
from geo.output.export import content_disposition, get_renderer
from geo.output.html_map import html_map
from geo.output.ledger import LEDGER_FORMATS, render_ledger
from geo.registry import layer_name
from geo.store import clock
from web import answers
from web.access import MAP, PUBLIC, area_units, is_admin, refuse_bound, requires, user_name
from web.clients import reads_files
from web.common import (
    as_of_arg,
    grid_arg,
    known_at_arg,
    query_args,
    register_converters,
    survey_spec,
    timezone,
)
from web.context import data_folder, get_store, label, markup_free_json, select_locale, web_messages

bp = Blueprint("api", __name__, url_prefix="/api")
bp.record_once(register_converters)  # <id:...> in the routes below


def _int(name: str, default: int, lo: int, hi: int) -> int:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InputError(
            f"参数 {name} 应为整数", f"{name} must be an integer", code="bad_parameter"
        ) from None
    if not lo <= value <= hi:
        raise InputError(
            f"参数 {name} 应在 {lo}–{hi} 之间", f"{name} must be within {lo}..{hi}", code="bad_parameter"
        )
    return value


def _gcj02() -> bool:
    return request.args.get("crs", "").lower() in ("gcj02", "gcj-02")


@bp.get("/layers")
@requires(MAP)
def api_layers() -> Any:
    out = []
    for spec in layers.all_layers():
        out.append(
            {
                "name": spec.name,
                "label_zh": spec.label_zh,
                "label_en": spec.label_en,
                "geometry_types": sorted(spec.geometry_types),
                "is_grid": spec.is_grid,
                "fields": [
                    {"name": f.name, "kind": f.kind, "label_zh": f.label_zh, "label_en": f.label_en}
                    for f in spec.stored_fields
                ],
                "statuses": [
                    {"code": s.code, "label_en": s.label_en, "completed": s.completed, "color": s.color}
                    for s in spec.all_statuses
                ],
                "count": get_store().layer_count(spec),
            }
        )
    return jsonify(out)


@bp.get("/stats")
@requires("viewer")
def api_stats() -> Any:
    level, layer_names, as_of = query_args()
    renderer = get_renderer(request.args.get("format", "json"))
    known_at, grid = known_at_arg(), grid_arg()
    header = request.args.get("header", "")
    if header not in ("", "0", "1"):
        raise InputError("参数 header 应为 0 或 1", "header must be 0 or 1", code="bad_parameter")
    headers = _headers_arg("code")
    rows = request.args.get("rows") or "objects"
    if rows not in ("objects", "arrays"):
        raise InputError(
            "参数 rows 应为 objects 或 arrays", "rows must be objects or arrays", code="bad_parameter"
        )
    levels = level_names() if renderer.all_levels else [level]
    within, units = request.args.get("within") or None, area_units()
    filters = Filters(within=within, units=units) if within or units is not None else None
    store = get_store()

    def render() -> tuple[bytes, str, dict[str, str]]:
        report = build_report(
            store,
            levels,
            layer_names,
            as_of,
            filters,
            with_geometry=renderer.needs_geometry,
            known_at=known_at,
            grid=grid,
            tz=timezone(),
        )
        report.csv_header = header == "1"
        report.headers = headers
        report.json_rows = rows
        body = renderer.render(report, level)
        if (
            renderer.mimetype.endswith("json") and renderer.name != "json"
        ):  # GeoJSON; JSON escapes them itself
            body = markup_free_json(body.decode("utf-8")).encode("utf-8")
        extra = {}
        if renderer.name != "json":
            # 违法建设_单元网格_2022-06-30.xlsx, gridwatch_grid_2022-06-30.xlsx for old clients
            shown = [label(s) for s in survey_specs(layer_names)]
            extra["Content-Disposition"] = content_disposition(
                renderer.download_name(report, level, shown), fallback=renderer.filename(report, level)
            )
        return body, renderer.mimetype, extra

    return answers.respond(store, timezone(), render)


def _headers_arg(default: str | None) -> str | None:
    """``?headers=``: the CSV's header row, ``zh``, ``en`` or ``code`` (column names)."""
    value = request.args.get("headers") or default
    if value not in (None, "zh", "en", "code"):
        raise InputError(
            "参数 headers 应为 zh、en 或 code", "headers must be zh, en or code", code="bad_parameter"
        )
    return value


@bp.get("/cells")
@requires(MAP)
def api_cells() -> Any:
    level = check_level(request.args.get("level"))  # none: the unit grid
    layer = request.args.get("layer") or None
    layer = layer and layer_name(layer)  # its code, Chinese or English name
    if layer is not None and layer not in {s.name for s in layers.survey_layers()}:
        raise InputError(f"未知图层: {layer}", f"unknown layer: {layer}", code="unknown_layer")
    store = get_store()
    bbox, zoom, as_of, known_at, grid = (
        BBox.parse(request.args.get("bbox")),
        _int("zoom", 14, 0, 24),
        as_of_arg(),
        known_at_arg(),
        grid_arg(),
    )

    def render() -> tuple[bytes, str, dict[str, str]]:
        cells = cells_in_view(
            store,
            level,
            bbox,
            zoom,
            layer=layer,
            as_of=as_of,
            within=request.args.get("within") or None,
            gcj02=_gcj02(),
            known_at=known_at,
            grid=grid,
            units=area_units(),
        )
        return jsonify(cells).get_data(), "application/json", {}

    return answers.respond(store, timezone(), render)


@bp.get("/summary")
@requires(MAP)
def api_summary() -> Any:
    """The map's headline figures for its filters (layer, as_of, within, status) and the
    extent of the area chosen."""
    level, layer_names, as_of = query_args()
    layer = layer_names[0] if layer_names else layers.survey_layers()[0].name
    if layer not in {s.name for s in layers.survey_layers()}:
        raise InputError(f"未知图层: {layer}", f"unknown layer: {layer}", code="unknown_layer")
    statuses = tuple(s for s in request.args.get("status", "").split(",") if s) or None
    return jsonify(
        map_totals(
            get_store(),
            layer,
            as_of,
            within=request.args.get("within") or None,
            statuses=statuses,
            level=level,
            units=area_units(),
        )
    )


@bp.get("/features/<layer>")
@requires(MAP)
def api_features(layer: str) -> Any:
    bbox = BBox.parse(request.args.get("bbox"))
    if bbox is None:
        raise InputError("缺少 bbox 参数", "bbox is required: west,south,east,north", code="bad_bbox")
    statuses = tuple(s for s in request.args.get("status", "").split(",") if s) or None
    return jsonify(
        features_in_view(
            get_store(),
            layer_name(layer),
            bbox,
            _int("zoom", 14, 0, 24),
            statuses=statuses,
            as_of=as_of_arg(),
            unit=request.args.get("unit") or None,
            gcj02=_gcj02(),
            detail=request.args.get("detail") in ("1", "true"),
            within=request.args.get("within") or None,
            units=area_units(),
        )
    )


@bp.get("/html-map")
@requires("viewer")
def api_html_map() -> Any:
    """One street's or community's map as a standalone HTML file (Leaflet inlined), to download."""
    refuse_bound(("单独的地图文件", "a standalone map file"))
    within = request.args.get("within") or ""
    if not within:
        raise InputError("请选择街道或社区", "choose a street or community", code="bad_parameter")
    layer = request.args.get("layer") or None
    as_of = as_of_arg()
    page = html_map(
        get_store(),
        within,
        layer,
        as_of,
        known_at=known_at_arg(),
        grid=grid_arg(),
        lang=select_locale(),
    )
    resp = Response(page, mimetype="text/html")
    name = "_".join(p for p in ("地图", within, layer or "", as_of.isoformat() if as_of else "") if p)
    resp.headers["Content-Disposition"] = content_disposition(name + ".html")
    return resp


@bp.get("/features/<layer>/<id:fid>")
@requires(MAP)
def api_feature(layer: str, fid: int) -> Any:
    return jsonify(feature_detail(get_store(), layer_name(layer), fid, gcj02=_gcj02(), units=area_units()))


@bp.get("/search")
@requires(MAP)
def api_search() -> Any:
    """Units and survey features matching ``q``, best first, with where to go on the map."""
    hits = search(
        get_store(),
        request.args.get("q", ""),
        limit=_int("limit", 20, 1, MAX_LIMIT),
        layer=request.args.get("layer") or None,
        gcj02=_gcj02(),
        lang=select_locale(),
        units=area_units(),
    )
    return jsonify({"hits": [h.to_dict() for h in hits]})


@bp.get("/features-table")
@requires("viewer")
def api_features_table() -> Any:
    """A survey layer's features filtered and sorted as on /features: one page as JSON, or the
    whole filtered set as CSV or XLSX (Chinese headers unless ``headers=en``), GeoJSON or GPKG."""
    layer = request.args.get("layer") or None
    spec = survey_spec([layer] if layer else None)
    query = replace(FeatureQuery.parse(spec.name, request.args), units=area_units())
    fmt = request.args.get("format", "json")
    headers = request.args.get("headers", "zh")
    if headers not in ("zh", "en"):
        raise InputError("参数 headers 应为 zh 或 en", "headers must be zh or en", code="bad_parameter")
    if fmt == "json":
        page = feature_page(get_store(), query)
        return jsonify(
            {
                "total": page.total,
                "page": page.page,
                "pages": page.pages,
                "columns": page.columns,
                "rows": page.rows,
            }
        )
    if fmt not in LEDGER_FORMATS:
        raise InputError(
            f"格式应为 json、{'、'.join(LEDGER_FORMATS)}",
            f"format must be json, {', '.join(LEDGER_FORMATS)}",
            code="bad_format",
        )
    body = render_ledger(get_store(), spec, fmt, lang=headers, fids=filtered_fids(get_store(), query))
    if fmt == "geojson":  # survey text never read as markup, as in every JSON answer
        body = markup_free_json(body.decode("utf-8")).encode("utf-8")
    mimetype, ext = LEDGER_FORMATS[fmt]
    resp = Response(body, mimetype=mimetype)
    resp.headers["Content-Disposition"] = content_disposition(f"gridwatch_{spec.name}_features.{ext}")
    return resp


@bp.get("/ledger/<layer>")
@requires("viewer")  # the whole layer at once: like the statistics, for signed-in accounts
def api_ledger(layer: str) -> Any:
    """A survey layer's features as a table (台账): every field, the status as stored and as surveyed."""
    from geo.output.ledger import LEDGER_FORMATS, render_ledger
    from geo.registry import get_layer

    refuse_bound(("全区台账", "the whole district's ledger"))
    spec = get_layer(layer)
    fmt = request.args.get("format", "xlsx")
    headers = _headers_arg(None)
    body = render_ledger(get_store(), spec, fmt, lang=select_locale(), headers=headers)
    mimetype, ext = LEDGER_FORMATS[fmt]
    resp = Response(body, mimetype=mimetype)
    day = clock.today(timezone()).isoformat()
    resp.headers["Content-Disposition"] = content_disposition(
        f"{label(spec)}_{_('台账')}_{day}.{ext}", fallback=f"gridwatch_{spec.name}_ledger.{ext}"
    )
    return resp


@bp.get("/batches")
@requires("surveyor")
def api_batches() -> Any:
    layer = request.args.get("layer") or None
    rows = get_store().batches(layer and layer_name(layer))
    if area_units() is not None:  # bound to an area: its own batches only, not others' file names
        rows = [b for b in rows if b.user == user_name()]
    return jsonify([b.to_dict() for b in rows])


@bp.delete("/batches/<id:batch_id>")
@requires("surveyor")
def api_rollback(batch_id: int) -> Any:
    store = get_store()
    batch = store.batch(batch_id)
    if not may_roll_back(batch, user_name(), "admin" if is_admin() else g.gw_user.role):
        raise Forbidden("只能回滚自己导入的调查批次", "surveyors may roll back only their own survey batches")
    drop_edits = request.args.get("drop_edits", "").lower() in ("1", "true", "yes")
    if drop_edits and not is_admin():
        raise Forbidden(
            "只有管理员可以连同之后的编辑一起回滚", "only an admin may drop later edits with a rollback"
        )
    return jsonify(rollback(store, batch_id, drop_edits=drop_edits).to_dict())


def _check_owner(upload_id: str) -> None:
    """Only the account that uploaded a file (or an admin) may see, re-read, commit or discard it."""
    if not is_admin() and uploads.owner(_data_dir(), upload_id) != user_name():
        raise Forbidden("这是其他用户的上传", "this upload belongs to another user")


def _check_layer(layer: str) -> None:
    """The unit grid is replaced by admins only."""
    spec = next((s for s in layers.all_layers() if s.name == layer), None)
    if spec is not None and spec.is_grid and not is_admin():
        raise Forbidden("只有管理员可以替换单元网格", "only an admin may replace the unit grid")


def _data_dir() -> Path:
    return data_folder()


def _staging_limits() -> uploads.StagingLimits:
    """What each account may keep in staged uploads, from the settings (web.settings)."""
    config = current_app.config
    return uploads.StagingLimits(
        quota_bytes=int(config.get("GRIDWATCH_STAGING_QUOTA", uploads.QUOTA_BYTES)),
        quota_uploads=int(config.get("GRIDWATCH_STAGING_UPLOADS", uploads.QUOTA_UPLOADS)),
        max_age_s=float(config.get("GRIDWATCH_STAGING_HOURS", uploads.MAX_AGE_S / 3600)) * 3600,
    )


def _mapping_form() -> dict[str, Any]:
    """``field_map`` (a JSON object: column → field), ``value_map`` (a JSON array of
    ``[field, raw, code]``) and ``remember`` from the form, where given; shapes are checked by
    :func:`geo.imports.uploads.check_mapping_params`."""
    out: dict[str, Any] = {}
    for key in ("field_map", "value_map"):
        text = request.form.get(key)
        if text is None or text == "":
            continue
        if len(text) > 4_000_000:
            raise InputError(
                "字段或值对应过长", "the field or value mappings are too long", code="bad_mapping"
            )
        try:
            out[key] = json.loads(text)
        except (ValueError, RecursionError):  # not JSON, digits past the limit, or nested past it
            raise InputError(
                f"{key} 不是有效的 JSON", f"{key} is not valid JSON", code="bad_mapping"
            ) from None
    remember = request.form.get("remember")
    if remember is not None and remember != "":
        if remember not in ("0", "1", "true", "false"):
            raise InputError("remember 应为 0 或 1", "remember must be 0 or 1", code="bad_mapping")
        out["remember"] = remember in ("1", "true")
    uploads.check_mapping_params(out)
    return out


def _report(report: Any, **extra: Any) -> dict[str, Any]:
    body = report.to_dict()
    body.update(extra)
    return web_messages(body)  # warnings name the form's boxes, not the command line's options


@bp.post("/uploads")
@requires("surveyor")
@reads_files
def api_upload() -> Any:
    limit = current_app.config.get("MAX_CONTENT_LENGTH")
    if limit and (request.content_length or 0) > limit:
        abort(413)  # refuse before reading any of the body
    file = request.files.get("file")
    if file is None or not file.filename:
        raise InputError("请选择要上传的文件", "no file in the upload (field 'file')", code="no_file")
    layer = request.form.get("layer", "")
    if layer not in {s.name for s in layers.all_layers()}:
        raise InputError(
            f"请选择图层（当前: {layer or '未选择'}）",
            f"choose a layer (got '{layer}')",
            code="unknown_layer",
        )
    _check_layer(layer)
    mappings = _mapping_form()
    upload_id = uploads.stage(
        _data_dir(),
        file.filename,
        file.stream,
        layer,
        request.form.get("encoding"),
        request.form.get("crs"),
        request.form.get("member"),
        owner=user_name(),
        staging=_staging_limits(),
    )
    try:
        report = _preview(upload_id, mappings)
    except Exception:
        uploads.discard(_data_dir(), upload_id)
        raise
    return jsonify(_report(report, upload_id=upload_id)), 201


def _preview(upload_id: str, overrides: dict[str, Any]) -> Any:
    """Read a staged upload again (with ``overrides``) for the signed-in account."""
    return upload_review.preview(
        get_store(),
        _data_dir(),
        upload_id,
        user=user_name(),
        admin=is_admin(),
        valid_from=_valid_from(),
        tz=timezone(),
        **overrides,
    )


def _valid_from() -> str | None:
    """The form's ``valid_from``: the day a grid upload's version is in force from (empty: the
    import day).  Checked where it is used (a date, only for the grid, not after today)."""
    value = request.form.get("valid_from")
    return value.strip() or None if value is not None else None


@bp.post("/uploads/<upload_id>/preview")
@requires("surveyor")
@reads_files
def api_upload_preview(upload_id: str) -> Any:
    _check_owner(upload_id)
    if "layer" in request.form:
        _check_layer(request.form["layer"])
    overrides: dict[str, Any] = {
        k: request.form.get(k) for k in ("layer", "encoding", "crs", "member") if k in request.form
    }
    overrides.update(_mapping_form())
    report = _preview(upload_id, overrides)
    return jsonify(_report(report, upload_id=upload_id))


@bp.post("/uploads/<upload_id>/commit")
@requires("surveyor")
@reads_files
def api_upload_commit(upload_id: str) -> Any:
    _check_owner(upload_id)
    report = upload_review.commit(
        get_store(),
        _data_dir(),
        upload_id,
        user=user_name(),
        admin=is_admin(),
        valid_from=_valid_from(),
        tz=timezone(),
    )
    return jsonify(_report(report))


@bp.get("/uploads/<upload_id>/features")
@requires("surveyor")
@reads_files
def api_upload_features(upload_id: str) -> Any:
    _check_owner(upload_id)
    return jsonify(
        upload_features.features(
            get_store(),
            _data_dir(),
            upload_id,
            max_features=_int(
                "limit", upload_features.PREVIEW_MAX_FEATURES, 1, upload_features.PREVIEW_MAX_FEATURES
            ),
            gcj02=_gcj02(),
        )
    )


@bp.delete("/uploads/<upload_id>")
@requires("surveyor")
def api_upload_discard(upload_id: str) -> Any:
    _check_owner(upload_id)
    uploads.discard(_data_dir(), upload_id)
    return "", 204


@bp.get("/report")
@requires("viewer")
def api_report() -> Any:
    """The monthly report (通报) as Word or PDF."""
    from geo.output.report_doc import REPORT_FORMATS, render_report, report_filename
    from geo.store import clock

    refuse_bound(("全区通报", "the district's report"))
    fmt = request.args.get("format", "docx")
    as_of = as_of_arg() or clock.today(timezone())  # none: as of today
    layer = request.args.get("layer") or None
    if layer is not None and layer not in {s.name for s in layers.survey_layers()}:
        raise InputError(f"未知图层: {layer}", f"unknown layer: {layer}", code="unknown_layer")
    level = request.args.get("level") or None
    if level is not None and level == level_names()[0]:
        raise InputError(
            "排名层级不能是单元网格", "the ranking level cannot be the unit grid", code="bad_level"
        )
    bulletin, body = render_report(
        get_store(),
        as_of,
        fmt,
        check_level(level) if level else None,
        [layer] if layer else None,
        known_at_arg(),
        grid_arg(),
        tz=timezone(),
        lang=select_locale(),
    )
    resp = Response(body, mimetype=REPORT_FORMATS[fmt])
    resp.headers["Content-Disposition"] = content_disposition(report_filename(bulletin, fmt))
    return resp


@bp.get("/map-image")
@requires(MAP)
def api_map_image() -> Any:
    """The map as a printable image: PNG or PDF, A4 or A3 landscape."""
    from geo.output.mapimage import render_map

    refuse_bound(("全区地图图片", "the district's map image"))
    fmt = request.args.get("format", "png")
    layer = request.args.get("layer") or None
    if layer is not None and layer not in {s.name for s in layers.survey_layers()}:
        raise InputError(f"未知图层: {layer}", f"unknown layer: {layer}", code="unknown_layer")
    statuses = tuple(s for s in request.args.get("status", "").split(",") if s) or None
    body = render_map(
        get_store(),
        layer=layer,
        level=check_level(request.args.get("level")),
        metric=request.args.get("metric", "rate"),
        as_of=as_of_arg(),
        within=request.args.get("within") or None,
        statuses=statuses,
        bbox=BBox.parse(request.args.get("bbox")),
        paper=request.args.get("paper", "a4"),
        fmt=fmt,
        lang=select_locale(),
        known_at=known_at_arg(),
        grid=grid_arg(),
        tz=timezone(),
    )
    resp = Response(body, mimetype="application/pdf" if fmt == "pdf" else "image/png")
    resp.headers["Content-Disposition"] = content_disposition(f"map.{fmt}")
    return resp


@bp.get("/openapi.json")
@requires(PUBLIC)
def api_openapi() -> Any:
    from web.openapi import document

    return jsonify(document())
