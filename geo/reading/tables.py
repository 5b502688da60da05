"""CSV and XLSX tables of points: bounded before their records are parsed, CSV text decoded
the one way CSV files are (:func:`geo.reading.charsets.decode_csv_text`), the coordinate
columns found by name (经度/纬度, lon/lat, x/y …)."""

from __future__ import annotations

import csv
import io
import re
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import shapely

from geo.errors import EncodingError, GridwatchError, InputError, TooLarge
from geo.reading.charsets import decode_csv_text
from geo.reading.datasets import (
    MAX_COLUMNS,
    MAX_LINE_BYTES,
    MAX_ROWS,
    MAX_XLSX_CELLS,
    Dataset,
    RawTable,
    Select,
    too_many_columns,
    too_many_rows,
)
from geo.reading.fields import norm_key
from geo.reading.values import parse_numbers

__all__ = ["read_table", "read_table_file", "scan_sheet"]

_LON_NAMES = (
    "经度",
    "lon",
    "lng",
    "long",
    "longitude",
    "x",
    "横坐标",
    "东坐标",
    "x坐标",
    "jd",
    "point_x",
    "dx",
)


_LAT_NAMES = ("纬度", "lat", "latitude", "y", "纵坐标", "北坐标", "y坐标", "wd", "point_y", "dy")


def read_table(dataset: Dataset, override: str | None, select: Select | None) -> RawTable:
    """Read a CSV or XLSX table of points: one point per row from its coordinate columns
    (经度/纬度, lon/lat, x/y …, in whatever CRS they are), the other columns as attributes.
    Tables declare no CRS: it is settled from the coordinates by the caller.

    Parameters
    ----------
    dataset : Dataset
        A ``csv`` or ``xlsx`` dataset.
    override : str, optional
        CSV text encoding, overriding detection.
    select : callable, optional
        Given every column's name, returns the names to read.

    Raises
    ------
    InputError
        ``no_coordinates``, ``unreadable``.
    EncodingError, TooLarge
    """
    df, names, used_enc = read_table_file(dataset.path, dataset.kind, override, select, dataset.name)
    df.columns = [str(c).strip() for c in df.columns]
    names = [n.strip() for n in names]
    lon_col = _find_col(pd.Index(names), _LON_NAMES)
    lat_col = _find_col(pd.Index(names), _LAT_NAMES)
    if lon_col is None or lat_col is None:
        raise InputError(
            "表格中找不到坐标列（需要 经度/纬度、lon/lat 或 x/y 列）",
            "no coordinate columns in the table (need 经度/纬度, lon/lat or x/y)",
            code="no_coordinates",
        )
    x, _ = parse_numbers(df[lon_col])
    y, _ = parse_numbers(df[lat_col])
    xs = x.to_numpy(dtype=float)
    ys = y.to_numpy(dtype=float)
    ok = np.isfinite(xs) & np.isfinite(ys)
    geoms = np.full(len(df), None, dtype=object)
    geoms[ok] = shapely.points(xs[ok], ys[ok])
    attrs = df.drop(columns=[lon_col, lat_col])
    names = [n for n in names if n not in (lon_col, lat_col)]
    return RawTable(
        dataset,
        attrs,
        geoms,
        None,
        False,
        "none",
        None,
        used_enc,
        "content" if used_enc else None,
        [],
        names,
    )


def read_table_file(
    path: Path, kind: str, encoding: str | None = None, select: Select | None = None, name: str | None = None
) -> tuple[pd.DataFrame, list[str], str | None]:
    """A CSV or XLSX table: the selected columns as text (CSV) or cell values (XLSX).

    Bounds are checked before the records are parsed: at most :data:`MAX_COLUMNS`
    columns, CSV lines of at most :data:`MAX_LINE_BYTES`, XLSX sheets whose cell
    references stay within :data:`MAX_COLUMNS` columns, :data:`MAX_ROWS` rows and
    :data:`MAX_XLSX_CELLS` cells.

    Parameters
    ----------
    path : Path
        The file.
    kind : {"csv", "xlsx"}
    encoding : str, optional
        CSV text encoding; by default UTF-8 (with or without BOM), else GB18030.
    select : callable, optional
        Given every column name, returns the names to keep (the others are not decoded).
    name : str, optional
        Name to report.

    Returns
    -------
    (DataFrame, list of str, str or None)
        The kept columns, every column name, and the CSV encoding used.

    Raises
    ------
    InputError, EncodingError, TooLarge
    """
    display = name or path.name
    try:
        if kind == "csv":
            return _read_csv(path, encoding, select)
        return (*_read_xlsx(path, select, display), None)
    except GridwatchError:
        raise
    except Exception as exc:  # pandas and openpyxl raise many parser errors
        raise InputError(
            f"无法读取表格: {display}（文件可能已损坏）",
            f"cannot read table {display} (the file may be damaged)",
            code="unreadable",
        ) from exc


