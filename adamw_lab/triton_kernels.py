"""A fused Adam-family step in Triton: all tensors of a group in one kernel launch.

The update is memory-bound: per fp32 parameter it must read w, g, m, v
(16 bytes) and write w, m, v (12 bytes), 28 bytes, and does about 15
floating-point operations.  The kernel therefore touches each byte once:
one load and one store per array, everything else in registers.

One launch covers every tensor of the group (what ``torch``'s fused
optimizers call multi-tensor apply): a small table on the device holds the
address and length of each tensor, and a second table says which tensor,
and which slice of it, each program instance updates.

Runs on CUDA; on the CPU only under Triton's interpreter
(``TRITON_INTERPRET=1`` set before this module is imported), which the
tests use.
"""
from __future__ import annotations

import os

import torch

from adamw_lab import functional as F

try:
    import triton
    import triton.language as tl
except ImportError:  # triton is optional: CPU-only installs on macOS or Windows
    triton = None

BLOCK = 2048       # elements per program instance: 8 KB of each fp32 array in flight
NUM_WARPS = 8


def interpreting() -> bool:
    """True when Triton runs kernels in its NumPy interpreter (``TRITON_INTERPRET=1``)."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def available(device) -> bool:
    """Whether :func:`adam_triton` can run on ``device``."""
    device = torch.device(device)
    return triton is not None and (device.type == "cuda" or (device.type == "cpu" and interpreting()))


if triton is not None:
    # positions in the tables' rows, read from functional.ROW and HYPER (the layout is defined there)
    ROW_WIDTH = tl.constexpr(len(F.ROW))
    COL_P, COL_G, COL_M, COL_V, COL_VMAX, COL_NUMEL, COL_PER_MODEL = (
        tl.constexpr(F.ROW.index(name)) for name in ("p", "g", "m", "v", "vmax", "numel", "per_model"))
    H_BETA1, H_BETA2, H_EPS, H_BC1, H_BC2_SQRT = (
        tl.constexpr(F.HYPER.index(name)) for name in ("beta1", "beta2", "eps", "bc1", "bc2_sqrt"))
    N_HYPER = tl.constexpr(len(F.HYPER))

    @triton.jit
    def adam_kernel(tensors_ptr, blocks_ptr, hyper_ptr, n_models,
                    DTYPE: tl.constexpr, ACC: tl.constexpr, DECAY: tl.constexpr,
                    AMSGRAD: tl.constexpr, MAXIMIZE: tl.constexpr, PER_MODEL: tl.constexpr,
                    BLOCK: tl.constexpr):
        # Which tensor, and which BLOCK of its elements, this program updates.
        block = tl.program_id(0)
        i = tl.load(blocks_ptr + 2 * block)
        start = tl.load(blocks_ptr + 2 * block + 1)
        row = tensors_ptr + i * ROW_WIDTH
        p_ptr = tl.load(row + COL_P).to(tl.pointer_type(DTYPE))
        g_ptr = tl.load(row + COL_G).to(tl.pointer_type(DTYPE))
        m_ptr = tl.load(row + COL_M).to(tl.pointer_type(DTYPE))
        v_ptr = tl.load(row + COL_V).to(tl.pointer_type(DTYPE))
        vmax_ptr = tl.load(row + COL_VMAX).to(tl.pointer_type(DTYPE))
        n = tl.load(row + COL_NUMEL)
        offs = start + tl.arange(0, BLOCK)
        mask = offs < n

        # Hyperparameters, stored in float64 so that fp64 parameters keep full precision:
        # [β₁, β₂, ε, 1−β₁ᵗ, √(1−β₂ᵗ), lr_0 … lr_{M−1}, λ_0 … λ_{M−1}].  Scalars such as
        # η/(1−β₁ᵗ) are formed in float64 and rounded once, as torch.optim does.
        beta1 = tl.load(hyper_ptr + H_BETA1)
        beta2 = tl.load(hyper_ptr + H_BETA2)
        eps = tl.load(hyper_ptr + H_EPS).to(ACC)
        bc1 = tl.load(hyper_ptr + H_BC1)
        bc2_sqrt = tl.load(hyper_ptr + H_BC2_SQRT).to(ACC)
        if PER_MODEL:   # batched sweep: element offs belongs to model offs // (numel/M)
            model = offs // tl.load(row + COL_PER_MODEL)
            lr = tl.load(hyper_ptr + N_HYPER + model, mask=mask, other=0.0)
            wd = tl.load(hyper_ptr + N_HYPER + n_models + model, mask=mask, other=0.0)
        else:
            lr = tl.load(hyper_ptr + N_HYPER)
            wd = tl.load(hyper_ptr + N_HYPER + 1)

        # The update: one load of each array, arithmetic in registers, one store.
        p = tl.load(p_ptr + offs, mask=mask).to(ACC)
        g = tl.load(g_ptr + offs, mask=mask).to(ACC)
        m = tl.load(m_ptr + offs, mask=mask).to(ACC)
        v = tl.load(v_ptr + offs, mask=mask).to(ACC)
        if MAXIMIZE:
            g = -g
        if DECAY == "l2":
            g = g + wd.to(ACC) * p                        # λw joins the gradient
        if DECAY == "decoupled":
            p = p * (1 - lr * wd).to(ACC)                 # w ← (1 − ηλ)w
        m = m + (1 - beta1).to(ACC) * (g - m)             # m ← β₁m + (1−β₁)g, as torch's lerp
        v = beta2.to(ACC) * v + (1 - beta2).to(ACC) * g * g
        if AMSGRAD:
            vmax = tl.maximum(tl.load(vmax_ptr + offs, mask=mask).to(ACC), v)
            tl.store(vmax_ptr + offs, vmax.to(DTYPE), mask=mask)
            denom = tl.sqrt(vmax) / bc2_sqrt + eps        # √v̂ + ε
        else:
            denom = tl.sqrt(v) / bc2_sqrt + eps
        p = p - (lr / bc1).to(ACC) * (m / denom)          # w ← w − η·m̂/(√v̂+ε)
        if DECAY == "prox":
            p = p / (1 + lr * wd).to(ACC)                 # proximal map of (λ/2)‖w‖²
        tl.store(p_ptr + offs, p.to(DTYPE), mask=mask)
        tl.store(m_ptr + offs, m.to(DTYPE), mask=mask)
        tl.store(v_ptr + offs, v.to(DTYPE), mask=mask)


def _tl_dtype(dtype: torch.dtype):
    return {torch.float32: tl.float32, torch.float64: tl.float64,
            torch.float16: tl.float16, torch.bfloat16: tl.bfloat16}[dtype]


def _to_device(x: torch.Tensor, device) -> torch.Tensor:
    if device.type != "cuda":
        return x
    return x.pin_memory().to(device, non_blocking=True)


def adam_triton(params, grads, ms, vs, vmaxs, *, steps, lr, weight_decay, beta1, beta2, eps,
                decay, maximize):
    """The fused kernel; same signature as :func:`adamw_lab.functional.adam_per_tensor`.

    One launch per (dtype, step number); in practice one per parameter group
    (:func:`adamw_lab.functional.fused_launches` builds the tables).  Plain
    real tensors only (:mod:`adamw_lab.kernels` views complex tensors as real
    and replaces DTensors by their local shards first).
    """
    for launch in F.fused_launches(params, grads, ms, vs, vmaxs, steps=steps, lr=lr,
                                   weight_decay=weight_decay, beta1=beta1, beta2=beta2, eps=eps):
        device = launch.device
        # two small host-to-device copies per launch, the tensor table and the hyperparameters,
        # from pinned memory so that the host need not wait for the previous step's kernel
        tensors = _to_device(torch.tensor(launch.rows, dtype=torch.int64), device)
        hyper = _to_device(torch.tensor(launch.hyper, dtype=torch.float64), device)
        blocks = F.block_table(launch.numels(), str(device), BLOCK)
        acc = tl.float64 if launch.dtype == torch.float64 else tl.float32
        adam_kernel[(blocks.shape[0],)](
            tensors, blocks, hyper, launch.n_models, DTYPE=_tl_dtype(launch.dtype), ACC=acc,
            DECAY=decay, AMSGRAD=bool(vmaxs), MAXIMIZE=maximize, PER_MODEL=launch.n_models > 1,
            BLOCK=BLOCK, num_warps=NUM_WARPS)
        launch.finish()

