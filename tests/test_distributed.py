"""adamw_lab under torch.distributed: two gloo processes on the CPU against one process.

Each configuration (DDP; FSDP2 ``fully_shard``; ``ZeroRedundancyOptimizer``
wrapping ``adamw_lab.AdamW``; FSDP2 with gradient clipping by the global
norm) trains with every CPU implementation for 20 fp32 steps, each rank on
its half of the global batch, and must end within 1e-5 (relative) of
single-process ``torch.optim.AdamW`` on the whole batch.  Checkpoints saved
with ``torch.distributed.checkpoint`` resume on another world size (2 → 1,
1 → 2) and between ``torch.optim.AdamW`` and ``adamw_lab.AdamW``.

Starting processes costs seconds, so every two-process case runs in one
launch (``adamw_lab.distributed.launch``; the ranks run the cases of
``tests/distributed/workers.py`` in turn).  A rank that crashes (a
segmentation fault) ends that launch; the cases after it run in a new one,
so the crash fails its own case only.
"""
from __future__ import annotations

import multiprocessing
import sys
import tempfile
from pathlib import Path

import pytest
import torch
from torch.distributed.checkpoint.api import CheckpointException

import adamw_lab
from adamw_lab import distributed
from optim_cases import CPP

sys.path.insert(0, str(Path(__file__).parent / "distributed"))
import workers  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:torch.distributed is disabled")   # DCP, one process
TOL = 1e-5
IMPLS = ["per_tensor", "foreach", "compiled", CPP]
# torch.compile costs tens of seconds per new set of shapes: it runs on the two kinds
# of parameters (plain tensors under DDP, DTensor shards under FSDP2), not on every config
EQUIVALENCE = [(config, impl) for config in workers.CONFIGS for impl in IMPLS
               if not (getattr(impl, "values", [impl])[0] == "compiled"
                       and config not in ("ddp", "fsdp2"))]
# (world size that saves, world size that loads, optimizer that saves, optimizer that loads)
CHECKPOINTS = [(2, 1, "adamw_lab", "adamw_lab"), (1, 2, "adamw_lab", "adamw_lab"),
               (2, 1, "torch", "adamw_lab"), (1, 2, "adamw_lab", "torch")]
# DCP loads into the keys of the optimizer that loads, so adamw_lab's state_dict leaves
# out its one extra group key ("impl") that a torch.optim.AdamW checkpoint lacks.


def _value(param):
    return param.values[0] if hasattr(param, "values") else param


def _run_two_ranks(cases, timeout=600.0):
    """Results of ``cases`` on two ranks: {case: ("ok", value) | ("error", text)}.

    After a crash the case that was running is recorded as crashed and the
    remaining cases run in a fresh launch.
    """
    results, todo = {}, list(cases)
    while todo:
        with tempfile.TemporaryDirectory() as folder:
            try:
                distributed.launch(workers.run, 2, (todo, folder), timeout=timeout, threads=1)
            except (RuntimeError, TimeoutError) as e:
                done = torch.load(Path(folder) / "results.pt") if (Path(folder) / "results.pt").exists() else {}
                results.update(done)
                crashed = next(c for c in todo if c not in done)
                results[crashed] = ("error", f"the launch failed during this case: {e}")
                todo = [c for c in todo if c not in results]
                continue
            results.update(torch.load(Path(folder) / "results.pt"))
            todo = []
    return results


@pytest.fixture(scope="module")
def two_rank_results(tmp_path_factory):
    """Everything that needs two processes, run once; checkpoints of 1-process halves first."""
    folders = {case: str(tmp_path_factory.mktemp("dcp")) for case in CHECKPOINTS}
    single = {}
    for case in CHECKPOINTS:
        saves, _, saver, loader = case
        if saves == 1:
            single[case] = _single(lambda: workers.checkpoint_half("first", folders[case], saver,
                                                                   loader, None))
    cases = [("decay_rules",), ("sweep", 7), ("sweep", 1), ("mlp",)]
    cases += [("batched_sweep_under_fsdp2", None)]
    cases += [("checkpoint_half", "second" if saves == 1 else "first", folders[c], saver, loader, None)
              for c in CHECKPOINTS for saves, _, saver, loader in [c]]
    cases += [("equivalence", config, _value(impl)) for config, impl in EQUIVALENCE]
    results = _run_two_ranks(cases)
    for case in CHECKPOINTS:
        saves, _, saver, loader = case
        if saves == 2:
            single[case] = _single(lambda: workers.checkpoint_half("second", folders[case], saver,
                                                                   loader, None))
    return results, single, folders


