"""Entry point of the sandboxed kernel: set resource limits, then become ipykernel.

``python -m adamw_lab.grading.kernel -f CONNECTION_FILE`` is the ``argv`` of the
grader's kernel spec.  The limits apply to the kernel and everything it starts.
"""
from __future__ import annotations

import os
import resource
import sys


def main() -> None:
    memory = int(os.environ.get("ADAMW_LAB_MEMORY_MB", "3072")) * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))          # address space
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 2**20, 64 * 2**20))  # no huge files
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    try:
        os.setsid()  # own process group, so the grader can kill all of it
    except OSError:
        pass  # already a session leader
    os.execv(sys.executable, [sys.executable, "-m", "ipykernel_launcher", *sys.argv[1:]])


if __name__ == "__main__":
    main()
