"""Append-only JSON Lines log of a run: one object per evaluation, flushed as written.

One line per record (not one JSON document) means a run killed at any moment
leaves every finished evaluation readable, and ``tail -f`` works during training.
Values are made strictly JSON: numpy and tensor scalars become Python numbers,
NaN and infinities become ``null`` (strict parsers reject ``NaN``).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch


def to_jsonable(value: Any) -> Any:
    """``value`` with numpy/torch scalars as Python numbers, non-finite floats as None, paths as str."""
    if isinstance(value, dict):
        return {str(key): to_jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(item) for item in value]
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    elif isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


class RunLog:
    """Writer of ``path`` as JSON Lines. The file is truncated on creation: one log per run."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text("", encoding="utf-8")

    def write(self, record: dict[str, Any]) -> None:
        """Append ``record`` as one line and flush it to the OS before returning."""
        line = json.dumps(to_jsonable(record), allow_nan=False)
        # Re-opening per record costs nothing at evaluation frequency and leaves no
        # handle to close when a run is interrupted.
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(line + "\n")
            handle.flush()


def read_log(path: str | Path) -> list[dict[str, Any]]:
    """The records of a JSON Lines log, in order; a clear error names the file and line if one is broken."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no run log at {path}")
    records = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}:{number}: invalid JSON ({error.msg})") from error
    return records
