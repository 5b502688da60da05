"""充电棚 — e-bike charging sheds: ports counted, sheds measured by area."""

from layers.base import Field, LayerSpec, Measure, ReportWords, Status

LAYER = LayerSpec(
    name="charging",
    label_zh="充电棚",
    label_en="E-bike charging shed",
    geometry_types=frozenset({"Point", "Polygon"}),
    id_field="sid",
    fields=(
        Field("sid", "str", "编号", "Id", ("编号", "充电棚编号", "BH", "ID", "SID")),
        Field("name", "str", "名称", "Name", ("名称", "充电棚名称", "MC", "NAME")),
        Field("address", "str", "地址", "Address", ("地址", "位置", "DZ", "ADDRESS")),
        Field(
            "ports",
            "int",
            "端口数",
            "Ports",
            ("端口数", "充电口数", "充电端口", "端口", "DKS", "CDKS", "PORTS"),
        ),
        Field(
            "area_m2",
            "float",
            "棚面积(m²)",
            "Shed area (m²)",
            ("棚面积", "充电棚面积", "面积", "PMJ", "MJ", "AREA", "AREA_M2"),
            "m2",
        ),
        Field("status", "str", "状态", "Status", ("状态", "建设状态", "ZT", "STATUS")),
        Field("found_on", "date", "登记日期", "Recorded on", ("登记日期", "登记时间", "DJRQ", "FOUND_ON")),
        Field(
            "done_on",
            "date",
            "建成日期",
            "Completed on",
            ("建成日期", "完成日期", "完成时间", "JCRQ", "WCRQ", "DONE_ON", "COMPLETED"),
        ),
    ),
    status_field="status",
    statuses=(
        Status("规划", "规划", "Planned", ("计划", "待建", "planned"), color="#9467bd"),
        Status("在建", "在建", "Under construction", ("建设中", "施工中", "building"), color="#ff7f0e"),
        Status(
            "已建成",
            "已建成",
            "Built",
            ("建成", "已完成", "完成", "已投用", "投用", "built", "done"),
            completed=True,
            color="#2ca02c",
        ),
    ),
    default_status="规划",
    found_field="found_on",
    completed_field="done_on",
    measures=(
        Measure("ports", "ports", "端口数", "Ports", unit_zh="个", unit_en="ports"),
        Measure("area", "area_m2", "棚面积", "Shed area", "m2", from_geometry=True),
    ),
    search_fields=("sid", "name", "address"),
    required_any=("sid", "name", "address"),
    style={"color": "#ff7f0e", "radius": 6},
    report=ReportWords(
        "充电棚", "charging sheds", "个", "sheds", "规划", "planned", "建成", "built", task_zh="充电棚建设"
    ),
)
