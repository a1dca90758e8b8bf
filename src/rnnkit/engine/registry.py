"""Back ends behind one small registry.

A back end runs a whole recurrent stack, time-major::

    run(layer, x (T, B, D), hx: tuple of (L·dirs, B, H) or None, lengths (B,) or None)
        -> (output (T, B, dirs·H), final states: tuple of (L·dirs, B, H))

``unsupported(layer, x, lengths)`` returns ``None`` when it can run the call, or a
sentence saying why not. ``backend="auto"`` takes, among the back ends that can run the
call, the one with the highest score: a back end may define
``preference(layer, x, lengths, training) -> float`` (e.g. to step aside where another is
faster for that size); without one, its score is its registration priority. Ties go to the
higher priority. That is the *static* choice: unless ``RNNKIT_AUTOTUNE=0``, ``auto`` times the candidates on
the first call of each kind and keeps the fastest (``autotune``). Under CPU autocast the static choice stands
(the fused back end scores highest there: it runs float32, as torch.nn.GRU does, where oneDNN's bfloat16 LSTM
needs AVX-512 BF16). A back end with ``autotune = False`` (the reference) is never timed. A batch of zero
sequences goes to ``empty.EmptyBatch`` (over the reference back end) on every back end.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor

from rnnkit.engine import autotune
from rnnkit.engine.empty import EmptyBatch


class Backend(Protocol):
    name: str

    def unsupported(self, layer, x: Tensor, lengths: Tensor | None) -> str | None: ...

    def run(self, layer, x: Tensor, hx, lengths: Tensor | None) -> tuple[Tensor, tuple[Tensor, ...]]: ...


@dataclass
class _Entry:
    backend: Backend
    priority: int


_REGISTRY: dict[str, _Entry] = {}


def register_backend(backend: Backend, priority: int) -> Backend:
    """Add a back end; a higher priority is tried first by ``backend="auto"``."""
    _REGISTRY[backend.name] = _Entry(backend, priority)
    return backend


def available_backends() -> list[str]:
    """Registered back-end names, in the order ``"auto"`` tries them."""
    return [name for name, _ in sorted(_REGISTRY.items(), key=lambda kv: -kv[1].priority)]


def check_backend_name(name: str) -> str:
    if name != "auto" and name not in _REGISTRY:
        raise ValueError(f"backend must be 'auto' or one of {available_backends()}, got {name!r}")
    return name


@functools.cache
def _empty_batch() -> Backend:
    """The empty-batch answer, made once the reference back end (which registers itself here) is registered."""
    return EmptyBatch(_REGISTRY["reference"].backend)


def refusal(name: str, reason: str) -> ValueError:
    """The error for a back end named explicitly that cannot run the call (also the minimal layers' choice)."""
    return ValueError(f"backend={name!r} cannot run this layer: {reason}")


def resolve_backend(name: str, layer, x: Tensor, lengths: Tensor | None) -> Backend:
    """The back end that will run this call, or a clear error naming why none can."""
    check_backend_name(name)
    if name != "auto":
        backend = _REGISTRY[name].backend
        reason = backend.unsupported(layer, x, lengths)
        if reason is not None:
            raise refusal(name, reason)
        return _empty_batch() if x.shape[1] == 0 else backend
    if x.shape[1] == 0:
        return _empty_batch()
    reasons, eligible = [], []
    for candidate in available_backends():
        entry = _REGISTRY[candidate]
        reason = entry.backend.unsupported(layer, x, lengths)
        if reason is not None:
            reasons.append(f"{candidate}: {reason}")
            continue
        preference = getattr(entry.backend, "preference", None)
        score = entry.priority if preference is None else preference(layer, x, lengths, layer.training)
        eligible.append((entry.backend, score))
    if not eligible:
        raise ValueError("no back end can run this layer (" + "; ".join(reasons) + ")")
    if len(eligible) == 1 or (x.device.type == "cpu" and torch.is_autocast_enabled("cpu")):
        # Under CPU autocast the static scores decide (a back end scores how it serves autocast): a timing or a
        # decision kept from a float32 call says nothing about which back end copes with bfloat16.
        return max(eligible, key=lambda e: e[1])[0]
    return autotune.choose(eligible, layer, x, lengths)
