"""Every graded question of the exercises (动手实践, ex00–ex09), with its reference answer.

The reference answers come from :mod:`adamw_lab.reference`,
:mod:`adamw_lab.reference_variants` and :mod:`adamw_lab.theory` (NumPy float64;
one definition per formula), from the Part 新进展 helpers in
:mod:`adamw_lab.book.advances`, or, for the BPTT gradient, from
``torch.autograd`` in float64.  This module is the
answer key: the grader imports it in its own process only, never inside a
student's kernel.

Each question tries fixed edge cases first (chosen so that the plausible
mistakes kept in ``tests/grading_mistakes.py`` fail on them by far more than
the tolerance), then fresh random inputs, so an answer typed in by hand cannot
pass either.
"""
from __future__ import annotations

import math

import numpy as np

from adamw_lab import reference as ref
from adamw_lab import theory
from adamw_lab.grading.core import Question

BETAS = (0.9, 0.999)
EPS = 1e-8


def _a(*values):
    return np.array(values, dtype=np.float64)


# --- input helpers -----------------------------------------------------------------------

def _vec(rng, d=None, scale=1.0):
    d = d or int(rng.integers(3, 9))
    return rng.normal(0.0, scale, size=d)


def _away_from_zero(rng, d, low=0.3, high=2.0):
    return rng.uniform(low, high, size=d) * rng.choice([-1.0, 1.0], size=d)


def _lr(rng):
    return float(10 ** rng.uniform(-4, -1.5))


def _wd(rng):
    return float(10 ** rng.uniform(-3, -0.5))


def _state(rng, d):
    """A plausible optimizer state (m, v) after some steps."""
    m = rng.normal(0, 0.1, size=d)
    v = rng.uniform(1e-6, 1e-2, size=d)
    return m, v


# --- reference helpers for multi-step questions --------------------------------------------

def _run(step, w0, grads, lr, weight_decay):
    w = np.array(w0, dtype=np.float64)
    m = np.zeros_like(w)
    v = np.zeros_like(w)
    for t, g in enumerate(grads, start=1):
        w, m, v = step(w, g, m, v, t, lr=lr, weight_decay=weight_decay)
    return w


def _flip(w0, G, before, after, lr, wd):
    steps = int(before) + int(after)
    return tuple(theory.flip_trajectory(step, G, int(before), steps, w0=w0, lr=lr, weight_decay=wd)
                 for step in (ref.adamw_step, ref.adam_l2_step))


def _bptt_reference(W, U, xs, h0):
    import torch

    W_t = torch.tensor(W, dtype=torch.float64, requires_grad=True)
    U_t = torch.tensor(U, dtype=torch.float64, requires_grad=True)
    h = torch.tensor(h0, dtype=torch.float64)
    for x in torch.tensor(xs, dtype=torch.float64):
        h = torch.tanh(W_t @ h + U_t @ x)
    loss = 0.5 * (h**2).sum()
    gW, gU = torch.autograd.grad(loss, (W_t, U_t))
    return gW.numpy(), gU.numpy()


def _logreg_reference(X, y, lr, weight_decay, steps):
    w = np.zeros(X.shape[1])
    m = np.zeros_like(w)
    v = np.zeros_like(w)
    for t in range(1, int(steps) + 1):
        p = 1.0 / (1.0 + np.exp(-(X @ w)))
        g = X.T @ (p - y) / len(y)
        w, m, v = ref.adamw_step(w, g, m, v, t, lr=lr, weight_decay=weight_decay)
    return w


def _fedavg_reference(w_global, centers, lr, weight_decay, local_steps):
    finals = []
    for c in centers:
        w = np.array(w_global, dtype=np.float64)
        m = np.zeros_like(w)
        v = np.zeros_like(w)
        for t in range(1, int(local_steps) + 1):
            w, m, v = ref.adamw_step(w, w - c, m, v, t, lr=lr, weight_decay=weight_decay)
        finals.append(w)
    return np.mean(finals, axis=0)


def _quant_mse(w, bits):
    qmax = 2 ** (int(bits) - 1) - 1
    scale = np.max(np.abs(w)) / qmax
    q = np.clip(np.round(w / scale), -qmax, qmax)
    return float(np.mean((q * scale - w) ** 2))


def _cosine_lrs(lr_max, total):
    t = np.arange(int(total))
    return 0.5 * lr_max * (1 + np.cos(np.pi * t / int(total)))


# A state where ε matters: the first step with gradients of size ~ε, and a large ηλ.
_W3, _G3 = _a(1.0, -2.0, 0.5), _a(1e-6, -1e-6, 0.3)
_Z3 = np.zeros(3)


# --- the questions --------------------------------------------------------------------------

