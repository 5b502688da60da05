"""The codes and names of a generated grid's cells, and the communities they come from.

A cell's 15-digit code is its community's 12-digit code (6-digit administrative code +
3-digit street + 3-digit community) and a 3-digit sequence running west→east,
north→south inside the community.  The communities are read from a community layer:
its code, community-name and street-name fields, and its polygons made disjoint and
clipped to the boundary.  :func:`geo.output.gridgen.generate_grid` cuts the tiles
along them and codes the pieces here.
"""

from __future__ import annotations

import math
import re
from typing import NoReturn

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import pandas as pd
import shapely
from pyproj import CRS
from shapely.geometry.base import BaseGeometry

from geo.errors import CRSError, InputError
from geo.output.gridgen_tiles import drop_specks, polygonal
from geo.reading.fields import norm_key
from geo.registry import grid_spec
from layers.base import Level

__all__ = ["area_field", "code_cells", "coded_levels", "community_regions"]

_MAX_SEQUENCE = 999
_MAX_SEQUENCE_NO_COMMUNITY = 999_999
_CODE12 = re.compile(r"^\d{12}$")


def coded_levels() -> tuple[Level, Level, Level, Level]:
    """The grid's levels as cells are coded.

    Returns
    -------
    tuple of Level
        Unit grid, community, street and district, with codes of 15, 12, 9 and 6 digits,
        each code a prefix of the one before it.

    Raises
    ------
    RuntimeError
        The grid layer declares other levels or code lengths.
    """
    levels = grid_spec().levels
    if tuple(lv.code_digits for lv in levels) != (15, 12, 9, 6):
        raise RuntimeError(
            "grid generation codes cells as 6 + 3 + 3 + 3 digits (unit grid, community, street, "
            f"district); the grid declares {[(lv.name, lv.code_digits) for lv in levels]}"
        )
    unit, community, street, district = levels
    return unit, community, street, district


def area_field() -> str:
    """The grid field holding a cell's area.

    Returns
    -------
    str
        The name of the grid layer's first float field whose unit is m².
    """
    return next(f.name for f in grid_spec().fields if f.kind == "float" and f.unit == "m2")


