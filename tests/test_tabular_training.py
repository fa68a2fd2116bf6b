"""Training length (step budget, early stopping: wordexperts.core.loop) and the PyTorch
backend of the tabular trainer."""

import math

import numpy as np
import pandas as pd
import pytest
import torch

from wordexperts import AttentionConfig, BidirectionalAttention
from wordexperts.core.loop import History, linear_warmup_decay, planned_steps, run_loop
from wordexperts.tabular import WordExpertsClassifier
from wordexperts.tabular.calibration import calibrated
from wordexperts.tabular.encoding import Soft
from wordexperts.tabular.one_block import OneBlockMLM
from wordexperts.tabular.positions import OutputClasses
from wordexperts.tabular.torch_backend import TorchOneBlockMLM
from wordexperts.tabular.trainer import Validation, fit_one_block, paper_init

# ---------------------------------------------------------------- the loop


def test_loop_budget_is_the_smaller_of_epochs_and_steps():
    calls = []

    def step(batch, lr_scale):
        calls.append((len(batch), lr_scale))
        return 1.0, float(len(batch))

    history = run_loop(n_items=100, batch_size=30, step=step, rng=np.random.default_rng(0),
                       epochs=5, max_steps=9, schedule=linear_warmup_decay(0.0))
    assert len(calls) == 9 == history.step[-1]                  # 4 steps an epoch, 9 in all
    assert [n for n, _ in calls] == [30, 30, 30, 10, 30, 30, 30, 10, 30]
    assert [round(s, 4) for _, s in calls] == [round(1 - i / 9, 4) for i in range(9)]
    assert history.step == [4, 8, 9] and history.epoch[-1] == 9 / 4
    assert planned_steps(n_items=100, batch_size=30, epochs=2, max_steps=None) == 8
    with pytest.raises(ValueError, match="epochs or max_steps"):
        planned_steps(n_items=100, batch_size=30, epochs=None, max_steps=None)
    with pytest.raises(ValueError, match="max_steps"):
        run_loop(n_items=10, batch_size=3, step=step, rng=np.random.default_rng(0),
                 max_steps=0)


def test_loop_stops_early_after_patience_checks_and_reports_the_best():
    val = iter([3.0, 2.0, 2.5, 2.1, 2.2, 1.0])
    best = []
    history = run_loop(n_items=10, batch_size=5, step=lambda b, s: (1.0, 1.0),
                       rng=np.random.default_rng(0), epochs=10, validate=lambda: next(val),
                       patience=3, on_best=lambda: best.append(True))
    assert history.val_loss == [3.0, 2.0, 2.5, 2.1, 2.2]
    assert history.best_step == 4 and history.stopped_early and len(best) == 2
    assert History.from_dict(history.to_dict()) == history
    with pytest.raises(ValueError, match="validate"):
        run_loop(n_items=10, batch_size=5, step=lambda b, s: (1.0, 1.0),
                 rng=np.random.default_rng(0), epochs=1, patience=2)


def test_loop_raises_on_divergence():
    with pytest.raises(FloatingPointError, match="diverged"):
        run_loop(n_items=4, batch_size=2, step=lambda b, s: (math.inf, 1.0),
                 rng=np.random.default_rng(0), epochs=1)


# ---------------------------------------------------------------- early stopping


def copy_table(n=600, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 4, n)
    return np.stack([a, a, rng.integers(0, 4, n)], 1)               # column 1 copies column 0


def fit_model(X, seed=0, **kwargs):
    model = BidirectionalAttention(AttentionConfig(vocab_size=4, seq_len=3, block="bert"))
    paper_init(model, np.random.default_rng(seed))
    history = fit_one_block(model, X, batch_size=32, lr=3e-2, rng=np.random.default_rng(seed),
                            **kwargs)
    return model, history


