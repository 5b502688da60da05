"""The feature list: a survey layer's current features filtered, sorted and cut into pages.

Filters are those of the map (an area: a unit code at any level, or ``UNASSIGNED``; statuses), a
range of one of the layer's date fields, and literal text found in the layer's searchable fields
(:attr:`layers.base.LayerSpec.searchable_fields`, any case).  Sorting is on any listed column,
empty values last, ties in stored order (fid).  The same query gives the page a bureau reads and
the set it exports (:func:`filtered_fids`, then :func:`geo.output.ledger.render_ledger`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from geo.errors import InputError
from geo.figures.hierarchy import grid_levels, load_hierarchy
from geo.reading.values import parse_date
from geo.registry import get_layer
from geo.store.base import Store
from geo.store.cache import generations
from layers.base import UNASSIGNED, LayerSpec, Level

__all__ = [
    "DEFAULT_PAGE_SIZE",
    "PAGE_SIZES",
    "UNIT_COLUMN",
    "FeaturePage",
    "FeatureQuery",
    "area_choices",
    "feature_page",
    "filtered_fids",
    "filtered_table",
    "list_columns",
]

#: Rows per page a list offers, and the default.
PAGE_SIZES = (20, 50, 100, 200)
DEFAULT_PAGE_SIZE = 50
#: The listed column holding the unit grid a feature counts in.
UNIT_COLUMN = "gw_unit"
#: Longest text filter, in characters.
MAX_TEXT = 100


def list_columns(spec: LayerSpec) -> list[str]:
    """The columns a list shows (and may sort on): the layer's fields, then its unit grid."""
    return [*spec.field_names, UNIT_COLUMN]


def _bad(zh: str, en: str) -> InputError:
    return InputError(zh, en, code="bad_parameter")


def _int(args: Mapping[str, str], name: str, default: int) -> int:
    raw = (args.get(name) or "").strip()
    if not raw:
        return default
    if not raw.isdigit() or len(raw) > 9:
        raise _bad(f"参数 {name} 应为正整数", f"{name} must be a positive integer")
    return int(raw)


@dataclass(frozen=True)
class FeatureQuery:
    """What a feature list shows: a layer's features filtered, sorted and paged.

    Parameters
    ----------
    layer : str
        A survey layer.
    within : str, optional
        A unit code at any level (features in the unit grids under it), or ``UNASSIGNED``.
    statuses : tuple of str
        Only these status codes (empty: all).
    date_field : str, optional
        The date field ``date_from`` and ``date_to`` apply to (default the layer's found field).
    date_from, date_to : date, optional
        Inclusive bounds; a feature without the date is left out when a bound is given.
    text : str, optional
        Literal text in any searchable field, any case.
    sort : str, optional
        A column of :func:`list_columns` (default stored order).
    descending : bool
        Sort downwards.
    page, page_size : int
        1-based page; rows per page, one of :data:`PAGE_SIZES`.
    """

    layer: str
    within: str | None = None
    #: only features assigned to these unit grid codes (an account's area)
    units: frozenset[str] | None = None
    statuses: tuple[str, ...] = ()
    date_field: str | None = None
    date_from: date | None = None
    date_to: date | None = None
    text: str | None = None
    sort: str | None = None
    descending: bool = False
    page: int = 1
    page_size: int = DEFAULT_PAGE_SIZE

    def __post_init__(self) -> None:
        spec = self.spec
        if spec.is_grid:
            raise InputError("请选择调查图层", "choose a survey layer", code="bad_layer")
        known = {s.code for s in spec.all_statuses}
        for s in self.statuses:
            if s not in known:
                raise InputError(f"未知状态: {s}", f"unknown status: {s}", code="bad_status")
        if self.date_field is not None and self.date_field not in self.date_fields(spec):
            raise _bad(f"不是日期字段: {self.date_field}", f"not a date field: {self.date_field}")
        if self.sort is not None and self.sort not in list_columns(spec):
            raise _bad(f"不能按 {self.sort} 排序", f"cannot sort by {self.sort}")
        if self.page_size not in PAGE_SIZES:
            sizes = "、".join(str(n) for n in PAGE_SIZES)
            raise _bad(f"每页行数应为 {sizes}", f"rows per page must be one of {sizes}")
        if self.page < 1:
            raise _bad("页码应从 1 开始", "pages start at 1")
        if self.text is not None and len(self.text) > MAX_TEXT:
            raise _bad(f"查找内容过长（最多 {MAX_TEXT} 个字）", f"the text is too long (at most {MAX_TEXT})")

    @property
    def spec(self) -> LayerSpec:
        """The layer listed."""
        return get_layer(self.layer)

    @staticmethod
    def date_fields(spec: LayerSpec) -> list[str]:
        """The layer's date fields, its found and completed fields first."""
        first = [f for f in (spec.found_field, spec.completed_field) if f]
        return list(dict.fromkeys([*first, *(f.name for f in spec.fields if f.kind == "date")]))

    @classmethod
    def parse(cls, layer: str, args: Mapping[str, str]) -> FeatureQuery:
        """A query from a page's or a request's parameters: ``within``, ``status`` (codes,
        comma-separated), ``date_field``, ``from``, ``to``, ``q``, ``sort``, ``order`` (``asc`` or
        ``desc``), ``page``, ``size``.  Empty parameters are absent; bad ones an
        :class:`~geo.errors.InputError`."""
        order = (args.get("order") or "asc").strip()
        if order not in ("asc", "desc"):
            raise _bad("排序方向应为 asc 或 desc", "order must be asc or desc")
        text = (args.get("q") or "").strip()
        return cls(
            layer=layer,
            within=(args.get("within") or "").strip() or None,
            statuses=tuple(s for s in (args.get("status") or "").split(",") if s.strip()),
            date_field=(args.get("date_field") or "").strip() or None,
            date_from=parse_date(args.get("from")),
            date_to=parse_date(args.get("to")),
            text=text or None,
            sort=(args.get("sort") or "").strip() or None,
            descending=order == "desc",
            page=_int(args, "page", 1),
            page_size=_int(args, "size", DEFAULT_PAGE_SIZE),
        )


