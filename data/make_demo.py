"""Build the demo district 青弋区 (fictional, code 340291) as surveyors' shapefiles.

Run ``python data/make_demo.py`` to (re)write ``data/shapefiles/``.  The output depends
only on ``--seed``: two runs write byte-identical files.

Geometry is built in CGCS2000 / 3-degree Gauss-Krüger CM 117°E (EPSG:4548), metres,
around 118.4°E 31.3°N (Wuhu, Anhui):

* the district boundary is a smooth irregular polygon of 12 km²;
* streets (街道), communities (社区) and unit grids (单元网格) are nested Voronoi
  partitions, relaxed a few Lloyd steps and clipped to their parent, so the grids tile
  the district without gaps or overlaps;
* illegal-construction sites (违法建设), parking points (非机动车停放点) and charging
  sheds (充电棚) are scattered over it with attributes as bureaus record them.

Shapefiles are written the way surveyors hand them in: DBF text in GBK with no .cpg
and the DBF language-driver byte set to 0, an ESRI-style .prj, Chinese file and field
names.  A shapefile holds one geometry type, so the illegal-construction sites are
split into a point layer (违法建设.shp) and a polygon layer (违法建设_面.shp).
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import itertools
import math
import re
import zipfile
from collections.abc import Sequence
from pathlib import Path

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import openpyxl
import pandas as pd
import pyarrow as pa
import pyogrio
import shapely
from pyproj import CRS
from shapely.geometry.base import BaseGeometry

DEFAULT_SEED = 20221231
EPSG = 4548
DISTRICT_CODE = "340291"
DISTRICT_NAME = "青弋区"
DISTRICT_AREA_M2 = 12_000_000.0
# 118.4°E 31.3°N in EPSG:4548 is (633291.7, 3465082.1); rounded to whole metres.
CENTRE = (633292.0, 3465082.0)
YEAR_START = dt.date(2022, 1, 1)
YEAR_END = dt.date(2022, 12, 31)
# Written into every DBF header (bytes 1–3, last update) so that reruns are byte-identical.
DBF_DATE = YEAR_END
ZIP_DATE = (2023, 1, 3, 9, 30, 0)
ZIP_FOLDER = "2022年违建台账"
GRID_CELL_M2 = 35_000.0

STREETS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("弋江街道", ("江岸社区", "弋阳社区", "花津社区", "学苑社区", "澄湖社区", "桃园社区")),
    ("赭麓街道", ("赭麓社区", "松林社区", "翠屏社区", "汀兰社区", "梅岭社区")),
    ("湖滨街道", ("湖滨社区", "荷塘社区", "柳岸社区", "渔港社区", "沙洲社区")),
    ("新芜街道", ("新芜社区", "丰泽社区", "银杏社区", "长乐社区")),
)
ROADS: dict[str, tuple[str, ...]] = {
    "弋江街道": ("弋江路", "花津路", "学苑路", "澄湖路", "桃源路"),
    "赭麓街道": ("赭麓路", "松林路", "翠屏路", "梅岭路", "汀兰路"),
    "湖滨街道": ("湖滨路", "荷塘路", "柳岸路", "渔港路", "沙洲路"),
    "新芜街道": ("新芜路", "丰泽路", "银杏路", "长乐路", "青弋大道"),
}
ESTATE_SUFFIXES = ("花园", "新村", "小区", "家园", "苑")
SURNAMES = tuple("王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘")
# fmt: off
GIVEN_NAMES = (
    "伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛",
    "明", "超", "秀兰", "霞", "平", "刚", "桂英", "建华", "文", "华", "红", "玉兰", "志强", "海燕", "晓东",
    "婷", "雪", "慧", "建国", "春梅", "鹏", "辉", "宁", "颖", "俊", "琳", "斌", "倩", "晨", "浩",
)
# fmt: on

STRUCTURES = ("砖混", "钢结构", "彩钢板", "木结构")
POSITIONS = ("地面", "平台", "楼顶")
USES = ("居住", "仓储", "经营", "生产", "养殖", "其他")
PENDING = ("已登记", "已下发通知", "拆除中")
# Work order "先地面、再平台、后楼顶": a later start and a higher share left undone for rooftops.
PHASE_START = {"地面": dt.date(2022, 2, 15), "平台": dt.date(2022, 5, 1), "楼顶": dt.date(2022, 7, 15)}
PENDING_WEIGHT = {"地面": 0.6, "平台": 1.0, "楼顶": 1.6}
# fmt: off
COMMUNITY_RATES = (
    1.0, 0.99, 0.97, 0.85, 0.75, 0.68, 0.64, 0.6, 0.57, 0.55,
    0.53, 0.51, 0.5, 0.48, 0.46, 0.44, 0.42, 0.4, 0.37, 0.34,
)

N_SITES = 2000
N_OUTSIDE = 5
N_ON_VERTEX = 4
N_ON_EDGE = 4
N_PARKING = 300
N_CHARGING = 40

GRID_FIELDS = ("网格编码", "网格名称", "社区编码", "所属社区", "街道编码", "所属街道", "区编码", "所属区", "网格员", "面积")
SITE_FIELDS = (
    "案件编号", "违建地址", "结构类型", "违建位置", "违建层数", "违建用途", "违建类型", "违建面积", "当前状态", "发现时间",
    "拆除时间",
)
PARKING_FIELDS = ("编号", "名称", "地址", "泊位数", "状态", "登记日期", "完成日期")
CHARGING_FIELDS = ("编号", "名称", "地址", "端口数", "棚面积", "状态", "登记日期", "建成日期")

# fmt: on

FILES = {
    "grid": "单元网格",
    "sites": "违法建设",
    "sites_polygons": "违法建设_面",
    "parking": "停放点",
    "charging": "充电棚",
}


# --------------------------------------------------------------------------- geometry


def _polygonal(geom: BaseGeometry) -> BaseGeometry:
    """The polygonal part of ``geom`` (a Polygon, a MultiPolygon or an empty Polygon)."""
    if geom.geom_type in ("Polygon", "MultiPolygon"):
        return geom
    parts = [p for p in shapely.get_parts(geom) if p.geom_type in ("Polygon", "MultiPolygon")]
    if not parts:
        return shapely.Polygon()
    flat = shapely.get_parts(np.array(parts, dtype=object))
    return flat[0] if len(flat) == 1 else shapely.MultiPolygon(list(flat))


def district_boundary(rng: np.random.Generator) -> shapely.Polygon:
    """A smooth, irregular, star-shaped polygon of 12 km² around :data:`CENTRE` (EPSG:4548, m)."""
    theta = np.linspace(0.0, 2.0 * math.pi, 240, endpoint=False)
    radius = np.ones_like(theta)
    for k, amplitude in ((2, 0.14), (3, 0.09), (4, 0.05), (5, 0.035), (7, 0.02), (11, 0.008), (17, 0.004)):
        radius += amplitude * rng.uniform(0.6, 1.0) * np.cos(k * theta + rng.uniform(0.0, 2.0 * math.pi))
    ring = np.column_stack([np.cos(theta) * radius, np.sin(theta) * radius])
    unit = shapely.Polygon(ring)
    scale = math.sqrt(DISTRICT_AREA_M2 / unit.area)
    coords = np.round(ring * scale + np.array(CENTRE), 3)
    return shapely.Polygon(coords)


def _sample_seeds(rng: np.random.Generator, region: BaseGeometry, n: int) -> npt.NDArray[np.float64]:
    """``n`` random points inside ``region`` kept apart by dart throwing (metres)."""
    minx, miny, maxx, maxy = region.bounds
    spacing = 0.7 * math.sqrt(region.area / n)
    shapely.prepare(region)
    points = np.empty((n, 2))
    count = 0
    while count < n:
        for _ in range(100 * n):
            x, y = rng.uniform(minx, maxx), rng.uniform(miny, maxy)
            if not shapely.contains_xy(region, x, y):
                continue
            d2 = (points[:count, 0] - x) ** 2 + (points[:count, 1] - y) ** 2
            if count == 0 or d2.min() >= spacing**2:
                points[count] = (x, y)
                count += 1
                if count == n:
                    break
        spacing *= 0.8
    return points


def _voronoi(region: BaseGeometry, seeds: npt.NDArray[np.float64]) -> list[BaseGeometry]:
    """Voronoi cells of ``seeds`` clipped to ``region``, in seed order, each a single Polygon.

    A cell cut by a concave border into several parts keeps its largest part; each other
    part joins the neighbouring cell sharing the longest border with it.
    """
    diagram = shapely.voronoi_polygons(shapely.multipoints(seeds), extend_to=region, ordered=True)
    cells = [_polygonal(shapely.intersection(c, region)) for c in shapely.get_parts(diagram)]
    for _ in range(10):
        multi = [i for i, c in enumerate(cells) if c.geom_type == "MultiPolygon"]
        if not multi:
            break
        for i in multi:
            parts = sorted(shapely.get_parts(cells[i]), key=lambda p: -p.area)
            cells[i] = parts[0]
            for part in parts[1:]:
                shared = [
                    -1.0 if j == i else shapely.length(shapely.intersection(part.boundary, c.boundary))
                    for j, c in enumerate(cells)
                ]
                j = int(np.argmax(shared))
                if shared[j] > 0:
                    cells[j] = _polygonal(shapely.union(cells[j], part))
                else:
                    cells[i] = _polygonal(shapely.union(cells[i], part))
    return cells


def partition(rng: np.random.Generator, region: BaseGeometry, n: int, lloyd: int = 3) -> list[BaseGeometry]:
    """Cut ``region`` into ``n`` irregular polygons of similar size (relaxed Voronoi cells)."""
    seeds = _sample_seeds(rng, region, n)
    for _ in range(lloyd):
        cells = _voronoi(region, seeds)
        seeds = np.array([[c.centroid.x, c.centroid.y] for c in cells])
    return _voronoi(region, seeds)


def reading_order(geoms: Sequence[BaseGeometry], band: float) -> list[int]:
    """Indices of ``geoms`` west→east, north→south: rows of height ``band`` metres from the north."""
    centroids = [g.centroid for g in geoms]
    top = max(g.bounds[3] for g in geoms)
    keys = [(math.floor((top - c.y) / band), c.x) for c in centroids]
    return sorted(range(len(geoms)), key=lambda i: keys[i])


def _rectangles(
    centres: npt.NDArray[np.float64],
    areas: npt.NDArray[np.float64],
    aspect: npt.NDArray[np.float64],
    angle_deg: npt.NDArray[np.float64],
) -> npt.NDArray[np.object_]:
    """Rotated rectangles of the given areas (m²) and length/width ratios around ``centres``."""
    width = np.sqrt(areas / aspect)
    length = width * aspect
    corners = np.array([[-0.5, -0.5], [0.5, -0.5], [0.5, 0.5], [-0.5, 0.5], [-0.5, -0.5]])
    local = corners[None, :, :] * np.stack([length, width], axis=-1)[:, None, :]
    a = np.radians(angle_deg)[:, None]
    x = local[..., 0] * np.cos(a) - local[..., 1] * np.sin(a)
    y = local[..., 0] * np.sin(a) + local[..., 1] * np.cos(a)
    coords = np.round(np.stack([x, y], axis=-1) + centres[:, None, :], 3)
    return np.asarray(shapely.polygons(coords), dtype=object)


# --------------------------------------------------------------------------- hierarchy


def build_hierarchy(rng: np.random.Generator) -> tuple[shapely.Polygon, gpd.GeoDataFrame, gpd.GeoDataFrame]:
    """District boundary, communities (with two fictional estates each) and coded unit grids (EPSG:4548)."""
    boundary = district_boundary(rng)
    street_cells = partition(rng, boundary, len(STREETS), lloyd=6)
    street_order = reading_order(street_cells, band=math.sqrt(boundary.area / len(STREETS)))

    communities: list[dict[str, object]] = []
    grids: list[dict[str, object]] = []
    for s_no, s_idx in enumerate(street_order, start=1):
        street_name, community_names = STREETS[s_no - 1]
        street_code = f"{DISTRICT_CODE}{s_no:03d}"
        street_geom = street_cells[s_idx]
        comm_cells = partition(rng, street_geom, len(community_names), lloyd=5)
        comm_order = reading_order(comm_cells, band=math.sqrt(street_geom.area / len(comm_cells)))
        for c_no, c_idx in enumerate(comm_order, start=1):
            comm_geom = comm_cells[c_idx]
            comm_code = f"{street_code}{c_no:03d}"
            comm_name = community_names[c_no - 1]
            communities.append(
                {
                    "code": comm_code,
                    "name": comm_name,
                    "street_cd": street_code,
                    "street": street_name,
                    "geometry": comm_geom,
                }
            )
            n = int(np.clip(round(comm_geom.area / GRID_CELL_M2), 10, 25))
            cells = partition(rng, comm_geom, n, lloyd=3)
            for g_no, g_idx in enumerate(reading_order(cells, band=math.sqrt(comm_geom.area / n)), start=1):
                grids.append(
                    {
                        "网格编码": f"{comm_code}{g_no:03d}",
                        "网格名称": f"{comm_name}第{g_no:03d}网格",
                        "社区编码": comm_code,
                        "所属社区": comm_name,
                        "街道编码": street_code,
                        "所属街道": street_name,
                        "区编码": DISTRICT_CODE,
                        "所属区": DISTRICT_NAME,
                        "geometry": cells[g_idx],
                    }
                )

    grid = gpd.GeoDataFrame(grids, geometry="geometry", crs=EPSG)
    grid["geometry"] = _noded(grid.geometry.to_numpy())
    grid.insert(8, "网格员", _worker_names(rng, len(grid)))
    grid.insert(9, "面积", np.round(grid.area.to_numpy(), 2))
    comm = gpd.GeoDataFrame(communities, geometry="geometry", crs=EPSG)
    comm["estates"] = _estates([str(n) for n in comm["name"]], rng)
    return boundary, comm, grid


def _noded(cells: npt.NDArray[np.object_]) -> npt.NDArray[np.object_]:
    """The same tiling with shared edges carrying the same vertices on both sides.

    Clipping cells to their community leaves a vertex on one side of a community border
    that the cell across has not.  Polygonising the noded union of all cell boundaries
    yields faces whose shared edges match vertex for vertex; each face goes back to the
    cell holding its interior point.
    """
    lines = shapely.union_all(shapely.boundary(cells))
    faces = shapely.get_parts(shapely.polygonize(shapely.get_parts(lines)))
    face_idx, cell_idx = shapely.STRtree(cells).query(shapely.point_on_surface(faces), predicate="within")
    out = np.empty(len(cells), dtype=object)
    for c in range(len(cells)):
        mine = faces[face_idx[cell_idx == c]]
        out[c] = mine[0] if len(mine) == 1 else _polygonal(shapely.coverage_union_all(mine))
    return out


def _worker_names(rng: np.random.Generator, n: int) -> list[str]:
    """``n`` distinct fictional personal names (sample data)."""
    names: list[str] = []
    while len(names) < n:
        name = SURNAMES[rng.integers(len(SURNAMES))] + GIVEN_NAMES[rng.integers(len(GIVEN_NAMES))]
        if name not in names:
            names.append(name)
    return names


def _estates(names: Sequence[str], rng: np.random.Generator) -> list[tuple[str, str]]:
    """Two fictional housing estates per community, named after it."""
    out = []
    for name in names:
        stem = name.removesuffix("社区")
        picks = rng.choice(len(ESTATE_SUFFIXES), size=2, replace=False)
        out.append((stem + ESTATE_SUFFIXES[int(picks[0])], stem + "东" + ESTATE_SUFFIXES[int(picks[1])]))
    return out


def _locate(points: npt.NDArray[np.object_], comm: gpd.GeoDataFrame) -> npt.NDArray[np.int64]:
    """Index of the community holding each point; the nearest one for points outside all."""
    tree = shapely.STRtree(comm.geometry.to_numpy())
    nearest = tree.query_nearest(points, all_matches=False)
    out = np.empty(len(points), dtype=np.int64)
    out[nearest[0]] = nearest[1]
    return out


# --------------------------------------------------------------------------- dates


def _day(offset: int) -> dt.date:
    return YEAR_START + dt.timedelta(days=int(offset))


def _format_date(day: dt.date, style: int) -> str:
    """A date written one of the ways registers write it."""
    if style == 0:
        return day.isoformat()
    if style == 1:
        return f"{day.year}/{day.month}/{day.day}"
    if style == 2:
        return f"{day.year}年{day.month}月{day.day}日"
    return day.strftime("%Y%m%d")


# --------------------------------------------------------------------------- survey layers


def build_sites(
    rng: np.random.Generator, boundary: shapely.Polygon, comm: gpd.GeoDataFrame, grid: gpd.GeoDataFrame
) -> gpd.GeoDataFrame:
    """About 2,000 illegal-construction sites (points and small polygons, EPSG:4548)."""
    n_regular = N_SITES - N_OUTSIDE - N_ON_VERTEX - N_ON_EDGE
    shapely.prepare(boundary)

    hotspots = _sample_seeds(rng, boundary, 70)
    weights = rng.lognormal(0.0, 0.8, size=len(hotspots))
    weights /= weights.sum()
    spread = rng.uniform(60.0, 220.0, size=len(hotspots))
    heading = rng.uniform(-45.0, 45.0, size=len(hotspots))
    xy = np.empty((n_regular, 2))
    site_heading = np.empty(n_regular)
    for i in range(n_regular):
        while True:
            h = rng.choice(len(hotspots), p=weights)
            x, y = hotspots[h] + rng.normal(0.0, spread[h], size=2)
            if shapely.contains_xy(boundary, x, y):
                break
        xy[i] = (x, y)
        site_heading[i] = heading[h] + rng.normal(0.0, 6.0)

    special = np.vstack([_outside_points(rng, boundary), *_on_shared_boundaries(rng, grid)])
    xy = np.vstack([xy, special])
    site_heading = np.concatenate([site_heading, rng.uniform(-45.0, 45.0, size=len(special))])
    n = len(xy)
    is_special = np.arange(n) >= n_regular
    points = np.asarray(shapely.points(xy), dtype=object)

    position = rng.choice(3, size=n, p=[0.5, 0.2, 0.3])
    struct_p = np.array([[0.45, 0.2, 0.3, 0.05], [0.2, 0.3, 0.45, 0.05], [0.1, 0.35, 0.5, 0.05]])
    structure = np.array([rng.choice(4, p=struct_p[p]) for p in position])
    floors = np.where(position == 2, 1, rng.choice([1, 2, 3], size=n, p=[0.78, 0.18, 0.04]))
    use_p = np.array(
        [
            [0.3, 0.25, 0.25, 0.08, 0.04, 0.08],
            [0.45, 0.3, 0.1, 0.03, 0.02, 0.1],
            [0.5, 0.3, 0.08, 0.02, 0.0, 0.1],
        ]
    )
    usage = np.array([rng.choice(6, p=use_p[p]) for p in position])
    new = rng.random(n) < 0.15
    area = np.clip(rng.lognormal(math.log(40.0), 0.75, size=n), 10.0, 300.0)
    polygon = (rng.random(n) < 0.3) & ~is_special

    geoms = points.copy()
    rects = _rectangles(
        xy[polygon], area[polygon], rng.uniform(1.0, 2.5, size=polygon.sum()), site_heading[polygon]
    )
    geoms[polygon] = rects
    area[polygon] = shapely.area(rects)
    recorded = np.round(area * rng.uniform(0.97, 1.03, size=n), 1)
    blank_area = np.zeros(n, dtype=bool)
    blank_area[rng.choice(np.flatnonzero(polygon), size=15, replace=False)] = True

    found_off = np.where(new, rng.integers(9, 358, size=n), rng.integers(3, 181, size=n))
    comm_idx = _locate(points, comm)
    order = np.argsort(rng.permutation(len(comm)))
    rate = np.array(COMMUNITY_RATES)[order][comm_idx]
    pending_weight = np.array([PENDING_WEIGHT[p] for p in POSITIONS])[position]
    p_done = np.where(new, 0.85, np.clip(1.0 - (1.0 - rate) * pending_weight, 0.0, 1.0))
    done = rng.random(n) < p_done
    end_off = (YEAR_END - YEAR_START).days
    phase = np.array([(PHASE_START[p] - YEAR_START).days for p in POSITIONS])[position]
    lo = np.where(new, found_off + 3, np.maximum(found_off + 7, phase))
    done &= lo < end_off
    span = np.maximum(end_off - lo, 0)
    done_off = np.where(
        new, found_off + rng.integers(3, 31, size=n), lo + np.floor(rng.beta(1.3, 1.6, size=n) * span)
    )
    done_off = np.minimum(done_off, end_off).astype(int)
    legalised = done & (rng.random(n) < 0.04)
    status = np.where(done, "已拆除", np.array(PENDING)[rng.choice(3, size=n, p=[0.3, 0.5, 0.2])])
    status[legalised] = "已补办手续"
    style = rng.choice(4, size=n, p=[0.4, 0.25, 0.2, 0.15])

    estates = comm["estates"].tolist()
    roads_by_comm = [ROADS[str(s)] for s in comm["street"]]
    address = []
    for i in range(n):
        c = int(comm_idx[i])
        street = str(comm["street"].iloc[c])
        roads = roads_by_comm[c]
        if position[i] == 0 or rng.random() < 0.3:
            address.append(f"{street}{roads[rng.integers(len(roads))]}{rng.integers(1, 300)}号")
        else:
            estate = estates[c][rng.integers(2)]
            address.append(f"{street}{estate}{rng.integers(1, 40)}栋{POSITIONS[position[i]]}")

    frame = pd.DataFrame(
        {
            "违建地址": address,
            "结构类型": np.array(STRUCTURES)[structure],
            "违建位置": np.array(POSITIONS)[position],
            "违建层数": floors.astype(np.int32),
            "违建用途": np.array(USES)[usage],
            "违建类型": np.where(new, "新增", "存量"),
            "违建面积": np.where(blank_area, np.nan, recorded),
            "当前状态": status,
            "发现时间": [_format_date(_day(f), s) for f, s in zip(found_off, style, strict=True)],
            "拆除时间": [
                _format_date(_day(d), s) if st == "已拆除" else None
                for d, s, st in zip(done_off, style, status, strict=True)
            ],
            "_found": found_off,
            "geometry": geoms,
        }
    )
    frame = frame.sort_values("_found", kind="stable").reset_index(drop=True)
    frame.insert(0, "案件编号", [f"WJ2022-{i:05d}" for i in range(1, len(frame) + 1)])
    return gpd.GeoDataFrame(frame.drop(columns="_found"), geometry="geometry", crs=EPSG)


def _outside_points(rng: np.random.Generator, boundary: shapely.Polygon) -> npt.NDArray[np.float64]:
    """Points 5–40 m outside the district, as sites drawn just past the border."""
    ring = boundary.exterior
    cx, cy = boundary.centroid.x, boundary.centroid.y
    out = []
    for f in rng.uniform(0.0, 1.0, size=N_OUTSIDE):
        p = ring.interpolate(f, normalized=True)
        dx, dy = p.x - cx, p.y - cy
        norm = math.hypot(dx, dy)
        step = rng.uniform(5.0, 40.0)
        while True:
            q = (p.x + dx / norm * step, p.y + dy / norm * step)
            if boundary.distance(shapely.Point(q)) >= 5.0:
                break
            step += 5.0
        out.append(q)
    return np.array(out)


def _on_shared_boundaries(
    rng: np.random.Generator, grid: gpd.GeoDataFrame
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Points lying exactly on vertices shared by three grids, and exactly on edges shared by two."""
    geoms = grid.geometry.to_numpy()
    seen: dict[tuple[float, float], set[int]] = {}
    for i, g in enumerate(geoms):
        for x, y in shapely.get_coordinates(g.exterior)[:-1]:
            seen.setdefault((float(x), float(y)), set()).add(i)
    tree = shapely.STRtree(geoms)

    def holders(x: float, y: float) -> int:
        pt = shapely.Point(x, y)
        hits = tree.query(pt, predicate="intersects")
        return len(hits)

    vertices = sorted(v for v, owners in seen.items() if len(owners) >= 3 and holders(*v) >= 3)
    picks = rng.choice(len(vertices), size=N_ON_VERTEX, replace=False)
    on_vertex = np.array([vertices[int(i)] for i in picks])

    edges: list[tuple[float, float]] = []
    for i in rng.permutation(len(geoms)):
        ring = shapely.get_coordinates(geoms[i].exterior)
        for a, b in itertools.pairwise(ring):
            if len(seen[(float(a[0]), float(a[1]))] & seen[(float(b[0]), float(b[1]))]) < 2:
                continue
            m = (float((a[0] + b[0]) / 2), float((a[1] + b[1]) / 2))
            if m not in seen and holders(*m) == 2:
                edges.append(m)
                break
        if len(edges) == N_ON_EDGE:
            break
    return on_vertex, np.array(edges)


