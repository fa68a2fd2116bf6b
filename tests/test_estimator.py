"""The tabular estimator (:mod:`wordexperts.tabular.estimator`): fit, predict, save,
impute, gates, presets and the checks of its inputs and settings."""

import json
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.utils.estimator_checks import check_estimator

from wordexperts import to_experts
from wordexperts.datasets import make_shift_simulation
from wordexperts.tabular import WordExpertsClassifier


@pytest.fixture(scope="module")
def table():
    """A categorical table where y is a noisy function of x0 and x1, and x2 copies x0."""
    rng = np.random.default_rng(0)
    n = 400
    x0, x1 = rng.integers(0, 4, n), rng.integers(0, 3, n)
    frame = pd.DataFrame({
        "x0": x0,
        "x1": pd.Categorical(np.array(["lo", "mid", "hi"])[x1]),
        "x2": np.where(rng.random(n) < 0.95, x0, rng.integers(0, 4, n)),
        "flag": rng.random(n) < 0.5,
    })
    y = np.where(x0 + x1 + (rng.random(n) < 0.1) >= 3, "big", "small")
    return frame, y


@pytest.fixture(scope="module")
def fitted(table):
    X, y = table
    return WordExpertsClassifier(epochs=60, random_state=0).fit(X, y)


def test_fit_predict_score_and_attributes(table, fitted):
    X, y = table
    assert fitted.n_features_in_ == 4
    assert list(fitted.feature_names_in_) == ["x0", "x1", "x2", "flag"]
    assert list(fitted.classes_) == ["big", "small"]
    assert fitted.vocabulary_ == "per_column"
    assert fitted.model_.config.seq_len == 5
    proba = fitted.predict_proba(X)
    assert proba.shape == (len(X), 2)
    np.testing.assert_allclose(proba.sum(1), 1, rtol=1e-5)
    np.testing.assert_allclose(np.exp(fitted.predict_log_proba(X)), proba, rtol=1e-5)
    assert (fitted.predict(X) == fitted.classes_[proba.argmax(1)]).all()
    assert fitted.score(X, y) > 0.85
    assert len(fitted.history_.loss) == 60 and fitted.history_.step[-1] == 240


def test_shared_vocabulary_for_common_codes_and_the_paper_preset():
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.integers(0, 3, (120, 3)), columns=["a", "b", "c"])
    y = X["a"].to_numpy()
    auto = WordExpertsClassifier(epochs=2, random_state=0).fit(X, y)
    assert auto.vocabulary_ == "shared" and auto.n_words_ == 3
    per = WordExpertsClassifier(vocabulary="per_column", epochs=2, random_state=0).fit(X, y)
    assert per.n_words_ == 12
    paper = WordExpertsClassifier(preset="paper", epochs=2, random_state=0).fit(X, y)
    assert paper.vocabulary_ == "shared" and len(paper.history_.loss) == 2
    assert paper.get_params()["method"] is None
    settings = paper.effective_params()
    assert (settings["method"], settings["lr"], settings["dropout"]) == ("copies", 1e-3, 0.1)
    assert paper.model_.config.dropout == 0.1


def test_target_objective_trains_only_the_target(table):
    X, y = table
    clf = WordExpertsClassifier(objective="target", epochs=30, random_state=0).fit(X, y)
    assert clf.score(X, y) > 0.8
    # the feature columns' output words got no training signal
    mlm = WordExpertsClassifier(epochs=30, random_state=0).fit(X, y)
    x0_words = torch.from_numpy(clf.words_[0])
    init = WordExpertsClassifier(epochs=1, lr=1e-12, random_state=0).fit(X, y)
    assert torch.allclose(clf.model_.output.bias[x0_words], init.model_.output.bias[x0_words])
    assert not torch.allclose(mlm.model_.output.bias[x0_words],
                              init.model_.output.bias[x0_words])


