"""Tests of the robustness helpers in adamw_lab.book.experiments (chapter 应用/鲁棒性)."""
import math

import pytest
import torch

from adamw_lab.book import experiments as E


def test_spurious_data_correlations():
    X, y = E.spurious_data(20000, 0.9, d_core=8, seed=3)
    assert X.shape == (20000, 9) and X.dtype == torch.float32 and y.dtype == torch.int64
    s = 2.0 * y.float() - 1.0
    agree = (torch.sign(X[:, -1]) == s).float().mean()
    assert abs(float(agree) - 0.9) < 0.01
    # each core feature has mean a*s with a = 1.2816 / sqrt(8)
    a = 1.2816 / math.sqrt(8)
    assert torch.allclose((X[:, :8] * s[:, None]).mean(0), torch.full((8,), a), atol=0.03)
    # the core-only Bayes rule (sign of the sum) has accuracy Phi(1.2816) = 0.90
    acc = ((X[:, :8].sum(1) > 0).long() == y).float().mean()
    assert abs(float(acc) - 0.90) < 0.01
    # rho = 0.5: the spurious feature carries no information
    X2, y2 = E.spurious_data(20000, 0.5, seed=4)
    assert abs(float(((X2[:, -1] > 0).long() == y2).float().mean()) - 0.5) < 0.015
    with pytest.raises(ValueError):
        E.spurious_data(10, 1.5)


def test_spurious_data_is_seeded():
    a = E.spurious_data(50, 0.95, seed=7)
    b = E.spurious_data(50, 0.95, seed=7)
    c = E.spurious_data(50, 0.95, seed=8)
    assert torch.equal(a[0], b[0]) and not torch.equal(a[0], c[0])


def test_batched_linear_and_feature_weights():
    m = E.BatchedLinear(3, 4, 2)
    assert m.M == 3 and m(torch.randn(5, 4)).shape == (3, 5, 2)
    with torch.no_grad():
        m.W[:, :, 1] = torch.tensor([1.0, -2.0, 0.5, 0.0])
        m.W[:, :, 0] = torch.tensor([0.0, 1.0, 0.0, 0.0])
    w = E.binary_feature_weights(m)
    assert torch.allclose(w[0], torch.tensor([1.0, 3.0, 0.5, 0.0]))
    share = E.weight_share(w, 1)
    assert torch.allclose(share, torch.full((3,), 3.0 / 4.5))
    assert torch.allclose(E.weight_share(w, [0, 1]), torch.full((3,), 4.0 / 4.5))


def test_imbalanced_split_counts():
    Xtr, ytr, Xte, yte = E.imbalanced_digits_split(n_major=20, n_minor=3, minority=(1, 7), seed=0)
    counts = torch.bincount(ytr, minlength=10)
    assert counts[1] == 3 and counts[7] == 3 and counts[0] == 20 and int(counts.sum()) == 8 * 20 + 2 * 3
    assert len(ytr) + len(yte) == 1797 and Xtr.shape[1] == 64


class _Fixed(torch.nn.Module):
    """A 'model' returning fixed logits, to test the metrics."""

    def __init__(self, logits):
        super().__init__()
        self.logits = logits

    @property
    def M(self):
        return self.logits.shape[0]

    def forward(self, x):
        return self.logits


def test_per_class_recall_and_imbalance_metrics():
    y = torch.tensor([0, 0, 1, 1, 2, 2])
    pred = torch.tensor([[0, 0, 1, 0, 2, 0],     # recalls 1, 0.5, 0.5
                         [0, 0, 0, 0, 0, 0]])    # recalls 1, 0, 0
    logits = torch.nn.functional.one_hot(pred, 3).float()
    rec = E.per_class_recall(_Fixed(logits), None, y, 3)
    assert torch.allclose(rec, torch.tensor([[1.0, 0.5, 0.5], [1.0, 0.0, 0.0]]))
    met = E.imbalance_metrics(rec, minority=(2,))
    assert torch.allclose(met["minority_recall"], torch.tensor([0.5, 0.0]))
    assert torch.allclose(met["majority_recall"], torch.tensor([0.75, 0.5]))
    assert torch.allclose(met["balanced_accuracy"], torch.tensor([2.0 / 3, 1.0 / 3]))
    assert torch.allclose(met["recall_gap"], torch.tensor([0.25, 0.5]))


def test_robust_accuracy_of_linear_model_matches_closed_form():
    # binary linear model: the L-inf worst case lowers y*f(x) by eps*||w||_1 (no clipping: x in [0.3, 0.7])
    g = torch.Generator().manual_seed(0)
    X = 0.3 + 0.4 * torch.rand(300, 6, generator=g)
    m = E.BatchedLinear(2, 6, 2)
    with torch.no_grad():
        m.W[0, :, 1] = torch.randn(6, generator=g)
        m.W[1, :, 1] = 0.3 * torch.randn(6, generator=g)
        m.b[:, 0, 1] = -(X.mean(0) * m.W[:, :, 1]).sum(1)
    f = (m(X)[..., 1] - m(X)[..., 0]).detach()             # [M, N]
    y = (f[0] + 0.2 * torch.randn(300, generator=g) > 0).long()
    eps = [0.0, 0.02, 0.05, 0.1]
    acc = E.robust_accuracy_curve(m, X, y, eps, steps=10)
    s = 2.0 * y.float() - 1.0
    l1 = E.binary_feature_weights(m).sum(1)
    for j, e in enumerate(eps):
        expect = ((s * f - e * l1[:, None]) > 0).float().mean(1)
        assert torch.allclose(acc[:, j], expect), (e, acc[:, j], expect)


def test_mean_robust_radius_and_weight_norm():
    acc = torch.tensor([[1.0, 1.0, 0.0], [0.5, 0.5, 0.5]])
    r = E.mean_robust_radius(acc, [0.0, 0.1, 0.2])
    assert torch.allclose(r, torch.tensor([0.15, 0.1]))
    with pytest.raises(ValueError):
        E.mean_robust_radius(acc, [0.1, 0.2, 0.3])
    m = E.BatchedMLP([0, 1], 3, 4, 2)
    expect = torch.sqrt(m.W1.detach().pow(2).sum((1, 2)) + m.W2.detach().pow(2).sum((1, 2)))
    assert torch.allclose(E.weight_norm(m), expect)
