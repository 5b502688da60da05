"""The hand-over workflow: 交办 (create) → 整改 (fixed) → 核查 (verify, or return) → 销号.

Who may do what (the account named by ``user``; None is the command line or a server without
sign-in, which may do everything):

- **create, verify, return** -- an admin, or an account bound to an area above the target area
  (holding all of it and more: a street's account hands over to its communities and checks
  them; a community's account does not check its own work);
- **mark fixed** -- an admin, the account the task is handed to, or an account bound inside the
  target area (for the items in its own area);
- a viewer only reads.  Anything outside the account's area is refused (:class:`Forbidden`).

Every write is one transaction with its audit entry, and its webhook events (``task.created``,
``task.verified``, ``task.returned``; ``task.overdue`` from :func:`send_overdue`) are queued in
it.  Times are UTC stamps; the day of an event and the deadlines are days in the configured
time zone (:mod:`geo.store.clock`), deadlines counted in calendar or working days
(:mod:`geo.workdays`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import numpy as np
import shapely
import shapely.geometry
from pyproj import Transformer

from geo.edits.ids import current_rows, feature_ref, ids_of_keys, ids_of_rows
from geo.errors import Conflict, Forbidden, InputError, NotFound
from geo.figures.areas import EVERYTHING, Scope, area_units, check_area, parse_codes
from geo.figures.feature_list import FeatureQuery, filtered_fids
from geo.figures.hierarchy import load_hierarchy
from geo.figures.tasks import item_counts, replay
from geo.notify import formats
from geo.notify.outbox import queue_event
from geo.reading.gcj02 import gcj02_to_wgs84, wgs84_to_gcj02
from geo.registry import get_layer
from geo.store import clock
from geo.store.base import Store
from geo.store.interface.tasks import TaskEventRow, TaskItemRow, TaskRow
from geo.workdays import due_date

__all__ = [
    "MAX_ITEMS",
    "MAX_VERTICES",
    "PREVIEW_SHOWN",
    "Selection",
    "create_task",
    "feature_facts",
    "feature_names",
    "list_tasks",
    "mark_fixed",
    "may_do",
    "preview_task",
    "return_items",
    "selection_from",
    "send_overdue",
    "shape_of",
    "task_detail",
    "verify_items",
]

#: at most this many features in one task
MAX_ITEMS = 5000
#: at most this many vertices in a drawn shape (all its rings)
MAX_VERTICES = 10_000
#: a preview lists this many of the features it takes (the rest counted)
PREVIEW_SHOWN = 50
#: the largest id a request may name (a 64-bit row id)
_MAX_ID = 2**63 - 1
_MAX_TITLE = 200
_MAX_TEXT = 2000


@dataclass(frozen=True)
class Selection:
    """Which features a new task hands over: a list of (layer, stable id); or a layer's features
    under the area ``within`` (a unit code at any level) with one of ``statuses`` (empty: any);
    or a layer's features inside ``shape`` (a checked GeoJSON polygon in WGS-84 lon/lat, EPSG:4326;
    a shape sent in GCJ-02 is converted when it is read, see :func:`selection_from`)."""

    features: tuple[tuple[str, int | str], ...] = ()
    layer: str | None = None
    within: str | None = None
    statuses: tuple[str, ...] = ()
    shape: Mapping[str, Any] | None = None


def _bad(zh: str, en: str, code: str = "bad_task") -> InputError:
    return InputError(zh, en, code=code)


def _survey_layer(name: Any) -> str:
    spec = get_layer(str(name))
    if spec.is_grid:
        raise InputError("请选择调查图层", "choose a survey layer", code="bad_layer")
    return spec.name


def _bad_shape(zh: str, en: str, code: str = "bad_shape") -> InputError:
    return InputError(f"所画范围无效：{zh}", f"the drawn shape is not valid: {en}", code=code)


def _positions(ring: Any, budget: int) -> list[tuple[float, float]]:
    """The (x, y) of a GeoJSON ring, each checked: two or three finite numbers, x within ±180 and
    y within ±90; at most ``budget`` of them."""
    if not isinstance(ring, list | tuple):
        raise _bad_shape("环应为坐标列表", "a ring must be a list of positions")
    if len(ring) > budget:
        raise _bad_shape(
            f"顶点过多（最多 {MAX_VERTICES} 个），请简化后再画",
            f"too many vertices (at most {MAX_VERTICES}); draw a simpler shape",
            "too_many_vertices",
        )
    out = []
    for pos in ring:
        if (
            not isinstance(pos, list | tuple)
            or not 2 <= len(pos) <= 3
            or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in pos)
        ):
            raise _bad_shape("坐标应为 [经度, 纬度]", "a position must be [lon, lat]")
        x, y = float(pos[0]), float(pos[1])
        if not (np.isfinite(x) and np.isfinite(y) and -180 <= x <= 180 and -90 <= y <= 90):
            raise _bad_shape(
                "坐标超出范围（经度 −180…180，纬度 −90…90）",
                "a position is out of range (lon −180…180, lat −90…90)",
                "shape_out_of_range",
            )
        out.append((x, y))
    return out


def shape_of(raw: Any, crs: Any = None) -> dict[str, Any]:
    """A drawn shape checked and in WGS-84: a GeoJSON ``Polygon`` or ``MultiPolygon`` in lon/lat
    degrees -- WGS-84 (``crs`` None, ``"wgs84"`` or ``"EPSG:4326"``) or GCJ-02 (``"gcj02"``, as
    drawn on a Gaode base map; converted with :mod:`geo.reading.gcj02`) --, at most
    :data:`MAX_VERTICES` vertices, valid (closed rings that do not cross themselves) and not empty.

    Returns
    -------
    dict
        The shape as GeoJSON in WGS-84 lon/lat.

    Raises
    ------
    InputError
        When it is anything else (codes ``bad_shape``, ``too_many_vertices``,
        ``shape_out_of_range``, ``bad_crs``).
    """
    name = crs.strip().lower() if isinstance(crs, str) else crs
    if name not in (None, "", "wgs84", "wgs-84", "epsg:4326", "gcj02", "gcj-02"):
        raise InputError("crs 应为 wgs84 或 gcj02", "crs must be wgs84 or gcj02", code="bad_crs")
    if not isinstance(raw, Mapping) or raw.get("type") not in ("Polygon", "MultiPolygon"):
        raise _bad_shape(
            "应为 GeoJSON 多边形（Polygon 或 MultiPolygon）", "it must be a GeoJSON Polygon or MultiPolygon"
        )
    coords = raw.get("coordinates")
    polygons = [coords] if raw["type"] == "Polygon" else coords
    if not isinstance(polygons, list | tuple) or not polygons:
        raise _bad_shape("没有坐标", "it has no coordinates")
    budget = MAX_VERTICES
    parts = []
    for rings in polygons:
        if not isinstance(rings, list | tuple) or not rings:
            raise _bad_shape("多边形应为环的列表", "a polygon must be a list of rings")
        checked = []
        for ring in rings:
            points = _positions(ring, budget)
            budget -= len(points)
            if len(points) < 4 or points[0] != points[-1]:  # GeoJSON's rule (RFC 7946, 3.1.6)
                raise _bad_shape(
                    "每个环至少 4 个坐标且首尾相同", "each ring needs 4 positions or more, the last the first"
                )
            checked.append(points)
        parts.append(shapely.Polygon(checked[0], checked[1:]))
    poly = shapely.MultiPolygon(parts) if raw["type"] == "MultiPolygon" else parts[0]
    if name in ("gcj02", "gcj-02"):
        poly = shapely.transform(poly, lambda xy: np.column_stack(gcj02_to_wgs84(xy[:, 0], xy[:, 1])))
    if poly.is_empty or not poly.area > 0:
        raise _bad_shape("面积为零", "it has no area")
    if not poly.is_valid:
        raise _bad_shape(
            "边相交或环重叠（" + shapely.is_valid_reason(poly) + "）",
            "edges cross or rings overlap (" + shapely.is_valid_reason(poly) + ")",
        )
    return dict(shapely.geometry.mapping(poly))


def selection_from(body: Mapping[str, Any]) -> Selection:
    """The :class:`Selection` of a request body: ``features`` (``[{"layer", "id"}]``, each id a
    feature's number or its survey id such as 案件编号 ``WJ2022-00319``), or ``layer`` with
    ``within`` and/or ``status`` (a code or a list), or ``layer`` with ``shape`` (see
    :func:`shape_of`; ``crs`` says its coordinates' reference, WGS-84 when absent)."""
    raw = body.get("features")
    if raw is not None:
        if not isinstance(raw, list) or not raw:
            raise _bad("请列出要交办的要素", "features must be a non-empty list")
        if len(raw) > MAX_ITEMS:
            raise _bad(
                f"一张交办单最多 {MAX_ITEMS} 个要素", f"at most {MAX_ITEMS} features in one task", "too_many"
            )
        out = []
        for f in raw:
            if not isinstance(f, Mapping) or not isinstance(f.get("layer"), str):
                raise _bad("每个要素应写明图层和编号", "each of features must be {layer, id}")
            ident = feature_ref(f.get("id"))
            if ident is None:
                raise _bad(
                    "要素编号应为正整数或调查编号（如案件编号）",
                    "a feature id must be a positive integer or a survey id (such as the case id)",
                )
            out.append((_survey_layer(f["layer"]), ident))
        return Selection(features=tuple(out))
    layer = body.get("layer")
    if not isinstance(layer, str):
        raise _bad(
            "请选择要素：列出要素编号，或选择图层并给出范围、状态或画出的区域",
            "choose features: a features list, or layer with within/status or shape",
            "no_selection",
        )
    status = body.get("status") or ()
    if not isinstance(status, str | list | tuple):
        raise _bad("状态应为一个或多个状态", "status must be a status or a list of them", "bad_status")
    statuses = (status,) if isinstance(status, str) else tuple(status)
    shape = body.get("shape")
    within = body.get("within")
    if shape is None and not within and not statuses:
        raise _bad(
            "请给出要素编号、范围、状态或画出的区域", "give features, within, status or shape", "no_selection"
        )
    if not isinstance(within, str | None) or not all(isinstance(x, str) for x in statuses):
        raise _bad("范围和状态应为文字", "within and status must be text")
    return Selection(
        layer=_survey_layer(layer),
        within=str(within) if within else None,
        statuses=statuses,
        shape=None if shape is None else shape_of(shape, body.get("crs")),
    )


# accounts and areas -----------------------------------------------------------------------
def _target_units(store: Store, codes: Sequence[str], assignee: str | None) -> frozenset[str] | None:
    """The unit grids a task is handed to: its area's and its account's area's (None: the whole
    district -- an account bound to no area and no area given)."""
    units: set[str] = set(area_units(store, codes)) if codes else set()
    limited = bool(codes)
    if assignee:
        account = store.get_user(assignee)
        if account is None or not account.active:
            raise _bad(f"账户不存在: {assignee}", f"no such account: {assignee}", "unknown_account")
        if account.area:
            units |= area_units(store, account.area)
            limited = True
    return frozenset(units) if limited else None


def _account_units(store: Store, user: str | None) -> tuple[str, frozenset[str] | None]:
    """The role of ``user`` and the unit grids of its area (None: no area); an admin for None."""
    if user is None:
        return "admin", None
    account = store.get_user(user)
    if account is None:
        raise Forbidden("账户不存在", "no such account", code="forbidden")
    return account.role, (area_units(store, account.area) if account.area else None)


def _outside() -> Forbidden:
    return Forbidden(
        "交办单不在本账户的区域内", "the task is outside this account's area", code="outside_area"
    )


def _check_sender(store: Store, user: str | None, target: frozenset[str] | None) -> frozenset[str] | None:
    """Refuse unless ``user`` may hand over to (and check) ``target``; its own units (None: all)."""
    role, mine = _account_units(store, user)
    if role == "admin":
        return None
    if role == "viewer" or mine is None:
        raise Forbidden(
            "只有管理员或上级区域的账户可以交办和核查",
            "only admins or accounts bound to an area above the target may hand over and check",
            code="forbidden",
        )
    if target is None or not target < mine:  # strictly above: the receiver does not check itself
        raise _outside()
    return mine


def _check_checker(store: Store, user: str | None, task: TaskRow) -> None:
    """Refuse unless ``user`` may verify or return the items of ``task``: the receiver (the
    account handed to, or one inside the target area) is told only the sender may."""
    target = _target_units(store, parse_codes(task.area), task.assignee)
    role, mine = _account_units(store, user)
    if role != "admin" and role != "viewer":
        receiver = user is not None and user == task.assignee
        if receiver or (mine is not None and (target is None or mine <= target)):
            raise Forbidden(
                "只有交办方可以核查和退回", "only the sender may verify or return", code="not_sender"
            )
    _check_sender(store, user, target)


def may_do(store: Store, task: TaskRow, user: str | None) -> dict[str, bool]:
    """What ``user`` may do with ``task``: ``fixed`` (report a fix of at least some items),
    ``verify`` and ``return`` (as the sender)."""
    assert task.id is not None
    try:
        _check_checker(store, user, task)
        check = True
    except Forbidden:
        check = False
    items = [i for i in store.task_items(task.id) if i.state == "open"] or store.task_items(task.id)
    try:
        _role, mine = _account_units(store, user)
        mine_items = [i for i in items if mine is None or i.unit in mine]
        _check_receiver(store, user, task, mine_items)
        fix = bool(mine_items)
    except Forbidden:
        fix = False
    return {"fixed": fix, "verify": check, "return": check}


def _check_receiver(store: Store, user: str | None, task: TaskRow, items: list[TaskItemRow]) -> None:
    """Refuse unless ``user`` may report the fix of ``items``."""
    role, mine = _account_units(store, user)
    if role == "admin":
        return
    if role == "viewer":
        raise Forbidden("查看账户不能整改", "a viewer cannot report a fix", code="forbidden")
    if user == task.assignee and mine is None:
        return
    if mine is None:
        raise Forbidden("本账户不是交办对象", "this account is not the task's receiver", code="not_receiver")
    target = _target_units(store, parse_codes(task.area), task.assignee)
    if user != task.assignee and target is not None and not mine <= target:
        raise Forbidden("本账户不是交办对象", "this account is not the task's receiver", code="not_receiver")
    if any(i.unit not in mine for i in items):
        raise _outside()


def _visible(store: Store, task: TaskRow, scope: Scope, user: str | None) -> bool:
    if scope.units is None or (user is not None and user == task.assignee):
        return True
    target = _target_units(store, parse_codes(task.area), task.assignee)
    return target is None or bool(target & scope.units)


# how a user knows a feature -------------------------------------------------------------------
def feature_facts(store: Store, pairs: Iterable[tuple[str, int]]) -> dict[tuple[str, int], dict[str, Any]]:
    """Per (layer, stable id) of ``pairs``: what a user knows the feature by -- ``label_zh``,
    ``label_en`` (the layer's name), ``key`` (its survey id, the layer's ``id_field``; None when
    it has none or is gone) and ``place`` (the first other search field with a value, e.g. the
    address; None when none)."""
    by_layer: dict[str, set[int]] = {}
    for layer, ident in pairs:
        by_layer.setdefault(layer, set()).add(int(ident))
    out: dict[tuple[str, int], dict[str, Any]] = {}
    for layer, ids in by_layer.items():
        spec = get_layer(layer)
        rows = current_rows(store, spec, sorted(ids)) if store.has_layer(spec) else None
        seen: dict[int, Any] = {}
        if rows is not None:
            seen = {int(i): r for i, (_, r) in zip(rows["id"], rows.iterrows(), strict=True)}
        others = [f for f in spec.search_fields if f != spec.id_field]
        for ident in ids:
            row = seen.get(ident)
            key = place = None
            if row is not None and spec.id_field and isinstance(row.get(spec.id_field), str):
                key = row[spec.id_field] or None
            if row is not None:
                place = next((row[f] for f in others if isinstance(row.get(f), str) and row[f]), None)
            out[(layer, ident)] = {
                "label_zh": spec.label_zh,
                "label_en": spec.label_en,
                "key": key,
                "place": place,
            }
    return out


def feature_names(store: Store, pairs: Iterable[tuple[str, int]]) -> dict[tuple[str, int], tuple[str, str]]:
    """Per (layer, stable id): how a message names the feature in Chinese and in English -- the
    layer's name and its survey id (``违法建设 WJ2022-00319``), its number when it has none."""
    return {
        k: (f"{f['label_zh']} {f['key'] or k[1]}", f"{f['label_en']} {f['key'] or k[1]}")
        for k, f in feature_facts(store, pairs).items()
    }


# selection ----------------------------------------------------------------------------------
def _units_of(store: Store, layer: str, numbers: Iterable[int]) -> dict[int, tuple[int, str | None]]:
    """Per number of ``numbers`` that names a current feature of ``layer`` -- its stable id or,
    as the map and the lists hand them out, its current row's fid (the two never name different
    features) --, the feature's stable id and unit grid; the others left out."""
    spec = get_layer(layer)
    wanted = np.unique(np.asarray(list(numbers), dtype=np.int64))
    if not len(wanted) or not store.has_layer(spec):
        return {}

    def units(ids: np.ndarray) -> dict[int, str | None]:
        rows = current_rows(store, spec, ids)
        return {
            int(i): (u if isinstance(u, str) else None)
            for i, u in zip(rows["id"], rows["gw_unit"], strict=True)
        }

    by_id = units(wanted)
    out = {n: (n, u) for n, u in by_id.items()}
    rest = wanted[~np.isin(wanted, np.fromiter(by_id, dtype=np.int64, count=len(by_id)))]
    if len(rest):
        rows = ids_of_rows(store, spec, rest)
        ids = {int(f): int(i) for f, i in zip(rows["fid"], rows["id"], strict=True)}
        found = units(np.asarray(sorted(set(ids.values())), dtype=np.int64))
        out.update({f: (i, found[i]) for f, i in ids.items() if i in found})
    return out


def _in_shape(store: Store, layer: str, shape: Mapping[str, Any]) -> np.ndarray:
    """The ids of ``layer``'s features that intersect ``shape`` (GeoJSON, WGS-84 lon/lat)."""
    poly = shapely.geometry.shape(shape_of(shape))
    spec = get_layer(layer)
    epsg = store.srs_epsg()
    if epsg is None or not store.has_layer(spec):
        return np.empty(0, dtype=np.int64)
    to_store = Transformer.from_crs(4326, epsg, always_xy=True)
    projected = shapely.transform(poly, lambda xy: np.column_stack(to_store.transform(xy[:, 0], xy[:, 1])))
    fids, geoms = store.read_geometry(spec)
    hit = shapely.intersects(projected, geoms)
    return np.asarray(fids, dtype=np.int64)[hit]


def resolve(
    store: Store, selection: Selection, allowed: frozenset[str] | None, sender: frozenset[str] | None
) -> list[tuple[str, int, str | None]]:
    """The features ``selection`` names, as (layer, id, unit): a list is checked (a missing
    feature is not found, one outside the sender's area refused, one outside the target
    ``allowed`` a bad request); a filter keeps to ``allowed``."""
    if selection.features:
        out = []
        by_layer: dict[str, list[int | str]] = {}
        for layer, ref in selection.features:
            by_layer.setdefault(layer, []).append(ref)
        seen: set[tuple[str, int]] = set()
        for layer, refs in by_layer.items():
            spec = get_layer(layer)
            keys = ids_of_keys(store, spec, [r for r in refs if isinstance(r, str)])
            unknown: list[int | str] = [
                r for r in dict.fromkeys(refs) if isinstance(r, str) and r not in keys
            ]
            listed = [keys.get(r, 0) if isinstance(r, str) else r for r in refs if r not in unknown]
            found = _units_of(store, layer, listed)
            unknown += [r for r in dict.fromkeys(listed) if r not in found]
            if unknown:
                shown = "、".join(str(r) for r in unknown[:20]) + (" …" if len(unknown) > 20 else "")
                raise InputError(
                    f"{spec.label_zh}中没有这些要素: {shown}",
                    f"no such features in {spec.label_en}: {shown.replace('、', ', ')}",
                    code="feature_not_found",
                    details={"layer": layer, "ids": [str(r) for r in unknown]},
                )
            for number in dict.fromkeys(listed):
                ident, unit = found[number]
                if (layer, ident) in seen:
                    continue
                seen.add((layer, ident))
                if sender is not None and unit not in sender:
                    raise _outside()
                if allowed is not None and unit not in allowed:
                    zh, en = feature_names(store, [(layer, ident)])[(layer, ident)]
                    raise _bad(f"{zh} 不在交办区域内", f"{en} is outside the task's area", "outside_target")
                out.append((layer, ident, unit))
        return out
    layer = str(selection.layer)
    ids: np.ndarray = (
        _in_shape(store, layer, selection.shape)
        if selection.shape is not None
        else np.empty(0, dtype=np.int64)
    )
    if selection.within or selection.statuses or selection.shape is None:
        query = FeatureQuery(layer, within=selection.within, statuses=selection.statuses, units=allowed)
        by_filter = filtered_fids(store, query)
        ids = by_filter if selection.shape is None else np.intersect1d(ids, by_filter)
    # the filters and the shape give row fids: each feature once, by its stable id
    chosen = {i: u for i, u in _units_of(store, layer, ids.tolist()).values()}
    return [
        (layer, i, u)
        for i, u in sorted(chosen.items())
        if (allowed is None or u in allowed) and (sender is None or u in sender)
    ]


# writes ---------------------------------------------------------------------------------------
def _moment(at: datetime | None) -> tuple[str, date]:
    moment = at or datetime.now(clock.zone())
    return clock.stamp(moment), moment.astimezone(clock.zone()).date()


#: the Chinese name of each text a task takes, for messages
_TEXT_NAMES = {"title": "标题", "instructions": "整改要求", "assignee": "交办账户", "note": "说明"}


def _text(value: Any, name: str, limit: int, required: bool = False) -> str | None:
    zh = _TEXT_NAMES.get(name, name)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise _bad(f"请填写{zh}", f"{name} is required", "missing_" + name)
        return None
    if not isinstance(value, str):
        raise _bad(f"{zh}应为文字", f"{name} must be text")
    text = value.strip()
    if len(text) > limit:
        raise _bad(f"{zh}过长（最多 {limit} 字）", f"{name} is too long (at most {limit})")
    return text


def _payload(store: Store, task: TaskRow, items: int, by: str | None) -> dict[str, Any]:
    area = _area(store, task)
    name = None
    if area:
        hierarchy = load_hierarchy(store)
        for level in hierarchy.level_names:
            units = hierarchy.units(level)
            hit = units.loc[units["code"] == area, "name"]
            if len(hit):
                name = hit.iloc[0]
                break
    return {
        "id": task.number,
        "title": task.title,
        "area": area,
        "area_name": name,
        "assignee": task.assignee,
        "deadline": task.deadline,
        "items": items,
        "by": by,
    }


def _receiver(store: Store, area: str | Sequence[str], assignee: Any) -> tuple[tuple[str, ...], str | None]:
    """The target area's codes (checked) and the receiving account of a new task; one is needed."""
    codes = tuple(check_area(store, area)) if area else ()
    name = _text(assignee, "assignee", 100)
    if not codes and not name:
        raise _bad("请选择交办区域或账户", "choose the area or the account to hand over to", "no_target")
    return codes, name


def _choose(
    store: Store, selection: Selection, codes: Sequence[str], assignee: str | None, user: str | None
) -> list[tuple[str, int, str | None]]:
    """The features a task handed over to ``codes``/``assignee`` by ``user`` takes: the one
    selection of :func:`create_task` and :func:`preview_task`."""
    target = _target_units(store, codes, assignee)
    mine = _check_sender(store, user, target)
    return resolve(store, selection, target, mine)


def _lonlat(store: Store, layer: str, fids: Sequence[int], gcj02: bool) -> dict[int, list[float]]:
    """A point on each feature of ``fids`` (current rows of ``layer``) in lon/lat degrees, WGS-84
    or (``gcj02``) GCJ-02; rounded to 7 places (about a centimetre)."""
    spec = get_layer(layer)
    epsg = store.srs_epsg()
    if epsg is None or not fids:
        return {}
    wanted = np.unique(np.asarray(fids, dtype=np.int64))
    got, geoms = store.read_geometry(spec, wanted)
    points = shapely.point_on_surface(np.asarray(geoms, dtype=object))
    x, y = shapely.get_x(points), shapely.get_y(points)
    lon, lat = Transformer.from_crs(epsg, 4326, always_xy=True).transform(x, y)
    if gcj02:
        lon, lat = wgs84_to_gcj02(lon, lat)
    return {
        int(f): [round(float(a), 7), round(float(b), 7)]
        for f, a, b in zip(got, np.asarray(lon), np.asarray(lat), strict=True)
        if np.isfinite(a) and np.isfinite(b)
    }


def preview_task(
    store: Store,
    *,
    selection: Selection,
    area: str | Sequence[str] = (),
    assignee: str | None = None,
    user: str | None = None,
    shown: int = PREVIEW_SHOWN,
    gcj02: bool = False,
) -> dict[str, Any]:
    """What :func:`create_task` would hand over with the same selection, target and account,
    written nowhere: the selection is the one creation makes (same checks, same refusals).

    Parameters
    ----------
    store : Store
        The store.
    selection : Selection
        The features (a list, an area and status, a drawn shape in WGS-84 lon/lat).
    area, assignee, user
        As for :func:`create_task`.
    shown : int
        How many of the features to list (ordered by layer and id); the rest are counted.
    gcj02 : bool
        Give the features' positions in GCJ-02 (a map on a Gaode base map), else WGS-84.

    Returns
    -------
    dict
        ``count`` (features taken), ``ids`` (up to :data:`MAX_ITEMS`, each ``{"layer", "id", "fid", "at"}``: its
        stable id, its current row, which the map draws, and a point on it, ``[lon, lat]`` in
        degrees, so a map that draws clusters can still mark each), ``items`` (the first ``shown``: ``layer``,
        ``id``, ``fid``, ``unit``, ``status``), ``more`` (how many are not listed), ``limit``
        (:data:`MAX_ITEMS`), ``too_many`` (more than a task may hold: creation refuses) and
        ``held`` (those still in an item of another task not yet verified, each ``{"layer",
        "id", "task", "name_zh", "name_en"}``: creation refuses them, ``already_handed_over``).
    """
    codes, name = _receiver(store, area, assignee)
    everything = _choose(store, selection, codes, name, user)
    held = _held(store, everything)
    chosen = everything[:MAX_ITEMS]  # past what a task may hold, only counted
    rows: dict[tuple[str, int], tuple[int | None, str | None]] = {}
    by_layer: dict[str, list[int]] = {}
    for layer, ident, _unit in chosen:
        by_layer.setdefault(layer, []).append(ident)
    for layer, idents in by_layer.items():
        spec = get_layer(layer)
        found = current_rows(store, spec, np.asarray(idents, dtype=np.int64))
        states = found[spec.status_field] if spec.status_field in found else [None] * len(found)
        for i, f, st in zip(found["id"], found["fid"], states, strict=True):
            rows[(layer, int(i))] = (int(f), st if isinstance(st, str) else None)
    at: dict[str, dict[int, list[float]]] = {
        layer: _lonlat(store, layer, [f for (lay, _i), (f, _s) in rows.items() if lay == layer and f], gcj02)
        for layer in by_layer
    }
    listed: list[dict[str, Any]] = []
    items: list[dict[str, Any]] = []
    for layer, ident, unit in chosen:
        fid, state = rows.get((layer, ident), (None, None))
        listed.append({"layer": layer, "id": ident, "fid": fid, "at": at[layer].get(fid) if fid else None})
        if len(items) < shown:
            items.append({"layer": layer, "id": ident, "fid": fid, "unit": unit, "status": state})
    return {
        "count": len(everything),
        "ids": listed,
        "items": items,
        "more": max(0, len(everything) - len(items)),
        "limit": MAX_ITEMS,
        "too_many": len(everything) > MAX_ITEMS,
        "held": held,
    }


def _held(store: Store, chosen: Sequence[tuple[str, int, Any]]) -> list[dict[str, Any]]:
    """Of ``chosen`` (layer, id, unit), the features still in an open item of a task -- what
    creation refuses as ``already_handed_over`` -- named as the refusal names them."""
    wanted = {(layer, int(ident)) for layer, ident, _unit in chosen}
    numbers = {task.id: task.number for task in store.tasks()}
    taken: dict[tuple[str, int], str] = {}
    for item in store.task_items():  # every task's, by id: two reads, whatever the number of tasks
        key = (item.layer, int(item.feature))
        if item.state != "verified" and key in wanted:
            taken.setdefault(key, numbers[item.task_id])
    if not taken:
        return []
    features = [{"layer": k[0], "id": k[1], "task": n} for k, n in sorted(taken.items())]
    refusal = _handed_over(store, features)
    return list(refusal.details["features"])


def create_task(
    store: Store,
    *,
    title: Any,
    selection: Selection,
    area: str | Sequence[str] = (),
    assignee: str | None = None,
    instructions: Any = None,
    days: int | None = None,
    working_days: int | None = None,
    user: str | None = None,
    at: datetime | None = None,
) -> TaskRow:
    """Hand the features of ``selection`` over to ``area`` and/or ``assignee``.

    Parameters
    ----------
    store : Store
        The store.
    title, instructions : str
        What to do (title required, at most 200 characters; instructions at most 2000).
    selection : Selection
        The features (resolved inside the sender's area and the target area).
    area : str or sequence of str
        Street, community or unit codes of the current grid (checked).
    assignee : str, optional
        The account the task is handed to.
    days, working_days : int
        The deadline: this many calendar days, or working days (China's calendar), after the
        day of the hand-over -- exactly one of them.
    user : str, optional
        Who hands over (see the module's rules).
    at : datetime, optional
        When (default now).

    Returns
    -------
    TaskRow
        The task written, with its id and number.
    """
    title_text = _text(title, "title", _MAX_TITLE, required=True)
    note = _text(instructions, "instructions", _MAX_TEXT)
    codes, assignee = _receiver(store, area, assignee)
    if (days is None) == (working_days is None):
        raise _bad("请给出期限：自然日或工作日（二选一）", "give either days or workdays", "bad_deadline")
    n = days if days is not None else working_days
    if isinstance(n, bool) or not isinstance(n, int):
        raise _bad("天数应为整数", "the number of days must be an integer", "bad_days")
    chosen = _choose(store, selection, codes, assignee, user)
    if not chosen:
        raise _bad("所选范围内没有要素", "no feature in the selection", "no_features")
    if len(chosen) > MAX_ITEMS:
        raise _bad(
            f"一张交办单最多 {MAX_ITEMS} 个要素", f"at most {MAX_ITEMS} features in one task", "too_many"
        )
    stamp, day = _moment(at)
    deadline = due_date(day, n, working_days=working_days is not None).value
    assert isinstance(deadline, date)
    task = TaskRow(
        None,
        f"JB-{day.year:04d}-0000",
        str(title_text),
        note,
        user,
        stamp,
        ",".join(codes),
        assignee,
        deadline.isoformat(),
        int(n),
        int(working_days is not None),
    )
    items = [
        TaskItemRow(None, 0, layer, ident, unit, deadline.isoformat(), "open")
        for layer, ident, unit in chosen
    ]
    event = TaskEventRow(
        None, 0, 0, "created", stamp, day.isoformat(), user, note, None, deadline.isoformat()
    )
    try:
        with store.admin_transaction():
            store.add_task(task, items, event)
            queue_event(
                store,
                formats.task_created(_payload(store, task, len(items), user)),
                area=_area(store, task),
                account=assignee,
            )
    except Conflict as exc:
        if exc.code != "already_handed_over":
            raise
        raise _handed_over(store, exc.details["features"]) from None
    return task


def _handed_over(store: Store, features: list[dict[str, Any]]) -> Conflict:
    """The refusal of a hand-over of features already in an open item of another task, each
    named by its layer and survey id with the number of the task that holds it."""
    names = feature_names(store, [(f["layer"], int(f["id"])) for f in features])
    listed = [(names[(f["layer"], int(f["id"]))], f["task"]) for f in features]
    more = len(listed) > 20
    zh = "、".join(f"{n[0]}（{t}）" for n, t in listed[:20]) + (" …" if more else "")
    en = ", ".join(f"{n[1]} ({t})" for n, t in listed[:20]) + (" …" if more else "")
    details = [dict(f, name_zh=n[0], name_en=n[1]) for f, (n, _t) in zip(features, listed, strict=True)]
    return Conflict(
        f"这些要素已交办且尚未销号，不能再次交办: {zh}",
        f"these features are already handed over in a task not yet verified: {en}",
        code="already_handed_over",
        details={"features": details},
    )


def _area(store: Store, task: TaskRow) -> str | None:
    """The area code a task's webhook events name: its first area code, else its account's."""
    codes = parse_codes(task.area)
    if codes:
        return codes[0]
    account = store.get_user(task.assignee) if task.assignee else None
    return account.area[0] if account is not None and account.area else None


def _task(store: Store, task_id: int) -> TaskRow:
    task = store.task(task_id)
    if task is None:
        raise NotFound(f"交办单 {task_id} 不存在", f"task {task_id} not found", code="task_not_found")
    return task


def _chosen(store: Store, task: TaskRow, item_ids: Sequence[int] | None, state: str) -> list[TaskItemRow]:
    """The items of ``task`` named by ``item_ids`` (all in ``state`` when None); each named one
    must be in ``state`` (else :class:`Conflict`)."""
    assert task.id is not None
    items = store.task_items(task.id)
    if not item_ids:
        chosen = [i for i in items if i.state == state]
    else:
        by_id = {i.id: i for i in items}
        chosen = []
        for ident in dict.fromkeys(item_ids):
            if isinstance(ident, bool) or not isinstance(ident, int) or ident not in by_id:
                raise NotFound(
                    f"条目 {ident} 不在本交办单中", f"item {ident} is not in this task", code="item_not_found"
                )
            chosen.append(by_id[ident])
        wrong = [i.id for i in chosen if i.state != state]
        if wrong:
            raise Conflict(
                f"条目状态已变，不能执行此操作: {wrong}",
                f"items not in the state this needs ({state}): {wrong}",
                code="bad_state",
                details={"items": wrong, "needs": state},
            )
    if not chosen:
        raise Conflict(
            "没有可处理的条目", "no item in the state this needs", code="bad_state", details={"needs": state}
        )
    return chosen


def _check_photos(store: Store, items: list[TaskItemRow], photos: Sequence[int]) -> str | None:
    features = {(i.layer, i.feature) for i in items}
    if len(photos) > 50:
        raise _bad("一次最多 50 张照片", "at most 50 photos at a time", "bad_photo")
    for pid in photos:
        if isinstance(pid, bool) or not isinstance(pid, int) or not 1 <= pid <= _MAX_ID:
            raise _bad("照片编号应为正整数", "photo ids must be positive integers", "bad_photo")
        row = store.photo(pid)
        if row is None or (row.layer, row.feature) not in features:
            raise _bad(f"照片 {pid} 不属于这些要素", f"photo {pid} is not of these features", "bad_photo")
    return ",".join(str(p) for p in dict.fromkeys(photos)) or None


def mark_fixed(
    store: Store,
    task_id: int,
    item_ids: Sequence[int] | None = None,
    *,
    note: Any = None,
    photos: Sequence[int] = (),
    user: str | None = None,
    at: datetime | None = None,
) -> list[TaskItemRow]:
    """Report the fix (整改完成) of the open items ``item_ids`` of task ``task_id`` (all open
    ones when None), with a note and photo ids (photos of those features); the items changed."""
    task = _task(store, task_id)
    items = _chosen(store, task, item_ids, "open")
    _check_receiver(store, user, task, items)
    text = _text(note, "note", _MAX_TEXT)
    photo_text = _check_photos(store, items, photos)
    stamp, day = _moment(at)
    for i in items:
        i.state, i.fixed_at, i.fixed_by = "fixed", stamp, user
    events = [
        TaskEventRow(None, task_id, int(i.id or 0), "fixed", stamp, day.isoformat(), user, text, photo_text)
        for i in items
    ]
    store.record_task_events(task_id, items, events)
    return items


def verify_items(
    store: Store,
    task_id: int,
    item_ids: Sequence[int] | None = None,
    *,
    note: Any = None,
    user: str | None = None,
    at: datetime | None = None,
) -> list[TaskItemRow]:
    """Verify (核查通过, 销号) the fixed items ``item_ids`` (all fixed ones when None)."""
    task = _task(store, task_id)
    _check_checker(store, user, task)
    items = _chosen(store, task, item_ids, "fixed")
    text = _text(note, "note", _MAX_TEXT)
    stamp, day = _moment(at)
    for i in items:
        i.state, i.verified_at, i.verified_by = "verified", stamp, user
    events = [
        TaskEventRow(None, task_id, int(i.id or 0), "verified", stamp, day.isoformat(), user, text)
        for i in items
    ]
    with store.admin_transaction():
        store.record_task_events(task_id, items, events)
        env = formats.task_verified(_payload(store, task, len(store.task_items(task_id)), user), len(items))
        queue_event(store, env, area=_area(store, task), account=task.assignee)
    return items


def return_items(
    store: Store,
    task_id: int,
    item_ids: Sequence[int] | None = None,
    *,
    note: Any = None,
    deadline: date | str | None = None,
    user: str | None = None,
    at: datetime | None = None,
) -> list[TaskItemRow]:
    """Return (退回) the fixed items ``item_ids`` (all fixed ones when None) for more work,
    counted as rework; they keep their deadline unless ``deadline`` sets a new one."""
    task = _task(store, task_id)
    _check_checker(store, user, task)
    items = _chosen(store, task, item_ids, "fixed")
    text = _text(note, "note", _MAX_TEXT)
    new = None
    if deadline is not None and deadline != "":
        try:
            new = deadline if isinstance(deadline, date) else date.fromisoformat(str(deadline))
        except ValueError:
            raise _bad(
                "新期限应为日期 YYYY-MM-DD", "the new deadline must be a date YYYY-MM-DD", "bad_deadline"
            ) from None
    stamp, day = _moment(at)
    if new is not None and new < day:
        raise _bad("新期限不能早于今天", "the new deadline cannot be before today", "bad_deadline")
    new_text = new.isoformat() if new else None
    for i in items:
        i.state, i.rework = "open", i.rework + 1
        i.fixed_at = i.fixed_by = None
        if new_text:
            i.deadline = new_text
    events = [
        TaskEventRow(
            None, task_id, int(i.id or 0), "returned", stamp, day.isoformat(), user, text, None, new_text
        )
        for i in items
    ]
    with store.admin_transaction():
        store.record_task_events(task_id, items, events)
        env = formats.task_returned(_payload(store, task, len(items), user), text, new_text)
        queue_event(store, env, area=_area(store, task), account=task.assignee)
    return items


# reads ----------------------------------------------------------------------------------------
def _status(counts: Mapping[str, int]) -> str:
    if counts["handed_over"] and counts["verified"] == counts["handed_over"]:
        return "verified"
    if counts["open"] == 0 and counts["handed_over"]:
        return "fixed"
    return "open"


def _task_dict(
    task: TaskRow, items: list[TaskItemRow], events: list[TaskEventRow], as_of: date
) -> dict[str, Any]:
    states = replay(events, as_of)
    counts = dict.fromkeys(("handed_over", "open", "fixed", "verified", "overdue", "reworked"), 0)
    for item in items:
        state = states.get(int(item.id or 0))
        if state is None:
            continue
        c = item_counts(state, as_of)
        for k in counts:
            counts[k] += c[k]
    return {
        "id": task.id,
        "number": task.number,
        "title": task.title,
        "instructions": task.instructions,
        "created_by": task.created_by,
        "created_at": task.created_at,
        "area": list(parse_codes(task.area)),
        "assignee": task.assignee,
        "deadline": task.deadline,
        "days": task.days,
        "working_days": bool(task.working_days),
        "status": _status(counts),
        "counts": counts,
    }


def list_tasks(
    store: Store,
    scope: Scope = EVERYTHING,
    user: str | None = None,
    as_of: date | None = None,
    status: str | None = None,
) -> list[dict[str, Any]]:
    """The tasks ``scope`` may see (newest first), each with its counts as of ``as_of``
    (default today) and its status (``open``, ``fixed``: all reported fixed or verified,
    ``verified``: all verified); only those of ``status`` when given."""
    if status is not None and status not in ("open", "fixed", "verified", "overdue"):
        raise _bad(
            "status 应为 open、fixed、verified 或 overdue",
            "status must be open, fixed, verified or overdue",
            "bad_status",
        )
    day = as_of or clock.today()
    items_by: dict[int, list[TaskItemRow]] = {}
    for i in store.task_items():
        if scope.allows(i.unit) or user is not None:
            items_by.setdefault(i.task_id, []).append(i)
    events_by: dict[int, list[TaskEventRow]] = {}
    for e in store.task_events():
        events_by.setdefault(e.task_id, []).append(e)
    out = []
    for task in store.tasks():
        if not _visible(store, task, scope, user):
            continue
        items = [
            i for i in items_by.get(int(task.id or 0), []) if scope.allows(i.unit) or user == task.assignee
        ]
        d = _task_dict(task, items, events_by.get(int(task.id or 0), []), day)
        if status == "overdue" and not d["counts"]["overdue"]:
            continue
        if status not in (None, "overdue") and d["status"] != status:
            continue
        out.append(d)
    return out


def task_detail(
    store: Store, task_id: int, scope: Scope = EVERYTHING, user: str | None = None, as_of: date | None = None
) -> dict[str, Any]:
    """One task with its items and events (a task outside ``scope`` is not found)."""
    task = _task(store, task_id)
    if not _visible(store, task, scope, user):
        raise NotFound(f"交办单 {task_id} 不存在", f"task {task_id} not found", code="task_not_found")
    day = as_of or clock.today()
    items = [i for i in store.task_items(task_id) if scope.allows(i.unit) or user == task.assignee]
    shown = {i.id for i in items}
    events = [e for e in store.task_events(task_id) if e.item_id in shown]
    out = _task_dict(task, items, events, day)
    states = replay(events, day)
    facts = feature_facts(store, [(i.layer, i.feature) for i in items])
    out["may"] = may_do(store, task, user)
    out["items"] = [
        {
            "id": i.id,
            "layer": i.layer,
            "feature": i.feature,
            **facts[(i.layer, i.feature)],
            "unit": i.unit,
            "deadline": i.deadline,
            "state": i.state,
            "overdue": bool(item_counts(states[int(i.id or 0)], day)["overdue"])
            if int(i.id or 0) in states
            else False,
            "fixed_at": i.fixed_at,
            "fixed_by": i.fixed_by,
            "verified_at": i.verified_at,
            "verified_by": i.verified_by,
            "rework": i.rework,
        }
        for i in items
    ]
    out["events"] = [
        {
            "item": e.item_id,
            "kind": e.kind,
            "at": e.at,
            "day": e.day,
            "user": e.user,
            "note": e.note,
            "photos": [int(p) for p in (e.photos or "").split(",") if p],
            "deadline": e.deadline,
        }
        for e in events
    ]
    return out


def send_overdue(store: Store, as_of: date | None = None, at: datetime | None = None) -> list[str]:
    """Queue ``task.overdue`` for every task with an overdue item as of ``as_of`` (default
    today) that was not told of before (once per task: an ``overdue`` event of the task, item
    0, records it); the numbers of the tasks told."""
    day = as_of or clock.today()
    stamp, _ = _moment(at)
    told = []
    events_by: dict[int, list[TaskEventRow]] = {}
    for e in store.task_events():
        events_by.setdefault(e.task_id, []).append(e)
    for task in reversed(store.tasks()):
        events = events_by.get(int(task.id or 0), [])
        if any(e.kind == "overdue" for e in events):
            continue
        states = replay(events, day)
        late = [s for s in states.values() if item_counts(s, day)["overdue"]]
        if not late:
            continue
        days_late = max((day - s.deadline).days for s in late)
        event = TaskEventRow(None, int(task.id or 0), 0, "overdue", stamp, day.isoformat(), None, None)
        with store.admin_transaction():
            store.record_task_events(int(task.id or 0), [], [event])
            env = formats.task_overdue(_payload(store, task, len(late), None), day.isoformat(), days_late)
            queue_event(store, env, area=_area(store, task), account=task.assignee)
        told.append(task.number)
    return told
