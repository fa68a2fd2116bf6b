"""The expert form of bidirectional attention: CBOW with mixture-of-experts weights.

Paper.md section 2. Word ``w`` at position ``j`` enters a layer as ``e(w, j)``, a function of
the word and the position alone (``E[w] + P[j]`` for this library's model,
``LN(E[w] + P[j] + T[0])`` for a BERT checkpoint). At a masked position ``i`` the input is
``m_i = e(M, i)``, so the query ``u^h_i = Wq_h m_i + bq_h`` is a constant per position and head
``h`` of the first layer is a mixture of experts::

    gate     pi^h_ij = softmax_j( u^h_i . (Wk_h e(x_j, j) + bk_h) / sqrt(dh) )     x_i read as M
    expert   nu^h(x_j, j) = Wo_h (Wv_h e(x_j, j) + bv_h)                           in R^d
    mixture  z_i = sum_h sum_j pi^h_ij nu^h(x_j, j) + bo        heads: stacked mixtures
    link     h_i = f(z_i, m_i)                                  the rest of the block

``f`` is the identity for a plain block (then the logits ``B z_i + c`` are CBOW with
mixture-of-experts weights: expert ``eta^h(w, j) = B nu^h(w, j)``) and the post-LN
feed-forward for a BERT block. Deeper layers have the same form with the previous layer's
outputs, themselves mixtures, in place of ``e(x_j, j)``: a mixture of MoEs.

:class:`ExpertEngine` is the one implementation of this form, for any embedding function
and per-layer weights: gates at every masked position from one pass (section 3: the ``L``
masked copies differ only at their own position), word experts, mixtures, links, and a
layer-by-layer trace. :class:`ContinuousWordExperts` (this library's
:class:`~wordexperts.core.attention.BidirectionalAttention`, via :func:`to_experts`) and
:class:`wordexperts.bert.checkpoint.BertExperts` (BERT-family checkpoints) are engines that
differ only in their embedding function, link activation and (MPNet) a positional bias of
the gate scores.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from wordexperts.core.attention import (
    AttentionConfig,
    BidirectionalAttention,
    absent_keys,
    as_ids,
    masked_copies,
)

Activation = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class AttentionWeights:
    """One layer's attention, heads stacked: ``Wq, Wk, Wv, Wo`` (d, d) and biases (d,)."""

    w_q: torch.Tensor
    b_q: torch.Tensor
    w_k: torch.Tensor
    b_k: torch.Tensor
    w_v: torch.Tensor
    b_v: torch.Tensor
    w_o: torch.Tensor
    b_o: torch.Tensor


