"""A feature's versions, oldest first: what each write changed, who wrote it, when, and what
ended it -- the history an edit, an import or a rollback leaves (see :mod:`geo.edits.ids`)."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from geo.edits.ids import find_feature
from geo.errors import NotFound
from geo.registry import get_layer
from geo.store.base import Store
from geo.store.interface.batches import Batch


def feature_history(
    store: Store, layer: str, number: int, units: frozenset[str] | None = None
) -> dict[str, Any]:
    """The versions of feature ``number`` of ``layer`` (its id, or its current row's fid).

    Each version: ``version``, ``fid`` (its row), the ``batch_id`` that wrote it with its
    ``kind`` (import, edit), ``user``, ``source`` (file or edit) and ``note``, ``at`` (when its
    transaction committed, UTC), ``until`` (when a later write or a rollback ended it; None for
    the current one), ``rolled_back`` (its batch was rolled back), ``unit`` and ``changed``: the
    fields that differ from the version before (all set fields for the first).  With ``units``
    (an account's area) a feature outside is not found.
    """
    spec = get_layer(layer)
    found = find_feature(store, spec, int(number))
    if found is None or (units is not None and found["gw_unit"] not in units):
        raise NotFound(f"要素 {number} 不存在", f"feature {number} not found", code="feature_not_found")
    rows = store.feature_versions(spec, int(found["id"]))
    fields = [f.name for f in spec.fields]
    batches: dict[int, Batch | None] = {}
    out: list[dict[str, Any]] = []
    before: dict[str, Any] | None = None
    for row in rows.to_dict("records"):
        values = {f: _plain(row.get(f)) for f in fields}
        changed = (
            [f for f in fields if values[f] is not None]
            if before is None
            else [f for f in fields if values[f] != before[f]]
        )
        batch = _batch(store, batches, row.get("gw_batch"))
        out.append(
            {
                "version": int(row["version"]),
                "fid": int(row["fid"]),
                "batch_id": None if batch is None else batch.id,
                "kind": None if batch is None else batch.kind,
                "user": None if batch is None else batch.user,
                "source": None if batch is None else batch.source_name,
                "note": None if batch is None else batch.report.get("note"),
                "rolled_back": batch is not None and batch.status == "rolled_back",
                "at": _at(store, row.get("gw_tx_from")),
                "until": _at(store, row.get("gw_tx_to")),
                "unit": _plain(row.get("gw_unit")),
                "changed": changed,
                "values": values,
            }
        )
        before = values
    return {"layer": spec.name, "id": int(found["id"]), "version": int(found["version"]), "versions": out}


def _batch(store: Store, seen: dict[int, Batch | None], batch_id: Any) -> Batch | None:
    if batch_id is None or (isinstance(batch_id, float) and math.isnan(batch_id)):
        return None
    key = int(batch_id)
    if key not in seen:
        try:
            seen[key] = store.batch(key)
        except NotFound:
            seen[key] = None
    return seen[key]


def _at(store: Store, tx: Any) -> str | None:
    if tx is None or pd.isna(tx):
        return None
    found = store.tx(int(tx))
    return None if found is None else found.at


def _plain(value: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if hasattr(value, "item"):
        return value.item()
    return value if isinstance(value, (int, float, str)) else str(value)
