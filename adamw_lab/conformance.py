"""PyTorch's own optimizer test inputs, as adamw_lab's conformance suite runs them.

The torch wheel ships the database its optimizer tests are driven by
(``torch.testing._internal.common_optimizers.optim_db``): for ``AdamW`` and
``Adam`` the hyperparameter combinations torch tests with
(``optim_inputs_func``), the invalid arguments and the errors they must raise
(``optim_error_inputs_func``) and the LR schedulers.  This module reads the
two entries and enumerates, for each check of ``tests/test_conformance.py``,
the cases it runs: :class:`adamw_lab.AdamW` against ``torch.optim.AdamW`` and
:class:`adamw_lab.AdamL2` against ``torch.optim.Adam``.  A case that cannot
apply names its reason in :data:`NOT_APPLICABLE`, the one list of them.  The
appendix 与 torch.optim 的兼容性 counts the same enumeration.

torch's test database imports ``expecttest`` (in the ``[notebooks]`` and ``[test]``
extras); it is imported only when a function here is called.
"""
from __future__ import annotations

import copy
import functools
from dataclasses import dataclass, field

import torch

#: adamw_lab class -> the torch.optim class it is checked against
PAIRS = {"AdamW": "AdamW", "AdamL2": "Adam"}

#: torch's inputs and flags that do not apply to adamw_lab, and why
NOT_APPLICABLE = {
    "capturable": "CUDA graph capture of the step: adamw_lab reads the step counters on the "
                  "host, so a step cannot be captured; capturable=True raises ValueError "
                  "(torch's capturable inputs are CUDA-only)",
    "differentiable": "autograd through the optimizer step: adamw_lab's kernels update in "
                      "place without autograd; differentiable=True raises ValueError",
    "fused complex": "torch's fused kernels refuse complex parameters, so torch's complex "
                     "tests skip fused=True",
    "Tensor lr must be 1-element": "a 1-D lr tensor of length M is a batched sweep in "
                                   "adamw_lab (one lr per model), checked against the "
                                   "parameters' leading dimension instead",
    "Tensor lr with foreach": "adamw_lab's foreach implementation takes a tensor lr (sweeps "
                              "need it) and matches the for-loop; torch raises only because "
                              "its foreach kernel lacks that path",
    "Tensor betas with foreach": "adamw_lab reads betas as numbers at each step in every "
                                 "implementation, so tensor betas work with foreach too",
}

# torch's error inputs whose error adamw_lab deliberately does not raise -> NOT_APPLICABLE key
_ERRORS_NOT_RAISED = {
    "Tensor lr must be 1-element": "Tensor lr must be 1-element",
    "lr as Tensor doesn't work with foreach & not capturable": "Tensor lr with foreach",
    r"betas\[0\] as a Tensor is not supported for capturable=False and foreach=True":
        "Tensor betas with foreach",
}

FLOAT_DTYPES = (torch.float64, torch.float32, torch.bfloat16, torch.float16)
#: adamw_lab against torch's for-loop: round-off of another order of operations; bfloat16 and
#: float16 get the tolerance torch's own test_fused_matches_forloop allows
TOLERANCES = {torch.float64: dict(rtol=1e-9, atol=1e-12), torch.float32: dict(rtol=1e-5, atol=2e-5),
              torch.bfloat16: dict(rtol=5e-3, atol=5e-3), torch.float16: dict(rtol=5e-3, atol=5e-3)}
LR_SHAPES = ((), (1,), (1, 1))   # every shape of a one-element tensor lr torch accepts here
IMPLS = ("per_tensor", "foreach", "cpp")
LONG_RUN_STEPS = 100
#: torch.compile is slow (tens of seconds per case): one input per class
COMPILED_SUBSET = {"AdamW": "amsgrad", "AdamL2": "nonzero weight_decay"}


@dataclass
class Case:
    """One of torch's inputs as a check runs it; ``not_applicable`` is a key of NOT_APPLICABLE."""

    ours: str
    desc: str
    kwargs: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)     # dtype, impl, lr shape ... of the check
    not_applicable: str | None = None
    error: tuple | None = None                    # (params, error type, regex) of an error input

    @property
    def torch_name(self) -> str:
        return PAIRS[self.ours]

    @property
    def id(self) -> str:
        parts = [self.ours, self.desc.replace(" ", "_")]
        parts += [_short(v) for v in self.extra.values()]
        return "-".join(parts)


def _short(value) -> str:
    if isinstance(value, torch.dtype):
        return str(value).removeprefix("torch.")
    if isinstance(value, tuple):
        return "shape" + "x".join(map(str, value)) if value else "shape0d"
    return str(value)


