"""Solving the analogy questions (paper section 5, Tables 1 and 2): :func:`evaluate`.

An analogy question ``(a, b, c, d)`` ("athens : greece :: baghdad : iraq") is solved when
``d`` is the candidate word that scores best, the words ``a, b, c`` excluded. Two
protocols:

``protocol="gensim"`` (default): the verdicts of gensim's
``KeyedVectors.evaluate_word_analogies``, exactly (see ``docs/analogies.md``):

- vectors are scaled to unit length and ``f = u_c - u_a + u_b`` is formed from the unit
  vectors; candidates are ranked by ``cos(u_w, f)`` (3CosAdd);
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

``protocol="paper"``: the authors' notebooks (yixinw-lab/attention-uai,
``analogy-experiment/``):

- the questions are lowercased and their words matched exactly (the words of the
  embeddings must be distinct: fold them first, e.g. BART's with
  :func:`~wordexperts.analogy.embeddings.fold_bpe_tokens`);
- a question is skipped when one of its words is not among ``question_words`` (default:
  every word; BERT: the whole-word block of ids 1996 to 29611,
  :func:`~wordexperts.analogy.embeddings.paper_word_block`);
- the candidates are all the words (BERT: all 30,522 tokens, word pieces and special
  tokens included), or ``candidates`` (GloVe, word2vec: the words that are lowercase and
  hold no ``_``), the words ``a, b, c`` excluded;
- ``score="3cosadd"``: ``cos(w, c - a + b)`` of the raw vectors (not unit vectors);
  ``score="3cosmul"``: Levy and Goldberg's (2014) ``cos'(w, c) cos'(w, b) / (cos'(w, a) +
  0.001)``, ``cos' = (1 + cos) / 2``;
- solved when ``d`` ranks first (exact ties count against ``d``).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch

from wordexperts.analogy import _scan
from wordexperts.analogy.embeddings import as_embeddings
from wordexperts.analogy.questions import TYPES, check_questions, load_questions
from wordexperts.core.threads import single_thread

Protocol = Literal["gensim", "paper"]
Score = Literal["3cosadd", "3cosmul"]
PROTOCOLS = ("gensim", "paper")
SCORES = ("3cosadd", "3cosmul")


@dataclass(frozen=True)
class AnalogyResult:
    """Outcome of :func:`evaluate`.

    ``questions``: one row per evaluated question with ``rank`` (1 = solved; rank of ``d``
    among the candidates other than ``a, b, c``), ``correct`` (the protocol's verdict),
    ``cosine`` (``cos(u_d, f)`` with ``f = u_c - u_a + u_b`` from unit vectors, gensim's
    score), ``cosine_raw`` (``cos(d, c - a + b)`` on the raw vectors, the paper's Table 2),
    ``predicted`` and ``top`` (the best ``topk`` candidates). ``skipped``: the questions not
    evaluated because a word is out of the vocabulary (or ``d`` is not a candidate).
    ``seconds``: wall time of the evaluation; ``protocol`` and ``score`` as asked.
    """

    questions: pd.DataFrame
    skipped: pd.DataFrame
    seconds: float
    protocol: str = "gensim"
    score: str = "3cosadd"

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


def evaluate(
    embeddings: Any,
    questions: pd.DataFrame | None = None,
    *,
    protocol: Protocol = "gensim",
    score: Score = "3cosadd",
    candidates: Iterable[str] | None = None,
    question_words: Iterable[str] | None = None,
    restrict_vocab: int | None = None,
    case_insensitive: bool | None = None,
    topk: int = 5,
    chunk_size: int | None = None,
    dtype: type[np.floating] = np.float32,
) -> AnalogyResult:
    """Solve the analogy ``questions`` (default :func:`load_questions`).

    ``embeddings``: see :func:`~wordexperts.analogy.embeddings.as_embeddings`.
    ``protocol``: ``"gensim"`` (gensim's ``evaluate_word_analogies``, 3CosAdd only) or
    ``"paper"`` (the authors' notebooks), see the module docstring; ``score``:
    ``"3cosadd"`` or ``"3cosmul"`` (``protocol="paper"`` only). ``restrict_vocab`` keeps
    only the first ``restrict_vocab`` words (gensim's option: questions with other words
    are skipped and only those words are candidates). ``candidates`` further limits the
    possible answers to these words; questions whose ``d`` is not one of them are skipped.
    ``question_words`` (``protocol="paper"``) limits the words questions may use.
    ``case_insensitive`` (``protocol="gensim"``, default ``True``): fold words with
    ``str.upper``. The ``topk`` best answers are listed per question. Scores are computed in
    ``dtype`` (``np.float64`` for scores exact to rounding, at about half the speed),
    ``chunk_size`` questions at a time (default: blocks of about 4 MB), on one thread. The
    ``cosine`` columns are always computed in float64.

    >>> words = ["king", "man", "woman", "queen", "apple"]
    >>> vectors = [[1, 1, 0], [1, 0, 0], [0, 0, 1], [0, 1, 1], [1, -1, 1]]
    >>> q = pd.DataFrame([("royal", "semantic", "man", "king", "woman", "queen")],
    ...                  columns=["category", "type", "a", "b", "c", "d"])
    >>> result = evaluate((words, vectors), q)
    >>> result.accuracy, result.questions.loc[0, "predicted"], int(result.questions.loc[0, "rank"])
    (1.0, 'queen', 1)
    >>> evaluate((words, vectors), q, protocol="paper", score="3cosmul").accuracy
    1.0
    """
    start = time.perf_counter()
    words, vectors = as_embeddings(embeddings)
    questions = load_questions() if questions is None else check_questions(questions)
    dtype = _check_options(protocol=protocol, score=score, question_words=question_words,
                           restrict_vocab=restrict_vocab, case_insensitive=case_insensitive,
                           topk=topk, chunk_size=chunk_size, dtype=dtype)
    if restrict_vocab is not None:
        words, vectors = words[:restrict_vocab], vectors[:restrict_vocab]
    engine = _evaluate_gensim if protocol == "gensim" else _evaluate_paper
    options: dict[str, Any] = {"case_insensitive": case_insensitive} if protocol == "gensim" \
        else {"score": score, "question_words": question_words}
    out, skipped = engine(words, vectors, questions, candidates=candidates, topk=topk,
                          chunk_size=chunk_size, dtype=dtype, **options)
    return AnalogyResult(out, skipped, time.perf_counter() - start, protocol, score)


def _check_options(*, protocol: str, score: str, question_words: Any, restrict_vocab: Any,
                   case_insensitive: Any, topk: int, chunk_size: Any, dtype: Any) -> np.dtype:
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol: expected one of {PROTOCOLS}, got {protocol!r}")
    if score not in SCORES:
        raise ValueError(f"score: expected one of {SCORES}, got {score!r}")
    if protocol == "gensim" and score != "3cosadd":
        raise ValueError("score: gensim's evaluate_word_analogies is 3CosAdd only; "
                         "use protocol='paper' for score='3cosmul'")
    if protocol == "gensim" and question_words is not None:
        raise ValueError("question_words: only with protocol='paper'")
    if protocol == "paper" and case_insensitive is not None:
        raise ValueError("case_insensitive: only with protocol='gensim' (the paper's "
                         "protocol lowercases the questions and matches words exactly)")
    for name, value in (("restrict_vocab", restrict_vocab), ("chunk_size", chunk_size)):
        if value is not None and value < 1:
            raise ValueError(f"{name}: expected a positive count, got {value}")
    if topk < 1:
        raise ValueError(f"topk: expected a positive count, got {topk}")
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise ValueError(f"dtype: expected float32 or float64, got {dtype}")
    return dtype


def _question_cosines(vectors: np.ndarray, rows: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The distinct words of the questions: their raw and unit vectors (float64), each
    question's local rows, and ``cos(u_d, u_c - u_a + u_b)``, ``cos(d, c - a + b)``."""
    used, local = np.unique(rows, return_inverse=True)
    local = local.reshape(rows.shape)
    x = vectors[used].astype(np.float64)
    unit = x / _scan.norms(x)[:, None]
    f = unit[local[:, 2]] - unit[local[:, 0]] + unit[local[:, 1]]
    cosine = np.einsum("qk,qk->q", unit[local[:, 3]], f) / _scan.norms(f)
    raw = x[local[:, 2]] - x[local[:, 0]] + x[local[:, 1]]
    cosine_raw = np.einsum("qk,qk->q", unit[local[:, 3]], raw) / _scan.norms(raw)
    return x, unit, local, cosine, cosine_raw


def _split(questions: pd.DataFrame, rows: np.ndarray, ok: np.ndarray
           ) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray]:
    return (questions[ok].reset_index(drop=True), questions[~ok].reset_index(drop=True),
            rows[ok])


def _with_results(q: pd.DataFrame, *, rank: np.ndarray, correct: np.ndarray,
                  cosine: np.ndarray, cosine_raw: np.ndarray, top_words: np.ndarray,
                  top_ok: np.ndarray) -> pd.DataFrame:
    out = q.copy()
    out["rank"] = rank
    out["correct"] = correct
    out["cosine"] = cosine
    out["cosine_raw"] = cosine_raw
    out["predicted"] = np.where(top_ok[:, 0], top_words[:, 0], None)
    out["top"] = [tuple(w[m]) for w, m in zip(top_words, top_ok, strict=True)]
    return out


# --------------------------------------------------------------------------- gensim


def _evaluate_gensim(words: list[str], vectors: np.ndarray, questions: pd.DataFrame, *,
                     candidates: Iterable[str] | None, case_insensitive: bool | None,
                     topk: int, chunk_size: int | None, dtype: np.dtype
                     ) -> tuple[pd.DataFrame, pd.DataFrame]:
    fold = str if case_insensitive is False else str.upper
    vocab = _scan.FoldedVocabulary.build(words, fold, candidates)
    # questions whose four words are known and whose d is a candidate
    rows = np.array([[vocab.first.get(fold(w), -1) for w in questions[c].tolist()]
                     for c in "abcd"], dtype=np.int64).reshape(4, len(questions)).T
    ok = (rows >= 0).all(axis=1)
    ok[ok] = vocab.col_of_row[rows[ok, 3]] >= 0
    q, skipped, rows = _split(questions, rows, ok)
    qkeys = np.array([vocab.keys[r] for r in rows.ravel()], dtype=object).reshape(rows.shape)
    d_is_abc = (qkeys[:, 3:] == qkeys[:, :3]).any(axis=1)
    _, unit, local, cosine, cosine_raw = _question_cosines(vectors, rows)
    cand = vectors[vocab.cand_rows].astype(dtype)
    cand /= _scan.norms(cand)[:, None]
    with single_thread():
        rank, top_cols, top_ok, fifth = _scan.gensim_scan(
            torch.from_numpy(cand), unit, local,
            abc_cols=vocab.col_of_row[rows[:, :3]], d_cols=vocab.col_of_row[rows[:, 3]],
            d_is_abc=d_is_abc, extra_cols=_variant_columns(vocab, qkeys),
            layers=vocab.merge_layers(), topk=topk,
            chunk_size=chunk_size or _scan.default_chunk(len(vocab.cand_rows), dtype.itemsize),
        )
    word_of_col = np.asarray(words, dtype=object)[vocab.cand_rows]
    key_of_col = np.asarray(vocab.keys, dtype=object)[vocab.cand_rows]
    # when other case variants of a, b, c fill gensim's window, its verdict is the fifth's
    correct = np.where(fifth >= 0, key_of_col[fifth] == qkeys[:, 3], (rank == 1) & ~d_is_abc)
    out = _with_results(q, rank=rank, correct=correct, cosine=cosine, cosine_raw=cosine_raw,
                        top_words=word_of_col[top_cols], top_ok=top_ok)
    return out, skipped


def _variant_columns(vocab: _scan.FoldedVocabulary, qkeys: np.ndarray) -> np.ndarray:
    """Per question, the candidate columns of the other case variants of ``a, b, c``
    (``-1`` padded), which can fill gensim's five-row window."""
    extra = [[c for k in dict.fromkeys(ks) for c in vocab.variants.get(k, [])]
             for ks in qkeys[:, :3]] if vocab.variants else []
    width = max((len(e) for e in extra), default=0)
    cols = np.full((len(qkeys), width), -1, dtype=np.int64)
    for i, e in enumerate(extra if width else []):
        cols[i, : len(e)] = e
    return cols


# --------------------------------------------------------------------------- paper


def _evaluate_paper(words: list[str], vectors: np.ndarray, questions: pd.DataFrame, *,
                    candidates: Iterable[str] | None, question_words: Iterable[str] | None,
                    score: str, topk: int, chunk_size: int | None, dtype: np.dtype
                    ) -> tuple[pd.DataFrame, pd.DataFrame]:
    index = {w: i for i, w in enumerate(words)}
    if len(index) != len(words):
        repeated = sorted({w for w in words if words.count(w) > 1})[:5] if len(words) < 10**5 \
            else "some"
        raise ValueError(f"embeddings: protocol='paper' matches words exactly, so they must "
                         f"be distinct; repeated: {repeated}")
    allowed = None if question_words is None else {str(w) for w in question_words}
    if candidates is None:
        cand_rows = np.arange(len(words))
    else:
        wanted = {str(w) for w in candidates}
        cand_rows = np.array([i for i, w in enumerate(words) if w in wanted], dtype=np.int64)
    col_of_row = np.full(len(words), -1, dtype=np.int64)
    col_of_row[cand_rows] = np.arange(len(cand_rows))

    # lowercased questions whose four words are question words and whose d is a candidate
    lowered = questions.assign(**{c: questions[c].str.lower() for c in "abcd"})
    rows = np.array([[index.get(w, -1) if allowed is None or w in allowed else -1
                      for w in lowered[c].tolist()] for c in "abcd"],
                    dtype=np.int64).reshape(4, len(questions)).T
    ok = (rows >= 0).all(axis=1)
    ok[ok] = col_of_row[rows[ok, 3]] >= 0
    q, skipped, rows = _split(lowered, rows, ok)
    d_is_abc = (rows[:, 3:] == rows[:, :3]).any(axis=1)
    x, _, local, cosine, cosine_raw = _question_cosines(vectors, rows)
    cand = vectors[cand_rows].astype(dtype)
    cand /= _scan.norms(cand)[:, None]
    with single_thread():
        rank, top_cols, top_ok = _scan.paper_scan(
            torch.from_numpy(cand), x, local, abc_cols=col_of_row[rows[:, :3]],
            d_cols=col_of_row[rows[:, 3]], score=score, topk=topk,
            chunk_size=chunk_size or _scan.default_chunk(len(cand_rows), dtype.itemsize),
        )
    rank = rank + d_is_abc  # d's own column was excluded with a, b, c: it cannot win
    word_of_col = np.asarray(words, dtype=object)[cand_rows]
    out = _with_results(q, rank=rank, correct=(rank == 1) & ~d_is_abc, cosine=cosine,
                        cosine_raw=cosine_raw, top_words=word_of_col[top_cols], top_ok=top_ok)
    return out, skipped
