"""WordExpertsClassifier: one fit at the paper's size, and test accuracy over the paper's seeds.

Timing (always): the paper's simulated table (config 5_0.9_0, seed 4951: 2000 rows, 5
features + target, 10 categories), one thread. Side by side in one run:
  - the estimator with its defaults (``preset="fast"``), median of ``--repeats`` fits;
  - ``preset="paper"``: the paper's recipe (L masked copies, batch 128, Adam 1e-3, 200 epochs,
    dropout 0.1) in the same NumPy trainer;
  - the paper's way in PyTorch: the core model and ``fit_mlm(method="copies")``, batch
    128, lr 1e-3, ``--copies-epochs`` epochs (200 = one whole fit; fewer are scaled to 200 and
    reported as an extrapolation).

Accuracy (``--accuracy``): test accuracy on config 5_0.9_0 over the paper's 20 seeds, the
default estimator against ``preset="paper"`` paired by seed (plus ``--variants``: the
default with one setting changed), beside the paper's 0.392. ``--seeds 20:40`` takes other
seeds of the paper's seed stream (``paper_seeds(40)[20:40]``), ``--config`` another
configuration. Each finished fit is appended to ``benchmarks/results/tabular_accuracy.jsonl``
(keyed by config, effective settings and seed) and skipped on a rerun.

    .venv/bin/python benchmarks/bench_tabular_fit.py [--repeats 5] [--copies-epochs 200]
    .venv/bin/python benchmarks/bench_tabular_fit.py --accuracy [--variants] [--no-timing]
    .venv/bin/python benchmarks/bench_tabular_fit.py --accuracy --seeds 40:60 --no-timing
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from scipy import stats

from wordexperts import AttentionConfig, BidirectionalAttention, fit_mlm
from wordexperts.core.threads import single_thread
from wordexperts.datasets import make_shift_simulation, paper_seeds
from wordexperts.harness.provenance import code_version
from wordexperts.harness.store import ResultStore, settings_key
from wordexperts.tabular import WordExpertsClassifier

RESULTS = Path(__file__).parent / "results" / "tabular_accuracy.jsonl"
# the paper's Table 4 mean, attention model, over its 20 seeds (for comparison)
PAPER_MEAN = {("5_0.9_0", 0, 20): 0.392}
# one setting changed from the defaults: the evidence for each default
VARIANTS = {
    "default": {},
    "paper": {"preset": "paper"},
    "dropout 0.1": {"dropout": 0.1},
    "constant lr": {"lr_schedule": "constant"},
    "epochs 240": {"epochs": 240},
    "per-column vocabulary": {"vocabulary": "per_column"},
    "target only": {"objective": "target"},
    "absent, corruption 0.3": {"missing": "absent", "context_corruption": 0.3},
}


def table(seed: int, config: str = "5_0.9_0"):
    n_causal, corr, x_noise = config.split("_")
    train, test = make_shift_simulation(n_causal=int(n_causal), corr=float(corr),
                                        x_noise=float(x_noise), seed=seed)
    return (train.drop(columns="y"), train["y"].to_numpy(), test.drop(columns="y"),
            test["y"].to_numpy())


def timed(fn) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def fit_estimator(X, y, random_state: int = 0, **params) -> WordExpertsClassifier:
    return WordExpertsClassifier(random_state=random_state, **params).fit(X, y)


def fit_torch_copies(X, y, epochs: int) -> None:
    ids = np.column_stack([X.to_numpy(), y]).astype(np.int64)
    torch.manual_seed(0)
    model = BidirectionalAttention(AttentionConfig(vocab_size=10, seq_len=6, block="bert",
                                                   dropout=0.1))
    fit_mlm(model, ids, method="copies", epochs=epochs, batch_size=128, lr=1e-3,
            progress=False)


def timing(repeats: int, copies_epochs: int) -> None:
    X, y, _, _ = table(paper_seeds()[0])
    print(f"## One fit: {X.shape[0]} rows, {X.shape[1] + 1} columns, 10 categories, 1 thread")
    fit_estimator(X[:200], y[:200], epochs=1)                         # warm-up
    # one initialization per repeat: a fit that restarts (n_restarts_) costs twice
    fits: list[WordExpertsClassifier] = []
    default = [timed(lambda i=i: fits.append(fit_estimator(X, y, random_state=i)))
               for i in range(repeats)]
    paper = [timed(lambda: fit_estimator(X, y, preset="paper"))
             for _ in range(max(1, repeats // 3))]
    copies_wall, copies_cpu = timed(lambda: fit_torch_copies(X, y, copies_epochs))
    scale = 200 / copies_epochs
    rows = [
        ("WordExpertsClassifier() (default)", default),
        ('WordExpertsClassifier(preset="paper")', paper),
        ("paper's way in PyTorch: fit_mlm copies, 200 epochs"
         + (f" (extrapolated from {copies_epochs})" if scale != 1 else ""),
         [(copies_wall * scale, copies_cpu * scale)]),
    ]
    base = statistics.median(w for w, _ in default)
    print("| fit | wall (median) | CPU | fits | vs default |")
    print("|---|---|---|---|---|")
    for name, runs in rows:
        wall = statistics.median(w for w, _ in runs)
        cpu = statistics.median(c for _, c in runs)
        print(f"| {name} | {wall:.2f} s | {cpu:.2f} s | {len(runs)} | {wall / base:.1f}x |")
    print(f"default fits (random_state 0..{repeats - 1}), wall: "
          f"{', '.join(f'{w:.2f}' for w, _ in default)} s; restarts: "
          f"{[clf.n_restarts_ for clf in fits]}")


def variant_key(params: dict) -> str:
    """The settings key of a variant: its effective settings (what a result was fitted with)."""
    settings = WordExpertsClassifier(**params).effective_params()
    for name in ("random_state", "verbose"):
        settings.pop(name)
    return settings_key({**settings, "code": code_version()})


def accuracy(names: list[str], config: str, start: int, stop: int) -> None:
    store = ResultStore(RESULTS, key=("config", "settings_key", "seed"))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    seeds = paper_seeds(stop)[start:stop]
    keys = {name: variant_key(VARIANTS[name]) for name in names}
    for seed in seeds:
        X, y, X_test, y_test = table(seed, config)
        for name in names:
            if store.done((config, keys[name], seed)):
                continue
            clf = WordExpertsClassifier(random_state=seed, **VARIANTS[name])
            wall, cpu = timed(lambda clf=clf, X=X, y=y: clf.fit(X, y))
            row = {"config": config, "variant": name, "settings_key": keys[name], "seed": seed,
                   "test_accuracy": float(clf.score(X_test, y_test)),
                   "train_accuracy": float(clf.score(X, y)), "fit_wall_s": wall, "fit_cpu_s": cpu}
            store.append(row)
            print(f"seed {seed} {name:22s} test {row['test_accuracy']:.4f} ({wall:.1f} s)",
                  flush=True)
    done = {store.key_of(r): r for r in store.records()}
    which = f"seeds {start}:{stop} of the paper's seed stream"
    key = (config, start, stop)
    paper = f" (paper: {PAPER_MEAN[key]})" if key in PAPER_MEAN else ""
    print(f"\n## Test accuracy, config {config}, {which}{paper}")
    print("| variant | mean | std | 95% CI | vs default (paired) | worst seed | fit CPU |")
    print("|---|---|---|---|---|---|---|")
    base = np.array([done[(config, keys["default"], s)]["test_accuracy"] for s in seeds])
    for name in names:
        acc = np.array([done[(config, keys[name], s)]["test_accuracy"] for s in seeds])
        cpu = statistics.median(done[(config, keys[name], s)]["fit_cpu_s"] for s in seeds)
        lo, hi = _interval(acc)
        paired = ""
        if name != "default":
            d_lo, d_hi = _interval(acc - base)
            paired = f"{(acc - base).mean():+.4f} [{d_lo:+.4f}, {d_hi:+.4f}]"
        print(f"| {name} | {acc.mean():.4f} | {acc.std(ddof=1):.4f} | [{lo:.4f}, {hi:.4f}] "
              f"| {paired} | {acc.min():.4f} | {cpu:.1f} s |")


def _interval(values: np.ndarray) -> tuple[float, float]:
    """95% t-interval of the mean."""
    half = stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values))
    return values.mean() - half, values.mean() + half


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="default-estimator fits to time")
    parser.add_argument("--copies-epochs", type=int, default=200,
                        help="epochs of the PyTorch copies fit (scaled to 200)")
    parser.add_argument("--accuracy", action="store_true", help="run the 20-seed accuracy")
    parser.add_argument("--variants", nargs="*", metavar="NAME",
                        help="with --accuracy: which of VARIANTS to fit (default: default and "
                             "paper; given with no names: all of them)")
    parser.add_argument("--seeds", default="0:20",
                        help="with --accuracy: START:STOP in the paper's seed stream")
    parser.add_argument("--config", default="5_0.9_0",
                        help="with --accuracy: simulation config k_corr_xnoise")
    parser.add_argument("--no-timing", action="store_true")
    args = parser.parse_args()
    with single_thread():
        if not args.no_timing:
            timing(args.repeats, args.copies_epochs)
        if args.accuracy:
            start, stop = (int(v) for v in args.seeds.split(":"))
            names = (["default", "paper"] if args.variants is None
                     else args.variants or list(VARIANTS))
            unknown = sorted(set(names) - set(VARIANTS))
            if unknown or "default" not in names:
                parser.error(f"--variants: {unknown or names} (known: {', '.join(VARIANTS)}; "
                             "'default' is needed for the paired differences)")
            accuracy(names, args.config, start, stop)


if __name__ == "__main__":
    main()
