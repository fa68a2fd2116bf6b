"""The minibatch loop: epochs of shuffled batches, a step budget, validation, early stopping.

Framework-neutral: the loop draws the order of the items each epoch, cuts it into batches and
calls a ``step`` function on each; the caller's step computes the loss and updates its own
parameters (NumPy, PyTorch, anything). Optionally, every ``eval_every`` steps, it calls
``validate`` (a held-out loss) and stops when that loss has not improved for ``patience``
checks. It knows nothing of models::

    for epoch:                                   order = rng.permutation(n_items)
        for batch in order[k * batch_size : (k + 1) * batch_size]:
            loss, weight = step(batch, schedule(steps_done / total_steps))
            every eval_every steps: val = validate(); on_best() if it improved; stop?

Training length: at most ``epochs`` passes over the items and at most ``max_steps`` steps,
whichever ends first (at least one of the two must be given). ``schedule`` maps the share of
the planned steps already done to a learning-rate factor (:func:`linear_warmup_decay`), which
the step applies to its optimizer.

>>> import numpy as np
>>> seen = []
>>> def step(batch, lr_scale):
...     seen.append(len(batch))
...     return 1.0 / len(seen), float(len(batch))
>>> history = run_loop(n_items=10, batch_size=4, step=step, rng=np.random.default_rng(0),
...                    epochs=2)
>>> seen, history.step
([4, 4, 2, 4, 4, 2], [3, 6])
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
from tqdm.auto import tqdm

__all__ = ["History", "linear_warmup_decay", "run_loop"]

#: ``step(batch, lr_scale) -> (mean loss over the batch, its weight)``: ``batch`` holds item
#: indices; the weight (say, the number of predictions) weighs the batch in the period's mean.
#: A batch with weight 0 (nothing to predict) should return ``(0.0, 0.0)`` without updating.
Step = Callable[[np.ndarray, float], tuple[float, float]]


@dataclass
class History:
    """What a :func:`run_loop` did, one entry per check (every ``eval_every`` steps, and at the
    end): ``step`` (steps done), ``epoch`` (passes done, fractional), ``loss`` (weighted mean
    training loss since the previous check), ``val_loss`` (``validate()``, NaN without it).
    ``best_step``: the check with the lowest ``val_loss`` (``None`` without validation);
    ``stopped_early``: whether ``patience`` ended the loop before its budget."""

    step: list[int] = field(default_factory=list)
    epoch: list[float] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    best_step: int | None = None
    stopped_early: bool = False

    def to_dict(self) -> dict:
        """A JSON-ready copy (NaN written as ``None``)."""
        out = asdict(self)
        out["val_loss"] = [None if math.isnan(v) else v for v in self.val_loss]
        return out

    @classmethod
    def from_dict(cls, data: dict) -> History:
        data = dict(data)
        data["val_loss"] = [math.nan if v is None else v for v in data["val_loss"]]
        return cls(**data)


def linear_warmup_decay(warmup: float) -> Callable[[float], float]:
    """Schedule: the factor rises linearly from 0 to 1 over the first ``warmup`` share of the
    steps, then falls linearly to 0 at the end (``1 - done``).

    >>> schedule = linear_warmup_decay(0.1)
    >>> [round(schedule(f), 2) for f in (0.0, 0.05, 0.1, 0.5, 0.9)]
    [0.0, 0.5, 0.9, 0.5, 0.1]
    """
    if not 0 <= warmup < 1:
        raise ValueError(f"warmup must be in [0, 1), got {warmup!r}")

    def schedule(done: float) -> float:
        return done / warmup if done < warmup else 1 - done

    return schedule


def _count(value: int | None, name: str) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int | np.integer) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive integer or None, got {value!r}")
    return int(value)


def planned_steps(*, n_items: int, batch_size: int, epochs: int | None,
                  max_steps: int | None) -> int:
    """The loop's step budget: ``min(epochs * ceil(n_items / batch_size), max_steps)``.

    >>> planned_steps(n_items=2000, batch_size=128, epochs=120, max_steps=None)
    1920
    >>> planned_steps(n_items=200_000, batch_size=128, epochs=120, max_steps=2000)
    2000
    """
    batch_size = _count(batch_size, "batch_size")
    if batch_size is None:
        raise ValueError("batch_size must be a positive integer, got None")
    epochs, max_steps = _count(epochs, "epochs"), _count(max_steps, "max_steps")
    if epochs is None and max_steps is None:
        raise ValueError("give epochs or max_steps (or both): the loop needs a budget")
    if n_items < 1:
        raise ValueError(f"nothing to train on: {n_items} items")
    per_epoch = -(-n_items // batch_size)
    total = epochs * per_epoch if epochs is not None else max_steps
    return min(total, max_steps) if max_steps is not None else total


def run_loop(
    *,
    n_items: int,
    batch_size: int,
    step: Step,
    rng: np.random.Generator,
    epochs: int | None = None,
    max_steps: int | None = None,
    schedule: Callable[[float], float] | None = None,
    validate: Callable[[], float] | None = None,
    eval_every: int | None = None,
    patience: int | None = None,
    on_best: Callable[[], None] | None = None,
    progress: bool = False,
    desc: str = "fit",
) -> History:
    """Run ``step`` over shuffled batches of ``n_items`` items; see the module docs.

    ``eval_every``: steps between checks (default: one epoch's steps). ``patience``: stop
    after that many checks in a row without a lower ``validate()`` (needs ``validate``);
    ``on_best`` is called after each check that lowered it (say, to keep those weights).
    A non-finite training loss raises ``FloatingPointError``. The same ``rng`` state gives
    the same orders; the loop draws nothing else from it.
    """
    total = planned_steps(n_items=n_items, batch_size=batch_size, epochs=epochs,
                          max_steps=max_steps)
    per_epoch = -(-n_items // batch_size)
    eval_every = _count(eval_every, "eval_every") or per_epoch
    patience = _count(patience, "patience")
    if patience is not None and validate is None:
        raise ValueError("patience (early stopping) needs a validate function")
    schedule = schedule or (lambda done: 1.0)
    history = History()
    best, since_best = math.inf, 0
    done, period_loss, period_weight = 0, 0.0, 0.0
    bar = tqdm(total=total, desc=desc, disable=not progress, unit="step")
    while done < total:
        order = rng.permutation(n_items)
        for start in range(0, n_items, batch_size):
            loss, weight = step(order[start:start + batch_size], schedule(done / total))
            done += 1
            period_loss += loss * weight
            period_weight += weight
            if done % eval_every and done < total:
                continue
            mean = period_loss / period_weight if period_weight else math.nan
            if math.isinf(mean) or (period_weight and math.isnan(mean)):
                raise FloatingPointError(f"training diverged (loss {mean}): lower lr")
            val = validate() if validate is not None else math.nan
            history.step.append(done)
            history.epoch.append(done / per_epoch)
            history.loss.append(mean)
            history.val_loss.append(val)
            period_loss, period_weight = 0.0, 0.0
            postfix = {"loss": f"{mean:.4f}"}
            if validate is not None:
                postfix["val_loss"] = f"{val:.4f}"
                if val < best:
                    best, since_best, history.best_step = val, 0, done
                    if on_best is not None:
                        on_best()
                else:
                    since_best += 1
            bar.update(done - bar.n)
            bar.set_postfix(postfix)
            if patience is not None and since_best >= patience:
                history.stopped_early = done < total
                bar.close()
                return history
            if done == total:
                break
    bar.close()
    return history
