"""``wordexperts reproduce tables34``: the paper's simulated covariate shift (Tables 3, 4).

Twelve configurations ``{k}_{corr}_{x_noise}`` (causal features, train correlation, feature
noise) of :func:`wordexperts.datasets.make_shift_simulation`, each over the paper's 20 seeds;
every method is fitted on the training half and scored on the shifted test half. The
pipeline is :class:`wordexperts.harness.tabular_ood.Reproduction`; the paper's per-seed
results (:func:`~wordexperts.harness.tabular_ood.paper_runs`) give the same-seed comparison.
"""

from __future__ import annotations

import re

import pandas as pd

from wordexperts.datasets import make_shift_simulation, paper_seeds
from wordexperts.harness.tabular_ood import Reproduction

CONFIGS: tuple[str, ...] = tuple(
    f"{k}_{corr}_{noise}" for k in (1, 5) for corr in (0.1, 0.9) for noise in (0, 0.5, 1.5)
)
DEFAULT_METHODS: tuple[str, ...] = ("attention", "lr", "rf", "gb", "mlp")
N_FEATURES = 5  # make_shift_simulation's default, the paper's

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


TABLES34 = Reproduction(
    name="tables34",
    title="Simulated covariate shift (paper Tables 3 and 4)",
    load=load,
    configs=CONFIGS,
    default_methods=DEFAULT_METHODS,
    seeds=paper_seeds,
    default_seeds=20,
    seeds_help="the first K of the paper's seeds",
    paper="tables34",
    notes=(
        "Data: make_shift_simulation, 2000 train and 2000 shifted test rows, 5 features, "
        "y noise 2, 10 quantile bins; config = k_corr_xnoise.",
        "Baselines: the paper's grids, 5-fold stratified grid search on one-hot features "
        "(unshuffled folds; the authors shuffled theirs); seed = data seed = model "
        "random_state.",
        "Paper figures: the authors' per-seed results on the same seeds (they ran 20).",
    ),
    check_config=parse_config,
)
configure = TABLES34.configure
run = TABLES34.run