def test_early_stopping_is_deterministic_and_keeps_the_best_weights():
    X = copy_table()
    train, held = X[:500], X[500:]
    validation = Validation(held, held, np.ones(held.shape))
    runs = [fit_model(train, epochs=40, validation=validation, patience=2, eval_every=4)
            for _ in range(2)]
    (m1, h1), (m2, h2) = runs
    assert h1 == h2
    assert all(torch.equal(p, q) for p, q in zip(m1.parameters(), m2.parameters(), strict=True))
    assert h1.stopped_early and h1.step[-1] < 40 * 16
    # the model holds the weights of the best check: its validation loss is the minimum
    objective = OneBlockMLM(m1, dtype=np.float32)
    loss = objective.loss_and_grad(objective.flatten(m1), held.T.copy(), held.T.copy(),
                                   np.ones(held.T.shape, np.float32))
    assert min(h1.val_loss) == pytest.approx(loss, rel=1e-5)
    assert h1.best_step == h1.step[int(np.argmin(h1.val_loss))]


def test_estimator_budget_and_early_stopping_settings():
    rng = np.random.default_rng(0)
    n = 1200
    X = pd.DataFrame({"a": rng.integers(0, 3, n), "b": rng.integers(0, 3, n)})
    y = (X["a"] + (rng.random(n) < 0.2)) > 1
    clf = WordExpertsClassifier(max_steps=25, random_state=0).fit(X, y)
    assert clf.history_.step[-1] == 25 and math.isnan(clf.history_.val_loss[0])
    early = WordExpertsClassifier(early_stopping=True, validation_fraction=0.2, patience=2,
                                  max_steps=300, random_state=0)
    a = early.fit(X, y).predict_proba(X)
    b = WordExpertsClassifier(**early.get_params()).fit(X, y).predict_proba(X)
    assert np.array_equal(a, b)
    assert not any(math.isnan(v) for v in early.history_.val_loss)
    assert early.history_.best_step is not None
    assert WordExpertsClassifier().effective_params()["early_stopping"] is False
    assert WordExpertsClassifier(preset="paper").effective_params()["max_steps"] is None
    for bad, message in (({"validation_fraction": 1.5}, "validation_fraction"),
                         ({"early_stopping": "yes"}, "early_stopping"),
                         ({"patience": 0}, "patience"), ({"max_steps": -1}, "max_steps"),
                         ({"device": 3}, "device")):
        with pytest.raises(ValueError, match=message):
            WordExpertsClassifier(**bad).fit(X, y)


def test_auto_objective_keeps_the_objective_with_the_lower_held_out_loss(tmp_path, capsys):
    from wordexperts.tabular.solver import AUTO_OBJECTIVE_ROWS

    rng = np.random.default_rng(0)
    n = AUTO_OBJECTIVE_ROWS + 500
    X = pd.DataFrame({f"c{j}": rng.integers(0, 3, n) for j in range(3)})
    y = np.where((X["c0"] + (rng.random(n) < 0.3)) > 1, "yes", "no")
    clf = WordExpertsClassifier(max_steps=40, random_state=0).fit(X, y)
    losses = clf.objective_losses_
    assert set(losses) == {"mlm", "target"} and losses["mlm"] != losses["target"]
    assert clf.objective_ == min(losses, key=losses.get)
    # the kept model is the one scored, on the rows drawn from random_state (not trained on)
    held = np.sort(np.random.default_rng(0).permutation(n)[:round(0.1 * n)])
    calibrated_log_p = clf.predict_log_proba(X.iloc[held])
    true = pd.Index(clf.classes_).get_indexer(y[held])
    # the model's own probabilities: the calibrated logits times the temperature
    log_p = calibrated(calibrated_log_p.astype(np.float64) * clf.temperature_, 1.0)
    rows = np.arange(len(held))
    assert -log_p[rows, true].mean() == pytest.approx(losses[clf.objective_], rel=1e-5)
    # and the temperature was fitted on these rows: it can only lower their loss
    assert -calibrated_log_p[rows, true].mean() <= -log_p[rows, true].mean() + 1e-6
    again = WordExpertsClassifier(max_steps=40, random_state=0, verbose=True).fit(X, y)
    assert again.objective_losses_ == losses
    bars = capsys.readouterr().err            # one labelled progress bar per objective
    assert "fit (single_pass, mlm)" in bars and "fit (single_pass, target)" in bars
    assert np.array_equal(again.predict_proba(X), clf.predict_proba(X))
    clf.save(tmp_path / "m")
    loaded = WordExpertsClassifier.load(tmp_path / "m")
    assert (loaded.objective_, loaded.objective_losses_) == (clf.objective_, losses)
    # smaller tables, the explicit objectives and the paper preset fit one objective
    small = WordExpertsClassifier(max_steps=5, random_state=0).fit(X[:2000], y[:2000])
    assert (small.objective_, small.objective_losses_) == ("mlm", {})
    only = WordExpertsClassifier(max_steps=5, objective="target", random_state=0).fit(X, y)
    assert (only.objective_, only.objective_losses_) == ("target", {})
    assert WordExpertsClassifier(preset="paper").effective_params()["objective"] == "mlm"
    with pytest.raises(ValueError, match="objective"):
        WordExpertsClassifier(objective="both").fit(X[:100], y[:100])


