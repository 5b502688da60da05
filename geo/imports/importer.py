"""Import a survey file into a layer: read, clean, check, assign, store — as one batch.

:func:`prepare_import` does everything but write and returns the report (the web
preview and ``--dry-run`` stop there); :func:`commit_import` writes the prepared
batch in one transaction.  :func:`import_file` does both.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyproj
import shapely

import layers
from geo.assign import Grid, grid_diff
from geo.errors import CRSError, InputError, StoreError, TooLarge
from geo.figures import versions
from geo.figures.versions import load_grid
from geo.reading import crs as crsmod
from geo.reading import untrusted
from geo.reading.dbf import check_shapefile
from geo.reading.sources import (
    Dataset,
    RawTable,
    ZipLimits,
    archive_files,
    check_content,
    expand_containers,
    open_source,
    read_dataset,
    shapefile_parts,
)
from geo.reading.untrusted import ReadLimits
from geo.reading.values import (
    UNRECOGNISED,
    FieldMatch,
    VocabResult,
    clean_text,
    map_vocab,
    match_fields,
    norm_key,
    parse_dates,
    parse_numbers,
    resolve_code,
    safe_display_name,
    strip_controls,
    vocab_key,
)
from geo.registry import get_layer, grid_spec
from geo.store import clock
from geo.store.base import Batch, FeatureRows, Store, geometry_type_names
from layers.base import UNASSIGNED, Field, LayerSpec, Status
from layers.base import UNRECOGNISED as UNRECOGNISED_STATUS

#: Features farther than this from the grid's extent are rejected as coordinate errors.
FAR_OUTSIDE_M = 20_000.0
#: A feature with more vertices than this is rejected (its row, with the reason): drawing,
#: checking and assigning it would hold up the service for one site or cell.
MAX_FEATURE_VERTICES = 100_000
#: A file with more vertices than this in all is refused as a whole; a shapefile before its
#: geometry is read (its headers give the counts).  Lines and polygons at the limit take about
#: 0.35 GB to import.  (Points count one vertex each, but a row costs about 1 KB however
#: small its geometry: this bounds geometry, not the number of rows.)
MAX_FILE_VERTICES = 5_000_000


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
        d = asdict(self)
        d["rejected_count"] = self.rejected_total
        d["rejected_listed"] = len(self.rejected)
        d["accepted"] = self.accepted
        d["warnings"] = [{"zh": zh, "en": en} for zh, en in self.warnings]
        return d

    def summary(self, lang: str = "zh") -> str:
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


def remembered_mappings(store: Store, spec: LayerSpec) -> dict[str, dict[str, str]]:
    """The value mappings remembered for ``spec``: ``{field: {vocab_key(raw): code}}``.

    A remembered code that is no longer in the layer's vocabulary is left out (the value then
    shows as unrecognised again)."""
    out: dict[str, dict[str, str]] = {}
    vocabs = spec.vocab_fields
    for m in store.value_maps(spec.name):
        allowed = {st.code for st in vocabs.get(m.field, ())} | {UNRECOGNISED}
        if m.field in vocabs and m.code in allowed:
            out.setdefault(m.field, {})[m.raw_key] = m.code
    return out


# --- prepare ----------------------------------------------------------------------------------


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
        (:func:`apply_field_map`; ``""`` leaves a column out).
    value_map : list of (field, raw, code), optional
        Value mappings for this import (:func:`manual_mappings`); they win over every
        other rule.  Mappings remembered in the store apply too (see :func:`commit_import`).

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
    own_workdir = workdir is None
    if workdir is None:
        _sweep_workdirs()
    work = Path(tempfile.mkdtemp(prefix=WORKDIR_PREFIX)) if workdir is None else workdir
    try:
        source = open_source(path, work, limits, name=source_name)
        report = ImportReport(
            layer=spec.name,
            source_name=source.name,
            skipped_files=source.skipped,
            datasets=[d.name for d in source.datasets],
        )
        choice = crsmod.parse_crs(crs) if crs else None
        grid_generation = store.layer_generation(grid_spec())
        grid = None if spec.is_grid else load_grid(store)
        hint_lon = _store_lon(store)
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
            MAX_FILE_VERTICES,
            limits_used.max_rows,
            field_map,
            limits=limits_used,
            cancelled=cancelled,
        )
        report.timings["read"] = round(time.perf_counter() - started, 3)
        report.datasets = picked.datasets
        report.dataset = picked.dataset.name
        with _large_import_slot(int(picked.attrs["index"])):
            raw = picked.table
            raw.geometry = unpack_geometry(raw.geometry)
            raw.attrs = unpack_frame(picked.attrs)
            report.encoding, report.encoding_source = raw.encoding, raw.encoding_source
            report.crs, report.crs_source = raw.crs_label, raw.crs_source
            report.warnings.extend(raw.warnings)
            srs = store.srs_epsg() or _choose_srs(raw)
            report.store_crs = f"EPSG:{srs}"
            rows = _build_rows(
                spec, raw, srs, grid, report, field_map=field_map, manual=manual, remembered=remembered
            )
            del raw, picked
        report.checksum = source.checksum
        if len(report.datasets) > 1:  # which of the file's datasets was imported is part of what it is
            report.checksum = hashlib.sha256(f"{source.checksum}\0{report.dataset}".encode()).hexdigest()
        if report.field_overrides or any(
            v["how"] in ("manual", "remembered") for e in report.value_mappings for v in e["values"]
        ):
            # the same file read with other mappings gives other rows: it is no duplicate of the first
            report.checksum = hashlib.sha256(
                f"{report.checksum}\0{_mapping_digest(report)}".encode()
            ).hexdigest()
        dup = store.find_checksum(spec.name, report.checksum)
        if dup is not None:
            report.status = "duplicate"
            report.duplicate_of = dup.id
        return PreparedImport(
            spec, report, rows, srs, path, archive_files(path), user, grid_generation, manual_list
        )
    finally:
        if own_workdir:
            shutil.rmtree(work, ignore_errors=True)


#: Files with more rows than this are cleaned and assigned one at a time in a server
#: process (about 1 KB a row while it happens): several large uploads at once wait for each
#: other instead of adding up.
LARGE_IMPORT_ROWS = 200_000
_LARGE_IMPORTS = threading.BoundedSemaphore(1)


@contextlib.contextmanager
def _large_import_slot(rows: int) -> Iterator[None]:
    if rows < LARGE_IMPORT_ROWS:
        yield
        return
    with _LARGE_IMPORTS:
        yield


WORKDIR_PREFIX = "gridwatch-import-"
#: Work folders older than this were left by a process killed while importing: removed.
STALE_WORKDIR_S = 6 * 3600


def _sweep_workdirs() -> None:
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


def _check_file_vertices(total: int, limit: int) -> None:
    if total > limit:
        raise TooLarge(
            f"文件的顶点总数过多（{total:,} 个，上限 {limit:,}），请拆分或简化后再上传",
            f"the file holds too many vertices ({total:,}, limit {limit:,}): split or simplify it",
            code="too_many_vertices",
        )


# --- the read phase, run in the reading helper --------------------------------------------------


@dataclass
class Picked:
    """What the reading helper hands back: the datasets found, the one read, and its table
    (geometry as WKB and text columns as codes into their distinct values, which cross
    processes many times faster than shapely and string objects: see :func:`pack_frame`)."""

    datasets: list[str]
    dataset: Dataset
    table: RawTable  # its attrs are in ``attrs``
    attrs: dict[str, Any]


def pack_geometry(geoms: np.ndarray) -> Any:
    """Geometry in a form that pickles fast: the coordinates of 2-D points as one array
    (five million points: 80 MB), anything else as WKB.  :func:`unpack_geometry` restores it."""
    if len(geoms) and not shapely.is_missing(geoms).any():
        kinds = shapely.get_type_id(geoms)
        if (kinds == 0).all() and not shapely.has_z(geoms).any() and not shapely.is_empty(geoms).any():
            return ("points", shapely.get_coordinates(geoms))
    return ("wkb", np.asarray(shapely.to_wkb(geoms), dtype=object))


def unpack_geometry(packed: Any) -> np.ndarray:
    """The geometry :func:`pack_geometry` packed, as an object array of shapely geometries."""
    kind, payload = packed
    if kind == "points":
        return np.asarray(shapely.points(payload), dtype=object)
    return np.asarray(shapely.from_wkb(payload), dtype=object)


def pack_frame(frame: pd.DataFrame) -> dict[str, Any]:
    """``frame`` in a form that pickles fast: each text column as integer codes into its
    distinct values (survey columns repeat a lot), None and NaN told apart; other columns
    as they are.  :func:`unpack_frame` restores it."""
    packed: dict[str, Any] = {"index": len(frame), "columns": []}
    for name in frame.columns:
        col = frame[name]
        values = col.to_numpy()
        if col.dtype != object or pd.api.types.infer_dtype(values, skipna=True) != "string":
            # factorising mixed values would merge True, 1 and 1.0
            packed["columns"].append((name, "plain", values))
            continue
        codes, uniques = pd.factorize(values, use_na_sentinel=True)
        missing = np.flatnonzero(codes < 0)
        gaps = np.asarray(values[missing], dtype=object)
        nones = missing[gaps == np.array(None, dtype=object)]
        packed["columns"].append((name, "codes", (codes.astype(np.int32), list(uniques), nones)))
    return packed


def unpack_frame(packed: dict[str, Any]) -> pd.DataFrame:
    """The frame :func:`pack_frame` packed."""
    data: dict[str, Any] = {}
    n = packed["index"]
    for name, kind, payload in packed["columns"]:
        if kind == "plain":
            data[name] = payload
            continue
        codes, uniques, nones = payload
        table = np.empty(len(uniques) + 1, dtype=object)
        table[: len(uniques)] = uniques
        table[-1] = np.nan
        out = table[codes]  # code -1 takes the last entry: NaN
        out[nones] = None
        data[name] = pd.Series(out, dtype=object, index=pd.RangeIndex(n))
    return pd.DataFrame(data, index=pd.RangeIndex(n))


def read_upload(
    datasets: list[Dataset],
    layer: LayerSpec | str,
    member: str | None,
    encoding: str | None,
    crs: crsmod.CRSChoice | None,
    hint_lon: float | None,
    max_vertices: int,
    max_rows: int | None = None,
    field_map: dict[str, str] | None = None,
) -> Picked:
    """Check, choose and read the dataset of an unpacked upload for ``layer``.

    Runs in the reading helper (:func:`geo.reading.untrusted.run`): every file is checked to be
    what its name says before any reader opens it, then the dataset for the layer is
    chosen (``member``, or the one whose fields match), a shapefile checked from its
    headers (damage, vertex count against ``max_vertices``), and only the columns the
    layer uses (as matched, changed by ``field_map``) are decoded.
    """
    spec = (
        layer if isinstance(layer, LayerSpec) else get_layer(layer)
    )  # a spec: also one declared at run time
    for d in datasets:
        check_content(d)
    found = expand_containers(datasets)
    dataset = _choose_dataset(found, spec, member, encoding)
    if dataset.kind == "shp":
        _check_shapefile(dataset, max_vertices)
    table = read_dataset(
        dataset,
        encoding=encoding,
        crs=crs,
        hint_lon=hint_lon,
        select=functools.partial(_mapped, spec, field_map),
    )
    # counted here, before anything is sent back: the server process never holds an oversized file
    if max_rows is not None and len(table.attrs) > max_rows:
        raise TooLarge(
            f"文件行数过多（{len(table.attrs):,} 行，网页上传上限 {max_rows:,}），请拆分，或由管理员用命令行导入",
            f"the file holds too many rows ({len(table.attrs):,}, limit {max_rows:,} for uploads): split it, "
            "or have an administrator import it with the command line",
            code="too_many_rows",
        )
    present = table.geometry[~shapely.is_missing(table.geometry)]
    _check_file_vertices(int(shapely.get_num_coordinates(present).sum()), max_vertices)
    table.geometry = pack_geometry(table.geometry)
    attrs = pack_frame(table.attrs)
    table.attrs = table.attrs.iloc[:0]
    return Picked([d.name for d in found], dataset, table, attrs)


def _mapped(spec: LayerSpec, field_map: dict[str, str] | None, columns: list[str]) -> list[str]:
    """The columns of a file that ``spec``'s fields take (as ``field_map`` changes the matching)."""
    match = match_fields(columns, spec)
    if field_map:
        match = apply_field_map(match, columns, spec, field_map)
    return list(match.mapping)