class IdentityLink:
    """The plain block's link: the layer's output is the mixture itself, ``f(z, h) = z``."""

    def __call__(self, z: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        return z

    def affine(self, z: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(A, b)`` with ``f(z, h) = A z + b``: the identity, ``b = 0``."""
        eye = torch.eye(z.shape[-1], dtype=z.dtype, device=z.device)
        return eye.expand(*z.shape, z.shape[-1]), torch.zeros_like(z)


@dataclass(frozen=True)
class PostLNLink:
    """The post-LN BERT block after its attention: ``y = LN1(h + z)``,
    ``f(z, h) = LN2(y + W2 act(W1 y + b1) + b2)``; ``h`` is the position's layer input."""

    norm1: tuple[torch.Tensor, torch.Tensor]
    w_1: torch.Tensor
    b_1: torch.Tensor
    w_2: torch.Tensor
    b_2: torch.Tensor
    norm2: tuple[torch.Tensor, torch.Tensor]
    eps: float
    activation: Activation

    def _norm(self, x: torch.Tensor, norm: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        return F.layer_norm(x, (x.shape[-1],), norm[0], norm[1], self.eps)

    def __call__(self, z: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        y = self._norm(h + z, self.norm1)
        ffn = F.linear(self.activation(F.linear(y, self.w_1, self.b_1)), self.w_2, self.b_2)
        return self._norm(y + ffn, self.norm2)

    def affine(self, z: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(A, b)``, (..., d, d) and (..., d), with ``f(z, h) = A z + b`` exactly at this ``z``.

        Each LayerNorm is affine once its scale ``sqrt(var + eps)`` is fixed, and the
        activation is ``act(a) = r * a`` with the ratio ``r = act(a) / a`` (0 where ``a = 0``);
        with the scales and ratios of this ``z`` the link is an affine map of ``z``. They are
        functions of the whole mixture, so ``A`` and ``b`` change with ``z``: this splits
        ``f(z)`` along a split of ``z``, it does not say what ``f`` would give without a part.
        """
        d = z.shape[-1]

        def scale(x: torch.Tensor) -> torch.Tensor:  # LayerNorm's 1 / sqrt(var + eps)
            return (x.var(-1, unbiased=False, keepdim=True) + self.eps).rsqrt()

        def centre(v: torch.Tensor) -> torch.Tensor:
            return v - v.mean(-1, keepdim=True)

        r1 = h + z
        y = self._norm(r1, self.norm1)
        a = F.linear(y, self.w_1, self.b_1)
        ratio = torch.where(a == 0, torch.zeros_like(a), self.activation(a) / a)
        s = y + F.linear(self.activation(a), self.w_2, self.b_2)
        g1, g2 = self.norm1[0] * scale(r1), self.norm2[0] * scale(s)        # (..., d)
        # A v = g2 * centre(M2(g1 * centre(v))), M2(v) = v + W2 (ratio * W1 v); columns of A
        basis = torch.eye(d, dtype=z.dtype, device=z.device)                 # rows: e_k
        v = g1.unsqueeze(-2) * centre(basis)                                 # (..., d, d)
        v = v + F.linear(ratio.unsqueeze(-2) * F.linear(v, self.w_1), self.w_2)
        a_map = (g2.unsqueeze(-2) * centre(v)).transpose(-1, -2)             # (..., d, d)
        return a_map, self(z, h) - (a_map @ z.unsqueeze(-1)).squeeze(-1)


Link = IdentityLink | PostLNLink


@dataclass(frozen=True)
class ExpertLayer:
    """One layer in the expert form: its attention weights and the link after the mixture."""

    attention: AttentionWeights
    link: Link


@dataclass(frozen=True)
class ExpertTrace:
    """Sequences recomputed layer by layer through the expert form.

    For ids of shape (..., L): ``gates`` (n_layers, ..., H, L, L), row ``i`` being position
    ``i``'s gate over the context positions ``j``; ``experts`` (n_layers, ..., H, L, d),
    ``nu^h_l(j) = Wo_h (Wv_h h^(l-1)_j + bv_h)`` (layer 1: the word experts
    ``nu^h(x_j, j)``); ``hidden`` (n_layers + 1, ..., L, d): the embedding, then every
    layer's output.
    """

    gates: torch.Tensor
    experts: torch.Tensor
    hidden: torch.Tensor


def mixture(gates: torch.Tensor, experts: torch.Tensor) -> torch.Tensor:
    """``sum_h sum_j pi^h_ij * expert^h_j``: (..., H, L, L) x (..., H, L, D) -> (..., L, D)."""
    return torch.einsum("...hij,...hjd->...id", gates, experts)


class ExpertEngine:
    """Gates, word experts, mixtures and links of a stack of attention layers (section 2).

    ``embed`` maps ids (..., L) to the first layer's inputs ``e(x_j, j)`` (..., L, d), a
    function of each word and its position alone; ``layers`` hold each layer's weights
    (a snapshot: the engine never calls a model's own forward). Evaluated without dropout.

    Shapes (``L`` positions, ``H`` heads): ``mask_gates``: (..., L) -> (..., H, L, L);
    ``mask_experts``: (..., L) -> (..., H, L, L, d); ``masked_hidden``: (..., L) ->
    (..., L, d); ``trace``: (..., L) -> :class:`ExpertTrace`. ``absent`` (..., L) bool or
    None: cells that are absent experts, left out of the other positions' gates
    (:func:`~wordexperts.core.attention.absent_keys`). ``position_bias`` (``L`` -> (H, L, L))
    or None: a bias added to every layer's gate scores that depends on the positions alone
    (MPNet's relative position bias), so the gating network stays a lookup.
    """

    def __init__(self, layers: Sequence[ExpertLayer], *, n_heads: int,
                 embed: Callable[[torch.Tensor], torch.Tensor],
                 position_bias: Callable[[int], torch.Tensor] | None = None) -> None:
        self.layers = list(layers)
        self.n_layers = len(self.layers)
        self.n_heads = n_heads
        self.d_model: int = self.layers[0].attention.w_q.shape[0]
        self.d_head = self.d_model // n_heads
        self._embed = embed
        self.position_bias = position_bias

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        """``e(x_j, j)``: (..., L) -> (..., L, d). Input embeddings (a float tensor
        (..., L, d), such as cells read between two words) are returned as they are."""
        return ids if ids.is_floating_point() else self._embed(ids)

    @staticmethod
    def length(x: torch.Tensor) -> int:
        """``L`` of word ids (..., L) or of input embeddings (..., L, d)."""
        return x.shape[-2] if x.is_floating_point() else x.shape[-1]

    def mask_embeddings(self, length: int, *, mask_id: int) -> torch.Tensor:
        """``m_i = e(M, i)`` for ``i < length``: (L, d). A function of the position alone."""
        return self._embed(torch.full((length,), mask_id, dtype=torch.long))

    def heads(self, h: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """``W h + b`` split into heads: (..., L, d) -> (..., H, L, dh)."""
        return F.linear(h, w, b).unflatten(-1, (self.n_heads, self.d_head)).transpose(-3, -2)

    def gate(self, q: torch.Tensor, k: torch.Tensor, absent: torch.Tensor | None = None
             ) -> torch.Tensor:
        """``softmax_j(q_i . k_j / sqrt(dh))``: (..., H, L, dh) twice -> (..., H, L, L)."""
        # scaled as transformers does (product, then * dh^-1/2): BERT's scores reach ~90,
        # so in float32 another rounding order alone moves gates by ~1e-6
        scores = self.biased((q @ k.transpose(-1, -2)) * self.d_head**-0.5)
        return absent_keys(scores, absent).softmax(-1)

    def biased(self, scores: torch.Tensor) -> torch.Tensor:
        """The gate scores (..., H, L, L) plus the relative position bias ``b^h_ij``, when the
        engine has one (MPNet), else as they are."""
        # NOTE: differs from the paper: MPNet adds b^h(j - i), a function of the two positions
        # alone, to every layer's scores; the gating network stays a lookup g_i(w, j)
        if self.position_bias is None:
            return scores
        return scores + self.position_bias(scores.shape[-1])

    def layer_experts(self, layer: int, h: torch.Tensor) -> torch.Tensor:
        """Layer ``layer``'s experts ``nu^h_j = Wo_h (Wv_h h_j + bv_h)``: (..., L, d) ->
        (..., H, L, d), in the hidden space; the bias ``bo`` is shared by all of them."""
        w = self.layers[layer].attention
        v = self.heads(h, w.w_v, w.b_v)                                      # (..., H, L, dh)
        w_o = w.w_o.view(self.d_model, self.n_heads, self.d_head)
        return torch.einsum("...hjk,dhk->...hjd", v, w_o)

    def mask_gates(self, ids: torch.Tensor, *, mask_id: int,
                   absent: torch.Tensor | None = None) -> torch.Tensor:
        """Layer 1's gates ``pi^h_ij`` at every masked position ``i`` from one pass:
        (..., L) -> (..., H, L, L).

        Row ``i`` is the gate when ``x_i`` is replaced by the mask: the query comes from
        ``m_i`` alone (the gating network), the keys are those of the row's words except at
        ``j = i``, read as the mask (section 3); an ``absent`` cell gets no gate.
        """
        w = self.layers[0].attention
        m = self.mask_embeddings(self.length(ids), mask_id=mask_id)
        u = self.heads(m, w.w_q, w.b_q)                                      # (H, L, dh)
        k = self.heads(self.embed(ids), w.w_k, w.b_k)                        # (..., H, L, dh)
        k_mask = self.heads(m, w.w_k, w.b_k)
        eye = torch.eye(self.length(ids), dtype=torch.bool)
        scores = torch.where(eye, u @ k_mask.transpose(-1, -2), u @ k.transpose(-1, -2))
        return absent_keys(self.biased(scores * self.d_head**-0.5), absent).softmax(-1)

    def mask_experts(self, ids: torch.Tensor, *, mask_id: int) -> torch.Tensor:
        """Layer 1's experts at every masked position: (..., L) -> (..., H, L_i, L_j, d).

        Entry ``[..., h, i, j]`` is ``nu^h(x_j, j)`` when ``x_i`` is masked (``j = i``: the
        mask's own, positional expert ``nu^h(M, i)``).
        """
        nu = self.layer_experts(0, self.embed(ids))                                # (..., H, L, d)
        nu_mask = self.layer_experts(0, self.mask_embeddings(self.length(ids), mask_id=mask_id))
        eye = torch.eye(self.length(ids), dtype=torch.bool).unsqueeze(-1)
        return torch.where(eye, nu_mask.unsqueeze(-3), nu.unsqueeze(-3))

    def masked_hidden(self, ids: torch.Tensor, *, mask_id: int,
                      absent: torch.Tensor | None = None) -> torch.Tensor:
        """The last layer's output at each masked position ``i``: (..., L) -> (..., L, d).

        One layer: the link of layer 1's mixture at every masked position, from one pass.
        Several layers: the ``L`` masked copies, recomputed layer by layer (mixture of MoEs).
        """
        if self.n_layers == 1:
            z = self.mask_mixture(ids, mask_id=mask_id, absent=absent)
            m = self.mask_embeddings(self.length(ids), mask_id=mask_id)
            return self.layers[0].link(z, m.expand_as(z))
        if ids.is_floating_point():
            raise ValueError("input embeddings need a one-layer model: the masked copies of "
                             "several layers are built from word ids")
        copies = masked_copies(ids, mask_id)
        hidden = self.trace(copies, absent=None if absent is None
                            else absent.unsqueeze(-2) | (copies == mask_id)).hidden[-1]
        return hidden.diagonal(dim1=-3, dim2=-2).transpose(-1, -2)

    def mask_mixture(self, ids: torch.Tensor, *, mask_id: int,
                     absent: torch.Tensor | None = None) -> torch.Tensor:
        """Layer 1's mixture ``z_i = sum_h sum_j pi^h_ij nu^h(x_j, j) + bo`` at every masked
        position ``i`` (``x_i`` read as the mask): (..., L) -> (..., L, d)."""
        gates = self.mask_gates(ids, mask_id=mask_id, absent=absent)         # (..., H, Li, Lj)
        experts = self.mask_experts(ids, mask_id=mask_id)                    # (..., H, Li, Lj, d)
        z = torch.einsum("...hij,...hijd->...id", gates, experts)
        return z + self.layers[0].attention.b_o

    def trace(self, ids: torch.Tensor, absent: torch.Tensor | None = None) -> ExpertTrace:
        """Recompute the stack on ``ids`` (as given, masks included) layer by layer.

        Each layer: gates ``softmax_j(q_i . k_j / sqrt(dh))`` per head, experts
        ``nu^h(j) = Wo_h (Wv_h h_j + bv_h)``, the mixture ``sum_h sum_j pi^h_ij nu^h(j) + bo``
        (:func:`mixture`) and the link. For a row with the mask at ``i``, row ``i`` of layer
        1's gates equals :meth:`mask_gates`'s row ``i``.
        """
        h = self.embed(ids)
        hidden, gates, experts = [h], [], []
        for n, layer in enumerate(self.layers):
            w = layer.attention
            g = self.gate(self.heads(h, w.w_q, w.b_q), self.heads(h, w.w_k, w.b_k), absent)
            nu = self.layer_experts(n, h)
            h = layer.link(mixture(g, nu) + w.b_o, h)
            hidden.append(h)
            gates.append(g)
            experts.append(nu)
        return ExpertTrace(gates=torch.stack(gates), experts=torch.stack(experts),
                           hidden=torch.stack(hidden))


@dataclass(frozen=True)
class WordExperts:
    """Layer 1's word experts of every word at every position, as a table.

    ``values`` (H, L, V+1, d): ``nu^h(w, j) = Wo_h (Wv_h (E[w] + P[j]) + bv_h)``, the mask
    (id ``V``) included; ``bias`` (d,): ``bo``, shared by all experts (the gates sum to one).
    """

    values: torch.Tensor
    bias: torch.Tensor


class ContinuousWordExperts(ExpertEngine):
    """A :class:`BidirectionalAttention` model rewritten as mixtures of continuous word experts.

    Built by :func:`to_experts`: an :class:`ExpertEngine` with ``e(w, j) = E[w] + P[j]`` and
    the model's links (identity for a plain block, post-LN ReLU for a BERT block), a
    snapshot of the weights, evaluated without dropout; plus the output layer ``B, c``.

    Shapes: ``gates``: (B, L) -> (B, H, L, L); ``expert_values``: (B, L) -> (B, H, L, L, d);
    ``expert_logits``: (B, L) -> (B, H, L, L, V); ``masked_log_probs``: (B, L) -> (B, L, V).

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
        with torch.no_grad():
            state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        layers = []
        for n in range(cfg.n_layers):
            p = f"layers.{n}."
            w_q, w_k, w_v = state[p + "self_attn.in_proj_weight"].chunk(3)
            b_q, b_k, b_v = state[p + "self_attn.in_proj_bias"].chunk(3)
            attention = AttentionWeights(w_q=w_q, b_q=b_q, w_k=w_k, b_k=b_k, w_v=w_v, b_v=b_v,
                                         w_o=state[p + "self_attn.out_proj.weight"],
                                         b_o=state[p + "self_attn.out_proj.bias"])
            if cfg.block == "bert":
                link: Link = PostLNLink(
                    norm1=(state[p + "norm1.weight"], state[p + "norm1.bias"]),
                    w_1=state[p + "linear1.weight"], b_1=state[p + "linear1.bias"],
                    w_2=state[p + "linear2.weight"], b_2=state[p + "linear2.bias"],
                    norm2=(state[p + "norm2.weight"], state[p + "norm2.bias"]),
                    eps=cfg.ln_eps, activation=F.relu,
                )
            else:
                link = IdentityLink()
            layers.append(ExpertLayer(attention=attention, link=link))
        self.word_embeddings = state["word_embeddings.weight"]                # (V+1, d)
        self.position_embeddings = state["position_embeddings"]               # (L, d)
        self.output_weight = state["output.weight"]                           # B: (V, d)
        self.output_bias = state["output.bias"]                               # c: (V,)
        super().__init__(layers, n_heads=cfg.n_heads, embed=self._word_and_position)

    def _word_and_position(self, ids: torch.Tensor) -> torch.Tensor:
        return self.word_embeddings[ids] + self.position_embeddings[: ids.shape[-1]]

    def _ids(self, x: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Word ids (B, L) checked, or input embeddings (B, L, d) (a float tensor) as given."""
        if isinstance(x, torch.Tensor) and x.is_floating_point():
            cfg = self.config
            if x.dim() != 3 or x.shape[1:] != (cfg.seq_len, cfg.d_model):
                raise ValueError(f"input embeddings must be (B, {cfg.seq_len}, {cfg.d_model}), "
                                 f"got {tuple(x.shape)}")
            return x.to(self.word_embeddings.dtype)
        return as_ids(x, self.config)

    def _absent(self, x: torch.Tensor, absent: torch.Tensor | np.ndarray | None
                ) -> torch.Tensor | None:
        """The absent cells (B, L) of checked inputs ``x``: from the ids (those holding the
        mask, with ``config.absent_experts``), or as given with input embeddings."""
        cfg = self.config
        if absent is not None:
            if not cfg.absent_experts:
                raise ValueError("absent= needs a model with AttentionConfig.absent_experts")
            absent = torch.as_tensor(np.asarray(absent) if not isinstance(absent, torch.Tensor)
                                     else absent, dtype=torch.bool)
            if tuple(absent.shape) != tuple(x.shape[:2]):
                raise ValueError(f"absent must be (B, L) = {tuple(x.shape[:2])}, "
                                 f"got {tuple(absent.shape)}")
            return absent
        if not cfg.absent_experts:
            return None
        if x.is_floating_point():
            raise ValueError("this model reads missing cells as absent experts: with input "
                             "embeddings, give absent= (B, L), the cells that are missing")
        return cfg.absent(x)

    @property
    def experts(self) -> WordExperts:
        """Layer 1's experts of every word (mask included) at every position, (H, L, V+1, d)."""
        tokens = self.word_embeddings[None] + self.position_embeddings[:, None]  # (L, V+1, d)
        values = self.layer_experts(0, tokens.transpose(0, 1))                # (V+1, H, L, d)
        return WordExperts(values=values.permute(1, 2, 0, 3), bias=self.layers[0].attention.b_o)

    def output(self, h: torch.Tensor) -> torch.Tensor:
        """Logits over the ``V`` words, ``B h + c``: (..., d) -> (..., V)."""
        return F.linear(h, self.output_weight, self.output_bias)

    @property
    def logit_bias(self) -> torch.Tensor:
        """``c' = B bo + c`` (V,): a one-layer plain model's logits are ``c'`` plus the
        mixture of the logit experts."""
        return self.output(self.layers[0].attention.b_o)

    @torch.no_grad()
    def gates(self, x: torch.Tensor | np.ndarray, *, layer: int = 0,
              absent: torch.Tensor | np.ndarray | None = None) -> torch.Tensor:
        """Mixture weights ``pi_ij`` of layer ``layer`` (0-based) at each masked position ``i``.

        (B, L) -> (B, H, L, L): row ``i`` is the gate over context positions ``j`` when ``x_i``
        is masked; non-negative, summing to one over ``j``. Layer 0 is the gating network
        (section 2: the masked query is a per-position constant), from one pass; deeper
        layers' gates are computed from the previous layer's mixtures (mixture of MoEs), on
        the ``L`` masked copies. With ``config.absent_experts`` a cell holding the mask id gets
        no gate from the other positions (with input embeddings: give ``absent`` (B, L)).
        """
        x = self._ids(x)
        absent = self._absent(x, absent)
        if not 0 <= layer < self.config.n_layers:
            raise ValueError(f"layer must be in 0..{self.config.n_layers - 1}, got {layer}")
        if layer == 0:
            return self.mask_gates(x, mask_id=self.config.mask_id, absent=absent)
        if x.is_floating_point():
            raise ValueError("gates of deeper layers need word ids, not input embeddings")
        copies = masked_copies(x, self.config.mask_id)
        gates = self.trace(copies, absent=self.config.absent(copies)).gates[layer]
        return gates.diagonal(dim1=1, dim2=3).movedim(-1, 2)

    @torch.no_grad()
    def expert_values(self, x: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Layer 1's experts of each context word in the hidden space: (B, L) -> (B, H, L, L, d).

        Entry ``[b, h, i, j]`` is ``nu^h(x_j, j)`` when ``x_i`` is masked (``j = i``: the mask).
        """
        return self.mask_experts(self._ids(x), mask_id=self.config.mask_id)

    @torch.no_grad()
    def expert_logits(self, x: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Natural parameters ``eta^h(x_j, j) = B nu^h(x_j, j)`` of each expert:
        (B, L) -> (B, H, L, L, V).

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
        return self.expert_values(x) @ self.output_weight.T

    @torch.no_grad()
    def masked_log_probs(self, x: torch.Tensor | np.ndarray, *,
                         absent: torch.Tensor | np.ndarray | None = None) -> torch.Tensor:
        """``log p(x_i | x_-i)`` from gates and experts alone: (B, L) -> (B, L, V).

        - One plain layer, any number of heads: ``log softmax(c' + sum_h sum_j pi^h_ij
          eta^h(x_j, j))``: CBOW with mixture-of-experts weights, heads stacked (section 2).
        - One BERT layer: the link ``f_i`` of the hidden-space mixture ``sum_h sum_j pi^h_ij
          nu^h(x_j, j) + bo`` (section 2, last bullet).
        - Several layers: layer 1's mixtures feed layer 2's gates and experts, and so on
          (mixture of MoEs), on the ``L`` masked copies.
        """
        x = self._ids(x)
        absent = self._absent(x, absent)
        return self.output(self.masked_hidden(x, mask_id=self.config.mask_id, absent=absent)
                           ).log_softmax(-1)


def to_experts(model: BidirectionalAttention) -> ContinuousWordExperts:
    """The expert form of ``model`` (docs/paper.md section 2): gating network, experts, mixtures.

    The result computes the same ``log p(x_i | x_-i)`` as ``model.masked_log_probs`` (to
    rounding) from the gates ``pi_ij`` and experts ``nu(x_j, j)`` alone.
    """
    if not isinstance(model, BidirectionalAttention):
        raise ValueError(f"model must be a BidirectionalAttention, got {type(model).__name__}")
    return ContinuousWordExperts(model)
