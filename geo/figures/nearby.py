"""The survey features nearest a position, for field work on a phone.

A phone gives its position in WGS-84 lon/lat (or GCJ-02 when its map is Gaode's); the features
within a radius are found from the positions every map already keeps (:mod:`geo.figures.viewport`,
per layer generation) and their distance measured in the store's projected CRS, in metres, from
each feature's own geometry (zero inside a polygon).  The answer is small: what a list on a slow
connection needs, not the features' attributes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyproj
import shapely

import layers
from geo.edits.ids import ids_of_rows
from geo.errors import InputError
from geo.figures.viewport import positions_and_facts
from geo.reading import crs as crsmod
from geo.reading.gcj02 import gcj02_to_wgs84, wgs84_to_gcj02
from geo.registry import get_layer
from geo.store.base import Store
from layers.base import LayerSpec

__all__ = ["DEFAULT_RADIUS_M", "MAX_LIMIT", "MAX_RADIUS_M", "features_near", "label_fields"]

#: Radius of a search when none is given, in metres.
DEFAULT_RADIUS_M = 500.0
#: The largest radius a search may ask for, in metres (a street office's walk, not the district).
MAX_RADIUS_M = 5000.0
#: The most features one answer lists.
MAX_LIMIT = 200
#: Metres per degree of latitude, a little short of any ellipsoid's, so the box around a position
#: (see :func:`_box`) is never too small.
_METRES_PER_DEGREE = 110_000.0


def label_fields(spec: LayerSpec) -> tuple[str, ...]:
    """The fields a nearby list names a feature by: its survey id, then the fields a search finds
    it by (a name, an address), at most three."""
    return spec.searchable_fields[:3]


def _check(lon: float, lat: float, radius: float, limit: int) -> None:
    if not (math.isfinite(lon) and math.isfinite(lat) and -180 <= lon <= 180 and -90 <= lat <= 90):
        raise InputError(
            f"位置超出范围: {lon}, {lat}", f"position out of range: {lon}, {lat}", code="bad_position"
        )
    if not (math.isfinite(radius) and 0 < radius <= MAX_RADIUS_M):
        raise InputError(
            f"半径应在 0–{MAX_RADIUS_M:.0f} 米之间",
            f"radius must be within 0..{MAX_RADIUS_M:.0f} metres",
            code="bad_parameter",
        )
    if not 1 <= limit <= MAX_LIMIT:
        raise InputError(
            f"limit 应在 1–{MAX_LIMIT} 之间", f"limit must be within 1..{MAX_LIMIT}", code="bad_parameter"
        )


def _box(lon: float, lat: float, radius: float) -> tuple[float, float, float, float]:
    """A lon/lat box that holds every point within ``radius`` metres of ``lon, lat`` (with room
    for the scale of a projected CRS)."""
    dlat = 1.2 * radius / _METRES_PER_DEGREE + 1e-6
    dlon = dlat / max(math.cos(math.radians(min(abs(lat) + dlat, 89.9))), 1e-6)
    return lon - dlon, lat - dlat, lon + dlon, lat + dlat


def _candidates(
    lon: np.ndarray, lat: np.ndarray, geoms: np.ndarray, box: tuple[float, float, float, float]
) -> np.ndarray:
    """Which rows may lie within the box: a point by its position, any other geometry by its
    bounds (a large polygon may reach the box with its position far outside)."""
    w, s, e, n = box
    near = (lon >= w) & (lon <= e) & (lat >= s) & (lat <= n)
    shaped = ~shapely.is_missing(geoms) if len(geoms) else np.zeros(0, dtype=bool)
    if shaped.any():
        b = shapely.bounds(geoms[shaped])
        near[shaped] = (b[:, 0] <= e) & (b[:, 2] >= w) & (b[:, 1] <= n) & (b[:, 3] >= s)
    return near


def _layer_near(
    store: Store,
    spec: LayerSpec,
    x: float,
    y: float,
    box: tuple[float, float, float, float],
    radius: float,
    statuses: Sequence[str] | None,
    units: frozenset[str] | None,
) -> list[dict[str, Any]]:
    """The features of ``spec`` within ``radius`` metres of ``x, y`` (store CRS), unsorted."""
    fids, lon, lat, geoms, facts = positions_and_facts(store, spec)
    if not len(fids):
        return []
    mask = _candidates(lon, lat, geoms, box)
    if statuses:
        if facts.status is None:
            return []
        wanted = pa.array(list(statuses), type=pa.string())
        mask &= pc.fill_null(pc.is_in(facts.status, value_set=wanted), False).to_numpy(zero_copy_only=False)
    if units is not None:
        area = pa.array(sorted(units), type=pa.string())
        mask &= pc.fill_null(pc.is_in(facts.unit, value_set=area), False).to_numpy(zero_copy_only=False)
    at = np.flatnonzero(mask)
    if not len(at):
        return []
    read_fids, shapes = store.read_geometry(spec, fids[at])
    order = np.argsort(read_fids)
    read_fids, shapes = read_fids[order], shapes[order]
    pos = np.clip(np.searchsorted(read_fids, fids[at]), 0, max(len(read_fids) - 1, 0))
    kept = read_fids[pos] == fids[at] if len(read_fids) else np.zeros(len(at), dtype=bool)
    at, pos = at[kept], pos[kept]
    distance = shapely.distance(shapes[pos], shapely.points(x, y))
    inside = np.isfinite(distance) & (distance <= radius)
    at, distance = at[inside], distance[inside]
    status = facts.status.take(pa.array(at)).to_pylist() if facts.status is not None else [None] * len(at)
    return [
        {
            "fid": int(fids[i]),
            "layer": spec.name,
            "status": status[k],
            "completed": bool(facts.completed[i]),
            "distance": float(distance[k]),
            "lon": float(lon[i]),
            "lat": float(lat[i]),
        }
        for k, i in enumerate(at.tolist())
    ]


def _ids(store: Store, spec: LayerSpec, fids: list[int]) -> dict[int, tuple[int, int]]:
    """Per row fid, the feature's stable id and version (see :mod:`geo.edits.ids`)."""
    found = ids_of_rows(store, spec, fids)
    return {
        int(f): (int(i), int(v))
        for f, i, v in zip(
            found["fid"].tolist(), found["id"].tolist(), found["version"].tolist(), strict=True
        )
    }


