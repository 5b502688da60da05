"""The bulk load of a layer's R-tree (geo.store.gpkg.rtree_load): a packed tree written straight
into SQLite's shadow tables must be a tree SQLite itself accepts (``rtreecheck``), hold the very
boxes SQLite's own ``INSERT`` would have stored (32-bit floats rounded outward), answer window
queries as a brute-force filter does, keep working under later trigger inserts and deletes, and
read through GDAL's spatial filter -- on real files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import apsw
import numpy as np
import pyogrio
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import layers
from geo.imports.batches import rollback
from geo.store.backends import open_store
from geo.store.base import STORE_FILE
from geo.store.gpkg import rtree_load
from geo.store.gpkg.spatial import rtree_name
from tests.helpers.builders import X0, Y0
from tests.test_gpkg_format import _index_matches, _write

PARKING = layers.get("parking")


def _boxes(rng: np.random.Generator, n: int, kind: str) -> np.ndarray:
    """``n`` boxes (minx, miny, maxx, maxy) of one kind: points and small boxes at projected
    metres with fractions no float32 holds, boxes around zero, or clusters of equal points."""
    if kind == "metres":
        x = rng.uniform(X0 - 5_000, X0 + 5_000, n)
        y = rng.uniform(Y0 - 5_000, Y0 + 5_000, n)
        w = rng.exponential(3.0, n) * (rng.random(n) < 0.5)
        h = rng.exponential(3.0, n) * (rng.random(n) < 0.5)
    elif kind == "signed":
        x = rng.normal(0, 1e-3, n) * 10.0 ** rng.integers(-3, 8, n)
        y = rng.normal(0, 1e-3, n) * 10.0 ** rng.integers(-3, 8, n)
        w = np.abs(rng.normal(0, 1.0, n)) * 10.0 ** rng.integers(-6, 3, n)
        h = np.abs(rng.normal(0, 1.0, n)) * 10.0 ** rng.integers(-6, 3, n)
    else:  # a few places, many entries each
        at = rng.integers(0, 5, n)
        x = X0 + 0.1 * at
        y = Y0 - 0.3 * at
        w = h = np.zeros(n)
    return np.stack([x, y, x + w, y + h], axis=1)


def _table(conn: apsw.Connection, rt: str) -> list[tuple[Any, ...]]:
    return conn.execute(f'SELECT id, minx, maxx, miny, maxy FROM "{rt}" ORDER BY id').fetchall()


def _window(conn: apsw.Connection, rt: str, w: tuple[float, float, float, float]) -> list[int]:
    x0, y0, x1, y1 = w
    return sorted(
        r[0]
        for r in conn.execute(
            f'SELECT id FROM "{rt}" WHERE maxx >= ? AND minx <= ? AND maxy >= ? AND miny <= ?',
            (x0, x1, y0, y1),
        )
    )


def _check(
    conn: apsw.Connection, rt: str, reference: str, entries: dict[int, np.ndarray], windows: list
) -> None:
    """``rt`` is a sound tree, equal entry for entry (bit for bit) to ``reference`` (filled by
    SQLite's own inserts), and each window finds on both what a brute-force filter finds."""
    assert conn.execute("SELECT rtreecheck(?)", (rt,)).fetchone()[0] == "ok"
    assert _table(conn, rt) == _table(conn, reference)
    ids = np.array(sorted(entries), dtype=np.int64)
    boxes = np.array([entries[i] for i in ids.tolist()]).reshape(-1, 4)
    # the 32-bit box SQLite keeps covers the double one, so a brute-force filter on the exact
    # boxes finds a subset, and one on the stored (rounded) boxes finds exactly the hits
    lo_x, hi_x = rtree_load.round_down(boxes[:, 0]), rtree_load.round_up(boxes[:, 2])
    lo_y, hi_y = rtree_load.round_down(boxes[:, 1]), rtree_load.round_up(boxes[:, 3])
    for w in windows:
        x0, y0, x1, y1 = w
        hits = _window(conn, rt, w)
        assert hits == _window(conn, reference, w)
        stored = (hi_x >= x0) & (lo_x <= x1) & (hi_y >= y0) & (lo_y <= y1)
        assert hits == ids[stored].tolist()
        exact = (boxes[:, 2] >= x0) & (boxes[:, 0] <= x1) & (boxes[:, 3] >= y0) & (boxes[:, 1] <= y1)
        assert set(ids[exact].tolist()) <= set(hits)


def _insert(conn: apsw.Connection, rt: str, ids: np.ndarray, boxes: np.ndarray) -> None:
    conn.executemany(
        f'INSERT OR REPLACE INTO "{rt}" VALUES (?,?,?,?,?)',
        ((i, a, c, b, d) for i, (a, b, c, d) in zip(ids.tolist(), boxes.tolist(), strict=True)),
    )


@pytest.mark.slow
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    seed=st.integers(0, 2**32 - 1),
    held=st.integers(0, 3000),
    adding=st.integers(0, 4000),
    kind=st.sampled_from(["metres", "signed", "clustered"]),
    page_size=st.sampled_from([1024, 4096]),
)
def test_a_bulk_loaded_tree_is_the_tree_sqlite_would_answer_with(
    tmp_path_factory, seed, held, adding, kind, page_size
):
    rng = np.random.default_rng(seed)
    path = tmp_path_factory.mktemp("rt") / "t.gpkg"
    conn = apsw.Connection(str(path))
    try:
        conn.execute(f"PRAGMA page_size={page_size}")
        conn.execute("CREATE VIRTUAL TABLE bulk USING rtree(id, minx, maxx, miny, maxy)")
        conn.execute("CREATE VIRTUAL TABLE ref USING rtree(id, minx, maxx, miny, maxy)")
        old = _boxes(rng, held, kind)
        new = _boxes(rng, adding, kind)
        old_ids = rng.permutation(held) * 3 + 1
        new_ids = np.arange(adding, dtype=np.int64) + 3 * held + 7
        # a few new entries take ids the tree holds: they replace those entries
        same = min(5, adding, held)
        new_ids[:same] = old_ids[:same]
        with conn:
            _insert(conn, "bulk", old_ids, old)
            _insert(conn, "ref", old_ids, old)
        with conn:
            rtree_load.rebuild(conn, "bulk", new_ids, new)
            _insert(conn, "ref", new_ids, new)
        entries = {int(i): b for i, b in zip(old_ids.tolist(), old, strict=True)}
        entries.update({int(i): b for i, b in zip(new_ids.tolist(), new, strict=True)})
        every = np.concatenate([old, new]) if held + adding else np.zeros((1, 4))
        lo, hi = every[:, :2].min(axis=0), every[:, 2:].max(axis=0)
        windows = [(lo[0] - 1, lo[1] - 1, hi[0] + 1, hi[1] + 1)]
        for _ in range(6):
            c = lo + (hi - lo) * rng.random(2)
            r = (hi - lo) * rng.random(2) / 4
            windows.append((c[0] - r[0], c[1] - r[1], c[0] + r[0], c[1] + r[1]))
        if len(every):  # a window on an entry's own edge
            b = every[rng.integers(len(every))]
            windows.append((b[2], b[3], b[2], b[3]))
        _check(conn, "bulk", "ref", entries, windows)

        # later writes through SQLite's own code on the bulk-loaded tree: inserts (splitting
        # full nodes), deletes (emptying underfull ones) and moves
        ids = np.array(sorted(entries), dtype=np.int64)
        gone = rng.choice(ids, size=min(len(ids), 200), replace=False) if len(ids) else ids
        more = _boxes(rng, 300, kind)
        more_ids = np.arange(300, dtype=np.int64) + int(ids.max() if len(ids) else 0) + 1
        with conn:
            for rt in ("bulk", "ref"):
                conn.executemany(f'DELETE FROM "{rt}" WHERE id = ?', ((int(i),) for i in gone))
                _insert(conn, rt, more_ids, more)
        for i in gone.tolist():
            del entries[int(i)]
        entries.update({int(i): b for i, b in zip(more_ids.tolist(), more, strict=True)})
        _check(conn, "bulk", "ref", entries, windows)

        # and a second bulk load on top of that
        again = _boxes(rng, 500, kind)
        again_ids = np.arange(500, dtype=np.int64) + int(more_ids.max()) + 1
        with conn:
            rtree_load.rebuild(conn, "bulk", again_ids, again)
            _insert(conn, "ref", again_ids, again)
        entries.update({int(i): b for i, b in zip(again_ids.tolist(), again, strict=True)})
        _check(conn, "bulk", "ref", entries, windows)
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        conn.close()


