"""The kernel registry (adamw_lab.kernels): which implementation runs, and the errors instead
of silent fallbacks; the tables' layout defined once; DTensor parameters in the fused kernels."""
import os
import subprocess
import sys
import textwrap

import pytest
import torch

import adamw_lab
from adamw_lab import cpp_kernel, functional as F, kernels

HAS_CPP = cpp_kernel.available("cpu")
needs_cpp = pytest.mark.skipif(not HAS_CPP, reason="impl='cpp' needs a C++ compiler")


def _param(*shape, device="cpu", dtype=torch.float32):
    p = torch.nn.Parameter(torch.randn(*shape, dtype=dtype, device=device))
    p.grad = torch.randn_like(p)
    return p


def _chosen(opt):
    group = opt.param_groups[0]
    return opt._kernel_for(group, group["params"]).name


def test_every_implementation_registered_once_with_what_it_serves():
    assert list(kernels.KERNELS) == ["per_tensor", "foreach", "compiled", "cpp", "triton"]
    assert [k for k, v in kernels.KERNELS.items() if "sgd" in v.functions] == ["per_tensor", "foreach"]
    assert {k for k, v in kernels.KERNELS.items() if v.fused} == set(kernels.FUSED.values())
    for kernel in kernels.KERNELS.values():
        for family in kernel.functions:
            if kernel.name != "triton":   # importing triton outside its interpreter is not for here
                assert callable(kernel.function(family))
    assert kernels.available_impls("cpu", "sgd") == ["per_tensor", "foreach"]
    assert kernels.default_impl("cpu") == ("cpp" if HAS_CPP else "foreach")
    assert kernels.default_impl("meta") == "foreach" and kernels.default_impl("cpu", "sgd") == "foreach"
    assert "not on meta" in kernels.KERNELS["cpp"].unavailable(torch.device("meta"))


def test_import_loads_neither_triton_nor_matplotlib():
    code = "import adamw_lab, sys; print('triton' in sys.modules, 'matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["False", "False"], out.stderr


@pytest.mark.parametrize("kwargs,chosen", [
    (dict(), "cpp" if HAS_CPP else "foreach"),
    (dict(foreach=True), "foreach"),
    (dict(foreach=False), "per_tensor"),     # explicit False is a choice, not "unset"
    (dict(fused=False), "foreach"),
    (dict(foreach=False, fused=False), "per_tensor"),
    (dict(impl="compiled"), "compiled"),
    pytest.param(dict(fused=True), "cpp", marks=needs_cpp),
])
def test_flags_are_honoured(kwargs, chosen):
    assert _chosen(adamw_lab.AdamW([_param(3)], **kwargs)) == chosen


@pytest.mark.parametrize("make,match", [
    (lambda p: adamw_lab.AdamW([{"params": [p], "impl": "cpx"}]), "Invalid impl: 'cpx'"),
    (lambda p: adamw_lab.AdamW([p], impl="trition"), "Invalid impl"),
    (lambda p: adamw_lab.SGDW([p], impl="cpp"), "does not implement SGDW"),
    (lambda p: adamw_lab.SGDL2([{"params": [p], "impl": "triton"}]), "does not implement SGDL2"),
    (lambda p: adamw_lab.AdamW([p], impl="cpp", foreach=True), "contradicts foreach=True"),
    (lambda p: adamw_lab.AdamW([p], impl="foreach", fused=True), "contradicts fused=True"),
    (lambda p: adamw_lab.AdamW([p], impl="per_tensor", foreach=True), "contradicts foreach=True"),
])
def test_a_wrong_choice_is_refused_when_the_group_is_added(make, match):
    with pytest.raises(ValueError, match=match):
        make(_param(3))


@pytest.mark.parametrize("device,dtype", [("meta", torch.float32), ("cpu", torch.complex64)])
def test_fused_true_raises_where_torch_raises(device, dtype):
    """Meta tensors and complex parameters have no fused kernel in torch either."""
    for cls in (torch.optim.AdamW, adamw_lab.AdamW):
        opt = cls([_param(3, device=device, dtype=dtype)], fused=True)
        with pytest.raises(RuntimeError, match="`fused=True` requires all the params to be floating point"):
            opt.step()


def test_meta_tensors_run_the_default_and_refuse_the_cpp_kernel():
    p = _param(3, device="meta")
    adamw_lab.AdamW([p]).step()     # foreach: shapes only
    with pytest.raises(RuntimeError, match="impl='cpp' cannot run here: it runs on cpu, not on meta"):
        adamw_lab.AdamW([p], impl="cpp").step()


