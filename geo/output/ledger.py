"""The feature ledger (台账): a survey layer's stored features as a table to hand on.

One row per current feature, with every field under its Chinese (or English) label, the status as
stored *and* as surveyed (``当前状态(原值)``: what the file said before it was mapped), the unit grid
it counts in, the batch that last wrote it, and its position (lon/lat in CGCS2000, EPSG:4490).  CSV
(UTF-8 with BOM, for Excel and WPS), XLSX (one sheet, text kept as text), GeoJSON or GeoPackage.
Given the fids of a selection (a filtered feature list), only those features, in that order.
"""

from __future__ import annotations

import csv
import io
import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import openpyxl
import pandas as pd
import pyproj
import shapely

from geo.errors import InputError
from geo.output.tables import spreadsheet_cell
from geo.output.to_xlsx import PAGE_NUMBERS
from geo.reading import crs as crsmod
from geo.store.base import Store
from layers.base import LayerSpec

__all__ = ["LEDGER_FORMATS", "ledger_table", "render_ledger"]

LEDGER_FORMATS: dict[str, tuple[str, str]] = {
    "csv": ("text/csv; charset=utf-8", "csv"),
    "xlsx": ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "xlsx"),
    "geojson": ("application/geo+json", "geojson"),
    "gpkg": ("application/geopackage+sqlite3", "gpkg"),
}

_EXTRA = {
    "gw_unit": ("所在单元网格", "Unit grid"),
    "gw_batch": ("导入批次", "Import batch"),
    "lon": ("经度", "Longitude"),
    "lat": ("纬度", "Latitude"),
}


def ledger_table(
    store: Store, spec: LayerSpec, fids: np.ndarray | None = None
) -> tuple[pd.DataFrame, np.ndarray]:
    """The current features of ``spec``: attributes (stored fields, unit, batch, lon, lat) and
    their geometries in lon/lat (EPSG:4490), ordered by fid; with ``fids`` only those, in that
    order (fids that are no current feature are left out)."""
    raw = {f.name[: -len("_raw")]: f.name for f in spec.raw_fields}
    cols = [c for f in spec.fields for c in (f.name, raw.get(f.name)) if c]  # the raw value beside its code
    attrs = store.read_attributes(spec, [*cols, "gw_unit", "gw_batch"])
    stored, geoms = store.read_geometry(spec)
    epsg = store.srs_epsg()
    if len(geoms) and epsg is not None:
        t = crsmod.transformer(pyproj.CRS.from_epsg(epsg), pyproj.CRS.from_epsg(4490))
        geoms = shapely.transform(geoms, lambda xy: np.column_stack(t.transform(xy[:, 0], xy[:, 1])))
    by_fid = dict(zip(stored.tolist(), range(len(stored)), strict=True))
    order = (
        np.array([by_fid[int(f)] for f in attrs["fid"]], dtype=np.int64) if len(attrs) else np.empty(0, int)
    )
    geoms = np.asarray(geoms, dtype=object)[order] if len(order) else np.empty(0, dtype=object)
    if fids is not None:
        row_of = dict(zip(attrs["fid"].tolist(), range(len(attrs)), strict=True))
        chosen = np.array([row_of[f] for f in np.asarray(fids).tolist() if f in row_of], dtype=np.int64)
        attrs = attrs.iloc[chosen]
        geoms = geoms[chosen] if len(chosen) else np.empty(0, dtype=object)
    inner = shapely.point_on_surface(geoms) if len(geoms) else geoms
    attrs = attrs.drop(columns=["fid"]).reset_index(drop=True)
    attrs["lon"] = np.round(shapely.get_x(inner), 7) if len(inner) else []
    attrs["lat"] = np.round(shapely.get_y(inner), 7) if len(inner) else []
    return attrs, geoms


def _labels(spec: LayerSpec, lang: str) -> dict[str, str]:
    zh = lang != "en"
    out = {f.name: f.label_zh if zh else f.label_en for f in spec.stored_fields}
    out.update({k: v[0] if zh else v[1] for k, v in _EXTRA.items()})
    return out


def _plain(v: Any) -> Any:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return None
    if isinstance(v, np.generic):
        return v.item()
    return v


