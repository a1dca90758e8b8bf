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

Timing (``rnnkit.engine.timing``) happens only in plain eager calls, never under tracing, compile, export,
a ``torch.func`` transform, TorchScript or autocast (the static rules decide there); it runs on detached
stand-ins of the input and weights, so the caller's graph, gradients, hooks, parametrizations and random state
are as they were. Candidates race in interleaved rounds, each one's fastest call counts, one that clearly
loses stops early, and a race has a time budget (``timing.BUDGET_S``). A static choice within ``TIE`` of the
winner is kept. Every back end computes the same function, so the choice changes results only within float
rounding.

**Provisional decisions are checked again.** A decision is *settled* when its race was complete (not cut by
the budget) on a machine that was not oversubscribed (``busy``: a load average of at least one runnable
thread more than the usable CPUs); otherwise it is *provisional*. A provisional decision is checked again,
at most ``RECHECKS`` times, when the machine is not busy: the first time a later process meets the kind, and
within a process not sooner than ``RECHECK_AFTER_S`` seconds after the last look. Each check races again and
the entry keeps every candidate's minimum over all checks (a busy moment only adds time, so a quiet one
wins), deciding on those. Live calls are not timed to
contradict a decision: a live call has another length, another batch within its class and, in training, only
its forward inside ``auto``'s reach, so its time is no measure of the choice. A race cut short decides on its
minima if every candidate had a timed call, else by the static rule. First use thus costs at most about
``BUDGET_S`` a kind (one call more at worst), and at most ``RECHECKS`` more, spread over later uses.
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
from rnnkit.engine.timing import Timing, measure, timed_steps, timing_refused
from rnnkit.lengths import full_as_dense

ENV = "RNNKIT_AUTOTUNE"
LONG_STEPS = 16  # the steps classes: 1, 2 to LONG_STEPS - 1, LONG_STEPS and more
TIE = 0.03
RECHECKS = 3  # a provisional decision is checked again at most this many times
RECHECK_AFTER_S = 30.0  # within a process, not sooner than this after the last check
FORMAT = 2  # 2: entries carry samples, checks and settled (format-1 files are timed afresh)

_lock = threading.RLock()
_tables: dict[str, dict] = {}  # machine key -> {decision key: entry}
# The decisions in use, by a cheap key (see ``choose``): (back end, when to check again or None if settled).
_memo: dict[tuple, tuple[object, float | None]] = {}
_spent = {"seconds": 0.0, "tunings": 0}
_now = time.monotonic  # when provisional decisions are due (a module attribute: tests set the clock)


def enabled() -> bool:
    return os.environ.get(ENV, "1") != "0"


def batch_class(batch: int) -> str:
    """1, then power-of-two ranges: calls in one range are timed once (2-3, 4-7, 8-15, ...)."""
    if batch <= 1:
        return "1"
    low = 1 << (batch.bit_length() - 1)
    return f"{low}-{2 * low - 1}"


def steps_class(steps: int) -> str:
    """1, 2-15, 16+: one-step calls (generation) apart from short and from whole sequences."""
    if steps <= 1:
        return "1"
    return f"2-{LONG_STEPS - 1}" if steps < LONG_STEPS else f"{LONG_STEPS}+"


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
            cache.write(file_name(key), (json.dumps(doc, indent=1) + "\n").encode(), durable=False)
        except OSError:
            pass  # a full disk or a read-only cache: the decision still holds for this process


def forget() -> None:
    """Drop the decisions held in memory (the cache file stays): the next call reads it again."""
    with _lock:
        _tables.clear()
        _memo.clear()


def spent() -> dict:
    """Seconds spent timing in this process, and how many races it ran (first uses and re-checks)."""
    return dict(_spent)


def busy() -> bool:
    """Whether the machine is oversubscribed now (1-minute load average at least usable CPUs + 1)."""
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):  # no load average here: nothing says busy
        return False
    return load >= _machine_static().cpus + 1


