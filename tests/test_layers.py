"""The declarations in layers/: the grid states its levels, and nothing outside layers/ names a
layer, a level or a grid field."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import layers
from geo.figures.report import BASE_LABELS
from geo.registry import grid_spec
from layers.base import Field, LayerSpec, Level

ROOT = Path(__file__).resolve().parent.parent

# --- the grid's levels ---------------------------------------------------------------------------


def test_the_grid_declares_its_levels_unit_grid_first():
    levels = grid_spec().levels
    assert [lv.name for lv in levels] == ["grid", "community", "street", "district"]
    assert [lv.code_digits for lv in levels] == [15, 12, 9, 6]
    assert [(lv.code_field, lv.name_field) for lv in levels] == [
        ("code", "name"),
        ("comm_code", "community"),
        ("street_cd", "street"),
        ("dist_code", "district"),
    ]
    assert [(lv.label_zh, lv.label_en) for lv in levels] == [
        ("单元网格", "Unit grid"),
        ("社区", "Community"),
        ("街道", "Street"),
        ("区", "District"),
    ]
    # the unit grid's code is the grid's survey id, every level's fields are grid fields
    assert levels[0].code_field == grid_spec().id_field
    fields = set(grid_spec().field_names)
    assert all({lv.code_field, lv.name_field} <= fields for lv in levels)


def test_survey_layers_declare_no_levels():
    assert all(s.levels == () for s in layers.survey_layers())


def _grid(*levels: Level) -> LayerSpec:
    return LayerSpec(
        "cells",
        "格",
        "Cells",
        frozenset({"Polygon"}),
        (
            Field("id", "str", "编码", "Code"),
            Field("nm", "str", "名称", "Name"),
            Field("up", "str", "上级", "Up"),
        ),
        id_field="id",
        is_grid=True,
        levels=levels,
    )


@pytest.mark.parametrize(
    ("levels", "message"),
    [
        ((Level("a", "甲", "A", "id", "nm", 4), Level("a", "乙", "B", "up", "nm", 2)), "repeat"),
        ((Level("a", "甲", "A", "id", "missing", 4),), "not one of its fields"),
        ((Level("a", "甲", "A", "id", "nm", 4), Level("b", "乙", "B", "up", "nm", 4)), "shorter upward"),
        ((Level("a", "甲", "A", "id", "nm", 0),), "shorter upward"),
    ],
)
def test_a_level_declaration_is_checked(levels, message):
    with pytest.raises(ValueError, match=message):
        _grid(*levels)


def test_a_level_is_frozen():
    level = grid_spec().levels[0]
    with pytest.raises(AttributeError):
        level.name = "cell"  # type: ignore[misc]


# --- no names outside layers/ --------------------------------------------------------------------

#: Where the engine, the web layer, the pages' scripts and templates live.
SCANNED = ("geo", "web", "static", "templates")

#: The columns every statistics table starts with (:data:`geo.figures.report.BASE_LABELS`: code, name,
#: level, parent_code, parent_name) are the schema of the report — of every export, API answer and
#: the hierarchy's own frames — not fields of the grid, though the grid's code and name fields share
#: two of those names.  A literal ``"code"`` or ``"name"`` is therefore no sign of code naming the grid
#: (it is also a status's code, a user's name, a form field ...).
REPORT_COLUMNS = frozenset(BASE_LABELS)

#: Literals equal to a declared name that mean something else, per file, and why.  Each is a word of
#: a public interface or of stored data, which keeps its meaning whatever the grid layer is called.
NOT_NAMES: dict[tuple[str, str], str] = {
    ("web/common.py", "grid"): "the `grid` query parameter: the grid version to count on",
    ("web/openapi.py", "grid"): "the same query parameter in the API document",
    ("geo/figures/report.py", "grid"): "the provenance key of the grid version a report counts on",
    ("geo/output/tables.py", "grid"): "reading that provenance key into the export's metadata",
    ("geo/store/interface/batches.py", "grid"): "the kind of a batch that imported a grid (stored data)",
    ("geo/store/gpkg/batches.py", "grid"): "the stored kind of a grid import's batch and transaction",
    ("geo/store/postgis/batches.py", "grid"): "the same stored kind in the PostGIS store",
}


def declared_names() -> dict[str, str]:
    """Every registered layer name, level name and grid field name → what it is."""
    names: dict[str, str] = {}
    for spec in layers.all_layers():
        names.setdefault(spec.name, f"the name of layer {spec.name}")
    grid = grid_spec()
    for lv in grid.levels:
        names.setdefault(lv.name, "a level of the grid")
    for f in grid.fields:
        names.setdefault(f.name, "a field of the grid")
    return names


def _python_literals(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    ]


_QUOTED = re.compile(r"""(["'`])([^"'`\n]{1,40})\1""")


def _text_literals(path: Path) -> list[tuple[int, str]]:
    """Quoted strings of a script or template (JavaScript strings, HTML attribute values, Jinja
    string literals)."""
    out = []
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        out += [(i, m[2]) for m in _QUOTED.finditer(line)]
    return out


def named_declarations(root: Path = ROOT) -> list[str]:
    """``path:line: "name" (what it is)`` for every literal under :data:`SCANNED` equal to a
    declared name (none of :data:`REPORT_COLUMNS`, :data:`NOT_NAMES` excepted)."""
    names = {k: v for k, v in declared_names().items() if k not in REPORT_COLUMNS}
    found = []
    for part in SCANNED:
        for path in sorted((root / part).rglob("*")):
            if path.suffix == ".py":
                literals = _python_literals(path)
            elif path.suffix in (".js", ".html"):
                literals = _text_literals(path)
            else:
                continue
            rel = path.relative_to(root).as_posix()
            for line, text in literals:
                if text in names and (rel, text) not in NOT_NAMES:
                    found.append(f"{rel}:{line}: {text!r} ({names[text]})")
    return found


def test_the_names_scanned_for_come_from_the_registry():
    names = declared_names()
    assert {"grid", "demolition", "parking", "charging"} <= set(names)
    assert {"community", "street", "district", "comm_code", "street_cd", "dist_code"} <= set(names)
    assert {"code", "name"} <= REPORT_COLUMNS


def test_nothing_outside_layers_names_a_layer_a_level_or_a_grid_field():
    found = named_declarations()
    assert found == [], "declared names written out of layers/:\n" + "\n".join(found)


@pytest.mark.parametrize(
    ("rel", "text"),
    [
        ("geo/figures/extra.py", 'LEVEL = "community"\n'),
        ("geo/output/extra.py", "def f(frame):\n    return frame['comm_code']\n"),
        ("web/extra.py", "LAYERS = ('demolition', 'parking')\n"),
        ("static/extra.js", 'const levels = ["grid", "street"];\n'),
        ("templates/extra.html", '<option value="district">区</option>\n'),
    ],
)
def test_a_name_written_out_is_found(tmp_path, rel, text):
    path = tmp_path / rel
    path.parent.mkdir(parents=True)
    path.write_text(text, encoding="utf-8")
    found = named_declarations(tmp_path)
    assert found and all(f.startswith(rel) for f in found), found


def test_report_columns_and_the_listed_exceptions_are_not_found(tmp_path):
    (tmp_path / "geo").mkdir()
    (tmp_path / "geo" / "extra.py").write_text('COLUMNS = ("code", "name", "level")\n', encoding="utf-8")
    (tmp_path / "web").mkdir()
    (tmp_path / "web" / "common.py").write_text('GRID = "grid"\n', encoding="utf-8")
    assert named_declarations(tmp_path) == []
