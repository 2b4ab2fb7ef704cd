"""Plausible wrong answers to every graded question (test fixtures, not a test module).

``MISTAKES[question_id]`` maps a short English description to a function with
the student's signature that makes that mistake; ``CORRECT[question_id]`` is a
right answer written the way a student would (NumPy or torch, not the bank's
reference code).  ``tests/test_grading_mistakes.py`` runs each through the
check over many seeds: every mistake must fail every time, every correct
answer must pass every time.
"""
from __future__ import annotations

import numpy as np
import torch

B1, B2, EPS = 0.9, 0.999, 1e-8


def _sig(x):
    return 1 / (1 + np.exp(-x))


# --- generic Adam pieces with switches for the usual mistakes --------------------------------

def adam_step(w, g, m, v, t, lr, b1=B1, b2=B2, eps=EPS, wd=0.0, *, rule="adamw", eps_mode="outside",
              bias=True, decay="before", lr_twice=False, prox=False):
    if rule == "l2":
        g = g + wd * w
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g**2
    m_hat = m / (1 - b1**t) if bias else m
    v_hat = v / (1 - b2**t) if bias else v
    if eps_mode == "outside":
        u = m_hat / (np.sqrt(v_hat) + eps)
    elif eps_mode == "inside":
        u = m_hat / np.sqrt(v_hat + eps)
    else:  # omitted
        u = m_hat / np.sqrt(v_hat)
    if rule == "l2" or rule == "adam":
        return w - lr * u, m, v
    if prox:
        return (w - lr * u) / (1 + lr * wd), m, v
    k = lr * lr * wd if lr_twice else lr * wd
    if decay == "before":
        return (1 - k) * w - lr * u, m, v
    return (1 - k) * (w - lr * u), m, v  # after the Adam step


def run(w0, grads, lr, wd, **kw):
    w, m, v = w0.copy(), np.zeros_like(w0), np.zeros_like(w0)
    for t, g in enumerate(grads, start=1):
        w, m, v = adam_step(w, g, m, v, t, lr, wd=wd, **kw)
    return w


def flip(w0, G, before, after, lr, wd, *, late=False, rules=("adamw", "l2"), **kw):
    out = []
    for rule in rules:
        w, m, v, traj = np.array(w0), 0.0, 0.0, [w0]
        for t in range(1, before + after + 1):
            g = G if t <= before + (1 if late else 0) else -G
            w, m, v = adam_step(w, g, m, v, t, lr, wd=wd, rule=rule, **kw)
            traj.append(float(w))
        out.append(np.array(traj))
    return tuple(out)


def consecutive_downs(traj, start):
    n = 0
    for d in np.diff(traj)[start:]:
        if d >= 0:
            break
        n += 1
    return n


def fed(w_global, centers, lr, wd, steps, *, shared=False, **kw):
    finals = []
    m = v = np.zeros_like(w_global)
    t0 = 0
    for c in centers:
        w = w_global.copy()
        if not shared:
            m = v = np.zeros_like(w_global)
            t0 = 0
        for t in range(1, steps + 1):
            w, m, v = adam_step(w, w - c, m, v, t0 + t, lr, wd=wd, **kw)
        if shared:
            t0 += steps
        finals.append(w)
    return np.mean(finals, axis=0)


def logreg(X, y, lr, wd, steps, *, mean=True, **kw):
    w = np.zeros(X.shape[1])
    m, v = np.zeros_like(w), np.zeros_like(w)
    for t in range(1, steps + 1):
        g = X.T @ (_sig(X @ w) - y)
        if mean:
            g = g / len(y)
        w, m, v = adam_step(w, g, m, v, t, lr, wd=wd, **kw)
    return w


def bptt(W, U, xs, h0, *, deriv="post", transpose=True, truncate=False, half=True):
    hs, pre = [h0], []
    for x in xs:
        pre.append(W @ hs[-1] + U @ x)
        hs.append(np.tanh(pre[-1]))
    dW, dU = np.zeros_like(W), np.zeros_like(U)
    delta = hs[-1].copy() * (1.0 if half else 2.0)
    for t in range(len(xs), 0, -1):
        da = delta * ((1 - hs[t] ** 2) if deriv == "post" else (1 - pre[t - 1] ** 2))
        dW += np.outer(da, hs[t - 1])
        dU += np.outer(da, xs[t - 1])
        delta = (W.T if transpose else W) @ da
        if truncate:
            break
    return dW, dU


def torch_run(w0, grads, lr, wd, *, opt="AdamW", dtype=torch.float64, pass_wd=True, late=False):
    p = torch.nn.Parameter(torch.tensor(w0, dtype=dtype))
    kwargs = {"lr": lr}
    if pass_wd:
        kwargs["weight_decay"] = wd
    o = getattr(torch.optim, opt)([p], **kwargs)
    for g in grads:
        if late:
            o.step()
        p.grad = torch.tensor(g, dtype=dtype)
        if not late:
            o.step()
    return p.detach().double().numpy()


