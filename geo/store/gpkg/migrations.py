"""A new GeoPackage store, and bringing one written by an earlier version up to
:data:`SCHEMA_VERSION` in place."""

from __future__ import annotations

import contextlib
import uuid
from datetime import UTC, datetime
from typing import Any

import apsw
import numpy as np

import layers
from geo.assign import Grid
from geo.errors import StoreError
from geo.store import clock
from geo.store.gpkg.batches import kind_before_5
from geo.store.gpkg.connection import scalar
from geo.store.gpkg.feature_writes import GpkgFeatureWrites
from geo.store.gpkg.spatial import (
    EXTENSIONS_SQL,
    create_rtree,
    create_typed_view,
    declare_type,
    declared_by_layer,
    declared_type,
    stored_type_names,
    widen,
)
from geo.store.typed_views import ANY, views_needed
from layers.base import LayerSpec

_GPKG_APPLICATION_ID = 0x47504B47  # "GPKG"
#: GeoPackage 1.3: GDAL (from 2.2) and QGIS open it without a warning; 1.4 (10400) made
#: GDAL before 3.7 warn that the file "may only be partially supported"
_GPKG_USER_VERSION = 10300

_BASE_SRS = (
    (
        "Undefined cartesian SRS",
        -1,
        "NONE",
        -1,
        "undefined",
        "undefined cartesian coordinate reference system",
    ),
    (
        "Undefined geographic SRS",
        0,
        "NONE",
        0,
        "undefined",
        "undefined geographic coordinate reference system",
    ),
)


