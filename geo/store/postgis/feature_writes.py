"""Writing feature rows: upserts by survey key, retiring rows to the history, rolling a
batch's rows back, setting assigned units -- the rows copied in with ``COPY`` and compared,
retired and inserted by set-based SQL."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import shapely

from geo.store.interface.features import FeatureRows, WriteResult, replaced_gone, rollback_blocked
from geo.store.postgis.grid_versions import PgGridVersions
from geo.store.postgis.tables import GW_COLUMNS, SQL_TYPES, q
from layers.base import LayerSpec


class PgFeatureWrites(PgGridVersions):
    """The write side of :class:`geo.store.interface.features.FeatureStore` on PostGIS."""

    def write_features(
        self, spec: LayerSpec, batch_id: int, rows: FeatureRows, replace_all: bool
    ) -> WriteResult:
        """See :meth:`geo.store.interface.features.FeatureStore.write_features`.

        The rows are copied into a temporary table and matched by survey key against the
        current rows in one statement; a match with the same geometry (WKB) and fields is
        unchanged (its unit is updated), any other match is retired to ``<layer>_history``
        and written anew.  New row versions get consecutive fids from ``gw_layers.next_fid``
        in the order given.  Must be called inside :meth:`transaction`.

        Inside :meth:`preview_transaction` the rows are matched the same way and nothing else
        is done: the result tells the fids the rows would get; the layer's tables are neither
        made nor altered (a type they are not declared with is matched as well in the
        temporary table, whose column takes any geometry).
        """
        if not self._depth:
            raise RuntimeError("write_features must run inside transaction()")
        geoms = np.asarray(rows.geometry, dtype=object)
        if self._previewing and not self.has_layer(spec):
            return _all_new(len(rows), 1)
        if not self._previewing:
            self._ensure_layer(spec, geoms)
        n = len(rows)
        name = spec.name
        cols = self._columns(spec)
        fields = ", ".join(f"{q(f.name)} {SQL_TYPES[f.kind]}" for f in spec.stored_fields)
        self._run("DROP TABLE IF EXISTS gw_tmp_rows")
        self._run(
            f"CREATE TEMP TABLE gw_tmp_rows (pos bigint PRIMARY KEY, geom geometry, {fields},"
            " gw_key text, gw_unit text, gw_area double precision, want bigint, match bigint,"
            " same boolean NOT NULL DEFAULT false, gw_id bigint, gw_version bigint)"
            " ON COMMIT DROP"
        )
        self._copy_in("gw_tmp_rows", self._incoming(spec, rows, self.srs_epsg() or 0))
        has_rows = self._run(f"SELECT 1 FROM {q(name)} LIMIT 1").fetchone() is not None
        if has_rows:
            # a preview adds no column the layer declares since its table was made: it is null there
            held = self._table_columns(name) if self._previewing else set(cols)
            same = " AND ".join(
                [
                    "ST_AsBinary(t.geom) = ST_AsBinary(n.geom)",
                    *[
                        f"t.{q(c)} IS NOT DISTINCT FROM n.{q(c)}" if c in held else f"n.{q(c)} IS NULL"
                        for c in cols
                    ],
                ]
            )
            # one current row per key (the newest, should a key ever be held twice); an edit's rows
            # by the fid of the row each replaces.  A new row version keeps the feature's id.
            on = "t.gw_key = n.gw_key" if rows.replaces is None else "t.fid = n.want"
            ident = (
                ", coalesce(t.gw_id, t.fid) AS gid, coalesce(t.gw_version, 1) + 1 AS ver"
                if not self._previewing or "gw_id" in held
                else ", t.fid AS gid, 2 AS ver"
            )
            self._run(
                f"UPDATE gw_tmp_rows r SET match = m.fid, same = m.same, gw_id = m.gid, gw_version = m.ver FROM ("
                f" SELECT DISTINCT ON (n.pos) n.pos, t.fid, ({same}) AS same{ident}"
                f" FROM gw_tmp_rows n JOIN {q(name)} t ON {on} ORDER BY n.pos, t.fid DESC"
                ") m WHERE r.pos = m.pos"
            )
        found = self._copy_out(
            "SELECT pos, match, same::int FROM gw_tmp_rows ORDER BY pos",
            {"pos": pa.int64(), "match": pa.int64(), "same": pa.int64()},
        )
        matched = found.column("match").is_valid().to_numpy(zero_copy_only=False)
        if rows.replaces is not None and not matched.all():
            raise replaced_gone(name)
        same_arr = found.column("same").to_numpy() == 1
        match_fids = found.column("match").fill_null(0).to_numpy()
        unchanged = int(same_arr.sum())
        updated = int((matched & ~same_arr).sum())
        added = n - unchanged - updated
        chosen = np.flatnonzero(~same_arr).astype(np.int64)
        to_retire = np.unique(match_fids[matched & ~same_arr])
        if self._previewing:
            return self._preview_result(spec, match_fids, matched, same_arr, to_retire, replace_all)
        if unchanged:
            self._run(
                f"UPDATE {q(name)} t SET gw_unit = n.gw_unit FROM gw_tmp_rows n WHERE n.same AND t.fid = n.match"
            )
        removed = 0
        if replace_all:
            kept = np.unique(match_fids[same_arr])
            current = (
                self._copy_out(f"SELECT fid FROM {q(name)}", {"fid": pa.int64()}).column("fid").to_numpy()
            )
            extra = current[~np.isin(current, kept) & ~np.isin(current, to_retire)]
            removed = len(extra)
            to_retire = np.concatenate([to_retire, extra])
        tx = self._tx_id()
        self._retire(spec, to_retire, batch_id)
        row = self._run(
            "UPDATE gw_layers SET next_fid = next_fid + %s WHERE name=%s RETURNING next_fid - %s",
            (len(chosen), name, len(chosen)),
        ).fetchone()
        first = int(row[0]) if row else 1
        names = ", ".join(["geom", *[q(c) for c in cols], *[c for c, _ in GW_COLUMNS]])
        picked = ", ".join(
            [
                "n.geom",
                *[f"n.{q(c)}" for c in cols],
                "n.gw_key",
                "%s",
                "n.gw_unit",
                "n.gw_area",
                "CASE WHEN n.match IS NULL THEN NULL ELSE n.gw_id END",
                "CASE WHEN n.match IS NULL THEN NULL ELSE n.gw_version END",
            ]
        )
        self._run(
            f"INSERT INTO {q(name)} (fid, {names}, gw_tx_from)"
            f" SELECT %s - 1 + row_number() OVER (ORDER BY n.pos), {picked}, %s"
            " FROM gw_tmp_rows n WHERE NOT n.same ORDER BY n.pos",
            (first, batch_id, tx),
        )
        self._run("DROP TABLE gw_tmp_rows")
        # the fids touched: retired, written, and kept with a new unit (the whole layer when replaced)
        touched = (
            None
            if replace_all
            else np.concatenate(
                [
                    np.asarray(to_retire, dtype=np.int64),
                    np.arange(first, first + len(chosen), dtype=np.int64),
                    np.asarray(match_fids[same_arr], dtype=np.int64),
                ]
            )
        )
        self._bump_generation(spec, touched)
        return WriteResult(
            added=added,
            updated=updated,
            unchanged=unchanged,
            removed=removed,
            fids=np.arange(first, first + len(chosen), dtype=np.int64),
            rows=chosen,
        )

    def _preview_result(
        self,
        spec: LayerSpec,
        match_fids: np.ndarray,
        matched: np.ndarray,
        same: np.ndarray,
        to_retire: np.ndarray,
        replace_all: bool,
    ) -> WriteResult:
        """What :meth:`write_features` would return for rows matched as ``match_fids`` /
        ``matched`` / ``same`` (read only: the fids from ``gw_layers.next_fid``)."""
        removed = 0
        if replace_all:
            current = (
                self._copy_out(f"SELECT fid FROM {q(spec.name)}", {"fid": pa.int64()})
                .column("fid")
                .to_numpy()
            )
            kept = np.unique(match_fids[same])
            removed = int((~np.isin(current, kept) & ~np.isin(current, to_retire)).sum())
        row = self._run("SELECT next_fid FROM gw_layers WHERE name=%s", (spec.name,)).fetchone()
        first = int(row[0]) if row else 1
        unchanged, updated = int(same.sum()), int((matched & ~same).sum())
        return WriteResult(
            added=len(same) - unchanged - updated,
            updated=updated,
            unchanged=unchanged,
            removed=removed,
            fids=np.arange(first, first + int((~same).sum()), dtype=np.int64),
            rows=np.flatnonzero(~same).astype(np.int64),
        )

    def _incoming(self, spec: LayerSpec, rows: FeatureRows, srs: int) -> pa.Table:
        """``rows`` as the Arrow table copied into ``gw_tmp_rows``: geometry as hex EWKB with the
        store SRID, fields typed by their kind, the area of polygons (m²)."""
        geoms = np.asarray(rows.geometry, dtype=object)
        n = len(geoms)
        attrs = rows.attrs.reindex(columns=self._columns(spec))
        data: dict[str, pa.Array] = {
            "pos": pa.array(np.arange(n, dtype=np.int64)),
            "geom": pa.array(
                shapely.to_wkb(
                    shapely.set_srid(geoms, srs),
                    hex=True,
                    include_srid=True,
                    output_dimension=2,
                    byte_order=1,
                ).tolist()
                if n
                else [],
                type=pa.string(),
            ),
        }
        for f in spec.stored_fields:
            data[f.name] = _arrow_field(attrs[f.name], f.kind)
        keys = pd.Series(rows.keys, dtype=object)
        data["gw_key"] = pa.array(
            [None if k is None or (isinstance(k, float) and np.isnan(k)) else str(k) for k in keys.tolist()],
            type=pa.string(),
        )
        data["gw_unit"] = pa.array([str(u) for u in np.asarray(rows.units).tolist()], type=pa.string())
        if rows.replaces is not None:
            data["want"] = pa.array(np.asarray(rows.replaces, dtype=np.int64))
        is_poly = np.isin(shapely.get_type_id(geoms), (3, 6))
        areas = shapely.area(geoms) if n else np.empty(0)
        data["gw_area"] = pa.array(areas, mask=~is_poly, type=pa.float64())
        return pa.table(data)

    def _retire(self, spec: LayerSpec, fids: np.ndarray, batch_id: int) -> None:
        """Move current rows to the history as replaced (or rolled back) by ``batch_id`` at this
        transaction's tx."""
        if not len(fids):
            return
        cols = ", ".join(["geom", *[q(c) for c in self._columns(spec)], *[c for c, _ in GW_COLUMNS]])
        wanted = np.asarray(fids, dtype=np.int64).tolist()
        self._run(
            f"INSERT INTO {q(spec.name + '_history')} ({cols}, gw_orig_fid, gw_superseded_by, gw_tx_from, gw_tx_to)"
            f" SELECT {cols}, fid, %s, gw_tx_from, %s FROM {q(spec.name)} WHERE fid = ANY(%s) ORDER BY fid",
            (batch_id, self._tx_id(), wanted),
        )
        self._run(f"DELETE FROM {q(spec.name)} WHERE fid = ANY(%s)", (wanted,))

    def update_extent(self, spec: LayerSpec, bounds: tuple[float, float, float, float] | None) -> None:
        """See :meth:`geo.store.interface.features.FeatureStore.update_extent`.

        Grows the extent kept in the layer's ``gw_layers`` row to hold ``bounds`` (clients such as
        QGIS use the GiST index instead).
        """
        if bounds is None or self._previewing:
            return
        minx, miny, maxx, maxy = bounds
        self._run(
            "UPDATE gw_layers SET min_x=least(min_x, %s), min_y=least(min_y, %s),"
            " max_x=greatest(max_x, %s), max_y=greatest(max_y, %s) WHERE name=%s",
            (minx, miny, maxx, maxy, spec.name),
        )

    def extent(self, spec: LayerSpec) -> tuple[float, float, float, float] | None:
        """See :meth:`geo.store.interface.features.FeatureStore.extent`."""
        row = self._run(
            "SELECT min_x, min_y, max_x, max_y FROM gw_layers WHERE name=%s", (spec.name,)
        ).fetchone()
        if row is None or row[0] is None:
            return None
        return (float(row[0]), float(row[1]), float(row[2]), float(row[3]))

    def rollback_layer(self, spec: LayerSpec, batch_id: int) -> tuple[int, int]:
        """See :meth:`geo.store.interface.features.FeatureStore.rollback_layer`.

        The batch's rows move to the history and the rows it had replaced come back with their
        own fid; restored survey rows get their unit on the current grid version.  Refuses
        (:class:`Conflict`) when a later active batch replaced rows of this one.  Must be
        called inside :meth:`transaction`.
        """
        if not self.has_layer(spec):
            return 0, 0
        name = spec.name
        later = [
            int(r[0])
            for r in self._run(
                f"SELECT DISTINCT h.gw_superseded_by FROM {q(name + '_history')} h JOIN gw_batches b"
                " ON b.id = h.gw_superseded_by WHERE h.gw_batch=%s AND b.status='active' AND b.id<>%s",
                (batch_id, batch_id),
            ).fetchall()
        ]
        if later:
            raise rollback_blocked(batch_id, later)
        tx = self._tx_id()
        mine = np.array(
            [r[0] for r in self._run(f"SELECT fid FROM {q(name)} WHERE gw_batch=%s", (batch_id,)).fetchall()],
            dtype=np.int64,
        )
        self._retire(spec, mine, batch_id)
        cols = ", ".join(["geom", *[q(c) for c in self._columns(spec)], *[c for c, _ in GW_COLUMNS]])
        restored = self._run(
            f"INSERT INTO {q(name)} (fid, {cols}, gw_tx_from) SELECT gw_orig_fid, {cols}, %s"
            f" FROM {q(name + '_history')} WHERE gw_superseded_by=%s AND gw_batch<>%s ORDER BY gw_orig_fid",
            (tx, batch_id, batch_id),
        ).rowcount
        if restored:
            # a feature brought back is a new version of it: one above the version rolled back
            self._run(
                f"UPDATE {q(name)} t SET gw_version = 1 + h.ver FROM (SELECT coalesce(gw_id, gw_orig_fid) AS gid,"
                f" max(coalesce(gw_version, 1)) AS ver FROM {q(name + '_history')} WHERE gw_batch=%s AND gw_tx_to=%s"
                " GROUP BY 1) h WHERE t.gw_tx_from=%s AND coalesce(t.gw_id, t.fid) = h.gid",
                (batch_id, tx, tx),
            )
        back = np.array(
            [r[0] for r in self._run(f"SELECT fid FROM {q(name)} WHERE gw_tx_from=%s", (tx,)).fetchall()]
            if restored
            else [],
            dtype=np.int64,
        )
        if restored and not spec.is_grid:
            current = self.current_grid_version()
            if current is not None:
                fids, units = self.read_assignment(spec, current.id, back)
                self._update_units(spec, fids, units)
        self._bump_generation(spec, np.concatenate([mine, back]))
        return len(mine), int(restored)

    def _update_units(self, spec: LayerSpec, fids: np.ndarray, units: np.ndarray) -> np.ndarray:
        """Set ``gw_unit`` of current rows ``fids`` where it differs; the fids changed."""
        self._run(
            "CREATE TEMP TABLE IF NOT EXISTS gw_tmp_units (fid bigint, unit text) ON COMMIT DELETE ROWS"
        )
        self._run("TRUNCATE gw_tmp_units")
        self._copy_in(
            "gw_tmp_units",
            pa.table(
                {
                    "fid": pa.array(np.asarray(fids, dtype=np.int64)),
                    "unit": pa.array(
                        [None if u is None else str(u) for u in np.asarray(units).tolist()], pa.string()
                    ),
                }
            ),
        )
        rows = self._run(
            f"UPDATE {q(spec.name)} t SET gw_unit = u.unit FROM gw_tmp_units u"
            " WHERE t.fid = u.fid AND t.gw_unit IS DISTINCT FROM u.unit RETURNING t.fid"
        ).fetchall()
        return np.array([r[0] for r in rows], dtype=np.int64)

    def set_units(self, spec: LayerSpec, fids: np.ndarray, units: np.ndarray) -> int:
        """See :meth:`geo.store.interface.features.FeatureStore.set_units`.

        Updates ``gw_unit`` only where it differs, and moves the layer's generation on when
        any did.
        """
        if not self.has_layer(spec) or len(fids) == 0:
            return 0
        with self.transaction_scope(new_revision=False):
            changed = self._update_units(spec, fids, units)
            if len(changed):
                self._bump_generation(spec, changed)
        return len(changed)


