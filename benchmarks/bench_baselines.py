"""Baseline tuning cost: plain GridSearchCV against wordexperts' fast search, side by side.

Both search the paper's grids with 5-fold stratified CV on one thread; the script checks that
they select the same candidate and predict the same test labels, and prints seconds per
tuned run and the speed-up as a Markdown table. ``--peers`` instead times one fit of each
PyTorch Tabular peer on auto-mpg with the authors' settings (seed 0, one thread).

    .venv/bin/python benchmarks/bench_baselines.py [--cases sim auto-mpg] [--methods rf gb]
    .venv/bin/python benchmarks/bench_baselines.py --peers [category_embedding ...]
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np

from wordexperts.core.threads import single_thread
from wordexperts.datasets import load_auto_mpg, make_shift_simulation
from wordexperts.harness.baselines import BASELINES, PEERS, fit_predict_peer, grid_search, one_hot

CASES = {
    "sim 5_0.9_0 (2000 rows)": lambda: make_shift_simulation(n_causal=5, corr=0.9, seed=4951),
    "auto-mpg (245 rows)": load_auto_mpg,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", choices=["sim", "auto-mpg"],
                        default=["sim", "auto-mpg"])
    parser.add_argument("--methods", nargs="+", choices=BASELINES, default=list(BASELINES))
    parser.add_argument("--peers", nargs="*", choices=PEERS, default=None,
                        help="time the PyTorch Tabular peers instead (default: all five)")
    args = parser.parse_args()
    if args.peers is not None:
        time_peers(args.peers or list(PEERS))
        return
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


def time_peers(names: list[str]) -> None:
    """Seconds of one fit (and prediction) of each peer on auto-mpg, and its test accuracy."""
    import logging

    logging.disable(logging.WARNING)  # PyTorch Lightning's banners
    train, test = load_auto_mpg()
    print("| peer (auto-mpg, authors' settings, seed 0) | fit s | test accuracy |")
    print("|---|---|---|")
    for name in names:
        start = time.perf_counter()
        _, predicted = fit_predict_peer(name, train, test, seed=0)
        seconds = time.perf_counter() - start
        accuracy = float(np.mean(predicted == test["y"].to_numpy()))
        print(f"| {name} | {seconds:.1f} | {accuracy:.3f} |", flush=True)


if __name__ == "__main__":
    with single_thread(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        main()
