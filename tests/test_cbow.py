"""CBOW: the definition, its two masked computations, and fitting with the library."""

import numpy as np
import pytest
import torch

from wordexperts import AttentionConfig, BidirectionalAttention, fit_mlm
from wordexperts.core.cbow import CBOW, CBOWConfig
from wordexperts.core.training import mlm_loss

V, L, D = 7, 5, 4



def make(seed=0):
    torch.manual_seed(seed)
    model = CBOW(CBOWConfig(vocab_size=V, seq_len=L, d_model=D)).double()
    # a non-zero output bias, so a dropped c would show
    torch.nn.init.normal_(model.output.bias)
    x = torch.randint(0, V, (6, L), generator=torch.Generator().manual_seed(seed))
    return model, x


def test_logits_are_the_mean_of_the_other_words_through_the_output_layer():
    model, x = make()
    E = model.word_embeddings.weight
    B, c = model.output.weight, model.output.bias
    expected = torch.empty(*x.shape, V, dtype=torch.float64)
    for b in range(x.shape[0]):
        for i in range(L):
            others = [E[x[b, j]] for j in range(L) if j != i]
            expected[b, i] = B @ torch.stack(others).mean(0) + c
    got = model.masked_logits(x)
    assert (got - expected).abs().max() <= 1e-12
    assert (model.masked_log_probs(x) - expected.log_softmax(-1)).abs().max() <= 1e-12


def test_single_pass_equals_masked_copies():
    model, x = make(1)
    single = model.masked_logits(x, method="single_pass")
    copies = model.masked_logits(x, method="copies")
    assert (single - copies).abs().max() <= 1e-12


def test_masked_words_are_left_out_of_the_mean():
    model, x = make(2)
    masked = x.clone()
    masked[:, 1] = model.config.mask_id
    E = model.word_embeddings.weight
    # at position 0 the context is positions 2..L-1 only
    expected = model.output(E[x[:, 2:]].mean(1))
    assert (model(masked)[:, 0] - expected).abs().max() <= 1e-12
    # no unmasked context word at all: the logits are the output bias
    only = torch.full((1, L), model.config.mask_id)
    only[0, 3] = 0
    assert (model(only)[0, 3] - model.output.bias).abs().max() <= 1e-12


@pytest.mark.parametrize("seed", [0, 3])
def test_both_training_objectives_have_the_same_value_and_gradient(seed):
    model, x = make(seed)
    losses, grads = [], []
    for method in ("single_pass", "copies"):
        model.zero_grad()
        loss = mlm_loss(model, x, method=method)
        loss.backward()
        losses.append(loss.item())
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    assert abs(losses[0] - losses[1]) <= 1e-12
    assert (grads[0] - grads[1]).abs().max() <= 1e-12


def test_fit_mlm_learns_deterministically_and_keeps_the_mask_row_zero():
    rng = np.random.default_rng(0)
    # two topics: each row's words come from one half of the vocabulary
    topic = rng.integers(0, 2, size=(300, 1))
    X = topic * 4 + rng.integers(0, 4, size=(300, L))
    runs = []
    for _ in range(2):
        torch.manual_seed(5)
        model = CBOW(CBOWConfig(vocab_size=8, seq_len=L, d_model=D))
        history = fit_mlm(model, X, epochs=15, batch_size=32, lr=3e-2, seed=1, progress=False)
        runs.append((history, model.word_vectors().detach().clone()))
        assert not model.word_embeddings.weight[model.config.mask_id].any()
    assert runs[0][0] == runs[1][0]
    assert torch.equal(runs[0][1], runs[1][1])
    history = runs[0][0]
    # the topic is learnable: log 8 at chance, log 4 when the topic is known
    assert history[0] > history[-1] and history[-1] < np.log(4) + 0.05


def test_word_vectors_exclude_the_mask_and_start_like_attentions():
    torch.manual_seed(3)
    cbow = CBOW(CBOWConfig(vocab_size=V, seq_len=L, d_model=D))
    torch.manual_seed(3)
    attention = BidirectionalAttention(AttentionConfig(vocab_size=V, seq_len=L, d_model=D,
                                                       n_heads=1))
    assert cbow.word_vectors().shape == (V, D)
    # same seed, same initial word embeddings: the experiment compares like with like
    assert torch.equal(cbow.word_vectors(), attention.word_vectors())


def test_bad_input_is_rejected():
    with pytest.raises(TypeError, match="CBOWConfig"):
        CBOW({"vocab_size": V})
    with pytest.raises(TypeError, match="CBOWConfig"):
        CBOW(AttentionConfig(vocab_size=V, seq_len=L, d_model=D, n_heads=1))
    with pytest.raises(ValueError, match="d_model"):
        CBOWConfig(vocab_size=V, seq_len=L, d_model=0)
    model, x = make()
    with pytest.raises(ValueError, match="method"):
        model.masked_logits(x, method="both")
    with pytest.raises(ValueError, match="seq_len"):
        model(x[:, :3])
    with pytest.raises(ValueError, match="ids"):
        model(x + V + 1)
