"""Finding and opening a saved model folder: the part classifiers and language models share."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from rnnkit.data import Vocabulary, tokenizer_from_config
from rnnkit.saved.kinds import kind_text
from rnnkit.training import load_checkpoint
from rnnkit.training.checkpoint import CONFIG_FILE, MODEL_FILE


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
        raise ValueError(f"{path} holds a {meta.get('kind')!r} model, not a {kind_text(kind)}")
    return state, meta, Vocabulary.from_dict(meta["vocab"]), tokenizer_from_config(meta["tokenizer"])


def build_saved(path: str | Path, meta: dict, state: dict, make: Callable[[dict], object]):
    """``make(meta["model_config"])`` with ``state`` loaded into it; an error names the file and what did not fit.

    A ``config.json`` edited by hand (its ``kind`` changed, a field renamed) otherwise surfaces as a dataclass's or
    torch's own message, naming neither the file nor the model folder.
    """
    config = resolve_model_path(path) / CONFIG_FILE
    try:
        model = make(meta["model_config"])
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"{config}: its model_config does not describe a {meta.get('kind')!r} model (its \"kind\"): "
                         f"{error}") from error
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        first = str(error).strip().splitlines()
        raise ValueError(f"{config.parent / MODEL_FILE}: the weights do not fit the model {config} describes: "
                         f"{' '.join(first[1:3] or first)[:300]}") from error
    return model

