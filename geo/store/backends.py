"""Opening a store: where it is, and the backend that serves it.

A store location is a URL whose scheme names a backend (``postgresql://host/db``, or a scheme
a backend registered with :func:`register_backend`) or a path: a ``.gpkg`` file, or a
directory holding ``gridwatch.gpkg``; ``gpkg:PATH`` spells a path explicitly.  The data
directory (archived uploads, staged uploads, photos) is a separate setting: ``--data`` /
``$GRIDWATCH_DATA``; the store is named by ``--store`` / ``$GRIDWATCH_STORE``, and without it
lives in the data directory.  :func:`locate` settles both.

A location may carry credentials (``postgresql://user:secret@host/db``): every message and log
line shows it through :func:`geo.store.credentials.shown_location`, which leaves them out.

The interface (:mod:`geo.store.base`) names no backend; this module is where they are chosen.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from geo.errors import GridwatchError, InputError, StoreError
from geo.store.base import STORE_FILE, Store, data_dir
from geo.store.credentials import SCHEME, secrets_in, shown_location, without
from geo.store.gpkg import GpkgStore

__all__ = [
    "Location",
    "backend_for",
    "gpkg_path",
    "locate",
    "open_store",
    "register_backend",
]

#: Opens the store at a location (its URL as given) with its data directory.
Factory = Callable[[str, Path], Store]

_BACKENDS: dict[str, Factory] = {}


def register_backend(scheme: str, factory: Factory) -> None:
    """Make ``open_store("<scheme>://...")`` (and ``<scheme>:...``) use ``factory``.

    ``factory(location, data)`` gets the location as given and the data directory (where the
    backend keeps archived uploads) and returns an open :class:`~geo.store.base.Store`.  A
    later registration of the same scheme replaces the earlier one.
    """
    if not SCHEME.match(scheme + ":") or scheme != scheme.lower():
        raise ValueError(f"not a URL scheme: {scheme!r}")
    _BACKENDS[scheme] = factory


def _scheme(location: str) -> str | None:
    """The URL scheme of ``location`` (lower case), or None for a path."""
    m = SCHEME.match(location)
    if m is None:
        if "://" in location:  # "://" after something that is no scheme: no path either
            raise InputError(
                "存储位置无效（应为 .gpkg 文件、目录或 postgresql://… 网址）",
                "not a store location (give a .gpkg file, a directory or a postgresql://… URL)",
                code="bad_store",
            )
        return None
    scheme = m.group(1).lower()
    if len(scheme) == 1:  # a drive letter, not a scheme
        return None
    if "://" not in location and scheme not in _BACKENDS:
        return None  # a file called "a:b.gpkg"
    return scheme


class Location(NamedTuple):
    """Where a store is and where its data directory is."""

    #: the store: a URL or the path of a ``.gpkg`` file, as given
    store: str
    #: archived uploads, staged uploads, photos
    data: Path

    def __str__(self) -> str:
        return shown_location(self.store)


def locate(
    data: str | os.PathLike[str] | None = None, store: str | os.PathLike[str] | None = None
) -> Location:
    """The store and the data directory from the settings.

    ``data`` is the data directory (``--data``; None: ``$GRIDWATCH_DATA``, else
    ``./var/gridwatch``); a ``.gpkg`` file given as ``data`` is the store, and its folder the
    data directory (as before ``--store`` existed); a URL is refused.  ``store`` names the store (``--store``;
    None: ``$GRIDWATCH_STORE``; empty: none) and wins over the one ``data`` implies; without
    it the store is ``gridwatch.gpkg`` in the data directory.
    """
    if data is not None and "://" in str(data):
        raise InputError(
            "数据目录应为目录；存储的网址请用 --store 或 GRIDWATCH_STORE 给出",
            "the data directory must be a directory: give a store URL with --store or GRIDWATCH_STORE",
            code="bad_data_dir",
        )
    folder = data_dir(data)
    implied = folder
    if folder.suffix.lower() == ".gpkg":
        folder = folder.parent
    else:
        implied = folder / STORE_FILE
    named = os.environ.get("GRIDWATCH_STORE", "") if store is None else str(store)
    return Location(named.strip() or str(implied), folder)


def backend_for(location: str) -> Factory:
    """The factory of the backend that serves ``location`` (a clear :class:`InputError` for a
    scheme no backend serves), without opening anything."""
    scheme = _scheme(location)
    if scheme is None:
        return _open_gpkg
    factory = _BACKENDS.get(scheme)
    if factory is not None:
        return factory
    known = ", ".join(sorted(_BACKENDS))
    raise InputError(
        f"未知的存储类型: {scheme}（可用: {known}，或 .gpkg 文件路径）",
        f"unknown store backend: {scheme} (known: {known}, or the path of a .gpkg file)",
        code="unknown_backend",
    )


def gpkg_path(location: str) -> Path | None:
    """The GeoPackage file a location names (``gpkg:PATH``, ``gpkg:///abs``, a ``.gpkg`` file or
    a directory holding ``gridwatch.gpkg``), or None when another backend serves it."""
    text = location
    scheme = _scheme(text)
    if scheme == "gpkg":
        text = text[len("gpkg:") :]
        if text.startswith("//"):  # gpkg:///srv/x.gpkg, gpkg://relative/x.gpkg
            text = text[2:]
    elif scheme is not None:
        return None
    path = Path(text)
    return path if path.suffix.lower() == ".gpkg" else path / STORE_FILE


def _open_gpkg(location: str, data: Path) -> Store:
    """The GeoPackage at ``location`` (see :func:`gpkg_path`)."""
    return GpkgStore(gpkg_path(location) or Path(location), data_dir=data)


register_backend("gpkg", _open_gpkg)


def _postgis(url: str, data: Path) -> Store:
    """The PostGIS store at ``url`` (psycopg, which it needs, is the optional extra ``postgis``)."""
    try:
        from geo.store.postgis import PostgisStore
    except ImportError as exc:
        raise StoreError(
            "PostGIS 存储需要 psycopg：pip install -e '.[postgis]'",
            f"a PostGIS store needs psycopg: pip install -e '.[postgis]' ({exc.name} is missing)",
            code="no_psycopg",
        ) from exc
    return PostgisStore(url, data=data)


register_backend("postgresql", _postgis)
register_backend("postgres", _postgis)


def open_store(
    location: str | os.PathLike[str] | None = None,
    *,
    data: str | os.PathLike[str] | None = None,
    usable_only: bool = True,
) -> Store:
    """Open (creating if needed) the store at ``location``.

    ``location`` is a URL whose scheme picks a registered backend, or a path: a
    directory (the GeoPackage ``gridwatch.gpkg`` inside it, and the data directory) or a
    ``.gpkg`` file (its folder the data directory unless ``data`` says otherwise).  Without
    it, :func:`locate` settles the store from ``data``, ``$GRIDWATCH_STORE`` and
    ``$GRIDWATCH_DATA``.  An error never shows the credentials of a URL.  A store marked
    unusable (a copy that did not finish or differs from its source, see
    :mod:`geo.store.copy`) is refused, saying why, unless ``usable_only`` is False.
    """
    if location is None:
        where = locate(data)
    else:
        given = str(location)
        folder: Path
        if data is not None:
            folder = Path(data)
        elif _scheme(given) is None:
            folder = Path(given).parent if Path(given).suffix.lower() == ".gpkg" else Path(given)
        else:
            folder = data_dir()
        where = Location(given, folder)
    factory = backend_for(where.store)
    secrets = secrets_in(where.store)
    if not secrets:
        return _usable(factory(where.store, where.data), usable_only)
    failure: GridwatchError
    try:
        return _usable(factory(where.store, where.data), usable_only)
    except GridwatchError as exc:
        exc.zh, exc.en = without(exc.zh, secrets), without(exc.en, secrets)
        exc.args = (exc.message,)
        exc.details = {}
        failure = exc
    except Exception as exc:
        failure = StoreError(
            f"无法打开存储 {shown_location(where.store)}",
            f"cannot open the store {shown_location(where.store)}: {without(str(exc), secrets)}",
            code="store_unavailable",
        )
    # raised here, outside the handler: no chained exception (and its traceback) shows the URL
    failure.__cause__ = failure.__context__ = None
    failure.__traceback__ = None
    raise failure


def _usable(store: Store, usable_only: bool) -> Store:
    """``store``, unless ``usable_only`` and it is marked unusable (then closed, and refused)."""
    why = getattr(store, "unusable", None)
    reason = why() if usable_only and why is not None else None
    if reason:
        store.close()
        raise StoreError(
            f"此存储不可用: {reason}", f"this store cannot be used: {reason}", code="store_unusable"
        )
    return store