def _all_new(n: int, first: int) -> WriteResult:
    """The result of writing ``n`` rows that are all new, given fids from ``first``."""
    return WriteResult(
        added=n,
        updated=0,
        unchanged=0,
        removed=0,
        fids=np.arange(first, first + n, dtype=np.int64),
        rows=np.arange(n, dtype=np.int64),
    )


def _arrow_field(col: pd.Series, kind: str) -> pa.Array:
    """One field's values typed by its kind (a date as ``YYYY-MM-DD``; missing and unreadable as null)."""
    present = col.notna().to_numpy()
    if kind == "int":
        nums = pd.to_numeric(col, errors="coerce").round().astype("Int64")
        return pa.array(nums, type=pa.int64(), from_pandas=True)
    if kind == "float":
        floats = pd.to_numeric(col, errors="coerce").astype(float)
        return pa.array(floats.to_numpy(), mask=floats.isna().to_numpy(), type=pa.float64())
    if kind == "date":
        days = pd.to_datetime(col.where(col.notna(), None), errors="coerce", format="mixed")
        text = days.dt.strftime("%Y-%m-%d").tolist()
        known = days.notna().tolist()
        return pa.array([t if ok else None for t, ok in zip(text, known, strict=True)], type=pa.string())
    values = [
        str(v) if p else None for v, p in zip(col.astype(object).tolist(), present.tolist(), strict=True)
    ]
    return pa.array(values, type=pa.string())
