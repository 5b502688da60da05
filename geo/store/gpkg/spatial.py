"""What makes the store's feature tables a GeoPackage that GDAL and QGIS open cleanly: the
R-tree spatial index of each layer table (the ``gpkg_rtree_index`` extension, kept current by
its standard triggers), the SQL functions those triggers call, and the geometry type each layer
declares in ``gpkg_geometry_columns``.

The triggers are those of GeoPackage 1.3 (the version the store declares): they call
``ST_IsEmpty`` and ``ST_MinX`` … ``ST_MaxY``, which SQLite does not have, so every connection
gridwatch opens registers them (:func:`register_functions`); GDAL and QGIS register their own
when they write the file, so their edits keep the index current as well.  An import's bulk
insert adds its entries itself (:func:`writer_indexes`, :func:`index_rows`); retirements and
rollbacks go through the triggers.

Typed views (:mod:`geo.store.typed_views`): a layer declared ``GEOMETRY`` gets one SQL view per
geometry type it has held, ``<layer>_point`` …, registered as a feature table of that type
(:func:`create_typed_view`).  A view selects the table's rows whose ``ST_GeometryType`` is its
type: GDAL and QGIS register that function when they open the file, gridwatch on every
connection; plain ``sqlite3`` without it cannot read the views (the tables it can).

Declared geometry type: a layer declares the narrowest type that covers every row it has held
since it was last empty -- ``POINT``, ``POLYGON`` … when all rows are single geometries of
one kind, ``MULTIPOINT``, ``MULTIPOLYGON`` … when some are multi (single ones then read as they
are), and ``GEOMETRY`` when a layer holds points and polygons together (QGIS then offers the
layer split by geometry type).  An empty layer declares what its declaration in ``layers/``
allows when that is one kind (``POLYGON`` for the unit grid), else ``GEOMETRY``.  The declared
type only widens while the layer has rows, so a row put back by a rollback always fits.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from typing import Any

import apsw
import numpy as np
import shapely

from geo.store.gpkg import rtree_load
from geo.store.typed_views import VIEW_TYPES, view_label, view_name
from layers.base import LayerSpec

#: the ``gpkg_extensions`` table (GeoPackage 1.2 and later)
EXTENSIONS_SQL = """CREATE TABLE IF NOT EXISTS gpkg_extensions (table_name TEXT, column_name TEXT,
    extension_name TEXT NOT NULL, definition TEXT NOT NULL, scope TEXT NOT NULL,
    CONSTRAINT ge_tce UNIQUE (table_name, column_name, extension_name))"""

_RTREE_DEFINITION = "http://www.geopackage.org/spec120/#extension_rtree"
_ENVELOPE_BYTES = {0: 0, 1: 32, 2: 48, 3: 48, 4: 64}
#: WKB geometry type codes (2D, ISO) and their GeoPackage names
_WKB_NAMES = {
    1: "POINT",
    2: "LINESTRING",
    3: "POLYGON",
    4: "MULTIPOINT",
    5: "MULTILINESTRING",
    6: "MULTIPOLYGON",
    7: "GEOMETRYCOLLECTION",
}
#: shapely type ids and their GeoPackage names (a linear ring is a line string)
_SHAPELY_NAMES = {
    0: "POINT",
    1: "LINESTRING",
    2: "LINESTRING",
    **{k: v for k, v in _WKB_NAMES.items() if k > 2},
}
_LE_ENVELOPE = struct.Struct("<4d")
_BE_ENVELOPE = struct.Struct(">4d")
_DECLARED_KINDS = {"Point": "POINT", "LineString": "LINESTRING", "Polygon": "POLYGON"}


# --- SQL functions ----------------------------------------------------------------------------
def _envelope(blob: bytes | None) -> tuple[float, float, float, float] | None:
    """(minx, maxx, miny, maxy) of a GeoPackage geometry blob; None for NULL or an empty one."""
    if blob is None or len(blob) < 8:
        return None
    flags = blob[3]
    if flags & 0b10000:
        return None
    env = (flags >> 1) & 0b111
    if env:
        return (_LE_ENVELOPE if flags & 1 else _BE_ENVELOPE).unpack_from(blob, 8)
    geom = shapely.from_wkb(bytes(blob[8 + _ENVELOPE_BYTES.get(env, 0) :]))
    if geom is None or geom.is_empty:
        return None
    x0, y0, x1, y1 = geom.bounds
    return (x0, x1, y0, y1)


def _part(i: int) -> Callable[[bytes | None], float | None]:
    def of(blob: bytes | None) -> float | None:
        env = _envelope(blob)
        return None if env is None else env[i]

    return of


def _is_empty(blob: bytes | None) -> int | None:
    if blob is None:
        return None
    if len(blob) < 8:
        return 1
    return 1 if _envelope(blob) is None else 0


def wkb_type(blob: bytes | None) -> int | None:
    """The 2D WKB geometry type code (1 point … 7 collection) of a GeoPackage blob; None for NULL."""
    if blob is None or len(blob) < 8:
        return None
    at = 8 + _ENVELOPE_BYTES.get((blob[3] >> 1) & 0b111, 0)
    if len(blob) < at + 5:
        return None
    order = "<" if blob[at] == 1 else ">"
    return int(struct.unpack_from(f"{order}I", blob, at + 1)[0]) % 1000


def geometry_type_name(blob: bytes | None) -> str | None:
    """The GeoPackage type name (``POINT``, ``MULTIPOLYGON`` ...) of a GeoPackage blob, as GDAL's
    ``ST_GeometryType`` gives it; None for NULL."""
    code = wkb_type(blob)
    return None if code is None else _WKB_NAMES.get(code)


def register_functions(conn: apsw.Connection) -> None:
    """Register ``ST_MinX``, ``ST_MaxX``, ``ST_MinY``, ``ST_MaxY``, ``ST_IsEmpty`` (what the
    R-tree triggers call), ``ST_GeometryType`` (what the typed views call; GDAL registers its
    own) and ``gw_wkb_type`` on ``conn``."""
    flags = apsw.SQLITE_INNOCUOUS
    functions: tuple[tuple[str, Callable[..., Any]], ...] = (
        ("ST_MinX", _part(0)),
        ("ST_MaxX", _part(1)),
        ("ST_MinY", _part(2)),
        ("ST_MaxY", _part(3)),
        ("ST_IsEmpty", _is_empty),
        ("ST_GeometryType", geometry_type_name),
        ("gw_wkb_type", wkb_type),
    )
    for name, fn in functions:
        conn.create_scalar_function(name, fn, 1, deterministic=True, flags=flags)


# --- the R-tree -------------------------------------------------------------------------------
def rtree_name(table: str) -> str:
    """The R-tree table of ``table``'s geometry column."""
    return f"rtree_{table}_geom"


