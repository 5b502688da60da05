"""Hand-over tasks (交办单): one row per task in ``gw_tasks``, one per feature handed over in
``gw_task_items`` and one per change of an item's state in ``gw_task_events`` (the same tables on
every backend, made by the first task written; a store without them holds no task).

The events are what the figures are made from: replayed up to the end of a day they give each
item's state on that day (:mod:`geo.figures.tasks`), so figures as of a past day stay as they
were.  The items' own state columns are the newest state, kept for listing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import astuple, dataclass, fields
from typing import Any, Protocol

from geo.errors import Conflict

__all__ = [
    "EVENT_KINDS",
    "ITEM_STATES",
    "TaskEventRow",
    "TaskItemRow",
    "TaskRow",
    "TaskStore",
    "already_handed_over",
    "columns",
    "insert_sql",
    "next_number",
    "open_items_sql",
    "row_of",
    "task_tables_sql",
    "values_of",
]

#: the states of an item: handed over (or returned), reported fixed, verified (销号)
ITEM_STATES = ("open", "fixed", "verified")
#: what an event records: the hand-over, the fix reported, the check passed, the item returned
EVENT_KINDS = ("created", "fixed", "verified", "returned")


@dataclass
class TaskRow:
    """One task: its number (``JB-2026-0001``), title and instructions, who made it and when
    (UTC stamp), the area it is handed to (street, community or unit codes, comma-separated)
    and/or the account, its deadline (ISO day) and how it was set (``days``, working days or
    calendar days)."""

    id: int | None
    number: str
    title: str
    instructions: str | None
    created_by: str | None
    created_at: str
    area: str
    assignee: str | None
    deadline: str
    days: int
    working_days: int


@dataclass
class TaskItemRow:
    """One feature handed over: its layer and stable id, its unit grid at the hand-over, its
    deadline (a return may set a new one), its newest state, who fixed and verified it when, and
    how often it was returned."""

    id: int | None
    task_id: int
    layer: str
    feature: int
    unit: str | None
    deadline: str
    state: str
    fixed_at: str | None = None
    fixed_by: str | None = None
    verified_at: str | None = None
    verified_by: str | None = None
    rework: int = 0


@dataclass
class TaskEventRow:
    """One change of an item: its kind (:data:`EVENT_KINDS`), when (UTC stamp) and on which local
    day, who, a note, the photo ids sent with a fix (comma-separated) and the deadline it set
    (the first one on ``created``, a new one on ``returned``, else None)."""

    id: int | None
    task_id: int
    item_id: int
    kind: str
    at: str
    day: str
    user: str | None
    note: str | None = None
    photos: str | None = None
    deadline: str | None = None


_TABLES = {"gw_tasks": TaskRow, "gw_task_items": TaskItemRow, "gw_task_events": TaskEventRow}
_INTS = {"id", "task_id", "item_id", "feature", "days", "working_days", "rework"}


def columns(table: str) -> tuple[str, ...]:
    """The columns of ``table`` (``gw_tasks``, ``gw_task_items``, ``gw_task_events``), in its
    row class's order (``user`` quoted)."""
    return tuple('"user"' if f.name == "user" else f.name for f in fields(_TABLES[table]))


def select_sql(table: str) -> str:
    """``SELECT`` of every column of ``table`` (one of the task tables), in :func:`columns` order."""
    return f"SELECT {', '.join(columns(table))} FROM {table}"


def insert_sql(table: str, mark: str) -> str:
    """The ``INSERT`` of one row of ``table`` without its id, with the backend's parameter mark."""
    cols = columns(table)[1:]
    return f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join([mark] * len(cols))})"


def values_of(row: TaskRow | TaskItemRow | TaskEventRow) -> tuple[Any, ...]:
    """The values of :func:`insert_sql` for ``row``."""
    return astuple(row)[1:]


def row_of(table: str, values: Sequence[Any]) -> Any:
    """The row class of ``table`` made from the values of ``SELECT`` :func:`columns`."""
    cls = _TABLES[table]
    out = []
    for f, v in zip(fields(cls), values, strict=True):
        out.append(int(v) if f.name in _INTS and v is not None else v)
    return cls(*out)


def next_number(year: int, taken: Sequence[str]) -> str:
    """The next task number of ``year`` after the numbers ``taken`` of that year: ``JB-2026-0001``."""
    prefix = f"JB-{year:04d}-"
    used = [int(n[len(prefix) :]) for n in taken if n.startswith(prefix) and n[len(prefix) :].isdigit()]
    return f"{prefix}{max(used, default=0) + 1:04d}"


