"""The update rules on PyTorch tensors: per-tensor, multi-tensor and compiled.

Every rule is written once per implementation and follows
:mod:`adamw_lab.reference` line by line.  ``decay`` picks how λ acts:

- ``"decoupled"``  AdamW:     w ← (1 − ηλ)·w − η·m̂/(√v̂+ε)
- ``"l2"``         Adam + L2: g ← g + λw before the moments
- ``"prox"``       AdamW with the exact proximal decay: w ← (w − η·m̂/(√v̂+ε)) / (1 + ηλ)

Hyperparameters ``lr`` and ``weight_decay`` are floats, or tensors already
shaped to broadcast against the parameter (a batched sweep: one value per
model along the leading dimension).  The bias corrections are computed by the
caller in float64 Python arithmetic, like ``torch.optim.AdamW`` does, and
passed in as ``step_size = lr/(1−β₁ᵗ)`` and ``bc2_sqrt = √(1−β₂ᵗ)``.

The fused kernels live in :mod:`adamw_lab.triton_kernels` (GPU) and
:mod:`adamw_lab.cpp_kernel` (CPU); :func:`fused_launches` builds the tables
that both read, whose layout is defined once here (:data:`ROW`,
:data:`HYPER`) and handed to both kernels.  Which implementation runs is
decided by :mod:`adamw_lab.kernels`.
"""
from __future__ import annotations

import functools

import torch
from torch.utils._python_dispatch import is_traceable_wrapper_subclass

DECAYS = ("decoupled", "l2", "prox")


# ------------------------------------------------------------ Adam, per tensor
def adam_update_(p, g, m, v, vmax, *, lr, weight_decay, step_size, bc2_sqrt,
                 beta1, beta2, eps, decay, maximize):
    """One Adam-family step on one tensor, in place (``vmax`` is None without amsgrad)."""
    if maximize:
        g = -g
    if decay == "l2":
        g = g + (weight_decay * p).to(g.dtype)   # λw joins the gradient (in g's dtype)
    elif decay == "decoupled":
        p.mul_(1 - lr * weight_decay)            # shrink before the Adam step, as torch does
    m.lerp_(g, 1 - beta1)                        # m ← β₁m + (1−β₁)g
    v.mul_(beta2).addcmul_(g, g, value=1 - beta2)  # v ← β₂v + (1−β₂)g²
    if vmax is not None:                         # amsgrad: never let the denominator shrink
        vmax.copy_(torch.maximum(vmax, v))
        v = vmax
    denom = (v.sqrt() / bc2_sqrt).add_(eps)      # √v̂ + ε
    p.sub_(m.div(denom).mul_(step_size))         # w ← w − η·m̂/(√v̂+ε)
    if decay == "prox":
        p.div_(1 + lr * weight_decay)            # exact proximal map of (λ/2)‖w‖²


def per_model(x) -> bool:
    """Whether a hyperparameter is a batched sweep: a tensor of more than one value.

    A one-element tensor of any shape (``()``, ``(1,)``, ``(1, 1)``) is a
    scalar, as in ``torch.optim``.
    """
    return isinstance(x, torch.Tensor) and x.numel() > 1


def _shaped(x, p):
    """A float as it is; a tensor on ``p``'s device and dtype, a per-model tensor [M]
    as [M, 1, …, 1] and a one-element tensor as a 0-d one."""
    if not isinstance(x, torch.Tensor):
        return x
    x = x.to(device=p.device, dtype=p.dtype)
    return x.reshape((-1,) + (1,) * (p.dim() - 1)) if per_model(x) else x.reshape(())


def as_real(*lists):
    """Each list with its complex tensors viewed as real ones (``torch.view_as_real``).

    A complex number is updated as its pair (real, imaginary), as
    ``torch.optim.AdamW`` does: v accumulates re(g)² and im(g)² separately.
    """
    if not any(x.is_complex() for x in lists[0]):   # the parameters: their grads and states follow
        return list(lists)
    return [[torch.view_as_real(x) if x.is_complex() else x for x in xs] for xs in lists]


