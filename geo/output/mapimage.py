"""Maps and charts for paper, drawn with matplotlib (Agg) from the stored geometries, no browser.

:func:`render_map` draws the units of a level coloured by a metric (completion rate, completed
count, completed measure, progress against target), optionally the survey features coloured by
status, with title, the metric's legend (class breaks and the no-data colour), the status legend,
a scale bar in metres (the grid's projected CRS), a north arrow, the as-of date and the data source,
on A4 or A3 landscape, as PNG or PDF.  :func:`bar_chart` and :func:`line_chart` draw the
report's ranking and monthly progress.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from datetime import date
from typing import Any

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pyproj
import shapely
from matplotlib import font_manager
from matplotlib import pyplot as plt
from matplotlib.collections import PatchCollection
from matplotlib.colors import to_hex
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import FancyArrow, Patch, PathPatch, Rectangle
from matplotlib.path import Path as MPath

from geo.errors import GridwatchError, InputError
from geo.figures.asof import choose_version, parse_as_of, resolve_view
from geo.figures.facts import as_of_state, load_facts
from geo.figures.hierarchy import check_level, get_level
from geo.figures.report import pin, unit_geometry
from geo.figures.tally import Filters, column_labels, survey_specs, tally
from geo.figures.viewport import BBox
from geo.reading import crs as crsmod
from geo.reading.values import parse_date
from geo.store.base import Store
from layers.base import PENDING, PENDING_CODE, UNASSIGNED, LayerSpec, Status

__all__ = [
    "METRICS",
    "NO_DATA",
    "PAPERS",
    "MissingTool",
    "bar_chart",
    "cjk_font",
    "line_chart",
    "metric_column",
    "render_map",
]

#: Paper sizes, landscape, in inches (width, height).
PAPERS: dict[str, tuple[float, float]] = {"a4": (11.69, 8.27), "a3": (16.54, 11.69)}
#: Metrics a map can colour units by: name → (Chinese, English).
METRICS: dict[str, tuple[str, str]] = {
    "rate": ("完成率", "Completion rate"),
    "completed": ("已完成数", "Completed"),
    "area": ("已完成量", "Completed measure"),
    "progress": ("目标完成度", "Progress against target"),
}
#: Fill of a unit without a value.
NO_DATA = "#d9d9d9"
_RATE_BREAKS = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
_CJK_FAMILIES = ("Noto Sans CJK SC", "Noto Serif CJK SC", "Source Han Sans SC", "WenQuanYi Zen Hei", "SimHei")


class MissingTool(GridwatchError):
    """A program or font the output needs is not installed (a 503 in the web)."""

    status = 503
    code = "missing_tool"


def cjk_font() -> str:
    """The family name of a font with Chinese glyphs (Noto Sans CJK SC first).

    Raises
    ------
    MissingTool
        No CJK font is installed (install fonts-noto-cjk).
    """
    names = {f.name for f in font_manager.fontManager.ttflist}
    for fam in _CJK_FAMILIES:
        if fam in names:
            return fam
    raise MissingTool(
        "找不到中文字体，无法绘图（请安装 fonts-noto-cjk）",
        "no CJK font found to draw with (install fonts-noto-cjk)",
        code="no_cjk_font",
    )


def _style() -> Any:
    return {"font.family": [cjk_font(), "DejaVu Sans"], "axes.unicode_minus": False}


def metric_column(spec: LayerSpec, metric: str) -> str:
    """The tally column a map ``metric`` reads for ``spec``; :class:`InputError` for an unknown one."""
    if metric == "rate":
        return f"{spec.name}_rate"
    if metric == "completed":
        return f"{spec.name}_completed"
    if metric == "progress":
        return f"{spec.name}_completed_progress"
    if metric == "area":
        if not spec.measures:
            return f"{spec.name}_completed"
        area = next((m for m in spec.measures if m.unit == "m2"), spec.measures[0])
        return area.completed_column(spec.name)
    raise InputError(
        f"未知指标: {metric}（可选: {', '.join(METRICS)}）",
        f"unknown metric: {metric} ({', '.join(METRICS)})",
        code="bad_metric",
    )


def _nice(x: float) -> float:
    if x <= 0:
        return 1.0
    exp = 10 ** math.floor(math.log10(x))
    for m in (1, 2, 2.5, 5, 10):
        if m * exp >= x:
            return m * exp
    return 10 * exp


def _breaks(metric: str, values: np.ndarray) -> list[float]:
    if metric in ("rate", "progress"):
        top = max(1.0, float(np.nanmax(values))) if len(values) and not np.all(np.isnan(values)) else 1.0
        return [*_RATE_BREAKS[:-1], top] if top > 1 else list(_RATE_BREAKS)
    finite = values[~np.isnan(values)]
    step = _nice(float(finite.max()) / 5) if len(finite) and finite.max() > 0 else 1.0
    if metric == "completed":
        step = max(1.0, math.ceil(step))  # counts: whole classes
    return [step * i for i in range(6)]


def _fmt_break(metric: str, v: float) -> str:
    if metric in ("rate", "progress"):
        return f"{v * 100:.0f}%"
    return f"{v:,.0f}" if float(v).is_integer() else f"{v:,.1f}"


def _asked_extent(bbox: BBox | None, proj: pyproj.CRS | None) -> tuple[float, float, float, float] | None:
    """``bbox`` (lon/lat) in the grid's CRS; None when there is none or it cannot be drawn there
    (far outside the projection's zone, or under a metre across): the units' extent is used."""
    if bbox is None or proj is None:
        return None
    t = crsmod.transformer(pyproj.CRS.from_epsg(4326), proj)
    xs, ys = t.transform(
        [bbox.west, bbox.east, bbox.west, bbox.east], [bbox.south, bbox.south, bbox.north, bbox.north]
    )
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    if not all(math.isfinite(v) for v in (x0, x1, y0, y1)):
        return None
    if not (1.0 < x1 - x0 < 2_000_000 and 1.0 < y1 - y0 < 2_000_000):
        return None
    return x0, y0, x1, y1


def _scale_length(width_m: float) -> float:
    target = width_m / 5
    exp = 10 ** math.floor(math.log10(target))
    for m in (5, 2, 1):
        if m * exp <= target:
            return m * exp
    return exp


@dataclass
class _Layer:
    spec: LayerSpec
    xy: np.ndarray
    colors: list[str]


def _points(
    store: Store, spec: LayerSpec, view: Any, day: date | None, statuses: tuple[str, ...] | None
) -> Any:
    """Survey features as points in the store's CRS, their colours and the statuses shown."""
    fids, geoms = store.read_geometry(spec)
    facts = load_facts(store, spec, view.tx)
    if len(fids) == 0 or len(facts.fids) == 0:
        return np.empty((0, 2)), [], []
    order = pd.Index(facts.fids).get_indexer(fids)
    keep = order >= 0
    fids, geoms, order = fids[keep], geoms[keep], order[keep]
    status = (
        np.asarray(facts.status.to_pylist(), dtype=object)[order]
        if facts.status is not None
        else np.full(len(order), "", dtype=object)
    )
    mask = np.ones(len(order), dtype=bool)
    if day is not None:
        # as the figures count it on the day, as the live map draws it: not found yet, not
        # drawn; completed later, drawn as not completed as of that day
        present, _completed, pending = as_of_state(facts, np.datetime64(day.isoformat(), "D"))
        mask &= present[order]
        status = np.where(pending[order], PENDING_CODE, status)
    if statuses:
        mask &= np.isin(status, list(statuses))
    pts = shapely.point_on_surface(geoms[mask])
    xy = np.column_stack([shapely.get_x(pts), shapely.get_y(pts)]) if len(pts) else np.empty((0, 2))
    shown = status[mask]
    colors = []
    for code in shown:
        try:
            colors.append(_status(spec, str(code)).color)
        except KeyError:
            colors.append("#888888")
    drawn = {str(s) for s in shown}
    return xy, colors, [s.code for s in (*spec.all_statuses, PENDING) if s.code in drawn]


def _status(spec: LayerSpec, code: str) -> Status:
    """The status ``code`` of ``spec``, or the state of a site not completed as of the day."""
    return PENDING if code == PENDING_CODE else spec.status(code)


def render_map(
    store: Store,
    *,
    layer: str | None = None,
    level: str | None = None,
    metric: str = "rate",
    as_of: str | date | None = None,
    within: str | None = None,
    statuses: tuple[str, ...] | None = None,
    bbox: BBox | None = None,
    paper: str = "a4",
    fmt: str = "png",
    lang: str = "zh",
    known_at: object = None,
    grid: object = None,
    points: bool = True,
    title: str | None = None,
    source: str | None = None,
    dpi: int = 150,
    tz: str | None = None,
    size: tuple[float, float] | None = None,
) -> bytes:
    """A printable map: the units of ``level`` coloured by ``metric`` for ``layer`` (default the
    first survey layer), as of ``as_of``, optionally only under unit ``within`` and framed on
    ``bbox`` (lon/lat); survey features (with ``statuses`` only) drawn as points coloured by status.

    ``paper`` is ``a4`` or ``a3`` (landscape), ``fmt`` ``png`` (``dpi``, at least 150) or ``pdf``,
    ``lang`` ``zh`` or ``en`` for the title and legends; ``size`` (inches) overrides the paper's
    for a map set into a document.

    Raises
    ------
    InputError
        An unknown layer, level, metric, paper or format, a bad date.
    GridwatchError
        No CJK font installed.
    """
    if paper not in PAPERS:
        raise InputError(
            f"纸张应为 a4 或 a3，而不是 {paper}", f"paper must be a4 or a3, not {paper}", code="bad_paper"
        )
    if fmt not in ("png", "pdf"):
        raise InputError(
            f"格式应为 png 或 pdf，而不是 {fmt}", f"format must be png or pdf, not {fmt}", code="bad_format"
        )
    zh = lang != "en"
    spec = survey_specs([layer] if layer else None)[0]
    level = check_level(level)
    column = metric_column(spec, metric)
    day = parse_date(as_of)
    view = pin(store, resolve_view(store, day, known_at, grid, tz))
    table = tally(store, level, [spec.name], day, Filters(within=within) if within else None, view=view)
    version = view.version if view.grid != "in_force" else choose_version(view, parse_as_of(day))
    outlines = unit_geometry(store, level, version)
    srs = store.srs_epsg()
    table = table[table["code"] != UNASSIGNED].reset_index(drop=True)
    geoms = np.array([outlines.get(c) for c in table["code"]], dtype=object)
    values = (
        pd.to_numeric(table[column], errors="coerce").to_numpy(dtype=float)
        if column in table.columns
        else np.full(len(table), np.nan)
    )
    proj = pyproj.CRS.from_epsg(srs) if srs is not None else None
    if proj is not None and len(geoms):
        t = crsmod.transformer(pyproj.CRS.from_epsg(4490), proj)
        ok = np.array([g is not None for g in geoms])
        geoms[ok] = shapely.transform(
            np.array(list(geoms[ok]), dtype=object),
            lambda xy: np.column_stack(t.transform(xy[:, 0], xy[:, 1])),
        )
    with plt.rc_context(_style()):
        fig = _draw(
            spec,
            level,
            metric,
            table,
            geoms,
            values,
            proj,
            bbox,
            size or PAPERS[paper],
            zh,
            day,
            title,
            source,
            _points(store, spec, view, day, statuses) if points else (np.empty((0, 2)), [], []),
        )
        buf = io.BytesIO()
        fig.savefig(buf, format=fmt, dpi=max(150, dpi))
        plt.close(fig)
    return buf.getvalue()


def _draw(
    spec: LayerSpec,
    level: str,
    metric: str,
    table: pd.DataFrame,
    geoms: np.ndarray,
    values: np.ndarray,
    proj: pyproj.CRS | None,
    bbox: BBox | None,
    size: tuple[float, float],
    zh: bool,
    day: date | None,
    title: str | None,
    source: str | None,
    pts: Any,
) -> Figure:
    w, h = size
    paper = "a4" if w < 14 else "a3"
    fig = plt.figure(figsize=(w, h))
    lv = get_level(level)
    mname = METRICS[metric][0 if zh else 1]
    if metric == "area":  # the measure drawn, with its unit
        header = column_labels([spec], with_targets=False).get(metric_column(spec, metric))
        if header:
            mname = header[0][len(spec.label_zh) :] if zh else header[1].split(": ", 1)[-1]
    layer_label = spec.label_zh if zh else spec.label_en
    level_label = lv.label_zh if zh else lv.label_en
    if title is None:
        title = (
            f"{layer_label}{level_label}{mname}图"
            if zh
            else f"{layer_label}: {mname.lower()} by {level_label.lower()}"
        )
    fig.text(0.5, 0.955, title, ha="center", va="center", fontsize=20 if paper == "a4" else 26, weight="bold")
    ax = fig.add_axes((0.03, 0.08, 0.70, 0.83))
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    breaks = _breaks(metric, values)
    cmap = plt.get_cmap("RdYlGn" if metric in ("rate", "progress") else "Blues")
    ncls = len(breaks) - 1
    class_colors = [to_hex(cmap(0.15 + 0.7 * i / max(1, ncls - 1))) for i in range(ncls)]
    fills = []
    for v in values:
        if np.isnan(v):
            fills.append(NO_DATA)
        else:
            i = int(np.clip(np.searchsorted(breaks, v, side="right") - 1, 0, ncls - 1))
            fills.append(class_colors[i])
    patches, colors = [], []
    for g, c in zip(geoms, fills, strict=True):
        if g is None or g.is_empty:
            continue
        for poly in getattr(g, "geoms", [g]):
            if poly.geom_type != "Polygon":
                continue
            rings = [np.asarray(poly.exterior.coords), *(np.asarray(r.coords) for r in poly.interiors)]
            verts = np.concatenate(rings)
            codes = np.concatenate(
                [[MPath.MOVETO] + [MPath.LINETO] * (len(r) - 2) + [MPath.CLOSEPOLY] for r in rings]
            )
            patches.append(PathPatch(MPath(verts, codes)))
            colors.append(c)
    if patches:
        ax.add_collection(PatchCollection(patches, facecolors=colors, edgecolors="#555555", linewidths=0.4))
    xy, pcolors, shown = pts
    if len(xy):
        # a thin dark outline keeps a point readable on any fill
        point_size = 10 if w < 14 else 16
        ax.scatter(
            xy[:, 0], xy[:, 1], s=point_size, c=pcolors, edgecolors="#222222", linewidths=0.35, zorder=3
        )
    # labels: names of units when they are few enough to read
    valid = [(g, n) for g, n in zip(geoms, table["name"], strict=True) if g is not None and not g.is_empty]
    if 0 < len(valid) <= 40:
        for g, n in valid:
            p = g.representative_point()
            ax.annotate(
                str(n),
                (p.x, p.y),
                ha="center",
                va="center",
                fontsize=8,
                color="#222222",
                zorder=4,
                bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.6},
            )
    # extent: the bbox asked (lon/lat → the grid's CRS), else every unit drawn
    asked = _asked_extent(bbox, proj)
    if asked is not None:
        x0, y0, x1, y1 = asked
    elif valid:
        b = shapely.total_bounds(np.array([g for g, _ in valid], dtype=object))
        pad = 0.03 * max(b[2] - b[0], b[3] - b[1], 1.0)
        x0, y0, x1, y1 = b[0] - pad, b[1] - pad, b[2] + pad, b[3] + pad
    else:
        x0, y0, x1, y1 = 0.0, 0.0, 1000.0, 1000.0
        ax.text(
            0.5,
            0.5,
            "无数据" if zh else "No data",
            transform=ax.transAxes,
            ha="center",
            fontsize=18,
            color="#888",
        )
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_anchor("C")
    # scale bar (metres: the grid's CRS is projected) and north arrow
    fig.canvas.draw()
    gx0, gx1 = ax.get_xlim()
    gy0, gy1 = ax.get_ylim()
    length = _scale_length(gx1 - gx0)
    sx, sy = gx0 + 0.04 * (gx1 - gx0), gy0 + 0.05 * (gy1 - gy0)
    bar_h = 0.008 * (gy1 - gy0)
    ax.add_patch(
        Rectangle(
            (sx - 0.02 * (gx1 - gx0), sy - 0.02 * (gy1 - gy0)),
            length + 0.05 * (gx1 - gx0),
            0.07 * (gy1 - gy0),
            fc="white",
            ec="#999999",
            lw=0.5,
            alpha=0.85,
            zorder=4.5,
        )
    )
    for i in range(4):
        ax.add_patch(
            Rectangle(
                (sx + i * length / 4, sy),
                length / 4,
                bar_h,
                fc="black" if i % 2 == 0 else "white",
                ec="black",
                lw=0.6,
                zorder=5,
            )
        )
    label = f"{length / 1000:g} km" if length >= 1000 else f"{length:g} m"
    ax.text(sx, sy + 2.2 * bar_h, "0", fontsize=8, ha="center", zorder=5)
    ax.text(sx + length, sy + 2.2 * bar_h, label, fontsize=8, ha="center", zorder=5)
    nx, ny = gx1 - 0.05 * (gx1 - gx0), gy1 - 0.14 * (gy1 - gy0)
    ax.add_patch(
        Rectangle(
            (nx - 0.035 * (gx1 - gx0), ny - 0.01 * (gy1 - gy0)),
            0.07 * (gx1 - gx0),
            0.14 * (gy1 - gy0),
            fc="white",
            ec="#999999",
            lw=0.5,
            alpha=0.85,
            zorder=4.5,
        )
    )
    ax.add_patch(
        FancyArrow(
            nx,
            ny,
            0,
            0.08 * (gy1 - gy0),
            width=0.012 * (gx1 - gx0),
            head_width=0.035 * (gx1 - gx0),
            head_length=0.035 * (gy1 - gy0),
            length_includes_head=True,
            fc="black",
            ec="black",
            zorder=5,
        )
    )
    ax.text(nx, ny + 0.095 * (gy1 - gy0), "N", ha="center", va="bottom", fontsize=14, weight="bold", zorder=5)
    # legends on the right
    handles = [
        Patch(
            fc=c, ec="#555555", label=f"{_fmt_break(metric, breaks[i])} – {_fmt_break(metric, breaks[i + 1])}"
        )
        for i, c in enumerate(class_colors)
    ]
    handles.append(Patch(fc=NO_DATA, ec="#555555", label="无数据" if zh else "No data"))
    leg = fig.legend(
        handles=handles,
        title=f"{level_label}{mname}" if zh else f"{level_label}: {mname.lower()}",
        loc="upper left",
        bbox_to_anchor=(0.75, 0.90),
        frameon=False,
        fontsize=10,
        title_fontsize=11,
        alignment="left",
    )
    fig.add_artist(leg)
    if shown:
        sh = [
            Line2D(
                [],
                [],
                marker="o",
                ls="",
                mfc=_status(spec, c).color,
                mec="white",
                ms=8,
                label=_status(spec, c).label_zh if zh else _status(spec, c).label_en,
            )
            for c in shown
        ]
        fig.legend(
            handles=sh,
            title=f"{layer_label}{'状态' if zh else ': status'}",
            loc="upper left",
            bbox_to_anchor=(0.75, 0.52),
            frameon=False,
            fontsize=10,
            title_fontsize=11,
            alignment="left",
        )
    day_text = day.isoformat() if day else ("全部数据" if zh else "all data")
    src = source or "gridwatch"
    foot = (
        f"统计截至：{day_text}    数据来源：{src}    坐标系：EPSG:{proj.to_epsg() if proj else '—'}"
        if zh
        else f"As of: {day_text}    Source: {src}    CRS: EPSG:{proj.to_epsg() if proj else '—'}"
    )
    fig.text(0.03, 0.035, foot, fontsize=10, ha="left", va="center", color="#333333")
    return fig


