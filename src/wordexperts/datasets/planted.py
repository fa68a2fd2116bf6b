"""A world with planted word analogies, and sentences drawn from it (docs/paper.md section 5).

``G`` groups (say countries) times ``R`` roles (country, capital, currency, ...) give ``G*R``
analogy words ``rho[g, r] = u_g + o_r`` with group vectors ``u_g`` and role offsets ``o_r``
in orthogonal subspaces, randomly rotated: every ``(g1, r1) : (g1, r2) :: (g2, r1) : (g2,
r2)`` is an exact parallelogram. Sentences follow a latent discourse-vector model whose
context weights ``a_j(w) ∝ exp(alpha (s_w + p_j))`` go from uniform (``alpha = 0``,
CBOW-like) to word- and position-dependent (``alpha = 1``, attention-like). The experiment
that fits CBOW and attention on these sentences is ``wordexperts reproduce analogy-theory``
(:mod:`wordexperts.harness.analogy_theory`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

__all__ = ["PlantedWorld", "Salience", "check_alpha", "make_world"]

Salience = Literal["random", "linear"]


def _simplex(n: int) -> np.ndarray:
    """``n`` unit vectors in ``R^(n-1)`` with pairwise cosine ``-1/(n-1)``: (n, n-1)."""
    centred = np.eye(n) - 1.0 / n
    basis = np.linalg.svd(centred)[2][: n - 1]
    points = centred @ basis.T
    return points / np.linalg.norm(points, axis=1, keepdims=True)


@dataclass(frozen=True, eq=False)
class PlantedWorld:
    """Planted word vectors and the discourse model of sentences built on them.

    Built by :func:`make_world`. Words ``0 .. G*R-1`` are the analogy words (word
    ``g*R + r`` is group ``g``, role ``r``), the rest are fillers.

    ``vectors`` (V, k): the planted ``rho`` (float64, unit rows); ``bias`` (V,): ``b``;
    ``word_salience`` (V,) and ``position_salience`` (L,): ``s`` and ``p``, both centred;
    ``discourse_scale``: ``sigma``.
    """

    words: tuple[str, ...]
    vectors: np.ndarray
    bias: np.ndarray
    word_salience: np.ndarray
    position_salience: np.ndarray
    n_groups: int
    n_roles: int
    discourse_scale: float

    @property
    def vocab_size(self) -> int:
        return len(self.words)

    @property
    def seq_len(self) -> int:
        return len(self.position_salience)

    @property
    def dim(self) -> int:
        """``k``, the dimension of the planted vectors."""
        return self.vectors.shape[1]

    def analogy_ids(self) -> np.ndarray:
        """Ids of the analogy words by group and role: (G, R)."""
        return np.arange(self.n_groups * self.n_roles).reshape(self.n_groups, self.n_roles)

    def questions(self) -> pd.DataFrame:
        """The planted analogy questions, in :func:`wordexperts.analogy.evaluate`'s format.

        For each pair of roles ``r1 < r2`` and ordered pair of groups ``g1 != g2``:
        ``(g1, r1) : (g1, r2) :: (g2, r1) : (g2, r2)``; ``R(R-1)/2 * G(G-1)`` questions.
        """
        ids = self.analogy_ids()
        rows = [
            (f"role{r1}->role{r2}", "semantic", *(self.words[i] for i in
             (ids[g1, r1], ids[g1, r2], ids[g2, r1], ids[g2, r2])))
            for r1 in range(self.n_roles) for r2 in range(r1 + 1, self.n_roles)
            for g1 in range(self.n_groups) for g2 in range(self.n_groups) if g1 != g2
        ]
        return pd.DataFrame(rows, columns=["category", "type", "a", "b", "c", "d"])

    def strengths(self, alpha: float) -> np.ndarray:
        """``a_j(w)``, how strongly each word follows the discourse at each position: (L, V).

        ``exp(alpha (s_w + p_j))`` divided by its mean over words and positions, so the
        average strength is 1 at every ``alpha``; all ones at ``alpha = 0``.
        """
        alpha = check_alpha(alpha)
        log_a = alpha * (self.position_salience[:, None] + self.word_salience[None, :])
        a = np.exp(log_a - log_a.max())
        return a / a.mean()

    def emission_logits(self, discourse: np.ndarray, alpha: float) -> np.ndarray:
        """Unnormalised ``log p(x_j = w | c)``: discourse vectors (n, k) -> (n, L, V)."""
        discourse = np.asarray(discourse, dtype=np.float64)
        if discourse.ndim != 2 or discourse.shape[1] != self.dim:
            raise ValueError(f"discourse must have shape (n, {self.dim}), got {discourse.shape}")
        return self.bias + self.strengths(alpha) * (discourse @ self.vectors.T)[:, None, :]

    def sample(self, n: int, *, alpha: float, seed: int) -> np.ndarray:
        """``n`` sentences of word ids: (n, L) int64.

        The discourse vectors and the Gumbel noise that picks each word are drawn in the same
        order whatever ``alpha`` is, so one seed gives the same underlying draws at every
        ``alpha`` (the corpora differ only through the knob).
        """
        if not isinstance(n, int | np.integer) or n < 1:
            raise ValueError(f"n must be a positive integer, got {n!r}")
        rng = np.random.default_rng(seed)
        discourse = self.discourse_scale * rng.standard_normal((n, self.dim))
        gumbel = rng.gumbel(size=(n, self.seq_len, self.vocab_size))
        return np.argmax(self.emission_logits(discourse, alpha) + gumbel, axis=-1)


def check_alpha(alpha: float) -> float:
    """``alpha`` as a float, checked to lie in [0, 1]."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha!r}")
    return float(alpha)


