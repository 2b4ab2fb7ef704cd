"""Checks shared by the optimizer tests: every implementation against torch.optim.

Imported by tests/test_optim.py, test_sweep.py and test_kernels_*.py, and run
as a script under Triton's interpreter (which must be switched on before
triton is imported, hence a separate process):

    TRITON_INTERPRET=1 python tests/optim_cases.py triton cpu
"""
from __future__ import annotations

import sys

import pytest
import torch

import adamw_lab
from adamw_lab import cpp_kernel

# "cpp" as a pytest parameter: skipped, saying why, where no C++ compiler works
CPP = pytest.param("cpp", marks=pytest.mark.skipif(not cpp_kernel.available("cpu"),
                                                   reason="impl='cpp' needs a C++ compiler"))


class SmallNet(torch.nn.Module):
    """A random model with the awkward cases: a transposed (non-contiguous but
    dense) weight, a strided slice with gaps, normalisation weights, and a
    parameter that never gets a gradient."""

    def __init__(self, dtype, device, seed=0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)

        def randn(*shape):
            return torch.randn(*shape, generator=g, dtype=dtype).to(device)

        self.lin = torch.nn.Linear(6, 8, dtype=dtype, device=device)
        self.norm = torch.nn.LayerNorm(8, dtype=dtype, device=device)
        self.transposed = torch.nn.Parameter(randn(4, 8).t())      # [8, 4], strides (1, 8)
        self.sliced = torch.nn.Parameter(randn(4, 10)[:, ::2])     # [4, 5], strides (10, 2)
        self.unused = torch.nn.Parameter(randn(3))
        with torch.no_grad():
            for p in (self.lin.weight, self.lin.bias, self.norm.weight, self.norm.bias):
                p.copy_(randn(*p.shape))

    def forward(self, x):
        h = torch.tanh(self.norm(self.lin(x)))
        return (h @ self.transposed) @ self.sliced


def _same_layout_copy(model):
    """A twin of ``model`` whose parameters keep their strides (deepcopy does)."""
    import copy
    return copy.deepcopy(model)


def train_pair(ours, theirs, model, steps=100, seed=1):
    """Train ``model`` and a twin, one with each optimizer factory; return both."""
    a, b = model, _same_layout_copy(model)
    assert not a.transposed.is_contiguous() and not a.sliced.is_contiguous()
    opt_a, opt_b = ours(a.parameters()), theirs(b.parameters())
    g = torch.Generator().manual_seed(seed)
    p0 = next(a.parameters())
    for _ in range(steps):
        x = torch.randn(16, 6, generator=g).to(dtype=p0.dtype, device=p0.device)
        for net, opt in ((a, opt_a), (b, opt_b)):
            opt.zero_grad()
            net(x).pow(2).mean().backward()
            opt.step()
    return a, b, opt_a, opt_b


def assert_params_close(a, b, dtype):
    """float64 to 1e-12; float32 to round-off accumulated over the run."""
    tol = dict(rtol=1e-12, atol=1e-12) if dtype == torch.float64 else dict(rtol=2e-5, atol=2e-6)
    for (name, p), q in zip(a.named_parameters(), b.parameters()):
        torch.testing.assert_close(p, q, **tol, msg=lambda m, name=name: f"{name}: {m}")


TORCH_TWIN = {
    "AdamW": lambda params, **kw: torch.optim.AdamW(params, **kw),
    "AdamL2": lambda params, **kw: torch.optim.Adam(params, **kw),
}


def check_matches_torch(impl, name, dtype, device, *, amsgrad=False, maximize=False, steps=100,
                        lr=1e-2, weight_decay=0.1):
    """``adamw_lab.<name>(impl=impl)`` follows its torch.optim twin for ``steps`` steps."""
    kw = dict(lr=lr, weight_decay=weight_decay, amsgrad=amsgrad, maximize=maximize)
    ours = lambda ps: getattr(adamw_lab, name)(ps, impl=impl, **kw)
    theirs = lambda ps: TORCH_TWIN[name](ps, **kw)
    a, b, opt_a, _ = train_pair(ours, theirs, SmallNet(dtype, device), steps=steps)
    assert a.unused.grad is None and opt_a.state[a.unused] == {}
    torch.testing.assert_close(a.unused, b.unused, rtol=0, atol=0)
    assert_params_close(a, b, dtype)


