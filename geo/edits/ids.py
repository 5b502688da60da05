"""A feature's stable id and version.

A feature keeps one id across its row versions: the fid of its first row version.  Every
update -- an import matching its survey key, an edit -- writes a new row version with a new
fid and the same id, and a version one higher.  The API names features by that id
(``/api/features/<layer>/<id>``); the map and the caches work on row fids.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from geo.store.base import Store
from layers.base import LayerSpec


def current_rows(store: Store, spec: LayerSpec, ids: np.ndarray | list[int]) -> pd.DataFrame:
    """The current row of each feature ``ids`` (stable ids) that exists: columns ``id``,
    ``fid`` (the current row version), ``version``, ``gw_unit``, ``gw_batch`` and the layer's
    stored fields, ordered by id.  Ids of no current feature are left out."""
    wanted = np.unique(np.asarray(ids, dtype=np.int64))
    return store.rows_by_id(spec, wanted)


def ids_of_rows(store: Store, spec: LayerSpec, fids: np.ndarray | list[int]) -> pd.DataFrame:
    """``fid``, ``id`` and ``version`` of the current rows ``fids`` (row fids, as the map and
    the lists hand them out), ordered by fid."""
    wanted = np.unique(np.asarray(fids, dtype=np.int64))
    return store.ids_of_rows(spec, wanted)


def find_feature(store: Store, spec: LayerSpec, number: int) -> pd.Series | None:
    """The current row (as :func:`current_rows` gives it) of the feature ``number`` names: its
    stable id or, as the map and the search hand them out, the fid of its current row version.
    The two never name different features: an id is the fid of a feature's first row version,
    and fids are never reused by another feature.  None when it names none."""
    rows = current_rows(store, spec, [int(number)])
    if rows.empty:
        by_row = ids_of_rows(store, spec, [int(number)])
        if by_row.empty:
            return None
        rows = current_rows(store, spec, [int(by_row["id"].iloc[0])])
        if rows.empty:
            return None
    return rows.iloc[0]


def feature_ref(value: object) -> int | str | None:
    """What a user typed to name a feature: a positive whole number (its stable id, or its
    current row's fid) as an int, else a survey id (the layer's ``id_field``) as stripped text;
    None for nothing usable (empty text, a boolean, a number below 1 or beyond 64 bits)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if 1 <= value <= 2**63 - 1 else None
    if not isinstance(value, str):
        return None
    text = value.strip()
    if not text or len(text) > 200:
        return None
    if text.isascii() and text.isdigit():
        number = int(text)
        return number if 1 <= number <= 2**63 - 1 else None
    return text


def ids_of_keys(store: Store, spec: LayerSpec, keys: list[str]) -> dict[str, int]:
    """The stable id of the current feature holding each of ``keys`` (survey ids, the layer's
    ``id_field`` such as 案件编号), looked up on the survey-key index; unknown keys left out."""
    if not spec.id_field or not keys:
        return {}
    return store.ids_of_keys(spec, [str(k) for k in keys])
