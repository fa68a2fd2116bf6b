"""The expert form of bidirectional attention: CBOW with mixture-of-experts weights.

Paper.md section 2. At a masked position ``i`` the query is ``u_i = Wq m_i`` with
``m_i = E[M] + P[i]``: a constant per position. So one head's prediction is::

    log p(x_i | x_-i) = log softmax( sum_j pi_ij * eta(x_j, j) )
    pi_ij = softmax_j g_i(x_j, j)          gate:   g_i(w, j) = u_i . Wk (E[w] + P[j]) / sqrt(dk)
    eta(w, j) = B Wo (Wv (E[w] + P[j]) + bv)    expert: a one-word CBOW predictor

with ``x_i`` read as the mask. :func:`to_experts` builds these parts as tables indexed by
(position, word) from a :class:`~wordexperts.core.attention.BidirectionalAttention`:

    gating network  g   (H, L_i, L_j, V+1)      one score per masked position, context
                                                position and context word
    experts         nu  (H, L_j, V+1, d)        hidden-space expert of word w at position j;
                    eta (H, L_j, V+1, V)        its natural parameters (plain block)

and computes the model's predictions from them alone. Several heads are a sum of such
mixtures (stacked MoEs); a BERT block applies a position-specific nonlinear link to the
hidden-space mixture; in deeper layers the inputs are themselves mixtures, so their gates
and experts are functions of MoEs (a mixture of MoEs).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np
import torch

from wordexperts.core.attention import (
    AttentionConfig,
    BidirectionalAttention,
    as_ids,
    masked_copies,
)


@dataclass(frozen=True)
class GatingNetwork:
    """Layer 1's gating network: query and key of every word at every position.

    ``queries``, ``keys``: (H, L, V+1, dh). ``mask_scores`` (H, L_i, L_j, V+1) is the gate
    score ``g_i(w, j)`` of word ``w`` at position ``j`` when position ``i`` is masked: a lookup
    table, because the masked query ``u_i = queries[:, i, M]`` does not depend on the row.
    """

    queries: torch.Tensor
    keys: torch.Tensor
    mask_scores: torch.Tensor

    @classmethod
    def from_tables(cls, queries: torch.Tensor, keys: torch.Tensor, mask_id: int) -> GatingNetwork:
        u = queries[:, :, mask_id]                                        # (H, L, dh)
        scores = torch.einsum("hid,hjwd->hijw", u, keys) / math.sqrt(u.shape[-1])
        return cls(queries=queries, keys=keys, mask_scores=scores)

    def gates(self, x: torch.Tensor, mask_id: int) -> torch.Tensor:
        """Mixture weights ``pi_ij`` at each masked position: (B, L) ids -> (B, H, L, L)."""
        copies = masked_copies(x, mask_id)                                # (B, L_i, L_j)
        h, length = self.mask_scores.shape[:2]
        i = torch.arange(length).view(1, 1, length, 1)
        j = torch.arange(length).view(1, 1, 1, length)
        heads = torch.arange(h).view(1, h, 1, 1)
        return self.mask_scores[heads, i, j, copies.unsqueeze(1)].softmax(-1)


@dataclass(frozen=True)
class WordExperts:
    """Layer 1's continuous word experts, one per (head, position, word).

    ``values`` (H, L, V+1, d): ``nu^h(w, j) = Wo_h (Wv_h (E[w] + P[j]) + bv_h)``, the expert's
    contribution in the hidden space; ``bias`` (d,): ``bo``, shared by all experts (the gates
    sum to one).
    """

    values: torch.Tensor
    bias: torch.Tensor

    def pick(self, copies: torch.Tensor) -> torch.Tensor:
        """The experts of the words in each copy: (B, L_i, L_j) -> (B, L_i, H, L_j, d)."""
        length = copies.shape[-1]
        return self.values[:, torch.arange(length), copies].movedim(0, -3)


def mixture(gates: torch.Tensor, experts: torch.Tensor) -> torch.Tensor:
    """``sum_h sum_j pi^h_ij * expert^h_j``: (..., H, L, L) x (..., H, L, D) -> (..., L, D)."""
    return torch.einsum("...hij,...hjd->...id", gates, experts)


class ContinuousWordExperts:
    """A :class:`BidirectionalAttention` model rewritten as mixtures of continuous word experts.

    Built by :func:`to_experts`; a snapshot of the model's weights, evaluated without dropout.
    Parts: ``gating`` (:class:`GatingNetwork`) and ``experts`` (:class:`WordExperts`) of layer
    1, ``logit_experts`` (H, L, V+1, V) and ``logit_bias`` (V,) for a one-layer plain model,
    and the continuous layers 2.. (``blocks[1:]``) whose inputs are mixtures.

    Shapes: ``gates``: (B, L) -> (B, H, L, L); ``expert_logits``: (B, L) -> (B, H, L, L, V);
    ``masked_log_probs``: (B, L) -> (B, L, V).

    >>> _ = torch.manual_seed(0)
    >>> model = BidirectionalAttention(AttentionConfig(vocab_size=10, seq_len=6)).double()
    >>> x = torch.randint(0, 10, (3, 6))
    >>> experts = to_experts(model)
    >>> experts.gates(x).shape
    torch.Size([3, 5, 6, 6])
    >>> bool((experts.masked_log_probs(x) - model.masked_log_probs(x)).abs().max() < 1e-10)
    True
    """

    def __init__(self, model: BidirectionalAttention) -> None:
        self.config: AttentionConfig = model.config
        cfg = self.config
        self.blocks = copy.deepcopy(model.layers).eval()
        self.output = copy.deepcopy(model.output).eval()
        with torch.no_grad():
            # every word at every position: (L, V+1, d)
            self.tokens = model.word_embeddings.weight[None] + model.position_embeddings[:, None]
            attn = self.blocks[0].self_attn
            queries, keys, values = (part.transpose(0, 1)                  # (H, L, V+1, dh)
                                     for part in attn.heads(self.tokens, "qkv"))
            w_out = attn.out_proj.weight.view(cfg.d_model, cfg.n_heads, cfg.d_head)
            self.gating = GatingNetwork.from_tables(queries, keys, cfg.mask_id)
            self.experts = WordExperts(
                values=torch.einsum("hlwk,dhk->hlwd", values, w_out),
                bias=attn.out_proj.bias.clone(),
            )
            self.logit_experts = self.experts.values @ self.output.weight.T  # (H, L, V+1, V)
            self.logit_bias = self.output.weight @ self.experts.bias + self.output.bias

    def _ids(self, x: torch.Tensor | np.ndarray) -> torch.Tensor:
        return as_ids(x, self.config)

    @torch.no_grad()
    def gates(self, x: torch.Tensor | np.ndarray, *, layer: int = 0) -> torch.Tensor:
        """Mixture weights ``pi_ij`` of layer ``layer`` (0-based) at each masked position ``i``.

        (B, L) -> (B, H, L, L): row ``i`` is the gate over context positions ``j`` when ``x_i``
        is masked; non-negative, summing to one over ``j``. Layer 0 reads the gating
        network's table (section 2: the masked query is a per-position constant); deeper
        layers' gates are computed from the previous layer's mixtures (mixture of MoEs).
        """
        x = self._ids(x)
        if not 0 <= layer < self.config.n_layers:
            raise ValueError(f"layer must be in 0..{self.config.n_layers - 1}, got {layer}")
        if layer == 0:
            return self.gating.gates(x, self.config.mask_id)
        return self._through_layers(x)[1][layer]

    @torch.no_grad()
    def expert_values(self, x: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Layer 1's experts of each context word in the hidden space: (B, L) -> (B, H, L, L, d).

        Entry ``[b, h, i, j]`` is ``nu^h(x_j, j)`` when ``x_i`` is masked (``j = i``: the mask).
        """
        copies = masked_copies(self._ids(x), self.config.mask_id)
        return self.experts.pick(copies).transpose(1, 2)

    @torch.no_grad()
    def expert_logits(self, x: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Natural parameters ``eta^h(x_j, j)`` of each expert: (B, L) -> (B, H, L, L, V).

        Entry ``[b, h, i, j]`` is what context word ``j`` alone votes for position ``i``.
        Defined for one plain layer, where the mixture happens in logit space (section 2);
        a BERT block mixes in the hidden space: see :meth:`expert_values`.
        """
        cfg = self.config
        if cfg.n_layers != 1 or cfg.block != "plain":
            raise ValueError(
                "expert_logits needs one plain layer (logits are linear in the mixture); "
                f"this model has n_layers={cfg.n_layers}, block={cfg.block!r}: use expert_values"
            )
        copies = masked_copies(self._ids(x), cfg.mask_id)
        length = copies.shape[-1]
        return self.logit_experts[:, torch.arange(length), copies].movedim(0, 1)

    @torch.no_grad()
    def masked_log_probs(self, x: torch.Tensor | np.ndarray) -> torch.Tensor:
        """``log p(x_i | x_-i)`` from gates and experts alone: (B, L) -> (B, L, V).

        - One plain layer, any number of heads: ``log softmax(c' + sum_h sum_j pi^h_ij
          eta^h(x_j, j))``: CBOW with mixture-of-experts weights, heads stacked (section 2).
        - One BERT layer: the link ``f_i`` of the hidden-space mixture ``sum_h sum_j pi^h_ij
          nu^h(x_j, j)`` (section 2, last bullet).
        - Several layers: layer 1's mixtures feed layer 2's gates and experts, and so on
          (mixture of MoEs).
        """
        x = self._ids(x)
        cfg = self.config
        if cfg.n_layers == 1:
            gates = self.gates(x)                                              # (B, H, L, L)
            if cfg.block == "plain":
                eta = self.expert_logits(x)                                    # (B, H, L, L, V)
                logits = self.logit_bias + torch.einsum("bhij,bhijv->biv", gates, eta)
                return logits.log_softmax(-1)
            z = torch.einsum("bhij,bhijd->bid", gates, self.expert_values(x)) + self.experts.bias
            mask_tokens = self.tokens[:, cfg.mask_id]                          # m_i: (L, d)
            return self.output(self.blocks[0].link(z, mask_tokens.expand_as(z))).log_softmax(-1)
        return self.output(self._through_layers(x)[0]).log_softmax(-1)

    def _through_layers(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Run the ``L`` masked copies as mixtures, layer by layer.

        Returns the last hidden state at each copy's masked position (B, L, d) and, per
        layer, the gates at the masked positions (B, H, L, L).
        """
        cfg = self.config
        copies = masked_copies(x, cfg.mask_id)                                 # (B, L_i, L)
        length = cfg.seq_len
        positions = torch.arange(length)
        # layer 1: gating network and word experts, read from the tables, for every position
        q = self.gating.queries[:, positions, copies].movedim(0, -3)          # (B, Li, H, L, dh)
        k = self.gating.keys[:, positions, copies].movedim(0, -3)
        gates = (q @ k.transpose(-1, -2) / math.sqrt(cfg.d_head)).softmax(-1)  # (B, Li, H, L, L)
        z = mixture(gates, self.experts.pick(copies)) + self.experts.bias     # (B, Li, L, d)
        h = self.blocks[0].link(z, self.tokens[positions, copies])
        all_gates = [gates]
        # layers 2..: the experts are the previous layer's mixtures, read continuously
        for block in self.blocks[1:]:
            attn = block.self_attn
            q, k, v = attn.heads(h, "qkv")                                     # (B, Li, H, L, dh)
            gates = attn.scores(q, k).softmax(-1)
            w_out = attn.out_proj.weight.view(cfg.d_model, cfg.n_heads, cfg.d_head)
            experts = torch.einsum("...hlk,dhk->...hld", v, w_out)
            h = block.link(mixture(gates, experts) + attn.out_proj.bias, h)
            all_gates.append(gates)
        gates_at_mask = [g.diagonal(dim1=1, dim2=3).movedim(-1, 2) for g in all_gates]
        return h.diagonal(dim1=1, dim2=2).transpose(1, 2), gates_at_mask


def to_experts(model: BidirectionalAttention) -> ContinuousWordExperts:
    """The expert form of ``model`` (paper.md section 2): gating network, experts, mixtures.

    The result computes the same ``log p(x_i | x_-i)`` as ``model.masked_log_probs`` (to
    rounding) from the gates ``pi_ij`` and experts ``eta(x_j, j)`` alone.
    """
    if not isinstance(model, BidirectionalAttention):
        raise ValueError(f"model must be a BidirectionalAttention, got {type(model).__name__}")
    return ContinuousWordExperts(model)