def test_a_fit_whose_target_gates_collapsed_is_restarted(monkeypatch):
    """On the paper's 5_0.9_0 table (seed 4951), random_state=0 landed in the degenerate
    solution where every head's target gate sits on the target's own masked slot: the target
    ignores the features (measured without the restart: test accuracy 0.056). Whether a
    float32 fit lands there depends on the CPU's kernels (their rounding), so the restart
    rule is tested with its threshold forced, and the real fit on what it guarantees: the
    kept fit is not collapsed."""
    from wordexperts.tabular import solver

    train, test = make_shift_simulation(n_causal=5, corr=0.9, seed=4951)
    X, y = train.drop(columns="y"), train["y"]
    clf = WordExpertsClassifier(random_state=0).fit(X, y)
    assert clf.n_restarts_ <= 1
    assert clf.gates(X)[:, :, -1].mean(0).min() < 0.99
    assert clf.score(test.drop(columns="y"), test["y"]) > 0.3
    small = dict(epochs=2, random_state=0)
    monkeypatch.setattr(solver, "_COLLAPSED", -1.0)               # every fit "collapsed"
    assert WordExpertsClassifier(**small).fit(X, y).n_restarts_ == solver._MAX_RESTARTS
    monkeypatch.setattr(solver, "_COLLAPSED", 1.0)                # no fit collapsed
    assert WordExpertsClassifier(**small).fit(X, y).n_restarts_ == 0


def test_deterministic_given_random_state(table):
    X, y = table
    a = WordExpertsClassifier(epochs=5, random_state=3).fit(X, y).predict_proba(X)
    b = WordExpertsClassifier(epochs=5, random_state=3).fit(X, y).predict_proba(X)
    c = WordExpertsClassifier(epochs=5, random_state=4).fit(X, y).predict_proba(X)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_save_load_predicts_bit_identically(tmp_path, table, fitted):
    X, _ = table
    fitted.save(tmp_path / "model")
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == [
        "model.json", "model.safetensors"]
    json.loads((tmp_path / "model" / "model.json").read_text())
    loaded = WordExpertsClassifier.load(tmp_path / "model")
    assert np.array_equal(loaded.predict_proba(X), fitted.predict_proba(X))
    assert np.array_equal(loaded.predict(X), fitted.predict(X))
    assert np.array_equal(loaded.gates(X), fitted.gates(X))
    assert loaded.get_params() == fitted.get_params()
    (tmp_path / "model" / "model.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(ValueError, match="not a saved WordExpertsClassifier"):
        WordExpertsClassifier.load(tmp_path / "model")


def test_save_load_numeric_bins(tmp_path):
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"w": rng.normal(size=200), "c": rng.integers(0, 2, 200)})
    y = (X["w"] > 0).to_numpy()
    clf = WordExpertsClassifier(epochs=20, random_state=0).fit(X, y)
    clf.save(tmp_path / "m")
    loaded = WordExpertsClassifier.load(tmp_path / "m")
    assert np.array_equal(loaded.predict_proba(X), clf.predict_proba(X))
    assert loaded.classes_.dtype == bool


def test_impute_predicts_missing_cells_from_the_others(table, fitted):
    X, _ = table
    holes = X.copy()
    rows = np.arange(0, 400, 7)
    holes["x2"] = holes["x2"].astype(float)
    holes.loc[rows, "x2"] = np.nan                                   # x2 copies x0
    holes.loc[rows[::2], "x1"] = None
    filled = fitted.impute(holes)
    assert list(filled.columns) == list(X.columns)
    assert not filled.isna().any().any()
    assert (filled.drop(index=rows) == holes.drop(index=rows)).all().all()
    assert (filled.loc[rows, "x2"].to_numpy() == X.loc[rows, "x0"].to_numpy()).mean() > 0.9
    assert set(filled.loc[rows[::2], "x1"]) <= {"lo", "mid", "hi"}


