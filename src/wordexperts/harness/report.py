"""Summaries of a reproduction grid: intervals, paired comparison, Markdown, CSV and a plot.

Per method and configuration: mean, standard deviation and a 95% Student-t interval of
the test metric over seeds, beside the paper's published figure. Per configuration: the
attention model against the best other method (highest mean test accuracy), paired by seed:
mean difference with its 95% interval, a paired t-test and a sign test.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from wordexperts.harness.methods import ATTENTION

METRICS = {"acc_test": "test accuracy", "mse_test": "test MSE (class index)"}


def interval(values: np.ndarray, level: float = 0.95) -> tuple[float, float, float, float]:
    """``(mean, std, low, high)``: sample mean, standard deviation (ddof 1) and the Student-t
    interval at ``level``; the interval is NaN with fewer than 2 values.

    >>> [round(v, 4) for v in interval(np.array([1.0, 2.0, 3.0]))]
    [2.0, 1.0, -0.4841, 4.4841]
    """
    values = np.asarray(values, dtype=np.float64)
    mean = float(values.mean())
    if len(values) < 2:
        return mean, float("nan"), float("nan"), float("nan")
    std = float(values.std(ddof=1))
    half = float(stats.t.ppf(0.5 + level / 2, len(values) - 1) * std / np.sqrt(len(values)))
    return mean, std, mean - half, mean + half


def summarize(runs: pd.DataFrame, paper: Mapping[str, Mapping[str, Mapping[str, float]]]
              ) -> pd.DataFrame:
    """One row per (config, method): seeds, mean/std/interval of each metric, the paper's
    figure (``paper[metric][config][method]``, NaN when unpublished) and seconds per run."""
    rows = []
    for (config, method), group in runs.groupby(["config", "method"], sort=False):
        row: dict[str, Any] = {"config": config, "method": method, "n": len(group)}
        for metric in METRICS:
            mean, std, low, high = interval(group[metric].to_numpy())
            published = paper.get(metric, {}).get(config, {}).get(_paper_name(method), np.nan)
            row |= {f"{metric}_mean": mean, f"{metric}_std": std, f"{metric}_low": low,
                    f"{metric}_high": high, f"{metric}_paper": published}
        row["seconds"] = float(group["seconds"].mean())
        rows.append(row)
    return pd.DataFrame(rows)


def _paper_name(method: str) -> str:
    return "attention" if method in ATTENTION else method


def paired(runs: pd.DataFrame) -> pd.DataFrame:
    """Each attention method against the best other method of each config, paired by seed
    on test accuracy: n, mean difference and 95% interval, wins/ties/losses, paired t-test and
    two-sided sign-test p-values. Empty when no attention or no other method ran."""
    rows = []
    for config, group in runs.groupby("config", sort=False):
        others = group[~group["method"].isin(ATTENTION)]
        if others.empty:
            continue
        best = others.groupby("method")["acc_test"].mean().idxmax()
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


def _fmt(value: float, digits: int = 3) -> str:
    return "" if value is None or np.isnan(value) else f"{value:.{digits}f}"


def _markdown(frame: pd.DataFrame) -> str:
    head = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    body = ["| " + " | ".join(map(str, row)) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([head, rule, *body])


def _wide(summary: pd.DataFrame, metric: str, methods: list[str]) -> pd.DataFrame:
    """Config rows, method columns: 'ours [interval] (paper)'."""
    cells = summary.assign(cell=[
        f"{_fmt(r[f'{metric}_mean'])} [{_fmt(r[f'{metric}_low'])}, {_fmt(r[f'{metric}_high'])}]"
        + (f" ({_fmt(r[f'{metric}_paper'])})" if not np.isnan(r[f"{metric}_paper"]) else "")
        for _, r in summary.iterrows()
    ])
    wide = cells.pivot(index="config", columns="method", values="cell")
    wide = wide.reindex(index=list(dict.fromkeys(summary["config"])),
                        columns=[m for m in methods if m in set(summary["method"])])
    return wide.fillna("").reset_index()


def plot(summary: pd.DataFrame, path: Path, *, title: str, methods: list[str]) -> None:
    """Mean test accuracy and MSE with 95% intervals (dots) and the paper's figures
    (crosses): per config, methods side by side; with one config, methods along the axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    configs = list(dict.fromkeys(summary["config"]))
    methods = [m for m in methods if m in set(summary["method"])]
    single = len(configs) == 1
    ticks = methods if single else configs
    width = 0.0 if single else 0.8 / len(methods)
    fig, axes = plt.subplots(1, 2, figsize=(max(8.0, 0.9 * len(ticks) + 5), 4.5))
    for ax, (metric, label) in zip(axes, METRICS.items(), strict=True):
        for j, method in enumerate(methods):
            rows = summary[summary["method"] == method].set_index("config").reindex(configs)
            x = np.array([j]) if single else (
                np.arange(len(configs)) + (j - (len(methods) - 1) / 2) * width)
            mean = rows[f"{metric}_mean"].to_numpy()
            err = np.vstack([mean - rows[f"{metric}_low"], rows[f"{metric}_high"] - mean])
            line = ax.errorbar(x, mean, yerr=np.nan_to_num(err), fmt="o", ms=4, capsize=2,
                               label=method)
            ax.plot(x, rows[f"{metric}_paper"], "x", color=line[0].get_color(), ms=7)
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
    paper: Mapping[str, Mapping[str, Mapping[str, float]]],
    command: str,
    configs: list[str],
    methods: list[str],
    seeds: list[int],
    notes: Sequence[str] = (),
) -> Path:
    """Write ``report.md``, ``runs.csv`` (every run), ``summary.csv`` and ``plot.png`` into
    ``out`` (rows in the order of ``configs``, ``methods`` and ``seeds``); returns the
    report's path."""
    if not records:
        raise ValueError("no finished runs to report")
    runs = pd.DataFrame(records).drop_duplicates(["method", "config", "seed"])
    order = {"config": configs, "method": methods, "seed": seeds}
    runs = runs.sort_values(list(order), key=lambda col: col.map(order[col.name].index))
    runs.to_csv(out / "runs.csv", index=False)
    summary = summarize(runs, paper)
    summary.to_csv(out / "summary.csv", index=False)
    comparison = paired(runs)
    plot(summary, out / "plot.png", title=title, methods=methods)

    lines = [f"# {title}", "", f"Command: `{command}`", "",
             f"Seeds ({len(seeds)}): {', '.join(map(str, seeds))}. Cells: mean over seeds "
             "[95% t-interval] (paper's published mean in parentheses, where published).", ""]
    lines += [f"- {note}" for note in notes]
    for metric, label in METRICS.items():
        lines += ["", f"## {label[0].upper() + label[1:]}", "",
                  _markdown(_wide(summary, metric, methods))]

    detail = pd.DataFrame({
        "config": summary["config"], "method": summary["method"], "n": summary["n"],
        "acc mean": summary["acc_test_mean"].map(_fmt),
        "acc std": summary["acc_test_std"].map(_fmt),
        "acc paper": summary["acc_test_paper"].map(_fmt),
        "ours - paper": (summary["acc_test_mean"] - summary["acc_test_paper"]).map(_fmt),
        "mse mean": summary["mse_test_mean"].map(_fmt),
        "mse paper": summary["mse_test_paper"].map(_fmt),
        "s/run": summary["seconds"].map(lambda s: f"{s:.1f}"),
    })
    lines += ["", "## Every method and configuration", "", _markdown(detail)]

    lines += ["", "## Attention against the best other method (paired by seed)", ""]
    if comparison.empty:
        lines.append("No attention method (or no other method) in these runs.")
    else:
        table = comparison.assign(
            **{"mean diff [95% CI]": [
                f"{_fmt(r.diff_mean)} [{_fmt(r.diff_low)}, {_fmt(r.diff_high)}]"
                for r in comparison.itertuples()]},
            **{"W/T/L": [f"{r.wins}/{r.ties}/{r.losses}" for r in comparison.itertuples()]},
            t_test_p=comparison["t_test_p"].map(lambda p: _fmt(p, 4)),
            sign_test_p=comparison["sign_test_p"].map(lambda p: _fmt(p, 4)),
        )[["config", "method", "best_other", "n", "mean diff [95% CI]", "W/T/L",
           "t_test_p", "sign_test_p"]]
        lines += ["Difference = attention - best other method in test accuracy; W/T/L counts "
                  "seeds where attention wins, ties, loses.", "", _markdown(table)]

    cost = runs.groupby("method", sort=False)["seconds"].agg(["count", "mean", "sum"])
    lines += ["", "## Cost per run (seconds of one fit and its tuning, one thread)", "",
              _markdown(pd.DataFrame({
                  "method": cost.index, "runs": cost["count"],
                  "mean s/run": cost["mean"].map(lambda s: f"{s:.1f}"),
                  "total s": cost["sum"].map(lambda s: f"{s:.0f}")}))]
    lines += ["", "Every run: `runs.csv`; summary: `summary.csv`; plot: `plot.png`.", ""]
    report = out / "report.md"
    report.write_text("\n".join(lines))
    return report