def test_max_positions_samples_only_wide_tables_and_is_deterministic():
    rng = np.random.default_rng(0)
    n = 300
    wide = pd.DataFrame({f"c{j}": rng.integers(0, 3, n) for j in range(12)})
    y = np.where(wide["c0"] + (rng.random(n) < 0.3) > 1, "yes", "no")
    narrow = wide.iloc[:, :4]
    # up to max_positions positions nothing is drawn: the same fit as predicting every one
    a = WordExpertsClassifier(max_steps=30, random_state=0).fit(narrow, y)
    b = WordExpertsClassifier(max_steps=30, max_positions=50, random_state=0).fit(narrow, y)
    assert np.array_equal(a.predict_proba(narrow), b.predict_proba(narrow))
    # 13 positions, 5 a step: another fit than predicting every position, the same each time
    fits = [WordExpertsClassifier(max_steps=30, max_positions=5, random_state=0).fit(wide, y)
            for _ in range(2)]
    full = WordExpertsClassifier(max_steps=30, max_positions=13, random_state=0).fit(wide, y)
    assert np.array_equal(fits[0].predict_proba(wide), fits[1].predict_proba(wide))
    assert not np.array_equal(fits[0].predict_proba(wide), full.predict_proba(wide))
    assert WordExpertsClassifier().effective_params()["max_positions"] == 32
    assert WordExpertsClassifier(preset="paper").effective_params()["max_positions"] is None
    with pytest.raises(ValueError, match="max_positions"):
        WordExpertsClassifier(max_positions=1).fit(narrow, y)


def test_the_progress_bar_shows_the_validation_loss(capsys):
    X = copy_table(300)
    fit_model(X[:250], epochs=2, validation=Validation(X[250:], X[250:], np.ones((50, 3))),
              progress=True)
    assert "val_loss=" in capsys.readouterr().err


# ---------------------------------------------------------------- the PyTorch backend


