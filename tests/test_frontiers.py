"""Tests of adamw_lab.book.frontiers (the chapter 前沿)."""
import math

import numpy as np
import pytest
import torch

from adamw_lab.book import experiments as E
from adamw_lab.book import frontiers as Fr


@pytest.fixture(scope="module", autouse=True)
def _one_thread_no_denormals():
    # tiny batched models: one thread is fastest on a shared CPU; subnormal floats late in training are slow
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    yield
    torch.set_flush_denormal(False)
    torch.set_num_threads(threads)


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


# ----------------------------------------------------------------- minibatch training, no decay on biases
@pytest.mark.parametrize("method", ["adam_l2", "adamw"])
def test_fit_minibatch_matches_package_optimizers_with_param_groups(digits, method):
    Xtr, ytr, _, _ = digits
    lr, wd, seeds = torch.tensor([1e-2, 3e-3, 3e-2]), torch.tensor([0.3, 3.0, 0.05]), [0, 1, 0]
    sched = E.warmup_cosine(30, 8)
    a, b = E.BatchedMLP(seeds, 64, 16, 10), E.BatchedMLP(seeds, 64, 16, 10)
    E.train(a, method, lr, wd, Xtr, ytr, 30, schedule=sched, batch_size=16, data_seeds=seeds, decay_biases=False)
    Fr.fit(b, method, lr, wd, Xtr, ytr, 30, schedule=sched, batch_size=16, data_seeds=seeds, decay_biases=False)
    assert _max_diff(a, b) < 1e-5
    c = E.BatchedMLP(seeds, 64, 16, 10)                  # decaying the biases too gives other weights
    Fr.fit(c, method, lr, wd, Xtr, ytr, 30, schedule=sched, batch_size=16, data_seeds=seeds)
    assert _max_diff(b, c) > 1e-4


def test_fit_minibatch_pairs_by_seed_and_accepts_per_model_data(digits):
    Xtr, ytr, _, _ = digits
    a = E.BatchedMLP([5, 5], 64, 8, 10)                  # same seed twice: same init, same minibatches
    Fr.fit(a, "adamw", 1e-2, 0.1, Xtr, ytr, 20, batch_size=8, data_seeds=[5, 5])
    torch.testing.assert_close(a.W1[0], a.W1[1])
    b = E.BatchedMLP([5, 6], 64, 8, 10)                  # per-model data [M, N, D] equal to the shared data
    c = E.BatchedMLP([5, 6], 64, 8, 10)
    Fr.fit(b, "adamw", 1e-2, 0.1, Xtr, ytr, 20, batch_size=8, data_seeds=[5, 6])
    Fr.fit(c, "adamw", 1e-2, 0.1, Xtr.expand(2, *Xtr.shape), ytr.expand(2, len(ytr)), 20, batch_size=8,
           data_seeds=[5, 6])
    assert _max_diff(b, c) < 1e-6
    with pytest.raises(ValueError):
        Fr.fit(b, "adamw", 1e-2, 0.1, Xtr, ytr, 2, batch_size=8)


def test_warmup_shrink_closed_forms():
    sched = E.warmup_cosine(200, 50)
    f = Fr.shrink_factor(3e-3, 10.0, 200, sched)
    assert math.isclose(Fr.warmup_shrink(3e-3, 10.0, 200, 50), f[50], rel_tol=1e-12)
    assert math.isclose(Fr.warmup_shrink(3e-3, 10.0, 200, 50, at=200), f[-1], rel_tol=1e-12)
    assert math.isclose(Fr.warmup_shrink(3e-3, 10.0, 200, 50, follow=False), (1 - 3e-2) ** 50, rel_tol=1e-12)
    for lr, lam, tw in ((1e-3, 1e-2, 500), (3e-3, 10.0, 50), (1e-4, 1.0, 150)):   # first-order form, error O((eta lam)^2 T_w)
        exact, approx = Fr.warmup_shrink(lr, lam, 10 * tw, tw), Fr.warmup_shrink_approx(lr, lam, tw)
        assert abs(math.log(exact) - math.log(approx)) < (lr * lam) ** 2 * tw + 1e-12


