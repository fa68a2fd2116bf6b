"""The MLM objectives: same value and gradients, determinism, validation."""

import numpy as np
import pytest
import torch

from wordexperts import AttentionConfig, BidirectionalAttention, fit_mlm
from wordexperts.core.training import copy_loss, mlm_loss


def model_and_data(block="bert", n_layers=1, seed=0):
    torch.manual_seed(seed)
    cfg = AttentionConfig(vocab_size=10, seq_len=6, d_model=20, n_heads=5, d_ff=5,
                          block=block, n_layers=n_layers)
    model = BidirectionalAttention(cfg).double().eval()
    x = torch.randint(0, 10, (32, 6), generator=torch.Generator().manual_seed(seed))
    return model, x


def gradients(model, loss):
    model.zero_grad()
    loss.backward()
    return torch.cat([p.grad.flatten() for p in model.parameters()])


@pytest.mark.parametrize("block", ["plain", "bert"])
def test_single_pass_objective_equals_copies_in_value_and_gradient(block):
    model, x = model_and_data(block)
    single = mlm_loss(model, x, method="single_pass")
    g_single = gradients(model, single)
    copies = mlm_loss(model, x, method="copies")
    g_copies = gradients(model, copies)
    assert abs(single.item() - copies.item()) <= 1e-10
    assert (g_single - g_copies).abs().max() <= 1e-10
    # and both equal the definition: mean over positions of -log p(x_i | x_-i)
    log_probs = model.masked_log_probs(x, method="copies")
    nll = -log_probs.gather(-1, x.unsqueeze(-1)).mean()
    assert abs(nll.item() - single.item()) <= 1e-10


def test_copy_loss_scores_the_masked_position_only():
    model, x = model_and_data("plain")
    copies = x[:4].clone()
    position = torch.tensor([0, 3, 5, 2])
    copies[torch.arange(4), position] = model.config.mask_id
    log_probs = model.masked_log_probs(x[:4], method="copies")
    expected = -log_probs[torch.arange(4), position, x[torch.arange(4), position]].mean()
    assert abs(copy_loss(model, copies, position, x[torch.arange(4), position]).item()
               - expected.item()) <= 1e-10


@pytest.mark.parametrize("method", ["single_pass", "copies"])
def test_fit_is_deterministic_and_learns(method):
    rng = np.random.default_rng(0)
    # a learnable table: column 1 copies column 0
    a = rng.integers(0, 4, size=200)
    X = np.stack([a, a, rng.integers(0, 4, size=200)], axis=1)
    results = []
    for _ in range(2):
        torch.manual_seed(1)
        model = BidirectionalAttention(AttentionConfig(vocab_size=4, seq_len=3, d_model=8,
                                                       n_heads=2, block="bert", dropout=0.1))
        history = fit_mlm(model, X, method=method, epochs=15, batch_size=32, lr=1e-2,
                          seed=3, progress=False)
        results.append((history, model.masked_log_probs(X[:5])))
    assert results[0][0] == results[1][0]
    assert torch.equal(results[0][1], results[1][1])
    history = results[0][0]
    assert len(history) == 15
    assert history[-1] < history[0] - 0.3
    model.eval()
    # column 1 is predictable from column 0: most of its probability is on the right word
    probs = model.masked_log_probs(X).exp()[np.arange(200), 1, a]
    assert probs.mean() > 0.6


def test_different_seeds_give_different_fits():
    X = np.random.default_rng(0).integers(0, 4, size=(64, 3))
    histories = []
    for seed in (0, 1):
        torch.manual_seed(0)
        model = BidirectionalAttention(AttentionConfig(vocab_size=4, seq_len=3, n_heads=2))
        histories.append(fit_mlm(model, X, epochs=2, batch_size=16, seed=seed, progress=False))
    assert histories[0] != histories[1]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"method": "skipgram"}, "method"),
        ({"epochs": 0}, "epochs"),
        ({"batch_size": 0}, "batch_size"),
        ({"lr": 0.0}, "lr"),
    ],
)
def test_fit_validates_arguments(kwargs, message):
    model = BidirectionalAttention(AttentionConfig(vocab_size=4, seq_len=3, n_heads=1))
    with pytest.raises(ValueError, match=message):
        fit_mlm(model, np.zeros((4, 3), dtype=int), progress=False, **kwargs)


def test_fit_rejects_mask_ids_and_single_pass_with_layers():
    model = BidirectionalAttention(AttentionConfig(vocab_size=4, seq_len=3, n_heads=1))
    with pytest.raises(ValueError, match="X ids must lie in 0..vocab_size-1"):
        fit_mlm(model, np.full((4, 3), 4), progress=False)
    deep = BidirectionalAttention(AttentionConfig(vocab_size=4, seq_len=3, n_heads=1,
                                                  n_layers=2))
    with pytest.raises(ValueError, match="n_layers=2"):
        fit_mlm(deep, np.zeros((4, 3), dtype=int), progress=False)
    history = fit_mlm(deep, np.zeros((4, 3), dtype=int), method="copies", epochs=1,
                      progress=False)
    assert len(history) == 1


def test_fit_accepts_a_dataframe_of_ids():
    import pandas as pd

    X = np.random.default_rng(0).integers(0, 4, size=(64, 3))
    histories = []
    for data in (X, pd.DataFrame(X, columns=["a", "b", "c"])):
        torch.manual_seed(0)
        model = BidirectionalAttention(AttentionConfig(vocab_size=4, seq_len=3, n_heads=1))
        histories.append(fit_mlm(model, data, epochs=2, batch_size=16, progress=False))
    assert histories[0] == histories[1]
    model = BidirectionalAttention(AttentionConfig(vocab_size=4, seq_len=3, n_heads=1))
    with pytest.raises(ValueError, match="integer ids"):
        fit_mlm(model, pd.DataFrame({"a": ["x"] * 4, "b": [1] * 4, "c": [2] * 4}),
                progress=False)


def test_seed_fixes_the_training_draws_not_the_initial_weights():
    X = np.random.default_rng(0).integers(0, 4, size=(64, 3))
    config = AttentionConfig(vocab_size=4, seq_len=3, n_heads=1, block="bert", dropout=0.1)
    fitted = []
    for init in (0, 0, 1):
        torch.manual_seed(init)
        model = BidirectionalAttention(config)
        fit_mlm(model, X, epochs=2, batch_size=16, seed=5, progress=False)
        fitted.append(model.output.weight.detach().clone())
    assert torch.equal(fitted[0], fitted[1])        # same initial weights, same seed
    assert not torch.equal(fitted[0], fitted[2])    # the seed does not reset the weights


def test_progress_bar_only_on_a_terminal(capsys):
    # pytest captures stderr (not a terminal): the default shows no bar
    X = np.random.default_rng(0).integers(0, 4, size=(16, 3))
    model = BidirectionalAttention(AttentionConfig(vocab_size=4, seq_len=3, n_heads=1))
    fit_mlm(model, X, epochs=3, batch_size=8)
    assert "fit_mlm" not in capsys.readouterr().err
    fit_mlm(model, X, epochs=3, batch_size=8, progress=True)
    assert "fit_mlm" in capsys.readouterr().err


def test_masked_log_probs_is_for_evaluation():
    model, x = model_and_data("bert")
    assert not model.masked_log_probs(x).requires_grad
    assert model.masked_logits(x).requires_grad          # train through the logits


def test_a_model_needs_its_config_class():
    with pytest.raises(TypeError, match="AttentionConfig"):
        BidirectionalAttention({"vocab_size": 10})
