"""Reading helpers do not outlive the process that asked for the read.

A server worker killed with SIGKILL (gunicorn's timeout, the OOM killer) cannot stop the
helper it started; the helper, the forkserver and multiprocessing's resource tracker must
then end by themselves instead of holding their memory (about 150 MB each)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: A caller that starts a read that would take ten minutes, then reports the processes
#: involved: the helper, the forkserver and the resource tracker.
CALLER = """
import json, multiprocessing, sys, threading, time
from multiprocessing import forkserver, resource_tracker
from geo.reading import untrusted

threading.Thread(target=untrusted.run, args=(time.sleep, 600), daemon=True).start()
while not multiprocessing.active_children():
    time.sleep(0.05)
time.sleep(float(sys.argv[1]))
helper = multiprocessing.active_children()[0].pid
print(json.dumps({
    "helper": helper,
    "forkserver": forkserver._forkserver._forkserver_pid,
    "tracker": resource_tracker._resource_tracker._pid,
}), flush=True)
time.sleep(600)
"""


#: A caller that starts the store's GDAL reading helper (a process pool of one, kept for the
#: life of the process), then reports it and the forkserver.
POOL_CALLER = """
import json, os, time
from multiprocessing import forkserver
from geo.store.gpkg import feature_reads

helper = feature_reads._gdal_reader().submit(os.getpid).result()
print(json.dumps({"helper": helper, "forkserver": forkserver._forkserver._forkserver_pid}), flush=True)
time.sleep(600)
"""


def running(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie waiting to be reaped counts as gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return "\nState:\tZ" not in status


def start_caller(settle: float, script: str = CALLER) -> tuple[subprocess.Popen[str], dict[str, int]]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    caller = subprocess.Popen(
        [sys.executable, "-c", script, str(settle)], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True
    )
    assert caller.stdout is not None
    line = caller.stdout.readline()
    assert line, "the caller did not start its read"
    return caller, json.loads(line)


def wait_gone(pids: dict[str, int], patience: float = 30.0) -> dict[str, int]:
    """The processes of ``pids`` still running after ``patience`` seconds (or none, as soon
    as they have all gone)."""
    deadline = time.monotonic() + patience
    while time.monotonic() < deadline:
        left = {name: pid for name, pid in pids.items() if running(pid)}
        if not left:
            return {}
        time.sleep(0.1)
    return {name: pid for name, pid in pids.items() if running(pid)}


@pytest.mark.slow
@pytest.mark.parametrize(
    ("settle", "script"),
    [(0.0, CALLER), (1.0, CALLER), (0.0, POOL_CALLER)],
    ids=["at-once", "while-reading", "store-reading-pool"],
)
def test_killing_the_caller_ends_its_reading_helper_and_the_forkserver(settle, script):
    caller, pids = start_caller(settle, script)
    try:
        assert all(running(pid) for pid in pids.values()), pids
        os.kill(caller.pid, signal.SIGKILL)
        caller.wait()
        left = wait_gone(pids)
        assert caller.stdout is not None
        caller.stdout.close()
    finally:
        for pid in pids.values():  # leave nothing behind, whatever happened
            if running(pid):
                os.kill(pid, signal.SIGKILL)
    assert not left, f"still running after their caller was killed: {left}"


@pytest.mark.slow
def test_a_live_caller_keeps_its_helper():
    # the watch must not end a helper whose caller is still waiting for it
    caller, pids = start_caller(0.0)
    try:
        time.sleep(1.5)
        assert all(running(pid) for pid in pids.values()), pids
    finally:
        os.kill(caller.pid, signal.SIGKILL)
        caller.wait()
        assert caller.stdout is not None
        caller.stdout.close()
        wait_gone(pids)
        for pid in pids.values():
            if running(pid):
                os.kill(pid, signal.SIGKILL)
