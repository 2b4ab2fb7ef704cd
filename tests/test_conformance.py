"""Conformance with torch.optim, driven by PyTorch's own optimizer test inputs.

For each check of ``adamw_lab.conformance.CHECKS`` this module runs the cases it
enumerates from torch's ``optim_db`` (the ``OptimizerInfo`` of ``AdamW`` and
``Adam``): ``adamw_lab.AdamW`` against ``torch.optim.AdamW`` and
``adamw_lab.AdamL2`` against ``torch.optim.Adam``.  Where torch's test only
checks that the loss went the right way, these compare the numbers with torch's
for-loop.  The cases that cannot apply are listed, with the reason, in
``conformance.NOT_APPLICABLE``; ``test_coverage_counts`` prints how many cases
each check runs.
"""
from __future__ import annotations

import copy
import functools
import io
import math

import pytest
import torch
from torch.nn import Parameter

import adamw_lab
from adamw_lab import conformance, cpp_kernel

# torch.optim.Adam's default weight_decay is 0, AdamL2's is AdamW's 1e-2 (see AdamL2)
TORCH_DEFAULT_WEIGHT_DECAY = {"AdamW": 1e-2, "AdamL2": 0.0}


def _params(check, **marks):
    """pytest parameters for the applicable cases of ``check``, with readable ids."""
    out = []
    for case in conformance.runnable(check):
        case_marks = list(marks.get(case.id, ()))
        if case.extra.get("impl") == "cpp" or case.kwargs.get("fused"):
            case_marks.append(pytest.mark.skipif(not cpp_kernel.available("cpu"),
                                                 reason="the fused CPU kernel needs a C++ compiler"))
        out.append(pytest.param(case, id=case.id, marks=case_marks))
    return out


def _kwargs(case, *, ours, **override):
    kw = copy.deepcopy(case.kwargs)
    kw.setdefault("weight_decay", TORCH_DEFAULT_WEIGHT_DECAY[case.ours])
    if ours:
        if "impl" in case.extra:
            kw["impl"] = case.extra["impl"]
    else:   # the ground truth: torch's for-loop
        kw.update(foreach=False, fused=False)
    kw.update(override)
    return kw


def make(case, params, *, ours, **override):
    """``adamw_lab.<ours>`` or its ``torch.optim`` twin on ``params`` with the case's kwargs."""
    cls = getattr(adamw_lab, case.ours) if ours else getattr(torch.optim, case.torch_name)
    return cls(params, **_kwargs(case, ours=ours, **override))


def tol(dtype):
    """Tolerances of adamw_lab against torch's for-loop (one table, shared with the appendix)."""
    return conformance.TOLERANCES[dtype]


def assert_same(opt_a, params_a, opt_b, params_b, **tolerance):
    """Parameters and every state tensor of two optimizers agree (``step`` exactly)."""
    for k, (p, q) in enumerate(zip(params_a, params_b)):
        torch.testing.assert_close(p, q, **tolerance, msg=lambda m, k=k: f"param {k}: {m}")
        sa, sb = opt_a.state[p], opt_b.state[q]
        assert sa.keys() == sb.keys(), (k, sa.keys(), sb.keys())
        for key in sa:
            exact = dict(rtol=0, atol=0) if key == "step" else tolerance
            torch.testing.assert_close(sa[key], sb[key], **exact,
                                       msg=lambda m, k=k, key=key: f"param {k} {key}: {m}")


def weight_and_bias(dtype=torch.float32, contiguous=True, seed=0):
    """torch's test problem: loss = ||W x + b||², W 10×5, b 10 (optionally non-contiguous)."""
    g = torch.Generator().manual_seed(seed)
    if contiguous:
        w, b = torch.randn(10, 5, generator=g), torch.randn(10, generator=g)
    else:
        w, b = torch.randn(10, 5, 2, generator=g)[..., 0], torch.randn(10, 2, generator=g)[..., 0]
    x = torch.randn(5, generator=g, dtype=dtype)
    return Parameter(w.to(dtype)), Parameter(b.to(dtype)), x


def twins(*params):
    """Independent copies with the same strides."""
    return [Parameter(copy.deepcopy(p.detach())) for p in params]


def loss_wb(w, b, x):
    return (w.mv(x) + b).pow(2).sum()


