"""Missing cells as absent experts (issue 17): the gates renormalize over the cells present,
exactly, in the model, its expert form, the NumPy and PyTorch trainers, predictions,
imputation and explanations; and context corruption while fitting."""

import numpy as np
import pandas as pd
import pytest
import torch
from test_one_block import core_gradient, fast_gradient, full_vocabulary_loss, ragged_table
from torch import nn

from wordexperts import AttentionConfig, BidirectionalAttention, to_experts
from wordexperts.core.training import mlm_loss
from wordexperts.tabular import WordExpertsClassifier
from wordexperts.tabular.calibration import calibrated
from wordexperts.tabular.encoding import Soft
from wordexperts.tabular.one_block import OneBlockMLM
from wordexperts.tabular.positions import OutputClasses
from wordexperts.tabular.torch_backend import TorchOneBlockMLM
from wordexperts.tabular.trainer import fit_one_block


def absent_model(block="plain", vocab=10, length=6, seed=0):
    torch.manual_seed(seed)
    cfg = AttentionConfig(vocab_size=vocab, seq_len=length, block=block, absent_experts=True)
    return BidirectionalAttention(cfg).double().eval()


def rows_with_holes(model, n=16, seed=1):
    g = torch.Generator().manual_seed(seed)
    cfg = model.config
    x = torch.randint(0, cfg.vocab_size, (n, cfg.seq_len), generator=g)
    holes = torch.rand(x.shape, generator=g) < 0.35
    x[holes] = cfg.mask_id
    x[0] = cfg.mask_id                                   # a row with every cell missing
    return x


# ------------------------------------------------------------------ the model's maths
def test_absent_gates_equal_torch_attention_with_a_key_padding_mask():
    """Row i of the gates (x_i masked) is PyTorch's own attention of query i over the masked
    copy i, the missing cells' keys padded out: float64, 1e-10."""
    model = absent_model()
    cfg = model.config
    x = rows_with_holes(model)
    gates = to_experts(model).gates(x)                                   # (B, H, L, L)
    attention = nn.MultiheadAttention(cfg.d_model, cfg.n_heads, batch_first=True,
                                      dtype=torch.float64)
    attention.load_state_dict(model.layers[0].self_attn.state_dict())
    attention.eval()
    for i in range(cfg.seq_len):
        copy = x.clone()
        copy[:, i] = cfg.mask_id
        padding = copy == cfg.mask_id
        padding[:, i] = False                                            # its own slot stays
        h = model.embed(copy)
        _, weights = attention(h, h, h, key_padding_mask=padding, need_weights=True,
                               average_attn_weights=False)              # (B, H, L, L)
        assert (weights[:, :, i] - gates[:, :, i]).abs().max() <= 1e-10
    assert (gates[:, :, :, :][padding.unsqueeze(1).unsqueeze(2).expand_as(gates)
                              & ~torch.eye(cfg.seq_len, dtype=torch.bool)] == 0).all()


@pytest.mark.parametrize("block", ["plain", "bert"])
def test_absent_experts_agree_across_single_pass_copies_and_the_expert_form(block):
    model = absent_model(block)
    x = rows_with_holes(model)
    single = model.masked_log_probs(x, method="single_pass")
    copies = model.masked_log_probs(x, method="copies")
    experts = to_experts(model).masked_log_probs(x)
    assert (single - copies).abs().max() <= 1e-10
    assert (single - experts).abs().max() <= 1e-10
    # the reading changes the predictions of rows with holes, not of complete rows
    plain = BidirectionalAttention(AttentionConfig(**{**model.config.to_dict(),
                                                      "absent_experts": False})).double()
    plain.load_state_dict(model.state_dict())
    complete = (x != model.config.mask_id).all(1)
    other = plain.masked_log_probs(x, method="single_pass")
    assert (other[complete] - single[complete]).abs().max() <= 1e-12
    assert (other[~complete] - single[~complete]).abs().max() > 1e-3


@pytest.mark.parametrize("block", ["plain", "bert"])
def test_numpy_gradient_with_absent_cells_equals_autograd(block):
    """The hand-written forward and backward with missing cells as absent experts: loss and
    gradient equal PyTorch autograd's through the core model, float64, 1e-10."""
    classes = [np.array([0, 1]), np.array([2, 3, 4]), np.array([5, 6, 7, 8, 9]),
               np.array([10, 11, 12])]
    model = absent_model(block, vocab=13, length=4)
    x, codes, weight = ragged_table(classes, 30, model.config.mask_id)
    x[2, :3] = model.config.mask_id                                   # three holes in a row
    weight[2, :3] = 0
    loss = full_vocabulary_loss(model, x, codes, weight, classes)
    expected = core_gradient(model, loss)
    objective = OneBlockMLM(model, classes=classes, dtype=np.float64)
    fast_loss, grad = fast_gradient(objective, model, x, codes, weight)
    assert abs(fast_loss - loss.item()) <= 1e-10
    assert np.abs(grad - expected).max() <= 1e-10
    # the PyTorch backend's loss is the same objective
    torch_loss = TorchOneBlockMLM(model, OutputClasses(classes, vocab_size=13)).loss(
        torch.from_numpy(x.astype(np.int64)), torch.from_numpy(codes),
        torch.from_numpy(weight))
    assert abs(torch_loss.item() - loss.item()) <= 1e-10


