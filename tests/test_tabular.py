"""The tabular estimator and its fast one-block trainer."""

import json
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats
from sklearn.utils.estimator_checks import check_estimator

from wordexperts import AttentionConfig, BidirectionalAttention, to_experts
from wordexperts.core.training import copy_loss, mlm_loss
from wordexperts.datasets import make_shift_simulation
from wordexperts.tabular import WordExpertsClassifier, one_block
from wordexperts.tabular.one_block import OneBlockMLM, fit_one_block, paper_init


def core_model(block="bert", vocab=10, length=6, dropout=0.0, seed=0):
    torch.manual_seed(seed)
    cfg = AttentionConfig(vocab_size=vocab, seq_len=length, block=block, dropout=dropout)
    return BidirectionalAttention(cfg).double().eval()


def core_gradient(model, loss):
    model.zero_grad()
    loss.backward()
    return np.concatenate([p.grad.numpy().ravel() for p in model.parameters()])


def fast_gradient(objective, model, x, target, weight, rng=None):
    theta = objective.flatten(model)
    grad = np.zeros_like(theta)
    loss = objective.loss_and_grad(theta, x.T.copy(), target.T.copy(), weight.T.copy(), grad,
                                   rng)
    return loss, grad


# ---------------------------------------------------------------- the fast objective


@pytest.mark.parametrize("block", ["plain", "bert"])
def test_fast_objective_equals_core_mlm_loss_in_value_and_gradient(block):
    model = core_model(block)
    x = torch.randint(0, 10, (32, 6), generator=torch.Generator().manual_seed(1))
    loss = mlm_loss(model, x)
    expected = core_gradient(model, loss)
    fast_loss, grad = fast_gradient(OneBlockMLM(model, dtype=np.float64), model, x.numpy(),
                                    x.numpy(), np.ones((32, 6)))
    assert abs(fast_loss - loss.item()) <= 1e-10
    assert np.abs(grad - expected).max() <= 1e-10


def test_fast_objective_with_one_cell_per_row_equals_core_copy_loss():
    model = core_model()
    x = torch.randint(0, 10, (24, 6), generator=torch.Generator().manual_seed(2))
    position = torch.arange(24) % 6
    copies = x.clone()
    copies[torch.arange(24), position] = model.config.mask_id
    loss = copy_loss(model, copies, position, x[torch.arange(24), position])
    expected = core_gradient(model, loss)
    weight = np.zeros((24, 6))
    weight[np.arange(24), position.numpy()] = 1
    fast_loss, grad = fast_gradient(OneBlockMLM(model, dtype=np.float64), model, x.numpy(),
                                    x.numpy(), weight)
    assert abs(fast_loss - loss.item()) <= 1e-10
    assert np.abs(grad - expected).max() <= 1e-10


def full_vocabulary_loss(model, x, codes, weight, classes):
    """The previous computation, as a plain reference: logits over the whole vocabulary at
    every position (the core model's single pass), then each position's softmax restricted
    to its own words by indexing, weighted per cell."""
    log_probs = model.masked_logits(torch.from_numpy(x)).log_softmax(-1)    # (B, L, V)
    loss = 0
    for i, words in enumerate(classes):
        restricted = log_probs[:, i, torch.from_numpy(words)].log_softmax(-1)
        picked = restricted[torch.arange(len(x)), torch.from_numpy(codes[:, i])]
        loss = loss - (picked * torch.from_numpy(weight[:, i])).sum()
    return loss / weight.sum()


def ragged_table(classes, n, mask, seed=3):
    """Rows of a table whose position i takes words ``classes[i]``; a few cells missing."""
    rng = np.random.default_rng(seed)
    codes = np.stack([rng.integers(0, len(c), n) for c in classes], 1)
    x = np.stack([c[codes[:, i]] for i, c in enumerate(classes)], 1)
    x[0, 1] = x[5, -1] = mask                                        # missing: the mask
    return x, codes, (x != mask) * rng.uniform(0.5, 2.0, x.shape)


@pytest.mark.parametrize("block", ["plain", "bert"])
@pytest.mark.parametrize("shared", [False, True])
def test_per_column_output_equals_the_full_vocabulary_computation(block, shared):
    """Ragged class counts (2, 3, 5, 3 words), masked inputs, weighted cells; with a shared
    vocabulary several positions output the same words (their gradients add up)."""
    if shared:
        classes = [np.array([0, 1]), np.array([2, 3, 4]), np.array([0, 1, 2, 3, 4]),
                   np.array([1, 3, 4])]
    else:
        classes = [np.array([0, 1]), np.array([2, 3, 4]), np.array([5, 6, 7, 8, 9]),
                   np.array([10, 11, 12])]
    model = core_model(block, vocab=13, length=4)
    x, codes, weight = ragged_table(classes, 30, model.config.mask_id)
    loss = full_vocabulary_loss(model, x, codes, weight, classes)
    expected = core_gradient(model, loss)
    objective = OneBlockMLM(model, classes=classes, dtype=np.float64)
    fast_loss, grad = fast_gradient(objective, model, x, codes, weight)
    assert abs(fast_loss - loss.item()) <= 1e-10
    assert np.abs(grad - expected).max() <= 1e-10


