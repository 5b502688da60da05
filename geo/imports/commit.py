"""Write a prepared import as one batch in one transaction, or roll the write back (a dry
run): duplicates found, other accounts' features kept, value mappings remembered."""

from __future__ import annotations

import time
from dataclasses import asdict

import numpy as np
import shapely

from geo.errors import Conflict, InputError, StoreError
from geo.figures import versions
from geo.figures.areas import check_grid_keeps_areas, write_units
from geo.figures.versions import load_grid
from geo.imports.grid import preview_grid
from geo.imports.report import ImportReport, PreparedImport, Rejected
from geo.reading.vocab import vocab_key
from geo.registry import grid_spec
from geo.store import clock
from geo.store.base import Store
from geo.store.interface.batches import Batch, batch_kind
from geo.store.interface.features import FeatureRows
from layers.base import UNASSIGNED, LayerSpec


class Duplicate(Exception):
    """Raised inside a write transaction (and caught outside it) when the file to write is
    already the current content of its layer: the transaction is rolled back, nothing changes."""

    def __init__(self, batch_id: int):
        super().__init__(batch_id)
        self.batch_id = batch_id


def commit_import(
    store: Store,
    prepared: PreparedImport,
    user: str | None = None,
    *,
    admin: bool | None = None,
    dry_run: bool = False,
    remember: bool | None = None,
    valid_from: object = None,
    tz: str | None = None,
) -> ImportReport:
    """Write a prepared import as one batch, atomically.

    Everything that decides what is written is decided again inside the write
    transaction, so that imports running at the same moment cannot both pass a check the
    other would fail:

    * a byte-identical file whose batch is still the current content of the layer (see
      :meth:`geo.store.base.Store.find_checksum`) is not written again: the report's status is
      ``"duplicate"`` and ``duplicate_of`` names that batch;
    * rows that would update features last written by another account's batch are
      rejected by row unless the importing account may update any feature (see
      :func:`may_update_any`); the rest of the file is written.

    Replacing the grid makes a new grid version valid from ``valid_from`` (a day, default
    today in the time zone ``tz``; see :mod:`geo.figures.versions`) and assigns every feature row
    version of every layer to it, in the same transaction.

    With ``dry_run`` the write is worked out and never committed (for a survey layer inside
    :meth:`geo.store.base.Store.preview_transaction`, which on PostGIS neither waits for a
    commit under way nor alters the layer's table; the grid's is written and rolled back), so
    the report's added, updated, unchanged and rejected figures are exactly what a commit made
    now would do.
    Value mappings given for the import (``prepared.manual_maps``) are remembered for
    later imports of the layer when ``remember`` -- by default, when the account may update
    any feature (an admin, or the command line: :func:`may_update_any`).

    Parameters
    ----------
    store : Store
    prepared : PreparedImport
        From :func:`geo.imports.importer.prepare_import`; rows in the store's projected CRS (metres).
    user : str, optional
        The importing account (defaults to the one given to :func:`geo.imports.importer.prepare_import`).
    admin : bool, optional
        Whether the importing account is an admin; when not given it is looked up
        (:func:`may_update_any`).
    dry_run : bool
        Write nothing (see above).
    remember : bool, optional
        Whether to remember this import's value mappings (see above).
    """
    report = prepared.report
    report.status, report.duplicate_of = "preview", None  # decided below, inside the transaction
    if valid_from not in (None, "") and not prepared.spec.is_grid:
        raise InputError(
            "生效日期只适用于单元网格",
            "a valid-from date applies to the unit grid only",
            code="bad_valid_from",
        )
    if prepared.spec.is_grid:
        versions.check_valid_from(store, valid_from, tz)  # a clear answer before waiting for the lock
    try:
        # a duplicate is told at once, without waiting for the write lock; a file that is not one
        # is looked for again inside the transaction, where no other write can come in between
        if report.checksum:
            dup = store.find_checksum(prepared.spec.name, report.checksum, prepared.rows.keys)
            if dup is not None:
                raise Duplicate(dup.id)
        # a dry run of a survey layer works out what it would write without writing where the
        # backend can (see Store.preview_transaction); the grid's new version is made to be told
        scope = store.preview_transaction() if dry_run and not prepared.spec.is_grid else store.transaction()
        with scope:
            _commit(store, prepared, user or prepared.user, admin, remember, dry_run, valid_from, tz)
            if dry_run:
                raise _DryRun
    except Duplicate as dup:
        report.status = "duplicate"
        report.duplicate_of = dup.batch_id
    except _DryRun:
        report.status = "preview"
        report.dry_run = True
        report.batch_id = None
        if report.grid_change is not None:
            report.grid_change.version = None  # the version it would make was rolled back with it
    except StoreError as exc:
        # a dry run on a store that cannot be written now still reads and checks the file
        if not dry_run or exc.code not in ("store_busy", "store_read_only"):
            raise
        report.status, report.dry_run, report.batch_id = "preview", True, None
        report.added = report.updated = report.unchanged = report.removed = 0
        report.warnings.append(
            (
                "存储正忙或只读：新增、更新条数未能预先算出（导入时会算）",
                "the store is busy or read-only: the added and updated figures could not be worked out"
                " (the import will)",
            )
        )
        preview_grid(store, prepared, valid_from, tz)
    return report