def _ex00():
    def moments_in(rng):
        d = int(rng.integers(3, 9))
        m, v = _state(rng, d)
        return (_vec(rng, d), m, v, float(rng.uniform(0.5, 0.99)), float(rng.uniform(0.9, 0.9999)))

    def bias_in(rng):
        d = int(rng.integers(3, 9))
        m, v = _state(rng, d)
        return (m, v, int(rng.integers(1, 50)), float(rng.uniform(0.5, 0.99)), float(rng.uniform(0.9, 0.9999)))

    def step_in(rng):
        d = int(rng.integers(3, 9))
        m, v = _state(rng, d)
        return (_vec(rng, d), _vec(rng, d), m, v, int(rng.integers(1, 50)), _lr(rng),
                float(rng.uniform(0.5, 0.99)), float(rng.uniform(0.9, 0.9999)),
                float(10 ** rng.uniform(-8, -3)), _wd(rng))

    def step_ref(w, g, m, v, t, lr, b1, b2, eps, wd):
        return ref.adamw_step(w, g, m, v, t, lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd)

    def run_in(rng):
        d, T = int(rng.integers(3, 7)), int(rng.integers(3, 12))
        return (_vec(rng, d), rng.normal(0, 1, size=(T, d)), _lr(rng), _wd(rng))

    return [
        Question("ex00.q1", 2, (3096561,), "update_moments", moments_in,
                 lambda g, m, v, b1, b2: (b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g**2),
                 "一阶矩是梯度的指数移动平均，二阶矩是梯度平方的指数移动平均；两者都只用数据梯度。",
                 float32=True, fixed_inputs=((_a(2.0, -3.0, 0.5), _a(0.1, -0.2, 0.3), _a(0.01, 0.02, 0.03), 0.9, 0.999),)),
        Question("ex00.q2", 1, (3096561,), "bias_correct", bias_in,
                 lambda m, v, t, b1, b2: (m / (1 - b1**t), v / (1 - b2**t)),
                 "偏差修正除以 1 − βᵗ，t 从 1 开始计数。",
                 float32=True, fixed_inputs=((_a(0.1, -0.2), _a(1e-3, 2e-3), 1, 0.9, 0.999),
                                             (_a(0.1, -0.2), _a(1e-3, 2e-3), 3, 0.8, 0.99))),
        Question("ex00.q3", 3, (3096561,), "adamw_step", step_in, step_ref,
                 "先更新矩并做偏差修正，再用 (1 − ηλ)·w 收缩权重，最后减去 η·m̂/(√v̂+ε)；ε 加在开方之后，衰减不进入矩。",
                 float32=True, fixed_inputs=((_W3, _G3, _Z3, _Z3, 1, 0.1, 0.9, 0.999, 1e-6, 0.5),
                                             (_W3, _G3, _a(0.01, -0.01, 0.02), _a(1e-4, 1e-4, 1e-3), 5, 0.1, 0.9, 0.999,
                                              1e-3, 0.5))),
        Question("ex00.q4", 2, (3096561,), "torch_adamw_run", run_in,
                 lambda w0, grads, lr, wd: _run(ref.adamw_step, w0, grads, lr, wd),
                 "用 torch.optim.AdamW(lr=lr, weight_decay=weight_decay)，参数用 torch.float64；每一步先把 grads[t] 赋给 p.grad，再调用 step()。",
                 optimizer_ok=True, fixed_inputs=((_a(1.0, -0.5, 2.0), np.array([[1.0, -1.0, 0.5], [0.2, 0.3, -0.4], [-1.0, 0.0, 1.0]]),
                                0.1, 0.5),)),
    ]


def _ex01():
    def rate_in(rng):
        d = int(rng.integers(3, 9))
        return (rng.uniform(1e-8, 1e-1, size=d) ** 2, _lr(rng), _wd(rng), float(10 ** rng.uniform(-8, -4)))

    def rate_ref(v_hat, lr, wd, eps):
        return (theory.effective_l2_decay(lr, wd, v_hat, eps), np.full_like(v_hat, lr * wd))

    def zero_in(rng):
        d = int(rng.integers(3, 9))
        return (_away_from_zero(rng, d), _lr(rng), _wd(rng), float(10 ** rng.uniform(-8, -4)))

    def sgd_in(rng):
        d = int(rng.integers(3, 9))
        return (_vec(rng, d), _vec(rng, d), _lr(rng), _wd(rng))

    def sgd_ref(w, g, lr, wd):
        z = np.zeros_like(w)
        return (ref.sgd_l2_step(w, g, z, lr=lr, momentum=0.0, weight_decay=wd)[0],
                ref.sgdw_step(w, g, z, lr=lr, momentum=0.0, weight_decay=wd)[0])

    return [
        Question("ex01.q1", 2, (3096561,), "effective_decay_rate", rate_in, rate_ref,
                 "Adam+L2 的衰减项 λw 会被 1/(√v̂+ε) 缩放；AdamW 的衰减与 v̂ 无关。第二个返回值也是数组。",
                 float32=True, atol=0.0, fixed_inputs=((_a(1e-16, 1e-8, 1e-2), 0.1, 0.5, 1e-8),)),
        Question("ex01.q2", 3, (3096560,), "zero_grad_first_step", zero_in,
                 lambda w0, lr, wd, eps: theory.zero_gradient_step(w0, lr, wd, eps),
                 "第 1 步、梯度为零、m₀ = v₀ = 0：AdamW 只剩乘性收缩；Adam+L2 的总梯度是 λw₀，它同时进入 m 和 v。别忘了 ε。",
                 float32=True, fixed_inputs=((_a(1e-3, -2e-3, 0.5), 0.1, 1e-3, 1e-6),)),
        Question("ex01.q3", 1, (3096561,), "sgd_one_step", sgd_in, sgd_ref,
                 "没有动量的 SGD：L2 把 λw 加进梯度；权重衰减先乘以 (1 − ηλ)。两者应当相同。",
                 float32=True, fixed_inputs=((_a(1.0, -2.0, 0.5), _a(0.3, 0.1, -0.2), 0.1, 0.5),)),
    ]


