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
    """λ⋆ at which residual momentum exactly cancels AdamW's decay at step t.

    With a zero gradient at step t the moments only decay, ``m_t = β₁m_{t−1}``
    and ``v_t = β₂v_{t−1}``, and the step is
    ``Δw = −η·(u + λw)`` with ``u = m̂_t/(√v̂_t+ε)``.  It vanishes for
    ``λ⋆ = −u/w`` (positive when the momentum points away from zero).  The
    learning rate cancels (PyTorch convention); in the paper's convention,
    ``λ⋆_paper = α·λ⋆`` (α: the paper's base step size, our η).
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


def flip_start(step, G, flip_at, w_flip, **hyper):
    """The ``w0`` from which ``flip_trajectory`` reaches ``w_flip`` at the flip.

    The weight at the flip differs between methods from the same ``w0``,
    which confounds a comparison of overshoots; starting each method from its
    own ``w0`` puts them all at ``w_flip`` when the gradient changes sign.
    ``w_flip`` grows with ``w0`` for every ``reference`` rule, so a bracket is
    widened until it holds the answer and then bisected.
    """
    def at_flip(w0):
        return flip_trajectory(step, G, flip_at, flip_at, w0=w0, **hyper)[-1]

    lo, hi = w_flip - 1.0, w_flip + 1.0
    while at_flip(lo) > w_flip:
        lo -= 2 * (hi - lo)
    while at_flip(hi) < w_flip:
        hi += 2 * (hi - lo)
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        if at_flip(mid) < w_flip:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def eps_half(w, m_hat, v_hat, weight_decay):
    """The ε at which the decay is half of an AdamW step: ``|m̂|/(λ|w|) − √v̂``.

    Solving ``decay_share(w, m̂, v̂, λ, ε) = 1/2``, i.e. ``λ|w| = |m̂|/(√v̂+ε)``,
    for ε.  A negative value means the decay already dominates at ε = 0.
    """
    return np.abs(m_hat) / (weight_decay * np.abs(w)) - np.sqrt(v_hat)


def prox_step_gap(w, u, lr, weight_decay):
    """One step of exact-prox AdamW minus one step of AdamW from the same state.

    With ``u = m̂/(√v̂+ε)``, the prox step is ``(w − ηu)/(1+ηλ)`` and AdamW's
    is ``(1−ηλ)w − ηu``; their difference is
    ``ηλ·(ηλ·w + η·u)/(1+ηλ) = [(ηλ)²w + η²λu]/(1+ηλ)``.  The second term
    comes from the prox shrinking ``w̃ = w − ηu`` instead of ``w``; it
    dominates when ``λ|w| ≪ |u|``.
    """
    x = lr * weight_decay
    return x * (x * w + lr * u) / (1 + x)


def adam_update_bound(betas, t):
    """Largest ``|m̂_t|/√v̂_t`` over all gradient sequences g₁ … g_t (ε = 0).

    ``m̂_t = Σ aₖgₖ`` and ``v̂_t = Σ bₖgₖ²`` with EMA weights ``aₖ``, ``bₖ``
    that each sum to 1; by Cauchy–Schwarz ``|m̂_t| ≤ √(Σ aₖ²/bₖ)·√v̂_t``, with
    equality for ``gₖ ∝ aₖ/bₖ``.  The sum is geometric in ``β₁²/β₂``, so the
    bound stays finite as t grows only when ``β₁² < β₂``.  It is 1 at t = 1
    and for β₁ = β₂; for a stationary gradient the averages give
    ``|E g|/√(E g²) ≤ 1`` instead.
    """
    beta1, beta2 = betas
    r = beta1**2 / beta2               # Σ aₖ²/bₖ is a geometric sum in r
    geometric = t if r == 1 else (1 - r**t) / (1 - r)
    scale = (1 - beta1) * math.sqrt(1 - beta2**t) / ((1 - beta1**t) * math.sqrt(1 - beta2))
    return scale * math.sqrt(geometric)


def weight_envelope(w0, lrs, weight_decay, update_bound=1.0):
    """Bound on ``|w_t|`` under AdamW when every ``|m̂/(√v̂+ε)| ≤ update_bound``.

    ``w_t = (1 − η_tλ)w_{t−1} − η_t u_t`` with ``|u_t| ≤ U`` gives
    ``|w_t| ≤ (1 − η_tλ)|w_{t−1}| + η_t U``: an EMA of ``|w_0|`` towards
    ``U/λ``.  ``lrs`` are the scheduled learning rates ``η_1 … η_T``; returns
    the bound for ``w_0 … w_T``.
    """
    lrs = np.asarray(lrs, dtype=float)
    if weight_decay <= 0 or np.any(lrs * weight_decay > 1):
        raise ValueError("weight_envelope needs weight_decay > 0 and lr*weight_decay <= 1 at every step")
    b = [float(np.max(np.abs(w0)))]
    for lr in lrs:
        b.append((1 - lr * weight_decay) * b[-1] + lr * update_bound)
    return np.array(b)


def uncorrected_step_ratio(betas, t):
    """``m_t/√v_t`` over ``m̂_t/√v̂_t`` for a constant gradient: ``(1−β₁ᵗ)/√(1−β₂ᵗ)``.

    How much larger (or smaller) Adam's step would be without bias correction.
    """
    beta1, beta2 = betas
    t = np.asarray(t, dtype=float)
    return (1 - beta1**t) / np.sqrt(1 - beta2**t)


def sgd_l2_decay_rate(lr, weight_decay, momentum):
    """Per-step shrink rate of SGD+L2 with momentum when the data gradient is zero.

    ``buf_t = β·buf_{t−1} + λw_{t−1}``, ``w_t = w_{t−1} − η·buf_t`` is linear in
    ``(w, buf)``; its slow eigenvalue is the root of
    ``x² − (1+β−ηλ)x + β = 0`` closest to 1, and the rate is ``1 − x``
    (≈ ``ηλ/(1−β)`` when ``ηλ ≪ (1−β)²``).  SGDW shrinks at ``ηλ``.
    """
    s = 1 + momentum - lr * weight_decay
    disc = s * s - 4 * momentum
    if disc < 0:
        raise ValueError("oscillating regime (lr*weight_decay > (1-sqrt(momentum))**2): no single rate")
    return 1 - (s + math.sqrt(disc)) / 2


def weight_decay_for_half_life(lr, half_life):
    """The λ whose gradient-free half-life is ``half_life`` steps at learning rate η.

    Inverts ``half_life_exact``: ``λ = (1 − 2^(−1/t½))/η``.
    """
    return -math.expm1(-math.log(2) / half_life) / lr