def build_parking(
    rng: np.random.Generator, boundary: shapely.Polygon, comm: gpd.GeoDataFrame
) -> gpd.GeoDataFrame:
    """About 300 non-motor-vehicle parking points (EPSG:4548)."""
    xy = _sample_seeds(rng, boundary, N_PARKING)
    points = np.asarray(shapely.points(xy), dtype=object)
    comm_idx = _locate(points, comm)
    estates = comm["estates"].tolist()
    status = np.array(["规划", "已施划", "已建成"])[rng.choice(3, size=len(xy), p=[0.2, 0.45, 0.35])]
    found = rng.integers(10, 300, size=len(xy))
    done = found + rng.integers(10, 90, size=len(xy))
    status[done > (YEAR_END - YEAR_START).days] = "规划"
    names, addresses = [], []
    for i in range(len(xy)):
        c = int(comm_idx[i])
        street = str(comm["street"].iloc[c])
        road = ROADS[street][rng.integers(len(ROADS[street]))]
        number = rng.integers(1, 300)
        addresses.append(f"{street}{road}{number}号")
        if rng.random() < 0.5:
            names.append(f"{road}{number}号非机动车停放点")
        else:
            estate = estates[c][rng.integers(2)]
            names.append(f"{estate}{'东南西北'[rng.integers(4)]}门停放点")
    style = rng.choice(2, size=len(xy), p=[0.8, 0.2])
    frame = pd.DataFrame(
        {
            "编号": [f"TC2022-{i:04d}" for i in range(1, len(xy) + 1)],
            "名称": names,
            "地址": addresses,
            "泊位数": (rng.integers(2, 13, size=len(xy)) * 5).astype(np.int32),
            "状态": status,
            "登记日期": [_format_date(_day(f), s) for f, s in zip(found, style, strict=True)],
            "完成日期": [
                _format_date(_day(d), s) if st != "规划" else None
                for d, s, st in zip(done, style, status, strict=True)
            ],
            "geometry": points,
        }
    )
    return gpd.GeoDataFrame(frame, geometry="geometry", crs=EPSG)