def test_group_spanning_devices_is_an_error_for_a_fused_kernel():
    """Never a GPU (here: meta) pointer handed to the C++ kernel; foreach handles the group."""
    ps = [_param(3), _param(3, device="meta")]
    with pytest.raises(RuntimeError, match="own parameter group"):
        kernels.resolve("adam", "AdamW", ps, impl="cpp")
    with pytest.raises(RuntimeError, match="own parameter group"):
        kernels.resolve("adam", "AdamW", ps, impl="triton")
    assert kernels.resolve("adam", "AdamW", ps).name == "foreach"
    adamw_lab.AdamW(ps).step()


def test_fused_tables_refuse_a_wrapper_tensor():
    """A tensor subclass (a DTensor) must never reach a kernel as a raw address."""
    from torch.testing._internal.two_tensor import TwoTensor
    p = TwoTensor(torch.zeros(3), torch.zeros(3))
    with pytest.raises(TypeError, match="plain tensors"):
        F.fused_launches([p], [p], [p], [p], [], steps=[1], lr=0.1, weight_decay=0.0,
                         beta1=0.9, beta2=0.999, eps=1e-8)


@needs_cpp
def test_layout_is_read_from_python_by_both_kernels(tmp_path):
    """Reorder functional.ROW and HYPER: the C++ kernel (rebuilt) and the Triton kernel
    (interpreter) still match torch, so neither has the layout typed in."""
    code = textwrap.dedent("""
        import torch
        from adamw_lab import functional as F
        F.ROW = tuple(reversed(F.ROW))
        F.HYPER = tuple(reversed(F.HYPER))
        import adamw_lab
        from adamw_lab import cpp_kernel
        assert "int64_t per_model, numel, vmax" in cpp_kernel.layout_header()
        for impl in ("cpp", "triton"):
            p = torch.nn.Parameter(torch.randn(5, 3)); q = torch.nn.Parameter(p.detach().clone())
            a, b = adamw_lab.AdamW([p], impl=impl, amsgrad=True), torch.optim.AdamW([q], amsgrad=True)
            for _ in range(3):
                p.grad = torch.randn(5, 3); q.grad = p.grad.clone()
                a.step(); b.step()
            torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)
            print("ok", impl)
    """)
    env = dict(os.environ, ADAMW_LAB_CACHE=str(tmp_path), TRITON_INTERPRET="1")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    expected = ["ok cpp", "ok triton"] if kernels._installed("triton") else ["ok cpp"]
    assert out.stdout.split("\n")[:len(expected)] == expected, out.stdout + out.stderr
    assert "struct Row {" not in cpp_kernel.SOURCE.read_text()


@pytest.fixture
def gloo_mesh():
    """A one-process gloo group and its 1-D device mesh (DTensors without a second process)."""
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        yield init_device_mesh("cpu", (1,))
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("impl", ["foreach", pytest.param("cpp", marks=needs_cpp)])
def test_dtensor_parameters_update_their_local_shards(gloo_mesh, impl):
    """FSDP2's DTensor parameters: the fused kernel runs on the local shards (it crashed)."""
    from torch.distributed.tensor import Replicate, Shard, distribute_tensor
    g = torch.Generator().manual_seed(0)
    plain = [torch.randn(6, 4, generator=g), torch.randn(4, 6, generator=g).t(), torch.randn(5, generator=g)]
    placements = [[Shard(0)], [Shard(1)], [Replicate()]]
    ours = [torch.nn.Parameter(distribute_tensor(x.clone(), gloo_mesh, pl)) for x, pl in zip(plain, placements)]
    theirs = [torch.nn.Parameter(x.clone()) for x in plain]
    opt_a = adamw_lab.AdamW(ours, lr=0.05, weight_decay=0.3, amsgrad=True, impl=impl)
    opt_b = torch.optim.AdamW(theirs, lr=0.05, weight_decay=0.3, amsgrad=True, foreach=False)
    for _ in range(3):
        for p, q, pl in zip(ours, theirs, placements):
            q.grad = torch.randn(q.shape, generator=g)
            p.grad = distribute_tensor(q.grad.clone(), gloo_mesh, pl)
        opt_a.step()
        opt_b.step()
    for p, q in zip(ours, theirs):
        assert type(opt_a.state[p]["exp_avg"]).__name__ == "DTensor"
        torch.testing.assert_close(p.full_tensor(), q.detach(), rtol=2e-5, atol=2e-6)
