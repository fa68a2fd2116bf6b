"""Calibrated probabilities, the linear reading of numeric columns and the step floor."""

import copy

import numpy as np
import pandas as pd
import pytest
import torch

from wordexperts import WordExpertsClassifier
from wordexperts.tabular.calibration import (
    calibrated,
    expected_calibration_error,
    fit_temperature,
    reliability,
    stratified_folds,
)
from wordexperts.tabular.encoding import LINEAR_REACH, TableEncoder
from wordexperts.tabular.explain import mixture_contributions
from wordexperts.tabular.solver import position_log_proba

TOL = 1e-10


def measurements(n: int, seed: int, shift: float = 0.0) -> tuple[pd.DataFrame, np.ndarray]:
    """A small table of two correlated measurements whose class is their contrast (as the
    crabs' rear width against carapace length), plus a categorical column of noise."""
    rng = np.random.default_rng(seed)
    size = rng.normal(10 + shift, 2, n)
    cls = rng.integers(0, 2, n)
    width = 0.4 * size + 0.6 * cls + rng.normal(0, 0.15, n)
    X = pd.DataFrame({"length": size, "width": width,
                      "colour": rng.choice(["red", "blue"], n)})
    return X, np.array(["F", "M"])[cls]


@pytest.fixture(scope="module")
def table():
    return measurements(160, seed=0)


@pytest.fixture(scope="module")
def pair(table):
    """The default (calibrated) fit and the same fit without calibration."""
    X, y = table
    params = {"epochs": 10, "min_steps": 30, "numeric": "interpolate", "random_state": 3}
    return (WordExpertsClassifier(**params).fit(X, y),
            WordExpertsClassifier(**params, calibration="none").fit(X, y))


def test_temperature_is_fitted_and_recovers_a_known_scale():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(4000, 4))
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    y = (rng.random((4000, 1)) > p.cumsum(1)).sum(1)
    assert abs(fit_temperature(2.5 * logits, y) - 2.5) < 0.15
    assert abs(fit_temperature(logits, y) - 1.0) < 0.06
    out = calibrated(2.5 * logits, 2.5)
    assert np.abs(np.exp(out).sum(1) - 1).max() < 1e-12
    assert (out.argmax(1) == logits.argmax(1)).all()
    with pytest.raises(ValueError, match="fit_temperature needs"):
        fit_temperature(logits, y[:-1])


def test_calibrated_probabilities_sum_to_one_and_keep_the_uncalibrated_argmax(pair, table):
    calibrated_clf, plain = pair
    X, _ = table
    assert plain.temperature_ == 1.0 and calibrated_clf.temperature_ != 1.0
    # the kept model is the same fit: the cross-fitting draws from its own generator
    for a, b in zip(calibrated_clf.model_.state_dict().values(),
                    plain.model_.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    test, _ = measurements(300, seed=9, shift=3.0)
    proba = calibrated_clf.predict_proba(test)
    assert np.abs(proba.sum(1) - 1).max() < 1e-6
    np.testing.assert_array_equal(calibrated_clf.predict(test), plain.predict(test))
    log_p, ref = calibrated_clf.predict_log_proba(test), plain.predict_log_proba(test)
    np.testing.assert_allclose(log_p, calibrated(ref, calibrated_clf.temperature_),
                               rtol=1e-5, atol=1e-6)


def test_the_temperature_comes_from_rows_the_kept_model_did_not_train_on(table):
    X, y = table
    # cross-fitted on a small table: the losses of the reading tried
    clf = WordExpertsClassifier(epochs=10, min_steps=30, numeric="interpolate",
                                random_state=0).fit(X, y)
    assert list(clf.cross_fit_losses_) == ["interpolate"]
    # where the fit holds rows out anyway (early stopping), they give the temperature
    held = WordExpertsClassifier(epochs=10, min_steps=30, numeric="interpolate",
                                 early_stopping=True, random_state=0).fit(X, y)
    assert held.cross_fit_losses_ == {} and held.temperature_ != 1.0
    # the same seed, the same temperature
    again = WordExpertsClassifier(epochs=10, min_steps=30, numeric="interpolate",
                                  random_state=0).fit(X, y)
    assert again.temperature_ == clf.temperature_


def test_the_decomposition_of_the_calibrated_prediction_is_exact(pair, table):
    clf = copy.deepcopy(pair[0])
    clf.model_ = clf.model_.double().eval()
    X, _ = table
    parts = mixture_contributions(clf, X)
    ids, soft = clf.encoder_.inputs(X)                 # the model's own reading, float64
    log_p = position_log_proba(clf.model_, ids, clf.words_[-1], ids.shape[1] - 1, soft)
    expected = calibrated(log_p, clf.temperature_)
    got = parts.class_logits - parts.class_logits.max(1, keepdims=True)
    got = got - np.log(np.exp(got).sum(1, keepdims=True))
    assert np.abs(got - expected).max() <= TOL


def test_linear_reading_extrapolates_and_is_chosen_on_cross_fitted_loss(table):
    X, y = table
    enc = TableEncoder.fit(X, np.array(["F", "M"]), numeric="linear", n_bins=10,
                           vocabulary="auto", handle_unknown="mask")
    length = enc.columns[0]
    assert len(length.categories) == 2 and length.reach == LINEAR_REACH
    assert enc.columns[2].reach == 0.0                   # a categorical column
    few = TableEncoder.fit(pd.DataFrame({"n": [1, 2, 3, 2]}), np.array(["F", "M"]),
                           numeric="linear", n_bins=10, vocabulary="auto",
                           handle_unknown="mask").columns[0]
    assert few.reach == 0.0 and len(few.categories) == 3   # a few codes: as interpolated
    far = pd.DataFrame({"length": [length.bin_values[1] + 2 * np.diff(length.bin_values)[0],
                                   1e9], "width": [4.0, 4.0], "colour": ["red", "red"]})
    ids, soft = enc.inputs(far)
    # 2 bin-distances past the upper median: input 3 E[upper] - 2 E[lower]
    assert soft.frac[0, 0] == pytest.approx(3.0)
    assert soft.frac[1, 0] == pytest.approx(1 + LINEAR_REACH)     # clipped at the reach
    clf = WordExpertsClassifier(epochs=10, min_steps=60, random_state=0).fit(X, y)
    assert set(clf.cross_fit_losses_) == {"interpolate", "linear"}
    best = min(clf.cross_fit_losses_, key=clf.cross_fit_losses_.get)
    assert clf.settings_["numeric"] == clf.encoder_.numeric == best


def test_auto_reading_needs_a_numeric_column_of_more_than_n_bins_values():
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.choice(["x", "y", "z"], 120), "b": rng.integers(0, 10, 120)})
    y = np.where(X["a"] == "x", "p", "q")
    clf = WordExpertsClassifier(epochs=3, min_steps=10, random_state=0).fit(X, y)
    assert list(clf.cross_fit_losses_) == ["interpolate"]
    assert clf.settings_["numeric"] == "interpolate"


