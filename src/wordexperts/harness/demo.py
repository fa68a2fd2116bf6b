"""``wordexperts demo``: attention is a mixture of word experts, on a real table.

1. Fit the paper's one-block attention model with the MLM objective on auto-mpg (USA cars).
2. Convert it to its expert form and check that both give the same probabilities.
3. Show which columns (experts) the gates weighed when predicting one car's mpg class.
4. The headline: paper Table 5 (auto-mpg, trained on US cars, tested on European and
   Japanese ones) with the attention estimator and the tuned baselines over a few seeds,
   and one simulated-shift configuration of Tables 3-4, beside the paper's figures.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
import torch

from wordexperts.core.attention import AttentionConfig, BidirectionalAttention
from wordexperts.core.experts import to_experts
from wordexperts.core.threads import single_thread
from wordexperts.core.training import fit_mlm
from wordexperts.datasets import load_auto_mpg
from wordexperts.harness.tabular_ood import Reproduction


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--epochs", type=int, default=300,
                        help="MLM epochs of step 1's fit (default: 300)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of step 1's initial weights, shuffling and dropout (default: 0)")
    parser.add_argument("--row", type=int, default=0,
                        help="test row whose gates step 3 shows (default: 0)")
    parser.add_argument("--seeds", type=int, default=3,
                        help="seeds per method in step 4's reproductions (default: 3)")
    parser.add_argument("--out", default="runs/demo",
                        help="folder of step 4's runs, reused when finished (default: runs/demo)")
    parser.add_argument("--no-tables", dest="tables", action="store_false",
                        help="skip step 4 (the reproductions)")
    parser.add_argument("--no-progress", dest="progress", action="store_false",
                        help="no progress bars (by default they show only on a terminal)")


def core_demo(*, epochs: int, seed: int, row: int, progress: bool | None = None) -> None:
    train, test = load_auto_mpg()
    columns = list(train.columns)
    target = columns.index("y")
    # every auto-mpg column is cut into 3 bins: one shared vocabulary {0, 1, 2}, as the paper
    X_train, X_test = train.to_numpy(np.int64), test.to_numpy(np.int64)
    vocab = int(max(X_train.max(), X_test.max())) + 1
    torch.manual_seed(seed)
    config = AttentionConfig(vocab_size=vocab, seq_len=len(columns), d_model=20, n_heads=5,
                             block="bert", d_ff=5, dropout=0.1)
    model = BidirectionalAttention(config)
    print(f"1. Fit attention (1 BERT block, 5 heads, d=20) by MLM over all {len(columns)} "
          f"columns of {len(X_train)} USA cars, {epochs} epochs, single pass")
    history = fit_mlm(model, X_train, epochs=epochs, batch_size=32, lr=3e-3, seed=seed,
                      progress=progress)
    print(f"   pseudo-NLL per cell: {history[0]:.3f} -> {history[-1]:.3f}")
    with torch.no_grad():
        log_probs = model.masked_log_probs(X_test)
    accuracy = (log_probs[:, target].argmax(-1).numpy() == X_test[:, target]).mean()
    print(f"   mpg class accuracy on {len(X_test)} European and Japanese cars (mask y, "
          f"predict): {accuracy:.3f}")
    print("   (one fit of the bare model with the core trainer, to look inside it; step 4 fits "
          "the tuned estimator, WordExpertsClassifier: the paper's initialization, a learning-"
          "rate schedule, over several seeds)")

    model = model.double()
    experts = to_experts(model)
    with torch.no_grad():
        single = model.masked_log_probs(X_test, method="single_pass")
        copies = model.masked_log_probs(X_test, method="copies")
    expert_form = experts.masked_log_probs(X_test)
    print("\n2. The same model as a mixture of continuous word experts (float64):")
    print(f"   max |log p attention (single pass) - log p attention (L copies)| = "
          f"{(single - copies).abs().max().item():.2e}")
    print(f"   max |log p attention - log p experts|                            = "
          f"{(single - expert_form).abs().max().item():.2e}")

    gates = experts.gates(X_test[row:row + 1])[0, :, target]            # (H, L)
    table = pd.DataFrame(gates.numpy().T, index=[f"{c}={v}" for c, v in
                                                  zip(columns, X_test[row], strict=True)],
                         columns=[f"head {h}" for h in range(config.n_heads)])
    table.index = [name if i != target else "y=[MASK]" for i, name in enumerate(table.index)]
    table["mean"] = table.mean(axis=1)
    probs = single[row, target].exp().numpy()
    print(f"\n3. Gates pi_ij at the masked target of test car {row} (rows: context experts j; "
          f"each head's column sums to 1):")
    print(table.round(3).to_string())
    print(f"   p(y | rest) = {np.round(probs, 3).tolist()}; true class {X_test[row, target]}")


def reproduce(reproduction: Reproduction, argv: list[str]) -> int:
    """Run a tabular reproduction with command-line style arguments ``argv``."""
    parser = argparse.ArgumentParser(prog=f"wordexperts reproduce {reproduction.name}")
    reproduction.configure(parser)
    return reproduction.run(parser.parse_args(argv))


def tables_demo(*, seeds: int, out: str, progress: bool = True) -> int:
    """Table 5 over ``seeds`` seeds and config 5_0.9_0 of Tables 3-4."""
    from wordexperts.harness.table5 import TABLE5
    from wordexperts.harness.tables34 import TABLES34

    print(f"\n4. Out of distribution, {seeds} seeds per method (runs kept in {out}/; delete "
          "it to rerun). Table 5: attention vs LR, RF, GB, MLP tuned by the paper's grids.")
    quiet = [] if progress else ["--no-progress"]
    status = reproduce(TABLE5, ["--seeds", str(seeds), "--out", f"{out}/table5",
                                "--methods", "attention", "lr", "rf", "gb", "mlp", *quiet])
    print("\n   Tables 3-4, configuration 5_0.9_0 (5 causal features, correlation 0.9 in "
          "training, 0.1 in test); GB's grid (about 150 s a run) is left to "
          "`wordexperts reproduce tables34`.")
    return status or reproduce(TABLES34, ["--configs", "5_0.9_0", "--seeds", str(seeds),
                                          "--out", f"{out}/tables34",
                                          "--methods", "attention", "lr", "rf", "mlp", *quiet])


def run(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    with single_thread():
        core_demo(epochs=args.epochs, seed=args.seed, row=args.row,
                  progress=None if args.progress else False)
    print(f"   (steps 1-3: {time.perf_counter() - start:.0f} s)")
    if not args.tables:
        return 0
    start = time.perf_counter()
    status = tables_demo(seeds=args.seeds, out=args.out, progress=args.progress)
    print(f"\n(step 4: {time.perf_counter() - start:.0f} s; finished runs are reused: a second "
          f"`make demo` skips them)")
    return status