def _labels(store: Store, spec: LayerSpec, fids: list[int]) -> dict[int, list[str]]:
    """Per fid, the values of its :func:`label_fields` that are not empty, as text."""
    names = label_fields(spec)
    if not fids or not names:
        return {}
    rows = store.read_rows(spec, np.array(sorted(fids), dtype=np.int64))
    out: dict[int, list[str]] = {}
    for row in rows.to_dict("records"):
        values = [row.get(n) for n in names]
        out[int(row["fid"])] = [
            str(v)
            for v in values
            if v is not None and not (isinstance(v, float) and math.isnan(v)) and v != ""
        ]
    return out


def features_near(
    store: Store,
    lon: float,
    lat: float,
    radius: float = DEFAULT_RADIUS_M,
    layer_names: Sequence[str] | None = None,
    statuses: Sequence[str] | None = None,
    limit: int = 50,
    gcj02: bool = False,
    units: frozenset[str] | None = None,
) -> dict[str, Any]:
    """The current survey features within ``radius`` metres of a position, nearest first.

    Parameters
    ----------
    store : Store
        The store; distances are measured in its projected CRS (metres) from each feature's
        stored geometry: to a point, or to a polygon's outline (zero inside it).
    lon, lat : float
        The position in WGS-84 degrees (CGCS2000 is the same within centimetres), or in GCJ-02
        with ``gcj02``.
    radius : float
        Metres, up to :data:`MAX_RADIUS_M`.
    layer_names : sequence of str, optional
        Only these survey layers (default: every survey layer).
    statuses : sequence of str, optional
        Only features with these status codes.
    limit : int
        At most this many features (1..:data:`MAX_LIMIT`); ``total`` counts all within the radius.
    gcj02 : bool
        The position is in GCJ-02 and the answer's positions are too.
    units : frozenset of str, optional
        Only features assigned to these unit grid codes (an account's area).

    Returns
    -------
    dict
        ``lon``, ``lat``, ``radius``, ``total`` and ``features``: each ``id`` and ``version``
        (the feature's stable id and version, see :mod:`geo.edits.ids`: what an edit names and
        sends back), ``layer``, ``status``, ``completed``, ``label`` (the values of
        :func:`label_fields`, those not empty), ``distance`` (metres, to a decimetre) and
        ``lon``/``lat`` (the feature's position, a polygon's point on its surface), nearest
        first (then by layer and row).

    Raises
    ------
    InputError
        A position, radius or limit out of range, or a layer that is not a survey layer.
    """
    _check(lon, lat, radius, limit)
    specs = [get_layer(n) for n in layer_names] if layer_names else list(layers.survey_layers())
    for spec in specs:
        if spec.is_grid:
            raise InputError("网格不是调查图层", "the grid is not a survey layer", code="bad_layer")
    wlon, wlat = lon, lat
    if gcj02:
        a, b = gcj02_to_wgs84(np.array([lon]), np.array([lat]))
        wlon, wlat = float(a[0]), float(b[0])
    answer: dict[str, Any] = {"lon": lon, "lat": lat, "radius": radius, "total": 0, "features": []}
    srs = store.srs_epsg()
    if srs is None:
        return answer
    t = crsmod.transformer(pyproj.CRS.from_epsg(4326), pyproj.CRS.from_epsg(srs))
    x, y = (float(v) for v in t.transform(wlon, wlat))
    box = _box(wlon, wlat, radius)
    found: list[dict[str, Any]] = []
    for spec in specs:
        found += _layer_near(store, spec, x, y, box, radius, statuses, units)
    found.sort(key=lambda f: (f["distance"], f["layer"], f["fid"]))
    shown = found[:limit]
    by_layer: dict[str, list[int]] = {}
    for f in shown:
        by_layer.setdefault(f["layer"], []).append(f["fid"])
    labels = {name: _labels(store, get_layer(name), fids) for name, fids in by_layer.items()}
    ids = {name: _ids(store, get_layer(name), fids) for name, fids in by_layer.items()}
    if gcj02 and shown:
        glon, glat = wgs84_to_gcj02(np.array([f["lon"] for f in shown]), np.array([f["lat"] for f in shown]))
        for f, a, b in zip(shown, glon.tolist(), glat.tolist(), strict=True):
            f["lon"], f["lat"] = a, b
    for f in shown:
        row = f.pop("fid")
        f["id"], f["version"] = ids[f["layer"]].get(row, (row, 1))
        f["label"] = labels[f["layer"]].get(row, [])
        f["distance"] = round(f["distance"], 1)
        f["lon"], f["lat"] = round(f["lon"], 7), round(f["lat"], 7)
    answer["total"] = len(found)
    answer["features"] = shown
    return answer