@dataclass
class FeaturePage:
    """One page of a feature list: its rows (``fid`` and the listed columns, plain values, dates
    as ISO text), the number of features the filters keep, the page and the number of pages."""

    columns: list[str]
    rows: list[dict[str, Any]]
    total: int
    page: int
    pages: int
    page_size: int
    query: FeatureQuery


def _read(store: Store, spec: LayerSpec) -> tuple[pa.Table, pa.Array]:
    """The current rows of ``spec`` (``fid`` and the listed columns, Arrow) and the lower-cased
    text of their searchable fields joined by line feeds, kept per layer generation."""
    kept = store.cache.region("search")
    state = generations(store, spec)
    key = (f"{spec.name}/list", state)

    def fill() -> tuple[pa.Table, pa.Array]:
        table = store.read_table(spec, list_columns(spec))
        columns = []
        for name in spec.searchable_fields:
            col = table.column(name).combine_chunks()
            columns.append(pc.utf8_lower(col if pa.types.is_string(col.type) else pc.cast(col, pa.string())))
        text = (
            pc.binary_join_element_wise(*columns, "\n", null_handling="replace", null_replacement="")
            if columns
            else pa.array([""] * table.num_rows, type=pa.string())
        )
        return (table.combine_chunks(), text)

    return kept.get_or_fill(key, fill, lambda: generations(store, spec) == state, wait=not store.writing())


def _table(store: Store, spec: LayerSpec) -> pa.Table:
    return _read(store, spec)[0]


def _grids_under(store: Store, code: str) -> np.ndarray:
    hier = load_hierarchy(store)
    g = hier.grid
    inside = (g["code"] == code).to_numpy().copy()
    for level in hier.level_names[1:]:
        inside |= (g[hier.code_column(level)] == code).to_numpy()
    if not inside.any():
        raise InputError(f"找不到单元: {code}", f"no unit with code {code}", code="unknown_unit")
    return g.loc[inside, "code"].astype(str).to_numpy()


