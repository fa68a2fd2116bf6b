"""Tabular word experts: :class:`WordExpertsClassifier`, a scikit-learn estimator for
categorical tables under distribution shift (docs/paper.md section 4)."""

from wordexperts.tabular.classifier import PRESETS
from wordexperts.tabular.estimator import WordExpertsClassifier

__all__ = ["PRESETS", "WordExpertsClassifier"]
