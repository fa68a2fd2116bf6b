"""The architecture: the library never imports the harness, its modules import each other
without a cycle, and imports stay light."""

import ast
import graphlib
import subprocess
import sys
from pathlib import Path

import wordexperts

PACKAGE = Path(wordexperts.__file__).parent
LIBRARY = ("core", "tabular", "analogy", "bert", "datasets")


def imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def test_the_library_never_imports_the_harness():
    offenders = {}
    for part in LIBRARY:
        for path in sorted((PACKAGE / part).rglob("*.py")):
            bad = {m for m in imported_modules(path) if m.startswith("wordexperts.harness")}
            if bad:
                offenders[str(path.relative_to(PACKAGE))] = sorted(bad)
    assert offenders == {}


def module_name(path: Path) -> str:
    """``src/wordexperts/tabular/solver.py`` -> ``wordexperts.tabular.solver`` (a package's
    ``__init__.py``: the package)."""
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_time_statements(body: list[ast.stmt]) -> list[ast.stmt]:
    """The statements of ``body`` that run when the module is imported: nested blocks (if,
    try, with, class bodies) included, function bodies not (an import inside a function
    runs on its first call, after every module has loaded)."""
    found = []
    for node in body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        found.append(node)
        for field in ("body", "orelse", "finalbody", "handlers"):
            found += import_time_statements(getattr(node, field, []))
    return found


def library_import_graph() -> dict[str, set[str]]:
    """Every module of the package but the harness (and ``__main__``, the command line's
    entry), with the library modules it imports at import time. ``from package import name``
    is an edge to ``package.name`` where that is a module, else to ``package``."""
    paths = [PACKAGE / "__init__.py"] + [path for part in LIBRARY
                                          for path in sorted((PACKAGE / part).rglob("*.py"))]
    modules = {module_name(path): path for path in paths}
    graph = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        targets = set()
        for node in import_time_statements(tree.body):
            if isinstance(node, ast.Import):
                targets |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                assert node.level == 0, f"{path}: relative import (the graph reads absolute ones)"
                targets |= {f"{node.module}.{alias.name}"
                            if f"{node.module}.{alias.name}" in modules else node.module
                            for alias in node.names}
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


def import_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` (its modules in import order, the first repeated at the end), or
    None when it has none."""
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as exc:
        return exc.args[1]
    return None


def test_the_library_has_no_import_cycle():
    # No exception: the trainer imports the torch backend only inside the function that
    # trains with torch, and both backends take their shared types from tabular/positions.py.
    graph = library_import_graph()
    # the graph is read: edges that exist, from a package and from a module
    assert "wordexperts.tabular.estimator" in graph["wordexperts.tabular"]
    assert {"wordexperts.tabular.explain", "wordexperts.tabular.solver",
            "wordexperts.core.attention"} <= graph["wordexperts.tabular.estimator"]
    assert "wordexperts.tabular.torch_backend" not in graph["wordexperts.tabular.trainer"]
    assert "wordexperts.tabular.positions" in graph["wordexperts.tabular.torch_backend"]
    assert import_cycle(graph) is None


def test_the_cycle_check_finds_a_cycle():
    graph = library_import_graph()
    graph["wordexperts.tabular.positions"].add("wordexperts.tabular.trainer")
    cycle = import_cycle(graph)
    assert cycle is not None and cycle[0] == cycle[-1]
    assert {"wordexperts.tabular.positions", "wordexperts.tabular.trainer"} <= set(cycle)


def modules_loaded_by(code: str, candidates: tuple[str, ...]) -> list[str]:
    """Which of ``candidates`` a fresh interpreter has imported after running ``code``."""
    probe = f"import sys; {code}; print(sorted(m for m in {candidates!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True).stdout.strip()
    return ast.literal_eval(out)


def test_importing_the_package_loads_no_heavy_dependency():
    heavy = ("torch", "sklearn", "pandas", "safetensors", "transformers")
    assert modules_loaded_by("import wordexperts", heavy) == []
    # and the lazy names resolve
    assert wordexperts.BidirectionalAttention.__name__ == "BidirectionalAttention"


def test_cli_help_imports_no_command_module():
    code = "from wordexperts.harness.cli import build_parser; build_parser([])"
    assert modules_loaded_by(code, ("torch", "sklearn", "pandas")) == []
