"""Which implementation updates a parameter group: the one registry of adamw_lab's kernels.

Each implementation is registered once in :data:`KERNELS`, with the
optimizers it serves (``"adam"``: AdamW, AdamL2, AdamWProx; ``"sgd"``: SGDW,
SGDL2), the devices and dtypes it supports and whether it can run here (and
if not, why).  :func:`resolve` turns a group's choice (``impl``,
``foreach``, ``fused``) and its tensors into one implementation, or raises
saying why and what to choose instead; it never swaps in another
implementation.  The rules:

- ``impl`` names the implementation; otherwise ``fused=True`` means the
  fused kernel of the device (``RuntimeError``, as in torch, where there is
  none for the device or dtype), ``foreach=True`` means ``"foreach"``,
  ``foreach=False`` the per-tensor loop, ``fused=False`` ``"foreach"``;
  otherwise :func:`default_impl` of the device: the fused kernel of the
  device (``"triton"`` on CUDA, ``"cpp"`` on the CPU), ``"foreach"``
  elsewhere, for a group that spans devices, and (the one silent fallback)
  on a CPU without a working C++ compiler.
- Complex parameters are updated as pairs of reals (``torch.view_as_real``,
  as torch does) by every implementation: the optimizer views them before
  calling it, so the kernels only see real tensors.  ``fused=True`` refuses
  them, as torch does.
- ``"cpp"`` updates float16/bfloat16 tensors with the per-tensor rule (its
  C++ loops are float32/float64).
- The fused kernels run on plain tensors: a ``DTensor`` (FSDP2) is replaced
  by its local shard (:func:`local_shards`).

Importing this module imports neither triton nor the C++ kernel: both are
loaded when first used.
"""
from __future__ import annotations

import functools
import importlib
import importlib.util
import os
import sys
from dataclasses import dataclass

import torch

FLOAT_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)
_REAL = {torch.complex64: torch.float32, torch.complex128: torch.float64, torch.complex32: torch.float16}
FAMILIES = {"adam": "AdamW, AdamL2, AdamWProx", "sgd": "SGDW, SGDL2"}


@dataclass(frozen=True)
class Kernel:
    """One implementation: where its functions are and what it supports."""

    name: str
    functions: dict          # family ("adam"/"sgd") -> "module:function", imported on first use
    devices: tuple = ()      # device types; () means any
    dtypes: tuple = ()       # real dtypes of the parameters; () means any
    fused: bool = False      # what ``fused=True`` asks for
    note: str = ""

    def function(self, family: str):
        module, name = self.functions[family].split(":")
        return getattr(importlib.import_module(module), name)

    def unavailable(self, device: torch.device) -> str | None:
        """Why this implementation cannot run on ``device`` here, or None."""
        if self.devices and device.type not in self.devices:
            return f"it runs on {' or '.join(self.devices)}, not on {device.type}"
        return _WHY_NOT.get(self.name, lambda device: None)(device)


KERNELS = {k.name: k for k in (
    Kernel("per_tensor", {"adam": "adamw_lab.functional:adam_per_tensor",
                          "sgd": "adamw_lab.functional:sgd_per_tensor"},
           note="the formula line by line, one tensor at a time"),
    Kernel("foreach", {"adam": "adamw_lab.functional:adam_foreach",
                       "sgd": "adamw_lab.functional:sgd_foreach"},
           note="torch._foreach_* over the whole group"),
    Kernel("compiled", {"adam": "adamw_lab.functional:adam_compiled"}, devices=("cpu", "cuda"),
           note="the per-tensor rule through torch.compile"),
    Kernel("cpp", {"adam": "adamw_lab.cpp_kernel:adam_cpp"}, devices=("cpu",), dtypes=FLOAT_DTYPES,
           fused=True, note="fused C++ kernel; float16/bfloat16 through the per-tensor rule"),
    Kernel("triton", {"adam": "adamw_lab.triton_kernels:adam_triton"}, devices=("cuda", "cpu"),
           dtypes=FLOAT_DTYPES, fused=True,
           note="fused Triton kernel; on the CPU only in Triton's interpreter (tests)"),
)}
# the fused kernel of each device type: what ``fused=True`` asks for, and the default there
FUSED = {"cuda": "triton", "cpu": "cpp"}


@functools.cache
def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _triton_why_not(device):
    if not _installed("triton"):
        return "triton is not installed (pip install triton)"
    if device.type == "cpu" and os.environ.get("TRITON_INTERPRET", "0") in ("", "0"):
        return "on the CPU triton runs only in its interpreter (TRITON_INTERPRET=1 before triton is imported)"
    return None


@functools.cache
def _compiled_why_not_on(device_type):
    from adamw_lab import cpp_kernel
    if device_type == "cpu" and cpp_kernel.compiler() is None:
        return "torch.compile on the CPU needs a C++ compiler (install g++ or set $CXX)"
    return None


def _compiled_why_not(device):
    return _compiled_why_not_on(device.type)


def _cpp_why_not(device):
    from adamw_lab import cpp_kernel
    return cpp_kernel.build_error()


_WHY_NOT = {"triton": _triton_why_not, "compiled": _compiled_why_not, "cpp": _cpp_why_not}


def _serving(family):
    return [name for name, k in KERNELS.items() if family in k.functions]


