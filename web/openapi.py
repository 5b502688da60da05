"""The OpenAPI 3.1 document of the JSON API (served at /api/openapi.json).

Kept beside the routes it describes: every route under /api (and /healthz) with its parameters,
their types and bounds, request bodies, who may call it and the responses it gives.  A test
fails when a route is missing here, and ``tests/test_fuzz.py`` sends requests generated from
this document to every operation.  Layer names, levels and export formats come from their
registries, so the document follows what the server accepts.  The security schemes and the
schemas the operations share are in :mod:`web.openapi_schemas`."""

from __future__ import annotations

from typing import Any

import layers
from geo.figures.hierarchy import level_names
from geo.imports.batches import TARGET_SPEC
from geo.output.export import renderers
from web.common import MAX_ID
from web.openapi_schemas import (
    BATCH_REF,
    ERROR_REF,
    GEOJSON_REF,
    REPORT_REF,
    STATS_REF,
    VIEWPORT_REF,
    components,
)

#: Who may call an operation (see web.access.requires): an API token (or a signed-in browser
#: session) of an account with the role, or anyone.
_PUBLIC: list[dict[str, list[str]]] = [{}]
_SIGNED_IN = [{"bearer": []}, {"session": []}]
_MAP = [*_SIGNED_IN, {}]  # anonymous only with GRIDWATCH_PUBLIC_MAP=1


def _q(
    name: str, description: str, schema: dict[str, Any] | None = None, required: bool = False
) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": required,
        "description": description,
        "schema": schema or {"type": "string", "maxLength": 200},
    }


def _path(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "description": description, "schema": schema}


_REASONS = {
    400: "请求有误 / bad request (code and bilingual message in the body)",
    401: "需要登录 / sign in or send an API token",
    403: "无权访问 / the account's role does not allow this, or its area does not (`outside_area`)",
    404: "不存在 / not found (a feature outside the account's area too)",
    409: "冲突 / conflicts with the stored data",
    413: "过大 / too large",
    415: "不支持的文件类型 / unsupported file type",
    503: "存储不可写（磁盘已满、只读）/ the store cannot be written (disk full, read-only)",
}


def _errors(*codes: int) -> dict[str, Any]:
    return {
        str(c): {"description": _REASONS[c], "content": {"application/json": {"schema": ERROR_REF}}}
        for c in codes
    }


#: The answer of a route whose body is kept and tagged (web/answers.py).
_NOT_MODIFIED = {
    "304": {
        "description": "the answer is the one named in If-None-Match (the 200 carries a strong ETag that "
        "changes with every write, grid revision, target or value-mapping change and with the day, and "
        "Cache-Control: private, no-cache; a gzip-compressed answer has a tag of its own): no body",
        "headers": {"ETag": {"schema": {"type": "string"}}},
    }
}


def _ok(
    description: str, schema: dict[str, Any] | None = None, media: str = "application/json"
) -> dict[str, Any]:
    return {"description": description, "content": {media: {"schema": schema or {"type": "object"}}}}


