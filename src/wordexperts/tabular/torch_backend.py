"""The one-block tabular MLM objective in PyTorch: the NumPy trainer's model on any device.

Same objective as :class:`wordexperts.tabular.one_block.OneBlockMLM` (tested equal in loss and
gradient, float64): the single pass of the core model
(:meth:`wordexperts.core.attention.Block.single_pass`, docs/paper.md section 3), each position's
softmax restricted to its own words (gathered output rows, one batched product per group of
positions with the same class count), and each cell weighted. Dropout at the paper's Keras
sites only — the attention output and the feed-forward output — as the NumPy trainer; the
core block's two other dropout sites (the gates and the feed-forward hidden layer) are off
while this objective runs. Used by
:func:`~wordexperts.tabular.trainer.fit_one_block` with ``device="cpu"``, ``"cuda"``, ...

Shapes here are batch first, as in PyTorch: ``x``, ``target``, ``weight``: (B, L).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch

from wordexperts.core.attention import BidirectionalAttention
from wordexperts.tabular.encoding import Soft
from wordexperts.tabular.positions import OutputClasses

__all__ = ["TorchOneBlockMLM", "TorchTrainer"]


@contextmanager
def keras_dropout_sites(model: BidirectionalAttention) -> Iterator[None]:
    """Turn off the block's gate and feed-forward-hidden dropout (not in the paper's Keras
    block) for the duration; the attention-output and feed-forward-output sites stay."""
    block = model.layers[0]
    off = [block.self_attn.dropout]
    if model.config.block == "bert":
        off.append(block.dropout)
    saved = [m.p for m in off]
    for m in off:
        m.p = 0.0
    try:
        yield
    finally:
        for m, p in zip(off, saved, strict=True):
            m.p = p


class TorchOneBlockMLM:
    """The weighted per-column MLM loss of a one-block ``model``, differentiable by autograd.

    >>> from wordexperts.core.attention import AttentionConfig
    >>> _ = torch.manual_seed(0)
    >>> model = BidirectionalAttention(AttentionConfig(vocab_size=4, seq_len=3, n_heads=2))
    >>> mlm = TorchOneBlockMLM(model, OutputClasses([np.arange(4)] * 3))
    >>> x = torch.tensor([[0, 2, 1], [1, 3, 1]])
    >>> from wordexperts.core.training import mlm_loss
    >>> bool(torch.isclose(mlm.loss(x, x, torch.ones(2, 3)), mlm_loss(model, x)))
    True
    """

    def __init__(self, model: BidirectionalAttention, classes: OutputClasses) -> None:
        if model.config.n_layers != 1:
            raise ValueError(f"needs a one-layer model, got n_layers={model.config.n_layers}")
        self.model = model
        device = model.output.weight.device
        self.groups = [(torch.from_numpy(positions).to(device),
                        torch.from_numpy(classes.words[flat]).to(device))
                       for positions, flat in classes.groups]

    def hidden(self, x: torch.Tensor, upper: torch.Tensor | None = None,
               frac: torch.Tensor | None = None) -> torch.Tensor:
        """The block's output at every position with that position masked: (B, L, d)."""
        model = self.model
        with keras_dropout_sites(model):
            return model.layers[0].single_pass(model.embed(x, upper, frac),
                                               model.mask_embeddings(), model.config.absent(x))

    def loss(self, x: torch.Tensor, target: torch.Tensor, weight: torch.Tensor,
             upper: torch.Tensor | None = None, frac: torch.Tensor | None = None
             ) -> torch.Tensor:
        """Weighted mean over cells of ``-log p(target | row, cell masked)``.

        ``x``: word ids (B, L), mask allowed; ``target``: class index into each position's
        words; ``weight``: (B, L); ``upper``, ``frac`` (B, L): cells read between two words
        (:meth:`BidirectionalAttention.embed`).
        """
        h = self.hidden(x, upper, frac)
        W, c = self.model.output.weight, self.model.output.bias
        total = h.new_zeros(())
        for positions, words in self.groups:                          # words: (G, K)
            logits = torch.einsum("bgd,gkd->bgk", h[:, positions], W[words]) + c[words]
            picked = logits.log_softmax(-1).gather(-1, target[:, positions, None])[..., 0]
            total = total - (picked * weight[:, positions]).sum()
        return total / weight.sum()


class TorchTrainer:
    """What :func:`~wordexperts.tabular.trainer.fit_one_block` steps: ``torch.optim.Adam``
    on :class:`TorchOneBlockMLM`, on ``device``. Dropout draws come from torch's generator,
    seeded from ``rng``: the same seed gives the same fit (on one device)."""

    def __init__(self, model: BidirectionalAttention, classes: OutputClasses, *, lr: float,
                 rng: np.random.Generator, device: str) -> None:
        try:
            self.device = torch.device(device)
        except (RuntimeError, TypeError) as exc:
            raise ValueError(f"device must be None (NumPy) or a torch device such as 'cpu' or "
                             f"'cuda', got {device!r}") from exc
        torch.manual_seed(int(rng.integers(2**63 - 1)))
        self.model = model.to(self.device)
        self.mlm = TorchOneBlockMLM(model, classes)
        self.optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        self.best: dict[str, torch.Tensor] | None = None

    def _tensors(self, x: np.ndarray, target: np.ndarray, weight: np.ndarray,
                 soft: Soft | None) -> tuple[torch.Tensor | None, ...]:
        """Batch-last NumPy arrays (L, B) to batch-first tensors on the device."""
        dtype = self.model.output.weight.dtype

        def ids(a: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(a.T.astype(np.int64)).to(self.device)

        def reals(a: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(np.ascontiguousarray(a.T)).to(self.device, dtype)

        return (ids(x), ids(target), reals(weight),
                None if soft is None else ids(soft.upper),
                None if soft is None else reals(soft.frac))

    def step(self, x: np.ndarray, target: np.ndarray, weight: np.ndarray, lr: float,
             soft: Soft | None = None, queries: np.ndarray | None = None) -> float:
        # ``queries`` (the NumPy trainer's saving) is not needed: a position weighing 0 adds 0
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.model.train()
        loss = self.mlm.loss(*self._tensors(x, target, weight, soft))
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss.item()

    @torch.no_grad()
    def evaluate(self, x: np.ndarray, target: np.ndarray, weight: np.ndarray,
                 soft: Soft | None = None, queries: np.ndarray | None = None) -> float:
        self.model.eval()
        return self.mlm.loss(*self._tensors(x, target, weight, soft)).item()

    def snapshot(self) -> None:
        self.best = {k: v.detach().clone() for k, v in self.model.state_dict().items()}

    def restore(self) -> None:
        self.model.load_state_dict(self.best)

    def write(self, model: BidirectionalAttention) -> None:
        model.to("cpu")
