"""The area an account is bound to, and the scope every read and write of that account keeps to.

An account (see :mod:`geo.store.accounts`) may be bound to street, community or unit codes of the
current grid.  :func:`check_area` checks such codes against the grid, :func:`area_units` resolves
them to the unit grid codes they cover (a street to its communities to their units, through
:mod:`geo.figures.hierarchy`), kept per grid generation, and :func:`scope_of` gives the
:class:`Scope` of an account: everything for an admin, an unbound account or one that may see the
district, else the units of its area.  The figure, list and map functions take a :class:`Scope`;
the web floor only builds it from the account logged in.  Edits and hand-over tasks keep to the
same scope.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import pandas as pd

from geo.errors import Conflict, InputError
from geo.figures.hierarchy import Hierarchy, hierarchy_from_grid, load_hierarchy
from geo.registry import grid_spec
from geo.store import accounts
from geo.store.base import Store
from geo.store.cache import generations
from geo.store.interface.accounts import User

__all__ = [
    "EVERYTHING",
    "Scope",
    "add_bound_user",
    "area_levels",
    "area_units",
    "bind_area",
    "check_area",
    "check_grid_keeps_areas",
    "codes_lost",
    "parse_codes",
    "scope_of",
    "unit_names",
    "units_of",
    "write_units",
]


@dataclass(frozen=True)
class Scope:
    """What one account may see and write: every unit (``units`` None) or the unit grid codes of
    its area.  ``codes`` are the area's own codes (for messages and keys)."""

    units: frozenset[str] | None = None
    codes: tuple[str, ...] = ()
    sees_district: bool = False
    names: dict[str, str] = field(default_factory=dict, compare=False, hash=False)

    @property
    def everything(self) -> bool:
        """Whether the scope holds the whole district."""
        return self.units is None

    def key(self) -> str:
        """A short text that tells scopes with different answers apart (for kept answers and tags):
        ``"*"`` for the whole district, else the area's codes."""
        return "*" if self.units is None else "area:" + ",".join(self.codes)

    def allows(self, unit: object) -> bool:
        """Whether the unit grid code ``unit`` lies in the scope."""
        return self.units is None or (isinstance(unit, str) and unit in self.units)

    def mask(self, units: Iterable[object]) -> list[bool]:
        """Per unit grid code of ``units``, whether it lies in the scope."""
        if self.units is None:
            return [True for _ in units]
        inside = self.units
        return [isinstance(u, str) and u in inside for u in units]

    def upper(self, hierarchy: Hierarchy, level: str) -> frozenset[str] | None:
        """The codes at ``level`` of the units in the scope (None: every code)."""
        if self.units is None:
            return None
        col = hierarchy.code_column(level)
        g = hierarchy.grid
        return frozenset(str(c) for c in g.loc[g["code"].isin(self.units), col].dropna())


#: the scope of an admin or an unbound account
EVERYTHING = Scope()


def area_levels(hierarchy: Hierarchy) -> list[str]:
    """The levels an account may be bound at: every level but the top one (the district)."""
    return hierarchy.level_names[:-1]


def parse_codes(text: str | Sequence[str]) -> tuple[str, ...]:
    """Codes from ``"A,B"`` (or a list of such), stripped, empty parts dropped, sorted, once each."""
    parts = [text] if isinstance(text, str) else list(text)
    out = {c.strip() for p in parts for c in str(p).replace("，", ",").split(",")}
    return tuple(sorted(c for c in out if c))


def units_of(hierarchy: Hierarchy, codes: Iterable[str]) -> tuple[frozenset[str], list[str]]:
    """The unit grid codes ``codes`` cover on ``hierarchy`` and the codes that name no street,
    community or unit of it."""
    g = hierarchy.grid
    units: set[str] = set()
    unknown = []
    for code in codes:
        hit = False
        for level in area_levels(hierarchy):
            col = hierarchy.code_column(level)
            found = g.loc[g[col] == code, "code"]
            if len(found):
                units.update(str(c) for c in found)
                hit = True
        if not hit:
            unknown.append(code)
    return frozenset(units), unknown


