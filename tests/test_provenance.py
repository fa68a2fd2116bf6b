"""Where a result came from: every stored record says what produced it, and a change of the
model code changes the key of our methods' results (issue 16's reproducibility contract)."""

import json
import os
import subprocess
from pathlib import Path

import pytest
import torch

from wordexperts.harness import methods, provenance, real_shift
from wordexperts.harness.analogy_theory import TheorySettings, results_key
from wordexperts.harness.store import ResultStore

ROOT = Path(__file__).parents[1]


def test_code_version_ignores_docstrings_and_comments_not_code():
    plain = 'def f(x):\n    return x + 1\n'
    documented = 'def f(x):\n    """Add one."""\n    # why\n    return x + 1  # here\n'
    changed = 'def f(x):\n    return x + 2\n'
    strip = provenance._without_docstrings
    assert strip(plain) == strip(documented) != strip(changed)
    assert len(provenance.code_version()) == 12
    assert provenance.code_version(("wordexperts.core",)) != provenance.code_version()


def test_the_environment_names_versions_kernels_and_commit():
    env = provenance.environment()
    assert env["packages"]["torch"].startswith("2.13.0")
    assert env["packages"]["numpy"] and env["packages"]["scikit-learn"]
    assert env["torch_cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    if "ATEN_CPU_CAPABILITY" in os.environ:                   # make test's kernel variants
        assert env["torch_cpu_capability"].lower() == os.environ["ATEN_CPU_CAPABILITY"]
    assert all(isinstance(f, str) for f in env["numpy_cpu_dispatch"])
    assert env["blas"], "threadpoolctl found no BLAS"
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True,
                          text=True)
    if head.returncode == 0:
        assert env["git_commit"] == head.stdout.strip()
        assert isinstance(env["git_dirty"], bool)
    json.dumps(env)                                            # storable as it is


def test_every_stored_record_carries_its_environment(tmp_path):
    store = ResultStore(tmp_path / "runs.jsonl", key=("name",))
    store.append({"name": "a", "score": 1.0})
    line = json.loads((tmp_path / "runs.jsonl").read_text())
    assert line["environment"] == provenance.environment()
    store.append({"name": "b", "environment": {"given": True}})        # kept when given
    assert ResultStore(store.path, key=("name",)).records()[1]["environment"] == {"given": True}


def test_our_methods_keys_change_with_the_model_code(monkeypatch):
    before = (real_shift.ours_settings({}), methods.attention_settings(),
              results_key(TheorySettings()))
    assert before[0]["code"] == before[1]["code"] == provenance.code_version()
    for module in (real_shift, methods):
        monkeypatch.setattr(module, "code_version", lambda: "0123456789ab")
    import wordexperts.harness.analogy_theory as theory

    monkeypatch.setattr(theory, "code_version", lambda: "0123456789ab")
    after = (real_shift.ours_settings({}), methods.attention_settings(),
             results_key(TheorySettings()))
    assert all(a != b for a, b in zip(before, after, strict=True))


@pytest.mark.parametrize("variable", ["ATEN_CPU_CAPABILITY"])
def test_make_test_reruns_the_kernel_sensitive_tests(variable):
    """The Makefile runs the kernel-sensitive tests under other CPU kernels, and every file
    it names exists (a renamed test file would otherwise drop out silently)."""
    makefile = (ROOT / "Makefile").read_text()
    names = makefile.split("KERNEL_TESTS :=", 1)[1].split("\n# ", 1)[0].replace("\\", " ")
    files = [n for n in names.split() if n.startswith("tests/")]
    assert len(files) >= 8 and all((ROOT / f).is_file() for f in files)
    for capability in ("avx512", "avx2", "default"):
        assert f"{variable}={capability}" in makefile
    assert "NPY_DISABLE_CPU_FEATURES" in makefile


def test_make_installs_the_lock_and_the_lock_is_what_runs():
    """requirements.lock pins the numerical stack and the peers exactly, make installs it,
    and the environment running these tests is the locked one."""
    from importlib.metadata import version

    makefile = (ROOT / "Makefile").read_text()
    assert "-r requirements.lock" in makefile and "--no-deps" in makefile
    pins = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, pinned = line.partition("==")
            assert pinned, f"requirements.lock: {line!r} is not pinned with =="
            pins[name.lower().replace("_", "-")] = pinned
    for name in ("numpy", "scipy", "scikit-learn", "pandas", "torch", "transformers",
                 "tokenizers", "catboost", "lightgbm", "pytorch-tabular", "safetensors"):
        assert name in pins, f"requirements.lock does not pin {name}"
        assert version(name) == pins[name], f"{name} {version(name)} is not the locked {pins[name]}"
