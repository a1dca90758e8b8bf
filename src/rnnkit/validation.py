"""Up-front argument checks whose messages name the argument and its value.

The exception classes are torch.nn's where a recurrent module raises one (``except RuntimeError:`` code written
for torch.nn catches rnnkit's too) and also rnnkit's earlier class, so code written for either keeps working.
"""

from __future__ import annotations

import math


class ArgumentTypeError(TypeError, ValueError):
    """An argument of the wrong type, e.g. a float size: torch.nn raises TypeError, rnnkit raised ValueError."""


class ShapeError(RuntimeError, ValueError):
    """An input or state of the wrong shape, or no time steps: torch.nn raises RuntimeError, rnnkit ValueError."""


class DtypeMismatchError(ValueError, TypeError, RuntimeError):
    """Tensors of different dtypes in one call; the message names both.

    torch.nn raises ValueError for a layer's input against its weights and RuntimeError (from its kernels) for a
    state or a cell's input; rnnkit raised TypeError.
    """


def _check_int(name: str, value, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ArgumentTypeError(f"{name} must be {what}, got {value!r}")
    return value


def check_positive_int(name: str, value) -> int:
    if _check_int(name, value, "a positive integer") < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def check_nonnegative_int(name: str, value) -> int:
    if _check_int(name, value, "an integer >= 0") < 0:
        raise ValueError(f"{name} must be an integer >= 0, got {value!r}")
    return value


def check_nonnegative_number(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not (0 <= value < float("inf")):
        raise ValueError(f"{name} must be a number >= 0, got {value!r}")
    return float(value)


def check_positive_number(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not (0 < value < float("inf")):
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    return float(value)


def check_finite_number(name: str, value) -> float:
    # NaN fails every comparison, so a rule written as "x > threshold" would silently find nothing.
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def check_probability(name: str, value, *, allow_one: bool = False) -> float:
    # The type first: comparing a string with 1 would raise a TypeError that names nothing.
    number = not isinstance(value, bool) and isinstance(value, int | float)
    if not number or not (0 <= value and (value <= 1 if allow_one else value < 1)):
        interval = "[0, 1]" if allow_one else "[0, 1)"
        raise ValueError(f"{name} must be a number in {interval}, got {value!r}")
    return float(value)


def check_choice(name: str, value, choices) -> str:
    if value not in choices:
        raise ValueError(f"{name} must be one of {sorted(choices)}, got {value!r}")
    return value
