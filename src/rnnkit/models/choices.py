"""The choices a model config names that the modules building the model read too (cell, pooling, n-grams, LM block).

Torch-free, so the configs (and the command line generated from them) load without torch; ``pooling`` and
``ngrams`` and ``residual`` do the work.
"""

from __future__ import annotations

# The recurrent cells a model can stack, by the name a config gives: name → a note for the help text ("" for
# none). ``rnnkit.models.cell_kinds`` says which layer each one builds (and checks it knows exactly these names).
CELLS = {"lstm": "", "gru": "", "rnn": "tanh", "rnn_relu": "", "mingru": "", "minlstm": ""}
_NAMED = [f"{name} ({note})" if note else name for name, note in CELLS.items()]
CELL_HELP = f"recurrent cell: {', '.join(_NAMED[:-1])} or {_NAMED[-1]}"
POOLINGS = ("last", "mean", "max")
WEIGHTINGS = ("count", "idf")  # how the n-gram bag weighs its entries (``ngrams.NgramBag``)
# A language model's layers: plain (layer → locked dropout → layer ...) or residual (``residual``: pre-norm
# residual blocks with an MLP)
BLOCKS = ("plain", "residual")


def parse_pooling(spec: str) -> tuple[str, ...]:
    """'max+mean' -> ('max', 'mean'); names a bad part and the choices."""
    parts = tuple(p.strip() for p in str(spec).split("+") if p.strip())
    if not parts:
        raise ValueError(f"pooling must name one or more of {list(POOLINGS)} joined by '+', got {spec!r}")
    for p in parts:
        if p not in POOLINGS:
            raise ValueError(f"pooling part {p!r} in {spec!r} is not one of {list(POOLINGS)}")
    if len(set(parts)) != len(parts):
        raise ValueError(f"pooling {spec!r} names a part twice")
    return parts
