"""``wordexperts fit``: fit a :class:`~wordexperts.tabular.WordExpertsClassifier` on a table.

    wordexperts fit train.csv --target y --out model [--epochs 50] [--param lr=0.01]

Reads a CSV or Parquet file (:mod:`wordexperts.harness.table_io`), fits on every column but
the target (and ``--drop``), and saves the model to the folder ``--out`` (atomically:
:meth:`~wordexperts.tabular.WordExpertsClassifier.save`), for ``predict``, ``impute`` and
``explain-table``. The estimator's options have flags of their own (``--preset``,
``--epochs``, ...); any other constructor argument is ``--param key=value``. The table, the
target and the options are checked before the fit starts; the progress bar shows when stderr
is a terminal.
"""

from __future__ import annotations

import argparse
import ast
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from wordexperts.harness.table_io import one_line, read_table

#: An integer target with more distinct values than this is likely a number, not classes:
#: fitting it as classes gets a warning.
MANY_CLASSES = 20

#: The estimator's options with a flag of their own: flag -> constructor argument.
FLAGS = {"--preset": "preset", "--random-state": "random_state", "--epochs": "epochs",
         "--missing": "missing", "--numeric": "numeric", "--calibration": "calibration",
         "--device": "device"}

EXAMPLE = """example:
  wordexperts fit train.csv --target y --out model --epochs 50 --random-state 0
  wordexperts fit train.parquet --target label --drop id --out model --param lr=0.01"""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EXAMPLE
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    # optional for argparse so that the command parses without them (tests/test_cli.py);
    # run() requires them
    parser.add_argument("train", type=Path, nargs="?", metavar="TRAIN",
                        help="training table, .csv or .parquet (required)")
    parser.add_argument("--target", default=None, metavar="COLUMN",
                        help="the column to predict (required)")
    parser.add_argument("--out", type=Path, default=None, metavar="MODEL_DIR",
                        help="folder to save the model to (required; replaced if it holds one)")
    parser.add_argument("--drop", nargs="+", default=[], metavar="COLUMN",
                        help="columns not to fit on, say an id")
    parser.add_argument("--preset", choices=("fast", "paper"), default=None,
                        help="training recipe (default: fast)")
    parser.add_argument("--random-state", type=int, default=None, metavar="SEED",
                        help="seed: the same seed gives the same model (default: none)")
    parser.add_argument("--epochs", type=int, default=None, metavar="N",
                        help="passes over the rows (default: the preset's)")
    parser.add_argument("--missing", choices=("absent", "mask"), default=None,
                        help="how a missing cell is read (default: the preset's, mask)")
    parser.add_argument("--numeric", choices=("auto", "interpolate", "linear", "bin", "error"),
                        default=None, help="how numbers are read (default: the preset's)")
    parser.add_argument("--calibration", choices=("temperature", "none"), default=None,
                        help="calibrate the probabilities (default: the preset's)")
    parser.add_argument("--device", default=None,
                        help="train with PyTorch on this device, say cuda (default: NumPy)")
    parser.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                        help="any other WordExpertsClassifier argument, repeatable: "
                             "--param lr=0.01 --param early_stopping=True")


def parse_value(text: str) -> Any:
    """A ``--param`` value: a Python literal (``3``, ``0.01``, ``True``, ``None``; also
    ``true``, ``false``, ``none``), else the text itself (``auto``)."""
    text = text.strip()
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null"):
        return None
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def estimator_params(args: argparse.Namespace, known: dict[str, Any]) -> dict[str, Any]:
    """The constructor arguments the options ask for: the flags given and each ``--param``,
    whose key must be one of ``known`` (``get_params()``) and not also a flag given."""
    params = {name: getattr(args, name) for name in FLAGS.values()
              if getattr(args, name) is not None}
    for item in args.param:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"--param {item!r}: give KEY=VALUE, say --param lr=0.01")
        if key not in known:
            raise ValueError(f"--param {key}: WordExpertsClassifier has no parameter {key!r} "
                             f"(it has {', '.join(sorted(known))})")
        if key in params:
            raise ValueError(f"--param {key}: {key} is given twice")
        params[key] = parse_value(text)
    return params


def check_model_folder(out: Path) -> None:
    """Raise unless ``out`` is new, empty or a saved model: saving replaces the whole folder,
    so ``--out .`` must not delete the files beside the table."""
    from wordexperts.tabular.persistence import META

    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; give a folder for the model")
    if out.is_dir() and any(out.iterdir()) and not (out / META).is_file():
        raise ValueError(f"--out {out} holds files and no saved model (saving replaces the "
                         "folder): give a new or empty folder")


def check_device(device: str | None) -> None:
    """Raise unless torch can place a tensor on ``device`` (None: the NumPy trainer), before
    the table is read: a CPU-only torch asked for ``cuda`` fails only inside the fit."""
    if device is None:
        return
    import torch

    try:
        torch.empty(0, device=device)
    except (RuntimeError, AssertionError) as exc:   # a CPU-only build asserts
        raise ValueError(f"--device {device}: not available here ({one_line(exc)})") from None


def training_data(frame: pd.DataFrame, target: str, drop: list[str],
                  source: Path) -> tuple[pd.DataFrame, pd.Series]:
    """The features and the target of the table read from ``source``, checked: the target
    and the dropped columns exist, every row has a target, some feature is left. An
    integer target of more than :data:`MANY_CLASSES` values warns that it is read as
    classes."""
    absent = [c for c in [target, *drop] if c not in frame.columns]
    if absent:
        raise ValueError(f"{source}: no column(s) {absent} (it has {list(frame.columns)})")
    y = frame[target]
    rows = np.flatnonzero(y.isna())
    if len(rows):
        raise ValueError(f"{source}: target column {target!r} is missing in {len(rows)} "
                         f"row(s) (first: row {rows[0]}, 0-based); every training row "
                         "needs a target")
    X = frame.drop(columns=list(dict.fromkeys([target, *drop])))
    if X.shape[1] == 0:
        raise ValueError(f"{source}: no feature column is left besides the target {target!r}")
    n_values = y.nunique()
    if pd.api.types.is_integer_dtype(y) and n_values > MANY_CLASSES:
        warnings.warn(f"{source}: target column {target!r} holds {n_values} distinct "
                      "integers; each is read as a class (a classifier), not as a number",
                      UserWarning, stacklevel=2)
    return X, y


def run(args: argparse.Namespace) -> int:
    """Check the options, the table and the target, fit, save the model to ``--out``."""
    from wordexperts.tabular.estimator import WordExpertsClassifier

    if args.train is None or args.target is None or args.out is None:
        raise ValueError("fit needs TRAIN, --target and --out: "
                         "wordexperts fit train.csv --target y --out model")
    check_model_folder(args.out)
    params = estimator_params(args, WordExpertsClassifier().get_params())
    params.setdefault("verbose", sys.stderr.isatty())  # a progress bar only on a terminal
    check_device(params.get("device"))
    clf = WordExpertsClassifier(**params)
    X, y = training_data(read_table(args.train, "train"), args.target, args.drop, args.train)
    try:
        clf.fit(X, y)
    except ValueError as exc:   # a bad setting or a table the estimator cannot read
        raise ValueError(f"fitting {args.train}: {one_line(exc)}") from None
    try:
        clf.save(args.out)
    except OSError as exc:
        raise ValueError(f"cannot save the model to {args.out}: "
                         f"{exc.strerror or one_line(exc)}") from None
    print(f"fitted on {len(X)} rows of {args.train}: {X.shape[1]} feature column(s), "
          f"{len(clf.classes_)} classes of {args.target!r}; saved the model to {args.out}")
    return 0
