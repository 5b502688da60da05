"""The unit hierarchy: unit grids and the units above them, as the grid layer declares them.

The levels, their labels and the grid fields each level's code and name come from are the
``levels`` of the registered grid layer (:attr:`layers.base.LayerSpec.levels`), the unit grid
first.  Units roll up from the unit grid by the grid's explicit code fields where given, else by
code prefix (:attr:`layers.base.Level.code_digits`); a cell with neither is counted under
:data:`UNCODED`.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from geo.errors import InputError
from geo.registry import grid_spec
from geo.store.base import Store
from geo.store.cache import generations
from geo.store.interface.features import GridVersion
from layers.base import Level

__all__ = [
    "UNCODED",
    "Hierarchy",
    "check_level",
    "empty_hierarchy",
    "get_level",
    "grid_levels",
    "hierarchy_from_grid",
    "level_names",
    "load_hierarchy",
]

#: The code of the unit above a grid cell that gives that unit's code neither in its code field
#: nor by prefix (counted, in its own row, never dropped).
UNCODED = "UNCODED"


def grid_levels() -> tuple[Level, ...]:
    """The levels of the unit hierarchy declared by the registered grid layer.

    Returns
    -------
    tuple of Level
        The unit grid first, then upward.
    """
    levels = grid_spec().levels
    if not levels:
        raise RuntimeError(f"the grid layer {grid_spec().name!r} declares no levels")
    return levels


def level_names() -> list[str]:
    """Names of the declared levels, the unit grid first."""
    return [lv.name for lv in grid_levels()]


def get_level(name: str) -> Level:
    """The declared level called ``name``.

    Raises
    ------
    InputError
        No level has that name (``bad_level``).
    """
    levels = grid_levels()
    for lv in levels:
        if lv.name == name:
            return lv
    names = ", ".join(lv.name for lv in levels)
    raise InputError(
        f"未知层级: {name}（可选: {names}）",
        f"unknown level: {name} ({names})",
        code="bad_level",
    )


def check_level(level: str | None) -> str:
    """``level`` when it names a declared level, the unit grid level when None; an
    :class:`~geo.errors.InputError` (``bad_level``) naming the declared ones when neither."""
    return grid_levels()[0].name if level is None else get_level(level).name


class Hierarchy:
    """Unit grids and their parents.

    ``grid`` has one row per unit grid with columns ``code``, ``name`` and, per upper
    level, ``<level>_code`` and ``<level>_name``.  Unit tables and code mappings are
    computed once per instance (instances are cached per store revision).
    """

    def __init__(self, grid: pd.DataFrame, levels: tuple[Level, ...] | None = None):
        self.grid = grid
        self.levels = grid_levels() if levels is None else levels
        self._units: dict[str, pd.DataFrame] = {}
        self._mappings: dict[str, dict[str, str]] = {}

    @property
    def level_names(self) -> list[str]:
        """Names of the levels, the unit grid first."""
        return [lv.name for lv in self.levels]

    def code_column(self, level: str) -> str:
        """The column of :attr:`grid` holding each unit grid's unit code at ``level``."""
        return "code" if level == self.levels[0].name else f"{level}_code"

    def parent(self, level: str) -> str | None:
        """The level above ``level`` (None for the top one)."""
        names = self.level_names
        i = names.index(level)
        return names[i + 1] if i + 1 < len(names) else None

    def units(self, level: str) -> pd.DataFrame:
        """Units of ``level``: ``code``, ``name``, ``parent_code``, ``parent_name``, sorted by code."""
        if level not in self._units:
            self._units[level] = self._build_units(level)
        return self._units[level].copy()

    def _build_units(self, level: str) -> pd.DataFrame:
        g = self.grid
        parent = self.parent(level)
        if level == self.levels[0].name:
            df = pd.DataFrame({"code": g["code"], "name": g["name"]})
        else:
            df = (
                g.groupby(f"{level}_code", sort=True, dropna=False)[f"{level}_name"]
                .agg(_first_name)
                .reset_index()
                .rename(columns={f"{level}_code": "code", f"{level}_name": "name"})
            )
        if parent is not None:
            key = self.code_column(level)
            pmap = g.drop_duplicates(key).set_index(key)
            df["parent_code"] = df["code"].map(pmap[f"{parent}_code"])
            df["parent_name"] = df["code"].map(pmap[f"{parent}_name"])
        else:
            df["parent_code"] = None
            df["parent_name"] = None
        df = df.sort_values("code", kind="stable").reset_index(drop=True)
        df["level"] = level
        return df[["code", "name", "level", "parent_code", "parent_name"]]

    def mapping(self, level: str) -> dict[str, str]:
        """Grid code → code of its unit at ``level``."""
        if level not in self._mappings:
            target = self.code_column(level)
            self._mappings[level] = dict(zip(self.grid["code"], self.grid[target], strict=True))
        return self._mappings[level]


def _first_name(s: pd.Series) -> Any:
    s = s.dropna()
    return s.iloc[0] if len(s) else None


def hierarchy_from_grid(attrs: pd.DataFrame) -> Hierarchy:
    """Build the hierarchy from grid attributes (canonical grid fields, as the grid layer's
    ``levels`` name them).

    Parameters
    ----------
    attrs : pandas.DataFrame
        One row per unit grid; the unit grid level's code field is required, every other
        level's code and name fields are optional.

    Returns
    -------
    Hierarchy
        A unit's code at an upper level is its explicit code field where given, else the
        prefix of the unit grid's code when that code is all digits of the unit grid level's
        length, else :data:`UNCODED`.
    """
    levels = grid_levels()
    unit = levels[0]
    g = pd.DataFrame({"code": attrs[unit.code_field].astype(object), "name": attrs.get(unit.name_field)})
    for level in levels[1:]:
        explicit = attrs.get(level.code_field)
        derived = g["code"].map(
            lambda c, p=level.code_digits, n=unit.code_digits: (
                c[:p] if isinstance(c, str) and len(c) == n and c.isdigit() else None
            )
        )
        code = derived if explicit is None else explicit.astype(object).where(explicit.notna(), derived)
        g[f"{level.name}_code"] = code.where(code.notna(), UNCODED)
        names = attrs.get(level.name_field)
        g[f"{level.name}_name"] = names if names is not None else None
    return Hierarchy(g, levels)


def empty_hierarchy() -> Hierarchy:
    """The hierarchy of a grid without units (before the first grid was imported)."""
    return hierarchy_from_grid(pd.DataFrame({grid_levels()[0].code_field: pd.Series(dtype=object)}))


def load_hierarchy(store: Store, version: GridVersion | None = None) -> Hierarchy:
    """The unit hierarchy of the stored grid, or of grid ``version`` (its units, those that
    later disappeared too), kept per generation of the grid layer."""
    grid = grid_spec()
    kept = store.cache.region("hierarchy")
    state = generations(store, grid)

    def fresh() -> bool:
        return generations(store, grid) == state

    if version is not None:
        current = store.current_grid_version()
        if current is None or current.id != version.id:
            tx = version.tx

            def fill_version() -> Hierarchy:
                attrs, _ = store.read_visible(grid, tx, [f.name for f in grid.fields], geometry=False)
                return hierarchy_from_grid(attrs)

            return kept.get_or_fill((state, version.id), fill_version, fresh, wait=not store.writing())

    def fill() -> Hierarchy:
        return hierarchy_from_grid(store.read_attributes(grid, [f.name for f in grid.fields]))

    return kept.get_or_fill((state,), fill, fresh, wait=not store.writing())
