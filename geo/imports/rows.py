"""The rows of an import, built from the table read in the reading helper (:func:`build_rows`):
fields mapped, values mapped and parsed, geometry checked and projected, rows rejected with
their reason, features assigned to their unit and measured."""

from __future__ import annotations

from dataclasses import asdict

import numpy as np
import pandas as pd
import shapely

from geo.assign import Grid
from geo.errors import CRSError, InputError
from geo.imports.columns import map_values, report_value_tables
from geo.imports.fields import map_fields
from geo.imports.geometry import FAR_OUTSIDE_M, clean_geometry, far_outside
from geo.imports.report import ImportReport, RowRejects
from geo.reading.datasets import RawTable
from geo.store import clock
from geo.store.interface.features import FeatureRows
from layers.base import UNASSIGNED, LayerSpec


def build_rows(
    spec: LayerSpec,
    raw: RawTable,
    srs: int,
    grid: Grid | None,
    report: ImportReport,
    *,
    field_map: dict[str, str] | None = None,
    manual: dict[str, dict[str, str]] | None = None,
    remembered: dict[str, dict[str, str]] | None = None,
) -> FeatureRows:
    """The rows of ``raw`` to write to layer ``spec``, each step noted in ``report``.

    Parameters
    ----------
    spec : LayerSpec
    raw : RawTable
        The table read (geometry in its own CRS, ``raw.crs``).
    srs : int
        EPSG code of the store's projected CRS (metres): the rows' geometry is projected to it.
    grid : Grid, optional
        The unit grid (in the store's CRS) the rows are assigned to; None for the grid itself,
        or when no grid is loaded yet.
    report : ImportReport
    field_map, manual, remembered : dict, optional
        Columns to fields (:func:`geo.imports.fields.apply_field_map`) and value mappings
        (:func:`geo.imports.columns.map_values`).

    Returns
    -------
    FeatureRows
        The accepted rows, geometry in the store's CRS, with their unit and record number.

    Raises
    ------
    InputError
        The file holds no feature, its columns match no field, or every row is rejected.
    CRSError
        Most features lie far from the grid: the CRS is wrong.
    """
    n = _count_rows(raw, report)
    match = map_fields(spec, raw, report, field_map)
    reject = RowRejects(n)
    out, vocab_results = map_values(spec, raw, match, reject, manual or {}, remembered or {})
    _check_dates(spec, out, report)
    geoms = clean_geometry(spec, raw, srs, report, reject)
    _reject_far(grid, geoms, reject)
    keys = _check_ids(spec, out, reject)
    ok = _accepted(spec, out, reject, report)
    attrs = out.loc[ok].reset_index(drop=True)
    _check_completion_dates(spec, attrs, report)
    report_value_tables(spec, vocab_results, ok, report)
    geoms = geoms[ok]
    keys = keys[ok]
    units = _assign(spec, attrs, geoms, grid, report)
    _measure(spec, attrs, geoms, report)
    return FeatureRows(attrs, geoms, keys, units, np.flatnonzero(ok) + 1)


def _count_rows(raw: RawTable, report: ImportReport) -> int:
    n = len(raw.attrs)
    report.rows_read = n
    if n == 0:
        raise InputError("文件中没有任何要素", "the file holds no features", code="empty_layer")
    return n


def _check_dates(spec: LayerSpec, out: pd.DataFrame, report: ImportReport) -> None:
    """Warn of rows completed before they were found, and of dates after today (both are
    refused in an edit, :mod:`geo.edits.edit`)."""
    today = clock.today().isoformat()
    dated = [f.name for f in spec.fields if f.kind == "date" and f.name in out.columns]
    if dated:
        later = np.zeros(len(out), dtype=bool)
        for name in dated:
            col = out[name].astype(object)
            later |= (col.notna() & (col.where(col.notna(), "").astype(str).str[:10] > today)).to_numpy()
        if later.any():
            report.warnings.append(
                (
                    f"{int(later.sum())} 行的日期晚于今天（{today}），请核对",
                    f"{int(later.sum())} rows have a date after today ({today}): check them",
                )
            )
    if spec.found_field and spec.completed_field:
        fo = out[spec.found_field]
        do = out[spec.completed_field]
        both = fo.notna() & do.notna()
        early = both & (do.astype(object).where(both, "") < fo.astype(object).where(both, ""))
        if early.any():
            report.warnings.append(
                (
                    f"{int(early.sum())} 行的完成日期早于发现日期",
                    f"{int(early.sum())} rows have a completion date before the found date",
                )
            )


