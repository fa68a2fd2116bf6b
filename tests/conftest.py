"""Test-wide settings, :func:`shared_path` (the paper's reference data beside the repo), and
:func:`attention_output` (what transformers computes inside a checkpoint's first layer)."""

import os
from pathlib import Path

import pytest
import torch

#: ``../shared`` beside the repository: the paper's reference data (present in CI)
SHARED = Path(__file__).resolve().parents[2] / "shared"


def in_ci() -> bool:
    """Whether the environment variable ``CI`` is set (to anything but "", 0, false, no)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def shared_path(*parts: str) -> Path:
    """The path ``../shared/<parts>``. Where it is missing the calling test is skipped with
    a reason naming the path, or fails when the environment variable ``CI`` is set (CI has
    ``../shared`` beside the repository, so a missing file there is a broken set-up, not a
    reason to skip)."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        message = f"{path} is missing (the paper's reference data, ../shared beside the repo)"
        if in_ci():
            pytest.fail(f"{message}; CI={os.environ['CI']!r} requires it", pytrace=False)
        pytest.skip(message)
    return path


@pytest.fixture
def shared():
    """:func:`shared_path` as a fixture: ``shared("reference", "README.md")``."""
    return shared_path


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Small models run much faster on one thread (2 threads on 2 shared cores contend)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def attention_output():
    """A function ``(checkpoint, ids) -> tensor``: the output of the first layer's attention
    projection ``attention.output.dense`` (before its LayerNorm) when transformers runs
    ``checkpoint.reference(ids)``, captured by a forward hook (removed afterwards)."""
    def capture(checkpoint, ids: torch.Tensor) -> torch.Tensor:
        seen = {}
        dense = checkpoint.transformers_model.encoder.layer[0].attention.output.dense
        hook = dense.register_forward_hook(lambda m, args, out: seen.update(out=out))
        try:
            checkpoint.reference(ids)
        finally:
            hook.remove()
        return seen["out"]

    return capture