def _single(fn):
    try:
        return ("ok", fn())
    except (Exception, CheckpointException) as e:   # DCP raises a BaseException
        return ("error", repr(e))


def _ok(result):
    status, value = result
    assert status == "ok", value
    return value


@pytest.mark.parametrize("config,impl", EQUIVALENCE)
def test_two_ranks_match_one_process_torch_adamw(two_rank_results, config, impl):
    results, _, _ = two_rank_results
    error = _ok(results[("equivalence", config, _value(impl))])
    assert error <= TOL, f"{config} with impl={_value(impl)!r}: max relative error {error:.2e}"


def test_the_tolerance_sees_a_wrong_decay_rule():
    """Decaying biases and norms too moves the weights by far more than TOL."""
    ref = workers.reference()
    model = workers.make_model()
    opt = torch.optim.AdamW(model.parameters(), lr=workers.LR, weight_decay=workers.WD)
    workers.train(model, opt, workers.batches())
    assert workers.max_rel_error(model, ref) > 100 * TOL


def test_fsdp2_decay_rules_follow_the_original_parameters(two_rank_results):
    """fully_shard cuts every parameter along dim 0; param_groups still sees the
    original shapes (DTensor), so a bias shard is a bias and a weight shard a weight."""
    results, _, _ = two_rank_results
    rules = _ok(results[("decay_rules",)])
    single = workers.make_model()
    expected = {name: 0.0 if p.ndim <= 1 else workers.WD for name, p in single.named_parameters()}
    assert {name: wd for name, (wd, _) in rules.items()} == expected
    for name, p in single.named_parameters():   # the shards are halves: the test is not vacuous
        assert rules[name][1][0] == p.shape[0] // 2


@pytest.mark.parametrize("saves,loads,saver,loader", CHECKPOINTS)
def test_checkpoint_resumes_on_another_world_size(two_rank_results, saves, loads, saver, loader):
    """Train 10 steps on ``saves`` ranks, save with DCP, load on ``loads`` ranks, train 10 more:
    the weights match the uninterrupted single-process run of 20 steps."""
    results, single, folders = two_rank_results
    case = (saves, loads, saver, loader)
    two = results[("checkpoint_half", "second" if saves == 1 else "first", folders[case],
                   saver, loader, None)]
    first, second = (single[case], two) if saves == 1 else (two, single[case])
    assert _ok(first) <= TOL, "the run before the checkpoint already differs"
    assert _ok(second) <= TOL, f"resumed {saves} → {loads} ranks ({saver} → {loader})"


def test_sweep_on_two_ranks_equals_one_process(two_rank_results):
    """7 models split 4 + 3 across the ranks: rank 0 gathers what one process computes."""
    results, _, _ = two_rank_results
    lr, wd = workers.sweep_grid(7)
    alone = distributed.regression_grid(lr, wd, 20)
    torch.testing.assert_close(_ok(results[("sweep", 7)]), alone, rtol=1e-6, atol=0)
    assert alone.std() > 1e-3 * alone.mean()   # the models differ: a mix-up would show


def test_sweep_with_fewer_models_than_ranks_says_so(two_rank_results):
    results, _, _ = two_rank_results
    status, text = results[("sweep", 1)]
    assert status == "error" and "every rank needs at least one model" in text


