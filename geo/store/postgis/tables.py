"""Tables of the PostGIS store: a layer's current and history tables with their typed geometry
column and indexes, its assignment table, and moving data in and out with ``COPY``."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import psycopg
import pyarrow as pa
import pyarrow.csv as pacsv
import shapely
from psycopg import sql

import layers
from geo.errors import StoreError
from geo.store.postgis.connection import PgConnection, store_error
from geo.store.typed_views import view_label, view_name, views_needed
from layers.base import LayerSpec

#: PostgreSQL type of each field kind of a layer
SQL_TYPES = {"str": "text", "int": "bigint", "float": "double precision", "date": "date"}
#: Arrow type of each field kind (as :meth:`read_table` returns them)
ARROW_TYPES = {"str": pa.string(), "int": pa.int64(), "float": pa.float64(), "date": pa.date32()}
#: gridwatch's own columns of every layer row, after the layer's fields
GW_COLUMNS = (
    ("gw_key", "text"),
    ("gw_batch", "bigint"),
    ("gw_unit", "text"),
    ("gw_area", "double precision"),
    # the feature's stable id (null: the row's own fid, its first version) and version (null: 1)
    ("gw_id", "bigint"),
    ("gw_version", "bigint"),
)
GW_KINDS = {
    "gw_key": "str",
    "gw_batch": "int",
    "gw_unit": "str",
    "gw_area": "float",
    "gw_id": "int",
    "gw_version": "int",
}
#: the geometry types PostGIS can declare a column with (``geometry(<type>, srid)``)
_TYPE_NAMES = {
    0: "Point",
    1: "LineString",
    3: "Polygon",
    4: "MultiPoint",
    5: "MultiLineString",
    6: "MultiPolygon",
}


#: the type each typed view casts its geometry to, by the type it selects
VIEW_CASTS = {
    t: _TYPE_NAMES[i]
    for i, t in (
        (0, "POINT"),
        (1, "LINESTRING"),
        (3, "POLYGON"),
        (4, "MULTIPOINT"),
        (5, "MULTILINESTRING"),
        (6, "MULTIPOLYGON"),
    )
}


def q(name: str) -> str:
    """``name`` as a quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def declared_type(geoms: np.ndarray) -> str:
    """The geometry type a column holding ``geoms`` is declared with: their one type when they
    share it (``Point``, ``MultiPolygon`` ...), else ``Geometry``."""
    ids = set(shapely.get_type_id(geoms[~shapely.is_missing(geoms)]).tolist()) if len(geoms) else set()
    if len(ids) != 1:
        return "Geometry"
    return _TYPE_NAMES.get(ids.pop(), "Geometry")


def type_names(geoms: np.ndarray) -> set[str]:
    """The upper-case type names (``POINT``, ``MULTIPOLYGON`` ...) of ``geoms`` (missing ones left out)."""
    if not len(geoms):
        return set()
    ids = set(shapely.get_type_id(geoms[~shapely.is_missing(geoms)]).tolist())
    return {_TYPE_NAMES[i].upper() for i in ids if i in _TYPE_NAMES}


