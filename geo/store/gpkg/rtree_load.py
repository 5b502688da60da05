"""A bulk load of a layer's R-tree: for a write that adds many rows relative to the layer, the
whole index is rebuilt as a packed tree instead of taking one ``INSERT`` per new entry.

SQLite's R-tree module inserts an entry by choosing a leaf, rewriting that node and
adjusting every parent above it -- about 21 µs an entry in a 200,000-entry tree, 4.8 s of
the 12.7 s commit of a 100 MB upload.  Rebuilding costs a pass over all entries instead: the
kept entries are read straight from the leaf nodes (no virtual-table scan), joined with the
new ones, packed bottom-up by Sort-Tile-Recursive (STR: slices by x centre, runs by y
centre, every node filled to an even share of its slice) and written into the R-tree's
shadow tables in SQLite's own node format, in the caller's transaction -- so the write stays
all-or-nothing, and a reader sees the old tree or the new one.  GDAL's GPKG driver does the
same for deferred spatial index creation (it builds an R*-tree in memory by insertion and
writes the same shadow tables); a packed tree is built here with numpy alone.

The shadow tables (ext/rtree/rtree.c) for ``rtree(id, minx, maxx, miny, maxy)``:

- ``<rtree>_node(nodeno INTEGER PRIMARY KEY, data)``: node 1 is the root.  ``data`` is the
  node size (the length of node 1's blob, fixed when the table was made) of bytes: a 2-byte
  big-endian tree depth (root only: 0 when the root is a leaf; other nodes 0), a 2-byte
  big-endian cell count, then 24-byte cells -- an 8-byte big-endian rowid (leaf) or child
  node number, and minx, maxx, miny, maxy as big-endian 32-bit floats; zeros to the end.
- ``<rtree>_rowid(rowid INTEGER PRIMARY KEY, nodeno)``: the leaf holding each entry.
- ``<rtree>_parent(nodeno INTEGER PRIMARY KEY, parentnode)``: each non-root node's parent.

Coordinates are rounded to 32-bit floats outward as SQLite rounds them (a minimum down to the
nearest float not above it, a maximum up: :func:`round_down`, :func:`round_up`), so an
entry's box always covers its geometry and is bit-for-bit what an ``INSERT`` stores.
"""

from __future__ import annotations

import math
from typing import Any

import apsw
import numpy as np

#: a write bulk-loads the index when it adds at least this many entries ...
BULK_MIN = 5_000
#: ... and at least this fraction of the entries the index holds already.  Measured with
#: ``bench/bench_rtree_bulk.py`` (200,000 entries held): a rebuild costs about what inserting
#: 15 % of them one by one costs (the two were even at 0.15, the rebuild 0.81× at 0.2, 0.32× at
#: 1.0); 0.2 leaves the smaller writes on the inserts.  See the README's benchmark section.
BULK_FRACTION = 0.2

_CELL = np.dtype([("id", ">i8"), ("box", ">f4", (4,))])
#: SQLite refuses a tree deeper than this (RTREE_MAX_DEPTH)
_MAX_DEPTH = 40


def round_down(values: np.ndarray) -> np.ndarray:
    """The largest 32-bit floats not above ``values``: what SQLite's R-tree stores for a
    minimum (``rtreeValueDown``; checked against SQLite 3.54 -- older releases nudged by a
    factor and could land one float lower, as outward as this)."""
    d = np.asarray(values, dtype=np.float64)
    with np.errstate(over="ignore"):  # beyond the float32 range: -inf, then the lowest float
        f = d.astype(np.float32)
    return np.where(f.astype(np.float64) > d, np.nextafter(f, np.float32(-np.inf)), f).astype(np.float32)


