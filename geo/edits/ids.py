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
