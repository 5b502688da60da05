"""Where an import works: its temporary folder, and for a large file its turn."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

#: Files with more rows than this are cleaned and assigned one at a time in a server
#: process (about 1 KB a row while it happens): several large uploads at once wait for each
#: other instead of adding up.
LARGE_IMPORT_ROWS = 200_000
_LARGE_IMPORTS = threading.BoundedSemaphore(1)


@contextlib.contextmanager
def large_import_slot(rows: int) -> Iterator[None]:
    """Hold the one turn of large imports while a file of ``rows`` rows is cleaned and assigned
    (a file of fewer than :data:`LARGE_IMPORT_ROWS` rows needs none)."""
    if rows < LARGE_IMPORT_ROWS:
        yield
        return
    with _LARGE_IMPORTS:
        yield


WORKDIR_PREFIX = "gridwatch-import-"
#: Work folders older than this were left by a process killed while importing: removed.
STALE_WORKDIR_S = 6 * 3600


def sweep_workdirs() -> None:
    """Remove the work folders of imports whose process was killed (any import ends, one way
    or another, within the reading helper's limits, far sooner than :data:`STALE_WORKDIR_S`)."""
    root = Path(tempfile.gettempdir())
    now = time.time()
    try:
        candidates = list(root.glob(WORKDIR_PREFIX + "*"))
    except OSError:
        return
    for folder in candidates:
        try:
            if folder.is_dir() and not folder.is_symlink() and now - folder.stat().st_mtime > STALE_WORKDIR_S:
                shutil.rmtree(folder, ignore_errors=True)
        except OSError:
            continue


@contextlib.contextmanager
def import_workdir(given: Path | None = None) -> Iterator[Path]:
    """The folder an import unpacks its upload into: ``given``, else a new temporary folder,
    removed afterwards (the stale ones of killed imports are swept first)."""
    if given is not None:
        yield given
        return
    sweep_workdirs()
    work = Path(tempfile.mkdtemp(prefix=WORKDIR_PREFIX))
    try:
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)