class _DryRun(Exception):
    """Raised at the end of a dry run's write transaction so that it is rolled back."""


def _commit(
    store: Store,
    prepared: PreparedImport,
    user: str | None,
    admin: bool | None,
    remember: bool | None = None,
    dry_run: bool = False,
    valid_from: object = None,
    tz: str | None = None,
) -> None:
    report = prepared.report
    spec = prepared.spec
    rows = prepared.rows
    day = versions.check_valid_from(store, valid_from, tz) if spec.is_grid else None
    if spec.is_grid:
        check_grid_keeps_areas(store, rows.attrs)
    if store.srs_epsg() is None:
        store.set_srs_epsg(prepared.srs_epsg)
    elif store.srs_epsg() != prepared.srs_epsg:
        raise InputError("存储坐标系已变化，请重新预览", "the store CRS changed: prepare the import again")
    if report.checksum:
        dup = store.find_checksum(spec.name, report.checksum, rows.keys)
        if dup is not None:
            raise Duplicate(dup.id)
    if prepared.unread:  # recognised by its bytes alone and no longer a duplicate: it has no rows
        raise Conflict(
            "该文件的内容在导入前已变化，请重新预览后再导入",
            "what this file would change has changed since it was checked: preview it again, then import",
            code="preview_stale",
        )
    any_owner = may_update_any(store, user, admin)
    rows = keep_own_rows(store, spec, rows, report, user, any_owner)
    rows = keep_area_rows(store, spec, rows, report, user)
    batch = Batch(
        0,
        spec.name,
        report.source_name,
        report.checksum or "",
        clock.now_iso(),
        user,
        "active",
        report.rows_read,
        0,
        0,
        0,
        report.rejected_total,
        report.encoding,
        report.crs,
        batch_kind(spec),
    )
    batch_id = store.new_batch(batch, None if dry_run else prepared.source_files)
    if not spec.is_grid and store.layer_generation(grid_spec()) != prepared.grid_generation:
        # the grid changed since the preview: assign again
        grid = load_grid(store)
        rows.units = grid.assign(rows.geometry) if grid is not None else rows.units
        report.unassigned = int((rows.units == UNASSIGNED).sum())
    previous_grid = load_grid(store) if spec.is_grid else None
    result = store.write_features(spec, batch_id, rows, replace_all=spec.is_grid)
    report.added, report.updated, report.unchanged, report.removed = (
        result.added,
        result.updated,
        result.unchanged,
        result.removed,
    )
    if spec.is_grid:
        assert day is not None
        started = time.perf_counter()
        report.grid_change, report.reassigned = versions.make_version(store, batch_id, day, previous_grid, tz)
        report.timings["reassign"] = round(time.perf_counter() - started, 3)
    elif not dry_run:  # a dry run's units on older grid versions would be rolled back unseen
        versions.assign_new_rows(
            store,
            spec,
            result.fids,
            np.asarray(rows.geometry, dtype=object)[result.rows],
            rows.units[result.rows],
        )
    _update_extent(store, spec, rows)
    if prepared.manual_maps and (any_owner if remember is None else remember):
        report.mappings_remembered = _remember(store, spec, prepared.manual_maps)
    report.batch_id = batch_id
    report.status = "committed"
    store.finish_batch(
        batch_id,
        {
            "added": result.added,
            "updated": result.updated,
            "unchanged": result.unchanged,
            "rejected": report.rejected_total,
            "rows_read": report.rows_read,
        },
        report.to_dict(),
    )


