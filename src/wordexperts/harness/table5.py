"""``wordexperts reproduce table5``: auto-mpg, trained on US cars, tested on the others.

The paper's Table 5 (one run per method, at the authors' seed 42); here every method over
several seeds (model initialization, bootstrap and validation splits; the data split is
fixed). The pipeline is :class:`wordexperts.harness.tabular_ood.Reproduction`.
"""

from __future__ import annotations

import pandas as pd

from wordexperts.datasets import load_auto_mpg
from wordexperts.harness.baselines import PEERS
from wordexperts.harness.tabular_ood import Reproduction

CONFIG = "auto-mpg"
# The paper's ten methods.
DEFAULT_METHODS: tuple[str, ...] = ("attention", "lr", "rf", "gb", "mlp", *PEERS)


def load(config: str, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """auto-mpg's (train, test); the split does not depend on ``seed``."""
    if config != CONFIG:
        raise ValueError(f"config must be {CONFIG!r}, got {config!r}")
    return load_auto_mpg()


TABLE5 = Reproduction(
    name="table5",
    title="auto-mpg out of distribution (paper Table 5)",
    load=load,
    configs=(CONFIG,),
    default_methods=DEFAULT_METHODS,
    seeds=lambda k: list(range(k)),
    default_seeds=10,
    seeds_help="seeds 0..K-1 per method",
    paper="table5",
    notes=(
        "Data: auto-mpg from vega_datasets, 385 cars, 6 features and mpg in 3 quantile "
        "bins; train 245 US cars, test 140 European and Japanese cars.",
        "Seeds set the models' random state (the split is fixed); LR is deterministic.",
        "Peers: PyTorch Tabular with the authors' settings (batch 128, at most 200 epochs, "
        "lr 1e-3, linear head with dropout 0.1 and kaiming init, CategoryEmbedding layers "
        "64-32, early stopping on a random 20% validation split).",
        "Paper figures: one run per method at the authors' seed 42, none of ours (†).",
    ),
)
configure = TABLE5.configure
run = TABLE5.run
