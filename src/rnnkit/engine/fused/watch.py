"""Whether a call to the fused kernels goes through the registered operators (``ops``) or the direct path.

``watched()`` is true when compiling, tracing or exporting, under a ``torch.func`` transform, a dispatch or
function mode, or for any tensor subclass: then the operators must run. A plain eager call takes the direct path
(``recurrence.Recurrence`` and ``infer``). Its own module because the back end, the operators and the row layout
all ask it, and the layout is imported by both of the others.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import Parameter

_PLAIN = (Tensor, Parameter)


def watched(*tensors: Tensor | None) -> bool:
    """Whether anything but plain eager execution sees this call (then the operators must run)."""
    if torch.compiler.is_compiling() or torch.jit.is_tracing():
        return True
    if torch._C._are_functorch_transforms_active() or torch._C._len_torch_dispatch_stack() > 0:
        return True
    if torch._C._is_torch_function_mode_enabled():
        return True
    return any(t is not None and type(t) not in _PLAIN for t in tensors)