def _op(
    summary: str,
    security: list[dict[str, list[str]]],
    responses: dict[str, Any],
    parameters: list[dict[str, Any]] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """One operation; every one takes ``lang`` and answers errors of access it can meet."""
    denied = {} if security is _PUBLIC else _errors(401, 403)
    return {
        "summary": summary,
        "security": security,
        "parameters": [*(parameters or []), LANG],
        "responses": {**responses, **denied},
        **extra,
    }


ID = {"type": "integer", "minimum": 1, "maximum": MAX_ID}
#: a decimal number in a query string
NUMBER = {"type": "string", "pattern": "^-?[0-9]{1,4}(\\.[0-9]{1,12})?$", "maxLength": 20}
UPLOAD_ID = _path(
    "upload_id",
    "as returned by POST /api/uploads",
    {"type": "string", "pattern": "^[A-Za-z0-9_-]{16,64}$"},
)
LANG = _q("lang", "zh (default) or en: the language of `message`", {"type": "string", "enum": ["zh", "en"]})


def _level() -> dict[str, Any]:
    """The ``level`` parameter: the levels the grid declares, the unit grid the default."""
    names = level_names()
    described = " | ".join([f"{names[0]} (default)", *names[1:]])
    return _q("level", described, {"type": "string", "enum": names})


AS_OF = _q(
    "as_of",
    "count as of the end of this day: 2022-05-25, 20220525, 2022/5/25 or 2022年5月25日 "
    "(years 1950–2100); without it every stored feature counts",
    {"type": "string", "maxLength": 64, "examples": ["2022-06-30", "20220630", "2022年6月30日"]},
)
KNOWN_AT = _q(
    "known_at",
    "the figures as the store held them at this moment, later corrections, re-imports and rollbacks "
    "excluded: an ISO 8601 time (2024-05-01T10:30, 2024-05-01T10:30:00+08:00, 2024-05-01T02:30:00Z; "
    "without a zone in GRIDWATCH_TIMEZONE, default Asia/Shanghai) or a date (the end of that day); "
    "the `metadata.computed_at.at` of an earlier export reproduces its figures",
    {"type": "string", "maxLength": 64, "examples": ["2024-05-01T10:30", "2024-05-01T02:30:00.123456Z"]},
)
GRID = _q(
    "grid",
    "count on this grid version instead of the one in force on the as-of day (or today): `current` "
    "(the newest, at known_at) or a version id (gridwatch grids)",
    {"type": "string", "maxLength": 20, "pattern": "^(current|[0-9]{1,19})$", "examples": ["current", "3"]},
)
BBOX = _q(
    "bbox",
    "west,south,east,north in degrees (EPSG:4326), west < east, south < north",
    {
        "type": "string",
        "maxLength": 200,
        "pattern": r"^-?[0-9]+(\.[0-9]+)?(,-?[0-9]+(\.[0-9]+)?){3}$",
        "examples": ["118.35,31.25,118.45,31.35"],
    },
)
ZOOM = _q("zoom", "web-map zoom level (default 14)", {"type": "integer", "minimum": 0, "maximum": 24})
CRS = _q(
    "crs",
    "gcj02 to receive coordinates shifted for Gaode/Tencent base maps; anything else: EPSG:4326",
    {"type": "string", "maxLength": 20, "examples": ["gcj02"]},
)
WITHIN = _q("within", "only units under this unit code (a community, street or district)")


def _headers_param(default: str) -> dict[str, Any]:
    return _q(
        "headers",
        f"the CSV's header row: zh (Chinese labels), en (English labels) or code (column names); default {default}",
        {"type": "string", "enum": ["zh", "en", "code"]},
    )


def _survey_layer(name: str = "layer", where: str = "query") -> dict[str, Any]:
    # a layer by its code, its Chinese or its English name (违法建设, Illegal construction)
    names = [n for s in layers.survey_layers() for n in (s.name, s.label_zh, s.label_en)]
    schema = {"type": "string", "enum": names}
    if where == "path":
        return _path(name, "survey layer: its code, Chinese or English name (see /api/layers)", schema)
    return _q(name, "survey layer: its code, Chinese or English name (see /api/layers); default: all", schema)


def _photo_paths(feature_path: list[dict[str, Any]]) -> dict[str, Any]:
    """The photos on features (web/photos.py)."""
    photo = {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "layer": {"type": "string"},
            "feature": {"type": "integer", "description": "the feature's id (fid)"},
            "feature_version": {"type": ["integer", "null"], "description": "the version sent with it"},
            "sha256": {"type": "string", "description": "SHA-256 of the stored image"},
            "type": {"type": "string", "enum": ["image/jpeg", "image/webp"]},
            "width": {"type": "integer"},
            "height": {"type": "integer"},
            "bytes": {"type": "integer"},
            "taken_at": {
                "type": ["string", "null"],
                "description": "EXIF DateTimeOriginal, YYYY-MM-DDTHH:MM:SS with +HH:MM when the photo says its offset",
            },
            "lon": {"type": ["number", "null"], "description": "EXIF GPS position, WGS-84"},
            "lat": {"type": ["number", "null"]},
            "uploaded_by": {"type": ["string", "null"]},
            "uploaded_at": {"type": "string"},
            "note": {"type": ["string", "null"]},
            "url": {"type": "string", "description": "the full image (GET /api/photos/{id})"},
            "thumb_url": {"type": "string", "description": "its thumbnail (320 px)"},
        },
    }
    fid = _path("fid", "feature id", ID)
    form = {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["file"],
                "properties": {
                    "file": {
                        "type": "string",
                        "format": "binary",
                        "description": "JPEG, PNG or WebP (by content), at most GRIDWATCH_PHOTO_MAX_BYTES (20 MB) and "
                        "GRIDWATCH_PHOTO_MAX_PIXELS (50 megapixels); decoded and stored again as JPEG (WebP with "
                        "transparency) with no metadata",
                    },
                    "note": {"type": "string", "maxLength": 500},
                    "version": {
                        "type": "integer",
                        "minimum": 1,
                        "description": "the feature version it shows",
                    },
                },
            }
        }
    }
    return {
        "/api/features/{layer}/{fid}/photos": {
            "get": _op(
                "要素的照片 / the photos of a feature, with their EXIF time and position",
                _SIGNED_IN,
                {
                    "200": _ok(
                        "photos",
                        {"type": "object", "properties": {"photos": {"type": "array", "items": photo}}},
                    ),
                    **_errors(400),
                },
                [*feature_path, fid],
            ),
            "post": _op(
                "上传照片 / add a photo to a feature (surveyors and admins)",
                _SIGNED_IN,
                {
                    "201": _ok("the photo kept, with warnings on EXIF values left out", photo),
                    **_errors(400, 404, 413),
                },
                [*feature_path, fid],
                requestBody={"required": True, "content": form},
            ),
        },
        "/api/photos/{photo_id}": {
            "get": _op(
                "照片文件 / the image (inline, nosniff, cached privately for a day; ETag its SHA-256)",
                _SIGNED_IN,
                {
                    "200": {
                        "description": "the image",
                        "content": {
                            t: {"schema": {"type": "string", "format": "binary"}}
                            for t in ("image/jpeg", "image/webp")
                        },
                    },
                    "304": {"description": "not modified (If-None-Match)"},
                    **_errors(400, 404),
                },
                [
                    _path("photo_id", "photo id", ID),
                    _q("size", "full (default) or thumb", {"type": "string", "enum": ["full", "thumb"]}),
                ],
            )
        },
    }


def document() -> dict[str, Any]:
    """The OpenAPI document."""
    doc = _document()
    paths = doc["paths"]
    for path, ops in _edit_paths().items():
        paths.setdefault(path, {}).update(ops)
    return doc


def _edit_paths() -> dict[str, Any]:
    """Editing and adding features (web/edits.py); the rollback's choice to drop later edits."""
    layer = _path("layer", "survey layer (name or Chinese label)", {"type": "string", "maxLength": 100})
    fid = _path("fid", "the feature's id (a current row's fid, as the map hands out, names it too)", ID)
    geometry = {
        "type": "object",
        "description": "GeoJSON geometry in WGS-84 lon/lat (GCJ-02 with crs=gcj02), of a type the layer holds "
        "(Point or Polygon and their Multi forms), at most 10,000 vertices",
        "required": ["type", "coordinates"],
        "properties": {"type": {"type": "string"}, "coordinates": {"type": "array"}},
    }
    fields = {
        "type": "object",
        "description": "field name → value (the layer's declared fields, GET /api/layers; a status or category "
        "takes a code or its label; dates YYYY-MM-DD, none after today, a completion date none before the found "
        "date; numbers finite and not negative, counts whole; null or empty clears; 400 `bad_field` otherwise). A "
        "status set to a completed one without a completion date gets today's. A feature added needs one of the "
        "layer's required_any fields (its survey id, name or address)",
        "additionalProperties": {"type": ["string", "number", "integer", "null"]},
    }
    result = {
        "type": "object",
        "properties": {
            "layer": {"type": "string"},
            "id": {"type": "integer", "description": "the feature's id, the same across its versions"},
            "version": {"type": "integer", "description": "its version now (send it with the next edit)"},
            "fid": {"type": "integer", "description": "the fid of its current row version"},
            "batch_id": {
                "type": ["integer", "null"],
                "description": "the edit's batch (null: nothing changed)",
            },
            "changed": {"type": "array", "items": {"type": "string"}},
            "unit": {"type": "string", "description": "the unit grid it lies in"},
        },
    }
    crs = _q(
        "crs", "gcj02: the geometry is in GCJ-02 (Gaode)", {"type": "string", "enum": ["wgs84", "gcj02"]}
    )
    return {
        "/api/features/{layer}/{fid}": {
            "patch": _op(
                "编辑要素 / edit a feature seen at a version (surveyors and admins, in their area): a batch of its"
                " own, audited, rolled back like one; 409 `version_conflict` when it changed meanwhile",
                _SIGNED_IN,
                {
                    "200": _ok("the feature's new version (ETag: the version)", result),
                    **_errors(400, 404, 409),
                },
                [
                    layer,
                    fid,
                    crs,
                    {
                        "name": "If-Match",
                        "in": "header",
                        "required": False,
                        "description": "the version the edit is based on, when the body has none",
                        "schema": {"type": "string", "maxLength": 20},
                    },
                ],
                requestBody=_json_body(
                    {
                        "version": {"type": "integer", "minimum": 1},
                        "fields": fields,
                        "geometry": geometry,
                        "note": {"type": "string", "maxLength": 1000},
                    }
                ),
            )
        },
        "/api/features/{layer}/{fid}/history": {
            "get": _op(
                "要素的版本历史 / a feature's versions, oldest first: who wrote each (import or edit), when, the"
                " fields it changed, whether its batch was rolled back",
                _SIGNED_IN,
                {"200": _ok("the versions"), **_errors(400, 404)},
                [layer, fid],
            )
        },
        "/api/features/{layer}": {
            "post": _op(
                "新增要素 / add a feature by hand at a position (surveyors and admins, in their area)",
                _SIGNED_IN,
                {"201": _ok("the new feature, version 1", result), **_errors(400, 409)},
                [layer, crs],
                requestBody=_json_body(
                    {
                        "geometry": geometry,
                        "fields": fields,
                        "note": {"type": "string", "maxLength": 1000},
                    },
                    ["geometry"],
                ),
            )
        },
    }


