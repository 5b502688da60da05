"""Edit one feature, or add one, from the browser or a phone.

An edit takes the import write path: inside one write transaction it is a batch of its own
(kind ``edit``), its row is written by :meth:`~geo.store.interface.features.FeatureStore.write_features`
as a new row version of the feature (same id, version one higher), its units are kept on every
live grid version, and the batch's audit entry names the account.  So as-of and known-at figures
see it from its transaction on, and it is rolled back like any batch.

Optimistic concurrency: the caller says which version it saw; when the feature has another one
now, the edit is refused (:class:`~geo.errors.Conflict`, ``version_conflict``) and nothing is
written.  An account bound to an area writes only features in it, and cannot move one out of
it (:class:`~geo.errors.Forbidden`).

Values are checked by the layer's declaration: a status or category field takes one of its
codes (or the label of one), a date ``YYYY-MM-DD`` no later than today (and a completion date
no earlier than the found date), numbers finite and not negative -- whole for a count field, as
an import takes them; the id field is fixed once a feature has one.  A feature added by hand
names itself by one of the layer's :attr:`~layers.base.LayerSpec.required_any` fields.  Geometry is GeoJSON in WGS-84 lon/lat (GCJ-02 with ``gcj02``), of a type
the layer holds, projected to the store CRS (metres).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np
import pandas as pd
import pyproj
import shapely
import shapely.geometry

from geo.edits.ids import current_rows
from geo.errors import Conflict, GridwatchError, InputError, NotFound, outside_area
from geo.figures import versions
from geo.figures.areas import scope_of, write_units
from geo.figures.versions import load_grid
from geo.reading.gcj02 import gcj02_to_wgs84
from geo.registry import get_layer
from geo.store import clock
from geo.store.base import Store
from geo.store.interface.batches import Batch
from geo.store.interface.features import FeatureRows
from layers.base import UNASSIGNED, Field, LayerSpec

#: longest text a field takes from an edit (characters)
MAX_TEXT = 500
#: most vertices a geometry sent with an edit may have
MAX_VERTICES = 10_000
#: longest note kept with an edit (characters)
MAX_NOTE = 1000

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_GEOM_TYPES = {"Point": "Point", "MultiPoint": "Point", "Polygon": "Polygon", "MultiPolygon": "Polygon"}


@dataclass
class EditResult:
    """What an edit or an addition wrote: the feature's ``id``, its new ``version``, the ``fid``
    of its new row version, the ``batch_id`` of the edit and the fields ``changed`` (empty,
    with ``batch_id`` None, when the values sent were those stored: nothing was written)."""

    layer: str
    id: int
    version: int
    fid: int
    batch_id: int | None
    changed: list[str] = field(default_factory=list)
    unit: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The result as the API returns it."""
        return dict(self.__dict__)


class _Unchanged(Exception):
    """Raised inside the write transaction when an edit changes nothing: rolled back, no batch."""


def editable_fields(spec: LayerSpec) -> tuple[Field, ...]:
    """The fields of ``spec`` an edit may set (its declared fields; the ``_raw`` columns follow
    the vocabulary fields)."""
    return spec.fields