def _ex02():
    def steps_in(rng):
        d = int(rng.integers(2, 9))
        return (_vec(rng, d), rng.uniform(1e-4, 1e-1, size=d) ** 2, _lr(rng), _wd(rng), 1e-8)

    def steps_ref(w, v_hat, lr, wd, eps):
        return (-theory.effective_l2_decay(lr, wd, v_hat, eps) * w, -lr * wd * w)

    def angle_in(rng):
        d = int(rng.integers(2, 9))
        return (_away_from_zero(rng, d), rng.uniform(1e-4, 1e-1, size=d) ** 2, float(10 ** rng.uniform(-8, -4)))

    def angle_ref(w, v_hat, eps):
        p = w / (np.sqrt(v_hat) + eps)
        cos = np.dot(p, w) / (np.linalg.norm(p) * np.linalg.norm(w))
        return math.degrees(math.acos(min(1.0, max(-1.0, cos))))

    def prec_in(rng):
        d = int(rng.integers(2, 9))
        return (rng.uniform(1e-4, 1e-1, size=d) ** 2, _wd(rng), float(10 ** rng.uniform(-8, -4)))

    def logp_in(rng):
        d = int(rng.integers(2, 9))
        return (_vec(rng, d), rng.uniform(0.1, 10.0, size=d))

    def logp_ref(w, tau):
        return float(0.5 * np.sum(np.log(tau / (2 * np.pi))) - 0.5 * np.sum(tau * w**2))

    return [
        Question("ex02.q1", 2, (3096538,), "decay_steps", steps_in, steps_ref,
                 "Adam+L2 的衰减步是 −ηλ·P·w，P = diag(1/(√v̂+ε))；AdamW 的衰减步是 −ηλ·w。",
                 float32=True, atol=0.0, fixed_inputs=((_a(1.0, -2.0, 0.5), _a(1e-16, 1e-4, 4.0), 0.1, 0.5, 1e-8),)),
        Question("ex02.q2", 2, (3096538,), "shrink_angle_deg", angle_in, angle_ref,
                 "比较向量 P·w 与 w 的方向：用点积除以两个范数得到余弦，再换算成角度（度）。",
                 atol=1e-5, fixed_inputs=((_a(1.0, 1.0), _a(1e-2, 1e-6), 1e-8), (_a(1.0, -2.0, 0.5), _a(0.04, 0.04, 0.04), 1e-8),
                                          (_a(1.0, 1.0, 1.0), _a(1e-2, 1e-4, 0.25), 1e-8))),
        Question("ex02.q3", 2, (3096524,), "effective_prior_precision", prec_in,
                 lambda v_hat, wd, eps: theory.effective_prior_precision(wd, v_hat, eps),
                 "在 AdamW 的不动点处令整步更新为零，并用 m̂ ≈ ∇J；把结果写成 ∇J + τ ⊙ w = 0，τᵢ 就是有效先验精度。",
                 float32=True, atol=0.0, fixed_inputs=((_a(1e-16, 1e-4, 1.0), 0.5, 1e-8),)),
        Question("ex02.q4", 2, (3096524,), "gaussian_log_prior", logp_in, logp_ref,
                 "对角高斯 N(0, diag(1/τ)) 的对数密度：每一维 ½·log(τᵢ/2π) − ½·τᵢwᵢ²，再求和。",
                 float32=True, fixed_inputs=((_a(1.0, -2.0, 0.5), _a(0.5, 4.0, 2.0)),)),
    ]


