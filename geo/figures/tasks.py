"""The figures of hand-over tasks (交办单), per unit grid and rolled up per community, street and
district, as of a day.

Every figure is made by replaying the task events (:mod:`geo.store.interface.tasks`) written
on or before the day (each event keeps the local day it happened on), so a figure as of a past
day is what it was on that day, whatever happened later.  Per item handed over on or before
the day:

``handed_over``   handed over
``open``          waiting for work (handed over, or returned after a check)
``fixed``         reported fixed (整改完成), waiting for the sender's check
``verified``      verified (核查通过, 销号)
``due``           its deadline has passed as of the day (the deadline day itself is in time)
``on_time``       due, verified, and the fix that was verified reported by the deadline
``overdue``       due and unfinished: open, or reported fixed after the deadline and not verified
``reworked``      returned (退回) at least once
``checked``       checked at least once (verified or returned)

and the rates ``on_time_rate`` (按期完成率) = on_time / due and ``rework_rate`` (返工率) =
reworked / checked (None without a denominator).  A returned item keeps its deadline unless
the return set a new one.  An item counts in the unit grid it was in when handed over.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date

import pandas as pd

from geo.figures.areas import Scope
from geo.figures.hierarchy import check_level, load_hierarchy
from geo.store.base import Store
from geo.store.interface.tasks import TaskEventRow, TaskItemRow
from geo.workdays import is_overdue

__all__ = [
    "COUNTS",
    "LABELS",
    "METRICS",
    "RATES",
    "UNASSIGNED",
    "ItemState",
    "item_counts",
    "replay",
    "task_stats",
    "totals",
]

#: the counted figures, in the order tables show them
COUNTS = ("handed_over", "open", "fixed", "verified", "due", "on_time", "overdue", "reworked", "checked")
#: the rates: name → (numerator, denominator)
RATES = {"on_time_rate": ("on_time", "due"), "rework_rate": ("reworked", "checked")}
#: every figure
METRICS = (*COUNTS, *RATES)
#: each figure's heading in Chinese and English
LABELS = {
    "handed_over": ("交办", "Handed over"),
    "open": ("待整改", "Open"),
    "fixed": ("已整改待核查", "Fixed, to check"),
    "verified": ("已销号", "Verified"),
    "due": ("已到期", "Due"),
    "on_time": ("按期完成", "On time"),
    "overdue": ("逾期", "Overdue"),
    "reworked": ("返工", "Reworked"),
    "checked": ("已核查", "Checked"),
    "on_time_rate": ("按期完成率", "On-time rate"),
    "rework_rate": ("返工率", "Rework rate"),
}
#: the code of items whose feature lay in no unit grid when handed over
UNASSIGNED = "UNASSIGNED"


@dataclass
class ItemState:
    """One item as of a day: its state, deadline, the day of its latest reported fix, how often
    it was returned and whether it was ever checked."""

    state: str
    deadline: date
    fixed_day: date | None = None
    returns: int = 0
    checked: bool = False


def replay(events: Iterable[TaskEventRow], as_of: date) -> dict[int, ItemState]:
    """Each item's state after the events of days up to ``as_of`` (in the order written).

    Parameters
    ----------
    events : iterable of TaskEventRow
        Events of any tasks; those of later days are left out.
    as_of : date
        The local day (end of day) the state is wanted for.

    Returns
    -------
    dict
        Item id → :class:`ItemState`, for items handed over on or before ``as_of``.
    """
    out: dict[int, ItemState] = {}
    day_text = as_of.isoformat()
    for ev in sorted(events, key=lambda e: e.id or 0):
        if ev.day > day_text:
            continue
        if ev.kind == "created":
            out[ev.item_id] = ItemState("open", date.fromisoformat(str(ev.deadline)))
            continue
        item = out.get(ev.item_id)
        if item is None:
            continue
        if ev.kind == "fixed":
            item.state, item.fixed_day = "fixed", date.fromisoformat(ev.day)
        elif ev.kind == "verified":
            item.state, item.checked = "verified", True
        elif ev.kind == "returned":
            item.state, item.checked = "open", True
            item.returns += 1
            if ev.deadline:
                item.deadline = date.fromisoformat(ev.deadline)
    return out


def item_counts(item: ItemState, as_of: date) -> dict[str, int]:
    """The counted figures (:data:`COUNTS`) of one item as of ``as_of``: 0 or 1 each."""
    due = is_overdue(item.deadline, as_of)
    fixed_in_time = item.fixed_day is not None and item.fixed_day <= item.deadline
    done_in_time = item.state in ("fixed", "verified") and fixed_in_time
    return {
        "handed_over": 1,
        "open": int(item.state == "open"),
        "fixed": int(item.state == "fixed"),
        "verified": int(item.state == "verified"),
        "due": int(due),
        "on_time": int(due and item.state == "verified" and fixed_in_time),
        "overdue": int(due and item.state != "verified" and not done_in_time),
        "reworked": int(item.returns > 0),
        "checked": int(item.checked),
    }


def _rates(row: Mapping[str, int]) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for name, (num, den) in RATES.items():
        d = int(row[den])
        out[name] = None if d == 0 else round(int(row[num]) / d, 4)
    return out


def totals(frame: pd.DataFrame) -> dict[str, int | float | None]:
    """The figures of every row of a :func:`task_stats` table together (its rates recomputed)."""
    row = {k: int(frame[k].sum()) if len(frame) else 0 for k in COUNTS}
    return {**row, **_rates(row)}


def task_stats(
    store: Store,
    as_of: date,
    level: str | None = None,
    scope: Scope | None = None,
    task_ids: Iterable[int] | None = None,
) -> pd.DataFrame:
    """The task figures per unit of ``level`` as of ``as_of``.

    Parameters
    ----------
    store : Store
        The store holding the tasks and the grid.
    as_of : date
        The local day; events of later days are left out.
    level : str, optional
        A grid level (default the unit grid).
    scope : Scope, optional
        Only items in these unit grids (an account's area).
    task_ids : iterable of int, optional
        Only these tasks.

    Returns
    -------
    pandas.DataFrame
        ``code``, ``name``, then :data:`METRICS`; one row per unit holding at least one item
        handed over by ``as_of`` (``UNASSIGNED`` for items outside every unit grid), by code.
    """
    level = check_level(level)
    hierarchy = load_hierarchy(store)
    mapping = hierarchy.mapping(level)
    names = dict(zip(hierarchy.units(level)["code"], hierarchy.units(level)["name"], strict=True))
    wanted = None if task_ids is None else {int(t) for t in task_ids}
    items: dict[int, TaskItemRow] = {
        int(i.id): i
        for i in store.task_items()
        if i.id is not None
        and (wanted is None or i.task_id in wanted)
        and (scope is None or scope.allows(i.unit))
    }
    events = [e for e in store.task_events() if e.item_id in items]
    sums: dict[str, dict[str, int]] = {}
    for item_id, state in replay(events, as_of).items():
        unit = items[item_id].unit
        code = mapping.get(unit, UNASSIGNED) if unit else UNASSIGNED
        code = str(code) if code is not None else UNASSIGNED
        row = sums.setdefault(code, dict.fromkeys(COUNTS, 0))
        for k, v in item_counts(state, as_of).items():
            row[k] += v
    records = []
    for code in sorted(sums):
        records.append({"code": code, "name": names.get(code), **sums[code], **_rates(sums[code])})
    return pd.DataFrame(records, columns=["code", "name", *METRICS])
