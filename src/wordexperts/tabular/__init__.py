"""Tabular word experts: :class:`WordExpertsClassifier`, a scikit-learn estimator for
categorical tables under distribution shift (docs/paper.md section 4)."""

from wordexperts.tabular.estimator import PRESETS, WordExpertsClassifier

__all__ = ["PRESETS", "WordExpertsClassifier"]
