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