def test_outward_rounding_is_sqlites():
    """Each double goes to the float32 SQLite stores for it as a minimum and as a maximum."""
    values = np.array(
        [
            0.1,
            -0.1,
            1 / 3,
            -1 / 3,
            3_400_000.3,
            -3_400_000.3,
            663_696.1687,
            1e-40,
            -1e-40,
            1e-46,
            0.0,
            2.5,
            16777217.0,
        ]
    )
    conn = apsw.Connection(":memory:")
    conn.execute("CREATE VIRTUAL TABLE t USING rtree(id, lo, hi)")
    conn.executemany("INSERT INTO t VALUES (?,?,?)", ((i, v, v) for i, v in enumerate(values.tolist())))
    stored = np.array(conn.execute("SELECT lo, hi FROM t ORDER BY id").fetchall())
    assert rtree_load.round_down(values).astype(np.float64).tolist() == stored[:, 0].tolist()
    assert rtree_load.round_up(values).astype(np.float64).tolist() == stored[:, 1].tolist()
    assert (rtree_load.round_down(values) <= values).all() and (rtree_load.round_up(values) >= values).all()


def test_a_corrupt_tree_is_refused_not_rebuilt_from_garbage(tmp_path):
    conn = apsw.Connection(str(tmp_path / "t.gpkg"))
    conn.execute("CREATE VIRTUAL TABLE t USING rtree(id, minx, maxx, miny, maxy)")
    rtree_load.rebuild(conn, "t", np.arange(1, 200), np.tile([0.0, 0.0, 1.0, 1.0], (199, 1)))
    conn.execute("DELETE FROM t_node WHERE nodeno = 2")
    with pytest.raises(apsw.CorruptError):
        rtree_load.read_entries(conn, "t")


