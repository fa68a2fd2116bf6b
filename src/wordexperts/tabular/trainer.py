"""Training the tabular model: the paper's initialization, and the loop that drives a trainer.

:func:`fit_one_block` turns a table of word ids into batches (rows, each predicting all its
cells, or the paper's masked copies), optionally corrupts their context, samples positions on
wide tables (:class:`~wordexperts.tabular.positions.PositionSample`), and steps a
:class:`Trainer` under :func:`wordexperts.core.loop.run_loop` (budget, learning-rate
schedule, validation checks, early stopping). Two trainers fit the same objective: the
hand-written NumPy one (:class:`~wordexperts.tabular.one_block.NumpyTrainer`, the default)
and PyTorch autograd on any device
(:class:`~wordexperts.tabular.torch_backend.TorchTrainer`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal, NamedTuple, Protocol

import numpy as np
import torch

from wordexperts.core.attention import BidirectionalAttention, Method, as_ids
from wordexperts.core.loop import History, linear_warmup_decay, run_loop
from wordexperts.core.threads import single_thread
from wordexperts.tabular.encoding import Soft
from wordexperts.tabular.one_block import CHUNK, NumpyTrainer
from wordexperts.tabular.positions import OutputClasses, PositionSample

__all__ = ["WARMUP", "Trainer", "Validation", "fit_one_block", "paper_init"]

#: Share of the steps over which ``lr_schedule="linear"`` warms the learning rate up.
WARMUP = 0.05


class Validation(NamedTuple):
    """Held-out rows scored during a fit: word ids (N, L), each cell's class index (N, L),
    each cell's weight as a prediction target (N, L), and the cells read between two words
    (row-major, or ``None``)."""

    ids: np.ndarray
    target: np.ndarray
    weight: np.ndarray
    soft: Soft | None = None


class Trainer(Protocol):
    """What :func:`fit_one_block` steps: one optimizer over a model's parameters. Arrays are
    batch last (L, B); ``queries``: the positions computed (``None``: all)."""

    def step(self, x: np.ndarray, target: np.ndarray, weight: np.ndarray, lr: float,
             soft: Soft | None = None, queries: np.ndarray | None = None) -> float:
        """One update at learning rate ``lr``; the batch's weighted mean loss."""

    def evaluate(self, x: np.ndarray, target: np.ndarray, weight: np.ndarray,
                 soft: Soft | None = None, queries: np.ndarray | None = None) -> float:
        """The weighted mean loss, no update, no dropout."""

    def snapshot(self) -> None:
        """Keep the current parameters (the best check so far)."""

    def restore(self) -> None:
        """Go back to the kept parameters."""

    def write(self, model: BidirectionalAttention) -> None:
        """Copy the parameters into ``model``."""


def paper_init(model: BidirectionalAttention, rng: np.random.Generator) -> None:
    """Initialize ``model`` as the paper's Keras model was: small embeddings, Glorot kernels.

    Word embeddings ``U(-0.05, 0.05)`` (Keras ``Embedding``); position embeddings and every
    kernel Glorot-uniform with the fans Keras computes for its kernel shapes; biases zero;
    LayerNorm scale one, shift zero. PyTorch's defaults (unit-variance embeddings) fit the
    training table as well but generalize far worse under the paper's covariate shift
    (docs/tabular-estimator.md).
    """
    cfg = model.config
    if cfg.n_layers != 1 or cfg.block != "bert":
        raise ValueError("paper_init is the paper's one BERT block")
    d, H, L, V, f = cfg.d_model, cfg.n_heads, cfg.seq_len, cfg.vocab_size, cfg.d_ff
    dh = d // H

    def uniform(shape: tuple[int, ...], limit: float) -> torch.Tensor:
        return torch.from_numpy(rng.uniform(-limit, limit, size=shape).astype(np.float32))

    def glorot(shape: tuple[int, ...], fan_in: int, fan_out: int) -> torch.Tensor:
        return uniform(shape, math.sqrt(6.0 / (fan_in + fan_out)))

    block = model.layers[0]
    attn = block.self_attn
    # Keras kernels: query/key/value (d, H, dh) -> fans (d H, d dh); output (H, dh, d) ->
    # fans (H dh, H d): receptive field = all but the last two axes.
    new = {
        model.word_embeddings.weight: uniform((V + 1, d), 0.05),
        model.position_embeddings: glorot((L, d), L, d),
        attn.in_proj_weight: glorot((3 * d, d), d * H, d * dh),
        attn.out_proj.weight: glorot((d, d), H * dh, H * d),
        block.linear1.weight: glorot((f, d), d, f),
        block.linear2.weight: glorot((d, f), f, d),
        model.output.weight: glorot((V, d), d, V),
    }
    with torch.no_grad():
        for param, value in new.items():
            param.copy_(value)
        for bias in (attn.in_proj_bias, attn.out_proj.bias, block.linear1.bias,
                     block.linear2.bias, model.output.bias, block.norm1.bias, block.norm2.bias):
            bias.zero_()
        block.norm1.weight.fill_(1.0)
        block.norm2.weight.fill_(1.0)


