"""The fused Triton kernel: on the CPU through Triton's interpreter, on a GPU for real.

The interpreter is switched on by ``TRITON_INTERPRET=1``, which triton reads
when a kernel is defined; it must not leak into the other tests, so the CPU
check runs in a separate process.  On a GPU every implementation runs the
whole comparison with torch.optim.
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

triton = pytest.importorskip("triton")

HERE = Path(__file__).parent
CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def test_triton_kernel_in_the_interpreter():
    env = dict(os.environ, TRITON_INTERPRET="1")
    result = subprocess.run([sys.executable, str(HERE / "optim_cases.py"), "triton", "cpu"],
                            env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("ok triton cpu") == 15 + 12   # + the layout matrix


@CUDA
@pytest.mark.parametrize("impl", ["per_tensor", "foreach", "compiled", "triton"])
def test_every_implementation_on_cuda(impl):
    from optim_cases import run_all
    run_all(impl, "cuda")


@CUDA
def test_default_on_cuda_is_triton():
    from adamw_lab import optim
    assert optim.default_impl("cuda") == "triton"


@CUDA
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_triton_half_precision_close_to_torch(dtype):
    import adamw_lab
    g = torch.Generator(device="cuda").manual_seed(0)
    p0 = torch.randn(1000, 33, device="cuda", generator=g).to(dtype)
    a, b = p0.clone().requires_grad_(), p0.clone().requires_grad_()
    oa, ob = adamw_lab.AdamW([a], impl="triton"), torch.optim.AdamW([b], fused=True)
    for _ in range(10):
        grad = torch.randn(p0.shape, device="cuda", generator=g).to(dtype)
        a.grad, b.grad = grad, grad.clone()
        oa.step()
        ob.step()
    torch.testing.assert_close(a.float(), b.float(), rtol=1e-2, atol=1e-2)
