"""Fast tests of adamw_lab.book.experiments (the Part II helpers)."""
import math

import numpy as np
import pytest
import torch

from adamw_lab.book import experiments as E
from adamw_lab.book import stats as S


def test_digits_split_shapes_and_range():
    Xtr, ytr, Xte, yte = E.load_digits_split(n_train=100, seed=1)
    assert Xtr.shape == (100, 64) and len(Xte) == 1797 - 100
    assert 0.0 <= float(Xtr.min()) and float(Xtr.max()) <= 1.0
    _, y2, _, _ = E.load_digits_split(n_train=50, classes=[3, 8])
    assert set(y2.tolist()) <= {0, 1}


def test_batched_mlp_matches_single_models():
    m = E.BatchedMLP([0, 1, 0], 5, 4, 3)
    x = torch.randn(7, 5)
    out = m(x)
    assert out.shape == (3, 7, 3)
    torch.testing.assert_close(out[0], out[2])  # same seed -> same model
    one = torch.relu(x @ m.W1[1] + m.b1[1]) @ m.W2[1] + m.b2[1]
    torch.testing.assert_close(out[1], one)


def test_make_optimizer_matches_torch_per_model():
    """Per-model lr / weight_decay tensors: each model steps like its own torch optimizer."""
    torch.manual_seed(0)
    w0 = torch.randn(2, 3, 4)
    lr = torch.tensor([1e-2, 3e-2])
    wd = torch.tensor([0.5, 0.1])
    for method, ref in (("adamw", torch.optim.AdamW), ("adam_l2", torch.optim.Adam)):
        p = torch.nn.Parameter(w0.clone())
        opt = E.make_optimizer(method, [p], lr, wd)
        singles = [torch.nn.Parameter(w0[i].clone()) for i in range(2)]
        refs = [ref([q], lr=float(lr[i]), weight_decay=float(wd[i])) for i, q in enumerate(singles)]
        for _ in range(5):
            p.grad = torch.sin(p.detach())
            opt.step()
            for q, o in zip(singles, refs):
                q.grad = torch.sin(q.detach())
                o.step()
        torch.testing.assert_close(p.detach(), torch.stack([q.detach() for q in singles]))


def test_make_optimizer_rejects_unknown():
    with pytest.raises(ValueError):
        E.make_optimizer("sgd", [torch.nn.Parameter(torch.zeros(1, 2))], 0.1, 0.0)


def test_training_reduces_error_and_decay_shrinks_weights():
    Xtr, ytr, Xte, yte = E.load_digits_split(n_train=200, seed=0)
    norms = {}
    for method in ("adam", "adamw"):
        m = E.BatchedMLP([0, 1], 64, 16, 10)
        h = E.train(m, method, 1e-2, 1.0, Xtr, ytr, 60, Xte, yte, record_every=30)
        assert float(h["test_err"][-1].max()) < 0.4 < float(h["test_err"][0].min())
        norms[method] = float(m.W1.detach().norm())
    assert norms["adamw"] < norms["adam"]


def test_warmup_cosine():
    f = E.warmup_cosine(100, 10)
    assert f(0) == pytest.approx(0.1) and f(9) == pytest.approx(1.0)
    assert f(10) == pytest.approx(1.0) and f(99) < 0.01


def test_pgd_stays_in_ball_and_hurts():
    Xtr, ytr, Xte, yte = E.load_digits_split(n_train=300, seed=0)
    m = E.BatchedMLP([0], 64, 16, 10)
    E.train(m, "adam", 1e-2, 0.0, Xtr, ytr, 80)
    xa = E.pgd_attack(m, Xte[:200], yte[:200], eps=0.1, steps=5)
    assert float((xa - Xte[:200]).abs().max()) <= 0.1 + 1e-6
    assert float(E.error_rate(m, xa[0], yte[:200])[0]) > float(E.error_rate(m, Xte[:200], yte[:200])[0])


def test_quantize_error_bound():
    w = torch.randn(3, 50, 20)
    for bits in (4, 8):
        q = E.quantize(w, bits)
        step = w.abs().amax(dim=(1, 2), keepdim=True) / (2 ** (bits - 1) - 1)
        assert bool(((q - w).abs() <= step / 2 + 1e-7).all())
    assert len(torch.unique(E.quantize(w, 2)[0])) <= 3
    assert math.isclose(E.mean_std([[1.0, 3.0]])[0][0], 2.0)


