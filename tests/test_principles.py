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


FLIP = dict(lr=1e-2, betas=(0.9, 0.999), eps=1e-8)


@pytest.mark.parametrize("lam", [0.1, 1.0, 3.0])
@pytest.mark.parametrize("flip_at", [25, 100])
def test_overshoot_depends_on_the_weight_at_the_flip(lam, flip_at):
    # each method starts where it reaches the same w at the flip (flip_start)
    base = T.overshoot_steps(T.flip_trajectory(R.adamw_step, 1.0, flip_at, flip_at + 200, weight_decay=0.0, **FLIP), flip_at)
    for k in [-0.5, 0.0, 0.5]:                      # lambda * w_flip / G
        for step in (R.adamw_step, R.adam_l2_step):
            w0 = T.flip_start(step, 1.0, flip_at, k / lam, weight_decay=lam, **FLIP)
            ws = T.flip_trajectory(step, 1.0, flip_at, flip_at + 200, w0=w0, weight_decay=lam, **FLIP)
            assert ws[flip_at] == pytest.approx(k / lam, abs=1e-9)
            n = T.overshoot_steps(ws, flip_at)
            if k > 0:      # decay points the old way: longer overshoot
                assert n > base
            elif k < 0:    # decay points the new way: shorter
                assert n < base
            else:
                assert abs(n - base) <= 1


def test_first_wrong_way_step_adds_the_decay():
    h = FLIP
    aw = T.flip_trajectory(R.adamw_step, 1.0, 50, 150, weight_decay=1.0, **h)
    assert T.overshoot_steps(aw, 50) >= 1
    # the first wrong-way AdamW step is the Adam step plus η·λ·w (decay adds to it)
    w, m, v = 1.0, 0.0, 0.0
    for t in range(1, 51):
        w, m, v = R.adamw_step(w, 1.0, m, v, t, weight_decay=1.0, **h)
    u, _, _ = R.adam_direction(-1.0, m, v, 51, betas=h["betas"], eps=h["eps"])
    assert u > 0
    assert aw[51] - aw[50] == pytest.approx(-1e-2 * u - 1e-2 * 1.0 * aw[50])


def test_eps_half_is_where_the_decay_share_is_one_half():
    rng = np.random.default_rng(0)
    for _ in range(20):
        w, m_hat, lam = rng.normal(), 10 ** rng.uniform(-6, -1), 10 ** rng.uniform(-3, 0)
        v_hat = (m_hat * 10 ** rng.uniform(0, 1)) ** 2       # |m_hat| <= sqrt(v_hat)
        e = T.eps_half(w, m_hat, v_hat, lam)
        if e > 0:
            assert T.decay_share(w, m_hat, v_hat, lam, e) == pytest.approx(0.5, rel=1e-9)
    # the chapter's case: |m_hat| = 1e-6, sqrt(v_hat) = 1e-6, w = 1, lambda = 1e-2
    assert T.eps_half(1.0, 1e-6, 1e-12, 1e-2) == pytest.approx(9.9e-5)


@pytest.mark.parametrize("lam", [1e-3, 1e-1, 1.0])
def test_prox_step_gap_is_one_step_difference(lam):
    rng = np.random.default_rng(1)
    w, m, v = rng.normal(size=8), 0.1 * rng.normal(size=8), rng.uniform(0.1, 1, size=8)
    g = rng.normal(size=8)
    lr = 1e-2
    wa, _, _ = R.adamw_step(w, g, m, v, 7, lr=lr, weight_decay=lam)
    wp, _, _ = R.adamw_prox_step(w, g, m, v, 7, lr=lr, weight_decay=lam)
    u, _, _ = R.adam_direction(g, m, v, 7)
    np.testing.assert_allclose(wp - wa, T.prox_step_gap(w, u, lr, lam), rtol=1e-6, atol=1e-15)
    if lam <= 1e-3:   # lambda|w| << |u|: the eta^2 lambda u term dominates the (eta lambda)^2 w term
        gap, factor_only = T.prox_step_gap(w, u, lr, lam), T.proximal_gap(lr, lam) * w
        assert np.median(np.abs(gap) / np.abs(factor_only)) > 10


def test_adam_update_bound_is_sharp_and_holds():
    betas = (0.9, 0.999)
    assert T.adam_update_bound(betas, 1) == pytest.approx(1.0)
    assert T.adam_update_bound((0.9, 0.9), 40) == pytest.approx(1.0)
    t = 200
    b = T.adam_update_bound(betas, t)
    assert b > 1.5
    # the maximiser g_k ∝ a_k / b_k reaches it
    k = np.arange(1, t + 1)
    g = (0.1 * 0.9 ** (t - k)) / (0.001 * 0.999 ** (t - k))
    m = v = 0.0
    for i in range(t):
        u, m, v = R.adam_direction(g[i], m, v, i + 1, betas=betas, eps=0.0)
    assert u == pytest.approx(b, rel=1e-9)
    # random sequences stay below it
    rng = np.random.default_rng(2)
    m = v = np.zeros(1000)
    for i in range(t):
        u, m, v = R.adam_direction(rng.standard_cauchy(1000), m, v, i + 1, betas=betas, eps=0.0)
    assert np.max(np.abs(u)) <= b


