"""Reading feature rows: attributes, Arrow tables (large layers through GDAL in a helper
process), decoded geometries kept per layer generation, row versions at a transaction."""

from __future__ import annotations

import atexit
import contextlib
import itertools
import os
import threading
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyogrio

from geo.reading import untrusted
from geo.store.gpkg.blobs import decode_geometries
from geo.store.gpkg.changes import select_fids
from geo.store.gpkg.connection import scalar
from geo.store.gpkg.tables import GpkgTables
from geo.store.interface.changes import enabled as changes_enabled
from geo.store.interface.changes import splice
from layers.base import LayerSpec


def unique_fids(fids: Any) -> np.ndarray:
    """The distinct ``fids`` in ascending order (int64), by a sort: ``np.unique`` of 227,000
    integers took 0.6--1.3 s in numpy 2.4 (its hashing way), a sort 0.02 s."""
    a = np.sort(np.asarray(fids, dtype=np.int64))
    if len(a) < 2:
        return a
    return a[np.concatenate(([True], a[1:] != a[:-1]))]


class GpkgFeatureReads(GpkgTables):
    """The read side of :class:`geo.store.interface.features.FeatureStore` on the GeoPackage."""

    def read_attributes(self, spec: LayerSpec, columns: list[str] | None = None) -> pd.DataFrame:
        """See :meth:`geo.store.interface.features.FeatureStore.read_attributes`.

        Without ``columns``: the layer's stored fields plus ``gw_key``, ``gw_batch``, ``gw_unit``
        and ``gw_area`` (m², store CRS).  Object columns, ordered by fid; empty (with those
        columns) when the layer has no table.
        """
        cols = (
            columns
            if columns is not None
            else [*self._columns(spec), "gw_key", "gw_batch", "gw_unit", "gw_area"]
        )
        if not self.has_layer(spec):
            return pd.DataFrame({c: pd.Series(dtype=object) for c in ["fid", *cols]})
        qcols = ", ".join(["fid", *[f'"{c}"' for c in cols]])
        cur = self.conn.execute(f'SELECT {qcols} FROM "{spec.name}" ORDER BY fid')
        data = cur.fetchall()
        names = ["fid", *cols]
        if not data:
            return pd.DataFrame({c: pd.Series(dtype=object) for c in names})
        arrays = list(zip(*data, strict=True))
        return pd.DataFrame(
            {name: np.array(arr, dtype=object) for name, arr in zip(names, arrays, strict=True)}
        )

    def read_rows(self, spec: LayerSpec, fids: np.ndarray) -> pd.DataFrame:
        """Attributes (with ``fid``, ``gw_unit``) of the given current rows, in fid order."""
        cols = [*self._columns(spec), "gw_unit"]
        names = ["fid", *cols]
        if not self.has_layer(spec) or len(fids) == 0:
            return pd.DataFrame({c: pd.Series(dtype=object) for c in names})
        qcols = ", ".join(["fid", *[f'"{c}"' for c in cols]])
        rows = self._rows_of_fids(f'SELECT {qcols} FROM "{spec.name}"', fids)
        return pd.DataFrame({n: np.array([r[i] for r in rows], dtype=object) for i, n in enumerate(names)})

    def rows_by_id(self, spec: LayerSpec, ids: np.ndarray) -> pd.DataFrame:
        """See :meth:`geo.store.interface.features.FeatureStore.rows_by_id`.

        A feature whose first row version is current has no ``gw_id`` (its fid is its id); a
        later one is found on the ``gw_id`` index."""
        cols = ["gw_key", "gw_unit", "gw_batch", *self._columns(spec)]
        names = ["id", "fid", "version", *cols]
        if not self.has_layer(spec) or len(ids) == 0:
            return pd.DataFrame({c: pd.Series(dtype=object) for c in names})
        with_ids = self._has_id_columns(spec.name)
        qcols = ", ".join(f'"{c}"' for c in cols)
        wanted = unique_fids(ids).tolist()
        rows: list[Any] = []
        for start in range(0, len(wanted), 400):
            chunk = wanted[start : start + 400]
            marks = ",".join("?" * len(chunk))
            if with_ids:
                rows += self.conn.execute(
                    f'SELECT fid, fid, coalesce(gw_version, 1), {qcols} FROM "{spec.name}" WHERE fid IN ({marks})'
                    " AND gw_id IS NULL"
                    f' UNION ALL SELECT gw_id, fid, coalesce(gw_version, 1), {qcols} FROM "{spec.name}"'
                    f" WHERE gw_id IN ({marks})",
                    chunk + chunk,
                ).fetchall()
            else:
                rows += self.conn.execute(
                    f'SELECT fid, fid, 1, {qcols} FROM "{spec.name}" WHERE fid IN ({marks})', chunk
                ).fetchall()
        rows.sort(key=lambda r: r[0])
        out = pd.DataFrame({n: np.array([r[i] for r in rows], dtype=object) for i, n in enumerate(names)})
        for c in ("id", "fid", "version"):
            out[c] = out[c].astype(np.int64)
        return out

    def feature_versions(self, spec: LayerSpec, feature_id: int) -> pd.DataFrame:
        """See :meth:`geo.store.interface.features.FeatureStore.feature_versions`."""
        cols = ["gw_unit", *self._columns(spec)]
        names = ["version", "fid", "gw_batch", "gw_superseded_by", "gw_tx_from", "gw_tx_to", *cols]
        if not self.has_layer(spec):
            return pd.DataFrame({c: pd.Series(dtype=object) for c in names})
        qcols = ", ".join(f'"{c}"' for c in cols)
        ident = int(feature_id)
        if self._has_id_columns(spec.name):
            rows = self.conn.execute(
                f"SELECT coalesce(gw_version, 1), fid, gw_batch, NULL, gw_tx_from, NULL, {qcols}"
                f' FROM "{spec.name}" WHERE gw_id = ? OR (fid = ? AND gw_id IS NULL)'
                f" UNION ALL SELECT coalesce(gw_version, 1), gw_orig_fid, gw_batch, gw_superseded_by, gw_tx_from,"
                f' gw_tx_to, {qcols} FROM "{spec.name}_history" WHERE gw_id = ? OR (gw_orig_fid = ? AND gw_id IS NULL)',
                (ident, ident, ident, ident),
            ).fetchall()
        else:
            rows = self.conn.execute(
                f'SELECT 1, fid, gw_batch, NULL, gw_tx_from, NULL, {qcols} FROM "{spec.name}" WHERE fid = ?'
                f" UNION ALL SELECT 1, gw_orig_fid, gw_batch, gw_superseded_by, gw_tx_from, gw_tx_to, {qcols}"
                f' FROM "{spec.name}_history" WHERE gw_orig_fid = ?',
                (ident, ident),
            ).fetchall()
        rows.sort(key=lambda r: (r[4] or 0, r[5] is None, r[5] or 0))
        return pd.DataFrame({n: np.array([r[i] for r in rows], dtype=object) for i, n in enumerate(names)})

    def ids_of_rows(self, spec: LayerSpec, fids: np.ndarray) -> pd.DataFrame:
        """See :meth:`geo.store.interface.features.FeatureStore.ids_of_rows`."""
        if not self.has_layer(spec) or len(fids) == 0:
            return pd.DataFrame(
                {"fid": np.empty(0, np.int64), "id": np.empty(0, np.int64), "version": np.empty(0, np.int64)}
            )
        ident = (
            "coalesce(gw_id, fid), coalesce(gw_version, 1)" if self._has_id_columns(spec.name) else "fid, 1"
        )
        rows = self._rows_of_fids(f'SELECT fid, {ident} FROM "{spec.name}"', fids)
        arr = np.array(rows, dtype=np.int64).reshape(-1, 3)
        return pd.DataFrame({"fid": arr[:, 0], "id": arr[:, 1], "version": arr[:, 2]})

    def ids_of_keys(self, spec: LayerSpec, keys: list[str]) -> dict[str, int]:
        """See :meth:`geo.store.interface.features.FeatureStore.ids_of_keys`."""
        wanted = sorted({str(k) for k in keys})
        if not self.has_layer(spec) or not wanted:
            return {}
        ident = "coalesce(gw_id, fid)" if self._has_id_columns(spec.name) else "fid"
        out: dict[str, int] = {}
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            for key, ident_value in self.conn.execute(
                f'SELECT gw_key, {ident} FROM "{spec.name}" WHERE gw_key IN ({",".join("?" * len(chunk))})',
                chunk,
            ):
                out[str(key)] = int(ident_value)
        return out

    def _rows_of_fids(self, select: str, fids: np.ndarray) -> list[Any]:
        """The rows ``select`` (whose first column is ``fid``) gives for ``fids``, asked in chunks
        of 500 (SQLite's bound on parameters), ordered by fid."""
        wanted = unique_fids(fids).tolist()
        rows: list[Any] = []
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            rows += self.conn.execute(
                f"{select} WHERE fid IN ({','.join('?' * len(chunk))})", chunk
            ).fetchall()
        rows.sort(key=lambda r: r[0])
        return rows

    def _has_id_columns(self, name: str) -> bool:
        """Whether the layer's table has the stable id columns (a read-only store of schema 8 or
        earlier has not: its rows are their features' first versions)."""
        return any(r[1] == "gw_id" for r in self.conn.execute(f'PRAGMA table_info("{name}")'))

    def read_table(
        self, spec: LayerSpec, columns: list[str], tx: int | None = None, fids: np.ndarray | None = None
    ) -> pa.Table:
        """Current rows as an Arrow table (``fid`` plus ``columns``), ordered by fid; with ``tx``
        the row versions visible at that tx instead (current and retired ones, each fid once);
        with ``fids`` (sorted, unique; not with ``tx``) only those of the current rows.

        Large layers are read through GDAL's Arrow interface, about ten times faster than
        fetching a million rows through SQLite into Python objects -- in a helper process
        (:func:`_gdal_reader`), never in this one: GDAL carries its own copy of SQLite, and
        POSIX file locks belong to a whole process, so a GDAL read here would silently drop
        the locks this process's other connections hold on the store (seen under load as
        commits reported failed though written, and a malformed database).  Small layers,
        reads inside a transaction (GDAL cannot see uncommitted rows) and reads inside a
        snapshot (GDAL would read the newest committed state, not the snapshot's) use this
        connection.
        """
        kinds: dict[str, str] = {f.name: str(f.kind) for f in spec.stored_fields} | {
            "gw_unit": "str",
            "gw_key": "str",
            "gw_batch": "int",
            "gw_area": "float",
        }
        if not self.has_layer(spec):
            return _empty_table(columns, kinds)
        if tx is not None:
            return self._read_table_at(spec, columns, kinds, tx)
        if fids is not None:
            select = "SELECT " + ", ".join(["fid", *[f'"{c}"' for c in columns]]) + f' FROM "{spec.name}"'
            return _rows_table(
                select_fids(self.conn, select, np.asarray(fids, dtype=np.int64)), columns, kinds
            )
        # not inside a snapshot: in WAL GDAL's connection would read a state newer than the
        # snapshot's (with a rollback journal it would wait for a commit the snapshot holds back)
        if not self._depth and not self._reading and self.layer_count(spec) >= GDAL_MIN_ROWS:
            before = self.revision()
            try:
                table = _gdal_reader().submit(_read_arrow, str(self.path), spec.name, columns).result()
            except Exception:  # GDAL cannot read it for some reason: use SQLite
                table = None
            if table is not None and self.revision() == before:
                return _conform(table, columns, kinds)
        qcols = ", ".join(["fid", *[f'"{c}"' for c in columns]])
        rows = self.conn.execute(f'SELECT {qcols} FROM "{spec.name}" ORDER BY fid').fetchall()
        return _rows_table(rows, columns, kinds)

    def _read_table_at(self, spec: LayerSpec, columns: list[str], kinds: dict[str, str], tx: int) -> pa.Table:
        qcols = ", ".join(f'"{c}"' for c in columns)
        sep = ", " if columns else ""
        rows = self.conn.execute(
            f'SELECT fid{sep}{qcols} FROM "{spec.name}" WHERE coalesce(gw_tx_from, 0) <= ?1 UNION ALL'
            f' SELECT gw_orig_fid{sep}{qcols} FROM "{spec.name}_history"'
            " WHERE coalesce(gw_tx_from, 0) <= ?1 AND gw_tx_to > ?1 ORDER BY 1",
            (tx,),
        ).fetchall()
        data = list(zip(*rows, strict=True)) if rows else [[] for _ in range(len(columns) + 1)]
        arrays = {"fid": pa.array(data[0], type=pa.int64())}
        for c, values in zip(columns, data[1:], strict=True):
            arrays[c] = _arrow_column(list(values), kinds.get(c, "str"))
        return pa.table(arrays)

    def read_geometry(self, spec: LayerSpec, fids: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(fid, geometry)`` of the current rows in the store CRS.

        Decoded geometries (with the rows' assigned units) are kept per process for each
        generation of the layer -- a random token replaced whenever its rows, geometries or
        assignments change -- and writes from this process keep that copy current, so
        re-assigning after a grid change neither reads nor decodes the layer again.
        """
        if not self.has_layer(spec):
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=object)
        kept = self.cache.region("geometry")
        key = (spec.name, self.layer_generation(spec))
        cached = kept.get(key, None)
        if cached is None:
            # Neither a writer nor a snapshot waits for a reader's fill: the reader may be
            # waiting for the writer's commit, or for one the snapshot holds back.
            waits = not self._depth and not self._reading
            with self.cache.filling("geometry", spec.name) if waits else contextlib.nullcontext():
                cached = kept.get(key, None)
                if cached is None:
                    cached = self._follow_geometry(spec)
                if cached is None:
                    # the generation in the same statement as the rows: one state of the layer,
                    # kept under its own generation even when a commit landed since ``key``
                    read = _decode_rows(
                        self.conn.execute(
                            f'SELECT fid, geom, gw_unit, (SELECT value FROM gw_meta WHERE key=?) FROM "{spec.name}"'
                            " ORDER BY fid",
                            (f"gen:{spec.name}",),
                        )
                    )
                    if read is None:
                        return np.empty(0, dtype=np.int64), np.empty(0, dtype=object)
                    cached, generation = read
                    self._cache_geometry(spec, *cached, generation=generation)
        fid_arr, geoms, _ = cached
        if fids is not None:
            keep = np.isin(fid_arr, fids)
            return fid_arr[keep], geoms[keep]
        return fid_arr, geoms

    def read_geometry_rows(self, spec: LayerSpec, fids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """See :meth:`geo.store.interface.features.FeatureStore.read_geometry_rows`."""
        if not self.has_layer(spec) or not len(fids):
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=object)
        rows = select_fids(
            self.conn, f'SELECT fid, geom FROM "{spec.name}"', np.asarray(fids, dtype=np.int64)
        )
        out = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        return out, _decode([r[1] for r in rows])

    def _follow_geometry(self, spec: LayerSpec) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """The decoded rows of the layer's generation now, made from the kept ones of an older
        generation by the change log (:meth:`changes`): only the rows touched since are read
        and decoded; None when nothing is kept or the log does not cover it."""
        if not changes_enabled():
            return None
        # (a write transaction's own rows first: see geo.store.cache.Stage)
        latest = self.cache.region("geometry").latest(spec.name)
        if latest is None:
            return None
        key, (old_fids, old_geoms, old_units) = latest
        with self.snapshot():
            changed = self.changes(spec, str(key[1]))  # type: ignore[index]
            if changed is None:
                return None
            rows = select_fids(self.conn, f'SELECT fid, geom, gw_unit FROM "{spec.name}"', changed.fids)
        new_fids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        plan = splice(old_fids, changed.fids, new_fids)
        out = (
            plan.fids,
            plan.numpy(old_geoms, _decode([r[1] for r in rows])),
            plan.numpy(old_units, np.array([r[2] for r in rows], dtype=object)),
        )
        self._cache_geometry(spec, *out, generation=changed.generation)
        return out

    def _cached_geometry(self, spec: LayerSpec) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """This process's decoded copy of the current rows of ``spec`` -- ``(fids, geometries,
        units)`` -- if it is of the layer's current generation."""
        return self.cache.region("geometry").get((spec.name, self.layer_generation(spec)), None)

    def _cache_geometry(
        self,
        spec: LayerSpec,
        fids: np.ndarray,
        geoms: np.ndarray,
        units: np.ndarray,
        generation: str | None = None,
    ) -> None:
        """Keep the decoded rows of ``generation`` (default: the one this handle reads now,
        right inside a write transaction)."""
        gen = self.layer_generation(spec) if generation is None else generation
        # replaces the layer's older generation (see geo.store.cache.REGIONS); inside a write
        # transaction only once it commits (geo.store.cache.Stage)
        self.cache.region("geometry")[(spec.name, gen)] = (fids, geoms, units)

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
            rows = self.conn.execute(f'SELECT fid, gw_unit FROM "{spec.name}" ORDER BY fid').fetchall()
            out = (
                np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows)),
                np.array([r[1] for r in rows], dtype=object),
            )
        if fids is None:
            return out
        keep = np.isin(out[0], np.asarray(fids, dtype=np.int64))
        return out[0][keep], out[1][keep]

    def layer_count(self, spec: LayerSpec) -> int:
        """See :meth:`geo.store.interface.features.FeatureStore.layer_count`.

        Counts the rows of the layer's table.
        """
        if not self.has_layer(spec):
            return 0
        return int(scalar(self.conn, f'SELECT count(*) FROM "{spec.name}"'))

    def read_visible(
        self, spec: LayerSpec, tx: int, columns: list[str], geometry: bool = True
    ) -> tuple[pd.DataFrame, np.ndarray]:
        """The row versions of ``spec`` visible at ``tx``: ``fid`` plus ``columns``, and their
        geometry (empty without ``geometry``), ordered by fid."""
        names = ["fid", *columns]
        if not self.has_layer(spec):
            return pd.DataFrame({c: pd.Series(dtype=object) for c in names}), np.empty(0, dtype=object)
        qcols = ", ".join(["geom" if geometry else "NULL", *[f'"{c}"' for c in columns]])
        rows = self.conn.execute(
            f'SELECT fid, {qcols} FROM "{spec.name}" WHERE coalesce(gw_tx_from, 0) <= ?1 UNION ALL'
            f' SELECT gw_orig_fid, {qcols} FROM "{spec.name}_history"'
            " WHERE coalesce(gw_tx_from, 0) <= ?1 AND gw_tx_to > ?1 ORDER BY 1",
            (tx,),
        ).fetchall()
        if not rows:
            return pd.DataFrame({c: pd.Series(dtype=object) for c in names}), np.empty(0, dtype=object)
        geoms = (
            decode_geometries([r[1] for r in rows])  # type: ignore[misc]
            if geometry
            else np.empty(0, dtype=object)
        )
        frame = pd.DataFrame(
            {
                name: np.array([r[i + (1 if i else 0)] for r in rows], dtype=object)
                for i, name in enumerate(names)
            }
        )
        return frame, np.asarray(geoms, dtype=object)

    def read_retired(self, spec: LayerSpec) -> tuple[np.ndarray, np.ndarray]:
        """``(fid, geometry)`` of the row versions in the history whose fid is no current row's
        (each fid once: its content never changes), ordered by fid."""
        if not self.has_layer(spec):
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=object)
        rows = self.conn.execute(
            f'SELECT gw_orig_fid, geom, min(fid) FROM "{spec.name}_history" h'
            f' WHERE NOT EXISTS (SELECT 1 FROM "{spec.name}" t WHERE t.fid = h.gw_orig_fid)'
            " GROUP BY gw_orig_fid ORDER BY gw_orig_fid"
        ).fetchall()
        if not rows:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=object)
        return (
            np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows)),
            np.asarray(decode_geometries([r[1] for r in rows]), dtype=object),  # type: ignore[misc]
        )