# ----------------------------------------------------------------- stats
def test_paired_interval_covers_the_true_difference():
    """Over many simulated experiments the 95 % interval holds the truth about 95 % of the time."""
    rng = np.random.default_rng(0)
    hits, trials = 0, 2000
    for _ in range(trials):
        seed_effect = rng.normal(0, 3, 10)                  # shared by both methods (pairing)
        a = 10 + seed_effect + rng.normal(0, 0.5, 10)
        b = 11 + seed_effect + rng.normal(0, 0.5, 10)       # true a - b = -1
        r = S.paired_difference(a, b)
        hits += r.low <= -1 <= r.high
    # binomial sd at 0.95 with 2000 trials is 0.005: allow 4 sd
    assert abs(hits / trials - 0.95) < 0.02


def test_pairing_removes_seed_noise_and_verdicts_follow_the_interval():
    rng = np.random.default_rng(1)
    seed_effect = rng.normal(0, 3, 10)
    a = 10 + seed_effect + rng.normal(0, 0.3, 10)
    b = 11 + seed_effect + rng.normal(0, 0.3, 10)
    r = S.paired_difference(a, b)
    assert r.high < 0 and r.verdict() == "支持"                # a has the lower error
    assert r.verdict(lower_is_better=False) == "不支持"       # a has the lower accuracy
    assert S.paired_difference(b, a).verdict() == "不支持"
    # the same numbers unpaired (seed noise sd 3) could not tell them apart
    assert (r.high - r.low) < 0.25 * 2 * 1.96 * 3 * math.sqrt(2 / 10)
    same = S.paired_difference(a, a + rng.normal(0, 0.3, 10))
    assert same.low < 0 < same.high and same.verdict() == "无法区分"
    assert same.text(1).count("[") == 1 and r.n == 10 and r.level == 0.95


