"""Which columns drive a tabular prediction, read as word experts (docs/paper.md section 2).

A fitted :class:`~wordexperts.tabular.estimator.WordExpertsClassifier` predicts the target
(the last position, read as the mask) with one attention block. At the masked target ``t``
each column ``j`` is an expert: head ``h`` weighs it with the gate ``pi^h_j`` (the gating
network: a query from the target's position alone, a key from the column's category) and
its expert is ``nu^h(x_j, j) = Wo_h (Wv_h (E[x_j] + P[j]) + bv_h)``. The mixture is exactly::

    z = bo + sum_h sum_j c^h_j,     c^h_j = pi^h_j nu^h(x_j, j)          (hidden space, R^d)

(``j`` runs over the feature columns and the target's own slot, whose expert is the mask's
positional one). The target's class logits are ``B f(z, m_t) + c`` restricted to the
target's classes (the estimator's softmax runs over them):

- **plain block** (``f(z) = z``): the logit contribution of column ``j`` in head ``h`` is
  ``B c^h_j`` and the bias is ``B bo + c``; they sum to the logits exactly (CBOW with
  mixture-of-experts weights).
- **BERT block** (what the estimator fits): ``f`` is the post-LN feed-forward link, a
  nonlinear function of the whole mixture. The exact decomposition is that of ``z`` above
  (:func:`mixture_contributions`). The logit contributions are ``B A c^h_j``, where
  ``f(z) = A z + b`` is the link written as an affine map *at this row's mixture* (its two
  LayerNorm scales and the ReLU on/off pattern fixed at their values for ``z``,
  :meth:`wordexperts.core.experts.PostLNLink.affine`); the bias is ``B (A bo + b) + c``.
  They too sum to the logits exactly, but ``A`` depends on the row through ``z``: a
  contribution says how this row's logits split along its mixture, not what the model
  would predict without the column.

The logits here are the calibrated ones the estimator's probabilities are the softmax of:
the model's divided by its ``temperature_`` (:mod:`~wordexperts.tabular.calibration`), every
contribution and the bias divided alike, so the split stays exact.

:func:`explain_predictions` gives these per row, column, (head) and class as a tidy
DataFrame; :func:`global_importance` ranks the columns; :func:`gate_shift` compares the
gates of two groups of rows (train against test: where the mixture moves under covariate
shift, the paper's story).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from wordexperts.core.experts import ContinuousWordExperts, to_experts
from wordexperts.tabular.solver import input_embeddings, prediction_rows

#: Name of the target's own (masked) slot among the experts, and of the bias term.
TARGET_SLOT = "(target slot)"
BIAS = "(bias)"
#: Rows are explained in chunks whose float64 arrays (the experts' hidden contributions
#: rows x H x L x d, their logits rows x H x L x K and the link's affine maps rows x d x d)
#: hold at most this many values (64 MB), at most 4,096 rows.
CHUNK_VALUES = 1 << 23


@dataclass(frozen=True)
class MixtureContributions:
    """The exact split of the target's mixture and logits for ``n`` rows (float64).

    - ``gates`` (n, H, L): ``pi^h_j`` at the masked target, summing to one over ``j``
      (positions: the features in order, then the target's own slot);
    - ``hidden`` (n, H, L, d): ``c^h_j = pi^h_j nu^h(x_j, j)``; ``mixture`` (n, d):
      ``z = hidden_bias + sum_h sum_j c^h_j`` exactly; ``hidden_bias`` (d,): ``bo``;
    - ``logits`` (n, H, L, K): each expert's contribution to the ``K`` class logits
      (see the module docs for the BERT block's affine form); ``logit_bias`` (n, K);
      ``logits.sum((1, 2)) + logit_bias`` are the model's class logits (divided by the
      estimator's ``temperature_``), exactly;
    - ``classes`` (K,), ``columns``: the names of the ``L`` positions.
    """

    gates: np.ndarray
    hidden: np.ndarray
    hidden_bias: np.ndarray
    mixture: np.ndarray
    logits: np.ndarray
    logit_bias: np.ndarray
    classes: np.ndarray
    columns: list[str]
    block: str

    @property
    def class_logits(self) -> np.ndarray:
        """The class logits rebuilt from the contributions: (n, K)."""
        return self.logits.sum((1, 2)) + self.logit_bias


def _engine(clf: Any) -> tuple[Any, ContinuousWordExperts]:
    """A float64 copy of ``clf.model_`` and its expert form."""
    if not hasattr(clf, "model_"):
        raise ValueError("the classifier is not fitted: call fit(X, y) first (or load a "
                         "saved model)")
    model = copy.deepcopy(clf.model_).double().eval()
    if model.config.n_layers != 1:
        raise ValueError(f"the model must have one block, got n_layers={model.config.n_layers}")
    return model, to_experts(model)


def chunk_rows(config: Any, n_classes: int) -> int:
    """Rows per chunk of :func:`contribution_chunks` (:data:`CHUNK_VALUES`).

    >>> from wordexperts.core.attention import AttentionConfig
    >>> chunk_rows(AttentionConfig(vocab_size=10, seq_len=6, n_heads=5), 3)
    4096
    >>> chunk_rows(AttentionConfig(vocab_size=10, seq_len=101, d_model=20, n_heads=5), 3)
    698
    """
    per_row = (config.n_heads * config.seq_len * (config.d_model + n_classes)
               + config.d_model ** 2)
    return max(1, min(4096, CHUNK_VALUES // per_row))


@torch.no_grad()
def contribution_chunks(clf: Any, X: Any, *, rows: int | None = None
                        ) -> Iterator[MixtureContributions]:
    """:class:`MixtureContributions` of the rows of ``X``, ``rows`` at a time (default
    :func:`chunk_rows`): the explanations of a large table in bounded memory."""
    model, engine = _engine(clf)
    ids, soft = clf.model_inputs(X)
    rows = rows or chunk_rows(engine.config, len(clf.classes_))
    for start in range(0, len(ids), rows):
        part = slice(start, start + rows)
        inputs = input_embeddings(model, ids[part],
                                  None if soft is None else soft.rows(part))
        absent = model.config.absent(torch.from_numpy(ids[part].astype(np.int64)))
        yield _contributions(clf, engine, inputs, absent)


def _contributions(clf: Any, engine: ContinuousWordExperts, inputs: torch.Tensor,
                   absent: torch.Tensor | None) -> MixtureContributions:
    cfg = engine.config
    t = cfg.seq_len - 1
    gates = engine.mask_gates(inputs, mask_id=cfg.mask_id, absent=absent)[:, :, t]  # (n, H, L)
    experts = engine.layer_experts(0, inputs)                                  # (n, H, L, d)
    hidden = gates.unsqueeze(-1) * experts                                      # c^h_j
    bias = engine.layers[0].attention.b_o
    z = hidden.sum((1, 2)) + bias                                               # (n, d)
    m = engine.mask_embeddings(cfg.seq_len, mask_id=cfg.mask_id)[t].expand_as(z)
    a_map, b = engine.layers[0].link.affine(z, m)                               # (n, d, d)
    target_words = torch.as_tensor(np.asarray(clf.words_[-1]), dtype=torch.long)
    w_out = engine.output_weight[target_words]                                  # (K, d)
    logits = torch.einsum("kd,nde,nhje->nhjk", w_out, a_map, hidden)
    logit_bias = ((a_map @ bias + b) @ w_out.T) + engine.output_bias[target_words]
    # calibrated logits: every term divided by the temperature, so they still sum exactly
    logits, logit_bias = logits / clf.temperature_, logit_bias / clf.temperature_
    return MixtureContributions(
        gates=gates.numpy(), hidden=hidden.numpy(), hidden_bias=bias.numpy(),
        mixture=z.numpy(), logits=logits.numpy(), logit_bias=logit_bias.numpy(),
        classes=np.asarray(clf.classes_), columns=[*(c.name for c in clf.columns_), TARGET_SLOT],
        block=cfg.block,
    )


def mixture_contributions(clf: Any, X: Any) -> MixtureContributions:
    """Split the target's mixture and class logits over the columns (experts) and heads.

    ``clf``: a fitted :class:`~wordexperts.tabular.estimator.WordExpertsClassifier` (its
    ``model_``, ``classes_``, ``columns_``, ``words_`` and its inputs). Exact in float64
    for both blocks; see :class:`MixtureContributions` and the module docs for what is
    reconstructed. Every row's arrays are returned: for many rows, iterate over
    :func:`contribution_chunks` instead.
    """
    chunks = list(contribution_chunks(clf, X))
    first = chunks[0]
    return MixtureContributions(
        **{name: np.concatenate([getattr(c, name) for c in chunks])
           for name in ("gates", "hidden", "mixture", "logits", "logit_bias")},
        hidden_bias=first.hidden_bias, classes=first.classes, columns=first.columns,
        block=first.block)


def explain_predictions(clf: Any, X: Any, *, by_head: bool = False) -> pd.DataFrame:
    """Per row and class, each column's gate and its contribution to the target's logit.

    Returns a tidy DataFrame with columns ``row`` (``X``'s index, or 0..n-1), ``column``
    (the feature names, then :data:`TARGET_SLOT` and :data:`BIAS`), ``head`` (only with
    ``by_head=True``), ``class``, ``gate`` and ``contribution``. Summed over heads (the
    default) ``gate`` is the mean of the heads' gates and ``contribution`` the sum of theirs.
    For every row and class the contributions, bias included, sum to the model's logit of
    that class exactly (``frame.groupby(["row", "class"]).contribution.sum()``); the
    classifier's probabilities are their softmax over the classes. ``frame.attrs`` says
    what the contributions are (``"quantity"``).

    >>> from wordexperts import WordExpertsClassifier
    >>> from wordexperts.datasets import make_shift_simulation
    >>> train, test = make_shift_simulation(n=200, seed=0)
    >>> clf = WordExpertsClassifier(epochs=3, random_state=0)
    >>> _ = clf.fit(train.drop(columns="y"), train["y"])
    >>> frame = explain_predictions(clf, test.drop(columns="y").head(2))
    >>> list(frame.columns), len(frame)                       # 2 rows x 7 columns x 10 classes
    (['row', 'column', 'class', 'gate', 'contribution'], 140)
    """
    index = np.asarray(X.index) if isinstance(X, pd.DataFrame) else None
    frames, start = [], 0
    for parts in contribution_chunks(clf, X):
        n = len(parts.gates)
        rows = index[start:start + n] if index is not None else np.arange(start, start + n)
        frames.append(_tidy(parts, rows, by_head=by_head))
        start += n
    order = ["row", "head"] if by_head else ["row"]
    frame = pd.concat(frames, ignore_index=True).sort_values(order, kind="stable",
                                                             ignore_index=True)
    frame.attrs["quantity"] = _quantity(parts.block)
    return frame


def _tidy(parts: MixtureContributions, rows: np.ndarray, *, by_head: bool) -> pd.DataFrame:
    """The frame of :func:`explain_predictions` for the rows of one chunk."""
    n, heads, length, k = parts.logits.shape
    if by_head:
        gate = np.broadcast_to(parts.gates[..., None], parts.logits.shape)      # (n, H, L, K)
        frame = pd.DataFrame({
            "row": np.repeat(rows, heads * length * k),
            "column": np.tile(np.repeat(parts.columns, k), n * heads),
            "head": np.tile(np.repeat(np.arange(heads), length * k), n),
            "class": np.tile(parts.classes, n * heads * length),
            "gate": gate.ravel(), "contribution": parts.logits.ravel(),
        })
        bias = pd.DataFrame({"row": np.repeat(rows, k), "column": BIAS, "head": -1,
                             "class": np.tile(parts.classes, n), "gate": np.nan,
                             "contribution": parts.logit_bias.ravel()})
    else:
        gate = np.broadcast_to(parts.gates.mean(1)[..., None], (n, length, k))
        frame = pd.DataFrame({
            "row": np.repeat(rows, length * k),
            "column": np.tile(np.repeat(parts.columns, k), n),
            "class": np.tile(parts.classes, n * length),
            "gate": gate.ravel(), "contribution": parts.logits.sum(1).ravel(),
        })
        bias = pd.DataFrame({"row": np.repeat(rows, k), "column": BIAS,
                             "class": np.tile(parts.classes, n), "gate": np.nan,
                             "contribution": parts.logit_bias.ravel()})
    return pd.concat([frame, bias], ignore_index=True)


def _quantity(block: str) -> str:
    if block == "plain":
        return ("logit contributions B pi^h_j nu^h(x_j, j) and bias B bo + c of the plain "
                "block: exact, they sum to the class logits")
    # NOTE: differs from the paper: the paper reads the BERT block as a nonlinear link of the
    # mixture and splits only the mixture; here the link is written as an affine map at each
    # row's mixture (LayerNorm scales and ReLU pattern of that row) to split the logits too.
    return ("logit contributions B A pi^h_j nu^h(x_j, j) and bias B (A bo + b) + c, with the "
            "BERT block's link written as the affine map f(z) = A z + b at the row's own "
            "mixture z (its LayerNorm scales and ReLU pattern): they sum to the class logits "
            "exactly; A depends on the row")


def centred(contributions: np.ndarray) -> np.ndarray:
    """Contributions minus their mean over the classes (last axis).

    The class probabilities are a softmax of the logits, so what a column adds to every
    class alike changes nothing; the centred part is what moves the prediction.
    """
    return contributions - contributions.mean(-1, keepdims=True)


def global_importance(clf: Any, X: Any) -> pd.Series:
    """Each feature column's mean absolute centred contribution to the target's logits.

    Over the rows of ``X`` and the classes, of the contribution summed over heads, minus its
    mean over the classes (:func:`centred`). Returns a Series indexed by the feature names,
    largest first (the target's own slot and the bias are not features: left out).
    """
    total, n = 0.0, 0
    for parts in contribution_chunks(clf, X):
        total = total + np.abs(centred(parts.logits.sum(1))).sum(0).mean(-1)    # (L,)
        n += len(parts.gates)
    per_column = total / n
    names = parts.columns[:-1]
    return (pd.Series(per_column[:-1], index=pd.Index(names, name="column"), name="importance")
            .sort_values(ascending=False, kind="stable"))


def gate_shift(clf: Any, X_a: Any, X_b: Any, *, groups: tuple[str, str] = ("train", "test"),
               by_head: bool = False) -> pd.DataFrame:
    """How the target's gates move between two groups of rows (say train and test).

    The mean gate of each column (and of the target's own slot) in each group, averaged over
    the rows (and over the heads unless ``by_head``), and ``shift`` = second minus first.
    Under covariate shift the gating network reads the new rows' categories, so the mixture
    weighs the columns differently (docs/paper.md section 4). Returns a DataFrame indexed by
    column (and head) with columns ``gate_<group>`` and ``shift``.
    """
    if len(groups) != 2 or groups[0] == groups[1]:
        raise ValueError(f"groups must be two different names, got {groups!r}")
    means = []
    for X in (X_a, X_b):
        total, n = 0.0, 0
        for parts in contribution_chunks(clf, X):
            total = total + parts.gates.sum(0)                                  # (H, L)
            n += len(parts.gates)
        gates = total / n
        means.append(gates if by_head else gates.mean(0, keepdims=True))
    columns = parts.columns
    heads = means[0].shape[0]
    index = (pd.MultiIndex.from_product([columns, range(heads)], names=["column", "head"])
             if by_head else pd.Index(columns, name="column"))
    frame = pd.DataFrame({f"gate_{g}": m.T.ravel() for g, m in zip(groups, means, strict=True)},
                         index=index)
    frame["shift"] = frame[f"gate_{groups[1]}"] - frame[f"gate_{groups[0]}"]
    return frame

def target_gates(clf: Any, X: Any) -> np.ndarray:
    """The target's gates over the positions, per head: (n, H, n_features + 1) (see
    :meth:`~wordexperts.tabular.estimator.WordExpertsClassifier.gates`)."""
    ids, soft = clf.model_inputs(X)
    experts = to_experts(clf.model_)
    absent = clf.model_.config.absent(torch.from_numpy(ids.astype(np.int64)))
    with torch.no_grad():
        inputs = input_embeddings(clf.model_, ids, soft)
    chunk = prediction_rows(clf.model_.config)     # all the gates at once: n H L L
    return np.concatenate([
        experts.gates(inputs[start:start + chunk], absent=None if absent is None
                      else absent[start:start + chunk])[:, :, -1, :].numpy()
        for start in range(0, max(len(inputs), 1), chunk)])
