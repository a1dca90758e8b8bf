"""Examples, the result every reader returns, and the skip-or-raise bookkeeping.

Every reader produces ``Example`` records (text, label, where it came from) and
wraps them in a ``ReadResult`` that also says how many records were skipped and
why. Readers never decide on their own whether a bad record is fatal: they hand
each problem to a ``ProblemLog``, which raises it (``on_error="raise"``) or
counts and remembers it (``on_error="skip"``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field

from rnnkit.data.errors import DataError
from rnnkit.validation import check_choice

ON_ERROR_CHOICES = ("raise", "skip")

# Enough messages to diagnose a file; a million bad rows should not mean a
# million stored strings. ``skipped`` stays exact regardless.
MAX_PROBLEMS_KEPT = 100


@dataclass(frozen=True)
class Example:
    """One labelled (or unlabelled) text.

    Attributes:
        text: the document, stripped of surrounding whitespace, never empty.
        label: the class name as a string, or ``None`` when the source has no labels.
        source: ``"file:line"`` where the record starts, for error messages.
    """

    text: str
    label: str | None
    source: str

    def location(self) -> tuple[str, int | None]:
        """``(file, line)`` from ``source``; ``line`` is ``None`` if the source has no line number."""
        file, sep, line = self.source.rpartition(":")
        if sep and line.isdigit():
            return file, int(line)
        return self.source, None


@dataclass
class ReadResult:
    """What a reader returns.

    Attributes:
        examples: the records that were read, in file order.
        skipped: how many records were dropped because they were malformed
            (always 0 with ``on_error="raise"``, which raises instead).
        problems: ``str(DataError)`` for the first ``MAX_PROBLEMS_KEPT`` skipped records.

    Iterating over a ``ReadResult`` and ``len()`` act on ``examples``.
    """

    examples: list[Example]
    skipped: int = 0
    problems: list[str] = field(default_factory=list)

    def __iter__(self) -> Iterator[Example]:
        return iter(self.examples)

    def __len__(self) -> int:
        return len(self.examples)

    def labels(self) -> list[str]:
        """Sorted distinct labels (``None`` excluded)."""
        return sorted({ex.label for ex in self.examples if ex.label is not None})


class ProblemLog:
    """Raise or record one problem per malformed record, depending on ``on_error``."""

    def __init__(self, path: str | os.PathLike, on_error: str):
        self.path = os.fspath(path)
        self.on_error = check_choice("on_error", on_error, ON_ERROR_CHOICES)
        self.skipped = 0
        self.problems: list[str] = []

    def report(self, line: int | None, field: str | None, message: str, *, path: str | None = None) -> None:
        """A record is bad: raise in ``"raise"`` mode, else count it and carry on.

        ``path`` overrides the log's file, for readers whose records live in separate files.
        """
        error = DataError(self.path if path is None else path, line, field, message)
        if self.on_error == "raise":
            raise error
        self.skipped += 1
        if len(self.problems) < MAX_PROBLEMS_KEPT:
            self.problems.append(str(error))

    def result(self, examples: list[Example]) -> ReadResult:
        """Package the examples; a file that yields nothing usable is an error in both modes."""
        if not examples:
            hint = f" ({self.skipped} records skipped; first: {self.problems[0]})" if self.problems else ""
            raise DataError(self.path, message=f"no usable examples{hint}")
        return ReadResult(examples, self.skipped, list(self.problems))

    def source(self, line: int) -> str:
        return f"{self.path}:{line}"