def f32(func):
    """The same answer computed in float32 (the student forgot dtype=float64)."""
    def wrapped(*args):
        args = [np.asarray(a, dtype=np.float32) if isinstance(a, np.ndarray) else
                (np.float32(a) if isinstance(a, float) else a) for a in args]
        out = func(*args)
        if isinstance(out, tuple):
            return tuple(np.asarray(o, dtype=np.float32) for o in out)
        return np.asarray(out, dtype=np.float32)
    return wrapped


def _cos_lrs(lr, T, *, start=0, denom=None, half=True):
    t = np.arange(start, start + T)
    c = 1 + np.cos(np.pi * t / (denom or T))
    return (0.5 if half else 1.0) * lr * c


def _quant(w, bits, *, qmax=None, rounder=np.round, scale_by="max", root=False):
    qmax = qmax if qmax is not None else 2 ** (bits - 1) - 1
    s = (np.max(np.abs(w)) if scale_by == "max" else np.mean(np.abs(w))) / qmax
    q = np.clip(rounder(w / s), -qmax, qmax)
    mse = np.mean((q * s - w) ** 2)
    return float(np.sqrt(mse) if root else mse)


def _margin(w, b, X, y, *, norm=2, agg=np.min, use_b=True, signed=True):
    f = X @ w + (b if use_b else 0.0)
    m = y * f if signed else np.abs(f)
    return float(agg(m) / (np.linalg.norm(w, norm) if norm else 1.0))


def _metrics(y, p, *, minority=1, precision=False, balanced="recalls"):
    acc = np.mean(y == p)
    r1 = np.mean(p[y == minority] == minority)
    if precision:
        r1 = np.mean(y[p == 1] == 1)
    r0 = np.mean(p[y == 1 - minority] == 1 - minority)
    bal = (r0 + r1) / 2 if balanced == "recalls" else (acc + r1) / 2
    return float(acc), float(r1), float(bal)


def _robust(w, b, X, y, eps, *, norm=1, strict=True, attack=True):
    margin = y * (X @ w + b) - (eps * np.linalg.norm(w, norm) if attack else 0.0)
    return float(np.mean(margin > 0 if strict else margin >= 0))


CORRECT = {
    "ex00.q1": lambda g, m, v, b1, b2: (b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g),
    "ex00.q2": lambda m, v, t, b1, b2: (m / (1 - b1**t), v / (1 - b2**t)),
    "ex00.q3": lambda w, g, m, v, t, lr, b1, b2, eps, wd: adam_step(w, g, m, v, t, lr, b1, b2, eps, wd),
    "ex00.q4": torch_run,
    "ex01.q1": lambda vh, lr, wd, eps: (lr * wd / (np.sqrt(vh) + eps), lr * wd * np.ones_like(vh)),
    "ex01.q2": lambda w0, lr, wd, eps: ((1 - lr * wd) * w0, w0 - lr * wd * w0 / (np.abs(wd * w0) + eps)),
    "ex01.q3": lambda w, g, lr, wd: (w - lr * (g + wd * w), (1 - lr * wd) * w - lr * g),
    "ex02.q1": lambda w, vh, lr, wd, eps: (-lr * wd * w / (np.sqrt(vh) + eps), -lr * wd * w),
    "ex02.q2": lambda w, vh, eps: float(np.degrees(np.arccos(np.clip(
        (w / (np.sqrt(vh) + eps)) @ w / (np.linalg.norm(w / (np.sqrt(vh) + eps)) * np.linalg.norm(w)), -1, 1)))),
    "ex02.q3": lambda vh, wd, eps: wd * (np.sqrt(vh) + eps),
    "ex02.q4": lambda w, tau: float(np.sum(0.5 * np.log(tau / (2 * np.pi)) - 0.5 * tau * w**2)),
    "ex03.q1": lambda w0, lr, wd, n: (1 - lr * wd) ** np.arange(n + 1)[:, None] * w0,
    "ex03.q2": lambda lr, wd: (np.log(0.5) / np.log1p(-lr * wd), np.log(2) / (lr * wd)),
    "ex03.q3": lambda wt, lr, wd: (wt / (1 + lr * wd), (1 - lr * wd) * wt),
    "ex03.q4": lambda w, g, m, v, t, lr, wd: adam_step(w, g, m, v, t, lr, wd=wd, prox=True),
    "ex04.q1": lambda w, m, v, t, b1, b2, eps: -((b1 * m) / (1 - b1**t)) / (np.sqrt(b2 * v / (1 - b2**t)) + eps) / w,
    "ex04.q2": lambda w, mh, vh, lr, wd, eps: np.abs(lr * wd * w) / (
        np.abs(lr * wd * w) + np.abs(lr * mh / (np.sqrt(vh) + eps))),
    "ex04.q3": lambda w0, G, a, b, lr, wd: flip(w0, G, a, b, lr, wd),
    "ex04.q4": lambda w0, G, a, b, lr, wd: tuple(consecutive_downs(tr, a) for tr in flip(w0, G, a, b, lr, wd)),
    "ex05.q1": lambda w0, gs, lr, wd: (run(w0, gs, lr, wd), run(w0, gs, lr, wd, rule="l2")),
    "ex05.q2": lambda w0, gs, lr, wd: (np.abs(run(w0, gs, lr, wd)) / np.abs(w0),
                                       np.abs(run(w0, gs, lr, wd, rule="l2")) / np.abs(w0)),
    "ex05.q3": bptt,
    "ex06.q1": logreg,
    "ex06.q2": _metrics,
    "ex06.q3": _margin,
    "ex06.q4": _robust,
    "ex07.q1": lambda lr, wd, W: float(np.prod(1 - lr * np.arange(1, W + 1) / W * wd)),
    "ex07.q2": lambda lr, wd, T: (float(np.prod(1 - _cos_lrs(lr, T) * wd)), float((1 - lr * wd) ** T)),
    "ex07.q3": fed,
    "ex07.q4": _quant,
}