def _check_shapefile(dataset: Dataset, max_vertices: int) -> None:
    """Refuse a damaged shapefile, or one with too many vertices, before reading it (a missing
    .dbf or .shx is reported by :func:`read_dataset`)."""
    parts = {p.suffix.lower(): p for p in shapefile_parts(dataset.path)}
    if ".dbf" not in parts or ".shx" not in parts:
        return
    vertices = check_shapefile(dataset.path, parts[".shx"], parts[".dbf"])
    _check_file_vertices(int(vertices.sum()), max_vertices)


def _store_lon(store: Store) -> float | None:
    grid = load_grid(store)
    srs = store.srs_epsg()
    if grid is None or srs is None or len(grid) == 0:
        return None
    minx, miny, maxx, maxy = shapely.total_bounds(grid.cells)
    t = crsmod.transformer(pyproj.CRS.from_epsg(srs), pyproj.CRS.from_epsg(4490))
    lon, _ = t.transform((minx + maxx) / 2, (miny + maxy) / 2)
    return float(lon)


def _choose_srs(raw: RawTable) -> int:
    """EPSG code of the projected CRS for a new store (metres).

    The first file's own zone when it is in CGCS2000 3-degree Gauss-Krüger (written
    without the zone prefix); otherwise the 3-degree zone whose central meridian is
    nearest the data (6-degree zones distort areas by more than 0.1% at their edges).
    """
    keep = np.array([g is not None for g in raw.geometry], dtype=bool)
    if raw.misfit is not None:
        keep &= raw.misfit == 0  # rows rejected for coordinates that do not fit the CRS
    geoms = raw.geometry[keep]
    geoms = geoms[~shapely.is_empty(geoms)]
    if len(geoms) == 0:
        raise InputError("文件中没有任何几何图形", "the file holds no geometry", code="no_geometry")
    minx, miny, maxx, maxy = shapely.total_bounds(geoms)
    src = pyproj.CRS.from_epsg(4326) if raw.gcj02 else raw.crs
    assert src is not None
    t = crsmod.transformer(src, pyproj.CRS.from_epsg(4490))
    lon, lat = t.transform((minx + maxx) / 2, (miny + maxy) / 2)
    if raw.gcj02:
        lon_a, _ = crsmod.gcj02_to_wgs84(np.array([lon]), np.array([lat]))
        lon = float(lon_a[0])
    if not np.isfinite(lon) or not (73 <= lon <= 136):
        raise CRSError(
            "数据不在中国范围内，无法选择投影坐标系，请检查 --crs",
            "the data does not lie in China: check --crs",
            code="bad_crs",
        )
    if raw.crs is not None and not raw.gcj02:
        epsg = raw.crs.to_epsg()
        if epsg is not None and 4534 <= epsg <= 4554:
            # already a CGCS2000 3-degree Gauss-Krüger CRS: the bureau's own survey CRS, keep it
            return int(epsg)
        if epsg is not None and 4513 <= epsg <= 4533:
            return int(epsg) + 21  # the same zone without the zone number in the easting
    return crsmod.gk_zone_epsg(float(lon))


