"""``wordexperts explain-table``: which columns drive a saved tabular model's predictions.

Reads a model written by :meth:`WordExpertsClassifier.save` (or ``wordexperts fit``) and a
table (CSV, or Parquet by its suffix: :mod:`wordexperts.harness.table_io`), and writes (from
:mod:`wordexperts.tabular.explain`): ``contributions.csv`` (the tidy per-row, column and
class gates and logit contributions of the chosen rows, and whether the row's cell of the
column was read as missing: ``missing``), ``importance.csv`` (global
importance over all rows of the table), with ``--reference`` ``gate_shift.csv`` (the mean
gates of the reference rows against the data's), and the figures: ``row_<n>`` (one row's
contributions to its predicted class), ``importance`` and ``gate_shift``, as PNG, SVG or PDF;
with ``--html`` ``explain-table.html``, an interactive page of the same numbers
(:func:`page_data`, :mod:`wordexperts.harness.page`): each row's column contributions beside
the global importance and the gate shift. The printed table of each row shows its cells
beside their contributions, a cell read as missing (empty, or a category not seen in fit)
marked so.

    wordexperts explain-table MODEL_DIR data.csv --rows 0 5 --out DIR [--reference train.csv]

Both tables are read and checked (an unreadable, empty or header-only file, a missing column,
text in a numeric column: named by file, column and 0-based row) and everything is computed
before anything is written; the files are written into a scratch folder beside ``--out`` and
moved into place, so a failure leaves no output folder behind.
"""

from __future__ import annotations

import argparse
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from wordexperts.harness.page import table_page, write_page
from wordexperts.harness.table_io import (
    feature_columns,
    load_model,
    read_as_missing,
    read_table,
)
from wordexperts.tabular.explain import (
    BIAS,
    TARGET_SLOT,
    explain_predictions,
    gate_shift,
    global_importance,
)
from wordexperts.tabular.figures import (
    FORMATS,
    plot_gate_shift,
    plot_importance,
    plot_row,
    row_contributions,
)

DEFAULT_OUT = Path("runs") / "explain-table"

EXAMPLE = """example:
  wordexperts explain-table model test.csv --rows 0 5 --reference train.csv --out explained"""


def page_data(tables: dict[Any, pd.DataFrame], importance: pd.Series,
              shift: pd.DataFrame | None, *, quantity: str, model: str) -> dict[str, Any]:
    """The numbers of the interactive page, JSON-ready: per explained row
    (:func:`row_contributions`) its predicted class and each column's gate, contribution and
    centred contribution (the bias last), the global importance and, with a reference, the
    gate shift (``reference``, ``data``, ``shift`` per column). What a column has not
    (the bias's gate) is null."""
    def plain(values: Any) -> list[Any]:
        values = [v.item() if isinstance(v, np.generic) else v for v in values]
        return [None if isinstance(v, float) and np.isnan(v) else v for v in values]

    rows = [{"row": int(row), "klass": str(table.attrs["class"]),
             "columns": [str(c) for c in table.index], "gate": plain(table["gate"]),
             "contribution": plain(table["contribution"]), "centred": plain(table["centred"])}
            for row, table in tables.items()]
    data: dict[str, Any] = {
        "model": model, "quantity": quantity, "bias": BIAS, "rows": rows,
        "importance": {"columns": [str(c) for c in importance.index],
                       "values": plain(importance)},
        "shift": None, "groups": None,
    }
    if shift is not None:
        groups = [c[len("gate_"):] for c in shift.columns if c.startswith("gate_")]
        data["groups"] = groups
        data["shift"] = {"columns": [str(c) for c in shift.index],
                         "reference": plain(shift[f"gate_{groups[0]}"]),
                         "data": plain(shift[f"gate_{groups[1]}"]),
                         "shift": plain(shift["shift"])}
    return data


def mark_missing(frame: pd.DataFrame, X: pd.DataFrame, missing: np.ndarray) -> pd.DataFrame:
    """``frame`` (:func:`~wordexperts.tabular.explain.explain_predictions` of rows of ``X``)
    with a column ``missing``: True where the row's cell of the column was read as missing
    (``missing``: :func:`~wordexperts.harness.table_io.read_as_missing` of ``X``), False for
    the other cells, empty for the target slot and the bias."""
    flags = pd.DataFrame(missing, index=X.index, columns=X.columns).stack()
    cells = flags.reindex(pd.MultiIndex.from_arrays([frame["row"], frame["column"]]))
    return frame.assign(missing=pd.array(cells.to_numpy(), dtype="boolean"))


