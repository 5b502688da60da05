"""Grid versions: every grid import is a version valid from a day, and every feature keeps its
unit on every version, so figures as of an earlier day stay as they were issued.

* A grid import makes a version valid from ``--valid-from`` (default: the import day in the
  configured time zone).  It may be dated into the past, never into the future, and not before
  the day the current version is valid from.  The first version is in force on every earlier
  day too.
* The version in force on day D (as known at a transaction): among the versions not rolled back
  then, the one with the latest ``valid_from`` on or before D (of two valid from the same day,
  the later import); before every version's first day, the first grid imported.
* When a version is made, every feature row version of every survey layer -- current ones and
  those in the history -- is assigned to it; when features are imported, the new row versions
  are assigned to every live version.  A version's assignment is stored complete when it has no
  parent, else only where it differs from its parent's (the version current when it was made):
  a grid revision usually moves a few features.  Only features that can have moved are assigned
  again (:func:`geo.assign.grid_diff`); the rest keep the unit they had.
* The current rows carry their unit on the current version (``gw_unit``), the fast path of plain
  statistics and of the map.  Rolling back a version puts the previous one's stored units back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np
import pandas as pd
import shapely

import layers
from geo.assign import Grid, grid_diff
from geo.errors import InputError
from geo.figures.hierarchy import grid_levels, hierarchy_from_grid
from geo.reading.values import parse_date
from geo.registry import grid_spec
from geo.store import clock
from geo.store.base import Store
from geo.store.cache import MISSING
from geo.store.interface.features import GridVersion
from layers.base import UNASSIGNED, LayerSpec

__all__ = [
    "GridChange",
    "assign_new_rows",
    "check_valid_from",
    "grid_of",
    "in_force",
    "make_version",
    "parse_grid",
    "restore_current_units",
]

#: Unit codes a grid report lists per kind of change (all are counted).
MAX_LISTED_UNITS = 1000
#: Communities a grid report lists.
MAX_LISTED_COMMUNITIES = 1000
_MAX_ID = 2**63 - 1


@dataclass
class GridChange:
    """What a grid import changes: its units against the previous version, the features that
    change unit (per layer and per community), and the issued figures it changes when dated
    into the past."""

    valid_from: str
    version: int | None = None
    previous_version: int | None = None
    previous_valid_from: str | None = None
    units_added: list[str] = field(default_factory=list)
    units_removed: list[str] = field(default_factory=list)
    units_reshaped: list[str] = field(default_factory=list)
    units_added_count: int = 0
    units_removed_count: int = 0
    units_reshaped_count: int = 0
    #: current features whose unit changes, per survey layer
    features_moved: dict[str, int] = field(default_factory=dict)
    #: per unit of the level above the unit grid (the community): {<that level's name>, "name",
    #: "moved_out", "moved_in"} (out of / into its units)
    moved_by_community: list[dict[str, Any]] = field(default_factory=list)
    #: dated into the past: {"from", "to", "computed_on", "computed_on_valid_from", "month_ends"}
    issued_changed: dict[str, Any] | None = None

    def summary(self, zh: bool) -> list[str]:
        """Lines for the import report's text summary."""
        lines = []
        if zh:
            lines.append(
                f"网格版本 {self.version or '（预览）'}，生效日期 {self.valid_from}"
                + (f"（此前为版本 {self.previous_version}）" if self.previous_version else "")
            )
            lines.append(
                f"单元网格: 新增 {self.units_added_count}，删除 {self.units_removed_count}，"
                f"形状改变 {self.units_reshaped_count}"
            )
        else:
            lines.append(
                f"grid version {self.version or '(preview)'}, valid from {self.valid_from}"
                + (f" (replacing version {self.previous_version})" if self.previous_version else "")
            )
            lines.append(
                f"unit grids: added {self.units_added_count}, removed {self.units_removed_count}, "
                f"reshaped {self.units_reshaped_count}"
            )
        for label_zh, label_en, codes, count in (
            ("新增", "added", self.units_added, self.units_added_count),
            ("删除", "removed", self.units_removed, self.units_removed_count),
            ("形状改变", "reshaped", self.units_reshaped, self.units_reshaped_count),
        ):
            if codes:
                more = count - min(len(codes), 10)
                listed = ", ".join(codes[:10]) + (f" … (+{more})" if more > 0 else "")
                lines.append(f"  {label_zh if zh else label_en}: {listed}")
        if self.features_moved:
            moved = ", ".join(f"{k} {v}" for k, v in self.features_moved.items())
            lines.append(("改变所属网格的要素: " if zh else "features changing unit: ") + moved)
            key = grid_levels()[1].name  # the level the rows are of (see _by_community)
            for row in self.moved_by_community[:20]:
                lines.append(
                    f"  {row[key]} {row['name'] or ''}: "
                    + (
                        f"移出 {row['moved_out']}，移入 {row['moved_in']}"
                        if zh
                        else f"out {row['moved_out']}, in {row['moved_in']}"
                    )
                )
        if self.issued_changed:
            c = self.issued_changed
            if zh:
                lines.append(
                    f"注意: 生效日期早于今天，截至 {c['from']} 至 {c['to']} 的统计（含 {len(c['month_ends'])} 个月末）"
                    f"原按网格版本 {c['computed_on']} 计算，现改按本版本计算"
                )
            else:
                lines.append(
                    f"note: dated into the past: figures as of {c['from']} to {c['to']} ({len(c['month_ends'])} "
                    f"month ends) were computed on grid version {c['computed_on']}; they now use this version"
                )
        return lines