MISTAKES = {
    "ex00.q1": {
        "beta and 1-beta swapped": lambda g, m, v, b1, b2: (b1 * g + (1 - b1) * m, b2 * g**2 + (1 - b2) * v),
        "v averages g, not g squared": lambda g, m, v, b1, b2: (b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * np.abs(g)),
        "beta2 used for m": lambda g, m, v, b1, b2: (b2 * m + (1 - b2) * g, b2 * v + (1 - b2) * g**2),
        "m and v returned swapped": lambda g, m, v, b1, b2: (b2 * v + (1 - b2) * g**2, b1 * m + (1 - b1) * g),
    },
    "ex00.q2": {
        "t counted from 0": lambda m, v, t, b1, b2: (m / (1 - b1 ** (t + 1)), v / (1 - b2 ** (t + 1))),
        "multiplied instead of divided": lambda m, v, t, b1, b2: (m * (1 - b1**t), v * (1 - b2**t)),
        "beta1 used for v": lambda m, v, t, b1, b2: (m / (1 - b1**t), v / (1 - b1**t)),
        "v not corrected": lambda m, v, t, b1, b2: (m / (1 - b1**t), v),
    },
    "ex00.q3": {
        "eps omitted": lambda w, g, m, v, t, lr, b1, b2, eps, wd: adam_step(w, g, m, v, t, lr, b1, b2, eps, wd, eps_mode="omitted"),
        "eps inside the square root": lambda w, g, m, v, t, lr, b1, b2, eps, wd: adam_step(w, g, m, v, t, lr, b1, b2, eps, wd, eps_mode="inside"),
        "decay after the Adam step": lambda w, g, m, v, t, lr, b1, b2, eps, wd: adam_step(w, g, m, v, t, lr, b1, b2, eps, wd, decay="after"),
        "no bias correction": lambda w, g, m, v, t, lr, b1, b2, eps, wd: adam_step(w, g, m, v, t, lr, b1, b2, eps, wd, bias=False),
        "decay multiplied by lr twice": lambda w, g, m, v, t, lr, b1, b2, eps, wd: adam_step(w, g, m, v, t, lr, b1, b2, eps, wd, lr_twice=True),
        "L2 in the gradient (Adam + L2)": lambda w, g, m, v, t, lr, b1, b2, eps, wd: adam_step(w, g, m, v, t, lr, b1, b2, eps, wd, rule="l2"),
    },
    "ex00.q4": {
        "weight_decay not passed (torch default 0.01)": lambda w0, gs, lr, wd: torch_run(w0, gs, lr, wd, pass_wd=False),
        "torch.optim.Adam (L2) instead of AdamW": lambda w0, gs, lr, wd: torch_run(w0, gs, lr, wd, opt="Adam"),
        "float32 parameter": lambda w0, gs, lr, wd: torch_run(w0, gs, lr, wd, dtype=torch.float32),
        "step before the gradient is set": lambda w0, gs, lr, wd: torch_run(w0, gs, lr, wd, late=True),
    },
    "ex01.q1": {
        "v_hat without square root": lambda vh, lr, wd, eps: (lr * wd / (vh + eps), lr * wd * np.ones_like(vh)),
        "eps omitted": lambda vh, lr, wd, eps: (lr * wd / np.sqrt(vh), lr * wd * np.ones_like(vh)),
        "multiplied by the denominator": lambda vh, lr, wd, eps: (lr * wd * (np.sqrt(vh) + eps), lr * wd * np.ones_like(vh)),
        "AdamW rate a scalar": lambda vh, lr, wd, eps: (lr * wd / (np.sqrt(vh) + eps), lr * wd),
    },
    "ex01.q2": {
        "eps forgotten": lambda w0, lr, wd, eps: ((1 - lr * wd) * w0, w0 - lr * np.sign(w0)),
        "Adam + L2 without the square root": lambda w0, lr, wd, eps: ((1 - lr * wd) * w0, w0 - lr * wd * w0 / ((wd * w0) ** 2 + eps)),
        "no bias correction in Adam + L2": lambda w0, lr, wd, eps: (
            (1 - lr * wd) * w0, w0 - lr * (1 - B1) * wd * w0 / (np.sqrt((1 - B2) * (wd * w0) ** 2) + eps)),
        "Adam + L2 treated as decoupled": lambda w0, lr, wd, eps: ((1 - lr * wd) * w0, (1 - lr * wd) * w0),
    },
    "ex01.q3": {
        "decay sign flipped": lambda w, g, lr, wd: (w - lr * (g - wd * w), (1 + lr * wd) * w - lr * g),
        "decay without lr": lambda w, g, lr, wd: (w - lr * g - wd * w, (1 - wd) * w - lr * g),
        "decay multiplied by lr twice": lambda w, g, lr, wd: (w - lr * (g + lr * wd * w), (1 - lr * lr * wd) * w - lr * g),
    },
    "ex02.q1": {
        "v_hat without square root": lambda w, vh, lr, wd, eps: (-lr * wd * w / (vh + eps), -lr * wd * w),
        "sign flipped": lambda w, vh, lr, wd, eps: (lr * wd * w / (np.sqrt(vh) + eps), lr * wd * w),
        "multiplied by the denominator": lambda w, vh, lr, wd, eps: (-lr * wd * w * (np.sqrt(vh) + eps), -lr * wd * w),
        "eps omitted": lambda w, vh, lr, wd, eps: (-lr * wd * w / np.sqrt(vh), -lr * wd * w),
    },
    "ex02.q2": {
        "radians": lambda w, vh, eps: float(np.arccos(np.clip(
            (w / (np.sqrt(vh) + eps)) @ w / (np.linalg.norm(w / (np.sqrt(vh) + eps)) * np.linalg.norm(w)), -1, 1))),
        "v_hat without square root": lambda w, vh, eps: float(np.degrees(np.arccos(np.clip(
            (w / (vh + eps)) @ w / (np.linalg.norm(w / (vh + eps)) * np.linalg.norm(w)), -1, 1)))),
        "cosine returned, not the angle": lambda w, vh, eps: float(
            (w / (np.sqrt(vh) + eps)) @ w / (np.linalg.norm(w / (np.sqrt(vh) + eps)) * np.linalg.norm(w))),
        "float32 computation": lambda w, vh, eps: f32(CORRECT["ex02.q2"])(w, vh, eps).item(),
    },
    "ex02.q3": {
        "per-step precision lambda/(sqrt(v)+eps)": lambda vh, wd, eps: wd / (np.sqrt(vh) + eps),
        "v_hat without square root": lambda vh, wd, eps: wd * (vh + eps),
        "eps omitted": lambda vh, wd, eps: wd * np.sqrt(vh),
        "isotropic lambda": lambda vh, wd, eps: wd * np.ones_like(vh),
    },
    "ex02.q4": {
        "no normalising constant": lambda w, tau: float(np.sum(-0.5 * tau * w**2)),
        "log(2 pi / tau)": lambda w, tau: float(np.sum(0.5 * np.log(2 * np.pi / tau) - 0.5 * tau * w**2)),
        "tau taken as the variance": lambda w, tau: float(np.sum(0.5 * np.log(1 / (2 * np.pi * tau)) - 0.5 * w**2 / tau)),
        "missing 1/2 in the quadratic": lambda w, tau: float(np.sum(0.5 * np.log(tau / (2 * np.pi)) - tau * w**2)),
    },
    "ex03.q1": {
        "w0 row missing": lambda w0, lr, wd, n: (1 - lr * wd) ** np.arange(1, n + 1)[:, None] * w0,
        "exponent off by one": lambda w0, lr, wd, n: (1 - lr * wd) ** np.arange(1, n + 2)[:, None] * w0,
        "continuous exp(-lr wd t)": lambda w0, lr, wd, n: np.exp(-lr * wd * np.arange(n + 1))[:, None] * w0,
        "decay without lr": lambda w0, lr, wd, n: (1 - wd) ** np.arange(n + 1)[:, None] * w0,
    },
    "ex03.q2": {
        "exact replaced by the approximation": lambda lr, wd: (np.log(2) / (lr * wd), np.log(2) / (lr * wd)),
        "approximation 1/(lr wd)": lambda lr, wd: (np.log(0.5) / np.log1p(-lr * wd), 1 / (lr * wd)),
        "log base 10 in the approximation": lambda lr, wd: (np.log(0.5) / np.log1p(-lr * wd), np.log10(2) / (lr * wd)),
        "float32 computation": lambda lr, wd: tuple(float(x) for x in (
            np.log(np.float32(0.5)) / np.log(np.float32(1) - np.float32(lr) * np.float32(wd)),
            np.log(np.float32(2)) / (np.float32(lr) * np.float32(wd)))),
    },
    "ex03.q3": {
        "linear approximation for both": lambda wt, lr, wd: ((1 - lr * wd) * wt, (1 - lr * wd) * wt),
        "prox as w/(1 - lr wd)": lambda wt, lr, wd: (wt / (1 - lr * wd), (1 - lr * wd) * wt),
        "prox without lr": lambda wt, lr, wd: (wt / (1 + wd), (1 - lr * wd) * wt),
    },
    "ex03.q4": {
        "linear decay (plain AdamW)": lambda w, g, m, v, t, lr, wd: adam_step(w, g, m, v, t, lr, wd=wd),
        "prox applied to w, not w tilde": lambda w, g, m, v, t, lr, wd: (
            w / (1 + lr * wd) + adam_step(w, g, m, v, t, lr)[0] - w, *adam_step(w, g, m, v, t, lr)[1:]),
        "eps omitted": lambda w, g, m, v, t, lr, wd: adam_step(w, g, m, v, t, lr, wd=wd, prox=True, eps_mode="omitted"),
        "no bias correction": lambda w, g, m, v, t, lr, wd: adam_step(w, g, m, v, t, lr, wd=wd, prox=True, bias=False),
    },
    "ex04.q1": {
        "no bias correction": lambda w, m, v, t, b1, b2, eps: -(b1 * m) / (np.sqrt(b2 * v) + eps) / w,
        "moments not decayed": lambda w, m, v, t, b1, b2, eps: -(m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps) / w,
        "sign flipped": lambda w, m, v, t, b1, b2, eps: ((b1 * m) / (1 - b1**t)) / (np.sqrt(b2 * v / (1 - b2**t)) + eps) / w,
        "eps omitted": lambda w, m, v, t, b1, b2, eps: -((b1 * m) / (1 - b1**t)) / np.sqrt(b2 * v / (1 - b2**t)) / w,
    },
    "ex04.q2": {
        "eps omitted": lambda w, mh, vh, lr, wd, eps: np.abs(wd * w) / (np.abs(wd * w) + np.abs(mh / np.sqrt(vh))),
        "eps inside the square root": lambda w, mh, vh, lr, wd, eps: np.abs(wd * w) / (np.abs(wd * w) + np.abs(mh / np.sqrt(vh + eps))),
        "ratio to the adaptive step only": lambda w, mh, vh, lr, wd, eps: np.abs(wd * w) / np.abs(mh / (np.sqrt(vh) + eps)),
        "signed, no absolute values": lambda w, mh, vh, lr, wd, eps: (wd * w) / (wd * w + mh / (np.sqrt(vh) + eps)),
    },
    "ex04.q3": {
        "Adam + L2 without lambda w in the gradient": lambda w0, G, a, b, lr, wd: flip(w0, G, a, b, lr, wd, rules=("adamw", "adam")),
        "AdamW decay after the step": lambda w0, G, a, b, lr, wd: (flip(w0, G, a, b, lr, wd, decay="after")[0], flip(w0, G, a, b, lr, wd)[1]),
        "flip one step late": lambda w0, G, a, b, lr, wd: flip(w0, G, a, b, lr, wd, late=True),
        "w0 left out": lambda w0, G, a, b, lr, wd: tuple(tr[1:] for tr in flip(w0, G, a, b, lr, wd)),
    },
    "ex04.q4": {
        "counts from the start": lambda w0, G, a, b, lr, wd: tuple(int(np.sum(np.diff(tr) < 0)) for tr in flip(w0, G, a, b, lr, wd)),
        "off by one (skips the first step after the flip)": lambda w0, G, a, b, lr, wd: tuple(
            consecutive_downs(tr, a + 1) for tr in flip(w0, G, a, b, lr, wd)),
        "counts increases": lambda w0, G, a, b, lr, wd: tuple(int(np.sum(np.diff(tr)[a:] > 0)) for tr in flip(w0, G, a, b, lr, wd)),
    },
    "ex05.q1": {
        "Adam + L2 without lambda w (plain Adam)": lambda w0, gs, lr, wd: (run(w0, gs, lr, wd), run(w0, gs, lr, wd, rule="adam")),
        "AdamW decay after the step": lambda w0, gs, lr, wd: (run(w0, gs, lr, wd, decay="after"), run(w0, gs, lr, wd, rule="l2")),
        "no bias correction": lambda w0, gs, lr, wd: (run(w0, gs, lr, wd, bias=False), run(w0, gs, lr, wd, rule="l2", bias=False)),
        "results swapped": lambda w0, gs, lr, wd: (run(w0, gs, lr, wd, rule="l2"), run(w0, gs, lr, wd)),
    },
    "ex05.q2": {
        "ratio inverted": lambda w0, gs, lr, wd: (np.abs(w0) / np.abs(run(w0, gs, lr, wd)), np.abs(w0) / np.abs(run(w0, gs, lr, wd, rule="l2"))),
        "signed ratio": lambda w0, gs, lr, wd: (run(w0, gs, lr, wd) / w0, run(w0, gs, lr, wd, rule="l2") / w0),
        "Adam + L2 without lambda w": lambda w0, gs, lr, wd: (np.abs(run(w0, gs, lr, wd)) / np.abs(w0),
                                                             np.abs(run(w0, gs, lr, wd, rule="adam")) / np.abs(w0)),
    },
    "ex05.q3": {
        "tanh derivative at the pre-activation": lambda W, U, xs, h0: bptt(W, U, xs, h0, deriv="pre"),
        "W not transposed going back": lambda W, U, xs, h0: bptt(W, U, xs, h0, transpose=False),
        "only the last step (truncated)": lambda W, U, xs, h0: bptt(W, U, xs, h0, truncate=True),
        "loss without the 1/2": lambda W, U, xs, h0: bptt(W, U, xs, h0, half=False),
    },
    "ex06.q1": {
        "Adam + L2 instead of AdamW": lambda X, y, lr, wd, n: logreg(X, y, lr, wd, n, rule="l2"),
        "summed, not averaged gradient": lambda X, y, lr, wd, n: logreg(X, y, lr, wd, n, mean=False),
        "no bias correction": lambda X, y, lr, wd, n: logreg(X, y, lr, wd, n, bias=False),
        "decay after the step": lambda X, y, lr, wd, n: logreg(X, y, lr, wd, n, decay="after"),
    },
    "ex06.q2": {
        "precision instead of recall": lambda y, p: _metrics(y, p, precision=True),
        "balanced = mean of accuracy and recall": lambda y, p: _metrics(y, p, balanced="acc"),
        "class 0 taken as the minority": lambda y, p: _metrics(y, p, minority=0),
    },
    "ex06.q3": {
        "not divided by the norm": lambda w, b, X, y: _margin(w, b, X, y, norm=None),
        "L1 norm": lambda w, b, X, y: _margin(w, b, X, y, norm=1),
        "bias ignored": lambda w, b, X, y: _margin(w, b, X, y, use_b=False),
        "unsigned distance": lambda w, b, X, y: _margin(w, b, X, y, signed=False),
    },
    "ex06.q4": {
        "L2 norm of w": lambda w, b, X, y, eps: _robust(w, b, X, y, eps, norm=2),
        "margin exactly 0 counted as correct": lambda w, b, X, y, eps: _robust(w, b, X, y, eps, strict=False),
        "clean accuracy (no attack)": lambda w, b, X, y, eps: _robust(w, b, X, y, eps, attack=False),
    },
    "ex07.q1": {
        "t from 0 to W-1": lambda lr, wd, W: float(np.prod(1 - lr * np.arange(W) / W * wd)),
        "constant learning rate": lambda lr, wd, W: float((1 - lr * wd) ** W),
        "exp of the sum": lambda lr, wd, W: float(np.exp(-np.sum(lr * np.arange(1, W + 1) / W * wd))),
        "float32 computation": lambda lr, wd, W: float(np.prod(1 - np.float32(lr) * np.arange(1, W + 1, dtype=np.float32) / np.float32(W) * np.float32(wd))),
    },
    "ex07.q2": {
        "t from 1 to T": lambda lr, wd, T: (float(np.prod(1 - _cos_lrs(lr, T, start=1) * wd)), float((1 - lr * wd) ** T)),
        "denominator T - 1": lambda lr, wd, T: (float(np.prod(1 - _cos_lrs(lr, T, denom=T - 1) * wd)), float((1 - lr * wd) ** T)),
        "without the 1/2": lambda lr, wd, T: (float(np.prod(1 - _cos_lrs(lr, T, half=False) * wd)), float((1 - lr * wd) ** T)),
        "float32 computation": lambda lr, wd, T: tuple(float(x) for x in f32(CORRECT["ex07.q2"])(lr, wd, T)),
    },
    "ex07.q3": {
        "optimizer state shared across clients": lambda w, C, lr, wd, n: fed(w, C, lr, wd, n, shared=True),
        "L2 in the gradient": lambda w, C, lr, wd, n: fed(w, C, lr, wd, n, rule="l2"),
        "no bias correction": lambda w, C, lr, wd, n: fed(w, C, lr, wd, n, bias=False),
    },
    "ex07.q4": {
        "unsigned range 2^bits - 1": lambda w, bits: _quant(w, bits, qmax=2**bits - 1),
        "floor instead of round": lambda w, bits: _quant(w, bits, rounder=np.floor),
        "scale from the mean |w|": lambda w, bits: _quant(w, bits, scale_by="mean"),
        "root mean square error": lambda w, bits: _quant(w, bits, root=True),
    },
}


