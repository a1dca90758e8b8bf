"""What the fused code reads of the build and the machine: the same answer eager or compiled.

``failure()`` (why the kernels cannot run, ``build.failure``) and ``cores()`` (torch's threads and the CPUs
this process may run on, ``machine.threads_and_cpus``) decide which path a call takes. Eager calls read them
directly. Under ``torch.compile`` they must be constants of the graph, read once at trace time (tracing a
file-system check or an affinity query would break the graph): the marked versions live in
``compile_constants``, imported only here and only while compiling, because marking imports ``torch._dynamo``
(seconds, more than torch itself), which ``import rnnkit`` must not pay.
"""

from __future__ import annotations

import torch

from rnnkit.engine import machine
from rnnkit.engine.fused import build


def failure() -> str | None:
    """Why the kernels cannot run, or ``None`` (``build.failure``); a constant to the compiler."""
    if torch.compiler.is_compiling():
        from rnnkit.engine.fused import compile_constants  # the tracer runs this import for real: see above

        return compile_constants.failure()
    return build.failure()


def cores() -> tuple[int, int]:
    """(torch's threads, the CPUs this process may run on); a constant to the compiler."""
    if torch.compiler.is_compiling():
        from rnnkit.engine.fused import compile_constants

        return compile_constants.cores()
    return machine.threads_and_cpus()
