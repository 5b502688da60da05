"""Filing the daily patrol (日巡查): "nothing found" (零报告) or the features found or added, for
the unit grids of the account's area (or some of them) on one local day.

Rules:

- The day is a local day (``GRIDWATCH_TIMEZONE``, default Asia/Shanghai), today by default. A
  day after today is refused; an earlier day is allowed and the filing is marked ``late``.
- The units are the account's area by default (an account bound to no area names them);
  street or community codes stand for their unit grids.  A unit outside the account's area is
  refused (403, ``outside_area``).
- One filing per account, unit and day counts as that account's report: filing again for a
  unit the account already filed that day is refused (409, ``patrol_already_filed``) unless
  the filing says ``amend``; then it is kept as a new filing that amends the earlier ones for
  those units, which stay in the history (:func:`patrol_list` names the filing that amended
  each).
- Features are named by layer and stable id; each must exist and lie in the account's area.

Every filing is written with an audit entry (``patrol_add``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date
from typing import Any

import numpy as np

from geo.edits.ids import current_rows, feature_ref, ids_of_keys
from geo.errors import Forbidden, InputError
from geo.figures.areas import EVERYTHING, Scope, parse_codes, units_of, write_units
from geo.figures.hierarchy import load_hierarchy
from geo.reading.values import parse_date
from geo.registry import get_layer
from geo.store import clock
from geo.store.base import Store
from geo.store.interface.patrols import PATROL_RESULTS, PatrolRow

__all__ = [
    "MAX_FEATURES",
    "MAX_NOTE",
    "file_patrol",
    "patrol_dict",
    "patrol_list",
]

#: characters a filing's note may have
MAX_NOTE = 500
#: features one filing may name
MAX_FEATURES = 200


def _outside(what: Sequence[str], en: Sequence[str] | None = None) -> Forbidden:
    more = " …" if len(what) > 10 else ""
    shown = ", ".join(what[:10]) + more
    return Forbidden(
        f"不在本账户的区域内: {shown}",
        f"outside this account's area: {', '.join((en or what)[:10]) + more}",
        code="outside_area",
        details={"codes": list(what)},
    )


def _check_day(value: object, today: date) -> date:
    if value is None or (isinstance(value, str) and not value.strip()):
        return today
    day = None
    if isinstance(value, str | date):
        try:
            day = parse_date(value)
        except InputError:
            day = None
    if day is None:
        raise InputError(
            f"巡查日期无效: {str(value)[:40]}", f"not a patrol day: {str(value)[:40]}", code="bad_date"
        )
    if day > today:
        raise InputError(
            f"不能提交今天（{today.isoformat()}）之后的巡查",
            f"a patrol cannot be filed for a day after today ({today.isoformat()})",
            code="patrol_future_day",
        )
    return day


def _check_units(store: Store, account: str | None, codes: object) -> tuple[str, ...]:
    allowed = write_units(store, account)
    hierarchy = load_hierarchy(store)
    if not len(hierarchy.grid):
        raise InputError("尚未导入网格", "no unit grid has been imported yet", code="no_grid")
    if codes is not None and not isinstance(codes, str | list | tuple):
        raise InputError("巡查网格应为编码列表", "units must be a list of codes", code="bad_units")
    given = parse_codes(codes) if isinstance(codes, str) else parse_codes([str(c) for c in codes or ()])
    if not given:
        if allowed is None:
            raise InputError(
                "请填写巡查的单元网格（本账户未限定区域）",
                "name the unit grids patrolled (this account is bound to no area)",
                code="patrol_units_required",
            )
        return tuple(sorted(allowed))
    units, unknown = units_of(hierarchy, given)
    if unknown:
        shown = ", ".join(unknown[:10])
        raise InputError(
            f"编码不在当前网格中: {shown}",
            f"codes not on the current grid: {shown}",
            code="unknown_area",
            details={"codes": unknown},
        )
    if allowed is not None and not units <= allowed:
        raise _outside(sorted(units - allowed))
    return tuple(sorted(units))


def _check_features(store: Store, account: str | None, items: object) -> list[dict[str, Any]]:
    if items is None:
        return []
    if not isinstance(items, list) or len(items) > MAX_FEATURES:
        raise InputError(
            f"一次最多列出 {MAX_FEATURES} 个要素",
            f"features must be a list of at most {MAX_FEATURES} {{layer, id}}",
            code="bad_features",
        )
    wanted: dict[str, set[int]] = {}
    keys: dict[str, list[str]] = {}
    for item in items:
        ok = isinstance(item, dict) and isinstance(item.get("layer"), str)
        fid = feature_ref(item.get("id")) if ok else None
        if fid is None:
            raise InputError(
                "每个要素应写明图层和编号（要素编号或调查编号）",
                "each feature must be {layer, id} with a positive integer id or a survey id",
                code="bad_features",
            )
        try:
            spec = get_layer(str(item["layer"]))
        except InputError:
            raise InputError(
                f"未知图层: {str(item['layer'])[:40]}",
                f"unknown layer: {str(item['layer'])[:40]}",
                code="bad_features",
            ) from None
        if spec.is_grid:
            raise InputError("网格不是巡查要素", "the grid holds no patrol features", code="bad_features")
        ids = wanted.setdefault(spec.name, set())
        if isinstance(fid, str):
            keys.setdefault(spec.name, []).append(fid)
        else:
            ids.add(fid)
    allowed = write_units(store, account)
    out: list[dict[str, Any]] = []
    for name, ids in sorted(wanted.items()):
        spec = get_layer(name)
        by_key = ids_of_keys(store, spec, keys.get(name, []))
        unknown: list[int | str] = [k for k in dict.fromkeys(keys.get(name, [])) if k not in by_key]
        ids |= set(by_key.values())
        rows = current_rows(store, spec, np.array(sorted(ids), dtype=np.int64))
        found = {int(f): u for f, u in zip(rows["id"], rows["gw_unit"], strict=True)}
        missing = unknown + sorted(ids - set(found))
        if missing:
            shown = ", ".join(str(i) for i in missing[:10])
            raise InputError(
                f"图层 {spec.label_zh} 中没有这些要素: {shown}",
                f"no such features in {spec.label_en}: {shown}",
                code="patrol_feature_unknown",
                details={"layer": name, "ids": missing},
            )
        if allowed is not None:
            outside = [i for i in sorted(ids) if found[i] not in allowed]
            if outside:
                raise _outside(
                    [f"{spec.label_zh} {i}" for i in outside], [f"{spec.label_en} {i}" for i in outside]
                )
        out.extend({"layer": name, "id": i} for i in sorted(ids))
    return out


def file_patrol(
    store: Store,
    account: str | None,
    *,
    day: object = None,
    units: object = None,
    result: str = "nothing_found",
    features: object = None,
    note: str | None = None,
    amend: bool = False,
    tz: str | None = None,
) -> tuple[PatrolRow, list[int]]:
    """File one patrol for ``account`` (see the module docstring for the rules).

    Parameters
    ----------
    day : str or date, optional
        The local day patrolled; default today in ``tz``.
    units : str or list of str, optional
        Unit grid, community or street codes; default the account's area.
    result : str
        ``"nothing_found"`` (no features) or ``"found"`` (at least one feature).
    features : list of dict, optional
        ``{"layer": ..., "id": ...}`` with stable feature ids.
    amend : bool
        Amend the account's earlier filings of that day for these units instead of being refused.

    Returns
    -------
    (PatrolRow, list of int)
        The filing kept and the ids of the earlier filings it amends.

    Raises
    ------
    InputError
        A bad day (future: ``patrol_future_day``), result, unit code, feature or note.
    Forbidden
        ``outside_area``: a unit or feature outside the account's area (403).
    Conflict
        ``patrol_already_filed``: the account filed for one of these units that day, without ``amend``.
    """
    today = clock.today(tz)
    patrol_day = _check_day(day, today)
    if result not in PATROL_RESULTS:
        raise InputError(
            "巡查结果应为“无异常”或“发现问题”", "result must be nothing_found or found", code="bad_result"
        )
    covered = _check_units(store, account, units)
    found = _check_features(store, account, features)
    if result == "nothing_found" and found:
        raise InputError(
            "零报告不能列出要素", "a nothing-found report lists no features", code="bad_features"
        )
    if result == "found" and not found:
        raise InputError("请列出发现或新增的要素", "list the features found or added", code="bad_features")
    if note is not None:
        note = str(note).strip() or None
    if note is not None and len(note) > MAX_NOTE:
        raise InputError(
            f"备注过长（最多 {MAX_NOTE} 字）",
            f"the note is too long (at most {MAX_NOTE} characters)",
            code="bad_note",
        )
    row = PatrolRow(
        id=None,
        account=account or "-",
        day=patrol_day.isoformat(),
        result=result,
        features=found,
        note=note,
        created_at=clock.now_stamp(),
        late=patrol_day < today,
        units=covered,
    )
    row.id, earlier = store.add_patrol(row, amend=amend)
    return row, earlier


def patrol_list(
    store: Store, first: date | None = None, last: date | None = None, scope: Scope = EVERYTHING
) -> list[dict[str, Any]]:
    """The filings for days ``first`` to ``last`` that cover a unit of ``scope`` (their units
    cut to the scope), newest first, each as :func:`patrol_dict` with ``amended_by``: the later
    filing of the same account and day that covers all its units (None while it stands)."""
    rows = store.patrols(first.isoformat() if first else None, last.isoformat() if last else None)
    amended = _amended_by(rows)
    out = []
    for row in reversed(rows):
        units = [u for u in row.units if scope.allows(u)]
        if not units:
            continue
        item = patrol_dict(row)
        item["units"] = units
        item["amended_by"] = amended.get(int(row.id or 0))
        out.append(item)
    return out


def _amended_by(rows: Iterable[PatrolRow]) -> dict[int, int]:
    latest: dict[tuple[str, str, str], int] = {}
    out: dict[int, int] = {}
    for row in sorted(rows, key=lambda r: int(r.id or 0), reverse=True):
        later = {latest.get((row.account, row.day, u)) for u in row.units}
        if row.units and None not in later:
            out[int(row.id or 0)] = min(int(i or 0) for i in later)
        for u in row.units:
            latest[(row.account, row.day, u)] = int(row.id or 0)
    return out


def patrol_dict(row: PatrolRow, tz: str | None = None) -> dict[str, Any]:
    """A filing as JSON: its columns, ``created_at`` as a local time."""
    return {
        "id": row.id,
        "account": row.account,
        "day": row.day,
        "result": row.result,
        "units": list(row.units),
        "features": row.features,
        "note": row.note,
        "created_at": clock.shown(row.created_at, tz),
        "late": row.late,
    }