def build_charging(
    rng: np.random.Generator, boundary: shapely.Polygon, comm: gpd.GeoDataFrame
) -> gpd.GeoDataFrame:
    """About 40 e-bike charging sheds as small rectangles (EPSG:4548); dates as DBF date fields."""
    xy = _sample_seeds(rng, boundary.buffer(-30.0), N_CHARGING)
    n = len(xy)
    length = rng.uniform(10.0, 30.0, size=n)
    width = rng.uniform(3.0, 5.0, size=n)
    rects = _rectangles(xy, length * width, length / width, rng.uniform(-30.0, 30.0, size=n))
    comm_idx = _locate(np.asarray(shapely.points(xy), dtype=object), comm)
    estates = comm["estates"].tolist()
    status = np.array(["规划", "在建", "已建成"])[rng.choice(3, size=n, p=[0.2, 0.2, 0.6])]
    found = rng.integers(10, 250, size=n)
    built = found + rng.integers(20, 110, size=n)
    status[(status == "已建成") & (built > (YEAR_END - YEAR_START).days)] = "在建"
    names, addresses = [], []
    for i in range(n):
        c = int(comm_idx[i])
        street = str(comm["street"].iloc[c])
        estate = estates[c][rng.integers(2)]
        names.append(f"{estate}充电棚")
        addresses.append(f"{street}{estate}{rng.integers(1, 40)}栋旁")
    date32 = pd.ArrowDtype(pa.date32())
    frame = pd.DataFrame(
        {
            "编号": [f"CD2022-{i:03d}" for i in range(1, n + 1)],
            "名称": names,
            "地址": addresses,
            "端口数": np.round(length * 1.2).astype(np.int32),
            "棚面积": np.round(shapely.area(rects), 1),
            "状态": status,
            "登记日期": pd.Series([_day(f) for f in found], dtype=date32),
            "建成日期": pd.Series(
                [_day(b) if st == "已建成" else None for b, st in zip(built, status, strict=True)],
                dtype=date32,
            ),
            "geometry": rects,
        }
    )
    return gpd.GeoDataFrame(frame, geometry="geometry", crs=EPSG)


