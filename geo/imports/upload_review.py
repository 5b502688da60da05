"""A staged upload reviewed and confirmed: :func:`preview` reads it again (with other settings
when asked) and makes the write only to roll it back, so its report says exactly what
:func:`commit` would do, and keeps the rows it prepared (:mod:`geo.imports.upload_prepared`);
:func:`commit` writes those rows as one batch -- or reads the file again when they no
longer hold (the layer's declaration, its value mappings or the file changed; a new grid
only assigns the rows again)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from geo.errors import Conflict, InputError
from geo.imports import upload_prepared
from geo.imports.commit import commit_import
from geo.imports.grid import preview_grid
from geo.imports.report import ImportReport
from geo.imports.upload_features import FEATURES_FILE, keep_features
from geo.imports.upload_folder import locked, staging_failed
from geo.imports.uploads import (
    check_mapping_params,
    prepare_staged,
    read_settings,
    staged_folder,
    write_settings,
)
from geo.reading.zips import ZipLimits
from geo.registry import get_layer
from geo.store.base import Store


def preview(
    store: Store,
    data_dir: Path,
    upload_id: str,
    limits: ZipLimits | None = None,
    *,
    user: str | None = None,
    admin: bool | None = None,
    valid_from: str | None = None,
    tz: str | None = None,
    **overrides: Any,
) -> ImportReport:
    """The import report of a staged upload (nothing is written).

    ``overrides`` may change ``layer``, ``encoding``, ``crs``, ``member``, ``field_map``
    (column → field), ``value_map`` (``[field, raw, code]`` triples) or ``remember`` for a
    re-read; they are kept for the commit once the re-read succeeded (a re-read that fails
    leaves the upload as it was).  The write is made and rolled back
    (:func:`geo.imports.commit.commit_import` with ``dry_run``), so the added, updated, unchanged
    and rejected figures -- rows that would update features of another account's batch
    included -- are exactly what the commit would do now.  For the unit grid the report
    says which units the file adds, removes and reshapes, the features that would change
    unit and the day its version would be in force from (``valid_from``, default today in
    the time zone ``tz``), checked as the commit checks it.
    """
    folder = staged_folder(data_dir, upload_id)
    with locked(folder, upload_id, "preview"):
        params = read_settings(folder, upload_id)
        changed = {k: v for k, v in overrides.items() if k in _OVERRIDES and v is not None}
        changed = {
            k: (v or None) if k in ("layer", "encoding", "crs", "member") else v for k, v in changed.items()
        }
        check_mapping_params(changed)
        wanted = {**params, **changed}
        if wanted.get("layer") != params.get("layer"):  # mappings belong to the layer they were made for
            for key in ("field_map", "value_map"):
                if key not in changed:
                    wanted.pop(key, None)
        spec = get_layer(str(wanted.get("layer")))
        made_from = upload_prepared.sources(store, spec)  # before the read: a change meanwhile shows
        prepared = prepare_staged(store, folder, wanted, limits=limits)
        report = prepared.report
        state = upload_prepared.report_state(report)  # before the dry run adds to it
        if valid_from is not None and not prepared.spec.is_grid:
            raise InputError(
                "生效日期只适用于单元网格",
                "a valid-from date applies to the unit grid only",
                code="bad_valid_from",
            )
        if report.status != "duplicate":
            commit_import(
                store,
                prepared,
                user=user,
                admin=admin,
                dry_run=True,
                remember=_remember(wanted, admin),
                valid_from=valid_from,
                tz=tz,
            )
        else:
            preview_grid(store, prepared, valid_from, tz)
        try:
            if wanted != params:
                (folder / FEATURES_FILE).unlink(missing_ok=True)  # never features of other settings
                upload_prepared.drop(folder)  # nor rows
                write_settings(folder, wanted)
            keep_features(folder, prepared)
            if report.status != "duplicate":
                upload_prepared.keep_prepared(folder, wanted, prepared, state, made_from)
        except OSError as exc:
            raise staging_failed(exc) from exc
    return report


#: Settings of a staged upload a re-read may change.
_OVERRIDES = ("layer", "encoding", "crs", "member", "field_map", "value_map", "remember")


def _remember(params: dict[str, Any], admin: bool | None) -> bool | None:
    """Remember the upload's value mappings: an admin's, unless the form said not to."""
    if admin is False:
        return False
    remember = params.get("remember")
    return None if remember is None else bool(remember)


def commit(
    store: Store,
    data_dir: Path,
    upload_id: str,
    user: str | None = None,
    limits: ZipLimits | None = None,
    *,
    admin: bool | None = None,
    valid_from: str | None = None,
    tz: str | None = None,
) -> ImportReport:
    """Import a staged upload as one batch and remove it from the staging area.

    The upload is locked while it is read and written: a second commit, a re-read or a
    discard meanwhile get :class:`geo.imports.upload_folder.UploadBusy`.  ``admin`` tells whether ``user`` is an
    admin, ``valid_from`` (grid only) the day the grid version is in force from (see
    :func:`geo.imports.commit.commit_import`).

    Raises
    ------
    Conflict
        ``duplicate``: the file is the current content of a live batch (for instance a
        second staging of a file committed meanwhile); nothing was written and the staged
        upload is removed.
    """
    folder = staged_folder(data_dir, upload_id)
    with locked(folder, upload_id, "commit"):
        params = read_settings(folder, upload_id)
        prepared = upload_prepared.kept_prepared(store, folder, params, user)
        if prepared is None:  # no preview kept its rows, or they no longer hold: read the file
            prepared = prepare_staged(store, folder, params, user=user, limits=limits)
        if (
            prepared.unread
            and store.find_checksum(prepared.spec.name, prepared.report.checksum or "") is None
        ):
            # recognised by its bytes at the preview, no longer a duplicate: it must be read now
            prepared = prepare_staged(store, folder, params, user=user, limits=limits, recognise=False)
        report = commit_import(
            store,
            prepared,
            user=user,
            admin=admin,
            remember=_remember(params, admin),
            valid_from=valid_from,
            tz=tz,
        )
        shutil.rmtree(folder, ignore_errors=True)
    if report.status == "duplicate":
        raise Conflict(
            f"文件已导入过（批次 {report.duplicate_of}），未重复写入",
            f"this file is already imported (batch {report.duplicate_of}): nothing was written again",
            code="duplicate",
            details={"duplicate_of": report.duplicate_of},
        )
    return report
