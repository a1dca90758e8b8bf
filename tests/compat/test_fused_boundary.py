"""The checked boundary to the C++ kernels, and the contract the library is checked against when it loads."""

from __future__ import annotations

import ctypes

import pytest
import torch

from rnnkit.engine.fused import build, contract, recurrence
from rnnkit.engine.fused.boundary import FusedBoundaryError, check, check_layout
from rnnkit.engine.fused.layout import layout

KIND, HID, STEPS, BATCH = contract.KINDS["gru"], 4, 3, 2


def _args(**change):
    """A valid GRU forward call on (STEPS, BATCH), with ``change`` replacing any argument."""
    _, rows = layout(None, STEPS, BATCH)
    args = dict(kind=KIND, layout=rows, padded=False, threads=0, units=1,
                xp=torch.randn(STEPS, BATCH, 3 * HID), h0=torch.zeros(BATCH, HID), c0=None,
                w_hh=torch.randn(3 * HID, HID), b_hh=torch.zeros(3 * HID), save=False)
    return {**args, **change}


def test_a_valid_call_runs():
    results, _ = recurrence.forward(**_args())
    assert results[0].shape == (STEPS, BATCH, HID)


@pytest.mark.parametrize("change, message", [
    (dict(xp=torch.randn(STEPS, BATCH, 3 * HID, dtype=torch.bfloat16)), "bfloat16"),
    (dict(h0=torch.zeros(BATCH, HID, dtype=torch.float64)), "h0 is torch.float64, not torch.float32"),
    (dict(w_hh=torch.randn(3 * HID, HID + 1)), "xp is of shape"),
    (dict(h0=torch.zeros(BATCH + 1, HID)), "h0 is of shape"),
])
def test_wrong_tensors_are_refused(change, message):
    with pytest.raises(FusedBoundaryError, match=message):
        recurrence.forward(**_args(**change))


@pytest.mark.parametrize("tensor, message", [
    (torch.randn(HID, 3 * HID).t(), "not contiguous"),
    (torch.zeros(3 * HID, HID).to_sparse(), "sparse"),
    (torch.zeros(3 * HID, HID, device="meta"), "on meta"),
])
def test_layouts_and_devices_are_checked(tensor, message):
    with pytest.raises(FusedBoundaryError, match=message):
        check("forward", torch.float32, w_hh=(tensor, (3 * HID, HID)))


def test_fake_tensors_never_reach_the_kernels():
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode() as mode:
        args = _args()
        args["xp"] = mode.from_tensor(torch.randn(STEPS, BATCH, 3 * HID))
    with pytest.raises(FusedBoundaryError, match="FakeTensor"):
        recurrence.forward(**args)


def test_lstm_without_cell_state_is_refused():
    lstm = contract.KINDS["lstm"]
    with pytest.raises(FusedBoundaryError, match="needs"):
        recurrence.forward(**_args(kind=lstm, xp=torch.randn(STEPS, BATCH, 4 * HID), w_hh=torch.randn(4 * HID, HID),
                                   b_hh=None))


@pytest.mark.parametrize("sizes, starts, message", [
    ([[3, 3, 3]], [0, 2], "counts within each block"),       # more rows than the block has
    ([[1, 2, 2]], [0, 2], "never grow"),                      # growing
    ([[2, 2, 2]], [0, 3], "do not cut 2 rows"),               # starts beyond the batch
])
def test_bad_layouts_are_refused(sizes, starts, message):
    with pytest.raises(FusedBoundaryError, match=message):
        check_layout(torch.tensor(sizes), torch.tensor(starts), BATCH, STEPS)


def test_the_library_reports_the_declared_contract():
    lib = build.load()
    got = contract.reported(lib)
    assert {k: got[k] for k in contract.declared()} == contract.declared()
    assert got["fields"] == contract.EXTRAS_FIELDS
    assert got["ln_eps"] == contract.LN_EPS
    assert [name for name, _ in build.Extras._fields_] == list(contract.EXTRAS_FIELDS)


class _Disagreeing:
    """A stand-in library whose rk_contract says LSTM has 3 gates and whose struct lost a field."""

    def __init__(self, lib):
        self._lib = lib
        self.rk_extras_field = lib.rk_extras_field
        self.rk_ln_eps = lib.rk_ln_eps
        real = lib.rk_contract

        def rk_contract(buf, n):
            count = real(buf, n)
            buf[2 + contract.KINDS["lstm"]] = 3
            return count

        self.rk_contract = _Callable(rk_contract, real)


class _Callable:
    def __init__(self, fn, real):
        self._fn, self.argtypes, self.restype = fn, real.argtypes, real.restype

    def __call__(self, *args):
        return self._fn(*args)


def test_a_disagreeing_library_is_refused():
    with pytest.raises(contract.ContractError, match=r"gates: library \[1, 1, 3, 3\], Python \[1, 1, 4, 3\]"):
        contract.check(_Disagreeing(build.load()))
    assert ctypes.sizeof(build.Extras) == len(contract.EXTRAS_FIELDS) * ctypes.sizeof(ctypes.c_void_p)