def test_adamw_weights_stay_in_the_envelope():
    rng = np.random.default_rng(3)
    lr, lam, steps = 1e-2, 2.0, 3000
    # stationary noisy gradient with a mean: |u| <= 1 in the long run, so |w| ends below 1/lambda
    w, m, v = np.full(50, 3.0), np.zeros(50), np.zeros(50)
    mu = rng.normal(size=50)
    for t in range(1, steps + 1):
        w, m, v = R.adamw_step(w, mu + 0.5 * rng.normal(size=50), m, v, t, lr=lr, weight_decay=lam)
    assert np.max(np.abs(w)) <= 1 / lam
    # any gradient sequence: the envelope with the worst-case bound holds at every step
    U = max(T.adam_update_bound((0.9, 0.999), t) for t in (1, 10, 100, 300))
    env = T.weight_envelope(1.0, np.full(300, lr), lam, update_bound=U)
    w, m, v = np.ones(200), np.zeros(200), np.zeros(200)
    for t in range(1, 301):
        w, m, v = R.adamw_step(w, rng.standard_cauchy(200) * t, m, v, t, lr=lr, weight_decay=lam, eps=0.0)
        assert np.max(np.abs(w)) <= env[t] + 1e-12
    # full-batch on a quadratic whose minimum is far outside the box: pinned at 1/lambda
    w, m, v = 0.0, 0.0, 0.0
    for t in range(1, 5001):
        w, m, v = R.adamw_step(w, w - 10.0, m, v, t, lr=lr, weight_decay=lam)
    assert w == pytest.approx(1 / lam, rel=1e-3)
    with pytest.raises(ValueError, match="weight_decay > 0"):
        T.weight_envelope(1.0, [0.1], 0.0)


def test_uncorrected_step_ratio():
    betas = (0.9, 0.999)
    m = v = 0.0
    for t in range(1, 51):
        m = 0.9 * m + 0.1 * 2.0
        v = 0.999 * v + 0.001 * 4.0
        assert m / np.sqrt(v) == pytest.approx(T.uncorrected_step_ratio(betas, t))
    assert T.uncorrected_step_ratio(betas, 1) == pytest.approx(0.1 / math.sqrt(0.001))
    assert T.uncorrected_step_ratio(betas, 10**6) == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("beta", [0.5, 0.9, 0.99])
def test_sgd_momentum_l2_decays_like_sgdw_with_lambda_over_one_minus_beta(beta):
    lr, lam = 1e-2, 1e-4            # eta*lambda << (1 - beta)^2
    rate = T.sgd_l2_decay_rate(lr, lam, beta)
    w, buf = 1.0, 0.0
    for _ in range(20000):
        w, buf = R.sgd_l2_step(w, 0.0, buf, lr=lr, momentum=beta, weight_decay=lam)
    w2, buf2 = R.sgd_l2_step(w, 0.0, buf, lr=lr, momentum=beta, weight_decay=lam)
    assert 1 - w2 / w == pytest.approx(rate, rel=1e-6)
    assert rate == pytest.approx(lr * lam / (1 - beta), rel=0.02)
    # the fixed points agree when SGDW uses lambda/(1 - beta): grad + lambda w = 0
    a, c = 2.0, 1.0
    w1 = w2 = 0.0; b1 = b2 = 0.0
    for _ in range(20000):
        w1, b1 = R.sgd_l2_step(w1, a * (w1 - c), b1, lr=lr, momentum=beta, weight_decay=0.5)
        w2, b2 = R.sgdw_step(w2, a * (w2 - c), b2, lr=lr, momentum=beta, weight_decay=0.5 / (1 - beta))
    assert w1 == pytest.approx(a * c / (a + 0.5), rel=1e-6)
    assert w2 == pytest.approx(w1, rel=1e-6)
    with pytest.raises(ValueError, match="oscillating"):
        T.sgd_l2_decay_rate(1.0, 1.0, 0.9)


def test_weight_decay_for_half_life_inverts_half_life():
    for lr, h in [(1e-3, 69314.37), (1e-2, 100.0), (0.1, 7.0)]:
        lam = T.weight_decay_for_half_life(lr, h)
        assert T.half_life_exact(lr, lam) == pytest.approx(h, rel=1e-9)


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


@pytest.mark.parametrize("follow", [True, False])
def test_box_follows_the_schedule_multiplier(follow):
    # a coordinate whose optimum lies far outside the box, warm-up + cosine: with the decay
    # following s_t (PyTorch) the weight ends on the wall 1/λ; with a constant decay the box
    # shrinks to s_t/λ and the weight ends near zero
    eta, lam, steps, warmup = 1e-2, 2.0, 3000, 300
    t_all = np.arange(1, steps + 1)
    s = np.where(t_all <= warmup, t_all / warmup, 0.5 * (1 + np.cos(np.pi * (t_all - warmup) / (steps - warmup))))
    w = m = v = 0.0
    env = T.weight_envelope(0.0, eta * s, lam) if follow else None
    for t in t_all:
        u, m, v = R.adam_direction(w - 5.0, m, v, t)
        w = (1 - eta * (s[t - 1] if follow else 1.0) * lam) * w - eta * s[t - 1] * u
        if follow:
            assert abs(w) <= env[t] + 1e-12
        else:
            assert abs(w) <= s[t - 1] / lam + 0.05
    if follow:
        assert w == pytest.approx(1 / lam, rel=1e-2)
    else:
        assert abs(w) < 1e-2
