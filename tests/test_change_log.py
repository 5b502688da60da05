"""The change log and the caches that apply it: after a commit of k rows a worker that kept
an older generation of a layer reads only what the log says changed, and what it then holds
equals a fresh read -- after any sequence of upserts, whole-layer replacements, rollbacks, grid
replacements and unit changes, on the GeoPackage and on PostGIS."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psycopg
import pytest
import shapely
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, rule, run_state_machine_as_test

import geo.figures.facts as facts_mod
from geo.errors import GridwatchError
from geo.figures.search import MAX_LIMIT, _feature_columns, search
from geo.figures.tally import tally
from geo.figures.viewport import _lonlat_geoms, _positions, cells_in_view
from geo.imports.batches import rollback
from geo.imports.importer import import_file
from geo.registry import get_layer, grid_spec
from geo.store.backends import open_store
from geo.store.cache import StoreCache
from geo.store.interface.batches import Batch
from geo.store.interface.changes import (
    CHANGE_LOG_ENV,
    GROW_FROM,
    append_rows,
    decode_fids,
    encode_fids,
    merge,
    reserved_bytes,
    splice,
)
from geo.store.interface.features import FeatureRows
from layers.base import UNASSIGNED
from tests.helpers.builders import X0, Y0, grid_frame, points_frame, write_shp

ROOT = Path(__file__).resolve().parent.parent
LAYERS = ("demolition", "parking")

# --- the log's arithmetic ---------------------------------------------------------------------


def test_steps_merge_along_their_chain_only():
    steps = [("", "a", encode_fids([1, 2])), ("a", "b", encode_fids([5])), ("b", "c", encode_fids([2, 7]))]
    merged = merge("a", "c", steps)
    assert merged is not None and merged.fids.tolist() == [2, 5, 7] and merged.steps == 2
    assert merge("", "c", steps).fids.tolist() == [1, 2, 5, 7]  # type: ignore[union-attr]
    assert merge("c", "c", steps).steps == 0  # type: ignore[union-attr]
    assert merge("x", "c", steps) is None  # not logged (pruned, or older than the log)
    assert merge("a", "d", steps) is None  # the log does not reach the generation now
    assert merge("a", "c", [("a", "b", None), ("b", "c", encode_fids([1]))]) is None  # whole layer
    assert (
        merge("a", "c", [("a", "b", encode_fids([1])), ("x", "c", encode_fids([1]))]) is None
    )  # broken chain
    assert decode_fids(encode_fids(np.array([9, 3, 3]))).tolist() == [3, 9]


def test_a_splice_drops_the_touched_rows_and_puts_the_current_ones_in_fid_order():
    old = np.array([1, 3, 5, 7])
    plan = splice(old, np.array([3, 4, 7]), np.array([4, 7]))  # 3 retired, 4 new, 7 changed
    assert plan.fids.tolist() == [1, 4, 5, 7]
    values = plan.numpy(np.array(["a", "c", "e", "g"], dtype=object), np.array(["D", "G"], dtype=object))
    assert values.tolist() == ["a", "D", "e", "G"]
    appended = splice(old, np.array([9]), np.array([9]))
    assert appended.order is None and appended.fids.tolist() == [1, 3, 5, 7, 9]


@pytest.mark.parametrize("dtype", ["int64", "float64", "datetime64[D]", "bool", "object"])
def test_appended_rows_go_into_the_room_after_a_column_and_never_into_another_ones(dtype):
    first = np.arange(GROW_FROM + 10).astype(dtype)
    grown = append_rows(first, np.arange(5).astype(dtype))  # copied once, with room after it
    assert grown.tolist() == first.tolist() + np.arange(5).astype(dtype).tolist()
    assert reserved_bytes(grown) > 0 and reserved_bytes(first) == 0
    again = append_rows(grown, np.arange(7, 10).astype(dtype))  # into the room: no copy
    assert np.shares_memory(again, grown) and again[: len(grown)].tolist() == grown.tolist()
    assert again[len(grown) :].tolist() == np.arange(7, 10).astype(dtype).tolist()
    # another column made from the same one (e.g. a fill that was not kept): its own copy
    other = append_rows(grown, np.arange(20, 22).astype(dtype))
    assert not np.shares_memory(other, again)
    assert again[len(grown) :].tolist() == np.arange(7, 10).astype(dtype).tolist()
    assert other[len(grown) :].tolist() == np.arange(20, 22).astype(dtype).tolist()
    assert grown.tolist() == first.tolist() + np.arange(5).astype(dtype).tolist()  # never changed
    # more rows than the room: a copy with new room
    big = append_rows(again, np.zeros(len(again), dtype=dtype))
    assert not np.shares_memory(big, again) and len(big) == 2 * len(again)
    # splices that only add rows use it for the fids and every column
    plan = splice(np.arange(GROW_FROM), np.array([GROW_FROM]), np.array([GROW_FROM]))
    assert plan.order is None and plan.fids.tolist() == list(range(GROW_FROM + 1))
    assert reserved_bytes(plan.fids) > 0


# --- stores -----------------------------------------------------------------------------------


def _gpkg_location(tmp: Path) -> tuple[str, Callable[[], None]]:
    return str(tmp / "data"), lambda: None


def _postgis_location(tmp: Path) -> tuple[str, Callable[[], None]]:
    folder, url = _CLUSTER[0]
    db = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {db} TEMPLATE gw_template")

    def drop() -> None:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE {db} WITH (FORCE)")

    return f"postgresql://gridwatch@/{db}?host={folder}", drop


#: the PostGIS cluster of the session, once started (see pg_cluster)
_CLUSTER: list[tuple[str, str]] = []


def _points_file(folder: Path, layer: str, xy: list[tuple[float, float]], keys: list[str]) -> Path:
    column = "案件编号" if layer == "demolition" else "编号"
    return write_shp(points_frame(xy, **{column: keys}), folder / f"{layer}.shp")


def _new_batch(store: Any, layer: str) -> int:
    batch = Batch(
        0,
        layer,
        "调查.csv",
        f"sum-{uuid.uuid4().hex}",
        "2024-01-01T00:00:00Z",
        None,
        "active",
        1,
        0,
        0,
        0,
        1,
        "utf-8",
        None,
        "import",
    )  # type: ignore[arg-type]
    return int(store.new_batch(batch, None))


# --- what a worker keeps, against a fresh read ------------------------------------------------


def _kept(store: Any, layer: str) -> dict[str, Any]:
    """Everything the caches that follow the log hold for ``layer``, in comparable values."""
    spec = get_layer(layer)
    fids, geoms = store.read_geometry(spec)
    entry = store.cache.region("geometry").get((layer, store.layer_generation(spec)), None)
    units = [] if entry is None else entry[2].tolist()
    f = facts_mod.load_facts(store, spec)
    p_fids, lon, lat, lonlat = _positions(store, spec)
    searched = _feature_columns(store, spec)
    return {
        "geometry": (fids.tolist(), shapely.to_wkb(geoms).tolist() if len(geoms) else [], units),
        "facts": (
            f.fids.tolist(),
            f.unit.to_pylist(),
            f.completed.tolist(),
            f.found.astype(str).tolist(),
            f.done.astype(str).tolist(),
            {k: v.tolist() for k, v in f.measures.items()},
            None if f.status is None else f.status.to_pylist(),
            None if f.shape is None else f.shape.tolist(),
            None if f.unrecognised is None else f.unrecognised.tolist(),
            None if f.undated is None else f.undated.tolist(),
        ),
        "positions": (
            p_fids.tolist(),
            lon.round(9).tolist(),
            lat.round(9).tolist(),
            shapely.to_wkb(_lonlat_geoms(lonlat, lon, lat, np.arange(len(lonlat)))).tolist(),
        ),
        # the tally rows kept with the facts (followed with them)
        "tallies": [tally(store, level, [layer]).to_json() for level in ("grid", "community")],
        # the map's unit tables (their records follow the figures that changed)
        "cells": [
            cells_in_view(store, level, None, 16, layer=layer, as_of=as_of)
            for level in ("grid", "community")
            for as_of in (None, "2099-12-31")
        ],
        # the searched columns (followed with the log), and every hit of a few queries in order
        "searched": (
            searched["fid"].tolist(),
            searched["unit"].to_pylist(),
            None if searched["id"] is None else searched["id"].to_pylist(),
            {f: c.to_pylist() for f, c in searched["shown"].items()},
            searched["text"],
            searched["starts"].tolist(),
        ),
        "search": [
            [h.to_dict() for h in search(store, q, limit=MAX_LIMIT, layer=layer)]
            for q in ("k", "r", "base", "f", "1")
        ],
    }


#: per example run, how often the worker followed the log over at least one step
FOLLOWED: list[int] = []


class Followed(RuleBasedStateMachine):
    """Writes of every kind through one handle, in any order; a long-lived worker (its own
    cache, never cleared) looks now and then -- so it follows one or several steps at once --
    and what it holds equals what a fresh cache reads."""

    make_location: Callable[[Path], tuple[str, Callable[[], None]]] = staticmethod(_gpkg_location)

    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="gw-changes-"))
        self.location, self.drop = type(self).make_location(self.tmp)
        self.writer = open_store(self.location, data=self.tmp / "data")
        self.worker = open_store(self.location, data=self.tmp / "data")
        self.worker.cache = StoreCache(self.location)
        self.files = 0
        self.batches: list[int] = []
        self.followed = 0
        changes = self.worker.changes

        def counting(spec: Any, since: str) -> Any:
            out = changes(spec, since)
            if out is not None and out.steps:
                self.followed += 1
            return out

        self.worker.changes = counting  # type: ignore[method-assign]

    def teardown(self) -> None:
        try:
            self.look()
            FOLLOWED.append(self.followed)
        finally:
            self.writer.close()
            self.worker.close()
            self.drop()
            shutil.rmtree(self.tmp, ignore_errors=True)

    def _folder(self) -> Path:
        self.files += 1
        return self.tmp / "in" / str(self.files)

    @initialize()
    def grid(self) -> None:
        import_file(self.writer, "grid", write_shp(grid_frame(), self._folder() / "网格.shp"))
        for layer in LAYERS:  # something kept before the first write
            self.batches.append(
                import_file(
                    self.writer, layer, _points_file(self._folder(), layer, [(X0 + 5, Y0 - 5)], ["base"])
                ).batch_id
            )
        self.look()  # the worker keeps the layers as they are now

    @rule(
        layer=st.sampled_from(LAYERS),
        keys=st.lists(st.integers(0, 6), min_size=1, max_size=4, unique=True),
        cells=st.lists(st.tuples(st.integers(0, 2), st.integers(0, 2)), min_size=4, max_size=4),
        kind=st.sampled_from(["upsert", "upsert", "upsert", "whole", "failed"]),
    )
    def write(self, layer: str, keys: list[int], cells: list[tuple[int, int]], kind: str) -> None:
        """New rows and new versions of rows already there (the same survey ids, moved); or
        the whole layer replaced (the log cannot list it: a full read follows); or a write
        that fails."""
        if kind == "failed":
            self.failed_write(layer, len(keys))
            return
        whole = kind == "whole"
        folder = self._folder()
        xy = [(X0 + 100 * c + 3 + self.files, Y0 - 100 * r - 3 - self.files) for c, r in cells[: len(keys)]]
        if not whole:
            report = import_file(self.writer, layer, _points_file(folder, layer, xy, [f"K{k}" for k in keys]))
            self.batches.append(report.batch_id)
            return
        spec = get_layer(layer)
        rows = FeatureRows(
            pd.DataFrame(index=range(len(xy))),
            np.array([shapely.Point(x, y) for x, y in xy], dtype=object),
            np.array([f"R{k}" for k in keys], dtype=object),
            np.array([UNASSIGNED] * len(xy), dtype=object),
        )
        with self.writer.transaction():
            batch = _new_batch(self.writer, layer)
            self.writer.begin_tx("import", batch)
            self.writer.write_features(spec, batch, rows, replace_all=True)

    def failed_write(self, layer: str, n: int) -> None:
        """A write that fails after its rows were written and read (the writer's caches hold
        entries of a state that never commits; its fids are given again to later rows)."""
        spec = get_layer(layer)
        rows = FeatureRows(
            pd.DataFrame(index=range(n)),
            np.array([shapely.Point(X0 + 250 - 9 * i, Y0 - 17 * i - 1) for i in range(n)], dtype=object),
            np.array([f"F{self.files}-{i}" for i in range(n)], dtype=object),
            np.array([UNASSIGNED] * n, dtype=object),
        )
        self.files += 1
        with pytest.raises(RuntimeError, match="gave up"), self.writer.transaction():
            batch = _new_batch(self.writer, layer)
            self.writer.begin_tx("import", batch)
            self.writer.write_features(spec, batch, rows, replace_all=False)
            _kept(self.writer, layer)
            raise RuntimeError("gave up")

    @rule(shift=st.sampled_from([20, 40, 60]))
    def replace_grid(self, shift: int) -> None:
        """A new grid: every layer's rows get their units again (set_units)."""
        frame = grid_frame()
        frame["geometry"] = frame.geometry.translate(shift + self.files % 7, 0)
        try:
            report = import_file(self.writer, "grid", write_shp(frame, self._folder() / "网格.shp"))
        except GridwatchError:
            return
        self.batches.append(report.batch_id)

    @rule(layer=st.sampled_from(LAYERS), every=st.integers(1, 3))
    def set_units(self, layer: str, every: int) -> None:
        spec = get_layer(layer)
        fids, _ = self.writer.read_geometry(spec)
        chosen = fids[::every]
        with self.writer.transaction():
            self.writer.set_units(spec, chosen, np.array([UNASSIGNED] * len(chosen), dtype=object))

    @rule(data=st.data())
    def roll_back(self, data: st.DataObject) -> None:
        if not self.batches:
            return
        try:
            rollback(self.writer, data.draw(st.sampled_from(self.batches)))
        except GridwatchError:
            return

    @rule()
    def look(self) -> None:
        """The worker applies what changed since it last looked; a fresh cache reads it all."""
        for layer in LAYERS:
            held = _kept(self.worker, layer)
            with open_store(self.location, data=self.tmp / "data") as fresh:
                fresh.cache = StoreCache(self.location)
                assert held == _kept(fresh, layer), layer
            # the writer's own cache (kept current by its writes) too
            assert _kept(self.writer, layer) == held, layer