def test_fedavg_minibatch_one_round_is_the_mean_of_local_runs(digits):
    Xtr, ytr, _, _ = digits
    Xc, yc = Fr.label_skew_split(Xtr, ytr, 2, 5, 20, seed=1)
    seeds = [7, 8]
    g = E.BatchedMLP(seeds, 64, 8, 10)
    h = Fr.fedavg(g, "adamw", 1e-2, 0.5, Xc, yc, 1, 5, batch_size=4, data_seeds=seeds, decay_biases=False)
    locals_ = []
    for k in range(2):                                   # the client seeds fedavg documents
        m = E.BatchedMLP(seeds, 64, 8, 10)
        Fr.fit(m, "adamw", 1e-2, 0.5, Xc[k], yc[k], 5, batch_size=4, data_seeds=[1_000_000 + s * 10_000 + k for s in seeds],
               decay_biases=False)
        locals_.append(m)
    for n in ("W1", "b1", "W2", "b2"):
        mean = (getattr(locals_[0], n) + getattr(locals_[1], n)).detach() / 2
        torch.testing.assert_close(getattr(g, n).detach(), mean, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(h["absdrift"], h["drift"] * h["norm"])
    with pytest.raises(ValueError):
        Fr.fedavg(g, "adamw", 1e-2, 0.5, Xc, yc, 1, 5, batch_size=4)


def test_quant_stats_and_choose_on_validation(digits):
    Xtr, ytr, Xte, yte = digits
    m = E.BatchedMLP(range(3), 64, 16, 10)
    Fr.fit(m, "adam", 1e-2, 0.0, Xtr, ytr, 30, batch_size=32, data_seeds=range(3))
    q = Fr.quant_stats(m, Xte, yte)
    assert set(q) == {"crest", "kurtosis", "err", "rel8", "drop8", "rel4", "drop4"}
    flips = q["drop4"] * len(yte) / 100                  # whole test images
    torch.testing.assert_close(flips, flips.round())
    torch.testing.assert_close(q["rel8"], Fr.predicted_quant_error(q["crest"], 8), rtol=0.15, atol=0)
    assert bool((q["rel4"] > 10 * q["rel8"]).all())
    val = torch.tensor([[5.0, 6.0], [3.0, 4.0], [3.0, 4.0], [9.0, 1.0]])
    assert Fr.choose_on_validation(val, [0.1, 1.0, 10.0, 100.0]) == (1, 1.0)


# ----------------------------------------------------------------- the chapter's claims, with paired intervals
@pytest.fixture(scope="module")
def chapter_split():
    Xpool, ypool, Xrest, yrest = E.load_digits_split(n_train=1000, seed=0)
    return Xpool, ypool, Xrest[:300], yrest[:300]


def test_scheduled_decay_beats_total_matched_constant_decay_at_large_lambda(chapter_split):
    """At lambda = 3.16 the same total shrink hurts more when it keeps acting at the end of the cosine."""
    from adamw_lab.book import stats as S

    Xpool, ypool, Xva, yva = chapter_split
    seeds, steps = list(range(6)), 300
    sched = E.warmup_cosine(steps, 30)
    s_bar = float(np.mean([sched(t) for t in range(steps)]))
    err = {}
    for name, dsched, lam in (("sched", None, 3.16), ("matched", lambda t: 1.0, 3.16 * s_bar)):
        m = E.BatchedMLP(seeds, 64, 32, 10)
        Fr.fit(m, "adamw", 1e-2, lam, Xpool[:300], ypool[:300], steps, schedule=sched, decay_schedule=dsched,
               batch_size=32, data_seeds=seeds, decay_biases=False)
        err[name] = E.error_rate(m, Xva, yva) * 100
        assert math.isclose(Fr.shrink_factor(1e-2, lam, steps, sched, dsched)[-1],
                            Fr.shrink_factor(1e-2, 3.16, steps, sched)[-1], rel_tol=0.05)   # same total shrink
    d = S.paired_difference(err["sched"], err["matched"])
    assert d.verdict() == "支持", d.text()


def test_fedavg_shared_decay_raises_relative_drift_not_lowers_absolute_drift(chapter_split):
    """The shared shrink lowers ||w_avg||; the drift each round creates does not shrink with it."""
    from adamw_lab.book import stats as S

    Xpool, ypool, _, _ = chapter_split
    Xc, yc = Fr.label_skew_split(Xpool, ypool, 5, 2, 100, seed=0)
    seeds = list(range(6))
    h = {}
    for meth, lam in (("adam", 0.0), ("adamw", 1.0)):
        m = E.BatchedMLP(seeds, 64, 32, 10)
        h[meth] = Fr.fedavg(m, meth, 1e-2, lam, Xc, yc, 12, 10, batch_size=20, data_seeds=seeds, decay_biases=False)
    diff = {k: S.paired_difference(h["adamw"][k][-1], h["adam"][k][-1]) for k in ("drift", "absdrift", "norm")}
    assert diff["norm"].high < 0, diff["norm"].text()
    assert diff["drift"].low > 0, diff["drift"].text()
    assert diff["absdrift"].high > 0, diff["absdrift"].text()     # not shown to fall


def test_finetuning_decay_pulls_towards_the_origin_not_the_pretrained_point(chapter_split):
    """lambda = 10: AdamW's norm at the end of warm-up follows the decay-only factor; decay to w_pre stays close."""
    Xpool, ypool, _, _ = chapter_split
    seeds = list(range(4))
    pre = E.BatchedMLP(seeds, 64, 32, 10)
    E.train(pre, "adam", 3e-3, 0.0, Xpool[50:], ypool[50:], 100, batch_size=32, data_seeds=seeds)
    w_pre = {n: getattr(pre, n).detach().clone() for n in ("W1", "b1", "W2", "b2")}
    sched = E.warmup_cosine(200, 50)
    out = {}
    for name, anchor in (("adamw", None), ("to_pre", w_pre)):
        m = E.BatchedMLP(seeds, 64, 32, 10)
        Fr.copy_layers(m, pre, ("W1", "b1", "W2", "b2"))
        Fr.fit(m, "adamw", 3e-3, 10.0, Xpool[:50], ypool[:50], 50, schedule=sched, anchor=anchor,
               batch_size=10, data_seeds=seeds, decay_biases=False)
        out[name] = (Fr.relative_norm(m, w_pre, ("W1", "W2")), Fr.relative_distance(m, w_pre, ("W1", "W2")))
    pred = Fr.warmup_shrink(3e-3, 10.0, 200, 50)
    assert bool(((out["adamw"][0] - pred).abs() < 0.1).all()), (out["adamw"][0], pred)
    assert bool((out["to_pre"][1] < 0.5 * out["adamw"][1]).all())


def test_adam_l2_has_heavier_tails_than_adamw(chapter_split):
    """Quantization: at their usual lambdas Adam+L2's first layer has a larger crest factor (paired seeds)."""
    from adamw_lab.book import stats as S

    Xpool, ypool, Xva, yva = chapter_split
    seeds, sched = list(range(6)), E.warmup_cosine(300, 30)
    crest = {}
    for meth, lam in (("adam_l2", 0.01), ("adamw", 0.316)):
        m = E.BatchedMLP(seeds, 64, 32, 10)
        Fr.fit(m, meth, 1e-2, lam, Xpool[:300], ypool[:300], 300, schedule=sched, batch_size=32, data_seeds=seeds,
               decay_biases=False)
        crest[meth] = Fr.quant_stats(m, Xva, yva)["crest"]
    d = S.paired_difference(crest["adamw"], crest["adam_l2"])
    assert d.verdict() == "支持", d.text()
