"""AdamW across processes: a launcher for small multi-process runs and a sharded batched sweep.

- :func:`launch` runs ``fn(*args)`` in ``world_size`` fresh processes joined in
  one ``torch.distributed`` process group (gloo on the CPU, NCCL on GPUs) and
  returns what each rank returned.  It is what ``torchrun --nproc-per-node N``
  does for a script, for a function instead, so a test or a notebook can run
  a two-process job and look at its results.  No port is chosen: the
  processes meet through a file in a private temporary folder.
- :func:`rank_slice` and :func:`sweep`: a grid of M models (a batched sweep,
  ``lr`` and ``weight_decay`` tensors of length M) split into contiguous
  slices, one per rank; each rank trains its slice as one batched model and
  rank 0 receives the whole grid's results.  With N processes (N GPUs) the
  grid takes about 1/N of the time.  :func:`regression_grid` is such a
  grid, :func:`timed` measures a function on every rank.
- :func:`shard` (FSDP2 on every ``Linear``, then the root), :func:`local_bytes`
  (what this rank holds of a list of tensors) and :func:`train_mlp` (a
  measured run: time per step and bytes per rank of weights, gradients and
  optimizer state).

Only ``torch`` is needed (no plotting), so the module is safe to import anywhere.
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Callable

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


# ------------------------------------------------------------------ launching
def _entry(rank, fn, args, world_size, backend, folder, threads):
    """One process of :func:`launch`: join the group, run ``fn``, save its result."""
    if backend == "nccl":
        torch.cuda.set_device(rank % torch.cuda.device_count())
    if threads:
        torch.set_num_threads(threads)
    dist.init_process_group(backend, init_method=f"file://{folder}/rendezvous",
                            rank=rank, world_size=world_size)
    try:
        result = fn(*args)
        torch.save(result, Path(folder) / f"result-{rank}.pt")
        dist.barrier()    # nobody leaves while another rank may still need it
    finally:
        dist.destroy_process_group()


def launch(fn: Callable, world_size: int = 2, args: tuple = (), *, backend: str | None = None,
           timeout: float = 300.0, threads: int | None = None) -> list:
    """Run ``fn(*args)`` on ranks ``0 … world_size−1``; return the list of their return values.

    ``fn`` must be importable by name (defined in a module, not in a notebook
    cell): each process is started fresh (``spawn``) and imports it.
    ``backend`` defaults to ``"nccl"`` when there are at least ``world_size``
    GPUs, else ``"gloo"``.  ``threads`` sets ``torch.set_num_threads`` in
    each process (default: torch's own choice).  A rank that raises, crashes
    or runs past ``timeout`` seconds stops every rank, and the error names it.
    """
    if world_size < 1:
        raise ValueError(f"Invalid world_size: {world_size} (must be >= 1)")
    if backend is None:
        backend = "nccl" if torch.cuda.device_count() >= world_size else "gloo"
    with tempfile.TemporaryDirectory(prefix="adamw_lab_dist_") as folder:
        context = mp.start_processes(_entry, args=(fn, args, world_size, backend, folder, threads),
                                     nprocs=world_size, join=False, start_method="spawn")
        deadline = time.monotonic() + timeout
        name = getattr(fn, "__qualname__", repr(fn))
        try:
            while not context.join(timeout=max(0.0, min(1.0, deadline - time.monotonic()))):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{name} did not finish on {world_size} ranks "
                                       f"within {timeout:g} s; every rank was stopped")
        except mp.ProcessExitedException as e:
            how = f"exit status {e.exit_code}" if e.exit_code >= 0 else f"signal {-e.exit_code}"
            raise RuntimeError(f"rank {e.error_index} of {name} died ({how}); "
                               f"every rank was stopped") from None
        except mp.ProcessRaisedException as e:
            raise RuntimeError(f"rank {e.error_index} of {name} raised an exception; every rank "
                               f"was stopped. Its traceback:\n{e}") from None
        finally:
            for process in context.processes:   # on any error: nobody is left behind
                if process.is_alive():
                    process.kill()
                process.join()
        return [torch.load(Path(folder) / f"result-{rank}.pt", weights_only=False)
                for rank in range(world_size)]


# ------------------------------------------------------------------ sweeps
def world() -> tuple[int, int]:
    """``(rank, world_size)`` of this process; ``(0, 1)`` outside a process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def rank_slice(n: int, rank: int | None = None, world_size: int | None = None) -> slice:
    """The contiguous part of ``range(n)`` that ``rank`` owns: sizes differ by at most one.

    Without ``rank``/``world_size``, those of the current process group
    (rank 0 of 1 when ``torch.distributed`` is not initialised).
    """
    if rank is None or world_size is None:
        rank, world_size = world()
    base, extra = divmod(n, world_size)
    start = rank * base + min(rank, extra)
    return slice(start, start + base + (rank < extra))


def sweep(train: Callable, lr: torch.Tensor, weight_decay: torch.Tensor, *args):
    """Train a grid of models split across the ranks; rank 0 gets every model's result.

    ``lr`` and ``weight_decay`` are 1-D tensors of length M (one value per
    model, as for a batched sweep).  Each rank calls
    ``train(lr[s], weight_decay[s], *args)`` on its slice ``s`` (see
    :func:`rank_slice`); ``train`` builds a batched model of ``len(lr[s])``
    models and returns a tensor whose first dimension is that number.  The
    slices are gathered in rank order: rank 0 returns the ``[M, …]`` tensor
    of the whole grid, every other rank ``None``.  Outside a process group
    it is ``train(lr, weight_decay, *args)``.  ``train`` gets no model
    indices: models that must differ in more than ``lr`` and
    ``weight_decay`` (their seeds) read their part with :func:`rank_slice`.
    """
    lr, weight_decay = torch.as_tensor(lr), torch.as_tensor(weight_decay)
    if lr.dim() != 1 or lr.shape != weight_decay.shape:
        raise ValueError(f"sweep needs 1-D lr and weight_decay of the same length (one value per "
                         f"model); got shapes {tuple(lr.shape)} and {tuple(weight_decay.shape)}")
    rank, world_size = world()
    if len(lr) < world_size:
        raise ValueError(f"sweep of {len(lr)} models on {world_size} ranks: every rank needs at "
                         f"least one model (use fewer processes)")
    mine = rank_slice(len(lr), rank, world_size)
    result = train(lr[mine], weight_decay[mine], *args)
    if not isinstance(result, torch.Tensor) or result.shape[:1] != (mine.stop - mine.start,):
        raise ValueError(f"train must return a tensor with one row per model of its slice "
                         f"({mine.stop - mine.start}); got "
                         f"{tuple(result.shape) if isinstance(result, torch.Tensor) else type(result).__name__}")
    if world_size == 1:
        return result
    # gather_object: slices may differ in size by one, and gloo has no uneven gather
    parts = [None] * world_size if rank == 0 else None
    dist.gather_object(result.detach().cpu(), parts, dst=0)
    return torch.cat(parts) if rank == 0 else None



def timed(fn: Callable, *args, warmup: bool = False):
    """``(fn(*args), wall seconds, CPU seconds of this process)``.

    In a process group the ranks start together and the wall time is the
    slowest rank's (a barrier before and after).  The CPU time counts only
    what this process computed, so on a machine shared with other work it
    still tells what the run would take with a core of its own.  With
    ``warmup=True`` ``fn`` runs once untimed first (a fresh process pays
    for its first autograd graph and allocations); pass it to
    :func:`launch` as ``functools.partial(timed, warmup=True)``.
    """
    if warmup:
        fn(*args)
    _, world_size = world()
    if world_size > 1:
        dist.barrier()
    start, cpu = time.perf_counter(), time.process_time()
    result = fn(*args)
    cpu = time.process_time() - cpu
    if world_size > 1:
        dist.barrier()
    return result, time.perf_counter() - start, cpu


def regression_grid(lr: torch.Tensor, weight_decay: torch.Tensor, steps: int = 200,
                    seed: int = 0, n_train: int = 64, d: int = 32, hidden: int = 64) -> torch.Tensor:
    """A batched sweep to split with :func:`sweep`: validation MSE of each of M = len(lr) models.

    Every model is the same two-layer MLP (same initialisation, same data:
    ``n_train`` noisy samples of a random linear teacher in ``d`` dimensions,
    fewer samples than weights, so weight decay matters) trained full-batch
    by ``adamw_lab.AdamW`` with its own ``lr[k]`` and ``weight_decay[k]``.
    A model's result does not depend on which other models share its batch.
    """
    from adamw_lab.optim import AdamW

    g = torch.Generator().manual_seed(seed)
    teacher = torch.randn(d, 1, generator=g) / d ** 0.5
    X = torch.randn(n_train + 256, d, generator=g)
    y = X @ teacher + 0.5 * torch.randn(len(X), 1, generator=g)
    (Xtr, Xva), (ytr, yva) = X.split([n_train, 256]), y.split([n_train, 256])
    M = len(lr)
    init = [torch.randn(d, hidden, generator=g) / d ** 0.5, torch.zeros(1, hidden),
            torch.randn(hidden, 1, generator=g) / hidden ** 0.5, torch.zeros(1, 1)]
    model = torch.nn.ParameterList([w.expand(M, *w.shape).clone() for w in init])
    W1, b1, W2, b2 = model

    def loss(X, y):   # mean squared error of each model, shape [M]
        out = torch.relu(X @ W1 + b1) @ W2 + b2
        return ((out - y) ** 2).mean(dim=(1, 2))

    opt = AdamW([{"params": [W1, W2], "weight_decay": weight_decay},
                 {"params": [b1, b2], "weight_decay": 0.0}], lr=lr)   # no decay on biases
    for _ in range(steps):
        opt.zero_grad()
        loss(Xtr, ytr).sum().backward()
        opt.step()
    with torch.no_grad():
        return loss(Xva, yva)


# ------------------------------------------------------------------ FSDP2
def shard(model: torch.nn.Module, mesh=None) -> torch.nn.Module:
    """FSDP2: ``fully_shard`` every ``Linear`` (its own all-gather unit), then the root.

    Every parameter becomes a ``DTensor`` split along dim 0 across the ranks
    of ``mesh`` (default: all ranks, on the CPU under gloo, else the GPUs).
    """
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    if mesh is None:
        kind = "cuda" if dist.get_backend() == "nccl" else "cpu"
        mesh = init_device_mesh(kind, (dist.get_world_size(),))
    for module in model.modules():
        if isinstance(module, torch.nn.Linear):
            fully_shard(module, mesh=mesh)
    return fully_shard(model, mesh=mesh)


def local_bytes(tensors) -> int:
    """Bytes this rank holds of ``tensors`` (of a ``DTensor``, its local shard)."""
    return sum(t.to_local().nbytes if hasattr(t, "to_local") else t.nbytes for t in tensors)


def train_mlp(widths=(256, 1024, 1024, 256), steps: int = 20, batch: int = 64, *,
              sharded: bool = True, impl: str | None = None, seed: int = 0) -> dict:
    """A measured AdamW run of an MLP (Linear+LayerNorm blocks), sharded with FSDP2 in a group.

    Each rank trains on its rows of a global batch of ``batch`` rows.
    Returns this rank's numbers: ``seconds_per_step`` (median over the steps
    after the first), ``params`` (number of weights of the whole model),
    ``weight_norm`` (of the whole trained model, the same on every rank) and
    ``bytes`` of its weights, gradients and optimizer state (m and v).
    """
    from adamw_lab.optim import AdamW, param_groups

    torch.manual_seed(seed)
    layers = []
    for a, b in zip(widths[:-1], widths[1:]):
        layers += [torch.nn.Linear(a, b), torch.nn.LayerNorm(b), torch.nn.GELU()]
    model = torch.nn.Sequential(*layers[:-2])
    n_params = sum(p.numel() for p in model.parameters())
    rank, world_size = world()
    if sharded and world_size > 1:
        model = shard(model)
    opt = AdamW(param_groups(model, 0.1), lr=1e-3, impl=impl)
    g = torch.Generator().manual_seed(seed + 1)
    times = []
    for _ in range(steps):
        x = torch.randn(batch, widths[0], generator=g)[rank_slice(batch, rank, world_size)]
        start = time.perf_counter()
        opt.zero_grad()
        model(x).square().mean().backward()
        opt.step()
        times.append(time.perf_counter() - start)
    params = list(model.parameters())
    states = [t for s in opt.state.values() for k, t in s.items() if k != "step"]
    whole = [p.full_tensor() if hasattr(p, "full_tensor") else p for p in params]
    return {"rank": rank, "world_size": world_size, "params": n_params,
            "weight_norm": torch.cat([p.detach().flatten() for p in whole]).norm().item(),
            "seconds_per_step": sorted(times[1:])[len(times[1:]) // 2],
            "bytes": {"weights": local_bytes(params), "gradients": local_bytes(p.grad for p in params),
                      "optimizer state": local_bytes(states)}}