def with_cells(table: pd.DataFrame, cells: pd.Series, missing: np.ndarray) -> pd.DataFrame:
    """``table`` (:func:`row_contributions`) with the row's cell of each column first
    (``cells``: the row of the data), ``(missing)`` for an empty cell and ``(unseen, read as
    missing)`` after a category not seen in fit (``missing``: the row of
    :func:`~wordexperts.harness.table_io.read_as_missing`)."""
    def shown(value: object, read_as_missing: bool) -> str:
        if pd.isna(value):
            return "(missing)"
        return f"{value} (unseen, read as missing)" if read_as_missing else str(value)

    values = {name: shown(value, flag)
              for (name, value), flag in zip(cells.items(), missing, strict=True)}
    values[TARGET_SLOT] = "(masked: predicted)"
    out = table.copy()
    out.insert(0, "value", [values.get(name, "") for name in table.index])
    return out


def _place(staging: Path, out: Path) -> None:
    """Move the files written in ``staging`` into ``out`` (created if need be)."""
    if not out.exists():
        staging.rename(out)
        return
    for path in staging.iterdir():
        os.replace(path, out / path.name)
    staging.rmdir()


def configure(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EXAMPLE
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    # optional for argparse so that the command parses without them (tests/test_cli.py);
    # run() requires both
    parser.add_argument("model", type=Path, nargs="?",
                        help="folder of a saved WordExpertsClassifier (required)")
    parser.add_argument("data", type=Path, nargs="?", help="table (.csv or .parquet) with "
                        "the model's feature columns; other columns, such as the target, are "
                        "ignored (required)")
    parser.add_argument("--rows", type=int, nargs="+", default=[0],
                        help="rows of the table to explain, 0-based (default: 0)")
    parser.add_argument("--reference", type=Path, default=None,
                        help="a second table (say the training rows): compare its gates with "
                             "the data's (gate_shift.csv and figure)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help=f"output folder (default: {DEFAULT_OUT})")
    parser.add_argument("--format", nargs="+", choices=FORMATS, default=["png"],
                        help="figure format(s) (default: png)")
    parser.add_argument("--html", action="store_true",
                        help="also write explain-table.html, an interactive page in one "
                             "self-contained file (it loads nothing)")


def run(args: argparse.Namespace) -> int:
    """Read and check both tables and compute everything first, then write the files into a
    temporary folder beside ``--out`` and move them into place: a failure leaves no output
    folder (nor half of one) behind."""
    if args.model is None or args.data is None:
        raise ValueError("explain-table needs MODEL_DIR and DATA.csv: "
                         "wordexperts explain-table MODEL_DIR data.csv --rows 0 5 --out DIR")
    clf = load_model(args.model)
    X = feature_columns(clf, read_table(args.data, "data"), args.data)
    reference = None
    if args.reference is not None:
        reference = feature_columns(clf, read_table(args.reference, "reference"),
                                    args.reference)
    rows = list(dict.fromkeys(args.rows))  # in order, each once
    bad = [r for r in rows if not 0 <= r < len(X)]
    if bad:
        raise ValueError(f"--rows {bad} out of range: {args.data} has {len(X)} rows (0-based)")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} exists and is not a folder")

    frame = explain_predictions(clf, X.iloc[rows])
    tables = {row: row_contributions(frame, row) for row in rows}
    missing = read_as_missing(clf, X)
    frame = mark_missing(frame, X, missing)
    importance = global_importance(clf, X)
    shift = (None if reference is None
             else gate_shift(clf, reference, X, groups=("reference", "data")))

    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.parent / f".{out.name}.{uuid.uuid4().hex[:12]}.partial"
    staging.mkdir()
    try:
        frame.to_csv(staging / "contributions.csv", index=False)
        importance.to_csv(staging / "importance.csv")
        names = ["contributions.csv", "importance.csv"]
        for row in rows:
            names += [plot_row(frame, row, staging / f"row_{row}.{fmt}").name
                      for fmt in args.format]
        names += [plot_importance(importance, staging / f"importance.{fmt}").name
                  for fmt in args.format]
        if shift is not None:
            shift.to_csv(staging / "gate_shift.csv")
            names.append("gate_shift.csv")
            names += [plot_gate_shift(shift, staging / f"gate_shift.{fmt}").name
                      for fmt in args.format]
        if args.html:
            data = page_data(tables, importance, shift, quantity=frame.attrs["quantity"],
                             model=str(args.model))
            names.append(write_page(table_page(data), staging / "explain-table.html").name)
        _place(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)

    print(f"contributions: {frame.attrs['quantity']}\n")
    for row, table in tables.items():
        print(f"row {row}: predicted class {table.attrs['class']!r}")
        print(with_cells(table, X.iloc[row], missing[row]).round(3).to_string(), "\n")
    print("global importance (mean |centred logit contribution|) over all "
          f"{len(X)} rows:\n{importance.round(3).to_string()}\n")
    if shift is not None:
        print(f"mean gates, reference vs data ({TARGET_SLOT}: the target's own slot):\n"
              f"{shift.round(3).to_string()}\n")
    print("wrote " + ", ".join(str(out / name) for name in names))
    return 0
