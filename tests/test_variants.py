"""adamw_lab.variants against the NumPy reference (adamw_lab.reference_variants) and torch.optim."""
import math

import numpy as np
import pytest
import torch

from adamw_lab import reference_variants as RV
from adamw_lab import variants
from optim_cases import CPP

IMPLS = ["per_tensor", "foreach", CPP]
BETAS, EPS = (0.8, 0.95), 1e-8


def _problem(steps=40, shape=(5, 4), seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=shape), rng.normal(size=(steps,) + shape)


def _cosine(t, steps, peak):
    return peak * 0.5 * (1 + math.cos(math.pi * t / steps))


def _run_torch(opt_factory, w0, grads, lrs=None):
    w = torch.tensor(w0, requires_grad=True)
    opt = opt_factory([w])
    for t, g in enumerate(grads):
        if lrs is not None:
            opt.param_groups[0]["lr"] = lrs[t]
        w.grad = torch.tensor(g)
        opt.step()
    return w.detach().numpy(), opt


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("decay", variants.DECAYS)
def test_scheduled_decay_matches_reference_under_cosine(impl, decay):
    w0, grads = _problem()
    peak, wd = 0.05, 0.7
    lrs = [_cosine(t, len(grads), peak) for t in range(len(grads))]
    got, _ = _run_torch(lambda ps: variants.ScheduledDecayAdamW(
        ps, lr=peak, decay=decay, weight_decay=wd, betas=BETAS, eps=EPS, impl=impl), w0, grads, lrs)
    w, m, v = w0.copy(), np.zeros_like(w0), np.zeros_like(w0)
    for t, g in enumerate(grads):
        w, m, v = RV.scheduled_decay_adamw_step(w, g, m, v, t + 1, lr=lrs[t], max_lr=peak, decay=decay,
                                                betas=BETAS, eps=EPS, weight_decay=wd)
    tol = 1e-12
    np.testing.assert_allclose(got, w, rtol=tol, atol=tol)


@pytest.mark.parametrize("decay,torch_wd", [("standard", 0.3), ("independent", 0.3 / 0.02),
                                            ("corrected", 0.3)])
def test_constant_lr_equals_torch_adamw(decay, torch_wd):
    """At a constant lr = max_lr, independent decay λ is torch's λ/lr and corrected decay is torch's."""
    w0, grads = _problem(seed=1)
    got, _ = _run_torch(lambda ps: variants.ScheduledDecayAdamW(ps, lr=0.02, decay=decay, weight_decay=0.3),
                        w0, grads)
    want, _ = _run_torch(lambda ps: torch.optim.AdamW(ps, lr=0.02, weight_decay=torch_wd), w0, grads)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


def test_independent_decay_does_not_move_with_lr():
    """Zero gradient: standard decay shrinks 10x faster at 10x lr, independent decay does not."""
    shrink = {}
    for decay in ("standard", "independent"):
        for lr in (1e-3, 1e-2):
            w = torch.ones(3, requires_grad=True)
            opt = variants.ScheduledDecayAdamW([w], lr=lr, decay=decay, weight_decay=0.1)
            for _ in range(5):
                w.grad = torch.zeros(3)
                opt.step()
            shrink[decay, lr] = 1 - float(w.detach()[0])
    assert shrink["standard", 1e-2] == pytest.approx(10 * shrink["standard", 1e-3], rel=0.05)
    assert shrink["independent", 1e-2] == pytest.approx(shrink["independent", 1e-3], rel=1e-6)


def test_works_with_a_torch_scheduler_and_keeps_weight_decay():
    w0, grads = _problem(seed=2)
    w = torch.tensor(w0, requires_grad=True)
    opt = variants.ScheduledDecayAdamW([w], lr=0.1, decay="corrected", weight_decay=0.5)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=len(grads))
    ref, m, v = w0.copy(), np.zeros_like(w0), np.zeros_like(w0)
    for t, g in enumerate(grads):
        lr = opt.param_groups[0]["lr"]
        w.grad = torch.tensor(g)
        opt.step()
        sched.step()
        ref, m, v = RV.scheduled_decay_adamw_step(ref, g, m, v, t + 1, lr=lr, max_lr=0.1,
                                                  weight_decay=0.5)
    assert opt.param_groups[0]["weight_decay"] == 0.5
    np.testing.assert_allclose(w.detach().numpy(), ref, rtol=1e-10, atol=1e-12)
    state = opt.state_dict()
    assert state["param_groups"][0]["max_lr"] == 0.1