def _run(machine: type[Followed], examples: int, steps: int) -> None:
    FOLLOWED.clear()
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=examples,
            stateful_step_count=steps,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
        ),
    )
    assert sum(FOLLOWED) > examples  # the log was applied, not only fallen back from


@pytest.fixture
def growing(monkeypatch) -> None:
    """Every column of any size grows in the room after it (append_rows), as a large layer's do."""
    monkeypatch.setattr("geo.store.interface.changes.GROW_FROM", 1)


@pytest.mark.slow
def test_followed_caches_equal_fresh_ones_after_any_writes_gpkg(growing):
    _run(Followed, 8, 10)


@pytest.mark.slow
@pytest.mark.needs("postgis")
def test_followed_caches_equal_fresh_ones_after_any_writes_postgis(pg_cluster, growing):
    _CLUSTER[:] = [pg_cluster]

    class OnPostgis(Followed):
        make_location = staticmethod(_postgis_location)

    _run(OnPostgis, 4, 8)


# --- a worker reads only the rows that changed ------------------------------------------------


def _layer_of(store: Any, n: int, tmp: Path) -> None:
    import_file(store, "grid", write_shp(grid_frame(), tmp / "g" / "网格.shp"))
    xy = [(X0 + 1 + (k * 37) % 298, Y0 - 1 - (k * 53) % 298) for k in range(n)]
    import_file(store, "parking", _points_file(tmp / "p0", "parking", xy, [f"B{k}" for k in range(n)]))


