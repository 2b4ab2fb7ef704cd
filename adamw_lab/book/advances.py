"""Helpers of Part IV (新进展): the experiments after Loshchilov & Hutter.

* ℓ∞ view (Xie & Li 2024): :func:`logistic_problem`, :func:`logistic_grad`,
  :func:`run_full_batch`, :func:`box_solution`, :func:`kkt_residual`.
* Normalised layers (Kosson et al. 2024; Defazio 2025): :class:`BatchedNormMLP`,
  :func:`digits_three_way`, :func:`train_measured`, :func:`equilibrium_norm`,
  :func:`equilibrium_angle`.
* Timescale (Wang & Aitchison 2025): :func:`corrupt_labels`, :func:`best_log_lambda`,
  :func:`timescale_epochs`.
* The ℓ∞ view in two dimensions (the chapter's explorer): :func:`box_toy_problem`,
  :func:`box_paths`, :func:`box_endpoint_norm` (the radius 1/λ: :func:`adamw_lab.reference_variants.box_radius`).
* Shared by the chapters: :func:`moving_average` (intervals and verdicts: :mod:`adamw_lab.book.stats`).
"""
from __future__ import annotations

import functools
import math

import numpy as np
import torch

from adamw_lab import reference
from adamw_lab.book import experiments as E
from adamw_lab.reference_variants import box_projection, cautious_adamw_step


# ----------------------------------------------------------------- smoothing
def moving_average(x, k: int = 50):
    """Mean over windows of ``k`` consecutive entries along dim 0 (valid part only: ``len(x) - k`` rows)."""
    c = np.cumsum(np.asarray(x, dtype=np.float64), 0)
    return (c[k:] - c[:-k]) / k


# ----------------------------------------------------------------- the l-infinity view
def logistic_problem(n: int = 200, d: int = 8, scale: float = 3.0, seed: int = 0):
    """A non-separable logistic regression whose unconstrained optimum has large coordinates.

    Features ``X ~ N(0, I)`` [n, d]; labels ``y in {-1, +1}`` drawn from the
    logistic model with true weights ``scale * linspace(1, -1, d)`` (so a few
    coordinates are large, one or two near zero).  Returns ``(X, y)`` as float64.
    """
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    w_true = scale * np.linspace(1.0, -1.0, d)
    p = 1.0 / (1.0 + np.exp(-X @ w_true))
    y = np.where(rng.random(n) < p, 1.0, -1.0)
    return X, y


def logistic_loss(w, X, y):
    """Mean logistic loss ``mean log(1 + exp(-y x·w))``; ``w`` is [d] or [S, d] (then X [S, n, d])."""
    z = y * np.einsum("...nd,...d->...n", X, w)
    return np.logaddexp(0.0, -z).mean(-1)


def logistic_grad(w, X, y):
    """Gradient of :func:`logistic_loss` with respect to ``w`` (same shape as ``w``)."""
    z = y * np.einsum("...nd,...d->...n", X, w)
    s = -y * np.exp(-np.logaddexp(0.0, z))          # -y * sigmoid(-z), stable
    return np.einsum("...n,...nd->...d", s, X) / X.shape[-2]


def run_full_batch(X, y, *, lr, weight_decay, steps: int, rule="adamw", schedule=None,
                   betas=(0.9, 0.999), eps=1e-8, record=()):
    """Full-batch training with a NumPy reference rule from ``w = 0``.

    ``rule`` is ``"adamw"``, ``"adam_l2"`` or ``"cautious"`` (cautious weight decay);
    ``schedule(t)`` (t = 1..steps)
    multiplies ``lr``.  ``X`` may carry a leading batch of problems [S, n, d];
    ``weight_decay`` may be an array that broadcasts against ``w`` ([..., S, d],
    e.g. shape [L, 1, 1] for L values of λ).  Returns ``(w_final, {t: w_t for t in record})``.
    """
    rules = {"adamw": reference.adamw_step, "adam_l2": reference.adam_l2_step,
             "cautious": cautious_adamw_step}
    if rule not in rules:
        raise ValueError(f"Invalid rule: {rule!r} (choose from {tuple(rules)})")
    step = rules[rule]
    w = np.zeros(np.broadcast_shapes(X.shape[:-2] + X.shape[-1:], np.shape(weight_decay)))
    m, v = np.zeros_like(w), np.zeros_like(w)
    saved = {}
    for t in range(1, steps + 1):
        lr_t = lr * (schedule(t) if schedule is not None else 1.0)
        w, m, v = step(w, logistic_grad(w, X, y), m, v, t, lr=lr_t, betas=betas, eps=eps,
                       weight_decay=weight_decay)
        if t in record:
            saved[t] = w.copy()
    return w, saved


