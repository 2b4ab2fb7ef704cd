"""Tests of the robustness helpers in adamw_lab.book.experiments (chapter 应用/鲁棒性)."""
import math

import pytest
import torch

from adamw_lab.book import experiments as E, stats as S


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny batched models: one thread, as in the chapter (no oversubscription on a shared machine)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


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


# --- helpers added for the minibatch rewrite of the chapter ---------------------------------------


def test_train_blocks_give_every_model_its_own_sample():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(40, 3, generator=g)
    y = torch.cat([torch.zeros(20, dtype=torch.int64), torch.ones(20, dtype=torch.int64)])   # block 0: class 0 only
    m = E.BatchedLinear(2, 3, 2)
    E.train(m, "adam", 0.1, 0.0, X, y, 50, batch_size=8, data_seeds=[0, 0], blocks=[0, 1], decay_biases=False)
    pred = m(X).argmax(-1)                       # each model has learnt its own block's labels
    assert (pred[0, :20] == 0).all() and (pred[1, 20:] == 1).all()
    # one block holding everything: the same run as without blocks
    a, b = E.BatchedLinear(2, 3, 2), E.BatchedLinear(2, 3, 2)
    E.train(a, "adamw", 0.1, 0.5, X, y, 30, batch_size=8, data_seeds=[3, 4], decay_biases=False)
    E.train(b, "adamw", 0.1, 0.5, X, y, 30, batch_size=8, data_seeds=[3, 4], blocks=[0, 0], decay_biases=False)
    assert torch.equal(a.W, b.W)
    with pytest.raises(ValueError):
        E.train(a, "adam", 0.1, 0.0, X[:39], y[:39], 1, batch_size=8, data_seeds=[0, 0], blocks=[0, 1])
    with pytest.raises(ValueError):
        E.train(a, "adam", 0.1, 0.0, X, y, 1, blocks=[0, 1])
    Xs, ys = E.stack_blocks([(X[:20], y[:20]), (X[20:], y[20:])])
    assert torch.equal(Xs, X) and torch.equal(ys, y)
    with pytest.raises(ValueError):
        E.stack_blocks([(X[:20], y[:20]), (X[20:30], y[20:30])])


def test_select_models_keeps_the_chosen_models():
    m = E.BatchedMLP([0, 1, 2, 3], 5, 4, 3)
    sub = E.select_models(m, [3, 1])
    assert sub.M == 2 and torch.equal(sub.W1[0], m.W1[3]) and torch.equal(sub.b2[1], m.b2[1])
    x = torch.randn(6, 5)
    assert torch.allclose(sub(x), m(x)[[3, 1]])
    assert E.select_models(m, slice(1, 3)).M == 2
    assert E.logit_weight_cap(4.0) == 0.5


# --- the chapter's verdicts, re-measured on the same data with 10 paired seeds (intervals, not digits) -----
SEEDS = list(range(10))
WDS = torch.logspace(-3, 1.5, 10)


def _spurious_runs(method, lams, rho=0.95):
    data = E.stack_blocks([E.spurious_data(400, rho, seed=s) for s in SEEDS])
    grid = [(float(lam), s) for lam in lams for s in SEEDS]
    m = E.BatchedLinear(len(grid), 9, 2)
    E.train(m, method, 1e-2, torch.tensor([g[0] for g in grid]), *data, 400, batch_size=32,
            data_seeds=[g[1] for g in grid], blocks=[g[1] for g in grid], decay_biases=False)
    return m