def check_prox_matches_reference(impl, device, steps=20):
    """AdamWProx follows reference.adamw_prox_step (float64)."""
    import numpy as np
    from adamw_lab import reference
    rng = np.random.default_rng(0)
    w0 = rng.normal(size=(3, 4))
    grads = rng.normal(size=(steps, 3, 4))
    w = torch.tensor(w0, device=device, requires_grad=True)
    opt = adamw_lab.AdamWProx([w], lr=0.05, weight_decay=0.5, impl=impl)
    w_ref, m, v = w0.copy(), np.zeros_like(w0), np.zeros_like(w0)
    for t in range(1, steps + 1):
        w.grad = torch.tensor(grads[t - 1], device=device)
        opt.step()
        w_ref, m, v = reference.adamw_prox_step(w_ref, grads[t - 1], m, v, t, lr=0.05, weight_decay=0.5)
    np.testing.assert_allclose(w.detach().cpu().numpy(), w_ref, rtol=1e-12, atol=1e-12)


def check_sweep_matches_loop(impl, name, device, M=6, steps=60):
    """A batched model with per-model lr / weight_decay equals M separate torch runs."""
    g = torch.Generator().manual_seed(0)
    W0, b0 = torch.randn(M, 5, 3, generator=g), torch.randn(M, 3, generator=g)
    X = torch.randn(20, 5, generator=g)
    lr = torch.logspace(-3, -1, M)
    wd = torch.linspace(0.0, 1.0, M)
    W = W0.clone().to(device).requires_grad_()
    b = b0.clone().to(device).requires_grad_()
    opt = getattr(adamw_lab, name)([W, b], lr=lr.to(device), weight_decay=wd.to(device), impl=impl)
    singles = []
    for k in range(M):
        ps = [W0[k].clone().requires_grad_(), b0[k].clone().requires_grad_()]
        singles.append((ps, TORCH_TWIN[name](ps, lr=lr[k].item(), weight_decay=wd[k].item())))
    Xd = X.to(device)
    for _ in range(steps):
        opt.zero_grad()
        torch.sin(Xd @ W + b[:, None]).sum().backward()
        opt.step()
        for (Wk, bk), opt_k in singles:
            opt_k.zero_grad()
            torch.sin(X @ Wk + bk).sum().backward()
            opt_k.step()
    for k, ((Wk, bk), _) in enumerate(singles):
        torch.testing.assert_close(W[k].cpu(), Wk, rtol=2e-5, atol=2e-6)
        torch.testing.assert_close(b[k].cpu(), bk, rtol=2e-5, atol=2e-6)


# ------------------------------------------------------------------ layouts
# Gradients assigned by hand (as from a flat buffer, a hook or another library) need not
# share the parameter's layout; each entry: name -> (parameter, gradient at a step).
def _layouts(dtype, device, g):
    def randn(*shape, dtype=dtype):
        return torch.randn(*shape, generator=g, dtype=dtype).to(device)

    cdtype = {torch.float32: torch.complex64, torch.float64: torch.complex128}[dtype]
    return {
        "transposed param, contiguous grad": (randn(4, 6).t(), lambda: randn(6, 4)),
        "contiguous param, transposed grad": (randn(6, 4), lambda: randn(4, 6).t()),
        "sliced param": (randn(4, 10)[:, ::2], lambda: randn(4, 5)),
        "sliced param, sliced grad": (randn(5, 6)[1:, ::2], lambda: randn(3, 8)[:, 1:5].t()),
        "channels_last param, contiguous grad": (
            randn(2, 3, 4, 5).to(memory_format=torch.channels_last), lambda: randn(2, 3, 4, 5)),
        "contiguous param, channels_last grad": (
            randn(2, 3, 4, 5), lambda: randn(2, 3, 4, 5).to(memory_format=torch.channels_last)),
        "0-d": (randn(()), lambda: randn(())),
        "expanded grad": (randn(6, 4), lambda: randn(4).expand(6, 4)),
        "complex": (randn(3, 4, dtype=cdtype), lambda: randn(3, 4, dtype=cdtype)),
        "complex transposed, contiguous grad": (randn(4, 3, dtype=cdtype).t(), lambda: randn(3, 4, dtype=cdtype)),
    }


