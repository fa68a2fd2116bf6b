"""The paper's baselines: tuned scikit-learn models on one-hot features, and neural peers.

Classical baselines (paper Tables 3-5): logistic regression, random forest, gradient boosting
and a multilayer perceptron, each on one-hot features (first category dropped) and tuned by
5-fold stratified grid search on accuracy over the paper's grids (:data:`PAPER_GRIDS`).

:func:`grid_search` selects exactly the model that ``sklearn.model_selection.GridSearchCV``
selects, at a fraction of the cost:

- gradient boosting: one fit per (learning rate, depth, fold) with the largest
  ``n_estimators``; the smaller ones are scored from its staged predictions (the first ``m``
  stages of a boosted model are the ``m``-stage model: the trees draw their seeds in order);
- random forest: one fit per (criterion, depth, fold) with the largest forest; smaller forests
  are its first trees (each tree's seed is drawn in sequence from ``random_state``);
- MLP: ``learning_rate`` only acts with ``solver="sgd"``; under the default Adam the two
  schedules are the same fit, so each is fitted once.

Ties go to the first candidate in grid order, as in ``GridSearchCV``.

Neural peers (paper Table 5): CategoryEmbedding, FT-Transformer, TabTransformer, AutoInt and
TabNet from PyTorch Tabular with the authors' settings (:func:`peer_configs`,
:func:`fit_predict_peer`), installed with ``pip install 'wordexperts[peers]'``.
"""

from __future__ import annotations

import contextlib
import copy
import importlib.metadata
import importlib.util
import logging
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import ClassifierMixin
from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score
from sklearn.model_selection import GridSearchCV, ParameterGrid, StratifiedKFold
from sklearn.neural_network import MLPClassifier

__all__ = [
    "BASELINES",
    "PAPER_GRIDS",
    "PEERS",
    "PEER_HEAD",
    "PEER_LEARNING_RATE",
    "PEER_MODELS",
    "PEER_TRAINER",
    "PeerConfigs",
    "SearchResult",
    "fit_predict_peer",
    "grid_search",
    "make_baseline",
    "one_hot",
    "peer_configs",
    "peers_available",
    "require_peers",
]

BASELINES: tuple[str, ...] = ("lr", "rf", "gb", "mlp")

# The paper's grids (simulation.md); LR is not tuned.
PAPER_GRIDS: dict[str, dict[str, list[Any]]] = {
    "lr": {},
    "rf": {
        "criterion": ["gini", "entropy"],
        "n_estimators": [50, 100, 200],
        "max_depth": [1, 3, None],
    },
    "gb": {
        "learning_rate": [0.01, 0.1, 1],
        "n_estimators": [50, 100, 200],
        "max_depth": [1, 3, 5],
    },
    "mlp": {
        "hidden_layer_sizes": [(50,), (100,), (100, 50)],
        "alpha": [1e-4, 1e-3, 1e-2],
        "learning_rate": ["constant", "adaptive"],
    },
}

CV_FOLDS = 5


def make_baseline(name: str, *, random_state: int | None = None, **params: Any) -> ClassifierMixin:
    """The paper's unfitted baseline ``name`` (one of :data:`BASELINES`); ``params`` set or
    override its parameters.

    >>> make_baseline("gb", random_state=0, max_depth=1).get_params()["max_depth"]
    1
    """
    if name == "lr":
        # NOTE: differs from the paper: tol=1e-6 (the authors: scikit-learn's default 1e-4).
        # scikit-learn >= 1.1 stops L-BFGS on the gradient of the *mean* loss, far earlier
        # than the paper's version did; tol=1e-6 reaches the optimum the paper's fits reached
        # (per-seed test accuracy within 0.001 of the paper's instead of 0.005).
        return LogisticRegression(**({"max_iter": 2000, "tol": 1e-6} | params))
    if name == "rf":
        return RandomForestClassifier(**({"random_state": random_state} | params))
    if name == "gb":
        return GradientBoostingClassifier(**({"random_state": random_state} | params))
    if name == "mlp":
        return MLPClassifier(**({"max_iter": 2000, "learning_rate_init": 0.01,
                                 "random_state": random_state} | params))
    raise ValueError(f"name must be one of {BASELINES}, got {name!r}")


