"""Every bad argument raises up front, and the message names the argument and its value."""

import pytest
import torch

import rnnkit


@pytest.mark.parametrize(("kwargs", "pattern"), [
    (dict(input_size=0, hidden_size=4), "input_size must be a positive integer, got 0"),
    (dict(input_size=3, hidden_size=-2), "hidden_size must be a positive integer, got -2"),
    (dict(input_size=3, hidden_size=4, num_layers=0), "num_layers must be a positive integer, got 0"),
    (dict(input_size=3.5, hidden_size=4), "input_size must be a positive integer, got 3.5"),
    (dict(input_size=3, hidden_size=4, num_layers=2, dropout=1.5), r"dropout must be a number in \[0, 1\], got 1.5"),
    (dict(input_size=3, hidden_size=4, num_layers=2, dropout=-0.1), "dropout must be .* got -0.1"),
    (dict(input_size=3, hidden_size=4, backend="cudnn-magic"), "backend must be 'auto' or one of .* got 'cudnn-magic'"),
])
def test_constructor_arguments(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        rnnkit.LSTM(**kwargs)


def test_bad_nonlinearity():
    with pytest.raises(ValueError, match="nonlinearity must be one of .* got 'sigmoid'"):
        rnnkit.RNN(3, 4, nonlinearity="sigmoid")


def test_flags_must_be_bools():
    with pytest.raises(TypeError, match="bidirectional must be a bool, got 'yes'"):
        rnnkit.GRU(3, 4, bidirectional="yes")


@pytest.fixture
def layer():
    return rnnkit.LSTM(3, 4, num_layers=2)


def test_zero_length_is_an_error(layer):
    with pytest.raises(ValueError, match=r"lengths\[1\] = 0"):
        layer(torch.randn(5, 2, 3), lengths=torch.tensor([5, 0]))


def test_length_above_steps(layer):
    with pytest.raises(ValueError, match=r"lengths\[0\] = 7 is longer than the input's 5 time steps"):
        layer(torch.randn(5, 2, 3), lengths=[7, 2])


def test_lengths_shape_and_dtype(layer):
    with pytest.raises(ValueError, match=r"lengths must have shape \(2,\)"):
        layer(torch.randn(5, 2, 3), lengths=[5, 2, 1])
    with pytest.raises(TypeError, match="lengths must hold integers, got dtype torch.float32"):
        layer(torch.randn(5, 2, 3), lengths=torch.tensor([5.0, 2.0]))


def test_input_rank_and_size(layer):
    with pytest.raises(ValueError, match=r"input must be 3-D \(batched\) or 2-D \(unbatched\), got shape \(5,\)"):
        layer(torch.randn(5))
    with pytest.raises(ValueError, match="input has 7 features but input_size=3"):
        layer(torch.randn(5, 2, 7))
    with pytest.raises(TypeError, match="input must be a floating-point tensor, got dtype torch.int64"):
        layer(torch.ones(5, 2, 3, dtype=torch.long))


def test_hx_shape_dtype_and_count(layer):
    h = torch.zeros(2, 2, 4)
    with pytest.raises(ValueError, match=r"h_0 must have shape \(2, 2, 4\), got \(1, 2, 4\)"):
        layer(torch.randn(5, 2, 3), (torch.zeros(1, 2, 4), h))
    with pytest.raises(TypeError, match="c_0 has dtype torch.float64 but the input has torch.float32"):
        layer(torch.randn(5, 2, 3), (h, h.double()))
    with pytest.raises(TypeError, match=r"hx=\(h_0, c_0\) must be 2 tensor\(s\)"):
        layer(torch.randn(5, 2, 3), h)
    gru = rnnkit.GRU(3, 4)
    with pytest.raises(TypeError, match="hx has dtype torch.float64"):
        gru(torch.randn(5, 2, 3), torch.zeros(1, 2, 4, dtype=torch.float64))


def test_lengths_with_packed_input_is_an_error(layer):
    packed = torch.nn.utils.rnn.pack_padded_sequence(torch.randn(5, 2, 3), [5, 3])
    with pytest.raises(ValueError, match="lengths must be None when input is a PackedSequence"):
        layer(packed, lengths=[5, 3])


def test_cell_state_shape():
    with pytest.raises(ValueError, match=r"state must have shape \(2, 4\), got \(3, 4\)"):
        rnnkit.GRUCell(3, 4)(torch.randn(2, 3), torch.zeros(3, 4))


@pytest.mark.parametrize("value", ["0.5", None, [0.1], True])
def test_probability_of_the_wrong_type_names_the_argument(value):
    from rnnkit.validation import check_probability

    # A string once reached the comparison with 1 and raised a TypeError that named nothing.
    with pytest.raises(ValueError, match=r"dropout must be a number in \[0, 1\), got "):
        check_probability("dropout", value)


@pytest.mark.parametrize("value", [-1, 1.0, "3", True, None])
def test_nonnegative_int_check(value):
    from rnnkit.validation import check_nonnegative_int

    with pytest.raises(ValueError, match=f"seed must be an integer >= 0, got {value!r}"):
        check_nonnegative_int("seed", value)
    assert check_nonnegative_int("seed", 0) == 0