def _ex03():
    def traj_in(rng):
        return (_vec(rng), _lr(rng), _wd(rng), int(rng.integers(5, 40)))

    def traj_ref(w0, lr, wd, steps):
        return np.array([theory.ema_weight(lr, wd, t) * w0 for t in range(int(steps) + 1)])

    def half_in(rng):
        return (_lr(rng), _wd(rng))

    def half_ref(lr, wd):
        return (theory.half_life_exact(lr, wd), theory.half_life_approx(lr, wd))

    def prox_in(rng):
        return (_vec(rng), float(10 ** rng.uniform(-3, -0.5)), float(10 ** rng.uniform(-2, 0)))

    def prox_ref(w_tilde, lr, wd):
        return (w_tilde / (1 + lr * wd), (1 - lr * wd) * w_tilde)

    def pstep_in(rng):
        d = int(rng.integers(3, 9))
        m, v = _state(rng, d)
        return (_vec(rng, d), _vec(rng, d), m, v, int(rng.integers(1, 50)), _lr(rng), _wd(rng))

    def pstep_ref(w, g, m, v, t, lr, wd):
        return ref.adamw_prox_step(w, g, m, v, t, lr=lr, weight_decay=wd)

    return [
        Question("ex03.q1", 2, (3096571, 3096560), "decay_trajectory", traj_in, traj_ref,
                 "梯度为零时 AdamW 只做乘性收缩，wₜ = (1 − ηλ)ᵗ·w₀；返回包括 w₀ 在内的 steps + 1 行。",
                 float32=True, fixed_inputs=((_a(1.0, -2.0, 0.5), 0.1, 1.0, 20),)),
        Question("ex03.q2", 2, (3096575,), "half_life", half_in, half_ref,
                 "解 (1 − ηλ)ᵗ = ½ 得到精确值；近似值用 ln(1 − x) ≈ −x。返回 (精确值, 近似值)。",
                 rtol=1e-8, atol=0.0, fixed_inputs=((0.1, 1.0), (0.05, 2.0))),
        Question("ex03.q3", 2, (3096562,), "prox_vs_linear", prox_in, prox_ref,
                 "L2 罚项 (λ/2)‖w‖² 的近端算子（步长 η）是 w̃/(1 + ηλ)；AdamW 用的是它的一阶近似。",
                 float32=True, atol=0.0, fixed_inputs=((_a(1.0, -2.0, 0.5), 0.1, 1.0),)),
        Question("ex03.q4", 2, (3096562,), "adamw_prox_step", pstep_in, pstep_ref,
                 "先走 Adam 的自适应步得到 w̃，再对 w̃ 用精确的近端算子 w̃/(1 + ηλ)，而不是 (1 − ηλ)；β 与 ε 用 PyTorch 默认值。",
                 float32=True, fixed_inputs=((_W3, _G3, _Z3, _Z3, 1, 0.1, 1.0),
                                             (_W3, _G3, _a(0.01, -0.01, 0.02), _a(1e-4, 1e-4, 1e-3), 5, 0.1, 1.0))),
    ]


def _ex04():
    def crit_in(rng):
        d = int(rng.integers(3, 9))
        m, v = _state(rng, d)
        return (_away_from_zero(rng, d), m, v, int(rng.integers(2, 50)),
                float(rng.uniform(0.5, 0.99)), float(rng.uniform(0.9, 0.9999)), float(10 ** rng.uniform(-8, -4)))

    def crit_ref(w, m_prev, v_prev, t, b1, b2, eps):
        return theory.critical_weight_decay(w, m_prev, v_prev, t, betas=(b1, b2), eps=eps)

    def share_in(rng):
        d = int(rng.integers(3, 9))
        return (_away_from_zero(rng, d), rng.normal(0, 0.01, size=d), rng.uniform(1e-6, 1e-2, size=d) ** 2,
                _lr(rng), _wd(rng), float(10 ** rng.uniform(-8, -1)))

    def share_ref(w, m_hat, v_hat, lr, wd, eps):
        return theory.decay_share(w, m_hat, v_hat, wd, eps)

    def flip_in(rng):
        return (float(rng.uniform(0.2, 2.0)), float(rng.uniform(0.1, 2.0)), int(rng.integers(3, 30)),
                int(rng.integers(3, 30)), float(10 ** rng.uniform(-3, -1.5)), float(10 ** rng.uniform(-2, 0)))

    def over_ref(w0, G, before, after, lr, wd):
        return tuple(float(theory.overshoot_steps(traj, int(before))) for traj in _flip(w0, G, before, after, lr, wd))

    flips = ((1.0, 1.0, 20, 30, 1e-2, 0.5), (2.0, 0.5, 10, 25, 3e-2, 1.0))
    return [
        Question("ex04.q1", 3, (3096531,), "critical_weight_decay", crit_in, crit_ref,
                 "当前梯度为零时，矩照常衰减并做偏差修正（第 t 步）；令整步更新 −ηλw − η·m̂/(√v̂+ε) 为零解出 λ，η 会约掉。",
                 float32=True, fixed_inputs=((_a(1.0, -2.0, 0.5), _a(0.1, 0.05, -0.02), _a(1e-16, 1e-4, 1e-2), 2, 0.9, 0.999, 1e-8),)),
        Question("ex04.q2", 2, (3096574,), "decay_share", share_in, share_ref,
                 "衰减步的大小 |ηλw| 与 ε 无关，自适应步的大小是 η|m̂|/(√v̂+ε)（ε 加在开方之后）；占比 = 衰减 / (衰减 + 自适应)。",
                 float32=True, fixed_inputs=((_a(1.0, -1.0, 0.5), _a(1e-4, 1e-4, -1e-3), _a(1e-8, 1e-12, 1e-8), 0.1, 1e-2, 1e-4),)),
        Question("ex04.q3", 3, (3096513,), "gradient_flip", flip_in, _flip,
                 "前 steps_before 步梯度为 +G，之后为 −G；两种规则都从 m = v = 0、t = 1 开始，轨迹包括 w₀。Adam+L2 的梯度要加上 λw。",
                 fixed_inputs=flips),
        Question("ex04.q4", 2, (3096513,), "overshoot_steps", flip_in, over_ref,
                 "从梯度反转后的第一步开始数：w 连续减小（沿旧方向走）了几步，遇到第一次不再减小就停。两种规则各返回一个整数。",
                 rtol=0.0, atol=0.0, fixed_inputs=flips),
    ]


