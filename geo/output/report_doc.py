"""The monthly report (通报) as an editable Word document, and as PDF converted from it.

:func:`render_docx` lays out a :class:`geo.figures.bulletin.Bulletin` with python-docx: the
title, the provenance on the first page, per layer the generated sentences, a headline table
(累计, 本月, 上月末, 去年同期), the ranking table (its header row repeated on every page), the red
and black lists, the lagging units, charts and a map of completion.  :func:`docx_to_pdf`
converts it with LibreOffice (``soffice --headless``) in a throw-away profile.
:func:`render_report` does all of it from a store.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tempfile
from datetime import date
from pathlib import Path
from typing import Any

from docx import Document
from docx.enum.section import WD_ORIENT
from docx.enum.table import WD_TABLE_ALIGNMENT
from docx.enum.text import WD_ALIGN_PARAGRAPH
from docx.oxml import OxmlElement
from docx.oxml.ns import qn
from docx.shared import Cm, Pt, RGBColor

from geo.errors import GridwatchError
from geo.figures.bulletin import Bulletin, Figures, LayerBulletin, build_bulletin, fmt_number, fmt_pct
from geo.output.mapimage import MissingTool, bar_chart, line_chart, render_map
from geo.store.base import Store

__all__ = ["REPORT_FORMATS", "docx_to_pdf", "render_docx", "render_report", "report_filename"]

#: Formats of the report: name → MIME type.
REPORT_FORMATS: dict[str, str] = {
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "pdf": "application/pdf",
}
#: East-Asian fonts of the title and the body (Word and WPS have them; LibreOffice substitutes).
TITLE_FONT = "方正小标宋简体"
HEADING_FONT = "黑体"
BODY_FONT = "仿宋"
TABLE_FONT = "宋体"
_NUMBERS = ("一", "二", "三", "四", "五", "六", "七", "八", "九", "十")


def _t(lang: str, zh: str, en: str) -> str:
    return en if lang == "en" else zh


def _font(run: Any, east_asian: str, size: float, bold: bool = False, latin: str = "Times New Roman") -> None:
    run.font.size = Pt(size)
    run.font.bold = bold
    run.font.name = latin
    rpr = run._element.get_or_add_rPr()
    fonts = rpr.find(qn("w:rFonts"))
    if fonts is None:
        fonts = OxmlElement("w:rFonts")
        rpr.insert(0, fonts)
    fonts.set(qn("w:eastAsia"), east_asian)
    fonts.set(qn("w:ascii"), latin)
    fonts.set(qn("w:hAnsi"), latin)


def _para(
    doc: Any,
    text: str,
    font: str = BODY_FONT,
    size: float = 14,
    bold: bool = False,
    align: Any = None,
    indent: bool = False,
    space_after: float = 4,
) -> Any:
    p = doc.add_paragraph()
    if align is not None:
        p.alignment = align
    if indent:
        p.paragraph_format.first_line_indent = Pt(size * 2)
    p.paragraph_format.space_after = Pt(space_after)
    p.paragraph_format.line_spacing = 1.3
    _font(p.add_run(text), font, size, bold)
    return p


def _repeat_header(row: Any) -> None:
    trpr = row._tr.get_or_add_trPr()
    el = OxmlElement("w:tblHeader")
    el.set(qn("w:val"), "true")
    trpr.append(el)
    cant = OxmlElement("w:cantSplit")
    cant.set(qn("w:val"), "true")
    trpr.append(cant)


def _shade(cell: Any, color: str) -> None:
    tcpr = cell._tc.get_or_add_tcPr()
    shd = OxmlElement("w:shd")
    shd.set(qn("w:val"), "clear")
    shd.set(qn("w:color"), "auto")
    shd.set(qn("w:fill"), color)
    tcpr.append(shd)


def _table(
    doc: Any,
    header: list[str],
    rows: list[list[str]],
    widths: list[float] | None = None,
    caption: str | None = None,
) -> Any:
    if caption:
        _para(doc, caption, HEADING_FONT, 12, align=WD_ALIGN_PARAGRAPH.CENTER, space_after=2)
    table = doc.add_table(rows=1, cols=len(header))
    table.style = "Table Grid"
    table.alignment = WD_TABLE_ALIGNMENT.CENTER
    for i, h in enumerate(header):
        cell = table.rows[0].cells[i]
        cell.text = ""
        _font(cell.paragraphs[0].add_run(h), HEADING_FONT, 10.5, True)
        cell.paragraphs[0].alignment = WD_ALIGN_PARAGRAPH.CENTER
        _shade(cell, "D9E2F3")
    _repeat_header(table.rows[0])
    for r in rows:
        row = table.add_row()
        cant = OxmlElement("w:cantSplit")
        cant.set(qn("w:val"), "true")
        row._tr.get_or_add_trPr().append(cant)
        cells = row.cells
        for i, v in enumerate(r):
            cells[i].text = ""
            _font(cells[i].paragraphs[0].add_run(v), TABLE_FONT, 10.5)
            cells[i].paragraphs[0].alignment = (
                WD_ALIGN_PARAGRAPH.CENTER if i and len(header) > 2 else WD_ALIGN_PARAGRAPH.LEFT
            )
    widths = widths or _widths(header)
    table.autofit = False
    for i, w in enumerate(widths):
        table.columns[i].width = Cm(w)
        for row in table.rows:
            row.cells[i].width = Cm(w)
    doc.add_paragraph().paragraph_format.space_after = Pt(2)
    return table


def _widths(header: list[str], total: float = 15.8) -> list[float]:
    """Column widths: the first (names) column wider, the others shared by their header length."""
    if len(header) == 1:
        return [total]
    first = min(4.2, total / 3)
    if header and header[0] in ("排名", "Rank"):
        first = 1.3
    weights = [max(3, len(h)) for h in header[1:]]
    if header and header[0] in ("排名", "Rank"):
        weights[0] = 5  # the unit's name
    rest = total - first
    return [first, *(rest * w / sum(weights) for w in weights)]


def _ranking_widths(has_parent: bool, ncols: int, total: float = 15.8) -> list[float]:
    """The ranking table: the rank narrow, the names wide, the rate (``100.0%``) on one line,
    the other figures sharing the rest."""
    fixed = [1.1, 2.6 if has_parent else 3.0, *([2.2] if has_parent else [])]
    rate_at, rate_width = len(fixed) + 2, 2.0
    rest = (total - sum(fixed) - rate_width) / (ncols - len(fixed) - 1)
    widths = [*fixed, *([rest] * (ncols - len(fixed)))]
    widths[rate_at] = rate_width
    return widths


def _opt(v: float | None, fmt: Any = fmt_number, missing: str = "—") -> str:
    return missing if v is None else fmt(v)


def _headline_rows(lb: LayerBulletin, lang: str) -> list[list[str]]:
    w = lb.spec.report_words
    cols: list[Figures] = [lb.cumulative, lb.month, lb.previous, lb.year_ago]
    no_target = _t(lang, "无目标", "no target")
    rows = [
        [_t(lang, f"{w.found_zh}（{w.count_unit_zh}）", w.found_en), *(fmt_number(f.found) for f in cols)],
        [
            _t(lang, f"{w.completed_zh}（{w.count_unit_zh}）", w.completed_en),
            *(fmt_number(f.completed) for f in cols),
        ],
    ]
    for i, m in enumerate(lb.cumulative.measures):
        unit = m.unit_zh if lang != "en" else m.unit_en
        rows.append(
            [
                _t(lang, f"{m.label_zh}（{unit}）", f"{m.label_en} ({unit})"),
                *(fmt_number(f.measures[i].total) for f in cols),
            ]
        )
        rows.append(
            [
                _t(
                    lang, f"{w.completed_zh}{m.label_zh}（{unit}）", f"{m.label_en} {w.completed_en} ({unit})"
                ),
                *(fmt_number(f.measures[i].completed) for f in cols),
            ]
        )
    rows.append(
        [
            _t(lang, "完成率", "Completion rate"),
            fmt_pct(lb.cumulative.rate),
            "—",
            fmt_pct(lb.previous.rate),
            fmt_pct(lb.year_ago.rate),
        ]
    )
    c = lb.cumulative
    rows.append(
        [
            _t(lang, f"年度目标（{w.completed_zh}，{w.count_unit_zh}）", f"Target ({w.completed_en})"),
            _opt(c.target, missing=no_target),
            "",
            "",
            "",
        ]
    )
    rows.append(
        [_t(lang, "目标完成度", "Progress against target"), fmt_pct(c.progress, no_target), "", "", ""]
    )
    for m in c.measures:
        if m.target:
            unit = m.unit_zh if lang != "en" else m.unit_en
            rows.append(
                [
                    _t(lang, f"年度目标（{w.completed_zh}{m.label_zh}，{unit}）", f"Target ({m.label_en})"),
                    fmt_number(m.target),
                    "",
                    "",
                    "",
                ]
            )
            rows.append(
                [
                    _t(lang, f"{m.label_zh}目标完成度", f"{m.label_en}: progress"),
                    fmt_pct(m.progress),
                    "",
                    "",
                    "",
                ]
            )
    return rows


def _provenance_rows(b: Bulletin, lang: str, source: str | None) -> list[list[str]]:
    p = b.provenance
    versions = b.grid_versions
    grid_text = (
        "；".join(f"#{v['id']}（{_t(lang, '生效', 'in force from')} {v['valid_from']}）" for v in versions)
        or "—"
    )
    chosen = {
        "in_force": _t(lang, "按截至日期选取", "chosen by the as-of day"),
        "current": _t(lang, "当前网格", "the current grid"),
        "asked": _t(lang, "指定版本", "the version asked for"),
    }.get(b.grid_chosen, "")
    computed = p.get("computed_at", {})
    layers_text = "；".join(
        f"{lb.spec.label_zh if lang != 'en' else lb.spec.label_en}: {_t(lang, '批次', 'batch')} {x.get('batch') or '—'}，"
        f"{x.get('features')} {_t(lang, '条', 'rows')}"
        for lb, x in zip(b.layers, p.get("layers", []), strict=False)
    )
    return [
        [_t(lang, "统计截至日期", "As of"), b.as_of.isoformat()],
        [_t(lang, "本月", "This month"), f"{b.month_start.isoformat()} – {b.as_of.isoformat()}"],
        [
            _t(lang, "数据时点（known-at）", "Known at"),
            b.known_at or _t(lang, "生成时的最新数据", "the newest data when generated"),
        ],
        [
            _t(lang, "包含的最后一次写入", "Last write included"),
            f"tx {computed.get('tx')}，{computed.get('at_local') or computed.get('at') or '—'}",
        ],
        [_t(lang, "网格版本", "Grid version"), f"{grid_text}（{chosen}）"],
        [_t(lang, "数据来源", "Data source"), f"{source or 'gridwatch'}；{layers_text}"],
        [_t(lang, "排名层级", "Ranked by"), b.level_zh if lang != "en" else b.level_en],
        [_t(lang, "时区", "Time zone"), str(p.get("timezone", ""))],
    ]


def _task_section(doc: Any, b: Bulletin, lang: str, n: int) -> None:
    """The hand-over tasks (交办单): a sentence and a table per unit of the report's level."""
    t = b.task_totals or {}
    heading = (
        f"{_NUMBERS[n] if n < len(_NUMBERS) else n + 1}、交办单办理情况"
        if lang != "en"
        else f"{n + 1}. Tasks"
    )
    _para(doc, heading, HEADING_FONT, 16, space_after=4)
    _para(
        doc,
        _t(
            lang,
            f"累计交办{t['handed_over']}处，已销号{t['verified']}处，待核查{t['fixed']}处，待整改{t['open']}处，"
            f"逾期{t['overdue']}处；按期完成率{fmt_pct(t['on_time_rate'])}，返工率{fmt_pct(t['rework_rate'])}。",
            f"{t['handed_over']} handed over, {t['verified']} verified, {t['fixed']} to check, {t['open']} open, "
            f"{t['overdue']} overdue; on time {fmt_pct(t['on_time_rate'])}, rework {fmt_pct(t['rework_rate'])}.",
        ),
        BODY_FONT,
        14,
        indent=True,
    )
    lvl = b.level_zh if lang != "en" else b.level_en
    header = [
        lvl,
        _t(lang, "交办", "Handed over"),
        _t(lang, "已销号", "Verified"),
        _t(lang, "逾期", "Overdue"),
        _t(lang, "按期完成率", "On time"),
        _t(lang, "返工率", "Rework"),
    ]
    rows = [
        [
            str(r["name"] or r["code"]),
            fmt_number(r["handed_over"]),
            fmt_number(r["verified"]),
            fmt_number(r["overdue"]),
            fmt_pct(r["on_time_rate"]),
            fmt_pct(r["rework_rate"]),
        ]
        for r in b.tasks
    ]
    _table(
        doc,
        header,
        rows,
        widths=[4.3, 2.3, 2.3, 2.3, 2.3, 2.3],
        caption=_t(lang, f"表{n + 1}-1  各{lvl}交办单办理情况", f"Table {n + 1}-1  tasks by {lvl.lower()}"),
    )