def round_up(values: np.ndarray) -> np.ndarray:
    """The smallest 32-bit floats not below ``values``: what SQLite's R-tree stores for a
    maximum (``rtreeValueUp``)."""
    d = np.asarray(values, dtype=np.float64)
    with np.errstate(over="ignore"):
        f = d.astype(np.float32)
    return np.where(f.astype(np.float64) < d, np.nextafter(f, np.float32(np.inf)), f).astype(np.float32)


def wants_bulk(conn: apsw.Connection, rtree: str, adding: int) -> bool:
    """Whether adding ``adding`` entries to ``rtree`` is cheaper as a rebuild (see
    :data:`BULK_MIN`, :data:`BULK_FRACTION`)."""
    if adding < BULK_MIN:
        return False
    if conn.config(apsw.SQLITE_DBCONFIG_DEFENSIVE, -1):
        return False  # shadow tables are read-only to SQL on a defensive connection
    row: Any = conn.execute(f'SELECT count(*) FROM "{rtree}_rowid"').fetchone()
    return adding >= BULK_FRACTION * int(row[0])


def _node_size(conn: apsw.Connection, rtree: str) -> int:
    row = conn.execute(f'SELECT length(data) FROM "{rtree}_node" WHERE nodeno = 1').fetchone()
    if row is None or row[0] is None or int(row[0]) < 4 + _CELL.itemsize:
        raise apsw.CorruptError(f"{rtree}: no root node")
    return int(row[0])


def read_entries(conn: apsw.Connection, rtree: str) -> tuple[np.ndarray, np.ndarray]:
    """(ids, boxes) of every entry of ``rtree``, read from its leaf nodes: int64 ids and float32
    boxes (n, 4) as minx, maxx, miny, maxy."""
    size = _node_size(conn, rtree)
    cap = (size - 4) // _CELL.itemsize
    rows: list[Any] = conn.execute(f'SELECT nodeno, data FROM "{rtree}_node" ORDER BY nodeno').fetchall()
    numbers = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    raw = np.frombuffer(b"".join(bytes(r[1]).ljust(size, b"\0")[:size] for r in rows), dtype=np.uint8)
    raw = raw.reshape(len(rows), size)
    counts = raw[:, 2].astype(np.int64) * 256 + raw[:, 3]
    if (counts > cap).any():
        raise apsw.CorruptError(f"{rtree}: a node holds more cells than it can")
    cells = np.ascontiguousarray(raw[:, 4 : 4 + cap * _CELL.itemsize]).view(_CELL).reshape(len(rows), cap)
    at = {int(n): i for i, n in enumerate(numbers.tolist())}
    level = np.array([at[1]], dtype=np.int64)
    depth = int(raw[at[1], 0]) * 256 + int(raw[at[1], 1])
    for _ in range(min(depth, _MAX_DEPTH)):  # down from the root to the leaves
        used = np.arange(cap) < counts[level][:, None]
        children = cells["id"][level][used].astype(np.int64)
        level = np.minimum(np.searchsorted(numbers, children), len(numbers) - 1)
        if not np.array_equal(numbers[level], children):
            raise apsw.CorruptError(f"{rtree}: a node refers to a node it does not hold")
    used = np.arange(cap) < counts[level][:, None]
    leaf = cells[level][used]
    return leaf["id"].astype(np.int64), leaf["box"].astype(np.float32)


