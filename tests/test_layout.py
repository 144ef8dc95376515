"""The package's shape: layers that import only downwards, no import cycle, no module over 400 lines, no function
over 60 lines but the declarations listed in `LONG_DECLARATIONS`.

The layers, lowest first, follow the request path (see the README's "How it works"). A module may import its
own layer or a lower one, never a higher one; inside a layer, imports must not form a cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

from guard.settings import REPO_ROOT

PACKAGE = REPO_ROOT / "guard"
MAX_LINES = 400
MAX_FUNCTION_LINES = 60
# Functions that only declare (a table of metrics, a command line's options): long, yet read as a list.
LONG_DECLARATIONS = {"guard.observe.metrics.Metrics.__init__", "guard.cli.main"}

LAYERS: list[tuple[str, list[str]]] = [
    ("foundation", ["guard", "guard.errors", "guard.text", "guard.language", "guard.normalize", "guard.settings"]),
    (
        "wire and infrastructure",
        [
            "guard.openai",
            "guard.openai.protocol",
            "guard.openai.sse",
            "guard.openai.assemble",
            "guard.openai.shapes",
            "guard.limits",
            "guard.upstream",
            "guard.routing",
            "guard.judge",
            "guard.observe",
            "guard.observe.audit",
            "guard.observe.metrics",
            "guard.observe.logging",
        ],
    ),
    ("forget index", ["guard.forget.*"]),
    ("policy", ["guard.policy", "guard.policy_watch"]),
    ("checks", ["guard.checks.*"]),
    ("request", ["guard.context", "guard.rewrite", "guard.observe.decisions"]),
    ("pipeline", ["guard.pipeline.*"]),
    ("services", ["guard.services"]),
    ("routes", ["guard.api.*", "guard.admin.*", "guard.console.*"]),
    ("app", ["guard.handlers", "guard.app"]),
    ("tools around the proxy", ["guard.eval.*", "guard.localmodel.*", "guard.testing.*"]),
    ("command line", ["guard.cli_ops", "guard.cli", "guard.__main__"]),
]


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def layer_of(module: str) -> int:
    best: tuple[int, int] | None = None  # (specificity, layer)
    for number, (_, patterns) in enumerate(LAYERS):
        for pattern in patterns:
            if pattern.endswith(".*"):
                prefix = pattern[:-2]
                if module == prefix or module.startswith(prefix + "."):
                    candidate = (len(prefix), number)
                    best = candidate if best is None or candidate > best else best
            elif module == pattern:
                return number
    if best is None:
        raise AssertionError(f"{module} is in no layer: add it to LAYERS in {__file__}")
    return best[1]


def imports(path: Path, known: set[str]) -> set[str]:
    """The guard modules `path` imports (anywhere in it, lazy imports included)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "guard":
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in known)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "guard")
    return found & known


def graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {name: imports(path, known) - {name} for name, path in mods.items()}


def test_every_module_imports_only_its_own_layer_or_lower() -> None:
    upward = [
        f"{m} ({LAYERS[layer_of(m)][0]}) imports {d} ({LAYERS[layer_of(d)][0]})"
        for m, deps in graph().items()
        for d in sorted(deps)
        if layer_of(d) > layer_of(m)
    ]
    assert not upward, "\n".join(upward)


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_import_cycle() -> None:
    cycle = find_cycle(graph())
    assert cycle is None, " -> ".join(cycle or [])


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_module_over_400_lines() -> None:
    long = {m: n for m, p in modules().items() if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not long, long


def functions(tree: ast.AST, prefix: str) -> list[tuple[str, int]]:
    """(qualified name, lines) of every function and method, nested ones included."""
    found: list[tuple[str, int]] = []
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            name = f"{prefix}.{node.name}"
            if not isinstance(node, ast.ClassDef):
                found.append((name, (node.end_lineno or node.lineno) - node.lineno + 1))
            found += functions(node, name)
    return found


def test_no_function_over_60_lines_but_declarations() -> None:
    long = {
        name: n
        for m, p in modules().items()
        for name, n in functions(ast.parse(p.read_text(encoding="utf-8")), m)
        if n > MAX_FUNCTION_LINES and name not in LONG_DECLARATIONS
    }
    assert not long, long


def test_the_function_measure_sees_nested_functions() -> None:
    tree = ast.parse("def outer():\n    def inner():\n        pass\n    return inner\n")
    assert functions(tree, "m") == [("m.outer", 4), ("m.outer.inner", 2)]
