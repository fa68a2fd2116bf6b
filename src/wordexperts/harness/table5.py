"""``wordexperts reproduce table5``: auto-mpg, trained on US cars, tested on the others.

The paper's Table 5 (one run per method); here every method over several seeds (model
initialization, bootstrap and validation splits; the data split is fixed).
"""

from __future__ import annotations

import argparse
import sys

import pandas as pd

from wordexperts.datasets import load_auto_mpg
from wordexperts.harness.baselines import PEERS, peers_available
from wordexperts.harness.methods import get_methods
from wordexperts.harness.report import write_report
from wordexperts.harness.store import add_runner_arguments, run_grid

CONFIG = "auto-mpg"
DEFAULT_METHODS: tuple[str, ...] = ("attention", "lr", "rf", "gb", "mlp", *PEERS)

# Published figures (Wibisono and Wang, UAI 2023, Table 5): test accuracy and test MSE
# (class index) of one run per method. Shown beside our runs for comparison only.
_PUBLISHED = {
    "lr": (0.657, 0.343), "rf": (0.721, 0.279), "gb": (0.657, 0.343), "mlp": (0.700, 0.300),
    "category_embedding": (0.764, 0.236), "ft_transformer": (0.707, 0.293),
    "tab_transformer": (0.707, 0.293), "attention": (0.793, 0.207),
}
PAPER_PUBLISHED: dict[str, dict[str, dict[str, float]]] = {
    "acc_test": {CONFIG: {m: acc for m, (acc, _) in _PUBLISHED.items()}},
    "mse_test": {CONFIG: {m: mse for m, (_, mse) in _PUBLISHED.items()}},
}


def load(config: str, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """auto-mpg's (train, test); the split does not depend on ``seed``."""
    if config != CONFIG:
        raise ValueError(f"config must be {CONFIG!r}, got {config!r}")
    return load_auto_mpg()


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seeds", type=int, default=10, metavar="K",
                        help="seeds 0..K-1 per method (default: 10)")
    parser.add_argument("--methods", nargs="+", default=None,
                        help=f"methods to compare (default: {' '.join(DEFAULT_METHODS)}; the "
                             "PyTorch Tabular peers only when wordexperts[peers] is installed)")
    add_runner_arguments(parser, default_out="runs/table5")


def run(args: argparse.Namespace) -> int:
    if args.seeds < 1:
        raise ValueError(f"--seeds must be >= 1, got {args.seeds}")
    notes = ["Data: auto-mpg from vega_datasets, 385 cars, 6 features and mpg in 3 quantile "
             "bins; train 245 US cars, test 140 European and Japanese cars.",
             "Seeds set the models' random state (the split is fixed); LR is deterministic.",
             "Paper figures: one run per method (the paper's Table 5)."]
    names = args.methods
    if names is None:
        names = list(DEFAULT_METHODS)
        if not peers_available():
            names = [n for n in names if n not in PEERS]
            notes.append("PyTorch Tabular peers not run: install wordexperts[peers].")
            print("note: " + notes[-1], file=sys.stderr)
    methods = get_methods(names)
    load(CONFIG, 0)  # fails early without vega_datasets
    seeds = list(range(args.seeds))
    outcome = run_grid(methods, [CONFIG], seeds, load, out=args.out,
                               scheduler=args.scheduler, workers=args.workers,
                               progress=args.progress)
    if not outcome.records:
        print("no finished runs", file=sys.stderr)
        return 1
    command = (f"wordexperts reproduce table5 --seeds {args.seeds} "
               f"--methods {' '.join(m.name for m in methods)}")
    report = write_report(
        outcome.records, args.out, title="auto-mpg out of distribution (paper Table 5)",
        paper=PAPER_PUBLISHED, command=command, configs=[CONFIG],
        methods=[m.name for m in methods], seeds=seeds, notes=notes,
    )
    print(report.read_text())
    return 1 if outcome.failed else 0