@pytest.fixture(
    params=["gpkg", pytest.param("postgis", marks=[pytest.mark.slow, pytest.mark.needs("postgis")])]
)
def location(request, tmp_path) -> str:
    """A new store of either backend (its data folder: ``tmp_path / "data"``)."""
    if request.param == "gpkg":
        return str(tmp_path / "data")
    return str(request.getfixturevalue("pg_db"))


@pytest.mark.parametrize("log", ["on", "off"])
def test_a_worker_applies_a_small_commit_without_reading_the_layer_again(
    location, tmp_path, monkeypatch, log
):
    if log == "off":
        monkeypatch.setenv(CHANGE_LOG_ENV, "off")
    spec = get_layer("parking")
    writer = open_store(location, data=tmp_path / "data")
    _layer_of(writer, 200, tmp_path)
    worker = open_store(location, data=tmp_path / "data")
    worker.cache = StoreCache(worker.location)  # another process
    before = _kept(worker, "parking")
    old_fids, old_geoms = worker.read_geometry(spec)
    old_facts = facts_mod.load_facts(worker, spec)
    since = worker.layer_generation(spec)

    import_file(
        writer,
        "parking",
        _points_file(tmp_path / "p1", "parking", [(X0 + 10, Y0 - 10), (X0 + 20, Y0 - 20)], ["B3", "N1"]),
    )  # one row moved (a new version of B3), one new
    changed = writer.changes(spec, since)
    reads: list[Any] = []
    read_table = worker.read_table

    def counting(spec_: Any, columns: list[str], tx: Any = None, fids: Any = None) -> Any:
        reads.append(None if fids is None else len(fids))
        return read_table(spec_, columns, tx, fids)

    worker.read_table = counting  # type: ignore[method-assign]
    followed = facts_mod.load_facts(worker, spec)
    # the tally rows of the kept features come along (the new rows' computed): none without the log
    assert sorted(followed.positions) == ([("community", None), ("grid", None)] if log == "on" else [])
    after = _kept(worker, "parking")
    new_fids, new_geoms = worker.read_geometry(spec)
    with open_store(location, data=tmp_path / "data") as fresh:
        fresh.cache = StoreCache(fresh.location)
        assert after == _kept(fresh, "parking")
    assert after != before and len(new_fids) == len(old_fids) + 1
    untouched = np.flatnonzero(np.isin(old_fids, new_fids))
    same_objects = all(new_geoms[np.searchsorted(new_fids, old_fids[i])] is old_geoms[i] for i in untouched)
    if log == "on":
        assert changed is not None and changed.steps == 1
        assert len(changed.fids) == 3 and old_fids[3] in changed.fids  # B3's old version, retired
        assert set(changed.fids.tolist()) - {int(old_fids[3])} <= set(new_fids.tolist()) - set(
            old_fids.tolist()
        )
        assert same_objects  # the kept geometries, not decoded again
        assert reads == [3, 3]  # the facts, then the searched columns, of the three touched rows only
        assert facts_mod.load_facts(worker, spec) is not old_facts
    else:
        assert changed is None
        assert not same_objects
        assert reads == [None, None]  # the facts, then the searched columns
    worker.close()
    writer.close()


