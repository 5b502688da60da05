"""One search box for the whole grid and every survey layer.

A query finds units of every level of the unit hierarchy (单元网格 up to 区, as the grid layer
declares them) by code (exact or prefix) or name (substring), and features of the survey layers
by their searchable fields (:attr:`layers.base.LayerSpec.searchable_fields`: the survey id, and
names and addresses where the layer declares them).  Matching ignores case and treats the query
as literal text (``%``, ``_``, regex characters and markup mean themselves).  Hits are ranked:
an exact code or id first, then a code or id that starts with the query, then a name, an address
or an id that contains it.

The text columns are read once per grid or layer generation and kept lower-cased in the store's
cache (region ``search``); a query is a few vectorised Arrow string kernels over them.  Every
hit says where to go in lon/lat (EPSG:4326; the stored CGCS2000 is drawn as WGS84, as on the
map; with ``gcj02=True`` shifted to GCJ-02): a bounding box, a point inside it and, for a unit,
its outline as GeoJSON so a map can highlight it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyproj
import shapely

import layers
from geo.errors import InputError
from geo.figures.hierarchy import UNCODED, load_hierarchy
from geo.figures.report import unit_geometry
from geo.reading import crs as crsmod
from geo.reading.gcj02 import wgs84_to_gcj02
from geo.registry import get_layer, grid_spec
from geo.store.base import Store
from geo.store.cache import generations
from geo.store.interface.changes import enabled as changes_enabled
from geo.store.interface.changes import splice
from layers.base import UNASSIGNED, LayerSpec

__all__ = ["MAX_LIMIT", "MAX_QUERY", "SearchHit", "check_query", "search"]

#: Longest query accepted, in characters.
MAX_QUERY = 100
#: Most hits one search returns.
MAX_LIMIT = 100

#: Ranks of a hit, best first.
EXACT, PREFIX, SUBSTRING = 0, 1, 2

#: Control characters, read as spaces (the searched columns are joined by a line feed).
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

#: Between two rows' text in a layer's searched text (a control character: never in a query).
_ROW_SEP = "\x1e"

#: Outlines of large units (a district) are simplified to about this many degrees (~1 m).
_OUTLINE_TOLERANCE = 1e-5


@dataclass(frozen=True)
class SearchHit:
    """One hit of :func:`search`.

    ``kind`` is ``"unit"`` or ``"feature"``; ``group`` the level (units) or the layer (features)
    by name, ``group_label`` its label in the asked language; ``code`` the unit code or the
    survey id (``fid`` the stored feature id); ``label`` what to show; ``parent`` the name of
    the unit above (units) or of the unit grid the feature lies in.  ``bbox`` is west, south,
    east, north and ``point`` lon, lat in degrees; ``outline`` a unit's GeoJSON geometry.
    """

    kind: str
    group: str
    group_label: str
    code: str
    label: str
    parent: str | None
    rank: int
    bbox: tuple[float, float, float, float] | None = None
    point: tuple[float, float] | None = None
    outline: dict[str, Any] | None = None
    fid: int | None = None
    #: the unit grid code a feature is assigned to (not sent: what an account's area is checked on)
    unit: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The hit as the API returns it."""
        out: dict[str, Any] = {
            "kind": self.kind,
            "group": self.group,
            "group_label": self.group_label,
            "code": self.code,
            "label": self.label,
            "parent": self.parent,
            "rank": self.rank,
            "bbox": list(self.bbox) if self.bbox else None,
            "point": list(self.point) if self.point else None,
        }
        if self.kind == "unit":
            out["level"] = self.group
            out["outline"] = self.outline
        else:
            out["layer"] = self.group
            out["fid"] = self.fid
        return out


def check_query(q: str | None) -> str:
    """``q`` stripped; an :class:`~geo.errors.InputError` (``bad_query``) when empty or longer
    than :data:`MAX_QUERY` characters."""
    text = _CONTROL.sub(" ", q or "").strip()
    if not text:
        raise InputError(
            "请输入要查找的编码、名称或地址", "type a code, a name or an address", code="bad_query"
        )
    if len(text) > MAX_QUERY:
        raise InputError(
            f"查找内容过长（最多 {MAX_QUERY} 个字）",
            f"the search text is too long (at most {MAX_QUERY} characters)",
            code="bad_query",
        )
    return text