def _remember(store: Store, spec: LayerSpec, entries: list[tuple[str, str, str]]) -> int:
    """Keep value mappings for later imports of ``spec``; returns how many were newly kept (a
    value that is a code's own name needs none; one kept already is not kept again)."""
    kept = 0
    held = {(m.field, m.raw_key): m.code for m in store.value_maps(spec.name)}
    for name, raw, code in entries:
        exact = {vocab_key(w) for st in spec.vocab_fields[name] for w in (st.code, st.label_zh, st.label_en)}
        key = vocab_key(raw)
        if key in exact or held.get((name, key)) == code:  # nothing to remember, or already kept
            continue
        store.save_value_map(spec.name, name, key, raw, code)
        kept += 1
    return kept


def may_update_any(store: Store, user: str | None, admin: bool | None = None) -> bool:
    """Whether an import by ``user`` may update features that other accounts' batches wrote.

    Admins may, and so may imports made without an account (``user`` None, or a name that
    is no account: the command line and the demo, run by whoever holds the store).  Any
    other account may update only the features its own batches last wrote.  ``admin``,
    when given, is taken as the answer for the signed-in account.
    """
    if admin is not None:
        return admin
    if user is None:
        return True
    account = store.get_user(user)
    return account is None or account.role == "admin"


def keep_own_rows(
    store: Store, spec: LayerSpec, rows: FeatureRows, report: ImportReport, user: str | None, any_owner: bool
) -> FeatureRows:
    """``rows`` without those whose survey id is held by a feature another account's batch
    last wrote (features imported without an account count as the admins'); each one left
    out is added to ``report`` as a rejected row naming the survey id and that batch.

    Nothing is left out when ``any_owner`` (see :func:`may_update_any`), for the grid, or
    for a layer without survey ids.  Run it inside the write transaction to decide for
    certain; outside one it tells what a commit would do now.

    Raises
    ------
    InputError
        Every row is left out.
    """
    if any_owner or spec.is_grid or not spec.id_field or len(rows) == 0:
        return rows
    held = store.key_batches(spec, rows.keys)
    theirs = np.zeros(len(rows), dtype=bool)
    batches: list[int] = []
    for i, key in enumerate(rows.keys.tolist()):
        found = held.get(str(key)) if key is not None and key == key else None
        if found is not None and found[1] != user:
            theirs[i] = True
            batches.append(found[0])
    if not theirs.any():
        return rows
    field_spec = next((f for f in spec.fields if f.name == spec.id_field), None)
    label_zh = field_spec.label_zh if field_spec else "编号"
    label_en = field_spec.label_en if field_spec else "survey id"
    numbers = _source_rows(rows, report)
    for i, batch_id in zip(np.flatnonzero(theirs).tolist(), batches, strict=True):
        key = str(rows.keys[i])
        report.reject(
            Rejected(
                int(numbers[i]),
                f"{label_zh}「{key}」的要素由其他账户的批次 {batch_id} 导入，不能覆盖（可由该账户或管理员更新）",
                f"{label_en} '{key}' belongs to batch {batch_id} of another account and cannot be"
                " overwritten (that account or an admin may update it)",
                spec.id_field,
                key,
            )
        )
    return _leave_out(
        rows,
        report,
        theirs,
        (
            "要素属于其他账户的批次，不能覆盖",
            "the feature belongs to another account's batch and cannot be overwritten",
        ),
        spec.id_field,
        (
            f"没有可导入的行：文件中的{label_zh}都属于其他账户的批次，不能覆盖",
            f"no row can be imported: every {label_en} in the file belongs to another account's batch",
        ),
    )


