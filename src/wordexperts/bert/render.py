"""Rendering a BERT-family explanation (:func:`wordexperts.bert.explain.explain`): a
terminal table, a JSON-ready dict, a gate heatmap.

:func:`table` (terminal), :func:`to_dict` / :func:`save_json` (layers and heads numbered
from 1), :func:`gate_figure` / :func:`save_figure` (PNG, SVG or PDF, by the file suffix).
Long sentences stay readable: at most :data:`MAX_WORDS` tokens are drawn (the mask and the
tokens with the largest gates, in sentence order), the title is wrapped and shortened, and
the figure size is bounded. The command ``wordexperts explain`` and its interactive page
live in the harness (:mod:`wordexperts.harness.explain`).
"""

from __future__ import annotations

import json
import math
import textwrap
from pathlib import Path
from typing import Any

import numpy as np

from wordexperts.bert.explain import Explanation
from wordexperts.bert.tokens import MASK_TOKEN

__all__ = ["FORMATS", "MAX_WORDS", "gate_figure", "save_figure", "save_json",
           "shown_positions", "table", "to_dict"]

FORMATS = ("png", "svg", "pdf")  # figure formats, by the file suffix
ANNOTATE_MAX_WORDS = 20  # gate values are printed in the cells up to this many tokens
MAX_WORDS = 40           # tokens drawn at most; longer sentences show the top-gated ones
DPI = 100


def to_dict(ex: Explanation, *, k: int = 3) -> dict[str, Any]:
    """A JSON-ready dictionary (layers and heads numbered from 1)."""
    entropy, eff = ex.entropy, ex.effective_experts
    data: dict[str, Any] = {
        "sentence": ex.sentence,
        "tokens": list(ex.tokens),
        "mask_position": ex.mask_position,
        "checkpoint": ex.checkpoint,
        "encoder": ex.encoder,
        "mlm_head": ex.mlm_head,
        "n_layers": ex.n_layers,
        "n_heads": ex.n_heads,
        "layers": [
            {
                "layer": layer + 1,
                "heads": [
                    {
                        "head": head + 1,
                        "gates": ex.gates[layer, head].tolist(),
                        "entropy": float(entropy[layer, head]),
                        "effective_experts": float(eff[layer, head]),
                        "dominant": [{"position": j, "token": t, "gate": g}
                                     for j, t, g in ex.dominant(layer, head, k=k)],
                    }
                    for head in range(ex.n_heads)
                ],
            }
            for layer in range(ex.n_layers)
        ],
        "layer1_experts": {
            "expert_norms": ex.expert_norms.tolist(),
            "word_norms": ex.word_norms.tolist(),
            "word_shares": ex.word_shares.tolist(),
            "mixture_norm": ex.mixture_norm,
            "bias_norm": ex.bias_norm,
        },
    }
    if ex.gate_gap is not None:
        data["check_against_transformers"] = {
            "max_abs_gate_gap_per_layer": ex.gate_gap.tolist(),
            "max_abs_hidden_gap_per_layer": ex.hidden_gap.tolist(),
        }
    return data


