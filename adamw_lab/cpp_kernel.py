"""The fused CPU kernel: ``csrc/adam_step.cpp``, compiled at first use, called through ctypes.

The C++ twin of :mod:`adamw_lab.triton_kernels`: the same tensor table and
hyperparameter table (:func:`adamw_lab.functional.fused_launches`), the same
formula, one pass over memory for all tensors of a group, split between the
threads of ``torch.get_num_threads()`` (``-fopenmp`` links libgomp; once
torch is imported that is torch's own copy, so both share one thread pool).
It includes no PyTorch header, so it compiles in about a second, with the
C++ compiler that ``torch.compile`` needs too.  The library is cached in
``$ADAMW_LAB_CACHE`` (default ``$XDG_CACHE_HOME/adamw_lab``, i.e.
``~/.cache/adamw_lab``), keyed by the source, the flags, the compiler and
the CPU.
"""
from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

import torch

from adamw_lab import functional as F

SOURCE = Path(__file__).with_name("csrc") / "adam_step.cpp"
BLOCK = 16384            # elements per unit of work: threads take contiguous runs of blocks
PREFETCH_BYTES = 2048    # how far ahead each array is prefetched; 0 turns it off (bench --tune)
# -fno-math-errno lets sqrt vectorise; without OpenMP (Apple's clang) the loop runs on one thread
FLAG_SETS = (["-O3", "-march=native", "-fno-math-errno", "-fopenmp"],
             ["-O3", "-march=native", "-fno-math-errno"],
             ["-O3", "-fno-math-errno"])
_DTYPES = {torch.float32: "float", torch.float64: "double"}


def compiler() -> str | None:
    """The C++ compiler: ``$CXX`` if set, else the first of g++, c++, clang++ on the PATH."""
    names = [os.environ["CXX"]] if os.environ.get("CXX") else ["g++", "c++", "clang++"]
    return next((shutil.which(name) for name in names if shutil.which(name)), None)


def _cache_dir() -> Path:
    if os.environ.get("ADAMW_LAB_CACHE"):
        return Path(os.environ["ADAMW_LAB_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "adamw_lab"


def _cpu_id() -> str:
    """What -march=native depends on: the CPU's model and feature flags."""
    try:
        with open("/proc/cpuinfo") as f:
            return "".join(line for line in f if line.startswith(("model name", "flags", "Features")))[:4096]
    except OSError:
        return platform.processor() + platform.machine()


class BuildError(RuntimeError):
    pass


def library() -> ctypes.CDLL:
    """The compiled kernel (compiled once per machine, then loaded from the cache).

    Raises :class:`BuildError`, saying why and what to do, when it cannot be built.
    """
    lib, error = _build()
    if lib is None:
        raise BuildError(error)
    return lib


@functools.cache
def _build():
    """(library, None) or (None, error message); tried once per process."""
    cxx = compiler()
    if cxx is None:
        wanted = f"$CXX={os.environ['CXX']!r} was not found" if os.environ.get("CXX") else "none on the PATH"
        return None, (f"impl='cpp' needs a C++ compiler ({wanted}): install g++ or clang++ "
                      "(Debian/Ubuntu: `apt install g++`) or set $CXX, or choose impl='foreach'")
    source = SOURCE.read_text()
    errors = []
    for flags in FLAG_SETS:
        key = hashlib.sha256("\0".join([source, cxx, *flags, _cpu_id()]).encode()).hexdigest()[:16]
        path = _cache_dir() / f"adam_step-{key}.so"
        try:
            if not path.exists():
                _compile(cxx, flags, path)
            lib = ctypes.CDLL(str(path))
        except subprocess.CalledProcessError as e:
            errors.append(f"$ {' '.join(e.cmd)}  (exit status {e.returncode})\n{e.stderr}".strip())
            continue
        except OSError as e:   # an unwritable cache, a library that does not load
            errors.append(f"{e} (set $ADAMW_LAB_CACHE to a writable folder)")
            continue
        for dtype in _DTYPES.values():
            fn = getattr(lib, f"adam_step_{dtype}")
            fn.restype = None
            fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64,
                           ctypes.c_void_p, ctypes.c_int64, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                           ctypes.c_int64, ctypes.c_int]
        return lib, None
    return None, (f"could not compile adamw_lab's C++ kernel with {cxx}; choose impl='foreach' "
                  "(or set $CXX to a working compiler). The compiler said:\n" + "\n\n".join(errors))


def _compile(cxx, flags, path):
    path.parent.mkdir(parents=True, exist_ok=True)
    # compile to a private name, then rename: parallel processes never load half a file
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=path.parent)
    os.close(fd)
    try:
        subprocess.run([cxx, "-std=c++17", "-shared", "-fPIC", *flags, str(SOURCE), "-o", tmp],
                       check=True, capture_output=True, text=True)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def available(device) -> bool:
    """Whether :func:`adam_cpp` can run on ``device``: the CPU, with a working C++ compiler."""
    if torch.device(device).type != "cpu":
        return False
    try:
        library()
    except BuildError:
        return False
    return True


def adam_cpp(params, grads, ms, vs, vmaxs, *, steps, lr, weight_decay, beta1, beta2, eps,
             decay, maximize):
    """The fused CPU kernel; same signature as :func:`adamw_lab.functional.adam_per_tensor`.

    float32 and float64 tensors; any other dtype (bfloat16, float16) goes
    through :func:`~adamw_lab.functional.adam_per_tensor`.
    """
    lib = library()
    if any(p.dtype not in _DTYPES for p in params):   # bfloat16, float16: the per-tensor rule
        other = [i for i, p in enumerate(params) if p.dtype not in _DTYPES]
        rest = [i for i, p in enumerate(params) if p.dtype in _DTYPES]
        F.adam_per_tensor(*_pick(other, params, grads, ms, vs, vmaxs), steps=_pick(other, steps)[0],
                          lr=lr, weight_decay=weight_decay, beta1=beta1, beta2=beta2, eps=eps,
                          decay=decay, maximize=maximize)
        params, grads, ms, vs, vmaxs = _pick(rest, params, grads, ms, vs, vmaxs)
        steps = _pick(rest, steps)[0]
    for launch in F.fused_launches(params, grads, ms, vs, vmaxs, steps=steps, lr=lr,
                                   weight_decay=weight_decay, beta1=beta1, beta2=beta2, eps=eps):
        rows = torch.tensor(launch.rows, dtype=torch.int64)
        hyper = torch.tensor(launch.hyper, dtype=torch.float64)
        blocks = F.block_table(tuple(r[5] for r in launch.rows), "cpu", BLOCK)
        getattr(lib, f"adam_step_{_DTYPES[launch.dtype]}")(
            rows.data_ptr(), blocks.data_ptr(), blocks.shape[0], BLOCK, hyper.data_ptr(),
            launch.n_models, F.DECAYS.index(decay), bool(vmaxs), bool(maximize), PREFETCH_BYTES,
            torch.get_num_threads())
        launch.finish()


def _pick(idx, *lists):
    """The entries ``idx`` of each list (an empty list, ``vmaxs`` without amsgrad, stays empty)."""
    return [[xs[i] for i in idx] if xs else xs for xs in lists]
