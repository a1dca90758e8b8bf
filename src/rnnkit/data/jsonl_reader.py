"""Reading labelled texts from JSON Lines files (one JSON object per line).

Blank lines are ignored. Labels may be JSON strings or integers (integers become
their decimal string, so ``1`` and ``"1"`` are the same class); text fields must
be strings.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence

from rnnkit.data.decoding import TextCodec
from rnnkit.data.examples import Example, ProblemLog, ReadResult
from rnnkit.data.records import MISSING, build_example, check_label_map


def _check_field(name: str, value) -> str:
    if not isinstance(value, str) or not value:
        raise TypeError(f"{name} must be a non-empty field name (str), got {value!r}")
    return value


def read_jsonl(path: str | os.PathLike, text_field: str | Sequence[str] = "text", label_field: str | None = "label",
               encoding: str = "utf-8", on_error: str = "raise", *, label_map: Mapping[str, str] | None = None,
               fallback_encoding: str | None = None) -> ReadResult:
    """Read a ``.jsonl`` file.

    Args:
        path: the file.
        text_field: key of the text, or several keys whose values are joined with a space.
        label_field: key of the label, or ``None`` for unlabelled data.
        encoding, on_error, label_map, fallback_encoding: as for ``read_csv``.

    Bad records (invalid JSON, not an object, missing / non-string text, missing or
    empty label, undecodable bytes) raise a ``DataError`` naming line and field, or are
    skipped and counted with ``on_error="skip"``.
    """
    fields = (text_field,) if isinstance(text_field, str) else tuple(text_field)
    if not fields:
        raise ValueError("text_field must name at least one field, got an empty sequence")
    fields = tuple(_check_field("text_field", f) for f in fields)
    if label_field is not None:
        _check_field("label_field", label_field)
    label_map = check_label_map(label_map)
    codec = TextCodec(encoding, fallback_encoding)
    log = ProblemLog(path, on_error)

    examples: list[Example] = []
    # split("\n"), not splitlines(): JSON strings may legally hold U+2028 and friends.
    for line_no, line in enumerate(codec.read(path).split("\n"), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            log.report(line_no, None, f"invalid JSON: {err.msg} at column {err.colno}")
            continue
        if not isinstance(record, dict):
            log.report(line_no, None, f"expected a JSON object, got {type(record).__name__}")
            continue
        texts = []
        for name in fields:
            value = record.get(name, MISSING)
            if value is MISSING or value is None:
                log.report(line_no, name, "missing text")
                break
            if not isinstance(value, str):
                log.report(line_no, name, f"text must be a string, got {value!r}")
                break
            texts.append((name, value))
        else:
            label = (label_field, record.get(label_field, MISSING)) if label_field is not None else None
            example = build_example(log, codec, line_no, texts, label, label_map)
            if example is not None:
                examples.append(example)
    return log.result(examples)
