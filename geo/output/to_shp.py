"""The ``shp`` renderer: every level of a report as a shapefile, in one zip."""

from __future__ import annotations

import csv
import io
import json
import re
import tempfile
import zipfile
from pathlib import Path

import pandas as pd

from geo.figures.report import StatsReport
from geo.output.tables import csv_value, level_names, lonlat_frame, resolve_level


def _dbf_names(columns: list[str]) -> dict[str, str]:
    """Column -> DBF field name: kept when a short ASCII identifier, else ``F01``, ``F02`` ..."""
    out: dict[str, str] = {}
    used: set[str] = set()
    for col in columns:
        if re.fullmatch(r"[A-Za-z][A-Za-z0-9_]{0,9}", col) and col.upper() not in used:
            out[col] = col
            used.add(col.upper())
    n = 0
    for col in columns:
        if col in out:
            continue
        while True:
            n += 1
            code = f"F{n:02d}"
            if code not in used:
                break
        out[col] = code
        used.add(code)
    return out


def _text_encoding(frames: list[pd.DataFrame]) -> str:
    """GBK when every text value encodes in it, else GB18030 (all of Unicode)."""
    for frame in frames:
        for col in frame.columns:
            if col == "geometry" or pd.api.types.is_numeric_dtype(frame[col].dtype):
                continue
            for v in frame[col].dropna():
                try:
                    str(v).encode("gbk")
                except UnicodeEncodeError:
                    return "GB18030"
    return "GBK"


def _write_set(frame: pd.DataFrame, path: Path, encoding: str) -> None:
    """``frame`` as the shapefile ``path`` (.shp, .shx, .dbf, .prj) with a ``.cpg`` naming ``encoding``."""
    import pyogrio

    pyogrio.write_dataframe(frame, path, driver="ESRI Shapefile", encoding=encoding)
    path.with_suffix(".cpg").write_text(encoding, encoding="ascii")


def write_shapefile(report: StatsReport, level: str | None, path: str | Path) -> list[Path]:
    """One level of ``report`` as the shapefile ``path`` itself (``x.shp`` with ``x.shx``,
    ``x.dbf``, ``x.prj`` and ``x.cpg`` beside it), columns named as in :func:`render_shp`;
    returns the files written."""
    lv = resolve_level(report, level)
    frame = lonlat_frame(report, lv)
    names = _dbf_names([str(c) for c in report.levels[lv].columns])
    target = Path(path)
    _write_set(frame.rename(columns=names), target, _text_encoding([frame]))
    return [target.with_suffix(ext) for ext in (".shp", ".shx", ".dbf", ".prj", ".cpg")]


def render_shp(report: StatsReport, level: str | None = None) -> bytes:
    """Every level as a shapefile ``stats_<level>`` in one zip, CRS EPSG:4490.

    DBF field names are at most 10 bytes, so columns keep their name when it is
    a short ASCII identifier (``code``, ``name``) and otherwise get a code
    ``F01``, ``F02`` ... (the same code in every level).  ``fields.csv`` in the
    zip (UTF-8 with BOM) lists code, column, Chinese and English header.  Text
    is written in GBK with a ``.cpg`` saying ``GBK`` (GB18030 when a value is
    outside GBK).  The ``UNASSIGNED`` row is kept with a null shape.
    """
    resolve_level(report, level)
    levels = level_names(report)
    frames = {lv: lonlat_frame(report, lv) for lv in levels}
    columns: list[str] = []
    for lv in levels:
        columns += [str(c) for c in report.levels[lv].columns if str(c) not in columns]
    names = _dbf_names(columns)
    encoding = _text_encoding(list(frames.values()))

    fields = io.StringIO()
    writer = csv.writer(fields, lineterminator="\r\n")
    writer.writerow(["code", "column", "中文名", "English"])
    for col in columns:
        zh, en = report.label(col)
        writer.writerow([csv_value(v) for v in (names[col], col, zh, en)])

    out = io.BytesIO()
    with (
        tempfile.TemporaryDirectory(prefix="gridwatch-export-") as tmp,
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf,
    ):
        for lv in levels:
            _write_set(frames[lv].rename(columns=names), Path(tmp) / f"stats_{lv}.shp", encoding)
            for part in sorted(Path(tmp).glob(f"stats_{lv}.*")):
                zf.write(part, part.name)
        zf.writestr("fields.csv", fields.getvalue().encode("utf-8-sig"))
        if report.provenance is not None:
            about = json.dumps(report.provenance, ensure_ascii=False, indent=2)
            zf.writestr("about.json", about.encode("utf-8"))
    return out.getvalue()
