"""Baseline tuning cost: plain GridSearchCV against wordexperts' fast search, side by side.

Both search the paper's grids with 5-fold stratified CV on one thread; the script checks that
they select the same candidate and predict the same test labels, and prints seconds per
tuned run and the speed-up as a Markdown table.

    .venv/bin/python benchmarks/bench_baselines.py [--cases sim auto-mpg] [--methods rf gb]
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
from threadpoolctl import threadpool_limits

from wordexperts.datasets import load_auto_mpg, make_shift_simulation
from wordexperts.harness.baselines import BASELINES, grid_search, one_hot

CASES = {
    "sim 5_0.9_0 (2000 rows)": lambda: make_shift_simulation(n_causal=5, corr=0.9, seed=4951),
    "auto-mpg (245 rows)": load_auto_mpg,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", choices=["sim", "auto-mpg"],
                        default=["sim", "auto-mpg"])
    parser.add_argument("--methods", nargs="+", choices=BASELINES, default=list(BASELINES))
    args = parser.parse_args()
    print("| data | method | GridSearchCV s | fast s | speed-up | same model |")
    print("|---|---|---|---|---|---|")
    for label, load in CASES.items():
        if not any(label.startswith(c) for c in args.cases):
            continue
        train, test = load()
        A_train, A_test = one_hot(train.drop(columns="y"), test.drop(columns="y"))
        y = train["y"].to_numpy()
        for name in args.methods:
            seconds, results = {}, {}
            for fast in (False, True):
                start = time.perf_counter()
                results[fast] = grid_search(name, A_train, y, random_state=0, fast=fast)
                seconds[fast] = time.perf_counter() - start
            same = (results[True].best_params_ == results[False].best_params_
                    and np.array_equal(results[True].best_estimator_.predict(A_test),
                                       results[False].best_estimator_.predict(A_test)))
            print(f"| {label} | {name} | {seconds[False]:.1f} | {seconds[True]:.1f} | "
                  f"{seconds[False] / seconds[True]:.2f}x | {'yes' if same else 'NO'} |",
                  flush=True)


if __name__ == "__main__":
    with threadpool_limits(1), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        main()