# --- Part IV: ex08 (timescale, ℓ∞ box) and ex09 (equilibrium, corrected and cautious decay) -------

def _tau(lr, wd, n, batch, *, with_lr=True, epochs="divide", half_life=False, with_batch=True):
    tau_iter = 1 / ((lr if with_lr else 1.0) * wd)
    if half_life:
        tau_iter = np.log(2) * tau_iter
    steps_per_epoch = n / batch if with_batch else n
    return tau_iter, (tau_iter / steps_per_epoch if epochs == "divide" else tau_iter * steps_per_epoch)


def _transfer(wd, lr, n, b, lr2, n2, b2, *, use_lr=True, use_n=True, use_b=True, n_inverted=False, b_inverted=False):
    out = wd
    if use_lr:
        out = out * lr / lr2
    if use_n:
        out = out * (n2 / n if n_inverted else n / n2)
    if use_b:
        out = out * (b / b2 if b_inverted else b2 / b)
    return out


def _kkt(w, g, wd, *, radius=None, sign=-1.0, norm="inf"):
    r = 1 / wd if radius is None else radius
    res = w - np.clip(w + sign * g, -r, r)
    return float(np.max(np.abs(res)) if norm == "inf" else np.linalg.norm(res))


def _box_run(X, y, lr, wd, T, *, schedule="cosine", labels="pm1", radius="1/lambda", rule="adamw", lr_twice=False):
    T = int(T)
    w, m, v = np.zeros(X.shape[1]), np.zeros(X.shape[1]), np.zeros(X.shape[1])
    for t in range(1, T + 1):
        if schedule == "cosine":
            lr_t = 0.5 * lr * (1 + np.cos(np.pi * t / T))
        elif schedule == "from 0":
            lr_t = 0.5 * lr * (1 + np.cos(np.pi * (t - 1) / T))
        else:
            lr_t = lr
        if labels == "pm1":
            g = -(X.T @ (y * _sig(-y * (X @ w)))) / len(y)
        else:  # the {0, 1} formula applied to ±1 labels
            g = X.T @ (_sig(X @ w) - y) / len(y)
        w, m, v = adam_step(w, g, m, v, t, lr_t, wd=wd, rule=rule, lr_twice=lr_twice)
    r = {"1/lambda": 1 / wd, "1/(lr lambda)": 1 / (lr * wd), "lambda": wd}[radius]
    return w, float(np.abs(w).max() - r)