# ------------------------------------------------------------------ numbers
@pytest.mark.parametrize("case", _params("forloop_numbers"))
def test_forloop_numbers(case):
    """20 steps with torch's LR schedulers: every step equals torch's, and the loss moves right."""
    w, b, x = weight_and_bias(contiguous=case.extra["contiguous"])
    ours_p, torch_p = [w, b], twins(w, b)
    opts = [make(case, ours_p, ours=True), make(case, torch_p, ours=False)]
    k = case.extra["schedulers"]
    make_scheds = conformance.scheduler_inputs(case.ours)[k] if k >= 0 else []
    scheds = [[s(opt) for s in make_scheds] for opt in opts]
    initial = loss_wb(w, b, x).item()
    for _ in range(20):
        for opt, params, opt_scheds in zip(opts, (ours_p, torch_p), scheds):
            opt.zero_grad()
            loss = loss_wb(*params, x)
            loss.backward()
            opt.step()
            for s in opt_scheds:
                if isinstance(s, torch.optim.lr_scheduler.ReduceLROnPlateau):
                    s.step(loss.item())
                else:
                    s.step()
        assert_same(opts[0], ours_p, opts[1], torch_p, **tol(torch.float32))
    final = loss_wb(w, b, x).item()
    assert final > initial if case.kwargs.get("maximize") else final < initial


def tiny_model(dtype):
    """torch's _test_derived_optimizers model, plus a 0-d parameter that gets gradients."""
    with torch.random.fork_rng():
        torch.manual_seed(1)
        model = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.Sigmoid(),
                                    torch.nn.Linear(3, 1), torch.nn.Sigmoid()).to(dtype)
    model.scalar = Parameter(torch.tensor(0.3, dtype=dtype))
    return model


def compare_between(case, dtype, steps=7):
    """torch's _compare_between: a layer frozen at step 3 and thawed at 5, no gradients at
    step 2; parameters and state compared with torch's for-loop after every step."""
    x = torch.tensor([0.1, 0.2, 0.3, 0.4, 0.5, 0.6], dtype=dtype).reshape(3, 2)
    models = [tiny_model(dtype), tiny_model(dtype)]
    opts = [make(case, models[0].parameters(), ours=True),
            make(case, models[1].parameters(), ours=False)]
    for i in range(steps):
        for model, opt in zip(models, opts):
            opt.zero_grad()
            model[2].requires_grad_(i not in (3, 4))
            if i != 2:
                (model(x).sum() + model.scalar.sin()).backward()
            opt.step()
        assert_same(opts[0], list(models[0].parameters()), opts[1],
                    list(models[1].parameters()), **tol(dtype))


@pytest.mark.parametrize("case", _params("impl_matches_forloop"))
def test_impl_matches_forloop(case):
    compare_between(case, case.extra["dtype"])


@pytest.mark.parametrize("case", _params("long_run"))
def test_long_run(case):
    dtype = case.extra["dtype"]
    w, b, x = weight_and_bias(dtype)
    runs = [(make(case, params, ours=ours), params) for ours in (True, False)
            for params in [twins(w, b)]]
    for _ in range(conformance.LONG_RUN_STEPS):
        for opt, params in runs:
            _fwd_bwd(opt, *params, x)
            opt.step()
    assert_same(*runs[0], *runs[1], **tol(dtype))


@pytest.mark.parametrize("case", _params("compiled_matches_forloop"))
def test_compiled_matches_forloop(case):
    compare_between(case, case.extra["dtype"])


@pytest.mark.parametrize("case", _params("tensor_lr"))
def test_tensor_lr(case):
    """lr as a one-element tensor of each shape: same numbers as a float lr, in torch and here."""
    lr = float(case.kwargs.get("lr", 1e-3))
    w, b, x = weight_and_bias()
    runs = [(ours, lr_value, twins(w, b)) for ours, lr_value in
            ((True, lr), (True, torch.full(case.extra["lr_shape"], lr)),
             (False, torch.full(case.extra["lr_shape"], lr)))]   # torch's for-loop takes it too
    runs = [(make(case, params, ours=ours, lr=lr_value), params) for ours, lr_value, params in runs]
    for _ in range(5):
        for opt, params in runs:
            _fwd_bwd(opt, *params, x)
            opt.step()
    assert_same(*runs[1], *runs[2], **tol(torch.float32))
    assert_same(*runs[1], *runs[0], **tol(torch.float32))


