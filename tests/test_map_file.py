"""The map columns of a layer generation kept in a file (geo.figures.mapfile): the whole-district
view answered from them is the answer of the full read, byte for byte, after a restart and after
a commit; a file of another store or generation, or a truncated or damaged one, is never used."""

from __future__ import annotations

import json
import os
import time
import types

import numpy as np
import pyproj
import pytest

from geo.figures import mapfile
from geo.figures import viewport as vp
from geo.figures.viewport import BBox, features_in_view
from geo.imports.importer import import_file
from geo.registry import get_layer
from geo.store.backends import open_store
from tests.helpers.builders import EPSG_GK, X0, Y0, points_frame, write_shp

pytestmark = pytest.mark.backends

TO_LONLAT = pyproj.Transformer.from_crs(EPSG_GK, 4326, always_xy=True)
_W, _S = TO_LONLAT.transform(X0 - 50, Y0 - 350)
_E, _N = TO_LONLAT.transform(X0 + 350, Y0 + 50)
VIEW = BBox(_W - 0.02, _S - 0.02, _E + 0.02, _N + 0.02)  # around the sites in GCJ-02 too
SPEC = get_layer("demolition")


def _points(n: int, seed: int, prefix: str) -> object:
    rng = np.random.default_rng(seed)
    xy = np.column_stack([X0 + rng.uniform(1, 299, n), Y0 - rng.uniform(1, 299, n)])
    states = ["已拆除", "已登记", "整改中", "怪状态", ""]
    return points_frame(
        [tuple(p) for p in xy],
        案件编号=[f"{prefix}{i}" for i in range(n)],
        当前状态=[states[i % len(states)] for i in range(n)],
        发现时间=["2022-01-01"] * n,
    )


@pytest.fixture
def loaded(gridded_store, tmp_path):
    import_file(gridded_store, "demolition", write_shp(_points(300, 2, "V"), tmp_path / "v" / "v.shp"))
    return gridded_store


def _answers(store, monkeypatch, full: bool) -> str:
    """The whole-district answers (two zooms, both coordinate systems) as JSON text; with
    ``full`` by the full read of the layer (no map columns)."""
    with monkeypatch.context() as m:
        if full:
            m.setattr(vp, "_map_columns", lambda store, spec: None)
        out = [
            features_in_view(store, "demolition", VIEW, zoom=z, max_features=50, gcj02=g)
            for z in (12, 15)
            for g in (False, True)
        ]
        # part of the district: binned from the points in view (not the whole layer's bins)
        half = BBox(VIEW.west, VIEW.south, (_W + _E) / 2, VIEW.north)
        out.append(features_in_view(store, "demolition", half, zoom=13, max_features=20))
        assert all(a["aggregated"] for a in out), [(a["aggregated"], a["total"]) for a in out]
        assert 0 < out[-1]["total"] < out[0]["total"]
        # one by one: read by fid (a window, the whole view, details, beyond the detail zoom)
        window = BBox(VIEW.west, VIEW.south, (VIEW.west + VIEW.east) / 2, (VIEW.south + VIEW.north) / 2)
        one = [
            features_in_view(store, "demolition", VIEW, zoom=14, max_features=5000),
            features_in_view(store, "demolition", VIEW, zoom=16, max_features=5000, detail=True, gcj02=True),
            features_in_view(store, "demolition", window, zoom=18, max_features=40),
            features_in_view(store, "demolition", BBox(1, 1, 2, 2), zoom=16),
        ]
        assert not any(a["aggregated"] for a in one) and one[0]["features"] and not one[3]["features"]
        out += one
    return json.dumps(out, ensure_ascii=False)


def _restart(store) -> None:
    """What a worker started again holds: nothing (its files stay)."""
    vp.wait_for_map_files()
    store.cache.clear()


def _files(store) -> list[str]:
    vp.wait_for_map_files()
    folder = mapfile.folder(store)
    return sorted(p.name for p in folder.glob("*.gwmap")) if folder and folder.is_dir() else []


def _commit(store, url, tmp_path, n: int, seed: int) -> None:
    """Add ``n`` sites through a handle of its own, as another process would."""
    other = open_store(url or store.location, data=mapfile.folder(store).parent.parent)
    try:
        import_file(
            other, "demolition", write_shp(_points(n, seed, f"N{seed}-"), tmp_path / f"n{seed}" / "n.shp")
        )
    finally:
        other.close()


@pytest.mark.slow
def test_answers_from_the_file_are_those_of_the_full_read(loaded, monkeypatch, store_url, tmp_path):
    full = _answers(loaded, monkeypatch, full=True)  # files the map columns on the way
    assert len(_files(loaded)) == 1
    assert _answers(loaded, monkeypatch, full=False) == full  # kept in the process
    _restart(loaded)
    with monkeypatch.context() as m:  # after a restart nothing of the layer is read but the file
        m.setattr(vp, "positions_and_facts", lambda *a, **k: pytest.fail("layer read"))
        assert _answers(loaded, monkeypatch, full=False) == full

    # another process commits 1,000 sites: followed from the kept columns by the change log
    _commit(loaded, store_url, tmp_path, 1000, 5)
    after = _answers(loaded, monkeypatch, full=False)
    _restart(loaded)
    assert after == _answers(loaded, monkeypatch, full=True) != full
    assert len(_files(loaded)) == 1  # the older generation's file removed

    # and followed from the newest file by a worker that kept nothing
    _commit(loaded, store_url, tmp_path, 40, 6)
    _restart(loaded)
    with monkeypatch.context() as m:
        m.setattr(vp, "positions_and_facts", lambda *a, **k: pytest.fail("layer read"))
        followed = _answers(loaded, monkeypatch, full=False)
    _restart(loaded)
    assert followed == _answers(loaded, monkeypatch, full=True)
    gen = loaded.layer_generation(SPEC)
    assert len(_files(loaded)) == 1 and mapfile.load(loaded, SPEC, gen) is not None


