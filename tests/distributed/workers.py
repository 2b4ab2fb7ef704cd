"""What each rank runs in the two-process tests (tests/test_distributed.py).

Every case trains the same small model on the same global batch as a
single-process ``torch.optim.AdamW`` run and returns the largest relative
error of the final weights, ``max_p ‖p − p_ref‖∞ / ‖p_ref‖∞``.  Each rank
sees its half of the global batch; DDP and FSDP2 average the gradients, so
the distributed step equals the single-process step on the whole batch.

The functions are called through :func:`adamw_lab.distributed.launch`
(fresh processes import this module by name).  Each runs a list of cases
and saves each result as soon as it has it, so a rank that crashes in one
case still reports the cases before it.
"""
from __future__ import annotations

import os
import signal
import time
import traceback
from pathlib import Path

import torch
from torch.distributed.checkpoint.api import CheckpointException
import torch.distributed as dist
from torch.distributed.checkpoint.state_dict import (get_model_state_dict,
                                                     get_optimizer_state_dict,
                                                     set_model_state_dict,
                                                     set_optimizer_state_dict)

import adamw_lab
import adamw_lab.distributed

STEPS, GLOBAL_BATCH, LR, WD, MAX_NORM = 20, 8, 1e-2, 0.1, 0.05
CONFIGS = ("ddp", "fsdp2", "zero", "fsdp2_clip")


def device():
    """This rank's GPU under NCCL, else the CPU."""
    nccl = dist.is_initialized() and dist.get_backend() == "nccl"
    return torch.device("cuda", torch.cuda.current_device()) if nccl else torch.device("cpu")


def make_model(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.LayerNorm(8), torch.nn.Tanh(),
                               torch.nn.Linear(8, 4)).to(device())


def batches(steps=STEPS, seed=1):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(GLOBAL_BATCH, 6, generator=g).to(device()),
             torch.randn(GLOBAL_BATCH, 4, generator=g).to(device())) for _ in range(steps)]


def local(batch):
    """This rank's rows of a global batch (all of it outside a process group)."""
    rank, world_size = adamw_lab.distributed.world()
    x, y = batch
    part = adamw_lab.distributed.rank_slice(len(x), rank, world_size)
    return x[part], y[part]


def train(model, opt, data, clip=None):
    for x, y in data:
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        if clip is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        opt.step()


def reference(steps=STEPS, clip=None):
    """Single process, ``torch.optim.AdamW``, the whole global batch at each step."""
    model = make_model()
    opt = torch.optim.AdamW(adamw_lab.param_groups(model, WD), lr=LR)
    train(model, opt, batches(steps), clip)
    return model


def full(p):
    """The whole parameter on every rank (a DTensor shard is gathered)."""
    return p.full_tensor() if isinstance(p, torch.distributed.tensor.DTensor) else p


def max_rel_error(model, ref):
    return max(((full(p) - q).abs().max() / q.abs().max()).item()
               for p, q in zip(model.parameters(), ref.parameters()))


def shard(model):
    return adamw_lab.distributed.shard(model)


def build(config, impl):
    """(model as the ranks see it, optimizer, clip) for ``config``."""
    model = make_model()
    if config in ("ddp", "zero"):
        model = torch.nn.parallel.DistributedDataParallel(model)
        groups = adamw_lab.param_groups(model.module, WD)
    else:
        model = shard(model)
        groups = adamw_lab.param_groups(model, WD)   # DTensors keep their global shape
    if config == "zero":
        from torch.distributed.optim import ZeroRedundancyOptimizer
        opt = ZeroRedundancyOptimizer(
            groups, optimizer_class=adamw_lab.AdamW, lr=LR, impl=impl)
    else:
        opt = adamw_lab.AdamW(groups, lr=LR, impl=impl)
    return model, opt, MAX_NORM if config.endswith("clip") else None


def run(cases, folder):
    """Rank function: each case ``(function name, *args)`` of this module in turn.

    Rank 0 saves the results so far to ``folder/results.pt`` after every
    case, an error as its traceback, so a crash in one case loses no other.
    """
    results = {}
    for case in cases:
        try:
            results[case] = ("ok", globals()[case[0]](*case[1:]))
        except (Exception, CheckpointException):   # DCP raises a BaseException
            results[case] = ("error", traceback.format_exc(limit=6))
        if dist.get_rank() == 0:
            torch.save(results, Path(folder) / "results.pt")
    return results


