"""The fused back end: the time loop compiled in C++, weight gradients as one matmul over all steps.

See ``backend`` (the stack, lengths, ``auto`` preference), ``recurrence`` (the autograd Function and its
equations) and ``build`` (compiling ``kernels.cpp`` on first use, cached, failing loudly).
"""

from rnnkit.engine.fused.backend import FusedBackend
from rnnkit.engine.registry import register_backend

FUSED = register_backend(FusedBackend(), priority=20)

__all__ = ["FUSED", "FusedBackend"]
