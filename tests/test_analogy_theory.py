"""The planted-analogy generator, the measures, and a tiny end-to-end run with resume."""

import argparse
import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from wordexperts import AttentionConfig, BidirectionalAttention, to_experts
from wordexperts.core.training import mlm_loss
from wordexperts.datasets.planted import make_world
from wordexperts.harness import analogy_theory as at

TINY = at.TheorySettings(n_groups=3, n_roles=3, n_filler=4, seq_len=4, n_sentences=200,
                         n_test=50, epochs=2, batch_size=50)




@pytest.mark.parametrize("kwargs", [{}, {"n_groups": 5, "n_roles": 2, "salience": "linear"},
                                    {"n_groups": 2, "n_roles": 7, "n_filler": 0, "seed": 9}])
def test_planted_analogies_hold_exactly_in_the_true_vectors(kwargs):
    world = make_world(**kwargs)
    ids = {w: i for i, w in enumerate(world.words)}
    q = world.questions()
    g, r = world.n_groups, world.n_roles
    assert len(q) == r * (r - 1) // 2 * g * (g - 1)
    rho = world.vectors
    assert rho.dtype == np.float64
    a, b, c, d = (rho[q[col].map(ids).to_numpy()] for col in "abcd")
    assert np.abs((b - a) - (d - c)).max() <= 1e-12
    # unit vectors: the parallelograms survive 3CosAdd's normalisation
    assert np.abs(np.linalg.norm(rho, axis=1) - 1).max() <= 1e-12
    result = at.analogy_scores(rho, world)
    assert result["accuracy"] == 1.0
    assert result["non_additive"] <= 1e-12


def test_group_and_role_vectors_are_orthogonal_regular_simplices():
    world = make_world(n_groups=4, n_roles=3, n_filler=0, seed=1)
    rho = world.vectors[world.analogy_ids()]                                   # (G, R, k)
    group = rho.mean(axis=1)                                                   # u_g
    role = rho.mean(axis=0) - rho.mean(axis=(0, 1))                            # o_r
    assert np.abs(group @ role.T).max() <= 1e-12
    unit = group / np.linalg.norm(group, axis=1, keepdims=True)
    off = (unit @ unit.T)[~np.eye(4, dtype=bool)]
    assert np.allclose(off, -1 / 3, atol=1e-12)


def test_worlds_and_corpora_are_determined_by_the_seed():
    one, two, other = make_world(seed=3), make_world(seed=3), make_world(seed=4)
    for name in ("vectors", "bias", "word_salience", "position_salience"):
        assert np.array_equal(getattr(one, name), getattr(two, name))
        assert not np.array_equal(getattr(one, name), getattr(other, name))
    x = one.sample(50, alpha=0.5, seed=1)
    assert x.shape == (50, one.seq_len) and x.dtype == np.int64
    assert x.min() >= 0 and x.max() < one.vocab_size
    assert np.array_equal(x, two.sample(50, alpha=0.5, seed=1))
    assert not np.array_equal(x, one.sample(50, alpha=0.5, seed=2))


def test_strengths_are_uniform_at_zero_and_word_times_position_at_one():
    world = make_world(seed=0)
    assert np.array_equal(world.strengths(0.0), np.ones((world.seq_len, world.vocab_size)))
    for alpha in (0.3, 1.0):
        a = world.strengths(alpha)
        assert abs(a.mean() - 1) <= 1e-12
        # log a_j(w) = alpha (s_w + p_j) + const
        log_a = np.log(a)
        expected = alpha * (world.position_salience[:, None] + world.word_salience[None, :])
        assert np.ptp(log_a - expected) <= 1e-12
    assert abs(world.word_salience.std() - 0.4) <= 1e-12
    assert abs(world.position_salience.std() - 0.5) <= 1e-12


def test_linear_salience_is_affine_in_the_planted_vectors_and_random_is_not():
    def affine_residual(world):
        design = np.hstack([world.vectors, np.ones((world.vocab_size, 1))])
        coef = np.linalg.lstsq(design, world.word_salience, rcond=None)[0]
        return np.abs(design @ coef - world.word_salience).max()

    assert affine_residual(make_world(salience="linear")) <= 1e-10
    assert affine_residual(make_world(salience="random")) > 0.1


def test_sampler_draws_words_from_the_emission_softmax():
    # without a discourse (sigma = 0) every word is drawn from softmax(b), at any alpha
    world = make_world(n_groups=2, n_roles=2, n_filler=2, discourse_scale=0.0,
                          bias_scale=1.0, seed=2)
    n = 20_000
    x = world.sample(n, alpha=1.0, seed=0)
    p = np.exp(world.bias) / np.exp(world.bias).sum()
    freq = np.bincount(x.ravel(), minlength=world.vocab_size) / x.size
    z = (freq - p) / np.sqrt(p * (1 - p) / x.size)
    assert np.abs(z).max() < 5
    # the same underlying draws at every alpha: here the knob has nothing to act on
    assert np.array_equal(x, world.sample(n, alpha=0.0, seed=0))


def test_emission_logits_follow_the_definition():
    world = make_world(seed=1)
    c = np.random.default_rng(0).standard_normal((3, world.dim))
    alpha = 0.7
    got = world.emission_logits(c, alpha)
    a = world.strengths(alpha)
    for n in range(3):
        for j in range(world.seq_len):
            expected = world.bias + a[j] * (world.vectors @ c[n])
            assert np.abs(got[n, j] - expected).max() <= 1e-12


