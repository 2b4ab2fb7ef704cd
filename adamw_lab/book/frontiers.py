"""Experiments of the chapter 前沿 (frontiers): fine-tuning, schedules, FedAvg, quantization.

Everything trains *M models at once* like :mod:`adamw_lab.book.experiments`
(every parameter has a leading model dimension M).  The one training loop
here, :func:`fit`, writes the weight decay out by hand so that the two
places where it can enter an Adam update are visible:

* ``"adam_l2"``: added to the gradient, ``g <- g + lam * (w - a)``, before
  Adam's moments and normalisation;
* ``"adamw"``: applied to the weights, ``w <- w - lr_t * lam * c_t * (w - a)``,
  next to the Adam step (PyTorch convention: the decay is multiplied by the
  learning rate).

``a`` is the *anchor* the decay pulls towards (zero by default, the
pretrained weights for "decay towards the pretrained point") and ``c_t`` a
decay schedule.  With the defaults (``a = 0``, ``c_t`` = the learning-rate
schedule) ``"adamw"`` is exactly ``adamw_lab.AdamW`` and ``"adam_l2"`` is
``adamw_lab.AdamL2`` (``tests/test_frontiers.py`` checks both).
"""
from __future__ import annotations

import copy
import math

import numpy as np
import torch

from adamw_lab.book import experiments as E
from adamw_lab.functional import _shaped

__all__ = [
    "fit", "copy_layers", "relative_norm", "relative_distance", "shrink_factor", "warmup_shrink", "warmup_shrink_approx", "label_skew_split",
    "fedavg", "weight_stats", "quantize_model", "predicted_quant_error", "quant_stats", "choose_on_validation",
]


# ----------------------------------------------------------------- training
def fit(model, method, lr, weight_decay, X, y, steps, schedule=None, decay_schedule=None,
        anchor=None, record_every=0, callback=None, batch_size=0, data_seeds=None, decay_biases=True):
    """Train a batched ``model`` with Adam and an explicit weight decay.

    ``method``: ``"adam"`` (no decay), ``"adam_l2"`` or ``"adamw"``.
    ``lr``, ``weight_decay``: floats or [M] tensors.
    ``schedule(t)``: learning-rate multiplier s_t (``t = 0..steps-1``), default 1.
    ``decay_schedule(t)``: multiplier c_t of the decay.  For ``"adamw"`` the
    weights shrink by ``lr * c_t * weight_decay`` per step and the default is
    c_t = s_t (PyTorch: the decay follows the learning rate); pass
    ``lambda t: 1.0`` for a decay that ignores the schedule.  For
    ``"adam_l2"`` c_t multiplies the L2 coefficient (default 1).
    ``anchor``: dict ``name -> tensor`` the decay pulls towards (missing names: 0).
    ``callback(model, t)`` is called at step 0 (before training) and every
    ``record_every`` steps after; the returned list holds its values.

    Full-batch unless ``batch_size`` > 0; then model k draws its minibatches
    with its own seed ``data_seeds[k]`` (:func:`adamw_lab.book.experiments.data_order`,
    paired across methods).  ``X`` is [N, D] (shared) or [M, N, D] (one data
    set per model, e.g. FedAvg clients).  ``decay_biases=False`` decays only
    what ``adamw_lab.param_groups`` decays (no decay on biases), and with the
    defaults the result equals ``adamw_lab.AdamW`` / ``AdamL2`` trained by
    :func:`adamw_lab.book.experiments.train` with the same arguments.
    """
    if method not in E.METHODS:
        raise ValueError(f"unknown method {method!r}; use one of {E.METHODS}")
    schedule = schedule or (lambda t: 1.0)
    if decay_schedule is None:
        decay_schedule = schedule if method == "adamw" else (lambda t: 1.0)
    named = list(model.named_parameters())
    if decay_biases:
        decayed = {n for n, _ in named}
    else:
        import adamw_lab

        groups = adamw_lab.param_groups(model, 1.0, batched=True)
        ids = {id(p) for g in groups if g["weight_decay"] for p in g["params"]}
        decayed = {n for n, p in named if id(p) in ids}
    anchor = anchor or {}
    if batch_size:
        if data_seeds is None:
            raise ValueError("minibatch training needs data_seeds (one seed per model) so that runs are paired")
        order = E.data_order(data_seeds, y.shape[-1], batch_size, steps)      # [steps, M, B]
        rows = torch.arange(len(data_seeds), device=y.device)[:, None]
    opt = E.make_optimizer("adam", [p for _, p in named], lr, 0.0)  # plain Adam; decay below
    record = [callback(model, 0)] if callback and record_every else []
    for t in range(steps):
        s_t, c_t = schedule(t), decay_schedule(t)
        E.set_lr(opt, lr * s_t)
        if batch_size:
            idx = order[t].to(y.device)
            xb = X[idx] if X.dim() == 2 else X[rows, idx]
            yb = y[idx] if y.dim() == 1 else y[rows, idx]
        else:
            xb, yb = X, y
        opt.zero_grad(set_to_none=True)
        E.batched_cross_entropy(model(xb), yb).sum().backward()
        with torch.no_grad():
            for name, p in named:
                if method == "adam":
                    break
                if name not in decayed:
                    continue
                lam = _shaped(weight_decay, p) * c_t
                pull = p - anchor[name] if name in anchor else p
                if method == "adam_l2":
                    p.grad.add_(lam * pull)                       # coupled: through m, v
                else:
                    p.sub_(_shaped(lr, p) * lam * pull)           # decoupled: next to Adam
        opt.step()
        if callback and record_every and (t + 1) % record_every == 0:
            with torch.no_grad():
                record.append(callback(model, t + 1))
    return record