def test_a_worker_follows_a_commit_touching_more_runs_of_fids_than_are_read_as_ranges(location, tmp_path):
    """A large commit (a block of new rows) and a change of every third row's unit: the touched
    fids make more runs than PostGIS reads as ranges (FID_RANGES); what the worker then holds
    equals a fresh read.  Reads by fid agree with a full read whether the fids are one run, a
    few, many, or too sparse for the GeoPackage's one range scan."""
    from geo.store.postgis.feature_reads import FID_RANGES

    spec = get_layer("parking")
    writer = open_store(location, data=tmp_path / "data")
    _layer_of(writer, 300, tmp_path)
    worker = open_store(location, data=tmp_path / "data")
    worker.cache = StoreCache(worker.location)
    before = _kept(worker, "parking")
    since = worker.layer_generation(spec)
    xy = [(X0 + 2 + (k * 41) % 296, Y0 - 2 - (k * 29) % 296) for k in range(400)]
    import_file(
        writer, "parking", _points_file(tmp_path / "p1", "parking", xy, [f"N{k}" for k in range(400)])
    )
    fids, _ = writer.read_geometry(spec)
    chosen = fids[:300:3]
    with writer.transaction():
        writer.set_units(spec, chosen, np.array([UNASSIGNED] * len(chosen), dtype=object))
    changed = writer.changes(spec, since)
    assert changed is not None and changed.steps == 2
    runs = 1 + int(np.count_nonzero(np.diff(changed.fids) != 1))
    assert runs > FID_RANGES
    after = _kept(worker, "parking")
    with open_store(location, data=tmp_path / "data") as fresh:
        fresh.cache = StoreCache(fresh.location)
        assert after == _kept(fresh, "parking")
    assert after != before and len(after["geometry"][0]) == 700
    # only the touched rows: as many runs as ranges, then beyond
    for wanted in (changed.fids[-400:], changed.fids[: 2 * FID_RANGES : 2], changed.fids):
        some = worker.read_table(spec, ["gw_unit", "gw_batch"], fids=wanted)
        every = worker.read_table(spec, ["gw_unit", "gw_batch"])
        assert some.to_pylist() == every.filter(np.isin(every.column("fid").to_numpy(), wanted)).to_pylist()
    worker.close()
    writer.close()


