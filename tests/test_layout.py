"""The architecture: the library never imports the harness, and imports stay light."""

import ast
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
