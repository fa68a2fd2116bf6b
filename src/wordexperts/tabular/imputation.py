"""Filling missing cells from the others: :meth:`WordExpertsClassifier.impute
<wordexperts.tabular.estimator.WordExpertsClassifier.impute>`.

The model is a masked language model over every column, so a missing cell of any column is
predicted the way the target is: its position read as the mask, from the row's observed
cells (docs/paper.md section 4).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from wordexperts.tabular import encoding
from wordexperts.tabular.solver import position_log_proba

__all__ = ["impute"]


def impute(clf: Any, X: Any) -> pd.DataFrame:
    """``X`` with every missing cell filled in by the fitted ``clf`` (see
    :meth:`~wordexperts.tabular.estimator.WordExpertsClassifier.impute`)."""
    name = getattr(clf, "target_name_", None)
    has_target = isinstance(X, pd.DataFrame) and name is not None and name in X.columns
    features = X.drop(columns=name) if has_target else X
    ids, soft = clf.model_inputs(features)
    features = encoding.as_table(features)
    frame = X.copy() if isinstance(X, pd.DataFrame) else pd.DataFrame(
        features, columns=[c.name for c in clf.columns_])

    def fill(column: encoding.Column) -> Any:
        if column.binned:                   # the expected value over the bins
            return lambda log_p: np.exp(log_p) @ column.bin_values
        return lambda log_p: column.values(log_p.argmax(1))

    slots: list[tuple[Any, np.ndarray, Any]] = [
        (c.name, np.asarray(pd.isna(encoding.column_values(features, j)), dtype=bool),
         fill(c)) for j, c in enumerate(clf.columns_)]
    if has_target:
        observed = frame[name].notna().to_numpy()
        codes = pd.Index(clf.classes_).get_indexer(pd.Index(frame[name][observed],
                                                             dtype=object))
        if (codes < 0).any():
            unseen = pd.unique(frame[name][observed][codes < 0].astype(object))
            raise ValueError(f"target column {name!r} holds classes not seen in fit: "
                             f"{list(unseen[:5])}")
        ids[observed, -1] = clf.words_[-1][codes]
        slots.append((name, ~observed, lambda log_p: clf.classes_[log_p.argmax(1)]))
    for j, (column, missing, values_of) in enumerate(slots):
        if not missing.any():
            continue
        log_p = position_log_proba(clf.model_, ids[missing], clf.words_[j], j,
                                   None if soft is None else soft.rows(missing))
        values = frame[column].to_numpy(dtype=object, copy=True)
        values[missing] = values_of(log_p)
        frame[column] = pd.Series(values, index=frame.index).infer_objects()
    return frame