def one_hot(
    train: pd.DataFrame, test: pd.DataFrame, *, drop_first: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """One-hot float64 matrices of ``train`` and ``test`` over the categories of both.

    Same columns and order as ``pd.get_dummies`` on the two tables stacked (each column's
    categories sorted, the first dropped), the paper's encoding.

    >>> a, b = one_hot(pd.DataFrame({"c": [0, 1]}), pd.DataFrame({"c": [2, 0]}))
    >>> a.tolist(), b.tolist()
    ([[0.0, 0.0], [1.0, 0.0]], [[0.0, 1.0], [0.0, 0.0]])
    """
    if list(train.columns) != list(test.columns):
        missing = set(train.columns) ^ set(test.columns)
        raise ValueError(
            f"test must have train's columns in order; differing columns: {sorted(missing)}"
            if missing else "test must have train's columns in the same order"
        )
    # NOTE: differs from the paper: the authors call pd.get_dummies on train and test
    # separately; the columns agree whenever both tables hold every category (the paper's
    # data: auto-mpg's test columns are declared with all three codes).
    blocks: list[tuple[np.ndarray, np.ndarray]] = []
    for column in train.columns:
        values = pd.concat([train[column], test[column]], ignore_index=True)
        if values.isna().any():
            raise ValueError(f"column {column!r} has missing values")
        categories = np.sort(values.unique())[1 if drop_first else 0:]
        blocks.append(
            tuple(
                (frame[column].to_numpy()[:, None] == categories[None, :]).astype(np.float64)
                for frame in (train, test)
            )
        )
    return (
        np.hstack([b[0] for b in blocks]) if blocks else np.zeros((len(train), 0)),
        np.hstack([b[1] for b in blocks]) if blocks else np.zeros((len(test), 0)),
    )


@dataclass
class SearchResult:
    """Outcome of :func:`grid_search`, named as ``GridSearchCV``'s attributes."""

    best_params_: dict[str, Any]
    best_estimator_: ClassifierMixin
    candidates: list[dict[str, Any]]
    cv_scores: np.ndarray  # (n_candidates, n_folds) validation accuracy; empty when untuned

    @property
    def best_score_(self) -> float:
        """Mean validation accuracy of the selected candidate (NaN when untuned)."""
        if self.cv_scores.size == 0:
            return float("nan")
        return float(np.average(self.cv_scores[self.candidates.index(self.best_params_)]))


def _shortcuts(name: str, grid: dict[str, list[Any]]) -> tuple[str | None, frozenset[str]]:
    """The grid parameter scored from one fit's prefixes (``n_estimators`` of boosting without
    early stopping, and of forests), and the grid parameters the fit ignores (the MLP's
    ``learning_rate`` unless the solver is SGD)."""
    staged = None
    if "n_estimators" in grid and (name == "rf" or
                                   (name == "gb" and "n_iter_no_change" not in grid)):
        staged = "n_estimators"
    ignored = frozenset()
    if name == "mlp" and "solver" not in grid and make_baseline(name).solver != "sgd":
        ignored = frozenset({"learning_rate"})
    return staged, ignored


def _fast_cv_scores(
    name: str,
    X: np.ndarray,
    y: np.ndarray,
    grid: dict[str, list[Any]],
    folds: list[tuple[np.ndarray, np.ndarray]],
    random_state: int | None,
) -> np.ndarray:
    """Validation accuracy of every candidate of ``grid`` (in ``ParameterGrid`` order) on
    every fold, one fit per group of candidates that differ only in the staged parameter or
    in ignored ones."""
    candidates = list(ParameterGrid(grid))
    staged, ignored = _shortcuts(name, grid)
    groups: dict[tuple, list[int]] = {}
    for i, params in enumerate(candidates):
        key = tuple(sorted((k, v) for k, v in params.items() if k != staged and k not in ignored))
        groups.setdefault(key, []).append(i)

    scores = np.empty((len(candidates), len(folds)))
    for key, members in groups.items():
        sizes = sorted({candidates[i][staged] for i in members}) if staged else []
        fit_params = dict(key) | ({staged: sizes[-1]} if staged else {})
        for f, (fit_idx, val_idx) in enumerate(folds):
            model = make_baseline(name, random_state=random_state, **fit_params)
            model.fit(X[fit_idx], y[fit_idx])
            if staged and name == "gb":
                wanted = set(sizes)
                preds = {
                    m: p for m, p in enumerate(model.staged_predict(X[val_idx]), 1) if m in wanted
                }
            elif staged:
                preds = {m: _first_trees(model, m).predict(X[val_idx]) for m in sizes}
            else:
                preds = {None: model.predict(X[val_idx])}
            for i in members:
                pred = preds[candidates[i][staged] if staged else None]
                scores[i, f] = accuracy_score(y[val_idx], pred)
    return scores


def _first_trees(forest: RandomForestClassifier, m: int) -> RandomForestClassifier:
    """The forest of ``forest``'s first ``m`` trees: what ``n_estimators=m`` would have grown."""
    prefix = copy.copy(forest)
    prefix.estimators_ = forest.estimators_[:m]
    prefix.n_estimators = m
    return prefix


def grid_search(
    name: str,
    X: np.ndarray,
    y: np.ndarray,
    *,
    random_state: int | None = None,
    fast: bool = True,
    grid: dict[str, list[Any]] | None = None,
) -> SearchResult:
    """Tune baseline ``name`` on ``(X, y)`` by 5-fold stratified grid search on accuracy over
    ``grid`` (default: the paper's, :data:`PAPER_GRIDS`) and refit the best candidate on all
    of ``(X, y)``.

    ``fast=False`` runs ``GridSearchCV`` itself; ``fast=True`` selects the same candidate
    (same fold scores, same tie-breaking) with fewer fits, see the module docstring. An
    untuned model (LR: an empty grid) is simply fitted.
    """
    if name not in BASELINES:
        raise ValueError(f"name must be one of {BASELINES}, got {name!r}")
    X, y = np.asarray(X), np.asarray(y)
    if X.ndim != 2 or len(X) != len(y):
        raise ValueError(f"X must be 2-D with len(y) = {len(y)} rows, got shape {X.shape}")
    grid = PAPER_GRIDS[name] if grid is None else grid
    # NOTE: differs from the paper: unshuffled folds; the authors' baseline_results.py uses
    # StratifiedKFold(5, shuffle=True, random_state=seed), so RF, GB and MLP may select other
    # candidates than the paper's fits on the same data (LR is untuned and matches per seed).
    cv = StratifiedKFold(n_splits=CV_FOLDS)
    if not fast:
        search = GridSearchCV(
            make_baseline(name, random_state=random_state), grid, cv=cv, scoring="accuracy"
        ).fit(X, y)
        scores = np.column_stack(
            [search.cv_results_[f"split{f}_test_score"] for f in range(CV_FOLDS)]
        )
        return SearchResult(
            search.best_params_, search.best_estimator_, list(search.cv_results_["params"]),
            scores,
        )
    # NOTE: differs from the paper: the authors ran GridSearchCV; the fast search selects
    # the same candidate from the same fold scores with fewer fits (tests/test_baselines.py).
    candidates = list(ParameterGrid(grid))
    if len(candidates) == 1:
        scores = np.empty((1, 0))
        best = candidates[0]
    else:
        scores = _fast_cv_scores(name, X, y, grid, list(cv.split(X, y)), random_state)
        # GridSearchCV: mean over folds, rank with ties at the minimum rank, first best wins.
        best = candidates[int(np.argmax(np.average(scores, axis=1)))]
    estimator = make_baseline(name, random_state=random_state, **best).fit(X, y)
    return SearchResult(best, estimator, candidates, scores)


# ----------------------------------------------------------------------------------------
# Neural peers (paper Table 5) through PyTorch Tabular, fitted the authors' way

PEERS: tuple[str, ...] = (
    "category_embedding", "ft_transformer", "tab_transformer", "autoint", "tabnet",
)

# The authors' settings, read from yixinw-lab/attention-uai,
# tabular-experiment/auto-mpg/auto-mpg.ipynb (PyTorch Tabular 1.0.1): every peer gets
# learning_rate=1e-3, a linear head without hidden layers, dropout 0.1 and kaiming
# initialization; CategoryEmbedding gets layers "64-32" with ReLU; the rest are the library's
# defaults (Adam without a scheduler; a random 20% of train for validation, early stopping on
# the validation loss with patience 3, the best checkpoint restored).
PEER_TRAINER: dict[str, Any] = {"batch_size": 128, "max_epochs": 200}
PEER_HEAD: dict[str, Any] = {"layers": "", "dropout": 0.1, "initialization": "kaiming"}
PEER_LEARNING_RATE = 1e-3
PEER_MODELS: dict[str, tuple[str, dict[str, Any]]] = {
    "category_embedding": ("CategoryEmbeddingModelConfig",
                           {"layers": "64-32", "activation": "ReLU"}),
    "ft_transformer": ("FTTransformerConfig", {}),
    "tab_transformer": ("TabTransformerConfig", {}),
    "autoint": ("AutoIntConfig", {}),
    # TabNet's backbone ends in its own output layer: PyTorch Tabular replaces any head by
    # the identity, so the head settings are accepted and unused (as in the authors' run).
    "tabnet": ("TabNetModelConfig", {}),
}
PEERS_EXTRA = "pip install 'wordexperts[peers]'"


def peers_available() -> bool:
    """Whether PyTorch Tabular (the ``peers`` extra) is installed."""
    return importlib.util.find_spec("pytorch_tabular") is not None


def require_peers() -> str:
    """PyTorch Tabular's version; an ``ImportError`` saying what to install without it."""
    if peers_available():
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            return importlib.metadata.version("pytorch_tabular")
    raise ImportError(f"the neural peers need PyTorch Tabular: {PEERS_EXTRA}")


@dataclass(frozen=True)
class PeerConfigs:
    """The four PyTorch Tabular configurations of one peer fit."""

    data: Any
    model: Any
    optimizer: Any
    trainer: Any


def peer_configs(
    name: str,
    *,
    features: list[str],
    target: str = "y",
    seed: int = 0,
    checkpoints_path: str = "checkpoints",
) -> PeerConfigs:
    """PyTorch Tabular's configurations of peer ``name`` (one of :data:`PEERS`) with the
    authors' settings (:data:`PEER_MODELS`, :data:`PEER_HEAD`, :data:`PEER_TRAINER`) for a
    table whose columns ``features`` are all categorical.
    """
    if name not in PEERS:
        raise ValueError(f"name must be one of {PEERS}, got {name!r}")
    require_peers()
    from pytorch_tabular import models
    from pytorch_tabular.config import DataConfig, OptimizerConfig, TrainerConfig
    from pytorch_tabular.models.common.heads import LinearHeadConfig

    if name == "tabnet" and importlib.util.find_spec("pytorch_tabnet") is None:
        raise ImportError(f"the TabNet peer needs pytorch-tabnet: {PEERS_EXTRA}")
    config_class, params = PEER_MODELS[name]
    head = LinearHeadConfig(**PEER_HEAD).__dict__
    model = getattr(models, config_class)(
        task="classification", learning_rate=PEER_LEARNING_RATE, head="LinearHead",
        head_config=head, **params,
    )
    trainer = TrainerConfig(
        **PEER_TRAINER,
        # NOTE: differs from the paper: the authors' accelerator="auto" found no GPU; ours
        # is the CPU by name, one run per seed 0..K-1 instead of one run at seed 42.
        accelerator="cpu",
        devices=1,
        seed=seed,
        checkpoints_path=checkpoints_path,
        progress_bar="none",
        trainer_kwargs={"enable_model_summary": False},
    )
    return PeerConfigs(
        data=DataConfig(target=[target], continuous_cols=[], categorical_cols=list(features)),
        model=model, optimizer=OptimizerConfig(), trainer=trainer,
    )


@contextlib.contextmanager
def _quiet_lightning() -> Iterator[None]:
    """PyTorch Lightning's banners (accelerators, tips) at INFO: hidden during one fit."""
    loggers = [logging.getLogger(n) for n in ("pytorch_lightning", "lightning.pytorch",
                                               "lightning_fabric", "pytorch_tabular")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def fit_predict_peer(
    name: str,
    train: pd.DataFrame,
    test: pd.DataFrame,
    *,
    target: str = "y",
    seed: int = 0,
    epochs: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Fit PyTorch Tabular's model ``name`` (one of :data:`PEERS`) as the authors did
    (:func:`peer_configs`) and return predicted classes for ``train`` and ``test``.

    ``seed`` fixes the validation split, the initialization and the batches; ``epochs``
    overrides the 200 epochs (for quick checks). Checkpoints and PyTorch Tabular's run
    registry go to a temporary folder that is removed afterwards.
    """
    if name not in PEERS:
        raise ValueError(f"name must be one of {PEERS}, got {name!r}")
    require_peers()
    if target not in train.columns or target not in test.columns:
        raise ValueError(f"target column {target!r} missing from train or test")
    from pytorch_lightning import seed_everything
    from pytorch_tabular import TabularModel

    features = [c for c in train.columns if c != target]
    with (tempfile.TemporaryDirectory(prefix="wordexperts-peer-") as tmp, contextlib.chdir(tmp),
          _quiet_lightning()):
        configs = peer_configs(name, features=features, target=target, seed=seed,
                               checkpoints_path=os.path.join(tmp, "checkpoints"))
        model = TabularModel(data_config=configs.data, model_config=configs.model,
                             optimizer_config=configs.optimizer,
                             trainer_config=configs.trainer, verbose=False)
        # TabularModel.fit skips seeding for a falsy seed (0): seed every generator here.
        seed_everything(seed, verbose=False)
        model.fit(train=train, seed=seed, max_epochs=epochs)
        column = f"{target}_prediction"
        return (
            model.predict(train)[column].to_numpy(dtype=np.int64),
            model.predict(test)[column].to_numpy(dtype=np.int64),
        )
