"""Baselines: the paper's encoding, and fast grid searches that select GridSearchCV's model."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from threadpoolctl import threadpool_limits

from wordexperts.datasets import load_auto_mpg, make_shift_simulation
from wordexperts.harness.baselines import (
    PAPER_GRIDS,
    PEER_MODELS,
    PEERS,
    fit_predict_peer,
    grid_search,
    make_baseline,
    one_hot,
    peer_configs,
    peers_available,
    require_peers,
)


@pytest.fixture(autouse=True)
def _one_thread_no_warnings():
    # one BLAS thread (small fits on 2 shared cores); grids warn on tiny classes/convergence
    with threadpool_limits(1), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _tables(n: int, seed: int = 4951):
    train, test = make_shift_simulation(n=n, n_causal=5, corr=0.9, seed=seed)
    A_train, A_test = one_hot(train.drop(columns="y"), test.drop(columns="y"))
    return A_train, train["y"].to_numpy(), A_test


def test_one_hot_is_get_dummies_of_the_stacked_tables():
    rng = np.random.default_rng(0)
    train = pd.DataFrame({"a": rng.integers(0, 4, 30), "b": rng.integers(0, 3, 30)})
    test = pd.DataFrame({"a": rng.integers(2, 6, 20), "b": rng.integers(0, 3, 20)})
    A_train, A_test = one_hot(train, test)
    dummies = pd.get_dummies(pd.concat([train, test]).astype("category"), drop_first=True)
    expected = dummies.to_numpy(dtype=np.float64)
    np.testing.assert_array_equal(np.vstack([A_train, A_test]), expected)


def test_one_hot_rejects_mismatched_columns_and_missing_values():
    with pytest.raises(ValueError, match="'b'"):
        one_hot(pd.DataFrame({"a": [0], "b": [1]}), pd.DataFrame({"a": [0]}))
    with pytest.raises(ValueError, match="'a'"):
        one_hot(pd.DataFrame({"a": [0.0, np.nan]}), pd.DataFrame({"a": [1.0]}))


def test_unknown_baseline_is_a_clear_error():
    with pytest.raises(ValueError, match="name must be one of"):
        make_baseline("svm")
    with pytest.raises(ValueError, match="name must be one of"):
        grid_search("svm", np.zeros((10, 2)), np.zeros(10))


def _assert_same_selection(name, A_train, y_train, A_test, grid=None, seed=7):
    plain = grid_search(name, A_train, y_train, random_state=seed, fast=False, grid=grid)
    fast = grid_search(name, A_train, y_train, random_state=seed, fast=True, grid=grid)
    assert fast.candidates == plain.candidates
    np.testing.assert_array_equal(fast.cv_scores, plain.cv_scores)  # every fold, exactly
    assert fast.best_params_ == plain.best_params_
    assert fast.best_score_ == plain.best_score_
    np.testing.assert_array_equal(fast.best_estimator_.predict(A_test),
                                  plain.best_estimator_.predict(A_test))
    return fast


@pytest.mark.parametrize(("name", "grid"), [
    ("rf", {"criterion": ["gini", "entropy"], "n_estimators": [3, 8, 10],
            "max_depth": [1, 3, None]}),
    ("gb", {"learning_rate": [0.1, 1], "n_estimators": [2, 5, 8], "max_depth": [1, 2]}),
    ("mlp", {"hidden_layer_sizes": [(4,), (8,)], "alpha": [1e-4, 1e-2],
             "learning_rate": ["constant", "adaptive"], "max_iter": [60]}),
])
def test_fast_search_selects_gridsearchcvs_model(name, grid):
    A_train, y_train, A_test = _tables(150)
    fast = _assert_same_selection(name, A_train, y_train, A_test, grid=grid)
    if name == "mlp":  # the two schedules tie under Adam; GridSearchCV keeps the first
        assert fast.best_params_["learning_rate"] == "constant"


def test_untuned_lr_is_fitted_as_is():
    A_train, y_train, A_test = _tables(150)
    plain = grid_search("lr", A_train, y_train, fast=False)
    fast = grid_search("lr", A_train, y_train, fast=True)
    assert fast.best_params_ == plain.best_params_ == {}
    np.testing.assert_array_equal(fast.best_estimator_.predict_proba(A_test),
                                  plain.best_estimator_.predict_proba(A_test))


def test_ties_go_to_the_first_candidate():
    """Constant data: every candidate scores the same, so the first in grid order wins."""
    A = np.zeros((50, 2))
    y = np.repeat([0, 1], 25)
    grid = {"n_estimators": [2, 4], "max_depth": [1, 2]}
    plain = grid_search("gb", A, y, random_state=0, fast=False, grid=grid)
    fast = grid_search("gb", A, y, random_state=0, fast=True, grid=grid)
    assert fast.best_params_ == plain.best_params_ == {"max_depth": 1, "n_estimators": 2}


@pytest.mark.slow
@pytest.mark.parametrize("name", ["rf", "gb", "mlp"])
def test_fast_search_selects_gridsearchcvs_model_at_paper_size(name):
    """The paper's grids on a full simulated table (2000 rows, config 5_0.9_0)."""
    A_train, y_train, A_test = _tables(2000)
    _assert_same_selection(name, A_train, y_train, A_test, grid=PAPER_GRIDS[name], seed=4951)