def per_param_hyper(params, *, steps, lr, weight_decay, beta1, beta2):
    """Per-parameter ``lr``, ``weight_decay``, ``step_size`` and ``bc2_sqrt``.

    Floats stay floats.  A 1-D tensor of length M (one value per model in a
    batched sweep) is reshaped to ``[M, 1, …, 1]`` so that it broadcasts over
    a parameter whose leading dimension is M.
    """
    lrs = [_shaped(lr, p) for p in params]
    wds = [_shaped(weight_decay, p) for p in params]
    # (1−β₁ᵗ, √(1−β₂ᵗ)) once per distinct step t: usually one for the whole group
    bc = {t: (1 - beta1**t, (1 - beta2**t) ** 0.5) for t in set(steps)}
    step_sizes = [lr_p / bc[t][0] for lr_p, t in zip(lrs, steps)]   # η/(1−β₁ᵗ)
    bc2_sqrts = [bc[t][1] for t in steps]                            # √(1−β₂ᵗ)
    return lrs, wds, step_sizes, bc2_sqrts


def _adam_loop(params, grads, ms, vs, vmaxs, *, lrs, weight_decays, step_sizes, bc2_sqrts,
               beta1, beta2, eps, decay, maximize):
    for i, p in enumerate(params):
        adam_update_(p, grads[i], ms[i], vs[i], vmaxs[i] if vmaxs else None,
                     lr=lrs[i], weight_decay=weight_decays[i], step_size=step_sizes[i],
                     bc2_sqrt=bc2_sqrts[i], beta1=beta1, beta2=beta2, eps=eps,
                     decay=decay, maximize=maximize)


def adam_per_tensor(params, grads, ms, vs, vmaxs, *, steps, lr, weight_decay, beta1, beta2,
                    eps, decay, maximize):
    """:func:`adam_update_` on each parameter in turn (any device, any layout).

    All ``adam_*`` entry points share this signature: lists with one entry
    per parameter (``vmaxs`` empty without amsgrad), ``steps`` the step
    number t of each, and the group's hyperparameters.
    """
    lrs, wds, step_sizes, bc2_sqrts = per_param_hyper(
        params, steps=steps, lr=lr, weight_decay=weight_decay, beta1=beta1, beta2=beta2)
    _adam_loop(params, grads, ms, vs, vmaxs, lrs=lrs, weight_decays=wds, step_sizes=step_sizes,
               bc2_sqrts=bc2_sqrts, beta1=beta1, beta2=beta2, eps=eps, decay=decay,
               maximize=maximize)


# --------------------------------------------------------- Adam, multi-tensor
def adam_foreach(params, grads, ms, vs, vmaxs, *, steps, lr, weight_decay, beta1, beta2,
                 eps, decay, maximize):
    """The same step with ``torch._foreach_*``: one call per operation for all tensors.

    Fewer, larger kernel launches than the per-tensor loop (this matters on a
    GPU with many small tensors); each operation still reads and writes
    memory once, so the step makes about ten passes over the data.
    """
    lrs, wds, step_sizes, bc2_sqrts = per_param_hyper(
        params, steps=steps, lr=lr, weight_decay=weight_decay, beta1=beta1, beta2=beta2)
    if maximize:
        grads = torch._foreach_neg(grads)
    if decay == "l2":
        grads = torch._foreach_add(grads, torch._foreach_mul(params, wds))
    elif decay == "decoupled":
        torch._foreach_mul_(params, [1 - lr_p * wd_p for lr_p, wd_p in zip(lrs, wds)])
    torch._foreach_lerp_(ms, grads, 1 - beta1)
    torch._foreach_mul_(vs, beta2)
    torch._foreach_addcmul_(vs, grads, grads, 1 - beta2)
    if vmaxs:
        torch._foreach_maximum_(vmaxs, vs)
        vs = vmaxs
    denom = torch._foreach_sqrt(vs)
    torch._foreach_div_(denom, bc2_sqrts)
    torch._foreach_add_(denom, eps)
    direction = torch._foreach_div(ms, denom)
    torch._foreach_mul_(direction, step_sizes)
    torch._foreach_sub_(params, direction)
    if decay == "prox":
        torch._foreach_div_(params, [1 + lr_p * wd_p for lr_p, wd_p in zip(lrs, wds)])


