"""Finding and opening a saved model folder: the part classifiers and language models share."""

from __future__ import annotations

from pathlib import Path

from rnnkit.data import Vocabulary, tokenizer_from_config
from rnnkit.training import load_checkpoint


def resolve_model_path(path: str | Path) -> Path:
    """A checkpoint folder, or a run folder holding one in ``model/``."""
    path = Path(path)
    if (path / "model" / "config.json").exists() and not (path / "config.json").exists():
        return path / "model"
    return path


def open_checkpoint(path: str | Path, kind: str, map_location: str = "cpu"):
    """(state_dict, meta, vocabulary, tokenizer) of a saved model of ``kind``, or an error naming the folder."""
    path = resolve_model_path(path)
    state, meta = load_checkpoint(path, map_location=map_location)
    if meta.get("kind") != kind:
        raise ValueError(f"{path} holds a {meta.get('kind')!r} model, not a {kind.replace('_', ' ')}")
    return state, meta, Vocabulary.from_dict(meta["vocab"]), tokenizer_from_config(meta["tokenizer"])
