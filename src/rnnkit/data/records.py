"""Checking one parsed record's text and label fields and building its ``Example``.

All readers share these rules so that the same mistake gets the same message
whatever the file format:

* every text field is decoded (see ``decoding``) and stripped; several text
  fields are joined with one space, empty ones left out; nothing left is
  "empty text";
* a label that is absent is "missing label", one that is blank is "empty label";
  labels are stripped strings;
* with a ``label_map`` (e.g. AG News' ``"1" -> "World"``) a value outside the map
  is an error rather than a silently new class.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from rnnkit.data.decoding import TextCodec
from rnnkit.data.examples import Example, ProblemLog

# Marker for "this record has no value for the label field at all".
MISSING = object()


def check_label_map(label_map) -> dict[str, str] | None:
    """Validate a user-supplied ``label_map`` up front (str -> str)."""
    if label_map is None:
        return None
    if not isinstance(label_map, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) and v.strip() for k, v in label_map.items()
    ):
        raise TypeError(f"label_map must map label strings to non-empty label strings, got {label_map!r}")
    return {k.strip(): v.strip() for k, v in label_map.items()}


def build_example(log: ProblemLog, codec: TextCodec, line: int, texts: Sequence[tuple[str, str]],
                  label: tuple[str, object] | None, label_map: Mapping[str, str] | None = None) -> Example | None:
    """The record's ``Example``, or ``None`` after reporting its first problem to ``log``.

    Args:
        log: where problems go (raises in ``"raise"`` mode).
        codec: decodes / repairs fields that hold undecodable bytes.
        line: 1-based line the record starts on.
        texts: ``(field name, raw value)`` for each text field, in joining order.
        label: ``(field name, raw value or MISSING)``, or ``None`` when the data has no labels.
        label_map: optional raw-label -> label mapping; values outside it are errors.
    """
    parts = []
    for name, raw in texts:
        value = codec.repair(raw)
        if value is None:
            log.report(line, name, codec.describe_bad_bytes(raw))
            return None
        value = value.strip()
        if value:
            parts.append(value)
    if not parts:
        log.report(line, "+".join(name for name, _ in texts), "empty text")
        return None

    label_value = None
    if label is not None:
        name, raw = label
        if raw is MISSING or raw is None:
            log.report(line, name, "missing label")
            return None
        if isinstance(raw, bool) or not isinstance(raw, str | int):
            # JSON labels may be numbers; anything else (lists, floats, objects) is ambiguous.
            log.report(line, name, f"label must be a string or an integer, got {raw!r}")
            return None
        if isinstance(raw, int):
            raw = str(raw)
        label_value = codec.repair(raw)
        if label_value is None:
            log.report(line, name, codec.describe_bad_bytes(raw))
            return None
        label_value = label_value.strip()
        if not label_value:
            log.report(line, name, "empty label")
            return None
        if label_map is not None:
            if label_value not in label_map:
                log.report(line, name, f"unknown label {label_value!r}, expected one of {sorted(label_map)}")
                return None
            label_value = label_map[label_value]
    return Example(" ".join(parts), label_value, log.source(line))
