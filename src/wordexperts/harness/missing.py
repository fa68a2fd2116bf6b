"""``wordexperts reproduce missing``: the real-shift tables with missing cells.

Each configuration is ``TABLE/SCENARIO``: a table of ``reproduce real-shift`` (the same fit
rows, in-distribution slice and shifted test group per seed) with cells made missing by a
scenario (:data:`SCENARIOS`):

- ``complete``: none (the real-shift table as it is: what a default that reads missing cells
  differently costs on complete tables);
- ``own``: the table's own missing cells, in the rows the real-shift loaders drop (chile
  and credit have some; the other tables have none and are not run);
- ``mcar_eval_10``, ``mcar_eval_30``, ``mcar_eval_50``: each feature cell of the evaluation
  rows (ID slice and test group) missing at random with that probability; training complete;
- ``mcar_30``: the same at 30% in the training rows too;
- ``mar_30``: missing at random given an observed column: the first feature column stays
  complete and each other cell is missing with a probability that grows with that column's
  rank in the row (30% on average), in training and evaluation;
- ``mnar_30``: missing not at random: each cell missing with a probability that grows with
  its own value's rank in its column (30% on average), in training and evaluation;
- ``absent_column``: the feature column with the largest permutation importance for
  logistic regression on the training group is missing in every row of the test group.

Methods (:func:`build_methods`): our estimator (``ours``: its defaults; ``ours_mask``: a
missing cell read as the mask word, no context corruption; ``ours_absent``: as an absent
expert, no corruption; ``--variant NAME:key=value,...`` for others); logistic regression
after a constant/median ``SimpleImputer`` with missing indicators (``lr``), after
``IterativeImputer`` (``lr_iterative``) and after a MissForest-style ``IterativeImputer``
of extra trees (``lr_missforest``); CatBoost, LightGBM and scikit-learn's
``HistGradientBoostingClassifier`` with their native missing values.
"""

from __future__ import annotations

import argparse
import functools
import sys
import warnings
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from wordexperts.datasets.real_shift import TARGET
from wordexperts.harness import real_shift
from wordexperts.harness.markdown import markdown_table
from wordexperts.harness.methods import Method
from wordexperts.harness.real_shift import (
    DEVELOPMENT,
    SPLIT,
    Fitted,
    _features,
    _library_settings,
    _scored,
    _xy,
    add_grid_arguments,
    check_grid_arguments,
    ours_method,
    parse_variant,
    summarize,
)
from wordexperts.harness.report import format_interval, interval
from wordexperts.harness.store import run_grid

SCENARIOS: dict[str, str] = {
    "complete": "no missing cells",
    "own": "the table's own missing cells",
    "mcar_eval_10": "MCAR 10%, evaluation rows only",
    "mcar_eval_30": "MCAR 30%, evaluation rows only",
    "mcar_eval_50": "MCAR 50%, evaluation rows only",
    "mcar_30": "MCAR 30%, training and evaluation",
    "mar_30": "MAR 30% (given the first column), training and evaluation",
    "mnar_30": "MNAR 30% (given the value), training and evaluation",
    "absent_column": "the most informative column absent in the test group",
}
#: Tables with missing cells of their own (``own`` runs only on them).
OWN_MISSING = ("chile", "credit")
OURS = {"ours": {}, "ours_mask": {"missing": "mask", "context_corruption": 0.0},
        "ours_absent": {"missing": "absent", "context_corruption": 0.0}}
PEERS = ("lr", "lr_iterative", "lr_missforest", "catboost", "lightgbm", "hgb")
DEFAULT_METHODS = (*OURS, *PEERS)


# ---------------------------------------------------------------------------------------
# Data

def configs_for(tables: list[str], scenarios: list[str]) -> list[str]:
    """``TABLE/SCENARIO`` for every pair (``own`` only for :data:`OWN_MISSING`).

    >>> configs_for(["chile", "oj"], ["own", "mcar_30"])
    ['chile/own', 'chile/mcar_30', 'oj/mcar_30']
    """
    return [f"{t}/{s}" for t in tables for s in scenarios if s != "own" or t in OWN_MISSING]