def _document() -> dict[str, Any]:
    from geo.output.mapimage import METRICS, PAPERS  # matplotlib and python-docx load on first use
    from geo.output.report_doc import REPORT_FORMATS

    all_layers = [s.name for s in layers.all_layers()]
    formats = [r.name for r in renderers()]
    upload_fields = {
        "layer": {"type": "string", "enum": all_layers, "description": "图层 / layer (grid: admins only)"},
        "encoding": {
            "type": "string",
            "maxLength": 40,
            "description": "DBF/CSV text encoding: UTF-8, GBK/GB18030, Big5, UTF-16, Latin-1 … "
            "(anything else is a 400)",
        },
        "crs": {"type": "string", "maxLength": 2000, "description": "EPSG:4548, an ESRI name, WKT or gcj02"},
        "member": {"type": "string", "maxLength": 500, "description": "dataset inside a zip holding several"},
        "valid_from": {
            "type": "string",
            "maxLength": 64,
            "description": "grid only: the day its version is in force from (default the import day; not "
            "after today, not before the current version's); also taken by the commit",
        },
        "field_map": {
            "type": "string",
            "description": "字段对应 / JSON object: column of the file → field of the layer (name or label; "
            '"" leaves the column out), e.g. {"拆除日期2": "done_on"}',
        },
        "value_map": {
            "type": "string",
            "description": "值对应 / JSON array of [field, raw value, code], e.g. "
            '[["当前状态", "暂缓拆除", "已下发通知"]]; code 未识别 keeps a value unrecognised',
        },
        "remember": {
            "type": "string",
            "enum": ["0", "1", "true", "false"],
            "description": "remember the value mappings for later imports (admins only; default 1 for admins)",
        },
    }
    upload_form = {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["layer", "file"],
                "properties": {
                    **upload_fields,
                    "file": {
                        "type": "string",
                        "format": "binary",
                        "description": "zip, shp (with sidecars in a zip), gpkg, geojson, kml/kmz, csv, xlsx",
                    },
                },
            }
        }
    }
    reread_form = {
        "schema": {
            "type": "object",
            "properties": upload_fields,
            "description": "any of layer, encoding, crs, member, field_map, value_map, remember; the rest"
            " stays as uploaded",
        }
    }
    stats_media = {
        r.mimetype.split(";")[0]: {"schema": {"type": "string", "format": "binary"}} for r in renderers()
    }
    stats_media["application/json"] = {"schema": STATS_REF}
    feature_path = [_survey_layer(where="path")]
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "gridwatch API",
            "version": "0.1.0",
            "description": "网格化管理统计接口 / grid-management statistics API.  Errors carry `message` "
            "in the request's language (Chinese unless `?lang=en` or the `gridwatch_lang` cookie asks "
            "for English) and always `message_zh` and `message_en`.  Scripts authenticate with "
            "`Authorization: Bearer <token>`; browsers with the session cookie plus an `X-CSRFToken` "
            "header on writes.",
        },
        "paths": {
            "/healthz": {"get": _op("health", _PUBLIC, {"200": _ok("ok")})},
            "/api/layers": {
                "get": _op(
                    "图层 / layers",
                    _MAP,
                    {"200": _ok("layers with fields, statuses and counts", {"type": "array"})},
                )
            },
            "/api/cells": {
                "get": _op(
                    "单元轮廓与统计 / unit outlines with figures in a viewport",
                    _MAP,
                    {
                        "200": _ok(
                            "GeoJSON FeatureCollection (too_many when the level is too fine)", GEOJSON_REF
                        ),
                        **_NOT_MODIFIED,
                        **_errors(400),
                    },
                    [_level(), _survey_layer(), AS_OF, KNOWN_AT, GRID, BBOX, ZOOM, CRS, WITHIN],
                )
            },
            "/api/summary": {
                "get": _op(
                    "地图抬头合计 / the map's headline figures for its filters, and the area's extent",
                    _MAP,
                    {
                        "200": _ok(
                            "layer, total, completed, unassigned, rate (null without features) and bounds "
                            "[west, south, east, north] of the area (else of the unit grid) in degrees",
                            {"type": "object"},
                        ),
                        **_errors(400),
                    },
                    [
                        _level(),
                        _survey_layer(),
                        AS_OF,
                        WITHIN,
                        _q("status", "comma-separated status codes of the layer (see /api/layers)"),
                    ],
                )
            },
            "/api/features/{layer}": {
                "get": _op(
                    "视口内要素（少则逐个，多则聚合）/ features in a viewport, one by one or clustered",
                    _MAP,
                    {
                        "200": _ok(
                            "GeoJSON FeatureCollection, or clusters with their status mix", VIEWPORT_REF
                        ),
                        **_errors(400, 404),
                    },
                    [
                        *feature_path,
                        {**BBOX, "required": True},
                        ZOOM,
                        AS_OF,
                        CRS,
                        _q("status", "comma-separated status codes (see /api/layers)"),
                        _q("unit", "only features in this unit grid (or UNASSIGNED)"),
                        _q("detail", "1 or true: every attribute with each feature"),
                        _q("within", "only features in unit grids under this street/community code"),
                    ],
                )
            },
            "/api/search": {
                "get": _op(
                    "查找单元与要素 / find units (by code or name, every level) and survey features (by "
                    "survey id or address), best first: exact code, then prefix, then substring",
                    _MAP,
                    {
                        "200": _ok(
                            "hits: kind (unit | feature), level or layer, code, label, parent, bbox and point "
                            "in degrees, a unit's outline (GeoJSON)",
                            {"type": "object", "properties": {"hits": {"type": "array"}}},
                        ),
                        **_errors(400),
                    },
                    [
                        _q(
                            "q",
                            "the text to find (literal, any case), 1–100 characters",
                            {"type": "string", "maxLength": 200},
                            required=True,
                        ),
                        _q(
                            "limit",
                            "at most this many hits (default 20)",
                            {"type": "integer", "minimum": 1, "maximum": 100},
                        ),
                        _survey_layer(),
                        CRS,
                    ],
                )
            },
            "/api/features-table": {
                "get": _op(
                    "要素列表与导出 / a survey layer's features filtered by area, status, dates and text, "
                    "sorted: one page as JSON, or the whole filtered set as CSV/XLSX (Chinese headers) or "
                    "GeoJSON/GPKG (EPSG:4490)",
                    _SIGNED_IN,
                    {
                        "200": {
                            "description": "a page (total, page, pages, columns, rows) or the export",
                            "content": {
                                "application/json": {"schema": {"type": "object"}},
                                "text/csv": {"schema": {"type": "string"}},
                                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": {
                                    "schema": {"type": "string", "format": "binary"}
                                },
                                "application/geo+json": {"schema": {"type": "object"}},
                                "application/geopackage+sqlite3": {
                                    "schema": {"type": "string", "format": "binary"}
                                },
                            },
                        },
                        **_errors(400),
                    },
                    [
                        _survey_layer(),
                        _q(
                            "within",
                            "only features in unit grids under this unit code (any level), or UNASSIGNED",
                        ),
                        _q("status", "comma-separated status codes (see /api/layers)"),
                        _q("date_field", "the date field from/to apply to (default the layer's found date)"),
                        _q("from", "on or after this day (as as_of)", {"type": "string", "maxLength": 64}),
                        _q("to", "on or before this day (as as_of)", {"type": "string", "maxLength": 64}),
                        _q(
                            "q",
                            "literal text in the survey id, name or address (any case)",
                            {"type": "string", "maxLength": 100},
                        ),
                        _q("sort", "a column: a field of the layer or gw_unit"),
                        _q("order", "asc (default) or desc", {"type": "string", "enum": ["asc", "desc"]}),
                        _q(
                            "page",
                            "1-based page (JSON only)",
                            {"type": "integer", "minimum": 1, "maximum": 999999999},
                        ),
                        _q(
                            "size",
                            "rows per page: 20, 50 (default), 100 or 200",
                            {"type": "integer", "minimum": 20, "maximum": 200, "enum": [20, 50, 100, 200]},
                        ),
                        _q(
                            "format",
                            "json (default: one page), csv, xlsx, geojson or gpkg (the whole filtered set)",
                            {"type": "string", "enum": ["json", "csv", "xlsx", "geojson", "gpkg"]},
                        ),
                        _q(
                            "headers",
                            "zh (default) or en: CSV/XLSX column headers",
                            {"type": "string", "enum": ["zh", "en"]},
                        ),
                    ],
                )
            },
            "/api/ledger/{layer}": {
                "get": _op(
                    "要素台账下载 / the layer's features as a table: every field, the status as stored and as"
                    " surveyed (<field>_raw), the unit grid, the batch, lon/lat",
                    _SIGNED_IN,
                    {
                        "200": {
                            "description": "the ledger",
                            "content": {
                                "text/csv": {"schema": {"type": "string"}},
                                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": {
                                    "schema": {"type": "string", "format": "binary"}
                                },
                                "application/geo+json": {"schema": {"type": "object"}},
                            },
                        },
                        **_errors(400, 404),
                    },
                    [
                        *feature_path,
                        _q(
                            "format",
                            "xlsx (default), csv or geojson",
                            {"type": "string", "enum": ["xlsx", "csv", "geojson"]},
                        ),
                        _headers_param("the page language"),
                    ],
                )
            },
            "/api/features/near": {
                "get": _op(
                    "附近的要素 / the current survey features nearest a position (a phone's list), "
                    "within the account's area, nearest first; distances in metres in the store's CRS",
                    _SIGNED_IN,
                    {
                        "200": _ok(
                            "lon, lat, radius, total (within the radius) and features: id and version (the "
                            "feature's stable id and version, as an edit names and sends them), layer, status, "
                            "completed, label (survey id, name, address), distance (m), lon, lat",
                            {
                                "type": "object",
                                "properties": {
                                    "total": {"type": "integer"},
                                    "features": {"type": "array", "items": {"type": "object"}},
                                },
                            },
                        ),
                        **_errors(400),
                    },
                    [
                        _q(
                            "lon",
                            "longitude, WGS-84 degrees, -180..180 (GCJ-02 with crs=gcj02)",
                            NUMBER,
                            required=True,
                        ),
                        _q(
                            "lat",
                            "latitude, WGS-84 degrees, -90..90",
                            NUMBER,
                            required=True,
                        ),
                        _q(
                            "radius",
                            "metres, over 0 and at most 5000 (default 500)",
                            NUMBER,
                        ),
                        _survey_layer(),
                        _q("status", "comma-separated status codes (see /api/layers)"),
                        _q(
                            "limit",
                            "at most this many features (default 50)",
                            {"type": "integer", "minimum": 1, "maximum": 200},
                        ),
                        CRS,
                    ],
                )
            },
            "/api/features/{layer}/{fid}": {
                "get": _op(
                    "单个要素及全部属性 / one feature with all its attributes",
                    _MAP,
                    {"200": _ok("GeoJSON Feature"), **_errors(400, 404)},
                    [*feature_path, _path("fid", "feature id", ID), CRS],
                )
            },
            **_photo_paths(feature_path),
            "/api/stats": {
                "get": _op(
                    "统计表 / statistics",
                    _SIGNED_IN,
                    {
                        "200": {
                            "description": "the table in the asked format; files come with a "
                            "Content-Disposition naming them (ASCII filename= and RFC 5987 filename*=)",
                            "content": stats_media,
                        },
                        **_NOT_MODIFIED,
                        **_errors(400),
                    },
                    [
                        _level(),
                        _survey_layer(),
                        AS_OF,
                        KNOWN_AT,
                        GRID,
                        WITHIN,
                        _q("format", "output format (default json)", {"type": "string", "enum": formats}),
                        _q(
                            "header",
                            "1: a CSV starts with `# ` lines saying what it was computed from (as-of day, "
                            "known-at moment, grid version, layer revisions); default 0, a plain table",
                            {"type": "string", "enum": ["0", "1"]},
                        ),
                        _headers_param("code"),
                        _q(
                            "rows",
                            "JSON rows: `objects` (default) one {column: value} object per row; `arrays` the "
                            "compact form, a `fields` list of the column names once and each row an array "
                            "of the values in that order (about a fifth of the size; other formats ignore it)",
                            {"type": "string", "enum": ["objects", "arrays"]},
                        ),
                    ],
                )
            },
            "/api/html-map": {
                "get": _op(
                    "单张地图 HTML / one street's or community's map as a standalone HTML file for e-mail: "
                    "Leaflet inlined, units coloured by completion, sites in their status colours",
                    _SIGNED_IN,
                    {
                        "200": {
                            "description": "the HTML file, with a Content-Disposition naming it",
                            "content": {"text/html": {"schema": {"type": "string"}}},
                        },
                        **_errors(400, 503),
                    },
                    [
                        _q("within", "a street or community code (or a unit grid's)", required=True),
                        _survey_layer(),
                        AS_OF,
                        KNOWN_AT,
                        GRID,
                    ],
                )
            },
            "/api/uploads": {
                "post": _op(
                    "上传并预览 / upload a survey file and get its import report (nothing is written)",
                    _SIGNED_IN,
                    {"201": _ok("import report with upload_id", REPORT_REF), **_errors(400, 413, 415, 503)},
                    requestBody={"required": True, "content": upload_form},
                )
            },
            "/api/uploads/{upload_id}/preview": {
                "post": _op(
                    "改参数重读 / read again with another encoding, crs, layer or member",
                    _SIGNED_IN,
                    {"200": _ok("import report", REPORT_REF), **_errors(400, 404, 413, 415)},
                    [UPLOAD_ID],
                    requestBody={
                        "required": False,
                        "content": {
                            "multipart/form-data": reread_form,
                            "application/x-www-form-urlencoded": reread_form,
                        },
                    },
                )
            },
            "/api/uploads/{upload_id}/features": {
                "get": _op(
                    "上传中可导入的要素（预览地图用）/ the features an upload would add, for a preview map",
                    _SIGNED_IN,
                    {
                        "200": _ok(
                            "GeoJSON FeatureCollection; each feature's properties: inside (it fell in a "
                            "unit grid), unit (that grid's code or null)",
                            {
                                "type": "object",
                                "required": ["type", "features", "total", "sent", "inside", "outside"],
                                "properties": {
                                    "type": {"const": "FeatureCollection"},
                                    "features": {"type": "array"},
                                    "total": {"type": "integer", "description": "accepted features"},
                                    "sent": {"type": "integer", "description": "features in this response"},
                                    "inside": {"type": "integer", "description": "accepted, in a unit grid"},
                                    "outside": {
                                        "type": "integer",
                                        "description": "accepted, in no unit grid",
                                    },
                                    "as_points": {
                                        "type": "boolean",
                                        "description": "polygons and lines sent as points",
                                    },
                                    "bbox": {"type": ["array", "null"], "description": "of all accepted"},
                                    "grid_bbox": {
                                        "type": ["array", "null"],
                                        "description": "of the unit grid",
                                    },
                                },
                            },
                        ),
                        **_errors(400, 404),
                    },
                    [
                        UPLOAD_ID,
                        _q(
                            "limit",
                            "most features to send (default and largest 5000)",
                            {"type": "integer", "minimum": 1, "maximum": 5000},
                        ),
                        CRS,
                    ],
                    description="Lon/lat (EPSG:4326, or GCJ-02 with crs=gcj02).  At most `limit` features "
                    "(an even sample of them when there are more); polygons and lines simplified, or sent "
                    "as a point on their surface when many.",
                )
            },
            "/api/uploads/{upload_id}/commit": {
                "post": _op(
                    "确认导入 / commit the upload as one batch",
                    _SIGNED_IN,
                    {"200": _ok("import report of the batch", REPORT_REF), **_errors(400, 404, 409, 503)},
                    [UPLOAD_ID],
                )
            },
            "/api/uploads/{upload_id}": {
                "delete": _op(
                    "放弃上传 / discard an upload",
                    _SIGNED_IN,
                    {"204": {"description": "discarded"}, **_errors(404)},
                    [UPLOAD_ID],
                )
            },
            "/api/batches": {
                "get": _op(
                    "导入批次 / batches",
                    _SIGNED_IN,
                    {"200": _ok("batches, oldest first", {"type": "array", "items": BATCH_REF})},
                    [
                        _q(
                            "layer",
                            "only this layer's batches",
                            {"type": "string", "enum": [*all_layers, TARGET_SPEC.name]},
                        )
                    ],
                )
            },
            "/api/batches/{batch_id}": {
                "delete": _op(
                    "回滚批次 / roll back a batch (surveyors: their own survey batches and edits); refused (409,"
                    " details.edits) when its features were edited since, unless an admin sends drop_edits=1",
                    _SIGNED_IN,
                    {"200": _ok("the batch, rolled back", BATCH_REF), **_errors(404, 409, 503)},
                    [
                        _path("batch_id", "batch id", ID),
                        _q(
                            "drop_edits",
                            "1: also roll back the later edits of its features, newest first (admins)",
                            {"type": "string", "enum": ["0", "1"]},
                        ),
                    ],
                )
            },
            "/api/report": {
                "get": _op(
                    "月度通报 / the monthly report (通报) as Word or PDF",
                    _SIGNED_IN,
                    {
                        "200": {
                            "description": "the report, with a Content-Disposition naming it; its figures equal "
                            "/api/stats for the same as_of, known_at and grid",
                            "content": {
                                mime: {"schema": {"type": "string", "format": "binary"}}
                                for mime in REPORT_FORMATS.values()
                            },
                        },
                        **_errors(400, 503),
                    },
                    [
                        _q(
                            "as_of",
                            "the report's as-of day (default: today); 本月 is its calendar month",
                        ),
                        _q(
                            "level",
                            "the level ranked (default: the level above the communities)",
                            {"type": "string", "enum": level_names()[1:]},
                        ),
                        _q(
                            "layer",
                            "one survey layer (default: every one)",
                            {"type": "string", "enum": [s.name for s in layers.survey_layers()]},
                        ),
                        KNOWN_AT,
                        GRID,
                        _q(
                            "format",
                            "docx (default) or pdf (503 without LibreOffice)",
                            {"type": "string", "enum": list(REPORT_FORMATS)},
                        ),
                    ],
                )
            },
            "/api/map-image": {
                "get": _op(
                    "导出地图 / the map as a printable image (title, legends, scale bar, north arrow, date)",
                    _MAP,
                    {
                        "200": {
                            "description": "the map on A4 or A3 landscape",
                            "content": {
                                "image/png": {"schema": {"type": "string", "format": "binary"}},
                                "application/pdf": {"schema": {"type": "string", "format": "binary"}},
                            },
                        },
                        **_errors(400, 503),
                    },
                    [
                        _q(
                            "format",
                            "png (default, 150 dpi) or pdf",
                            {"type": "string", "enum": ["png", "pdf"]},
                        ),
                        _q(
                            "paper", "a4 (default) or a3, landscape", {"type": "string", "enum": list(PAPERS)}
                        ),
                        _survey_layer(),
                        _level(),
                        _q(
                            "metric",
                            "what colours the units (default rate)",
                            {"type": "string", "enum": list(METRICS)},
                        ),
                        AS_OF,
                        WITHIN,
                        _q("status", "only features with these status codes, comma-separated"),
                        _q(
                            "bbox",
                            "the view drawn: west,south,east,north in WGS84 degrees (default: every unit)",
                        ),
                        KNOWN_AT,
                        GRID,
                    ],
                )
            },
            "/api/openapi.json": {"get": _op("this document", _PUBLIC, {"200": _ok("OpenAPI 3.1")})},
            **_webhook_paths(),
            **_patrol_paths(),
            **_task_paths(),
        },
        "components": components(),
    }


