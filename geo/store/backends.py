"""Opening a store: the backends by URL scheme, the GeoPackage for a path.

The interface (:mod:`geo.store.base`) names no backend; this module is where they are chosen.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from geo.errors import InputError, StoreError
from geo.store.base import STORE_FILE, Store, data_dir
from geo.store.gpkg import GpkgStore

__all__ = ["open_store", "register_backend"]


_BACKENDS: dict[str, Callable[[str], Store]] = {}


def register_backend(scheme: str, factory: Callable[[str], Store]) -> None:
    """Make ``open_store("<scheme>://...")`` use ``factory``."""
    _BACKENDS[scheme] = factory


def _postgis(url: str) -> Store:
    """The PostGIS store at ``url`` (psycopg, which it needs, is the optional extra ``postgis``)."""
    try:
        from geo.store.postgis import PostgisStore
    except ImportError as exc:
        raise StoreError(
            "PostGIS 存储需要 psycopg：pip install -e '.[postgis]'",
            f"a PostGIS store needs psycopg: pip install -e '.[postgis]' ({exc.name} is missing)",
            code="no_psycopg",
        ) from exc
    return PostgisStore(url)


register_backend("postgresql", _postgis)
register_backend("postgres", _postgis)


def open_store(location: str | os.PathLike[str] | None = None) -> Store:
    """Open (creating if needed) the store at ``location``.

    ``location`` is a URL whose scheme picks a registered backend, or a path: a
    directory (the GeoPackage ``gridwatch.gpkg`` inside it) or a ``.gpkg`` file.
    Without it, ``$GRIDWATCH_DATA`` is used.
    """
    loc = str(location) if location is not None else str(data_dir())
    if "://" in loc:
        scheme = loc.split("://", 1)[0]
        if scheme not in _BACKENDS:
            raise InputError(f"未知的存储类型: {scheme}", f"unknown store backend: {scheme}")
        return _BACKENDS[scheme](loc)
    path = Path(loc)
    if path.suffix.lower() != ".gpkg":
        path = path / STORE_FILE
    return GpkgStore(path)
