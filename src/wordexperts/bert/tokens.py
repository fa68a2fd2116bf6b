"""Sentences with one ``[MASK]`` as the tokens of a BERT-family checkpoint.

:func:`load_tokenizer` reads the tokenizer of a checkpoint folder (``tokenizer.json``, or
``vocab.txt`` for the WordPiece encoders) with the ``tokenizers`` package, its special
tokens from the folder's tokenizer configuration (:func:`special_tokens`), and
:func:`encode_masked` turns a sentence into a :class:`MaskedSentence`: the positions the
encoder reads, and which one is the mask (the position whose mixture is explained).
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wordexperts.bert.architectures import (
    WORDPIECE_TOKENS,
    Architecture,
    Bert,
    SpecialTokens,
    architecture,
)
from wordexperts.bert.files import read_config, read_json

__all__ = ["MASK_TOKEN", "MaskedSentence", "encode_masked", "load_tokenizer",
           "require_packages", "special_tokens"]

# how a sentence marks the position to explain, for every checkpoint (a checkpoint whose
# mask token is another, such as RoBERTa's <mask>, reads [MASK] as its own)
MASK_TOKEN = "[MASK]"


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



@dataclass(frozen=True)
class MaskedSentence:
    """A sentence with one ``[MASK]``, tokenized: ``[CLS] ... [SEP]`` (RoBERTa: ``<s> ...
    </s>``) tokens of the checkpoint's tokenizer.

    ``text`` is the sentence as tokenized (``[MASK]`` written as the checkpoint's mask
    token); ``ids``/``tokens``/``offsets`` (character spans in ``text``; ``(0, 0)`` for the
    added ``[CLS]``/``[SEP]``) have one entry per position; ``mask_position`` is the index
    ``i`` of the mask among them.
    """

    text: str
    ids: tuple[int, ...]
    tokens: tuple[str, ...]
    offsets: tuple[tuple[int, int], ...]
    mask_position: int

    def __len__(self) -> int:
        return len(self.ids)


def special_tokens(folder: str | Path, family: type[Architecture] = Bert) -> SpecialTokens:
    """The tokenizer's special tokens: as ``tokenizer_config.json`` (else
    ``special_tokens_map.json``) in ``folder`` names them, the ``family``'s defaults for
    those they leave out."""
    folder = Path(folder)
    named: dict[str, str] = {}
    for name in ("special_tokens_map.json", "tokenizer_config.json"):  # the latter wins
        if (folder / name).is_file():
            for key, value in read_json(folder / name).items():
                value = value.get("content") if isinstance(value, dict) else value
                if key.endswith("_token") and isinstance(value, str):
                    named[key[: -len("_token")]] = value
    default = family.special
    return SpecialTokens(**{field: named.get(field, getattr(default, field))
                            for field in ("mask", "unk", "cls", "sep", "pad")})


def load_tokenizer(folder: str | Path, family: type[Architecture] | None = None) -> Any:
    """The checkpoint's tokenizer (a ``tokenizers.Tokenizer``), never padding nor cutting.

    ``tokenizer.json`` when present (it records the exact normalization, and is the only
    file read for byte-level BPE and SentencePiece tokenizers: RoBERTa, XLM-RoBERTa,
    ALBERT); otherwise, for WordPiece encoders, built from ``vocab.txt`` with lower-casing as
    ``tokenizer_config.json`` says (default: on). ``family``: the encoder family
    (:mod:`wordexperts.bert.architectures`), by default that of the folder's
    ``config.json`` (BERT without one). Padding and truncation are switched off: a too-long
    sentence is an error, not cut. Every special token (:func:`special_tokens`) must be in
    the vocabulary, and the tokenizer must frame a sentence with ``cls`` and ``sep``.
    """
    require_packages("tokenizers")
    import tokenizers
    from tokenizers.implementations import BertWordPieceTokenizer
    from tokenizers.processors import TemplateProcessing

    folder = Path(folder)
    if family is None:
        family = (type(architecture(read_config(folder)))
                  if (folder / "config.json").is_file() else Bert)
    special = special_tokens(folder, family)
    if (folder / "tokenizer.json").is_file():
        tokenizer = tokenizers.Tokenizer.from_file(str(folder / "tokenizer.json"))
    elif "vocab.txt" in family.vocab_files and (folder / "vocab.txt").is_file():
        settings = read_json(folder / "tokenizer_config.json") if (
            folder / "tokenizer_config.json").is_file() else {}
        lowercase = bool(settings.get("do_lower_case", True))
        tokenizer = BertWordPieceTokenizer(
            str(folder / "vocab.txt"), lowercase=lowercase,
            strip_accents=settings.get("strip_accents"),
            handle_chinese_chars=bool(settings.get("tokenize_chinese_chars", True)),
            unk_token=special.unk, sep_token=special.sep, cls_token=special.cls,
            pad_token=special.pad, mask_token=special.mask,
        )
    else:
        files = " nor ".join(family.vocab_files)
        raise FileNotFoundError(f"folder: no {files} in {folder} (the {family.name} "
                                "tokenizer is read from these files)")
    tokenizer.no_padding()
    tokenizer.no_truncation()
    for token in (special.mask, special.unk, *special.frame):
        if tokenizer.token_to_id(token) is None:
            raise ValueError(f"folder: the vocabulary in {folder} has no {token} token")
    if tokenizer.post_processor is None:  # a tokenizer.json that adds nothing around
        tokenizer.post_processor = TemplateProcessing(
            single=f"{special.cls} $A {special.sep}",
            special_tokens=[(t, tokenizer.token_to_id(t)) for t in (special.cls, special.sep)])
    return tokenizer


def encode_masked(tokenizer: Any, sentence: str, *, max_length: int,
                  special: SpecialTokens = WORDPIECE_TOKENS) -> MaskedSentence:
    """Tokenize ``sentence`` and check it has exactly one ``[MASK]`` and no unknown token.

    ``[MASK]`` marks the position for every checkpoint: where the checkpoint's mask token
    is another (``special.mask``, RoBERTa's ``<mask>``), ``[MASK]`` is read as it, and so is
    that token written as it is. Raises ValueError for: a non-string or no mask (upper case,
    as written by BERT), several masks, a literal ``special.cls``/``sep``/``pad`` (added
    automatically), words the tokenizer cannot spell (they would become ``special.unk``:
    characters outside the vocabulary such as most emoji, or a WordPiece word longer than
    100 characters) or a literal unknown token, and more tokens (the frame included) than
    ``max_length`` positions.
    """
    if not isinstance(sentence, str):
        raise ValueError(f"sentence must be a string, got {type(sentence).__name__}")
    text = sentence.replace(MASK_TOKEN, special.mask)
    enc = tokenizer.encode(text)
    # tokens as the vocabulary spells them (an added token matched with the space before
    # it, as RoBERTa's and MPNet's <mask>, is otherwise reported with that space)
    ids, offsets = tuple(enc.ids), tuple(map(tuple, enc.offsets))
    tokens = tuple(tokenizer.id_to_token(t) for t in ids)
    mask_id = tokenizer.token_to_id(special.mask)
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
    # cls and sep of the frame are the first and last positions; any other is the user's
    inner = range(1, len(ids) - 1)
    framed = sorted({tokens[p] for p in inner if tokens[p] in special.frame})
    if framed:
        raise ValueError(
            f"sentence must not contain the special token(s) {', '.join(framed)}: "
            f"{special.cls} and {special.sep} are added around the sentence (one sentence only)"
        )
    unknown = [text[offsets[p][0]:offsets[p][1]] for p in inner if tokens[p] == special.unk]
    if unknown:
        raise ValueError(
            f"sentence has word(s) the checkpoint's vocabulary cannot spell, which would be "
            f"read as {special.unk}: {', '.join(map(repr, unknown))} (characters outside "
            "the vocabulary, such as most emoji, or a word longer than 100 characters); "
            "remove or replace them"
        )
    if len(ids) > max_length:
        raise ValueError(
            f"sentence is too long: {len(ids)} tokens with {special.cls} and {special.sep}, "
            f"but the checkpoint's position embeddings cover {max_length} positions"
        )
    return MaskedSentence(text=text, ids=ids, tokens=tokens, offsets=offsets,
                          mask_position=masks[0])
