"""A Jupyter kernel that runs one submission's code, inside a bubblewrap sandbox.

Each kernel is started under ``bwrap`` (Debian package ``bubblewrap``) with:

- its own user, PID, network, IPC, UTS and cgroup namespaces: no network,
  nothing it starts outlives it (killing the sandbox ends the namespace);
- a read-only view of the system (``/usr``, the libraries, a few files of
  ``/etc``) and of the Python environment, and nothing else of the machine:
  not the repository, the solutions, the other submissions, the output
  folder, the grader's ``/proc`` or environment;
- a private, size-limited home (its working folder) and ``/tmp``;
- a stripped copy of ``adamw_lab`` (:func:`sandbox_site`): the optimizers and
  the book helpers the exercise notebooks import, but no ``reference``,
  ``theory`` or ``grading`` (the answer key); ``adamw_lab.grading.check``
  there is a stand-in that prints a note.

The kernel talks to the grader over Unix sockets in a folder of its own.  On
timeout it is interrupted (a message on the control channel); if it does not
become idle within a few seconds, the sandbox is killed.  Outputs are counted
but only the first ``keep_bytes`` of text are kept.

Without bubblewrap, :class:`Sandbox` refuses to start unless ``isolated=False``
is asked for explicitly (``adamw-lab grade --no-sandbox``): then the kernel is
a plain process with the same limits and the same stripped package, and the
grades record it.
"""
from __future__ import annotations

import atexit
import functools
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from jupyter_client import KernelManager
from jupyter_client.kernelspec import KernelSpecManager

KERNEL_NAME = "adamw-lab-sandbox"
INTERRUPT_GRACE_S = 3.0
TMPFS_BYTES = 64 * 2**20          # private home and /tmp, each
HOME = "/home/student"
SITE = "/opt/adamw-lab"           # where the stripped package appears inside the sandbox
PACKAGE = Path(__file__).resolve().parents[1]

# What of adamw_lab a student kernel may not import: the answer key and the tools around it
# (the reference rules, the closed forms, the grader; a module that imports them fails there).
SITE_EXCLUDED = ("reference.py", "reference_variants.py", "theory.py", "grading", "bench.py", "conformance.py",
                 "cli.py", "__init__.py", "__pycache__")
SITE_INIT = '''"""adamw_lab inside the grader's sandbox: the optimizers and book helpers, no answer key."""
from adamw_lab.optim import AdamL2, AdamW, AdamWProx, SGDL2, SGDW, param_groups
'''
SITE_GRADING = '''"""Stand-in for adamw_lab.grading inside the grader's sandbox (the answer key is not here)."""


def check(question_id, func=None):
    print(f"{question_id}：评分时不运行检查单元格，评分程序在沙箱外比较你的函数的返回值。")
'''
# Files of /etc a Python process needs (dynamic loader, users, fonts, time zone).
ETC = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "passwd", "group", "nsswitch.conf", "localtime",
       "fonts", "alternatives", "mime.types")


class SandboxUnavailable(RuntimeError):
    """bubblewrap is missing or cannot create namespaces here."""


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


# --- the stripped package ---------------------------------------------------------------

@functools.cache
def sandbox_site() -> Path:
    """A folder holding the stripped ``adamw_lab`` (built once per process, removed at exit)."""
    root = Path(tempfile.mkdtemp(prefix="adamw-lab-site-"))
    atexit.register(shutil.rmtree, root, True)
    pkg = root / "adamw_lab"
    shutil.copytree(PACKAGE, pkg, ignore=lambda folder, names: [
        n for n in names if n == "__pycache__" or (Path(folder) == PACKAGE and n in SITE_EXCLUDED)])
    (pkg / "grading").mkdir()
    (pkg / "__init__.py").write_text(SITE_INIT, encoding="utf-8")
    (pkg / "grading" / "__init__.py").write_text(SITE_GRADING, encoding="utf-8")
    shutil.copy2(Path(__file__).with_name("kernel.py"), pkg / "grading" / "kernel.py")
    # matplotlib's font list, built once here and copied into each kernel's private config folder
    subprocess.run([sys.executable, "-c", "import matplotlib.font_manager"], capture_output=True, timeout=300,
                   env={**os.environ, "MPLCONFIGDIR": str(root / "mplconfig")}, check=False)
    os.chmod(root, 0o755)
    return root


