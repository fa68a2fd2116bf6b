"""The README's Python examples run as written, without warnings from the library."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).parents[1] / "README.md"
TEXT = README.read_text(encoding="utf-8")
BLOCKS = re.findall(r"```python\n(.*?)```", TEXT, flags=re.S)

#: the public entry points the README must show in its Python examples, and where from
ENTRY_POINTS = {
    "BidirectionalAttention": "wordexperts",
    "fit_mlm": "wordexperts",
    "to_experts": "wordexperts",
    "WordExpertsClassifier": "wordexperts",
    "explain": "wordexperts.bert.explain",
    "evaluate": "wordexperts.analogy",
}


def imported_names(code: str) -> set[tuple[str, str]]:
    """(module, name) of each ``from module import a, b`` line of ``code``."""
    found = set()
    for module, names in re.findall(r"^from\s+([\w.]+)\s+import\s+([^\n#]+)", code,
                                    flags=re.M):
        found |= {(module, n.strip()) for n in names.strip("()").split(",") if n.strip()}
    return found


def test_the_readme_examples_show_the_entry_points():
    shown = set().union(*map(imported_names, BLOCKS))
    missing = {name: module for name, module in ENTRY_POINTS.items()
               if (module, name) not in shown}
    assert not missing, f"README.md's Python blocks do not import {missing}"
    for name in ENTRY_POINTS:  # and use them, not only import them
        assert any(re.search(rf"\b{name}\(", code) for code in BLOCKS), name
    for n, code in enumerate(BLOCKS):
        assert any(m == "wordexperts" or m.startswith("wordexperts.")
                   for m, _ in imported_names(code)), f"block {n} shows no wordexperts API"


def test_the_readme_sets_up_with_make_demo_and_make_test():
    section = TEXT.split("\n## Set up and run\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 1, blocks
    commands = [line.split("#", 1)[0].strip() for line in blocks[0].splitlines()]
    assert [c for c in commands if c] == ["make demo", "make test"]


@pytest.mark.parametrize("code", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_readme_example_runs(code, tmp_path):
    # in a fresh interpreter, in a scratch folder; a UserWarning (say, torch's requires_grad
    # warning) is an error
    result = subprocess.run(
        [sys.executable, "-W", "error::UserWarning", "-c", code], cwd=tmp_path,
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
