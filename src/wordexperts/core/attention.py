"""Bidirectional attention trained as a masked language model (docs/paper.md, sections 1 and 3).

A row ``x = (x_1, ..., x_L)`` of word ids in ``0..V-1`` is embedded as
``e_j = E[x_j] + P[j]``; the mask id is ``M = V``. One or more blocks of multi-head
self-attention follow, then an output layer over the ``V`` words::

    x (B, L) ──► E[x] + P ──► [block] × n_layers ──► output (d -> V) ──► logits (B, L, V)

    block="plain":  h' = MultiHeadAttention(h)                   (the paper's pure model)
    block="bert":   y  = LayerNorm(h + MultiHeadAttention(h))    (post-LN, as the paper trained)
                    h' = LayerNorm(y + W2 relu(W1 y))

``masked_log_probs(x)`` gives ``log p(x_i | x_-i)`` for every position ``i``: the output at
``i`` when ``x_i`` is replaced by the mask. With one block this is one pass over the
unmasked row (section 3); with more it runs the ``L`` masked copies.

With ``absent_experts=True`` a context position that holds the mask id (a missing cell) is an
absent expert: its key is masked out of every other position's gate softmax, so the gates
renormalize over the cells present; a query's own masked slot always stays.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

Method = Literal["single_pass", "copies"]


@dataclass
class AttentionConfig:
    """Shape and block type of a :class:`BidirectionalAttention` model.

    ``vocab_size`` words (ids ``0..V-1``) plus the mask id ``V``; rows of ``seq_len`` positions.
    ``d_ff``, ``dropout`` and ``ln_eps`` only matter for ``block="bert"`` (dropout also
    applies to the attention weights of either block, as in PyTorch's encoder layer).
    ``absent_experts``: a position holding the mask id is left out of every other position's
    gate softmax (a missing cell read as an absent expert) instead of read as the mask word.

    >>> AttentionConfig(vocab_size=10, seq_len=6).mask_id
    10
    """

    vocab_size: int
    seq_len: int
    d_model: int = 20
    n_heads: int = 5
    n_layers: int = 1
    block: Literal["plain", "bert"] = "plain"
    d_ff: int = 5
    dropout: float = 0.0
    ln_eps: float = 1e-6
    # NOTE: not in the paper, which reads a missing context cell as the mask word
    absent_experts: bool = False

    def __post_init__(self) -> None:
        for name in ("vocab_size", "seq_len", "d_model", "n_heads", "n_layers", "d_ff"):
            value = getattr(self, name)
            if not isinstance(value, int | np.integer) or isinstance(value, bool) or value < 1:
                raise ValueError(
                    f"AttentionConfig.{name} must be a positive integer, got {value!r}"
                )
        if self.d_model % self.n_heads:
            raise ValueError(
                f"AttentionConfig.d_model ({self.d_model}) must be divisible by "
                f"n_heads ({self.n_heads})"
            )
        if self.block not in ("plain", "bert"):
            raise ValueError(f"AttentionConfig.block must be 'plain' or 'bert', got {self.block!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"AttentionConfig.dropout must be in [0, 1), got {self.dropout!r}")
        if not self.ln_eps > 0:
            raise ValueError(f"AttentionConfig.ln_eps must be positive, got {self.ln_eps!r}")
        if not isinstance(self.absent_experts, bool | np.bool_):
            raise ValueError(f"AttentionConfig.absent_experts must be a bool, got "
                             f"{self.absent_experts!r}")
        self.absent_experts = bool(self.absent_experts)

    def absent(self, x: torch.Tensor) -> torch.Tensor | None:
        """The absent cells of word ids ``x`` (..., L): those holding the mask id, with
        ``absent_experts``; ``None`` (every cell present) otherwise."""
        return (x == self.mask_id) if self.absent_experts else None

    @property
    def mask_id(self) -> int:
        """The id of the mask token: ``vocab_size``."""
        return self.vocab_size

    @property
    def d_head(self) -> int:
        return self.d_model // self.n_heads

    def to_dict(self) -> dict:
        return asdict(self)


def as_ids(x: torch.Tensor | np.ndarray, config: AttentionConfig, *, name: str = "x",
           allow_mask: bool = True) -> torch.Tensor:
    """Validate a batch of word ids and return it as a ``torch.long`` tensor of shape (B, L).

    >>> as_ids(np.array([[0, 1, 2]]), AttentionConfig(vocab_size=3, seq_len=3, n_heads=1))
    tensor([[0, 1, 2]])
    >>> as_ids(np.array([[0.0, 1.0, 2.0]]), AttentionConfig(vocab_size=3, seq_len=3, n_heads=1))
    Traceback (most recent call last):
    ...
    ValueError: x must hold integer ids, got dtype float64
    """
    if not isinstance(x, torch.Tensor):  # arrays, DataFrames, nested lists
        array = np.asarray(x)
        if array.dtype.kind not in "iub":
            raise ValueError(f"{name} must hold integer ids, got dtype {array.dtype}")
        x = torch.from_numpy(np.ascontiguousarray(array))
    if x.dtype == torch.bool or x.dtype.is_floating_point or x.dtype.is_complex:
        raise ValueError(f"{name} must hold integer ids, got dtype {x.dtype}")
    if x.ndim != 2:
        raise ValueError(f"{name} must have shape (batch, seq_len), got shape {tuple(x.shape)}")
    if x.shape[0] == 0:
        raise ValueError(f"{name} is an empty batch (shape {tuple(x.shape)})")
    if x.shape[1] != config.seq_len:
        raise ValueError(
            f"{name} rows must have length seq_len={config.seq_len}, got {x.shape[1]}"
        )
    high = config.mask_id if allow_mask else config.vocab_size - 1
    lo, hi = int(x.min()), int(x.max())
    if lo < 0 or hi > high:
        what = "0..vocab_size (mask included)" if allow_mask else "0..vocab_size-1"
        raise ValueError(f"{name} ids must lie in {what} = 0..{high}, got range {lo}..{hi}")
    return x.long()


def masked_copies(x: torch.Tensor, mask_id: int) -> torch.Tensor:
    """The ``L`` masked copies of each row: (B, L) -> (B, L, L), copy ``i`` has ``x_i = M``.

    >>> masked_copies(torch.tensor([[4, 5, 6]]), 9)
    tensor([[[9, 5, 6],
             [4, 9, 6],
             [4, 5, 9]]])
    """
    copies = x.unsqueeze(1).repeat(1, x.shape[1], 1)
    copies.diagonal(dim1=1, dim2=2).fill_(mask_id)
    return copies


def gate_softmax(scores: torch.Tensor) -> torch.Tensor:
    """Softmax over the last dimension (the context positions ``j``).

    PyTorch's CPU softmax over a short last dimension is slow (about 3x at L=6, forward and
    backward); over the second-to-last dimension it is not, so transpose around it.
    """
    return scores.transpose(-1, -2).softmax(-2).transpose(-1, -2)


def absent_keys(scores: torch.Tensor, absent: torch.Tensor | None) -> torch.Tensor:
    """Gate scores (..., H, Li, Lj) with the keys of absent cells (..., Lj) set to -inf for
    every query but their own position (``i = j`` stays: a query's own slot is never
    absent, so every gate has a key left).

    >>> s = torch.zeros(1, 1, 3, 3)
    >>> gate_softmax(absent_keys(s, torch.tensor([[False, True, False]])))[0, 0]
    tensor([[0.5000, 0.0000, 0.5000],
            [0.3333, 0.3333, 0.3333],
            [0.5000, 0.0000, 0.5000]])
    """
    if absent is None:
        return scores
    length = scores.shape[-1]
    eye = torch.eye(length, dtype=torch.bool, device=scores.device)
    drop = absent[..., None, None, :] & ~eye                             # (..., 1, Li, Lj)
    return scores.masked_fill(drop, float("-inf"))


class MultiHeadAttention(nn.Module):
    """Multi-head scaled dot-product attention, parameters laid out as ``nn.MultiheadAttention``.

    ``in_proj_weight`` stacks ``Wq, Wk, Wv`` (3d x d); ``out_proj`` is ``Wo``. Keeping
    PyTorch's layout makes a block's ``state_dict`` load into ``nn.TransformerEncoderLayer``.
    """

    def __init__(self, *, d_model: int, n_heads: int, dropout: float) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * d_model, d_model))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * d_model))
        self.out_proj = nn.Linear(d_model, d_model)
        self.dropout = nn.Dropout(dropout)
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.out_proj.bias)

    def heads(self, h: torch.Tensor, parts: str) -> list[torch.Tensor]:
        """Projections of ``h`` named by ``parts`` (a run of ``"qkv"``), split into heads.

        (..., L, d) -> one (..., H, L, dh) per part, from a single matrix multiply.
        """
        d = h.shape[-1]
        first = "qkv".index(parts[0])
        rows = slice(first * d, (first + len(parts)) * d)
        y = F.linear(h, self.in_proj_weight[rows], self.in_proj_bias[rows])
        return [part.unflatten(-1, (self.n_heads, d // self.n_heads)).transpose(-3, -2)
                for part in y.split(d, dim=-1)]

    def scores(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """Gate scores ``q_i . k_j / sqrt(dh)``: (..., H, L, dh) twice -> (..., H, L, L)."""
        return q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])

    def merge(self, a: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """``Wo`` applied to the mixtures ``sum_j a_ij v_j`` of all heads: -> (..., L, d)."""
        return self.out_proj(self.merge_heads(self.dropout(a) @ v))

    @staticmethod
    def merge_heads(ctx: torch.Tensor) -> torch.Tensor:
        return ctx.transpose(-3, -2).flatten(-2)


class Block(nn.Module):
    """One attention block: ``"plain"`` (attention only) or ``"bert"`` (post-LN, ReLU FFN).

    Parameter names equal ``nn.TransformerEncoderLayer``'s, so a BERT block converts both
    ways by ``load_state_dict`` (see :func:`to_torch_encoder_layer`).

    Shapes: ``forward``: (B, L, d) -> (B, L, d); ``single_pass``: (B, L, d), (L, d) -> (B, L, d).
    Both take ``absent`` (B, L) bool or None: the cells left out of other positions' gates
    (:func:`absent_keys`).
    """

    def __init__(self, config: AttentionConfig) -> None:
        super().__init__()
        d = config.d_model
        self.bert = config.block == "bert"
        self.self_attn = MultiHeadAttention(d_model=d, n_heads=config.n_heads,
                                            dropout=config.dropout)
        if self.bert:
            self.linear1 = nn.Linear(d, config.d_ff)
            self.linear2 = nn.Linear(config.d_ff, d)
            self.norm1 = nn.LayerNorm(d, eps=config.ln_eps)
            self.norm2 = nn.LayerNorm(d, eps=config.ln_eps)
            # NOTE: differs from the paper: dropout at nn.TransformerEncoderLayer's four sites
            # (attention weights, attention output, FFN hidden, FFN output); the paper's Keras
            # block drops the attention and FFN outputs only (as wordexperts.tabular trains).
            self.dropout = nn.Dropout(config.dropout)
            self.dropout1 = nn.Dropout(config.dropout)
            self.dropout2 = nn.Dropout(config.dropout)

    def forward(self, h: torch.Tensor, absent: torch.Tensor | None = None) -> torch.Tensor:
        attn = self.self_attn
        q, k, v = attn.heads(h, "qkv")
        a = gate_softmax(absent_keys(attn.scores(q, k), absent))
        return self.link(attn.merge(a, v), h)

    def single_pass(self, e: torch.Tensor, m: torch.Tensor,
                    absent: torch.Tensor | None = None) -> torch.Tensor:
        """Outputs at every position ``i`` as if ``x_i`` were masked, from one pass (section 3).

        ``e``: unmasked embeddings (B, L, d); ``m``: mask embeddings ``E[M] + P`` (L, d).
        Query ``i`` is ``u_i = Wq m_i``; key and value ``j = i`` are the mask's; the residual
        at ``i`` is ``m_i``. Everything else is shared by the ``L`` copies.
        """
        attn = self.self_attn
        q_mask, k_mask, v_mask = attn.heads(m, "qkv")                           # (H, L, dh)
        k, v = attn.heads(e, "kv")                                              # (B, H, L, dh)
        s = attn.scores(q_mask, k)                                              # (B, H, L, L)
        eye = torch.eye(e.shape[1], dtype=torch.bool, device=e.device)
        s_self = (q_mask * k_mask).sum(-1) / math.sqrt(q_mask.shape[-1])       # (H, L)
        a = gate_softmax(absent_keys(torch.where(eye, s_self.unsqueeze(-1), s), absent))
        a = attn.dropout(a)
        # sum_j a_ij v_j, with v_i swapped for the mask's value at j = i
        ctx = a @ v + a.diagonal(dim1=-2, dim2=-1).unsqueeze(-1) * (v_mask - v)
        return self.link(attn.out_proj(attn.merge_heads(ctx)), m.expand_as(e))

    def link(self, z: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """What follows the attention mixture ``z`` at a position whose input is ``h``."""
        if not self.bert:
            return z
        y = self.norm1(h + self.dropout1(z))
        return self.norm2(y + self.dropout2(self.linear2(self.dropout(F.relu(self.linear1(y))))))


class MaskedLanguageModel(nn.Module):
    """What a masked language model over rows of ``seq_len`` word ids provides.

    Subclasses define ``forward`` (logits at every position of the rows as given, mask ids
    included) and ``single_pass_logits`` (the ``L`` masked predictions from one pass over the
    unmasked rows, where that is exact). This class turns them into ``masked_logits`` and
    ``masked_log_probs``, by one pass or by the ``L`` masked copies.
    """

    config: Any  # a config with vocab_size, seq_len and mask_id

    @property
    def single_pass_exact(self) -> bool:
        """Whether :meth:`single_pass_logits` equals the ``L`` masked copies exactly."""
        return True

    def single_pass_logits(self, x: torch.Tensor) -> torch.Tensor:
        """The ``L`` masked predictions of validated ids ``x`` from one pass: (B, L, V)."""
        raise NotImplementedError

    @torch.no_grad()
    def masked_log_probs(self, x: torch.Tensor | np.ndarray, *,
                         method: Method | None = None) -> torch.Tensor:
        """``log p(x_i | x_-i)`` over the ``V`` words for every position: (B, L) -> (B, L, V).

        The log-softmax of :meth:`masked_logits`, for evaluation: computed without gradients
        (train through :meth:`masked_logits` or :func:`~wordexperts.core.training.mlm_loss`).
        """
        return self.masked_logits(x, method=method).log_softmax(-1)

    def masked_logits(self, x: torch.Tensor | np.ndarray, *,
                      method: Method | None = None) -> torch.Tensor:
        """Logits of ``p(x_i | x_-i)`` for every position ``i``: (B, L) -> (B, L, V).

        ``method="single_pass"`` (the default where it is exact) computes all ``L`` masked
        predictions from one pass; ``"copies"`` (the default otherwise) runs the ``L`` masked
        copies and reads position ``i`` of copy ``i``.
        """
        x = as_ids(x, self.config)
        method = method or ("single_pass" if self.single_pass_exact else "copies")
        if method == "single_pass":
            if not self.single_pass_exact:
                raise ValueError(
                    "method='single_pass' is exact for one layer only; "
                    f"this model has n_layers={self.config.n_layers}: use method='copies'"
                )
            return self.single_pass_logits(x)
        if method == "copies":
            b, length = x.shape
            logits = self(masked_copies(x, self.config.mask_id).flatten(0, 1))
            # copy i predicts position i: take the diagonal of (B, copy, position, V)
            own = logits.view(b, length, length, -1).diagonal(dim1=1, dim2=2)
            return own.transpose(1, 2)
        raise ValueError(f"method must be 'single_pass' or 'copies', got {method!r}")


def check_config(config: object, expected: type) -> None:
    """Raise ``TypeError`` unless ``config`` is an instance of ``expected`` (a config class)."""
    if not isinstance(config, expected):
        raise TypeError(
            f"config must be a {expected.__name__}, got {type(config).__name__}: "
            f"build one with {expected.__name__}(vocab_size=..., seq_len=..., ...)"
        )


class BidirectionalAttention(MaskedLanguageModel):
    """Bidirectional attention with learned positions and an output layer over ``V`` words.

    Implements docs/paper.md section 1 (one layer, one or several heads), its stacking into
    several layers, and the single-pass masked computation of section 3.

    ::

        ids x (B, L), values 0..V (V = mask)
          │  e_j = E[x_j] + P[j]            E: (V+1, d)  P: (L, d)
          ▼
        block_1 … block_n                   each (B, L, d) -> (B, L, d)
          ▼
        logits = h B^T + c                  (B, L, V)

    >>> _ = torch.manual_seed(0)
    >>> model = BidirectionalAttention(AttentionConfig(vocab_size=10, seq_len=6))
    >>> x = torch.randint(0, 10, (4, 6))
    >>> model(x).shape, model.masked_log_probs(x).shape
    (torch.Size([4, 6, 10]), torch.Size([4, 6, 10]))
    """

    def __init__(self, config: AttentionConfig) -> None:
        super().__init__()
        check_config(config, AttentionConfig)
        self.config = config
        self.word_embeddings = nn.Embedding(config.vocab_size + 1, config.d_model)
        # NOTE: differs from the paper: PyTorch's initialization (unit-variance embeddings);
        # the paper's Keras model starts from small ones (wordexperts.tabular uses that).
        self.position_embeddings = nn.Parameter(torch.randn(config.seq_len, config.d_model))
        self.layers = nn.ModuleList(Block(config) for _ in range(config.n_layers))
        self.output = nn.Linear(config.d_model, config.vocab_size)

    def embed(self, x: torch.Tensor, upper: torch.Tensor | None = None,
              frac: torch.Tensor | None = None) -> torch.Tensor:
        """``E[x_j] + P[j]``: (B, L) -> (B, L, d).

        With ``upper`` (B, L) word ids and ``frac`` (B, L) in [0, 1]: ``(1 - frac) E[x_j] +
        frac E[upper_j] + P[j]``, a cell read between two words.
        """
        e = self.word_embeddings(x)
        if upper is not None:
            # NOTE: not in the paper: the tabular model reads a numeric value between the
            # words of its two neighbouring bins (wordexperts.tabular.encoding.interpolate)
            e = e + frac.to(e.dtype).unsqueeze(-1) * (self.word_embeddings(upper) - e)
        return e + self.position_embeddings

    def mask_embeddings(self) -> torch.Tensor:
        """``m_i = E[M] + P[i]`` for every position: (L, d). The masked query depends on i only."""
        return self.word_embeddings.weight[self.config.mask_id] + self.position_embeddings

    def word_vectors(self) -> torch.Tensor:
        """Input embeddings of the ``V`` words, mask row excluded: (V, d)."""
        return self.word_embeddings.weight[: self.config.vocab_size]

    def forward(self, x: torch.Tensor | np.ndarray) -> torch.Tensor:
        x = as_ids(x, self.config)
        h, absent = self.embed(x), self.config.absent(x)
        for layer in self.layers:
            h = layer(h, absent)
        return self.output(h)

    @property
    def single_pass_exact(self) -> bool:
        """One block: the ``L`` masked copies differ only at their own position (section 3)."""
        return self.config.n_layers == 1

    def single_pass_logits(self, x: torch.Tensor) -> torch.Tensor:
        h = self.layers[0].single_pass(self.embed(x), self.mask_embeddings(),
                                       self.config.absent(x))
        return self.output(h)


def to_torch_encoder_layer(block: Block, config: AttentionConfig) -> nn.TransformerEncoderLayer:
    """A ``nn.TransformerEncoderLayer`` (post-LN, ReLU, batch_first) with the block's weights.

    >>> cfg = AttentionConfig(vocab_size=5, seq_len=4, d_model=8, n_heads=2, block="bert")
    >>> layer = to_torch_encoder_layer(BidirectionalAttention(cfg).layers[0], cfg)
    >>> layer.norm_first, layer.self_attn.batch_first
    (False, True)
    """
    if config.block != "bert":
        raise ValueError("only a block='bert' block has a nn.TransformerEncoderLayer equivalent")
    layer = nn.TransformerEncoderLayer(
        config.d_model, config.n_heads, dim_feedforward=config.d_ff, dropout=config.dropout,
        activation="relu", layer_norm_eps=config.ln_eps, batch_first=True, norm_first=False,
    )
    layer.to(block.self_attn.in_proj_weight.dtype).load_state_dict(block.state_dict())
    return layer


def from_torch_encoder_layer(layer: nn.TransformerEncoderLayer, block: Block) -> Block:
    """Copy a post-LN ReLU ``nn.TransformerEncoderLayer``'s weights into ``block`` (returned)."""
    if layer.norm_first or layer.activation_relu_or_gelu != 1:
        raise ValueError("layer must be post-LN (norm_first=False) with activation='relu'")
    block.load_state_dict(layer.state_dict())
    return block
