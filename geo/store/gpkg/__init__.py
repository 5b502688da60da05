"""The embedded store: one GeoPackage file (SQLite) that opens directly in QGIS.

Features are written with SQLite directly rather than through GDAL because an import
touches several tables at once — the layer, its history, the batch register, the
archived source and, after a grid change, the assignment of every other layer — and
all of that has to commit or vanish together.  GDAL's writers commit per call and
cannot join a transaction opened elsewhere; SQLite's own transaction (write-ahead log
where it can work, else the rollback journal; ``synchronous=FULL``) gives exactly the
all-or-nothing behaviour, including when the importing process is killed.  The connection is made with ``apsw`` rather than
the standard :mod:`sqlite3` module: its ``executemany`` binds rows about four times
faster (0.36 s instead of 1.35 s for 100,000 rows of 17 columns, measured here), which
is most of the time an import spends writing.  The file stays a valid GeoPackage 1.3 (the
tests read it back with GDAL).

Layout, besides the GeoPackage system tables:

``<layer>``            current features: ``fid``, ``geom``, canonical fields, and
                       ``gw_key`` (survey id), ``gw_batch``, ``gw_unit`` (assigned
                       unit-grid code), ``gw_area`` (polygon area, m²).
``<layer>_history``    rows a later batch replaced, with ``gw_superseded_by``.
``gw_batches``         one row per import, with its ``kind``: import, grid or targets.
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
``gw_photos``          photos on features (made by the first one): the files are in the data
                       directory, ``photos/`` (see :mod:`geo.imports.photos`).
``gw_patrols``         daily patrol filings and the unit grids each covers (``gw_patrol_units``),
                       made by the first one (see :mod:`geo.imports.patrols`).
``gw_tasks``           hand-over tasks, with ``gw_task_items`` (the features handed over) and
                       ``gw_task_events`` (every change of an item's state), made by the first task.

One module per component, each a part of :class:`GpkgStore` working through its one
connection and transaction: ``connection`` (connection, transaction, write log, meta),
``tables`` (a layer's tables), ``blobs`` (geometry encoding), ``feature_reads`` and
``feature_writes`` (feature rows), ``grid_versions`` (grid versions, assignments), ``batches``
(the batch register, archived sources), ``targets``, ``accounts`` (users, failed logins,
tokens), ``audit``, ``value_maps``, ``migrations`` (a new store, schema upgrades) and
``transfer`` (the raw tables out and in, for ``gridwatch store copy``).
"""

from __future__ import annotations

from pathlib import Path

from geo.store.gpkg.accounts import GpkgAccounts
from geo.store.gpkg.batches import GpkgBatches
from geo.store.gpkg.migrations import GpkgMigrations
from geo.store.gpkg.outbox import GpkgOutbox
from geo.store.gpkg.patrols import GpkgPatrols
from geo.store.gpkg.photos import GpkgPhotos
from geo.store.gpkg.tasks import GpkgTasks
from geo.store.gpkg.transfer import GpkgTransfer
from geo.store.gpkg.value_maps import GpkgValueMaps

__all__ = ["GpkgStore"]


class GpkgStore(
    GpkgMigrations,
    GpkgBatches,
    GpkgAccounts,
    GpkgValueMaps,
    GpkgTransfer,
    GpkgOutbox,
    GpkgPhotos,
    GpkgPatrols,
    GpkgTasks,
):
    """GeoPackage-backed :class:`geo.store.base.Store`.

    One object, one connection, one transaction: each component (feature rows and their
    versions, the batch register, targets, accounts, the audit trail, value maps) is a part of
    this class in its own module, and all of them write through the connection and inside the
    :meth:`~geo.store.gpkg.connection.GpkgConnection.transaction` of
    :mod:`geo.store.gpkg.connection`.

    Parameters
    ----------
    path : Path
        The ``.gpkg`` file; created with its directory when missing.
    data_dir : Path, optional
        The data directory, where archived uploads are kept (default: the file's folder).
    """

    def __init__(self, path: Path, data_dir: Path | None = None):
        super().__init__(path, data_dir)
        self._init()