def bar_chart(
    names: list[str], values: list[float], title: str, *, percent: bool = True, width: float = 6.3
) -> bytes:
    """A horizontal bar chart (the report's ranking), highest on top, as PNG."""
    with plt.rc_context(_style()):
        n = max(1, len(names))
        fig, ax = plt.subplots(figsize=(width, min(8.5, 1.0 + 0.32 * n)))
        ys = np.arange(len(names))[::-1]
        colors = [
            to_hex(plt.get_cmap("RdYlGn")(0.15 + 0.7 * min(1.0, v))) if percent else "#3b75af" for v in values
        ]
        ax.barh(
            ys, [v * 100 if percent else v for v in values], color=colors, edgecolor="#555555", linewidth=0.4
        )
        ax.set_yticks(ys, names, fontsize=9)
        for y, v in zip(ys, values, strict=True):
            ax.text(
                v * 100 if percent else v,
                y,
                f" {v * 100:.1f}%" if percent else f" {v:,.0f}",
                va="center",
                fontsize=8,
            )
        ax.set_title(title, fontsize=11)
        ax.spines[["top", "right"]].set_visible(False)
        if percent:
            ax.set_xlim(0, max(100.0, max((v * 100 for v in values), default=0) * 1.15))
            ax.set_xlabel("%")
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=200)
        plt.close(fig)
    return buf.getvalue()


def line_chart(months: list[str], series: dict[str, list[float]], title: str, *, width: float = 6.3) -> bytes:
    """A line chart of monthly figures (one line per series), as PNG."""
    with plt.rc_context(_style()):
        fig, ax = plt.subplots(figsize=(width, 3.0))
        for label, vals in series.items():
            ax.plot(months, vals, marker="o", ms=3, label=label)
        ax.set_title(title, fontsize=11)
        ax.tick_params(axis="x", labelrotation=45, labelsize=8)
        ax.grid(axis="y", color="#dddddd")
        ax.spines[["top", "right"]].set_visible(False)
        ax.legend(fontsize=8, frameon=False)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=200)
        plt.close(fig)
    return buf.getvalue()
