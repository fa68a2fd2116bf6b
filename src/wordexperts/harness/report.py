"""Summaries of a reproduction grid: intervals, paired comparisons, Markdown, CSV and a plot.

Per method and configuration: mean, standard deviation and a 95% Student-t interval of the
test metric over seeds (clipped to the metric's range), beside the paper's figures on the
*same* seeds (the authors publish per-seed results) and the paired difference from them, seed
by seed. Per configuration: the attention model against the best other method (highest mean
test accuracy), paired by seed: mean difference with its 95% interval, a paired t-test and a
sign test. Tables are written by :func:`wordexperts.harness.markdown.markdown_table`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from wordexperts.harness.markdown import cell, markdown_table
from wordexperts.harness.methods import ATTENTION

# metric -> (label, range of its values: intervals are clipped to it)
METRICS: dict[str, tuple[str, tuple[float, float]]] = {
    "acc_test": ("test accuracy", (0.0, 1.0)),
    "mse_test": ("test MSE (class index)", (0.0, np.inf)),
}
PAPER_COLUMNS = ("config", "method", "seed", *METRICS)


def interval(
    values: np.ndarray, level: float = 0.95, *, bounds: tuple[float, float] = (-np.inf, np.inf)
) -> tuple[float, float, float, float]:
    """``(mean, std, low, high)``: sample mean, standard deviation (ddof 1) and the Student-t
    interval at ``level``, clipped to ``bounds`` (the range the metric can take); the interval
    is NaN with fewer than 2 values.

    >>> [round(v, 4) for v in interval(np.array([1.0, 2.0, 3.0]))]
    [2.0, 1.0, -0.4841, 4.4841]
    >>> [round(v, 4) for v in interval(np.array([0.0, 0.1, 0.5]), bounds=(0.0, 1.0))]
    [0.2, 0.2646, 0.0, 0.8572]
    """
    values = np.asarray(values, dtype=np.float64)
    mean = float(values.mean())
    if len(values) < 2:
        return mean, float("nan"), float("nan"), float("nan")
    std = float(values.std(ddof=1))
    half = float(stats.t.ppf(0.5 + level / 2, len(values) - 1) * std / np.sqrt(len(values)))
    low, high = bounds
    return mean, std, float(np.clip(mean - half, low, high)), float(np.clip(mean + half, low, high))


def paper_name(method: str) -> str:
    """The paper's name of ``method``: the attention variants are all its attention model."""
    return "attention" if method in ATTENTION else method


def summarize(runs: pd.DataFrame, paper: pd.DataFrame) -> pd.DataFrame:
    """One row per (config, method) of ``runs``: seeds ``n``, mean/std/interval of each
    metric, and the paper's figures from ``paper`` (one row per published run, columns
    :data:`PAPER_COLUMNS`): ``{metric}_paper``, its mean over the seeds both ran (NaN when it
    ran none of them), ``paper_n`` those seeds, ``{metric}_paper_all`` its mean over all its
    runs (``paper_runs``), and ``{metric}_diff_*``, ours minus the paper's paired by seed
    (mean and 95% interval); plus seconds per run."""
    rows = []
    for (config, method), group in runs.groupby(["config", "method"], sort=False):
        theirs = paper[(paper["config"] == config) & (paper["method"] == paper_name(method))]
        theirs = theirs.drop_duplicates("seed").set_index("seed")
        ours = group.set_index("seed")
        common = [s for s in ours.index if s in theirs.index]
        row: dict[str, Any] = {"config": config, "method": method, "n": len(group),
                               "paper_n": len(common), "paper_runs": len(theirs)}
        for metric, (_, bounds) in METRICS.items():
            mean, std, low, high = interval(group[metric].to_numpy(), bounds=bounds)
            diff = (ours.loc[common, metric] - theirs.loc[common, metric]).to_numpy()
            d_mean, _, d_low, d_high = interval(diff) if len(diff) else (np.nan,) * 4
            row |= {f"{metric}_mean": mean, f"{metric}_std": std, f"{metric}_low": low,
                    f"{metric}_high": high,
                    f"{metric}_paper": float(theirs.loc[common, metric].mean())
                    if common else np.nan,
                    f"{metric}_paper_all": float(theirs[metric].mean()) if len(theirs)
                    else np.nan,
                    f"{metric}_diff_mean": d_mean, f"{metric}_diff_low": d_low,
                    f"{metric}_diff_high": d_high}
        row["seconds"] = float(group["seconds"].mean())
        rows.append(row)
    return pd.DataFrame(rows)


