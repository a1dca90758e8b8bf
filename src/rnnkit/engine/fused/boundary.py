"""The checked boundary to the C++ kernels: every tensor is checked before its address is handed over.

The kernels read and write raw memory through ``data_ptr()``: a tensor of the wrong dtype (a bfloat16 projection
under autocast), shape, layout or device, a non-contiguous view, or a tensor without real storage (a fake tensor
while tracing, a functorch wrapper) would make them read or write past its end. So ``check`` refuses any such
tensor with a ``FusedBoundaryError`` naming the call, the argument, what it is and what was expected, and
``check_layout`` checks the row layout's values (every count within its block, never growing): the only
integers the kernels index with. The library never trusts its caller, this package included.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import Parameter

# Plain tensors only: a subclass (a fake tensor, a parameter's subclass) may have no memory behind data_ptr().
_PLAIN = (Tensor, Parameter)
_LAYOUT_CHECKED = "_rnnkit_layout_checked"


class FusedBoundaryError(RuntimeError):
    """A tensor was about to reach the fused kernels in a form they cannot read."""


def _wrapped(t: Tensor) -> bool:
    # A functorch (vmap, grad) wrapper: a plain-looking Tensor whose data_ptr() is not its data.
    return torch._C._functorch.is_functorch_wrapped_tensor(t)


def check(call: str, dtype: torch.dtype, **tensors: tuple[Tensor | None, tuple[int, ...] | None]) -> None:
    """``name=(tensor, shape)`` for each argument of ``call``; ``tensor`` None means absent (a null pointer),
    ``shape`` None means "any shape" (a scratch checked elsewhere); indices are checked as int64."""
    for name, (t, shape) in tensors.items():
        if t is None:
            continue
        want = torch.int64 if name in _INDICES else dtype
        # One expression for the usual, valid tensor (this runs before every kernel call, ~1 µs a tensor).
        if (type(t) in _PLAIN and t.dtype == want and t.is_cpu and t.layout == torch.strided
                and (shape is None or t.shape == shape) and t.is_contiguous() and not _wrapped(t)):
            continue
        raise FusedBoundaryError(f"rnnkit's fused {call}: {name} is {_problem(t, want, shape)}")


_INDICES = ("batch_sizes", "starts", "lengths")


def check_rows(call: str, dtype: torch.dtype, name: str, t: Tensor, shape: tuple[int, int, int], ld: int) -> None:
    """A (T, B, H) tensor read row by row, its rows (t, b) ``ld`` values apart: contiguous where ``ld`` is H, else
    a view whose rows are dense and ``ld`` > H apart (one half of a (T, B, 2H) projection) and whose storage
    holds every row it reaches."""
    steps, batch, hidden = shape
    if ld == hidden:
        return check(call, dtype, **{name: (t, shape)})
    end = t.storage_offset() + (steps * batch - 1) * ld + hidden  # one past the last value the kernel reads
    if (type(t) in _PLAIN and not _wrapped(t) and t.dtype == dtype and t.is_cpu and t.layout == torch.strided
            and t.shape == shape and ld > hidden and t.stride() == (batch * ld, ld, 1)
            and end * t.element_size() <= t.untyped_storage().nbytes()):
        return
    problem = _problem(t, dtype, shape)
    if problem.startswith("not contiguous"):
        problem = (f"rows {ld} apart that its strides {t.stride()} or its storage "
                   f"({t.untyped_storage().nbytes()} bytes) do not give")
    raise FusedBoundaryError(f"rnnkit's fused {call}: {name} is {problem}")


def _problem(t: Tensor, want: torch.dtype, shape: tuple[int, ...] | None) -> str:
    if type(t) not in _PLAIN or _wrapped(t):
        return f"a {type(t).__name__} (a traced or wrapped tensor has no memory of its own)"
    if t.layout != torch.strided or t.device.type != "cpu":
        return f"a {t.layout} tensor on {t.device}, not a dense CPU tensor"
    if t.dtype != want:
        return f"{t.dtype}, not {want}"
    if shape is not None and tuple(t.shape) != tuple(shape):
        return f"of shape {tuple(t.shape)}, not {tuple(shape)}"
    return f"not contiguous (strides {t.stride()})"


def check_layout(batch_sizes: Tensor, starts: Tensor, batch: int, steps: int) -> None:
    """``starts`` (C+1,) cuts the batch into blocks; ``batch_sizes`` (C, T_run ≤ T) counts each block's running
    rows per step, within the block and never growing. Checked once per layout tensor (the even layouts are
    cached and reused)."""
    if getattr(batch_sizes, _LAYOUT_CHECKED, False) and getattr(starts, _LAYOUT_CHECKED, False):
        return
    chunks, run = batch_sizes.shape if batch_sizes.dim() == 2 else (-1, -1)
    check("layout", torch.int64, batch_sizes=(batch_sizes, (chunks, run)), starts=(starts, (chunks + 1,)))
    if chunks < 1 or run > steps:
        raise FusedBoundaryError(f"rnnkit's fused layout: batch_sizes {tuple(batch_sizes.shape)} for {steps} steps")
    sizes = starts[1:] - starts[:-1]
    problems = []
    if int(starts[0]) != 0 or int(starts[-1]) != batch or bool((sizes < 0).any()):
        problems.append(f"starts {starts.tolist()} do not cut {batch} rows into blocks")
    elif run > 0 and (bool((batch_sizes < 0).any()) or bool((batch_sizes > sizes.unsqueeze(1)).any())
                      or bool((batch_sizes[:, 1:] > batch_sizes[:, :-1]).any())):
        problems.append("batch_sizes are not counts within each block that never grow")
    if problems:
        raise FusedBoundaryError("rnnkit's fused layout: " + "; ".join(problems))
    for t in (batch_sizes, starts):
        setattr(t, _LAYOUT_CHECKED, True)
