"""Score kernels of :func:`wordexperts.analogy.evaluate`: candidates scored block by block.

:func:`gensim_scan` reproduces gensim's verdicts (unit vectors, case folding, its five-row
window); :func:`paper_scan` follows the authors' notebooks (raw ``c - a + b``, exact
words, rank 1), for 3CosAdd and 3CosMul. Both rank ``d`` among the candidates other than
``a, b, c`` with exact score ties counted against ``d``, and list the best ``topk``
candidates (ties to the earlier row).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

GENSIM_WINDOW = 5  # gensim's evaluate_word_analogies inspects most_similar(topn=5)
COSMUL_EPSILON = 1e-3  # Levy and Goldberg (2014); gensim's most_similar_cosmul uses 1e-6
_GROUP_BYTES = 128 << 20  # score rows of a group's distinct c words and (a, b) pairs


def norms(x: np.ndarray) -> np.ndarray:
    """Row norms, with zero vectors kept at norm 1 (their cosine with anything is 0)."""
    n = np.linalg.norm(x, axis=-1)
    return np.where(n > 0, n, 1.0)


def default_chunk(n_candidates: int, itemsize: int) -> int:
    """Questions per score block: blocks of about 4 MB stay in cache for the passes that
    follow their computation."""
    return int(np.clip((4 << 20) // (itemsize * max(n_candidates, 1)), 16, 4096))


@dataclass(frozen=True)
class FoldedVocabulary:
    """Folded words, the first row of each word, the candidate columns and the other case
    variants of each word among the candidates."""

    words: list[str]
    keys: list[str]
    first: dict[str, int]
    cand_rows: np.ndarray
    col_of_row: np.ndarray
    variants: dict[str, list[int]]  # folded word -> candidate columns of its later rows

    @classmethod
    def build(cls, words: list[str], fold, candidates: Iterable[str] | None) -> FoldedVocabulary:
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


def score_blocks(
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


def gensim_scan(
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
    window = extra_cols.shape[1] >= GENSIM_WINDOW  # else the variants cannot fill it
    own = (~d_is_abc).astype(np.int64)  # d's own column counts itself unless masked
    variant_cols = np.concatenate([s for _, s in layers]) if layers else None
    above = np.empty((min(chunk_size, n_q), n_cand), dtype=bool)
    with torch.no_grad():
        for lo, hi, s in score_blocks(cand, unit, rows, chunk_size=chunk_size):
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
                full = np.flatnonzero(above_best >= GENSIM_WINDOW)
                order = np.argsort(-extra_scores[full], axis=1, kind="stable")
                fifth[lo + full] = extra[full, order[:, GENSIM_WINDOW - 1]]
    return rank, top_cols, np.isfinite(top_vals), fifth




def _top(s: np.ndarray, k: int, cols: np.ndarray, vals: np.ndarray) -> None:
    """The ``k`` best columns of each row of ``s`` into ``cols``/``vals`` (``s`` is
    overwritten); k argmax passes beat a sort, ties go to the earlier column."""
    span = np.arange(len(s))
    for j in range(k):
        col = s.argmax(axis=1)
        cols[:, j] = col
        vals[:, j] = s[span, col]
        s[span, col] = -np.inf


def cosmul_blocks(
    cand: torch.Tensor, unit: np.ndarray, rows: np.ndarray, *, chunk_size: int
) -> Iterator[tuple[int, int, np.ndarray]]:
    """Yield ``(lo, hi, s)``: row ``i`` of ``s`` holds the 3CosMul scores of every candidate
    for question ``lo + i``, ``cos'(w, c) cos'(w, b) / (cos'(w, a) + 0.001)`` with
    ``cos' = (1 + cos) / 2``.

    ``cand``: unit candidate vectors; ``unit``: unit vectors of the question words,
    ``rows``: their rows of each question's ``a, b, c, d``. Questions are taken in groups
    whose distinct ``a, b, c`` words are few; each word's cosines are computed once.
    """
    n_q, n_cand = len(rows), len(cand)
    max_rows = max(3, _GROUP_BYTES // (n_cand * cand.element_size()))
    words = rows[:, :3].tolist()
    block = torch.empty((min(chunk_size, n_q), n_cand), dtype=cand.dtype)
    spare = torch.empty_like(block)
    lo = 0
    while lo < n_q:
        pos: dict[int, int] = {}
        local = []
        hi = lo
        while hi < n_q and len(pos) + 3 <= max_rows:
            local.append([pos.setdefault(w, len(pos)) for w in words[hi]])
            hi += 1
        cos = _times(unit[np.fromiter(pos, np.int64, len(pos))], cand).add_(1).mul_(0.5)
        local_t = torch.tensor(local)
        for b_lo in range(lo, hi, chunk_size):
            b_hi = min(b_lo + chunk_size, hi)
            idx = local_t[b_lo - lo : b_hi - lo]
            out, den = block[: b_hi - b_lo], spare[: b_hi - b_lo]
            torch.index_select(cos, 0, idx[:, 2], out=out)
            out.mul_(torch.index_select(cos, 0, idx[:, 1]))
            torch.index_select(cos, 0, idx[:, 0], out=den)
            out.div_(den.add_(COSMUL_EPSILON))
            yield b_lo, b_hi, out.numpy()
        lo = hi


def paper_scan(
    cand: torch.Tensor,
    vectors: np.ndarray,
    rows: np.ndarray,
    *,
    abc_cols: np.ndarray,
    d_cols: np.ndarray,
    score: str,
    topk: int,
    chunk_size: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rank of ``d`` and the best ``topk`` columns per question, as the authors' notebooks.

    ``cand``: the candidates' unit vectors; ``vectors``: the raw vectors (float64) of the
    question words, ``rows``: the rows of ``vectors`` of each question's ``a, b, c, d``;
    ``abc_cols``/``d_cols``: their candidate columns (``-1``: not a candidate).
    ``score="3cosadd"``: ``cos(w, c - a + b)`` on the raw vectors (the scores of
    :func:`score_blocks` fed raw vectors are these cosines times ``|c - a + b|``, which
    changes no rank); ``"3cosmul"``: see :func:`cosmul_blocks`.
    """
    n_q, n_cand = len(rows), len(cand)
    k = min(topk, n_cand)
    rank = np.zeros(n_q, dtype=np.int64)
    top_cols = np.zeros((n_q, k), dtype=np.int64)
    top_vals = np.zeros((n_q, k), dtype=cand.numpy().dtype)
    above = np.empty((min(chunk_size, n_q), n_cand), dtype=bool)
    if score == "3cosadd":
        blocks = score_blocks(cand, vectors, rows, chunk_size=chunk_size)
    else:
        unit = vectors / norms(vectors)[:, None]
        blocks = cosmul_blocks(cand, unit, rows, chunk_size=chunk_size)
    with torch.no_grad():
        for lo, hi, s in blocks:
            m = hi - lo
            span = np.arange(m)
            s_d = s[span, d_cols[lo:hi]].copy()
            ex = abc_cols[lo:hi]
            s[np.broadcast_to(span[:, None], ex.shape)[ex >= 0], ex[ex >= 0]] = -np.inf
            np.greater_equal(s, s_d[:, None], out=above[:m])
            # d's own column counts itself: rank = 1 + the others scoring >= s_d
            rank[lo:hi] = np.fromiter((np.count_nonzero(x) for x in above[:m]), np.int64, m)
            _top(s, k, top_cols[lo:hi], top_vals[lo:hi])
    return rank, top_cols, np.isfinite(top_vals)