@pytest.mark.parametrize("impl", IMPLS)
def test_cautious_matches_reference(impl):
    w0, grads = _problem(seed=3)
    got, _ = _run_torch(lambda ps: variants.CautiousAdamW(ps, lr=0.05, weight_decay=2.0, betas=BETAS,
                                                          eps=EPS, impl=impl), w0, grads)
    w, m, v = w0.copy(), np.zeros_like(w0), np.zeros_like(w0)
    masks = []
    for t, g in enumerate(grads):
        u = RV.adam_direction(g, m, v, t + 1, betas=BETAS, eps=EPS)[0]
        masks.append(u * w > 0)
        w, m, v = RV.cautious_adamw_step(w, g, m, v, t + 1, lr=0.05, betas=BETAS, eps=EPS, weight_decay=2.0)
    masks = np.array(masks)
    assert 0.1 < masks.mean() < 0.9, "the test must exercise both branches of the mask"
    tol = 1e-12
    np.testing.assert_allclose(got, w, rtol=tol, atol=tol)
    # and it is not plain AdamW
    plain, _ = _run_torch(lambda ps: torch.optim.AdamW(ps, lr=0.05, weight_decay=2.0, betas=BETAS, eps=EPS),
                          w0, grads)
    assert np.abs(plain - got).max() > 1e-3


@pytest.mark.parametrize("cls,kw", [(variants.ScheduledDecayAdamW, dict(decay="corrected")),
                                    (variants.CautiousAdamW, {})])
def test_batched_sweep_equals_separate_runs(cls, kw):
    """Per-model lr / weight_decay tensors: model k trains as if alone with lr[k], wd[k]."""
    rng = np.random.default_rng(4)
    M, steps = 3, 20
    w0, grads = rng.normal(size=(M, 4)), rng.normal(size=(steps, M, 4))
    lr, wd = torch.tensor([0.01, 0.03, 0.1], dtype=torch.float64), torch.tensor([0.5, 2.0, 1.0], dtype=torch.float64)
    w = torch.tensor(w0, requires_grad=True)
    opt = cls([w], lr=lr, weight_decay=wd, impl="foreach", **kw)
    for t, g in enumerate(grads):
        opt.param_groups[0]["lr"] = lr * (1 - t / steps)
        w.grad = torch.tensor(g)
        opt.step()
    for k in range(M):
        wk = torch.tensor(w0[k], requires_grad=True)
        ok = cls([wk], lr=float(lr[k]), weight_decay=float(wd[k]), impl="foreach", **kw)
        for t, g in enumerate(grads):
            ok.param_groups[0]["lr"] = float(lr[k]) * (1 - t / steps)
            wk.grad = torch.tensor(g[k])
            ok.step()
        np.testing.assert_allclose(w[k].detach().numpy(), wk.detach().numpy(), rtol=1e-10, atol=1e-12)


def test_bad_input_is_named():
    w = torch.zeros(3, requires_grad=True)
    with pytest.raises(ValueError, match="Invalid decay"):
        variants.ScheduledDecayAdamW([w], decay="lr-free")
    with pytest.raises(ValueError, match="max_lr"):
        variants.ScheduledDecayAdamW([w], lr=0.0)          # warm-up from 0 needs max_lr
    with pytest.raises(ValueError, match="max_lr"):
        variants.ScheduledDecayAdamW([w], lr=1e-3, max_lr=-1.0)
    with pytest.raises(ValueError, match="weight_decay"):
        variants.CautiousAdamW([w], weight_decay=-1.0)
    with pytest.raises(ValueError, match="Invalid decay"):
        RV.scheduled_decay_factor("lr-free", 0.1, 0.1, 0.1)
    opt = variants.ScheduledDecayAdamW([w], lr=0.0, max_lr=1e-3)
    assert opt.param_groups[0]["max_lr"] == 1e-3


