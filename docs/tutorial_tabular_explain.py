"""Tutorial: explain one out-of-distribution tabular prediction as word experts.

Run: ``.venv/bin/python docs/tutorial_tabular_explain.py [--out DIR] [--epochs N]``
(offline; seconds). The paper's simulated covariate shift (config 1_0.9_0: one causal
column ``x0``, the columns correlated at 0.9 in training and at 0.1 in test). See
docs/explain.md, "Tabular predictions".
"""

import argparse
from pathlib import Path

import numpy as np

from wordexperts import WordExpertsClassifier
from wordexperts.core.threads import single_thread
from wordexperts.datasets import make_shift_simulation
from wordexperts.tabular.explain import (
    explain_predictions,
    gate_shift,
    global_importance,
    mixture_contributions,
)
from wordexperts.tabular.figures import (
    plot_gate_shift,
    plot_importance,
    plot_row,
    row_contributions,
)

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--out", type=Path, default=Path("runs") / "tutorial_tabular_explain")
parser.add_argument("--epochs", type=int, default=None, help="default: the fast preset's")
args = parser.parse_args()

with single_thread():
    # 1. Fit on the training rows, where the columns are strongly correlated.
    train, test = make_shift_simulation(n_causal=1, corr=0.9, x_noise=0.0, seed=4951)
    X, y = train.drop(columns="y"), train["y"]
    X_test, y_test = test.drop(columns="y"), test["y"]
    clf = WordExpertsClassifier(epochs=args.epochs, random_state=0).fit(X, y)
    print(f"test accuracy {clf.score(X_test, y_test):.3f} (10 classes)")

    # 2. Pick the test row least like the training rows: the one whose categories are the
    #    rarest in training (the shift decorrelates the columns, so such rows are common).
    freq = np.column_stack([X_test[c].map(X[c].value_counts(normalize=True)).fillna(0)
                            for c in X.columns])
    row = int(np.log(freq + 1e-12).sum(1).argmin())
    print(f"row {row} of the test set: {X_test.iloc[row].to_dict()}, true class {y_test[row]}")

    # 3. The target is masked; each column is an expert with a gate per head. Per class, the
    #    contributions (summed over heads) and the bias add up to the logits exactly.
    frame = explain_predictions(clf, X_test.iloc[[row]])
    parts = mixture_contributions(clf, X_test.iloc[[row]])
    logits = np.log(clf.predict_proba(X_test.iloc[[row]]))
    rebuilt = parts.class_logits - parts.class_logits.max()
    gap = np.abs((rebuilt - np.log(np.exp(rebuilt).sum())) - logits).max()
    print(f"contributions + bias = logits: max gap {gap:.1e} (log-probabilities, float32 model)")
    print(frame.attrs["quantity"])
    table = row_contributions(frame, row)
    print(f"\npredicted class {table.attrs['class']}; each column's gate and its contribution "
          "to that class's logit\n(centred: minus the mean over the classes, what moves the "
          "softmax):")
    print(table.round(3).to_string())

    # 4. Where does the mixture shift? Mean gates at the target, train rows vs test rows.
    shift = gate_shift(clf, X, X_test)
    print("\nmean gates, train vs test:")
    print(shift.round(3).to_string())

    # 5. Which columns matter over the test rows?
    importance = global_importance(clf, X_test)
    print("\nglobal importance over the test rows:")
    print(importance.round(3).to_string())

    print("\nwrote", plot_row(frame, row, args.out / "row.png"),
          plot_importance(importance, args.out / "importance.png"),
          plot_gate_shift(shift, args.out / "gate_shift.svg"))
