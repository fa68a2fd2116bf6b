"""The core: bidirectional attention, its exact expert form, and masked-language-model training.

- :mod:`~wordexperts.core.attention`: :class:`AttentionConfig`, :class:`BidirectionalAttention`
  (docs/paper.md sections 1 and 3);
- :mod:`~wordexperts.core.experts`: :func:`to_experts`, the gating network, word experts and
  mixtures (section 2);
- :mod:`~wordexperts.core.training`: :func:`fit_mlm` (single pass or L masked copies);
- :mod:`~wordexperts.core.cbow`: :class:`CBOW`, attention with uniform gates.
"""

from wordexperts.core.attention import AttentionConfig, BidirectionalAttention, Method
from wordexperts.core.cbow import CBOW, CBOWConfig
from wordexperts.core.experts import ContinuousWordExperts, to_experts
from wordexperts.core.training import fit_mlm

__all__ = [
    "CBOW",
    "AttentionConfig",
    "CBOWConfig",
    "BidirectionalAttention",
    "ContinuousWordExperts",
    "Method",
    "fit_mlm",
    "to_experts",
]
