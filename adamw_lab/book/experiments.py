"""Small shared helpers for the Part II chapters (applications).

Everything here trains *M models at once*: every parameter carries a leading
model dimension M, so one learning-rate x weight-decay grid times several
seeds is one batched model.  Pieces:

* :func:`load_digits_split` - scikit-learn's bundled digits (no download).
* :class:`BatchedMLP`, :class:`BatchedRNN`, :class:`BatchedCNN` - tiny models with a leading M.
* :func:`make_optimizer` - ``"adam"``, ``"adam_l2"`` or ``"adamw"`` with
  per-model ``lr`` / ``weight_decay`` tensors (``adamw_lab.AdamW`` /
  ``adamw_lab.AdamL2``).
* :func:`train`, :func:`error_rate`, :func:`pgd_attack`, :func:`quantize`.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

METHODS = ("adam", "adam_l2", "adamw")
LABELS = {"adam": "Adam", "adam_l2": "Adam+L2", "adamw": "AdamW"}


# ----------------------------------------------------------------- data
def _digits():
    """scikit-learn's bundled digits: pixels scaled to [0, 1] (float32), labels 0..9."""
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    return X.astype(np.float32) / 16.0, y


def load_digits_split(n_train: int = 500, seed: int = 0, classes=None, device="cpu"):
    """Digits (8x8 images, pixel values scaled to [0, 1]) split into train/test.

    Returns ``(Xtr, ytr, Xte, yte)`` as float32 / int64 tensors.  ``classes``
    keeps only those digits (labels re-indexed 0..k-1 in the given order).
    """
    X, y = _digits()
    if classes is not None:
        keep = np.isin(y, classes)
        X, y = X[keep], y[keep]
        y = np.searchsorted(np.array(sorted(classes)), y)
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(y))
    tr, te = perm[:n_train], perm[n_train:]
    t = lambda a, dt: torch.as_tensor(a, dtype=dt, device=device)  # noqa: E731
    return t(X[tr], torch.float32), t(y[tr], torch.int64), t(X[te], torch.float32), t(y[te], torch.int64)


def rare_feature_data(n: int, d_common: int = 10, d_rare: int = 10, p_rare: float = 0.003,
                      scale: float = 10.0, snr: float = 2.0, seed: int = 0):
    """Binary task with informative common features and rare, large, label-free ones.

    Label ``y`` in {0, 1}, ``s = 2y - 1``.  Common feature ``j`` is
    ``a*s + N(0, 1)`` with ``a = snr / sqrt(d_common)`` (the Bayes rule on
    them has accuracy ``Phi(snr)``).  Each rare feature is 0 except in a
    fraction ``p_rare`` of the samples, where it is ``+-scale`` with a random
    sign independent of the label: pure noise that arrives seldom and, when
    it does, with a large gradient.  Returns ``(X, y)``: float32
    [n, d_common + d_rare], int64 [n].
    """
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    s = 2.0 * y - 1.0
    common = snr / math.sqrt(d_common) * s[:, None] + rng.standard_normal((n, d_common))
    active = rng.random((n, d_rare)) < p_rare
    rare = np.where(active, scale * rng.choice([-1.0, 1.0], (n, d_rare)), 0.0)
    X = np.concatenate([common, rare], axis=1).astype(np.float32)
    return torch.as_tensor(X), torch.as_tensor(y, dtype=torch.int64)


def collapse_edge(err_row, log_wd, rise: float = 5.0):
    """``log_wd`` where the error first rises ``rise`` points above the row's best
    (linear interpolation between grid points beyond the best); NaN if it never does."""
    err_row = np.asarray(err_row, dtype=np.float64)
    thr = np.nanmin(err_row) + rise
    for j in range(int(np.nanargmin(err_row)) + 1, len(err_row)):
        if err_row[j] > thr:
            f = (thr - err_row[j - 1]) / (err_row[j] - err_row[j - 1])
            return float(log_wd[j - 1] + f * (log_wd[j] - log_wd[j - 1]))
    return float("nan")


