"""Writing feature rows: upserts by survey key, retiring rows to the history, rolling a
batch's rows back, setting assigned units."""

from __future__ import annotations

from typing import Any, cast

import numpy as np
import pandas as pd
import shapely

from geo.store import clock
from geo.store.gpkg.blobs import encode_geometries
from geo.store.gpkg.connection import scalar_args
from geo.store.gpkg.grid_versions import GpkgGridVersions
from geo.store.gpkg.spatial import (
    create_typed_view,
    declare_type,
    declared_type,
    index_rows,
    stored_type_names,
    type_names,
    typed_views,
    widen,
    writer_indexes,
)
from geo.store.gpkg.tables import GW_COLUMNS
from geo.store.interface.features import FeatureRows, WriteResult, replaced_gone, rollback_blocked
from geo.store.typed_views import views_needed
from layers.base import LayerSpec


class GpkgFeatureWrites(GpkgGridVersions):
    """The write side of :class:`geo.store.interface.features.FeatureStore` on the GeoPackage."""

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
        self.make_room(len(rows))  # a large batch's changed pages stay in memory until the commit
        conn = self.conn
        srs = self.srs_epsg() or 0
        cols = self._columns(spec)
        n = len(rows)
        attrs = rows.attrs.reindex(columns=cols)
        columns = _column_lists(attrs, spec)
        blobs = encode_geometries(rows.geometry, srs, rows.wkb)
        areas = shapely.area(rows.geometry)
        is_poly = np.isin(shapely.get_type_id(rows.geometry), (3, 6))
        area_list = [float(a) if p else None for a, p in zip(areas.tolist(), is_poly.tolist(), strict=True)]
        # a row without a survey id has the key None (not NaN: it is compared with the others)
        keys = _keys(rows.keys)
        units = rows.units.tolist()
        if pd.api.types.infer_dtype(rows.units, skipna=False) != "string":
            units = [str(u) for u in units]

        # by survey key, or (an edit: ``rows.replaces``) by the current row's fid
        lookup: list[Any] = keys if rows.replaces is None else [str(int(f)) for f in rows.replaces]
        existing: dict[str, tuple[int, tuple[Any, ...], int, int]] = {}
        layer_has_rows = bool(conn.execute(f'SELECT 1 FROM "{spec.name}" LIMIT 1').fetchone())
        wanted: set[str] = cast(set[str], set(lookup) - {None}) if layer_has_rows else set()
        if wanted:
            qcols = ", ".join(f't."{c}"' for c in cols)
            match = "t.gw_key" if rows.replaces is None else "CAST(t.fid AS TEXT)"
            select = (
                f"SELECT t.fid, {match}, coalesce(t.gw_id, t.fid), coalesce(t.gw_version, 1), t.geom, {qcols}"
                f' FROM "{spec.name}" t'
            )
            if rows.replaces is not None:
                found: Any = []
                fid_list = sorted(int(f) for f in rows.replaces)
                for start in range(0, len(fid_list), 500):
                    chunk = fid_list[start : start + 500]
                    marks = ",".join("?" * len(chunk))
                    found += conn.execute(f"{select} WHERE t.fid IN ({marks})", chunk).fetchall()
            else:
                lo, hi = min(wanted), max(wanted)
                # new surveys usually bring new, consecutive ids: counting the stored keys in their
                # range (on the index) settles most imports without looking keys up one by one
                in_range = int(
                    scalar_args(
                        conn, f'SELECT count(*) FROM "{spec.name}" WHERE gw_key BETWEEN ? AND ?', (lo, hi)
                    )
                )
                if in_range == 0:
                    found = ()
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
                        (bytes(row[4]) if row[4] is not None else None, *row[5:]),
                        int(row[2]),
                        int(row[3]),
                    )

        if rows.replaces is not None and len(existing) != len(wanted):
            raise replaced_gone(spec.name)
        records = list(zip(blobs, *columns, strict=True)) if existing else []
        to_retire: list[int] = []
        insert_rows: list[int] = []
        unit_updates: list[tuple[str, int]] = []
        added = updated = unchanged = 0
        kept_fids: set[int] = set()
        # a new row version of a feature carries its stable id and the next version number
        ids: list[int | None] = [None] * n
        versions: list[int | None] = [None] * n
        for i in range(n) if existing else ():
            key = lookup[i]
            old = existing.get(key) if key is not None else None
            if old is not None:
                fid, old_record, old_id, old_version = old
                if old_record == records[i] or _same_record(old_record, records[i]):
                    unchanged += 1
                    kept_fids.add(fid)
                    unit_updates.append((units[i], fid))
                    continue
                to_retire.append(fid)
                ids[i], versions[i] = old_id, old_version + 1
                updated += 1
            else:
                added += 1
            insert_rows.append(i)
        if unit_updates:
            conn.executemany(f'UPDATE "{spec.name}" SET gw_unit=? WHERE fid=?', unit_updates)
        if not existing:
            added = n
        if not existing or len(insert_rows) == n:
            inserts = list(
                zip(blobs, *columns, keys, [batch_id] * n, units, area_list, ids, versions, strict=True)
            )
        else:
            inserts = [
                (*records[i], keys[i], batch_id, units[i], area_list[i], ids[i], versions[i])
                for i in insert_rows
            ]

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
        marks = ", ".join("?" for _ in range(len(cols) + 1 + len(GW_COLUMNS)))
        with writer_indexes(conn, spec.name) as indexed:
            conn.executemany(
                f'INSERT INTO "{spec.name}" (geom, {qcols}, gw_key, gw_batch, gw_unit, gw_area, gw_id, gw_version,'
                " gw_tx_from)"
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
        if indexed:
            index_rows(conn, spec.name, new_fids, np.asarray(rows.geometry, dtype=object)[chosen])
        # the declared geometry type covers the rows written (a layer that was empty takes theirs)
        self._declare_types(spec, type_names(np.asarray(rows.geometry, dtype=object)[chosen]), layer_has_rows)
        previous = self._cached_geometry(spec)
        if previous is None and not layer_has_rows:
            previous = (np.empty(0, dtype=np.int64), np.empty(0, dtype=object), np.empty(0, dtype=object))
        self._touch(spec)
        touched = (
            None  # the whole layer: nothing kept of an older generation follows it
            if replace_all
            else np.concatenate(
                [
                    np.asarray(to_retire, dtype=np.int64),
                    new_fids,
                    np.array([f for _, f in unit_updates], dtype=np.int64),
                ]
            )
        )
        self._bump_generation(spec, touched)
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

    def _retire(self, spec: LayerSpec, fids: list[int], batch_id: int) -> None:
        """Move current rows to the history as replaced (or rolled back) by ``batch_id`` at this
        transaction's tx."""
        if not fids:
            return
        conn = self.conn
        cols = ", ".join(["geom", *[f'"{c}"' for c in self._columns(spec)], *[n for n, _ in GW_COLUMNS]])
        conn.execute("CREATE TEMP TABLE IF NOT EXISTS gw_tmp_fids (f INTEGER PRIMARY KEY)")
        conn.execute("DELETE FROM gw_tmp_fids")
        conn.executemany("INSERT OR IGNORE INTO gw_tmp_fids VALUES (?)", ((f,) for f in fids))
        conn.execute(
            f'INSERT INTO "{spec.name}_history" ({cols}, gw_orig_fid, gw_superseded_by, gw_tx_from, gw_tx_to)'
            f' SELECT {cols}, fid, ?, gw_tx_from, ? FROM "{spec.name}" WHERE fid IN (SELECT f FROM gw_tmp_fids)',
            (batch_id, self._tx_id()),
        )
        conn.execute(f'DELETE FROM "{spec.name}" WHERE fid IN (SELECT f FROM gw_tmp_fids)')

    def _declare_types(self, spec: LayerSpec, names: set[str], had_rows: bool) -> None:
        """Widen the layer's declared geometry type to cover ``names`` (see
        :mod:`geo.store.gpkg.spatial`); a layer that had no rows declares ``names`` alone."""
        before = declared_type(self.conn, spec.name) if had_rows else None
        wider = widen(before, names)
        if wider is not None:
            declare_type(self.conn, spec.name, wider)
        for type_name in views_needed(wider, before, names):
            create_typed_view(self.conn, spec, type_name, clock.now_iso())

    def _touch(self, spec: LayerSpec) -> None:
        names = [spec.name, *typed_views(self.conn, spec.name)]
        marks = ", ".join("?" for _ in names)
        self.conn.execute(
            f"UPDATE gpkg_contents SET last_change=? WHERE table_name IN ({marks})", (clock.now_iso(), *names)
        )

    def update_extent(self, spec: LayerSpec, bounds: tuple[float, float, float, float] | None) -> None:
        """See :meth:`geo.store.interface.features.FeatureStore.update_extent`.

        Grows the extent in the ``gpkg_contents`` rows of the layer and of its typed views to
        hold ``bounds`` (store CRS, metres): what GIS clients zoom to covers every write, not
        only the last one.
        """
        if bounds is None:
            return
        names = [spec.name, *typed_views(self.conn, spec.name)]
        marks = ", ".join("?" for _ in names)
        minx, miny, maxx, maxy = bounds
        self.conn.execute(
            "UPDATE gpkg_contents SET min_x=min(coalesce(min_x, ?), ?), min_y=min(coalesce(min_y, ?), ?),"
            " max_x=max(coalesce(max_x, ?), ?), max_y=max(coalesce(max_y, ?), ?)"
            f" WHERE table_name IN ({marks})",
            (minx, minx, miny, miny, maxx, maxx, maxy, maxy, *names),
        )

    def extent(self, spec: LayerSpec) -> tuple[float, float, float, float] | None:
        """See :meth:`geo.store.interface.features.FeatureStore.extent` (``gpkg_contents``)."""
        row = self.conn.execute(
            "SELECT min_x, min_y, max_x, max_y FROM gpkg_contents WHERE table_name=?", (spec.name,)
        ).fetchone()
        if row is None or row[0] is None:
            return None
        return (float(row[0]), float(row[1]), float(row[2]), float(row[3]))

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
            raise rollback_blocked(batch_id, later)
        tx = self._tx_id()
        mine = [
            int(r[0]) for r in conn.execute(f'SELECT fid FROM "{spec.name}" WHERE gw_batch=?', (batch_id,))
        ]
        self._retire(spec, mine, batch_id)
        cols = ", ".join(["geom", *[f'"{c}"' for c in self._columns(spec)], *[n for n, _ in GW_COLUMNS]])
        # the rows the batch replaced (a batch never replaces its own rows: gw_batch<>batch_id
        # leaves out the rows just moved)
        conn.execute(
            f'INSERT INTO "{spec.name}" (fid, {cols}, gw_tx_from) SELECT gw_orig_fid, {cols}, ?'
            f' FROM "{spec.name}_history" WHERE gw_superseded_by=? AND gw_batch<>? ORDER BY gw_orig_fid',
            (tx, batch_id, batch_id),
        )
        restored = conn.changes()
        if restored:
            # a feature brought back is a new version of it: one above the version rolled back
            conn.execute(
                f'UPDATE "{spec.name}" SET gw_version = 1 + (SELECT max(coalesce(h.gw_version, 1))'
                f' FROM "{spec.name}_history" h WHERE h.gw_batch=? AND h.gw_tx_to=?'
                f' AND coalesce(h.gw_id, h.gw_orig_fid) = coalesce("{spec.name}".gw_id, "{spec.name}".fid))'
                f' WHERE gw_tx_from=? AND EXISTS (SELECT 1 FROM "{spec.name}_history" h WHERE h.gw_batch=?'
                f' AND h.gw_tx_to=? AND coalesce(h.gw_id, h.gw_orig_fid) = coalesce("{spec.name}".gw_id,'
                f' "{spec.name}".fid))',
                (batch_id, tx, tx, batch_id, tx),
            )
            names = stored_type_names(conn, spec.name, "WHERE gw_tx_from=?", (tx,))
            self._declare_types(spec, names, True)
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
        back_fids = (
            [int(r[0]) for r in conn.execute(f'SELECT fid FROM "{spec.name}" WHERE gw_tx_from=?', (tx,))]
            if restored
            else []
        )
        self._bump_generation(spec, np.array([*mine, *back_fids], dtype=np.int64))
        return len(mine), int(restored)

    def set_units(self, spec: LayerSpec, fids: np.ndarray, units: np.ndarray) -> int:
        """See :meth:`geo.store.interface.features.FeatureStore.set_units`.

        Updates ``gw_unit`` only where it differs (against the cached units when ``fids`` are
        exactly the cached rows), then moves the layer's generation on and keeps the cache.
        """
        if not self.has_layer(spec) or len(fids) == 0:
            return 0
        conn = self.conn
        fids = np.asarray(fids, dtype=np.int64)
        units = np.asarray(units, dtype=object)
        cached = self._cached_geometry(spec)
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
            self._bump_generation(spec, fids[changed])
            if cached is not None and aligned:
                self._cache_geometry(spec, cached[0], cached[1], units.copy())
        return len(changed)


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


def _keys(values: np.ndarray) -> list[str | None]:
    """Survey keys as plain text, None for a missing one (not NaN: it is compared with the
    others); one pass in C when they are text already."""
    objs = np.asarray(values, dtype=object)
    if pd.api.types.infer_dtype(objs, skipna=True) not in ("string", "empty"):
        return [None if pd.isna(k) else str(k) for k in objs.tolist()]
    keys = objs.tolist()
    for i in np.flatnonzero(pd.isna(objs)).tolist():
        keys[i] = None
    return keys


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
