"""Out-of-distribution tables: the paper's two (:mod:`~wordexperts.datasets.paper`)."""

from wordexperts.datasets.paper import (
    AUTO_MPG_FEATURES,
    load_auto_mpg,
    make_shift_simulation,
    paper_seeds,
)

__all__ = ["AUTO_MPG_FEATURES", "load_auto_mpg", "make_shift_simulation", "paper_seeds"]