class GpkgMigrations(GpkgFeatureWrites):
    """Creating the system tables of a new store and upgrading an older one."""

    def _init(self) -> None:
        conn = self.conn
        try:
            app_id = scalar(conn, "PRAGMA application_id")
            has_meta = conn.execute("SELECT 1 FROM sqlite_master WHERE name='gw_meta'").fetchone()
        except apsw.Error as exc:
            raise StoreError(
                f"存储文件已损坏或不是 GeoPackage: {self.path}",
                f"store file is not a readable GeoPackage: {exc}",
            ) from exc
        if has_meta:
            self._upgrade()
            self._header_to_file()
            return
        if app_id not in (0, _GPKG_APPLICATION_ID):
            raise StoreError(f"不是 GeoPackage 文件: {self.path}", f"not a GeoPackage file: {self.path}")
        with self.transaction():
            conn.execute(f"PRAGMA application_id = {_GPKG_APPLICATION_ID}")
            conn.execute(f"PRAGMA user_version = {_GPKG_USER_VERSION}")
            for stmt in _SYSTEM_SQL:
                conn.execute(stmt)
            conn.executemany("INSERT OR IGNORE INTO gpkg_spatial_ref_sys VALUES (?,?,?,?,?,?)", _BASE_SRS)
            self._ensure_srs(4326)
            conn.execute("INSERT INTO gw_meta VALUES ('revision', ?), ('schema', '1')", (uuid.uuid4().hex,))
            for table, ident in (
                ("gw_batches", "导入批次 import batches"),
                ("gw_targets", "年度目标 targets"),
            ):
                conn.execute(
                    "INSERT INTO gpkg_contents (table_name, data_type, identifier, description, last_change)"
                    " VALUES (?, 'attributes', ?, '', ?)",
                    (table, ident, clock.now_iso()),
                )
        self._upgrade()
        self._header_to_file()

    def _header_to_file(self) -> None:
        """In WAL the file's first page -- which GDAL reads directly for the GeoPackage
        application id and version -- stays in the ``-wal`` file until a checkpoint: copy it
        into the file when the file's own header does not say GeoPackage 1.3 yet (a new or
        upgraded store).  A passive checkpoint, which waits for nobody."""
        if getattr(self, "journal", "") != "wal":
            return
        try:
            with open(self.path, "rb") as f:
                head = f.read(72)
        except OSError:
            return
        if (
            len(head) == 72
            and head[60:64] == _GPKG_USER_VERSION.to_bytes(4, "big")
            and head[68:72] == _GPKG_APPLICATION_ID.to_bytes(4, "big")
        ):
            return
        with contextlib.suppress(apsw.Error):
            self.conn.execute("PRAGMA wal_checkpoint(PASSIVE)")

    def _upgrade(self) -> None:
        """Bring a store written by an earlier version up to the current schema (in place)."""
        schema = int(self._meta("schema") or 1)
        if schema >= SCHEMA_VERSION:
            return
        try:
            with self.transaction():
                for stmt in _ACCOUNT_SQL:
                    self.conn.execute(stmt)
                if schema < 4:
                    self._upgrade_to_4()
                if schema < 5:
                    self._upgrade_to_5()
                if schema < 6:
                    self._upgrade_to_6()
                if schema < 7:
                    self._upgrade_to_7()
                if schema < 9:
                    for name in _feature_tables(self.conn):
                        self._add_id_columns(name)
                self.conn.execute(
                    "INSERT OR REPLACE INTO gw_meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),)
                )
        except StoreError as exc:
            if exc.code != "store_read_only":
                raise
            # a read-only store of an earlier version is still readable; it has no accounts, and
            # no write history (its figures are those of now, on its grid)

    def _upgrade_to_4(self) -> None:
        """Schema 4: the transaction log, row versions by tx, grid versions and assignments per
        grid version, made from what a store of schema 3 holds.

        One tx per batch at its ``created_at`` and one per rollback at its ``rolled_back_at``;
        current rows from the tx of their batch, history rows until the tx of the batch that
        replaced them; one grid version per live grid batch, valid from its import day (the
        first one for every earlier day too), its assignments computed once.  Rows a rollback
        deleted before the upgrade are gone: times before the upgrade are known as the
        upgraded store holds them.
        """
        conn = self.conn
        for stmt in _HISTORY_SQL:
            conn.execute(stmt)
        for table, columns in (
            ("gw_targets", ("tx_from",)),
            ("gw_targets_history", ("tx_from", "tx_to")),
        ):
            have = {r[1] for r in conn.execute(f'PRAGMA table_info("{table}")')}
            for c in columns:
                if c not in have:
                    conn.execute(f'ALTER TABLE "{table}" ADD COLUMN {c} INTEGER')
        if not conn.execute("SELECT 1 FROM gpkg_contents WHERE table_name='gw_grid_versions'").fetchone():
            conn.execute(
                "INSERT INTO gpkg_contents (table_name, data_type, identifier, description, last_change)"
                " VALUES ('gw_grid_versions', 'attributes', '网格版本 grid versions', '', ?)",
                (clock.now_iso(),),
            )
        feature_tables = _feature_tables(conn)
        for name in feature_tables:
            self._add_version_columns(name)
        if scalar(conn, "SELECT count(*) FROM gw_tx") or scalar(
            conn, "SELECT count(*) FROM gw_grid_versions"
        ):
            return  # written by this version already (its schema number set back by hand)
        # one tx per import and per rollback, in the order they happened
        events: list[tuple[str, int, int, str]] = []
        for bid, layer, created, rolled in conn.execute(
            "SELECT id, layer, created_at, rolled_back_at FROM gw_batches ORDER BY id"
        ):
            events.append((_stamp_of(str(created)), int(bid), 0, kind_before_5(str(layer))))
            if rolled:
                events.append((_stamp_of(str(rolled)), int(bid), 1, "rollback"))
        events.sort()
        previous: str | None = None
        conn.execute(
            "CREATE TEMP TABLE IF NOT EXISTS gw_tmp_batch_tx (batch INTEGER PRIMARY KEY, tx INTEGER)"
        )
        conn.execute("DELETE FROM gw_tmp_batch_tx")
        for at, bid, rolled_back, kind in events:
            at = at if previous is None or at > previous else clock.next_stamp(previous)
            previous = at
            conn.execute("INSERT INTO gw_tx (at, kind, batch_id) VALUES (?,?,?)", (at, kind, bid))
            if not rolled_back:
                conn.execute("INSERT INTO gw_tmp_batch_tx VALUES (?, ?)", (bid, conn.last_insert_rowid()))
        of_batch = "(SELECT tx FROM gw_tmp_batch_tx WHERE batch = {})"
        for name in feature_tables:
            conn.execute(f'UPDATE "{name}" SET gw_tx_from = coalesce({of_batch.format("gw_batch")}, 0)')
            if self._has_table(f"{name}_history"):
                conn.execute(
                    f'UPDATE "{name}_history" SET gw_tx_from = coalesce({of_batch.format("gw_batch")}, 0),'
                    f" gw_tx_to = coalesce({of_batch.format('gw_superseded_by')}, 0)"
                )
        conn.execute(f"UPDATE gw_targets SET tx_from = coalesce({of_batch.format('batch_id')}, 0)")
        conn.execute(
            f"UPDATE gw_targets_history SET tx_from = coalesce({of_batch.format('batch_id')}, 0),"
            f" tx_to = coalesce({of_batch.format('superseded_by')}, 0)"
        )
        self._upgrade_grid_versions(feature_tables)

    def _upgrade_to_5(self) -> None:
        """Schema 5: the kind of each batch recorded with it (``gw_batches.kind``: import, grid or
        targets), for the batches written before told from their layer as it was then."""
        conn = self.conn
        if "kind" not in {r[1] for r in conn.execute("PRAGMA table_info(gw_batches)")}:
            conn.execute("ALTER TABLE gw_batches ADD COLUMN kind TEXT")
        for (layer,) in conn.execute("SELECT DISTINCT layer FROM gw_batches WHERE kind IS NULL").fetchall():
            conn.execute(
                "UPDATE gw_batches SET kind=? WHERE layer=? AND kind IS NULL",
                (kind_before_5(str(layer)), layer),
            )

    def _upgrade_to_6(self) -> None:
        """Schema 6: a GeoPackage GDAL and QGIS open cleanly -- version 1.3, the
        ``gpkg_extensions`` table, an R-tree spatial index on each layer table and each layer's
        geometry type declared from the rows it holds (see :mod:`geo.store.gpkg.spatial`)."""
        conn = self.conn
        conn.execute(f"PRAGMA user_version = {_GPKG_USER_VERSION}")
        conn.execute(EXTENSIONS_SQL)
        specs = {s.name: s for s in layers.all_layers()}
        for name in _feature_tables(conn):
            create_rtree(conn, name)
            declared = widen(None, stored_type_names(conn, name))
            if declared is None:
                declared = declared_by_layer(specs[name]) if name in specs else "GEOMETRY"
            declare_type(conn, name, declared)

    def _upgrade_to_7(self) -> None:
        """Schema 7: the typed views of each layer declared ``GEOMETRY``, one per geometry type
        its rows have (see :mod:`geo.store.typed_views`)."""
        conn = self.conn
        stamp = clock.now_iso()
        specs = {s.name: s for s in layers.all_layers()}
        for name in _feature_tables(conn):
            if name in specs and declared_type(conn, name) == ANY:
                for type_name in views_needed(ANY, None, stored_type_names(conn, name)):
                    create_typed_view(conn, specs[name], type_name, stamp)

    def _upgrade_grid_versions(self, feature_tables: list[str]) -> None:
        """One grid version per live grid batch (see :meth:`_upgrade_to_4`), assigned in full."""
        conn = self.conn
        grid_spec = next((s for s in layers.all_layers() if s.is_grid), None)
        if grid_spec is None or not self.has_layer(grid_spec):
            return
        rows = conn.execute(
            "SELECT b.id, b.created_at, t.tx FROM gw_batches b JOIN gw_tmp_batch_tx t ON t.batch = b.id"
            " WHERE b.layer=? AND b.status='active' ORDER BY b.id",
            (grid_spec.name,),
        ).fetchall()
        surveys = [s for s in layers.survey_layers() if s.name in feature_tables]
        parent: int | None = None
        valid_from = ""
        units_by_layer: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for n, row in enumerate(rows):
            bid, tx = int(row[0]), int(row[2])  # type: ignore[arg-type]
            valid_from = max(valid_from, clock.local_day(str(row[1])).isoformat())
            attrs, cells = self.read_visible(grid_spec, tx, ["code"])
            conn.execute(
                "INSERT INTO gw_grid_versions (id, valid_from, tx, parent, units) VALUES (?,?,?,?,?)",
                (bid, valid_from, tx, parent, len(attrs)),
            )
            grid = Grid(attrs["code"].to_numpy(dtype=object), cells)
            last = n == len(rows) - 1
            for spec in surveys:
                fids, units = self._all_row_units(spec, grid, use_current=last)
                before = units_by_layer.get(spec.name)
                if before is not None:  # store only what differs from the parent
                    differs = before[1] != units
                    self.write_assignment(spec, bid, fids[differs], units[differs])
                else:
                    self.write_assignment(spec, bid, fids, units)
                units_by_layer[spec.name] = (fids, units)
            parent = bid

    def _all_row_units(self, spec: LayerSpec, grid: Any, use_current: bool) -> tuple[np.ndarray, np.ndarray]:
        """Unit on ``grid`` of every row version of ``spec`` (current and retired), by fid, ordered
        by fid; with ``use_current`` the current rows' stored unit is taken as it is."""
        fids, geoms = self.read_geometry(spec)
        if use_current:
            _, units = self.read_assignment(spec)
        else:
            units = grid.assign(geoms) if len(fids) else np.empty(0, dtype=object)
        old_fids, old_geoms = self.read_retired(spec)
        if len(old_fids):
            fids = np.concatenate([fids, old_fids])
            units = np.concatenate([units, grid.assign(old_geoms)])
        order = np.argsort(fids, kind="stable")
        return fids[order], np.asarray(units, dtype=object)[order]


