"""Language modelling as a trainer ``Task``: B contiguous streams, truncated BPTT, state carried and detached.

Evaluation reads a whole text as one stream, in windows, with the state carried
across them, so every token is scored with all the text before it as context.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.nn import functional as F

from rnnkit.data import StreamBatcher
from rnnkit.data.distributed import ShardedStreams
from rnnkit.models.language_model import detach_state
from rnnkit.training import StepResult

LN2 = math.log(2)


@torch.no_grad()
def score_ids(model, ids: Tensor, window: int = 1000, streams: int = 1) -> tuple[float, int]:
    """Total negative log-likelihood (nats) of ids[1:] given everything before, and the count of scored tokens.

    ``streams > 1`` splits the text into that many contiguous pieces scored side by
    side (faster; each piece then starts without context). 1 is the exact figure.
    """
    if ids.numel() < 2:
        raise ValueError(f"a text of {ids.numel()} token(s) cannot be scored: it needs at least 2")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    # A short text gets fewer streams, never empty ones (an empty stream scores nothing: 0/0).
    streams = max(1, min(streams, ids.numel() - 1))
    total, count = 0.0, 0
    length = (ids.numel() - 1) // streams
    x_all = ids[: streams * length].view(streams, length).to(device)
    y_all = ids[1: streams * length + 1].view(streams, length).to(device)
    state = None
    for start in range(0, length, window):
        # .long(): memory-mapped corpora keep their ids in 16 or 32 bits.
        x, y = x_all[:, start:start + window].long(), y_all[:, start:start + window].long()
        logits, state = model(x, state)
        if logits.dtype not in (torch.float32, torch.float64):
            logits = logits.float()  # half-precision logits would lose the sum's accuracy
        total += float(F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="sum"))
        count += y.numel()
    model.train(was_training)
    return total, count


def _to_device(state, device):
    if isinstance(state, Tensor):
        return state.to(device)
    return type(state)(_to_device(s, device) for s in state)


class LanguageModelTask:
    mode = "min"

    def __init__(self, train_ids: Tensor, valid_ids: Tensor | None, batch_size: int, bptt: int,
                 random_length: bool = False, seed: int = 0, unit: str = "char", eval_window: int = 1000,
                 eval_streams: int = 1, world=None):
        self.batcher = StreamBatcher(train_ids, batch_size, bptt, random_length=random_length, seed=seed)
        if world is not None and world.distributed:
            # batch_size streams in all: this process carries its share of them (rnnkit.data.distributed).
            self.batcher = ShardedStreams(self.batcher, world.rank, world.size)
        self.splits = {"valid": valid_ids}
        self.unit = unit
        self.monitor = "bits_per_char" if unit == "char" else "perplexity"
        self.eval_window, self.eval_streams = eval_window, eval_streams
        self.state = None
        self._state_device_unknown = False  # a loaded hidden state sits on the CPU until the next step moves it

    def on_epoch_start(self, model, epoch: int) -> None:
        # Streams start again at the beginning of the corpus. The flag goes too: a run resumed from an epoch's end
        # loads the saved hidden state just before this hook drops it, and no None is to be moved to a device.
        self.state, self._state_device_unknown = None, False

    def train_batches(self, epoch: int):
        self.batcher.set_epoch(epoch)
        return self.batcher

    def state_dict(self) -> dict:
        """The batcher's state and the hidden state carried into the next window (needed to resume exactly)."""
        # On the CPU: under torchrun each rank's state is gathered to rank 0, which may not see this rank's GPU.
        hidden = None if self.state is None else _to_device(self.state, "cpu")
        return {"batcher": self.batcher.state_dict(), "hidden": hidden}

    def load_state_dict(self, state: dict) -> None:
        self.batcher.load_state_dict(state["batcher"])
        self.state = state["hidden"]
        self._state_device_unknown = self.state is not None  # loaded on the CPU; moved at the next step

    def train_step(self, model, batch) -> StepResult:
        x, y = batch
        device = next(model.parameters()).device
        x, y = x.to(device), y.to(device)
        if self._state_device_unknown:
            self.state, self._state_device_unknown = _to_device(self.state, device), False
        loss, correct, state = self.loss(model, x, y)
        self.state = detach_state(state)  # truncated BPTT: keep the values, cut the graph
        return StepResult(loss=loss, tokens=x.numel(), examples=y.numel(), correct=correct)

    def loss(self, model, x: Tensor, y: Tensor):
        """(mean loss, correct predictions or None, new state) of one window; the full softmax here."""
        logits, state = model(x, self.state)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        return loss, int((logits.argmax(-1) == y).sum()), state

    def metrics(self, nats: float, count: int) -> dict[str, float]:
        per_token = nats / count
        out = {"nats_per_token": per_token, "bits_per_token": per_token / LN2}
        if self.unit == "char":
            out["bits_per_char"] = per_token / LN2
        else:
            out["perplexity"] = math.exp(min(per_token, 50.0))
        return out

    def evaluate(self, model, split: str) -> dict[str, float]:
        ids = self.splits.get(split)
        if ids is None:
            raise ValueError(f"no {split!r} split to evaluate on")
        return self.metrics(*score_ids(model, ids, self.eval_window, self.eval_streams))


class SampledLanguageModelTask(LanguageModelTask):
    """Trains with a sampled softmax (``models.encoder_lm.SampledSoftmax``) and evaluates with the full one.

    The model gives ``features(x, state)`` (its states in the output matrix's space), ``embedding.weight`` (the
    tied output matrix) and ``head.bias``, as ``EncoderLM`` does.
    """

    def __init__(self, *args, sampler, **options):
        super().__init__(*args, **options)
        self.sampler = sampler

    def loss(self, model, x: Tensor, y: Tensor):
        features, state = model.features(x, self.state)
        loss = self.sampler.loss(features.reshape(-1, features.shape[-1]), y.reshape(-1), model.embedding.weight,
                                 model.head.bias)
        return loss, None, state