def load(config: str, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(fit, evaluation)`` of ``TABLE/SCENARIO`` for ``seed`` (the real-shift split, then
    the scenario's missing cells, drawn from ``seed`` and the configuration's name)."""
    table, scenario = config.split("/")
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}; choose from {list(SCENARIOS)}")
    fit, evaluation = real_shift.load(table, seed, keep_missing=scenario == "own")
    rng = np.random.default_rng([seed, zlib.crc32(config.encode())])
    features = [c for c in fit.columns if c not in (TARGET, SPLIT)]
    if scenario.startswith("mcar_eval_"):
        rate = int(scenario.rsplit("_", 1)[1]) / 100
        evaluation = _blank(evaluation, features, rng.random((len(evaluation),
                                                              len(features))) < rate)
    elif scenario in ("mcar_30", "mar_30", "mnar_30"):
        fit = _blank(fit, features, _pattern(fit, features, scenario, rng))
        evaluation = _blank(evaluation, features, _pattern(evaluation, features, scenario, rng))
    elif scenario == "absent_column":
        column = informative_column(table)
        ood = (evaluation[SPLIT] == "ood").to_numpy()
        holes = np.zeros((len(evaluation), len(features)), dtype=bool)
        holes[ood, features.index(column)] = True
        evaluation = _blank(evaluation, features, holes)
    return fit, evaluation


def _pattern(frame: pd.DataFrame, features: list[str], scenario: str,
             rng: np.random.Generator) -> np.ndarray:
    """Which cells (rows, features) go missing, 30% on average."""
    n, rate = len(frame), 0.3
    if scenario == "mcar_30":
        return rng.random((n, len(features))) < rate
    if scenario == "mar_30":     # given the first column's rank, which stays observed
        p = 2 * rate * _rank(frame[features[0]], rng)[:, None]
        holes = rng.random((n, len(features))) < p
        holes[:, 0] = False
        return holes
    # mnar: given each cell's own rank in its column
    p = 2 * rate * np.stack([_rank(frame[c], rng) for c in features], 1)
    return rng.random((n, len(features))) < p


def _rank(values: pd.Series, rng: np.random.Generator) -> np.ndarray:
    """Ranks in (0, 1]; categories by their sorted order, ties broken at random."""
    codes = (pd.Series(pd.factorize(values, sort=True)[0]) if values.dtype == object
             else values.astype(float))
    order = np.lexsort((rng.random(len(values)), codes.to_numpy()))
    ranks = np.empty(len(values))
    ranks[order] = np.arange(1, len(values) + 1)
    return ranks / len(values)


def _blank(frame: pd.DataFrame, features: list[str], holes: np.ndarray) -> pd.DataFrame:
    frame = frame.copy()
    for j, column in enumerate(features):
        if holes[:, j].any():
            missing = None if frame[column].dtype == object else np.nan
            frame.loc[holes[:, j], column] = missing
    return frame


@functools.cache
def informative_column(table: str) -> str:
    """The feature with the largest permutation importance (mean over 5 shuffles, log loss)
    for ``lr`` fitted on the table's whole training group."""
    from sklearn.inspection import permutation_importance

    train, _ = real_shift._table(table)
    X, y = _xy(train)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")          # scikit-learn's deprecation notes
        _, predict_proba = real_shift.fit_lr(train, 0)
        result = permutation_importance(predict_proba.__self__, X, y, scoring="neg_log_loss",
                                        n_repeats=5, random_state=0)
    return str(X.columns[int(np.argmax(result.importances_mean))])


# ---------------------------------------------------------------------------------------
# Peers with missing cells

def _lr(train: pd.DataFrame, seed: int, *, imputer: str) -> Fitted:
    """LR-CV (as ``reproduce real-shift``'s) after an imputer: ``"simple"`` (categoricals
    to a constant category, numerics to the median with a missing indicator), ``"iterative"``
    (``IterativeImputer`` over ordinal codes and numbers) or ``"missforest"`` (the same with
    extra trees). Iterative imputations of a categorical are rounded to the nearest code."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    X, y = _xy(train)
    categorical, numeric = _features(train)
    model = LogisticRegressionCV(Cs=10, cv=5, scoring="neg_log_loss", max_iter=5000)
    if imputer == "simple":
        encoder = ColumnTransformer([
            ("categorical", make_pipeline(
                SimpleImputer(strategy="constant", fill_value="(missing)"),
                OneHotEncoder(handle_unknown="ignore")), categorical),
            ("numeric", make_pipeline(SimpleImputer(strategy="median", add_indicator=True),
                                      StandardScaler()), numeric)])
        pipeline = make_pipeline(encoder, model).fit(X, y)
        return pipeline.classes_, pipeline.predict_proba
    imputed = _IterativeCodes(categorical, numeric, seed=seed,
                              forest=imputer == "missforest").fit(X)
    encoder = ColumnTransformer([("categorical", OneHotEncoder(handle_unknown="ignore"),
                                  categorical), ("numeric", StandardScaler(), numeric)])
    pipeline = make_pipeline(encoder, model).fit(imputed.transform(X), y)
    return pipeline.classes_, lambda X_: pipeline.predict_proba(imputed.transform(X_))


class _IterativeCodes:
    """``IterativeImputer`` over a frame: categoricals as ordinal codes (unseen: missing),
    imputed codes rounded and clipped, then decoded back to categories."""

    def __init__(self, categorical: list[str], numeric: list[str], *, seed: int,
                 forest: bool) -> None:
        self.categorical, self.numeric, self.seed, self.forest = categorical, numeric, seed, forest

    def _codes(self, X: pd.DataFrame) -> np.ndarray:
        parts = [pd.Categorical(X[c], categories=self.categories[c]).codes.astype(float)
                 for c in self.categorical]
        codes = np.stack(parts, 1) if parts else np.empty((len(X), 0))
        codes[codes < 0] = np.nan
        return np.hstack([codes, X[self.numeric].to_numpy(float)])

    def fit(self, X: pd.DataFrame) -> _IterativeCodes:
        from sklearn.ensemble import ExtraTreesRegressor
        from sklearn.experimental import enable_iterative_imputer  # noqa: F401
        from sklearn.impute import IterativeImputer

        self.categories = {c: sorted(X[c].dropna().unique()) for c in self.categorical}
        estimator = (ExtraTreesRegressor(n_estimators=50, random_state=self.seed, n_jobs=1)
                     if self.forest else None)
        self.imputer = IterativeImputer(estimator=estimator, max_iter=5 if self.forest else 10,
                                        random_state=self.seed,
                                        keep_empty_features=True).fit(self._codes(X))
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        filled = self.imputer.transform(self._codes(X))
        out = {}
        for j, c in enumerate(self.categorical):
            index = np.clip(np.rint(filled[:, j]), 0, len(self.categories[c]) - 1).astype(int)
            out[c] = np.asarray(self.categories[c], dtype=object)[index]
        for j, c in enumerate(self.numeric, start=len(self.categorical)):
            out[c] = filled[:, j]
        return pd.DataFrame(out, index=X.index)[[*self.categorical, *self.numeric]]


def fit_catboost(train: pd.DataFrame, seed: int) -> Fitted:
    """CatBoost defaults: numeric NaN native; a missing category is its own category."""
    from catboost import CatBoostClassifier

    X, y = _xy(train)
    categorical, _ = _features(train)

    def prepared(X_: pd.DataFrame) -> pd.DataFrame:
        return X_.assign(**{c: X_[c].fillna("(missing)") for c in categorical})

    model = CatBoostClassifier(random_seed=seed, thread_count=1, verbose=False,
                               allow_writing_files=False,
                               cat_features=categorical).fit(prepared(X), y)
    return model.classes_, lambda X_: model.predict_proba(prepared(X_))


def fit_hgb(train: pd.DataFrame, seed: int) -> Fitted:
    """``HistGradientBoostingClassifier`` defaults, categoricals native (pandas category
    with the training categories), missing values native."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    X, y = _xy(train)
    categorical, _ = _features(train)
    types = {c: pd.CategoricalDtype(sorted(X[c].dropna().unique())) for c in categorical}
    model = HistGradientBoostingClassifier(categorical_features="from_dtype",
                                           random_state=seed).fit(X.astype(types), y)
    return model.classes_, lambda X_: model.predict_proba(X_.astype(types))


PEER_FITS = {"lr": functools.partial(_lr, imputer="simple"),
             "lr_iterative": functools.partial(_lr, imputer="iterative"),
             "lr_missforest": functools.partial(_lr, imputer="missforest"),
             "catboost": fit_catboost, "lightgbm": real_shift.fit_lightgbm, "hgb": fit_hgb}


def build_methods(names: list[str], variants: dict[str, tuple[dict[str, Any], int]]
                  ) -> list[Method]:
    """The methods ``names`` (of :data:`DEFAULT_METHODS` or ``variants``), in order."""
    out = []
    for name in dict.fromkeys(names):
        if name in OURS:
            out.append(ours_method(name, OURS[name]))
        elif name in variants:
            out.append(ours_method(name, *variants[name]))
        elif name in PEER_FITS:
            fit = PEER_FITS[name]
            doc = (fit.func if isinstance(fit, functools.partial) else fit).__doc__
            library = name if name in ("catboost", "lightgbm") else "lr"   # else sklearn
            out.append(Method(name, _scored(fit), _library_settings(library, {"fit": doc})))
        else:
            raise ValueError(f"unknown method {name!r}; choose from "
                             f"{[*DEFAULT_METHODS, *variants]}")
    return out


# ---------------------------------------------------------------------------------------
# Report

def compare(runs: pd.DataFrame, ours: str) -> pd.DataFrame:
    """Per configuration: ``ours`` minus the best other method (the highest mean OOD
    accuracy among the non-ours methods), paired by seed: OOD accuracy, ID accuracy and OOD
    log loss (mean, 95% interval); and whether ours has the lowest mean OOD log loss."""
    rows = []
    others = [m for m in runs["method"].unique() if m not in OURS and not m.startswith("ours")]
    for config, group in runs.groupby("config", sort=False):
        present = [m for m in others if m in set(group["method"])]
        if ours not in set(group["method"]) or not present:
            continue
        means = group.groupby("method")[["acc_ood", "logloss_ood"]].mean()
        best = means.loc[present, "acc_ood"].idxmax()
        mine = group[group["method"] == ours].set_index("seed")
        base = group[group["method"] == best].set_index("seed")
        seeds = mine.index.intersection(base.index)
        table, scenario = config.split("/")
        row: dict[str, Any] = {"table": table, "scenario": scenario, "method": ours,
                               "best other": best, "n": len(seeds)}
        for metric in ("acc_ood", "acc_id", "logloss_ood"):
            mean, _, low, high = interval((mine.loc[seeds, metric]
                                           - base.loc[seeds, metric]).to_numpy())
            row |= {f"{metric}_diff": mean, f"{metric}_low": low, f"{metric}_high": high}
        row["best logloss"] = bool(means.loc[ours, "logloss_ood"]
                                   <= means.loc[present, "logloss_ood"].min())
        rows.append(row)
    return pd.DataFrame(rows)


def target_lines(comparison: pd.DataFrame) -> list[str]:
    """Issue 17's targets, each with its count (met or not)."""
    lines = []
    by = {s: g for s, g in comparison.groupby("scenario")}

    def count(scenario: str, condition: str, test: Any, goal: int) -> None:
        if scenario not in by:
            lines.append(f"- {SCENARIOS[scenario]}: {condition}: not run")
            return
        g = by[scenario]
        hits = int(test(g).sum())
        verdict = "met" if hits >= min(goal, len(g)) and len(g) >= goal else "missed"
        lines.append(f"- {SCENARIOS[scenario]}: {condition}: {hits} of {len(g)} tables "
                     f"(target {goal} of 10: {verdict})")

    count("mcar_eval_30", "OOD accuracy ahead of every other method",
          lambda g: g["acc_ood_diff"] > 0, 7)
    count("mcar_eval_30", "never more than 0.01 behind", lambda g: g["acc_ood_diff"] >= -0.01,
          10)
    count("mcar_eval_30", "best OOD log loss", lambda g: g["best logloss"], 7)
    count("absent_column", "OOD accuracy ahead of every other method",
          lambda g: g["acc_ood_diff"] > 0, 7)
    count("mcar_30", "OOD accuracy >= best other - 0.005",
          lambda g: g["acc_ood_diff"] >= -0.005, 7)
    return lines


def plot(comparison: pd.DataFrame, path: Path, *, scenarios: list[str]) -> None:
    """Ours (each of our methods in ``comparison``) minus the best other method in OOD
    accuracy, per table, one panel a scenario."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scenarios = [s for s in scenarios if s in set(comparison["scenario"])]
    fig, axes = plt.subplots(len(scenarios), 1, figsize=(9, 1.9 * len(scenarios) + 0.8),
                             sharex=True, squeeze=False)
    tables = list(dict.fromkeys(comparison["table"]))
    methods = list(dict.fromkeys(comparison["method"]))
    for ax, scenario in zip(axes[:, 0], scenarios, strict=True):
        for k, method in enumerate(methods):
            rows = comparison[(comparison["scenario"] == scenario)
                              & (comparison["method"] == method)].set_index("table")
            rows = rows.reindex(tables)
            mean = rows["acc_ood_diff"].to_numpy()
            err = np.vstack([mean - rows["acc_ood_low"], rows["acc_ood_high"] - mean])
            x = np.arange(len(tables)) + (k - (len(methods) - 1) / 2) * 0.2
            ax.errorbar(x, mean, yerr=np.nan_to_num(err), fmt="o", ms=4, capsize=2,
                        label=method)
        ax.axhline(0, color="black", linewidth=0.6)
        ax.set_ylabel("ours - best", fontsize=7)
        ax.set_title(SCENARIOS[scenario], fontsize=8)
        ax.grid(alpha=0.3)
    axes[-1, 0].set_xticks(np.arange(len(tables)),
                           [t + ("" if t in DEVELOPMENT else "*") for t in tables], rotation=30,
                           ha="right")
    axes[0, 0].legend(fontsize=7)
    fig.suptitle("OOD accuracy: ours minus the best other method, paired by seed, 95% "
                 "interval (* held out)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(records: list[dict[str, Any]], out: Path, *, configs: list[str],
                 methods: list[str], seeds: list[int], command: str) -> Path:
    """``report.md``, ``runs.csv``, ``summary.csv`` and ``plot.png`` in ``out``."""
    if not records:
        raise ValueError("no finished runs to report")
    runs = pd.DataFrame(records).drop_duplicates(["method", "config", "seed"])
    runs = runs[runs["config"].isin(configs) & runs["method"].isin(methods)]
    runs.to_csv(out / "runs.csv", index=False)
    summary = summarize(runs)
    summary.to_csv(out / "summary.csv", index=False)
    scenarios = list(dict.fromkeys(c.split("/")[1] for c in configs))
    lines = ["# Real shifted tables with missing cells", "", f"Command: `{command}`", "",
             f"Seeds ({len(seeds)}): {', '.join(map(str, seeds))}. The real-shift splits "
             "(fit rows, ID slice, shifted test group); cells: mean over seeds [95% "
             "t-interval]. Scenarios:", ""]
    lines += [f"- `{s}`: {SCENARIOS[s]}" for s in scenarios]
    for scenario in scenarios:
        part = summary[summary["config"].str.endswith("/" + scenario)].copy()
        if part.empty:
            continue
        part["table"] = part["config"].str.split("/").str[0]
        lines += ["", f"## {SCENARIOS[scenario]}", ""]
        for metric, label in (("acc_ood", "OOD accuracy"), ("logloss_ood", "OOD log loss"),
                              ("acc_id", "ID accuracy")):
            wide = part.pivot(index="table", columns="method", values=f"{metric}_mean")
            wide = wide.reindex(columns=[m for m in methods if m in wide.columns])
            lines += [f"{label}:", "", markdown_table(wide.round(3).reset_index()), ""]
    comparison = pd.concat([compare(runs, m) for m in methods if m.startswith("ours")],
                           ignore_index=True)
    if not comparison.empty:
        lines += ["## Ours against the best other method (paired by seed)", "",
                  "Difference = ours - the other method with the highest mean OOD accuracy "
                  "on that table and scenario; mean [95% t-interval].", ""]
        lines.append(markdown_table(pd.DataFrame({
            "scenario": comparison["scenario"], "table": comparison["table"],
            "method": comparison["method"], "best other": comparison["best other"],
            "n": comparison["n"],
            **{label: [format_interval(getattr(r, f"{m}_diff"), getattr(r, f"{m}_low"),
                                      getattr(r, f"{m}_high")) for r in comparison.itertuples()]
               for m, label in (("acc_ood", "OOD acc diff"), ("acc_id", "ID acc diff"),
                                ("logloss_ood", "OOD log loss diff"))},
            "lowest OOD log loss": comparison["best logloss"].map({True: "yes", False: "no"}),
        })))
        for method in dict.fromkeys(comparison["method"]):
            part = comparison[comparison["method"] == method]
            lines += ["", f"## Targets: `{method}`", "", *target_lines(part)]
        plot(comparison, out / "plot.png", scenarios=scenarios)
        lines += ["", "![ours minus the best other method](plot.png)"]
    lines += ["", "Every run: `runs.csv`; summary: `summary.csv`.", ""]
    report = out / "report.md"
    report.write_text("\n".join(lines))
    return report


# ---------------------------------------------------------------------------------------
# Command

def configure(parser: argparse.ArgumentParser) -> None:
    add_grid_arguments(parser, methods=DEFAULT_METHODS, default_out="runs/missing")
    parser.add_argument("--scenarios", nargs="+", default=list(SCENARIOS), metavar="NAME",
                        help=f"scenarios (default: all: {' '.join(SCENARIOS)})")


def run(args: argparse.Namespace) -> int:
    check_grid_arguments(args)
    bad = [s for s in args.scenarios if s not in SCENARIOS]
    if bad:
        raise ValueError(f"unknown scenario(s) {bad}; choose from {list(SCENARIOS)}")
    variants = {name: (params, average)
                for name, params, average in map(parse_variant, args.variant)}
    names = args.methods or [*DEFAULT_METHODS, *variants]
    methods = build_methods(names, variants)
    configs = configs_for(args.tables, args.scenarios)
    seeds = list(range(args.seeds))
    outcome = run_grid(methods, configs, seeds, load, out=args.out, scheduler=args.scheduler,
                       workers=args.workers, progress=args.progress,
                       submit=not args.report_only)
    if not outcome.records:
        print("no finished runs", file=sys.stderr)
        return 1
    command = (f"wordexperts reproduce missing --seeds {args.seeds} --tables "
               f"{' '.join(args.tables)} --scenarios {' '.join(args.scenarios)} --methods "
               f"{' '.join(names)}" + "".join(f" --variant {v}" for v in args.variant))
    report = write_report(outcome.records, args.out, configs=configs,
                          methods=[m.name for m in methods], seeds=seeds, command=command)
    print(report.read_text())
    return 1 if outcome.failed else 0
