"""Remembered value mappings: how a raw survey value of a layer's field is stored."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from geo.errors import Conflict, NotFound
from geo.store.interface.audit import AuditLog


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


def removable(map_id: int, found: ValueMap | None) -> ValueMap:
    """``found``, the mapping ``map_id`` about to be removed; :class:`~geo.errors.NotFound` when
    there is none, :class:`~geo.errors.Conflict` (``already_removed``) when it was removed."""
    if found is None:
        raise NotFound(
            f"没有编号为 {map_id} 的值对应", f"no value mapping {map_id}", code="mapping_not_found"
        )
    if found.removed_at is not None:
        raise Conflict(
            f"值对应 {map_id} 已删除", f"value mapping {map_id} was already removed", code="already_removed"
        )
    return found


def audit_mapping(
    log: AuditLog, action: str, map_id: int, layer: str, field: str, raw: str, code: str
) -> None:
    """The audit entry of saving (``mapping_add``) or removing (``mapping_remove``) a mapping."""
    log.record_audit(action, layer=layer, counts={"id": map_id}, detail=f"{field}: {raw} → {code}")