# ----------------------------------------------------------------- fine-tuning
@torch.no_grad()
def copy_layers(dst, src, names, index=None):
    """Copy parameters ``names`` from batched model ``src`` into ``dst``.

    ``index`` ([M_dst] long tensor) picks, for every model of ``dst``, the
    model of ``src`` to copy from (default: the same position).
    """
    for n in names:
        s = getattr(src, n)
        getattr(dst, n).copy_(s if index is None else s[index])


def _flat(model, names):
    return torch.cat([getattr(model, n).detach().flatten(1) for n in names], 1)


def relative_norm(model, ref, names=("W1",)):
    """Per-model ``||w|| / ||w_ref||`` over ``names`` (``ref``: dict name -> tensor)."""
    r = torch.cat([ref[n].flatten(1) for n in names], 1)
    return _flat(model, names).norm(dim=1) / r.norm(dim=1)


def relative_distance(model, ref, names=("W1",)):
    """Per-model ``||w - w_ref|| / ||w_ref||`` over ``names`` (``ref``: dict name -> tensor)."""
    w = _flat(model, names)
    r = torch.cat([ref[n].flatten(1) for n in names], 1)
    return (w - r).norm(dim=1) / r.norm(dim=1)


# ----------------------------------------------------------------- schedules
def shrink_factor(lr, weight_decay, steps, schedule=None, decay_schedule=None):
    """Cumulative decoupled shrink ``prod_{k<t} (1 - lr * c_k * weight_decay)``, t = 0..steps.

    This is what AdamW's decay alone does to a weight whose gradient is zero.
    ``decay_schedule`` defaults to ``schedule`` (PyTorch), which defaults to 1.
    Returns a float64 NumPy array of length ``steps + 1`` starting at 1.
    """
    schedule = schedule or (lambda t: 1.0)
    decay_schedule = decay_schedule or schedule
    c = np.array([decay_schedule(t) for t in range(steps)], dtype=np.float64)
    return np.concatenate([[1.0], np.cumprod(1.0 - lr * weight_decay * c)])


def warmup_shrink(lr, weight_decay, steps, warmup, at=None, follow=True):
    """Decay-only shrink of a zero-gradient weight under linear warm-up + cosine annealing.

    ``prod_{k<at} (1 - lr * s_k * weight_decay)`` with s_k =
    :func:`adamw_lab.book.experiments.warmup_cosine` ``(steps, warmup)``;
    ``at`` defaults to the end of the warm-up (``at = warmup``).  With
    ``follow=False`` the decay ignores the schedule: ``(1 - lr * weight_decay) ** at``.
    One number, for the explorer's readouts and the chapter's prose.
    """
    at = int(warmup if at is None else at)
    sched = E.warmup_cosine(int(steps), int(warmup))
    dsched = None if follow else (lambda t: 1.0)
    return float(shrink_factor(lr, weight_decay, at, sched, dsched)[-1])