def community_regions(
    communities: gpd.GeoDataFrame,
    crs: CRS,
    area_geom: BaseGeometry,
    speck: float,
    admin_code: str | None,
    code_field: str | None,
    name_field: str | None,
    street_field: str | None,
) -> tuple[npt.NDArray[np.object_], pd.DataFrame]:
    """Disjoint community polygons clipped to the boundary, and their codes and names.

    Parameters
    ----------
    communities : GeoDataFrame
        Community (社区) polygons with a 12-digit code, in any CRS (it must have one).
        Polygons sharing a code are one community; where communities overlap, the first
        row wins.
    crs : pyproj.CRS
        The projected working CRS, in metres, the regions are returned in.
    area_geom : shapely geometry
        The boundary, in ``crs``.
    speck : float
        Parts and holes of at most this area, in m², are overlay noise and dropped.
    admin_code : str or None
        6-digit administrative division code every community code must start with.
    code_field : str or None
        Field holding the 12-digit code; None for the first field whose values are all
        12-digit codes, preferring one named like the grid's community code.
    name_field, street_field : str or None
        Fields holding the community and street names; None for a field named like the
        grid's community and street name fields (a plain 名称/NAME/MC for the community),
        or none.

    Returns
    -------
    regions : numpy.ndarray of shapely geometries
        One disjoint Polygon or MultiPolygon per community, in ``crs``, in order of first
        appearance; empty where a community lies outside the boundary.
    info : pandas.DataFrame
        One row per region, in the same order: the grid's community code, community name
        and street name fields.

    Raises
    ------
    InputError
        An empty layer, a missing field, codes that are not 12 digits or do not start with
        ``admin_code``, or no community overlapping the boundary.
    CRSError
        The community layer has no CRS.
    """
    if communities.crs is None:
        raise CRSError("社区图层没有坐标系（缺少 .prj）", "the community layer has no CRS (missing .prj)")
    if len(communities) == 0:
        raise InputError("社区图层为空", "the community layer is empty")
    communities = communities.reset_index(drop=True)
    columns = [c for c in communities.columns if c != communities.geometry.name]
    code_field = code_field or _detect_code_field(communities, columns)
    if code_field not in communities.columns:
        raise InputError(
            f"社区图层中没有字段 {code_field}", f"the community layer has no field {code_field!r}"
        )
    codes = communities[code_field].map(_as_code)
    bad = codes[~codes.fillna("").str.match(_CODE12)]
    if len(bad):
        raise InputError(
            f"社区编码须为 12 位数字（字段 {code_field}），例如 {communities[code_field].iloc[bad.index[0]]!r}",
            f"community codes must be 12 digits (field {code_field!r}), e.g. "
            f"{communities[code_field].iloc[bad.index[0]]!r}",
        )
    if admin_code is not None and not codes.str.startswith(admin_code).all():
        raise InputError(
            f"社区编码的前 6 位与行政区划代码 {admin_code} 不一致",
            f"community codes do not start with admin_code {admin_code}",
        )
    _, community, street, _ = coded_levels()
    # a community layer's plain name field (名称/NAME/MC) is the community's name
    name_field = name_field or _detect_field(
        columns, community.name_field, exclude={code_field}, also=("名称", "NAME", "MC")
    )
    street_field = street_field or _detect_field(columns, street.name_field, exclude={code_field, name_field})
    for f in (name_field, street_field):
        if f is not None and f not in communities.columns:
            raise InputError(f"社区图层中没有字段 {f}", f"the community layer has no field {f!r}")

    frame = pd.DataFrame(
        {
            community.code_field: codes.to_numpy(),
            community.name_field: _text(communities[name_field]) if name_field else None,
            street.name_field: _text(communities[street_field]) if street_field else None,
            "geometry": communities.to_crs(crs).geometry.to_numpy(),
        }
    )
    order = pd.unique(frame[community.code_field])
    regions: list[BaseGeometry] = []
    taken: BaseGeometry = shapely.Polygon()
    for _, rows in frame.groupby(community.code_field, sort=False):
        geom = shapely.union_all(polygonal(shapely.make_valid(rows["geometry"].to_numpy())))
        geom = shapely.difference(shapely.intersection(geom, area_geom), taken)
        taken = shapely.union(taken, geom)
        regions.append(drop_specks(geom, speck))
    if all(r.is_empty for r in regions):
        raise InputError("社区图层与边界没有重叠", "no community overlaps the boundary")
    info = (
        frame.drop(columns="geometry")
        .groupby(community.code_field, sort=False, dropna=False)
        .first()
        .reindex(order)
        .reset_index()
    )
    return np.array(regions, dtype=object), info