def _mask(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    return np.asarray(pc.fill_null(values, False).to_numpy(zero_copy_only=False), dtype=bool)


def _rows(store: Store, query: FeatureQuery) -> np.ndarray:
    """Positions (in stored order) of the features ``query`` keeps, sorted as it asks."""
    spec = query.spec
    table, text = _read(store, spec)
    keep = np.ones(table.num_rows, dtype=bool)
    if query.within:
        units = table.column(UNIT_COLUMN)
        if query.within == UNASSIGNED:
            keep &= _mask(pc.equal(units, UNASSIGNED)) | _mask(pc.is_null(units))
        else:
            grids = pa.array(_grids_under(store, query.within).tolist(), type=pa.string())
            keep &= _mask(pc.is_in(units, value_set=grids))
    if query.units is not None:
        area = pa.array(sorted(query.units), type=pa.string())
        keep &= _mask(pc.is_in(table.column(UNIT_COLUMN), value_set=area))
    if query.statuses and spec.status_field:
        keep &= _mask(pc.is_in(table.column(spec.status_field), value_set=pa.array(list(query.statuses))))
    if query.text:
        keep &= _mask(pc.match_substring(text, query.text.lower()))
    if query.date_from or query.date_to:
        days = table.column(query.date_field or FeatureQuery.date_fields(spec)[0])
        if days.type != pa.date32():
            days = pc.cast(pc.cast(days, pa.string()), pa.date32(), safe=False)
        if query.date_from:
            keep &= _mask(pc.greater_equal(days, pa.scalar(query.date_from, pa.date32())))
        if query.date_to:
            keep &= _mask(pc.less_equal(days, pa.scalar(query.date_to, pa.date32())))
    rows = np.flatnonzero(keep)
    if query.sort:
        chosen = pa.table({"key": table.column(query.sort).take(pa.array(rows)), "row": pa.array(rows)})
        direction = "descending" if query.descending else "ascending"
        order = pc.sort_indices(
            chosen, sort_keys=[("key", direction, "at_end"), ("row", "ascending", "at_end")]
        )
        rows = rows[np.asarray(order.to_numpy(), dtype=np.int64)]
    return rows


def filtered_table(store: Store, query: FeatureQuery) -> pd.DataFrame:
    """The features ``query`` keeps, sorted as it asks (every page): ``fid`` and the listed
    columns."""
    rows = pa.array(_rows(store, query), type=pa.int64())
    return _table(store, query.spec).take(rows).to_pandas(date_as_object=True)


def filtered_fids(store: Store, query: FeatureQuery) -> np.ndarray:
    """The fids of the features ``query`` keeps, in its order (for exports)."""
    fids = np.asarray(_table(store, query.spec).column("fid").to_numpy(), dtype=np.int64)
    return fids[_rows(store, query)]


def _plain(v: Any) -> Any:
    if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NaT:
        return None
    if isinstance(v, date):
        return v.isoformat()
    if isinstance(v, np.generic):
        return v.item()
    return v


def feature_page(store: Store, query: FeatureQuery) -> FeaturePage:
    """The page of the feature list ``query`` asks for (the last one when it asks past it).

    Returns
    -------
    FeaturePage
        Rows with ``fid`` and :func:`list_columns`; ``total`` counts every kept feature.
    """
    chosen = _rows(store, query)
    total = len(chosen)
    pages = max(1, math.ceil(total / query.page_size))
    page = min(query.page, pages)
    start = (page - 1) * query.page_size
    shown = _table(store, query.spec).take(pa.array(chosen[start : start + query.page_size], type=pa.int64()))
    columns = list_columns(query.spec)
    rows = [{k: _plain(r[k]) for k in ("fid", *columns)} for r in shown.to_pylist()]
    return FeaturePage(columns, rows, total, page, pages, query.page_size, query)


def area_choices(
    store: Store, area: frozenset[str] | None = None
) -> list[tuple[Level, list[tuple[str, str]]]]:
    """The areas a list can be narrowed to, like the map's: per level between the unit grid and
    the top, from the top down, its units as ``(code, name)`` (the code when it has none); with
    ``area`` (an account's unit grids) only the units holding one of them."""
    hier = load_hierarchy(store)
    out = []
    for lv in grid_levels()[-2:0:-1]:
        units = hier.units(lv.name)
        if area is not None:
            g = hier.grid
            units = units[units["code"].isin(set(g.loc[g["code"].isin(area), hier.code_column(lv.name)]))]
        out.append((lv, [(str(r["code"]), str(r["name"] or r["code"])) for r in units.to_dict("records")]))
    return out