def _choose_dataset(
    datasets: list[Dataset], spec: LayerSpec, member: str | None, encoding: str | None
) -> Dataset:
    names = ", ".join(d.name for d in datasets[:50])
    if member:
        # the exact name (as listed in the report), or a file name that only one dataset has
        exact = [d for d in datasets if d.name == member]
        by_file = [d for d in datasets if Path(d.name).name == member]
        if exact or len(by_file) == 1:
            return (exact or by_file)[0]
        raise InputError(
            f"找不到图层 {member}（可选: {names}）",
            f"no dataset {member} (found: {names})",
            code="no_such_member",
        )
    if len(datasets) == 1:
        return datasets[0]
    scores: list[tuple[int, Dataset]] = []
    for d in datasets:
        try:
            if d.kind == "shp":
                cols = _shapefile_columns(d, encoding)
            elif d.kind in ("csv", "xlsx"):
                cols = []
            else:
                import pyogrio

                info = pyogrio.read_info(d.path, layer=d.layer)
                cols = [str(c) for c in info["fields"]]
        except Exception:  # an unreadable candidate scores zero; reading it later reports why
            cols = []
        scores.append((len(match_fields(cols, spec).mapping), d))
    scores.sort(key=lambda t: -t[0])
    if scores[0][0] == 0 or (len(scores) > 1 and scores[0][0] == scores[1][0]):
        raise InputError(
            f"文件中有多个图层，无法判断哪个是「{spec.label_zh}」，请指定 --member（可选: {names}）",
            f"the upload holds several datasets; choose one for {spec.label_en} with --member ({names})",
            code="ambiguous_member",
            details={"datasets": [d.name for d in datasets]},
        )
    return scores[0][1]