# --------------------------------------------------------------------------- targets


def build_targets(
    comm: gpd.GeoDataFrame, sites: gpd.GeoDataFrame, parking: gpd.GeoDataFrame, charging: gpd.GeoDataFrame
) -> pd.DataFrame:
    """Yearly targets: demolition per community, parking and charging per street, district totals."""
    codes = comm["code"].to_numpy()
    site_comm = codes[_locate(shapely.point_on_surface(sites.geometry.to_numpy()), comm)]
    site_area = sites["违建面积"].fillna(pd.Series(sites.area, index=sites.index))
    rows: list[tuple[str, str, str, int]] = []
    for code in codes:
        here = site_comm == code
        rows.append((code, "demolition", "completed", math.ceil(here.sum() * 0.9)))
        rows.append((code, "demolition", "area_completed_m2", int(round(site_area[here].sum() * 0.9, -1))))
    park_street = np.array([c[:9] for c in codes[_locate(parking.geometry.to_numpy(), comm)]])
    shed_street = np.array([c[:9] for c in codes[_locate(charging.geometry.centroid.to_numpy(), comm)]])
    for street in sorted({c[:9] for c in codes}):
        rows.append((street, "parking", "completed", math.ceil((park_street == street).sum() * 0.85)))
        ports = charging["端口数"].to_numpy()[shed_street == street].sum()
        rows.append((street, "charging", "ports_completed", round(ports * 0.8)))
    rows += [
        (DISTRICT_CODE, "demolition", "completed", int(round(len(sites) * 0.85, -1))),
        (DISTRICT_CODE, "demolition", "area_completed_m2", int(round(site_area.sum() * 0.85, -2))),
        (DISTRICT_CODE, "parking", "completed", int(round(len(parking) * 0.85, -1))),
        (DISTRICT_CODE, "parking", "capacity_completed", int(round(parking["泊位数"].sum() * 0.8, -1))),
        (DISTRICT_CODE, "charging", "ports_completed", int(round(charging["端口数"].sum() * 0.8, -1))),
    ]
    return pd.DataFrame(rows, columns=["编码", "图层", "指标", "目标"])


