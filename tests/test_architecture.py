"""The layering of the code base, read from its imports.

``layers`` (declarations) → ``geo`` (the engine, its sub-packages ordered below) → ``web`` (Flask
blueprints) → ``server.py`` (composes the app): a module imports only from its own rank or below,
the module graph has no cycle, and every imported name is defined where it is imported from (no
module passes another's names on).  Imports at module level, inside functions, under
``TYPE_CHECKING`` and through ``importlib.import_module`` / ``__import__`` all count.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("layers", "geo", "web")

#: Rank of each part, lowest first: a module may import parts of its own rank or lower.
RANKS: tuple[tuple[str, ...], ...] = (
    ("layers",),
    ("geo", "geo.errors", "geo.registry", "geo.assign", "geo.workdays"),  # "geo": the package's own __init__
    ("geo.reading",),
    ("geo.store", "geo.edits.ids"),  # a feature's stable id: read from the store, used by figures
    ("geo.figures",),
    ("geo.imports", "geo.edits"),  # edits take the import write path
    ("geo.output",),
    ("geo.notify",),
    ("geo.tasks",),
    ("geo.cli",),
    ("web",),
    ("server",),
)

#: Parts that must never be imported below ``web`` (the engine runs without a web framework).
WEB_ONLY = ("flask", "flask_babel", "flask_login", "flask_wtf", "werkzeug", "jinja2", "folium")


@dataclass(frozen=True)
class Edge:
    source: str  # importing module
    target: str  # imported module (project module, or the top-level name of a third-party one)
    name: str | None  # the name taken by ``from target import name`` (None: the module itself)
    line: int


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_files(root: Path = ROOT) -> dict[str, Path]:
    files = {module_name(root / "server.py", root): root / "server.py"}
    for pkg in PACKAGES:
        for path in sorted((root / pkg).rglob("*.py")):
            files[module_name(path, root)] = path
    return files


def _is_module(name: str, modules: dict[str, Path]) -> bool:
    return name in modules


def _resolve(module: str, level: int, source: str, is_package: bool) -> str:
    if level == 0:
        return module
    base = source.split(".")
    if not is_package:
        base = base[:-1]
    base = base[: len(base) - (level - 1)] if level > 1 else base
    return ".".join([*base, module] if module else base)


def imports_of(source: str, path: Path, modules: dict[str, Path]) -> list[Edge]:
    """Every import in ``path``, wherever it stands in the file."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    edges: list[Edge] = []
    is_package = path.name == "__init__.py"
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                edges.append(Edge(source, alias.name, None, node.lineno))
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(node.module or "", node.level, source, is_package)
            if base == "__future__":
                continue
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                if _is_module(sub, modules):
                    edges.append(Edge(source, sub, None, node.lineno))
                else:
                    edges.append(Edge(source, base, alias.name, node.lineno))
        elif isinstance(node, ast.Call):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if called in ("import_module", "__import__") and node.args:
                arg = node.args[0]
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    edges.append(Edge(source, arg.value, None, node.lineno))
                else:
                    edges.append(Edge(source, "<computed>", None, node.lineno))
    return edges


def rank(module: str) -> int | None:
    """The rank of a project module (None: not part of the layered project)."""
    best: tuple[int, int] | None = None  # (length of the matching part, rank): the longest part wins
    for i, parts in enumerate(RANKS):
        for part in parts:
            if (module == part or module.startswith(part + ".")) and (best is None or len(part) > best[0]):
                best = (len(part), i)
    return None if best is None else best[1]


