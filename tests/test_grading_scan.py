"""The static check that an answer does not call what the question asks the student to write."""
from __future__ import annotations

import pytest

from adamw_lab.grading.scan import ANSWER_KEY, AUTOGRAD, AUTOGRAD_METHODS, OPTIMIZERS, forbidden_uses

FORBIDDEN = ANSWER_KEY + OPTIMIZERS


@pytest.mark.parametrize("cells", [
    ["from adamw_lab import reference", "def f(w):\n    return reference.adamw_step(w)"],
    ["import adamw_lab.reference as R", "def f(w):\n    return R.adamw_step(w)"],
    ["from adamw_lab.reference import adamw_step as step", "def f(w):\n    return step(w)"],
    ["from adamw_lab import \uff52\uff45\uff46\uff45\uff52\uff45\uff4e\uff43\uff45 as r\ndef f(w):\n    return r.adamw_step(w)"],
    ["import adamw_lab\nref = adamw_lab.reference", "def f(w):\n    return ref.adamw_step(w)"],
    ["import importlib\nmod = importlib.import_module('adamw_lab.theory')", "def f(w):\n    return mod.half_life_exact(w)"],
    ["def f(w):\n    import adamw_lab.grading.bank as b\n    return b.QUESTIONS"],
    ["import torch\nO = torch.optim", "def helper(p):\n    return getattr(O, 'AdamW')([p])", "def f(w):\n    return helper(w)"],
    ["import torch.optim as tom\ndef f(w, opt=tom.SGD):\n    return opt"],
    ["import sys", "def f(w):\n    return sys.modules['torch.optim'].Adam"],
    ["from torch.optim import *", "def f(w):\n    return AdamW([w])"],
    ["from adamw_lab import AdamW as A", "f = lambda w: A([w])"],
    ["import adamw_lab", "def f(w):\n    return adamw_lab.AdamW([w])"],
])
def test_flagged(cells):
    assert forbidden_uses(cells, "f", FORBIDDEN), cells


@pytest.mark.parametrize("cells", [
    ["import numpy as np", "def f(w):\n    return np.sqrt(w)"],
    ["import torch", "def f(w):\n    return torch.tensor(w).sqrt()"],
    ["import torch", "def other(p):\n    return torch.optim.AdamW([p])", "def f(w):\n    return w"],  # not called by f
    ["%%time\ndef f(w):\n    return w * 2"],
    ["def f(w):\n    reference = 3\n    return w * reference"],  # a local named like the module
    ["def broken(:\n", "def f(w):\n    return w"],
])
def test_not_flagged(cells):
    assert forbidden_uses(cells, "f", FORBIDDEN) == []


def test_autograd_by_method_and_module():
    assert forbidden_uses(["import torch\ndef f(W):\n    W = torch.tensor(W, requires_grad=True)\n    (W**2).sum().backward()\n    return W.grad"],
                          "f", AUTOGRAD, AUTOGRAD_METHODS)
    assert forbidden_uses(["from torch.autograd import grad as g\ndef f(W):\n    return g(W, W)"], "f", AUTOGRAD, AUTOGRAD_METHODS)
    assert forbidden_uses(["def f(W):\n    return W.T @ W"], "f", AUTOGRAD, AUTOGRAD_METHODS) == []