def _ex05():
    def masked_in(rng):
        d, T = int(rng.integers(4, 9)), int(rng.integers(10, 40))
        grads = rng.normal(0, 1, size=(T, d))
        grads[:, rng.random(d) < 0.5] = 0.0
        grads[:, 0] = 0.0
        return (_away_from_zero(rng, d), grads, float(10 ** rng.uniform(-3, -1.5)), float(10 ** rng.uniform(-2, 0)))

    def masked_ref(w0, grads, lr, wd):
        return (_run(ref.adamw_step, w0, grads, lr, wd), _run(ref.adam_l2_step, w0, grads, lr, wd))

    def sparse_in(rng):
        d, T = int(rng.integers(4, 9)), int(rng.integers(10, 40))
        p = rng.uniform(0.05, 1.0, size=d)
        grads = rng.normal(0, 1, size=(T, d)) * (rng.random((T, d)) < p)
        return (_away_from_zero(rng, d), grads, float(10 ** rng.uniform(-3, -1.5)), float(10 ** rng.uniform(-2, 0)))

    def sparse_ref(w0, grads, lr, wd):
        return tuple(np.abs(w) / np.abs(w0) for w in masked_ref(w0, grads, lr, wd))

    def bptt_in(rng):
        n, k, T = int(rng.integers(2, 5)), int(rng.integers(1, 4)), int(rng.integers(2, 8))
        return (rng.normal(0, 0.5, size=(n, n)), rng.normal(0, 0.5, size=(n, k)),
                rng.normal(0, 1, size=(T, k)), rng.normal(0, 0.5, size=n))

    grads = np.array([[0.0, 1.0, -0.5, 0.0], [0.0, -0.3, 0.8, 0.0], [0.0, 0.5, 0.1, 0.2], [0.0, 0.2, -0.2, 0.0]] * 3)
    W_fix = np.array([[0.5, -0.8, 0.1], [0.3, 0.2, -0.6], [-0.4, 0.7, 0.3]])
    U_fix = np.array([[1.0, -0.5], [0.2, 0.8], [-0.7, 0.4]])
    xs_fix = np.array([[1.0, -1.0], [0.5, 2.0], [-1.5, 0.3], [0.8, 0.8], [-0.2, 1.1]])
    return [
        Question("ex05.q1", 3, (3096558,), "vanishing_gradient_runs", masked_in, masked_ref,
                 "对每个规则从 m = v = 0、t = 1 开始逐步更新；梯度恒为零的坐标在 AdamW 下只被乘性收缩，Adam+L2 要把 λw 加进梯度。返回 (AdamW 终点, Adam+L2 终点)。",
                 fixed_inputs=((_a(1.0, -2.0, 0.5, 1.5), grads, 3e-2, 1.0),)),
        Question("ex05.q2", 2, (3161372,), "sparse_shrink_ratio", sparse_in, sparse_ref,
                 "和 ex05.q1 同样的两次运行，但返回每个坐标的 |w_T| / |w₀|（先取绝对值，再相除）。",
                 fixed_inputs=((_a(0.05, -2.0, 0.5, 0.07), grads, 3e-2, 1.0),)),
        Question("ex05.q3", 3, (3096487,), "rnn_bptt_grad", bptt_in, _bptt_reference,
                 "沿时间反向传播：从 ∂L/∂h_T = h_T 开始，每一步乘以 tanh 的导数 1 − h²，对 W 和 U 的梯度逐步累加，再乘以 Wᵀ 传回上一步。",
                 float32=True, autograd_ok=False, fixed_inputs=((W_fix, U_fix, xs_fix, _a(0.3, -0.2, 0.5)),)),
    ]


