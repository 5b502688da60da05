"""The embedded store: one GeoPackage file (SQLite) that opens directly in QGIS.

Features are written with SQLite directly rather than through GDAL because an import
touches several tables at once — the layer, its history, the batch register, the
archived source and, after a grid change, the assignment of every other layer — and
all of that has to commit or vanish together.  GDAL's writers commit per call and
cannot join a transaction opened elsewhere; SQLite's own transaction (rollback
journal, ``synchronous=FULL``) gives exactly the all-or-nothing behaviour, including
when the importing process is killed.  The connection is made with ``apsw`` rather than
the standard :mod:`sqlite3` module: its ``executemany`` binds rows about four times
faster (0.36 s instead of 1.35 s for 100,000 rows of 17 columns, measured here), which
is most of the time an import spends writing.  The file stays a valid GeoPackage 1.4 (the
tests read it back with GDAL).

Layout, besides the GeoPackage system tables:

``<layer>``            current features: ``fid``, ``geom``, canonical fields, and
                       ``gw_key`` (survey id), ``gw_batch``, ``gw_unit`` (assigned
                       unit-grid code), ``gw_area`` (polygon area, m²).
``<layer>_history``    rows a later batch replaced, with ``gw_superseded_by``.
``gw_batches``         one row per import.
``gw_archive``         where the original uploaded files of each batch are kept: the
                       folder ``archive/<batch id>/`` beside the GeoPackage.  Copying
                       files there is cheaper than writing them into the database
                       and keeps the GeoPackage small; a folder left by an import
                       that did not commit is replaced when its id is used again.
``gw_targets``         yearly targets (code, layer, metric, target), the values replaced
                       or rolled back in ``gw_targets_history``.
``gw_tx``              one row per write transaction (import, grid import, rollback,
                       targets): ``id``, ``at`` (UTC stamp with microseconds, strictly
                       increasing), ``kind``, ``batch_id``.  Feature rows carry
                       ``gw_tx_from`` and, once replaced or rolled back, ``gw_tx_to``
                       (tx ids): the row versions visible at tx *t* are those with
                       ``gw_tx_from <= t < coalesce(gw_tx_to, ∞)``.  Nothing is ever
                       deleted: a rollback moves rows to the history and puts the rows
                       they had replaced back as new current versions (same fid).
``gw_grid_versions``   one row per grid import: ``id`` (its batch), ``valid_from`` (a
                       day), ``tx``, ``parent`` (the version current when it was made),
                       ``rolled_back_tx``, ``units``.  Its cells are the grid rows visible
                       at its tx.
``<layer>_assign``     the unit of each feature row version (by fid, whose content never
                       changes) on each grid version: complete for a version without a
                       parent, else only where it differs from the parent's.
``gw_meta``            store CRS and revision.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import io
import json
import os
import shutil
import threading
import uuid
import zipfile
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import apsw
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyogrio
import pyproj
import shapely

import layers
from geo.errors import Conflict, NotFound, StoreError, disk_full, read_only, write_error
from geo.reading import untrusted
from geo.store import clock
from geo.store.base import (
    Actor,
    ApiToken,
    AuditEntry,
    Batch,
    FeatureRows,
    GridVersion,
    LoginFailures,
    Tx,
    User,
    ValueMap,
    WriteResult,
)
from geo.store.cache import filling
from layers.base import UNASSIGNED, LayerSpec

_GPKG_APPLICATION_ID = 0x47504B47  # "GPKG"
_GPKG_USER_VERSION = 10400

_SQL_TYPES = {"str": "TEXT", "int": "INTEGER", "float": "REAL", "date": "DATE"}
_GW_COLUMNS = (("gw_key", "TEXT"), ("gw_batch", "INTEGER"), ("gw_unit", "TEXT"), ("gw_area", "REAL"))

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


#: (fids, decoded geometries, assigned units) per (store, layer, generation); see GpkgStore.read_geometry.
_GEOMETRY_CACHE: dict[tuple[str, str, str], tuple[np.ndarray, np.ndarray, np.ndarray]] = {}


# --- geometry blobs ---------------------------------------------------------------------------

_HEADER = np.dtype(
    [("magic", "S2"), ("version", "u1"), ("flags", "u1"), ("srs", "<i4"), ("env", "<f8", (4,))]
)
_ENVELOPE_BYTES = {0: 0, 1: 32, 2: 48, 3: 48, 4: 64}


def encode_geometries(geoms: np.ndarray, srs_id: int) -> list[bytes]:
    """GeoPackage binary blobs (little-endian, XY envelope, ISO WKB) for shapely geometries."""
    n = len(geoms)
    if n == 0:
        return []
    wkb = shapely.to_wkb(geoms, byte_order=1, flavor="iso", include_srid=False, output_dimension=2)
    bounds = shapely.bounds(geoms)
    header = np.zeros(n, dtype=_HEADER)
    header["magic"] = b"GP"
    empty = shapely.is_empty(geoms)
    header["flags"] = np.where(empty, 0b00010001, 0b00000011)
    header["srs"] = srs_id
    header["env"] = bounds[:, [0, 2, 1, 3]]  # minx, maxx, miny, maxy
    raw = header.tobytes()
    size = _HEADER.itemsize
    if not empty.any():
        # one buffer of header+WKB pairs, cut at the record boundaries
        heads = [raw[i : i + size] for i in range(0, n * size, size)]
        joined = b"".join([part for pair in zip(heads, wkb.tolist(), strict=True) for part in pair])
        ends = np.cumsum(np.fromiter(map(len, wkb), dtype=np.int64, count=n) + size)
        starts = np.concatenate([[0], ends[:-1]])
        return [joined[a:b] for a, b in zip(starts.tolist(), ends.tolist(), strict=True)]
    out: list[bytes] = []
    for i in range(n):
        head = raw[i * size : (i + 1) * size]
        if empty[i]:
            head = head[:8]
        out.append(head + wkb[i])
    return out


def decode_geometries(blobs: list[bytes | None]) -> np.ndarray:
    """Shapely geometries from GeoPackage blobs (None for NULL)."""
    if blobs and all(b is not None and b[3] == 0b00000011 for b in blobs):
        # the common case (our own writer: little-endian header with an XY envelope)
        return shapely.from_wkb(np.array([b[40:] for b in blobs if b is not None], dtype=object))
    wkbs: list[bytes | None] = []
    for b in blobs:
        if b is None:
            wkbs.append(None)
            continue
        env = (b[3] >> 1) & 0b111
        wkbs.append(b[8 + _ENVELOPE_BYTES.get(env, 0) :])
    return shapely.from_wkb(np.array(wkbs, dtype=object))


# --- the store --------------------------------------------------------------------------------


class GpkgStore:
    """GeoPackage-backed :class:`geo.store.base.Store`.

    Parameters
    ----------
    path : Path
        The ``.gpkg`` file; created with its directory when missing.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self.location = str(self.path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(
                f"无法创建数据目录: {self.path.parent}", f"cannot create data directory: {exc}"
            ) from exc
        self._conn: apsw.Connection | None = None
        self._depth = 0
        self.actor = Actor()
        self._pending_archives: list[Path] = []
        #: the gw_tx row of the write transaction under way (see begin_tx)
        self._tx: int | None = None
        self._init()

    # connection ----------------------------------------------------------------------------
    @property
    def conn(self) -> apsw.Connection:
        if self._conn is None:
            try:
                conn = apsw.Connection(str(self.path))
                conn.set_busy_timeout(60_000)
            except apsw.Error as exc:
                raise StoreError(f"无法打开存储文件: {self.path}", f"cannot open store: {exc}") from exc
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=OFF")
            conn.execute("PRAGMA temp_store=MEMORY")
            conn.execute("PRAGMA cache_size=-131072")  # 128 MiB page cache: index inserts stay in memory
            self._conn = conn
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> GpkgStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All-or-nothing write scope (``BEGIN IMMEDIATE`` … ``COMMIT``); nests."""
        conn = self.conn
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        try:
            conn.execute("BEGIN IMMEDIATE")
        except apsw.Error as exc:
            raise _store_error(exc, conn.system_errno) from exc
        self._depth = 1
        self._tx = None
        try:
            # A new random revision at the start: caches filled inside the transaction are keyed by
            # it, so if the transaction rolls back they can never be hit again.
            if self._has_meta():
                conn.execute("UPDATE gw_meta SET value = ? WHERE key = 'revision'", (uuid.uuid4().hex,))
            yield
            self._stamp_tx()
            conn.execute("COMMIT")
            self._pending_archives.clear()
        except BaseException as exc:
            os_errno = conn.system_errno  # of the failed write, before the rollback
            with contextlib.suppress(apsw.Error):
                conn.execute("ROLLBACK")
            for folder in self._pending_archives:
                shutil.rmtree(folder, ignore_errors=True)
            self._pending_archives.clear()
            if isinstance(exc, apsw.Error):
                raise _store_error(exc, os_errno) from exc
            raise
        finally:
            self._depth = 0
            self._tx = None

    # write transactions ----------------------------------------------------------------------
    def begin_tx(self, kind: str, batch_id: int | None = None) -> int:
        """The ``gw_tx`` row of the write transaction under way, made by its first call (later
        calls in the same transaction return it).  Must be called inside :meth:`transaction`."""
        if not self._depth:
            raise RuntimeError("begin_tx must run inside transaction()")
        if self._tx is None:
            self.conn.execute(
                "INSERT INTO gw_tx (at, kind, batch_id) VALUES (?,?,?)", (clock.now_stamp(), kind, batch_id)
            )
            self._tx = int(self.conn.last_insert_rowid())
        return self._tx

    def _tx_id(self) -> int:
        return self._tx if self._tx is not None else self.begin_tx("write")

    def _stamp_tx(self) -> None:
        """Stamp the transaction's tx with the moment it commits (after every earlier stamp), so a
        reader that saw the store before the commit never has a stamp after what it saw."""
        if self._tx is None:
            return
        previous = _scalar_args(self.conn, "SELECT max(at) FROM gw_tx WHERE id < ?", (self._tx,))
        self.conn.execute("UPDATE gw_tx SET at=? WHERE id=?", (clock.next_stamp(previous), self._tx))

    def _has_tx(self) -> bool:
        return self._has_table("gw_tx")

    def last_tx(self) -> Tx | None:
        if not self._has_tx():
            return None
        row = self.conn.execute(
            "SELECT id, at, kind, batch_id FROM gw_tx ORDER BY id DESC LIMIT 1"
        ).fetchone()
        return None if row is None else Tx(*row)

    def tx_at(self, stamp: str) -> int:
        """The last tx stamped at or before ``stamp`` (0 when none)."""
        if not self._has_tx():
            raise StoreError(
                "存储尚未升级到记录写入时点的版本（只读），无法按时点统计",
                "the store has not been upgraded to record write times (it is read-only): --known-at is unavailable",
                code="no_history",
            )
        return int(_scalar_args(self.conn, "SELECT coalesce(max(id), 0) FROM gw_tx WHERE at <= ?", (stamp,)))

    def tx(self, tx_id: int) -> Tx | None:
        if not self._has_tx():
            return None
        row = self.conn.execute("SELECT id, at, kind, batch_id FROM gw_tx WHERE id=?", (tx_id,)).fetchone()
        return None if row is None else Tx(*row)

    def layer_revision(self, layer: str, tx: int | None = None) -> tuple[int | None, int | None]:
        """(last tx, its batch) at or before ``tx`` that wrote or rolled back a batch of ``layer``."""
        if not self._has_tx():
            return None, None
        row = self.conn.execute(
            "SELECT t.id, t.batch_id FROM gw_tx t JOIN gw_batches b ON b.id = t.batch_id"
            " WHERE b.layer=? AND t.id <= ? ORDER BY t.id DESC LIMIT 1",
            (layer, tx if tx is not None else 2**63 - 1),
        ).fetchone()
        return (None, None) if row is None else (int(row[0]), int(row[1]))

    # schema --------------------------------------------------------------------------------
    def _init(self) -> None:
        conn = self.conn
        try:
            app_id = _scalar(conn, "PRAGMA application_id")
            has_meta = conn.execute("SELECT 1 FROM sqlite_master WHERE name='gw_meta'").fetchone()
        except apsw.Error as exc:
            raise StoreError(
                f"存储文件已损坏或不是 GeoPackage: {self.path}",
                f"store file is not a readable GeoPackage: {exc}",
            ) from exc
        if has_meta:
            self._upgrade()
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
        feature_tables = [
            str(r[0]) for r in conn.execute("SELECT table_name FROM gpkg_contents WHERE data_type='features'")
        ]
        for name in feature_tables:
            self._add_version_columns(name)
        if _scalar(conn, "SELECT count(*) FROM gw_tx") or _scalar(
            conn, "SELECT count(*) FROM gw_grid_versions"
        ):
            return  # written by this version already (its schema number set back by hand)
        # one tx per import and per rollback, in the order they happened
        events: list[tuple[str, int, int, str]] = []
        for bid, layer, created, rolled in conn.execute(
            "SELECT id, layer, created_at, rolled_back_at FROM gw_batches ORDER BY id"
        ):
            kind = "targets" if layer == "targets" else ("grid" if _is_grid(str(layer)) else "import")
            events.append((_stamp_of(str(created)), int(bid), 0, kind))
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

    def _upgrade_grid_versions(self, feature_tables: list[str]) -> None:
        """One grid version per live grid batch (see :meth:`_upgrade_to_4`), assigned in full."""
        from geo.assign import Grid

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
        gw = ", ".join(f"{n} {t}" for n, t in _GW_COLUMNS)
        conn.execute(
            f'CREATE TABLE "{spec.name}" (fid INTEGER PRIMARY KEY AUTOINCREMENT, geom GEOMETRY, {cols}, {gw},'
            " gw_tx_from INTEGER)"
        )
        conn.execute(
            f'CREATE TABLE "{spec.name}_history" (fid INTEGER PRIMARY KEY AUTOINCREMENT, geom GEOMETRY, {cols},'
            f" {gw}, gw_orig_fid INTEGER, gw_superseded_by INTEGER, gw_tx_from INTEGER, gw_tx_to INTEGER)"
        )
        conn.execute(f'CREATE INDEX "{spec.name}_gw_key" ON "{spec.name}" (gw_key)')
        conn.execute(f'CREATE INDEX "{spec.name}_history_sup" ON "{spec.name}_history" (gw_superseded_by)')
        conn.execute(f'CREATE INDEX "{spec.name}_history_batch" ON "{spec.name}_history" (gw_batch)')
        self._add_version_columns(spec.name)
        conn.execute(
            "INSERT INTO gpkg_contents (table_name, data_type, identifier, description, last_change, srs_id)"
            " VALUES (?, 'features', ?, ?, ?, ?)",
            (spec.name, f"{spec.label_zh} {spec.label_en}", spec.label_en, clock.now_iso(), srs),
        )
        conn.execute(
            "INSERT INTO gpkg_geometry_columns VALUES (?, 'geom', 'GEOMETRY', ?, 0, 0)", (spec.name, srs)
        )

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
        if not _is_grid(name):
            conn.execute(
                f'CREATE TABLE IF NOT EXISTS "{name}_assign" (version INTEGER NOT NULL, fid INTEGER NOT NULL,'
                " unit TEXT, PRIMARY KEY (version, fid)) WITHOUT ROWID"
            )

    def _add_missing_columns(self, spec: LayerSpec) -> None:
        for table in (spec.name, f"{spec.name}_history"):
            have = {r[1] for r in self.conn.execute(f'PRAGMA table_info("{table}")')}
            for f in spec.stored_fields:
                if f.name not in have:
                    self.conn.execute(f'ALTER TABLE "{table}" ADD COLUMN "{f.name}" {_SQL_TYPES[f.kind]}')

    def has_layer(self, spec: LayerSpec) -> bool:
        return bool(
            self.conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (spec.name,)
            ).fetchone()
        )

    # meta ----------------------------------------------------------------------------------
    def _meta(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM gw_meta WHERE key=?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def srs_epsg(self) -> int | None:
        v = self._meta("srs_epsg")
        return int(v) if v else None

    def set_srs_epsg(self, epsg: int) -> None:
        current = self.srs_epsg()
        if current is not None and current != epsg:
            raise Conflict(
                f"存储已使用 EPSG:{current}，不能改为 EPSG:{epsg}",
                f"store already uses EPSG:{current}, not {epsg}",
            )
        with self.transaction():
            self._ensure_srs(epsg)
            self.conn.execute("INSERT OR REPLACE INTO gw_meta VALUES ('srs_epsg', ?)", (str(epsg),))

    def _has_meta(self) -> bool:
        return bool(self.conn.execute("SELECT 1 FROM sqlite_master WHERE name='gw_meta'").fetchone())

    def revision(self) -> str:
        return self._meta("revision") or ""

    # batches -------------------------------------------------------------------------------
    def new_batch(self, batch: Batch, sources: list[Path] | None) -> int:
        """Register a batch and archive its source files (inside the current transaction)."""
        with self.transaction():
            cur = self.conn.execute(
                "INSERT INTO gw_batches (layer, source_name, checksum, created_at, user, status, rows_read, added,"
                " updated, unchanged, rejected, encoding, crs, report) VALUES (?,?,?,?,?,'active',?,0,0,0,?,?,?,'{}')",
                (
                    batch.layer,
                    batch.source_name,
                    batch.checksum,
                    batch.created_at,
                    batch.user or self.actor.user,
                    batch.rows_read,
                    batch.rejected,
                    batch.encoding,
                    batch.crs,
                ),
            )
            del cur
            batch_id = int(self.conn.last_insert_rowid())
            kind = "targets" if batch.layer == "targets" else ("grid" if _is_grid(batch.layer) else "import")
            self.begin_tx(kind, batch_id)
            if sources:
                folder = self.path.parent / "archive" / f"{batch_id:06d}"
                shutil.rmtree(folder, ignore_errors=True)  # left by an import that did not commit
                self._pending_archives.append(folder)
                try:
                    folder.mkdir(parents=True)
                    root = _common_root(sources)
                    for src in sources:
                        dest = folder / src.relative_to(root)
                        dest.parent.mkdir(parents=True, exist_ok=True)
                        shutil.copyfile(src, dest)
                except OSError as exc:
                    raise write_error(exc.errno) or StoreError(
                        "无法保存原始文件", f"cannot archive the original file: {exc}", code="archive_failed"
                    ) from exc
                self.conn.execute(
                    "INSERT INTO gw_archive (batch_id, name, path) VALUES (?,?,?)",
                    (batch_id, batch.source_name, str(folder.relative_to(self.path.parent))),
                )
        return batch_id

    def finish_batch(self, batch_id: int, counts: dict[str, int], report: dict[str, Any]) -> None:
        with self.transaction():
            self.conn.execute(
                "UPDATE gw_batches SET added=?, updated=?, unchanged=?, rejected=?, rows_read=?, report=?"
                " WHERE id=?",
                (
                    counts.get("added", 0),
                    counts.get("updated", 0),
                    counts.get("unchanged", 0),
                    counts.get("rejected", 0),
                    counts.get("rows_read", 0),
                    json.dumps(report, ensure_ascii=False, default=str),
                    batch_id,
                ),
            )
            layer = _scalar_args(self.conn, "SELECT layer FROM gw_batches WHERE id=?", (batch_id,))
            action = (
                "grid_replace" if _is_grid(str(layer)) else ("targets" if layer == "targets" else "import")
            )
            self.record_audit(
                action,
                layer=str(layer),
                batch_id=batch_id,
                counts={k: int(v) for k, v in counts.items()},
                detail=str(report.get("source_name") or "") or None,
            )

    def _batch_from_row(self, row: tuple[Any, ...]) -> Batch:
        # columns as in _BATCH_COLS: the Batch fields up to crs, then report, rolled_back_at
        names = [f.name for f in dataclasses.fields(Batch)][:14]
        *values, report, rolled_back_at = row
        return Batch(
            **dict(zip(names, values, strict=True)),
            rolled_back_at=rolled_back_at,
            report=json.loads(report or "{}"),
        )

    _BATCH_COLS = (
        "id, layer, source_name, checksum, created_at, user, status, rows_read, added, updated, unchanged,"
        " rejected, encoding, crs, report, rolled_back_at"
    )

    def batches(self, layer: str | None = None) -> list[Batch]:
        sql = f"SELECT {self._BATCH_COLS} FROM gw_batches"
        args: tuple[Any, ...] = ()
        if layer:
            sql += " WHERE layer=?"
            args = (layer,)
        return [self._batch_from_row(r) for r in self.conn.execute(sql + " ORDER BY id", args)]

    def batch(self, batch_id: int) -> Batch:
        row = self.conn.execute(
            f"SELECT {self._BATCH_COLS} FROM gw_batches WHERE id=?", (batch_id,)
        ).fetchone()
        if row is None:
            raise NotFound(f"批次 {batch_id} 不存在", f"batch {batch_id} not found", code="batch_not_found")
        return self._batch_from_row(row)

    def find_checksum(self, layer: str, checksum: str, keys: np.ndarray | None = None) -> Batch | None:
        """The live batch of ``layer`` that imported a file with ``checksum`` and whose content
        is still the current one, so that importing the file again would change nothing.

        For the unit grid that is the current grid's batch (the newest live one); for
        targets, a live batch none of whose values a later live batch replaced; for a survey
        layer, a live batch none of whose rows a later live batch updated -- and, given the
        file's survey ``keys``, every one of them still held by a row that batch or an
        earlier one wrote (a row the file repeated unchanged may have been updated later).
        """
        rows = self.conn.execute(
            f"SELECT {self._BATCH_COLS} FROM gw_batches WHERE layer=? AND checksum=? AND status='active'"
            " ORDER BY id DESC",
            (layer, checksum),
        ).fetchall()
        for row in rows:
            batch = self._batch_from_row(row)
            if self._is_current(batch, keys):
                return batch
        return None

    def _is_current(self, batch: Batch, keys: np.ndarray | None) -> bool:
        conn = self.conn
        if batch.layer == "targets":
            return not conn.execute(
                "SELECT 1 FROM gw_targets_history h JOIN gw_batches b ON b.id = h.superseded_by"
                " WHERE h.batch_id=? AND b.status='active' LIMIT 1",
                (batch.id,),
            ).fetchone()
        if _is_grid(batch.layer):
            newest = _scalar_args(
                conn, "SELECT max(id) FROM gw_batches WHERE layer=? AND status='active'", (batch.layer,)
            )
            return bool(newest == batch.id)
        if not self._has_table(batch.layer):
            return True
        if conn.execute(
            f'SELECT 1 FROM "{batch.layer}_history" h JOIN gw_batches b ON b.id = h.gw_superseded_by'
            " WHERE h.gw_batch=? AND b.status='active' AND b.id<>? LIMIT 1",
            (batch.id, batch.id),
        ).fetchone():
            return False
        if keys is None:
            return True
        wanted = _key_set(keys)
        held = self._key_batches(batch.layer, wanted)
        return len(held) == len(wanted) and all(b <= batch.id for b, _ in held.values())

    def key_batches(self, spec: LayerSpec, keys: np.ndarray) -> dict[str, tuple[int, str | None]]:
        """For each of ``keys`` held by a current row of ``spec``: the batch that last wrote
        that row and the batch's user (None when imported without an account)."""
        if not self.has_layer(spec):
            return {}
        return self._key_batches(spec.name, _key_set(keys))

    def _key_batches(self, table: str, wanted: set[str]) -> dict[str, tuple[int, str | None]]:
        if not wanted:
            return {}
        conn = self.conn
        lo, hi = min(wanted), max(wanted)
        # new surveys usually bring new, consecutive ids: none stored in their range settles it
        if not conn.execute(
            f'SELECT 1 FROM "{table}" WHERE gw_key BETWEEN ? AND ? LIMIT 1', (lo, hi)
        ).fetchone():
            return {}
        conn.execute("CREATE TEMP TABLE IF NOT EXISTS gw_tmp_keys (k TEXT PRIMARY KEY)")
        conn.execute("DELETE FROM gw_tmp_keys")
        conn.executemany("INSERT OR IGNORE INTO gw_tmp_keys VALUES (?)", ((k,) for k in wanted))
        return {
            str(key): (int(batch_id), user)
            for key, batch_id, user in conn.execute(
                f'SELECT t.gw_key, t.gw_batch, b.user FROM "{table}" t JOIN gw_tmp_keys k ON t.gw_key = k.k'
                " LEFT JOIN gw_batches b ON b.id = t.gw_batch"
            )
        }

    def _has_table(self, name: str) -> bool:
        return bool(
            self.conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (name,)).fetchone()
        )

    def archived_source(self, batch_id: int) -> tuple[str, bytes]:
        """The original upload of a batch: the file itself, or a zip of its files."""
        row = self.conn.execute("SELECT name, path FROM gw_archive WHERE batch_id=?", (batch_id,)).fetchone()
        folder = self.path.parent / str(row[1]) if row is not None else None
        if row is None or folder is None or not folder.is_dir():
            raise NotFound(f"批次 {batch_id} 没有存档文件", f"no archived file for batch {batch_id}")
        files = sorted(p for p in folder.rglob("*") if p.is_file())
        if len(files) == 1 and files[0].name == str(row[0]):
            return str(row[0]), files[0].read_bytes()
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
            for f in files:
                zf.write(f, str(f.relative_to(folder)))
        return str(row[0]), buf.getvalue()

    def mark_rolled_back(self, batch_id: int) -> None:
        """Mark a live batch rolled back; refused (:class:`Conflict`) when it already is."""
        with self.transaction():
            self.conn.execute(
                "UPDATE gw_batches SET status='rolled_back', rolled_back_at=? WHERE id=? AND status='active'",
                (clock.now_iso(), batch_id),
            )
            if not self.conn.changes():
                self.batch(batch_id)  # NotFound for an unknown batch
                raise already_rolled_back(batch_id)
            batch = self.batch(batch_id)
            self.record_audit(
                "rollback",
                layer=batch.layer,
                batch_id=batch_id,
                counts={"added": batch.added, "updated": batch.updated},
                detail=batch.source_name,
            )

    # features ------------------------------------------------------------------------------
    def _columns(self, spec: LayerSpec) -> list[str]:
        return [f.name for f in spec.stored_fields]

    def write_features(
        self, spec: LayerSpec, batch_id: int, rows: FeatureRows, replace_all: bool
    ) -> WriteResult:
        """Store ``rows`` as batch ``batch_id``.

        Rows whose survey key matches a current row replace it (the old row moves to
        ``<layer>_history``); identical rows are left alone and counted as unchanged.
        With ``replace_all`` every current row not in ``rows`` is retired as well.
        Must be called inside :meth:`transaction`.
        """
        if not self._depth:
            raise RuntimeError("write_features must run inside transaction()")
        self._ensure_layer(spec)
        conn = self.conn
        srs = self.srs_epsg() or 0
        cols = self._columns(spec)
        n = len(rows)
        attrs = rows.attrs.reindex(columns=cols)
        columns = _column_lists(attrs, spec)
        blobs = encode_geometries(rows.geometry, srs)
        areas = shapely.area(rows.geometry)
        is_poly = np.isin(shapely.get_type_id(rows.geometry), (3, 6))
        area_list = [float(a) if p else None for a, p in zip(areas.tolist(), is_poly.tolist(), strict=True)]
        key_series = pd.Series(rows.keys, dtype=object)
        keys = key_series.where(key_series.notna(), None).map(lambda k: k if k is None else str(k)).tolist()
        units = [str(u) for u in rows.units.tolist()]

        existing: dict[str, tuple[int, tuple[Any, ...]]] = {}
        layer_has_rows = bool(conn.execute(f'SELECT 1 FROM "{spec.name}" LIMIT 1').fetchone())
        wanted = {k for k in keys if k is not None} if layer_has_rows else set()
        if wanted:
            qcols = ", ".join(f't."{c}"' for c in cols)
            select = f'SELECT t.fid, t.gw_key, t.geom, {qcols} FROM "{spec.name}" t'
            lo, hi = min(wanted), max(wanted)
            # new surveys usually bring new, consecutive ids: counting the stored keys in their
            # range (on the index) settles most imports without looking keys up one by one
            in_range = int(
                _scalar_args(
                    conn, f'SELECT count(*) FROM "{spec.name}" WHERE gw_key BETWEEN ? AND ?', (lo, hi)
                )
            )
            if in_range == 0:
                found: Any = ()
            elif in_range <= 4 * len(wanted):
                found = conn.execute(f"{select} WHERE t.gw_key BETWEEN ? AND ?", (lo, hi))
            else:
                conn.execute("CREATE TEMP TABLE IF NOT EXISTS gw_tmp_keys (k TEXT PRIMARY KEY)")
                conn.execute("DELETE FROM gw_tmp_keys")
                conn.executemany("INSERT OR IGNORE INTO gw_tmp_keys VALUES (?)", ((k,) for k in wanted))
                found = conn.execute(f"{select} JOIN gw_tmp_keys k ON t.gw_key = k.k")
            for row in found:
                if row[1] in wanted:
                    existing[row[1]] = (
                        int(row[0]),
                        (bytes(row[2]) if row[2] is not None else None, *row[3:]),
                    )

        records = list(zip(blobs, *columns, strict=True)) if existing else []
        to_retire: list[int] = []
        insert_rows: list[int] = []
        unit_updates: list[tuple[str, int]] = []
        added = updated = unchanged = 0
        kept_fids: set[int] = set()
        for i in range(n) if existing else ():
            key = keys[i]
            old = existing.get(key) if key is not None else None
            if old is not None:
                fid, old_record = old
                if old_record == records[i] or _same_record(old_record, records[i]):
                    unchanged += 1
                    kept_fids.add(fid)
                    unit_updates.append((units[i], fid))
                    continue
                to_retire.append(fid)
                updated += 1
            else:
                added += 1
            insert_rows.append(i)
        if unit_updates:
            conn.executemany(f'UPDATE "{spec.name}" SET gw_unit=? WHERE fid=?', unit_updates)
        if not existing:
            added = n
        if not existing or len(insert_rows) == n:
            inserts = list(zip(blobs, *columns, keys, [batch_id] * n, units, area_list, strict=True))
        else:
            inserts = [(*records[i], keys[i], batch_id, units[i], area_list[i]) for i in insert_rows]

        removed = 0
        if replace_all:
            current = [r[0] for r in conn.execute(f'SELECT fid FROM "{spec.name}"')]
            retire_set = set(to_retire)
            extra = [f for f in current if f not in kept_fids and f not in retire_set]
            removed = len(extra)
            to_retire.extend(extra)
        tx = self._tx_id()
        self._retire(spec, to_retire, batch_id)
        qcols = ", ".join(f'"{c}"' for c in cols)
        marks = ", ".join("?" for _ in range(len(cols) + 1 + len(_GW_COLUMNS)))
        conn.executemany(
            f'INSERT INTO "{spec.name}" (geom, {qcols}, gw_key, gw_batch, gw_unit, gw_area, gw_tx_from)'
            f" VALUES ({marks}, {tx})",
            inserts,
        )
        last = int(conn.last_insert_rowid())
        # the rows just written got consecutive fids (AUTOINCREMENT, one statement), all above
        # the existing ones
        new_fids = np.arange(last - len(inserts) + 1, last + 1, dtype=np.int64)
        chosen = (
            np.arange(n, dtype=np.int64)
            if (not existing or len(insert_rows) == n)
            else np.asarray(insert_rows, dtype=np.int64)
        )
        previous = _GEOMETRY_CACHE.get((self.location, spec.name, self.layer_generation(spec)))
        if previous is None and not layer_has_rows:
            previous = (np.empty(0, dtype=np.int64), np.empty(0, dtype=object), np.empty(0, dtype=object))
        self._touch(spec)
        self._bump_generation(spec)
        if previous is not None:
            # keep this process's decoded copy current
            old_fids, old_geoms, old_units = previous
            old_units = old_units.copy()
            if unit_updates:
                upd_fids = np.array([f for _, f in unit_updates], dtype=np.int64)
                at = np.searchsorted(old_fids, upd_fids)
                old_units[at] = np.array([u for u, _ in unit_updates], dtype=object)
            keep = ~np.isin(old_fids, np.asarray(to_retire, dtype=np.int64))
            self._cache_geometry(
                spec,
                np.concatenate([old_fids[keep], new_fids]),
                np.concatenate([old_geoms[keep], np.asarray(rows.geometry, dtype=object)[chosen]]),
                np.concatenate([old_units[keep], np.asarray(units, dtype=object)[chosen]]),
            )
        return WriteResult(
            added=added, updated=updated, unchanged=unchanged, removed=removed, fids=new_fids, rows=chosen
        )

    def _cache_geometry(
        self, spec: LayerSpec, fids: np.ndarray, geoms: np.ndarray, units: np.ndarray
    ) -> None:
        key = (self.location, spec.name, self.layer_generation(spec))
        for k in [k for k in _GEOMETRY_CACHE if k[:2] == key[:2]]:
            del _GEOMETRY_CACHE[k]
        _GEOMETRY_CACHE[key] = (fids, geoms, units)

    def _retire(self, spec: LayerSpec, fids: list[int], batch_id: int) -> None:
        """Move current rows to the history as replaced (or rolled back) by ``batch_id`` at this
        transaction's tx."""
        if not fids:
            return
        conn = self.conn
        cols = ", ".join(["geom", *[f'"{c}"' for c in self._columns(spec)], *[n for n, _ in _GW_COLUMNS]])
        conn.execute("CREATE TEMP TABLE IF NOT EXISTS gw_tmp_fids (f INTEGER PRIMARY KEY)")
        conn.execute("DELETE FROM gw_tmp_fids")
        conn.executemany("INSERT OR IGNORE INTO gw_tmp_fids VALUES (?)", ((f,) for f in fids))
        conn.execute(
            f'INSERT INTO "{spec.name}_history" ({cols}, gw_orig_fid, gw_superseded_by, gw_tx_from, gw_tx_to)'
            f' SELECT {cols}, fid, ?, gw_tx_from, ? FROM "{spec.name}" WHERE fid IN (SELECT f FROM gw_tmp_fids)',
            (batch_id, self._tx_id()),
        )
        conn.execute(f'DELETE FROM "{spec.name}" WHERE fid IN (SELECT f FROM gw_tmp_fids)')

    def _touch(self, spec: LayerSpec) -> None:
        self.conn.execute(
            "UPDATE gpkg_contents SET last_change=? WHERE table_name=?", (clock.now_iso(), spec.name)
        )

    def update_extent(self, spec: LayerSpec, bounds: tuple[float, float, float, float] | None) -> None:
        if bounds is None:
            return
        self.conn.execute(
            "UPDATE gpkg_contents SET min_x=?, min_y=?, max_x=?, max_y=? WHERE table_name=?",
            (*bounds, spec.name),
        )

    def rollback_layer(self, spec: LayerSpec, batch_id: int) -> tuple[int, int]:
        """Take the rows of ``batch_id`` out of the current rows and put back the rows it retired.
        Returns (removed, restored).

        Nothing is deleted: the batch's rows move to the history (ending at this transaction's
        tx) and the rows it had replaced come back as new current versions with their own fid,
        so the layer as it was at any earlier tx stays readable.  Restored survey rows get
        their unit on the grid version in force today from the stored assignments.  Refuses
        (:class:`Conflict`) when a later active batch replaced rows of this one.  Must be
        called inside :meth:`transaction`.
        """
        conn = self.conn
        if not self.has_layer(spec):
            return 0, 0
        later = [
            r[0]
            for r in conn.execute(
                f'SELECT DISTINCT h.gw_superseded_by FROM "{spec.name}_history" h JOIN gw_batches b'
                " ON b.id = h.gw_superseded_by WHERE h.gw_batch=? AND b.status='active' AND b.id<>?",
                (batch_id, batch_id),
            )
        ]
        if later:
            ids = ", ".join(str(x) for x in sorted(later))
            raise Conflict(
                f"批次 {ids} 更新了批次 {batch_id} 的要素，请先回滚批次 {ids}",
                f"batch {ids} updated features of batch {batch_id}; roll back batch {ids} first",
                code="rollback_blocked",
                details={"blocking_batches": sorted(later)},
            )
        tx = self._tx_id()
        mine = [
            int(r[0]) for r in conn.execute(f'SELECT fid FROM "{spec.name}" WHERE gw_batch=?', (batch_id,))
        ]
        self._retire(spec, mine, batch_id)
        cols = ", ".join(["geom", *[f'"{c}"' for c in self._columns(spec)], *[n for n, _ in _GW_COLUMNS]])
        # the rows the batch replaced (a batch never replaces its own rows: gw_batch<>batch_id
        # leaves out the rows just moved)
        conn.execute(
            f'INSERT INTO "{spec.name}" (fid, {cols}, gw_tx_from) SELECT gw_orig_fid, {cols}, ?'
            f' FROM "{spec.name}_history" WHERE gw_superseded_by=? AND gw_batch<>? ORDER BY gw_orig_fid',
            (tx, batch_id, batch_id),
        )
        restored = conn.changes()
        if restored and not spec.is_grid:
            back = np.array(
                [r[0] for r in conn.execute(f'SELECT fid FROM "{spec.name}" WHERE gw_tx_from=?', (tx,))],
                dtype=np.int64,
            )
            current = self.current_grid_version()
            if current is not None:
                fids, units = self.read_assignment(spec, current.id, back)
                conn.executemany(
                    f'UPDATE "{spec.name}" SET gw_unit=? WHERE fid=?',
                    zip(units.tolist(), fids.tolist(), strict=True),
                )
        self._touch(spec)
        self._bump_generation(spec)
        return len(mine), int(restored)

    def read_attributes(self, spec: LayerSpec, columns: list[str] | None = None) -> pd.DataFrame:
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

    def layer_generation(self, spec: LayerSpec) -> str:
        """Token that changes whenever the rows or geometries of ``spec`` change."""
        return self._meta(f"gen:{spec.name}") or ""

    def _bump_generation(self, spec: LayerSpec) -> None:
        # a fresh random token, so a generation rolled back with its transaction is never reused
        self.conn.execute(
            "INSERT OR REPLACE INTO gw_meta VALUES (?, ?)", (f"gen:{spec.name}", uuid.uuid4().hex)
        )

    def read_rows(self, spec: LayerSpec, fids: np.ndarray) -> pd.DataFrame:
        """Attributes (with ``fid``, ``gw_unit``) of the given current rows, in fid order."""
        cols = [*self._columns(spec), "gw_unit"]
        names = ["fid", *cols]
        if not self.has_layer(spec) or len(fids) == 0:
            return pd.DataFrame({c: pd.Series(dtype=object) for c in names})
        qcols = ", ".join(["fid", *[f'"{c}"' for c in cols]])
        wanted = [int(f) for f in np.unique(np.asarray(fids, dtype=np.int64))]
        rows: list[Any] = []
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows += self.conn.execute(
                f'SELECT {qcols} FROM "{spec.name}" WHERE fid IN ({marks})', chunk
            ).fetchall()
        rows.sort(key=lambda r: r[0])
        return pd.DataFrame({n: np.array([r[i] for r in rows], dtype=object) for i, n in enumerate(names)})

    def read_table(self, spec: LayerSpec, columns: list[str], tx: int | None = None) -> pa.Table:
        """Current rows as an Arrow table (``fid`` plus ``columns``), ordered by fid; with ``tx``
        the row versions visible at that tx instead (current and retired ones, each fid once).

        Large layers are read through GDAL's Arrow interface, about ten times faster than
        fetching a million rows through SQLite into Python objects -- in a helper process
        (:func:`_gdal_reader`), never in this one: GDAL carries its own copy of SQLite, and
        POSIX file locks belong to a whole process, so a GDAL read here would silently drop
        the locks this process's other connections hold on the store (seen under load as
        commits reported failed though written, and a malformed database).  Small layers and
        reads inside a transaction (GDAL cannot see uncommitted rows) use this connection.
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
        if not self._depth and self.layer_count(spec) >= GDAL_MIN_ROWS:
            before = self.revision()
            try:
                table = _gdal_reader().submit(_read_arrow, str(self.path), spec.name, columns).result()
            except Exception:  # GDAL cannot read it for some reason: use SQLite
                table = None
            if table is not None and self.revision() == before:
                return _conform(table, columns, kinds)
        qcols = ", ".join(["fid", *[f'"{c}"' for c in columns]])
        rows = self.conn.execute(f'SELECT {qcols} FROM "{spec.name}" ORDER BY fid').fetchall()
        data = list(zip(*rows, strict=True)) if rows else [[] for _ in range(len(columns) + 1)]
        arrays = {"fid": pa.array(data[0], type=pa.int64())}
        for c, values in zip(columns, data[1:], strict=True):
            arrays[c] = _arrow_column(list(values), kinds.get(c, "str"))
        return pa.table(arrays)

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
        key = (self.location, spec.name, self.layer_generation(spec))
        cached = _GEOMETRY_CACHE.get(key)
        if cached is None:
            # a writer never waits for a reader's fill: the reader may be waiting for its commit
            with filling(("geometry", *key[:2])) if not self._depth else contextlib.nullcontext():
                cached = _GEOMETRY_CACHE.get(key)
                if cached is None:
                    rows = self.conn.execute(
                        f'SELECT fid, geom, gw_unit FROM "{spec.name}" ORDER BY fid'
                    ).fetchall()
                    if not rows:
                        return np.empty(0, dtype=np.int64), np.empty(0, dtype=object)
                    cached = (
                        np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows)),
                        decode_geometries([r[1] for r in rows]),  # type: ignore[misc]
                        np.array([r[2] for r in rows], dtype=object),
                    )
                    self._cache_geometry(spec, *cached)
        fid_arr, geoms, _ = cached
        if fids is not None:
            keep = np.isin(fid_arr, fids)
            return fid_arr[keep], geoms[keep]
        return fid_arr, geoms

    def _current_assignment(
        self, spec: LayerSpec, fids: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(fid, unit code)`` of the current rows, ordered by fid (from the kept copy when current)."""
        if not self.has_layer(spec):
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=object)
        cached = _GEOMETRY_CACHE.get((self.location, spec.name, self.layer_generation(spec)))
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

    def set_units(self, spec: LayerSpec, fids: np.ndarray, units: np.ndarray) -> int:
        if not self.has_layer(spec) or len(fids) == 0:
            return 0
        conn = self.conn
        fids = np.asarray(fids, dtype=np.int64)
        units = np.asarray(units, dtype=object)
        cached = _GEOMETRY_CACHE.get((self.location, spec.name, self.layer_generation(spec)))
        aligned = cached is not None and np.array_equal(cached[0], fids)
        if cached is not None and aligned:
            # the rows are exactly those of the cached generation, in fid order
            changed = np.flatnonzero(cached[2] != units)
        else:
            rows = conn.execute(f'SELECT fid, gw_unit FROM "{spec.name}" ORDER BY fid').fetchall()
            cur_fids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
            cur_units = np.array([r[1] for r in rows], dtype=object)
            pos = np.searchsorted(cur_fids, fids)
            pos = np.clip(pos, 0, max(len(cur_fids) - 1, 0))
            known = (len(cur_fids) > 0) & (cur_fids[pos] == fids)
            changed = np.flatnonzero(known & (cur_units[pos] != units))
        if len(changed):
            conn.executemany(
                f'UPDATE "{spec.name}" SET gw_unit=? WHERE fid=?',
                ((str(units[i]), int(fids[i])) for i in changed),
            )
            self._bump_generation(spec)
            if cached is not None and aligned:
                self._cache_geometry(spec, cached[0], cached[1], units.copy())
        return len(changed)

    def layer_count(self, spec: LayerSpec) -> int:
        if not self.has_layer(spec):
            return 0
        return int(_scalar(self.conn, f'SELECT count(*) FROM "{spec.name}"'))

    # remembered value mappings ---------------------------------------------------------------
    _VALUE_MAP_COLS = "id, layer, field, raw_key, raw, code, user, created_at, removed_at, removed_by"

    def value_maps(self, layer: str | None = None, *, include_removed: bool = False) -> list[ValueMap]:
        if not self._has_table("gw_value_maps"):
            return []
        sql = f"SELECT {self._VALUE_MAP_COLS} FROM gw_value_maps WHERE 1=1"
        args: tuple[Any, ...] = ()
        if layer is not None:
            sql += " AND layer=?"
            args = (layer,)
        if not include_removed:
            sql += " AND removed_at IS NULL"
        return [ValueMap(*row) for row in self.conn.execute(sql + " ORDER BY id", args)]

    def save_value_map(self, layer: str, field: str, raw_key: str, raw: str, code: str) -> int:
        with self.admin_transaction():
            self.conn.execute(_VALUE_MAPS_SQL)
            now = clock.now_iso()
            self.conn.execute(
                "UPDATE gw_value_maps SET removed_at=?, removed_by=? WHERE layer=? AND field=? AND raw_key=?"
                " AND removed_at IS NULL",
                (now, self.actor.user, layer, field, raw_key),
            )
            self.conn.execute(
                "INSERT INTO gw_value_maps (layer, field, raw_key, raw, code, user, created_at)"
                " VALUES (?,?,?,?,?,?,?)",
                (layer, field, raw_key, raw, code, self.actor.user, now),
            )
            map_id = int(self.conn.last_insert_rowid())
            self.record_audit(
                "mapping_add", layer=layer, counts={"id": map_id}, detail=f"{field}: {raw} → {code}"
            )
        return map_id

    def remove_value_map(self, map_id: int) -> ValueMap:
        with self.admin_transaction():
            found = [m for m in self.value_maps(include_removed=True) if m.id == map_id]
            if not found:
                raise NotFound(
                    f"没有编号为 {map_id} 的值对应", f"no value mapping {map_id}", code="mapping_not_found"
                )
            if found[0].removed_at is not None:
                raise Conflict(
                    f"值对应 {map_id} 已删除",
                    f"value mapping {map_id} was already removed",
                    code="already_removed",
                )
            self.conn.execute(
                "UPDATE gw_value_maps SET removed_at=?, removed_by=? WHERE id=?",
                (clock.now_iso(), self.actor.user, map_id),
            )
            m = found[0]
            self.record_audit(
                "mapping_remove",
                layer=m.layer,
                counts={"id": map_id},
                detail=f"{m.field}: {m.raw} → {m.code}",
            )
        return next(v for v in self.value_maps(include_removed=True) if v.id == map_id)

    # targets -------------------------------------------------------------------------------
    # accounts and audit trail ----------------------------------------------------------------
    @contextmanager
    def admin_transaction(self) -> Iterator[None]:
        """All-or-nothing scope for the account and audit tables: inside the current
        transaction when there is one, else its own -- without a new revision, since no
        survey data changes (cached figures stay valid)."""
        if self._depth:
            yield
            return
        conn = self.conn
        try:
            conn.execute("BEGIN IMMEDIATE")
        except apsw.Error as exc:
            raise _store_error(exc, conn.system_errno) from exc
        self._depth = 1
        try:
            yield
            conn.execute("COMMIT")
        except BaseException as exc:
            os_errno = conn.system_errno
            with contextlib.suppress(apsw.Error):
                conn.execute("ROLLBACK")
            if isinstance(exc, apsw.Error):
                raise _store_error(exc, os_errno) from exc
            raise
        finally:
            self._depth = 0

    _USER_COLS = "name, role, password, active, created_at, failed_logins, locked_until, session_version"
    # failed logins and locks come from gw_logins (a store of schema 2 kept them in gw_users)
    _USER_SELECT = (
        "SELECT u.name, u.role, u.password, u.active, u.created_at, coalesce(l.failures, 0),"
        " l.locked_until, u.session_version FROM gw_users u"
        " LEFT JOIN gw_logins l ON l.kind = 'user' AND l.key = u.name"
    )

    def _has_accounts(self) -> bool:
        return bool(self.conn.execute("SELECT 1 FROM sqlite_master WHERE name='gw_users'").fetchone())

    def _has_logins(self) -> bool:
        return bool(self.conn.execute("SELECT 1 FROM sqlite_master WHERE name='gw_logins'").fetchone())

    def _user_select(self) -> str:
        if self._has_logins():
            return self._USER_SELECT
        return f"SELECT {self._USER_COLS} FROM gw_users u"  # a read-only store of schema 2

    def get_user(self, name: str) -> User | None:
        if not self._has_accounts():
            return None
        row = self.conn.execute(self._user_select() + " WHERE u.name=?", (name,)).fetchone()
        return None if row is None else _user(row)

    def list_users(self) -> list[User]:
        if not self._has_accounts():
            return []
        return [_user(r) for r in self.conn.execute(self._user_select() + " ORDER BY u.name")]

    def save_user(self, user: User) -> None:
        with self.admin_transaction():
            self.conn.execute(
                f"INSERT OR REPLACE INTO gw_users ({self._USER_COLS}) VALUES (?,?,?,?,?,?,?,?)",
                (
                    user.name,
                    user.role,
                    user.password,
                    int(user.active),
                    user.created_at or clock.now_iso(),
                    0,
                    None,
                    user.session_version,
                ),
            )

    def login_failures(self, kind: str, key: str) -> LoginFailures:
        row = None
        if self._has_logins():
            row = self.conn.execute(
                "SELECT failures, last_failure, locked_until FROM gw_logins WHERE kind=? AND key=?",
                (kind, key),
            ).fetchone()
        if row is None:
            return LoginFailures(kind, key)
        return LoginFailures(kind, key, int(row[0]), row[1], row[2])

    def save_login_failures(self, record: LoginFailures) -> None:
        with self.admin_transaction():
            self.conn.execute(
                "INSERT OR REPLACE INTO gw_logins (kind, key, failures, last_failure, locked_until)"
                " VALUES (?,?,?,?,?)",
                (
                    record.kind,
                    record.key,
                    record.failures,
                    record.last_failure or clock.now_iso(),
                    record.locked_until,
                ),
            )
            forget = datetime.fromtimestamp(datetime.now(UTC).timestamp() - _LOGINS_FORGOTTEN_S, UTC)
            forget_iso = forget.replace(microsecond=0).isoformat().replace("+00:00", "Z")
            self.conn.execute(
                "DELETE FROM gw_logins WHERE last_failure < ? AND coalesce(locked_until, '') < ?",
                (forget_iso, clock.now_iso()),
            )
            excess = _scalar(self.conn, "SELECT count(*) FROM gw_logins") - _LOGINS_KEPT
            if excess > 0:  # the oldest go first, locks last
                self.conn.execute(
                    "DELETE FROM gw_logins WHERE rowid IN (SELECT rowid FROM gw_logins"
                    " ORDER BY coalesce(locked_until, '') > ?, last_failure, rowid LIMIT ?)",
                    (clock.now_iso(), excess),
                )

    def clear_login_failures(self, kind: str, key: str) -> None:
        if not self._has_logins():
            return
        with self.admin_transaction():
            self.conn.execute("DELETE FROM gw_logins WHERE kind=? AND key=?", (kind, key))

    _TOKEN_COLS = "id, user, label, digest, created_at, last_used, revoked_at"

    def add_token(self, user: str, label: str, digest: str) -> int:
        with self.admin_transaction():
            self.conn.execute(
                "INSERT INTO gw_tokens (user, label, digest, created_at) VALUES (?,?,?,?)",
                (user, label, digest, clock.now_iso()),
            )
            return int(self.conn.last_insert_rowid())

    def find_token(self, digest: str) -> ApiToken | None:
        if not self._has_accounts():
            return None
        row = self.conn.execute(
            f"SELECT {self._TOKEN_COLS} FROM gw_tokens WHERE digest=?", (digest,)
        ).fetchone()
        return None if row is None else ApiToken(*row)

    def list_tokens(self, user: str | None = None) -> list[ApiToken]:
        if not self._has_accounts():
            return []
        sql = f"SELECT {self._TOKEN_COLS} FROM gw_tokens"
        args: tuple[Any, ...] = ()
        if user is not None:
            sql += " WHERE user=?"
            args = (user,)
        return [ApiToken(*r) for r in self.conn.execute(sql + " ORDER BY id", args)]

    def revoke_token(self, token_id: int) -> bool:
        with self.admin_transaction():
            self.conn.execute(
                "UPDATE gw_tokens SET revoked_at=? WHERE id=? AND revoked_at IS NULL",
                (clock.now_iso(), token_id),
            )
            return bool(self.conn.changes())

    def touch_token(self, token_id: int) -> None:
        with contextlib.suppress(StoreError), self.admin_transaction():
            self.conn.execute("UPDATE gw_tokens SET last_used=? WHERE id=?", (clock.now_iso(), token_id))

    def record_audit(
        self,
        action: str,
        *,
        layer: str | None = None,
        batch_id: int | None = None,
        counts: dict[str, Any] | None = None,
        detail: str | None = None,
    ) -> None:
        if not self._has_accounts():
            return  # a read-only store of an earlier version: nothing can be written anyway
        with self.admin_transaction():
            self.conn.execute(
                "INSERT INTO gw_audit (at, user, client, action, layer, batch_id, counts, detail)"
                " VALUES (?,?,?,?,?,?,?,?)",
                (
                    clock.now_iso(),
                    self.actor.user,
                    self.actor.client,
                    action,
                    layer,
                    batch_id,
                    json.dumps(counts or {}, ensure_ascii=False),
                    detail,
                ),
            )

    def audit_entries(
        self, *, limit: int = 200, offset: int = 0, user: str | None = None, action: str | None = None
    ) -> list[AuditEntry]:
        if not self._has_accounts():
            return []
        where, args = [], []
        if user:
            where.append("user=?")
            args.append(user)
        if action:
            where.append("action=?")
            args.append(action)
        sql = "SELECT id, at, user, client, action, layer, batch_id, counts, detail FROM gw_audit"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id DESC LIMIT ? OFFSET ?"
        return [
            AuditEntry(r[0], r[1], r[2], r[3], r[4], r[5], r[6], json.loads(r[7] or "{}"), r[8])
            for r in self.conn.execute(sql, (*args, int(limit), int(offset)))
        ]

    def targets(self, tx: int | None = None) -> pd.DataFrame:
        cols = "code, layer, metric, target, batch_id"
        if tx is None:
            rows = self.conn.execute(f"SELECT {cols} FROM gw_targets").fetchall()
        else:
            rows = self.conn.execute(
                f"SELECT {cols} FROM gw_targets WHERE coalesce(tx_from, 0) <= ?1 UNION ALL"
                f" SELECT {cols} FROM gw_targets_history WHERE coalesce(tx_from, 0) <= ?1 AND tx_to > ?1",
                (tx,),
            ).fetchall()
        return pd.DataFrame(rows, columns=["code", "layer", "metric", "target", "batch_id"])

    def set_targets(self, rows: pd.DataFrame, batch_id: int) -> int:
        conn = self.conn
        tx = self._tx_id()
        old = (
            conn.execute(
                "SELECT code, layer, metric, target, batch_id, tx_from FROM gw_targets WHERE (code, layer, metric) IN"
                " (SELECT column1, column2, column3 FROM (VALUES "
                + ",".join("(?,?,?)" for _ in range(len(rows)))
                + "))",
                [v for r in rows.itertuples(index=False) for v in (r.code, r.layer, r.metric)],
            ).fetchall()
            if len(rows)
            else []
        )
        conn.executemany(
            "INSERT INTO gw_targets_history (code, layer, metric, target, batch_id, tx_from, superseded_by, tx_to)"
            " VALUES (?,?,?,?,?,?,?,?)",
            [(*o, batch_id, tx) for o in old],
        )
        conn.executemany(
            "INSERT OR REPLACE INTO gw_targets (code, layer, metric, target, batch_id, tx_from) VALUES (?,?,?,?,?,?)",
            [
                (str(c), str(la), str(m), float(t), batch_id, tx)
                for c, la, m, t in zip(
                    rows["code"], rows["layer"], rows["metric"], rows["target"], strict=True
                )
            ],
        )
        return len(rows)

    def rollback_targets(self, batch_id: int) -> int:
        """Take the batch's values out; each comes back as the value of the latest live batch that
        set it before (none: no target).  Nothing is deleted: the values move to the history."""
        conn = self.conn
        tx = self._tx_id()
        mine = conn.execute(
            "SELECT code, layer, metric, target, batch_id, tx_from FROM gw_targets WHERE batch_id=?",
            (batch_id,),
        ).fetchall()
        conn.executemany(
            "INSERT INTO gw_targets_history (code, layer, metric, target, batch_id, tx_from, superseded_by, tx_to)"
            " VALUES (?,?,?,?,?,?,?,?)",
            [(*o, batch_id, tx) for o in mine],
        )
        conn.execute("DELETE FROM gw_targets WHERE batch_id=?", (batch_id,))
        keys = {(str(r[0]), str(r[1]), str(r[2])) for r in mine}
        earlier: dict[tuple[str, str, str], tuple[float, int]] = {}
        if keys:
            for code, layer, metric, target, bid in conn.execute(
                "SELECT h.code, h.layer, h.metric, h.target, h.batch_id FROM gw_targets_history h"
                " JOIN gw_batches b ON b.id = h.batch_id WHERE b.status='active' AND b.id<>?",
                (batch_id,),
            ):
                key = (str(code), str(layer), str(metric))
                if key in keys and (key not in earlier or earlier[key][1] < int(bid)):
                    earlier[key] = (float(target), int(bid))
        conn.executemany(
            "INSERT INTO gw_targets (code, layer, metric, target, batch_id, tx_from) VALUES (?,?,?,?,?,?)",
            [(*key, target, bid, tx) for key, (target, bid) in sorted(earlier.items())],
        )
        return len(mine)

    # grid versions and assignments -----------------------------------------------------------
    def grid_versions(self) -> list[GridVersion]:
        if not self._has_table("gw_grid_versions"):
            return []
        return [
            GridVersion(int(r[0]), str(r[1]), int(r[2]), r[3], r[4], int(r[5] or 0), str(r[6] or ""), r[7])
            for r in self.conn.execute(
                "SELECT v.id, v.valid_from, v.tx, v.parent, v.rolled_back_tx, v.units, b.created_at, b.user"
                " FROM gw_grid_versions v LEFT JOIN gw_batches b ON b.id = v.id ORDER BY v.id"
            )
        ]

    def current_grid_version(self) -> GridVersion | None:
        alive = [v for v in self.grid_versions() if v.rolled_back_tx is None]
        return alive[-1] if alive else None

    def add_grid_version(self, batch_id: int, valid_from: str) -> GridVersion:
        """Register the grid written by ``batch_id`` (inside its transaction) as a new version."""
        parent = self.current_grid_version()
        tx = self._tx_id()
        grid = next(s for s in layers.all_layers() if s.is_grid)
        units = self.layer_count(grid)
        self.conn.execute(
            "INSERT INTO gw_grid_versions (id, valid_from, tx, parent, units) VALUES (?,?,?,?,?)",
            (batch_id, valid_from, tx, None if parent is None else parent.id, units),
        )
        return GridVersion(batch_id, valid_from, tx, None if parent is None else parent.id, None, units)

    def retire_grid_version(self, batch_id: int) -> None:
        self.conn.execute(
            "UPDATE gw_grid_versions SET rolled_back_tx=? WHERE id=? AND rolled_back_tx IS NULL",
            (self._tx_id(), batch_id),
        )

    def _chain(self, version: int) -> list[int]:
        """``version`` and its ancestors, the one without a parent first."""
        parents = {v.id: v.parent for v in self.grid_versions()}
        if version not in parents:
            raise NotFound(f"网格版本 {version} 不存在", f"no grid version {version}", code="unknown_grid")
        chain = [version]
        while (parent := parents.get(chain[-1])) is not None and len(chain) <= len(parents):
            chain.append(int(parent))
        return chain[::-1]

    def write_assignment(self, spec: LayerSpec, version: int, fids: np.ndarray, units: np.ndarray) -> None:
        if len(fids) == 0:
            return
        self._ensure_layer(spec)
        self.conn.executemany(
            f'INSERT OR REPLACE INTO "{spec.name}_assign" (version, fid, unit) VALUES ({int(version)}, ?, ?)',
            zip(np.asarray(fids, dtype=np.int64).tolist(), [str(u) for u in units.tolist()], strict=True),
        )

    def keep_assignment(self, spec: LayerSpec, version: int, fids: np.ndarray | None = None) -> None:
        """Keep the stored unit (``gw_unit``) of the current rows ``fids`` (all: None) as their
        unit on grid ``version`` -- copied inside SQLite, about three times faster than binding."""
        if not self.has_layer(spec):
            return
        self._ensure_layer(spec)
        sql = f'INSERT OR REPLACE INTO "{spec.name}_assign" (version, fid, unit) SELECT ?, fid, gw_unit FROM "{spec.name}"'
        if fids is None:
            self.conn.execute(sql, (int(version),))
            return
        wanted = np.unique(np.asarray(fids, dtype=np.int64))
        if not len(wanted):
            return
        lo, hi = int(wanted[0]), int(wanted[-1])
        if hi - lo + 1 == len(wanted):  # rows just written: consecutive fids
            self.conn.execute(sql + " WHERE fid BETWEEN ? AND ?", (int(version), lo, hi))
            return
        self.conn.execute("CREATE TEMP TABLE IF NOT EXISTS gw_tmp_fids (f INTEGER PRIMARY KEY)")
        self.conn.execute("DELETE FROM gw_tmp_fids")
        self.conn.executemany("INSERT OR IGNORE INTO gw_tmp_fids VALUES (?)", ((int(f),) for f in wanted))
        self.conn.execute(sql + " WHERE fid IN (SELECT f FROM gw_tmp_fids)", (int(version),))

    def read_assignment(
        self, spec: LayerSpec, version: int | None = None, fids: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(fid, unit code)`` ordered by fid: of the current rows as stored with them
        (``version`` None), else of every row version (or of ``fids``) on grid ``version``
        from the stored assignments (UNASSIGNED for a fid without one)."""
        if version is None:
            return self._current_assignment(spec, fids)
        chain = self._chain(version)
        table = f"{spec.name}_assign"
        wanted = None if fids is None else np.unique(np.asarray(fids, dtype=np.int64))
        if not self._has_table(table):
            empty = np.empty(0, dtype=np.int64) if wanted is None else wanted
            return empty, np.full(len(empty), UNASSIGNED, dtype=object)
        conn = self.conn
        if wanted is not None:
            conn.execute("CREATE TEMP TABLE IF NOT EXISTS gw_tmp_fids (f INTEGER PRIMARY KEY)")
            conn.execute("DELETE FROM gw_tmp_fids")
            conn.executemany("INSERT OR IGNORE INTO gw_tmp_fids VALUES (?)", ((int(f),) for f in wanted))
            where = " AND fid IN (SELECT f FROM gw_tmp_fids)"
        else:
            where = ""
        out_f = np.empty(0, dtype=np.int64)
        out_u = np.empty(0, dtype=object)
        for v in chain:
            rows = conn.execute(
                f'SELECT fid, unit FROM "{table}" WHERE version=?{where} ORDER BY fid', (v,)
            ).fetchall()
            if not rows:
                continue
            f = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
            u = np.array([r[1] for r in rows], dtype=object)
            if not len(out_f):
                out_f, out_u = f, u
                continue
            pos = np.clip(np.searchsorted(out_f, f), 0, len(out_f) - 1)
            hit = out_f[pos] == f
            out_u[pos[hit]] = u[hit]
            if not hit.all():
                out_f = np.concatenate([out_f, f[~hit]])
                out_u = np.concatenate([out_u, u[~hit]])
                order = np.argsort(out_f, kind="stable")
                out_f, out_u = out_f[order], out_u[order]
        if wanted is not None and len(out_f) != len(wanted):
            units = np.full(len(wanted), UNASSIGNED, dtype=object)
            if len(out_f):
                units[np.searchsorted(wanted, out_f)] = out_u
            return wanted, units
        return out_f, out_u

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


_ARROW_TYPES = {"str": pa.string(), "int": pa.int64(), "float": pa.float64(), "date": pa.date32()}


def _arrow_column(values: list[Any], kind: str) -> pa.Array:
    if kind == "date":
        return pc.cast(pa.array(values, type=pa.string()), pa.date32())
    return pa.array(values, type=_ARROW_TYPES[kind])


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


def _common_root(paths: list[Path]) -> Path:
    return Path(os.path.commonpath([str(p.parent) for p in paths]))


def _scalar_args(conn: apsw.Connection, sql: str, args: tuple[Any, ...]) -> Any:
    row = conn.execute(sql, args).fetchone()
    return None if row is None else row[0]


def _scalar(conn: apsw.Connection, sql: str) -> Any:
    row = conn.execute(sql).fetchone()
    return None if row is None else row[0]


#: Layers with at least this many rows are read through GDAL in a helper process (see
#: GpkgStore.read_table): below it, fetching through SQLite costs less than the round trip.
GDAL_MIN_ROWS = 100_000
_READER: tuple[int, ProcessPoolExecutor] | None = None
_READER_LOCK = threading.Lock()


def _gdal_reader() -> ProcessPoolExecutor:
    """This process's helper process for GDAL reads of the store (started on first use)."""
    global _READER
    with _READER_LOCK:
        if _READER is None or _READER[0] != os.getpid():
            executor = ProcessPoolExecutor(1, mp_context=untrusted.process_context())
            atexit.register(executor.shutdown, wait=True, cancel_futures=True)
            _READER = (os.getpid(), executor)
        return _READER[1]


def _read_arrow(path: str, layer: str, columns: list[str]) -> pa.Table:
    """Runs in the helper process: ``fid`` and ``columns`` of ``layer`` as Arrow."""
    _, table = pyogrio.read_arrow(path, layer=layer, columns=columns, read_geometry=False, return_fids=True)
    return table


def _is_grid(layer: str) -> bool:
    spec = next((s for s in layers.all_layers() if s.name == layer), None)
    return spec is not None and spec.is_grid


def _key_set(keys: np.ndarray) -> set[str]:
    """The survey ids among ``keys`` as text (rows without one left out)."""
    return {str(k) for k in keys.tolist() if k is not None and k == k}


def already_rolled_back(batch_id: int) -> Conflict:
    return Conflict(
        f"批次 {batch_id} 已回滚", f"batch {batch_id} was already rolled back", code="already_rolled_back"
    )


def _user(row: tuple[Any, ...]) -> User:
    name, role, password, active, created_at, failed, locked_until, version = row
    return User(
        name, role, password, bool(active), created_at, int(failed or 0), locked_until, int(version or 0)
    )


def _store_error(exc: apsw.Error, os_errno: int | None = None) -> StoreError:
    """The user's view of a failed SQLite call; ``os_errno`` is the OS error of the last failed
    file operation (``Connection.system_errno``), which tells what a plain I/O error was: a
    write beyond the file size allowed (EFBIG) or on a full disk, or on a read-only file."""
    text = f"{type(exc).__name__} {exc}".lower()
    if "readonly" in text or "read-only" in text:
        return read_only()
    if isinstance(exc, apsw.FullError):
        return disk_full()
    if isinstance(exc, (apsw.IOError, apsw.CantOpenError)) and (known := write_error(os_errno)):
        return known
    if "locked" in text or "busy" in text:
        return StoreError("存储正忙，请稍后重试", "the store is busy, try again", code="store_busy")
    return StoreError(f"存储错误: {exc}", f"store error: {exc}")


def _same_record(old: tuple[Any, ...], new: tuple[Any, ...]) -> bool:
    if len(old) != len(new):
        return False
    for a, b in zip(old, new, strict=True):
        if isinstance(a, float) and isinstance(b, float):
            if not (a == b or (np.isnan(a) and np.isnan(b))):
                return False
        elif isinstance(a, (bytes, memoryview)) or isinstance(b, (bytes, memoryview)):
            if bytes(a or b"") != bytes(b or b""):
                return False
        elif a != b:
            return False
    return True


def _column_lists(attrs: pd.DataFrame, spec: LayerSpec) -> list[list[Any]]:
    """Per field, the column as a list of plain Python values (None for missing)."""
    out: list[list[Any]] = []
    for f in spec.stored_fields:
        col = attrs[f.name]
        present = col.notna()
        if not present.any():
            out.append([None] * len(col))
            continue
        if f.kind == "int":
            nums = pd.to_numeric(col, errors="coerce").round().astype("Int64")
            out.append(nums.astype(object).where(present, None).tolist())
        elif f.kind == "float":
            floats = pd.to_numeric(col, errors="coerce").astype(float)
            out.append(floats.astype(object).where(present, None).tolist())
        else:
            objs = col.astype(object)
            if not all(isinstance(v, str) for v in objs[present].head(1000)):
                objs = objs.map(str)
            out.append(objs.where(present, None).tolist())
    return out


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
#: versions by tx, grid versions (gw_grid_versions) and assignments per grid version.
#: Remembered value mappings; made when the first one is saved.
_VALUE_MAPS_SQL = """CREATE TABLE IF NOT EXISTS gw_value_maps (id INTEGER PRIMARY KEY AUTOINCREMENT,
    layer TEXT NOT NULL, field TEXT NOT NULL, raw_key TEXT NOT NULL, raw TEXT NOT NULL, code TEXT NOT NULL,
    user TEXT, created_at TEXT NOT NULL, removed_at TEXT, removed_by TEXT)"""

SCHEMA_VERSION = 4

_HISTORY_SQL = (
    """CREATE TABLE IF NOT EXISTS gw_tx (id INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL,
    kind TEXT NOT NULL, batch_id INTEGER)""",
    """CREATE INDEX IF NOT EXISTS gw_tx_at ON gw_tx (at)""",
    """CREATE TABLE IF NOT EXISTS gw_grid_versions (id INTEGER PRIMARY KEY, valid_from TEXT NOT NULL,
    tx INTEGER NOT NULL, parent INTEGER, rolled_back_tx INTEGER, units INTEGER)""",
)


def _stamp_of(iso: str) -> str:
    """A batch time as written before schema 4 (``2024-05-01T02:03:04Z``) as a store stamp."""
    try:
        moment = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except ValueError:
        return clock.now_stamp()
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return clock.stamp(moment)


#: Failed-login records untouched this long (and not locking) are forgotten; at most this many are kept.
_LOGINS_FORGOTTEN_S = 86_400
_LOGINS_KEPT = 100_000

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
)


__all__ = ["GpkgStore", "decode_geometries", "encode_geometries"]
