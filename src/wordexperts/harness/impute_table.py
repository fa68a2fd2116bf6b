"""``wordexperts impute``: fill the missing cells of a table with a saved model.

    wordexperts impute model rows.csv --out filled.csv

Each missing cell of the model's columns is predicted from the row's observed cells
(:meth:`~wordexperts.tabular.WordExpertsClassifier.impute`): a category or a number of a
column with few values as its most probable value, a binned number as its expected value. A
column named as the target was in ``fit`` is read too: its observed cells as context, its
missing ones predicted. The output is the input table with those cells filled, every other
cell and column as read, in the input's order. CSV or Parquet by the suffixes, written
atomically (:mod:`wordexperts.harness.table_io`).
"""

from __future__ import annotations

import argparse

from wordexperts.harness.table_io import (
    add_model_arguments,
    feature_columns,
    one_line,
    read_model_and_rows,
    write_table,
)

EXAMPLE = """example:
  wordexperts impute model rows.csv --out filled.csv
  wordexperts impute model rows.parquet --out filled.parquet"""


def configure(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser, example=EXAMPLE,
                        rows="table with missing cells, .csv or .parquet, with the model's "
                             "feature columns; other columns are copied as they are (required)")


def run(args: argparse.Namespace) -> int:
    """Check the options and the table, impute, write ``--out``."""
    clf, frame = read_model_and_rows(args, command="impute",
                                     example="wordexperts impute model rows.csv --out filled.csv")
    X = feature_columns(clf, frame, args.rows)
    target = getattr(clf, "target_name_", None)
    if target is not None and target in frame.columns:
        X = frame[[*X.columns, target]]
    try:
        filled = clf.impute(X)
    except ValueError as exc:
        raise ValueError(f"{args.rows}: {one_line(exc)}") from None
    counts = X.isna().sum() - filled.isna().sum()
    out = frame.copy()
    out[list(filled.columns)] = filled
    write_table(out, args.out)
    done = ", ".join(f"{column} {n}" for column, n in counts.items() if n)
    print(f"filled {counts.sum()} missing cell(s) of {args.rows}"
          + (f" ({done})" if done else "") + f"; wrote {args.out}")
    return 0