def make_world(
    *,
    n_groups: int = 8,
    n_roles: int = 5,
    n_filler: int = 24,
    seq_len: int = 8,
    discourse_scale: float = 2.0,
    word_salience: float = 0.4,
    position_salience: float = 0.5,
    salience: Salience = "random",
    bias_scale: float = 0.5,
    seed: int = 0,
) -> PlantedWorld:
    """A :class:`PlantedWorld`: ``n_groups * n_roles`` analogy words and ``n_filler`` fillers.

    ``word_salience`` and ``position_salience`` are the standard deviations of ``s`` (over
    words) and ``p`` (over positions); ``salience`` says whether ``s`` is drawn
    independently of the planted vectors (``"random"``) or is ``<v, rho_w>`` for a random
    direction ``v`` (``"linear"``). ``bias_scale``: standard deviation of the word biases.

    >>> world = make_world(seed=0)
    >>> world.vocab_size, world.dim, world.seq_len, len(world.questions())
    (64, 11, 8, 560)
    """
    for name, value, low in (("n_groups", n_groups, 2), ("n_roles", n_roles, 2),
                             ("n_filler", n_filler, 0), ("seq_len", seq_len, 2)):
        if not isinstance(value, int | np.integer) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    for name, value in (("discourse_scale", discourse_scale), ("word_salience", word_salience),
                        ("position_salience", position_salience), ("bias_scale", bias_scale)):
        if not value >= 0:
            raise ValueError(f"{name} must be non-negative, got {value!r}")
    if salience not in ("random", "linear"):
        raise ValueError(f"salience must be 'random' or 'linear', got {salience!r}")

    rng = np.random.default_rng(seed)
    k = (n_groups - 1) + (n_roles - 1)
    rotation = np.linalg.qr(rng.standard_normal((k, k)))[0]
    groups = _simplex(n_groups) @ rotation[:, : n_groups - 1].T / np.sqrt(2)   # (G, k)
    roles = _simplex(n_roles) @ rotation[:, n_groups - 1:].T / np.sqrt(2)       # (R, k)
    filler = rng.standard_normal((n_filler, k))
    filler /= np.linalg.norm(filler, axis=1, keepdims=True)
    vectors = np.vstack([(groups[:, None] + roles[None]).reshape(-1, k), filler])
    v = len(vectors)

    bias = bias_scale * rng.standard_normal(v)
    if salience == "random":
        s = rng.standard_normal(v)
    else:
        s = vectors @ rng.standard_normal(k)
    s = s - s.mean()
    s = word_salience * s / s.std() if s.std() > 0 else s
    p = rng.standard_normal(seq_len)
    p = p - p.mean()
    p = position_salience * p / p.std()

    words = tuple(f"g{g}.r{r}" for g in range(n_groups) for r in range(n_roles))
    words += tuple(f"f{i:02d}" for i in range(n_filler))
    return PlantedWorld(words=words, vectors=vectors, bias=bias, word_salience=s,
                        position_salience=p, n_groups=n_groups, n_roles=n_roles,
                        discourse_scale=float(discourse_scale))


# --------------------------------------------------------------------------- measures
