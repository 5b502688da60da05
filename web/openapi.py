"""The OpenAPI 3.1 document of the JSON API (served at /api/openapi.json).

Kept beside the routes it describes; a test fails when a route under /api is missing here."""

from __future__ import annotations

from typing import Any

_ERROR = {"$ref": "#/components/schemas/Error"}


def _q(
    name: str, description: str, schema: dict[str, Any] | None = None, required: bool = False
) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": required,
        "description": description,
        "schema": schema or {"type": "string"},
    }


def _errors(*codes: int) -> dict[str, Any]:
    return {
        str(c): {"description": "错误 / error", "content": {"application/json": {"schema": _ERROR}}}
        for c in codes
    }


def _ok(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": schema or {"type": "object"}}},
    }


LEVEL = _q(
    "level",
    "grid | community | street | district",
    {"type": "string", "enum": ["grid", "community", "street", "district"]},
)
LAYER = _q("layer", "survey layer name (see /api/layers)")
AS_OF = _q("as_of", "count as of this day (YYYY-MM-DD)", {"type": "string", "format": "date"})
BBOX = _q("bbox", "west,south,east,north in degrees (EPSG:4326)")
ZOOM = _q("zoom", "web-map zoom level", {"type": "integer", "minimum": 0, "maximum": 24})
CRS = _q("crs", "gcj02 to receive coordinates shifted for Gaode/Tencent base maps")


def document() -> dict[str, Any]:
    """The OpenAPI document."""
    upload_form = {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["layer", "file"],
                "properties": {
                    "layer": {"type": "string"},
                    "file": {"type": "string", "format": "binary"},
                    "encoding": {"type": "string", "description": "DBF/CSV text encoding, e.g. GBK"},
                    "crs": {"type": "string", "description": "EPSG:4548, an ESRI name, WKT or gcj02"},
                    "member": {"type": "string", "description": "dataset inside a zip holding several"},
                },
            }
        }
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "gridwatch API",
            "version": "0.1.0",
            "description": "网格化管理统计接口 / grid-management statistics API.  Errors carry `message` "
            "in the request's language (Chinese unless `?lang=en` or the `gridwatch_lang` cookie asks "
            "for English) and always `message_zh` and `message_en`.",
        },
        "paths": {
            "/healthz": {"get": {"summary": "health", "responses": {"200": _ok("ok")}}},
            "/api/layers": {
                "get": {"summary": "图层 / layers", "responses": {"200": _ok("layers", {"type": "array"})}}
            },
            "/api/cells": {
                "get": {
                    "summary": "单元轮廓与统计 / unit outlines with figures in a viewport",
                    "parameters": [
                        LEVEL,
                        LAYER,
                        AS_OF,
                        BBOX,
                        ZOOM,
                        CRS,
                        _q("within", "only units under this code"),
                    ],
                    "responses": {"200": _ok("GeoJSON FeatureCollection"), **_errors(400)},
                }
            },
            "/api/features/{layer}": {
                "get": {
                    "summary": "视口内要素（少则逐个，多则聚合）/ features in a viewport, one by one or clustered",
                    "parameters": [
                        {"name": "layer", "in": "path", "required": True, "schema": {"type": "string"}},
                        {**BBOX, "required": True},
                        ZOOM,
                        AS_OF,
                        CRS,
                        _q("status", "comma-separated status codes"),
                        _q("unit", "only features in this unit grid"),
                        _q("detail", "1 to send every attribute with each feature"),
                        _q("within", "only features in unit grids under this street/community code"),
                    ],
                    "responses": {"200": _ok("GeoJSON FeatureCollection"), **_errors(400)},
                }
            },
            "/api/features/{layer}/{fid}": {
                "get": {
                    "summary": "单个要素及全部属性 / one feature with all its attributes",
                    "parameters": [
                        {"name": "layer", "in": "path", "required": True, "schema": {"type": "string"}},
                        {"name": "fid", "in": "path", "required": True, "schema": {"type": "integer"}},
                        CRS,
                    ],
                    "responses": {"200": _ok("GeoJSON Feature"), **_errors(400, 404)},
                }
            },
            "/api/stats": {
                "get": {
                    "summary": "统计表 / statistics",
                    "parameters": [
                        LEVEL,
                        LAYER,
                        AS_OF,
                        _q("within", "only units under this code"),
                        _q("format", "json | csv | xlsx | geojson | gpkg | shp"),
                    ],
                    "responses": {"200": {"description": "the table in the asked format"}, **_errors(400)},
                }
            },
            "/api/uploads": {
                "post": {
                    "summary": "上传并预览 / upload a survey file and get its import report",
                    "requestBody": {"required": True, "content": upload_form},
                    "responses": {"201": _ok("import report with upload_id"), **_errors(400, 413, 415)},
                }
            },
            "/api/uploads/{upload_id}/preview": {
                "post": {
                    "summary": "改参数重读 / read again with other encoding, crs, layer or member",
                    "parameters": [
                        {"name": "upload_id", "in": "path", "required": True, "schema": {"type": "string"}}
                    ],
                    "responses": {"200": _ok("import report"), **_errors(400, 404)},
                }
            },
            "/api/uploads/{upload_id}/features": {
                "get": {
                    "summary": "上传中可导入的要素（预览地图用）/ the features an upload would add, for a preview map",
                    "description": "Lon/lat (EPSG:4326, or GCJ-02 with crs=gcj02).  At most `limit` features "
                    "(an even sample of them when there are more); polygons and lines simplified, or sent "
                    "as a point on their surface when many.",
                    "parameters": [
                        {"name": "upload_id", "in": "path", "required": True, "schema": {"type": "string"}},
                        _q(
                            "limit",
                            "most features to send (default and largest 5000)",
                            {"type": "integer", "minimum": 1, "maximum": 5000},
                        ),
                        CRS,
                    ],
                    "responses": {
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
                }
            },
            "/api/uploads/{upload_id}/commit": {
                "post": {
                    "summary": "确认导入 / commit the upload as one batch",
                    "parameters": [
                        {"name": "upload_id", "in": "path", "required": True, "schema": {"type": "string"}}
                    ],
                    "responses": {"200": _ok("import report"), **_errors(400, 404, 409)},
                }
            },
            "/api/uploads/{upload_id}": {
                "delete": {
                    "summary": "放弃上传 / discard an upload",
                    "parameters": [
                        {"name": "upload_id", "in": "path", "required": True, "schema": {"type": "string"}}
                    ],
                    "responses": {"204": {"description": "discarded"}, **_errors(404)},
                }
            },
            "/api/batches": {
                "get": {
                    "summary": "导入批次 / batches",
                    "parameters": [LAYER],
                    "responses": {"200": _ok("batches", {"type": "array"})},
                }
            },
            "/api/batches/{batch_id}": {
                "delete": {
                    "summary": "回滚批次 / roll back a batch",
                    "parameters": [
                        {"name": "batch_id", "in": "path", "required": True, "schema": {"type": "integer"}}
                    ],
                    "responses": {"200": _ok("the batch, rolled back"), **_errors(404, 409)},
                }
            },
            "/api/openapi.json": {"get": {"summary": "this document", "responses": {"200": _ok("OpenAPI")}}},
        },
        "components": {
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error", "message", "message_zh", "message_en"],
                    "properties": {
                        "error": {"type": "string", "description": "machine-readable code"},
                        "message": {"type": "string", "description": "in the request's language"},
                        "message_zh": {"type": "string"},
                        "message_en": {"type": "string"},
                        "details": {"type": "object"},
                    },
                }
            }
        },
    }
