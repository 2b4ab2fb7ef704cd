"""The fused C++ kernel: what the shared checks in test_optim.py / test_sweep.py do not reach.

Work split into blocks and threads, tensors that end mid-line, batched models
whose boundaries fall inside a block, dtypes it hands on, and the errors
when it cannot be built.
"""
import contextlib
import subprocess
import sys

import pytest
import torch

import adamw_lab
from adamw_lab import cpp_kernel

pytestmark = pytest.mark.skipif(not cpp_kernel.available("cpu"), reason="impl='cpp' needs a C++ compiler")


def _pair(shapes, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    ours = [torch.randn(s, generator=g, dtype=dtype).requires_grad_() for s in shapes]
    theirs = [p.detach().clone().requires_grad_() for p in ours]
    return ours, theirs, g


def _train(ours, theirs, g, opt_a, opt_b, steps):
    for _ in range(steps):
        for p, q in zip(ours, theirs):
            p.grad = torch.randn(p.shape, generator=g, dtype=p.dtype)
            q.grad = p.grad.clone()
        opt_a.step()
        opt_b.step()


def test_many_tensors_across_blocks_and_threads():
    """Tensors larger than a block, smaller than a cache line, of odd lengths."""
    block = cpp_kernel.BLOCK
    shapes = [(3 * block + 5,), (7,), (1,), (block,), (129, 257), (block - 1,), (2, 3, 5)]
    ours, theirs, g = _pair(shapes)
    _train(ours, theirs, g, adamw_lab.AdamW(ours, impl="cpp", amsgrad=True),
           torch.optim.AdamW(theirs, amsgrad=True, fused=True), steps=10)
    for p, q in zip(ours, theirs):
        torch.testing.assert_close(p, q, rtol=2e-6, atol=1e-7)


@contextlib.contextmanager
def _threads(n):
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("threads", [2, 3])
def test_thread_count_changes_nothing(threads):
    """Each element is updated by one thread with the same arithmetic: bitwise the same."""
    ours, theirs, g = _pair([(2 * cpp_kernel.BLOCK + 3,), (100, 33)])
    opt_a, opt_b = adamw_lab.AdamW(ours, impl="cpp"), adamw_lab.AdamW(theirs, impl="cpp")
    for _ in range(5):
        for p, q in zip(ours, theirs):
            p.grad = torch.randn(p.shape, generator=g)
            q.grad = p.grad.clone()
        with _threads(threads):
            opt_a.step()
        with _threads(1):
            opt_b.step()
    for p, q in zip(ours, theirs):
        assert torch.equal(p, q)


def test_sweep_with_model_boundaries_inside_blocks():
    """M models whose slices (numel/M elements each) do not line up with blocks or lines."""
    M, per_model = 5, cpp_kernel.BLOCK // 3 + 7
    lr, wd = torch.logspace(-3, -1, M), torch.linspace(0.0, 2.0, M)
    g = torch.Generator().manual_seed(1)
    W = torch.randn(M, per_model, generator=g).requires_grad_()
    singles = [W[k].detach().clone().requires_grad_() for k in range(M)]
    opt = adamw_lab.AdamW([W], lr=lr, weight_decay=wd, impl="cpp")
    refs = [torch.optim.AdamW([w], lr=lr[k].item(), weight_decay=wd[k].item()) for k, w in enumerate(singles)]
    for _ in range(8):
        W.grad = torch.randn(W.shape, generator=g)
        opt.step()
        for k, (w, ref) in enumerate(zip(singles, refs)):
            w.grad = W.grad[k].clone()
            ref.step()
    for k, w in enumerate(singles):
        torch.testing.assert_close(W[k], w, rtol=2e-6, atol=1e-7)


def test_bfloat16_goes_through_the_per_tensor_rule():
    ours, theirs, g = _pair([(40,), (6, 7)], dtype=torch.bfloat16)
    fp32 = [torch.randn(9, generator=g).requires_grad_()]
    fp32_twin = [fp32[0].detach().clone().requires_grad_()]
    _train(ours + fp32, theirs + fp32_twin, g, adamw_lab.AdamW(ours + fp32, impl="cpp"),
           adamw_lab.AdamW(theirs + fp32_twin, impl="per_tensor"), steps=5)
    for p, q in zip(ours + fp32, theirs + fp32_twin):
        torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-7)


def test_on_other_devices_the_error_says_where_it_runs():
    from adamw_lab import kernels
    for device in ("cuda", "meta"):
        assert kernels.KERNELS["cpp"].unavailable(torch.device(device)) == f"it runs on cpu, not on {device}"


def _run_without_compiler(cxx: str, tmp_path) -> subprocess.CompletedProcess:
    """A fresh process (the build is tried once per process) with ``$CXX`` set to ``cxx``."""
    code = ("import torch, adamw_lab\n"
            "from adamw_lab import optim\n"
            "p = torch.nn.Parameter(torch.ones(3)); p.grad = torch.ones(3)\n"
            "print('default', optim.default_impl('cpu'))\n"
            "adamw_lab.AdamW([p]).step()\n"
            "print('default step ok')\n"
            "try:\n"
            "    adamw_lab.AdamW([p], fused=True).step()\n"
            "except RuntimeError as e:\n"
            "    print('fused:', e)\n"
            "adamw_lab.AdamW([p], impl='cpp').step()\n")
    env = {"CXX": cxx, "ADAMW_LAB_CACHE": str(tmp_path), "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=300)


@pytest.mark.parametrize("cxx", ["/nonexistent/g++", "false"])
def test_without_a_working_compiler(cxx, tmp_path):
    """The default falls back to foreach (the one silent fallback); fused=True and
    impl='cpp' raise, saying what is missing and what to do."""
    result = _run_without_compiler(cxx, tmp_path)
    assert "default foreach" in result.stdout and "default step ok" in result.stdout, result.stderr
    assert "fused: `fused=True` on cpu needs impl='cpp', which cannot run here" in result.stdout
    assert result.returncode != 0
    assert "RuntimeError: impl='cpp' cannot run here" in result.stderr and "impl='foreach'" in result.stderr
    assert ("was not found" if cxx.startswith("/") else "exit status 1") in result.stderr
    assert list(tmp_path.glob("*.so")) == []   # no half-written library left behind
