"""Caches that follow changes: entries keyed per layer (and grid, and targets) generation, so a
commit to one layer leaves the others' figures warm; every cached figure equal to a fresh
computation after any sequence of writes; regions bounded in bytes."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import shapely
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

import geo.figures.facts as facts_mod
from geo.errors import GridwatchError
from geo.figures.search import search
from geo.figures.tally import tally
from geo.figures.viewport import BBox, cells_in_view, features_in_view, positions_and_facts
from geo.imports.batches import load_targets, rollback
from geo.imports.importer import import_file
from geo.registry import get_layer
from geo.store.backends import open_store
from geo.store.cache import MISSING, REGIONS, Region, RegionSpec, StoreCache, budget_bytes, entry_bytes
from tests.helpers.builders import COMM_A, X0, Y0, grid_frame, points_frame, write_shp

ROOT = Path(__file__).resolve().parent.parent

# --- regions ----------------------------------------------------------------------------------


def test_a_region_over_its_byte_budget_drops_the_least_recently_used():
    region = Region(RegionSpec(100), budget=3 * 8000 + 10)
    for k in range(3):
        region[k] = np.zeros(1000)  # 8,000 bytes each
    assert region.nbytes() == 24000
    region.get(0)  # used: now the most recent
    region[3] = np.zeros(1000)
    assert region.keys() == [2, 0, 3]
    assert region.get(1) is MISSING
    assert region.nbytes() == 24000
    region[4] = np.zeros(2000)  # 16,000 bytes: two older ones go
    assert region.keys() == [3, 4]
    assert region.nbytes() == 24000


def test_an_entry_larger_than_the_budget_is_kept_alone():
    region = Region(RegionSpec(100), budget=1000)
    region["a"] = np.zeros(10)
    region["b"] = np.zeros(1000)
    assert region.keys() == ["b"]
    region["c"] = np.zeros(10)
    assert region.keys() == ["c"]


def test_growing_an_entry_in_place_counts_and_evicts_others():
    region = Region(RegionSpec(100), budget=10_000)
    region["old"] = np.zeros(500)
    region["grows"] = {}
    region.grow("grows", 7000)
    assert region.keys() == ["grows"]
    assert region.nbytes() >= 7000
    region.grow("gone", 5)  # not kept: nothing happens
    assert region.keys() == ["grows"]


def test_keeping_a_newer_generation_drops_the_familys_older_one():
    region = Region(REGIONS["facts"])
    region[(("demolition", None, "current"), ("g1", "grid1"))] = 1
    region[(("parking", None, "current"), ("p1", "grid1"))] = 2
    region[(("demolition", None, "current"), ("g2", "grid1"))] = 3
    assert set(region.keys()) == {
        (("parking", None, "current"), ("p1", "grid1")),
        (("demolition", None, "current"), ("g2", "grid1")),
    }


def test_get_or_fill_keeps_only_what_no_write_overtook():
    region = Region(RegionSpec(10))
    calls: list[int] = []

    def fill() -> int:
        calls.append(1)
        return len(calls)

    assert region.get_or_fill("k", fill, lambda: False) == 1  # a write landed: not kept
    assert region.get("k") is MISSING
    assert region.get_or_fill("k", fill, lambda: True) == 2
    assert region.get_or_fill("k", fill, lambda: True) == 2  # kept: not filled again
    assert len(calls) == 2


def test_sizes_are_estimated_from_arrays_tables_and_geometries():
    assert entry_bytes(np.zeros(1000)) == 8000
    table = pa.table({"a": pa.array(np.arange(1000, dtype=np.int64))})
    assert 8000 <= entry_bytes(table) < 9000
    small = shapely.points(np.zeros((100, 2)))
    large = np.array([shapely.box(0, 0, 1, 1).buffer(10, 64) for _ in range(100)], dtype=object)
    assert entry_bytes(large) > 5 * entry_bytes(small) > 0
    frame = pd.DataFrame({"x": np.zeros(1000), "s": ["abc"] * 1000})
    assert entry_bytes(frame) > 8000 + 1000 * 8
    assert entry_bytes({"a": np.zeros(10), "b": (np.zeros(10), "xyz")}) > 160


def test_the_budget_is_configured_in_megabytes(monkeypatch):
    monkeypatch.setenv("GRIDWATCH_CACHE_MB", "64")
    assert budget_bytes() == 64 * 1024 * 1024
    cache = StoreCache("/nowhere")
    assert cache.budget == 64 * 1024 * 1024
    assert sum(cache.region(n).budget for n in REGIONS) <= cache.budget
    monkeypatch.setenv("GRIDWATCH_CACHE_MB", "lots")
    assert budget_bytes() > 64 * 1024 * 1024  # not a number: the default


# --- a commit to one layer leaves the others warm ---------------------------------------------


def _points(tmp: Path, name: str, layer: str, xy: list[tuple[float, float]], first: int) -> Path:
    column = "案件编号" if layer == "demolition" else "编号"
    frame = points_frame(xy, **{column: [f"{name}{first + i}" for i in range(len(xy))]})
    return write_shp(frame, tmp / name / f"{name}.shp")


def test_a_commit_to_one_layer_leaves_the_other_layers_figures_warm(gridded_store, tmp_path):
    store = gridded_store
    import_file(store, "demolition", _points(tmp_path, "d", "demolition", [(X0 + 50, Y0 - 50)], 1))
    import_file(store, "parking", _points(tmp_path, "p", "parking", [(X0 + 150, Y0 - 150)], 1))
    demolition, parking = get_layer("demolition"), get_layer("parking")
    facts = facts_mod.load_facts(store, demolition)
    positions = positions_and_facts(store, demolition)
    cells = cells_in_view(store, "grid", None, 16, layer="demolition")
    parking_facts = facts_mod.load_facts(store, parking)
    tables = len(store.cache.region("cell_tables"))

    import_file(store, "parking", _points(tmp_path, "q", "parking", [(X0 + 250, Y0 - 250)], 2))

    assert facts_mod.load_facts(store, demolition) is facts
    assert positions_and_facts(store, demolition)[4] is positions[4]
    assert positions_and_facts(store, demolition)[0] is positions[0]
    kept = store.cache.region("cell_tables")
    assert len(kept) == tables  # nothing filled again for the same view
    assert cells_in_view(store, "grid", None, 16, layer="demolition") == cells
    assert len(kept) == tables
    assert facts_mod.load_facts(store, parking) is not parking_facts  # the written layer: read again
    assert len(facts_mod.load_facts(store, parking).fids) == 2


def test_targets_and_grid_writes_reach_what_they_feed(gridded_store, tmp_path):
    store = gridded_store
    import_file(store, "demolition", _points(tmp_path, "d", "demolition", [(X0 + 50, Y0 - 50)], 1))
    facts = facts_mod.load_facts(store, get_layer("demolition"))
    cells_in_view(store, "community", None, 16, layer="demolition")
    csv = tmp_path / "t" / "目标.csv"
    csv.parent.mkdir()
    csv.write_text(f"编码,图层,指标,目标\n{COMM_A},demolition,completed,7\n", encoding="utf-8")
    load_targets(store, csv)
    assert facts_mod.load_facts(store, get_layer("demolition")) is facts  # targets are not facts
    cells = cells_in_view(store, "community", None, 16, layer="demolition")
    record = next(f["properties"] for f in cells["features"] if f["id"] == COMM_A)
    assert record["demolition_completed_target"] == 7


# --- cached figures equal fresh ones after any sequence of writes -----------------------------


def _figures(store) -> dict[str, object]:
    out: dict[str, object] = {}
    for level in ("grid", "community"):
        out[f"tally/{level}"] = tally(store, level).to_json()
        out[f"tally/{level}/demolition"] = tally(store, level, ["demolition"]).to_json()
        out[f"cells/{level}"] = json.dumps(cells_in_view(store, level, None, 16), sort_keys=True)
    for layer in ("demolition", "parking"):
        out[f"cells/grid/{layer}"] = json.dumps(
            cells_in_view(store, "grid", None, 16, layer=layer), sort_keys=True
        )
        view = features_in_view(store, layer, BBox(118.0, 31.0, 119.0, 32.0), 19)
        out[f"features/{layer}"] = json.dumps(view, sort_keys=True)
        fids, lon, lat, _, facts = positions_and_facts(store, get_layer(layer))
        out[f"positions/{layer}"] = (fids.tolist(), lon.round(9).tolist(), lat.round(9).tolist())
        out[f"facts/{layer}"] = (facts.fids.tolist(), facts.unit.to_pylist(), facts.completed.tolist())
    versions = [v for v in store.grid_versions() if v.alive()]
    if versions:
        out["tally/first-grid"] = tally(store, "grid", grid=versions[0].id).to_json()
    out["search"] = repr(search(store, "w"))
    return out


class Writes(RuleBasedStateMachine):
    """Imports to two layers, grid replacements, targets and rollbacks in any order; after
    each, the figures of the process cache equal those of a fresh cache."""

    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="gw-gens-"))
        self.store = open_store(self.tmp / "data")
        self.files = 0
        self.batches: list[int] = []

    def teardown(self) -> None:
        self.store.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def _file(self) -> Path:
        self.files += 1
        return self.tmp / "in" / str(self.files)

    @initialize()
    def grid(self) -> None:
        import_file(self.store, "grid", write_shp(grid_frame(), self._file() / "网格.shp"))

    @rule(
        layer=st.sampled_from(["demolition", "parking"]),
        cells=st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3)), min_size=1, max_size=3),
    )
    def import_points(self, layer: str, cells: list[tuple[int, int]]) -> None:
        xy = [(X0 + 80 * c + 7 + self.files, Y0 - 80 * r - 7 - self.files) for c, r in cells]
        report = import_file(self.store, layer, _points(self._file(), "w", layer, xy, self.files * 10))
        self.batches.append(report.batch_id)

    @rule(shift=st.sampled_from([20, 40, 60]))
    def replace_grid(self, shift: int) -> None:
        frame = grid_frame()
        frame["geometry"] = frame.geometry.translate(shift + self.files % 7, 0)
        try:
            report = import_file(self.store, "grid", write_shp(frame, self._file() / "网格.shp"))
        except GridwatchError:  # refused (e.g. the same grid again): nothing written
            return
        self.batches.append(report.batch_id)

    @rule(value=st.integers(1, 9))
    def targets(self, value: int) -> None:
        csv = self._file() / "目标.csv"
        csv.parent.mkdir(parents=True)
        csv.write_text(f"编码,图层,指标,目标\n{COMM_A},demolition,completed,{value}\n", encoding="utf-8")
        self.batches.append(load_targets(self.store, csv).batch_id)

    @rule(data=st.data())
    def roll_back(self, data: st.DataObject) -> None:
        if not self.batches:
            return
        batch = data.draw(st.sampled_from(self.batches))
        try:
            rollback(self.store, batch)
        except GridwatchError:  # already rolled back, or a later grid first
            return

    @invariant()
    def cached_figures_equal_fresh_ones(self) -> None:
        cached = _figures(self.store)
        with open_store(self.store.location) as other:  # another request: the same process cache
            assert _figures(other) == cached
        with open_store(self.store.location) as fresh:
            fresh.cache = StoreCache(fresh.location)
            assert _figures(fresh) == cached


@pytest.mark.slow
def test_cached_figures_equal_fresh_ones_after_any_sequence_of_writes():
    run_state_machine_as_test(
        Writes,
        settings=settings(
            max_examples=6,
            stateful_step_count=6,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
        ),
    )


# --- memory stays flat across imports ---------------------------------------------------------

_MEMORY_SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    from pathlib import Path
    sys.path.insert(0, {root!r})
    from geo.imports.importer import import_file
    from geo.store.backends import open_store
    from server import create_app
    from tests.helpers.builders import X0, Y0, grid_frame, points_frame, write_shp

    tmp = Path({tmp!r})
    data = tmp / "data"
    with open_store(data) as store:
        import_file(store, "grid", write_shp(grid_frame(), tmp / "g" / "grid.shp"))
    app = create_app({{"GRIDWATCH_DATA": str(data), "TESTING": True, "LOGIN_DISABLED": True,
                       "WTF_CSRF_ENABLED": False}})
    client = app.test_client()
    page = os.sysconf("SC_PAGE_SIZE")
    out = []
    for layer, column in (("parking", "编号"), ("demolition", "案件编号")):  # what is there already
        xy = [(X0 + 1 + (k * 37) % 298, Y0 - 1 - (k * 53) % 298) for k in range({base})]
        frame = points_frame(xy, **{{column: [f"B{{k}}" for k in range({base})]}})
        with open_store(data) as store:
            import_file(store, layer, write_shp(frame, tmp / layer / "base.shp"))
    for i in range({imports}):
        layer = "demolition" if i % 2 else "parking"
        column = "案件编号" if layer == "demolition" else "编号"
        xy = [(X0 + 10 + (7 * i + k) % 290, Y0 - 10 - (13 * i + 3 * k) % 290) for k in range({points})]
        frame = points_frame(xy, **{{column: [f"M{{i}}-{{k}}" for k in range({points})]}})
        with open_store(data) as store:
            import_file(store, layer, write_shp(frame, tmp / str(i) / "p.shp"))
        for url in ("/api/stats?level=grid", "/api/stats?level=community&layer=demolition",
                    "/api/cells?level=grid", "/api/cells?level=grid&layer=parking",
                    "/api/features/demolition?bbox=118,31,119,32&zoom=19",
                    "/api/features/parking?bbox=118,31,119,32&zoom=19", "/api/search?q=m"):
            resp = client.get(url)
            assert resp.status_code == 200, (url, resp.status_code, resp.get_data(as_text=True)[:300])
            resp.close()
        with open_store(data) as store:
            cache = store.cache
        with open("/proc/self/statm") as f:
            rss = int(f.read().split()[1]) * page
        out.append({{"bytes": sum(cache.nbytes().values()), "entries": sum(cache.sizes().values()),
                    "rss": rss}})
    print(json.dumps(out))
    """
)


@pytest.mark.slow
def test_a_running_apps_memory_stays_flat_across_twenty_imports(tmp_path):
    script = _MEMORY_SCRIPT.format(root=str(ROOT), tmp=str(tmp_path), base=3000, imports=20, points=5)
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=600, cwd=ROOT, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    runs = json.loads(done.stdout.strip().splitlines()[-1])
    first, last = runs[1], runs[-1]  # after the first small import to each layer, and the last
    assert last["entries"] <= first["entries"]
    assert last["bytes"] <= first["bytes"] * 1.10
    assert last["rss"] <= first["rss"] * 1.10
