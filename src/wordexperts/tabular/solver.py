"""Fitting and reading the tabular model: what :class:`WordExpertsClassifier` calls.

:func:`fit_table` trains a one-block :class:`~wordexperts.core.attention.BidirectionalAttention`
on an encoded table (word ids, class indices, cell weights: :mod:`wordexperts.tabular.encoding`)
with :func:`~wordexperts.tabular.trainer.fit_one_block`: the paper's initialization, an
optional held-out slice of the rows for early stopping and for choosing the objective
(:func:`objectives_to_try`), a floor on the training length (``min_steps``), and restarts of
collapsed fits. :func:`cross_fitted_log_proba` predicts each row's target from a model fitted
without it (:mod:`wordexperts.tabular.calibration`).
:func:`position_log_proba` reads ``log p`` over one position's words from a fitted model, in
row chunks, without the full-vocabulary logits.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import torch

from wordexperts.core.attention import AttentionConfig, BidirectionalAttention
from wordexperts.core.experts import to_experts
from wordexperts.core.loop import History, planned_steps
from wordexperts.tabular.encoding import Soft
from wordexperts.tabular.positions import OutputClasses
from wordexperts.tabular.trainer import Validation, fit_one_block, paper_init

__all__ = ["AUTO_EARLY_STOPPING_ROWS", "AUTO_OBJECTIVE_ROWS", "MAX_VALIDATION_ROWS",
           "FitSettings", "TableFit", "cross_fitted_log_proba", "fit_table", "holds_out",
           "objectives_to_try", "position_log_proba", "prediction_rows", "step_budget"]

#: ``early_stopping="auto"`` holds out a validation slice when the table has more rows.
AUTO_EARLY_STOPPING_ROWS = 10_000
#: ``objective="auto"`` tries both objectives when the table has more rows, so that the
#: held-out slice has at least 1,000 (on the scale benchmark's tables the target-only fit was
#: ahead by up to 0.18; on the real-shift tables, all under 2,000 rows, the MLM by
#: 0.002-0.09: docs/tabular-estimator.md, "The objective").
AUTO_OBJECTIVE_ROWS = 10_000
#: The held-out slice is ``validation_fraction`` of the rows, at most this many.
MAX_VALIDATION_ROWS = 5_000
#: Early stopping checks the validation loss at least this many times over the budget.
CHECKS = 20
# restart a fit whose target puts more than this share of every head's gate on its own
# masked slot (on average over up to _COLLAPSE_ROWS training rows), at most _MAX_RESTARTS times
_COLLAPSED = 0.99
_COLLAPSE_ROWS = 512
_MAX_RESTARTS = 2
# rows per chunk when reading predictions: at most this many, and the chunk's gates
# (rows x heads x L x L) at most _PREDICT_GATES values (64 MB in float32; 4096 rows of a
# 101-position table would hold 0.8 GB of gates)
_PREDICT_ROWS = 4096
_PREDICT_GATES = 1 << 24


def validation_rows(n_rows: int, *, early_stopping: bool | str, fraction: float) -> int:
    """How many rows :func:`fit_table` holds out: 0 without early stopping.

    >>> validation_rows(2000, early_stopping="auto", fraction=0.1)
    0
    >>> validation_rows(200_000, early_stopping="auto", fraction=0.1)
    5000
    """
    on = n_rows > AUTO_EARLY_STOPPING_ROWS if early_stopping == "auto" else early_stopping
    if not on:
        return 0
    n_val = min(max(1, round(fraction * n_rows)), MAX_VALIDATION_ROWS)
    if n_val >= n_rows:
        raise ValueError(f"early stopping needs at least 2 rows, got {n_rows}")
    return n_val


def holds_out(n_rows: int, settings: FitSettings, objectives: Sequence[str]) -> bool:
    """Whether :func:`fit_table` holds out rows (early stopping, or several objectives).

    >>> s = FitSettings(method="single_pass", epochs=120, max_steps=2000, min_steps=None,
    ...                 batch_size=128, lr=7e-3, lr_schedule="linear", early_stopping="auto",
    ...                 validation_fraction=0.1, patience=5, device=None, max_positions=32,
    ...                 context_corruption=0.0)
    >>> holds_out(2_000, s, ("mlm",)), holds_out(20_000, s, ("mlm", "target"))
    (False, True)
    """
    early = validation_rows(n_rows, early_stopping=settings.early_stopping,
                            fraction=settings.validation_fraction) > 0
    return early or len(objectives) > 1


def step_budget(n_items: int, settings: FitSettings) -> tuple[int | None, int | None]:
    """``(epochs, max_steps)`` of a fit over ``n_items`` rows (or copies): the settings',
    raised to ``min_steps`` optimizer steps where they plan fewer (a table of 80 rows is one
    step an epoch: 120 epochs would be 120 steps, too few to learn a contrast between two
    measurements).

    >>> s = FitSettings(method="single_pass", epochs=120, max_steps=2000, min_steps=400,
    ...                 batch_size=128, lr=7e-3, lr_schedule="linear", early_stopping=False,
    ...                 validation_fraction=0.1, patience=5, device=None, max_positions=32,
    ...                 context_corruption=0.0)
    >>> step_budget(80, s), step_budget(1000, s)
    ((400, 400), (120, 2000))
    """
    epochs, max_steps, floor = settings.epochs, settings.max_steps, settings.min_steps
    if floor is None:
        return epochs, max_steps
    planned = planned_steps(n_items=n_items, batch_size=settings.batch_size, epochs=epochs,
                            max_steps=max_steps)
    if planned >= floor:
        return epochs, max_steps
    per_epoch = -(-n_items // settings.batch_size)
    return -(-floor // per_epoch), floor


def objectives_to_try(objective: str, n_rows: int) -> tuple[str, ...]:
    """The objectives :func:`fit_table` fits for the estimator's ``objective``: ``"auto"``
    tries both on tables of more than :data:`AUTO_OBJECTIVE_ROWS` rows, else the MLM.

    >>> objectives_to_try("auto", 2_000), objectives_to_try("auto", 20_000)
    (('mlm',), ('mlm', 'target'))
    """
    if objective == "auto":
        return ("mlm", "target") if n_rows > AUTO_OBJECTIVE_ROWS else ("mlm",)
    return (objective,)


@dataclass(frozen=True)
class FitSettings:
    """How :func:`fit_table` trains (the estimator's resolved settings of the same names):
    ``method`` ("single_pass" or "copies"); the budget ``epochs``, ``max_steps`` and the floor
    ``min_steps`` (:func:`step_budget`); ``batch_size``; Adam's ``lr`` and ``lr_schedule``
    ("constant" or "linear"); ``early_stopping`` ("auto", True or False),
    ``validation_fraction`` and ``patience``; ``device`` (``None``: the NumPy trainer);
    ``max_positions`` (:class:`~wordexperts.tabular.positions.PositionSample`);
    ``context_corruption``."""

    method: str
    epochs: int | None
    max_steps: int | None
    min_steps: int | None
    batch_size: int
    lr: float
    lr_schedule: str
    early_stopping: bool | str
    validation_fraction: float
    patience: int
    device: str | None
    max_positions: int | None
    context_corruption: float

    @classmethod
    def of(cls, settings: Mapping[str, Any]) -> FitSettings:
        """The fields of ``settings`` (a mapping with at least these keys)."""
        return cls(**{f.name: settings[f.name] for f in fields(cls)})


@dataclass
class TableFit:
    """What :func:`fit_table` returns. ``objective``: the one kept; ``validation_loss``: the
    target's mean log loss on the held-out rows per objective tried (empty when only one
    was fitted); ``held_out``: when rows were held out, the kept model's target log
    probabilities on them (n_held, K) and their classes (n_held,), else ``None``."""

    model: BidirectionalAttention
    history: History
    n_restarts: int
    objective: str
    validation_loss: dict[str, float] = field(default_factory=dict)
    held_out: tuple[np.ndarray, np.ndarray] | None = None


def fit_table(ids: np.ndarray, target: np.ndarray, weight: np.ndarray, *,
              words: list[np.ndarray], config: AttentionConfig, settings: FitSettings,
              rng: np.random.Generator, progress: bool = False, soft: Soft | None = None,
              objectives: Sequence[str] = ("mlm",)) -> TableFit:
    """Fit the tabular model.

    ``ids`` (n, L): word ids, the target last; ``target`` (n, L): each cell's class index
    into its position's ``words``; ``weight`` (n, L): which cells are observed (the MLM's
    prediction targets; ``"target"`` in ``objectives`` keeps only the last position's).
    ``settings``: how to train (:class:`FitSettings`). With early stopping, or with more
    than one objective, a random slice of the rows (:func:`validation_rows`) is held out and
    scored on the target's log loss: early stopping keeps the weights of the best check; of
    several objectives (each fitted on the same rows, one after the other, the target-only one
    always with early
    stopping) the fit with the lowest final score is kept.
    """
    s = settings
    if not objectives or any(o not in ("mlm", "target") for o in objectives):
        raise ValueError(f"objectives must be 'mlm' and/or 'target', got {objectives!r}")
    classes = OutputClasses(words, vocab_size=config.vocab_size)
    fraction = s.validation_fraction
    early = validation_rows(len(ids), early_stopping=s.early_stopping, fraction=fraction) > 0
    n_val = validation_rows(len(ids), early_stopping=early or len(objectives) > 1,
                            fraction=fraction)
    validation = None
    if n_val:
        order = rng.permutation(len(ids))
        held, kept = np.sort(order[:n_val]), np.sort(order[n_val:])
        val_weight = np.zeros(weight[held].shape, dtype=bool)
        val_weight[:, -1] = weight[held, -1] > 0        # the target's log loss
        validation = Validation(ids[held], target[held], val_weight,
                                None if soft is None else soft.rows(held))
        ids, target, weight = ids[kept], target[kept], weight[kept]
        if soft is not None:
            soft = soft.rows(kept)
    fits = []
    for objective in objectives:
        w = weight
        if objective == "target":
            w = np.zeros_like(weight)
            w[:, -1] = weight[:, -1]
        # Choosing between objectives, the target-only fit keeps its best check on the
        # held-out rows: its target loss falls from the first steps, while the MLM's sits at
        # chance while it learns the features (where early stopping would stop it), and
        # left to run, the target-only fit can end overconfident on many-category tables.
        fit = _fit_restarting(ids, target, w, classes=classes, config=config, settings=s,
                              rng=rng, progress=progress, soft=soft, validation=validation,
                              early_stopping=early or (objective == "target"
                                                       and len(objectives) > 1),
                              desc=f"fit ({s.method}, {objective})" if len(objectives) > 1
                              else None)
        fits.append(TableFit(*fit, objective=objective))
    if validation is None:
        return fits[0]
    held = {f.objective: _target_log_proba(f.model, validation, words[-1]) for f in fits}
    losses = {name: float(-log_p[np.arange(len(y)), y].mean())
              for name, (log_p, y) in held.items()}
    best = min(fits, key=lambda f: losses[f.objective])
    if len(fits) > 1:
        best.validation_loss = losses
    best.held_out = held[best.objective]
    return best


def _fit_restarting(ids: np.ndarray, target: np.ndarray, weight: np.ndarray, *,
                    classes: OutputClasses, config: AttentionConfig, settings: FitSettings,
                    rng: np.random.Generator, progress: bool, soft: Soft | None,
                    validation: Validation | None, early_stopping: bool, desc: str | None
                    ) -> tuple[BidirectionalAttention, History, int]:
    """One objective's fit, restarted if collapsed: ``(model, history, n_restarts)``."""
    s = settings
    n_items = len(ids) if s.method == "single_pass" else int((weight > 0).sum())
    epochs, max_steps = step_budget(n_items, s)
    patience = eval_every = None
    if early_stopping:
        total = planned_steps(n_items=n_items, batch_size=s.batch_size,
                              epochs=epochs, max_steps=max_steps)
        per_epoch = -(-n_items // s.batch_size)
        eval_every = max(1, min(per_epoch, math.ceil(total / CHECKS)))
        patience = s.patience
    masked = ids[:_COLLAPSE_ROWS].astype(np.int64)
    masked[:, -1] = config.mask_id
    n_restarts = 0
    while True:
        model = BidirectionalAttention(config)
        paper_init(model, rng)
        history = fit_one_block(
            model, ids, target=target, weight=weight, classes=classes, method=s.method,
            epochs=epochs, max_steps=max_steps, batch_size=s.batch_size,
            lr=s.lr, lr_schedule=s.lr_schedule,
            validation=validation if early_stopping else None,
            patience=patience, eval_every=eval_every, rng=rng, device=s.device,
            progress=progress, desc=desc, soft=soft, max_positions=s.max_positions,
            always_predict=(config.seq_len - 1,),                       # the target
            corruption=s.context_corruption,
        )
        # A target whose gates sit on its own masked slot in every head ignores every
        # feature: a degenerate solution some initializations fall into. Restart.
        own = to_experts(model).gates(masked)[:, :, -1, -1].mean(0)
        if own.min() < _COLLAPSED or n_restarts == _MAX_RESTARTS:
            return model, history, n_restarts
        n_restarts += 1


def _target_log_proba(model: BidirectionalAttention, validation: Validation,
                      words: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The target's log probabilities (n, K) on the held-out rows that have one (the target
    read as the mask), and its classes there."""
    ids, target, weight, soft = validation
    rows = weight[:, -1] > 0
    ids = ids[rows].copy()
    ids[:, -1] = model.config.mask_id
    log_p = position_log_proba(model, ids, words, ids.shape[1] - 1,
                               None if soft is None else soft.rows(rows))
    return log_p, target[rows, -1]


def cross_fitted_log_proba(ids: np.ndarray, target: np.ndarray, weight: np.ndarray, *,
                           folds: Sequence[np.ndarray], words: list[np.ndarray],
                           config: AttentionConfig, settings: FitSettings,
                           rng: np.random.Generator, soft: Soft | None = None,
                           objectives: Sequence[str] = ("mlm",)) -> np.ndarray:
    """Each row's target log probabilities (n, K) from a model fitted (:func:`fit_table`)
    on the rows of the other ``folds``, the target read as the mask."""
    log_p = np.empty((len(ids), len(words[-1])))
    every = np.arange(len(ids))
    for fold in folds:
        rest = np.setdiff1d(every, fold, assume_unique=True)
        fit = fit_table(ids[rest], target[rest], weight[rest], words=words, config=config,
                        settings=settings, rng=rng, objectives=objectives,
                        soft=None if soft is None else soft.rows(rest))
        held = ids[fold].copy()
        held[:, -1] = config.mask_id
        log_p[fold] = position_log_proba(fit.model, held, words[-1], ids.shape[1] - 1,
                                         None if soft is None else soft.rows(fold))
    return log_p


def input_embeddings(model: BidirectionalAttention, ids: np.ndarray, soft: Soft | None = None
                     ) -> torch.Tensor:
    """``e_j``: (n, L) -> (n, L, d); with ``soft`` (row-major), ``(1 - f) E[x_j] +
    f E[upper_j] + P[j]``."""
    x = torch.from_numpy(ids.astype(np.int64))
    if soft is None:
        return model.embed(x)
    return model.embed(x, torch.from_numpy(soft.upper.astype(np.int64)),
                       torch.from_numpy(soft.frac))


@torch.no_grad()
def hidden_states(model: BidirectionalAttention, ids: np.ndarray, soft: Soft | None = None
                  ) -> torch.Tensor:
    """The block's output at every position of rows read as given: (n, L, d); with
    ``absent_experts``, cells holding the mask id are left out of the other positions' gates."""
    model.eval()
    h = input_embeddings(model, ids, soft)
    absent = model.config.absent(torch.from_numpy(ids.astype(np.int64)))
    for layer in model.layers:
        h = layer(h, absent)
    return h


def prediction_rows(config: AttentionConfig) -> int:
    """Rows per chunk when reading a fitted model: a chunk's gates (rows x heads x L x L)
    within 64 MB of float32, at most 4,096 rows.

    >>> prediction_rows(AttentionConfig(vocab_size=10, seq_len=6, n_heads=5))
    4096
    >>> prediction_rows(AttentionConfig(vocab_size=10, seq_len=101, n_heads=5))
    328
    """
    return min(_PREDICT_ROWS, max(64, _PREDICT_GATES // (config.n_heads * config.seq_len ** 2)))


@torch.no_grad()
def position_log_proba(model: BidirectionalAttention, ids: np.ndarray, words: np.ndarray,
                       position: int, soft: Soft | None = None) -> np.ndarray:
    """``log p`` over ``words`` (the softmax restricted to them) at ``position`` of each row
    read as given (the position holding the mask id to predict it): (n, len(words))."""
    out = model.output
    index = torch.from_numpy(np.asarray(words, dtype=np.int64))
    weight, bias = out.weight[index], out.bias[index]
    parts = []
    chunk = prediction_rows(model.config)
    for start in range(0, len(ids), chunk):
        part = slice(start, start + chunk)
        h = hidden_states(model, ids[part], None if soft is None else soft.rows(part))
        h = h[:, position]
        parts.append(torch.nn.functional.linear(h, weight, bias).log_softmax(-1).numpy())
    return np.concatenate(parts)