def _equilibrium(lr, wd, n, rho, b1, *, two=True, sqrt=True, rho_sq=True, beta_factor=True, degrees=False):
    norm2 = lr * (rho**2 if rho_sq else rho) * n / ((2 if two else 1) * wd)
    angle = np.sqrt(2 * lr * wd * ((1 - b1) / (1 + b1) if beta_factor else 1.0))
    return float(np.sqrt(norm2) if sqrt else norm2), float(np.degrees(angle) if degrees else angle)


def _factors(lrs, peak, wd, *, corrected="square", peak_from=None):
    peak = lrs[0] if peak_from == "first" else peak
    per = {"square": lrs**2 / peak, "linear": lrs / peak, "no peak": lrs**2, "peak squared": lrs**2 / peak**2}[corrected]
    return 1 - lrs * wd, 1 - per * wd


def _norm_runs(n0, lrs, peak, wd, C, *, corrected="square", square_factor=True, lr_sq=True, with_n0=False,
               squared=False, add_first=False):
    out = []
    for f in _factors(lrs, peak, wd, corrected=corrected):
        n2, traj = n0**2, [n0**2]
        for ft, lr in zip(f, lrs):
            add = (lr**2 if lr_sq else lr) * C
            k = ft**2 if square_factor else ft
            n2 = k * (n2 + add) if add_first else k * n2 + add
            traj.append(n2)
        traj = np.array(traj if with_n0 else traj[1:])
        out.append(traj if squared else np.sqrt(traj))
    return tuple(out)


