"""Reading a layer never releases the file locks other connections of the same process hold.

GDAL carries its own copy of SQLite, and POSIX locks belong to the whole process: a GDAL read
of the store inside the server would drop a lock another thread holds, letting a second
process write under it.  Large layers are therefore read through GDAL in a helper process."""

from __future__ import annotations

import subprocess
import sys

import apsw
import pytest

import geo.store.gpkg.feature_reads as feature_reads
from geo.imports.importer import import_file
from tests.helpers.builders import X0, Y0, points_frame, write_shp

TRY_WRITE = """
import sys, apsw
con = apsw.Connection(sys.argv[1])
con.set_busy_timeout(0)
try:
    con.execute("BEGIN IMMEDIATE")
except apsw.BusyError:
    print("blocked")
else:
    con.execute("ROLLBACK")
    print("got the lock")
"""


def _other_process_can_write(path) -> bool:
    out = subprocess.run(
        [sys.executable, "-c", TRY_WRITE, str(path)], capture_output=True, text=True, check=True
    )
    return out.stdout.strip() == "got the lock"


@pytest.mark.slow
@pytest.mark.parametrize("through_gdal", [True, False])
def test_reading_a_layer_keeps_the_locks_of_other_connections(
    gridded_store, tmp_path, monkeypatch, through_gdal
):
    store = gridded_store
    sites = points_frame([(X0 + 50, Y0 - 50), (X0 + 150, Y0 - 150)], 案件编号=["L1", "L2"])
    import_file(store, "demolition", write_shp(sites, tmp_path / "s" / "s.shp"))
    # 0: even this small layer takes the GDAL path, as a large one would
    monkeypatch.setattr(feature_reads, "GDAL_MIN_ROWS", 0 if through_gdal else 10**9)
    # another request of this process, mid-write: it holds the write lock (in WAL a reader's
    # lock would not keep another writer out)
    holder = apsw.Connection(str(store.path))
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("SELECT count(*) FROM gw_batches").fetchall()
    assert not _other_process_can_write(store.path)
    from geo.registry import get_layer

    table = store.read_table(get_layer("demolition"), ["gw_unit"])
    assert table.num_rows == 2
    assert not _other_process_can_write(store.path), "the read released the lock of another connection"
    holder.execute("COMMIT")
    assert _other_process_can_write(store.path)
    holder.close()
