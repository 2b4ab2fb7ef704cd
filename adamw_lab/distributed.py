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
  grid takes about 1/N of the time.

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
        try:
            while not context.join(timeout=max(0.0, min(1.0, deadline - time.monotonic()))):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{fn.__qualname__} did not finish on {world_size} ranks "
                                       f"within {timeout:g} s; every rank was stopped")
        except mp.ProcessExitedException as e:
            raise RuntimeError(f"rank {e.error_index} of {fn.__qualname__} died "
                               f"({e.exit_code if e.exit_code >= 0 else 'signal ' + str(-e.exit_code)}); "
                               f"every rank was stopped") from None
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
    it is simply ``train(lr, weight_decay, *args)``.
    """
    lr, weight_decay = torch.as_tensor(lr), torch.as_tensor(weight_decay)
    if lr.dim() != 1 or lr.shape != weight_decay.shape:
        raise ValueError(f"sweep needs 1-D lr and weight_decay of the same length (one value per "
                         f"model); got shapes {tuple(lr.shape)} and {tuple(weight_decay.shape)}")
    rank, world_size = world()
    if world_size == 1:
        return train(lr, weight_decay, *args)
    if len(lr) < world_size:
        raise ValueError(f"sweep of {len(lr)} models on {world_size} ranks: every rank needs at "
                         f"least one model (use fewer processes)")
    mine = rank_slice(len(lr))
    result = train(lr[mine], weight_decay[mine], *args)
    if not isinstance(result, torch.Tensor) or result.shape[:1] != (mine.stop - mine.start,):
        raise ValueError(f"train must return a tensor with one row per model of its slice "
                         f"({mine.stop - mine.start}); got "
                         f"{tuple(result.shape) if isinstance(result, torch.Tensor) else type(result).__name__}")
    # gather_object: slices may differ in size by one, and gloo has no uneven gather
    parts = [None] * world_size if rank == 0 else None
    dist.gather_object(result.detach().cpu(), parts, dst=0)
    return torch.cat(parts) if rank == 0 else None

