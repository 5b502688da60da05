"""Grid versions (``gw_grid_versions``) and the unit of each feature row version on each of
them (``<layer>_assign``)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pyarrow as pa

import layers
from geo.store.interface.features import GridVersion, overlay_units, version_chain
from geo.store.postgis.feature_reads import PgFeatureReads
from geo.store.postgis.tables import q
from layers.base import UNASSIGNED, LayerSpec


class PgGridVersions(PgFeatureReads):
    """Grid versions and assignments on PostGIS."""

    def grid_versions(self) -> list[GridVersion]:
        """See :meth:`geo.store.interface.features.FeatureStore.grid_versions`.

        ``gw_grid_versions`` with the creation time and user of each version's batch.
        """
        return [
            GridVersion(int(r[0]), str(r[1]), int(r[2]), r[3], r[4], int(r[5] or 0), str(r[6] or ""), r[7])
            for r in self._run(
                'SELECT v.id, v.valid_from, v.tx, v.parent, v.rolled_back_tx, v.units, b.created_at, b."user"'
                " FROM gw_grid_versions v LEFT JOIN gw_batches b ON b.id = v.id ORDER BY v.id"
            ).fetchall()
        ]

    def current_grid_version(self) -> GridVersion | None:
        """See :meth:`geo.store.interface.features.FeatureStore.current_grid_version`."""
        alive = [v for v in self.grid_versions() if v.rolled_back_tx is None]
        return alive[-1] if alive else None

    def add_grid_version(self, batch_id: int, valid_from: str) -> GridVersion:
        """See :meth:`geo.store.interface.features.FeatureStore.add_grid_version`.

        Registers the grid written by ``batch_id`` (inside its transaction) as a new version.
        """
        parent = self.current_grid_version()
        tx = self._tx_id()
        grid = next(s for s in layers.all_layers() if s.is_grid)
        units = self.layer_count(grid)
        parent_id = None if parent is None else parent.id
        self._run(
            "INSERT INTO gw_grid_versions (id, valid_from, tx, parent, units) VALUES (%s,%s,%s,%s,%s)",
            (batch_id, valid_from, tx, parent_id, units),
        )
        return GridVersion(batch_id, valid_from, tx, parent_id, None, units)

    def retire_grid_version(self, batch_id: int) -> None:
        """See :meth:`geo.store.interface.features.FeatureStore.retire_grid_version`.

        Sets ``rolled_back_tx`` (a version already rolled back keeps its own).
        """
        self._run(
            "UPDATE gw_grid_versions SET rolled_back_tx=%s WHERE id=%s AND rolled_back_tx IS NULL",
            (self._tx_id(), batch_id),
        )

    def _chain(self, version: int) -> list[int]:
        """``version`` and its ancestors, the one without a parent first."""
        return version_chain(self.grid_versions(), version)

    def _has_assign(self, spec: LayerSpec) -> bool:
        return self._run("SELECT to_regclass(%s)", (q(f"{spec.name}_assign"),)).fetchone()[0] is not None  # type: ignore[index]

    def write_assignment(self, spec: LayerSpec, version: int, fids: np.ndarray, units: np.ndarray) -> None:
        """See :meth:`geo.store.interface.features.FeatureStore.write_assignment`.

        Copied into a temporary table, then upserted into ``<layer>_assign``.
        """
        if len(fids) == 0 or self._previewing:
            return
        self._ensure_layer(spec, np.empty(0, dtype=object))
        self._run(
            "CREATE TEMP TABLE IF NOT EXISTS gw_tmp_assign (fid bigint, unit text) ON COMMIT DELETE ROWS"
        )
        self._run("TRUNCATE gw_tmp_assign")
        self._copy_in(
            "gw_tmp_assign",
            pa.table(
                {
                    "fid": pa.array(np.asarray(fids, dtype=np.int64)),
                    "unit": pa.array([str(u) for u in np.asarray(units).tolist()], type=pa.string()),
                }
            ),
        )
        self._run(
            f"INSERT INTO {q(spec.name + '_assign')} (version, fid, unit)"
            f" SELECT DISTINCT ON (fid) {int(version)}, fid, unit FROM gw_tmp_assign"
            " ON CONFLICT (version, fid) DO UPDATE SET unit = excluded.unit"
        )

    def keep_assignment(self, spec: LayerSpec, version: int, fids: np.ndarray | None = None) -> None:
        """See :meth:`geo.store.interface.features.FeatureStore.keep_assignment`.

        Copied inside the database from the layer's ``gw_unit``.
        """
        if self._previewing or not self.has_layer(spec):
            return
        sql = (
            f"INSERT INTO {q(spec.name + '_assign')} (version, fid, unit)"
            f" SELECT {int(version)}, fid, gw_unit FROM {q(spec.name)}"
        )
        upsert = " ON CONFLICT (version, fid) DO UPDATE SET unit = excluded.unit"
        if fids is None:
            self._run(sql + upsert)
            return
        wanted = np.unique(np.asarray(fids, dtype=np.int64))
        if len(wanted):
            self._run(sql + " WHERE fid = ANY(%s)" + upsert, (wanted.tolist(),))

    def read_assignment(
        self, spec: LayerSpec, version: int | None = None, fids: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """See :meth:`geo.store.interface.features.FeatureStore.read_assignment`.

        With ``version``: the rows of each version of its chain, the later ones winning
        (UNASSIGNED for a fid without one).
        """
        if version is None:
            return self._current_assignment(spec, fids)
        chain = self._chain(version)
        wanted = None if fids is None else np.unique(np.asarray(fids, dtype=np.int64))
        if not self.has_layer(spec) or not self._has_assign(spec):
            empty = np.empty(0, dtype=np.int64) if wanted is None else wanted
            return empty, np.full(len(empty), UNASSIGNED, dtype=object)
        where = (
            ""
            if wanted is None
            else f" AND fid = ANY('{{{','.join(str(int(f)) for f in wanted)}}}'::bigint[])"
        )

        def versions() -> Iterator[tuple[np.ndarray, np.ndarray]]:
            for v in chain:
                table = self._copy_out(
                    f"SELECT fid, unit FROM {q(spec.name + '_assign')} WHERE version = {int(v)}{where} ORDER BY fid",
                    {"fid": pa.int64(), "unit": pa.string()},
                )
                yield (
                    table.column("fid").to_numpy(),
                    np.asarray(table.column("unit").to_pylist(), dtype=object),
                )

        return overlay_units(versions(), wanted)
