"""Moving a whole store between backends: its raw tables in one backend-neutral form, as
streams of Arrow record batches.

Every backend can dump its tables (:meth:`StoreTransfer.dump_tables`) and load them into an
empty store of its own kind (:meth:`StoreTransfer.load_tables`).  The neutral tables are named
here (:func:`neutral_tables`), with their columns and Arrow types: ids (features, batches, grid
versions, transactions, tokens, audit entries) are kept as they are, geometries travel as ISO
WKB, days as ``YYYY-MM-DD`` text.  :mod:`geo.store.copy` puts the two together.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager
from typing import Protocol

import pyarrow as pa

import layers
from layers.base import LayerSpec

__all__ = [
    "BATCH_ROWS",
    "UNUSABLE_KEY",
    "StoreTransfer",
    "layer_columns",
    "neutral_tables",
]

#: rows per record batch a dump yields
BATCH_ROWS = 20_000
#: neutral table → the table both backends keep it in
FIXED_TABLES = {
    "meta": "gw_meta",
    "tx": "gw_tx",
    "batches": "gw_batches",
    "archive": "gw_archive",
    "grid_versions": "gw_grid_versions",
    "targets": "gw_targets",
    "targets_history": "gw_targets_history",
    "audit": "gw_audit",
    "value_maps": "gw_value_maps",
    "users": "gw_users",
    "tokens": "gw_tokens",
    "logins": "gw_logins",
    "webhooks": "gw_webhooks",
    "outbox": "gw_outbox",
    "deliveries": "gw_deliveries",
    "photos": "gw_photos",
    "user_areas": "gw_user_areas",
    "patrols": "gw_patrols",
    "patrol_units": "gw_patrol_units",
    "tasks": "gw_tasks",
    "task_items": "gw_task_items",
    "task_events": "gw_task_events",
}

#: the ``gw_meta`` key that marks a store unusable (its value says why)
UNUSABLE_KEY = "unusable"

_S, _I, _F, _B = pa.string(), pa.int64(), pa.float64(), pa.binary()

#: the fixed tables: name → columns with their types, in order
FIXED: dict[str, dict[str, pa.DataType]] = {
    "meta": {"key": _S, "value": _S},
    "layers": {
        "name": _S,
        "geometry_type": _S,
        "last_fid": _I,
        "min_x": _F,
        "min_y": _F,
        "max_x": _F,
        "max_y": _F,
    },
    "tx": {"id": _I, "at": _S, "kind": _S, "batch_id": _I},
    "batches": {
        "id": _I,
        "layer": _S,
        "source_name": _S,
        "checksum": _S,
        "created_at": _S,
        "user": _S,
        "status": _S,
        "rows_read": _I,
        "added": _I,
        "updated": _I,
        "unchanged": _I,
        "rejected": _I,
        "encoding": _S,
        "crs": _S,
        "report": _S,
        "rolled_back_at": _S,
        "kind": _S,
    },
    "archive": {"batch_id": _I, "name": _S, "path": _S},
    "grid_versions": {
        "id": _I,
        "valid_from": _S,
        "tx": _I,
        "parent": _I,
        "rolled_back_tx": _I,
        "units": _I,
    },
    "targets": {"code": _S, "layer": _S, "metric": _S, "target": _F, "batch_id": _I, "tx_from": _I},
    "targets_history": {
        "code": _S,
        "layer": _S,
        "metric": _S,
        "target": _F,
        "batch_id": _I,
        "superseded_by": _I,
        "tx_from": _I,
        "tx_to": _I,
    },
    "audit": {
        "id": _I,
        "at": _S,
        "user": _S,
        "client": _S,
        "action": _S,
        "layer": _S,
        "batch_id": _I,
        "counts": _S,
        "detail": _S,
    },
    "value_maps": {
        "id": _I,
        "layer": _S,
        "field": _S,
        "raw_key": _S,
        "raw": _S,
        "code": _S,
        "user": _S,
        "created_at": _S,
        "removed_at": _S,
        "removed_by": _S,
    },
    "users": {
        "name": _S,
        "role": _S,
        "password": _S,
        "active": _I,
        "created_at": _S,
        "session_version": _I,
    },
    "tokens": {
        "id": _I,
        "user": _S,
        "label": _S,
        "digest": _S,
        "created_at": _S,
        "last_used": _S,
        "revoked_at": _S,
    },
    "logins": {"kind": _S, "key": _S, "failures": _I, "last_failure": _S, "locked_until": _S},
    "webhooks": {
        "id": _I,
        "target_kind": _S,
        "target": _S,
        "format": _S,
        "url": _S,
        "secret": _S,
        "created_at": _S,
        "created_by": _S,
        "removed_at": _S,
    },
    "outbox": {
        "id": _I,
        "webhook_id": _I,
        "event": _S,
        "payload": _S,
        "created_at": _S,
        "status": _S,
        "attempts": _I,
        "next_at": _S,
        "claimed_by": _S,
        "claimed_until": _S,
    },
    "deliveries": {
        "id": _I,
        "outbox_id": _I,
        "webhook_id": _I,
        "event": _S,
        "at": _S,
        "attempt": _I,
        "outcome": _S,
        "http_status": _I,
        "error": _S,
    },
    "photos": {
        "id": _I,
        "layer": _S,
        "feature": _I,
        "feature_version": _I,
        "sha256": _S,
        "mime": _S,
        "width": _I,
        "height": _I,
        "bytes": _I,
        "taken_at": _S,
        "lon": _F,
        "lat": _F,
        "uploaded_by": _S,
        "uploaded_at": _S,
        "note": _S,
    },
    "user_areas": {"name": _S, "codes": _S, "sees_district": _I},
    "patrols": {
        "id": _I,
        "account": _S,
        "day": _S,
        "result": _S,
        "features": _S,
        "note": _S,
        "created_at": _S,
        "late": _I,
    },
    "patrol_units": {"patrol_id": _I, "unit": _S},
    "tasks": {
        "id": _I,
        "number": _S,
        "title": _S,
        "instructions": _S,
        "created_by": _S,
        "created_at": _S,
        "area": _S,
        "assignee": _S,
        "deadline": _S,
        "days": _I,
        "working_days": _I,
    },
    "task_items": {
        "id": _I,
        "task_id": _I,
        "layer": _S,
        "feature": _I,
        "unit": _S,
        "deadline": _S,
        "state": _S,
        "fixed_at": _S,
        "fixed_by": _S,
        "verified_at": _S,
        "verified_by": _S,
        "rework": _I,
    },
    "task_events": {
        "id": _I,
        "task_id": _I,
        "item_id": _I,
        "kind": _S,
        "at": _S,
        "day": _S,
        "user": _S,
        "note": _S,
        "photos": _S,
        "deadline": _S,
    },
}

_KIND_TYPES = {"str": _S, "int": _I, "float": _F, "date": _S}
_GW = {"gw_key": _S, "gw_batch": _I, "gw_unit": _S, "gw_area": _F, "gw_id": _I, "gw_version": _I}


def layer_columns(spec: LayerSpec, part: str) -> dict[str, pa.DataType]:
    """The neutral columns of a layer's ``part``: ``current`` (``fid``, ``geom``, its fields,
    gridwatch's columns, ``gw_tx_from``), ``history`` (``hid`` -- the row's own id in the
    history --, ``geom``, fields, gridwatch's columns, ``gw_orig_fid``, ``gw_superseded_by``,
    ``gw_tx_from``, ``gw_tx_to``) or ``assign`` (``version``, ``fid``, ``unit``)."""
    if part == "assign":
        return {"version": _I, "fid": _I, "unit": _S}
    fields = {f.name: _KIND_TYPES[f.kind] for f in spec.stored_fields}
    if part == "current":
        return {"fid": _I, "geom": _B, **fields, **_GW, "gw_tx_from": _I}
    return {
        "hid": _I,
        "geom": _B,
        **fields,
        **_GW,
        "gw_orig_fid": _I,
        "gw_superseded_by": _I,
        "gw_tx_from": _I,
        "gw_tx_to": _I,
    }


def neutral_tables() -> dict[str, dict[str, pa.DataType]]:
    """Every neutral table, in the order a dump yields them and a load needs them: the fixed
    ones, then per registered layer ``<layer>`` (current rows), ``<layer>_history`` and, for a
    survey layer, ``<layer>_assign``."""
    out = dict(FIXED)
    for spec in layers.all_layers():
        out[f"{spec.name}"] = layer_columns(spec, "current")
        out[f"{spec.name}_history"] = layer_columns(spec, "history")
        if not spec.is_grid:
            out[f"{spec.name}_assign"] = layer_columns(spec, "assign")
    return out


def to_batch(rows: list[tuple[object, ...]], columns: dict[str, pa.DataType]) -> pa.RecordBatch:
    """``rows`` (tuples in the order of ``columns``) as one record batch of the neutral types."""
    names = list(columns)
    values = list(zip(*rows, strict=True)) if rows else [() for _ in names]
    return pa.record_batch(
        [pa.array(list(v), type=columns[n]) for n, v in zip(names, values, strict=True)], names=names
    )


class StoreTransfer(Protocol):
    """What :mod:`geo.store.copy` needs of a backend: its raw tables out and in, a scope that
    holds every writer back, and the mark of a store that must not be used."""

    def dump_tables(self) -> Iterator[tuple[str, pa.RecordBatch]]:
        """Every row of every neutral table (see :func:`neutral_tables`) as (table, batch),
        table after table in that order, at most :data:`BATCH_ROWS` rows a batch.  Call it
        inside :meth:`hold_writes` for one consistent state."""
        ...

    def load_tables(self, batches: Iterable[tuple[str, pa.RecordBatch]], unusable: str) -> dict[str, int]:
        """Write ``batches`` (as :meth:`dump_tables` yields them) into this empty store in one
        transaction, marked unusable with the reason ``unusable`` in the same transaction;
        returns the rows written per table."""
        ...

    def unknown_layers(self) -> list[str]:
        """Layer tables the store holds that no registered layer names (a copy would leave them
        behind)."""
        ...

    def table_counts(self) -> dict[str, int]:
        """The rows of every neutral table this store holds (tables it has none of left out)."""
        ...

    def is_empty(self) -> bool:
        """Whether the store holds nothing: no layer, batch, transaction, target, account,
        token, audit entry or value map."""
        ...

    def hold_writes(self) -> AbstractContextManager[None]:
        """Read scope in which every read sees one state and every writer of the store (this
        process's or another's) waits or is refused until it ends."""
        ...

    def unusable(self) -> str | None:
        """Why the store must not be used (an unverified or failed copy), or None."""
        ...

    def set_unusable(self, reason: str | None) -> None:
        """Mark the store unusable with ``reason``, or clear the mark (None)."""
        ...
