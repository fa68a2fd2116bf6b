"""Exactness of the core: model, single pass, expert form, and PyTorch's own modules (float64)."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from wordexperts import AttentionConfig, BidirectionalAttention, to_experts
from wordexperts.core.attention import (
    from_torch_encoder_layer,
    masked_copies,
    to_torch_encoder_layer,
)

TOL = 1e-10


def random_model(*, vocab_size, seq_len, n_heads, d_head, n_layers, block, seed):
    torch.manual_seed(seed)
    cfg = AttentionConfig(vocab_size=vocab_size, seq_len=seq_len, d_model=n_heads * d_head,
                          n_heads=n_heads, n_layers=n_layers, block=block, d_ff=3)
    model = BidirectionalAttention(cfg).double().eval()
    with torch.no_grad():  # random weights everywhere, biases and LayerNorm included,
        for p in model.parameters():  # scaled by fan-in so logits stay O(1) at any width
            p.copy_(torch.randn_like(p) / math.sqrt(p.shape[-1]) if p.ndim == 2
                    else torch.randn_like(p))
    return model


def random_ids(model, batch, seed, *, with_mask=False):
    high = model.config.vocab_size + int(with_mask)
    return torch.randint(0, high, (batch, model.config.seq_len),
                         generator=torch.Generator().manual_seed(seed))


configs = st.fixed_dictionaries({
    "vocab_size": st.integers(1, 12),
    "seq_len": st.integers(1, 8),
    "n_heads": st.integers(1, 8),
    "d_head": st.integers(1, 4),
    "n_layers": st.integers(1, 3),
    "block": st.sampled_from(["plain", "bert"]),
    "seed": st.integers(0, 2**31 - 1),
})


@settings(max_examples=60, deadline=None)
@given(configs, st.integers(1, 5), st.booleans())
def test_three_ways_to_compute_masked_log_probs_agree(kw, batch, with_mask):
    """Copies, single pass (one layer) and the expert form give the same log p(x_i | x_-i)."""
    model = random_model(**kw)
    x = random_ids(model, batch, kw["seed"], with_mask=with_mask)
    copies = model.masked_log_probs(x, method="copies")
    experts = to_experts(model)
    assert (experts.masked_log_probs(x) - copies).abs().max() <= TOL
    if kw["n_layers"] == 1:
        assert (model.masked_log_probs(x, method="single_pass") - copies).abs().max() <= TOL
    for layer in range(kw["n_layers"]):
        gates = experts.gates(x, layer=layer)
        assert gates.shape == (batch, kw["n_heads"], kw["seq_len"], kw["seq_len"])
        assert gates.min() >= 0
        assert (gates.sum(-1) - 1).abs().max() <= TOL


@pytest.mark.parametrize("n_heads", [1, 3, 8])
def test_plain_one_layer_is_cbow_with_moe_weights(n_heads):
    """Paper section 2: log p = log softmax(c' + sum_h sum_j pi^h_ij eta^h(x_j, j))."""
    model = random_model(vocab_size=9, seq_len=6, n_heads=n_heads, d_head=2, n_layers=1,
                         block="plain", seed=n_heads)
    x = random_ids(model, 4, 0)
    experts = to_experts(model)
    eta = experts.expert_logits(x)                     # (B, H, L, L, V)
    pi = experts.gates(x)                              # (B, H, L, L)
    logits = experts.logit_bias + (pi.unsqueeze(-1) * eta).sum(dim=(1, 3))
    expected = model.masked_log_probs(x, method="copies")
    assert (logits.log_softmax(-1) - expected).abs().max() <= TOL


def test_expert_at_the_masked_slot_is_the_mask_expert():
    model = random_model(vocab_size=5, seq_len=4, n_heads=2, d_head=3, n_layers=1,
                         block="plain", seed=1)
    x = random_ids(model, 3, 1)
    experts = to_experts(model)
    eta = experts.expert_logits(x)
    for i in range(4):
        mask_expert = experts.experts.values[:, i, 5] @ experts.output_weight.T  # (H, V)
        assert (eta[:, :, i, i] - mask_expert).abs().max() <= TOL
        assert torch.equal(eta[0, :, i, i], eta[2, :, i, i])  # positional: same in every row


@pytest.mark.parametrize("block", ["plain", "bert"])
def test_link_is_affine_at_each_mixture_exactly(block):
    """f(z, m) = A z + b with A, b from z's LayerNorm scales and activation ratios."""
    model = random_model(vocab_size=6, seq_len=5, n_heads=2, d_head=3, n_layers=1,
                         block=block, seed=7)
    engine = to_experts(model)
    x = random_ids(model, 4, 2)
    z = engine.mask_mixture(x, mask_id=6)                                  # (B, L, d)
    m = engine.mask_embeddings(5, mask_id=6).expand_as(z)
    a_map, b = engine.layers[0].link.affine(z, m)
    assert a_map.shape == (4, 5, 6, 6)
    linear = (a_map @ z.unsqueeze(-1)).squeeze(-1) + b
    assert (linear - engine.layers[0].link(z, m)).abs().max() <= TOL
    # the affine form is local: at another mixture the link is not A z' + b
    z2 = z + torch.randn_like(z)
    far = (a_map @ z2.unsqueeze(-1)).squeeze(-1) + b - engine.layers[0].link(z2, m)
    assert (far.abs().max() > 1e-3) == (block == "bert")


def test_trace_reproduces_the_model_layer_by_layer():
    model = random_model(vocab_size=6, seq_len=5, n_heads=2, d_head=3, n_layers=3,
                         block="bert", seed=3)
    x = random_ids(model, 3, 4, with_mask=True)
    trace = to_experts(model).trace(x)
    assert trace.gates.shape == (3, 3, 2, 5, 5) and trace.hidden.shape == (4, 3, 5, 6)
    h = model.embed(x)
    for n, layer in enumerate(model.layers):
        h = layer(h)
        assert (trace.hidden[n + 1] - h).abs().max() <= TOL


def test_expert_logits_refuses_models_that_mix_in_hidden_space():
    model = random_model(vocab_size=5, seq_len=4, n_heads=2, d_head=3, n_layers=1,
                         block="bert", seed=1)
    with pytest.raises(ValueError, match="expert_values"):
        to_experts(model).expert_logits(random_ids(model, 2, 0))
    assert to_experts(model).expert_values(random_ids(model, 2, 0)).shape == (2, 2, 4, 4, 6)


@pytest.mark.parametrize("n_heads", [1, 2, 5])
def test_bert_block_equals_torch_transformer_encoder_layer(n_heads):
    model = random_model(vocab_size=7, seq_len=5, n_heads=n_heads, d_head=4, n_layers=1,
                         block="bert", seed=3)
    layer = to_torch_encoder_layer(model.layers[0], model.config).eval()
    assert isinstance(layer, nn.TransformerEncoderLayer)
    h = torch.randn(6, 5, n_heads * 4, dtype=torch.float64)
    assert (layer(h) - model.layers[0](h)).abs().max() <= 1e-12
    # and back: a fresh torch layer's weights drive our block to the same outputs
    torch.manual_seed(9)
    fresh = nn.TransformerEncoderLayer(n_heads * 4, n_heads, dim_feedforward=3, dropout=0.0,
                                       layer_norm_eps=1e-6, batch_first=True).double().eval()
    block = from_torch_encoder_layer(fresh, model.layers[0])
    assert (fresh(h) - block(h)).abs().max() <= 1e-12


def test_conversion_rejects_other_layers():
    model = random_model(vocab_size=3, seq_len=2, n_heads=1, d_head=2, n_layers=1,
                         block="bert", seed=0)
    gelu = nn.TransformerEncoderLayer(2, 1, dim_feedforward=3, activation="gelu", batch_first=True)
    with pytest.raises(ValueError, match="relu"):
        from_torch_encoder_layer(gelu, model.layers[0])
    plain = random_model(vocab_size=3, seq_len=2, n_heads=1, d_head=2, n_layers=1,
                         block="plain", seed=0)
    with pytest.raises(ValueError, match="bert"):
        to_torch_encoder_layer(plain.layers[0], plain.config)


@pytest.mark.parametrize("block", ["plain", "bert"])
@pytest.mark.parametrize("n_layers", [1, 2])
def test_model_equals_a_reference_built_from_torch_modules(block, n_layers):
    """The masked predictions equal a stack of PyTorch's own modules run on the L copies."""
    model = random_model(vocab_size=8, seq_len=6, n_heads=2, d_head=3, n_layers=n_layers,
                         block=block, seed=4)
    x = random_ids(model, 3, 2)
    copies = masked_copies(x, model.config.mask_id).flatten(0, 1)
    h = model.embed(copies)
    for ours in model.layers:
        if block == "bert":
            h = to_torch_encoder_layer(ours, model.config).eval()(h)
        else:
            mha = nn.MultiheadAttention(6, 2, batch_first=True).double()
            mha.load_state_dict(ours.self_attn.state_dict())
            h = mha(h, h, h, need_weights=False)[0]
    ref = model.output(h).view(3, 6, 6, 8).diagonal(dim1=1, dim2=2).transpose(1, 2)
    assert (model.masked_log_probs(x) - ref.log_softmax(-1)).abs().max() <= TOL


def test_gates_equal_torch_attention_weights_at_the_masked_position():
    model = random_model(vocab_size=8, seq_len=6, n_heads=3, d_head=2, n_layers=1,
                         block="bert", seed=5)
    x = random_ids(model, 4, 3)
    mha = nn.MultiheadAttention(6, 3, batch_first=True).double()
    mha.load_state_dict(model.layers[0].self_attn.state_dict())
    gates = to_experts(model).gates(x)
    for i in range(6):
        copy_i = x.clone()
        copy_i[:, i] = model.config.mask_id
        h = model.embed(copy_i)
        weights = mha(h, h, h, need_weights=True, average_attn_weights=False)[1]  # (B,H,L,L)
        assert (weights[:, :, i] - gates[:, :, i]).abs().max() <= TOL


def test_single_pass_refuses_several_layers():
    model = random_model(vocab_size=3, seq_len=3, n_heads=1, d_head=2, n_layers=2,
                         block="plain", seed=0)
    with pytest.raises(ValueError, match="n_layers=2"):
        model.masked_log_probs(random_ids(model, 2, 0), method="single_pass")


@pytest.mark.parametrize(
    ("x", "message"),
    [
        (np.array([[0, 1, 9]]), "range"),
        (np.array([[0, -1, 2]]), "range"),
        (np.array([[0, 1]]), "length seq_len=3"),
        (np.array([0, 1, 2]), "shape"),
        (np.array([[0.0, 1.0, 2.0]]), "integer"),
        (np.array([[True, False, True]]), "integer"),
        (np.zeros((0, 3), dtype=int), "empty"),
    ],
)
def test_invalid_input_is_named(x, message):
    model = BidirectionalAttention(AttentionConfig(vocab_size=4, seq_len=3, n_heads=1))
    for call in (model, model.masked_log_probs, to_experts(model).masked_log_probs):
        with pytest.raises(ValueError, match=message):
            call(x)


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"d_model": 10, "n_heads": 3}, "divisible"),
        ({"block": "gpt"}, "block"),
        ({"vocab_size": 0}, "vocab_size"),
        ({"dropout": 1.5}, "dropout"),
    ],
)
def test_invalid_config_is_named(kw, message):
    with pytest.raises(ValueError, match=message):
        AttentionConfig(**{"vocab_size": 4, "seq_len": 3, **kw})


