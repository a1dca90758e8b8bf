"""Evaluation: classification and language-model metrics, text reports and figures."""

from rnnkit.evaluation.metrics import (
    bits_per_token,
    classification_report,
    confusion_matrix,
    format_report,
    language_model_report,
    perplexity,
)
from rnnkit.evaluation.plots import plot_confusion_matrix, plot_training_curves, write_report

__all__ = [
    "classification_report", "confusion_matrix", "format_report",
    "bits_per_token", "perplexity", "language_model_report",
    "plot_training_curves", "plot_confusion_matrix", "write_report",
]
