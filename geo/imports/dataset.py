"""The read step, run in the confined reading helper: check the files of an upload, choose the
dataset for the layer and read the columns it uses (:func:`read_upload`), packed to cross back
to the server process fast (:func:`pack_frame`, :func:`pack_geometry`)."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import shapely

from geo.errors import InputError, TooLarge
from geo.imports.fields import apply_field_map
from geo.imports.geometry import check_file_vertices
from geo.reading import crs as crsmod
from geo.reading.datasets import Dataset, RawTable
from geo.reading.fields import match_fields
from geo.reading.readers import check_content, read_dataset
from geo.reading.shp_checks import check_shapefile
from geo.reading.sources import expand_containers, shapefile_parts
from geo.registry import get_layer
from layers.base import LayerSpec


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
    check_file_vertices(int(shapely.get_num_coordinates(present).sum()), max_vertices)
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
    check_file_vertices(int(vertices.sum()), max_vertices)


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