def site_digest() -> str:
    """What the stripped package contains, for the grader's cache key."""
    import hashlib

    digest = hashlib.sha256()
    for path in sorted((sandbox_site() / "adamw_lab").rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            digest.update(str(path.relative_to(sandbox_site())).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


# --- bubblewrap ----------------------------------------------------------------------------

def _python_roots() -> list[str]:
    roots = {os.path.realpath(sys.base_prefix), os.path.realpath(sys.prefix)}
    return sorted(r for r in roots if r not in ("/usr", "/"))


def bwrap_argv(conn_dir: Path, env: dict) -> list[str]:
    """The bwrap command line for one kernel (everything up to and including ``--``)."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        raise SandboxUnavailable("bwrap not found")
    argv = [bwrap, "--unshare-all", "--die-with-parent", "--new-session", "--cap-drop", "ALL",
            "--hostname", "sandbox", "--ro-bind", "/usr", "/usr"]
    for top in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        path = Path("/") / top
        if path.is_symlink():
            argv += ["--symlink", os.readlink(path), str(path)]
        elif path.exists():
            argv += ["--ro-bind", str(path), str(path)]
    for name in ETC:
        argv += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
    for root in _python_roots():
        argv += ["--ro-bind", root, root]
    argv += ["--ro-bind", str(sandbox_site()), SITE,
             "--proc", "/proc", "--dev", "/dev",
             "--size", str(TMPFS_BYTES), "--tmpfs", "/tmp",
             "--size", str(TMPFS_BYTES), "--tmpfs", HOME,
             "--bind", str(conn_dir), str(conn_dir),
             "--remount-ro", "/",          # the sandbox's own root (mount points) is read-only too
             "--chdir", HOME, "--clearenv"]
    for key, value in env.items():
        argv += ["--setenv", key, value]
    return argv + ["--"]


@functools.cache
def bwrap_works() -> str | None:
    """None if a bubblewrap sandbox can be created here, else why not (for the error message)."""
    if shutil.which("bwrap") is None:
        return "bubblewrap (bwrap) is not installed: apt-get install bubblewrap"
    with tempfile.TemporaryDirectory() as tmp:
        argv = bwrap_argv(Path(tmp), {"PATH": "/usr/bin:/bin"}) + [sys.executable, "-c", "print('ok')"]
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"bwrap failed to start: {exc}"
    if proc.returncode != 0 or proc.stdout.strip() != "ok":
        return ("bwrap cannot create a sandbox here (unprivileged user namespaces disabled?): "
                + (proc.stderr.strip() or f"exit status {proc.returncode}")[:300])
    return None


def kernel_environment(memory_mb: int, isolated: bool, preload_optimizer: bool = False) -> dict:
    """The kernel's whole environment: nothing of the grader's (no tokens or keys)."""
    env = {
        "ADAMW_LAB_PRELOAD_OPTIM": "1" if preload_optimizer else "0",
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), "/usr/local/bin", "/usr/bin", "/bin"]),
        "LANG": "C.UTF-8",
        "PYTHONPATH": SITE if isolated else str(sandbox_site()),
        "ADAMW_LAB_MEMORY_MB": str(memory_mb),
        "ADAMW_LAB_GRADING": "1",
        "OMP_NUM_THREADS": "1",           # N submissions in parallel on N cores
        "MKL_NUM_THREADS": "1",
        "MALLOC_ARENA_MAX": "2",          # keeps virtual memory (the limit) honest
        "MPLBACKEND": "Agg",
        "PYTHONWARNINGS": "ignore",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYDEVD_DISABLE_FILE_VALIDATION": "1",
        "JUPYTER_PLATFORM_DIRS": "1",
    }
    if isolated:
        env.update({"HOME": HOME, "TMPDIR": "/tmp", "MPLCONFIGDIR": "/tmp/matplotlib",
                    "ADAMW_LAB_MPL_SEED": f"{SITE}/mplconfig",
                    "XDG_CACHE_HOME": "/tmp/cache", "ADAMW_LAB_CACHE": "/tmp/cache/adamw_lab"})
    return env


class Sandbox:
    def __init__(self, workdir: Path, *, memory_mb: int = 3072, keep_bytes: int = 65536,
                 max_output_bytes: int = 1_000_000, isolated: bool = True, preload_optimizer: bool = False):
        self.workdir = Path(workdir)
        self.memory_mb = memory_mb
        self.keep_bytes = keep_bytes
        self.max_output_bytes = max_output_bytes
        self.isolated = isolated
        if isolated and bwrap_works() is not None:
            raise SandboxUnavailable(bwrap_works())
        self.conn_dir = self.workdir / "conn"
        self.conn_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.home = self.workdir / "home"     # the working folder when not isolated
        self.home.mkdir(mode=0o700, exist_ok=True)
        env = kernel_environment(memory_mb, isolated, preload_optimizer)
        python = [sys.executable, "-m", "adamw_lab.grading.kernel", "-f", "{connection_file}"]
        spec_dir = self.workdir / "spec" / "kernels" / KERNEL_NAME
        spec_dir.mkdir(parents=True, exist_ok=True)
        (spec_dir / "kernel.json").write_text(json.dumps({
            "argv": (bwrap_argv(self.conn_dir, env) if isolated else []) + python,
            "display_name": "adamw-lab sandbox", "language": "python", "interrupt_mode": "message",
        }))
        self.env = {} if isolated else env   # bwrap sets the kernel's environment itself
        self.specs = KernelSpecManager(kernel_dirs=[str(spec_dir.parent)])
        self.km: KernelManager | None = None
        self.kc = None

    # --- lifecycle -------------------------------------------------------------------------
    def start(self, startup_timeout: float = 120.0, attempts: int = 2) -> None:
        """Start the kernel; one retry covers a rare clash when many kernels start at once."""
        for attempt in range(attempts):
            try:
                self._start(startup_timeout)
                return
            except Exception:
                self.kill()
                if attempt == attempts - 1:
                    raise

    def _start(self, startup_timeout: float) -> None:
        for stale in self.conn_dir.iterdir():
            stale.unlink()
        self.km = KernelManager(kernel_name=KERNEL_NAME, kernel_spec_manager=self.specs,
                                transport="ipc", ip=str(self.conn_dir / "kernel"))
        self.km.connection_file = str(self.conn_dir / "kernel.json")
        log = open(self.workdir / "kernel.log", "ab")  # the kernel's own stderr, not the grader's
        # env: the whole environment of the launched process (bwrap clears it again for the kernel)
        env = self.env or {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        self.km.start_kernel(cwd=str(self.home), env=env, stdout=log, stderr=log)
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
        """Kill the kernel and everything it started (its process group; its PID namespace)."""
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
    def interrupt(self) -> None:
        try:
            self.km.interrupt_kernel()
        except Exception:
            pass

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
                self.interrupt()
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
            if not isinstance(msg, dict) or msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind, content = msg.get("msg_type"), msg.get("content", {})
            if kind == "status" and content.get("execution_state") == "idle":
                break
            size = len(json.dumps(content.get("data", content.get("text", "")))) if kind != "status" else 0
            result.output_bytes += size
            if result.output_bytes > self.max_output_bytes:
                result.truncated = True
            if kind == "stream" and content.get("name") == "stdout" and kept < self.keep_bytes:
                text = str(content.get("text", ""))[: self.keep_bytes - kept]
                stdout_parts.append(text)
                kept += len(text)
            elif kind == "error" and result.status != "timeout":
                result.status = "error"
                result.error = f"{content.get('ename', '')}: {str(content.get('evalue', ''))[:300]}"
        result.stdout = "".join(stdout_parts)
        result.seconds = time.monotonic() - start
        return result
