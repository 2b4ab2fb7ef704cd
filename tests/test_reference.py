"""The float64 reference reproduces the closed forms of the book."""
import math

import numpy as np
import pytest

from adamw_lab import reference as R

W0 = np.array([0.5, -2.0, 1e-3, -3e-4])
ZERO = np.zeros_like(W0)


def test_adamw_zero_gradient_step_is_pure_shrinkage():
    lr, wd = 1e-3, 1e-2
    w1, m, v = R.adamw_step(W0, ZERO, ZERO, ZERO, 1, lr=lr, weight_decay=wd)
    np.testing.assert_allclose(w1, (1 - lr * wd) * W0, rtol=1e-15)
    assert not m.any() and not v.any()


def test_adam_l2_zero_gradient_step_is_about_sign():
    lr, wd, eps = 1e-3, 1e-2, 1e-8
    w1, _, _ = R.adam_l2_step(W0, ZERO, ZERO, ZERO, 1, lr=lr, weight_decay=wd, eps=eps)
    np.testing.assert_allclose(w1, W0 - lr * wd * W0 / (wd * np.abs(W0) + eps), rtol=1e-12)
    # ≈ w0 − η·sign(w0) whatever the size of w0 (as long as λ|w0| ≫ ε): the decay is
    # not proportional to w; the relative gap is ε/(λ|w0|+ε), 0.3 % for |w0| = 3e-4
    np.testing.assert_allclose(W0 - w1, lr * np.sign(W0), rtol=eps / (wd * np.abs(W0).min()))


def test_half_life():
    lr, wd = 1e-3, 1e-2
    exact = math.log(0.5) / math.log(1 - lr * wd)
    assert round(exact, 2) == 69314.37
    assert round(math.log(2) / (lr * wd), 2) == 69314.72
    # iterating the zero-gradient AdamW step halves w after ceil(exact) steps, not before
    n = math.ceil(exact)
    assert (1 - lr * wd) ** n <= 0.5 < (1 - lr * wd) ** (n - 1)


def test_prox_step_is_the_proximal_map():
    """(w̃)/(1+ηλ) minimises (λ/2)‖u‖² + ‖u − w̃‖²/(2η), and differs from (1−ηλ)w̃ by O((ηλ)²)."""
    lr, wd = 0.1, 0.5
    g = np.array([0.3, -0.1, 2.0, 0.0])
    w_prox, m, v = R.adamw_prox_step(W0, g, ZERO, ZERO, 1, lr=lr, weight_decay=wd)
    direction, _, _ = R.adam_direction(g, ZERO, ZERO, 1)
    w_tilde = W0 - lr * direction
    objective = lambda u: wd / 2 * u @ u + (u - w_tilde) @ (u - w_tilde) / (2 * lr)
    rng = np.random.default_rng(0)
    for _ in range(100):
        assert objective(w_prox) <= objective(w_prox + 1e-3 * rng.normal(size=4))
    w_taylor = (1 - lr * wd) * w_tilde
    np.testing.assert_allclose(w_prox - w_taylor, (lr * wd) ** 2 / (1 + lr * wd) * w_tilde, rtol=1e-12)


@pytest.mark.parametrize("lr", [0.01, 0.3])
def test_sgd_l2_equals_sgdw_without_momentum_history(lr):
    """For plain SGD (one step from a zero buffer) L2 and decoupled decay coincide."""
    g = np.array([0.2, -1.0, 0.0, 3.0])
    w_l2, _ = R.sgd_l2_step(W0, g, ZERO, lr=lr, weight_decay=0.1)
    w_dec, _ = R.sgdw_step(W0, g, ZERO, lr=lr, weight_decay=0.1)
    np.testing.assert_allclose(w_l2, w_dec, rtol=1e-15)


def test_convention_conversion_round_trip():
    lam = R.paper_to_pytorch_weight_decay(1e-4, lr=1e-3)
    assert lam == pytest.approx(0.1)
    assert R.pytorch_to_paper_weight_decay(lam, lr=1e-3) == pytest.approx(1e-4)