def search(
    store: Store,
    q: str,
    limit: int = 20,
    layer: str | None = None,
    gcj02: bool = False,
    lang: str = "zh",
    units: frozenset[str] | None = None,
) -> list[SearchHit]:
    """Units and features matching ``q``, best first, at most ``limit``.

    Parameters
    ----------
    q : str
        Literal text (any case); see :func:`check_query`.
    limit : int
        1 to :data:`MAX_LIMIT`.
    layer : str, optional
        Search the units and only this survey layer's features (the grid layer's name: units
        only); default every survey layer.
    gcj02 : bool
        Coordinates in GCJ-02 instead of WGS84.
    lang : str
        ``"en"`` for English level and layer labels, else Chinese.
    units : frozenset of str, optional
        An account's area: only the units that hold one of these unit grids and the features
        assigned to one of them.

    Returns
    -------
    list of SearchHit
        Ordered by rank, then units before features (upper levels first), then code.
    """
    text = check_query(q).lower()
    if not 1 <= limit <= MAX_LIMIT:
        raise InputError(
            f"limit 应在 1–{MAX_LIMIT} 之间", f"limit must be within 1..{MAX_LIMIT}", code="bad_parameter"
        )
    if layer is not None:
        spec = get_layer(layer)
        wanted = [] if spec.is_grid else [spec]
    else:
        wanted = layers.survey_layers()
    candidates: list[tuple[tuple[Any, ...], Any]] = []
    asked = limit if units is None else MAX_LIMIT
    candidates += _unit_candidates(store, text, lang, asked)
    for order, spec in enumerate(wanted):
        candidates += _feature_candidates(store, spec, text, order, lang, asked)
    if units is not None:
        candidates = [c for c in candidates if _in_area(c[1], units, _area_codes(store, units))]
    candidates.sort(key=lambda c: c[0])
    chosen = [c[1] for c in candidates[:limit]]
    return _place(store, chosen, gcj02)


def _area_codes(store: Store, units: frozenset[str]) -> dict[str, set[str]]:
    """Per level, the codes of the units holding one of the unit grids ``units``."""
    hier = load_hierarchy(store)
    g = hier.grid
    inside = g["code"].isin(units)
    return {lv: {str(c) for c in g.loc[inside, hier.code_column(lv)]} for lv in hier.level_names}


def _in_area(hit: SearchHit, units: frozenset[str], codes: dict[str, set[str]]) -> bool:
    if hit.kind == "unit":
        return hit.code in codes.get(hit.group, set())
    return hit.unit is not None and hit.unit in units


# --- units ----------------------------------------------------------------------------------


def _unit_columns(store: Store) -> dict[str, Any]:
    """Every unit of every level of the current grid: code, name, level, parent name, level
    order (top level 0), and the lower-cased code and name as Arrow arrays."""
    grid = grid_spec()
    kept = store.cache.region("search")
    state = generations(store, grid)
    key = (grid.name, state)

    def fill() -> dict[str, Any]:
        hier = load_hierarchy(store)
        frames = []
        names = hier.level_names
        for i, level in enumerate(names):
            units = hier.units(level)
            units = units[units["code"].notna() & (units["code"] != UNCODED)]
            units["order"] = len(names) - 1 - i
            frames.append(units)
        df = pd.concat(frames, ignore_index=True)
        codes = df["code"].astype(str)
        unit_names = df["name"].where(df["name"].notna(), "").astype(str)
        code = pa.array(codes.str.lower().tolist(), type=pa.string())
        name = pa.array(unit_names.str.lower().tolist(), type=pa.string())
        g = hier.grid
        return {
            "frame": df.reset_index(drop=True),
            "code": code,
            "name": name,
            "haystack": _haystack([code, name]),
            # unit-grid code → its name (the code where it has none), for the features' hits
            "grid_names": {
                str(c): (str(n) if isinstance(n, str) and n else str(c))
                for c, n in zip(g["code"].tolist(), g["name"].tolist(), strict=True)
            },
        }

    return kept.get_or_fill(key, fill, lambda: generations(store, grid) == state, wait=not store.writing())


