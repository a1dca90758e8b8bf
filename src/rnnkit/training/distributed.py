"""Several processes training one model (``torchrun``): who this process is, and the few collectives the trainer needs.

``torchrun --nproc-per-node N -m rnnkit train ...`` starts N copies of the command with ``RANK``,
``WORLD_SIZE`` and ``LOCAL_RANK`` set. ``setup_world`` reads them and joins the process group (gloo on
the CPU, NCCL on a GPU); without them it returns ``SINGLE`` and nothing changes.

How the trainer stays equal to one process with the same global batch:

* the data layer (``rnnkit.data.distributed``) gives every rank its share of each global batch, and the
  same number of batches (a rank short of examples gets a padding batch, weighted zero);
* the loss: each rank's batch mean is rescaled to ``its examples × N / all ranks' examples`` before
  backward, so after DDP averages the gradients they are those of the mean over the whole global batch,
  however unevenly the examples (or tokens) fell (``reduce_step``);
* the step's figures and the figures every rank must agree on after it (the slowest clock, a stop asked of
  any rank, a checkpoint due on any clock) travel together: one all-reduce per step (``all_sum_max``);
* decisions every rank must take alike (stop on time, a non-finite loss, early stopping) come from
  figures all ranks share: reduced, or computed on rank 0 and broadcast (``on_main``);
* rank 0 alone logs, draws progress, saves checkpoints and writes reports.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from rnnkit.training.config import AUTOCAST
from rnnkit.training.task import StepResult

ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


class RankZeroFailed(RuntimeError):
    """Raised on the other ranks when rank 0 failed in ``World.on_main``: rank 0 reports the error itself."""


@dataclass(frozen=True)
class World:
    """Where this process trains: its rank among ``size`` processes, its device and its autocast.

    Attributes:
        rank: 0..size-1; rank 0 logs and saves.
        size: processes training together (1: a plain run).
        local_rank: rank on this machine (picks the GPU).
        device: the device the model lives on ("cpu", "cuda:0", ...).
        autocast: None, or "bf16" for a bfloat16 autocast of training forwards (CUDA only).
    """

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    device: str = "cpu"
    autocast: str | None = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    # -- the model ------------------------------------------------------------------------
    def wrap(self, model: nn.Module) -> nn.Module:
        """The model the training steps call: ``DistributedDataParallel`` around it when there are several ranks.

        Buffers are synced once, when DDP wraps the model, not before every forward: rnnkit's buffers (e.g.
        the frozen-row mask) never change in training.
        """
        if not self.distributed:
            return model
        from torch.nn.parallel import DistributedDataParallel

        ids = [torch.device(self.device).index] if self.device.startswith("cuda") else None
        return DistributedDataParallel(model, device_ids=ids, forward_sync_buffers=False)

    def autocast_context(self):
        """The context a training forward runs in."""
        if self.autocast is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=torch.device(self.device).type, dtype=torch.bfloat16)

    # -- collectives (no-ops in one process) ----------------------------------------------
    def _tensor(self, values: list[float]) -> torch.Tensor:
        # NCCL only reduces device tensors; gloo reduces CPU ones.
        device = self.device if self.device.startswith("cuda") else "cpu"
        return torch.tensor(values, dtype=torch.float64, device=device)

    def all_sum(self, values: list[float]) -> list[float]:
        if not self.distributed:
            return list(values)
        tensor = self._tensor(values)
        dist.all_reduce(tensor)
        return tensor.tolist()

    def all_sum_max(self, sums: list[float], maxima: list[float]) -> tuple[list[float], list[float]]:
        """``sums`` summed and ``maxima`` maximised over the ranks, in one all-reduce.

        One sum does both: each rank writes its maxima in a slot of its own (zeros elsewhere), so after the sum
        every rank holds every rank's values and takes their maximum itself (adding zeros is exact).
        """
        if not self.distributed:
            return list(sums), list(maxima)
        slots = [0.0] * (len(maxima) * self.size)
        slots[self.rank * len(maxima):(self.rank + 1) * len(maxima)] = maxima
        tensor = self._tensor([*sums, *slots])
        dist.all_reduce(tensor)
        values = tensor.tolist()
        per_rank = values[len(sums):]
        return values[:len(sums)], [max(per_rank[i::len(maxima)]) for i in range(len(maxima))]

    def all_max(self, value: float) -> float:
        if not self.distributed:
            return value
        tensor = self._tensor([value])
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
        return float(tensor.item())

    def broadcast(self, value):
        """Rank 0's ``value`` on every rank (any picklable object)."""
        if not self.distributed:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0, device=torch.device(self.device) if "cuda" in self.device else None)
        return box[0]

    def all_gather(self, value) -> list:
        """Every rank's ``value`` (any picklable object), in rank order, on every rank."""
        if not self.distributed:
            return [value]
        values = [None] * self.size
        dist.all_gather_object(values, value)
        return values

    def on_main(self, compute):
        """``compute()`` run on rank 0 only, its result (or its error) shared with every rank.

        An error on rank 0 is raised on every rank, so none is left waiting in a collective.
        """
        if not self.distributed:
            return compute()
        outcome = None
        if self.is_main:
            try:
                outcome = ("ok", compute())
            except Exception as error:  # noqa: BLE001 -- re-raised below, after the others are told
                outcome = ("error", error)
        outcome = self.broadcast(outcome)
        if outcome[0] == "error":
            if self.is_main:
                raise outcome[1]
            raise RankZeroFailed(f"rank 0 failed: {outcome[1]}")
        return outcome[1]

    def check_same_length(self, length: int | None) -> None:
        """Raise on every rank if the ranks' epochs differ in length: one would wait forever for the others."""
        if not self.distributed or length is None:
            return
        low, high = -self.all_max(-float(length)), self.all_max(float(length))
        if low != high:
            raise ValueError(f"the ranks have between {int(low)} and {int(high)} batches this epoch: every rank must "
                             "take the same number of steps (shard the batches with rnnkit.data.distributed)")

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()