def edit_feature(
    store: Store,
    layer: str,
    feature_id: int,
    version: int,
    fields: dict[str, Any] | None = None,
    geometry: dict[str, Any] | None = None,
    *,
    note: str | None = None,
    user: str | None = None,
    gcj02: bool = False,
    tz: str | None = None,
) -> EditResult:
    """Change fields and/or the geometry of feature ``feature_id`` of ``layer`` seen at ``version``.

    Parameters
    ----------
    store : Store
    layer : str
        A survey layer's name.
    feature_id : int
        The feature's stable id (:mod:`geo.edits.ids`).
    version : int
        The version the editor saw; another one stored now is a :class:`~geo.errors.Conflict`.
    fields : dict
        Field name → new value (None or "" clears it).
    geometry : dict, optional
        GeoJSON geometry in WGS-84 lon/lat (GCJ-02 with ``gcj02``).
    note : str, optional
        Why, kept with the edit's batch.
    user : str, optional
        The editing account (None: the command line, writing anywhere).
    tz : str, optional
        Time zone of "today" for a completion date filled in.

    Returns
    -------
    EditResult
    """
    spec = _survey(layer)
    values = check_fields(spec, fields or {}, tz)
    geom = None if geometry is None else project_geometry(store, spec, geometry, gcj02)
    note = _note(note)
    if not values and geom is None:
        raise InputError("没有要修改的内容", "nothing to change: send fields or a geometry", code="no_change")
    allowed = write_units(store, user)
    try:
        with store.transaction():
            rows = current_rows(store, spec, [feature_id])
            if rows.empty:
                raise NotFound(
                    f"要素 {feature_id} 不存在", f"feature {feature_id} not found", code="feature_not_found"
                )
            row = rows.iloc[0]
            if allowed is not None and row["gw_unit"] not in allowed:
                raise _refusal(store, user, int(feature_id), str(row["gw_unit"]))
            current = int(row["version"])
            if int(version) != current:
                raise Conflict(
                    f"要素已被修改（当前版本 {current}，您编辑的是版本 {version}），请刷新后再编辑",
                    f"the feature changed meanwhile (now version {current}, you edited version {version}):"
                    " reload it, then edit",
                    code="version_conflict",
                    details={"current_version": current, "id": int(feature_id)},
                )
            stored_id = _text(row.get(spec.id_field)) if spec.id_field else ""
            if spec.id_field and stored_id and str(values.get(spec.id_field, stored_id) or "") != stored_id:
                raise InputError(
                    f"{spec.field(spec.id_field).label_zh}不可修改",
                    f"{spec.field(spec.id_field).label_en} cannot be changed",
                    code="bad_field",
                )
            attrs = {f.name: row.get(f.name) for f in spec.stored_fields}
            _fill_completion(spec, values, attrs, tz)
            changed = [k for k, v in values.items() if not _same(attrs.get(k), v)]
            attrs.update(values)
            _check_order(spec, attrs, values)
            fid = int(row["fid"])
            if geom is None:
                _, old = store.read_geometry_rows(spec, np.array([fid], dtype=np.int64))
                shape = old[0]
                unit = str(row["gw_unit"])
            else:
                shape = geom
                unit = _unit_of(store, geom)
                if allowed is not None and unit not in allowed:
                    raise outside_area()
                changed.append("geometry")
                store.update_extent(spec, _bounds(geom))
            if not changed:
                raise _Unchanged
            batch_id = _new_batch(store, spec, f"编辑 edit #{int(feature_id)}", user)
            result = store.write_features(
                spec,
                batch_id,
                _rows(spec, attrs, shape, row.get("gw_key"), unit, replaces=fid),
                replace_all=False,
            )
            if result.unchanged:
                raise _Unchanged
            new_fid = int(result.fids[0])
            versions.assign_new_rows(
                store, spec, result.fids, np.array([shape], dtype=object), np.array([unit], dtype=object)
            )
            out = EditResult(spec.name, int(feature_id), current + 1, new_fid, batch_id, changed, unit)
            _finish(store, batch_id, out, note, updated=1)
    except _Unchanged:
        return EditResult(spec.name, int(feature_id), current, int(row["fid"]), None, [], str(row["gw_unit"]))
    return out


