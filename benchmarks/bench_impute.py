"""Imputation quality: ``WordExpertsClassifier.impute`` against the usual imputers.

On each real-shift table's training group (the rows ``reproduce real-shift`` fits on, at
most 2,000, complete), each feature cell is made missing completely at random at 10, 30 and
50% (seeds 0-2), and filled by:

- ``ours``: ``WordExpertsClassifier`` (defaults) fitted on the table with its holes and the
  target, then ``impute`` with the target column as context;
- ``simple``: the most frequent category, the median number;
- ``iterative``: scikit-learn's ``IterativeImputer`` (categoricals as ordinal codes, rounded);
- ``missforest``: the same with extra trees (a MissForest-style imputer).

Every imputer sees the same columns (the features and the complete target). Scores: the
accuracy on the missing categorical cells and the RMSE on the missing numeric cells divided
by the column's standard deviation (NRMSE), averaged over the columns. HyperImpute is not
compared: it installs TensorFlow and CUDA wheels, which the project's environment keeps out.
Each finished (table, rate, seed, imputer) is appended to
``benchmarks/results/impute.jsonl`` at once (with its environment) and skipped on a rerun;
the tables go to ``benchmarks/results/impute.md``.

    .venv/bin/python benchmarks/bench_impute.py [--tables chile oj] [--report]
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from wordexperts.core.threads import single_thread
from wordexperts.harness import real_shift
from wordexperts.harness.markdown import markdown_table
from wordexperts.harness.missing import _IterativeCodes
from wordexperts.harness.provenance import code_version
from wordexperts.harness.store import ResultStore, settings_key
from wordexperts.tabular import WordExpertsClassifier

RESULTS = Path(__file__).parent / "results" / "impute.jsonl"
REPORT = RESULTS.with_suffix(".md")
RATES = (0.1, 0.3, 0.5)
IMPUTERS = ("ours", "simple", "iterative", "missforest")


def blanked(frame: pd.DataFrame, rate: float, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    features = [c for c in frame.columns if c != "y"]
    holes = np.random.default_rng(seed).random((len(frame), len(features))) < rate
    out = frame.copy()
    for j, c in enumerate(features):
        out.loc[holes[:, j], c] = None if out[c].dtype == object else np.nan
    return out, holes


def impute(name: str, frame: pd.DataFrame, seed: int) -> pd.DataFrame:
    categorical = [c for c in frame.columns if frame[c].dtype == object]
    numeric = [c for c in frame.columns if c not in categorical]
    if name == "ours":
        X, y = frame.drop(columns="y"), frame["y"]
        clf = WordExpertsClassifier(random_state=seed).fit(X, y)
        return clf.impute(frame)
    if name == "simple":
        return frame.fillna({**{c: frame[c].mode().iloc[0] for c in categorical},
                             **{c: frame[c].median() for c in numeric}})
    codes = _IterativeCodes(categorical, numeric, seed=seed, forest=name == "missforest")
    return codes.fit(frame).transform(frame)[frame.columns]


def scores(truth: pd.DataFrame, filled: pd.DataFrame, holes: np.ndarray) -> dict[str, float]:
    features = [c for c in truth.columns if c != "y"]
    accuracy, nrmse = [], []
    for j, c in enumerate(features):
        rows = holes[:, j]
        if not rows.any():
            continue
        if truth[c].dtype == object:
            accuracy.append(float((filled.loc[rows, c] == truth.loc[rows, c]).mean()))
        else:
            error = filled.loc[rows, c].astype(float) - truth.loc[rows, c].astype(float)
            nrmse.append(float(np.sqrt((error ** 2).mean()) / truth[c].std()))
    return {"cat_accuracy": float(np.mean(accuracy)) if accuracy else float("nan"),
            "num_nrmse": float(np.mean(nrmse)) if nrmse else float("nan")}


def report(store: ResultStore, tables: list[str]) -> str:
    runs = pd.DataFrame(store.records())
    runs = runs[runs["table"].isin(tables) & runs["key"].eq(run_key())]
    lines = []
    for metric, label, higher in (
            ("cat_accuracy", "categorical cell accuracy (higher is better)", True),
            ("num_nrmse", "numeric NRMSE (lower is better)", False)):
        wide = runs.groupby(["table", "rate", "imputer"])[metric].mean().unstack("imputer")
        wide = wide.reindex(columns=list(IMPUTERS)).dropna(how="all")
        lines += [f"### {label}, mean over seeds", "", markdown_table(
            wide.round(3).reset_index()), ""]
        for rate, part in wide.groupby(level="rate"):
            best = part.idxmax(axis=1) if higher else part.idxmin(axis=1)
            lines.append(f"- {rate:.0%} missing: ours best on {(best == 'ours').sum()} of "
                         f"{len(best)} tables")
        lines.append("")
    return "\n".join(lines)


def run_key() -> str:
    params = WordExpertsClassifier().effective_params()
    params.pop("random_state")
    return settings_key({"ours": params, "code": code_version(), "imputers": IMPUTERS})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", nargs="+", default=list(real_shift.TABLES))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--report", action="store_true", help="print the table and exit")
    args = parser.parse_args()
    store = ResultStore(RESULTS, key=("table", "rate", "seed", "imputer", "key"))
    key = run_key()
    if not args.report:
        with single_thread(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for table in args.tables:
                truth, _ = real_shift._table(table)
                for rate in RATES:
                    for seed in range(args.seeds):
                        frame, holes = blanked(truth, rate, seed)
                        for name in IMPUTERS:
                            if store.done((table, rate, seed, name, key)):
                                continue
                            filled = impute(name, frame, seed)
                            store.append({"table": table, "rate": rate, "seed": seed,
                                          "imputer": name, "key": key,
                                          **scores(truth, filled, holes)})
                        print(table, rate, seed, flush=True)
    text = report(store, args.tables)
    REPORT.write_text("# Imputation quality (`benchmarks/bench_impute.py`)\n\n" + text + "\n")
    print(text)


if __name__ == "__main__":
    main()