_WEBHOOK = {
    "type": "object",
    "required": ["id", "format", "url", "signed"],
    "properties": {
        "id": {"type": "integer"},
        "area": {"type": ["string", "null"], "description": "区域代码 / the area code (or null)"},
        "account": {"type": ["string", "null"], "description": "账户 / the account (or null)"},
        "format": {"type": "string", "enum": ["json", "wecom", "dingtalk"]},
        "url": {"type": "string", "description": "the URL with its password and query values masked (***)"},
        "signed": {
            "type": "boolean",
            "description": "whether a dingtalk signing secret is set (never shown)",
        },
        "created_at": {"type": "string"},
        "created_by": {"type": ["string", "null"]},
    },
}

_DELIVERY = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "outbox_id": {"type": "integer"},
        "event": {"type": "string"},
        "at": {"type": "string"},
        "attempt": {"type": "integer"},
        "outcome": {"type": "string", "enum": ["sent", "retry", "failed"]},
        "http_status": {"type": ["integer", "null"]},
        "error": {"type": ["string", "null"], "description": "what went wrong, secrets masked"},
    },
}


def _webhook_paths() -> dict[str, Any]:
    """The webhook routes (admins only; ``web/webhooks.py``)."""
    hook_id = _path("webhook_id", "webhook id", ID)
    return {
        "/api/webhooks": {
            "get": _op(
                "通知 Webhook / the webhooks (admins)",
                _SIGNED_IN,
                {"200": _ok("webhooks, oldest first", {"type": "array", "items": _WEBHOOK})},
            ),
            "post": _op(
                "添加 Webhook / add a webhook for an area code or an account (admins); its host must resolve"
                " to public addresses unless GRIDWATCH_WEBHOOK_ALLOW lists them",
                _SIGNED_IN,
                {"201": _ok("the webhook", _WEBHOOK), **_errors(400, 404)},
                requestBody=_json_body(
                    {
                        "url": {"type": "string", "maxLength": 2000},
                        "format": {"type": "string", "enum": ["json", "wecom", "dingtalk"]},
                        "area": {"type": "string", "maxLength": 20},
                        "account": {"type": "string", "maxLength": 64},
                        "secret": {"type": "string", "maxLength": 200},
                    },
                    ["url", "format"],
                ),
            ),
        },
        "/api/webhooks/{webhook_id}": {
            "delete": _op(
                "删除 Webhook / remove a webhook (admins)",
                _SIGNED_IN,
                {"204": {"description": "removed; what it still had to send is given up"}, **_errors(404)},
                [hook_id],
            )
        },
        "/api/webhooks/{webhook_id}/test": {
            "post": _op(
                "发送测试消息 / queue a webhook.test message (admins); sent by the background sender",
                _SIGNED_IN,
                {
                    "202": _ok(
                        "queued: the outbox row, and whether this process sends (GRIDWATCH_WEBHOOKS)",
                        {
                            "type": "object",
                            "properties": {
                                "outbox_id": {"type": "integer"},
                                "queued": {"type": "boolean"},
                                "sending": {"type": "boolean"},
                            },
                        },
                    ),
                    **_errors(404),
                },
                [hook_id],
            )
        },
        "/api/webhooks/{webhook_id}/deliveries": {
            "get": _op(
                "发送记录 / a webhook's delivery attempts, newest first (admins)",
                _SIGNED_IN,
                {"200": _ok("attempts", {"type": "array", "items": _DELIVERY}), **_errors(404)},
                [hook_id],
            )
        },
    }