@pytest.mark.slow
def test_a_file_of_another_store_or_generation_is_never_used(loaded, monkeypatch):
    full = _answers(loaded, monkeypatch, full=True)
    gen = loaded.layer_generation(SPEC)
    path = mapfile.path_for(loaded, SPEC, gen)
    cols = mapfile.load(loaded, SPEC, gen)
    assert cols is not None and len(cols) == 300
    # another store's file under this store's name
    other = types.SimpleNamespace(
        location=str(loaded.location) + "-other", data_dir=path.parent.parent.parent
    )
    moved = mapfile.save(
        other, SPEC, gen, mapfile.make(cols.fids, cols.lon + 1, cols.lat, cols.status, cols.completed)
    )
    assert moved is not None and mapfile.load(other, SPEC, gen) is not None
    moved.replace(path)
    assert mapfile.load(loaded, SPEC, gen) is None
    assert mapfile.newest(loaded, SPEC) is None
    _restart(loaded)
    assert _answers(loaded, monkeypatch, full=False) == full  # read in full, filed again
    assert mapfile.load(loaded, SPEC, gen) is not None
    # another generation's file under this generation's name
    stale = mapfile.save(
        loaded,
        SPEC,
        "an-older-one",
        mapfile.make(cols.fids, cols.lon, cols.lat + 1, cols.status, cols.completed),
    )
    assert stale is not None
    stale.replace(path)
    assert mapfile.load(loaded, SPEC, gen) is None
    _restart(loaded)
    assert _answers(loaded, monkeypatch, full=False) == full


def test_half_written_files_left_by_a_stopped_process_are_removed(loaded, monkeypatch):
    _answers(loaded, monkeypatch, full=True)  # the map read once: its file is written
    gen = loaded.layer_generation(SPEC)
    cols = mapfile.load(loaded, SPEC, gen)
    assert cols is not None
    folder = mapfile.path_for(loaded, SPEC, gen).parent
    prefix = mapfile.path_for(loaded, SPEC, gen).name[: -24 - len(mapfile.SUFFIX)]  # store digest, layer
    old = folder / f".{prefix}0123.gwmap.999999.deadbeef.tmp"
    fresh = folder / f".{prefix}4567.gwmap.999998.cafebabe.tmp"
    other = folder / ".0123456789abcdef-another_layer-89ab.gwmap.999997.feedf00d.tmp"
    for left in (old, fresh, other):
        left.write_bytes(b"GWMAP half")
    hours_ago = time.time() - 2 * mapfile.STALE_TMP_SECONDS
    os.utime(old, (hours_ago, hours_ago))
    os.utime(other, (hours_ago, hours_ago))
    assert mapfile.save(loaded, SPEC, gen, cols) is not None
    assert not old.exists()
    assert fresh.exists()  # may be another process writing now
    assert other.exists()  # not this layer's
    assert mapfile.load(loaded, SPEC, gen) is not None


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["truncated", "flipped", "header"])
def test_a_truncated_or_damaged_file_is_made_again(loaded, monkeypatch, damage):
    full = _answers(loaded, monkeypatch, full=True)
    gen = loaded.layer_generation(SPEC)
    path = mapfile.path_for(loaded, SPEC, gen)
    data = bytearray(path.read_bytes())
    if damage == "truncated":
        data = data[: len(data) - 100]
    elif damage == "flipped":
        data[mapfile.HEADER + 8 * 300 + 17] ^= 0x40  # a bit of one longitude
    else:
        data[len(mapfile.MAGIC) + 6] ^= 0x01
    path.write_bytes(bytes(data))
    assert mapfile.load(loaded, SPEC, gen) is None
    _restart(loaded)
    assert _answers(loaded, monkeypatch, full=False) == full
    assert mapfile.load(loaded, SPEC, gen) is not None  # made again, whole


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_bins_carried_over_added_points_are_the_bins_of_all_of_them(seed):
    rng = np.random.default_rng(seed)
    n, k = 5000, int(rng.integers(1, 800))
    lon, lat = 118.4 + rng.uniform(0, 0.2, n), 31.3 + rng.uniform(0, 0.1, n)
    done, status = rng.random(n) < 0.3, rng.integers(0, 4, n)
    for zoom in (9, 13, 16):
        whole = vp._bin_sums(lon, lat, done, status, zoom, 4)
        carried = vp._add_to_bins(
            vp._bin_sums(lon[:-k], lat[:-k], done[:-k], status[:-k], zoom, 4),
            lon[-k:],
            lat[-k:],
            done[-k:],
            status[-k:],
            zoom,
        )
        assert json.dumps(vp._cluster_features(carried, list("abc"), False)) == json.dumps(
            vp.clusters(lon, lat, done, status, zoom, list("abc"))
        )
        for name in ("ix", "iy", "lon", "lat", "counts", "done", "mix"):
            assert np.array_equal(getattr(carried, name), getattr(whole, name)), name