def add_feature(
    store: Store,
    layer: str,
    fields: dict[str, Any] | None,
    geometry: dict[str, Any],
    *,
    note: str | None = None,
    user: str | None = None,
    gcj02: bool = False,
    tz: str | None = None,
) -> EditResult:
    """Add a feature to ``layer`` at ``geometry`` (GeoJSON, WGS-84 lon/lat; GCJ-02 with ``gcj02``)
    with ``fields``: a batch of kind ``edit`` of one row.  The status defaults to the layer's
    first one and the day found to today; a survey id, when given, must be new; one of the
    layer's ``required_any`` fields (the survey id, the address ...) must be given.  The feature
    must lie in a unit of the grid (and of the account's area).

    Returns
    -------
    EditResult
        The new feature: its id is the fid of its first row version, version 1.
    """
    spec = _survey(layer)
    if not isinstance(geometry, dict):
        raise InputError("缺少位置（geometry）", "a geometry is required", code="bad_geometry")
    values = check_fields(spec, fields or {}, tz)
    _check_named(spec, values)
    geom = project_geometry(store, spec, geometry, gcj02)
    note = _note(note)
    if spec.status_field and values.get(spec.status_field) in (None, ""):
        values[spec.status_field] = spec.default_status or (spec.statuses[0].code if spec.statuses else None)
        if spec.status_field + "_raw" in {f.name for f in spec.raw_fields}:
            values[spec.status_field + "_raw"] = values[spec.status_field]
    if spec.found_field and values.get(spec.found_field) in (None, ""):
        values[spec.found_field] = clock.today(tz).isoformat()
    attrs: dict[str, Any] = {f.name: None for f in spec.stored_fields}
    _fill_completion(spec, values, attrs, tz)
    attrs.update(values)
    _check_order(spec, attrs, values)
    key = attrs.get(spec.id_field) if spec.id_field else None
    allowed = write_units(store, user)
    with store.transaction():
        unit = _unit_of(store, geom)
        if unit == UNASSIGNED:
            raise InputError(
                "该位置不在任何单元网格内",
                "the position lies in no unit grid of the district",
                code="outside_grid",
            )
        if allowed is not None and unit not in allowed:
            raise outside_area()
        # looked up on the survey-key index, not by reading the whole layer
        if key not in (None, "") and store.key_batches(spec, np.array([str(key)], dtype=object)):
            raise Conflict(
                f"编号 {key} 已存在", f"id {key} exists already", code="id_taken", details={"key": str(key)}
            )
        batch_id = _new_batch(store, spec, "新增 added by hand", user)
        result = store.write_features(
            spec,
            batch_id,
            _rows(spec, attrs, geom, key if key not in ("",) else None, unit),
            replace_all=False,
        )
        fid = int(result.fids[0])
        store.update_extent(spec, _bounds(geom))
        versions.assign_new_rows(
            store, spec, result.fids, np.array([geom], dtype=object), np.array([unit], dtype=object)
        )
        out = EditResult(
            spec.name, fid, 1, fid, batch_id, sorted(k for k, v in attrs.items() if v is not None), unit
        )
        _finish(store, batch_id, out, note, added=1)
    return out


def check_fields(spec: LayerSpec, fields: dict[str, Any], tz: str | None = None) -> dict[str, Any]:
    """``fields`` checked and converted by ``spec``'s declaration (see the module text): field
    name → stored value; a vocabulary field's ``_raw`` column takes the code set.  A date after
    today (in time zone ``tz``, the configured one by default) is refused.

    Raises
    ------
    InputError
        ``unknown_field``, or ``bad_field`` with the field's name in ``details``.
    """
    if not isinstance(fields, dict):
        raise InputError("fields 应为对象", "fields must be an object", code="bad_field")
    known = {f.name: f for f in editable_fields(spec)}
    vocab = spec.vocab_fields
    today = clock.today(tz)
    out: dict[str, Any] = {}
    for name, value in fields.items():
        f = known.get(str(name))
        if f is None:
            raise InputError(
                f"未知字段: {str(name)[:40]}", f"unknown field: {str(name)[:40]}", code="unknown_field"
            )
        out[f.name] = _value(f, value, vocab.get(f.name), today)
        if f.name in vocab:
            out[f.name + "_raw"] = out[f.name]
    return out


def _bad(f: Field, zh: str, en: str) -> InputError:
    """A value of ``f`` refused: ``zh``/``en`` follow the field's label."""
    return InputError(f"{f.label_zh}{zh}", f"{f.label_en} {en}", code="bad_field", details={"field": f.name})