def _cautious(w, g, m, v, t, lr, wd, *, mask="u", strict=True, decay_w="old", invert=False):
    m_new = B1 * m + (1 - B1) * g
    v_new = B2 * v + (1 - B2) * g**2
    u = (m_new / (1 - B1**t)) / (np.sqrt(v_new / (1 - B2**t)) + EPS)
    s = {"u": u, "g": g, "m_prev": m, "all": np.ones_like(w) * np.sign(w)}[mask]
    agree = (s * w > 0) if strict else (s * w >= 0)
    if invert:
        agree = ~agree
    w_step = w - lr * u
    base = w if decay_w == "old" else w_step
    return w_step - lr * wd * agree * base, m_new, v_new


CORRECT.update({
    "ex08.q1": lambda lr, wd, n, b: (1 / (lr * wd), b / (lr * wd * n)),
    "ex08.q2": lambda wd, lr, n, b, lr2, n2, b2: wd * lr * n * b2 / (lr2 * n2 * b),
    "ex08.q3": lambda w, g, wd: float(np.max(np.abs(w - np.clip(w - g, -1 / wd, 1 / wd)))),
    "ex08.q4": _box_run,
    "ex09.q1": lambda lr, wd, n, rho, b1: (np.sqrt(lr * rho**2 * n / (2 * wd)), np.sqrt(2 * lr * wd * (1 - b1) / (1 + b1))),
    "ex09.q2": lambda lrs, peak, wd: (1 - lrs * wd, 1 - lrs * (wd * lrs / peak)),
    "ex09.q3": _norm_runs,
    "ex09.q4": lambda w, g, m, v, t, lr, wd: _cautious(w, g, m, v, t, lr, wd),
})

