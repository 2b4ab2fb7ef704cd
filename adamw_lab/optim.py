"""Optimizers of the book: drop-ins for ``torch.optim`` with a choice of implementation.

- :class:`AdamW`     = ``torch.optim.AdamW``  (decoupled decay, w ← (1 − ηλ)w − η·m̂/(√v̂+ε))
- :class:`AdamL2`    = ``torch.optim.Adam(weight_decay=λ)``  (λw added to the gradient)
- :class:`AdamWProx` = AdamW with the exact proximal decay  w ← (w − η·m̂/(√v̂+ε))/(1 + ηλ)
- :class:`SGDW`      = SGD with momentum and decoupled decay
- :class:`SGDL2`     = ``torch.optim.SGD(momentum=μ, weight_decay=λ)``
- :func:`param_groups`: no decay on biases and normalisation weights.

Batched sweeps: ``lr`` and ``weight_decay`` may be 1-D tensors of length M
when every parameter has a leading model dimension M; model ``k`` then
trains with ``lr[k]`` and ``weight_decay[k]``, so a grid of M models trains
as one batched model in one run::

    lr = torch.logspace(-4, -2, 8).repeat_interleave(8)     # 8 × 8 grid, M = 64
    wd = torch.logspace(-4, -1, 8).repeat(8)
    opt = adamw_lab.AdamW(batched_model.parameters(), lr=lr, weight_decay=wd)
"""
from __future__ import annotations

import math
import sys

import torch

from adamw_lab import functional as F
from adamw_lab import kernels
from adamw_lab.kernels import available_impls, default_impl  # noqa: F401  (the registry's)


def param_groups(model: torch.nn.Module, weight_decay: float, *, batched: bool = False):
    """The usual two parameter groups: decay on matrices, none on biases and norms.

    A parameter with ``ndim <= 1`` (a bias, a LayerNorm/BatchNorm weight) gets
    ``weight_decay=0``.  With ``batched=True`` (a batched sweep, leading model
    dimension M) the model dimension and singleton dimensions are not
    counted, so a bias of shape ``[M, 1, n]`` is still a bias.
    """
    def is_vector(p):
        return p.ndim <= 1 if not batched else sum(s > 1 for s in p.shape[1:]) <= 1

    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (no_decay if is_vector(p) else decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]


# ------------------------------------------------------------------ checks
def _check_hyper(message: str, name: str, value, ok, rule: str):
    """Raise ``ValueError`` unless ``ok`` holds for every value of ``value``.

    The message starts with torch's wording (``"Invalid learning rate: -1"``), so
    code that matches torch's errors matches ours, and then names the argument
    and the rule.
    """
    values = value.detach().double().flatten().tolist() if isinstance(value, torch.Tensor) else [value]
    for x in values:
        if not ok(float(x)):   # NaN fails every comparison, so it is caught here too
            raise ValueError(f"{message}: {value} ({name} must be {rule})")


def _check_lr(lr):
    _check_hyper("Invalid learning rate", "lr", lr, lambda x: x >= 0 and math.isfinite(x),
                 "finite and >= 0")


def _check_weight_decay(weight_decay):
    _check_hyper("Invalid weight_decay value", "weight_decay", weight_decay,
                 lambda x: x >= 0 and math.isfinite(x), "finite and >= 0")


def _step_dtype(group) -> torch.dtype:
    """The dtype of ``state["step"]``, as torch's ``optimizer._get_scalar_dtype``.

    float32, or float64 under ``torch.set_default_dtype(torch.float64)``; always
    float32 with ``fused=True``.
    """
    if group.get("fused"):
        return torch.float32
    return torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32


