"""What a tally counts from: the as-of day, the moment known at, the grid version.

Figures as of day D are counted on the grid version in force on D (:mod:`geo.figures.versions`);
``grid="current"`` or a version id re-cuts any day on that grid; ``known_at`` gives the figures
as the store held them at that moment (:mod:`geo.store.clock`).  :func:`resolve_view` turns
those three into a :class:`View`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date

import numpy as np

from geo.errors import InputError
from geo.figures.versions import in_force, parse_grid
from geo.reading.values import parse_date
from geo.store import clock
from geo.store.base import Store
from geo.store.interface.features import GridVersion


def parse_as_of(value: str | date | None) -> np.datetime64 | None:
    """A day as given (ISO, ``20220525``, ``2022年5月25日`` ..., see
    :func:`geo.reading.values.parse_date`) or ``None`` → ``datetime64[D]``; bad input →
    :class:`InputError` (``bad_date``)."""
    day = parse_date(value)
    return None if day is None else np.datetime64(day.isoformat(), "D")


@dataclass(frozen=True)
class View:
    """What a tally counts from: the store at transaction ``tx`` (None: now) and the grid
    version whose units and assignments are used (None: the stored grid, when there are no
    versions).  ``known_at`` is the moment asked for (a store stamp) and ``grid`` how the
    version was chosen: ``"in_force"`` (on the as-of day, or today), ``"current"`` or ``"asked"``."""

    tx: int | None = None
    version: GridVersion | None = None
    known_at: str | None = None
    grid: str = "in_force"
    versions: tuple[GridVersion, ...] = ()


def resolve_view(
    store: Store,
    as_of: str | date | None = None,
    known_at: object = None,
    grid: object = None,
    tz: str | None = None,
) -> View:
    """The :class:`View` of a tally as of ``as_of``, as known at ``known_at`` (see
    :func:`geo.store.clock.parse_known_at`) on ``grid`` (None: in force on the as-of day or today;
    ``"current"``: the newest version then; a version id).

    Raises
    ------
    InputError
        A bad moment (``bad_known_at``) or version (``bad_grid``), or a version that did not
        exist or was rolled back at that moment (``unknown_grid``).
    """
    stamp = clock.parse_known_at(known_at, tz)
    wanted = parse_grid(grid)
    tx = None if stamp is None else store.tx_at(stamp)
    versions = tuple(v for v in store.grid_versions() if v.alive(tx))
    view = View(
        tx,
        None,
        stamp,
        "in_force" if wanted is None else ("current" if wanted == "current" else "asked"),
        versions,
    )
    return replace(view, version=choose_version(view, parse_as_of(as_of), wanted))


def choose_version(
    view: View, day: np.datetime64 | date | None, wanted: str | int | None = None
) -> GridVersion | None:
    """The version of ``view.versions`` a tally as of ``day`` counts on."""
    if wanted is None:
        if view.grid == "in_force":
            as_date = None if day is None else date.fromisoformat(str(day)[:10])
            return in_force(list(view.versions), as_date)
        return view.version
    if wanted == "current":
        return view.versions[-1] if view.versions else None
    match = [v for v in view.versions if v.id == wanted]
    if not match:
        raise InputError(
            f"网格版本 {wanted} 不存在，或在所选时点尚未导入或已回滚（见 gridwatch grids）",
            f"grid version {wanted} does not exist, or did not exist or was rolled back at the moment asked "
            "(see gridwatch grids)",
            code="unknown_grid",
        )
    return match[0]
