"""The one way a typed config declares a field with its help text.

The CLI (``rnnkit.cli.options``) turns every dataclass field into a flag and reads the flag's help from
``metadata["help"]``; writing the text here, once, keeps the Python API's documentation and the CLI's the same.
This module imports nothing heavy so configs stay cheap to import.
"""

from __future__ import annotations

from dataclasses import field
from typing import Any

HELP_KEY = "help"


def help_field(text: str, **kw: Any) -> Any:
    """A ``dataclasses.field`` carrying ``text`` as its help; ``kw`` goes to ``field`` (``default=``, ...)."""
    return field(metadata={HELP_KEY: text}, **kw)