def check_area(store: Store, codes: str | Sequence[str]) -> tuple[str, ...]:
    """The codes of ``codes`` (see :func:`parse_codes`) when each is a street, community or unit
    code of the current grid; :class:`InputError` (code ``unknown_area``) naming those that are not."""
    parsed = parse_codes(codes)
    if not parsed:
        return ()
    _, unknown = units_of(load_hierarchy(store), parsed)
    if unknown:
        shown = ", ".join(unknown[:10]) + (" …" if len(unknown) > 10 else "")
        raise InputError(
            f"区域编码不在当前网格的街道、社区或单元网格中: {shown}",
            f"area code not a street, community or unit of the current grid: {shown}",
            code="unknown_area",
            details={"codes": unknown},
        )
    return parsed


def area_units(store: Store, codes: Sequence[str]) -> frozenset[str]:
    """The unit grid codes the area ``codes`` covers on the current grid (codes no longer on
    the grid cover nothing), kept per grid generation."""
    codes = tuple(sorted(set(codes)))
    state = generations(store, grid_spec())

    def fill() -> frozenset[str]:
        return units_of(load_hierarchy(store), codes)[0]

    def fresh() -> bool:
        return generations(store, grid_spec()) == state

    return store.cache.region("areas").get_or_fill((state, codes), fill, fresh, wait=not store.writing())


def scope_of(store: Store, user: User | None) -> Scope:
    """The scope of account ``user``: the whole district for nobody signed in (a page that
    needs no account), an admin, an account without an area or one that may see the district;
    else the units of its area."""
    if user is None or user.role == "admin" or not user.area or user.sees_district:
        return EVERYTHING
    return Scope(area_units(store, user.area), tuple(user.area), False)


def write_units(store: Store, user: str | None) -> frozenset[str] | None:
    """The unit grids account ``user`` may write in: None (everywhere) for no account, an
    unknown name, an admin or an account without an area; else its area's units -- whether or
    not it may see the district, which is about reading."""
    account = None if user is None else store.get_user(user)
    if account is None or account.role == "admin" or not account.area:
        return None
    return area_units(store, account.area)


def bind_area(
    store: Store, name: str, codes: str | Sequence[str] | None = None, sees_district: bool | None = None
) -> User:
    """Bind account ``name`` to the area ``codes`` (checked with :func:`check_area`; empty: the
    whole district; None: unchanged) and/or set whether it sees the district; see
    :func:`geo.store.accounts.set_area`."""
    area = None if codes is None else check_area(store, codes)
    return accounts.set_area(store, name, area, sees_district)


def add_bound_user(
    store: Store, name: str, role: str, password: str, codes: str | Sequence[str] = ()
) -> User:
    """Create an account bound to ``codes`` (checked with :func:`check_area`); see
    :func:`geo.store.accounts.add_user`."""
    return accounts.add_user(store, name, role, password, check_area(store, codes))


def codes_lost(store: Store, hierarchy: Hierarchy) -> dict[str, list[str]]:
    """Per account bound to an area, the codes of its area that ``hierarchy`` (a grid about to
    replace the current one) no longer has; accounts that lose nothing left out."""
    lost: dict[str, list[str]] = {}
    for user in store.list_users():
        if user.area:
            _, unknown = units_of(hierarchy, user.area)
            if unknown:
                lost[user.name] = unknown
    return lost


def check_grid_keeps_areas(store: Store, attrs: pd.DataFrame) -> None:
    """Refuse a grid (its canonical attributes ``attrs``, about to replace the current one) that
    no longer has a code some account is bound to: :class:`~geo.errors.Conflict` (code
    ``area_codes_lost``) naming the accounts and their codes, until their areas are moved."""
    lost = codes_lost(store, hierarchy_from_grid(attrs))
    if lost:
        shown = "; ".join(f"{name}: {', '.join(codes)}" for name, codes in sorted(lost.items()))
        raise Conflict(
            f"新网格缺少账户限定区域中的编码，请先修改这些账户的区域（gridwatch user area）: {shown}",
            f"the new grid lacks codes accounts are bound to; move their areas first (gridwatch user area): {shown}",
            code="area_codes_lost",
            details={"accounts": lost},
        )


def unit_names(hierarchy: Hierarchy, codes: Iterable[str]) -> pd.DataFrame:
    """``code``, ``name`` and ``level`` of each of ``codes`` found on ``hierarchy`` (unit grid,
    community or street), in the order given."""
    rows = []
    for code in codes:
        for level in area_levels(hierarchy):
            units = hierarchy.units(level)
            hit = units.loc[units["code"] == code]
            if len(hit):
                rows.append({"code": code, "name": hit["name"].iloc[0], "level": level})
                break
    return pd.DataFrame(rows, columns=["code", "name", "level"])