@pytest.mark.parametrize("case", _params("param_groups_weight_decay"))
def test_param_groups_weight_decay(case):
    w, b, x = weight_and_bias()
    result = []
    for ours in (True, False):
        params = twins(w, b)
        kw = _kwargs(case, ours=ours)
        cls = getattr(adamw_lab, case.ours) if ours else getattr(torch.optim, case.torch_name)
        opt = cls([dict(params=[params[0]], **kw), dict(params=[params[1]], **{**kw, "weight_decay": 0.0})])
        initial = loss_wb(*params, x).item()
        for _ in range(20):
            opt.zero_grad()
            loss_wb(*params, x).backward()
            opt.step()
        final = loss_wb(*params, x).item()
        assert final > initial if case.kwargs.get("maximize") else final < initial
        result.append((opt, params))
    assert_same(*result[0], *result[1], **tol(torch.float32))


@pytest.mark.parametrize("case", _params("param_groups_lr"))
def test_param_groups_lr(case):
    """A group with its own lr moves; the other group's lr=1e-28 leaves it in place."""
    w, b, x = weight_and_bias()
    irrelevant = Parameter(torch.randn(2, generator=torch.Generator().manual_seed(5)))
    result = []
    for ours in (True, False):
        params = twins(w, b, irrelevant)
        cls = getattr(adamw_lab, case.ours) if ours else getattr(torch.optim, case.torch_name)
        kw = _kwargs(case, ours=ours, lr=case.kwargs.get("lr", 1e-3))
        opt = cls([dict(params=params[:2], **kw), dict(params=[params[2]])], lr=1e-28,
                  weight_decay=TORCH_DEFAULT_WEIGHT_DECAY[case.ours])
        g = torch.Generator().manual_seed(6)
        for _ in range(20):
            opt.zero_grad()
            loss_wb(params[0], params[1], x).backward()
            params[2].grad = torch.rand(2, generator=g)
            opt.step()
        torch.testing.assert_close(params[2], irrelevant, rtol=0, atol=1e-7)
        result.append((opt, params))
    assert_same(*result[0], *result[1], **tol(torch.float32))


@pytest.mark.parametrize("case", _params("no_grad_is_noop"))
def test_no_grad_is_noop(case):
    params = [torch.randn(2, 3, generator=torch.Generator().manual_seed(k)) for k in range(2)]
    before = [p.clone() for p in params]
    opt = make(case, params, ours=True)
    assert opt.step(lambda: torch.tensor([1.0])).item() == 1.0
    assert all(torch.equal(p, q) for p, q in zip(params, before)) and not opt.state


@pytest.mark.parametrize("case", _params("zero_grads"))
def test_zero_grads(case):
    """A zero gradient moves nothing but the decay: same numbers as torch, no move without decay."""
    result = []
    for ours in (True, False):
        p = Parameter(torch.randn(5, 1, generator=torch.Generator().manual_seed(0)))
        opt = make(case, [p], ours=ours)
        for _ in range(3):
            p.grad = torch.zeros_like(p)
            opt.step()
        result.append((opt, [p]))
    assert_same(*result[0], *result[1], **tol(torch.float32))
    start = torch.randn(5, 1, generator=torch.Generator().manual_seed(0))
    if _kwargs(case, ours=True)["weight_decay"] == 0:
        assert torch.equal(result[0][1][0].detach(), start)
    else:
        assert not torch.equal(result[0][1][0].detach(), start)


@pytest.mark.parametrize("case", _params("repr_and_deepcopy"))
def test_repr_and_deepcopy(case):
    params = [Parameter(torch.randn(2, 3)) for _ in range(2)]
    for p in params:
        p.grad = torch.rand_like(p)
    opt = make(case, params, ours=True)
    text = repr(opt)
    assert text.startswith(case.ours + " (") and "lr:" in text and "weight_decay:" in text
    for _ in range(3):
        opt.step()
    public = lambda o: {k for k in o.__dict__ if not k.startswith("_")}
    clone = copy.deepcopy(opt)
    assert public(clone) == public(opt)
    # the copy steps on its own parameters and agrees with the original
    clone_params = clone.param_groups[0]["params"]
    for p, q in zip(params, clone_params):
        q.grad = p.grad.clone()
    opt.step()
    clone.step()
    assert_same(opt, params, clone, clone_params, rtol=0, atol=0)


