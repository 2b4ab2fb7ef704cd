"""Benchmark of one AdamW step: ``python -m adamw_lab.bench [--size small|full] [--json PATH]``.

For every implementation, next to ``torch.optim.AdamW(foreach=True)`` and
``(fused=True)`` measured in the same run, it prints the time per step, the
effective bandwidth at 28 bytes per fp32 parameter (read w, g, m, v; write
w, m, v), the ratio to torch fused (> 1 is faster; the median and the
interquartile range of the ratios paired within each timing round), the
share of a streaming-bandwidth roofline (a plain copy) measured in the same
run, and the compile time where there is one (``torch.compile``'s first
step, the C++ kernel's build from an empty cache).  Two workloads: one flat
tensor, and the parameter list of a GPT-2-small-shaped transformer (148
tensors).
"""
from __future__ import annotations

import argparse
import datetime
import json
import platform
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch
import torch._inductor.config  # noqa: F401  (cold-compile timing below)

from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

import adamw_lab
from adamw_lab import cpp_kernel, kernels, triton_kernels

BYTES_PER_PARAM = 28   # fp32: read w, g, m, v (16 B) + write w, m, v (12 B)

SIZES = {   # (flat tensor length, GPT-2 shape: d_model, n_layer, vocab, context)
    "small": (4_000_000, (128, 12, 8192, 256)),          # the notebook's CPU run: seconds
    "cpu": (20_000_000, (384, 12, 50257, 1024)),         # ~41M parameters
    "full": (20_000_000, (768, 12, 50257, 1024)),        # GPT-2 small itself, ~124M parameters
}


def gpt2_shapes(d_model=768, n_layer=12, vocab=50257, context=1024):
    """Parameter shapes of a GPT-2-style transformer (GPT-2 small with the defaults)."""
    d = d_model
    shapes = [(vocab, d), (context, d)]
    for _ in range(n_layer):
        shapes += [(d,), (d,),                    # ln_1
                   (d, 3 * d), (3 * d,),          # attention qkv
                   (d, d), (d,),                  # attention output
                   (d,), (d,),                    # ln_2
                   (d, 4 * d), (4 * d,),          # mlp in
                   (4 * d, d), (d,)]              # mlp out
    return shapes + [(d,), (d,)]                  # ln_f


def make_params(shapes, device, seed=0):
    g = torch.Generator(device="cpu").manual_seed(seed)
    params = []
    for shape in shapes:
        p = torch.randn(shape, generator=g).to(device).requires_grad_()
        p.grad = torch.randn(shape, generator=g).to(device) * 1e-2
        params.append(p)
    return params


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def calls_per_sample(fn, device, min_time=0.04):
    """How many calls of ``fn`` take at least ``min_time`` seconds (after one warm-up call)."""
    fn()
    _sync(device)
    n = 1
    while n < 4096:
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        _sync(device)
        if time.perf_counter() - t0 > min_time:
            break
        n *= 2
    return n


def time_interleaved(fns, device, *, rounds=7):
    """Seconds per call of each of ``fns``: the median of :func:`time_rounds`."""
    return [statistics.median(s) for s in time_rounds(fns, device, rounds=rounds)]


def time_rounds(fns, device, *, rounds=7):
    """Seconds per call of each of ``fns`` (a list per function, one entry per round).

    In each round every function runs in turn.  Taking turns spreads slow
    drifts of a shared machine (clock, neighbours) over all contenders
    instead of penalising whichever ran during them, and entries of the same
    round are comparable: their ratio is one paired measurement.
    """
    counts = [calls_per_sample(fn, device) for fn in fns]
    samples = [[] for _ in fns]
    for _ in range(rounds):
        for fn, n, out in zip(fns, counts, samples):
            _sync(device)
            t0 = time.perf_counter()
            for _ in range(n):
                fn()
            _sync(device)
            out.append((time.perf_counter() - t0) / n)
    return samples


def vs_reference(reference, times):
    """Speed relative to ``reference`` from paired per-round times (> 1 is faster):
    the median of the per-round ratios and their interquartile range."""
    ratios = [r / t for r, t in zip(reference, times)]
    if len(ratios) < 2:
        return ratios[0], [ratios[0], ratios[0]]
    q1, median, q3 = statistics.quantiles(ratios, n=4, method="inclusive")
    return median, [q1, q3]