def test_decay_per_parameter_group():
    """AdamC corrects only the normalised layers: a group may choose its own decay."""
    w0, grads = _problem(seed=5)
    a = torch.tensor(w0, requires_grad=True)
    b = torch.tensor(w0, requires_grad=True)
    opt = variants.ScheduledDecayAdamW([{"params": [a]}, {"params": [b], "decay": "standard"}],
                                       lr=0.05, decay="corrected", weight_decay=0.5)
    refs = {"corrected": [w0.copy(), np.zeros_like(w0), np.zeros_like(w0)],
            "standard": [w0.copy(), np.zeros_like(w0), np.zeros_like(w0)]}
    for t, g in enumerate(grads):
        lr = _cosine(t, len(grads), 0.05)
        for group in opt.param_groups:
            group["lr"] = lr
        a.grad, b.grad = torch.tensor(g), torch.tensor(g)
        opt.step()
        for decay, (w, m, v) in refs.items():
            refs[decay] = RV.scheduled_decay_adamw_step(w, g, m, v, t + 1, lr=lr, max_lr=0.05,
                                                        decay=decay, weight_decay=0.5)
    np.testing.assert_allclose(a.detach().numpy(), refs["corrected"][0], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(b.detach().numpy(), refs["standard"][0], rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="Invalid decay"):
        opt.add_param_group({"params": [torch.zeros(2, requires_grad=True)], "decay": "lr-free"})


# --- the closed forms and recurrences behind the Part IV explorers ------------------


def test_warmup_cosine_lrs_is_linear_then_cosine():
    lrs = RV.warmup_cosine_lrs(0.01, 200, 20)
    assert lrs.shape == (200,)
    np.testing.assert_allclose(lrs[:20], 0.01 * np.arange(1, 21) / 20)
    assert lrs[20] == pytest.approx(0.01)
    assert lrs[110] == pytest.approx(0.01 * 0.5 * (1 + math.cos(math.pi * 90 / 180)))
    assert np.all(np.diff(lrs[20:]) < 0) and lrs[-1] < 1e-5


@pytest.mark.parametrize("decay", ["standard", "corrected"])
def test_scale_invariant_norms_follow_orthogonal_updates(decay):
    """The recurrence equals the norm of a weight shrunk by the decay factor plus updates ⟂ w of size ρ√C."""
    rng = np.random.default_rng(0)
    w = rng.normal(size=50)
    max_lr, wd, steps, warmup, update_sq = 0.05, 0.8, 300, 30, 50 * 0.7**2
    want = RV.scale_invariant_norms(decay, max_lr, wd, steps, warmup, np.linalg.norm(w), update_sq)
    got = [np.linalg.norm(w)]
    for lr in RV.warmup_cosine_lrs(max_lr, steps, warmup):
        u = rng.normal(size=w.shape)
        u -= (u @ w) / (w @ w) * w                       # orthogonal to w
        u *= math.sqrt(update_sq) / np.linalg.norm(u)
        w = RV.scheduled_decay_factor(decay, lr, max_lr, wd) * w - lr * u
        got.append(np.linalg.norm(w))
    np.testing.assert_allclose(got, want, rtol=1e-10)


def test_corrected_decay_keeps_the_equilibrium_norm_and_the_gradient_norm():
    """Standard decay: ‖w‖ follows √(η_t ρ²C/2λ) down and the gradient norm rises, the more so
    the larger λ; corrected decay: ‖w‖ stays at √(η_max ρ²C/2λ), no rise."""
    max_lr, steps, warmup, update_sq = 1e-2, 4000, 100, 1000.0
    lrs = RV.warmup_cosine_lrs(max_lr, steps, warmup)
    rises = []
    for wd in (0.3, 1.0, 3.0):
        n0 = math.sqrt(max_lr * update_sq / (2 * wd))             # start at the peak equilibrium
        std = RV.scale_invariant_norms("standard", max_lr, wd, steps, warmup, n0, update_sq)
        cor = RV.scale_invariant_norms("corrected", max_lr, wd, steps, warmup, n0, update_sq)
        mid = steps // 2
        assert std[mid] == pytest.approx(math.sqrt(lrs[mid] * update_sq / (2 * wd)), rel=0.1)
        np.testing.assert_allclose(cor[warmup:int(0.9 * steps)], n0, rtol=0.05)
        rise = RV.gradient_norm_rise("standard", max_lr, wd, steps, warmup, n0, update_sq)
        assert RV.gradient_norm_rise("corrected", max_lr, wd, steps, warmup, n0, update_sq) == pytest.approx(1, abs=0.03)
        rises.append(rise)
    assert 1.1 < rises[0] < rises[1] < rises[2]


def test_box_radius_bounds_adamw_under_a_constant_gradient():
    """A constant gradient pushes |w| up to the face of the box 1/λ and not beyond."""
    from adamw_lab import reference

    wd = 2.0
    w, m, v = np.zeros(3), np.zeros(3), np.zeros(3)
    for t in range(1, 3001):
        w, m, v = reference.adamw_step(w, np.array([1.0, -0.5, 2.0]), m, v, t, lr=0.01, weight_decay=wd)
    np.testing.assert_allclose(np.abs(w), RV.box_radius(wd), rtol=1e-3)
    assert np.abs(w).max() <= RV.box_radius(wd) * (1 + 1e-9)
    with pytest.raises(ValueError, match="weight_decay > 0"):
        RV.box_radius(0.0)