# --------------------------------------------------------------------------- writers


def write_shapefile(frame: gpd.GeoDataFrame, path: Path) -> list[Path]:
    """Write ``frame`` as a surveyor-style shapefile: GBK text, no .cpg, LDID 0, ESRI .prj.

    Returns the paths of the written component files.
    """
    pyogrio.write_dataframe(frame, path, encoding="GBK", use_arrow=True, layer_options={"RESIZE": "YES"})
    path.with_suffix(".cpg").unlink(missing_ok=True)
    path.with_suffix(".prj").write_text(CRS.from_epsg(EPSG).to_wkt("WKT1_ESRI"), encoding="ascii")
    dbf = path.with_suffix(".dbf")
    with dbf.open("r+b") as f:
        f.seek(1)
        f.write(bytes([DBF_DATE.year - 1900, DBF_DATE.month, DBF_DATE.day]))
        f.seek(29)
        f.write(b"\x00")
    return [path.with_suffix(s) for s in (".shp", ".shx", ".dbf", ".prj")]


class _GBKZipInfo(zipfile.ZipInfo):
    """A zip entry whose name is stored in GBK without the UTF-8 flag, as Windows writes it."""

    def _encodeFilenameFlags(self) -> tuple[bytes, int]:
        return self.filename.encode("gbk"), self.flag_bits & ~0x800