def _value(f: Field, value: Any, vocab: Any, today: date) -> Any:
    label = f"{f.label_zh}（{f.label_en}）"
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, (bool, list, dict)):
        raise InputError(f"{f.label_zh}的值无效", f"{f.label_en}: not a valid value", code="bad_field")
    if vocab:
        text = str(value).strip()
        for s in vocab:
            if text in (s.code, s.label_zh, s.label_en):
                return s.code
        codes = "、".join(s.code for s in vocab)
        raise InputError(
            f"{f.label_zh}应为以下之一: {codes}",
            f"{f.label_en} must be one of: {', '.join(s.code for s in vocab)}",
            code="bad_field",
            details={"field": f.name, "allowed": [s.code for s in vocab]},
        )
    if f.kind == "str":
        text = str(value).strip()
        if len(text) > MAX_TEXT or _CONTROL.search(text):
            raise InputError(
                f"{label}过长或含控制字符",
                f"{f.label_en}: too long or holds control characters",
                code="bad_field",
            )
        return text
    if f.kind == "date":
        text = str(value).strip()[:10]
        try:
            day = date.fromisoformat(text)
        except ValueError:
            raise InputError(
                f"{f.label_zh}应为日期 YYYY-MM-DD",
                f"{f.label_en} must be a date YYYY-MM-DD",
                code="bad_field",
            ) from None
        if not 1949 <= day.year <= 2100:
            raise InputError(f"{f.label_zh}超出范围", f"{f.label_en} is out of range", code="bad_field")
        if day > today:
            raise _bad(
                f, f"不能晚于今天（{today.isoformat()}）", f"cannot be after today ({today.isoformat()})"
            )
        return day.isoformat()
    try:
        number = float(str(value).strip().replace(",", ""))
    except ValueError:
        raise InputError(
            f"{f.label_zh}应为数字", f"{f.label_en} must be a number", code="bad_field"
        ) from None
    if not math.isfinite(number) or abs(number) > 1e12:
        raise InputError(f"{f.label_zh}超出范围", f"{f.label_en} is out of range", code="bad_field")
    if number < 0:  # as an import rejects a negative number (geo.imports.columns)
        raise _bad(f, "不能为负数", "cannot be negative")
    if f.kind == "int":
        if number != int(number):
            raise InputError(
                f"{f.label_zh}应为整数", f"{f.label_en} must be a whole number", code="bad_field"
            )
        return int(number)
    return number


def project_geometry(store: Store, spec: LayerSpec, geometry: dict[str, Any], gcj02: bool = False) -> Any:
    """A GeoJSON geometry in WGS-84 lon/lat (GCJ-02 with ``gcj02``) checked (type the layer
    holds, coordinates in range, at most :data:`MAX_VERTICES`, valid) and projected to the store
    CRS (metres)."""
    if not isinstance(geometry, dict):
        raise InputError(
            "geometry 应为 GeoJSON 几何对象", "geometry must be a GeoJSON geometry", code="bad_geometry"
        )
    kind = _GEOM_TYPES.get(str(geometry.get("type")))
    if kind is None or kind not in spec.geometry_types:
        allowed = ", ".join(sorted(spec.geometry_types))
        raise InputError(
            f"该图层只接受 {allowed} 几何", f"this layer takes {allowed} geometries", code="bad_geometry"
        )
    try:
        shape = shapely.geometry.shape(geometry)
    except (ValueError, TypeError, AttributeError, IndexError, KeyError):
        raise InputError("几何无效", "the geometry is not valid GeoJSON", code="bad_geometry") from None
    coords = shapely.get_coordinates(shape)
    if shape.is_empty or len(coords) > MAX_VERTICES or not np.isfinite(coords).all():
        raise InputError("几何为空或过大", "the geometry is empty or too large", code="bad_geometry")
    lon, lat = coords[:, 0], coords[:, 1]
    if (np.abs(lon) > 180).any() or (np.abs(lat) > 90).any():
        raise InputError("经纬度超出范围", "longitude/latitude out of range", code="bad_geometry")
    if gcj02:
        lon, lat = gcj02_to_wgs84(lon, lat)
    epsg = store.srs_epsg()
    if epsg is None:
        raise InputError(
            "存储尚无数据，请先导入单元网格", "the store is empty: import the unit grid first", code="no_grid"
        )
    to_store = pyproj.Transformer.from_crs(4326, epsg, always_xy=True)
    x, y = to_store.transform(np.asarray(lon, dtype=float), np.asarray(lat, dtype=float))
    out = shapely.set_coordinates(shape, np.column_stack([x, y]))
    if not shapely.is_valid(out):
        raise InputError(
            f"几何无效: {shapely.is_valid_reason(out)}",
            f"the geometry is not valid: {shapely.is_valid_reason(out)}",
            code="bad_geometry",
        )
    return out


def _survey(layer: str) -> LayerSpec:
    spec = get_layer(layer)
    if spec.is_grid:
        raise InputError(
            "单元网格不能逐个编辑", "the unit grid is not edited feature by feature", code="unknown_layer"
        )
    return spec


def _note(note: Any) -> str | None:
    if note is None:
        return None
    text = str(note).strip()
    if len(text) > MAX_NOTE or _CONTROL.search(text):
        raise InputError(
            "备注过长或含控制字符", "the note is too long or holds control characters", code="bad_note"
        )
    return text or None


def _text(value: Any) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)


