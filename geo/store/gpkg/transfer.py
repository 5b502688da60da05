"""The GeoPackage store's raw tables out and in (see :mod:`geo.store.interface.transfer`):
dumped table by table in batches of rows, geometries as ISO WKB; loaded into an empty store in
one transaction, ids kept, the layer tables made by :mod:`geo.store.gpkg.tables` (with their
R-tree, filled as an import fills it) and each layer's fid sequence carried over."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import apsw
import numpy as np
import pyarrow as pa
import shapely

import layers
from geo.errors import StoreError
from geo.store import clock
from geo.store.gpkg.blobs import decode_geometries, encode_geometries
from geo.store.gpkg.connection import _store_error, scalar_args
from geo.store.gpkg.outbox import OUTBOX_TABLES
from geo.store.gpkg.patrols import PATROLS_SQL
from geo.store.gpkg.photos import PHOTOS_SQL
from geo.store.gpkg.spatial import (
    create_typed_view,
    declare_type,
    declared_type,
    index_rows,
    stored_type_names,
    writer_indexes,
)
from geo.store.gpkg.tables import GpkgTables
from geo.store.gpkg.tasks import TASKS_SQL
from geo.store.gpkg.value_maps import _VALUE_MAPS_SQL
from geo.store.interface.transfer import (
    BATCH_ROWS,
    FIXED,
    FIXED_TABLES,
    UNUSABLE_KEY,
    neutral_tables,
    to_batch,
)
from geo.store.typed_views import ANY, VIEW_TYPES, view_name, views_needed
from layers.base import LayerSpec

#: meta values that belong to this file, not to the data it holds
_OWN_META = ("schema", UNUSABLE_KEY)
_ORDER = {
    "tx": "id",
    "batches": "id",
    "audit": "id",
    "value_maps": "id",
    "tokens": "id",
    "grid_versions": "id",
}


def _order(columns: dict[str, pa.DataType]) -> str:
    """A table's rows in the order every backend dumps them: by id, else by every column
    (text by its bytes)."""
    return "id" if "id" in columns else ", ".join(_q(c) for c in columns)


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class GpkgTransfer(GpkgTables):
    """:class:`geo.store.interface.transfer.StoreTransfer` for the GeoPackage."""

    # out -----------------------------------------------------------------------------------
    def _registered(self) -> list[LayerSpec]:
        return [s for s in layers.all_layers() if self.has_layer(s)]

    def unknown_layers(self) -> list[str]:
        """See :meth:`geo.store.interface.transfer.StoreTransfer.unknown_layers`.

        Feature tables the GeoPackage declares (``gpkg_contents``) that no registered layer
        names, leaving out the typed views of a declared table.
        """
        rows = self.conn.execute("SELECT table_name FROM gpkg_contents WHERE data_type='features'")
        declared = {str(r[0]) for r in rows}
        views = {view_name(name, t) for name in declared for t in VIEW_TYPES}
        known = {s.name for s in layers.all_layers()}
        return sorted(declared - known - views)

    def _table_columns(self, table: str) -> set[str]:
        return {str(r[1]) for r in self.conn.execute(f"PRAGMA table_info({_q(table)})")}

    def _select(self, table: str, columns: dict[str, pa.DataType], rename: dict[str, str]) -> str:
        have = self._table_columns(table)
        parts = []
        for name in columns:
            stored = rename.get(name, name)
            parts.append(_q(stored) if stored in have else "NULL")
        return f"SELECT {', '.join(parts)} FROM {_q(table)}"

    def _batches(
        self, query: str, columns: dict[str, pa.DataType], args: tuple[Any, ...] = ()
    ) -> Iterator[pa.RecordBatch]:
        cursor = self.conn.execute(query, args)
        geom = list(columns).index("geom") if "geom" in columns else None
        while True:
            rows = list(itertools.islice(cursor, BATCH_ROWS))
            if not rows:
                return
            if geom is not None:
                wkb = shapely.to_wkb(decode_geometries([r[geom] for r in rows]), flavor="iso")
                rows = [(*r[:geom], w, *r[geom + 1 :]) for r, w in zip(rows, wkb.tolist(), strict=True)]
            yield to_batch(rows, columns)

    def dump_tables(self) -> Iterator[tuple[str, pa.RecordBatch]]:
        """See :meth:`geo.store.interface.transfer.StoreTransfer.dump_tables`."""
        tables = neutral_tables()
        specs = self._registered()
        for name, columns in FIXED.items():
            if name == "layers":
                yield from ((name, b) for b in self._dump_layers(specs))
                continue
            table = FIXED_TABLES[name]
            if not self._has_table(table):
                continue
            query = self._select(table, columns, {})
            if name == "meta":
                query += f" WHERE key NOT IN ({', '.join('?' * len(_OWN_META))}) ORDER BY {_order(columns)}"
                yield from ((name, b) for b in self._batches(query, columns, _OWN_META))
                continue
            query += f" ORDER BY {_order(columns)}"
            yield from ((name, b) for b in self._batches(query, columns))
        for spec in specs:
            for name, rename, order in (
                (spec.name, {}, "fid"),
                (f"{spec.name}_history", {"hid": "fid"}, "fid"),
                (f"{spec.name}_assign", {}, "version, fid"),
            ):
                if name not in tables or not self._has_table(name):
                    continue
                query = self._select(name, tables[name], rename) + f" ORDER BY {order}"
                yield from ((name, b) for b in self._batches(query, tables[name]))

    def _dump_layers(self, specs: list[LayerSpec]) -> Iterator[pa.RecordBatch]:
        rows = []
        for spec in specs:
            extent = self.conn.execute(
                "SELECT min_x, min_y, max_x, max_y FROM gpkg_contents WHERE table_name=?", (spec.name,)
            ).fetchone() or (None, None, None, None)
            rows.append(
                (
                    spec.name,
                    declared_type(self.conn, spec.name) or "GEOMETRY",
                    self._last_fid(spec.name),
                    *extent,
                )
            )
        if rows:
            yield to_batch(rows, FIXED["layers"])

    def _last_fid(self, name: str) -> int:
        """The last fid the layer has given a row version (its ``AUTOINCREMENT`` sequence)."""
        seq = scalar_args(self.conn, "SELECT seq FROM sqlite_sequence WHERE name=?", (name,))
        top = scalar_args(self.conn, f"SELECT coalesce(max(fid), 0) FROM {_q(name)}", ())
        old = 0
        if self._has_table(f"{name}_history"):
            old = scalar_args(
                self.conn, f"SELECT coalesce(max(gw_orig_fid), 0) FROM {_q(name + '_history')}", ()
            )
        return max(int(seq or 0), int(top or 0), int(old or 0))

    def table_counts(self) -> dict[str, int]:
        """See :meth:`geo.store.interface.transfer.StoreTransfer.table_counts`."""
        counts: dict[str, int] = {}
        specs = self._registered()
        for name in FIXED:
            if name == "layers":
                counts[name] = len(specs)
                continue
            table = FIXED_TABLES[name]
            if not self._has_table(table):
                continue
            where = f" WHERE key NOT IN ({', '.join('?' * len(_OWN_META))})" if name == "meta" else ""
            args = _OWN_META if name == "meta" else ()
            counts[name] = int(scalar_args(self.conn, f"SELECT count(*) FROM {table}{where}", args))
        for spec in specs:
            for name in (spec.name, f"{spec.name}_history", f"{spec.name}_assign"):
                if name in neutral_tables() and self._has_table(name):
                    counts[name] = int(scalar_args(self.conn, f"SELECT count(*) FROM {_q(name)}", ()))
        return {k: v for k, v in counts.items() if v}

    def is_empty(self) -> bool:
        """See :meth:`geo.store.interface.transfer.StoreTransfer.is_empty`."""
        counts = self.table_counts()
        return not any(v for k, v in counts.items() if k != "meta") and not any(
            str(r[0]).startswith("gen:") or r[0] == UNUSABLE_KEY
            for r in self.conn.execute("SELECT key FROM gw_meta")
        )

    # scopes and the mark ---------------------------------------------------------------------
    @contextmanager
    def hold_writes(self) -> Iterator[None]:
        """See :meth:`geo.store.interface.transfer.StoreTransfer.hold_writes`.

        ``BEGIN IMMEDIATE`` without a write: the store's write lock is held, so every writer
        waits for it (and gives up as busy after its timeout) while readers go on; what is read
        inside is one state.  A store no one may write (read-only, or opened immutable) is read
        in a plain read transaction.  :meth:`snapshot` inside is this scope.
        """
        if self._depth or self._reading:
            raise RuntimeError("hold_writes() cannot start inside another scope")
        conn = self.conn
        try:
            conn.execute("BEGIN" if self.journal == "immutable" else "BEGIN IMMEDIATE")
        except apsw.ReadOnlyError:
            conn.execute("BEGIN")
        except apsw.Error as exc:
            raise _store_error(exc, conn.system_errno) from exc
        self._reading = True
        try:
            yield
        finally:
            self._reading = False
            with contextlib.suppress(apsw.Error):
                conn.execute("ROLLBACK")

    def unusable(self) -> str | None:
        """See :meth:`geo.store.interface.transfer.StoreTransfer.unusable`."""
        return self._meta(UNUSABLE_KEY) if self._has_meta() else None

    def set_unusable(self, reason: str | None) -> None:
        """See :meth:`geo.store.interface.transfer.StoreTransfer.set_unusable`."""
        with self.admin_transaction():
            if reason is None:
                self.conn.execute("DELETE FROM gw_meta WHERE key=?", (UNUSABLE_KEY,))
            else:
                self.conn.execute("INSERT OR REPLACE INTO gw_meta VALUES (?, ?)", (UNUSABLE_KEY, reason))

    # in ------------------------------------------------------------------------------------
    def load_tables(self, batches: Iterable[tuple[str, pa.RecordBatch]], unusable: str) -> dict[str, int]:
        """See :meth:`geo.store.interface.transfer.StoreTransfer.load_tables`."""
        if not self.is_empty():
            raise StoreError("目标存储不是空的", "the store copied into is not empty", code="store_not_empty")
        specs = {s.name: s for s in layers.all_layers()}
        written: dict[str, int] = {}
        last_fids: dict[str, int] = {}
        with self.transaction():
            conn = self.conn
            conn.execute("INSERT OR REPLACE INTO gw_meta VALUES (?, ?)", (UNUSABLE_KEY, unusable))
            conn.execute(_VALUE_MAPS_SQL)
            # made on first use elsewhere; a copy may bring rows
            for stmt in (*OUTBOX_TABLES, *PHOTOS_SQL, *PATROLS_SQL, *TASKS_SQL):
                conn.execute(stmt)
            for name, batch in batches:
                written[name] = written.get(name, 0) + batch.num_rows
                if name == "meta":
                    self._load_meta(batch)
                elif name == "layers":
                    for row in batch.to_pylist():
                        self._load_layer(specs[row["name"]], row)
                        last_fids[row["name"]] = int(row["last_fid"] or 0)
                elif name in FIXED_TABLES:
                    self._insert(FIXED_TABLES[name], batch)
                else:
                    self._load_rows(name, batch)
            stamp = clock.now_iso()
            for name in last_fids:  # the typed views of a layer holding several geometry types
                if declared_type(conn, name) == ANY:
                    for type_name in views_needed(ANY, None, stored_type_names(conn, name)):
                        create_typed_view(conn, specs[name], type_name, stamp)
            for name, last in last_fids.items():
                have = scalar_args(conn, "SELECT seq FROM sqlite_sequence WHERE name=?", (name,))
                if have is None:
                    conn.execute("INSERT INTO sqlite_sequence (name, seq) VALUES (?, ?)", (name, last))
                elif int(have) < last:
                    conn.execute("UPDATE sqlite_sequence SET seq=? WHERE name=?", (last, name))
        return written

    def _load_meta(self, batch: pa.RecordBatch) -> None:
        for row in batch.to_pylist():
            if row["key"] in _OWN_META:
                continue
            if row["key"] == "srs_epsg" and row["value"]:
                self._ensure_srs(int(row["value"]))
            self.conn.execute("INSERT OR REPLACE INTO gw_meta VALUES (?, ?)", (row["key"], row["value"]))

    def _load_layer(self, spec: LayerSpec, row: dict[str, Any]) -> None:
        self._ensure_layer(spec)
        declare_type(self.conn, spec.name, str(row["geometry_type"]).upper())
        self.conn.execute(
            "UPDATE gpkg_contents SET min_x=?, min_y=?, max_x=?, max_y=? WHERE table_name=?",
            (row["min_x"], row["min_y"], row["max_x"], row["max_y"], spec.name),
        )

    def _insert(self, table: str, batch: pa.RecordBatch, rename: dict[str, str] | None = None) -> None:
        if not batch.num_rows:
            return
        rename = rename or {}
        names = [rename.get(n, n) for n in batch.schema.names]
        columns = [batch.column(i).to_pylist() for i in range(batch.num_columns)]
        marks = ", ".join("?" * len(names))
        self.conn.executemany(
            f"INSERT INTO {_q(table)} ({', '.join(_q(n) for n in names)}) VALUES ({marks})",
            zip(*columns, strict=True),
        )

    def _load_rows(self, table: str, batch: pa.RecordBatch) -> None:
        if "geom" not in batch.schema.names:
            self._insert(table, batch)
            return
        srs = self.srs_epsg()
        if srs is None:
            raise StoreError("存储尚未设置坐标系", "store CRS not set")
        geoms = shapely.from_wkb(np.asarray(batch.column("geom").to_pylist(), dtype=object))
        blobs: list[bytes | None] = [None] * len(geoms)
        present = np.flatnonzero(~shapely.is_missing(geoms))
        for i, blob in zip(present.tolist(), encode_geometries(geoms[present], srs), strict=True):
            blobs[i] = blob
        at = batch.schema.get_field_index("geom")
        batch = batch.set_column(at, "geom", pa.array(blobs, type=pa.binary()))
        if "hid" in batch.schema.names:  # a history table: its own ids are its fids here
            self._insert(table, batch, {"hid": "fid"})
            return
        with writer_indexes(self.conn, table) as indexed:
            self._insert(table, batch)
            if indexed:
                fids = np.asarray(batch.column("fid").to_pylist(), dtype=np.int64)
                index_rows(self.conn, table, fids[present], geoms[present])