_SYSTEM_SQL = (
    """CREATE TABLE gpkg_spatial_ref_sys (srs_name TEXT NOT NULL, srs_id INTEGER PRIMARY KEY,
    organization TEXT NOT NULL, organization_coordsys_id INTEGER NOT NULL, definition TEXT NOT NULL,
    description TEXT)""",
    """CREATE TABLE gpkg_contents (table_name TEXT NOT NULL PRIMARY KEY, data_type TEXT NOT NULL,
    identifier TEXT UNIQUE, description TEXT DEFAULT '', last_change DATETIME NOT NULL DEFAULT
    (strftime('%Y-%m-%dT%H:%M:%fZ','now')), min_x DOUBLE, min_y DOUBLE, max_x DOUBLE, max_y DOUBLE,
    srs_id INTEGER, CONSTRAINT fk_gc_r_srs_id FOREIGN KEY (srs_id) REFERENCES gpkg_spatial_ref_sys(srs_id))""",
    """CREATE TABLE gpkg_geometry_columns (table_name TEXT NOT NULL, column_name TEXT NOT NULL,
    geometry_type_name TEXT NOT NULL, srs_id INTEGER NOT NULL, z TINYINT NOT NULL, m TINYINT NOT NULL,
    CONSTRAINT pk_geom_cols PRIMARY KEY (table_name, column_name),
    CONSTRAINT fk_gc_tn FOREIGN KEY (table_name) REFERENCES gpkg_contents(table_name),
    CONSTRAINT fk_gc_srs FOREIGN KEY (srs_id) REFERENCES gpkg_spatial_ref_sys (srs_id))""",
    """CREATE TABLE gw_meta (key TEXT PRIMARY KEY, value TEXT)""",
    """CREATE TABLE gw_batches (id INTEGER PRIMARY KEY AUTOINCREMENT, layer TEXT NOT NULL,
    source_name TEXT, checksum TEXT, created_at TEXT NOT NULL, user TEXT, status TEXT NOT NULL,
    rows_read INTEGER, added INTEGER, updated INTEGER, unchanged INTEGER, rejected INTEGER,
    encoding TEXT, crs TEXT, report TEXT, rolled_back_at TEXT)""",
    """CREATE TABLE gw_archive (batch_id INTEGER PRIMARY KEY, name TEXT, path TEXT)""",
    """CREATE TABLE gw_targets (code TEXT NOT NULL, layer TEXT NOT NULL, metric TEXT NOT NULL,
    target REAL NOT NULL, batch_id INTEGER, PRIMARY KEY (code, layer, metric))""",
    """CREATE TABLE gw_targets_history (code TEXT, layer TEXT, metric TEXT, target REAL, batch_id INTEGER,
    superseded_by INTEGER)""",
)


