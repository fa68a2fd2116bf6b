"""wordexperts: bidirectional attention as a mixture of continuous word experts.

Wibisono and Wang, "Bidirectional Attention as a Mixture of Continuous Word Experts",
UAI 2023. The library: :mod:`wordexperts.core` (the model :class:`BidirectionalAttention`, its
exact expert form :func:`to_experts`, MLM training :func:`fit_mlm`, :class:`CBOW`),
:mod:`wordexperts.tabular` (:class:`WordExpertsClassifier`), :mod:`wordexperts.analogy`,
:mod:`wordexperts.bert` and :mod:`wordexperts.datasets`. The reproduction harness (CLI,
demo, experiments, reports) lives in :mod:`wordexperts.harness` and depends on the library.

Names are imported lazily: ``import wordexperts`` loads neither torch nor scikit-learn.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import Any

try:
    __version__ = version("wordexperts")
except PackageNotFoundError:  # a source tree on sys.path, not installed
    __version__ = "0+unknown"

_EXPORTS = {
    "AttentionConfig": "wordexperts.core.attention",
    "BidirectionalAttention": "wordexperts.core.attention",
    "Method": "wordexperts.core.attention",
    "CBOW": "wordexperts.core.cbow",
    "CBOWConfig": "wordexperts.core.cbow",
    "ContinuousWordExperts": "wordexperts.core.experts",
    "to_experts": "wordexperts.core.experts",
    "fit_mlm": "wordexperts.core.training",
    "WordExpertsClassifier": "wordexperts.tabular.estimator",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'wordexperts' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
