"""Fast MLM training of a one-block model: a hand-written forward and backward in NumPy.

:func:`wordexperts.core.training.fit_mlm` trains any model with PyTorch autograd; at the paper's
tabular sizes (6 positions, 20 dimensions) a step costs about 5 ms whatever the batch, nearly
all of it per-operation overhead. For one block the single-pass
objective (paper.md section 3) has a short closed-form gradient, computed here over a flat
parameter buffer in a batch-last layout (every array's last axis runs over the rows, so the
short axes — positions, heads, features — never form the inner loop), with Adam on the flat
buffer. Same loss and gradient as :func:`wordexperts.core.training.mlm_loss` (tested in float64).

Beyond ``mlm_loss`` the objective takes what a table needs: a weight per cell (0 for a
missing cell, or for every column but the target) and, per position, the words the softmax
runs over (a column's own categories). Dropout acts where the paper's Keras block has it: on
the attention output and on the feed-forward output, before each residual sum.

Shapes: ``x``, ``target``, ``weight``: (L, B) — batch last; ``classes``: (L, K) word ids.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import torch
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from wordexperts.core.attention import BidirectionalAttention, as_ids
from wordexperts.core.training import check_training_args

Method = Literal["single_pass", "copies"]
#: Share of the steps over which ``lr_schedule="linear"`` warms the learning rate up.
WARMUP = 0.05


class OneBlockMLM:
    """The weighted single-pass MLM loss of a one-block model and its gradient, in NumPy.

    Built from a model (its parameter layout and config); evaluated on a flat parameter
    vector ``theta`` (:meth:`flatten`), so an optimizer updates one buffer. ``classes``
    (L, K) lists the words of position ``i``'s softmax (pad with -1); default: all words.

    >>> from wordexperts.core.attention import AttentionConfig
    >>> _ = torch.manual_seed(0)
    >>> model = BidirectionalAttention(AttentionConfig(vocab_size=4, seq_len=3, n_heads=2))
    >>> objective = OneBlockMLM(model, dtype=np.float64)
    >>> x = np.array([[0, 1], [2, 3], [1, 1]])          # two rows, batch last
    >>> loss = objective.loss_and_grad(objective.flatten(model), x, x, np.ones((3, 2)))
    >>> from wordexperts.core.training import mlm_loss
    >>> round(loss, 10) == round(mlm_loss(model.double(), torch.tensor(x.T)).item(), 10)
    True
    """

    def __init__(self, model: BidirectionalAttention, *, classes: np.ndarray | None = None,
                 dtype: type = np.float32) -> None:
        cfg = model.config
        if cfg.n_layers != 1:
            raise ValueError(f"OneBlockMLM needs a one-layer model, got n_layers={cfg.n_layers}")
        self.config = cfg
        self.dtype = np.dtype(dtype)
        self.shapes = {name: tuple(p.shape) for name, p in model.named_parameters()}
        sizes = [math.prod(s) for s in self.shapes.values()]
        self.offsets = dict(zip(self.shapes, np.cumsum([0, *sizes[:-1]]).tolist(), strict=True))
        if classes is None:
            classes = np.tile(np.arange(cfg.vocab_size), (cfg.seq_len, 1))
        classes = np.asarray(classes)
        if classes.ndim != 2 or classes.shape[0] != cfg.seq_len:
            raise ValueError(f"classes must have shape (seq_len={cfg.seq_len}, K), "
                             f"got {classes.shape}")
        if classes.max() >= cfg.vocab_size:
            raise ValueError(f"classes must be word ids < vocab_size={cfg.vocab_size}")
        valid = classes.ravel() >= 0
        # one-hot rows picking each position's output words, all-zero rows for padding
        self.select = np.zeros((classes.size, cfg.vocab_size), dtype=self.dtype)
        self.select[np.flatnonzero(valid), classes.ravel()[valid]] = 1
        self.pad = np.where(classes < 0, -np.inf, 0.0).astype(self.dtype)  # (L, K)
        self._named: dict[int, tuple[np.ndarray, dict[str, np.ndarray]]] = {}

    def flatten(self, model: BidirectionalAttention) -> np.ndarray:
        """The model's parameters as one flat vector (in ``named_parameters`` order)."""
        return np.concatenate([p.detach().cpu().numpy().ravel() for p in model.parameters()]
                              ).astype(self.dtype)

    def unflatten(self, theta: np.ndarray, model: BidirectionalAttention) -> None:
        """Copy the flat vector ``theta`` into the model's parameters."""
        with torch.no_grad():
            for name, p in model.named_parameters():
                p.copy_(torch.from_numpy(np.ascontiguousarray(self.view(theta, name))))

    def view(self, buffer: np.ndarray, name: str) -> np.ndarray:
        start = self.offsets[name]
        shape = self.shapes[name]
        return buffer[start:start + math.prod(shape)].reshape(shape)

    def named(self, buffer: np.ndarray) -> dict[str, np.ndarray]:
        """Views of every parameter in ``buffer``, kept for the buffers a fit reuses."""
        hit = self._named.get(id(buffer))
        if hit is None or hit[0] is not buffer:
            if len(self._named) > 3:
                self._named.clear()
            hit = self._named[id(buffer)] = (buffer, {n: self.view(buffer, n) for n in self.shapes})
        return hit[1]

    def loss_and_grad(self, theta: np.ndarray, x: np.ndarray, target: np.ndarray,
                      weight: np.ndarray, grad: np.ndarray | None = None,
                      rng: np.random.Generator | None = None) -> float:
        """Weighted mean over cells of ``-log p(target_i | x, x_i masked)``; fills ``grad``.

        ``x``: word ids (L, B), the mask id allowed (a missing cell); ``target``: class index
        of each cell into its position's ``classes`` row; ``weight``: (L, B), need not be
        normalized. ``rng``: dropout draws (``None``: no dropout, as in evaluation).
        """
        cfg = self.config
        dt = self.dtype
        L, d, H = cfg.seq_len, cfg.d_model, cfg.n_heads
        dh = d // H
        scale = 1.0 / math.sqrt(dh)
        B = x.shape[1]
        N = L * B
        M = cfg.mask_id
        bert = cfg.block == "bert"
        diag = np.arange(L)
        p = self.named(theta)
        E, P = p["word_embeddings.weight"], p["position_embeddings"]
        Win = p["layers.0.self_attn.in_proj_weight"]
        bin_ = p["layers.0.self_attn.in_proj_bias"]
        Wo, bo = p["layers.0.self_attn.out_proj.weight"], p["layers.0.self_attn.out_proj.bias"]
        drop = cfg.dropout if rng is not None else 0.0

        # ---- forward. Arrays are (features..., position, batch); N = L * B columns.
        tx = np.take(E.T, x, axis=1) + P.T[:, :, None]                  # e_j: (d, L, B)
        txf = tx.reshape(d, N)
        m = E[M] + P                                                    # m_i: (L, d)
        qkv_m = Win @ m.T + bin_[:, None]                               # (3d, L)
        qm, km, vm = (qkv_m[k * d:(k + 1) * d].reshape(H, dh, L) for k in range(3))
        kv = Win[d:] @ txf + bin_[d:, None]                             # (2d, N)
        kx = kv[:d].reshape(H, dh, N)
        vx = kv[d:].reshape(H, dh, L, B)
        # gate scores of query i (always the mask's) on key j; key j = i is the mask's
        s = ((qm.transpose(0, 2, 1) * scale) @ kx).reshape(H, L, L, B)  # (H, Li, Lj, B)
        s[:, diag, diag, :] = ((qm * km).sum(1) * scale)[:, :, None]
        s -= s.max(2, keepdims=True)
        a = np.exp(s, out=s)
        a /= a.sum(2, keepdims=True)                                    # pi_ij
        a_self = a[:, diag, diag, :]                                    # (H, L, B)
        # mixture sum_j pi_ij v_j, with v_i swapped for the mask's value at j = i
        ctx = np.einsum("hijb,hkjb->hkib", a, vx)
        ctx += a_self[:, None] * (vm[..., None] - vx)                   # (H, dh, L, B)
        ctxf = ctx.reshape(d, N)
        z = Wo @ ctxf + bo[:, None]                                     # (d, N)
        if bert:
            W1, b1 = p["layers.0.linear1.weight"], p["layers.0.linear1.bias"]
            W2, b2 = p["layers.0.linear2.weight"], p["layers.0.linear2.bias"]
            g1, be1 = p["layers.0.norm1.weight"], p["layers.0.norm1.bias"]
            g2, be2 = p["layers.0.norm2.weight"], p["layers.0.norm2.bias"]
            if drop:
                keep = (rng.random((2, d, N), dtype=dt) >= drop) * dt.type(1 / (1 - drop))
                z *= keep[0]
            r1 = (z.reshape(d, L, B) + m.T[:, :, None]).reshape(d, N)   # residual: m_i
            xh1, rstd1 = _normalize(r1, cfg.ln_eps)
            y1 = g1[:, None] * xh1 + be1[:, None]
            f1 = W1 @ y1 + b1[:, None]
            relu = f1 > 0
            f1 *= relu
            f2 = W2 @ f1 + b2[:, None]
            if drop:
                f2 *= keep[1]
            xh2, rstd2 = _normalize(y1 + f2, cfg.ln_eps)
            h = g2[:, None] * xh2 + be2[:, None]
        else:
            h = z
        # output over each position's classes: logits (L, K, B)
        b_out = (self.select @ p["output.weight"]).reshape(L, -1, d)    # (L, K, d)
        c_out = (self.select @ p["output.bias"]).reshape(L, -1) + self.pad
        hl = h.reshape(d, L, B).transpose(1, 0, 2)                      # (L, d, B)
        logits = b_out @ hl + c_out[:, :, None]
        logits -= logits.max(1, keepdims=True)
        prob = np.exp(logits)
        total = prob.sum(1)                                             # (L, B)
        prob /= total[:, None]
        w = (weight / weight.sum()).astype(dt)
        li, bi = np.indices((L, B), sparse=True)
        loss = float((w * (np.log(total) - logits[li, target, bi])).sum())
        if grad is None:
            return loss

        # ---- backward
        g = self.named(grad)
        dlog = prob
        dlog *= w[:, None]
        dlog[li, target, bi] -= w
        g["output.weight"][:] = self.select.T @ (dlog @ hl.transpose(0, 2, 1)).reshape(-1, d)
        g["output.bias"][:] = self.select.T @ dlog.sum(2).ravel()
        dh_ = (b_out.transpose(0, 2, 1) @ dlog).transpose(1, 0, 2).reshape(d, N)
        if bert:
            g["layers.0.norm2.weight"][:] = (dh_ * xh2).sum(1)
            g["layers.0.norm2.bias"][:] = dh_.sum(1)
            dr2 = _normalize_backward(dh_ * g2[:, None], xh2, rstd2)
            df2 = dr2 * keep[1] if drop else dr2
            g["layers.0.linear2.weight"][:] = df2 @ f1.T
            g["layers.0.linear2.bias"][:] = df2.sum(1)
            df1 = W2.T @ df2
            df1 *= relu
            g["layers.0.linear1.weight"][:] = df1 @ y1.T
            g["layers.0.linear1.bias"][:] = df1.sum(1)
            dy1 = dr2 + W1.T @ df1
            g["layers.0.norm1.weight"][:] = (dy1 * xh1).sum(1)
            g["layers.0.norm1.bias"][:] = dy1.sum(1)
            dr1 = _normalize_backward(dy1 * g1[:, None], xh1, rstd1)
            dm = dr1.reshape(d, L, B).sum(2)                            # (d, L)
            dz = dr1 * keep[0] if drop else dr1
        else:
            dm = np.zeros((d, L), dt)
            dz = dh_
        g["layers.0.self_attn.out_proj.weight"][:] = dz @ ctxf.T
        g["layers.0.self_attn.out_proj.bias"][:] = dz.sum(1)
        dctx = (Wo.T @ dz).reshape(H, dh, L, B)
        da = np.einsum("hkib,hkjb->hijb", dctx, vx)                     # (H, Li, Lj, B)
        da[:, diag, diag, :] = (dctx * vm[..., None]).sum(1)
        dkv = np.empty((2 * d, N), dt)
        dvx = dkv[d:].reshape(H, dh, L, B)
        np.einsum("hijb,hkib->hkjb", a, dctx, out=dvx)
        a_dctx = a_self[:, None] * dctx
        dvx -= a_dctx
        ds = a * (da - (a * da).sum(2, keepdims=True))                  # softmax backward
        ds_self = ds[:, diag, diag, :].sum(2) * scale                   # (H, L)
        ds[:, diag, diag, :] = 0
        ds = ds.reshape(H, L, N)
        dkv[:d] = ((qm * scale) @ ds).reshape(d, N)
        dqm = (ds @ kx.transpose(0, 2, 1)).transpose(0, 2, 1) * scale + ds_self[:, None] * km
        dkm = ds_self[:, None] * qm
        dqkv_m = np.concatenate([dqm.reshape(d, L), dkm.reshape(d, L),
                                 a_dctx.sum(3).reshape(d, L)])         # (3d, L)
        g_win = g["layers.0.self_attn.in_proj_weight"]
        g_bin = g["layers.0.self_attn.in_proj_bias"]
        g_win[:] = dqkv_m @ m
        g_win[d:] += dkv @ txf.T
        g_bin[:] = dqkv_m.sum(1)
        g_bin[d:] += dkv.sum(1)
        dtx = Win[d:].T @ dkv                                           # (d, N)
        dm += Win.T @ dqkv_m
        onehot = np.zeros((N, M + 1), dt)
        onehot[np.arange(N), x.ravel()] = 1
        g_e = g["word_embeddings.weight"]
        g_e[:] = (dtx @ onehot).T
        g_e[M] += dm.sum(1)
        g["position_embeddings"][:] = (dtx.reshape(d, L, B).sum(2) + dm).T
        return loss


