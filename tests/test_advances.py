"""adamw_lab.book.advances: the helpers of Part IV (新进展)."""
import numpy as np
import pytest

from adamw_lab.book import advances as A


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
        _, lo, hi = A.paired_interval(rng.normal(0.3, 1.0, size=6))
        hits += lo <= 0.3 <= hi
    assert 0.91 < hits / 400 < 0.985
    with pytest.raises(ValueError, match="at least 2"):
        A.paired_interval([1.0])
    assert A.verdict(0.1, 0.5, "好", "坏") == "好"
    assert A.verdict(-0.5, -0.1, "好", "坏") == "坏"
    assert "含 0" in A.verdict(-0.1, 0.1, "好", "坏")