def fit_one_block(
    model: BidirectionalAttention,
    X: np.ndarray,
    *,
    target: np.ndarray | None = None,
    weight: np.ndarray | None = None,
    classes: OutputClasses | Sequence[np.ndarray] | None = None,
    method: Method = "single_pass",
    epochs: int | None = 200,
    max_steps: int | None = None,
    batch_size: int = 128,
    lr: float = 1e-3,
    lr_schedule: Literal["constant", "linear"] = "constant",
    validation: Validation | None = None,
    patience: int | None = None,
    eval_every: int | None = None,
    rng: np.random.Generator | None = None,
    device: str | None = None,
    progress: bool = False,
    desc: str | None = None,
    soft: Soft | None = None,
    max_positions: int | None = None,
    always_predict: Sequence[int] = (),
    corruption: float = 0.0,
) -> History:
    """Fit a one-block ``model`` with Adam on the weighted MLM objective; its :class:`History`.

    ``X``: word ids (N, L) in any integer dtype (keep it small: uint8/uint16), the mask id
    marking missing cells. ``target``: each cell's class index into ``classes[i]`` (default
    ``X``, with ``classes`` all words); ``weight`` (N, L), any numeric or bool dtype: each
    cell's weight as a prediction target (default 1, 0 where ``X`` is the mask).
    ``method="single_pass"`` takes ``batch_size`` rows a step, each predicting all its
    cells; ``"copies"`` takes ``batch_size`` (row, cell) pairs, the paper's masked copies.
    Training length: at most ``epochs`` passes and at most ``max_steps`` steps
    (:func:`wordexperts.core.loop.run_loop`). ``lr_schedule="linear"`` raises the learning
    rate linearly from 0 to ``lr`` over the first :data:`WARMUP` of the planned steps, then
    lowers it linearly to 0.

    ``validation``: held-out rows (:class:`Validation`); their weighted loss is computed
    every ``eval_every`` steps (default: an epoch) and shown on the progress bar. With
    ``patience``, training stops after that many checks without a lower validation loss
    and the model gets the weights of the best check (early stopping).

    ``max_positions`` (single pass, when ``L`` is larger): each step predicts the positions
    ``always_predict`` and a random subset of the others, ``max_positions`` in all
    (:class:`PositionSample`: the same objective on average, at a fraction of the cost).

    ``corruption``: each step, each cell of the batch is read as missing (the mask id) with
    this probability, as context only: its own prediction is unchanged (a position's own
    cell never enters its prediction), but the other positions learn to predict without it,
    as from the partial rows of a table with missing cells. 0: nothing is drawn.

    ``desc`` labels the progress bar (default ``"fit (method)"``). ``rng`` draws the
    shuffling, the position subsets, the corrupted cells and dropout. ``device=None`` trains
    with the NumPy trainer (:class:`OneBlockMLM`, one BLAS thread); a torch device
    (``"cpu"``, ``"cuda"``) trains the same objective with PyTorch autograd on that device
    (:mod:`wordexperts.tabular.torch_backend`); both are a :class:`Trainer`. Leaves the model
    in eval mode (on the CPU).
    """
    cfg = model.config
    X = _check_ids(X, model)
    if method not in ("single_pass", "copies"):
        raise ValueError(f"method must be 'single_pass' or 'copies', got {method!r}")
    if not (isinstance(lr, int | float) and lr > 0):
        raise ValueError(f"lr must be a positive number, got {lr!r}")
    if lr_schedule not in ("constant", "linear"):
        raise ValueError(f"lr_schedule must be 'constant' or 'linear', got {lr_schedule!r}")
    if not 0.0 <= corruption < 1.0:
        raise ValueError(f"corruption must be in [0, 1), got {corruption!r}")
    rng = rng if rng is not None else np.random.default_rng(0)
    if classes is None:
        classes = [np.arange(cfg.vocab_size)] * cfg.seq_len
    classes = classes if isinstance(classes, OutputClasses) else OutputClasses(
        classes, vocab_size=cfg.vocab_size)
    target = X if target is None else np.asarray(target)
    weight = (X != cfg.mask_id) if weight is None else np.asarray(weight)
    if target.shape != X.shape or weight.shape != X.shape:
        raise ValueError(f"target and weight must have X's shape {X.shape}")
    _check_targets(target, classes, "target")
    L = cfg.seq_len
    if method == "copies":   # the (row, cell) pairs to predict, row * L + cell
        cells = np.flatnonzero(weight.ravel() > 0)
        n_items = len(cells)
    else:
        n_items = len(X) if (weight > 0).any() else 0
    if n_items == 0:
        raise ValueError("no cell to predict: every weight is zero")
    # positions that weigh nothing in the whole table (the target-only objective: all but
    # the target) are never computed; a step's position sample leaves out more
    weighted = np.flatnonzero((weight > 0).any(axis=0))
    fixed = None if len(weighted) == L else weighted
    sample = None
    if method == "single_pass" and max_positions is not None and L > max_positions:
        sample = PositionSample(seq_len=L, max_positions=max_positions, always=always_predict)
        if not np.isin(sample.others, weighted).any():
            sample = None

    def corrupt(x: np.ndarray, s: Soft | None) -> tuple[np.ndarray, Soft | None]:
        # NOTE: not in the paper: context cells dropped at random (x is a fresh copy)
        if not corruption:
            return x, s
        drop = rng.random(x.shape) < corruption
        x[drop] = cfg.mask_id
        return x, None if s is None else Soft(s.upper, np.where(drop, 0, s.frac))

    def batch(items: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, Soft | None,
                                          np.ndarray | None]:
        if method == "single_pass":
            w = weight[items].T.astype(np.float32)
            queries = fixed
            if sample is not None:
                drawn = sample.draw(rng)
                w = sample.apply(w, drawn)
                queries = np.intersect1d(np.union1d(sample.always, drawn), weighted)
            x, s = corrupt(X[items].T, soft.take(items) if soft is not None else None)
            return x, target[items].T, w, s, queries
        rows, cell = np.divmod(cells[items], L)   # one cell per copy: the others weigh 0
        w = np.zeros((L, len(items)), np.float32)
        w[cell, np.arange(len(items))] = 1
        x, s = corrupt(X[rows].T, soft.take(rows) if soft is not None else None)
        return x, target[rows].T, w, s, fixed

    if device is None:
        trainer: Trainer = NumpyTrainer(model, classes, lr=lr, rng=rng)
    else:
        from wordexperts.tabular.torch_backend import TorchTrainer

        trainer = TorchTrainer(model, classes, lr=lr, rng=rng, device=device)

    def step(items: np.ndarray, lr_scale: float) -> tuple[float, float]:
        x, t, w, s, queries = batch(items)
        total = float(w.sum())
        if total == 0:
            return 0.0, 0.0
        return trainer.step(x, t, w, lr * lr_scale, s, queries), total

    validate = None
    if validation is not None:
        Xv, tv, wv = (np.asarray(a) for a in validation[:3])
        soft_v = validation.soft
        Xv = _check_ids(Xv, model, name="validation X")
        if tv.shape != Xv.shape or wv.shape != Xv.shape:
            raise ValueError(f"validation target and weight must have its X's shape {Xv.shape}")
        _check_targets(tv, classes, "validation target")
        if not (wv > 0).any():
            raise ValueError("no validation cell to predict: every validation weight is zero")
        rows = _eval_rows(cfg, classes)
        scored = np.flatnonzero((wv > 0).any(axis=0))
        queries_v = None if len(scored) == L else scored

        def validate() -> float:
            total = count = 0.0
            for start in range(0, len(Xv), rows):
                part = np.arange(start, min(start + rows, len(Xv)))
                w = wv[part].T.astype(np.float32)
                if w.sum() > 0:
                    total += trainer.evaluate(Xv[part].T, tv[part].T, w,
                                              soft_v.take(part) if soft_v is not None else None,
                                              queries_v) * float(w.sum())
                    count += float(w.sum())
            return total / count
    elif patience is not None:
        raise ValueError("patience (early stopping) needs validation rows")

    with single_thread():
        history = run_loop(
            n_items=n_items, batch_size=batch_size, step=step, rng=rng, epochs=epochs,
            max_steps=max_steps,
            schedule=linear_warmup_decay(WARMUP) if lr_schedule == "linear" else None,
            validate=validate, eval_every=eval_every, patience=patience,
            on_best=trainer.snapshot if patience is not None else None,
            progress=progress, desc=desc or f"fit ({method})",
        )
        if patience is not None and history.best_step is not None:
            trainer.restore()
    trainer.write(model)
    model.eval()
    return history


