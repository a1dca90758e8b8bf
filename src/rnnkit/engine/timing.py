"""How ``auto`` times its candidates: without side effects, within a time budget, robustly on a busy machine.

**When.** Only in plain eager calls (``timing_refused`` says why not): never while torch.compile, torch.export,
``torch.jit.trace``/TorchScript, a ``torch.func`` transform (grad, vmap, ...) or a ``TorchDispatchMode``
(fake tensors, FLOP counters) is active, on a tensor subclass, or under autocast (its casts make the call
another kind). There ``auto`` follows the static rules.

**On what.** A detached copy of at most ``TIMED_STEPS`` steps of the input and a stand-in of the layer
(``Detached``) whose weights are the layer's own tensors detached (shared storage, no copy): a parametrized
weight (``torch.nn.utils.parametrize``, spectral or weight norm) is not evaluated, since evaluating one can
update its state (spectral norm's power iteration) and its graph belongs to the caller; a deterministic
stand-in of the weight's shape takes its place (a weight's values do not change what a call costs). So the
caller's graph, gradients, tensor hooks and parametrizations never see the timing. Back ends are called
directly (no module hooks); training is timed with ``torch.autograd.grad`` (no ``.grad`` written) under
identity saved-tensor hooks (activation checkpointing must not see the timing's saves); inference under
``no_grad``; the random state (CPU, and the input's CUDA device) is restored afterwards.

**How long.** ``race``: each candidate is called once to warm up (first-touch allocations, one-off set-up),
then the candidates are called in interleaved rounds (alternating order: a busy machine's noise hits them
alike) and each one's *minimum* counts, its warm-up included: noise and one-off costs only ever add time, so
the fastest call is the best estimate of a call's cost (means are not used: one preempted call would move
them). After ``MIN_ROUNDS`` rounds, a candidate ``DROP`` times slower than the best has clearly
lost and is not called again; the race ends when one candidate is left, after ``MAX_ROUNDS`` rounds, or when
the next call would overrun ``BUDGET_S`` (the whole race, warm-up included, overruns it by one call at most).
A race cut short by the budget is *incomplete*; ``autotune`` then decides on what was measured if every
candidate got a sample, else by the static rule, and looks again later.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor
from torch.utils._python_dispatch import is_in_torch_dispatch_mode

# Steps of the input timed: as many as fit TIMED_FLOPS, between MIN_TIMED_STEPS and TIMED_STEPS. Per-step cost
# is what differs; where a step is cheap, up to 32 of them keep a back end's per-call set-up (oneDNN's weight
# reorder, the fused packing) from weighing more than it does on real sequences; where a step is costly (wide
# batches, large hidden sizes), the set-up is small beside even 2 steps, and the cap keeps each call to a few
# milliseconds, so that several samples of every candidate fit the budget.
TIMED_STEPS, MIN_TIMED_STEPS = 32, 2
TIMED_FLOPS = 4e8
MIN_ROUNDS, MAX_ROUNDS = 2, 10
BUDGET_S = 0.08  # one race, warm-up included (overrun by one call at most)
DROP = 1.5  # a candidate this many times slower than the best (after MIN_ROUNDS) has lost
WARM_DROP = 4.0  # so has one whose warm-up took this many times the fastest warm-up (first touch is not 4×)


@dataclass
class Timing:
    """A race's result: each candidate's fastest call (seconds; inf if never timed after its warm-up), how many
    timed calls it had, and whether the race ended before the budget did."""

    best: dict[str, float] = field(default_factory=dict)
    samples: dict[str, int] = field(default_factory=dict)
    complete: bool = True


def timing_refused(x: Tensor) -> str | None:
    """Why a call may not be timed now (None: it may). Cheap (about 2 µs): ``auto`` asks on every call."""
    if torch.jit.is_scripting() or torch.jit.is_tracing():
        return "TorchScript or torch.jit.trace is recording the call"
    if torch.compiler.is_compiling() or torch.compiler.is_exporting():
        return "torch.compile or torch.export is tracing the call"
    if torch._C._are_functorch_transforms_active():
        return "a torch.func transform is active"
    if type(x) is not Tensor:
        return f"the input is a tensor subclass ({type(x).__name__})"
    if is_in_torch_dispatch_mode():
        return "a TorchDispatchMode is active"
    if torch.is_autocast_enabled("cpu" if x.is_cpu else x.device.type):  # x.device costs µs: this runs every call
        return "autocast is on"
    return None


def _stand_in(layer, full: str, shape: tuple[int, ...], like: Tensor) -> tuple[Tensor, bool]:
    """The tensor timed for the weight ``full`` and whether the caller's requires grad."""
    for where in (layer._parameters, layer._buffers, layer.__dict__):  # a plain tensor: hook-made included
        src = where.get(full)
        if isinstance(src, Tensor):
            return src.detach(), src.requires_grad
    # A parametrization (or another computed attribute): not evaluated, see the module docstring.
    bound = 1.0 / math.sqrt(layer.hidden_size)
    numel = math.prod(shape)
    values = torch.linspace(-bound, bound, numel, dtype=like.dtype, device=like.device).view(shape)
    return values, True


