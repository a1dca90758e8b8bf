"""What ``torch.compile`` reads once, at trace time, as a constant: whether the kernels load, and the cores.

``torch.compiler.assume_constant_result`` imports ``torch._dynamo`` (seconds, more than torch itself), so the marked
functions live here, away from ``import rnnkit``: ``constants`` imports this module only on its compile path
(``torch.compiler.is_compiling()``), where the tracer runs the import for real with dynamo already loaded, before
it calls them. Plain eager calls read ``build.failure`` and ``machine.threads_and_cpus`` directly.
"""

from __future__ import annotations

import torch

from rnnkit.engine import machine
from rnnkit.engine.fused import build


@torch.compiler.assume_constant_result  # loading is not traced: the compiler reads the answer once
def failure() -> str | None:
    """``build.failure()``, a constant to the compiler."""
    return build.failure()


@torch.compiler.assume_constant_result
def cores() -> tuple[int, int]:
    """``machine.threads_and_cpus()``, a constant to the compiler."""
    return machine.threads_and_cpus()