# ------------------------------------------------------------------ state_dict
def _fwd_bwd(opt, w, b, x):
    opt.zero_grad()
    loss = loss_wb(w, b, x)
    loss.backward()
    return loss


@pytest.mark.parametrize("case", _params("state_dict_deterministic"))
def test_state_dict_deterministic(case):
    named = case.extra["named"]
    w, b, x = weight_and_bias()
    w, b = Parameter(w.detach()[:2, :3].clone()), Parameter(b.detach()[:2].clone())
    x = x[:3]
    as_input = (lambda ps: [(f"name{i}", p) for i, p in enumerate(ps)]) if named else list
    opt = make(case, as_input([w, b]), ours=True)
    for _ in range(10):
        opt.step(functools.partial(_fwd_bwd, opt, w, b, x))
    wc, bc = twins(w, b)
    opt_c = make(case, as_input([wc, bc]), ours=True)
    sd = copy.deepcopy(opt.state_dict())
    opt_c.load_state_dict(sd)
    assert_sd_equal(sd, opt.state_dict())   # loading left the checkpoint alone
    for _ in range(10):
        opt.step(functools.partial(_fwd_bwd, opt, w, b, x))
        opt_c.step(functools.partial(_fwd_bwd, opt_c, wc, bc, x))
        torch.testing.assert_close(w, wc, rtol=0, atol=0)
        torch.testing.assert_close(b, bc, rtol=0, atol=0)
    assert_sd_equal(opt.state_dict(), opt_c.state_dict())
    if named:
        assert opt_c.state_dict()["param_groups"][0]["param_names"] == ["name0", "name1"]


def assert_sd_equal(a, b):
    assert a["param_groups"] == b["param_groups"]
    assert a["state"].keys() == b["state"].keys()
    for k in a["state"]:
        assert a["state"][k].keys() == b["state"][k].keys()
        for key, value in a["state"][k].items():
            torch.testing.assert_close(value, b["state"][k][key], rtol=0, atol=0)


def conv_bn(dtype=torch.float32):
    """torch's model of the checkpoint tests (a strided 1×1 convolution and batch norm), in eval
    mode: in training mode the loss does not depend on the convolution's bias, whose gradient
    is then round-off noise that no two implementations share."""
    with torch.random.fork_rng():
        torch.manual_seed(1)
        model = torch.nn.Sequential(torch.nn.Conv2d(4, 2, 1, stride=2), torch.nn.BatchNorm2d(2)).to(dtype)
    return model.eval()


@pytest.mark.parametrize("case", _params("load_older_state_dict"))
def test_load_older_state_dict(case):
    """Checkpoints without the newer flags, with a Python-number step, and through torch.save."""
    info = conformance.optimizer_info(case.torch_name)
    x = torch.rand(1, 4, 16, 16, generator=torch.Generator().manual_seed(0))
    models, opts = [conv_bn(), conv_bn()], []
    for model, ours in zip(models, (True, False)):
        opt = make(case, model.parameters(), ours=ours)
        for _ in range(3):
            opt.zero_grad()
            model(x).sum().backward()
            opt.step()
        old = copy.deepcopy(opt.state_dict())
        for group in old["param_groups"]:
            for flag in info.not_og_supported_flags:
                group.pop(flag, None)
        for p_state in old["state"].values():
            p_state["step"] = p_state["step"].item()
        opt.load_state_dict(old)
        assert all(torch.is_tensor(s["step"]) and s["step"].dtype == torch.float32
                   for s in opt.state.values())
        for _ in range(2):
            opt.zero_grad()
            model(x).sum().backward()
            opt.step()
        opts.append(opt)
    assert_same(opts[0], list(models[0].parameters()), opts[1], list(models[1].parameters()),
                **tol(torch.float32))
    # torch.save / torch.load(weights_only=True) give back the same checkpoint
    sd = opts[0].state_dict()
    buffer = io.BytesIO()
    torch.save(sd, buffer)
    buffer.seek(0)
    assert_sd_equal(torch.load(buffer, weights_only=True), sd)


