"""Daily patrol reports (日巡查): one row per filing in ``gw_patrols`` and the unit grids it
covers in ``gw_patrol_units`` (the same tables on every backend).

A filing is never changed or removed: filing again for the same account, unit and day adds a
new row that amends the earlier one for those units (:mod:`geo.imports.patrols`), and the
earlier stays as history.  Features found are kept as JSON text, ``[{"layer": ..., "id": ...}]``
(stable feature ids).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from geo.errors import Conflict

__all__ = [
    "PATROL_COLUMNS",
    "PATROL_RESULTS",
    "PatrolRow",
    "PatrolStore",
    "already_filed",
    "earlier_filings",
    "patrol_insert",
    "patrol_row",
    "patrol_values",
]

#: what a patrol found: nothing (日巡查零报告), or features (found or added)
PATROL_RESULTS = ("nothing_found", "found")


@dataclass
class PatrolRow:
    """One patrol filing: who filed it, for which local day, the unit grid codes it covers, what
    it found (the features as ``{"layer", "id"}``), a note, when it was filed (UTC stamp) and
    whether it was filed after its day (``late``)."""

    id: int | None
    account: str
    day: str
    result: str
    features: list[dict[str, Any]]
    note: str | None
    created_at: str
    late: bool
    units: tuple[str, ...] = field(default=())


#: the columns of ``gw_patrols``, in :class:`PatrolRow`'s order (the units are in ``gw_patrol_units``)
PATROL_COLUMNS = ("id", "account", "day", "result", "features", "note", "created_at", "late")


def patrol_insert(mark: str) -> str:
    """The ``INSERT`` of one ``gw_patrols`` row without its id, with the backend's parameter ``mark``."""
    cols = PATROL_COLUMNS[1:]
    return f"INSERT INTO gw_patrols ({', '.join(cols)}) VALUES ({', '.join([mark] * len(cols))})"


def patrol_values(row: PatrolRow) -> tuple[Any, ...]:
    """The values of :func:`patrol_insert` for ``row``."""
    features = json.dumps(row.features, ensure_ascii=False, separators=(",", ":"))
    return (row.account, row.day, row.result, features, row.note, row.created_at, int(row.late))


def patrol_row(values: Sequence[Any], units: Sequence[str] = ()) -> PatrolRow:
    """The row of ``SELECT`` :data:`PATROL_COLUMNS` ``FROM gw_patrols`` with its ``units``."""
    v = list(values)
    return PatrolRow(
        id=int(v[0]),
        account=str(v[1]),
        day=str(v[2]),
        result=str(v[3]),
        features=list(json.loads(v[4] or "[]")),
        note=None if v[5] is None else str(v[5]),
        created_at=str(v[6]),
        late=bool(v[7]),
        units=tuple(sorted(str(u) for u in units)),
    )


def earlier_filings(rows: Sequence[PatrolRow], row: PatrolRow) -> list[int]:
    """The ids of ``rows`` (the filings of ``row``'s day) that ``row`` would amend: the same
    account, a unit in common."""
    units = set(row.units)
    return [int(r.id) for r in rows if r.id is not None and r.account == row.account and units & set(r.units)]


def already_filed(row: PatrolRow, ids: list[int]) -> Conflict:
    """The refusal of a second filing of ``row``'s account, day and units without ``amend``."""
    return Conflict(
        f"本账户已提交 {row.day} 这些网格的巡查；如需更正请选择更正",
        f"this account already filed a patrol for these units on {row.day}; amend it instead",
        code="patrol_already_filed",
        details={"ids": ids},
    )


class PatrolStore(Protocol):
    """The patrol filings, written inside :meth:`~geo.store.base.Store.admin_transaction` (a
    filing changes no feature figure) with an audit entry."""

    def add_patrol(self, row: PatrolRow, amend: bool = False) -> tuple[int, list[int]]:
        """Insert ``row`` (its id left out) and its units with an audit entry (``patrol_add``);
        returns its id and the ids of the earlier filings it amends (:func:`earlier_filings`),
        checked in the same transaction, writers of filings one at a time.

        Raises
        ------
        Conflict
            ``patrol_already_filed`` (:func:`already_filed`): there are earlier filings and not ``amend``.
        """
        ...

    def patrols(self, first: str | None = None, last: str | None = None) -> list[PatrolRow]:
        """The filings for the days ``first`` to ``last`` (ISO dates, both included; None: no
        bound), with their units, oldest first (by id)."""
        ...