def test_spurious_feature_adamw_wins_only_when_lambda_is_chosen_after_the_shift():
    val_id, val_shift = E.spurious_data(1000, 0.95, seed=1000), E.spurious_data(500, 0.5, seed=1002)
    test_shift = E.spurious_data(4000, 0.5, seed=1001)
    shape = (len(WDS), len(SEEDS))
    acc = {}
    for method in ("adam_l2", "adamw"):
        m = _spurious_runs(method, WDS)
        for rule, val in (("id", val_id), ("shift", val_shift)):
            k = int((1 - E.error_rate(m, *val)).view(shape).mean(1).argmax())
            acc[method, rule] = (1 - E.error_rate(m, *test_shift)).view(shape)[k] * 100
        if method == "adamw":
            # the cap |w_j| <= 2/lambda: reached on average at lambda = 10, crossed only by minibatch noise
            w = E.binary_feature_weights(m).view(*shape, -1)[-2]
            ratio = w / E.logit_weight_cap(float(WDS[-2]))
            assert 0.7 < float(ratio.mean()) <= 1.0 and float(ratio.max()) < 1.25
    shift = S.paired_difference(acc["adamw", "shift"], acc["adam_l2", "shift"])
    usual = S.paired_difference(acc["adamw", "id"], acc["adam_l2", "id"])
    assert shift.verdict(lower_is_better=False) == "支持", shift
    assert usual.high < shift.low, (usual, shift)           # the gain needs the shift-aware choice


def _digits_mlps(method, lams, data, steps=300):
    grid = [(float(lam), s) for lam in lams for s in SEEDS]
    m = E.BatchedMLP([s for _, s in grid], 64, 32, 10)
    E.train(m, method, 1e-2, torch.tensor([g[0] for g in grid]), *data, steps, batch_size=32,
            data_seeds=[s for _, s in grid], decay_biases=False)
    return m


def test_class_imbalance_decay_pulls_the_minority_columns_back_first():
    minority = (3, 8, 9)
    Xtr, ytr, Xpool, ypool = E.imbalanced_digits_split(n_major=50, n_minor=5, minority=minority, seed=0)
    perm = torch.randperm(len(ypool), generator=torch.Generator().manual_seed(0))
    Xva, yva, Xte, yte = Xpool[perm[:500]], ypool[perm[:500]], Xpool[perm[500:]], ypool[perm[500:]]

    def ratio(m):
        col = m.W2.detach().norm(dim=1)
        return col[:, list(minority)].mean(1) / col[:, [c for c in range(10) if c not in minority]].mean(1)

    adam = _digits_mlps("adam", [0.0], (Xtr, ytr))
    adamw = _digits_mlps("adamw", [WDS[1], WDS[5]], (Xtr, ytr))         # the chosen and the largest usable lambda
    l2 = _digits_mlps("adam_l2", [WDS[1]], (Xtr, ytr))                    # Adam+L2's largest usable lambda
    r0, rw, rl = ratio(adam), ratio(adamw).view(2, -1), ratio(l2)
    assert S.paired_difference(rw[1], r0).high < 0            # AdamW: the ratio falls, it does not rise
    assert S.paired_difference(rl, r0).high < 0               # Adam+L2: falls too
    rec = lambda m, X, y: E.imbalance_metrics(E.per_class_recall(m, X, y, 10), minority)["minority_recall"] * 100  # noqa: E731
    drop = S.paired_difference(rec(adamw, Xva, yva).view(2, -1)[1], rec(adam, Xva, yva))
    assert drop.high < 0                                      # ... and minority recall drops with it
    chosen = S.paired_difference(rec(adamw, Xte, yte).view(2, -1)[0], rec(adam, Xte, yte))
    assert chosen.verdict(lower_is_better=False) == "无法区分", chosen


def test_pgd_coupled_decay_is_more_robust_than_decoupled():
    Xtr, ytr, Xpool, ypool = E.load_digits_split(n_train=500, seed=0)
    Xte, yte = Xpool[600:], ypool[600:]
    acc = {}
    for method, lam in (("adam", 0.0), ("adam_l2", 0.01), ("adamw", float(WDS[5]))):   # the chapter's choices
        m = _digits_mlps(method, [lam], (Xtr, ytr))
        acc[method] = E.robust_accuracy_curve(m, Xte, yte, [0.05])[:, 0] * 100
    assert S.paired_difference(acc["adam_l2"], acc["adam"]).verdict(lower_is_better=False) == "支持"
    assert S.paired_difference(acc["adamw"], acc["adam_l2"]).verdict(lower_is_better=False) == "不支持"