def _db():
    try:
        from torch.testing._internal import common_optimizers
    except ImportError as e:   # expecttest, imported by torch's test utilities
        raise ImportError(f"torch's optimizer test database needs {e.name!r}: pip install "
                          f"{e.name} (the [notebooks] and [test] extras have it)") from e
    return common_optimizers


@functools.cache
def optimizer_info(torch_name: str):
    """torch's ``OptimizerInfo`` of ``torch.optim.<torch_name>``."""
    infos = [o for o in _db().optim_db if o.optim_cls.__name__ == torch_name]
    if len(infos) != 1:
        raise LookupError(f"torch's optim_db has {len(infos)} entries for {torch_name}")
    return infos[0]


def _flags_key(kwargs) -> str | None:
    for flag in ("capturable", "differentiable"):
        if kwargs.get(flag):
            return flag
    return None


def optim_inputs(ours: str, *, flags: bool = False, dtype=None, device: str = "cpu") -> list[Case]:
    """torch's hyperparameter combinations for the torch class paired with ``ours``.

    ``flags=False``: ``optim_inputs_func(device, dtype)`` (dtype-specific: eps=0.1 in
    float16).  ``flags=True``: torch's own expansion with the global flags
    (``fused``, ``differentiable``; torch adds no ``foreach`` variant on the CPU).
    """
    info = optimizer_info(PAIRS[ours])
    if flags:
        inputs = _db()._get_optim_inputs_including_global_cliquey_kwargs(device, dtype, info)
    else:
        inputs = info.optim_inputs_func(device=device, dtype=dtype)
    return [Case(ours, i.desc, copy.deepcopy(i.kwargs), not_applicable=_flags_key(i.kwargs))
            for i in inputs]


def cuda_only_inputs(ours: str) -> list[Case]:
    """torch's inputs for CUDA that it does not run on the CPU (all ``capturable=True``)."""
    cpu = {i.desc for i in optim_inputs(ours)}
    return [c for c in optim_inputs(ours, device="cuda") if c.desc not in cpu]


def error_inputs(ours: str) -> list[Case]:
    """torch's invalid arguments (CPU) with the error type and message torch raises."""
    info = optimizer_info(PAIRS[ours])
    cases = []
    for k, e in enumerate(info.optim_error_inputs_func(device="cpu", dtype=torch.float32)):
        i = e.optimizer_error_input
        if e.error_on != _db().OptimizerErrorEnum.CONSTRUCTION_ERROR:
            raise NotImplementedError(f"{i.desc}: torch expects the error at step")
        cases.append(Case(ours, f"{k}_{i.desc}", i.kwargs, not_applicable=_ERRORS_NOT_RAISED.get(i.desc),
                          error=(i.params, e.error_type, e.error_regex)))
    return cases


def scheduler_inputs(ours: str) -> list:
    """torch's LR scheduler constructors for the paired class (lists of callables)."""
    return list(optimizer_info(PAIRS[ours]).scheduler_inputs)


def _product(cases, **axes) -> list[Case]:
    out = [copy.deepcopy(c) for c in cases]
    for name, values in axes.items():
        out = [Case(c.ours, c.desc, copy.deepcopy(c.kwargs), {**c.extra, name: v}, c.not_applicable)
               for c in out for v in values]
    return out


def _each(fn) -> list[Case]:
    return [c for ours in PAIRS for c in fn(ours)]


def _scheduled(ours):
    n = len(scheduler_inputs(ours))
    return _product(optim_inputs(ours), contiguous=(True, False), schedulers=tuple(range(-1, n)))


def _complex(ours):
    cases = optim_inputs(ours, flags=True)
    for c in cases:
        if c.kwargs.get("fused") and not c.not_applicable:
            c.not_applicable = "fused complex"
    return cases


def _compiled(ours):
    return [c for c in _product(optim_inputs(ours), dtype=(torch.float32,), impl=("compiled",))
            if c.desc == COMPILED_SUBSET[ours]]