_DAY = {"type": "string", "maxLength": 64, "examples": ["2026-12-02", "20261202"]}
_PATROL = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "account": {"type": "string"},
        "day": {"type": "string", "format": "date", "description": "the local day patrolled"},
        "result": {"type": "string", "enum": ["nothing_found", "found"]},
        "units": {"type": "array", "items": {"type": "string"}, "description": "unit grid codes covered"},
        "features": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"layer": {"type": "string"}, "id": {"type": "integer"}},
            },
        },
        "note": {"type": ["string", "null"]},
        "created_at": {"type": "string", "description": "when it was filed, local time with its offset"},
        "late": {"type": "boolean", "description": "filed after its day"},
    },
}
_COVERAGE_ROW = {
    "type": "object",
    "properties": {
        "code": {"type": "string"},
        "name": {"type": ["string", "null"]},
        "parent_code": {"type": ["string", "null"]},
        "parent_name": {"type": ["string", "null"]},
        "units": {"type": "integer", "description": "unit grids counted"},
        "days_due": {"type": "integer", "description": "days due (unit-days above the unit grid)"},
        "days_reported": {"type": "integer"},
        "coverage": {"type": ["number", "null"], "description": "days_reported / days_due, 0–1"},
        "missed": {"type": "integer"},
        "missed_days": {"type": "array", "items": {"type": "string", "format": "date"}},
        "last_report": {"type": ["string", "null"], "format": "date"},
    },
}


