"""Photos on features over HTTP: sent by surveyors and admins, listed and served to the accounts
that may see the feature (:func:`check_may_see`), never from the web root."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request, url_for

from geo.errors import InputError, NotFound, TooLarge, outside_area
from geo.figures.areas import write_units
from geo.figures.viewport import feature_detail
from geo.imports.photos import add_photo, photo_dict, stored_file
from geo.reading.photos import PhotoLimits
from geo.registry import layer_name
from geo.store.interface.photos import PhotoRow
from web.access import area_units, requires, user_name
from web.clients import reads_files
from web.common import register_converters
from web.context import data_folder, get_store

bp = Blueprint("photos", __name__, url_prefix="/api")
bp.record_once(register_converters)  # <id:...> in the routes below

#: how long a browser may keep a photo it was given (its content never changes under its id)
CACHE_SECONDS = 86400


def check_may_see(layer: str, feature: int, write: bool = False) -> int:
    """The stable id of feature ``feature`` of ``layer`` (its id, or its current row's fid as the
    map hands it out), refusing when the signed-in account may not see it: the one place the
    photos routes ask.  An account bound to an area (:func:`web.access.area_units`) sees the
    photos of its area's features only -- another area's feature is not found (404), as its
    detail is, also to add a photo to: a write tells no more than a read -- and adding a photo
    to a feature it may see outside the area it writes in is refused (403)."""
    store = get_store()
    ident = int(feature_detail(store, layer, feature, units=area_units())["id"])
    if not write:
        return ident
    # writes keep to the area even for an account that may see the district
    allowed = write_units(store, user_name())
    if allowed is None:
        return ident
    try:
        feature_detail(store, layer, feature, units=allowed)
    except NotFound:
        raise outside_area() from None
    return ident


def _limits() -> PhotoLimits:
    config = current_app.config
    return PhotoLimits(
        max_bytes=int(config.get("GRIDWATCH_PHOTO_MAX_BYTES", PhotoLimits.max_bytes)),
        max_pixels=int(config.get("GRIDWATCH_PHOTO_MAX_PIXELS", PhotoLimits.max_pixels)),
    )


def _urls(row: PhotoRow) -> dict[str, Any]:
    out = photo_dict(row)
    out["url"] = url_for("photos.api_photo", photo_id=row.id)
    out["thumb_url"] = url_for("photos.api_photo", photo_id=row.id, size="thumb")
    return out


@bp.post("/features/<layer>/<id:fid>/photos")
@requires("surveyor")
@reads_files
def api_photo_upload(layer: str, fid: int) -> Any:
    limits = _limits()
    if (request.content_length or 0) > limits.max_bytes + 64 * 1024:
        mb = limits.max_bytes / 1024 / 1024
        raise TooLarge(
            f"照片文件过大（上限 {mb:.0f} MB）",
            f"the photo file is too large (at most {mb:.0f} MB)",
            code="photo_too_large",
        )
    name = layer_name(layer)
    fid = check_may_see(name, fid, write=True)
    file = request.files.get("file")
    if file is None:
        raise InputError("请选择要上传的照片", "no photo in the upload (field 'file')", code="no_file")
    content = file.stream.read(limits.max_bytes + 1)
    version_text = request.form.get("version") or request.headers.get("If-Match", "").strip('"') or None
    version = None
    if version_text is not None:
        try:
            version = int(version_text)
        except ValueError:
            raise InputError(
                "版本号应为正整数", "version must be a positive integer", code="bad_version"
            ) from None
    row, photo = add_photo(
        get_store(),
        data_folder(),
        name,
        fid,
        content,
        note=request.form.get("note"),
        version=version,
        limits=limits,
    )
    body = _urls(row)
    body["warnings"] = photo.warnings
    return jsonify(body), 201


@bp.get("/features/<layer>/<id:fid>/photos")
@requires("viewer")
def api_photos(layer: str, fid: int) -> Any:
    name = layer_name(layer)
    fid = check_may_see(name, fid)
    return jsonify(
        {"layer": name, "feature": fid, "photos": [_urls(r) for r in get_store().photos(name, fid)]}
    )


@bp.get("/photos/<id:photo_id>")
@requires("viewer")
def api_photo(photo_id: int) -> Any:
    size = request.args.get("size", "full")
    if size not in ("full", "thumb"):
        raise InputError("size 应为 full 或 thumb", "size must be full or thumb", code="bad_parameter")
    row = get_store().photo(photo_id)
    if row is None:
        raise NotFound(f"照片 {photo_id} 不存在", f"photo {photo_id} not found", code="photo_not_found")
    try:
        check_may_see(row.layer, row.feature)
    except NotFound:  # another area's photo: not found as a photo, naming no feature
        raise NotFound(
            f"照片 {photo_id} 不存在", f"photo {photo_id} not found", code="photo_not_found"
        ) from None
    thumb = size == "thumb"
    path = stored_file(data_folder(), row, thumb)
    resp = Response(path.read_bytes(), mimetype=row.mime)
    resp.set_etag(row.sha256 + ("-thumb" if thumb else ""))
    resp.headers["Content-Disposition"] = (
        f'inline; filename="photo-{row.id}{"-thumb" if thumb else ""}{path.suffix}"'
    )
    resp.headers["X-Content-Type-Options"] = "nosniff"
    resp.cache_control.private = True
    resp.cache_control.max_age = CACHE_SECONDS
    resp.make_conditional(request)
    return resp
