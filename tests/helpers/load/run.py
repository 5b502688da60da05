"""A load run: the store and gunicorn set up, the clients started, stopped and collected, and
what they did checked against the store (:func:`run`); :func:`report` prints the figures."""

from __future__ import annotations

import json
import math
import multiprocessing as mp
import os
import queue
import re
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tests.helpers.load.clients import (
    EXPECTED,
    LAYER,
    READ_KINDS,
    READERS_PER_PROCESS,
    REQUEST_TIMEOUT_S,
    Tally,
    reader_process,
    request,
    uploader_process,
    warm_up,
)
from tests.helpers.load.server import (
    Base,
    Setup,
    drop_stage,
    free_port,
    gunicorn,
    gunicorn_settings,
    prepare_store,
    process_tree_cpu,
    stage_base,
)


@dataclass
class LoadResult:
    """What a run measured and whether it passed (``problems`` empty)."""

    duration_s: float
    workers: int
    threads: int
    uploaders: int
    readers: int
    tally: Tally
    warm_up: Tally
    commits: list[dict[str, Any]]
    read_elapsed_s: float
    upload_elapsed_s: float
    client_cpu_s: float
    server_cpu_s: float
    demo_features: int = 0
    sent_committed: int = 0
    added_committed: int = 0
    store_count: int | None = None
    batches_added: int | None = None
    stats_total: int | None = None
    stats_rows_sum: int | None = None
    checks: list[tuple[str, bool, str]] = field(default_factory=list)
    server_log: str = ""
    reader_pause: float = 0.0
    upload_every: float = 0.0
    store_label: str = "demo district"
    #: requests as the workers saw them: (worker pid, kind, status, seconds in the worker)
    served: list[tuple[str, str, int, float]] = field(default_factory=list)

    @property
    def failed_requests(self) -> dict[str, int]:
        """Requests answered with another status than expected, per ``"kind status"``."""
        out: dict[str, int] = {}
        for tally in (self.warm_up, self.tally):
            for kind, counts in tally.statuses.items():
                for status, n in counts.items():
                    if status != EXPECTED[kind]:
                        out[f"{kind} {status}"] = out.get(f"{kind} {status}", 0) + n
        return out

    @property
    def server_errors(self) -> int:
        return sum(n for key, n in self.failed_requests.items() if int(key.split()[1]) >= 500)

    @property
    def reconciled(self) -> bool:
        return bool(self.checks) and all(ok for _, ok, _ in self.checks)

    @property
    def passed(self) -> bool:
        return not self.failed_requests and not self.tally.crashes and self.reconciled

    def check(self, what: str, ok: bool, detail: str = "") -> None:
        self.checks.append((what, ok, detail))


