"""The torch.compile path: one small model, two configurations (compiling takes seconds)."""
import shutil

import pytest
import torch

from optim_cases import check_layouts_match_torch, check_matches_torch, check_sweep_matches_loop

pytestmark = pytest.mark.skipif(shutil.which("g++") is None and shutil.which("c++") is None,
                                reason="torch.compile on the CPU needs a C++ compiler")


def test_compiled_adamw_matches_torch_fp32():
    check_matches_torch("compiled", "AdamW", torch.float32, "cpu", amsgrad=True, steps=30)


@pytest.mark.parametrize("name,dtype,amsgrad,maximize", [
    ("AdamW", torch.float64, True, False),
    ("AdamL2", torch.float32, False, True),   # a 0-d parameter under L2 crashed (float64 promotion)
], ids=["AdamW-fp64-amsgrad", "AdamL2-fp32-maximize"])
def test_compiled_in_other_layouts(name, dtype, amsgrad, maximize):
    """Two of the layout matrix's configurations (each compiles one graph for all layouts)."""
    check_layouts_match_torch("compiled", name, dtype, "cpu", amsgrad=amsgrad, maximize=maximize, steps=3)


def test_compiled_adam_l2_sweep():
    check_sweep_matches_loop("compiled", "AdamL2", "cpu", M=3, steps=20)


def test_compiled_params_at_different_steps():
    """A parameter without a gradient skips a step, so one group mixes step counts t."""
    import adamw_lab

    g = torch.Generator().manual_seed(0)
    ours_params = [torch.randn(5, generator=g).requires_grad_(), torch.randn(3, 2, generator=g).requires_grad_()]
    torch_params = [p.detach().clone().requires_grad_() for p in ours_params]
    ours = adamw_lab.AdamW(ours_params, lr=1e-2, weight_decay=0.1, impl="compiled")
    theirs = torch.optim.AdamW(torch_params, lr=1e-2, weight_decay=0.1)
    for k in range(6):
        grads = [torch.randn(p.shape, generator=g) for p in ours_params]
        for params in (ours_params, torch_params):
            for i, p in enumerate(params):   # the second parameter gets a gradient every other step
                p.grad = grads[i].clone() if i == 0 or k % 2 == 0 else None
        ours.step()
        theirs.step()
    assert [float(ours.state[p]["step"]) for p in ours_params] == [6.0, 3.0]
    for p, q in zip(ours_params, torch_params):
        torch.testing.assert_close(p, q, rtol=2e-5, atol=2e-6)