def _decode(blobs: list[Any]) -> np.ndarray:
    if not blobs:
        return np.empty(0, dtype=object)
    return np.asarray(decode_geometries(blobs), dtype=object)


_ARROW_TYPES = {"str": pa.string(), "int": pa.int64(), "float": pa.float64(), "date": pa.date32()}


def _arrow_column(values: list[Any], kind: str) -> pa.Array:
    if kind == "date":
        return pc.cast(pa.array(values, type=pa.string()), pa.date32())
    return pa.array(values, type=_ARROW_TYPES[kind])


def _rows_table(rows: list[Any], columns: list[str], kinds: dict[str, str]) -> pa.Table:
    """``rows`` (fid, then ``columns``) as an Arrow table typed by ``kinds``."""
    data: list[Any] = list(zip(*rows, strict=True)) if rows else [[] for _ in range(len(columns) + 1)]
    arrays = {"fid": pa.array(data[0], type=pa.int64())}
    for c, values in zip(columns, data[1:], strict=True):
        arrays[c] = _arrow_column(list(values), kinds.get(c, "str"))
    return pa.table(arrays)


def _empty_table(columns: list[str], kinds: dict[str, str]) -> pa.Table:
    arrays = {"fid": pa.array([], type=pa.int64())}
    for c in columns:
        arrays[c] = pa.array([], type=_ARROW_TYPES[kinds.get(c, "str")])
    return pa.table(arrays)


