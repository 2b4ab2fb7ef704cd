"""Entry point of the sandboxed kernel: resource limits, preloaded libraries, then ipykernel.

``python -m adamw_lab.grading.kernel -f CONNECTION_FILE`` is the end of the
``argv`` of the grader's kernel spec (after the ``bwrap`` options).  It runs
inside the sandbox, from the stripped copy of ``adamw_lab`` that holds no
answer key (see :mod:`adamw_lab.grading.sandbox`).  The limits apply to the kernel and everything it starts.
On a system where a limit is not supported (macOS has no address-space limit)
it is skipped: the per-cell timeout still applies.
"""
from __future__ import annotations

import os
import sys


def set_limits(memory_mb: int) -> None:
    try:
        import resource
    except ImportError:  # not a POSIX system
        return
    limits = [
        ("RLIMIT_AS", memory_mb * 2**20),     # address space: a runaway allocation raises MemoryError
        ("RLIMIT_FSIZE", 64 * 2**20),         # no file larger than 64 MiB
        ("RLIMIT_CORE", 0),                   # no core dumps
    ]
    for name, value in limits:
        try:
            resource.setrlimit(getattr(resource, name), (value, value))
        except (AttributeError, ValueError, OSError):
            pass


def main() -> None:
    set_limits(int(os.environ.get("ADAMW_LAB_MEMORY_MB", "3072")))
    try:
        os.setsid()  # own process group, so the grader can kill all of it
    except (AttributeError, OSError):
        pass  # already a session leader
    seed, config = os.environ.get("ADAMW_LAB_MPL_SEED"), os.environ.get("MPLCONFIGDIR")
    if seed and config and os.path.isdir(seed):  # matplotlib's font list, built once by the grader
        import shutil

        shutil.copytree(seed, config, dirs_exist_ok=True)
    # Load the heavy libraries before the first cell: a student's `import torch`
    # is then instant, so the per-cell timeout measures their code, not a cold
    # import (seconds on a busy machine or a fresh install).  The same for the
    # book helpers the notebooks import (matplotlib comes with them).
    import numpy  # noqa: F401
    import torch
    import adamw_lab.book  # noqa: F401

    if os.environ.get("ADAMW_LAB_PRELOAD_OPTIM") == "1":
        # a first optimizer step imports more of torch (2 s of CPU, more when cold): only
        # for exercises whose questions drive torch.optim
        p = torch.zeros(1, requires_grad=True)
        p.grad = torch.zeros(1)
        torch.optim.AdamW([p]).step()
        del p
    from ipykernel import kernelapp

    kernelapp.launch_new_instance(argv=sys.argv[1:])


if __name__ == "__main__":
    main()