@pytest.mark.parametrize("case", _params("checkpoint_both_ways"))
def test_checkpoint_both_ways(case):
    """A checkpoint moves between adamw_lab and torch.optim and training continues identically;
    saved again, it still names the decay rule of the class that saved it."""
    first_ours = case.extra["direction"] == "ours->torch"
    w, b, x = weight_and_bias()
    opt = make(case, [w, b], ours=first_ours)
    for _ in range(5):
        opt.step(functools.partial(_fwd_bwd, opt, w, b, x))
    wc, bc = twins(w, b)
    other = make(case, [wc, bc], ours=not first_ours)
    other.load_state_dict(copy.deepcopy(opt.state_dict()))
    for _ in range(5):
        opt.step(functools.partial(_fwd_bwd, opt, w, b, x))
        other.step(functools.partial(_fwd_bwd, other, wc, bc, x))
    assert_same(opt, [w, b], other, [wc, bc], **tol(torch.float32))
    decoupled = case.ours == "AdamW"
    for o in (opt, other):
        assert all(g["decoupled_weight_decay"] == decoupled for g in o.state_dict()["param_groups"])
        assert all(s["step"].dtype == torch.float32 for s in o.state_dict()["state"].values())


def test_torch_adam_checkpoint_into_adamw_is_saved_as_adamw():
    """The decay rule follows the class: Adam's checkpoint loaded into AdamW, saved again and
    loaded into torch.optim.Adam, decays decoupled (as torch.optim.AdamW re-saves it)."""
    for src, dst, decoupled in ((torch.optim.Adam, adamw_lab.AdamW, True),
                                (torch.optim.AdamW, adamw_lab.AdamL2, False)):
        p = Parameter(torch.ones(3))
        p.grad = torch.ones(3)
        opt = src([p], weight_decay=0.1)
        opt.step()
        ours = dst([Parameter(torch.ones(3))])
        ours.load_state_dict(opt.state_dict())
        assert ours.state_dict()["param_groups"][0]["decoupled_weight_decay"] is decoupled


def test_checkpoint_flags_this_optimizer_cannot_honour_are_reset():
    """A torch checkpoint saved with capturable/differentiable loads as what adamw_lab does."""
    p = Parameter(torch.ones(3))
    p.grad = torch.ones(3)
    opt = torch.optim.AdamW([p])
    opt.step()
    sd = opt.state_dict()
    sd["param_groups"][0].update(capturable=True, differentiable=True)
    ours = adamw_lab.AdamW([p])
    ours.load_state_dict(sd)
    assert not ours.param_groups[0]["capturable"] and not ours.param_groups[0]["differentiable"]
    ours.step()
    assert ours.state[p]["step"].item() == 2


@pytest.mark.parametrize("cls,group", [(adamw_lab.AdamW, dict(decoupled_weight_decay=False)),
                                       (adamw_lab.AdamL2, dict(decoupled_weight_decay=True)),
                                       (adamw_lab.AdamW, dict(betas=(0.9, 0.99, 0.5)))])
def test_group_that_contradicts_the_class_is_refused(cls, group):
    """torch.optim.Adam honours a group's decoupled_weight_decay; adamw_lab's class fixes the rule,
    so a contradicting group is an error, not a silently different rule."""
    with pytest.raises(ValueError, match="decoupled_weight_decay|betas"):
        cls([dict(params=[Parameter(torch.ones(2))], **group)])


