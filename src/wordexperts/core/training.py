"""Masked-language-model training: the pseudo-likelihood ``mean_i -log p(x_i | x_-i)``.

Two methods with the same objective value and gradients (docs/paper.md section 3):

    "copies"       the paper's way: each row gives L masked copies; a batch holds
                   ``batch_size`` copies and each copy predicts its masked position.
    "single_pass"  a batch holds ``batch_size`` rows and each row predicts all L positions
                   from one pass (one layer only): L times fewer steps per epoch.
"""

from __future__ import annotations

import sys

import numpy as np
import torch
from torch import nn

from wordexperts.core.attention import Method, as_ids, masked_copies
from wordexperts.core.loop import run_loop


def mlm_loss(model: nn.Module, x: torch.Tensor, *, method: Method = "single_pass"
             ) -> torch.Tensor:
    """Mean over all positions of ``-log p(x_i | x_-i)`` for a batch of rows ``x`` (B, L).

    Both methods give the same number (and gradients): ``"single_pass"`` computes it from
    one pass over the rows, ``"copies"`` from the ``L`` masked copies of each row.
    """
    if method == "single_pass":
        logits = model.masked_logits(x, method="single_pass")                  # (B, L, V)
        # classes on dim 1: PyTorch's CPU log-softmax is slow over a short last dimension
        return nn.functional.cross_entropy(logits.transpose(1, 2), x)
    if method == "copies":
        b, length = x.shape
        copies = masked_copies(x, model.config.mask_id).flatten(0, 1)          # (B*L, L)
        return copy_loss(model, copies, torch.arange(length).repeat(b), x.flatten())
    raise ValueError(f"method must be 'single_pass' or 'copies', got {method!r}")


def copy_loss(model: nn.Module, copies: torch.Tensor, position: torch.Tensor,
              target: torch.Tensor) -> torch.Tensor:
    """Mean ``-log p`` of ``target`` at the masked ``position`` of each copy (N, L)."""
    logits = model(copies)[torch.arange(len(copies)), position]
    return nn.functional.cross_entropy(logits, target)


def check_training_args(*, method: str, epochs: int, batch_size: int, lr: float) -> None:
    """Raise ``ValueError`` naming the first invalid training argument."""
    if method not in ("single_pass", "copies"):
        raise ValueError(f"method must be 'single_pass' or 'copies', got {method!r}")
    for arg, value in (("epochs", epochs), ("batch_size", batch_size)):
        if not isinstance(value, int | np.integer) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{arg} must be a positive integer, got {value!r}")
    if not lr > 0:
        raise ValueError(f"lr must be positive, got {lr!r}")


def fit_mlm(
    model: nn.Module,
    X: torch.Tensor | np.ndarray,
    *,
    method: Method = "single_pass",
    epochs: int = 200,
    batch_size: int = 128,
    lr: float = 1e-3,
    seed: int = 0,
    progress: bool | None = None,
) -> list[float]:
    """Fit ``model`` with Adam on the MLM objective; return the mean loss of each epoch.

    ``X``: word ids (N, L) in ``0..V-1``: a tensor, an array or a DataFrame of integer ids.
    ``"copies"`` shuffles the N*L (row, position) pairs and takes ``batch_size`` copies a
    step, as the paper did; ``"single_pass"`` shuffles rows and takes ``batch_size`` rows (N*L
    predictions per epoch either way). ``progress``: a bar over epochs; ``None`` (default)
    shows it only when standard error is a terminal, so logs stay short.

    ``seed`` fixes the shuffling and the dropout draws, not the initial weights: training
    starts from the weights ``model`` has (set ``torch.manual_seed`` before building it). The
    same seed and the same initial weights give the same result.

    >>> from wordexperts.core.attention import AttentionConfig, BidirectionalAttention
    >>> _ = torch.manual_seed(0)
    >>> model = BidirectionalAttention(AttentionConfig(vocab_size=4, seq_len=3, n_heads=2))
    >>> X = np.random.default_rng(0).integers(0, 4, size=(64, 3))
    >>> history = fit_mlm(model, X, epochs=3, batch_size=16, progress=False)
    >>> len(history), history[-1] < history[0]
    (3, True)
    """
    X = as_ids(X, model.config, name="X", allow_mask=False)
    check_training_args(method=method, epochs=epochs, batch_size=batch_size, lr=lr)
    if method == "single_pass" and not model.single_pass_exact:
        raise ValueError(
            f"method='single_pass' is exact for one layer; model has "
            f"n_layers={model.config.n_layers}: use method='copies'"
        )

    torch.manual_seed(seed)  # dropout draws
    n, length = X.shape
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, fused=True)

    def step(batch: np.ndarray, lr_scale: float) -> tuple[float, float]:
        items = torch.from_numpy(batch)
        if method == "single_pass":
            loss = mlm_loss(model, X[items])
        else:  # items are (row, position) pairs: one masked copy each
            rows, position = items // length, items % length
            copies = X[rows]  # advanced indexing: a copy
            copies[torch.arange(len(items)), position] = model.config.mask_id
            loss = copy_loss(model, copies, position, X[rows, position])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.item(), float(len(items))

    model.train()
    history = run_loop(
        n_items=n if method == "single_pass" else n * length, batch_size=batch_size, step=step,
        rng=np.random.default_rng(seed), epochs=epochs, desc=f"fit_mlm ({method})",
        progress=sys.stderr.isatty() if progress is None else progress,
    )
    model.eval()
    return history.loss
