"""NumPy float64 reference of every update rule in the book.

Each function is one optimizer step written the way the book writes the
formula, with no tricks for speed: it is the ground truth that the PyTorch,
foreach, Triton and compiled implementations are tested against.

Notation (the book's 符号表): ``w`` weights, ``g`` gradient of the data loss,
``m``/``v`` first and second moments, ``t`` the step number starting at 1,
``lr`` the learning rate η, ``weight_decay`` λ, ``betas`` (β₁, β₂), ``eps`` ε.

Decay convention: like ``torch.optim.AdamW``, the decay is multiplied by the
learning rate, ``w ← (1 − η·λ)·w``.  The paper's convention (Loshchilov &
Hutter, Algorithm 2) multiplies λ by the schedule multiplier only; see
:func:`paper_to_pytorch_weight_decay`.
"""
from __future__ import annotations

import numpy as np


def adam_direction(g, m, v, t, *, betas=(0.9, 0.999), eps=1e-8):
    """Update the moments with gradient ``g`` and return ``(direction, m, v)``.

    ``direction = m̂ / (√v̂ + ε)`` is the adaptive step before it is scaled by
    the learning rate; ``m̂ = m/(1-β₁ᵗ)`` and ``v̂ = v/(1-β₂ᵗ)`` are the
    bias-corrected moments.
    """
    beta1, beta2 = betas
    m = beta1 * m + (1 - beta1) * g
    v = beta2 * v + (1 - beta2) * g**2
    m_hat = m / (1 - beta1**t)
    v_hat = v / (1 - beta2**t)
    return m_hat / (np.sqrt(v_hat) + eps), m, v


def adamw_step(w, g, m, v, t, *, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2):
    """AdamW: decoupled decay, ``w ← (1 − ηλ)·w − η·m̂/(√v̂+ε)``. Returns ``(w, m, v)``."""
    direction, m, v = adam_direction(g, m, v, t, betas=betas, eps=eps)
    w = (1 - lr * weight_decay) * w - lr * direction
    return w, m, v


def adam_l2_step(w, g, m, v, t, *, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2):
    """Adam + L2: ``λw`` joins the gradient *before* the moments. Returns ``(w, m, v)``.

    This is ``torch.optim.Adam(weight_decay=λ)``: the decay passes through
    ``1/(√v̂+ε)`` and is therefore coupled to the gradient history.
    """
    direction, m, v = adam_direction(g + weight_decay * w, m, v, t, betas=betas, eps=eps)
    w = w - lr * direction
    return w, m, v


def adamw_prox_step(w, g, m, v, t, *, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2):
    """AdamW with the exact proximal decay: ``w ← (w − η·m̂/(√v̂+ε)) / (1 + ηλ)``.

    ``w̃ / (1 + ηλ)`` is the proximal map of ``(λ/2)‖w‖²`` with step η; the
    usual ``(1 − ηλ)`` factor is its first-order Taylor expansion.
    """
    direction, m, v = adam_direction(g, m, v, t, betas=betas, eps=eps)
    w = (w - lr * direction) / (1 + lr * weight_decay)
    return w, m, v


def sgd_l2_step(w, g, buf, *, lr=1e-2, momentum=0.9, weight_decay=1e-2):
    """SGD with momentum and L2 (``torch.optim.SGD(weight_decay=λ)``). Returns ``(w, buf)``."""
    buf = momentum * buf + (g + weight_decay * w)
    return w - lr * buf, buf


def sgdw_step(w, g, buf, *, lr=1e-2, momentum=0.9, weight_decay=1e-2):
    """SGD with momentum and decoupled decay (SGDW). Returns ``(w, buf)``."""
    buf = momentum * buf + g
    return (1 - lr * weight_decay) * w - lr * buf, buf


def paper_to_pytorch_weight_decay(paper_weight_decay, lr):
    """Convert the paper's λ (decay ``s_t·λ``) to PyTorch's (decay ``η_t·λ``).

    The paper shrinks by ``s_t·λ_paper`` where ``s_t`` is the schedule
    multiplier; PyTorch shrinks by ``η_t·λ_torch`` with the scheduled learning
    rate ``η_t = lr·s_t``.  The two agree when ``λ_torch = λ_paper / lr``.
    """
    return paper_weight_decay / lr


def pytorch_to_paper_weight_decay(pytorch_weight_decay, lr):
    """Inverse of :func:`paper_to_pytorch_weight_decay`: ``λ_paper = lr·λ_torch``."""
    return pytorch_weight_decay * lr