def good_region_slope(err, log_lr, log_wd, rise: float = 5.0, max_err: float = 20.0):
    """How the edge of the usable weight decays moves with the learning rate on an (lr x wd) grid.

    ``err`` [L, W]: mean validation error (%) of every cell.  For every lr row
    whose best cell is below ``max_err``, :func:`collapse_edge` finds the
    ``log_wd`` where the decay becomes too strong; the result is the
    least-squares slope of that edge against ``log_lr``.  Slope 0: the usable
    ``wd`` does not depend on the lr; slope -1: it moves as 1/lr (only the
    product lr*wd matters).  The edge, not the best cell, because at small
    ``wd`` the error is flat and the best cell is set by noise.
    """
    err = np.asarray(err, dtype=np.float64)
    log_wd = np.asarray(log_wd, dtype=np.float64)
    pts = [(float(log_lr[i]), collapse_edge(err[i], log_wd, rise)) for i in range(err.shape[0])
           if np.nanmin(err[i]) < max_err]
    pts = [(x, e) for x, e in pts if np.isfinite(e)]
    if len(pts) < 2:
        return float("nan")
    xs, edges = zip(*pts)
    return float(np.polyfit(xs, edges, 1)[0])


# ----------------------------------------------------------------- models
def _init(shape, fan_in, gen):
    return (torch.randn(shape, generator=gen) / math.sqrt(fan_in)).float()


class _Batched(torch.nn.Module):
    """Base of the batched models: every parameter has a leading model dimension M."""

    @property
    def M(self) -> int:
        return next(self.parameters()).shape[0]

    def _expand(self, x):
        """Inputs shared by all models ([N, ...]) viewed as [M, N, ...]; [M, N, ...] as it is."""
        return x.expand(self.M, *x.shape) if x.dim() == 2 else x


class BatchedMLP(_Batched):
    """M independent one-hidden-layer MLPs; ``forward(x)`` -> logits [M, N, C].

    ``x`` is [N, D] (shared by all models) or [M, N, D].  ``seeds`` (length M)
    gives each model its own initialisation, so models that differ only in
    hyperparameters can share a seed.
    """

    def __init__(self, seeds, d_in: int, d_hidden: int, d_out: int):
        super().__init__()
        W1, b1, W2, b2 = [], [], [], []
        for s in seeds:
            g = torch.Generator().manual_seed(int(s))
            W1.append(_init((d_in, d_hidden), d_in, g))
            b1.append(torch.zeros(1, d_hidden))
            W2.append(_init((d_hidden, d_out), d_hidden, g))
            b2.append(torch.zeros(1, d_out))
        self.W1 = torch.nn.Parameter(torch.stack(W1))
        self.b1 = torch.nn.Parameter(torch.stack(b1))
        self.W2 = torch.nn.Parameter(torch.stack(W2))
        self.b2 = torch.nn.Parameter(torch.stack(b2))

    def forward(self, x):
        h = torch.relu(torch.bmm(self._expand(x), self.W1) + self.b1)
        return torch.bmm(h, self.W2) + self.b2


class BatchedRNN(_Batched):
    """M Elman RNNs (tanh) reading an image row by row; logits from the last state."""

    def __init__(self, seeds, d_in: int, d_hidden: int, d_out: int):
        super().__init__()
        Wx, Wh, b, Wo, bo = [], [], [], [], []
        for s in seeds:
            g = torch.Generator().manual_seed(int(s))
            Wx.append(_init((d_in, d_hidden), d_in, g))
            Wh.append(_init((d_hidden, d_hidden), d_hidden, g))
            b.append(torch.zeros(1, d_hidden))
            Wo.append(_init((d_hidden, d_out), d_hidden, g))
            bo.append(torch.zeros(1, d_out))
        for name, v in zip(("Wx", "Wh", "b", "Wo", "bo"), (Wx, Wh, b, Wo, bo)):
            setattr(self, name, torch.nn.Parameter(torch.stack(v)))

    def forward(self, x):
        """``x``: [N, T, D] (shared) or [M, N, T, D]; back-propagation through time is plain autograd."""
        N, T = x.shape[-3], x.shape[-2]
        h = x.new_zeros(self.M, N, self.Wh.shape[1])
        for t in range(T):
            xt = self._expand(x[..., t, :])
            h = torch.tanh(torch.bmm(xt, self.Wx) + torch.bmm(h, self.Wh) + self.b)
        return torch.bmm(h, self.Wo) + self.bo


