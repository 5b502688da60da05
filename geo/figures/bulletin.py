"""The monthly report (通报) as plain data: headline figures, changes, rankings, lagging units.

Every figure comes from :func:`geo.figures.tally.tally` on one pinned view (the same path as
``gridwatch stats``), so a figure in the report equals the one ``stats --as-of`` gives for the
same day: 累计 is the tally as of the as-of day, 本月 the tally as of the as-of day minus the
tally as of the end of the month before (the calendar month containing the as-of day).
Layers say how they are spoken of through :attr:`layers.base.LayerSpec.report_words`.
"""

from __future__ import annotations

import calendar
import math
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import pandas as pd

from geo.errors import InputError
from geo.figures.asof import choose_version, parse_as_of, resolve_view
from geo.figures.hierarchy import check_level, get_level, grid_levels
from geo.figures.report import pin, provenance
from geo.figures.tally import survey_specs, tally
from geo.figures.tasks import task_stats
from geo.figures.tasks import totals as task_totals
from geo.reading.values import parse_date
from geo.store import clock
from geo.store.base import Store
from layers.base import UNASSIGNED, LayerSpec

__all__ = [
    "Bulletin",
    "Figures",
    "LayerBulletin",
    "MeasureFigures",
    "RankRow",
    "build_bulletin",
    "fmt_number",
    "fmt_pct",
    "month_end_before",
    "year_before",
]

#: How many units the red and the black list name at most.
LIST_SIZE = 3


@dataclass
class MeasureFigures:
    """One measure of a layer in a scope: its total and its completed sum."""

    key: str
    label_zh: str
    label_en: str
    unit_zh: str
    unit_en: str
    total: float
    completed: float
    target: float | None = None

    @property
    def progress(self) -> float | None:
        """Completed over target (None without a positive target)."""
        return None if not self.target else self.completed / self.target


@dataclass
class Figures:
    """The counts of one layer in one scope (the whole area, or one unit) as of a day, or the
    difference of two days (本月)."""

    found: int
    completed: int
    measures: list[MeasureFigures] = field(default_factory=list)
    target: float | None = None

    @property
    def rate(self) -> float | None:
        """Completed over found (None when nothing was found)."""
        return None if self.found <= 0 else self.completed / self.found

    @property
    def progress(self) -> float | None:
        """Completed over the completed-count target (None without a positive target)."""
        return None if not self.target else self.completed / self.target

    def minus(self, other: Figures) -> Figures:
        """The change from ``other`` to these figures (targets are not differenced)."""
        ms = [
            MeasureFigures(
                m.key,
                m.label_zh,
                m.label_en,
                m.unit_zh,
                m.unit_en,
                m.total - o.total,
                m.completed - o.completed,
            )
            for m, o in zip(self.measures, other.measures, strict=True)
        ]
        return Figures(self.found - other.found, self.completed - other.completed, ms)


@dataclass
class RankRow:
    """One unit of the ranking table (``rank`` None: nothing found there, not ranked)."""

    rank: int | None
    code: str
    name: str
    parent_name: str
    figures: Figures
    month: Figures
    lagging_reason: str = ""
    lagging_reason_en: str = ""


@dataclass
class LayerBulletin:
    """The report's section on one survey layer."""

    spec: LayerSpec
    cumulative: Figures
    month: Figures
    previous: Figures
    year_ago: Figures
    year_ago_month: Figures
    unassigned: int
    ranking: list[RankRow]
    red: list[RankRow]
    black: list[RankRow]
    lagging: list[RankRow]
    lagging_rule_zh: str
    lagging_rule_en: str
    series: list[tuple[str, Figures]]
    sentences_zh: list[str]
    sentences_en: list[str]

    @property
    def change_pp(self) -> float | None:
        """Completion rate change against the previous month end, in percentage points."""
        return _pp(self.cumulative.rate, self.previous.rate)

    @property
    def change_year_pp(self) -> float | None:
        """Completion rate change against the same day a year before, in percentage points."""
        return _pp(self.cumulative.rate, self.year_ago.rate)


