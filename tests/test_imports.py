"""The package's import graph: the layers of docs/design.md, and no cycles.

Every ``import`` in ``dlcourse/`` is read from the source (not run), wherever it
stands: at the top of a module or inside a function. Only the imports in an
``if TYPE_CHECKING:`` block are left out: they are for type checkers and never
run. A module that imports ``dlcourse.a.b`` runs ``dlcourse/a/__init__.py``
first, so it depends on the package ``dlcourse.a`` too, unless that package
is its own (``dlcourse.a.c`` is only reached through ``dlcourse.a``, which is
then initialised already).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "dlcourse"
DESIGN = PACKAGE.parent / "docs" / "design.md"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST, module: str, is_package: bool) -> list[tuple[str, tuple[str, ...]]]:
    """What ``tree`` imports: ``(module, names)`` for ``from module import names``, and
    ``(module, ())`` for ``import module``."""
    found: list[tuple[str, tuple[str, ...]]] = []
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node):
            stack.extend(node.orelse)
            continue
        if isinstance(node, ast.Import):
            found.extend((a.name, ()) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from . import x, from .a import b
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            found.append((target, tuple(a.name for a in node.names)))
        stack.extend(ast.iter_child_nodes(node))
    return found


def import_graph() -> dict[str, set[str]]:
    """``{module: {dlcourse modules it imports, and the packages those run first}}``."""
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        # the packages above this module, and itself: initialised before it runs an import
        own = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 2)}
        direct: set[str] = set()
        for target, names in _imports(tree, name, path.name == "__init__.py"):
            submodules = {f"{target}.{n}" for n in names} & set(modules)
            direct |= submodules
            if len(submodules) < len(names) or not names:
                direct.add(target)  # its own names (from a import f), or the module itself
        targets = set()
        for target in direct:
            parts = target.split(".")
            for i in range(1, len(parts)):  # the packages that run on the way to it
                package = ".".join(parts[:i])
                if package in modules and package not in own:
                    targets.add(package)
            if target in modules and target != name:
                targets.add(target)
        graph[name] = targets
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan), each as a list."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1 or v in graph.get(v, ()):  # a loop, or a module importing itself
                groups.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return groups


def _path(graph: dict[str, set[str]], group: list[str]) -> str:
    """One concrete loop through a group, a -> b -> ... -> a, to say what to cut."""
    start = group[0]
    members = set(group)
    trail, seen = [start], {start}
    while True:
        nxt = sorted(graph[trail[-1]] & members)
        back = [n for n in nxt if n == start]
        if back and len(trail) > 1:
            return " -> ".join([*trail, start])
        fresh = [n for n in nxt if n not in seen]
        if not fresh:
            return " -> ".join([*trail, start])
        trail.append(fresh[0])
        seen.add(fresh[0])


def test_the_graph_reads_function_level_imports_and_skips_type_checking() -> None:
    source = (
        "from typing import TYPE_CHECKING\n"
        "import dlcourse.data\n"
        "if TYPE_CHECKING:\n    from dlcourse.train import TrainState\n"
        "def f():\n    from dlcourse.exercises import engine\n    from . import plot\n"
    )
    found = dict(_imports(ast.parse(source), "dlcourse.callbacks", is_package=False))
    assert found["dlcourse.data"] == () and found["dlcourse.exercises"] == ("engine",)
    assert found["dlcourse"] == ("plot",)
    assert "dlcourse.train" not in found


def test_a_cycle_is_found() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycles(graph) == [["a", "b", "c"]]
    assert _path(graph, ["a", "b", "c"]) == "a -> b -> c -> a"
    assert find_cycles({"a": {"b"}, "b": set()}) == []
    assert find_cycles({"a": {"a"}}) == [["a"]]


def test_no_import_cycles_in_the_package() -> None:
    graph = import_graph()
    assert len(graph) > 20 and "dlcourse.train" in graph
    assert "dlcourse.checkpoint" in graph["dlcourse.callbacks"]  # the graph sees real imports
    loops = [_path(graph, group) for group in find_cycles(graph)]
    assert loops == [], "import cycles (cut one import in each):\n" + "\n".join(loops)


def layer_table(text: str | None = None) -> list[tuple[str, list[str]]]:
    """docs/design.md's layer table, bottom first: ``[(layer, [module patterns])]``."""
    text = DESIGN.read_text(encoding="utf-8") if text is None else text
    section = text.split("## The layers", 1)[1].split("\n## ", 1)[0]
    layers = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 2 and cells[1].startswith("`"):
            names = re.findall(r"`([^`]+)`", cells[1])
            layers.append((cells[0], [n if n == "dlcourse" else f"dlcourse.{n}" for n in names]))
    return layers


def layer_of(module: str, layers: list[tuple[str, list[str]]]) -> int | None:
    for i, (_, names) in enumerate(layers):
        for name in names:
            if module == name or (name.endswith(".*") and module.startswith(name[:-1])):
                return i
    return None


def upward_imports(graph: dict[str, set[str]], layers: list[tuple[str, list[str]]]) -> list[str]:
    """Each import of a module from a higher layer than its own, as a sentence."""
    found = []
    for module, targets in sorted(graph.items()):
        own = layer_of(module, layers)
        for target in sorted(targets):
            theirs = layer_of(target, layers)
            if own is not None and theirs is not None and theirs > own:
                found.append(f"{module} ({layers[own][0]}) imports {target} ({layers[theirs][0]})")
    return found


def test_the_layer_table_is_read_and_an_upward_import_is_found() -> None:
    text = (
        "## The layers\n\n| layer | modules |\n|---|---|\n"
        "| 0 low | `plot`, `machinery.atomic` |\n| 1 high | `train`, `exercises.*` |\n\n## Next"
    )
    layers = layer_table(text)
    assert layers == [
        ("0 low", ["dlcourse.plot", "dlcourse.machinery.atomic"]),
        ("1 high", ["dlcourse.train", "dlcourse.exercises.*"]),
    ]
    assert layer_of("dlcourse.exercises.engine", layers) == 1
    graph = {"dlcourse.plot": {"dlcourse.train"}, "dlcourse.train": {"dlcourse.plot"}}
    assert upward_imports(graph, layers) == [
        "dlcourse.plot (0 low) imports dlcourse.train (1 high)"
    ]


def test_every_module_has_a_place_in_the_layer_table() -> None:
    layers = layer_table()
    assert len(layers) >= 6
    unplaced = sorted(m for m in import_graph() if layer_of(m, layers) is None)
    assert not unplaced, (
        f"place {', '.join(unplaced)} in the layer table of docs/design.md ('The layers')"
    )
    listed = {n for _, names in layers for n in names if not n.endswith(".*")}
    gone = sorted(listed - set(import_graph()))
    assert not gone, f"docs/design.md's layer table names modules that do not exist: {gone}"


def test_no_module_imports_from_a_layer_above_its_own() -> None:
    problems = upward_imports(import_graph(), layer_table())
    assert not problems, "imports that go up the layers of docs/design.md:\n" + "\n".join(problems)


def test_the_command_and_the_environment_report_stay_light() -> None:
    graph = import_graph()
    for module in ("dlcourse.env", "dlcourse.machinery.cli"):
        assert "dlcourse" not in graph[module], f"{module} imports the package root"