def _read_csv(path: Path, override: str | None, select: Select | None) -> tuple[pd.DataFrame, list[str], str]:
    raw = path.read_bytes()
    ends = np.flatnonzero(np.frombuffer(raw, dtype=np.uint8) == 0x0A)
    if len(raw):
        starts = np.concatenate(([0], ends + 1))
        stops = np.concatenate((ends, [len(raw)]))
        longest = int((stops - starts).max())
        if longest > MAX_LINE_BYTES:
            raise TooLarge(
                f"CSV 文件中有过长的行（{longest:,} 字节，上限 {MAX_LINE_BYTES:,}），请检查文件",
                f"a line of the CSV file is too long ({longest:,} bytes, limit {MAX_LINE_BYTES:,})",
                code="line_too_long",
            )
    if len(ends) > MAX_ROWS:
        raise too_many_rows(len(ends))
    decoded = decode_csv_text(raw, override)
    if decoded is None:
        raise EncodingError(
            "无法识别 CSV 文件编码，请指定 --encoding", "cannot tell the CSV encoding: pass --encoding"
        )
    text, used = decoded
    del raw
    first = text.split("\n", 1)[0]
    width = len(next(csv.reader([first]), []))
    if width > MAX_COLUMNS:
        raise too_many_columns(width)
    header = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, nrows=0)
    names = [str(c) for c in header.columns]
    positions = _selected_positions(names, select)
    frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, usecols=positions)
    return frame, names, used


def _selected_positions(names: list[str], select: Select | None) -> list[int]:
    """Positions of the kept columns: the selected ones and the coordinate columns."""
    stripped = [n.strip() for n in names]
    keep = set(stripped if select is None else select(stripped))
    for wanted in (_LON_NAMES, _LAT_NAMES):
        col = _find_col(pd.Index(stripped), wanted)
        if col is not None:
            keep.add(col)
    return [i for i, n in enumerate(stripped) if n in keep]


def _find_col(columns: pd.Index, names: tuple[str, ...]) -> str | None:
    """The column whose name is one of ``names``, compared as field names are
    (:func:`geo.reading.fields.norm_key`)."""
    by_key = {norm_key(str(c)): str(c) for c in columns}
    for n in names:
        key = norm_key(n)
        if key in by_key:
            return by_key[key]
    return None


_CELL_REF = re.compile(rb'<c\b[^>]*?\br="([A-Z]{1,4})([0-9]{1,9})"')

_CELL = re.compile(rb"<c[\s>/]")

_DIMENSION = re.compile(rb'<dimension\s+ref="([A-Z]{1,4})?([0-9]{1,9})?:?([A-Z]{1,4})?([0-9]{1,9})?"')


def _column_number(letters: bytes) -> int:
    n = 0
    for ch in letters:
        n = n * 26 + (ch - 64)
    return n


def scan_sheet(zf: zipfile.ZipFile, member: str) -> tuple[int, int, int]:
    """Largest column and row referenced, and the number of cells, of a worksheet's XML,
    read in chunks (nothing of it is kept)."""
    max_col = max_row = cells = 0
    tail = b""
    with zf.open(member) as fh:
        while chunk := fh.read(1 << 22):
            block = tail + chunk
            cut = block.rfind(b"<")  # a tag cut by the chunk boundary is scanned with the next one
            cut = max(cut, 0) if len(chunk) == 1 << 22 else len(block)
            body, tail = block[:cut], block[cut:]
            cells += len(_CELL.findall(body))
            for m in _DIMENSION.finditer(body):
                if m.group(3):
                    max_col = max(max_col, _column_number(m.group(3)))
                if m.group(4):
                    max_row = max(max_row, int(m.group(4)))
            refs = _CELL_REF.findall(body)
            if refs:
                max_col = max(max_col, max(_column_number(c) for c in {c for c, _ in refs}))
                max_row = max(max_row, max(int(r) for _, r in refs))
    return max_col, max_row, cells


def _read_xlsx(path: Path, select: Select | None, display: str) -> tuple[pd.DataFrame, list[str]]:
    import openpyxl

    wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
    try:
        if not wb.worksheets:
            raise InputError(f"工作簿中没有工作表: {display}", f"the workbook has no sheet: {display}")
        ws = wb.worksheets[0]
        member = str(getattr(ws, "_worksheet_path", "")).lstrip("/")
        with zipfile.ZipFile(path) as zf:
            max_col, max_row, cells = scan_sheet(zf, member)
        if max_col > MAX_COLUMNS:
            raise too_many_columns(max_col)
        if max_row > MAX_ROWS:
            raise too_many_rows(max_row)
        if cells > MAX_XLSX_CELLS:
            raise TooLarge(
                f"工作表单元格过多（{cells:,} 个，上限 {MAX_XLSX_CELLS:,}），请拆分后再上传",
                f"the sheet holds too many cells ({cells:,}, limit {MAX_XLSX_CELLS:,}): split it",
                code="too_many_cells",
            )
        first = next(ws.iter_rows(min_row=1, max_row=1, max_col=MAX_COLUMNS, values_only=True), ())
        width = max((i + 1 for i, v in enumerate(first) if v is not None), default=0)
        names: list[str] = []
        for i, v in enumerate(first[:width]):
            base = f"Unnamed: {i}" if v is None else str(v).strip()
            label, k = base, 1
            while label in names:  # duplicate headers are numbered, as pandas does
                label = f"{base}.{k}"
                k += 1
            names.append(label)
        positions = _selected_positions(names, select)
        columns: list[list[Any]] = [[] for _ in positions]
        if width:
            for row in ws.iter_rows(min_row=2, max_col=width, values_only=True):
                if all(v is None for v in row):
                    continue
                for out, i in zip(columns, positions, strict=True):
                    out.append(row[i] if i < len(row) else None)
        frame = pd.DataFrame(
            {names[i]: pd.Series(col, dtype=object) for i, col in zip(positions, columns, strict=True)}
        )
        return frame, names
    finally:
        wb.close()