def _patrol_paths() -> dict[str, Any]:
    """The daily patrol reports (web/patrols.py)."""
    period = [
        _q("from", "first day (default: the first of the last day's month)", _DAY),
        _q("to", "last day, included (default: as_of)", _DAY),
    ]
    return {
        "/api/patrols": {
            "get": _op(
                "巡查记录 / patrol filings for days from–to (at most 366 days), newest first, those covering"
                " the account's area; amended_by names the later filing that amended one",
                _SIGNED_IN,
                {
                    "200": _ok(
                        "filings",
                        {
                            "type": "object",
                            "properties": {
                                "from": {"type": "string"},
                                "to": {"type": "string"},
                                "patrols": {"type": "array", "items": _PATROL},
                            },
                        },
                    ),
                    **_errors(400),
                },
                [*period, _q("unit", "only filings covering this unit grid, community or street code")],
            ),
            "post": _op(
                "提交巡查 / file a day's patrol (surveyors and admins): nothing found (零报告) or the features found;"
                " a day after today is refused, an earlier one kept as late; a second filing of the account for a"
                " unit and day is refused (409 patrol_already_filed) unless amend is true",
                _SIGNED_IN,
                {"201": _ok("the filing kept, with amends: the ids it amends", _PATROL), **_errors(400, 409)},
                requestBody=_json_body(
                    {
                        "day": {
                            "type": "string",
                            "maxLength": 64,
                            "description": "default today",
                        },
                        "units": {
                            "type": "array",
                            "maxItems": 5000,
                            "items": {"type": "string", "maxLength": 40},
                            "description": "unit grid, community or street codes (default: the"
                            " account's area; required for an account bound to none)",
                        },
                        "result": {"type": "string", "enum": ["nothing_found", "found"]},
                        "features": {
                            "type": "array",
                            "maxItems": 200,
                            "items": {
                                "type": "object",
                                "required": ["layer", "id"],
                                "properties": {
                                    "layer": {"type": "string", "maxLength": 40},
                                    "id": {
                                        "oneOf": [ID, {"type": "string", "minLength": 1, "maxLength": 200}],
                                        "description": "the feature's number, or its survey id (案件编号 …)",
                                    },
                                },
                            },
                        },
                        "note": {"type": "string", "maxLength": 500},
                        "amend": {"type": "boolean"},
                    }
                ),
            ),
        },
        "/api/patrols/coverage": {
            "get": _op(
                "巡查覆盖率 / patrol coverage per unit of a level: days due (working days, or every day), days"
                " reported, rate, days missed; filings known by the end of as_of",
                _SIGNED_IN,
                {
                    "200": {
                        "description": "JSON, or the table as CSV or Excel",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "properties": {
                                        "level": {"type": "string"},
                                        "from": {"type": "string"},
                                        "to": {"type": "string"},
                                        "as_of": {"type": "string"},
                                        "working_days": {"type": "boolean"},
                                        "days_due": {"type": "array", "items": {"type": "string"}},
                                        "warning": {"type": ["string", "null"]},
                                        "totals": {"type": "object"},
                                        "rows": {"type": "array", "items": _COVERAGE_ROW},
                                    },
                                }
                            },
                            "text/csv": {"schema": {"type": "string"}},
                            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": {
                                "schema": {"type": "string", "format": "binary"}
                            },
                        },
                    },
                    **_errors(400),
                },
                [
                    _level(),
                    *period,
                    _q("as_of", "count filings made by the end of this day (default today)", _DAY),
                    _q(
                        "working_days",
                        "1 (default): working days are due; 0: every day",
                        {"type": "string", "enum": ["0", "1"]},
                    ),
                    _q(
                        "format",
                        "json (default), csv or xlsx",
                        {"type": "string", "enum": ["json", "csv", "xlsx"]},
                    ),
                ],
            )
        },
    }