def _unit_candidates(store: Store, text: str, lang: str, limit: int) -> list[tuple[tuple[Any, ...], Any]]:
    cols = _unit_columns(store)
    df = cols["frame"]
    if df.empty:
        return []
    idx, rank = _rank(cols["code"], cols["haystack"], text, cols["name"])
    if not len(idx):
        return []
    # only as many as could be shown: best rank, upper levels, then code
    matched = df.iloc[idx].assign(rank=rank)
    matched = matched.sort_values(["rank", "order", "code"], kind="stable").head(limit)
    levels = {lv.name: lv for lv in load_hierarchy(store).levels}
    out = []
    for row in matched.to_dict("records"):
        lv = levels[row["level"]]
        name = row["name"] if isinstance(row["name"], str) and row["name"] else None
        hit = SearchHit(
            kind="unit",
            group=lv.name,
            group_label=lv.label_en if lang == "en" else lv.label_zh,
            code=str(row["code"]),
            label=name or str(row["code"]),
            parent=row["parent_name"] if isinstance(row["parent_name"], str) else None,
            rank=int(row["rank"]),
        )
        out.append(((hit.rank, 0, int(row["order"]), 0, hit.code), hit))
    return out


def _haystack(columns: list[pa.Array]) -> pa.Array:
    """The lower-cased text of each row's searched columns joined by a line feed (a query never
    holds one), so one substring kernel finds the rows any column matches."""
    lowered = [
        pc.utf8_lower(pc.cast(c, pa.string()) if not pa.types.is_string(c.type) else c) for c in columns
    ]
    if len(lowered) == 1:
        return pc.fill_null(lowered[0], "")
    return pc.binary_join_element_wise(*lowered, "\n", null_handling="replace", null_replacement="")


