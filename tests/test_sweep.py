"""Batched sweeps: per-model lr / weight_decay tensors equal a loop of torch.optim runs."""
import pytest
import torch

import adamw_lab
from optim_cases import CPP, check_sweep_matches_loop


@pytest.mark.parametrize("impl", ["per_tensor", "foreach", CPP])
@pytest.mark.parametrize("name", ["AdamW", "AdamL2"])
def test_sweep_matches_loop_of_torch_runs(impl, name):
    check_sweep_matches_loop(impl, name, "cpu")


def test_grid_of_models_as_in_the_generalization_chapter():
    """An 3 lr × 2 wd × 2 seeds grid, M = 12, flattened along the model dimension."""
    lrs, wds, seeds = torch.tensor([1e-3, 1e-2, 1e-1]), torch.tensor([0.0, 0.5]), 2
    lr = lrs.repeat_interleave(len(wds) * seeds)
    wd = wds.repeat_interleave(seeds).repeat(len(lrs))
    M = len(lr)
    W = torch.zeros(M, 4, 2, requires_grad=True)
    opt = adamw_lab.AdamW([W], lr=lr, weight_decay=wd)
    for _ in range(3):
        W.grad = torch.zeros_like(W)
        with torch.no_grad():
            W += 1.0                     # same weights everywhere; only the decay differs
        opt.step()
    # zero gradients: model k was shrunk by (1 − lr_k·wd_k) at each step
    expected = torch.zeros(M)
    for _ in range(3):
        expected = (expected + 1.0) * (1 - lr * wd)
    torch.testing.assert_close(W[:, 0, 0].detach(), expected)


@pytest.mark.parametrize("impl", ["per_tensor", "foreach"])
def test_sgdw_sweep_matches_loop(impl):
    M = 4
    lr, wd = torch.tensor([0.01, 0.02, 0.05, 0.1]), torch.tensor([0.0, 0.1, 0.5, 1.0])
    W0 = torch.randn(M, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    W = W0.clone().requires_grad_()
    opt = adamw_lab.SGDW([W], lr=lr, momentum=0.9, weight_decay=wd, impl=impl)
    singles = [adamw_lab.SGDW([w], lr=lr[k].item(), momentum=0.9, weight_decay=wd[k].item())
               for k, w in enumerate(w.clone().requires_grad_() for w in W0)]
    for _ in range(20):
        opt.zero_grad()
        W.sin().sum().backward()
        opt.step()
        for o in singles:
            (w,) = o.param_groups[0]["params"]
            o.zero_grad()
            w.sin().sum().backward()
            o.step()
    for k, o in enumerate(singles):
        torch.testing.assert_close(W[k], o.param_groups[0]["params"][0], rtol=1e-12, atol=1e-12)


def test_sweep_shape_mismatch_names_the_argument():
    with pytest.raises(ValueError, match="lr"):
        adamw_lab.AdamW([torch.nn.Parameter(torch.zeros(3, 2))], lr=torch.full((4,), 1e-3))
    with pytest.raises(ValueError, match="weight_decay"):
        adamw_lab.AdamL2([torch.nn.Parameter(torch.zeros(3, 2))], weight_decay=torch.zeros(2, 2))


SHAPES = [(), (1,), (1, 1)]


@pytest.mark.parametrize("impl,shape", [(impl, shape) for impl in ("per_tensor", "foreach") for shape in SHAPES]
                         + [pytest.param("cpp", shape, marks=CPP.marks) for shape in SHAPES]
                         + [("compiled", ())])   # one compiled configuration: compiling takes seconds
def test_one_element_tensor_lr_is_a_scalar(impl, shape):
    """A tensor lr with one element, of any shape (allowed by torch.optim), is one value
    for every parameter (a 0-d one included), not a sweep of one model."""
    a = torch.nn.Parameter(torch.ones(3, 2, dtype=torch.float64))
    s = torch.nn.Parameter(torch.tensor(2.0, dtype=torch.float64))
    b = [torch.nn.Parameter(t.detach().clone()) for t in (a, s)]
    opt_a = adamw_lab.AdamW([a, s], lr=torch.full(shape, 0.1, dtype=torch.float64), impl=impl)
    opt_b = torch.optim.AdamW(b, lr=0.1)
    for _ in range(3):
        for ps, opt in (([a, s], opt_a), (b, opt_b)):
            for p in ps:
                p.grad = torch.ones_like(p)
            opt.step()
    torch.testing.assert_close(a, b[0], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(s, b[1], rtol=1e-12, atol=1e-12)