def available_impls(device, family: str = "adam") -> list[str]:
    """The implementations of ``family`` that can run on ``device`` here."""
    device = torch.device(device)
    return [name for name in _serving(family) if KERNELS[name].unavailable(device) is None]


def default_impl(device, family: str = "adam") -> str:
    """The default on ``device``: its fused kernel (triton on CUDA, cpp on the CPU), else foreach.

    ``compiled`` (``torch.compile``) is opt-in: it costs tens of seconds of
    compilation at the first step and is not faster per step (see the
    appendix 从公式到内核).
    """
    device = torch.device(device)
    fused = KERNELS.get(FUSED.get(device.type))
    if fused is not None and family in fused.functions and fused.unavailable(device) is None:
        return fused.name
    return "foreach"


def check_choice(family: str, optimizer: str, *, impl=None, foreach=None, fused=None) -> None:
    """The checks that need no tensors (run when a group is added): ``ValueError`` for an
    unknown ``impl``, one that does not implement ``optimizer``, or one that contradicts
    ``foreach``/``fused``."""
    if impl is None:
        return
    if impl not in KERNELS:
        raise ValueError(f"Invalid impl: {impl!r} (choose from {sorted(_serving(family))})")
    kernel = KERNELS[impl]
    if family not in kernel.functions:
        raise ValueError(f"impl={impl!r} does not implement {optimizer} "
                         f"(choose from {sorted(_serving(family))})")
    for flag, value, means in (("foreach", foreach, impl == "foreach"), ("fused", fused, kernel.fused)):
        if value is not None and bool(value) != means:
            raise ValueError(f"impl={impl!r} contradicts {flag}={value}: give one of them")


def resolve(family: str, optimizer: str, params, *, impl=None, foreach=None, fused=None) -> Kernel:
    """The implementation for a group of ``family`` whose tensors are ``params``.

    Honours ``impl``, then ``fused``, then ``foreach``, else the default of
    the device (module docstring).  Raises ``RuntimeError`` saying why and
    what to choose instead when the choice cannot run on these tensors.
    """
    check_choice(family, optimizer, impl=impl, foreach=foreach, fused=fused)
    devices = {p.device for p in params}
    dtypes = {p.dtype for p in params}
    if impl is None and fused:
        impl = _fused_for(family, devices, dtypes)
    elif impl is None and foreach is not None:
        impl = "foreach" if foreach else "per_tensor"
    elif impl is None and fused is not None:
        impl = "foreach"
    elif impl is None:
        impl = default_impl(next(iter(devices)), family) if len(devices) == 1 else "foreach"
    kernel = KERNELS[impl]
    if kernel.fused and len(devices) > 1:
        raise RuntimeError(f"impl={impl!r} updates the tensors of one device per call, but this "
                           f"{optimizer} group has tensors on {sorted(map(str, devices))}: put each "
                           f"device's parameters in its own parameter group, or choose impl='foreach'")
    for device in devices:
        why = kernel.unavailable(device)
        if why is not None:
            raise RuntimeError(f"impl={impl!r} cannot run here: {why}; choose another impl "
                               f"(available on {device}: {available_impls(device, family)})")
    bad = {_REAL.get(d, d) for d in dtypes} - set(kernel.dtypes)
    if kernel.dtypes and bad:
        raise RuntimeError(f"impl={impl!r} does not support {sorted(map(str, bad))} parameters "
                           f"(it supports {[str(d) for d in kernel.dtypes]}); choose impl='foreach'")
    return kernel


def _fused_for(family, devices, dtypes):
    """The fused kernel for ``fused=True``; RuntimeError (torch's wording) where none runs."""
    fused = {d: name for d, name in FUSED.items() if family in KERNELS[name].functions}
    for device in devices:
        for dtype in dtypes:
            if device.type not in fused or not dtype.is_floating_point:
                raise RuntimeError(f"`fused=True` requires all the params to be floating point Tensors "
                                   f"of supported devices: {sorted(fused)} but {dtype} and {device.type}")
        why = KERNELS[fused[device.type]].unavailable(device)
        if why is not None:
            raise RuntimeError(f"`fused=True` on {device.type} needs impl={fused[device.type]!r}, which "
                               f"cannot run here: {why}; or leave fused unset (foreach is used)")
    return fused[next(iter(devices)).type]


def local_shards(*lists):
    """Each list with every ``DTensor`` replaced by its local shard (a plain tensor).

    FSDP2 (``fully_shard``) makes parameters, gradients and states DTensors;
    AdamW is elementwise, so a fused kernel updates each rank's shard on its
    own.  The gradient must be placed like its parameter (FSDP2 reduce-scatters
    it so); if not it is redistributed first.
    """
    dtensor = sys.modules.get("torch.distributed.tensor")   # no DTensor exists before it is imported
    DTensor = getattr(dtensor, "DTensor", None)
    plain = (torch.Tensor, torch.nn.Parameter)   # a fast test: only a subclass can be a DTensor
    if DTensor is None or all(type(x) in plain for x in lists[0]):   # the parameters decide
        return [list(xs) for xs in lists]
    params = lists[0]
    out = []
    for xs in lists:
        local = []
        for i, x in enumerate(xs):
            if isinstance(x, DTensor):
                p = params[i]
                if isinstance(p, DTensor) and x.placements != p.placements:
                    x = x.redistribute(p.device_mesh, p.placements)
                x = x.to_local()
            local.append(x)
        out.append(local)
    return out