def test_word_vectors_exclude_the_mask():
    model = BidirectionalAttention(AttentionConfig(vocab_size=4, seq_len=3, n_heads=1))
    assert model.word_vectors().shape == (4, 20)
    assert torch.equal(model.word_vectors(), model.word_embeddings.weight[:4])


def test_cells_between_two_words_in_expert_form_equal_torch_encoder_layer():
    """A cell read between two words, ``(1 - f) E[x] + f E[u] + P``: the expert form on these
    input embeddings gives the masked log-probabilities of PyTorch's own encoder layer run on
    the L masked copies (float64, 1e-10)."""
    torch.manual_seed(0)
    cfg = AttentionConfig(vocab_size=7, seq_len=5, d_model=8, n_heads=2, block="bert",
                          d_ff=6)
    model = BidirectionalAttention(cfg).double().eval()
    x, upper = torch.randint(0, 7, (4, 5)), torch.randint(0, 7, (4, 5))
    frac = torch.rand(4, 5, dtype=torch.float64)
    e = model.embed(x, upper, frac)
    E, P = model.word_embeddings.weight, model.position_embeddings
    manual = (1 - frac)[..., None] * E[x] + frac[..., None] * E[upper] + P
    assert (e - manual).abs().max() <= 1e-12
    assert torch.equal(model.embed(x, upper, torch.zeros(4, 5, dtype=torch.float64)),
                       model.embed(x))
    layer = to_torch_encoder_layer(model.layers[0], cfg).eval()
    m = model.mask_embeddings()
    with torch.no_grad():
        copies = []
        for i in range(cfg.seq_len):
            row = e.clone()
            row[:, i] = m[i]
            copies.append(layer(row)[:, i])
        expected = model.output(torch.stack(copies, 1)).log_softmax(-1)
        got = to_experts(model).masked_log_probs(e)
    assert (got - expected).abs().max() <= 1e-10
    gates = to_experts(model).gates(e)
    assert torch.allclose(gates.sum(-1), torch.ones(4, 2, 5, dtype=torch.float64))
    with pytest.raises(ValueError, match="input embeddings must be"):
        to_experts(model).gates(e[:, :3])
