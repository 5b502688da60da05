"""Vector files through GDAL (pyogrio): shapefiles — their attributes through
:mod:`geo.reading.dbf` with the encoding :mod:`geo.reading.encoding` detects, their CRS from
the ``.prj`` — and GeoPackage, GeoJSON and KML with the CRS they declare."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyogrio
import pyproj
import shapely

from geo.errors import EncodingError, GridwatchError, InputError
from geo.reading.charsets import looks_like_mojibake
from geo.reading.crs import crs_from_prj
from geo.reading.datasets import (
    MAX_COLUMNS,
    MAX_ROWS,
    Dataset,
    RawTable,
    Select,
    too_many_columns,
    too_many_rows,
)
from geo.reading.dbf import read_dbf, read_point_shp
from geo.reading.encoding import detect_dbf_encoding

__all__ = ["list_layers", "read_ogr", "read_shapefile"]


def read_shapefile(dataset: Dataset, override: str | None, select: Select | None) -> RawTable:
    """Read a shapefile: attributes decoded in the encoding its ``.cpg``, DBF header or bytes
    tell (or ``override``), geometry, and the CRS of its ``.prj`` (none without one).

    Parameters
    ----------
    dataset : Dataset
        The ``.shp``; its ``.shx`` and ``.dbf`` must sit beside it.
    override : str, optional
        Text encoding of the DBF, overriding detection (e.g. ``"GBK"``).
    select : callable, optional
        Given every attribute column's name, returns the names to read.

    Raises
    ------
    InputError
        ``missing_dbf``, ``missing_shx``, ``unreadable``.
    EncodingError
        The text decodes to mojibake, or no encoding can be told.
    """
    shp = dataset.path
    dbf = _sidecar(shp, ".dbf")
    shx = _sidecar(shp, ".shx")
    if dbf is None:
        raise InputError(
            f"缺少 .dbf 文件: {dataset.name}", f"missing .dbf beside {dataset.name}", code="missing_dbf"
        )
    if shx is None:
        raise InputError(
            f"缺少 .shx 文件: {dataset.name}", f"missing .shx beside {dataset.name}", code="missing_shx"
        )
    cpg_path = _sidecar(shp, ".cpg")
    cpg = cpg_path.read_bytes()[:200].decode("ascii", errors="replace").strip() if cpg_path else None
    guess = detect_dbf_encoding(dbf, cpg=cpg, override=override)
    gdal_enc = {"gb18030": "GB18030", "gbk": "GBK", "utf-8": "UTF-8", "big5": "BIG5"}.get(
        guess.encoding.lower(), guess.encoding
    )
    fast = _read_shapefile_fast(shp, dbf, guess.encoding, select)
    attrs, geoms, crs_wkt, names = (
        fast if fast is not None else _ogr_read(shp, None, gdal_enc, select, dataset.name)
    )
    warnings: list[tuple[str, str]] = []
    for col in attrs.columns:
        if attrs[col].dtype == object or str(attrs[col].dtype).startswith("str"):
            sample = attrs[col].dropna().astype(str).head(200)
            if any(looks_like_mojibake(v) for v in sample):
                raise EncodingError(
                    f"字段 {col} 解码后为乱码，请用 --encoding 指定正确的编码（当前 {guess.encoding}）",
                    f"field {col} decodes to mojibake with {guess.encoding}: pass the right --encoding",
                )
    prj = _sidecar(shp, ".prj")
    table = RawTable(
        dataset, attrs, geoms, None, False, "none", None, guess.encoding, guess.source, warnings, names
    )
    if prj is not None:
        text = prj.read_bytes()[:65536].decode("utf-8", errors="replace").strip()
        if text:
            table.crs = crs_from_prj(text)
            table.crs_source = "prj"
    elif crs_wkt:
        table.crs = pyproj.CRS.from_user_input(crs_wkt)
        table.crs_source = "file"
    return table


def _read_shapefile_fast(
    shp: Path, dbf: Path, encoding: str, select: Select | None
) -> tuple[pd.DataFrame, np.ndarray, str | None, list[str]] | None:
    """Geometry through GDAL (no attributes), attributes through :mod:`geo.reading.dbf`; None to fall back."""
    names: list[str] = []
    table = read_dbf(dbf, encoding, select, names)
    if table is None:
        return None
    attrs, deleted = table
    points = read_point_shp(shp)
    if points is not None and len(points) == len(attrs):
        keep = ~deleted
        return attrs[keep].reset_index(drop=True), points[keep], None, names
    try:
        # field names are not read here; ISO-8859-1 decodes any bytes, so names cut in the
        # middle of a character cannot make GDAL fail
        meta, arrow = pyogrio.read_arrow(shp, columns=[], return_fids=True, encoding="ISO-8859-1")
    except Exception:  # let the GDAL path produce the user-facing error
        return None
    fids = arrow.column("OGC_FID").to_numpy()
    geom_name = meta.get("geometry_name") or "wkb_geometry"
    if len(fids) and (fids.max() >= len(attrs) or fids.min() < 0):
        return None
    if len(fids) != int((~deleted).sum()):
        return None
    wkb = arrow.column(geom_name).to_numpy(zero_copy_only=False)
    try:
        geoms = shapely.from_wkb(wkb)
    except shapely.errors.GEOSException:  # e.g. a ring that does not close: the GDAL path reports it
        return None
    return attrs.iloc[fids].reset_index(drop=True), np.asarray(geoms, dtype=object), meta.get("crs"), names


def _sidecar(shp: Path, suffix: str) -> Path | None:
    for cand in (shp.with_suffix(suffix), shp.with_suffix(suffix.upper())):
        if cand.exists():
            return cand
    for p in shp.parent.iterdir():
        if p.stem == shp.stem and p.suffix.lower() == suffix:
            return p
    return None


def _ogr_read(
    path: Path, layer: str | None, encoding: str | None, select: Select | None, display: str
) -> tuple[pd.DataFrame, np.ndarray, str | None, list[str]]:
    try:
        kwargs: dict[str, Any] = {"use_arrow": True}
        if encoding:
            kwargs["encoding"] = encoding
        if layer:
            kwargs["layer"] = layer
        info = pyogrio.read_info(path, layer=layer, encoding=encoding)
        names = [str(f) for f in info["fields"]]
        if len(names) > MAX_COLUMNS:
            raise too_many_columns(len(names))
        if select is not None:
            wanted = set(select(names))
            kwargs["columns"] = [n for n in names if n in wanted]
        if int(info.get("features") or 0) > MAX_ROWS:
            raise too_many_rows(int(info["features"]))
        gdf = pyogrio.read_dataframe(path, **kwargs)
    except GridwatchError:
        raise
    except Exception as exc:  # pyogrio/GDAL raise DataSourceError, DataLayerError, UnicodeDecodeError ...
        raise InputError(
            f"无法读取图层数据: {display}（文件可能已损坏或不完整）",
            f"cannot read {display} (the file may be damaged or incomplete)",
            code="unreadable",
        ) from exc
    crs_wkt = gdf.crs.to_wkt() if gdf.crs is not None else None
    geoms = np.asarray(gdf.geometry.values, dtype=object) if "geometry" in gdf else np.full(len(gdf), None)
    attrs = pd.DataFrame(gdf.drop(columns="geometry", errors="ignore"))
    return attrs, geoms, crs_wkt, names


def read_ogr(dataset: Dataset, encoding: str | None, select: Select | None) -> RawTable:
    """Read a GeoPackage, GeoJSON or KML layer through GDAL, with the CRS it declares
    (GeoJSON and KML without one: lon/lat, EPSG:4326, by their specifications).

    Parameters
    ----------
    dataset : Dataset
        The file, and :attr:`Dataset.layer` for one layer of several.
    encoding : str, optional
        Not used: these formats are UTF-8 by definition.
    select : callable, optional
        Given every attribute column's name, returns the names to read.

    Raises
    ------
    InputError, TooLarge
    """
    attrs, geoms, crs_wkt, names = _ogr_read(dataset.path, dataset.layer, None, select, dataset.name)
    table = RawTable(dataset, attrs, geoms, None, False, "none", None, "utf-8", "file", [], names)
    if crs_wkt:
        table.crs = pyproj.CRS.from_user_input(crs_wkt)
        table.crs_source = "file"
    elif dataset.kind in ("geojson", "kml"):
        table.crs = pyproj.CRS.from_epsg(4326)
        table.crs_source = "file"
    return table


def list_layers(path: Path) -> list[str]:
    """The names of the layers in a GeoPackage or KML file, as GDAL lists them."""
    return [str(row[0]) for row in pyogrio.list_layers(path)]
