"""``backend="auto"`` measured, not guessed: the first call of a kind times the candidate back ends, once per machine.

Static rules tuned on one processor are wrong on another (AMD's 2×256-bit AVX-512, a 1 MiB or a 2 MiB L2,
a laptop's 4 cores), so the first time ``auto`` meets a *kind* of call it times every back end that can run it
for a few milliseconds and keeps the fastest. A kind is the key (``decision_key``)::

    cell (with its extras) | train or infer | batch class (1, 2-3, 4-7, ...) | steps class (1, 2-15, 16+)
    | hidden | layers | directions | dtype | torch threads | lengths or dense

The steps class keeps one-step calls (a language model generating token by token), where a back end's
per-call cost decides, apart from whole sequences, where the per-step cost does: a GRU 384 step at batch 1
measured fused 2.9-3.7 ms against native 1.3-1.6 ms, the reverse of the ranking over 100 steps.

Decisions are kept in memory and in the engine's private cache (``rnnkit.engine.cache``), one JSON file per
machine (CPU model and numbers, torch version, thread count: ``machine.Machine.key``), written atomically.
Given that file, every choice is deterministic; ``rnnkit engine-report`` prints it. ``RNNKIT_AUTOTUNE=0``
turns the tuner off: the back ends' static preferences decide (``registry``), as they also do where fewer
than two tunable back ends can run the call, or while ``torch.compile`` traces.

Timing never touches the caller's state: it runs on a detached copy of at most ``TIMED_STEPS`` steps of the
input, calls the back ends directly (no module hooks), trains with ``torch.autograd.grad`` (no ``.grad`` is
written, its graph is freed, the caller's saved-tensor hooks such as activation checkpointing never see it),
infers under ``no_grad``, and restores the CPU random-number state that dropout masks consume. Candidates
are timed in alternating rounds (a shared machine's noise hits them alike), and the fastest time of each
counts; a static choice within ``TIE`` of the winner is kept. Every back end computes the same function, so
the choice changes results only within float rounding.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import threading
import time
from functools import lru_cache

import torch
from torch import Tensor

from rnnkit.engine import cache, machine

ENV = "RNNKIT_AUTOTUNE"
# Steps of the input timed: as many as fit TIMED_FLOPS, between MIN_STEPS and TIMED_STEPS. Per-step cost is what
# differs; at least 16 steps keep a back end's per-call set-up (oneDNN's weight reorder, the fused packing) from
# weighing more than it does on real sequences, and the FLOP cap keeps a large LM's first call cheap.
TIMED_STEPS, MIN_STEPS = 32, 16
TIMED_FLOPS = 2e9
MIN_ROUNDS, MAX_ROUNDS = 3, 10
BUDGET_S = 0.04  # rounds stop once every candidate has had about this long in total (after MIN_ROUNDS)
DROP = 1.5  # a candidate this many times slower than the best is not timed again
WARM_DROP = 4.0  # nor one whose warm-up call took this many times the fastest warm-up
CAP_S = 1.0  # rounds stop after this long (each running candidate timed at least once)
TIE = 0.03
FORMAT = 1

_lock = threading.RLock()
_tables: dict[str, dict] = {}  # machine key -> {decision key: entry}
_memo: dict[tuple, object] = {}  # the decisions in use, by a cheap key (see ``choose``)
_spent = {"seconds": 0.0, "tunings": 0}


def enabled() -> bool:
    return os.environ.get(ENV, "1") != "0"


def batch_class(batch: int) -> str:
    """1, then power-of-two ranges: calls in one range are timed once (2-3, 4-7, 8-15, ...)."""
    if batch <= 1:
        return "1"
    low = 1 << (batch.bit_length() - 1)
    return f"{low}-{2 * low - 1}"


def steps_class(steps: int) -> str:
    """1, 2-15, 16+: calls shorter than ``MIN_STEPS`` are timed at their own length, longer ones at 16-32."""
    if steps <= 1:
        return "1"
    return f"2-{MIN_STEPS - 1}" if steps < MIN_STEPS else f"{MIN_STEPS}+"


def training_call(layer, x: Tensor) -> bool:
    """Whether this call builds a graph (training) or not (inference)."""
    if not torch.is_grad_enabled() or torch.is_inference_mode_enabled():
        return False
    return x.requires_grad or any(p.requires_grad for p in layer.parameters())


def decision_key(layer, x: Tensor, lengths: Tensor | None, train: bool) -> str:
    cell = layer.cell_type.__name__
    options = ",".join(f"{k}={v}" for k, v in sorted(layer.cell_options.items()) if v not in (None, False, 0, 0.0))
    batch = x.shape[1] if x.dim() == 3 else 1
    return (f"{cell}{'(' + options + ')' if options else ''} | {'train' if train else 'infer'} | "
            f"batch {batch_class(batch)} | steps {steps_class(x.shape[0])} | hidden {layer.hidden_size} | "
            f"layers {layer.num_layers} | dirs {layer.num_directions} | {str(x.dtype).removeprefix('torch.')} | "
            f"threads {torch.get_num_threads()} | {'lengths' if lengths is not None else 'dense'}")


@lru_cache(maxsize=1)
def _machine_static() -> machine.Machine:
    return machine.current()


def machine_key() -> str:
    """This machine, torch and thread count (threads read now: ``torch.set_num_threads`` may change them)."""
    m = _machine_static()
    return f"{m.cpu} | {m.model} | {m.arch} | torch {m.torch} | {torch.get_num_threads()} threads"


def file_name(key: str) -> str:
    return f"autotune-{hashlib.sha256(key.encode()).hexdigest()[:16]}.json"


def read_doc(name: str) -> dict | None:
    """The decisions file ``name`` of the cache, its entries without a back end dropped; None for a missing,
    foreign, loose, unreadable or malformed file (it is re-timed)."""
    try:
        data, _ = cache.read(name)
    except OSError:
        return None
    if data is None:
        return None
    try:
        doc = json.loads(data)
    except ValueError:
        return None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or not isinstance(doc.get("decisions"), dict):
        return None
    doc["decisions"] = {k: v for k, v in doc["decisions"].items()
                        if isinstance(v, dict) and isinstance(v.get("backend"), str)}
    return doc


def _read_file(key: str) -> dict:
    doc = read_doc(file_name(key))
    return doc["decisions"] if doc is not None and doc.get("machine") == key else {}


def table(key: str | None = None) -> dict:
    """The decisions for this machine (loaded from the cache on first use)."""
    key = machine_key() if key is None else key
    with _lock:
        if key not in _tables:
            _tables[key] = _read_file(key)
        return _tables[key]


def _save(key: str, name: str, entry: dict) -> None:
    with _lock:
        merged = {**_read_file(key), **_tables.get(key, {}), name: entry}  # another process may have added some
        _tables[key] = merged
        doc = {"format": FORMAT, "machine": key, "decisions": dict(sorted(merged.items()))}
        try:
            cache.write(file_name(key), (json.dumps(doc, indent=1) + "\n").encode())
        except OSError:
            pass  # a full disk or a read-only cache: the decision still holds for this process


def forget() -> None:
    """Drop the decisions held in memory (the cache file stays): the next call reads it again."""
    with _lock:
        _tables.clear()
        _memo.clear()


def spent() -> dict:
    """Seconds spent timing in this process, and how many kinds were timed."""
    return dict(_spent)


def _same(t: Tensor) -> Tensor:
    return t


def _timer(backend, layer, x: Tensor, lengths: Tensor | None, train: bool):
    if train:
        params = [p for p in layer.parameters() if p.requires_grad]
        inputs = params or [x.requires_grad_(True)]

        def call():
            # Identity saved-tensor hooks shadow the caller's (activation checkpointing, offloading), which must
            # not see the timing's graph: checkpointing counts the tensors saved by the forward it recomputes.
            with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(_same, _same):
                out, _ = backend.run(layer, x, None, lengths)
                torch.autograd.grad(out.sum(), inputs)
    else:

        def call():
            with torch.no_grad():
                backend.run(layer, x, None, lengths)

    return call


def timed_steps(layer, x: Tensor, train: bool) -> int:
    gates = {"RNNCell": 1, "GRUCell": 3, "LSTMCell": 4}.get(layer.cell_type.__name__, 4)
    h, dirs = layer.hidden_size, layer.num_directions
    width = sum(layer.input_size if k == 0 else h * dirs for k in range(layer.num_layers)) + layer.num_layers * h
    per_step = 2 * gates * h * width * dirs * x.shape[1] * (3 if train else 1)
    return min(x.shape[0], max(MIN_STEPS, min(TIMED_STEPS, int(TIMED_FLOPS // max(1, per_step)))))


def measure(backends: list, layer, x: Tensor, lengths: Tensor | None, train: bool) -> dict[str, float]:
    """Fastest seconds per call of each back end, on a detached copy of at most ``TIMED_STEPS`` steps.

    After the warm-up, rounds alternate the candidates; after ``MIN_ROUNDS`` (the best of that many samples: a
    shared machine preempts some), one slower than ``DROP``× the best stops being timed (it has lost), and
    rounds stop once ``BUDGET_S`` per candidate is spent.
    """
    steps = timed_steps(layer, x, train)
    xs = x[:steps].detach().clone()
    ls = None if lengths is None else lengths.clamp(max=steps)
    best = {b.name: math.inf for b in backends}
    with torch.random.fork_rng(devices=[]):
        calls = {b.name: _timer(b, layer, xs, ls, train) for b in backends}
        warm = {}
        for name, call in calls.items():
            start = time.perf_counter()
            call()  # warm-up: first-touch allocations, a back end's one-off set-up
            warm[name] = time.perf_counter() - start
        # Far behind already (first-touch costs are not 4×): e.g. torch's per-op threads on an oversubscribed
        # machine, a scheduler tick per op. Timing it MIN_ROUNDS times more would cost seconds.
        running = {n: c for n, c in calls.items() if warm[n] <= WARM_DROP * min(warm.values())}
        total, began = 0.0, time.perf_counter()
        for rounds in range(MAX_ROUNDS):
            for name, call in running.items():
                start = time.perf_counter()
                call()
                elapsed = time.perf_counter() - start
                best[name] = min(best[name], elapsed)
                total += elapsed
            if time.perf_counter() - began > CAP_S:
                break  # a slow machine: decide on what was measured
            if rounds + 1 < MIN_ROUNDS:
                continue  # one preempted sample must not decide: every candidate gets MIN_ROUNDS
            fastest = min(best.values())
            running = {n: c for n, c in running.items() if best[n] <= DROP * fastest}
            if len(running) < 2 or total >= BUDGET_S * len(calls):
                break
    return best


def choose(eligible: list[tuple[object, float]], layer, x: Tensor, lengths: Tensor | None):
    """The back end ``auto`` runs: the cached or freshly timed winner, or the static choice (see the module)."""
    static = max(eligible, key=lambda e: e[1])[0]
    tunable = [b for b, _ in eligible if getattr(b, "autotune", True)]
    if len(tunable) < 2 or not enabled() or torch.compiler.is_compiling():
        return static
    train = training_call(layer, x)
    by_name = {b.name: b for b in tunable}
    # The decision for this kind of call, looked up by a tuple: building the string key costs ~10 µs a call.
    memo_key = (layer.cell_type, tuple(layer.cell_options.items()), train, (x.shape[1] if x.dim() == 3 else 1)
                .bit_length(), steps_class(x.shape[0]), layer.hidden_size, layer.num_layers, layer.num_directions,
                x.dtype, torch.get_num_threads(), lengths is None, static.name, tuple(by_name))
    known = _memo.get(memo_key)
    if known is not None:
        return known
    key, name = machine_key(), decision_key(layer, x, lengths, train)
    with _lock:
        entry = table(key).get(name)
        if entry is None:
            start = time.perf_counter()
            seconds = measure(tunable, layer, x, lengths, train)
            winner = min(seconds, key=seconds.get)
            if static.name in seconds and seconds[static.name] <= seconds[winner] * (1 + TIE):
                winner = static.name
            entry = {"backend": winner, "static": static.name, "timed_steps": timed_steps(layer, x, train),
                     "ms": {k: round(v * 1e3, 4) for k, v in seconds.items()}}
            _save(key, name, entry)
            _spent["seconds"] += time.perf_counter() - start
            _spent["tunings"] += 1
        chosen = _memo[memo_key] = by_name.get(entry["backend"], static)
    return chosen