def _rank(
    code: pa.Array, haystack: pa.Array, text: str, names: pa.Array | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The rows whose ``haystack`` contains ``text`` and their rank: :data:`EXACT` when the code
    (or a name) equals it, :data:`PREFIX` when the code starts with it, else :data:`SUBSTRING`.
    ``code`` and ``names`` are lower-cased; only the rows found are compared further."""
    found = pc.fill_null(pc.match_substring(haystack, text), False)
    idx = np.flatnonzero(np.asarray(found.to_numpy(zero_copy_only=False), dtype=bool))
    rank = np.full(len(idx), SUBSTRING, dtype=np.int8)
    if not len(idx):
        return idx, rank
    take = pa.array(idx)
    codes = code.take(take)

    def mask(values: pa.Array) -> np.ndarray:
        return np.asarray(pc.fill_null(values, False).to_numpy(zero_copy_only=False), dtype=bool)

    exact = mask(pc.equal(codes, text))
    if names is not None:
        exact |= mask(pc.equal(names.take(take), text))
    rank[mask(pc.starts_with(codes, text))] = PREFIX
    rank[exact] = EXACT
    return idx, rank


# --- features -------------------------------------------------------------------------------


def _feature_columns(store: Store, spec: LayerSpec) -> dict[str, Any]:
    """``fid``, the unit, and each searchable field (lower-cased) of the current rows of ``spec``.

    Those of a new generation are made from the ones kept of an older one when the change log
    covers the way (:func:`_follow_columns`), else read in full."""
    kept = store.cache.region("search")
    state = generations(store, spec)
    key = (spec.name, state)

    def fill() -> dict[str, Any]:
        followed = _follow_columns(store, spec, state)
        if followed is not None:
            return followed
        return _columns_of(spec, store.read_table(spec, [*spec.searchable_fields, "gw_unit"]))

    return kept.get_or_fill(key, fill, lambda: generations(store, spec) == state, wait=not store.writing())


def _columns_of(spec: LayerSpec, table: pa.Table) -> dict[str, Any]:
    """The searched columns of the rows of ``table`` (``fid``, the searchable fields, ``gw_unit``)."""
    fields = list(spec.searchable_fields)
    shown: dict[str, pa.Array] = {}
    for f in fields:
        col = table.column(f).combine_chunks()
        shown[f] = col if pa.types.is_string(col.type) else pc.cast(col, pa.string())
    first = shown[fields[0]] if fields else pa.array([], type=pa.string())
    return _with_text(
        {
            "fid": np.asarray(table.column("fid").to_numpy(zero_copy_only=False), dtype=np.int64),
            "unit": table.column("gw_unit").combine_chunks(),
            # the survey id, lower-cased (for exact and prefix hits)
            "id": pc.utf8_lower(first) if spec.id_field else None,
            # each row's fields in one lower-cased text
            "haystack": _haystack(list(shown.values())) if fields else first,
            "shown": shown,
        }
    )


def _with_text(cols: dict[str, Any]) -> dict[str, Any]:
    """``cols`` with ``text``, every row's haystack in one text, rows apart by a record
    separator, and ``starts``, where each row starts in it: str.find runs over it many times
    faster than a kernel over a million short strings, and stops at the first hits."""
    haystack: pa.Array = cols["haystack"]
    rows = pa.ListArray.from_arrays(pa.array([0, len(haystack)], type=pa.int32()), haystack)
    text = pc.binary_join(rows, _ROW_SEP)[0].as_py() or ""  # joined in Arrow, decoded once
    lengths = np.asarray(pc.utf8_length(haystack).to_numpy(zero_copy_only=False), dtype=np.int64)
    return {**cols, "text": text, "starts": np.concatenate([[0], np.cumsum(lengths + 1)])}


def _follow_columns(store: Store, spec: LayerSpec, state: tuple[str, ...]) -> dict[str, Any] | None:
    """The searched columns of the current rows at ``state`` from those kept of an older
    generation of ``spec``: the kept rows without the ones the change log says were touched
    since, plus the touched ones current now, read in one snapshot with the log.  None when
    nothing is kept, the log does not cover the way, or a write landed since ``state``."""
    if not changes_enabled() or any(s.startswith("tx:") for s in state):
        return None
    latest = store.cache.region("search").latest(spec.name)
    if latest is None:
        return None
    key, old = latest
    since = key[1]  # type: ignore[index]
    if any(s.startswith("tx:") for s in since) or not len(old["fid"]):
        return None
    with store.snapshot():
        changed = store.changes(spec, since[0])
        if changed is None or changed.generation != state[0]:
            return None
        table = store.read_table(spec, [*spec.searchable_fields, "gw_unit"], fids=changed.fids)
    new = _columns_of(spec, table)
    plan = splice(old["fid"], changed.fids, new["fid"])

    arrow = plan.arrow

    cols = {
        "fid": plan.fids,
        "unit": arrow(old["unit"], new["unit"]),
        "id": arrow(old["id"], new["id"]),
        "haystack": arrow(old["haystack"], new["haystack"]),
        "shown": {f: arrow(a, new["shown"][f]) for f, a in old["shown"].items()},
    }
    if not (plan.keeps_all and plan.order is None):
        return _with_text(cols)
    # rows only added, after the kept ones: their text follows the kept text
    if not len(new["fid"]):
        return {**cols, "text": old["text"], "starts": old["starts"]}
    starts = np.concatenate([old["starts"][:-1], old["starts"][-1] + new["starts"]])
    return {**cols, "text": old["text"] + _ROW_SEP + new["text"], "starts": starts}


def _feature_hits(cols: dict[str, Any], text: str, limit: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows (positions) of the best ``limit`` hits and their ranks: exact and prefix hits of the
    survey id, then rows whose text contains ``text``, each group in stored (fid) order."""
    best: list[tuple[int, int]] = []
    taken: set[int] = set()
    if cols["id"] is not None:
        ids = cols["id"]
        prefix = np.flatnonzero(
            np.asarray(
                pc.fill_null(pc.starts_with(ids, text), False).to_numpy(zero_copy_only=False), dtype=bool
            )
        )
        if len(prefix):
            exact = np.asarray(
                pc.equal(ids.take(pa.array(prefix)), text).to_numpy(zero_copy_only=False), dtype=bool
            )
            ranked = sorted(zip(np.where(exact, EXACT, PREFIX).tolist(), prefix.tolist(), strict=True))
            best = [(r, i) for r, i in ranked[:limit]]
            taken = set(prefix.tolist())
    haystack: str = cols["text"]
    starts: np.ndarray = cols["starts"]
    at = 0
    while len(best) < limit:
        found = haystack.find(text, at)
        if found < 0:
            break
        row = int(np.searchsorted(starts, found, side="right")) - 1
        if row not in taken:
            best.append((SUBSTRING, row))
        at = int(starts[row + 1])  # on from the next row
    if not best:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int8)
    return np.array([i for _, i in best], dtype=np.int64), np.array([r for r, _ in best], dtype=np.int8)