def _check_ids(X: np.ndarray, model: BidirectionalAttention, *, name: str = "X") -> np.ndarray:
    """``X`` as given (no int64 copy), validated by the core check on its column extremes."""
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[0] == 0 or X.dtype.kind not in "iu":
        as_ids(X, model.config, name=name)            # raises the core's message
        raise ValueError(f"{name} must be a non-empty 2-D array of integer word ids")
    as_ids(np.stack([X.min(0), X.max(0)]).astype(np.int64), model.config, name=name)
    return X


def _check_targets(target: np.ndarray, classes: OutputClasses, name: str) -> None:
    if target.dtype.kind not in "iu":
        raise ValueError(f"{name} must hold integer class indices, got dtype {target.dtype}")
    low, high = target.min(0), target.max(0)
    bad = np.flatnonzero((low < 0) | (high >= classes.sizes))
    if len(bad):
        i = int(bad[0])
        raise ValueError(f"{name} at position {i} must lie in 0..{classes.sizes[i] - 1} "
                         f"(its class count), got {int(low[i])}..{int(high[i])}")


def _eval_rows(cfg, classes: OutputClasses) -> int:
    """Rows per evaluation chunk: the gates (H L L) and logits (K) of a row within CHUNK."""
    per_row = max(cfg.n_heads * cfg.seq_len ** 2, classes.largest * 4, 1)
    return int(min(4096, max(128, CHUNK // per_row)))
