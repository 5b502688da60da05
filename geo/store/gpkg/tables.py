"""Tables of the GeoPackage store: spatial reference systems, a layer's current and history
tables, its row-version columns and its assignment table."""

from __future__ import annotations

import pyproj

import layers
from geo.errors import Conflict, StoreError
from geo.store import clock
from geo.store.gpkg.connection import GpkgConnection
from geo.store.gpkg.spatial import create_rtree, declared_by_layer
from layers.base import LayerSpec

_SQL_TYPES = {"str": "TEXT", "int": "INTEGER", "float": "REAL", "date": "DATE"}
#: gridwatch's own columns of every layer row, after the layer's fields: the survey key, the
#: batch, the assigned unit, a polygon's area (m²), the feature's stable id (null: the row's own
#: fid -- a feature's first row version) and its version (null: 1); see :mod:`geo.edits.ids`
GW_COLUMNS = (
    ("gw_key", "TEXT"),
    ("gw_batch", "INTEGER"),
    ("gw_unit", "TEXT"),
    ("gw_area", "REAL"),
    ("gw_id", "INTEGER"),
    ("gw_version", "INTEGER"),
)


class GpkgTables(GpkgConnection):
    """Creating and extending the tables a layer is stored in (inside the caller's transaction)."""

    def _columns(self, spec: LayerSpec) -> list[str]:
        return [f.name for f in spec.stored_fields]

    def set_srs_epsg(self, epsg: int) -> None:
        """See :meth:`geo.store.interface.features.FeatureStore.set_srs_epsg`.

        Registers the CRS in ``gpkg_spatial_ref_sys`` and keeps its code in ``gw_meta``.
        """
        current = self.srs_epsg()
        if current is not None and current != epsg:
            raise Conflict(
                f"存储已使用 EPSG:{current}，不能改为 EPSG:{epsg}",
                f"store already uses EPSG:{current}, not {epsg}",
            )
        with self.transaction():
            self._ensure_srs(epsg)
            self.conn.execute("INSERT OR REPLACE INTO gw_meta VALUES ('srs_epsg', ?)", (str(epsg),))

    def _ensure_srs(self, epsg: int) -> None:
        if self.conn.execute("SELECT 1 FROM gpkg_spatial_ref_sys WHERE srs_id=?", (epsg,)).fetchone():
            return
        crs = pyproj.CRS.from_epsg(epsg)
        self.conn.execute(
            "INSERT INTO gpkg_spatial_ref_sys VALUES (?,?,?,?,?,?)",
            (crs.name, epsg, "EPSG", epsg, crs.to_wkt("WKT1_GDAL"), crs.name),
        )

    def _ensure_layer(self, spec: LayerSpec) -> None:
        conn = self.conn
        if conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (spec.name,)).fetchone():
            self._add_missing_columns(spec)
            return
        srs = self.srs_epsg()
        if srs is None:
            raise StoreError("存储尚未设置坐标系", "store CRS not set")
        cols = ", ".join(f'"{f.name}" {_SQL_TYPES[f.kind]}' for f in spec.stored_fields)
        gw = ", ".join(f"{n} {t}" for n, t in GW_COLUMNS)
        conn.execute(
            f'CREATE TABLE "{spec.name}" (fid INTEGER PRIMARY KEY AUTOINCREMENT, geom GEOMETRY, {cols}, {gw},'
            " gw_tx_from INTEGER)"
        )
        conn.execute(
            f'CREATE TABLE "{spec.name}_history" (fid INTEGER PRIMARY KEY AUTOINCREMENT, geom GEOMETRY, {cols},'
            f" {gw}, gw_orig_fid INTEGER, gw_superseded_by INTEGER, gw_tx_from INTEGER, gw_tx_to INTEGER)"
        )
        conn.execute(f'CREATE INDEX "{spec.name}_gw_key" ON "{spec.name}" (gw_key)')
        conn.execute(f'CREATE INDEX "{spec.name}_gw_id" ON "{spec.name}" (gw_id)')
        conn.execute(f'CREATE INDEX "{spec.name}_history_gw_id" ON "{spec.name}_history" (gw_id)')
        conn.execute(f'CREATE INDEX "{spec.name}_history_sup" ON "{spec.name}_history" (gw_superseded_by)')
        conn.execute(f'CREATE INDEX "{spec.name}_history_batch" ON "{spec.name}_history" (gw_batch)')
        self._add_version_columns(spec.name)
        conn.execute(
            "INSERT INTO gpkg_contents (table_name, data_type, identifier, description, last_change, srs_id)"
            " VALUES (?, 'features', ?, ?, ?, ?)",
            (spec.name, f"{spec.label_zh} {spec.label_en}", spec.label_en, clock.now_iso(), srs),
        )
        conn.execute(
            "INSERT INTO gpkg_geometry_columns VALUES (?, 'geom', ?, ?, 0, 0)",
            (spec.name, declared_by_layer(spec), srs),
        )
        create_rtree(conn, spec.name)

    def _add_version_columns(self, name: str) -> None:
        """Row-version columns, their index and, for a survey layer, its assignment table."""
        conn = self.conn
        for table, columns in ((name, ("gw_tx_from",)), (f"{name}_history", ("gw_tx_from", "gw_tx_to"))):
            if not self._has_table(table):
                continue
            have = {r[1] for r in conn.execute(f'PRAGMA table_info("{table}")')}
            for c in columns:
                if c not in have:
                    conn.execute(f'ALTER TABLE "{table}" ADD COLUMN {c} INTEGER')
        if self._has_table(f"{name}_history"):
            conn.execute(
                f'CREATE INDEX IF NOT EXISTS "{name}_history_orig" ON "{name}_history" (gw_orig_fid)'
            )
        if not is_grid(name):
            conn.execute(
                f'CREATE TABLE IF NOT EXISTS "{name}_assign" (version INTEGER NOT NULL, fid INTEGER NOT NULL,'
                " unit TEXT, PRIMARY KEY (version, fid)) WITHOUT ROWID"
            )

    def _add_id_columns(self, name: str) -> None:
        """The stable id and version columns (schema 9) of a layer's current and history
        tables, and the index the current rows are found by id with."""
        conn = self.conn
        for table in (name, f"{name}_history"):
            if not self._has_table(table):
                continue
            have = {r[1] for r in conn.execute(f'PRAGMA table_info("{table}")')}
            for c in ("gw_id", "gw_version"):
                if c not in have:
                    conn.execute(f'ALTER TABLE "{table}" ADD COLUMN {c} INTEGER')
        if self._has_table(name):
            conn.execute(f'CREATE INDEX IF NOT EXISTS "{name}_gw_id" ON "{name}" (gw_id)')
        if self._has_table(f"{name}_history"):
            conn.execute(f'CREATE INDEX IF NOT EXISTS "{name}_history_gw_id" ON "{name}_history" (gw_id)')

    def _add_missing_columns(self, spec: LayerSpec) -> None:
        for table in (spec.name, f"{spec.name}_history"):
            have = {r[1] for r in self.conn.execute(f'PRAGMA table_info("{table}")')}
            for f in spec.stored_fields:
                if f.name not in have:
                    self.conn.execute(f'ALTER TABLE "{table}" ADD COLUMN "{f.name}" {_SQL_TYPES[f.kind]}')

    def has_layer(self, spec: LayerSpec) -> bool:
        """See :meth:`geo.store.interface.features.FeatureStore.has_layer`.

        Whether the layer's table exists.
        """
        return bool(
            self.conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (spec.name,)
            ).fetchone()
        )


def is_grid(layer: str) -> bool:
    """Whether ``layer`` names the registered unit-grid layer (which has no assignment table)."""
    spec = next((s for s in layers.all_layers() if s.name == layer), None)
    return spec is not None and spec.is_grid