@pytest.mark.parametrize("weighted", ["all", "target", "two"])
@pytest.mark.parametrize("soft", [False, True])
@pytest.mark.parametrize("block", ["plain", "bert"])
def test_torch_backend_equals_the_numpy_trainer(block, soft, weighted):
    """Loss and gradient of the same weights, float64, ragged and shared classes, masked
    cells, weighted cells, cells between two words (``soft``: PyTorch's autograd through
    ``BidirectionalAttention.embed``), without dropout (the draws differ between backends).
    ``weighted``: every position, the last only (the target-only objective) or positions 0
    and 2, the NumPy objective computing only those queries."""
    torch.manual_seed(0)
    model = BidirectionalAttention(AttentionConfig(vocab_size=9, seq_len=4, block=block)
                                   ).double()
    classes = OutputClasses([np.array([0, 1]), np.array([2, 3, 4]), np.array([0, 1, 5]),
                             np.array([6, 7, 8])])
    rng = np.random.default_rng(1)
    target = np.stack([rng.integers(0, k, 40) for k in classes.sizes])          # (L, B)
    x = np.stack([classes.words[classes.offsets[i] + target[i]] for i in range(4)])
    x[2, :5] = model.config.mask_id
    weight = (x != model.config.mask_id) * rng.uniform(0.5, 2, x.shape)
    if weighted != "all":
        weight[[0, 1, 2] if weighted == "target" else [1, 3]] = 0
    cells, upper, frac = None, None, None
    if soft:    # half the cells of positions 1 and 3 between their word and another
        upper = x.copy()
        upper[1] = classes.words[classes.offsets[1] + rng.integers(0, 3, 40)]
        upper[3] = classes.words[classes.offsets[3] + rng.integers(0, 3, 40)]
        frac = np.where(rng.random(x.shape) < 0.5, rng.random(x.shape), 0.0)
        frac[[0, 2]] = 0
        cells = Soft(upper, frac)
        upper, frac = torch.from_numpy(upper.T.copy()), torch.from_numpy(frac.T.copy())
    objective = OneBlockMLM(model, classes=classes, dtype=np.float64)
    theta = objective.flatten(model)
    grad = np.zeros_like(theta)
    queries = None if weighted == "all" else np.flatnonzero(weight.any(axis=1))
    loss = objective.loss_and_grad(theta, x, target, weight, grad, soft=cells, queries=queries)
    torch_loss = TorchOneBlockMLM(model, classes).loss(
        torch.from_numpy(x.T.copy()), torch.from_numpy(target.T.copy()),
        torch.from_numpy(weight.T.copy()), upper, frac)
    model.zero_grad()
    torch_loss.backward()
    torch_grad = np.concatenate([p.grad.numpy().ravel() for p in model.parameters()])
    assert abs(loss - torch_loss.item()) <= 1e-10
    assert np.abs(grad - torch_grad).max() <= 1e-10


def test_torch_backend_uses_only_the_keras_dropout_sites():
    """In training mode the loss changes with dropout (the two Keras sites), while the
    core block's gate and hidden-layer dropout stay off and are restored afterwards."""
    torch.manual_seed(0)
    model = BidirectionalAttention(AttentionConfig(vocab_size=4, seq_len=3, block="bert",
                                                   dropout=0.5))
    mlm = TorchOneBlockMLM(model, OutputClasses([np.arange(4)] * 3))
    x = torch.randint(0, 4, (16, 3), generator=torch.Generator().manual_seed(0))
    block = model.layers[0]
    seen = []
    hook = block.self_attn.dropout.register_forward_hook(lambda m, i, o: seen.append(m.p))
    model.train()
    a, b = (mlm.loss(x, x, torch.ones(16, 3)).item() for _ in range(2))
    hook.remove()
    assert a != b and seen == [0.0, 0.0]
    assert block.self_attn.dropout.p == 0.5 and block.dropout.p == 0.5


def test_estimator_on_the_torch_backend_is_deterministic_and_learns():
    rng = np.random.default_rng(0)
    n = 400
    X = pd.DataFrame({"a": rng.integers(0, 3, n), "b": rng.integers(0, 3, n)})
    y = np.where(X["a"] > 0, "hi", "lo")
    fits = [WordExpertsClassifier(device="cpu", max_steps=150, random_state=0).fit(X, y)
            for _ in range(2)]
    assert np.array_equal(fits[0].predict_proba(X), fits[1].predict_proba(X))
    assert fits[0].score(X, y) > 0.95
    assert fits[0].model_.output.weight.device.type == "cpu"
    with pytest.raises(ValueError, match="device"):
        WordExpertsClassifier(device="abacus", max_steps=2).fit(X, y)