def test_the_log_keeps_a_bounded_number_of_steps_and_forgets_whole_layer_replacements(tmp_path):
    from geo.store.interface.changes import KEPT_STEPS

    spec = get_layer("parking")
    store = open_store(tmp_path / "data")
    _layer_of(store, 3, tmp_path)
    first = store.layer_generation(spec)
    gens = [first]
    for i in range(KEPT_STEPS + 2):
        fids, _ = store.read_geometry(spec)
        with store.transaction():
            store.set_units(spec, fids[:1], np.array([f"U{i}"], dtype=object))
        gens.append(store.layer_generation(spec))
    assert store.changes(spec, first) is None  # pruned
    kept = store.changes(spec, gens[-KEPT_STEPS])
    assert kept is not None and kept.steps == KEPT_STEPS - 1
    rows = store.conn.execute("SELECT count(*) FROM gw_changes WHERE layer='parking'").fetchone()
    assert rows[0] == KEPT_STEPS
    assert store.changes(grid_spec(), "never") is None
    grid_before = store.layer_generation(grid_spec())
    frame = grid_frame()
    frame["geometry"] = frame.geometry.translate(30, 0)
    import_file(store, "grid", write_shp(frame, tmp_path / "g2" / "网格.shp"))
    assert store.changes(grid_spec(), grid_before) is None  # the grid is replaced whole
    store.close()