class BatchedCNN(_Batched):
    """M small CNNs on 8x8 images: 3x3 conv (``channels``, same padding), ReLU, 2x2 average pooling, linear.

    ``x`` is [N, 8, 8] (shared) or [M, N, 8, 8]; the M convolutions run as one
    grouped ``conv2d``.
    """

    def __init__(self, seeds, channels: int = 8, d_out: int = 10, side: int = 8):
        super().__init__()
        K, b, Wo, bo = [], [], [], []
        d_flat = channels * (side // 2) ** 2
        for s in seeds:
            g = torch.Generator().manual_seed(int(s))
            K.append(_init((channels, 1, 3, 3), 9, g))
            b.append(torch.zeros(1, channels, 1, 1))
            Wo.append(_init((d_flat, d_out), d_flat, g))
            bo.append(torch.zeros(1, d_out))
        self.Wc = torch.nn.Parameter(torch.stack(K))        # [M, C, 1, 3, 3]
        self.bc = torch.nn.Parameter(torch.stack(b))        # [M, 1, C, 1, 1]
        self.Wo = torch.nn.Parameter(torch.stack(Wo))
        self.bo = torch.nn.Parameter(torch.stack(bo))

    def forward(self, x):
        M, C = self.Wc.shape[:2]
        x = x.expand(M, *x.shape) if x.dim() == 3 else x            # [M, N, H, W]
        N, H, W = x.shape[1:]
        z = F.conv2d(x.transpose(0, 1), self.Wc.reshape(M * C, 1, 3, 3), padding=1, groups=M)
        z = torch.relu(z.view(N, M, C, H, W) + self.bc.view(1, M, C, 1, 1))
        z = F.avg_pool2d(z.view(N, M * C, H, W), 2).view(N, M, -1).transpose(0, 1)   # [M, N, C*H*W/4]
        return torch.bmm(z, self.Wo) + self.bo


# ----------------------------------------------------------------- optimizer
def make_optimizer(method: str, params, lr, weight_decay):
    """Optimizer for ``method`` in ``("adam", "adam_l2", "adamw")``.

    ``params``: parameters or parameter groups (e.g. ``adamw_lab.param_groups``).
    ``lr`` and ``weight_decay`` are floats or 1-D tensors of length M.
    ``"adam"`` ignores every ``weight_decay``.
    """
    import adamw_lab

    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; use one of {METHODS}")
    params = list(params)
    if method == "adam":
        weight_decay = 0.0
        params = [dict(g, weight_decay=0.0) if isinstance(g, dict) else g for g in params]
    cls = adamw_lab.AdamL2 if method == "adam_l2" else adamw_lab.AdamW
    return cls(params, lr=lr, weight_decay=weight_decay)


def set_lr(opt, lr) -> None:
    """Set the (scalar or per-model) learning rate of every parameter group."""
    for group in opt.param_groups:
        group["lr"] = lr


# ----------------------------------------------------------------- training
def batched_cross_entropy(logits, y):
    """Mean cross entropy per model: logits [M, N, C]; y [N] (shared) or [M, N] -> [M]."""
    M, N, C = logits.shape
    y = y.expand(M, N).reshape(-1)
    return F.cross_entropy(logits.reshape(M * N, C), y, reduction="none").view(M, N).mean(1)


@torch.no_grad()
def error_rate(model, X, y):
    """Per-model test error (fraction misclassified), shape [M]; ``y`` is [N] or [M, N]."""
    return (model(X).argmax(-1) != y).float().mean(1)


def data_order(seeds, n: int, batch_size: int, steps: int):
    """Minibatch indices ``[steps, M, batch_size]``: model k draws with its own seed ``seeds[k]``.

    Models that share a seed (the same seed under two methods or two
    hyperparameters) see the same minibatches in the same order: paired runs.
    """
    uniq = sorted({int(s) for s in seeds})
    table = torch.stack([torch.randint(n, (steps, batch_size), generator=torch.Generator().manual_seed(10_000 + s))
                         for s in uniq])                                   # [S, steps, B]
    pos = torch.tensor([uniq.index(int(s)) for s in seeds])
    return table[pos].transpose(0, 1)                                     # [steps, M, B]


def train(model, method, lr, weight_decay, Xtr, ytr, steps: int, Xte=None, yte=None,
          record_every: int = 0, schedule=None, batch_size: int = 0, seed: int = 0,
          callback=None, data_seeds=None, decay_biases: bool = True, blocks=None):
    """Train every model of a batched ``model`` and return a history dict.

    Full-batch unless ``batch_size`` > 0.  With ``data_seeds`` (one seed per
    model) every model draws its own minibatches (:func:`data_order`), else
    all models share one order drawn from ``seed``.  ``decay_biases=False``
    decays only weight matrices (``adamw_lab.param_groups``: no decay on
    biases).  ``blocks`` (one block index per model, with ``data_seeds`` and
    ``batch_size``): ``Xtr``/``ytr`` are equal blocks stacked along the rows
    and model k draws its minibatches from block ``blocks[k]`` only, so every
    model can have its own training sample (:func:`stack_blocks`); the train
    error is then measured on the whole stack.  ``schedule(t)`` (t = 0..steps-1) returns a multiplier of
    ``lr``.  With ``record_every`` > 0 the history holds ``steps``,
    ``train_err`` and ``test_err`` ([R, M] tensors; ``Xte``/``yte`` may be a
    validation set); ``callback(model)`` is called at the same record points
    (its return values are collected in ``hist["callback"]``).
    """
    import adamw_lab

    params = model.parameters() if decay_biases else adamw_lab.param_groups(model, weight_decay, batched=True)
    opt = make_optimizer(method, params, lr, weight_decay)
    base_lr = lr
    gen = torch.Generator(device="cpu").manual_seed(seed)
    order = None
    if batch_size and data_seeds is not None:
        if blocks is None:
            order = data_order(data_seeds, len(ytr), batch_size, steps)
        else:
            blocks = torch.as_tensor(blocks, dtype=torch.int64)
            n_blocks = int(blocks.max()) + 1
            if len(blocks) != len(data_seeds) or len(ytr) % n_blocks:
                raise ValueError(f"blocks: one block index per model ({len(data_seeds)}), and {len(ytr)} rows "
                                 f"must split into {n_blocks} equal blocks")
            rows = len(ytr) // n_blocks
            order = data_order(data_seeds, rows, batch_size, steps) + (blocks * rows).view(1, -1, 1)
    elif blocks is not None:
        raise ValueError("blocks needs batch_size > 0 and data_seeds")
    hist = {"steps": [], "train_err": [], "test_err": [], "callback": []}
    for t in range(steps):
        if schedule is not None:
            set_lr(opt, base_lr * schedule(t))
        if order is not None:
            idx = order[t].to(ytr.device)                                 # [M, B]
            xb, yb = Xtr[idx], ytr[idx]
        elif batch_size:
            idx = torch.randint(len(ytr), (batch_size,), generator=gen).to(ytr.device)
            xb, yb = Xtr[idx], ytr[idx]
        else:
            xb, yb = Xtr, ytr
        opt.zero_grad(set_to_none=True)
        batched_cross_entropy(model(xb), yb).sum().backward()
        opt.step()
        if record_every and ((t + 1) % record_every == 0 or t == 0):
            hist["steps"].append(t + 1)
            hist["train_err"].append(error_rate(model, Xtr, ytr).cpu())
            if Xte is not None:
                hist["test_err"].append(error_rate(model, Xte, yte).cpu())
            if callback is not None:
                with torch.no_grad():
                    hist["callback"].append(callback(model))
    for k in ("train_err", "test_err"):
        hist[k] = torch.stack(hist[k]) if hist[k] else None
    return hist


def stack_blocks(datasets):
    """Stack equal-sized datasets ``[(X, y), ...]`` along the rows for :func:`train`'s ``blocks``.

    Returns ``(X, y)``; block ``k`` is rows ``k*n .. (k+1)*n - 1``.
    """
    sizes = {len(y) for _, y in datasets}
    if len(sizes) != 1:
        raise ValueError(f"the blocks must have the same number of rows, got {sorted(sizes)}")
    return torch.cat([X for X, _ in datasets]), torch.cat([y for _, y in datasets])


def warmup_cosine(total: int, warmup: int):
    """Schedule multiplier: linear warm-up over ``warmup`` steps, then cosine to 0."""

    def f(t: int) -> float:
        if t < warmup:
            return (t + 1) / warmup
        p = (t - warmup) / max(1, total - warmup)
        return 0.5 * (1 + math.cos(math.pi * p))

    return f


# ----------------------------------------------------------------- metrics
def mean_std(x, dim: int = -1):
    """Mean and sample standard deviation along ``dim`` (NumPy arrays)."""
    x = torch.as_tensor(x, dtype=torch.float64)
    return x.mean(dim).numpy(), x.std(dim).numpy()


def pgd_attack(model, X, y, eps: float, steps: int = 10, alpha=None):
    """L-infinity PGD (Madry et al.) on every model; returns X_adv [M, N, D] in [0, 1]."""
    alpha = 2.5 * eps / steps if alpha is None else alpha
    M = model.M
    x0 = X.expand(M, *X.shape).detach()
    if eps == 0:
        return x0.clone()
    x = x0.clone()
    for _ in range(steps):
        x.requires_grad_(True)
        loss = batched_cross_entropy(model(x), y).sum()
        (g,) = torch.autograd.grad(loss, x)
        with torch.no_grad():
            x = x + alpha * g.sign()
            x = torch.min(torch.max(x, x0 - eps), x0 + eps).clamp(0, 1)
    return x.detach()


def quantize(w, bits: int = 8):
    """Symmetric per-tensor (per model) fake quantization: round(w/s)*s, s=max|w|/(2^(b-1)-1)."""
    qmax = 2 ** (bits - 1) - 1
    dims = tuple(range(1, w.dim()))
    s = w.abs().amax(dim=dims, keepdim=True).clamp_min(1e-12) / qmax
    return torch.round(w / s).clamp(-qmax, qmax) * s


# --- robustness (chapter 应用/鲁棒性) ---
class BatchedLinear(_Batched):
    """M linear classifiers (multinomial logistic regression); ``forward(x)`` -> logits [M, N, C].

    Weights start at zero, so M models that see the same data and differ only
    in hyperparameters start from the same point (no initialisation seed).
    """

    def __init__(self, M: int, d_in: int, d_out: int):
        super().__init__()
        self.W = torch.nn.Parameter(torch.zeros(M, d_in, d_out))
        self.b = torch.nn.Parameter(torch.zeros(M, 1, d_out))

    def forward(self, x):
        return torch.bmm(self._expand(x), self.W) + self.b


def spurious_data(n: int, rho: float, d_core: int = 8, core_snr: float = 1.2816,
                  spur_noise: float = 0.1, seed: int = 0):
    """Binary task with ``d_core`` weak causal features and one clean spurious feature.

    Label ``y`` in {0, 1} (balanced in expectation), ``s = 2y - 1``.  Core
    feature ``j`` is ``a*s + N(0, 1)`` with ``a = core_snr / sqrt(d_core)``,
    so the best classifier on the core features alone has accuracy
    ``Phi(core_snr)`` (0.90 by default).  The last column is the spurious
    feature ``+-1 + N(0, spur_noise^2)``: its sign equals ``s`` with
    probability ``rho`` and is flipped otherwise.  ``rho = 0.5`` makes it
    independent of the label (the correlation is broken at test time).

    Returns ``(X, y)``: float32 [n, d_core + 1] and int64 [n].
    """
    if not 0.0 <= rho <= 1.0:
        raise ValueError("rho must lie in [0, 1]")
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    s = 2.0 * y - 1.0
    core = core_snr / math.sqrt(d_core) * s[:, None] + rng.standard_normal((n, d_core))
    spur = np.where(rng.random(n) < rho, s, -s) + spur_noise * rng.standard_normal(n)
    X = np.concatenate([core, spur[:, None]], axis=1).astype(np.float32)
    return torch.as_tensor(X), torch.as_tensor(y, dtype=torch.int64)


def binary_feature_weights(model):
    """|w_j| of the logit difference ``logit_1 - logit_0`` of a 2-class :class:`BatchedLinear`: [M, D]."""
    W = model.W.detach()
    if W.shape[-1] != 2:
        raise ValueError("binary_feature_weights needs a 2-class model")
    return (W[..., 1] - W[..., 0]).abs()


def weight_share(w, idx):
    """Share of the weight mass ``sum_j |w_j|`` that falls on feature(s) ``idx``; ``w`` is [M, D] -> [M]."""
    w = torch.as_tensor(w).abs()
    part = w[:, idx]
    part = part.sum(1) if part.dim() == 2 else part
    return part / w.sum(1).clamp_min(1e-30)


def imbalanced_digits_split(n_major: int = 50, n_minor: int = 5, minority=(3, 8, 9), seed: int = 0):
    """Digits with a long tail: ``n_major`` training images per class, ``n_minor`` for ``minority``.

    The test set is every image not used for training (so it is close to
    balanced).  Returns ``(Xtr, ytr, Xte, yte)`` like :func:`load_digits_split`.
    """
    X, y = _digits()
    rng = np.random.default_rng(seed)
    train = []
    for c in range(10):
        idx = rng.permutation(np.flatnonzero(y == c))
        train.extend(idx[: n_minor if c in minority else n_major].tolist())
    train = np.array(sorted(train))
    test = np.setdiff1d(np.arange(len(y)), train)
    t = torch.as_tensor
    return (t(X[train]), t(y[train], dtype=torch.int64), t(X[test]), t(y[test], dtype=torch.int64))


@torch.no_grad()
def per_class_recall(model, X, y, n_classes: int):
    """Recall of every class for every model: [M, n_classes] (NaN for a class absent from ``y``)."""
    pred = model(X).argmax(-1)  # [M, N]
    out = []
    for c in range(n_classes):
        mask = y == c
        out.append((pred[:, mask] == c).float().mean(1) if mask.any()
                   else torch.full((pred.shape[0],), float("nan"), device=pred.device))
    return torch.stack(out, 1)


def imbalance_metrics(recall, minority):
    """Fairness summary of a per-class recall table [M, C].

    Returns a dict of [M] tensors: ``minority_recall`` and ``majority_recall``
    (mean recall over the minority / other classes), ``balanced_accuracy``
    (mean recall over all classes) and ``recall_gap`` (majority minus minority).
    """
    recall = torch.as_tensor(recall)
    C = recall.shape[1]
    minor = torch.zeros(C, dtype=torch.bool)
    minor[list(minority)] = True
    r_min = recall[:, minor].mean(1)
    r_maj = recall[:, ~minor].mean(1)
    return {"minority_recall": r_min, "majority_recall": r_maj,
            "balanced_accuracy": recall.mean(1), "recall_gap": r_maj - r_min}


def robust_accuracy_curve(model, X, y, eps_list, steps: int = 10):
    """Accuracy under the L-infinity :func:`pgd_attack` at every ``eps``: [M, len(eps_list)]."""
    acc = []
    for eps in eps_list:
        xa = pgd_attack(model, X, y, float(eps), steps=steps)
        with torch.no_grad():
            acc.append((model(xa).argmax(-1) == y).float().mean(1))
    return torch.stack(acc, 1)


def mean_robust_radius(acc, eps_list):
    """Area under the robust-accuracy curve, ``int_0^eps_max acc(eps) d eps`` (trapezoid rule).

    If every test point has a robustness radius ``r_i`` (the smallest
    perturbation that flips it, 0 when it is misclassified), ``acc(eps)`` is
    the fraction with ``r_i > eps`` and the integral is the mean of
    ``min(r_i, eps_max)``: an empirical, attack-based margin.  ``eps_list``
    must start at 0.
    """
    eps = torch.as_tensor(eps_list, dtype=torch.as_tensor(acc).dtype)
    if float(eps[0]) != 0.0:
        raise ValueError("eps_list must start at 0")
    return torch.trapezoid(torch.as_tensor(acc), eps, dim=-1)


def weight_norm(model, names=None):
    """Per-model L2 norm of the parameters ``names`` together (default: every weight
    matrix, i.e. every parameter whose name starts with ``W``): [M]."""
    sq = [p.detach().pow(2).flatten(1).sum(1) for n, p in model.named_parameters()
          if (n in names if names is not None else n.startswith("W"))]
    return torch.stack(sq).sum(0).sqrt()


def select_models(model, index):
    """A copy of a batched ``model`` that keeps only the models at ``index`` (a slice, or a list of positions).

    Used to evaluate (e.g. attack) only the models of a chosen setting.
    """
    import copy

    sub = copy.deepcopy(model)
    index = list(index) if not isinstance(index, slice) else index
    for module in sub.modules():
        for name, p in list(module._parameters.items()):
            if p is not None:
                module._parameters[name] = torch.nn.Parameter(p.detach()[index].clone())
    return sub


def logit_weight_cap(weight_decay):
    """AdamW's cap on a weight of the logit difference of a 2-class linear model: ``2 / weight_decay``.

    At a stationary point of AdamW (PyTorch convention) every weight obeys
    ``lambda*|w| = |E u| <= 1`` (``u`` the Adam direction), so each of the two
    logit columns is capped at ``1/lambda`` and their difference at ``2/lambda``.
    """
    return 2.0 / float(weight_decay)
