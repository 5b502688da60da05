"""违法建设 — illegal-construction sites, counted per site and by area until demolished."""

from layers.base import Category, Field, LayerSpec, Measure, ReportWords, Status

LAYER = LayerSpec(
    name="demolition",
    label_zh="违法建设",
    label_en="Illegal construction",
    geometry_types=frozenset({"Point", "Polygon"}),
    id_field="case_id",
    fields=(
        Field(
            "case_id",
            "str",
            "案件编号",
            "Case id",
            ("案件编号", "违建编号", "编号", "序号编号", "BH", "AJBH", "WJBH", "CASE_ID", "ID", "CASEID"),
        ),
        Field(
            "address",
            "str",
            "违建地址",
            "Address",
            ("违建地址", "地址", "位置描述", "详细地址", "DZ", "WJDZ", "ADDRESS", "ADDR"),
        ),
        Field("structure", "str", "结构类型", "Structure", ("结构类型", "结构", "JGLX", "JG", "STRUCTURE")),
        Field(
            "position",
            "str",
            "违建位置",
            "Position",
            ("违建位置", "所在位置", "部位", "位置", "WZ", "WJWZ", "POSITION"),
        ),
        Field("floors", "int", "违建层数", "Floors", ("违建层数", "层数", "CS", "WJCS", "FLOORS")),
        Field("usage", "str", "违建用途", "Use", ("违建用途", "用途", "YT", "WJYT", "USAGE", "USE")),
        Field("kind", "str", "违建类型", "Stock or new", ("违建类型", "类型", "LX", "WJLX", "KIND", "TYPE")),
        Field(
            "area_m2",
            "float",
            "违建面积(m²)",
            "Area (m²)",
            ("违建面积", "面积", "占地面积", "建筑面积", "WJMJ", "MJ", "AREA", "AREA_M2"),
            "m2",
        ),
        Field(
            "status",
            "str",
            "当前状态",
            "Status",
            ("当前状态", "状态", "处置状态", "办理状态", "ZT", "DQZT", "STATUS"),
        ),
        Field(
            "found_on",
            "date",
            "发现时间",
            "Found on",
            ("发现时间", "发现日期", "登记时间", "登记日期", "FXSJ", "FXRQ", "DJSJ", "FOUND_ON", "FOUND"),
        ),
        Field(
            "done_on",
            "date",
            "拆除时间",
            "Demolished on",
            ("拆除时间", "拆除日期", "完成时间", "CCSJ", "CCRQ", "WCSJ", "DONE_ON", "DEMOLISHED"),
        ),
    ),
    status_field="status",
    statuses=(
        Status(
            "已登记",
            "已登记",
            "Registered",
            ("登记", "待处置", "未拆除", "未处置", "registered", "new"),
            color="#d62728",
        ),
        Status(
            "已下发通知",
            "已下发通知",
            "Notice served",
            ("已下发", "下发通知", "已通知", "已告知", "责令改正", "notified", "notice"),
            color="#ff7f0e",
        ),
        Status(
            "拆除中",
            "拆除中",
            "Being demolished",
            ("正在拆除", "整改中", "处置中", "in progress"),
            color="#e6b800",
        ),
        Status(
            "已拆除",
            "已拆除",
            "Demolished",
            ("拆除", "已完成", "完成", "已整改", "demolished", "done"),
            completed=True,
            color="#2ca02c",
        ),
        Status(
            "已补办手续",
            "已补办手续",
            "Legalised",
            ("补办手续", "已补办", "完善手续", "legalised", "legalized"),
            completed=True,
            color="#17becf",
        ),
    ),
    default_status="已登记",
    found_field="found_on",
    completed_field="done_on",
    measures=(Measure("area", "area_m2", "面积", "Area", "m2", from_geometry=True),),
    categories=(
        Category(
            "position",
            (
                Status("地面", "地面", "Ground", ("地上", "ground"), shape="circle"),
                Status("平台", "平台", "Platform", ("露台", "platform"), shape="square"),
                Status(
                    "楼顶", "楼顶", "Rooftop", ("屋顶", "楼面", "顶层", "rooftop", "roof"), shape="triangle"
                ),
            ),
        ),
        Category(
            "kind",
            (
                Status("存量", "存量", "Existing stock", ("存量违建", "stock")),
                Status("新增", "新增", "New", ("新增违建", "new")),
            ),
        ),
    ),
    shape_field="position",
    search_fields=("case_id", "address"),
    style={"color": "#d62728", "radius": 5},
    report=ReportWords(
        "违法建设",
        "illegal structures",
        "处",
        "sites",
        "排查",
        "found",
        "拆除",
        "demolished",
        task_zh="违法建设治理",
    ),
)