def _conform(table: pa.Table, columns: list[str], kinds: dict[str, str]) -> pa.Table:
    """Columns in the asked order and types (GDAL may type an all-empty column differently)."""
    arrays = {"fid": table.column("fid").cast(pa.int64())}
    for c in columns:
        col = table.column(c)
        want = _ARROW_TYPES[kinds.get(c, "str")]
        if col.type != want:
            col = col.cast(pa.string()).cast(want) if kinds.get(c) == "date" else col.cast(want)
        arrays[c] = col
    return pa.table(arrays)


#: Layers with at least this many rows are read through GDAL in a helper process (see
#: GpkgStore.read_table): below it, fetching through SQLite costs less than the round trip.
GDAL_MIN_ROWS = 100_000

#: rows of one step of :func:`_decode_rows`
DECODE_ROWS = 250_000


def _decode_rows(cursor: Any) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], str] | None:
    """``((fid, geometry, unit), generation)`` of the rows ``(fid, geom, gw_unit, generation)``
    of one statement (None when it has none), taken from the cursor ``DECODE_ROWS`` at a time.

    One statement is one state of the layer; taken in steps, the rows' Python objects (about
    400 bytes a row) never exist for more than one step at a time -- fetched at once, ten
    million rows made about 4 GB before a geometry was decoded.  Equal unit codes are made
    one object (a layer of ten million rows has a few hundred thousand distinct codes).
    """
    fids: list[np.ndarray] = []
    geoms: list[np.ndarray] = []
    units: list[np.ndarray] = []
    same: dict[Any, Any] = {}
    generation: str | None = None
    while True:
        rows = list(itertools.islice(cursor, DECODE_ROWS))
        if not rows:
            break
        if generation is None:
            generation = str(rows[0][3] or "")
        fids.append(np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows)))
        geoms.append(decode_geometries([r[1] for r in rows]))
        units.append(np.array([same.setdefault(r[2], r[2]) for r in rows], dtype=object))
        del rows
    if generation is None:
        return None
    if len(fids) == 1:
        return (fids[0], geoms[0], units[0]), generation
    return (np.concatenate(fids), np.concatenate(geoms), np.concatenate(units)), generation


_READER: tuple[int, ProcessPoolExecutor] | None = None
_READER_LOCK = threading.Lock()


def _gdal_reader() -> ProcessPoolExecutor:
    """This process's helper process for GDAL reads of the store (started on first use)."""
    global _READER
    with _READER_LOCK:
        if _READER is None or _READER[0] != os.getpid():
            executor = ProcessPoolExecutor(
                1,
                mp_context=untrusted.process_context(),
                initializer=untrusted.exit_with,  # the helper must not outlive this process
                initargs=(os.getpid(),),
            )
            atexit.register(executor.shutdown, wait=True, cancel_futures=True)
            _READER = (os.getpid(), executor)
        return _READER[1]


def _read_arrow(path: str, layer: str, columns: list[str]) -> pa.Table:
    """Runs in the helper process: ``fid`` and ``columns`` of ``layer`` as Arrow."""
    _, table = pyogrio.read_arrow(path, layer=layer, columns=columns, read_geometry=False, return_fids=True)
    return table