def test_batched_sweep_under_fsdp2_is_refused_at_construction(two_rank_results):
    """FSDP2 shards the model dimension of a batched sweep, so per-model lr/weight_decay
    cannot line up with the local shard: a clear error when the optimizer is built."""
    results, _, _ = two_rank_results
    outcome, message = _ok(results[("batched_sweep_under_fsdp2", None)])
    assert outcome == "ValueError" and "DTensor" in message and "lr" in message


def test_sweep_checks_its_grid_and_what_train_returns():
    with pytest.raises(ValueError, match="1-D lr and weight_decay"):
        distributed.sweep(distributed.regression_grid, torch.ones(2, 2), torch.ones(2, 2))
    with pytest.raises(ValueError, match="same length"):
        distributed.sweep(distributed.regression_grid, torch.ones(3), torch.ones(2))
    with pytest.raises(ValueError, match="one row per model"):
        distributed.sweep(lambda lr, wd: lr.sum(), torch.ones(3), torch.ones(3))


@pytest.mark.parametrize("n,world_size", [(7, 2), (2, 2), (10, 3), (5, 1)])
def test_rank_slice_covers_the_grid_once_in_order(n, world_size):
    parts = [distributed.rank_slice(n, r, world_size) for r in range(world_size)]
    assert [i for s in parts for i in range(n)[s]] == list(range(n))
    sizes = [s.stop - s.start for s in parts]
    assert max(sizes) - min(sizes) <= 1


def test_train_mlp_on_two_ranks_holds_half_and_trains_the_same(two_rank_results):
    results, _, _ = two_rank_results
    alone = distributed.train_mlp(widths=(8, 16, 4), steps=3)
    rank0 = _ok(results[("mlp",)])
    assert rank0["world_size"] == 2 and rank0["params"] == alone["params"]
    for name, nbytes in alone["bytes"].items():   # every size here is even: exact halves
        assert rank0["bytes"][name] * 2 == nbytes, name
    assert abs(rank0["weight_norm"] - alone["weight_norm"]) <= TOL * alone["weight_norm"]


def test_timed_returns_the_result_and_warms_up_once():
    calls = []
    result, wall, cpu = distributed.timed(lambda x: calls.append(x) or x + 1, 1, warmup=True)
    assert (result, calls) == (2, [1, 1]) and wall >= 0 and cpu >= 0


def test_launch_reports_a_crashing_rank():
    with pytest.raises(RuntimeError, match="rank 1 .* died"):
        distributed.launch(workers.crash_on_rank_1, 2, timeout=120)
    assert multiprocessing.active_children() == []   # rank 0 was stopped, not left sleeping


def test_launch_reports_a_raising_rank_with_its_traceback():
    with pytest.raises(RuntimeError, match="(?s)rank 1 of raise_on_rank_1 raised.*bad data"):
        distributed.launch(workers.raise_on_rank_1, 2, timeout=120)
    assert multiprocessing.active_children() == []


def test_launch_stops_a_rank_past_its_timeout():
    with pytest.raises(TimeoutError, match="within 1 s"):
        distributed.launch(workers.sleep_forever, 2, timeout=1)
    assert multiprocessing.active_children() == []


@pytest.mark.skipif(not torch.cuda.is_available(), reason="the NCCL variants need a GPU")
def test_nccl_on_gpus_matches_one_process():
    """Every configuration with NCCL, one rank per GPU (two at most; one GPU still makes
    FSDP2 shard into DTensors), with foreach, the fused Triton kernel and the default."""
    from adamw_lab.optim import available_impls
    impls = ["foreach"] + (["triton"] if "triton" in available_impls("cuda") else []) + [None]
    cases = [("equivalence", config, impl) for config in workers.CONFIGS for impl in impls]
    with tempfile.TemporaryDirectory() as folder:
        distributed.launch(workers.run, min(2, torch.cuda.device_count()), (cases, folder),
                           backend="nccl", timeout=600)
        results = torch.load(Path(folder) / "results.pt")
    errors = {case[1:]: _ok(results[case]) for case in cases}
    assert max(errors.values()) <= TOL, errors
