"""Statistics renderers: one small interface per output format, kept in a registry.

A :class:`StatsReport` holds the per-unit tables of one tally (one table per level
of the grid hierarchy), their bilingual column labels, the "as of" date and,
optionally, the unit outlines.  A :class:`Renderer` turns a report into the bytes
of one file format.  Built-in formats are registered exactly like add-ons::

    register_renderer(Renderer("ods", "ods", "application/vnd.oasis.opendocument.spreadsheet", render_ods))
    data = get_renderer("xlsx").render(report, None)

Built-ins: ``csv``, ``xlsx``, ``json``, ``geojson``, ``gpkg`` and ``shp`` (a zip).
Single-level formats (csv, json, geojson) render the level asked for, by default
the report's first; multi-level formats (xlsx, gpkg, shp) render every level in
the report, and ``level`` only chooses the sheet shown first in xlsx.

Each built-in renders in its own module (``geo.output.to_<format>``), over what
:mod:`geo.output.tables` gives them all (levels, column kinds, totals, spreadsheet cells).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote

from geo.errors import InputError
from geo.figures.report import StatsReport
from geo.output.tables import level_label
from geo.output.to_csv import render_csv
from geo.output.to_geojson import render_geojson
from geo.output.to_gpkg import render_gpkg
from geo.output.to_json import render_json
from geo.output.to_shp import render_shp
from geo.output.to_xlsx import render_xlsx

__all__ = [
    "Renderer",
    "content_disposition",
    "get_renderer",
    "register_renderer",
    "renderers",
    "unregister_renderer",
]


@dataclass(frozen=True)
class Renderer:
    """One output format.

    Parameters
    ----------
    name : str
        Registry key, used as ``?format=`` / ``--format`` value.
    extension : str
        File name extension without the dot.
    mimetype : str
        Content type of the bytes.
    render : callable
        ``render(report, level) -> bytes``.  ``level=None`` means the report's
        first level for single-level formats.  Raises :class:`InputError` for
        an unknown level or missing geometry.
    label : str
        Short bilingual description for menus.
    all_levels : bool
        True when one file holds every level of the report.
    needs_geometry : bool
        True when the report must carry ``geometry``.
    """

    name: str
    extension: str
    mimetype: str
    render: Callable[[StatsReport, str | None], bytes]
    label: str = ""
    all_levels: bool = False
    needs_geometry: bool = False

    def filename(self, report: StatsReport, level: str | None = None) -> str:
        """Suggested download name, e.g. ``gridwatch_grid_2022-06-30.csv``.

        Made of the level and the report's ISO date only; any other character is dropped,
        so nothing a request carries reaches the name unparsed."""
        part = "all" if self.all_levels or level is None else level
        name = f"gridwatch_{_name_part(part)}_{_name_part(report.as_of)}".rstrip("_")
        return f"{name}.{self.extension}"

    def download_name(self, report: StatsReport, level: str | None, layers: list[str]) -> str:
        """The name a person downloads: the layers' labels, the level's label and the as-of
        day, e.g. ``违法建设_单元网格_2022-06-30.xlsx`` (``layers`` as shown; characters other
        than letters, digits, ``-`` and ``+`` are dropped)."""
        parts = ["+".join(layers), level_label(level) if level else "", report.as_of]
        name = "_".join(p for p in (_label_part(x) for x in parts) if p) or "gridwatch"
        return f"{name}.{self.extension}"


def _label_part(text: str) -> str:
    return re.sub(r"[^\w\-+]", "", str(text))[:60]


def _name_part(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_\-]", "", str(text))[:40]


def content_disposition(filename: str, disposition: str = "attachment", fallback: str | None = None) -> str:
    """A ``Content-Disposition`` header value for a download named ``filename``.

    Control characters and path separators are dropped.  Then an ASCII ``filename="..."``
    for old clients (``fallback`` when given, else the name with characters outside printable
    ASCII and quotes as ``_``) and, when
    that is not the name itself, the exact name as RFC 5987
    ``filename*=UTF-8''<percent-encoded>``, so Chinese names arrive intact and the header
    stays Latin-1 as HTTP requires.

    Examples
    --------
    >>> print(content_disposition("统计_2022-06-30.csv"))
    attachment; filename="___2022-06-30.csv"; filename*=UTF-8''%E7%BB%9F%E8%AE%A1_2022-06-30.csv
    """
    name = "".join(ch for ch in str(filename) if ch.isprintable() and ch not in "/\\") or "download"
    ascii_name = re.sub(r'[^\x20-\x7e]|["\\]', "_", fallback or name)
    header = f'{disposition}; filename="{ascii_name}"'
    if ascii_name != name:
        header += f"; filename*=UTF-8''{quote(name, safe='')}"
    return header


_RENDERERS: dict[str, Renderer] = {}


def register_renderer(renderer: Renderer) -> Renderer:
    """Add ``renderer`` to the registry, replacing one of the same name."""
    if not re.fullmatch(r"[a-z][a-z0-9_]*", renderer.name):
        raise ValueError(f"renderer name must be lower-case ASCII: {renderer.name!r}")
    _RENDERERS[renderer.name] = renderer
    return renderer


def unregister_renderer(name: str) -> None:
    """Remove the renderer registered as ``name`` (no error when absent)."""
    _RENDERERS.pop(name, None)


def renderers() -> list[Renderer]:
    """Registered renderers in registration order (built-ins first)."""
    return list(_RENDERERS.values())


def get_renderer(fmt: str) -> Renderer:
    """The renderer for ``fmt`` (a name like ``"xlsx"``, case and a leading dot ignored).

    Raises
    ------
    InputError
        ``code="unknown_format"``, listing the known formats.
    """
    key = str(fmt).strip().lower().lstrip(".")
    if key in _RENDERERS:
        return _RENDERERS[key]
    known = ", ".join(_RENDERERS)
    raise InputError(
        f"不支持的导出格式: {fmt}（可用: {known}）",
        f"unknown export format: {fmt} (known: {known})",
        code="unknown_format",
        details={"format": fmt, "known": list(_RENDERERS)},
    )


for _r in (
    Renderer("csv", "csv", "text/csv; charset=utf-8", render_csv, "CSV 表格 / CSV table"),
    Renderer(
        "xlsx",
        "xlsx",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        render_xlsx,
        "Excel 工作簿 / Excel workbook",
        all_levels=True,
    ),
    Renderer("json", "json", "application/json", render_json, "JSON"),
    Renderer("geojson", "geojson", "application/geo+json", render_geojson, "GeoJSON", needs_geometry=True),
    Renderer(
        "gpkg",
        "gpkg",
        "application/geopackage+sqlite3",
        render_gpkg,
        "GeoPackage",
        all_levels=True,
        needs_geometry=True,
    ),
    Renderer(
        "shp",
        "zip",
        "application/zip",
        render_shp,
        "Shapefile（zip）/ Shapefile (zip)",
        all_levels=True,
        needs_geometry=True,
    ),
):
    register_renderer(_r)
del _r
