"""Tests of adamw_lab.book.frontiers (the chapter 前沿)."""
import math

import numpy as np
import pytest
import torch

from adamw_lab.book import experiments as E
from adamw_lab.book import frontiers as Fr


@pytest.fixture(scope="module")
def digits():
    return E.load_digits_split(n_train=300, seed=3)


def _max_diff(a, b):
    return max(float((p - q).detach().abs().max()) for p, q in zip(a.parameters(), b.parameters()))


@pytest.mark.parametrize("method", ["adam", "adam_l2", "adamw"])
def test_fit_matches_package_optimizers(digits, method):
    Xtr, ytr, _, _ = digits
    lr = torch.tensor([1e-2, 3e-3, 3e-2])
    wd = torch.tensor([0.3, 3.0, 0.05])
    sched = E.warmup_cosine(30, 8)
    a, b = E.BatchedMLP([0, 1, 2], 64, 16, 10), E.BatchedMLP([0, 1, 2], 64, 16, 10)
    E.train(a, method, lr, wd, Xtr, ytr, 30, schedule=sched)
    Fr.fit(b, method, lr, wd, Xtr, ytr, 30, schedule=sched)
    assert _max_diff(a, b) < 1e-5


def test_fit_rejects_unknown_method(digits):
    Xtr, ytr, _, _ = digits
    with pytest.raises(ValueError):
        Fr.fit(E.BatchedMLP([0], 64, 8, 10), "sgd", 1e-2, 0.1, Xtr, ytr, 1)


@pytest.mark.parametrize("constant", [False, True])
def test_zero_gradient_weights_follow_shrink_factor(constant):
    # all-zero inputs: the data gradient of W1 is exactly zero, so only the decay acts on it
    X = torch.zeros(20, 6)
    y = torch.arange(20) % 3
    m = E.BatchedMLP([0, 1], 6, 5, 3)
    w0 = m.W1.detach().clone()
    lr, wd, steps = 0.05, torch.tensor([0.5, 2.0]), 40
    sched = E.warmup_cosine(steps, 10)
    dsched = (lambda t: 1.0) if constant else None
    Fr.fit(m, "adamw", lr, wd, X, y, steps, schedule=sched, decay_schedule=dsched)
    for k in range(2):
        f = Fr.shrink_factor(lr, float(wd[k]), steps, sched, dsched)[-1]
        torch.testing.assert_close(m.W1.detach()[k], w0[k] * f, rtol=1e-5, atol=1e-7)


def test_decay_towards_anchor_keeps_zero_gradient_weights():
    X = torch.zeros(10, 4)
    y = torch.arange(10) % 2
    m = E.BatchedMLP([0], 4, 3, 2)
    w0 = m.W1.detach().clone()
    Fr.fit(m, "adamw", 0.1, 5.0, X, y, 20, anchor={"W1": w0.clone()})
    torch.testing.assert_close(m.W1.detach(), w0)
    Fr.fit(m, "adam_l2", 0.1, 5.0, X, y, 20, anchor={"W1": w0.clone()})
    torch.testing.assert_close(m.W1.detach(), w0)
    Fr.fit(m, "adamw", 0.1, 5.0, X, y, 20)              # anchor 0: shrinks
    assert float(m.W1.detach().norm()) < 0.5 * float(w0.norm())


def test_decay_schedule_zero_turns_decay_off(digits):
    Xtr, ytr, _, _ = digits
    a, b = E.BatchedMLP([4], 64, 8, 10), E.BatchedMLP([4], 64, 8, 10)
    Fr.fit(a, "adamw", 1e-2, 10.0, Xtr, ytr, 15, decay_schedule=lambda t: 0.0)
    Fr.fit(b, "adam", 1e-2, 10.0, Xtr, ytr, 15)
    assert _max_diff(a, b) == 0.0


def test_fit_callback_records():
    X, y = torch.randn(8, 4), torch.arange(8) % 2
    m = E.BatchedMLP([0, 1], 4, 3, 2)
    rec = Fr.fit(m, "adamw", 1e-2, 0.1, X, y, 10, record_every=5, callback=lambda mod, t: t)
    assert rec == [0, 5, 10]


def test_shrink_factor_closed_forms():
    f = Fr.shrink_factor(0.01, 2.0, 50)
    np.testing.assert_allclose(f, (1 - 0.02) ** np.arange(51))
    sched = E.warmup_cosine(50, 10)
    g = Fr.shrink_factor(0.01, 2.0, 50, sched)
    np.testing.assert_allclose(g[-1], np.prod([1 - 0.02 * sched(t) for t in range(50)]))
    assert g[-1] > f[-1]                                # scheduled decay shrinks less


