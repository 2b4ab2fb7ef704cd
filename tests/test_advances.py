"""adamw_lab.book.advances: the helpers of Part IV (新进展)."""
import numpy as np
import pytest

from adamw_lab.book import advances as A, stats as S


@pytest.fixture(scope="module")
def problem():
    return A.logistic_problem(n=120, d=5, seed=3)


def test_logistic_grad_matches_finite_differences(problem):
    X, y = problem
    w = np.random.default_rng(0).normal(size=5)
    g = A.logistic_grad(w, X, y)
    h = 1e-6
    fd = [(A.logistic_loss(w + h * e, X, y) - A.logistic_loss(w - h * e, X, y)) / (2 * h) for e in np.eye(5)]
    np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-9)


def test_kkt_residual_is_zero_only_at_the_box_solution(problem):
    X, y = problem
    w_box = A.box_solution(X, y, 1.0)
    w_star = A.box_solution(X, y, np.inf)
    assert np.abs(w_star).max() > 1.5, "the unconstrained optimum must leave the box"
    assert np.abs(A.logistic_grad(w_star, X, y)).max() < 1e-6
    assert A.kkt_residual(w_box, X, y, 1.0) < 1e-6
    assert A.kkt_residual(w_star, X, y, 1.0) > 0.1          # infeasible
    assert A.kkt_residual(np.clip(w_star, -1, 1), X, y, 1.0) > 1e-3   # clipping is not solving
    assert A.kkt_residual(np.zeros(5), X, y, 1.0) > 1e-2


def test_annealed_adamw_reaches_the_box_kkt_point_and_adam_l2_does_not(problem):
    X, y = problem
    steps = 4000
    cosine = lambda t: 0.5 * (1 + np.cos(np.pi * t / steps))  # noqa: E731
    w_box = A.box_solution(X, y, 1.0)
    w, _ = A.run_full_batch(X, y, lr=0.1, weight_decay=1.0, steps=steps, betas=(0.9, 0.99), schedule=cosine)
    assert np.abs(w - w_box).max() < 0.02
    assert np.abs(np.abs(w).max() - 1.0) < 0.01
    w_l2, _ = A.run_full_batch(X, y, lr=0.1, weight_decay=1.0, steps=steps, betas=(0.9, 0.99),
                               schedule=cosine, rule="adam_l2")
    assert A.kkt_residual(w_l2, X, y, 1.0) > 0.05
    assert np.abs(w_l2).max() < 0.9


def test_run_full_batch_broadcasts_weight_decay_and_rejects_unknown_rules(problem):
    X, y = problem
    lams = np.array([0.5, 2.0])
    w, rec = A.run_full_batch(X, y, lr=0.05, weight_decay=lams[:, None], steps=30, record=(10,))
    assert w.shape == (2, 5) and rec[10].shape == (2, 5)
    for k, lam in enumerate(lams):
        alone, _ = A.run_full_batch(X, y, lr=0.05, weight_decay=lam, steps=30)
        np.testing.assert_allclose(w[k], alone, rtol=1e-12, atol=1e-14)
    with pytest.raises(ValueError, match="Invalid rule"):
        A.run_full_batch(X, y, lr=0.1, weight_decay=1.0, steps=1, rule="sgdw")


def test_paired_interval_covers_the_mean_about_95_percent():
    rng = np.random.default_rng(0)
    hits = 0
    for _ in range(400):
        _, lo, hi = S.mean_interval(rng.normal(0.3, 1.0, size=6))
        hits += lo <= 0.3 <= hi
    assert 0.91 < hits / 400 < 0.985
    with pytest.raises(ValueError, match="at least 2"):
        S.mean_interval([1.0])
    assert S.interval_verdict(0.1, 0.5, "好", "坏") == "好"
    assert S.interval_verdict(-0.5, -0.1, "好", "坏") == "坏"
    assert "含 0" in S.interval_verdict(-0.1, 0.1, "好", "坏")


# ----------------------------------------------------------------- normalised layers
import torch  # noqa: E402

import adamw_lab  # noqa: E402
from adamw_lab.book import experiments as E  # noqa: E402


