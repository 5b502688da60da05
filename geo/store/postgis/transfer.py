"""The PostGIS store's raw tables out and in (see :mod:`geo.store.interface.transfer`): dumped
with ``COPY (SELECT …) TO STDOUT`` row by row into batches, geometries as ISO WKB; loaded into
an empty store with ``COPY … FROM STDIN`` in one transaction, ids kept (identity sequences and
each layer's ``next_fid`` moved past them), the layer tables made by
:mod:`geo.store.postgis.tables` and their geometry column typed as the source declared it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import psycopg
import pyarrow as pa
import shapely

import layers
from geo.errors import StoreError
from geo.store.interface.transfer import (
    BATCH_ROWS,
    FIXED,
    FIXED_TABLES,
    UNUSABLE_KEY,
    neutral_tables,
    to_batch,
)
from geo.store.postgis.connection import store_error
from geo.store.postgis.tables import PgTables, q
from geo.store.postgis.tasks import TASKS_SQL
from layers.base import LayerSpec

#: identity columns whose sequence moves past the ids loaded
_IDENTITIES = (
    ("gw_audit", "id"),
    ("gw_tokens", "id"),
    ("gw_value_maps", "id"),
    ("gw_webhooks", "id"),
    ("gw_outbox", "id"),
    ("gw_deliveries", "id"),
    ("gw_photos", "id"),
    ("gw_patrols", "id"),
    ("gw_tasks", "id"),
    ("gw_task_items", "id"),
    ("gw_task_events", "id"),
)
#: tables made when first needed (a store may not have them)
_MADE_LATER = ("gw_tasks", "gw_task_items", "gw_task_events")
_OWN_META = ("schema", "schema_sql", UNUSABLE_KEY)
_PG_TYPES = {pa.int64(): "int8", pa.string(): "text", pa.float64(): "float8", pa.binary(): "bytea"}
#: a GeoPackage geometry type name → how PostGIS spells it
_GEOMETRY_NAMES = {
    n.upper(): n for n in ("Point", "LineString", "Polygon", "MultiPoint", "MultiLineString", "MultiPolygon")
}


def _order(columns: dict[str, pa.DataType]) -> str:
    """A table's rows in the order every backend dumps them: by id, else by every column
    (text by its bytes, as SQLite compares it)."""
    if "id" in columns:
        return "id"
    return ", ".join(f'{q(c)} COLLATE "C"' if t == pa.string() else q(c) for c, t in columns.items())


class PgTransfer(PgTables):
    """:class:`geo.store.interface.transfer.StoreTransfer` for PostGIS."""

    def _registered(self) -> list[LayerSpec]:
        return [s for s in layers.all_layers() if self.has_layer(s)]

    def unknown_layers(self) -> list[str]:
        """See :meth:`geo.store.interface.transfer.StoreTransfer.unknown_layers`.

        Layers ``gw_layers`` holds that no registered layer names.
        """
        known = {s.name for s in layers.all_layers()}
        return sorted(str(r[0]) for r in self._run("SELECT name FROM gw_layers") if str(r[0]) not in known)

    def _has(self, table: str) -> bool:
        return self._run("SELECT to_regclass(%s) IS NOT NULL", (q(table),)).fetchone() == (True,)

    def _pg_columns(self, table: str) -> set[str]:
        rows = self._run(
            "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attnum > 0 AND NOT attisdropped",
            (q(table),),
        ).fetchall()
        return {str(r[0]) for r in rows}

    def _select(self, table: str, columns: dict[str, pa.DataType], rename: dict[str, str]) -> str:
        have = self._pg_columns(table)
        parts = []
        for name in columns:
            stored = rename.get(name, name)
            if stored not in have:
                parts.append(f"NULL::{_PG_TYPES[columns[name]]}")
            elif name == "geom":
                parts.append("ST_AsBinary(geom)")
            elif columns[name] == pa.int64():  # a boolean (users.active) goes as 0/1 through int
                parts.append(f"{q(stored)}::int::int8")
            else:
                parts.append(f"{q(stored)}::{_PG_TYPES[columns[name]]}")
        return f"SELECT {', '.join(parts)} FROM {q(table)}"

    def _batches(self, query: str, columns: dict[str, pa.DataType]) -> Iterator[pa.RecordBatch]:
        rows: list[tuple[Any, ...]] = []
        try:
            with self.conn.cursor() as cur, cur.copy(f"COPY ({query}) TO STDOUT") as copy:
                copy.set_types([_PG_TYPES[t] for t in columns.values()])
                for row in copy.rows():
                    rows.append(row)
                    if len(rows) >= BATCH_ROWS:
                        yield to_batch(rows, columns)
                        rows = []
        except psycopg.Error as exc:
            raise store_error(exc, self._url) from exc
        if rows:
            yield to_batch(rows, columns)

    # out -----------------------------------------------------------------------------------
    def dump_tables(self) -> Iterator[tuple[str, pa.RecordBatch]]:
        """See :meth:`geo.store.interface.transfer.StoreTransfer.dump_tables`."""
        tables = neutral_tables()
        specs = self._registered()
        own = ", ".join(f"'{k}'" for k in _OWN_META)
        for name, columns in FIXED.items():
            if name == "layers":
                names = ", ".join(f"'{s.name}'" for s in specs) or "NULL"
                query = (
                    "SELECT name, upper(geometry_type), next_fid - 1, min_x, min_y, max_x, max_y FROM gw_layers"
                    f" WHERE name IN ({names}) ORDER BY array_position(ARRAY[{names}]::text[], name)"
                )
            elif FIXED_TABLES[name] in _MADE_LATER and not self._has(FIXED_TABLES[name]):
                continue
            else:
                query = self._select(FIXED_TABLES[name], columns, {})
                if name == "meta":
                    query += f" WHERE key NOT IN ({own})"
                query += f" ORDER BY {_order(columns)}"
            yield from ((name, b) for b in self._batches(query, columns))
        for spec in specs:
            for name, order in (
                (spec.name, "fid"),
                (f"{spec.name}_history", "hid"),
                (f"{spec.name}_assign", "version, fid"),
            ):
                if name not in tables or not self._has(name):
                    continue
                query = self._select(name, tables[name], {}) + f" ORDER BY {order}"
                yield from ((name, b) for b in self._batches(query, tables[name]))

    def table_counts(self) -> dict[str, int]:
        """See :meth:`geo.store.interface.transfer.StoreTransfer.table_counts`."""
        counts: dict[str, int] = {}
        specs = self._registered()
        for name in FIXED:
            if name == "layers":
                counts[name] = len(specs)
                continue
            if FIXED_TABLES[name] in _MADE_LATER and not self._has(FIXED_TABLES[name]):
                continue
            where = f" WHERE key NOT IN ({', '.join(repr(k) for k in _OWN_META)})" if name == "meta" else ""
            row = self._run(f"SELECT count(*) FROM {FIXED_TABLES[name]}{where}").fetchone()
            counts[name] = int(row[0]) if row else 0
        for spec in specs:
            for name in (spec.name, f"{spec.name}_history", f"{spec.name}_assign"):
                if name in neutral_tables() and self._has(name):
                    row = self._run(f"SELECT count(*) FROM {q(name)}").fetchone()
                    counts[name] = int(row[0]) if row else 0
        return {k: v for k, v in counts.items() if v}

    def is_empty(self) -> bool:
        """See :meth:`geo.store.interface.transfer.StoreTransfer.is_empty`."""
        if any(v for k, v in self.table_counts().items() if k != "meta"):
            return False
        if self._run("SELECT 1 FROM gw_layers LIMIT 1").fetchone():
            return False
        row = self._run(
            "SELECT count(*) FROM gw_meta WHERE key LIKE 'gen:%%' OR key = %s", (UNUSABLE_KEY,)
        ).fetchone()
        return not (row and row[0])

    # scopes and the mark ---------------------------------------------------------------------
    @contextmanager
    def hold_writes(self) -> Iterator[None]:
        """See :meth:`geo.store.interface.transfer.StoreTransfer.hold_writes`.

        A transaction that first takes the row lock every :meth:`transaction` starts with (the
        revision in ``gw_meta``), then locks every other table of the store in ``SHARE`` mode:
        readers go on, and so does a handle opening (its schema check writes nothing new), but
        every writer -- a transaction, an account, token, audit or value-map write, a failed
        login -- waits until it ends (or gives up at its ``lock_timeout``).  Nothing can
        commit a change meanwhile, so what is read inside is the one state after the last
        commit.  :meth:`snapshot` inside is this scope.
        """
        if self._depth or self._reading:
            raise RuntimeError("hold_writes() cannot start inside another scope")
        conn = self.conn
        tables = [
            t
            for t in (*FIXED_TABLES.values(), "gw_layers")
            if t != "gw_meta" and (t not in _MADE_LATER or self._has(t))
        ]
        for (name,) in self._run("SELECT name FROM gw_layers").fetchall():
            tables += [t for t in (name, f"{name}_history", f"{name}_assign") if self._has(t)]
        try:
            conn.execute("BEGIN")
            conn.execute("SELECT 1 FROM gw_meta WHERE key='revision' FOR UPDATE")
            conn.execute(f"LOCK TABLE {', '.join(q(t) for t in tables)} IN SHARE MODE")
        except psycopg.Error as exc:
            with contextlib.suppress(psycopg.Error):
                conn.execute("ROLLBACK")
            raise store_error(exc, self._url) from exc
        self._reading = True
        try:
            yield
        finally:
            self._reading = False
            with contextlib.suppress(psycopg.Error):
                conn.execute("ROLLBACK")

    def unusable(self) -> str | None:
        """See :meth:`geo.store.interface.transfer.StoreTransfer.unusable`."""
        return self._meta(UNUSABLE_KEY)

    def set_unusable(self, reason: str | None) -> None:
        """See :meth:`geo.store.interface.transfer.StoreTransfer.set_unusable`."""
        with self.admin_transaction():
            if reason is None:
                self._run("DELETE FROM gw_meta WHERE key=%s", (UNUSABLE_KEY,))
            else:
                self._set_meta(UNUSABLE_KEY, reason)

    # in ------------------------------------------------------------------------------------
    def load_tables(self, batches: Iterable[tuple[str, pa.RecordBatch]], unusable: str) -> dict[str, int]:
        """See :meth:`geo.store.interface.transfer.StoreTransfer.load_tables`."""
        if not self.is_empty():
            raise StoreError("目标存储不是空的", "the store copied into is not empty", code="store_not_empty")
        specs = {s.name: s for s in layers.all_layers()}
        written: dict[str, int] = {}
        with self.transaction():
            self._set_meta(UNUSABLE_KEY, unusable)
            for stmt in TASKS_SQL:  # made on first use elsewhere; a copy may bring rows
                self._run(stmt)
            for name, batch in batches:
                written[name] = written.get(name, 0) + batch.num_rows
                if name == "meta":
                    for row in batch.to_pylist():
                        if row["key"] not in _OWN_META:
                            self._set_meta(row["key"], row["value"])
                elif name == "layers":
                    for row in batch.to_pylist():
                        self._load_layer(specs[row["name"]], row)
                elif name in FIXED_TABLES:
                    self._copy_rows(FIXED_TABLES[name], batch)
                else:
                    self._copy_rows(name, batch)
            self.upgrade_views()  # the typed views of a layer holding several geometry types
            for table, column in _IDENTITIES + tuple(
                (f"{s}_history", "hid") for s in specs if self._has(f"{s}_history")
            ):
                self._run(
                    f"SELECT setval(pg_get_serial_sequence(%s, %s), coalesce(max({column}), 0) + 1, false)"
                    f" FROM {q(table)}",
                    (q(table), column),
                )
        return written

    def _load_layer(self, spec: LayerSpec, row: dict[str, Any]) -> None:
        self._ensure_layer(spec, np.empty(0, dtype=object))
        wanted = _GEOMETRY_NAMES.get(str(row["geometry_type"]).upper(), "Geometry")
        srs = self.srs_epsg()
        if wanted != self.geometry_type(spec):
            for table in (spec.name, f"{spec.name}_history"):
                self._run(
                    f"ALTER TABLE {q(table)} ALTER COLUMN geom TYPE geometry({wanted}, {int(srs or 0)})"
                )
            self._run("UPDATE gw_layers SET geometry_type=%s WHERE name=%s", (wanted, spec.name))
        self._run(
            "UPDATE gw_layers SET next_fid=%s, min_x=%s, min_y=%s, max_x=%s, max_y=%s WHERE name=%s",
            (
                int(row["last_fid"] or 0) + 1,
                row["min_x"],
                row["min_y"],
                row["max_x"],
                row["max_y"],
                spec.name,
            ),
        )

    def _copy_rows(self, table: str, batch: pa.RecordBatch) -> None:
        if not batch.num_rows:
            return
        columns = [batch.column(i).to_pylist() for i in range(batch.num_columns)]
        names = list(batch.schema.names)
        if "geom" in names:
            at = names.index("geom")
            geoms = shapely.from_wkb(np.asarray(columns[at], dtype=object))
            geoms = shapely.set_srid(geoms, int(self.srs_epsg() or 0))
            columns[at] = shapely.to_wkb(geoms, hex=True, include_srid=True, flavor="extended").tolist()
        if "counts" in names:  # jsonb: an empty text is no JSON
            at = names.index("counts")
            columns[at] = [v or None for v in columns[at]]
        try:
            with (
                self.conn.cursor() as cur,
                cur.copy(f"COPY {q(table)} ({', '.join(q(n) for n in names)}) FROM STDIN") as copy,
            ):
                for row in zip(*columns, strict=True):
                    copy.write_row(row)
        except psycopg.Error as exc:
            raise store_error(exc, self._url) from exc