def paired(runs: pd.DataFrame) -> pd.DataFrame:
    """Each attention method against the best other method of each config, paired by seed
    on test accuracy: n, mean difference and 95% interval, wins/ties/losses, paired t-test and
    two-sided sign-test p-values. The best other method has the highest mean over the seeds
    every method of the config ran (all its seeds if there are none). Empty when no attention
    or no other method ran."""
    rows = []
    for config, group in runs.groupby("config", sort=False):
        others = group[~group["method"].isin(ATTENTION)]
        if others.empty:
            continue
        counts = group.groupby("seed")["method"].nunique()
        shared = counts.index[counts == group["method"].nunique()]
        ranked = others[others["seed"].isin(shared)] if len(shared) else others
        best = ranked.groupby("method")["acc_test"].mean().idxmax()
        base = others[others["method"] == best].set_index("seed")["acc_test"]
        for method in [m for m in ATTENTION if m in set(group["method"])]:
            ours = group[group["method"] == method].set_index("seed")["acc_test"]
            seeds = ours.index.intersection(base.index)
            diff = (ours[seeds] - base[seeds]).to_numpy()
            mean, _, low, high = interval(diff)
            wins, losses = int((diff > 0).sum()), int((diff < 0).sum())
            t_p = float(stats.ttest_rel(ours[seeds], base[seeds]).pvalue) if len(diff) > 1 \
                else float("nan")
            sign_p = float(stats.binomtest(wins, wins + losses).pvalue) if wins + losses \
                else 1.0
            rows.append({"config": config, "method": method, "best_other": best,
                         "n": len(diff), "diff_mean": mean, "diff_low": low, "diff_high": high,
                         "wins": wins, "ties": len(diff) - wins - losses, "losses": losses,
                         "t_test_p": t_p, "sign_test_p": sign_p})
    return pd.DataFrame(rows)


def format_interval(mean: float, low: float, high: float, *, sign: bool = False) -> str:
    """A mean and its interval as one table cell: ``"0.812 [0.790, 0.834]"`` (``sign``:
    ``"+0.012 [-0.004, +0.028]"``); the mean alone without an interval, empty without a mean.

    >>> format_interval(0.8123, 0.79, 0.834), format_interval(0.5, float("nan"), float("nan"))
    ('0.812 [0.790, 0.834]', '0.500')
    """
    if np.isnan(mean):
        return ""
    text = f"{mean:+.3f}" if sign else cell(mean)
    if np.isnan(low):
        return text
    return f"{text} [{low:+.3f}, {high:+.3f}]" if sign else f"{text} [{cell(low)}, {cell(high)}]"


def _paper_cell(row: pd.Series, metric: str) -> str:
    """The paper's figure beside ours: on the same seeds, else (†) on its own seeds."""
    if not np.isnan(row[f"{metric}_paper"]):
        return f" ({cell(row[f'{metric}_paper'])})"
    if not np.isnan(row[f"{metric}_paper_all"]):
        return f" ({cell(row[f'{metric}_paper_all'])}†)"
    return ""


def _wide(summary: pd.DataFrame, metric: str, methods: list[str]) -> pd.DataFrame:
    """Config rows, method columns: 'ours [interval] (paper)'."""
    cells = summary.assign(cell=[
        format_interval(r[f"{metric}_mean"], r[f"{metric}_low"], r[f"{metric}_high"])
        + _paper_cell(r, metric)
        for _, r in summary.iterrows()
    ])
    wide = cells.pivot(index="config", columns="method", values="cell")
    wide = wide.reindex(index=list(dict.fromkeys(summary["config"])),
                        columns=[m for m in methods if m in set(summary["method"])])
    return wide.fillna("").reset_index()


