"""Grid versions (``gw_grid_versions``) and the unit of each feature row version on each of
them (``<layer>_assign``)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

import layers
from geo.store.gpkg.feature_reads import GpkgFeatureReads, unique_fids
from geo.store.interface.features import GridVersion, overlay_units, version_chain
from layers.base import UNASSIGNED, LayerSpec


class GpkgGridVersions(GpkgFeatureReads):
    """Grid versions and assignments on the GeoPackage."""

    def grid_versions(self) -> list[GridVersion]:
        """See :meth:`geo.store.interface.features.FeatureStore.grid_versions`.

        Reads ``gw_grid_versions`` with the creation time and user of each version's batch;
        empty in a store without the table.
        """
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
        """See :meth:`geo.store.interface.features.FeatureStore.current_grid_version`."""
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
        """See :meth:`geo.store.interface.features.FeatureStore.retire_grid_version`.

        Sets ``rolled_back_tx`` in ``gw_grid_versions`` (a version already rolled back keeps its own).
        """
        self.conn.execute(
            "UPDATE gw_grid_versions SET rolled_back_tx=? WHERE id=? AND rolled_back_tx IS NULL",
            (self._tx_id(), batch_id),
        )

    def _chain(self, version: int) -> list[int]:
        """``version`` and its ancestors, the one without a parent first."""
        return version_chain(self.grid_versions(), version)

    def write_assignment(self, spec: LayerSpec, version: int, fids: np.ndarray, units: np.ndarray) -> None:
        """See :meth:`geo.store.interface.features.FeatureStore.write_assignment`.

        Writes ``<layer>_assign`` (made when missing), replacing the unit a row version had there.
        """
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
        wanted = unique_fids(fids)
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
        wanted = None if fids is None else unique_fids(fids)
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

        def versions() -> Iterator[tuple[np.ndarray, np.ndarray]]:
            for v in chain:
                rows = conn.execute(
                    f'SELECT fid, unit FROM "{table}" WHERE version=?{where} ORDER BY fid', (v,)
                ).fetchall()
                yield (
                    np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows)),
                    np.array([r[1] for r in rows], dtype=object),
                )

        return overlay_units(versions(), wanted)