def test_gates_are_the_target_rows_of_the_expert_form(table, fitted):
    X, _ = table
    gates = fitted.gates(X)
    assert gates.shape == (len(X), 5, 5)                            # heads, features + target
    assert (gates >= 0).all()
    np.testing.assert_allclose(gates.sum(-1), 1, rtol=1e-5)
    ids = fitted.word_ids(X)
    expected = to_experts(fitted.model_).gates(ids)[:, :, -1].numpy()
    # float32 by two paths (input embeddings, word ids): equal up to the CPU kernels' rounding
    np.testing.assert_allclose(gates, expected, rtol=1e-5, atol=1e-7)


def test_gates_of_a_wide_table_come_in_chunks_equal_to_all_at_once():
    from wordexperts.tabular.solver import prediction_rows

    rng = np.random.default_rng(0)
    X = pd.DataFrame({f"c{j}": rng.integers(0, 3, 2500) for j in range(40)})
    y = np.where(X["c0"] > 0, "a", "b")
    clf = WordExpertsClassifier(max_steps=3, random_state=0).fit(X, y)
    assert prediction_rows(clf.model_.config) < len(X)              # more than one chunk
    expected = to_experts(clf.model_).gates(clf.input_embeddings(X))[:, :, -1].numpy()
    # float32 in batches of two sizes: a kernel may round a batch's sums differently
    np.testing.assert_allclose(clf.gates(X), expected, rtol=1e-5, atol=1e-7)


def test_unknown_categories_warn_and_read_as_missing_or_raise(table, fitted):
    X, _ = table
    odd = X.iloc[:5].copy()
    odd["x1"] = odd["x1"].astype(object)
    odd.iloc[0, 1] = "huge"
    with pytest.warns(UserWarning, match=r"'x1': \['huge'\]"):
        proba = fitted.predict_proba(odd)
    missing = odd.copy()
    missing.iloc[0, 1] = None
    assert np.array_equal(proba, fitted.predict_proba(missing))
    strict = WordExpertsClassifier(handle_unknown="error", epochs=1, random_state=0)
    strict.fit(*table)
    with pytest.raises(ValueError, match="column 'x1'"):
        strict.predict(odd)


@pytest.mark.parametrize(
    ("X", "y", "error", "message"),
    [
        (np.zeros((0, 3)), np.zeros(0), ValueError, "empty: 0 rows"),
        (np.array([[0, 1], [1, 0]]), np.array([1, 1]), ValueError, "one class"),
        (np.array([[0, 1], [1, 0]]), np.array([0.5, 1.5]), ValueError, "Unknown label type"),
        (np.array([[0, 1], [1, 0]]), np.array([0, 1, 1]), ValueError, "3"),
        (pd.DataFrame({"a": [1, 2], "t": pd.to_timedelta([1, 2], "s")}), [0, 1],
         ValueError, "column 't' has unsupported dtype"),
        (pd.DataFrame({"a": [1, 2], "b": [None, None]}), [0, 1], ValueError,
         "column 'b' has no values"),
        (np.array([[0, 1], [1, 0]]), np.array([0, None]), ValueError, "y has missing values"),
    ],
)
def test_bad_training_data_is_named(X, y, error, message):
    with pytest.raises(error, match=message):
        WordExpertsClassifier(epochs=1).fit(X, y)


def test_mismatched_columns_are_named(table, fitted):
    X, _ = table
    with pytest.raises(ValueError, match="x2"):
        fitted.predict(X.rename(columns={"x2": "z"}))
    with pytest.raises(ValueError, match="3 features"), pytest.warns(UserWarning, match="names"):
        fitted.predict(X.to_numpy()[:, :3])


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"preset": "turbo"}, "preset"),
        ({"vocabulary": "global"}, "vocabulary"),
        ({"objective": "all"}, "objective"),
        ({"epochs": 0}, "epochs"),
        ({"lr": -1.0}, "lr"),
        ({"dropout": 1.0}, "dropout"),
        ({"d_model": 21}, "divisible"),
        ({"n_bins": 1}, "n_bins"),
        ({"lr_schedule": "cosine"}, "lr_schedule"),
        ({"random_state": "seven"}, "random_state"),
    ],
)
def test_bad_settings_are_named(table, params, message):
    with pytest.raises(ValueError, match=message):
        WordExpertsClassifier(**params).fit(*table)


