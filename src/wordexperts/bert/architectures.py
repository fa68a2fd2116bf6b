"""The post-LN encoders of the BERT family, each mapped onto one expert form (paper.md section 2).

Every encoder here embeds word ``w`` at position ``j`` by a function of the two alone and
then stacks post-LN blocks (attention, ``LN1(h + z)``, feed-forward, ``LN2``), so the
paper's reading holds for all of them: gates over the context words, heads stacked, layers
a mixture of mixtures. They differ only in how a checkpoint names its tensors and in the
embedding function (nanoGPT style: the foreign names are mapped onto the project's own
pieces, :class:`wordexperts.bert.checkpoint.BertExperts`)::

    e(w, j) = Proj( LN( E[w] + T[0] + P[j + offset] ) )       Proj, T: when the encoder has them
    scores  = q_i . k_j / sqrt(dh) + b^h(j - i)                b: MPNet's relative position bias

    encoder             T[0]  offset  Proj (factorized)            shared layers  b(j - i)
    BERT                yes   0       -                            -              -
    RoBERTa, XLM-R      yes   pad+1   -                            -              -
    DistilBERT          -     0       -                            -              -
    ELECTRA             yes   0       embeddings_project           -              -
    ALBERT              yes   0       embedding_hidden_mapping_in  layer groups   -
    MPNet               -     pad+1   -                            -              yes

:func:`architecture` picks the class of a ``config.json`` by its ``model_type`` (an
encoder outside the family is an error listing the supported ones); the class reads the
configuration into an :class:`EncoderConfig` and names the checkpoint tensors of the
embedding and of each layer by the project's names (``query.weight``, ``norm1.bias``, ...).

>>> arch = architecture({"model_type": "distilbert", "vocab_size": 30, "dim": 8,
...                      "n_layers": 2, "n_heads": 2})
>>> arch.name, arch.special.mask, arch.encoder.d_ff, arch.layer_names(1)["ff1.weight"]
('DistilBERT', '[MASK]', 32, ('transformer.layer.1.ffn.lin1.weight', (32, 8)))
>>> sorted(supported_model_types())[:3]
['albert', 'bert', 'distilbert']
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

Shape = tuple[int, ...]
# the project's name of a tensor -> (the checkpoint's name without its prefix, shape)
TensorNames = dict[str, tuple[str, Shape]]

# the names of one layer's tensors, in the project's words: the attention's four linear
# maps, LN1 (after the attention), the feed-forward's two linear maps, LN2
LAYER_PIECES = ("query", "key", "value", "output", "norm1", "ff1", "ff2", "norm2")


@dataclass(frozen=True)
class SpecialTokens:
    """The tokens a tokenizer adds or refuses: ``mask`` (the position explained), ``unk``,
    ``cls`` and ``sep`` (around the sentence) and ``pad``.

    >>> SpecialTokens(mask="<mask>", unk="<unk>", cls="<s>", sep="</s>", pad="<pad>").frame
    ('<s>', '</s>', '<pad>')
    """

    mask: str
    unk: str
    cls: str
    sep: str
    pad: str

    @property
    def frame(self) -> tuple[str, str, str]:
        """``cls``, ``sep`` and ``pad``: added around the sentence, never written in it."""
        return (self.cls, self.sep, self.pad)


WORDPIECE_TOKENS = SpecialTokens(mask="[MASK]", unk="[UNK]", cls="[CLS]", sep="[SEP]",
                                 pad="[PAD]")
BPE_TOKENS = SpecialTokens(mask="<mask>", unk="<unk>", cls="<s>", sep="</s>", pad="<pad>")


@dataclass(frozen=True)
class EncoderConfig:
    """An encoder's configuration in the project's terms, whatever its ``config.json`` says.

    ``d_model`` the hidden size, ``embedding_size`` that of ``E``, ``P``, ``T`` (ALBERT,
    ELECTRA: projected to ``d_model``), ``n_layers`` the layers of the expert stack (ALBERT:
    the layers as run, shared weights repeated), ``max_positions`` the rows of ``P`` of
    which position ``j`` reads row ``j + position_offset``, ``type_vocab_size`` 0 for an
    encoder without token types, ``relative_buckets`` 0 for one without a position bias.

    >>> c = EncoderConfig(vocab_size=10, d_model=8, embedding_size=8, n_layers=2, n_heads=2,
    ...                   d_ff=6, max_positions=12, position_offset=2, type_vocab_size=1,
    ...                   eps=1e-5, activation="gelu")
    >>> c.max_length
    10
    """

    vocab_size: int
    d_model: int
    embedding_size: int
    n_layers: int
    n_heads: int
    d_ff: int
    max_positions: int
    position_offset: int
    type_vocab_size: int
    eps: float
    activation: str
    relative_buckets: int = 0

    @property
    def max_length(self) -> int:
        """The longest sequence the position embeddings cover, ``[CLS]`` and ``[SEP]`` included."""
        return self.max_positions - self.position_offset


def _int(cfg: Mapping[str, Any], name: str) -> int:
    value = cfg.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"folder: config.json has no positive integer {name!r}")
    return value


def _linear(name: str, rows: int, cols: int) -> TensorNames:
    return {"weight": (f"{name}.weight", (rows, cols)), "bias": (f"{name}.bias", (rows,))}


def _norm(name: str, d: int) -> TensorNames:
    return {"weight": (f"{name}.weight", (d,)), "bias": (f"{name}.bias", (d,))}


def _pieces(c: EncoderConfig, names: Mapping[str, str]) -> TensorNames:
    """One layer's tensors from the checkpoint's name of each piece (``LAYER_PIECES``)."""
    d, ff = c.d_model, c.d_ff
    rows_cols = {"query": (d, d), "key": (d, d), "value": (d, d), "output": (d, d),
                 "ff1": (ff, d), "ff2": (d, ff)}
    out: TensorNames = {}
    for piece in LAYER_PIECES:
        part = (_norm(names[piece], d) if piece.startswith("norm")
                else _linear(names[piece], *rows_cols[piece]))
        out.update({f"{piece}.{kind}": value for kind, value in part.items()})
    return out


class Architecture:
    """One encoder family: how its ``config.json`` and tensor names map onto the expert form.

    Subclasses set ``name``, ``model_types`` (``config.json``'s ``model_type``), ``pooler``
    (whether its ``transformers`` encoder takes ``add_pooling_layer``, for the check),
    ``special`` (the tokenizer's default special tokens), ``mlm_heads`` (tensor name
    prefixes of a masked-LM head) and ``vocab_files``, and give :meth:`read` and
    :meth:`layer_names`. The BERT layout is the default. An instance holds one
    ``config.json`` (``cfg``) and its :class:`EncoderConfig` (``encoder``).
    """

    name: ClassVar[str] = "BERT"
    model_types: ClassVar[tuple[str, ...]] = ("bert",)
    pooler: ClassVar[bool] = True
    special: ClassVar[SpecialTokens] = WORDPIECE_TOKENS
    mlm_heads: ClassVar[tuple[str, ...]] = ("cls.predictions.",)
    # the tokenizer files it can be read from (tokenizer.json is always preferred)
    vocab_files: ClassVar[tuple[str, ...]] = ("tokenizer.json", "vocab.txt")

    def __init__(self, cfg: Mapping[str, Any]) -> None:
        self.cfg = dict(cfg)
        self.encoder = self.read(self.cfg)

    def read(self, cfg: Mapping[str, Any]) -> EncoderConfig:
        """``config.json`` read into an :class:`EncoderConfig`, transformers' defaults for
        what it leaves out."""
        d = _int(cfg, "hidden_size")
        return EncoderConfig(
            vocab_size=_int(cfg, "vocab_size"), d_model=d,
            embedding_size=cfg.get("embedding_size", d),
            n_layers=_int(cfg, "num_hidden_layers"), n_heads=_int(cfg, "num_attention_heads"),
            d_ff=cfg.get("intermediate_size", 4 * d),
            max_positions=cfg.get("max_position_embeddings", 512),
            position_offset=self.position_offset(cfg),
            type_vocab_size=cfg.get("type_vocab_size", 2),
            eps=float(cfg.get("layer_norm_eps", 1e-12)),
            activation=cfg.get("hidden_act", "gelu"))

    def position_offset(self, cfg: Mapping[str, Any]) -> int:
        """Position ``j`` reads row ``j + offset`` of ``P`` (0: BERT's absolute positions)."""
        return 0

    def embedding_names(self) -> TensorNames:
        """The embedding's tensors: ``word``, ``position``, ``token_type`` (if any),
        ``norm.*``, ``projection.*`` (if any), ``relative_bias`` (if any)."""
        c = self.encoder
        e = c.embedding_size
        names: TensorNames = {
            "word": ("embeddings.word_embeddings.weight", (c.vocab_size, e)),
            "position": ("embeddings.position_embeddings.weight", (c.max_positions, e)),
            "norm.weight": ("embeddings.LayerNorm.weight", (e,)),
            "norm.bias": ("embeddings.LayerNorm.bias", (e,)),
        }
        if c.type_vocab_size:
            names["token_type"] = ("embeddings.token_type_embeddings.weight",
                                   (c.type_vocab_size, e))
        return names

    def layer_names(self, n: int) -> TensorNames:
        """Layer ``n``'s tensors (0-based, in the order the encoder runs them)."""
        p = f"encoder.layer.{n}."
        return _pieces(self.encoder, {
            "query": p + "attention.self.query", "key": p + "attention.self.key",
            "value": p + "attention.self.value", "output": p + "attention.output.dense",
            "norm1": p + "attention.output.LayerNorm", "ff1": p + "intermediate.dense",
            "ff2": p + "output.dense", "norm2": p + "output.LayerNorm"})

    def tensor_names(self) -> TensorNames:
        """All the tensors the expert form reads: the embedding's, then ``layer.{n}.*``."""
        names = dict(self.embedding_names())
        for n in range(self.encoder.n_layers):
            names.update({f"layer.{n}.{k}": v for k, v in self.layer_names(n).items()})
        return names


class Bert(Architecture):
    """BERT (and MiniLM, which is a BERT): word, token type and absolute position
    embeddings, ``encoder.layer.{n}`` post-LN blocks."""


class Roberta(Architecture):
    """RoBERTa and XLM-RoBERTa: BERT's layers; position ``j`` reads row ``pad + 1 + j`` of
    ``P`` (fairseq's positions, counted after the padding id), one token type."""

    name = "RoBERTa"
    model_types = ("roberta", "xlm-roberta")
    special = BPE_TOKENS
    mlm_heads = ("lm_head.",)
    vocab_files = ("tokenizer.json",)

    def position_offset(self, cfg: Mapping[str, Any]) -> int:
        return cfg.get("pad_token_id", 1) + 1


class DistilBert(Architecture):
    """DistilBERT: word and position embeddings (no token type), ``transformer.layer.{n}``
    blocks with ``q_lin``/``k_lin``/``v_lin``/``out_lin``; its LayerNorms' eps is 1e-12."""

    name = "DistilBERT"
    model_types = ("distilbert",)
    pooler = False
    mlm_heads = ("vocab_projector.", "vocab_transform.")

    def read(self, cfg: Mapping[str, Any]) -> EncoderConfig:
        d = _int(cfg, "dim")
        return EncoderConfig(
            vocab_size=_int(cfg, "vocab_size"), d_model=d, embedding_size=d,
            n_layers=_int(cfg, "n_layers"), n_heads=_int(cfg, "n_heads"),
            d_ff=cfg.get("hidden_dim", 4 * d),
            max_positions=cfg.get("max_position_embeddings", 512), position_offset=0,
            type_vocab_size=0, eps=1e-12, activation=cfg.get("activation", "gelu"))

    def layer_names(self, n: int) -> TensorNames:
        p = f"transformer.layer.{n}."
        return _pieces(self.encoder, {
            "query": p + "attention.q_lin", "key": p + "attention.k_lin",
            "value": p + "attention.v_lin", "output": p + "attention.out_lin",
            "norm1": p + "sa_layer_norm", "ff1": p + "ffn.lin1", "ff2": p + "ffn.lin2",
            "norm2": p + "output_layer_norm"})


class Electra(Architecture):
    """ELECTRA (the discriminator; a generator reads the same): BERT's embeddings of size
    ``embedding_size``, projected to the hidden size by ``embeddings_project`` when the two
    differ, then BERT's layers."""

    name = "ELECTRA"
    model_types = ("electra",)
    pooler = False
    mlm_heads = ("generator_lm_head.",)

    def embedding_names(self) -> TensorNames:
        names, c = super().embedding_names(), self.encoder
        if c.embedding_size != c.d_model:
            names.update({f"projection.{k}": v for k, v in _linear(
                "embeddings_project", c.d_model, c.embedding_size).items()})
        return names


class Albert(Architecture):
    """ALBERT: factorized embeddings (size ``embedding_size``, projected by
    ``encoder.embedding_hidden_mapping_in``) and layers shared within groups: layer ``i``
    runs the ``inner_group_num`` layers of group ``i * num_hidden_groups //
    num_hidden_layers``, so the expert stack has ``num_hidden_layers * inner_group_num``
    layers, the shared ones repeated."""

    name = "ALBERT"
    model_types = ("albert",)
    special = SpecialTokens(mask="[MASK]", unk="<unk>", cls="[CLS]", sep="[SEP]", pad="<pad>")
    mlm_heads = ("predictions.",)
    vocab_files = ("tokenizer.json",)

    def read(self, cfg: Mapping[str, Any]) -> EncoderConfig:
        base = super().read({"hidden_act": "gelu_new", "embedding_size": 128, **cfg})
        inner = cfg.get("inner_group_num", 1)
        return EncoderConfig(**{**base.__dict__, "n_layers": base.n_layers * inner})

    def embedding_names(self) -> TensorNames:
        names, c = super().embedding_names(), self.encoder
        names.update({f"projection.{k}": v for k, v in _linear(
            "encoder.embedding_hidden_mapping_in", c.d_model, c.embedding_size).items()})
        return names

    def layer_names(self, n: int) -> TensorNames:
        outer, inner = divmod(n, self.cfg.get("inner_group_num", 1))
        # transformers' int(i / (num_hidden_layers / num_hidden_groups)), in integers
        group = outer * self.cfg.get("num_hidden_groups", 1) // self.cfg["num_hidden_layers"]
        p = f"encoder.albert_layer_groups.{group}.albert_layers.{inner}."
        return _pieces(self.encoder, {
            "query": p + "attention.query", "key": p + "attention.key",
            "value": p + "attention.value", "output": p + "attention.dense",
            "norm1": p + "attention.LayerNorm", "ff1": p + "ffn", "ff2": p + "ffn_output",
            "norm2": p + "full_layer_layer_norm"})


class MPNet(Architecture):
    """MPNet: word and position embeddings (no token type; position ``j`` reads row
    ``j + 2``), ``attention.attn.{q,k,v,o}`` layers, and a relative position bias
    ``b^h(j - i)`` (``encoder.relative_attention_bias``, 32 log-spaced buckets) added to
    every layer's gate scores."""

    name = "MPNet"
    model_types = ("mpnet",)
    special = SpecialTokens(mask="<mask>", unk="[UNK]", cls="<s>", sep="</s>", pad="<pad>")
    mlm_heads = ("lm_head.",)

    def read(self, cfg: Mapping[str, Any]) -> EncoderConfig:
        base = super().read({**cfg, "type_vocab_size": 0})
        return EncoderConfig(**{**base.__dict__,
                                "relative_buckets": cfg.get("relative_attention_num_buckets", 32)})

    def position_offset(self, cfg: Mapping[str, Any]) -> int:
        return 2  # transformers' MPNetEmbeddings fixes padding_idx = 1

    def embedding_names(self) -> TensorNames:
        names, c = super().embedding_names(), self.encoder
        names["relative_bias"] = ("encoder.relative_attention_bias.weight",
                                  (c.relative_buckets, c.n_heads))
        return names

    def layer_names(self, n: int) -> TensorNames:
        p = f"encoder.layer.{n}."
        return _pieces(self.encoder, {
            "query": p + "attention.attn.q", "key": p + "attention.attn.k",
            "value": p + "attention.attn.v", "output": p + "attention.attn.o",
            "norm1": p + "attention.LayerNorm", "ff1": p + "intermediate.dense",
            "ff2": p + "output.dense", "norm2": p + "output.LayerNorm"})


ARCHITECTURES: tuple[type[Architecture], ...] = (Bert, Roberta, DistilBert, Electra, Albert,
                                                 MPNet)


def supported_model_types() -> dict[str, str]:
    """``model_type`` -> the family's name, for every encoder the expert form reads."""
    return {t: arch.name for arch in ARCHITECTURES for t in arch.model_types}


def architecture(cfg: Mapping[str, Any]) -> Architecture:
    """The :class:`Architecture` of a ``config.json`` (a dict), by its ``model_type``; a
    ValueError listing the supported ones otherwise."""
    model_type = cfg.get("model_type")
    for arch in ARCHITECTURES:
        if model_type in arch.model_types:
            return arch(cfg)
    listed = ", ".join(f"{t} ({name})" for t, name in supported_model_types().items())
    raise ValueError(f"folder: config model_type {model_type!r} is not a supported encoder; "
                     f"supported model types: {listed}")