def reconcile(result: LoadResult, setup: Setup, port: int) -> None:
    """Compare what the uploaders sent and the commits reported with the batch register and a
    full recount through the API (the server still running)."""
    committed = [c for c in result.commits if c.get("committed")]
    result.demo_features = setup.base_count
    result.sent_committed = sum(len(c["keys"]) for c in committed)
    result.added_committed = sum(int(c.get("added") or 0) for c in committed)
    expected = result.demo_features + result.sent_committed
    bad_commits = [
        c
        for c in committed
        if not c.get("added") == c.get("accepted") == len(c["keys"])
        or c.get("updated")
        or c.get("unchanged")
        or c.get("rejected_rows")
    ]
    result.check(
        "every commit added exactly the sites its file held",
        not bad_commits and result.added_committed == result.sent_committed,
        f"{len(committed)} commits, {result.sent_committed} sites sent, {result.added_committed} reported added"
        + (f"; off: {bad_commits[:3]}" if bad_commits else ""),
    )
    unconfirmed = [c for c in result.commits if not c.get("committed")]
    result.check(
        "every upload was committed",
        not unconfirmed,
        f"{len(unconfirmed)} uploads not committed"
        if unconfirmed
        else f"{len(committed)} of {len(committed)}",
    )

    status, _, body = request(port, "GET", f"/api/batches?layer={LAYER}", setup.admin)
    if status != 200:
        result.check("batch register readable", False, f"/api/batches answered {status}")
    else:
        batches = {b["id"]: b for b in json.loads(body) if b["layer"] == LAYER}
        ours = {c["batch_id"]: c for c in committed}
        demo = {i: b for i, b in batches.items() if i not in ours}
        missing = sorted(set(ours) - set(batches))
        wrong = [
            i
            for i, c in ours.items()
            if i in batches
            and (
                batches[i]["added"] != len(c["keys"])
                or batches[i]["status"] != "active"
                or batches[i]["updated"]
                or batches[i]["rows_read"] != len(c["keys"])
            )
        ]
        strangers = sorted(i for i, b in demo.items() if b["user"] != "demo")
        active = [b for b in batches.values() if b["status"] == "active"]
        result.batches_added = sum(int(b["added"]) for b in active)
        result.check(
            "batch register: one batch per commit with its counts, nothing else",
            not missing and not wrong and not strangers and len(ours) == len(committed),
            f"{len(ours)} load-test batches + {len(demo)} demo batches; missing {missing[:5]}, "
            f"counts differ {wrong[:5]}, unexpected {strangers[:5]}",
        )
        result.check(
            "sum of 'added' over active batches = demo + sent",
            result.batches_added == expected,
            f"{result.batches_added} vs {expected}",
        )

    status, _, body = request(port, "GET", f"/api/stats?level=grid&layer={LAYER}", setup.admin)
    if status != 200:
        result.check("full recount readable", False, f"/api/stats answered {status}")
    else:
        report = json.loads(body)
        result.stats_total = int(report["totals"][f"{LAYER}_total"])
        result.stats_rows_sum = int(sum(int(r[f"{LAYER}_total"] or 0) for r in report["rows"]))
        unassigned = sum(int(r[f"{LAYER}_total"] or 0) for r in report["rows"] if r["code"] == "UNASSIGNED")
        result.check(
            "full recount (/api/stats per unit grid): totals and the sum of its rows",
            result.stats_total == expected and result.stats_rows_sum == expected,
            f"totals {result.stats_total}, rows {result.stats_rows_sum}, expected {expected} "
            f"({unassigned} outside every unit grid)",
        )


def reconcile_store(result: LoadResult, setup: Setup) -> None:
    """The store itself, read directly once the server has stopped: SQLite's integrity check
    of the GeoPackage, the layer's count and every 案件编号 (for a large base store: the
    count, and the sent 案件编号 looked up in the store, each held by its commit's batch)."""
    import apsw

    import layers
    from geo.store.backends import open_store

    committed = [c for c in result.commits if c.get("committed")]
    sent = [k for c in committed for k in c["keys"]]
    expected = setup.base_count + len(sent)
    location: Any = Path(setup.data) / "gridwatch.gpkg"
    if not setup.store:
        # apsw, the store's own SQLite, read-only; in WAL mode it reads the commits still in the -wal
        db = apsw.Connection(str(location), flags=apsw.SQLITE_OPEN_READONLY)
        try:
            problems = [row[0] for row in db.execute("PRAGMA integrity_check").fetchall()]
        except apsw.Error as exc:
            problems = [str(exc)]
        finally:
            db.close()
        result.check(
            "GeoPackage file intact (PRAGMA integrity_check)", problems == ["ok"], "; ".join(problems[:3])
        )
    keys: list[str] | None = None
    held: dict[str, tuple[int, str | None]] | None = None
    try:
        where = setup.store or location
        with open_store(where, **({"data": setup.data} if setup.store else {})) as store:
            spec = layers.get(LAYER)
            result.store_count = store.layer_count(spec)
            if setup.demo_keys:
                keys = store.read_attributes(spec, ["gw_key"])["gw_key"].tolist()
            else:
                held = store.key_batches(spec, np.array(sent, dtype=object))
    except Exception as exc:  # a damaged file is a finding, not the end of the report
        result.check("store readable", False, f"{type(exc).__name__}: {exc}")
    if held is not None:
        result.check(
            "store count = base + sent in committed uploads",
            result.store_count == expected,
            f"{result.store_count} vs {setup.base_count} + {len(sent)}",
        )
        batch_of = {k: c["batch_id"] for c in committed for k in c["keys"]}
        lost = sorted(k for k in batch_of if k not in held)
        elsewhere = sorted(k for k, b in batch_of.items() if k in held and held[k][0] != b)
        result.check(
            "every sent 案件编号 stored, by the batch of its commit (with the count: once each)",
            not (lost or elsewhere) and len(set(sent)) == len(sent),
            f"lost {lost[:5]}, held by another batch {elsewhere[:5]}",
        )
    if keys is not None:
        result.check(
            "store count = demo + sent in committed uploads",
            result.store_count == expected,
            f"{result.store_count} vs {len(setup.demo_keys)} + {len(sent)}",
        )
        stored = Counter(keys)
        duplicated = sorted(k for k, n in stored.items() if n > 1)
        lost = sorted(set(sent) - set(stored))
        extra = sorted(set(stored) - set(sent) - set(setup.demo_keys))
        demo_lost = sorted(set(setup.demo_keys) - set(stored))
        result.check(
            "every sent 案件编号 stored exactly once, nothing else added or lost",
            not (duplicated or lost or extra or demo_lost) and len(set(sent)) == len(sent),
            f"duplicated {duplicated[:5]}, lost {lost[:5]}, unexpected {extra[:5]}, demo lost {demo_lost[:5]}",
        )
    staged = setup.data / "uploads"
    # staged uploads are folders; the staging area's lock file is not one
    left = sorted(p.name for p in staged.iterdir() if p.is_dir()) if staged.exists() else []
    result.check("no staged upload left behind", not left, f"{len(left)} left" if left else "")


