"""The rows a preview prepared, kept beside the staged upload so that the commit writes them
instead of reading, cleaning and assigning the whole file a second time.

:func:`keep_prepared` writes them into the staged folder (``prepared.arrow``: the layer's
fields, the geometry as WKB in the store's CRS, survey ids, units and record numbers) with a
stamp beside it (``prepared.json``): the file's checksum, the upload's settings, and what
the rows were made from -- the layer's declaration, its remembered value mappings, the
store's CRS, the grid's generation and the coordinate hint taken from it.
:func:`kept_prepared` gives them back to the commit only when all of that still holds.

What changed in between decides:

* the grid: the rows are kept and only their units are assigned again (the commit does that
  whenever the grid's generation moved, :func:`geo.imports.commit.commit_import`) -- unless
  the file's CRS was inferred and the grid's middle, which chose its zone, moved too;
* the layer's declaration, its remembered value mappings, the store's CRS, the settings or
  the kept files themselves (changed, cut short, unreadable): the file is read again, as a
  commit without a preview would.  Recomputing rather than refusing with 409 is what the
  commit did before rows were kept, so the commit writes what the file gives *now* and its
  report (returned to whoever commits) says so; a refusal would only send the surveyor
  round again to get the same result;
* features of the layer written by another commit: nothing to redo -- the rows do not
  depend on them.  The commit decides added, updated and unchanged again inside its write
  transaction (and duplicates and other accounts' features), so the preview's figures are
  what would have happened then and the commit's report tells what happened.

Only the server writes the two files, into the staged folder (removed with it); the stamp
holds the SHA-256 of the rows file and of itself, so a file changed or cut short is never
used.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import secrets
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.feather as feather
import shapely

from geo.errors import GridwatchError
from geo.imports import geometry
from geo.imports.columns import remembered_mappings
from geo.imports.report import ImportReport, PreparedImport, Rejected
from geo.reading.sources import archive_files
from geo.registry import get_layer, grid_spec
from geo.store.base import Store
from geo.store.interface.features import FeatureRows
from layers.base import LayerSpec

#: The rows of the last preview (Arrow IPC / Feather).
PREPARED_FILE = "prepared.arrow"
#: What they were made from and their checksum (JSON).
PREPARED_STAMP = "prepared.json"
#: Bumped whenever what is kept or how it is made changes: older kept rows are read again.
FORMAT = 2  # 2: the geometry kept as the 2D ISO WKB the GeoPackage writer stores

_WKB, _KEY, _UNIT, _ROW = "__gw_wkb", "__gw_key", "__gw_unit", "__gw_row"


def sources(store: Store, spec: LayerSpec) -> dict[str, Any]:
    """What rows prepared now for ``spec`` are made from, besides the file and its settings.

    Taken *before* the file is read, so that a change while it is read makes the stamp
    differ (and the commit read it again) rather than pass unnoticed."""
    return {
        "layer": spec.name,
        "spec": _digest(dataclasses.asdict(spec)),
        "value_maps": _digest(remembered_mappings(store, spec)),
        "store_srs": store.srs_epsg(),
        "hint_lon": geometry.store_lon(store),
    }


def keep_prepared(
    folder: Path,
    params: dict[str, Any],
    prepared: PreparedImport,
    report: dict[str, Any],
    made_from: dict[str, Any],
) -> bool:
    """Keep ``prepared``'s rows beside the staged file; False when they cannot be (then the
    commit reads the file again).

    ``report`` is ``prepared.report`` as :func:`geo.imports.importer.prepare_import` made it
    (:func:`report_state`, taken before a dry run adds to it); ``made_from`` is what
    :func:`sources` said before the file was read with the settings ``params``."""
    drop(folder)
    rows = prepared.rows
    try:
        table = pa.Table.from_pandas(rows.attrs, preserve_index=False)
        # the WKB the GeoPackage writer stores (2D, ISO, little-endian): the commit hands it on
        wkb = shapely.to_wkb(
            rows.geometry, byte_order=1, flavor="iso", include_srid=False, output_dimension=2
        )
        table = table.append_column(_WKB, pa.array(list(wkb), type=pa.binary()))
        table = table.append_column(_KEY, pa.array(list(rows.keys), type=pa.string(), from_pandas=True))
        table = table.append_column(_UNIT, pa.array(list(rows.units), type=pa.string(), from_pandas=True))
        if rows.source_rows is not None:
            table = table.append_column(_ROW, pa.array(np.asarray(rows.source_rows, dtype=np.int64)))
    except (pa.ArrowException, TypeError, ValueError):
        return False  # a column Arrow cannot hold as it is: the commit reads the file again
    part = folder / f".{PREPARED_FILE}.{secrets.token_hex(4)}"
    try:
        feather.write_feather(table, part, compression="uncompressed")
        stamp = {
            "format": FORMAT,
            "rows_sha256": _sha256_file(part),
            "settings": _digest(params),
            "staged": _file_id(folder / params["name"]),
            "srs_epsg": prepared.srs_epsg,
            "grid_generation": prepared.grid_generation,
            "manual_maps": [list(m) for m in prepared.manual_maps],
            "columns": list(rows.attrs.columns),
            "report": report,
            **made_from,
        }
        stamp["stamp_sha256"] = _digest(stamp)
        _write_json(folder, stamp)
        os.replace(part, folder / PREPARED_FILE)
    except (OSError, TypeError, ValueError):
        part.unlink(missing_ok=True)
        drop(folder)
        return False
    return True


def kept_prepared(
    store: Store, folder: Path, params: dict[str, Any], user: str | None = None
) -> PreparedImport | None:
    """The rows the last preview kept for the settings ``params``, ready to commit; None
    when there are none or they may no longer be used (see the module's text): then the
    file is to be read again."""
    try:
        stamp = json.loads((folder / PREPARED_STAMP).read_text(encoding="utf-8"))
        if not isinstance(stamp, dict) or stamp.pop("stamp_sha256", None) != _digest(stamp):
            return None
        spec = get_layer(params["layer"])
        if (
            stamp.get("format") != FORMAT
            or stamp.get("settings") != _digest(params)
            or stamp.get("staged") != _file_id(folder / params["name"])
            or stamp.get("layer") != spec.name
            or (
                store.layer_generation(grid_spec()) != stamp["grid_generation"]
                and not _same_hint(store, stamp)
            )
        ):
            return None
        now = sources(store, spec)
        if any(stamp.get(k) != v for k, v in now.items() if k != "hint_lon"):
            return None  # the declaration, the value mappings or the store's CRS changed
        path = folder / PREPARED_FILE
        if _sha256_file(path) != stamp["rows_sha256"]:
            return None  # changed or cut short
        table = feather.read_table(path, memory_map=False)
        columns = list(stamp["columns"])
        attrs = table.select(columns).to_pandas()
        attrs.columns = columns
        wkb = table.column(_WKB).to_numpy(zero_copy_only=False)
        rows = FeatureRows(
            attrs,
            shapely.from_wkb(wkb),
            np.asarray(table.column(_KEY).to_pylist(), dtype=object),
            np.asarray(table.column(_UNIT).to_pylist(), dtype=object),
            table.column(_ROW).to_numpy() if _ROW in table.column_names else None,
            wkb,
        )
        report = _report(stamp["report"])
        source = folder / params["name"]
        return PreparedImport(
            spec,
            report,
            rows,
            int(stamp["srs_epsg"]),
            source,
            archive_files(source),
            user,
            str(stamp["grid_generation"]),
            [(str(f), str(r), str(c)) for f, r, c in stamp["manual_maps"]],
        )
    except (OSError, ValueError, KeyError, TypeError, pa.ArrowException, shapely.errors.ShapelyError):
        return None  # missing, damaged or of another version: read the file again
    except GridwatchError:
        return None  # an unknown layer, a busy store ...: reading again says what is wrong


def drop(folder: Path) -> None:
    """Remove the kept rows (a new preview with other settings, or before keeping new ones)."""
    for name in (PREPARED_FILE, PREPARED_STAMP):
        with contextlib.suppress(OSError):
            (folder / name).unlink()


def report_state(report: ImportReport) -> dict[str, Any]:
    """``report`` as plain data, to be made again by the commit."""
    state = dataclasses.asdict(report)
    state["grid_change"] = None  # made by the commit (and by a preview's dry run)
    return state


def _report(state: dict[str, Any]) -> ImportReport:
    known = {f.name for f in dataclasses.fields(ImportReport)}
    values = {k: v for k, v in state.items() if k in known}
    values["rejected"] = [Rejected(**r) for r in values.get("rejected", [])]
    values["warnings"] = [(str(zh), str(en)) for zh, en in values.get("warnings", [])]
    values["grid_change"] = None
    return ImportReport(**values)


def _same_hint(store: Store, stamp: dict[str, Any]) -> bool:
    """Whether the rows read with the coordinate hint the grid gave then are what it gives now:
    the hint (the grid's middle) only counts for a CRS inferred from the coordinates."""
    if stamp["report"].get("crs_source") != "inferred":
        return True
    return bool(geometry.store_lon(store) == stamp.get("hint_lon"))


def _digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, ensure_ascii=True, default=_plain)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def _plain(value: Any) -> Any:
    if isinstance(value, set | frozenset):
        return sorted(value, key=repr)
    return repr(value)


def _file_id(path: Path) -> list[int]:
    st = path.stat()
    return [st.st_size, st.st_mtime_ns, st.st_ino]


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _write_json(folder: Path, stamp: dict[str, Any]) -> None:
    part = folder / f".{PREPARED_STAMP}.{secrets.token_hex(4)}"
    try:
        with open(part, "w", encoding="utf-8") as out:
            json.dump(stamp, out, ensure_ascii=True)
        os.replace(part, folder / PREPARED_STAMP)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