def test_paired_difference_rejects_bad_input():
    with pytest.raises(ValueError, match="same length"):
        S.paired_difference([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="at least 2"):
        S.paired_difference([1.0], [2.0])
    with pytest.raises(ValueError, match="NaN"):
        S.paired_difference([1.0, float("nan")], [2.0, 3.0])
    with pytest.raises(ValueError, match="level"):
        S.paired_difference([1.0, 2.0], [2.0, 3.0], level=95)


# ----------------------------------------------------------------- Part II protocol helpers
def test_batched_cnn_matches_single_models():
    import torch.nn.functional as F

    m = E.BatchedCNN([0, 1, 0], channels=4)
    x = torch.rand(5, 8, 8)
    out = m(x)
    assert out.shape == (3, 5, 10)
    torch.testing.assert_close(out[0], out[2])
    z = torch.relu(F.conv2d(x[:, None], m.Wc[1], padding=1) + m.bc[1].view(1, -1, 1, 1))
    torch.testing.assert_close(out[1], F.avg_pool2d(z, 2).flatten(1) @ m.Wo[1] + m.bo[1])
    # per-model inputs [M, N, 8, 8] give each model its own images
    xs = torch.rand(3, 5, 8, 8)
    torch.testing.assert_close(m(xs)[1], m(xs[1])[1])


def test_batched_rnn_takes_per_model_inputs():
    m = E.BatchedRNN([0, 1], 8, 4, 10)
    xs = torch.rand(2, 5, 8, 8)
    torch.testing.assert_close(m(xs)[1], m(xs[1])[1])


def test_data_order_pairs_models_by_seed():
    order = E.data_order([3, 4, 3], n=100, batch_size=8, steps=20)
    assert order.shape == (20, 3, 8) and int(order.max()) < 100
    assert torch.equal(order[:, 0], order[:, 2])           # same seed: same minibatches
    assert not torch.equal(order[:, 0], order[:, 1])
    torch.testing.assert_close(E.data_order([4], 100, 8, 20)[:, 0], order[:, 1])   # independent of the others


def test_minibatch_training_with_undecayed_biases():
    Xtr, ytr, Xva, yva = E.load_digits_split(n_train=200, seed=0)
    seeds = [0, 1]
    bias = {}
    for decay_biases in (True, False):
        m = E.BatchedMLP(seeds, 64, 16, 10)
        E.train(m, "adamw", 1e-2, 30.0, Xtr, ytr, 60, batch_size=32, data_seeds=seeds, decay_biases=decay_biases)
        bias[decay_biases] = float(m.b2.detach().norm())
        assert float(m.W1.detach().norm()) < 1.0              # the matrices shrink either way
    assert bias[False] > 3 * bias[True]                      # param_groups: biases are not decayed
    m = E.BatchedMLP(seeds, 64, 16, 10)
    E.train(m, "adam", 1e-2, 0.0, Xtr, ytr, 150, batch_size=32, data_seeds=seeds, decay_biases=False)
    assert float(E.error_rate(m, Xva, yva).max()) < 0.25


def test_rare_feature_data():
    X, y = E.rare_feature_data(20000, d_common=4, d_rare=6, p_rare=0.01, scale=7.0, snr=1.5, seed=0)
    rare = X[:, 4:]
    active = rare != 0
    assert abs(float(active.float().mean()) - 0.01) < 0.002
    assert torch.all(rare[active].abs() == 7.0)
    s = 2.0 * y.float() - 1.0
    assert abs(float((rare * s[:, None]).mean())) < 0.02          # label-free
    acc = ((X[:, :4].sum(1) > 0).long() == y).float().mean()      # Bayes rule on the common features
    assert abs(float(acc) - 0.9332) < 0.01                        # Phi(1.5)


def test_good_region_slope_reads_the_collapse_edge():
    log_lr = np.array([-3.0, -2.5, -2.0, -1.5])
    log_wd = np.arange(-4.0, 2.01, 0.5)

    def grid(edge):                       # error 5 % below the edge, 90 % above it
        return np.array([[5.0 if w <= e else 90.0 for w in log_wd] for e in edge])

    assert E.collapse_edge(grid([0.0])[0], log_wd) == pytest.approx(0.0 + 0.5 * 5 / 85)
    assert E.good_region_slope(grid(-2.0 - log_lr), log_lr, log_wd) == pytest.approx(-1.0)    # eta*lambda fixed
    assert E.good_region_slope(grid(np.zeros(4)), log_lr, log_wd) == pytest.approx(0.0)       # lambda fixed
    assert math.isnan(E.good_region_slope(grid(np.zeros(4)) + 50, log_lr, log_wd))           # no row learns


def test_bootstrap_and_verdict_towards():
    rng = np.random.default_rng(0)
    hits = 0
    for _ in range(200):
        x = rng.normal(1.0, 1.0, 30)
        est, lo, hi = S.bootstrap(np.mean, x, n_boot=400, seed=int(rng.integers(1 << 30)))
        assert lo <= est <= hi
        hits += lo <= 1.0 <= hi
    assert 0.85 <= hits / 200 <= 0.99
    assert S.verdict_towards(-1.2, -0.8, claimed=-1.0, alternative=0.0) == "支持"
    assert S.verdict_towards(-0.6, -0.2, claimed=-1.0, alternative=0.0) == "不支持"
    assert S.verdict_towards(-1.2, 0.2, claimed=-1.0, alternative=0.0) == "无法区分"
    assert repr(S.verdict_towards(-1.2, 0.2, -1.0, 0.0)) == "无法区分"          # glue shows the bare word


def test_small_rare_gradients_are_shrunk_more_by_l2():
    """Chapter claim (verdict 不支持 at scale 10): with rare but small gradients Adam+L2, at its
    validation-best lambda, shrinks the rare weights relative to the common ones more than AdamW."""
    d_c, d_r = 10, 20
    tr = E.rare_feature_data(1000, d_c, d_r, scale=10.0, seed=1)
    va = E.rare_feature_data(2000, d_c, d_r, scale=10.0, seed=2)
    seeds = list(range(6))

    def run(method, lams):
        wd, s = torch.meshgrid(torch.tensor(lams), torch.tensor(seeds, dtype=torch.float32), indexing="ij")
        s = s.flatten().int().tolist()
        m = E.BatchedLinear(len(s), d_c + d_r, 2)
        E.train(m, method, 1e-2, wd.flatten(), *tr, 600, batch_size=32, data_seeds=s, decay_biases=False)
        w = E.binary_feature_weights(m)
        shape = (len(lams), len(seeds))
        return (w[:, d_c:].norm(dim=1).view(shape), w[:, :d_c].norm(dim=1).view(shape),
                E.error_rate(m, *va).view(shape))

    r0, c0, _ = run("adam", [0.0])
    rel = {}
    for method, lams in (("adam_l2", [1e-2, 3e-2, 1e-1, 3e-1]), ("adamw", [0.3, 1.0, 3.0, 10.0])):
        r, c, v = run(method, lams)
        k = int(v.mean(1).argmin())
        rel[method] = (r[k] / r0[0]) / (c[k] / c0[0])
    d = S.paired_difference(rel["adamw"], rel["adam_l2"])
    assert d.verdict() == "不支持", d.text(3)