def save_json(ex: Explanation, path: str | Path, *, k: int = 3) -> Path:
    """Write :func:`to_dict` to ``path`` (folders created); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(to_dict(ex, k=k), indent=1) + "\n", encoding="utf-8")
    return path


def table(ex: Explanation, *, k: int = 3) -> str:
    """The terminal report: one line per (layer, head), then layer 1's experts."""
    i, length = ex.mask_position, len(ex.tokens)
    head_note = ("the checkpoint has a masked-LM head (not used here)" if ex.mlm_head else
                 "no masked-LM head, so no word predictions: gates and experts only")
    lines = [
        f"sentence    {ex.sentence}",
        f"tokens      {' '.join(ex.tokens)}   (L = {length}, {MASK_TOKEN} at position {i})",
        f"checkpoint  {ex.checkpoint} ({ex.encoder})",
        f"            {ex.n_layers} layers x {ex.n_heads} heads; {head_note}",
        "",
        f"Gates at {MASK_TOKEN} (position {i}). entropy in nats (uniform over the {length} "
        f"words: {math.log(length):.3f}); eff = exp(entropy), the effective number of experts",
        f"{'layer':>5} {'head':>4} {'entropy':>7} {'eff':>5}  "
        "dominant words: token(position) gate",
    ]
    entropy, eff = ex.entropy, ex.effective_experts
    for layer in range(ex.n_layers):
        for head in range(ex.n_heads):
            words = "  ".join(f"{t}({j}) {g:.2f}" for j, t, g in ex.dominant(layer, head, k=k))
            lines.append(f"{layer + 1:>5} {head + 1:>4} {entropy[layer, head]:>7.3f} "
                         f"{eff[layer, head]:>5.2f}  {words}")
    width = max(len(t) for t in ex.tokens)
    mean_gate = ex.gates[0].mean(0)
    lines += [
        "",
        f"Layer 1 experts at {MASK_TOKEN} in the hidden space: c_j = sum_h pi^h_ij "
        "Wo_h(Wv_h e(x_j, j) + bv_h); share = <c_j, z>/|z|^2 with z = sum_j c_j",
        f"{'pos':>3} {'token':<{width}} {'mean gate':>9} {'|c_j|':>7} {'share':>7}",
    ]
    for j, token in enumerate(ex.tokens):
        lines.append(f"{j:>3} {token:<{width}} {mean_gate[j]:>9.3f} "
                     f"{ex.word_norms[j]:>7.3f} {ex.word_shares[j]:>7.3f}")
    lines.append(f"    shares sum to {ex.word_shares.sum():.3f}; |z| = {ex.mixture_norm:.3f}, "
                 f"bias |bo| = {ex.bias_norm:.3f}")
    if ex.gate_gap is not None:
        lines += ["", "Check against transformers (max abs gap per layer): gates "
                  + " ".join(f"{v:.1e}" for v in ex.gate_gap)
                  + "; hidden states " + " ".join(f"{v:.1e}" for v in ex.hidden_gap)]
    return "\n".join(lines)


def shown_positions(ex: Explanation, *, max_words: int = MAX_WORDS) -> np.ndarray:
    """The positions drawn: all of them up to ``max_words`` tokens, else the mask and the
    tokens with the largest gate in any layer and head (then the largest |share|), in
    sentence order."""
    length = len(ex.tokens)
    if length <= max_words:
        return np.arange(length)
    score = ex.gates.max(axis=(0, 1)) + 1e-3 * np.abs(ex.word_shares)
    score[ex.mask_position] = np.inf
    return np.sort(np.argsort(-score, kind="stable")[:max_words])


