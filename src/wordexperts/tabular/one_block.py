"""Fast MLM training of a one-block model: a hand-written forward and backward in NumPy.

:func:`wordexperts.core.training.fit_mlm` trains any model with PyTorch autograd; at the paper's
tabular sizes (6 positions, 20 dimensions) a step costs about 5 ms whatever the batch, nearly
all of it per-operation overhead. For one block the single-pass
objective (docs/paper.md section 3) has a short closed-form gradient, computed here over a flat
parameter buffer in a batch-last layout (every array's last axis runs over the rows, so the
short axes — positions, heads, features — never form the inner loop), with Adam on the flat
buffer. Same loss and gradient as :func:`wordexperts.core.training.mlm_loss` (tested in float64).

Beyond ``mlm_loss`` the objective takes what a table needs: a weight per cell (0 for a
missing cell, or for every column but the target) and, per position, the words its softmax
runs over (a column's own categories: :class:`OutputClasses`). Each position's logits are
computed for its own words only, by gathering their output rows, so a step costs
``B x (sum of the positions' class counts) x d`` for the output layer, not ``B x L x V``.
Positions that weigh nothing in the whole table, or that a step's position sample leaves
out (:class:`PositionSample`), are not computed at all: with the target-only objective a row
costs one query over its ``L`` keys, not ``L`` queries (the attention's ``L^2``), and only
the target's softmax.
Dropout acts where the paper's Keras block has it: on the attention output and on the
feed-forward output, before each residual sum.

Shapes: ``x``, ``target``, ``weight``: (L, B) — batch last; ``target`` holds each cell's
class index into its position's words. :class:`NumpyTrainer` (the objective with Adam) is what
:func:`wordexperts.tabular.trainer.fit_one_block` steps when no torch device is asked for.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from wordexperts.core.attention import BidirectionalAttention
from wordexperts.tabular.encoding import Soft
from wordexperts.tabular.positions import OutputClasses, run_starts

__all__ = ["CHUNK", "NumpyTrainer", "OneBlockMLM"]

#: Elements of the largest logits block computed at once (positions x classes x rows).
CHUNK = 1 << 21


@dataclass
class BlockCache:
    """What :meth:`OneBlockMLM.forward` keeps for :meth:`OneBlockMLM.backward` (batch last)."""

    x: np.ndarray          # (L, B) word ids
    queries: np.ndarray    # the Q positions computed (all L, or the weighted ones)
    soft: Soft | None      # cells between two words
    txf: np.ndarray        # embeddings e_j, (d, N)
    m: np.ndarray          # mask embeddings m_i, (L, d)
    qm: np.ndarray         # masked queries of the Q positions, (H, dh, Q)
    km: np.ndarray
    vm: np.ndarray
    kx: np.ndarray         # keys (H, dh, N)
    vx: np.ndarray         # values (H, dh, L, B)
    a: np.ndarray          # gates pi_ij, (H, Q, Lj, B)
    ctxf: np.ndarray       # mixtures, (d, Q B)
    keep: np.ndarray | None = None   # dropout masks (2, d, Q B), scaled
    xh1: np.ndarray | None = None
    rstd1: np.ndarray | None = None
    y1: np.ndarray | None = None
    f1: np.ndarray | None = None
    relu: np.ndarray | None = None
    xh2: np.ndarray | None = None
    rstd2: np.ndarray | None = None


class OneBlockMLM:
    """The weighted single-pass MLM loss of a one-block model and its gradient, in NumPy.

    Built from a model (its parameter layout and config); evaluated on a flat parameter
    vector ``theta`` (:meth:`flatten`), so an optimizer updates one buffer. ``classes``:
    position ``i``'s output words (:class:`OutputClasses`, or a sequence of arrays); default:
    all words at every position. Three units: :meth:`forward` (the block, to the hidden
    state at every masked position), :meth:`head` (each position's softmax over its own
    words: loss, output-layer gradient, gradient at the hidden states) and :meth:`backward`
    (the block's gradient); :meth:`loss_and_grad` chains them.

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

    def __init__(self, model: BidirectionalAttention, *,
                 classes: OutputClasses | Sequence[np.ndarray] | None = None,
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
            classes = [np.arange(cfg.vocab_size)] * cfg.seq_len
        if not isinstance(classes, OutputClasses):
            classes = OutputClasses(classes, vocab_size=cfg.vocab_size)
        if len(classes) != cfg.seq_len:
            raise ValueError(f"classes must list seq_len={cfg.seq_len} positions, "
                             f"got {len(classes)}")
        if classes.words.max() >= cfg.vocab_size:
            raise ValueError(f"classes must be word ids < vocab_size={cfg.vocab_size}")
        self.classes = classes
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
                      rng: np.random.Generator | None = None, soft: Soft | None = None,
                      queries: np.ndarray | None = None) -> float:
        """Weighted mean over cells of ``-log p(target_i | x, x_i masked)``; fills ``grad``.

        ``x``: word ids (L, B), the mask id allowed (a missing cell); ``target``: class index
        of each cell into its position's classes; ``weight``: (L, B), need not be
        normalized. ``rng``: dropout draws (``None``: no dropout, as in evaluation).
        ``soft``: cells read between two words (:class:`Soft`, batch last). ``queries``
        (sorted positions): compute only those, the others weighing 0 (with the target-only
        objective, one query instead of ``L``): the same loss and gradient, rounded
        differently.
        """
        h, cache = self.forward(theta, x, rng, soft, queries=queries)
        loss, dh = self.head(theta, h, target, weight, grad, queries=queries)
        if grad is not None:
            self.backward(theta, cache, dh, grad)
        return loss

    def forward(self, theta: np.ndarray, x: np.ndarray, rng: np.random.Generator | None = None,
                soft: Soft | None = None, queries: np.ndarray | None = None
                ) -> tuple[np.ndarray, BlockCache]:
        """The block's output at every position ``i`` with ``x_i`` masked: ``h`` (d, L, B);
        with ``queries`` (sorted positions, Q of them) at those only: (d, Q, B).

        One pass (docs/paper.md section 3): the query at ``i`` is the mask's, and so are the key
        and value at ``j = i``. ``rng``: dropout draws (``None``: none). With
        ``config.absent_experts``, a context cell holding the mask id gets no gate.
        """
        cfg = self.config
        dt = self.dtype
        L, d, H = cfg.seq_len, cfg.d_model, cfg.n_heads
        dh = d // H
        scale = 1.0 / math.sqrt(dh)
        B = x.shape[1]
        N = L * B
        Q = np.arange(L) if queries is None else np.asarray(queries)
        q = len(Q)
        diag = np.arange(q)                         # (row of query i, its own key column Q[i])
        p = self.named(theta)
        E, P = p["word_embeddings.weight"], p["position_embeddings"]
        Win = p["layers.0.self_attn.in_proj_weight"]
        bin_ = p["layers.0.self_attn.in_proj_bias"]
        Wo, bo = p["layers.0.self_attn.out_proj.weight"], p["layers.0.self_attn.out_proj.bias"]
        drop = cfg.dropout if rng is not None else 0.0

        # Arrays are (features..., position, batch); N = L * B columns.
        tx = np.take(E.T, x, axis=1)                                    # E[x_j]: (d, L, B)
        if soft is not None and soft.frac.any():    # (1 - f) E[x_j] + f E[upper_j]
            tx += soft.frac * (np.take(E.T, soft.upper, axis=1) - tx)
        tx += P.T[:, :, None]                                           # e_j
        txf = tx.reshape(d, N)
        m = E[cfg.mask_id] + P                                          # m_i: (L, d)
        qkv_m = Win @ m.T + bin_[:, None]                               # (3d, L)
        qm, km, vm = (qkv_m[k * d:(k + 1) * d].reshape(H, dh, L)[..., Q] for k in range(3))
        kv = Win[d:] @ txf + bin_[d:, None]                             # (2d, N)
        kx = kv[:d].reshape(H, dh, N)
        vx = kv[d:].reshape(H, dh, L, B)
        vq = vx if q == L else vx[:, :, Q]                              # v at the queries' j = i
        # gate scores of query i (always the mask's) on key j; key j = i is the mask's
        s = ((qm.transpose(0, 2, 1) * scale) @ kx).reshape(H, q, L, B)  # (H, Qi, Lj, B)
        if cfg.absent_experts:      # a missing cell (the mask id) is an absent expert
            s[:, :, x == cfg.mask_id] = -np.inf     # its gradient is then 0 (pi_ij = 0)
        s[:, diag, Q, :] = ((qm * km).sum(1) * scale)[:, :, None]      # own slot: always
        s -= s.max(2, keepdims=True)
        a = np.exp(s, out=s)
        a /= a.sum(2, keepdims=True)                                    # pi_ij
        # mixture sum_j pi_ij v_j, with v_i swapped for the mask's value at j = i
        ctx = np.einsum("hijb,hkjb->hkib", a, vx)
        ctx += a[:, diag, Q, :][:, None] * (vm[..., None] - vq)         # (H, dh, Q, B)
        ctxf = ctx.reshape(d, q * B)
        z = Wo @ ctxf + bo[:, None]                                     # (d, Q B)
        cache = BlockCache(x=x, queries=Q, soft=soft, txf=txf, m=m, qm=qm, km=km, vm=vm, kx=kx,
                           vx=vx, a=a, ctxf=ctxf)
        if cfg.block != "bert":
            return z.reshape(d, q, B), cache
        W1, b1 = p["layers.0.linear1.weight"], p["layers.0.linear1.bias"]
        W2, b2 = p["layers.0.linear2.weight"], p["layers.0.linear2.bias"]
        g1, be1 = p["layers.0.norm1.weight"], p["layers.0.norm1.bias"]
        g2, be2 = p["layers.0.norm2.weight"], p["layers.0.norm2.bias"]
        if drop:
            cache.keep = (rng.random((2, d, q * B), dtype=dt) >= drop) * dt.type(1 / (1 - drop))
            z *= cache.keep[0]
        r1 = (z.reshape(d, q, B) + m[Q].T[:, :, None]).reshape(d, q * B)  # residual: m_i
        cache.xh1, cache.rstd1 = _normalize(r1, cfg.ln_eps)
        cache.y1 = g1[:, None] * cache.xh1 + be1[:, None]
        f1 = W1 @ cache.y1 + b1[:, None]
        cache.relu = f1 > 0
        f1 *= cache.relu
        cache.f1 = f1
        f2 = W2 @ f1 + b2[:, None]
        if drop:
            f2 *= cache.keep[1]
        cache.xh2, cache.rstd2 = _normalize(cache.y1 + f2, cfg.ln_eps)
        h = g2[:, None] * cache.xh2 + be2[:, None]
        return h.reshape(d, q, B), cache

    def head(self, theta: np.ndarray, h: np.ndarray, target: np.ndarray, weight: np.ndarray,
             grad: np.ndarray | None = None, queries: np.ndarray | None = None
             ) -> tuple[float, np.ndarray | None]:
        """Each position's softmax over its own words: the weighted mean loss; with ``grad``,
        also the output layer's gradient (into ``grad``) and the gradient at ``h`` (returned).

        ``h``: (d, L, B), or (d, Q, B) at the positions ``queries`` (the others weigh 0 and
        are skipped). The logits of a group of positions with ``K`` classes are computed for
        at most :data:`CHUNK` (positions x ``K`` x rows) at once.
        """
        dt = self.dtype
        d, _, B = h.shape
        out = self.classes
        p = self.named(theta)
        W, c = p["output.weight"], p["output.bias"]
        w = (weight / weight.sum()).astype(dt)
        loss = 0.0
        L = len(out.sizes)
        column = np.full(L, -1)                         # each position's column of h
        column[np.arange(L) if queries is None else queries] = np.arange(h.shape[1])
        if grad is not None:
            dh = np.empty_like(h)
            empty = np.zeros if queries is not None else np.empty   # skipped rows stay 0
            dW = empty((len(out.words), d), dt)         # flat: one row per (position, class)
            dc = empty(len(out.words), dt)
        bi = np.arange(B)
        for positions, flat in out.groups:
            kept = column[positions] >= 0
            positions, flat = positions[kept], flat[kept]
            K = flat.shape[1]
            width = max(1, CHUNK // (K * B))
            for start in range(0, len(positions), width):
                pos, idx = positions[start:start + width], flat[start:start + width]
                at = column[pos]
                if len(pos) == L:               # every position: a view, not a gather
                    pos = at = slice(None)
                words = out.words[idx]                                   # (g, K)
                b_out = W[words]                                         # (g, K, d)
                hl = h[:, at].transpose(1, 0, 2)                         # (g, d, B)
                logits = b_out @ hl
                logits += c[words][:, :, None]
                logits -= logits.max(1, keepdims=True)
                prob = np.exp(logits)
                total = prob.sum(1)                                      # (g, B)
                gi = np.arange(len(idx))[:, None]
                tg, wg = target[pos], w[pos]
                loss += float((wg * (np.log(total) - logits[gi, tg, bi])).sum())
                if grad is None:
                    continue
                prob /= total[:, None]
                prob *= wg[:, None]
                prob[gi, tg, bi] -= wg                                   # d loss / d logits
                dW[idx] = prob @ hl.transpose(0, 2, 1)
                dc[idx] = prob.sum(2)
                dh[:, at] = (b_out.transpose(0, 2, 1) @ prob).transpose(1, 0, 2)
        if grad is None:
            return loss, None
        g = self.named(grad)
        g_w, g_c = g["output.weight"], g["output.bias"]
        g_w[:] = 0
        g_c[:] = 0
        g_w[out.unique_words] = np.add.reduceat(dW[out.order], out.starts, axis=0)
        g_c[out.unique_words] = np.add.reduceat(dc[out.order], out.starts)
        return loss, dh

    def backward(self, theta: np.ndarray, cache: BlockCache, dh: np.ndarray,
                 grad: np.ndarray) -> None:
        """The block's and the embeddings' gradient from ``dh`` (d, Q, B) into ``grad``."""
        cfg = self.config
        dt = self.dtype
        L, d, H = cfg.seq_len, cfg.d_model, cfg.n_heads
        dhd = d // H
        scale = 1.0 / math.sqrt(dhd)
        B = dh.shape[2]
        N = L * B
        Q = cache.queries
        q = len(Q)
        diag = np.arange(q)
        p, g = self.named(theta), self.named(grad)
        Win = p["layers.0.self_attn.in_proj_weight"]
        Wo = p["layers.0.self_attn.out_proj.weight"]
        keep = cache.keep
        dh_ = dh.reshape(d, q * B)
        if cfg.block == "bert":
            W1, W2 = p["layers.0.linear1.weight"], p["layers.0.linear2.weight"]
            g1, g2 = p["layers.0.norm1.weight"], p["layers.0.norm2.weight"]
            g["layers.0.norm2.weight"][:] = (dh_ * cache.xh2).sum(1)
            g["layers.0.norm2.bias"][:] = dh_.sum(1)
            dr2 = _normalize_backward(dh_ * g2[:, None], cache.xh2, cache.rstd2)
            df2 = dr2 * keep[1] if keep is not None else dr2
            g["layers.0.linear2.weight"][:] = df2 @ cache.f1.T
            g["layers.0.linear2.bias"][:] = df2.sum(1)
            df1 = W2.T @ df2
            df1 *= cache.relu
            g["layers.0.linear1.weight"][:] = df1 @ cache.y1.T
            g["layers.0.linear1.bias"][:] = df1.sum(1)
            dy1 = dr2 + W1.T @ df1
            g["layers.0.norm1.weight"][:] = (dy1 * cache.xh1).sum(1)
            g["layers.0.norm1.bias"][:] = dy1.sum(1)
            dr1 = _normalize_backward(dy1 * g1[:, None], cache.xh1, cache.rstd1)
            dm = np.zeros((d, L), dt)
            dm[:, Q] = dr1.reshape(d, q, B).sum(2)                      # (d, L)
            dz = dr1 * keep[0] if keep is not None else dr1
        else:
            dm = np.zeros((d, L), dt)
            dz = dh_
        a, vx, qm, km, vm = cache.a, cache.vx, cache.qm, cache.km, cache.vm
        g["layers.0.self_attn.out_proj.weight"][:] = dz @ cache.ctxf.T
        g["layers.0.self_attn.out_proj.bias"][:] = dz.sum(1)
        dctx = (Wo.T @ dz).reshape(H, dhd, q, B)
        da = np.einsum("hkib,hkjb->hijb", dctx, vx)                     # (H, Qi, Lj, B)
        da[:, diag, Q, :] = (dctx * vm[..., None]).sum(1)
        dkv = np.empty((2 * d, N), dt)
        dvx = dkv[d:].reshape(H, dhd, L, B)
        np.einsum("hijb,hkib->hkjb", a, dctx, out=dvx)
        a_dctx = a[:, diag, Q, :][:, None] * dctx                       # (H, dh, Q, B)
        if q == L:
            dvx -= a_dctx
        else:
            dvx[:, :, Q] -= a_dctx
        ds = a * (da - (a * da).sum(2, keepdims=True))                  # softmax backward
        ds_self = ds[:, diag, Q, :].sum(2) * scale                      # (H, Q)
        ds[:, diag, Q, :] = 0
        ds = ds.reshape(H, q, N)
        dkv[:d] = ((qm * scale) @ ds).reshape(d, N)
        dqm = (ds @ cache.kx.transpose(0, 2, 1)).transpose(0, 2, 1) * scale + ds_self[:, None] * km
        dkm = ds_self[:, None] * qm
        dqkv_m = np.zeros((3 * d, L), dt)                               # (3d, L): 0 off Q
        dqkv_m[:, Q] = np.concatenate([dqm.reshape(d, q), dkm.reshape(d, q),
                                       a_dctx.sum(3).reshape(d, q)])
        g_win = g["layers.0.self_attn.in_proj_weight"]
        g_bin = g["layers.0.self_attn.in_proj_bias"]
        g_win[:] = dqkv_m @ cache.m
        g_win[d:] += dkv @ cache.txf.T
        g_bin[:] = dqkv_m.sum(1)
        g_bin[d:] += dkv.sum(1)
        dtx = Win[d:].T @ dkv                                           # (d, N)
        dm += Win.T @ dqkv_m
        # embedding rows: sorted segment sums of dtx's columns by word id
        ids, rows = cache.x.ravel(), dtx.T
        if cache.soft is not None:      # a cell between two words: (1 - f) and f of its row
            f = cache.soft.frac.ravel()
            between = np.flatnonzero(f)
            if len(between):
                fb = f[between, None]
                upper_rows = rows[between] * fb
                rows = rows.copy()
                rows[between] *= 1 - fb
                ids = np.concatenate([ids, cache.soft.upper.ravel()[between]])
                rows = np.concatenate([rows, upper_rows])
        order = np.argsort(ids, kind="stable")
        sorted_ids = ids[order]
        starts = run_starts(sorted_ids)
        g_e = g["word_embeddings.weight"]
        g_e[:] = 0
        g_e[sorted_ids[starts]] = np.add.reduceat(rows[order], starts, axis=0)
        g_e[cfg.mask_id] += dm.sum(1)
        g["position_embeddings"][:] = (dtx.reshape(d, L, B).sum(2) + dm).T


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


class NumpyTrainer:
    """:class:`OneBlockMLM` with :class:`_Adam` over a flat float32 buffer."""

    def __init__(self, model: BidirectionalAttention, classes: OutputClasses, *, lr: float,
                 rng: np.random.Generator) -> None:
        self.objective = OneBlockMLM(model, classes=classes)
        self.theta = self.objective.flatten(model)
        self.grad = np.zeros_like(self.theta)
        self.adam = _Adam(self.theta, lr=lr)
        self.dropout = rng if model.config.dropout > 0 else None
        self.best: np.ndarray | None = None

    def step(self, x: np.ndarray, target: np.ndarray, weight: np.ndarray, lr: float,
             soft: Soft | None = None, queries: np.ndarray | None = None) -> float:
        loss = self.objective.loss_and_grad(self.theta, x, target, weight, self.grad,
                                            self.dropout, soft, queries)
        self.adam.lr = lr
        self.adam.step(self.grad)
        return loss

    def evaluate(self, x: np.ndarray, target: np.ndarray, weight: np.ndarray,
                 soft: Soft | None = None, queries: np.ndarray | None = None) -> float:
        return self.objective.loss_and_grad(self.theta, x, target, weight, soft=soft,
                                            queries=queries)

    def snapshot(self) -> None:
        self.best = self.theta.copy()

    def restore(self) -> None:
        self.theta[:] = self.best

    def write(self, model: BidirectionalAttention) -> None:
        self.objective.unflatten(self.theta, model)


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
