"""Every module imports, with no import cycle and no import against the layer order.

(a) `test_every_module_imports`: a fresh interpreter walks `talkingjax` and `experiments` with
`pkgutil` and imports every module with `importlib` (the experiments' absl flags are dropped
after each import, so programs that share flag names can be imported in one process).

(b) `test_no_import_cycles` / `test_layer_order`: a static check over the AST of every module
of both packages. Every `import` counts, at module level or inside a function (only `if
TYPE_CHECKING:` blocks are skipped); `from talkingjax.x import y` is an edge to the module
`talkingjax.x.y` when that is a module, else to `talkingjax.x`. A package's `__init__.py` is a
module of that package, so its re-exports are that package's edges. The one exception: the lazy
(PEP 562 `__getattr__`) re-exports in `talkingjax/__init__.py`.

The layer order (a layer may import any layer below it, never one above):

    experiments -> evaluation -> generation -> predict -> train -> BOTTOM

BOTTOM (the building blocks) may import each other, without cycles. A `talkingjax` module in
no layer fails the check: add it to the order.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ("talkingjax", "experiments")
BOTTOM = frozenset(
    {
        "models", "losses", "data", "face3d", "render", "video", "metrics", "audio", "geometry",
        "errors", "visualize", "progress", "console", "compilation_cache", "user_cache",
    }
)  # fmt: skip
LAYERS = (("experiments",), ("evaluation",), ("generation",), ("predict",), ("train",), BOTTOM)
# talkingjax/__init__.py may re-export the top of the library lazily (PEP 562).
LAZY_FUNCTIONS = {"talkingjax": frozenset({"__getattr__", "__dir__"})}

_IMPORT_ALL = r"""
import importlib, json, pkgutil, sys
from absl import flags

failed = {}
for name in sys.argv[1:]:
    package = importlib.import_module(name)
    names = [name] + [
        m.name
        for m in pkgutil.walk_packages(
            package.__path__, name + ".", onerror=lambda n: failed.setdefault(n, "walk failed")
        )
    ]
    for module in names:
        before = set(flags.FLAGS)
        try:
            importlib.import_module(module)
        except Exception as err:  # noqa: BLE001 -- every failure is reported
            failed[module] = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
        for flag in set(flags.FLAGS) - before:  # experiments share flag names (--out, ...)
            delattr(flags.FLAGS, flag)
print(json.dumps({"failed": failed, "count": len(sys.modules)}))
"""


# ---------------------------------------------------------------------------------- (a) imports


def test_every_module_imports():
    proc = subprocess.run(
        [sys.executable, "-c", _IMPORT_ALL, *PACKAGES],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert not result["failed"], "modules that do not import:\n" + "\n".join(
        f"  {name}: {why}" for name, why in sorted(result["failed"].items())
    )


# ---------------------------------------------------------------------------- (b) static graph


def _modules() -> dict[str, tuple[str, bool]]:
    """{module name: (path, is a package __init__)} of every .py file of PACKAGES."""
    out = {}
    for package in PACKAGES:
        for directory, dirs, files in os.walk(os.path.join(REPO, package)):
            dirs[:] = sorted(d for d in dirs if d != "__pycache__" and not d.startswith("."))
            for f in sorted(files):
                if not f.endswith(".py"):
                    continue
                path = os.path.join(directory, f)
                parts = os.path.relpath(path, REPO)[: -len(".py")].split(os.sep)
                is_package = parts[-1] == "__init__"
                if is_package:
                    parts = parts[:-1]
                out[".".join(parts)] = (path, is_package)
    return out


class _Imports(ast.NodeVisitor):
    """(line, absolute module or module.name, outermost function) of every import."""

    def __init__(self, module: str, is_package: bool):
        self.package = module if is_package else module.rpartition(".")[0]
        self.found: list[tuple[int, str, str | None]] = []
        self._functions: list[str] = []

    def visit_If(self, node: ast.If) -> None:
        test = node.test
        name = test.id if isinstance(test, ast.Name) else getattr(test, "attr", None)
        if name == "TYPE_CHECKING":  # annotations only: not executed
            for child in node.orelse:
                self.visit(child)
            return
        self.generic_visit(node)

    def _function(self, node) -> None:
        self._functions.append(node.name)
        self.generic_visit(node)
        self._functions.pop()

    visit_FunctionDef = visit_AsyncFunctionDef = _function

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(node.lineno, alias.name)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        base = node.module or ""
        if node.level:
            parts = self.package.split(".")
            parts = parts[: len(parts) - (node.level - 1)]
            base = ".".join(parts + ([base] if base else []))
        for alias in node.names:
            self._add(node.lineno, f"{base}.{alias.name}" if alias.name != "*" else base)

    def _add(self, line: int, name: str) -> None:
        function = self._functions[0] if self._functions else None
        self.found.append((line, name, function))


def _resolve(name: str, modules) -> str | None:
    """The module an import loads: the longest prefix of `name` that is a module (so
    `talkingjax.x.y` for a module y, else `talkingjax.x` for a name y defined in x)."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in modules:
            return candidate
        parts.pop()
    return None


def import_graph() -> list[tuple[str, str, str]]:
    """Edges (importer, imported, "path:line") between modules of PACKAGES."""
    modules = _modules()
    edges = []
    for module, (path, is_package) in modules.items():
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read(), path)
        visitor = _Imports(module, is_package)
        visitor.visit(tree)
        for line, name, function in visitor.found:
            if function in LAZY_FUNCTIONS.get(module, ()):
                continue
            target = _resolve(name, modules)
            if target is not None and target != module:
                edges.append((module, target, f"{os.path.relpath(path, REPO)}:{line}"))
    return edges


def _cycles(edges) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    graph: dict[str, set[str]] = {}
    for a, b, _ in edges:
        graph.setdefault(a, set()).add(b)
        graph.setdefault(b, set())
    index, low, on_stack, stack, out = {}, {}, set(), [], []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    out.append(sorted(component))
    return out


def _layer(module: str) -> int | None:
    """Index in LAYERS of a module's layer (0 = experiments); None if it is in none."""
    parts = module.split(".")
    if parts[0] == "experiments":
        return 0
    if len(parts) == 1:  # talkingjax/__init__.py: every import runs it; it imports lazily
        return None
    for i, layer in enumerate(LAYERS):
        if parts[1] in layer:
            return i
    return None


def _edge_lines(edges) -> str:
    return "\n".join(f"  {a} -> {b}  ({where})" for a, b, where in edges)


def test_no_import_cycles():
    edges = [e for e in import_graph() if e[0].startswith("talkingjax")]
    cycles = _cycles(edges)
    report = []
    for component in cycles:
        members = set(component)
        inside = sorted(e for e in edges if e[0] in members and e[1] in members)
        report.append(f"cycle among {', '.join(component)}:\n{_edge_lines(inside)}")
    assert not cycles, "import cycles between talkingjax modules:\n" + "\n".join(report)


def test_layer_order():
    order = " -> ".join("|".join(sorted(layer)) for layer in LAYERS)
    edges = import_graph()
    edges = [e for e in edges if e[0] != "talkingjax" and e[1] != "talkingjax"]
    unknown = sorted({m for e in edges for m in e[:2] if _layer(m) is None})
    assert not unknown, f"modules in no layer (add them to LAYERS: {order}): {unknown}"
    upward = sorted(e for e in edges if _layer(e[1]) < _layer(e[0]))
    assert not upward, f"imports against the layer order {order}:\n" + _edge_lines(upward)