def gate_figure(ex: Explanation, *, max_words: int = MAX_WORDS) -> Any:
    """The gates as a matplotlib Figure: one heatmap per layer (heads x words, ``[MASK]``
    framed in red), then layer 1's word shares. Sentences of more than ``max_words``
    tokens show the ``max_words`` of :func:`shown_positions`; the size is bounded."""
    # a bare Figure, without pyplot: no GUI backend, a lighter import, nothing to close
    from matplotlib.colors import PowerNorm
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    shown = shown_positions(ex, max_words=max_words)
    n = len(shown)
    i = int(np.flatnonzero(shown == ex.mask_position)[0])
    full = n == len(ex.tokens)
    labels = [ex.tokens[j] if full else f"{ex.tokens[j]} {j}" for j in shown]
    labels = [t if len(t) <= 14 else t[:13] + "…" for t in labels]
    cols = 2 if ex.n_layers > 3 and n <= 16 else 1
    rows = math.ceil(ex.n_layers / cols)
    # a fixed layout in inches (matplotlib's constrained layout doubled the drawing time)
    panel_w = max(2.6, 0.3 * n)
    panel_h = 0.1 * ex.n_heads + 0.5                   # heatmap axes
    bar_h = 1.3                                         # the shares' axes
    labels_h = 0.06 * max(len(t) for t in labels) + 0.15
    # one column: the panels share the words' axis, labelled once, under the shares
    gap = (labels_h if cols > 1 else 0.0) + 0.5         # tick labels + the next axes' title
    left, gap_w, right = 0.55, 0.45, 1.2                # right: the colour bar
    width = left + cols * panel_w + (cols - 1) * gap_w + right
    title = textwrap.fill(textwrap.shorten(ex.sentence, width=int(width * 13) * 3 - 10,
                                           placeholder=" ..."), width=int(width * 13))
    if not full:
        title += (f"\n({n} of {len(ex.tokens)} tokens shown: {MASK_TOKEN} and the most "
                  "gated; numbers are positions)")
    top = 0.2 * (title.count("\n") + 1) + 0.45
    bottom = labels_h + 0.1
    height = top + rows * panel_h + bar_h + rows * gap + 0.15 + bottom
    fig = Figure(figsize=(width, height), dpi=DPI)
    grid = fig.add_gridspec(
        rows + 1, cols, height_ratios=[panel_h] * rows + [bar_h],
        left=left / width, right=1 - right / width, top=1 - top / height, bottom=bottom / height,
        hspace=gap / ((rows * panel_h + bar_h) / (rows + 1)), wspace=gap_w / panel_w)
    norm = PowerNorm(gamma=0.5, vmin=0.0, vmax=1.0)
    image = None
    for layer in range(ex.n_layers):
        ax = fig.add_subplot(grid[layer // cols, layer % cols])
        gates = ex.gates[layer][:, shown]
        image = ax.imshow(gates, aspect="auto", cmap="viridis", norm=norm,
                          interpolation="nearest")
        ax.add_patch(Rectangle((i - 0.5, -0.5), 1, ex.n_heads, fill=False,
                               edgecolor="red", linewidth=1.5))
        if n <= ANNOTATE_MAX_WORDS:  # print the large gates in their cells
            for h, j in zip(*np.nonzero(gates >= 0.1), strict=True):
                g = gates[h, j]
                ax.text(j, h, f"{g:.2f}".lstrip("0"), ha="center", va="center", fontsize=5,
                        color="black" if g >= 0.5 else "white")
        ax.set_title(f"layer {layer + 1}: gates at {MASK_TOKEN}", fontsize=9)
        ax.set_yticks(range(ex.n_heads), [str(h + 1) for h in range(ex.n_heads)], fontsize=6)
        ax.set_ylabel("head", fontsize=8)
        if cols > 1:
            _word_ticks(ax, labels, i)
        else:
            ax.set_xticks(range(n), [""] * n)
    bar_top = 1 - top / height
    cax = fig.add_axes((1 - (right - 0.25) / width, bar_top - 0.6 * (bar_top - bottom / height),
                        0.18 / width, 0.6 * (bar_top - bottom / height)))
    fig.colorbar(image, cax=cax, label="gate weight (sqrt scale)")
    ax = fig.add_subplot(grid[rows, :])
    shares = ex.word_shares[shown]
    colors = ["tab:red" if j == i else ("tab:blue" if s >= 0 else "tab:gray")
              for j, s in enumerate(shares)]
    ax.bar(range(n), shares, color=colors)
    ax.axhline(0, color="black", linewidth=0.6)
    ax.set_xlim(-0.5, n - 0.5)
    ax.set_ylabel("share", fontsize=8)
    ax.set_title(f"layer 1: each word's share of the expert mixture at {MASK_TOKEN}\n"
                 "<c_j, z> / |z|^2,  c_j = sum_h pi^h_ij nu^h(x_j, j),  z = sum_j c_j",
                 fontsize=8)
    _word_ticks(ax, labels, i)
    fig.suptitle(title, fontsize=10, y=1 - 0.12 / height, va="top")
    return fig


def save_figure(ex: Explanation, path: str | Path, *, max_words: int = MAX_WORDS) -> Path:
    """Save :func:`gate_figure` to ``path``; the suffix (.png, .svg, .pdf) is the format."""
    path = Path(path)
    if path.suffix.lstrip(".").lower() not in FORMATS:
        raise ValueError(f"path must end with one of {', '.join('.' + f for f in FORMATS)}, "
                         f"got {path.name!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    gate_figure(ex, max_words=max_words).savefig(path)
    return path


def _word_ticks(ax: Any, labels: list[str], mask_position: int) -> None:
    rotation = 60 if len(labels) <= 20 else 90
    ax.set_xticks(range(len(labels)), labels, rotation=rotation, ha="right", fontsize=7,
                  rotation_mode="anchor")
    tick = ax.get_xticklabels()[mask_position]
    tick.set_color("red")
    tick.set_fontweight("bold")
