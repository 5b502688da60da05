"""Whether two stores give the same figures: the check after ``gridwatch store copy`` (see
:mod:`geo.store.copy`), made with the engine's own tallies.

The figures of every level (unit grid up to district) are compared now, as of the end of a few
past years, and as the stores held them after a few earlier writes (``known at`` a transaction,
on the grid version in force then); the grid versions and the write log must match too.
"""

from __future__ import annotations

from datetime import date

import pandas as pd

from geo.figures.asof import View
from geo.figures.hierarchy import level_names
from geo.figures.tally import tally
from geo.store.base import Store

__all__ = ["compare_figures", "moments"]


def _view(store: Store, tx: int | None) -> View:
    """The figures of ``store`` as it was at ``tx`` (None: now) on the grid in force each day."""
    versions = tuple(v for v in store.grid_versions() if v.alive(tx))
    return View(tx, None, None, "in_force", versions)


def moments(store: Store, count: int = 4) -> list[int]:
    """Up to ``count`` earlier transactions of ``store``, spread over its write log (its last one left out)."""
    last = store.last_tx()
    if last is None or last.id <= 1:
        return []
    step = max(1, (last.id - 1) // count)
    picked = [i for i in range(1, last.id, step)][-count:]
    return [i for i in picked if store.tx(i) is not None]


def compare_figures(
    a: Store, b: Store, years: int = 4, count: int = 4, today: date | None = None
) -> list[str]:
    """What differs between the figures of ``a`` and ``b`` (empty: nothing), one line each
    (Chinese / English): at every level, now and as of the last day of each of the ``years``
    years before ``today``, and as known at ``count`` earlier transactions."""
    out: list[str] = []
    versions_a = [v.to_dict() for v in a.grid_versions()]
    if versions_a != [v.to_dict() for v in b.grid_versions()]:
        out.append("网格版本不同 / the grid versions differ")
    last_a, last_b = a.last_tx(), b.last_tx()
    if (last_a and (last_a.id, last_a.at)) != (last_b and (last_b.id, last_b.at)):
        out.append("写入记录不同 / the write logs differ")
    if out:
        return out
    year = (today or date.today()).year
    asked: list[tuple[str, date | None, int | None]] = [("now", None, None)]
    asked += [(f"as of {y}-12-31", date(y, 12, 31), None) for y in range(year - years, year)]
    asked += [(f"known at tx {t}", None, t) for t in moments(a, count)]
    for label, day, tx in asked:
        view_a, view_b = _view(a, tx), _view(b, tx)
        for level in level_names():
            left = tally(a, level, as_of=day, view=view_a)
            right = tally(b, level, as_of=day, view=view_b)
            try:
                pd.testing.assert_frame_equal(left, right, check_dtype=False, check_exact=True)
            except AssertionError as exc:
                what = " ".join(str(exc).split())[:200]
                out.append(f"统计不同 / the figures differ: {level}, {label}: {what}")
    return out