class PgTables(PgConnection):
    """Creating and extending the tables a layer is stored in (inside the caller's transaction)."""

    def _columns(self, spec: LayerSpec) -> list[str]:
        return [f.name for f in spec.stored_fields]

    def has_layer(self, spec: LayerSpec) -> bool:
        """See :meth:`geo.store.interface.features.FeatureStore.has_layer`.

        Whether the layer is registered in ``gw_layers`` (its tables exist).
        """
        return self._run("SELECT 1 FROM gw_layers WHERE name=%s", (spec.name,)).fetchone() is not None

    def geometry_type(self, spec: LayerSpec) -> str | None:
        """The type the layer's geometry column is declared with (None: not stored)."""
        row = self._run("SELECT geometry_type FROM gw_layers WHERE name=%s", (spec.name,)).fetchone()
        return None if row is None else str(row[0])

    def _ensure_layer(self, spec: LayerSpec, geoms: np.ndarray) -> None:
        """Make the layer's tables (the geometry column typed from ``geoms``), or widen its
        geometry column to ``Geometry`` when ``geoms`` bring another type, and add fields the
        layer declares since."""
        srs = self.srs_epsg()
        if srs is None:
            raise StoreError("存储尚未设置坐标系", "store CRS not set")
        wanted = declared_type(geoms)
        have = self.geometry_type(spec)
        name = spec.name
        incoming = type_names(geoms)
        if have is not None:
            declared = have
            if len(geoms) and have not in ("Geometry", wanted):
                for table in (name, f"{name}_history"):
                    self._run(f"ALTER TABLE {q(table)} ALTER COLUMN geom TYPE geometry(Geometry, {int(srs)})")
                self._run("UPDATE gw_layers SET geometry_type='Geometry' WHERE name=%s", (name,))
                declared = "Geometry"
            added = self._add_missing_columns(spec)
            self._ensure_views(spec, views_needed(declared, have, incoming), replace=added)
            return
        fields = ", ".join(f"{q(f.name)} {SQL_TYPES[f.kind]}" for f in spec.stored_fields)
        gw = ", ".join(f"{n} {t}" for n, t in GW_COLUMNS)
        geom = f"geometry({wanted}, {int(srs)})"
        self._run(
            f"CREATE TABLE {q(name)} (fid bigint PRIMARY KEY, geom {geom}, {fields}, {gw}, gw_tx_from bigint)"
        )
        self._run(
            f"CREATE TABLE {q(name + '_history')} (hid bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
            f" geom {geom}, {fields}, {gw}, gw_orig_fid bigint NOT NULL, gw_superseded_by bigint,"
            " gw_tx_from bigint, gw_tx_to bigint)"
        )
        for table, index, what in (
            (name, "geom", "USING gist (geom)"),
            (name, "gw_key", "(gw_key)"),
            (name, "gw_batch", "(gw_batch)"),
            (name, "gw_id", "(gw_id)"),
            (f"{name}_history", "geom", "USING gist (geom)"),
            (f"{name}_history", "sup", "(gw_superseded_by)"),
            (f"{name}_history", "batch", "(gw_batch)"),
            (f"{name}_history", "orig", "(gw_orig_fid)"),
            (f"{name}_history", "gw_id", "(gw_id)"),
        ):
            self._run(f"CREATE INDEX {q(f'{table}_{index}')} ON {q(table)} {what}")
        if not is_grid(name):
            self._run(
                f"CREATE TABLE {q(name + '_assign')} (version bigint NOT NULL, fid bigint NOT NULL, unit text,"
                " PRIMARY KEY (version, fid))"
            )
        for table, label in ((name, ""), (f"{name}_history", "（历史 history）")):
            # QGIS shows it as the layer's description
            comment = sql.SQL("COMMENT ON TABLE {} IS {}")
            self._run(
                comment.format(sql.Identifier(table), sql.Literal(f"{spec.label_zh}{label} {spec.label_en}"))
            )
        self._run("INSERT INTO gw_layers (name, geometry_type) VALUES (%s, %s)", (name, wanted))
        self._ensure_views(spec, views_needed(wanted, None, incoming))

    def _ensure_views(self, spec: LayerSpec, types: list[str], replace: bool = False) -> None:
        """Make the typed views (:mod:`geo.store.typed_views`) of ``types`` that the layer has
        not got yet; with ``replace`` make every view of the layer again (columns were added to
        its table: a view lists the columns it was made with, new ones come last)."""
        name = spec.name
        have = {
            str(r[0])
            for r in self._run(
                "SELECT viewname FROM pg_views WHERE schemaname = current_schema() AND viewname = ANY(%s)",
                ([view_name(name, t) for t in VIEW_CASTS],),
            ).fetchall()
        }
        srs = int(self.srs_epsg() or 0)
        todo = [t for t in VIEW_CASTS if view_name(name, t) in have] if replace else []
        todo += [t for t in types if view_name(name, t) not in have and t not in todo]
        if not todo:
            return
        columns = [
            str(r[0])
            for r in self._run(
                "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attnum > 0"
                " AND NOT attisdropped ORDER BY attnum",
                (q(name),),
            ).fetchall()
        ]
        for t in todo:
            view = view_name(name, t)
            listed = ", ".join(
                f"geom::geometry({VIEW_CASTS[t]}, {srs}) AS geom" if c == "geom" else q(c) for c in columns
            )
            self._run(
                f"CREATE OR REPLACE VIEW {q(view)} AS SELECT {listed} FROM {q(name)}"
                f" WHERE GeometryType(geom) = '{t}'"
            )
            comment = sql.SQL("COMMENT ON VIEW {} IS {}")
            self._run(
                comment.format(
                    sql.Identifier(view), sql.Literal(view_label(spec.label_zh, spec.label_en, t)[0])
                )
            )

    def upgrade_views(self) -> None:
        """Typed views for every layer declared ``Geometry``, from the types its rows have
        (schema 2; inside the caller's transaction)."""
        for (name,) in self._run("SELECT name FROM gw_layers WHERE geometry_type='Geometry'").fetchall():
            spec = next((s for s in layers.all_layers() if s.name == name), None)
            if spec is None:
                continue
            stored = [
                str(r[0])
                for r in self._run(f"SELECT DISTINCT GeometryType(geom) FROM {q(name)}").fetchall()
                if r[0]
            ]
            self._ensure_views(spec, views_needed("GEOMETRY", None, stored))

    def upgrade_ids(self) -> None:
        """The stable id and version columns of every layer's tables, and the index current rows
        are found by id with (schema 3; inside the caller's transaction)."""
        for (name,) in self._run("SELECT name FROM gw_layers").fetchall():
            for table in (name, f"{name}_history"):
                have = self._table_columns(table)
                if not have:
                    continue
                for c in ("gw_id", "gw_version"):
                    if c not in have:
                        self._run(f"ALTER TABLE {q(table)} ADD COLUMN {c} bigint")
            if self._table_columns(name):
                self._run(f"CREATE INDEX IF NOT EXISTS {q(name + '_gw_id')} ON {q(name)} (gw_id)")
            if self._table_columns(f"{name}_history"):
                self._run(
                    f"CREATE INDEX IF NOT EXISTS {q(name + '_history_gw_id')} ON {q(name + '_history')} (gw_id)"
                )

    def _add_missing_columns(self, spec: LayerSpec) -> bool:
        """Add the fields the layer declares since its tables were made; whether any was.  Only
        when one is missing: ``ALTER TABLE`` waits for every reader of the table, a snapshot's
        too."""
        added = False
        for table in (spec.name, f"{spec.name}_history"):
            have = self._table_columns(table)
            for f in spec.stored_fields:
                if f.name not in have:
                    self._run(f"ALTER TABLE {q(table)} ADD COLUMN {q(f.name)} {SQL_TYPES[f.kind]}")
                    added = True
        return added

    def _table_columns(self, table: str) -> set[str]:
        """The names of ``table``'s columns."""
        return {
            str(r[0])
            for r in self._run(
                "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attnum > 0"
                " AND NOT attisdropped",
                (q(table),),
            ).fetchall()
        }

    # COPY ----------------------------------------------------------------------------------
    def _copy_in(self, table: str, data: pa.Table) -> None:
        """Write ``data`` into ``table`` (columns by name) with ``COPY … FROM STDIN`` as CSV."""
        if not data.num_rows:
            return
        buf = io.BytesIO()
        pacsv.write_csv(data, buf, pacsv.WriteOptions(include_header=False, quoting_style="needed"))
        cols = ", ".join(q(c) for c in data.column_names)
        with self.conn.cursor() as cur, cur.copy(f"COPY {q(table)} ({cols}) FROM STDIN (FORMAT csv)") as copy:
            copy.write(buf.getvalue())

    def _copy_out(self, query: str, types: dict[str, pa.DataType]) -> pa.Table:
        """The rows of ``query`` (its columns named and typed by ``types``, in order) as an
        Arrow table, read with ``COPY (…) TO STDOUT`` as CSV: values are quoted, so an empty
        text stays empty and a NULL is null."""
        names = list(types)
        with (
            self.conn.cursor() as cur,
            cur.copy(f"COPY ({query}) TO STDOUT (FORMAT csv, FORCE_QUOTE *)") as copy,
        ):
            data = b"".join(bytes(chunk) for chunk in copy)
        if not data:
            return pa.table({n: pa.array([], type=t) for n, t in types.items()})
        return pacsv.read_csv(
            io.BytesIO(data),
            read_options=pacsv.ReadOptions(column_names=names, block_size=1 << 24),
            parse_options=pacsv.ParseOptions(newlines_in_values=True),
            convert_options=pacsv.ConvertOptions(
                column_types=types,
                null_values=[""],
                strings_can_be_null=True,
                quoted_strings_can_be_null=False,
            ),
        )

    def _fetch_columns(self, query: str, width: int) -> list[tuple[Any, ...]]:
        """The ``width`` columns of ``query``'s rows, each a tuple of Python values (``bytea`` as
        bytes), fetched in one binary result: for a part of a layer (rows read by fid), where
        ``COPY`` costs a round of Python per row and this one libpq result for all of them."""
        try:
            with self.conn.cursor(binary=True) as cur:
                cur.execute(query)
                rows = cur.fetchall()
        except psycopg.Error as exc:
            raise store_error(exc, self._url) from exc
        return list(zip(*rows, strict=True)) if rows else [() for _ in range(width)]

    def _fetch_out(self, query: str, types: dict[str, pa.DataType]) -> pa.Table:
        """The rows of ``query`` (its columns named and typed by ``types``, in order) as an Arrow
        table, fetched with :meth:`_fetch_columns`."""
        columns = self._fetch_columns(query, len(types))
        return pa.table({n: pa.array(c, type=t) for (n, t), c in zip(types.items(), columns, strict=True)})


def is_grid(layer: str) -> bool:
    """Whether ``layer`` names the registered unit-grid layer (which has no assignment table)."""
    spec = next((s for s in layers.all_layers() if s.name == layer), None)
    return spec is not None and spec.is_grid


def arrow_kind(kind: str) -> pa.DataType:
    """The Arrow type of a field kind."""
    return ARROW_TYPES[kind]
