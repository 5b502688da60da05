"""The district a large load run starts from, generated: irregular unit grids (a Voronoi
partition, about 1 ha each, coded by street and community) and illegal-construction points,
written as GBK shapefiles without ``.cpg`` (DBF language byte 0).  The benchmarks in ``bench/`` generate
their districts with these too (tests do not import ``bench/``), so every store built from
them holds the same cells and points."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj
import shapely

EPSG = 4548
STATUSES = np.array(["已登记", "已下发通知", "拆除中", "已拆除", "已补办手续"], dtype=object)


def make_cells(n: int, seed: int = 1) -> gpd.GeoDataFrame:
    """``n`` irregular cells: a Voronoi partition of random seeds, clipped to a square (≈ 1 ha each)."""
    rng = np.random.default_rng(seed)
    x0, y0 = pyproj.Transformer.from_crs(4490, EPSG, always_xy=True).transform(118.4, 31.3)
    side = float(np.sqrt(n) * 100.0)
    pts = shapely.points(rng.uniform(x0, x0 + side, n), rng.uniform(y0, y0 + side, n))
    frame = shapely.box(x0, y0, x0 + side, y0 + side)
    vor = shapely.get_parts(shapely.voronoi_polygons(shapely.multipoints(pts), extend_to=frame))
    cells = shapely.intersection(vor, frame)
    cells = cells[shapely.area(cells) > 0]
    # codes: 4 streets by quadrant, communities of ~200 cells ordered north→south, west→east
    c = shapely.centroid(cells)
    cx, cy = shapely.get_x(c), shapely.get_y(c)
    order = np.lexsort((cx, -np.floor((cy - y0) / (side / 50))))
    codes = np.empty(len(cells), dtype=object)
    for k, idx in enumerate(order):
        street = 1 + k * 4 // len(order)
        comm = 1 + (k % (len(order) // 4 + 1)) // 200
        seq = 1 + (k % (len(order) // 4 + 1)) % 200
        codes[idx] = f"340291{street:03d}{comm:03d}{seq:03d}"
    return gpd.GeoDataFrame({"网格编码": codes}, geometry=cells, crs=EPSG)


def make_points(n: int, bounds: np.ndarray, seed: int, start_id: int = 0) -> gpd.GeoDataFrame:
    rng = np.random.default_rng(seed)
    minx, miny, maxx, maxy = bounds
    found = pd.Timestamp("2022-01-01") + pd.to_timedelta(rng.integers(0, 365, n), unit="D")
    status = STATUSES[rng.integers(0, len(STATUSES), n)]
    done = np.where(
        np.isin(status, ["已拆除", "已补办手续"]),
        (found + pd.to_timedelta(rng.integers(0, 120, n), unit="D")).strftime("%Y-%m-%d"),
        "",
    )
    return gpd.GeoDataFrame(
        {
            "案件编号": [f"WJ{start_id + i:08d}" for i in range(n)],
            "违建地址": np.array(["芜湖市青弋区某某路", "青弋区赭麓街道", "湖滨社区"], dtype=object)[
                rng.integers(0, 3, n)
            ],
            "违建面积": np.round(rng.uniform(5, 300, n), 1),
            "当前状态": status,
            "发现时间": found.strftime("%Y-%m-%d"),
            "拆除时间": done,
        },
        geometry=shapely.points(rng.uniform(minx, maxx, n), rng.uniform(miny, maxy, n)),
        crs=EPSG,
    )


def write_gbk(gdf: gpd.GeoDataFrame, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    gdf.to_file(path, engine="pyogrio", encoding="GBK")
    path.with_suffix(".cpg").unlink(missing_ok=True)
    dbf = path.with_suffix(".dbf")
    data = bytearray(dbf.read_bytes())
    data[29] = 0
    dbf.write_bytes(bytes(data))
    return path