def _shapefile_columns(d: Dataset, encoding: str | None) -> list[str]:
    from geo.reading.encoding import decode_dbf_field_names, detect_dbf_encoding

    dbf = d.path.with_suffix(".dbf")
    if not dbf.exists():
        dbf = d.path.with_suffix(".DBF")
    cpg = d.path.with_suffix(".cpg")
    cpg_text = cpg.read_bytes()[:200].decode("ascii", errors="replace").strip() if cpg.exists() else None
    guess = detect_dbf_encoding(dbf, cpg=cpg_text, override=encoding)
    return decode_dbf_field_names(dbf, guess.encoding)


def _build_rows(
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
    n = len(raw.attrs)
    report.rows_read = n
    if n == 0:
        raise InputError("文件中没有任何要素", "the file holds no features", code="empty_layer")
    columns = raw.columns or [str(c) for c in raw.attrs.columns]
    match = match_fields(columns, spec)
    if field_map:
        match = apply_field_map(match, columns, spec, field_map)
        report.field_overrides = dict(field_map)
    report.field_mapping = dict(match.mapping)
    report.unmatched_fields = [str(truncate(c, 100)) for c in match.unmatched[:MAX_COLUMNS_LISTED]]
    report.missing_fields = list(match.missing)
    if not match.mapping:
        found = ", ".join(str(truncate(c, 100)) for c in columns[:MAX_COLUMNS_LISTED])
        if len(columns) > MAX_COLUMNS_LISTED:
            found += f" … (+{len(columns) - MAX_COLUMNS_LISTED})"
        raise InputError(
            f"文件字段与图层「{spec.label_zh}」不符，是否选错了图层？文件字段: {found}",
            f"the file's fields do not match layer {spec.label_en}: wrong layer? fields: {found}",
            code="wrong_layer",
        )
    if spec.is_grid and spec.id_field not in match.mapping.values():
        raise InputError(
            "网格文件缺少网格编码字段（网格编码/WGBM 等）",
            "the grid file has no grid-code field (网格编码/WGBM ...)",
            code="wrong_layer",
        )
    bad_reason: list[tuple[str, str, str | None, str | None] | None] = [None] * n

    def reject(
        mask: np.ndarray, zh: str, en: str, fname: str | None = None, values: pd.Series | None = None
    ) -> None:
        for i in np.flatnonzero(mask):
            if bad_reason[i] is None:
                v = None if values is None else str(values.iloc[i])
                bad_reason[i] = (zh, en, fname, v)

    inverse = {canon: src for src, canon in match.mapping.items()}
    out = pd.DataFrame(index=pd.RangeIndex(n))
    vocabs = spec.vocab_fields
    manual = manual or {}
    remembered = remembered or {}
    vocab_results: dict[str, VocabResult] = {}
    for raw_field in spec.raw_fields:
        out[raw_field.name] = pd.Series([None] * n, dtype=object)
    for f in spec.fields:
        if f.name not in inverse:
            out[f.name] = pd.Series([None] * n, dtype=object)
            continue
        col = raw.attrs[inverse[f.name]].reset_index(drop=True)
        if f.name in vocabs:
            manual_f = manual.get(f.name, {})
            remembered_f = remembered.get(f.name, {})
            default = spec.default_status if f.name == spec.status_field else None
            result = map_vocab(
                col.astype(object), vocabs[f.name], default, manual=manual_f, remembered=remembered_f
            )
            out[f.name] = result.codes
            out[f"{f.name}_raw"] = result.raw
            vocab_results[f.name] = result
        elif f.kind in ("int", "float"):
            nums, bad = parse_numbers(col.astype(object))
            reject(
                bad.to_numpy(),
                f"{f.label_zh}「{{v}}」不是数字",
                f"{f.label_en} '{{v}}' is not a number",
                f.name,
                col,
            )
            negative = (nums < 0).fillna(False).to_numpy()
            reject(negative, f"{f.label_zh}「{{v}}」为负数", f"{f.label_en} '{{v}}' is negative", f.name, col)
            if f.kind == "int":
                frac = (nums.notna() & (nums != nums.round())).to_numpy()
                reject(
                    frac,
                    f"{f.label_zh}「{{v}}」应为整数",
                    f"{f.label_en} '{{v}}' must be a whole number",
                    f.name,
                    col,
                )
            out[f.name] = nums.astype(object).where(nums.notna(), None)
        elif f.kind == "date":
            dates, bad = parse_dates(col.astype(object))
            reject(
                bad.to_numpy(),
                f"{f.label_zh}「{{v}}」不是有效日期",
                f"{f.label_en} '{{v}}' is not a valid date",
                f.name,
                col,
            )
            out[f.name] = dates
        else:
            out[f.name] = clean_text(col.astype(object))
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
    geoms = _clean_geometry(spec, raw, srs, report, reject)
    if grid is not None:
        live = np.flatnonzero([r is None for r in bad_reason])
        far = np.zeros(n, dtype=bool)
        far[live] = _far_outside(grid, geoms[live])
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
    keys = np.full(n, None, dtype=object)
    if spec.id_field:
        ids = out[spec.id_field]
        keys = ids.to_numpy(dtype=object)
        seen: dict[str, int] = {}
        for i, k in enumerate(keys):
            if k is None or bad_reason[i] is not None:
                continue
            if k in seen:
                bad_reason[i] = (
                    f"编号「{k}」与第 {seen[k] + 1} 行重复",
                    f"id '{k}' repeats row {seen[k] + 1}",
                    spec.id_field,
                    str(k),
                )
            else:
                seen[k] = i
        if spec.is_grid:
            reject(ids.isna().to_numpy(), "网格编码为空", "empty grid code", spec.id_field)

    ok = np.array([r is None for r in bad_reason], dtype=bool)
    by_reason: dict[tuple[str, str, str | None], int] = {}
    survey_ids = out[spec.id_field] if spec.id_field else None
    for i in np.flatnonzero(~ok).tolist():
        reason = bad_reason[i]
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
    if not ok.any():
        first = report.rejected[0]
        raise InputError(
            f"没有可导入的行（共 {n} 行全部被拒绝，例如第 {first.row} 行: {first.reason_zh}）",
            f"no row can be imported (all {n} rejected, e.g. row {first.row}: {first.reason_en})",
            code="no_valid_rows",
            details={"rejected": [asdict(r) for r in report.rejected[:100]]},
        )
    attrs = out.loc[ok].reset_index(drop=True)
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
    # the status first, then the categories
    for name, result in sorted(vocab_results.items(), key=lambda kv: kv[0] != spec.status_field):
        entry = _mapping_entry(spec.field(name), _recount(result, ok), vocabs[name])
        report.value_mappings.append(entry)
        unrecognised = (
            sum(v["count"] for v in entry["values"] if v["code"] == UNRECOGNISED) + entry["more_unrecognised"]
        )
        if unrecognised:
            report.warnings.append(
                (
                    f"{entry['label_zh']} 有 {unrecognised} 行的值未识别：照原值保存，记为「{UNRECOGNISED}」"
                    + ("，计入总数但不算完成" if name == spec.status_field else "")
                    + "；可在值对应表中指定",
                    f"{unrecognised} rows of {entry['label_en']} hold values that match nothing: kept as written"
                    " and marked 'unrecognised'"
                    + (", counted in totals, never as completed" if name == spec.status_field else "")
                    + "; map them in the value table",
                )
            )

    geoms = geoms[ok]
    keys = keys[ok]
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
    for m in spec.measures:
        if m.from_geometry:
            empty = attrs[m.field].isna().to_numpy() & np.isin(shapely.get_type_id(geoms), (3, 6))
            report.areas_from_geometry += int(empty.sum())
    return FeatureRows(attrs, geoms, keys, units, np.flatnonzero(ok) + 1)


def apply_field_map(
    match: FieldMatch, columns: list[str], spec: LayerSpec, field_map: dict[str, str]
) -> FieldMatch:
    """``match`` changed as a person asked: ``field_map`` maps a column of the file to a field
    of the layer (its name or Chinese or English label), or to ``""`` to leave it out.

    Raises
    ------
    InputError
        ``code="bad_field_map"``: a column the file does not have or a field the layer has not.
    """
    mapping = dict(match.mapping)
    for column, target in field_map.items():
        if column not in columns:
            shown = truncate(safe_display_name(str(column)), MAX_QUOTED_VALUE)
            raise InputError(
                f"文件中没有字段「{shown}」", f"the file has no column '{shown}'", code="bad_field_map"
            )
        mapping.pop(column, None)
        if not target:
            continue
        name = field_name(spec, target)
        for other in [c for c, f in mapping.items() if f == name]:
            del mapping[other]
        mapping[column] = name
    ordered = {c: mapping[c] for c in columns if c in mapping}
    used = set(ordered.values())
    return FieldMatch(
        mapping=ordered,
        unmatched=[c for c in columns if c not in ordered],
        missing=[f.name for f in spec.fields if f.name not in used],
    )


def field_name(spec: LayerSpec, text: str) -> str:
    """The field of ``spec`` a person names by its name or Chinese or English label.

    Raises
    ------
    InputError
        ``code="bad_field_map"``.
    """
    key = vocab_key(text)
    for f in spec.fields:
        if key in (vocab_key(f.name), vocab_key(f.label_zh), vocab_key(f.label_en)):
            return f.name
    loose = norm_key(text)  # as column headers are matched: "面积", "违建面积(m²)", "MJ"
    for f in spec.fields:
        if loose and loose in {norm_key(n) for n in (f.name, f.label_zh, f.label_en, *f.aliases)}:
            return f.name
    shown = truncate(safe_display_name(str(text)), MAX_QUOTED_VALUE)
    names = "、".join(f"{f.name}({f.label_zh})" for f in spec.fields)
    raise InputError(
        f"图层「{spec.label_zh}」没有字段「{shown}」（可选: {names}）",
        f"layer {spec.label_en} has no field '{shown}' ({', '.join(f.name for f in spec.fields)})",
        code="bad_field_map",
    )


def manual_mappings(
    spec: LayerSpec, entries: list[tuple[str, str, str]] | None
) -> tuple[dict[str, dict[str, str]], list[tuple[str, str, str]]]:
    """Value mappings given for one import, checked: ``(field, raw, code)`` where the field is
    a vocabulary field's name or label, the raw text as written and the code a value's code
    or label (or 未识别).  Returns ``{field: {vocab_key(raw): code}}`` and the entries with
    the field's name and the code resolved.

    Raises
    ------
    InputError
        ``code="bad_mapping"`` for a field without a vocabulary or an unknown code.
    """
    out: dict[str, dict[str, str]] = {}
    resolved: list[tuple[str, str, str]] = []
    vocabs = spec.vocab_fields
    for field_text, raw, code_text in entries or []:
        name = field_name(spec, field_text)
        if name not in vocabs:
            f = spec.field(name)
            choices = "、".join(spec.field(v).label_zh for v in vocabs) or "—"
            raise InputError(
                f"字段「{f.label_zh}」没有取值表，不能指定值的对应（可指定: {choices}）",
                f"field {f.label_en} has no vocabulary: values can be mapped only for "
                f"{', '.join(spec.field(v).label_en for v in vocabs) or '—'}",
                code="bad_mapping",
            )
        key = vocab_key(raw)
        if not key:
            raise InputError("原值不能为空", "the raw value to map is empty", code="bad_mapping")
        code = resolve_code(vocabs[name], code_text)
        out.setdefault(name, {})[key] = code
        resolved.append((name, strip_controls(str(raw)).strip(), code))
    return out, resolved


def _recount(result: VocabResult, ok: np.ndarray) -> VocabResult:
    """``result`` with its value table counted over the rows ``ok`` (the rows imported)."""
    raw = result.raw[ok]
    counts = raw.value_counts(dropna=True)
    empty = int(raw.isna().sum())
    values = []
    for v in result.values:
        count = empty if v.raw is None else int(counts.get(v.raw, 0))
        if count:
            values.append(replace(v, count=count))
    values.sort(key=lambda v: -v.count)
    return VocabResult(result.codes[ok], raw, values)


def _mapping_entry(f: Field, result: VocabResult, vocab: tuple[Status, ...]) -> dict[str, Any]:
    """The value table of one vocabulary field for the import report."""
    listed = result.values[:MAX_MAPPED_VALUES]
    rest = result.values[MAX_MAPPED_VALUES:]
    choices = [*vocab, UNRECOGNISED_STATUS]
    return {
        "field": f.name,
        "label_zh": f.label_zh,
        "label_en": f.label_en,
        "distinct": len(result.values),
        "listed": len(listed),
        "more_rows": sum(v.count for v in rest),
        "more_unrecognised": sum(v.count for v in rest if v.code == UNRECOGNISED),
        "values": [
            {
                "raw": truncate(v.raw),
                "code": v.code,
                "how": v.how,
                "count": v.count,
                "suggestion": v.suggestion,
                "qualified": v.qualified,
            }
            for v in listed
        ],
        "codes": [
            {"code": st.code, "label_zh": st.label_zh, "label_en": st.label_en, "completed": st.completed}
            for st in choices
        ],
    }


def _clean_geometry(
    spec: LayerSpec, raw: RawTable, srs: int, report: ImportReport, reject: Any
) -> np.ndarray:
    geoms = np.asarray(raw.geometry, dtype=object).copy()
    n = len(geoms)
    missing = np.array([g is None for g in geoms], dtype=bool)
    present = ~missing
    empty = np.zeros(n, dtype=bool)
    empty[present] = shapely.is_empty(geoms[present])
    reject(missing | empty, "几何为空", "empty geometry")
    ok = present & ~empty
    if not ok.any():
        return geoms
    vertices = np.zeros(n, dtype=np.int64)
    vertices[ok] = shapely.get_num_coordinates(geoms[ok])
    _check_file_vertices(int(vertices.sum()), MAX_FILE_VERTICES)
    huge = vertices > MAX_FEATURE_VERTICES
    reject(
        huge,
        f"要素顶点过多（{{v}} 个，上限 {MAX_FEATURE_VERTICES:,}），请简化后再导入",
        f"too many vertices ({{v}}, limit {MAX_FEATURE_VERTICES:,}): simplify the feature",
        values=pd.Series([f"{v:,}" for v in vertices.tolist()], dtype=object),
    )
    ok &= ~huge
    if not ok.any():
        return geoms
    has_z = np.zeros(n, dtype=bool)
    has_z[ok] = shapely.has_z(geoms[ok])
    if has_z.any():
        report.z_dropped = int(has_z.sum())
        geoms[ok] = shapely.force_2d(geoms[ok])
    coords_bad = np.zeros(n, dtype=bool)
    idx = np.flatnonzero(ok)
    counts = shapely.get_num_coordinates(geoms[idx])
    coords = shapely.get_coordinates(geoms[idx])
    finite_pt = np.isfinite(coords).all(axis=1)
    if not finite_pt.all():
        owner = np.repeat(np.arange(len(idx)), counts)
        coords_bad[idx[np.unique(owner[~finite_pt])]] = True
    reject(coords_bad, "坐标含无效数值 (NaN/Inf)", "coordinates contain NaN or infinity")
    ok &= ~coords_bad
    types = geometry_type_names(geoms)
    allowed = np.isin(types, list(spec.geometry_types))
    wrong = ok & ~allowed
    if wrong.any():
        allowed_zh = "、".join(sorted(spec.geometry_types))
        for t in sorted(set(types[wrong])):
            reject(
                wrong & (types == t),
                f"几何类型 {t} 不适用于「{spec.label_zh}」（允许: {allowed_zh}）",
                f"geometry type {t} is not allowed in {spec.label_en} (allowed: {allowed_zh})",
            )
        if not (ok & allowed).any():
            raise InputError(
                f"几何类型不符：「{spec.label_zh}」需要 {allowed_zh}，文件中是 {', '.join(sorted(set(types[wrong])))}",
                f"wrong geometry type: {spec.label_en} takes {allowed_zh}, the file has "
                f"{', '.join(sorted(set(types[wrong])))}",
                code="wrong_geometry_type",
            )
    ok &= allowed
    if raw.misfit is not None:
        ok &= ~_reject_misfits(raw.misfit, geoms, ok, reject)
    # to the store CRS
    idx = np.flatnonzero(ok)
    src_crs = pyproj.CRS.from_epsg(4490) if raw.gcj02 else raw.crs
    assert src_crs is not None
    dst = pyproj.CRS.from_epsg(srs)
    t = crsmod.transformer(src_crs, dst)

    def project(xy: np.ndarray) -> np.ndarray:
        x, y = xy[:, 0], xy[:, 1]
        if raw.gcj02:
            x, y = crsmod.gcj02_to_wgs84(x, y)
        px, py = t.transform(x, y)
        return np.column_stack([px, py])

    same = not raw.gcj02 and (src_crs == dst or src_crs.equals(dst, ignore_axis_order=True))
    projected = geoms[idx] if same else shapely.transform(geoms[idx], project)
    finite = np.isfinite(shapely.bounds(projected)).all(axis=1)
    bad = np.zeros(n, dtype=bool)
    bad[idx[~finite]] = True
    reject(bad, "坐标无法转换到存储坐标系（超出范围）", "coordinates cannot be transformed to the store CRS")
    geoms[idx] = projected
    ok &= ~bad
    # validity
    poly = ok & np.isin(types, ["Polygon", "LineString"])
    idx = np.flatnonzero(poly)
    if len(idx):
        valid = shapely.is_valid(geoms[idx])
        fix = idx[~valid]
        if len(fix):
            repaired = shapely.make_valid(geoms[fix])
            keep_type = spec.geometry_types
            fixed = []
            for g, want in zip(repaired, types[fix], strict=True):
                fixed.append(_extract(g, want) if want in keep_type else g)
            fixed_arr = np.array(fixed, dtype=object)
            empty_after = np.array([g is None or g.is_empty for g in fixed_arr], dtype=bool)
            geoms[fix] = fixed_arr
            report.repaired = int((~empty_after).sum())
            dead = np.zeros(n, dtype=bool)
            dead[fix[empty_after]] = True
            reject(dead, "多边形无效且无法修复", "invalid polygon that cannot be repaired")
            if report.repaired:
                report.warnings.append(
                    (
                        f"修复了 {report.repaired} 个无效多边形（自相交等）",
                        f"repaired {report.repaired} invalid polygons (self-intersections etc.)",
                    )
                )
            ok &= ~dead
    return geoms


def _reject_misfits(misfit: np.ndarray, geoms: np.ndarray, ok: np.ndarray, reject: Any) -> np.ndarray:
    """Reject the rows among ``ok`` whose coordinates do not fit the CRS (:attr:`RawTable.misfit`),
    each with its reason and its coordinates as they are in the file; returns their mask."""
    bad = ok & (misfit != 0)
    idx = np.flatnonzero(bad)
    if len(idx) == 0:
        return bad
    text = np.full(len(geoms), None, dtype=object)
    text[idx] = [
        f"{x0:.12g}, {y0:.12g}" if (x0, y0) == (x1, y1) else f"{x0:.12g}, {y0:.12g} … {x1:.12g}, {y1:.12g}"
        for x0, y0, x1, y1 in shapely.bounds(geoms[idx]).tolist()
    ]
    values = pd.Series(text, dtype=object)
    for code in np.unique(misfit[idx]).tolist():
        zh, en = crsmod.misfit_reason(int(code))
        reject(bad & (misfit == code), zh, en, None, values)
    return bad


def _extract(geom: Any, want: str) -> Any:
    """Keep the parts of ``geom`` of type ``want`` (after make_valid)."""
    tid = {"Polygon": (3, 6), "LineString": (1, 5), "Point": (0, 4)}[want]
    if shapely.get_type_id(geom) in tid:
        return geom
    parts = shapely.get_parts(geom)
    parts = parts[np.isin(shapely.get_type_id(parts), tid)]
    if len(parts) == 0:
        return None
    return shapely.union_all(parts) if len(parts) > 1 else parts[0]


def _far_outside(grid: Grid | None, geoms: np.ndarray) -> np.ndarray:
    if grid is None or len(grid) == 0 or len(geoms) == 0:
        return np.zeros(len(geoms), dtype=bool)
    minx, miny, maxx, maxy = shapely.total_bounds(grid.cells)
    b = shapely.bounds(geoms)
    dx = np.maximum(np.maximum(minx - b[:, 2], b[:, 0] - maxx), 0)
    dy = np.maximum(np.maximum(miny - b[:, 3], b[:, 1] - maxy), 0)
    return np.asarray(np.hypot(dx, dy) > FAR_OUTSIDE_M)


# --- commit -----------------------------------------------------------------------------------


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

    With ``dry_run`` the whole write is done and then rolled back, so the report's added,
    updated, unchanged and rejected figures are exactly what a commit made now would do.
    Value mappings given for the import (``prepared.manual_maps``) are remembered for
    later imports of the layer when ``remember`` -- by default, when the account may update
    any feature (an admin, or the command line: :func:`may_update_any`).

    Parameters
    ----------
    store : Store
    prepared : PreparedImport
        From :func:`prepare_import`; rows in the store's projected CRS (metres).
    user : str, optional
        The importing account (defaults to the one given to :func:`prepare_import`).
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
        with store.transaction():
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
    if store.srs_epsg() is None:
        store.set_srs_epsg(prepared.srs_epsg)
    elif store.srs_epsg() != prepared.srs_epsg:
        raise InputError("存储坐标系已变化，请重新预览", "the store CRS changed: prepare the import again")
    if report.checksum:
        dup = store.find_checksum(spec.name, report.checksum, rows.keys)
        if dup is not None:
            raise Duplicate(dup.id)
    any_owner = may_update_any(store, user, admin)
    rows = keep_own_rows(store, spec, rows, report, user, any_owner)
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
    else:
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


def _mapping_digest(report: ImportReport) -> str:
    """What the field and value mappings made of a file, as one canonical text."""
    decided = sorted(
        (e["field"], vocab_key(v["raw"] or ""), v["code"] or "")
        for e in report.value_mappings
        for v in e["values"]
        if v["how"] in ("manual", "remembered")
    )
    return json.dumps([sorted(report.field_overrides.items()), decided], ensure_ascii=False)


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
    report.rejected.sort(key=lambda r: r.row)
    report.rejected_by_reason.append(
        {
            "reason_zh": "要素属于其他账户的批次，不能覆盖",
            "reason_en": "the feature belongs to another account's batch and cannot be overwritten",
            "field": spec.id_field,
            "count": int(theirs.sum()),
        }
    )
    keep = ~theirs
    if not keep.any():
        raise InputError(
            f"没有可导入的行：文件中的{label_zh}都属于其他账户的批次，不能覆盖",
            f"no row can be imported: every {label_en} in the file belongs to another account's batch",
            code="no_valid_rows",
            details={"rejected": [asdict(r) for r in report.rejected[:100]]},
        )
    return FeatureRows(
        rows.attrs.loc[keep].reset_index(drop=True),
        rows.geometry[keep],
        rows.keys[keep],
        rows.units[keep],
        None if rows.source_rows is None else rows.source_rows[keep],
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


def reassign_all(store: Store, previous: Grid | None = None) -> int:
    """Re-establish the unit of every feature of every survey layer after a grid change.

    Parameters
    ----------
    store : Store
    previous : Grid, optional
        The grid before the change.  With it, only features that can be affected are
        assigned again: those assigned to a removed or reshaped cell, those outside every
        cell, and those touching a new or reshaped cell.  Every other feature keeps its
        unit, which is exactly what assigning it again would give (its candidate cells are
        unchanged).  Without it, or when most cells changed, every feature is assigned again.

    Returns
    -------
    int
        Number of features whose unit changed.
    """
    grid = load_grid(store)
    changed_old, changed_new = grid_diff(previous, grid)
    changed = 0
    for spec in layers.survey_layers():
        fids, geoms = store.read_geometry(spec)
        if len(fids) == 0:
            continue
        if grid is None:
            units = np.full(len(fids), UNASSIGNED, dtype=object)
        elif changed_old is None or changed_new is None:
            units = grid.assign(geoms)
        else:
            _, current = store.read_assignment(spec)
            affected = pd.Series(current, dtype=object).isin({*changed_old, UNASSIGNED}).to_numpy(copy=True)
            if len(changed_new):
                hit, _ = shapely.STRtree(changed_new).query(geoms, predicate="intersects")
                affected[hit] = True
            units = current.copy()
            idx = np.flatnonzero(affected)
            if len(idx):
                units[idx] = grid.assign(geoms[idx])
        changed += store.set_units(spec, fids, units)
    return changed


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
    if prepared.report.status == "duplicate" and dry_run:
        prepared.report.dry_run = True
        preview_grid(store, prepared, valid_from, tz)
        return prepared.report
    return commit_import(
        store, prepared, user=user, dry_run=dry_run, remember=remember, valid_from=valid_from, tz=tz
    )


def preview_grid(
    store: Store, prepared: PreparedImport, valid_from: object = None, tz: str | None = None
) -> None:
    """For a grid file not written: check ``valid_from`` and put the units it would add,
    remove and reshape in the report (features are assigned when it is committed)."""
    if not prepared.spec.is_grid:
        return
    day = versions.check_valid_from(store, valid_from, tz)
    rows = prepared.rows
    grid = Grid(
        rows.attrs[str(prepared.spec.id_field)].to_numpy(dtype=object),
        np.asarray(rows.geometry, dtype=object),
    )
    prepared.report.grid_change = versions.preview_change(store, grid, day)
