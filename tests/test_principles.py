"""Key claims of Part I (book/principles), checked through adamw_lab."""
import math

import numpy as np
import pytest
import torch

from adamw_lab import reference as R
from adamw_lab import theory as T


def test_sgd_l2_equals_sgdw_without_momentum():
    rng = np.random.default_rng(0)
    w1 = w2 = rng.normal(size=5)
    b1 = b2 = np.zeros(5)
    for _ in range(20):
        g = rng.normal(size=5)
        w1, b1 = R.sgd_l2_step(w1, g, b1, lr=0.1, momentum=0.0, weight_decay=0.3)
        w2, b2 = R.sgdw_step(w2, g, b2, lr=0.1, momentum=0.0, weight_decay=0.3)
    np.testing.assert_allclose(w1, w2, rtol=1e-12)


def test_coupling_ratio_matches_measured_l2_decay():
    # two coordinates, gradient scales 1 and 0.01: Adam+L2 decays the small one ~100x more
    v_hat = np.array([1.0, 1e-4])
    rate = T.effective_l2_decay(1e-3, 1e-2, v_hat)
    assert T.coupling_ratio(v_hat[1], v_hat[0]) == pytest.approx(rate[1] / rate[0])
    assert T.coupling_ratio(v_hat[1], v_hat[0]) == pytest.approx(100.0, rel=1e-5)
    # measured: the L2 part of an Adam+L2 step with v̂ fixed
    w = np.array([1.0, 1.0])
    direction_l2 = (1e-2 * w) / (np.sqrt(v_hat) + 1e-8)
    np.testing.assert_allclose(1e-3 * direction_l2, rate * w)


def test_effective_prior_is_fixed_point_of_adamw():
    # AdamW on J = a/2 (w - c)^2 with noiseless gradients; at the fixed point
    # a(w-c) + λ(√v̂+ε) w = 0
    a, c, lam, eps = 2.0, 1.0, 0.5, 1e-3
    w, m, v = 0.0, 0.0, 0.0
    for t in range(1, 40001):
        w, m, v = R.adamw_step(w, a * (w - c), m, v, t, lr=1e-3, betas=(0.9, 0.999), eps=eps, weight_decay=lam)
    v_hat = v / (1 - 0.999**40000)
    prec = T.effective_prior_precision(lam, v_hat, eps)
    assert a * (w - c) + prec * w == pytest.approx(0.0, abs=1e-4)
    # while Adam+L2's fixed point is the isotropic MAP a c /(a + λ)
    w, m, v = 0.0, 0.0, 0.0
    for t in range(1, 40001):
        w, m, v = R.adam_l2_step(w, a * (w - c), m, v, t, lr=1e-3, betas=(0.9, 0.999), eps=eps, weight_decay=lam)
    assert w == pytest.approx(a * c / (a + lam), abs=1e-3)


@pytest.mark.parametrize("w0", [0.5, -2.0, 10.0])
def test_zero_gradient_step(w0):
    lr, lam = 1e-3, 1e-2
    w_adamw, _, _ = R.adamw_step(w0, 0.0, 0.0, 0.0, 1, lr=lr, weight_decay=lam)
    w_l2, _, _ = R.adam_l2_step(w0, 0.0, 0.0, 0.0, 1, lr=lr, weight_decay=lam)
    closed = T.zero_gradient_step(w0, lr, lam)
    assert w_adamw == pytest.approx((1 - lr * lam) * w0) == pytest.approx(closed[0])
    assert w_l2 == pytest.approx(closed[1])
    assert w0 - w_l2 == pytest.approx(lr * np.sign(w0), rel=1e-4)


def test_half_life():
    assert T.half_life_exact(1e-3, 1e-2) == pytest.approx(69314.37, abs=0.01)
    assert T.half_life_approx(1e-3, 1e-2) == pytest.approx(69314.72, abs=0.01)
    h = T.half_life_exact(1e-2, 1e-1)
    assert T.ema_weight(1e-2, 1e-1, h) == pytest.approx(0.5)
    assert T.half_life_exact(1e-3, 1e-2) < T.half_life_approx(1e-3, 1e-2)