@dataclass
class Bulletin:
    """Everything the monthly report shows, as plain data (render it with
    :mod:`geo.output.to_docx`)."""

    as_of: date
    month_start: date
    previous_end: date
    year_ago: date
    level: str
    level_zh: str
    level_en: str
    area_name: str
    layers: list[LayerBulletin]
    provenance: dict[str, Any]
    title_zh: str
    title_en: str
    known_at: Any = None
    grid: Any = None
    grid_chosen: str = "in_force"
    grid_versions: list[dict[str, Any]] = field(default_factory=list)
    #: the hand-over tasks per unit of ``level`` as of the day (:func:`geo.figures.tasks.task_stats`
    #: rows; empty when the store holds no task) and their totals
    tasks: list[dict[str, Any]] = field(default_factory=list)
    task_totals: dict[str, Any] | None = None


def month_end_before(day: date) -> date:
    """The last day of the month before the one containing ``day``."""
    return day.replace(day=1) - timedelta(days=1)


def year_before(day: date) -> date:
    """The same day a year before (28 February for a 29 February)."""
    year = day.year - 1
    return day.replace(year=year, day=min(day.day, calendar.monthrange(year, day.month)[1]))


def fmt_number(value: float) -> str:
    """A figure as the report writes it: thousands separated, at most two decimals."""
    if isinstance(value, int) or float(value).is_integer():
        return f"{round(float(value)):,}"
    return f"{value:,.2f}".rstrip("0").rstrip(".")


def fmt_pct(value: float | None, missing: str = "—") -> str:
    """A ratio as a percentage with one decimal (``missing`` when None)."""
    return missing if value is None or math.isnan(value) else f"{value * 100:.1f}%"