def test_numpy_gradient_with_absent_cells_and_cells_between_two_words():
    model = absent_model("bert", vocab=10, length=5)
    rng = np.random.default_rng(4)
    x = rows_with_holes(model, n=12, seed=5).numpy()
    upper = np.minimum(x + 1, 9)
    frac = np.where(x == model.config.mask_id, 0.0, rng.uniform(0, 1, x.shape))
    weight = (x != model.config.mask_id).astype(float)
    target = np.where(x == model.config.mask_id, 0, x)
    with torch.enable_grad():
        e = model.embed(torch.from_numpy(x), torch.from_numpy(upper), torch.from_numpy(frac))
        h = model.layers[0].single_pass(e, model.mask_embeddings(),
                                        torch.from_numpy(x == model.config.mask_id))
        log_p = model.output(h).log_softmax(-1)
        picked = log_p.gather(-1, torch.from_numpy(target)[..., None])[..., 0]
        loss = -(picked * torch.from_numpy(weight)).sum() / weight.sum()
        expected = core_gradient(model, loss)
    objective = OneBlockMLM(model, dtype=np.float64)
    theta = objective.flatten(model)
    grad = np.zeros_like(theta)
    fast = objective.loss_and_grad(theta, x.T.copy(), target.T.copy(), weight.T.copy(), grad,
                                   soft=Soft(upper.T.copy(), frac.T.copy()))
    assert abs(fast - loss.item()) <= 1e-10
    assert np.abs(grad - expected).max() <= 1e-10


def test_the_mask_reading_is_unchanged():
    """Without absent experts the single-pass objective is the paper's, as before."""
    torch.manual_seed(0)
    model = BidirectionalAttention(AttentionConfig(vocab_size=10, seq_len=6)).double()
    x = rows_with_holes(model)
    single = model.masked_log_probs(x)
    copies = model.masked_log_probs(x, method="copies")
    assert (single - copies).abs().max() <= 1e-10
    assert torch.isfinite(mlm_loss(model, torch.where(x == 10, 0, x)))


# ------------------------------------------------------------------ the estimator
@pytest.fixture(scope="module")
def table():
    rng = np.random.default_rng(0)
    n = 300
    a, b = rng.integers(0, 3, n), rng.integers(0, 3, n)
    X = pd.DataFrame({"a": a, "copy_of_a": np.where(rng.random(n) < 0.9, a, 2 - a),
                      "b": np.array(["u", "v", "w"])[b], "w": rng.normal(size=n) + a})
    y = pd.Series(np.where(a + (b > 0) >= 2, "yes", "no"), name="y")
    return X, y


@pytest.fixture(scope="module")
def absent(table):
    X, y = table
    return WordExpertsClassifier(missing="absent", epochs=30, random_state=0).fit(X, y)


def test_a_row_with_every_feature_missing_predicts_from_the_target_slot_alone(absent, table):
    X, _ = table
    empty = pd.DataFrame({c: [np.nan, np.nan] for c in X.columns})
    gates = absent.gates(empty)
    assert np.array_equal(gates[..., -1], np.ones_like(gates[..., -1]))  # own slot: all of it
    assert np.array_equal(gates[..., :-1], np.zeros_like(gates[..., :-1]))
    proba = absent.predict_proba(empty)
    assert np.array_equal(proba[0], proba[1])
    # the target's positional expert alone: f(nu^h(M, t) summed over heads + bo), then B, c
    model = absent.model_.double()
    engine = to_experts(model)
    t = model.config.seq_len - 1
    m = engine.mask_embeddings(model.config.seq_len, mask_id=model.config.mask_id)
    z = engine.layer_experts(0, m)[:, t].sum(0) + engine.layers[0].attention.b_o
    h = engine.layers[0].link(z, m[t])
    words = torch.from_numpy(absent.words_[-1])
    # the estimator's probabilities: the logits divided by its temperature
    expected = torch.softmax(engine.output(h)[words] / absent.temperature_, -1).numpy()
    absent.model_.float()
    assert np.abs(proba[0] - expected).max() <= 1e-6


