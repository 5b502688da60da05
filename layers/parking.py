"""非机动车停放点 — parking points or painted parking areas for bicycles and e-bikes."""

from layers.base import Field, LayerSpec, Measure, ReportWords, Status

LAYER = LayerSpec(
    name="parking",
    label_zh="非机动车停放点",
    label_en="Non-motor-vehicle parking",
    geometry_types=frozenset({"Point", "Polygon"}),
    id_field="pid",
    fields=(
        Field("pid", "str", "编号", "Id", ("编号", "点位编号", "停放点编号", "BH", "DWBH", "ID", "PID")),
        Field("name", "str", "名称", "Name", ("名称", "点位名称", "停放点名称", "MC", "NAME")),
        Field("address", "str", "地址", "Address", ("地址", "位置", "DZ", "ADDRESS", "ADDR")),
        Field(
            "capacity",
            "int",
            "泊位数",
            "Capacity",
            ("泊位数", "泊位", "车位数", "停放数", "BWS", "CWS", "CAPACITY", "SPACES"),
        ),
        Field("status", "str", "状态", "Status", ("状态", "建设状态", "ZT", "STATUS")),
        Field(
            "found_on",
            "date",
            "登记日期",
            "Recorded on",
            ("登记日期", "登记时间", "规划日期", "DJRQ", "DJSJ", "FOUND_ON", "RECORDED"),
        ),
        Field(
            "done_on",
            "date",
            "完成日期",
            "Completed on",
            ("完成日期", "完成时间", "建成日期", "施划日期", "WCRQ", "WCSJ", "DONE_ON", "COMPLETED"),
        ),
    ),
    status_field="status",
    statuses=(
        Status("规划", "规划", "Planned", ("计划", "待施划", "未施划", "planned"), color="#9467bd"),
        Status(
            "已施划", "已施划", "Marked out", ("施划", "已划线", "marked"), completed=True, color="#1f77b4"
        ),
        Status(
            "已建成",
            "已建成",
            "Built",
            ("建成", "已完成", "完成", "built", "done"),
            completed=True,
            color="#2ca02c",
        ),
    ),
    default_status="规划",
    found_field="found_on",
    completed_field="done_on",
    measures=(Measure("capacity", "capacity", "泊位数", "Spaces", unit_zh="个", unit_en="spaces"),),
    search_fields=("pid", "name", "address"),
    required_any=("pid", "name", "address"),
    style={"color": "#1f77b4", "radius": 4},
    report=ReportWords(
        "非机动车停放点",
        "bicycle parking points",
        "个",
        "points",
        "规划",
        "planned",
        "建成",
        "built",
        task_zh="非机动车停放点建设",
    ),
)