def test_chunked_logits_equal_one_block_of_logits(monkeypatch):
    """The output layer computed a position at a time (a tiny CHUNK) gives the same numbers."""
    classes = [np.arange(4), np.arange(4, 9), np.arange(9, 13), np.arange(13, 16)]
    model = core_model(vocab=16, length=4)
    x, codes, weight = ragged_table(classes, 25, model.config.mask_id)
    objective = OneBlockMLM(model, classes=classes, dtype=np.float64)
    whole = fast_gradient(objective, model, x, codes, weight)
    monkeypatch.setattr(one_block, "CHUNK", 1)
    chunked = fast_gradient(objective, model, x, codes, weight)
    assert abs(whole[0] - chunked[0]) <= 1e-12
    assert np.abs(whole[1] - chunked[1]).max() <= 1e-12


def test_forward_head_backward_chain_to_loss_and_grad():
    classes = [np.arange(3), np.arange(3, 7), np.arange(7, 10)]
    model = core_model(vocab=10, length=3)
    x, codes, weight = ragged_table(classes, 12, model.config.mask_id)
    objective = OneBlockMLM(model, classes=classes, dtype=np.float64)
    theta = objective.flatten(model)
    h, cache = objective.forward(theta, x.T.copy())
    with torch.no_grad():
        core_h = model.layers[0].single_pass(model.embed(torch.from_numpy(x)),
                                             model.mask_embeddings())
    assert np.abs(h.transpose(2, 1, 0) - core_h.numpy()).max() <= 1e-12
    grad = np.zeros_like(theta)
    loss, dh = objective.head(theta, h, codes.T.copy(), weight.T.copy(), grad)
    objective.backward(theta, cache, dh, grad)
    expected_loss, expected = fast_gradient(objective, model, x, codes, weight)
    assert loss == expected_loss and np.array_equal(grad, expected)


def test_fast_gradient_with_dropout_matches_finite_differences():
    model = core_model(vocab=5, length=4, dropout=0.3)
    objective = OneBlockMLM(model, dtype=np.float64)
    x = np.random.default_rng(0).integers(0, 5, (8, 4))
    weight = np.ones(x.shape)
    theta = objective.flatten(model)
    _, grad = fast_gradient(objective, model, x, x, weight, np.random.default_rng(5))

    def loss_at(t):  # the same dropout draws each time
        return objective.loss_and_grad(t, x.T.copy(), x.T.copy(), weight.T.copy(), None,
                                       np.random.default_rng(5))

    picks = np.random.default_rng(1).choice(len(theta), 60, replace=False)
    numeric = [(loss_at(theta + 1e-6 * e) - loss_at(theta - 1e-6 * e)) / 2e-6
               for e in np.eye(len(theta))[picks]]
    assert np.abs(np.array(numeric) - grad[picks]).max() <= 1e-7
    # dropout draws change the loss
    assert loss_at(theta) != objective.loss_and_grad(theta, x.T.copy(), x.T.copy(),
                                                     weight.T.copy())


def test_fit_one_block_is_deterministic_learns_and_validates():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 4, 300)
    X = np.stack([a, a, rng.integers(0, 4, 300)], 1)              # column 1 copies column 0

    def fit(seed, method="single_pass"):
        model = BidirectionalAttention(AttentionConfig(vocab_size=4, seq_len=3, block="bert"))
        paper_init(model, np.random.default_rng(seed))
        history = fit_one_block(model, X, epochs=15, batch_size=32, lr=1e-2, method=method,
                                rng=np.random.default_rng(seed))
        return model, history

    (m1, h1), (m2, h2) = fit(0), fit(0)
    assert h1 == h2
    assert all(torch.equal(p, q) for p, q in zip(m1.parameters(), m2.parameters(), strict=True))
    assert h1.loss[-1] < h1.loss[0]
    with torch.no_grad():
        log_probs = m1.masked_log_probs(torch.from_numpy(X))
    assert (log_probs[:, 1].argmax(-1).numpy() == a).mean() > 0.95
    assert fit(0, "copies")[1].loss[-1] < h1.loss[0]
    model = BidirectionalAttention(AttentionConfig(vocab_size=4, seq_len=3, block="bert"))
    with pytest.raises(ValueError, match="mask"):
        fit_one_block(model, X + 2)
    with pytest.raises(ValueError, match="method"):
        fit_one_block(model, X, method="rows")


