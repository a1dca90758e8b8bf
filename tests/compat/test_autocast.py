"""CPU autocast (bfloat16): never a crash; the fused engine and ``auto`` run float32, as torch.nn.GRU does."""

from __future__ import annotations

import pytest
import torch

from .conftest import LAYERS, B, D, T, make


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("backend", ["fused", "auto"])
@pytest.mark.parametrize("kind", list(LAYERS))
def test_autocast_bf16_runs_float32(kind, backend, training):
    layer, _ = make(kind, backend, batch_first=True)
    layer.train(training)
    x = torch.randn(B, T, D)
    want = layer(x)
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        got = layer(x)
    flat = lambda r: [r[0], *(r[1] if isinstance(r[1], tuple) else (r[1],))]  # noqa: E731
    for g, w in zip(flat(got), flat(want), strict=True):
        assert g.dtype == torch.float32
        torch.testing.assert_close(g, w)
    if training:
        got[0].sum().backward()
        assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in layer.parameters())


def test_gru_output_dtype_matches_torch_nn_under_autocast():
    ours, theirs = make("gru", "fused", batch_first=True)
    x = torch.randn(B, T, D)
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        assert ours(x)[0].dtype == theirs(x)[0].dtype == torch.float32


@pytest.mark.parametrize("kind", list(LAYERS))
def test_bfloat16_input_goes_elsewhere_on_auto(kind):
    """bfloat16 input (no autocast): the kernels take none, ``auto`` runs it on a back end that does."""
    layer, _ = make(kind, "auto", dtype=torch.bfloat16)
    out, _ = layer(torch.randn(T, B, D, dtype=torch.bfloat16))
    assert out.dtype == torch.bfloat16
