"""Metrics: a classification report computed by hand, and the bits/perplexity of language models.

Conventions of ``classification_report`` (the same as scikit-learn's with
``labels=range(len(labels))`` and ``zero_division=0``):

* the confusion matrix has true classes as rows, predicted classes as columns;
* a class never predicted has precision 0, a class never present has recall 0,
  and F1 is 0 when precision + recall is 0;
* macro averages weigh every label in ``labels`` equally, absent ones included,
  so a class the test set lacks still shows up (as 0) instead of vanishing.

Language-model losses come in nats (natural log, what ``cross_entropy`` returns);
bits divide by ln 2, perplexity is ``exp`` of the mean nats per token.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np


def confusion_matrix(y_true: Sequence[int], y_pred: Sequence[int], num_classes: int) -> np.ndarray:
    """``num_classes x num_classes`` int64 counts, ``[t, p]`` = examples of true class t predicted as p."""
    true, pred = _check_labels(y_true, y_pred, num_classes)
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    # add.at accumulates repeated (t, p) pairs; plain fancy-index assignment would not.
    np.add.at(matrix, (true, pred), 1)
    return matrix


def classification_report(y_true: Sequence[int], y_pred: Sequence[int], labels: list[str]) -> dict[str, Any]:
    """Accuracy, per-class and macro precision/recall/F1, and the confusion matrix.

    ``y_true`` and ``y_pred`` are class indices into ``labels``. The result is plain
    JSON-able Python: ``{"accuracy", "macro_precision", "macro_recall", "macro_f1",
    "support", "labels", "per_class": {label: {"precision", "recall", "f1", "support"}},
    "confusion_matrix": [[...], ...]}``.
    """
    if isinstance(labels, str) or not isinstance(labels, Sequence) or not labels:
        raise ValueError(f"labels must be a non-empty list of class names, got {labels!r}")
    names = [str(label) for label in labels]
    if len(set(names)) != len(names):
        raise ValueError(f"labels must be distinct, got {names!r}")
    matrix = confusion_matrix(y_true, y_pred, len(names))

    true_positive = np.diag(matrix).astype(np.float64)
    support = matrix.sum(axis=1)  # row sums: how many of each true class
    predicted = matrix.sum(axis=0)  # column sums: how often each class was predicted
    precision = _safe_divide(true_positive, predicted)
    recall = _safe_divide(true_positive, support)
    f1 = _safe_divide(2 * precision * recall, precision + recall)

    per_class = {
        name: {
            "precision": float(precision[i]), "recall": float(recall[i]),
            "f1": float(f1[i]), "support": int(support[i]),
        }
        for i, name in enumerate(names)
    }
    return {
        "accuracy": float(true_positive.sum() / matrix.sum()),
        "macro_precision": float(precision.mean()),
        "macro_recall": float(recall.mean()),
        "macro_f1": float(f1.mean()),
        "support": int(matrix.sum()),
        "labels": names,
        "per_class": per_class,
        "confusion_matrix": matrix.tolist(),
    }


def _safe_divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """Element-wise ratio with 0 where the denominator is 0 (no warning, no NaN)."""
    out = np.zeros(numerator.shape, dtype=np.float64)
    np.divide(numerator, denominator, out=out, where=denominator != 0)
    return out


def _check_labels(y_true: Sequence[int], y_pred: Sequence[int], num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
    true, pred = np.asarray(y_true), np.asarray(y_pred)
    for name, array in (("y_true", true), ("y_pred", pred)):
        if array.ndim != 1:
            raise ValueError(f"{name} must be a flat sequence of class indices, got shape {array.shape}")
        if array.size and not np.issubdtype(array.dtype, np.integer):
            raise TypeError(f"{name} must hold integer class indices, got dtype {array.dtype}")
    if true.size != pred.size:
        raise ValueError(f"y_true and y_pred must have the same length, got {true.size} and {pred.size}")
    if true.size == 0:
        raise ValueError("y_true is empty: no examples to score")
    for name, array in (("y_true", true), ("y_pred", pred)):
        bad = array[(array < 0) | (array >= num_classes)]
        if bad.size:
            raise ValueError(f"{name} has class index {int(bad[0])} outside [0, {num_classes})")
    return true.astype(np.int64), pred.astype(np.int64)


# -- language models -----------------------------------------------------------------
def bits_per_token(nats: float) -> float:
    """Mean loss in nats per token -> bits per token (bits per character for a character model)."""
    return _check_nats(nats) / math.log(2)


def perplexity(nats: float) -> float:
    """Mean loss in nats per token -> perplexity ``exp(nats)``; ``inf`` where that overflows."""
    nats = _check_nats(nats)
    try:
        return math.exp(nats)
    except OverflowError:
        return math.inf


def language_model_report(total_nats: float, tokens: int, characters: int | None = None) -> dict[str, float]:
    """Summed loss over ``tokens`` predictions -> ``loss`` (nats/token), ``bits_per_token``, ``perplexity``.

    With ``characters`` (the text's length in characters) also ``bits_per_char``,
    which compares word- and character-level models on the same text.
    """
    if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 1:
        raise ValueError(f"tokens must be a positive integer, got {tokens!r}")
    mean = _check_nats(total_nats) / tokens
    report = {"loss": mean, "bits_per_token": bits_per_token(mean), "perplexity": perplexity(mean)}
    if characters is not None:
        if isinstance(characters, bool) or not isinstance(characters, int) or characters < 1:
            raise ValueError(f"characters must be a positive integer or None, got {characters!r}")
        report["bits_per_char"] = total_nats / math.log(2) / characters
    return report


def _check_nats(nats: float) -> float:
    if isinstance(nats, bool) or not isinstance(nats, int | float | np.floating | np.integer):
        raise TypeError(f"nats must be a number, got {nats!r}")
    if math.isnan(nats) or nats < 0:
        raise ValueError(f"nats must be a non-negative cross-entropy, got {nats!r}")
    return float(nats)


# -- text ---------------------------------------------------------------------------------
_CLASSIFICATION_KEYS = {
    "accuracy", "macro_precision", "macro_recall", "macro_f1", "support", "labels", "per_class", "confusion_matrix",
}


def format_report(report: dict[str, Any]) -> str:
    """A fixed-width text table of a ``classification_report`` (other scalar entries listed after it).

    A report without ``per_class`` (e.g. a language model's) prints as ``name value`` lines.
    """
    if not isinstance(report, dict):
        raise TypeError(f"report must be a dict, got {type(report).__name__}")
    lines: list[str] = []
    if "per_class" in report:
        lines += _format_classes(report)
    extras = {key: value for key, value in report.items() if key not in _CLASSIFICATION_KEYS}
    scalars = {key: value for key, value in extras.items() if not isinstance(value, dict)}
    if scalars:
        if lines:
            lines.append("")
        width = max(len(key) for key in scalars)
        lines += [f"{key:<{width}}  {_format_value(value)}" for key, value in scalars.items()]
    # Nested reports (e.g. {"valid": report, "summary": {...}}) become indented sections.
    for key, value in extras.items():
        if isinstance(value, dict):
            if lines:
                lines.append("")
            lines.append(f"{key}:")
            lines += ["  " + line if line else line for line in format_report(value).splitlines()]
    return "\n".join(lines)


def _format_classes(report: dict[str, Any]) -> list[str]:
    per_class = report["per_class"]
    names = list(report.get("labels", per_class))
    width = max([len("macro avg")] + [len(name) for name in names])
    header = f"{'':<{width}}  {'precision':>9}  {'recall':>9}  {'f1':>9}  {'support':>9}"
    lines = [header]
    for name in names:
        row = per_class[name]
        lines.append(
            f"{name:<{width}}  {row['precision']:>9.4f}  {row['recall']:>9.4f}  {row['f1']:>9.4f}  {row['support']:>9d}"
        )
    total = report.get("support", sum(row["support"] for row in per_class.values()))
    lines.append("")
    if "accuracy" in report:
        lines.append(f"{'accuracy':<{width}}  {'':>9}  {'':>9}  {report['accuracy']:>9.4f}  {total:>9d}")
    if "macro_f1" in report:
        lines.append(
            f"{'macro avg':<{width}}  {report.get('macro_precision', math.nan):>9.4f}  "
            f"{report.get('macro_recall', math.nan):>9.4f}  {report['macro_f1']:>9.4f}  {total:>9d}"
        )
    matrix = report.get("confusion_matrix")
    if matrix:
        cell = max([len(name) for name in names] + [len(str(count)) for row in matrix for count in row])
        lines += ["", "confusion matrix (rows = true, columns = predicted)"]
        lines.append(f"{'':<{width}}  " + " ".join(f"{name:>{cell}}" for name in names))
        for name, row in zip(names, matrix, strict=True):
            lines.append(f"{name:<{width}}  " + " ".join(f"{count:>{cell}}" for count in row))
    return lines


def _format_value(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)