class Detached:
    """The layer as the back ends see it (its configuration, ``cell_for``), with ``params_for`` serving
    detached weights (``_stand_in``) that are leaves of the timing's own graph when training."""

    def __init__(self, layer, like: Tensor, train: bool):
        self._layer = layer
        self._weights: dict[tuple[int, int], dict[str, Tensor]] = {}
        self.leaves: list[Tensor] = []
        for (k, d), names in layer._names.items():
            shapes = layer.cell_for(k, d).parameter_shapes()
            own = {}
            for name, full in names.items():
                tensor, grad = _stand_in(layer, full, tuple(shapes[name]), like)
                if train and grad:
                    tensor = tensor.requires_grad_(True)
                    self.leaves.append(tensor)
                own[name] = tensor
            self._weights[(k, d)] = own

    def __getattr__(self, name: str):
        return getattr(self._layer, name)

    def params_for(self, k: int, d: int) -> dict[str, Tensor]:
        return self._weights[(k, d)]


def _same(t: Tensor) -> Tensor:
    return t


def call_for(backend, twin: Detached, x: Tensor, lengths: Tensor | None, train: bool) -> Callable[[], None]:
    """One timed call of ``backend``: forward and backward when training, forward without a graph otherwise."""
    if train:
        inputs = twin.leaves + ([x] if x.requires_grad else [])

        def call():
            # Identity saved-tensor hooks shadow the caller's (activation checkpointing, offloading), which must
            # not see the timing's graph: checkpointing counts the tensors saved by the forward it recomputes.
            with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(_same, _same):
                out, _ = backend.run(twin, x, None, lengths)
                torch.autograd.grad(out.sum(), inputs)
    else:

        def call():
            with torch.no_grad():
                backend.run(twin, x, None, lengths)

    return call


def timed_steps(layer, x: Tensor, train: bool) -> int:
    gates = layer.cell_type.gates
    h, dirs = layer.hidden_size, layer.num_directions
    width = sum(layer.input_size if k == 0 else h * dirs for k in range(layer.num_layers)) + layer.num_layers * h
    per_step = 2 * gates * h * width * dirs * x.shape[1] * (3 if train else 1)
    return min(x.shape[0], max(MIN_TIMED_STEPS, min(TIMED_STEPS, int(TIMED_FLOPS // max(1, per_step)))))


def race(calls: dict[str, Callable[[], None]], clock: Callable[[], float] = time.perf_counter,
         budget: float = BUDGET_S) -> Timing:
    """Time ``calls`` against each other; see the module docstring. ``clock`` is injectable for tests.

    A warm-up call counts towards a candidate's minimum (one-off costs only add time) but not as a sample.
    """
    timing = Timing({n: math.inf for n in calls}, {n: 0 for n in calls})
    start = clock()
    last: dict[str, float] = {}  # each candidate's latest call: the prediction of its next one

    def affordable(name: str | None) -> bool:
        predicted = last[name] if name is not None else max(last.values(), default=0.0)
        return clock() - start + predicted <= budget

    def run(name: str) -> None:
        began = clock()
        calls[name]()
        last[name] = clock() - began
        timing.best[name] = min(timing.best[name], last[name])

    for name in calls:
        if not affordable(None):
            timing.complete = False
            return timing
        run(name)
    running = [n for n in calls if last[n] <= WARM_DROP * min(last.values())]
    for rounds in range(MAX_ROUNDS):
        if len(running) < 2:
            break
        for name in running if rounds % 2 == 0 else running[::-1]:
            if not affordable(name):
                timing.complete = False
                return timing
            run(name)
            timing.samples[name] += 1
        if rounds + 1 >= MIN_ROUNDS:  # one preempted sample must not decide
            fastest = min(timing.best[n] for n in running)
            running = [n for n in running if timing.best[n] <= DROP * fastest]
    return timing


def measure(backends: list, layer, x: Tensor, lengths: Tensor | None, train: bool) -> Timing:
    """Race ``backends`` on this call, on a detached copy of at most ``TIMED_STEPS`` steps of it."""
    steps = timed_steps(layer, x, train)
    xs = x[:steps].detach().clone()
    if train and x.requires_grad:
        xs.requires_grad_(True)
    ls = None if lengths is None else lengths.clamp(max=steps)
    devices = [x.device.index if x.device.index is not None else torch.cuda.current_device()] if x.is_cuda else []
    with torch.random.fork_rng(devices=devices):
        twin = Detached(layer, xs, train)
        return race({b.name: call_for(b, twin, xs, ls, train) for b in backends})
