"""Up-front argument checks whose messages name the argument and its value."""

from __future__ import annotations

import math


def check_positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def check_nonnegative_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
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
