"""Batch register operations: roll back, and who may; and loading yearly targets."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd

import layers
from geo.errors import Conflict, InputError
from geo.figures import versions
from geo.figures.areas import check_grid_keeps_areas
from geo.figures.hierarchy import load_hierarchy
from geo.figures.tally import metric_names
from geo.imports.commit import Duplicate
from geo.imports.report import ImportReport, Rejected
from geo.reading import untrusted
from geo.reading.datasets import Dataset
from geo.reading.fields import match_fields
from geo.reading.readers import check_content
from geo.reading.tables import read_table_file
from geo.reading.values import parse_numbers
from geo.registry import get_layer
from geo.store import clock
from geo.store.accounts import role_at_least
from geo.store.base import Store
from geo.store.interface.batches import Batch, already_rolled_back
from layers.base import Field, LayerSpec


def rollback(store: Store, batch_id: int, *, drop_edits: bool = False) -> Batch:
    """Undo batch ``batch_id`` completely, in one transaction.

    Its features are taken out and the features it had replaced come back; rolling back
    a grid batch ends its grid version and restores the previous version, every feature
    back in its stored unit on it.  Nothing is erased: the store as it was before the
    rollback stays readable (``known_at``).  Refused (:class:`geo.errors.Conflict`) when a
    later active batch updated its features, when a later grid version is alive (for a
    grid batch), or when it was already rolled back.

    Features edited by hand since (:mod:`geo.edits.edit`) are never dropped silently: the
    refusal lists those edits (``details["edits"]``: batch, account, time, feature ids) -- roll
    them back first -- unless ``drop_edits`` (an admin's choice), which rolls them back too,
    newest first, in the same transaction, each audited.
    """
    with store.transaction():
        # read and checked inside the write transaction: of parallel rollbacks one wins, the
        # others find the batch rolled back
        batch = store.batch(batch_id)
        if batch.status != "active":
            raise already_rolled_back(batch_id)
        store.begin_tx("rollback", batch_id)
        if batch.kind == "targets":
            store.rollback_targets(batch_id)
        else:
            spec = get_layer(batch.layer)
            if spec.is_grid:
                later = [v.id for v in store.grid_versions() if v.id > batch_id and v.alive()]
                if later:
                    ids = ", ".join(str(x) for x in later)
                    raise Conflict(
                        f"网格批次 {ids} 在批次 {batch_id} 之后导入，请先回滚批次 {ids}",
                        f"grid batch {ids} came after batch {batch_id}; roll back batch {ids} first",
                        code="rollback_blocked",
                        details={"blocking_batches": later},
                    )
            _roll_back_layer(store, spec, batch_id, drop_edits)
            if spec.is_grid:
                # the grid that comes back must still hold every code an account is bound to
                check_grid_keeps_areas(store, store.read_attributes(spec))
                store.retire_grid_version(batch_id)
                versions.restore_current_units(store)
        store.mark_rolled_back(batch_id)
    return store.batch(batch_id)


def _roll_back_layer(store: Store, spec: LayerSpec, batch_id: int, drop_edits: bool, depth: int = 0) -> None:
    """Roll the rows of ``batch_id`` back; later edits of them first when ``drop_edits`` (see
    :func:`rollback`), else the refusal lists them."""
    try:
        store.rollback_layer(spec, batch_id)
        return
    except Conflict as exc:
        if exc.code != "rollback_blocked":
            raise
        blocking = [store.batch(int(b)) for b in exc.details.get("blocking_batches", [])]
    edits = [b for b in blocking if b.kind == "edit"]
    if not drop_edits or len(edits) != len(blocking) or depth > 10_000:
        raise _edits_refusal(batch_id, blocking) from None
    for later in sorted(edits, key=lambda b: b.id, reverse=True):
        _roll_back_layer(store, spec, later.id, drop_edits, depth + 1)
        store.mark_rolled_back(later.id)
    store.rollback_layer(spec, batch_id)


def _edits_refusal(batch_id: int, blocking: list[Batch]) -> Conflict:
    """The refusal to roll back ``batch_id`` whose features the live batches ``blocking`` changed
    since, edits listed with their account, time and features."""
    ids = sorted(b.id for b in blocking)
    edits = [
        {
            "batch_id": b.id,
            "user": b.user,
            "created_at": b.created_at,
            "layer": b.layer,
            "feature": b.report.get("feature"),
            "version": b.report.get("version"),
            "changed": b.report.get("changed"),
        }
        for b in sorted(blocking, key=lambda b: b.id)
        if b.kind == "edit"
    ]
    text = ", ".join(str(x) for x in ids)
    if edits:
        features = ", ".join(f"#{e['feature']}" for e in edits)
        zh = (
            f"批次 {batch_id} 的要素之后被编辑过（编辑批次 {text}，要素 {features}），请先回滚这些编辑，"
            "或由管理员选择连同编辑一起回滚"
        )
        en = (
            f"features of batch {batch_id} were edited since (edit batches {text}, features {features}): roll"
            " those edits back first, or an admin may choose to drop them with it"
        )
    else:
        zh = f"批次 {text} 更新了批次 {batch_id} 的要素，请先回滚批次 {text}"
        en = f"batch {text} updated features of batch {batch_id}; roll back batch {text} first"
    return Conflict(zh, en, code="rollback_blocked", details={"blocking_batches": ids, "edits": edits})


def may_roll_back(batch: Batch, user: str | None, role: str | None) -> bool:
    """Whether account ``user`` with ``role`` may roll back ``batch``.

    An admin may roll back any batch; a surveyor only a survey import or edit (kind ``"import"``
    or ``"edit"``) made under their own name -- never the unit grid nor targets; a viewer none.

    Parameters
    ----------
    batch : Batch
        The batch to roll back.
    user : str or None
        The account's name.
    role : str or None
        The account's role (:data:`geo.store.accounts.ROLES`).
    """
    if role_at_least(role, "admin"):
        return True
    return role_at_least(role, "surveyor") and batch.kind in ("import", "edit") and batch.user == user


# --- targets ----------------------------------------------------------------------------------

#: The columns of a targets table, matched like a layer's fields.  Targets are no layer: their
#: batches are of kind ``"targets"``, registered under this name.
TARGET_SPEC = LayerSpec(
    name="targets",
    label_zh="年度目标",
    label_en="Targets",
    geometry_types=frozenset(),
    fields=(
        Field(
            "code",
            "str",
            "编码",
            "Code",
            ("编码", "单元编码", "网格编码", "社区编码", "街道编码", "区划代码", "CODE", "BM"),
        ),
        Field("layer", "str", "图层", "Layer", ("图层", "类别", "LAYER", "TC")),
        Field("metric", "str", "指标", "Metric", ("指标", "指标项", "METRIC", "ZB")),
        Field("target", "float", "目标", "Target", ("目标", "目标值", "任务数", "TARGET", "MB")),
    ),
)


def read_targets(path: Path) -> pd.DataFrame:
    """Targets table from CSV (UTF-8 or GBK) or XLSX, columns as found.

    Read in the reading helper with the same checks and limits as survey tables
    (:func:`geo.reading.tables.read_table_file`, :mod:`geo.reading.untrusted`)."""
    suffix = path.suffix.lower()
    kinds = {".csv": "csv", ".xlsx": "xlsx", ".xlsm": "xlsx"}
    if suffix not in kinds:
        raise InputError(
            "目标表需为 CSV 或 XLSX", "targets must be a CSV or XLSX file", code="unsupported_file"
        )
    return untrusted.run(_read_targets_file, path, kinds[suffix])


def _read_targets_file(path: Path, kind: str) -> pd.DataFrame:
    """Runs in the reading helper."""
    check_content(Dataset(path.name, path, kind))
    frame, _names, _encoding = read_table_file(path, kind, name=path.name)
    return frame


def load_targets(
    store: Store, path: str | Path, *, user: str | None = None, dry_run: bool = False
) -> ImportReport:
    """Load yearly targets (rows: code, layer, metric, target) as one batch.

    Codes may be of any level (unit grid, community, street, district); layers are
    registered survey layers, metrics are ``total``, ``completed`` or a measure column
    stem (``area_m2``, ``area_completed_m2`` …).  A row for an existing
    (code, layer, metric) replaces it; rolling the batch back restores the old value.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"文件不存在: {path}", f"file not found: {path}", code="file_not_found")
    df = read_targets(path)
    report = ImportReport(layer=TARGET_SPEC.name, source_name=path.name)
    data = path.read_bytes()
    report.checksum = hashlib.sha256(data).hexdigest()
    report.rows_read = len(df)
    if len(df) == 0:
        raise InputError("目标表为空", "the targets table is empty", code="empty_file")
    match = match_fields([str(c) for c in df.columns], TARGET_SPEC)
    inverse = {v: k for k, v in match.mapping.items()}
    missing = [f.label_zh for f in TARGET_SPEC.fields if f.name not in inverse]
    if missing:
        raise InputError(
            f"目标表缺少列: {'、'.join(missing)}（需要 编码、图层、指标、目标）",
            "the targets table needs columns code, layer, metric, target",
            code="bad_targets",
        )
    codes = df[inverse["code"]].astype(str).str.strip()
    layer_col = df[inverse["layer"]].astype(str).str.strip()
    metric_col = df[inverse["metric"]].astype(str).str.strip()
    values, bad = parse_numbers(df[inverse["target"]].astype(object))
    hier = load_hierarchy(store)
    known_codes: set[str] = set(hier.grid["code"])
    for lv in hier.level_names[1:]:
        known_codes |= set(hier.grid[hier.code_column(lv)])
    by_label = {}
    for s in layers.survey_layers():
        for key in (s.name, s.label_zh, s.label_en):
            by_label[key.casefold()] = s
    rows = []
    for i in range(len(df)):
        code, lname, metric = codes.iloc[i], layer_col.iloc[i], metric_col.iloc[i]
        spec = by_label.get(lname.casefold())
        reason: tuple[str, str] | None = None
        if spec is None:
            reason = (f"未知图层「{lname}」", f"unknown layer '{lname}'")
        elif metric not in metric_names(spec):
            reason = (
                f"未知指标「{metric}」（可选: {', '.join(metric_names(spec))}）",
                f"unknown metric '{metric}' ({', '.join(metric_names(spec))})",
            )
        elif bool(bad.iloc[i]) or np.isnan(values.iloc[i]) or values.iloc[i] < 0:
            reason = (
                f"目标值「{df[inverse['target']].iloc[i]}」无效",
                f"invalid target '{df[inverse['target']].iloc[i]}'",
            )
        elif known_codes and code not in known_codes:
            reason = (f"编码 {code} 不是已知的网格、社区、街道或区", f"code {code} is not a known unit")
        if reason:
            report.rejected.append(Rejected(i + 1, reason[0], reason[1]))
            continue
        assert spec is not None
        rows.append({"code": code, "layer": spec.name, "metric": metric, "target": float(values.iloc[i])})
    if not rows:
        raise InputError(
            "目标表中没有有效的行",
            "no valid row in the targets table",
            code="no_valid_rows",
            details={"rejected": [r.__dict__ for r in report.rejected[:100]]},
        )
    frame = pd.DataFrame(rows).drop_duplicates(["code", "layer", "metric"], keep="last")
    report.added = len(frame)
    if dry_run:
        report.dry_run = True
        return report
    try:
        with store.transaction():
            _write_targets(store, path, report, frame, user, len(df))
    except Duplicate as dup:
        report.status = "duplicate"
        report.duplicate_of = dup.batch_id
    return report


def _write_targets(
    store: Store, path: Path, report: ImportReport, frame: pd.DataFrame, user: str | None, rows_read: int
) -> None:
    """Write the targets batch; inside the caller's transaction, so that the duplicate check
    and the write cannot be separated by another import of the same file."""
    assert report.checksum is not None
    dup = store.find_checksum(TARGET_SPEC.name, report.checksum)
    if dup is not None:
        raise Duplicate(dup.id)
    batch = Batch(
        0,
        TARGET_SPEC.name,
        path.name,
        report.checksum,
        clock.now_iso(),
        user,
        "active",
        rows_read,
        0,
        0,
        0,
        len(report.rejected),
        None,
        None,
        "targets",
    )
    bid = store.new_batch(batch, [path])
    store.set_targets(frame, bid)
    report.batch_id = bid
    report.status = "committed"
    store.finish_batch(
        bid,
        {"added": len(frame), "rejected": len(report.rejected), "rows_read": rows_read},
        report.to_dict(),
    )
