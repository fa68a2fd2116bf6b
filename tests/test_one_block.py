"""The fast one-block trainer (:mod:`wordexperts.tabular.one_block`): its objective,
gradients and sampled positions against the core model's, its fit and initialization."""

import numpy as np
import pytest
import torch
from scipy import stats

from wordexperts import AttentionConfig, BidirectionalAttention
from wordexperts.core.training import copy_loss, mlm_loss
from wordexperts.tabular import one_block
from wordexperts.tabular.one_block import OneBlockMLM
from wordexperts.tabular.positions import PositionSample
from wordexperts.tabular.trainer import fit_one_block, paper_init


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


# ---------------------------------------------------------------- sampled positions


@pytest.mark.parametrize("block", ["plain", "bert"])
def test_sampled_positions_equal_the_full_objective_on_average_over_all_draws(block):
    """Averaged over every subset a step can draw, the sampled objective's loss and gradient
    are the full objective's (complete rows, float64, 1e-10); each subset alone is not."""
    from itertools import combinations


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