_TASK_ITEM = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "layer": {"type": "string"},
        "feature": {"type": "integer", "description": "the feature's stable id"},
        "label_zh": {"type": "string", "description": "the layer's name in Chinese (违法建设)"},
        "label_en": {"type": "string", "description": "the layer's name in English"},
        "key": {
            "type": ["string", "null"],
            "description": "the feature's survey id (the layer's id field, e.g. 案件编号 WJ2022-00319)",
        },
        "place": {"type": ["string", "null"], "description": "where it is (e.g. its address)"},
        "unit": {"type": ["string", "null"], "description": "its unit grid when handed over"},
        "deadline": {"type": "string", "format": "date"},
        "state": {"type": "string", "enum": ["open", "fixed", "verified"]},
        "overdue": {"type": "boolean"},
        "rework": {"type": "integer", "description": "how often it was returned"},
        "fixed_at": {"type": ["string", "null"]},
        "fixed_by": {"type": ["string", "null"]},
        "verified_at": {"type": ["string", "null"]},
        "verified_by": {"type": ["string", "null"]},
    },
}
_TASK = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "number": {"type": "string", "description": "JB-2026-0001"},
        "title": {"type": "string"},
        "instructions": {"type": ["string", "null"]},
        "created_by": {"type": ["string", "null"]},
        "created_at": {"type": "string"},
        "area": {"type": "array", "items": {"type": "string"}},
        "assignee": {"type": ["string", "null"]},
        "deadline": {"type": "string", "format": "date"},
        "days": {"type": "integer"},
        "working_days": {"type": "boolean"},
        "status": {"type": "string", "enum": ["open", "fixed", "verified"]},
        "counts": {"type": "object", "additionalProperties": {"type": "integer"}},
        "items": {"type": "array", "items": _TASK_ITEM},
        "events": {"type": "array", "items": {"type": "object"}},
        "may": {
            "type": "object",
            "description": "what the account signed in may do with the task (one task's answers)",
            "properties": {k: {"type": "boolean"} for k in ("fixed", "verify", "return")},
        },
    },
}
_TASK_PREVIEW = {
    "type": "object",
    "properties": {
        "count": {"type": "integer", "description": "how many features the task would take"},
        "ids": {
            "type": "array",
            "description": "every one: its layer, stable id and current row (fid, as the map draws it)",
            "items": {
                "type": "object",
                "properties": {
                    "layer": {"type": "string"},
                    "id": {"type": "integer"},
                    "fid": {"type": "integer"},
                    "at": {
                        "type": ["array", "null"],
                        "items": {"type": "number"},
                        "description": "a point on the feature, [lon, lat] in degrees (GCJ-02 with crs=gcj02)",
                    },
                },
            },
        },
        "items": {
            "type": "array",
            "description": "the first 50 (by layer and id) with their unit grid and status",
            "items": {
                "type": "object",
                "properties": {
                    "layer": {"type": "string"},
                    "id": {"type": "integer"},
                    "fid": {"type": "integer"},
                    "unit": {"type": ["string", "null"]},
                    "status": {"type": ["string", "null"]},
                },
            },
        },
        "more": {"type": "integer", "description": "how many are not listed in items"},
        "limit": {"type": "integer", "description": "the most features one task may hold"},
        "too_many": {"type": "boolean", "description": "more than limit: creating the task is refused"},
        "held": {
            "type": "array",
            "description": "those still in a task not yet verified: creating the task is refused (409"
            " `already_handed_over`)",
            "items": {
                "type": "object",
                "properties": {
                    "layer": {"type": "string"},
                    "id": {"type": "integer"},
                    "task": {"type": "string"},
                    "name_zh": {"type": "string"},
                    "name_en": {"type": "string"},
                },
            },
        },
    },
}
_ITEMS_BODY = {
    "items": {
        "type": "array",
        "maxItems": 5000,
        "items": {"type": "integer", "minimum": 1, "maximum": MAX_ID},
        "description": "item ids (default: every item in the state this needs)",
    },
    "note": {"type": "string", "maxLength": 2000},
}