def test_non_additive_share_is_affine_invariant_and_large_for_noise():
    world = make_world(seed=0)
    rng = np.random.default_rng(0)
    mapped = world.vectors @ rng.standard_normal((world.dim, 20)) + rng.standard_normal(20)
    assert at.non_additive_share(mapped, world) <= 1e-12
    noise = rng.standard_normal((world.vocab_size, 50))
    expected = (world.n_groups - 1) * (world.n_roles - 1) / (world.n_groups * world.n_roles - 1)
    assert abs(at.non_additive_share(noise, world) - expected) < 0.05
    # a planted vector scaled by its own factor breaks the parallelograms
    scaled = world.vectors * rng.uniform(0.5, 2.0, size=(world.vocab_size, 1))
    assert at.non_additive_share(scaled, world) > 0.01


def tiny_attention(seed=0):
    torch.manual_seed(seed)
    config = AttentionConfig(vocab_size=9, seq_len=4, d_model=6, n_heads=2)
    return BidirectionalAttention(config).double()


def test_expert_vectors_are_the_word_part_of_the_librarys_experts():
    model = tiny_attention()
    experts = to_experts(model).experts.values.sum(0)                          # (L, V+1, d)
    nu = at.expert_vectors(model)
    for j in range(4):
        diff = experts[j, :9] - experts[j, :1]
        assert (diff - (nu - nu[:1])).abs().max() <= 1e-10


def test_gate_spread_is_zero_for_uniform_gates_only():
    model = tiny_attention()
    x = torch.randint(0, 9, (16, 4), generator=torch.Generator().manual_seed(0))
    assert at.gate_spread(model, x) > 0.01
    with torch.no_grad():
        d = model.config.d_model
        model.layers[0].self_attn.in_proj_weight[:d] = 0  # queries 0: all scores equal
        model.layers[0].self_attn.in_proj_bias[:d] = 0
    assert at.gate_spread(model, x) <= 1e-12


def test_heldout_nll_is_the_training_loss():
    model = tiny_attention()
    x = torch.randint(0, 9, (16, 4), generator=torch.Generator().manual_seed(1))
    assert abs(at.heldout_nll(model, x) - mlm_loss(model, x).item()) <= 1e-12


def test_bad_arguments_are_rejected():
    world = make_world(seed=0)
    with pytest.raises(ValueError, match="alpha"):
        world.sample(5, alpha=1.5, seed=0)
    with pytest.raises(ValueError, match="n must"):
        world.sample(0, alpha=0.5, seed=0)
    with pytest.raises(ValueError, match="discourse"):
        world.emission_logits(np.zeros((2, world.dim + 1)), 0.0)
    with pytest.raises(ValueError, match="n_groups"):
        make_world(n_groups=1)
    with pytest.raises(ValueError, match="salience"):
        make_world(salience="quadratic")
    with pytest.raises(ValueError, match="word_salience"):
        make_world(word_salience=-1.0)
    with pytest.raises(ValueError, match="alpha"):
        at.run_experiment(TINY, alphas=(2.0,), seeds=(0,), progress=False)


def test_tiny_run_writes_each_result_and_resumes(tmp_path):
    out = tmp_path / "run"
    table = at.run_experiment(TINY, alphas=(0.0, 1.0), seeds=(0,), out=out, progress=False)
    lines = (out / at.RESULTS_FILE).read_text().splitlines()
    # cbow, attention and attention-experts for each alpha; planted vectors are not stored
    assert len(lines) == 6
    assert {json.loads(line)["model"] for line in lines} == {"cbow", "attention",
                                                               "attention-experts"}
    assert set(table["model"]) == set(at.MODELS) and len(table) == 8
    assert (table.loc[table["model"] == "planted", "accuracy"] == 1.0).all()
    assert table["accuracy"].between(0, 1).all()
    assert table.loc[table["model"] == "attention", "gate_spread"].notna().all()

    # a rerun reads the results instead of refitting; a new seed adds only its own fits
    again = at.run_experiment(TINY, alphas=(0.0, 1.0), seeds=(0,), out=out, progress=False)
    assert len((out / at.RESULTS_FILE).read_text().splitlines()) == 6
    fitted = table[table["model"] != "planted"].sort_values(["model", "alpha"])
    reread = again[again["model"] != "planted"].sort_values(["model", "alpha"])
    assert np.array_equal(fitted["accuracy"].to_numpy(), reread["accuracy"].to_numpy())
    at.run_experiment(TINY, alphas=(1.0,), seeds=(0, 1), out=out, progress=False)
    assert len((out / at.RESULTS_FILE).read_text().splitlines()) == 9

    # other settings do not reuse these results
    other = replace(TINY, epochs=1)
    at.run_experiment(other, alphas=(1.0,), seeds=(0,), out=out, progress=False)
    assert len((out / at.RESULTS_FILE).read_text().splitlines()) == 12


def test_same_seed_same_numbers():
    runs = [at.run_experiment(TINY, alphas=(0.5,), seeds=(3,), progress=False)
            for _ in range(2)]
    columns = ["accuracy", "non_additive", "test_nll"]
    assert np.array_equal(runs[0][columns].to_numpy(), runs[1][columns].to_numpy(), equal_nan=True)


def test_command_prints_the_table_and_saves_the_plot(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    at.configure(parser)
    args = parser.parse_args(["--seeds", "1", "--alphas", "0", "1", "--out", str(tmp_path),
                              "--sentences", "100", "--epochs", "1"])
    assert at.run(args) == 0
    printed = capsys.readouterr().out
    assert "Planted analogies solved" in printed and "CBOW: E" in printed
    png = tmp_path / at.PLOT_FILE
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for flag in ("--seeds", "--sentences", "--epochs", "--init-std"):
        with pytest.raises(ValueError, match=flag):
            at.run(parser.parse_args([flag, "0", "--out", str(tmp_path)]))
    with pytest.raises(ValueError, match="alpha"):
        at.run(parser.parse_args(["--alphas", "-0.5", "--out", str(tmp_path)]))
