"""What a training step of the tabular model predicts: each position's output words, and on
wide tables a random subset of the positions.

Both trainers (:mod:`wordexperts.tabular.one_block` in NumPy,
:mod:`wordexperts.tabular.torch_backend` in PyTorch) take these; the driver that runs either
is :func:`wordexperts.tabular.trainer.fit_one_block`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["OutputClasses", "PositionSample", "run_starts"]


class OutputClasses:
    """The words each position's softmax runs over, in a flat (ragged) layout.

    ``classes[i]``: the word ids of position ``i`` (``K_i`` of them, distinct). The class
    index ``k`` of position ``i`` is flat index ``offsets[i] + k`` of ``words``. Positions
    with the same ``K`` form a group, so their logits are one batched matrix product; no
    position is padded to another's size.

    >>> out = OutputClasses([np.array([0, 1]), np.array([2, 3, 4]), np.array([0, 1])])
    >>> out.sizes.tolist(), out.offsets.tolist(), [g.tolist() for g, _ in out.groups]
    ([2, 3, 2], [0, 2, 5, 7], [[0, 2], [1]])
    """

    def __init__(self, classes: Sequence[np.ndarray], *, vocab_size: int | None = None) -> None:
        classes = [np.asarray(c) for c in classes]
        for i, c in enumerate(classes):
            if c.ndim != 1 or len(c) == 0 or c.dtype.kind not in "iu":
                raise ValueError(f"classes[{i}] must be a non-empty 1-D array of word ids")
            if c.min() < 0 or (vocab_size is not None and c.max() >= vocab_size):
                raise ValueError(f"classes[{i}] must be word ids in 0..{vocab_size}-1")
            if len(np.unique(c)) != len(c):
                raise ValueError(f"classes[{i}] repeats a word")
        self.sizes = np.array([len(c) for c in classes])
        self.offsets = np.concatenate([[0], np.cumsum(self.sizes)])
        self.words = np.concatenate(classes).astype(np.intp)                # (S,)
        #: per distinct K: the positions (G,) and their flat indices (G, K)
        self.groups = []
        for k in np.unique(self.sizes):
            positions = np.flatnonzero(self.sizes == k)
            self.groups.append((positions, self.offsets[positions][:, None] + np.arange(k)))
        # the output-layer gradient sums the flat rows of each word (shared vocabularies
        # give one word to several positions): sorted segment sums
        self.order = np.argsort(self.words, kind="stable")
        sorted_words = self.words[self.order]
        self.starts = run_starts(sorted_words)
        self.unique_words = sorted_words[self.starts]

    def __len__(self) -> int:
        return len(self.sizes)

    @property
    def largest(self) -> int:
        return int(self.sizes.max())


class PositionSample:
    """A random subset of the positions predicted in a step of the single-pass objective.

    Of ``seq_len`` positions, those in ``always`` are predicted in every step and
    ``max_positions - len(always)`` of the others, drawn uniformly per step (the same for
    every row of the batch, so the skipped positions cost nothing: the objective computes only
    weighted positions). The drawn positions' weights are scaled by (others / drawn), so that
    with complete rows the loss and gradient equal the full objective's on average over the
    draws (tested exactly over all subsets); with missing cells the step's normalization
    varies a little with the draw.

    Note: not in the paper, whose objective predicts every masked position; a cost measure
    for wide tables (the attention of ``L`` queries costs ``L^2`` a row).

    >>> sample = PositionSample(seq_len=6, max_positions=3, always=[5])
    >>> sample.others.tolist(), sample.k, sample.scale
    ([0, 1, 2, 3, 4], 2, 2.5)
    """

    def __init__(self, *, seq_len: int, max_positions: int, always: Sequence[int] = ()) -> None:
        always = np.unique(np.asarray(always, dtype=np.intp))
        if len(always) and (always.min() < 0 or always.max() >= seq_len):
            raise ValueError(f"always must be positions in 0..{seq_len - 1}")
        self.always = always
        self.others = np.setdiff1d(np.arange(seq_len), always)
        self.k = max_positions - len(always)
        if not 1 <= self.k < len(self.others):
            raise ValueError(f"max_positions must exceed the {len(always)} positions always "
                             f"predicted and be below seq_len={seq_len}, got {max_positions}")
        self.scale = len(self.others) / self.k

    def apply(self, weight: np.ndarray, drawn: np.ndarray) -> np.ndarray:
        """``weight`` (L, B), float, in place: 0 at the others not ``drawn``, scaled at those."""
        skipped = np.setdiff1d(self.others, drawn)
        weight[skipped] = 0
        weight[drawn] *= self.scale
        return weight

    def draw(self, rng: np.random.Generator) -> np.ndarray:
        """This step's drawn positions, sorted."""
        return np.sort(rng.choice(self.others, self.k, replace=False))


def run_starts(values: np.ndarray) -> np.ndarray:
    """Where each run of equal values of a sorted array starts."""
    new = np.empty(len(values), dtype=bool)
    new[0] = True
    np.not_equal(values[1:], values[:-1], out=new[1:])
    return np.flatnonzero(new)
