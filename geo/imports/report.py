"""What an import read, did and refused: :class:`ImportReport`, its :class:`Rejected` rows,
and a :class:`PreparedImport` waiting to be committed."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from geo.figures import versions
from geo.store.interface.features import FeatureRows
from layers.base import LayerSpec

#: An import report lists at most this many rejected rows (all are counted, and counted by
#: reason): a file of a million broken rows must not make a report of a hundred megabytes.
MAX_REPORTED_REJECTS = 1000
#: A report's value table lists at most this many distinct values per field, most frequent
#: first (the rest are counted).
MAX_MAPPED_VALUES = 200
#: A report names at most this many of a file's columns.
MAX_COLUMNS_LISTED = 100
#: Values quoted in a report are cut to this many characters.
MAX_REPORTED_VALUE = 100
#: ... and to this many inside the reason's sentence.
MAX_QUOTED_VALUE = 40


def truncate(value: str | None, limit: int = MAX_REPORTED_VALUE) -> str | None:
    """``value`` cut to ``limit`` characters (with an ellipsis when cut)."""
    if value is None or len(value) <= limit:
        return value
    return value[: limit - 1] + "…"


@dataclass
class Rejected:
    """A row that was not imported, with the reason in both languages."""

    row: int  # 1-based record number in the source
    reason_zh: str
    reason_en: str
    field: str | None = None
    value: str | None = None
    survey_id: str | None = None  # the row's survey id (case id, point id ...) when it has one


@dataclass
class ImportReport:
    """What an import read, did and refused."""

    layer: str
    source_name: str
    dataset: str | None = None
    datasets: list[str] = field(default_factory=list)
    checksum: str | None = None
    status: str = "preview"  # preview | committed | duplicate
    dry_run: bool = False
    batch_id: int | None = None
    duplicate_of: int | None = None
    rows_read: int = 0
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    rejected: list[Rejected] = field(default_factory=list)  # the first MAX_REPORTED_REJECTS
    rejected_total: int = 0
    #: rejected rows counted by reason: [{"reason_zh", "reason_en", "field", "count"}]
    rejected_by_reason: list[dict[str, Any]] = field(default_factory=list)
    unassigned: int = 0
    encoding: str | None = None
    encoding_source: str | None = None
    crs: str | None = None
    crs_source: str | None = None
    store_crs: str | None = None
    field_mapping: dict[str, str] = field(default_factory=dict)
    #: source column → field as given for this import ("" leaves a column out)
    field_overrides: dict[str, str] = field(default_factory=dict)
    #: per vocabulary field, what every distinct raw value became (see _mapping_entry)
    value_mappings: list[dict[str, Any]] = field(default_factory=list)
    #: completed features without a completion date (they count from the import day)
    completed_undated: int = 0
    #: value mappings of this import kept for later imports of the layer
    mappings_remembered: int = 0
    unmatched_fields: list[str] = field(default_factory=list)
    missing_fields: list[str] = field(default_factory=list)
    repaired: int = 0
    z_dropped: int = 0
    areas_from_geometry: int = 0
    skipped_files: list[str] = field(default_factory=list)
    warnings: list[tuple[str, str]] = field(default_factory=list)
    reassigned: int = 0
    #: a grid import: the version it makes, its units against the previous one, the features
    #: that change unit and, when dated into the past, the issued figures it changes
    grid_change: versions.GridChange | None = None
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage

    @property
    def accepted(self) -> int:
        return self.rows_read - self.rejected_total

    def reject(self, row: Rejected) -> None:
        """Count a rejected row; list it when fewer than :data:`MAX_REPORTED_REJECTS` are."""
        self.rejected_total += 1
        if len(self.rejected) < MAX_REPORTED_REJECTS:
            self.rejected.append(row)

    def to_dict(self) -> dict[str, Any]:
        """The report as the API and ``--json`` show it: every field, plus ``rejected_count``,
        ``rejected_listed`` and ``accepted``, and the warnings as ``{"zh": ..., "en": ...}``."""
        d = asdict(self)
        d["rejected_count"] = self.rejected_total
        d["rejected_listed"] = len(self.rejected)
        d["accepted"] = self.accepted
        d["warnings"] = [{"zh": zh, "en": en} for zh, en in self.warnings]
        return d

    def summary(self, lang: str = "zh") -> str:
        """The report as text for a terminal, in ``lang`` (``"zh"`` or ``"en"``).

        What happened (imported, preview, duplicate) with the file and batch, the counts, the
        encoding and CRS found and how, the grid change, warnings, value mappings and the first
        20 rejected rows with their reasons.  A duplicate file gets only its first two lines.
        """
        zh = lang == "zh"
        head = {
            "committed": ("已导入", "imported"),
            "preview": ("预览（未写入）", "preview (nothing written)"),
            "duplicate": ("文件已导入过，未重复写入", "file already imported, nothing written"),
        }[self.status]
        parts = [
            f"{head[0] if zh else head[1]}: {self.source_name}"
            + (f" → {self.layer}" if self.layer else "")
            + (f" (批次 {self.batch_id})" if zh and self.batch_id else "")
            + (f" (batch {self.batch_id})" if not zh and self.batch_id else ""),
        ]
        if self.status == "duplicate":
            parts.append(("同一文件即批次 " if zh else "same file as batch ") + str(self.duplicate_of))
            return "\n".join(parts)
        if zh:
            parts.append(
                f"读取 {self.rows_read} 行，新增 {self.added}，更新 {self.updated}，未变 {self.unchanged}，"
                f"拒绝 {self.rejected_total}，未落入网格 {self.unassigned}"
            )
            parts.append(
                f"编码 {self.encoding} ({self.encoding_source})；坐标系 {self.crs} ({self.crs_source})"
            )
        else:
            parts.append(
                f"read {self.rows_read} rows: added {self.added}, updated {self.updated}, unchanged "
                f"{self.unchanged}, rejected {self.rejected_total}, outside every grid {self.unassigned}"
            )
            parts.append(
                f"encoding {self.encoding} ({self.encoding_source}); CRS {self.crs} ({self.crs_source})"
            )
        if self.grid_change is not None:
            parts.extend(self.grid_change.summary(zh))
        for w_zh, w_en in self.warnings:
            parts.append(("注意: " + w_zh) if zh else ("warning: " + w_en))
        parts.extend(self._mapping_lines(zh))
        if self.mappings_remembered:
            parts.append(
                f"已记住 {self.mappings_remembered} 个值对应，用于以后的导入"
                if zh
                else f"{self.mappings_remembered} value mappings remembered for later imports"
            )
        for r in self.rejected[:20]:
            sid = f"（{r.survey_id}）" if zh and r.survey_id else f" ({r.survey_id})" if r.survey_id else ""
            parts.append(
                f"  第 {r.row} 行{sid}: {r.reason_zh}" if zh else f"  row {r.row}{sid}: {r.reason_en}"
            )
        if self.rejected_total > 20:
            more = self.rejected_total - 20
            parts.append(f"  … 另有 {more} 行被拒绝" if zh else f"  … {more} more rejected rows")
        return "\n".join(parts)

    def _mapping_lines(self, zh: bool) -> list[str]:
        """The value tables, for a terminal: every value not matched by its exact name first."""
        how_zh = {
            "exact": "精确",
            "alias": "别名",
            "remembered": "已记住",
            "manual": "本次指定",
            "suggested": "建议",
            "unrecognised": "未识别",
            "empty": "空值",
        }
        lines: list[str] = []
        for entry in self.value_mappings:
            values = sorted(entry["values"], key=lambda v: (v["how"] == "exact", -v["count"]))
            label = entry["label_zh"] if zh else entry["label_en"]
            lines.append(
                f"值对应 {label}（{entry['distinct']} 个值）:"
                if zh
                else f"values of {label} ({entry['distinct']}):"
            )
            for v in values[:MAX_PRINTED_VALUES]:
                raw = "（空）" if zh and v["raw"] is None else "(empty)" if v["raw"] is None else v["raw"]
                how = how_zh["unrecognised" if v["how"] == "suggested" else v["how"]] if zh else v["how"]
                hint = ""
                if v["suggestion"]:
                    hint = f"，建议: {v['suggestion']}" if zh else f", suggested: {v['suggestion']}"
                rows = f"{v['count']} 行" if zh else f"{v['count']} rows"
                lines.append(f"  {raw} → {v['code'] or '—'}  [{how}{hint}] {rows}")
            more = len(values) - MAX_PRINTED_VALUES + (entry["distinct"] - entry["listed"])
            if more > 0:
                lines.append(
                    f"  … 另有 {more} 个值（见 --json）" if zh else f"  … {more} more values (see --json)"
                )
        return lines


#: A terminal report lists at most this many values per vocabulary field (--json lists more).
MAX_PRINTED_VALUES = 30


@dataclass
class PreparedImport:
    """A survey file read and checked, with its rows ready to write (:func:`geo.imports.commit.commit_import`)."""

    spec: LayerSpec
    report: ImportReport
    rows: FeatureRows
    srs_epsg: int
    source_path: Path
    source_files: list[Path]
    user: str | None = None
    grid_generation: str = ""
    #: value mappings given for this import: (field, raw, code), remembered at commit when allowed
    manual_maps: list[tuple[str, str, str]] = field(default_factory=list)
    #: recognised as a byte-identical duplicate before it was read: no rows (never written)
    unread: bool = False


#: Why a row is rejected: the reasons in Chinese and English (``{v}`` stands for the value),
#: the field and the value.
Reason = tuple[str, str, str | None, str | None]


class RowRejects:
    """The reason each row of a file is rejected for: the first one a check finds.

    Each check calls it as ``reject(mask, zh, en, field, values)`` for the rows in ``mask``;
    ``{v}`` in a reason stands for the row's value in ``values``.
    """

    def __init__(self, n: int) -> None:
        self.reasons: list[Reason | None] = [None] * n

    def __call__(
        self, mask: np.ndarray, zh: str, en: str, fname: str | None = None, values: pd.Series | None = None
    ) -> None:
        for i in np.flatnonzero(mask):
            if self.reasons[i] is None:
                v = None if values is None else str(values.iloc[i])
                self.reasons[i] = (zh, en, fname, v)

    def ok(self) -> np.ndarray:
        """Which rows no check rejected, as a boolean mask."""
        return np.array([r is None for r in self.reasons], dtype=bool)

    def add_to(self, report: ImportReport, survey_ids: pd.Series | None) -> np.ndarray:
        """Count every rejected row in ``report``, list the first :data:`MAX_REPORTED_REJECTS`
        with the value quoted in the reason, and count them by reason; returns :meth:`ok`."""
        ok = self.ok()
        by_reason: dict[tuple[str, str, str | None], int] = {}
        for i in np.flatnonzero(~ok).tolist():
            reason = self.reasons[i]
            assert reason is not None
            zh, en, fname, v = reason
            by_reason[(zh, en, fname)] = by_reason.get((zh, en, fname), 0) + 1
            if len(report.rejected) >= MAX_REPORTED_REJECTS:
                report.rejected_total += 1
                continue
            quoted = truncate(v, MAX_QUOTED_VALUE) or ""
            sid = survey_ids.iloc[i] if survey_ids is not None else None
            report.reject(
                Rejected(
                    i + 1,
                    zh.replace("{v}", quoted),
                    en.replace("{v}", quoted),
                    fname,
                    truncate(v),
                    truncate(str(sid)) if sid is not None else None,
                )
            )
        report.rejected_by_reason = [
            {
                "reason_zh": zh.replace("「{v}」", "").replace("{v}", "…"),
                "reason_en": en.replace(" '{v}'", "").replace("{v}", "…"),
                "field": fname,
                "count": count,
            }
            for (zh, en, fname), count in sorted(by_reason.items(), key=lambda kv: -kv[1])
        ]
        return ok
