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
