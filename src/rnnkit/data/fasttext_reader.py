"""Reading fastText-style files: ``__label__sport __label__news Some text ...``.

Each non-blank line is one example. Labels are the whitespace-separated tokens
at the *start* of the line that begin with the prefix; the rest of the line is
the text. fastText allows several labels per line (multi-label data); rnnkit's
classifiers are single-label, so **the first label is used and the others are
ignored** (silently: that is a documented choice, not a problem to report).
A ``__label__``-looking token later in the text is ordinary text.
"""

from __future__ import annotations

import os
import re

from rnnkit.data.decoding import TextCodec
from rnnkit.data.examples import Example, ProblemLog, ReadResult
from rnnkit.data.records import MISSING, build_example

_TOKEN = re.compile(r"(\S+)\s*")


def split_fasttext_line(line: str, prefix: str = "__label__") -> tuple[list[str], str]:
    """``(labels without the prefix, text)`` of one line; labels may be empty strings."""
    labels = []
    rest = line.lstrip()
    while True:
        match = _TOKEN.match(rest)
        if match is None or not match.group(1).startswith(prefix):
            return labels, rest
        labels.append(match.group(1)[len(prefix):])
        rest = rest[match.end():]


def read_fasttext(path: str | os.PathLike, encoding: str = "utf-8", on_error: str = "raise", *,
                  label_prefix: str = "__label__", fallback_encoding: str | None = None) -> ReadResult:
    """Read a fastText file (see the module docstring for the format and multi-label rule).

    A line without a leading label is a "missing label" error, a line with labels
    and nothing else an "empty text" error; ``on_error="skip"`` skips and counts them.
    """
    if not isinstance(label_prefix, str) or not label_prefix or label_prefix != label_prefix.strip():
        raise ValueError(f"label_prefix must be a non-empty string without spaces, got {label_prefix!r}")
    codec = TextCodec(encoding, fallback_encoding)
    log = ProblemLog(path, on_error)
    examples: list[Example] = []
    for line_no, line in enumerate(codec.read(path).split("\n"), start=1):
        if not line.strip():
            continue
        labels, text = split_fasttext_line(line, label_prefix)
        label = ("label", labels[0] if labels else MISSING)
        example = build_example(log, codec, line_no, [("text", text)], label)
        if example is not None:
            examples.append(example)
    return log.result(examples)
