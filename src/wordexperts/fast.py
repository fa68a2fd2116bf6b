"""One-block MLM training in NumPy: a hand-written forward and backward over a flat buffer.

PROTOTYPE
"""

from __future__ import annotations

import math

import numpy as np
import torch

from wordexperts.attention import BidirectionalAttention


class OneBlockMLM:
    """Loss and gradient of the single-pass MLM objective of a one-block model, in NumPy."""

    def __init__(self, model: BidirectionalAttention, classes: np.ndarray, *,
                 dtype: type = np.float32) -> None:
        cfg = model.config
        if cfg.n_layers != 1:
            raise ValueError("OneBlockMLM needs a one-layer model")
        self.config = cfg
        self.dtype = np.dtype(dtype)
        self.names = [name for name, _ in model.named_parameters()]
        self.shapes = [tuple(p.shape) for _, p in model.named_parameters()]
        sizes = [math.prod(s) for s in self.shapes]
        self.offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(int)
        self.size = int(self.offsets[-1])
        classes = np.asarray(classes)
        length, n_classes = classes.shape
        self.classes = np.where(classes < 0, 0, classes)
        self.class_bias = np.where(classes < 0, -np.inf, 0.0).astype(self.dtype)  # (L, K)
        select = np.zeros((length * n_classes, cfg.vocab_size), dtype=self.dtype)
        valid = classes.ravel() >= 0
        select[np.flatnonzero(valid), classes.ravel()[valid]] = 1
        self.select = select

    def flat(self, model: BidirectionalAttention) -> np.ndarray:
        with torch.no_grad():
            return np.concatenate([p.detach().cpu().numpy().ravel() for p in model.parameters()]
                                  ).astype(self.dtype)

    def load_into(self, theta: np.ndarray, model: BidirectionalAttention) -> None:
        with torch.no_grad():
            for p, view in zip(model.parameters(), self.views(theta), strict=True):
                p.copy_(torch.from_numpy(np.ascontiguousarray(view)).to(p.dtype))

    def views(self, buffer: np.ndarray) -> list[np.ndarray]:
        return [buffer[a:b].reshape(s) for a, b, s in
                zip(self.offsets[:-1], self.offsets[1:], self.shapes, strict=True)]

    def named(self, buffer: np.ndarray) -> dict[str, np.ndarray]:
        return dict(zip(self.names, self.views(buffer), strict=True))

    def loss_and_grad(self, theta: np.ndarray, x: np.ndarray, target: np.ndarray,
                      weight: np.ndarray, grad: np.ndarray | None,
                      rng: np.random.Generator | None = None) -> float:
        """Weighted mean of -log p(target | x with that position masked); fills ``grad``."""
        cfg = self.config
        dt = self.dtype
        p = self.named(theta)
        L, d, H = cfg.seq_len, cfg.d_model, cfg.n_heads
        dh = d // H
        scale = 1.0 / math.sqrt(dh)
        B = x.shape[0]
        M = cfg.mask_id
        drop = cfg.dropout if rng is not None else 0.0
        keep = 1.0 - drop

        E = p["word_embeddings.weight"]
        P = p["position_embeddings"]
        Win = p["layers.0.self_attn.in_proj_weight"]
        bin_ = p["layers.0.self_attn.in_proj_bias"]
        Wo = p["layers.0.self_attn.out_proj.weight"]
        bo = p["layers.0.self_attn.out_proj.bias"]
        Bout = p["output.weight"]
        cout = p["output.bias"]
        bert = cfg.block == "bert"

        def dropmask(shape):
            if drop == 0.0:
                return None
            return (rng.random(shape, dtype=dt) >= drop).astype(dt) / dt.type(keep)

        # --- forward ---
        tx = np.take(E, x, axis=0) + P                                  # (B, L, d)
        m = E[M] + P                                                    # (L, d)
        qkv_m = m @ Win.T + bin_                                        # (L, 3d)
        qm = qkv_m[:, :d].reshape(L, H, dh).transpose(1, 0, 2)          # (H, L, dh)
        km = qkv_m[:, d:2 * d].reshape(L, H, dh).transpose(1, 0, 2)
        vm = qkv_m[:, 2 * d:].reshape(L, H, dh).transpose(1, 0, 2)
        kv = tx.reshape(B * L, d) @ Win[d:].T + bin_[d:]                # (B L, 2d)
        kx = kv[:, :d].reshape(B, L, H, dh).transpose(0, 2, 1, 3)       # (B, H, L, dh)
        vx = kv[:, d:].reshape(B, L, H, dh).transpose(0, 2, 1, 3)
        s = (qm @ kx.transpose(0, 1, 3, 2)) * scale                     # (B, H, Li, Lj)
        sdiag = (qm * km).sum(-1) * scale                               # (H, L)
        ar = np.arange(L)
        s[:, :, ar, ar] = sdiag
        s -= s.max(-1, keepdims=True)
        a = np.exp(s)
        a /= a.sum(-1, keepdims=True)
        datt = dropmask(a.shape)
        ad = a * datt if datt is not None else a
        addiag = ad[:, :, ar, ar]                                       # (B, H, L)
        ctx = ad @ vx + addiag[..., None] * (vm - vx)                   # (B, H, L, dh)
        ctx2 = ctx.transpose(0, 2, 1, 3).reshape(B * L, d)
        z = ctx2 @ Wo.T + bo                                            # (B L, d)
        if bert:
            W1 = p["layers.0.linear1.weight"]
            b1 = p["layers.0.linear1.bias"]
            W2 = p["layers.0.linear2.weight"]
            b2 = p["layers.0.linear2.bias"]
            g1, be1 = p["layers.0.norm1.weight"], p["layers.0.norm1.bias"]
            g2, be2 = p["layers.0.norm2.weight"], p["layers.0.norm2.bias"]
            eps = cfg.ln_eps
            d1 = dropmask(z.shape)
            zd = z * d1 if d1 is not None else z
            r1 = (zd.reshape(B, L, d) + m).reshape(B * L, d)
            mu1 = r1.mean(-1, keepdims=True)
            c1 = r1 - mu1
            rstd1 = 1.0 / np.sqrt((c1 * c1).mean(-1, keepdims=True) + eps)
            xh1 = c1 * rstd1
            y1 = xh1 * g1 + be1
            f1 = y1 @ W1.T + b1
            relu = f1 > 0
            f1 = f1 * relu
            dff_mask = dropmask(f1.shape)
            f1d = f1 * dff_mask if dff_mask is not None else f1
            f2 = f1d @ W2.T + b2
            d2 = dropmask(f2.shape)
            f2d = f2 * d2 if d2 is not None else f2
            r2 = y1 + f2d
            mu2 = r2.mean(-1, keepdims=True)
            c2 = r2 - mu2
            rstd2 = 1.0 / np.sqrt((c2 * c2).mean(-1, keepdims=True) + eps)
            xh2 = c2 * rstd2
            h = xh2 * g2 + be2
        else:
            h = z
        # restricted output: logits[b, i, k] for the classes of position i
        bsel = (self.select @ Bout).reshape(L, -1, d)                   # (L, K, d)
        csel = (self.select @ cout).reshape(L, -1) + self.class_bias    # (L, K)
        hl = h.reshape(B, L, d).transpose(1, 0, 2)                       # (L, B, d)
        logits = hl @ bsel.transpose(0, 2, 1) + csel[:, None, :]        # (L, B, K)
        logits -= logits.max(-1, keepdims=True)
        prob = np.exp(logits)
        ssum = prob.sum(-1, keepdims=True)
        prob /= ssum
        tT = target.T
        wT = (weight.T / weight.sum()).astype(dt)                       # (L, B)
        picked = np.take_along_axis(logits, tT[..., None], -1)[..., 0]
        loss = float((wT * (np.log(ssum[..., 0]) - picked)).sum())
        if grad is None:
            return loss

        # --- backward ---
        g = self.named(grad)
        dlog = prob * wT[..., None]
        np.put_along_axis(dlog, tT[..., None],
                          np.take_along_axis(dlog, tT[..., None], -1) - wT[..., None], -1)
        dbsel = dlog.transpose(0, 2, 1) @ hl                           # (L, K, d)
        g["output.weight"][:] = self.select.T @ dbsel.reshape(-1, d)
        g["output.bias"][:] = self.select.T @ dlog.sum(1).ravel()
        dh_ = (dlog @ bsel).transpose(1, 0, 2).reshape(B * L, d)        # (B L, d)
        if bert:
            # LN2
            g["layers.0.norm2.weight"][:] = (dh_ * xh2).sum(0)
            g["layers.0.norm2.bias"][:] = dh_.sum(0)
            dx = dh_ * g2
            dr2 = rstd2 * (dx - dx.mean(-1, keepdims=True)
                           - xh2 * (dx * xh2).mean(-1, keepdims=True))
            df2 = dr2 * d2 if d2 is not None else dr2
            g["layers.0.linear2.weight"][:] = df2.T @ f1d
            g["layers.0.linear2.bias"][:] = df2.sum(0)
            df1 = df2 @ W2
            if dff_mask is not None:
                df1 *= dff_mask
            df1 *= relu
            g["layers.0.linear1.weight"][:] = df1.T @ y1
            g["layers.0.linear1.bias"][:] = df1.sum(0)
            dy1 = dr2 + df1 @ W1
            g["layers.0.norm1.weight"][:] = (dy1 * xh1).sum(0)
            g["layers.0.norm1.bias"][:] = dy1.sum(0)
            dx = dy1 * g1
            dr1 = rstd1 * (dx - dx.mean(-1, keepdims=True)
                           - xh1 * (dx * xh1).mean(-1, keepdims=True))
            dm = dr1.reshape(B, L, d).sum(0)
            dz = dr1 * d1 if d1 is not None else dr1
        else:
            dm = np.zeros((L, d), dt)
            dz = dh_
        g["layers.0.self_attn.out_proj.weight"][:] = dz.T @ ctx2
        g["layers.0.self_attn.out_proj.bias"][:] = dz.sum(0)
        dctx = (dz @ Wo).reshape(B, L, H, dh).transpose(0, 2, 1, 3)     # (B, H, L, dh)
        dad = dctx @ vx.transpose(0, 1, 3, 2)                            # (B, H, Li, Lj)
        dad[:, :, ar, ar] = (dctx * vm).sum(-1)
        dvx = ad.transpose(0, 1, 3, 2) @ dctx - addiag[..., None] * dctx  # (B, H, Lj, dh)
        dvm = (addiag[..., None] * dctx).sum(0)                         # (H, L, dh)
        da = dad * datt if datt is not None else dad
        ds = a * (da - (a * da).sum(-1, keepdims=True))
        dsdiag = ds[:, :, ar, ar].sum(0) * scale                        # (H, L)
        ds[:, :, ar, ar] = 0
        ds *= scale
        dkx = ds.transpose(0, 1, 3, 2) @ qm                              # (B, H, Lj, dh)
        dqm = (ds @ kx).sum(0) + dsdiag[..., None] * km                 # (H, L, dh)
        dkm = dsdiag[..., None] * qm
        dkv = np.concatenate([dkx.transpose(0, 2, 1, 3).reshape(B * L, d),
                              dvx.transpose(0, 2, 1, 3).reshape(B * L, d)], axis=1)
        dqkv_m = np.concatenate([t.transpose(1, 0, 2).reshape(L, d) for t in (dqm, dkm, dvm)],
                                axis=1)                                 # (L, 3d)
        gW = g["layers.0.self_attn.in_proj_weight"]
        gb = g["layers.0.self_attn.in_proj_bias"]
        gW[:] = dqkv_m.T @ m
        gW[d:] += dkv.T @ tx.reshape(B * L, d)
        gb[:] = dqkv_m.sum(0)
        gb[d:] += dkv.sum(0)
        dtx = dkv @ Win[d:]                                             # (B L, d)
        dm = dm + dqkv_m @ Win
        gE = g["word_embeddings.weight"]
        gE[:] = 0
        np.add.at(gE, x.ravel(), dtx)
        gE[M] += dm.sum(0)
        g["position_embeddings"][:] = dtx.reshape(B, L, d).sum(0) + dm
        return loss


def adam_fit(fb, theta, X, target, weight, *, epochs, batch_size, lr, seed, dropout_rng=True):
    rng = np.random.default_rng(seed)
    grad = np.zeros_like(theta)
    m1 = np.zeros_like(theta)
    m2 = np.zeros_like(theta)
    b1, b2, eps = 0.9, 0.999, 1e-8
    n = len(X)
    t = 0
    hist = []
    for _ in range(epochs):
        order = rng.permutation(n)
        tot = 0.0
        for start in range(0, n, batch_size):
            idx = order[start:start + batch_size]
            loss = fb.loss_and_grad(theta, X[idx], target[idx], weight[idx], grad,
                                    rng if dropout_rng else None)
            t += 1
            m1 *= b1
            m1 += (1 - b1) * grad
            m2 *= b2
            m2 += (1 - b2) * grad * grad
            bc1 = 1 - b1 ** t
            bc2 = 1 - b2 ** t
            denom = np.sqrt(m2) / math.sqrt(bc2) + eps
            theta -= (lr / bc1) * m1 / denom
            tot += loss * len(idx)
        hist.append(tot / n)
    return hist