def test_peers_name_the_missing_package(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "pytorch_tabular" else real(name, *a))
    assert not peers_available()
    train, test = load_auto_mpg()
    with pytest.raises(ImportError, match=r"pip install 'wordexperts\[peers\]'"):
        fit_predict_peer("ft_transformer", train, test)
    with pytest.raises(ImportError, match=r"wordexperts\[peers\]"):
        require_peers()
    with pytest.raises(ValueError, match="name must be one of"):
        fit_predict_peer("node", train, test)


needs_peers = pytest.mark.skipif(not peers_available(),
                                 reason="the peers extra (pytorch_tabular) is absent")


@needs_peers
@pytest.mark.parametrize("name", PEERS)
def test_peer_configs_are_the_authors(name):
    """yixinw-lab/attention-uai, auto-mpg.ipynb: batch 128, 200 epochs, lr 1e-3, a linear head
    without hidden layers, dropout 0.1, kaiming init; CategoryEmbedding "64-32" with ReLU;
    otherwise the library's defaults (Adam, early stopping on the validation loss)."""
    configs = peer_configs(name, features=["a", "b"], seed=7)
    model, trainer = configs.model, configs.trainer
    assert model.task == "classification" and model.learning_rate == 1e-3
    assert model.head == "LinearHead"
    assert {k: model.head_config[k] for k in ("layers", "dropout", "initialization")} == {
        "layers": "", "dropout": 0.1, "initialization": "kaiming"}
    if name == "category_embedding":
        assert (model.layers, model.activation) == ("64-32", "ReLU")
    assert (trainer.batch_size, trainer.max_epochs, trainer.seed) == (128, 200, 7)
    assert (trainer.early_stopping, trainer.early_stopping_patience) == ("valid_loss", 3)
    assert trainer.load_best
    assert configs.optimizer.optimizer == "Adam" and configs.optimizer.lr_scheduler is None
    assert configs.data.categorical_cols == ["a", "b"] and configs.data.continuous_cols == []
    assert type(model).__name__ == PEER_MODELS[name][0]


@needs_peers
def test_peer_fits_and_is_deterministic_even_at_seed_zero():
    # PyTorch Tabular skips seeding for a falsy seed; fit_predict_peer seeds itself
    train, test = load_auto_mpg()
    first = fit_predict_peer("category_embedding", train, test, seed=0, epochs=3)
    second = fit_predict_peer("category_embedding", train, test, seed=0, epochs=3)
    assert first[0].shape == (245,) and first[1].shape == (140,)
    assert set(np.unique(first[1])) <= {0, 1, 2}
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])
