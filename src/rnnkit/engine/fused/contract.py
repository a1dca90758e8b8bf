"""The Python ↔ C++ contract of the fused kernels, declared once, and checked against the library when it loads.

Every fact both sides must agree on lives here: the cell kinds' codes, their gate counts, the activations saved
per row and step for backward (as a multiple of the hidden size), the fields of ``struct Extras`` in their
order, LayerNorm's eps, the minimal cells' gated-scan signatures (``SCAN_FORWARD``, ``SCAN_BACKWARD``: the
loader's ctypes types are made from them, the library reports its own parameter counts and which are integers)
and the kernels' ABI version. ``kernels.cpp`` exports its own values of each
(``rk_contract``, ``rk_extras_field``, ``rk_ln_eps``); ``check(lib)`` compares them with this declaration when
the library loads, and a mismatch refuses the library with a message naming the fact and both values (the
fused back end then steps aside, see ``build``). So a change made on one side only is caught on the first
call, not by a heap corruption later.
"""

from __future__ import annotations

import ctypes

from rnnkit.cells import GRUCell, LSTMCell, RNNCell
from rnnkit.cells.extras import EPS

ABI_VERSION = 7  # rk_version(): bumped with any change of an exported signature
KINDS = {"tanh": 0, "relu": 1, "lstm": 2, "gru": 3}
# The cell class behind each kind code; its gate count (``Cell.gates``) is what the kernels must agree with.
CELLS = {KINDS["tanh"]: RNNCell, KINDS["relu"]: RNNCell, KINDS["lstm"]: LSTMCell, KINDS["gru"]: GRUCell}
GATES = {kind: cell.gates for kind, cell in CELLS.items()}
# Activations saved per row and step for backward, in units of H. Plain kernels: LSTM [i, f, g, o], GRU [r, z, n]
# (and hn in a (T, B, H) buffer of its own); RNN re-reads h_t. Extras kernels: LSTM [i f g o], GRU [r z n hn],
# RNN h̃.
SAVED = {0: 0, 1: 0, 2: 4, 3: 3}
SAVED_EXT = {0: 1, 1: 1, 2: 4, 3: 4}
# struct Extras: the inputs the extras kernels read (null where off), then the buffers they write for backward.
EXTRAS_INPUTS = ("rmask", "zh", "zc", "ln_w", "ln_b", "lnc_w", "lnc_b")
EXTRAS_OUTPUTS = ("ct", "xh", "rs", "xhc", "rsc", "hin")
EXTRAS_FIELDS = EXTRAS_INPUTS + EXTRAS_OUTPUTS
LN_EPS = EPS  # the cells' LayerNorm eps (rnnkit.cells.extras), hard-wired in the kernels
# rk_gated_scan_{forward,backward}_{f32,f64}: the arguments in order (kernels_scan.h); those in SCAN_INTEGERS are C
# ints (ld_*: the row stride of u, c), the rest pointers (lengths to int64, the others to the dtype's values).
SCAN_FORWARD = ("steps", "batch", "hidden", "u", "ld_u", "c", "ld_c", "h0", "lengths", "out", "h_n", "chunks")
SCAN_BACKWARD = ("steps", "batch", "hidden", "d_out", "u", "ld_u", "c", "ld_c", "h0", "out", "lengths", "d_u",
                 "d_c", "d_h", "chunks")
SCAN_INTEGERS = ("steps", "batch", "hidden", "ld_u", "ld_c", "chunks")

# rk_contract(out, n) fills out[:n] with these, in this order (see kernels.cpp).
_LAYOUT = ("version", "kinds", "gates", "saved", "saved_ext", "extras_fields", "extras_bytes", "index_bytes",
           "scan_forward_args", "scan_forward_integers", "scan_backward_args", "scan_backward_integers")


class ContractError(RuntimeError):
    """The compiled kernels disagree with ``contract``: the library is refused."""


def declared() -> dict[str, object]:
    """This module's side of every fact ``rk_contract`` reports."""
    kinds = sorted(GATES)
    return {
        "version": ABI_VERSION,
        "kinds": len(KINDS),
        "gates": [GATES[k] for k in kinds],
        "saved": [SAVED[k] for k in kinds],
        "saved_ext": [SAVED_EXT[k] for k in kinds],
        "extras_fields": len(EXTRAS_FIELDS),
        "extras_bytes": len(EXTRAS_FIELDS) * ctypes.sizeof(ctypes.c_void_p),
        "index_bytes": 8,  # batch_sizes, starts and lengths are int64
        "scan_forward_args": len(SCAN_FORWARD),
        "scan_forward_integers": _integer_mask(SCAN_FORWARD),
        "scan_backward_args": len(SCAN_BACKWARD),
        "scan_backward_integers": _integer_mask(SCAN_BACKWARD),
    }


def _integer_mask(args: tuple[str, ...]) -> int:
    """Bit i set where argument i is a C int (as the kernels' ``integer_args`` reports it)."""
    return sum(1 << i for i, name in enumerate(args) if name in SCAN_INTEGERS)


def reported(lib) -> dict[str, object]:
    """The library's side: what its ``rk_contract``, ``rk_extras_field`` and ``rk_ln_eps`` say."""
    buf = (ctypes.c_int64 * 64)()
    count = lib.rk_contract(buf, len(buf))
    values = list(buf[:count])
    kinds = values[1] if len(values) > 1 else 0
    facts: dict[str, object] = {}
    at = 0
    for name in _LAYOUT:
        if name in ("gates", "saved", "saved_ext"):
            facts[name], at = values[at:at + kinds], at + kinds
        else:
            facts[name], at = (values[at] if at < len(values) else None), at + 1
    facts["fields"] = tuple(lib.rk_extras_field(i).decode() for i in range(int(facts["extras_fields"] or 0)))
    facts["ln_eps"] = lib.rk_ln_eps()
    return facts


def check(lib) -> None:
    """Raise ``ContractError`` naming every fact where the library and this declaration differ."""
    lib.rk_contract.argtypes, lib.rk_contract.restype = [ctypes.POINTER(ctypes.c_int64), ctypes.c_int], ctypes.c_int
    lib.rk_extras_field.argtypes, lib.rk_extras_field.restype = [ctypes.c_int], ctypes.c_char_p
    lib.rk_ln_eps.argtypes, lib.rk_ln_eps.restype = [], ctypes.c_double
    want = {**declared(), "fields": EXTRAS_FIELDS, "ln_eps": LN_EPS}
    got = reported(lib)
    wrong = [f"{name}: library {got.get(name)!r}, Python {value!r}" for name, value in want.items()
             if got.get(name) != value]
    if wrong:
        raise ContractError("the fused kernels disagree with rnnkit.engine.fused.contract (" + "; ".join(wrong) + ")")
