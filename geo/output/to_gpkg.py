"""The ``gpkg`` renderer: every level of a report as a layer of one GeoPackage."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from geo.figures.report import StatsReport
from geo.output.tables import level_names, lonlat_frame, resolve_level


def render_gpkg(report: StatsReport, level: str | None = None) -> bytes:
    """Every level as a layer ``stats_<level>`` of one GeoPackage, CRS EPSG:4490.

    Columns as in the tables (machine names), rates as ratios, areas in m².
    The ``UNASSIGNED`` row is kept with a null geometry.  ``level`` is only
    checked.
    """
    import pyogrio

    resolve_level(report, level)
    with tempfile.TemporaryDirectory(prefix="gridwatch-export-") as tmp:
        path = Path(tmp) / "stats.gpkg"
        for lv in level_names(report):
            pyogrio.write_dataframe(
                lonlat_frame(report, lv),
                path,
                layer=f"stats_{lv}",
                driver="GPKG",
                layer_metadata={
                    "as_of": report.as_of,
                    "title": report.title,
                    "level": lv,
                    **(
                        {"provenance": json.dumps(report.provenance, ensure_ascii=False)}
                        if report.provenance is not None
                        else {}
                    ),
                },
            )
        return path.read_bytes()
