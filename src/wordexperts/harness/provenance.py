"""Where a result came from: the code, the packages and the CPU kernels that produced it.

Every record the harness stores carries :func:`environment` (package versions, torch's CPU
capability, NumPy's dispatched CPU features, the BLAS library, the git commit); the store key
of our own methods includes :func:`code_version`, so a change of the model code refits them
instead of reusing results of the code before it. See docs/reproducibility.md.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import importlib
import platform
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

__all__ = ["MODEL_CODE", "PACKAGES", "code_version", "environment"]

#: The library packages whose code decides what a fit of our models gives.
MODEL_CODE = ("wordexperts.core", "wordexperts.tabular")
#: The distributions whose versions a record carries: the numerical stack and the peers.
PACKAGES = ("numpy", "scipy", "scikit-learn", "pandas", "torch", "transformers", "tokenizers",
            "safetensors", "gensim", "catboost", "lightgbm", "pytorch_tabular", "threadpoolctl")


@functools.cache
def code_version(packages: tuple[str, ...] = MODEL_CODE) -> str:
    """A short hash (12 hex digits) of the code of ``packages``: each module's syntax tree
    without its docstrings, so comments, docstrings and layout do not count, but any change
    of what the code does (or of a name) does.

    >>> len(code_version()), code_version() == code_version(MODEL_CODE)
    (12, True)
    """
    digest = hashlib.sha256()
    for package in packages:
        root = Path(importlib.import_module(package).__file__).parent
        for path in sorted(root.rglob("*.py")):
            digest.update(str(path.relative_to(root.parent)).encode())
            digest.update(_without_docstrings(path.read_text(encoding="utf-8")).encode())
    return digest.hexdigest()[:12]


def _without_docstrings(source: str) -> str:
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if (body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                    and isinstance(body[0].value.value, str)):
                node.body = body[1:] or [ast.Pass()]
    return ast.dump(tree)


@functools.cache
def environment() -> dict[str, Any]:
    """What produced a result on this machine, once per process: the library version and git
    commit (``git_dirty``: tracked files changed), Python, the versions of :data:`PACKAGES`
    (``None``: not installed), torch's CPU capability (its kernels: ``ATEN_CPU_CAPABILITY``),
    NumPy's dispatched CPU features in use (``NPY_DISABLE_CPU_FEATURES``) and the BLAS
    libraries loaded (threadpoolctl: API, version, kernel architecture)."""
    import numpy as np
    import torch
    from threadpoolctl import threadpool_info

    from wordexperts import __version__

    commit, dirty = _git()
    features = np._core._multiarray_umath.__cpu_features__
    dispatch = np._core._multiarray_umath.__cpu_dispatch__
    return {
        "wordexperts": __version__, "git_commit": commit, "git_dirty": dirty,
        "python": platform.python_version(), "machine": platform.machine(),
        "packages": {name: _version(name) for name in PACKAGES},
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "numpy_cpu_dispatch": [f for f in dispatch if features.get(f)],
        "blas": sorted({f"{i.get('internal_api')} {i.get('version')} "
                        f"{i.get('architecture', '')}".strip()
                        for i in threadpool_info() if i.get("user_api") == "blas"}),
    }


def _version(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def _git() -> tuple[str | None, bool | None]:
    """The commit of the checkout the library runs from, and whether tracked files differ
    from it; ``(None, None)`` for an installed copy outside a git checkout."""
    root = Path(__file__).resolve().parents[3]
    if not (root / "src" / "wordexperts").is_dir():             # an installed copy
        return None, None
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"],
                                capture_output=True, text=True, timeout=10)
        if commit.returncode != 0:
            return None, None
        status = subprocess.run(["git", "-C", str(root), "status", "--porcelain",
                                 "--untracked-files=no"], capture_output=True, text=True,
                                timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None, None
    return commit.stdout.strip(), bool(status.stdout.strip())
