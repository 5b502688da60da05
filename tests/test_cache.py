"""Costly per-process copies are built once however many threads ask for them at the same time."""

from __future__ import annotations

import threading
import time

import pytest

import geo.figures.tally as tally_mod
from geo.imports.importer import import_file
from geo.store.backends import open_store
from geo.store.cache import filling
from tests.helpers.builders import X0, Y0, points_frame, write_shp


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


@pytest.mark.slow
def test_tally_columns_are_read_once_after_a_write_by_concurrent_requests(
    gridded_store, tmp_path, monkeypatch
):
    sites = points_frame([(X0 + 50, Y0 - 50), (X0 + 150, Y0 - 150)], 案件编号=["C1", "C2"])
    import_file(gridded_store, "demolition", write_shp(sites, tmp_path / "s" / "s.shp"))
    calls: list[int] = []
    real = tally_mod._read_facts

    def counting(store, spec, *rest):
        calls.append(1)
        time.sleep(0.05)
        return real(store, spec, *rest)

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


@pytest.mark.slow
def test_a_write_between_reading_columns_and_counting_never_mixes_revisions(
    gridded_store, tmp_path, monkeypatch
):
    """A commit landing while a request tallies (after it read the columns) must not leave
    figures of one revision paired with the columns of another for later requests."""
    store = gridded_store
    first = points_frame([(X0 + 50, Y0 - 50), (X0 + 150, Y0 - 150)], 案件编号=["W1", "W2"])
    import_file(store, "demolition", write_shp(first, tmp_path / "a" / "a.shp"))
    real = tally_mod.load_facts
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
