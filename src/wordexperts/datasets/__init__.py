"""Out-of-distribution tables: the paper's two (:mod:`~wordexperts.datasets.paper`)."""

from wordexperts.datasets.paper import (
    AUTO_MPG_FEATURES,
    load_auto_mpg,
    make_shift_simulation,
    paper_seeds,
)
from wordexperts.datasets.real_shift import REAL_SHIFT_TABLES, RealShiftTable, load_real_shift

__all__ = ["AUTO_MPG_FEATURES", "load_auto_mpg", "make_shift_simulation", "paper_seeds",
           "REAL_SHIFT_TABLES", "RealShiftTable", "load_real_shift"]
