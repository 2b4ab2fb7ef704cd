"""The benchmark's plumbing on tiny sizes (its timings are read by people, not asserted)."""
import json
import math

import pytest
import torch

from adamw_lab import bench, cpp_kernel


def test_every_contender_gets_a_row_against_torch_fused():
    rows = bench.bench_workload("tiny", [(5000,), (33, 7), (3,)], torch.device("cpu"), skip=("compiled",))
    by_impl = {r["impl"]: r for r in rows}
    expected = {"torch foreach", "torch fused", "adamw_lab per_tensor", "adamw_lab foreach"}
    if cpp_kernel.available("cpu"):
        expected.add("adamw_lab cpp")
        assert by_impl["adamw_lab cpp"]["compile_s"] > 0       # a cold build was timed
    assert set(by_impl) == expected
    assert by_impl["torch fused"]["vs_torch_fused"] == 1.0
    for r in rows:
        assert r["n_params"] == 5000 + 33 * 7 + 3 and r["n_tensors"] == 3
        assert r["ms_per_step"] > 0 and math.isfinite(r["vs_torch_fused"])
        assert r["gb_per_s"] == pytest.approx(28 * r["n_params"] / r["ms_per_step"] / 1e6)
    table = bench.format_table(dict(date="now", device="cpu", machine=bench.machine(), results=rows))
    assert all(r["impl"] in table for r in rows)


@pytest.mark.skipif(not cpp_kernel.available("cpu"), reason="impl='cpp' needs a C++ compiler")
def test_prefetch_tuning_restores_the_default():
    default = cpp_kernel.PREFETCH_BYTES
    rows = bench.tune_prefetch(50_000, distances=(0, 4096), rounds=1)
    assert cpp_kernel.PREFETCH_BYTES == default
    assert [r["prefetch_bytes"] for r in rows] == [None, 0, 4096]
    assert rows[0]["vs_torch_fused"] == 1.0
    assert "prefetch 4096 B ahead" in bench.format_prefetch(rows)


def test_main_writes_the_record(tmp_path, monkeypatch):
    monkeypatch.setitem(bench.SIZES, "small", (2000, (16, 1, 64, 16)))
    out = tmp_path / "record.json"
    assert bench.main(["--size", "small", "--device", "cpu", "--skip", "compiled", "--json", str(out)]) == 0
    record = json.loads(out.read_text())
    assert record["size"] == "small" and record["machine"]["torch"] == torch.__version__
    assert {r["workload"] for r in record["results"]} == {"flat 0.002M", "GPT-2 shapes d=16"}
