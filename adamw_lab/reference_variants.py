"""NumPy float64 reference of the weight-decay variants in :mod:`adamw_lab.variants`.

Written like the book's formulas, as in :mod:`adamw_lab.reference`; ``lr`` is
this step's learning rate ``η_t`` and ``max_lr`` the peak ``η_max``.
"""
from __future__ import annotations

import numpy as np

from adamw_lab.reference import adam_direction


def scheduled_decay_factor(decay, lr, max_lr, weight_decay):
    """The shrink factor of one step: ``1 − η_t λ`` (standard), ``1 − (η_t/η_max) λ``
    (independent) or ``1 − (η_t²/η_max) λ`` (corrected)."""
    per_step = {"standard": lr * weight_decay,
                "independent": lr / max_lr * weight_decay,
                "corrected": lr**2 / max_lr * weight_decay}
    if decay not in per_step:
        raise ValueError(f"Invalid decay: {decay!r} (choose from {tuple(per_step)})")
    return 1 - per_step[decay]


def scheduled_decay_adamw_step(w, g, m, v, t, *, lr, max_lr, decay="corrected", betas=(0.9, 0.999),
                               eps=1e-8, weight_decay=1e-2):
    """``w ← factor·w − η_t·m̂/(√v̂+ε)`` with :func:`scheduled_decay_factor`. Returns ``(w, m, v)``."""
    direction, m, v = adam_direction(g, m, v, t, betas=betas, eps=eps)
    w = scheduled_decay_factor(decay, lr, max_lr, weight_decay) * w - lr * direction
    return w, m, v


def cautious_adamw_step(w, g, m, v, t, *, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2):
    """Cautious decay: ``w ← w − η_t u − η_t λ·1[u ⊙ w > 0] ⊙ w``, ``u = m̂/(√v̂+ε)``. Returns ``(w, m, v)``."""
    u, m, v = adam_direction(g, m, v, t, betas=betas, eps=eps)
    agree = (u * w > 0).astype(w.dtype)
    w = w - lr * u - lr * weight_decay * agree * w
    return w, m, v


def box_projection(w, radius):
    """Projection onto the ℓ∞ ball ``‖w‖∞ ≤ radius`` (coordinate-wise clipping)."""
    return np.clip(w, -radius, radius)


# --- closed forms and small recurrences for the book's explorers --------------------


def warmup_cosine_lrs(max_lr, steps, warmup):
    """Learning rates ``η_t`` of the steps ``t = 0 … steps−1``: linear warm-up ``η_max (t+1)/warmup``
    for ``t < warmup``, then cosine annealing to 0 (the multiplier of the book's ``warmup_cosine``)."""
    steps, warmup = int(steps), int(warmup)
    t = np.arange(steps, dtype=float)
    p = (t - warmup) / max(1, steps - warmup)
    return max_lr * np.where(t < warmup, (t + 1) / max(1, warmup), 0.5 * (1 + np.cos(np.pi * p)))


def norm_recurrence(n0, lrs, factors, update_sq):
    """Norm of a scale-invariant weight (followed by a normalisation layer), step by step.

    Step t shrinks ``‖w‖`` by ``factors[t]`` and adds an update of squared size
    ``η_t² ρ²C`` orthogonal to ``w`` (``lrs[t] = η_t``, ``update_sq = ρ²C``):
    ``n²_{t+1} = f_t² n²_t + η_t² ρ²C``.  Returns ``n_0 = n0, n_1, …, n_T`` (T = ``len(lrs)``).
    """
    n2 = np.empty(len(lrs) + 1)
    n2[0] = float(n0) ** 2
    for t, (f, lr) in enumerate(zip(factors, lrs)):
        n2[t + 1] = f * f * n2[t] + lr * lr * update_sq
    return np.sqrt(n2)


def scale_invariant_norms(decay, max_lr, weight_decay, steps, warmup, n0, update_sq):
    """:func:`norm_recurrence` under warm-up + cosine (:func:`warmup_cosine_lrs`) with the
    shrink factors of :func:`scheduled_decay_factor`.  Returns ``n_0, …, n_steps``."""
    lrs = warmup_cosine_lrs(max_lr, steps, warmup)
    return norm_recurrence(n0, lrs, scheduled_decay_factor(decay, lrs, max_lr, weight_decay), update_sq)


def gradient_norm_rise(decay, max_lr, weight_decay, steps, warmup, n0, update_sq, late=(0.7, 0.9),
                       middle=(0.4, 0.5)):
    """Predicted rise of the gradient norm of a scale-invariant weight: mean ``1/‖w‖`` over the
    ``late`` fraction of the steps divided by its mean over the ``middle`` fraction.

    For such a weight ``‖g_t‖ = ‖g̃_t‖/‖w_t‖``; with ``‖g̃‖`` constant (noise-dominated training) the
    ratio of gradient norms is the inverse ratio of :func:`scale_invariant_norms` (the norm before
    step t, as a gradient is measured before its step).
    """
    steps = int(steps)
    inv = 1 / scale_invariant_norms(decay, max_lr, weight_decay, steps, warmup, n0, update_sq)[:steps]

    def mean(a, b):
        return inv[int(a * steps):int(b * steps)].mean()

    return float(mean(*late) / mean(*middle))


def box_radius(weight_decay):
    """Radius ``1/λ`` of the ℓ∞ box ``‖w‖∞ ≤ 1/λ`` that holds AdamW's stationary points."""
    if weight_decay <= 0:
        raise ValueError(f"box_radius needs weight_decay > 0, got {weight_decay!r}")
    return 1.0 / weight_decay
