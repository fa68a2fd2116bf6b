"""The one Markdown table writer of the reports (tabular reproductions, analogies, theory)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd


def cell(value: Any, digits: int = 3) -> str:
    """A table cell: floats to ``digits`` decimals, missing values (NaN, None, NA) empty.

    >>> [cell(v) for v in (0.12345, float("nan"), None, pd.NA, 7, "x")]
    ['0.123', '', '', '', '7', 'x']
    """
    if value is None or value is pd.NA:
        return ""
    if isinstance(value, float | np.floating):
        return "" if np.isnan(value) else f"{value:.{digits}f}"
    return str(value)


def markdown_table(frame: pd.DataFrame, *, digits: int = 3) -> str:
    """``frame`` as a GitHub Markdown table (index dropped; reset it first to keep it).

    >>> print(markdown_table(pd.DataFrame({"method": ["lr"], "acc": [0.5]})))
    | method | acc |
    |---|---|
    | lr | 0.500 |
    """
    head = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    body = ["| " + " | ".join(cell(v, digits) for v in row) + " |"
            for row in frame.itertuples(index=False)]
    return "\n".join([head, rule, *body])