def render_docx(
    b: Bulletin,
    maps: dict[str, bytes] | None = None,
    lang: str = "zh",
    source: str | None = None,
    issuer: str | None = None,
) -> bytes:
    """The report as a .docx (A4, Chinese fonts set as East-Asian fonts, editable in Word and WPS).

    ``maps`` gives a PNG per layer name (drawn by :func:`geo.output.mapimage.render_map`);
    ``source`` names the data source on the first page; ``issuer`` signs the report."""
    doc = Document()
    sec = doc.sections[0]
    sec.orientation = WD_ORIENT.PORTRAIT
    sec.page_width, sec.page_height = Cm(21.0), Cm(29.7)
    sec.left_margin = sec.right_margin = Cm(2.6)
    sec.top_margin, sec.bottom_margin = Cm(3.0), Cm(2.5)
    normal = doc.styles["Normal"]
    normal.font.name = "Times New Roman"
    normal.font.size = Pt(14)
    normal.element.get_or_add_rPr().get_or_add_rFonts().set(qn("w:eastAsia"), BODY_FONT)
    doc.core_properties.title = b.title_zh if lang != "en" else b.title_en
    doc.core_properties.subject = f"as of {b.as_of.isoformat()}"
    _para(
        doc,
        b.title_zh if lang != "en" else b.title_en,
        TITLE_FONT,
        22,
        align=WD_ALIGN_PARAGRAPH.CENTER,
        space_after=6,
    )
    day = f"{b.as_of.year}年{b.as_of.month}月{b.as_of.day}日" if lang != "en" else b.as_of.isoformat()
    _para(
        doc,
        _t(lang, f"（截至{day}）", f"(as of {day})"),
        BODY_FONT,
        14,
        align=WD_ALIGN_PARAGRAPH.CENTER,
        space_after=10,
    )
    _table(
        doc,
        [_t(lang, "项目", "Item"), _t(lang, "说明", "Value")],
        _provenance_rows(b, lang, source),
        widths=[4.5, 11.3],
        caption=_t(lang, "数据说明", "About these figures"),
    )
    intro = _t(
        lang,
        f"现将截至{day}{b.area_name}{'、'.join(lb.spec.report_words.task_zh for lb in b.layers)}工作进展情况通报如下：",
        f"Progress of {b.area_name} as of {day}:",
    )
    _para(doc, intro, BODY_FONT, 14, indent=True)
    for n, lb in enumerate(b.layers):
        w = lb.spec.report_words
        heading = (
            f"{_NUMBERS[n] if n < len(_NUMBERS) else n + 1}、{w.task_zh}"
            if lang != "en"
            else f"{n + 1}. {lb.spec.label_en}"
        )
        _para(doc, heading, HEADING_FONT, 16, space_after=4)
        for s in lb.sentences_zh if lang != "en" else lb.sentences_en:
            _para(doc, s, BODY_FONT, 14, indent=True)
        _table(
            doc,
            [
                _t(lang, "指标", "Figure"),
                _t(lang, "累计", "Cumulative"),
                _t(lang, "本月", "This month"),
                _t(lang, "上月末", "Last month end"),
                _t(lang, "去年同期", "A year before"),
            ],
            _headline_rows(lb, lang),
            widths=[5.3, 2.6, 2.6, 2.6, 2.7],
            caption=_t(
                lang,
                f"表{n + 1}-1  {w.noun_zh}主要指标",
                f"Table {n + 1}-1  {lb.spec.label_en}: headline figures",
            ),
        )
        has_parent = len({r.parent_name for r in lb.ranking}) > 1
        lvl = b.level_zh if lang != "en" else b.level_en
        header = [_t(lang, "排名", "Rank"), lvl]
        if has_parent:
            header.append(_t(lang, "上级", "Parent"))
        header += [
            _t(lang, f"{w.found_zh}", w.found_en),
            _t(lang, f"{w.completed_zh}", w.completed_en),
            _t(lang, "完成率", "Rate"),
            _t(lang, f"本月{w.completed_zh}", f"{w.completed_en} this month"),
            _t(lang, "目标", "Target"),
            _t(lang, "目标完成度", "Progress"),
        ]
        rows = []
        for r in lb.ranking:
            row = [str(r.rank) if r.rank else "—", r.name]
            if has_parent:
                row.append(r.parent_name)
            row += [
                fmt_number(r.figures.found),
                fmt_number(r.figures.completed),
                fmt_pct(r.figures.rate, _t(lang, "无数据", "no data")),
                fmt_number(r.month.completed),
                _opt(r.figures.target, missing=_t(lang, "无目标", "none")),
                fmt_pct(r.figures.progress, "—"),
            ]
            rows.append(row)
        _table(
            doc,
            header,
            rows,
            widths=_ranking_widths(has_parent, len(header)),
            caption=_t(
                lang,
                f"表{n + 1}-2  各{lvl}{w.noun_zh}完成率排名",
                f"Table {n + 1}-2  ranking by {lvl.lower()}",
            ),
        )
        if lb.red:
            for label_zh, label_en, ranked in (("红榜：", "Top: ", lb.red), ("黑榜：", "Bottom: ", lb.black)):
                names = (
                    _t(
                        lang,
                        f"{r.name}（{fmt_pct(r.figures.rate)}）",
                        f"{r.name} ({fmt_pct(r.figures.rate)})",
                    )
                    for r in ranked
                )
                _para(
                    doc,
                    _t(lang, label_zh, label_en) + _t(lang, "、", ", ").join(names),
                    BODY_FONT,
                    14,
                    indent=True,
                )
        if lb.lagging:
            _para(
                doc,
                _t(lang, f"进度滞后单位（{lb.lagging_rule_zh}）：", f"Lagging ({lb.lagging_rule_en}):"),
                BODY_FONT,
                14,
                indent=True,
            )
            by_target = any(r.figures.progress is not None for r in lb.lagging)
            _table(
                doc,
                [
                    lvl,
                    _t(lang, "完成率", "Rate"),
                    *([_t(lang, "目标完成度", "Progress")] if by_target else []),
                    _t(lang, "说明", "Why"),
                ],
                [
                    [
                        r.name,
                        fmt_pct(r.figures.rate),
                        *([fmt_pct(r.figures.progress, "—")] if by_target else []),
                        _t(lang, r.lagging_reason, r.lagging_reason_en),
                    ]
                    for r in lb.lagging
                ],
                widths=[4.2, 3.0, 3.0, 5.6] if by_target else [4.2, 4.0, 7.6],
                caption=_t(lang, f"表{n + 1}-3  进度滞后单位", f"Table {n + 1}-3  lagging units"),
            )
        else:
            _para(doc, _t(lang, "无进度滞后单位。", "No unit lags behind."), BODY_FONT, 14, indent=True)
        ranked = [r for r in lb.ranking if r.rank]
        if ranked:
            chart = bar_chart(
                [r.name for r in ranked],
                [r.figures.rate or 0.0 for r in ranked],
                _t(lang, f"各{lvl}{w.noun_zh}完成率", f"Completion rate by {lvl.lower()}"),
            )
            doc.add_picture(io.BytesIO(chart), width=Cm(15))
            doc.paragraphs[-1].alignment = WD_ALIGN_PARAGRAPH.CENTER
        series = lb.series
        while len(series) > 2 and not series[0][1].found and not series[1][1].found:
            series = series[1:]  # from the month before the first data
        if any(f.found for _, f in series):
            months = [m for m, _ in series]
            line = line_chart(
                months,
                {
                    _t(lang, f"累计{w.found_zh}", w.found_en): [float(f.found) for _, f in series],
                    _t(lang, f"累计{w.completed_zh}", w.completed_en): [
                        float(f.completed) for _, f in series
                    ],
                },
                _t(
                    lang,
                    f"{w.noun_zh}逐月进展（各月末累计）",
                    f"{lb.spec.label_en}: month by month (cumulative)",
                ),
            )
            doc.add_picture(io.BytesIO(line), width=Cm(15))
            doc.paragraphs[-1].alignment = WD_ALIGN_PARAGRAPH.CENTER
        if maps and lb.spec.name in maps:
            doc.add_picture(io.BytesIO(maps[lb.spec.name]), width=Cm(15.8))
            doc.paragraphs[-1].alignment = WD_ALIGN_PARAGRAPH.CENTER
            _para(
                doc,
                _t(lang, f"图：{w.noun_zh}各{lvl}完成率", f"Map: completion rate by {lvl.lower()}"),
                BODY_FONT,
                10.5,
                align=WD_ALIGN_PARAGRAPH.CENTER,
            )
    if b.task_totals is not None:
        _task_section(doc, b, lang, len(b.layers))
    if issuer:
        _para(doc, issuer, BODY_FONT, 14, align=WD_ALIGN_PARAGRAPH.RIGHT)
    _para(doc, day, BODY_FONT, 14, align=WD_ALIGN_PARAGRAPH.RIGHT)
    footer = sec.footer.paragraphs[0]
    footer.alignment = WD_ALIGN_PARAGRAPH.CENTER
    run = footer.add_run(
        _t(
            lang,
            f"gridwatch 生成 · 统计截至 {b.as_of.isoformat()}",
            f"gridwatch · as of {b.as_of.isoformat()}",
        )
    )
    _font(run, TABLE_FONT, 9)
    run.font.color.rgb = RGBColor(0x66, 0x66, 0x66)
    page = OxmlElement("w:fldSimple")
    page.set(qn("w:instr"), "PAGE")
    footer.add_run("  ·  ")
    footer._p.append(page)
    inner = OxmlElement("w:r")
    text = OxmlElement("w:t")
    text.text = "1"
    inner.append(text)
    page.append(inner)
    out = io.BytesIO()
    doc.save(out)
    return out.getvalue()


