"""Figures of a run: training curves and a confusion matrix, written as PNG files.

Figures are drawn on matplotlib's Agg canvas directly (``Figure`` +
``FigureCanvasAgg``), never through ``pyplot``: no window can open, no global
backend is switched under the caller's feet (a notebook keeps its own), and no
figure is left registered in pyplot's global state to leak memory.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from rnnkit.evaluation.metrics import format_report
from rnnkit.training.runlog import to_jsonable

X_AXES = ("epoch", "step", "elapsed")
_X_LABELS = {"epoch": "epoch", "step": "optimiser step", "elapsed": "elapsed time (s)"}


def plot_training_curves(
    history: list[dict[str, Any]],
    path: str | Path,
    metrics: Sequence[str] | None = None,
    x: str | None = None,
) -> Path:
    """Plot ``metrics`` of ``history`` (``Trainer`` records) against ``x`` into the PNG ``path``.

    ``metrics=None`` plots ``train_loss``, ``train_accuracy`` (if logged) and every ``valid_*`` metric. Train and valid
    versions of one quantity (``train_loss``/``valid_loss``) share a panel; each
    other quantity gets its own, since scales differ. ``x`` is "epoch", "step" or
    "elapsed"; None picks "epoch", or "step" when several evaluations share an epoch.
    """
    if not isinstance(history, list) or not history or not all(isinstance(r, dict) for r in history):
        raise ValueError("history must be a non-empty list of dicts (one per evaluation)")
    if x is None:
        epochs = [record.get("epoch") for record in history]
        x = "step" if len(set(epochs)) < len(epochs) else "epoch"
    if x not in X_AXES:
        raise ValueError(f"x must be one of {list(X_AXES)}, got {x!r}")
    if any(x not in record for record in history):
        raise ValueError(f"x={x!r} is missing from some history records")
    available = sorted({key for record in history for key in record})
    if metrics is None:
        metrics = ["train_loss", "train_accuracy"] + [key for key in available if key.startswith("valid_")]
        metrics = [key for key in metrics if key in available]
    if isinstance(metrics, str) or not metrics:
        raise ValueError(f"metrics must be a non-empty sequence of history keys, got {metrics!r}")
    for key in metrics:
        if key not in available:
            raise ValueError(f"metric {key!r} is not in the history; available: {available}")

    panels: dict[str, list[str]] = {}
    for key in metrics:
        panels.setdefault(key.removeprefix("train_").removeprefix("valid_"), []).append(key)
    xs = [_number(record[x]) for record in history]
    # At most three panels a row, so a run with many metrics stays a readable size.
    columns = min(3, len(panels))
    rows = math.ceil(len(panels) / columns)
    figure = Figure(figsize=(5.0 * columns, 3.6 * rows), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    for ax, (quantity, keys) in zip(axes, panels.items(), strict=False):
        for key in keys:
            ax.plot(xs, [_number(record.get(key)) for record in history], marker="o", markersize=3, label=key)
        ax.set_title(quantity)
        ax.set_xlabel(_X_LABELS[x])
        if x != "elapsed":
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend()
    return _save(figure, path)


def plot_confusion_matrix(matrix: Sequence[Sequence[int]], labels: Sequence[str], path: str | Path) -> Path:
    """Draw ``matrix`` (rows = true, columns = predicted) with its counts in the cells, as a PNG at ``path``."""
    counts = np.asarray(matrix)
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1] or counts.shape[0] == 0:
        raise ValueError(f"matrix must be a non-empty square table, got shape {counts.shape}")
    if len(labels) != counts.shape[0]:
        raise ValueError(f"labels has {len(labels)} names for a {counts.shape[0]}x{counts.shape[0]} matrix")
    n = counts.shape[0]
    side = min(12.0, 2.0 + 0.6 * n)
    figure = Figure(figsize=(side + 1.0, side), layout="constrained")
    FigureCanvasAgg(figure)
    ax = figure.subplots()
    image = ax.imshow(counts, cmap="Blues", vmin=0)
    figure.colorbar(image, ax=ax, shrink=0.8)
    names = [str(label) for label in labels]
    ax.set_xticks(range(n), names, rotation=45 if n > 4 else 0, ha="right" if n > 4 else "center")
    ax.set_yticks(range(n), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    # White text on dark cells, black on light ones, so every count stays legible.
    threshold = counts.max() / 2 if counts.size and counts.max() > 0 else math.inf
    for i in range(n):
        for j in range(n):
            value = counts[i, j]
            text = f"{value:g}" if np.issubdtype(counts.dtype, np.floating) else str(value)
            ax.text(j, i, text, ha="center", va="center", color="white" if value > threshold else "black")
    return _save(figure, path)


def write_report(
    directory: str | Path, report: dict[str, Any], history: list[dict[str, Any]] | None = None
) -> dict[str, Path]:
    """Write ``metrics.json`` and ``report.txt``, plus ``confusion_matrix.png`` (if the report has one)
    and ``training_curves.png`` (if ``history`` is non-empty), into ``directory``.

    Returns ``{name: path}`` of what was written.
    """
    if not isinstance(report, dict):
        raise TypeError(f"report must be a dict, got {type(report).__name__}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written = {"metrics": directory / "metrics.json", "text": directory / "report.txt"}
    written["metrics"].write_text(json.dumps(to_jsonable(report), indent=2, allow_nan=False) + "\n", encoding="utf-8")
    written["text"].write_text(format_report(report) + "\n", encoding="utf-8")
    if report.get("confusion_matrix"):
        labels = report.get("labels") or list(report.get("per_class", {}))
        written["confusion_matrix"] = plot_confusion_matrix(
            report["confusion_matrix"], labels, directory / "confusion_matrix.png"
        )
    if history:
        written["training_curves"] = plot_training_curves(history, directory / "training_curves.png")
    return written


def _number(value: Any) -> float:
    # The JSON log stores non-finite values as null; plot them as gaps.
    return math.nan if value is None else float(value)


def _save(figure: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png", dpi=100)
    return path