def _check_sweep_shape(name: str, value, params):
    """A tensor ``lr``/``weight_decay`` is a scalar (one element, any shape, as in torch)
    or one value per model (1-D, leading dim M)."""
    if not F.per_model(value):
        return
    if value.dim() != 1:
        raise ValueError(f"Invalid {name}: a sweep tensor must be 1-D, got shape {tuple(value.shape)}")
    dtensor = sys.modules.get("torch.distributed.tensor")   # no DTensor exists before it is imported
    if dtensor is not None and any(isinstance(p, dtensor.DTensor) for p in params):
        raise ValueError(f"Invalid {name}: one value per model cannot follow DTensor parameters "
                         f"(FSDP2 shards the model dimension); split the grid across ranks with "
                         f"adamw_lab.distributed.sweep instead")
    for p in params:
        if p.dim() == 0 or p.shape[0] != value.shape[0]:
            raise ValueError(f"Invalid {name}: {value.shape[0]} values (one per model) but a "
                             f"parameter has shape {tuple(p.shape)}; its leading dimension must "
                             f"be the number of models")


class _Base(torch.optim.Optimizer):
    """What the Adam and SGD families share: checks, ``impl`` choice, gradient collection."""

    family = "adam"   # which implementations serve it (adamw_lab.kernels)

    def __init__(self, params, defaults, *, foreach, fused, capturable=False, differentiable=False):
        # torch's order: the hyperparameters first (so params=None still names a bad lr), then params
        self._check_group(defaults)
        if fused and differentiable:
            raise RuntimeError("`fused` does not support `differentiable`")
        for name, flag in (("capturable", capturable), ("differentiable", differentiable)):
            if flag:
                raise ValueError(f"{name}=True is not supported by adamw_lab.{type(self).__name__}")
        if foreach and fused:
            raise RuntimeError("`fused` and `foreach` cannot be `True` together.")
        super().__init__(params, defaults)

    def add_param_group(self, param_group):
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        self._check_group(group)   # a group may override the defaults, so it is checked again
        for name in ("lr", "weight_decay"):
            _check_sweep_shape(name, group[name], group["params"])
        kernels.check_choice(self.family, type(self).__name__, impl=group["impl"],
                             foreach=group.get("foreach"), fused=group.get("fused"))

    def _check_group(self, group):
        """Raise ``ValueError`` (torch's wording) for an invalid hyperparameter of ``group``."""
        raise NotImplementedError

    def state_dict(self):
        """torch's ``state_dict`` without ``impl``: a checkpoint holds the training state, not how
        this process computes it (so it loads into ``torch.optim`` and, through DCP, back)."""
        state = super().state_dict()
        for group in state["param_groups"]:
            group.pop("impl", None)
        return state

    def load_state_dict(self, state_dict):
        """torch's ``load_state_dict``; each group keeps the ``impl`` this optimizer was built with."""
        impls = [group["impl"] for group in self.param_groups]
        super().load_state_dict(state_dict)
        for group, impl in zip(self.param_groups, impls):
            group["impl"] = impl

    def __setstate__(self, state):
        """Called by ``load_state_dict``: fill in what older or torch.optim checkpoints lack."""
        super().__setstate__(state)
        for group in self.param_groups:   # a checkpoint of torch.optim.* has no "impl"
            group.setdefault("impl", None)
            group.setdefault("maximize", False)
            group.setdefault("foreach", None)
            group.setdefault("fused", None)
            for p in group["params"]:   # very old checkpoints store the step as a number
                p_state = self.state.get(p, {})
                if "step" in p_state and not torch.is_tensor(p_state["step"]):
                    p_state["step"] = torch.tensor(float(p_state["step"]), dtype=_step_dtype(group))

    def _kernel_for(self, group, params) -> kernels.Kernel:
        """The implementation that updates ``params`` of ``group`` (:func:`adamw_lab.kernels.resolve`)."""
        return kernels.resolve(self.family, type(self).__name__, params, impl=group["impl"],
                               foreach=group.get("foreach"), fused=group.get("fused"))

    def _params_with_grad(self, group):
        """The parameters of ``group`` that have a gradient, and their gradients."""
        params, grads = [], []
        for p in group["params"]:
            if p.grad is None:
                continue
            if p.grad.is_sparse:
                raise RuntimeError(f"adamw_lab.{type(self).__name__} does not support sparse "
                                   f"gradients (parameter of shape {tuple(p.shape)})")
            params.append(p)
            grads.append(p.grad)
        return params, grads

    @torch.no_grad()
    def step(self, closure=None):
        """One optimizer step; ``closure`` re-evaluates the loss, as in ``torch.optim``."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params, grads = self._params_with_grad(group)
            if params:
                self._step_group(group, params, grads)
        return loss


# ------------------------------------------------------------------ Adam
class _Adam(_Base):
    decay = "decoupled"

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
                 amsgrad=False, *, maximize=False, foreach=None, capturable=False,
                 differentiable=False, fused=None, impl=None):
        # a one-element tensor beta becomes 0-d, as torch's _to_scalar does
        betas = tuple(b.reshape(()) if torch.is_tensor(b) and b.numel() == 1 else b for b in betas)
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                        amsgrad=amsgrad, maximize=maximize, foreach=foreach, capturable=False,
                        differentiable=False, fused=fused,
                        decoupled_weight_decay=self.decay != "l2", impl=impl)
        super().__init__(params, defaults, foreach=foreach, fused=fused, capturable=capturable,
                         differentiable=differentiable)

    def _check_group(self, group):
        # torch's order and wording: lr, eps, betas, weight_decay, then the kinds of betas
        _check_lr(group["lr"])
        _check_hyper("Invalid epsilon value", "eps", group["eps"],
                     lambda x: x > 0 and math.isfinite(x), "finite and > 0")
        betas = group["betas"]
        if len(betas) != 2:
            raise ValueError(f"Invalid betas: {betas} (betas must be a pair (beta1, beta2))")
        for i, beta in enumerate(betas):
            if torch.is_tensor(beta) and beta.numel() != 1:
                raise ValueError(f"Tensor betas[{i}] must be 1-element")
            _check_hyper(f"Invalid beta parameter at index {i}", f"betas[{i}]", beta,
                         lambda x: 0 <= x < 1, "in [0, 1)")
        _check_weight_decay(group["weight_decay"])
        if torch.is_tensor(betas[0]) != torch.is_tensor(betas[1]):
            raise ValueError("betas must be either both floats or both Tensors")
        if group.get("decoupled_weight_decay", self.decay != "l2") != (self.decay != "l2"):
            raise ValueError(f"decoupled_weight_decay={group['decoupled_weight_decay']} contradicts "
                             f"adamw_lab.{type(self).__name__}, whose decay rule is '{self.decay}' "
                             f"in every group (use AdamW for decoupled decay, AdamL2 for L2)")

    def __setstate__(self, state):
        super().__setstate__(state)
        for group in self.param_groups:
            group.setdefault("amsgrad", False)
            # the class, not the checkpoint, says which decay rule runs: a torch.optim.Adam
            # checkpoint loaded into AdamW is saved again as AdamW's, as torch.optim.AdamW does
            group["decoupled_weight_decay"] = self.decay != "l2"
            group["capturable"] = group["differentiable"] = False   # what this optimizer does

    def _step_group(self, group, params, grads):
        states = [self.state[p] for p in params]
        for p, state in zip(params, states):
            if not state:   # same keys, dtypes and layout as torch.optim.AdamW
                state["step"] = torch.tensor(0.0, dtype=_step_dtype(group))
                state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                if group["amsgrad"]:
                    state["max_exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        # one call for all step counters, one read-back: Python work per tensor is what
        # limits a fast kernel on a model with many small tensors
        step_tensors = [state["step"] for state in states]
        torch._foreach_add_(step_tensors, 1)
        steps = torch.stack(step_tensors).tolist()
        ms = [state["exp_avg"] for state in states]
        vs = [state["exp_avg_sq"] for state in states]
        vmaxs = [state["max_exp_avg_sq"] for state in states] if group["amsgrad"] else []
        beta1, beta2 = group["betas"]
        kernel = self._kernel_for(group, params)
        if kernel.fused:   # the fused kernels read memory: plain tensors, each rank's own shard
            params, grads, ms, vs, vmaxs = kernels.local_shards(params, grads, ms, vs, vmaxs)
        params, grads, ms, vs, vmaxs = F.as_real(params, grads, ms, vs, vmaxs)   # complex: (re, im) pairs
        kernel.function(self.family)(params, grads, ms, vs, vmaxs, steps=steps, lr=group["lr"],
               weight_decay=group["weight_decay"], beta1=float(beta1), beta2=float(beta2),
               eps=group["eps"], decay=self.decay, maximize=group["maximize"])


class AdamW(_Adam):
    """Drop-in for ``torch.optim.AdamW``: same arguments, defaults and ``state_dict``.

    ``impl`` chooses the implementation: ``"per_tensor"``, ``"foreach"``,
    ``"compiled"`` (``torch.compile``), ``"cpp"`` (fused C++ kernel, CPU) or
    ``"triton"`` (fused Triton kernel, CUDA); ``None`` takes
    :func:`default_impl` of the parameters' device.  ``foreach=True`` means
    ``"foreach"``, ``foreach=False`` ``"per_tensor"``, ``fused=True`` the fused
    kernel of the device (``RuntimeError`` where there is none, as in torch);
    a choice that cannot run raises instead of falling back
    (:mod:`adamw_lab.kernels`).  Complex parameters are updated as (real,
    imaginary) pairs, as torch does.

    Batched sweep: ``lr`` and ``weight_decay`` may be 1-D tensors of length M
    when every parameter of the group has leading dimension M; model ``k``
    uses ``lr[k]`` and ``weight_decay[k]``.
    """

    decay = "decoupled"


class AdamL2(_Adam):
    """Drop-in for ``torch.optim.Adam(weight_decay=λ)``: λw is added to the gradient.

    Same arguments as :class:`AdamW`, including ``impl`` and batched sweeps;
    the default ``weight_decay`` is 1e-2 like AdamW's so the two compare directly.
    """

    decay = "l2"


class AdamWProx(_Adam):
    """AdamW whose decay is the exact proximal map ``w ← (w − η·m̂/(√v̂+ε)) / (1 + ηλ)``.

    Same arguments as :class:`AdamW`; mirrors ``reference.adamw_prox_step``.
    """

    decay = "prox"


# ------------------------------------------------------------------ SGD
class _SGD(_Base):
    decay = "decoupled"
    family = "sgd"

    def __init__(self, params, lr=1e-3, momentum=0.9, weight_decay=1e-2, *, maximize=False,
                 foreach=None, impl=None):
        defaults = dict(lr=lr, momentum=momentum, weight_decay=weight_decay, maximize=maximize,
                        foreach=foreach, fused=None, impl=impl)
        super().__init__(params, defaults, foreach=foreach, fused=None)

    def _check_group(self, group):
        # torch.optim.SGD's order and wording: lr, momentum, weight_decay
        _check_lr(group["lr"])
        _check_hyper("Invalid momentum value", "momentum", group["momentum"],
                     lambda x: 0 <= x < 1, "in [0, 1)")
        _check_weight_decay(group["weight_decay"])

    def __setstate__(self, state):
        super().__setstate__(state)
        for group in self.param_groups:   # torch.optim.SGD options these rules do not have
            if group.get("nesterov") or group.get("dampening", 0) != 0:
                raise ValueError(f"this checkpoint has nesterov={group.get('nesterov')}, "
                                 f"dampening={group.get('dampening')}: adamw_lab.{type(self).__name__} "
                                 f"has neither and would step differently (keep torch.optim.SGD)")

    def _step_group(self, group, params, grads):
        bufs = []
        for p in params:
            state = self.state[p]
            if "momentum_buffer" not in state:   # torch.optim.SGD's key
                state["momentum_buffer"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            bufs.append(state["momentum_buffer"])
        kernel = self._kernel_for(group, params)
        kernel.function(self.family)(params, grads, bufs, lr=group["lr"], weight_decay=group["weight_decay"],
               momentum=group["momentum"], decay=self.decay, maximize=group["maximize"])


class SGDW(_SGD):
    """SGD with momentum and decoupled decay: ``b ← μb + g``, ``w ← (1 − ηλ)w − η·b``.

    ``impl`` is ``"per_tensor"`` or ``"foreach"`` (default); ``lr`` and
    ``weight_decay`` may be per-model tensors as in :class:`AdamW`.
    """

    decay = "decoupled"


class SGDL2(_SGD):
    """SGD with momentum and L2: ``torch.optim.SGD(lr, momentum, weight_decay=λ)``."""

    decay = "l2"