SINGLE = World()


@dataclass
class StepTotals:
    """One step's figures over all ranks, and the factor this rank's batch-mean loss is scaled by before backward."""

    loss: float
    result: StepResult
    scale: float
    maxima: tuple[float, ...] = ()  # the ``maxima`` asked of ``reduce_step``, maximised over the ranks


def reduce_step(world: World, batch, result: StepResult, maxima: tuple[float, ...] = ()) -> StepTotals:
    """Global loss, counts and loss scale of a step (see the module docstring); one process: ``scale == 1``.

    ``maxima``: this rank's figures every rank must agree on (the trainer's clock, stop and checkpoint flags),
    reduced in the same all-reduce as the step's sums.

    A padding batch (``batch.padding`` true, see ``rnnkit.data.distributed``) keeps its rank in step but
    counts for nothing: its examples are 0 and its loss is scaled by 0.
    """
    loss = float(result.loss.detach())
    if not world.distributed:
        return StepTotals(loss, result, 1.0, tuple(maxima))
    padding = bool(getattr(batch, "padding", False))
    mine = 0 if padding else result.examples
    counted = result.correct is not None and not padding
    local = [loss * mine, mine, result.correct if counted else 0, 0 if padding else result.tokens, counted]
    sums, agreed = world.all_sum_max(local, list(maxima))
    loss_sum, examples, correct, tokens, counted_ranks = sums
    examples = int(examples)
    total = StepResult(loss=result.loss, tokens=int(tokens), examples=examples,
                       correct=int(correct) if counted_ranks else None)
    # DDP divides the summed gradients by the world size; this factor turns that average into the global mean.
    return StepTotals(loss_sum / examples, total, mine * world.size / examples, tuple(agreed))


def world_from_env(device: str = "cpu", autocast: str | None = None) -> World:
    """The ``World`` torchrun's variables describe (``SINGLE``'s values without them); checks the device."""
    values = {name: os.environ.get(name) for name in ENV}
    if values["WORLD_SIZE"] is None:
        return World(device=check_device(device, autocast), autocast=autocast)
    try:
        rank, size = int(values["RANK"]), int(values["WORLD_SIZE"])
        local = int(values["LOCAL_RANK"] if values["LOCAL_RANK"] is not None else rank)
    except (TypeError, ValueError) as error:
        raise ValueError(f"torchrun's RANK, WORLD_SIZE and LOCAL_RANK must be integers, got {values}") from error
    if not 0 <= rank < size:
        raise ValueError(f"RANK must be in [0, WORLD_SIZE={size}), got {rank}")
    device = check_device(device, autocast)
    if device == "cuda":
        device = f"cuda:{local}"  # one GPU per process, by its rank on this machine
    return World(rank=rank, size=size, local_rank=local, device=device, autocast=autocast)


def check_device(device: str, autocast: str | None = None) -> str:
    """``device`` if this machine can train there; a clear error naming it otherwise."""
    if autocast not in AUTOCAST:
        raise ValueError(f"autocast must be one of {list(AUTOCAST)}, got {autocast!r}")
    if not isinstance(device, str) or not device:
        raise ValueError(f"device must be 'cpu' or 'cuda[:N]', got {device!r}")
    kind = device.split(":")[0]
    if kind not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'cpu' or 'cuda[:N]', got {device!r}")
    if kind == "cuda" and not torch.cuda.is_available():
        built = "without CUDA" if torch.version.cuda is None else f"with CUDA {torch.version.cuda}, but sees no GPU"
        raise ValueError(f"device={device!r}: CUDA is not available (this torch {torch.__version__} is built {built})")
    if autocast is not None and kind != "cuda":
        raise ValueError(f"autocast={autocast!r} needs device='cuda': on the CPU the fused engine runs float32/64 only")
    return device


def setup_world(device: str = "cpu", autocast: str | None = None) -> World:
    """The ``World`` of this process, joining torchrun's process group (gloo on CPU, NCCL on GPU) if needed."""
    world = world_from_env(device, autocast)
    if world.distributed and not dist.is_initialized():
        if world.device.startswith("cuda"):
            torch.cuda.set_device(torch.device(world.device))
        dist.init_process_group("nccl" if world.device.startswith("cuda") else "gloo",
                                rank=world.rank, world_size=world.size)
    return world


def current_world() -> World:
    """The process group this process has joined, as a ``World`` (``SINGLE`` without one)."""
    if not (dist.is_available() and dist.is_initialized()):
        return SINGLE
    device = f"cuda:{torch.cuda.current_device()}" if dist.get_backend() == "nccl" else "cpu"
    return World(rank=dist.get_rank(), size=dist.get_world_size(), local_rank=int(os.environ.get("LOCAL_RANK", 0)),
                 device=device)


def shutdown_world() -> None:
    """Leave the process group, if this process joined one."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


class NullStream:
    """Where the other ranks' progress lines go."""

    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False