def stream_bandwidth(n_params, device):
    """Bytes per second of the best plain streaming op over as many bytes as one AdamW step.

    Best of ``dst.copy_(src)`` and the in-place ``x.neg_()``, counting each
    byte read and each byte written.  (On a CPU a copy also reads ``dst``
    before writing it, a cost an in-place update does not pay.)
    """
    src = torch.ones(7 * n_params // 2, device=device)
    dst = torch.empty_like(src)
    seconds = time_interleaved([lambda: dst.copy_(src), lambda: src.neg_()], device)
    return 2 * src.numel() * 4 / min(seconds)


def contenders(device):
    """(name, optimizer factory, compiles) for every implementation on ``device``."""
    out = [("torch foreach", lambda ps: torch.optim.AdamW(ps, foreach=True), None),
           ("torch fused", lambda ps: torch.optim.AdamW(ps, fused=True), None)]
    for impl in kernels.available_impls(device):
        if impl == "triton" and triton_kernels.interpreting():
            continue
        out.append((f"adamw_lab {impl}", lambda ps, impl=impl: adamw_lab.AdamW(ps, impl=impl),
                    impl if impl in ("compiled", "cpp") else None))
    return out


def cold_build_seconds() -> float:
    """Seconds to compile the C++ kernel from scratch (into a fresh cache)."""
    with tempfile.TemporaryDirectory() as cache:
        t0 = time.perf_counter()
        cpp_kernel._compile(cpp_kernel.compiler(), cpp_kernel.FLAG_SETS[0], Path(cache) / "k.so")
        return time.perf_counter() - t0


def bench_workload(label, shapes, device, skip=()):
    n_params = sum(torch.Size(s).numel() for s in shapes)
    params = make_params(shapes, device)
    roofline = stream_bandwidth(n_params, device)
    names, steps, compile_s = [], [], []
    for name, factory, compiles in contenders(device):
        if any(s in name for s in skip):
            continue
        opt = factory(params)   # all optimizers update the same parameters, each with its own state
        t0 = time.perf_counter()
        with torch._inductor.config.patch(force_disable_caches=True), warnings.catch_warnings():
            warnings.simplefilter("ignore")   # time a cold compile, without cache notices
            opt.step()          # first step: allocates the state (and compiles)
        _sync(device)
        names.append(name)
        steps.append(opt.step)
        compile_s.append(time.perf_counter() - t0 if compiles == "compiled"
                         else cold_build_seconds() if compiles == "cpp" else None)
    samples = time_rounds(steps, device)
    fused = samples[names.index("torch fused")]
    rows = []
    for name, times, c in zip(names, samples, compile_s):
        s = statistics.median(times)
        ratio, iqr = vs_reference(fused, times)
        rows.append(dict(workload=label, impl=name, n_params=n_params, n_tensors=len(shapes),
                         ms_per_step=s * 1e3, gb_per_s=BYTES_PER_PARAM * n_params / s / 1e9,
                         compile_s=c, vs_torch_fused=ratio, vs_torch_fused_iqr=iqr))
    for r in rows:
        r["pct_of_stream_roofline"] = 100 * r["gb_per_s"] / (roofline / 1e9)
        r["stream_gb_per_s"] = roofline / 1e9
    return rows


class CountBytes(TorchDispatchMode):
    """Adds up the bytes that every aten operation reads (its tensor arguments) and
    writes (its results): the memory traffic of eager PyTorch code if no operand
    stayed in a cache between operations.  Kernels that PyTorch does not see
    (Triton, compiled code) are not counted."""

    def __init__(self):
        super().__init__()
        self.bytes = 0
        self.ops = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        written = args[0] if out is None else out   # in-place foreach ops return None
        for t in tree_leaves((args, kwargs, written)):
            if isinstance(t, torch.Tensor) and t.dim() > 0:   # 0-d scalars: not traffic
                self.bytes += t.numel() * t.element_size()
        self.ops += 1
        return out


def bytes_per_param(impl, n=1_000_000):
    """Bytes read + written per fp32 parameter by one step of ``adamw_lab.AdamW(impl=impl)``."""
    (p,) = make_params([(n,)], torch.device("cpu"))
    opt = adamw_lab.AdamW([p], impl=impl)
    opt.step()   # the first step allocates the state
    with CountBytes() as counter:
        opt.step()
    return counter.bytes / n, counter.ops


def tune_triton(n_params, device, configs=((1024, 4), (2048, 4), (2048, 8), (4096, 8), (8192, 16))):
    """Time the Triton kernel on one flat tensor for a few (BLOCK, num_warps); return rows."""
    params = make_params([(n_params,)], device)
    default = (triton_kernels.BLOCK, triton_kernels.NUM_WARPS)
    rows = []
    try:
        for block, warps in configs:
            triton_kernels.BLOCK, triton_kernels.NUM_WARPS = block, warps
            (seconds,) = time_interleaved([adamw_lab.AdamW(params, impl="triton").step], device)
            rows.append(dict(block=block, num_warps=warps, ms_per_step=seconds * 1e3,
                             gb_per_s=BYTES_PER_PARAM * n_params / seconds / 1e9))
    finally:
        triton_kernels.BLOCK, triton_kernels.NUM_WARPS = default
    return rows


def tune_prefetch(n_params, distances=(0, 512, 1024, 2048, 4096, 8192), rounds=11):
    """Time the C++ kernel on one flat tensor for several prefetch distances (bytes), with
    torch fused in the same interleaved run; return rows (``prefetch_bytes`` None: torch fused)."""
    params = make_params([(n_params,)], torch.device("cpu"))
    opt, fused = adamw_lab.AdamW(params, impl="cpp"), torch.optim.AdamW(params, fused=True)
    opt.step()
    fused.step()
    default = cpp_kernel.PREFETCH_BYTES

    def at(distance):
        def step():
            cpp_kernel.PREFETCH_BYTES = distance
            opt.step()
        return step

    try:
        samples = time_rounds([fused.step] + [at(d) for d in distances], torch.device("cpu"),
                              rounds=rounds)
    finally:
        cpp_kernel.PREFETCH_BYTES = default
    rows = []
    for d, times in zip((None,) + tuple(distances), samples):
        t = statistics.median(times)
        ratio, iqr = vs_reference(samples[0], times)
        rows.append(dict(prefetch_bytes=d, ms_per_step=t * 1e3, gb_per_s=BYTES_PER_PARAM * n_params / t / 1e9,
                         vs_torch_fused=ratio, vs_torch_fused_iqr=iqr))
    return rows


def machine():
    info = dict(platform=platform.platform(), processor=platform.processor() or platform.machine(),
                cpu_threads=torch.get_num_threads(), python=platform.python_version(),
                torch=torch.__version__, numpy=__import__("numpy").__version__,
                triton=getattr(triton_kernels.triton, "__version__", None))
    try:
        with open("/proc/cpuinfo") as f:
            info["cpu"] = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
        info["cuda"] = torch.version.cuda
    return info


def run(size="cpu", device=None, skip=()):
    """Run both workloads; return the record (a dict)."""
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    flat, gpt = SIZES[size]
    rows = bench_workload(f"flat {flat / 1e6:g}M", [(flat,)], device, skip)
    rows += bench_workload(f"GPT-2 shapes d={gpt[0]}", gpt2_shapes(*gpt), device, skip)
    return dict(date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                device=str(device), size=size, machine=machine(),
                bytes_per_param=BYTES_PER_PARAM, results=rows)


def format_table(record):
    head = (f"{'workload':<22}{'implementation':<22}{'ms/step':>9}{'GB/s':>8}"
            f"{'vs fused':>10}{'(IQR)':>13}{'% roof':>8}{'compile s':>11}")
    lines = [f"{record['date']}  {record['device']}  {record['machine'].get('gpu') or record['machine'].get('cpu', '')}",
             head, "-" * len(head)]
    for r in record["results"]:
        compile_s = f"{r['compile_s']:.1f}" if r["compile_s"] is not None else ""
        lo, hi = r.get("vs_torch_fused_iqr") or (r["vs_torch_fused"],) * 2   # older records: none
        lines.append(f"{r['workload']:<22}{r['impl']:<22}{r['ms_per_step']:>9.3f}{r['gb_per_s']:>8.1f}"
                     f"{r['vs_torch_fused']:>9.2f}x{f'{lo:.2f}-{hi:.2f}':>13}"
                     f"{r['pct_of_stream_roofline']:>7.0f}%{compile_s:>11}")
    lines.append("stream roofline (best of copy_ and neg_): " + ", ".join(
        sorted({f"{r['workload']}: {r['stream_gb_per_s']:.1f} GB/s" for r in record["results"]})))
    return "\n".join(lines)


def format_prefetch(rows):
    lines = []
    for r in rows:
        name = "torch fused" if r["prefetch_bytes"] is None else f"cpp, prefetch {r['prefetch_bytes']} B ahead"
        lo, hi = r["vs_torch_fused_iqr"]
        lines.append(f"{name:<32}{r['ms_per_step']:8.3f} ms {r['gb_per_s']:7.1f} GB/s"
                     f"{r['vs_torch_fused']:7.2f}x  (IQR {lo:.2f}-{hi:.2f})")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default=None,
                        help="problem size (default: full on a GPU, cpu on the CPU)")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    parser.add_argument("--skip", nargs="*", default=(), help="skip implementations whose name contains this")
    parser.add_argument("--json", metavar="PATH", help="also write the record as JSON")
    parser.add_argument("--tune", action="store_true",
                        help="also time the Triton kernel for a few block sizes (GPU), "
                             "or the C++ kernel for a few prefetch distances (CPU)")
    args = parser.parse_args(argv)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    size = args.size or ("full" if device.type == "cuda" else "cpu")
    record = run(size, device, args.skip)
    print(format_table(record))
    if args.tune and device.type == "cuda":
        record["triton_tuning"] = tune_triton(SIZES[size][0], device)
        for r in record["triton_tuning"]:
            print(f"triton BLOCK={r['block']:<5} num_warps={r['num_warps']:<3}"
                  f"{r['ms_per_step']:8.3f} ms {r['gb_per_s']:8.1f} GB/s")
    elif args.tune and "cpp" in kernels.available_impls(device):
        record["prefetch_tuning"] = tune_prefetch(SIZES[size][0])
        print(format_prefetch(record["prefetch_tuning"]))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(record, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
