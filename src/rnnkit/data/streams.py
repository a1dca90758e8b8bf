"""Batches for language modelling: one long token stream cut into parallel streams.

The corpus is a single 1-D id tensor. It is reshaped into ``B`` contiguous
streams (row ``b`` holds tokens ``b*L .. (b+1)*L - 1``), and an epoch walks all
streams in lock-step with windows of ``t`` steps::

    x = streams[:, i : i + t]          y = streams[:, i + 1 : i + 1 + t]

so the hidden state at the end of one window is the right state to start the
next one with (truncated back-propagation through time). Consecutive windows
tile the input positions ``0 .. L-2`` of every stream exactly once, in order;
the last position of a stream has no next token and is only ever a target.

The ``len(ids) % B`` tokens at the end of the corpus that do not fill all ``B``
streams are dropped (``dropped_tokens``): keeping them would need a ragged batch.

With ``random_length=True`` the window length varies as in AWD-LSTM: ``bptt`` with
probability 0.95, else ``bptt / 2``, plus normal noise (sd 5), rounded and clipped
to ``[min(5, bptt), remaining]``. Varying the cut points means each token is not
always at the same offset in its window. The lengths depend only on
``(seed, epoch)``; call ``set_epoch(e)`` before each epoch. Because the window length
varies, callers that average the loss per window may want to scale the learning
rate by ``t / bptt`` (``x.shape[1]`` is ``t``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import numpy as np
import torch
from torch import Tensor

from rnnkit.data.batching import check_same_data
from rnnkit.validation import check_nonnegative_int, check_positive_int

RANDOM_LENGTH_SD = 5.0
RANDOM_LENGTH_FULL_P = 0.95
MIN_RANDOM_LENGTH = 5


class StreamBatcher:
    """Iterate ``(x, y)`` windows of shape ``(B, t)`` over a token stream (see the module docstring).

    Args:
        ids: the whole corpus as a 1-D integer tensor.
        batch_size: number of parallel streams ``B``.
        bptt: window length (or the mean length with ``random_length``).
        random_length: vary the window length per window.
        seed: base seed for the random lengths.
    """

    def __init__(self, ids: Tensor, batch_size: int, bptt: int, random_length: bool = False, seed: int = 0):
        if not isinstance(ids, Tensor) or ids.dim() != 1 or ids.dtype.is_floating_point or ids.dtype == torch.bool:
            shape = tuple(ids.shape) if isinstance(ids, Tensor) else type(ids).__name__
            raise TypeError(f"ids must be a 1-D integer tensor, got {shape}")
        self.batch_size = check_positive_int("batch_size", batch_size)
        self.bptt = check_positive_int("bptt", bptt)
        if not isinstance(random_length, bool):
            raise TypeError(f"random_length must be a bool, got {random_length!r}")
        check_nonnegative_int("seed", seed)
        stream_length = ids.numel() // batch_size
        if stream_length < 2:
            raise ValueError(f"ids has {ids.numel()} tokens, too few for batch_size={batch_size}: each stream needs "
                             f"at least 2 (an input and its next token)")
        self._total = ids.numel()
        # A view, not a copy: a memory-mapped corpus stays on disk; windows become int64 as they are cut.
        self.streams = ids[: stream_length * batch_size].reshape(batch_size, stream_length)
        self.random_length = random_length
        self.seed = seed
        self.epoch = 0
        self._digest: str | None = None  # the streams' fingerprint, hashed once (on the first save or resume)

    @property
    def stream_length(self) -> int:
        """Tokens per stream, ``L``."""
        return self.streams.shape[1]

    @property
    def num_tokens(self) -> int:
        """Tokens kept in the streams (``B * L``); the ragged tail is not counted."""
        return self.streams.numel()

    @property
    def num_targets(self) -> int:
        """Tokens predicted per epoch (``B * (L - 1)``): the denominator of a per-token loss."""
        return self.batch_size * (self.stream_length - 1)

    @property
    def dropped_tokens(self) -> int:
        """Tokens at the end of the corpus left out because they do not fill ``B`` streams."""
        return self._total - self.num_tokens

    def set_epoch(self, epoch: int) -> None:
        """Select the window lengths of ``epoch`` (only matters with ``random_length``)."""
        check_nonnegative_int("epoch", epoch)
        self.epoch = epoch

    def state_dict(self) -> dict:
        """The epoch and seed (the window lengths are a function of them) and a fingerprint of the streams."""
        return {"epoch": self.epoch, "seed": self.seed, "fingerprint": self._fingerprint()}

    def load_state_dict(self, state: dict) -> None:
        """Select the saved epoch; ValueError if the corpus or settings differ from the saved batcher's."""
        check_same_data(state, self._fingerprint(), self.seed)
        self.set_epoch(state["epoch"])

    def _fingerprint(self) -> str:
        # The corpus is fixed once cut: hash it once, not at every checkpoint (every few seconds for an LM),
        # and straight from its buffer, so a memory-mapped corpus is not copied into memory to be hashed.
        if self._digest is None:
            settings = torch.tensor([self.bptt, int(self.random_length)], dtype=torch.long)
            digest = hashlib.sha256(np.ascontiguousarray(self.streams.numpy()))
            digest.update(settings.numpy().tobytes())
            self._digest = digest.hexdigest()[:16]
        return self._digest

    def window_lengths(self) -> list[int]:
        """This epoch's window lengths ``t``; they sum to ``L - 1``."""
        remaining = self.stream_length - 1
        if not self.random_length:
            return [min(self.bptt, remaining - start) for start in range(0, remaining, self.bptt)]
        rng = np.random.default_rng([self.seed, self.epoch])
        low = min(MIN_RANDOM_LENGTH, self.bptt)
        lengths = []
        while remaining > 0:
            base = self.bptt if rng.random() < RANDOM_LENGTH_FULL_P else self.bptt / 2
            t = int(round(rng.normal(base, RANDOM_LENGTH_SD)))
            t = min(max(t, low), remaining)
            lengths.append(t)
            remaining -= t
        return lengths

    def __len__(self) -> int:
        return len(self.window_lengths())

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        start = 0
        for t in self.window_lengths():
            # contiguous(): callers may write into x / y (e.g. masking) without touching the corpus.
            yield (self.streams[:, start:start + t].contiguous().long(),
                   self.streams[:, start + 1:start + 1 + t].contiguous().long())
            start += t