def warmup_shrink_approx(lr, weight_decay, warmup):
    """First-order closed form of :func:`warmup_shrink` at the end of the warm-up:
    ``exp(-lr * weight_decay * (warmup + 1) / 2)`` (the warm-up multipliers average (T_w + 1) / (2 T_w))."""
    return float(math.exp(-lr * weight_decay * (warmup + 1) / 2))


# ----------------------------------------------------------------- federated averaging
def label_skew_split(X, y, n_clients, classes_per_client, n_per_client, seed=0, n_classes=10):
    """Split ``(X, y)`` into equally sized clients with skewed labels.

    Client ``k`` sees only the classes ``(k*c + j) mod n_classes`` for
    ``j < c`` (c = ``classes_per_client``), the same number of samples of
    each; no sample goes to two clients.  ``c = n_classes`` is an IID split.
    Returns ``Xc`` [K, N, D] and ``yc`` [K, N].
    """
    g = torch.Generator().manual_seed(seed)
    pools = {c: (y == c).nonzero().flatten() for c in range(n_classes)}
    pools = {c: idx[torch.randperm(len(idx), generator=g).to(idx.device)] for c, idx in pools.items()}
    used = {c: 0 for c in range(n_classes)}
    per_class = n_per_client // classes_per_client
    Xs, ys = [], []
    for k in range(n_clients):
        idx = []
        for j in range(classes_per_client):
            c = (k * classes_per_client + j) % n_classes
            take = pools[c][used[c]:used[c] + per_class]
            if len(take) < per_class:
                raise ValueError(f"class {c} has too few samples for this split")
            used[c] += per_class
            idx.append(take)
        idx = torch.cat(idx)
        Xs.append(X[idx])
        ys.append(y[idx])
    return torch.stack(Xs), torch.stack(ys)


def fedavg(model, method, lr, weight_decay, Xc, yc, rounds, local_steps, Xte=None, yte=None,
           batch_size=0, data_seeds=None, decay_biases=True):
    """Federated averaging (McMahan et al. 2017) of every model in a batched ``model``.

    Each of the ``K = len(Xc)`` clients starts from the global weights, runs
    ``local_steps`` steps of ``method`` with a fresh optimizer state and the
    *same* ``lr``/``weight_decay`` (floats or [G] tensors, G = model.M) on its
    own data, and the server averages the K results (equal weights).  Local
    steps are full-batch unless ``batch_size`` > 0; then ``data_seeds`` (one
    per global model, length G) fixes every client's minibatches in every
    round, so two methods run with the same seeds see the same data order.
    ``decay_biases`` as in :func:`fit`.  ``model`` is updated in place.
    Returns a dict of [rounds, G] tensors: ``drift`` (mean over clients of
    ||w_k - w_avg|| / ||w_avg||), ``absdrift`` (mean of ||w_k - w_avg||),
    ``norm`` (||w_avg||) and, with test data, ``test_err``.
    """
    K, G = Xc.shape[0], model.M
    if batch_size and (data_seeds is None or len(data_seeds) != G):
        raise ValueError("minibatch FedAvg needs data_seeds, one per global model")
    names = [n for n, _ in model.named_parameters()]
    rep = lambda v: v.repeat(K) if torch.is_tensor(v) and v.dim() else v  # noqa: E731
    Xk = Xc[:, None].expand(K, G, *Xc.shape[1:]).reshape(K * G, *Xc.shape[1:])
    yk = yc[:, None].expand(K, G, yc.shape[1]).reshape(K * G, -1)
    clients = copy.deepcopy(model)
    hist = {"drift": [], "absdrift": [], "norm": [], "test_err": []}
    for r in range(rounds):
        with torch.no_grad():
            for n in names:   # broadcast the global weights to the K clients ([K*G, ...], client-major)
                w = getattr(model, n)
                setattr(clients, n, torch.nn.Parameter(w.repeat(K, *([1] * (w.dim() - 1))).clone()))
        seeds = None
        if batch_size:   # client k of global model g in round r: its own, reproducible minibatches
            seeds = [1_000_000 + int(data_seeds[g]) * 10_000 + r * K + k for k in range(K) for g in range(G)]
        fit(clients, method, rep(lr), rep(weight_decay), Xk, yk, local_steps, batch_size=batch_size,
            data_seeds=seeds, decay_biases=decay_biases)
        with torch.no_grad():
            for n in names:   # server: average over clients
                w = getattr(clients, n).detach()
                getattr(model, n).copy_(w.view(K, G, *w.shape[1:]).mean(0))
            wk = _flat(clients, names).view(K, G, -1)
            wbar = wk.mean(0)
            absdrift = (wk - wbar).norm(dim=-1).mean(0)
            hist["drift"].append((absdrift / wbar.norm(dim=-1)).cpu())
            hist["absdrift"].append(absdrift.cpu())
            hist["norm"].append(wbar.norm(dim=-1).cpu())
            if Xte is not None:
                hist["test_err"].append(E.error_rate(model, Xte, yte).cpu())
    return {k: torch.stack(v) for k, v in hist.items() if v}