def plot(summary: pd.DataFrame, path: Path, *, title: str, methods: list[str]) -> None:
    """Mean test accuracy and MSE with 95% intervals (dots) and the paper's figures on the
    same seeds, or on its own where it ran none of ours (crosses): per config, methods side by
    side; with one config, methods along the axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    configs = list(dict.fromkeys(summary["config"]))
    methods = [m for m in methods if m in set(summary["method"])]
    single = len(configs) == 1
    ticks = methods if single else configs
    width = 0.0 if single else 0.8 / len(methods)
    fig, axes = plt.subplots(1, 2, figsize=(max(8.0, 0.9 * len(ticks) + 5), 4.5))
    for ax, (metric, (label, _)) in zip(axes, METRICS.items(), strict=True):
        for j, method in enumerate(methods):
            rows = summary[summary["method"] == method].set_index("config").reindex(configs)
            x = np.array([j]) if single else (
                np.arange(len(configs)) + (j - (len(methods) - 1) / 2) * width)
            mean = rows[f"{metric}_mean"].to_numpy()
            err = np.vstack([mean - rows[f"{metric}_low"], rows[f"{metric}_high"] - mean])
            line = ax.errorbar(x, mean, yerr=np.nan_to_num(err), fmt="o", ms=4, capsize=2,
                               label=method)
            theirs = rows[f"{metric}_paper"].fillna(rows[f"{metric}_paper_all"])
            ax.plot(x, theirs, "x", color=line[0].get_color(), ms=7)
        ax.set_xticks(np.arange(len(ticks)), ticks, rotation=45 if len(ticks) > 3 else 0,
                      ha="right" if len(ticks) > 3 else "center")
        ax.set_xlim(-0.6, len(ticks) - 0.4)
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    if single:
        axes[0].set_title("dots: ours (95% CI), x: paper", fontsize=9)
    else:
        axes[0].legend(fontsize=8, title="dots: ours (95% CI), x: paper", title_fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_report(
    records: list[dict[str, Any]],
    out: Path,
    *,
    title: str,
    paper: pd.DataFrame,
    command: str,
    configs: list[str],
    methods: list[str],
    seeds: list[int],
    notes: Sequence[str] = (),
) -> Path:
    """Write ``report.md``, ``runs.csv`` (every run), ``summary.csv`` (see :func:`summarize`)
    and ``plot.png`` into ``out`` (rows in the order of ``configs``, ``methods`` and
    ``seeds``); ``paper`` holds the paper's published runs (columns :data:`PAPER_COLUMNS`).
    Returns the report's path."""
    if not records:
        raise ValueError("no finished runs to report")
    missing = [c for c in PAPER_COLUMNS if c not in paper.columns]
    if missing:
        raise ValueError(f"paper figures lack the column(s) {missing}")
    runs = pd.DataFrame(records).drop_duplicates(["method", "config", "seed"])
    order = {"config": configs, "method": methods, "seed": seeds}
    runs = runs.sort_values(list(order), key=lambda col: col.map(order[col.name].index))
    out.mkdir(parents=True, exist_ok=True)
    runs.to_csv(out / "runs.csv", index=False)
    summary = summarize(runs, paper)
    summary.to_csv(out / "summary.csv", index=False)
    comparison = paired(runs)
    plot(summary, out / "plot.png", title=title, methods=methods)

    lines = [f"# {title}", "", f"Command: `{command}`", "",
             f"Seeds ({len(seeds)}): {', '.join(map(str, seeds))}. Cells: mean over seeds "
             "[95% t-interval, clipped to the metric's range] (in parentheses the paper's mean "
             "over the same seeds, from its per-seed results; † where the paper ran none of "
             "these seeds: its mean over its own runs).", ""]
    lines += [f"- {note}" for note in notes]
    for metric, (label, _) in METRICS.items():
        lines += ["", f"## {label[0].upper() + label[1:]}", "",
                  markdown_table(_wide(summary, metric, methods))]

    detail = pd.DataFrame({
        "config": summary["config"], "method": summary["method"], "n": summary["n"],
        "acc mean": summary["acc_test_mean"], "acc std": summary["acc_test_std"],
        "paper seeds": summary["paper_n"],
        "acc paper (same seeds)": summary["acc_test_paper"],
        "ours - paper, paired [95% CI]": [
            format_interval(r.acc_test_diff_mean, r.acc_test_diff_low, r.acc_test_diff_high,
                            sign=True)
            for r in summary.itertuples()],
        "acc paper (all its runs)": [
            f"{cell(r.acc_test_paper_all)} ({r.paper_runs})" if r.paper_runs else ""
            for r in summary.itertuples()],
        "mse mean": summary["mse_test_mean"],
        "mse paper (same seeds)": summary["mse_test_paper"],
        "s/run": summary["seconds"].map(lambda s: f"{s:.1f}"),
    })
    lines += ["", "## Every method and configuration, beside the paper on the same seeds", "",
              "`paper seeds`: how many of our seeds the paper ran; the paired difference is "
              "ours minus the paper's test accuracy, seed by seed, over those seeds; the "
              "paper's mean over all its runs (how many in parentheses) is what it "
              "published.", "", markdown_table(detail)]

    lines += ["", "## Attention against the best other method (paired by seed)", ""]
    if comparison.empty:
        lines.append("No attention method (or no other method) in these runs.")
    else:
        table = pd.DataFrame({
            "config": comparison["config"], "method": comparison["method"],
            "best_other": comparison["best_other"], "n": comparison["n"],
            "mean diff [95% CI]": [format_interval(r.diff_mean, r.diff_low, r.diff_high, sign=True)
                                   for r in comparison.itertuples()],
            "W/T/L": [f"{r.wins}/{r.ties}/{r.losses}" for r in comparison.itertuples()],
            "t_test_p": comparison["t_test_p"].map(lambda p: cell(p, 4)),
            "sign_test_p": comparison["sign_test_p"].map(lambda p: cell(p, 4)),
        })
        lines += ["Difference = attention - best other method in test accuracy; W/T/L counts "
                  "seeds where attention wins, ties, loses.", "", markdown_table(table)]

    cost = runs.groupby("method", sort=False)["seconds"].agg(["count", "mean", "sum"])
    lines += ["", "## Cost per run (seconds of one fit and its tuning, one thread)", "",
              markdown_table(pd.DataFrame({
                  "method": cost.index, "runs": cost["count"],
                  "mean s/run": cost["mean"].map(lambda s: f"{s:.1f}"),
                  "total s": cost["sum"].map(lambda s: f"{s:.0f}")}))]
    lines += ["", "Every run: `runs.csv`; summary: `summary.csv`; plot: `plot.png`.", ""]
    report = out / "report.md"
    report.write_text("\n".join(lines))
    return report