def decide(timing: Timing, static: str, complete: bool) -> str:
    """The winner of ``timing`` (minima; the static choice kept within ``TIE``), or ``static`` where a race cut
    short left a candidate without a timed call."""
    if not complete and not all(timing.samples.get(n, 0) >= 1 for n in timing.best):
        return static
    winner = min(timing.best, key=timing.best.get)
    if static in timing.best and timing.best[static] <= timing.best[winner] * (1 + TIE):
        return static
    return winner


def merge(entry: dict | None, timing: Timing) -> Timing:
    """``timing`` with the minima and sample counts of an earlier check of the same kind folded in."""
    if not entry:
        return timing
    old_ms, old_samples = entry.get("ms") or {}, entry.get("samples") or {}
    best = {n: min(s, old_ms.get(n, math.inf) / 1e3) for n, s in timing.best.items()}
    samples = {n: c + int(old_samples.get(n, 0)) for n, c in timing.samples.items()}
    return Timing(best, samples, timing.complete)


def check(tunable: list, static: str, layer, x: Tensor, lengths: Tensor | None, train: bool,
          entry: dict | None) -> dict:
    """Race the candidates (again, for a provisional ``entry``) and return the new entry."""
    start = time.perf_counter()
    timing = merge(entry, measure(tunable, layer, x, lengths, train))
    checks = (entry or {}).get("checks", 0) + 1
    complete = timing.complete or (entry or {}).get("complete", False)
    settled = (timing.complete and not busy()) or checks > RECHECKS
    new = {"backend": decide(timing, static, complete), "static": static, "timed_steps": timed_steps(layer, x, train),
           "ms": {n: round(s * 1e3, 4) for n, s in timing.best.items() if s < math.inf},
           "samples": timing.samples, "complete": complete, "checks": checks, "settled": settled}
    _spent["seconds"] += time.perf_counter() - start
    _spent["tunings"] += 1
    return new


def _due(entry: dict, known) -> bool:
    """Whether a recorded decision is checked again now (see the module docstring)."""
    if entry.get("settled", True):  # a decision written by hand (or by format 2 without the field) is followed
        return False
    return (known is None or _now() >= known[1]) and not busy()  # under load a check is no better than the last


def choose(eligible: list[tuple[object, float]], layer, x: Tensor, lengths: Tensor | None):
    """The back end ``auto`` runs: the recorded or freshly timed winner, or the static choice (see the module)."""
    static = max(eligible, key=lambda e: e[1])[0]
    tunable = [b for b, _ in eligible if getattr(b, "autotune", True)]
    if len(tunable) < 2 or not enabled() or timing_refused(x) is not None:
        return static
    lengths = full_as_dense(lengths, x.shape[0])  # the back ends run it as dense, so it is that kind
    train = training_call(layer, x)
    by_name = {b.name: b for b in tunable}
    # The decision for this kind of call, looked up by a tuple: building the string key costs ~10 µs a call.
    memo_key = (layer.cell_type, tuple(layer.cell_options.items()), train, (x.shape[1] if x.dim() == 3 else 1)
                .bit_length(), steps_class(x.shape[0]), layer.hidden_size, layer.num_layers, layer.num_directions,
                x.dtype, torch.get_num_threads(), lengths is None, static.name, tuple(by_name))
    known = _memo.get(memo_key)
    if known is not None and (known[1] is None or _now() < known[1]):
        return known[0]
    key, name = machine_key(), decision_key(layer, x, lengths, train)
    with _lock:
        entry = table(key).get(name)
        if entry is None or _due(entry, known):
            entry = check(tunable, static.name, layer, x, lengths, train, entry)
            _save(key, name, entry)
        recheck = None if entry.get("settled", True) else _now() + RECHECK_AFTER_S
        chosen = by_name.get(entry["backend"], static)
        _memo[memo_key] = (chosen, recheck)
    return chosen