def test_saved_calibrated_linear_model_predicts_bit_identically(table, tmp_path):
    X, y = table
    clf = WordExpertsClassifier(epochs=10, min_steps=30, numeric="linear",
                                random_state=0).fit(X, y)
    clf.save(tmp_path / "m")
    back = WordExpertsClassifier.load(tmp_path / "m")
    assert back.temperature_ == clf.temperature_
    assert back.encoder_.columns[0].reach == LINEAR_REACH
    test, _ = measurements(50, seed=5, shift=5.0)
    np.testing.assert_array_equal(back.predict_proba(test), clf.predict_proba(test))


def test_step_floor_lengthens_small_fits_only(table):
    X, y = table                       # 160 rows: 2 steps an epoch
    short = WordExpertsClassifier(epochs=5, min_steps=1, calibration="none",
                                  numeric="interpolate", random_state=0).fit(X, y)
    floored = WordExpertsClassifier(epochs=5, min_steps=50, calibration="none",
                                    numeric="interpolate", random_state=0).fit(X, y)
    assert short.history_.step[-1] == 10 and floored.history_.step[-1] == 50
    # given epochs are taken as asked; a floor above max_steps stops at max_steps
    asked = WordExpertsClassifier(epochs=5, calibration="none", numeric="interpolate",
                                  random_state=0).fit(X, y)
    capped = WordExpertsClassifier(epochs=5, min_steps=50, max_steps=20, calibration="none",
                                   numeric="interpolate", random_state=0).fit(X, y)
    assert asked.history_.step[-1] == 10 and capped.history_.step[-1] == 20
    with pytest.raises(ValueError, match="min_steps"):
        WordExpertsClassifier(min_steps=0).fit(X, y)
    with pytest.raises(ValueError, match="calibration"):
        WordExpertsClassifier(calibration="platt").fit(X, y)


def test_reliability_and_expected_calibration_error():
    rng = np.random.default_rng(0)
    p1 = rng.random(5000)
    y = (rng.random(5000) < p1).astype(int)
    proba = np.column_stack([1 - p1, p1])
    assert expected_calibration_error(proba, y) < 0.03       # calibrated by construction
    sharp = np.column_stack([1 - (p1 > 0.5), p1 > 0.5]).astype(float)
    assert expected_calibration_error(sharp, y) > 0.15       # always sure
    r = reliability(proba, y)
    assert r["count"].sum() == 5000 and len(r["count"]) == 15


def test_stratified_folds_split_every_class_evenly():
    y = np.repeat([0, 1, 2], [10, 7, 4])
    folds = stratified_folds(y, 2, np.random.default_rng(0))
    assert sorted(np.concatenate(folds).tolist()) == list(range(21))
    for label, n in ((0, 10), (1, 7), (2, 4)):
        counts = [int((y[f] == label).sum()) for f in folds]
        assert max(counts) - min(counts) <= 1 and sum(counts) == n
