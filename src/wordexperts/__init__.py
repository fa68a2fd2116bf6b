"""wordexperts: bidirectional attention as a mixture of continuous word experts.

Wibisono and Wang, "Bidirectional Attention as a Mixture of Continuous Word Experts",
UAI 2023. The core: :class:`BidirectionalAttention` (the model), :func:`to_experts` (its
exact expert form) and :func:`fit_mlm` (masked-language-model training); built on them:
:class:`WordExpertsClassifier` (the tabular extension), :class:`CBOW` (uniform context
weights), and the modules :mod:`wordexperts.analogy`, :mod:`wordexperts.explain`,
:mod:`wordexperts.datasets`.
"""

from wordexperts.attention import AttentionConfig, BidirectionalAttention
from wordexperts.cbow import CBOW
from wordexperts.experts import ContinuousWordExperts, to_experts
from wordexperts.tabular import WordExpertsClassifier
from wordexperts.training import fit_mlm

__all__ = [
    "CBOW",
    "AttentionConfig",
    "BidirectionalAttention",
    "ContinuousWordExperts",
    "WordExpertsClassifier",
    "fit_mlm",
    "to_experts",
]