# ------------------------------------------------------------ Adam, compiled
@functools.cache
def _compiled_adam_loop():
    # Compiled on first use: the per-tensor rule above, fused by TorchInductor
    # into one loop per tensor (C++/OpenMP on the CPU, Triton on a GPU).  Each
    # new configuration (shapes, amsgrad, …) compiles again; past dynamo's
    # recompile limit it runs eagerly, which is slower but still correct.
    # size_asserts=False: dynamo's guards already check every input's shape and
    # strides before each call; Inductor's own re-check costs 4 Python calls per
    # parameter and step (600 on the GPT-2 shapes).
    return torch.compile(_adam_loop, dynamic=False, options={"size_asserts": False})


def adam_compiled(params, grads, ms, vs, vmaxs, *, steps, lr, weight_decay, beta1, beta2,
                  eps, decay, maximize):
    """:func:`adam_per_tensor` through ``torch.compile``.

    Everything that may change between steps (the bias corrections, a
    scheduled learning rate) is passed as a tensor: a Python float would be
    baked into the compiled code and force a recompilation at every step.
    """
    hyper = per_param_hyper(params, steps=steps, lr=lr, weight_decay=weight_decay,
                            beta1=beta1, beta2=beta2)
    if not isinstance(lr, torch.Tensor) and not isinstance(weight_decay, torch.Tensor):
        # one host-to-device copy for the whole group; each row is indexed
        # per parameter inside the compiled code (few tensors: few guards)
        hyper = torch.tensor(hyper, dtype=torch.float64).to(params[0].device).unbind()
    else:
        # a sweep: per-model tensors stay as they are (already shaped, in the
        # parameter's dtype); floats become 0-d tensors
        hyper = [[x if isinstance(x, torch.Tensor) else torch.tensor(x, dtype=torch.float64, device=p.device)
                  for x, p in zip(xs, params)] for xs in hyper]
    lrs, wds, step_sizes, bc2_sqrts = hyper
    # the compiled loop loses its in-place updates of 0-d tensors (torch 2.13: m and v of a
    # 0-d parameter stay 0); the same memory viewed as [1] is updated correctly
    params, grads, ms, vs, vmaxs = ([x.view(1) if x.dim() == 0 else x for x in xs]
                                    for xs in (params, grads, ms, vs, vmaxs))
    _compiled_adam_loop()(params, grads, ms, vs, vmaxs, lrs=lrs, weight_decays=wds,
                          step_sizes=step_sizes, bc2_sqrts=bc2_sqrts, beta1=beta1, beta2=beta2,
                          eps=eps, decay=decay, maximize=maximize)


# ------------------------------------------- the tables of the fused kernels
# The layout of the tables both fused kernels read, defined once: the Triton kernel
# gets these positions as constants, the C++ kernel as a header generated from them
# (cpp_kernel.layout_header).  A row of the int64 tensor table, one per tensor:
ROW = ("p", "g", "m", "v", "vmax", "numel", "per_model")   # addresses; numel; elements per model
# the float64 hyperparameter table: these scalars, then lr_0 … lr_{M−1}, then λ_0 … λ_{M−1}
HYPER = ("beta1", "beta2", "eps", "bc1", "bc2_sqrt")       # β₁, β₂, ε, 1−β₁ᵗ, √(1−β₂ᵗ)


