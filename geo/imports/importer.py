"""Import a survey file into a layer: read, check, map, build rows, assign, store -- as one batch.

The pipeline, step by step (each step's module says more):

1. open the upload: unpack it into a work folder (:mod:`geo.reading.sources`,
   :mod:`geo.imports.workspace`);
2. read it in the confined reading helper: check every file is what its name says, choose the
   dataset for the layer, decode the columns it uses (:mod:`geo.imports.dataset`);
3. build the rows: map the file's columns to the layer's fields (:mod:`geo.imports.fields`),
   map and parse their values (:mod:`geo.imports.columns`), check and project the geometry
   (:mod:`geo.imports.geometry`), reject rows with their reason, assign each feature to its
   unit and measure it (:mod:`geo.imports.rows`);
4. commit: write the rows as one batch in one transaction, or roll it back for a dry run
   (:mod:`geo.imports.commit`; a new grid: :mod:`geo.imports.grid`).

:func:`prepare_import` does steps 1--3 and returns the report (the web preview and
``--dry-run`` stop there); :func:`geo.imports.commit.commit_import` is step 4.
:func:`import_file` does them all.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from geo.errors import InputError
from geo.figures.versions import load_grid
from geo.imports import geometry
from geo.imports.columns import manual_mappings, remembered_mappings
from geo.imports.commit import commit_import
from geo.imports.dataset import Picked, read_upload, unpack_frame, unpack_geometry
from geo.imports.grid import preview_grid
from geo.imports.report import ImportReport, PreparedImport, Rejected
from geo.imports.rows import build_rows
from geo.imports.workspace import import_workdir, large_import_slot
from geo.reading import crs as crsmod
from geo.reading import untrusted
from geo.reading.datasets import RawTable
from geo.reading.sources import Source, archive_files, open_source
from geo.reading.untrusted import ReadLimits
from geo.reading.vocab import vocab_key
from geo.reading.zips import ZipLimits
from geo.registry import get_layer, grid_spec
from geo.store.base import Store
from geo.store.interface.features import FeatureRows
from layers.base import LayerSpec


def import_file(
    store: Store,
    layer: str,
    path: str | Path,
    *,
    dry_run: bool = False,
    valid_from: object = None,
    tz: str | None = None,
    **kwargs: Any,
) -> ImportReport:
    """Prepare and (unless ``dry_run``) commit an import; returns the report.

    The steps: :func:`prepare_import` (open the upload, read it in the confined helper, map
    fields and values, check and project the geometry, assign and measure the rows), then
    :func:`geo.imports.commit.commit_import` (write the batch, or roll it back for a dry run).
    ``kwargs`` go to :func:`prepare_import` (``remember`` to the commit).

    ``valid_from`` (grid only): the day the new grid version is in force from (default today
    in the time zone ``tz``, see :mod:`geo.figures.versions`)."""
    user = kwargs.get("user")
    if valid_from not in (None, "") and get_layer(layer).is_grid is False:
        raise InputError(
            "生效日期只适用于单元网格",
            "a valid-from date applies to the unit grid only",
            code="bad_valid_from",
        )
    remember = kwargs.pop("remember", None)
    prepared = prepare_import(store, layer, path, **kwargs)
    if (
        prepared.unread
        and not dry_run
        and store.find_checksum(prepared.spec.name, prepared.report.checksum or "") is None
    ):  # recognised by its bytes, no longer a duplicate a moment later: read it
        prepared = prepare_import(store, layer, path, **{**kwargs, "recognise": False})
    if prepared.report.status == "duplicate" and dry_run:
        prepared.report.dry_run = True
        preview_grid(store, prepared, valid_from, tz)
        return prepared.report
    return commit_import(
        store, prepared, user=user, dry_run=dry_run, remember=remember, valid_from=valid_from, tz=tz
    )


def prepare_import(
    store: Store,
    layer: str,
    path: str | Path,
    *,
    encoding: str | None = None,
    crs: str | None = None,
    member: str | None = None,
    user: str | None = None,
    source_name: str | None = None,
    workdir: Path | None = None,
    limits: ZipLimits | None = None,
    read_limits: ReadLimits | None = None,
    cancelled: Callable[[], bool] | None = None,
    field_map: dict[str, str] | None = None,
    value_map: list[tuple[str, str, str]] | None = None,
    recognise: bool = True,
) -> PreparedImport:
    """Read and check a survey file for ``layer`` without writing anything.

    The file is opened and read in a confined helper process (:mod:`geo.reading.untrusted`);
    ``read_limits`` bounds it and ``cancelled`` (asked while it reads) stops it.

    Parameters
    ----------
    store : Store
        Target store; its grid is used for assignment and its CRS for areas.
    layer : str
        Registered layer name.
    path : path
        The file (zip, shp, gpkg, geojson, kml, csv, xlsx) or a directory.
    encoding : str, optional
        DBF/CSV text encoding override.
    crs : str, optional
        Source CRS override: ``EPSG:4548``, an ESRI name, WKT, or ``gcj02``.
    member : str, optional
        Which dataset to read when the source holds several.
    field_map : dict, optional
        Column of the file → field of the layer, overriding the matching of names
        (:func:`geo.imports.fields.apply_field_map`; ``""`` leaves a column out).
    value_map : list of (field, raw, code), optional
        Value mappings for this import (:func:`geo.imports.columns.manual_mappings`); they win over every
        other rule.  Mappings remembered in the store apply too (see :func:`geo.imports.commit.commit_import`).
    recognise : bool
        Recognise a byte-identical file right after unpacking, before it is read (see
        :func:`_known_file`): its report is a duplicate's and it has no rows
        (``PreparedImport.unread``).  Not when it is to be read in a way asked for
        (``encoding``, ``crs``, ``member``, mappings): then its report says what that gives.
        False reads it whatever it is.

    Returns
    -------
    PreparedImport
        Rows in the store's projected CRS (metres) with their assigned unit, and the report.

    Raises
    ------
    InputError
        The file cannot be used at all (unreadable, wrong layer, unknown CRS, no valid row).
    """
    spec = get_layer(layer)
    manual, manual_list = manual_mappings(spec, value_map)
    remembered = remembered_mappings(store, spec)
    path = Path(path)
    with import_workdir(workdir) as work:
        source = open_source(path, work, limits, name=source_name)
        report = ImportReport(
            layer=spec.name,
            source_name=source.name,
            skipped_files=source.skipped,
            datasets=[d.name for d in source.datasets],
        )
        if recognise and not (field_map or manual_list or encoding or crs or member):
            early = _known_file(store, spec, source, report, path, user)
            if early is not None:
                return early
        choice = crsmod.parse_crs(crs) if crs else None
        grid_generation = store.layer_generation(grid_spec())
        grid = None if spec.is_grid else load_grid(store)
        hint_lon = geometry.store_lon(store)
        picked = _read(
            source, spec, member, encoding, choice, hint_lon, field_map, read_limits, cancelled, report
        )
        with large_import_slot(int(picked.attrs["index"])):
            raw = _unpack(picked, report)
            srs = store.srs_epsg() or geometry.choose_srs(raw)
            report.store_crs = f"EPSG:{srs}"
            rows = build_rows(
                spec, raw, srs, grid, report, field_map=field_map, manual=manual, remembered=remembered
            )
            del raw, picked
        report.checksum = _checksum(source, report)
        _find_duplicate(store, spec, report)
        return PreparedImport(
            spec, report, rows, srs, path, archive_files(path), user, grid_generation, manual_list
        )


def _read(
    source: Source,
    spec: LayerSpec,
    member: str | None,
    encoding: str | None,
    choice: crsmod.CRSChoice | None,
    hint_lon: float | None,
    field_map: dict[str, str] | None,
    read_limits: ReadLimits | None,
    cancelled: Callable[[], bool] | None,
    report: ImportReport,
) -> Picked:
    """Check, choose and read the dataset for ``spec`` in the confined reading helper."""
    started = time.perf_counter()
    limits_used = untrusted.effective_limits(read_limits)
    picked = untrusted.run(
        read_upload,
        source.datasets,
        spec,
        member,
        encoding,
        choice,
        hint_lon,
        geometry.MAX_FILE_VERTICES,
        limits_used.max_rows,
        field_map,
        limits=limits_used,
        cancelled=cancelled,
    )
    report.timings["read"] = round(time.perf_counter() - started, 3)
    report.datasets = picked.datasets
    report.dataset = picked.dataset.name
    return picked


def _unpack(picked: Picked, report: ImportReport) -> RawTable:
    """The table the reading helper sent back, as it was read; how it was read noted in ``report``."""
    raw = picked.table
    raw.geometry = unpack_geometry(raw.geometry)
    raw.attrs = unpack_frame(picked.attrs)
    report.encoding, report.encoding_source = raw.encoding, raw.encoding_source
    report.crs, report.crs_source = raw.crs_label, raw.crs_source
    report.warnings.extend(raw.warnings)
    return raw


def _checksum(source: Source, report: ImportReport) -> str:
    """What the file is: its bytes, and the dataset and mappings it was read with."""
    checksum = source.checksum
    if len(report.datasets) > 1:  # which of the file's datasets was imported is part of what it is
        checksum = hashlib.sha256(f"{source.checksum}\0{report.dataset}".encode()).hexdigest()
    if report.field_overrides or any(
        v["how"] in ("manual", "remembered") for e in report.value_mappings for v in e["values"]
    ):
        # the same file read with other mappings gives other rows: it is no duplicate of the first
        checksum = hashlib.sha256(f"{checksum}\0{_mapping_digest(report)}".encode()).hexdigest()
    return checksum


def _known_file(
    store: Store, spec: LayerSpec, source: Source, report: ImportReport, path: Path, user: str | None
) -> PreparedImport | None:
    """A duplicate's prepared import when the file's bytes alone show that it is one, else None.

    The bytes' checksum is a batch's whole checksum only when that file was read without field
    or value mappings applying (``_checksum``), so this is tried only when none can apply now
    (none given, none remembered for the layer).  A live batch of those bytes is current for
    certain, without the file's survey ids, only when it left no row unchanged (a row it
    repeated unchanged could have been updated later without the batch being superseded), so
    otherwise the file is read.  Not for the unit grid (its preview compares the file's units).
    """
    if spec.is_grid or store.value_maps(spec.name):
        return None
    dup = store.find_checksum(spec.name, source.checksum)
    if dup is None or dup.unchanged != 0:
        return None
    _as_read_before(report, dup.report)
    report.checksum = source.checksum
    report.status = "duplicate"
    report.duplicate_of = dup.id
    empty = FeatureRows(
        pd.DataFrame(),
        np.empty(0, dtype=object),
        np.empty(0, dtype=object),
        np.empty(0, dtype=object),
    )
    srs = store.srs_epsg() or 0
    return PreparedImport(
        spec,
        report,
        empty,
        srs,
        path,
        archive_files(path),
        user,
        store.layer_generation(grid_spec()),
        unread=True,
    )


#: What a duplicate's report takes from the report of the batch that imported the same bytes.
_READ_BEFORE = (
    "dataset",
    "rows_read",
    "rejected_by_reason",
    "unassigned",
    "encoding",
    "encoding_source",
    "crs",
    "crs_source",
    "store_crs",
    "field_mapping",
    "value_mappings",
    "unmatched_fields",
    "missing_fields",
)


def _as_read_before(report: ImportReport, before: dict[str, Any]) -> None:
    """Fill ``report`` with what reading the same bytes found then (the batch's own report), so
    a duplicate recognised before it is read shows the same figures as one that was read."""
    try:
        for name in _READ_BEFORE:
            if name in before:
                setattr(report, name, before[name])
        for r in before.get("rejected") or ():
            report.reject(Rejected(**r))
        report.rejected_total = int(before.get("rejected_count", report.rejected_total))
    except (TypeError, ValueError):  # a report of another version: the figures stay unknown (0)
        return


def _find_duplicate(store: Store, spec: LayerSpec, report: ImportReport) -> None:
    """Mark ``report`` a duplicate when the same file is the current content of the layer."""
    assert report.checksum is not None
    dup = store.find_checksum(spec.name, report.checksum)
    if dup is not None:
        report.status = "duplicate"
        report.duplicate_of = dup.id


def _mapping_digest(report: ImportReport) -> str:
    """What the field and value mappings made of a file, as one canonical text."""
    decided = sorted(
        (e["field"], vocab_key(v["raw"] or ""), v["code"] or "")
        for e in report.value_mappings
        for v in e["values"]
        if v["how"] in ("manual", "remembered")
    )
    return json.dumps([sorted(report.field_overrides.items()), decided], ensure_ascii=False)