def _ex06():
    def logreg_in(rng):
        n, d = int(rng.integers(20, 60)), int(rng.integers(2, 6))
        X = rng.normal(0, 1, size=(n, d))
        y = (X @ rng.normal(0, 1, size=d) + rng.normal(0, 0.5, size=n) > 0).astype(float)
        return (X, y, float(10 ** rng.uniform(-2.5, -1)), float(10 ** rng.uniform(-2, 0)), int(rng.integers(5, 40)))

    def metrics_in(rng):
        n = int(rng.integers(30, 80))
        y = (rng.random(n) < 0.2).astype(float)
        y[:2] = [0.0, 1.0]
        pred = np.where(rng.random(n) < 0.7, y, 1 - y)
        return (y, pred)

    def metrics_ref(y, pred):
        acc = float(np.mean(y == pred))
        rec1 = float(np.mean(pred[y == 1] == 1))
        rec0 = float(np.mean(pred[y == 0] == 0))
        return (acc, rec1, 0.5 * (rec0 + rec1))

    def margin_in(rng):
        n, d = int(rng.integers(10, 40)), int(rng.integers(2, 6))
        return (_away_from_zero(rng, d), float(rng.normal()), rng.normal(0, 1, size=(n, d)),
                rng.choice([-1.0, 1.0], size=n))

    def robust_in(rng):
        return margin_in(rng) + (float(rng.uniform(0.01, 0.3)),)

    X_fix = np.array([[1.0, 0.5, -0.2], [-0.5, 1.0, 0.3], [0.2, -1.0, 1.0], [1.5, 0.2, 0.1], [-1.0, -0.5, 0.4], [0.3, 0.3, -1.2]])
    y_fix = _a(1.0, 0.0, 1.0, 1.0, 0.0, 0.0)
    w_m, X_m, y_m = _a(1.0, -2.0), np.array([[0.5, 0.0], [1.0, 1.0], [-1.0, 0.5], [2.0, -1.0]]), _a(1.0, -1.0, 1.0, 1.0)
    return [
        Question("ex06.q1", 3, (3096579,), "train_logreg_adamw", logreg_in, _logreg_reference,
                 "平均交叉熵的梯度是 Xᵀ(σ(Xw) − y)/n；w 从零开始，每步调用一次 AdamW 更新（t 从 1 开始，β、ε 用默认值）。用 float64。",
                 fixed_inputs=((X_fix, y_fix, 0.1, 1.0, 15),)),
        Question("ex06.q2", 2, (3096556,), "class_metrics", metrics_in, metrics_ref,
                 "少数类是标签 1；召回率 = 该类中被预测对的比例；平衡准确率是两类召回率的平均。",
                 float32=True, fixed_inputs=((_a(0, 0, 0, 0, 0, 0, 1, 1), _a(0, 0, 0, 1, 1, 0, 1, 0)),)),
        Question("ex06.q3", 2, (3096527,), "geometric_margin", margin_in,
                 lambda w, b, X, y: float(np.min(y * (X @ w + b)) / np.linalg.norm(w)),
                 "几何间隔是 yᵢ(w·xᵢ + b) 的最小值除以 ‖w‖₂（可以为负：有样本被分错）。",
                 float32=True, fixed_inputs=((w_m, 0.5, X_m, y_m), (w_m, 4.0, X_m, _a(1.0, 1.0, 1.0, 1.0)))),
        Question("ex06.q4", 2, (3096527,), "robust_accuracy", robust_in,
                 lambda w, b, X, y, eps: float(np.mean(y * (X @ w + b) - eps * np.sum(np.abs(w)) > 0)),
                 "L∞ 半径 ε 内最坏的扰动是 −ε·y·sign(w)，它让 y(w·x + b) 减少 ε‖w‖₁；恰好为 0 的样本不算分对。",
                 float32=True, fixed_inputs=((_a(1.0, -1.0), 0.0, np.array([[0.5, 0.0], [1.0, -1.0], [0.0, 0.6], [2.0, 0.0]]),
                                              _a(1.0, 1.0, -1.0, 1.0), 0.25),)),
    ]


def _ex07():
    def warm_in(rng):
        return (float(10 ** rng.uniform(-4, -2)), float(10 ** rng.uniform(-2, 0)), int(rng.integers(10, 2000)))

    def warm_ref(lr_peak, wd, warmup):
        t = np.arange(1, int(warmup) + 1)
        return float(np.prod(1 - lr_peak * t / int(warmup) * wd))

    def cos_in(rng):
        return (float(10 ** rng.uniform(-4, -2)), float(10 ** rng.uniform(-2, 0)), int(rng.integers(10, 5000)))

    def cos_ref(lr_max, wd, total):
        return (float(np.prod(1 - _cosine_lrs(lr_max, total) * wd)), float((1 - lr_max * wd) ** int(total)))

    def fed_in(rng):
        d, K = int(rng.integers(2, 6)), int(rng.integers(2, 6))
        return (_vec(rng, d), rng.normal(0, 2, size=(K, d)), float(10 ** rng.uniform(-2.5, -1)),
                float(10 ** rng.uniform(-2, 0)), int(rng.integers(2, 10)))

    def quant_in(rng):
        return (rng.normal(0, float(rng.uniform(0.1, 2)), size=int(rng.integers(20, 200))), int(rng.integers(2, 9)))

    return [
        Question("ex07.q1", 2, (3096511,), "warmup_shrink", warm_in, warm_ref,
                 "线性预热第 t 步（t = 1…warmup_steps）的学习率是 ηₜ = η·t/warmup_steps（η 是峰值学习率 lr_peak）；梯度为零时每步乘以 (1 − ηₜλ)，把这些因子连乘。",
                 fixed_inputs=((0.1, 1.0, 10), (0.05, 0.5, 4))),
        Question("ex07.q2", 2, (3096515,), "cosine_decay_factor", cos_in, cos_ref,
                 "余弦退火的调度乘数是 sₜ = ½(1 + cos(πt/T))，t = 0…T−1（注意分母是 T），学习率 ηₜ = η·sₜ（η 是 lr_max）；把每步的 (1 − ηₜλ) 连乘。第二个值用恒定学习率 η。",
                 fixed_inputs=((0.1, 1.0, 10), (0.2, 0.5, 4))),
        Question("ex07.q3", 3, (3096479,), "fedavg_round", fed_in, _fedavg_reference,
                 "每个客户端的损失是 ½‖w − c_k‖²（梯度 w − c_k）；从全局权重出发、用全新的 AdamW 状态走 local_steps 步，最后对客户端结果取平均。",
                 fixed_inputs=((_a(0.5, -1.0), np.array([[2.0, 1.0], [-1.0, 3.0], [0.0, -2.0]]), 0.1, 0.5, 5),)),
        Question("ex07.q4", 2, (3096537,), "quantization_mse", quant_in, _quant_mse,
                 "对称逐张量量化：scale = max|w| / (2^(bits−1) − 1)，四舍五入到整数并截断到 ±(2^(bits−1) − 1)，再乘回 scale；返回均方误差（不开方）。",
                 float32=True, atol=0.0, fixed_inputs=((_a(0.9, -0.35, 0.1, 0.52, -1.0, 0.27), 3),)),
    ]