def _str_groups(cx: np.ndarray, cy: np.ndarray, cap: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Sort-Tile-Recursive grouping of points (``cx``, ``cy``) into nodes of at most ``cap``:
    (order, node of each item in that order, number of nodes).  The items are cut into about
    sqrt(nodes) slices of equal count by x, each slice sorted by y and cut into nodes of
    equal count."""
    n = len(cx)
    nodes = math.ceil(n / cap)
    slices = max(1, math.ceil(math.sqrt(nodes)))
    by_x = np.argsort(cx, kind="stable")
    slice_of = np.empty(n, dtype=np.int64)
    slice_of[by_x] = (np.arange(n, dtype=np.int64) * slices) // n
    order = np.lexsort((cy, slice_of))
    s = slice_of[order]
    sizes = np.bincount(s, minlength=slices)
    starts = np.cumsum(sizes) - sizes
    per_slice = -(-sizes // cap)
    offsets = np.cumsum(per_slice) - per_slice
    pos = np.arange(n, dtype=np.int64) - starts[s]
    group = offsets[s] + (pos * per_slice[s]) // sizes[s]
    return order, group, int(per_slice.sum())


def _blobs(
    ids: np.ndarray, boxes: np.ndarray, group: np.ndarray, count: int, size: int, depth: int | None
) -> np.ndarray:
    """``count`` node blobs (rows of a (count, size) uint8 array) holding cells ``ids``/``boxes``
    grouped by ``group`` (non-decreasing); ``depth`` written in the root's header."""
    cap = (size - 4) // _CELL.itemsize
    starts = np.searchsorted(group, np.arange(count))
    slot = np.arange(len(ids), dtype=np.int64) - starts[group]
    cells = np.zeros((count, cap), dtype=_CELL)
    cells["id"][group, slot] = ids
    cells["box"][group, slot] = boxes
    n_cells = np.bincount(group, minlength=count)
    out = np.zeros((count, size), dtype=np.uint8)
    out[:, 2] = n_cells >> 8
    out[:, 3] = n_cells & 0xFF
    if depth is not None:
        out[:, 0] = depth >> 8
        out[:, 1] = depth & 0xFF
    out[:, 4 : 4 + cap * _CELL.itemsize] = cells.view(np.uint8).reshape(count, cap * _CELL.itemsize)
    return out


def _boxes_of(boxes: np.ndarray, group: np.ndarray, count: int) -> np.ndarray:
    """The box covering each group's boxes (groups non-decreasing, all present)."""
    starts = np.searchsorted(group, np.arange(count))
    return np.stack(
        [
            np.minimum.reduceat(boxes[:, 0], starts),
            np.maximum.reduceat(boxes[:, 1], starts),
            np.minimum.reduceat(boxes[:, 2], starts),
            np.maximum.reduceat(boxes[:, 3], starts),
        ],
        axis=1,
    )


def rebuild(conn: apsw.Connection, rtree: str, ids: np.ndarray, bounds: np.ndarray) -> None:
    """Rebuild ``rtree`` holding its entries and new ones: ``ids`` with shapely-order
    ``bounds`` (n, 4: minx, miny, maxx, maxy; rows with NaN left out).  An id the tree holds
    already takes its new box (as ``INSERT OR REPLACE``).  Inside the caller's transaction."""
    size = _node_size(conn, rtree)
    cap = (size - 4) // _CELL.itemsize
    ids = np.asarray(ids, dtype=np.int64)
    bounds = np.asarray(bounds, dtype=np.float64).reshape(-1, 4)
    present = ~np.isnan(bounds).any(axis=1)
    ids, bounds = ids[present], bounds[present]
    if (bounds[:, 0] > bounds[:, 2]).any() or (bounds[:, 1] > bounds[:, 3]).any():
        raise ValueError("an R-tree box has its minimum above its maximum")
    new_boxes = np.stack(
        [round_down(bounds[:, 0]), round_up(bounds[:, 2]), round_down(bounds[:, 1]), round_up(bounds[:, 3])],
        axis=1,
    )
    sorted_new = np.sort(ids)
    if (np.diff(sorted_new) == 0).any():
        raise ValueError("the same id twice among the R-tree's new entries")
    old_ids, old_boxes = read_entries(conn, rtree)
    # sorting, not np.isin / np.unique: those take most of a second for 400,000 ids in numpy 2.4
    at = np.minimum(np.searchsorted(sorted_new, old_ids), max(len(sorted_new) - 1, 0))
    kept = sorted_new[at] != old_ids if len(sorted_new) else np.ones(len(old_ids), dtype=bool)
    all_ids = np.concatenate([old_ids[kept], ids])
    all_boxes = np.concatenate([old_boxes[kept], new_boxes])

    # bottom-up: each level's nodes become the items of the level above, until one node
    levels: list[tuple[np.ndarray, np.ndarray, np.ndarray, int]] = []  # (ids, boxes, group, count)
    items_ids, items_boxes = all_ids, all_boxes
    while True:
        n = len(items_ids)
        if n <= cap:
            levels.append((items_ids, items_boxes, np.zeros(n, dtype=np.int64), 1))
            break
        cx = items_boxes[:, 0].astype(np.float64) + items_boxes[:, 1]
        cy = items_boxes[:, 2].astype(np.float64) + items_boxes[:, 3]
        order, group, count = _str_groups(cx, cy, cap)
        items_ids, items_boxes = items_ids[order], items_boxes[order]
        levels.append((items_ids, items_boxes, group, count))
        # placeholders: the node numbers are given once the levels above are known
        items_ids = np.arange(count, dtype=np.int64)
        items_boxes = _boxes_of(items_boxes, group, count)
    depth = len(levels) - 1
    if depth > _MAX_DEPTH:
        raise ValueError("R-tree too deep")

    # number the nodes top-down: the root 1, then each level below in its order
    first = [0] * len(levels)
    nxt = 2
    for k in range(len(levels) - 2, -1, -1):
        first[k] = nxt
        nxt += levels[k][3]
    first[-1] = 1

    conn.execute(f'DELETE FROM "{rtree}_node"')
    conn.execute(f'DELETE FROM "{rtree}_rowid"')
    conn.execute(f'DELETE FROM "{rtree}_parent"')
    for k, (level_ids, level_boxes, group, count) in enumerate(levels):
        cell_ids = level_ids if k == 0 else level_ids + first[k - 1]  # children: their numbers
        blobs = _blobs(cell_ids, level_boxes, group, count, size, depth if k == len(levels) - 1 else None)
        numbers = np.arange(count, dtype=np.int64) + first[k]
        conn.executemany(
            f'INSERT INTO "{rtree}_node" (nodeno, data) VALUES (?, ?)',
            zip(numbers.tolist(), (b.tobytes() for b in blobs), strict=True),
        )
        holder = group + first[k]
        if k == 0:
            _insert_rowids(conn, rtree, cell_ids, holder)
        else:
            conn.executemany(
                f'INSERT INTO "{rtree}_parent" (nodeno, parentnode) VALUES (?, ?)',
                zip(cell_ids.tolist(), holder.tolist(), strict=True),
            )


def _insert_rowids(conn: apsw.Connection, rtree: str, ids: np.ndarray, nodes: np.ndarray) -> None:
    """Fill ``<rtree>_rowid``: one row (id, leaf node) per entry, in id order.  The pairs go to
    SQLite as one array of ``id << 24 | leaf - first leaf`` (``carray``, no Python object per
    row: building 400,000 row tuples took longer than SQLite's insert of them) when they fit."""
    by_id = np.argsort(ids, kind="stable")
    ids, nodes = ids[by_id], nodes[by_id]
    base = int(nodes.min()) if len(nodes) else 0
    offsets = nodes - base
    if len(ids) and int(ids.min()) >= 0 and int(ids.max()) < 2**39 and int(offsets.max()) < 2**24:
        packed = np.ascontiguousarray((ids << 24) | offsets, dtype=np.int64)
        conn.execute(
            f'INSERT INTO "{rtree}_rowid" (rowid, nodeno) SELECT value >> 24, ?2 + (value & 16777215)'
            " FROM carray(?1)",
            (apsw.carray(packed), base),
        )
        return
    conn.executemany(
        f'INSERT INTO "{rtree}_rowid" (rowid, nodeno) VALUES (?, ?)',
        zip(ids.tolist(), nodes.tolist(), strict=True),
    )
