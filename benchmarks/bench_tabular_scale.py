"""WordExpertsClassifier at scale: fit CPU time and peak memory beside CatBoost and LightGBM.

Synthetic categorical tables (issue 8): rows 2k/20k/200k/1M, columns 6/20/50/100,
categories per column 10/100/1,000/10,000, varying one at a time from 20k x 20 x 10, and
1M x 20 x 100 (the memory target's largest case). Every
column is a pandas categorical with labels ``0..K-1`` drawn uniformly; the binary target is
``sum_j effect_j[x_j] + noise > 0`` over the first 5 columns (random effects). Each method
fits with its defaults on one thread — ours (``WordExpertsClassifier()``), CatBoost
(``thread_count=1``, the columns as ``cat_features``), LightGBM (``num_threads=1``, native
categoricals) — each fit in a fresh subprocess, so the peak resident memory is that fit's
process (imports and data included; ``base_rss_mb`` is the process before the fit). The
fit's CPU time is ``time.process_time()`` around ``fit``. A fit over ``--cap`` CPU seconds
is stopped (``RLIMIT_CPU``) and recorded as ``> cap``. Accuracy on 5,000 fresh rows of the
same distribution is recorded as a sanity check.

Each finished fit is appended to ``benchmarks/results/tabular_scale.jsonl`` at once (with
the date, the load average and, for ours, the estimator's effective settings) and skipped on
a rerun with the same settings (a changed default refits ours); ``--report`` prints the
table of the current settings.

    nohup .venv/bin/python benchmarks/bench_tabular_scale.py > scale.log 2>&1 &
    .venv/bin/python benchmarks/bench_tabular_scale.py --report
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

RESULTS = Path(__file__).parent / "results" / "tabular_scale.jsonl"
BASE = (20_000, 20, 10)
#: rows x columns x categories, varied one at a time from BASE, plus 1M x 20 x 100 (the
#: largest case the memory target names); run in this order (the cases the targets name
#: first, the two beyond every target last)
CASES = [BASE, (2_000, 20, 10), (200_000, 20, 10), (1_000_000, 20, 10), (20_000, 20, 100),
         (20_000, 6, 10), (20_000, 50, 10), (20_000, 20, 1_000), (1_000_000, 20, 100),
         (20_000, 100, 10), (20_000, 20, 10_000)]
METHODS = ("ours", "lightgbm", "catboost")
TEST_ROWS = 5_000


def make_table(n: int, d: int, k: int, *, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """``n`` rows of ``d`` categorical columns with ``k`` categories; rows ``n`` onwards of the
    same stream are the test rows."""
    rng = np.random.default_rng(seed)
    dtype = np.int16 if k <= 32_767 else np.int32
    codes = rng.integers(0, k, size=(n + TEST_ROWS, d), dtype=dtype)
    effects = rng.normal(size=(min(d, 5), k))
    score = sum(effects[j][codes[:, j]] for j in range(min(d, 5)))
    y = (score + rng.normal(scale=1.0, size=len(codes)) > 0).astype(np.int8)
    categories = pd.RangeIndex(k)
    frame = pd.DataFrame({f"c{j}": pd.Categorical.from_codes(codes[:, j], categories=categories)
                          for j in range(d)})
    return frame, y


def fit_one(method: str, n: int, d: int, k: int) -> dict:
    """One fit in this process (the child): its CPU time, accuracy and peak memory."""
    frame, y = make_table(n, d, k)
    X, y_train = frame.iloc[:n], y[:n]
    X_test, y_test = frame.iloc[n:], y[n:]
    extra: dict = {}
    if method == "ours":
        from wordexperts.tabular import WordExpertsClassifier

        model = WordExpertsClassifier(random_state=0)
    elif method == "catboost":
        from catboost import CatBoostClassifier

        model = CatBoostClassifier(thread_count=1, verbose=0, random_seed=0,
                                   cat_features=list(X.columns), allow_writing_files=False)
    elif method == "lightgbm":
        from lightgbm import LGBMClassifier

        model = LGBMClassifier(num_threads=1, verbose=-1, random_state=0)
    else:
        raise ValueError(f"unknown method {method!r}")
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    cpu, wall = time.process_time(), time.perf_counter()
    model.fit(X, y_train)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    accuracy = float((np.asarray(model.predict(X_test)).ravel().astype(int) == y_test).mean())
    if method == "ours":
        history = model.history_
        extra = {"steps": history.step[-1], "epochs": round(history.epoch[-1], 2),
                 "stopped_early": history.stopped_early, "n_restarts": model.n_restarts_,
                 "vocabulary": model.vocabulary_, "objective": model.objective_,
                 "objective_losses": model.objective_losses_}
    return {"cpu_s": cpu, "wall_s": wall, "peak_rss_mb": peak, "base_rss_mb": base,
            "accuracy": accuracy, **extra}


def settings(method: str) -> dict | None:
    """What a row of ``method`` was fitted with, part of its key: ours' effective params."""
    if method != "ours":
        return None
    from wordexperts.harness.provenance import code_version
    from wordexperts.tabular import WordExpertsClassifier

    return {**WordExpertsClassifier(random_state=0).effective_params(), "code": code_version()}


