"""A package's public names imported on first use (PEP 562), so importing the package costs nothing heavy.

``rnnkit`` and the sub-packages the command line passes through (``rnnkit.data``, ``rnnkit.training``,
``rnnkit.generation``, ``rnnkit.serve``) name their public objects in a table, name -> the module that defines it;
a name is imported the first time it is read (``rnnkit.GRU``, ``from rnnkit import *``) and then kept in the
package, so ``rnnkit --help`` never loads torch (nor FastAPI). Each package also imports the same names under
``if TYPE_CHECKING:`` for type checkers and the API reference (griffe reads the source, it does not run it).

This module imports nothing heavy.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable


def lazy_names(package: str, homes: dict[str, str]) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package``, whose names in ``homes`` live in the modules it gives."""

    def __getattr__(name: str) -> object:
        home = homes.get(name)
        if home is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(home), name)
        setattr(sys.modules[package], name, value)  # kept: the next read is a plain attribute
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(homes))

    return __getattr__, __dir__