# --------------------------------------------------------------------------- the run


def _collect(q: Any, procs: list[Any], timeout: float) -> list[Any]:
    """One item from ``q`` per process in ``procs``; fails when one of them dies first."""
    items: list[Any] = []
    deadline = time.monotonic() + timeout
    while len(items) < len(procs):
        try:
            items.append(q.get(timeout=1.0))
        except queue.Empty:
            dead = [p.exitcode for p in procs if p.exitcode not in (None, 0)]
            if dead or time.monotonic() > deadline:
                raise RuntimeError(f"a client process failed (exit codes {dead}) or timed out") from None
    return items


def run(
    duration: float = 60.0,
    uploaders: int = 8,
    readers: int = 32,
    workers: int | None = None,
    log: Callable[[str], None] = print,
    base: Base | None = None,
    reader_pause: float = 0.0,
    upload_every: float = 0.0,
) -> LoadResult:
    """Set up, load, check (the run bench/bench_load.py describes).  ``workers`` None keeps the
    sample settings'.  ``base`` None loads the demo district, else a copy of ``base`` is used;
    each reader waits ``reader_pause`` seconds after each answer, each uploader starts a round
    every ``upload_every`` seconds (0: no pauses)."""
    work = Path(tempfile.mkdtemp(prefix="gridwatch-loadbench-"))
    work.chmod(0o755)
    ctx = mp.get_context("spawn")
    procs: list[Any] = []
    staged = ""
    try:
        t0 = time.perf_counter()
        if base is None:
            setup = prepare_store(work / "store", uploaders)
            what = "demo district loaded"
        else:
            data, staged = stage_base(base, work)
            setup = prepare_store(data, uploaders, staged)
            what = f"copy of the {base.label} base"
        log(
            f"store: {what}, {setup.base_count:,} {LAYER} features; "
            f"{uploaders} surveyor accounts, a viewer and an admin, each with an API token "
            f"({time.perf_counter() - t0:.1f} s)"
        )
        settings = gunicorn_settings()
        n_workers = workers or int(settings["workers"])
        port = free_port()
        # the clients start (and import what they need) while gunicorn starts
        ready, out = ctx.Queue(), ctx.Queue()
        start, stop = ctx.Event(), ctx.Event()
        n_procs = math.ceil(readers / READERS_PER_PROCESS)
        groups = [len(g) for g in np.array_split(np.arange(readers), n_procs)] if readers else []
        for k, n in enumerate(groups):
            args = (port, setup.viewer, setup.box, n, k + 1, ready, start, stop, out, reader_pause)
            procs.append(ctx.Process(target=reader_process, args=args, daemon=True))
        if uploaders:
            args = (
                port,
                setup.surveyors,
                setup.district_wkb,
                str(work / "files"),
                ready,
                start,
                stop,
                out,
                upload_every,
                setup.epsg,
            )
            procs.append(ctx.Process(target=uploader_process, args=args, daemon=True))
        for p in procs:
            p.start()
        server_log = work / "gunicorn.log"
        access = work / "access.log"
        with gunicorn(setup.data, port, workers, server_log, setup.admin, setup.store, access) as server_pid:
            log(
                f"gunicorn: 127.0.0.1:{port}, {n_workers} workers x {settings['threads']} threads "
                f"({settings['worker_class']}), deploy/gunicorn.conf.py; machine: {os.cpu_count()} CPUs, "
                f"load average {os.getloadavg()[0]:.1f} before the run"
            )
            warm = Tally()
            warm_up(port, setup.viewer, setup.box, n_workers * int(settings["threads"]), warm)
            _collect(ready, procs, 300)
            paces = (
                f"readers wait {reader_pause:g} s after each answer, "
                if reader_pause
                else "readers never pause, "
            ) + (
                "no uploaders"
                if not uploaders
                else f"each uploader commits every {upload_every:g} s"
                if upload_every
                else "uploaders never pause"
            )
            log(
                f"load: {uploaders} uploaders and {readers} readers in {len(procs)} client processes "
                f"(readers {groups}), {duration:g} s; {paces}; load average {os.getloadavg()[0]:.1f}"
            )
            cpu0 = process_tree_cpu(server_pid)
            served_from = access.stat().st_size if access.exists() else 0  # the warm-up left out
            t_start = time.monotonic()
            start.set()
            time.sleep(duration)
            stop.set()
            tally, commits, client_cpu = Tally(), [], 0.0
            ends: dict[str, float] = {"readers": t_start, "uploaders": t_start}
            for part in _collect(out, procs, REQUEST_TIMEOUT_S * 2 + 120):
                tally.merge(part["tally"])
                commits.extend(part["commits"])
                client_cpu += part["cpu_s"]
                ends[part["role"]] = max(ends[part["role"]], part["tally"]["last_end"])
            for p in procs:
                p.join(timeout=60)
            server_cpu = process_tree_cpu(server_pid) - cpu0
            served = read_access_log(access, served_from)
            result = LoadResult(
                duration_s=duration,
                workers=n_workers,
                threads=int(settings["threads"]),
                uploaders=uploaders,
                readers=readers,
                tally=tally,
                warm_up=warm,
                commits=commits,
                read_elapsed_s=max(ends["readers"] - t_start, 1e-9),
                upload_elapsed_s=max(ends["uploaders"] - t_start, 1e-9),
                client_cpu_s=client_cpu,
                server_cpu_s=server_cpu,
                reader_pause=reader_pause,
                upload_every=upload_every,
                store_label=base.label if base else "demo district",
                served=served,
            )
            reconcile(result, setup, port)
        reconcile_store(result, setup)
        text = server_log.read_text(errors="replace") if server_log.exists() else ""
        result.server_log = "\n".join(
            line for line in text.splitlines() if "[INFO]" not in line and line.strip()
        )
        return result
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
                p.join(timeout=10)
        if base is not None and staged:
            drop_stage(base, staged)
        shutil.rmtree(work, ignore_errors=True)