# --- arguments ----------------------------------------------------------------------------------


def parse_grid(value: object) -> str | int | None:
    """``--grid`` / ``grid=``: ``current`` or a version id (see ``gridwatch grids``); None when empty."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    else:
        text = str(value).strip()
        if not text:
            return None
        if text.lower() == "current":
            return "current"
        number = int(text) if text.isdigit() and len(text) <= 19 else -1
    if not 1 <= number <= _MAX_ID:
        shown = str(value)[:40]
        raise InputError(
            f"网格版本无效: {shown!r}（应为 current 或版本号，见 gridwatch grids）",
            f"invalid grid version: {shown!r} (current or a version id, see gridwatch grids)",
            code="bad_grid",
        )
    return number


def check_valid_from(store: Store, value: object, tz: str | None = None) -> date:
    """The valid-from day of a new grid version: ``value`` (any form ``--as-of`` takes), else today.

    Raises
    ------
    InputError
        ``code="bad_valid_from"``: after today, or before the day the current version is valid
        from (versions follow each other in time: roll the current one back first).
    """
    today = clock.today(tz)
    try:
        day = parse_date(value) if value not in (None, "") else today
    except InputError as exc:
        raise InputError(exc.zh, exc.en, code="bad_valid_from") from None
    assert day is not None
    if day > today:
        raise InputError(
            f"生效日期 {day.isoformat()} 晚于今天（{today.isoformat()}），网格版本不能预先生效",
            f"valid-from {day.isoformat()} is after today ({today.isoformat()}): a grid version cannot be "
            "dated into the future",
            code="bad_valid_from",
        )
    current = store.current_grid_version()
    if current is not None and day.isoformat() < current.valid_from:
        raise InputError(
            f"生效日期 {day.isoformat()} 早于当前网格版本 {current.id} 的生效日期 {current.valid_from}；"
            f"如需更早，请先回滚批次 {current.id}",
            f"valid-from {day.isoformat()} is before {current.valid_from}, the day the current grid version "
            f"{current.id} is valid from; roll back batch {current.id} first to date a grid earlier",
            code="bad_valid_from",
        )
    return day


def in_force(versions: list[GridVersion], day: date | None) -> GridVersion | None:
    """Of ``versions`` (those alive at the moment asked, oldest first), the one in force on ``day``
    (None: today, the newest)."""
    if not versions:
        return None
    if day is None:
        return versions[-1]
    ordered = sorted(versions, key=lambda v: (v.valid_from, v.id))
    text = day.isoformat()
    chosen = None
    for v in ordered:
        if v.valid_from <= text:
            chosen = v
    if chosen is None:  # before every version's first day: the first grid imported
        chosen = min(versions, key=lambda v: v.id)
    return chosen


# --- grids of versions ------------------------------------------------------------------------


def load_grid(store: Store) -> Grid | None:
    """The current unit grid of ``store`` as an assignment index.

    Cached per generation of the grid layer, which changes only when the grid does.
    """
    kept = store.cache.region("grid_index")
    key = store.layer_generation(grid_spec())
    hit = kept.get(key)
    if hit is not MISSING:
        return hit
    spec = grid_spec()
    code = grid_levels()[0].code_field
    attrs = store.read_attributes(spec, [code])
    grid: Grid | None = None
    if len(attrs):
        fids, geoms = store.read_geometry(spec)
        codes = attrs.set_index("fid").loc[fids, code].to_numpy(dtype=object)
        grid = Grid(codes, geoms)
    kept[key] = grid
    return grid


def grid_of(store: Store, version: GridVersion | None) -> Grid | None:
    """The cells of ``version`` as an assignment index (the current grid for the current version)."""

    if version is None:
        return None
    current = store.current_grid_version()
    if current is not None and current.id == version.id:
        return load_grid(store)
    kept = store.cache.region("grid_versions")
    key = (store.layer_generation(grid_spec()), version.id)
    hit = kept.get(key)
    if hit is MISSING:
        code = grid_levels()[0].code_field
        attrs, cells = store.read_visible(grid_spec(), version.tx, [code])
        hit = kept[key] = Grid(attrs[code].to_numpy(dtype=object), cells) if len(attrs) else None
    return hit


def _diff(store: Store, a: GridVersion, ga: Grid | None, b: GridVersion, gb: Grid | None) -> Any:

    kept = store.cache.region("grid_diffs")
    key = (store.layer_generation(grid_spec()), a.id, b.id)
    hit = kept.get(key)
    if hit is MISSING:
        hit = kept[key] = grid_diff(ga, gb)
    return hit


def _move(
    units: np.ndarray,
    geoms: np.ndarray,
    target: Grid | None,
    diff: tuple[list[str] | None, np.ndarray | None],
) -> np.ndarray:
    """Units on ``target`` of features whose units on another grid are ``units``, given the
    difference of that grid to ``target`` (:func:`geo.assign.grid_diff`): only features in a
    changed cell, outside every cell or touching a changed cell of ``target`` are assigned again."""
    if target is None or len(target) == 0:
        return np.full(len(geoms), UNASSIGNED, dtype=object)
    changed_old, changed_new = diff
    if changed_old is None or changed_new is None:
        return np.asarray(target.assign(geoms), dtype=object)
    affected = pd.Series(units, dtype=object).isin({*changed_old, UNASSIGNED}).to_numpy(copy=True)
    if len(changed_new) and len(geoms):
        hit, _ = shapely.STRtree(changed_new).query(geoms, predicate="intersects")
        affected[hit] = True
    out = np.asarray(units, dtype=object).copy()
    idx = np.flatnonzero(affected)
    if len(idx):
        out[idx] = target.assign(geoms[idx])
    return out


def _alive_chain(store: Store) -> list[GridVersion]:
    """The versions alive now, oldest first: one chain, each the parent of the next."""
    return [v for v in store.grid_versions() if v.alive()]


# --- writes -----------------------------------------------------------------------------------


def assign_new_rows(
    store: Store, spec: LayerSpec, fids: np.ndarray, geoms: np.ndarray, units: np.ndarray
) -> None:
    """Keep the units of newly written row versions on every live grid version.

    ``units`` are their units on the current version (as stored with them); on older versions
    they are worked out version by version from the newest, assigning again only the features
    a change between two versions can have moved."""
    chain = _alive_chain(store)
    if not chain or len(fids) == 0:
        return
    per_version: dict[int, np.ndarray] = {chain[-1].id: np.asarray(units, dtype=object)}
    newer = chain[-1]
    newer_grid = grid_of(store, newer)
    for older in reversed(chain[:-1]):
        older_grid = grid_of(store, older)
        per_version[older.id] = _move(
            per_version[newer.id], geoms, older_grid, _diff(store, newer, newer_grid, older, older_grid)
        )
        newer, newer_grid = older, older_grid
    for v in chain:
        mine = per_version[v.id]
        if v is chain[-1] and (v.parent is None or v.parent not in per_version):
            store.keep_assignment(spec, v.id, fids)  # the units just stored with the rows
        elif v.parent is None or v.parent not in per_version:
            store.write_assignment(spec, v.id, fids, mine)
        else:
            differs = mine != per_version[v.parent]
            store.write_assignment(spec, v.id, fids[differs], mine[differs])


def make_version(
    store: Store, batch_id: int, valid_from: date, previous: Grid | None, tz: str | None = None
) -> tuple[GridChange, int]:
    """Register the grid just written by ``batch_id`` as a new version and assign every feature
    row version to it; the current rows' stored units follow.  Runs inside the grid import's
    transaction, after the grid's rows are written.

    Returns the change report and the number of current features whose unit changed."""

    parent = store.current_grid_version()
    version = store.add_grid_version(batch_id, valid_from.isoformat())
    grid = load_grid(store)
    diff = _diff(store, parent, previous, version, grid) if parent is not None else (None, None)
    change = GridChange(valid_from=valid_from.isoformat(), version=version.id)
    if parent is not None:
        change.previous_version, change.previous_valid_from = parent.id, parent.valid_from
    _unit_changes(change, previous, grid)
    moved_units: list[tuple[np.ndarray, np.ndarray]] = []
    changed = 0
    for spec in layers.survey_layers():
        fids, geoms = store.read_geometry(spec)
        _, before = store.read_assignment(spec)
        after = _move(before, geoms, grid, diff) if len(fids) else before
        changed += store.set_units(spec, fids, after)
        moves = before != after
        change.features_moved[spec.name] = int(moves.sum())
        moved_units.append((before[moves], after[moves]))
        old_fids, old_geoms = store.read_retired(spec)
        if parent is not None and len(old_fids):
            _, old_before = store.read_assignment(spec, parent.id, old_fids)
        else:
            old_before = np.full(len(old_fids), UNASSIGNED, dtype=object)
        old_after = _move(old_before, old_geoms, grid, diff) if len(old_fids) else old_before
        if parent is None:  # complete
            store.keep_assignment(spec, version.id)  # the current rows' units, just stored
            store.write_assignment(spec, version.id, old_fids, old_after)
        else:  # where it differs from the parent's
            store.write_assignment(spec, version.id, fids[moves], after[moves])
            old_moves = old_after != old_before
            store.write_assignment(spec, version.id, old_fids[old_moves], old_after[old_moves])
    _by_community(store, change, parent, moved_units)
    today = clock.today(tz)
    if parent is not None and valid_from < today:
        ends = pd.period_range(start=valid_from, end=today, freq="M")
        change.issued_changed = {
            "from": valid_from.isoformat(),
            "to": today.isoformat(),
            "computed_on": parent.id,
            "computed_on_valid_from": parent.valid_from,
            "month_ends": [p.end_time.date().isoformat() for p in ends if p.end_time.date() < today][:240],
        }
    return change, changed


def preview_change(store: Store, grid: Grid | None, valid_from: date) -> GridChange:
    """What a grid file would change in units (nothing is written, features are not assigned)."""

    parent = store.current_grid_version()
    change = GridChange(valid_from=valid_from.isoformat())
    if parent is not None:
        change.previous_version, change.previous_valid_from = parent.id, parent.valid_from
    _unit_changes(change, load_grid(store), grid)
    return change


def _unit_changes(change: GridChange, previous: Grid | None, grid: Grid | None) -> None:
    old = dict(zip(previous.codes.tolist(), previous.wkb(), strict=True)) if previous is not None else {}
    new = dict(zip(grid.codes.tolist(), grid.wkb(), strict=True)) if grid else {}
    added = sorted(str(c) for c in new if c not in old)
    removed = sorted(str(c) for c in old if c not in new)
    reshaped = sorted(str(c) for c, w in new.items() if c in old and old[c] != w)
    change.units_added, change.units_added_count = added[:MAX_LISTED_UNITS], len(added)
    change.units_removed, change.units_removed_count = removed[:MAX_LISTED_UNITS], len(removed)
    change.units_reshaped, change.units_reshaped_count = reshaped[:MAX_LISTED_UNITS], len(reshaped)


def _by_community(
    store: Store,
    change: GridChange,
    parent: GridVersion | None,
    moved: list[tuple[np.ndarray, np.ndarray]],
) -> None:
    """Features moved out of and into the units of the level above the unit grid (the
    community), for :attr:`GridChange.moved_by_community`."""
    levels = grid_levels()
    if not moved or not any(len(b) for b, _ in moved) or len(levels) < 2:
        return
    unit, upper = levels[0], levels[1]
    spec = grid_spec()
    # the fields the community of a unit comes from (see geo.figures.hierarchy.hierarchy_from_grid)
    have = {f.name for f in spec.fields}
    columns: list[str] = [c for c in (unit.code_field, upper.code_field, upper.name_field) if c in have]
    wanted_old = {str(c) for b, _ in moved for c in b.tolist()}
    wanted_new = {str(c) for _, a in moved for c in a.tolist()}
    # only the units features moved out of or into: the rule of the hierarchy on a few rows
    new_attrs = store.read_attributes(spec, columns)
    new_h = hierarchy_from_grid(new_attrs[new_attrs[unit.code_field].isin(wanted_new)].reset_index(drop=True))
    old_h = None
    if parent is not None:
        old_attrs, _ = store.read_visible(spec, parent.tx, columns, geometry=False)
        old_h = hierarchy_from_grid(
            old_attrs[old_attrs[unit.code_field].isin(wanted_old)].reset_index(drop=True)
        )
    new_comm = new_h.mapping(upper.name)
    old_comm = old_h.mapping(upper.name) if old_h is not None else {}
    names: dict[str, Any] = {}
    for h in (old_h, new_h):
        if h is not None:
            units = h.units(upper.name)
            names.update(zip(units["code"], units["name"], strict=True))
    out_counts: dict[str, int] = {}
    in_counts: dict[str, int] = {}
    for before, after in moved:
        for code in before.tolist():
            if code != UNASSIGNED:
                c = str(old_comm.get(code, UNASSIGNED))
                out_counts[c] = out_counts.get(c, 0) + 1
        for code in after.tolist():
            if code != UNASSIGNED:
                c = str(new_comm.get(code, UNASSIGNED))
                in_counts[c] = in_counts.get(c, 0) + 1
    unassigned_out = sum(int((b == UNASSIGNED).sum()) for b, _ in moved)
    unassigned_in = sum(int((a == UNASSIGNED).sum()) for _, a in moved)
    rows = [
        {
            upper.name: c,
            "name": names.get(c),
            "moved_out": out_counts.get(c, 0),
            "moved_in": in_counts.get(c, 0),
        }
        for c in sorted(set(out_counts) | set(in_counts))
    ]
    if unassigned_out or unassigned_in:
        rows.append(
            {
                upper.name: UNASSIGNED,
                "name": "未落入网格",
                "moved_out": unassigned_out,
                "moved_in": unassigned_in,
            }
        )
    change.moved_by_community = rows[:MAX_LISTED_COMMUNITIES]


def restore_current_units(store: Store) -> int:
    """After a grid version was rolled back: every current feature's stored unit from its
    stored assignment on the version now current (UNASSIGNED when none is left).  Returns how
    many changed."""
    current = store.current_grid_version()
    changed = 0
    for spec in layers.survey_layers():
        fids, _ = store.read_assignment(spec)
        if len(fids) == 0:
            continue
        units = np.full(len(fids), UNASSIGNED, dtype=object)
        if current is not None:
            all_fids, all_units = store.read_assignment(spec, current.id)
            if len(all_fids):
                pos = np.clip(np.searchsorted(all_fids, fids), 0, len(all_fids) - 1)
                found = all_fids[pos] == fids
                units[found] = all_units[pos[found]]
        changed += store.set_units(spec, fids, units)
    return changed