def write_zip(path: Path, members: Sequence[Path], folder: str) -> None:
    """Zip ``members`` into ``folder/`` with GBK entry names and fixed timestamps."""
    with zipfile.ZipFile(path, "w") as zf:
        info = _GBKZipInfo(folder + "/", date_time=ZIP_DATE)
        info.create_system = 0
        info.external_attr = 0x10
        zf.writestr(info, b"")
        for member in members:
            info = _GBKZipInfo(f"{folder}/{member.name}", date_time=ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 0
            info.external_attr = 0x20
            zf.writestr(info, member.read_bytes())


def write_targets(targets: pd.DataFrame, out: Path) -> None:
    """targets.csv (UTF-8 with BOM) and targets.xlsx with codes kept as text."""
    targets.to_csv(out / "targets.csv", index=False, encoding="utf-8-sig", lineterminator="\r\n")
    wb = openpyxl.Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "年度目标"
    ws.append(list(targets.columns))
    for row in targets.itertuples(index=False):
        ws.append([str(row[0]), str(row[1]), str(row[2]), int(row[3])])
        ws.cell(ws.max_row, 1).number_format = "@"
    ws.column_dimensions["A"].width = 16
    ws.column_dimensions["C"].width = 20
    buffer = io.BytesIO()
    wb.save(buffer)
    stamp = dt.datetime(*ZIP_DATE).strftime("%Y-%m-%dT%H:%M:%SZ")
    with (
        zipfile.ZipFile(buffer) as src,
        zipfile.ZipFile(out / "targets.xlsx", "w", zipfile.ZIP_DEFLATED) as dst,
    ):
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename == "docProps/core.xml":
                text = data.decode("utf-8")
                text = re.sub(
                    r"(<dcterms:(created|modified)[^>]*>)[^<]*(</dcterms)", rf"\g<1>{stamp}\g<3>", text
                )
                data = text.encode("utf-8")
            info = zipfile.ZipInfo(item.filename, date_time=ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            dst.writestr(info, data)


README = """\
# 演示数据：青弋区（虚构）

本目录由 `data/make_demo.py` 生成（`python data/make_demo.py [--out DIR] [--seed N]`），同一随机种子两次运行得到
逐字节相同的文件。区名、街道、社区、道路、小区和人名均为虚构的示例数据。

- 行政区：青弋区，区划代码 340291（虚构），位于约东经 118.4°、北纬 31.3°（安徽芜湖一带），面积 12 km²。
- 层级：4 个街道（340291001 弋江街道、002 赭麓街道、003 湖滨街道、004 新芜街道）→ 20 个社区（街道编码 + 001…）
  → {n_grid} 个单元网格（15 位编码 = 6 位区划 + 3 位街道 + 3 位社区 + 3 位顺序码；顺序码在社区内自西向东、自北向南编排）。
  网格无缝隙、无重叠地覆盖全区。
- 坐标系：CGCS2000 3 度带高斯-克吕格投影，中央经线 117°E（EPSG:4548，`.prj` 为 ESRI 格式
  `CGCS2000_3_Degree_GK_CM_117E`），单位米。
- 编码：DBF 属性为 GBK 编码，**没有 .cpg 文件**，DBF 语言驱动字节（偏移 29）为 0 —— 与测绘单位交付的文件一样，
  直接用 GDAL 读取会乱码，需指定 `encoding="GBK"`。字段名为中文（GBK 下不超过 10 字节）。

| 文件 | 内容 | 几何 | 字段 |
|---|---|---|---|
| 单元网格.shp | 单元网格 {n_grid} 个 | 面 | 网格编码、网格名称、社区编码、所属社区、街道编码、所属街道、区编码、所属区、网格员、面积（m²） |
| 违法建设.shp | 违法建设点位 {n_site_points} 处 | 点 | 案件编号、违建地址、结构类型、违建位置、违建层数、违建用途、违建类型、违建面积（m²）、当前状态、发现时间、拆除时间 |
| 违法建设_面.shp | 违法建设图斑 {n_site_polygons} 处 | 面 | 同上 |
| 违法建设_2022.zip | 上述两个违建图层，位于子文件夹 `2022年违建台账/`，压缩包内文件名为 GBK 编码 | | |
| 停放点.shp | 非机动车停放点 {n_parking} 处 | 点 | 编号、名称、地址、泊位数、状态（规划/已施划/已建成）、登记日期、完成日期 |
| 充电棚.shp | 电动自行车充电棚 {n_charging} 处 | 面 | 编号、名称、地址、端口数、棚面积（m²）、状态（规划/在建/已建成）、登记日期、建成日期（DBF 日期型） |
| targets.csv / targets.xlsx | 年度目标 {n_targets} 条（CSV 为带 BOM 的 UTF-8） | | 编码（社区 12 位 / 街道 9 位 / 区 6 位）、图层、指标、目标 |

违法建设共 {n_sites} 处（案件编号 WJ2022-00001 起，按发现时间排序）：当前状态为 已登记/已下发通知/拆除中/已拆除/已补办手续，
截至 2022 年底约 {pct_demolished}% 已拆除，各社区完成率不同；按"先地面、再平台、后楼顶"的顺序推进，楼顶违建待处置的较多。
发现时间、拆除时间为文本，写法混杂（2022-05-25、2022/5/25、2022年5月25日、20220525）。少数违建面积为空（应按图斑面积计算），
{n_outside} 处位于区界之外，另有若干点恰好落在网格公共边或公共顶点上。
和真实台账一样，少数状态不在词表中：暂缓拆除、待拆除、拆除未完成，以及笔误“己拆除”；有一处点位的 X、Y 坐标填反了。
`值对应.csv`（字段,原值,映射为）说明这些状态应如何对应，示例区载入时按它导入。
`载入顺序.csv`（图层,文件）列出 `gridwatch demo` 把各文件载入哪个图层及先后（网格在先）。
指标：completed（完成个数）、area_completed_m2（完成面积，m²）、capacity_completed（完成泊位数）、
ports_completed（建成端口数）。

# Demo data: Qingyi District (fictional)

Generated by `data/make_demo.py` (`python data/make_demo.py [--out DIR] [--seed N]`); the same seed gives
byte-identical files. District, street, community, road and estate names and people's names are fictional sample data.

- District: 青弋区 (Qingyi), division code 340291 (fictional), around 118.4°E 31.3°N (Wuhu, Anhui), 12 km².
- Hierarchy: 4 streets (340291001…004) → 20 communities (street code + 001…) → {n_grid} unit grids with 15-digit codes
  (6 division + 3 street + 3 community + 3 sequence, the sequence running west→east, north→south in each community).
  The grids tile the district without gaps or overlaps.
- CRS: CGCS2000 3-degree Gauss-Krüger, central meridian 117°E (EPSG:4548; ESRI-style `.prj`
  `CGCS2000_3_Degree_GK_CM_117E`), metres.
- Encoding: DBF text in GBK, **no .cpg file**, DBF language-driver byte (offset 29) 0 — as surveyors deliver them;
  GDAL alone reads mojibake, `encoding="GBK"` reads them right. Field names are Chinese, at most 10 bytes in GBK.
- Files: 单元网格.shp (grid polygons), 违法建设.shp (illegal-construction points) and 违法建设_面.shp (polygons; a
  shapefile holds one geometry type, so the register is split in two), 违法建设_2022.zip (both, in the sub-folder
  `2022年违建台账/`, entry names in GBK without the UTF-8 flag), 停放点.shp (parking points), 充电棚.shp (charging-shed
  polygons; dates are DBF date fields), targets.csv (UTF-8 with BOM) and targets.xlsx (columns 编码 code, 图层 layer,
  指标 metric, 目标 target).
- Illegal construction: {n_sites} sites; about {pct_demolished}% demolished by the end of 2022, completion differing by
  community and by position (ground first, then platforms, then rooftops). Found/demolished dates are text in mixed
  forms. A few recorded areas are blank (use the polygon's area), {n_outside} sites lie outside the district and
  a few points lie exactly on shared grid edges or vertices.
- As in real registers, a few statuses are outside the vocabulary (暂缓拆除 deferred, 待拆除 awaiting demolition,
  拆除未完成 demolition unfinished, and the typo 己拆除) and one point has its X and Y the wrong way round.
  `值对应.csv` (columns 字段 field, 原值 raw, 映射为 maps to) says how those statuses are read; the demo loads with it.
- `载入顺序.csv` (columns 图层 layer, 文件 file) lists which layer `gridwatch demo` loads each file into, in order
  (the grid first).
"""


#: Statuses as field teams write them besides the vocabulary, and what the demo's value map
#: (值对应.csv) says they are: (written, maps to, how many, among pending or done sites).
MESSY_STATUSES = (
    ("暂缓拆除", "已下发通知", 4, "pending"),
    ("待拆除", "已下发通知", 4, "pending"),
    ("拆除未完成", "拆除中", 3, "pending"),
    ("己拆除", "已拆除", 3, "done"),  # a typo: 己 for 已
)
VALUE_MAP_FILE = "值对应.csv"


def add_survey_mess(sites: gpd.GeoDataFrame, rng: np.random.Generator) -> gpd.GeoDataFrame:
    """A few statuses written the way field teams write them (:data:`MESSY_STATUSES`) and one
    point site whose X and Y were typed the wrong way round, as real registers have them."""
    sites = sites.copy()
    status = sites["当前状态"].to_numpy(dtype=object).copy()
    pending = np.flatnonzero(~np.isin(status, ["已拆除", "已补办手续"]))
    done = np.flatnonzero(status == "已拆除")
    taken: set[int] = set()
    for written, _code, count, among in MESSY_STATUSES:
        pool = np.setdiff1d(pending if among == "pending" else done, np.fromiter(taken, dtype=np.int64))
        for i in rng.choice(pool, size=count, replace=False):
            status[i] = written
            taken.add(int(i))
    sites["当前状态"] = status
    points = np.flatnonzero((sites.geom_type == "Point").to_numpy())
    swapped = int(rng.choice(np.setdiff1d(points, np.fromiter(taken, dtype=np.int64))))
    p = sites.geometry.iloc[swapped]
    sites.loc[sites.index[swapped], "geometry"] = shapely.Point(p.y, p.x)
    return sites


def write_value_map(out: Path) -> None:
    """The demo's value map: how its messy statuses are to be read (UTF-8 with BOM, for Excel)."""
    lines = ["字段,原值,映射为", *(f"当前状态,{w},{c}" for w, c, _, _ in MESSY_STATUSES)]
    (out / VALUE_MAP_FILE).write_text("\r\n".join(lines) + "\r\n", encoding="utf-8-sig", newline="")


#: The layer each file is loaded into by ``gridwatch demo``, in load order (the grid first).
LOAD_ORDER_FILE = "载入顺序.csv"
LOAD_ORDER = (
    ("grid", FILES["grid"]),
    ("demolition", FILES["sites"]),
    ("demolition", FILES["sites_polygons"]),
    ("parking", FILES["parking"]),
    ("charging", FILES["charging"]),
)


def write_load_order(out: Path) -> None:
    """Which layer each shapefile is loaded into, in load order (UTF-8 with BOM, for Excel)."""
    lines = ["图层,文件", *(f"{layer},{name}.shp" for layer, name in LOAD_ORDER)]
    (out / LOAD_ORDER_FILE).write_text("\r\n".join(lines) + "\r\n", encoding="utf-8-sig", newline="")


def make_demo(out: Path, seed: int = DEFAULT_SEED) -> dict[str, int]:
    """Write the demo district's files into ``out`` and return the feature counts.

    Parameters
    ----------
    out : Path
        Output directory, created if missing; files of the same names are replaced.
    seed : int
        Seed of the numpy random generator.

    Returns
    -------
    dict
        Counts per layer: ``grid``, ``sites``, ``site_points``, ``site_polygons``, ``parking``,
        ``charging``, ``targets``.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    boundary, comm, grid = build_hierarchy(rng)
    sites = build_sites(rng, boundary, comm, grid)
    parking = build_parking(rng, boundary, comm)
    charging = build_charging(rng, boundary, comm)
    targets = build_targets(comm, sites, parking, charging)
    # after everything else is drawn, from its own generator: the rest of the district stays as it was
    sites = add_survey_mess(sites, np.random.default_rng([seed, 1]))

    is_point = (sites.geom_type == "Point").to_numpy()
    write_shapefile(grid[[*GRID_FIELDS, "geometry"]], out / f"{FILES['grid']}.shp")
    site_columns = [*SITE_FIELDS, "geometry"]
    point_files = write_shapefile(sites.loc[is_point, site_columns], out / f"{FILES['sites']}.shp")
    polygon_files = write_shapefile(
        sites.loc[~is_point, site_columns], out / f"{FILES['sites_polygons']}.shp"
    )
    write_shapefile(parking[[*PARKING_FIELDS, "geometry"]], out / f"{FILES['parking']}.shp")
    write_shapefile(charging[[*CHARGING_FIELDS, "geometry"]], out / f"{FILES['charging']}.shp")
    write_zip(out / "违法建设_2022.zip", point_files + polygon_files, ZIP_FOLDER)
    write_targets(targets, out)
    write_value_map(out)
    write_load_order(out)

    counts = {
        "grid": len(grid),
        "sites": len(sites),
        "site_points": int(is_point.sum()),
        "site_polygons": int((~is_point).sum()),
        "parking": len(parking),
        "charging": len(charging),
        "targets": len(targets),
    }
    # the swapped point lies far outside too; the README tells of it apart
    outside = int((~shapely.intersects(sites.geometry.to_numpy(), boundary)).sum()) - 1
    demolished = round(100 * float((sites["当前状态"] == "已拆除").mean()))
    (out / "README.md").write_text(
        README.format(
            n_grid=counts["grid"],
            n_sites=counts["sites"],
            n_site_points=counts["site_points"],
            n_site_polygons=counts["site_polygons"],
            n_parking=counts["parking"],
            n_charging=counts["charging"],
            n_targets=counts["targets"],
            pct_demolished=demolished,
            n_outside=outside,
        ),
        encoding="utf-8",
    )
    return counts


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write the demo district 青弋区 as GBK shapefiles.")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(__file__).resolve().parent / "shapefiles",
        help="output directory (default: data/shapefiles next to this script)",
    )
    parser.add_argument(
        "--seed", type=int, default=DEFAULT_SEED, help=f"random seed (default {DEFAULT_SEED})"
    )
    args = parser.parse_args(argv)
    counts = make_demo(args.out, args.seed)
    print(", ".join(f"{k}={v}" for k, v in counts.items()), "->", args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