def check_layouts_match_torch(impl, name, dtype, device, *, amsgrad=False, maximize=False, steps=5):
    """Parameters and hand-assigned gradients in every layout of :func:`_layouts`, all in one
    group: ``adamw_lab.<name>(impl=impl)`` follows torch's for-loop (``foreach=False``)."""
    g = torch.Generator().manual_seed(0)
    layouts = _layouts(dtype, device, g)
    ours = {k: torch.nn.Parameter(p) for k, (p, _) in layouts.items()}
    theirs = {k: torch.nn.Parameter(p.detach().clone()) for k, p in ours.items()}
    assert ours["transposed param, contiguous grad"].stride() == (1, 6)   # a view's strides kept
    kw = dict(lr=0.05, weight_decay=0.3, amsgrad=amsgrad, maximize=maximize)
    opt_a = getattr(adamw_lab, name)(list(ours.values()), impl=impl, **kw)
    opt_b = TORCH_TWIN[name](list(theirs.values()), foreach=False, fused=False, **kw)
    for _ in range(steps):
        for k, (_, grad) in layouts.items():
            ours[k].grad = grad()
            theirs[k].grad = ours[k].grad.clone()   # clone() keeps the layout
        opt_a.step()
        opt_b.step()
    tol = dict(rtol=1e-12, atol=1e-12) if dtype == torch.float64 else dict(rtol=2e-5, atol=2e-5)
    for k in layouts:
        torch.testing.assert_close(ours[k], theirs[k], **tol, msg=lambda m, k=k: f"{k}: {m}")
        for key, value in opt_b.state[theirs[k]].items():
            torch.testing.assert_close(opt_a.state[ours[k]][key], value, **tol,
                                       msg=lambda m, k=k, key=key: f"{k}, state {key}: {m}")


# the layout matrix's configurations: every (name, dtype, amsgrad/maximize)
LAYOUT_CONFIGS = [(name, dtype, amsgrad, maximize) for name in ("AdamW", "AdamL2")
                  for dtype in (torch.float32, torch.float64)
                  for amsgrad, maximize in ((False, False), (True, False), (False, True))]


def run_all(impl, device):
    """Every check for one implementation on one device (the script entry point)."""
    if impl == "compiled":   # 17 configurations: keep every one compiled, none eager
        torch._dynamo.config.recompile_limit = 64
    for dtype in (torch.float32, torch.float64):
        for name in ("AdamW", "AdamL2"):
            for amsgrad, maximize in ((False, False), (True, False), (False, True)):
                check_matches_torch(impl, name, dtype, device, amsgrad=amsgrad, maximize=maximize)
                print(f"ok {impl} {device} {name} {dtype} amsgrad={amsgrad} maximize={maximize}")
    check_prox_matches_reference(impl, device)
    print(f"ok {impl} {device} AdamWProx")
    for name in ("AdamW", "AdamL2"):
        check_sweep_matches_loop(impl, name, device)
        print(f"ok {impl} {device} sweep {name}")
    for name, dtype, amsgrad, maximize in LAYOUT_CONFIGS:
        check_layouts_match_torch(impl, name, dtype, device, amsgrad=amsgrad, maximize=maximize)
        print(f"ok {impl} {device} layouts {name} {dtype} amsgrad={amsgrad} maximize={maximize}")


if __name__ == "__main__":
    run_all(sys.argv[1], sys.argv[2])