def test_torch_sgd_checkpoint_loads_into_sgdl2_unless_it_has_nesterov():
    """torch.optim.SGD's checkpoint continues identically in SGDL2; one with nesterov or
    dampening, which SGDL2 lacks, is refused instead of stepping differently."""
    w, b, x = weight_and_bias()
    kw = dict(lr=0.01, momentum=0.9, weight_decay=0.1)
    opt = torch.optim.SGD([w, b], **kw, foreach=False)
    for _ in range(3):
        opt.step(functools.partial(_fwd_bwd, opt, w, b, x))
    wc, bc = twins(w, b)
    ours = adamw_lab.SGDL2([wc, bc], **kw)
    ours.load_state_dict(copy.deepcopy(opt.state_dict()))
    for _ in range(3):
        opt.step(functools.partial(_fwd_bwd, opt, w, b, x))
        ours.step(functools.partial(_fwd_bwd, ours, wc, bc, x))
    assert_same(opt, [w, b], ours, [wc, bc], **tol(torch.float32))
    for flag in (dict(nesterov=True), dict(dampening=0.1)):
        sd = torch.optim.SGD([Parameter(torch.ones(2))], **kw, **flag).state_dict()
        with pytest.raises(ValueError, match="nesterov"):
            adamw_lab.SGDL2([Parameter(torch.ones(2))], **kw).load_state_dict(sd)


# ------------------------------------------------------------------ hooks
@pytest.mark.parametrize("case", _params("hooks"))
def test_hooks(case):
    """Step pre/post hooks (local and global) in torch's order; state_dict and load_state_dict
    hooks as torch's tests use them."""
    from torch.optim.optimizer import (register_optimizer_step_post_hook,
                                       register_optimizer_step_pre_hook)
    params = [torch.tensor([1.0, 1.0])]
    opt = make(case, params, ours=True)
    other = torch.optim.SGD(params)
    data = []
    handles = [register_optimizer_step_pre_hook(lambda *a: data.append(0)),
               register_optimizer_step_post_hook(lambda *a: data.append(5))]
    for o in (opt, other):
        handles += [o.register_step_pre_hook(lambda *a: data.append(1)),
                    o.register_step_post_hook(lambda *a: data.append(2))]
    try:
        opt.step()
        other.step()
        opt.step()
    finally:
        for h in handles:
            h.remove()
    opt.step()
    assert data == [0, 1, 2, 5] * 3

    def sd_pre(o):
        o.state["test"] = 1

    def sd_post(o, sd):
        sd["ran_pre"] = sd["state"].pop("test", None) == 1
        return sd

    param = torch.rand(2, 3, requires_grad=True)
    opt = make(case, [param], ours=True)
    opt.register_state_dict_pre_hook(sd_pre)
    opt.register_state_dict_post_hook(sd_post)
    sd = opt.state_dict()
    assert sd["ran_pre"] and "test" not in sd["state"]
    del opt.state["test"]

    def load_pre1(o, sd):
        sd["param_groups"][0]["lr"] = 0.002

    def load_pre2(o, sd):
        sd = copy.deepcopy(sd)
        sd["param_groups"][0]["lr"] = 0.003
        return sd

    def load_post(o):
        o.state["ran_post"] = True

    opt = make(case, [param], ours=True)
    sd = opt.state_dict()
    opt.register_load_state_dict_pre_hook(load_pre1)
    opt.load_state_dict(sd)
    assert opt.param_groups[0]["lr"] == 0.002
    opt.register_load_state_dict_pre_hook(load_pre2, prepend=True)
    opt.register_load_state_dict_post_hook(load_post)
    opt.load_state_dict(sd)
    assert opt.param_groups[0]["lr"] == 0.002 and opt.state["ran_post"]


# ------------------------------------------------------------------ complex, dtypes, devices
@pytest.mark.parametrize("case", _params("complex"))
def test_complex(case):
    """Complex parameters step as their view_as_real twins (torch's test_complex), and a
    complex pair as its real and imaginary parts (test_complex_2d)."""
    g = torch.Generator().manual_seed(0)
    complex_params = [torch.randn(10, 5, dtype=torch.complex64, generator=g, requires_grad=True),
                      torch.randn(10, dtype=torch.complex64, generator=g, requires_grad=True),
                      torch.randn(10, 5, generator=g, requires_grad=True)]
    real_params = [(torch.view_as_real(p) if p.is_complex() else p).detach().clone().requires_grad_()
                   for p in complex_params]
    opt_c, opt_r = make(case, complex_params, ours=True), make(case, real_params, ours=True)
    for _ in range(3):
        for pc, pr in zip(complex_params, real_params):
            pr.grad = torch.randn(pr.shape, generator=g)
            pc.grad = torch.view_as_complex(pr.grad.clone()) if pc.is_complex() else pr.grad.clone()
        opt_c.step()
        opt_r.step()
    for pc, pr in zip(complex_params, real_params):
        torch.testing.assert_close(torch.view_as_real(pc) if pc.is_complex() else pc, pr)

    def rosenbrock(t):
        x, y = t
        return (1 - x) ** 2 + 100 * (y - x**2) ** 2

    a1 = torch.randn(2, dtype=torch.complex64, generator=g, requires_grad=True)
    re, im = a1.real.detach().clone().requires_grad_(), a1.imag.detach().clone().requires_grad_()
    opt1, opt2 = make(case, [a1], ours=True), make(case, [re, im], ours=True)
    for _ in range(3):
        opt1.zero_grad()
        opt2.zero_grad()
        rosenbrock(a1).abs().backward()
        rosenbrock(torch.complex(re, im)).abs().backward()
        opt1.step()
        opt2.step()
        torch.testing.assert_close(a1.real, re)
        torch.testing.assert_close(a1.imag, im)


