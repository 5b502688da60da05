"""Costly per-process copies are built once however many threads ask for them at the same time."""

from __future__ import annotations

import threading
import time

import geo.tally as tally_mod
from geo.cache import filling
from geo.importer import import_file
from geo.store import open_store
from tests.conftest import X0, Y0, points_frame, write_shp


def test_filling_lets_one_thread_build_while_the_others_wait():
    built: list[int] = []
    cache: dict[str, int] = {}
    start = threading.Barrier(8)

    def ask(k: int) -> None:
        start.wait()
        if "v" not in cache:
            with filling(("test", "family")):
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


def test_tally_columns_are_read_once_after_a_write_by_concurrent_requests(
    gridded_store, tmp_path, monkeypatch
):
    sites = points_frame([(X0 + 50, Y0 - 50), (X0 + 150, Y0 - 150)], 案件编号=["C1", "C2"])
    import_file(gridded_store, "demolition", write_shp(sites, tmp_path / "s" / "s.shp"))
    calls: list[int] = []
    real = tally_mod._read_facts

    def counting(store, spec):
        calls.append(1)
        time.sleep(0.05)
        return real(store, spec)

    monkeypatch.setattr(tally_mod, "_read_facts", counting)
    location = gridded_store.location
    results: list[int] = []
    start = threading.Barrier(6)

    def request() -> None:
        with open_store(location) as store:  # one handle per request, as in the web service
            start.wait()
            facts = tally_mod.load_facts(store, tally_mod.survey_specs(["demolition"])[0])
            results.append(len(facts.completed))

    threads = [threading.Thread(target=request) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [2] * 6
    assert len(calls) == 1