#: Version 2 added accounts, API tokens and the audit trail; version 3 failed logins by name
#: (known or not) and by client address (gw_logins); version 4 the transaction log (gw_tx), row
#: versions by tx, grid versions (gw_grid_versions) and assignments per grid version; version 5 the
#: kind of each batch (gw_batches.kind); version 6 GeoPackage 1.3 with an R-tree per layer table
#: and a declared geometry type per layer; version 7 typed views of the layers declared GEOMETRY;
#: version 8 the areas accounts are bound to (gw_user_areas, made with the account tables); version
#: 9 a feature's stable id and version on its row versions (``gw_id``, ``gw_version``; null on
#: the rows written before: the row's own fid, version 1).
SCHEMA_VERSION = 9

_HISTORY_SQL = (
    """CREATE TABLE IF NOT EXISTS gw_tx (id INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL,
    kind TEXT NOT NULL, batch_id INTEGER)""",
    """CREATE INDEX IF NOT EXISTS gw_tx_at ON gw_tx (at)""",
    """CREATE TABLE IF NOT EXISTS gw_grid_versions (id INTEGER PRIMARY KEY, valid_from TEXT NOT NULL,
    tx INTEGER NOT NULL, parent INTEGER, rolled_back_tx INTEGER, units INTEGER)""",
)


