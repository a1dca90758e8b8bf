"""A layer evaluated under ``torch.inference_mode()`` (or ``no_grad``) between training steps, as Lightning and
most loops do, trains on exactly as a fresh layer that was never evaluated so: nothing the engines keep between
calls (the fused pool of projections, backward's scratch, cached layouts) crosses between the modes."""

from __future__ import annotations

import copy
from contextlib import ExitStack

import pytest
import torch

from rnnkit.engine.fused import recurrence
from rnnkit.engine.fused.buffers import projections

from .conftest import KINDS, make_layer

EXTRAS = [("lstm", {"layer_norm": True}), ("gru", {"layer_norm": True}), ("rnn_tanh", {"zoneout": 0.3}),
          ("gru", {"recurrent_dropout": 0.2}), ("lstm", {"zoneout": 0.2, "layer_norm": True})]
CASES = ([(b, kind, {}) for b in ("reference", "native", "fused") for kind in KINDS]
         + [(b, kind, options) for b in ("reference", "fused") for kind, options in EXTRAS])
LENGTHS = [6, 2, 5, 6, 1, 3, 4, 6]


@pytest.fixture(autouse=True)
def pooled(monkeypatch):
    """Every projection through the fused pool, however small."""
    monkeypatch.setattr(recurrence, "POOLED_BYTES", 0)


def _evaluate(layer, x, lengths, mode: str):
    """Eval-mode outputs and final states under ``mode`` (``grad``: plain autograd mode, the comparison)."""
    layer.eval()
    with ExitStack() as stack:
        if mode in ("inference", "inference+enable_grad"):
            stack.enter_context(torch.inference_mode())
        if mode in ("no_grad", "no_grad+enable_grad"):
            stack.enter_context(torch.no_grad())
        if mode.endswith("+enable_grad"):
            stack.enter_context(torch.enable_grad())
        out, states = layer(x, lengths=lengths)
    states = states if isinstance(states, tuple) else (states,)
    return [t.detach().clone() for t in (out, *states)]


def _train_step(layer, x, lengths, weight, step: int, inside_inference: bool = False):
    """One training step (forward, backward, SGD): outputs, gradients and the updated weights."""
    layer.train()
    with ExitStack() as stack:
        if inside_inference:  # training code called from inside an inference-mode block
            stack.enter_context(torch.inference_mode())
            stack.enter_context(torch.inference_mode(False))
        torch.manual_seed(100 + step)  # zoneout and recurrent dropout draw masks in training
        out, _ = layer(x, lengths=lengths)
        loss = (out * weight).sum()
        grads = torch.autograd.grad(loss, list(layer.parameters()))
        with torch.no_grad():
            for p, g in zip(layer.parameters(), grads, strict=True):
                p.sub_(0.1 * g)
    return [out.detach().clone(), *grads, *(p.detach().clone() for p in layer.parameters())]


def _data(lengths: bool):
    torch.manual_seed(7)
    x = torch.randn(6, 8, 4, dtype=torch.float64)
    weight = torch.randn(6, 8, 10, dtype=torch.float64)
    return x, weight, (torch.tensor(LENGTHS) if lengths else None)


def _assert_same(got: list, expect: list, what: str):
    assert len(got) == len(expect)
    for i, (g, e) in enumerate(zip(got, expect, strict=True)):
        assert not g.is_inference() or what.startswith("eval"), f"{what}, item {i}: an inference tensor"
        torch.testing.assert_close(g, e, atol=1e-12, rtol=1e-10, msg=lambda m, i=i: f"{what}, item {i}: {m}")


def _run_against_fresh(backend, kind, options, lengths, plan: list[str]):
    """Run ``plan`` (``train`` or an eval mode per entry) on one layer; a fresh twin trains at the same steps and
    is evaluated in plain autograd mode where the first was evaluated under the plan's mode."""
    layer = make_layer(kind, layers=2, bidirectional=True, **options)
    layer.backend = backend
    fresh = copy.deepcopy(layer)
    x, weight, lengths = _data(lengths)
    step = 0
    for entry in plan:
        if entry.startswith("train"):
            got = _train_step(layer, x, lengths, weight, step, inside_inference=entry == "train_inside_inference")
            expect = _train_step(fresh, x, lengths, weight, step)
            step += 1
        else:
            got, expect = _evaluate(layer, x, lengths, entry), _evaluate(fresh, x, lengths, "grad")
        _assert_same(got, expect, f"{entry} after {step} training steps")


@pytest.mark.parametrize("backend,kind,options", CASES)
@pytest.mark.parametrize("lengths", [False, True])
@pytest.mark.parametrize("first", ["inference", "train"])
def test_inference_mode_between_training_steps(backend, kind, options, lengths, first):
    plan = ["inference", "train", "inference", "train", "inference"]
    _run_against_fresh(backend, kind, options, lengths, plan if first == "inference" else plan[1:] + ["train"])


@pytest.mark.parametrize("backend,kind,options", [c for c in CASES if c[1] in ("gru", "lstm")])
def test_no_grad_and_enable_grad_mixes(backend, kind, options):
    """Every way of evaluating, interleaved with training (also from inside an inference-mode block)."""
    plan = ["no_grad", "train", "inference+enable_grad", "train_inside_inference", "no_grad+enable_grad",
            "inference", "train", "grad", "train"]
    _run_against_fresh(backend, kind, options, True, plan)


@pytest.mark.parametrize("kind", ["gru", "lstm"])
def test_two_blocks_of_rows(kind, two_threads):
    """The fused rows cut into two blocks, each on its own thread (a layout per mode, cached)."""
    _run_against_fresh("fused", kind, {}, False, ["inference", "train", "inference", "train"])
    _run_against_fresh("fused", kind, {"layer_norm": True}, True, ["train", "inference", "train", "inference"])


def test_both_modes_went_through_the_pool():
    """The tests above only mean something if the pool held buffers of both modes (each kept for its own)."""
    projections._free.clear()
    _run_against_fresh("fused", "lstm", {}, False, ["inference", "train", "inference"])
    kinds = {b.is_inference() for b in projections._free}
    assert kinds == {True, False}, kinds
    with torch.inference_mode():
        taken = projections.take(1, torch.float64)
    assert taken.is_inference()
    taken = projections.take(1, torch.float64)
    assert not taken.is_inference()