def _json_body(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def _task_paths() -> dict[str, Any]:
    """The hand-over tasks (web/tasks.py): create and check need a surveyor (or an admin) whose
    area is above the target area; reading needs a viewer and keeps to the account's area."""
    task_id = _path("task_id", "task id", ID)
    task_answer = {"200": _ok("the task with its items and events", _TASK), **_errors(400, 404, 409)}
    task_body: dict[str, Any] = {
        "title": {"type": "string", "maxLength": 200},
        "instructions": {"type": "string", "maxLength": 2000},
        "area": {
            "oneOf": [
                {"type": "string", "maxLength": 200},
                {
                    "type": "array",
                    "items": {"type": "string", "maxLength": 20},
                    "maxItems": 50,
                },
            ]
        },
        "assignee": {"type": "string", "maxLength": 64},
        "days": {"type": "integer", "minimum": 0, "maximum": 3650},
        "workdays": {"type": "integer", "minimum": 0, "maximum": 3650},
        "features": {
            "type": "array",
            "maxItems": 5000,
            "items": {
                "type": "object",
                "required": ["layer", "id"],
                "properties": {
                    "layer": {"type": "string", "maxLength": 40},
                    "id": {
                        "oneOf": [
                            {"type": "integer", "minimum": 1, "maximum": MAX_ID},
                            {"type": "string", "minLength": 1, "maxLength": 200},
                        ],
                        "description": "the feature's number, or its survey id",
                    },
                },
            },
        },
        "layer": {"type": "string", "maxLength": 40},
        "within": {"type": "string", "maxLength": 20},
        "status": {
            "type": "array",
            "items": {"type": "string", "maxLength": 40},
            "maxItems": 20,
        },
        "shape": {
            "type": "object",
            "description": "a GeoJSON Polygon or MultiPolygon in lon/lat degrees (WGS-84, or GCJ-02 with"
            " `crs`), valid (no crossing edges), at most 10,000 vertices; with `status`, the features"
            " inside it that have one of those statuses",
        },
        "crs": {
            "type": "string",
            "enum": ["wgs84", "gcj02"],
            "description": "the reference of `shape`'s coordinates: gcj02 for a shape drawn on a Gaode base map",
        },
    }
    return {
        "/api/tasks": {
            "get": _op(
                "交办单 / the tasks the account may see, newest first, with their counts as of a day",
                _SIGNED_IN,
                {
                    "200": _ok(
                        "tasks",
                        {"type": "object", "properties": {"tasks": {"type": "array", "items": _TASK}}},
                    )
                },
                [
                    AS_OF,
                    _q(
                        "status",
                        "only open, fixed (all fixed or verified), verified or overdue tasks",
                        {"type": "string", "enum": ["open", "fixed", "verified", "overdue"]},
                    ),
                ],
            ),
            "post": _op(
                "交办 / hand features over to an area and/or account with a deadline (admins, or an account"
                " bound above the area): `features` [{layer, id}], or `layer` with `within`/`status`, or"
                " `layer` with `shape` (GeoJSON polygon, lon/lat); `days` or `workdays`.  A feature is"
                " named by its number or its survey id (案件编号 …); ids not found are a 400 naming"
                " them.  A feature still in an item of another task that is not verified is not"
                " handed over again: 409 `already_handed_over`, `details.features` listing each"
                " ({layer, id, task, name_zh, name_en}), nothing written (checked in the writing"
                " transaction: of two racing requests one is refused)",
                _SIGNED_IN,
                {"201": _ok("the task", _TASK), **_errors(400, 404, 409)},
                requestBody=_json_body(task_body, ["title"]),
            ),
        },
        "/api/tasks/preview": {
            "post": _op(
                "交办预览 / what `POST /api/tasks` would hand over with the same body, written nowhere: the"
                " same selection, checks and refusals; title and deadline are not needed",
                _SIGNED_IN,
                {"200": _ok("the features the task would take", _TASK_PREVIEW), **_errors(400, 403, 404)},
                [
                    _q(
                        "crs",
                        "gcj02: the features' positions in GCJ-02 (a map on a Gaode base map)",
                        {"type": "string", "enum": ["wgs84", "gcj02"]},
                    )
                ],
                requestBody=_json_body(task_body),
            )
        },
        "/api/tasks/stats": {
            "get": _op(
                "交办统计 / task figures per unit as of a day: handed over, open, fixed, verified, due, on"
                " time, overdue, reworked, checked, on-time rate (按期完成率), rework rate (返工率)",
                _SIGNED_IN,
                {
                    "200": _ok("rows and totals", {"type": "object"}),
                    **_errors(400),
                },
                [
                    _level(),
                    AS_OF,
                    _q(
                        "format",
                        "json (default), csv or xlsx",
                        {"type": "string", "enum": ["json", "csv", "xlsx"]},
                    ),
                ],
            )
        },
        "/api/tasks/{task_id}": {
            "get": _op(
                "交办单详情 / one task with its items and events", _SIGNED_IN, task_answer, [task_id, AS_OF]
            )
        },
        "/api/tasks/{task_id}/fixed": {
            "post": _op(
                "整改完成 / report the fix of open items, with photo ids (uploaded to the feature first)",
                _SIGNED_IN,
                task_answer,
                [task_id],
                requestBody=_json_body(
                    {
                        **_ITEMS_BODY,
                        "photos": {
                            "type": "array",
                            "maxItems": 50,
                            "items": {"type": "integer", "minimum": 1, "maximum": MAX_ID},
                        },
                    }
                ),
            )
        },
        "/api/tasks/{task_id}/verify": {
            "post": _op(
                "核查通过（销号）/ verify fixed items",
                _SIGNED_IN,
                task_answer,
                [task_id],
                requestBody=_json_body(_ITEMS_BODY),
            )
        },
        "/api/tasks/{task_id}/return": {
            "post": _op(
                "退回 / return fixed items for more work (rework); they keep their deadline unless `deadline` sets one",
                _SIGNED_IN,
                task_answer,
                [task_id],
                requestBody=_json_body({**_ITEMS_BODY, "deadline": {"type": "string", "format": "date"}}),
            )
        },
    }
