"""A preview's dry run (a write transaction that rolls back) must leave the store's cache as it
found it, on both backends: the next map or statistics read follows the kept generation by the
change log instead of reading the whole layer again.  And a write that commits keeps what it
built for every thread (:class:`geo.store.cache.Stage`)."""

from __future__ import annotations

import threading

import geopandas as gpd
import numpy as np
import pytest
import shapely

import geo.figures.facts as facts_mod
import layers
from geo.figures.tally import tally
from geo.figures.viewport import _positions
from geo.imports.importer import import_file
from geo.store.backends import open_store
from tests.helpers.builders import EPSG_GK, X0, Y0, survey_shp, write_shp

pytestmark = pytest.mark.backends


def _kept(store) -> dict[str, dict]:
    """Every committed entry of every region: key -> the entry object."""
    out = {}
    for name in store.cache.sizes():
        region = store.cache.region(name)
        out[name] = {key: region.get(key) for key in region}
    return out


def test_a_dry_run_leaves_the_cache_as_it_found_it(gridded_store, tmp_path, monkeypatch):
    store = gridded_store
    spec = layers.get("demolition")
    import_file(store, "demolition", survey_shp(tmp_path / "a", n=20))
    fids, geoms = store.read_geometry(spec)  # decoded and kept
    before_tally = tally(store, None, [spec.name])  # tally facts kept
    _positions(store, spec)  # map positions kept
    kept = _kept(store)
    assert kept["geometry"] and kept["facts"] and kept["positions"]

    more = shapely.points(np.column_stack([X0 + 60 + np.arange(5), np.full(5, Y0 - 70.0)]))
    new_sites = survey_shp(tmp_path / "b", geoms=more)
    report = import_file(store, "demolition", new_sites, dry_run=True)
    assert report.status == "preview" and report.added + report.updated == 5

    after = _kept(store)
    # the same keys, and the very same objects: nothing replaced, nothing of the dry run kept
    assert after.keys() == kept.keys()
    for name in kept:
        assert list(after[name]) == list(kept[name]), name
        assert all(after[name][k] is kept[name][k] for k in kept[name]), name

    full_reads: list[str] = []
    read = facts_mod._read_facts

    def counted(*args, **kwargs):
        full_reads.append("facts")
        return read(*args, **kwargs)

    monkeypatch.setattr(facts_mod, "_read_facts", counted)
    # a web worker opens the store per request: the next reads come through another handle
    with open_store(store.location) as reader:
        again_fids, again_geoms = reader.read_geometry(spec)
        assert tally(reader, None, [spec.name]).equals(before_tally)
    assert full_reads == []
    assert np.array_equal(again_fids, fids) and all(shapely.equals(again_geoms, geoms))


def test_a_commit_keeps_what_it_built_and_followed_by_the_log(
    gridded_store, tmp_path, monkeypatch, store_backend
):
    store = gridded_store
    spec = layers.get("demolition")
    import_file(store, "demolition", survey_shp(tmp_path / "a", n=20))
    store.read_geometry(spec)
    tally(store, None, [spec.name])
    more = shapely.points(np.column_stack([X0 + 60 + np.arange(5), np.full(5, Y0 - 70.0)]))
    import_file(store, "demolition", survey_shp(tmp_path / "b", geoms=more), dry_run=True)
    import_file(store, "demolition", survey_shp(tmp_path / "b", geoms=more))  # commits

    generation = store.layer_generation(spec)
    kept_keys = store.cache.region("geometry").keys()
    mine = [k for k in kept_keys if k[0] == spec.name]
    if store_backend == "gpkg":
        # the GeoPackage's writer keeps its decoded rows current; they are published at commit
        assert mine == [(spec.name, generation)]
    else:
        # PostGIS's writer leaves them to the next read, which follows the change log
        assert len(mine) == 1 and store.changes(spec, mine[0][1]) is not None
    # nothing keyed by the write transaction itself outlives it
    for name in store.cache.sizes():
        assert not any("tx:" in repr(k) for k in store.cache.region(name)), name

    full_reads: list[str] = []
    read = facts_mod._read_facts
    monkeypatch.setattr(facts_mod, "_read_facts", lambda *a, **k: full_reads.append("facts") or read(*a, **k))
    with open_store(store.location) as reader:
        fids, _ = reader.read_geometry(spec)
        counted = tally(reader, None, [spec.name])
    assert len(fids) == 20  # the same 案件编号: updated in place
    assert full_reads == []  # the tally facts followed the change log from the kept generation
    # and equal an independent recount from the store's rows
    with open_store(store.location) as fresh:
        fresh.cache.clear()
        assert tally(fresh, None, [spec.name]).equals(counted)


class _Undo(Exception):
    pass


def test_a_write_sees_its_own_entries_and_other_threads_never_do(gridded_store, tmp_path):
    store = gridded_store
    spec = layers.get("demolition")
    import_file(store, "demolition", survey_shp(tmp_path / "a", n=20))
    committed = tally(store, None, [spec.name])
    fids, _ = store.read_geometry(spec)
    _positions(store, spec)
    kept = _kept(store)
    more = shapely.points(np.column_stack([X0 + 60 + np.arange(5), np.full(5, Y0 - 70.0)]))
    seen_elsewhere = {}
    with pytest.raises(_Undo), store.transaction():
        frame = gpd.GeoDataFrame(
            {"案件编号": [f"N{i}" for i in range(5)], "当前状态": ["已登记"] * 5},
            geometry=list(more),
            crs=EPSG_GK,
        )
        import_file(store, "demolition", write_shp(frame, tmp_path / "b" / "台账.shp"))
        inside = tally(store, None, [spec.name])  # counts the uncommitted rows, kept in the stage
        assert store.read_geometry(spec)[0].size == len(fids) + 5
        assert _positions(store, spec)[0].size == len(fids) + 5
        total = f"{spec.name}_total"
        assert inside[total].sum() == committed[total].sum() + 5
        staged = store.cache.region("facts").latest((spec.name, None, "current"))
        assert staged is not None and any("tx:" in str(s) for s in staged[0][1])

        def look() -> None:  # another thread sees only what is committed
            region = store.cache.region("facts")
            seen_elsewhere["latest"] = region.latest((spec.name, None, "current"))
            seen_elsewhere["geometry"] = store.cache.region("geometry").latest(spec.name)

        worker = threading.Thread(target=look)
        worker.start()
        worker.join()
        raise _Undo
    assert seen_elsewhere["latest"] is not None and seen_elsewhere["latest"][0] in kept["facts"]
    assert seen_elsewhere["geometry"][0] in kept["geometry"]
    after = _kept(store)
    for name in kept:
        assert list(after[name]) == list(kept[name]), name
        assert all(after[name][k] is kept[name][k] for k in kept[name]), name
    assert tally(store, None, [spec.name]).equals(committed)