def _reject_far(grid: Grid | None, geoms: np.ndarray, reject: RowRejects) -> None:
    """Reject the rows far from the grid; refuse the file when most of them are."""
    if grid is None:
        return
    live = np.flatnonzero(reject.ok())
    far = np.zeros(len(geoms), dtype=bool)
    far[live] = far_outside(grid, geoms[live])
    if len(live) and far.sum() > 0.5 * len(live):
        raise CRSError(
            f"{int(far.sum())} 个要素距网格超过 {FAR_OUTSIDE_M / 1000:.0f} 公里，坐标系可能不对，请检查或用 --crs 指定",
            f"{int(far.sum())} features lie over {FAR_OUTSIDE_M / 1000:.0f} km from the grid: the CRS is probably "
            "wrong; check it or pass --crs",
            code="far_outside",
        )
    reject(
        far,
        f"距网格范围超过 {FAR_OUTSIDE_M / 1000:.0f} 公里，坐标可能有误",
        f"more than {FAR_OUTSIDE_M / 1000:.0f} km from the grid: coordinates probably wrong",
    )


def _check_ids(spec: LayerSpec, out: pd.DataFrame, reject: RowRejects) -> np.ndarray:
    """The rows' survey ids (None without an id field); a repeated id, and a grid cell without
    a code, are rejected."""
    keys = np.full(len(out), None, dtype=object)
    if spec.id_field:
        ids = out[spec.id_field]
        keys = ids.to_numpy(dtype=object)
        seen: dict[str, int] = {}
        for i, k in enumerate(keys):
            if k is None or reject.reasons[i] is not None:
                continue
            if k in seen:
                reject.reasons[i] = (
                    f"编号「{k}」与第 {seen[k] + 1} 行重复",
                    f"id '{k}' repeats row {seen[k] + 1}",
                    spec.id_field,
                    str(k),
                )
            else:
                seen[k] = i
        if spec.is_grid:
            reject(ids.isna().to_numpy(), "网格编码为空", "empty grid code", spec.id_field)
    return keys


def _accepted(spec: LayerSpec, out: pd.DataFrame, reject: RowRejects, report: ImportReport) -> np.ndarray:
    """The rows accepted, the rejected ones put in ``report``; refuses a file without any."""
    survey_ids = out[spec.id_field] if spec.id_field else None
    ok = reject.add_to(report, survey_ids)
    if not ok.any():
        n = len(ok)
        first = report.rejected[0]
        raise InputError(
            f"没有可导入的行（共 {n} 行全部被拒绝，例如第 {first.row} 行: {first.reason_zh}）",
            f"no row can be imported (all {n} rejected, e.g. row {first.row}: {first.reason_en})",
            code="no_valid_rows",
            details={"rejected": [asdict(r) for r in report.rejected[:100]]},
        )
    return ok


def _check_completion_dates(spec: LayerSpec, attrs: pd.DataFrame, report: ImportReport) -> None:
    """Count, and warn of, completed features without a completion date."""
    if spec.status_field and spec.completed_field:
        done = attrs[spec.status_field].isin(list(spec.completed_statuses))
        missing_date = done & attrs[spec.completed_field].isna()
        report.completed_undated = int(missing_date.sum())
        if missing_date.any():
            label = spec.field(spec.completed_field)
            report.warnings.append(
                (
                    f"{report.completed_undated} 个已完成要素没有{label.label_zh}：按导入当天计为完成，"
                    f"统计中另列为「已完成（无完成日期）」，逐月图中单独标出",
                    f"{report.completed_undated} completed features have no completion date"
                    f" ({label.label_en.lower()}): they count"
                    " as completed from the day of the import, shown apart in the statistics (completed,"
                    " undated) and marked in the monthly chart",
                )
            )


def _assign(
    spec: LayerSpec, attrs: pd.DataFrame, geoms: np.ndarray, grid: Grid | None, report: ImportReport
) -> np.ndarray:
    """The unit of each row: its own code for the grid, else the grid cell it falls in."""
    if spec.is_grid:
        units = attrs[str(spec.id_field)].to_numpy(dtype=object)
        # upper levels take a unit grid's code prefix unless the grid gives their codes
        digits = spec.levels[0].code_digits if spec.levels else None
        bad_codes = [c for c in units if not (isinstance(c, str) and len(c) == digits and c.isdigit())]
        if bad_codes and digits is not None:
            report.warnings.append(
                (
                    f"{len(bad_codes)} 个网格编码不是 {digits} 位数字（如 {bad_codes[0]}），上级汇总需用社区/街道编码字段",
                    f"{len(bad_codes)} grid codes are not {digits} digits (e.g. {bad_codes[0]}): roll-ups need explicit code fields",
                )
            )
    elif grid is not None:
        units = grid.assign(geoms)
    else:
        units = np.full(len(geoms), UNASSIGNED, dtype=object)
        report.warnings.append(
            (
                "尚未导入单元网格，要素暂计入「未落入网格」",
                "no unit grid loaded yet: features count as UNASSIGNED",
            )
        )
    report.unassigned = int((units == UNASSIGNED).sum()) if not spec.is_grid else 0
    return units


def _measure(spec: LayerSpec, attrs: pd.DataFrame, geoms: np.ndarray, report: ImportReport) -> None:
    """Count the polygons whose area will be measured from their geometry (none was given)."""
    for m in spec.measures:
        if m.from_geometry:
            empty = attrs[m.field].isna().to_numpy() & np.isin(shapely.get_type_id(geoms), (3, 6))
            report.areas_from_geometry += int(empty.sum())