def defined_names(path: Path) -> set[str]:
    """Names a module defines itself at top level (not the ones it imports)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    names: set[str] = set()

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                names.add(node.name)
            elif isinstance(node, ast.Assign):
                for target in node.targets:
                    for sub in ast.walk(target):
                        if isinstance(sub, ast.Name):
                            names.add(sub.id)
            elif isinstance(node, ast.AnnAssign | ast.AugAssign) and isinstance(node.target, ast.Name):
                names.add(node.target.id)
            elif isinstance(node, ast.If | ast.Try | ast.With):
                visit(node.body)
                visit(getattr(node, "orelse", []))
                for handler in getattr(node, "handlers", []):
                    visit(handler.body)
                visit(getattr(node, "finalbody", []))

    visit(tree.body)
    return names


def graph(root: Path = ROOT) -> tuple[dict[str, Path], list[Edge]]:
    modules = project_files(root)
    edges = [e for name, path in modules.items() for e in imports_of(name, path, modules)]
    return modules, edges


def layering_errors(root: Path = ROOT) -> list[str]:
    """Every upward import, cycle, re-exported name and web import below ``web``."""
    modules, edges = graph(root)
    errors: list[str] = []
    for e in edges:
        where = f"{modules[e.source].relative_to(root)}:{e.line}"
        if e.target == "<computed>":
            errors.append(f"{where}: {e.source} imports a computed module name")
            continue
        top = e.target.split(".")[0]
        src_rank, dst_rank = rank(e.source), rank(e.target)
        if dst_rank is None:
            if top in WEB_ONLY and src_rank is not None and src_rank < rank("web"):  # type: ignore[operator]
                errors.append(f"{where}: {e.source} (below web) imports {e.target}")
            continue
        assert src_rank is not None
        if dst_rank > src_rank:
            errors.append(f"{where}: {e.source} imports {e.target}, a higher layer")
        if e.target not in modules:
            errors.append(f"{where}: {e.source} imports {e.target}, which is not a module")
        elif e.name is not None and e.name != "*" and e.name not in defined_names(modules[e.target]):
            errors.append(
                f"{where}: {e.source} takes {e.name} from {e.target}, which does not define it "
                "(import it from the module that does)"
            )
    errors.extend(f"import cycle: {' → '.join(c)}" for c in cycles(modules, edges))
    return errors


def cycles(modules: dict[str, Path], edges: list[Edge]) -> list[list[str]]:
    """One cycle through each strongly connected group of project modules (Tarjan)."""
    succ: dict[str, set[str]] = {m: set() for m in modules}
    for e in edges:
        if e.target in modules and e.target != e.source:
            succ[e.source].add(e.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    groups: list[list[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(succ[v]):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(modules):
        if v not in index:
            strong(v)
    out = []
    for group in groups:
        members = set(group)
        path, seen = [group[0]], {group[0]}
        while True:
            nxt = sorted(w for w in succ[path[-1]] if w in members)
            back = [w for w in nxt if w == group[0]]
            if back and len(path) > 1:
                out.append([*path, group[0]])
                break
            fresh = [w for w in nxt if w not in seen]
            if not fresh:
                out.append([*group, group[0]])
                break
            path.append(fresh[0])
            seen.add(fresh[0])
    return out


def test_layering_holds():
    errors = layering_errors()
    assert not errors, "\n".join(errors)


def test_every_part_has_a_rank():
    modules = project_files()
    assert all(rank(m) is not None for m in modules), [m for m in modules if rank(m) is None]
    assert {m.split(".")[1] for m in modules if m.startswith("geo.") and m.count(".") >= 1} >= {
        "reading",
        "store",
        "figures",
        "imports",
        "output",
    }


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text, encoding="utf-8")
    for pkg in PACKAGES:
        (tmp_path / pkg).mkdir(exist_ok=True)
        (tmp_path / pkg / "__init__.py").touch()
    (tmp_path / "server.py").touch()
    return tmp_path


BASE = {
    "geo/errors.py": "class InputError(Exception):\n    pass\n",
    "geo/store/__init__.py": "",
    "geo/store/base.py": "from geo.errors import InputError\nUNASSIGNED = ''\n",
    "geo/figures/__init__.py": "",
    "geo/figures/tally.py": "from geo.store.base import UNASSIGNED\ndef tally():\n    return UNASSIGNED\n",
    "web/views.py": "from geo.figures.tally import tally\nimport flask\n",
}


def test_a_clean_tree_passes(tmp_path):
    assert layering_errors(_tree(tmp_path, BASE)) == []


@pytest.mark.parametrize(
    ("path", "text", "expected"),
    [
        # an upward import at module level
        ("geo/store/base.py", "from geo.figures.tally import tally\n", "a higher layer"),
        # inside a function
        ("geo/store/base.py", "def f():\n    from geo.figures import tally\n", "a higher layer"),
        # through importlib
        (
            "geo/store/base.py",
            "import importlib\ndef f():\n    return importlib.import_module('web.views')\n",
            "a higher layer",
        ),
        ("geo/store/base.py", "def f():\n    return __import__('server')\n", "a higher layer"),
        # only for type checking
        (
            "geo/store/base.py",
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from geo.figures.tally import tally\n",
            "a higher layer",
        ),
        # the engine reaching for the web framework
        ("geo/store/base.py", "def f():\n    import werkzeug.security\n", "below web"),
        ("layers/grid.py", "import flask\n", "below web"),
        # a name passed on by a module that does not define it
        ("web/views.py", "from geo.figures.tally import UNASSIGNED\n", "does not define it"),
        # a computed module name
        ("geo/store/base.py", "import importlib\nimportlib.import_module(name)\n", "computed"),
    ],
)
def test_a_violation_fails(tmp_path, path, text, expected):
    files = dict(BASE)
    files[path] = files.get(path, "") + text
    errors = layering_errors(_tree(tmp_path, files))
    assert any(expected in e for e in errors), errors


def test_a_cycle_fails(tmp_path):
    files = dict(BASE)
    files["geo/store/other.py"] = "from geo.store import base\n"
    files["geo/store/base.py"] += "from geo.store import other\n"
    errors = layering_errors(_tree(tmp_path, files))
    assert any(
        e.startswith("import cycle: geo.store.base → geo.store.other → geo.store.base") for e in errors
    ), errors


# --------------------------------------------------------------------------- tests and bench/

#: Calls that put a folder on the import path.
PATH_CALLS = ("sys.path.insert", "sys.path.append", "sys.path.extend", "syspath_prepend")


def _dotted(node: ast.expr) -> str:
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return node.id if isinstance(node, ast.Name) else ""


def _is_bench(module: str) -> bool:
    top = module.split(".")[0]
    return top == "bench" or top.startswith("bench_")


def bench_uses(root: Path = ROOT) -> list[str]:
    """Places in ``root/tests`` that import a benchmark or put ``bench/`` on the import path."""
    found = []
    for path in sorted((root / "tests").rglob("*.py")):
        where = path.relative_to(root)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            elif isinstance(node, ast.Call) and _dotted(node.func).endswith(PATH_CALLS):
                strings = [n.value for a in node.args for n in ast.walk(a) if isinstance(n, ast.Constant)]
                names = ["bench"] if any(isinstance(s, str) and "bench" in s for s in strings) else []
            elif isinstance(node, ast.Call) and _dotted(node.func).endswith(("import_module", "__import__")):
                first = node.args[0] if node.args else None
                names = (
                    [first.value] if isinstance(first, ast.Constant) and isinstance(first.value, str) else []
                )
            else:
                continue
            found += [f"{where}:{node.lineno}: {name}" for name in names if _is_bench(name)]
    return found


def test_tests_do_not_use_bench():
    assert bench_uses() == []


@pytest.mark.parametrize(
    "text",
    [
        "import bench_load\n",
        "def f():\n    from bench_load import run\n",
        "from bench.bench_load import run\n",
        "import sys\nsys.path.insert(0, str(ROOT / 'bench'))\n",
        "def test(monkeypatch):\n    monkeypatch.syspath_prepend(str(ROOT / 'bench'))\n",
        "import importlib\nimportlib.import_module('bench_load')\n",
    ],
)
def test_a_test_using_bench_fails(tmp_path, text):
    clean = "import sys\nfrom tests.helpers.load.run import run\nsys.path.insert(0, 'data')\n"
    found = bench_uses(_tree(tmp_path, {"tests/test_clean.py": clean, "tests/helpers/x.py": text}))
    assert len(found) == 1 and found[0].startswith("tests/helpers/x.py:"), found


def test_no_module_lists_anothers_names_as_its_own():
    """``__all__`` names only what its module defines: no module passes on another's names."""
    offenders = []
    for name, path in project_files().items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:
            if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
            ):
                listed = [e.value for e in node.value.elts if isinstance(e, ast.Constant)]
                own = defined_names(path)
                offenders += [f"{name}: {n}" for n in listed if n not in own]
    assert offenders == []