def task_tables_sql(serial: str, bigint: str) -> tuple[str, ...]:
    """The tables with the backend's id column (``serial``) and integer type."""
    return (
        f"""CREATE TABLE IF NOT EXISTS gw_tasks (id {serial}, number TEXT NOT NULL UNIQUE, title TEXT NOT NULL,
        instructions TEXT, created_by TEXT, created_at TEXT NOT NULL, area TEXT NOT NULL, assignee TEXT,
        deadline TEXT NOT NULL, days INTEGER NOT NULL, working_days INTEGER NOT NULL)""",
        f"""CREATE TABLE IF NOT EXISTS gw_task_items (id {serial}, task_id {bigint} NOT NULL, layer TEXT NOT NULL,
        feature {bigint} NOT NULL, unit TEXT, deadline TEXT NOT NULL, state TEXT NOT NULL, fixed_at TEXT,
        fixed_by TEXT, verified_at TEXT, verified_by TEXT, rework INTEGER NOT NULL DEFAULT 0)""",
        """CREATE INDEX IF NOT EXISTS gw_task_items_task ON gw_task_items (task_id)""",
        """CREATE INDEX IF NOT EXISTS gw_task_items_feature ON gw_task_items (layer, feature)""",
        f"""CREATE TABLE IF NOT EXISTS gw_task_events (id {serial}, task_id {bigint} NOT NULL,
        item_id {bigint} NOT NULL, kind TEXT NOT NULL, at TEXT NOT NULL, day TEXT NOT NULL, "user" TEXT,
        note TEXT, photos TEXT, deadline TEXT)""",
        """CREATE INDEX IF NOT EXISTS gw_task_events_task ON gw_task_events (task_id)""",
    )


#: the features in an item not yet verified (an open hand-over), with their task's number
open_items_sql = (
    "SELECT i.layer, i.feature, t.number FROM gw_task_items i JOIN gw_tasks t ON t.id = i.task_id"
    " WHERE i.state <> 'verified' ORDER BY t.id, i.id"
)


def already_handed_over(items: Sequence[TaskItemRow], open_rows: Sequence[Sequence[Any]]) -> None:
    """Refuse (:class:`~geo.errors.Conflict` ``already_handed_over``) when a feature of ``items``
    is in an open item of another task (``open_rows`` as :data:`open_items_sql` reads them);
    ``details["features"]`` lists each as ``{"layer", "id", "task"}``.  Run inside the writing
    transaction, after its lock, so two racing hand-overs cannot both pass."""
    wanted = {(i.layer, int(i.feature)) for i in items}
    taken: dict[tuple[str, int], str] = {}
    for layer, feature, number in open_rows:
        key = (str(layer), int(feature))
        if key in wanted:
            taken.setdefault(key, str(number))
    if taken:
        features = [{"layer": k[0], "id": k[1], "task": n} for k, n in sorted(taken.items())]
        raise Conflict(
            f"{len(features)} 个要素已在未销号的交办单中",
            f"{len(features)} features are already in a task not yet verified",
            code="already_handed_over",
            details={"features": features},
        )


class TaskStore(Protocol):
    """The task rows, written inside :meth:`~geo.store.base.Store.admin_transaction` (a task
    changes no survey figure) with an audit entry each."""

    def add_task(self, task: TaskRow, items: list[TaskItemRow], event: TaskEventRow) -> TaskRow:
        """Insert ``task`` numbered ``JB-<year of its number>-NNNN`` (the next number of that
        year; its ``number`` names the year), its ``items`` and, per item, ``event`` (a
        ``created`` event) with the item's id; audited as ``task_create``.  Returns the task
        with its id and number.  Refused (:func:`already_handed_over`, nothing written) when a
        feature of ``items`` is in another task's item not yet verified; checked under the
        transaction's write lock, so of two racing hand-overs of one feature one is refused."""
        ...

    def record_task_events(self, task_id: int, items: list[TaskItemRow], events: list[TaskEventRow]) -> None:
        """Write the new state of ``items`` (by id) and insert ``events``; audited as
        ``task_<kind>`` of the first event."""
        ...

    def tasks(self) -> list[TaskRow]:
        """Every task, newest first."""
        ...

    def task(self, task_id: int) -> TaskRow | None:
        """Task ``task_id``, or None."""
        ...

    def task_items(self, task_id: int | None = None) -> list[TaskItemRow]:
        """The items of one task (every task's with None), by id."""
        ...

    def task_events(self, task_id: int | None = None) -> list[TaskEventRow]:
        """The events of one task (every task's with None), in the order they were written."""
        ...
