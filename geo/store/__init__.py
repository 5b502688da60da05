"""The store: where layers, batches, targets, accounts, the audit trail and value maps live.

- ``base``: the :class:`~geo.store.base.Store` interface, made of one protocol per component
  (``interface/``: features, batches, targets, accounts, audit, value maps) sharing one
  transaction; it names no backend.
- ``backends``: :func:`~geo.store.backends.open_store` chooses a backend by URL scheme (a path
  is the GeoPackage) and :func:`~geo.store.backends.locate` settles the store apart from the
  data directory; ``gpkg/``: the embedded GeoPackage backend, one module per component.
- ``cache``: one cache object per store (``store.cache``) for what a process keeps between
  requests; ``clock``: write stamps, time zone and ``known_at``; ``accounts`` and ``passwords``:
  the rules over local accounts.
"""