def test_norm_mlp_is_scale_invariant_in_w1_and_w2():
    model = A.BatchedNormMLP([0, 1], d_hidden=(16, 8))
    x = torch.rand(20, 64)
    y = torch.randint(10, (20,))
    out = model(x)
    loss = E.batched_cross_entropy(out, y).sum()
    loss.backward()
    for name in A.BatchedNormMLP.SCALE_INVARIANT:
        p = getattr(model, name)
        # gradient orthogonal to the weight, per model
        cos = (p.grad * p).flatten(1).sum(1) / (p.grad.flatten(1).norm(dim=1) * p.flatten(1).norm(dim=1))
        assert cos.abs().max() < 1e-3, cos
        with torch.no_grad():
            p.mul_(torch.tensor([3.0, 0.5]).view(2, 1, 1))
        torch.testing.assert_close(model(x), out, rtol=1e-4, atol=1e-4)
    with torch.no_grad():
        model.W3.mul_(2.0)
    assert not torch.allclose(model(x), out, atol=1e-3)          # the output layer is not


def test_angle_is_accurate_for_tiny_rotations():
    a = torch.tensor([[1.0, 0.0, 0.0], [2.0, 0.0, 0.0]])
    theta = torch.tensor([1e-4, 0.3])
    b = torch.stack([torch.cos(theta), torch.sin(theta), torch.zeros(2)], 1) * torch.tensor([[5.0], [0.1]])
    torch.testing.assert_close(A._angle(a, b), theta, rtol=1e-3, atol=0)


def test_train_measured_is_paired_and_deterministic():
    Xtr, ytr, *_ = A.digits_three_way(n_train=200, seed=0)
    runs = []
    for _ in range(2):
        model = A.BatchedNormMLP([0, 1], d_hidden=(16, 8))
        opt = adamw_lab.AdamW(model.parameters(), lr=1e-2, weight_decay=0.5)
        runs.append(A.train_measured(model, opt, Xtr, ytr, 20, label_noise=0.3, seed=3))
    for k in ("grad_norm", "weight_norm", "angle"):
        assert runs[0][k].shape == (20, 2, 2)
        torch.testing.assert_close(runs[0][k], runs[1][k], rtol=0, atol=0)
    # the two models (same init seed 0 vs 1) draw different minibatches: their gradients differ
    model = A.BatchedNormMLP([0, 0], d_hidden=(16, 8))
    h = A.train_measured(model, adamw_lab.AdamW(model.parameters(), lr=1e-2), Xtr, ytr, 3, seed=3)
    assert not torch.allclose(h["grad_norm"][0, 0], h["grad_norm"][0, 1])
    assert A.train_measured(model, adamw_lab.AdamW(model.parameters()), Xtr, ytr, 2, names=()) == {}


def test_equilibrium_angle_and_norm_on_a_short_run():
    """Statistical: AdamW's rotation per step of W1 and W2 settles near sqrt(2 eta lam (1-b1)/(1+b1))."""
    Xtr, ytr, *_ = A.digits_three_way(n_train=300, seed=0)
    lr, wd = 1e-2, 2.0
    model = A.BatchedNormMLP([0, 1], d_hidden=(32, 16))
    h = A.train_measured(model, adamw_lab.AdamW(model.parameters(), lr=lr, weight_decay=wd), Xtr, ytr, 300,
                         label_noise=0.3)
    ratio = h["angle"][-150:].mean(0) / float(A.equilibrium_angle(lr, wd))
    assert ((ratio > 0.8) & (ratio < 1.25)).all(), ratio
    C = np.array([model.W1[0].numel(), model.W2[0].numel()])
    rho = h["weight_norm"][-150:].mean(0).numpy() / A.equilibrium_norm(lr, wd, C)
    assert ((rho > 0.6) & (rho < 1.1)).all(), rho


def test_predicted_norm_recursion():
    from adamw_lab.reference_variants import norm_recurrence

    n = norm_recurrence(10.0, [1e-2] * 3000, [1 - 1e-2 * 1.0] * 3000, 4096)[1:]   # the norms after each step
    assert n[0] < 10.0 and abs(n[-1] / A.equilibrium_norm(1e-2, 1.0, 4096) - 1) < 0.01
    assert np.allclose(norm_recurrence(3.0, [0.1, 0.1], [1.0, 1.0], 0.0), 3.0)   # no decay, no updates


# ----------------------------------------------------------------- timescale
def test_best_log_lambda_finds_the_vertex_and_respects_edges():
    x = np.linspace(-3, 1, 9)
    losses = np.stack([(x - c) ** 2 + 0.3 for c in (-1.23, 0.4)])
    np.testing.assert_allclose(A.best_log_lambda(x, losses), [-1.23, 0.4], atol=1e-12)
    edge = np.stack([x, -x])                      # monotone: minimum at the ends
    np.testing.assert_allclose(A.best_log_lambda(x, edge), [x[0], x[-1]])