def _feature_candidates(
    store: Store, spec: LayerSpec, text: str, order: int, lang: str, limit: int
) -> list[tuple[tuple[Any, ...], Any]]:
    fields = list(spec.searchable_fields)
    if not fields:
        return []
    cols = _feature_columns(store, spec)
    if len(cols["fid"]) == 0:
        return []
    idx, rank = _feature_hits(cols, text, limit)
    if not len(idx):
        return []
    take = pa.array(idx)
    shown = {f: cols["shown"][f].take(take).to_pylist() for f in fields}
    units = cols["unit"].take(take).to_pylist()
    names = _unit_names(store)
    label = spec.label_en if lang == "en" else spec.label_zh
    out = []
    for k, i in enumerate(idx.tolist()):
        ident = shown[fields[0]][k] if spec.id_field else None
        words = [str(shown[f][k]) for f in fields[1:] if shown[f][k]] if spec.id_field else []
        code = str(ident) if ident is not None else str(int(cols["fid"][i]))
        unit = units[k]
        parent = None if unit in (None, UNASSIGNED) else names.get(unit) or unit
        hit = SearchHit(
            kind="feature",
            group=spec.name,
            group_label=label,
            code=code,
            label=" ".join([code, *words[:2]]) if words else code,
            parent=parent,
            rank=int(rank[k]),
            fid=int(cols["fid"][i]),
            unit=None if unit is None else str(unit),
        )
        out.append(((int(rank[k]), 1, order, int(cols["fid"][i]), code), hit))
    return out


def _unit_names(store: Store) -> dict[str, str]:
    """Unit-grid code → its name (the code where it has none)."""
    names: dict[str, str] = _unit_columns(store)["grid_names"]
    return names


# --- where to go ----------------------------------------------------------------------------


def _to_lonlat(geoms: np.ndarray, srs: int) -> np.ndarray:
    t = crsmod.transformer(pyproj.CRS.from_epsg(srs), pyproj.CRS.from_epsg(4326))
    return shapely.transform(geoms, lambda xy: np.column_stack(t.transform(xy[:, 0], xy[:, 1])))


def _place(store: Store, hits: list[SearchHit], gcj02: bool) -> list[SearchHit]:
    """``hits`` with their bbox, point and (units) outline in lon/lat."""
    geoms: dict[int, Any] = {}
    by_level: dict[str, list[int]] = {}
    by_layer: dict[str, list[int]] = {}
    for i, h in enumerate(hits):
        (by_level if h.kind == "unit" else by_layer).setdefault(h.group, []).append(i)
    for level, where in by_level.items():
        outlines = unit_geometry(store, level)
        for i in where:
            code = hits[i].code
            geoms[i] = outlines.loc[code] if code in outlines.index else None
    srs = store.srs_epsg()
    for name, where in by_layer.items():
        spec = get_layer(name)
        fids = np.array(sorted({int(hits[i].fid or 0) for i in where}), dtype=np.int64)
        got_fids, got = store.read_geometry(spec, fids)
        if len(got) and srs is not None:
            got = _to_lonlat(got, srs)
        found = dict(zip(np.asarray(got_fids).tolist(), got, strict=True))
        for i in where:
            geoms[i] = found.get(hits[i].fid)
    out = []
    for i, h in enumerate(hits):
        geom = geoms.get(i)
        if geom is None or shapely.is_empty(geom):
            out.append(h)
            continue
        if gcj02:
            geom = shapely.transform(geom, lambda xy: np.column_stack(wgs84_to_gcj02(xy[:, 0], xy[:, 1])))
        w, s, e, n = (round(float(v), 7) for v in shapely.bounds(geom))
        inner = shapely.point_on_surface(geom)
        outline = None
        if h.kind == "unit":
            simple = shapely.simplify(geom, _OUTLINE_TOLERANCE, preserve_topology=True)
            outline = json.loads(shapely.to_geojson(shapely.set_precision(simple, 1e-7)))
        out.append(
            SearchHit(
                **{
                    **h.__dict__,
                    "bbox": (w, s, e, n),
                    "point": (round(inner.x, 7), round(inner.y, 7)),
                    "outline": outline,
                }
            )
        )
    return out