def equivalence(config, impl):
    """``config`` with ``impl`` against the single-process reference after STEPS steps."""
    model, opt, clip = build(config, impl)
    module = model.module if config in ("ddp", "zero") else model
    train(model, opt, [local(b) for b in batches()], clip)
    return max_rel_error(module, reference(clip=clip))


def decay_rules():
    """The weight decay each parameter gets under FSDP2, by name, and its local shape."""
    model = shard(make_model())
    opt = adamw_lab.AdamW(adamw_lab.param_groups(model, WD), lr=LR)
    decay = {id(p): g["weight_decay"] for g in opt.param_groups for p in g["params"]}
    return {name: (decay[id(p)], tuple(p.to_local().shape)) for name, p in model.named_parameters()}


# ---------------------------------------------------------------- checkpoints
def _save(model, opt, folder):
    import torch.distributed.checkpoint as dcp
    dcp.save({"model": get_model_state_dict(model), "optim": get_optimizer_state_dict(model, opt)},
             checkpoint_id=folder)


def _load(model, opt, folder):
    import torch.distributed.checkpoint as dcp
    state = {"model": get_model_state_dict(model), "optim": get_optimizer_state_dict(model, opt)}
    dcp.load(state, checkpoint_id=folder)
    set_model_state_dict(model, state["model"])
    set_optimizer_state_dict(model, opt, state["optim"])


def _optimizer(kind, model, impl):
    groups = adamw_lab.param_groups(model, WD)
    return torch.optim.AdamW(groups, lr=LR) if kind == "torch" else adamw_lab.AdamW(groups, lr=LR, impl=impl)


def checkpoint_half(phase, folder, saver="adamw_lab", loader="adamw_lab", impl="foreach"):
    """Half of a run of 2·H steps: ``phase`` "first" trains H steps and saves, "second" loads
    and trains the other H; under a process group the model is sharded with FSDP2.

    Returns the max relative error of the weights at the end of the phase
    against the uninterrupted single-process run of that many steps.
    """
    half = STEPS // 2
    model = make_model()
    if adamw_lab.distributed.world()[1] > 1:
        model = shard(model)
    data = [local(b) for b in batches()]
    if phase == "first":
        opt = _optimizer(saver, model, impl)
        train(model, opt, data[:half])
        _save(model, opt, folder)
        return max_rel_error(model, reference(steps=half))
    opt = _optimizer(loader, model, impl)
    _load(model, opt, folder)
    train(model, opt, data[half:])
    return max_rel_error(model, reference())



# ---------------------------------------------------------------- sweeps
def sweep_grid(n_models):
    """A grid of ``n_models`` (lr, weight_decay) pairs."""
    lr = torch.logspace(-3, -1, n_models)
    wd = torch.logspace(-2, 0, n_models).flip(0)
    return lr, wd


def sweep(n_models, steps=20):
    """Rank function: the grid trained by :func:`adamw_lab.distributed.sweep` (rank 0 gets it)."""
    lr, wd = sweep_grid(n_models)
    return adamw_lab.distributed.sweep(adamw_lab.distributed.regression_grid, lr, wd, steps)


def batched_sweep_under_fsdp2(impl):
    """Per-model lr on a batched model whose model dimension FSDP2 shards (each rank holds
    half of the models): what constructing the optimizer does, as (outcome, message)."""
    torch.manual_seed(0)
    model = torch.nn.Module()
    model.W = torch.nn.Parameter(torch.randn(4, 3, 2, device=device()))
    model = adamw_lab.distributed.shard(model)
    try:
        adamw_lab.AdamW(model.parameters(), lr=torch.tensor([1e-3, 1e-2, 1e-1, 1.0]), impl=impl)
    except ValueError as e:
        return "ValueError", str(e)
    return "constructed", ""


def mlp():
    """Rank function: a small measured FSDP2 run (adamw_lab.distributed.train_mlp)."""
    return adamw_lab.distributed.train_mlp(widths=(8, 16, 4), steps=3)


def crash_on_rank_1():
    """Rank 1 dies as a segmentation fault would; rank 0 would wait much longer.

    (Rank 0 does not wait in a collective: there it would fail too, at the same
    moment, and the launcher may report either rank.)"""
    if dist.get_rank() == 1:
        os.kill(os.getpid(), signal.SIGSEGV)
    time.sleep(120)


def raise_on_rank_1():
    if dist.get_rank() == 1:
        raise ValueError("rank 1 has bad data")
    time.sleep(120)


def sleep_forever():
    time.sleep(3600)