def read_access_log(path: Path, offset: int = 0) -> list[tuple[str, str, int, float]]:
    """(worker pid, kind, status, seconds in the worker) of each request in gunicorn's access
    log from byte ``offset`` (the warm-up left out); kinds as the clients name them."""
    if not path.exists():
        return []
    kinds = {
        "/api/cells": "cells",
        "/api/features/": "features",
        "/api/stats": "stats",
        "/api/uploads": "upload",
    }
    out = []
    with path.open("rb") as fh:
        fh.seek(offset)
        for raw in fh:
            parts = raw.decode("utf-8", errors="replace").split()
            if len(parts) != 5 or not parts[3].isdigit() or not parts[4].isdigit():
                continue
            pid, _method, url, status, micro = parts
            kind = next((k for prefix, k in kinds.items() if url.startswith(prefix)), "other")
            if kind == "upload" and url.endswith("/commit"):
                kind = "commit"
            out.append((pid, kind, int(status), int(micro) / 1e6))
    return out


def _percentiles(values: list[float]) -> str:
    if not values:
        return "no requests"
    ms = np.asarray(values) * 1000
    return (
        f"p50 {np.percentile(ms, 50):7.1f} ms, p95 {np.percentile(ms, 95):7.1f} ms, "
        f"max {ms.max():7.1f} ms ({len(ms):,})"
    )


def server_log_summary(text: str) -> list[tuple[str, int]]:
    """Exceptions and gunicorn warnings/errors in the server log, counted, most frequent first."""
    counts: Counter[str] = Counter()
    for line in text.splitlines():
        exc = re.match(r"^([A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt|Warning))\b:?(.*)$", line)
        if exc:
            counts[f"{exc.group(1)}:{exc.group(2)[:160]}"] += 1
        elif re.search(r"\[(WARNING|ERROR|CRITICAL)\]", line) and "Exception on" not in line:
            counts[re.sub(r"\d+", "N", re.sub(r"^\[[^]]*\] \[\d+\] ", "", line))[:200]] += 1
    return counts.most_common(10)


