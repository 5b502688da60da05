"""The PostGIS store: one PostgreSQL database with PostGIS, in a schema a GIS person
recognises -- one table per layer with readable column names, typed columns and a typed
geometry column in the store SRID with a GiST index, so QGIS opens the layers directly.

Built so far (see ``docs/postgis.md`` for the schema and what remains): the connection with its
transaction, snapshot, revision, write log, meta values and layer generations; feature rows
with their history (upserts by survey key, replacing a layer, rolling a batch back, units,
extents, every read); grid versions and assignments; the batch register with archived
sources in the data directory; targets; the audit trail; value maps; accounts (users, failed logins, API tokens).  The backend is not registered with
:func:`geo.store.backends.open_store` until it implements the whole
:class:`geo.store.base.Store`.

One module per component, each a part of :class:`PostgisStore` working through its one
connection and transaction: ``connection`` (connection, scopes, write log, meta, schema),
``tables`` (a layer's tables, ``COPY`` in and out), ``feature_reads``, ``grid_versions`` and
``feature_writes``, ``batches``, ``targets``, ``audit``, ``value_maps``, ``accounts`` and
``transfer`` (the raw tables out and in, for ``gridwatch store copy``).
"""

from __future__ import annotations

from geo.store.base import Store
from geo.store.postgis.accounts import PgAccounts
from geo.store.postgis.batches import PgBatches
from geo.store.postgis.feature_writes import PgFeatureWrites
from geo.store.postgis.outbox import PgOutbox
from geo.store.postgis.patrols import PgPatrols
from geo.store.postgis.photos import PgPhotos
from geo.store.postgis.tasks import PgTasks
from geo.store.postgis.transfer import PgTransfer
from geo.store.postgis.value_maps import PgValueMaps

__all__ = ["PostgisStore"]


class PostgisStore(
    PgFeatureWrites, PgBatches, PgValueMaps, PgAccounts, PgTransfer, PgOutbox, PgPhotos, PgPatrols, PgTasks
):
    """The PostGIS backend as far as it is built (see the module docstring).

    Parameters
    ----------
    url : str
        A ``postgresql://`` URL; the password, if any, never appears in :attr:`location`,
        errors or logs.
    create : bool
        Create the ``postgis`` extension and the store's tables when missing (else a
        :class:`geo.errors.StoreError` names the SQL to run).
    data : path, optional
        The data directory, where archived uploads are kept (default ``$GRIDWATCH_DATA``).
    """


def _is_a_store(store: PostgisStore) -> Store:
    """Checked by mypy: :class:`PostgisStore` provides the whole :class:`geo.store.base.Store`."""
    return store
