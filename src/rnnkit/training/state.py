"""A run's full training state on disk: every random generator, and one atomic file to resume from.

``Trainer.state_dict()`` gathers the state (weights, optimiser, schedule, counters,
history, best weights, the task's own state); this module adds what belongs to the
process rather than to an object -- the python, numpy and torch generators -- and
writes the whole as one file that is either the complete old one or the complete
new one at every instant (write to a temporary sibling, fsync, rename).

The file is read with ``torch.load(weights_only=True)``, which never runs code from
the file: the state holds only tensors, numbers, strings, lists, tuples and dicts
(numpy's generator key is stored as a tensor for that reason).
"""

from __future__ import annotations

import io
import os
import random
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rnnkit.training.checkpoint import _fsync_dir, write_file

STATE_FORMAT = 1
STATE_FILE = "state.pt"


def rng_state() -> dict[str, Any]:
    """The state of python's, numpy's global and torch's (CPU and CUDA) generators."""
    kind, keys, position, has_gauss, gauss = np.random.get_state(legacy=True)
    state = {
        "python": random.getstate(),
        "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), int(position), int(has_gauss), float(gauss)),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Put back the generators ``rng_state`` captured, so the next draws repeat exactly."""
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    kind, keys, position, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_state(path: str | Path, state: dict[str, Any]) -> Path:
    """Write ``state`` to ``path`` atomically (temporary sibling, fsync, rename, fsync of the folder)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Serialised in memory, then written by the one writer whose OS errors (a full disk) name the file.
    buffer = io.BytesIO()
    torch.save({"format": STATE_FORMAT, **state}, buffer)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    try:
        write_file(Path(temporary), buffer.getbuffer(), sync=True)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


def check_state_file(path: str | Path, what: str = "training state") -> None:
    """A whole state file, checked without unpickling it: a truncated or garbled one is refused, naming it.

    ``torch.save`` writes a zip archive with a CRC of every member, so reading it through once finds both.
    """
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error) or "truncated"
        raise ValueError(f"{what}: the training state {path} is truncated or damaged ({reason}); it cannot be "
                         "resumed from: start the run again with --overwrite") from error
    if bad is not None:
        raise ValueError(f"{what}: the training state {path} is damaged (member {bad} fails its checksum); it cannot "
                         "be resumed from: start the run again with --overwrite")


def state_world_size(path: str | Path) -> int:
    """How many processes saved the state at ``path``, read without loading its tensors (memory-mapped)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as error:  # a truncated or foreign file: unpickling errors come in many types
        raise ValueError(f"cannot read training state {path}: {error}") from error
    return int(state.get("world_size", 1)) if isinstance(state, dict) else 1


def load_state(path: str | Path) -> dict[str, Any]:
    """Read a file written by ``save_state``; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no training state at {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a truncated or foreign file: unpickling errors come in many types
        raise ValueError(f"cannot read training state {path}: {error}") from error
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        found = state.get("format") if isinstance(state, dict) else type(state).__name__
        raise ValueError(f"{path} is not a training state this rnnkit reads (format {found!r}, "
                         f"expected {STATE_FORMAT})")
    return state
