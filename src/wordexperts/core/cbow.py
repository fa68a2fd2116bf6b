"""Continuous bag of words (CBOW): bidirectional attention with its gates fixed to uniform.

To predict ``x_i``, CBOW averages the input embeddings of the other words of the row::

    log p(x_i = w | x_-i) = log softmax_w( B mean_{j != i} E[x_j] + c )

In the expert form of docs/paper.md section 2 this is ``sum_j pi_ij eta(x_j)`` with constant
gates ``pi_ij = 1/(L-1)`` over ``j != i`` and one-word experts ``eta(w) = B E[w] + c``, without
position embeddings: every context word weighs the same, whatever the words and positions.
Attention differs only in that its gates depend on the input.

:class:`CBOW` is a :class:`~wordexperts.core.attention.MaskedLanguageModel` like
:class:`~wordexperts.core.attention.BidirectionalAttention` (``model(x)``, ``masked_logits``,
``masked_log_probs``, ``word_vectors``), so :func:`~wordexperts.core.training.fit_mlm` fits it
with either method. Mask ids in the input are left out of the mean: ``model(x)`` at a masked
position ``i`` is the prediction of ``x_i`` from the other unmasked words.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from wordexperts.core.attention import MaskedLanguageModel, as_ids, check_config


@dataclass
class CBOWConfig:
    """Shape of a :class:`CBOW` model: ``vocab_size`` words plus the mask id, ``seq_len``
    positions, embeddings of ``d_model`` dimensions.

    >>> CBOWConfig(vocab_size=10, seq_len=6, d_model=8).mask_id
    10
    """

    vocab_size: int
    seq_len: int
    d_model: int = 20

    def __post_init__(self) -> None:
        for name in ("vocab_size", "seq_len", "d_model"):
            value = getattr(self, name)
            if not isinstance(value, int | np.integer) or isinstance(value, bool) or value < 1:
                raise ValueError(f"CBOWConfig.{name} must be a positive integer, got {value!r}")

    @property
    def mask_id(self) -> int:
        """The id of the mask token: ``vocab_size``."""
        return self.vocab_size

    def to_dict(self) -> dict:
        return asdict(self)


class CBOW(MaskedLanguageModel):
    """CBOW fitted as a masked language model (uniform gates: docs/paper.md section 2).

    Parameters: ``word_embeddings`` (``E``, ``nn.Embedding`` V+1 x d whose mask row is
    fixed at zero) and ``output`` (``B`` and ``c``, ``nn.Linear`` d -> V). Under the same
    seed the word rows of ``E`` start from the same draws as a
    :class:`~wordexperts.core.attention.BidirectionalAttention` of the same ``vocab_size`` and
    ``d_model``.

    ::

        ids x (B, L) ──► E[x] ──► mean over j != i, x_j != M ──► B (.) + c ──► logits (B, L, V)

    Shapes: ``model(x)``: (B, L) -> (B, L, V) logits; ``masked_log_probs``: (B, L) -> (B, L, V);
    ``word_vectors()``: (V, d).

    >>> _ = torch.manual_seed(0)
    >>> model = CBOW(CBOWConfig(vocab_size=10, seq_len=6, d_model=8))
    >>> x = torch.randint(0, 10, (4, 6))
    >>> model.masked_log_probs(x).shape, model.word_vectors().shape
    (torch.Size([4, 6, 10]), torch.Size([10, 8]))
    """

    def __init__(self, config: CBOWConfig) -> None:
        super().__init__()
        check_config(config, CBOWConfig)
        self.config = config
        self.word_embeddings = nn.Embedding(config.vocab_size + 1, config.d_model,
                                            padding_idx=config.mask_id)
        self.output = nn.Linear(config.d_model, config.vocab_size)

    def word_vectors(self) -> torch.Tensor:
        """Input embeddings ``E`` of the ``V`` words, mask row excluded: (V, d)."""
        return self.word_embeddings.weight[: self.config.vocab_size]

    def context_means(self, x: torch.Tensor) -> torch.Tensor:
        """``mean_{j != i, x_j != M} E[x_j]`` at every position ``i``: (B, L) -> (B, L, d).

        A position with no unmasked context word gets the zero vector (the logits are ``c``).
        """
        known = (x != self.config.mask_id).unsqueeze(-1)                       # (B, L, 1)
        e = self.word_embeddings(x)                                            # mask rows are 0
        others = e.sum(1, keepdim=True) - e
        count = known.sum(1, keepdim=True) - known.long()
        return others / count.clamp(min=1)

    def forward(self, x: torch.Tensor | np.ndarray) -> torch.Tensor:
        return self.output(self.context_means(as_ids(x, self.config)))

    def single_pass_logits(self, x: torch.Tensor) -> torch.Tensor:
        # the mean over j != i never sees x_i: every masked prediction is in one pass
        return self(x)
