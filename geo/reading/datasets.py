"""What reading works on: a :class:`Dataset` found in an upload, the :class:`RawTable` a
reader makes of it, and the limits on what one file may declare or hold."""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyproj

from geo.errors import TooLarge

__all__ = [
    "MAX_COLUMNS",
    "MAX_LINE_BYTES",
    "MAX_ROWS",
    "MAX_XLSX_CELLS",
    "Dataset",
    "RawTable",
    "Select",
    "too_many_columns",
    "too_many_rows",
]


@dataclass
class Dataset:
    """One readable dataset found in a source."""

    name: str  # path inside the source, as the user would recognise it
    path: Path  # on disk
    kind: str  # shp, gpkg, geojson, kml, csv, xlsx
    layer: str | None = None  # layer inside a multi-layer container


@dataclass
class RawTable:
    """A dataset read as-is: attributes as found, geometry as shapely array, its CRS."""

    dataset: Dataset
    attrs: pd.DataFrame
    geometry: np.ndarray
    crs: pyproj.CRS | None
    gcj02: bool
    crs_source: str  # "file", "prj", "override", "inferred"
    crs_note: tuple[str, str] | None
    encoding: str | None
    encoding_source: str | None
    warnings: list[tuple[str, str]] = field(default_factory=list)
    #: every attribute column of the file, in order; ``attrs`` holds only those read
    columns: list[str] = field(default_factory=list)
    #: per row, why its coordinates do not fit the CRS (``geo.reading.crs_fit.MISFIT_*``, see
    #: :func:`geo.reading.crs_fit.misfit_reason`; 0: they fit, or are judged later); None when all fit
    misfit: np.ndarray | None = None

    @property
    def crs_label(self) -> str:
        if self.gcj02:
            return "GCJ-02"
        if self.crs is None:
            return "unknown"
        epsg = self.crs.to_epsg()
        return f"EPSG:{epsg} {self.crs.name}" if epsg else self.crs.name


#: Limits on what one file may declare or hold, checked before its records are read where
#: the format tells (XLSX cell references, DBF headers, GeoPackage row counts, CSV lines).
MAX_COLUMNS = 1000

MAX_ROWS = 10_000_000

MAX_XLSX_CELLS = 50_000_000

MAX_LINE_BYTES = 256 * 1024

Select = Callable[[list[str]], Collection[str]]


def too_many_rows(n: int) -> TooLarge:
    """The error for a file of ``n`` rows, more than :data:`MAX_ROWS`."""
    return TooLarge(
        f"文件行数过多（{n:,} 行，上限 {MAX_ROWS:,}），请拆分后再上传",
        f"the file holds too many rows ({n:,}, limit {MAX_ROWS:,}): split it",
        code="too_many_rows",
    )


def too_many_columns(n: int) -> TooLarge:
    """The error for a table of ``n`` columns, more than :data:`MAX_COLUMNS`."""
    return TooLarge(
        f"表格列数过多（{n:,} 列，上限 {MAX_COLUMNS:,}），请删去无用的列后再上传",
        f"the table has too many columns ({n:,}, limit {MAX_COLUMNS:,}): remove unused columns",
        code="too_many_columns",
    )