#: check name -> (what of torch's optimizer tests it mirrors, its cases).  Every check
#: compares adamw_lab's numbers with torch's where torch's test only looks at a direction.
CHECKS = {
    "forloop_numbers": ("test_forloop_goes_right_direction (contiguous or not, each of torch's "
                        "LR scheduler lists; -1 = none): 20 steps, every step equal to torch",
                        lambda: _each(_scheduled)),
    "impl_matches_forloop": ("test_foreach_matches_forloop / test_fused_matches_forloop: each "
                             "implementation, fp64/fp32/bf16/fp16, 7 steps with a frozen layer, "
                             "no gradients and a 0-d parameter, parameters and state",
                             lambda: _each(lambda o: [c for d in FLOAT_DTYPES for c in _product(
                                 optim_inputs(o, dtype=d), dtype=(d,), impl=IMPLS)])),
    "long_run": (f"the same against the for-loop over {LONG_RUN_STEPS} steps, fp64 and fp32 "
                 "(bf16/fp16 drift apart over long runs in any two codes, as torch's own do)",
                 lambda: _each(lambda o: [c for d in (torch.float64, torch.float32) for c in _product(
                     optim_inputs(o, dtype=d), dtype=(d,), impl=IMPLS)])),
    "compiled_matches_forloop": ("the same with impl='compiled' (torch.compile; one input)",
                                 lambda: _each(_compiled)),
    "tensor_lr": ("test_tensor_lr, with every one-element lr shape", lambda: _each(
        lambda o: _product(optim_inputs(o, flags=True), lr_shape=LR_SHAPES))),
    "param_groups_weight_decay": ("test_param_groups_weight_decay",
                                  lambda: _each(lambda o: optim_inputs(o, flags=True))),
    "param_groups_lr": ("test_param_groups_lr", lambda: _each(lambda o: optim_inputs(o, flags=True))),
    "no_grad_is_noop": ("test_step_is_noop_when_params_have_no_grad",
                        lambda: _each(lambda o: optim_inputs(o, flags=True))),
    "zero_grads": ("test_step_is_noop_for_zero_grads", lambda: _each(lambda o: optim_inputs(o, flags=True))),
    "repr_and_deepcopy": ("test_optimizer_can_be_printed, test_deepcopy_copies_all_public_attrs",
                          lambda: _each(lambda o: optim_inputs(o, flags=True))),
    "state_dict_deterministic": ("test_state_dict_deterministic (named and unnamed parameters)",
                                 lambda: _each(lambda o: _product(optim_inputs(o, flags=True),
                                                                  named=(False, True)))),
    "load_older_state_dict": ("test_can_load_older_state_dict, test_load_nontensor_step, "
                              "test_save_load_equality_with_weights_only",
                              lambda: _each(lambda o: optim_inputs(o, flags=True))),
    "checkpoint_both_ways": ("state_dict adamw_lab -> torch and torch -> adamw_lab, continued "
                             "deterministically; the re-saved decay rule", lambda: _each(
                                 lambda o: _product(optim_inputs(o, flags=True),
                                                    direction=("ours->torch", "torch->ours")))),
    "hooks": ("test_step_pre_hook, test_step_post_hook, test_step_all_hooks, "
              "test_state_dict_*hook, test_load_state_dict_*hook",
              lambda: _each(lambda o: optim_inputs(o, flags=True))),
    "complex": ("test_complex, test_complex_2d", lambda: _each(_complex)),
    "mixed_dtypes": ("test_mixed_device_dtype (CUDA-only in torch) on the CPU: fp64/fp32/fp16/"
                     "bf16 in one group", lambda: _each(lambda o: _product(optim_inputs(o),
                                                                           impl=IMPLS))),
    "default_dtype": ("test_set_default_dtype_works_with_foreach: the dtype of state['step']",
                      lambda: _each(lambda o: optim_inputs(o, flags=True))),
    "non_empty_state": ("test_non_empty_state", lambda: _each(optim_inputs)),
    "one_cycle_betas": ("OneCycleLR(cycle_momentum=True) drives betas[0]",
                        lambda: _each(optim_inputs)),
    "grad_scaler": ("torch.amp.GradScaler('cpu'), with an overflowing step",
                    lambda: _each(lambda o: optim_inputs(o, flags=True))),
    "meta": ("test_fused_error_on_params_on_meta", lambda: _each(
        lambda o: [c for c in optim_inputs(o, flags=True) if c.kwargs.get("fused")][:1])),
    "compile_step": ("torch.compile of step() (AdamW, default input)",
                     lambda: optim_inputs("AdamW")[:1]),
    "errors": ("test_errors: torch's invalid arguments, same error type and message",
               lambda: _each(error_inputs)),
    "capturable_inputs": ("torch's CUDA-only inputs (capturable=True), listed for the count",
                          lambda: _each(cuda_only_inputs)),
}


def cases(check: str) -> list[Case]:
    """The cases of ``check`` (a key of :data:`CHECKS`), not-applicable ones included."""
    return CHECKS[check][1]()


def runnable(check: str) -> list[Case]:
    """The cases of ``check`` that apply."""
    return [c for c in cases(check) if c.not_applicable is None]


def coverage() -> list[dict]:
    """Per check: what it mirrors, how many cases run, and the not-applicable ones by reason."""
    rows = []
    for check, (mirrors, _) in CHECKS.items():
        all_cases = cases(check)
        skipped: dict[str, int] = {}
        for c in all_cases:
            if c.not_applicable:
                skipped[c.not_applicable] = skipped.get(c.not_applicable, 0) + 1
        rows.append(dict(check=check, mirrors=mirrors, total=len(all_cases),
                         run=len(all_cases) - sum(skipped.values()), not_applicable=skipped))
    return rows