@pytest.mark.parametrize("case", _params("mixed_dtypes"))
def test_mixed_dtypes(case):
    """One group with fp64, fp32, fp16 and bf16 parameters (and an int64 one without a gradient)
    matches torch's for-loop, each within 5× its dtype's default tolerance (test_mixed_device_dtype)."""
    g = torch.Generator().manual_seed(0)
    dtypes = (torch.float64, torch.float32, torch.float16, torch.bfloat16)
    base = [torch.rand(2, 3, generator=g).to(d) for d in dtypes]
    grads = [torch.rand(2, 3, generator=g).to(d) for d in dtypes]
    result = []
    for ours in (True, False):
        params = [p.clone().requires_grad_() for p in base]
        for p, gr in zip(params, grads):
            p.grad = gr.clone()
        ints = torch.randint(1024, (2, 3), generator=g)
        opt = make(case, params + [ints], ours=ours)
        for _ in range(7):
            opt.step()
        result.append((opt, params))
    for (p, q) in zip(result[0][1], result[1][1]):
        rtol, atol = torch.testing._comparison.get_tolerances(p.dtype, rtol=None, atol=None)
        one = functools.partial(assert_same, rtol=5 * rtol, atol=5 * atol)
        one(result[0][0], [p], result[1][0], [q])


@pytest.mark.parametrize("case", _params("default_dtype"))
def test_default_dtype(case):
    """state['step'] is float64 under torch.set_default_dtype(torch.float64), as torch's."""
    old = torch.get_default_dtype()
    try:
        for default in (torch.float64, torch.float32):
            torch.set_default_dtype(default)
            steps = []
            for ours in (True, False):
                p = Parameter(torch.randn(3, dtype=torch.float32))
                p.grad = torch.ones_like(p)
                opt = make(case, [p], ours=ours, fused=case.kwargs.get("fused", False))
                opt.step()
                steps.append(opt.state[p]["step"].dtype)
            assert steps[0] == steps[1], (default, steps)
    finally:
        torch.set_default_dtype(old)


@pytest.mark.parametrize("case", _params("non_empty_state"))
def test_non_empty_state(case):
    model = torch.nn.Linear(5, 5)
    opt = make(case, model.parameters(), ours=True)
    model(torch.rand(2, 5)).sum().backward()
    opt.step()
    assert len(opt.state) == 2 and all(len(s) > 0 for s in opt.state.values())


@pytest.mark.parametrize("case", _params("meta"))
def test_meta(case):
    """fused=True on meta parameters raises torch's error at step; after to_empty it steps."""
    with torch.device("meta"):
        model = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.Sigmoid(), torch.nn.Linear(3, 1))
    opt = make(case, model.parameters(), ours=True)
    with torch.device("meta"):
        for p in model.parameters():
            p.grad = torch.rand_like(p)
    with pytest.raises(RuntimeError, match="`fused=True` requires all the params to be floating point Tensors"):
        opt.step()
    opt.zero_grad(set_to_none=True)
    model.to_empty(device="cpu")
    for p in model.parameters():
        p.grad = torch.rand_like(p)
    opt.step()
    assert all(s["step"].item() == 1 for s in opt.state.values())