def render_ledger(
    store: Store,
    spec: LayerSpec,
    fmt: str,
    lang: str = "zh",
    fids: np.ndarray | None = None,
    headers: str | None = None,
) -> bytes:
    """The ledger of ``spec`` as ``fmt`` (``csv``, ``xlsx``, ``geojson`` or ``gpkg``); with
    ``fids`` only those features, in that order.

    CSV and XLSX carry headers in ``headers`` (``"zh"``, ``"en"`` or ``"code"``, the field names;
    default ``lang``); GeoJSON and GeoPackage the field names (GeoJSON lists their labels in
    ``columns``), geometry in lon/lat (EPSG:4490).

    Raises
    ------
    InputError
        ``code="bad_format"`` for another format; ``code="bad_layer"`` for the unit grid.
    """
    if fmt not in LEDGER_FORMATS:
        raise InputError(
            f"台账格式应为 {'、'.join(LEDGER_FORMATS)}",
            f"ledger format must be one of {', '.join(LEDGER_FORMATS)}",
            code="bad_format",
        )
    if spec.is_grid:
        raise InputError("单元网格没有台账", "the unit grid has no ledger", code="bad_layer")
    table, geoms = ledger_table(store, spec, fids)
    columns = list(table.columns)
    labels = {c: c for c in columns} if headers == "code" else _labels(spec, headers or lang)

    def rows() -> Iterator[list[Any]]:  # one at a time: a layer of a million rows is never listed twice
        for row in table.itertuples(index=False, name=None):
            yield [_plain(v) for v in row]

    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\r\n")
        writer.writerow([labels[c] for c in columns])
        for row in rows():
            writer.writerow(
                ["" if v is None else spreadsheet_cell(str(v)) if isinstance(v, str) else v for v in row]
            )
        return buf.getvalue().encode("utf-8-sig")
    if fmt == "xlsx":
        wb = openpyxl.Workbook(write_only=True)
        ws = wb.create_sheet(spec.label_zh if lang != "en" else spec.label_en[:31])
        # printed as the statistics are: A4 landscape, fitted to the width, the header on every page
        ws.page_setup.orientation = "landscape"
        ws.page_setup.paperSize = "9"  # A4
        ws.page_setup.fitToWidth = 1
        ws.page_setup.fitToHeight = 0
        ws.sheet_properties.pageSetUpPr.fitToPage = True
        ws.print_title_rows = "1:1"
        ws.oddFooter.center.text = PAGE_NUMBERS
        ws.append([labels[c] for c in columns])
        for row in rows():
            ws.append([spreadsheet_cell(v) for v in row])
        out = io.BytesIO()
        wb.save(out)
        return out.getvalue()
    if fmt == "gpkg":
        return _gpkg(spec, table, geoms)
    features = []
    for row, geom in zip(rows(), geoms, strict=True):
        props = dict(zip(columns, row, strict=True))
        del props["lon"], props["lat"]
        features.append(
            {
                "type": "Feature",
                "geometry": shapely.geometry.mapping(geom) if geom is not None else None,
                "properties": props,
            }
        )
    doc = {
        "type": "FeatureCollection",
        "name": spec.name,
        "columns": {c: labels[c] for c in columns if c not in ("lon", "lat")},
        "features": features,
    }
    return json.dumps(doc, ensure_ascii=False, default=str).encode("utf-8")


def _gpkg(spec: LayerSpec, table: pd.DataFrame, geoms: np.ndarray) -> bytes:
    """The ledger as one layer (named after ``spec``) of a GeoPackage, EPSG:4490."""
    import pyogrio

    table = table.drop(columns=["lon", "lat"]).reset_index(drop=True)
    for f in spec.stored_fields:  # numbers as numbers, whatever the read gave
        if f.kind in ("int", "float") and f.name in table:
            table[f.name] = pd.to_numeric(table[f.name], errors="coerce")
    frame = gpd.GeoDataFrame(
        table,
        geometry=gpd.GeoSeries(list(geoms), crs=4490),
        crs=4490,
    )
    with tempfile.TemporaryDirectory(prefix="gridwatch-ledger-") as tmp:
        path = Path(tmp) / "ledger.gpkg"
        pyogrio.write_dataframe(frame, path, layer=spec.name, driver="GPKG")
        return path.read_bytes()
