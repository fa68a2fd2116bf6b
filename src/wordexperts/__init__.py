"""wordexperts: bidirectional attention as a mixture of continuous word experts.

Wibisono and Wang, "Bidirectional Attention as a Mixture of Continuous Word Experts",
UAI 2023. The core: :class:`BidirectionalAttention` (the model), :func:`to_experts` (its
exact expert form) and :func:`fit_mlm` (masked-language-model training).
"""

from wordexperts.attention import AttentionConfig, BidirectionalAttention
from wordexperts.experts import ContinuousWordExperts, to_experts
from wordexperts.training import fit_mlm

__all__ = [
    "AttentionConfig",
    "BidirectionalAttention",
    "ContinuousWordExperts",
    "fit_mlm",
    "to_experts",
]
