"""``wordexperts reproduce tables34``: the paper's simulated covariate shift (Tables 3, 4).

Twelve configurations ``{k}_{corr}_{x_noise}`` (causal features, train correlation, feature
noise) of :func:`wordexperts.datasets.make_shift_simulation`, each over the paper's 20 seeds;
every method is fitted on the training half and scored on the shifted test half.
"""

from __future__ import annotations

import argparse
import re
import sys

import pandas as pd

from wordexperts.datasets import make_shift_simulation, paper_seeds
from wordexperts.harness.methods import get_methods
from wordexperts.harness.report import write_report
from wordexperts.harness.store import add_runner_arguments, run_grid

CONFIGS: tuple[str, ...] = tuple(
    f"{k}_{corr}_{noise}" for k in (1, 5) for corr in (0.1, 0.9) for noise in (0, 0.5, 1.5)
)
DEFAULT_METHODS: tuple[str, ...] = ("attention", "lr", "rf", "gb", "mlp")
N_FEATURES = 5  # make_shift_simulation's default, the paper's

# Published figures (Wibisono and Wang, UAI 2023, Tables 3 and 4): mean test accuracy and
# test MSE (class index) over the paper's 20 seeds, per configuration, in CONFIGS order.
# Shown beside our runs for comparison only; never used to compute anything.
_PAPER_METHODS = ("lr", "rf", "gb", "mlp", "attention")
_PUBLISHED_ACC = (
    (0.388, 0.409, 0.413, 0.323, 0.404), (0.345, 0.361, 0.366, 0.292, 0.359),
    (0.250, 0.243, 0.253, 0.204, 0.252), (0.313, 0.298, 0.350, 0.237, 0.389),
    (0.270, 0.252, 0.299, 0.202, 0.306), (0.169, 0.158, 0.172, 0.142, 0.170),
    (0.250, 0.207, 0.244, 0.306, 0.419), (0.227, 0.173, 0.215, 0.252, 0.318),
    (0.167, 0.099, 0.157, 0.165, 0.171), (0.162, 0.150, 0.156, 0.169, 0.392),
    (0.154, 0.133, 0.153, 0.151, 0.269), (0.125, 0.108, 0.114, 0.118, 0.133),
)
_PUBLISHED_MSE = (
    (3.02, 2.69, 2.73, 4.06, 2.94), (3.42, 3.20, 3.12, 4.70, 3.28),
    (5.73, 5.69, 5.42, 7.20, 5.59), (5.16, 9.33, 4.86, 7.91, 3.08),
    (5.96, 10.11, 6.07, 8.12, 4.47), (8.94, 12.34, 9.84, 9.87, 7.34),
    (5.33, 8.50, 5.97, 2.81, 1.52), (6.02, 10.24, 6.84, 4.06, 2.61),
    (9.16, 16.15, 9.54, 8.31, 8.32), (5.67, 10.10, 8.86, 7.84, 1.63),
    (6.12, 10.43, 8.28, 7.88, 2.36), (8.41, 10.41, 10.11, 9.97, 6.50),
)
PAPER_PUBLISHED: dict[str, dict[str, dict[str, float]]] = {
    metric: {config: dict(zip(_PAPER_METHODS, row, strict=True))
             for config, row in zip(CONFIGS, table, strict=True)}
    for metric, table in (("acc_test", _PUBLISHED_ACC), ("mse_test", _PUBLISHED_MSE))
}

_CONFIG = re.compile(r"^(\d+)_(\d*\.?\d+)_(\d*\.?\d+)$")


def parse_config(name: str) -> dict[str, float | int]:
    """``"k_corr_xnoise"`` -> keyword arguments of ``make_shift_simulation``.

    >>> parse_config("5_0.9_0")
    {'n_causal': 5, 'corr': 0.9, 'x_noise': 0.0}
    """
    match = _CONFIG.match(name)
    if not match:
        raise ValueError(f"--configs: {name!r} is not of the form k_corr_xnoise, e.g. 5_0.9_0")
    k, corr, noise = int(match.group(1)), float(match.group(2)), float(match.group(3))
    if not 1 <= k <= N_FEATURES or corr > 1:
        raise ValueError(f"--configs: {name!r} needs 1 <= k <= {N_FEATURES} and corr <= 1")
    return {"n_causal": k, "corr": corr, "x_noise": noise}


def load(config: str, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The simulated (train, test) of ``config`` and ``seed``, the paper's other settings."""
    return make_shift_simulation(**parse_config(config), seed=seed)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), metavar="K_CORR_NOISE",
                        help="configurations (default: the paper's 12)")
    parser.add_argument("--seeds", type=int, default=20, metavar="K",
                        help="the first K of the paper's seeds (default: 20, all of them)")
    parser.add_argument("--methods", nargs="+", default=list(DEFAULT_METHODS),
                        help=f"methods to compare (default: {' '.join(DEFAULT_METHODS)})")
    add_runner_arguments(parser, default_out="runs/tables34")


def run(args: argparse.Namespace) -> int:
    for config in args.configs:
        parse_config(config)
    if args.seeds < 1:
        raise ValueError(f"--seeds must be >= 1, got {args.seeds}")
    methods = get_methods(args.methods)
    seeds = paper_seeds(args.seeds)
    outcome = run_grid(methods, list(args.configs), seeds, load, out=args.out,
                               scheduler=args.scheduler, workers=args.workers,
                               progress=args.progress)
    if not outcome.records:
        print("no finished runs", file=sys.stderr)
        return 1
    command = (f"wordexperts reproduce tables34 --configs {' '.join(args.configs)} "
               f"--seeds {args.seeds} --methods {' '.join(m.name for m in methods)}")
    report = write_report(
        outcome.records, args.out, title="Simulated covariate shift (paper Tables 3 and 4)",
        paper=PAPER_PUBLISHED, command=command, configs=list(args.configs),
        methods=[m.name for m in methods], seeds=seeds,
        notes=["Data: make_shift_simulation, 2000 train and 2000 shifted test rows, 5 "
               "features, y noise 2, 10 quantile bins; config = k_corr_xnoise.",
               "Baselines: the paper's grids, 5-fold stratified grid search on one-hot "
               "features; seed = data seed = model random_state.",
               "Paper figures: means over the paper's 20 seeds."],
    )
    print(report.read_text())
    return 1 if outcome.failed else 0
