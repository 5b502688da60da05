"""Reading feature rows: the current rows, the row versions visible at a transaction, retired
row versions, geometries (decoded once per layer generation) -- through ``COPY … TO`` into
Arrow where a whole layer is read."""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import shapely

from geo.store.interface.changes import enabled as changes_enabled
from geo.store.interface.changes import sorted_unique, splice
from geo.store.postgis.tables import ARROW_TYPES, GW_KINDS, PgTables, q
from layers.base import LayerSpec


class PgFeatureReads(PgTables):
    """The read side of :class:`geo.store.interface.features.FeatureStore` on PostGIS."""

    def _kinds(self, spec: LayerSpec) -> dict[str, str]:
        return {f.name: str(f.kind) for f in spec.stored_fields} | GW_KINDS

    def _select_list(self, spec: LayerSpec, columns: list[str]) -> str:
        """``columns`` quoted for a SELECT, dates as ``YYYY-MM-DD`` text (as the GeoPackage holds them)."""
        kinds = self._kinds(spec)
        return ", ".join(f"{q(c)}::text" if kinds.get(c) == "date" else q(c) for c in columns)

    def _frame(self, names: list[str], rows: list[tuple[Any, ...]]) -> pd.DataFrame:
        if not rows:
            return pd.DataFrame({c: pd.Series(dtype=object) for c in names})
        return pd.DataFrame({n: np.array([r[i] for r in rows], dtype=object) for i, n in enumerate(names)})

    def layer_count(self, spec: LayerSpec) -> int:
        """See :meth:`geo.store.interface.features.FeatureStore.layer_count`.

        Counts the rows of the layer's table.
        """
        if not self.has_layer(spec):
            return 0
        row = self._run(f"SELECT count(*) FROM {q(spec.name)}").fetchone()
        return int(row[0]) if row else 0

    def read_attributes(self, spec: LayerSpec, columns: list[str] | None = None) -> pd.DataFrame:
        """See :meth:`geo.store.interface.features.FeatureStore.read_attributes`.

        Without ``columns``: the layer's stored fields plus ``gw_key``, ``gw_batch``, ``gw_unit``
        and ``gw_area``.  Object columns ordered by fid, dates as ``YYYY-MM-DD`` text, as the
        GeoPackage backend gives them.
        """
        cols = (
            columns
            if columns is not None
            else [*self._columns(spec), "gw_key", "gw_batch", "gw_unit", "gw_area"]
        )
        names = ["fid", *cols]
        if not self.has_layer(spec):
            return self._frame(names, [])
        rows = self._run(
            f"SELECT {self._select_list(spec, names)} FROM {q(spec.name)} ORDER BY fid"
        ).fetchall()
        return self._frame(names, rows)

    def read_rows(self, spec: LayerSpec, fids: np.ndarray) -> pd.DataFrame:
        """See :meth:`geo.store.interface.features.FeatureStore.read_rows`.

        Attributes (with ``fid``, ``gw_unit``) of the given current rows, in fid order.
        """
        names = ["fid", *self._columns(spec), "gw_unit"]
        if not self.has_layer(spec) or len(fids) == 0:
            return self._frame(names, [])
        wanted = np.unique(np.asarray(fids, dtype=np.int64)).tolist()
        rows = self._run(
            f"SELECT {self._select_list(spec, names)} FROM {q(spec.name)} WHERE fid = ANY(%s) ORDER BY fid",
            (wanted,),
        ).fetchall()
        return self._frame(names, rows)

    def rows_by_id(self, spec: LayerSpec, ids: np.ndarray) -> pd.DataFrame:
        """See :meth:`geo.store.interface.features.FeatureStore.rows_by_id`.

        A feature whose first row version is current has no ``gw_id`` (its fid is its id); a
        later one is found on the ``gw_id`` index."""
        cols = ["gw_key", "gw_unit", "gw_batch", *self._columns(spec)]
        names = ["id", "fid", "version", *cols]
        if not self.has_layer(spec) or len(ids) == 0:
            return self._frame(names, [])
        wanted = np.unique(np.asarray(ids, dtype=np.int64)).tolist()
        picked = self._select_list(spec, cols)
        rows = self._run(
            f"SELECT fid, fid, coalesce(gw_version, 1), {picked} FROM {q(spec.name)} WHERE fid = ANY(%s)"
            " AND gw_id IS NULL"
            f" UNION ALL SELECT gw_id, fid, coalesce(gw_version, 1), {picked} FROM {q(spec.name)}"
            " WHERE gw_id = ANY(%s) ORDER BY 1",
            (wanted, wanted),
        ).fetchall()
        out = self._frame(names, rows)
        for c in ("id", "fid", "version"):
            out[c] = out[c].astype(np.int64)
        return out

    def feature_versions(self, spec: LayerSpec, feature_id: int) -> pd.DataFrame:
        """See :meth:`geo.store.interface.features.FeatureStore.feature_versions`."""
        cols = ["gw_unit", *self._columns(spec)]
        names = ["version", "fid", "gw_batch", "gw_superseded_by", "gw_tx_from", "gw_tx_to", *cols]
        if not self.has_layer(spec):
            return self._frame(names, [])
        picked = self._select_list(spec, cols)
        ident = int(feature_id)
        rows = self._run(
            f"SELECT coalesce(gw_version, 1), fid, gw_batch, NULL::bigint, gw_tx_from, NULL::bigint, {picked}"
            f" FROM {q(spec.name)} WHERE gw_id = %s OR (fid = %s AND gw_id IS NULL)"
            f" UNION ALL SELECT coalesce(gw_version, 1), gw_orig_fid, gw_batch, gw_superseded_by, gw_tx_from,"
            f" gw_tx_to, {picked} FROM {q(spec.name + '_history')} WHERE gw_id = %s OR (gw_orig_fid = %s AND gw_id IS NULL)"
            " ORDER BY 5, 6 NULLS LAST",
            (ident, ident, ident, ident),
        ).fetchall()
        return self._frame(names, rows)

    def ids_of_rows(self, spec: LayerSpec, fids: np.ndarray) -> pd.DataFrame:
        """See :meth:`geo.store.interface.features.FeatureStore.ids_of_rows`."""
        if not self.has_layer(spec) or len(fids) == 0:
            return pd.DataFrame(
                {"fid": np.empty(0, np.int64), "id": np.empty(0, np.int64), "version": np.empty(0, np.int64)}
            )
        wanted = np.unique(np.asarray(fids, dtype=np.int64)).tolist()
        rows = self._run(
            f"SELECT fid, coalesce(gw_id, fid), coalesce(gw_version, 1) FROM {q(spec.name)}"
            " WHERE fid = ANY(%s) ORDER BY fid",
            (wanted,),
        ).fetchall()
        arr = np.array(rows, dtype=np.int64).reshape(-1, 3)
        return pd.DataFrame({"fid": arr[:, 0], "id": arr[:, 1], "version": arr[:, 2]})

    def ids_of_keys(self, spec: LayerSpec, keys: list[str]) -> dict[str, int]:
        """See :meth:`geo.store.interface.features.FeatureStore.ids_of_keys`."""
        wanted = sorted({str(k) for k in keys})
        if not self.has_layer(spec) or not wanted:
            return {}
        rows = self._run(
            f"SELECT gw_key, coalesce(gw_id, fid) FROM {q(spec.name)} WHERE gw_key = ANY(%s)", (wanted,)
        ).fetchall()
        return {str(k): int(i) for k, i in rows}

    def read_table(
        self, spec: LayerSpec, columns: list[str], tx: int | None = None, fids: np.ndarray | None = None
    ) -> pa.Table:
        """See :meth:`geo.store.interface.features.FeatureStore.read_table`.

        One ``COPY (SELECT …) TO STDOUT`` read into Arrow; with ``tx`` the row versions visible
        then (current and retired ones, each fid once); with ``fids`` those current rows, in
        one binary result (:meth:`_fetch_out`).
        """
        kinds = self._kinds(spec)
        types = {"fid": pa.int64()} | {c: ARROW_TYPES[kinds.get(c, "str")] for c in columns}
        if not self.has_layer(spec):
            return pa.table({n: pa.array([], type=t) for n, t in types.items()})
        cols = "".join(f", {q(c)}" for c in columns)
        if tx is None and fids is not None:
            return self._fetch_out(
                f"SELECT fid{cols} FROM {q(spec.name)} WHERE {_fid_in(fids)} ORDER BY fid", types
            )
        if tx is None:
            query = f"SELECT fid{cols} FROM {q(spec.name)} ORDER BY fid"
        else:
            query = self._visible_query(spec, int(tx), cols, "fid")
        return self._copy_out(query, types)

    def _visible_query(self, spec: LayerSpec, tx: int, cols: str, fid: str) -> str:
        """The row versions of ``spec`` visible at ``tx``: ``fid`` (named ``fid``), then ``cols``."""
        return (
            f"SELECT {fid}{cols} FROM {q(spec.name)} WHERE coalesce(gw_tx_from, 0) <= {tx} UNION ALL"
            f" SELECT gw_orig_fid{cols} FROM {q(spec.name + '_history')}"
            f" WHERE coalesce(gw_tx_from, 0) <= {tx} AND gw_tx_to > {tx} ORDER BY 1"
        )

    def read_geometry(self, spec: LayerSpec, fids: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """See :meth:`geo.store.interface.features.FeatureStore.read_geometry`.

        Decoded geometries (with the rows' units) are kept per process for each generation of
        the layer, read with that generation in one snapshot.
        """
        if not self.has_layer(spec):
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=object)
        kept = self.cache.region("geometry")
        cached = kept.get((spec.name, self.layer_generation(spec)), None)
        if cached is None:
            waits = not self._depth and not self._reading
            filling = self.cache.filling("geometry", spec.name) if waits else contextlib.nullcontext()
            with filling, self.snapshot():
                generation = self.layer_generation(spec)
                cached = kept.get((spec.name, generation), None)
                if cached is None:
                    cached = self._follow_geometry(spec, generation)
                if cached is None:
                    table = self._copy_out(
                        f"SELECT fid, encode(ST_AsBinary(geom), 'hex'), gw_unit FROM {q(spec.name)} ORDER BY fid",
                        {"fid": pa.int64(), "wkb": pa.string(), "unit": pa.string()},
                    )
                    cached = (
                        table.column("fid").to_numpy(),
                        _decode(table.column("wkb")),
                        np.asarray(table.column("unit").to_pylist(), dtype=object),
                    )
                    kept[(spec.name, generation)] = cached
        fid_arr, geoms, _ = cached
        if fids is not None:
            keep = np.isin(fid_arr, fids)
            return fid_arr[keep], geoms[keep]
        return fid_arr, geoms

    def read_geometry_rows(self, spec: LayerSpec, fids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """See :meth:`geo.store.interface.features.FeatureStore.read_geometry_rows`."""
        wanted = sorted_unique(np.asarray(fids, dtype=np.int64))
        if not self.has_layer(spec) or not len(wanted):
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=object)
        got, wkb = self._fetch_columns(
            f"SELECT fid, ST_AsBinary(geom) FROM {q(spec.name)} WHERE {_fid_in(wanted)} ORDER BY fid", 2
        )
        blobs = np.array(wkb, dtype=object)
        geoms = np.asarray(shapely.from_wkb(blobs), dtype=object) if len(blobs) else blobs
        return np.fromiter(got, dtype=np.int64, count=len(got)), geoms

    def _follow_geometry(
        self, spec: LayerSpec, generation: str
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """The decoded rows of ``generation`` (the layer's now, inside the caller's snapshot),
        made from the kept ones of an older generation by the change log (:meth:`changes`):
        only the rows touched since are read and decoded; None when nothing is kept or the log
        does not cover it."""
        if not changes_enabled():
            return None
        latest = self.cache.region("geometry").latest(spec.name)
        if latest is None:
            return None
        key, (old_fids, old_geoms, old_units) = latest
        since = str(key[1])  # type: ignore[index]
        changed = self.changes(spec, since)
        if changed is None or changed.generation != generation:
            return None
        fids, wkb, units = self._fetch_columns(
            f"SELECT fid, ST_AsBinary(geom), gw_unit FROM {q(spec.name)} WHERE {_fid_in(changed.fids)} ORDER BY fid",
            3,
        )
        plan = splice(old_fids, changed.fids, np.fromiter(fids, dtype=np.int64, count=len(fids)))
        blobs = np.array(wkb, dtype=object)
        out = (
            plan.fids,
            plan.numpy(old_geoms, np.asarray(shapely.from_wkb(blobs), dtype=object) if len(blobs) else blobs),
            plan.numpy(old_units, np.array(units, dtype=object)),
        )
        self.cache.region("geometry")[(spec.name, generation)] = out
        return out

    def _cached_geometry(self, spec: LayerSpec) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """This process's decoded copy of the current rows -- ``(fids, geometries, units)`` -- if
        it is of the layer's current generation."""
        return self.cache.region("geometry").get((spec.name, self.layer_generation(spec)), None)

    def _current_assignment(
        self, spec: LayerSpec, fids: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(fid, unit code)`` of the current rows, ordered by fid (from the kept copy when current)."""
        if not self.has_layer(spec):
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=object)
        cached = self._cached_geometry(spec)
        if cached is not None:
            out = cached[0], cached[2]
        else:
            table = self._copy_out(
                f"SELECT fid, gw_unit FROM {q(spec.name)} ORDER BY fid",
                {"fid": pa.int64(), "unit": pa.string()},
            )
            out = table.column("fid").to_numpy(), np.asarray(table.column("unit").to_pylist(), dtype=object)
        if fids is None:
            return out
        keep = np.isin(out[0], np.asarray(fids, dtype=np.int64))
        return out[0][keep], out[1][keep]

    def read_visible(
        self, spec: LayerSpec, tx: int, columns: list[str], geometry: bool = True
    ) -> tuple[pd.DataFrame, np.ndarray]:
        """See :meth:`geo.store.interface.features.FeatureStore.read_visible`.

        Current rows from before ``tx`` and history rows retired after it, ordered by fid.
        """
        names = ["fid", *columns]
        if not self.has_layer(spec):
            return self._frame(names, []), np.empty(0, dtype=object)
        geom = "encode(ST_AsBinary(geom), 'hex')" if geometry else "NULL"
        cols = f", {geom}" + (f", {self._select_list(spec, columns)}" if columns else "")
        rows = self._run(self._visible_query(spec, int(tx), cols, "fid")).fetchall()
        frame = self._frame(names, [(r[0], *r[2:]) for r in rows])
        geoms = (
            _decode(pa.array([r[1] for r in rows], type=pa.string()))
            if geometry
            else np.empty(0, dtype=object)
        )
        return frame, geoms

    def read_retired(self, spec: LayerSpec) -> tuple[np.ndarray, np.ndarray]:
        """See :meth:`geo.store.interface.features.FeatureStore.read_retired`.

        Each fid once (its content never changes), ordered by fid.
        """
        if not self.has_layer(spec):
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=object)
        table = self._copy_out(
            f"SELECT DISTINCT ON (gw_orig_fid) gw_orig_fid, encode(ST_AsBinary(geom), 'hex')"
            f" FROM {q(spec.name + '_history')} h"
            f" WHERE NOT EXISTS (SELECT 1 FROM {q(spec.name)} t WHERE t.fid = h.gw_orig_fid)"
            " ORDER BY gw_orig_fid, hid",
            {"fid": pa.int64(), "wkb": pa.string()},
        )
        return table.column("fid").to_numpy(), _decode(table.column("wkb"))


def _decode(hexes: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Shapely geometries from WKB, hex or raw (None for null)."""
    values = np.asarray(hexes.to_numpy(zero_copy_only=False), dtype=object)
    return np.asarray(shapely.from_wkb(values), dtype=object) if len(values) else np.empty(0, dtype=object)


#: Up to this many runs of consecutive fids are selected as ranges (each one range scan of the
#: primary key); more are listed in an array.
FID_RANGES = 64


def _fid_in(fids: np.ndarray) -> str:
    """A WHERE condition on ``fid`` being one of ``fids`` (sorted, unique integers, written
    out): the runs of consecutive fids as ranges when there are at most :data:`FID_RANGES` of
    them (an import's new rows are consecutive) -- a range is scanned on the primary key, where
    a long ``= ANY(array)`` made PostgreSQL scan the whole table; else the list, bounded by its
    range."""
    values = np.asarray(fids, dtype=np.int64)
    if not len(values):
        return "false"
    if len(values) > 1 and not bool(np.all(np.diff(values) > 0)):
        values = sorted_unique(values)
    breaks = np.flatnonzero(np.diff(values) != 1)
    if len(breaks) < FID_RANGES:
        starts = values[np.concatenate([[0], breaks + 1])].tolist()
        ends = values[np.concatenate([breaks, [len(values) - 1]])].tolist()
        ranges = [f"fid BETWEEN {a} AND {b}" for a, b in zip(starts, ends, strict=True)]
        return ranges[0] if len(ranges) == 1 else "(" + " OR ".join(ranges) + ")"
    listed = "fid = ANY('{" + ",".join(map(str, values.tolist())) + "}'::bigint[])"
    return f"fid BETWEEN {int(values.min())} AND {int(values.max())} AND {listed}"