def report(result: LoadResult, log: Callable[[str], None] = print) -> None:
    """Print the figures, the status counts, the checks and the PASS/FAIL line."""
    t = result.tally
    log("statuses:")
    for name, tally in (("warm-up", result.warm_up), ("run", t)):
        for kind in (*READ_KINDS, "upload", "commit"):
            if kind in tally.statuses:
                counts = ", ".join(f"{s}: {n:,}" for s, n in sorted(tally.statuses[kind].items()))
                log(f"  {name:7s} {kind:8s} {counts}")
    reads = [s for k in READ_KINDS for s in t.seconds.get(k, [])]
    log("latency:")
    log(f"  reads    {_percentiles(reads)}")
    for kind in READ_KINDS:
        log(f"    {kind:8s} {_percentiles(t.seconds.get(kind, []))}")
    if reads:
        ms = np.asarray(reads) * 1000
        p50, p95 = np.percentile(ms, 50), np.percentile(ms, 95)
        met = "met" if p50 <= 150 and p95 <= 500 else "not met"
        log(
            f"  reads against the target (p50 <= 150 ms, p95 <= 500 ms): p50 {p50:.0f} ms, p95 {p95:.0f} ms: {met}"
        )
    if result.served:
        log(
            "in the workers (gunicorn's request time, from the worker's start on the request; the rest is the wait):"
        )
        for pid in sorted({p for p, _, _, _ in result.served}):
            for kind in (*READ_KINDS, "upload", "commit"):
                values = [s for p, k, _, s in result.served if p == pid and k == kind]
                if values:
                    log(f"  worker {pid} {kind:8s} {_percentiles(values)}")
    log(
        f"  upload   {_percentiles(t.seconds.get('upload', []))}  (POST /api/uploads: staging, reading, report)"
    )
    log(f"  commit   {_percentiles(t.seconds.get('commit', []))}")
    commits = sum(1 for c in result.commits if c.get("committed"))
    log(
        f"throughput: {len(reads) / result.read_elapsed_s:,.1f} reads/s over {result.read_elapsed_s:.1f} s; "
        f"{commits / result.upload_elapsed_s:,.2f} commits/s ({result.sent_committed / result.upload_elapsed_s:,.1f} "
        f"sites/s) over {result.upload_elapsed_s:.1f} s"
    )
    log(
        f"CPU: server {result.server_cpu_s:.1f} s, load generator {result.client_cpu_s:.1f} s "
        f"of {(os.cpu_count() or 1) * max(result.read_elapsed_s, result.upload_elapsed_s):.0f} CPU-seconds available"
    )
    log(
        f"features: {result.store_label} {result.demo_features:,} + sent in committed uploads {result.sent_committed:,} "
        f"= {result.demo_features + result.sent_committed:,}; commits reported added {result.added_committed:,}; "
        f"batches {result.batches_added}; /api/stats total {result.stats_total} (rows {result.stats_rows_sum}); "
        f"store {result.store_count}"
    )
    log("checks:")
    for what, ok, detail in result.checks:
        log(f"  [{'ok' if ok else 'FAIL'}] {what}" + (f": {detail}" if detail else ""))
    failed = result.failed_requests
    log(
        f"5xx responses: {result.server_errors}; other unexpected statuses: "
        f"{sum(failed.values()) - result.server_errors}"
    )
    for key, samples in {**result.warm_up.errors, **t.errors}.items():
        log(f"  {key}: {samples[0].strip()[:300]}")
    for what, n in server_log_summary(result.server_log):
        log(f"  server log: {n} x {what}")
    verdict = "PASS" if result.passed else "FAIL"
    why = []
    if failed:
        why.append(f"{sum(failed.values())} requests with an unexpected status ({result.server_errors} 5xx)")
    if t.crashes:
        why.append(f"{len(t.crashes)} client threads crashed")
        log(f"client crash: {t.crashes[0]}")
    if not result.reconciled:
        why.append("features do not reconcile")
    log(f"{verdict}: " + ("; ".join(why) if why else "no unexpected status, features reconcile exactly"))