MISTAKES.update({
    "ex08.q1": {
        "lr forgotten (1/lambda)": lambda lr, wd, n, b: _tau(lr, wd, n, b, with_lr=False),
        "epochs multiplied by steps per epoch": lambda lr, wd, n, b: _tau(lr, wd, n, b, epochs="multiply"),
        "half-life instead of the timescale": lambda lr, wd, n, b: _tau(lr, wd, n, b, half_life=True),
        "an epoch taken as N steps (batch forgotten)": lambda lr, wd, n, b: _tau(lr, wd, n, b, with_batch=False),
        "exact -1/ln(1 - lr lambda)": lambda lr, wd, n, b: (-1 / np.log1p(-lr * wd), -b / (n * np.log1p(-lr * wd))),
    },
    "ex08.q2": {
        "lambda grows with N": lambda *a: _transfer(*a, n_inverted=True),
        "lr ratio forgotten (lambda, not lr lambda, kept fixed)": lambda *a: _transfer(*a, use_lr=False),
        "batch size forgotten": lambda *a: _transfer(*a, use_b=False),
        "batch ratio inverted": lambda *a: _transfer(*a, b_inverted=True),
        "timescale in steps kept (iso lr lambda only)": lambda *a: _transfer(*a, use_n=False, use_b=False),
    },
    "ex08.q3": {
        "no projection (gradient norm)": lambda w, g, wd: float(np.max(np.abs(g))),
        "box radius lambda instead of 1/lambda": lambda w, g, wd: _kkt(w, g, wd, radius=wd),
        "step along +grad": lambda w, g, wd: _kkt(w, g, wd, sign=1.0),
        "L2 norm of the residual": lambda w, g, wd: _kkt(w, g, wd, norm="l2"),
        "ridge condition |grad + lambda w|": lambda w, g, wd: float(np.max(np.abs(g + wd * w))),
    },
    "ex08.q4": {
        "constant learning rate": lambda X, y, lr, wd, T: _box_run(X, y, lr, wd, T, schedule="constant"),
        "cosine with t from 0": lambda X, y, lr, wd, T: _box_run(X, y, lr, wd, T, schedule="from 0"),
        "box radius 1/(lr lambda)": lambda X, y, lr, wd, T: _box_run(X, y, lr, wd, T, radius="1/(lr lambda)"),
        "box radius lambda": lambda X, y, lr, wd, T: _box_run(X, y, lr, wd, T, radius="lambda"),
        "{0,1}-label gradient on +-1 labels": lambda X, y, lr, wd, T: _box_run(X, y, lr, wd, T, labels="01"),
        "Adam + L2 instead of AdamW": lambda X, y, lr, wd, T: _box_run(X, y, lr, wd, T, rule="l2"),
        "float32 computation": lambda X, y, lr, wd, T: tuple(
            np.float64(o) for o in f32(lambda *a: _box_run(*a))(X, y, lr, wd, T)),
    },
    "ex09.q1": {
        "without the 2": lambda *a: _equilibrium(*a, two=False),
        "squared norm (no square root)": lambda *a: _equilibrium(*a, sqrt=False),
        "rho instead of rho squared": lambda *a: _equilibrium(*a, rho_sq=False),
        "momentum factor forgotten": lambda *a: _equilibrium(*a, beta_factor=False),
        "angle in degrees": lambda *a: _equilibrium(*a, degrees=True),
    },
    "ex09.q2": {
        "lr_t lambda / lr_max, proportional to lr_t (independent decay)": lambda *a: _factors(*a, corrected="linear"),
        "lr_t squared without dividing by lr_max": lambda *a: _factors(*a, corrected="no peak"),
        "divided by lr_max squared": lambda *a: _factors(*a, corrected="peak squared"),
        "lr_max taken as the first step's lr": lambda *a: _factors(*a, peak_from="first"),
    },
    "ex09.q3": {
        "decay proportional to lr_t, not lr_t squared": lambda *a: _norm_runs(*a, corrected="linear"),
        "shrink factor not squared": lambda *a: _norm_runs(*a, square_factor=False),
        "update adds lr_t C, not lr_t^2 C": lambda *a: _norm_runs(*a, lr_sq=False),
        "n0 included": lambda *a: _norm_runs(*a, with_n0=True),
        "squared norms returned": lambda *a: _norm_runs(*a, squared=True),
        "update added before the shrink": lambda *a: _norm_runs(*a, add_first=True),
    },
    "ex09.q4": {
        "mask from sign(g), not sign(u)": lambda *a: _cautious(*a, mask="g"),
        "mask u w >= 0 (decays where u = 0)": lambda *a: _cautious(*a, strict=False),
        "mask from the previous momentum": lambda *a: _cautious(*a, mask="m_prev"),
        "decay everywhere (plain AdamW)": lambda *a: _cautious(*a, mask="all"),
        "mask inverted (decay where signs differ)": lambda *a: _cautious(*a, invert=True),
        "decay applied to the updated w": lambda *a: _cautious(*a, decay_w="new"),
    },
})
