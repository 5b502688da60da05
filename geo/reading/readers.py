"""The readers of survey files, one per format, in a registry keyed by format — as the
exporters are (:func:`geo.output.export.register_renderer`).

A :class:`Reader` names its format (the :attr:`Dataset.kind` of what it reads), the file
suffixes that are of that format, the function that reads a dataset into a
:class:`~geo.reading.datasets.RawTable`, the check that the file's content is what its name
says, and, for a container of several layers, how to list them.  :func:`read_dataset`
looks the reader up, runs its check and its read, and settles the CRS of what it read: the
file's own, an override, or inferred from the bulk of its coordinates — and then said so —
with the rows whose coordinates do not fit it marked (:attr:`RawTable.misfit`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyproj
import shapely

from geo.errors import InputError, UnsupportedFile
from geo.reading import content, tables, vectors
from geo.reading.crs import CRSChoice, datum_warning
from geo.reading.crs_declared import DECLARED_MAJORITY, declared_mismatch, fit_rows
from geo.reading.crs_infer import infer_crs_rows, inferred_note
from geo.reading.datasets import MAX_ROWS, Dataset, RawTable, Select, too_many_rows

__all__ = [
    "Reader",
    "check_content",
    "get_reader",
    "read_dataset",
    "reader_for_suffix",
    "readers",
    "register_reader",
    "unregister_reader",
]


Read = Callable[[Dataset, str | None, Select | None], RawTable]


@dataclass(frozen=True)
class Reader:
    """One format of survey file.

    Parameters
    ----------
    format : str
        Registry key: the :attr:`Dataset.kind` of the datasets it reads (``"shp"``, ``"csv"`` …).
    suffixes : tuple of str
        Lower-case file suffixes of the format, with the dot (``(".geojson", ".json")``); a
        file with one of them is listed as a dataset of this format and unpacked from zips.
    read : callable
        ``read(dataset, encoding, select) -> RawTable``: the attributes (only the columns
        ``select`` keeps, when given), geometry and the CRS the file declares (None when it
        declares none); ``encoding`` is the text encoding a person named, or None.
    check : callable, optional
        ``check(dataset)``: refuses, before :attr:`read` opens it, a file whose content is not
        of this format (:mod:`geo.reading.content`).
    layers : callable, optional
        ``layers(path) -> list of str``: the layers of a container of several (GeoPackage,
        KML); each is read as a dataset of its own.
    """

    format: str
    suffixes: tuple[str, ...]
    read: Read
    check: Callable[[Dataset], None] | None = None
    layers: Callable[[Path], list[str]] | None = None


_READERS: dict[str, Reader] = {}


def register_reader(reader: Reader) -> Reader:
    """Add ``reader`` to the registry, replacing one of the same format.

    Raises
    ------
    ValueError
        The format is not lower-case ASCII, or a suffix lacks its dot or is not lower case.
    """
    if not re.fullmatch(r"[a-z][a-z0-9_]*", reader.format):
        raise ValueError(f"reader format must be lower-case ASCII: {reader.format!r}")
    for suffix in reader.suffixes:
        if not re.fullmatch(r"\.[a-z0-9_]+", suffix):
            raise ValueError(f"reader suffix must be lower case and start with a dot: {suffix!r}")
    _READERS[reader.format] = reader
    return reader


def unregister_reader(fmt: str) -> None:
    """Remove the reader registered for ``fmt`` (no error when absent)."""
    _READERS.pop(fmt, None)


def readers() -> list[Reader]:
    """Registered readers in registration order (built-ins first)."""
    return list(_READERS.values())


def get_reader(fmt: str) -> Reader:
    """The reader of ``fmt`` (a format like ``"shp"``).

    Raises
    ------
    UnsupportedFile
        ``code="unsupported_format"``, listing the known formats.
    """
    if fmt in _READERS:
        return _READERS[fmt]
    known = ", ".join(_READERS)
    raise UnsupportedFile(
        f"不支持的文件格式: {fmt}（可用: {known}）",
        f"unsupported file format: {fmt} (known: {known})",
        code="unsupported_format",
        details={"format": fmt, "known": list(_READERS)},
    )


def reader_for_suffix(suffix: str) -> Reader | None:
    """The reader of files ending in ``suffix`` (``".shp"``, any case), or None."""
    key = suffix.lower()
    for reader in _READERS.values():
        if key in reader.suffixes:
            return reader
    return None


def check_content(dataset: Dataset) -> None:
    """Refuse a file whose content is not what its name says, before any reader opens it.

    Runs the check of the dataset's reader (:mod:`geo.reading.content`).  Shapefiles are
    checked further by :func:`geo.reading.shp_checks.check_shapefile`, tables when they are
    read.

    Raises
    ------
    UnsupportedFile
        ``content_mismatch``: the content is of another kind; ``unsupported_format``: no
        reader reads the dataset's kind.
    InputError
        ``crs_link``: a GeoJSON whose ``crs`` names a URL or file.
    TooLarge
        A GeoPackage with more rows than :data:`geo.reading.datasets.MAX_ROWS`.
    """
    reader = get_reader(dataset.kind)
    if reader.check is not None:
        reader.check(dataset)


def read_dataset(
    dataset: Dataset,
    encoding: str | None = None,
    crs: CRSChoice | None = None,
    hint_lon: float | None = None,
    select: Select | None = None,
) -> RawTable:
    """Read ``dataset`` with decoded text and a resolved CRS.

    Call it in the reading helper (:mod:`geo.reading.untrusted`) for files users send.

    Parameters
    ----------
    encoding : str, optional
        Override for DBF/CSV text encoding (e.g. ``"GBK"``).
    crs : CRSChoice, optional
        Override for the source CRS (``gcj02`` for coordinates copied from Gaode/Tencent).
    hint_lon : float, optional
        Longitude (degrees) of the existing grid, used to tell the central meridian of
        Gauss-Krüger coordinates without a zone prefix and no .prj.
    select : callable, optional
        Given every attribute column's name, returns the names to read; the others are
        named in :attr:`RawTable.columns` but never decoded.

    Raises
    ------
    UnsupportedFile
        ``unsupported_format``: no reader is registered for ``dataset.kind``;
        ``content_mismatch``: the file is not what its name says.
    InputError, EncodingError, CRSError, TooLarge
    """
    check_content(dataset)
    table = get_reader(dataset.kind).read(dataset, encoding, select)
    if len(table.attrs) > MAX_ROWS:
        raise too_many_rows(len(table.attrs))
    _resolve_crs(table, crs, hint_lon)
    return table


def _resolve_crs(table: RawTable, override: CRSChoice | None, hint_lon: float | None) -> None:
    """Settle the CRS of ``table`` and which of its rows have coordinates that do not fit it.

    Without a declared CRS it is inferred from the bulk of the rows
    (:func:`geo.reading.crs_infer.infer_crs_rows`); a declared one (``override``, a .prj, the file's own) is
    checked row by row (:func:`geo.reading.crs_declared.fit_rows`) and refused when most rows do not fit it —
    but a GeoJSON without a ``crs`` member, lon/lat only by convention, whose coordinates are
    mostly not lon/lat has its CRS inferred instead.  The rows that do not fit are marked in
    :attr:`RawTable.misfit`, to be rejected by row.
    """
    if override is not None:
        table.crs = override.crs
        table.gcj02 = override.gcj02
        table.crs_source = "override"
    if table.crs is None and not table.gcj02:
        geoms = table.geometry
        if (shapely.is_missing(geoms) | shapely.is_empty(geoms)).all():
            raise InputError("文件中没有任何几何图形", "the file holds no geometry", code="no_geometry")
        _infer_crs(table, shapely.bounds(geoms), hint_lon)
    else:
        _check_declared(table, hint_lon)
    if table.crs is not None:
        w = datum_warning(table.crs)
        if w is not None:
            table.warnings.append(w)


def _infer_crs(table: RawTable, bounds: np.ndarray, hint_lon: float | None) -> None:
    guess, fit = infer_crs_rows(bounds[:, 0], bounds[:, 1], bounds[:, 2], bounds[:, 3], hint_lon=hint_lon)
    table.crs = guess.crs
    table.crs_source = "inferred"
    table.crs_note = (guess.reason_zh, guess.reason_en)
    table.warnings.append((guess.reason_zh, guess.reason_en))
    table.warnings.append(inferred_note(fit))
    table.misfit = fit.codes if fit.misfit else None


def _check_declared(table: RawTable, hint_lon: float | None) -> None:
    crs = pyproj.CRS.from_epsg(4326) if table.gcj02 else table.crs
    if crs is None:
        return
    bounds = shapely.bounds(table.geometry)
    fit = fit_rows(crs, bounds[:, 0], bounds[:, 1], bounds[:, 2], bounds[:, 3])
    if fit is None or fit.total == 0:
        return
    if fit.fit < DECLARED_MAJORITY * fit.total:
        if (
            table.crs_source == "file"
            and table.dataset.kind == "geojson"
            and not content.declares_crs(table.dataset)
        ):
            declared = table.crs_label
            _infer_crs(table, bounds, hint_lon)
            table.warnings.insert(
                -2,
                (
                    f"GeoJSON 文件没有声明坐标系（crs），按惯例应为经纬度（{declared}），但大多数坐标不是经纬度：改为按坐标推断",
                    f"the GeoJSON declares no crs, so lon/lat by convention ({declared}), but most of its "
                    "coordinates are not lon/lat: the CRS is inferred from them instead",
                ),
            )
            return
        raise declared_mismatch(
            table.crs_label, table.crs_source, fit, (bounds[:, 0], bounds[:, 1], bounds[:, 2], bounds[:, 3])
        )
    table.misfit = fit.codes if fit.misfit else None


# --------------------------------------------------------------------------- the built-in formats

register_reader(Reader("shp", (".shp",), vectors.read_shapefile, content.check_shp))
register_reader(Reader("gpkg", (".gpkg",), vectors.read_ogr, content.check_gpkg, vectors.list_layers))
register_reader(Reader("geojson", (".geojson", ".json"), vectors.read_ogr, content.check_geojson))
register_reader(Reader("kml", (".kml", ".kmz"), vectors.read_ogr, content.check_kml, vectors.list_layers))
register_reader(Reader("csv", (".csv",), tables.read_table))
register_reader(Reader("xlsx", (".xlsx",), tables.read_table, content.check_xlsx))