def _mean0(a: np.ndarray) -> np.ndarray:
    """Mean over axis 0, as a matrix-vector product (faster than ``mean(0)`` here)."""
    return np.full(a.shape[0], 1.0 / a.shape[0], a.dtype) @ a


def _normalize(r: np.ndarray, eps: float) -> tuple[np.ndarray, np.ndarray]:
    """LayerNorm over axis 0 without the affine part: ``(r - mean) / std`` and ``1 / std``."""
    c = r - _mean0(r)
    rstd = 1.0 / np.sqrt(_mean0(c * c) + eps)
    c *= rstd
    return c, rstd


def _normalize_backward(dx: np.ndarray, xh: np.ndarray, rstd: np.ndarray) -> np.ndarray:
    return rstd * (dx - _mean0(dx) - xh * _mean0(dx * xh))


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
    classes: np.ndarray | None = None,
    method: Method = "single_pass",
    epochs: int = 200,
    batch_size: int = 128,
    lr: float = 1e-3,
    lr_schedule: Literal["constant", "linear"] = "constant",
    rng: np.random.Generator | None = None,
    progress: bool = False,
) -> list[float]:
    """Fit a one-block ``model`` with Adam on the weighted MLM objective; per-epoch losses.

    ``X``: word ids (N, L), the mask id marking missing cells. ``target``: each cell's class
    index into ``classes[i]`` (default ``X``, with ``classes`` all words); ``weight`` (N, L):
    each cell's weight as a prediction target (default 1, 0 where ``X`` is the mask).
    ``method="single_pass"`` takes ``batch_size`` rows a step, each predicting all its
    cells; ``"copies"`` takes ``batch_size`` (row, cell) pairs, the paper's masked copies.
    ``lr_schedule="linear"`` raises the learning rate linearly from 0 to ``lr`` over the first
    :data:`WARMUP` of the steps, then lowers it linearly to 0 (as ``lr * (1 - step / steps)``).
    ``rng`` draws the shuffling and dropout. Runs with one BLAS thread (faster at these
    sizes) and leaves the model in eval mode.
    """
    cfg = model.config
    X = as_ids(X, cfg, name="X").numpy()  # missing cells may hold the mask id
    check_training_args(method=method, epochs=epochs, batch_size=batch_size, lr=lr)
    if lr_schedule not in ("constant", "linear"):
        raise ValueError(f"lr_schedule must be 'constant' or 'linear', got {lr_schedule!r}")
    rng = rng if rng is not None else np.random.default_rng(0)
    target = X if target is None else np.asarray(target)
    weight = (X != cfg.mask_id) if weight is None else np.asarray(weight)
    if target.shape != X.shape or weight.shape != X.shape:
        raise ValueError(f"target and weight must have X's shape {X.shape}")
    objective = OneBlockMLM(model, classes=classes)
    # batch-last copies, so a batch is a column gather
    xt, tt = np.ascontiguousarray(X.T), np.ascontiguousarray(target.T)
    wt = np.ascontiguousarray(weight.T, dtype=np.float32)
    cells = np.flatnonzero(wt.T.ravel() > 0)          # the (row, cell) pairs, for copies
    if len(cells) == 0:
        raise ValueError("no cell to predict: every weight is zero")

    theta = objective.flatten(model)
    grad = np.zeros_like(theta)
    adam = _Adam(theta, lr=lr)
    per_epoch = len(X) if method == "single_pass" else len(cells)
    total_steps = epochs * -(-per_epoch // batch_size)
    dropout = rng if cfg.dropout > 0 else None
    history: list[float] = []
    bar = tqdm(range(epochs), desc="fit", disable=not progress, unit="epoch")
    with threadpool_limits(1):
        for _ in bar:
            total, count = 0.0, 0
            if method == "single_pass":
                order = rng.permutation(len(X))
            else:
                order = cells[rng.permutation(len(cells))]
            for start in range(0, len(order), batch_size):
                batch = order[start:start + batch_size]
                if method == "single_pass":
                    w = wt[:, batch]
                else:   # one cell per copy: the row's other cells get weight 0
                    rows, cell = np.divmod(batch, cfg.seq_len)
                    w = np.zeros((cfg.seq_len, len(batch)), np.float32)
                    w[cell, np.arange(len(batch))] = 1
                    batch = rows
                if not w.any():
                    continue
                loss = objective.loss_and_grad(theta, xt[:, batch], tt[:, batch], w, grad,
                                               dropout)
                if lr_schedule == "linear":
                    done = adam.t / total_steps
                    adam.lr = lr * (done / WARMUP if done < WARMUP else 1 - done)
                adam.step(grad)
                total += loss * float(w.sum())
                count += float(w.sum())
            history.append(total / count)
            bar.set_postfix(loss=f"{history[-1]:.4f}")
            if not math.isfinite(history[-1]):
                raise FloatingPointError(f"training diverged (loss {history[-1]}): lower lr")
    objective.unflatten(theta, model)
    model.eval()
    return history


class _Adam:
    """Adam (as ``torch.optim.Adam``, default betas and eps) on one flat buffer, in place."""

    def __init__(self, theta: np.ndarray, *, lr: float, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8) -> None:
        self.theta, self.lr, self.betas, self.eps = theta, lr, betas, eps
        self.m = np.zeros_like(theta)
        self.v = np.zeros_like(theta)
        self.t = 0
        self.buffer = np.empty_like(theta)

    def step(self, grad: np.ndarray) -> None:
        b1, b2 = self.betas
        self.t += 1
        self.m *= b1
        self.m += (1 - b1) * grad
        self.v *= b2
        np.multiply(grad, grad, out=self.buffer)
        self.buffer *= 1 - b2
        self.v += self.buffer
        np.sqrt(self.v, out=self.buffer)
        self.buffer *= 1 / math.sqrt(1 - b2 ** self.t)
        self.buffer += self.eps
        np.divide(self.m, self.buffer, out=self.buffer)
        self.buffer *= self.lr / (1 - b1 ** self.t)
        self.theta -= self.buffer
