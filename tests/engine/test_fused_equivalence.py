"""The fused back end equals the reference back end in float64: outputs, states and every gradient."""

from __future__ import annotations

import itertools

import pytest
import torch

from .conftest import KINDS, assert_same, make_layer, run_all

LENGTHS = {"none": None, "mixed": [6, 2, 4], "all_short": [3, 2, 3], "full": [6, 6, 6]}
GRID = list(itertools.product(KINDS, [1, 2], [False, True], LENGTHS, [False, True]))


@pytest.mark.parametrize("kind,layers,bidirectional,lengths,with_hx", GRID)
def test_plain_cells_match_reference(kind, layers, bidirectional, lengths, with_hx):
    layer = make_layer(kind, layers=layers, bidirectional=bidirectional)
    torch.manual_seed(1)
    x = torch.randn(6, 3, 4, dtype=torch.float64)
    hx = None
    if with_hx:
        count = 2 if kind == "lstm" else 1
        hx = tuple(torch.randn(layers * (2 if bidirectional else 1), 3, 5, dtype=torch.float64)
                   for _ in range(count))
    lengths = LENGTHS[lengths]
    assert_same(run_all(layer, "fused", x, hx, lengths), run_all(layer, "reference", x, hx, lengths))


@pytest.mark.parametrize("kind", list(KINDS))
def test_no_bias_and_dropout_between_layers(kind):
    layer = make_layer(kind, layers=3, bidirectional=True, bias=False)
    layer.dropout = 0.4
    x = torch.randn(5, 4, 4, dtype=torch.float64)
    lengths = [5, 1, 3, 4]
    assert_same(run_all(layer, "fused", x, None, lengths), run_all(layer, "reference", x, None, lengths))


@pytest.mark.parametrize("kind", list(KINDS))
def test_batch_of_one_and_single_step(kind):
    layer = make_layer(kind, layers=2)
    for shape in [(1, 1, 4), (7, 1, 4), (1, 3, 4)]:
        x = torch.randn(*shape, dtype=torch.float64)
        assert_same(run_all(layer, "fused", x), run_all(layer, "reference", x))


@pytest.mark.parametrize("kind", list(KINDS))
def test_float32_matches_torch_nn(kind):
    layer = make_layer(kind, layers=2, bidirectional=True).float()
    x = torch.randn(7, 3, 4)
    layer.backend = "fused"
    with torch.no_grad():
        out, _ = layer(x, lengths=[7, 3, 5])
        layer.backend = "native"
        expected, _ = layer(x, lengths=[7, 3, 5])
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("kind", list(KINDS))
def test_gradcheck(kind):
    layer = make_layer(kind, input_size=3, hidden=2, bidirectional=True)
    layer.backend = "fused"
    params = list(layer.parameters())
    x = torch.randn(4, 2, 3, dtype=torch.float64, requires_grad=True)
    count = 2 if kind == "lstm" else 1
    hx = tuple(torch.randn(2, 2, 2, dtype=torch.float64, requires_grad=True) for _ in range(count))

    def f(x, *rest):
        states = rest[:count]
        out, final = torch.func.functional_call(
            layer, dict(zip([n for n, _ in layer.named_parameters()], rest[count:], strict=True)),
            (x, states[0] if count == 1 else states), {"lengths": [4, 2]})
        final = final if isinstance(final, tuple) else (final,)
        return (out, *final)

    assert torch.autograd.gradcheck(f, (x, *hx, *[p.detach().requires_grad_(True) for p in params]))


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("lengths", [None, [9, 1, 4, 9, 2, 7, 3, 8, 5, 6, 2, 1]])
def test_rows_split_across_threads(kind, lengths, three_threads):
    from rnnkit.engine.fused.layout import layout

    order, (sizes, starts) = layout(None if lengths is None else torch.tensor(lengths), 9, 12)
    assert starts.tolist() == [0, 4, 8, 12]  # three blocks of rows, one per thread
    layer = make_layer(kind, layers=2, bidirectional=True)
    x = torch.randn(9, 12, 4, dtype=torch.float64)
    assert_same(run_all(layer, "fused", x, None, lengths), run_all(layer, "reference", x, None, lengths))
