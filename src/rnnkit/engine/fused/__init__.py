"""The fused back end: the time loop compiled in C++, weight gradients as one matmul over all steps.

See ``backend`` (the stack, lengths, ``auto`` preference), ``layout`` (the rows cut into blocks, one per
thread), ``recurrence`` (the autograd Function and its equations), ``ops`` (the same as registered PyTorch
operators, for compile, export, tracing and torch.func; ``watch`` says when those run),
``second_order`` (gradients with a graph), ``gated_scan`` (the minimal cells' recurrence, an operator of its own
that ``rnnkit.layers.minimal`` chooses), ``boundary`` (every tensor checked before the C++ sees it),
``contract`` (the Python ↔ C++ facts, checked against the library at load) and ``build`` (compiling
``kernels.cpp`` on first use, cached, failing loudly).
"""

from rnnkit.engine.fused.backend import FusedBackend
from rnnkit.engine.registry import register_backend

FUSED = register_backend(FusedBackend(), priority=20)

__all__ = ["FUSED", "FusedBackend"]
