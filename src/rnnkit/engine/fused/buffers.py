"""The fused kernels' big per-call buffers, kept between calls instead of fresh from the system each time.

A buffer above glibc's mmap threshold (32 MiB at most) is mapped fresh at every allocation and zeroed by the
kernel page by page on first touch: measured here, allocating and filling 50 MB costs 14.8-16.9 ms against
2.5-2.9 ms for a kept one. A language-model training step (GRU 2 x 384, 64 x 128 tokens) allocated ~250 MB so;
the faults were ~20% of the step. Two kinds of keeping:

* ``scratch``: this thread's buffer for a tensor that dies inside the call that asked for it (backward's
  δxp and δa): the next call on the thread may reuse it at once.
* ``BufferPool``: buffers for tensors that outlive the call (the forward's xp, over which the gate
  activations are kept until backward). One returns to the pool only when its holder (the autograd node's
  context) is gone, so a retained graph, or two graphs alive at once, never share one.

Neither kind crosses between ``torch.inference_mode()`` and ordinary (autograd) mode: a buffer made under
inference mode is an inference tensor, and writing into it outside inference mode, or saving a view of it for
backward, raises. So each buffer is kept for the mode it was made in and handed out only in that mode (an
evaluation under inference mode between training steps, as Lightning and most loops do, keeps its own).
"""

from __future__ import annotations

import threading
import weakref

import torch
from torch import Tensor

_local = threading.local()


def scratch(name: str, numel: int, dtype: torch.dtype, zero: bool = False) -> Tensor:
    """A flat tensor of ``numel`` elements from this thread's buffer ``name`` (grown as needed; one per dtype)."""
    kept = getattr(_local, "buffers", None)
    if kept is None:
        kept = _local.buffers = {}
    key = (name, dtype, torch.is_inference_mode_enabled())
    buffer = kept.get(key)
    if buffer is None or buffer.numel() < numel:
        buffer = kept[key] = torch.empty(numel, dtype=dtype)
    view = buffer[:numel]
    return view.zero_() if zero else view


class BufferPool:
    """Flat buffers handed out and given back; keeps at most ``keep`` free ones (the smallest go first)."""

    def __init__(self, keep: int = 8):
        self.keep = keep
        self._free: list[Tensor] = []
        self._lock = threading.Lock()

    def take(self, numel: int, dtype: torch.dtype) -> Tensor:
        """A whole buffer of at least ``numel`` elements (slice the front); a new one if none fits.

        Only a buffer made in the current mode (inference or not) fits: see the module docstring.
        """
        inference = torch.is_inference_mode_enabled()
        with self._lock:
            # By position, never list.remove: == on tensors compares their elements.
            fits = [i for i, b in enumerate(self._free)
                    if b.dtype == dtype and b.numel() >= numel and b.is_inference() == inference]
            if fits:
                return self._free.pop(min(fits, key=lambda i: self._free[i].numel()))
        return torch.empty(numel, dtype=dtype)

    def give(self, buffer: Tensor) -> None:
        with self._lock:
            self._free.append(buffer)
            if len(self._free) > self.keep:
                self._free.pop(min(range(len(self._free)), key=lambda i: self._free[i].numel()))

    def give_when_gone(self, holder: object, buffer: Tensor) -> None:
        """Give ``buffer`` back once ``holder`` (the only owner of any view of it) is garbage."""
        weakref.finalize(holder, self.give, buffer)

    def __len__(self) -> int:
        return len(self._free)


projections = BufferPool()  # the forward's xp, gates kept over it (recurrence.py)