# ----------------------------------------------------------------- quantization
@torch.no_grad()
def weight_stats(w):
    """Shape statistics of each model's weights (``w``: [M, ...]) -> dict of [M] tensors.

    ``crest`` = max|w| / rms(w) (what sets the quantization step relative to
    the typical weight) and ``kurtosis`` = E[(w-mean)^4] / var^2 (3 for a
    Gaussian; larger = heavier tails).
    """
    w = w.flatten(1).double()
    c = w - w.mean(1, keepdim=True)
    var = c.pow(2).mean(1)
    return {
        "rms": w.pow(2).mean(1).sqrt(),
        "crest": w.abs().amax(1) / w.pow(2).mean(1).sqrt(),
        "kurtosis": c.pow(4).mean(1) / var.pow(2),
    }


@torch.no_grad()
def quantize_model(model, bits=8, names=("W1", "W2")):
    """A copy of ``model`` whose weight matrices ``names`` are fake-quantized
    (symmetric, one scale per tensor and model, :func:`adamw_lab.book.experiments.quantize`).
    Biases stay in floating point, as in most int8 deployments."""
    q = copy.deepcopy(model)
    for n in names:
        getattr(q, n).copy_(E.quantize(getattr(model, n), bits))
    return q


def predicted_quant_error(crest, bits=8):
    """Relative RMS error ||q(w) - w|| / ||w|| of round-to-nearest with step s = max|w|/qmax,
    if the rounding error is uniform on [-s/2, s/2]: ``crest / (sqrt(12) * qmax)``."""
    return crest / (math.sqrt(12.0) * (2 ** (bits - 1) - 1))


@torch.no_grad()
def quant_stats(model, X, y, bits=(8, 4), name="W1"):
    """Per-model quantization measurements of a batched MLP -> dict of [M] float64 tensors.

    ``crest``/``kurtosis`` of layer ``name`` (:func:`weight_stats`), ``err``
    (error rate in %), and for every ``b`` in ``bits``: ``rel{b}`` (relative
    RMS error of layer ``name`` after ``b``-bit quantization) and ``drop{b}``
    (percentage points of error added by quantizing all weight matrices,
    counted in whole examples so float round-off cannot show).
    """
    st = weight_stats(getattr(model, name))
    base = E.error_rate(model, X, y)
    out = {"crest": st["crest"].cpu(), "kurtosis": st["kurtosis"].cpu(), "err": base.double().cpu() * 100}
    w = getattr(model, name)
    for b in bits:
        q = quantize_model(model, b)
        out[f"rel{b}"] = ((getattr(q, name) - w).flatten(1).norm(dim=1) / w.flatten(1).norm(dim=1)).double().cpu()
        flips = torch.round((E.error_rate(q, X, y) - base).double() * len(y)).cpu()
        out[f"drop{b}"] = flips * 100 / len(y)
    return out


def choose_on_validation(val_err, grid):
    """The selection rule of the chapter: the grid value with the lowest validation
    error averaged over seeds (``val_err``: [len(grid), seeds]); ties go to the smaller index.
    Returns ``(index, value)``."""
    mean = torch.as_tensor(val_err, dtype=torch.float64).mean(-1)
    k = int(torch.argmin(mean))
    return k, float(grid[k])