def _as_code(value: object) -> str | None:
    """A code cell as text: integers and floats like 340291001001.0 lose their decimals."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _text(values: pd.Series) -> list[str | None]:
    return [None if v is None or (isinstance(v, float) and math.isnan(v)) else str(v).strip() for v in values]


def _detect_code_field(communities: gpd.GeoDataFrame, columns: list[str]) -> str:
    """The field whose values are all 12-digit codes, preferring one named like a community code."""
    candidates = [c for c in columns if communities[c].map(_as_code).fillna("").str.match(_CODE12).all()]
    if not candidates:
        raise InputError(
            "社区图层中找不到 12 位社区编码字段，请指定 community_code_field",
            "no field of 12-digit community codes found in the community layer; pass community_code_field",
        )
    community = coded_levels()[1]
    preferred = {
        norm_key(a) for a in (*grid_spec().field(community.code_field).aliases, "编码", "代码", "CODE")
    }
    for c in candidates:
        if norm_key(c) in preferred:
            return c
    return candidates[0]


def _detect_field(
    columns: list[str], canonical: str, exclude: set[str | None], also: tuple[str, ...] = ()
) -> str | None:
    """The first column named like an alias of the grid layer's ``canonical`` field (or like
    one of ``also``, after them)."""
    aliases = [norm_key(a) for a in (*grid_spec().field(canonical).aliases, *also)]
    by_name = {norm_key(c): c for c in columns if c not in exclude}
    for alias in aliases:
        if alias in by_name:
            return by_name[alias]
    return None


def code_cells(cells: pd.DataFrame, info: pd.DataFrame, admin_code: str | None, size: float) -> pd.DataFrame:
    """Number the cells west→east, north→south in each community and build their codes and names.

    Parameters
    ----------
    cells : pandas.DataFrame
        Pieces from :func:`geo.output.gridgen_tiles.clip_tiles`: ``region``, ``row``, ``col``
        and ``geometry`` (in a projected CRS in metres).
    info : pandas.DataFrame
        One row per region, as from :func:`community_regions`; a single row of nulls for
        a district without communities.
    admin_code : str or None
        6-digit administrative division code; required when ``info`` has no community codes.
    size : float
        Cell size in metres, used to suggest a larger one when a code runs out.

    Returns
    -------
    pandas.DataFrame
        The columns of :data:`geo.output.gridgen.OUTPUT_COLUMNS` (the area in m²), sorted by
        code: ``<comm_code><sequence 001…999>`` named ``"<社区>第012网格"``, or without
        communities ``admin_code + "000" + <sequence 000001…999999>`` named ``"网格012"``.

    Raises
    ------
    InputError
        A community with more than 999 cells, or a district without communities with more
        than 999,999 (the message suggests a larger size).
    """
    cells = cells.sort_values(["region", "row", "col"], ascending=[True, False, True], kind="stable")
    seq = cells.groupby("region", sort=False).cumcount().to_numpy() + 1
    region = cells["region"].to_numpy()
    geoms = cells["geometry"].to_numpy()
    unit, community, street, district = coded_levels()
    with_communities = info[community.code_field].notna().all()

    if with_communities:
        counts = np.bincount(region, minlength=len(info))
        worst = int(np.argmax(counts))
        if counts[worst] > _MAX_SEQUENCE:
            _raise_too_many(
                int(counts[worst]),
                _MAX_SEQUENCE,
                size,
                f"社区 {info[community.code_field][worst]} ",
                f"community {info[community.code_field][worst]}",
            )
        comm = info[community.code_field].to_numpy(dtype=object)[region]
        comm_name = info[community.name_field].to_numpy(dtype=object)[region]
        street_name = info[street.name_field].to_numpy(dtype=object)[region]
        code = [f"{c}{s:03d}" for c, s in zip(comm, seq, strict=True)]
        name = [f"{n}第{s:03d}网格" if n else f"网格{s:03d}" for n, s in zip(comm_name, seq, strict=True)]
        street_cd: list[object] = [c[: street.code_digits] for c in comm]
        dist = [c[: district.code_digits] for c in comm]
    else:
        assert admin_code is not None
        if len(cells) > _MAX_SEQUENCE_NO_COMMUNITY:
            _raise_too_many(len(cells), _MAX_SEQUENCE_NO_COMMUNITY, size, "该区", "the district")
        code = [f"{admin_code}000{s:06d}" for s in seq]
        name = [f"网格{s:03d}" for s in seq]
        comm = comm_name = street_name = np.full(len(cells), None, dtype=object)
        street_cd = [None] * len(cells)
        dist = [admin_code] * len(cells)

    out = pd.DataFrame(
        {
            unit.code_field: code,
            unit.name_field: name,
            community.code_field: comm,
            community.name_field: comm_name,
            street.code_field: street_cd,
            street.name_field: street_name,
            district.code_field: dist,
            area_field(): shapely.area(geoms),
            "geometry": geoms,
        }
    )
    return out.sort_values(unit.code_field, kind="stable").reset_index(drop=True)


def _raise_too_many(count: int, limit: int, size: float, where_zh: str, where_en: str) -> NoReturn:
    # 5% more than the area ratio leaves room for the partial cells along borders.
    suggested = math.ceil(size * math.sqrt(count / limit) * 1.05)
    raise InputError(
        f"{where_zh}有 {count} 个网格，超过编码上限 {limit}；请加大网格尺寸（例如 size={suggested} 米）",
        f"{where_en} would have {count} cells, more than the {limit} a code allows; "
        f"use a larger size (e.g. size={suggested} m)",
        details={"cells": count, "limit": limit, "suggested_size": suggested},
    )