def keep_area_rows(
    store: Store, spec: LayerSpec, rows: FeatureRows, report: ImportReport, user: str | None
) -> FeatureRows:
    """``rows`` without those outside the area account ``user`` is bound to (see
    :func:`geo.figures.areas.write_units`; outside every unit grid is outside too); each one
    left out is added to ``report`` as a rejected row naming its unit.  Nothing is left out for
    the grid or an account that may write everywhere.

    Raises
    ------
    InputError
        Every row is left out (``no_valid_rows``).
    """
    allowed = None if spec.is_grid or len(rows) == 0 else write_units(store, user)
    if allowed is None:
        return rows
    units = [str(u) if u is not None and u == u else UNASSIGNED for u in rows.units.tolist()]
    outside = np.array([u not in allowed for u in units], dtype=bool)
    if not outside.any():
        return rows
    numbers = _source_rows(rows, report)
    for i in np.flatnonzero(outside).tolist():
        unit = units[i]
        where_zh, where_en = (
            ("不在任何单元网格内", "lies in no unit grid")
            if unit == UNASSIGNED
            else (
                f"位于单元网格 {unit}",
                f"lies in unit grid {unit}",
            )
        )
        report.reject(
            Rejected(
                int(numbers[i]),
                f"该行{where_zh}，不在账户 {user} 的区域内",
                f"the row {where_en}, outside the area of account {user}",
                None,
                unit,
                None if rows.keys[i] is None or rows.keys[i] != rows.keys[i] else str(rows.keys[i]),
            )
        )
    return _leave_out(
        rows,
        report,
        outside,
        ("不在账户的区域内", "outside the account's area"),
        None,
        (
            f"没有可导入的行：文件中的行都不在账户 {user} 的区域内",
            f"no row can be imported: every row lies outside the area of account {user}",
        ),
    )


def _leave_out(
    rows: FeatureRows,
    report: ImportReport,
    drop: np.ndarray,
    reason: tuple[str, str],
    field: str | None,
    none_left: tuple[str, str],
) -> FeatureRows:
    """``rows`` without those ``drop`` marks, already added to ``report`` one by one: the report's
    rejected rows put in file order and their count given under ``reason`` (zh, en) for
    ``field``; :class:`InputError` ``none_left`` (zh, en) when no row is left."""
    report.rejected.sort(key=lambda r: r.row)
    report.rejected_by_reason.append(
        {"reason_zh": reason[0], "reason_en": reason[1], "field": field, "count": int(drop.sum())}
    )
    keep = ~drop
    if not keep.any():
        raise InputError(
            *none_left,
            code="no_valid_rows",
            details={"rejected": [asdict(r) for r in report.rejected[:100]]},
        )
    return FeatureRows(
        rows.attrs.loc[keep].reset_index(drop=True),
        rows.geometry[keep],
        rows.keys[keep],
        rows.units[keep],
        None if rows.source_rows is None else rows.source_rows[keep],
        None if rows.wkb is None else rows.wkb[keep],
    )


def _source_rows(rows: FeatureRows, report: ImportReport) -> np.ndarray:
    """1-based record numbers in the source of ``rows``: as read, else worked out from the
    rejected rows when the report lists them all, else positions among the accepted rows."""
    if rows.source_rows is not None:
        return rows.source_rows
    if len(report.rejected) == report.rejected_total:
        rejected = {r.row for r in report.rejected}
        numbers = [i for i in range(1, report.rows_read + 1) if i not in rejected]
        if len(numbers) == len(rows):
            return np.asarray(numbers, dtype=np.int64)
    return np.arange(1, len(rows) + 1, dtype=np.int64)


def _update_extent(store: Store, spec: LayerSpec, rows: FeatureRows) -> None:
    if len(rows):
        minx, miny, maxx, maxy = (float(v) for v in shapely.total_bounds(rows.geometry))
        store.update_extent(spec, (minx, miny, maxx, maxy))