# --- Part IV (新进展): no source problem ids (the source stops at Loshchilov & Hutter) ---------

def _train_box(X, y, lr, weight_decay, steps):
    from adamw_lab.book import advances

    T = int(steps)
    w, _ = advances.run_full_batch(X, y, lr=lr, weight_decay=weight_decay, steps=T,
                                   schedule=lambda t: 0.5 * (1 + math.cos(math.pi * t / T)))
    return w, float(np.max(np.abs(w)) - 1.0 / weight_decay)


def _box_kkt(w, grad, weight_decay):
    from adamw_lab.reference_variants import box_projection

    return float(np.max(np.abs(w - box_projection(w - grad, 1.0 / weight_decay))))


def _warmup_cosine(rng, steps):
    """A warm-up + cosine schedule (random peak and warm-up length) and its peak."""
    from adamw_lab.reference_variants import warmup_cosine_lrs

    peak = float(10 ** rng.uniform(-3, -1))
    warm = int(rng.integers(1, max(2, steps // 4)))
    return warmup_cosine_lrs(peak, steps, warm), peak


def _norms(n0, lrs, max_lr, weight_decay, n_elements):
    from adamw_lab.reference_variants import norm_recurrence

    # λ_t, the decay that multiplies η_t: λ (standard) and λ·η_t/η_max (corrected, chapter 04)
    per_step = (np.full_like(lrs, weight_decay), weight_decay * lrs / max_lr)
    return tuple(norm_recurrence(n0, lrs, 1 - lrs * wd_t, n_elements)[1:] for wd_t in per_step)


def _ex08():
    def tau_in(rng):
        return (_lr(rng), float(10 ** rng.uniform(-3, 0)), int(rng.integers(100, 100_000)), int(rng.integers(8, 512)))

    def tau_ref(lr, wd, n, batch):
        tau_iter = 1.0 / (lr * wd)
        return (tau_iter, tau_iter / (n / batch))

    def transfer_in(rng):
        return (float(10 ** rng.uniform(-3, 0)), _lr(rng), int(rng.integers(100, 100_000)), int(rng.integers(8, 512)),
                _lr(rng), int(rng.integers(100, 100_000)), int(rng.integers(8, 512)))

    def transfer_ref(wd, lr, n, batch, lr_new, n_new, batch_new):
        return wd * (lr / lr_new) * (n / n_new) * (batch_new / batch)

    def kkt_in(rng):
        d = int(rng.integers(3, 9))
        wd = float(10 ** rng.uniform(-0.5, 0.5))
        r = 1.0 / wd
        w = rng.uniform(-r, r, size=d)
        face = rng.random(d) < 0.5
        w[face] = r * rng.choice([-1.0, 1.0], size=int(face.sum()))
        return (w, rng.normal(0, 0.5, size=d), wd)

    def train_in(rng):
        n, d = int(rng.integers(20, 60)), int(rng.integers(2, 6))
        X = rng.normal(0, 1, size=(n, d))
        p = 1 / (1 + np.exp(-X @ (3 * rng.normal(0, 1, size=d))))
        y = np.where(rng.random(n) < p, 1.0, -1.0)
        return (X, y, float(10 ** rng.uniform(-1.5, -0.7)), float(10 ** rng.uniform(-0.3, 0.5)), int(rng.integers(20, 80)))

    X_fix = np.array([[1.0, 0.5, -0.2], [-0.5, 1.0, 0.3], [0.2, -1.0, 1.0], [1.5, 0.2, 0.1], [-1.0, -0.5, 0.4],
                      [0.3, 0.3, -1.2], [0.8, -0.3, 0.6], [-0.7, 0.9, -0.5]])
    y_fix = _a(1.0, -1.0, 1.0, 1.0, -1.0, -1.0, 1.0, 1.0)
    return [
        Question("ex08.q1", 2, (), "timescale", tau_in, tau_ref,
                 "AdamW 的衰减每步乘以 (1 − ηλ)，所以时间尺度是 1/(ηλ) 步，学习率不能漏；一轮有 N/B 步，以轮计的时间尺度要除以它。",
                 float32=True, fixed_inputs=((0.01, 0.1, 1000, 50), (0.1, 0.5, 300, 100))),
        Question("ex08.q2", 2, (), "transfer_weight_decay", transfer_in, transfer_ref,
                 "让以轮计的时间尺度 B/(ηλN) 在新旧两种设置下相等，解出新的 λ：数据多了 λ 要变小，学习率和批量也都在式子里。",
                 float32=True, fixed_inputs=((0.1, 1e-3, 1000, 32, 2e-3, 4000, 128),)),
        Question("ex08.q3", 2, (), "box_kkt_residual", kkt_in, _box_kkt,
                 "盒子的半径是 1/λ（不是 λ）；先从 w 沿负梯度走一步 w − ∇L，再逐坐标截断回盒子，残差是它与 w 之差的最大绝对值（ℓ∞ 范数）。",
                 float32=True, fixed_inputs=((_a(0.5, -0.5, 0.1, 0.5), _a(-0.5, 0.3, 0.05, 0.2), 2.0),)),
        Question("ex08.q4", 3, (), "train_adamw_box", train_in, _train_box,
                 "标签是 ±1，平均逻辑损失 log(1 + exp(−y·x·w)) 的梯度是 −mean(y·σ(−y·x·w)·x)；w 从零开始，第 t 步（t = 1…T）的学习率是 η·½(1 + cos(πt/T))，衰减也乘这个学习率；最后比较 ‖w_T‖∞ 与 1/λ。用 float64。",
                 fixed_inputs=((X_fix, y_fix, 0.1, 2.0, 40),)),
    ]


def _ex09():
    def eq_in(rng):
        return (_lr(rng), _wd(rng), int(rng.integers(16, 10_000)), float(rng.uniform(0.3, 1.5)), float(rng.uniform(0.5, 0.99)))

    def eq_ref(lr, wd, n, rho, beta1):
        from adamw_lab.book import advances

        return (float(advances.equilibrium_norm(lr, wd, rho**2 * n)), float(advances.equilibrium_angle(lr, wd, beta1)))

    def factors_in(rng):
        lrs, peak = _warmup_cosine(rng, int(rng.integers(10, 200)))
        return (lrs, peak, float(10 ** rng.uniform(-1, 1)))

    def factors_ref(lrs, max_lr, wd):
        from adamw_lab.reference_variants import scheduled_decay_factor

        return tuple(scheduled_decay_factor(decay, lrs, max_lr, wd) for decay in ("standard", "corrected"))

    def norms_in(rng):
        lrs, peak = _warmup_cosine(rng, int(rng.integers(20, 300)))
        return (float(rng.uniform(0.5, 20)), lrs, peak, float(10 ** rng.uniform(-1, 1)), int(rng.integers(16, 5000)))

    def cautious_in(rng):
        d = int(rng.integers(3, 9))
        m, v = _state(rng, d)
        return (_vec(rng, d), _vec(rng, d, 0.1), m, v, int(rng.integers(1, 50)), _lr(rng), _wd(rng))

    def cautious_ref(w, g, m, v, t, lr, wd):
        from adamw_lab.reference_variants import cautious_adamw_step

        return cautious_adamw_step(w, g, m, v, t, lr=lr, weight_decay=wd)

    sched = np.array([0.02, 0.04, 0.06, 0.08, 0.1, 0.09, 0.065, 0.035, 0.01, 0.0])
    # Coordinates: agree; momentum against g (u < 0, w < 0); momentum against g (u > 0, w > 0);
    # u exactly 0 (g = m = 0); w = 0; disagree; old momentum of the other sign.
    w_c, g_c = _a(1.0, -2.0, 0.5, 0.8, 0.0, 1.0, 0.6), _a(0.3, 0.5, -0.2, 0.0, 0.4, -0.5, 0.5)
    m_c, v_c = _a(0.0, -0.5, 0.1, 0.0, 0.0, 0.0, -0.01), _a(1e-3, 1e-2, 1e-3, 1e-4, 1e-3, 1e-3, 1e-3)
    return [
        Question("ex09.q1", 2, (), "equilibrium", eq_in, eq_ref,
                 "平衡时每步更新给 ‖w‖² 加上 η²ρ²C，衰减拿走 2ηλ‖w‖²，令两者相等（范数要开方）；转角是 η‖u‖/‖w‖，动量让 ‖u‖² 只剩 ρ²C·(1 − β₁)/(1 + β₁)。角度用弧度。",
                 float32=True, fixed_inputs=((0.01, 0.1, 100, 1.0, 0.9), (1e-3, 0.5, 64, 0.5, 0.5))),
        Question("ex09.q2", 2, (), "decay_factors", factors_in, factors_ref,
                 "标准 AdamW 每步乘以 1 − η_tλ；修正衰减把 λ 换成 λ_t = λ·η_t/η_max，所以每步乘以 1 − η_t·λ_t，它正比于 η_t²，不是 η_t。η_max 是调度的峰值。",
                 float32=True, fixed_inputs=((sched, 0.1, 2.0),)),
        Question("ex09.q3", 3, (), "norm_trajectories", norms_in, _norms,
                 "每步先乘以当步的收缩因子（平方后作用在 ‖w‖² 上），再加上 η_t²C；返回每一步之后的范数（不含 n₀），两种衰减各一条。",
                 float32=True, fixed_inputs=((5.0, sched, 0.1, 2.0, 100),)),
        Question("ex09.q4", 3, (), "cautious_adamw_step", cautious_in, cautious_ref,
                 "先照常更新矩、做偏差修正得到 u = m̂/(√v̂+ε)；掩码看的是 u 与 w 是否严格同号（u·w > 0，等于 0 不算），不是梯度 g 的符号；衰减项用这一步开始时的 w。",
                 float32=True, fixed_inputs=((w_c, g_c, m_c, v_c, 3, 0.1, 1.0),)),
    ]


QUESTIONS: dict[str, Question] = {q.id: q for make in (_ex00, _ex01, _ex02, _ex03, _ex04, _ex05, _ex06, _ex07, _ex08, _ex09)
                                  for q in make()}
EXERCISES: dict[str, list[Question]] = {}
for _q in QUESTIONS.values():
    EXERCISES.setdefault(_q.exercise, []).append(_q)
