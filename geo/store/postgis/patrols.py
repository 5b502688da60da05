"""The patrol filings of the PostGIS store (``gw_patrols``, ``gw_patrol_units``), audited.  The
tables are made with the store's other tables on open (an existing store gets them on its next
open by a role that may create tables); read as empty while they are missing."""

from __future__ import annotations

from collections import defaultdict

from geo.store.interface.patrols import (
    PATROL_COLUMNS,
    PatrolRow,
    already_filed,
    earlier_filings,
    patrol_insert,
    patrol_row,
    patrol_values,
)
from geo.store.postgis.audit import PgAudit

_SELECT = f"SELECT {', '.join(PATROL_COLUMNS)} FROM gw_patrols"


class PgPatrols(PgAudit):
    """:class:`geo.store.interface.patrols.PatrolStore` on PostGIS."""

    def add_patrol(self, row: PatrolRow, amend: bool = False) -> tuple[int, list[int]]:
        """See :meth:`geo.store.interface.patrols.PatrolStore.add_patrol` (filings of one account
        are written one at a time: a transaction-scoped advisory lock on its name)."""
        with self.admin_transaction():
            self._run(
                "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (f"gw_patrols\x1f{row.account}",)
            )
            earlier = earlier_filings(self.patrols(row.day, row.day), row)
            if earlier and not amend:
                raise already_filed(row, earlier)
            got = self._run(patrol_insert("%s") + " RETURNING id", patrol_values(row)).fetchone()
            assert got is not None
            patrol_id = int(got[0])
            for unit in sorted(set(row.units)):
                self._run("INSERT INTO gw_patrol_units (patrol_id, unit) VALUES (%s, %s)", (patrol_id, unit))
            self.record_audit(
                "patrol_add",
                counts={"patrol": patrol_id, "units": len(set(row.units)), "features": len(row.features)},
                detail=f"{row.day} {row.result}",
            )
        return patrol_id, earlier

    def patrols(self, first: str | None = None, last: str | None = None) -> list[PatrolRow]:
        """See :meth:`geo.store.interface.patrols.PatrolStore.patrols` (none when the tables are
        missing: a store its role may not add tables to, opened before they were in the schema)."""
        if self._run("SELECT to_regclass('gw_patrol_units')").fetchone() in (None, (None,)):
            return []
        args = (first or "", last or "9999-12-31")
        units: dict[int, list[str]] = defaultdict(list)
        for pid, unit in self._run(
            "SELECT u.patrol_id, u.unit FROM gw_patrol_units u JOIN gw_patrols p ON p.id = u.patrol_id"
            " WHERE p.day >= %s AND p.day <= %s",
            args,
        ).fetchall():
            units[int(pid)].append(str(unit))
        rows = self._run(_SELECT + " WHERE day >= %s AND day <= %s ORDER BY id", args).fetchall()
        return [patrol_row(r, units.get(int(r[0]), ())) for r in rows]