class Launch:
    """What one call of a fused kernel (Triton or C++) needs: tensors of one dtype,
    device and step number t, described by tables that the kernel reads.

    ``rows``: per tensor the :data:`ROW` fields (addresses of w, g, m, v,
    v_max, where v_max = v without amsgrad; ``numel``; elements per model);
    ``hyper``: the :data:`HYPER` scalars then ``lr_0 … lr_{M−1}, λ_0 … λ_{M−1}``,
    in float64.
    """

    def __init__(self, dtype, device, step, n_models):
        self.dtype, self.device, self.step, self.n_models = dtype, device, step, n_models
        self.rows, self.hyper = [], []
        self.keep_alive = []   # temporaries must outlive an asynchronous launch
        self.write_back = []   # (original, contiguous copy) pairs to copy back afterwards

    def numels(self) -> tuple:
        """The number of elements of each tensor (what :func:`block_table` needs)."""
        column = ROW.index("numel")
        return tuple(row[column] for row in self.rows)

    def finish(self):
        """Copy the updates of strided tensors back into them."""
        for original, copy in self.write_back:
            original.copy_(copy)


@functools.lru_cache(maxsize=64)
def block_table(numels: tuple, device: str, block: int) -> torch.Tensor:
    """``[n_blocks, 2]`` int64 on ``device``: (tensor index, first element) of every block of
    ``block`` elements, the unit of work of a fused kernel (a Triton program, a C++ loop)."""
    n_blocks = torch.tensor([-(-n // block) for n in numels])      # ceil(n / block)
    tensor = torch.repeat_interleave(torch.arange(len(numels)), n_blocks)
    first_block = torch.cumsum(n_blocks, 0) - n_blocks
    start = (torch.arange(len(tensor)) - first_block[tensor]) * block
    return torch.stack([tensor, start], 1).to(device)


_PLAIN = (torch.Tensor, torch.nn.Parameter)   # types that cannot be a wrapper subclass (DTensor)


def _dense(t) -> bool:
    """True when ``t`` fills ``numel`` consecutive elements (contiguous, transposed,
    channels_last, ...; not a slice with gaps, not an expanded tensor)."""
    by_stride = sorted(range(t.dim()), key=lambda d: -t.stride(d))
    return t.permute(by_stride).is_contiguous()


def _flat_arrays(p, g, m, v, vmax, launch):
    """``p, g, m, v, vmax`` as arrays that a kernel can walk as one flat index.

    Element ``k`` in memory order must be the same coordinate in all five,
    so every array needs ``p``'s layout, or the contiguous layout when ``p``
    itself has gaps.  An array in another layout (a contiguous gradient of a
    transposed weight, an expanded gradient, a state loaded with other
    strides) is replaced by a copy in that layout; the copies of ``p``, ``m``,
    ``v``, ``vmax`` are written back by :meth:`Launch.finish`.  Without
    amsgrad ``vmax`` is ``v`` and stays the same array.
    """
    dense = p.is_contiguous() or _dense(p)
    layout = torch.preserve_format if dense else torch.contiguous_format

    def in_layout(x):
        if x.dtype == p.dtype and (x.stride() == p.stride() if dense else x.is_contiguous()):
            return x
        return torch.empty_like(p, memory_format=layout).copy_(x)

    g = in_layout(g)
    flat = {}
    for x in (p, m, v, vmax):
        if id(x) not in flat:
            flat[id(x)] = in_layout(x)
            if flat[id(x)] is not x:
                launch.write_back.append((x, flat[id(x)]))
    return (flat[id(p)], g, flat[id(m)], flat[id(v)], flat[id(vmax)])


def fused_launches(params, grads, ms, vs, vmaxs, *, steps, lr, weight_decay, beta1, beta2, eps):
    """The :class:`Launch` es of one step of a fused kernel: one per (dtype, device, t).

    In practice one per parameter group.  Tensors are real (complex ones
    are viewed as real by the caller) and plain (no ``DTensor``).
    """
    amsgrad = bool(vmaxs)
    n_models = max(x.numel() if per_model(x) else 1 for x in (lr, weight_decay))
    sources = ("p", "g", "m", "v", "vmax", "numel", "per_model")
    order = [sources.index(field) for field in ROW]
    natural = ROW == sources   # the row below is already in ROW's order
    launches = {}
    for i, p in enumerate(params):
        if ((type(p) not in _PLAIN and is_traceable_wrapper_subclass(p))
                or (type(grads[i]) not in _PLAIN and is_traceable_wrapper_subclass(grads[i]))):
            raise TypeError(f"a fused kernel reads the memory of plain tensors, not of a "
                            f"{type(p).__name__}: pass its local shard (adamw_lab.kernels.local_shards)")
        if n_models > 1 and (p.dim() == 0 or p.shape[0] != n_models):
            raise ValueError(f"{n_models} per-model values but a tensor of shape {tuple(p.shape)} here "
                             f"(a shard without the whole model dimension?): choose impl='foreach'")
        key = (p.dtype, p.device, steps[i])
        if key not in launches:
            launches[key] = Launch(*key, n_models=n_models)
        launch = launches[key]
        g, m, v = grads[i], ms[i], vs[i]
        vmax = vmaxs[i] if amsgrad else v
        if not (p.is_contiguous() and g.is_contiguous() and m.is_contiguous() and v.is_contiguous()
                and vmax.is_contiguous() and p.dtype == g.dtype == m.dtype == v.dtype == vmax.dtype):
            p, g, m, v, vmax = _flat_arrays(p, g, m, v, vmax, launch)   # copies in p's layout
        launch.keep_alive += (p, g, m, v, vmax)
        numel = p.numel()
        row = [p.data_ptr(), g.data_ptr(), m.data_ptr(), v.data_ptr(), vmax.data_ptr(),
               numel, max(numel // n_models, 1)]
        launch.rows.append(row if natural else [row[k] for k in order])
    for launch in launches.values():
        t = launch.step
        lrs, wds = (x.double().reshape(-1).expand(launch.n_models).tolist() if isinstance(x, torch.Tensor)
                    else [float(x)] * launch.n_models for x in (lr, weight_decay))
        scalars = dict(beta1=beta1, beta2=beta2, eps=eps, bc1=1 - beta1**t, bc2_sqrt=(1 - beta2**t) ** 0.5)
        launch.hyper = [scalars[field] for field in HYPER] + lrs + wds
    return list(launches.values())


# ---------------------------------------------------------- SGD with momentum
def sgd_update_(p, g, buf, *, lr, weight_decay, momentum, decay, maximize):
    """SGD with momentum, in place: ``decay="l2"`` (torch.optim.SGD) or ``"decoupled"`` (SGDW)."""
    if maximize:
        g = -g
    if decay == "l2":
        g = g + weight_decay * p
    buf.mul_(momentum).add_(g)                   # b ← μb + g
    if decay == "decoupled":
        p.mul_(1 - lr * weight_decay)
    p.sub_(buf * lr)


def sgd_per_tensor(params, grads, bufs, *, lr, weight_decay, momentum, decay, maximize):
    """:func:`sgd_update_` on each parameter in turn."""
    for p, g, buf in zip(params, grads, bufs):
        sgd_update_(p, g, buf, lr=_shaped(lr, p), weight_decay=_shaped(weight_decay, p),
                    momentum=momentum, decay=decay, maximize=maximize)


def sgd_foreach(params, grads, bufs, *, lr, weight_decay, momentum, decay, maximize):
    """:func:`sgd_update_` with ``torch._foreach_*``."""
    lrs = [_shaped(lr, p) for p in params]
    wds = [_shaped(weight_decay, p) for p in params]
    if maximize:
        grads = torch._foreach_neg(grads)
    if decay == "l2":
        grads = torch._foreach_add(grads, torch._foreach_mul(params, wds))
    torch._foreach_mul_(bufs, momentum)
    torch._foreach_add_(bufs, grads)
    if decay == "decoupled":
        torch._foreach_mul_(params, [1 - lr_p * wd_p for lr_p, wd_p in zip(lrs, wds)])
    torch._foreach_sub_(params, torch._foreach_mul(bufs, lrs))
