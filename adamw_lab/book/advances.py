"""Helpers of Part IV (新进展): the experiments after Loshchilov & Hutter.

* ℓ∞ view (Xie & Li 2024): :func:`logistic_problem`, :func:`logistic_grad`,
  :func:`run_full_batch`, :func:`box_solution`, :func:`kkt_residual`.
* Statistics shared by the chapters: :func:`paired_interval`.
"""
from __future__ import annotations

import math

import numpy as np

from adamw_lab import reference
from adamw_lab.reference_variants import box_projection


# ----------------------------------------------------------------- statistics
def paired_interval(diff, level: float = 0.95):
    """Mean of paired differences (one per seed) and its two-sided ``level`` t-interval.

    Returns ``(mean, low, high)``; ``diff`` is 1-D with at least two entries.
    """
    from scipy import stats

    d = np.asarray(diff, dtype=np.float64).ravel()
    if d.size < 2:
        raise ValueError(f"paired_interval needs at least 2 paired differences, got {d.size}")
    mean = float(d.mean())
    half = float(stats.t.ppf(0.5 + level / 2, d.size - 1) * d.std(ddof=1) / math.sqrt(d.size))
    return mean, mean - half, mean + half


def verdict(low: float, high: float, what_if_positive: str, what_if_negative: str) -> str:
    """The verdict an interval allows: one side, or 'no difference detected' when it holds 0."""
    if low > 0:
        return what_if_positive
    if high < 0:
        return what_if_negative
    return "区间含 0：未测出差别"


# ----------------------------------------------------------------- the l-infinity view
def logistic_problem(n: int = 200, d: int = 8, scale: float = 3.0, seed: int = 0):
    """A non-separable logistic regression whose unconstrained optimum has large coordinates.

    Features ``X ~ N(0, I)`` [n, d]; labels ``y in {-1, +1}`` drawn from the
    logistic model with true weights ``scale * linspace(1, -1, d)`` (so a few
    coordinates are large, one or two near zero).  Returns ``(X, y)`` as float64.
    """
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    w_true = scale * np.linspace(1.0, -1.0, d)
    p = 1.0 / (1.0 + np.exp(-X @ w_true))
    y = np.where(rng.random(n) < p, 1.0, -1.0)
    return X, y


def logistic_loss(w, X, y):
    """Mean logistic loss ``mean log(1 + exp(-y x·w))``; ``w`` is [d] or [S, d] (then X [S, n, d])."""
    z = y * np.einsum("...nd,...d->...n", X, w)
    return np.logaddexp(0.0, -z).mean(-1)


def logistic_grad(w, X, y):
    """Gradient of :func:`logistic_loss` with respect to ``w`` (same shape as ``w``)."""
    z = y * np.einsum("...nd,...d->...n", X, w)
    s = -y * np.exp(-np.logaddexp(0.0, z))          # -y * sigmoid(-z), stable
    return np.einsum("...n,...nd->...d", s, X) / X.shape[-2]


def run_full_batch(X, y, *, lr, weight_decay, steps: int, rule="adamw", schedule=None,
                   betas=(0.9, 0.999), eps=1e-8, record=()):
    """Full-batch training with a NumPy reference rule from ``w = 0``.

    ``rule`` is ``"adamw"`` or ``"adam_l2"``; ``schedule(t)`` (t = 1..steps)
    multiplies ``lr``.  ``X`` may carry a leading batch of problems [S, n, d];
    ``weight_decay`` may be an array that broadcasts against ``w`` ([..., S, d],
    e.g. shape [L, 1, 1] for L values of λ).  Returns ``(w_final, {t: w_t for t in record})``.
    """
    rules = {"adamw": reference.adamw_step, "adam_l2": reference.adam_l2_step}
    if rule not in rules:
        raise ValueError(f"Invalid rule: {rule!r} (choose from {tuple(rules)})")
    step = rules[rule]
    w = np.zeros(np.broadcast_shapes(X.shape[:-2] + X.shape[-1:], np.shape(weight_decay)))
    m, v = np.zeros_like(w), np.zeros_like(w)
    saved = {}
    for t in range(1, steps + 1):
        lr_t = lr * (schedule(t) if schedule is not None else 1.0)
        w, m, v = step(w, logistic_grad(w, X, y), m, v, t, lr=lr_t, betas=betas, eps=eps,
                       weight_decay=weight_decay)
        if t in record:
            saved[t] = w.copy()
    return w, saved


def box_solution(X, y, radius: float):
    """The minimiser of the mean logistic loss subject to ``‖w‖∞ ≤ radius`` (L-BFGS-B, tight
    tolerance); ``radius=np.inf`` gives the unconstrained optimum.  One problem: X [n, d]."""
    from scipy.optimize import minimize

    d = X.shape[1]
    res = minimize(lambda w: (logistic_loss(w, X, y), logistic_grad(w, X, y)), np.zeros(d),
                   jac=True, method="L-BFGS-B", bounds=[(-radius, radius)] * d,
                   options=dict(ftol=1e-15, gtol=1e-12, maxiter=10_000))
    return res.x


def kkt_residual(w, X, y, radius: float):
    """KKT residual of ``min L(w) s.t. ‖w‖∞ ≤ radius``: ``‖w − Π(w − ∇L(w))‖∞``.

    Zero exactly at a KKT point: inside the box the gradient vanishes; on a
    face ``w_i = ±radius`` the gradient points outward (``−sign(w_i)·∂_i L ≥ 0``).
    It is also non-zero outside the box.  Works on [d] or a batch [S, d] (returns [S]).
    """
    g = logistic_grad(w, X, y)
    return np.abs(w - box_projection(w - g, radius)).max(-1)