def _check_order(spec: LayerSpec, attrs: dict[str, Any], values: dict[str, Any]) -> None:
    """Refuse a completion date before the found date (both known, one of them set now)."""
    found, done = spec.found_field, spec.completed_field
    if found is None or done is None or (found not in values and done not in values):
        return
    start, end = _text(attrs.get(found))[:10], _text(attrs.get(done))[:10]
    if start and end and end < start:
        f, d = spec.field(found), spec.field(done)
        raise InputError(
            f"{d.label_zh}（{end}）不能早于{f.label_zh}（{start}）",
            f"{d.label_en} ({end}) cannot be before {f.label_en.lower()} ({start})",
            code="bad_field",
            details={"field": done},
        )


def _check_named(spec: LayerSpec, values: dict[str, Any]) -> None:
    """Refuse a new feature without any of the layer's ``required_any`` fields."""
    if spec.required_any and all(values.get(name) in (None, "") for name in spec.required_any):
        names = [spec.field(name) for name in spec.required_any]
        raise InputError(
            "请至少填写" + "或".join(f.label_zh for f in names),
            "give at least the " + " or the ".join(f.label_en.lower() for f in names),
            code="bad_field",
            details={"fields": list(spec.required_any)},
        )


def _same(old: Any, new: Any) -> bool:
    if old is None or (isinstance(old, float) and math.isnan(old)):
        return new is None
    if new is None:
        return False
    if isinstance(old, (int, float)) and isinstance(new, (int, float)):
        return float(old) == float(new)
    return str(old) == str(new)


def _fill_completion(spec: LayerSpec, values: dict[str, Any], attrs: dict[str, Any], tz: str | None) -> None:
    """A status set to a completed one without a completion date (sent or stored) gets today's."""
    status = values.get(spec.status_field) if spec.status_field else None
    done = spec.completed_field
    if status is None or done is None or status not in spec.completed_statuses:
        return
    if values.get(done) in (None, "") and _text(attrs.get(done)) == "":
        values[done] = clock.today(tz).isoformat()


def _refusal(store: Store, user: str | None, feature_id: int, unit: str) -> GridwatchError:
    """Why ``user`` may not change feature ``feature_id`` in ``unit``, outside its area: not found
    (404) when it may not see that unit either -- a write tells no more than a read of the
    feature would -- else refused (403: it may see the district, not write there)."""
    if scope_of(store, None if user is None else store.get_user(user)).allows(unit):
        return outside_area()
    return NotFound(f"要素 {feature_id} 不存在", f"feature {feature_id} not found", code="feature_not_found")


def _unit_of(store: Store, geom: Any) -> str:
    grid = load_grid(store)
    if grid is None:
        return UNASSIGNED
    return str(grid.assign(np.array([geom], dtype=object))[0])


def _rows(
    spec: LayerSpec, attrs: dict[str, Any], geom: Any, key: Any, unit: str, replaces: int | None = None
) -> FeatureRows:
    frame = pd.DataFrame({f.name: pd.Series([attrs.get(f.name)], dtype=object) for f in spec.stored_fields})
    return FeatureRows(
        attrs=frame,
        geometry=np.array([geom], dtype=object),
        keys=np.array([None if key in (None, "") else str(key)], dtype=object),
        units=np.array([unit], dtype=object),
        replaces=None if replaces is None else np.array([replaces], dtype=np.int64),
    )


def _bounds(geom: Any) -> tuple[float, float, float, float]:
    minx, miny, maxx, maxy = (float(v) for v in shapely.bounds(geom))
    return (minx, miny, maxx, maxy)


def _new_batch(store: Store, spec: LayerSpec, name: str, user: str | None) -> int:
    batch = Batch(0, spec.name, name, "", clock.now_iso(), user, "active", 1, 0, 0, 0, 0, None, None, "edit")
    return store.new_batch(batch, None)


def _finish(
    store: Store, batch_id: int, out: EditResult, note: str | None, added: int = 0, updated: int = 0
) -> None:
    report = {
        "source_name": f"{out.layer} #{out.id} v{out.version}",
        "feature": out.id,
        "version": out.version,
        "changed": out.changed,
        "note": note,
        "unit": out.unit,
    }
    store.finish_batch(
        batch_id, {"added": added, "updated": updated, "unchanged": 0, "rejected": 0, "rows_read": 1}, report
    )
