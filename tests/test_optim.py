"""adamw_lab's optimizers against torch.optim and the float64 reference (CPU)."""
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import adamw_lab
from adamw_lab import cpp_kernel, reference
from optim_cases import (CPP, LAYOUT_CONFIGS, SmallNet, check_layouts_match_torch,
                         check_matches_torch, check_prox_matches_reference, train_pair)

# compiled: test_kernels_compiled.py; triton: test_kernels_triton.py; cpp-only cases: test_kernels_cpp.py
IMPLS = ["per_tensor", "foreach", CPP]
SGD_IMPLS = ["per_tensor", "foreach"]


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("name", ["AdamW", "AdamL2"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["fp32", "fp64"])
@pytest.mark.parametrize("amsgrad,maximize", [(False, False), (True, False), (False, True)],
                         ids=["plain", "amsgrad", "maximize"])
def test_matches_torch_over_100_steps(impl, name, dtype, amsgrad, maximize):
    check_matches_torch(impl, name, dtype, "cpu", amsgrad=amsgrad, maximize=maximize)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("name,dtype,amsgrad,maximize", LAYOUT_CONFIGS,
                         ids=[f"{n}-{str(d)[6:]}-{'amsgrad' if a else 'maximize' if m else 'plain'}"
                              for n, d, a, m in LAYOUT_CONFIGS])
def test_hand_assigned_gradients_in_other_layouts(impl, name, dtype, amsgrad, maximize):
    """Transposed/contiguous, sliced, channels_last, 0-d, expanded and complex tensors,
    gradients in a layout other than the parameter's: the same numbers as torch's for-loop."""
    check_layouts_match_torch(impl, name, dtype, "cpu", amsgrad=amsgrad, maximize=maximize)


@pytest.mark.parametrize("impl", IMPLS)
def test_prox_matches_reference(impl):
    check_prox_matches_reference(impl, "cpu")


@pytest.mark.parametrize("impl", SGD_IMPLS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["fp32", "fp64"])
def test_sgdl2_matches_torch_sgd(impl, dtype):
    kw = dict(lr=0.05, momentum=0.9, weight_decay=0.1)
    a, b, _, _ = train_pair(lambda ps: adamw_lab.SGDL2(ps, impl=impl, **kw),
                            lambda ps: torch.optim.SGD(ps, **kw), SmallNet(dtype, "cpu"))
    tol = dict(rtol=1e-12, atol=1e-12) if dtype == torch.float64 else dict(rtol=2e-5, atol=2e-6)
    for p, q in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(p, q, **tol)


@pytest.mark.parametrize("impl", SGD_IMPLS)
@pytest.mark.parametrize("name,rule", [("SGDW", reference.sgdw_step), ("SGDL2", reference.sgd_l2_step)])
def test_sgd_matches_reference(impl, name, rule):
    rng = np.random.default_rng(0)
    w0, grads = rng.normal(size=(3, 4)), rng.normal(size=(30, 3, 4))
    w = torch.tensor(w0, requires_grad=True)
    opt = getattr(adamw_lab, name)([w], lr=0.05, momentum=0.8, weight_decay=0.3, impl=impl)
    w_ref, buf = w0.copy(), np.zeros_like(w0)
    for g in grads:
        w.grad = torch.tensor(g)
        opt.step()
        w_ref, buf = rule(w_ref, g, buf, lr=0.05, momentum=0.8, weight_decay=0.3)
    np.testing.assert_allclose(w.detach().numpy(), w_ref, rtol=1e-12, atol=1e-12)


RULES = {"AdamW": reference.adamw_step, "AdamL2": reference.adam_l2_step,
         "AdamWProx": reference.adamw_prox_step}


@settings(max_examples=40, deadline=None, derandomize=True)
@given(name=st.sampled_from(sorted(RULES)), impl=st.sampled_from(["per_tensor", "foreach"] + ["cpp"] * cpp_kernel.available("cpu")),
       lr=st.floats(1e-5, 1.0), weight_decay=st.floats(0.0, 10.0),
       beta1=st.floats(0.0, 0.99), beta2=st.floats(0.0, 0.9999), eps=st.floats(1e-10, 1e-2),
       seed=st.integers(0, 2**16))
def test_random_hyperparameters_match_reference(name, impl, lr, weight_decay, beta1, beta2, eps, seed):
    rng = np.random.default_rng(seed)
    w0, grads = rng.normal(size=(4, 3)), rng.normal(size=(8, 4, 3))
    hyper = dict(lr=lr, betas=(beta1, beta2), eps=eps, weight_decay=weight_decay)
    w = torch.tensor(w0, requires_grad=True)
    opt = getattr(adamw_lab, name)([w], impl=impl, **hyper)
    w_ref, m, v = w0.copy(), np.zeros_like(w0), np.zeros_like(w0)
    for t, g in enumerate(grads, start=1):
        w.grad = torch.tensor(g)
        opt.step()
        w_ref, m, v = RULES[name](w_ref, g, m, v, t, **hyper)
    np.testing.assert_allclose(w.detach().numpy(), w_ref, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(opt.state[w]["exp_avg_sq"].numpy(), v, rtol=1e-10, atol=0)


@pytest.mark.parametrize("kwargs,name", [
    (dict(lr=-1e-3), "lr"),
    (dict(lr=float("nan")), "lr"),
    (dict(lr=torch.tensor([1e-3, -1.0])), "lr"),
    (dict(betas=(1.0, 0.999)), "betas[0]"),
    (dict(betas=(0.9, -0.1)), "betas[1]"),
    (dict(eps=0.0), "eps"),
    (dict(eps=-1e-8), "eps"),
    (dict(weight_decay=-0.1), "weight_decay"),
    (dict(weight_decay=float("nan")), "weight_decay"),
    (dict(impl="cuda_magic"), "impl"),
])
@pytest.mark.parametrize("cls", [adamw_lab.AdamW, adamw_lab.AdamL2, adamw_lab.AdamWProx])
def test_invalid_hyperparameters_name_the_argument(cls, kwargs, name):
    with pytest.raises(ValueError, match=name.replace("[", r"\[").replace("]", r"\]")):
        cls([torch.nn.Parameter(torch.zeros(2, 3))], **kwargs)


@pytest.mark.parametrize("kwargs,name", [(dict(momentum=1.5), "momentum"), (dict(lr=-1.0), "lr"),
                                         (dict(weight_decay=float("nan")), "weight_decay")])
def test_invalid_sgd_hyperparameters(kwargs, name):
    with pytest.raises(ValueError, match=name):
        adamw_lab.SGDW([torch.nn.Parameter(torch.zeros(2))], **kwargs)


@pytest.mark.parametrize("cls", [adamw_lab.AdamW, adamw_lab.AdamL2, adamw_lab.SGDW])
def test_sparse_gradient_is_refused(cls):
    emb = torch.nn.Embedding(10, 3, sparse=True)
    opt = cls(emb.parameters())
    emb(torch.tensor([1, 2])).sum().backward()
    with pytest.raises(RuntimeError, match="sparse"):
        opt.step()


def test_unsupported_flags_are_refused():
    with pytest.raises(ValueError, match="capturable"):
        adamw_lab.AdamW([torch.nn.Parameter(torch.zeros(2))], capturable=True)
    with pytest.raises(ValueError, match="differentiable"):
        adamw_lab.AdamW([torch.nn.Parameter(torch.zeros(2))], differentiable=True)


def test_same_constructor_defaults_as_torch():
    import inspect
    ours = inspect.signature(adamw_lab.AdamW.__init__).parameters
    theirs = inspect.signature(torch.optim.AdamW.__init__).parameters
    for name, param in theirs.items():
        assert name in ours, name
        assert ours[name].default == param.default, name
    assert inspect.signature(adamw_lab.AdamL2.__init__).parameters["amsgrad"].default is False


@pytest.mark.parametrize("name", ["AdamW", "AdamL2"])
@pytest.mark.parametrize("amsgrad", [False, True])
def test_checkpoint_loads_into_either(name, amsgrad):
    """state_dict from adamw_lab loads into torch.optim and the other way round."""
    torch_cls = {"AdamW": torch.optim.AdamW, "AdamL2": torch.optim.Adam}[name]
    kw = dict(lr=1e-2, weight_decay=0.1, amsgrad=amsgrad)
    for first, second in ((getattr(adamw_lab, name), torch_cls), (torch_cls, getattr(adamw_lab, name))):
        a, _, opt_a, _ = train_pair(lambda ps: first(ps, **kw), lambda ps: first(ps, **kw),
                                    SmallNet(torch.float64, "cpu"), steps=5)
        sd = opt_a.state_dict()
        state = sd["state"][0]
        assert state["step"].dtype == torch.float32 and state["step"].dim() == 0
        assert ("max_exp_avg_sq" in state) == amsgrad
        # continue 5 steps with a fresh optimizer of the other kind, and with the original
        import copy
        b = copy.deepcopy(a)
        opt_b = second(b.parameters(), **kw)
        opt_b.load_state_dict(copy.deepcopy(sd))
        x = torch.randn(16, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
        for net, opt in ((a, opt_a), (b, opt_b)):
            for _ in range(5):
                opt.zero_grad()
                net(x).pow(2).mean().backward()
                opt.step()
        for p, q in zip(a.parameters(), b.parameters()):
            torch.testing.assert_close(p, q, rtol=1e-12, atol=1e-12)


def test_closure_and_parameter_groups():
    net = SmallNet(torch.float64, "cpu")
    groups = adamw_lab.param_groups(net, weight_decay=0.3)
    assert [g["weight_decay"] for g in groups] == [0.3, 0.0]
    decayed = {id(p) for p in groups[0]["params"]}
    assert decayed == {id(net.lin.weight), id(net.transposed), id(net.sliced)}
    assert {id(p) for p in groups[1]["params"]} == {id(net.lin.bias), id(net.norm.weight),
                                                     id(net.norm.bias), id(net.unused)}
    opt = adamw_lab.AdamW(groups, lr=0.1)
    x = torch.randn(4, 6, dtype=torch.float64)

    def closure():
        opt.zero_grad()
        loss = net(x).pow(2).mean()
        loss.backward()
        return loss

    assert torch.is_tensor(opt.step(closure))
    # with a zero gradient only the decay acts: matrices shrink by (1 − ηλ) times the Adam
    # step, biases and norm weights move by the Adam step alone
    for p in net.parameters():
        p.grad = torch.zeros_like(p)
    before = {name: p.detach().clone() for name, p in net.named_parameters()}
    opt.step()
    for name, p in net.named_parameters():
        decay = 0.3 if p.ndim > 1 else 0.0
        if name == "unused":
            continue
        expected = (1 - 0.1 * decay) * before[name] - _adam_move(opt, p, 0.1)
        torch.testing.assert_close(p.detach(), expected, rtol=1e-12, atol=1e-12)


def _adam_move(opt, p, lr):
    st = opt.state[p]
    t = float(st["step"])
    return lr / (1 - 0.9**t) * st["exp_avg"] / (st["exp_avg_sq"].sqrt() / math.sqrt(1 - 0.999**t) + 1e-8)


def test_batched_param_groups_skip_the_model_dimension():
    from adamw_lab.book import experiments as E
    model = E.BatchedMLP([0, 1, 2], 5, 4, 3)
    groups = adamw_lab.param_groups(model, 0.1, batched=True)
    assert [id(p) for p in groups[0]["params"]] == [id(model.W1), id(model.W2)]
    assert [id(p) for p in groups[1]["params"]] == [id(model.b1), id(model.b2)]
