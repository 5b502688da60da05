"""The patrol filings of the GeoPackage store (``gw_patrols``, ``gw_patrol_units``), audited.

The tables are made by the first filing (or a copy loaded), so a store that never held one is as
it was and a read-only one still reads (as holding none).
"""

from __future__ import annotations

from collections import defaultdict

from geo.store.gpkg.audit import GpkgAudit
from geo.store.interface.patrols import (
    PATROL_COLUMNS,
    PatrolRow,
    already_filed,
    earlier_filings,
    patrol_insert,
    patrol_row,
    patrol_values,
)

#: ``gw_patrols`` and ``gw_patrol_units`` (made when first needed)
PATROLS_SQL = (
    """CREATE TABLE IF NOT EXISTS gw_patrols (id INTEGER PRIMARY KEY AUTOINCREMENT, account TEXT NOT NULL,
    day TEXT NOT NULL, result TEXT NOT NULL, features TEXT NOT NULL DEFAULT '[]', note TEXT,
    created_at TEXT NOT NULL, late INTEGER NOT NULL DEFAULT 0)""",
    """CREATE INDEX IF NOT EXISTS gw_patrols_day ON gw_patrols (day)""",
    """CREATE TABLE IF NOT EXISTS gw_patrol_units (patrol_id INTEGER NOT NULL, unit TEXT NOT NULL,
    PRIMARY KEY (patrol_id, unit))""",
    """CREATE INDEX IF NOT EXISTS gw_patrol_units_unit ON gw_patrol_units (unit)""",
)

_SELECT = f"SELECT {', '.join(PATROL_COLUMNS)} FROM gw_patrols"


class GpkgPatrols(GpkgAudit):
    """:class:`geo.store.interface.patrols.PatrolStore` on the GeoPackage."""

    def add_patrol(self, row: PatrolRow, amend: bool = False) -> tuple[int, list[int]]:
        """See :meth:`geo.store.interface.patrols.PatrolStore.add_patrol` (the write transaction
        holds the file's write lock from its start, ``BEGIN IMMEDIATE``: one writer at a time)."""
        with self.admin_transaction():
            for stmt in PATROLS_SQL:
                self.conn.execute(stmt)
            earlier = earlier_filings(self.patrols(row.day, row.day), row)
            if earlier and not amend:
                raise already_filed(row, earlier)
            self.conn.execute(patrol_insert("?"), patrol_values(row))
            patrol_id = int(self.conn.last_insert_rowid())
            self.conn.executemany(
                "INSERT INTO gw_patrol_units (patrol_id, unit) VALUES (?, ?)",
                [(patrol_id, u) for u in sorted(set(row.units))],
            )
            self.record_audit(
                "patrol_add",
                counts={"patrol": patrol_id, "units": len(set(row.units)), "features": len(row.features)},
                detail=f"{row.day} {row.result}",
            )
        return patrol_id, earlier

    def patrols(self, first: str | None = None, last: str | None = None) -> list[PatrolRow]:
        """See :meth:`geo.store.interface.patrols.PatrolStore.patrols`."""
        if not self._has_table("gw_patrols"):
            return []
        where, args = " WHERE day >= ? AND day <= ?", (first or "", last or "9999-12-31")
        units: dict[int, list[str]] = defaultdict(list)
        for pid, unit in self.conn.execute(
            "SELECT u.patrol_id, u.unit FROM gw_patrol_units u JOIN gw_patrols p ON p.id = u.patrol_id"
            + where.replace("day", "p.day"),
            args,
        ):
            units[int(pid)].append(str(unit))
        rows = self.conn.execute(_SELECT + where + " ORDER BY id", args)
        return [patrol_row(r, units.get(int(r[0]), ())) for r in rows]