def test_paper_init_is_the_keras_initialization():
    """Each kernel is uniform on [-limit, limit] with the limit Keras computes (a
    Kolmogorov-Smirnov test against that distribution, which all zeros or a wrong limit
    fail); biases zero; LayerNorm scale one and shift zero."""
    V, L, d, H, f = 1000, 30, 20, 5, 5
    model = BidirectionalAttention(AttentionConfig(vocab_size=V, seq_len=L, d_model=d,
                                                   n_heads=H, d_ff=f, block="bert"))
    paper_init(model, np.random.default_rng(0))
    block = model.layers[0]

    def glorot(fan_in, fan_out):
        return np.sqrt(6 / (fan_in + fan_out))

    limits = {
        "word embeddings": (model.word_embeddings.weight, 0.05),
        "positions": (model.position_embeddings, glorot(L, d)),
        "in_proj": (block.self_attn.in_proj_weight, glorot(d * H, d * d // H)),
        "out_proj": (block.self_attn.out_proj.weight, glorot(d, H * d)),
        "linear1": (block.linear1.weight, glorot(d, f)),
        "linear2": (block.linear2.weight, glorot(f, d)),
        "output": (model.output.weight, glorot(d, V)),
    }
    for name, (param, limit) in limits.items():
        values = param.detach().numpy().ravel().astype(np.float64)
        fit = stats.kstest(values, stats.uniform(loc=-limit, scale=2 * limit).cdf)
        assert fit.pvalue > 1e-3, (name, fit)
        assert np.abs(values).max() <= limit
        wrong = stats.kstest(values, stats.uniform(loc=-1.2 * limit, scale=2.4 * limit).cdf)
        assert wrong.pvalue < 1e-3 or len(values) < 200, name   # the limit is tested
    for bias in (block.self_attn.in_proj_bias, block.self_attn.out_proj.bias,
                 block.linear1.bias, block.linear2.bias, model.output.bias,
                 block.norm1.bias, block.norm2.bias):
        assert torch.count_nonzero(bias) == 0
    assert torch.all(block.norm1.weight == 1) and torch.all(block.norm2.weight == 1)


# ---------------------------------------------------------------- the estimator


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
        check_estimator(WordExpertsClassifier(epochs=40, random_state=0))


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


def test_auto_dropout_follows_the_rows_per_category():
    rng = np.random.default_rng(0)

    def table(n):
        X = pd.DataFrame({"a": rng.choice(list("pqrst"), n), "b": rng.choice(list("vwxyz"), n)})
        return X, (X["a"] == "p").to_numpy()

    small, large = table(100), table(2000)            # 12 categories: 8 and 167 rows each
    assert WordExpertsClassifier(epochs=1).fit(*small).model_.config.dropout == 0.1
    assert WordExpertsClassifier(epochs=1).fit(*large).model_.config.dropout == 0.0
    assert WordExpertsClassifier(epochs=1, dropout=0.0).fit(*small).model_.config.dropout == 0
    with pytest.raises(ValueError, match="dropout must be 'auto'"):
        WordExpertsClassifier(epochs=1, dropout="high").fit(*small)


# ---------------------------------------------------------------- sampled positions


@pytest.mark.parametrize("block", ["plain", "bert"])
def test_sampled_positions_equal_the_full_objective_on_average_over_all_draws(block):
    """Averaged over every subset a step can draw, the sampled objective's loss and gradient
    are the full objective's (complete rows, float64, 1e-10); each subset alone is not."""
    from itertools import combinations

    from wordexperts.tabular.one_block import PositionSample

    model = core_model(block, vocab=10, length=6)
    x = torch.randint(0, 10, (16, 6), generator=torch.Generator().manual_seed(3)).numpy()
    objective = OneBlockMLM(model, dtype=np.float64)
    full_loss, full_grad = fast_gradient(objective, model, x, x, np.ones(x.shape))
    sample = PositionSample(seq_len=6, max_positions=3, always=[5])
    losses, grads = [], []
    for drawn in combinations(sample.others.tolist(), sample.k):
        weight = sample.apply(np.ones(x.T.shape), np.array(drawn)).T
        loss, grad = fast_gradient(objective, model, x, x, weight)
        losses.append(loss)
        grads.append(grad)
    assert len(losses) == 10
    assert abs(np.mean(losses) - full_loss) <= 1e-10
    assert np.abs(np.mean(grads, 0) - full_grad).max() <= 1e-10
    assert np.abs(grads[0] - full_grad).max() > 1e-4
