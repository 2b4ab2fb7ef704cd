"""The torch.compile path: one small model, two configurations (compiling takes seconds)."""
import shutil

import pytest
import torch

from optim_cases import check_matches_torch, check_sweep_matches_loop

pytestmark = pytest.mark.skipif(shutil.which("g++") is None and shutil.which("c++") is None,
                                reason="torch.compile on the CPU needs a C++ compiler")


def test_compiled_adamw_matches_torch_fp32():
    check_matches_torch("compiled", "AdamW", torch.float32, "cpu", amsgrad=True, steps=30)


def test_compiled_adam_l2_sweep():
    check_sweep_matches_loop("compiled", "AdamL2", "cpu", M=3, steps=20)