def key(method: str, n: int, d: int, k: int, fitted_with: dict | None) -> tuple:
    return method, n, d, k, json.dumps(fitted_with, sort_keys=True)


def run_case(method: str, case: tuple[int, int, int], cap: float) -> dict:
    """``fit_one`` in a fresh subprocess with a CPU-time cap."""
    n, d, k = case
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
           "MKL_NUM_THREADS": "1"}
    row = {"method": method, "rows": n, "columns": d, "categories": k,
           "date": datetime.now(UTC).isoformat(timespec="seconds"),
           "load_average": round(os.getloadavg()[0], 2), "cap_s": cap,
           "settings": settings(method)}
    command = [sys.executable, __file__, "--child", method, str(n), str(d), str(k),
               "--cap", str(cap)]
    start = time.perf_counter()
    try:
        done = subprocess.run(command, capture_output=True, text=True, env=env,
                              timeout=4 * cap + 120)
    except subprocess.TimeoutExpired:
        return {**row, "status": "cap", "note": f"wall time over {4 * cap + 120:.0f} s"}
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        status = "cap" if done.returncode in (-24, -9, 152) else "error"  # SIGXCPU / SIGKILL
        return {**row, "status": status, "returncode": done.returncode,
                "child_cpu_s_total": usage.ru_utime + usage.ru_stime,
                "wall_s": time.perf_counter() - start, "stderr": done.stderr[-500:]}
    return {**row, "status": "ok", **json.loads(done.stdout.strip().splitlines()[-1])}


def load_done() -> dict:
    done = {}
    if RESULTS.exists():
        for line in RESULTS.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:   # a half-written last line: measure it again
                continue
            done[key(row["method"], row["rows"], row["columns"], row["categories"],
                     row.get("settings"))] = row
    return done


def report() -> None:
    done = load_done()
    current = {m: settings(m) for m in METHODS}
    print("| rows x columns x categories | ours CPU | ours peak | ours steps (epochs), objective "
          "kept | CatBoost CPU | CatBoost peak | LightGBM CPU | LightGBM peak | accuracy ours / "
          "CatBoost / LightGBM |")
    print("|---|---|---|---|---|---|---|---|---|")

    def cpu(row):
        if row is None:
            return "not run"
        if row["status"] == "cap":
            return f"> {row['cap_s']:.0f} s (cap)"
        if row["status"] != "ok":
            return "error"
        return f"{row['cpu_s']:.1f} s"

    def peak(row):
        return f"{row['peak_rss_mb']:.0f} MB" if row and row["status"] == "ok" else ""

    def acc(row):
        return f"{row['accuracy']:.3f}" if row and row["status"] == "ok" else "-"

    for n, d, k in sorted(CASES, key=lambda c: (c[1:] != (20, 10), c[2] != 10, c)):
        ours, cat, lgb = (done.get(key(m, n, d, k, current[m]))
                          for m in ("ours", "catboost", "lightgbm"))
        steps = (f"{ours['steps']} ({ours['epochs']:g})" + (" early" if ours["stopped_early"]
                                                           else "")
                 + (f", {ours['objective']}" if ours.get("objective_losses") else "")
                 if ours and ours["status"] == "ok" else "")
        print(f"| {n:,} x {d} x {k:,} | {cpu(ours)} | {peak(ours)} | {steps} | {cpu(cat)} | "
              f"{peak(cat)} | {cpu(lgb)} | {peak(lgb)} | {acc(ours)} / {acc(cat)} / "
              f"{acc(lgb)} |")
    rows = [r for r in done.values()
            if json.dumps(r.get("settings"), sort_keys=True)
            == json.dumps(current[r["method"]], sort_keys=True)]
    if rows:
        dates = sorted(r["date"] for r in rows)
        loads = [r["load_average"] for r in rows]
        print(f"\n{len(rows)} fits, {dates[0]} to {dates[-1]}; load average at the start of "
              f"each fit {min(loads):.1f}-{max(loads):.1f}")


def main() -> None:
    from wordexperts.harness.provenance import environment

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cap", type=float, default=600.0, help="CPU seconds per fit")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--report", action="store_true", help="print the table and exit")
    parser.add_argument("--child", nargs=4, metavar=("METHOD", "ROWS", "COLUMNS", "CATEGORIES"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        method, n, d, k = args.child[0], *(int(v) for v in args.child[1:])
        resource.setrlimit(resource.RLIMIT_CPU, (int(args.cap), int(args.cap) + 5))
        print(json.dumps(fit_one(method, n, d, k)), flush=True)
        return
    if args.report:
        report()
        return
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    done = load_done()
    current = {m: settings(m) for m in METHODS}
    for case in CASES:
        for method in args.methods.split(","):
            if key(method, *case, current[method]) in done:
                continue
            row = {**run_case(method, case, args.cap), "environment": environment()}
            with RESULTS.open("a") as f:
                f.write(json.dumps(row) + "\n")
            shown = row.get("cpu_s", row["status"])
            print(f"{method:9s} {case}: {shown} CPU s, peak {row.get('peak_rss_mb', '-')} MB",
                  flush=True)


if __name__ == "__main__":
    main()
