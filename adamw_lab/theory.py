"""Closed forms used by Part I (原理与机制) and its tests.

Every function is a formula from the book, written so that the chapters can
show its source with ``inspect.getsource``.  Conventions follow
``adamw_lab.reference``: PyTorch's decay ``w ← (1 − η·λ)·w`` with ``lr`` = η
and ``weight_decay`` = λ.
"""
from __future__ import annotations

import math

import numpy as np

from adamw_lab import reference


def effective_l2_decay(lr, weight_decay, v_hat, eps=1e-8):
    """Per-coordinate shrink rate of the L2 term under Adam+L2.

    The L2 gradient ``λw`` is divided by ``√v̂+ε``, so coordinate i is pulled
    towards zero at the rate ``η·λ/(√v̂ᵢ+ε)`` per step (AdamW: ``η·λ`` for all).
    """
    return lr * weight_decay / (np.sqrt(v_hat) + eps)


def coupling_ratio(v_hat_a, v_hat_b, eps=1e-8):
    """How many times stronger Adam+L2 decays coordinate a than coordinate b.

    ``(√v̂_b+ε)/(√v̂_a+ε)``; it is 1 for AdamW whatever the gradients.
    """
    return (np.sqrt(v_hat_b) + eps) / (np.sqrt(v_hat_a) + eps)


def effective_prior_precision(weight_decay, v_hat, eps=1e-8):
    """Per-coordinate prior precision that AdamW's fixed point corresponds to.

    At a fixed point of AdamW, ``m̂/(√v̂+ε) + λw = 0`` with ``m̂ = ∇J``, i.e.
    ``∇J + λ(√v̂+ε)·w = 0``: the MAP of a Gaussian prior with precision
    ``λ(√v̂ᵢ+ε)`` per coordinate.  Adam+L2's fixed point is ``∇J + λw = 0``.
    """
    return weight_decay * (np.sqrt(v_hat) + eps)


def zero_gradient_step(w0, lr, weight_decay, eps=1e-8):
    """First step from ``m₀ = v₀ = 0`` when the data gradient is zero.

    Returns ``(w1_adamw, w1_adam_l2)``: AdamW gives ``(1 − ηλ)·w₀``; Adam+L2
    gives ``w₀ − η·λw₀/(λ|w₀| + ε) ≈ w₀ − η·sign(w₀)``.
    """
    w0 = np.asarray(w0, dtype=float)
    w1_adamw = (1 - lr * weight_decay) * w0
    w1_adam_l2 = w0 - lr * weight_decay * w0 / (weight_decay * np.abs(w0) + eps)
    return w1_adamw, w1_adam_l2


def half_life_exact(lr, weight_decay):
    """Steps until ``(1 − ηλ)ᵗ = 1/2``: ``ln(0.5)/ln(1 − ηλ)``."""
    return math.log(0.5) / math.log1p(-lr * weight_decay)


def half_life_approx(lr, weight_decay):
    """First-order half-life ``ln 2/(ηλ)``, valid when ``ηλ ≪ 1``."""
    return math.log(2) / (lr * weight_decay)


def ema_weight(lr, weight_decay, t):
    """``(1 − ηλ)ᵗ``: what is left of ``w₀`` after t gradient-free AdamW steps."""
    return (1 - lr * weight_decay) ** t


def proximal_gap(lr, weight_decay):
    """``1/(1+ηλ) − (1−ηλ) = (ηλ)²/(1+ηλ)``: exact prox minus AdamW's factor."""
    x = lr * weight_decay
    return 1 / (1 + x) - (1 - x)


def critical_weight_decay(w, m_prev, v_prev, t, betas=(0.9, 0.999), eps=1e-8):
    """λ* at which residual momentum exactly cancels AdamW's decay at step t.

    With a zero gradient at step t the moments only decay, ``m_t = β₁m_{t−1}``
    and ``v_t = β₂v_{t−1}``, and the step is
    ``Δw = −η·(u + λw)`` with ``u = m̂_t/(√v̂_t+ε)``.  It vanishes for
    ``λ* = −u/w`` (positive when the momentum points away from zero).  The
    learning rate cancels (PyTorch convention); in the paper's convention,
    ``λ*_paper = α·λ*``.
    """
    u, _, _ = reference.adam_direction(0.0, m_prev, v_prev, t, betas=betas, eps=eps)
    return -u / w


def decay_share(w, m_hat, v_hat, weight_decay, eps):
    """Share of the decay in an AdamW step: ``λ|w| / (λ|w| + |m̂|/(√v̂+ε))``.

    The learning rate multiplies both parts and cancels; the share grows with ε.
    """
    decay = weight_decay * np.abs(w)
    grad = np.abs(m_hat) / (np.sqrt(v_hat) + eps)
    return decay / (decay + grad)


def flip_trajectory(step, G, flip_at, steps, w0=1.0, **hyper):
    """Run ``step`` (a ``reference`` rule) on the gradient ``+G`` then ``−G``.

    The data gradient is ``+G`` for the first ``flip_at`` steps and ``−G``
    after.  Returns the weights ``w_0 … w_steps`` as an array.
    """
    w, m, v = float(w0), 0.0, 0.0
    ws = [w]
    for t in range(1, steps + 1):
        g = G if t <= flip_at else -G
        w, m, v = step(w, g, m, v, t, **hyper)
        ws.append(w)
    return np.array(ws)


def overshoot_steps(ws, flip_at):
    """Steps after the flip that still move the weight the old way (down)."""
    dw = np.diff(ws)[flip_at:]
    n = 0
    for d in dw:
        if d < 0:
            n += 1
        else:
            break
    return n