def _pp(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else (a - b) * 100


def _num(row: pd.Series | dict[str, Any], col: str) -> float:
    v = row.get(col) if hasattr(row, "get") else None
    return 0.0 if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


def _target(rows: pd.DataFrame, col: str) -> float | None:
    if col not in rows.columns:
        return None
    vals = rows[col].dropna()
    return float(vals.sum()) if len(vals) and float(vals.sum()) > 0 else None


def _figures(spec: LayerSpec, rows: pd.DataFrame) -> Figures:
    """The figures of ``spec`` summed over ``rows`` of a tally."""
    n = spec.name
    ms = []
    for m in spec.measures:
        uz, ue = m.unit_words
        ms.append(
            MeasureFigures(
                m.key,
                m.label_zh,
                m.label_en,
                uz,
                ue,
                round(float(rows[m.total_column(n)].sum()), 2),
                round(float(rows[m.completed_column(n)].sum()), 2),
                _target(rows, f"{m.completed_column(n)}_target"),
            )
        )
    return Figures(
        int(rows[f"{n}_total"].sum()),
        int(rows[f"{n}_completed"].sum()),
        ms,
        _target(rows, f"{n}_completed_target"),
    )


def _units(table: pd.DataFrame) -> pd.DataFrame:
    return table[table["code"] != UNASSIGNED]


def _zh_day(d: date) -> str:
    return f"{d.year}年{d.month}月{d.day}日"


def _measure_zh(m: MeasureFigures, value: float) -> str:
    prefix = "" if m.unit_zh == "平方米" else m.label_zh
    return f"{prefix}{fmt_number(value)}{m.unit_zh}"


def _measure_en(m: MeasureFigures, value: float) -> str:
    if m.unit_en == "m²":
        return f"{fmt_number(value)} m²"
    return f"{fmt_number(value)} {m.unit_en or m.label_en.lower()}"


def _change_zh(pp: float | None, against: str) -> str:
    if pp is None:
        return f"{against}无可比数据"
    if abs(pp) < 0.05:
        return f"与{against}持平"
    return f"较{against}{'提高' if pp > 0 else '下降'}{abs(pp):.1f}个百分点"


def _change_en(pp: float | None, against: str) -> str:
    if pp is None:
        return f"no figures to compare with {against}"
    if abs(pp) < 0.05:
        return f"unchanged from {against}"
    return f"{'up' if pp > 0 else 'down'} {abs(pp):.1f} percentage points on {against}"


def _sentences(lb: LayerBulletin, as_of: date, area_zh: str) -> tuple[list[str], list[str]]:
    w = lb.spec.report_words
    c, mo = lb.cumulative, lb.month
    day_zh, day_en = _zh_day(as_of), as_of.isoformat()
    if c.found == 0:
        return (
            [f"截至{day_zh}，{area_zh}尚无{w.noun_zh}数据。"],
            [f"As of {day_en} there are no figures on {w.noun_en} yet."],
        )
    found_m = "".join(f"、{_measure_zh(m, m.total)}" for m in c.measures)
    done_m = "".join(f"、{_measure_zh(m, m.completed)}" for m in c.measures)
    zh = (
        f"截至{day_zh}，{area_zh}累计{w.found_zh}{w.noun_zh}{fmt_number(c.found)}{w.count_unit_zh}{found_m}，"
        f"已{w.completed_zh}{fmt_number(c.completed)}{w.count_unit_zh}{done_m}，完成率{fmt_pct(c.rate)}，"
        f"{_change_zh(lb.change_pp, '上月')}，{_change_zh(lb.change_year_pp, '去年同期')}。"
    )
    found_e = "".join(f", {_measure_en(m, m.total)}" for m in c.measures)
    done_e = "".join(f", {_measure_en(m, m.completed)}" for m in c.measures)
    en = (
        f"As of {day_en}, {fmt_number(c.found)} {w.noun_en} have been {w.found_en}{found_e}; "
        f"{fmt_number(c.completed)} {w.completed_en}{done_e}, a completion rate of {fmt_pct(c.rate)}, "
        f"{_change_en(lb.change_pp, 'last month')}, {_change_en(lb.change_year_pp, 'a year before')}."
    )
    zhs, ens = [zh], [en]
    mdone = "".join(f"、{_measure_zh(m, m.completed)}" for m in mo.measures)
    zhs.append(
        f"本月（{as_of.month}月）新增{w.found_zh}{fmt_number(mo.found)}{w.count_unit_zh}，"
        f"{w.completed_zh}{fmt_number(mo.completed)}{w.count_unit_zh}{mdone}"
        + (
            f"（去年同月{w.completed_zh}{fmt_number(lb.year_ago_month.completed)}{w.count_unit_zh}）。"
            if lb.year_ago.found
            else "（去年同期无数据）。"
        )
    )
    ens.append(
        f"This month {fmt_number(mo.found)} were {w.found_en} and {fmt_number(mo.completed)} {w.completed_en}"
        + (
            f" ({fmt_number(lb.year_ago_month.completed)} in the same month a year before)."
            if lb.year_ago.found
            else " (no figures a year before)."
        )
    )
    targets_zh, targets_en = [], []
    if c.target:
        targets_zh.append(
            f"{w.completed_zh}{fmt_number(c.target)}{w.count_unit_zh}，已完成{fmt_pct(c.progress)}"
        )
        targets_en.append(f"{fmt_number(c.target)} {w.noun_en} {w.completed_en}, {fmt_pct(c.progress)} done")
    for m in c.measures:
        if m.target:
            targets_zh.append(
                f"{w.completed_zh}{m.label_zh}{fmt_number(m.target)}{m.unit_zh}，已完成{fmt_pct(m.progress)}"
            )
            targets_en.append(f"{_measure_en(m, m.target)}, {fmt_pct(m.progress)} done")
    if targets_zh:
        zhs.append(f"年度目标：{'；'.join(targets_zh)}。")
        ens.append(f"The year's target: {'; '.join(targets_en)}.")
    else:
        zhs.append("无目标（未载入年度目标）。")
        ens.append("No target (none loaded).")
    if lb.red and lb.black:
        zhs.append(
            f"完成率较高的是{'、'.join(r.name for r in lb.red)}；"
            f"较低的是{'、'.join(r.name for r in lb.black)}，请加快推进。"
        )
        ens.append(
            f"Highest completion: {', '.join(r.name for r in lb.red)}; "
            f"lowest: {', '.join(r.name for r in lb.black)}, to speed up."
        )
    if lb.unassigned:
        zhs.append(f"另有{fmt_number(lb.unassigned)}{w.count_unit_zh}不在任何单元网格内，未计入上述数字。")
        ens.append(f"{fmt_number(lb.unassigned)} more lie outside every unit grid and are not counted above.")
    return zhs, ens


def build_bulletin(
    store: Store,
    as_of: str | date,
    level: str | None = None,
    layer_names: list[str] | None = None,
    known_at: object = None,
    grid: object = None,
    tz: str | None = None,
    months: int = 12,
) -> Bulletin:
    """The monthly report as of ``as_of`` ranking the units of ``level`` (default: the level
    above the one above the unit grid, 街道 in the declared grid).

    ``layer_names`` default to every survey layer; ``known_at`` and ``grid`` as for
    :func:`geo.figures.tally.tally`.  All figures are tallies on one view pinned to the last
    write, so they name the same state as the report's provenance.

    Raises
    ------
    InputError
        A bad or missing date, level, layer, moment or grid version.
    """
    day = parse_date(as_of)
    if day is None:
        raise InputError("请给出统计截至日期", "give the as-of date", code="bad_date")
    levels = grid_levels()
    level = check_level(level or levels[min(2, len(levels) - 1)].name)
    top = levels[-1].name
    specs = survey_specs(layer_names)
    names = [s.name for s in specs]
    view = pin(store, resolve_view(store, day, known_at, grid, tz))
    prev_end = month_end_before(day)
    ago = year_before(day)
    ago_prev = month_end_before(ago)

    def at(lv: str, d: date) -> pd.DataFrame:
        return tally(store, lv, names, d, view=view)

    tops = {d: at(top, d) for d in (day, prev_end, ago, ago_prev)}
    rank_now, rank_prev = at(level, day), at(level, prev_end)
    series_days = []
    first = day.replace(day=1)
    for i in range(months - 1, -1, -1):
        y, m = divmod(first.year * 12 + first.month - 1 - i, 12)
        end = date(y, m + 1, calendar.monthrange(y, m + 1)[1])
        series_days.append(min(end, day))
    series_tables = {d: (tops[d] if d in tops else at(top, d)) for d in series_days}
    top_units = _units(tops[day])
    area_name = "、".join(str(n) for n in top_units["name"]) if len(top_units) else ""
    area_zh = "全区" if len(top_units) <= 1 else "全域"
    used = [view.version if view.grid != "in_force" else choose_version(view, parse_as_of(day))]
    prov = provenance(store, view, used, names, day, tz)
    prov["level"] = level
    elapsed = (day.timetuple().tm_yday) / (366 if calendar.isleap(day.year) else 365)
    out: list[LayerBulletin] = []
    for spec in specs:
        cum = _figures(spec, _units(tops[day]))
        prev = _figures(spec, _units(tops[prev_end]))
        yago = _figures(spec, _units(tops[ago]))
        yago_prev = _figures(spec, _units(tops[ago_prev]))
        month = cum.minus(prev)
        un = tops[day][tops[day]["code"] == UNASSIGNED]
        unassigned = int(un[f"{spec.name}_total"].sum())
        rows: list[RankRow] = []
        prev_by_code = {str(r["code"]): r for _, r in _units(rank_prev).iterrows()}
        for _, unit in _units(rank_now).iterrows():
            f = _figures(spec, pd.DataFrame([unit]))
            p = prev_by_code.get(str(unit["code"]))
            pf = _figures(spec, pd.DataFrame([p])) if p is not None else f.minus(f)
            parent = unit.get("parent_name")
            rows.append(
                RankRow(
                    None,
                    str(unit["code"]),
                    str(unit["name"]),
                    "" if pd.isna(parent) else str(parent),
                    f,
                    f.minus(pf),
                )
            )
        ranked = sorted(
            (r for r in rows if r.figures.found > 0),
            key=lambda r: (-(r.figures.rate or 0.0), -r.figures.completed, r.code),
        )
        for i, r in enumerate(ranked, 1):
            r.rank = i
        ranking = ranked + [r for r in rows if r.figures.found == 0]
        k = min(LIST_SIZE, len(ranked) // 2)
        red, black = ranked[:k], list(reversed(ranked[-k:])) if k else []
        with_targets = [r for r in ranked if r.figures.target]
        if with_targets:
            rule_zh = f"目标完成度低于时间进度（{fmt_pct(elapsed)}）"
            rule_en = f"progress against target below the share of the year gone ({fmt_pct(elapsed)})"
            lagging = [r for r in with_targets if (r.figures.progress or 0.0) < elapsed]
            for r in lagging:
                gap = (elapsed - (r.figures.progress or 0.0)) * 100
                r.lagging_reason = f"落后时间进度{gap:.1f}个百分点"
                r.lagging_reason_en = f"{gap:.1f} points behind the year's time"
        else:
            rule_zh = f"完成率低于{area_zh}平均（{fmt_pct(cum.rate)}）"
            rule_en = f"completion rate below the whole area's ({fmt_pct(cum.rate)})"
            lagging = [r for r in ranked if cum.rate is not None and (r.figures.rate or 0.0) < cum.rate]
            for r in lagging:
                gap = ((cum.rate or 0.0) - (r.figures.rate or 0.0)) * 100
                r.lagging_reason = f"低于{area_zh}平均{gap:.1f}个百分点"
                r.lagging_reason_en = f"{gap:.1f} points below the whole area's rate"
        lagging.sort(key=lambda r: (r.figures.progress if with_targets else r.figures.rate) or 0.0)
        series = [(d.strftime("%Y-%m"), _figures(spec, _units(series_tables[d]))) for d in series_days]
        lb = LayerBulletin(
            spec,
            cum,
            month,
            prev,
            yago,
            yago.minus(yago_prev),
            unassigned,
            ranking,
            red,
            black,
            lagging,
            rule_zh,
            rule_en,
            series,
            [],
            [],
        )
        lb.sentences_zh, lb.sentences_en = _sentences(lb, day, area_zh)
        out.append(lb)
    lv = get_level(level)
    tasks = "、".join(s.report_words.task_zh for s in specs)
    handed = task_stats(store, day, level) if store.tasks() else None
    return Bulletin(
        as_of=day,
        month_start=day.replace(day=1),
        previous_end=prev_end,
        year_ago=ago,
        level=level,
        level_zh=lv.label_zh,
        level_en=lv.label_en,
        area_name=area_name,
        layers=out,
        provenance=prov,
        title_zh=f"关于{tasks}工作进展情况的通报",
        title_en=f"Progress report: {', '.join(s.report_words.noun_en for s in specs)}",
        known_at=clock.shown(view.known_at, tz),
        grid=grid,
        grid_chosen=view.grid,
        grid_versions=[{"id": v.id, "valid_from": v.valid_from} for v in used if v is not None],
        tasks=[]
        if handed is None
        else [{str(k): v for k, v in r.items()} for r in handed.to_dict("records")],
        task_totals=None if handed is None else task_totals(handed),
    )