def has_rtree(conn: apsw.Connection, table: str) -> bool:
    """Whether ``table`` has its R-tree table."""
    return bool(conn.execute("SELECT 1 FROM sqlite_master WHERE name=?", (rtree_name(table),)).fetchone())


def create_rtree(conn: apsw.Connection, table: str) -> None:
    """The R-tree of ``table`` (filled from its rows), its triggers and its ``gpkg_extensions``
    row; nothing when it has one.  Inside the caller's transaction."""
    if has_rtree(conn, table):
        return
    conn.execute(EXTENSIONS_SQL)
    rt = rtree_name(table)
    t = f'"{table}"'
    conn.execute(f'CREATE VIRTUAL TABLE "{rt}" USING rtree(id, minx, maxx, miny, maxy)')
    _fill(conn, table)
    none = "(NEW.geom ISNULL OR ST_IsEmpty(NEW.geom))"
    for stmt in (
        _insert_trigger(table),
        f'CREATE TRIGGER "{rt}_update1" AFTER UPDATE OF geom ON {t} WHEN OLD.fid = NEW.fid AND {_FULL}'
        f' BEGIN INSERT OR REPLACE INTO "{rt}" VALUES ({_VALUES}); END',
        f'CREATE TRIGGER "{rt}_update2" AFTER UPDATE OF geom ON {t} WHEN OLD.fid = NEW.fid AND {none}'
        f' BEGIN DELETE FROM "{rt}" WHERE id = OLD.fid; END',
        f'CREATE TRIGGER "{rt}_update3" AFTER UPDATE ON {t} WHEN OLD.fid != NEW.fid AND {_FULL}'
        f' BEGIN DELETE FROM "{rt}" WHERE id = OLD.fid; INSERT OR REPLACE INTO "{rt}" VALUES ({_VALUES}); END',
        f'CREATE TRIGGER "{rt}_update4" AFTER UPDATE ON {t} WHEN OLD.fid != NEW.fid AND {none}'
        f' BEGIN DELETE FROM "{rt}" WHERE id IN (OLD.fid, NEW.fid); END',
        f'CREATE TRIGGER "{rt}_delete" AFTER DELETE ON {t} WHEN OLD.geom NOT NULL'
        f' BEGIN DELETE FROM "{rt}" WHERE id = OLD.fid; END',
    ):
        conn.execute(stmt)
    conn.execute(
        "INSERT OR IGNORE INTO gpkg_extensions VALUES (?, 'geom', 'gpkg_rtree_index', ?, 'write-only')",
        (table, _RTREE_DEFINITION),
    )


