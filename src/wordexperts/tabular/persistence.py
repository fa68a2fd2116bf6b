"""Saving and loading a fitted :class:`WordExpertsClassifier`: safetensors + JSON, no pickle.

A saved model is a folder with ``model.safetensors`` (the weights, each binned column's
edges and bin values) and ``model.json`` (the format and library versions, parameters, the
settings the fit resolved, config, categories, vocabulary, history). :func:`save` writes a
new folder beside ``path`` and moves it into place only when it is complete: a failed save
leaves nothing behind, and a model already at ``path`` stays intact until then.
:func:`load` checks what it reads: another format version, a file that does not parse, or
fields that disagree with each other (say, a class list shorter than the target's words)
raise a ``ValueError`` naming the file, the field or both versions.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.numpy import load_file, save_file

from wordexperts.core.attention import AttentionConfig, BidirectionalAttention
from wordexperts.core.loop import History
from wordexperts.tabular.encoding import Column, TableEncoder

__all__ = ["FORMAT", "FORMAT_VERSION", "load", "save"]

#: The file format: its name and version. 3: ``settings`` (the fit's resolved settings) and
#: ``library_version``; a loaded model no longer derives anything from today's presets.
#: 4: the calibration ``temperature``, the cross-fitted losses, and each numeric column's
#: ``reach`` (``numeric="linear"``).
FORMAT_NAME, FORMAT_VERSION = "wordexperts.WordExpertsClassifier", 4
FORMAT = f"{FORMAT_NAME}/{FORMAT_VERSION}"
WEIGHTS, META = "model.safetensors", "model.json"


def save(clf: Any, path: str | Path) -> None:
    """Write the fitted ``clf`` to the folder ``path``, atomically: the files are written to
    a new folder beside it, which replaces ``path`` only once complete."""
    from wordexperts import __version__

    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"cannot save to {path}: it is a file, not a folder")
    encoder = clf.encoder_
    tensors = {f"model.{k}": v.detach().cpu().numpy() for k, v in clf.model_.state_dict().items()}
    columns = []
    for j, column in enumerate(encoder.columns):
        entry: dict[str, Any] = {"name": column.name,
                                 "categories": _to_json_list(column.categories, column.name),
                                 "dtype": column.categories.dtype.str}
        if column.numeric:
            tensors[f"column.{j}.edges"] = column.edges
            tensors[f"column.{j}.bin_values"] = column.bin_values
            entry["n_bins"] = len(column.categories)
            entry["binned"] = column.binned
            entry["reach"] = column.reach
        columns.append(entry)
    params, unsaved = _json_params(clf.get_params())
    meta = {
        "format": FORMAT,
        "library_version": __version__,
        "params": params,
        "params_not_saved": unsaved,
        "settings": clf.settings_,
        "config": clf.model_.config.to_dict(),
        "classes": _to_json_list(clf.classes_, "y"),
        "classes_dtype": clf.classes_.dtype.str,
        "columns": columns,
        "vocabulary": encoder.vocabulary,
        "words": [w.tolist() for w in encoder.words],
        "n_features_in": clf.n_features_in_,
        "target_name": getattr(clf, "target_name_", None),
        "feature_names_in": (list(clf.feature_names_in_)
                             if hasattr(clf, "feature_names_in_") else None),
        "history": clf.history_.to_dict(),
        "n_restarts": clf.n_restarts_,
        "objective": clf.objective_,
        "objective_losses": clf.objective_losses_,
        "temperature": clf.temperature_,
        "cross_fit_losses": clf.cross_fit_losses_,
    }
    text = json.dumps(meta, indent=1)         # fails here, before anything is written
    path.parent.mkdir(parents=True, exist_ok=True)
    new = Path(tempfile.mkdtemp(prefix=f".{path.name}.saving-", dir=path.parent))
    try:
        save_file(tensors, str(new / WEIGHTS))
        (new / META).write_text(text)
        _replace_folder(new, path)
    except BaseException:
        shutil.rmtree(new, ignore_errors=True)
        raise


def _replace_folder(new: Path, path: Path) -> None:
    """Move the complete folder ``new`` to ``path``; an existing ``path`` is set aside first
    and removed only after the move (on failure it is put back)."""
    if not path.exists():
        os.replace(new, path)
        return
    old = path.with_name(f".{path.name}.replaced-{os.getpid()}")
    os.replace(path, old)
    try:
        os.replace(new, path)
    except BaseException:
        os.replace(old, path)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _json_params(params: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """The JSON-able parameters, and the others (a NumPy generator as ``random_state``) by
    their ``repr``: saved as ``None``, as they play no part in predictions."""
    kept, unsaved = {}, {}
    for name, value in params.items():
        try:
            json.dumps(value)
        except TypeError:
            kept[name], unsaved[name] = None, repr(value)
        else:
            kept[name] = value
    return kept, unsaved


class _Invalid(ValueError):
    pass


def load(cls: type, path: str | Path) -> Any:
    """Read a model written by :func:`save` (``path``: its folder, or a file in it)."""
    path = Path(path)
    if path.is_file() and path.name in (WEIGHTS, META):
        path = path.parent
    elif path.is_file():
        raise ValueError(f"{path} is a file, not a saved model: give the folder that "
                         f"WordExpertsClassifier.save wrote ({META} + {WEIGHTS})")
    elif not path.exists():
        raise FileNotFoundError(f"no saved model at {path}: the folder does not exist")
    meta_file, weights_file = path / META, path / WEIGHTS
    for file in (meta_file, weights_file):
        if not file.is_file():
            raise FileNotFoundError(f"{path} is not a saved model: {file.name} is missing")
    try:
        meta = json.loads(meta_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{meta_file} is not a valid saved model: not JSON ({exc})") from exc
    _check_format(meta, meta_file)
    try:
        tensors = load_file(str(weights_file))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ValueError(f"{weights_file} is not a valid saved model: {exc}") from exc
    try:
        return _build(cls, meta, tensors)
    except _Invalid as exc:
        raise ValueError(f"{path} is not a valid saved model: {exc}") from None
    except (KeyError, TypeError) as exc:
        raise ValueError(f"{meta_file} is not a valid saved model: bad or missing field "
                         f"{exc}") from None


def _check_format(meta: Any, meta_file: Path) -> None:
    """Raise unless ``meta`` is of this format version, naming both versions."""
    from wordexperts import __version__

    found = meta.get("format") if isinstance(meta, dict) else None
    name, _, version = str(found).rpartition("/")
    if name != FORMAT_NAME:
        raise ValueError(f"{meta_file} is not a valid saved model: not a saved "
                         f"WordExpertsClassifier (format {found!r}, expected {FORMAT!r})")
    if version != str(FORMAT_VERSION):
        written = meta.get("library_version", "0.1.x")
        raise ValueError(
            f"{meta_file} is a WordExpertsClassifier of format version {version} (written by "
            f"wordexperts {written}); this wordexperts {__version__} reads format version "
            f"{FORMAT_VERSION}: refit the model (or load it with wordexperts {written}) "
            "and save it again")


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise _Invalid(message)


def _build(cls: type, meta: dict, tensors: dict[str, np.ndarray]) -> Any:
    clf = cls(**meta["params"])
    try:
        config = AttentionConfig(**meta["config"])
    except ValueError as exc:
        raise _Invalid(f"field 'config' in {META}: {exc}") from None
    n_features = meta["n_features_in"]
    columns, words = meta["columns"], meta["words"]
    classes = _from_json_list(meta["classes"], meta["classes_dtype"])
    _check(config.seq_len == n_features + 1 == len(columns) + 1 == len(words),
           f"{META} disagrees with itself: config.seq_len={config.seq_len}, "
           f"n_features_in={n_features}, {len(columns)} 'columns', {len(words)} 'words' "
           "(expected features + 1 target positions)")
    _check(len(classes) == len(words[-1]) >= 2,
           f"field 'classes' in {META} has {len(classes)} entries but the target has "
           f"{len(words[-1])} words")
    names = meta["feature_names_in"]
    _check(names is None or len(names) == n_features,
           f"field 'feature_names_in' in {META} has {len(names or [])} names for "
           f"{n_features} features")
    model = BidirectionalAttention(config)
    state = {k[len("model."):]: torch.from_numpy(v) for k, v in tensors.items()
             if k.startswith("model.")}
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise _Invalid(f"the weights in {WEIGHTS} do not fit field 'config' in {META}: "
                       f"{str(exc).splitlines()[0]} ...") from None
    model.eval()
    encoder_columns = []
    for j, entry in enumerate(columns):
        if "n_bins" in entry:
            edges, bin_values = tensors.get(f"column.{j}.edges"), tensors.get(
                f"column.{j}.bin_values")
            _check(edges is not None and bin_values is not None
                   and len(edges) + 1 == len(bin_values) == entry["n_bins"],
                   f"binned column {entry['name']!r}: its edges and bin values in {WEIGHTS} "
                   f"do not give {entry['n_bins']} bins")
            categories = (_from_json_list(entry["categories"], entry["dtype"])
                          if "categories" in entry else np.arange(entry["n_bins"]))
            column = Column(entry["name"], categories, edges=edges, bin_values=bin_values,
                            binned=bool(entry["binned"]), reach=float(entry["reach"]))
        else:
            column = Column(entry["name"], _from_json_list(entry["categories"], entry["dtype"]))
        _check(len(column.categories) == len(words[j]),
               f"column {column.name!r} has {len(column.categories)} categories in {META} "
               f"but {len(words[j])} entries in field 'words'")
        encoder_columns.append(column)
    words = [np.array(w, dtype=np.int64) for w in words]
    _check(all(len(w) and w.min() >= 0 and w.max() < config.vocab_size for w in words),
           f"field 'words' in {META} holds ids outside 0..vocab_size-1 = "
           f"0..{config.vocab_size - 1}")
    settings = meta["settings"]
    _check(isinstance(settings, dict) and settings.get("numeric") in ("interpolate", "linear",
                                                                      "bin", "error"),
           f"field 'settings' in {META} lacks a valid 'numeric' reading")
    clf.encoder_ = TableEncoder(encoder_columns, classes, meta["vocabulary"], words,
                                config.vocab_size, settings["numeric"],
                                settings["handle_unknown"])
    clf.settings_ = settings
    clf.model_ = model
    clf.classes_ = classes
    clf.n_features_in_ = n_features
    if names is not None:
        clf.feature_names_in_ = np.array(names, dtype=object)
    if meta["target_name"] is not None:
        clf.target_name_ = meta["target_name"]
    clf.history_ = History.from_dict(meta["history"])
    clf.n_restarts_ = meta["n_restarts"]
    clf.objective_ = meta["objective"]
    clf.objective_losses_ = {str(k): float(v) for k, v in meta["objective_losses"].items()}
    temperature = meta["temperature"]
    _check(isinstance(temperature, int | float) and not isinstance(temperature, bool)
           and np.isfinite(temperature) and temperature > 0,
           f"field 'temperature' in {META} must be a positive number, got {temperature!r}")
    clf.temperature_ = float(temperature)
    clf.cross_fit_losses_ = {str(k): float(v) for k, v in meta["cross_fit_losses"].items()}
    return clf


def _to_json_list(values: np.ndarray, name: str) -> list:
    out = []
    for v in values.tolist():
        if not (v is None or isinstance(v, str | bool | int | float)):
            raise ValueError(f"cannot save column {name!r}: category {v!r} of type "
                             f"{type(v).__name__} is not a JSON string, number or bool")
        out.append(v)
    return out


def _from_json_list(values: list, dtype: str) -> np.ndarray:
    return np.array(values, dtype=object if dtype == "|O" else np.dtype(dtype))