# ------------------------------------------------------------------ schedulers, AMP, compile
@pytest.mark.parametrize("case", _params("one_cycle_betas"))
def test_one_cycle_betas(case):
    """OneCycleLR with cycle_momentum writes betas[0] at every step: the same numbers as torch."""
    w, b, x = weight_and_bias()
    runs = []
    for ours in (True, False):
        params = twins(w, b)
        opt = make(case, params, ours=ours)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.05, total_steps=20,
                                                    cycle_momentum=True)
        beta1s = []
        for _ in range(20):
            _fwd_bwd(opt, *params, x)
            opt.step()
            sched.step()
            beta1s.append(opt.param_groups[0]["betas"][0])
        runs.append((opt, params, beta1s))
    assert runs[0][2] == runs[1][2] and len(set(runs[0][2])) > 5
    assert_same(runs[0][0], runs[0][1], runs[1][0], runs[1][1], **tol(torch.float32))


@pytest.mark.parametrize("case", _params("grad_scaler"))
def test_grad_scaler(case):
    """torch.amp.GradScaler('cpu'): scaled gradients are unscaled, an overflowing step is
    skipped and the scale backs off, as with torch.optim."""
    w, b, x = weight_and_bias()
    runs = []
    for ours in (True, False):
        params = twins(w, b)
        opt = make(case, params, ours=ours)
        scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
        for i in range(6):
            opt.zero_grad()
            loss = loss_wb(*params, x) * (math.inf if i == 2 else 1.0)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        runs.append((opt, params, scaler.get_scale()))
    assert runs[0][2] == runs[1][2] < 2.0**10
    assert all(s["step"].item() == 5 for s in runs[0][0].state.values())
    assert_same(runs[0][0], runs[0][1], runs[1][0], runs[1][1], **tol(torch.float32))


@pytest.mark.parametrize("case", _params("compile_step"))
def test_compile_step(case):
    """torch.compile of a function that calls step() gives the eager numbers."""
    import torch._dynamo
    torch._dynamo.reset()
    w, b, x = weight_and_bias()
    runs = []
    for compiled in (True, False):
        params = twins(w, b)
        opt = make(case, params, ours=True)
        step = torch.compile(opt.step) if compiled else opt.step
        for _ in range(3):
            _fwd_bwd(opt, *params, x)
            step()
        runs.append((opt, params))
    assert_same(*runs[0], *runs[1], **tol(torch.float32))


# ------------------------------------------------------------------ errors
@pytest.mark.parametrize("case", _params("errors"))
def test_errors(case):
    """torch's invalid arguments raise the same error type with torch's message, here as there."""
    params, error_type, regex = case.error
    ours_cls = getattr(adamw_lab, case.ours)
    torch_cls = getattr(torch.optim, case.torch_name)
    for cls in (torch_cls, ours_cls):
        if issubclass(error_type, Warning):
            with pytest.warns(error_type, match=regex):
                cls(copy.copy(params), **case.kwargs)
        else:
            with pytest.raises(error_type, match=regex):
                cls(copy.copy(params), **case.kwargs)


# ------------------------------------------------------------------ the counts
def test_coverage_counts(capsys):
    """Every check has its test here, every case runs or names a reason, and the counts print."""
    rows = conformance.coverage()
    used_reasons = set()
    for row in rows:
        assert row["total"] > 0, row
        assert row["run"] + sum(row["not_applicable"].values()) == row["total"], row
        used_reasons |= set(row["not_applicable"])
        if row["run"]:
            assert callable(globals().get(f"test_{row['check']}")), f"no test for {row['check']}"
    assert used_reasons <= set(conformance.NOT_APPLICABLE)
    assert used_reasons == set(conformance.NOT_APPLICABLE)   # no stale reason
    # torch's database still has the five CPU inputs per class this suite was written against
    assert [c.desc for c in conformance.optim_inputs("AdamW")] == [
        "default", "non-default lr", "nonzero weight_decay", "maximize", "amsgrad"]
    with capsys.disabled():
        print("\nconformance: cases run / not applicable per check")
        for row in rows:
            print(f"  {row['check']:28s} {row['run']:4d} / {sum(row['not_applicable'].values()):3d}"
                  f"  {row['not_applicable'] or ''}")
        print(f"  total run {sum(r['run'] for r in rows)}, not applicable "
              f"{sum(sum(r['not_applicable'].values()) for r in rows)}")
