"""Remembered value mappings: how a raw survey value of a layer's field is stored."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


@dataclass
class ValueMap:
    """A remembered value mapping: in ``layer``'s ``field``, the raw text whose
    :func:`geo.reading.values.vocab_key` is ``raw_key`` is stored as ``code``.  Removing one marks it
    (``removed_at``); it is never erased."""

    id: int
    layer: str
    field: str
    raw_key: str
    raw: str
    code: str
    user: str | None
    created_at: str
    removed_at: str | None = None
    removed_by: str | None = None


class ValueMapStore(Protocol):
    """Remembered value mappings, audited; removed ones are kept, marked."""

    def value_maps(self, layer: str | None = None, *, include_removed: bool = False) -> list[ValueMap]:
        """Remembered value mappings (of ``layer``), oldest first; removed ones only when asked."""
        ...

    def save_value_map(self, layer: str, field: str, raw_key: str, raw: str, code: str) -> int:
        """Remember a mapping (replacing the one kept for the same layer, field and key); audited."""
        ...

    def remove_value_map(self, map_id: int) -> ValueMap:
        """Mark a remembered mapping removed; audited.  :class:`geo.errors.NotFound` for an
        unknown id, :class:`geo.errors.Conflict` when it already is."""
        ...


def value_map_select(mark: str, layer: str | None, include_removed: bool) -> tuple[str, tuple[Any, ...]]:
    """The query of :meth:`ValueMapStore.value_maps` (rows in the order of :class:`ValueMap`,
    oldest first) and its arguments, with the backend's parameter ``mark`` (``?``, ``%s``)."""
    sql = 'SELECT id, layer, field, raw_key, raw, code, "user", created_at, removed_at, removed_by FROM gw_value_maps'
    where, args = [], []
    if layer is not None:
        where.append(f"layer={mark}")
        args.append(layer)
    if not include_removed:
        where.append("removed_at IS NULL")
    if where:
        sql += " WHERE " + " AND ".join(where)
    return sql + " ORDER BY id", tuple(args)
