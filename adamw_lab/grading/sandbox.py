"""A Jupyter kernel that runs one submission's code, with limits.

The kernel is a separate process, started through :mod:`adamw_lab.grading.kernel`
(which sets the memory and file-size limits, then becomes ``ipykernel``), with
its working directory in a fresh temporary folder.  :class:`Sandbox` sends it
code and collects what comes back, with a timeout per execution:

- on timeout, the kernel is interrupted (``SIGINT``); if it does not become
  idle within a few seconds (a loop that swallows ``KeyboardInterrupt``), its
  whole process group is killed;
- outputs are counted but only the first ``keep_bytes`` of text are kept, so a
  cell that prints megabytes cannot fill the grader's memory.
"""
from __future__ import annotations

import json
import os
import queue
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from jupyter_client import KernelManager
from jupyter_client.kernelspec import KernelSpecManager

KERNEL_NAME = "adamw-lab-sandbox"
INTERRUPT_GRACE_S = 3.0


@dataclass
class Execution:
    status: str                 # "ok", "error", "timeout", "died"
    stdout: str = ""            # first keep_bytes of stdout
    error: str = ""             # "ename: evalue" of a raised exception
    output_bytes: int = 0       # all output, counted
    truncated: bool = False
    killed: bool = False        # the kernel had to be killed (state lost)
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


# Only these variables of the grader's environment reach student code (no tokens or keys).
PASSED_ENV = ("PATH", "HOME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "PYTHONPATH", "VIRTUAL_ENV", "CONDA_PREFIX",
              "MPLCONFIGDIR", "XDG_CACHE_HOME", "XDG_CONFIG_HOME", "SYSTEMROOT")


def kernel_environment(memory_mb: int) -> dict:
    env = {k: v for k, v in os.environ.items() if k in PASSED_ENV or k.startswith("LC_")}
    env.update({
        "ADAMW_LAB_MEMORY_MB": str(memory_mb),
        "ADAMW_LAB_GRADING": "1",
        "OMP_NUM_THREADS": "1",           # N submissions in parallel on N cores
        "MKL_NUM_THREADS": "1",
        "MALLOC_ARENA_MAX": "2",          # keeps virtual memory (the limit) honest
        "MPLBACKEND": "Agg",
        "PYTHONWARNINGS": "ignore",
        "PYDEVD_DISABLE_FILE_VALIDATION": "1",
        "JUPYTER_PLATFORM_DIRS": "1",
    })
    return env


class Sandbox:
    def __init__(self, workdir: Path, *, memory_mb: int = 3072, keep_bytes: int = 65536,
                 max_output_bytes: int = 1_000_000):
        self.workdir = Path(workdir)
        self.memory_mb = memory_mb
        self.keep_bytes = keep_bytes
        self.max_output_bytes = max_output_bytes
        spec_dir = self.workdir / ".kernelspec" / "kernels" / KERNEL_NAME
        spec_dir.mkdir(parents=True, exist_ok=True)
        (spec_dir / "kernel.json").write_text(json.dumps({
            "argv": [sys.executable, "-m", "adamw_lab.grading.kernel", "-f", "{connection_file}"],
            "display_name": "adamw-lab sandbox", "language": "python",
        }))
        self.specs = KernelSpecManager(kernel_dirs=[str(spec_dir.parent)])
        self.km: KernelManager | None = None
        self.kc = None

    # --- lifecycle -------------------------------------------------------------------------
    def start(self, startup_timeout: float = 60.0, attempts: int = 2) -> None:
        """Start the kernel; one retry covers a rare port clash when many kernels start at once."""
        for attempt in range(attempts):
            try:
                self._start(startup_timeout)
                return
            except Exception:
                self.kill()
                if attempt == attempts - 1:
                    raise

    def _start(self, startup_timeout: float) -> None:
        self.km = KernelManager(kernel_name=KERNEL_NAME, kernel_spec_manager=self.specs)
        self.km.connection_file = str(self.workdir / ".kernel-connection.json")
        log = open(self.workdir / ".kernel.log", "ab")  # the kernel's own stderr, not the grader's
        self.km.start_kernel(cwd=str(self.workdir), env=kernel_environment(self.memory_mb),
                             stdout=log, stderr=log)
        log.close()
        self.kc = self.km.blocking_client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=startup_timeout)

    def _pid(self) -> int | None:
        try:
            return self.km.provisioner.process.pid  # type: ignore[union-attr]
        except AttributeError:
            return None

    def kill(self) -> None:
        """Kill the kernel and everything it started (its process group)."""
        if self.km is None:
            return
        pid = self._pid()
        if self.kc is not None:
            self.kc.stop_channels()
        if pid:
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        try:
            self.km.shutdown_kernel(now=True)
        except Exception:
            pass
        try:
            self.km.cleanup_resources()
        except Exception:
            pass
        self.km = self.kc = None

    def restart(self) -> None:
        self.kill()
        self.start()

    def alive(self) -> bool:
        return self.km is not None and self.km.is_alive()

    # --- execution ---------------------------------------------------------------------------
    def run(self, code: str, timeout: float) -> Execution:
        """Execute ``code``; never raises for anything the code does."""
        if not self.alive():
            return Execution("died", notes=["kernel not running"])
        start = time.monotonic()
        msg_id = self.kc.execute(code, store_history=False, allow_stdin=False, stop_on_error=False)
        result = Execution("ok")
        stdout_parts: list[str] = []
        kept = 0
        deadline = start + timeout
        interrupted_at = None
        while True:
            now = time.monotonic()
            if interrupted_at is None and now > deadline:
                self.km.interrupt_kernel()
                interrupted_at = now
                result.status = "timeout"
            if interrupted_at is not None and now > interrupted_at + INTERRUPT_GRACE_S:
                self.kill()                      # it ignored the interrupt
                result.killed = True
                break
            try:
                msg = self.kc.get_iopub_msg(timeout=0.2)
            except queue.Empty:
                if not self.km.is_alive():
                    result.status, result.killed = "died", True
                    self.kill()
                    break
                continue
            except Exception:  # a message the protocol cannot parse: the code broke the kernel itself
                result.status, result.killed = "died", True
                result.error = "malformed message from the kernel"
                self.kill()
                break
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "status" and content.get("execution_state") == "idle":
                break
            size = len(json.dumps(content.get("data", content.get("text", "")))) if kind != "status" else 0
            result.output_bytes += size
            if result.output_bytes > self.max_output_bytes:
                result.truncated = True
            if kind == "stream" and content.get("name") == "stdout" and kept < self.keep_bytes:
                text = content.get("text", "")[: self.keep_bytes - kept]
                stdout_parts.append(text)
                kept += len(text)
            elif kind == "error" and result.status != "timeout":
                result.status = "error"
                result.error = f"{content.get('ename', '')}: {str(content.get('evalue', ''))[:300]}"
        result.stdout = "".join(stdout_parts)
        result.seconds = time.monotonic() - start
        return result
