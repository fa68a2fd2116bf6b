"""Tables and saved models for the table commands (``fit``, ``predict``, ``impute``,
``explain-table``).

A table is CSV, or Parquet when its name ends with ``.parquet``; an output table is written
atomically (a scratch file beside it, then renamed), so a failure never leaves half a file.
Every failure a user can cause (a missing, empty or unparsable file, a missing column, text in
a numeric column, a folder that is no saved model) is a one-line ``ValueError`` or
``FileNotFoundError`` naming the file and the column, which :func:`wordexperts.harness.cli.main`
prints as ``wordexperts: error: ...`` with exit code 2.
"""

from __future__ import annotations

import argparse
import os
import uuid
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from wordexperts.tabular.estimator import WordExpertsClassifier

#: What an output table's name may end with, and so its format.
OUTPUT_SUFFIXES = (".csv", ".parquet")


def one_line(exc: BaseException) -> str:
    """``exc``'s message on one line (pandas and pyarrow messages span several)."""
    return " ".join(str(exc).split())


def _is_parquet(path: Path) -> bool:
    return path.suffix.lower() == ".parquet"


def read_table(path: Path, what: str) -> pd.DataFrame:
    """The table at ``path`` (Parquet by its suffix, else CSV), with at least one row. Every
    failure (missing, empty, unparsable, not UTF-8, a header without rows) names ``what``
    (say ``"data"``) and the file."""
    if not path.is_file():
        raise FileNotFoundError(f"{what}: {path} is not a file")
    if _is_parquet(path):
        try:
            frame = pd.read_parquet(path)
        except (ValueError, OSError, ImportError) as exc:  # pyarrow's ArrowInvalid is both
            raise ValueError(f"{what}: cannot read {path} as Parquet ({one_line(exc)})") from None
    else:
        try:
            frame = pd.read_csv(path)
        except pd.errors.EmptyDataError as exc:
            raise ValueError(f"{what}: {path} is empty ({one_line(exc)})") from exc
        except UnicodeDecodeError as exc:
            raise ValueError(f"{what}: {path} is not UTF-8 text ({one_line(exc)})") from exc
        except (pd.errors.ParserError, ValueError, OSError) as exc:
            raise ValueError(f"{what}: cannot read {path} as CSV ({one_line(exc)})") from exc
    if len(frame) == 0:
        raise ValueError(f"{what}: {path} has a header but no rows")
    return frame


def check_output(path: Path) -> Path:
    """``path``, if a table can be written there: a name ending with one of
    :data:`OUTPUT_SUFFIXES`, not a folder. Checked before any work is done."""
    if path.suffix.lower() not in OUTPUT_SUFFIXES:
        raise ValueError(f"--out {path}: give a file name ending with "
                         f"{' or '.join(OUTPUT_SUFFIXES)} (the suffix picks the format)")
    if path.is_dir():
        raise ValueError(f"--out {path} is a folder, not a file")
    return path


def write_table(frame: pd.DataFrame, path: Path) -> Path:
    """Write ``frame`` (without its index) to ``path``, CSV or Parquet by its suffix,
    atomically: into a scratch file beside it, renamed onto ``path`` once complete."""
    check_output(path)
    scratch = path.parent / f".{path.name}.{uuid.uuid4().hex[:12]}.partial"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if _is_parquet(path):
            frame.to_parquet(scratch, index=False)
        else:
            frame.to_csv(scratch, index=False)
        os.replace(scratch, path)
    except OSError as exc:                    # say, a folder the user cannot write to
        raise ValueError(f"cannot write {path}: {exc.strerror or one_line(exc)}") from None
    except (ValueError, TypeError, ImportError) as exc:   # pyarrow's type errors
        raise ValueError(f"cannot write {path} as Parquet ({one_line(exc)})") from None
    finally:
        scratch.unlink(missing_ok=True)
    return path


def load_model(path: Path) -> WordExpertsClassifier:
    """The model :meth:`WordExpertsClassifier.save` wrote to the folder ``path``; a folder
    that is missing, incomplete, damaged or unreadable is named in the error."""
    from wordexperts.tabular.estimator import WordExpertsClassifier

    try:
        return WordExpertsClassifier.load(path)
    except FileNotFoundError:
        raise
    except OSError as exc:          # a permission error, say: load names the rest itself
        raise ValueError(f"cannot read the saved model {path}: "
                         f"{exc.strerror or one_line(exc)}") from None


def feature_columns(clf: WordExpertsClassifier, frame: pd.DataFrame,
                    source: Path) -> pd.DataFrame:
    """The model's feature columns of ``frame``, in its order, checked by the model's own
    reading of them (text in a numeric column is named by column and 0-based data row)."""
    names = [c.name for c in clf.columns_]
    missing = [n for n in names if n not in frame.columns]
    if missing:
        raise ValueError(f"{source}: no column(s) {missing} (the model was fitted on {names})")
    X = frame[names]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # unseen categories warn once, where they are read
        try:
            clf.encoder_.codes(X)
        except ValueError as exc:
            raise ValueError(f"{source}: {exc}") from None
    return X


def read_as_missing(clf: WordExpertsClassifier, X: pd.DataFrame) -> np.ndarray:
    """Which cells of ``X`` (checked by :func:`feature_columns`) the model reads as missing:
    (n, n_features) booleans, True for a missing cell and for an unseen category."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return clf.encoder_.codes(X) < 0


def add_model_arguments(parser: argparse.ArgumentParser, *, example: str, rows: str) -> None:
    """The arguments of the commands that read a saved model and a table: ``MODEL_DIR``,
    ``ROWS`` (described by ``rows``) and ``--out``, with ``example`` under ``--help``. They
    are optional for argparse, so that the command parses without them (tests/test_cli.py);
    ``run`` requires them."""
    parser.epilog = example
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("model", type=Path, nargs="?", metavar="MODEL_DIR",
                        help="folder of a model saved by wordexperts fit (required)")
    parser.add_argument("rows", type=Path, nargs="?", metavar="ROWS", help=rows)
    parser.add_argument("--out", type=Path, default=None, metavar="FILE",
                        help="file to write, .csv or .parquet (required)")


def read_model_and_rows(args: argparse.Namespace, *, command: str, example: str
                        ) -> tuple[WordExpertsClassifier, pd.DataFrame]:
    """The saved model and the table of a command made by :func:`add_model_arguments`, once
    its three arguments are given (``example``: a full command line) and ``--out`` can be
    written."""
    if args.model is None or args.rows is None or args.out is None:
        raise ValueError(f"{command} needs MODEL_DIR, ROWS and --out: {example}")
    check_output(args.out)
    return load_model(args.model), read_table(args.rows, "rows")