def _feature_tables(conn: apsw.Connection) -> list[str]:
    """The layer tables among the store's feature tables (not the typed views)."""
    return [
        str(r[0])
        for r in conn.execute(
            "SELECT c.table_name FROM gpkg_contents c JOIN sqlite_master m ON m.name = c.table_name"
            " AND m.type = 'table' WHERE c.data_type='features'"
        ).fetchall()
    ]


def _stamp_of(iso: str) -> str:
    """A batch time as written before schema 4 (``2024-05-01T02:03:04Z``) as a store stamp."""
    try:
        moment = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except ValueError:
        return clock.now_stamp()
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return clock.stamp(moment)


_ACCOUNT_SQL = (
    """CREATE TABLE IF NOT EXISTS gw_users (name TEXT PRIMARY KEY, role TEXT NOT NULL, password TEXT NOT NULL,
    active INTEGER NOT NULL DEFAULT 1, created_at TEXT NOT NULL, failed_logins INTEGER NOT NULL DEFAULT 0,
    locked_until TEXT, session_version INTEGER NOT NULL DEFAULT 0)""",
    """CREATE TABLE IF NOT EXISTS gw_tokens (id INTEGER PRIMARY KEY AUTOINCREMENT, user TEXT NOT NULL,
    label TEXT, digest TEXT NOT NULL UNIQUE, created_at TEXT NOT NULL, last_used TEXT, revoked_at TEXT)""",
    """CREATE TABLE IF NOT EXISTS gw_audit (id INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, user TEXT,
    client TEXT, action TEXT NOT NULL, layer TEXT, batch_id INTEGER, counts TEXT, detail TEXT)""",
    """CREATE TABLE IF NOT EXISTS gw_logins (kind TEXT NOT NULL, key TEXT NOT NULL,
    failures INTEGER NOT NULL DEFAULT 0, last_failure TEXT NOT NULL, locked_until TEXT,
    PRIMARY KEY (kind, key))""",
    """CREATE INDEX IF NOT EXISTS gw_logins_last_failure ON gw_logins (last_failure)""",
    """CREATE TABLE IF NOT EXISTS gw_user_areas (name TEXT PRIMARY KEY, codes TEXT NOT NULL DEFAULT '',
    sees_district INTEGER NOT NULL DEFAULT 0)""",
)