def _fill(conn: apsw.Connection, table: str, chunk: int = 50_000) -> None:
    """Entries for the rows ``table`` holds, read from their blobs' headers a chunk at a time
    (one Python call per row, not the five of ``INSERT … SELECT ST_MinX(geom) …``)."""
    after = -(2**63)
    while True:
        rows: list[Any] = conn.execute(
            f'SELECT fid, geom FROM "{table}" WHERE fid > ? AND geom NOT NULL ORDER BY fid LIMIT ?',
            (after, chunk),
        ).fetchall()
        if not rows:
            return
        entries = [(fid, *env) for fid, blob in rows if (env := _envelope(blob)) is not None]
        conn.executemany(f'INSERT INTO "{rtree_name(table)}" VALUES (?,?,?,?,?)', entries)
        after = int(rows[-1][0])


_VALUES = "NEW.fid, ST_MinX(NEW.geom), ST_MaxX(NEW.geom), ST_MinY(NEW.geom), ST_MaxY(NEW.geom)"
_FULL = "(NEW.geom NOTNULL AND NOT ST_IsEmpty(NEW.geom))"


def _insert_trigger(table: str) -> str:
    rt = rtree_name(table)
    return (
        f'CREATE TRIGGER "{rt}_insert" AFTER INSERT ON "{table}" WHEN {_FULL}'
        f' BEGIN INSERT OR REPLACE INTO "{rt}" VALUES ({_VALUES}); END'
    )


@contextmanager
def writer_indexes(conn: apsw.Connection, table: str) -> Iterator[bool]:
    """A bulk insert into ``table`` whose R-tree entries the writer adds itself (see
    :func:`index_rows`): the insert trigger is dropped for the block and made again after it,
    in the caller's transaction (so no other connection ever sees the table without it).

    The trigger would call five Python functions per row through SQLite, which costs three
    times what the R-tree insert itself does.  Yields whether the table has an R-tree (False:
    a store not upgraded yet, nothing to do).
    """
    if not has_rtree(conn, table):
        yield False
        return
    conn.execute(f'DROP TRIGGER IF EXISTS "{rtree_name(table)}_insert"')
    try:
        yield True
    except BaseException:
        with suppress(apsw.Error):  # the transaction is rolled back with the error anyway
            conn.execute(_insert_trigger(table))
        raise
    conn.execute(_insert_trigger(table))


def index_rows(conn: apsw.Connection, table: str, fids: np.ndarray, geoms: np.ndarray) -> None:
    """Add the R-tree entries of rows ``fids`` of ``table`` holding shapely ``geoms`` (NULL and
    empty geometries get none, as the triggers do).  Many entries relative to the tree's size
    rebuild it as a packed tree instead (:mod:`geo.store.gpkg.rtree_load`)."""
    if len(fids) == 0:
        return
    bounds = shapely.bounds(np.asarray(geoms, dtype=object))
    keep = np.flatnonzero(~np.isnan(bounds).any(axis=1))
    if rtree_load.wants_bulk(conn, rtree_name(table), len(keep)):
        rtree_load.rebuild(conn, rtree_name(table), np.asarray(fids, dtype=np.int64)[keep], bounds[keep])
        return
    keep = keep[np.argsort(_z_order(bounds[keep]), kind="stable")]
    conn.executemany(
        f'INSERT OR REPLACE INTO "{rtree_name(table)}" VALUES (?,?,?,?,?)',
        zip(
            np.asarray(fids, dtype=np.int64)[keep].tolist(),
            bounds[keep, 0].tolist(),
            bounds[keep, 2].tolist(),
            bounds[keep, 1].tolist(),
            bounds[keep, 3].tolist(),
            strict=True,
        ),
    )


def _z_order(bounds: np.ndarray) -> np.ndarray:
    """A Z-order (Morton) code of each envelope's centre on a 65,536 × 65,536 lattice over
    their extent: inserting entries in this order keeps each insert near the previous one in
    the R-tree, about a tenth cheaper than in file order for a large batch."""
    if len(bounds) == 0:
        return np.zeros(0, dtype=np.uint64)
    cx = (bounds[:, 0] + bounds[:, 2]) / 2
    cy = (bounds[:, 1] + bounds[:, 3]) / 2
    code = np.zeros(len(bounds), dtype=np.uint64)
    for shift, c in ((0, cx), (1, cy)):
        lo, span = float(c.min()), float(c.max() - c.min())
        v = ((c - lo) / span * 65535).astype(np.uint64) if span > 0 else np.zeros(len(c), dtype=np.uint64)
        for mask, step in (
            (0x0000FFFF0000FFFF, 16),
            (0x00FF00FF00FF00FF, 8),
            (0x0F0F0F0F0F0F0F0F, 4),
            (0x3333333333333333, 2),
            (0x5555555555555555, 1),
        ):
            v = (v | (v << np.uint64(step))) & np.uint64(mask)
        code |= v << np.uint64(shift)
    return code


