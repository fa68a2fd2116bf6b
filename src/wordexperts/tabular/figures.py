"""Figures of a tabular explanation (:mod:`wordexperts.tabular.explain`): one row's column
contributions, the global importance, the gate shift between two groups of rows.

:func:`row_contributions` gives the table a row's figure draws; :func:`plot_row`,
:func:`plot_importance` and :func:`plot_gate_shift` save PNG, SVG or PDF (by the file
suffix). The command ``wordexperts explain-table`` that writes them for a saved model, and its
interactive page, live in the harness (:mod:`wordexperts.harness.explain_table`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from wordexperts.tabular.explain import BIAS, centred

__all__ = ["FORMATS", "plot_gate_shift", "plot_importance", "plot_row", "row_contributions"]

FORMATS = ("png", "svg", "pdf")  # figure formats, by the file suffix


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> Path:
    if path.suffix.lstrip(".").lower() not in FORMATS:
        raise ValueError(f"path must end with one of {', '.join('.' + f for f in FORMATS)}, "
                         f"got {path.name!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    _pyplot().close(fig)
    return path


def row_contributions(frame: pd.DataFrame, row: Any, *, klass: Any = None) -> pd.DataFrame:
    """One row of :func:`~wordexperts.tabular.explain.explain_predictions` (summed over heads)
    for one class (default: the predicted one): per column the gate, the contribution and
    the centred contribution (minus its mean over the classes), largest centred first."""
    if "head" in frame.columns:
        raise ValueError("give the frame summed over heads (explain_predictions(by_head=False))")
    one = frame[frame["row"] == row]
    if one.empty:
        raise ValueError(f"row {row!r} is not in the frame")
    table = one.pivot_table(index="column", columns="class", values="contribution",
                            sort=False)
    logits = table.sum()
    klass = logits.idxmax() if klass is None else klass
    klass = klass.item() if isinstance(klass, np.generic) else klass
    if klass not in table.columns:
        raise ValueError(f"class {klass!r} is not one of {list(table.columns)}")
    centre = pd.DataFrame(centred(table.to_numpy()), index=table.index, columns=table.columns)
    gates = one.drop_duplicates("column").set_index("column")["gate"]
    out = pd.DataFrame({"gate": gates, "contribution": table[klass],
                        "centred": centre[klass]})
    out.attrs.update({"row": row, "class": klass})
    return out.sort_values("centred", ascending=False, key=np.abs, kind="stable")


def plot_row(frame: pd.DataFrame, row: Any, path: str | Path, *, klass: Any = None) -> Path:
    """Bar chart of one row's centred contributions to a class (default: the predicted one),
    with each column's gate in its label."""
    data = row_contributions(frame, row, klass=klass).drop(index=BIAS)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 0.35 * len(data) + 1.6), dpi=100, layout="constrained")
    labels = [f"{c}  (gate {g:.2f})" for c, g in zip(data.index, data["gate"], strict=True)]
    colors = ["tab:blue" if v >= 0 else "tab:red" for v in data["centred"]]
    ax.barh(range(len(data)), data["centred"], color=colors)
    ax.set_yticks(range(len(data)), labels, fontsize=8)
    ax.invert_yaxis()
    ax.axvline(0, color="black", linewidth=0.6)
    ax.set_xlabel(f"contribution to the logit of class {data.attrs['class']}, "
                  "minus its mean over the classes", fontsize=8)
    ax.set_title(f"row {row}: which columns (experts) push the prediction", fontsize=10)
    return _save(fig, Path(path))


def plot_importance(importance: pd.Series, path: str | Path) -> Path:
    """Bar chart of :func:`~wordexperts.tabular.explain.global_importance`."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 0.35 * len(importance) + 1.4), dpi=100,
                           layout="constrained")
    ax.barh(range(len(importance)), importance.to_numpy(), color="tab:blue")
    ax.set_yticks(range(len(importance)), [str(c) for c in importance.index], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("mean |centred logit contribution|", fontsize=8)
    ax.set_title("global importance of each column (expert)", fontsize=10)
    return _save(fig, Path(path))


def plot_gate_shift(shift: pd.DataFrame, path: str | Path) -> Path:
    """Grouped bars of :func:`~wordexperts.tabular.explain.gate_shift` (summed over heads):
    each column's mean gate in both groups."""
    if isinstance(shift.index, pd.MultiIndex):
        raise ValueError("give the gate shift averaged over heads (by_head=False)")
    groups = [c for c in shift.columns if c.startswith("gate_")]
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(4.0, 0.8 * len(shift) + 1.5), 3.6), dpi=100,
                           layout="constrained")
    x = np.arange(len(shift))
    for n, group in enumerate(groups):
        ax.bar(x + (n - 0.5) * 0.4, shift[group], width=0.4, label=group[len("gate_"):])
    ax.set_xticks(x, [str(c) for c in shift.index], rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("mean gate at the target", fontsize=8)
    ax.set_title("how the mixture shifts between the groups", fontsize=10)
    ax.legend(fontsize=8)
    return _save(fig, Path(path))
