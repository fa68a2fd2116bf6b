"""Continuous bag of words (CBOW): bidirectional attention with its gates fixed to uniform.

To predict ``x_i``, CBOW averages the input embeddings of the other words of the row::

    log p(x_i = w | x_-i) = log softmax_w( B mean_{j != i} E[x_j] + c )

In the expert form of paper.md section 2 this is ``sum_j pi_ij eta(x_j)`` with constant
gates ``pi_ij = 1/(L-1)`` over ``j != i`` and one-word experts ``eta(w) = B E[w] + c``, without
position embeddings: every context word weighs the same, whatever the words and positions.
Attention differs only in that its gates depend on the input.

The model follows the interface of :class:`~wordexperts.core.attention.BidirectionalAttention`
(``config``, ``model(x)``, ``masked_logits``, ``masked_log_probs``, ``word_vectors``), so
:func:`~wordexperts.core.training.fit_mlm` fits it with either objective. Mask ids in the input
are left out of the mean: ``model(x)`` at a masked position ``i`` is the prediction of ``x_i``
from the other unmasked words.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from wordexperts.core.attention import AttentionConfig, Method, as_ids, masked_copies


class CBOW(nn.Module):
    """CBOW fitted as a masked language model; shares :class:`AttentionConfig` with attention.

    Uses ``vocab_size``, ``seq_len`` and ``d_model`` of the config (the attention fields
    ``n_heads``, ``block``, ``d_ff``, ``dropout``, ``ln_eps`` do not apply); ``n_layers`` must
    be 1. Parameters: ``word_embeddings`` (``E``, ``nn.Embedding`` V+1 x d whose mask row is
    fixed at zero) and ``output`` (``B`` and ``c``, ``nn.Linear`` d -> V). Under the same
    seed the word rows of ``E`` start from the same draws as the attention model's.

    Shapes: ``model(x)``: (B, L) -> (B, L, V) logits; ``masked_log_probs``: (B, L) -> (B, L, V);
    ``word_vectors()``: (V, d).

    >>> _ = torch.manual_seed(0)
    >>> model = CBOW(AttentionConfig(vocab_size=10, seq_len=6, d_model=8, n_heads=1))
    >>> x = torch.randint(0, 10, (4, 6))
    >>> model.masked_log_probs(x).shape, model.word_vectors().shape
    (torch.Size([4, 6, 10]), torch.Size([10, 8]))
    """

    def __init__(self, config: AttentionConfig) -> None:
        super().__init__()
        if not isinstance(config, AttentionConfig):
            raise ValueError(f"config must be an AttentionConfig, got {type(config).__name__}")
        if config.n_layers != 1:
            raise ValueError(
                f"CBOW has one layer: config.n_layers must be 1, got {config.n_layers}"
            )
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

    def masked_log_probs(self, x: torch.Tensor | np.ndarray, *,
                         method: Method | None = None) -> torch.Tensor:
        """``log p(x_i | x_-i)`` over the ``V`` words for every position: (B, L) -> (B, L, V).

        The log-softmax of :meth:`masked_logits`.
        """
        return self.masked_logits(x, method=method).log_softmax(-1)

    def masked_logits(self, x: torch.Tensor | np.ndarray, *,
                      method: Method | None = None) -> torch.Tensor:
        """Logits of ``p(x_i | x_-i)`` for every position ``i``: (B, L) -> (B, L, V).

        ``"single_pass"`` (default) reads every prediction from one pass over the row, since
        the mean over ``j != i`` never sees ``x_i``; ``"copies"`` runs the ``L`` masked copies
        (the same numbers, ``L`` times the work), as for the attention model.
        """
        x = as_ids(x, self.config)
        if method in (None, "single_pass"):
            return self(x)
        if method == "copies":
            b, length = x.shape
            logits = self(masked_copies(x, self.config.mask_id).flatten(0, 1))
            return logits.view(b, length, length, -1).diagonal(dim1=1, dim2=2).transpose(1, 2)
        raise ValueError(f"method must be 'single_pass' or 'copies', got {method!r}")