def test_proximal_gap_is_second_order():
    for x in [1e-1, 1e-2, 1e-3]:
        gap = T.proximal_gap(x, 1.0)
        assert gap == pytest.approx(x**2 / (1 + x), rel=1e-6)
        assert 0 < gap <= x**2
    assert T.proximal_gap(1e-2, 1) / T.proximal_gap(1e-3, 1) == pytest.approx(100, rel=0.01)
    w, _, _ = R.adamw_prox_step(1.0, 0.0, 0.0, 0.0, 1, lr=0.1, weight_decay=0.5)
    assert w == pytest.approx(1 / 1.05)


def test_critical_weight_decay_cancels_the_step():
    w, m_prev, v_prev, t = 1.0, -0.02, 1e-3, 20
    lam = T.critical_weight_decay(w, m_prev, v_prev, t)
    assert lam > 0
    w_new, _, _ = R.adamw_step(w, 0.0, m_prev, v_prev, t, lr=1e-2, weight_decay=lam)
    assert w_new == pytest.approx(w, abs=1e-12)
    # just above λ* the weight shrinks, just below it grows
    assert R.adamw_step(w, 0.0, m_prev, v_prev, t, lr=1e-2, weight_decay=1.01 * lam)[0] < w
    assert R.adamw_step(w, 0.0, m_prev, v_prev, t, lr=1e-2, weight_decay=0.99 * lam)[0] > w


def test_decay_share_grows_with_eps():
    eps = np.logspace(-10, 1, 30)
    share = T.decay_share(1.0, 1e-3, 1e-6, 1e-2, eps)
    assert np.all(np.diff(share) > 0)
    assert share[0] < 0.5 < share[-1]


def test_overshoot_under_gradient_flip():
    h = dict(lr=1e-2, betas=(0.9, 0.999), eps=1e-8)
    base = T.flip_trajectory(R.adamw_step, 1.0, 50, 150, weight_decay=0.0, **h)
    aw = T.flip_trajectory(R.adamw_step, 1.0, 50, 150, weight_decay=1.0, **h)
    l2 = T.flip_trajectory(R.adam_l2_step, 1.0, 50, 150, weight_decay=1.0, **h)
    assert T.overshoot_steps(base, 50) >= 1
    assert T.overshoot_steps(aw, 50) > T.overshoot_steps(base, 50)
    assert T.overshoot_steps(l2, 50) > T.overshoot_steps(base, 50)
    # the first wrong-way AdamW step is the Adam step plus η·λ·w (decay adds to it)
    w, m, v = 1.0, 0.0, 0.0
    for t in range(1, 51):
        w, m, v = R.adamw_step(w, 1.0, m, v, t, weight_decay=1.0, **h)
    u, _, _ = R.adam_direction(-1.0, m, v, 51, betas=h["betas"], eps=h["eps"])
    assert u > 0
    assert aw[51] - aw[50] == pytest.approx(-1e-2 * u - 1e-2 * 1.0 * aw[50])


def test_reference_matches_torch_adamw():
    torch.manual_seed(0)
    p = torch.nn.Parameter(torch.randn(50, dtype=torch.float64))
    opt = torch.optim.AdamW([p], lr=1e-2, weight_decay=0.1)
    w, m, v = p.detach().numpy().copy(), np.zeros(50), np.zeros(50)
    rng = np.random.default_rng(0)
    for t in range(1, 201):
        g = rng.normal(size=50)
        p.grad = torch.from_numpy(g.copy())
        opt.step()
        w, m, v = R.adamw_step(w, g, m, v, t, lr=1e-2, weight_decay=0.1)
    assert np.max(np.abs(p.detach().numpy() - w)) < 1e-12


def test_convention_conversion():
    lr, lam_paper = 1e-3, 1e-5
    lam_torch = R.paper_to_pytorch_weight_decay(lam_paper, lr)
    assert lr * lam_torch == pytest.approx(lam_paper)
    assert math.isclose(R.pytorch_to_paper_weight_decay(lam_torch, lr), lam_paper)