def test_passes_scikit_learn_estimator_checks():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check_estimator(WordExpertsClassifier(epochs=40, random_state=0), expected_failed_checks={
            # minibatch training: a weight scales a row's loss terms, it does not repeat the
            # row in the batches, so a weighted fit is not the fit on repeated rows
            "check_sample_weight_equivalence_on_dense_data": "a weight is not a repetition"})


def test_auto_dropout_follows_the_rows_per_category():
    rng = np.random.default_rng(0)

    def table(n):
        X = pd.DataFrame({"a": rng.choice(list("pqrst"), n), "b": rng.choice(list("vwxyz"), n)})
        return X, (X["a"] == "p").to_numpy()

    small, large = table(100), table(2000)            # 12 categories: 8 and 167 rows each
    assert WordExpertsClassifier(epochs=1).fit(*small).model_.config.dropout == 0.1
    assert WordExpertsClassifier(epochs=1).fit(*large).model_.config.dropout == 0.0
    assert WordExpertsClassifier(epochs=1, dropout=0.0).fit(*small).model_.config.dropout == 0
    with pytest.raises(ValueError, match="'dropout' parameter"):
        WordExpertsClassifier(epochs=1, dropout="high").fit(*small)


def test_sample_weight_and_class_weight_weigh_rows():
    rng = np.random.default_rng(0)
    n = 400
    X = pd.DataFrame({"a": rng.choice(list("pqrs"), n), "b": rng.choice(list("uvw"), n)})
    y = np.where(X["a"].isin(["p", "q"]), "yes", "no")
    noisy = y.copy()
    flipped = rng.random(n) < 0.45                   # labels a fit should not learn from
    noisy[flipped] = np.where(y[flipped] == "yes", "no", "yes")
    params = {"epochs": 30, "random_state": 0}
    plain = WordExpertsClassifier(**params).fit(X, noisy)
    weighted = WordExpertsClassifier(**params).fit(X, noisy, sample_weight=(~flipped) * 1.0)
    assert (weighted.predict(X) == y).mean() > (plain.predict(X) == y).mean() + 0.05
    assert (weighted.predict(X) == y).mean() > 0.95
    # weights of one: the same predictions as none (the unweighted path differs only in
    # float rounding of the averages)
    ones = WordExpertsClassifier(**params).fit(X, noisy, sample_weight=np.ones(n))
    np.testing.assert_allclose(ones.predict_proba(X), plain.predict_proba(X), atol=1e-6)
    # a rare class gains recall with class_weight="balanced"
    # "yes" only in one cell of the table, and there in 40% of the rows: unweighted, the
    # cell's best guess is "no"; balanced, "yes" weighs about 12 times more
    cell = np.flatnonzero(((X["a"] == "p") & (X["b"] == "u")).to_numpy())
    rare = np.full(n, "no", dtype=object)
    rare[rng.permutation(cell)[:round(0.4 * len(cell))]] = "yes"
    base = WordExpertsClassifier(**params).fit(X, rare)
    balanced = WordExpertsClassifier(**params, class_weight="balanced").fit(X, rare)
    recall = [(m.predict(X)[rare == "yes"] == "yes").mean() for m in (base, balanced)]
    assert recall[1] > recall[0]
    with pytest.raises(ValueError, match="[Nn]egative"):
        WordExpertsClassifier(**params).fit(X, y, sample_weight=-np.ones(n))
    with pytest.raises(ValueError, match="sample_weight"):
        WordExpertsClassifier(**params).fit(X, y, sample_weight=np.ones(3))
