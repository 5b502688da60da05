"""Replacing the unit grid: what a new grid would change, and every feature assigned again."""

from __future__ import annotations

import numpy as np
import pandas as pd
import shapely

import layers
from geo.assign import Grid, grid_diff
from geo.figures import versions
from geo.figures.areas import check_grid_keeps_areas
from geo.figures.versions import load_grid
from geo.imports.report import PreparedImport
from geo.store.base import Store
from layers.base import UNASSIGNED


def reassign_all(store: Store, previous: Grid | None = None) -> int:
    """Re-establish the unit of every feature of every survey layer after a grid change.

    Parameters
    ----------
    store : Store
    previous : Grid, optional
        The grid before the change.  With it, only features that can be affected are
        assigned again: those assigned to a removed or reshaped cell, those outside every
        cell, and those touching a new or reshaped cell.  Every other feature keeps its
        unit, which is exactly what assigning it again would give (its candidate cells are
        unchanged).  Without it, or when most cells changed, every feature is assigned again.

    Returns
    -------
    int
        Number of features whose unit changed.
    """
    grid = load_grid(store)
    changed_old, changed_new = grid_diff(previous, grid)
    changed = 0
    for spec in layers.survey_layers():
        fids, geoms = store.read_geometry(spec)
        if len(fids) == 0:
            continue
        if grid is None:
            units = np.full(len(fids), UNASSIGNED, dtype=object)
        elif changed_old is None or changed_new is None:
            units = grid.assign(geoms)
        else:
            _, current = store.read_assignment(spec)
            affected = pd.Series(current, dtype=object).isin({*changed_old, UNASSIGNED}).to_numpy(copy=True)
            if len(changed_new):
                hit, _ = shapely.STRtree(changed_new).query(geoms, predicate="intersects")
                affected[hit] = True
            units = current.copy()
            idx = np.flatnonzero(affected)
            if len(idx):
                units[idx] = grid.assign(geoms[idx])
        changed += store.set_units(spec, fids, units)
    return changed


def preview_grid(
    store: Store, prepared: PreparedImport, valid_from: object = None, tz: str | None = None
) -> None:
    """For a grid file not written: check ``valid_from`` and put the units it would add,
    remove and reshape in the report (features are assigned when it is committed)."""
    if not prepared.spec.is_grid:
        return
    day = versions.check_valid_from(store, valid_from, tz)
    rows = prepared.rows
    check_grid_keeps_areas(store, rows.attrs)
    grid = Grid(
        rows.attrs[str(prepared.spec.id_field)].to_numpy(dtype=object),
        np.asarray(rows.geometry, dtype=object),
    )
    prepared.report.grid_change = versions.preview_change(store, grid, day)
