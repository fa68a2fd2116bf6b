"""``wordexperts predict``: a saved model's predictions for the rows of a table.

    wordexperts predict model rows.csv --out predictions.csv [--proba] [--keep id]

Writes one row per row of the input, in its order: the ``--keep`` columns copied from the
input, ``prediction`` (the most probable class) and, with ``--proba``, one column
``proba_<class>`` per class (the probabilities, summing to 1 in each row). Columns the model
was not fitted on (the target, an id) are otherwise ignored. CSV or Parquet by the suffixes,
the output written atomically (:mod:`wordexperts.harness.table_io`).
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from wordexperts.harness.table_io import (
    add_model_arguments,
    feature_columns,
    one_line,
    read_model_and_rows,
    write_table,
)

if TYPE_CHECKING:
    from wordexperts.tabular.estimator import WordExpertsClassifier

PREDICTION, PROBA = "prediction", "proba_"

EXAMPLE = """example:
  wordexperts predict model test.csv --out predictions.csv
  wordexperts predict model test.parquet --proba --keep id --out predictions.parquet"""


def configure(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser, example=EXAMPLE,
                        rows="table to predict, .csv or .parquet, with the model's feature "
                             "columns; others are ignored (required)")
    parser.add_argument("--proba", action="store_true",
                        help=f"also write each class's probability ({PROBA}<class>)")
    parser.add_argument("--keep", nargs="+", default=[], metavar="COLUMN",
                        help="columns of ROWS to copy into the output, say an id")


def predictions(clf: WordExpertsClassifier, X: pd.DataFrame, *, proba: bool) -> pd.DataFrame:
    """``prediction`` for each row of ``X`` and, with ``proba``, ``proba_<class>`` per class:
    :meth:`~WordExpertsClassifier.predict` and :meth:`~WordExpertsClassifier.predict_proba`
    from one pass."""
    log_p = clf.predict_log_proba(X)
    out = pd.DataFrame({PREDICTION: clf.classes_[log_p.argmax(axis=1)]})
    if proba:
        p = np.exp(log_p)
        out = out.assign(**{f"{PROBA}{c}": p[:, k] for k, c in enumerate(clf.classes_)})
    return out


def run(args: argparse.Namespace) -> int:
    """Check the options and the table, predict, write ``--out``."""
    clf, frame = read_model_and_rows(
        args, command="predict", example="wordexperts predict model rows.csv --out predictions.csv")
    keep = list(dict.fromkeys(args.keep))
    absent = [c for c in keep if c not in frame.columns]
    if absent:
        raise ValueError(f"--keep: {args.rows} has no column(s) {absent}")
    X = feature_columns(clf, frame, args.rows)
    try:
        out = predictions(clf, X, proba=args.proba)
    except ValueError as exc:
        raise ValueError(f"{args.rows}: {one_line(exc)}") from None
    clash = [c for c in keep if c in out.columns]
    if clash:
        raise ValueError(f"--keep {clash}: the output has a column of that name already")
    out = pd.concat([frame[keep].reset_index(drop=True), out], axis=1)
    write_table(out, args.out)
    print(f"wrote {len(out)} predictions of {args.rows} to {args.out}")
    return 0
