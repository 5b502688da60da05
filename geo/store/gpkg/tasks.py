"""The hand-over tasks of the GeoPackage store (``gw_tasks``, ``gw_task_items``,
``gw_task_events``; :mod:`geo.store.interface.tasks`), audited.

The tables are made by the first task written (or a copy loaded), so a store that never held a
task is as it was and a read-only one still reads (as holding none).
"""

from __future__ import annotations

from geo.store.gpkg.audit import GpkgAudit
from geo.store.interface.tasks import (
    TaskEventRow,
    TaskItemRow,
    TaskRow,
    already_handed_over,
    insert_sql,
    next_number,
    open_items_sql,
    row_of,
    select_sql,
    task_tables_sql,
    values_of,
)

#: the task tables (made when first needed)
TASKS_SQL = task_tables_sql("INTEGER PRIMARY KEY AUTOINCREMENT", "INTEGER")


class GpkgTasks(GpkgAudit):
    """:class:`geo.store.interface.tasks.TaskStore` on the GeoPackage."""

    def _make_task_tables(self) -> None:
        for stmt in TASKS_SQL:
            self.conn.execute(stmt)

    def add_task(self, task: TaskRow, items: list[TaskItemRow], event: TaskEventRow) -> TaskRow:
        """See :meth:`geo.store.interface.tasks.TaskStore.add_task`."""
        with self.admin_transaction():
            self._make_task_tables()
            already_handed_over(items, self.conn.execute(open_items_sql).fetchall())
            year = int(task.number[3:7])
            taken = [
                str(r[0])
                for r in self.conn.execute(
                    "SELECT number FROM gw_tasks WHERE number LIKE ?", (f"JB-{year:04d}-%",)
                )
            ]
            task.number = next_number(year, taken)
            self.conn.execute(insert_sql("gw_tasks", "?"), values_of(task))
            task.id = int(self.conn.last_insert_rowid())
            for item in items:
                item.task_id = task.id
                self.conn.execute(insert_sql("gw_task_items", "?"), values_of(item))
                item.id = int(self.conn.last_insert_rowid())
                event.task_id, event.item_id = task.id, item.id
                self.conn.execute(insert_sql("gw_task_events", "?"), values_of(event))
            self.record_audit(
                "task_create", counts={"task": task.id, "items": len(items)}, detail=task.number
            )
        return task

    def record_task_events(self, task_id: int, items: list[TaskItemRow], events: list[TaskEventRow]) -> None:
        """See :meth:`geo.store.interface.tasks.TaskStore.record_task_events`."""
        if not events:
            return
        with self.admin_transaction():
            self._make_task_tables()
            for item in items:
                self.conn.execute(
                    "UPDATE gw_task_items SET deadline=?, state=?, fixed_at=?, fixed_by=?, verified_at=?,"
                    " verified_by=?, rework=? WHERE id=? AND task_id=?",
                    (
                        item.deadline,
                        item.state,
                        item.fixed_at,
                        item.fixed_by,
                        item.verified_at,
                        item.verified_by,
                        item.rework,
                        item.id,
                        task_id,
                    ),
                )
            for event in events:
                self.conn.execute(insert_sql("gw_task_events", "?"), values_of(event))
            self.record_audit(
                f"task_{events[0].kind}", counts={"task": task_id, "items": len(items)}, detail=events[0].note
            )

    def tasks(self) -> list[TaskRow]:
        """See :meth:`geo.store.interface.tasks.TaskStore.tasks`."""
        if not self._has_table("gw_tasks"):
            return []
        return [
            row_of("gw_tasks", r) for r in self.conn.execute(select_sql("gw_tasks") + " ORDER BY id DESC")
        ]

    def task(self, task_id: int) -> TaskRow | None:
        """See :meth:`geo.store.interface.tasks.TaskStore.task`."""
        if not self._has_table("gw_tasks"):
            return None
        row = self.conn.execute(select_sql("gw_tasks") + " WHERE id=?", (int(task_id),)).fetchone()
        return row_of("gw_tasks", row) if row else None

    def task_items(self, task_id: int | None = None) -> list[TaskItemRow]:
        """See :meth:`geo.store.interface.tasks.TaskStore.task_items`."""
        if not self._has_table("gw_task_items"):
            return []
        if task_id is None:
            rows = self.conn.execute(select_sql("gw_task_items") + " ORDER BY id")
        else:
            rows = self.conn.execute(
                select_sql("gw_task_items") + " WHERE task_id=? ORDER BY id", (int(task_id),)
            )
        return [row_of("gw_task_items", r) for r in rows]

    def task_events(self, task_id: int | None = None) -> list[TaskEventRow]:
        """See :meth:`geo.store.interface.tasks.TaskStore.task_events`."""
        if not self._has_table("gw_task_events"):
            return []
        if task_id is None:
            rows = self.conn.execute(select_sql("gw_task_events") + " ORDER BY id")
        else:
            rows = self.conn.execute(
                select_sql("gw_task_events") + " WHERE task_id=? ORDER BY id", (int(task_id),)
            )
        return [row_of("gw_task_events", r) for r in rows]
