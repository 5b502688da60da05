"""The ``geojson`` renderer: one level of a report with its unit outlines, as GeoJSON."""

from __future__ import annotations

import json
from typing import Any

import shapely
from shapely.geometry import mapping

from geo.figures.report import StatsReport
from geo.output.tables import lonlat_outlines, records, resolve_level


def render_geojson(report: StatsReport, level: str | None = None) -> bytes:
    """One level as an RFC 7946 FeatureCollection.

    One feature per unit with its outline in EPSG:4490 lon/lat (CGCS2000, used
    as WGS84; exterior rings counter-clockwise) and the table columns as
    properties; the ``UNASSIGNED`` row is a feature with ``"geometry": null``.
    Feature ``id`` is the unit code.  ``as_of``, ``level`` and ``metadata`` (the
    report's provenance) are foreign members of the collection.
    """
    lv = resolve_level(report, level)
    table = report.levels[lv]
    geoms = shapely.orient_polygons(lonlat_outlines(report, lv).to_numpy(), exterior_cw=False)
    features = []
    for rec, geom in zip(records(table), geoms, strict=True):
        features.append(
            {
                "type": "Feature",
                "id": rec.get("code"),
                "geometry": None if geom is None else mapping(geom),
                "properties": rec,
            }
        )
    doc: dict[str, Any] = {"type": "FeatureCollection", "as_of": report.as_of, "level": lv}
    if report.provenance is not None:
        doc["metadata"] = report.provenance
    doc["features"] = features
    return json.dumps(doc, ensure_ascii=False, allow_nan=False).encode("utf-8")
