"""Costly per-process copies are built once however many threads ask for them at the same time."""

from __future__ import annotations

import threading
import time

import pytest

import geo.figures.facts as facts_mod
import geo.figures.tally as tally_mod
from geo.imports.importer import import_file
from geo.store.backends import open_store
from geo.store.cache import StoreCache
from tests.helpers.builders import X0, Y0, points_frame, write_shp


def test_filling_lets_one_thread_build_while_the_others_wait():
    built: list[int] = []
    cache: dict[str, int] = {}
    kept = StoreCache("test")
    start = threading.Barrier(8)

    def ask(k: int) -> None:
        start.wait()
        if "v" not in cache:
            with kept.filling("test", "family"):
                if "v" not in cache:
                    time.sleep(0.05)  # long enough for every other thread to arrive
                    built.append(k)
                    cache["v"] = k

    threads = [threading.Thread(target=ask, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(built) == 1 and cache["v"] == built[0]


@pytest.mark.slow
def test_tally_columns_are_read_once_after_a_write_by_concurrent_requests(
    gridded_store, tmp_path, monkeypatch
):
    sites = points_frame([(X0 + 50, Y0 - 50), (X0 + 150, Y0 - 150)], 案件编号=["C1", "C2"])
    import_file(gridded_store, "demolition", write_shp(sites, tmp_path / "s" / "s.shp"))
    calls: list[int] = []
    real = facts_mod._read_facts

    def counting(store, spec, *rest):
        calls.append(1)
        time.sleep(0.05)
        return real(store, spec, *rest)

    monkeypatch.setattr(facts_mod, "_read_facts", counting)
    location = gridded_store.location
    results: list[int] = []
    start = threading.Barrier(6)

    def request() -> None:
        with open_store(location) as store:  # one handle per request, as in the web service
            start.wait()
            facts = facts_mod.load_facts(store, tally_mod.survey_specs(["demolition"])[0])
            results.append(len(facts.completed))

    threads = [threading.Thread(target=request) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [2] * 6
    assert len(calls) == 1


@pytest.mark.slow
def test_a_write_between_reading_columns_and_counting_never_mixes_revisions(
    gridded_store, tmp_path, monkeypatch
):
    """A commit landing while a request tallies (after it read the columns) must not leave
    figures of one revision paired with the columns of another for later requests."""
    store = gridded_store
    first = points_frame([(X0 + 50, Y0 - 50), (X0 + 150, Y0 - 150)], 案件编号=["W1", "W2"])
    import_file(store, "demolition", write_shp(first, tmp_path / "a" / "a.shp"))
    real = facts_mod.load_facts
    more = points_frame(
        [(X0 + 250, Y0 - 250), (X0 + 60, Y0 - 60), (X0 + 70, Y0 - 70)], 案件编号=["W3", "W4", "W5"]
    )
    calls: list[int] = []

    def facts_then_a_commit(st, spec, *rest):
        facts = real(st, spec, *rest)
        if not calls:
            calls.append(1)
            with open_store(st.location) as other:  # another request commits now
                import_file(other, "demolition", write_shp(more, tmp_path / "b" / "b.shp"))
        return facts

    monkeypatch.setattr(tally_mod, "load_facts", facts_then_a_commit)
    during = tally_mod.tally(store, "grid", ["demolition"])
    assert int(during["demolition_total"].sum()) == 2  # the state the request started from
    after = tally_mod.tally(store, "grid", ["demolition"])
    assert int(after["demolition_total"].sum()) == 5
    by_code = dict(zip(after["code"], after["demolition_total"], strict=True))
    assert sum(v for k, v in by_code.items() if k != "UNASSIGNED") == 5


def test_a_region_keeps_its_bound_dropping_the_oldest():
    from geo.store.cache import MISSING, Region, RegionSpec

    region = Region(RegionSpec(3))
    for k in range(5):
        region[k] = k * 10
    assert region.keys() == [2, 3, 4]
    assert region.get(0) is MISSING and region.get(4) == 40
    region[2] = 21  # kept again: now the newest
    region[5] = 50
    assert region.keys() == [4, 2, 5]


def test_a_new_generation_replaces_its_family_at_once():
    from geo.store.cache import REGIONS, Region

    region = Region(REGIONS["geometry"])
    region[("demolition", "gen1")] = "old"
    region[("parking", "gen1")] = "other layer"
    region[("demolition", "gen2")] = "new"
    assert set(region.keys()) == {("parking", "gen1"), ("demolition", "gen2")}


def test_a_stage_is_seen_by_its_thread_only_and_kept_only_when_published():
    from geo.store.cache import MISSING, StoreCache

    cache = StoreCache("memory:stage", budget=1 << 20)
    geometry = cache.region("geometry")
    geometry[("demolition", "gen1")] = "committed"
    stage = cache.stage()
    geometry[("demolition", "gen2")] = "written"  # staged: the committed entry stays
    assert geometry.get(("demolition", "gen2")) == "written"
    assert geometry.latest("demolition")[1] == "written"  # the stage first
    assert geometry.keys() == [("demolition", "gen1")]
    seen = {}
    other = threading.Thread(target=lambda: seen.update(latest=geometry.latest("demolition")))
    other.start()
    other.join()
    assert seen["latest"] == (("demolition", "gen1"), "committed")
    inner = cache.stage()  # a nested transaction: its owner publishes
    inner.publish()
    inner.end()
    assert geometry.get(("demolition", "gen2")) == "written" and geometry.keys() == [("demolition", "gen1")]
    stage.end()  # rolled back
    assert geometry.get(("demolition", "gen2")) is MISSING
    assert geometry.keys() == [("demolition", "gen1")]

    stage = cache.stage()
    geometry[("demolition", "gen3")] = "written"
    cache.region("facts")[(("demolition", None, "current"), ("gen3", "tx:abc"))] = "facts of the write"
    stage.publish()
    stage.end()
    # the new generation replaces its family; what was keyed by the transaction is not kept
    assert geometry.keys() == [("demolition", "gen3")]
    assert cache.region("facts").keys() == []


def test_a_stage_is_bounded_like_its_region():
    import numpy as np

    from geo.store.cache import StoreCache

    cache = StoreCache("memory:stage-bound", budget=1000)  # the outlines region gets 2%: 20 bytes
    outlines = cache.region("outlines")
    stage = cache.stage()
    for k in range(5):
        outlines[k] = np.zeros(2, dtype=np.int8)  # 2 bytes each
    outlines["big"] = np.zeros(15, dtype=np.int8)
    stage.publish()
    stage.end()
    assert outlines.nbytes() <= outlines.budget
    assert "big" in outlines


def test_every_handle_on_a_store_shares_one_cache(gridded_store):
    """A web worker opens the store per request: what one handle kept, the next one finds."""
    with open_store(gridded_store.location) as other:
        assert other.cache is gridded_store.cache
    tally_mod.tally(gridded_store, "grid", ["demolition"])
    assert gridded_store.cache.sizes()["facts"] >= 1
    assert all(name in gridded_store.cache.sizes() for name in ("geometry", "hierarchy", "units"))


def test_no_engine_module_keeps_a_cache_of_its_own():
    """Every per-store copy lives in the store's cache object: no module-level dict is filled
    at run time in geo/ (registries and constant tables are declared, never written to)."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent / "geo"
    offenders = []
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        module_dicts = set()
        for node in tree.body:
            target = node.target if isinstance(node, ast.AnnAssign) else None
            if isinstance(node, ast.Assign) and len(node.targets) == 1:
                target = node.targets[0]
                value = node.value
            elif isinstance(node, ast.AnnAssign):
                value = node.value
            else:
                continue
            if isinstance(target, ast.Name) and isinstance(value, ast.Dict) and not value.keys:
                module_dicts.add(target.id)
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Subscript)
                and isinstance(node.ctx, ast.Store)
                and isinstance(node.value, ast.Name)
                and node.value.id in module_dicts
            ):
                offenders.append(f"{path.relative_to(root.parent)}:{node.lineno}: {node.value.id}")
    # registries a deployment fills on purpose (readers, renderers, backends), the index of the
    # cache objects themselves, assign's tree over the one points array being assigned (not
    # a store's data: it lives as long as that array), and the text of numeric columns kept by
    # their values in geo/output/columnar.py (keyed by the values themselves, so never stale
    # whatever store they came from, and bounded in bytes: MEMO_BYTES), and how many rows of each
    # growing column's buffer are taken in geo/store/interface/changes.py (no data: one entry per
    # live buffer, dropped with it)
    allowed = {
        "_READERS",
        "_RENDERERS",
        "_BACKENDS",
        "_CACHES",
        "_POINT_TREE",
        "_memo_slots",
        "_TAKEN",
        "_SENDERS",
    }
    assert [o for o in offenders if o.rsplit(": ", 1)[1] not in allowed] == []
