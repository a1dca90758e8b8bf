"""One loader for any saved model: the folder's ``config.json`` names its kind, the kind names the class."""

from __future__ import annotations

from pathlib import Path

from rnnkit.saved.classifier import Classifier
from rnnkit.saved.folders import resolve_model_path
from rnnkit.saved.language_model import LanguageModel
from rnnkit.training.checkpoint import read_meta

# A new kind of model: its class (with ``kind`` and ``load``) goes here, its name in saved/kinds.py.
SAVED_CLASSES = {cls.kind: cls for cls in (Classifier, LanguageModel)}


def load_saved_model(path: str | Path, map_location: str = "cpu", error: type[ValueError] = ValueError):
    """``(kind, model)``: the Classifier or LanguageModel saved at ``path``, whichever it holds.

    The kind comes from ``config.json`` alone, so the weights are read once (by the model's own ``load``).
    Another kind raises ``error`` (a caller's own ValueError subclass, e.g. ExportError).
    """
    folder = resolve_model_path(path)
    kind = read_meta(folder).get("kind")
    if kind not in SAVED_CLASSES:
        raise error(f"{folder} holds a {kind!r} model; rnnkit knows classifiers and language models")
    return kind, SAVED_CLASSES[kind].load(folder, map_location)
