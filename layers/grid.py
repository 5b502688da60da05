"""单元网格 — unit grid cells, the units every other layer is counted in."""

from layers.base import Field, LayerSpec, Level

LAYER = LayerSpec(
    name="grid",
    label_zh="单元网格",
    label_en="Unit grid",
    geometry_types=frozenset({"Polygon"}),
    is_grid=True,
    id_field="code",
    fields=(
        Field(
            "code",
            "str",
            "网格编码",
            "Grid code",
            (
                "网格编码",
                "网格编号",
                "网格代码",
                "单元网格编码",
                "WGBM",
                "WGBH",
                "WGDM",
                "GRIDCODE",
                "GRID_CODE",
                "CODE",
                "BM",
                "编码",
            ),
        ),
        Field("name", "str", "网格名称", "Grid name", ("网格名称", "网格名", "WGMC", "NAME", "MC", "名称")),
        Field(
            "comm_code",
            "str",
            "社区编码",
            "Community code",
            ("社区编码", "社区代码", "SQBM", "SQDM", "COMM_CODE"),
        ),
        Field(
            "community",
            "str",
            "社区名称",
            "Community",
            ("社区名称", "所属社区", "社区", "村社区", "SQMC", "SSSQ", "COMMUNITY"),
        ),
        Field(
            "street_cd",
            "str",
            "街道编码",
            "Street code",
            ("街道编码", "街道代码", "JDBM", "JDDM", "STREET_CODE", "STREET_CD"),
        ),
        Field(
            "street",
            "str",
            "街道名称",
            "Street",
            ("街道名称", "所属街道", "街道", "乡镇街道", "JDMC", "SSJD", "STREET"),
        ),
        Field(
            "dist_code",
            "str",
            "区编码",
            "District code",
            ("区编码", "行政区划代码", "行政区代码", "XZQHDM", "XZQDM", "DIST_CODE"),
        ),
        Field(
            "district",
            "str",
            "区名称",
            "District",
            ("区名称", "所属区", "行政区", "区县", "XZQMC", "QMC", "DISTRICT"),
        ),
        Field(
            "worker", "str", "网格员", "Grid worker", ("网格员", "责任人", "巡查员", "WGY", "ZRR", "WORKER")
        ),
        Field(
            "area_m2",
            "float",
            "面积(m²)",
            "Area (m²)",
            ("面积", "网格面积", "MJ", "AREA", "SHAPE_AREA"),
            "m2",
        ),
    ),
    # the unit grid first, then upward; codes nest: 15 digits = 6 district + 3 street + 3 community + 3
    levels=(
        Level("grid", "单元网格", "Unit grid", "code", "name", 15),
        Level("community", "社区", "Community", "comm_code", "community", 12),
        Level("street", "街道", "Street", "street_cd", "street", 9),
        Level("district", "区", "District", "dist_code", "district", 6),
    ),
    style={"color": "#3366cc", "weight": 1, "fillOpacity": 0.5},
)
