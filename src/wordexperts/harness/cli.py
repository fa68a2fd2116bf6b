"""The ``wordexperts`` command line.

Each command lives in the module of its concept; that module exposes
``configure(parser)`` (adds its arguments) and ``run(args) -> int`` (does the work).
This file only lists the commands and imports just the module of the command asked for, so
``wordexperts --help`` stays fast and one module per concept owns its own options.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings

# (command words, module, one-line help)
COMMANDS: list[tuple[tuple[str, ...], str, str]] = [
    (("demo",), "wordexperts.harness.demo",
     "fit a small model, check attention == experts, show gates"),
    (("explain",), "wordexperts.harness.explain", "gates of a BERT-family checkpoint at a [MASK]"),
    (("fit",), "wordexperts.harness.fit_table",
     "fit a tabular classifier on a CSV or Parquet table and save it"),
    (("predict",), "wordexperts.harness.predict_table",
     "a saved tabular model's predictions (and probabilities) for a table"),
    (("impute",), "wordexperts.harness.impute_table",
     "fill a table's missing cells with a saved tabular model"),
    (("explain-table",), "wordexperts.harness.explain_table",
     "which columns drive a saved tabular model's predictions"),
    (("reproduce", "table5"), "wordexperts.harness.table5", "paper Table 5 (auto-mpg OOD)"),
    (("reproduce", "tables34"), "wordexperts.harness.tables34",
     "paper Tables 3-4 (simulated OOD)"),
    (("reproduce", "analogies"), "wordexperts.harness.analogies",
     "paper Tables 1-2 (word analogies)"),
    (("reproduce", "analogy-theory"), "wordexperts.harness.analogy_theory",
     "planted analogies: CBOW vs attention"),
    (("reproduce", "real-shift"), "wordexperts.harness.real_shift",
     "benchmark (not in the paper): real tables with a natural shift, ours against peers"),
    (("reproduce", "missing"), "wordexperts.harness.missing",
     "benchmark (not in the paper): real shifted tables with missing cells"),
]


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wordexperts",
        description="Bidirectional attention as a mixture of continuous word experts.",
    )
    parser.add_argument("--version", action="version", version=f"wordexperts {_version()}",
                        help="print the version and exit")
    top = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    groups: dict[str, argparse._SubParsersAction] = {}
    for words, module, help_ in COMMANDS:
        if len(words) == 1:
            sub = top.add_parser(words[0], help=help_, description=help_)
        else:
            if words[0] not in groups:
                group = top.add_parser(words[0], help=f"{words[0]} a result: the paper's "
                                       "tables, or a benchmark of this project")
                groups[words[0]] = group.add_subparsers(dest="what", required=True, metavar="WHAT")
            sub = groups[words[0]].add_parser(words[1], help=help_, description=help_)
        sub.set_defaults(_module=module)
        if tuple(argv[:len(words)]) == words:  # only the chosen command's module is imported
            _load(module).configure(sub)
    return parser


def _load(module: str):
    return importlib.import_module(module)


def _version() -> str:
    from wordexperts import __version__  # light: the package imports its names lazily

    return __version__


class _OneLineWarnings:
    """A ``warnings.showwarning`` that prints each warning once (by category and message)
    as one line on stderr, ``wordexperts: warning: ...``, without Python's file, line
    number and source line; as it happens, so long commands show them in time."""

    def __init__(self) -> None:
        self.seen: set[tuple[type, str]] = set()

    def __call__(self, message, category, filename, lineno, file=None, line=None) -> None:
        key = (category, str(message))
        if key not in self.seen:
            self.seen.add(key)
            print(f"wordexperts: warning: {message}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(argv).parse_args(argv)
    with warnings.catch_warnings():  # restores showwarning (and the filters) afterwards
        warnings.showwarning = _OneLineWarnings()
        try:
            return int(_load(args._module).run(args) or 0)
        except (ValueError, FileNotFoundError, ImportError) as exc:
            print(f"wordexperts: error: {exc}", file=sys.stderr)
            return 2


if __name__ == "__main__":
    sys.exit(main())