@pytest.fixture
def bulk_always(monkeypatch):
    """Every write of a few rows or more bulk-loads (the real thresholds want thousands), and
    the calls are counted."""
    calls: list[int] = []
    real = rtree_load.rebuild

    def counted(conn: apsw.Connection, rtree: str, ids: np.ndarray, bounds: np.ndarray) -> None:
        calls.append(len(ids))
        real(conn, rtree, ids, bounds)

    monkeypatch.setattr(rtree_load, "BULK_MIN", 50)
    monkeypatch.setattr(rtree_load, "BULK_FRACTION", 0.5)
    monkeypatch.setattr(rtree_load, "rebuild", counted)
    return calls


@pytest.mark.slow
def test_a_store_write_bulk_loads_and_gdal_filters_on_the_tree(tmp_path, bulk_always):
    rng = np.random.default_rng(7)
    store = open_store(tmp_path / "data")
    rt = rtree_name(PARKING.name)
    box = (X0 + 100, Y0 + 50, X0 + 260, Y0 + 300)
    try:
        xy = [(X0 + int(a), Y0 + int(b)) for a, b in rng.integers(0, 400, (3000, 2))]
        _write(store, xy, [f"K{i}" for i in range(3000)])
        assert bulk_always == [3000]
        assert store.conn.execute("SELECT rtreecheck(?)", (rt,)).fetchone()[0] == "ok"
        _index_matches(store, PARKING.name, box)
        # a write too small for a rebuild adds entries one by one; a large one that fails
        # leaves the tree as it was
        small = _write(store, xy[:20], [f"N{i}" for i in range(20)])
        with pytest.raises(RuntimeError):
            _write(store, xy[::-1], [f"F{i}" for i in range(3000)], fail=True)
        assert bulk_always == [3000, 3000]
        assert store.conn.execute("SELECT rtreecheck(?)", (rt,)).fetchone()[0] == "ok"
        _index_matches(store, PARKING.name, box)
        # replacing half the rows: the old entries go through the delete trigger, the new ones
        # into a rebuilt tree
        moved = [(x + 1, y) for x, y in xy[:1500]]
        _write(store, moved, [f"K{i}" for i in range(1500)])
        assert bulk_always[-1] == 1500
        rollback(store, small)
        assert store.conn.execute("SELECT rtreecheck(?)", (rt,)).fetchone()[0] == "ok"
        _index_matches(store, PARKING.name, box)
    finally:
        store.close()
    path: Path = tmp_path / "data" / STORE_FILE
    frame = pyogrio.read_dataframe(path, layer=PARKING.name, fid_as_index=True)
    hits = pyogrio.read_dataframe(path, layer=PARKING.name, bbox=box, fid_as_index=True)
    assert pyogrio.read_info(path, layer=PARKING.name)["capabilities"]["fast_spatial_filter"] is True
    assert sorted(hits.index) == sorted(frame.index[frame.intersects(shapely.box(*box))])
    assert 0 < len(hits) < len(frame) == 3000


def test_a_defensive_connection_keeps_to_inserts(tmp_path):
    """Where SQL may not write shadow tables, large writes take the per-entry inserts."""
    conn = apsw.Connection(str(tmp_path / "t.gpkg"))
    conn.execute("CREATE VIRTUAL TABLE t USING rtree(id, minx, maxx, miny, maxy)")
    assert rtree_load.wants_bulk(conn, "t", 10 * rtree_load.BULK_MIN)
    conn.config(apsw.SQLITE_DBCONFIG_DEFENSIVE, 1)
    assert not rtree_load.wants_bulk(conn, "t", 10 * rtree_load.BULK_MIN)
    with pytest.raises(apsw.Error):
        conn.execute("DELETE FROM t_node")