def test_relative_norm_and_distance():
    m = E.BatchedMLP([0, 1], 4, 3, 2)
    ref = {"W1": m.W1.detach() * 2}
    torch.testing.assert_close(Fr.relative_norm(m, ref), torch.full((2,), 0.5))
    torch.testing.assert_close(Fr.relative_distance(m, ref), torch.full((2,), 0.5))
    torch.testing.assert_close(E.weight_norm(m, ("W1",)), m.W1.detach().flatten(1).norm(dim=1))


def test_label_skew_split(digits):
    Xtr, ytr, _, _ = digits
    Xc, yc = Fr.label_skew_split(Xtr, ytr, 5, 2, 10, seed=0)
    assert Xc.shape == (5, 10, 64) and yc.shape == (5, 10)
    for k in range(5):
        assert set(yc[k].tolist()) == {2 * k, 2 * k + 1}
        assert int((yc[k] == 2 * k).sum()) == 5
    rows = {tuple(r.tolist()) for r in Xc.reshape(-1, 64)}
    assert len(rows) == 50                              # no image goes to two clients
    _, y_iid = Fr.label_skew_split(Xtr, ytr, 2, 10, 20, seed=0)
    assert all(len(set(r.tolist())) == 10 for r in y_iid)
    with pytest.raises(ValueError):
        Fr.label_skew_split(Xtr, ytr, 5, 2, 100)


def test_fedavg_one_round_is_the_mean_of_local_runs(digits):
    Xtr, ytr, Xte, yte = digits
    Xc, yc = Fr.label_skew_split(Xtr, ytr, 2, 5, 20, seed=1)
    lam = torch.tensor([0.1, 1.0])
    g = E.BatchedMLP([7, 8], 64, 8, 10)
    locals_ = []
    for k in range(2):
        m = E.BatchedMLP([7, 8], 64, 8, 10)
        Fr.fit(m, "adamw", 1e-2, lam, Xc[k], yc[k], 5)
        locals_.append(m)
    h = Fr.fedavg(g, "adamw", 1e-2, lam, Xc, yc, 1, 5, Xte, yte)
    for n in ("W1", "b1", "W2", "b2"):
        mean = (getattr(locals_[0], n) + getattr(locals_[1], n)).detach() / 2
        torch.testing.assert_close(getattr(g, n).detach(), mean, rtol=1e-5, atol=1e-6)
    assert h["drift"].shape == (1, 2) and h["test_err"].shape == (1, 2)
    assert bool((h["drift"] > 0).all())


def test_fedavg_identical_clients_have_no_drift(digits):
    Xtr, ytr, _, _ = digits
    Xc, yc = Xtr[:30].expand(3, 30, 64), ytr[:30].expand(3, 30)
    g, single = E.BatchedMLP([1], 64, 8, 10), E.BatchedMLP([1], 64, 8, 10)
    h = Fr.fedavg(g, "adam_l2", 1e-2, 0.1, Xc, yc, 2, 4)
    for _ in range(2):
        Fr.fit(single, "adam_l2", 1e-2, 0.1, Xtr[:30], ytr[:30], 4)
    assert float(h["drift"].abs().max()) < 1e-6
    assert _max_diff(g, single) < 1e-6


def test_weight_stats_and_scale_invariance():
    torch.manual_seed(0)
    w = torch.randn(1, 200_000)
    w = torch.cat([w, 7.0 * w])                         # same shape, other scale
    st = Fr.weight_stats(w)
    assert abs(float(st["kurtosis"][0]) - 3.0) < 0.1    # Gaussian
    torch.testing.assert_close(st["crest"][0], st["crest"][1], rtol=1e-6, atol=0)
    pm = torch.tensor([[1.0, -1.0, 1.0, -1.0]])
    torch.testing.assert_close(Fr.weight_stats(pm)["crest"], torch.ones(1, dtype=torch.float64))
    torch.testing.assert_close(Fr.weight_stats(pm)["kurtosis"], torch.ones(1, dtype=torch.float64))


@pytest.mark.parametrize("bits", [8, 4])
def test_quantization_error_matches_uniform_rounding_model(bits):
    torch.manual_seed(1)
    m = E.BatchedMLP(range(3), 400, 300, 10)
    q = Fr.quantize_model(m, bits)
    torch.testing.assert_close(q.b1, m.b1)              # biases stay in floating point
    assert not torch.equal(q.W1, m.W1)
    rel = ((q.W1 - m.W1).flatten(1).norm(dim=1) / m.W1.flatten(1).norm(dim=1)).detach()
    pred = Fr.predicted_quant_error(Fr.weight_stats(m.W1)["crest"], bits)
    torch.testing.assert_close(rel.double(), pred, rtol=0.05, atol=0)
    assert math.isclose(Fr.predicted_quant_error(127 * math.sqrt(12), 8), 1.0)