def docx_to_pdf(data: bytes, timeout: float = 180) -> bytes:
    """Convert a .docx to PDF with LibreOffice in a throw-away profile.

    Raises
    ------
    MissingTool
        LibreOffice (``soffice``) is not installed.
    GridwatchError
        The conversion failed or timed out.
    """
    soffice = shutil.which("soffice") or shutil.which("libreoffice")
    if soffice is None:
        raise MissingTool(
            "未安装 LibreOffice（soffice），无法生成 PDF；请改用 Word 格式，或安装 libreoffice-writer",
            "LibreOffice (soffice) is not installed, so no PDF can be made; use docx, or install libreoffice-writer",
            code="no_soffice",
        )
    with tempfile.TemporaryDirectory(prefix="gridwatch-pdf-") as tmp:
        src = Path(tmp) / "report.docx"
        src.write_bytes(data)
        profile = Path(tmp) / "profile"
        env = {**os.environ, "HOME": tmp}
        try:
            done = subprocess.run(
                [
                    soffice,
                    f"-env:UserInstallation={profile.as_uri()}",
                    "--headless",
                    "--norestore",
                    "--convert-to",
                    "pdf",
                    "--outdir",
                    tmp,
                    str(src),
                ],
                capture_output=True,
                timeout=timeout,
                env=env,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise GridwatchError("PDF 转换超时", "the PDF conversion timed out", code="pdf_failed") from None
        pdf = Path(tmp) / "report.pdf"
        if done.returncode != 0 or not pdf.exists():
            raise GridwatchError(
                "PDF 转换失败",
                f"the PDF conversion failed: {done.stderr.decode(errors='replace')[-300:]}",
                code="pdf_failed",
            )
        return pdf.read_bytes()


def report_filename(b: Bulletin, fmt: str) -> str:
    """File name of a report: its title words, the level and the as-of day."""
    return f"通报_{'_'.join(lb.spec.name for lb in b.layers)}_{b.level}_{b.as_of.isoformat()}.{fmt}"


def render_report(
    store: Store,
    as_of: str | date,
    fmt: str = "docx",
    level: str | None = None,
    layer_names: list[str] | None = None,
    known_at: object = None,
    grid: object = None,
    tz: str | None = None,
    lang: str = "zh",
    source: str | None = None,
) -> tuple[Bulletin, bytes]:
    """The monthly report as of ``as_of`` in ``fmt`` (``docx`` or ``pdf``), with its data.

    The maps show each layer's completion rate by the ranking level, on the same view as the
    figures (``known_at``, ``grid``).

    Raises
    ------
    InputError
        A bad date, level, layer, moment, grid version or format.
    GridwatchError
        ``pdf`` without LibreOffice, or no CJK font to draw with.
    """
    from geo.errors import InputError

    if fmt not in REPORT_FORMATS:
        raise InputError(
            f"通报格式应为 docx 或 pdf，而不是 {fmt}",
            f"the report's format is docx or pdf, not {fmt}",
            code="bad_format",
        )
    if fmt == "pdf" and shutil.which("soffice") is None and shutil.which("libreoffice") is None:
        docx_to_pdf(b"")  # refuses before anything is computed
    b = build_bulletin(store, as_of, level, layer_names, known_at, grid, tz)
    maps = {
        lb.spec.name: render_map(
            store,
            layer=lb.spec.name,
            level=b.level,
            metric="rate",
            as_of=b.as_of,
            lang=lang,
            known_at=known_at,
            grid=grid,
            source=source,
            tz=tz,
            size=(9.0, 6.4),
        )
        for lb in b.layers
    }
    data = render_docx(b, maps, lang, source)
    return b, (docx_to_pdf(data) if fmt == "pdf" else data)
