"""How the estimator reads a table's numbers (:mod:`wordexperts.tabular.encoding`):
quantile bins, values between two bins' words, unseen numbers."""

import warnings

import numpy as np
import pandas as pd
import pytest
import torch

from wordexperts.tabular import WordExpertsClassifier


def test_numeric_columns_are_binned_or_rejected():
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"w": rng.normal(size=300), "c": rng.integers(0, 3, 300)})
    y = (X["w"] > 0.5).to_numpy()
    clf = WordExpertsClassifier(n_bins=5, epochs=40, random_state=0).fit(X, y)
    assert clf.columns_[0].numeric and len(clf.columns_[0].categories) == 5
    # a few distinct numbers are their own categories, kept in order
    assert clf.columns_[1].numeric and clf.columns_[1].categories.tolist() == [0, 1, 2]
    assert clf.score(X, y) > 0.85
    with pytest.raises(ValueError, match="column 'w' is numeric with 300 distinct values"):
        WordExpertsClassifier(numeric="error").fit(X, y)
    # strings are categories without an order
    assert not WordExpertsClassifier(epochs=1).fit(X[["c"]].astype(str), y).columns_[0].numeric


def test_unseen_numbers_read_as_the_nearest_seen_value():
    # a numeric column with few values: an unseen value is its nearest value's word, not
    # the mask (before, store 7's new discounts in reproduce real-shift's oj were masked)
    X = pd.DataFrame({"d": [0.0, 0.1, 0.3] * 20, "c": ["a", "b"] * 30})
    y = (X["d"] > 0.2).to_numpy()
    clf = WordExpertsClassifier(numeric="bin", epochs=5, random_state=0).fit(X, y)
    new = pd.DataFrame({"d": [0.12, 0.27, 0.5, -1.0], "c": ["a"] * 4})
    with warnings.catch_warnings():
        warnings.simplefilter("error")      # no "categories not seen in fit" warning
        ids = clf.word_ids(new)
    seen = clf.word_ids(pd.DataFrame({"d": [0.1, 0.3, 0.3, 0.0], "c": ["a"] * 4}))
    np.testing.assert_array_equal(ids, seen)


def test_numeric_values_are_read_between_their_neighbouring_bins():
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"w": rng.normal(size=200), "c": rng.choice(["a", "b"], 200)})
    y = (X["w"] > 0).to_numpy()
    clf = WordExpertsClassifier(n_bins=4, epochs=2, random_state=0).fit(X, y)
    med = clf.columns_[0].bin_values
    rows = pd.DataFrame({"w": [med[1], 0.75 * med[1] + 0.25 * med[2], med[0] - 5, med[3] + 5],
                         "c": ["a"] * 4})
    e = clf.input_embeddings(rows)[:, 0]
    E, P = clf.model_.word_embeddings.weight, clf.model_.position_embeddings

    def word(k):
        return (E[int(clf.words_[0][k])] + P[0]).detach()

    torch.testing.assert_close(e[0], word(1))                          # at a bin's median
    torch.testing.assert_close(e[1], 0.75 * word(1) + 0.25 * word(2))  # between two medians
    torch.testing.assert_close(e[2], word(0))                          # beyond: clipped
    torch.testing.assert_close(e[3], word(3))
    binned = WordExpertsClassifier(n_bins=4, numeric="bin", epochs=2, random_state=0).fit(X, y)
    assert binned.effective_params()["numeric"] == "bin"
    assert WordExpertsClassifier(preset="paper").effective_params()["numeric"] == "bin"
