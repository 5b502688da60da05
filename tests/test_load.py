"""Short form of the load test (the harness in tests/helpers/load, run on demand by
bench/bench_load.py): surveyors uploading and committing while map users read, under gunicorn
with the sample settings.  Nothing may fail and no feature may be lost or stored twice.
(Latency and throughput are the benchmark's to print; they are never asserted here.)"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.helpers.load.clients import READ_KINDS
from tests.helpers.load.run import LoadResult, report, run
from tests.helpers.load.server import build_base

GUNICORN = Path(sys.executable).parent / "gunicorn"
pytestmark = [
    pytest.mark.skipif(not GUNICORN.exists(), reason="gunicorn is not installed"),
    pytest.mark.slow,
]


def test_uploads_and_map_reads_at_once_fail_nothing_and_reconcile():
    lines: list[str] = []
    result = run(duration=10, uploaders=4, readers=8, workers=2, log=lines.append)
    report(result, lines.append)
    assert_reconciled(result, "\n".join(lines))


def test_paced_clients_on_a_generated_base_store_reconcile_by_count(tmp_path):
    # the form (readers pausing, uploaders committing at intervals, a generated store
    # counted rather than listed), small: 400 cells, 5,000 points, 8 s
    lines: list[str] = []
    base = build_base(tmp_path / "base", "gpkg", 400, 5_000, log=lines.append)
    assert build_base(tmp_path / "base", "gpkg", 400, 5_000, log=lines.append) == base  # built once
    duration, pause, every = 8.0, 1.0, 3.0
    result = run(
        duration=duration,
        uploaders=2,
        readers=4,
        workers=2,
        log=lines.append,
        base=base,
        reader_pause=pause,
        upload_every=every,
    )
    report(result, lines.append)
    figures = "\n".join(lines)
    assert result.demo_features == 5_050, figures  # 5,000 points and 50 polygons
    assert_reconciled(result, figures)
    assert any("by the batch of its commit" in what for what, _, _ in result.checks), figures
    # the pauses hold: a reader waits a pause after each answer (without it, hundreds of
    # requests); an uploader starts a round per interval (the first within one) and finishes
    # the one it is in
    reads = sum(sum(c.values()) for k, c in result.tally.statuses.items() if k in READ_KINDS)
    assert reads <= 4 * (duration / pause + 1), figures
    assert len(result.commits) <= 2 * (duration / every + 1), figures


def assert_reconciled(result: LoadResult, figures: str) -> None:
    """Nothing failed and every count agrees (the short forms' common checks)."""

    committed = [c for c in result.commits if c.get("committed")]
    reads = sum(len(v) for k, v in result.tally.seconds.items() if k in READ_KINDS)
    assert committed and result.sent_committed > 0 and reads > 0, figures
    server_errors, failed_requests, crashes = (
        result.server_errors,
        result.failed_requests,
        result.tally.crashes,
    )
    assert server_errors == 0, figures
    assert failed_requests == {}, figures  # nor any other status than expected
    assert crashes == [], figures
    # store count = demo + sent = sum of 'added' = batch register = full recount
    expected = result.demo_features + result.sent_committed
    counts = (
        result.added_committed + result.demo_features,
        result.store_count,
        result.batches_added,
        result.stats_total,
        result.stats_rows_sum,
    )
    assert counts == (expected,) * 5, figures
    failed_checks = [what for what, ok, _ in result.checks if not ok]
    assert failed_checks == [], figures