# --- the declared geometry type ---------------------------------------------------------------
def widen(declared: str | None, names: Iterable[str]) -> str | None:
    """The narrowest GeoPackage geometry type covering ``declared`` and every type in ``names``
    (see the module docstring); None when both are empty."""
    found = set(names) | ({declared} if declared else set())
    if not found:
        return None
    if found & {"GEOMETRY", "GEOMETRYCOLLECTION"}:
        return "GEOMETRY"
    kinds = {n.removeprefix("MULTI") for n in found}
    if len(kinds) != 1:
        return "GEOMETRY"
    kind = kinds.pop()
    return f"MULTI{kind}" if any(n.startswith("MULTI") for n in found) else kind


def declared_by_layer(spec: LayerSpec) -> str:
    """What an empty layer of ``spec`` declares: its one kind of geometry, else ``GEOMETRY``."""
    kinds = {_DECLARED_KINDS.get(k, "GEOMETRY") for k in spec.geometry_types}
    return kinds.pop() if len(kinds) == 1 else "GEOMETRY"


def type_names(geoms: np.ndarray) -> set[str]:
    """The GeoPackage type names of shapely ``geoms`` (missing ones left out)."""
    ids = np.unique(shapely.get_type_id(np.asarray(geoms, dtype=object)))
    return {_SHAPELY_NAMES[int(i)] for i in ids.tolist() if int(i) in _SHAPELY_NAMES}


def stored_type_names(conn: apsw.Connection, table: str, where: str = "", args: tuple = ()) -> set[str]:
    """The GeoPackage type names of the geometries stored in ``table`` (rows matching ``where``)."""
    rows = conn.execute(f'SELECT DISTINCT gw_wkb_type(geom) FROM "{table}" {where}', args)
    return {_WKB_NAMES[int(r[0])] for r in rows if r[0] is not None and int(r[0]) in _WKB_NAMES}


def declared_type(conn: apsw.Connection, table: str) -> str | None:
    """The geometry type ``table`` declares in ``gpkg_geometry_columns``."""
    row = conn.execute(
        "SELECT geometry_type_name FROM gpkg_geometry_columns WHERE table_name=? AND column_name='geom'",
        (table,),
    ).fetchone()
    return None if row is None else str(row[0])


def declare_type(conn: apsw.Connection, table: str, name: str) -> None:
    """Set the geometry type ``table`` declares (when it differs)."""
    if declared_type(conn, table) != name:
        conn.execute(
            "UPDATE gpkg_geometry_columns SET geometry_type_name=? WHERE table_name=? AND column_name='geom'",
            (name, table),
        )


# --- typed views ------------------------------------------------------------------------------


def create_typed_view(conn: apsw.Connection, spec: LayerSpec, type_name: str, stamp: str) -> bool:
    """The view of ``spec``'s rows of ``type_name`` (``POINT`` …; see
    :mod:`geo.store.typed_views`), registered in ``gpkg_contents`` and ``gpkg_geometry_columns``
    with that type and the layer's SRS, its extent that of the layer; nothing when it exists.
    Whether it was made.  Inside the caller's transaction.

    The view lists the table's columns as ``*``: SQLite expands that whenever it reads the
    schema, so fields added to the table later show in the view too.  ``fid`` comes first, the
    table's integer primary key, which GDAL takes as the view's feature id.
    """
    view = view_name(spec.name, type_name)
    if conn.execute("SELECT 1 FROM sqlite_master WHERE name=?", (view,)).fetchone():
        return False
    table = f'"{spec.name}"'
    conn.execute(
        f"CREATE VIEW \"{view}\" AS SELECT * FROM {table} WHERE ST_GeometryType(geom) = '{type_name}'"
    )
    identifier, description = view_label(spec.label_zh, spec.label_en, type_name)
    conn.execute(
        "INSERT INTO gpkg_contents (table_name, data_type, identifier, description, last_change,"
        " min_x, min_y, max_x, max_y, srs_id)"
        " SELECT ?, 'features', ?, ?, ?, min_x, min_y, max_x, max_y, srs_id FROM gpkg_contents WHERE table_name=?",
        (view, identifier, description, stamp, spec.name),
    )
    conn.execute(
        "INSERT INTO gpkg_geometry_columns SELECT ?, 'geom', ?, srs_id, 0, 0 FROM gpkg_geometry_columns"
        " WHERE table_name=? AND column_name='geom'",
        (view, type_name, spec.name),
    )
    return True


def typed_views(conn: apsw.Connection, table: str) -> list[str]:
    """The typed views of ``table`` the store has registered."""
    names = [view_name(table, t) for t in VIEW_TYPES]
    marks = ", ".join("?" for _ in names)
    rows = conn.execute(
        f"SELECT name FROM sqlite_master WHERE type='view' AND name IN ({marks}) ORDER BY name", names
    )
    return [str(r[0]) for r in rows]
