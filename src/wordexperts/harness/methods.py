"""The methods the reproductions compare, by name.

Each method is a callable ``(train, test, seed) -> metrics`` on categorical tables with the
target in column ``y``; ``metrics`` holds train and test accuracy and the paper's MSE between
predicted and true class index, plus any chosen hyperparameters. Its ``settings()`` (what it
fits, as JSON) are hashed by :func:`wordexperts.harness.store.settings_key` into the key of a
finished run, so a changed method is rerun.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from wordexperts.harness import baselines
from wordexperts.harness.provenance import code_version

TARGET = "y"
Metrics = dict[str, Any]


@dataclass(frozen=True)
class Method:
    """A compared method: ``run(train, test, seed)`` -> metrics; ``settings()`` -> JSON-able."""

    name: str
    run: Callable[[pd.DataFrame, pd.DataFrame, int], Metrics]
    settings: Callable[[], dict[str, Any]]
    uses_torch: bool = False


def metrics(y_train: np.ndarray, pred_train: np.ndarray, y_test: np.ndarray,
            pred_test: np.ndarray) -> Metrics:
    """Accuracy and class-index MSE on train and test (the paper's Tables 3-5 metrics).

    >>> metrics(np.array([0, 1]), np.array([0, 1]), np.array([0, 2]), np.array([2, 2]))
    {'acc_train': 1.0, 'acc_test': 0.5, 'mse_train': 0.0, 'mse_test': 2.0}
    """
    out: Metrics = {}
    for split, y, pred in (("train", y_train, pred_train), ("test", y_test, pred_test)):
        y, pred = np.asarray(y), np.asarray(pred)
        out[f"acc_{split}"] = float(np.mean(pred == y))
        out[f"mse_{split}"] = float(np.mean((pred.astype(np.float64) - y) ** 2))
    return {k: out[k] for k in ("acc_train", "acc_test", "mse_train", "mse_test")}


def _split(frame: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    if TARGET not in frame.columns:
        raise ValueError(f"data must have a target column {TARGET!r}")
    return frame.drop(columns=TARGET), frame[TARGET].to_numpy()


# ---------------------------------------------------------------------------------------
# The attention model (wordexperts.tabular.WordExpertsClassifier)

def _classifier(**kwargs: Any):
    try:
        from wordexperts.tabular import WordExpertsClassifier
    except ImportError as exc:
        raise ImportError(
            "the attention method needs wordexperts.tabular.WordExpertsClassifier"
        ) from exc
    return WordExpertsClassifier(**kwargs)


def run_attention(train: pd.DataFrame, test: pd.DataFrame, seed: int, *,
                  preset: str | None = None) -> Metrics:
    """Fit ``WordExpertsClassifier`` (its defaults, or ``preset``) and score it."""
    X_train, y_train = _split(train)
    X_test, y_test = _split(test)
    kwargs = {"preset": preset} if preset else {}
    model = _classifier(random_state=seed, **kwargs).fit(X_train, y_train)
    return metrics(y_train, model.predict(X_train), y_test, model.predict(X_test))


def attention_settings(preset: str | None = None) -> dict[str, Any]:
    kwargs = {"preset": preset} if preset else {}
    # effective: the preset's values filled in, so a changed preset reruns
    params = _classifier(**kwargs).effective_params()
    params.pop("random_state", None)
    # the model code's version: a change of the code refits (docs/reproducibility.md)
    return {"estimator": "WordExpertsClassifier", "params": params, "code": code_version()}


# ---------------------------------------------------------------------------------------
# Tuned scikit-learn baselines

def run_baseline(train: pd.DataFrame, test: pd.DataFrame, seed: int, *, name: str) -> Metrics:
    """Grid-search baseline ``name`` on one-hot features (paper settings) and score it."""
    X_train, y_train = _split(train)
    X_test, y_test = _split(test)
    A_train, A_test = baselines.one_hot(X_train, X_test)
    search = baselines.grid_search(name, A_train, y_train, random_state=seed)
    model = search.best_estimator_
    out = metrics(y_train, model.predict(A_train), y_test, model.predict(A_test))
    out["params"] = json.dumps(search.best_params_, sort_keys=True)
    return out


def baseline_settings(name: str) -> dict[str, Any]:
    params = baselines.make_baseline(name).get_params()
    params.pop("random_state", None)
    return {"grid": baselines.PAPER_GRIDS[name], "params": params,
            "cv": baselines.CV_FOLDS, "encoding": "one-hot, first category dropped"}


# ---------------------------------------------------------------------------------------
# Neural peers through PyTorch Tabular

def run_peer(train: pd.DataFrame, test: pd.DataFrame, seed: int, *, name: str) -> Metrics:
    """Fit PyTorch Tabular's ``name`` with the paper's settings and score it."""
    pred_train, pred_test = baselines.fit_predict_peer(name, train, test, target=TARGET,
                                                       seed=seed)
    return metrics(train[TARGET].to_numpy(), pred_train, test[TARGET].to_numpy(), pred_test)


def peer_settings(name: str) -> dict[str, Any]:
    """The authors' settings of peer ``name`` and the library version (a clear
    ``ImportError`` naming the extra when PyTorch Tabular is missing)."""
    version = baselines.require_peers()
    config_class, params = baselines.PEER_MODELS[name]
    return {"library": "pytorch_tabular", "version": version, "model": config_class,
            "model_params": params, "learning_rate": baselines.PEER_LEARNING_RATE,
            "head": {"LinearHead": baselines.PEER_HEAD}, "trainer": baselines.PEER_TRAINER,
            "rest": "library defaults (20% random validation split, early stopping on "
                    "validation loss, patience 3, best checkpoint restored)"}


METHODS: dict[str, Method] = {
    "attention": Method("attention", run_attention, attention_settings, uses_torch=True),
    "attention_paper": Method(
        "attention_paper",
        functools.partial(run_attention, preset="paper"),
        functools.partial(attention_settings, "paper"),
        uses_torch=True,
    ),
    **{
        name: Method(name, functools.partial(run_baseline, name=name),
                     functools.partial(baseline_settings, name))
        for name in baselines.BASELINES
    },
    **{
        name: Method(name, functools.partial(run_peer, name=name),
                     functools.partial(peer_settings, name), uses_torch=True)
        for name in baselines.PEERS
    },
}

ATTENTION = ("attention", "attention_paper")


def get_methods(names: list[str]) -> list[Method]:
    """The registered methods ``names``, in order; a clear error for an unknown name."""
    unknown = [n for n in names if n not in METHODS]
    if unknown:
        raise ValueError(f"unknown method(s) {unknown}; choose from {sorted(METHODS)}")
    return [METHODS[n] for n in dict.fromkeys(names)]
