"""Edits of single features over HTTP: ``PATCH /api/features/<layer>/<id>`` changes a feature seen
at a version, ``POST /api/features/<layer>`` adds one (surveyors and admins; routes of the ``api``
blueprint).  The work is :mod:`geo.edits.edit`'s; this floor reads the request and the account."""

from __future__ import annotations

from typing import Any

from flask import jsonify, request

from geo.edits.edit import add_feature, edit_feature
from geo.edits.history import feature_history
from geo.errors import InputError
from geo.registry import layer_name
from web.access import area_units, requires, user_name
from web.api import bp
from web.context import get_store


def _body() -> dict[str, Any]:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise InputError("请求体应为 JSON 对象", "the body should be a JSON object", code="bad_body")
    return body


def _gcj02(body: dict[str, Any]) -> bool:
    crs = str(body.get("crs") or request.args.get("crs") or "").lower()
    return crs in ("gcj02", "gcj-02")


def _version(body: dict[str, Any]) -> int:
    """The version the client saw: ``version`` in the body, else the ``If-Match`` header."""
    raw: Any = body.get("version")
    if raw is None:
        raw = request.headers.get("If-Match", "").strip().removeprefix("W/").strip('"') or None
    if raw is None:
        raise InputError(
            "缺少版本号（version 或 If-Match）",
            "the version the edit is based on is required (version or If-Match)",
            code="bad_version",
        )
    if isinstance(raw, bool) or (isinstance(raw, str) and not raw.isdigit()):
        raise InputError("版本号应为正整数", "version must be a positive integer", code="bad_version")
    try:
        version = int(raw)
    except (TypeError, ValueError):
        raise InputError(
            "版本号应为正整数", "version must be a positive integer", code="bad_version"
        ) from None
    if version < 1:
        raise InputError("版本号应为正整数", "version must be a positive integer", code="bad_version")
    return version


@bp.patch("/features/<layer>/<id:fid>")
@requires("surveyor")
def api_feature_edit(layer: str, fid: int) -> Any:
    """Change fields and/or the geometry of a feature seen at ``version``; 409 when it changed."""
    body = _body()
    fields = body.get("fields", {})
    geometry = body.get("geometry")
    if geometry is not None and not isinstance(geometry, dict):
        raise InputError(
            "geometry 应为 GeoJSON 几何对象", "geometry must be a GeoJSON geometry", code="bad_geometry"
        )
    result = edit_feature(
        get_store(),
        layer_name(layer),
        fid,
        _version(body),
        fields,
        geometry,
        note=body.get("note"),
        user=user_name(),
        gcj02=_gcj02(body),
    )
    resp = jsonify(result.to_dict())
    resp.headers["ETag"] = f'"{result.version}"'
    return resp


@bp.post("/features/<layer>")
@requires("surveyor")
def api_feature_add(layer: str) -> Any:
    """Add a feature at a GeoJSON geometry (WGS-84 lon/lat) with the layer's fields."""
    body = _body()
    result = add_feature(
        get_store(),
        layer_name(layer),
        body.get("fields", {}),
        body.get("geometry"),  # type: ignore[arg-type]
        note=body.get("note"),
        user=user_name(),
        gcj02=_gcj02(body),
    )
    resp = jsonify(result.to_dict())
    resp.headers["ETag"] = f'"{result.version}"'
    return resp, 201


@bp.get("/features/<layer>/<id:fid>/history")
@requires("viewer")
def api_feature_history(layer: str, fid: int) -> Any:
    """A feature's versions, oldest first: who wrote each, when, what changed, what ended it."""
    return jsonify(feature_history(get_store(), layer_name(layer), fid, units=area_units()))