def box_solution(X, y, radius: float):
    """The minimiser of the mean logistic loss subject to ``‖w‖∞ ≤ radius`` (L-BFGS-B, tight
    tolerance); ``radius=np.inf`` gives the unconstrained optimum.  One problem: X [n, d]."""
    from scipy.optimize import minimize

    d = X.shape[1]
    res = minimize(lambda w: (logistic_loss(w, X, y), logistic_grad(w, X, y)), np.zeros(d),
                   jac=True, method="L-BFGS-B", bounds=[(-radius, radius)] * d,
                   options=dict(ftol=1e-15, gtol=1e-12, maxiter=10_000))
    return res.x


def kkt_residual(w, X, y, radius: float):
    """KKT residual of ``min L(w) s.t. ‖w‖∞ ≤ radius``: ``‖w − Π(w − ∇L(w))‖∞``.

    Zero exactly at a KKT point: inside the box the gradient vanishes; on a
    face ``w_i = ±radius`` the gradient points outward (``−sign(w_i)·∂_i L ≥ 0``).
    It is also non-zero outside the box.  Works on [d] or a batch [S, d] (returns [S]).
    """
    g = logistic_grad(w, X, y)
    return np.abs(w - box_projection(w - g, radius)).max(-1)


def box_toy_problem(n: int = 200, w_true=(4.0, 1.0), seed: int = 0):
    """A two-feature logistic regression drawn from the model with weights ``w_true``
    (one large, one small coordinate: for a mid-sized λ the box solution has one coordinate
    on a face and one inside).  Returns ``(X, y)`` [n, 2], [n] as float64."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, len(w_true)))
    p = 1.0 / (1.0 + np.exp(-X @ np.asarray(w_true, dtype=np.float64)))
    return X, np.where(rng.random(n) < p, 1.0, -1.0)


BOX_RULES = ("adamw", "adam_l2")
BOX_LAMS = (0.15, 0.4, 0.6, 1.0, 1.6, 2.5)   # the explorer's λ grid: runs at these values are batched
BOX_STEPS = 3000


@functools.lru_cache(maxsize=64)
def _box_sweep(lr: float, lams: tuple, rule: str, steps: int, betas: tuple, n_points: int, seed: int):
    """One batched run over ``lams``: recorded steps [R], paths [R, L, 2], final weights [L, 2].

    The same recursion as :func:`run_full_batch` (NumPy reference steps, cosine to zero), with the
    logistic gradient written for one problem and ``scipy.special.expit`` (a few times faster)."""
    from scipy.special import expit

    X, y = box_toy_problem(seed=seed)
    step = {"adamw": reference.adamw_step, "adam_l2": reference.adam_l2_step}[rule]
    record = set(int(t) for t in np.unique(np.geomspace(1, steps, n_points).round()))
    wd = np.asarray(lams, dtype=np.float64)[:, None]
    w = np.zeros((len(lams), X.shape[1]))
    m, v = np.zeros_like(w), np.zeros_like(w)
    ts, paths = [0], [w.copy()]
    for t in range(1, steps + 1):
        g = (-y * expit(-y * (w @ X.T))) @ X / len(y)              # logistic_grad for each lambda's w
        w, m, v = step(w, g, m, v, t, lr=lr * 0.5 * (1 + math.cos(math.pi * t / steps)), betas=betas,
                       eps=1e-8, weight_decay=wd)
        if t in record:
            ts.append(t)
            paths.append(w.copy())
    return np.array(ts), np.stack(paths), w


def _box_run(lr, weight_decay, rule, steps, betas, n_points, seed):
    if rule not in BOX_RULES:
        raise ValueError(f"Invalid rule: {rule!r} (choose from {BOX_RULES})")
    lam = float(weight_decay)
    hits = [i for i, v in enumerate(BOX_LAMS) if math.isclose(v, lam, rel_tol=1e-9)]
    lams, k = (BOX_LAMS, hits[0]) if hits else ((lam,), 0)
    t, paths, w_T = _box_sweep(float(lr), lams, rule, int(steps), tuple(float(b) for b in betas), int(n_points), int(seed))
    return t.copy(), paths[:, k].copy(), w_T[k].copy()


def box_paths(lr, weight_decay, steps: int = BOX_STEPS, betas=(0.9, 0.99), n_points: int = 60, seed: int = 0):
    """Full-batch AdamW and Adam+L2 (cosine annealing to zero, from ``w = 0``) on
    :func:`box_toy_problem`.  Returns ``{rule: (t, path)}`` for the rules in :data:`BOX_RULES`:
    ``t`` the recorded steps (0 and about ``n_points`` log-spaced ones), ``path`` [len(t), 2].
    Runs are cached; λ values of :data:`BOX_LAMS` are computed together in one batched run."""
    return {rule: _box_run(lr, weight_decay, rule, steps, betas, n_points, seed)[:2] for rule in BOX_RULES}


def box_endpoint_norm(lr, weight_decay, rule: str = "adamw", steps: int = BOX_STEPS, betas=(0.9, 0.99), seed: int = 0):
    """``‖w_T‖∞`` at the end of the :func:`box_paths` run of ``rule`` (a number)."""
    return float(np.abs(_box_run(lr, weight_decay, rule, steps, betas, 60, seed)[2]).max())


# ----------------------------------------------------------------- normalised layers
def digits_three_way(n_train: int = 1000, seed: int = 0, device="cpu"):
    """Digits split into train / validation / test (the images not used for training,
    halved).  Returns ``(Xtr, ytr, Xva, yva, Xte, yte)``."""
    Xtr, ytr, Xrest, yrest = E.load_digits_split(n_train=n_train, seed=seed, device=device)
    half = len(yrest) // 2
    return Xtr, ytr, Xrest[:half], yrest[:half], Xrest[half:], yrest[half:]


class BatchedNormMLP(E._Batched):
    """M MLPs ``x -> relu(LN(x W1)) -> relu(LN(h W2)) -> h W3 + b3`` (LN without gain or bias).

    The layer norm makes each model's output invariant to the scale of its
    ``W1`` and of its ``W2`` (:data:`SCALE_INVARIANT`): only their directions
    matter, so weight decay changes how fast they turn, not what they compute.
    """

    SCALE_INVARIANT = ("W1", "W2")

    def __init__(self, seeds, d_in: int = 64, d_hidden=(128, 32), d_out: int = 10):
        super().__init__()
        h1, h2 = d_hidden
        W1, W2, W3 = [], [], []
        for s in seeds:
            g = torch.Generator().manual_seed(int(s))
            W1.append(E._init((d_in, h1), d_in, g))
            W2.append(E._init((h1, h2), h1, g))
            W3.append(E._init((h2, d_out), h2, g))
        self.W1 = torch.nn.Parameter(torch.stack(W1))
        self.W2 = torch.nn.Parameter(torch.stack(W2))
        self.W3 = torch.nn.Parameter(torch.stack(W3))
        self.b3 = torch.nn.Parameter(torch.zeros(len(W1), 1, d_out))

    @staticmethod
    def _norm(z):
        return torch.nn.functional.layer_norm(z, z.shape[-1:])

    def forward(self, x):
        h = torch.relu(self._norm(torch.bmm(self._expand(x), self.W1)))
        h = torch.relu(self._norm(torch.bmm(h, self.W2)))
        return torch.bmm(h, self.W3) + self.b3


def _per_model_norm(p):
    return p.detach().flatten(1).norm(dim=1)


def _angle(a, b):
    """Per-model angle between ``a`` and ``b`` [M, ...] (atan2 of the orthogonal and the
    parallel part: accurate for the tiny angles of one step, where arccos is not)."""
    a, b = a.flatten(1), b.flatten(1)
    along = (a * b).sum(1) / a.norm(dim=1)
    perp = b - (along / a.norm(dim=1))[:, None] * a
    return torch.atan2(perp.norm(dim=1), along)


def train_measured(model, opt, Xtr, ytr, steps: int, batch_size: int = 32, schedule=None, seed: int = 0,
                   label_noise: float = 0.0, names=BatchedNormMLP.SCALE_INVARIANT):
    """Minibatch training of a batched ``model`` with a ready optimizer, measuring every step.

    ``schedule(t)`` (t = 0..steps-1) multiplies every group's initial ``lr``.
    Every model draws its own minibatches; the streams depend only on ``seed``
    and the model's index, so they are paired across optimizers.
    ``label_noise`` > 0 replaces each drawn label, with that probability, by a
    uniformly random class, fresh at every draw: the training loss then has a
    floor and the gradient stays noisy to the end, as in single-epoch
    pre-training, instead of vanishing once the small training set is memorised.
    Returns a dict of [steps, M, len(names)] tensors for the parameters
    ``names``: ``grad_norm`` (‖∇J‖ of the minibatch loss), ``weight_norm``
    (after the step) and ``angle`` (radians between the weights before and
    after the step).  ``names=()`` trains without measuring and returns ``{}``.
    """
    base = [group["lr"] for group in opt.param_groups]
    gen = torch.Generator().manual_seed(seed)
    n_classes, M = int(ytr.max()) + 1, model.M
    params = [getattr(model, n) for n in names]
    out = {"grad_norm": [], "weight_norm": [], "angle": []}
    for t in range(steps):
        if schedule is not None:
            for group, lr in zip(opt.param_groups, base):
                group["lr"] = lr * schedule(t)
        idx = torch.randint(len(ytr), (M, batch_size), generator=gen)         # one stream per model
        flip = torch.rand(M, batch_size, generator=gen) < label_noise
        yb = torch.where(flip, torch.randint(n_classes, (M, batch_size), generator=gen), ytr.cpu()[idx])
        opt.zero_grad(set_to_none=True)
        E.batched_cross_entropy(model(Xtr[idx.to(Xtr.device)]), yb.to(ytr.device)).sum().backward()
        if not params:
            opt.step()
            continue
        before = [p.detach().clone() for p in params]
        out["grad_norm"].append(torch.stack([_per_model_norm(p.grad) for p in params], -1))
        opt.step()
        out["weight_norm"].append(torch.stack([_per_model_norm(p) for p in params], -1))
        out["angle"].append(torch.stack([_angle(b, p.detach()) for b, p in zip(before, params)], -1))
    for group, lr in zip(opt.param_groups, base):
        group["lr"] = lr
    return {k: torch.stack(v).cpu() for k, v in out.items()} if params else {}


def equilibrium_norm(lr, weight_decay, n_elements):
    """Equilibrium norm of a scale-invariant weight under AdamW: ``sqrt(η C / (2λ))``.

    Each step adds ``η² C`` to ``‖w‖²`` (a normalised update of RMS 1 on
    ``C`` elements, orthogonal to ``w``) and decay removes ``2ηλ‖w‖²``.
    """
    return np.sqrt(np.asarray(lr) * n_elements / (2 * np.asarray(weight_decay)))


def equilibrium_angle(lr, weight_decay, beta1: float = 0.9):
    """Expected angular update per step at equilibrium (Kosson et al.):
    ``sqrt(2ηλ (1 − β₁)/(1 + β₁))`` radians."""
    return np.sqrt(2 * np.asarray(lr) * np.asarray(weight_decay) * (1 - beta1) / (1 + beta1))


# ----------------------------------------------------------------- timescale
def corrupt_labels(y, fraction: float, n_classes: int = 10, seed: int = 0):
    """A copy of ``y`` where each label, with probability ``fraction``, is replaced once and
    for all by a uniformly random class (a fixed noisy training set: weight decay then matters)."""
    g = torch.Generator().manual_seed(seed)
    flip = torch.rand(len(y), generator=g) < fraction
    return torch.where(flip, torch.randint(n_classes, (len(y),), generator=g), y.cpu()).to(y.device)


def timescale_epochs(lr, weight_decay, n_train, batch_size):
    """AdamW's averaging timescale ``1/(ηλ)`` counted in epochs of ``N/B`` steps:
    ``τ_epoch = B/(ηλN)`` (Wang & Aitchison)."""
    return np.asarray(batch_size, dtype=np.float64) / (np.asarray(lr) * np.asarray(weight_decay) * np.asarray(n_train))


def best_log_lambda(log_lams, losses):
    """Minimiser in ``log λ`` of a loss measured on a grid: the vertex of the parabola through
    the grid minimum and its two neighbours (the grid edge when the minimum is at an end).

    ``log_lams`` [L] increasing and evenly spaced; ``losses`` [..., L].  Returns [...].
    """
    x = np.asarray(log_lams, dtype=np.float64)
    f = np.asarray(losses, dtype=np.float64)
    i = f.argmin(-1)
    j = np.clip(i, 1, len(x) - 2)
    take = lambda k: np.take_along_axis(f, k[..., None], -1)[..., 0]  # noqa: E731
    f0, f1, f2 = take(j - 1), take(j), take(j + 1)
    h = x[1] - x[0]
    curv = f0 - 2 * f1 + f2
    shift = np.where(curv > 0, 0.5 * h * (f0 - f2) / np.where(curv > 0, curv, 1.0), 0.0)
    best = x[j] + np.clip(shift, -h, h)
    return np.where((i == 0) | (i == len(x) - 1), x[i], best)