def test_corrupt_labels_fraction_and_determinism():
    y = torch.arange(10).repeat(200)
    z = A.corrupt_labels(y, 0.3, seed=1)
    changed = (z != y).float().mean().item()
    assert 0.3 * 0.9 - 0.04 < changed < 0.3 * 0.9 + 0.04     # a random class equals the old one 1/10 of the time
    assert torch.equal(z, A.corrupt_labels(y, 0.3, seed=1))
    assert torch.equal(A.corrupt_labels(y, 0.0), y)


def test_cautious_decay_reaches_the_unconstrained_optimum(problem):
    """Cautious decay keeps the original loss: where the box face would stop AdamW, u and w
    disagree in sign, the decay switches off and the weights go on to the minimiser of L."""
    X, y = problem
    steps = 4000
    cosine = lambda t: 0.5 * (1 + np.cos(np.pi * t / steps))  # noqa: E731
    w, _ = A.run_full_batch(X, y, lr=0.1, weight_decay=1.0, steps=steps, betas=(0.9, 0.99), schedule=cosine,
                            rule="cautious")
    w_star = A.box_solution(X, y, np.inf)
    assert np.abs(w - w_star).max() < 0.05
    assert np.abs(w).max() > 1.5            # well outside AdamW's box


def test_moving_average():
    x = np.arange(10.0)[:, None] * np.array([1.0, 2.0])
    out = A.moving_average(x, 4)
    assert out.shape == (6, 2)
    np.testing.assert_allclose(out[:, 0], [(i + 1 + i + 2 + i + 3 + i + 4) / 4 for i in range(6)])


def test_timescale_epochs_is_the_e_folding_time_of_zero_gradient_adamw():
    """NumPy reference: with zero gradients AdamW's weight falls by e after about τ_epoch epochs of N/B steps."""
    from adamw_lab import reference

    for lr, wd, n, b in ((1e-2, 0.3, 300, 32), (5e-3, 1.0, 150, 16), (2e-2, 0.05, 600, 64)):
        w, m, v, t = np.ones(1), np.zeros(1), np.zeros(1), 0
        while w[0] > np.exp(-1):
            t += 1
            w, m, v = reference.adamw_step(w, np.zeros(1), m, v, t, lr=lr, weight_decay=wd)
        tau = float(A.timescale_epochs(lr, wd, n, b))
        assert t * b / n == pytest.approx(tau, rel=0.02, abs=b / n)
    assert A.timescale_epochs(1e-2, 0.1, 600, 32) == pytest.approx(A.timescale_epochs(1e-2, 0.2, 300, 32))


def test_box_explorer_runs_end_on_the_box_solution_and_adam_l2_does_not():
    X, y = A.box_toy_problem()
    w_star = A.box_solution(X, y, np.inf)
    assert 3.0 < np.abs(w_star).max() < 5.0 and np.abs(w_star).min() < 1.5   # one large, one small coordinate
    for lam in (0.15, 0.6, 1.6):
        radius = 1 / lam
        target = np.abs(A.box_solution(X, y, radius)).max()
        assert A.box_endpoint_norm(0.1, lam) == pytest.approx(target, abs=5e-3)
        assert A.box_endpoint_norm(0.1, lam, rule="adam_l2") < 0.5 * target   # ridge solution, far inside the box
        paths = A.box_paths(0.1, lam)
        t, path = paths["adamw"]
        assert t[0] == 0 and t[-1] == A.BOX_STEPS and path.shape == (len(t), 2)
        assert np.all(path[0] == 0) and np.abs(path[-1]).max() == pytest.approx(A.box_endpoint_norm(0.1, lam))
    # the explorer's fast loop is run_full_batch's recursion (NumPy reference steps), for both rules
    cosine = lambda t: 0.5 * (1 + np.cos(np.pi * t / 300))  # noqa: E731
    for rule in A.BOX_RULES:
        w_ref, _ = A.run_full_batch(X, y, lr=0.2, weight_decay=1.0, steps=300, rule=rule, schedule=cosine, betas=(0.9, 0.99))
        assert A.box_endpoint_norm(0.2, 1.0, rule=rule, steps=300) == pytest.approx(np.abs(w_ref).max(), rel=1e-10)
    # a lambda off the batched grid gives the same numbers as its grid neighbour would (same recursion)
    assert A.box_endpoint_norm(0.1, 0.6000001) == pytest.approx(A.box_endpoint_norm(0.1, 0.6), rel=1e-5)
    with pytest.raises(ValueError, match="Invalid rule"):
        A.box_endpoint_norm(0.1, 1.0, rule="sgd")