def test_missing_cells_get_no_gate_and_the_explanation_stays_exact(absent, table):
    X, _ = table
    holes = X.head(20).copy()
    holes.loc[[0, 3, 5], "a"] = np.nan
    holes.loc[[3, 7], "w"] = np.nan
    holes.loc[[5, 9], "b"] = None
    gates = absent.gates(holes)
    assert (gates[[0, 3, 5], :, 0] == 0).all() and (gates[[3, 7], :, 3] == 0).all()
    assert (gates[[1, 2], :, 0] > 0).all()
    np.testing.assert_allclose(gates.sum(-1), 1, rtol=1e-5)
    from wordexperts.tabular.explain import mixture_contributions

    parts = mixture_contributions(absent, holes)
    assert (parts.gates[[0, 3, 5], :, 0] == 0).all()
    ids, soft = absent.encoder_.inputs(holes)
    model = absent.model_
    from wordexperts.tabular.solver import position_log_proba

    log_p = calibrated(position_log_proba(model.double(), ids, absent.words_[-1],
                                          ids.shape[1] - 1, soft), absent.temperature_)
    model.float()
    logits = parts.class_logits     # calibrated: divided by the temperature
    rebuilt = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    assert np.abs(rebuilt - log_p).max() <= 1e-10


def test_absent_and_mask_readings_save_and_load(absent, table, tmp_path):
    X, _ = table
    holes = X.head(30).copy()
    holes.loc[::3, "a"] = np.nan
    absent.save(tmp_path / "m")
    loaded = WordExpertsClassifier.load(tmp_path / "m")
    assert loaded.model_.config.absent_experts and loaded.settings_["missing"] == "absent"
    assert np.array_equal(loaded.predict_proba(holes), absent.predict_proba(holes))
    assert np.array_equal(loaded.impute(holes).to_numpy(), absent.impute(holes).to_numpy())


def test_impute_fills_a_binned_column_with_its_expected_value(absent, table):
    X, _ = table
    holes = X.head(40).copy()
    holes.loc[::4, "w"] = np.nan
    holes.loc[1::4, "a"] = np.nan
    filled = absent.impute(holes)
    column = absent.columns_[3]
    assert column.binned and not absent.columns_[0].binned
    ids, soft = absent.encoder_.inputs(holes)
    from wordexperts.tabular.solver import position_log_proba

    rows = np.arange(0, 40, 4)
    p = np.exp(position_log_proba(absent.model_, ids[rows], absent.words_[3], 3,
                                  soft.rows(rows)))
    np.testing.assert_allclose(filled.loc[rows, "w"].to_numpy(float), p @ column.bin_values,
                               rtol=1e-12)
    assert not np.isin(filled.loc[rows, "w"], column.bin_values).all()   # not one bin's median
    assert set(filled.loc[1::4, "a"]) <= {0, 1, 2}                        # a value it has


# ------------------------------------------------------------------ context corruption
class CountingGenerator:
    """A NumPy generator that counts its ``random`` draws."""

    def __init__(self, seed):
        self.rng, self.random_calls = np.random.default_rng(seed), 0

    def random(self, *args, **kwargs):
        self.random_calls += 1
        return self.rng.random(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self.rng, name)


def test_corruption_zero_draws_nothing_and_changes_nothing(table):
    X, y = table
    clf = WordExpertsClassifier(epochs=3, random_state=0).fit(X, y)
    ids, soft = clf.encoder_.inputs(X)
    ids[:, -1] = clf.words_[-1][np.searchsorted(clf.classes_, y)]   # the target's words
    fits = []
    for corruption in (0.0, 0.0, 0.3):
        torch.manual_seed(0)
        model = BidirectionalAttention(AttentionConfig(**{**clf.model_.config.to_dict(),
                                                          "dropout": 0.0}))   # no draws
        rng = CountingGenerator(5)
        fit_one_block(model, ids, epochs=2, rng=rng, soft=soft, corruption=corruption)
        fits.append((rng.random_calls, model.state_dict()))
    assert fits[0][0] == 0 and fits[2][0] > 0
    assert all(torch.equal(fits[0][1][k], fits[1][1][k]) for k in fits[0][1])
    assert not all(torch.equal(fits[0][1][k], fits[2][1][k]) for k in fits[0][1])
    a = WordExpertsClassifier(epochs=3, random_state=0, context_corruption=0.0).fit(X, y)
    assert np.array_equal(a.predict_proba(X), clf.predict_proba(X))
    with pytest.raises(ValueError, match="'context_corruption' parameter"):
        WordExpertsClassifier(context_corruption=1.0).fit(X, y)


def test_corruption_teaches_the_model_to_predict_from_partial_rows(table):
    """With a's column gone, a model fitted with corrupted contexts reads its copy."""
    X, y = table
    holes = X.assign(a=np.nan)
    plain = WordExpertsClassifier(missing="absent", epochs=40, random_state=0).fit(X, y)
    taught = WordExpertsClassifier(missing="absent", context_corruption=0.3, epochs=40,
                                   random_state=0).fit(X, y)
    assert taught.score(holes, y) >= plain.score(holes, y) - 0.02
    assert taught.score(holes, y) > 0.75
